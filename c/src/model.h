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
#include "mlstm.h"
#include "moe.h"
#include "titans.h"
#include "tsp.h"

typedef enum {
    MIXER_GD = 1, /* Gated DeltaNet: mixer points to gdn_weights */
    MIXER_XM = 2, /* xLSTM mLSTM: mlstm_weights */
    MIXER_TM = 3, /* Titans MAC: titans_weights */
    MIXER_SK = 4, /* TSP span knot: tsp_weights */
} mixer_kind;

typedef enum {
    FFN_DENSE = 1, /* SwiGLU: ffn points to ffn_weights */
    FFN_MOE = 2,   /* mixture of experts: moe_weights */
} ffn_kind;

typedef struct {
    mixer_kind mixer_type;
    const void *mixer;      /* gdn_weights / mlstm_weights / titans_weights / tsp_weights */
    ffn_kind ffn_type;
    const void *ffn;        /* ffn_weights * for FFN_DENSE, moe_weights * for FFN_MOE */
    const float *attn_norm; /* [D] pre-mixer RMSNorm */
    const float *ffn_norm;  /* [D] pre-FFN RMSNorm */
    int64_t state_offset;   /* this layer's first float in the context's state array */
    int64_t state_floats;   /* one copy; loop layers keep loop.max copies back to back (§2.11) */
    int32_t state_copies;   /* 1, or loop.max for a layer inside the Parcae loop */
} model_layer;

/* Parcae looping (§2.11): layers [0, loop0) prelude, [loop0, coda0) loop, [coda0, L) coda. */
typedef struct {
    int32_t enabled;        /* 0: no chimera.loop.* keys, every layer runs once */
    int32_t loop0, coda0;   /* first loop layer, first coda layer */
    int32_t max, def;       /* loop counts 1..max; def for a new context */
    int32_t bptt_half;      /* chimera.loop.backward_truncation: 1 "half" (grad through the last ceil(n/2)), 0 "full" */
} loop_hparams;

/* Parcae injection weights (§2.11); abar and delta are derived at load (model-owned). */
typedef struct {
    const float *prelude_norm; /* [D] RMSNorm on the prelude output: e */
    const float *a_log;        /* [D] A = exp(a_log) */
    const float *dt_bias;      /* [D] Δ = softplus(dt_bias) */
    fmat b;                    /* F32 or F16 [D, D] injection B */
    fmat c;                    /* F32 or F16 [D, D] output projection C */
    float *abar;               /* [D] exp(-Δ ⊙ A) */
    float *delta;              /* [D] Δ */
} parcae_weights;

typedef struct {
    int32_t n_vocab, n_embd, n_ff, n_layer;
    int32_t context_length;
    float rms_eps;
    gdn_hparams gdn;
    mlstm_hparams xm;    /* valid if any layer is XM */
    titans_hparams tm;   /* valid if any layer is TM */
    tsp_hparams sk;      /* valid if any layer is SK */
    moe_hparams moe;     /* valid if any layer is MoE */
    int32_t n_moe_layers;
    int32_t span_gate;   /* 1: span-engine risk gate on the final hidden state (§2.13) */
    loop_hparams loop;   /* Parcae looping (§2.11) */
    int32_t ngram_order; /* hashed n-gram input embedding (ngram.h): 0 none, 2 bigrams, 3 bi- and trigrams */
} model_hparams;

struct braid_model {
    gguf_file *gguf;
    model_hparams hp;
    fmat token_embd;           /* F32 or F16 [V, D] */
    fmat token_ngram;          /* F32 or F16 [ngram_rows, D] (hp.ngram_order > 0 only) */
    int64_t ngram_rows;
    int64_t ngram_state;       /* offset in the state of the order−1 history floats (token + 1, 0 = none) */
    const float *output_norm;  /* [D] */
    const float *risk_w;       /* [D] span gate w_risk (span_gate only) */
    fmat gate_w;               /* F32 or F16 [D, D+1] span gate W_rg (span_gate only) */
    parcae_weights parcae;     /* valid if hp.loop.enabled */
    model_layer *layers;       /* [n_layer] */
    gdn_weights *gdn;          /* [n_layer] storage for MIXER_GD layers */
    ffn_weights *ffn;          /* [n_layer] storage for FFN_DENSE layers */
    mlstm_weights *xm;         /* [n_layer] storage for MIXER_XM layers */
    titans_weights *tm;        /* [n_layer] storage for MIXER_TM layers */
    tsp_weights *sk;           /* [n_layer] storage for MIXER_SK layers */
    moe_weights *moe;          /* [n_layer] storage for FFN_MOE layers */
    int32_t n_of[5];           /* layers per mixer kind (index = mixer_kind) */
    int64_t state_floats;      /* recurrent state of all layers */
    uint64_t fingerprint;      /* FNV-1a of the hyper-parameters (state blobs) */
    char *describe;            /* JSON */
    struct moa_model *moa;     /* non-NULL iff general.architecture = "moa" (moa.h); then only
                                  hp.n_vocab / n_embd / n_layer / context_length, token_embd,
                                  fingerprint and describe above are set */
};

#endif /* BRAID_MODEL_H */
