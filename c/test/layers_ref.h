/*
 * layers_ref.h — for c/test/test_layers.c: random Chimera GGUF files with every
 * layer type (host copies of all weights kept by name), and a naive
 * double-precision forward written from ../shared/ARCHITECTURES.md (§2.1–2.10,
 * §2.13) that the library is compared against. Header-only; tests only.
 */
#ifndef BRAID_TEST_LAYERS_REF_H
#define BRAID_TEST_LAYERS_REF_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../src/kernels.h"
#include "gguf_writer.h"
#include "harness.h"
#include "ref_common.h"

/* ---- model description ------------------------------------------------------------ */

typedef struct {
    int L, D, I, V;
    int H, dk, dv, K;                 /* GDN */
    int xH, xd;                       /* xLSTM */
    int tH, td, tdm, tNp, tCs;        /* Titans */
    float tmax;
    int Ds;                           /* TSP sketch */
    int E, Ek, Esh, Eff, n_moe;       /* MoE */
    int moe[8];
    int span;                         /* risk gate */
    const char *types[8];
    const char *skip;                 /* tensor to leave out */
    const char *bad_shape;            /* tensor written with ne[0] + 1 */
    const char *skip_key;             /* metadata key to leave out */
    int moe_dup;                      /* list the first MoE layer twice */
    int lmax;                         /* Parcae: 0 = no looping, else chimera.loop.max */
    int loop0, coda0, ldef;           /* first loop layer, first coda layer, default count */
    int f16;                          /* float matrices (token_embd, W_a/W_b, SK, router, W_rg, Parcae B/C) as F16 */
} lcfg;

/* Host copies of every tensor, by name (BT2 ones as their bytes). */
typedef struct {
    char name[96];
    float *f;
    uint8_t *q;
} hten;
static hten g_h[2048];
static int g_nh;

static void host_clear(void) {
    for (int i = 0; i < g_nh; i++) free(g_h[i].f), free(g_h[i].q);
    g_nh = 0;
}
static void host_add(const char *name, float *f, uint8_t *q) {
    if (g_nh >= (int)(sizeof g_h / sizeof g_h[0])) abort();
    snprintf(g_h[g_nh].name, sizeof g_h[0].name, "%s", name);
    g_h[g_nh].f = f;
    g_h[g_nh].q = q;
    g_nh++;
}
static hten *host_find(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static hten *host_find(const char *fmt, ...) {
    char n[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(n, sizeof n, fmt, ap);
    va_end(ap);
    for (int i = 0; i < g_nh; i++)
        if (strcmp(g_h[i].name, n) == 0) return &g_h[i];
    printf("host tensor %s missing\n", n);
    abort();
}
#define HF(...) (host_find(__VA_ARGS__)->f)
#define HQ(...) (host_find(__VA_ARGS__)->q)

/* F32 tensor with GGUF dims ne[0..nd); data has prod(ne) floats (kept as the host copy). */
static void put_f32(gw *w, const lcfg *c, const char *name, float *data, uint32_t nd, int64_t ne0, int64_t ne1,
                    int64_t ne2) {
    host_add(name, data, NULL);
    if (c->skip && strcmp(c->skip, name) == 0) return;
    int64_t ne[3] = {ne0, ne1, ne2};
    int64_t n = ne0 * (nd > 1 ? ne1 : 1) * (nd > 2 ? ne2 : 1);
    if (c->bad_shape && strcmp(c->bad_shape, name) == 0) {
        ne[0]++;
        float *big = calloc((size_t)(n / ne0 * ne[0]), sizeof(float));
        gw_tensor(w, name, GGML_TYPE_F32, nd, ne, big, sizeof(float) * (size_t)(n / ne0 * ne[0]));
        free(big);
        return;
    }
    gw_tensor(w, name, GGML_TYPE_F32, nd, ne, data, sizeof(float) * (size_t)n);
}
static void vec(gw *w, const lcfg *c, const char *name, float *data, int64_t n) { put_f32(w, c, name, data, 1, n, 1, 1); }
static void mat(gw *w, const lcfg *c, const char *name, float *data, int64_t rows, int64_t cols) {
    put_f32(w, c, name, data, 2, cols, rows, 1);
}

/* A float matrix a decode step reads: F32, or with c->f16 F16 — then the host copy is
 * rounded to the stored halves, so the reference computes on the weights the file holds. */
static void fmat_w(gw *w, const lcfg *c, const char *name, float *data, int64_t rows, int64_t cols) {
    if (!c->f16) {
        mat(w, c, name, data, rows, cols);
        return;
    }
    host_add(name, data, NULL);
    if (c->skip && strcmp(c->skip, name) == 0) return;
    const int bad = c->bad_shape && strcmp(c->bad_shape, name) == 0; /* ne[0] + 1, as put_f32 */
    int64_t ne[2] = {cols + bad, rows};
    uint16_t *h = calloc((size_t)(rows * ne[0]), sizeof(uint16_t));
    for (int64_t i = 0; i < rows * cols; i++) h[i] = float_to_half(data[i]), data[i] = half_to_float(h[i]);
    gw_tensor(w, name, GGML_TYPE_F16, 2, ne, h, sizeof(uint16_t) * (size_t)(rows * ne[0]));
    free(h);
}

/* nstack BT2 matrices [rows, cols] in one tensor (2-D if nstack == 0); host copies "name#e". */
static void put_bt2(gw *w, const lcfg *c, const char *name, int64_t nstack, int64_t rows, int64_t cols) {
    int64_t n = nstack ? nstack : 1;
    size_t one = bt2_bytes(rows, cols);
    uint8_t *all = malloc(one * (size_t)n);
    for (int64_t e = 0; e < n; e++) {
        float *lat = rand_vec(rows * cols, 0.0f, 1.0f / sqrtf((float)cols));
        uint8_t *q = bt2_quantize(lat, rows, cols);
        free(lat);
        memcpy(all + one * (size_t)e, q, one);
        char hn[96];
        if (nstack)
            snprintf(hn, sizeof hn, "%s#%lld", name, (long long)e);
        else
            snprintf(hn, sizeof hn, "%s", name);
        host_add(hn, NULL, q);
    }
    if (!(c->skip && strcmp(c->skip, name) == 0)) {
        int64_t ne[3] = {cols, rows, nstack};
        if (c->bad_shape && strcmp(c->bad_shape, name) == 0) ne[1] = rows - 1; /* fewer rows: still a valid BT2 size */
        size_t nbytes = (size_t)n * bt2_bytes(ne[1], cols);
        gw_tensor(w, name, BRAID_GGUF_TYPE_BT2, nstack ? 3 : 2, ne, all, nbytes);
    }
    free(all);
}

static int is_moe(const lcfg *c, int il) {
    for (int i = 0; i < c->n_moe; i++)
        if (c->moe[i] == il) return 1;
    return 0;
}

static void kv_u32(gw *w, const lcfg *c, const char *key, uint32_t v) {
    if (!(c->skip_key && strcmp(c->skip_key, key) == 0)) gw_kv_u32(w, key, v);
}
static void kv_f32(gw *w, const lcfg *c, const char *key, float v) {
    if (!(c->skip_key && strcmp(c->skip_key, key) == 0)) gw_kv_f32(w, key, v);
}

static void write_gdn(gw *w, const lcfg *c, int il) {
    char n[96];
#define NM(s) (snprintf(n, sizeof n, "blk.%d.%s", il, s), n)
    const int64_t D = c->D, H = c->H, Hdk = H * c->dk, Hdv = H * c->dv, K = c->K;
    put_bt2(w, c, NM("gdn_q.weight"), 0, Hdk, D);
    put_bt2(w, c, NM("gdn_k.weight"), 0, Hdk, D);
    put_bt2(w, c, NM("gdn_v.weight"), 0, Hdv, D);
    put_bt2(w, c, NM("gdn_g.weight"), 0, Hdv, D);
    put_bt2(w, c, NM("gdn_o.weight"), 0, D, Hdv);
    fmat_w(w, c, NM("gdn_a.weight"), rand_vec(H * D, 0.0f, 1.0f / sqrtf((float)D)), H, D);
    fmat_w(w, c, NM("gdn_b.weight"), rand_vec(H * D, 0.0f, 1.0f / sqrtf((float)D)), H, D);
    float *a_log = malloc(sizeof(float) * (size_t)H), *dt_bias = malloc(sizeof(float) * (size_t)H);
    for (int64_t i = 0; i < H; i++) {
        a_log[i] = logf(rng_uniform(1.0f, 16.0f));
        float dt = expf(rng_uniform(logf(1e-3f), logf(1e-1f)));
        dt_bias[i] = dt + logf(-expm1f(-dt));
    }
    vec(w, c, NM("gdn_a_log"), a_log, H);
    vec(w, c, NM("gdn_dt_bias"), dt_bias, H);
    mat(w, c, NM("gdn_conv_q.weight"), rand_vec(Hdk * K, 0.0f, 0.3f), Hdk, K);
    mat(w, c, NM("gdn_conv_k.weight"), rand_vec(Hdk * K, 0.0f, 0.3f), Hdk, K);
    mat(w, c, NM("gdn_conv_v.weight"), rand_vec(Hdv * K, 0.0f, 0.3f), Hdv, K);
    vec(w, c, NM("gdn_o_norm.weight"), rand_vec(c->dv, 1.0f, 0.1f), c->dv);
#undef NM
}

static void make_model(const char *path, lcfg c) {
    host_clear();
    gw w;
    gw_init(&w);
    gw_kv_str(&w, "general.architecture", "chimera");
    gw_kv_str(&w, "general.name", "layers");
    gw_kv_u32(&w, "braid.format_version", 1);
    gw_kv_u32(&w, "chimera.vocab_size", (uint32_t)c.V);
    gw_kv_u32(&w, "chimera.embedding_length", (uint32_t)c.D);
    gw_kv_u32(&w, "chimera.feed_forward_length", (uint32_t)c.I);
    gw_kv_u32(&w, "chimera.block_count", (uint32_t)c.L);
    gw_kv_arr_str(&w, "chimera.layer_types", c.types, (uint64_t)c.L);
    gw_kv_f32(&w, "chimera.rms_norm_eps", 1e-6f);
    gw_kv_u32(&w, "chimera.context_length", 4096);
    gw_kv_u32(&w, "chimera.gdn.head_count", (uint32_t)c.H);
    gw_kv_u32(&w, "chimera.gdn.head_dim", (uint32_t)c.dk);
    gw_kv_u32(&w, "chimera.gdn.value_dim", (uint32_t)c.dv);
    gw_kv_u32(&w, "chimera.gdn.conv_kernel", (uint32_t)c.K);
    gw_kv_u32(&w, "chimera.gdn.chunk_size", 8);
    kv_u32(&w, &c, "chimera.xlstm.head_count", (uint32_t)c.xH);
    kv_u32(&w, &c, "chimera.xlstm.head_dim", (uint32_t)c.xd);
    kv_f32(&w, &c, "chimera.xlstm.gate_soft_cap", 15.0f);
    kv_f32(&w, &c, "chimera.xlstm.norm_eps", 1e-5f);
    kv_u32(&w, &c, "chimera.titans.head_count", (uint32_t)c.tH);
    kv_u32(&w, &c, "chimera.titans.head_dim", (uint32_t)c.td);
    kv_u32(&w, &c, "chimera.titans.memory_dim", (uint32_t)c.tdm);
    kv_u32(&w, &c, "chimera.titans.persistent_slots", (uint32_t)c.tNp);
    kv_u32(&w, &c, "chimera.titans.segment_length", (uint32_t)c.tCs);
    kv_f32(&w, &c, "chimera.titans.theta_max", c.tmax);
    kv_u32(&w, &c, "chimera.tsp.sketch_dim", (uint32_t)c.Ds);
    if (c.n_moe) {
        int32_t list[9];
        for (int i = 0; i < c.n_moe; i++) list[i] = c.moe[i];
        if (c.moe_dup) list[c.n_moe] = c.moe[0];
        gw_kv_arr_i32(&w, "chimera.moe.layers", list, (uint64_t)(c.n_moe + (c.moe_dup ? 1 : 0)));
        kv_u32(&w, &c, "chimera.moe.expert_count", (uint32_t)c.E);
        kv_u32(&w, &c, "chimera.moe.expert_used_count", (uint32_t)c.Ek);
        kv_u32(&w, &c, "chimera.moe.shared_expert_count", (uint32_t)c.Esh);
        kv_u32(&w, &c, "chimera.moe.feed_forward_length", (uint32_t)c.Eff);
        kv_f32(&w, &c, "chimera.moe.routed_scaling_factor", 1.0f);
    }
    if (c.span) gw_kv_u32(&w, "chimera.span_engine.risk_gate", 1);
    if (c.lmax) {
        const int32_t pre[2] = {0, c.loop0 - 1}, loop[2] = {c.loop0, c.coda0 - 1}, coda[2] = {c.coda0, c.L - 1};
        gw_kv_arr_i32(&w, "chimera.loop.prelude", pre, 2);
        if (!(c.skip_key && !strcmp(c.skip_key, "chimera.loop.loop"))) gw_kv_arr_i32(&w, "chimera.loop.loop", loop, 2);
        gw_kv_arr_i32(&w, "chimera.loop.coda", coda, 2);
        kv_u32(&w, &c, "chimera.loop.max", (uint32_t)c.lmax);
        kv_u32(&w, &c, "chimera.loop.default", (uint32_t)c.ldef);
        if (!(c.skip_key && !strcmp(c.skip_key, "chimera.loop.backward_truncation")))
            gw_kv_str(&w, "chimera.loop.backward_truncation", "half");
    }

    const int64_t D = c.D, I = c.I, V = c.V;
    fmat_w(&w, &c, "token_embd.weight", rand_vec(V * D, 0.0f, 0.3f), V, D);
    vec(&w, &c, "output_norm.weight", rand_vec(D, 1.0f, 0.1f), D);
    if (c.span) {
        vec(&w, &c, "output_risk.weight", rand_vec(D, 0.0f, 0.3f), D);
        fmat_w(&w, &c, "output_gate.weight", rand_vec(D * (D + 1), 0.0f, 1.0f / sqrtf((float)D)), D, D + 1);
    }
    if (c.lmax) { /* non-trivial Parcae weights so every term of §2.11 shows in the logits */
        vec(&w, &c, "parcae.prelude_norm.weight", rand_vec(D, 1.0f, 0.1f), D);
        vec(&w, &c, "parcae.a_log", rand_vec(D, 0.0f, 0.5f), D);
        vec(&w, &c, "parcae.dt_bias", rand_vec(D, 0.0f, 1.0f), D);
        float *b = rand_vec(D * D, 0.0f, 0.3f / sqrtf((float)D)), *cm = rand_vec(D * D, 0.0f, 0.3f / sqrtf((float)D));
        for (int64_t j = 0; j < D; j++) b[j * D + j] += 1.0f, cm[j * D + j] += 1.0f;
        fmat_w(&w, &c, "parcae.b.weight", b, D, D);
        fmat_w(&w, &c, "parcae.c.weight", cm, D, D);
    }
    for (int il = 0; il < c.L; il++) {
        char n[96];
#define NM(s) (snprintf(n, sizeof n, "blk.%d.%s", il, s), n)
        vec(&w, &c, NM("attn_norm.weight"), rand_vec(D, 1.0f, 0.1f), D);
        const char *ty = c.types[il];
        if (!strcmp(ty, "GD") || !strcmp(ty, "SK")) write_gdn(&w, &c, il);
        if (!strcmp(ty, "XM")) {
            const int64_t H = c.xH, d = c.xd, Hd = H * d;
            put_bt2(&w, &c, NM("xm_q.weight"), 0, Hd, D);
            put_bt2(&w, &c, NM("xm_k.weight"), 0, Hd, D);
            put_bt2(&w, &c, NM("xm_v.weight"), 0, Hd, D);
            put_bt2(&w, &c, NM("xm_og.weight"), 0, Hd, D);
            put_bt2(&w, &c, NM("xm_o.weight"), 0, D, Hd);
            mat(&w, &c, NM("xm_i.weight"), rand_vec(H * D, 0.0f, 2.0f / sqrtf((float)D)), H, D);
            mat(&w, &c, NM("xm_f.weight"), rand_vec(H * D, 0.0f, 2.0f / sqrtf((float)D)), H, D);
            vec(&w, &c, NM("xm_i.bias"), rand_vec(H, 0.0f, 1.0f), H);
            float *bf = malloc(sizeof(float) * (size_t)H);
            for (int64_t h = 0; h < H; h++) bf[h] = H > 1 ? 3.0f + 3.0f * (float)h / (float)(H - 1) : 3.0f;
            vec(&w, &c, NM("xm_f.bias"), bf, H);
            vec(&w, &c, NM("xm_norm.weight"), rand_vec(d, 1.0f, 0.1f), d);
            vec(&w, &c, NM("xm_norm.bias"), rand_vec(d, 0.0f, 0.1f), d);
        }
        if (!strcmp(ty, "TM")) {
            const int64_t H = c.tH, d = c.td, Hd = H * d, dm = c.tdm, Np = c.tNp;
            put_bt2(&w, &c, NM("tm_q.weight"), 0, Hd, D);
            put_bt2(&w, &c, NM("tm_k.weight"), 0, Hd, D);
            put_bt2(&w, &c, NM("tm_v.weight"), 0, Hd, D);
            put_bt2(&w, &c, NM("tm_o.weight"), 0, D, Hd);
            put_bt2(&w, &c, NM("tm_km.weight"), 0, Hd, Hd);
            put_bt2(&w, &c, NM("tm_vm.weight"), 0, Hd, Hd);
            mat(&w, &c, NM("tm_alpha.weight"), rand_vec(H * D, 0.0f, 1.0f / sqrtf((float)D)), H, D);
            mat(&w, &c, NM("tm_eta.weight"), rand_vec(H * D, 0.0f, 1.0f / sqrtf((float)D)), H, D);
            mat(&w, &c, NM("tm_theta.weight"), rand_vec(H * D, 0.0f, 1.0f / sqrtf((float)D)), H, D);
            vec(&w, &c, NM("tm_alpha.bias"), rand_vec(H, -2.0f, 0.5f), H);
            vec(&w, &c, NM("tm_eta.bias"), rand_vec(H, 1.0f, 0.5f), H);
            vec(&w, &c, NM("tm_theta.bias"), rand_vec(H, 0.0f, 0.5f), H);
            put_f32(&w, &c, NM("tm_persist_k"), rand_vec(H * Np * d, 0.0f, 1.0f), 3, d, Np, H);
            put_f32(&w, &c, NM("tm_persist_v"), rand_vec(H * Np * d, 0.0f, 1.0f), 3, d, Np, H);
            put_f32(&w, &c, NM("tm_mem_w1"), rand_vec(H * dm * d, 0.0f, 2.0f / sqrtf((float)d)), 3, d, dm, H);
            put_f32(&w, &c, NM("tm_mem_w2"), rand_vec(H * d * dm, 0.0f, 2.0f / sqrtf((float)dm)), 3, dm, d, H);
        }
        if (!strcmp(ty, "SK")) {
            const int64_t Ds = c.Ds;
            fmat_w(&w, &c, NM("sk_sketch.weight"), rand_vec(Ds * D, 0.0f, 1.0f), Ds, D);
            /* a zero role row makes the binding term non-zero (§2.9: only where a role coordinate is 0) */
            float *role = rand_vec(Ds * D, 0.0f, 1.0f);
            memset(role, 0, sizeof(float) * (size_t)D);
            fmat_w(&w, &c, NM("sk_role.weight"), role, Ds, D);
            fmat_w(&w, &c, NM("sk_filler.weight"), rand_vec(Ds * D, 0.0f, 1.0f), Ds, D);
            fmat_w(&w, &c, NM("sk_energy.weight"), rand_vec(5 * D, 0.0f, 0.5f), 5, D);
            float *lam = malloc(sizeof(float) * 5);
            const float l0[5] = {1.0f, 0.3f, 0.2f, 0.4f, 0.3f};
            memcpy(lam, l0, sizeof l0);
            vec(&w, &c, NM("sk_energy_lambda"), lam, 5);
        }
        vec(&w, &c, NM("ffn_norm.weight"), rand_vec(D, 1.0f, 0.1f), D);
        if (is_moe(&c, il)) {
            const int64_t E = c.E, Ie = c.Eff, Ish = (int64_t)c.Esh * c.Eff;
            fmat_w(&w, &c, NM("ffn_gate_inp.weight"), rand_vec(E * D, 0.0f, 1.0f / sqrtf((float)D)), E, D);
            vec(&w, &c, NM("exp_probs_b.bias"), rand_vec(E, 0.0f, 0.3f), E);
            put_bt2(&w, &c, NM("ffn_gate_exps.weight"), E, Ie, D);
            put_bt2(&w, &c, NM("ffn_up_exps.weight"), E, Ie, D);
            put_bt2(&w, &c, NM("ffn_down_exps.weight"), E, D, Ie);
            if (Ish) {
                put_bt2(&w, &c, NM("ffn_gate_shexp.weight"), 0, Ish, D);
                put_bt2(&w, &c, NM("ffn_up_shexp.weight"), 0, Ish, D);
                put_bt2(&w, &c, NM("ffn_down_shexp.weight"), 0, D, Ish);
            }
        } else {
            put_bt2(&w, &c, NM("ffn_gate.weight"), 0, I, D);
            put_bt2(&w, &c, NM("ffn_up.weight"), 0, I, D);
            put_bt2(&w, &c, NM("ffn_down.weight"), 0, D, I);
        }
#undef NM
    }
    size_t size;
    uint8_t *file = gw_finish(&w, &size, NULL);
    if (gw_write_file(path, file, size) != 0) {
        printf("cannot write %s\n", path);
        exit(2);
    }
    free(file);
    gw_free(&w);
}

/* ---- naive double-precision reference (ARCHITECTURES.md) ------------------------------ */

#define DBL(n) ((double *)calloc((size_t)(n) + 1, sizeof(double)))

static void ref_l2(double *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i] * x[i];
    s = fmax(sqrt(s), 1e-12);
    for (int64_t i = 0; i < n; i++) x[i] /= s;
}

static void ref_linear(double *y, const float *W, int64_t rows, int64_t cols, const double *x) {
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t j = 0; j < cols; j++) s += W[r * cols + j] * x[j];
        y[r] = s;
    }
}

/* §2.5 Gated DeltaNet over T rows of xn (zero state); y [T, D] */
static void ref_gdn(double *y, const lcfg *c, int il, const double *xn, int64_t T) {
    const int64_t D = c->D, H = c->H, dk = c->dk, dv = c->dv, Hdk = H * dk, Hdv = H * dv, K = c->K;
    double *qr = DBL(T * Hdk), *kr = DBL(T * Hdk), *vr = DBL(T * Hdv), *gr = DBL(T * Hdv), *ar = DBL(T * H),
           *br = DBL(T * H), *o = DBL(Hdv), *S = DBL(H * dv * dk);
    for (int64_t t = 0; t < T; t++) {
        const double *x = xn + t * D;
        ref_bitlinear(qr + t * Hdk, HQ("blk.%d.gdn_q.weight", il), Hdk, D, x);
        ref_bitlinear(kr + t * Hdk, HQ("blk.%d.gdn_k.weight", il), Hdk, D, x);
        ref_bitlinear(vr + t * Hdv, HQ("blk.%d.gdn_v.weight", il), Hdv, D, x);
        ref_bitlinear(gr + t * Hdv, HQ("blk.%d.gdn_g.weight", il), Hdv, D, x);
        ref_linear(ar + t * H, HF("blk.%d.gdn_a.weight", il), H, D, x);
        ref_linear(br + t * H, HF("blk.%d.gdn_b.weight", il), H, D, x);
    }
    const float *cw[3] = {HF("blk.%d.gdn_conv_q.weight", il), HF("blk.%d.gdn_conv_k.weight", il),
                          HF("blk.%d.gdn_conv_v.weight", il)};
    double *cx[3] = {qr, kr, vr};
    const int64_t cch[3] = {Hdk, Hdk, Hdv};
    for (int i = 0; i < 3; i++)
        for (int64_t t = T - 1; t >= 0; t--)
            for (int64_t ch = 0; ch < cch[i]; ch++) {
                double s = 0;
                for (int64_t j = 0; j < K; j++) {
                    int64_t tt = t - K + 1 + j;
                    if (tt >= 0) s += cw[i][ch * K + j] * cx[i][tt * cch[i] + ch];
                }
                cx[i][t * cch[i] + ch] = silu(s);
            }
    const float *a_log = HF("blk.%d.gdn_a_log", il), *dtb = HF("blk.%d.gdn_dt_bias", il);
    const float *onorm = HF("blk.%d.gdn_o_norm.weight", il);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t h = 0; h < H; h++) {
            double *q = qr + t * Hdk + h * dk, *k = kr + t * Hdk + h * dk, *v = vr + t * Hdv + h * dv;
            ref_l2(q, dk);
            ref_l2(k, dk);
            for (int64_t j = 0; j < dk; j++) q[j] /= sqrt((double)dk);
            double beta = sigm(br[t * H + h]), z = ar[t * H + h] + dtb[h];
            double alpha = exp(-exp((double)a_log[h]) * (z > 30 ? z : log1p(exp(z))));
            double *Sh = S + h * dv * dk;
            for (int64_t i = 0; i < dv; i++) {
                double *Si = Sh + i * dk, Sk = 0, oi = 0;
                for (int64_t j = 0; j < dk; j++) Sk += Si[j] * k[j];
                for (int64_t j = 0; j < dk; j++) Si[j] = alpha * Si[j] + beta * (v[i] - alpha * Sk) * k[j];
                for (int64_t j = 0; j < dk; j++) oi += Si[j] * q[j];
                o[h * dv + i] = oi;
            }
            ref_rmsnorm(o + h * dv, o + h * dv, onorm, dv, 1e-6f);
            for (int64_t i = 0; i < dv; i++) o[h * dv + i] *= silu(gr[t * Hdv + h * dv + i]);
        }
        ref_bitlinear(y + t * D, HQ("blk.%d.gdn_o.weight", il), D, Hdv, o);
    }
    free(qr), free(kr), free(vr), free(gr), free(ar), free(br), free(o), free(S);
}

/* §2.6 mLSTM in its parallel form (the reference's), per head, from a zero state */
static void ref_xm(double *y, const lcfg *c, int il, const double *xn, int64_t T) {
    const int64_t D = c->D, H = c->xH, d = c->xd, Hd = H * d;
    double *q = DBL(T * Hd), *k = DBL(T * Hd), *v = DBL(T * Hd), *og = DBL(T * Hd), *ig = DBL(T * H),
           *fg = DBL(T * H), *F = DBL(T), *o = DBL(Hd);
    const float *bi = HF("blk.%d.xm_i.bias", il), *bf = HF("blk.%d.xm_f.bias", il);
    for (int64_t t = 0; t < T; t++) {
        const double *x = xn + t * D;
        ref_bitlinear(q + t * Hd, HQ("blk.%d.xm_q.weight", il), Hd, D, x);
        ref_bitlinear(k + t * Hd, HQ("blk.%d.xm_k.weight", il), Hd, D, x);
        ref_bitlinear(v + t * Hd, HQ("blk.%d.xm_v.weight", il), Hd, D, x);
        ref_bitlinear(og + t * Hd, HQ("blk.%d.xm_og.weight", il), Hd, D, x);
        ref_linear(ig + t * H, HF("blk.%d.xm_i.weight", il), H, D, x);
        ref_linear(fg + t * H, HF("blk.%d.xm_f.weight", il), H, D, x);
        for (int64_t h = 0; h < H; h++) {
            ig[t * H + h] = 15.0 * tanh((ig[t * H + h] + bi[h]) / 15.0);
            fg[t * H + h] = log(sigm(15.0 * tanh((fg[t * H + h] + bf[h]) / 15.0)));
        }
    }
    const float *nw = HF("blk.%d.xm_norm.weight", il), *nb = HF("blk.%d.xm_norm.bias", il);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t h = 0; h < H; h++) {
            double acc = 0;
            for (int64_t u = 0; u < T; u++) F[u] = acc += fg[u * H + h];
            double m = -INFINITY;
            for (int64_t s = 0; s <= t; s++) m = fmax(m, F[t] - F[s] + ig[s * H + h]);
            double *ht = o + h * d, wsum = 0;
            for (int64_t a = 0; a < d; a++) ht[a] = 0;
            for (int64_t s = 0; s <= t; s++) {
                double qk = 0;
                for (int64_t b = 0; b < d; b++) qk += q[t * Hd + h * d + b] / sqrt((double)d) * k[s * Hd + h * d + b];
                double wts = qk * exp(F[t] - F[s] + ig[s * H + h] - m);
                wsum += wts;
                for (int64_t a = 0; a < d; a++) ht[a] += wts * v[s * Hd + h * d + a];
            }
            double den = fmax(fabs(wsum), exp(-m)) + 1e-6, mean = 0, var = 0;
            for (int64_t a = 0; a < d; a++) mean += ht[a] /= den;
            mean /= d;
            for (int64_t a = 0; a < d; a++) var += (ht[a] - mean) * (ht[a] - mean);
            var /= d;
            for (int64_t a = 0; a < d; a++)
                ht[a] = sigm(og[t * Hd + h * d + a]) * ((ht[a] - mean) / sqrt(var + 1e-5f) * nw[a] + nb[a]);
        }
        ref_bitlinear(y + t * D, HQ("blk.%d.xm_o.weight", il), D, Hd, o);
    }
    free(q), free(k), free(v), free(og), free(ig), free(fg), free(F), free(o);
}

/* memory MLP p = W2 SiLU(W1 u) */
static void ref_mem(double *p, double *a, double *z, const double *W1, const double *W2, const double *u, int64_t d,
                    int64_t dm) {
    for (int64_t i = 0; i < dm; i++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++) s += W1[i * d + j] * u[j];
        a[i] = s, z[i] = silu(s);
    }
    for (int64_t i = 0; i < d; i++) {
        double s = 0;
        for (int64_t j = 0; j < dm; j++) s += W2[i * dm + j] * z[j];
        p[i] = s;
    }
}

/* §2.8-P Titans MAC with the closed-form segment update (a different route than the
 * library's token recurrence), memory keys/values = (L2norm(r), r), docs/architecture.md */
static void ref_tm(double *y, const lcfg *c, int il, const double *xn, int64_t T) {
    const int64_t D = c->D, H = c->tH, d = c->td, Hd = H * d, dm = c->tdm, Np = c->tNp, Cs = c->tCs, P = 2 * dm * d;
    double *q = DBL(T * Hd), *k = DBL(T * Hd), *v = DBL(T * Hd), *ga = DBL(T * H), *ge = DBL(T * H), *gt = DBL(T * H);
    double *M = DBL(H * P), *S = DBL(H * P), *G = DBL(Cs * H * P), *gal = DBL(Cs * H), *get = DBL(Cs * H),
           *gth = DBL(Cs * H);
    double *rk = DBL(Cs * Hd), *rv = DBL(Cs * Hd), *yy = DBL(Hd), *km = DBL(Hd), *vm = DBL(Hd), *o = DBL(Hd);
    double *lg = DBL(Np + 2 * Cs), *a = DBL(dm), *z = DBL(dm), *p = DBL(d), *e = DBL(d);
    const float *w1 = HF("blk.%d.tm_mem_w1", il), *w2 = HF("blk.%d.tm_mem_w2", il);
    const float *pk = HF("blk.%d.tm_persist_k", il), *pv = HF("blk.%d.tm_persist_v", il);
    const float *ba = HF("blk.%d.tm_alpha.bias", il), *be = HF("blk.%d.tm_eta.bias", il),
                *bt = HF("blk.%d.tm_theta.bias", il);
    for (int64_t h = 0; h < H; h++) {
        for (int64_t i = 0; i < dm * d; i++) M[h * P + i] = w1[h * dm * d + i], M[h * P + dm * d + i] = w2[h * dm * d + i];
    }
    for (int64_t t = 0; t < T; t++) {
        const double *x = xn + t * D;
        ref_bitlinear(q + t * Hd, HQ("blk.%d.tm_q.weight", il), Hd, D, x);
        ref_bitlinear(k + t * Hd, HQ("blk.%d.tm_k.weight", il), Hd, D, x);
        ref_bitlinear(v + t * Hd, HQ("blk.%d.tm_v.weight", il), Hd, D, x);
        ref_linear(ga + t * H, HF("blk.%d.tm_alpha.weight", il), H, D, x);
        ref_linear(ge + t * H, HF("blk.%d.tm_eta.weight", il), H, D, x);
        ref_linear(gt + t * H, HF("blk.%d.tm_theta.weight", il), H, D, x);
    }
    for (int64_t t = 0; t < T; t++) {
        const int64_t j = t % Cs;
        for (int64_t h = 0; h < H; h++) {
            double *qt = q + t * Hd + h * d, *W1 = M + h * P, *W2 = W1 + dm * d;
            ref_l2(qt, d);
            ref_l2(k + t * Hd + h * d, d);
            ref_mem(rv + j * Hd + h * d, a, z, W1, W2, qt, d, dm);
            memcpy(rk + j * Hd + h * d, rv + j * Hd + h * d, sizeof(double) * (size_t)d);
            ref_l2(rk + j * Hd + h * d, d);
            /* softmax attention over [P ; memory tokens ≤ j ; local tokens ≤ j] of this segment */
            int64_t n = 0, s0 = t - j;
            for (int64_t i = 0; i < Np; i++) {
                double sc = 0;
                for (int64_t cc = 0; cc < d; cc++) sc += qt[cc] * pk[(h * Np + i) * d + cc];
                lg[n++] = sc / sqrt((double)d);
            }
            for (int64_t i = 0; i <= j; i++) {
                double sc = 0;
                for (int64_t cc = 0; cc < d; cc++) sc += qt[cc] * rk[i * Hd + h * d + cc];
                lg[n++] = sc / sqrt((double)d);
            }
            for (int64_t i = 0; i <= j; i++) {
                double sc = 0;
                for (int64_t cc = 0; cc < d; cc++) sc += qt[cc] * k[(s0 + i) * Hd + h * d + cc];
                lg[n++] = sc / sqrt((double)d);
            }
            double mx = -INFINITY, sum = 0;
            for (int64_t i = 0; i < n; i++) mx = fmax(mx, lg[i]);
            for (int64_t i = 0; i < n; i++) sum += lg[i] = exp(lg[i] - mx);
            double *yt = yy + h * d;
            for (int64_t cc = 0; cc < d; cc++) yt[cc] = 0;
            n = 0;
            for (int64_t i = 0; i < Np; i++, n++)
                for (int64_t cc = 0; cc < d; cc++) yt[cc] += lg[n] / sum * pv[(h * Np + i) * d + cc];
            for (int64_t i = 0; i <= j; i++, n++)
                for (int64_t cc = 0; cc < d; cc++) yt[cc] += lg[n] / sum * rv[i * Hd + h * d + cc];
            for (int64_t i = 0; i <= j; i++, n++)
                for (int64_t cc = 0; cc < d; cc++) yt[cc] += lg[n] / sum * v[(s0 + i) * Hd + h * d + cc];
        }
        ref_bitlinear(km, HQ("blk.%d.tm_km.weight", il), Hd, Hd, yy);
        ref_bitlinear(vm, HQ("blk.%d.tm_vm.weight", il), Hd, Hd, yy);
        for (int64_t h = 0; h < H; h++) {
            double *W1 = M + h * P, *W2 = W1 + dm * d, *kmh = km + h * d, *g = G + (j * H + h) * P;
            ref_l2(kmh, d);
            ref_mem(p, a, z, W1, W2, kmh, d, dm);
            for (int64_t cc = 0; cc < d; cc++) o[h * d + cc] = yy[h * d + cc] * sigm(p[cc]);
            for (int64_t cc = 0; cc < d; cc++) e[cc] = 2 * (p[cc] - vm[h * d + cc]);
            for (int64_t i = 0; i < dm; i++) { /* ∇W1 = δ kᵀ, δ = (W2ᵀ e) ⊙ SiLU'(a) */
                double s = 0;
                for (int64_t cc = 0; cc < d; cc++) s += W2[cc * dm + i] * e[cc];
                double sg = sigm(a[i]), delta = s * (sg + a[i] * sg * (1 - sg));
                for (int64_t cc = 0; cc < d; cc++) g[i * d + cc] = delta * kmh[cc];
            }
            for (int64_t cc = 0; cc < d; cc++) /* ∇W2 = e zᵀ */
                for (int64_t i = 0; i < dm; i++) g[dm * d + cc * dm + i] = e[cc] * z[i];
            const double *xt = xn + t * D;
            (void)xt;
            gal[j * H + h] = sigm(ga[t * H + h] + ba[h]);
            get[j * H + h] = sigm(ge[t * H + h] + be[h]);
            gth[j * H + h] = c->tmax * sigm(gt[t * H + h] + bt[h]);
        }
        ref_bitlinear(y + t * D, HQ("blk.%d.tm_o.weight", il), D, Hd, o);
        if (j == Cs - 1) /* closed-form segment update, per head */
            for (int64_t h = 0; h < H; h++) {
                double Bc = 1, Ec = 1, cS = 0, B = 1, E = 1;
                for (int64_t i = 0; i < Cs; i++) Bc *= 1 - gal[i * H + h], Ec *= get[i * H + h];
                for (int64_t i = 0; i < Cs; i++) B *= 1 - gal[i * H + h], E *= get[i * H + h], cS += Bc / B * E;
                double *Mh = M + h * P, *Sh = S + h * P;
                for (int64_t i = 0; i < P; i++) Mh[i] = Bc * Mh[i] + cS * Sh[i], Sh[i] *= Ec;
                double Er = 1;
                for (int64_t r = 0; r < Cs; r++) {
                    Er *= get[r * H + h];
                    double cr = 0;
                    for (int64_t i = r; i < Cs; i++) {
                        double Bi = 1, EiEr = 1;
                        for (int64_t u = 0; u <= i; u++) Bi *= 1 - gal[u * H + h];
                        for (int64_t u = r + 1; u <= i; u++) EiEr *= get[u * H + h];
                        cr += Bc / Bi * EiEr;
                    }
                    cr *= gth[r * H + h];
                    const double *g = G + (r * H + h) * P;
                    for (int64_t i = 0; i < P; i++) Mh[i] -= cr * g[i], Sh[i] -= Ec / Er * gth[r * H + h] * g[i];
                }
            }
    }
    free(q), free(k), free(v), free(ga), free(ge), free(gt), free(M), free(S), free(G), free(gal), free(get), free(gth);
    free(rk), free(rv), free(yy), free(km), free(vm), free(o), free(lg), free(a), free(z), free(p), free(e);
}

static double sgn(double x) { return (double)((x > 0) - (x < 0)); }

/* §2.9 TSP knot: inner GDN + energy heads */
static void ref_sk(double *y, const lcfg *c, int il, const double *xn, int64_t T) {
    const int64_t D = c->D, Ds = c->Ds;
    ref_gdn(y, c, il, xn, T);
    double *s = DBL(Ds), *r = DBL(Ds), *f = DBL(Ds), *prev = DBL(Ds), en[5];
    const float *lam = HF("blk.%d.sk_energy_lambda", il);
    for (int64_t t = 0; t < T; t++) {
        double *o = y + t * D;
        ref_linear(s, HF("blk.%d.sk_sketch.weight", il), Ds, D, o);
        ref_linear(r, HF("blk.%d.sk_role.weight", il), Ds, D, o);
        ref_linear(f, HF("blk.%d.sk_filler.weight", il), Ds, D, o);
        ref_linear(en, HF("blk.%d.sk_energy.weight", il), 5, D, o);
        double coh = 0, bind = 0;
        for (int64_t i = 0; i < Ds; i++) {
            double sk = sgn(s[i]);
            if (t > 0) coh += sk != prev[i];
            prev[i] = sk;
            bind += sgn(sgn(r[i]) * sgn(f[i]) * sgn(r[i])) != sgn(f[i]);
        }
        coh /= Ds, bind /= Ds;
        double E = lam[0] * en[0] + lam[1] * en[1] * coh + lam[2] * en[2] * bind + lam[3] * en[3] + lam[4] * en[4];
        for (int64_t j = 0; j < D; j++) o[j] += 0.01 * E;
    }
    free(s), free(r), free(f), free(prev);
}

static void ref_swiglu_mlp(double *y, const uint8_t *g, const uint8_t *u, const uint8_t *dn, int64_t D, int64_t I,
                           const double *x) {
    double *a = DBL(I), *b = DBL(I);
    ref_bitlinear(a, g, I, D, x);
    ref_bitlinear(b, u, I, D, x);
    for (int64_t j = 0; j < I; j++) a[j] = silu(a[j]) * b[j];
    ref_bitlinear(y, dn, D, I, a);
    free(a), free(b);
}

/* §2.10 MoE (noaux: sigmoid scores, bias for selection only, shared expert) for one row */
static void ref_moe(double *y, const lcfg *c, int il, const double *x) {
    const int64_t D = c->D, E = c->E, Ie = c->Eff, Ish = (int64_t)c->Esh * c->Eff;
    double *s = DBL(E), *t = DBL(D);
    const float *bias = HF("blk.%d.exp_probs_b.bias", il);
    ref_linear(s, HF("blk.%d.ffn_gate_inp.weight", il), E, D, x);
    for (int64_t e = 0; e < E; e++) s[e] = sigm(s[e]);
    int chosen[64] = {0};
    for (int k = 0; k < c->Ek; k++) {
        int best = -1;
        for (int e = 0; e < E; e++)
            if (!chosen[e] && (best < 0 || s[e] + bias[e] > s[best] + bias[best])) best = e;
        chosen[best] = 1;
    }
    double sum = 0;
    for (int e = 0; e < E; e++) sum += chosen[e] ? s[e] : 0;
    for (int64_t j = 0; j < D; j++) y[j] = 0;
    if (Ish) ref_swiglu_mlp(y, HQ("blk.%d.ffn_gate_shexp.weight", il), HQ("blk.%d.ffn_up_shexp.weight", il),
                            HQ("blk.%d.ffn_down_shexp.weight", il), D, Ish, x);
    for (int e = 0; e < E; e++) {
        if (!chosen[e]) continue;
        ref_swiglu_mlp(t, HQ("blk.%d.ffn_gate_exps.weight#%d", il, e), HQ("blk.%d.ffn_up_exps.weight#%d", il, e),
                       HQ("blk.%d.ffn_down_exps.weight#%d", il, e), D, Ie, x);
        for (int64_t j = 0; j < D; j++) y[j] += s[e] / sum * t[j];
    }
    free(s), free(t);
}

/* x [T, D] ← block il (pre-norm mixer + FFN, residual) over T tokens from a zero state. */
static void ref_block(double *x, const lcfg *c, int il, int64_t T) {
    const int64_t D = c->D;
    double *xn = DBL(T * D), *y = DBL(T * D);
    for (int64_t t = 0; t < T; t++) ref_rmsnorm(xn + t * D, x + t * D, HF("blk.%d.attn_norm.weight", il), D, 1e-6f);
    const char *ty = c->types[il];
    if (!strcmp(ty, "GD")) ref_gdn(y, c, il, xn, T);
    if (!strcmp(ty, "XM")) ref_xm(y, c, il, xn, T);
    if (!strcmp(ty, "TM")) ref_tm(y, c, il, xn, T);
    if (!strcmp(ty, "SK")) ref_sk(y, c, il, xn, T);
    for (int64_t i = 0; i < T * D; i++) x[i] += y[i];
    for (int64_t t = 0; t < T; t++) {
        ref_rmsnorm(xn + t * D, x + t * D, HF("blk.%d.ffn_norm.weight", il), D, 1e-6f);
        if (is_moe(c, il))
            ref_moe(y + t * D, c, il, xn + t * D);
        else
            ref_swiglu_mlp(y + t * D, HQ("blk.%d.ffn_gate.weight", il), HQ("blk.%d.ffn_up.weight", il),
                           HQ("blk.%d.ffn_down.weight", il), D, c->I, xn + t * D);
    }
    for (int64_t i = 0; i < T * D; i++) x[i] += y[i];
    free(xn), free(y);
}

/* Parcae (§2.11) on x [T, D] with per-token loop counts `loops` (all >= 1), written from the
 * spec and the documented stale-state rule, independently of the library's code path: the
 * state of loop iteration k only ever sees the tokens that ran iteration k, so iteration k of
 * every loop layer is the layer run from a zero state over the subsequence {t : loops[t] >= k}.
 *   e = RMSNorm(x; prelude_norm), inj = softplus(dt_bias) ⊙ (B e), Ā = exp(−Δ ⊙ exp(A_log))
 *   h_0 = 0, h_k = R_k(Ā ⊙ h_{k−1} + inj), x ← C h_{loops[t]} */
static void ref_parcae(double *x, const lcfg *c, const int *loops, int64_t T) {
    const int64_t D = c->D;
    double *e = DBL(D), *inj = DBL(T * D), *h = DBL(T * D), *sub = DBL(T * D), *abar = DBL(D), *dt = DBL(D);
    int64_t *idx = calloc((size_t)T + 1, sizeof(int64_t));
    const float *al = HF("parcae.a_log"), *db = HF("parcae.dt_bias");
    for (int64_t j = 0; j < D; j++) dt[j] = log1p(exp((double)db[j])), abar[j] = exp(-dt[j] * exp((double)al[j]));
    int kmax = 0;
    for (int64_t t = 0; t < T; t++) {
        ref_rmsnorm(e, x + t * D, HF("parcae.prelude_norm.weight"), D, 1e-6f);
        ref_linear(inj + t * D, HF("parcae.b.weight"), D, D, e);
        for (int64_t j = 0; j < D; j++) inj[t * D + j] *= dt[j];
        if (loops[t] > kmax) kmax = loops[t];
    }
    for (int k = 1; k <= kmax; k++) {
        int64_t m = 0;
        for (int64_t t = 0; t < T; t++)
            if (loops[t] >= k) idx[m++] = t;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < D; j++) sub[i * D + j] = abar[j] * h[idx[i] * D + j] + inj[idx[i] * D + j];
        for (int il = c->loop0; il < c->coda0; il++) ref_block(sub, c, il, m);
        for (int64_t i = 0; i < m; i++) memcpy(h + idx[i] * D, sub + i * D, sizeof(double) * (size_t)D);
    }
    for (int64_t t = 0; t < T; t++) ref_linear(x + t * D, HF("parcae.c.weight"), D, D, h + t * D);
    free(e), free(inj), free(h), free(sub), free(abar), free(dt), free(idx);
}

/* logits [T, V] from a zero state; loops[t] = token t's loop count (looping models; NULL otherwise) */
static void ref_forward_loops(double *logits, const lcfg *c, const int32_t *tok, int64_t T, const int *loops) {
    const int64_t D = c->D, V = c->V;
    double *x = DBL(T * D), *xn = DBL(T * D), *h1 = DBL(D + 1), *g = DBL(D);
    const float *E = HF("token_embd.weight");
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < D; j++) x[t * D + j] = E[(int64_t)tok[t] * D + j];
    if (c->lmax) {
        for (int il = 0; il < c->loop0; il++) ref_block(x, c, il, T);
        ref_parcae(x, c, loops, T);
        for (int il = c->coda0; il < c->L; il++) ref_block(x, c, il, T);
    } else {
        for (int il = 0; il < c->L; il++) ref_block(x, c, il, T);
    }
    for (int64_t t = 0; t < T; t++) {
        double *h = xn + t * D;
        ref_rmsnorm(h, x + t * D, HF("output_norm.weight"), D, 1e-6f);
        if (c->span) { /* §2.13 h ⊙ σ(W_rg [h ; σ(w_risk·h)]) */
            double risk;
            ref_linear(&risk, HF("output_risk.weight"), 1, D, h);
            memcpy(h1, h, sizeof(double) * (size_t)D);
            h1[D] = sigm(risk);
            ref_linear(g, HF("output_gate.weight"), D, D + 1, h1);
            for (int64_t j = 0; j < D; j++) h[j] *= sigm(g[j]);
        }
        for (int64_t v = 0; v < V; v++) {
            double s = 0;
            for (int64_t j = 0; j < D; j++) s += E[v * D + j] * h[j];
            logits[t * V + v] = s;
        }
    }
    free(x), free(xn), free(h1), free(g);
}

static void ref_forward(double *logits, const lcfg *c, const int32_t *tok, int64_t T) {
    ref_forward_loops(logits, c, tok, T, NULL);
}

#endif /* BRAID_TEST_LAYERS_REF_H */
