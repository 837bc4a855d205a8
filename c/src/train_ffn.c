/*
 * train_ffn.c — the SwiGLU MLP for training (ARCHITECTURES.md §2.3), forward
 * and backward, as the layer kind train_ffn_ops:
 *   y = W_down q(SiLU(W_gate q(x)) ⊙ W_up q(x)),  q = the int8 activation quantizer
 * under QAT (straight through in backward). The forward is ffn.c's: one
 * quantization of the normed input feeds gate and up, the product is
 * quantized again for down.
 */
#include <math.h>
#include <string.h>

#include "common.h"
#include "threadpool.h"
#include "train.h"
#include "train_ops.h"

typedef struct {
    int32_t gate, up, down;
} ffn_params;

typedef struct {
    float *gate, *up; /* [N, I] */
    float *h, *hq;    /* [N, I] SiLU(gate) ⊙ up and its fake-quantized copy */
} ffn_acts;

static void fwd(braid_trainer *tr, const void *params, void *acts, const float *xn, const float *xq, float *y,
                int64_t B, int64_t T) {
    const ffn_params *p = params;
    ffn_acts *a = acts;
    const int64_t N = B * T, D = tr->hp.n_embd, I = tr->hp.n_ff;
    lin_fwd(a->gate, xq, tp_fw(tr, p->gate), N, D, I);
    lin_fwd(a->up, xq, tp_fw(tr, p->up), N, D, I);
    swiglu_fwd(a->h, a->gate, a->up, N * I);
    train_act_quant(tr, a->hq, a->h, N, I);
    lin_fwd(y, a->hq, tp_fw(tr, p->down), N, I, D);
}

static void bwd(braid_trainer *tr, const void *params, const void *acts, const float *xn, const float *xq, float *dxn,
                const float *dy, int64_t B, int64_t T) {
    const ffn_params *p = params;
    const ffn_acts *a = acts;
    const int64_t N = B * T, D = tr->hp.n_embd, I = tr->hp.n_ff;
    float *dh = tr->gscratch, *dgate = dh + N * I, *dup = dgate + N * I; /* [N, I] each */
    lin_bwd(dh, 0, tp_g(tr, p->down), dy, a->hq, tp_fw(tr, p->down), N, I, D);
    swiglu_bwd(dgate, dup, dh, a->gate, a->up, N * I);
    lin_bwd(dxn, 0, tp_g(tr, p->gate), dgate, xq, tp_fw(tr, p->gate), N, D, I);
    lin_bwd(dxn, 1, tp_g(tr, p->up), dup, xq, tp_fw(tr, p->up), N, D, I);
}

static int32_t bind(braid_trainer *tr, int32_t il, void *params) {
    ffn_params *p = params;
    int32_t st = train_find_block_param(tr, il, "ffn_gate.weight", &p->gate);
    if (!st) st = train_find_block_param(tr, il, "ffn_up.weight", &p->up);
    if (!st) st = train_find_block_param(tr, il, "ffn_down.weight", &p->down);
    return st;
}

static void layout(const braid_trainer *tr, float *base, int64_t *c, int64_t B, int64_t T, void *acts) {
    ffn_acts *a = acts;
    const int64_t N = B * T, I = tr->hp.n_ff;
    a->gate = train_carve(base, c, N * I);
    a->up = train_carve(base, c, N * I);
    a->h = train_carve(base, c, N * I);
    a->hq = train_carve(base, c, N * I);
}

static int64_t grad_floats(const braid_trainer *tr, int64_t B, int64_t T) { return 3 * B * T * tr->hp.n_ff; }
static int64_t thread_floats(const braid_trainer *tr, int64_t T) { return 0; }

const train_layer_ops train_ffn_ops = {
    .name = "SwiGLU",
    .params_size = sizeof(ffn_params),
    .acts_size = sizeof(ffn_acts),
    .bind = bind,
    .layout = layout,
    .grad_floats = grad_floats,
    .thread_floats = thread_floats,
    .fwd = fwd,
    .bwd = bwd,
};
