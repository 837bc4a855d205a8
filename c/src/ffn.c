/*
 * ffn.c — BitLinear batches and the SwiGLU MLP (ARCHITECTURES.md §2.2, §2.3).
 *
 * BitLinear (§2.2, CFG mode): each token row is quantized once to int8 in
 * 64-blocks (kernels.h), then every ternary matrix that reads that row runs
 * gemm_bt2 (gemv_bt2 for a single token). Threads split output rows, so each
 * output element is computed by exactly one thread in a fixed order: results
 * do not depend on the thread count.
 */
#include "ffn.h"

#include "common.h"
#include "threadpool.h"

/* ---- quantize rows ----------------------------------------------------------- */

typedef struct {
    act_q8 *act;
    const float *x;
    int64_t cols;
} quant_job;

static void quant_task(void *arg, int64_t t0, int64_t t1, int32_t thread) {
    const quant_job *j = arg;
    const kernel_table *kt = kernels();
    for (int64_t t = t0; t < t1; t++) kt->quantize_act(j->act[t], j->x + t * j->cols, j->cols);
}

void linear_quantize(act_q8 *act, const float *x, int64_t T, int64_t cols) {
    quant_job j = {act, x, cols};
    if (T == 1) {
        quant_task(&j, 0, 1, 0);
        return;
    }
    pool_parallel_for(T, 1, quant_task, &j);
}

/* ---- run linears ------------------------------------------------------------- */

void fmat_mul(float *Y, int64_t ldy, fmat W, const float *X, int64_t n, int64_t cols, int64_t r0, int64_t r1) {
    const kernel_table *kt = kernels();
    if (W.type == GGML_TYPE_F16) {
        if (n == 1)
            kt->gemv_f16(Y, W.data, X, cols, r0, r1);
        else
            kt->gemm_f16(Y, ldy, W.data, X, n, cols, r0, r1);
    } else {
        if (n == 1)
            kt->gemv_f32(Y, W.data, X, cols, r0, r1);
        else
            kt->gemm_f32(Y, ldy, W.data, X, n, cols, r0, r1);
    }
}

typedef struct {
    const linear_op *ops;
    int n_ops;
    const act_q8 *act;
    const float *x;
    int64_t T, cols;
} linear_job;

/* Global row range [i0, i1) over the concatenated rows of all ops. */
static void linear_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    const linear_job *j = arg;
    const kernel_table *kt = kernels();
    int64_t base = 0;
    for (int o = 0; o < j->n_ops; o++) {
        const linear_op *op = &j->ops[o];
        int64_t r0 = BRAID_MAX(i0 - base, 0), r1 = BRAID_MIN(i1 - base, op->rows);
        base += op->rows;
        if (r0 >= r1) continue;
        if (op->bt2) {
            if (j->T == 1)
                kt->gemv_bt2(op->y, op->bt2, op->rows, j->cols, j->act[0], r0, r1);
            else
                kt->gemm_bt2(op->y, op->ldy, op->bt2, op->rows, j->cols, j->act, j->T, r0, r1);
        } else {
            fmat_mul(op->y, op->ldy, op->fm, j->x, j->T, j->cols, r0, r1);
        }
    }
}

/* Below this many weight bytes (times tokens) a linear batch runs on the calling thread: waking
 * the pool and waiting for it costs about what reading them does (a few microseconds). */
#define LINEAR_POOL_MIN_BYTES (48 << 10)

static int64_t op_weight_bytes(const linear_op *op, int64_t cols) {
    if (op->bt2) return (int64_t)bt2_bytes(op->rows, cols);
    return op->rows * cols * (op->fm.type == GGML_TYPE_F16 ? 2 : 4);
}

void linear_run(const linear_op *ops, int n_ops, const act_q8 *act, const float *x, int64_t T, int64_t cols) {
    int64_t rows = 0, bytes = 0;
    for (int o = 0; o < n_ops; o++) rows += ops[o].rows, bytes += op_weight_bytes(&ops[o], cols);
    linear_job j = {ops, n_ops, act, x, T, cols};
    if (bytes * T < LINEAR_POOL_MIN_BYTES)
        linear_task(&j, 0, rows, 0); /* every row computed as in the pool: the same bits */
    else
        pool_parallel_for_dynamic(rows, 16, linear_task, &j);
}

typedef struct {
    const linear_op *ops;
    int n_ops;
    const act_q8 *act;
    const int64_t *cols;
} linear_rows_job;

static void linear_rows_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    const linear_rows_job *j = arg;
    const kernel_table *kt = kernels();
    int64_t base = 0;
    for (int o = 0; o < j->n_ops; o++) {
        const linear_op *op = &j->ops[o];
        int64_t r0 = BRAID_MAX(i0 - base, 0), r1 = BRAID_MIN(i1 - base, op->rows);
        base += op->rows;
        if (r0 < r1) kt->gemv_bt2(op->y, op->bt2, op->rows, j->cols[o], j->act[o], r0, r1);
    }
}

void linear_run_rows(const linear_op *ops, int n_ops, const act_q8 *act, const int64_t *cols) {
    int64_t rows = 0;
    for (int o = 0; o < n_ops; o++) rows += ops[o].rows;
    linear_rows_job j = {ops, n_ops, act, cols};
    pool_parallel_for_dynamic(rows, 16, linear_rows_task, &j);
}

/* ---- SwiGLU ------------------------------------------------------------------ */

typedef struct {
    float *gate;
    const float *up;
    int64_t I;
} swiglu_job;

static void swiglu_task(void *arg, int64_t t0, int64_t t1, int32_t thread) {
    const swiglu_job *j = arg;
    const kernel_table *kt = kernels();
    for (int64_t t = t0; t < t1; t++) kt->swiglu(j->gate + t * j->I, j->gate + t * j->I, j->up + t * j->I, j->I);
}

void swiglu_rows(float *gate, const float *up, int64_t T, int64_t I) {
    swiglu_job sj = {gate, up, I};
    if (T == 1)
        swiglu_task(&sj, 0, 1, 0); /* one row: not worth waking the pool */
    else
        pool_parallel_for(T, 1, swiglu_task, &sj);
}

void ffn_forward(float *y, const float *xn, const ffn_weights *w, int64_t T, int64_t D, int64_t I, float *gate,
                 float *up, act_q8 *act) {
    /* gate = W_gate xn, up = W_up xn: both read the same quantized rows */
    linear_quantize(act, xn, T, D);
    linear_op in[2] = {
        {.y = gate, .ldy = I, .bt2 = w->gate, .rows = I},
        {.y = up, .ldy = I, .bt2 = w->up, .rows = I},
    };
    linear_run(in, 2, act, xn, T, D);
    swiglu_rows(gate, up, T, I);
    /* y = W_down gate */
    linear_quantize(act, gate, T, I);
    linear_op out = {.y = y, .ldy = D, .bt2 = w->down, .rows = D};
    linear_run(&out, 1, act, gate, T, I);
}
