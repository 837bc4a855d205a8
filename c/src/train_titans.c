/*
 * train_titans.c — the Titans MAC mixer (TM layers) for training: forward
 * (keeping activations) and backward, side by side. The forward is titans.c's
 * math step for step (formula list there, ARCHITECTURES.md §2.8-P), with
 * BitLinear as QAT (train.h). Per (sequence, head) and segment s of C_s tokens,
 * with M_s = (W1, W2) the memory at the segment start and S_s the momentum:
 *   (A) r_t = M_s(q_t), attention of q_t over [P_k; L2norm(r_j); k_j], j ≤ t in s → y_t
 *   (B) k^M = L2norm(W_kM ŷ), v^M = W_vM ŷ         (ŷ = int8(concat_h y), one GEMM: heads mix here)
 *   (C) o_t = y_t ⊙ σ(M_s(k^M_t));  g_t = ∇‖M(k^M) − v^M‖² at M_s
 *       S_i = η_i S_{i−1} − θ_i g_i,  R_i = (1 − α_i) R_{i−1} + S_i,  R_0 = M_s;  M_{s+1} = R at the end
 *
 * Backward: segments walk backwards carrying dM = ∂L/∂M_{s+1} and dS = ∂L/∂S_{s+1}
 * per (sequence, head). Inside a segment we backprop the token recurrence, not
 * the closed form (titans_segment_closed): its ratios E_i/E_r, B_C/B_i under-
 * and overflow for long segments, and the recurrence needs no per-token memory
 * copies anyway, because every g_i is taken at M_s, never at the running R. So
 * the adjoints of the running state are linear in the two boundary adjoints:
 *   ∂L/∂R_i = A_i dM,   dS_tot = ∂L/∂S_i (through S_{i+1} and R_i) = (x_i + A_i) dM + y_i dS
 *   walking i down from A = 1, x = 0, y = 1 at the end:  x ← η_i (x + A),  y ← η_i y,  then A ← (1 − α_i) A
 * and the gate gradients need only the scalars ⟨dM, S_{i−1}⟩, ⟨dS, S_{i−1}⟩,
 * ⟨dM, R_{i−1}⟩, which follow the forward recurrence projected on dM and dS
 * (⟨X, g_i⟩ = δᵀ X1 k + eᵀ X2 z: g is rank one per weight):
 *   dθ_i = −⟨dS_tot, g_i⟩,  dη_i = ⟨dS_tot, S_{i−1}⟩,  dα_i = −A_i ⟨dM, R_{i−1}⟩,
 *   dg_i = −θ_i dS_tot
 * Then dM_s = A_0 dM + (what reaches M_s through g, the output gate and the
 * retrieval r = M_s(q)), dS_s = x_0 dM + y_0 dS. The g path is second order:
 * with a = W1 k, z = SiLU(a), p = W2 z, e = 2(p − v), u = W2ᵀ e, δ = u ⊙ SiLU'(a),
 * g1 = δ kᵀ, g2 = e zᵀ and G = dg_i:
 *   dδ = G1 k, dk += G1ᵀ δ, de = G2 z, dz += G2ᵀ e,
 *   du = dδ ⊙ SiLU'(a), da += dδ ⊙ u ⊙ SiLU''(a), dW2 += e duᵀ, de += W2 du,
 *   dp = 2 de (+ gate), dv = −2 de, dW2 += dp zᵀ, dz += W2ᵀ dp, da += dz ⊙ SiLU'(a), dW1 += da kᵀ
 *   SiLU''(a) = σ(a)(1 − σ(a))(2 + a(1 − 2σ(a)))
 * Memory: the forward stores (M_s, S_s) at every segment start, 4·d_m·d floats per
 * (sequence, head, segment); the backward keeps ∂L/∂(M, S) at the boundary, 4·d_m·d per
 * (sequence, head). The memory MLP's per-token values are recomputed from M_s, once per
 * segment (pass 1 of bwd_mem_task keeps them for pass 2: C_s·(4 d_m + 4 d) floats per thread).
 *
 * Threads: the forward runs (sequence, head) tasks; the backward runs head tasks
 * looping over the sequences inside, so the shared per-head gradients (P_k, P_v,
 * W1⁰, W2⁰) are summed in a fixed order without atomics.
 */
#include "train.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "kernels.h"
#include "sgemm.h"
#include "threadpool.h"
#include "train_ops.h"

/* Parameter indices of one TM layer (blk.<il>.tm_*). */
typedef struct {
    int32_t wq, wk, wv, wo, wkm, wvm; /* ternary */
    int32_t wa, we, wt, ba, be, bt;   /* float gates [H, D], biases [H] */
    int32_t pk, pv;                   /* [H, N_p, d] persistent slots */
    int32_t w1, w2;                   /* initial memory [H, d_m, d], [H, d, d_m] */
} titans_params;

/* Activations of one TM layer for N = B·T tokens ([N, width] row-major, Hd = H·d). */
typedef struct {
    float *q, *k, *v;    /* [N, Hd] projections, q and k L2-normalised per head in place */
    float *nq, *nk;      /* [N, H] their norms before normalising */
    float *za, *ze, *zt; /* [N, H] W_α x, W_η x, W_θ x (before the biases) */
    float *r, *rk;       /* [N, Hd] retrieved r = M_s(q) (memory-token value) and L2norm(r) (its key) */
    float *nr;           /* [N, H] ‖r‖ */
    float *y, *yq;       /* [N, Hd] attention output and its fake-quantized copy (input of W_kM, W_vM) */
    float *km, *vm;      /* [N, Hd] k^M (normalised), v^M */
    float *nkm;          /* [N, H] ‖W_kM ŷ‖ */
    float *o, *oq;       /* [N, Hd] gated output (input of W_o) and its fake-quantized copy */
    float *ck;           /* [B, H, n_seg + 1, 4P]: (W1, W2, S1, S2) at every segment start, then the running state */
} titans_acts;

/* Gradient scratch of one TM backward. */
typedef struct {
    float *dout, *dy;       /* [N, Hd] ∂L/∂o, ∂L/∂y */
    float *dkm, *dvm;       /* [N, Hd] ∂L/∂(W_kM ŷ) (before the norm), ∂L/∂v^M */
    float *dq, *dk, *dv;    /* [N, Hd] ∂L/∂ of the projections W_q x, W_k x, W_v x */
    float *drk, *drv;       /* [N, Hd] ∂L/∂ of each memory token's key and value */
    float *dza, *dze, *dzt; /* [N, H] */
    float *dst;             /* [B, H, 4P] (dM1, dM2, dS1, dS2): ∂L/∂(M, S) at the boundary being crossed */
} titans_grads;

typedef struct {
    int64_t H, d, dm, Np, Cs, Hd, P, nseg;
} titans_dims;

static titans_dims dims_of(const titans_hparams *hp, int64_t T) {
    titans_dims d = {hp->n_head, hp->head_dim, hp->mem_dim, hp->n_persist, hp->segment, 0, 0, 0};
    d.Hd = d.H * d.d;
    d.P = d.dm * d.d;
    d.nseg = (T + d.Cs - 1) / d.Cs;
    return d;
}

static inline float sigm(float z) { return 1.0f / (1.0f + expf(-z)); }
/* SiLU''(a) = σ(1 − σ)(2 + a(1 − 2σ)) */
static inline float tsilu_grad2(float a) {
    const float s = sigm(a);
    return s * (1.0f - s) * (2.0f + a * (1.0f - 2.0f * s));
}

/* x ← x / max(‖x‖, 1e-12) (l2norm_ref's formula); returns ‖x‖. */
static float l2n(float *x, int64_t n) {
    float ss = 0.0f;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    const float nrm = sqrtf(ss), k = 1.0f / fmaxf(nrm, 1e-12f);
    for (int64_t i = 0; i < n; i++) x[i] *= k;
    return nrm;
}

/* dx = ∂L/∂x in place of dy for y = x / max(‖x‖, 1e-12), given y and ‖x‖. */
static void l2n_bwd(float *dy, const float *y, float nrm, int64_t n) {
    if (nrm <= 1e-12f) { /* the floor: y = x · 1e12, constant factor */
        for (int64_t i = 0; i < n; i++) dy[i] *= 1e12f;
        return;
    }
    float dot = 0.0f;
    for (int64_t i = 0; i < n; i++) dot += y[i] * dy[i];
    for (int64_t i = 0; i < n; i++) dy[i] = (dy[i] - y[i] * dot) / nrm;
}

static float dot(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* y[cols] (+)= Wᵀ x for W [rows, cols] */
static void mtv(float *y, int acc, const float *W, const float *x, int64_t rows, int64_t cols) {
    if (!acc) memset(y, 0, sizeof(float) * (size_t)cols);
    for (int64_t r = 0; r < rows; r++) {
        const float xr = x[r], *wr = W + r * cols;
        for (int64_t c = 0; c < cols; c++) y[c] += wr[c] * xr;
    }
}

/* W[rows, cols] += u vᵀ */
static void ger(float *W, const float *u, const float *v, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float ur = u[r];
        float *wr = W + r * cols;
        for (int64_t c = 0; c < cols; c++) wr[c] += ur * v[c];
    }
}

/* p = W2 SiLU(W1 u), a = W1 u, z = SiLU(a): titans.c's mem_apply (same kernel calls, same bits). */
static void mem_apply(float *p, float *a, float *z, const float *W1, const float *W2, const float *u, int64_t d,
                      int64_t dm) {
    const kernel_table *kt = kernels();
    kt->gemv_f32(a, W1, u, d, 0, dm);
    kt->silu(z, a, dm);
    kt->gemv_f32(p, W2, z, dm, 0, d);
}

/* The step gates of token row g, head h. */
typedef struct {
    float alpha, eta, theta, sth; /* sth = σ(z_θ + b_θ) */
} gates;

static gates gates_of(const titans_acts *a, const float *ba, const float *be, const float *bt, float theta_max,
                      int64_t g, int64_t h) {
    gates r;
    r.alpha = sigm(a->za[g] + ba[h]);
    r.eta = sigm(a->ze[g] + be[h]);
    r.sth = sigm(a->zt[g] + bt[h]);
    r.theta = theta_max * r.sth;
    return r;
}

/* per-thread floats: forward (logits, a, z, δ, p, e) and backward (the memory-gradient contribution [2P],
 * coefficients [5 C_s], logits [N_p + 2 C_s], vectors [12 d_m + 10 d], pass 1's values [C_s (4 d_m + 4 d)]) */
static int64_t thread_floats(const braid_trainer *tr, int64_t T) {
    const titans_dims d = dims_of(&tr->hp.tm, T);
    return 2 * d.P + 5 * d.Cs + d.Np + 2 * d.Cs + 12 * d.dm + 10 * d.d + d.Cs * (4 * d.dm + 4 * d.d) + 64;
}

/* ---- forward ---------------------------------------------------------------------------- */

typedef struct {
    braid_trainer *tr;
    const titans_params *p;
    titans_acts *a;
    titans_dims d;
    int64_t T, s; /* tokens per sequence, segment */
} seg_job;

static float *ck_slot(const titans_acts *a, const titans_dims *d, int64_t task, int64_t s) {
    return a->ck + (task * (d->nseg + 1) + s) * 4 * d->P;
}

/* (A) for task b·H + h over segment s: checkpoint the state, retrieve, attend. */
static void fwd_attn_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    const seg_job *j = arg;
    const titans_dims d = j->d;
    const braid_trainer *tr = j->tr;
    titans_acts *a = j->a;
    const float scale = 1.0f / sqrtf((float)d.d);
    float *logit = tr->scratch + (int64_t)thread * tr->scratch_per_thread, *am = logit + d.Np + 2 * d.Cs,
          *zm = am + d.dm;
    const int64_t t0 = j->s * d.Cs, t1 = BRAID_MIN(j->T, t0 + d.Cs);
    for (int64_t task = i0; task < i1; task++) {
        const int64_t b = task / d.H, h = task % d.H;
        float *run = ck_slot(a, &d, task, d.nseg), *ck = ck_slot(a, &d, task, j->s);
        if (j->s == 0) { /* fresh sequence: memory W⁰, momentum 0 */
            memcpy(run, tp_w(tr, j->p->w1) + h * d.P, sizeof(float) * (size_t)d.P);
            memcpy(run + d.P, tp_w(tr, j->p->w2) + h * d.P, sizeof(float) * (size_t)d.P);
            memset(run + 2 * d.P, 0, sizeof(float) * (size_t)(2 * d.P));
        }
        memcpy(ck, run, sizeof(float) * (size_t)(4 * d.P)); /* M_s = the running memory at the segment start */
        const float *W1 = ck, *W2 = ck + d.P;
        const float *pk = tp_w(tr, j->p->pk) + h * d.Np * d.d, *pv = tp_w(tr, j->p->pv) + h * d.Np * d.d;
        for (int64_t t = t0; t < t1; t++) {
            const int64_t row = b * j->T + t, off = row * d.Hd + h * d.d, g = row * d.H + h, pos = t - t0;
            const int64_t seg0 = (b * j->T + t0) * d.Hd + h * d.d; /* first token of the segment, this head */
            float *q = a->q + off, *r = a->r + off, *rk = a->rk + off, *yt = a->y + off;
            a->nq[g] = l2n(q, d.d);
            a->nk[g] = l2n(a->k + off, d.d);
            mem_apply(r, am, zm, W1, W2, q, d.d, d.dm);
            memcpy(rk, r, sizeof(float) * (size_t)d.d);
            a->nr[g] = l2n(rk, d.d);
            /* logits over persistent, memory tokens 0..pos, local tokens 0..pos */
            const int64_t n = d.Np + 2 * (pos + 1);
            for (int64_t i = 0; i < d.Np; i++) logit[i] = dot(pk + i * d.d, q, d.d);
            for (int64_t i = 0; i <= pos; i++) {
                logit[d.Np + i] = dot(a->rk + seg0 + i * d.Hd, q, d.d);
                logit[d.Np + pos + 1 + i] = dot(a->k + seg0 + i * d.Hd, q, d.d);
            }
            float mx = -INFINITY, sum = 0.0f;
            for (int64_t i = 0; i < n; i++) mx = fmaxf(mx, logit[i] *= scale);
            for (int64_t i = 0; i < n; i++) sum += logit[i] = expf(logit[i] - mx);
            for (int64_t c = 0; c < d.d; c++) yt[c] = 0.0f;
            for (int64_t i = 0; i < d.Np; i++)
                for (int64_t c = 0; c < d.d; c++) yt[c] += logit[i] * pv[i * d.d + c];
            for (int64_t i = 0; i <= pos; i++)
                for (int64_t c = 0; c < d.d; c++) yt[c] += logit[d.Np + i] * a->r[seg0 + i * d.Hd + c];
            for (int64_t i = 0; i <= pos; i++)
                for (int64_t c = 0; c < d.d; c++) yt[c] += logit[d.Np + pos + 1 + i] * a->v[seg0 + i * d.Hd + c];
            for (int64_t c = 0; c < d.d; c++) yt[c] /= sum;
        }
    }
}

/* (C) for task b·H + h over segment s: output gate and the memory update. */
static void fwd_mem_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    const seg_job *j = arg;
    const titans_dims d = j->d;
    const braid_trainer *tr = j->tr;
    titans_acts *a = j->a;
    const float *ba = tp_w(tr, j->p->ba), *be = tp_w(tr, j->p->be), *bt = tp_w(tr, j->p->bt);
    float *am = tr->scratch + (int64_t)thread * tr->scratch_per_thread, *zm = am + d.dm, *dz = zm + d.dm,
          *p = dz + d.dm, *e = p + d.d;
    const int64_t t0 = j->s * d.Cs, t1 = BRAID_MIN(j->T, t0 + d.Cs);
    for (int64_t task = i0; task < i1; task++) {
        const int64_t b = task / d.H, h = task % d.H;
        float *run = ck_slot(a, &d, task, d.nseg);
        float *R1 = run, *R2 = run + d.P, *S1 = run + 2 * d.P, *S2 = run + 3 * d.P;
        const float *ck = ck_slot(a, &d, task, j->s), *W1 = ck, *W2 = ck + d.P;
        for (int64_t t = t0; t < t1; t++) {
            const int64_t row = b * j->T + t, off = row * d.Hd + h * d.d, g = row * d.H + h;
            float *km = a->km + off;
            const float *vm = a->vm + off, *yt = a->y + off;
            a->nkm[g] = l2n(km, d.d);
            mem_apply(p, am, zm, W1, W2, km, d.d, d.dm);
            for (int64_t c = 0; c < d.d; c++) a->o[off + c] = yt[c] * sigm(p[c]);
            for (int64_t c = 0; c < d.d; c++) e[c] = 2.0f * (p[c] - vm[c]);
            for (int64_t i = 0; i < d.dm; i++) {
                float s = 0.0f;
                for (int64_t c = 0; c < d.d; c++) s += W2[c * d.dm + i] * e[c];
                dz[i] = s * tsilu_grad(am[i]); /* δ = (W2ᵀ e) ⊙ SiLU'(a) */
            }
            const gates gt = gates_of(a, ba, be, bt, tr->hp.tm.theta_max, g, h);
            const float keep = 1.0f - gt.alpha;
            for (int64_t i = 0; i < d.dm; i++) /* W1 [d_m, d]: g = δ k^Mᵀ */
                for (int64_t c = 0; c < d.d; c++) {
                    const int64_t q = i * d.d + c;
                    S1[q] = gt.eta * S1[q] - gt.theta * (dz[i] * km[c]);
                    R1[q] = keep * R1[q] + S1[q];
                }
            for (int64_t c = 0; c < d.d; c++) /* W2 [d, d_m]: g = e zᵀ */
                for (int64_t i = 0; i < d.dm; i++) {
                    const int64_t q = c * d.dm + i;
                    S2[q] = gt.eta * S2[q] - gt.theta * (e[c] * zm[i]);
                    R2[q] = keep * R2[q] + S2[q];
                }
        }
    }
}

static void fwd(braid_trainer *tr, const void *params, void *acts, const float *xn, const float *xq, float *y,
                int64_t B, int64_t T) {
    const titans_params *p = params;
    titans_acts *a = acts;
    const int64_t N = B * T, D = tr->hp.n_embd;
    const titans_dims d = dims_of(&tr->hp.tm, T);
    /* (P) ternary projections read the quantized input, the gates the float one */
    lin_fwd(a->q, xq, tp_fw(tr, p->wq), N, D, d.Hd);
    lin_fwd(a->k, xq, tp_fw(tr, p->wk), N, D, d.Hd);
    lin_fwd(a->v, xq, tp_fw(tr, p->wv), N, D, d.Hd);
    lin_fwd(a->za, xn, tp_fw(tr, p->wa), N, D, d.H);
    lin_fwd(a->ze, xn, tp_fw(tr, p->we), N, D, d.H);
    lin_fwd(a->zt, xn, tp_fw(tr, p->wt), N, D, d.H);
    for (int64_t s = 0; s < d.nseg; s++) {
        seg_job j = {tr, p, a, d, T, s};
        pool_parallel_for(B * d.H, 1, fwd_attn_task, &j);
        /* (B) per sequence: the segment's rows are contiguous */
        const int64_t t0 = s * d.Cs, n = BRAID_MIN(T, t0 + d.Cs) - t0;
        for (int64_t b = 0; b < B; b++) {
            const int64_t o = (b * T + t0) * d.Hd;
            train_act_quant(tr, a->yq + o, a->y + o, n, d.Hd);
            lin_fwd(a->km + o, a->yq + o, tp_fw(tr, p->wkm), n, d.Hd, d.Hd);
            lin_fwd(a->vm + o, a->yq + o, tp_fw(tr, p->wvm), n, d.Hd, d.Hd);
        }
        pool_parallel_for(B * d.H, 1, fwd_mem_task, &j);
    }
    /* (O) */
    train_act_quant(tr, a->oq, a->o, N, d.Hd);
    lin_fwd(y, a->oq, tp_fw(tr, p->wo), N, d.Hd, D);
}

/* ---- backward ------------------------------------------------------------------------------ */

typedef struct {
    braid_trainer *tr;
    const titans_params *p;
    const titans_acts *a;
    const titans_grads *gr;
    titans_dims d;
    int64_t B, T, s;
} bwd_job;

/* (C) backward for head tasks over segment s, every sequence: the output gate and the memory update.
 * In: gr->dst = ∂L/∂(M_{s+1}, S_{s+1}); out: ∂L/∂(M_s, S_s) without the retrieval's part (bwd_attn_task),
 * dy (the gate's part), dkm, dvm and the gate gradients of the segment's tokens. */
static void bwd_mem_task(void *arg, int64_t h0, int64_t h1, int32_t thread) {
    const bwd_job *j = arg;
    const titans_dims d = j->d;
    const braid_trainer *tr = j->tr;
    const titans_acts *a = j->a;
    const titans_grads *gr = j->gr;
    const kernel_table *kt = kernels();
    const int64_t P = d.P, dm = d.dm, dd = d.d, t0 = j->s * d.Cs, t1 = BRAID_MIN(j->T, t0 + d.Cs), n = t1 - t0;
    const float *ba = tp_w(tr, j->p->ba), *be = tp_w(tr, j->p->be), *bt = tp_w(tr, j->p->bt);
    const float theta_max = tr->hp.tm.theta_max;
    /* the last segment's end state reaches nothing: dM = dS = 0 there, skip their terms */
    const int live = j->s + 1 < d.nseg;
    const int64_t VT = 4 * dm + 4 * dd; /* floats kept per token by pass 1 */
    float *contrib = tr->scratch + (int64_t)thread * tr->scratch_per_thread; /* [2P] ∂L/∂M_s from g and the gate */
    float *GM = contrib + 2 * P, *GS = GM + d.Cs, *sMp = GS + d.Cs, *sSp = sMp + d.Cs, *rp = sSp + d.Cs;
    float *zm = rp + d.Cs + d.Np + 2 * d.Cs, *del = zm + dm, *ddel = del + dm, *du = ddel + dm, *da = du + dm;
    float *dz = da + dm, *t5 = dz + dm, *t6 = t5 + dm;
    float *de = t6 + dm, *dp = de + dd, *dkn = dp + dd, *t7 = dkn + dd, *t8 = t7 + dd;
    float *tok = t8 + dd; /* [C_s, VT] per token: a, u = W2ᵀe, dM1 k, dS1 k [d_m]; p, e, dM2 z, dS2 z [d] */
    for (int64_t h = h0; h < h1; h++)
        for (int64_t b = 0; b < j->B; b++) {
            const int64_t task = b * d.H + h;
            const float *ck = ck_slot(a, &d, task, j->s), *W1 = ck, *W2 = ck + P;
            float *dst = gr->dst + task * 4 * P, *dM1 = dst, *dM2 = dst + P, *dS1 = dst + 2 * P, *dS2 = dst + 3 * P;
            memset(contrib, 0, sizeof(float) * (size_t)(2 * P));
            /* pass 1 (forward over the tokens): the memory MLP at k^M, and when the end state has a
             * gradient, ⟨dM, g_i⟩, ⟨dS, g_i⟩ and the recurrence projected on dM and dS */
            float sM = 0.0f, sS = 0.0f, rho = 0.0f;
            if (live) sM = dot(dM1, ck + 2 * P, 2 * P), sS = dot(dS1, ck + 2 * P, 2 * P), rho = dot(dM1, ck, 2 * P);
            for (int64_t i = 0; i < n; i++) {
                const int64_t row = b * j->T + t0 + i, off = row * d.Hd + h * dd, g = row * d.H + h;
                const float *km = a->km + off, *vm = a->vm + off;
                float *am = tok + i * VT, *u = am + dm, *mk = u + dm, *sk = mk + dm;
                float *p = sk + dm, *e = p + dd, *mz = e + dd, *sz = mz + dd;
                mem_apply(p, am, zm, W1, W2, km, dd, dm);
                for (int64_t c = 0; c < dd; c++) e[c] = 2.0f * (p[c] - vm[c]);
                mtv(u, 0, W2, e, dd, dm);
                if (!live) continue;
                for (int64_t k = 0; k < dm; k++) del[k] = u[k] * tsilu_grad(am[k]);
                kt->gemv_f32(mk, dM1, km, dd, 0, dm);
                kt->gemv_f32(sk, dS1, km, dd, 0, dm);
                kt->gemv_f32(mz, dM2, zm, dm, 0, dd);
                kt->gemv_f32(sz, dS2, zm, dm, 0, dd);
                GM[i] = dot(del, mk, dm) + dot(e, mz, dd);
                GS[i] = dot(del, sk, dm) + dot(e, sz, dd);
                const gates gt = gates_of(a, ba, be, bt, theta_max, g, h);
                sMp[i] = sM, sSp[i] = sS, rp[i] = rho;
                sM = gt.eta * sM - gt.theta * GM[i];
                sS = gt.eta * sS - gt.theta * GS[i];
                rho = (1.0f - gt.alpha) * rho + sM;
            }
            /* pass 2 (backward over the tokens) */
            float A = 1.0f, x = 0.0f, y = 1.0f;
            for (int64_t i = n - 1; i >= 0; i--) {
                const int64_t row = b * j->T + t0 + i, off = row * d.Hd + h * dd, g = row * d.H + h;
                const float *km = a->km + off, *yt = a->y + off, *dot_o = gr->dout + off;
                const float *am = tok + i * VT, *u = am + dm, *mk = u + dm, *sk = mk + dm;
                const float *p = sk + dm, *e = p + dd, *mz = e + dd, *sz = mz + dd;
                const gates gt = gates_of(a, ba, be, bt, theta_max, g, h);
                kt->silu(zm, am, dm);
                const float cM = x + A, cS = y;
                float dalpha = 0.0f, deta = 0.0f, dtheta = 0.0f;
                if (live) {
                    dtheta = -(cM * GM[i] + cS * GS[i]);
                    deta = cM * sMp[i] + cS * sSp[i];
                    dalpha = -A * rp[i];
                    /* dg = −θ (cM dM + cS dS):  dδ = dg1 k, dk = dg1ᵀ δ, de = dg2 z, dz = dg2ᵀ e */
                    const float fM = -gt.theta * cM, fS = -gt.theta * cS;
                    for (int64_t k = 0; k < dm; k++) del[k] = u[k] * tsilu_grad(am[k]);
                    for (int64_t k = 0; k < dm; k++) ddel[k] = fM * mk[k] + fS * sk[k];
                    for (int64_t c = 0; c < dd; c++) de[c] = fM * mz[c] + fS * sz[c];
                    mtv(t7, 0, dM1, del, dm, dd);
                    mtv(t8, 0, dS1, del, dm, dd);
                    for (int64_t c = 0; c < dd; c++) dkn[c] = fM * t7[c] + fS * t8[c];
                    mtv(t5, 0, dM2, e, dd, dm);
                    mtv(t6, 0, dS2, e, dd, dm);
                    for (int64_t k = 0; k < dm; k++) dz[k] = fM * t5[k] + fS * t6[k];
                    /* δ = u ⊙ SiLU'(a), u = W2ᵀ e */
                    for (int64_t k = 0; k < dm; k++) {
                        du[k] = ddel[k] * tsilu_grad(am[k]);
                        da[k] = ddel[k] * u[k] * tsilu_grad2(am[k]);
                    }
                    ger(contrib + P, e, du, dd, dm);
                    kt->gemv_f32(t7, W2, du, dm, 0, dd);
                    for (int64_t c = 0; c < dd; c++) de[c] += t7[c];
                } else {
                    memset(dkn, 0, sizeof(float) * (size_t)dd);
                    memset(de, 0, sizeof(float) * (size_t)dd);
                    memset(dz, 0, sizeof(float) * (size_t)dm);
                    memset(da, 0, sizeof(float) * (size_t)dm);
                }
                /* o = y ⊙ σ(p), e = 2(p − v^M) */
                float *dyt = gr->dy + off, *dvm = gr->dvm + off;
                for (int64_t c = 0; c < dd; c++) {
                    const float sp = sigm(p[c]);
                    dyt[c] = dot_o[c] * sp;
                    dp[c] = dot_o[c] * yt[c] * sp * (1.0f - sp) + 2.0f * de[c];
                    dvm[c] = -2.0f * de[c];
                }
                /* p = W2 z, z = SiLU(a), a = W1 k^M */
                ger(contrib + P, dp, zm, dd, dm);
                mtv(dz, 1, W2, dp, dd, dm);
                for (int64_t k = 0; k < dm; k++) da[k] += dz[k] * tsilu_grad(am[k]);
                ger(contrib, da, km, dm, dd);
                mtv(dkn, 1, W1, da, dm, dd);
                l2n_bwd(dkn, km, a->nkm[g], dd);
                memcpy(gr->dkm + off, dkn, sizeof(float) * (size_t)dd);
                /* α = σ(·), η = σ(·), θ = θ_max σ(·) */
                gr->dza[g] = dalpha * gt.alpha * (1.0f - gt.alpha);
                gr->dze[g] = deta * gt.eta * (1.0f - gt.eta);
                gr->dzt[g] = dtheta * gt.theta * (1.0f - gt.sth);
                x = gt.eta * cM;
                y = gt.eta * cS;
                A *= 1.0f - gt.alpha;
            }
            /* ∂L/∂S_s = x dM + y dS;  ∂L/∂M_s = A dM + contrib (+ the retrieval's part, later) */
            for (int64_t q = 0; q < 2 * P; q++) {
                dS1[q] = x * dM1[q] + y * dS1[q];
                dM1[q] = A * dM1[q] + contrib[q];
            }
        }
}

/* (A) backward for head tasks over segment s, every sequence: attention, the retrieval r = M_s(q)
 * (its part of ∂L/∂M_s goes into gr->dst; at s = 0 ∂L/∂M_0 lands on W1⁰, W2⁰), and the q, k norms. */
static void bwd_attn_task(void *arg, int64_t h0, int64_t h1, int32_t thread) {
    const bwd_job *j = arg;
    const titans_dims d = j->d;
    const braid_trainer *tr = j->tr;
    const titans_acts *a = j->a;
    const titans_grads *gr = j->gr;
    const int64_t P = d.P, dm = d.dm, dd = d.d, t0 = j->s * d.Cs, t1 = BRAID_MIN(j->T, t0 + d.Cs);
    const float scale = 1.0f / sqrtf((float)dd);
    float *logit = tr->scratch + (int64_t)thread * tr->scratch_per_thread + 2 * P + 5 * d.Cs;
    float *am = logit + d.Np + 2 * d.Cs, *zm = am + dm, *dz = zm + dm, *dr = dz + dm, *rr = dr + dd;
    for (int64_t h = h0; h < h1; h++) {
        const float *pk = tp_w(tr, j->p->pk) + h * d.Np * dd, *pv = tp_w(tr, j->p->pv) + h * d.Np * dd;
        float *dpk = tp_g(tr, j->p->pk) + h * d.Np * dd, *dpv = tp_g(tr, j->p->pv) + h * d.Np * dd;
        for (int64_t b = 0; b < j->B; b++) {
            const int64_t task = b * d.H + h, seg0 = (b * j->T + t0) * d.Hd + h * dd;
            const float *ck = ck_slot(a, &d, task, j->s), *W1 = ck, *W2 = ck + P;
            float *dM1 = gr->dst + task * 4 * P, *dM2 = dM1 + P;
            for (int64_t t = t0; t < t1; t++) {
                const int64_t row = b * j->T + t, off = row * d.Hd + h * dd, pos = t - t0;
                const float *q = a->q + off, *yt = a->y + off, *dyt = gr->dy + off;
                /* recompute the probabilities */
                const int64_t n = d.Np + 2 * (pos + 1);
                for (int64_t i = 0; i < d.Np; i++) logit[i] = dot(pk + i * dd, q, dd);
                for (int64_t i = 0; i <= pos; i++) {
                    logit[d.Np + i] = dot(a->rk + seg0 + i * d.Hd, q, dd);
                    logit[d.Np + pos + 1 + i] = dot(a->k + seg0 + i * d.Hd, q, dd);
                }
                float mx = -INFINITY, sum = 0.0f;
                for (int64_t i = 0; i < n; i++) mx = fmaxf(mx, logit[i] *= scale);
                for (int64_t i = 0; i < n; i++) sum += logit[i] = expf(logit[i] - mx);
                for (int64_t i = 0; i < n; i++) logit[i] /= sum;
                /* y = Σ P_j val_j:  dP_j = dy·val_j,  dlogit_j = P_j (dP_j − dy·y),  logit = scale key·q */
                const float dyy = dot(dyt, yt, dd);
                float *dq = gr->dq + off;
                memset(dq, 0, sizeof(float) * (size_t)dd);
                for (int64_t i = 0; i < n; i++) {
                    const float *key, *val;
                    float *dkey, *dval;
                    if (i < d.Np) {
                        key = pk + i * dd, val = pv + i * dd, dkey = dpk + i * dd, dval = dpv + i * dd;
                    } else if (i < d.Np + pos + 1) {
                        const int64_t o = seg0 + (i - d.Np) * d.Hd;
                        key = a->rk + o, val = a->r + o, dkey = gr->drk + o, dval = gr->drv + o;
                    } else {
                        const int64_t o = seg0 + (i - d.Np - pos - 1) * d.Hd;
                        key = a->k + o, val = a->v + o, dkey = gr->dk + o, dval = gr->dv + o;
                    }
                    const float pj = logit[i], dl = pj * (dot(dyt, val, dd) - dyy) * scale;
                    for (int64_t c = 0; c < dd; c++) {
                        dq[c] += dl * key[c];
                        dkey[c] += dl * q[c];
                        dval[c] += pj * dyt[c];
                    }
                }
            }
            /* memory tokens: key L2norm(r), value r, r = W2 SiLU(W1 q); then the q, k norms */
            for (int64_t t = t0; t < t1; t++) {
                const int64_t row = b * j->T + t, off = row * d.Hd + h * dd, g = row * d.H + h;
                const float *q = a->q + off;
                memcpy(dr, gr->drk + off, sizeof(float) * (size_t)dd);
                l2n_bwd(dr, a->rk + off, a->nr[g], dd);
                for (int64_t c = 0; c < dd; c++) dr[c] += gr->drv[off + c];
                mem_apply(rr, am, zm, W1, W2, q, dd, dm); /* r itself is stored; a and z are needed */
                ger(dM2, dr, zm, dd, dm);
                mtv(dz, 0, W2, dr, dd, dm);
                for (int64_t k = 0; k < dm; k++) dz[k] *= tsilu_grad(am[k]);
                ger(dM1, dz, q, dm, dd);
                mtv(gr->dq + off, 1, W1, dz, dm, dd);
                l2n_bwd(gr->dq + off, q, a->nq[g], dd);
                l2n_bwd(gr->dk + off, a->k + off, a->nk[g], dd);
            }
            if (j->s == 0) { /* M_0 = W⁰ (S_0 = 0 is a constant) */
                float *dw1 = tp_g(tr, j->p->w1) + h * P, *dw2 = tp_g(tr, j->p->w2) + h * P;
                for (int64_t q = 0; q < P; q++) {
                    dw1[q] += dM1[q];
                    dw2[q] += dM2[q];
                }
            }
        }
    }
}

/* Carves the gradient scratch from tr->gscratch (counts when base is NULL). */
static int64_t grads_layout(const braid_trainer *tr, float *base, int64_t B, int64_t T, titans_grads *g) {
    const titans_dims d = dims_of(&tr->hp.tm, T);
    const int64_t N = B * T;
    int64_t c = 0;
    float **rows[] = {&g->dout, &g->dy, &g->dkm, &g->dvm, &g->dq, &g->dk, &g->dv, &g->drk, &g->drv};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) *rows[i] = train_carve(base, &c, N * d.Hd);
    g->dza = train_carve(base, &c, N * d.H);
    g->dze = train_carve(base, &c, N * d.H);
    g->dzt = train_carve(base, &c, N * d.H);
    g->dst = train_carve(base, &c, B * d.H * 4 * d.P);
    return c;
}

static int64_t grad_floats(const braid_trainer *tr, int64_t B, int64_t T) {
    titans_grads g;
    return grads_layout(tr, NULL, B, T, &g);
}

static void bwd(braid_trainer *tr, const void *params, const void *acts, const float *xn, const float *xq, float *dxn,
                const float *dy, int64_t B, int64_t T) {
    const titans_params *p = params;
    const titans_acts *a = acts;
    const int64_t N = B * T, D = tr->hp.n_embd;
    const titans_dims d = dims_of(&tr->hp.tm, T);
    titans_grads grads, *gr = &grads;
    grads_layout(tr, tr->gscratch, B, T, gr);
    /* accumulated by the attention backward */
    memset(gr->dk, 0, sizeof(float) * (size_t)(N * d.Hd));
    memset(gr->dv, 0, sizeof(float) * (size_t)(N * d.Hd));
    memset(gr->drk, 0, sizeof(float) * (size_t)(N * d.Hd));
    memset(gr->drv, 0, sizeof(float) * (size_t)(N * d.Hd));
    memset(gr->dst, 0, sizeof(float) * (size_t)(B * d.H * 4 * d.P));
    /* (O) y = W_o ô (straight through the activation quantizer) */
    lin_bwd(gr->dout, 0, tp_g(tr, p->wo), dy, a->oq, tp_fw(tr, p->wo), N, d.Hd, D);
    const float *wkm = tp_fw(tr, p->wkm), *wvm = tp_fw(tr, p->wvm);
    for (int64_t s = d.nseg - 1; s >= 0; s--) {
        bwd_job j = {tr, p, a, gr, d, B, T, s};
        pool_parallel_for(d.H, 1, bwd_mem_task, &j);
        /* (B) dy += dkm W_kM + dvm W_vM for the segment's rows (straight through ŷ) */
        const int64_t t0 = s * d.Cs, n = BRAID_MIN(T, t0 + d.Cs) - t0;
        for (int64_t b = 0; b < B; b++) {
            const int64_t o = (b * T + t0) * d.Hd;
            sgemm(0, 0, n, d.Hd, d.Hd, 1.0f, gr->dkm + o, d.Hd, wkm, d.Hd, 1.0f, gr->dy + o, d.Hd);
            sgemm(0, 0, n, d.Hd, d.Hd, 1.0f, gr->dvm + o, d.Hd, wvm, d.Hd, 1.0f, gr->dy + o, d.Hd);
        }
        pool_parallel_for(d.H, 1, bwd_attn_task, &j);
    }
    lin_bwd(NULL, 0, tp_g(tr, p->wkm), gr->dkm, a->yq, wkm, N, d.Hd, d.Hd);
    lin_bwd(NULL, 0, tp_g(tr, p->wvm), gr->dvm, a->yq, wvm, N, d.Hd, d.Hd);
    /* gate biases, shared by sequences, reduced in row order */
    float *dba = tp_g(tr, p->ba), *dbe = tp_g(tr, p->be), *dbt = tp_g(tr, p->bt);
    for (int64_t row = 0; row < N; row++)
        for (int64_t h = 0; h < d.H; h++) {
            dba[h] += gr->dza[row * d.H + h];
            dbe[h] += gr->dze[row * d.H + h];
            dbt[h] += gr->dzt[row * d.H + h];
        }
    /* (P) */
    lin_bwd(dxn, 0, tp_g(tr, p->wq), gr->dq, xq, tp_fw(tr, p->wq), N, D, d.Hd);
    lin_bwd(dxn, 1, tp_g(tr, p->wk), gr->dk, xq, tp_fw(tr, p->wk), N, D, d.Hd);
    lin_bwd(dxn, 1, tp_g(tr, p->wv), gr->dv, xq, tp_fw(tr, p->wv), N, D, d.Hd);
    lin_bwd(dxn, 1, tp_g(tr, p->wa), gr->dza, xn, tp_fw(tr, p->wa), N, D, d.H);
    lin_bwd(dxn, 1, tp_g(tr, p->we), gr->dze, xn, tp_fw(tr, p->we), N, D, d.H);
    lin_bwd(dxn, 1, tp_g(tr, p->wt), gr->dzt, xn, tp_fw(tr, p->wt), N, D, d.H);
}

/* ---- the layer kind ---------------------------------------------------------------------- */

static int32_t bind(braid_trainer *tr, int32_t il, void *params) {
    titans_params *p = params;
    static const char *names[] = {"tm_q.weight",     "tm_k.weight",   "tm_v.weight",     "tm_o.weight",
                                  "tm_km.weight",    "tm_vm.weight",  "tm_alpha.weight", "tm_eta.weight",
                                  "tm_theta.weight", "tm_alpha.bias", "tm_eta.bias",     "tm_theta.bias",
                                  "tm_persist_k",    "tm_persist_v",  "tm_mem_w1",       "tm_mem_w2"};
    int32_t *slots[] = {&p->wq, &p->wk, &p->wv, &p->wo, &p->wkm, &p->wvm, &p->wa, &p->we,
                        &p->wt, &p->ba, &p->be, &p->bt, &p->pk,  &p->pv,  &p->w1, &p->w2};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int32_t st = train_find_block_param(tr, il, names[i], slots[i]);
        if (st) return st;
    }
    return BRAID_OK;
}

static void layout(const braid_trainer *tr, float *base, int64_t *c, int64_t B, int64_t T, void *acts) {
    titans_acts *a = acts;
    const titans_dims d = dims_of(&tr->hp.tm, T);
    const int64_t N = B * T;
    float **rows[] = {&a->q, &a->k, &a->v, &a->r, &a->rk, &a->y, &a->yq, &a->km, &a->vm, &a->o, &a->oq};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) *rows[i] = train_carve(base, c, N * d.Hd);
    float **heads[] = {&a->nq, &a->nk, &a->za, &a->ze, &a->zt, &a->nr, &a->nkm};
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) *heads[i] = train_carve(base, c, N * d.H);
    a->ck = train_carve(base, c, B * d.H * (d.nseg + 1) * 4 * d.P);
}

const train_layer_ops train_titans_ops = {
    .name = "TM",
    .params_size = sizeof(titans_params),
    .acts_size = sizeof(titans_acts),
    .bind = bind,
    .layout = layout,
    .grad_floats = grad_floats,
    .thread_floats = thread_floats,
    .fwd = fwd,
    .bwd = bwd,
};
