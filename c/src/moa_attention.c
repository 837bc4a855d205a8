/*
 * moa_attention.c — MetricMHAttention (M.3) and MetricMQA (M.4) with BlackHoleRoPE (M.5),
 * V energy, ball pruning (M.6) and the KV cache (M.12). One code path: H query heads of
 * width d_h, G key/value heads (G = H for MHA, G = 1 for MQA), query head h reads kv head
 * h·G/H.
 *
 * Scores (M.2): s_ij = −α_h d(q_i, k_j) with the per-query constant ‖q_i‖² dropped
 * (softmax is shift-invariant):
 *   l2:        s = α (2 q·k − ‖k‖²)
 *   maha_diag: s = α (2 (ω⊙q)·k − ‖k‖²_ω)          ‖k‖²_ω cached per key and query head
 *   cosine:    s = α q̂·k̂                            (d = 1 − q̂·k̂; the constant −α dropped)
 * computed on the rotated q, k (BlackHoleRoPE keeps norms; with pair-tied ω it commutes
 * with the metric, so this equals the distance between the unrotated vectors when the
 * phases agree).
 *
 * Ball pruning: key j of query head h is kept iff ‖k_j − o_h‖ ≤ r_h on the pre-RoPE key;
 * the cache keeps, per (layer, query head), the ascending list of in-ball positions, and a
 * query only visits that list (plus itself: the diagonal is never masked). Out-of-ball
 * keys cost nothing after their own step — the work is skipped, not masked.
 *
 * Determinism: every query's softmax runs in one thread over the list in position order,
 * then the diagonal, with the same scalar code whether the token came in a batch or alone,
 * so cached decode is bit-identical to recomputing the whole context.
 */
#include <math.h>
#include <string.h>

#include "common.h"
#include "context.h"
#include "moa.h"
#include "threadpool.h"

/* Fixed-order dot product (8 partial sums, then a fixed tree). */
static float dotf(const float *a, const float *b, int64_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    for (; i < n; i++) s[i & 7] += a[i] * b[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

/* Rotates the pairs (z_2i, z_2i+1) of z [d_h] by φ_i = p θ_i + Σ_r (A_ir sin ν_r p + B_ir cos ν_r p)
 * (A, B [d_h/2, R] of this kv head, NULL when R = 0); sn, cs [R] = sin, cos(ν_r p). */
static void rope(float *z, int64_t dh, double p, const double *theta, const float *A, const float *B,
                 const double *sn, const double *cs, int64_t R) {
    for (int64_t i = 0; i < dh / 2; i++) {
        double phi = p * theta[i];
        for (int64_t r = 0; r < R; r++) phi += (double)A[i * R + r] * sn[r] + (double)B[i * R + r] * cs[r];
        const float c = (float)cos(phi), s = (float)sin(phi);
        const float z0 = z[2 * i], z1 = z[2 * i + 1];
        z[2 * i] = z0 * c - z1 * s;
        z[2 * i + 1] = z0 * s + z1 * c;
    }
}

static void l2normalize(float *z, int64_t n) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)z[i] * z[i];
    const float r = (float)(1.0 / fmax(sqrt(ss), 1e-12));
    for (int64_t i = 0; i < n; i++) z[i] *= r;
}

/* ---- attention over the cache, one task per query head --------------------------- */

typedef struct {
    braid_context *ctx;
    const moa_attn *a;
    const float *rows;    /* [max_pos, row] this layer's cache */
    int64_t row;
    const int32_t *lists; /* [H][max_pos] this attention's lists */
    const int32_t *counts;/* [H] */
    const float *q;       /* [m, H·d_h] rotated (ω-scaled / normalised) queries */
    float *o;             /* [m, H·d_h] */
    const int32_t *sel;
    int64_t m, p0;
    int metric;
} attn_job;

static void attn_task(void *arg, int64_t h0, int64_t h1, int32_t thread) {
    const attn_job *j = arg;
    const moa_attn *a = j->a;
    const int64_t H = a->H, dh = a->dh, P = j->ctx->model->moa->hp.max_pos;
    for (int64_t h = h0; h < h1; h++) {
        const int64_t g = h * a->G / H;
        const float alpha = a->alpha[h];
        const int32_t *list = j->lists + h * P;
        const int32_t cnt = j->counts[h];
        float *sc = j->ctx->moa->scores + h * P; /* [≤ max_pos] */
        int32_t cur = 0;
        for (int64_t i = 0; i < j->m; i++) {
            const int64_t p = j->p0 + j->sel[i];
            const float *q = j->q + i * H * dh + h * dh;
            while (cur < cnt && list[cur] < p) cur++; /* in-ball keys strictly before p */
            /* scores of list[0..cur) then the diagonal */
            float mx = -INFINITY;
            for (int32_t e = 0; e <= cur; e++) {
                const float *r = j->rows + (e < cur ? list[e] : p) * j->row;
                const float *k = r + a->off_k + g * dh;
                float s = j->metric == MOA_METRIC_COSINE ? alpha * dotf(q, k, dh)
                                                         : alpha * (2.0f * dotf(q, k, dh) - r[a->off_kn + h]);
                sc[e] = s;
                mx = fmaxf(mx, s);
            }
            float sum = 0.0f;
            for (int32_t e = 0; e <= cur; e++) {
                sc[e] = expf(sc[e] - mx);
                sum += sc[e];
            }
            float *o = j->o + i * H * dh + h * dh;
            memset(o, 0, sizeof(float) * (size_t)dh);
            for (int32_t e = 0; e <= cur; e++) {
                const float *v = j->rows + (e < cur ? list[e] : p) * j->row + a->off_v + g * dh;
                const float w = sc[e];
                for (int64_t c = 0; c < dh; c++) o[c] += w * v[c];
            }
            const float inv = 1.0f / sum;
            for (int64_t c = 0; c < dh; c++) o[c] *= inv;
        }
    }
}

void moa_attention(float *out, braid_context *ctx, int32_t il, const moa_attn *a, int64_t list0, const float *u,
                   int64_t n, int64_t p0, const int32_t *sel, const float *usel, int64_t m) {
    const moa_model *mm = ctx->model->moa;
    const moa_hparams *hp = &mm->hp;
    moa_ctx *s = ctx->moa;
    const int64_t D = hp->dim, H = a->H, G = a->G, dh = a->dh, R = hp->r_basis, P = hp->max_pos;
    const int64_t row = mm->lay.row, NL = (int64_t)hp->attn_heads + hp->mqa_heads;
    const double *theta = G == H ? mm->theta_mha : mm->theta_mqa;
    float *rows = s->cache + (int64_t)il * P * row; /* [P, row] */
    int32_t *lists = s->lists + ((int64_t)il * NL + list0) * P;
    int32_t *counts = s->counts + (int64_t)il * NL + list0;
    double sn[1024], cs[1024]; /* R <= 1024 (moa_model.c) */

    /* K, V of all n tokens: every later token may read them */
    linear_op kv[2] = {{.y = s->k, .ldy = G * dh, .fm = a->wk, .rows = G * dh},
                       {.y = s->v, .ldy = G * dh, .fm = a->wv, .rows = G * dh}};
    if (n * 2 * G * dh * D <= MOA_INLINE_MACS) {
        fmat_mul(s->k, G * dh, a->wk, u, n, D, 0, G * dh);
        fmat_mul(s->v, G * dh, a->wv, u, n, D, 0, G * dh);
    } else {
        linear_run(kv, 2, NULL, u, n, D);
    }
    for (int64_t t = 0; t < n; t++) {
        const int64_t p = p0 + t;
        float *r = rows + p * row;
        float *k = s->k + t * G * dh, *v = s->v + t * G * dh; /* [G·d_h] */
        /* ball membership on the pre-RoPE key */
        for (int64_t h = 0; h < H; h++) {
            int in = 1;
            if (hp->use_balls) {
                const float *kh = k + (h * G / H) * dh, *oh = a->origin + h * dh;
                float d2 = 0.0f;
                for (int64_t c = 0; c < dh; c++) d2 += (kh[c] - oh[c]) * (kh[c] - oh[c]);
                in = d2 <= a->radius[h] * a->radius[h];
            }
            r[a->off_in + h] = in ? 1.0f : 0.0f;
            if (in) lists[h * P + counts[h]++] = (int32_t)p;
        }
        for (int64_t rr = 0; rr < R; rr++) sn[rr] = sin(mm->nu[rr] * p), cs[rr] = cos(mm->nu[rr] * p);
        /* discrepancy signal m_t = c ‖u_t − u_{t−1}‖ / (‖u_t‖ + 1e-6), 0 at position 0 */
        double dis = 0.0;
        if (hp->discrepancy && p > 0) {
            const float *ut = r + mm->lay.off_u, *up = r - row + mm->lay.off_u;
            double dd = 0, nn = 0;
            for (int64_t c = 0; c < D; c++) dd += ((double)ut[c] - up[c]) * ((double)ut[c] - up[c]), nn += (double)ut[c] * ut[c];
            dis = sqrt(dd) / (sqrt(nn) + 1e-6);
        }
        for (int64_t g = 0; g < G; g++) {
            float *kg = k + g * dh, *vg = v + g * dh;
            rope(kg, dh, (double)p, theta, R ? a->rope_a + g * (dh / 2) * R : NULL,
                 R ? a->rope_b + g * (dh / 2) * R : NULL, sn, cs, R);
            if (hp->metric == MOA_METRIC_COSINE) l2normalize(kg, dh);
            if (hp->v_energy) {
                double e = hp->discrepancy ? a->disc[g] * dis : 0.0;
                for (int64_t rr = 0; rr < R; rr++) e += (double)a->en_c[g * R + rr] * sn[rr] + (double)a->en_g[g * R + rr] * cs[rr];
                const float gain = (float)exp(log((double)hp->energy_amp) * tanh(e)); /* ∈ [1/A, A] */
                for (int64_t c = 0; c < dh; c++) vg[c] *= gain;
            }
        }
        memcpy(r + a->off_k, k, sizeof(float) * (size_t)(G * dh));
        memcpy(r + a->off_v, v, sizeof(float) * (size_t)(G * dh));
        for (int64_t h = 0; h < H; h++) {
            const float *kh = k + (h * G / H) * dh;
            float kn = 0.0f;
            if (hp->metric == MOA_METRIC_MAHA) {
                for (int64_t c = 0; c < dh; c++) kn += a->omega[h * dh + c] * kh[c] * kh[c];
            } else if (hp->metric == MOA_METRIC_L2) {
                for (int64_t c = 0; c < dh; c++) kn += kh[c] * kh[c];
            }
            r[a->off_kn + h] = kn;
        }
    }
    if (m == 0) return;

    /* queries of the tokens that routed to this path */
    if (m * H * dh * D <= MOA_INLINE_MACS) {
        fmat_mul(s->q, H * dh, a->wq, usel, m, D, 0, H * dh);
    } else {
        linear_op qo = {.y = s->q, .ldy = H * dh, .fm = a->wq, .rows = H * dh};
        linear_run(&qo, 1, NULL, usel, m, D);
    }
    for (int64_t i = 0; i < m; i++) {
        const int64_t p = p0 + sel[i];
        for (int64_t rr = 0; rr < R; rr++) sn[rr] = sin(mm->nu[rr] * p), cs[rr] = cos(mm->nu[rr] * p);
        for (int64_t h = 0; h < H; h++) {
            float *q = s->q + i * H * dh + h * dh;
            const int64_t g = h * G / H;
            rope(q, dh, (double)p, theta, R ? a->rope_a + g * (dh / 2) * R : NULL, R ? a->rope_b + g * (dh / 2) * R : NULL,
                 sn, cs, R);
            if (hp->metric == MOA_METRIC_COSINE) l2normalize(q, dh);
            if (hp->metric == MOA_METRIC_MAHA)
                for (int64_t c = 0; c < dh; c++) q[c] *= a->omega[h * dh + c];
        }
    }
    attn_job j = {ctx, a, rows, row, lists, counts, s->q, s->o, sel, m, p0, hp->metric};
    int64_t work = 0; /* multiply-adds of the scores and the value sums */
    for (int64_t h = 0; h < H; h++) work += (int64_t)counts[h] + m;
    work *= 2 * m * dh;
    if (H == 1 || work <= MOA_INLINE_MACS)
        attn_task(&j, 0, H, 0);
    else
        pool_parallel_for(H, 1, attn_task, &j);
    if (m * D * H * dh <= MOA_INLINE_MACS) {
        fmat_mul(out, D, a->wo, s->o, m, H * dh, 0, D);
    } else {
        linear_op wo = {.y = out, .ldy = D, .fm = a->wo, .rows = D};
        linear_run(&wo, 1, NULL, s->o, m, H * dh);
    }
}
