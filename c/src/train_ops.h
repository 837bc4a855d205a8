/*
 * train_ops.h — the trainer's small layers, each forward beside its backward:
 * fake quantization (BitLinear, ARCHITECTURES.md §2.2), linear maps through
 * sgemm, RMSNorm (§2.1), SiLU, causal depthwise conv (§2.4), L2 norm, and the
 * tied-head cross-entropy. Row-major [n, width] everywhere; backward functions
 * ACCUMULATE (+=) into parameter gradients and, where the argument is named
 * dx_acc, into the input gradient.
 */
#ifndef BRAID_TRAIN_OPS_H
#define BRAID_TRAIN_OPS_H

#include <math.h>
#include <stdint.h>

/* ---- BitLinear quantizers (straight-through in backward) --------------------- */

/* y[n, cols] = the int8 activation quantizer's values as floats (s_b · q_j per 64-block,
 * exactly quantize_act_ref's rounding), so training sees what inference computes. */
void fq_act_rows(float *y, const float *x, int64_t n, int64_t cols);

/* wq[rows, cols] = scale ⊙ clamp(round_half_even(W / scale), −1, 1), scale = max(mean|W|, 1e-6)
 * per row and 128-group (the BT2 quantizer, engine/gguf/bt2.ts). */
void fq_weight(float *wq, const float *W, int64_t rows, int64_t cols);
/* The same quantization packed as BT2 bytes (kernels.h layout). */
void bt2_pack_from_float(uint8_t *out, const float *W, int64_t rows, int64_t cols);

/* ---- linear maps (sgemm) -------------------------------------------------------- */

/* Y[n, out] = X[n, in] · W[out, in]ᵀ */
void lin_fwd(float *Y, const float *X, const float *W, int64_t n, int64_t in, int64_t out);
/* dX[n, in] (+)= dY · W (accumulate when acc), dW[out, in] += dYᵀ · X */
void lin_bwd(float *dX, int acc, float *dW, const float *dY, const float *X, const float *W, int64_t n, int64_t in,
             int64_t out);

/* ---- RMSNorm ---------------------------------------------------------------------- */

/* y = w ⊙ x · rstd, rstd = 1/sqrt(mean(x²) + eps), per row of width D. */
void rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int64_t n, int64_t D, float eps);
/* dx_acc += ∂/∂x, dw += ∂/∂w (w may be NULL: no weight, no dw). Rows ld apart for x/dy/dx. */
void rmsnorm_bwd(float *dx_acc, float *dw, const float *dy, const float *x, const float *rstd, const float *w,
                 int64_t n, int64_t D);

/* ---- SiLU ---------------------------------------------------------------------------- */
static inline float tsilu(float z) { return z / (1.0f + expf(-z)); }
/* d SiLU(z) / dz = σ(z)(1 + z(1 − σ(z))) */
static inline float tsilu_grad(float z) {
    float s = 1.0f / (1.0f + expf(-z));
    return s * (1.0f + z * (1.0f - s));
}

/* ---- SwiGLU gate (the dense FFN, the MoE experts and shared expert) ---------------- */

/* h[i] = SiLU(gate[i]) · up[i] for n floats (pool). */
void swiglu_fwd(float *h, const float *gate, const float *up, int64_t n);
/* dgate, dup (overwritten) from dh for h = SiLU(gate) ⊙ up (pool). */
void swiglu_bwd(float *dgate, float *dup, const float *dh, const float *gate, const float *up, int64_t n);

/* ---- causal depthwise conv + SiLU, per sequence (zero history) ----------------------- */

/* For each of B sequences of T rows: z_t[c] = Σ_j w[c, j] x_{t−K+1+j}[c] (x_{<0} = 0), y = SiLU(z). */
void conv_fwd(float *z, float *y, const float *x, const float *w, int64_t B, int64_t T, int64_t C, int64_t K);
/* dx[B·T, C] = ∂/∂x (overwritten), dw[C, K] += ∂/∂w, given dy, which is overwritten with the
 * gradient before the SiLU. */
void conv_bwd(float *dx, float *dw, float *dy, const float *z, const float *x, const float *w, int64_t B,
              int64_t T, int64_t C, int64_t K);

/* ---- tied-head cross-entropy -------------------------------------------------------- */

/* logits [n, V] in place: for rows with target >= 0, loss_row = logsumexp − logit[target] and the row
 * becomes softmax − onehot (the gradient of the summed loss); rows with target < 0 become 0.
 * Returns the summed loss (double, rows added in order) and the number of counted rows. */
double xent_fwd_bwd(float *logits, const int32_t *targets, int64_t n, int64_t V, int64_t *count, int backward);

#endif /* BRAID_TRAIN_OPS_H */
