/*
 * sgemm_avx512.c — the AVX-512 micro-kernel and packing of sgemm (sgemm.h).
 * Compiled with -march=x86-64-v4; only reached after cpu.c has checked the
 * CPU and OS.
 *
 * Tile 14 x 32: 28 zmm accumulators (14 rows x 2 vectors of 16 columns), the
 * two B vectors of the step and one broadcast of A — 31 of the 32 registers.
 * Per k step: 2 loads of B, 14 broadcasts of A, 28 FMAs, so the two FMA pipes
 * of Zen 4/5 or Skylake-X stay busy while the loads use under half of the
 * load ports (measured alone, the kernel runs at the FMA roofline). The 14 broadcasts
 * come from the A panel (14 x kc, 14 KB at kc = 256) that sits in L1; B
 * panels (kc x 32, 32 KB) stream from the B block in L2.
 */
#include <immintrin.h>

#include "common.h"
#include "sgemm.h"

#define MR 14
#define NR 32
#define MC (4 * MR) /* A block: 4 panels, 56 KB at kc = 256 (L2) */
#define KC 256
#define NC 512      /* B block: 512 KB at kc = 256 (L2) */

/* Lanes [0, rem) of a 16-lane vector, rem clamped to [0, 16]. */
static inline __mmask16 mask16(int64_t rem) {
    return (__mmask16)(rem >= 16 ? 0xffff : rem <= 0 ? 0 : (1u << rem) - 1);
}

/* In-register transpose: r[i] lane j <-> r[j] lane i. */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4i+c], in each 128-bit lane L: rows 4i..4i+3 of column 4L + c */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    /* gather the four 128-bit lanes of each column: lanes 0,2 then 1,3, twice */
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
        t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd);
        r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xdd);
    }
}

/* ---- packing ----------------------------------------------------------------------- */

/* Ap[ceil(m/14)][ldp], each panel [kc][14], m <= MC. Stores are 16 wide at a 14-float
 * pitch: lanes 14 and 15 (zero) spill into the next step, which is written later, or
 * the panel's slack. */
static void pack_a_avx512(float *Ap, int64_t ldp, const float *A, int64_t lda, int trans_a, int64_t m, int64_t kc) {
    int64_t np = (m + MR - 1) / MR;
    if (trans_a) { /* A [K, M]: row k holds the m values of step k contiguously (whole cache lines) */
        __mmask16 rows[MC / MR];
        for (int64_t p = 0; p < np; p++) rows[p] = mask16(BRAID_MIN(MR, m - p * MR));
        for (int64_t k = 0; k < kc; k++)
            for (int64_t p = 0; p < np; p++)
                _mm512_storeu_ps(Ap + p * ldp + k * MR, _mm512_maskz_loadu_ps(rows[p], A + k * lda + p * MR));
        return;
    }
    /* A [M, K]: rows are contiguous in k; per panel, transpose 16 k steps of its rows at a time */
    for (int64_t p = 0; p < np; p++) {
        const float *a = A + p * MR * lda;
        float *panel = Ap + p * ldp; /* [kc][14] */
        int64_t rows = BRAID_MIN(MR, m - p * MR);
        for (int64_t k0 = 0; k0 < kc; k0 += 16) {
            __mmask16 km = mask16(kc - k0);
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = i < rows ? _mm512_maskz_loadu_ps(km, a + i * lda + k0) : _mm512_setzero_ps();
            transpose16(r);
            int64_t steps = BRAID_MIN(16, kc - k0);
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                if (i < steps) _mm512_storeu_ps(panel + (k0 + i) * MR, r[i]);
        }
    }
}

/* Bp[ceil(n/32)][kc][32], 64-byte aligned. */
static void pack_b_avx512(float *Bp, const float *B, int64_t ldb, int trans_b, int64_t kc, int64_t n) {
    for (int64_t j0 = 0; j0 < n; j0 += NR) {
        float *panel = Bp + j0 * kc; /* [kc][32] */
        if (!trans_b) { /* B [K, N]: copy 32 columns per step */
            __mmask16 m0 = mask16(n - j0), m1 = mask16(n - j0 - 16);
            const float *b = B + j0;
            for (int64_t k = 0; k < kc; k++) {
                _mm512_store_ps(panel + k * NR, _mm512_maskz_loadu_ps(m0, b + k * ldb));
                _mm512_store_ps(panel + k * NR + 16, _mm512_maskz_loadu_ps(m1, b + k * ldb + 16));
            }
            continue;
        }
        /* B [N, K]: each column of op(B) is a contiguous row; transpose 16 x 16 blocks */
        for (int h = 0; h < 2; h++) {
            int64_t jh = j0 + 16 * h, cols = n - jh; /* valid columns in this half */
            for (int64_t k0 = 0; k0 < kc; k0 += 16) {
                __mmask16 km = mask16(kc - k0);
                __m512 r[16];
#pragma GCC unroll 16
                for (int i = 0; i < 16; i++)
                    r[i] = i < cols ? _mm512_maskz_loadu_ps(km, B + (jh + i) * ldb + k0) : _mm512_setzero_ps();
                transpose16(r);
                int64_t steps = BRAID_MIN(16, kc - k0);
#pragma GCC unroll 16
                for (int i = 0; i < 16; i++)
                    if (i < steps) _mm512_store_ps(panel + (k0 + i) * NR + 16 * h, r[i]);
            }
        }
    }
}

/* ---- micro-kernel ---------------------------------------------------------------------- */

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)

#define ZERO(r) __m512 c##r##a = _mm512_setzero_ps(), c##r##b = _mm512_setzero_ps();
#define STEP(r)                                                                                                       \
    {                                                                                                                 \
        __m512 a = _mm512_set1_ps(Ap[r]);                                                                             \
        c##r##a = _mm512_fmadd_ps(a, b0, c##r##a);                                                                    \
        c##r##b = _mm512_fmadd_ps(a, b1, c##r##b);                                                                    \
    }
#define PREFETCH(r)                                                                                                   \
    if (r < m) {                                                                                                      \
        _mm_prefetch((const char *)(C + r * ldc), _MM_HINT_T0);                                                       \
        _mm_prefetch((const char *)(C + r * ldc + NR - 1), _MM_HINT_T0);                                              \
    }
/* C row r = alpha * acc + beta * C on the columns of masks n0 / n1. */
#define UPDATE(r)                                                                                                     \
    if (r < m) {                                                                                                      \
        float *y = C + r * ldc;                                                                                       \
        if (beta == 0) {                                                                                              \
            _mm512_mask_storeu_ps(y, n0, _mm512_mul_ps(va, c##r##a));                                                 \
            _mm512_mask_storeu_ps(y + 16, n1, _mm512_mul_ps(va, c##r##b));                                            \
        } else {                                                                                                      \
            __m512 y0 = _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(n0, y));                                              \
            __m512 y1 = _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(n1, y + 16));                                         \
            _mm512_mask_storeu_ps(y, n0, _mm512_fmadd_ps(va, c##r##a, y0));                                           \
            _mm512_mask_storeu_ps(y + 16, n1, _mm512_fmadd_ps(va, c##r##b, y1));                                      \
        }                                                                                                             \
    }

static void kernel_avx512(float *C, int64_t ldc, const float *Ap, const float *Bp, int64_t kc, int64_t m, int64_t n,
                          float alpha, float beta) {
    ROWS(ZERO)
    ROWS(PREFETCH) /* the C tile arrives while the FMAs run */
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(Bp), b1 = _mm512_load_ps(Bp + 16);
        ROWS(STEP)
        Ap += MR;
        Bp += NR;
    }
    __mmask16 n0 = mask16(n), n1 = mask16(n - 16);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    ROWS(UPDATE)
}

const sgemm_isa sgemm_isa_avx512 = {"avx512", MR, NR, MC, KC, NC, pack_a_avx512, pack_b_avx512, kernel_avx512};
