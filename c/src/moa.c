/*
 * moa.c — the MoA forward (ARCHITECTURES.md M.0, M.1, M.7–M.10): embedding, the blocks
 * (router, the four paths, FiLM and router-bias gates, LayerScale, HyperFFN), LN_f and
 * the tied head. Metric attention and the KV cache are in moa_attention.c.
 *
 * Sparse routing skips work: a token runs LocalConv / ChannelMix / a HyperFFN branch only
 * if its router selected it, and an attention path computes queries, scores and W_o only
 * for its selected tokens (every token's K/V still enter the cache, M.8). Selected rows are
 * gathered and run through fmat_mul, whose rows are bit-identical whatever the batch
 * (kernels.h), so the grouping of tokens into eval calls never changes the logits.
 */
#include <math.h>
#include <string.h>

#include "common.h"
#include "context.h"
#include "moa.h"
#include "threadpool.h"

/* ---- small helpers -------------------------------------------------------------- */

/* LayerNorm (§2.7) of one row: y = w ⊙ (x − μ)/sqrt(σ² + eps) + b (biased variance). */
static void layernorm(float *y, const float *x, const float *w, const float *b, int64_t D, float eps) {
    double mu = 0, var = 0;
    for (int64_t i = 0; i < D; i++) mu += x[i];
    mu /= (double)D;
    for (int64_t i = 0; i < D; i++) var += ((double)x[i] - mu) * ((double)x[i] - mu);
    var /= (double)D;
    const double r = 1.0 / sqrt(var + (double)eps);
    for (int64_t i = 0; i < D; i++) y[i] = (float)(((double)x[i] - mu) * r) * w[i] + b[i];
}

/* Y [n, rows] = W X [n, cols] (+ bias [rows] if not NULL). Small products (the router, the
 * gates, a decode step's low-rank branch) run on the calling thread: waking the pool costs
 * more than they do. fmat_mul rows do not depend on the split, so the bits are the same. */
static void linear(float *Y, fmat W, const float *bias, const float *X, int64_t n, int64_t rows, int64_t cols) {
    if (n * rows * cols <= MOA_INLINE_MACS) {
        fmat_mul(Y, rows, W, X, n, cols, 0, rows);
    } else {
        linear_op op = {.y = Y, .ldy = rows, .fm = W, .rows = rows};
        linear_run(&op, 1, NULL, X, n, cols);
    }
    if (bias)
        for (int64_t t = 0; t < n; t++)
            for (int64_t r = 0; r < rows; r++) Y[t * rows + r] += bias[r];
}

/* Rows [r0, r0 + rows) of W [*, cols] as a matrix of their own. */
static fmat fmat_rows(fmat W, int64_t r0, int64_t cols) {
    const size_t el = W.type == GGML_TYPE_F16 ? 2 : 4;
    return (fmat){(const uint8_t *)W.data + (size_t)(r0 * cols) * el, W.type};
}

static void gelu_rows(float *x, int64_t count) {
    for (int64_t i = 0; i < count; i++) x[i] = moa_gelu(x[i]);
}

/* src rows sel[0..m) of width cols, gathered into dst; src itself when sel is 0..n-1. */
static const float *gather(float *dst, const float *src, const int32_t *sel, int64_t m, int64_t n, int64_t cols) {
    if (m == n) return src; /* sel is then the identity (built in ascending order) */
    for (int64_t i = 0; i < m; i++) memcpy(dst + i * cols, src + (int64_t)sel[i] * cols, sizeof(float) * (size_t)cols);
    return dst;
}

/* Softmax of l[k] / temp, keep the topk largest (ties: lower index), renormalise; others 0. */
static void route(float *w, const float *l, int k, int topk, float temp) {
    float mx = -INFINITY, sum = 0.0f;
    for (int i = 0; i < k; i++) mx = fmaxf(mx, l[i] / temp);
    for (int i = 0; i < k; i++) sum += (w[i] = expf(l[i] / temp - mx));
    for (int i = 0; i < k; i++) w[i] /= sum;
    int keep[MOA_PATHS] = {0};
    for (int s = 0; s < topk; s++) {
        int best = -1;
        for (int i = 0; i < k; i++)
            if (!keep[i] && (best < 0 || w[i] > w[best])) best = i;
        keep[best] = 1;
    }
    float kept = 0.0f;
    for (int i = 0; i < k; i++) kept += keep[i] ? w[i] : 0.0f;
    for (int i = 0; i < k; i++) w[i] = keep[i] ? w[i] / kept : 0.0f;
}

/* Tokens t < n with w[t·stride + p] > 0, ascending. */
static int64_t select_tokens(int32_t *sel, const float *w, int64_t stride, int p, int64_t n) {
    int64_t m = 0;
    for (int64_t t = 0; t < n; t++)
        if (w[t * stride + p] > 0.0f) sel[m++] = (int32_t)t;
    return m;
}

/* Causal depthwise conv over the cache: y[i, c] = GELU(b_c + Σ_j w[c, j] · col_{p−K+1+j}[c]) for the
 * selected tokens, where col_q is the cached row q at offset off (zero before position 0). */
static void dwconv_gelu(float *y, const float *rows, int64_t row, int64_t off, const float *w, const float *b,
                        const int32_t *sel, int64_t m, int64_t p0, int64_t ch, int64_t K) {
    for (int64_t i = 0; i < m; i++) {
        const int64_t p = p0 + sel[i];
        float *yi = y + i * ch;
        for (int64_t c = 0; c < ch; c++) yi[c] = b[c];
        for (int64_t j = 0; j < K; j++) {
            const int64_t q = p - K + 1 + j;
            if (q < 0) continue;
            const float *xq = rows + q * row + off;
            for (int64_t c = 0; c < ch; c++) yi[c] += w[c * K + j] * xq[c];
        }
        for (int64_t c = 0; c < ch; c++) yi[c] = moa_gelu(yi[c]);
    }
}

/* z[sel[i]] += scale(i) · y[i] (scale = route weight · bias gate). */
static void accumulate(float *z, const float *y, const int32_t *sel, int64_t m, int64_t D, const float *w,
                       const float *bg, int64_t stride, int p) {
    for (int64_t i = 0; i < m; i++) {
        const int64_t t = sel[i];
        const float s = w[t * stride + p] * (bg ? bg[t * stride + p] : 1.0f);
        for (int64_t c = 0; c < D; c++) z[t * D + c] += s * y[i * D + c];
    }
}

/* ---- one block (M.1) -------------------------------------------------------------------- */

static void block(braid_context *ctx, int32_t il, int64_t n, int64_t p0) {
    const moa_model *mm = ctx->model->moa;
    const moa_hparams *hp = &mm->hp;
    const moa_layer *L = &mm->layers[il];
    moa_ctx *s = ctx->moa;
    const int64_t D = hp->dim, Rh = hp->router_hidden, K = hp->conv_kernel, M = hp->mixer_hidden,
                  F = hp->ffn_hidden, C = (int64_t)hp->conv_mult * D, r = hp->lr_rank, row = mm->lay.row;
    float *rows = s->cache + (int64_t)il * hp->max_pos * row; /* [max_pos, row] */

    /* u = LN₁(x); cached for LocalConv and the discrepancy signal */
    for (int64_t t = 0; t < n; t++) {
        layernorm(s->u + t * D, s->x + t * D, L->ln1_w, L->ln1_b, D, hp->ln_eps);
        memcpy(rows + (p0 + t) * row + mm->lay.off_u, s->u + t * D, sizeof(float) * (size_t)D);
    }
    /* router (M.8): hr = GELU(W_r1 u + b), w = topk(softmax((W_r2 hr + b)/τ)) */
    linear(s->hr, L->r_in, L->r_in_b, s->u, n, Rh, D);
    gelu_rows(s->hr, n * Rh);
    linear(s->t1, L->r_out, L->r_out_b, s->hr, n, MOA_PATHS, Rh);
    for (int64_t t = 0; t < n; t++)
        route(s->w + t * MOA_PATHS, s->t1 + t * MOA_PATHS, MOA_PATHS, hp->router_topk, hp->router_temp);
    /* router-bias gates b_p = 2σ(c_p·u + c0_p) */
    if (hp->router_gates) {
        linear(s->bg, L->gate_w, L->gate_b, s->u, n, MOA_PATHS, D);
        for (int64_t i = 0; i < n * MOA_PATHS; i++) s->bg[i] = 2.0f / (1.0f + expf(-s->bg[i]));
    }
    memset(s->z, 0, sizeof(float) * (size_t)(n * D));
    for (int p = 0; p < MOA_PATHS; p++) {
        const int64_t m = select_tokens(s->sel, s->w, MOA_PATHS, p, n);
        const int attention = p == 1 || p == 3;
        if (m == 0 && !attention) continue;
        const float *usel = gather(s->gx, s->u, s->sel, m, n, D); /* [m, D] */
        switch (p) {
        case 0: /* LocalConv: y = W_pw GELU(DWConv_K(u) + b) */
            dwconv_gelu(s->t1, rows, row, mm->lay.off_u, L->conv_w, L->conv_b, s->sel, m, p0, D, K);
            linear(s->y, L->conv_pw, NULL, s->t1, m, D, D);
            break;
        case 1: moa_attention(s->y, ctx, il, &L->mha, 0, s->u, n, p0, s->sel, usel, m); break;
        case 2: /* ChannelMix: y = W_2 GELU(W_1 u + b_1) + b_2 */
            linear(s->hid, L->mix_up, L->mix_up_b, usel, m, M, D);
            gelu_rows(s->hid, m * M);
            linear(s->y, L->mix_down, L->mix_down_b, s->hid, m, D, M);
            break;
        case 3: moa_attention(s->y, ctx, il, &L->mqa, hp->attn_heads, s->u, n, p0, s->sel, usel, m); break;
        }
        if (m == 0) continue;
        if (hp->feature_gates) { /* FiLM: y ← y ⊙ (1 + Γ_p hr) + Β_p hr */
            const float *hsel = gather(s->gh, s->hr, s->sel, m, n, Rh);
            linear_op film[2] = {{.y = s->t1, .ldy = D, .fm = fmat_rows(L->film_g, (int64_t)p * D, Rh), .rows = D},
                                 {.y = s->t2, .ldy = D, .fm = fmat_rows(L->film_b, (int64_t)p * D, Rh), .rows = D}};
            linear_run(film, 2, NULL, hsel, m, Rh); /* one pool pass for both */
            for (int64_t i = 0; i < m * D; i++) s->y[i] = s->y[i] * (1.0f + s->t1[i]) + s->t2[i];
        }
        accumulate(s->z, s->y, s->sel, m, D, s->w, hp->router_gates ? s->bg : NULL, MOA_PATHS, p);
    }
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < D; c++) s->x[t * D + c] += L->ls_mix[c] * s->z[t * D + c];

    /* HyperFFN (M.9) on v = LN₂(x) */
    for (int64_t t = 0; t < n; t++) layernorm(s->u + t * D, s->x + t * D, L->ln2_w, L->ln2_b, D, hp->ln_eps);
    linear(s->t1, L->br, NULL, s->u, n, MOA_BRANCHES, D);
    for (int64_t t = 0; t < n; t++)
        route(s->pi + t * MOA_BRANCHES, s->t1 + t * MOA_BRANCHES, MOA_BRANCHES, hp->branch_topk, hp->branch_temp);
    /* SepConv input a = W_a v for every token (later tokens' convs read it) */
    linear(s->hid, L->sc_in, NULL, s->u, n, C, D);
    for (int64_t t = 0; t < n; t++)
        memcpy(rows + (p0 + t) * row + mm->lay.off_a, s->hid + t * C, sizeof(float) * (size_t)C);
    memset(s->z, 0, sizeof(float) * (size_t)(n * D));
    for (int b = 0; b < MOA_BRANCHES; b++) {
        const int64_t m = select_tokens(s->sel, s->pi, MOA_BRANCHES, b, n);
        if (m == 0) continue;
        const float *vsel = gather(s->gx, s->u, s->sel, m, n, D);
        switch (b) {
        case 0: /* SwiGLU: W_d (SiLU(W_g v) ⊙ W_u v) */
            {
                linear_op gu[2] = {{.y = s->hid, .ldy = F, .fm = L->ffn_gate, .rows = F},
                                   {.y = s->hid2, .ldy = F, .fm = L->ffn_up, .rows = F}};
                linear_run(gu, 2, NULL, vsel, m, D); /* one pool pass for both */
            }
            for (int64_t i = 0; i < m * F; i++) s->hid[i] = s->hid[i] / (1.0f + expf(-s->hid[i])) * s->hid2[i];
            linear(s->y, L->ffn_down, NULL, s->hid, m, D, F);
            break;
        case 1: /* SepConv: W_b GELU(DWConv_K(a) + b) */
            dwconv_gelu(s->hid2, rows, row, mm->lay.off_a, L->sc_w, L->sc_b, s->sel, m, p0, C, K);
            linear(s->y, L->sc_out, NULL, s->hid2, m, D, C);
            break;
        case 2: /* LowRank: U GELU(V v) */
            linear(s->hid, L->lr_down, NULL, vsel, m, r, D);
            gelu_rows(s->hid, m * r);
            linear(s->y, L->lr_up, NULL, s->hid, m, D, r);
            break;
        }
        accumulate(s->z, s->y, s->sel, m, D, s->pi, NULL, MOA_BRANCHES, b);
    }
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < D; c++) s->x[t * D + c] += L->ls_ffn[c] * s->z[t * D + c];
}

/* ---- forward --------------------------------------------------------------------------- */

typedef struct {
    float *logits; /* [n, V] */
    fmat E;        /* [V, D] */
    const float *h;/* [n, D] */
    int64_t n, V, D;
} head_job;

static void head_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
    const head_job *j = arg;
    fmat_mul(j->logits, j->V, j->E, j->h, j->n, j->D, r0, r1);
}

int32_t moa_forward(braid_context *ctx, const int32_t *tokens, int64_t n, int all_logits, float *logits,
                    float *hidden) {
    const moa_model *mm = ctx->model->moa;
    const moa_hparams *hp = &mm->hp;
    moa_ctx *s = ctx->moa;
    const int64_t D = hp->dim, p0 = ctx->n_past;
    for (int64_t t = 0; t < n; t++) {
        float *xt = s->x + t * D;
        if (mm->token_embd.type == GGML_TYPE_F32) {
            memcpy(xt, (const float *)mm->token_embd.data + (int64_t)tokens[t] * D, sizeof(float) * (size_t)D);
        } else {
            const uint16_t *e = (const uint16_t *)mm->token_embd.data + (int64_t)tokens[t] * D;
            for (int64_t c = 0; c < D; c++) xt[c] = half_to_float(e[c]);
        }
    }
    for (int32_t il = 0; il < hp->n_layer; il++) {
        if (atomic_exchange(&ctx->abort, 0)) {
            moa_context_rewind(ctx, 0); /* drop list entries of the unfinished tokens: the cache stays valid */
            return braid_fail(BRAID_ABORTED, "eval aborted before layer %d", il);
        }
        block(ctx, il, n, p0);
    }
    if (atomic_exchange(&ctx->abort, 0)) {
        moa_context_rewind(ctx, 0);
        return braid_fail(BRAID_ABORTED, "eval aborted before the output head");
    }
    const int64_t first = (hidden || all_logits) ? 0 : n - 1, rows = n - first;
    for (int64_t t = 0; t < rows; t++)
        layernorm(s->u + t * D, s->x + (first + t) * D, mm->out_w, mm->out_b, D, hp->ln_eps);
    if (hidden) {
        memcpy(hidden, s->u, sizeof(float) * (size_t)(rows * D));
        return BRAID_OK;
    }
    head_job hj = {logits, mm->token_embd, s->u, rows, hp->n_vocab, D};
    pool_parallel_for(hp->n_vocab, 16, head_task, &hj);
    return BRAID_OK;
}
