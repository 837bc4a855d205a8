/*
 * chimera.c — the Chimera forward, ARCHITECTURES.md §2.0 (no looping, no span
 * gate yet: the first slice is GD mixers + dense SwiGLU FFNs).
 *
 *   x_t ← E[id_t]                                   token_embd [V, D], F32 or F16, no scaling
 *   for each layer i:  x ← x + Mixer_i(RMSNorm(x; attn_norm_i))     §2.1, §2.5
 *                      x ← x + FFN_i(RMSNorm(x; ffn_norm_i))        §2.3
 *   h ← RMSNorm(x; output_norm)
 *   logits_t ← E h_t                                tied head: gemm against token_embd
 */
#include "chimera.h"

#include <string.h>

#include "common.h"
#include "ffn.h"
#include "gdn.h"
#include "threadpool.h"

/* ---- embedding --------------------------------------------------------------- */

static void embed(float *x, const braid_model *m, const int32_t *tokens, int64_t n) {
    const int64_t D = m->hp.n_embd;
    for (int64_t t = 0; t < n; t++) {
        float *xt = x + t * D;
        if (m->embd_type == GGML_TYPE_F32) {
            memcpy(xt, (const float *)m->token_embd + (int64_t)tokens[t] * D, (size_t)D * sizeof(float));
        } else {
            const uint16_t *row = (const uint16_t *)m->token_embd + (int64_t)tokens[t] * D;
            for (int64_t j = 0; j < D; j++) xt[j] = half_to_float(row[j]);
        }
    }
}

/* ---- row-wise RMSNorm ---------------------------------------------------------- */

static void rmsnorm_rows(float *y, const float *x, const float *w, int64_t n, int64_t D, float eps) {
    const kernel_table *kt = kernels();
    for (int64_t t = 0; t < n; t++) kt->rmsnorm(y + t * D, x + t * D, w, D, eps);
}

static void add_rows(float *x, const float *y, int64_t count) {
    for (int64_t i = 0; i < count; i++) x[i] += y[i];
}

/* ---- tied LM head --------------------------------------------------------------- */

typedef struct {
    float *logits; /* [n, V] */
    const braid_model *m;
    const float *h; /* [n, D] */
    int64_t n;
} head_job;

static void head_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
    const head_job *j = arg;
    const kernel_table *kt = kernels();
    const int64_t V = j->m->hp.n_vocab, D = j->m->hp.n_embd;
    if (j->m->embd_type == GGML_TYPE_F32) {
        const float *E = j->m->token_embd;
        if (j->n == 1)
            kt->gemv_f32(j->logits, E, j->h, D, r0, r1);
        else
            kt->gemm_f32(j->logits, V, E, j->h, j->n, D, r0, r1);
    } else {
        const uint16_t *E = j->m->token_embd;
        if (j->n == 1)
            kt->gemv_f16(j->logits, E, j->h, D, r0, r1);
        else
            kt->gemm_f16(j->logits, V, E, j->h, j->n, D, r0, r1);
    }
}

/* ---- forward -------------------------------------------------------------------- */

static int poll_abort(braid_context *ctx) { return atomic_exchange(&ctx->abort, 0) != 0; }

int32_t chimera_forward(braid_context *ctx, const int32_t *tokens, int64_t n, int all_logits, float *logits,
                        float *hidden) {
    const braid_model *m = ctx->model;
    const model_hparams *hp = &m->hp;
    const int64_t D = hp->n_embd;
    const float eps = hp->rms_eps;

    embed(ctx->x, m, tokens, n);
    for (int32_t il = 0; il < hp->n_layer; il++) {
        if (poll_abort(ctx)) return braid_fail(BRAID_ABORTED, "eval aborted before layer %d", il);
        const model_layer *L = &m->layers[il];
        float *state = ctx->state + L->state_offset;

        rmsnorm_rows(ctx->xn, ctx->x, L->attn_norm, n, D, eps);
        switch (L->mixer_type) {
        case MIXER_GD: gdn_forward(ctx->y, state, ctx->xn, L->mixer, &hp->gdn, n, D, eps, &ctx->gdn); break;
        }
        add_rows(ctx->x, ctx->y, n * D);

        rmsnorm_rows(ctx->xn, ctx->x, L->ffn_norm, n, D, eps);
        switch (L->ffn_type) {
        case FFN_DENSE:
            ffn_forward(ctx->y, ctx->xn, L->ffn, n, D, hp->n_ff, ctx->ffn_gate, ctx->ffn_up, ctx->act);
            break;
        }
        add_rows(ctx->x, ctx->y, n * D);
    }
    if (poll_abort(ctx)) return braid_fail(BRAID_ABORTED, "eval aborted before the output head");

    /* final norm: all rows for hidden / all_logits, else only the last */
    int64_t first = (hidden || all_logits) ? 0 : n - 1, rows = n - first;
    rmsnorm_rows(ctx->xn, ctx->x + first * D, m->output_norm, rows, D, eps);
    if (hidden) {
        memcpy(hidden, ctx->xn, (size_t)(rows * D) * sizeof(float));
        return BRAID_OK;
    }
    head_job hj = {logits, m, ctx->xn, rows};
    pool_parallel_for(hp->n_vocab, 16, head_task, &hj);
    return BRAID_OK;
}
