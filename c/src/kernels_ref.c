/*
 * kernels_ref.c — the scalar reference kernels: the definition of correct.
 * Plain loops, float accumulation in index order, no intrinsics. SIMD tables
 * are tested against these (c/test/test_kernels.c).
 */
#include <math.h>

#include "common.h"
#include "kernels.h"

/* ---- dense FP32 / FP16 -------------------------------------------------- */

void gemv_f32_ref(float *y, const float *W, const float *x, int64_t cols, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const float *w = W + r * cols; /* [cols] */
        float acc = 0.0f;
        for (int64_t j = 0; j < cols; j++) acc += w[j] * x[j];
        y[r] = acc;
    }
}

void gemm_f32_ref(float *Y, int64_t ldy, const float *W, const float *X, int64_t n, int64_t cols, int64_t r0,
                         int64_t r1) {
    for (int64_t t = 0; t < n; t++) gemv_f32_ref(Y + t * ldy, W, X + t * cols, cols, r0, r1);
}

void gemv_f16_ref(float *y, const uint16_t *W, const float *x, int64_t cols, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *w = W + r * cols; /* [cols] */
        float acc = 0.0f;
        for (int64_t j = 0; j < cols; j++) acc += half_to_float(w[j]) * x[j];
        y[r] = acc;
    }
}

void gemm_f16_ref(float *Y, int64_t ldy, const uint16_t *W, const float *X, int64_t n, int64_t cols, int64_t r0,
                         int64_t r1) {
    for (int64_t t = 0; t < n; t++) gemv_f16_ref(Y + t * ldy, W, X + t * cols, cols, r0, r1);
}

/* ---- ternary BT2 ----------------------------------------------------------- */

void quantize_act_ref(act_q8 a, const float *x, int64_t cols) {
    for (int64_t b = 0; b < cols / BT2_ACT_BLOCK; b++) {
        const float *xb = x + b * BT2_ACT_BLOCK; /* [64] */
        float amax = 0.0f;
        for (int j = 0; j < BT2_ACT_BLOCK; j++) amax = fmaxf(amax, fabsf(xb[j]));
        float s = amax > 0.0f ? amax / 127.0f : 1.0f;
        int32_t sum = 0;
        for (int j = 0; j < BT2_ACT_BLOCK; j++) {
            float v = nearbyintf(xb[j] / s); /* round half to even under the default mode */
            v = fminf(fmaxf(v, -127.0f), 127.0f);
            a.q[b * BT2_ACT_BLOCK + j] = (int8_t)v;
            sum += (int8_t)v;
        }
        a.s[b] = s;
        a.sum[b] = sum;
    }
}

/* Weight j (0..127) of a 32-byte BT2 group, in {-1, 0, +1}. */
static inline int bt2_weight(const uint8_t *group, int j) { return ((group[j & 31] >> (2 * (j >> 5))) & 3) - 1; }

/* y = dot of BT2 row r with activation a (see kernels.h for the formula). */
static float bt2_row_dot(const uint8_t *W, int64_t rows, int64_t cols, act_q8 a, int64_t r) {
    int64_t nb = cols / BT2_GROUP;
    const uint8_t *qs = W + r * (cols / 4);            /* [nb][32] */
    const float *scale = bt2_scales(W, rows, cols) + r * nb; /* [nb] */
    float y = 0.0f;
    for (int64_t g = 0; g < nb; g++) {
        const uint8_t *grp = qs + g * 32;
        float acc = 0.0f;
        for (int h = 0; h < 2; h++) {
            int64_t b = 2 * g + h;
            const int8_t *q = a.q + b * BT2_ACT_BLOCK;
            int32_t isum = 0;
            for (int j = 0; j < BT2_ACT_BLOCK; j++) isum += q[j] * bt2_weight(grp, 64 * h + j);
            acc += a.s[b] * (float)isum;
        }
        y += scale[g] * acc;
    }
    return y;
}

void gemv_bt2_ref(float *y, const uint8_t *W, int64_t rows, int64_t cols, act_q8 a, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) y[r] = bt2_row_dot(W, rows, cols, a, r);
}

void gemm_bt2_ref(float *Y, int64_t ldy, const uint8_t *W, int64_t rows, int64_t cols, const act_q8 *a,
                         int64_t n, int64_t r0, int64_t r1) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = r0; r < r1; r++) Y[t * ldy + r] = bt2_row_dot(W, rows, cols, a[t], r);
}

/* ---- element-wise --------------------------------------------------------- */

void rmsnorm_ref(float *y, const float *x, const float *w, int64_t n, float eps) {
    float ss = 0.0f;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (int64_t i = 0; i < n; i++) y[i] = w ? w[i] * (x[i] * inv) : x[i] * inv;
}

void l2norm_ref(float *y, const float *x, int64_t n, float scale) {
    float ss = 0.0f;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    float k = scale / fmaxf(sqrtf(ss), 1e-12f);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * k;
}

static inline float silu1(float v) { return v / (1.0f + expf(-v)); }

void silu_ref(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = silu1(x[i]);
}

void swiglu_ref(float *y, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = silu1(g[i]) * u[i];
}

void softmax_ref(float *x, int64_t n) {
    if (n <= 0) return;
    float m = x[0];
    for (int64_t i = 1; i < n; i++) m = fmaxf(m, x[i]);
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void conv1d_causal_ref(float *y, float *tail, const float *x, const float *w, int64_t n, int64_t ch, int64_t ld,
                       int64_t k) {
    /* xx row i: tail row i for i < k-1, else x row i-(k-1). */
    for (int64_t t = 0; t < n; t++) {
        for (int64_t c = 0; c < ch; c++) {
            float acc = 0.0f;
            for (int64_t j = 0; j < k; j++) {
                int64_t i = t + j; /* xx row */
                float v = i < k - 1 ? tail[i * ld + c] : x[(i - (k - 1)) * ld + c];
                acc += w[c * k + j] * v;
            }
            y[t * ld + c] = silu1(acc);
        }
    }
    /* New tail = xx rows n .. n+k-2. Reading row n+i >= i, so forward in-place order is safe. */
    for (int64_t i = 0; i < k - 1; i++) {
        int64_t src = n + i;
        for (int64_t c = 0; c < ch; c++)
            tail[i * ld + c] = src < k - 1 ? tail[src * ld + c] : x[(src - (k - 1)) * ld + c];
    }
}

void delta_step_ref(float *o, float *S, const float *P, const float *q, const float *k, const float *v, float beta,
                    float alpha, int64_t d_k, int64_t d_v) {
    for (int64_t i = 0; i < d_v; i++) {
        float *Si = S + i * d_k; /* row i of S: [d_k] */
        const float *Pi = P + i * d_k;
        float sk = 0.0f;
        for (int64_t j = 0; j < d_k; j++) sk += Pi[j] * k[j];
        float delta = beta * (v[i] - alpha * sk);
        float sq = 0.0f;
        for (int64_t j = 0; j < d_k; j++) {
            Si[j] = alpha * Pi[j] + delta * k[j];
            sq += Si[j] * q[j];
        }
        o[i] = sq;
    }
}

void rows_axpy_ref(float *y, const float *w, const float *V, int64_t n, int64_t d) {
    for (int64_t i = 0; i < n; i++) {
        const float wi = w[i], *Vi = V + i * d; /* row i: [d] */
        for (int64_t c = 0; c < d; c++) y[c] += wi * Vi[c];
    }
}

void outer_momentum_ref(float *S, float *M, const float *u, const float *v, int64_t m, int64_t n, float eta, float theta,
                        float keep) {
    for (int64_t a = 0; a < m; a++) {
        float *Sa = S + a * n, *Ma = M + a * n; /* row a: [n] */
        for (int64_t b = 0; b < n; b++) {
            Sa[b] = eta * Sa[b] - theta * (u[a] * v[b]);
            Ma[b] = keep * Ma[b] + Sa[b];
        }
    }
}

const kernel_table kernels_ref = {
    .name = "ref",
    .gemv_f32 = gemv_f32_ref,
    .gemm_f32 = gemm_f32_ref,
    .gemv_f16 = gemv_f16_ref,
    .gemm_f16 = gemm_f16_ref,
    .quantize_act = quantize_act_ref,
    .gemv_bt2 = gemv_bt2_ref,
    .gemm_bt2 = gemm_bt2_ref,
    .rmsnorm = rmsnorm_ref,
    .l2norm = l2norm_ref,
    .silu = silu_ref,
    .swiglu = swiglu_ref,
    .softmax = softmax_ref,
    .conv1d_causal = conv1d_causal_ref,
    .delta_step = delta_step_ref,
    .rows_axpy = rows_axpy_ref,
    .outer_momentum = outer_momentum_ref,
    .delta_step_bwd = delta_step_bwd_ref,
};
