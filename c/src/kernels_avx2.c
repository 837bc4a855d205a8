/*
 * kernels_avx2.c — the AVX2 + FMA + F16C kernel table (haswell and later).
 * Only reached after cpu.c has checked the CPU and OS. Kernels not
 * specialised here use the _ref version.
 */
#include <immintrin.h>
#include <math.h>

#include "common.h"
#include "kernels.h"

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Lane mask for the first rem (0..8) of 8 lanes, for maskload/maskstore. */
static inline __m256i mask8(int64_t rem) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)BRAID_MIN(rem, 8)), idx);
}

/* ---- dense FP32 / FP16 -------------------------------------------------- */

/* Batch invariance: gemm_* must give, for every activation row, exactly the
 * bits gemv_* gives for that row alone (an eval of n tokens equals n evals of
 * one). So both run the same per-row operation sequence, dot_*_rows: NR rows
 * of X against one weight row, each weight vector loaded once and fed to NR
 * independent accumulator sets that each do what the single-row dot does.
 * NR is a compile-time constant at every call site. */

/* y[t * ldy] = W row w · X row t for t in [0, NR); four accumulators over 32-wide steps. */
static inline __attribute__((always_inline)) void dot_f32_rows(float *y, int64_t ldy, const float *w, const float *X,
                                                               int64_t cols, const int NR) {
    __m256 acc[2][4]; /* [row][accumulator] */
#pragma GCC unroll 2
    for (int t = 0; t < NR; t++)
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) acc[t][k] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 32 <= cols; j += 32) {
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m256 wv = _mm256_loadu_ps(w + j + 8 * k);
#pragma GCC unroll 2
            for (int t = 0; t < NR; t++)
                acc[t][k] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(X + t * cols + j + 8 * k), acc[t][k]);
        }
    }
    for (; j < cols; j += 8) {
        __m256i m = mask8(cols - j);
        __m256 wv = _mm256_maskload_ps(w + j, m);
#pragma GCC unroll 2
        for (int t = 0; t < NR; t++)
            acc[t][0] = _mm256_fmadd_ps(wv, _mm256_maskload_ps(X + t * cols + j, m), acc[t][0]);
    }
#pragma GCC unroll 2
    for (int t = 0; t < NR; t++)
        y[t * ldy] = hsum(_mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][1]), _mm256_add_ps(acc[t][2], acc[t][3])));
}

static void gemv_f32_avx2(float *y, const float *W, const float *x, int64_t cols, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) dot_f32_rows(y + r, 0, W + r * cols, x, cols, 1);
}

static void gemm_f32_avx2(float *Y, int64_t ldy, const float *W, const float *X, int64_t n, int64_t cols, int64_t r0,
                          int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const float *w = W + r * cols; /* [cols] */
        int64_t t = 0;
        for (; t + 2 <= n; t += 2) dot_f32_rows(Y + t * ldy + r, ldy, w, X + t * cols, cols, 2);
        for (; t < n; t++) dot_f32_rows(Y + t * ldy + r, ldy, w, X + t * cols, cols, 1);
    }
}

/* 8 halves from p (only the first rem are read; the rest are 0). */
static inline __m256 load_f16(const uint16_t *p, int64_t rem) {
    if (rem >= 8) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    uint16_t buf[8] = {0};
    for (int64_t i = 0; i < rem; i++) buf[i] = p[i];
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)buf));
}

/* As dot_f32_rows with W in half precision: two accumulators over 16-wide steps. */
static inline __attribute__((always_inline)) void dot_f16_rows(float *y, int64_t ldy, const uint16_t *w,
                                                               const float *X, int64_t cols, const int NR) {
    __m256 acc[4][2]; /* [row][accumulator] */
#pragma GCC unroll 4
    for (int t = 0; t < NR; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++) {
            __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + j + 8 * k)));
#pragma GCC unroll 4
            for (int t = 0; t < NR; t++)
                acc[t][k] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(X + t * cols + j + 8 * k), acc[t][k]);
        }
    }
    for (; j < cols; j += 8) {
        __m256i m = mask8(cols - j);
        __m256 wv = load_f16(w + j, cols - j);
#pragma GCC unroll 4
        for (int t = 0; t < NR; t++)
            acc[t][0] = _mm256_fmadd_ps(wv, _mm256_maskload_ps(X + t * cols + j, m), acc[t][0]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < NR; t++) y[t * ldy] = hsum(_mm256_add_ps(acc[t][0], acc[t][1]));
}

static void gemv_f16_avx2(float *y, const uint16_t *W, const float *x, int64_t cols, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) dot_f16_rows(y + r, 0, W + r * cols, x, cols, 1);
}

static void gemm_f16_avx2(float *Y, int64_t ldy, const uint16_t *W, const float *X, int64_t n, int64_t cols,
                          int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *w = W + r * cols; /* [cols] */
        int64_t t = 0;
        for (; t + 4 <= n; t += 4) dot_f16_rows(Y + t * ldy + r, ldy, w, X + t * cols, cols, 4);
        for (; t < n; t++) dot_f16_rows(Y + t * ldy + r, ldy, w, X + t * cols, cols, 1);
    }
}

/* ---- ternary BT2 ----------------------------------------------------------- */

/* Bit-identical to quantize_act_ref: same division, cvtps rounds half to even
 * under the default MXCSR, max is order-independent. */
static void quantize_act_avx2(act_q8 a, const float *x, int64_t cols) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    for (int64_t b = 0; b < cols / BT2_ACT_BLOCK; b++) {
        const float *xb = x + b * BT2_ACT_BLOCK; /* [64] */
        __m256 v[8], m = _mm256_setzero_ps();
        for (int k = 0; k < 8; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            m = _mm256_max_ps(m, _mm256_and_ps(v[k], absmask));
        }
        float amax = hmax(m);
        float s = amax > 0.0f ? amax / 127.0f : 1.0f;
        __m256 vs = _mm256_set1_ps(s);
        __m256i qi[8], sum = _mm256_setzero_si256();
        for (int k = 0; k < 8; k++) {
            qi[k] = _mm256_cvtps_epi32(_mm256_div_ps(v[k], vs));
            qi[k] = _mm256_min_epi32(_mm256_max_epi32(qi[k], lo), hi);
            sum = _mm256_add_epi32(sum, qi[k]);
        }
        /* int32 -> int8 in order: packs work within 128-bit lanes, permute fixes the order. */
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (int k = 0; k < 8; k += 4) {
            __m256i p01 = _mm256_packs_epi32(qi[k], qi[k + 1]), p23 = _mm256_packs_epi32(qi[k + 2], qi[k + 3]);
            __m256i p = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), order);
            _mm256_storeu_si256((__m256i *)(a.q + b * BT2_ACT_BLOCK + 8 * k), p);
        }
        a.s[b] = s;
        a.sum[b] = hsum_epi32(sum);
    }
}

/* sum_g scale[g] * (s[2g] sum[2g] + s[2g+1] sum[2g+1]): what the code = w + 1
 * products over-count, subtracted once per row. */
static inline float bt2_correction(const float *scale, const float *s, const int32_t *sum, int64_t nb) {
    const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    __m256 acc = _mm256_setzero_ps();
    int64_t g = 0;
    for (; g + 4 <= nb; g += 4) {
        __m256 p = _mm256_mul_ps(_mm256_loadu_ps(s + 2 * g),
                                 _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(sum + 2 * g))));
        __m256 sc = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(scale + g)), dup);
        acc = _mm256_fmadd_ps(p, sc, acc);
    }
    float c = hsum(acc);
    for (; g < nb; g++) c += scale[g] * (s[2 * g] * (float)sum[2 * g] + s[2 * g + 1] * (float)sum[2 * g + 1]);
    return c;
}

/* One group: codes c (32 bytes, 4 x 32 weights) against q[128] with block scales s[2]. */
static inline __m256 bt2_group(__m256 acc, __m256i c, const int8_t *q, const float *s, float scale) {
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i w0 = _mm256_and_si256(c, m3), w1 = _mm256_and_si256(_mm256_srli_epi16(c, 2), m3);
    __m256i w2 = _mm256_and_si256(_mm256_srli_epi16(c, 4), m3), w3 = _mm256_and_si256(_mm256_srli_epi16(c, 6), m3);
    /* u8 codes x s8 q: pair sums <= 2*2*127, so the int16 adds cannot saturate. */
    __m256i p0 = _mm256_add_epi16(_mm256_maddubs_epi16(w0, _mm256_loadu_si256((const __m256i *)q)),
                                  _mm256_maddubs_epi16(w1, _mm256_loadu_si256((const __m256i *)(q + 32))));
    __m256i p1 = _mm256_add_epi16(_mm256_maddubs_epi16(w2, _mm256_loadu_si256((const __m256i *)(q + 64))),
                                  _mm256_maddubs_epi16(w3, _mm256_loadu_si256((const __m256i *)(q + 96))));
    __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p0, ones)), _mm256_set1_ps(s[0]));
    t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p1, ones)), _mm256_set1_ps(s[1]), t);
    return _mm256_fmadd_ps(t, _mm256_set1_ps(scale), acc);
}

static inline float bt2_row(const uint8_t *qs, const float *sc, act_q8 a, int64_t nb) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t g = 0;
    for (; g + 2 <= nb; g += 2) {
        acc0 = bt2_group(acc0, _mm256_loadu_si256((const __m256i *)(qs + 32 * g)), a.q + 128 * g, a.s + 2 * g, sc[g]);
        acc1 = bt2_group(acc1, _mm256_loadu_si256((const __m256i *)(qs + 32 * g + 32)), a.q + 128 * g + 128,
                         a.s + 2 * g + 2, sc[g + 1]);
    }
    if (g < nb)
        acc0 = bt2_group(acc0, _mm256_loadu_si256((const __m256i *)(qs + 32 * g)), a.q + 128 * g, a.s + 2 * g, sc[g]);
    return hsum(_mm256_add_ps(acc0, acc1)) - bt2_correction(sc, a.s, a.sum, nb);
}

static void gemv_bt2_avx2(float *y, const uint8_t *W, int64_t rows, int64_t cols, act_q8 a, int64_t r0, int64_t r1) {
    const int64_t nb = cols / BT2_GROUP;
    const float *scales = bt2_scales(W, rows, cols);
    for (int64_t r = r0; r < r1; r++) y[r] = bt2_row(W + r * (cols / 4), scales + r * nb, a, nb);
}

/* The packed row (cols/4 bytes) stays in L1 across the n activation rows; the
 * AVX2 unpack is 4 and/shift ops per 32 bytes, cheaper than a stored code buffer. */
static void gemm_bt2_avx2(float *Y, int64_t ldy, const uint8_t *W, int64_t rows, int64_t cols, const act_q8 *a,
                          int64_t n, int64_t r0, int64_t r1) {
    const int64_t nb = cols / BT2_GROUP;
    const float *scales = bt2_scales(W, rows, cols);
    for (int64_t r = r0; r < r1; r++)
        for (int64_t t = 0; t < n; t++) Y[t * ldy + r] = bt2_row(W + r * (cols / 4), scales + r * nb, a[t], nb);
}

/* ---- element-wise --------------------------------------------------------- */

/* exp(x), about 1 ulp (Cephes polynomial) for x in [-87.3, 88.3]; clamped outside. */
static inline __m256 exp_ps(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
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
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 silu_ps(__m256 v) {
    return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), v))));
}

static inline float sum_squares(const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
    }
    for (; i < n; i += 8) {
        __m256 v = _mm256_maskload_ps(x + i, mask8(n - i));
        a0 = _mm256_fmadd_ps(v, v, a0);
    }
    return hsum(_mm256_add_ps(a0, a1));
}

static void rmsnorm_avx2(float *y, const float *x, const float *w, int64_t n, float eps) {
    __m256 inv = _mm256_set1_ps(1.0f / sqrtf(sum_squares(x, n) / (float)n + eps));
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = mask8(n - i);
        __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv);
        if (w) v = _mm256_mul_ps(_mm256_maskload_ps(w + i, m), v);
        _mm256_maskstore_ps(y + i, m, v);
    }
}

static void l2norm_avx2(float *y, const float *x, int64_t n, float scale) {
    __m256 k = _mm256_set1_ps(scale / fmaxf(sqrtf(sum_squares(x, n)), 1e-12f));
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = mask8(n - i);
        _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(_mm256_maskload_ps(x + i, m), k));
    }
}

static void silu_avx2(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = mask8(n - i);
        _mm256_maskstore_ps(y + i, m, silu_ps(_mm256_maskload_ps(x + i, m)));
    }
}

static void swiglu_avx2(float *y, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = mask8(n - i);
        _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(silu_ps(_mm256_maskload_ps(g + i, m)), _mm256_maskload_ps(u + i, m)));
    }
}

static void softmax_avx2(float *x, int64_t n) {
    if (n <= 0) return;
    float mx = x[0];
    __m256 vm = _mm256_set1_ps(mx);
    for (int64_t i = 0; i < n; i += 8) /* masked-off lanes load 0: blend them back to x[0] */
        vm = _mm256_max_ps(vm, _mm256_blendv_ps(_mm256_set1_ps(mx), _mm256_maskload_ps(x + i, mask8(n - i)),
                                                _mm256_castsi256_ps(mask8(n - i))));
    vm = _mm256_set1_ps(hmax(vm));
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = mask8(n - i);
        __m256 e = _mm256_and_ps(exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vm)), _mm256_castsi256_ps(m));
        sum = _mm256_add_ps(sum, e);
        _mm256_maskstore_ps(x + i, m, e);
    }
    __m256 inv = _mm256_set1_ps(1.0f / hsum(sum));
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = mask8(n - i);
        _mm256_maskstore_ps(x + i, m, _mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv));
    }
}

/* One gated delta-rule step (kernels.h); rows of S in 16-float steps, d_k % 16 == 0, else _ref. */
static void delta_step_avx2(float *o, float *S, const float *P, const float *q, const float *k, const float *v,
                            float beta, float alpha, int64_t d_k, int64_t d_v) {
    if (d_k % 16 != 0) {
        delta_step_ref(o, S, P, q, k, v, beta, alpha, d_k, d_v);
        return;
    }
    const __m256 va = _mm256_set1_ps(alpha);
    for (int64_t i = 0; i < d_v; i++) {
        float *Si = S + i * d_k; /* row i of S: [d_k] */
        const float *Pi = P + i * d_k;
        __m256 sk0 = _mm256_setzero_ps(), sk1 = _mm256_setzero_ps();
        for (int64_t j = 0; j < d_k; j += 16) {
            sk0 = _mm256_fmadd_ps(_mm256_loadu_ps(Pi + j), _mm256_loadu_ps(k + j), sk0);
            sk1 = _mm256_fmadd_ps(_mm256_loadu_ps(Pi + j + 8), _mm256_loadu_ps(k + j + 8), sk1);
        }
        __m256 delta = _mm256_set1_ps(beta * (v[i] - alpha * hsum(_mm256_add_ps(sk0, sk1))));
        __m256 sq0 = _mm256_setzero_ps(), sq1 = _mm256_setzero_ps();
        for (int64_t j = 0; j < d_k; j += 16) {
            __m256 s0 = _mm256_fmadd_ps(va, _mm256_loadu_ps(Pi + j), _mm256_mul_ps(delta, _mm256_loadu_ps(k + j)));
            __m256 s1 =
                _mm256_fmadd_ps(va, _mm256_loadu_ps(Pi + j + 8), _mm256_mul_ps(delta, _mm256_loadu_ps(k + j + 8)));
            _mm256_storeu_ps(Si + j, s0);
            _mm256_storeu_ps(Si + j + 8, s1);
            sq0 = _mm256_fmadd_ps(s0, _mm256_loadu_ps(q + j), sq0);
            sq1 = _mm256_fmadd_ps(s1, _mm256_loadu_ps(q + j + 8), sq1);
        }
        o[i] = hsum(_mm256_add_ps(sq0, sq1));
    }
}

/* rows_axpy and outer_momentum (kernels.h): _ref's operations lane by lane (separate multiply
 * and add, never fmadd), so _ref's bits; the columns in 8-lane steps, a masked tail. */
static void rows_axpy_avx2(float *y, const float *w, const float *V, int64_t n, int64_t d) {
    int64_t c = 0;
    for (; c + 32 <= d; c += 32) { /* four column vectors kept in registers across the rows */
        __m256 y0 = _mm256_loadu_ps(y + c), y1 = _mm256_loadu_ps(y + c + 8), y2 = _mm256_loadu_ps(y + c + 16),
               y3 = _mm256_loadu_ps(y + c + 24);
        for (int64_t i = 0; i < n; i++) {
            const float *Vi = V + i * d + c;
            const __m256 wi = _mm256_set1_ps(w[i]);
            y0 = _mm256_add_ps(y0, _mm256_mul_ps(wi, _mm256_loadu_ps(Vi)));
            y1 = _mm256_add_ps(y1, _mm256_mul_ps(wi, _mm256_loadu_ps(Vi + 8)));
            y2 = _mm256_add_ps(y2, _mm256_mul_ps(wi, _mm256_loadu_ps(Vi + 16)));
            y3 = _mm256_add_ps(y3, _mm256_mul_ps(wi, _mm256_loadu_ps(Vi + 24)));
        }
        _mm256_storeu_ps(y + c, y0), _mm256_storeu_ps(y + c + 8, y1);
        _mm256_storeu_ps(y + c + 16, y2), _mm256_storeu_ps(y + c + 24, y3);
    }
    for (; c < d; c += 8) {
        const __m256i m = mask8(d - c);
        __m256 yc = _mm256_maskload_ps(y + c, m);
        for (int64_t i = 0; i < n; i++)
            yc = _mm256_add_ps(yc, _mm256_mul_ps(_mm256_set1_ps(w[i]), _mm256_maskload_ps(V + i * d + c, m)));
        _mm256_maskstore_ps(y + c, m, yc);
    }
}

static void outer_momentum_avx2(float *S, float *M, const float *u, const float *v, int64_t m, int64_t n, float eta,
                                float theta, float keep) {
    const __m256 ve = _mm256_set1_ps(eta), vt = _mm256_set1_ps(theta), vk = _mm256_set1_ps(keep);
    for (int64_t a = 0; a < m; a++) {
        float *Sa = S + a * n, *Ma = M + a * n; /* row a: [n] */
        const __m256 ua = _mm256_set1_ps(u[a]);
        for (int64_t b = 0; b < n; b += 8) {
            const __m256i k = mask8(n - b);
            __m256 g = _mm256_mul_ps(vt, _mm256_mul_ps(ua, _mm256_maskload_ps(v + b, k)));
            __m256 s = _mm256_sub_ps(_mm256_mul_ps(ve, _mm256_maskload_ps(Sa + b, k)), g);
            _mm256_maskstore_ps(Sa + b, k, s);
            _mm256_maskstore_ps(Ma + b, k, _mm256_add_ps(_mm256_mul_ps(vk, _mm256_maskload_ps(Ma + b, k)), s));
        }
    }
}

const kernel_table kernels_avx2 = {
    .name = "avx2",
    .gemv_f32 = gemv_f32_avx2,
    .gemm_f32 = gemm_f32_avx2,
    .gemv_f16 = gemv_f16_avx2,
    .gemm_f16 = gemm_f16_avx2,
    .quantize_act = quantize_act_avx2,
    .gemv_bt2 = gemv_bt2_avx2,
    .gemm_bt2 = gemm_bt2_avx2,
    .rmsnorm = rmsnorm_avx2,
    .l2norm = l2norm_avx2,
    .silu = silu_avx2,
    .swiglu = swiglu_avx2,
    .softmax = softmax_avx2,
    .conv1d_causal = conv1d_causal_ref,
    .delta_step = delta_step_avx2,
    .rows_axpy = rows_axpy_avx2,
    .outer_momentum = outer_momentum_avx2,
    .delta_step_bwd = delta_step_bwd_avx2,
};
