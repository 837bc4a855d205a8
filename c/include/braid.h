/*
 * braid.h — the only public header of libbraid (the C half of braid).
 *
 * C owns the math; TypeScript owns the policy. This header is what
 * engine/binding/ declares through koffi, nothing else is exported.
 *
 * Conventions
 *  - Names: braid_<object>_<verb>[_<noun>]; pairs _load/_free, _new/_free.
 *  - Every fallible call returns int32_t: BRAID_OK (0) or a negative status.
 *    The readable message is library-owned and thread-local: braid_last_error().
 *  - Objects come out through out-params. *_free(NULL) is a no-op.
 *  - No structs cross the boundary by value.
 *  - A model is immutable after load and may be shared by any number of
 *    contexts on any threads. One context must not be used by two threads at once.
 */
#ifndef BRAID_H
#define BRAID_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(BRAID_BUILD)
#define BRAID_API __attribute__((visibility("default")))
#else
#define BRAID_API
#endif

/* ---- status codes ------------------------------------------------------ */
#define BRAID_OK 0
#define BRAID_ERR_INVALID_ARG (-1) /* a NULL or out-of-range argument */
#define BRAID_ERR_IO (-2)          /* open/stat/mmap failed */
#define BRAID_ERR_FORMAT (-3)      /* corrupt, truncated or unsupported file */
#define BRAID_ERR_NOMEM (-4)       /* allocation failed */
#define BRAID_ERR_UNSUPPORTED (-5) /* valid but not implemented by this build (e.g. a layer type) */
#define BRAID_ERR_CAPACITY (-6)    /* request larger than the context was sized for */
#define BRAID_ABORTED (-7)         /* the step was cancelled through braid_context_abort */
#define BRAID_ERR_STATE (-8)       /* a state blob that does not belong to this model/context */

/* ---- library ------------------------------------------------------------ */

/* Readable message for the last failing call on this thread ("" if none). */
BRAID_API const char *braid_last_error(void);

/* Instruction-set paths. */
#define BRAID_ISA_REF 0    /* portable scalar reference, always compiled */
#define BRAID_ISA_AVX2 1   /* AVX2 + FMA + F16C */
#define BRAID_ISA_AVX512 2 /* AVX-512 F/BW/DQ/VL + VNNI + GFNI */

/* Starts the thread pool. n_threads <= 0 picks the default: BRAID_THREADS if
 * set, else the physical cores available to this process (cgroup aware).
 * Calling again with a different count resizes the pool. */
BRAID_API int32_t braid_init(int32_t n_threads);
BRAID_API int32_t braid_thread_count(void);

/* The ISA chosen at load (best the CPU supports); tests may force a lower one.
 * Returns BRAID_ERR_UNSUPPORTED if the CPU lacks it. Not thread-safe against
 * running evals: call it while nothing is evaluating. */
BRAID_API int32_t braid_isa_get(void);
BRAID_API int32_t braid_isa_set(int32_t isa);

/* One-line JSON: {"version","isa","isa_available":[...],"threads","cpu"}. */
BRAID_API const char *braid_system_info(void);

/* Optional log sink. level: 0 debug, 1 info, 2 warn, 3 error. NULL restores
 * the default (silent). The callback may be invoked from any thread. */
typedef void (*braid_log_fn)(int32_t level, const char *message);
BRAID_API void braid_log_set(braid_log_fn fn);

/* ---- model -------------------------------------------------------------- */
typedef struct braid_model braid_model;

/* Maps a GGUF v3 file read-only and builds the layer table. Weights are used
 * in place from the mapping (no copy). Every offset and length is checked. */
BRAID_API int32_t braid_model_load(const char *path, braid_model **out);
BRAID_API void braid_model_free(braid_model *model);

BRAID_API int32_t braid_model_n_vocab(const braid_model *model);
BRAID_API int32_t braid_model_n_embd(const braid_model *model);
BRAID_API int32_t braid_model_n_layer(const braid_model *model);
/* Parcae looping (§2.11): the most loop iterations an eval may run (chimera.loop.max), or 0
 * if the model does not loop. */
BRAID_API int32_t braid_model_loop_max(const braid_model *model);
/* Bytes of tensor data mapped from the file. */
BRAID_API int64_t braid_model_tensor_bytes(const braid_model *model);
/* One-line JSON describing architecture and hyper-parameters. */
BRAID_API const char *braid_model_describe(const braid_model *model);

/* ---- context ------------------------------------------------------------ */
typedef struct braid_context braid_context;

/* One sequence's state. max_batch is the most tokens a single eval call may
 * carry; all scratch is allocated here, never inside eval. */
BRAID_API int32_t braid_context_new(const braid_model *model, int32_t max_batch, braid_context **out);
BRAID_API void braid_context_free(braid_context *ctx);

/* Evaluates n_tokens tokens that continue the sequence. logits_out receives
 * [n_tokens][n_vocab] floats if all_logits != 0, else [n_vocab] for the last
 * token. n_tokens > max_batch returns BRAID_ERR_CAPACITY (split it in the
 * caller). On BRAID_ABORTED or any error the recurrent state is undefined:
 * reset or restore before the next eval. */
BRAID_API int32_t braid_context_eval(braid_context *ctx, const int32_t *tokens, int32_t n_tokens,
                                     int32_t all_logits, float *logits_out);

/* Loop count for the following evals of a looping model: every token of an eval runs the
 * loop stack n_loops times (1 <= n_loops <= braid_model_loop_max; a new or reset context uses
 * chimera.loop.default). Loop layers keep one recurrent state per iteration; iterations a token
 * does not run keep their state unchanged (frozen), so the result depends only on the sequence
 * of per-token loop counts, never on how tokens are grouped into eval calls
 * (docs/architecture.md, "Parcae looping"). A model without looping accepts only 1.
 * Out-of-range counts return BRAID_ERR_INVALID_ARG and leave the setting unchanged. */
BRAID_API int32_t braid_context_set_loops(braid_context *ctx, int32_t n_loops);
BRAID_API int32_t braid_context_loops(const braid_context *ctx);

/* Parcae adaptive exit (§2.11, eval only; opt-in): with threshold > 0, each token stops looping
 * after iteration k once mean_j |h_k − h_{k−1}| < threshold (h_0 = 0) and k >= min_loops;
 * braid_context_set_loops stays the cap. The decision is per token, on its own iterates, and a
 * token that stops early leaves the states of the iterations it skipped frozen (the rule above),
 * so the result equals set_loops with the counts the tokens chose, evaluated token by token, and
 * still does not depend on how tokens are grouped into eval calls (prefill == decode, bit for
 * bit). threshold 0 turns it off (the default; also after reset). 1 <= min_loops <=
 * braid_model_loop_max; a model without looping accepts only threshold 0. Invalid values return
 * BRAID_ERR_INVALID_ARG and leave the setting unchanged. */
BRAID_API int32_t braid_context_set_loop_exit(braid_context *ctx, float threshold, int32_t min_loops);
/* Iterations the last token of the last successful eval ran (1 for a model without looping;
 * 0 after new/reset), and the sum over all tokens of that eval. */
BRAID_API int32_t braid_context_last_loops(const braid_context *ctx);
BRAID_API int64_t braid_context_last_loop_sum(const braid_context *ctx);

/* Like eval, but writes the final-norm hidden state ([n_tokens][n_embd]) instead of logits
 * (after the span-engine risk gate when the model has one: the state the LM head reads). */
BRAID_API int32_t braid_context_eval_hidden(braid_context *ctx, const int32_t *tokens, int32_t n_tokens,
                                            float *hidden_out);

/* Message of the last failing call on this context ("" after a success). Unlike
 * braid_last_error it is readable from any thread, which bindings that run calls
 * on worker threads (koffi .async) need. Valid until the next call on ctx. */
BRAID_API const char *braid_context_last_error(const braid_context *ctx);

/* Tokens consumed since the last reset. A MoA model holds at most its context length
 * (moa.max_position_embeddings, describe "context_length"): an eval past it returns
 * BRAID_ERR_CAPACITY and changes nothing. */
BRAID_API int64_t braid_context_n_past(const braid_context *ctx);
/* Forgets the sequence (zero state, n_past = 0). */
BRAID_API int32_t braid_context_reset(braid_context *ctx);

/* Cancellation: sets an atomic flag polled between layers; the running (or
 * next) eval returns BRAID_ABORTED. Safe from any thread. The flag is cleared
 * when braid_context_eval returns BRAID_ABORTED or on braid_context_abort_clear. */
BRAID_API void braid_context_abort(braid_context *ctx);
BRAID_API void braid_context_abort_clear(braid_context *ctx);

/* State as bytes: versioned, tagged with a fingerprint of the model's
 * hyper-parameters, checksummed. load rejects a blob from another model
 * (BRAID_ERR_STATE) and leaves the context unchanged on any error.
 * A MoA context's state is its KV cache, so its size grows with n_past:
 * ask for the size right before saving. */
BRAID_API int64_t braid_context_state_size(const braid_context *ctx);
BRAID_API int32_t braid_context_state_save(const braid_context *ctx, uint8_t *buf, int64_t buf_size);
BRAID_API int32_t braid_context_state_load(braid_context *ctx, const uint8_t *buf, int64_t buf_size);
/* Copies the sequence state (not the scratch) of src into dst; both must be of the same model. */
BRAID_API int32_t braid_context_copy(braid_context *dst, const braid_context *src);
/* Drops the last n_tokens tokens of the sequence (0 <= n_tokens <= n_past), e.g. rejected
 * speculative drafts: the next eval continues after the first n_past - n_tokens tokens, exactly
 * as if the dropped ones had never been evaluated. MoA models (KV cache) only; a Chimera context
 * returns BRAID_ERR_UNSUPPORTED (its recurrent state cannot drop tokens: save and restore it). */
BRAID_API int32_t braid_context_rewind(braid_context *ctx, int32_t n_tokens);


/* ---- trainer ------------------------------------------------------------------
 * FP32 master weights + AdamW state for a model being trained (DESIGN.md
 * "trainer"). Built from a GGUF file: every tensor becomes a parameter (BT2
 * dequantized, F16 widened). The forward is the inference forward with
 * BitLinear as quantization-aware training (ternary weights, int8 activations,
 * straight-through backward). Supports GD + dense SwiGLU models today; other
 * layer types return BRAID_ERR_UNSUPPORTED. One call at a time per trainer. */
typedef struct braid_trainer braid_trainer;

BRAID_API int32_t braid_trainer_new(const char *path, braid_trainer **out);
BRAID_API void braid_trainer_free(braid_trainer *tr);
/* Message of the trainer's last failing call, readable from any thread. */
BRAID_API const char *braid_trainer_last_error(const braid_trainer *tr);
BRAID_API int32_t braid_trainer_n_params(const braid_trainer *tr);
BRAID_API int32_t braid_trainer_n_vocab(const braid_trainer *tr);
/* Parameter i: its GGUF tensor name (NUL-terminated into name[name_cap]), shape [rows, cols]
 * (a vector is [1, n]; 3-D tensors fold their outer dims into rows), source GGUF type, and
 * whether AdamW decays it. */
BRAID_API int32_t braid_trainer_param_info(const braid_trainer *tr, int32_t i, char *name, int32_t name_cap,
                                           int64_t *rows, int64_t *cols, int32_t *gguf_type, int32_t *decay);
/* Copies rows·cols floats of parameter i's latent weights / accumulated gradient out, or weights in. */
BRAID_API int32_t braid_trainer_param_read(const braid_trainer *tr, int32_t i, float *out);
BRAID_API int32_t braid_trainer_param_write(braid_trainer *tr, int32_t i, const float *in);
BRAID_API int32_t braid_trainer_grad_read(const braid_trainer *tr, int32_t i, float *out);
/* AdamW settings (defaults 0.9, 0.95, 1e-8, 0.1, clip 1.0; clip 0 = off). */
BRAID_API int32_t braid_trainer_set_adamw(braid_trainer *tr, float beta1, float beta2, float eps, float weight_decay,
                                          float clip);
/* Parcae loop count of the following passes (1..braid_model_loop_max; a looping model starts at
 * chimera.loop.default). BRAID_ERR_INVALID_ARG outside the range or for a model that does not loop
 * (which accepts only 1). The gradient flows through the last ceil(n/2) iterations when the model's
 * chimera.loop.backward_truncation is "half", through all of them when "full". */
BRAID_API int32_t braid_trainer_set_loops(braid_trainer *tr, int32_t n_loops);
BRAID_API int32_t braid_trainer_loops(const braid_trainer *tr);
/* 1 (default): quantization-aware forward; 0: plain FP32 forward (for gradient checks). */
BRAID_API int32_t braid_trainer_set_quant(braid_trainer *tr, int32_t on);
/* Forward + backward over batch sequences of seq_len tokens (row-major), each from a zero
 * state; targets[i] is the label predicted at position i, -1 for none. Adds the gradient of
 * the summed cross-entropy (nats) to the accumulated gradients; returns the sum and count. */
BRAID_API int32_t braid_trainer_forward_backward(braid_trainer *tr, const int32_t *tokens, const int32_t *targets,
                                                 int32_t batch, int32_t seq_len, double *loss_sum,
                                                 int64_t *n_targets);
/* The same forward without gradients. */
BRAID_API int32_t braid_trainer_evaluate(braid_trainer *tr, const int32_t *tokens, const int32_t *targets,
                                         int32_t batch, int32_t seq_len, double *loss_sum, int64_t *n_targets);
/* Scales the accumulated gradients by grad_scale, clips their global norm, takes one AdamW
 * step at learning rate lr, zeroes the gradients. *grad_norm: the norm before clipping. */
BRAID_API int32_t braid_trainer_update(braid_trainer *tr, float lr, float grad_scale, float *grad_norm);
BRAID_API int32_t braid_trainer_zero_grad(braid_trainer *tr);
/* One MeZO step (forward-only, Malladi et al. 2023): loss at w ± eps·z with z ~ N(0, I) drawn
 * from seed, then w ← w − lr (ĝ z + weight_decay·w). sparsity in [0, 1): sparse MeZO, only the
 * smaller-magnitude (1 − sparsity) of each tensor is perturbed and updated. Under QAT only the
 * float parameters move (ternary ones are piecewise constant in the loss). Leaves the
 * accumulated gradients alone; *loss_sum is the mean of the two summed losses. */
BRAID_API int32_t braid_trainer_mezo_step(braid_trainer *tr, const int32_t *tokens, const int32_t *targets,
                                          int32_t batch, int32_t seq_len, float lr, float eps, float sparsity,
                                          uint64_t seed, double *loss_sum, int64_t *n_targets);
BRAID_API int64_t braid_trainer_step(const braid_trainer *tr);
/* Parameter i in its GGUF type (BT2 quantized like the training forward), size bytes. */
BRAID_API int64_t braid_trainer_export_size(const braid_trainer *tr, int32_t i);
BRAID_API int32_t braid_trainer_export(const braid_trainer *tr, int32_t i, uint8_t *out, int64_t size);
/* Checkpoint state: weights, AdamW moments and step; versioned, tied to the model's
 * hyper-parameters and tensor names, CRC-checked. load changes nothing on error. */
BRAID_API int64_t braid_trainer_state_size(const braid_trainer *tr);
BRAID_API int32_t braid_trainer_state_save(const braid_trainer *tr, uint8_t *buf, int64_t size);
BRAID_API int32_t braid_trainer_state_load(braid_trainer *tr, const uint8_t *buf, int64_t size);

#ifdef __cplusplus
}
#endif

#endif /* BRAID_H */
