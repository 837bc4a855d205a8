/*
 * gdn.h — the Gated DeltaNet mixer (GD layers), ../shared/ARCHITECTURES.md §2.5.
 *
 * Two levels: the per-head recurrence (gdn_step, gdn_chunk: pure math, used
 * by tests directly) and the layer forward (gdn_forward: projections, convs,
 * gates, the recurrence over all heads through the pool, gated norm, output
 * projection).
 */
#ifndef BRAID_GDN_H
#define BRAID_GDN_H

#include <stdint.h>

#include "ffn.h"
#include "kernels.h"

typedef struct {
    int32_t n_head; /* H */
    int32_t d_k;    /* key dim per head */
    int32_t d_v;    /* value dim per head */
    int32_t conv_k; /* short conv width K */
    int32_t chunk;  /* prefill chunk length C */
} gdn_hparams;

/* One GD layer's weights, pointers into the model mapping. Shapes [rows, cols]. */
typedef struct {
    const uint8_t *wq, *wk; /* BT2 [H·d_k, D] */
    const uint8_t *wv, *wg; /* BT2 [H·d_v, D] */
    const uint8_t *wo;      /* BT2 [D, H·d_v] */
    fmat wa, wb;            /* F32 or F16 [H, D] */
    const float *a_log;     /* [H] */
    const float *dt_bias;   /* [H] */
    const float *conv_q;    /* [H·d_k, K] */
    const float *conv_k;    /* [H·d_k, K] */
    const float *conv_v;    /* [H·d_v, K] */
    const float *o_norm;    /* [d_v] */
} gdn_weights;

/* Recurrent state floats of one layer: S [H, d_v, d_k], then conv tails
 * q [K-1, H·d_k], k [K-1, H·d_k], v [K-1, H·d_v]. */
int64_t gdn_state_floats(const gdn_hparams *hp);

/* ---- per-head math --------------------------------------------------------- */

/* One token of one head: S [d_v, d_k] in place, o [d_v]. q already scaled, q/k normalised. */
void gdn_step(float *o, float *S, const float *q, const float *k, const float *v, float beta, float g, int64_t d_k,
              int64_t d_v);

/* Scratch floats gdn_chunk needs for chunks of up to n rows. */
int64_t gdn_chunk_scratch_floats(int64_t n, int64_t d_v);

/* One chunk of n tokens of one head (the WY / chunkwise-parallel form).
 * o: [n, d_v] rows ld_o apart; S: [d_v, d_k] incoming state, replaced by the
 * state after the chunk. q, k: rows ld_qk apart; v: rows ld_v apart;
 * beta, g: one float per row, ld_bg apart. */
void gdn_chunk(float *o, int64_t ld_o, float *S, const float *q, const float *k, int64_t ld_qk, const float *v,
               int64_t ld_v, const float *beta, const float *g, int64_t ld_bg, int64_t n, int64_t d_k, int64_t d_v,
               float *scratch);

/* ---- layer forward ---------------------------------------------------------- */

/* Activations the layer needs, sized for T tokens by the context. */
typedef struct {
    float *q, *k;     /* [T, H·d_k] projections */
    float *v, *g;     /* [T, H·d_v] projections (g = output gate) */
    float *qc, *kc;   /* [T, H·d_k] after conv+SiLU (then L2-normed in place) */
    float *vc;        /* [T, H·d_v] */
    float *a, *b;     /* [T, H] decay / beta pre-activations */
    float *beta, *gl; /* [T, H] β and log-decay g */
    float *o;         /* [T, H·d_v] mixer output before W_o */
    float *chunk;     /* [H, gdn_chunk_scratch_floats(C, d_v)] */
    act_q8 *act;      /* T quantized rows, each with room for max(D, H·d_v) columns */
} gdn_buffers;

/* y [T, D] = GDN(xn) where xn [T, D] is the block's RMS-normed input;
 * state (gdn_state_floats) is advanced by T tokens. */
void gdn_forward(float *y, float *state, const float *xn, const gdn_weights *w, const gdn_hparams *hp, int64_t T,
                 int64_t D, float eps, gdn_buffers *buf);

#endif /* BRAID_GDN_H */
