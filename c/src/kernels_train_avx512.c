/*
 * kernels_train_avx512.c — AVX-512 versions of the trainer's kernels (see
 * kernels_train_ref.c for the math). Head dims that are not a multiple of 16
 * fall back to the reference.
 */
#include <immintrin.h>

#include "kernels.h"

void delta_step_bwd_avx512(float *dS, float *dq, float *dk, float *dv, float *dalpha, float *dbeta, const float *P,
                           const float *St, const float *q, const float *k, const float *v, const float *dout,
                           float alpha, float beta, int64_t d_k, int64_t d_v) {
    if (d_k % 16 != 0) {
        delta_step_bwd_ref(dS, dq, dk, dv, dalpha, dbeta, P, St, q, k, v, dout, alpha, beta, d_k, d_v);
        return;
    }
    for (int64_t j = 0; j < d_k; j++) dq[j] = dk[j] = 0.0f;
    __m512 spv = _mm512_setzero_ps();
    float pkdsk = 0.0f, db = 0.0f;
    const __m512 va = _mm512_set1_ps(alpha);
    for (int64_t i = 0; i < d_v; i++) {
        float *dSi = dS + i * d_k;
        const float *Pi = P + i * d_k, *Si = St + i * d_k;
        const __m512 vdo = _mm512_set1_ps(dout[i]);
        __m512 pkv = _mm512_setzero_ps(), dskv = _mm512_setzero_ps();
        for (int64_t j = 0; j < d_k; j += 16) {
            __m512 d = _mm512_fmadd_ps(vdo, _mm512_loadu_ps(q + j), _mm512_loadu_ps(dSi + j));
            _mm512_storeu_ps(dSi + j, d);
            _mm512_storeu_ps(dq + j, _mm512_fmadd_ps(_mm512_loadu_ps(Si + j), vdo, _mm512_loadu_ps(dq + j)));
            __m512 p = _mm512_loadu_ps(Pi + j), kk = _mm512_loadu_ps(k + j);
            pkv = _mm512_fmadd_ps(p, kk, pkv);
            dskv = _mm512_fmadd_ps(d, kk, dskv);
            spv = _mm512_fmadd_ps(d, p, spv);
        }
        const float pk = _mm512_reduce_add_ps(pkv), dsk = _mm512_reduce_add_ps(dskv);
        pkdsk += pk * dsk;
        db += dsk * (v[i] - alpha * pk);
        dv[i] = beta * dsk;
        const __m512 c1 = _mm512_set1_ps(-alpha * beta * dsk), c2 = _mm512_set1_ps(-alpha * beta * pk + beta * v[i]);
        const __m512 c3 = _mm512_set1_ps(beta * dsk);
        for (int64_t j = 0; j < d_k; j += 16) {
            __m512 d = _mm512_loadu_ps(dSi + j);
            __m512 acc = _mm512_fmadd_ps(c1, _mm512_loadu_ps(Pi + j), _mm512_loadu_ps(dk + j));
            _mm512_storeu_ps(dk + j, _mm512_fmadd_ps(c2, d, acc));
            _mm512_storeu_ps(dSi + j, _mm512_mul_ps(va, _mm512_fnmadd_ps(c3, _mm512_loadu_ps(k + j), d)));
        }
    }
    *dalpha = _mm512_reduce_add_ps(spv) - beta * pkdsk;
    *dbeta = db;
}
