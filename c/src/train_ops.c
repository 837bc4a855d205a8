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

/* The dynamic cost model lets -O2 vectorize the elementwise loops; the sums of squares and dots
 * stay serial (GCC does not reorder float reductions without -ffast-math), so the bits are kept. */

typedef struct {
    float *y, *rstd, *dx, *dw;
    const float *x, *w, *dy, *rstd_in;
    int64_t D, n;
    float eps;
} norm_job;

__attribute__((optimize("vect-cost-model=dynamic"))) static void rmsnorm_fwd_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
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
__attribute__((optimize("vect-cost-model=dynamic"))) static void rmsnorm_dx_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
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

__attribute__((optimize("vect-cost-model=dynamic"))) static void rmsnorm_dw_task(void *arg, int64_t c0, int64_t c1, int32_t thread) {
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

/* The forward and dx split rows across the pool, so a task reads and writes whole row segments in
 * row order; the dw sums split channels. A profile of the default model's step had the older
 * version (every task striding through all T rows for a block of channels, with one SiLU call per
 * row and block) at ~7% of a step. Taps are transposed per block of CONV_CB channels into a stack
 * buffer [K, CONV_CB] so the inner loops run over contiguous channels and vectorize. Every output
 * receives its terms in the order of the one-channel loop (the forward over ascending k, dx and dw
 * over ascending t), so the bits depend on neither the split nor the thread count. K <= 64 (the
 * loader's range for chimera.gdn.conv_kernel). */
#define CONV_CB 128
#define CONV_KMAX 64

typedef struct {
    float *z, *y, *dx, *dw, *dz;
    const float *x, *w, *dy, *zin;
    int64_t B, T, C, K;
} conv_job;

/* wt[k·CONV_CB + c] = w[(cb + c)·K + k] for the block's nc channels */
static void conv_taps_block(float *wt, const float *w, int64_t cb, int64_t nc, int64_t K) {
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < nc; c++) wt[k * CONV_CB + c] = w[(cb + c) * K + k];
}

__attribute__((optimize("vect-cost-model=dynamic"))) static void conv_fwd_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
    const conv_job *j = arg;
    const train_kernel_table *kt = train_kernels();
    const int64_t C = j->C, K = j->K, T = j->T;
    float wt[CONV_KMAX * CONV_CB];
    for (int64_t cb = 0; cb < C; cb += CONV_CB) {
        const int64_t nc = BRAID_MIN(CONV_CB, C - cb);
        conv_taps_block(wt, j->w, cb, nc, K);
        for (int64_t row = r0; row < r1; row++) {
            const int64_t t = row % T;
            float *z = j->z + row * C + cb;
            for (int64_t c = 0; c < nc; c++) z[c] = 0.0f;
            for (int64_t k = 0; k < K; k++) {
                if (t - (K - 1) + k < 0) continue; /* before the start of this sequence */
                const float *xs = j->x + (row - (K - 1) + k) * C + cb, *wk = wt + k * CONV_CB;
                for (int64_t c = 0; c < nc; c++) z[c] += wk[c] * xs[c];
            }
            kt->silu_mul(j->y + row * C + cb, z, NULL, nc);
        }
    }
}

void conv_fwd(float *z, float *y, const float *x, const float *w, int64_t B, int64_t T, int64_t C, int64_t K) {
    conv_job j = {.z = z, .y = y, .x = x, .w = w, .B = B, .T = T, .C = C, .K = K};
    pool_parallel_for(B * T, 1, conv_fwd_task, &j);
}

/* dz = dy ⊙ SiLU'(z) */
static void conv_dz_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
    const conv_job *j = arg;
    const int64_t C = j->C;
    train_kernels()->silu_mul_bwd(j->dz + r0 * C, NULL, j->dy + r0 * C, j->zin + r0 * C, NULL, (r1 - r0) * C);
}

/* dx_s = Σ_k w[:, k] ⊙ dz_{s+K−1−k}: terms in ascending t = s+K−1−k, i.e. descending k */
__attribute__((optimize("vect-cost-model=dynamic"))) static void conv_dx_task(void *arg, int64_t r0, int64_t r1, int32_t thread) {
    const conv_job *j = arg;
    const int64_t C = j->C, K = j->K, T = j->T;
    float wt[CONV_KMAX * CONV_CB];
    for (int64_t cb = 0; cb < C; cb += CONV_CB) {
        const int64_t nc = BRAID_MIN(CONV_CB, C - cb);
        conv_taps_block(wt, j->w, cb, nc, K);
        for (int64_t row = r0; row < r1; row++) {
            const int64_t s = row % T;
            float *dx = j->dx + row * C + cb;
            for (int64_t c = 0; c < nc; c++) dx[c] = 0.0f;
            for (int64_t k = K - 1; k >= 0; k--) {
                if (s + (K - 1) - k >= T) continue; /* past the end of this sequence */
                const float *dz = j->dz + (row + (K - 1) - k) * C + cb, *wk = wt + k * CONV_CB;
                for (int64_t c = 0; c < nc; c++) dx[c] += dz[c] * wk[c];
            }
        }
    }
}

/* dw[c, k] += Σ_t dz_t[c] x_{t−K+1+k}[c], rows ascending: a task owns its channels' dw rows */
__attribute__((optimize("vect-cost-model=dynamic"))) static void conv_dw_task(void *arg, int64_t c0, int64_t c1, int32_t thread) {
    const conv_job *j = arg;
    const int64_t C = j->C, K = j->K, T = j->T;
    float dwt[CONV_KMAX * CONV_CB];
    for (int64_t cb = c0; cb < c1; cb += CONV_CB) {
        const int64_t nc = BRAID_MIN(CONV_CB, c1 - cb);
        conv_taps_block(dwt, j->dw, cb, nc, K);
        for (int64_t row = 0; row < j->B * T; row++) {
            const int64_t t = row % T;
            const float *dz = j->dz + row * C + cb;
            for (int64_t k = 0; k < K; k++) {
                if (t - (K - 1) + k < 0) continue;
                const float *xs = j->x + (row - (K - 1) + k) * C + cb;
                float *dwk = dwt + k * CONV_CB;
                for (int64_t c = 0; c < nc; c++) dwk[c] += dz[c] * xs[c];
            }
        }
        for (int64_t k = 0; k < K; k++)
            for (int64_t c = 0; c < nc; c++) j->dw[(cb + c) * K + k] = dwt[k * CONV_CB + c];
    }
}

void conv_bwd(float *dx, float *dw, float *dy, const float *z, const float *x, const float *w, int64_t B, int64_t T,
              int64_t C, int64_t K) {
    /* dz overwrites dy: the caller's gradient scratch, read by nothing after this */
    conv_job j = {.dx = dx, .dw = dw, .dz = dy, .dy = dy, .zin = z, .x = x, .w = w, .B = B, .T = T, .C = C, .K = K};
    pool_parallel_for(B * T, 1, conv_dz_task, &j);
    pool_parallel_for(B * T, 1, conv_dx_task, &j);
    pool_parallel_for(C, 16, conv_dw_task, &j);
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
