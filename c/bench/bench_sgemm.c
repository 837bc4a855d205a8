/*
 * bench_sgemm.c — sgemm GFLOP/s on the trainer's shapes (T = 2048 tokens) as
 * a ratio to this machine's FP32 FMA roofline, measured in the same run: an
 * in-register FMA loop (12 independent accumulator chains) on every pool
 * thread, for each ISA.
 *
 * usage: bench_sgemm [--threads N] [--reps R] [--isa ref|avx2|avx512]
 * Every figure is the median of R timed repetitions (CLOCK_MONOTONIC); a
 * repetition is enough calls to last ~30 ms. GFLOP/s counts 2*M*N*K.
 * The cores may be shared, so each GEMM repetition is paired with a roofline
 * repetition (AVX-512 FMA loop, ~10 ms) run just before it: %peak divides the
 * two medians, taken under the same load, and the peak column prints that
 * roofline (a steady machine shows the same figure on every line).
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "common.h"
#include "kernels.h"
#include "sgemm.h"
#include "threadpool.h"


static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static float rnd_unit(void) { /* uniform in [-1, 1) */
    g_rng ^= g_rng >> 12, g_rng ^= g_rng << 25, g_rng ^= g_rng >> 27;
    return (float)((g_rng * 2685821657736338717ull) >> 40) / 8388608.0f - 1.0f;
}

/* ---- FMA roofline ------------------------------------------------------------------ */

#define ROOF_ITERS 4000000 /* per thread: 12 FMAs each */

typedef struct {
    float mul; /* 1 - 2^-23: not foldable into an add, keeps the chains finite */
    float sink[256];
} roof_job;

__attribute__((target("avx512f"))) static void roof_avx512(void *argp, int64_t i0, int64_t i1, int32_t thread) {
    roof_job *j = argp;
    __m512 m = _mm512_set1_ps(j->mul), a = _mm512_set1_ps(1e-3f), c[12];
    for (int i = 0; i < 12; i++) c[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < ROOF_ITERS; it++)
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) c[i] = _mm512_fmadd_ps(c[i], m, a);
    __m512 s = c[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, c[i]);
    j->sink[thread] += _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static void roof_avx2(void *argp, int64_t i0, int64_t i1, int32_t thread) {
    roof_job *j = argp;
    __m256 m = _mm256_set1_ps(j->mul), a = _mm256_set1_ps(1e-3f), c[12];
    for (int i = 0; i < 12; i++) c[i] = _mm256_set1_ps((float)i);
    for (int64_t it = 0; it < ROOF_ITERS; it++)
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) c[i] = _mm256_fmadd_ps(c[i], m, a);
    __m256 s = c[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, c[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    for (int i = 0; i < 8; i++) j->sink[thread] += out[i];
}

/* GFLOP/s of one run of the FMA loop of isa on all pool threads (each runs one index). */
static double roofline_once(int32_t isa) {
    int lanes = isa == BRAID_ISA_AVX512 ? 16 : 8;
    pool_fn fn = isa == BRAID_ISA_AVX512 ? roof_avx512 : roof_avx2;
    roof_job j = {1.0f - 1.0f / 8388608.0f, {0}};
    int64_t n = pool_threads();
    double t0 = now_s();
    pool_parallel_for(n, 1, fn, &j);
    double t = now_s() - t0;
    if (j.sink[0] == 42) printf(" "); /* keep the FMAs */
    return (double)n * ROOF_ITERS * 12 * lanes * 2 / t / 1e9;
}

/* Median of reps runs (after one warm-up that wakes the workers and settles the clocks). */
static double roofline(int32_t isa, int reps) {
    double g[32];
    roofline_once(isa);
    for (int k = 0; k < reps; k++) g[k] = roofline_once(isa);
    return median(g, reps);
}

/* ---- sgemm shapes ------------------------------------------------------------------------ */

typedef struct {
    const char *what;
    int ta, tb;
    int64_t M, N, K;
    float beta;
} shape;

/* T = 2048 tokens, layer widths 256 / 768, vocab 4096, model width 256. */
static const shape SHAPES[] = {
    {"fwd  Y = X W^T  (in 256, out 768)", 0, 1, 2048, 768, 256, 0},
    {"fwd  Y = X W^T  (in 768, out 256)", 0, 1, 2048, 256, 768, 0},
    {"bwd  dX += dY W (in 256, out 768)", 0, 0, 2048, 256, 768, 1},
    {"bwd  dX += dY W (in 768, out 256)", 0, 0, 2048, 768, 256, 1},
    {"bwd  dW += dY^T X (768 x 256)    ", 1, 0, 768, 256, 2048, 1},
    {"bwd  dW += dY^T X (256 x 768)    ", 1, 0, 256, 768, 2048, 1},
    {"head logits = H E^T (V 4096)     ", 0, 1, 2048, 4096, 256, 0},
    {"head dH = dlogits E              ", 0, 0, 2048, 256, 4096, 0},
    {"head dE += dlogits^T H           ", 1, 0, 4096, 256, 2048, 1},
};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

/* Median seconds per sgemm call of shape s with the active ISA; *roof: the median
 * roofline of peak_isa over runs paired with the timed repetitions. */
static double time_shape(const shape *s, const float *A, const float *B, float *C, int reps, int32_t peak_isa,
                         double *roof) {
    int64_t lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    double t0 = now_s();
    sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, s->beta, C, s->N); /* warm: scratch, pages */
    double once = now_s() - t0;
    int calls = (int)BRAID_MAX(1, BRAID_MIN(200, 0.03 / BRAID_MAX(once, 1e-6)));
    double t[32], g[32];
    for (int k = 0; k < reps; k++) {
        g[k] = roofline_once(peak_isa);
        t0 = now_s();
        for (int c = 0; c < calls; c++)
            sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, s->beta, C, s->N);
        t[k] = (now_s() - t0) / calls;
    }
    *roof = median(g, reps);
    return median(t, reps);
}

int main(int argc, char **argv) {
    int threads = 2, reps = 7;
    int32_t only = -1;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_sgemm: %s needs a value\n", argv[i]);
            return 2;
        } else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--isa") && !strcmp(argv[i + 1], "ref")) only = BRAID_ISA_REF;
        else if (!strcmp(argv[i], "--isa") && !strcmp(argv[i + 1], "avx2")) only = BRAID_ISA_AVX2;
        else if (!strcmp(argv[i], "--isa") && !strcmp(argv[i + 1], "avx512")) only = BRAID_ISA_AVX512;
        else {
            fprintf(stderr, "usage: bench_sgemm [--threads N] [--reps R] [--isa ref|avx2|avx512]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 31) reps = 7;
    pool_init(threads);
    printf("system: %s\n", braid_system_info());
    printf("%d threads, median of %d reps\n", pool_threads(), reps);

    double roof[3] = {0, 0, 0};
    for (int32_t isa = BRAID_ISA_AVX2; isa <= BRAID_ISA_AVX512; isa++)
        if (cpu_isa_available(isa)) {
            roof[isa] = roofline(isa, reps);
            printf("FP32 FMA roofline %-6s %7.1f GFLOP/s (12 chains per thread, %d threads)\n",
                   cpu_isa_table(isa)->name, roof[isa], pool_threads());
        }
    int32_t peak_isa = roof[BRAID_ISA_AVX512] > 0 ? BRAID_ISA_AVX512 : BRAID_ISA_AVX2;
    if (roof[peak_isa] <= 0) {
        printf("no AVX2 or AVX-512: no roofline to compare with\n");
        return 0;
    }
    printf("%-34s %-2s %5s %5s %5s  %-6s %8s %8s %8s %7s\n", "shape", "op", "M", "N", "K", "isa", "ms", "GFLOP/s",
           "peak", "%peak");
    double sum_ratio[3] = {0, 0, 0};
    int n_ratio[3] = {0, 0, 0};
    for (int si = 0; si < N_SHAPES; si++) {
        const shape *s = &SHAPES[si];
        float *A = xalloc(sizeof(float) * (size_t)(s->M * s->K));
        float *B = xalloc(sizeof(float) * (size_t)(s->K * s->N));
        float *C = xalloc(sizeof(float) * (size_t)(s->M * s->N));
        for (int64_t i = 0; i < s->M * s->K; i++) A[i] = rnd_unit();
        for (int64_t i = 0; i < s->K * s->N; i++) B[i] = rnd_unit();
        for (int64_t i = 0; i < s->M * s->N; i++) C[i] = rnd_unit();
        for (int32_t isa = BRAID_ISA_AVX512; isa >= BRAID_ISA_REF; isa--) {
            if (!cpu_isa_available(isa) || (only >= 0 && isa != only)) continue;
            braid_isa_set(isa);
            double peak;
            double t = time_shape(s, A, B, C, isa == BRAID_ISA_REF ? BRAID_MIN(reps, 3) : reps, peak_isa, &peak);
            double gf = 2.0 * s->M * s->N * s->K / t / 1e9;
            printf("%-34s %c%c %5lld %5lld %5lld  %-6s %8.3f %8.1f %8.1f %6.1f%%\n", s->what, s->ta ? 'T' : 'N',
                   s->tb ? 'T' : 'N', (long long)s->M, (long long)s->N, (long long)s->K, cpu_isa_table(isa)->name,
                   t * 1e3, gf, peak, 100.0 * gf / peak);
            sum_ratio[isa] += gf / peak, n_ratio[isa]++;
            fflush(stdout);
        }
        aligned_free(A), aligned_free(B), aligned_free(C);
    }
    for (int32_t isa = BRAID_ISA_AVX512; isa >= BRAID_ISA_REF; isa--)
        if (n_ratio[isa])
            printf("mean over shapes: %-6s %5.1f%% of the %s roofline\n", cpu_isa_table(isa)->name,
                   100.0 * sum_ratio[isa] / n_ratio[isa], cpu_isa_table(peak_isa)->name);
    return 0;
}
