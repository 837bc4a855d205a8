/*
 * bench_kernels.c — kernel throughput as ratios measured in the same run:
 * ternary GEMV against this machine's memory read bandwidth (weights not
 * cache resident), SIMD against _ref, FP32 GEMV against bandwidth.
 *
 * usage: bench_kernels [--threads N] [--footprint-mb MB] [--reps R] [--bandwidth-only]
 * --bandwidth-only prints just `bandwidth_gbps=<2-thread figure>` so other
 * benches (npm run bench -- decode) can quote the roofline of their own run.
 * Every figure is the median of R timed repetitions (CLOCK_MONOTONIC).
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "common.h"
#include "kernels.h"
#include "threadpool.h"


static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) {
    g_rng ^= g_rng >> 12, g_rng ^= g_rng << 25, g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
}

/* ---- memory read bandwidth ---------------------------------------------------- */

typedef struct {
    const uint8_t *buf;
    int64_t sink[256];
} read_job;

/* The widest loads the CPU has: narrow loads fill the load queue before enough
 * cache lines are in flight, which would understate the bandwidth. */
__attribute__((target("avx512f"))) static void read_fn_avx512(void *argp, int64_t i0, int64_t i1, int32_t thread) {
    read_job *j = argp;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = i0; i < i1; i += 256) {
        const __m512i *p = (const __m512i *)(j->buf + i);
        a0 = _mm512_add_epi64(a0, _mm512_load_si512(p));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + 1));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + 2));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + 3));
    }
    j->sink[thread] += _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}

__attribute__((target("avx2"))) static void read_fn_avx2(void *argp, int64_t i0, int64_t i1, int32_t thread) {
    read_job *j = argp;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = i0; i < i1; i += 128) {
        const __m256i *p = (const __m256i *)(j->buf + i);
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(p));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(p + 1));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(p + 2));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(p + 3));
    }
    int64_t out[4];
    _mm256_storeu_si256((__m256i *)out,
                        _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
    j->sink[thread] += out[0] + out[1] + out[2] + out[3];
}

static void read_fn(void *argp, int64_t i0, int64_t i1, int32_t thread) {
    read_job *j = argp;
    __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = i0; i < i1; i += 64) {
        const __m128i *p = (const __m128i *)(j->buf + i);
        a0 = _mm_add_epi64(a0, _mm_load_si128(p));
        a1 = _mm_add_epi64(a1, _mm_load_si128(p + 1));
        a2 = _mm_add_epi64(a2, _mm_load_si128(p + 2));
        a3 = _mm_add_epi64(a3, _mm_load_si128(p + 3));
    }
    __m128i s = _mm_add_epi64(_mm_add_epi64(a0, a1), _mm_add_epi64(a2, a3));
    int64_t out[2];
    _mm_storeu_si128((__m128i *)out, s);
    j->sink[thread] += out[0] + out[1];
}

/* GB/s of a streaming read over bytes with the pool's current thread count. */
static double read_bandwidth(const uint8_t *buf, size_t bytes, int reps) {
    read_job j = {buf, {0}};
    double t[32];
    pool_fn fn = __builtin_cpu_supports("avx512f") ? read_fn_avx512
                 : __builtin_cpu_supports("avx2")  ? read_fn_avx2
                                                   : read_fn;
    pool_parallel_for((int64_t)bytes, 4096, fn, &j); /* warm: page in, wake workers */
    for (int k = 0; k < reps; k++) {
        double t0 = now_s();
        pool_parallel_for((int64_t)bytes, 4096, fn, &j);
        t[k] = now_s() - t0;
    }
    if (j.sink[0] == 42) printf(" "); /* keep the loads */
    return bytes / median(t, reps) / 1e9;
}

/* ---- ternary GEMV / GEMM ------------------------------------------------------- */

typedef struct {
    const kernel_table *k;
    float *y;
    const uint8_t *W;
    int64_t rows, cols, n, ldy;
    act_q8 *a;
} bt2_job;

static void gemv_bt2_fn(void *argp, int64_t r0, int64_t r1, int32_t thread) {
    bt2_job *j = argp;
    j->k->gemv_bt2(j->y, j->W, j->rows, j->cols, j->a[0], r0, r1);
}
static void gemm_bt2_fn(void *argp, int64_t r0, int64_t r1, int32_t thread) {
    bt2_job *j = argp;
    j->k->gemm_bt2(j->y, j->ldy, j->W, j->rows, j->cols, j->a, j->n, r0, r1);
}

/* Seconds per call, median over reps, of fn over rows [0, rows_timed) of W
 * copies cycled round-robin (so the weights come from memory, not cache). */
static double time_bt2(bt2_job *j, pool_fn fn, uint8_t *const *copies, int n_copies, int64_t rows_timed, int calls,
                       int reps) {
    double t[32];
    int c = 0;
    for (int k = 0; k < reps; k++) {
        double t0 = now_s();
        for (int i = 0; i < calls; i++) {
            j->W = copies[c];
            c = (c + 1) % n_copies;
            pool_parallel_for(rows_timed, 16, fn, j);
        }
        t[k] = (now_s() - t0) / calls;
    }
    return median(t, reps);
}

static act_q8 act_new(const kernel_table *k, int64_t cols) {
    act_q8 a = {xalloc((size_t)cols), xalloc((size_t)cols / 16), xalloc((size_t)cols / 16)};
    float *x = xalloc((size_t)cols * 4);
    for (int64_t i = 0; i < cols; i++) x[i] = (float)((int64_t)(rnd() % 2001) - 1000) / 500.0f;
    k->quantize_act(a, x, cols);
    aligned_free(x);
    return a;
}

static void bench_bt2(int64_t rows, int64_t cols, size_t footprint, double bw, int reps) {
    const kernel_table *k = kernels();
    size_t bytes = bt2_bytes(rows, cols);
    int n_copies = (int)BRAID_MAX(2, footprint / bytes);
    uint8_t **copies = xalloc(sizeof(uint8_t *) * (size_t)n_copies);
    uint8_t *base = xalloc(bytes);
    for (size_t i = 0; i < (size_t)rows * (size_t)cols / 4; i++) {
        uint8_t b = 0;
        for (int s = 0; s < 4; s++) b |= (uint8_t)((rnd() % 3) << (2 * s));
        base[i] = b;
    }
    float *sc = (float *)bt2_scales(base, rows, cols);
    for (int64_t i = 0; i < rows * (cols / BT2_GROUP); i++) sc[i] = 0.01f + (float)(rnd() % 100) / 1000.0f;
    for (int c = 0; c < n_copies; c++) {
        copies[c] = xalloc(bytes);
        memcpy(copies[c], base, bytes);
    }
    enum { NMAX = 128 };
    act_q8 a[NMAX];
    for (int t = 0; t < NMAX; t++) a[t] = act_new(k, cols);
    float *y = xalloc(sizeof(float) * (size_t)rows * NMAX);
    bt2_job j = {k, y, base, rows, cols, 1, rows, a};

    /* GEMV n = 1 against bandwidth, and against _ref on a row subset. */
    double t_simd = time_bt2(&j, gemv_bt2_fn, copies, n_copies, rows, n_copies, reps);
    double gbs = bytes / t_simd / 1e9;
    int64_t sub = BRAID_MIN(rows, 256);
    double t_simd_sub = time_bt2(&j, gemv_bt2_fn, copies, n_copies, sub, 8, reps);
    j.k = &kernels_ref;
    double t_ref_sub = time_bt2(&j, gemv_bt2_fn, copies, n_copies, sub, 2, 3);
    j.k = k;
    printf("gemv_bt2 %5lldx%-5lld n=1   %6.2f ms  %6.2f GB/s  %5.1f%% of bandwidth  %6.1fx vs ref\n", (long long)rows,
           (long long)cols, t_simd * 1e3, gbs, 100.0 * gbs / bw, t_ref_sub / t_simd_sub);

    /* GEMM n = 8 / 64 / 128 (prefill): GOP/s (2 ops per weight per row), against _ref on a row subset. */
    static const int64_t NS[] = {8, 64, NMAX};
    for (int i = 0; i < 3; i++) {
        j.n = NS[i];
        double tg = time_bt2(&j, gemm_bt2_fn, copies, n_copies, rows, 4, reps);
        double tg_sub = time_bt2(&j, gemm_bt2_fn, copies, n_copies, 64, 4, reps);
        j.k = &kernels_ref;
        double tr_sub = time_bt2(&j, gemm_bt2_fn, copies, n_copies, 64, 1, 3);
        j.k = k;
        double gops = 2.0 * rows * cols * j.n / tg / 1e9;
        printf("gemm_bt2 %5lldx%-5lld n=%-3lld %6.2f ms  %6.1f GOP/s  %6.2f GB/s weights  %6.1fx vs ref\n",
               (long long)rows, (long long)cols, (long long)j.n, tg * 1e3, gops, bytes / tg / 1e9, tr_sub / tg_sub);
    }
    for (int c = 0; c < n_copies; c++) aligned_free(copies[c]);
    for (int t = 0; t < NMAX; t++) aligned_free(a[t].q), aligned_free(a[t].s), aligned_free(a[t].sum);
    aligned_free(copies), aligned_free(base), aligned_free(y);
}

/* ---- FP32 GEMV ------------------------------------------------------------------- */

typedef struct {
    const kernel_table *k;
    float *y;
    const float *W, *x;
    int64_t cols;
} f32_job;

static void gemv_f32_fn(void *argp, int64_t r0, int64_t r1, int32_t thread) {
    f32_job *j = argp;
    j->k->gemv_f32(j->y, j->W, j->x, j->cols, r0, r1);
}

static void bench_f32(int64_t rows, int64_t cols, size_t footprint, double bw, int reps) {
    size_t bytes = (size_t)(rows * cols) * 4;
    int n_copies = (int)BRAID_MAX(2, footprint / bytes);
    float **copies = xalloc(sizeof(float *) * (size_t)n_copies);
    for (int c = 0; c < n_copies; c++) {
        copies[c] = xalloc(bytes);
        for (int64_t i = 0; i < rows * cols; i++) copies[c][i] = (float)(i % 7) * 0.25f - 0.75f;
    }
    float *x = xalloc((size_t)cols * 4), *y = xalloc((size_t)rows * 4);
    for (int64_t i = 0; i < cols; i++) x[i] = (float)(i % 5) - 2.0f;
    f32_job j = {kernels(), y, copies[0], x, cols};
    double t[32];
    int c = 0;
    for (int k = 0; k < reps; k++) {
        double t0 = now_s();
        for (int i = 0; i < n_copies; i++) {
            j.W = copies[c];
            c = (c + 1) % n_copies;
            pool_parallel_for(rows, 16, gemv_f32_fn, &j);
        }
        t[k] = (now_s() - t0) / n_copies;
    }
    double ts = median(t, reps), gbs = bytes / ts / 1e9;
    printf("gemv_f32 %5lldx%-5lld n=1   %6.2f ms  %6.2f GB/s  %5.1f%% of bandwidth\n", (long long)rows,
           (long long)cols, ts * 1e3, gbs, 100.0 * gbs / bw);
    for (int i = 0; i < n_copies; i++) aligned_free(copies[i]);
    aligned_free(copies), aligned_free(x), aligned_free(y);
}

int main(int argc, char **argv) {
    int threads = 2, reps = 7, bandwidth_only = 0;
    size_t footprint_mb = 384;
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--bandwidth-only")) {
            bandwidth_only = 1;
            i--;
        } else if (i + 1 >= argc) {
            fprintf(stderr, "bench_kernels: %s needs a value\n", argv[i]);
            return 2;
        } else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--footprint-mb")) footprint_mb = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_kernels [--threads N] [--footprint-mb MB] [--reps R] [--bandwidth-only]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 31) reps = 7;
    size_t footprint = footprint_mb << 20;
    if (bandwidth_only) {
        uint8_t *b = xalloc(footprint);
        memset(b, 1, footprint);
        pool_init(threads);
        printf("bandwidth_gbps=%.2f threads=%d\n", read_bandwidth(b, footprint, reps), pool_threads());
        aligned_free(b);
        return 0;
    }
    printf("system: %s\n", braid_system_info());
    printf("weights cycled through %zu MB of copies (beyond L3); median of %d reps\n", footprint_mb, reps);

    uint8_t *buf = xalloc(footprint);
    memset(buf, 1, footprint);
    pool_init(1);
    double bw1 = read_bandwidth(buf, footprint, reps);
    pool_init(threads);
    double bw = read_bandwidth(buf, footprint, reps);
    aligned_free(buf);
    printf("memory read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (%d threads)\n", bw1, bw, threads);
    printf("kernel table: %s, %d threads\n", kernels()->name, pool_threads());

    bench_bt2(6912, 2560, footprint, bw, reps); /* SwiGLU gate / up */
    bench_bt2(2560, 6912, footprint, bw, reps); /* SwiGLU down */
    bench_f32(2560, 2560, footprint, bw, reps);
    return 0;
}
