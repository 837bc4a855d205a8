/*
 * train_tsp.c — the TSP span knot (SK layers) for training, forward and
 * backward side by side. The forward is tsp.c's (ARCHITECTURES.md §2.9):
 *
 *   o_t   = GDN(x)_t                                inner Gated DeltaNet: the GD kind, train_gdn_ops
 *   sk_t  = sign(W_s o_t),  r = sign(W_r o_t),  f = sign(W_f o_t)
 *   coh_t = mean_c [sk_t[c] ≠ sk_{t−1}[c]]          first token of a sequence: 0
 *   bind_t = mean_c [sign(r·f·r)[c] ≠ f[c]]
 *   E_t = Σ_k λ_k c_k,t (e_k·o_t),  c = (1, coh, bind, 1, 1)     e_k = row k of sk_energy [5, D]
 *   y_t = o_t + 0.01 E_t 1_D
 *
 * Backward: sign() is piecewise constant, so coh and bind are constants of the
 * pass and W_s, W_r, W_f get no gradient (the reference's encoders never train
 * either). With s_t = 0.01 Σ_j dy_t[j] (the gradient reaching E_t):
 *   dλ_k += s_t c_k,t (e_k·o_t);   de_k += s_t λ_k c_k,t o_t;   do_t = dy_t + Σ_k s_t λ_k c_k,t e_k
 * and do goes into the GD kind's backward.
 */
#include "train.h"

#include <string.h>

#include "common.h"
#include "threadpool.h"
#include "train_ops.h"

/* The inner GD kind's index and activation structs live here as opaque storage
 * (their types are private to train_gdn.c); bind checks they fit. */
#define TSP_GDN_BYTES 512

/* Parameter indices of one SK layer. */
typedef struct {
    _Alignas(16) unsigned char gdn[TSP_GDN_BYTES]; /* train_gdn_ops' params (blk.<il>.gdn_*) */
    int32_t ws, wr, wf;                            /* [D_s, D] sketch / role / filler encoders */
    int32_t energy;                                /* [5, D] heads auto, mem, bind, gram, debt */
    int32_t lambda;                                /* [5] energy weights */
} tsp_params;

/* Activations of one SK layer for N = B·T tokens. */
typedef struct {
    _Alignas(16) unsigned char gdn[TSP_GDN_BYTES]; /* train_gdn_ops' activations */
    float *o;         /* [N, D] inner GDN output */
    float *s, *r, *f; /* [N, D_s] encoder outputs (only their signs are used) */
    float *en;        /* [N, 5] energy heads e_k·o */
    float *cf;        /* [N, 5] the factors c = (1, coh, bind, 1, 1) */
} tsp_acts;

static inline float signf(float x) { return (float)((x > 0.0f) - (x < 0.0f)); }

/* ---- forward ---------------------------------------------------------------------------- */

static void fwd(braid_trainer *tr, const void *params, void *acts, const float *xn, const float *xq, float *y,
                int64_t B, int64_t T) {
    const tsp_params *p = params;
    tsp_acts *a = acts;
    const int64_t N = B * T, D = tr->hp.n_embd, Ds = tr->hp.sk.sketch_dim;
    train_gdn_ops.fwd(tr, p->gdn, a->gdn, xn, xq, a->o, B, T);
    lin_fwd(a->s, a->o, tp_w(tr, p->ws), N, D, Ds);
    lin_fwd(a->r, a->o, tp_w(tr, p->wr), N, D, Ds);
    lin_fwd(a->f, a->o, tp_w(tr, p->wf), N, D, Ds);
    lin_fwd(a->en, a->o, tp_w(tr, p->energy), N, D, 5);
    const float *lam = tp_w(tr, p->lambda);
    for (int64_t row = 0; row < N; row++) {
        const int64_t t = row % T;
        const float *s = a->s + row * Ds, *r = a->r + row * Ds, *f = a->f + row * Ds, *en = a->en + row * 5;
        const float *prev = t > 0 ? s - Ds : s; /* [D_s] the previous token's; the first compares with itself */
        int64_t flips = 0, unbound = 0;
        for (int64_t c = 0; c < Ds; c++) {
            flips += signf(s[c]) != signf(prev[c]);
            float rc = signf(r[c]), fc = signf(f[c]);
            unbound += signf(rc * fc * rc) != fc;
        }
        float coh = (float)flips / (float)Ds, bind = (float)unbound / (float)Ds;
        float *cf = a->cf + row * 5;
        cf[0] = cf[3] = cf[4] = 1.0f;
        cf[1] = coh;
        cf[2] = bind;
        /* tsp.c's expression, term by term */
        float E = lam[0] * en[0] + lam[1] * en[1] * coh + lam[2] * en[2] * bind + lam[3] * en[3] + lam[4] * en[4];
        float add = 0.01f * E, *yt = y + row * D;
        const float *ot = a->o + row * D;
        for (int64_t j = 0; j < D; j++) yt[j] = ot[j] + add;
    }
}

/* ---- backward ------------------------------------------------------------------------------ */

/* Where the SK scratch sits in tr->gscratch: after the GD kind's own, which its backward overwrites. */
static int64_t grads_layout(const braid_trainer *tr, float *base, int64_t B, int64_t T, float **dO, float **dE) {
    const int64_t N = B * T;
    int64_t c = train_gdn_ops.grad_floats(tr, B, T);
    *dO = train_carve(base, &c, N * tr->hp.n_embd); /* [N, D] ∂L/∂o */
    *dE = train_carve(base, &c, N * 5);             /* [N, 5] ∂L/∂(e_k·o) */
    return c;
}

static int64_t grad_floats(const braid_trainer *tr, int64_t B, int64_t T) {
    float *dO, *dE;
    return grads_layout(tr, NULL, B, T, &dO, &dE);
}

static void bwd(braid_trainer *tr, const void *params, const void *acts, const float *xn, const float *xq, float *dxn,
                const float *dy, int64_t B, int64_t T) {
    const tsp_params *p = params;
    const tsp_acts *a = acts;
    const int64_t N = B * T, D = tr->hp.n_embd;
    float *dO, *dE;
    grads_layout(tr, tr->gscratch, B, T, &dO, &dE);
    const float *lam = tp_w(tr, p->lambda);
    float *dlam = tp_g(tr, p->lambda);
    for (int64_t row = 0; row < N; row++) {
        const float *dyt = dy + row * D, *en = a->en + row * 5, *cf = a->cf + row * 5;
        float s = 0.0f;
        for (int64_t j = 0; j < D; j++) s += dyt[j];
        s *= 0.01f;
        for (int k = 0; k < 5; k++) {
            dlam[k] += s * cf[k] * en[k];
            dE[row * 5 + k] = s * lam[k] * cf[k];
        }
    }
    /* do = dy + dE · energy, d energy += dEᵀ o */
    memcpy(dO, dy, sizeof(float) * (size_t)(N * D));
    lin_bwd(dO, 1, tp_g(tr, p->energy), dE, a->o, tp_w(tr, p->energy), N, D, 5);
    train_gdn_ops.bwd(tr, p->gdn, a->gdn, xn, xq, dxn, dO, B, T);
}

/* ---- the layer kind ---------------------------------------------------------------------- */

static int32_t bind(braid_trainer *tr, int32_t il, void *params) {
    tsp_params *p = params;
    if (train_gdn_ops.params_size > TSP_GDN_BYTES || train_gdn_ops.acts_size > TSP_GDN_BYTES)
        return braid_fail(BRAID_ERR_UNSUPPORTED, "trainer: the GD kind's structs outgrew TSP_GDN_BYTES (train_tsp.c)");
    int32_t st = train_gdn_ops.bind(tr, il, p->gdn);
    if (!st) st = train_find_block_param(tr, il, "sk_sketch.weight", &p->ws);
    if (!st) st = train_find_block_param(tr, il, "sk_role.weight", &p->wr);
    if (!st) st = train_find_block_param(tr, il, "sk_filler.weight", &p->wf);
    if (!st) st = train_find_block_param(tr, il, "sk_energy.weight", &p->energy);
    if (!st) st = train_find_block_param(tr, il, "sk_energy_lambda", &p->lambda);
    return st;
}

static void layout(const braid_trainer *tr, float *base, int64_t *c, int64_t B, int64_t T, void *acts) {
    tsp_acts *a = acts;
    const int64_t N = B * T, D = tr->hp.n_embd, Ds = tr->hp.sk.sketch_dim;
    train_gdn_ops.layout(tr, base, c, B, T, a->gdn);
    a->o = train_carve(base, c, N * D);
    a->s = train_carve(base, c, N * Ds);
    a->r = train_carve(base, c, N * Ds);
    a->f = train_carve(base, c, N * Ds);
    a->en = train_carve(base, c, N * 5);
    a->cf = train_carve(base, c, N * 5);
}

static int64_t thread_floats(const braid_trainer *tr, int64_t T) { return train_gdn_ops.thread_floats(tr, T); }

const train_layer_ops train_tsp_ops = {
    .name = "SK",
    .params_size = sizeof(tsp_params),
    .acts_size = sizeof(tsp_acts),
    .bind = bind,
    .layout = layout,
    .grad_floats = grad_floats,
    .thread_floats = thread_floats,
    .fwd = fwd,
    .bwd = bwd,
};
