/*
 * train_span.c — the span-engine risk gate on the final hidden state for
 * training (ARCHITECTURES.md §2.13; inference: span_gate in chimera.c):
 *
 *   r = σ(w_risk · h);  z = W_rg [h ; r];  h' = h ⊙ σ(z)        W_rg [D, D+1], float
 *
 * Backward, with g = σ(z) and dh' given:
 *   dh = dh' ⊙ g + (dz W_rg)[:, :D] + dq w_risk,  dz = dh' ⊙ h ⊙ g(1 − g)
 *   dW_rg += dzᵀ [h ; r],  dq = (dz W_rg)[:, D] · r(1 − r),  dw_risk += Σ_t dq_t h_t
 */
#include <math.h>
#include <string.h>

#include "common.h"
#include "train.h"
#include "train_ops.h"

int32_t train_span_bind(braid_trainer *tr) {
    tspan *s = &tr->span;
    s->risk = train_param_find(tr, "output_risk.weight");
    s->gate = train_param_find(tr, "output_gate.weight");
    if (s->risk < 0 || s->gate < 0)
        return braid_fail(BRAID_ERR_FORMAT, "trainer: output_risk.weight or output_gate.weight is missing");
    return BRAID_OK;
}

void train_span_layout(braid_trainer *tr, float *base, int64_t *c, int64_t N) {
    const int64_t D = tr->hp.n_embd;
    tspan t, *d = base ? &tr->span : &t;
    d->in = train_carve(base, c, N * (D + 1));
    d->g = train_carve(base, c, N * D);
    d->din = train_carve(base, c, N * (D + 1));
}

/* h [N, D] in place; keeps [h ; r] and σ(z). */
void train_span_fwd(braid_trainer *tr, float *h, int64_t N) {
    tspan *s = &tr->span;
    const int64_t D = tr->hp.n_embd;
    const float *wr = tp_w(tr, s->risk);
    for (int64_t t = 0; t < N; t++) {
        float *in = s->in + t * (D + 1);
        memcpy(in, h + t * D, sizeof(float) * (size_t)D);
        float a = 0.0f;
        for (int64_t j = 0; j < D; j++) a += wr[j] * in[j];
        in[D] = 1.0f / (1.0f + expf(-a));
    }
    lin_fwd(s->g, s->in, tp_w(tr, s->gate), N, D + 1, D);
    for (int64_t i = 0; i < N * D; i++) {
        s->g[i] = 1.0f / (1.0f + expf(-s->g[i]));
        h[i] *= s->g[i];
    }
}

/* dh [N, D]: in ∂L/∂h', out ∂L/∂h. */
void train_span_bwd(braid_trainer *tr, float *dh, int64_t N) {
    tspan *s = &tr->span;
    const int64_t D = tr->hp.n_embd;
    const float *wr = tp_w(tr, s->risk);
    float *dwr = tp_g(tr, s->risk);
    float *dz = s->g; /* σ(z) is read once per element below, then replaced by dz */
    for (int64_t t = 0; t < N; t++)
        for (int64_t j = 0; j < D; j++) {
            const int64_t i = t * D + j;
            const float g = s->g[i], h = s->in[t * (D + 1) + j];
            dz[i] = dh[i] * h * g * (1.0f - g);
            dh[i] *= g;
        }
    lin_bwd(s->din, 0, tp_g(tr, s->gate), dz, s->in, tp_w(tr, s->gate), N, D + 1, D);
    for (int64_t t = 0; t < N; t++) {
        const float *din = s->din + t * (D + 1), *in = s->in + t * (D + 1);
        const float r = in[D], dq = din[D] * r * (1.0f - r);
        for (int64_t j = 0; j < D; j++) {
            dh[t * D + j] += din[j] + dq * wr[j];
            dwr[j] += dq * in[j];
        }
    }
}
