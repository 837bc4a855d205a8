/*
 * bench_common.h — timing and allocation helpers shared by the benchmark
 * programs in c/bench/ (monotonic clock, median of repetitions, aligned
 * allocation that exits on failure).
 */
#ifndef BRAID_BENCH_COMMON_H
#define BRAID_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common.h"

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v). */
static inline double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* 64-byte aligned memory; a benchmark without it has nothing to measure, so it exits. */
static inline void *xalloc(size_t bytes) {
    void *p = aligned_alloc64(bytes);
    if (!p) {
        fprintf(stderr, "bench: out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

#endif /* BRAID_BENCH_COMMON_H */
