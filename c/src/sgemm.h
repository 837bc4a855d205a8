/*
 * sgemm.h — FP32 GEMM for the trainer's linear layers, forward and backward (private).
 *
 * The trainer's calls (T tokens, W [out, in] row-major):
 *   forward  Y[T,out]  = X[T,in] * W^T            sgemm(0, 1, ...)
 *   dX       dX[T,in]  = dY[T,out] * W            sgemm(0, 0, ...), beta = 1 to accumulate
 *   dW       dW[out,in] += dY^T * X               sgemm(1, 0, ..., beta = 1)
 *
 * Built the GotoBLAS/BLIS way (sgemm.c): op(A) and op(B) are packed into
 * contiguous panels (the packing absorbs the transposes), a register-blocked
 * micro-kernel of one ISA (sgemm_avx512.c, sgemm_avx2.c, or the portable one in
 * sgemm.c) does the FMAs, K is blocked for the caches, and the pool threads
 * share out tiles of C (never K). Every element of C is summed over k in the
 * same order whichever thread computes its tile, so the bits do not depend on
 * the thread count or the timing; they may differ between ISAs (FMA vs
 * separate multiply-add).
 *
 * Scratch: each pool thread packs A into its own two blocks (the one in use
 * and the next, ~115 KB) and the threads of a call share one double-buffered
 * packed B block (~1 MB). Both are allocated by the first call that needs
 * them and kept for the life of the process (grown only if an ISA with bigger
 * blocks is selected later, never freed), so nothing is allocated or leaked
 * per call. If that first allocation fails, the call runs the reference loop
 * instead (still correct, just slow and not the SIMD bits).
 *
 * sgemm must not be called from inside a pool_parallel_for job (the pool runs
 * one job at a time; sgemm submits its own).
 */
#ifndef BRAID_SGEMM_H
#define BRAID_SGEMM_H

#include <stdint.h>

/* C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major float32.
 * op(A) is [M,K]: trans_a == 0 -> A is stored [M,K] with row stride lda (lda >= K);
 *                 trans_a == 1 -> A is stored [K,M] with row stride lda (lda >= M).
 * op(B) is [K,N]: trans_b == 0 -> B stored [K,N], ldb >= N; trans_b == 1 -> B stored [N,K], ldb >= K.
 * beta == 0 means C is write-only (never read, so NaN garbage in C is ignored).
 * alpha == 0 or K == 0 reads neither A nor B (C = beta * C). M <= 0 or N <= 0 does nothing.
 * Runs on the library's thread pool (pool_parallel_for). The result must be bit-identical for any
 * thread count (split work over M/N tiles only, never over K) and deterministic run to run. */
void sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
           const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* The scalar reference: plain triple loop, single thread, always compiled.
 * Each dot product is summed in double and rounded once, so it is the
 * definition of correct the tests measure the fast paths against. */
void sgemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* ---- internals shared by sgemm.c and the per-ISA files ----------------------
 *
 * One ISA's register tile and packing. The driver (sgemm.c) calls, for each
 * block of kc <= kc_max steps of K and nc <= nc_max columns of C: pack_b once;
 * then for each mc rows of C pack_a (in k slices, overlapped with the kernels
 * of the previous rows), and for each of its panels the kernel per nr columns.
 * Packed layouts (all 64-byte aligned):
 *   Ap [ceil(m/mr)][ldp]:     panel p at Ap + p*ldp, [kc][mr]: step k, row r = op(A)(p*mr + r, k),
 *                             rows >= m are 0; ldp >= kc*mr + SGEMM_PACK_SLACK
 *   Bp [ceil(n/nr)][kc][nr]:  panel p holds columns [p*nr, p*nr + nr), columns >= n are 0
 * pack_a may write up to SGEMM_PACK_SLACK floats past the end of the steps it
 * packs (full-width vector stores) but only into steps it has not reached yet
 * or the slack after a panel. pack_b writes exactly its panels: threads pack
 * neighbouring panel runs of the same block at once.
 */
#define SGEMM_PACK_SLACK 16

typedef struct sgemm_isa {
    const char *name;  /* "ref", "avx2", "avx512" */
    int64_t mr, nr;    /* register tile: mr rows of C by nr columns */
    int64_t mc;        /* rows per packed A block, a multiple of mr (see pack_a) */
    int64_t kc_max;    /* K block: an A panel (mr x kc) stays in L1 */
    int64_t nc_max;    /* N block, a multiple of nr: the packed B block (kc x nc) stays in L2 */
    /* Steps [0, kc) of an A block: A points at op(A)(0, 0) (A + i*lda + p for trans_a == 0,
     * A + p*lda + i for 1), m <= mc, panels ldp floats apart. A k slice of a block is packed
     * by offsetting A by the first step and Ap by first step * mr.
     * Packing several panels at once lets trans_a == 1 read whole cache lines of each
     * row of A: one panel per call would read mr floats of each of kc rows, and with a
     * power-of-two lda those rows alias into a few cache sets, so the line a panel
     * shares with the next one is gone by the time the next one is packed. */
    void (*pack_a)(float *Ap, int64_t ldp, const float *A, int64_t lda, int trans_a, int64_t m, int64_t kc);
    /* B points at op(B)(0, 0); n <= nc_max. */
    void (*pack_b)(float *Bp, const float *B, int64_t ldb, int trans_b, int64_t kc, int64_t n);
    /* C[0..m, 0..n) = alpha * (Ap . Bp) + beta * C, m <= mr, n <= nr; beta == 0: C is not read.
     * Each element is one accumulator, from zero, over k = 0..kc-1 in order (so the bits of an
     * element do not depend on m, n or where its tile sits). */
    void (*kernel)(float *C, int64_t ldc, const float *Ap, const float *Bp, int64_t kc, int64_t m, int64_t n,
                   float alpha, float beta);
} sgemm_isa;

extern const sgemm_isa sgemm_isa_ref;    /* portable C, sgemm.c (not sgemm_ref: that one is unblocked) */
extern const sgemm_isa sgemm_isa_avx2;   /* 6 x 16, sgemm_avx2.c */
extern const sgemm_isa sgemm_isa_avx512; /* 14 x 32, sgemm_avx512.c */

#endif /* BRAID_SGEMM_H */
