/*
 * train_gdn.c — Gated DeltaNet for training: forward (keeping activations) and
 * backward, side by side. The forward is gdn.c's math step for step (see the
 * formula list there); heads of each sequence run as independent pool tasks.
 *
 * Backward of the recurrence (ARCHITECTURES.md §2.5 "Backward notes"), per
 * sequence and head, walking t backwards with P = S_{t−1} and dS = ∂L/∂S_t:
 *   o_t = S_t q_t             dq_t = S_tᵀ do_t;   dS += do_t q_tᵀ
 *   S_t = α P + β (v − α P k) kᵀ
 *     dα = ⟨dS, P⟩ − β (P k)·(dS k)      dβ = (dS k)·(v − α P k)     dv = β dS k
 *     dk = −αβ (Pᵀ dS k + dSᵀ P k) + β dSᵀ v
 *     dP = α (dS − β (dS k) kᵀ)          (becomes dS for step t−1)
 * S is stored at every chunk start in the forward and recomputed inside the
 * chunk in the backward, with the same code, so the recomputed states are the
 * forward's bit for bit; walking states backwards by inverting (I − βkkᵀ)
 * would be ill-conditioned as β → 1.
 */
#include "train.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "kernels.h"
#include "threadpool.h"
#include "train_ops.h"

/* Parameter indices of one GD layer (blk.<il>.gdn_*). */
typedef struct {
    int32_t wq, wk, wv, wg, wo, wa, wb;
    int32_t a_log, dt_bias, conv_q, conv_k, conv_v, o_norm;
} gdn_params;

/* Activations of one GD layer for N = B·T tokens ([N, width] row-major). */
typedef struct {
    float *qp, *kp, *vp;  /* [N, Hdk|Hdk|Hdv] projections before the convs */
    float *gp;            /* [N, Hdv] output-gate projection */
    float *ap, *bp;       /* [N, H] decay / beta pre-activations */
    float *qz, *kz, *vz;  /* [N, C] conv outputs before SiLU */
    float *qs, *ks;       /* [N, Hdk] after SiLU (before the L2 norm) */
    float *q, *k, *v;     /* [N, Hdk|Hdk|Hdv] inputs to the recurrence (q, k normalized; q scaled) */
    float *beta, *gl;     /* [N, H] β and log-decay g */
    float *o;             /* [N, Hdv] recurrence output */
    float *rstd_o;        /* [N, H] 1/rms per head of o */
    float *u, *uq;        /* [N, Hdv] gated normed output (input of W_o) and its fake-quantized copy */
    float *S;             /* [B, H, n_chunks + 1, d_v, d_k] state at every chunk start, then the running state */
} gdn_acts;

/* Gradient scratch of one GD backward. */
typedef struct {
    float *dqp, *dkp, *dvp; /* [N, Hdk|Hdk|Hdv] projections */
    float *dgp, *du;        /* [N, Hdv] output gate, W_o input */
    float *dqs, *dks, *dvs; /* [N, Hdk|Hdk|Hdv] conv outputs */
    float *dap, *dbp, *dgl; /* [N, H] */
} gdn_grads;

static inline float sigm(float z) { return 1.0f / (1.0f + expf(-z)); }
static inline float softplus(float z) { return z > 20.0f ? z : log1pf(expf(z)); }

typedef struct {
    int64_t H, dk, dv, Hdk, Hdv, K, C, nch;
} gdn_dims;

/* Tokens between two stored states. Not the model's prefill chunk: the backward recomputes the
 * states of one interval into a [C+1, d_v, d_k] buffer, and at 64 tokens of 64×64 heads that buffer
 * (1 MB) fell out of L2; at 16 it is 272 KB, for 4× the stored states (B·H·T/16 of them). */
#define GDN_CKPT 16

static gdn_dims dims_of(const gdn_hparams *hp, int64_t T) {
    gdn_dims d = {hp->n_head, hp->d_k, hp->d_v, 0, 0, hp->conv_k, GDN_CKPT, 0};
    d.Hdk = d.H * d.dk;
    d.Hdv = d.H * d.dv;
    d.nch = (T + d.C - 1) / d.C;
    return d;
}

static int64_t thread_floats(const braid_trainer *tr, int64_t T) {
    gdn_dims d = dims_of(&tr->hp.gdn, T);
    return (d.C + 2) * d.dv * d.dk /* recomputed states + dS */ + T * d.dv /* do */ + 2 * d.dv + 2 * d.dk;
}

/* ---- forward ---------------------------------------------------------------------------- */

typedef struct {
    braid_trainer *tr;
    const gdn_params *bl;
    gdn_acts *a;
    gdn_dims d;
    int64_t B, T;
} head_job;

/* (N) (G) (R) (O) for task i = b·H + h. The dynamic cost model lets -O2 vectorize the per-token
 * elementwise loops (no reduction is reordered: GCC keeps float sums serial without -ffast-math). */
__attribute__((optimize("vect-cost-model=dynamic"))) static void fwd_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    const head_job *j = arg;
    const kernel_table *kt = kernels();
    const train_kernel_table *tk = train_kernels();
    const gdn_dims d = j->d;
    gdn_acts *a = j->a;
    const braid_trainer *tr = j->tr;
    const float eps = tr->hp.rms_eps;
    const float qscale = 1.0f / sqrtf((float)d.dk);
    const float *a_log = tp_w(tr, j->bl->a_log), *dtb = tp_w(tr, j->bl->dt_bias), *onw = tp_w(tr, j->bl->o_norm);
    float *nrm = tr->scratch + (int64_t)thread * tr->scratch_per_thread; /* [dv] w ⊙ o r of one token */
    for (int64_t task = i0; task < i1; task++) {
        const int64_t b = task / d.H, h = task % d.H;
        const float decay = -expf(a_log[h]);
        /* slots 0..nch-1: the state at each chunk start; slot nch: the running state */
        float *Sall = a->S + task * (d.nch + 1) * d.dv * d.dk, *S = Sall + d.nch * d.dv * d.dk;
        memset(S, 0, sizeof(float) * (size_t)(d.dv * d.dk));
        for (int64_t t = 0; t < j->T; t++) {
            const int64_t row = b * j->T + t;
            float *q = a->q + row * d.Hdk + h * d.dk, *k = a->k + row * d.Hdk + h * d.dk;
            const float *qs = a->qs + row * d.Hdk + h * d.dk, *ks = a->ks + row * d.Hdk + h * d.dk;
            const float *v = a->v + row * d.Hdv + h * d.dv;
            /* (N) u / max(‖u‖, 1e-12), q also · d_k^{-1/2} */
            float nq = 0.0f, nk = 0.0f;
            for (int64_t c = 0; c < d.dk; c++) {
                nq += qs[c] * qs[c];
                nk += ks[c] * ks[c];
            }
            float fq = qscale / fmaxf(sqrtf(nq), 1e-12f), fk = 1.0f / fmaxf(sqrtf(nk), 1e-12f);
            for (int64_t c = 0; c < d.dk; c++) {
                q[c] = qs[c] * fq;
                k[c] = ks[c] * fk;
            }
            /* (G) */
            float beta = sigm(a->bp[row * d.H + h]);
            float gl = decay * softplus(a->ap[row * d.H + h] + dtb[h]);
            a->beta[row * d.H + h] = beta;
            a->gl[row * d.H + h] = gl;
            /* (R) checkpoint S at each chunk start (t = c·C), then step */
            if (t % d.C == 0) memcpy(Sall + (t / d.C) * d.dv * d.dk, S, sizeof(float) * (size_t)(d.dv * d.dk));
            float *o = a->o + row * d.Hdv + h * d.dv;
            kt->delta_step(o, S, S, q, k, v, beta, expf(gl), d.dk, d.dv);
            /* (O) u = RMSNorm(o) ⊙ w ⊙ SiLU(g̃) */
            float ss = 0.0f;
            for (int64_t i = 0; i < d.dv; i++) ss += o[i] * o[i];
            float r = 1.0f / sqrtf(ss / (float)d.dv + eps);
            a->rstd_o[row * d.H + h] = r;
            const float *gp = a->gp + row * d.Hdv + h * d.dv;
            for (int64_t i = 0; i < d.dv; i++) nrm[i] = onw[i] * (o[i] * r);
            tk->silu_mul(a->u + row * d.Hdv + h * d.dv, gp, nrm, d.dv); /* the SiLU in the vector exp */
        }
    }
}

static void fwd(braid_trainer *tr, const void *params, void *acts, const float *xn, const float *xq, float *y,
                int64_t B, int64_t T) {
    const gdn_params *bl = params;
    gdn_acts *a = acts;
    const int64_t N = B * T, D = tr->hp.n_embd;
    const gdn_dims d = dims_of(&tr->hp.gdn, T);
    /* (P) ternary projections read the quantized input, a and b the float one */
    lin_fwd(a->qp, xq, tp_fw(tr, bl->wq), N, D, d.Hdk);
    lin_fwd(a->kp, xq, tp_fw(tr, bl->wk), N, D, d.Hdk);
    lin_fwd(a->vp, xq, tp_fw(tr, bl->wv), N, D, d.Hdv);
    lin_fwd(a->gp, xq, tp_fw(tr, bl->wg), N, D, d.Hdv);
    lin_fwd(a->ap, xn, tp_fw(tr, bl->wa), N, D, d.H);
    lin_fwd(a->bp, xn, tp_fw(tr, bl->wb), N, D, d.H);
    /* (C) */
    conv_fwd(a->qz, a->qs, a->qp, tp_w(tr, bl->conv_q), B, T, d.Hdk, d.K);
    conv_fwd(a->kz, a->ks, a->kp, tp_w(tr, bl->conv_k), B, T, d.Hdk, d.K);
    conv_fwd(a->vz, a->v, a->vp, tp_w(tr, bl->conv_v), B, T, d.Hdv, d.K);
    head_job j = {tr, bl, a, d, B, T};
    pool_parallel_for(B * d.H, 1, fwd_task, &j);
    /* (O) y = W_o u */
    train_act_quant(tr, a->uq, a->u, N, d.Hdv);
    lin_fwd(y, a->uq, tp_fw(tr, bl->wo), N, d.Hdv, D);
}

/* ---- backward ------------------------------------------------------------------------------ */

typedef struct {
    braid_trainer *tr;
    const gdn_params *bl;
    const gdn_acts *a;
    gdn_grads *gr;
    gdn_dims d;
    int64_t B, T;
} bwd_job;

__attribute__((optimize("vect-cost-model=dynamic"))) static void bwd_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    const bwd_job *j = arg;
    const kernel_table *kt = kernels();
    const train_kernel_table *tk = train_kernels();
    const gdn_dims d = j->d;
    const gdn_acts *a = j->a;
    gdn_grads *gr = j->gr;
    const braid_trainer *tr = j->tr;
    const int64_t T = j->T, SZ = d.dv * d.dk;
    const float qscale = 1.0f / sqrtf((float)d.dk);
    const float *onw = tp_w(tr, j->bl->o_norm);
    float *Sbuf = tr->scratch + (int64_t)thread * tr->scratch_per_thread; /* [C+1, dv, dk] */
    float *dS = Sbuf + (d.C + 1) * SZ;                                     /* [dv, dk] */
    float *dO = dS + SZ;                                                   /* [T, dv] */
    float *oscr = dO + T * d.dv;                                           /* [dv] the recompute's unused o */
    float *dq = oscr + 2 * d.dv, *dk = dq + d.dk;                          /* [dk] each */
    for (int64_t task = i0; task < i1; task++) {
        const int64_t b = task / d.H, h = task % d.H;
        /* (O) backward: u = n ⊙ SiLU(g̃), n = w ⊙ o r  →  dg̃, then do through the RMSNorm */
        for (int64_t t = 0; t < T; t++) {
            const int64_t row = b * T + t, off = row * d.Hdv + h * d.dv;
            const float *o = a->o + off, *gp = a->gp + off;
            float *du = gr->du + off; /* read here, then replaced by the o_norm gradient's terms */
            const float r = a->rstd_o[row * d.H + h];
            float *dgp = gr->dgp + off, *dot = dO + t * d.dv, *nrm = oscr + d.dv;
            float s = 0.0f;
            for (int64_t i = 0; i < d.dv; i++) nrm[i] = onw[i] * o[i] * r;
            /* dg̃ = du ⊙ n ⊙ SiLU'(g̃) and ∂L/∂n = du ⊙ SiLU(g̃) (into dot for now), in the vector exp */
            tk->silu_mul_bwd(dgp, dot, du, gp, nrm, d.dv);
            for (int64_t i = 0; i < d.dv; i++) s += onw[i] * dot[i] * o[i];
            /* ∂L/∂w_i of the o-norm for this token, du SiLU(g̃) o r, summed over rows in bwd() */
            for (int64_t i = 0; i < d.dv; i++) du[i] = dot[i] * o[i] * r;
            const float c = r * r * r * s / (float)d.dv;
            for (int64_t i = 0; i < d.dv; i++) dot[i] = r * onw[i] * dot[i] - c * o[i];
        }
        /* (R) backward, chunk by chunk from the end */
        memset(dS, 0, sizeof(float) * (size_t)SZ);
        const float *Schk = a->S + task * (d.nch + 1) * SZ;
        for (int64_t c = d.nch - 1; c >= 0; c--) {
            const int64_t t0 = c * d.C, t1 = BRAID_MIN(T, t0 + d.C);
            memcpy(Sbuf, Schk + c * SZ, sizeof(float) * (size_t)SZ);
            for (int64_t t = t0; t < t1; t++) {
                const int64_t row = b * T + t;
                float *next = Sbuf + (t - t0 + 1) * SZ;
                /* the forward's kernel, so the states are its bits (o is not needed again); out of
                 * place, so the interval's states need no copying (a copy per token-head was ~1.4%
                 * of a step) */
                kt->delta_step(oscr, next, next - SZ, a->q + row * d.Hdk + h * d.dk, a->k + row * d.Hdk + h * d.dk,
                               a->v + row * d.Hdv + h * d.dv, a->beta[row * d.H + h], expf(a->gl[row * d.H + h]),
                               d.dk, d.dv);
            }
            for (int64_t t = t1 - 1; t >= t0; t--) {
                const int64_t row = b * T + t;
                const float *St = Sbuf + (t - t0 + 1) * SZ, *P = St - SZ;
                const float alpha = expf(a->gl[row * d.H + h]), beta = a->beta[row * d.H + h];
                float dalpha, dbeta;
                kt->delta_step_bwd(dS, dq, dk, gr->dvs + row * d.Hdv + h * d.dv, &dalpha, &dbeta, P, St,
                                   a->q + row * d.Hdk + h * d.dk, a->k + row * d.Hdk + h * d.dk,
                                   a->v + row * d.Hdv + h * d.dv, dO + t * d.dv, alpha, beta, d.dk, d.dv);
                /* (G): α = exp(g), β = σ(b̃) */
                gr->dgl[row * d.H + h] = dalpha * alpha;
                gr->dbp[row * d.H + h] = dbeta * beta * (1.0f - beta);
                /* (N): y = s u / n → du = (s/n)(dy − û (û·dy)), û = u/n */
                const float *qs = a->qs + row * d.Hdk + h * d.dk, *ks = a->ks + row * d.Hdk + h * d.dk;
                float nq = 0.0f, nk = 0.0f;
                for (int64_t c2 = 0; c2 < d.dk; c2++) {
                    nq += qs[c2] * qs[c2];
                    nk += ks[c2] * ks[c2];
                }
                nq = fmaxf(sqrtf(nq), 1e-12f);
                nk = fmaxf(sqrtf(nk), 1e-12f);
                float pq = 0.0f, pkk = 0.0f;
                for (int64_t c2 = 0; c2 < d.dk; c2++) {
                    pq += qs[c2] / nq * dq[c2];
                    pkk += ks[c2] / nk * dk[c2];
                }
                float *dqs = gr->dqs + row * d.Hdk + h * d.dk, *dks = gr->dks + row * d.Hdk + h * d.dk;
                for (int64_t c2 = 0; c2 < d.dk; c2++) {
                    dqs[c2] = qscale / nq * (dq[c2] - qs[c2] / nq * pq);
                    dks[c2] = 1.0f / nk * (dk[c2] - ks[c2] / nk * pkk);
                }
            }
        }
    }
}

/* Carves the gradient scratch from tr->gscratch (counts when base is NULL). */
static int64_t grads_layout(const braid_trainer *tr, float *base, int64_t B, int64_t T, gdn_grads *g) {
    const int64_t N = B * T, H = tr->hp.gdn.n_head, Hdk = H * tr->hp.gdn.d_k, Hdv = H * tr->hp.gdn.d_v;
    int64_t c = 0;
    g->dqp = train_carve(base, &c, N * Hdk);
    g->dkp = train_carve(base, &c, N * Hdk);
    g->dvp = train_carve(base, &c, N * Hdv);
    g->dgp = train_carve(base, &c, N * Hdv);
    g->du = train_carve(base, &c, N * Hdv);
    g->dqs = train_carve(base, &c, N * Hdk);
    g->dks = train_carve(base, &c, N * Hdk);
    g->dvs = train_carve(base, &c, N * Hdv);
    g->dap = train_carve(base, &c, N * H);
    g->dbp = train_carve(base, &c, N * H);
    g->dgl = train_carve(base, &c, N * H);
    return c;
}

static int64_t grad_floats(const braid_trainer *tr, int64_t B, int64_t T) {
    gdn_grads g;
    return grads_layout(tr, NULL, B, T, &g);
}

static void bwd(braid_trainer *tr, const void *params, const void *acts, const float *xn, const float *xq, float *dxn,
                const float *dy, int64_t B, int64_t T) {
    const gdn_params *bl = params;
    const gdn_acts *a = acts;
    const int64_t N = B * T, D = tr->hp.n_embd;
    const gdn_dims d = dims_of(&tr->hp.gdn, T);
    gdn_grads grads, *gr = &grads;
    grads_layout(tr, tr->gscratch, B, T, gr);
    /* (O) y = W_o u (straight through the activation quantizer) */
    lin_bwd(gr->du, 0, tp_g(tr, bl->wo), dy, a->uq, tp_fw(tr, bl->wo), N, d.Hdv, D);
    bwd_job j = {tr, bl, a, gr, d, B, T};
    pool_parallel_for(B * d.H, 1, bwd_task, &j);
    /* parameters shared by heads and sequences, reduced in a fixed order */
    const float *a_log = tp_w(tr, bl->a_log), *dtb = tp_w(tr, bl->dt_bias);
    float *da_log = tp_g(tr, bl->a_log), *ddtb = tp_g(tr, bl->dt_bias), *donw = tp_g(tr, bl->o_norm);
    for (int64_t row = 0; row < N; row++)
        for (int64_t h = 0; h < d.H; h++) {
            /* g = −e^{A_log} softplus(a + dt_bias): ∂g/∂A_log = g, ∂g/∂a = −e^{A_log} σ(a + dt_bias) */
            const float dg = gr->dgl[row * d.H + h];
            const float da = dg * -expf(a_log[h]) * sigm(a->ap[row * d.H + h] + dtb[h]);
            gr->dap[row * d.H + h] = da;
            da_log[h] += dg * a->gl[row * d.H + h];
            ddtb[h] += da;
            const int64_t off = row * d.Hdv + h * d.dv;
            /* bwd_task left each row's terms in du: this serial sum no longer runs a scalar expf each */
            for (int64_t i = 0; i < d.dv; i++) donw[i] += gr->du[off + i];
        }
    /* (C) */
    conv_bwd(gr->dqp, tp_g(tr, bl->conv_q), gr->dqs, a->qz, a->qp, tp_w(tr, bl->conv_q), B, T, d.Hdk, d.K);
    conv_bwd(gr->dkp, tp_g(tr, bl->conv_k), gr->dks, a->kz, a->kp, tp_w(tr, bl->conv_k), B, T, d.Hdk, d.K);
    conv_bwd(gr->dvp, tp_g(tr, bl->conv_v), gr->dvs, a->vz, a->vp, tp_w(tr, bl->conv_v), B, T, d.Hdv, d.K);
    /* (P) */
    lin_bwd(dxn, 0, tp_g(tr, bl->wq), gr->dqp, xq, tp_fw(tr, bl->wq), N, D, d.Hdk);
    lin_bwd(dxn, 1, tp_g(tr, bl->wk), gr->dkp, xq, tp_fw(tr, bl->wk), N, D, d.Hdk);
    lin_bwd(dxn, 1, tp_g(tr, bl->wv), gr->dvp, xq, tp_fw(tr, bl->wv), N, D, d.Hdv);
    lin_bwd(dxn, 1, tp_g(tr, bl->wg), gr->dgp, xq, tp_fw(tr, bl->wg), N, D, d.Hdv);
    lin_bwd(dxn, 1, tp_g(tr, bl->wa), gr->dap, xn, tp_fw(tr, bl->wa), N, D, d.H);
    lin_bwd(dxn, 1, tp_g(tr, bl->wb), gr->dbp, xn, tp_fw(tr, bl->wb), N, D, d.H);
}

/* ---- the layer kind ---------------------------------------------------------------------- */

static int32_t bind(braid_trainer *tr, int32_t il, void *params) {
    gdn_params *p = params;
    static const char *names[] = {"gdn_q.weight",      "gdn_k.weight",      "gdn_v.weight",     "gdn_g.weight",
                                  "gdn_o.weight",      "gdn_a.weight",      "gdn_b.weight",     "gdn_a_log",
                                  "gdn_dt_bias",       "gdn_conv_q.weight", "gdn_conv_k.weight", "gdn_conv_v.weight",
                                  "gdn_o_norm.weight"};
    int32_t *slots[] = {&p->wq,    &p->wk,      &p->wv,     &p->wg,     &p->wo,     &p->wa,    &p->wb,
                        &p->a_log, &p->dt_bias, &p->conv_q, &p->conv_k, &p->conv_v, &p->o_norm};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int32_t st = train_find_block_param(tr, il, names[i], slots[i]);
        if (st) return st;
    }
    return BRAID_OK;
}

static void layout(const braid_trainer *tr, float *base, int64_t *c, int64_t B, int64_t T, void *acts) {
    gdn_acts *a = acts;
    const int64_t N = B * T, H = tr->hp.gdn.n_head, Hdk = H * tr->hp.gdn.d_k, Hdv = H * tr->hp.gdn.d_v;
    const int64_t nch = dims_of(&tr->hp.gdn, T).nch;
    a->qp = train_carve(base, c, N * Hdk);
    a->kp = train_carve(base, c, N * Hdk);
    a->vp = train_carve(base, c, N * Hdv);
    a->gp = train_carve(base, c, N * Hdv);
    a->ap = train_carve(base, c, N * H);
    a->bp = train_carve(base, c, N * H);
    a->qz = train_carve(base, c, N * Hdk);
    a->kz = train_carve(base, c, N * Hdk);
    a->vz = train_carve(base, c, N * Hdv);
    a->qs = train_carve(base, c, N * Hdk);
    a->ks = train_carve(base, c, N * Hdk);
    a->q = train_carve(base, c, N * Hdk);
    a->k = train_carve(base, c, N * Hdk);
    a->v = train_carve(base, c, N * Hdv);
    a->beta = train_carve(base, c, N * H);
    a->gl = train_carve(base, c, N * H);
    a->o = train_carve(base, c, N * Hdv);
    a->rstd_o = train_carve(base, c, N * H);
    a->u = train_carve(base, c, N * Hdv);
    a->uq = train_carve(base, c, N * Hdv);
    a->S = train_carve(base, c, B * H * (nch + 1) * tr->hp.gdn.d_v * tr->hp.gdn.d_k);
}

const train_layer_ops train_gdn_ops = {
    .name = "GD",
    .params_size = sizeof(gdn_params),
    .acts_size = sizeof(gdn_acts),
    .bind = bind,
    .layout = layout,
    .grad_floats = grad_floats,
    .thread_floats = thread_floats,
    .fwd = fwd,
    .bwd = bwd,
};
