/*
 * gdn.c — Gated DeltaNet mixer (GD layers), ../shared/ARCHITECTURES.md §2.5.
 *
 * Which formula each step is (x_t = the block's RMS-normed input, §2.0/§2.1):
 *   (P) projections        q̃ = W_q x, k̃ = W_k x, ṽ = W_v x, g̃ = W_g x   BitLinear §2.2 (one quantization of x)
 *                          a = W_a x, b = W_b x                        float linears (F32 or F16 W)
 *   (C) short convs §2.4   q̂ = conv_q(q̃), k̂ = conv_k(k̃), v = conv_v(ṽ)  causal depthwise, K taps, SiLU inside
 *   (N) q_t = L2norm_head(q̂_t) · d_k^{-1/2},  k_t = L2norm_head(k̂_t)     (u / max(‖u‖, 1e-12))
 *   (G) β_t[h] = σ(b_t[h]),  g_t[h] = −exp(A_log[h]) · softplus(a_t[h] + dt_bias[h])   (α_t = exp(g_t))
 *   (R) recurrent form (used for every token, see head_task), per head, S ∈ R^{d_v×d_k}:
 *         S_t = α_t S_{t−1} + β_t (v_t − α_t S_{t−1} k_t) k_tᵀ,   o_t = S_t q_t          — gdn_step
 *   (W) chunkwise-parallel form (chunks of C = chimera.gdn.chunk_size rows; kept for training, tested equal to R):
 *         γ_r = Σ_{u≤r} g_u,  Γ_r = exp(γ_r)
 *         A_{r,i} = β_r exp(γ_r − γ_i)(k_r·k_i) for i < r
 *         (I + A) U = diag(β) V − diag(β ⊙ Γ) K S_0ᵀ      (forward substitution, row by row)
 *         o_r = Γ_r S_0 q_r + Σ_{i≤r} exp(γ_r − γ_i)(q_r·k_i) u_i
 *         S_C = Γ_n S_0 + Σ_i exp(γ_n − γ_i) u_i k_iᵀ                                     — gdn_chunk
 *   (O) u_t[h] = RMSNorm_{d_v}(o_t[h]) ⊙ w_onorm ⊙ SiLU(g̃_t[h])   (ε = chimera.rms_norm_eps)
 *       y_t = W_o concat_h u_t[h]                                    BitLinear §2.2
 * Heads are independent after (P): steps (C), (N), (G), (R|W), (O) run per head on
 * the pool (the depthwise convs on the head's own channels), each head's writes
 * disjoint, so the result does not depend on the thread count.
 */
#include "gdn.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "ffn.h"
#include "threadpool.h"

int64_t gdn_state_floats(const gdn_hparams *hp) {
    int64_t H = hp->n_head, Hdk = H * hp->d_k, Hdv = H * hp->d_v;
    return H * hp->d_v * hp->d_k + (int64_t)(hp->conv_k - 1) * (2 * Hdk + Hdv);
}

int64_t gdn_chunk_scratch_floats(int64_t n, int64_t d_v) {
    return n /* γ */ + n * d_v /* U */;
}

static inline float dot(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* (R) — the delta-rule step itself is a kernel (SIMD variants, _ref reference). */
void gdn_step(float *o, float *S, const float *q, const float *k, const float *v, float beta, float g, int64_t d_k,
              int64_t d_v) {
    kernels()->delta_step(o, S, S, q, k, v, beta, expf(g), d_k, d_v);
}

/* (W) */
void gdn_chunk(float *o, int64_t ld_o, float *S, const float *q, const float *k, int64_t ld_qk, const float *v,
               int64_t ld_v, const float *beta, const float *g, int64_t ld_bg, int64_t n, int64_t d_k, int64_t d_v,
               float *scratch) {
    float *gam = scratch;  /* [n] cumulative log decay γ */
    float *U = scratch + n; /* [n, d_v] corrected values */
    float acc = 0.0f;
    for (int64_t r = 0; r < n; r++) {
        acc += g[r * ld_bg];
        gam[r] = acc;
    }
    /* U_r = β_r (v_r − Γ_r S_0 k_r) − Σ_{i<r} A_{r,i} U_i */
    for (int64_t r = 0; r < n; r++) {
        const float *kr = k + r * ld_qk, *vr = v + r * ld_v;
        float br = beta[r * ld_bg], Gr = expf(gam[r]);
        float *ur = U + r * d_v;
        for (int64_t i = 0; i < d_v; i++) ur[i] = br * (vr[i] - Gr * dot(S + i * d_k, kr, d_k));
        for (int64_t j = 0; j < r; j++) {
            float a = br * expf(gam[r] - gam[j]) * dot(kr, k + j * ld_qk, d_k);
            const float *uj = U + j * d_v;
            for (int64_t i = 0; i < d_v; i++) ur[i] -= a * uj[i];
        }
    }
    /* o_r = Γ_r S_0 q_r + Σ_{i≤r} exp(γ_r − γ_i)(q_r·k_i) u_i   (uses S_0: before the state update) */
    for (int64_t r = 0; r < n; r++) {
        const float *qr = q + r * ld_qk;
        float Gr = expf(gam[r]);
        float *or = o + r * ld_o;
        for (int64_t i = 0; i < d_v; i++) or[i] = Gr * dot(S + i * d_k, qr, d_k);
        for (int64_t j = 0; j <= r; j++) {
            float c = expf(gam[r] - gam[j]) * dot(qr, k + j * ld_qk, d_k);
            const float *uj = U + j * d_v;
            for (int64_t i = 0; i < d_v; i++) or[i] += c * uj[i];
        }
    }
    /* S_C = Γ_n S_0 + Σ_i exp(γ_n − γ_i) u_i k_iᵀ */
    float Gn = expf(gam[n - 1]);
    for (int64_t i = 0; i < d_v; i++) {
        float *Si = S + i * d_k;
        for (int64_t j = 0; j < d_k; j++) Si[j] *= Gn;
    }
    for (int64_t r = 0; r < n; r++) {
        float c = expf(gam[n - 1] - gam[r]);
        const float *kr = k + r * ld_qk, *ur = U + r * d_v;
        for (int64_t i = 0; i < d_v; i++) {
            float cu = c * ur[i];
            float *Si = S + i * d_k;
            for (int64_t j = 0; j < d_k; j++) Si[j] += cu * kr[j];
        }
    }
}

/* ---- layer forward ---------------------------------------------------------- */

static inline float sigmoidf(float z) { return 1.0f / (1.0f + expf(-z)); }
static inline float softplusf(float z) { return z > 20.0f ? z : log1pf(expf(z)); }

typedef struct {
    const gdn_weights *w;
    const gdn_hparams *hp;
    gdn_buffers *buf;
    float *S;                        /* [H, d_v, d_k] */
    float *tail_q, *tail_k, *tail_v; /* conv tails [K-1, H·d_k], [K-1, H·d_k], [K-1, H·d_v] */
    int64_t T;
    float eps;
} head_job;

/* (C), (N), (G), (R|W), (O) for heads [h0, h1). */
static void head_task(void *arg, int64_t h0, int64_t h1, int32_t thread) {
    const head_job *j = arg;
    const kernel_table *kt = kernels();
    const gdn_hparams *hp = j->hp;
    gdn_buffers *b = j->buf;
    const int64_t H = hp->n_head, dk = hp->d_k, dv = hp->d_v, T = j->T, K = hp->conv_k;
    const int64_t Hdk = H * dk, Hdv = H * dv;
    const float qscale = 1.0f / sqrtf((float)dk);
    for (int64_t h = h0; h < h1; h++) {
        float *qh = b->qc + h * dk, *kh = b->kc + h * dk, *vh = b->vc + h * dv, *oh = b->o + h * dv;
        float *Sh = j->S + h * dv * dk;
        /* (C) this head's channels of the three convs (depthwise: each channel alone, the bits
         * of one call over all channels) */
        kt->conv1d_causal(qh, j->tail_q + h * dk, b->q + h * dk, j->w->conv_q + h * dk * K, T, dk, Hdk, K);
        kt->conv1d_causal(kh, j->tail_k + h * dk, b->k + h * dk, j->w->conv_k + h * dk * K, T, dk, Hdk, K);
        kt->conv1d_causal(vh, j->tail_v + h * dv, b->v + h * dv, j->w->conv_v + h * dv * K, T, dv, Hdv, K);
        const float decay = -expf(j->w->a_log[h]), dtb = j->w->dt_bias[h];
        for (int64_t t = 0; t < T; t++) {
            kt->l2norm(qh + t * Hdk, qh + t * Hdk, dk, qscale);                         /* (N) */
            kt->l2norm(kh + t * Hdk, kh + t * Hdk, dk, 1.0f);
            b->beta[t * H + h] = sigmoidf(b->b[t * H + h]);                              /* (G) */
            b->gl[t * H + h] = decay * softplusf(b->a[t * H + h] + dtb);
        }
        /* (R) for every token, also in prefill: an eval of n tokens must give
         * bit-identical results to n evals of one token (prefix reuse, span
         * verification and fixed seeds rely on it). The chunked form (W) is
         * equal only up to rounding, and the int8 activation quantizer turns
         * rounding into visible logit jumps. On a CPU the recurrence costs
         * ~0.5% of a step's MACs, so the chunked form buys no speed here; it
         * stays (tested equal in c/test/test_gdn.c) for the trainer, which
         * needs chunk-boundary states. */
        for (int64_t t = 0; t < T; t++)
            gdn_step(oh + t * Hdv, Sh, qh + t * Hdk, kh + t * Hdk, vh + t * Hdv, b->beta[t * H + h],
                     b->gl[t * H + h], dk, dv);
        for (int64_t t = 0; t < T; t++) {                                                /* (O) */
            float *ot = oh + t * Hdv;
            kt->rmsnorm(ot, ot, j->w->o_norm, dv, j->eps);
            kt->swiglu(ot, b->g + t * Hdv + h * dv, ot, dv);
        }
    }
}

void gdn_forward(float *y, float *state, const float *xn, const gdn_weights *w, const gdn_hparams *hp, int64_t T,
                 int64_t D, float eps, gdn_buffers *buf) {
    const int64_t H = hp->n_head, Hdk = H * hp->d_k, Hdv = H * hp->d_v, K = hp->conv_k;
    float *S = state;
    float *tail_q = S + H * hp->d_v * hp->d_k;
    float *tail_k = tail_q + (K - 1) * Hdk;
    float *tail_v = tail_k + (K - 1) * Hdk;

    /* (P) one quantization of xn feeds the four ternary projections; a, b read xn in fp32 */
    linear_quantize(buf->act, xn, T, D);
    linear_op proj[6] = {
        {.y = buf->q, .ldy = Hdk, .bt2 = w->wq, .rows = Hdk},
        {.y = buf->k, .ldy = Hdk, .bt2 = w->wk, .rows = Hdk},
        {.y = buf->v, .ldy = Hdv, .bt2 = w->wv, .rows = Hdv},
        {.y = buf->g, .ldy = Hdv, .bt2 = w->wg, .rows = Hdv},
        {.y = buf->a, .ldy = H, .fm = w->wa, .rows = H},
        {.y = buf->b, .ldy = H, .fm = w->wb, .rows = H},
    };
    linear_run(proj, 6, buf->act, xn, T, D);

    /* (C) causal convs with SiLU (the tails carry the last K-1 inputs across calls), (N) (G)
     * (R|W) (O): per head */
    head_job hj = {w, hp, buf, S, tail_q, tail_k, tail_v, T, eps};
    pool_parallel_for_dynamic(H, 1, head_task, &hj);

    /* (O) y = W_o u */
    linear_quantize(buf->act, buf->o, T, Hdv);
    linear_op out = {.y = y, .ldy = D, .bt2 = w->wo, .rows = D};
    linear_run(&out, 1, buf->act, buf->o, T, Hdv);
}
