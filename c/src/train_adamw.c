/*
 * train_adamw.c — AdamW (decoupled weight decay) with global-norm clipping.
 *
 * The arenas are walked in fixed blocks of ADAM_BLOCK floats: the gradient
 * norm is a sum of per-block partial sums added in block order, so the result
 * does not depend on how many threads ran the blocks.
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

static void norm_task(void *arg, int64_t b0, int64_t b1, int32_t thread) {
    adam_job *j = arg;
    const braid_trainer *tr = j->tr;
    for (int64_t b = b0; b < b1; b++) {
        int64_t i0 = b * ADAM_BLOCK, i1 = BRAID_MIN(tr->n_floats, i0 + ADAM_BLOCK);
        double s = 0.0;
        for (int64_t i = i0; i < i1; i++) {
            double g = (double)tr->g[i] * j->scale;
            s += g * g;
        }
        j->partial[b] = s;
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
