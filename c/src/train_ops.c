/*
 * train_ops.c — forward/backward pairs of the trainer's small layers (train_ops.h).
 *
 * Everything runs on the pool: rows (or channels) split across threads, each
 * output written by one task and every sum taken in a fixed order, so results
 * do not depend on the thread count. On two cores, a single-threaded
 * elementwise op leaves half the machine idle: profiles showed the small ops
 * at ~30% of a step before they were split.
 */
#include "train_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels.h"
#include "sgemm.h"
#include "threadpool.h"

/* ---- BitLinear quantizers ---------------------------------------------------------- */

typedef struct {
    float *y;
    const float *x;
    int64_t cols;
} fq_job;

static void fq_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
    const fq_job *j = arg;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * j->cols;
        float *yr = j->y + r * j->cols;
        for (int64_t b = 0; b < j->cols / BT2_ACT_BLOCK; b++) {
            const float *xb = xr + b * BT2_ACT_BLOCK;
            float amax = 0.0f;
            for (int i = 0; i < BT2_ACT_BLOCK; i++) {
                float a = fabsf(xb[i]);
                amax = a > amax ? a : amax;
            }
            float s = amax > 0.0f ? amax / 127.0f : 1.0f;
            /* quantize_act_ref's rounding; |v| <= 127 by construction */
            train_kernels()->fake_quant(yr + b * BT2_ACT_BLOCK, xb, s, 127.0f, BT2_ACT_BLOCK);
        }
    }
}

void fq_act_rows(float *y, const float *x, int64_t n, int64_t cols) {
    fq_job j = {y, x, cols};
    pool_parallel_for(n, 1, fq_task, &j);
}

/* scale of one 128-group: max(mean |W|, 1e-6) — summed in float in index order, like bt2.ts */
static float group_scale(const float *w) {
    double sum = 0.0;
    for (int j = 0; j < BT2_GROUP; j++) sum += fabs((double)w[j]);
    float s = (float)(sum / BT2_GROUP);
    return s > 1e-6f ? s : 1e-6f;
}

static inline int ternary_of(float w, float scale) {
    float q = nearbyintf(w / scale);
    return q > 1.0f ? 1 : q < -1.0f ? -1 : (int)q;
}

/* ternary_of's grid through the kernel table (libm's nearbyintf per weight was ~5% of a step) */
void fq_weight(float *wq, const float *W, int64_t rows, int64_t cols) {
    const train_kernel_table *kt = train_kernels();
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < cols / BT2_GROUP; g++) {
            const float *wg = W + r * cols + g * BT2_GROUP;
            kt->fake_quant(wq + r * cols + g * BT2_GROUP, wg, group_scale(wg), 1.0f, BT2_GROUP);
        }
}

void bt2_pack_from_float(uint8_t *out, const float *W, int64_t rows, int64_t cols) {
    const int64_t nb = cols / BT2_GROUP;
    float *scales = (float *)(out + rows * (cols / 4));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < nb; g++) {
            const float *wg = W + r * cols + g * BT2_GROUP;
            uint8_t *qs = out + r * (cols / 4) + g * 32;
            float s = group_scale(wg);
            scales[r * nb + g] = s;
            for (int m = 0; m < 32; m++) {
                uint8_t byte = 0;
                for (int k = 0; k < 4; k++) byte |= (uint8_t)((ternary_of(wg[m + 32 * k], s) + 1) << (2 * k));
                qs[m] = byte;
            }
        }
}

/* ---- linear maps -------------------------------------------------------------------------- */

void lin_fwd(float *Y, const float *X, const float *W, int64_t n, int64_t in, int64_t out) {
    sgemm(0, 1, n, out, in, 1.0f, X, in, W, in, 0.0f, Y, out);
}

void lin_bwd(float *dX, int acc, float *dW, const float *dY, const float *X, const float *W, int64_t n, int64_t in,
             int64_t out) {
    if (dX) sgemm(0, 0, n, in, out, 1.0f, dY, out, W, in, acc ? 1.0f : 0.0f, dX, in);
    sgemm(1, 0, out, in, n, 1.0f, dY, out, X, in, 1.0f, dW, in);
}

/* ---- RMSNorm ------------------------------------------------------------------------------ */

typedef struct {
    float *y, *rstd, *dx, *dw;
    const float *x, *w, *dy, *rstd_in;
    int64_t D, n;
    float eps;
} norm_job;

static void rmsnorm_fwd_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
    const norm_job *j = arg;
    const int64_t D = j->D;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * D;
        float *yr = j->y + r * D;
        float ss = 0.0f;
        for (int64_t i = 0; i < D; i++) ss += xr[i] * xr[i];
        float inv = 1.0f / sqrtf(ss / (float)D + j->eps); /* rmsnorm_ref's formula */
        j->rstd[r] = inv;
        for (int64_t i = 0; i < D; i++) yr[i] = j->w ? j->w[i] * (xr[i] * inv) : xr[i] * inv;
    }
}

void rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int64_t n, int64_t D, float eps) {
    norm_job j = {.y = y, .rstd = rstd, .x = x, .w = w, .D = D, .n = n, .eps = eps};
    pool_parallel_for(n, 1, rmsnorm_fwd_task, &j);
}

/* y_i = w_i x_i r, r = (mean x² + ε)^(-1/2):
 *   ∂L/∂x_j = r w_j dy_j − (r³/D) x_j Σ_i w_i dy_i x_i     (rows in parallel)
 *   ∂L/∂w_i = Σ_rows dy_i x_i r                            (columns in parallel: each sum in row order) */
static void rmsnorm_dx_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
    const norm_job *j = arg;
    const int64_t D = j->D;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * D, *dyr = j->dy + r * D;
        float *dxr = j->dx + r * D;
        const float inv = j->rstd_in[r];
        float dot = 0.0f;
        for (int64_t i = 0; i < D; i++) dot += (j->w ? j->w[i] : 1.0f) * dyr[i] * xr[i];
        const float c = inv * inv * inv * dot / (float)D;
        for (int64_t i = 0; i < D; i++) dxr[i] += inv * (j->w ? j->w[i] : 1.0f) * dyr[i] - c * xr[i];
    }
}

static void rmsnorm_dw_task(void *arg, int64_t c0, int64_t c1, int32_t thread) {
    const norm_job *j = arg;
    for (int64_t r = 0; r < j->n; r++) {
        const float *xr = j->x + r * j->D, *dyr = j->dy + r * j->D;
        const float inv = j->rstd_in[r];
        for (int64_t i = c0; i < c1; i++) j->dw[i] += dyr[i] * xr[i] * inv;
    }
}

void rmsnorm_bwd(float *dx_acc, float *dw, const float *dy, const float *x, const float *rstd, const float *w,
                 int64_t n, int64_t D) {
    norm_job j = {.dx = dx_acc, .dw = dw, .x = x, .w = w, .dy = dy, .rstd_in = rstd, .D = D, .n = n};
    pool_parallel_for(n, 1, rmsnorm_dx_task, &j);
    if (dw) pool_parallel_for(D, 16, rmsnorm_dw_task, &j);
}

/* ---- SwiGLU gate ------------------------------------------------------------------------------ */

typedef struct {
    const float *gate, *up, *dh;
    float *h, *dgate, *dup;
} swiglu_job;

/* The exponentials run in the kernel table's vector e^x: with libm's scalar expf, the SiLUs of the
 * convs and SwiGLUs were ~10% of a step on the default model. */
static void swiglu_fwd_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    const swiglu_job *j = arg;
    train_kernels()->silu_mul(j->h + i0, j->gate + i0, j->up + i0, i1 - i0);
}

/* d/dg SiLU(g) = σ(g)(1 + g(1 − σ(g))) */
static void swiglu_bwd_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    const swiglu_job *j = arg;
    train_kernels()->silu_mul_bwd(j->dgate + i0, j->dup + i0, j->dh + i0, j->gate + i0, j->up + i0, i1 - i0);
}

void swiglu_fwd(float *h, const float *gate, const float *up, int64_t n) {
    swiglu_job j = {.gate = gate, .up = up, .h = h};
    pool_parallel_for(n, 256, swiglu_fwd_task, &j);
}

void swiglu_bwd(float *dgate, float *dup, const float *dh, const float *gate, const float *up, int64_t n) {
    swiglu_job j = {.gate = gate, .up = up, .dh = dh, .dgate = dgate, .dup = dup};
    pool_parallel_for(n, 256, swiglu_bwd_task, &j);
}

/* ---- causal depthwise conv ------------------------------------------------------------------ */

typedef struct {
    float *z, *y, *dx, *dw;
    const float *x, *w, *dy, *zin;
    int64_t B, T, C, K;
} conv_job;

/* A task walks its channels in blocks of CONV_CB with the block's taps transposed to [K, CONV_CB], so
 * every row's inner loops run over contiguous channels and vectorize; each output is still summed
 * over k in the same order as the one-channel-at-a-time loop (same bits). K <= 64 (the loader's
 * range for chimera.gdn.conv_kernel). */
#define CONV_CB 64
#define CONV_KMAX 64

__attribute__((optimize("vect-cost-model=dynamic"))) static void conv_fwd_task(void *arg, int64_t c0, int64_t c1, int32_t thread) {
    const conv_job *j = arg;
    const train_kernel_table *kt = train_kernels();
    const int64_t C = j->C, K = j->K, T = j->T;
    float wt[CONV_KMAX * CONV_CB]; /* [K, CONV_CB] */
    for (int64_t cb = c0; cb < c1; cb += CONV_CB) {
        const int64_t nc = BRAID_MIN(CONV_CB, c1 - cb);
        for (int64_t k = 0; k < K; k++)
            for (int64_t c = 0; c < nc; c++) wt[k * CONV_CB + c] = j->w[(cb + c) * K + k];
        for (int64_t b = 0; b < j->B; b++)
            for (int64_t t = 0; t < T; t++) {
                float *z = j->z + (b * T + t) * C + cb;
                for (int64_t c = 0; c < nc; c++) z[c] = 0.0f;
                for (int64_t k = 0; k < K; k++) {
                    const int64_t s = t - (K - 1) + k; /* source position inside this sequence */
                    if (s < 0) continue;
                    const float *xs = j->x + (b * T + s) * C + cb, *wk = wt + k * CONV_CB;
                    for (int64_t c = 0; c < nc; c++) z[c] += wk[c] * xs[c];
                }
                kt->silu_mul(j->y + (b * T + t) * C + cb, z, NULL, nc);
            }
    }
}

void conv_fwd(float *z, float *y, const float *x, const float *w, int64_t B, int64_t T, int64_t C, int64_t K) {
    conv_job j = {.z = z, .y = y, .x = x, .w = w, .B = B, .T = T, .C = C, .K = K};
    pool_parallel_for(C, 16, conv_fwd_task, &j);
}

/* Channels in parallel: a task owns its channels' dw rows and dx columns. Blocks of CONV_CB channels
 * as in the forward, dw accumulated in a transposed copy; every dw and dx element receives its terms
 * in the same order as the one-channel loop (rows ascending), so the bits are the same. */
__attribute__((optimize("vect-cost-model=dynamic"))) static void conv_bwd_task(void *arg, int64_t c0, int64_t c1, int32_t thread) {
    const conv_job *j = arg;
    const train_kernel_table *kt = train_kernels();
    const int64_t C = j->C, K = j->K, T = j->T;
    float wt[CONV_KMAX * CONV_CB], dwt[CONV_KMAX * CONV_CB], dz[CONV_CB]; /* [K, CONV_CB], [CONV_CB] */
    for (int64_t cb = c0; cb < c1; cb += CONV_CB) {
        const int64_t nc = BRAID_MIN(CONV_CB, c1 - cb);
        for (int64_t k = 0; k < K; k++)
            for (int64_t c = 0; c < nc; c++) {
                wt[k * CONV_CB + c] = j->w[(cb + c) * K + k];
                dwt[k * CONV_CB + c] = j->dw[(cb + c) * K + k];
            }
        for (int64_t row = 0; row < j->B * T; row++)
            for (int64_t c = 0; c < nc; c++) j->dx[row * C + cb + c] = 0.0f;
        for (int64_t b = 0; b < j->B; b++)
            for (int64_t t = 0; t < T; t++) {
                const int64_t row = b * T + t;
                kt->silu_mul_bwd(dz, NULL, j->dy + row * C + cb, j->zin + row * C + cb, NULL, nc);
                for (int64_t k = 0; k < K; k++) {
                    const int64_t s = t - (K - 1) + k;
                    if (s < 0) continue;
                    const float *xs = j->x + (b * T + s) * C + cb, *wk = wt + k * CONV_CB;
                    float *dxs = j->dx + (b * T + s) * C + cb, *dwk = dwt + k * CONV_CB;
                    for (int64_t c = 0; c < nc; c++) {
                        dwk[c] += dz[c] * xs[c];
                        dxs[c] += dz[c] * wk[c];
                    }
                }
            }
        for (int64_t k = 0; k < K; k++)
            for (int64_t c = 0; c < nc; c++) j->dw[(cb + c) * K + k] = dwt[k * CONV_CB + c];
    }
}

void conv_bwd(float *dx, float *dw, const float *dy, const float *z, const float *x, const float *w, int64_t B,
              int64_t T, int64_t C, int64_t K) {
    conv_job j = {.dx = dx, .dw = dw, .dy = dy, .zin = z, .x = x, .w = w, .B = B, .T = T, .C = C, .K = K};
    pool_parallel_for(C, 16, conv_bwd_task, &j);
}

/* ---- cross-entropy ---------------------------------------------------------------------------- */

typedef struct {
    float *logits;
    const int32_t *targets;
    int64_t V;
    double *row_loss; /* [n] */
    int backward;
} xent_job;

static void xent_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
    const xent_job *j = arg;
    const train_kernel_table *kt = train_kernels();
    for (int64_t r = r0; r < r1; r++) {
        float *lr = j->logits + r * j->V;
        int32_t tgt = j->targets[r];
        if (tgt < 0) {
            j->row_loss[r] = 0.0;
            if (j->backward) memset(lr, 0, sizeof(float) * (size_t)j->V);
            continue;
        }
        float mx = lr[0];
        for (int64_t i = 1; i < j->V; i++) mx = lr[i] > mx ? lr[i] : mx;
        /* e^x in the kernel table's float vector exp (double libm exp was ~5% of a step on a
         * 4096-vocab head); the loss itself is still formed in double */
        const double lse = (double)mx + log((double)kt->exp_sum(lr, mx, j->V));
        j->row_loss[r] = lse - (double)lr[tgt];
        if (j->backward) {
            kt->exp_shift(lr, lr, (float)lse, j->V);
            lr[tgt] -= 1.0f;
        }
    }
}

double xent_fwd_bwd(float *logits, const int32_t *targets, int64_t n, int64_t V, int64_t *count, int backward) {
    double *row_loss = malloc(sizeof(double) * (size_t)n);
    if (!row_loss) return NAN;
    xent_job j = {logits, targets, V, row_loss, backward};
    pool_parallel_for(n, 1, xent_task, &j);
    double total = 0.0;
    int64_t c = 0;
    for (int64_t r = 0; r < n; r++)
        if (targets[r] >= 0) {
            total += row_loss[r];
            c++;
        }
    free(row_loss);
    *count = c;
    return total;
}
