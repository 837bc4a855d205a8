/*
 * train.h — the trainer (private view of braid_trainer): FP32 master weights,
 * their gradients and AdamW moments, and the activations one
 * forward/backward pass keeps.
 *
 * Like llm.c: one arena per kind (params, grads, m, v are four float arrays
 * with the same layout, so the optimizer and the checkpoint are flat loops and
 * one memcpy), every layer's forward beside its backward (train_gdn.c,
 * train_ffn.c, train_ops.c), and a model file (train_model.c) that runs them
 * in order. The math is the inference forward's (chimera.c, gdn.c, ffn.c) with
 * BitLinear as quantization-aware training: the forward uses the same ternary
 * weights and int8 activations the inference kernels use (as exact float
 * values), the backward is straight-through (ARCHITECTURES.md §2.2, item 5).
 */
#ifndef BRAID_TRAIN_H
#define BRAID_TRAIN_H

#include <stdint.h>

#include "model.h"

/* How a parameter enters the forward. */
typedef enum {
    TP_TERNARY = 1, /* BT2 in the file: latent FP32 W, forward uses fake-quantized Ŵ (wq) */
    TP_FLOAT = 2,   /* F32/F16 matrix or vector used as is */
} tparam_kind;

typedef struct {
    char name[96];
    int64_t rows, cols;   /* a vector is [1, n] */
    int64_t stack;        /* matrices in a stacked tensor [stack, rows/stack, cols] (MoE experts), else 1;
                           * BT2 stores each one as its own qs-then-scales block */
    uint32_t gguf_type;   /* type in the source file: export writes the same type */
    tparam_kind kind;
    int32_t decay;        /* 1: AdamW weight decay applies (matrices except the embedding) */
    int32_t frozen;       /* 1: AdamW skips it (set by a kind's bind: the MoE selection bias moves by its own rule) */
    int64_t offset;       /* first float in the arenas */
    float *wq;            /* TP_TERNARY: [rows, cols] Ŵ = scale ⊙ ternary(W), refreshed after every update */
} tparam;

/*
 * One trainable layer kind — a mixer (GD, XM, TM, SK) or an FFN (SwiGLU, MoE) —
 * as a table of functions, so the model file (train_model.c) runs any block
 * without knowing what is inside. Each kind has its own parameter-index struct
 * (filled by bind) and activation struct (carved from the arena by layout).
 */
typedef struct train_layer_ops {
    const char *name;
    size_t params_size, acts_size;
    /* Finds layer il's tensors (blk.<il>.*) and stores their parameter indices in params. */
    int32_t (*bind)(braid_trainer *tr, int32_t il, void *params);
    /* Carves the activations of B sequences of T tokens from base at *cursor into acts
     * (base NULL: only advances *cursor, to size the arena). */
    void (*layout)(const braid_trainer *tr, float *base, int64_t *cursor, int64_t B, int64_t T, void *acts);
    /* Gradient scratch floats one backward needs (tr->gscratch, shared: one backward runs at a time). */
    int64_t (*grad_floats)(const braid_trainer *tr, int64_t B, int64_t T);
    /* Per-thread scratch floats (tr->scratch + thread · tr->scratch_per_thread). */
    int64_t (*thread_floats)(const braid_trainer *tr, int64_t T);
    /* y [N, D] from the block's normed input xn [N, D] and its fake-quantized copy xq (N = B·T). */
    void (*fwd)(braid_trainer *tr, const void *params, void *acts, const float *xn, const float *xq, float *y,
                int64_t B, int64_t T);
    /* dxn [N, D] = ∂L/∂xn (overwritten; straight-through: the gradient reaching xq counts for xn)
     * given dy = ∂L/∂y; accumulates the parameter gradients. */
    void (*bwd)(braid_trainer *tr, const void *params, const void *acts, const float *xn, const float *xq, float *dxn,
                const float *dy, int64_t B, int64_t T);
    /* Optional (NULL for most kinds): runs after every AdamW step, before re-quantization, for
     * state that moves by a rule rather than a gradient (the MoE load-balancing bias). */
    void (*after_update)(braid_trainer *tr, void *params, void *acts);
} train_layer_ops;

extern const train_layer_ops train_gdn_ops;   /* train_gdn.c */
extern const train_layer_ops train_mlstm_ops; /* train_mlstm.c */
extern const train_layer_ops train_tsp_ops;   /* train_tsp.c */
extern const train_layer_ops train_titans_ops; /* train_titans.c */
extern const train_layer_ops train_ffn_ops; /* train_ffn.c */
extern const train_layer_ops train_moe_ops; /* train_moe.c */

/* One pre-norm residual block: x ← x + mixer(norm(x)); x ← x + ffn(norm(x)). */
typedef struct {
    int32_t attn_norm, ffn_norm; /* param indices ([D] vectors) */
    const train_layer_ops *mixer, *ffn;
    void *mixer_params, *ffn_params; /* kind-specific index structs */
} tblock;

/* Activations of one block for N = B·T tokens ([N, width] row-major). */
typedef struct {
    float *x_in;          /* [N, D] block input (residual stream) */
    float *rstd_a;        /* [N] 1/rms of x_in (attn norm) */
    float *xn_a, *xq_a;   /* [N, D] attn-normed input and its fake-quantized copy */
    float *x_mid;         /* [N, D] residual after the mixer */
    float *rstd_f;        /* [N] */
    float *xn_f, *xq_f;   /* [N, D] ffn-normed input and its fake-quantized copy */
    void *mixer_acts, *ffn_acts; /* kind-specific */
} tacts;

/* Carves n floats from base at *cursor, 64-byte aligned (NULL when base is NULL: counting). */
static inline float *train_carve(float *base, int64_t *cursor, int64_t n) {
    float *p = base ? base + *cursor : NULL;
    *cursor += (n + 15) & ~(int64_t)15;
    return p;
}

/* Parcae looping (train_parcae.c): parameter indices and buffers for N tokens. */
typedef struct {
    int32_t norm, a_log, dt_bias, b, c; /* param indices */
    float *xp;          /* [N, D] the prelude's output */
    float *e, *rstd;    /* [N, D] RMSNorm(xp), [N] */
    float *be, *inj;    /* [N, D] B e and Δ ⊙ B e */
    float *abar, *delta;/* [D] Ā and Δ of this pass */
    float *h;           /* [loop.max, N, D] output of each iteration */
    float *dh, *dinj;   /* [N, D] backward: ∂L/∂h_k, Σ ∂L/∂inj */
    float *dabar;       /* [D] Σ ∂L/∂Ā */
} tparcae;

/* Span-engine risk gate (train_span.c). */
typedef struct {
    int32_t risk, gate;   /* output_risk.weight [D], output_gate.weight [D, D+1] */
    float *in;            /* [N, D+1] [h ; σ(w_risk·h)] */
    float *g;             /* [N, D] σ(W_rg in) */
    float *din;           /* [N, D+1] backward scratch */
} tspan;

/* Gradient buffers every block's backward uses. */
typedef struct {
    float *dx;   /* [N, D] gradient of the residual stream */
    float *dxn;  /* [N, D] gradient of a normed block input */
    float *dy;   /* [N, D] copy of a branch's output gradient */
} tgrads;

struct braid_trainer {
    model_hparams hp;
    int32_t n_params;
    tparam *params;
    int64_t n_floats;      /* arena length */
    float *w, *g, *m, *v;  /* arenas: weights, gradients, AdamW first and second moments */
    int64_t step;          /* optimizer steps taken */
    uint64_t fingerprint;  /* the model's hyper-parameter fingerprint ⊕ tensor names (state blobs) */
    /* AdamW */
    float beta1, beta2, eps, weight_decay, clip;
    int32_t quant;         /* 1: QAT (ternary weights + int8 activations), 0: plain FP32 (gradient checks) */
    /* model views */
    int32_t tok_embd, out_norm;
    int32_t tok_ngram;  /* hashed n-gram table (hp.ngram_order > 0), else -1 */
    int64_t ngram_rows;
    tblock *blocks;        /* [n_layer] */
    int32_t n_loops;       /* Parcae loop count of the next passes (1..loop.max) */
    int32_t n_inst;        /* block instances with activations: prelude + loop layers × loop.max + coda */
    tparcae parcae;        /* hp.loop.enabled */
    tspan span;            /* hp.span_gate */
    void *kind_mem;        /* storage behind every block's params / acts structs */
    /* activations, sized for the largest N seen (grown between calls, never inside a pass) */
    int64_t cap_tokens, cap_B, cap_T;
    tacts *acts;           /* [n_inst] (kind-specific parts in kind_mem) */
    float *arena;          /* one allocation behind every activation pointer */
    float *x_final;        /* [N, D] last block output */
    float *rstd_final;     /* [N] */
    float *hfin;           /* [N, D] final-normed hidden */
    float *logits;         /* [N, V] logits, then dlogits */
    tgrads gr;             /* residual-stream gradients */
    float *gscratch;       /* layer-kind gradient scratch (max over kinds of grad_floats) */
    float *scratch;        /* per-thread scratch for the GDN backward */
    int64_t scratch_per_thread;
    char error[256];       /* last error for braid_trainer_last_error (any thread) */
};

/* ---- parameters (train_params.c) -------------------------------------------- */
int32_t train_params_load(braid_trainer *tr, const braid_model *m);
int32_t train_param_find(const braid_trainer *tr, const char *name);
/* *out = the index of blk.<il>.<suffix>, or BRAID_ERR_FORMAT naming the missing tensor. */
int32_t train_find_block_param(const braid_trainer *tr, int32_t il, const char *suffix, int32_t *out);
static inline float *tp_w(const braid_trainer *tr, int32_t i) { return tr->w + tr->params[i].offset; }
static inline float *tp_g(const braid_trainer *tr, int32_t i) { return tr->g + tr->params[i].offset; }
/* The weights the forward reads: Ŵ for a ternary param under QAT, else W. */
static inline const float *tp_fw(const braid_trainer *tr, int32_t i) {
    return tr->quant && tr->params[i].kind == TP_TERNARY ? tr->params[i].wq : tr->w + tr->params[i].offset;
}
/* Recomputes Ŵ of every ternary param from W (after load, update or a write). */
void train_requantize(braid_trainer *tr);
/* Bytes of param i in its GGUF type, and the export itself. */
int64_t train_export_size(const braid_trainer *tr, int32_t i);
void train_export(const braid_trainer *tr, int32_t i, uint8_t *out);

/* ---- model (train_model.c) ------------------------------------------------------ */
/* Chooses each block's layer kinds and binds their parameters (after train_params_load). */
int32_t train_model_bind(braid_trainer *tr, const braid_model *m);
/* The forward's activation quantizer: fake int8 under QAT, a copy in plain FP32 mode. */
void train_act_quant(const braid_trainer *tr, float *y, const float *x, int64_t n, int64_t cols);
/* Forward over B sequences of T tokens; with backward, accumulates gradients.
 * Loss = sum of cross-entropies (nats) over targets >= 0. */
int32_t train_model_step(braid_trainer *tr, const int32_t *tokens, const int32_t *targets, int64_t B, int64_t T,
                         int backward, double *loss_sum, int64_t *n_targets);
void train_acts_free(braid_trainer *tr);

/* Layer of block instance i (instances = the blocks in run order, loop layers once per iteration). */
int32_t train_inst_layer(const braid_trainer *tr, int32_t i);
/* Instance of layer il in loop iteration k (k = 0 outside the loop). */
int32_t train_layer_inst(const braid_trainer *tr, int32_t il, int32_t k);

/* ---- Parcae (train_parcae.c) and the span gate (train_span.c) --------------------------- */
int32_t train_parcae_bind(braid_trainer *tr);
void train_parcae_layout(braid_trainer *tr, float *base, int64_t *cursor, int64_t N);
void train_parcae_inject(braid_trainer *tr, int64_t N);
void train_parcae_loop_input(const braid_trainer *tr, int32_t k, float *x, int64_t N);
void train_parcae_out(const braid_trainer *tr, int32_t n, float *x_coda, int64_t N);
int32_t train_parcae_first_grad_iter(const braid_trainer *tr, int32_t n);
void train_parcae_out_bwd(braid_trainer *tr, int32_t n, const float *dx_coda, int64_t N);
void train_parcae_iter_bwd(braid_trainer *tr, int32_t k, int32_t k_first, const float *dx_in, int64_t N);
void train_parcae_inject_bwd(braid_trainer *tr, float *dxp, float *scratch, int64_t N);
int32_t train_span_bind(braid_trainer *tr);
void train_span_layout(braid_trainer *tr, float *base, int64_t *cursor, int64_t N);
void train_span_fwd(braid_trainer *tr, float *h, int64_t N);
void train_span_bwd(braid_trainer *tr, float *dh, int64_t N);

/* ---- optimizer (train_adamw.c) ---------------------------------------------------- */
/* Scales gradients by grad_scale, clips the global norm to tr->clip (0 = off), takes one
 * AdamW step with learning rate lr, zeroes the gradients, re-quantizes. *grad_norm = norm before clipping. */
int32_t train_adamw_update(braid_trainer *tr, float lr, float grad_scale, float *grad_norm);

/* ---- MeZO (train_mezo.c) ---------------------------------------------------------------- */
/* One zeroth-order step: two forwards at w ± εz (z from seed), SGD along z at lr, sparse when
 * sparsity > 0 (only the smaller-|w| fraction 1 − sparsity of each tensor moves). loss = mean of both. */
int32_t train_mezo_step(braid_trainer *tr, const int32_t *tokens, const int32_t *targets, int64_t B, int64_t T,
                        float lr, float eps, float sparsity, uint64_t seed, double *loss_sum, int64_t *n_targets);

#endif /* BRAID_TRAIN_H */
