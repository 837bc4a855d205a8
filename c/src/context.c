/*
 * context.c — everything under "context" in braid.h: creation (all scratch
 * for max_batch tokens), eval entry points, abort flag, reset, and state
 * save/load/copy with the blob format of docs/format.md:
 *
 *   offset  size  field
 *   0       4     magic "BRST"
 *   4       4     u32 version (1)
 *   8       8     u64 model fingerprint (FNV-1a of the hyper-parameters)
 *   16      8     i64 n_past
 *   24      8     u64 payload length (bytes)
 *   32      P     payload: every layer's recurrent state in layer order, f32 (a loop
 *                 layer of a looping model: chimera.loop.max copies, iteration 1 first)
 *                 (GD: S [H, d_v, d_k], conv tails q, k, v [K-1, channels];
 *                  XM, TM, SK: see docs/format.md and mlstm.h / titans.h / tsp.h)
 *   32+P    4     u32 CRC-32 of bytes [0, 32+P)
 * Little-endian host byte order (the library only targets x86-64 for now).
 */
#include "context.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "chimera.h"
#include "common.h"
#include "moa.h"

#define STATE_MAGIC "BRST"
#define STATE_VERSION 1u
#define STATE_HEADER 32
#define STATE_TRAILER 4

/* ---- CRC-32 ---------------------------------------------------------------------- */

static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

uint32_t braid_crc32(uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

/* ---- creation ---------------------------------------------------------------------- */

/* Carves 64-byte aligned pieces out of one allocation (two passes: size, then assign). */
typedef struct {
    uint8_t *base;
    size_t off;
} carver;

static void *carve(carver *c, size_t bytes) {
    void *p = c->base ? c->base + c->off : NULL;
    c->off += (bytes + 63) & ~(size_t)63;
    return p;
}

static act_q8 *carve_act(carver *c, int64_t B, int64_t cols) {
    act_q8 *act = carve(c, (size_t)B * sizeof(act_q8));
    int8_t *q = carve(c, (size_t)(B * cols));
    float *s = carve(c, (size_t)(B * (cols / BT2_ACT_BLOCK)) * sizeof(float));
    int32_t *sum = carve(c, (size_t)(B * (cols / BT2_ACT_BLOCK)) * sizeof(int32_t));
    if (c->base)
        for (int64_t t = 0; t < B; t++)
            act[t] = (act_q8){q + t * cols, s + t * (cols / BT2_ACT_BLOCK), sum + t * (cols / BT2_ACT_BLOCK)};
    return act;
}

#define CARVE_F(n) ((float *)carve(c, (size_t)(n) * sizeof(float)))

static void layout(braid_context *ctx, carver *c) {
    const braid_model *m = ctx->model;
    const model_hparams *hp = &m->hp;
    const int64_t B = ctx->max_batch, D = hp->n_embd, H = hp->gdn.n_head;
    const int64_t Hdk = H * hp->gdn.d_k, Hdv = H * hp->gdn.d_v;
    ctx->state = CARVE_F(m->state_floats);
    ctx->x = CARVE_F(B * D);
    ctx->xn = CARVE_F(B * D);
    ctx->y = CARVE_F(B * D);
    ctx->ffn_gate = CARVE_F(B * ctx->ff_cols);
    ctx->ffn_up = CARVE_F(B * ctx->ff_cols);
    ctx->act = carve_act(c, B, ctx->act_cols);
    if (m->n_of[MIXER_GD] || m->n_of[MIXER_SK]) {
        gdn_buffers *g = &ctx->gdn;
        g->q = CARVE_F(B * Hdk);
        g->k = CARVE_F(B * Hdk);
        g->qc = CARVE_F(B * Hdk);
        g->kc = CARVE_F(B * Hdk);
        g->v = CARVE_F(B * Hdv);
        g->g = CARVE_F(B * Hdv);
        g->vc = CARVE_F(B * Hdv);
        g->o = CARVE_F(B * Hdv);
        g->a = CARVE_F(B * H);
        g->b = CARVE_F(B * H);
        g->beta = CARVE_F(B * H);
        g->gl = CARVE_F(B * H);
        g->chunk = CARVE_F(H * gdn_chunk_scratch_floats(hp->gdn.chunk, hp->gdn.d_v));
        g->act = ctx->act;
    }
    if (m->n_of[MIXER_XM]) {
        const int64_t Hx = hp->xm.n_head, Hd = Hx * hp->xm.head_dim;
        mlstm_buffers *x = &ctx->xm;
        x->q = CARVE_F(B * Hd);
        x->k = CARVE_F(B * Hd);
        x->v = CARVE_F(B * Hd);
        x->og = CARVE_F(B * Hd);
        x->o = CARVE_F(B * Hd);
        x->ig = CARVE_F(B * Hx);
        x->lf = CARVE_F(B * Hx);
        x->act = ctx->act;
    }
    if (m->n_of[MIXER_TM]) {
        const int64_t Ht = hp->tm.n_head, Hd = Ht * hp->tm.head_dim;
        titans_buffers *t = &ctx->tm;
        t->q = CARVE_F(B * Hd);
        t->k = CARVE_F(B * Hd);
        t->v = CARVE_F(B * Hd);
        t->y = CARVE_F(B * Hd);
        t->km = CARVE_F(B * Hd);
        t->vm = CARVE_F(B * Hd);
        t->o = CARVE_F(B * Hd);
        t->ga = CARVE_F(B * Ht);
        t->ge = CARVE_F(B * Ht);
        t->gt = CARVE_F(B * Ht);
        t->head = CARVE_F(Ht * titans_head_scratch_floats(&hp->tm));
        t->act = ctx->act;
    }
    if (m->n_of[MIXER_SK]) {
        const int64_t Ds = hp->sk.sketch_dim;
        tsp_buffers *k = &ctx->sk;
        k->s = CARVE_F(B * Ds);
        k->r = CARVE_F(B * Ds);
        k->f = CARVE_F(B * Ds);
        k->en = CARVE_F(B * 5);
    }
    if (hp->n_moe_layers) {
        const int64_t E = hp->moe.n_expert, K = hp->moe.n_used;
        moe_buffers *e = &ctx->moe;
        e->scores = CARVE_F(B * E);
        e->sel = carve(c, (size_t)(B * K) * sizeof(int32_t));
        e->wsel = CARVE_F(B * K);
        e->tok = carve(c, (size_t)B * sizeof(int32_t));
        e->gather = carve(c, (size_t)B * sizeof(act_q8));
        e->act = ctx->act;
        ctx->act2 = carve_act(c, B, ctx->act_cols);
        e->act2 = ctx->act2;
        e->gate = ctx->ffn_gate;
        e->up = ctx->ffn_up;
        e->eo = CARVE_F(B * D);
        e->slot = CARVE_F(B * K * D);
        e->rows = B;
    }
    if (hp->loop.enabled) {
        ctx->inj = CARVE_F(B * D);
        ctx->loop_prev = CARVE_F(B * D);
        ctx->loop_out = CARVE_F(B * D);
        ctx->loop_row = carve(c, (size_t)B * sizeof(int32_t));
    }
    if (hp->span_gate) {
        ctx->span_in = CARVE_F(B * (D + 1));
        ctx->span_g = CARVE_F(B * D);
    }
}

BRAID_API int32_t braid_context_new(const braid_model *model, int32_t max_batch, braid_context **out) {
    if (!out) return braid_fail(BRAID_ERR_INVALID_ARG, "braid_context_new: out is NULL");
    *out = NULL;
    if (!model) return braid_fail(BRAID_ERR_INVALID_ARG, "braid_context_new: model is NULL");
    if (max_batch < 1 || max_batch > (1 << 20))
        return braid_fail(BRAID_ERR_INVALID_ARG, "braid_context_new: max_batch %d is outside [1, 1048576]", max_batch);
    braid_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return braid_fail(BRAID_ERR_NOMEM, "out of memory for a context");
    const model_hparams *hp = &model->hp;
    ctx->model = model;
    ctx->max_batch = max_batch;
    ctx->n_loops = hp->loop.def;
    ctx->loop_exit_min = 1;
    atomic_init(&ctx->abort, 0);
    if (model->moa) { /* the MoA architecture keeps its own cache and scratch (moa_state.c) */
        int32_t st = moa_context_init(ctx);
        if (st) {
            braid_context_free(ctx);
            return st;
        }
        braid_clear_error();
        *out = ctx;
        return BRAID_OK;
    }
    const braid_model *m = model;
    int64_t ff = hp->n_ff, cols = BRAID_MAX(hp->n_embd, (int64_t)hp->gdn.n_head * hp->gdn.d_v);
    if (m->n_of[MIXER_XM]) cols = BRAID_MAX(cols, (int64_t)hp->xm.n_head * hp->xm.head_dim);
    if (m->n_of[MIXER_TM]) cols = BRAID_MAX(cols, (int64_t)hp->tm.n_head * hp->tm.head_dim);
    if (hp->n_moe_layers) ff = BRAID_MAX(ff, (int64_t)BRAID_MAX(hp->moe.n_shared, 1) * hp->moe.ff);
    ctx->ff_cols = ff;
    ctx->act_cols = BRAID_MAX(cols, ff);
    carver c = {NULL, 0};
    layout(ctx, &c);
    ctx->arena = aligned_alloc64(c.off);
    if (!ctx->arena) {
        free(ctx);
        return braid_fail(BRAID_ERR_NOMEM, "out of memory: a context for %d tokens needs %zu bytes", max_batch, c.off);
    }
    c = (carver){ctx->arena, 0};
    layout(ctx, &c);
    memset(ctx->state, 0, (size_t)model->state_floats * sizeof(float));
    braid_clear_error();
    *out = ctx;
    return BRAID_OK;
}

BRAID_API void braid_context_free(braid_context *ctx) {
    if (!ctx) return;
    moa_context_free(ctx);
    aligned_free(ctx->arena);
    free(ctx);
}

/* ---- eval ---------------------------------------------------------------------------- */

static int32_t check_eval(const braid_context *ctx, const int32_t *tokens, int32_t n, const float *out) {
    if (!ctx || !tokens || !out) return braid_fail(BRAID_ERR_INVALID_ARG, "eval: NULL argument");
    if (n < 1) return braid_fail(BRAID_ERR_INVALID_ARG, "eval: n_tokens %d < 1", n);
    if (n > ctx->max_batch)
        return braid_fail(BRAID_ERR_CAPACITY, "eval: %d tokens exceed the context's max_batch %d", n, ctx->max_batch);
    const int32_t V = ctx->model->hp.n_vocab;
    for (int32_t t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return braid_fail(BRAID_ERR_INVALID_ARG, "eval: token %d at position %d is outside [0, %d)", tokens[t], t, V);
    return BRAID_OK;
}

static int32_t run(braid_context *ctx, const int32_t *tokens, int32_t n, int all_logits, float *logits, float *hidden) {
    int32_t st = check_eval(ctx, tokens, n, logits ? logits : hidden);
    if (st) return st;
    if (ctx->moa) {
        const int32_t max_pos = ctx->model->moa->hp.max_pos;
        if (ctx->n_past + n > max_pos)
            return braid_fail(BRAID_ERR_CAPACITY,
                              "eval: %lld past + %d new tokens exceed the model's context length %d "
                              "(moa.max_position_embeddings); rewind, reset or start a new context",
                              (long long)ctx->n_past, n, max_pos);
        st = moa_forward(ctx, tokens, n, all_logits, logits, hidden);
    } else {
        st = chimera_forward(ctx, tokens, n, all_logits, logits, hidden);
    }
    if (st) return st;
    if (!ctx->model->hp.loop.enabled) ctx->last_loops = 1, ctx->last_loop_sum = n; /* else parcae_loop sets them */
    ctx->n_past += n;
    braid_clear_error();
    return BRAID_OK;
}

static int32_t context_eval_impl(braid_context *ctx, const int32_t *tokens, int32_t n_tokens, int32_t all_logits,
                                     float *logits_out) {
    if (!logits_out) return braid_fail(BRAID_ERR_INVALID_ARG, "eval: logits_out is NULL");
    return run(ctx, tokens, n_tokens, all_logits != 0, logits_out, NULL);
}

static int32_t context_eval_hidden_impl(braid_context *ctx, const int32_t *tokens, int32_t n_tokens,
                                            float *hidden_out) {
    if (!hidden_out) return braid_fail(BRAID_ERR_INVALID_ARG, "eval_hidden: hidden_out is NULL");
    return run(ctx, tokens, n_tokens, 1, NULL, hidden_out);
}

BRAID_API int64_t braid_context_n_past(const braid_context *ctx) { return ctx ? ctx->n_past : 0; }

static int32_t context_reset_impl(braid_context *ctx) {
    if (!ctx) return braid_fail(BRAID_ERR_INVALID_ARG, "reset: ctx is NULL");
    if (ctx->moa)
        moa_context_reset(ctx);
    else
        memset(ctx->state, 0, (size_t)ctx->model->state_floats * sizeof(float));
    ctx->n_past = 0;
    ctx->n_loops = ctx->model->hp.loop.def;
    ctx->loop_exit = 0.0f;
    ctx->loop_exit_min = 1;
    ctx->last_loops = 0;
    ctx->last_loop_sum = 0;
    braid_clear_error();
    return BRAID_OK;
}

static int32_t context_set_loops_impl(braid_context *ctx, int32_t n_loops) {
    if (!ctx) return braid_fail(BRAID_ERR_INVALID_ARG, "set_loops: ctx is NULL");
    const int32_t max = ctx->model->hp.loop.max;
    if (n_loops < 1 || n_loops > max)
        return braid_fail(BRAID_ERR_INVALID_ARG, "set_loops: %d loops is outside [1, %d]%s", n_loops, max,
                          ctx->model->hp.loop.enabled ? " (chimera.loop.max)" : " (the model does not loop)");
    ctx->n_loops = n_loops;
    braid_clear_error();
    return BRAID_OK;
}

BRAID_API int32_t braid_context_loops(const braid_context *ctx) { return ctx ? ctx->n_loops : 0; }

static int32_t context_set_loop_exit_impl(braid_context *ctx, float threshold, int32_t min_loops) {
    if (!ctx) return braid_fail(BRAID_ERR_INVALID_ARG, "set_loop_exit: ctx is NULL");
    if (!(threshold >= 0.0f) || !isfinite(threshold))
        return braid_fail(BRAID_ERR_INVALID_ARG, "set_loop_exit: threshold %g is not a finite number >= 0", (double)threshold);
    const int32_t max = ctx->model->hp.loop.max;
    if (threshold > 0.0f && !ctx->model->hp.loop.enabled)
        return braid_fail(BRAID_ERR_INVALID_ARG, "set_loop_exit: the model does not loop (only threshold 0 is accepted)");
    if (ctx->model->hp.loop.enabled && (min_loops < 1 || min_loops > max))
        return braid_fail(BRAID_ERR_INVALID_ARG, "set_loop_exit: min_loops %d is outside [1, %d] (chimera.loop.max)",
                          min_loops, max);
    ctx->loop_exit = threshold;
    ctx->loop_exit_min = min_loops < 1 ? 1 : min_loops;
    braid_clear_error();
    return BRAID_OK;
}

BRAID_API int32_t braid_context_last_loops(const braid_context *ctx) { return ctx ? ctx->last_loops : 0; }
BRAID_API int64_t braid_context_last_loop_sum(const braid_context *ctx) { return ctx ? ctx->last_loop_sum : 0; }

BRAID_API void braid_context_abort(braid_context *ctx) {
    if (ctx) atomic_store(&ctx->abort, 1);
}

BRAID_API void braid_context_abort_clear(braid_context *ctx) {
    if (ctx) atomic_store(&ctx->abort, 0);
}

/* ---- state blobs ---------------------------------------------------------------------- */

/* MoA: the KV cache rows of the n_past positions (moa_state.c), so the size follows n_past. */
static int64_t payload_bytes(const braid_context *ctx) {
    if (ctx->moa) return moa_state_payload_bytes(ctx, ctx->n_past);
    return ctx->model->state_floats * (int64_t)sizeof(float);
}

BRAID_API int64_t braid_context_state_size(const braid_context *ctx) {
    if (!ctx) return 0;
    return STATE_HEADER + payload_bytes(ctx) + STATE_TRAILER;
}

static int32_t context_state_save_impl(const braid_context *ctx, uint8_t *buf, int64_t buf_size) {
    if (!ctx || !buf) return braid_fail(BRAID_ERR_INVALID_ARG, "state_save: NULL argument");
    int64_t need = braid_context_state_size(ctx);
    if (buf_size < need)
        return braid_fail(BRAID_ERR_CAPACITY, "state_save: buffer of %lld bytes, need %lld", (long long)buf_size,
                          (long long)need);
    uint32_t version = STATE_VERSION;
    uint64_t fp = ctx->model->fingerprint, plen = (uint64_t)payload_bytes(ctx);
    int64_t n_past = ctx->n_past;
    memcpy(buf, STATE_MAGIC, 4);
    memcpy(buf + 4, &version, 4);
    memcpy(buf + 8, &fp, 8);
    memcpy(buf + 16, &n_past, 8);
    memcpy(buf + 24, &plen, 8);
    if (ctx->moa)
        moa_state_write(ctx, buf + STATE_HEADER);
    else
        memcpy(buf + STATE_HEADER, ctx->state, (size_t)plen);
    uint32_t crc = braid_crc32(0, buf, (size_t)(STATE_HEADER + plen));
    memcpy(buf + STATE_HEADER + plen, &crc, 4);
    braid_clear_error();
    return BRAID_OK;
}

static int32_t context_state_load_impl(braid_context *ctx, const uint8_t *buf, int64_t buf_size) {
    if (!ctx || !buf) return braid_fail(BRAID_ERR_INVALID_ARG, "state_load: NULL argument");
    int64_t need = braid_context_state_size(ctx);
    if (buf_size < STATE_HEADER + STATE_TRAILER)
        return braid_fail(BRAID_ERR_STATE, "state_load: %lld bytes is too short for a state blob", (long long)buf_size);
    if (memcmp(buf, STATE_MAGIC, 4) != 0) return braid_fail(BRAID_ERR_STATE, "state_load: not a braid state blob (bad magic)");
    uint32_t version;
    uint64_t fp, plen;
    int64_t n_past;
    memcpy(&version, buf + 4, 4);
    memcpy(&fp, buf + 8, 8);
    memcpy(&n_past, buf + 16, 8);
    memcpy(&plen, buf + 24, 8);
    if (version != STATE_VERSION)
        return braid_fail(BRAID_ERR_STATE, "state_load: blob version %u, this build reads %u", version, STATE_VERSION);
    if (fp != ctx->model->fingerprint)
        return braid_fail(BRAID_ERR_STATE, "state_load: the blob belongs to another model (fingerprint %016llx, model %016llx)",
                          (unsigned long long)fp, (unsigned long long)ctx->model->fingerprint);
    if (ctx->moa) { /* the payload length follows the blob's n_past */
        if (n_past < 0 || n_past > ctx->model->moa->hp.max_pos)
            return braid_fail(BRAID_ERR_STATE, "state_load: n_past %lld is outside [0, %d] (the model's context length)",
                              (long long)n_past, ctx->model->moa->hp.max_pos);
        need = STATE_HEADER + moa_state_payload_bytes(ctx, n_past) + STATE_TRAILER;
        if (plen != (uint64_t)moa_state_payload_bytes(ctx, n_past) || buf_size != need)
            return braid_fail(BRAID_ERR_STATE, "state_load: blob is %lld bytes with a %llu-byte payload, expected %lld for %lld positions",
                              (long long)buf_size, (unsigned long long)plen, (long long)need, (long long)n_past);
    } else if (plen != (uint64_t)payload_bytes(ctx) || buf_size != need)
        return braid_fail(BRAID_ERR_STATE, "state_load: blob is %lld bytes with a %llu-byte payload, expected %lld with %lld",
                          (long long)buf_size, (unsigned long long)plen, (long long)need, (long long)payload_bytes(ctx));
    uint32_t crc;
    memcpy(&crc, buf + STATE_HEADER + plen, 4);
    if (braid_crc32(0, buf, (size_t)(STATE_HEADER + plen)) != crc)
        return braid_fail(BRAID_ERR_STATE, "state_load: checksum mismatch (corrupt blob)");
    if (n_past < 0) return braid_fail(BRAID_ERR_STATE, "state_load: negative n_past %lld", (long long)n_past);
    for (uint64_t i = 0; i < plen / 4; i++) {
        float v;
        memcpy(&v, buf + STATE_HEADER + 4 * i, 4);
        if (!isfinite(v)) return braid_fail(BRAID_ERR_STATE, "state_load: non-finite value in the state at float %llu", (unsigned long long)i);
    }
    if (ctx->moa)
        moa_state_read(ctx, buf + STATE_HEADER, n_past);
    else
        memcpy(ctx->state, buf + STATE_HEADER, (size_t)plen);
    ctx->n_past = n_past;
    braid_clear_error();
    return BRAID_OK;
}

static int32_t context_copy_impl(braid_context *dst, const braid_context *src) {
    if (!dst || !src) return braid_fail(BRAID_ERR_INVALID_ARG, "context_copy: NULL argument");
    if (dst->model->fingerprint != src->model->fingerprint || dst->model->state_floats != src->model->state_floats)
        return braid_fail(BRAID_ERR_STATE, "context_copy: the contexts belong to different models");
    if (dst != src && src->moa)
        moa_context_copy(dst, src);
    else if (dst != src)
        memcpy(dst->state, src->state, (size_t)src->model->state_floats * sizeof(float));
    dst->n_past = src->n_past;
    braid_clear_error();
    return BRAID_OK;
}

static int32_t context_rewind_impl(braid_context *ctx, int32_t n_tokens) {
    if (!ctx) return braid_fail(BRAID_ERR_INVALID_ARG, "rewind: ctx is NULL");
    if (!ctx->moa)
        return braid_fail(BRAID_ERR_UNSUPPORTED,
                          "rewind: not supported for chimera models (their recurrent state cannot drop tokens); "
                          "save the state before the tokens and restore it instead");
    if (n_tokens < 0 || n_tokens > ctx->n_past)
        return braid_fail(BRAID_ERR_INVALID_ARG, "rewind: %d tokens is outside [0, n_past = %lld]", n_tokens,
                          (long long)ctx->n_past);
    moa_context_rewind(ctx, n_tokens);
    braid_clear_error();
    return BRAID_OK;
}

/* ---- public entry points: record failures on the context ----------------------------------
 * braid_last_error() is thread-local, but bindings such as koffi run these calls
 * on a worker thread and read the message later from another one; the context
 * keeps its own copy so braid_context_last_error() is right on any thread. */

static int32_t recorded(const braid_context *ctx, int32_t st) {
    if (ctx) {
        /* The message slot is the one field a failing const call may write:
         * it is diagnostics, not state. */
        char *slot = ((braid_context *)ctx)->last_error;
        snprintf(slot, sizeof ((braid_context *)ctx)->last_error, "%s", st ? braid_last_error() : "");
    }
    return st;
}

BRAID_API const char *braid_context_last_error(const braid_context *ctx) { return ctx ? ctx->last_error : ""; }

BRAID_API int32_t braid_context_eval(braid_context *ctx, const int32_t *tokens, int32_t n_tokens, int32_t all_logits,
                                     float *logits_out) {
    return recorded(ctx, context_eval_impl(ctx, tokens, n_tokens, all_logits, logits_out));
}

BRAID_API int32_t braid_context_eval_hidden(braid_context *ctx, const int32_t *tokens, int32_t n_tokens,
                                            float *hidden_out) {
    return recorded(ctx, context_eval_hidden_impl(ctx, tokens, n_tokens, hidden_out));
}

BRAID_API int32_t braid_context_reset(braid_context *ctx) { return recorded(ctx, context_reset_impl(ctx)); }

BRAID_API int32_t braid_context_set_loops(braid_context *ctx, int32_t n_loops) {
    return recorded(ctx, context_set_loops_impl(ctx, n_loops));
}

BRAID_API int32_t braid_context_set_loop_exit(braid_context *ctx, float threshold, int32_t min_loops) {
    return recorded(ctx, context_set_loop_exit_impl(ctx, threshold, min_loops));
}

BRAID_API int32_t braid_context_state_save(const braid_context *ctx, uint8_t *buf, int64_t buf_size) {
    return recorded(ctx, context_state_save_impl(ctx, buf, buf_size));
}

BRAID_API int32_t braid_context_state_load(braid_context *ctx, const uint8_t *buf, int64_t buf_size) {
    return recorded(ctx, context_state_load_impl(ctx, buf, buf_size));
}

BRAID_API int32_t braid_context_copy(braid_context *dst, const braid_context *src) {
    return recorded(dst, context_copy_impl(dst, src));
}

BRAID_API int32_t braid_context_rewind(braid_context *ctx, int32_t n_tokens) {
    return recorded(ctx, context_rewind_impl(ctx, n_tokens));
}
