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

void moe_forward(float *y, const float *xn, const moe_weights *w, const moe_hparams *hp, int64_t T, int64_t D,
                 moe_buffers *buf) {
    const int64_t E = hp->n_expert, K = hp->n_used, Ie = hp->ff, Ish = (int64_t)hp->n_shared * hp->ff;

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
