/*
 * kernels.h — the compute kernels and their dispatch table (private).
 *
 * Every kernel has a scalar `_ref` (kernels_ref.c, always compiled, the
 * definition of correct) and optional SIMD variants (kernels_avx2.c,
 * kernels_avx512.c). One table per ISA; the active table is chosen once at
 * load (cpu.c) and may be forced lower by tests (braid_isa_set).
 *
 * Kernels are single-threaded over the slice they are given: threading is
 * done by the caller through the thread pool (threadpool.h), splitting rows.
 * Batch invariance: within one table, gemm_* row t is bit-identical to gemv_*
 * on that activation row alone, and no output depends on how [r0, r1) is
 * split, so n tokens in one eval give the same logits as n evals of one
 * (c/test/test_kernels.c checks both with memcmp).
 * Argument order: outputs, inputs, sizes.
 *
 * ---- The BT2 ternary format (GGUF type id BRAID_GGUF_TYPE_BT2) ----------
 * A [rows, cols] ternary matrix, cols a multiple of 128 (BT2_GROUP):
 *   qs:     rows * cols/4 bytes, row-major. Within a row, 128-weight group g
 *           occupies 32 bytes; byte m (0..31) of the group holds the codes of
 *           weights 128g+m (bits 0-1), 128g+m+32 (bits 2-3), 128g+m+64
 *           (bits 4-5), 128g+m+96 (bits 6-7). code = w + 1, w in {-1,0,+1}
 *           (so 0,1,2; 3 never appears). This is ggml TQ2_0's order inside
 *           each 128-half, chosen so a shift+mask yields 32 consecutive weights.
 *   scales: rows * cols/128 float32 immediately after qs, row-major: scale of
 *           row r, group g at [r * cols/128 + g]. Effective weight = scale * w.
 * Tensor bytes = rows*cols/4 + rows*(cols/128)*4.
 *
 * ---- int8 activations ----------------------------------------------------
 * A float row x[cols] (cols a multiple of 128) is quantized in blocks of 64
 * (BT2_ACT_BLOCK): s_b = max|x_j|/127 (s_b = 1 if the block is all zero),
 * q_j = clamp(round_half_even(x_j / s_b), -127, 127).
 * The ternary dot product of row r is
 *   y_r = sum_g scale[r,g] * sum_{b in g} s_b * sum_{j in b} q_j * w_{r,j}
 * with int32 accumulation inside each 64-block.
 */
#ifndef BRAID_KERNELS_H
#define BRAID_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define BT2_GROUP 128
#define BT2_ACT_BLOCK 64
/* GGUF tensor type id for BT2 (outside ggml's range, documented in docs/format.md). */
#define BRAID_GGUF_TYPE_BT2 1024

/* Bytes of a BT2 tensor [rows, cols]. */
static inline size_t bt2_bytes(int64_t rows, int64_t cols) {
    return (size_t)(rows * (cols / 4) + rows * (cols / BT2_GROUP) * 4);
}
static inline const float *bt2_scales(const uint8_t *w, int64_t rows, int64_t cols) {
    return (const float *)(w + rows * (cols / 4));
}

/* A quantized activation row: q[cols] int8, s[cols/64] float scales, and
 * sum[cols/64] int32 (sum of q over each block; kernels that use the
 * code = w+1 trick subtract it). Layout is owned by the quantizer. */
typedef struct {
    int8_t *q;
    float *s;
    int32_t *sum;
} act_q8;

typedef struct kernel_table {
    const char *name; /* "ref", "avx2", "avx512" */

    /* y[r] = sum_j W[r,j] x[j] for r in [r0, r1); W F32 [rows, cols] row-major. */
    void (*gemv_f32)(float *y, const float *W, const float *x, int64_t cols, int64_t r0, int64_t r1);
    /* Y[t, r] = sum_j W[r,j] X[t, j], t in [0,n), r in [r0,r1); ldy = row stride of Y. */
    void (*gemm_f32)(float *Y, int64_t ldy, const float *W, const float *X, int64_t n, int64_t cols, int64_t r0,
                     int64_t r1);
    /* Same with W stored as IEEE half (uint16_t). */
    void (*gemv_f16)(float *y, const uint16_t *W, const float *x, int64_t cols, int64_t r0, int64_t r1);
    void (*gemm_f16)(float *Y, int64_t ldy, const uint16_t *W, const float *X, int64_t n, int64_t cols, int64_t r0,
                     int64_t r1);

    /* Quantize one row x[cols] into a (see above). cols % 128 == 0. */
    void (*quantize_act)(act_q8 a, const float *x, int64_t cols);
    /* Ternary BT2 W [rows, cols] times one quantized row: y[r] for r in [r0, r1). */
    void (*gemv_bt2)(float *y, const uint8_t *W, int64_t rows, int64_t cols, act_q8 a, int64_t r0, int64_t r1);
    /* n quantized rows a[0..n): Y[t, r] for r in [r0, r1), ldy = row stride of Y. */
    void (*gemm_bt2)(float *Y, int64_t ldy, const uint8_t *W, int64_t rows, int64_t cols, const act_q8 *a, int64_t n,
                     int64_t r0, int64_t r1);

    /* y = w ⊙ x / sqrt(mean(x²) + eps); w may be NULL (parameter-free). y may alias x. */
    void (*rmsnorm)(float *y, const float *x, const float *w, int64_t n, float eps);
    /* y = x / max(||x||, 1e-12) * scale. y may alias x. */
    void (*l2norm)(float *y, const float *x, int64_t n, float scale);
    /* y = silu(x). y may alias x. */
    void (*silu)(float *y, const float *x, int64_t n);
    /* y = silu(g) ⊙ u. y may alias g or u. */
    void (*swiglu)(float *y, const float *g, const float *u, int64_t n);
    /* In-place numerically stable softmax over n. */
    void (*softmax)(float *x, int64_t n);
    /* Causal depthwise conv + SiLU over n tokens, ch channels, kernel k:
     * y[t,c] = silu(sum_{j<k} w[c,j] * xx[t-k+1+j, c]) where xx is the
     * concatenation of tail (k-1 earlier rows, [k-1, ch]) and x ([n, ch]).
     * On return tail holds the last k-1 rows of xx (the decode state).
     * Rows of y, tail and x are ld floats apart (ld >= ch), so channels [c0, c0 + ch) of
     * wider rows are the call on y + c0, tail + c0, x + c0, w + c0 * k: every channel is
     * computed alone, so slicing does not change the bits. y must not alias x. w is [ch, k]. */
    void (*conv1d_causal)(float *y, float *tail, const float *x, const float *w, int64_t n, int64_t ch, int64_t ld,
                          int64_t k);
    /* One gated delta-rule step for one head (ARCHITECTURES.md §2.5, recurrent form),
     * P the state before the step and S the state after it, [d_v, d_k] row-major:
     *   S = alpha P + beta (v - alpha P k) k^T;  o = S q
     * P == S steps in place; otherwise P is left as it was (the trainer's recompute keeps every
     * state of an interval without copying). o must not alias S or P; S and P are equal or apart. */
    void (*delta_step)(float *o, float *S, const float *P, const float *q, const float *k, const float *v, float beta,
                       float alpha, int64_t d_k, int64_t d_v);
    /* y[c] += Σ_{i<n} w[i] V[i, c] for c < d, V [n, d] row-major: i ascending, every product
     * and every sum rounded on its own (no FMA), so every ISA gives _ref's bits (only the
     * columns are vectorized). The Titans readouts (attention over value rows, W2ᵀ e). */
    void (*rows_axpy)(float *y, const float *w, const float *V, int64_t n, int64_t d);
    /* Momentum step of an outer-product gradient u vᵀ, S and M [m, n] row-major, in place:
     *   S[a, b] = eta S[a, b] − theta (u[a] v[b]);  M[a, b] = keep M[a, b] + S[a, b]
     * in that operation order, no FMA: every ISA gives _ref's bits. The Titans memory update. */
    void (*outer_momentum)(float *S, float *M, const float *u, const float *v, int64_t m, int64_t n, float eta,
                           float theta, float keep);

    /* ---- training (kernels_train_*.c) ---- */
    /* Backward of delta_step for one head and token: P = S_{t-1}, St = S_t, dout = ∂L/∂o.
     * dS [d_v, d_k]: in ∂L/∂S_t from later tokens, out ∂L/∂S_{t-1}. Writes dq, dk [d_k], dv [d_v],
     * *dalpha, *dbeta (math in kernels_train_ref.c). */
    void (*delta_step_bwd)(float *dS, float *dq, float *dk, float *dv, float *dalpha, float *dbeta, const float *P,
                           const float *St, const float *q, const float *k, const float *v, const float *dout,
                           float alpha, float beta, int64_t d_k, int64_t d_v);
} kernel_table;

extern const kernel_table kernels_ref;
/* The _ref kernels by name, so SIMD tables can fall back to them statically. */
void gemv_f32_ref(float *y, const float *W, const float *x, int64_t cols, int64_t r0, int64_t r1);
void gemm_f32_ref(float *Y, int64_t ldy, const float *W, const float *X, int64_t n, int64_t cols, int64_t r0,
                  int64_t r1);
void gemv_f16_ref(float *y, const uint16_t *W, const float *x, int64_t cols, int64_t r0, int64_t r1);
void gemm_f16_ref(float *Y, int64_t ldy, const uint16_t *W, const float *X, int64_t n, int64_t cols, int64_t r0,
                  int64_t r1);
void quantize_act_ref(act_q8 a, const float *x, int64_t cols);
void gemv_bt2_ref(float *y, const uint8_t *W, int64_t rows, int64_t cols, act_q8 a, int64_t r0, int64_t r1);
void gemm_bt2_ref(float *Y, int64_t ldy, const uint8_t *W, int64_t rows, int64_t cols, const act_q8 *a, int64_t n,
                  int64_t r0, int64_t r1);
void rmsnorm_ref(float *y, const float *x, const float *w, int64_t n, float eps);
void l2norm_ref(float *y, const float *x, int64_t n, float scale);
void silu_ref(float *y, const float *x, int64_t n);
void swiglu_ref(float *y, const float *g, const float *u, int64_t n);
void softmax_ref(float *x, int64_t n);
void conv1d_causal_ref(float *y, float *tail, const float *x, const float *w, int64_t n, int64_t ch, int64_t ld,
                       int64_t k);
void delta_step_ref(float *o, float *S, const float *P, const float *q, const float *k, const float *v, float beta, float alpha,
                    int64_t d_k, int64_t d_v);
void rows_axpy_ref(float *y, const float *w, const float *V, int64_t n, int64_t d);
void outer_momentum_ref(float *S, float *M, const float *u, const float *v, int64_t m, int64_t n, float eta, float theta,
                        float keep);

void delta_step_bwd_ref(float *dS, float *dq, float *dk, float *dv, float *dalpha, float *dbeta, const float *P,
                        const float *St, const float *q, const float *k, const float *v, const float *dout,
                        float alpha, float beta, int64_t d_k, int64_t d_v);
void delta_step_bwd_avx2(float *dS, float *dq, float *dk, float *dv, float *dalpha, float *dbeta, const float *P,
                         const float *St, const float *q, const float *k, const float *v, const float *dout,
                         float alpha, float beta, int64_t d_k, int64_t d_v);
void delta_step_bwd_avx512(float *dS, float *dq, float *dk, float *dv, float *dalpha, float *dbeta, const float *P,
                           const float *St, const float *q, const float *k, const float *v, const float *dout,
                           float alpha, float beta, int64_t d_k, int64_t d_v);

extern const kernel_table kernels_avx2;
extern const kernel_table kernels_avx512;

/* ---- the trainer's elementwise kernels (kernels_train_*.c) ----
 * A table of their own beside kernel_table, chosen to match the ISA kernels() runs (train_kernels()),
 * so the inference kernel files need not list them. */
/* AdamW's per-call constants: g is scaled by `scale` (loss scale · clip); bc1, bc2 = 1 − β^t. */
typedef struct {
    float scale, b1, b2, bc1, bc2, lr, eps, wd;
} adamw_consts;

typedef struct {
    const char *name;
    /* The trainer's elementwise exponentials (SiLU gates of the convs and SwiGLU, softmax of the
     * cross-entropy). The SIMD variants evaluate e^x with their own polynomial (a few ulp from libm's
     * expf); results depend on the ISA, never on the thread count.
     *   silu_mul:     y = SiLU(g) ⊙ u, or y = SiLU(g) when u is NULL; SiLU(g) = g / (1 + e^{−g}).
     *   silu_mul_bwd: dg = dy ⊙ u ⊙ SiLU'(g), du = dy ⊙ g σ(g) (u NULL: dg = dy ⊙ SiLU'(g), du unused),
     *                 SiLU'(g) = σ(g)(1 + g(1 − σ(g))).
     *   exp_sum:      Σ_i e^{x_i − shift};   exp_shift: y_i = e^{x_i − shift} (y may alias x). */
    void (*silu_mul)(float *y, const float *g, const float *u, int64_t n);
    void (*silu_mul_bwd)(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n);
    float (*exp_sum)(const float *x, float shift, int64_t n);
    void (*exp_shift)(float *y, const float *x, float shift, int64_t n);
    /* The QAT quantizers' rounding: y_i = s · clamp(rint(x_i / s), −lim, lim), rint to nearest even
     * (nearbyintf in the default mode). Exact, so every ISA gives _ref's bits: lim 1 is the
     * ternary weight grid, lim 127 the int8 activation grid. */
    void (*fake_quant)(float *y, const float *x, float s, float lim, int64_t n);
    /* One AdamW step over n floats, then g = 0 (math in kernels_train_ref.c). No FMA, so every ISA
     * gives _ref's bits. */
    void (*adamw)(float *w, float *m, float *v, float *g, const adamw_consts *c, int64_t n);
} train_kernel_table;

extern const train_kernel_table train_kernels_ref;
extern const train_kernel_table train_kernels_avx2;
extern const train_kernel_table train_kernels_avx512;
/* The table of the same ISA as k (kernels_ref / _avx2 / _avx512). */
const train_kernel_table *train_kernels_for(const kernel_table *k);
/* The table of the same ISA as kernels(). */
const train_kernel_table *train_kernels(void);
/* The variants by name. */
void silu_mul_ref(float *y, const float *g, const float *u, int64_t n);
void silu_mul_bwd_ref(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n);
float exp_sum_ref(const float *x, float shift, int64_t n);
void exp_shift_ref(float *y, const float *x, float shift, int64_t n);
void fake_quant_ref(float *y, const float *x, float s, float lim, int64_t n);
void adamw_ref(float *w, float *m, float *v, float *g, const adamw_consts *c, int64_t n);
void silu_mul_avx2(float *y, const float *g, const float *u, int64_t n);
void silu_mul_bwd_avx2(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n);
float exp_sum_avx2(const float *x, float shift, int64_t n);
void exp_shift_avx2(float *y, const float *x, float shift, int64_t n);
void fake_quant_avx2(float *y, const float *x, float s, float lim, int64_t n);
void adamw_avx2(float *w, float *m, float *v, float *g, const adamw_consts *c, int64_t n);
void silu_mul_avx512(float *y, const float *g, const float *u, int64_t n);
void silu_mul_bwd_avx512(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n);
float exp_sum_avx512(const float *x, float shift, int64_t n);
void exp_shift_avx512(float *y, const float *x, float shift, int64_t n);
void fake_quant_avx512(float *y, const float *x, float s, float lim, int64_t n);
void adamw_avx512(float *w, float *m, float *v, float *g, const adamw_consts *c, int64_t n);

/* The active table (set once at library load by cpu.c; braid_isa_set may lower it). */
const kernel_table *kernels(void);

/* cpu.c: ISA detection behind braid_isa_get/set and braid_system_info.
 * isa is BRAID_ISA_REF / _AVX2 / _AVX512. */
int cpu_isa_available(int32_t isa);       /* 1 if this CPU and OS can run it */
int32_t cpu_isa_active(void);             /* the ISA of kernels() */
int32_t cpu_isa_select(int32_t isa);      /* BRAID_OK or BRAID_ERR_UNSUPPORTED */
const kernel_table *cpu_isa_table(int32_t isa); /* the table of isa (NULL if unknown id) */
const char *cpu_model_name(void);         /* the CPUID brand string, trimmed */

/* Half <-> float conversion helpers for reference paths and loaders. */
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

#endif /* BRAID_KERNELS_H */
