/*
 * train_ffn.c — SwiGLU forward and backward for training (train_ffn.h); the
 * forward is ffn.c's: one quantization of the normed input feeds gate and up,
 * the product is quantized again for down.
 */
#include "train_ffn.h"

#include <string.h>

#include "threadpool.h"
#include "train_ops.h"

/* QAT: the quantizer's values; plain FP32 mode: a copy. */
static void act_quant(const braid_trainer *tr, float *y, const float *x, int64_t n, int64_t cols) {
    if (tr->quant)
        fq_act_rows(y, x, n, cols);
    else
        memcpy(y, x, sizeof(float) * (size_t)(n * cols));
}

typedef struct {
    const float *gate, *up, *dh;
    float *h, *dgate, *dup;
} swiglu_job;

static void swiglu_fwd_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    const swiglu_job *j = arg;
    for (int64_t i = i0; i < i1; i++) j->h[i] = tsilu(j->gate[i]) * j->up[i];
}

/* h = SiLU(gate) ⊙ up */
static void swiglu_bwd_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    const swiglu_job *j = arg;
    for (int64_t i = i0; i < i1; i++) {
        float s = 1.0f / (1.0f + expf(-j->gate[i]));
        j->dgate[i] = j->dh[i] * j->up[i] * s * (1.0f + j->gate[i] * (1.0f - s));
        j->dup[i] = j->dh[i] * j->gate[i] * s;
    }
}

void train_ffn_fwd(braid_trainer *tr, const tblock *bl, tacts *a, float *y, int64_t N) {
    const int64_t D = tr->hp.n_embd, I = tr->hp.n_ff;
    lin_fwd(a->gate, a->xq_f, tp_fw(tr, bl->gate), N, D, I);
    lin_fwd(a->up, a->xq_f, tp_fw(tr, bl->up), N, D, I);
    swiglu_job j = {.gate = a->gate, .up = a->up, .h = a->h};
    pool_parallel_for(N * I, 256, swiglu_fwd_task, &j);
    act_quant(tr, a->hq, a->h, N, I);
    lin_fwd(y, a->hq, tp_fw(tr, bl->down), N, I, D);
}

void train_ffn_bwd(braid_trainer *tr, const tblock *bl, const tacts *a, float *dxn, const float *dy, int64_t N) {
    const int64_t D = tr->hp.n_embd, I = tr->hp.n_ff;
    tgrads *gr = &tr->gr;
    lin_bwd(gr->dh, 0, tp_g(tr, bl->down), dy, a->hq, tp_fw(tr, bl->down), N, I, D);
    swiglu_job j = {.gate = a->gate, .up = a->up, .dh = gr->dh, .dgate = gr->dgate, .dup = gr->dup};
    pool_parallel_for(N * I, 256, swiglu_bwd_task, &j);
    lin_bwd(dxn, 0, tp_g(tr, bl->gate), gr->dgate, a->xq_f, tp_fw(tr, bl->gate), N, D, I);
    lin_bwd(dxn, 1, tp_g(tr, bl->up), gr->dup, a->xq_f, tp_fw(tr, bl->up), N, D, I);
}
