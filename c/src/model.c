/*
 * model.c — braid_model_load/free and the model queries.
 *
 * Load = map the GGUF file, read the hyper-parameters (docs/format.md,
 * nothing assumed about sizes), then find every tensor the layer types need
 * and check its type and shape before keeping a pointer into the mapping.
 */
#include "model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "moa.h"
#include "ngram.h"

/* ---- metadata ---------------------------------------------------------------- */

static int32_t read_hparams(const gguf_file *f, model_hparams *hp) {
    int32_t st;
    if ((st = gguf_get_int_in(f, "chimera.vocab_size", 1, 1 << 24, &hp->n_vocab))) return st;
    if ((st = gguf_get_int_in(f, "chimera.embedding_length", 128, 1 << 16, &hp->n_embd))) return st;
    if ((st = gguf_get_int_in(f, "chimera.feed_forward_length", 128, 1 << 18, &hp->n_ff))) return st;
    if ((st = gguf_get_int_in(f, "chimera.block_count", 1, 4096, &hp->n_layer))) return st;
    if ((st = gguf_get_int_in(f, "chimera.context_length", 0, INT32_MAX, &hp->context_length))) return st;
    if ((st = gguf_get_f32(f, "chimera.rms_norm_eps", &hp->rms_eps))) return st;
    if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f))
        return braid_fail(BRAID_ERR_FORMAT, "metadata chimera.rms_norm_eps = %g is not in (0, 1)", hp->rms_eps);
    if (hp->n_embd % BT2_GROUP || hp->n_ff % BT2_GROUP)
        return braid_fail(BRAID_ERR_FORMAT, "embedding_length %d and feed_forward_length %d must be multiples of %d",
                          hp->n_embd, hp->n_ff, BT2_GROUP);
    gdn_hparams *g = &hp->gdn;
    if ((st = gguf_get_int_in(f, "chimera.gdn.head_count", 1, 4096, &g->n_head))) return st;
    if ((st = gguf_get_int_in(f, "chimera.gdn.head_dim", 1, 1024, &g->d_k))) return st;
    if ((st = gguf_get_int_in(f, "chimera.gdn.value_dim", 1, 1024, &g->d_v))) return st;
    if ((st = gguf_get_int_in(f, "chimera.gdn.conv_kernel", 1, 64, &g->conv_k))) return st;
    if ((st = gguf_get_int_in(f, "chimera.gdn.chunk_size", 1, 4096, &g->chunk))) return st;
    if (((int64_t)g->n_head * g->d_v) % BT2_GROUP)
        return braid_fail(BRAID_ERR_FORMAT, "gdn head_count*value_dim = %lld must be a multiple of %d",
                          (long long)g->n_head * g->d_v, BT2_GROUP);
    if ((int64_t)g->n_head * g->d_k > (1 << 18) || (int64_t)g->n_head * g->d_v > (1 << 18))
        return braid_fail(BRAID_ERR_FORMAT, "gdn projections too wide (%d heads)", g->n_head);
    return BRAID_OK;
}

/* Parcae looping (§2.11, docs/format.md): absent chimera.loop.loop = no looping. The three
 * inclusive ranges must tile the layers in order: prelude [0, a], loop [a+1, b], coda [b+1, L-1]. */
static int32_t get_range(const gguf_file *f, const char *key, int32_t out[2]) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return braid_fail(BRAID_ERR_FORMAT, "missing metadata key '%s'", key);
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_n != 2)
        return braid_fail(BRAID_ERR_FORMAT, "metadata %s must be an array of two layer indices [first, last]", key);
    for (uint64_t i = 0; i < 2; i++) {
        int64_t v;
        int32_t st = gguf_arr_int(f, kv, i, &v);
        if (st) return st;
        if (v < 0 || v > 4096) return braid_fail(BRAID_ERR_FORMAT, "metadata %s[%llu] = %lld is not a layer index", key, (unsigned long long)i, (long long)v);
        out[i] = (int32_t)v;
    }
    return BRAID_OK;
}

static int32_t read_loop_hparams(const gguf_file *f, model_hparams *hp) {
    loop_hparams *lp = &hp->loop;
    lp->max = lp->def = 1;
    if (!gguf_find_kv(f, "chimera.loop.loop")) return BRAID_OK;
    int32_t st, pre[2], loop[2], coda[2];
    if ((st = get_range(f, "chimera.loop.prelude", pre))) return st;
    if ((st = get_range(f, "chimera.loop.loop", loop))) return st;
    if ((st = get_range(f, "chimera.loop.coda", coda))) return st;
    if (pre[0] != 0 || pre[1] < pre[0] || loop[0] != pre[1] + 1 || loop[1] < loop[0] || coda[0] != loop[1] + 1 ||
        coda[1] < coda[0] || coda[1] != hp->n_layer - 1)
        return braid_fail(BRAID_ERR_FORMAT,
                          "chimera.loop ranges prelude [%d, %d], loop [%d, %d], coda [%d, %d] do not tile layers 0..%d "
                          "in order (each range non-empty)",
                          pre[0], pre[1], loop[0], loop[1], coda[0], coda[1], hp->n_layer - 1);
    if ((st = gguf_get_int_in(f, "chimera.loop.max", 1, 64, &lp->max))) return st;
    if ((st = gguf_get_int_in(f, "chimera.loop.default", 1, lp->max, &lp->def))) return st;
    gguf_str bt;
    if ((st = gguf_get_str(f, "chimera.loop.backward_truncation", &bt))) return st;
    if (gguf_str_eq(bt, "half"))
        lp->bptt_half = 1;
    else if (!gguf_str_eq(bt, "full"))
        return braid_fail(BRAID_ERR_FORMAT, "chimera.loop.backward_truncation '%.*s' is not \"half\" or \"full\"",
                          (int)BRAID_MIN(bt.len, 32), bt.ptr);
    lp->enabled = 1;
    lp->loop0 = loop[0];
    lp->coda0 = coda[0];
    return BRAID_OK;
}

/* ---- tensors ------------------------------------------------------------------ */

/* Finds `name` and checks type and GGUF dims ne[0..nd) (ne[0] fastest = cols). */
static int32_t want_nd(const gguf_file *f, const char *name, uint32_t type, uint32_t nd, const int64_t *ne,
                       const void **out) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) return braid_fail(BRAID_ERR_FORMAT, "missing tensor '%s'", name);
    if (t->type != type)
        return braid_fail(BRAID_ERR_FORMAT, "tensor '%s' has type %s, expected %s", name, gguf_type_name(t->type),
                          gguf_type_name(type));
    int ok = t->n_dims == nd;
    for (uint32_t i = 0; ok && i < nd; i++) ok = t->ne[i] == ne[i];
    if (!ok) {
        char want_s[96];
        int o = snprintf(want_s, sizeof want_s, "[");
        for (uint32_t i = 0; i < nd && o < (int)sizeof want_s; i++)
            o += snprintf(want_s + o, sizeof want_s - (size_t)o, "%s%lld", i ? ", " : "", (long long)ne[i]);
        if (o < (int)sizeof want_s) snprintf(want_s + o, sizeof want_s - (size_t)o, "]");
        return braid_fail(BRAID_ERR_FORMAT, "tensor '%s' has dims [%lld, %lld, %lld, %lld] (n_dims %u), expected %s",
                          name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                          t->n_dims, want_s);
    }
    size_t align = type == GGML_TYPE_F16 ? 2 : 4;
    if ((uintptr_t)t->data % align)
        return braid_fail(BRAID_ERR_FORMAT, "tensor '%s' data is not %zu-byte aligned", name, align);
    *out = t->data;
    return BRAID_OK;
}

/* [rows, cols]; rows = 0 for a vector [cols]. */
static int32_t want(const gguf_file *f, const char *name, uint32_t type, int64_t rows, int64_t cols, const void **out) {
    int64_t ne[2] = {cols, rows};
    return want_nd(f, name, type, rows ? 2 : 1, ne, out);
}

static int32_t want_blk(const gguf_file *f, int il, const char *suffix, uint32_t type, int64_t rows, int64_t cols,
                        const void **out) {
    char name[128];
    snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
    return want(f, name, type, rows, cols, out);
}

/* A float matrix [rows, cols] stored as F32 or F16, whichever the file chose (docs/format.md). */
static int32_t want_fmat(const gguf_file *f, const char *name, int64_t rows, int64_t cols, fmat *out) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) return braid_fail(BRAID_ERR_FORMAT, "missing tensor '%s'", name);
    if (t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_F16)
        return braid_fail(BRAID_ERR_FORMAT, "tensor '%s' has type %s, expected F32 or F16", name,
                          gguf_type_name(t->type));
    const void *p;
    int32_t st = want(f, name, t->type, rows, cols, &p);
    if (st) return st;
    *out = (fmat){p, t->type};
    return BRAID_OK;
}

static int32_t want_blk_fmat(const gguf_file *f, int il, const char *suffix, int64_t rows, int64_t cols, fmat *out) {
    char name[128];
    snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
    return want_fmat(f, name, rows, cols, out);
}

/* [n, rows, cols] (GGUF dims [cols, rows, n]). */
static int32_t want_blk3(const gguf_file *f, int il, const char *suffix, uint32_t type, int64_t n, int64_t rows,
                         int64_t cols, const void **out) {
    char name[128];
    snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
    int64_t ne[3] = {cols, rows, n};
    return want_nd(f, name, type, 3, ne, out);
}

#define WANT3(suffix, type, n, rows, cols, field)                                                                    \
    do {                                                                                                             \
        const void *p_;                                                                                              \
        if ((st = want_blk3(f, il, suffix, type, n, rows, cols, &p_))) return st;                                    \
        field = p_;                                                                                                  \
    } while (0)

#define WANT(suffix, type, rows, cols, field)                                                                        \
    do {                                                                                                             \
        const void *p_;                                                                                              \
        if ((st = want_blk(f, il, suffix, type, rows, cols, &p_))) return st;                                        \
        field = p_;                                                                                                  \
    } while (0)

#define WANTF(suffix, rows, cols, field)                                                                             \
    do {                                                                                                             \
        if ((st = want_blk_fmat(f, il, suffix, rows, cols, &field))) return st;                                      \
    } while (0)

static int32_t load_gdn(const gguf_file *f, int il, const model_hparams *hp, gdn_weights *w) {
    int32_t st;
    const int64_t D = hp->n_embd, H = hp->gdn.n_head, Hdk = H * hp->gdn.d_k, Hdv = H * hp->gdn.d_v,
                  K = hp->gdn.conv_k;
    const uint32_t BT2 = BRAID_GGUF_TYPE_BT2, F32 = GGML_TYPE_F32;
    WANT("gdn_q.weight", BT2, Hdk, D, w->wq);
    WANT("gdn_k.weight", BT2, Hdk, D, w->wk);
    WANT("gdn_v.weight", BT2, Hdv, D, w->wv);
    WANT("gdn_g.weight", BT2, Hdv, D, w->wg);
    WANT("gdn_o.weight", BT2, D, Hdv, w->wo);
    WANTF("gdn_a.weight", H, D, w->wa);
    WANTF("gdn_b.weight", H, D, w->wb);
    WANT("gdn_a_log", F32, 0, H, w->a_log);
    WANT("gdn_dt_bias", F32, 0, H, w->dt_bias);
    WANT("gdn_conv_q.weight", F32, Hdk, K, w->conv_q);
    WANT("gdn_conv_k.weight", F32, Hdk, K, w->conv_k);
    WANT("gdn_conv_v.weight", F32, Hdv, K, w->conv_v);
    WANT("gdn_o_norm.weight", F32, 0, hp->gdn.d_v, w->o_norm);
    return BRAID_OK;
}

static int32_t load_ffn(const gguf_file *f, int il, const model_hparams *hp, ffn_weights *w) {
    int32_t st;
    const uint32_t BT2 = BRAID_GGUF_TYPE_BT2;
    WANT("ffn_gate.weight", BT2, hp->n_ff, hp->n_embd, w->gate);
    WANT("ffn_up.weight", BT2, hp->n_ff, hp->n_embd, w->up);
    WANT("ffn_down.weight", BT2, hp->n_embd, hp->n_ff, w->down);
    return BRAID_OK;
}

static int32_t load_xm(const gguf_file *f, int il, const model_hparams *hp, mlstm_weights *w) {
    int32_t st;
    const int64_t D = hp->n_embd, H = hp->xm.n_head, d = hp->xm.head_dim, Hd = H * d;
    const uint32_t BT2 = BRAID_GGUF_TYPE_BT2, F32 = GGML_TYPE_F32;
    WANT("xm_q.weight", BT2, Hd, D, w->wq);
    WANT("xm_k.weight", BT2, Hd, D, w->wk);
    WANT("xm_v.weight", BT2, Hd, D, w->wv);
    WANT("xm_og.weight", BT2, Hd, D, w->wog);
    WANT("xm_o.weight", BT2, D, Hd, w->wo);
    WANT("xm_i.weight", F32, H, D, w->wi);
    WANT("xm_f.weight", F32, H, D, w->wf);
    WANT("xm_i.bias", F32, 0, H, w->bi);
    WANT("xm_f.bias", F32, 0, H, w->bf);
    WANT("xm_norm.weight", F32, 0, d, w->norm_w);
    WANT("xm_norm.bias", F32, 0, d, w->norm_b);
    return BRAID_OK;
}

static int32_t load_tm(const gguf_file *f, int il, const model_hparams *hp, titans_weights *w) {
    int32_t st;
    const titans_hparams *t = &hp->tm;
    const int64_t D = hp->n_embd, H = t->n_head, d = t->head_dim, Hd = H * d, dm = t->mem_dim, Np = t->n_persist;
    const uint32_t BT2 = BRAID_GGUF_TYPE_BT2, F32 = GGML_TYPE_F32;
    WANT("tm_q.weight", BT2, Hd, D, w->wq);
    WANT("tm_k.weight", BT2, Hd, D, w->wk);
    WANT("tm_v.weight", BT2, Hd, D, w->wv);
    WANT("tm_o.weight", BT2, D, Hd, w->wo);
    WANT("tm_km.weight", BT2, Hd, Hd, w->wkm);
    WANT("tm_vm.weight", BT2, Hd, Hd, w->wvm);
    WANT("tm_alpha.weight", F32, H, D, w->wa);
    WANT("tm_eta.weight", F32, H, D, w->we);
    WANT("tm_theta.weight", F32, H, D, w->wt);
    WANT("tm_alpha.bias", F32, 0, H, w->ba);
    WANT("tm_eta.bias", F32, 0, H, w->be);
    WANT("tm_theta.bias", F32, 0, H, w->bt);
    WANT3("tm_persist_k", F32, H, Np, d, w->pk);
    WANT3("tm_persist_v", F32, H, Np, d, w->pv);
    WANT3("tm_mem_w1", F32, H, dm, d, w->w1);
    WANT3("tm_mem_w2", F32, H, d, dm, w->w2);
    return BRAID_OK;
}

static int32_t load_sk(const gguf_file *f, int il, const model_hparams *hp, tsp_weights *w) {
    int32_t st;
    const int64_t D = hp->n_embd, Ds = hp->sk.sketch_dim;
    const uint32_t F32 = GGML_TYPE_F32;
    if ((st = load_gdn(f, il, hp, &w->gdn))) return st;
    WANTF("sk_sketch.weight", Ds, D, w->ws);
    WANTF("sk_role.weight", Ds, D, w->wr);
    WANTF("sk_filler.weight", Ds, D, w->wf);
    WANTF("sk_energy.weight", 5, D, w->energy);
    WANT("sk_energy_lambda", F32, 0, 5, w->lambda);
    return BRAID_OK;
}

static int32_t load_moe(const gguf_file *f, int il, const model_hparams *hp, moe_weights *w) {
    int32_t st;
    const moe_hparams *m = &hp->moe;
    const int64_t D = hp->n_embd, E = m->n_expert, Ie = m->ff, Ish = (int64_t)m->n_shared * m->ff;
    const uint32_t BT2 = BRAID_GGUF_TYPE_BT2, F32 = GGML_TYPE_F32;
    WANTF("ffn_gate_inp.weight", E, D, w->router);
    WANT("exp_probs_b.bias", F32, 0, E, w->bias);
    WANT3("ffn_gate_exps.weight", BT2, E, Ie, D, w->gate);
    WANT3("ffn_up_exps.weight", BT2, E, Ie, D, w->up);
    WANT3("ffn_down_exps.weight", BT2, E, D, Ie, w->down);
    if (Ish > 0) {
        WANT("ffn_gate_shexp.weight", BT2, Ish, D, w->shared.gate);
        WANT("ffn_up_shexp.weight", BT2, Ish, D, w->shared.up);
        WANT("ffn_down_shexp.weight", BT2, D, Ish, w->shared.down);
    }
    return BRAID_OK;
}

/* ---- fingerprint and description ------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t fingerprint(const braid_model *m) {
    const model_hparams *hp = &m->hp;
    int32_t v[] = {hp->n_vocab, hp->n_embd, hp->n_ff, hp->n_layer, hp->gdn.n_head, hp->gdn.d_k, hp->gdn.d_v,
                   hp->gdn.conv_k, (int32_t)m->token_embd.type};
    uint64_t h = fnv1a(0xcbf29ce484222325ull, "chimera", 7);
    h = fnv1a(h, v, sizeof v);
    h = fnv1a(h, &hp->rms_eps, sizeof hp->rms_eps);
    if (m->n_of[MIXER_XM]) h = fnv1a(h, &hp->xm, sizeof hp->xm);
    if (m->n_of[MIXER_TM]) h = fnv1a(h, &hp->tm, sizeof hp->tm);
    if (m->n_of[MIXER_SK]) h = fnv1a(h, &hp->sk, sizeof hp->sk);
    if (hp->n_moe_layers) h = fnv1a(h, &hp->moe, sizeof hp->moe);
    h = fnv1a(h, &hp->span_gate, sizeof hp->span_gate);
    if (hp->ngram_order) {
        h = fnv1a(h, &hp->ngram_order, sizeof hp->ngram_order);
        h = fnv1a(h, &m->ngram_rows, sizeof m->ngram_rows);
    }
    if (hp->loop.enabled) h = fnv1a(h, &hp->loop, sizeof hp->loop);
    for (int i = 0; i < hp->n_layer; i++) {
        int32_t kinds[2] = {(int32_t)m->layers[i].mixer_type, (int32_t)m->layers[i].ffn_type};
        h = fnv1a(h, kinds, sizeof kinds);
    }
    return h;
}

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n) * 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* A JSON string literal of s (control characters escaped, bytes >= 0x80 passed through). */
static void sb_json_str(sbuf *b, gguf_str s) {
    sb_printf(b, "\"");
    for (uint64_t i = 0; i < s.len && i < 4096; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch == '"' || ch == '\\')
            sb_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            sb_printf(b, "\\u%04x", ch);
        else
            sb_printf(b, "%c", ch);
    }
    sb_printf(b, "\"");
}

static char *describe(const braid_model *m) {
    const model_hparams *hp = &m->hp;
    sbuf b = {malloc(1024), 0, 1024, 0};
    if (!b.p) return NULL;
    gguf_str name = {"", 0}, prov = {"", 0};
    const gguf_kv *kv = gguf_find_kv(m->gguf, "general.name");
    if (kv && kv->type == GGUF_TYPE_STRING) name = kv->str;
    kv = gguf_find_kv(m->gguf, "braid.provenance");
    if (kv && kv->type == GGUF_TYPE_STRING) prov = kv->str;
    sb_printf(&b, "{\"architecture\":\"chimera\",\"name\":");
    sb_json_str(&b, name);
    sb_printf(&b, ",\"provenance\":");
    sb_json_str(&b, prov);
    sb_printf(&b,
              ",\"n_vocab\":%d,\"n_embd\":%d,\"n_ff\":%d,\"n_layer\":%d,\"context_length\":%d,\"rms_norm_eps\":%g,"
              "\"embd_type\":\"%s\",\"tensor_bytes\":%llu,\"gdn\":{\"head_count\":%d,\"head_dim\":%d,\"value_dim\":%d,"
              "\"conv_kernel\":%d,\"chunk_size\":%d},\"state_bytes\":%lld,\"layer_types\":[",
              hp->n_vocab, hp->n_embd, hp->n_ff, hp->n_layer, hp->context_length, (double)hp->rms_eps,
              gguf_type_name(m->token_embd.type), (unsigned long long)m->gguf->data_bytes, hp->gdn.n_head,
              hp->gdn.d_k, hp->gdn.d_v, hp->gdn.conv_k, hp->gdn.chunk, (long long)m->state_floats * 4);
    static const char *const names[] = {"?", "GD", "XM", "TM", "SK"};
    for (int i = 0; i < hp->n_layer; i++) sb_printf(&b, "%s\"%s\"", i ? "," : "", names[m->layers[i].mixer_type]);
    sb_printf(&b, "]");
    if (m->n_of[MIXER_XM])
        sb_printf(&b, ",\"xlstm\":{\"head_count\":%d,\"head_dim\":%d,\"gate_soft_cap\":%g,\"norm_eps\":%g}",
                  hp->xm.n_head, hp->xm.head_dim, (double)hp->xm.soft_cap, (double)hp->xm.norm_eps);
    if (m->n_of[MIXER_TM])
        sb_printf(&b,
                  ",\"titans\":{\"head_count\":%d,\"head_dim\":%d,\"memory_dim\":%d,\"persistent_slots\":%d,"
                  "\"segment_length\":%d,\"theta_max\":%g}",
                  hp->tm.n_head, hp->tm.head_dim, hp->tm.mem_dim, hp->tm.n_persist, hp->tm.segment,
                  (double)hp->tm.theta_max);
    if (m->n_of[MIXER_SK]) sb_printf(&b, ",\"tsp\":{\"sketch_dim\":%d}", hp->sk.sketch_dim);
    if (hp->n_moe_layers) {
        sb_printf(&b, ",\"moe\":{\"layers\":[");
        for (int i = 0, k = 0; i < hp->n_layer; i++)
            if (m->layers[i].ffn_type == FFN_MOE) sb_printf(&b, "%s%d", k++ ? "," : "", i);
        sb_printf(&b, "],\"expert_count\":%d,\"expert_used_count\":%d,\"shared_expert_count\":%d,"
                      "\"feed_forward_length\":%d,\"routed_scaling_factor\":%g}",
                  hp->moe.n_expert, hp->moe.n_used, hp->moe.n_shared, hp->moe.ff, (double)hp->moe.scale);
    }
    if (hp->loop.enabled)
        sb_printf(&b,
                  ",\"looping\":{\"prelude\":[0,%d],\"loop\":[%d,%d],\"coda\":[%d,%d],\"max\":%d,\"default\":%d,"
                  "\"backward_truncation\":\"%s\"}",
                  hp->loop.loop0 - 1, hp->loop.loop0, hp->loop.coda0 - 1, hp->loop.coda0, hp->n_layer - 1, hp->loop.max,
                  hp->loop.def, hp->loop.bptt_half ? "half" : "full");
    if (hp->ngram_order)
        sb_printf(&b, ",\"ngram\":{\"order\":%d,\"rows\":%lld}", hp->ngram_order, (long long)m->ngram_rows);
    sb_printf(&b, ",\"span_gate\":%s}", hp->span_gate ? "true" : "false");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- load ------------------------------------------------------------------------ */

static int32_t width_ok(const char *what, int64_t v) {
    if (v % BT2_GROUP || v > (1 << 18))
        return braid_fail(BRAID_ERR_FORMAT, "%s = %lld must be a multiple of %d and at most %d", what, (long long)v,
                          BT2_GROUP, 1 << 18);
    return BRAID_OK;
}

/* Hyper-parameters of the layer families the file uses (docs/format.md); keys
 * of families it does not use are not required. */
static int32_t read_family_hparams(const gguf_file *f, model_hparams *hp, const int32_t *n_of) {
    int32_t st;
    if (n_of[MIXER_XM]) {
        mlstm_hparams *x = &hp->xm;
        if ((st = gguf_get_int_in(f, "chimera.xlstm.head_count", 1, 4096, &x->n_head))) return st;
        if ((st = gguf_get_int_in(f, "chimera.xlstm.head_dim", 1, 1024, &x->head_dim))) return st;
        if ((st = gguf_get_f32_in(f, "chimera.xlstm.gate_soft_cap", 0.0f, 1e6f, &x->soft_cap))) return st;
        if ((st = gguf_get_f32_in(f, "chimera.xlstm.norm_eps", 0.0f, 1.0f, &x->norm_eps))) return st;
        if ((st = width_ok("xlstm head_count*head_dim", (int64_t)x->n_head * x->head_dim))) return st;
    }
    if (n_of[MIXER_TM]) {
        titans_hparams *t = &hp->tm;
        if ((st = gguf_get_int_in(f, "chimera.titans.head_count", 1, 4096, &t->n_head))) return st;
        if ((st = gguf_get_int_in(f, "chimera.titans.head_dim", 1, 1024, &t->head_dim))) return st;
        if ((st = gguf_get_int_in(f, "chimera.titans.memory_dim", 1, 4096, &t->mem_dim))) return st;
        if ((st = gguf_get_int_in(f, "chimera.titans.persistent_slots", 0, 4096, &t->n_persist))) return st;
        if ((st = gguf_get_int_in(f, "chimera.titans.segment_length", 1, 65536, &t->segment))) return st;
        if ((st = gguf_get_f32_in(f, "chimera.titans.theta_max", 0.0f, 1e3f, &t->theta_max))) return st;
        if ((st = width_ok("titans head_count*head_dim", (int64_t)t->n_head * t->head_dim))) return st;
    }
    if (n_of[MIXER_SK] && (st = gguf_get_int_in(f, "chimera.tsp.sketch_dim", 1, hp->n_embd, &hp->sk.sketch_dim)))
        return st;
    if (hp->n_moe_layers) {
        moe_hparams *m = &hp->moe;
        if ((st = gguf_get_int_in(f, "chimera.moe.expert_count", 1, 4096, &m->n_expert))) return st;
        if ((st = gguf_get_int_in(f, "chimera.moe.expert_used_count", 1, m->n_expert, &m->n_used))) return st;
        if ((st = gguf_get_int_in(f, "chimera.moe.shared_expert_count", 0, 64, &m->n_shared))) return st;
        if ((st = gguf_get_int_in(f, "chimera.moe.feed_forward_length", 128, 1 << 18, &m->ff))) return st;
        if ((st = gguf_get_f32_in(f, "chimera.moe.routed_scaling_factor", 0.0f, 1e6f, &m->scale))) return st;
        if ((st = width_ok("moe feed_forward_length", m->ff))) return st;
        if ((st = width_ok("moe shared width", (int64_t)m->n_shared * m->ff))) return st;
    }
    return BRAID_OK;
}

static int32_t load_layers(braid_model *m) {
    const gguf_file *f = m->gguf;
    model_hparams *hp = &m->hp;
    int32_t st;
    const gguf_kv *types = gguf_find_kv(f, "chimera.layer_types");
    if (!types) return braid_fail(BRAID_ERR_FORMAT, "missing metadata key 'chimera.layer_types'");
    if (types->type != GGUF_TYPE_ARRAY || types->arr_type != GGUF_TYPE_STRING)
        return braid_fail(BRAID_ERR_FORMAT, "chimera.layer_types must be an array of strings");
    if (types->arr_n != (uint64_t)hp->n_layer)
        return braid_fail(BRAID_ERR_FORMAT, "chimera.layer_types has %llu entries but block_count is %d",
                          (unsigned long long)types->arr_n, hp->n_layer);
    /* pass 1: kinds */
    static const char *const names[] = {NULL, "GD", "XM", "TM", "SK"};
    for (int il = 0; il < hp->n_layer; il++) {
        gguf_str ty;
        if ((st = gguf_arr_str(f, types, (uint64_t)il, &ty))) return st;
        mixer_kind k = 0;
        for (int i = MIXER_GD; i <= MIXER_SK; i++)
            if (gguf_str_eq(ty, names[i])) k = (mixer_kind)i;
        if (!k)
            return braid_fail(BRAID_ERR_FORMAT, "layer %d has unknown type '%.*s'", il, (int)BRAID_MIN(ty.len, 32),
                              ty.ptr);
        m->layers[il].mixer_type = k;
        m->layers[il].ffn_type = FFN_DENSE;
        m->n_of[k]++;
    }
    const gguf_kv *moe = gguf_find_kv(f, "chimera.moe.layers");
    if (moe) {
        if (moe->type != GGUF_TYPE_ARRAY)
            return braid_fail(BRAID_ERR_FORMAT, "chimera.moe.layers must be an array of layer indices");
        for (uint64_t i = 0; i < moe->arr_n; i++) {
            int64_t il;
            if ((st = gguf_arr_int(f, moe, i, &il))) return st;
            if (il < 0 || il >= hp->n_layer)
                return braid_fail(BRAID_ERR_FORMAT, "chimera.moe.layers[%llu] = %lld is not a layer index",
                                  (unsigned long long)i, (long long)il);
            if (m->layers[il].ffn_type == FFN_MOE)
                return braid_fail(BRAID_ERR_FORMAT, "chimera.moe.layers lists layer %lld twice", (long long)il);
            m->layers[il].ffn_type = FFN_MOE;
            hp->n_moe_layers++;
        }
    }
    if ((st = read_family_hparams(f, hp, m->n_of))) return st;
    /* pass 2: weights */
    int64_t state = 0;
    for (int il = 0; il < hp->n_layer; il++) {
        model_layer *L = &m->layers[il];
        switch (L->mixer_type) {
        case MIXER_GD:
            if ((st = load_gdn(f, il, hp, &m->gdn[il]))) return st;
            L->mixer = &m->gdn[il];
            L->state_floats = gdn_state_floats(&hp->gdn);
            break;
        case MIXER_XM:
            if ((st = load_xm(f, il, hp, &m->xm[il]))) return st;
            L->mixer = &m->xm[il];
            L->state_floats = mlstm_state_floats(&hp->xm);
            break;
        case MIXER_TM:
            if ((st = load_tm(f, il, hp, &m->tm[il]))) return st;
            L->mixer = &m->tm[il];
            L->state_floats = titans_state_floats(&hp->tm);
            break;
        case MIXER_SK:
            if ((st = load_sk(f, il, hp, &m->sk[il]))) return st;
            L->mixer = &m->sk[il];
            L->state_floats = tsp_state_floats(&hp->gdn, &hp->sk);
            break;
        }
        if (L->ffn_type == FFN_MOE) {
            if ((st = load_moe(f, il, hp, &m->moe[il]))) return st;
            L->ffn = &m->moe[il];
        } else {
            if ((st = load_ffn(f, il, hp, &m->ffn[il]))) return st;
            L->ffn = &m->ffn[il];
        }
        const void *p;
        if ((st = want_blk(f, il, "attn_norm.weight", GGML_TYPE_F32, 0, hp->n_embd, &p))) return st;
        L->attn_norm = p;
        if ((st = want_blk(f, il, "ffn_norm.weight", GGML_TYPE_F32, 0, hp->n_embd, &p))) return st;
        L->ffn_norm = p;
        const loop_hparams *lp = &hp->loop;
        L->state_copies = lp->enabled && il >= lp->loop0 && il < lp->coda0 ? lp->max : 1;
        L->state_offset = state;
        state += L->state_floats * L->state_copies;
    }
    m->state_floats = state;
    return BRAID_OK;
}

/* The hashed n-gram embedding (ngram.h): absent chimera.ngram.order = none. The table's row count
 * is its own first dimension, any M ≥ 1. */
static int32_t load_ngram(braid_model *m) {
    const gguf_file *f = m->gguf;
    if (!gguf_find_kv(f, "chimera.ngram.order")) return BRAID_OK;
    int32_t st = gguf_get_int_in(f, "chimera.ngram.order", 2, NGRAM_MAX_ORDER, &m->hp.ngram_order);
    if (st) return st;
    const gguf_tensor *t = gguf_find_tensor(f, "token_ngram.weight");
    if (!t) return braid_fail(BRAID_ERR_FORMAT, "missing tensor 'token_ngram.weight' (chimera.ngram.order is set)");
    if (t->n_dims != 2 || t->ne[1] < 1)
        return braid_fail(BRAID_ERR_FORMAT, "tensor 'token_ngram.weight' must be a matrix [rows, %d]", m->hp.n_embd);
    m->ngram_rows = t->ne[1];
    return want_fmat(f, "token_ngram.weight", m->ngram_rows, m->hp.n_embd, &m->token_ngram);
}

static int32_t load(braid_model *m) {
    const gguf_file *f = m->gguf;
    int32_t st;
    gguf_str arch;
    if ((st = gguf_get_str(f, "general.architecture", &arch))) return st;
    if (gguf_str_eq(arch, "moa")) return moa_load(m); /* the second architecture: moa_model.c */
    if (!gguf_str_eq(arch, "chimera"))
        return braid_fail(BRAID_ERR_UNSUPPORTED, "architecture '%.*s' is not supported (need chimera or moa)",
                          (int)BRAID_MIN(arch.len, 64), arch.ptr);
    if (gguf_find_kv(f, "braid.format_version")) {
        int64_t v;
        if ((st = gguf_get_int(f, "braid.format_version", &v))) return st;
        if (v != 1) return braid_fail(BRAID_ERR_UNSUPPORTED, "braid.format_version %lld is not supported (need 1)", (long long)v);
    }
    if ((st = read_hparams(f, &m->hp))) return st;
    const model_hparams *hp = &m->hp;

    if ((st = want_fmat(f, "token_embd.weight", hp->n_vocab, hp->n_embd, &m->token_embd))) return st;
    const void *p;
    if ((st = want(f, "output_norm.weight", GGML_TYPE_F32, 0, hp->n_embd, &p))) return st;
    m->output_norm = p;
    if (gguf_find_kv(f, "chimera.span_engine.risk_gate")) {
        int64_t v;
        if ((st = gguf_get_int(f, "chimera.span_engine.risk_gate", &v))) return st;
        if (v != 0 && v != 1)
            return braid_fail(BRAID_ERR_FORMAT, "metadata chimera.span_engine.risk_gate = %lld is not 0 or 1", (long long)v);
        m->hp.span_gate = (int32_t)v;
    }
    if (hp->span_gate) {
        if ((st = want(f, "output_risk.weight", GGML_TYPE_F32, 0, hp->n_embd, &p))) return st;
        m->risk_w = p;
        if ((st = want_fmat(f, "output_gate.weight", hp->n_embd, hp->n_embd + 1, &m->gate_w))) return st;
    }

    if ((st = load_ngram(m))) return st;

    if ((st = read_loop_hparams(f, &m->hp))) return st;
    if (hp->loop.enabled) {
        parcae_weights *pw = &m->parcae;
        const int64_t D = hp->n_embd;
        if ((st = want(f, "parcae.prelude_norm.weight", GGML_TYPE_F32, 0, D, &p))) return st;
        pw->prelude_norm = p;
        if ((st = want(f, "parcae.a_log", GGML_TYPE_F32, 0, D, &p))) return st;
        pw->a_log = p;
        if ((st = want(f, "parcae.dt_bias", GGML_TYPE_F32, 0, D, &p))) return st;
        pw->dt_bias = p;
        if ((st = want_fmat(f, "parcae.b.weight", D, D, &pw->b))) return st;
        if ((st = want_fmat(f, "parcae.c.weight", D, D, &pw->c))) return st;
        pw->abar = malloc(sizeof(float) * (size_t)D);
        pw->delta = malloc(sizeof(float) * (size_t)D);
        if (!pw->abar || !pw->delta) return braid_fail(BRAID_ERR_NOMEM, "out of memory for the Parcae injection");
        for (int64_t j = 0; j < D; j++) {
            /* Δ = softplus(dt_bias) (stable form), Ā = exp(−Δ·exp(A_log)) ∈ (0, 1] */
            const double z = pw->dt_bias[j], dt = z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
            pw->delta[j] = (float)dt;
            pw->abar[j] = (float)exp(-dt * exp((double)pw->a_log[j]));
            if (!isfinite(pw->delta[j]) || !isfinite(pw->abar[j]))
                return braid_fail(BRAID_ERR_FORMAT, "parcae.a_log / parcae.dt_bias give a non-finite injection at %lld",
                                  (long long)j);
        }
    }

    const size_t L = (size_t)hp->n_layer;
    m->layers = calloc(L, sizeof *m->layers);
    m->gdn = calloc(L, sizeof *m->gdn);
    m->ffn = calloc(L, sizeof *m->ffn);
    m->xm = calloc(L, sizeof *m->xm);
    m->tm = calloc(L, sizeof *m->tm);
    m->sk = calloc(L, sizeof *m->sk);
    m->moe = calloc(L, sizeof *m->moe);
    if (!m->layers || !m->gdn || !m->ffn || !m->xm || !m->tm || !m->sk || !m->moe)
        return braid_fail(BRAID_ERR_NOMEM, "out of memory for the layer table");
    if ((st = load_layers(m))) return st;
    if (hp->ngram_order) { /* the n-gram history follows every layer's state */
        m->ngram_state = m->state_floats;
        m->state_floats += hp->ngram_order - 1;
    }
    m->fingerprint = fingerprint(m);
    m->describe = describe(m);
    if (!m->describe) return braid_fail(BRAID_ERR_NOMEM, "out of memory for the model description");
    return BRAID_OK;
}

BRAID_API int32_t braid_model_load(const char *path, braid_model **out) {
    if (!out) return braid_fail(BRAID_ERR_INVALID_ARG, "braid_model_load: out is NULL");
    *out = NULL;
    if (!path) return braid_fail(BRAID_ERR_INVALID_ARG, "braid_model_load: path is NULL");
    braid_model *m = calloc(1, sizeof *m);
    if (!m) return braid_fail(BRAID_ERR_NOMEM, "out of memory");
    int32_t st = gguf_open(&m->gguf, path);
    if (!st && (st = load(m))) {
        /* prefix the path to the loader's message */
        char why[400];
        snprintf(why, sizeof why, "%s", braid_last_error());
        braid_fail(st, "%s: %s", path, why);
    }
    if (st) {
        braid_model_free(m);
        return st;
    }
    braid_clear_error();
    *out = m;
    return BRAID_OK;
}

BRAID_API void braid_model_free(braid_model *m) {
    if (!m) return;
    gguf_close(m->gguf);
    free(m->layers);
    free(m->gdn);
    free(m->ffn);
    free(m->xm);
    free(m->tm);
    free(m->sk);
    free(m->moe);
    free(m->parcae.abar);
    free(m->parcae.delta);
    free(m->describe);
    moa_free(m->moa);
    free(m);
}

BRAID_API int32_t braid_model_n_vocab(const braid_model *m) { return m ? m->hp.n_vocab : 0; }
BRAID_API int32_t braid_model_n_embd(const braid_model *m) { return m ? m->hp.n_embd : 0; }
BRAID_API int32_t braid_model_n_layer(const braid_model *m) { return m ? m->hp.n_layer : 0; }
BRAID_API int32_t braid_model_loop_max(const braid_model *m) { return m && m->hp.loop.enabled ? m->hp.loop.max : 0; }
BRAID_API int64_t braid_model_tensor_bytes(const braid_model *m) { return m ? (int64_t)m->gguf->data_bytes : 0; }
BRAID_API const char *braid_model_describe(const braid_model *m) { return m ? m->describe : "{}"; }
