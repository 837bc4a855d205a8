/*
 * train_model.c — the Chimera forward and backward for training, whole model
 * (ARCHITECTURES.md §2.0; the inference forward is chimera.c):
 *
 *   x ← E[ids]
 *   per block l:  x ← x + Mixer_l(RMSNorm(x; attn_norm))    a train_layer_ops kind (GD: train_gdn.c)
 *                 x ← x + FFN_l(RMSNorm(x; ffn_norm))       (SwiGLU: train_ffn.c)
 *   h ← RMSNorm(x; output_norm);  logits ← h Eᵀ (tied);  loss = Σ CE over targets ≥ 0
 *
 * The backward walks the same list in reverse; dx is the gradient of the
 * residual stream, and each branch adds its input gradient back into it.
 * Sequences in a batch are independent (each starts from a zero state).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels.h"
#include "ngram.h"
#include "threadpool.h"
#include "train.h"
#include "train_ops.h"

void train_act_quant(const braid_trainer *tr, float *y, const float *x, int64_t n, int64_t cols) {
    if (tr->quant)
        fq_act_rows(y, x, n, cols);
    else
        memcpy(y, x, sizeof(float) * (size_t)(n * cols));
}

/* ---- binding: which kind each block's mixer and FFN is ---------------------------------- */

static const train_layer_ops *mixer_ops(mixer_kind k) {
    switch (k) {
    case MIXER_GD: return &train_gdn_ops;
    case MIXER_XM: return &train_mlstm_ops;
    case MIXER_TM: return &train_titans_ops;
    case MIXER_SK: return &train_tsp_ops;
    default: return NULL;
    }
}

static const train_layer_ops *ffn_ops(ffn_kind k) {
    switch (k) {
    case FFN_DENSE: return &train_ffn_ops;
    case FFN_MOE: return &train_moe_ops;
    default: return NULL;
    }
}

int32_t train_inst_layer(const braid_trainer *tr, int32_t i) {
    const loop_hparams *lp = &tr->hp.loop;
    if (!lp->enabled || i < lp->loop0) return i;
    const int32_t nl = lp->coda0 - lp->loop0, loop_end = lp->loop0 + nl * lp->max;
    return i < loop_end ? lp->loop0 + (i - lp->loop0) % nl : lp->coda0 + (i - loop_end);
}

int32_t train_layer_inst(const braid_trainer *tr, int32_t il, int32_t k) {
    const loop_hparams *lp = &tr->hp.loop;
    if (!lp->enabled || il < lp->loop0) return il;
    const int32_t nl = lp->coda0 - lp->loop0;
    return il < lp->coda0 ? lp->loop0 + k * nl + (il - lp->loop0) : lp->loop0 + nl * lp->max + (il - lp->coda0);
}

int32_t train_model_bind(braid_trainer *tr, const braid_model *m) {
    const model_hparams *hp = &m->hp;
    static const char *mixer_names[] = {"", "GD", "XM", "TM", "SK"};
    tr->n_inst = hp->loop.enabled ? hp->n_layer + (hp->loop.coda0 - hp->loop.loop0) * (hp->loop.max - 1) : hp->n_layer;
    tr->n_loops = hp->loop.enabled ? hp->loop.def : 1;
    tr->blocks = calloc((size_t)hp->n_layer, sizeof(tblock));
    tr->acts = calloc((size_t)tr->n_inst, sizeof(tacts));
    if (!tr->blocks || !tr->acts) return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory");
    size_t bytes = 0;
    for (int32_t il = 0; il < hp->n_layer; il++) {
        tblock *b = &tr->blocks[il];
        b->mixer = mixer_ops(m->layers[il].mixer_type);
        b->ffn = ffn_ops(m->layers[il].ffn_type);
        if (!b->mixer)
            return braid_fail(BRAID_ERR_UNSUPPORTED, "trainer: layer %d is %s, which has no backward yet", il,
                              mixer_names[m->layers[il].mixer_type]);
        if (!b->ffn) return braid_fail(BRAID_ERR_UNSUPPORTED, "trainer: layer %d's FFN kind has no backward yet", il);
        bytes += ((b->mixer->params_size + 15) & ~(size_t)15) + ((b->ffn->params_size + 15) & ~(size_t)15);
    }
    for (int32_t i = 0; i < tr->n_inst; i++) {
        const tblock *b = &tr->blocks[train_inst_layer(tr, i)];
        bytes += ((b->mixer->acts_size + 15) & ~(size_t)15) + ((b->ffn->acts_size + 15) & ~(size_t)15);
    }
    /* one block of memory behind every kind-specific params/acts struct (freed with the trainer) */
    char *mem = calloc(1, bytes + 16);
    if (!mem) return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory");
    tr->kind_mem = mem;
    for (int32_t il = 0; il < hp->n_layer; il++) {
        tblock *b = &tr->blocks[il];
        b->mixer_params = mem;
        mem += (b->mixer->params_size + 15) & ~(size_t)15;
        b->ffn_params = mem;
        mem += (b->ffn->params_size + 15) & ~(size_t)15;
        int32_t st = train_find_block_param(tr, il, "attn_norm.weight", &b->attn_norm);
        if (!st) st = train_find_block_param(tr, il, "ffn_norm.weight", &b->ffn_norm);
        if (!st) st = b->mixer->bind(tr, il, b->mixer_params);
        if (!st) st = b->ffn->bind(tr, il, b->ffn_params);
        if (st) return st;
    }
    for (int32_t i = 0; i < tr->n_inst; i++) {
        const tblock *b = &tr->blocks[train_inst_layer(tr, i)];
        tr->acts[i].mixer_acts = mem;
        mem += (b->mixer->acts_size + 15) & ~(size_t)15;
        tr->acts[i].ffn_acts = mem;
        mem += (b->ffn->acts_size + 15) & ~(size_t)15;
    }
    tr->tok_embd = train_param_find(tr, "token_embd.weight");
    tr->out_norm = train_param_find(tr, "output_norm.weight");
    if (tr->tok_embd < 0 || tr->out_norm < 0)
        return braid_fail(BRAID_ERR_FORMAT, "trainer: token_embd.weight or output_norm.weight is missing");
    tr->tok_ngram = -1;
    if (hp->ngram_order) {
        tr->tok_ngram = train_param_find(tr, "token_ngram.weight");
        if (tr->tok_ngram < 0) return braid_fail(BRAID_ERR_FORMAT, "trainer: token_ngram.weight is missing");
        tr->ngram_rows = tr->params[tr->tok_ngram].rows;
    }
    if (hp->loop.enabled) {
        int32_t st = train_parcae_bind(tr);
        if (st) return st;
    }
    if (hp->span_gate) {
        int32_t st = train_span_bind(tr);
        if (st) return st;
    }
    return BRAID_OK;
}

/* ---- activation memory -------------------------------------------------------------------- */

void train_acts_free(braid_trainer *tr) {
    aligned_free(tr->arena);
    aligned_free(tr->scratch);
    tr->arena = NULL;
    tr->scratch = NULL;
    tr->cap_tokens = tr->cap_B = tr->cap_T = 0;
}

/* Lays out every activation and gradient buffer for B·T tokens; returns the float count. */
static int64_t layout(braid_trainer *tr, float *base, int64_t B, int64_t T) {
    const model_hparams *hp = &tr->hp;
    const int64_t N = B * T, D = hp->n_embd, V = hp->n_vocab;
    int64_t c = 0, gmax = 2 * N * D; /* the Parcae injection backward borrows N·D + D of it */
    for (int32_t i = 0; i < tr->n_inst; i++) {
        const tblock *b = &tr->blocks[train_inst_layer(tr, i)];
        tacts *a = &tr->acts[i];
        tacts t = *a; /* the counting pass writes into a copy */
        tacts *dst = base ? a : &t;
        dst->x_in = train_carve(base, &c, N * D);
        dst->rstd_a = train_carve(base, &c, N);
        dst->xn_a = train_carve(base, &c, N * D);
        dst->xq_a = train_carve(base, &c, N * D);
        dst->x_mid = train_carve(base, &c, N * D);
        dst->rstd_f = train_carve(base, &c, N);
        dst->xn_f = train_carve(base, &c, N * D);
        dst->xq_f = train_carve(base, &c, N * D);
        b->mixer->layout(tr, base, &c, B, T, a->mixer_acts);
        b->ffn->layout(tr, base, &c, B, T, a->ffn_acts);
        gmax = BRAID_MAX(gmax, BRAID_MAX(b->mixer->grad_floats(tr, B, T), b->ffn->grad_floats(tr, B, T)));
    }
    if (hp->loop.enabled) train_parcae_layout(tr, base, &c, N);
    if (hp->span_gate) train_span_layout(tr, base, &c, N);
    tgrads g;
    g.dx = train_carve(base, &c, N * D);
    g.dxn = train_carve(base, &c, N * D);
    g.dy = train_carve(base, &c, N * D);
    float *gscratch = train_carve(base, &c, gmax);
    float *x_final = train_carve(base, &c, N * D);
    float *rstd_final = train_carve(base, &c, N);
    float *hfin = train_carve(base, &c, N * D);
    float *logits = train_carve(base, &c, N * V);
    if (base) {
        tr->gr = g;
        tr->gscratch = gscratch;
        tr->x_final = x_final;
        tr->rstd_final = rstd_final;
        tr->hfin = hfin;
        tr->logits = logits;
    }
    return c;
}

/* Sizes the buffers for B sequences of T tokens (grows only; called before a pass, never inside). */
static int32_t ensure_capacity(braid_trainer *tr, int64_t B, int64_t T) {
    if (B <= tr->cap_B && T == tr->cap_T) return BRAID_OK;
    int64_t nB = BRAID_MAX(B, T == tr->cap_T ? tr->cap_B : 0);
    train_acts_free(tr);
    int64_t floats = layout(tr, NULL, nB, T), per_thread = 0;
    for (int32_t l = 0; l < tr->hp.n_layer; l++) {
        per_thread = BRAID_MAX(per_thread, tr->blocks[l].mixer->thread_floats(tr, T));
        /* (every layer has one instance at least, so the per-layer maxima cover all instances) */
        per_thread = BRAID_MAX(per_thread, tr->blocks[l].ffn->thread_floats(tr, T));
    }
    tr->arena = aligned_alloc64(sizeof(float) * (size_t)floats);
    tr->scratch_per_thread = (per_thread + 15) & ~(int64_t)15;
    tr->scratch = aligned_alloc64(sizeof(float) * (size_t)BRAID_MAX(1, tr->scratch_per_thread * pool_threads()));
    if (!tr->arena || !tr->scratch) {
        train_acts_free(tr);
        return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory for activations of %lld x %lld tokens",
                          (long long)nB, (long long)T);
    }
    layout(tr, tr->arena, nB, T);
    tr->cap_B = nB;
    tr->cap_T = T;
    tr->cap_tokens = nB * T;
    return BRAID_OK;
}

static void add(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

/* The hashed n-gram embedding (ngram.h) over B rows of T tokens: each row starts with an unknown
 * history, as a served context does. backward = 0: x[t] += G[row]; 1: dG[row] += x[t] (x = dx).
 * With quantization on, a table stored as F16 is read through F16 rounding, as the served model
 * reads it (the gradient passes straight through the rounding); off, it is plain FP32. */
static void ngram_rows_apply(braid_trainer *tr, float *x, const int32_t *tokens, int64_t B, int64_t T, int backward) {
    const int64_t D = tr->hp.n_embd, V = tr->hp.n_vocab, M = tr->ngram_rows;
    const int32_t k = tr->hp.ngram_order - 1;
    const int f16 = tr->quant && tr->params[tr->tok_ngram].gguf_type == GGML_TYPE_F16;
    float *G = backward ? tp_g(tr, tr->tok_ngram) : tp_w(tr, tr->tok_ngram);
    for (int64_t b = 0; b < B; b++)
        for (int64_t p = 0; p < T; p++) {
            const int64_t t = b * T + p;
            for (int32_t j = 1; j <= k && j <= p; j++) {
                float *g = G + ngram_row(tokens + t - j, j, tokens[t], V, M) * D, *xt = x + t * D;
                if (backward) add(g, xt, D);
                else if (f16)
                    for (int64_t i = 0; i < D; i++) xt[i] += half_to_float(float_to_half(g[i]));
                else add(xt, g, D);
            }
        }
}

/* ---- forward and backward ------------------------------------------------------------------- */

/* Block il (instance i) on acts[i].x_in → out [N, D]. */
static void block_fwd(braid_trainer *tr, int32_t il, int32_t i, float *out, int64_t B, int64_t T) {
    const int64_t N = B * T, D = tr->hp.n_embd;
    const float eps = tr->hp.rms_eps;
    const tblock *bl = &tr->blocks[il];
    tacts *a = &tr->acts[i];
    rmsnorm_fwd(a->xn_a, a->rstd_a, a->x_in, tp_w(tr, bl->attn_norm), N, D, eps);
    train_act_quant(tr, a->xq_a, a->xn_a, N, D);
    bl->mixer->fwd(tr, bl->mixer_params, a->mixer_acts, a->xn_a, a->xq_a, a->x_mid, B, T);
    add(a->x_mid, a->x_in, N * D);
    rmsnorm_fwd(a->xn_f, a->rstd_f, a->x_mid, tp_w(tr, bl->ffn_norm), N, D, eps);
    train_act_quant(tr, a->xq_f, a->xn_f, N, D);
    bl->ffn->fwd(tr, bl->ffn_params, a->ffn_acts, a->xn_f, a->xq_f, out, B, T);
    add(out, a->x_mid, N * D);
}

/* gr->dx: in ∂L/∂(block output), out ∂L/∂(block input). */
static void block_bwd(braid_trainer *tr, int32_t il, int32_t i, int64_t B, int64_t T) {
    const int64_t N = B * T, D = tr->hp.n_embd;
    const tblock *bl = &tr->blocks[il];
    const tacts *a = &tr->acts[i];
    tgrads *gr = &tr->gr;
    /* x_out = x_mid + FFN(RMSNorm(x_mid)): dx flows to x_mid unchanged, plus the branch */
    memcpy(gr->dy, gr->dx, sizeof(float) * (size_t)(N * D));
    bl->ffn->bwd(tr, bl->ffn_params, a->ffn_acts, a->xn_f, a->xq_f, gr->dxn, gr->dy, B, T);
    rmsnorm_bwd(gr->dx, tp_g(tr, bl->ffn_norm), gr->dxn, a->x_mid, a->rstd_f, tp_w(tr, bl->ffn_norm), N, D);
    /* x_mid = x_in + Mixer(RMSNorm(x_in)) */
    memcpy(gr->dy, gr->dx, sizeof(float) * (size_t)(N * D));
    bl->mixer->bwd(tr, bl->mixer_params, a->mixer_acts, a->xn_a, a->xq_a, gr->dxn, gr->dy, B, T);
    rmsnorm_bwd(gr->dx, tp_g(tr, bl->attn_norm), gr->dxn, a->x_in, a->rstd_a, tp_w(tr, bl->attn_norm), N, D);
}

int32_t train_model_step(braid_trainer *tr, const int32_t *tokens, const int32_t *targets, int64_t B, int64_t T,
                         int backward, double *loss_sum, int64_t *n_targets) {
    const model_hparams *hp = &tr->hp;
    const int64_t N = B * T, D = hp->n_embd, V = hp->n_vocab;
    for (int64_t i = 0; i < N; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            return braid_fail(BRAID_ERR_INVALID_ARG, "token %d at position %lld is outside the vocabulary (%lld)",
                              tokens[i], (long long)i, (long long)V);
        if (targets[i] >= V)
            return braid_fail(BRAID_ERR_INVALID_ARG, "target %d at position %lld is outside the vocabulary (%lld)",
                              targets[i], (long long)i, (long long)V);
    }
    int32_t st = ensure_capacity(tr, B, T);
    if (st) return st;
    const float eps = hp->rms_eps;
    const float *E = tp_w(tr, tr->tok_embd);

    /* ---- forward ---- */
    for (int64_t t = 0; t < N; t++)
        memcpy(tr->acts[0].x_in + t * D, E + (int64_t)tokens[t] * D, sizeof(float) * (size_t)D);
    if (tr->tok_ngram >= 0) ngram_rows_apply(tr, tr->acts[0].x_in, tokens, B, T, 0);
    const loop_hparams *lp = &hp->loop;
    const int32_t n = tr->n_loops;
    if (!lp->enabled) {
        for (int32_t l = 0; l < hp->n_layer; l++)
            block_fwd(tr, l, l, l + 1 < hp->n_layer ? tr->acts[l + 1].x_in : tr->x_final, B, T);
    } else {
        const int32_t nl = lp->coda0 - lp->loop0;
        for (int32_t l = 0; l < lp->loop0; l++) block_fwd(tr, l, l, l + 1 < lp->loop0 ? tr->acts[l + 1].x_in : tr->parcae.xp, B, T);
        train_parcae_inject(tr, N);
        for (int32_t k = 0; k < n; k++) {
            train_parcae_loop_input(tr, k, tr->acts[train_layer_inst(tr, lp->loop0, k)].x_in, N);
            for (int32_t j = 0; j < nl; j++) {
                const int32_t i = train_layer_inst(tr, lp->loop0 + j, k);
                block_fwd(tr, lp->loop0 + j, i, j + 1 < nl ? tr->acts[i + 1].x_in : tr->parcae.h + (int64_t)k * N * D, B, T);
            }
        }
        train_parcae_out(tr, n, tr->acts[train_layer_inst(tr, lp->coda0, 0)].x_in, N);
        for (int32_t l = lp->coda0; l < hp->n_layer; l++) {
            const int32_t i = train_layer_inst(tr, l, 0);
            block_fwd(tr, l, i, l + 1 < hp->n_layer ? tr->acts[i + 1].x_in : tr->x_final, B, T);
        }
    }
    rmsnorm_fwd(tr->hfin, tr->rstd_final, tr->x_final, tp_w(tr, tr->out_norm), N, D, eps);
    if (hp->span_gate) train_span_fwd(tr, tr->hfin, N);
    lin_fwd(tr->logits, tr->hfin, E, N, D, V);
    *loss_sum = xent_fwd_bwd(tr->logits, targets, N, V, n_targets, backward);
    if (isnan(*loss_sum)) {
        /* xent_fwd_bwd returns NaN for a failed allocation and NaN logits give a NaN sum: tell
         * the two apart, since the second is a diverged forward, not a full machine */
        for (int64_t i = 0; i < N * V; i++)
            if (!isfinite(tr->logits[i]))
                return braid_fail(BRAID_ERR_INVALID_ARG,
                                  "trainer: the forward produced non-finite logits (the weights or this input diverge)");
        return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory in the loss");
    }
    if (!backward) return BRAID_OK;

    /* ---- backward (tr->logits now holds ∂L/∂logits) ---- */
    tgrads *gr = &tr->gr;
    float *dE = tp_g(tr, tr->tok_embd);
    lin_bwd(gr->dxn, 0, dE, tr->logits, tr->hfin, E, N, D, V);
    if (hp->span_gate) train_span_bwd(tr, gr->dxn, N);
    memset(gr->dx, 0, sizeof(float) * (size_t)(N * D));
    rmsnorm_bwd(gr->dx, tp_g(tr, tr->out_norm), gr->dxn, tr->x_final, tr->rstd_final, tp_w(tr, tr->out_norm), N, D);
    if (!lp->enabled) {
        for (int32_t l = hp->n_layer - 1; l >= 0; l--) block_bwd(tr, l, l, B, T);
    } else {
        const int32_t nl = lp->coda0 - lp->loop0, k_first = train_parcae_first_grad_iter(tr, n);
        for (int32_t l = hp->n_layer - 1; l >= lp->coda0; l--) block_bwd(tr, l, train_layer_inst(tr, l, 0), B, T);
        train_parcae_out_bwd(tr, n, gr->dx, N);
        for (int32_t k = n - 1; k >= k_first; k--) {
            memcpy(gr->dx, tr->parcae.dh, sizeof(float) * (size_t)(N * D));
            for (int32_t j = nl - 1; j >= 0; j--) block_bwd(tr, lp->loop0 + j, train_layer_inst(tr, lp->loop0 + j, k), B, T);
            train_parcae_iter_bwd(tr, k, k_first, gr->dx, N);
        }
        train_parcae_inject_bwd(tr, gr->dx, tr->gscratch, N);
        for (int32_t l = lp->loop0 - 1; l >= 0; l--) block_bwd(tr, l, l, B, T);
    }
    for (int64_t t = 0; t < N; t++) add(dE + (int64_t)tokens[t] * D, gr->dx + t * D, D);
    if (tr->tok_ngram >= 0) ngram_rows_apply(tr, gr->dx, tokens, B, T, 1);
    return BRAID_OK;
}
