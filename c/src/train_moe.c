/*
 * train_moe.c — the mixture-of-experts FFN for training (ARCHITECTURES.md
 * §2.10, DeepSeek-V3 noaux_tc routing) as the layer kind train_moe_ops. The
 * forward is moe.c's, step for step:
 *
 *   z = W_r xn,  s = σ(z)                        router [E, D] float, reads the unquantized xn (as moe.c)
 *   sel = top-K of (s + b)                       moe_route itself: b is selection-only, ties to the lower id
 *   w_k = scale · s_{sel_k} / S,  S = Σ_sel s    weights from the unbiased scores
 *   y = FFN_sh(xq) + Σ_k w_k FFN_{sel_k}(xq)     SwiGLU experts (train_ffn.c's math), slots summed in ascending id
 *
 * Routed (token, slot) pairs are sorted by expert (counting sort, token order
 * inside an expert), so each expert is one GEMM over a contiguous block of
 * gathered rows; expert e's weights are rows [e·I_e, (e+1)·I_e) of the stacked
 * parameter (and [e·D, (e+1)·D) for down).
 *
 * Backward (straight-through for the quantizers, as train_ffn.c):
 *   experts   deo_r = w_p dy_t for sorted row r of pair p = (t, k); the SwiGLU backward per
 *             expert; dxg rows scatter-added back into dxn_t (slots in ascending k)
 *   shared    train_ffn.c's backward on all rows
 *   router    only through the weights (top-K is piecewise constant):
 *             g_k = dy_t · FFN_{sel_k},  ds_j = scale/S · (g_j − Σ_k g_k s_k / S)  (j ∈ sel, else 0),
 *             dz = ds · s(1 − s),  dW_r += dzᵀ xn,  dxn += dz W_r
 * The bias b gets no gradient: bind marks it frozen (AdamW skips it) and
 * after_update moves it by the load rule b_e += γ · sign(mean_load − load_e),
 * γ = 1e-3, load_e = (token, slot) pairs routed to e by the passes whose
 * gradients the update applied. The loads are counted in the backward from
 * the forward's routing (one thread, after the forward's sort): evaluation
 * passes (held-out loss, finite differences) then never move the bias.
 */
#include <math.h>
#include <string.h>

#include "common.h"
#include "moe.h"
#include "threadpool.h"
#include "train.h"
#include "train_ops.h"

#define MOE_MAX_EXPERTS 4096 /* model.c accepts chimera.moe.expert_count in [1, 4096] */
#define MOE_BIAS_SPEED 1e-3f /* γ of the load rule (DeepSeek-V3's bias update speed, §2.10) */

typedef struct {
    int32_t router, bias;            /* F32/F16 [E, D] router, F32 [E] selection-only bias */
    int32_t gate, up, down;          /* stacked BT2: [E·I_e, D], [E·I_e, D], [E·D, I_e] */
    int32_t sh_gate, sh_up, sh_down; /* shared expert [Ish, D], [Ish, D], [D, Ish] (−1 when there is none) */
    float speed;                     /* γ */
    /* Load counts are optimizer state, not activations: they survive activation regrowth and
     * accumulate over the passes of one update. fwd/bwd get the params const; the counts are
     * reached through this pointer (to load_count, in the same mutable kind_mem block). */
    int64_t *load;
    int64_t load_count[MOE_MAX_EXPERTS]; /* [E] pairs routed to e since the last update */
} moe_params;

/* Activations of one MoE layer for N = B·T tokens and P = N·K routed pairs (sorted by expert). */
typedef struct {
    float *s;             /* [N, E] σ(router logits) */
    int32_t *sel;         /* [N, K] chosen experts, ascending id */
    float *wsel;          /* [N, K] their weights */
    int32_t *first;       /* [E + 1] first sorted row of each expert (first[E] = P) */
    int32_t *row;         /* [P] pair t·K + k → its sorted row */
    int32_t *pair;        /* [P] sorted row → its pair */
    float *xg;            /* [P, D] xq rows gathered in sorted order */
    float *gate, *up;     /* [P, I_e] */
    float *h, *hq;        /* [P, I_e] SiLU(gate) ⊙ up and its fake-quantized copy */
    float *eo;            /* [P, D] expert outputs FFN_e(xq_t), sorted order */
    float *sgate, *sup;   /* [N, Ish] shared expert */
    float *sh, *shq;      /* [N, Ish] */
} moe_acts;

typedef struct {
    int64_t N, D, E, K, Ie, Ish, P;
} moe_dims;

static moe_dims dims_of(const braid_trainer *tr, int64_t B, int64_t T) {
    const moe_hparams *m = &tr->hp.moe;
    moe_dims d = {B * T, tr->hp.n_embd, m->n_expert, m->n_used, m->ff, (int64_t)m->n_shared * m->ff, 0};
    d.P = d.N * d.K;
    return d;
}

/* ---- elementwise jobs (rows or elements split over the pool) ---------------------------------- */

typedef struct {
    const braid_trainer *tr;
    const moe_params *p;
    moe_acts *a;
    const moe_acts *ca;
    moe_dims d;
    const float *src, *dy;
    float *dst;
} moe_job;

/* s = σ(z) in place, then moe_route per token (sel ascending, weights). */
static void route_task(void *arg, int64_t t0, int64_t t1, int32_t thread) {
    const moe_job *j = arg;
    const float *bias = tp_w(j->tr, j->p->bias);
    for (int64_t t = t0; t < t1; t++) {
        float *s = j->a->s + t * j->d.E;
        for (int64_t e = 0; e < j->d.E; e++) s[e] = 1.0f / (1.0f + expf(-s[e])); /* moe.c's formula */
        moe_route(j->a->sel + t * j->d.K, j->a->wsel + t * j->d.K, s, bias, &j->tr->hp.moe);
    }
}

/* xg[r] = xq[t] for sorted rows r of pairs (t, k). */
static void gather_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
    const moe_job *j = arg;
    const int64_t D = j->d.D;
    for (int64_t r = r0; r < r1; r++)
        memcpy(j->a->xg + r * D, j->src + (j->a->pair[r] / j->d.K) * D, sizeof(float) * (size_t)D);
}

/* y_t += Σ_k w_k eo[row(t, k)], k ascending (= ascending expert id, moe.c's combine order). */
static void combine_task(void *arg, int64_t t0, int64_t t1, int32_t thread) {
    const moe_job *j = arg;
    const moe_dims d = j->d;
    for (int64_t t = t0; t < t1; t++) {
        float *yt = j->dst + t * d.D;
        for (int64_t k = 0; k < d.K; k++) {
            const float *o = j->a->eo + (int64_t)j->a->row[t * d.K + k] * d.D, wk = j->a->wsel[t * d.K + k];
            for (int64_t c = 0; c < d.D; c++) yt[c] += wk * o[c];
        }
    }
}

/* y = w · x: deo[r] = w_p dy_t (the output gradient of the expert row of pair p = (t, k)). */
static void scatter_dy_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
    const moe_job *j = arg;
    const int64_t D = j->d.D;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t p = j->ca->pair[r];
        const float w = j->ca->wsel[p], *dyt = j->dy + (p / j->d.K) * D;
        float *o = j->dst + r * D;
        for (int64_t c = 0; c < D; c++) o[c] = w * dyt[c];
    }
}

/* dxn_t += Σ_k dxg[row(t, k)] (a token's slots in ascending k: the sum does not depend on threads). */
static void scatter_dx_task(void *arg, int64_t t0, int64_t t1, int32_t thread) {
    const moe_job *j = arg;
    const int64_t D = j->d.D;
    for (int64_t t = t0; t < t1; t++) {
        float *dx = j->dst + t * D;
        for (int64_t k = 0; k < j->d.K; k++) {
            const float *g = j->src + (int64_t)j->ca->row[t * j->d.K + k] * D;
            for (int64_t c = 0; c < D; c++) dx[c] += g[c];
        }
    }
}

/* Router backward to the logits: dst = dz [N, E] (0 off the selection), see the header. */
static void router_bwd_task(void *arg, int64_t t0, int64_t t1, int32_t thread) {
    const moe_job *j = arg;
    const moe_dims d = j->d;
    const moe_acts *a = j->ca;
    const float scale = j->tr->hp.moe.scale;
    for (int64_t t = t0; t < t1; t++) {
        const float *s = a->s + t * d.E, *dyt = j->dy + t * d.D;
        const int32_t *sel = a->sel + t * d.K;
        float *dz = j->dst + t * d.E;
        memset(dz, 0, sizeof(float) * (size_t)d.E);
        float S = 0.0f, gs = 0.0f;
        for (int64_t k = 0; k < d.K; k++) S += s[sel[k]];
        for (int64_t k = 0; k < d.K; k++) { /* g_k = ∂L/∂w_k = dy_t · FFN_{sel_k}(xq_t), parked in dz */
            const float *o = a->eo + (int64_t)a->row[t * d.K + k] * d.D;
            float g = 0.0f;
            for (int64_t c = 0; c < d.D; c++) g += dyt[c] * o[c];
            dz[sel[k]] = g;
            gs += g * s[sel[k]];
        }
        for (int64_t k = 0; k < d.K; k++) {
            const float se = s[sel[k]];
            const float ds = scale / S * (dz[sel[k]] - gs / S);
            dz[sel[k]] = ds * se * (1.0f - se);
        }
    }
}

/* ---- forward and backward --------------------------------------------------------------------- */

/* Expert e's own [rows, cols] matrix inside a stacked parameter [E·rows, cols] (as the forward reads it). */
static const float *expert_w(const braid_trainer *tr, int32_t param, int64_t e, int64_t rows, int64_t cols) {
    return tp_fw(tr, param) + e * rows * cols;
}

static void fwd(braid_trainer *tr, const void *params, void *acts, const float *xn, const float *xq, float *y,
                int64_t B, int64_t T) {
    const moe_params *p = params;
    moe_acts *a = acts;
    const moe_dims d = dims_of(tr, B, T);
    moe_job j = {.tr = tr, .p = p, .a = a, .d = d};

    /* router: logits on the float xn (moe.c: fp32 activations), then σ and top-K */
    lin_fwd(a->s, xn, tp_fw(tr, p->router), d.N, d.D, d.E);
    pool_parallel_for(d.N, 1, route_task, &j);

    /* counting sort of the pairs by expert; first[e] ends as e's start after the shift */
    memset(a->first, 0, sizeof(int32_t) * (size_t)(d.E + 1));
    for (int64_t q = 0; q < d.P; q++) a->first[a->sel[q] + 1]++;
    for (int64_t e = 0; e < d.E; e++) a->first[e + 1] += a->first[e];
    for (int64_t q = 0; q < d.P; q++) {
        const int32_t r = a->first[a->sel[q]]++;
        a->row[q] = r;
        a->pair[r] = (int32_t)q;
    }
    for (int64_t e = d.E; e > 0; e--) a->first[e] = a->first[e - 1];
    a->first[0] = 0;
    j.src = xq;
    pool_parallel_for(d.P, 1, gather_task, &j);

    /* routed experts: one GEMM per expert on its contiguous rows */
    for (int64_t e = 0; e < d.E; e++) {
        const int64_t r0 = a->first[e], n = a->first[e + 1] - r0;
        if (!n) continue;
        lin_fwd(a->gate + r0 * d.Ie, a->xg + r0 * d.D, expert_w(tr, p->gate, e, d.Ie, d.D), n, d.D, d.Ie);
        lin_fwd(a->up + r0 * d.Ie, a->xg + r0 * d.D, expert_w(tr, p->up, e, d.Ie, d.D), n, d.D, d.Ie);
    }
    swiglu_fwd(a->h, a->gate, a->up, d.P * d.Ie);
    train_act_quant(tr, a->hq, a->h, d.P, d.Ie); /* per row: the same rows moe.c quantizes per expert */
    for (int64_t e = 0; e < d.E; e++) {
        const int64_t r0 = a->first[e], n = a->first[e + 1] - r0;
        if (!n) continue;
        lin_fwd(a->eo + r0 * d.D, a->hq + r0 * d.Ie, expert_w(tr, p->down, e, d.D, d.Ie), n, d.Ie, d.D);
    }

    /* shared expert on every row (or zero), then the weighted slots on top, as moe.c */
    if (d.Ish > 0) {
        lin_fwd(a->sgate, xq, tp_fw(tr, p->sh_gate), d.N, d.D, d.Ish);
        lin_fwd(a->sup, xq, tp_fw(tr, p->sh_up), d.N, d.D, d.Ish);
        swiglu_fwd(a->sh, a->sgate, a->sup, d.N * d.Ish);
        train_act_quant(tr, a->shq, a->sh, d.N, d.Ish);
        lin_fwd(y, a->shq, tp_fw(tr, p->sh_down), d.N, d.Ish, d.D);
    } else {
        memset(y, 0, sizeof(float) * (size_t)(d.N * d.D));
    }
    j.dst = y;
    pool_parallel_for(d.N, 1, combine_task, &j);
}

static void bwd(braid_trainer *tr, const void *params, const void *acts, const float *xn, const float *xq, float *dxn,
                const float *dy, int64_t B, int64_t T) {
    const moe_params *p = params;
    const moe_acts *a = acts;
    const moe_dims d = dims_of(tr, B, T);
    const int64_t W = BRAID_MAX(d.K * d.Ie, d.Ish); /* widest hidden per token: routed (K slots) or shared */
    float *dh = tr->gscratch, *dgate = dh + d.N * W, *dup = dgate + d.N * W; /* [P, I_e] or [N, Ish] each */
    float *drows = dup + d.N * W; /* [P, D] deo, then dxg */
    float *dz = drows + d.P * d.D; /* [N, E] */
    moe_job j = {.tr = tr, .p = p, .ca = a, .d = d, .dy = dy};

    /* router (through the weights only): dxn = dz W_r (overwrites), dW_r += dzᵀ xn */
    j.dst = dz;
    pool_parallel_for(d.N, 1, router_bwd_task, &j);
    lin_bwd(dxn, 0, tp_g(tr, p->router), dz, xn, tp_fw(tr, p->router), d.N, d.D, d.E);

    /* shared expert: train_ffn.c's backward, added into dxn */
    if (d.Ish > 0) {
        lin_bwd(dh, 0, tp_g(tr, p->sh_down), dy, a->shq, tp_fw(tr, p->sh_down), d.N, d.Ish, d.D);
        swiglu_bwd(dgate, dup, dh, a->sgate, a->sup, d.N * d.Ish);
        lin_bwd(dxn, 1, tp_g(tr, p->sh_gate), dgate, xq, tp_fw(tr, p->sh_gate), d.N, d.D, d.Ish);
        lin_bwd(dxn, 1, tp_g(tr, p->sh_up), dup, xq, tp_fw(tr, p->sh_up), d.N, d.D, d.Ish);
    }

    /* routed experts: deo = w · dy per sorted row, then each expert's SwiGLU backward on its rows */
    j.dst = drows;
    pool_parallel_for(d.P, 1, scatter_dy_task, &j);
    for (int64_t e = 0; e < d.E; e++) {
        const int64_t r0 = a->first[e], n = a->first[e + 1] - r0;
        if (!n) continue;
        lin_bwd(dh + r0 * d.Ie, 0, tp_g(tr, p->down) + e * d.D * d.Ie, drows + r0 * d.D, a->hq + r0 * d.Ie,
                expert_w(tr, p->down, e, d.D, d.Ie), n, d.Ie, d.D);
    }
    swiglu_bwd(dgate, dup, dh, a->gate, a->up, d.P * d.Ie);
    for (int64_t e = 0; e < d.E; e++) { /* dxg overwrites deo: the down backward above has read all of it */
        const int64_t r0 = a->first[e], n = a->first[e + 1] - r0;
        if (!n) continue;
        float *dxg = drows + r0 * d.D;
        const float *xg = a->xg + r0 * d.D;
        lin_bwd(dxg, 0, tp_g(tr, p->gate) + e * d.Ie * d.D, dgate + r0 * d.Ie, xg,
                expert_w(tr, p->gate, e, d.Ie, d.D), n, d.D, d.Ie);
        lin_bwd(dxg, 1, tp_g(tr, p->up) + e * d.Ie * d.D, dup + r0 * d.Ie, xg, expert_w(tr, p->up, e, d.Ie, d.D), n,
                d.D, d.Ie);
    }
    j.src = drows, j.dst = dxn;
    pool_parallel_for(d.N, 1, scatter_dx_task, &j);

    /* this pass feeds the next update: count its routing for the load rule */
    for (int64_t e = 0; e < d.E; e++) p->load[e] += a->first[e + 1] - a->first[e];
}

/* After the optimizer step: b_e += γ · sign(mean_load − load_e), then a new count starts. */
static void after_update(braid_trainer *tr, void *params, void *acts) {
    moe_params *p = params;
    const int64_t E = tr->hp.moe.n_expert;
    int64_t total = 0;
    for (int64_t e = 0; e < E; e++) total += p->load[e];
    if (total == 0) return; /* no training pass since the last update: nothing measured */
    float *b = tp_w(tr, p->bias);
    for (int64_t e = 0; e < E; e++) {
        /* sign(total/E − load_e) in integers: exact, so a balanced expert (load = mean) stays put */
        const int64_t diff = total - E * p->load[e];
        b[e] += diff > 0 ? p->speed : diff < 0 ? -p->speed : 0.0f;
        p->load[e] = 0;
    }
}

static int32_t bind(braid_trainer *tr, int32_t il, void *params) {
    moe_params *p = params;
    const moe_hparams *m = &tr->hp.moe;
    if (m->n_expert > MOE_MAX_EXPERTS)
        return braid_fail(BRAID_ERR_UNSUPPORTED, "trainer: layer %d has %d experts, the trainer supports %d", il,
                          m->n_expert, MOE_MAX_EXPERTS);
    p->sh_gate = p->sh_up = p->sh_down = -1;
    int32_t st = train_find_block_param(tr, il, "ffn_gate_inp.weight", &p->router);
    if (!st) st = train_find_block_param(tr, il, "exp_probs_b.bias", &p->bias);
    if (!st) st = train_find_block_param(tr, il, "ffn_gate_exps.weight", &p->gate);
    if (!st) st = train_find_block_param(tr, il, "ffn_up_exps.weight", &p->up);
    if (!st) st = train_find_block_param(tr, il, "ffn_down_exps.weight", &p->down);
    if (!st && m->n_shared > 0) st = train_find_block_param(tr, il, "ffn_gate_shexp.weight", &p->sh_gate);
    if (!st && m->n_shared > 0) st = train_find_block_param(tr, il, "ffn_up_shexp.weight", &p->sh_up);
    if (!st && m->n_shared > 0) st = train_find_block_param(tr, il, "ffn_down_shexp.weight", &p->sh_down);
    if (st) return st;
    tr->params[p->bias].frozen = 1; /* moved by after_update's load rule, never by AdamW */
    p->speed = MOE_BIAS_SPEED;
    p->load = p->load_count;
    memset(p->load_count, 0, sizeof p->load_count);
    return BRAID_OK;
}

static void layout(const braid_trainer *tr, float *base, int64_t *c, int64_t B, int64_t T, void *acts) {
    moe_acts *a = acts;
    const moe_dims d = dims_of(tr, B, T);
    /* int32 index arrays share the float arena (same width, 64-byte aligned like the rest) */
    a->s = train_carve(base, c, d.N * d.E);
    a->sel = (int32_t *)train_carve(base, c, d.P);
    a->wsel = train_carve(base, c, d.P);
    a->first = (int32_t *)train_carve(base, c, d.E + 1);
    a->row = (int32_t *)train_carve(base, c, d.P);
    a->pair = (int32_t *)train_carve(base, c, d.P);
    a->xg = train_carve(base, c, d.P * d.D);
    a->gate = train_carve(base, c, d.P * d.Ie);
    a->up = train_carve(base, c, d.P * d.Ie);
    a->h = train_carve(base, c, d.P * d.Ie);
    a->hq = train_carve(base, c, d.P * d.Ie);
    a->eo = train_carve(base, c, d.P * d.D);
    a->sgate = train_carve(base, c, d.N * d.Ish);
    a->sup = train_carve(base, c, d.N * d.Ish);
    a->sh = train_carve(base, c, d.N * d.Ish);
    a->shq = train_carve(base, c, d.N * d.Ish);
}

static int64_t grad_floats(const braid_trainer *tr, int64_t B, int64_t T) {
    const moe_dims d = dims_of(tr, B, T);
    return 3 * d.N * BRAID_MAX(d.K * d.Ie, d.Ish) + d.P * d.D + d.N * d.E;
}

static int64_t thread_floats(const braid_trainer *tr, int64_t T) { return 0; }

const train_layer_ops train_moe_ops = {
    .name = "MoE",
    .params_size = sizeof(moe_params),
    .acts_size = sizeof(moe_acts),
    .bind = bind,
    .layout = layout,
    .grad_floats = grad_floats,
    .thread_floats = thread_floats,
    .fwd = fwd,
    .bwd = bwd,
    .after_update = after_update,
};
