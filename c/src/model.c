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

/* ---- metadata ---------------------------------------------------------------- */

static int32_t get_ranged(const gguf_file *f, const char *key, int64_t lo, int64_t hi, int32_t *out) {
    int64_t v;
    int32_t st = gguf_get_int(f, key, &v);
    if (st) return st;
    if (v < lo || v > hi)
        return braid_fail(BRAID_ERR_FORMAT, "metadata %s = %lld is outside [%lld, %lld]", key, (long long)v,
                          (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return BRAID_OK;
}

static int32_t read_hparams(const gguf_file *f, model_hparams *hp) {
    int32_t st;
    if ((st = get_ranged(f, "chimera.vocab_size", 1, 1 << 24, &hp->n_vocab))) return st;
    if ((st = get_ranged(f, "chimera.embedding_length", 128, 1 << 16, &hp->n_embd))) return st;
    if ((st = get_ranged(f, "chimera.feed_forward_length", 128, 1 << 18, &hp->n_ff))) return st;
    if ((st = get_ranged(f, "chimera.block_count", 1, 4096, &hp->n_layer))) return st;
    if ((st = get_ranged(f, "chimera.context_length", 0, INT32_MAX, &hp->context_length))) return st;
    if ((st = gguf_get_f32(f, "chimera.rms_norm_eps", &hp->rms_eps))) return st;
    if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f))
        return braid_fail(BRAID_ERR_FORMAT, "metadata chimera.rms_norm_eps = %g is not in (0, 1)", hp->rms_eps);
    if (hp->n_embd % BT2_GROUP || hp->n_ff % BT2_GROUP)
        return braid_fail(BRAID_ERR_FORMAT, "embedding_length %d and feed_forward_length %d must be multiples of %d",
                          hp->n_embd, hp->n_ff, BT2_GROUP);
    gdn_hparams *g = &hp->gdn;
    if ((st = get_ranged(f, "chimera.gdn.head_count", 1, 4096, &g->n_head))) return st;
    if ((st = get_ranged(f, "chimera.gdn.head_dim", 1, 1024, &g->d_k))) return st;
    if ((st = get_ranged(f, "chimera.gdn.value_dim", 1, 1024, &g->d_v))) return st;
    if ((st = get_ranged(f, "chimera.gdn.conv_kernel", 1, 64, &g->conv_k))) return st;
    if ((st = get_ranged(f, "chimera.gdn.chunk_size", 1, 4096, &g->chunk))) return st;
    if (((int64_t)g->n_head * g->d_v) % BT2_GROUP)
        return braid_fail(BRAID_ERR_FORMAT, "gdn head_count*value_dim = %lld must be a multiple of %d",
                          (long long)g->n_head * g->d_v, BT2_GROUP);
    if ((int64_t)g->n_head * g->d_k > (1 << 18) || (int64_t)g->n_head * g->d_v > (1 << 18))
        return braid_fail(BRAID_ERR_FORMAT, "gdn projections too wide (%d heads)", g->n_head);
    return BRAID_OK;
}

/* ---- tensors ------------------------------------------------------------------ */

/* Finds `name` and checks type and shape ([rows, cols]; rows = 0 for a vector [cols]). */
static int32_t want(const gguf_file *f, const char *name, uint32_t type, int64_t rows, int64_t cols, const void **out) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) return braid_fail(BRAID_ERR_FORMAT, "missing tensor '%s'", name);
    if (t->type != type)
        return braid_fail(BRAID_ERR_FORMAT, "tensor '%s' has type %s, expected %s", name, gguf_type_name(t->type),
                          gguf_type_name(type));
    uint32_t nd = rows ? 2 : 1;
    if (t->n_dims != nd || t->ne[0] != cols || (rows && t->ne[1] != rows)) {
        if (rows)
            return braid_fail(BRAID_ERR_FORMAT, "tensor '%s' has dims [%lld, %lld, %lld, %lld] (n_dims %u), expected [%lld, %lld]",
                              name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                              t->n_dims, (long long)cols, (long long)rows);
        return braid_fail(BRAID_ERR_FORMAT, "tensor '%s' has dims [%lld, %lld, %lld, %lld] (n_dims %u), expected [%lld]",
                          name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                          t->n_dims, (long long)cols);
    }
    size_t align = type == GGML_TYPE_F16 ? 2 : 4;
    if ((uintptr_t)t->data % align)
        return braid_fail(BRAID_ERR_FORMAT, "tensor '%s' data is not %zu-byte aligned", name, align);
    *out = t->data;
    return BRAID_OK;
}

static int32_t want_blk(const gguf_file *f, int il, const char *suffix, uint32_t type, int64_t rows, int64_t cols,
                        const void **out) {
    char name[128];
    snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
    return want(f, name, type, rows, cols, out);
}

#define WANT(suffix, type, rows, cols, field)                                                                        \
    do {                                                                                                             \
        const void *p_;                                                                                              \
        if ((st = want_blk(f, il, suffix, type, rows, cols, &p_))) return st;                                        \
        field = p_;                                                                                                  \
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
    WANT("gdn_a.weight", F32, H, D, w->wa);
    WANT("gdn_b.weight", F32, H, D, w->wb);
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
                   hp->gdn.conv_k, (int32_t)m->embd_type};
    uint64_t h = fnv1a(0xcbf29ce484222325ull, "chimera", 7);
    h = fnv1a(h, v, sizeof v);
    h = fnv1a(h, &hp->rms_eps, sizeof hp->rms_eps);
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
              gguf_type_name(m->embd_type), (unsigned long long)m->gguf->data_bytes, hp->gdn.n_head, hp->gdn.d_k,
              hp->gdn.d_v, hp->gdn.conv_k, hp->gdn.chunk, (long long)m->state_floats * 4);
    for (int i = 0; i < hp->n_layer; i++) sb_printf(&b, "%s\"GD\"", i ? "," : "");
    sb_printf(&b, "]}");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- load ------------------------------------------------------------------------ */

static int32_t load_layers(braid_model *m) {
    const gguf_file *f = m->gguf;
    const model_hparams *hp = &m->hp;
    int32_t st;
    const gguf_kv *types = gguf_find_kv(f, "chimera.layer_types");
    if (!types) return braid_fail(BRAID_ERR_FORMAT, "missing metadata key 'chimera.layer_types'");
    if (types->type != GGUF_TYPE_ARRAY || types->arr_type != GGUF_TYPE_STRING)
        return braid_fail(BRAID_ERR_FORMAT, "chimera.layer_types must be an array of strings");
    if (types->arr_n != (uint64_t)hp->n_layer)
        return braid_fail(BRAID_ERR_FORMAT, "chimera.layer_types has %llu entries but block_count is %d",
                          (unsigned long long)types->arr_n, hp->n_layer);
    int64_t state = 0;
    for (int il = 0; il < hp->n_layer; il++) {
        gguf_str ty;
        if ((st = gguf_arr_str(f, types, (uint64_t)il, &ty))) return st;
        model_layer *L = &m->layers[il];
        if (gguf_str_eq(ty, "GD")) {
            if ((st = load_gdn(f, il, hp, &m->gdn[il]))) return st;
            L->mixer_type = MIXER_GD;
            L->mixer = &m->gdn[il];
            L->state_floats = gdn_state_floats(&hp->gdn);
        } else if (gguf_str_eq(ty, "XM") || gguf_str_eq(ty, "TM") || gguf_str_eq(ty, "SK")) {
            return braid_fail(BRAID_ERR_UNSUPPORTED, "layer %d has type %.*s, which this build does not implement yet",
                              il, (int)ty.len, ty.ptr);
        } else {
            return braid_fail(BRAID_ERR_FORMAT, "layer %d has unknown type '%.*s'", il, (int)BRAID_MIN(ty.len, 32),
                              ty.ptr);
        }
        if ((st = load_ffn(f, il, hp, &m->ffn[il]))) return st;
        L->ffn_type = FFN_DENSE;
        L->ffn = &m->ffn[il];
        const void *p;
        if ((st = want_blk(f, il, "attn_norm.weight", GGML_TYPE_F32, 0, hp->n_embd, &p))) return st;
        L->attn_norm = p;
        if ((st = want_blk(f, il, "ffn_norm.weight", GGML_TYPE_F32, 0, hp->n_embd, &p))) return st;
        L->ffn_norm = p;
        L->state_offset = state;
        state += L->state_floats;
    }
    m->state_floats = state;
    return BRAID_OK;
}

static int32_t load(braid_model *m) {
    const gguf_file *f = m->gguf;
    int32_t st;
    gguf_str arch;
    if ((st = gguf_get_str(f, "general.architecture", &arch))) return st;
    if (!gguf_str_eq(arch, "chimera"))
        return braid_fail(BRAID_ERR_UNSUPPORTED, "architecture '%.*s' is not supported (need chimera)",
                          (int)BRAID_MIN(arch.len, 64), arch.ptr);
    if (gguf_find_kv(f, "braid.format_version")) {
        int64_t v;
        if ((st = gguf_get_int(f, "braid.format_version", &v))) return st;
        if (v != 1) return braid_fail(BRAID_ERR_UNSUPPORTED, "braid.format_version %lld is not supported (need 1)", (long long)v);
    }
    if ((st = read_hparams(f, &m->hp))) return st;
    const model_hparams *hp = &m->hp;

    const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    if (!te) return braid_fail(BRAID_ERR_FORMAT, "missing tensor 'token_embd.weight'");
    if (te->type != GGML_TYPE_F32 && te->type != GGML_TYPE_F16)
        return braid_fail(BRAID_ERR_FORMAT, "tensor 'token_embd.weight' has type %s, expected F32 or F16",
                          gguf_type_name(te->type));
    m->embd_type = te->type;
    const void *p;
    if ((st = want(f, "token_embd.weight", te->type, hp->n_vocab, hp->n_embd, &p))) return st;
    m->token_embd = p;
    if ((st = want(f, "output_norm.weight", GGML_TYPE_F32, 0, hp->n_embd, &p))) return st;
    m->output_norm = p;

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    m->gdn = calloc((size_t)hp->n_layer, sizeof *m->gdn);
    m->ffn = calloc((size_t)hp->n_layer, sizeof *m->ffn);
    if (!m->layers || !m->gdn || !m->ffn) return braid_fail(BRAID_ERR_NOMEM, "out of memory for the layer table");
    if ((st = load_layers(m))) return st;
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
    free(m->describe);
    free(m);
}

BRAID_API int32_t braid_model_n_vocab(const braid_model *m) { return m ? m->hp.n_vocab : 0; }
BRAID_API int32_t braid_model_n_embd(const braid_model *m) { return m ? m->hp.n_embd : 0; }
BRAID_API int32_t braid_model_n_layer(const braid_model *m) { return m ? m->hp.n_layer : 0; }
BRAID_API int64_t braid_model_tensor_bytes(const braid_model *m) { return m ? (int64_t)m->gguf->data_bytes : 0; }
BRAID_API const char *braid_model_describe(const braid_model *m) { return m ? m->describe : "{}"; }
