/*
 * mlstm.h — the xLSTM mLSTM mixer (XM layers), ../shared/ARCHITECTURES.md §2.6.
 *
 * Two levels, as gdn.h: the per-head math (mlstm_step: the stabilised
 * recurrence used for every token; mlstm_parallel: the reference's parallel
 * form, used by tests to prove the two equal) and the layer forward.
 */
#ifndef BRAID_MLSTM_H
#define BRAID_MLSTM_H

#include <stdint.h>

#include "kernels.h"

typedef struct {
    int32_t n_head;     /* H */
    int32_t head_dim;   /* d (q, k, v and memory per head) */
    float soft_cap;     /* gate pre-activation cap: cap(z) = c·tanh(z/c) (15) */
    float norm_eps;     /* per-head LayerNorm epsilon (1e-5) */
} mlstm_hparams;

/* One XM layer's weights, pointers into the mapping. Shapes [rows, cols]. */
typedef struct {
    const uint8_t *wq, *wk, *wv; /* BT2 [H·d, D] */
    const uint8_t *wog;          /* BT2 [H·d, D] output gate */
    const uint8_t *wo;           /* BT2 [D, H·d] */
    const float *wi, *wf;        /* F32 [H, D] input / forget gate */
    const float *bi, *bf;        /* [H] gate biases */
    const float *norm_w, *norm_b; /* [d] per-head LayerNorm (shared across heads) */
} mlstm_weights;

/* State floats of one layer: C [H, d, d], n [H, d], m [H], then one flag
 * (0 = no token seen yet, i.e. m = −∞; the zero state is the initial state). */
int64_t mlstm_state_floats(const mlstm_hparams *hp);

/* ---- per-head math ---------------------------------------------------------- */

/* One token of one head. C [d, d] (row a = value dim), n [d], *m updated in place;
 * first != 0 means m_{t−1} = −∞. q already scaled by d^{-1/2}; ig = ĩ (capped log
 * input gate), lf = ℓ = log σ(f̃). h [d] = h̃_t (before the LayerNorm). */
void mlstm_step(float *h, float *C, float *n, float *m, int first, const float *q, const float *k, const float *v,
                float ig, float lf, int64_t d);

/* The parallel form from a zero state for T tokens of one head (tests):
 * h [T, d] rows ld_h apart; q, k, v rows ld apart; ig, lf one per row, ld_g apart.
 * scratch: T floats. */
void mlstm_parallel(float *h, int64_t ld_h, const float *q, const float *k, const float *v, int64_t ld,
                    const float *ig, const float *lf, int64_t ld_g, int64_t T, int64_t d, float *scratch);

/* ---- layer forward ----------------------------------------------------------- */

typedef struct {
    float *q, *k, *v, *og; /* [T, H·d] projections */
    float *ig, *lf;        /* [T, H] gate pre-activations, then ĩ and ℓ */
    float *o;              /* [T, H·d] σ(og) ⊙ LN(h̃), input of W_o */
    act_q8 *act;           /* T quantized rows, room for max(D, H·d) */
} mlstm_buffers;

/* y [T, D] = mLSTM(xn); state advanced by T tokens. */
void mlstm_forward(float *y, float *state, const float *xn, const mlstm_weights *w, const mlstm_hparams *hp,
                   int64_t T, int64_t D, mlstm_buffers *buf);

#endif /* BRAID_MLSTM_H */
