/*
 * kernels_avx512.c — the AVX-512 (F/BW/DQ/VL + VNNI + GFNI) kernel table.
 * Compiled with -march=x86-64-v4 -mavx512vnni (+ GFNI below); only reached
 * after cpu.c has checked the CPU and OS. Kernels not specialised here use
 * the _ref version.
 */
/* GFNI unpacks BT2 codes in one op per 64 weights (vs shift + mask): every
 * AVX-512 VNNI CPU since Ice Lake / Zen 4 has it, and cpu.c requires it. */
#pragma GCC target("gfni")
#include <immintrin.h>
#include <math.h>

#include "common.h"
#include "kernels.h"

/* Lanes [0, rem) of a 16-lane vector, rem in [0, 16]. */
static inline __mmask16 mask16(int64_t rem) { return (__mmask16)(rem >= 16 ? 0xffff : (1u << rem) - 1); }

/* ---- dense FP32 / FP16 -------------------------------------------------- */

static inline float dot_f32(const float *w, const float *x, int64_t cols) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 64 <= cols; j += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + j), _mm512_loadu_ps(x + j), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + j + 16), _mm512_loadu_ps(x + j + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + j + 32), _mm512_loadu_ps(x + j + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + j + 48), _mm512_loadu_ps(x + j + 48), a3);
    }
    for (; j < cols; j += 16) {
        __mmask16 m = mask16(cols - j);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + j), _mm512_maskz_loadu_ps(m, x + j), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static void gemv_f32_avx512(float *y, const float *W, const float *x, int64_t cols, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) y[r] = dot_f32(W + r * cols, x, cols);
}

/* Four activation rows X[t..t+3] against one weight row: each W vector is loaded once. */
static void gemm_f32_avx512(float *Y, int64_t ldy, const float *W, const float *X, int64_t n, int64_t cols, int64_t r0,
                            int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const float *w = W + r * cols; /* [cols] */
        int64_t t = 0;
        for (; t + 4 <= n; t += 4) {
            const float *x0 = X + t * cols, *x1 = x0 + cols, *x2 = x1 + cols, *x3 = x2 + cols;
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
                   a3 = _mm512_setzero_ps();
            for (int64_t j = 0; j < cols; j += 16) {
                __mmask16 m = mask16(cols - j);
                __m512 wv = _mm512_maskz_loadu_ps(m, w + j);
                a0 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x0 + j), a0);
                a1 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x1 + j), a1);
                a2 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x2 + j), a2);
                a3 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x3 + j), a3);
            }
            Y[t * ldy + r] = _mm512_reduce_add_ps(a0);
            Y[(t + 1) * ldy + r] = _mm512_reduce_add_ps(a1);
            Y[(t + 2) * ldy + r] = _mm512_reduce_add_ps(a2);
            Y[(t + 3) * ldy + r] = _mm512_reduce_add_ps(a3);
        }
        for (; t < n; t++) Y[t * ldy + r] = dot_f32(w, X + t * cols, cols);
    }
}

static inline __m512 load_f16(const uint16_t *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

static inline float dot_f16(const uint16_t *w, const float *x, int64_t cols) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 32 <= cols; j += 32) {
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + j))), _mm512_loadu_ps(x + j),
                             a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + j + 16))),
                             _mm512_loadu_ps(x + j + 16), a1);
    }
    for (; j < cols; j += 16) {
        __mmask16 m = mask16(cols - j);
        a0 = _mm512_fmadd_ps(load_f16(w + j, m), _mm512_maskz_loadu_ps(m, x + j), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

static void gemv_f16_avx512(float *y, const uint16_t *W, const float *x, int64_t cols, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) y[r] = dot_f16(W + r * cols, x, cols);
}

static void gemm_f16_avx512(float *Y, int64_t ldy, const uint16_t *W, const float *X, int64_t n, int64_t cols,
                            int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *w = W + r * cols; /* [cols] */
        int64_t t = 0;
        for (; t + 4 <= n; t += 4) {
            const float *x0 = X + t * cols, *x1 = x0 + cols, *x2 = x1 + cols, *x3 = x2 + cols;
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
                   a3 = _mm512_setzero_ps();
            for (int64_t j = 0; j < cols; j += 16) {
                __mmask16 m = mask16(cols - j);
                __m512 wv = load_f16(w + j, m);
                a0 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x0 + j), a0);
                a1 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x1 + j), a1);
                a2 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x2 + j), a2);
                a3 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x3 + j), a3);
            }
            Y[t * ldy + r] = _mm512_reduce_add_ps(a0);
            Y[(t + 1) * ldy + r] = _mm512_reduce_add_ps(a1);
            Y[(t + 2) * ldy + r] = _mm512_reduce_add_ps(a2);
            Y[(t + 3) * ldy + r] = _mm512_reduce_add_ps(a3);
        }
        for (; t < n; t++) Y[t * ldy + r] = dot_f16(w, X + t * cols, cols);
    }
}

/* ---- ternary BT2 ----------------------------------------------------------- */

/* Bit-identical to quantize_act_ref: same division, cvtps rounds half to even
 * under the default MXCSR, max is order-independent. */
static void quantize_act_avx512(act_q8 a, const float *x, int64_t cols) {
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    for (int64_t b = 0; b < cols / BT2_ACT_BLOCK; b++) {
        const float *xb = x + b * BT2_ACT_BLOCK; /* [64] */
        __m512 v[4];
        for (int k = 0; k < 4; k++) v[k] = _mm512_loadu_ps(xb + 16 * k);
        __m512 m = _mm512_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])),
                                 _mm512_max_ps(_mm512_abs_ps(v[2]), _mm512_abs_ps(v[3])));
        float amax = _mm512_reduce_max_ps(m);
        float s = amax > 0.0f ? amax / 127.0f : 1.0f;
        __m512 vs = _mm512_set1_ps(s);
        __m512i sum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m512i qi = _mm512_cvtps_epi32(_mm512_div_ps(v[k], vs));
            qi = _mm512_min_epi32(_mm512_max_epi32(qi, lo), hi);
            sum = _mm512_add_epi32(sum, qi);
            _mm_storeu_si128((__m128i *)(a.q + b * BT2_ACT_BLOCK + 16 * k), _mm512_cvtepi32_epi8(qi));
        }
        a.s[b] = s;
        a.sum[b] = _mm512_reduce_add_epi32(sum);
    }
}

/* sum_g scale[g] * (s[2g] sum[2g] + s[2g+1] sum[2g+1]) over nb groups: what the
 * code = w + 1 products over-count, subtracted once per row. */
static inline float bt2_correction(const float *scale, const float *s, const int32_t *sum, int64_t nb) {
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t g = 0; g < nb; g += 8) {
        __mmask16 mb = mask16(2 * (nb - g)), mg = mask16(nb - g);
        __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(mb, s + 2 * g),
                                 _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mb, sum + 2 * g)));
        __m512 sc = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(mg, scale + g));
        acc = _mm512_fmadd_ps(p, sc, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* GF(2) affine matrix moving bits s, s+1 of each byte to bits 0, 1 (others 0):
 * row i of the matrix (byte 7-i of the qword) selects the input bit of output bit i. */
#define BIT_PAIR(s) ((int64_t)((1ull << (s)) << 56 | (1ull << ((s) + 1)) << 48))

/* Codes of one 32-byte group as two 64-byte vectors: weights 0..63 and 64..127
 * (the group is broadcast to both halves; each half extracts its own bit pair). */
static inline void bt2_unpack(__m512i *w01, __m512i *w23, const uint8_t *grp) {
    const __m512i a01 = _mm512_set_epi64(BIT_PAIR(2), BIT_PAIR(2), BIT_PAIR(2), BIT_PAIR(2), BIT_PAIR(0), BIT_PAIR(0),
                                         BIT_PAIR(0), BIT_PAIR(0));
    const __m512i a23 = _mm512_set_epi64(BIT_PAIR(6), BIT_PAIR(6), BIT_PAIR(6), BIT_PAIR(6), BIT_PAIR(4), BIT_PAIR(4),
                                         BIT_PAIR(4), BIT_PAIR(4));
    __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)grp));
    *w01 = _mm512_gf2p8affine_epi64_epi8(x, a01, 0);
    *w23 = _mm512_gf2p8affine_epi64_epi8(x, a23, 0);
}

/* One group's contribution (lanes still to be summed): scale * (s0 * dot0 + s1 * dot1). */
static inline __m512 bt2_group(__m512 acc, __m512i w01, __m512i w23, const int8_t *q, const float *s, float scale) {
    __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w01, _mm512_loadu_si512(q));
    __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w23, _mm512_loadu_si512(q + 64));
    __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(d0), _mm512_set1_ps(s[0]));
    t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), _mm512_set1_ps(s[1]), t);
    return _mm512_fmadd_ps(t, _mm512_set1_ps(scale), acc);
}

static void gemv_bt2_avx512(float *y, const uint8_t *W, int64_t rows, int64_t cols, act_q8 a, int64_t r0, int64_t r1) {
    const int64_t nb = cols / BT2_GROUP;
    const float *scales = bt2_scales(W, rows, cols);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *qs = W + r * (cols / 4); /* [nb][32] */
        const float *sc = scales + r * nb;       /* [nb] */
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        int64_t g = 0;
        for (; g + 2 <= nb; g += 2) {
            __m512i w01, w23, v01, v23;
            bt2_unpack(&w01, &w23, qs + 32 * g);
            bt2_unpack(&v01, &v23, qs + 32 * g + 32);
            acc0 = bt2_group(acc0, w01, w23, a.q + 128 * g, a.s + 2 * g, sc[g]);
            acc1 = bt2_group(acc1, v01, v23, a.q + 128 * g + 128, a.s + 2 * g + 2, sc[g + 1]);
        }
        if (g < nb) {
            __m512i w01, w23;
            bt2_unpack(&w01, &w23, qs + 32 * g);
            acc0 = bt2_group(acc0, w01, w23, a.q + 128 * g, a.s + 2 * g, sc[g]);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) - bt2_correction(sc, a.s, a.sum, nb);
    }
}

#define BT2_GEMM_CHUNK 64 /* groups unpacked at a time: 8 KiB of codes on the stack */

/* Each row's codes are unpacked once per chunk into a byte buffer and reused by all n activation rows. */
static void gemm_bt2_avx512(float *Y, int64_t ldy, const uint8_t *W, int64_t rows, int64_t cols, const act_q8 *a,
                            int64_t n, int64_t r0, int64_t r1) {
    const int64_t nb = cols / BT2_GROUP;
    const float *scales = bt2_scales(W, rows, cols);
    _Alignas(64) uint8_t codes[BT2_GEMM_CHUNK * BT2_GROUP]; /* [chunk groups][128] */
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *qs = W + r * (cols / 4);
        const float *sc = scales + r * nb;
        for (int64_t g0 = 0; g0 < nb; g0 += BT2_GEMM_CHUNK) {
            int64_t ng = BRAID_MIN(BT2_GEMM_CHUNK, nb - g0);
            for (int64_t g = 0; g < ng; g++) {
                __m512i w01, w23;
                bt2_unpack(&w01, &w23, qs + 32 * (g0 + g));
                _mm512_store_si512(codes + 128 * g, w01);
                _mm512_store_si512(codes + 128 * g + 64, w23);
            }
            for (int64_t t = 0; t < n; t++) {
                const int8_t *q = a[t].q + 128 * g0;
                const float *s = a[t].s + 2 * g0;
                __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
                int64_t g = 0;
                for (; g + 2 <= ng; g += 2) {
                    acc0 = bt2_group(acc0, _mm512_load_si512(codes + 128 * g), _mm512_load_si512(codes + 128 * g + 64),
                                     q + 128 * g, s + 2 * g, sc[g0 + g]);
                    acc1 = bt2_group(acc1, _mm512_load_si512(codes + 128 * g + 128),
                                     _mm512_load_si512(codes + 128 * g + 192), q + 128 * g + 128, s + 2 * g + 2,
                                     sc[g0 + g + 1]);
                }
                if (g < ng)
                    acc0 = bt2_group(acc0, _mm512_load_si512(codes + 128 * g), _mm512_load_si512(codes + 128 * g + 64),
                                     q + 128 * g, s + 2 * g, sc[g0 + g]);
                float part = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) -
                             bt2_correction(sc + g0, s, a[t].sum + 2 * g0, ng);
                Y[t * ldy + r] = g0 == 0 ? part : Y[t * ldy + r] + part;
            }
        }
    }
}

/* ---- element-wise --------------------------------------------------------- */

/* exp(x), about 1 ulp (Cephes polynomial); scalef gives expf's overflow/underflow. */
static inline __m512 exp_ps(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static inline __m512 silu_ps(__m512 v) {
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), v))));
}

static inline float sum_squares(const float *x, int64_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        a0 = _mm512_fmadd_ps(v0, v0, a0);
        a1 = _mm512_fmadd_ps(v1, v1, a1);
    }
    for (; i < n; i += 16) {
        __m512 v = _mm512_maskz_loadu_ps(mask16(n - i), x + i);
        a0 = _mm512_fmadd_ps(v, v, a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

static void rmsnorm_avx512(float *y, const float *x, const float *w, int64_t n, float eps) {
    __m512 inv = _mm512_set1_ps(1.0f / sqrtf(sum_squares(x, n) / (float)n + eps));
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv);
        if (w) v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), v);
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

static void l2norm_avx512(float *y, const float *x, int64_t n, float scale) {
    __m512 k = _mm512_set1_ps(scale / fmaxf(sqrtf(sum_squares(x, n)), 1e-12f));
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), k));
    }
}

static void silu_avx512(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m, silu_ps(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static void swiglu_avx512(float *y, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 v = _mm512_mul_ps(silu_ps(_mm512_maskz_loadu_ps(m, g + i)), _mm512_maskz_loadu_ps(m, u + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

static void softmax_avx512(float *x, int64_t n) {
    if (n <= 0) return;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, mask16(n - i), x + i));
    __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 e = _mm512_maskz_mov_ps(m, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm)));
        sum = _mm512_add_ps(sum, e);
        _mm512_mask_storeu_ps(x + i, m, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

const kernel_table kernels_avx512 = {
    .name = "avx512",
    .gemv_f32 = gemv_f32_avx512,
    .gemm_f32 = gemm_f32_avx512,
    .gemv_f16 = gemv_f16_avx512,
    .gemm_f16 = gemm_f16_avx512,
    .quantize_act = quantize_act_avx512,
    .gemv_bt2 = gemv_bt2_avx512,
    .gemm_bt2 = gemm_bt2_avx512,
    .rmsnorm = rmsnorm_avx512,
    .l2norm = l2norm_avx512,
    .silu = silu_avx512,
    .swiglu = swiglu_avx512,
    .softmax = softmax_avx512,
    .conv1d_causal = conv1d_causal_ref,
    .delta_step = delta_step_ref,
};
