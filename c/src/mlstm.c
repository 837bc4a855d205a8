/*
 * mlstm.c — xLSTM mLSTM mixer (XM layers), ../shared/ARCHITECTURES.md §2.6
 * (the FULL reference's cell: no conv, no L2 norm, output gate + per-head LayerNorm).
 *
 *   (P) q = (W_q x)·d^{-1/2}, k = W_k x, v = W_v x, õ = W_og x     BitLinear §2.2 (one quantization of x)
 *       ĩ = cap(W_i x + b_i), f̃ = cap(W_f x + b_f), ℓ = log σ(f̃)   fp32, cap(z) = c·tanh(z/c)
 *   (R) stabilised recurrence per head (state C [d,d], n [d], m; m_0 = −∞):
 *         m_t  = max(ℓ_t + m_{t−1}, ĩ_t)
 *         i'_t = exp(ĩ_t − m_t),  f'_t = exp(ℓ_t + m_{t−1} − m_t)   (= 0 for the first token)
 *         C_t  = f'_t C_{t−1} + i'_t v_t k_tᵀ,   n_t = f'_t n_{t−1} + i'_t k_t
 *         h̃_t  = C_t q_t / (max(|n_t·q_t|, exp(−m_t)) + 1e−6)                — mlstm_step
 *   (W) parallel form (the reference's training form, tested equal to R in c/test/test_layers.c):
 *         F_t = Σ_{u≤t} ℓ_u,  L_ts = F_t − F_s + ĩ_s (s ≤ t),  m_t = max_s L_ts
 *         W_ts = (q_t·k_s) exp(L_ts − m_t),  h̃_t = Σ_s W_ts v_s / (max(|Σ_s W_ts|, exp(−m_t)) + 1e−6)
 *   (O) h_t = LayerNorm_d(h̃_t) per head (shared affine, eps chimera.xlstm.norm_eps)
 *       y_t = W_o (σ(õ_t) ⊙ concat_h h_t)                              BitLinear §2.2
 * m_0 = −∞ is kept exact (the reference's parallel form has no initial
 * stabiliser) by a per-layer "started" flag in the state instead of a stored
 * −∞, so the all-zero state is the initial state and blobs stay finite.
 */
#include "mlstm.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "ffn.h"
#include "threadpool.h"

int64_t mlstm_state_floats(const mlstm_hparams *hp) {
    int64_t H = hp->n_head, d = hp->head_dim;
    return H * d * d + H * d + H + 1;
}

/* (R) */
void mlstm_step(float *h, float *C, float *n, float *m, int first, const float *q, const float *k, const float *v,
                float ig, float lf, int64_t d) {
    float mt, fp, ip;
    if (first) {
        mt = ig;
        fp = 0.0f;
    } else {
        mt = fmaxf(lf + *m, ig);
        fp = expf(lf + *m - mt);
    }
    ip = expf(ig - mt);
    *m = mt;
    float nq = 0.0f;
    for (int64_t b = 0; b < d; b++) {
        n[b] = fp * n[b] + ip * k[b];
        nq += n[b] * q[b];
    }
    float den = fmaxf(fabsf(nq), expf(-mt)) + 1e-6f;
    for (int64_t a = 0; a < d; a++) {
        float *Ca = C + a * d, iv = ip * v[a], acc = 0.0f;
        for (int64_t b = 0; b < d; b++) {
            Ca[b] = fp * Ca[b] + iv * k[b];
            acc += Ca[b] * q[b];
        }
        h[a] = acc / den;
    }
}

/* (W) */
void mlstm_parallel(float *h, int64_t ld_h, const float *q, const float *k, const float *v, int64_t ld,
                    const float *ig, const float *lf, int64_t ld_g, int64_t T, int64_t d, float *scratch) {
    float *F = scratch; /* [T] cumulative log forget */
    float acc = 0.0f;
    for (int64_t t = 0; t < T; t++) F[t] = acc += lf[t * ld_g];
    for (int64_t t = 0; t < T; t++) {
        float mt = -INFINITY;
        for (int64_t s = 0; s <= t; s++) mt = fmaxf(mt, F[t] - F[s] + ig[s * ld_g]);
        float *ht = h + t * ld_h, wsum = 0.0f;
        for (int64_t a = 0; a < d; a++) ht[a] = 0.0f;
        for (int64_t s = 0; s <= t; s++) {
            float qk = 0.0f;
            for (int64_t b = 0; b < d; b++) qk += q[t * ld + b] * k[s * ld + b];
            float wts = qk * expf(F[t] - F[s] + ig[s * ld_g] - mt);
            wsum += wts;
            for (int64_t a = 0; a < d; a++) ht[a] += wts * v[s * ld + a];
        }
        float den = fmaxf(fabsf(wsum), expf(-mt)) + 1e-6f;
        for (int64_t a = 0; a < d; a++) ht[a] /= den;
    }
}

/* ---- layer forward ---------------------------------------------------------- */

static inline float sigmoidf(float z) { return 1.0f / (1.0f + expf(-z)); }
/* log σ(z) = −softplus(−z), stable for both signs */
static inline float log_sigmoidf(float z) { return z >= 0.0f ? -log1pf(expf(-z)) : z - log1pf(expf(z)); }

typedef struct {
    const mlstm_weights *w;
    const mlstm_hparams *hp;
    mlstm_buffers *buf;
    float *state;
    int first;
    int64_t T;
} head_job;

static void head_task(void *arg, int64_t h0, int64_t h1, int32_t thread) {
    const head_job *j = arg;
    const mlstm_hparams *hp = j->hp;
    mlstm_buffers *b = j->buf;
    const int64_t H = hp->n_head, d = hp->head_dim, Hd = H * d, T = j->T;
    const float cap = hp->soft_cap, qscale = 1.0f / sqrtf((float)d);
    float *Cs = j->state, *ns = Cs + H * d * d, *ms = ns + H * d;
    for (int64_t h = h0; h < h1; h++) {
        float *C = Cs + h * d * d, *n = ns + h * d, *m = ms + h;
        for (int64_t t = 0; t < T; t++) {
            float *qt = b->q + t * Hd + h * d, *ot = b->o + t * Hd + h * d;
            for (int64_t i = 0; i < d; i++) qt[i] *= qscale;
            float ig = cap * tanhf((b->ig[t * H + h] + j->w->bi[h]) / cap);
            float fz = cap * tanhf((b->lf[t * H + h] + j->w->bf[h]) / cap);
            /* (R) every token, also in prefill: n tokens in one eval must give the
             * same bits as n evals of one token (prefix reuse, speculative
             * verification); the parallel form (W) is equal only up to rounding. */
            mlstm_step(ot, C, n, m, j->first && t == 0, qt, b->k + t * Hd + h * d, b->v + t * Hd + h * d, ig,
                       log_sigmoidf(fz), d);
            /* (O) LayerNorm over the head, then the output gate */
            float mean = 0.0f, var = 0.0f;
            for (int64_t i = 0; i < d; i++) mean += ot[i];
            mean /= (float)d;
            for (int64_t i = 0; i < d; i++) var += (ot[i] - mean) * (ot[i] - mean);
            var /= (float)d;
            float rstd = 1.0f / sqrtf(var + hp->norm_eps);
            const float *og = b->og + t * Hd + h * d;
            for (int64_t i = 0; i < d; i++)
                ot[i] = sigmoidf(og[i]) * ((ot[i] - mean) * rstd * j->w->norm_w[i] + j->w->norm_b[i]);
        }
    }
}

void mlstm_forward(float *y, float *state, const float *xn, const mlstm_weights *w, const mlstm_hparams *hp,
                   int64_t T, int64_t D, mlstm_buffers *buf) {
    const int64_t H = hp->n_head, Hd = H * hp->head_dim;
    float *flag = state + mlstm_state_floats(hp) - 1;

    /* (P) */
    linear_quantize(buf->act, xn, T, D);
    linear_op proj[6] = {
        {.y = buf->q, .ldy = Hd, .bt2 = w->wq, .rows = Hd},   {.y = buf->k, .ldy = Hd, .bt2 = w->wk, .rows = Hd},
        {.y = buf->v, .ldy = Hd, .bt2 = w->wv, .rows = Hd},   {.y = buf->og, .ldy = Hd, .bt2 = w->wog, .rows = Hd},
        {.y = buf->ig, .ldy = H, .fm = fmat_f32(w->wi), .rows = H},
        {.y = buf->lf, .ldy = H, .fm = fmat_f32(w->wf), .rows = H},
    };
    linear_run(proj, 6, buf->act, xn, T, D);

    /* (R) (O) per head */
    head_job hj = {w, hp, buf, state, *flag == 0.0f, T};
    pool_parallel_for_dynamic(H, 1, head_task, &hj);
    *flag = 1.0f;

    /* (O) y = W_o o */
    linear_quantize(buf->act, buf->o, T, Hd);
    linear_op out = {.y = y, .ldy = D, .bt2 = w->wo, .rows = D};
    linear_run(&out, 1, buf->act, buf->o, T, Hd);
}
