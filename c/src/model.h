/*
 * model.h — the loaded model (private view of braid_model).
 *
 * A model is the GGUF mapping plus a table of typed pointers into it. Each
 * layer is tagged with its mixer kind and its FFN kind and points to that
 * kind's weights struct, so new layer types (XM, TM, SK, MoE) add a tag and a
 * struct without touching the GD code.
 */
#ifndef BRAID_MODEL_H
#define BRAID_MODEL_H

#include <stdint.h>

#include "common.h"
#include "ffn.h"
#include "gdn.h"
#include "gguf.h"

typedef enum {
    MIXER_GD = 1, /* Gated DeltaNet: mixer points to gdn_weights */
} mixer_kind;

typedef enum {
    FFN_DENSE = 1, /* SwiGLU: ffn points to ffn_weights */
} ffn_kind;

typedef struct {
    mixer_kind mixer_type;
    const void *mixer;      /* gdn_weights * for MIXER_GD */
    ffn_kind ffn_type;
    const void *ffn;        /* ffn_weights * for FFN_DENSE */
    const float *attn_norm; /* [D] pre-mixer RMSNorm */
    const float *ffn_norm;  /* [D] pre-FFN RMSNorm */
    int64_t state_offset;   /* this layer's first float in the context's state array */
    int64_t state_floats;
} model_layer;

typedef struct {
    int32_t n_vocab, n_embd, n_ff, n_layer;
    int32_t context_length;
    float rms_eps;
    gdn_hparams gdn;
} model_hparams;

struct braid_model {
    gguf_file *gguf;
    model_hparams hp;
    uint32_t embd_type;        /* GGML_TYPE_F32 or GGML_TYPE_F16 */
    const void *token_embd;    /* [V, D] */
    const float *output_norm;  /* [D] */
    model_layer *layers;       /* [n_layer] */
    gdn_weights *gdn;          /* [n_layer] storage for MIXER_GD layers */
    ffn_weights *ffn;          /* [n_layer] storage for FFN_DENSE layers */
    int64_t state_floats;      /* recurrent state of all layers */
    uint64_t fingerprint;      /* FNV-1a of the hyper-parameters (state blobs) */
    char *describe;            /* JSON */
};

#endif /* BRAID_MODEL_H */
