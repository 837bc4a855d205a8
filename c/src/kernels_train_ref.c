/*
 * kernels_train_ref.c — reference versions of the trainer's kernels (kernels.h,
 * "training"). The SIMD variants are kernels_train_avx2.c / _avx512.c.
 */
#include "kernels.h"

/* Backward of delta_step for one head and token. With P = S_{t−1}, S_t = α P + β (v − α P k) kᵀ,
 * o = S_t q, and dS = ∂L/∂S_t from the later tokens:
 *   dS += do qᵀ;  dq = S_tᵀ do
 *   dα = ⟨dS, P⟩ − β (P k)·(dS k);  dβ = (dS k)·(v − α P k);  dv = β dS k
 *   dk = −αβ (Pᵀ (dS k) + dSᵀ (P k)) + β dSᵀ v
 *   dS ← α (dS − β (dS k) kᵀ)                                  (= ∂L/∂S_{t−1})
 * Row i of the matrices is done in two passes: the first gathers the dot products, the second
 * (which needs dS k and P k of the row) accumulates dk and rewrites the row of dS. */
void delta_step_bwd_ref(float *dS, float *dq, float *dk, float *dv, float *dalpha, float *dbeta, const float *P,
                        const float *St, const float *q, const float *k, const float *v, const float *dout,
                        float alpha, float beta, int64_t d_k, int64_t d_v) {
    float sp = 0.0f, pkdsk = 0.0f, db = 0.0f;
    for (int64_t j = 0; j < d_k; j++) dq[j] = dk[j] = 0.0f;
    for (int64_t i = 0; i < d_v; i++) {
        float *dSi = dS + i * d_k;
        const float *Pi = P + i * d_k, *Si = St + i * d_k;
        float pk = 0.0f, dsk = 0.0f;
        for (int64_t j = 0; j < d_k; j++) {
            dSi[j] += dout[i] * q[j];
            dq[j] += Si[j] * dout[i];
            pk += Pi[j] * k[j];
            dsk += dSi[j] * k[j];
            sp += dSi[j] * Pi[j];
        }
        pkdsk += pk * dsk;
        db += dsk * (v[i] - alpha * pk);
        dv[i] = beta * dsk;
        const float c1 = -alpha * beta * dsk, c2 = -alpha * beta * pk + beta * v[i], c3 = beta * dsk;
        for (int64_t j = 0; j < d_k; j++) {
            dk[j] += c1 * Pi[j] + c2 * dSi[j];
            dSi[j] = alpha * (dSi[j] - c3 * k[j]);
        }
    }
    *dalpha = sp - beta * pkdsk;
    *dbeta = db;
}
