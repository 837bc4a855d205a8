/*
 * ref_common.h — what the C model tests share: a scratch folder for the GGUF
 * files they write, a checked model load, random tensors, and the naive
 * double-precision pieces of the reference forward (RMSNorm, SiLU, BitLinear)
 * written from ../shared/ARCHITECTURES.md §2.1–2.3, never from the library.
 */
#ifndef BRAID_TEST_REF_COMMON_H
#define BRAID_TEST_REF_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../include/braid.h"
#include "gguf_writer.h"
#include "harness.h"

/* The folder main() creates with mkdtemp; tmp_path names files inside it. */
static char g_dir[256];
static const char *tmp_path(const char *name) {
    static char buf[4][400];
    static int i = 0;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", g_dir, name);
    return buf[i];
}

static braid_model *load_ok(const char *path) {
    braid_model *m = NULL;
    int32_t st = braid_model_load(path, &m);
    CHECK(st == BRAID_OK && m, "load %s: %d %s", path, st, braid_last_error());
    return m;
}

/* n normal floats (n may be 0: still a valid pointer to free). */
static float *rand_vec(int64_t n, float mean, float std) {
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = mean + std * rng_normal();
    return v;
}

static double sigm(double z) { return 1.0 / (1.0 + exp(-z)); }
static double silu(double z) { return z * sigm(z); }

/* RMSNorm §2.1 (w NULL: parameter-free). */
static void ref_rmsnorm(double *y, const double *x, const float *w, int64_t n, double eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * r * (w ? w[i] : 1.0);
}

/* BitLinear §2.2: int8 absmax per 64-block (computed in float as the spec's s_b), ternary weights. */
static void ref_bitlinear(double *y, const uint8_t *W, int64_t rows, int64_t cols, const double *x) {
    float *xq = malloc(sizeof(float) * (size_t)cols); /* s_b · x̂_j */
    for (int64_t b = 0; b < cols; b += 64) {
        float m = 0;
        for (int j = 0; j < 64; j++) m = fmaxf(m, fabsf((float)x[b + j]));
        float s = m > 0 ? m / 127.0f : 1.0f;
        for (int j = 0; j < 64; j++) {
            float q = rintf((float)x[b + j] / s);
            q = q < -127 ? -127 : q > 127 ? 127 : q;
            xq[b + j] = q * s;
        }
    }
    for (int64_t r = 0; r < rows; r++) {
        double acc = 0;
        for (int64_t j = 0; j < cols; j++) acc += bt2_weight(W, rows, cols, r, j) * xq[j];
        y[r] = acc;
    }
    free(xq);
}

#endif
