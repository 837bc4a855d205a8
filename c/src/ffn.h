/*
 * ffn.h — the SwiGLU MLP (ARCHITECTURES.md §2.3) and the BitLinear helpers
 * every mixer shares: quantize token rows once, then run several linears that
 * read the same input in one pool pass (rows of all of them split together).
 */
#ifndef BRAID_FFN_H
#define BRAID_FFN_H

#include <stdint.h>

#include "gguf.h"
#include "kernels.h"

/* A float matrix [rows, cols], row-major, stored as F32 or F16 (GGUF type 0 or 1):
 * the file chooses per tensor (docs/format.md). */
typedef struct {
    const void *data; /* float [rows, cols] or IEEE half (uint16_t) [rows, cols] */
    uint32_t type;    /* GGML_TYPE_F32 or GGML_TYPE_F16 */
} fmat;

static inline fmat fmat_f32(const float *data) { return (fmat){data, GGML_TYPE_F32}; }

/* Y[t, r] (row stride ldy) = W[r, :] · X[t, :] for t < n, r in [r0, r1): gemv_* for one row,
 * gemm_* otherwise, f32 or f16 by W's type. Row-equal like the kernels (kernels.h), so
 * batching never changes the bits. */
void fmat_mul(float *Y, int64_t ldy, fmat W, const float *X, int64_t n, int64_t cols, int64_t r0, int64_t r1);

/* One linear map of a batch: Y[t, r] (row stride ldy) = W[r, :] · x_t for r < rows.
 * Exactly one of bt2 (ternary, reads the quantized rows) and fm (reads the float rows). */
typedef struct {
    float *y;
    int64_t ldy;
    const uint8_t *bt2; /* BT2 [rows, cols] */
    fmat fm;            /* F32 or F16 [rows, cols] */
    int64_t rows;
} linear_op;

/* act[t] = quantize(x[t, 0..cols)) for t < T, split over the pool. */
void linear_quantize(act_q8 *act, const float *x, int64_t T, int64_t cols);
/* Runs n_ops linears over T tokens of width cols: BT2 ops read act, float ops read x [T, cols]. */
void linear_run(const linear_op *ops, int n_ops, const act_q8 *act, const float *x, int64_t T, int64_t cols);
/* One token, n_ops BT2 linears that read different quantized rows: op o reads act[o] of width
 * cols[o]. One pool pass for all (rows split together), each row the gemv_bt2 of linear_run. */
void linear_run_rows(const linear_op *ops, int n_ops, const act_q8 *act, const int64_t *cols);

typedef struct {
    const uint8_t *gate, *up; /* BT2 [I, D] */
    const uint8_t *down;      /* BT2 [D, I] */
} ffn_weights;

/* y [T, D] = W_down (SiLU(W_gate xn) ⊙ W_up xn). gate, up: [T, I] scratch;
 * act: T quantized rows with room for max(D, I) columns. */
/* gate[t] <- SiLU(gate[t]) ⊙ up[t] for T rows of width I (rows split over the pool). */
void swiglu_rows(float *gate, const float *up, int64_t T, int64_t I);

void ffn_forward(float *y, const float *xn, const ffn_weights *w, int64_t T, int64_t D, int64_t I, float *gate,
                 float *up, act_q8 *act);

#endif /* BRAID_FFN_H */
