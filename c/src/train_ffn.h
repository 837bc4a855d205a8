/*
 * train_ffn.h — the SwiGLU MLP for training (ARCHITECTURES.md §2.3), forward
 * and backward: y = W_down q(SiLU(W_gate q(x)) ⊙ W_up q(x)), q = the int8
 * activation quantizer under QAT (straight through in backward).
 */
#ifndef BRAID_TRAIN_FFN_H
#define BRAID_TRAIN_FFN_H

#include <stdint.h>

#include "train.h"

/* y [N, D] from a->xq_f; fills gate, up, h, hq. */
void train_ffn_fwd(braid_trainer *tr, const tblock *bl, tacts *a, float *y, int64_t N);
/* dxn [N, D] = ∂L/∂xn_f (overwritten) given dy [N, D]; accumulates gate/up/down gradients. */
void train_ffn_bwd(braid_trainer *tr, const tblock *bl, const tacts *a, float *dxn, const float *dy, int64_t N);

#endif /* BRAID_TRAIN_FFN_H */
