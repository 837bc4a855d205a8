/*
 * moa.h — the MoA-MetricLM architecture (general.architecture = "moa"):
 * ../shared/ARCHITECTURES.md §2-MoA (M.0–M.13), our reconstruction; every
 * modelling choice is written down in docs/architecture.md ("MoA") and the
 * file layout in docs/format.md ("MoA models").
 *
 *   x ← E[ids]
 *   per block:  u = LN₁(x)
 *               y₀ LocalConv(u), y₁ MetricMHA(u), y₂ ChannelMix(u), y₃ MetricMQA(u)
 *               router top-k weights w, FiLM feature gates, router-bias gates b
 *               x ← x + γ_mix ⊙ Σ_p w_p b_p y_p
 *               x ← x + γ_ffn ⊙ HyperFFN(LN₂(x))        SwiGLU | SepConv | LowRank, branch router
 *   logits = LN_f(x) Eᵀ                                   tied head
 *
 * Files: moa_model.c (load, describe), moa.c (block, router, heads, HyperFFN,
 * head), moa_attention.c (metric attention, BlackHoleRoPE, V energy, ball
 * pruning, KV cache), moa_state.c (context: cache, reset/rewind/save/load/copy).
 */
#ifndef BRAID_MOA_H
#define BRAID_MOA_H

#include <math.h>
#include <stdint.h>

#include "ffn.h"

struct braid_model;
struct braid_context;

typedef enum { MOA_METRIC_L2 = 0, MOA_METRIC_COSINE = 1, MOA_METRIC_MAHA = 2 } moa_metric;

#define MOA_PATHS 4    /* LocalConv, MetricMHA, ChannelMix, MetricMQA (M.1 order) */
#define MOA_BRANCHES 3 /* SwiGLU, SepConv, LowRank (M.9 order) */
/* Below this many multiply-adds a product or an attention runs on the calling thread. */
#define MOA_INLINE_MACS 32768

typedef struct {
    int32_t n_vocab, dim, n_layer, max_pos;
    int32_t attn_heads, mqa_heads;  /* H (d_h = dim/H), H_q (d_h' = dim/H_q) */
    int32_t mixer_hidden, ffn_hidden;
    int32_t router_hidden, router_topk;
    int32_t conv_kernel, conv_mult, lr_rank, n_branches, branch_topk, r_basis;
    moa_metric metric;
    int32_t use_balls, feature_gates, router_gates, v_energy, discrepancy;
    float router_temp, branch_temp, theta_base, energy_amp, ln_eps;
    /* informational (training/init only; echoed by describe): */
    float alpha_init, radius_init, maha_init, origin_init_scale, layer_scale_init;
    int32_t learn_alpha, learn_radius, ff_mult;
} moa_hparams;

/* One metric attention (M.3 MHA with G = H, M.4 MQA with G = 1): H query heads of width
 * d_h, G key/value heads; query head h reads key/value head h·G/H. */
typedef struct {
    int32_t H, G, dh;
    fmat wq;                    /* [H·d_h, D] */
    fmat wk, wv;                /* [G·d_h, D] */
    fmat wo;                    /* [D, H·d_h] */
    const float *alpha;         /* [H] effective α_h > 0 (softplus already applied by the converter) */
    const float *omega;         /* [H, d_h] effective ω > 0 (maha_diag only, else NULL) */
    const float *origin;        /* [H, d_h] ball origins (use_balls only) */
    const float *radius;        /* [H] effective ball radii > 0 (use_balls only) */
    const float *rope_a, *rope_b; /* [G, d_h/2, R] BlackHoleRoPE Fourier coefficients of the phase */
    const float *en_c, *en_g;   /* [G, R] V-energy coefficients (enable_v_energy only) */
    const float *disc;          /* [G] discrepancy gain c (discrepancy_modulation only) */
    /* offsets (floats) of this attention's fields in a cache row (moa_layout) */
    int64_t off_k, off_v, off_kn, off_in;
} moa_attn;

typedef struct {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b; /* [D] */
    /* router (M.8) */
    fmat r_in;                     /* [R_h, D] */
    const float *r_in_b;           /* [R_h] */
    fmat r_out;                    /* [4, R_h] */
    const float *r_out_b;          /* [4] */
    fmat film_g, film_b;           /* [4·D, R_h] rows p·D.. of path p (feature_gates only) */
    fmat gate_w;                   /* [4, D] router-bias gate c_p (router_gates only) */
    const float *gate_b;           /* [4] c0_p */
    /* LocalConv (M.7) */
    const float *conv_w, *conv_b;  /* [D, K], [D] */
    fmat conv_pw;                  /* [D, D] */
    moa_attn mha, mqa;
    /* ChannelMix (M.7) */
    fmat mix_up;                   /* [M, D] */
    const float *mix_up_b;         /* [M] */
    fmat mix_down;                 /* [D, M] */
    const float *mix_down_b;       /* [D] */
    const float *ls_mix, *ls_ffn;  /* [D] LayerScale */
    /* HyperFFN (M.9) */
    fmat br;                       /* [3, D] branch router */
    fmat ffn_gate, ffn_up;         /* [F, D] */
    fmat ffn_down;                 /* [D, F] */
    fmat sc_in;                    /* [C, D], C = conv_mult·D */
    const float *sc_w, *sc_b;      /* [C, K], [C] */
    fmat sc_out;                   /* [D, C] */
    fmat lr_down;                  /* [r, D] (V) */
    fmat lr_up;                    /* [D, r] (U) */
} moa_layer;

/* Per-layer cache row: everything a later token needs from position p (M.12). */
typedef struct {
    int64_t off_u;   /* [D] LN₁ output u_p: LocalConv taps and the discrepancy signal */
    int64_t off_a;   /* [C] SepConv input a_p = W_a v_p */
    int64_t row;     /* floats per row */
} moa_layout;

typedef struct moa_model {
    moa_hparams hp;
    fmat token_embd;              /* [V, D] */
    const float *out_w, *out_b;   /* [D] LN_f */
    moa_layer *layers;            /* [n_layer] */
    moa_layout lay;
    double *nu;                   /* [R] Fourier frequencies ν_r */
    double *theta_mha, *theta_mqa;/* [d_h/2] RoPE base angles θ_i */
} moa_model;

/* Per-context state and scratch (moa_state.c). The cache is [L][max_pos][row] floats:
 * the state is the rows [0, n_past) of every layer; the per-head in-ball lists are derived
 * from the rows' flags (rebuilt on load/rewind), so they are not part of saved state. */
typedef struct moa_ctx {
    float *cache;      /* [L, max_pos, row] */
    int32_t *lists;    /* [L][H + H_q][max_pos] positions of in-ball keys, ascending */
    int32_t *counts;   /* [L][H + H_q] */
    void *arena;       /* scratch below */
    float *x, *u, *z, *y, *t1, *t2;   /* [B, D] */
    float *hr;                        /* [B, R_h] */
    float *w, *bg;                    /* [B, 4] route weights, bias gates */
    float *q, *k, *v, *o;             /* [B, D] (MQA k, v use the first d_h' of each row) */
    float *hid;                       /* [B, max(M, F, C)] */
    float *hid2;                      /* [B, max(F, C)] */
    float *gx;                        /* [B, D] gathered input rows */
    float *gh;                        /* [B, R_h] gathered router hidden rows */
    float *pi;                        /* [B, 3] */
    float *scores;                    /* [max(H, H_q), max_pos] one row per head task */
    int32_t *sel;                     /* [B] selected token indices */
} moa_ctx;

/* Loads the "moa" architecture into m (the GGUF is already open). */
int32_t moa_load(struct braid_model *m);
void moa_free(moa_model *mm);

int32_t moa_context_init(struct braid_context *ctx);
void moa_context_free(struct braid_context *ctx);
void moa_context_reset(struct braid_context *ctx);
int32_t moa_context_rewind(struct braid_context *ctx, int64_t n_tokens);
int64_t moa_state_payload_bytes(const struct braid_context *ctx, int64_t n_past);
void moa_state_write(const struct braid_context *ctx, uint8_t *payload);
/* payload already checked for length and finiteness; n_past <= max_pos. */
void moa_state_read(struct braid_context *ctx, const uint8_t *payload, int64_t n_past);
void moa_context_copy(struct braid_context *dst, const struct braid_context *src);
/* Rebuilds the in-ball lists of every layer from the cache rows [0, n_past). */
void moa_lists_rebuild(struct braid_context *ctx, int64_t n_past);

/* Same contract as chimera_forward; n_past + n <= max_pos is checked by the caller. */
int32_t moa_forward(struct braid_context *ctx, const int32_t *tokens, int64_t n, int all_logits, float *logits,
                    float *hidden);

/* moa_attention.c: for the n tokens rows of u [n, D] at positions p0.., computes K/V, runs the
 * ball test, writes the cache rows and appends in-ball positions to the lists; then for the
 * m selected tokens sel[0..m) (their u rows gathered in usel [m, D]) writes the attention output projected by W_o to out [m, D]. */
void moa_attention(float *out, struct braid_context *ctx, int32_t il, const moa_attn *a, int64_t list0,
                   const float *u, int64_t n, int64_t p0, const int32_t *sel, const float *usel, int64_t m);

/* GELU (exact, erf form: PyTorch's default nn.GELU). */
static inline float moa_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

#endif /* BRAID_MOA_H */
