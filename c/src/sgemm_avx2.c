/*
 * sgemm_avx2.c — the AVX2 + FMA micro-kernel and packing of sgemm (sgemm.h).
 * Compiled with -march=haswell; only reached after cpu.c has checked the CPU.
 *
 * Tile 6 x 16: 12 ymm accumulators (6 rows x 2 vectors of 8 columns), the two
 * B vectors of the step and one broadcast of A — 15 of the 16 registers. Per
 * k step: 2 loads of B, 6 broadcasts, 12 FMAs (the classic Haswell shape,
 * which keeps two FMA pipes busy with latency 4-5 covered by 12 chains).
 */
#include <immintrin.h>

#include "common.h"
#include "sgemm.h"

#define MR 6
#define NR 16
#define MC (8 * MR) /* A block: 8 panels, 48 KB at kc = 256 (L2) */
#define KC 256
#define NC 512      /* B block: 512 KB at kc = 256 (L2) */

/* Lane mask for maskload/maskstore: lanes [0, rem) set, rem clamped to [0, 8]. */
static inline __m256i mask8(int64_t rem) {
    int32_t n = (int32_t)(rem < 0 ? 0 : rem > 8 ? 8 : rem);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Floats p[0, rem), zero beyond (never reads past rem). */
static inline __m256 load8(const float *p, int64_t rem) {
    return rem >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask8(rem));
}

/* In-register transpose: r[i] lane j <-> r[j] lane i. */
static inline __attribute__((always_inline)) void transpose8(__m256 r[8]) {
    __m256 t[8], s[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* s[4h+c], in each 128-bit lane L: rows 4h..4h+3 of column 4L + c */
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        s[4 * h] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xee);
        s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
    }
}

/* ---- packing ----------------------------------------------------------------------- */

/* Ap[ceil(m/6)][ldp], each panel [kc][6], m <= MC. Stores are 8 wide at a 6-float
 * pitch: lanes 6 and 7 (zero) spill into the next step, which is written later, or
 * the panel's slack. */
static void pack_a_avx2(float *Ap, int64_t ldp, const float *A, int64_t lda, int trans_a, int64_t m, int64_t kc) {
    int64_t np = (m + MR - 1) / MR;
    if (trans_a) { /* A [K, M]: row k holds the m values of step k contiguously (whole cache lines) */
        __m256i rows[MC / MR];
        for (int64_t p = 0; p < np; p++) rows[p] = mask8(BRAID_MIN(MR, m - p * MR));
        for (int64_t k = 0; k < kc; k++)
            for (int64_t p = 0; p < np; p++)
                _mm256_storeu_ps(Ap + p * ldp + k * MR, _mm256_maskload_ps(A + k * lda + p * MR, rows[p]));
        return;
    }
    /* A [M, K]: rows are contiguous in k; per panel, transpose 8 k steps of its rows at a time */
    for (int64_t p = 0; p < np; p++) {
        const float *a = A + p * MR * lda;
        float *panel = Ap + p * ldp; /* [kc][6] */
        int64_t rows = BRAID_MIN(MR, m - p * MR);
        for (int64_t k0 = 0; k0 < kc; k0 += 8) {
            __m256 r[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) r[i] = i < rows ? load8(a + i * lda + k0, kc - k0) : _mm256_setzero_ps();
            transpose8(r);
            int64_t steps = BRAID_MIN(8, kc - k0);
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                if (i < steps) _mm256_storeu_ps(panel + (k0 + i) * MR, r[i]);
        }
    }
}

/* Bp[ceil(n/16)][kc][16], 64-byte aligned. */
static void pack_b_avx2(float *Bp, const float *B, int64_t ldb, int trans_b, int64_t kc, int64_t n) {
    for (int64_t j0 = 0; j0 < n; j0 += NR) {
        float *panel = Bp + j0 * kc; /* [kc][16] */
        if (!trans_b) { /* B [K, N]: copy 16 columns per step */
            const float *b = B + j0;
            for (int64_t k = 0; k < kc; k++) {
                _mm256_store_ps(panel + k * NR, load8(b + k * ldb, n - j0));
                _mm256_store_ps(panel + k * NR + 8, load8(b + k * ldb + 8, n - j0 - 8));
            }
            continue;
        }
        /* B [N, K]: each column of op(B) is a contiguous row; transpose 8 x 8 blocks */
        for (int h = 0; h < 2; h++) {
            int64_t jh = j0 + 8 * h, cols = n - jh; /* valid columns in this half */
            for (int64_t k0 = 0; k0 < kc; k0 += 8) {
                __m256 r[8];
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++)
                    r[i] = i < cols ? load8(B + (jh + i) * ldb + k0, kc - k0) : _mm256_setzero_ps();
                transpose8(r);
                int64_t steps = BRAID_MIN(8, kc - k0);
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++)
                    if (i < steps) _mm256_store_ps(panel + (k0 + i) * NR + 8 * h, r[i]);
            }
        }
    }
}

/* ---- micro-kernel ---------------------------------------------------------------------- */

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

#define ZERO(r) __m256 c##r##a = _mm256_setzero_ps(), c##r##b = _mm256_setzero_ps();
#define STEP(r)                                                                                                       \
    {                                                                                                                 \
        __m256 a = _mm256_broadcast_ss(Ap + r);                                                                       \
        c##r##a = _mm256_fmadd_ps(a, b0, c##r##a);                                                                    \
        c##r##b = _mm256_fmadd_ps(a, b1, c##r##b);                                                                    \
    }
#define PREFETCH(r)                                                                                                   \
    if (r < m) _mm_prefetch((const char *)(C + r * ldc), _MM_HINT_T0);
/* C row r = alpha * acc + beta * C; full rows use plain loads/stores, edge rows masks n0 / n1. */
#define UPDATE(r)                                                                                                     \
    if (r < m) {                                                                                                      \
        float *y = C + r * ldc;                                                                                       \
        __m256 y0 = _mm256_mul_ps(va, c##r##a), y1 = _mm256_mul_ps(va, c##r##b);                                      \
        if (full) {                                                                                                   \
            if (beta != 0) {                                                                                          \
                y0 = _mm256_fmadd_ps(va, c##r##a, _mm256_mul_ps(vb, _mm256_loadu_ps(y)));                             \
                y1 = _mm256_fmadd_ps(va, c##r##b, _mm256_mul_ps(vb, _mm256_loadu_ps(y + 8)));                         \
            }                                                                                                         \
            _mm256_storeu_ps(y, y0);                                                                                  \
            _mm256_storeu_ps(y + 8, y1);                                                                              \
        } else {                                                                                                      \
            if (beta != 0) {                                                                                          \
                y0 = _mm256_fmadd_ps(va, c##r##a, _mm256_mul_ps(vb, _mm256_maskload_ps(y, n0)));                      \
                y1 = _mm256_fmadd_ps(va, c##r##b, _mm256_mul_ps(vb, _mm256_maskload_ps(y + 8, n1)));                  \
            }                                                                                                         \
            _mm256_maskstore_ps(y, n0, y0);                                                                           \
            _mm256_maskstore_ps(y + 8, n1, y1);                                                                       \
        }                                                                                                             \
    }

static void kernel_avx2(float *C, int64_t ldc, const float *Ap, const float *Bp, int64_t kc, int64_t m, int64_t n,
                        float alpha, float beta) {
    ROWS(ZERO)
    ROWS(PREFETCH) /* the C tile arrives while the FMAs run */
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8);
        ROWS(STEP)
        Ap += MR;
        Bp += NR;
    }
    int full = n == NR;
    __m256i n0 = mask8(n), n1 = mask8(n - 8);
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    ROWS(UPDATE)
}

const sgemm_isa sgemm_isa_avx2 = {"avx2", MR, NR, MC, KC, NC, pack_a_avx2, pack_b_avx2, kernel_avx2};
