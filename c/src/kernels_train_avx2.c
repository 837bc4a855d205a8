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

/* ---- elementwise exponentials ------------------------------------------------------------------------ */

/* e^x for 8 lanes, the AVX-512 file's formula (Cephes' expf polynomial on |r| <= ln2/2); 2^n is built
 * in the exponent field as 2^(n/2) · 2^(n − n/2), so n in [−150, 128] (the clamp) stays representable
 * and the product rounds to denormals/0 or overflows to inf as expf does. NaN passes the clamp. */
static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), _mm256_min_ps(_mm256_set1_ps(89.0f), x));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, p1), p2);
}

/* Tails go through an 8-float buffer padded with zeros, so every element takes the vector formula. */
static inline __m256 load_part(const float *x, int64_t n) {
    if (n >= 8) return _mm256_loadu_ps(x);
    float b[8] = {0};
    for (int64_t i = 0; i < n; i++) b[i] = x[i];
    return _mm256_loadu_ps(b);
}

static inline void store_part(float *y, __m256 v, int64_t n) {
    if (n >= 8) {
        _mm256_storeu_ps(y, v);
        return;
    }
    float b[8];
    _mm256_storeu_ps(b, v);
    for (int64_t i = 0; i < n; i++) y[i] = b[i];
}

void silu_mul_avx2(float *y, const float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 gv = load_part(g + i, n - i);
        __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
        if (u) s = _mm256_mul_ps(s, load_part(u + i, n - i));
        store_part(y + i, s, n - i);
    }
}

void silu_mul_bwd_avx2(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 gv = load_part(g + i, n - i), dyv = load_part(dy + i, n - i);
        const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
        const __m256 d = _mm256_mul_ps(s, _mm256_fmadd_ps(gv, _mm256_sub_ps(one, s), one));
        if (u) {
            store_part(dg + i, _mm256_mul_ps(_mm256_mul_ps(dyv, load_part(u + i, n - i)), d), n - i);
            store_part(du + i, _mm256_mul_ps(_mm256_mul_ps(dyv, gv), s), n - i);
        } else {
            store_part(dg + i, _mm256_mul_ps(dyv, d), n - i);
        }
    }
}

float exp_sum_avx2(const float *x, float shift, int64_t n) {
    const __m256 sh = _mm256_set1_ps(shift);
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_add_ps(acc, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh)));
    float b[8];
    _mm256_storeu_ps(b, exp8(_mm256_sub_ps(load_part(x + i, n - i), sh)));
    float tail = 0.0f;
    for (int64_t t = 0; t < n - i; t++) tail += b[t];
    return hsum256(acc) + tail;
}

void exp_shift_avx2(float *y, const float *x, float shift, int64_t n) {
    const __m256 sh = _mm256_set1_ps(shift);
    for (int64_t i = 0; i < n; i += 8) store_part(y + i, exp8(_mm256_sub_ps(load_part(x + i, n - i), sh)), n - i);
}

/* Division, round-to-nearest-even and the clamp are exact IEEE operations: _ref's bits. */
void fake_quant_avx2(float *y, const float *x, float s, float lim, int64_t n) {
    const __m256 sv = _mm256_set1_ps(s), hi = _mm256_set1_ps(lim), lo = _mm256_set1_ps(-lim);
    for (int64_t i = 0; i < n; i += 8) {
        __m256 v = _mm256_round_ps(_mm256_div_ps(load_part(x + i, n - i), sv),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm256_max_ps(lo, _mm256_min_ps(hi, v));
        store_part(y + i, _mm256_mul_ps(sv, v), n - i);
    }
}

/* adamw_ref's operations in its order, without FMA: the same bits. The tail runs in _ref. */
void adamw_avx2(float *w, float *m, float *v, float *g, const adamw_consts *c, int64_t n) {
    const __m256 sc = _mm256_set1_ps(c->scale), b1 = _mm256_set1_ps(c->b1), b2 = _mm256_set1_ps(c->b2);
    const __m256 ob1 = _mm256_set1_ps(1.0f - c->b1), ob2 = _mm256_set1_ps(1.0f - c->b2);
    const __m256 bc1 = _mm256_set1_ps(c->bc1), bc2 = _mm256_set1_ps(c->bc2), lr = _mm256_set1_ps(c->lr);
    const __m256 eps = _mm256_set1_ps(c->eps), wd = _mm256_set1_ps(c->wd);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), sc);
        const __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(ob1, gi));
        const __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(ob2, gi), gi));
        const __m256 mhat = _mm256_div_ps(mi, bc1), vhat = _mm256_div_ps(vi, bc2);
        const __m256 wi = _mm256_loadu_ps(w + i);
        const __m256 upd = _mm256_add_ps(_mm256_div_ps(mhat, _mm256_add_ps(_mm256_sqrt_ps(vhat), eps)), _mm256_mul_ps(wd, wi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        _mm256_storeu_ps(w + i, _mm256_sub_ps(wi, _mm256_mul_ps(lr, upd)));
        _mm256_storeu_ps(g + i, _mm256_setzero_ps());
    }
    adamw_ref(w + i, m + i, v + i, g + i, c, n - i);
}

const train_kernel_table train_kernels_avx2 = {
    .name = "avx2",
    .silu_mul = silu_mul_avx2,
    .silu_mul_bwd = silu_mul_bwd_avx2,
    .exp_sum = exp_sum_avx2,
    .exp_shift = exp_shift_avx2,
    .fake_quant = fake_quant_avx2,
    .adamw = adamw_avx2,
};
