/*
 * kernels_train_ref.c — reference versions of the trainer's kernels (kernels.h,
 * "training"). The SIMD variants are kernels_train_avx2.c / _avx512.c.
 */
#include "kernels.h"

#include <math.h>

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

/* ---- elementwise exponentials (the formulas the trainer used inline before they became kernels) ---- */

void silu_mul_ref(float *y, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float s = g[i] / (1.0f + expf(-g[i]));
        y[i] = u ? s * u[i] : s;
    }
}

void silu_mul_bwd_ref(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float s = 1.0f / (1.0f + expf(-g[i])), d = s * (1.0f + g[i] * (1.0f - s));
        if (u) {
            const float dyi = dy[i];
            dg[i] = dyi * u[i] * d;
            du[i] = dyi * g[i] * s;
        } else {
            dg[i] = dy[i] * d;
        }
    }
}

/* summed in double: the reference's sum is the accurate one */
float exp_sum_ref(const float *x, float shift, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)expf(x[i] - shift);
    return (float)s;
}

void exp_shift_ref(float *y, const float *x, float shift, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = expf(x[i] - shift);
}

void fake_quant_ref(float *y, const float *x, float s, float lim, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = nearbyintf(x[i] / s);
        v = v > lim ? lim : v < -lim ? -lim : v;
        y[i] = s * v;
    }
}

/* g ← g·scale;  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  w ← w − lr (m̂ / (√v̂ + ε) + wd·w),
 * m̂ = m / bc1, v̂ = v / bc2;  g ← 0. */
void adamw_ref(float *w, float *m, float *v, float *g, const adamw_consts *c, int64_t n) {
    const float b1 = c->b1, b2 = c->b2;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * c->scale;
        float mi = m[i] = b1 * m[i] + (1.0f - b1) * gi;
        float vi = v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float mhat = mi / c->bc1, vhat = vi / c->bc2;
        w[i] -= c->lr * (mhat / (sqrtf(vhat) + c->eps) + c->wd * w[i]);
        g[i] = 0.0f;
    }
}

const train_kernel_table train_kernels_ref = {
    .name = "ref",
    .silu_mul = silu_mul_ref,
    .silu_mul_bwd = silu_mul_bwd_ref,
    .exp_sum = exp_sum_ref,
    .exp_shift = exp_shift_ref,
    .fake_quant = fake_quant_ref,
    .adamw = adamw_ref,
};

const train_kernel_table *train_kernels_for(const kernel_table *k) {
    if (k == &kernels_avx512) return &train_kernels_avx512;
    if (k == &kernels_avx2) return &train_kernels_avx2;
    return &train_kernels_ref;
}

const train_kernel_table *train_kernels(void) { return train_kernels_for(kernels()); }
