/*
 * context.h — one sequence's state and scratch (private view of braid_context).
 *
 * All scratch is allocated at braid_context_new for max_batch tokens in one
 * 64-byte aligned arena; eval never allocates. The recurrent state of every
 * layer is one contiguous float array (model_layer.state_offset), so save,
 * load, copy and reset are single memcpy/memset calls.
 */
#ifndef BRAID_CONTEXT_H
#define BRAID_CONTEXT_H

#include <stdatomic.h>
#include <stdint.h>

#include "gdn.h"
#include "kernels.h"
#include "model.h"

struct braid_context {
    const braid_model *model;
    int32_t max_batch;
    int64_t n_past;
    atomic_int abort;
    int32_t n_loops;    /* Parcae loop count of the next evals (1 without looping) */
    float loop_exit;    /* Parcae adaptive exit: stop a token when mean|h_k − h_{k−1}| < this (0: off) */
    int32_t loop_exit_min; /* ... but never before this many iterations */
    int32_t last_loops;    /* iterations the last token of the last eval ran */
    int64_t last_loop_sum; /* iterations summed over the tokens of the last eval */

    float *state;       /* [model->state_floats] */

    void *arena;        /* owns everything below */
    float *x;           /* [B, D] residual stream */
    float *xn;          /* [B, D] normed input of the current block */
    float *y;           /* [B, D] block output */
    float *ffn_gate;    /* [B, I] */
    float *ffn_up;      /* [B, I] */
    gdn_buffers gdn;    /* GD mixer activations (also the SK layers' inner GDN) */
    mlstm_buffers xm;   /* XM mixer activations */
    titans_buffers tm;  /* TM mixer activations */
    tsp_buffers sk;     /* SK knot activations */
    moe_buffers moe;    /* MoE FFN activations */
    float *span_in;     /* [B, D+1] span gate input [h ; risk] */
    float *span_g;      /* [B, D] span gate pre-activations */
    float *inj;         /* [B, D] Parcae injection Δ ⊙ (B e) (looping models) */
    float *loop_prev;   /* [B, D] previous iterate h_{k−1} of the tokens still looping (adaptive exit) */
    float *loop_out;    /* [B, D] each token's last iterate, in token order (adaptive exit) */
    int32_t *loop_row;  /* [B] token index of each row still looping (adaptive exit) */
    act_q8 *act;        /* [B] quantized rows, each act_cols wide */
    act_q8 *act2;       /* [B] more rows of the same width (MoE expert hidden) */
    int64_t act_cols;   /* widest BitLinear input: max(D, I, every family's inner width) */
    int64_t ff_cols;    /* widest SwiGLU hidden: max(I, I_e, I_shared) */

    struct moa_ctx *moa; /* KV cache and scratch of a MoA model (moa.h), else NULL */

    char last_error[512]; /* message of the last failing public call on this context */
};

/* CRC-32 (IEEE 802.3, as zlib) of data[0..n), continuing from crc (start with 0). */
uint32_t braid_crc32(uint32_t crc, const void *data, size_t n);

#endif /* BRAID_CONTEXT_H */
