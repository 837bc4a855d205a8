/*
 * moe.c — mixture-of-experts FFN, ../shared/ARCHITECTURES.md §2.10, config
 * intent (DeepSeek-V3 noaux_tc), not the FULL reference's softmax router:
 *
 *   s = σ(W_r x)                                  router [E, D], F32 or F16 (fp32 math)
 *   sel = top-K of (s + b)                        b: selection-only bias, no gradient
 *   w_e = s_e / Σ_{e'∈sel} s_{e'} · scale         weights from the unbiased scores
 *   y = FFN_shared(x) + Σ_{e∈sel} w_e FFN_e(x)    experts are SwiGLU MLPs (§2.3) of width I_e
 *
 * Execution: the shared expert runs on all T rows; then for each expert the
 * rows routed to it are gathered (views of the one quantization of x) and
 * run as one GEMM batch; outputs land in a (token, slot) buffer and every
 * token adds its slots in ascending expert order. Each GEMM row equals the
 * GEMV of that row alone (kernels.h), so y is bit-identical however the
 * tokens are batched. The load-based bias update (b_e += γ·sign(mean_load −
 * load_e)) is a training-time rule: here b is read from the model file.
 */
#include "moe.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "threadpool.h"

void moe_route(int32_t *sel, float *w, const float *s, const float *bias, const moe_hparams *hp) {
    const int E = hp->n_expert, K = hp->n_used;
    /* K rounds of arg-max over the unchosen experts (E is small) */
    int n = 0;
    for (int k = 0; k < K; k++) {
        int best = -1;
        float bv = 0.0f;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int i = 0; i < n; i++) taken |= sel[i] == e;
            if (taken) continue;
            float v = s[e] + bias[e];
            if (best < 0 || v > bv) best = e, bv = v;
        }
        sel[n++] = best;
    }
    /* ascending id (insertion sort, K is tiny) */
    for (int i = 1; i < K; i++)
        for (int j = i; j > 0 && sel[j - 1] > sel[j]; j--) {
            int32_t t = sel[j];
            sel[j] = sel[j - 1];
            sel[j - 1] = t;
        }
    float sum = 0.0f;
    for (int i = 0; i < K; i++) sum += s[sel[i]];
    for (int i = 0; i < K; i++) w[i] = s[sel[i]] / sum * hp->scale;
}

/* Most routed experts per token the one-token path below handles (its op arrays are fixed). */
#define MOE_DECODE_MAX_K 8

/* One token (decode): the same arithmetic as the batched path in moe_forward, in 2 pool
 * passes instead of 2 + 2K: the router runs on the calling thread (E rows), every gate/up
 * projection (shared and routed) reads the one quantized row in one pass, every down
 * projection in a second. Each output row is still one gemv_bt2 on one thread, so the
 * result is bit-identical to the batched path (decode == prefill). Hidden rows: gate/up and
 * act2 row 0 = the shared expert, row 1 + k = routed slot k (needs K + 1 buffer rows). */
static void moe_decode(float *y, const float *xn, const moe_weights *w, const moe_hparams *hp, int64_t D,
                       moe_buffers *buf) {
    const kernel_table *kt = kernels();
    const int64_t E = hp->n_expert, K = hp->n_used, Ie = hp->ff, Ish = (int64_t)hp->n_shared * hp->ff;
    const int64_t I = BRAID_MAX(Ie, Ish); /* row stride of gate / up */
    fmat_mul(buf->scores, E, w->router, xn, 1, D, 0, E);
    for (int64_t e = 0; e < E; e++) buf->scores[e] = 1.0f / (1.0f + expf(-buf->scores[e]));
    moe_route(buf->sel, buf->wsel, buf->scores, w->bias, hp);

    const size_t gate_bytes = bt2_bytes(Ie, D), down_bytes = bt2_bytes(D, Ie);
    const int first = Ish > 0 ? 0 : 1; /* row 0 (the shared expert) only if there is one */
    linear_op in[2 * (MOE_DECODE_MAX_K + 1)], out[MOE_DECODE_MAX_K + 1];
    act_q8 in_act[2 * (MOE_DECODE_MAX_K + 1)];
    int64_t in_cols[2 * (MOE_DECODE_MAX_K + 1)], out_cols[MOE_DECODE_MAX_K + 1];
    int n_in = 0, n_out = 0;
    linear_quantize(buf->act, xn, 1, D);
    for (int64_t s = first; s <= K; s++) {
        const int64_t e = s - 1, width = s == 0 ? Ish : Ie; /* s: 0 shared, 1 + k routed slot k */
        const uint8_t *g = s == 0 ? w->shared.gate : w->gate + (size_t)buf->sel[e] * gate_bytes;
        const uint8_t *u = s == 0 ? w->shared.up : w->up + (size_t)buf->sel[e] * gate_bytes;
        in[n_in] = (linear_op){.y = buf->gate + s * I, .ldy = I, .bt2 = g, .rows = width};
        in_act[n_in] = buf->act[0], in_cols[n_in++] = D;
        in[n_in] = (linear_op){.y = buf->up + s * I, .ldy = I, .bt2 = u, .rows = width};
        in_act[n_in] = buf->act[0], in_cols[n_in++] = D;
    }
    linear_run_rows(in, n_in, in_act, in_cols);
    for (int64_t s = first; s <= K; s++) {
        const int64_t width = s == 0 ? Ish : Ie;
        kt->swiglu(buf->gate + s * I, buf->gate + s * I, buf->up + s * I, width);
        linear_quantize(&buf->act2[s], buf->gate + s * I, 1, width);
        const uint8_t *d = s == 0 ? w->shared.down : w->down + (size_t)buf->sel[s - 1] * down_bytes;
        out[n_out] = (linear_op){.y = s == 0 ? y : buf->slot + (s - 1) * D, .ldy = D, .bt2 = d, .rows = D};
        out_cols[n_out++] = width;
    }
    linear_run_rows(out, n_out, &buf->act2[first], out_cols);
    if (Ish == 0) memset(y, 0, sizeof(float) * (size_t)D);
    /* combine as moe_forward does: y += Σ_k w_k · slot_k, k in ascending expert order */
    for (int64_t k = 0; k < K; k++) {
        const float *o = buf->slot + k * D, wk = buf->wsel[k];
        for (int64_t j = 0; j < D; j++) y[j] += wk * o[j];
    }
}

void moe_forward(float *y, const float *xn, const moe_weights *w, const moe_hparams *hp, int64_t T, int64_t D,
                 moe_buffers *buf) {
    const int64_t E = hp->n_expert, K = hp->n_used, Ie = hp->ff, Ish = (int64_t)hp->n_shared * hp->ff;
    if (T == 1 && K <= MOE_DECODE_MAX_K && buf->rows >= K + 1) {
        moe_decode(y, xn, w, hp, D, buf);
        return;
    }

    /* router scores (fp32 activations) */
    linear_op r = {.y = buf->scores, .ldy = E, .fm = w->router, .rows = E};
    linear_run(&r, 1, NULL, xn, T, D);
    for (int64_t t = 0; t < T; t++) {
        float *s = buf->scores + t * E;
        for (int64_t e = 0; e < E; e++) s[e] = 1.0f / (1.0f + expf(-s[e]));
        moe_route(buf->sel + t * K, buf->wsel + t * K, s, w->bias, hp);
    }

    /* shared expert on every row (or zero) */
    if (Ish > 0)
        ffn_forward(y, xn, &w->shared, T, D, Ish, buf->gate, buf->up, buf->act);
    else
        memset(y, 0, sizeof(float) * (size_t)(T * D));

    /* routed experts, tokens grouped by expert */
    linear_quantize(buf->act, xn, T, D);
    const size_t gate_bytes = bt2_bytes(Ie, D), down_bytes = bt2_bytes(D, Ie);
    for (int64_t e = 0; e < E; e++) {
        int64_t n = 0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t k = 0; k < K; k++)
                if (buf->sel[t * K + k] == e) {
                    buf->tok[n] = (int32_t)(t * K + k); /* (token, slot) */
                    buf->gather[n++] = buf->act[t];
                }
        if (!n) continue;
        linear_op in[2] = {
            {.y = buf->gate, .ldy = Ie, .bt2 = w->gate + (size_t)e * gate_bytes, .rows = Ie},
            {.y = buf->up, .ldy = Ie, .bt2 = w->up + (size_t)e * gate_bytes, .rows = Ie},
        };
        linear_run(in, 2, buf->gather, xn, n, D);
        swiglu_rows(buf->gate, buf->up, n, Ie);
        linear_quantize(buf->act2, buf->gate, n, Ie);
        linear_op out = {.y = buf->eo, .ldy = D, .bt2 = w->down + (size_t)e * down_bytes, .rows = D};
        linear_run(&out, 1, buf->act2, buf->gate, n, Ie);
        for (int64_t i = 0; i < n; i++)
            memcpy(buf->slot + (int64_t)buf->tok[i] * D, buf->eo + i * D, sizeof(float) * (size_t)D);
    }
    /* combine: y_t += Σ_k w_k · slot_{t,k}, k in ascending expert order */
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 0; k < K; k++) {
            const float *o = buf->slot + (t * K + k) * D, wk = buf->wsel[t * K + k];
            float *yt = y + t * D;
            for (int64_t j = 0; j < D; j++) yt[j] += wk * o[j];
        }
}
