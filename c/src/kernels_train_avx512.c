/*
 * kernels_train_avx512.c — AVX-512 versions of the trainer's kernels (see
 * kernels_train_ref.c for the math). Head dims that are not a multiple of 16
 * fall back to the reference.
 */
#include <immintrin.h>

#include "kernels.h"
#include "simd_exp_avx512.h"

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

/* ---- elementwise exponentials ------------------------------------------------------------------------ */

/* exp16: simd_exp_avx512.h (shared with the inference kernels) */

/* σ(g) = 1 / (1 + e^{−g}) */
static inline __m512 sigmoid16(__m512 g) {
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}

/* Tails run through masked loads/stores, so every element takes the same vector formula. */
void silu_mul_avx512(float *y, const float *g, const float *u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
        __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
        if (u) s = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i));
        _mm512_mask_storeu_ps(y + i, m, s);
    }
}

void silu_mul_bwd_avx512(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 gv = _mm512_maskz_loadu_ps(m, g + i), dyv = _mm512_maskz_loadu_ps(m, dy + i);
        const __m512 s = sigmoid16(gv);
        const __m512 d = _mm512_mul_ps(s, _mm512_fmadd_ps(gv, _mm512_sub_ps(one, s), one));
        if (u) {
            _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(dyv, _mm512_maskz_loadu_ps(m, u + i)), d));
            _mm512_mask_storeu_ps(du + i, m, _mm512_mul_ps(_mm512_mul_ps(dyv, gv), s));
        } else {
            _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(dyv, d));
        }
    }
}

float exp_sum_avx512(const float *x, float shift, int64_t n) {
    const __m512 sh = _mm512_set1_ps(shift);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), sh));
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, e));
    }
    return _mm512_reduce_add_ps(acc);
}

void exp_shift_avx512(float *y, const float *x, float shift, int64_t n) {
    const __m512 sh = _mm512_set1_ps(shift);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), sh)));
    }
}

/* Division, round-to-nearest-even and the clamp are exact IEEE operations: _ref's bits. */
void fake_quant_avx512(float *y, const float *x, float s, float lim, int64_t n) {
    const __m512 sv = _mm512_set1_ps(s), hi = _mm512_set1_ps(lim), lo = _mm512_set1_ps(-lim);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), sv), _MM_FROUND_TO_NEAREST_INT);
        v = _mm512_max_ps(lo, _mm512_min_ps(hi, v));
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(sv, v));
    }
}

/* adamw_ref's operations in its order, without FMA: the same bits. */
void adamw_avx512(float *w, float *m, float *v, float *g, const adamw_consts *c, int64_t n) {
    const __m512 sc = _mm512_set1_ps(c->scale), b1 = _mm512_set1_ps(c->b1), b2 = _mm512_set1_ps(c->b2);
    const __m512 ob1 = _mm512_set1_ps(1.0f - c->b1), ob2 = _mm512_set1_ps(1.0f - c->b2);
    const __m512 bc1 = _mm512_set1_ps(c->bc1), bc2 = _mm512_set1_ps(c->bc2), lr = _mm512_set1_ps(c->lr);
    const __m512 eps = _mm512_set1_ps(c->eps), wd = _mm512_set1_ps(c->wd);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 gi = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + i), sc);
        const __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_maskz_loadu_ps(k, m + i)), _mm512_mul_ps(ob1, gi));
        const __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_maskz_loadu_ps(k, v + i)),
                                        _mm512_mul_ps(_mm512_mul_ps(ob2, gi), gi));
        const __m512 mhat = _mm512_div_ps(mi, bc1), vhat = _mm512_div_ps(vi, bc2);
        const __m512 wi = _mm512_maskz_loadu_ps(k, w + i);
        const __m512 upd = _mm512_add_ps(_mm512_div_ps(mhat, _mm512_add_ps(_mm512_sqrt_ps(vhat), eps)), _mm512_mul_ps(wd, wi));
        _mm512_mask_storeu_ps(m + i, k, mi);
        _mm512_mask_storeu_ps(v + i, k, vi);
        _mm512_mask_storeu_ps(w + i, k, _mm512_sub_ps(wi, _mm512_mul_ps(lr, upd)));
        _mm512_mask_storeu_ps(g + i, k, _mm512_setzero_ps());
    }
}

const train_kernel_table train_kernels_avx512 = {
    .name = "avx512",
    .silu_mul = silu_mul_avx512,
    .silu_mul_bwd = silu_mul_bwd_avx512,
    .exp_sum = exp_sum_avx512,
    .exp_shift = exp_shift_avx512,
    .fake_quant = fake_quant_avx512,
    .adamw = adamw_avx512,
};
