/*
 * train_mezo.c — MeZO (Malladi et al. 2023): zeroth-order SGD with two
 * forward passes and no backward, so fine-tuning needs inference memory only.
 *
 *   z ~ N(0, I) (regenerated from a seed, never stored)
 *   L± = L(w ± ε z);  ĝ = (L+ − L−) / 2ε;  w ← w − lr (ĝ z + λ w)
 *
 * Sparse MeZO (Liu et al. 2024) perturbs only the smaller-magnitude weights:
 * with sparsity s, entries of a tensor whose |w| is above that tensor's
 * (1 − s) quantile (estimated from a fixed sample of entries) get no
 * perturbation and no update. z_i depends only on (seed, i), so the result
 * does not depend on the thread count.
 *
 * Under QAT the loss is piecewise constant in a ternary latent weight (it only
 * changes when a quantized value flips), so a two-point estimate along those
 * coordinates is noise: measured on a tiny model, perturbing them made sparse
 * MeZO raise the loss. MeZO therefore moves the float parameters only
 * (embedding, norms, gates, convs, decay parameters) while QAT is on; with
 * QAT off (braid_trainer_set_quant 0) every parameter moves.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "threadpool.h"
#include "train.h"

/* splitmix64 of (seed, i) → two uniforms → one standard normal (Box–Muller). */
static inline float gauss_at(uint64_t seed, uint64_t i) {
    uint64_t x = seed ^ (i * 0x9E3779B97F4A7C15ull);
    uint64_t r[2];
    for (int k = 0; k < 2; k++) {
        x += 0x9E3779B97F4A7C15ull;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        r[k] = z ^ (z >> 31);
    }
    double u1 = ((double)(r[0] >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (double)(r[1] >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

typedef struct {
    braid_trainer *tr;
    uint64_t seed;
    float scale;      /* w += scale · z on perturbed entries */
    uint8_t *mask;    /* [n_floats] 1 = this entry moves; decided once on w₀ (NULL: dense) */
    float lr, proj_grad;
    int update;       /* 0: perturb; 1: SGD step with weight decay */
} mezo_job;

static void mezo_task(void *arg, int64_t p0, int64_t p1, int32_t thread) {
    const mezo_job *j = arg;
    braid_trainer *tr = j->tr;
    for (int64_t p = p0; p < p1; p++) {
        const tparam *tp = &tr->params[p];
        if (tp->kind == TP_TERNARY && tr->quant) continue;
        if (tp->frozen) continue; /* moved by its layer's own rule (the MoE selection bias) */
        const int64_t i0 = tp->offset, i1 = i0 + tp->rows * tp->cols;
        const float wd = tp->decay ? tr->weight_decay : 0.0f;
        for (int64_t i = i0; i < i1; i++) {
            if (j->mask && !j->mask[i]) continue;
            float z = gauss_at(j->seed, (uint64_t)i);
            if (j->update)
                tr->w[i] -= j->lr * (j->proj_grad * z + wd * tr->w[i]);
            else
                tr->w[i] += j->scale * z;
        }
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Per-tensor |w| threshold keeping the (1 − sparsity) smallest entries, from up to 4096 strided samples. */
static void thresholds(const braid_trainer *tr, float sparsity, float *out, float *sample) {
    for (int32_t p = 0; p < tr->n_params; p++) {
        const tparam *tp = &tr->params[p];
        const int64_t n = tp->rows * tp->cols;
        if (sparsity <= 0.0f) {
            out[p] = INFINITY;
            continue;
        }
        const int64_t m = n < 4096 ? n : 4096, stride = n / m;
        for (int64_t s = 0; s < m; s++) sample[s] = fabsf(tr->w[tp->offset + s * stride]);
        qsort(sample, (size_t)m, sizeof(float), cmp_float);
        int64_t k = (int64_t)((1.0f - sparsity) * (float)(m - 1));
        out[p] = sample[k < 0 ? 0 : k];
    }
}

int32_t train_mezo_step(braid_trainer *tr, const int32_t *tokens, const int32_t *targets, int64_t B, int64_t T,
                        float lr, float eps, float sparsity, uint64_t seed, double *loss_sum, int64_t *n_targets) {
    float *thr = malloc(sizeof(float) * (size_t)tr->n_params);
    float *sample = malloc(sizeof(float) * 4096);
    if (!thr || !sample) {
        free(thr);
        free(sample);
        return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory in MeZO");
    }
    thresholds(tr, sparsity, thr, sample);
    free(sample);
    /* the sparse mask is taken once on w₀: deciding it on the moving w would let an entry
     * join or leave the set between the moves and never return to w₀ */
    uint8_t *mask = NULL;
    if (sparsity > 0.0f) {
        mask = malloc((size_t)tr->n_floats);
        if (!mask) {
            free(thr);
            return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory for the sparse MeZO mask");
        }
        for (int32_t p = 0; p < tr->n_params; p++) {
            const tparam *tp = &tr->params[p];
            for (int64_t i = tp->offset; i < tp->offset + tp->rows * tp->cols; i++) mask[i] = fabsf(tr->w[i]) <= thr[p];
        }
    }
    mezo_job j = {.tr = tr, .seed = seed, .mask = mask};
    double lp = 0, lm = 0;
    int64_t np = 0, nm = 0;
    /* w₀ + εz */
    j.scale = eps;
    pool_parallel_for(tr->n_params, 1, mezo_task, &j);
    train_requantize(tr);
    int32_t st = train_model_step(tr, tokens, targets, B, T, 0, &lp, &np);
    if (!st) { /* w₀ − εz */
        j.scale = -2.0f * eps;
        pool_parallel_for(tr->n_params, 1, mezo_task, &j);
        train_requantize(tr);
        st = train_model_step(tr, tokens, targets, B, T, 0, &lm, &nm);
    }
    /* back to w₀ (up to float rounding of the two moves) */
    j.scale = st && j.scale == eps ? -eps : eps;
    pool_parallel_for(tr->n_params, 1, mezo_task, &j);
    if (!st && np > 0) {
        /* the directional derivative of the mean loss along z */
        j.update = 1;
        j.lr = lr;
        j.proj_grad = (float)((lp - lm) / (double)np / (2.0 * (double)eps));
        pool_parallel_for(tr->n_params, 1, mezo_task, &j);
        tr->step++;
    }
    train_requantize(tr);
    free(thr);
    free(mask);
    if (st) return st;
    *loss_sum = 0.5 * (lp + lm);
    *n_targets = np;
    return BRAID_OK;
}
