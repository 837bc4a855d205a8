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
#include "simd_exp_avx512.h"

/* Lanes [0, rem) of a 16-lane vector, rem in [0, 16]. */
static inline __mmask16 mask16(int64_t rem) { return (__mmask16)(rem >= 16 ? 0xffff : (1u << rem) - 1); }

/* ---- dense FP32 / FP16 -------------------------------------------------- */

/* Batch invariance: gemm_* must give, for every activation row, exactly the
 * bits gemv_* gives for that row alone (an eval of n tokens equals n evals of
 * one). So both run the same per-row operation sequence, dot_*_rows: NR rows
 * of X against one weight row, each weight vector loaded once and fed to NR
 * independent accumulator sets that each do what the single-row dot does.
 * NR is a compile-time constant at every call site (the loops unroll and the
 * accumulators live in registers). */

/* y[t * ldy] = W row w · X row t for t in [0, NR); four accumulators over 64-wide steps. */
static inline __attribute__((always_inline)) void dot_f32_rows(float *y, int64_t ldy, const float *w, const float *X,
                                                               int64_t cols, const int NR) {
    __m512 acc[4][4]; /* [row][accumulator] */
#pragma GCC unroll 4
    for (int t = 0; t < NR; t++)
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) acc[t][k] = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 64 <= cols; j += 64) {
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m512 wv = _mm512_loadu_ps(w + j + 16 * k);
#pragma GCC unroll 4
            for (int t = 0; t < NR; t++)
                acc[t][k] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(X + t * cols + j + 16 * k), acc[t][k]);
        }
    }
    for (; j < cols; j += 16) {
        __mmask16 m = mask16(cols - j);
        __m512 wv = _mm512_maskz_loadu_ps(m, w + j);
#pragma GCC unroll 4
        for (int t = 0; t < NR; t++)
            acc[t][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, X + t * cols + j), acc[t][0]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < NR; t++)
        y[t * ldy] = _mm512_reduce_add_ps(
            _mm512_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]), _mm512_add_ps(acc[t][2], acc[t][3])));
}

static void gemv_f32_avx512(float *y, const float *W, const float *x, int64_t cols, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) dot_f32_rows(y + r, 0, W + r * cols, x, cols, 1);
}

static void gemm_f32_avx512(float *Y, int64_t ldy, const float *W, const float *X, int64_t n, int64_t cols, int64_t r0,
                            int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const float *w = W + r * cols; /* [cols] */
        int64_t t = 0;
        for (; t + 4 <= n; t += 4) dot_f32_rows(Y + t * ldy + r, ldy, w, X + t * cols, cols, 4);
        for (; t < n; t++) dot_f32_rows(Y + t * ldy + r, ldy, w, X + t * cols, cols, 1);
    }
}

static inline __m512 load_f16(const uint16_t *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

/* As dot_f32_rows with W in half precision: two accumulators over 32-wide steps. */
static inline __attribute__((always_inline)) void dot_f16_rows(float *y, int64_t ldy, const uint16_t *w,
                                                               const float *X, int64_t cols, const int NR) {
    __m512 acc[4][2]; /* [row][accumulator] */
#pragma GCC unroll 4
    for (int t = 0; t < NR; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 32 <= cols; j += 32) {
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++) {
            __m512 wv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + j + 16 * k)));
#pragma GCC unroll 4
            for (int t = 0; t < NR; t++)
                acc[t][k] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(X + t * cols + j + 16 * k), acc[t][k]);
        }
    }
    for (; j < cols; j += 16) {
        __mmask16 m = mask16(cols - j);
        __m512 wv = load_f16(w + j, m);
#pragma GCC unroll 4
        for (int t = 0; t < NR; t++)
            acc[t][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, X + t * cols + j), acc[t][0]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < NR; t++) y[t * ldy] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]));
}

static void gemv_f16_avx512(float *y, const uint16_t *W, const float *x, int64_t cols, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) dot_f16_rows(y + r, 0, W + r * cols, x, cols, 1);
}

static void gemm_f16_avx512(float *Y, int64_t ldy, const uint16_t *W, const float *X, int64_t n, int64_t cols,
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

/* GF(2) affine matrix moving bits s, s+1 of each byte to bits 0, 1 (others 0):
 * row i of the matrix (byte 7-i of the qword) selects the input bit of output bit i. */
#define BIT_PAIR(s) ((int64_t)((1ull << (s)) << 56 | (1ull << ((s) + 1)) << 48))

/* Codes of one 32-byte group as two 64-byte vectors laid out so that one dpbusd chain
 * keeps the group's two 64-blocks apart, block 0 in dword lanes 0-7 and block 1 in 8-15:
 *   wa = weights 0..31 | 64..95,   wb = weights 32..63 | 96..127
 * (the group is broadcast to both halves; each half extracts its own bit pair). */
static inline void bt2_unpack(__m512i *wa, __m512i *wb, const uint8_t *grp) {
    const __m512i ma = _mm512_set_epi64(BIT_PAIR(4), BIT_PAIR(4), BIT_PAIR(4), BIT_PAIR(4), BIT_PAIR(0), BIT_PAIR(0),
                                        BIT_PAIR(0), BIT_PAIR(0));
    const __m512i mb = _mm512_set_epi64(BIT_PAIR(6), BIT_PAIR(6), BIT_PAIR(6), BIT_PAIR(6), BIT_PAIR(2), BIT_PAIR(2),
                                        BIT_PAIR(2), BIT_PAIR(2));
    __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)grp));
    *wa = _mm512_gf2p8affine_epi64_epi8(x, ma, 0);
    *wb = _mm512_gf2p8affine_epi64_epi8(x, mb, 0);
}

/* The activation operands of group g in bt2_unpack's layout: qa = q 0..31 | 64..95,
 * qb = q 32..63 | 96..127 of the group, sv = s[2g] in lanes 0-7 | s[2g+1] in 8-15. */
typedef struct {
    __m512i qa, qb;
    __m512 sv;
} bt2_act_group;

static inline bt2_act_group bt2_act_at(const act_q8 *a, int64_t g) {
    const int8_t *q = a->q + 128 * g;
    bt2_act_group o;
    o.qa = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)q)),
                              _mm256_loadu_si256((const __m256i *)(q + 64)), 1);
    o.qb = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q + 32))),
                              _mm256_loadu_si256((const __m256i *)(q + 96)), 1);
    o.sv = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(a->s[2 * g]), _mm512_set1_ps(a->s[2 * g + 1]));
    return o;
}

/* Per-group activation terms P[g] = s[2g] sum[2g] + s[2g+1] sum[2g+1] for the
 * 16 groups g0..g0+15 (lanes at or past nb are 0): the code = w + 1 products
 * over-count row r by sum_g scale[r,g] P[g]. */
static inline __m512 bt2_overcount(const float *s, const int32_t *sum, int64_t g0, int64_t nb) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __mmask16 m0 = mask16(2 * (nb - g0)), m1 = mask16(BRAID_MAX(0, 2 * (nb - g0) - 16));
    __m512 p0 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m0, s + 2 * g0),
                              _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m0, sum + 2 * g0)));
    __m512 p1 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m1, s + 2 * g0 + 16),
                              _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m1, sum + 2 * g0 + 16)));
    return _mm512_add_ps(_mm512_permutex2var_ps(p0, even, p1), _mm512_permutex2var_ps(p0, odd, p1));
}

/* Weight rows per gemv tile (see gemv_bt2_avx512). */
#define BT2_GEMV_ROWS 4

/* Group g of R weight rows x T activation rows into accumulator h (0 or 1):
 *   d = dpbusd(dpbusd(0, wa, qa), wb, qb)        lanes 0-7: block 2g, 8-15: block 2g+1 (exact)
 *   acc += scale[g] * (float(d) * sv)
 * One integer chain, one convert, one multiply and one FMA per group and row (the
 * two-chain form before needed two converts and two FMAs). pre: the operands of every
 * group precomputed (gemv), else NULL and built here once per activation row (the same
 * values, so the same bits). */
static inline __attribute__((always_inline)) void bt2_tile_group(__m512 acc[4][4][2], const uint8_t *W,
                                                                 const float *scales, int64_t cols, const act_q8 *a,
                                                                 const bt2_act_group *pre, int64_t r, int64_t g,
                                                                 const int h, const int R, const int T) {
    const int64_t nb = cols / BT2_GROUP;
    __m512i wa[4], wb[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) bt2_unpack(&wa[i], &wb[i], W + (r + i) * (cols / 4) + 32 * g);
    if (T == 1 && R == BT2_GEMV_ROWS) { /* gemv's tiles (and gemm's odd last row): see gemv_bt2_avx512 */
        const uint8_t *ahead = W + (r + 2 * R) * (cols / 4) + R * 32 * g;
        for (int k = 0; k < R / 2; k++) _mm_prefetch((const char *)ahead + 64 * k, _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        const bt2_act_group o = pre ? pre[g] : bt2_act_at(&a[t], g);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wa[i], o.qa);
            d = _mm512_dpbusd_epi32(d, wb[i], o.qb);
            __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(d), o.sv);
            acc[i][t][h] = _mm512_fmadd_ps(u, _mm512_set1_ps(scales[(r + i) * nb + g]), acc[i][t][h]);
        }
    }
}

/* Batch invariance (see the dense section): gemv_bt2 and gemm_bt2 both run
 * bt2_tile, whose per-(row, activation row) operation sequence is fixed:
 *   acc0 = -sum_{16-group chunks} scale[g..] * P[g..]        (lanes = groups)
 *   acc1 = 0
 *   for g: acc_{g%2} += scale[g] * (float(d_g) * sv_g)        (lanes = 8-weight partial sums,
 *                                                              0-7 block 2g, 8-15 block 2g+1)
 *   y = reduce_add(acc0 + acc1)
 * Two accumulators (even / odd groups) halve the FMA dependency chain of a
 * row. P and the per-group operands depend on the activation row only: gemv
 * passes them precomputed (T = 1; the values bt2_overcount and bt2_act_at
 * give, so the same bits), gemm passes NULL. R weight rows x T activation rows
 * are processed together (each code vector unpacked once for T rows, each
 * activation vector loaded once for R rows); R and T are compile-time
 * constants at every call site and do not change any row's arithmetic, so
 * neither do the tile shapes or the thread split. */
static inline __attribute__((always_inline)) void bt2_tile(float *Y, int64_t ldy, const uint8_t *W, const float *scales,
                                                           int64_t cols, const act_q8 *a, const __m512 *pre,
                                                           const bt2_act_group *pre_g, int64_t r, const int R,
                                                           const int T) {
    const int64_t nb = cols / BT2_GROUP;
    __m512 acc[4][4][2]; /* [weight row][activation row][group parity] */
    if (T == 1 && R == BT2_GEMV_ROWS) { /* gemv: the scales of the tile two ahead, a second stream */
        const char *sa = (const char *)(scales + (r + 2 * R) * nb);
        for (int64_t o = 0; o < R * nb * 4; o += 64) _mm_prefetch(sa + o, _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[i][t][0] = acc[i][t][1] = _mm512_setzero_ps();
    for (int64_t g = 0; g < nb; g += 16) {
        __mmask16 m = mask16(nb - g);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            __m512 p = pre ? pre[g / 16] : bt2_overcount(a[t].s, a[t].sum, g, nb);
#pragma GCC unroll 4
            for (int i = 0; i < R; i++)
                acc[i][t][0] =
                    _mm512_fnmadd_ps(_mm512_maskz_loadu_ps(m, scales + (r + i) * nb + g), p, acc[i][t][0]);
        }
    }
    int64_t g = 0;
    for (; g + 2 <= nb; g += 2) {
        bt2_tile_group(acc, W, scales, cols, a, pre_g, r, g, 0, R, T);
        bt2_tile_group(acc, W, scales, cols, a, pre_g, r, g + 1, 1, R, T);
    }
    if (g < nb) bt2_tile_group(acc, W, scales, cols, a, pre_g, r, g, 0, R, T);
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            Y[t * ldy + r + i] = _mm512_reduce_add_ps(_mm512_add_ps(acc[i][t][0], acc[i][t][1]));
}

/* gemv precomputes the over-count terms and the per-group operands once per
 * call for up to this many 16-group chunks (cols <= 8192, 12 KB of stack), else
 * builds them per tile as gemm does (the same values). */
#define BT2_PRE_CHUNKS 4

/* BT2_GEMV_ROWS weight rows at a time (one activation row): four independent
 * FMA chains and the activation operands shared. Four interleaved row streams
 * alone defeat the hardware prefetcher (0.5-0.65x the one-row loop from
 * memory, single thread), so bt2_tile_group also prefetches the tile two tiles
 * ahead as one address-ordered stream, R/2 lines per group step, the rate the
 * tile consumes its own bytes, and bt2_tile prefetches that tile's scales (a
 * second stream at the end of the tensor; +3-4% from memory, 2 threads). */
static void gemv_bt2_avx512(float *y, const uint8_t *W, int64_t rows, int64_t cols, act_q8 a, int64_t r0, int64_t r1) {
    const float *scales = bt2_scales(W, rows, cols);
    const int64_t nb = cols / BT2_GROUP;
    __m512 pre[BT2_PRE_CHUNKS];                       /* bt2_overcount of each 16-group chunk */
    bt2_act_group pre_g[16 * BT2_PRE_CHUNKS];         /* bt2_act_at of each group */
    const __m512 *p = NULL;
    const bt2_act_group *pg = NULL;
    if (nb <= 16 * BT2_PRE_CHUNKS) {
        for (int64_t g = 0; g < nb; g += 16) pre[g / 16] = bt2_overcount(a.s, a.sum, g, nb);
        for (int64_t g = 0; g < nb; g++) pre_g[g] = bt2_act_at(&a, g);
        p = pre, pg = pre_g;
    }
    int64_t r = r0;
    for (; r + BT2_GEMV_ROWS <= r1; r += BT2_GEMV_ROWS)
        bt2_tile(y, 0, W, scales, cols, &a, p, pg, r, BT2_GEMV_ROWS, 1);
    for (; r < r1; r++) bt2_tile(y, 0, W, scales, cols, &a, p, pg, r, 1, 1);
}

/* Activation rows in tiles of about BT2_TILE_BYTES of int8 (kept in L2 while
 * every weight row of the range passes over them); within a tile, 4 weight
 * rows x 2 activation rows at a time. */
#define BT2_TILE_BYTES (256 << 10)

static void gemm_bt2_avx512(float *Y, int64_t ldy, const uint8_t *W, int64_t rows, int64_t cols, const act_q8 *a,
                            int64_t n, int64_t r0, int64_t r1) {
    const float *scales = bt2_scales(W, rows, cols);
    const int64_t tile = BRAID_MAX(2, BT2_TILE_BYTES / cols / 2 * 2);
    for (int64_t t0 = 0; t0 < n; t0 += tile) {
        const int64_t t1 = BRAID_MIN(n, t0 + tile);
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            int64_t t = t0;
            for (; t + 2 <= t1; t += 2) bt2_tile(Y + t * ldy, ldy, W, scales, cols, a + t, NULL, NULL, r, 4, 2);
            if (t < t1) bt2_tile(Y + t * ldy, ldy, W, scales, cols, a + t, NULL, NULL, r, 4, 1);
        }
        for (; r < r1; r++) {
            int64_t t = t0;
            for (; t + 2 <= t1; t += 2) bt2_tile(Y + t * ldy, ldy, W, scales, cols, a + t, NULL, NULL, r, 1, 2);
            if (t < t1) bt2_tile(Y + t * ldy, ldy, W, scales, cols, a + t, NULL, NULL, r, 1, 1);
        }
    }
}

/* ---- element-wise --------------------------------------------------------- */

/* exp(x): exp16 of simd_exp_avx512.h (Cephes polynomial, about 1 ulp; scalef gives expf's
 * overflow/underflow; NaN passes). */
static inline __m512 exp_ps(__m512 x) { return exp16(x); }

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

/* One gated delta-rule step (kernels.h); rows of S in 16-lane chunks, d_k % 16 == 0, else _ref. */
static void delta_step_avx512(float *o, float *S, const float *P, const float *q, const float *k, const float *v,
                              float beta, float alpha, int64_t d_k, int64_t d_v) {
    if (d_k % 16 != 0) {
        delta_step_ref(o, S, P, q, k, v, beta, alpha, d_k, d_v);
        return;
    }
    const __m512 va = _mm512_set1_ps(alpha);
    for (int64_t i = 0; i < d_v; i++) {
        float *Si = S + i * d_k; /* row i of S: [d_k] */
        const float *Pi = P + i * d_k;
        __m512 sk = _mm512_setzero_ps();
        for (int64_t j = 0; j < d_k; j += 16) sk = _mm512_fmadd_ps(_mm512_loadu_ps(Pi + j), _mm512_loadu_ps(k + j), sk);
        __m512 delta = _mm512_set1_ps(beta * (v[i] - alpha * _mm512_reduce_add_ps(sk)));
        __m512 sq = _mm512_setzero_ps();
        for (int64_t j = 0; j < d_k; j += 16) {
            __m512 s = _mm512_fmadd_ps(va, _mm512_loadu_ps(Pi + j), _mm512_mul_ps(delta, _mm512_loadu_ps(k + j)));
            _mm512_storeu_ps(Si + j, s);
            sq = _mm512_fmadd_ps(s, _mm512_loadu_ps(q + j), sq);
        }
        o[i] = _mm512_reduce_add_ps(sq);
    }
}

/* rows_axpy and outer_momentum (kernels.h): _ref's operations lane by lane (separate multiply
 * and add, never fmadd), so _ref's bits; the columns in 16-lane steps, a masked tail. */
static void rows_axpy_avx512(float *y, const float *w, const float *V, int64_t n, int64_t d) {
    int64_t c = 0;
    for (; c + 64 <= d; c += 64) { /* four column vectors kept in registers across the rows */
        __m512 y0 = _mm512_loadu_ps(y + c), y1 = _mm512_loadu_ps(y + c + 16), y2 = _mm512_loadu_ps(y + c + 32),
               y3 = _mm512_loadu_ps(y + c + 48);
        for (int64_t i = 0; i < n; i++) {
            const float *Vi = V + i * d + c;
            const __m512 wi = _mm512_set1_ps(w[i]);
            y0 = _mm512_add_ps(y0, _mm512_mul_ps(wi, _mm512_loadu_ps(Vi)));
            y1 = _mm512_add_ps(y1, _mm512_mul_ps(wi, _mm512_loadu_ps(Vi + 16)));
            y2 = _mm512_add_ps(y2, _mm512_mul_ps(wi, _mm512_loadu_ps(Vi + 32)));
            y3 = _mm512_add_ps(y3, _mm512_mul_ps(wi, _mm512_loadu_ps(Vi + 48)));
        }
        _mm512_storeu_ps(y + c, y0), _mm512_storeu_ps(y + c + 16, y1);
        _mm512_storeu_ps(y + c + 32, y2), _mm512_storeu_ps(y + c + 48, y3);
    }
    for (; c < d; c += 16) {
        const __mmask16 m = mask16(d - c);
        __m512 yc = _mm512_maskz_loadu_ps(m, y + c);
        for (int64_t i = 0; i < n; i++)
            yc = _mm512_add_ps(yc, _mm512_mul_ps(_mm512_set1_ps(w[i]), _mm512_maskz_loadu_ps(m, V + i * d + c)));
        _mm512_mask_storeu_ps(y + c, m, yc);
    }
}

static void outer_momentum_avx512(float *S, float *M, const float *u, const float *v, int64_t m, int64_t n, float eta,
                                  float theta, float keep) {
    const __m512 ve = _mm512_set1_ps(eta), vt = _mm512_set1_ps(theta), vk = _mm512_set1_ps(keep);
    for (int64_t a = 0; a < m; a++) {
        float *Sa = S + a * n, *Ma = M + a * n; /* row a: [n] */
        const __m512 ua = _mm512_set1_ps(u[a]);
        for (int64_t b = 0; b < n; b += 16) {
            const __mmask16 k = mask16(n - b);
            __m512 g = _mm512_mul_ps(vt, _mm512_mul_ps(ua, _mm512_maskz_loadu_ps(k, v + b)));
            __m512 s = _mm512_sub_ps(_mm512_mul_ps(ve, _mm512_maskz_loadu_ps(k, Sa + b)), g);
            _mm512_mask_storeu_ps(Sa + b, k, s);
            _mm512_mask_storeu_ps(Ma + b, k, _mm512_add_ps(_mm512_mul_ps(vk, _mm512_maskz_loadu_ps(k, Ma + b)), s));
        }
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
    .delta_step = delta_step_avx512,
    .rows_axpy = rows_axpy_avx512,
    .outer_momentum = outer_momentum_avx512,
    .delta_step_bwd = delta_step_bwd_avx512,
};
