/*
 * train_mlstm.c — the xLSTM mLSTM mixer (XM layers) for training: forward
 * (keeping activations) and backward, side by side. The forward is mlstm.c's
 * math step for step (formula list there; its per-token step mlstm_step is
 * called as is), with BitLinear as QAT (train.h). Heads of each sequence run
 * as independent pool tasks.
 *
 * Backward of the stabilised recurrence, per sequence and head, walking t
 * backwards with dC = ∂L/∂C_t, dn = ∂L/∂n_t and P = (C_{t−1}, n_{t−1}):
 *   h̃ = C_t q / den,  den = max(|n_t·q|, e^{−m_t}) + ε,  ε = 1e−6
 *     g = dh̃ / den:   dC += g qᵀ;  dq = C_tᵀ g;  dden = −(dh̃·h̃)/den
 *     only when |n·q| is the active branch: dn += dden sgn(n·q) q;  dq += dden sgn(n·q) n_t
 *   C_t = f' C_{t−1} + i' v kᵀ,  n_t = f' n_{t−1} + i' k
 *     di' = vᵀ dC k + dn·k;  df' = ⟨dC, C_{t−1}⟩ + dn·n_{t−1};  dv = i' dC k;  dk = i' (dCᵀ v + dn)
 *     dC ← f' dC,  dn ← f' dn                                             (∂L/∂C_{t−1}, ∂L/∂n_{t−1})
 *   i' = e^{ĩ − m_t}, f' = e^{ℓ + m_{t−1} − m_t}, m fixed:  dĩ = di' i',  dℓ = df' f'
 * The stabiliser m (ARCHITECTURES.md §2.19): shifting m_t alone by δ scales C_t,
 * n_t and the floor e^{−m_t} by e^{−δ} and f'_{t+1} by e^{δ}, so every later
 * state is unchanged and h̃_t moves only through ε: ∂L/∂m_t (m free) =
 * −(dh̃·h̃) ε/den = dden·ε. That is the whole gradient m carries; it is routed
 * back through m_t = max(ℓ_t + m_{t−1}, ĩ_t) to ℓ_t (and on to m_{t−1}) or ĩ_t,
 * so the gradient is exact, not the stop-gradient approximation (which drops
 * this term, of relative size ε/den: harmless unless |n·q| and e^{−m} are both
 * ~1e−6, i.e. m near the soft cap, e^{−15} ≈ 3e−7; trainer-layers.test.ts checks
 * that case).
 * The first token has m_1 = ĩ_1 and f' = 0: ℓ_1 gets no gradient.
 * (C, n, m) are stored at every XM_CKPT-th token in the forward and recomputed
 * inside the span in the backward with the forward's own mlstm_step, so the
 * recomputed states are the forward's bit for bit.
 */
#include "train.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "mlstm.h"
#include "threadpool.h"
#include "train_ops.h"

/* Tokens between state checkpoints. Memory is B·H·(T/XM_CKPT)·d² floats of checkpoints plus
 * XM_CKPT·d² per thread for the recomputed span; 32 keeps both under ~20 MB at T = 4096, H = 8,
 * d = 64 (the recompute costs one forward of the recurrence whatever the interval). */
#define XM_CKPT 32

/* Parameter indices of one XM layer (blk.<il>.xm_*). */
typedef struct {
    int32_t wq, wk, wv, wog, wo; /* ternary */
    int32_t wi, wf, bi, bf;      /* float gates [H, D], biases [H] */
    int32_t norm_w, norm_b;      /* [d] shared per-head LayerNorm */
} mlstm_params;

/* Activations of one XM layer for N = B·T tokens ([N, width] row-major, Hd = H·d). */
typedef struct {
    float *q, *k, *v;   /* [N, Hd] projections, q scaled by d^{-1/2} in place (as mlstm.c) */
    float *og;          /* [N, Hd] output-gate pre-activation õ */
    float *zi, *zf;     /* [N, H] W_i x, W_f x (before bias and cap) */
    float *ig, *lf;     /* [N, H] ĩ and ℓ = log σ(f̃) */
    float *m;           /* [N, H] stabiliser m_t */
    float *h;           /* [N, Hd] h̃ (recurrence output, before the LayerNorm) */
    float *mean, *rstd; /* [N, H] LayerNorm statistics per head */
    float *u, *uq;      /* [N, Hd] σ(õ) ⊙ LN(h̃) (input of W_o) and its fake-quantized copy */
    float *ck;          /* [B, H, n_ck + 1, d·d + d + 1] (C, n, m) at every checkpoint, then the running state */
} mlstm_acts;

/* Gradient scratch of one XM backward. */
typedef struct {
    float *du;              /* [N, Hd] ∂L/∂u */
    float *dq, *dk, *dv;    /* [N, Hd] ∂L/∂(W_q x), ∂L/∂k, ∂L/∂v */
    float *dog;             /* [N, Hd] */
    float *dzi, *dzf;       /* [N, H] */
} mlstm_grads;

typedef struct {
    int64_t H, d, Hd, SZ, nck; /* SZ: floats of one (C, n, m) state */
} mlstm_dims;

static mlstm_dims dims_of(const mlstm_hparams *hp, int64_t T) {
    mlstm_dims d = {hp->n_head, hp->head_dim, 0, 0, 0};
    d.Hd = d.H * d.d;
    d.SZ = d.d * d.d + d.d + 1;
    d.nck = (T + XM_CKPT - 1) / XM_CKPT;
    return d;
}

/* mlstm.c's gate functions, the same expressions (so the same bits) */
static inline float sigm(float z) { return 1.0f / (1.0f + expf(-z)); }
static inline float log_sigm(float z) { return z >= 0.0f ? -log1pf(expf(-z)) : z - log1pf(expf(z)); }

/* the recompute span [XM_CKPT + 1 states] + dC [d, d] + dn, dh, g, w, dq, dk, h scratch [d] each */
static int64_t thread_floats(const braid_trainer *tr, int64_t T) {
    const mlstm_dims d = dims_of(&tr->hp.xm, T);
    return (XM_CKPT + 1) * d.SZ + d.d * d.d + 7 * d.d;
}

/* ---- forward ---------------------------------------------------------------------------- */

typedef struct {
    const braid_trainer *tr;
    const mlstm_params *p;
    mlstm_acts *a;
    mlstm_dims d;
    int64_t T;
} head_job;

/* (R) (O) for task i = b·H + h: q scaling and gates, the step, LayerNorm and output gate. */
static void fwd_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    const head_job *j = arg;
    const mlstm_dims d = j->d;
    const braid_trainer *tr = j->tr;
    mlstm_acts *a = j->a;
    const mlstm_hparams *hp = &tr->hp.xm;
    const float cap = hp->soft_cap, qscale = 1.0f / sqrtf((float)d.d);
    const float *bi = tp_w(tr, j->p->bi), *bf = tp_w(tr, j->p->bf);
    const float *nw = tp_w(tr, j->p->norm_w), *nb = tp_w(tr, j->p->norm_b);
    for (int64_t task = i0; task < i1; task++) {
        const int64_t b = task / d.H, h = task % d.H;
        /* slots 0..nck-1: the state at each checkpoint; slot nck: the running state */
        float *ck = a->ck + task * (d.nck + 1) * d.SZ, *C = ck + d.nck * d.SZ, *n = C + d.d * d.d, *m = n + d.d;
        memset(C, 0, sizeof(float) * (size_t)d.SZ);
        for (int64_t t = 0; t < j->T; t++) {
            const int64_t row = b * j->T + t, off = row * d.Hd + h * d.d, g = row * d.H + h;
            if (t % XM_CKPT == 0) memcpy(ck + (t / XM_CKPT) * d.SZ, C, sizeof(float) * (size_t)d.SZ);
            float *q = a->q + off, *ht = a->h + off;
            for (int64_t i = 0; i < d.d; i++) q[i] *= qscale;
            const float ig = cap * tanhf((a->zi[g] + bi[h]) / cap);
            const float fz = cap * tanhf((a->zf[g] + bf[h]) / cap);
            a->ig[g] = ig;
            a->lf[g] = log_sigm(fz);
            mlstm_step(ht, C, n, m, t == 0, q, a->k + off, a->v + off, ig, a->lf[g], d.d);
            a->m[g] = *m;
            /* (O) u = σ(õ) ⊙ (LN(h̃) w + b) */
            float mean = 0.0f, var = 0.0f;
            for (int64_t i = 0; i < d.d; i++) mean += ht[i];
            mean /= (float)d.d;
            for (int64_t i = 0; i < d.d; i++) var += (ht[i] - mean) * (ht[i] - mean);
            var /= (float)d.d;
            const float rstd = 1.0f / sqrtf(var + hp->norm_eps);
            a->mean[g] = mean;
            a->rstd[g] = rstd;
            const float *og = a->og + off;
            float *u = a->u + off;
            for (int64_t i = 0; i < d.d; i++) u[i] = sigm(og[i]) * ((ht[i] - mean) * rstd * nw[i] + nb[i]);
        }
    }
}

static void fwd(braid_trainer *tr, const void *params, void *acts, const float *xn, const float *xq, float *y,
                int64_t B, int64_t T) {
    const mlstm_params *p = params;
    mlstm_acts *a = acts;
    const int64_t N = B * T, D = tr->hp.n_embd;
    const mlstm_dims d = dims_of(&tr->hp.xm, T);
    /* (P) ternary projections read the quantized input, the gates the float one */
    lin_fwd(a->q, xq, tp_fw(tr, p->wq), N, D, d.Hd);
    lin_fwd(a->k, xq, tp_fw(tr, p->wk), N, D, d.Hd);
    lin_fwd(a->v, xq, tp_fw(tr, p->wv), N, D, d.Hd);
    lin_fwd(a->og, xq, tp_fw(tr, p->wog), N, D, d.Hd);
    lin_fwd(a->zi, xn, tp_fw(tr, p->wi), N, D, d.H);
    lin_fwd(a->zf, xn, tp_fw(tr, p->wf), N, D, d.H);
    head_job j = {tr, p, a, d, T};
    pool_parallel_for(B * d.H, 1, fwd_task, &j);
    /* (O) y = W_o u */
    train_act_quant(tr, a->uq, a->u, N, d.Hd);
    lin_fwd(y, a->uq, tp_fw(tr, p->wo), N, d.Hd, D);
}

/* ---- backward ------------------------------------------------------------------------------ */

typedef struct {
    const braid_trainer *tr;
    const mlstm_params *p;
    const mlstm_acts *a;
    const mlstm_grads *gr;
    mlstm_dims d;
    int64_t T; /* bwd_task: tokens per sequence; norm_dw_task: N = B·T rows */
} bwd_job;

/* (O) and (R) backward for task i = b·H + h, chunk by chunk from the end. */
static void bwd_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    const bwd_job *j = arg;
    const mlstm_dims d = j->d;
    const braid_trainer *tr = j->tr;
    const mlstm_acts *a = j->a;
    const mlstm_grads *gr = j->gr;
    const int64_t T = j->T, dd = d.d * d.d;
    const mlstm_hparams *hp = &tr->hp.xm;
    const float cap = hp->soft_cap, qscale = 1.0f / sqrtf((float)d.d), eps_den = 1e-6f;
    const float *bi = tp_w(tr, j->p->bi), *bf = tp_w(tr, j->p->bf);
    const float *nw = tp_w(tr, j->p->norm_w), *nb = tp_w(tr, j->p->norm_b);
    float *span = tr->scratch + (int64_t)thread * tr->scratch_per_thread; /* [XM_CKPT + 1, SZ] */
    float *dC = span + (XM_CKPT + 1) * d.SZ;                               /* [d, d] ∂L/∂C_t */
    float *dn = dC + dd;                                                   /* [d] ∂L/∂n_t */
    float *dh = dn + d.d, *gv = dh + d.d, *w = gv + d.d;                   /* [d] ∂L/∂h̃, dh̃/den, dC k */
    float *dq = w + d.d, *dkv = dq + d.d, *hscr = dkv + d.d;               /* [d] dq, dCᵀv, recompute's h̃ */
    for (int64_t task = i0; task < i1; task++) {
        const int64_t b = task / d.H, h = task % d.H;
        const float *ck = a->ck + task * (d.nck + 1) * d.SZ;
        memset(dC, 0, sizeof(float) * (size_t)(dd + d.d));
        float carry = 0.0f; /* ∂L/∂m_t reaching m_t through m_{t+1} = ℓ_{t+1} + m_t */
        for (int64_t c = d.nck - 1; c >= 0; c--) {
            const int64_t t0 = c * XM_CKPT, t1 = BRAID_MIN(T, t0 + XM_CKPT);
            /* (R) recompute the span's states with the forward's step */
            memcpy(span, ck + c * d.SZ, sizeof(float) * (size_t)d.SZ);
            for (int64_t t = t0; t < t1; t++) {
                const int64_t row = b * T + t, off = row * d.Hd + h * d.d, g = row * d.H + h;
                float *next = span + (t - t0 + 1) * d.SZ;
                memcpy(next, next - d.SZ, sizeof(float) * (size_t)d.SZ);
                mlstm_step(hscr, next, next + dd, next + dd + d.d, t == 0, a->q + off, a->k + off, a->v + off,
                           a->ig[g], a->lf[g], d.d);
            }
            for (int64_t t = t1 - 1; t >= t0; t--) {
                const int64_t row = b * T + t, off = row * d.Hd + h * d.d, g = row * d.H + h;
                const float *Ct = span + (t - t0 + 1) * d.SZ, *nt = Ct + dd, *Cp = Ct - d.SZ, *np = Cp + dd;
                const float *q = a->q + off, *k = a->k + off, *v = a->v + off, *ht = a->h + off;
                const float *og = a->og + off, *du = gr->du + off;
                const int first = t == 0;
                const float ig = a->ig[g], lf = a->lf[g], mt = a->m[g], mp = first ? 0.0f : Cp[dd + d.d];
                /* (O) backward: u = σ(õ) z, z = x̂ w + b, x̂ = (h̃ − μ) r → dõ, then dh̃ through the LayerNorm */
                const float mean = a->mean[g], r = a->rstd[g];
                float *dog = gr->dog + off;
                float sdx = 0.0f, sdxx = 0.0f;
                for (int64_t i = 0; i < d.d; i++) {
                    const float s = sigm(og[i]), xh = (ht[i] - mean) * r;
                    dog[i] = du[i] * (xh * nw[i] + nb[i]) * s * (1.0f - s);
                    dh[i] = du[i] * s * nw[i]; /* ∂L/∂x̂ for now */
                    sdx += dh[i];
                    sdxx += dh[i] * xh;
                }
                sdx /= (float)d.d;
                sdxx /= (float)d.d;
                for (int64_t i = 0; i < d.d; i++) dh[i] = r * (dh[i] - sdx - (ht[i] - mean) * r * sdxx);
                /* (R) the step's scalars, as mlstm_step computed them */
                const float fp = first ? 0.0f : expf(lf + mp - mt), ip = expf(ig - mt);
                float nq = 0.0f;
                for (int64_t i = 0; i < d.d; i++) nq += nt[i] * q[i];
                const float floor_m = expf(-mt), den = fmaxf(fabsf(nq), floor_m) + eps_den;
                float dhh = 0.0f;
                for (int64_t i = 0; i < d.d; i++) {
                    gv[i] = dh[i] / den;
                    dhh += dh[i] * ht[i];
                }
                const float dden = -dhh / den;
                /* |n·q| active: its gradient reaches n_t and q (sign factor of the abs) */
                const float dnq = fabsf(nq) >= floor_m ? (nq >= 0.0f ? dden : -dden) : 0.0f;
                for (int64_t i = 0; i < d.d; i++) {
                    dn[i] += dnq * q[i];
                    dq[i] = dnq * nt[i];
                    dkv[i] = 0.0f;
                }
                /* one pass over the rows of dC: dC += g qᵀ, then read it for dq, dC k, ⟨dC, C_{t−1}⟩, dCᵀ v,
                 * and leave f' dC (∂L/∂C_{t−1}) behind */
                float dfp = 0.0f, dip = 0.0f;
                for (int64_t ra = 0; ra < d.d; ra++) {
                    float *dCa = dC + ra * d.d;
                    const float *Cta = Ct + ra * d.d, *Cpa = Cp + ra * d.d, ga = gv[ra], va = v[ra];
                    float wa = 0.0f, sp = 0.0f;
                    for (int64_t i = 0; i < d.d; i++) {
                        const float x = dCa[i] + ga * q[i];
                        dq[i] += Cta[i] * ga;
                        wa += x * k[i];
                        sp += x * Cpa[i];
                        dkv[i] += x * va;
                        dCa[i] = fp * x;
                    }
                    w[ra] = wa;
                    dfp += sp;
                    dip += va * wa;
                }
                float *dqo = gr->dq + off, *dko = gr->dk + off, *dvo = gr->dv + off;
                for (int64_t i = 0; i < d.d; i++) {
                    dip += dn[i] * k[i];
                    dfp += dn[i] * np[i];
                    dqo[i] = dq[i] * qscale; /* q = (W_q x) d^{-1/2} */
                    dko[i] = ip * (dkv[i] + dn[i]);
                    dvo[i] = ip * w[i];
                    dn[i] *= fp;
                }
                float dig = dip * ip, dlf = first ? 0.0f : dfp * fp;
                /* m: the ε term, routed through m_t = max(ℓ_t + m_{t−1}, ĩ_t) (fmaxf's choice in mlstm_step) */
                const float gm = dden * eps_den + carry;
                if (!first && lf + mp >= ig) {
                    dlf += gm;
                    carry = gm;
                } else {
                    dig += gm;
                    carry = 0.0f;
                }
                /* (P) gates: ĩ = c tanh((z_i + b_i)/c); ℓ = log σ(f̃), f̃ = c tanh((z_f + b_f)/c), dℓ/df̃ = σ(−f̃) */
                const float thi = tanhf((a->zi[g] + bi[h]) / cap), thf = tanhf((a->zf[g] + bf[h]) / cap);
                gr->dzi[g] = dig * (1.0f - thi * thi);
                gr->dzf[g] = dlf * sigm(-cap * thf) * (1.0f - thf * thf);
            }
        }
    }
}

/* LayerNorm weight and bias, shared by heads and sequences: columns in parallel, each sum in
 * (row, head) order. z = x̂ w + b, u = σ(õ) z:  dw += du σ(õ) x̂,  db += du σ(õ). */
static void norm_dw_task(void *arg, int64_t c0, int64_t c1, int32_t thread) {
    const bwd_job *j = arg;
    const mlstm_dims d = j->d;
    const mlstm_acts *a = j->a;
    float *dnw = tp_g(j->tr, j->p->norm_w), *dnb = tp_g(j->tr, j->p->norm_b);
    for (int64_t row = 0; row < j->T; row++)
        for (int64_t h = 0; h < d.H; h++) {
            const int64_t off = row * d.Hd + h * d.d, g = row * d.H + h;
            for (int64_t i = c0; i < c1; i++) {
                const float dz = j->gr->du[off + i] * sigm(a->og[off + i]);
                dnw[i] += dz * (a->h[off + i] - a->mean[g]) * a->rstd[g];
                dnb[i] += dz;
            }
        }
}

/* Carves the gradient scratch from tr->gscratch (counts when base is NULL). */
static int64_t grads_layout(const braid_trainer *tr, float *base, int64_t B, int64_t T, mlstm_grads *g) {
    const mlstm_dims d = dims_of(&tr->hp.xm, T);
    const int64_t N = B * T;
    int64_t c = 0;
    g->du = train_carve(base, &c, N * d.Hd);
    g->dq = train_carve(base, &c, N * d.Hd);
    g->dk = train_carve(base, &c, N * d.Hd);
    g->dv = train_carve(base, &c, N * d.Hd);
    g->dog = train_carve(base, &c, N * d.Hd);
    g->dzi = train_carve(base, &c, N * d.H);
    g->dzf = train_carve(base, &c, N * d.H);
    return c;
}

static int64_t grad_floats(const braid_trainer *tr, int64_t B, int64_t T) {
    mlstm_grads g;
    return grads_layout(tr, NULL, B, T, &g);
}

static void bwd(braid_trainer *tr, const void *params, const void *acts, const float *xn, const float *xq, float *dxn,
                const float *dy, int64_t B, int64_t T) {
    const mlstm_params *p = params;
    const mlstm_acts *a = acts;
    const int64_t N = B * T, D = tr->hp.n_embd;
    const mlstm_dims d = dims_of(&tr->hp.xm, T);
    mlstm_grads grads, *gr = &grads;
    grads_layout(tr, tr->gscratch, B, T, gr);
    /* (O) y = W_o u (straight through the activation quantizer) */
    lin_bwd(gr->du, 0, tp_g(tr, p->wo), dy, a->uq, tp_fw(tr, p->wo), N, d.Hd, D);
    bwd_job j = {tr, p, a, gr, d, T};
    pool_parallel_for(B * d.H, 1, bwd_task, &j);
    bwd_job jn = {tr, p, a, gr, d, N};
    pool_parallel_for(d.d, 1, norm_dw_task, &jn);
    /* gate biases, shared by sequences, reduced in row order */
    float *dbi = tp_g(tr, p->bi), *dbf = tp_g(tr, p->bf);
    for (int64_t row = 0; row < N; row++)
        for (int64_t h = 0; h < d.H; h++) {
            dbi[h] += gr->dzi[row * d.H + h];
            dbf[h] += gr->dzf[row * d.H + h];
        }
    /* (P) */
    lin_bwd(dxn, 0, tp_g(tr, p->wq), gr->dq, xq, tp_fw(tr, p->wq), N, D, d.Hd);
    lin_bwd(dxn, 1, tp_g(tr, p->wk), gr->dk, xq, tp_fw(tr, p->wk), N, D, d.Hd);
    lin_bwd(dxn, 1, tp_g(tr, p->wv), gr->dv, xq, tp_fw(tr, p->wv), N, D, d.Hd);
    lin_bwd(dxn, 1, tp_g(tr, p->wog), gr->dog, xq, tp_fw(tr, p->wog), N, D, d.Hd);
    lin_bwd(dxn, 1, tp_g(tr, p->wi), gr->dzi, xn, tp_fw(tr, p->wi), N, D, d.H);
    lin_bwd(dxn, 1, tp_g(tr, p->wf), gr->dzf, xn, tp_fw(tr, p->wf), N, D, d.H);
}

/* ---- the layer kind ---------------------------------------------------------------------- */

static int32_t bind(braid_trainer *tr, int32_t il, void *params) {
    mlstm_params *p = params;
    static const char *names[] = {"xm_q.weight", "xm_k.weight", "xm_v.weight", "xm_og.weight",
                                  "xm_o.weight", "xm_i.weight", "xm_f.weight", "xm_i.bias",
                                  "xm_f.bias",   "xm_norm.weight", "xm_norm.bias"};
    int32_t *slots[] = {&p->wq, &p->wk, &p->wv, &p->wog, &p->wo, &p->wi,
                        &p->wf, &p->bi, &p->bf, &p->norm_w, &p->norm_b};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int32_t st = train_find_block_param(tr, il, names[i], slots[i]);
        if (st) return st;
    }
    return BRAID_OK;
}

static void layout(const braid_trainer *tr, float *base, int64_t *c, int64_t B, int64_t T, void *acts) {
    mlstm_acts *a = acts;
    const mlstm_dims d = dims_of(&tr->hp.xm, T);
    const int64_t N = B * T;
    a->q = train_carve(base, c, N * d.Hd);
    a->k = train_carve(base, c, N * d.Hd);
    a->v = train_carve(base, c, N * d.Hd);
    a->og = train_carve(base, c, N * d.Hd);
    a->zi = train_carve(base, c, N * d.H);
    a->zf = train_carve(base, c, N * d.H);
    a->ig = train_carve(base, c, N * d.H);
    a->lf = train_carve(base, c, N * d.H);
    a->m = train_carve(base, c, N * d.H);
    a->h = train_carve(base, c, N * d.Hd);
    a->mean = train_carve(base, c, N * d.H);
    a->rstd = train_carve(base, c, N * d.H);
    a->u = train_carve(base, c, N * d.Hd);
    a->uq = train_carve(base, c, N * d.Hd);
    a->ck = train_carve(base, c, B * d.H * (d.nck + 1) * d.SZ);
}

const train_layer_ops train_mlstm_ops = {
    .name = "XM",
    .params_size = sizeof(mlstm_params),
    .acts_size = sizeof(mlstm_acts),
    .bind = bind,
    .layout = layout,
    .grad_floats = grad_floats,
    .thread_floats = thread_floats,
    .fwd = fwd,
    .bwd = bwd,
};
