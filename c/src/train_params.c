/*
 * train_params.c — the trainer's parameters: one FP32 master weight per GGUF
 * tensor of the source model (BT2 dequantized, F16 widened, F32
 * copied), the ternary views Ŵ the forward reads, and the export back to each
 * tensor's own GGUF type.
 *
 * Starting from the file's values means a fine-tune starts exactly where the
 * served model is (dequant_bt2 below picks latents that requantize to the stored
 * ternary values and scales), and a from-scratch run starts from `braid init`'s
 * random ternary weights.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gguf.h"
#include "kernels.h"
#include "threadpool.h"
#include "train.h"
#include "train_ops.h"

int32_t train_param_find(const braid_trainer *tr, const char *name) {
    for (int32_t i = 0; i < tr->n_params; i++)
        if (strcmp(tr->params[i].name, name) == 0) return i;
    return -1;
}

int32_t train_find_block_param(const braid_trainer *tr, int32_t il, const char *suffix, int32_t *out) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
    *out = train_param_find(tr, name);
    if (*out < 0) return braid_fail(BRAID_ERR_FORMAT, "trainer: tensor %s is missing", name);
    return BRAID_OK;
}

/* Latent weights for a BT2 matrix such that the trainer's quantizer gives back exactly the
 * stored ternary values and scales: a group's scale is the mean |W| of its 128 latents, so
 * latent = scale·w alone would requantize to scale·m (m = the group's fraction of nonzero
 * codes, ~0.69 at init) and the training forward would start ~31% off the served model.
 * latent = scale·w / m has mean |latent| = scale and rounds back to w (|w/m| ≥ 1, clamped to 1). */
static void dequant_bt2(float *out, const uint8_t *w, int64_t rows, int64_t cols) {
    const int64_t nb = cols / BT2_GROUP;
    const float *scales = bt2_scales(w, rows, cols);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < nb; g++) {
            const uint8_t *qs = w + r * (cols / 4) + g * 32;
            float *o = out + r * cols + g * BT2_GROUP;
            int nnz = 0;
            for (int j = 0; j < BT2_GROUP; j++) {
                int q = ((qs[j & 31] >> (2 * (j >> 5))) & 3) - 1;
                o[j] = (float)q;
                nnz += q != 0;
            }
            const float a = nnz ? scales[r * nb + g] * (float)BT2_GROUP / (float)nnz : 0.0f;
            for (int j = 0; j < BT2_GROUP; j++) o[j] *= a;
        }
}

int32_t train_params_load(braid_trainer *tr, const braid_model *m) {
    const gguf_file *f = m->gguf;
    tr->n_params = (int32_t)f->n_tensors;
    tr->params = calloc((size_t)tr->n_params, sizeof(tparam));
    if (!tr->params) return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory for the parameter table");
    int64_t off = 0;
    for (int32_t i = 0; i < tr->n_params; i++) {
        const gguf_tensor *t = &f->tensors[i];
        tparam *p = &tr->params[i];
        if (t->name.len >= sizeof p->name)
            return braid_fail(BRAID_ERR_FORMAT, "trainer: tensor name longer than %zu bytes", sizeof p->name - 1);
        memcpy(p->name, t->name.ptr, t->name.len);
        p->cols = t->ne[0];
        p->rows = 1;
        for (uint32_t d = 1; d < t->n_dims; d++) p->rows *= t->ne[d];
        p->stack = p->rows / t->ne[1];
        p->gguf_type = t->type;
        if (t->type == BRAID_GGUF_TYPE_BT2)
            p->kind = TP_TERNARY;
        else if (t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_F16)
            p->kind = TP_FLOAT;
        else
            return braid_fail(BRAID_ERR_UNSUPPORTED, "trainer: tensor %s has type %s, which the trainer cannot train",
                              p->name, gguf_type_name(t->type));
        /* no decay on vectors (norms, gates, biases, A_log, dt_bias), the embeddings and Parcae's B, C
         * (ARCHITECTURES.md §2.5 init, §4.1 train) */
        p->decay = t->n_dims >= 2 && strcmp(p->name, "token_embd.weight") != 0 &&
                   strcmp(p->name, "token_ngram.weight") != 0 && strncmp(p->name, "parcae.", 7) != 0;
        p->offset = off;
        off += p->rows * p->cols;
    }
    tr->n_floats = off;
    size_t bytes = sizeof(float) * (size_t)off;
    tr->w = aligned_alloc64(bytes);
    tr->g = aligned_alloc64(bytes);
    tr->m = aligned_alloc64(bytes);
    tr->v = aligned_alloc64(bytes);
    if (!tr->w || !tr->g || !tr->m || !tr->v)
        return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory for %lld parameters", (long long)off);
    memset(tr->g, 0, bytes);
    memset(tr->m, 0, bytes);
    memset(tr->v, 0, bytes);
    for (int32_t i = 0; i < tr->n_params; i++) {
        const gguf_tensor *t = &f->tensors[i];
        tparam *p = &tr->params[i];
        float *w = tp_w(tr, i);
        const int64_t n = p->rows * p->cols;
        if (p->kind == TP_TERNARY) {
            const int64_t mr = p->rows / p->stack; /* one stacked matrix: its own qs, then its scales */
            for (int64_t k = 0; k < p->stack; k++)
                dequant_bt2(w + k * mr * p->cols, t->data + k * bt2_bytes(mr, p->cols), mr, p->cols);
            p->wq = aligned_alloc64(sizeof(float) * (size_t)n);
            if (!p->wq) return braid_fail(BRAID_ERR_NOMEM, "trainer: out of memory for %s", p->name);
        } else if (t->type == GGML_TYPE_F16) {
            const uint16_t *h = (const uint16_t *)t->data;
            for (int64_t j = 0; j < n; j++) w[j] = half_to_float(h[j]);
        } else {
            memcpy(w, t->data, sizeof(float) * (size_t)n);
        }
    }
    train_requantize(tr);
    return BRAID_OK;
}

static void requant_task(void *arg, int64_t i0, int64_t i1, int32_t thread) {
    braid_trainer *tr = arg;
    for (int64_t i = i0; i < i1; i++) {
        const tparam *p = &tr->params[i];
        if (p->kind == TP_TERNARY) fq_weight(p->wq, tp_w(tr, (int32_t)i), p->rows, p->cols);
    }
}

void train_requantize(braid_trainer *tr) { pool_parallel_for(tr->n_params, 1, requant_task, tr); }

int64_t train_export_size(const braid_trainer *tr, int32_t i) {
    const tparam *p = &tr->params[i];
    switch (p->gguf_type) {
    case BRAID_GGUF_TYPE_BT2: return (int64_t)bt2_bytes(p->rows, p->cols);
    case GGML_TYPE_F16: return 2 * p->rows * p->cols;
    default: return 4 * p->rows * p->cols;
    }
}

void train_export(const braid_trainer *tr, int32_t i, uint8_t *out) {
    const tparam *p = &tr->params[i];
    const float *w = tp_w(tr, i);
    const int64_t n = p->rows * p->cols;
    if (p->gguf_type == BRAID_GGUF_TYPE_BT2) {
        const int64_t mr = p->rows / p->stack; /* stacked: each matrix packed on its own, as the loader reads it */
        for (int64_t k = 0; k < p->stack; k++)
            bt2_pack_from_float(out + k * bt2_bytes(mr, p->cols), w + k * mr * p->cols, mr, p->cols);
    } else if (p->gguf_type == GGML_TYPE_F16) {
        uint16_t *h = (uint16_t *)out;
        for (int64_t j = 0; j < n; j++) h[j] = float_to_half(w[j]);
    } else {
        memcpy(out, w, sizeof(float) * (size_t)n);
    }
}
