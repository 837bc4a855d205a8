/*
 * train_api.c — the public braid_trainer_* surface (braid.h): creation from a
 * GGUF file, argument checks, per-trainer error messages, checkpoint blobs.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "context.h"
#include "train.h"

/* Copies the thread's message into the trainer (koffi runs async calls on worker threads). */
static int32_t tr_status(braid_trainer *tr, int32_t st) {
    if (st && tr) snprintf(tr->error, sizeof tr->error, "%s", braid_last_error());
    else if (tr) tr->error[0] = '\0';
    return st;
}

int32_t braid_trainer_new(const char *path, braid_trainer **out) {
    if (!path || !out) return braid_fail(BRAID_ERR_INVALID_ARG, "braid_trainer_new: NULL argument");
    *out = NULL;
    braid_model *m = NULL;
    int32_t st = braid_model_load(path, &m);
    if (st) return st;
    braid_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) {
        braid_model_free(m);
        return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory");
    }
    tr->hp = m->hp;
    tr->beta1 = 0.9f;
    tr->beta2 = 0.95f;
    tr->eps = 1e-8f;
    tr->weight_decay = 0.1f;
    tr->clip = 1.0f;
    tr->quant = 1;
    st = train_params_load(tr, m);
    if (!st) st = train_model_bind(tr, m);
    uint64_t fp = m->fingerprint;
    braid_model_free(m);
    if (st) {
        braid_trainer_free(tr);
        return st;
    }
    for (int32_t i = 0; i < tr->n_params; i++) /* FNV-1a over the names, on top of the hyper-parameters */
        for (const char *c = tr->params[i].name; *c; c++) fp = (fp ^ (uint8_t)*c) * 1099511628211ull;
    tr->fingerprint = fp;
    braid_clear_error();
    *out = tr;
    return BRAID_OK;
}

void braid_trainer_free(braid_trainer *tr) {
    if (!tr) return;
    train_acts_free(tr);
    for (int32_t i = 0; tr->params && i < tr->n_params; i++) aligned_free(tr->params[i].wq);
    free(tr->params);
    free(tr->blocks);
    free(tr->acts);
    free(tr->kind_mem);
    aligned_free(tr->w);
    aligned_free(tr->g);
    aligned_free(tr->m);
    aligned_free(tr->v);
    free(tr);
}

const char *braid_trainer_last_error(const braid_trainer *tr) { return tr ? tr->error : "NULL trainer"; }
int32_t braid_trainer_n_params(const braid_trainer *tr) { return tr ? tr->n_params : 0; }
int32_t braid_trainer_n_vocab(const braid_trainer *tr) { return tr ? tr->hp.n_vocab : 0; }
int64_t braid_trainer_step(const braid_trainer *tr) { return tr ? tr->step : 0; }

static int32_t check_index(const braid_trainer *tr, int32_t i) {
    if (!tr) return braid_fail(BRAID_ERR_INVALID_ARG, "NULL trainer");
    if (i < 0 || i >= tr->n_params)
        return braid_fail(BRAID_ERR_INVALID_ARG, "parameter index %d out of range [0, %d)", i, tr->n_params);
    return BRAID_OK;
}

int32_t braid_trainer_param_info(const braid_trainer *tr, int32_t i, char *name, int32_t name_cap, int64_t *rows,
                                 int64_t *cols, int32_t *gguf_type, int32_t *decay) {
    int32_t st = check_index(tr, i);
    if (st) return st;
    const tparam *p = &tr->params[i];
    if (name && name_cap > 0) snprintf(name, (size_t)name_cap, "%s", p->name);
    if (rows) *rows = p->rows;
    if (cols) *cols = p->cols;
    if (gguf_type) *gguf_type = (int32_t)p->gguf_type;
    if (decay) *decay = p->decay;
    return BRAID_OK;
}

int32_t braid_trainer_param_read(const braid_trainer *tr, int32_t i, float *out) {
    int32_t st = check_index(tr, i);
    if (st || !out) return st ? st : braid_fail(BRAID_ERR_INVALID_ARG, "NULL buffer");
    memcpy(out, tp_w(tr, i), sizeof(float) * (size_t)(tr->params[i].rows * tr->params[i].cols));
    return BRAID_OK;
}

int32_t braid_trainer_param_write(braid_trainer *tr, int32_t i, const float *in) {
    int32_t st = check_index(tr, i);
    if (st || !in) return tr_status(tr, st ? st : braid_fail(BRAID_ERR_INVALID_ARG, "NULL buffer"));
    memcpy(tp_w(tr, i), in, sizeof(float) * (size_t)(tr->params[i].rows * tr->params[i].cols));
    train_requantize(tr);
    return tr_status(tr, BRAID_OK);
}

int32_t braid_trainer_grad_read(const braid_trainer *tr, int32_t i, float *out) {
    int32_t st = check_index(tr, i);
    if (st || !out) return st ? st : braid_fail(BRAID_ERR_INVALID_ARG, "NULL buffer");
    memcpy(out, tp_g(tr, i), sizeof(float) * (size_t)(tr->params[i].rows * tr->params[i].cols));
    return BRAID_OK;
}

int32_t braid_trainer_set_adamw(braid_trainer *tr, float beta1, float beta2, float eps, float weight_decay,
                                float clip) {
    if (!tr) return braid_fail(BRAID_ERR_INVALID_ARG, "NULL trainer");
    if (!(beta1 >= 0.0f && beta1 < 1.0f) || !(beta2 >= 0.0f && beta2 < 1.0f) || !(eps > 0.0f) ||
        !(weight_decay >= 0.0f) || !(clip >= 0.0f))
        return tr_status(tr, braid_fail(BRAID_ERR_INVALID_ARG,
                                        "AdamW needs 0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0, clip >= 0"));
    tr->beta1 = beta1;
    tr->beta2 = beta2;
    tr->eps = eps;
    tr->weight_decay = weight_decay;
    tr->clip = clip;
    return tr_status(tr, BRAID_OK);
}

int32_t braid_trainer_set_loops(braid_trainer *tr, int32_t n_loops) {
    if (!tr) return braid_fail(BRAID_ERR_INVALID_ARG, "NULL trainer");
    const int32_t max = tr->hp.loop.enabled ? tr->hp.loop.max : 1;
    if (n_loops < 1 || n_loops > max)
        return tr_status(tr, braid_fail(BRAID_ERR_INVALID_ARG, "loop count %d is outside 1..%d", n_loops, max));
    tr->n_loops = n_loops;
    return tr_status(tr, BRAID_OK);
}

int32_t braid_trainer_loops(const braid_trainer *tr) { return tr ? tr->n_loops : 0; }

int32_t braid_trainer_set_quant(braid_trainer *tr, int32_t on) {
    if (!tr) return braid_fail(BRAID_ERR_INVALID_ARG, "NULL trainer");
    tr->quant = on ? 1 : 0;
    return BRAID_OK;
}

static int32_t run(braid_trainer *tr, const int32_t *tokens, const int32_t *targets, int32_t batch, int32_t seq_len,
                   int backward, double *loss_sum, int64_t *n_targets) {
    if (!tr) return braid_fail(BRAID_ERR_INVALID_ARG, "NULL trainer");
    if (!tokens || !targets || !loss_sum || !n_targets)
        return tr_status(tr, braid_fail(BRAID_ERR_INVALID_ARG, "NULL tokens, targets or output"));
    if (batch < 1 || seq_len < 1)
        return tr_status(tr, braid_fail(BRAID_ERR_INVALID_ARG, "batch (%d) and seq_len (%d) must be >= 1", batch, seq_len));
    return tr_status(tr, train_model_step(tr, tokens, targets, batch, seq_len, backward, loss_sum, n_targets));
}

int32_t braid_trainer_forward_backward(braid_trainer *tr, const int32_t *tokens, const int32_t *targets, int32_t batch,
                                       int32_t seq_len, double *loss_sum, int64_t *n_targets) {
    return run(tr, tokens, targets, batch, seq_len, 1, loss_sum, n_targets);
}

int32_t braid_trainer_evaluate(braid_trainer *tr, const int32_t *tokens, const int32_t *targets, int32_t batch,
                               int32_t seq_len, double *loss_sum, int64_t *n_targets) {
    return run(tr, tokens, targets, batch, seq_len, 0, loss_sum, n_targets);
}

int32_t braid_trainer_update(braid_trainer *tr, float lr, float grad_scale, float *grad_norm) {
    if (!tr || !grad_norm) return braid_fail(BRAID_ERR_INVALID_ARG, "NULL trainer or grad_norm");
    if (!(lr >= 0.0f) || !(grad_scale > 0.0f))
        return tr_status(tr, braid_fail(BRAID_ERR_INVALID_ARG, "lr must be >= 0 and grad_scale > 0"));
    return tr_status(tr, train_adamw_update(tr, lr, grad_scale, grad_norm));
}

int32_t braid_trainer_zero_grad(braid_trainer *tr) {
    if (!tr) return braid_fail(BRAID_ERR_INVALID_ARG, "NULL trainer");
    memset(tr->g, 0, sizeof(float) * (size_t)tr->n_floats);
    return BRAID_OK;
}

int32_t braid_trainer_mezo_step(braid_trainer *tr, const int32_t *tokens, const int32_t *targets, int32_t batch,
                                int32_t seq_len, float lr, float eps, float sparsity, uint64_t seed, double *loss_sum,
                                int64_t *n_targets) {
    if (!tr) return braid_fail(BRAID_ERR_INVALID_ARG, "NULL trainer");
    if (!tokens || !targets || !loss_sum || !n_targets)
        return tr_status(tr, braid_fail(BRAID_ERR_INVALID_ARG, "NULL tokens, targets or output"));
    if (batch < 1 || seq_len < 1 || !(lr >= 0.0f) || !(eps > 0.0f) || !(sparsity >= 0.0f && sparsity < 1.0f))
        return tr_status(tr, braid_fail(BRAID_ERR_INVALID_ARG,
                                        "MeZO needs batch, seq_len >= 1, lr >= 0, eps > 0 and 0 <= sparsity < 1"));
    return tr_status(tr, train_mezo_step(tr, tokens, targets, batch, seq_len, lr, eps, sparsity, seed, loss_sum,
                                         n_targets));
}

int64_t braid_trainer_export_size(const braid_trainer *tr, int32_t i) {
    return check_index(tr, i) ? -1 : train_export_size(tr, i);
}

int32_t braid_trainer_export(const braid_trainer *tr, int32_t i, uint8_t *out, int64_t size) {
    int32_t st = check_index(tr, i);
    if (st) return st;
    if (!out || size != train_export_size(tr, i))
        return braid_fail(BRAID_ERR_INVALID_ARG, "export of %s needs a buffer of exactly %lld bytes",
                          tr->params[i].name, (long long)train_export_size(tr, i));
    train_export(tr, i, out);
    return BRAID_OK;
}

/* ---- checkpoint blobs ------------------------------------------------------------------
 * [magic "BRTS"][version u32][fingerprint u64][n_floats i64][step i64] w[n] m[n] v[n] [crc32 u32] */
#define STATE_MAGIC 0x53545242u /* "BRTS" little-endian */
#define STATE_VERSION 1u
#define STATE_HEADER 32

int64_t braid_trainer_state_size(const braid_trainer *tr) {
    return tr ? STATE_HEADER + 3 * (int64_t)sizeof(float) * tr->n_floats + 4 : 0;
}

int32_t braid_trainer_state_save(const braid_trainer *tr, uint8_t *buf, int64_t size) {
    if (!tr || !buf) return braid_fail(BRAID_ERR_INVALID_ARG, "NULL trainer or buffer");
    if (size != braid_trainer_state_size(tr))
        return braid_fail(BRAID_ERR_INVALID_ARG, "state buffer must be %lld bytes", (long long)braid_trainer_state_size(tr));
    uint32_t magic = STATE_MAGIC, version = STATE_VERSION;
    memcpy(buf, &magic, 4);
    memcpy(buf + 4, &version, 4);
    memcpy(buf + 8, &tr->fingerprint, 8);
    memcpy(buf + 16, &tr->n_floats, 8);
    memcpy(buf + 24, &tr->step, 8);
    const size_t n = sizeof(float) * (size_t)tr->n_floats;
    memcpy(buf + STATE_HEADER, tr->w, n);
    memcpy(buf + STATE_HEADER + n, tr->m, n);
    memcpy(buf + STATE_HEADER + 2 * n, tr->v, n);
    uint32_t crc = braid_crc32(0, buf, (size_t)size - 4);
    memcpy(buf + size - 4, &crc, 4);
    return BRAID_OK;
}

int32_t braid_trainer_state_load(braid_trainer *tr, const uint8_t *buf, int64_t size) {
    if (!tr || !buf) return braid_fail(BRAID_ERR_INVALID_ARG, "NULL trainer or buffer");
    if (size != braid_trainer_state_size(tr))
        return tr_status(tr, braid_fail(BRAID_ERR_STATE, "trainer state is %lld bytes, this model's is %lld",
                                        (long long)size, (long long)braid_trainer_state_size(tr)));
    uint32_t magic, version, crc;
    uint64_t fp;
    int64_t n_floats, step;
    memcpy(&magic, buf, 4);
    memcpy(&version, buf + 4, 4);
    memcpy(&fp, buf + 8, 8);
    memcpy(&n_floats, buf + 16, 8);
    memcpy(&step, buf + 24, 8);
    memcpy(&crc, buf + size - 4, 4);
    if (magic != STATE_MAGIC || version != STATE_VERSION)
        return tr_status(tr, braid_fail(BRAID_ERR_STATE, "not a trainer state blob (version %u)", version));
    if (crc != braid_crc32(0, buf, (size_t)size - 4))
        return tr_status(tr, braid_fail(BRAID_ERR_STATE, "trainer state checksum mismatch (corrupt blob)"));
    if (fp != tr->fingerprint || n_floats != tr->n_floats)
        return tr_status(tr, braid_fail(BRAID_ERR_STATE, "trainer state belongs to another model"));
    const size_t n = sizeof(float) * (size_t)tr->n_floats;
    memcpy(tr->w, buf + STATE_HEADER, n);
    memcpy(tr->m, buf + STATE_HEADER + n, n);
    memcpy(tr->v, buf + STATE_HEADER + 2 * n, n);
    memset(tr->g, 0, n);
    tr->step = step;
    train_requantize(tr);
    return tr_status(tr, BRAID_OK);
}
