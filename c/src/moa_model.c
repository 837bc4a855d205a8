/*
 * moa_model.c — loading a general.architecture = "moa" GGUF (docs/format.md, "MoA models"):
 * the moa.* hyper-parameters (the names of the model card's config.json), then every
 * tensor with its type and shape checked before a pointer into the mapping is kept.
 * Float vectors are F32; matrices F32 or F16 (fmat). Scalar parameters that the
 * original trains through a positivity map (α, ω, radius) are stored as their
 * effective positive values, so this file does not depend on the unknown
 * parameterisation (docs/architecture.md, "MoA").
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"
#include "moa.h"

/* ---- metadata ------------------------------------------------------------------ */

/* Optional integer key (default when absent). */
static int32_t opt_int(const gguf_file *f, const char *key, int64_t lo, int64_t hi, int32_t def, int32_t *out) {
    if (!gguf_find_kv(f, key)) {
        *out = def;
        return BRAID_OK;
    }
    return gguf_get_int_in(f, key, lo, hi, out);
}

static int32_t opt_f32(const gguf_file *f, const char *key, float def, float *out) {
    if (!gguf_find_kv(f, key)) {
        *out = def;
        return BRAID_OK;
    }
    return gguf_get_f32(f, key, out);
}

static int32_t read_hparams(const gguf_file *f, moa_hparams *hp) {
    int32_t st;
#define REQ(key, lo, hi, field) \
    if ((st = gguf_get_int_in(f, "moa." key, lo, hi, &hp->field))) return st
    REQ("vocab_size", 1, 1 << 24, n_vocab);
    REQ("dim", 8, 1 << 16, dim);
    REQ("num_layers", 1, 4096, n_layer);
    REQ("max_position_embeddings", 1, 1 << 20, max_pos);
    REQ("attn_heads", 1, 4096, attn_heads);
    REQ("mqa_q_heads", 1, 4096, mqa_heads);
    REQ("mixer_hidden", 1, 1 << 18, mixer_hidden);
    REQ("ffn_hidden", 1, 1 << 18, ffn_hidden);
    REQ("router_hidden", 1, 1 << 16, router_hidden);
    REQ("router_topk", 1, MOA_PATHS, router_topk);
    REQ("conv_kernel", 1, 64, conv_kernel);
    REQ("conv_mult", 1, 64, conv_mult);
    REQ("lr_rank", 1, 1 << 16, lr_rank);
    REQ("n_branches", MOA_BRANCHES, MOA_BRANCHES, n_branches);
    REQ("r_basis", 0, 1024, r_basis);
    REQ("use_balls", 0, 1, use_balls);
    REQ("enable_feature_gates", 0, 1, feature_gates);
    REQ("enable_router_gates", 0, 1, router_gates);
    REQ("enable_v_energy", 0, 1, v_energy);
#undef REQ
    if ((st = opt_int(f, "moa.discrepancy_modulation", 0, 1, 0, &hp->discrepancy))) return st;
    if ((st = opt_int(f, "moa.branch_topk", 1, MOA_BRANCHES, MOA_BRANCHES, &hp->branch_topk))) return st;
    if ((st = gguf_get_f32_in(f, "moa.router_temperature", 0.0f, 1e6f, &hp->router_temp))) return st;
    if ((st = opt_f32(f, "moa.branch_temperature", 1.0f, &hp->branch_temp))) return st;
    if (!(hp->branch_temp > 0 && hp->branch_temp < 1e6f))
        return braid_fail(BRAID_ERR_FORMAT, "metadata moa.branch_temperature = %g is not in (0, 1e6)", (double)hp->branch_temp);
    if ((st = gguf_get_f32_in(f, "moa.theta_base", 1.0f, 1e12f, &hp->theta_base))) return st;
    if ((st = gguf_get_f32_in(f, "moa.layer_norm_eps", 0.0f, 1.0f, &hp->ln_eps))) return st;
    if (hp->v_energy && (st = gguf_get_f32_in(f, "moa.energy_amplification", 1.0f, 1e6f, &hp->energy_amp))) return st;
    if (!hp->v_energy) hp->energy_amp = 1.0f;
    gguf_str metric;
    if ((st = gguf_get_str(f, "moa.metric", &metric))) return st;
    if (gguf_str_eq(metric, "l2"))
        hp->metric = MOA_METRIC_L2;
    else if (gguf_str_eq(metric, "cosine"))
        hp->metric = MOA_METRIC_COSINE;
    else if (gguf_str_eq(metric, "maha_diag"))
        hp->metric = MOA_METRIC_MAHA;
    else
        return braid_fail(BRAID_ERR_FORMAT, "moa.metric '%.*s' is not \"l2\", \"cosine\" or \"maha_diag\"",
                          (int)BRAID_MIN(metric.len, 32), metric.ptr);
    /* informational (init / training); defaults = the seed card */
    opt_f32(f, "moa.alpha_init", 1.0f, &hp->alpha_init);
    opt_f32(f, "moa.radius_init", 3.0f, &hp->radius_init);
    opt_f32(f, "moa.maha_init", 1.0f, &hp->maha_init);
    opt_f32(f, "moa.origin_init_scale", 0.0f, &hp->origin_init_scale);
    opt_f32(f, "moa.layer_scale_init_value", 1e-4f, &hp->layer_scale_init);
    opt_int(f, "moa.learn_alpha", 0, 1, 1, &hp->learn_alpha);
    opt_int(f, "moa.learn_radius", 0, 1, 1, &hp->learn_radius);
    opt_int(f, "moa.ff_mult", 0, 1 << 16, 0, &hp->ff_mult);
    if (hp->dim % hp->attn_heads || hp->dim % hp->mqa_heads)
        return braid_fail(BRAID_ERR_FORMAT, "moa.dim %d must be a multiple of attn_heads %d and mqa_q_heads %d", hp->dim,
                          hp->attn_heads, hp->mqa_heads);
    if ((hp->dim / hp->attn_heads) % 2 || (hp->dim / hp->mqa_heads) % 2)
        return braid_fail(BRAID_ERR_FORMAT, "MoA head widths must be even (RoPE pairs): dim %d, heads %d / %d", hp->dim,
                          hp->attn_heads, hp->mqa_heads);
    return BRAID_OK;
}

/* ---- tensors ------------------------------------------------------------------- */

static int32_t want_any(const gguf_file *f, const char *name, int f16_ok, int64_t n0, int64_t n1, int64_t n2,
                        const gguf_tensor **out) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) return braid_fail(BRAID_ERR_FORMAT, "missing tensor '%s'", name);
    if (t->type != GGML_TYPE_F32 && !(f16_ok && t->type == GGML_TYPE_F16))
        return braid_fail(BRAID_ERR_FORMAT, "tensor '%s' has type %s, expected %s", name, gguf_type_name(t->type),
                          f16_ok ? "F32 or F16" : "F32");
    int64_t ne[3] = {n0, n1, n2};
    uint32_t nd = n2 ? 3 : n1 ? 2 : 1;
    int ok = t->n_dims == nd;
    for (uint32_t i = 0; ok && i < nd; i++) ok = t->ne[i] == ne[i];
    if (!ok)
        return braid_fail(BRAID_ERR_FORMAT, "tensor '%s' has dims [%lld, %lld, %lld] (n_dims %u), expected [%lld, %lld, %lld]",
                          name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], t->n_dims, (long long)n0,
                          (long long)n1, (long long)n2);
    if ((uintptr_t)t->data % (t->type == GGML_TYPE_F16 ? 2 : 4))
        return braid_fail(BRAID_ERR_FORMAT, "tensor '%s' data is misaligned", name);
    *out = t;
    return BRAID_OK;
}

/* F32 vector/array with GGUF dims (n0 fastest). */
static int32_t vec(const gguf_file *f, int il, const char *suffix, int64_t n0, int64_t n1, int64_t n2,
                   const float **out) {
    char name[128];
    if (il >= 0)
        snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
    else
        snprintf(name, sizeof name, "%s", suffix);
    const gguf_tensor *t;
    int32_t st = want_any(f, name, 0, n0, n1, n2, &t);
    if (st) return st;
    *out = (const float *)t->data;
    return BRAID_OK;
}

/* F32 or F16 matrix [rows, cols]. */
static int32_t mat(const gguf_file *f, int il, const char *suffix, int64_t rows, int64_t cols, fmat *out) {
    char name[128];
    if (il >= 0)
        snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
    else
        snprintf(name, sizeof name, "%s", suffix);
    const gguf_tensor *t;
    int32_t st = want_any(f, name, 1, cols, rows, 0, &t);
    if (st) return st;
    *out = (fmat){t->data, t->type};
    return BRAID_OK;
}

/* Every value of v[n] finite and > 0 (effective α, ω, radius). */
static int32_t positive(const float *v, int64_t n, int il, const char *what) {
    for (int64_t i = 0; i < n; i++)
        if (!(v[i] > 0.0f) || !isfinite(v[i]))
            return braid_fail(BRAID_ERR_FORMAT, "blk.%d.%s[%lld] = %g must be finite and > 0 (stored effective values)",
                              il, what, (long long)i, (double)v[i]);
    return BRAID_OK;
}

static int32_t load_attn(const gguf_file *f, int il, const moa_hparams *hp, const char *pre, int32_t H, int32_t G,
                         moa_attn *a) {
    int32_t st;
    const int64_t D = hp->dim, dh = D / H, R = hp->r_basis;
    char nm[96];
    a->H = H, a->G = G, a->dh = (int32_t)dh;
#define N(s) (snprintf(nm, sizeof nm, "%s_%s", pre, s), nm)
    if ((st = mat(f, il, N("q.weight"), H * dh, D, &a->wq))) return st;
    if ((st = mat(f, il, N("k.weight"), G * dh, D, &a->wk))) return st;
    if ((st = mat(f, il, N("v.weight"), G * dh, D, &a->wv))) return st;
    if ((st = mat(f, il, N("o.weight"), D, H * dh, &a->wo))) return st;
    if ((st = vec(f, il, N("alpha"), H, 0, 0, &a->alpha))) return st;
    if ((st = positive(a->alpha, H, il, N("alpha")))) return st;
    if (hp->metric == MOA_METRIC_MAHA) {
        if ((st = vec(f, il, N("maha"), dh, H, 0, &a->omega))) return st;
        if ((st = positive(a->omega, H * dh, il, N("maha")))) return st;
    }
    if (hp->use_balls) {
        if ((st = vec(f, il, N("ball_origin"), dh, H, 0, &a->origin))) return st;
        if ((st = vec(f, il, N("ball_radius"), H, 0, 0, &a->radius))) return st;
        if ((st = positive(a->radius, H, il, N("ball_radius")))) return st;
    }
    if (R) {
        if ((st = vec(f, il, N("rope_a"), R, dh / 2, G, &a->rope_a))) return st;
        if ((st = vec(f, il, N("rope_b"), R, dh / 2, G, &a->rope_b))) return st;
        if (hp->v_energy) {
            if ((st = vec(f, il, N("energy_c"), R, G, 0, &a->en_c))) return st;
            if ((st = vec(f, il, N("energy_g"), R, G, 0, &a->en_g))) return st;
        }
    }
    if (hp->discrepancy && (st = vec(f, il, N("disc"), G, 0, 0, &a->disc))) return st;
#undef N
    return BRAID_OK;
}

static int32_t load_layer(const gguf_file *f, int il, const moa_hparams *hp, moa_layer *w) {
    int32_t st;
    const int64_t D = hp->dim, Rh = hp->router_hidden, K = hp->conv_kernel, M = hp->mixer_hidden,
                  F = hp->ffn_hidden, C = (int64_t)hp->conv_mult * D, r = hp->lr_rank;
    if ((st = vec(f, il, "attn_norm.weight", D, 0, 0, &w->ln1_w))) return st;
    if ((st = vec(f, il, "attn_norm.bias", D, 0, 0, &w->ln1_b))) return st;
    if ((st = vec(f, il, "ffn_norm.weight", D, 0, 0, &w->ln2_w))) return st;
    if ((st = vec(f, il, "ffn_norm.bias", D, 0, 0, &w->ln2_b))) return st;
    if ((st = mat(f, il, "moa_router_in.weight", Rh, D, &w->r_in))) return st;
    if ((st = vec(f, il, "moa_router_in.bias", Rh, 0, 0, &w->r_in_b))) return st;
    if ((st = mat(f, il, "moa_router_out.weight", MOA_PATHS, Rh, &w->r_out))) return st;
    if ((st = vec(f, il, "moa_router_out.bias", MOA_PATHS, 0, 0, &w->r_out_b))) return st;
    if (hp->feature_gates) {
        if ((st = mat(f, il, "moa_film_gamma.weight", MOA_PATHS * D, Rh, &w->film_g))) return st;
        if ((st = mat(f, il, "moa_film_beta.weight", MOA_PATHS * D, Rh, &w->film_b))) return st;
    }
    if (hp->router_gates) {
        if ((st = mat(f, il, "moa_gate.weight", MOA_PATHS, D, &w->gate_w))) return st;
        if ((st = vec(f, il, "moa_gate.bias", MOA_PATHS, 0, 0, &w->gate_b))) return st;
    }
    if ((st = vec(f, il, "moa_conv_dw.weight", K, D, 0, &w->conv_w))) return st;
    if ((st = vec(f, il, "moa_conv_dw.bias", D, 0, 0, &w->conv_b))) return st;
    if ((st = mat(f, il, "moa_conv_pw.weight", D, D, &w->conv_pw))) return st;
    if ((st = load_attn(f, il, hp, "moa_mha", hp->attn_heads, hp->attn_heads, &w->mha))) return st;
    if ((st = load_attn(f, il, hp, "moa_mqa", hp->mqa_heads, 1, &w->mqa))) return st;
    if ((st = mat(f, il, "moa_mix_up.weight", M, D, &w->mix_up))) return st;
    if ((st = vec(f, il, "moa_mix_up.bias", M, 0, 0, &w->mix_up_b))) return st;
    if ((st = mat(f, il, "moa_mix_down.weight", D, M, &w->mix_down))) return st;
    if ((st = vec(f, il, "moa_mix_down.bias", D, 0, 0, &w->mix_down_b))) return st;
    if ((st = vec(f, il, "moa_ls_mix", D, 0, 0, &w->ls_mix))) return st;
    if ((st = vec(f, il, "moa_ls_ffn", D, 0, 0, &w->ls_ffn))) return st;
    if ((st = mat(f, il, "ffn_router.weight", MOA_BRANCHES, D, &w->br))) return st;
    if ((st = mat(f, il, "ffn_gate.weight", F, D, &w->ffn_gate))) return st;
    if ((st = mat(f, il, "ffn_up.weight", F, D, &w->ffn_up))) return st;
    if ((st = mat(f, il, "ffn_down.weight", D, F, &w->ffn_down))) return st;
    if ((st = mat(f, il, "ffn_conv_in.weight", C, D, &w->sc_in))) return st;
    if ((st = vec(f, il, "ffn_conv_dw.weight", K, C, 0, &w->sc_w))) return st;
    if ((st = vec(f, il, "ffn_conv_dw.bias", C, 0, 0, &w->sc_b))) return st;
    if ((st = mat(f, il, "ffn_conv_out.weight", D, C, &w->sc_out))) return st;
    if ((st = mat(f, il, "ffn_lr_down.weight", r, D, &w->lr_down))) return st;
    if ((st = mat(f, il, "ffn_lr_up.weight", D, r, &w->lr_up))) return st;
    return BRAID_OK;
}

/* ---- fingerprint, describe --------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static char *describe(const braid_model *m) {
    const moa_hparams *hp = &m->moa->hp;
    static const char *const metrics[] = {"l2", "cosine", "maha_diag"};
    gguf_str name = {"", 0};
    const gguf_kv *kv = gguf_find_kv(m->gguf, "general.name");
    if (kv && kv->type == GGUF_TYPE_STRING) name = kv->str;
    char nm[200];
    size_t o = 0;
    for (uint64_t i = 0; i < name.len && o + 7 < sizeof nm; i++) {
        unsigned char ch = (unsigned char)name.ptr[i];
        if (ch == '"' || ch == '\\') nm[o++] = '\\', nm[o++] = (char)ch;
        else if (ch >= 0x20) nm[o++] = (char)ch;
    }
    nm[o] = 0;
    char *s = malloc(2048);
    if (!s) return NULL;
    snprintf(s, 2048,
             "{\"architecture\":\"moa\",\"name\":\"%s\",\"n_vocab\":%d,\"n_embd\":%d,\"n_layer\":%d,"
             "\"context_length\":%d,\"embd_type\":\"%s\",\"tensor_bytes\":%llu,\"moa\":{\"metric\":\"%s\","
             "\"attn_heads\":%d,\"mqa_q_heads\":%d,\"mixer_hidden\":%d,\"ffn_hidden\":%d,\"router_hidden\":%d,"
             "\"router_topk\":%d,\"router_temperature\":%g,\"conv_kernel\":%d,\"conv_mult\":%d,\"lr_rank\":%d,"
             "\"n_branches\":%d,\"branch_topk\":%d,\"branch_temperature\":%g,\"r_basis\":%d,\"theta_base\":%g,"
             "\"energy_amplification\":%g,\"use_balls\":%s,\"enable_feature_gates\":%s,\"enable_router_gates\":%s,"
             "\"enable_v_energy\":%s,\"discrepancy_modulation\":%s,\"layer_norm_eps\":%g,\"alpha_init\":%g,"
             "\"radius_init\":%g,\"maha_init\":%g,\"layer_scale_init_value\":%g},\"kv_cache_bytes_per_token\":%lld}",
             nm, hp->n_vocab, hp->dim, hp->n_layer, hp->max_pos, gguf_type_name(m->token_embd.type),
             (unsigned long long)m->gguf->data_bytes, metrics[hp->metric], hp->attn_heads, hp->mqa_heads,
             hp->mixer_hidden, hp->ffn_hidden, hp->router_hidden, hp->router_topk, (double)hp->router_temp,
             hp->conv_kernel, hp->conv_mult, hp->lr_rank, hp->n_branches, hp->branch_topk, (double)hp->branch_temp,
             hp->r_basis, (double)hp->theta_base, (double)hp->energy_amp, hp->use_balls ? "true" : "false",
             hp->feature_gates ? "true" : "false", hp->router_gates ? "true" : "false",
             hp->v_energy ? "true" : "false", hp->discrepancy ? "true" : "false", (double)hp->ln_eps,
             (double)hp->alpha_init, (double)hp->radius_init, (double)hp->maha_init, (double)hp->layer_scale_init,
             (long long)m->moa->lay.row * hp->n_layer * 4);
    return s;
}

/* ---- load ------------------------------------------------------------------------------ */

/* Cache row layout (M.12): per attention K [G·d_h], V [G·d_h], key norms [H], in-ball flags [H];
 * then u [D] and the SepConv input a [C]. */
static void layout(moa_model *mm) {
    const moa_hparams *hp = &mm->hp;
    int64_t off = 0;
    for (int il = 0; il < hp->n_layer; il++) {
        int64_t o = 0;
        moa_attn *as[2] = {&mm->layers[il].mha, &mm->layers[il].mqa};
        for (int i = 0; i < 2; i++) {
            moa_attn *a = as[i];
            a->off_k = o, o += (int64_t)a->G * a->dh;
            a->off_v = o, o += (int64_t)a->G * a->dh;
            a->off_kn = o, o += a->H;
            a->off_in = o, o += a->H;
        }
        mm->lay.off_u = o, o += hp->dim;
        mm->lay.off_a = o, o += (int64_t)hp->conv_mult * hp->dim;
        off = o;
    }
    mm->lay.row = off;
}

int32_t moa_load(braid_model *m) {
    const gguf_file *f = m->gguf;
    int32_t st;
    moa_model *mm = calloc(1, sizeof *mm);
    if (!mm) return braid_fail(BRAID_ERR_NOMEM, "out of memory for the MoA model");
    m->moa = mm;
    moa_hparams *hp = &mm->hp;
    if ((st = read_hparams(f, hp))) return st;
    if ((st = mat(f, -1, "token_embd.weight", hp->n_vocab, hp->dim, &mm->token_embd))) return st;
    if ((st = vec(f, -1, "output_norm.weight", hp->dim, 0, 0, &mm->out_w))) return st;
    if ((st = vec(f, -1, "output_norm.bias", hp->dim, 0, 0, &mm->out_b))) return st;
    mm->layers = calloc((size_t)hp->n_layer, sizeof *mm->layers);
    const int32_t R = hp->r_basis, h1 = hp->dim / hp->attn_heads / 2, h2 = hp->dim / hp->mqa_heads / 2;
    mm->nu = malloc(sizeof(double) * (size_t)(R + 1));
    mm->theta_mha = malloc(sizeof(double) * (size_t)h1);
    mm->theta_mqa = malloc(sizeof(double) * (size_t)h2);
    if (!mm->layers || !mm->nu || !mm->theta_mha || !mm->theta_mqa)
        return braid_fail(BRAID_ERR_NOMEM, "out of memory for the MoA layer table");
    for (int il = 0; il < hp->n_layer; il++)
        if ((st = load_layer(f, il, hp, &mm->layers[il]))) return st;
    layout(mm);
    /* BlackHoleRoPE (M.5): θ_i = base^(−2i/d_h), ν_r = base^(−r/R), r = 1..R */
    for (int32_t i = 0; i < h1; i++) mm->theta_mha[i] = pow((double)hp->theta_base, -2.0 * i / (2.0 * h1));
    for (int32_t i = 0; i < h2; i++) mm->theta_mqa[i] = pow((double)hp->theta_base, -2.0 * i / (2.0 * h2));
    for (int32_t r = 1; r <= R; r++) mm->nu[r - 1] = pow((double)hp->theta_base, -(double)r / R);

    m->hp.n_vocab = hp->n_vocab;
    m->hp.n_embd = hp->dim;
    m->hp.n_layer = hp->n_layer;
    m->hp.context_length = hp->max_pos;
    m->hp.loop.max = m->hp.loop.def = 1; /* no Parcae looping: set_loops accepts only 1 */
    m->token_embd = mm->token_embd;
    uint64_t h = fnv1a(0xcbf29ce484222325ull, "moa", 3);
    moa_hparams key = *hp;
    h = fnv1a(h, &key, sizeof key);
    h = fnv1a(h, &mm->token_embd.type, sizeof mm->token_embd.type);
    m->fingerprint = h;
    m->describe = describe(m);
    if (!m->describe) return braid_fail(BRAID_ERR_NOMEM, "out of memory for the model description");
    return BRAID_OK;
}

void moa_free(moa_model *mm) {
    if (!mm) return;
    free(mm->layers);
    free(mm->nu);
    free(mm->theta_mha);
    free(mm->theta_mqa);
    free(mm);
}
