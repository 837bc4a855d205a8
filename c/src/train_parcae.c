/*
 * train_parcae.c — Parcae looping for training (ARCHITECTURES.md §2.11; the
 * inference form is parcae_loop in chimera.c), forward beside backward:
 *
 *   e   = RMSNorm(x_p; prelude_norm)          x_p = the prelude's output
 *   inj = Δ ⊙ (B e)                           Δ = softplus(dt_bias)
 *   h_0 = 0;  h_k = R_k(Ā ⊙ h_{k−1} + inj)    Ā = exp(−Δ ⊙ exp(A_log)); R_k = the loop blocks, iteration k
 *   x_c = C h_n                               the coda's input
 *
 * Truncated backprop (chimera.loop.backward_truncation "half"): the gradient
 * flows through the last ⌈n/2⌉ iterations only; earlier ones are constants, as
 * if run without grad. Ā, Δ, B, C and the prelude get gradients from the
 * iterations that carry one.
 */
#include <math.h>
#include <string.h>

#include "common.h"
#include "train.h"
#include "train_ops.h"

int32_t train_parcae_bind(braid_trainer *tr) {
    tparcae *p = &tr->parcae;
    static const char *names[] = {"parcae.prelude_norm.weight", "parcae.a_log", "parcae.dt_bias", "parcae.b.weight",
                                  "parcae.c.weight"};
    int32_t *slots[] = {&p->norm, &p->a_log, &p->dt_bias, &p->b, &p->c};
    for (int i = 0; i < 5; i++) {
        *slots[i] = train_param_find(tr, names[i]);
        if (*slots[i] < 0) return braid_fail(BRAID_ERR_FORMAT, "trainer: tensor %s is missing", names[i]);
    }
    return BRAID_OK;
}

void train_parcae_layout(braid_trainer *tr, float *base, int64_t *c, int64_t N) {
    tparcae *p = &tr->parcae;
    const int64_t D = tr->hp.n_embd;
    tparcae t;
    tparcae *d = base ? p : &t;
    d->xp = train_carve(base, c, N * D);
    d->e = train_carve(base, c, N * D);
    d->rstd = train_carve(base, c, N);
    d->be = train_carve(base, c, N * D);
    d->inj = train_carve(base, c, N * D);
    d->abar = train_carve(base, c, D);
    d->delta = train_carve(base, c, D);
    d->h = train_carve(base, c, (int64_t)tr->hp.loop.max * N * D);
    d->dh = train_carve(base, c, N * D);
    d->dinj = train_carve(base, c, N * D);
    d->dabar = train_carve(base, c, D);
}

static inline float softplus(float z) { return z > 0.0f ? z + log1pf(expf(-z)) : log1pf(expf(z)); }

void train_parcae_inject(braid_trainer *tr, int64_t N) {
    tparcae *p = &tr->parcae;
    const int64_t D = tr->hp.n_embd;
    const float *a_log = tp_w(tr, p->a_log), *dtb = tp_w(tr, p->dt_bias);
    for (int64_t j = 0; j < D; j++) {
        p->delta[j] = softplus(dtb[j]);
        p->abar[j] = expf(-p->delta[j] * expf(a_log[j]));
    }
    rmsnorm_fwd(p->e, p->rstd, p->xp, tp_w(tr, p->norm), N, D, tr->hp.rms_eps);
    lin_fwd(p->be, p->e, tp_w(tr, p->b), N, D, D);
    for (int64_t t = 0; t < N; t++)
        for (int64_t j = 0; j < D; j++) p->inj[t * D + j] = p->delta[j] * p->be[t * D + j];
}

void train_parcae_loop_input(const braid_trainer *tr, int32_t k, float *x, int64_t N) {
    const tparcae *p = &tr->parcae;
    const int64_t D = tr->hp.n_embd;
    if (k == 0) {
        memcpy(x, p->inj, sizeof(float) * (size_t)(N * D));
        return;
    }
    const float *h = p->h + (int64_t)(k - 1) * N * D;
    for (int64_t t = 0; t < N; t++)
        for (int64_t j = 0; j < D; j++) x[t * D + j] = p->abar[j] * h[t * D + j] + p->inj[t * D + j];
}

void train_parcae_out(const braid_trainer *tr, int32_t n, float *x_coda, int64_t N) {
    const tparcae *p = &tr->parcae;
    const int64_t D = tr->hp.n_embd;
    lin_fwd(x_coda, p->h + (int64_t)(n - 1) * N * D, tp_w(tr, p->c), N, D, D);
}

int32_t train_parcae_first_grad_iter(const braid_trainer *tr, int32_t n) {
    return tr->hp.loop.bptt_half ? n - (n + 1) / 2 : 0;
}

void train_parcae_out_bwd(braid_trainer *tr, int32_t n, const float *dx_coda, int64_t N) {
    tparcae *p = &tr->parcae;
    const int64_t D = tr->hp.n_embd;
    lin_bwd(p->dh, 0, tp_g(tr, p->c), dx_coda, p->h + (int64_t)(n - 1) * N * D, tp_w(tr, p->c), N, D, D);
    memset(p->dinj, 0, sizeof(float) * (size_t)(N * D));
    memset(p->dabar, 0, sizeof(float) * (size_t)D);
}

void train_parcae_iter_bwd(braid_trainer *tr, int32_t k, int32_t k_first, const float *dx_in, int64_t N) {
    tparcae *p = &tr->parcae;
    const int64_t D = tr->hp.n_embd;
    for (int64_t i = 0; i < N * D; i++) p->dinj[i] += dx_in[i];
    if (k == 0) return;
    /* x_in = Ā ⊙ h_{k−1} + inj: Ā's gradient (summed over tokens in order), and h_{k−1}'s if it carries one */
    const float *h = p->h + (int64_t)(k - 1) * N * D;
    for (int64_t t = 0; t < N; t++)
        for (int64_t j = 0; j < D; j++) p->dabar[j] += dx_in[t * D + j] * h[t * D + j];
    if (k - 1 >= k_first)
        for (int64_t t = 0; t < N; t++)
            for (int64_t j = 0; j < D; j++) p->dh[t * D + j] = p->abar[j] * dx_in[t * D + j];
}

/* scratch: N·D + D floats. */
void train_parcae_inject_bwd(braid_trainer *tr, float *dxp, float *scratch, int64_t N) {
    tparcae *p = &tr->parcae;
    const int64_t D = tr->hp.n_embd;
    const float *a_log = tp_w(tr, p->a_log), *dtb = tp_w(tr, p->dt_bias);
    float *ddt = tp_g(tr, p->dt_bias);
    float *dbe = scratch, *dd = scratch + N * D; /* [N, D] ∂L/∂(Be), [D] ∂L/∂Δ */
    for (int64_t j = 0; j < D; j++) dd[j] = 0.0f;
    /* inj = Δ ⊙ Be */
    for (int64_t t = 0; t < N; t++)
        for (int64_t j = 0; j < D; j++) {
            dd[j] += p->dinj[t * D + j] * p->be[t * D + j];
            dbe[t * D + j] = p->delta[j] * p->dinj[t * D + j];
        }
    /* Be = e Bᵀ, then e = RMSNorm(x_p) */
    float *de = p->dh; /* free now */
    lin_bwd(de, 0, tp_g(tr, p->b), dbe, p->e, tp_w(tr, p->b), N, D, D);
    memset(dxp, 0, sizeof(float) * (size_t)(N * D));
    rmsnorm_bwd(dxp, tp_g(tr, p->norm), de, p->xp, p->rstd, tp_w(tr, p->norm), N, D);
    /* Ā = exp(−Δ A), A = exp(A_log);  Δ = softplus(dt_bias) */
    float *da_log = tp_g(tr, p->a_log);
    for (int64_t j = 0; j < D; j++) {
        const float A = expf(a_log[j]), g = p->dabar[j] * p->abar[j];
        da_log[j] += g * -p->delta[j] * A;
        dd[j] += g * -A;
        ddt[j] += dd[j] / (1.0f + expf(-dtb[j])); /* softplus' = σ */
    }
}
