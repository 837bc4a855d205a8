/*
 * train_gdn.h — the Gated DeltaNet mixer for training (ARCHITECTURES.md §2.5):
 * forward that keeps its activations, and backward (BPTT on the recurrence
 * with the state checkpointed at every chunk start and recomputed inside it).
 */
#ifndef BRAID_TRAIN_GDN_H
#define BRAID_TRAIN_GDN_H

#include <stdint.h>

#include "train.h"

/* Per-thread scratch floats the backward needs. */
int64_t train_gdn_scratch_floats(const gdn_hparams *hp, int64_t T);

/* y [N, D] = GDN(a->xn_a) for B sequences of T tokens, each starting from a zero state;
 * a->xn_a and a->xq_a must be set. Fills the mixer activations of a. */
void train_gdn_fwd(braid_trainer *tr, const tblock *bl, tacts *a, float *y, int64_t B, int64_t T);

/* Given dy [N, D] (gradient of the mixer output), accumulates the layer's parameter
 * gradients and writes dxn [N, D] = ∂L/∂xn_a (overwritten). */
void train_gdn_bwd(braid_trainer *tr, const tblock *bl, const tacts *a, float *dxn, const float *dy, int64_t B,
                   int64_t T);

#endif /* BRAID_TRAIN_GDN_H */
