/*
 * train_adamw.c — AdamW (decoupled weight decay) with global-norm clipping.
 *
 * The arenas are walked in fixed blocks of ADAM_BLOCK floats: the gradient
 * norm is a sum of per-block partial sums added in block order, so the result
 * does not depend on how many threads ran the blocks.
 *
 * The hashed n-gram table (ngram.h) is updated lazily, as sparse embeddings
 * usually are: only the rows this step's backward touched take an AdamW step;
 * the others keep their weights and moments (a dense step would move them by
 * their decaying momentum and cost a pass over the whole table, ~7% of a
 * 1×1024 step at 32k rows). Untouched rows have a zero gradient, so the norm
 * skips them without changing the sum.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels.h"
#include "threadpool.h"
#include "train.h"

#define ADAM_BLOCK 16384

typedef struct {
    braid_trainer *tr;
    double *partial; /* [n_blocks] */
    float scale;     /* grad_scale · clip factor */
    float lr, bc1, bc2;
} adam_job;

/* The next range [start, *end) at or after i and before i1 that holds gradient: everything outside
 * the n-gram table, and inside it the touched rows (a row at a time). Returns i1 when none is left. */
static int64_t live_from(const braid_trainer *tr, int64_t i, int64_t i1, int64_t *end) {
    *end = i1;
    if (i >= i1 || tr->tok_ngram < 0) return i;
    const tparam *p = &tr->params[tr->tok_ngram];
    const int64_t t0 = p->offset, t1 = t0 + p->rows * p->cols, c = p->cols;
    if (i < t0) {
        *end = BRAID_MIN(i1, t0);
        return i;
    }
    if (i >= t1) return i;
    int64_t r = (i - t0) / c;
    while (r < p->rows && t0 + r * c < i1 && !tr->ngram_touched[r]) r++;
    if (r == p->rows) return t1 < i1 ? t1 : i1; /* the rest of the range lies past the table */
    if (t0 + r * c >= i1) return i1;
    *end = BRAID_MIN(i1, t0 + (r + 1) * c);
    return BRAID_MAX(i, t0 + r * c);
}

static void norm_task(void *arg, int64_t b0, int64_t b1, int32_t thread) {
    adam_job *j = arg;
    const braid_trainer *tr = j->tr;
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t i0 = blk * ADAM_BLOCK, i1 = BRAID_MIN(tr->n_floats, i0 + ADAM_BLOCK);
        double s = 0.0;
        for (int64_t a = i0, e; (a = live_from(tr, a, i1, &e)) < i1; a = e)
            for (int64_t i = a; i < e; i++) {
                double g = (double)tr->g[i] * j->scale;
                s += g * g;
            }
        j->partial[blk] = s;
    }
}

/* Blocks b0..b1 of ADAM_BLOCK floats, each param's part of them in the kernel table's AdamW (each
 * param has its own decay flag). Split by floats, not by params: a split by params left one thread
 * the 1M-float token embedding. Elementwise, so the split changes no bit. */
static void update_task(void *arg, int64_t b0, int64_t b1, int32_t thread) {
    adam_job *j = arg;
    braid_trainer *tr = j->tr;
    const train_kernel_table *kt = train_kernels();
    const int64_t f0 = b0 * ADAM_BLOCK, f1 = BRAID_MIN(tr->n_floats, b1 * ADAM_BLOCK);
    adamw_consts c = {j->scale, tr->beta1, tr->beta2, j->bc1, j->bc2, j->lr, tr->eps, 0.0f};
    for (int32_t p = 0; p < tr->n_params; p++) {
        const tparam *tp = &tr->params[p];
        const int64_t i0 = BRAID_MAX(f0, tp->offset), i1 = BRAID_MIN(f1, tp->offset + tp->rows * tp->cols);
        if (i0 >= i1) continue;
        if (tp->frozen) { /* moved by its layer's after_update rule; nothing accumulates a gradient here */
            memset(tr->g + i0, 0, sizeof(float) * (size_t)(i1 - i0));
            continue;
        }
        c.wd = tp->decay ? tr->weight_decay : 0.0f;
        if (p == tr->tok_ngram)
            for (int64_t a = i0, e; (a = live_from(tr, a, i1, &e)) < i1; a = e)
                kt->adamw(tr->w + a, tr->m + a, tr->v + a, tr->g + a, &c, e - a);
        else
            kt->adamw(tr->w + i0, tr->m + i0, tr->v + i0, tr->g + i0, &c, i1 - i0);
    }
}

int32_t train_adamw_update(braid_trainer *tr, float lr, float grad_scale, float *grad_norm) {
    const int64_t nb = (tr->n_floats + ADAM_BLOCK - 1) / ADAM_BLOCK;
    double *partial = malloc(sizeof(double) * (size_t)nb);
    if (!partial) return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory for the gradient norm");
    adam_job j = {.tr = tr, .partial = partial, .scale = grad_scale};
    double sum = 0.0;
    pool_parallel_for(nb, 1, norm_task, &j);
    for (int64_t b = 0; b < nb; b++) sum += partial[b];
    free(partial);
    const double norm = sqrt(sum);
    *grad_norm = (float)norm;
    if (tr->clip > 0.0f && norm > tr->clip) j.scale = (float)(grad_scale * (tr->clip / norm));
    tr->step++;
    j.lr = lr;
    j.bc1 = 1.0f - powf(tr->beta1, (float)tr->step);
    j.bc2 = 1.0f - powf(tr->beta2, (float)tr->step);
    pool_parallel_for(nb, 1, update_task, &j);
    /* rules that follow the step (the MoE bias's load balancing), before Ŵ is refreshed */
    for (int32_t l = 0; l < tr->hp.n_layer; l++) {
        const tblock *b = &tr->blocks[l];
        const tacts *a = &tr->acts[train_layer_inst(tr, l, 0)];
        if (b->mixer->after_update) b->mixer->after_update(tr, b->mixer_params, a->mixer_acts);
        if (b->ffn->after_update) b->ffn->after_update(tr, b->ffn_params, a->ffn_acts);
    }
    train_requantize(tr);
    return BRAID_OK;
}
