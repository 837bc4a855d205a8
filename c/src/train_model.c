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
    default: return NULL; /* XM, TM, SK: no backward yet */
    }
}

static const train_layer_ops *ffn_ops(ffn_kind k) {
    switch (k) {
    case FFN_DENSE: return &train_ffn_ops;
    default: return NULL; /* MoE: no backward yet */
    }
}

int32_t train_model_bind(braid_trainer *tr, const braid_model *m) {
    const model_hparams *hp = &m->hp;
    static const char *mixer_names[] = {"", "GD", "XM", "TM", "SK"};
    if (hp->loop.enabled) return braid_fail(BRAID_ERR_UNSUPPORTED, "trainer: Parcae looping has no backward yet");
    if (hp->span_gate)
        return braid_fail(BRAID_ERR_UNSUPPORTED, "trainer: the span-engine risk gate has no backward yet");
    tr->blocks = calloc((size_t)hp->n_layer, sizeof(tblock));
    if (!tr->blocks) return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory");
    size_t bytes = 0;
    for (int32_t il = 0; il < hp->n_layer; il++) {
        tblock *b = &tr->blocks[il];
        b->mixer = mixer_ops(m->layers[il].mixer_type);
        b->ffn = ffn_ops(m->layers[il].ffn_type);
        if (!b->mixer)
            return braid_fail(BRAID_ERR_UNSUPPORTED, "trainer: layer %d is %s, which has no backward yet", il,
                              mixer_names[m->layers[il].mixer_type]);
        if (!b->ffn) return braid_fail(BRAID_ERR_UNSUPPORTED, "trainer: layer %d's MoE FFN has no backward yet", il);
        bytes += b->mixer->params_size + b->ffn->params_size + b->mixer->acts_size + b->ffn->acts_size;
    }
    /* one block of memory behind every kind-specific params/acts struct (freed with the trainer) */
    char *mem = calloc(1, bytes + 16 * (size_t)hp->n_layer * 4);
    if (!mem) return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory");
    tr->kind_mem = mem;
    tr->acts = calloc((size_t)hp->n_layer, sizeof(tacts));
    if (!tr->acts) return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory");
    for (int32_t il = 0; il < hp->n_layer; il++) {
        tblock *b = &tr->blocks[il];
        size_t sizes[4] = {b->mixer->params_size, b->ffn->params_size, b->mixer->acts_size, b->ffn->acts_size};
        void **slots[4] = {&b->mixer_params, &b->ffn_params, &tr->acts[il].mixer_acts, &tr->acts[il].ffn_acts};
        for (int k = 0; k < 4; k++) {
            *slots[k] = mem;
            mem += (sizes[k] + 15) & ~(size_t)15;
        }
        int32_t st = train_find_block_param(tr, il, "attn_norm.weight", &b->attn_norm);
        if (!st) st = train_find_block_param(tr, il, "ffn_norm.weight", &b->ffn_norm);
        if (!st) st = b->mixer->bind(tr, il, b->mixer_params);
        if (!st) st = b->ffn->bind(tr, il, b->ffn_params);
        if (st) return st;
    }
    tr->tok_embd = train_param_find(tr, "token_embd.weight");
    tr->out_norm = train_param_find(tr, "output_norm.weight");
    if (tr->tok_embd < 0 || tr->out_norm < 0)
        return braid_fail(BRAID_ERR_FORMAT, "trainer: token_embd.weight or output_norm.weight is missing");
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
    int64_t c = 0, gmax = 0;
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const tblock *b = &tr->blocks[l];
        tacts *a = &tr->acts[l];
        tacts t = *a; /* counting pass writes into a copy */
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

/* ---- forward and backward ------------------------------------------------------------------- */

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
    float *x = tr->acts[0].x_in;
    for (int64_t t = 0; t < N; t++) memcpy(x + t * D, E + (int64_t)tokens[t] * D, sizeof(float) * (size_t)D);
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const tblock *bl = &tr->blocks[l];
        tacts *a = &tr->acts[l];
        rmsnorm_fwd(a->xn_a, a->rstd_a, a->x_in, tp_w(tr, bl->attn_norm), N, D, eps);
        train_act_quant(tr, a->xq_a, a->xn_a, N, D);
        bl->mixer->fwd(tr, bl->mixer_params, a->mixer_acts, a->xn_a, a->xq_a, a->x_mid, B, T);
        add(a->x_mid, a->x_in, N * D);
        rmsnorm_fwd(a->xn_f, a->rstd_f, a->x_mid, tp_w(tr, bl->ffn_norm), N, D, eps);
        train_act_quant(tr, a->xq_f, a->xn_f, N, D);
        float *out = l + 1 < hp->n_layer ? tr->acts[l + 1].x_in : tr->x_final;
        bl->ffn->fwd(tr, bl->ffn_params, a->ffn_acts, a->xn_f, a->xq_f, out, B, T);
        add(out, a->x_mid, N * D);
    }
    rmsnorm_fwd(tr->hfin, tr->rstd_final, tr->x_final, tp_w(tr, tr->out_norm), N, D, eps);
    lin_fwd(tr->logits, tr->hfin, E, N, D, V);
    *loss_sum = xent_fwd_bwd(tr->logits, targets, N, V, n_targets, backward);
    if (isnan(*loss_sum)) return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory in the loss");
    if (!backward) return BRAID_OK;

    /* ---- backward (tr->logits now holds ∂L/∂logits) ---- */
    tgrads *gr = &tr->gr;
    float *dE = tp_g(tr, tr->tok_embd);
    lin_bwd(gr->dxn, 0, dE, tr->logits, tr->hfin, E, N, D, V);
    memset(gr->dx, 0, sizeof(float) * (size_t)(N * D));
    rmsnorm_bwd(gr->dx, tp_g(tr, tr->out_norm), gr->dxn, tr->x_final, tr->rstd_final, tp_w(tr, tr->out_norm), N, D);
    for (int32_t l = hp->n_layer - 1; l >= 0; l--) {
        const tblock *bl = &tr->blocks[l];
        const tacts *a = &tr->acts[l];
        /* x_out = x_mid + FFN(RMSNorm(x_mid)): dx flows to x_mid unchanged, plus the branch */
        memcpy(gr->dy, gr->dx, sizeof(float) * (size_t)(N * D));
        bl->ffn->bwd(tr, bl->ffn_params, a->ffn_acts, a->xn_f, a->xq_f, gr->dxn, gr->dy, B, T);
        rmsnorm_bwd(gr->dx, tp_g(tr, bl->ffn_norm), gr->dxn, a->x_mid, a->rstd_f, tp_w(tr, bl->ffn_norm), N, D);
        /* x_mid = x_in + Mixer(RMSNorm(x_in)) */
        memcpy(gr->dy, gr->dx, sizeof(float) * (size_t)(N * D));
        bl->mixer->bwd(tr, bl->mixer_params, a->mixer_acts, a->xn_a, a->xq_a, gr->dxn, gr->dy, B, T);
        rmsnorm_bwd(gr->dx, tp_g(tr, bl->attn_norm), gr->dxn, a->x_in, a->rstd_a, tp_w(tr, bl->attn_norm), N, D);
    }
    for (int64_t t = 0; t < N; t++) add(dE + (int64_t)tokens[t] * D, gr->dx + t * D, D);
    return BRAID_OK;
}
