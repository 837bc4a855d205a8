/*
 * titans.h — the Titans MAC mixer (TM layers), paper-faithful variant
 * ../shared/ARCHITECTURES.md §2.8-P (memory MLP with surprise/momentum update
 * and forgetting, persistent memory slots, segment-local attention).
 */
#ifndef BRAID_TITANS_H
#define BRAID_TITANS_H

#include <stdint.h>

#include "kernels.h"

typedef struct {
    int32_t n_head;     /* H */
    int32_t head_dim;   /* d */
    int32_t mem_dim;    /* d_m, hidden width of the memory MLP */
    int32_t n_persist;  /* N_p persistent key/value slots per head */
    int32_t segment;    /* C_s, segment (= local window) length */
    float theta_max;    /* θ_max (0.1) */
} titans_hparams;

typedef struct {
    const uint8_t *wq, *wk, *wv; /* BT2 [H·d, D] */
    const uint8_t *wo;           /* BT2 [D, H·d] */
    const uint8_t *wkm, *wvm;    /* BT2 [H·d, H·d] memory write projections */
    const float *wa, *we, *wt;   /* F32 [H, D] gates α (forget), η (momentum), θ (step) */
    const float *ba, *be, *bt;   /* [H] */
    const float *pk, *pv;        /* [H, N_p, d] persistent keys / values */
    const float *w1, *w2;        /* initial memory: [H, d_m, d], [H, d, d_m] */
} titans_weights;

/* State floats of one layer:
 *   per head [H][6][d_m·d]: M⁰ = (W1, W2) at the segment start, the running
 *     memory (W1, W2) and the momentum (S1, S2);
 *   per head [H][4][C_s][d]: the segment's memory keys L2norm(r), memory values r,
 *     local keys k and values v;
 *   then the position inside the segment and a "started" flag (0 = fresh:
 *   the memory is W1⁰, W2⁰ and momentum 0, so the all-zero state is the initial state). */
int64_t titans_state_floats(const titans_hparams *hp);

/* ---- per-head math ------------------------------------------------------------- */

/* The segment update in closed form (§2.8-P; gradients all taken at the segment
 * start), over a flat parameter vector of P floats:
 *   E_i = Π_{j≤i} η_j,  B_i = Π_{j≤i} (1 − α_j)
 *   S_C = E_C S_0 − Σ_r (E_C/E_r) θ_r g_r
 *   M_C = B_C M_0 + c_S S_0 − Σ_r c_r g_r,  c_S = Σ_i (B_C/B_i) E_i,  c_r = θ_r Σ_{i≥r} (B_C/B_i)(E_i/E_r)
 * M, S: [P] in: segment start, out: segment end. g: [n, P]. The decode path runs the
 * equivalent token recurrence S_i = η_i S_{i−1} − θ_i g_i, M_i = (1 − α_i) M_{i−1} + S_i
 * (tested equal in c/test/test_layers.c). */
void titans_segment_closed(float *M, float *S, const float *g, const float *alpha, const float *eta,
                           const float *theta, int64_t n, int64_t P);

/* ---- layer forward ---------------------------------------------------------------- */

typedef struct {
    float *q, *k, *v;       /* [T, H·d] projections (q, k then L2-normalised per head) */
    float *ga, *ge, *gt;    /* [T, H] gate pre-activations */
    float *y;               /* [T, H·d] attention outputs */
    float *km, *vm;         /* [T, H·d] memory write keys / values */
    float *o;               /* [T, H·d] gated outputs, input of W_o */
    float *head;            /* [H, titans_head_scratch_floats] */
    act_q8 *act;            /* T quantized rows, room for max(D, H·d) */
} titans_buffers;

int64_t titans_head_scratch_floats(const titans_hparams *hp);

void titans_forward(float *y, float *state, const float *xn, const titans_weights *w, const titans_hparams *hp,
                    int64_t T, int64_t D, titans_buffers *buf);

#endif /* BRAID_TITANS_H */
