/*
 * chimera.c — the Chimera forward, ARCHITECTURES.md §2.0 (no Parcae looping yet).
 *
 *   x_t ← E[id_t]                                   token_embd [V, D], F32 or F16, no scaling
 *   for each layer i:  x ← x + Mixer_i(RMSNorm(x; attn_norm_i))     §2.1; GD §2.5, XM §2.6, TM §2.8-P, SK §2.9
 *                      x ← x + FFN_i(RMSNorm(x; ffn_norm_i))        SwiGLU §2.3 or MoE §2.10
 *   h ← RMSNorm(x; output_norm)
 *   h ← h ⊙ σ(W_rg [h ; σ(w_risk·h)])               span-engine risk gate §2.13 (if the model has one)
 *   logits_t ← E h_t                                tied head: gemm against token_embd
 */
#include "chimera.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "ffn.h"
#include "gdn.h"
#include "mlstm.h"
#include "moe.h"
#include "threadpool.h"
#include "titans.h"
#include "tsp.h"

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

/* ---- span-engine risk gate (§2.13) ----------------------------------------------- */

/* h [n, D] in place: risk = σ(w_risk·h), h ← h ⊙ σ(W_rg [h ; risk]). fp32 linears
 * through gemm_f32/gemv_f32 (row-equal), so batching does not change the bits. */
static void span_gate(float *h, int64_t n, braid_context *ctx) {
    const braid_model *m = ctx->model;
    const int64_t D = m->hp.n_embd;
    float *in = ctx->span_in; /* [n, D+1] */
    for (int64_t t = 0; t < n; t++) memcpy(in + t * (D + 1), h + t * D, sizeof(float) * (size_t)D);
    linear_op risk = {.y = in + D, .ldy = D + 1, .f32 = m->risk_w, .rows = 1};
    linear_run(&risk, 1, NULL, h, n, D);
    for (int64_t t = 0; t < n; t++) {
        float *r = in + t * (D + 1) + D;
        *r = 1.0f / (1.0f + expf(-*r));
    }
    linear_op gate = {.y = ctx->span_g, .ldy = D, .f32 = m->gate_w, .rows = D};
    linear_run(&gate, 1, NULL, in, n, D + 1);
    for (int64_t i = 0; i < n * D; i++) h[i] *= 1.0f / (1.0f + expf(-ctx->span_g[i]));
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
        case MIXER_XM: mlstm_forward(ctx->y, state, ctx->xn, L->mixer, &hp->xm, n, D, &ctx->xm); break;
        case MIXER_TM: titans_forward(ctx->y, state, ctx->xn, L->mixer, &hp->tm, n, D, &ctx->tm); break;
        case MIXER_SK:
            tsp_forward(ctx->y, state, ctx->xn, L->mixer, &hp->gdn, &hp->sk, n, D, eps, &ctx->gdn, &ctx->sk);
            break;
        }
        add_rows(ctx->x, ctx->y, n * D);

        rmsnorm_rows(ctx->xn, ctx->x, L->ffn_norm, n, D, eps);
        switch (L->ffn_type) {
        case FFN_DENSE:
            ffn_forward(ctx->y, ctx->xn, L->ffn, n, D, hp->n_ff, ctx->ffn_gate, ctx->ffn_up, ctx->act);
            break;
        case FFN_MOE: moe_forward(ctx->y, ctx->xn, L->ffn, &hp->moe, n, D, &ctx->moe); break;
        }
        add_rows(ctx->x, ctx->y, n * D);
    }
    if (poll_abort(ctx)) return braid_fail(BRAID_ABORTED, "eval aborted before the output head");

    /* final norm: all rows for hidden / all_logits, else only the last */
    int64_t first = (hidden || all_logits) ? 0 : n - 1, rows = n - first;
    rmsnorm_rows(ctx->xn, ctx->x + first * D, m->output_norm, rows, D, eps);
    if (hp->span_gate) span_gate(ctx->xn, rows, ctx);
    if (hidden) {
        memcpy(hidden, ctx->xn, (size_t)(rows * D) * sizeof(float));
        return BRAID_OK;
    }
    head_job hj = {logits, m, ctx->xn, rows};
    pool_parallel_for(hp->n_vocab, 16, head_task, &hj);
    return BRAID_OK;
}
