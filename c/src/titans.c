/*
 * titans.c — Titans MAC mixer (TM layers), ../shared/ARCHITECTURES.md §2.8-P
 * (the FULL reference computes a decayed linear attention instead, §2.8-R;
 * choices made where the paper leaves freedom are in docs/architecture.md).
 *
 * Per head, memory M(u) = W2 · SiLU(W1 u), W1 [d_m, d], W2 [d, d_m]; M⁰ = the
 * memory at the start of the current segment of C_s tokens.
 *   (P) q, k, v = W_q x, W_k x, W_v x (BitLinear), q, k L2-normalised per head;
 *       α = σ(W_α x + b_α), η = σ(W_η x + b_η), θ = θ_max σ(W_θ x + b_θ)   (fp32, per head)
 *   (A) r_t = M⁰(q_t); the segment gains memory token (key L2norm(r_t), value r_t)
 *       and local token (k_t, v_t); y_t = softmax attention (scale d^{-1/2}) of q_t
 *       over [P_k ; memory tokens j ≤ t ; local tokens j ≤ t] of this segment.
 *   (B) k^M_t = L2norm(W_kM y_t), v^M_t = W_vM y_t   (BitLinear over concat_h y)
 *   (C) with a = W1⁰ k^M, z = SiLU(a), p = W2⁰ z = M⁰(k^M):
 *         o_t = y_t ⊙ σ(p)                                    output gate (segment-start memory)
 *         e = 2(p − v^M), δ = (W2⁰ᵀ e) ⊙ SiLU'(a)             ∇ of ‖M(k^M) − v^M‖² at M⁰:
 *         g_W2 = e zᵀ, g_W1 = δ k^Mᵀ
 *         S ← η S − θ g,  M ← (1 − α) M + S                    running memory (token recurrence)
 *       when the segment is full: M⁰ ← M.
 *   (O) y_out = W_o concat_h o_t                                BitLinear
 * Prefill runs (A) (B) (C) token by token inside each segment (B in one GEMM
 * per segment piece, bit-equal to the GEMV), so n tokens in one eval give the
 * same bits as n evals of one. The closed-form segment update
 * (titans_segment_closed) is the trainer's form, tested equal to the recurrence.
 */
#include "titans.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "ffn.h"
#include "threadpool.h"

int64_t titans_state_floats(const titans_hparams *hp) {
    int64_t H = hp->n_head, d = hp->head_dim, dm = hp->mem_dim;
    return H * 6 * dm * d + H * 4 * (int64_t)hp->segment * d + 2;
}

int64_t titans_head_scratch_floats(const titans_hparams *hp) {
    return hp->n_persist + 2 * (int64_t)hp->segment + 3 * (int64_t)hp->mem_dim + 3 * (int64_t)hp->head_dim;
}

void titans_segment_closed(float *M, float *S, const float *g, const float *alpha, const float *eta,
                           const float *theta, int64_t n, int64_t P) {
    /* products in double: the ratios E_i/E_r, B_C/B_i of long segments under- and overflow in float */
    double Bc = 1.0, Ec = 1.0, cS = 0.0;
    for (int64_t i = 0; i < n; i++) Bc *= 1.0 - alpha[i], Ec *= eta[i];
    double B = 1.0, E = 1.0;
    for (int64_t i = 0; i < n; i++) {
        B *= 1.0 - alpha[i], E *= eta[i];
        cS += Bc / B * E;
    }
    for (int64_t p = 0; p < P; p++) {
        double s0 = S[p];
        M[p] = (float)(Bc * M[p] + cS * s0);
        S[p] = (float)(Ec * s0);
    }
    double Er = 1.0;
    for (int64_t r = 0; r < n; r++) {
        Er *= eta[r];
        /* c_r = θ_r Σ_{i≥r} (B_C/B_i)(E_i/E_r) */
        double cr = 0.0, Bi = 1.0, Ei_over_Er = 1.0;
        for (int64_t i = 0; i < r; i++) Bi *= 1.0 - alpha[i];
        for (int64_t i = r; i < n; i++) {
            Bi *= 1.0 - alpha[i];
            if (i > r) Ei_over_Er *= eta[i];
            cr += Bc / Bi * Ei_over_Er;
        }
        cr *= theta[r];
        double sr = Ec / Er * theta[r];
        const float *gr = g + r * P;
        for (int64_t p = 0; p < P; p++) {
            M[p] = (float)(M[p] - cr * gr[p]);
            S[p] = (float)(S[p] - sr * gr[p]);
        }
    }
}

/* ---- layer forward ------------------------------------------------------------------ */

static inline float sigmoidf(float z) { return 1.0f / (1.0f + expf(-z)); }

static void l2norm(float *x, int64_t n) { kernels()->l2norm(x, x, n, 1.0f); }

/* p = W2 SiLU(W1 u); a, z [d_m] receive the pre-activation and SiLU(a). Matvecs through
 * the kernel table (SIMD), the same calls in decode and prefill. */
static void mem_apply(float *p, float *a, float *z, const float *W1, const float *W2, const float *u, int64_t d,
                      int64_t dm) {
    const kernel_table *kt = kernels();
    kt->gemv_f32(a, W1, u, d, 0, dm);
    kt->silu(z, a, dm);
    kt->gemv_f32(p, W2, z, dm, 0, d);
}

typedef struct {
    const titans_weights *w;
    const titans_hparams *hp;
    titans_buffers *buf;
    float *state;
    int64_t t0, t1, pos0; /* token run inside one segment, starting at segment position pos0 */
    int phase;            /* 0: (A), 1: (C) */
} head_job;

static void head_task(void *arg, int64_t h0, int64_t h1, int32_t thread) {
    const head_job *j = arg;
    const titans_hparams *hp = j->hp;
    const titans_weights *w = j->w;
    titans_buffers *b = j->buf;
    const int64_t H = hp->n_head, d = hp->head_dim, dm = hp->mem_dim, Np = hp->n_persist, Cs = hp->segment;
    const int64_t Hd = H * d, P = dm * d;
    const float scale = 1.0f / sqrtf((float)d);
    for (int64_t h = h0; h < h1; h++) {
        float *mem = j->state + h * 6 * P;
        float *M01 = mem, *M02 = mem + P, *R1 = mem + 2 * P, *R2 = mem + 3 * P, *S1 = mem + 4 * P, *S2 = mem + 5 * P;
        float *seg = j->state + H * 6 * P + h * 4 * Cs * d;
        float *srk = seg, *srv = seg + Cs * d, *sk = seg + 2 * Cs * d, *sv = seg + 3 * Cs * d;
        float *hs = b->head + h * titans_head_scratch_floats(hp);
        float *logit = hs, *a = hs + Np + 2 * Cs, *z = a + dm, *dz = z + dm, *p = dz + dm, *e = p + d;
        for (int64_t t = j->t0; t < j->t1; t++) {
            const int64_t pos = j->pos0 + (t - j->t0);
            float *yt = b->y + t * Hd + h * d;
            if (j->phase == 0) {
                /* (A) */
                float *qt = b->q + t * Hd + h * d, *kt = b->k + t * Hd + h * d; /* kt: this token's key */
                l2norm(qt, d);
                l2norm(kt, d);
                float *rk = srk + pos * d, *rv = srv + pos * d;
                mem_apply(rv, a, z, M01, M02, qt, d, dm);
                memcpy(rk, rv, sizeof(float) * (size_t)d);
                l2norm(rk, d);
                memcpy(sk + pos * d, kt, sizeof(float) * (size_t)d);
                memcpy(sv + pos * d, b->v + t * Hd + h * d, sizeof(float) * (size_t)d);
                /* logits: persistent, memory tokens 0..pos, local tokens 0..pos (keys are
                 * contiguous [rows, d] per head, so each group is one gemv) */
                const kernel_table *kern = kernels();
                const float *pk = w->pk + h * Np * d, *pv = w->pv + h * Np * d;
                const int64_t n = Np + 2 * (pos + 1);
                float mx = -INFINITY;
                kern->gemv_f32(logit, pk, qt, d, 0, Np);
                kern->gemv_f32(logit + Np, srk, qt, d, 0, pos + 1);
                kern->gemv_f32(logit + Np + pos + 1, sk, qt, d, 0, pos + 1);
                for (int64_t i = 0; i < n; i++) logit[i] *= scale;
                for (int64_t i = 0; i < n; i++) mx = fmaxf(mx, logit[i]);
                float sum = 0.0f;
                for (int64_t i = 0; i < n; i++) sum += logit[i] = expf(logit[i] - mx);
                /* y = Σ_i p_i v_i over persistent, memory and local values, in that order */
                memset(yt, 0, sizeof(float) * (size_t)d);
                kern->rows_axpy(yt, logit, pv, Np, d);
                kern->rows_axpy(yt, logit + Np, srv, pos + 1, d);
                kern->rows_axpy(yt, logit + Np + pos + 1, sv, pos + 1, d);
                for (int64_t c = 0; c < d; c++) yt[c] /= sum;
            } else {
                /* (C) */
                float *km = b->km + t * Hd + h * d, *vm = b->vm + t * Hd + h * d, *ot = b->o + t * Hd + h * d;
                l2norm(km, d);
                mem_apply(p, a, z, M01, M02, km, d, dm);
                for (int64_t c = 0; c < d; c++) ot[c] = yt[c] * sigmoidf(p[c]);
                for (int64_t c = 0; c < d; c++) e[c] = 2.0f * (p[c] - vm[c]);
                const kernel_table *kern = kernels();
                memset(dz, 0, sizeof(float) * (size_t)dm);
                kern->rows_axpy(dz, e, M02, d, dm); /* W2ᵀ e: Σ_c e_c W2[c, :], c ascending */
                for (int64_t i = 0; i < dm; i++) {
                    float sg = sigmoidf(a[i]);
                    dz[i] = dz[i] * sg * (1.0f + a[i] * (1.0f - sg)); /* δ = (W2ᵀ e) ⊙ SiLU'(a) */
                }
                const float alpha = sigmoidf(b->ga[t * H + h] + w->ba[h]);
                const float eta = sigmoidf(b->ge[t * H + h] + w->be[h]);
                const float theta = hp->theta_max * sigmoidf(b->gt[t * H + h] + w->bt[h]);
                const float keep = 1.0f - alpha;
                kern->outer_momentum(S1, R1, dz, km, dm, d, eta, theta, keep); /* W1 [d_m, d]: g = δ k^Mᵀ */
                kern->outer_momentum(S2, R2, e, z, d, dm, eta, theta, keep);   /* W2 [d, d_m]: g = e zᵀ */
                if (pos == Cs - 1) memcpy(M01, R1, sizeof(float) * (size_t)(2 * P)); /* M⁰ ← M (W1 and W2) */
            }
        }
    }
}

void titans_forward(float *y, float *state, const float *xn, const titans_weights *w, const titans_hparams *hp,
                    int64_t T, int64_t D, titans_buffers *buf) {
    const int64_t H = hp->n_head, d = hp->head_dim, dm = hp->mem_dim, Hd = H * d, P = dm * d, Cs = hp->segment;
    float *posp = state + titans_state_floats(hp) - 2, *flag = posp + 1;
    if (*flag == 0.0f) { /* fresh sequence: memory ← W⁰ (running and segment start), momentum 0 */
        for (int64_t h = 0; h < H; h++) {
            float *mem = state + h * 6 * P;
            memcpy(mem, w->w1 + h * P, sizeof(float) * (size_t)P);
            memcpy(mem + P, w->w2 + h * P, sizeof(float) * (size_t)P);
            memcpy(mem + 2 * P, mem, sizeof(float) * (size_t)(2 * P));
            memset(mem + 4 * P, 0, sizeof(float) * (size_t)(2 * P));
        }
        *posp = 0.0f;
        *flag = 1.0f;
    }

    /* (P) */
    linear_quantize(buf->act, xn, T, D);
    linear_op proj[6] = {
        {.y = buf->q, .ldy = Hd, .bt2 = w->wq, .rows = Hd}, {.y = buf->k, .ldy = Hd, .bt2 = w->wk, .rows = Hd},
        {.y = buf->v, .ldy = Hd, .bt2 = w->wv, .rows = Hd},
        {.y = buf->ga, .ldy = H, .fm = fmat_f32(w->wa), .rows = H},
        {.y = buf->ge, .ldy = H, .fm = fmat_f32(w->we), .rows = H},
        {.y = buf->gt, .ldy = H, .fm = fmat_f32(w->wt), .rows = H},
    };
    linear_run(proj, 6, buf->act, xn, T, D);

    /* segment pieces: (A) per head, (B) one GEMM, (C) per head */
    for (int64_t t0 = 0; t0 < T;) {
        int64_t pos0 = (int64_t)*posp, t1 = BRAID_MIN(T, t0 + (Cs - pos0)), n = t1 - t0;
        head_job hj = {w, hp, buf, state, t0, t1, pos0, 0};
        pool_parallel_for_dynamic(H, 1, head_task, &hj);
        linear_quantize(buf->act, buf->y + t0 * Hd, n, Hd);
        linear_op mw[2] = {
            {.y = buf->km + t0 * Hd, .ldy = Hd, .bt2 = w->wkm, .rows = Hd},
            {.y = buf->vm + t0 * Hd, .ldy = Hd, .bt2 = w->wvm, .rows = Hd},
        };
        linear_run(mw, 2, buf->act, buf->y + t0 * Hd, n, Hd);
        hj.phase = 1;
        pool_parallel_for_dynamic(H, 1, head_task, &hj);
        int64_t pos = pos0 + n;
        *posp = (float)(pos == Cs ? 0 : pos);
        t0 = t1;
    }

    /* (O) */
    linear_quantize(buf->act, buf->o, T, Hd);
    linear_op out = {.y = y, .ldy = D, .bt2 = w->wo, .rows = D};
    linear_run(&out, 1, buf->act, buf->o, T, Hd);
}
