/*
 * chimera.c — the Chimera forward, ARCHITECTURES.md §2.0, with Parcae looping (§2.11).
 *
 *   x_t ← E[id_t]                                   token_embd [V, D], F32 or F16, no scaling
 *         + Σ G[row(n-gram ending at t)]            token_ngram, if the model has one (ngram.h)
 *   layers run in order; a looping model runs prelude, parcae_loop (below), coda
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
#include "ngram.h"
#include "threadpool.h"
#include "titans.h"
#include "tsp.h"

/* ---- embedding --------------------------------------------------------------- */

static void add_fmat_row(float *x, fmat t, int64_t row, int64_t D) {
    if (t.type == GGML_TYPE_F32) {
        const float *r = (const float *)t.data + row * D;
        for (int64_t j = 0; j < D; j++) x[j] += r[j];
    } else {
        const uint16_t *r = (const uint16_t *)t.data + row * D;
        for (int64_t j = 0; j < D; j++) x[j] += half_to_float(r[j]);
    }
}

/* Adds the hashed n-gram rows (ngram.h) to x [n, D] and moves the history in `hist` (the state's
 * order−1 floats, token + 1 each, oldest first, 0 = unknown) past the n tokens. A history value
 * that is not a token + 1 (a hand-edited state blob) counts as unknown rather than indexing
 * past the table's key space. */
static void embed_ngrams(float *x, const braid_model *m, float *hist, const int32_t *tokens, int64_t n) {
    const int64_t D = m->hp.n_embd, V = m->hp.n_vocab;
    const int32_t k = m->hp.ngram_order - 1;
    int32_t h[NGRAM_MAX_ORDER - 1];
    for (int32_t i = 0; i < k; i++) {
        const float v = hist[i];
        h[i] = v >= 1.0f && v <= (float)V && v == floorf(v) ? (int32_t)v - 1 : -1;
    }
    for (int64_t t = 0; t < n; t++) {
        /* order j+1 uses the last j tokens of the history: h[k-j .. k-1] */
        for (int32_t j = 1; j <= k; j++) {
            const int32_t *hj = h + (k - j);
            int known = 1;
            for (int32_t i = 0; i < j; i++) known &= hj[i] >= 0;
            if (known) add_fmat_row(x + t * D, m->token_ngram, ngram_row(hj, j, tokens[t], V, m->ngram_rows), D);
        }
        for (int32_t i = 0; i + 1 < k; i++) h[i] = h[i + 1];
        if (k > 0) h[k - 1] = tokens[t];
    }
    for (int32_t i = 0; i < k; i++) hist[i] = h[i] < 0 ? 0.0f : (float)(h[i] + 1);
}

static void embed(float *x, const braid_model *m, float *state, const int32_t *tokens, int64_t n) {
    const int64_t D = m->hp.n_embd;
    for (int64_t t = 0; t < n; t++) {
        float *xt = x + t * D;
        if (m->token_embd.type == GGML_TYPE_F32) {
            memcpy(xt, (const float *)m->token_embd.data + (int64_t)tokens[t] * D, (size_t)D * sizeof(float));
        } else {
            const uint16_t *row = (const uint16_t *)m->token_embd.data + (int64_t)tokens[t] * D;
            for (int64_t j = 0; j < D; j++) xt[j] = half_to_float(row[j]);
        }
    }
    if (m->hp.ngram_order) embed_ngrams(x, m, state + m->ngram_state, tokens, n);
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
    fmat_mul(j->logits, j->m->hp.n_vocab, j->m->token_embd, j->h, j->n, j->m->hp.n_embd, r0, r1);
}

/* ---- span-engine risk gate (§2.13) ----------------------------------------------- */

/* h [n, D] in place: risk = σ(w_risk·h), h ← h ⊙ σ(W_rg [h ; risk]). Float linears
 * (W_rg F32 or F16) through fmat_mul (row-equal), so batching does not change the bits. */
static void span_gate(float *h, int64_t n, braid_context *ctx) {
    const braid_model *m = ctx->model;
    const int64_t D = m->hp.n_embd;
    float *in = ctx->span_in; /* [n, D+1] */
    for (int64_t t = 0; t < n; t++) memcpy(in + t * (D + 1), h + t * D, sizeof(float) * (size_t)D);
    fmat_mul(in + D, D + 1, fmat_f32(m->risk_w), h, n, D, 0, 1); /* one row: on this thread, no pool pass */
    for (int64_t t = 0; t < n; t++) {
        float *r = in + t * (D + 1) + D;
        *r = 1.0f / (1.0f + expf(-*r));
    }
    linear_op gate = {.y = ctx->span_g, .ldy = D, .fm = m->gate_w, .rows = D};
    linear_run(&gate, 1, NULL, in, n, D + 1);
    for (int64_t i = 0; i < n * D; i++) h[i] *= 1.0f / (1.0f + expf(-ctx->span_g[i]));
}

/* ---- forward -------------------------------------------------------------------- */

static int poll_abort(braid_context *ctx) { return atomic_exchange(&ctx->abort, 0) != 0; }

/* Pre-norm residual block il on x [n, D], with the layer's state copy `copy`
 * (the loop iteration for a loop layer, else 0). */
static int32_t run_block(braid_context *ctx, int32_t il, int32_t copy, int64_t n) {
    const braid_model *m = ctx->model;
    const model_hparams *hp = &m->hp;
    const int64_t D = hp->n_embd;
    const float eps = hp->rms_eps;
    if (poll_abort(ctx)) return braid_fail(BRAID_ABORTED, "eval aborted before layer %d", il);
    const model_layer *L = &m->layers[il];
    float *state = ctx->state + L->state_offset + (int64_t)copy * L->state_floats;

    rmsnorm_rows(ctx->xn, ctx->x, L->attn_norm, n, D, eps);
    switch (L->mixer_type) {
    case MIXER_GD: gdn_forward(ctx->y, state, ctx->xn, L->mixer, &hp->gdn, n, D, eps, &ctx->gdn); break;
    case MIXER_XM: mlstm_forward(ctx->y, state, ctx->xn, L->mixer, &hp->xm, n, D, &ctx->xm); break;
    case MIXER_TM: titans_forward(ctx->y, state, ctx->xn, L->mixer, &hp->tm, n, D, &ctx->tm); break;
    case MIXER_SK: tsp_forward(ctx->y, state, ctx->xn, L->mixer, &hp->gdn, &hp->sk, n, D, eps, &ctx->gdn, &ctx->sk); break;
    }
    add_rows(ctx->x, ctx->y, n * D);

    rmsnorm_rows(ctx->xn, ctx->x, L->ffn_norm, n, D, eps);
    switch (L->ffn_type) {
    case FFN_DENSE: ffn_forward(ctx->y, ctx->xn, L->ffn, n, D, hp->n_ff, ctx->ffn_gate, ctx->ffn_up, ctx->act); break;
    case FFN_MOE: moe_forward(ctx->y, ctx->xn, L->ffn, &hp->moe, n, D, &ctx->moe); break;
    }
    add_rows(ctx->x, ctx->y, n * D);
    return BRAID_OK;
}

/* Mean |a − b| over D floats, accumulated in double (the adaptive exit's convergence measure). */
static double mean_abs_diff(const float *a, const float *b, int64_t D) {
    double s = 0;
    for (int64_t j = 0; j < D; j++) s += fabs((double)a[j] - (double)b[j]);
    return s / (double)D;
}

/* Parcae (§2.11) on x [n, D] = the prelude output; leaves the coda input in x.
 *   e ← RMSNorm(x; prelude_norm);  inj ← Δ ⊙ (B e)
 *   h₀ = 0;  for k = 1..n_loops:  h ← R_k(Ā ⊙ h + inj)      R_k = the loop layers with state copy k-1
 *   x ← C h
 * Without adaptive exit every token of the call runs n_loops iterations; iterations k > n_loops
 * are not run, so their states stay as they were (frozen; docs/architecture.md). With adaptive
 * exit (ctx->loop_exit > 0) a token stops after iteration k ≥ loop_exit_min once
 * mean|h_k − h_{k−1}| < loop_exit: the rows still looping are compacted in token order (x, inj,
 * loop_prev; loop_row maps row → token), so iteration k+1's states see exactly the tokens that
 * run it, in order — the frozen rule per token, the same bits as token by token with those
 * counts. B and C are float linears (F32 or F16) through linear_run (row-equal kernels), so
 * batching does not change the bits. */
static int32_t parcae_loop(braid_context *ctx, int64_t n) {
    const braid_model *m = ctx->model;
    const model_hparams *hp = &m->hp;
    const parcae_weights *pw = &m->parcae;
    const int64_t D = hp->n_embd;
    const int32_t n_loops = ctx->n_loops;
    const int exit_on = ctx->loop_exit > 0.0f && ctx->loop_exit_min < n_loops;
    rmsnorm_rows(ctx->xn, ctx->x, pw->prelude_norm, n, D, hp->rms_eps);
    linear_op b = {.y = ctx->inj, .ldy = D, .fm = pw->b, .rows = D};
    linear_run(&b, 1, NULL, ctx->xn, n, D);
    for (int64_t t = 0; t < n; t++)
        for (int64_t j = 0; j < D; j++) ctx->inj[t * D + j] *= pw->delta[j];
    int64_t live = n; /* rows still looping: the first `live` rows of x, inj, loop_prev */
    if (exit_on) {
        for (int64_t t = 0; t < n; t++) ctx->loop_row[t] = (int32_t)t;
        memset(ctx->loop_prev, 0, sizeof(float) * (size_t)(n * D)); /* h_0 = 0 */
    }
    ctx->last_loop_sum = 0;
    for (int32_t k = 0; k < n_loops && live > 0; k++) {
        /* x holds h_k; h_0 = 0 so the first input is inj exactly */
        for (int64_t t = 0; t < live; t++) {
            float *xt = ctx->x + t * D;
            const float *it = ctx->inj + t * D;
            if (k == 0)
                memcpy(xt, it, sizeof(float) * (size_t)D);
            else
                for (int64_t j = 0; j < D; j++) xt[j] = pw->abar[j] * xt[j] + it[j];
        }
        for (int32_t il = hp->loop.loop0; il < hp->loop.coda0; il++) {
            int32_t st = run_block(ctx, il, k, live);
            if (st) return st;
        }
        ctx->last_loop_sum += live;
        if (!exit_on) continue;
        /* x holds h_{k+1}, loop_prev h_k: rows that stop (or reach the cap) move to loop_out */
        const int32_t done = k + 1;
        const int may_stop = done >= ctx->loop_exit_min;
        int64_t keep = 0;
        for (int64_t r = 0; r < live; r++) {
            float *xr = ctx->x + r * D;
            const int32_t tok = ctx->loop_row[r];
            if (done == n_loops || (may_stop && mean_abs_diff(xr, ctx->loop_prev + r * D, D) < (double)ctx->loop_exit)) {
                memcpy(ctx->loop_out + (int64_t)tok * D, xr, sizeof(float) * (size_t)D);
                if (tok == n - 1) ctx->last_loops = done;
                continue;
            }
            if (keep != r) { /* stable compaction: row r → row keep < r */
                memcpy(ctx->x + keep * D, xr, sizeof(float) * (size_t)D);
                memcpy(ctx->inj + keep * D, ctx->inj + r * D, sizeof(float) * (size_t)D);
            }
            memcpy(ctx->loop_prev + keep * D, ctx->x + keep * D, sizeof(float) * (size_t)D);
            ctx->loop_row[keep++] = tok;
        }
        live = keep;
    }
    if (exit_on)
        memcpy(ctx->x, ctx->loop_out, sizeof(float) * (size_t)(n * D));
    else
        ctx->last_loops = n_loops;
    linear_op c = {.y = ctx->y, .ldy = D, .fm = pw->c, .rows = D};
    linear_run(&c, 1, NULL, ctx->x, n, D);
    memcpy(ctx->x, ctx->y, sizeof(float) * (size_t)(n * D));
    return BRAID_OK;
}

int32_t chimera_forward(braid_context *ctx, const int32_t *tokens, int64_t n, int all_logits, float *logits,
                        float *hidden) {
    const braid_model *m = ctx->model;
    const model_hparams *hp = &m->hp;
    const int64_t D = hp->n_embd;
    const float eps = hp->rms_eps;
    int32_t st;

    embed(ctx->x, m, ctx->state, tokens, n);
    if (hp->loop.enabled) {
        for (int32_t il = 0; il < hp->loop.loop0; il++)
            if ((st = run_block(ctx, il, 0, n))) return st;
        if ((st = parcae_loop(ctx, n))) return st;
        for (int32_t il = hp->loop.coda0; il < hp->n_layer; il++)
            if ((st = run_block(ctx, il, 0, n))) return st;
    } else {
        for (int32_t il = 0; il < hp->n_layer; il++)
            if ((st = run_block(ctx, il, 0, n))) return st;
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
    pool_parallel_for_dynamic(hp->n_vocab, 16, head_task, &hj);
    return BRAID_OK;
}
