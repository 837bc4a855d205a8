/*
 * test_gdn.c — the Gated DeltaNet recurrence (gdn.c) against itself and a
 * double-precision reference:
 *  - gdn_step == the config's product form S·α(I − β k kᵀ) + β v kᵀ, o = S q (double)
 *  - chunkwise form (gdn_chunk) == recurrent form (gdn_step) for outputs and
 *    for the state after every chunk, from a non-zero initial state,
 *    T=37/C=8 and T=64/C=16 (and an unequal d_k != d_v), several heads.
 */
#include <stdlib.h>
#include <string.h>

#include "../src/gdn.h"
#include "harness.h"

typedef struct {
    int64_t T, C, H, dk, dv;
} cfg;

static void normalize(float *x, int64_t n, float scale) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    float inv = (float)(scale / sqrt(s));
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

/* Product form in double: S ← S·α(I − β k kᵀ) + β v kᵀ ; o = S q. */
static void ref_step(double *o, double *S, const float *q, const float *k, const float *v, double beta, double g,
                     int64_t dk, int64_t dv) {
    double alpha = exp(g);
    for (int64_t i = 0; i < dv; i++) {
        double *Si = S + i * dk, Sk = 0;
        for (int64_t j = 0; j < dk; j++) Sk += Si[j] * k[j];
        /* (S (I − β k kᵀ))_ij = S_ij − β (S k)_i k_j */
        for (int64_t j = 0; j < dk; j++) Si[j] = alpha * (Si[j] - beta * Sk * k[j]) + beta * v[i] * k[j];
        double oi = 0;
        for (int64_t j = 0; j < dk; j++) oi += Si[j] * q[j];
        o[i] = oi;
    }
}

static void run(cfg c) {
    const int64_t T = c.T, C = c.C, H = c.H, dk = c.dk, dv = c.dv;
    const int64_t Hdk = H * dk, Hdv = H * dv;
    float *q = malloc(sizeof(float) * T * Hdk), *k = malloc(sizeof(float) * T * Hdk);
    float *v = malloc(sizeof(float) * T * Hdv), *beta = malloc(sizeof(float) * T * H), *g = malloc(sizeof(float) * T * H);
    float *S0 = malloc(sizeof(float) * H * dv * dk);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < Hdk; i++) q[t * Hdk + i] = rng_normal(), k[t * Hdk + i] = rng_normal();
        for (int64_t i = 0; i < Hdv; i++) v[t * Hdv + i] = rng_normal();
        for (int64_t h = 0; h < H; h++) {
            normalize(q + t * Hdk + h * dk, dk, 1.0f / sqrtf((float)dk));
            normalize(k + t * Hdk + h * dk, dk, 1.0f);
            beta[t * H + h] = rng_uniform(0.0f, 1.0f);
            /* mostly mild decay, some strong, some ~0 */
            float u = rng_uniform(0.0f, 1.0f);
            g[t * H + h] = u < 0.1f ? -rng_uniform(2.0f, 6.0f) : -rng_uniform(0.0f, 0.5f);
        }
    }
    for (int64_t i = 0; i < H * dv * dk; i++) S0[i] = 0.3f * rng_normal();

    float *o_rec = calloc((size_t)(T * Hdv), sizeof(float)), *o_chk = calloc((size_t)(T * Hdv), sizeof(float));
    double *o_ref = calloc((size_t)(T * Hdv), sizeof(double));
    float *S_rec = malloc(sizeof(float) * dv * dk), *S_chk = malloc(sizeof(float) * dv * dk);
    double *S_ref = malloc(sizeof(double) * dv * dk);
    float *scratch = malloc(sizeof(float) * gdn_chunk_scratch_floats(C, dv));
    double worst_o = 0, worst_S = 0, worst_ref = 0, worst_ref_S = 0;

    for (int64_t h = 0; h < H; h++) {
        memcpy(S_rec, S0 + h * dv * dk, sizeof(float) * dv * dk);
        memcpy(S_chk, S_rec, sizeof(float) * dv * dk);
        for (int64_t i = 0; i < dv * dk; i++) S_ref[i] = S_rec[i];
        for (int64_t t0 = 0; t0 < T; t0 += C) {
            int64_t n = T - t0 < C ? T - t0 : C;
            for (int64_t t = t0; t < t0 + n; t++) {
                gdn_step(o_rec + t * Hdv + h * dv, S_rec, q + t * Hdk + h * dk, k + t * Hdk + h * dk,
                         v + t * Hdv + h * dv, beta[t * H + h], g[t * H + h], dk, dv);
                ref_step(o_ref + t * Hdv + h * dv, S_ref, q + t * Hdk + h * dk, k + t * Hdk + h * dk,
                         v + t * Hdv + h * dv, beta[t * H + h], g[t * H + h], dk, dv);
            }
            gdn_chunk(o_chk + t0 * Hdv + h * dv, Hdv, S_chk, q + t0 * Hdk + h * dk, k + t0 * Hdk + h * dk, Hdk,
                      v + t0 * Hdv + h * dv, Hdv, beta + t0 * H + h, g + t0 * H + h, H, n, dk, dv, scratch);
            /* state after this chunk: chunk form vs recurrence vs double reference */
            double e = max_rel_err(S_chk, S_rec, dv * dk);
            if (e > worst_S) worst_S = e;
            for (int64_t i = 0; i < dv * dk; i++) {
                double d = fabs(S_rec[i] - S_ref[i]) / fmax(1.0, fabs(S_ref[i]));
                if (!(d <= worst_ref_S)) worst_ref_S = d;
            }
        }
    }
    worst_o = max_rel_err(o_chk, o_rec, T * Hdv);
    for (int64_t i = 0; i < T * Hdv; i++) {
        double d = fabs(o_rec[i] - o_ref[i]) / fmax(1.0, fabs(o_ref[i]));
        if (!(d <= worst_ref)) worst_ref = d;
    }
    /* the outputs must not be trivially zero (a broken recurrence could agree with itself) */
    double norm = 0;
    for (int64_t i = 0; i < T * Hdv; i++) norm += fabs(o_rec[i]);
    CHECK(norm > 1e-3 * T * Hdv, "T=%lld outputs are ~0 (mean |o| %g)", (long long)T, norm / (T * Hdv));

    printf("T=%lld C=%lld H=%lld dk=%lld dv=%lld: chunk vs rec o %.3g S %.3g; rec vs double o %.3g S %.3g\n",
           (long long)T, (long long)C, (long long)H, (long long)dk, (long long)dv, worst_o, worst_S, worst_ref,
           worst_ref_S);
    CHECK(worst_o < 1e-4, "chunked outputs differ from recurrent by %g", worst_o);
    CHECK(worst_S < 1e-4, "chunked state differs from recurrent by %g", worst_S);
    CHECK(worst_ref < 1e-4, "recurrent outputs differ from the double product form by %g", worst_ref);
    CHECK(worst_ref_S < 1e-4, "recurrent state differs from the double product form by %g", worst_ref_S);

    free(q), free(k), free(v), free(beta), free(g), free(S0), free(o_rec), free(o_chk), free(o_ref);
    free(S_rec), free(S_chk), free(S_ref), free(scratch);
}

int main(void) {
    run((cfg){37, 8, 3, 32, 32});
    run((cfg){64, 16, 2, 64, 64});
    run((cfg){37, 8, 4, 16, 24});
    run((cfg){5, 16, 2, 32, 32}); /* a single short chunk */
    return harness_finish("test_gdn");
}
