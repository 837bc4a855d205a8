/*
 * moe.h — the mixture-of-experts FFN (layers in chimera.moe.layers),
 * ../shared/ARCHITECTURES.md §2.10 (DeepSeek-V3 noaux_tc routing).
 */
#ifndef BRAID_MOE_H
#define BRAID_MOE_H

#include <stdint.h>

#include "ffn.h"
#include "kernels.h"

typedef struct {
    int32_t n_expert;      /* E routed experts */
    int32_t n_used;        /* K experts per token */
    int32_t n_shared;      /* shared experts (one MLP of width n_shared·I_e), 0 = none */
    int32_t ff;            /* I_e, width of each expert */
    float scale;           /* routed_scaling_factor (1) */
} moe_hparams;

/* One MoE layer's weights. Stacked expert tensors hold E consecutive BT2 matrices. */
typedef struct {
    fmat router;              /* F32 or F16 [E, D] */
    const float *bias;        /* [E] selection-only bias (updated by the trainer's load rule, not by gradient) */
    const uint8_t *gate, *up; /* E × BT2 [I_e, D] */
    const uint8_t *down;      /* E × BT2 [D, I_e] */
    ffn_weights shared;       /* BT2 [n_shared·I_e, D] ×2, [D, n_shared·I_e]; unused if n_shared = 0 */
} moe_weights;

typedef struct {
    float *scores;    /* [T, E] router logits, then σ */
    int32_t *sel;     /* [T, K] chosen experts, ascending id */
    float *wsel;      /* [T, K] their weights */
    int32_t *tok;     /* [T] tokens routed to the current expert */
    act_q8 *gather;   /* [T] their quantized input rows (views) */
    act_q8 *act;      /* T quantized rows, room for max(D, I, I_e, I_shared) */
    act_q8 *act2;     /* T more quantized rows (expert hidden), same width */
    float *gate, *up; /* [T, max(I, I_shared, I_e)] */
    float *eo;        /* [T, D] one expert's outputs */
    float *slot;      /* [T·K, D] routed outputs by (token, slot) */
    int64_t rows;     /* T: the row capacity of the buffers above (the context's max batch) */
} moe_buffers;

/* Routing of one token row of sigmoid scores s [E] with bias b: the K largest
 * s_e + b_e (ties to the lower id), returned ascending by id in sel, with
 * weights s_e / Σ_sel s · scale in w. */
void moe_route(int32_t *sel, float *w, const float *s, const float *bias, const moe_hparams *hp);

/* y [T, D] = Σ_shared FFN_sh(xn) + Σ_{e∈sel} w_e FFN_e(xn). Tokens are grouped by
 * expert for the GEMMs; each token's sum runs in ascending expert order, so the
 * result does not depend on which other tokens share the batch. */
void moe_forward(float *y, const float *xn, const moe_weights *w, const moe_hparams *hp, int64_t T, int64_t D,
                 moe_buffers *buf);

#endif /* BRAID_MOE_H */
