/*
 * tsp.c — TSP span knot (SK layers), ../shared/ARCHITECTURES.md §2.9, exactly
 * the FULL reference's forward (its semantic memory is never written, so the
 * "memory empty" coherence branch is the one that runs):
 *
 *   o_t   = GDN(x)_t                                   inner Gated DeltaNet, §2.5 (gdn.c)
 *   sk_t  = sign(W_s o_t)                              ∈ {−1,0,+1}^{D_s}
 *   coh_t = mean_c [sk_t[c] ≠ sk_{t−1}[c]]             first token: compared with itself → 0
 *   r = sign(W_r o_t), f = sign(W_f o_t)
 *   bind_t = mean_c [sign(r·f·r)[c] ≠ f[c]]            (≠ 0 only where a role coordinate is 0)
 *   E_t = λ1 (w_auto·o) + λ2 (w_mem·o)·coh + λ3 (w_bind·o)·bind + λ4 (w_gram·o) + λ5 (w_debt·o)
 *   y_t = o_t + 0.01 · E_t · 1_D
 * The previous sketch crosses eval calls in the state, so decode and prefill
 * agree bit for bit (the F32 or F16 encoders run through fmat_mul, row-equal).
 */
#include "tsp.h"

#include <string.h>

#include "common.h"
#include "ffn.h"

int64_t tsp_state_floats(const gdn_hparams *g, const tsp_hparams *hp) {
    return gdn_state_floats(g) + hp->sketch_dim + 1;
}

static inline float signf(float x) { return (float)((x > 0.0f) - (x < 0.0f)); }

void tsp_forward(float *y, float *state, const float *xn, const tsp_weights *w, const gdn_hparams *g,
                 const tsp_hparams *hp, int64_t T, int64_t D, float eps, gdn_buffers *gbuf, tsp_buffers *buf) {
    const int64_t Ds = hp->sketch_dim;
    float *prev = state + gdn_state_floats(g), *flag = prev + Ds;

    gdn_forward(y, state, xn, &w->gdn, g, T, D, eps, gbuf);

    linear_op ops[4] = {
        {.y = buf->s, .ldy = Ds, .fm = w->ws, .rows = Ds},
        {.y = buf->r, .ldy = Ds, .fm = w->wr, .rows = Ds},
        {.y = buf->f, .ldy = Ds, .fm = w->wf, .rows = Ds},
        {.y = buf->en, .ldy = 5, .fm = w->energy, .rows = 5},
    };
    linear_run(ops, 4, NULL, y, T, D);

    const float *lam = w->lambda;
    for (int64_t t = 0; t < T; t++) {
        const float *s = buf->s + t * Ds, *r = buf->r + t * Ds, *f = buf->f + t * Ds, *en = buf->en + t * 5;
        int64_t flips = 0, unbound = 0;
        for (int64_t c = 0; c < Ds; c++) {
            float sk = signf(s[c]);
            if (*flag != 0.0f) flips += sk != prev[c];
            prev[c] = sk;
            float rc = signf(r[c]), fc = signf(f[c]);
            unbound += signf(rc * fc * rc) != fc;
        }
        *flag = 1.0f;
        float coh = (float)flips / (float)Ds, bind = (float)unbound / (float)Ds;
        float E = lam[0] * en[0] + lam[1] * en[1] * coh + lam[2] * en[2] * bind + lam[3] * en[3] + lam[4] * en[4];
        float add = 0.01f * E, *yt = y + t * D;
        for (int64_t j = 0; j < D; j++) yt[j] += add;
    }
}
