/*
 * train_model.c — the Chimera forward and backward for training, whole model
 * (ARCHITECTURES.md §2.0; the inference forward is chimera.c):
 *
 *   x ← E[ids]
 *   per block l:  x ← x + GDN(RMSNorm(x; attn_norm))      train_gdn.c
 *                 x ← x + SwiGLU(RMSNorm(x; ffn_norm))    train_ffn.c
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
#include "train_ffn.h"
#include "train_gdn.h"
#include "train_ops.h"

void train_acts_free(braid_trainer *tr) {
    aligned_free(tr->arena);
    aligned_free(tr->scratch);
    free(tr->acts);
    tr->arena = NULL;
    tr->scratch = NULL;
    tr->acts = NULL;
    tr->cap_tokens = tr->cap_B = tr->cap_T = 0;
}

/* Carves n floats from the arena cursor (or only counts them when base is NULL). */
static float *carve(float *base, int64_t *cursor, int64_t n) {
    float *p = base ? base + *cursor : NULL;
    *cursor += (n + 15) & ~(int64_t)15; /* keep every buffer 64-byte aligned */
    return p;
}

/* Lays out every activation and gradient buffer for B·T tokens; returns the float count. */
static int64_t layout(braid_trainer *tr, float *base, int64_t B, int64_t T) {
    const model_hparams *hp = &tr->hp;
    const int64_t N = B * T, D = hp->n_embd, I = hp->n_ff, V = hp->n_vocab;
    const int64_t H = hp->gdn.n_head, Hdk = H * hp->gdn.d_k, Hdv = H * hp->gdn.d_v;
    const int64_t nch = (T + hp->gdn.chunk - 1) / hp->gdn.chunk;
    int64_t c = 0;
    for (int32_t l = 0; l < hp->n_layer; l++) {
        tacts a;
        a.x_in = carve(base, &c, N * D);
        a.rstd_a = carve(base, &c, N);
        a.xn_a = carve(base, &c, N * D);
        a.xq_a = carve(base, &c, N * D);
        a.qp = carve(base, &c, N * Hdk);
        a.kp = carve(base, &c, N * Hdk);
        a.vp = carve(base, &c, N * Hdv);
        a.gp = carve(base, &c, N * Hdv);
        a.ap = carve(base, &c, N * H);
        a.bp = carve(base, &c, N * H);
        a.qz = carve(base, &c, N * Hdk);
        a.kz = carve(base, &c, N * Hdk);
        a.vz = carve(base, &c, N * Hdv);
        a.qs = carve(base, &c, N * Hdk);
        a.ks = carve(base, &c, N * Hdk);
        a.q = carve(base, &c, N * Hdk);
        a.k = carve(base, &c, N * Hdk);
        a.v = carve(base, &c, N * Hdv);
        a.beta = carve(base, &c, N * H);
        a.gl = carve(base, &c, N * H);
        a.o = carve(base, &c, N * Hdv);
        a.rstd_o = carve(base, &c, N * H);
        a.u = carve(base, &c, N * Hdv);
        a.uq = carve(base, &c, N * Hdv);
        a.S = carve(base, &c, B * H * (nch + 1) * hp->gdn.d_v * hp->gdn.d_k);
        a.x_mid = carve(base, &c, N * D);
        a.rstd_f = carve(base, &c, N);
        a.xn_f = carve(base, &c, N * D);
        a.xq_f = carve(base, &c, N * D);
        a.gate = carve(base, &c, N * I);
        a.up = carve(base, &c, N * I);
        a.h = carve(base, &c, N * I);
        a.hq = carve(base, &c, N * I);
        if (base) tr->acts[l] = a;
    }
    tgrads g;
    g.dx = carve(base, &c, N * D);
    g.dxn = carve(base, &c, N * D);
    g.dy = carve(base, &c, N * D);
    g.dqp = carve(base, &c, N * Hdk);
    g.dkp = carve(base, &c, N * Hdk);
    g.dvp = carve(base, &c, N * Hdv);
    g.dgp = carve(base, &c, N * Hdv);
    g.du = carve(base, &c, N * Hdv);
    g.dqs = carve(base, &c, N * Hdk);
    g.dks = carve(base, &c, N * Hdk);
    g.dvs = carve(base, &c, N * Hdv);
    g.dap = carve(base, &c, N * H);
    g.dbp = carve(base, &c, N * H);
    g.dgl = carve(base, &c, N * H);
    g.dh = carve(base, &c, N * I);
    g.dgate = carve(base, &c, N * I);
    g.dup = carve(base, &c, N * I);
    float *x_final = carve(base, &c, N * D);
    float *rstd_final = carve(base, &c, N);
    float *hfin = carve(base, &c, N * D);
    float *logits = carve(base, &c, N * V);
    if (base) {
        tr->gr = g;
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
    int64_t floats = layout(tr, NULL, nB, T);
    tr->acts = calloc((size_t)tr->hp.n_layer, sizeof(tacts));
    tr->arena = aligned_alloc64(sizeof(float) * (size_t)floats);
    tr->scratch_per_thread = train_gdn_scratch_floats(&tr->hp.gdn, T);
    tr->scratch = aligned_alloc64(sizeof(float) * (size_t)(tr->scratch_per_thread * pool_threads()));
    if (!tr->acts || !tr->arena || !tr->scratch) {
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

static void act_quant(const braid_trainer *tr, float *y, const float *x, int64_t n, int64_t cols) {
    if (tr->quant)
        fq_act_rows(y, x, n, cols);
    else
        memcpy(y, x, sizeof(float) * (size_t)(n * cols));
}

static void add(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
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
    float *x = tr->acts[0].x_in;
    for (int64_t t = 0; t < N; t++) memcpy(x + t * D, E + (int64_t)tokens[t] * D, sizeof(float) * (size_t)D);
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const tblock *bl = &tr->blocks[l];
        tacts *a = &tr->acts[l];
        rmsnorm_fwd(a->xn_a, a->rstd_a, a->x_in, tp_w(tr, bl->attn_norm), N, D, eps);
        act_quant(tr, a->xq_a, a->xn_a, N, D);
        train_gdn_fwd(tr, bl, a, a->x_mid, B, T);
        add(a->x_mid, a->x_in, N * D);
        rmsnorm_fwd(a->xn_f, a->rstd_f, a->x_mid, tp_w(tr, bl->ffn_norm), N, D, eps);
        act_quant(tr, a->xq_f, a->xn_f, N, D);
        float *out = l + 1 < hp->n_layer ? tr->acts[l + 1].x_in : tr->x_final;
        train_ffn_fwd(tr, bl, a, out, N);
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
        train_ffn_bwd(tr, bl, a, gr->dxn, gr->dx, N);
        rmsnorm_bwd(gr->dx, tp_g(tr, bl->ffn_norm), gr->dxn, a->x_mid, a->rstd_f, tp_w(tr, bl->ffn_norm), N, D);
        /* x_mid = x_in + GDN(RMSNorm(x_in)) */
        memcpy(gr->dy, gr->dx, sizeof(float) * (size_t)(N * D));
        train_gdn_bwd(tr, bl, a, gr->dxn, gr->dy, B, T);
        rmsnorm_bwd(gr->dx, tp_g(tr, bl->attn_norm), gr->dxn, a->x_in, a->rstd_a, tp_w(tr, bl->attn_norm), N, D);
    }
    for (int64_t t = 0; t < N; t++) add(dE + (int64_t)tokens[t] * D, gr->dx + t * D, D);
    return BRAID_OK;
}
