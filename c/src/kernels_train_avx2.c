/*
 * kernels_train_avx2.c — AVX2+FMA versions of the trainer's kernels (see
 * kernels_train_ref.c for the math). Head dims that are not a multiple of 8
 * fall back to the reference.
 */
#include <immintrin.h>

#include "kernels.h"

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void delta_step_bwd_avx2(float *dS, float *dq, float *dk, float *dv, float *dalpha, float *dbeta, const float *P,
                         const float *St, const float *q, const float *k, const float *v, const float *dout,
                         float alpha, float beta, int64_t d_k, int64_t d_v) {
    if (d_k % 8 != 0) {
        delta_step_bwd_ref(dS, dq, dk, dv, dalpha, dbeta, P, St, q, k, v, dout, alpha, beta, d_k, d_v);
        return;
    }
    for (int64_t j = 0; j < d_k; j++) dq[j] = dk[j] = 0.0f;
    __m256 spv = _mm256_setzero_ps();
    float pkdsk = 0.0f, db = 0.0f;
    const __m256 va = _mm256_set1_ps(alpha);
    for (int64_t i = 0; i < d_v; i++) {
        float *dSi = dS + i * d_k;
        const float *Pi = P + i * d_k, *Si = St + i * d_k;
        const __m256 vdo = _mm256_set1_ps(dout[i]);
        __m256 pkv = _mm256_setzero_ps(), dskv = _mm256_setzero_ps();
        for (int64_t j = 0; j < d_k; j += 8) {
            __m256 d = _mm256_fmadd_ps(vdo, _mm256_loadu_ps(q + j), _mm256_loadu_ps(dSi + j));
            _mm256_storeu_ps(dSi + j, d);
            _mm256_storeu_ps(dq + j, _mm256_fmadd_ps(_mm256_loadu_ps(Si + j), vdo, _mm256_loadu_ps(dq + j)));
            __m256 p = _mm256_loadu_ps(Pi + j), kk = _mm256_loadu_ps(k + j);
            pkv = _mm256_fmadd_ps(p, kk, pkv);
            dskv = _mm256_fmadd_ps(d, kk, dskv);
            spv = _mm256_fmadd_ps(d, p, spv);
        }
        const float pk = hsum256(pkv), dsk = hsum256(dskv);
        pkdsk += pk * dsk;
        db += dsk * (v[i] - alpha * pk);
        dv[i] = beta * dsk;
        const __m256 c1 = _mm256_set1_ps(-alpha * beta * dsk), c2 = _mm256_set1_ps(-alpha * beta * pk + beta * v[i]);
        const __m256 c3 = _mm256_set1_ps(beta * dsk);
        for (int64_t j = 0; j < d_k; j += 8) {
            __m256 d = _mm256_loadu_ps(dSi + j);
            __m256 acc = _mm256_fmadd_ps(c1, _mm256_loadu_ps(Pi + j), _mm256_loadu_ps(dk + j));
            _mm256_storeu_ps(dk + j, _mm256_fmadd_ps(c2, d, acc));
            _mm256_storeu_ps(dSi + j, _mm256_mul_ps(va, _mm256_fnmadd_ps(c3, _mm256_loadu_ps(k + j), d)));
        }
    }
    *dalpha = hsum256(spv) - beta * pkdsk;
    *dbeta = db;
}
