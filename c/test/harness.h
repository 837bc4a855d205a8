/*
 * harness.h — a minimal test harness for the C test programs in c/test/.
 * Each program prints one line per check and exits non-zero if any failed;
 * the vitest suites under test/c run the programs and assert the exit code.
 */
#ifndef BRAID_TEST_HARNESS_H
#define BRAID_TEST_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

static int harness_failures = 0;
static int harness_checks = 0;

#define CHECK(cond, ...)                                                                                              \
    do {                                                                                                              \
        harness_checks++;                                                                                             \
        if (!(cond)) {                                                                                                \
            harness_failures++;                                                                                       \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                              \
            printf(__VA_ARGS__);                                                                                      \
            printf("\n");                                                                                             \
        }                                                                                                             \
    } while (0)

/* Max |a-b| / max(1, |b|) over n floats. */
static inline double max_rel_err(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / fmax(1.0, fabs((double)b[i]));
        if (!(d <= m)) m = d; /* NaN propagates as failure */
    }
    return m;
}

/* xorshift64* — deterministic random numbers for test data. */
static uint64_t harness_rng = 0x9E3779B97F4A7C15ull;
static inline uint64_t rng_u64(void) {
    harness_rng ^= harness_rng >> 12;
    harness_rng ^= harness_rng << 25;
    harness_rng ^= harness_rng >> 27;
    return harness_rng * 2685821657736338717ull;
}
static inline float rng_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)((rng_u64() >> 40) * (1.0 / 16777216.0));
}
static inline float rng_normal(void) {
    float u1 = rng_uniform(1e-7f, 1.0f), u2 = rng_uniform(0.0f, 1.0f);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

static inline int harness_finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, harness_checks, harness_failures);
    return harness_failures ? 1 : 0;
}

#endif
