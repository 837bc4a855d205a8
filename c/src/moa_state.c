/*
 * moa_state.c — the per-context side of a MoA model: the KV cache (ARCHITECTURES.md M.12),
 * its in-ball lists, and the scratch for max_batch tokens, all allocated at context creation;
 * reset, rewind, copy and the state-blob payload.
 *
 * The cache is one row per (layer, position): K, V, key norms and ball flags of both
 * attentions plus the LocalConv / SepConv inputs of that position (moa_model.c, layout).
 * Keeping every position's conv inputs (not only the last K−1) costs D + C floats per
 * position and layer, and makes rewind exact to any length: dropping the last tokens is
 * n_past −= k plus truncating the lists (docs/architecture.md, "MoA: KV cache").
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "context.h"
#include "moa.h"

typedef struct {
    uint8_t *base;
    size_t off;
} carver;

static void *carve(carver *c, size_t bytes) {
    void *p = c->base ? c->base + c->off : NULL;
    c->off += (bytes + 63) & ~(size_t)63;
    return p;
}

#define CF(n) ((float *)carve(c, (size_t)(n) * sizeof(float)))

static void layout(moa_ctx *s, const moa_hparams *hp, int64_t B, carver *c) {
    const int64_t D = hp->dim, Rh = hp->router_hidden, C = (int64_t)hp->conv_mult * D;
    const int64_t wide = BRAID_MAX(BRAID_MAX((int64_t)hp->mixer_hidden, (int64_t)hp->ffn_hidden), C);
    s->x = CF(B * D);
    s->u = CF(B * D);
    s->z = CF(B * D);
    s->y = CF(B * D);
    s->t1 = CF(B * D);
    s->t2 = CF(B * D);
    s->hr = CF(B * Rh);
    s->w = CF(B * MOA_PATHS);
    s->bg = CF(B * MOA_PATHS);
    s->q = CF(B * D);
    s->k = CF(B * D);
    s->v = CF(B * D);
    s->o = CF(B * D);
    s->hid = CF(B * BRAID_MAX(wide, (int64_t)hp->lr_rank));
    s->hid2 = CF(B * wide);
    s->gx = CF(B * D);
    s->gh = CF(B * Rh);
    s->pi = CF(B * MOA_BRANCHES);
    s->scores = CF((int64_t)BRAID_MAX(hp->attn_heads, hp->mqa_heads) * hp->max_pos);
    s->sel = carve(c, (size_t)B * sizeof(int32_t));
}

static int64_t n_lists(const moa_hparams *hp) { return (int64_t)hp->attn_heads + hp->mqa_heads; }

int32_t moa_context_init(braid_context *ctx) {
    const moa_model *mm = ctx->model->moa;
    const moa_hparams *hp = &mm->hp;
    moa_ctx *s = calloc(1, sizeof *s);
    if (!s) return braid_fail(BRAID_ERR_NOMEM, "out of memory for a MoA context");
    ctx->moa = s;
    const size_t rows = (size_t)hp->n_layer * (size_t)hp->max_pos;
    /* not zeroed: only rows [0, n_past) are ever read, and pages are faulted in as the
     * sequence grows */
    s->cache = aligned_alloc64(rows * (size_t)mm->lay.row * sizeof(float));
    s->lists = malloc(rows * (size_t)n_lists(hp) * sizeof(int32_t));
    s->counts = calloc((size_t)hp->n_layer * (size_t)n_lists(hp), sizeof(int32_t));
    carver c = {NULL, 0};
    layout(s, hp, ctx->max_batch, &c);
    s->arena = aligned_alloc64(c.off);
    if (!s->cache || !s->lists || !s->counts || !s->arena)
        return braid_fail(BRAID_ERR_NOMEM,
                          "out of memory: a MoA context for %d positions needs %zu bytes of KV cache and %zu of scratch",
                          hp->max_pos, rows * (size_t)mm->lay.row * sizeof(float), c.off);
    c = (carver){s->arena, 0};
    layout(s, hp, ctx->max_batch, &c);
    return BRAID_OK;
}

void moa_context_free(braid_context *ctx) {
    moa_ctx *s = ctx->moa;
    if (!s) return;
    aligned_free(s->cache);
    free(s->lists);
    free(s->counts);
    aligned_free(s->arena);
    free(s);
    ctx->moa = NULL;
}

void moa_context_reset(braid_context *ctx) {
    const moa_hparams *hp = &ctx->model->moa->hp;
    memset(ctx->moa->counts, 0, sizeof(int32_t) * (size_t)(hp->n_layer * n_lists(hp)));
}

/* Lists of layer il: [H + H_q][max_pos]; attention list j = head (MHA) or H + head (MQA). */
void moa_lists_rebuild(braid_context *ctx, int64_t n_past) {
    const moa_model *mm = ctx->model->moa;
    const moa_hparams *hp = &mm->hp;
    moa_ctx *s = ctx->moa;
    const int64_t NL = n_lists(hp), P = hp->max_pos, row = mm->lay.row;
    for (int il = 0; il < hp->n_layer; il++) {
        const moa_layer *L = &mm->layers[il];
        const float *rows = s->cache + (int64_t)il * P * row; /* [P, row] */
        for (int64_t j = 0; j < NL; j++) {
            const moa_attn *a = j < hp->attn_heads ? &L->mha : &L->mqa;
            const int64_t h = j < hp->attn_heads ? j : j - hp->attn_heads;
            int32_t *list = s->lists + ((int64_t)il * NL + j) * P;
            int32_t cnt = 0;
            for (int64_t p = 0; p < n_past; p++)
                if (rows[p * row + a->off_in + h] != 0.0f) list[cnt++] = (int32_t)p;
            s->counts[il * NL + j] = cnt;
        }
    }
}

int32_t moa_context_rewind(braid_context *ctx, int64_t n_tokens) {
    const moa_hparams *hp = &ctx->model->moa->hp;
    moa_ctx *s = ctx->moa;
    const int64_t keep = ctx->n_past - n_tokens, NL = n_lists(hp), P = hp->max_pos;
    /* lists are ascending: drop the entries at positions >= keep */
    for (int64_t i = 0; i < hp->n_layer * NL; i++) {
        const int32_t *list = s->lists + i * P;
        int32_t cnt = s->counts[i];
        while (cnt > 0 && list[cnt - 1] >= keep) cnt--;
        s->counts[i] = cnt;
    }
    ctx->n_past = keep;
    return BRAID_OK;
}

int64_t moa_state_payload_bytes(const braid_context *ctx, int64_t n_past) {
    const moa_model *mm = ctx->model->moa;
    return (int64_t)mm->hp.n_layer * n_past * mm->lay.row * (int64_t)sizeof(float);
}

/* Payload: for each layer, the cache rows [0, n_past) ([n_past, row] f32, docs/format.md). */
void moa_state_write(const braid_context *ctx, uint8_t *payload) {
    const moa_model *mm = ctx->model->moa;
    const int64_t P = mm->hp.max_pos, row = mm->lay.row, n = ctx->n_past;
    const size_t bytes = (size_t)(n * row) * sizeof(float);
    for (int il = 0; il < mm->hp.n_layer; il++)
        memcpy(payload + (size_t)il * bytes, ctx->moa->cache + (int64_t)il * P * row, bytes);
}

void moa_state_read(braid_context *ctx, const uint8_t *payload, int64_t n_past) {
    const moa_model *mm = ctx->model->moa;
    const int64_t P = mm->hp.max_pos, row = mm->lay.row;
    const size_t bytes = (size_t)(n_past * row) * sizeof(float);
    for (int il = 0; il < mm->hp.n_layer; il++)
        memcpy(ctx->moa->cache + (int64_t)il * P * row, payload + (size_t)il * bytes, bytes);
    moa_lists_rebuild(ctx, n_past);
}

void moa_context_copy(braid_context *dst, const braid_context *src) {
    const moa_model *mm = src->model->moa;
    const moa_hparams *hp = &mm->hp;
    const int64_t P = hp->max_pos, row = mm->lay.row, n = src->n_past, NL = n_lists(hp);
    for (int il = 0; il < hp->n_layer; il++)
        memcpy(dst->moa->cache + (int64_t)il * P * row, src->moa->cache + (int64_t)il * P * row,
               (size_t)(n * row) * sizeof(float));
    for (int64_t i = 0; i < hp->n_layer * NL; i++) {
        dst->moa->counts[i] = src->moa->counts[i];
        memcpy(dst->moa->lists + i * P, src->moa->lists + i * P, sizeof(int32_t) * (size_t)src->moa->counts[i]);
    }
}
