/*
 * chimera.h — the whole Chimera forward (ARCHITECTURES.md §2.0).
 *
 * x ← E[ids]; per layer x ← x + Mixer(RMSNorm_a(x)), x ← x + FFN(RMSNorm_m(x));
 * h ← RMSNorm_final(x); logits ← h Eᵀ (tied head).
 */
#ifndef BRAID_CHIMERA_H
#define BRAID_CHIMERA_H

#include <stdint.h>

#include "context.h"

/* Runs n tokens (already validated: 1 <= n <= max_batch, ids in range) through
 * the model, advancing ctx's recurrent state. Exactly one of logits / hidden is
 * non-NULL: logits gets [n][V] if all_logits else [V] of the last token;
 * hidden gets the final-norm hidden states [n][D]. Returns BRAID_OK or
 * BRAID_ABORTED (flag polled before every layer and before the head). */
int32_t chimera_forward(braid_context *ctx, const int32_t *tokens, int64_t n, int all_logits, float *logits,
                        float *hidden);

#endif /* BRAID_CHIMERA_H */
