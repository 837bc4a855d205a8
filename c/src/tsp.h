/*
 * tsp.h — the TSP span knot mixer (SK layers), ../shared/ARCHITECTURES.md §2.9
 * (FULL reference: an inner Gated DeltaNet plus five linear energy heads).
 */
#ifndef BRAID_TSP_H
#define BRAID_TSP_H

#include <stdint.h>

#include "gdn.h"

typedef struct {
    int32_t sketch_dim; /* D_s (D/4 in the reference) */
} tsp_hparams;

typedef struct {
    gdn_weights gdn;              /* the inner GDN (same tensor names as a GD layer) */
    fmat ws, wr, wf;              /* F32 or F16 [D_s, D] sketch / role / filler encoders */
    fmat energy;                  /* F32 or F16 [5, D] heads auto, mem, bind, gram, debt */
    const float *lambda;          /* [5] energy weights */
} tsp_weights;

/* State floats: the inner GDN state, the previous token's sketch sign vector [D_s],
 * and a flag (0 = no previous token: coherence compares the first token with itself). */
int64_t tsp_state_floats(const gdn_hparams *g, const tsp_hparams *hp);

typedef struct {
    float *s, *r, *f; /* [T, D_s] encoder outputs */
    float *en;        /* [T, 5] energy head outputs */
} tsp_buffers;

/* y [T, D] = knot(GDN(xn)); gbuf are the GDN activations (shared with GD layers). */
void tsp_forward(float *y, float *state, const float *xn, const tsp_weights *w, const gdn_hparams *g,
                 const tsp_hparams *hp, int64_t T, int64_t D, float eps, gdn_buffers *gbuf, tsp_buffers *buf);

#endif /* BRAID_TSP_H */
