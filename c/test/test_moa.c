/*
 * test_moa.c — the MoA architecture (general.architecture = "moa") on random tiny MoA
 * GGUF files written by this test (gguf_writer.h), ARCHITECTURES.md §2-MoA and §4.2:
 *  (a) a naive double-precision reference forward written here from ARCHITECTURES.md
 *      M.0–M.10 (explicit distances incl. ‖q‖², explicit −∞ masks, every path computed
 *      densely) vs the library, for metric l2, cosine and maha_diag, ball pruning on, on
 *      every ISA this CPU has
 *  (b) cached decode == full recompute over 256 steps (MoA-tiny, 6 layers, vocab 300) for
 *      each metric with ball pruning on: token-by-token decode, one 256-token prefill,
 *      chunked prefill and fresh recomputes of prefixes give bit-identical logits
 *  (c) state save/load/copy/rewind round trips; blobs of another model rejected
 *  (d) capacity: an eval past moa.max_position_embeddings returns BRAID_ERR_CAPACITY and
 *      changes nothing (rewind on a Chimera context, BRAID_ERR_UNSUPPORTED, is in test_model.c)
 *  plus abort (the cache stays usable), load validation (bad metric, heads, a missing tensor,
 *  a non-positive α) and a minimal model (no balls, gates, V energy; R = 0) vs the reference
 * BRAID_ISA selects the ISA of (b)–(d) (test/c/moa.test.ts runs it once per available ISA).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../include/braid.h"
#include "../src/kernels.h"
#include "gguf_writer.h"
#include "harness.h"
#include "ref_common.h"

/* ref_common.h's Chimera pieces (RMSNorm, BitLinear) are not used by MoA */
static const void *const unused_refs_[] __attribute__((unused)) = {(const void *)ref_rmsnorm,
                                                                    (const void *)ref_bitlinear, (const void *)rand_vec};

typedef struct {
    const char *metric; /* "l2" | "cosine" | "maha_diag" */
    int L, V, D, H, Hq, M, F, Rh, K, Cm, r, R, maxpos;
    int balls, venergy, disc, fgates, rgates, btopk, f16;
    float rtemp, btemp;
} tcfg;

/* ---- host copies of every tensor, by name ------------------------------------------ */

typedef struct {
    char name[96];
    float *data; /* as the library sees it (F16-rounded for F16 tensors) */
} htensor;

static htensor g_t[1024];
static int g_nt;

static const float *W(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const float *W(const char *fmt, ...) {
    char name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (int i = 0; i < g_nt; i++)
        if (strcmp(g_t[i].name, name) == 0) return g_t[i].data;
    printf("FAIL reference: no tensor %s\n", name);
    exit(3);
}

enum { NORMAL, UNIFORM, TIED_UNIFORM };

/* A tensor with GGUF dims (n0 fastest); matrices (n1 > 0, n2 == 0) in F16 when f16. */
static const char *g_skip, *g_negate; /* load validation: a tensor to leave out / to write negated */

static void put(gw *w, int f16, const char *name, int64_t n0, int64_t n1, int64_t n2, int kind, float a, float b) {
    const int64_t n = n0 * (n1 ? n1 : 1) * (n2 ? n2 : 1);
    float *d = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) d[i] = kind == NORMAL ? a + b * rng_normal() : rng_uniform(a, b);
    if (g_negate && strcmp(name, g_negate) == 0)
        for (int64_t i = 0; i < n; i++) d[i] = -d[i];
    if (g_skip && strcmp(name, g_skip) == 0) {
        free(d);
        return;
    }
    if (kind == TIED_UNIFORM)
        for (int64_t i = 0; i + 1 < n; i += 2) d[i + 1] = d[i];
    int64_t ne[3] = {n0, n1, n2};
    uint32_t nd = n2 ? 3 : n1 ? 2 : 1;
    if (f16 && nd == 2) {
        uint16_t *h = malloc(2 * (size_t)n);
        for (int64_t i = 0; i < n; i++) h[i] = float_to_half(d[i]), d[i] = half_to_float(h[i]);
        gw_tensor(w, name, GGML_TYPE_F16, nd, ne, h, 2 * (size_t)n);
        free(h);
    } else {
        gw_tensor(w, name, GGML_TYPE_F32, nd, ne, d, sizeof(float) * (size_t)n);
    }
    snprintf(g_t[g_nt].name, sizeof g_t[g_nt].name, "%s", name);
    g_t[g_nt++].data = d;
}

static void free_host(void) {
    for (int i = 0; i < g_nt; i++) free(g_t[i].data);
    g_nt = 0;
}

static int is_cos(const tcfg *c) { return strcmp(c->metric, "cosine") == 0; }
static int is_maha(const tcfg *c) { return strcmp(c->metric, "maha_diag") == 0; }

static void put_attn(gw *w, const tcfg *c, int il, const char *pre, int H, int G) {
    char nm[128];
    const int D = c->D, dh = D / H, f = c->f16;
    const float s = 1.0f / sqrtf((float)D);
#define NM(x) (snprintf(nm, sizeof nm, "blk.%d.%s_%s", il, pre, x), nm)
    put(w, f, NM("q.weight"), D, H * dh, 0, NORMAL, 0, s);
    put(w, f, NM("k.weight"), D, G * dh, 0, NORMAL, 0, s);
    put(w, f, NM("v.weight"), D, G * dh, 0, NORMAL, 0, s);
    put(w, f, NM("o.weight"), H * dh, D, 0, NORMAL, 0, 1.0f / sqrtf((float)(H * dh)));
    if (is_cos(c))
        put(w, 0, NM("alpha"), H, 0, 0, UNIFORM, 1.0f, 5.0f);
    else
        put(w, 0, NM("alpha"), H, 0, 0, UNIFORM, 0.02f, 0.08f);
    if (is_maha(c)) put(w, 0, NM("maha"), dh, H, 0, TIED_UNIFORM, 0.5f, 1.5f);
    if (c->balls) {
        put(w, 0, NM("ball_origin"), dh, H, 0, NORMAL, 0, 0.5f);
        put(w, 0, NM("ball_radius"), H, 0, 0, UNIFORM, 5.6f, 6.6f);
    }
    if (c->R) {
        put(w, 0, NM("rope_a"), c->R, dh / 2, G, NORMAL, 0, 0.3f);
        put(w, 0, NM("rope_b"), c->R, dh / 2, G, NORMAL, 0, 0.3f);
        if (c->venergy) {
            put(w, 0, NM("energy_c"), c->R, G, 0, NORMAL, 0, 0.4f);
            put(w, 0, NM("energy_g"), c->R, G, 0, NORMAL, 0, 0.4f);
        }
    }
    if (c->disc) put(w, 0, NM("disc"), G, 0, 0, NORMAL, 0, 0.7f);
#undef NM
}

static void write_model(const tcfg *c, const char *path) {
    free_host();
    gw w;
    gw_init(&w);
    gw_kv_str(&w, "general.architecture", "moa");
    gw_kv_str(&w, "general.name", "moa-test");
    gw_kv_u32(&w, "moa.vocab_size", (uint32_t)c->V);
    gw_kv_u32(&w, "moa.dim", (uint32_t)c->D);
    gw_kv_u32(&w, "moa.num_layers", (uint32_t)c->L);
    gw_kv_u32(&w, "moa.max_position_embeddings", (uint32_t)c->maxpos);
    gw_kv_u32(&w, "moa.attn_heads", (uint32_t)c->H);
    gw_kv_u32(&w, "moa.mqa_q_heads", (uint32_t)c->Hq);
    gw_kv_u32(&w, "moa.mixer_hidden", (uint32_t)c->M);
    gw_kv_u32(&w, "moa.ffn_hidden", (uint32_t)c->F);
    gw_kv_u32(&w, "moa.router_hidden", (uint32_t)c->Rh);
    gw_kv_u32(&w, "moa.router_topk", 2);
    gw_kv_f32(&w, "moa.router_temperature", c->rtemp);
    gw_kv_u32(&w, "moa.conv_kernel", (uint32_t)c->K);
    gw_kv_u32(&w, "moa.conv_mult", (uint32_t)c->Cm);
    gw_kv_u32(&w, "moa.lr_rank", (uint32_t)c->r);
    gw_kv_u32(&w, "moa.n_branches", 3);
    gw_kv_u32(&w, "moa.branch_topk", (uint32_t)c->btopk);
    gw_kv_f32(&w, "moa.branch_temperature", c->btemp);
    gw_kv_u32(&w, "moa.r_basis", (uint32_t)c->R);
    gw_kv_f32(&w, "moa.theta_base", 10000.0f);
    gw_kv_f32(&w, "moa.energy_amplification", 3.14159265f);
    gw_kv_str(&w, "moa.metric", c->metric);
    gw_kv_u32(&w, "moa.use_balls", (uint32_t)c->balls);
    gw_kv_u32(&w, "moa.enable_feature_gates", (uint32_t)c->fgates);
    gw_kv_u32(&w, "moa.enable_router_gates", (uint32_t)c->rgates);
    gw_kv_u32(&w, "moa.enable_v_energy", (uint32_t)c->venergy);
    gw_kv_u32(&w, "moa.discrepancy_modulation", (uint32_t)c->disc);
    gw_kv_f32(&w, "moa.layer_norm_eps", 1e-5f);
    gw_kv_f32(&w, "moa.alpha_init", 1.0f);
    const int D = c->D, f = c->f16, C = c->Cm * D;
    const float s = 1.0f / sqrtf((float)D);
    put(&w, f, "token_embd.weight", D, c->V, 0, NORMAL, 0, 1.0f);
    put(&w, 0, "output_norm.weight", D, 0, 0, NORMAL, 1, 0.1f);
    put(&w, 0, "output_norm.bias", D, 0, 0, NORMAL, 0, 0.1f);
    char nm[128];
    for (int il = 0; il < c->L; il++) {
#define B(x) (snprintf(nm, sizeof nm, "blk.%d.%s", il, x), nm)
        put(&w, 0, B("attn_norm.weight"), D, 0, 0, NORMAL, 1, 0.1f);
        put(&w, 0, B("attn_norm.bias"), D, 0, 0, NORMAL, 0, 0.1f);
        put(&w, 0, B("ffn_norm.weight"), D, 0, 0, NORMAL, 1, 0.1f);
        put(&w, 0, B("ffn_norm.bias"), D, 0, 0, NORMAL, 0, 0.1f);
        put(&w, f, B("moa_router_in.weight"), D, c->Rh, 0, NORMAL, 0, s);
        put(&w, 0, B("moa_router_in.bias"), c->Rh, 0, 0, NORMAL, 0, 0.1f);
        put(&w, f, B("moa_router_out.weight"), c->Rh, 4, 0, NORMAL, 0, 1.0f);
        put(&w, 0, B("moa_router_out.bias"), 4, 0, 0, NORMAL, 0, 0.3f);
        if (c->fgates) {
            put(&w, f, B("moa_film_gamma.weight"), c->Rh, 4 * D, 0, NORMAL, 0, 0.1f);
            put(&w, f, B("moa_film_beta.weight"), c->Rh, 4 * D, 0, NORMAL, 0, 0.1f);
        }
        if (c->rgates) {
            put(&w, f, B("moa_gate.weight"), D, 4, 0, NORMAL, 0, 0.1f);
            put(&w, 0, B("moa_gate.bias"), 4, 0, 0, NORMAL, 0, 0.3f);
        }
        put(&w, 0, B("moa_conv_dw.weight"), c->K, D, 0, NORMAL, 0, 0.5f);
        put(&w, 0, B("moa_conv_dw.bias"), D, 0, 0, NORMAL, 0, 0.1f);
        put(&w, f, B("moa_conv_pw.weight"), D, D, 0, NORMAL, 0, s);
        put_attn(&w, c, il, "moa_mha", c->H, c->H);
        put_attn(&w, c, il, "moa_mqa", c->Hq, 1);
        put(&w, f, B("moa_mix_up.weight"), D, c->M, 0, NORMAL, 0, s);
        put(&w, 0, B("moa_mix_up.bias"), c->M, 0, 0, NORMAL, 0, 0.1f);
        put(&w, f, B("moa_mix_down.weight"), c->M, D, 0, NORMAL, 0, 1.0f / sqrtf((float)c->M));
        put(&w, 0, B("moa_mix_down.bias"), D, 0, 0, NORMAL, 0, 0.1f);
        put(&w, 0, B("moa_ls_mix"), D, 0, 0, UNIFORM, 0.2f, 0.6f);
        put(&w, 0, B("moa_ls_ffn"), D, 0, 0, UNIFORM, 0.2f, 0.6f);
        put(&w, f, B("ffn_router.weight"), D, 3, 0, NORMAL, 0, s * 2);
        put(&w, f, B("ffn_gate.weight"), D, c->F, 0, NORMAL, 0, s);
        put(&w, f, B("ffn_up.weight"), D, c->F, 0, NORMAL, 0, s);
        put(&w, f, B("ffn_down.weight"), c->F, D, 0, NORMAL, 0, 1.0f / sqrtf((float)c->F));
        put(&w, f, B("ffn_conv_in.weight"), D, C, 0, NORMAL, 0, s);
        put(&w, 0, B("ffn_conv_dw.weight"), c->K, C, 0, NORMAL, 0, 0.5f);
        put(&w, 0, B("ffn_conv_dw.bias"), C, 0, 0, NORMAL, 0, 0.1f);
        put(&w, f, B("ffn_conv_out.weight"), C, D, 0, NORMAL, 0, 1.0f / sqrtf((float)C));
        put(&w, f, B("ffn_lr_down.weight"), D, c->r, 0, NORMAL, 0, s);
        put(&w, f, B("ffn_lr_up.weight"), c->r, D, 0, NORMAL, 0, 1.0f / sqrtf((float)c->r));
#undef B
    }
    size_t size;
    uint8_t *buf = gw_finish(&w, &size, NULL);
    if (gw_write_file(path, buf, size)) printf("FAIL cannot write %s\n", path);
    free(buf);
    gw_free(&w);
}

/* ---- the double reference (ARCHITECTURES.md M.0–M.10), whole sequence at once ---------- */

static double gelu(double z) { return 0.5 * z * (1.0 + erf(z / sqrt(2.0))); }

static void ln(double *y, const double *x, const float *w, const float *b, int D) {
    double mu = 0, var = 0;
    for (int i = 0; i < D; i++) mu += x[i];
    mu /= D;
    for (int i = 0; i < D; i++) var += (x[i] - mu) * (x[i] - mu);
    var /= D;
    for (int i = 0; i < D; i++) y[i] = (x[i] - mu) / sqrt(var + 1e-5) * w[i] + b[i];
}

/* y[rows] = W [rows, cols] x (+ b) */
static void mv(double *y, const float *Wm, const float *b, const double *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        double a = b ? b[r] : 0;
        for (int j = 0; j < cols; j++) a += (double)Wm[(int64_t)r * cols + j] * x[j];
        y[r] = a;
    }
}

static void softmax_topk(double *w, const double *l, int k, int topk, double temp) {
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < k; i++) mx = fmax(mx, l[i] / temp);
    for (int i = 0; i < k; i++) sum += (w[i] = exp(l[i] / temp - mx));
    int keep[4] = {0};
    for (int s = 0; s < topk; s++) {
        int best = -1;
        for (int i = 0; i < k; i++)
            if (!keep[i] && (best < 0 || w[i] > w[best])) best = i;
        keep[best] = 1;
    }
    double kept = 0;
    for (int i = 0; i < k; i++) kept += keep[i] ? w[i] : 0;
    for (int i = 0; i < k; i++) w[i] = keep[i] ? w[i] / kept : 0;
}

static long g_keys, g_pruned; /* ball statistics of the reference */

/* Metric attention (M.2–M.6) for T tokens: out [T, D] = W_o concat_h softmax_j(−α d(q_i, k_j)) v_j. */
static void ref_attn(double *out, const tcfg *c, int il, const char *pre, int H, int G, const double *u, int T) {
    const int D = c->D, dh = D / H, R = c->R;
    const float *wq = W("blk.%d.%s_q.weight", il, pre), *wk = W("blk.%d.%s_k.weight", il, pre),
                *wv = W("blk.%d.%s_v.weight", il, pre), *wo = W("blk.%d.%s_o.weight", il, pre),
                *alpha = W("blk.%d.%s_alpha", il, pre);
    const float *om = is_maha(c) ? W("blk.%d.%s_maha", il, pre) : NULL;
    const float *org = c->balls ? W("blk.%d.%s_ball_origin", il, pre) : NULL,
                *rad = c->balls ? W("blk.%d.%s_ball_radius", il, pre) : NULL;
    const float *ra = R ? W("blk.%d.%s_rope_a", il, pre) : NULL, *rb = R ? W("blk.%d.%s_rope_b", il, pre) : NULL;
    const float *ec = c->venergy && R ? W("blk.%d.%s_energy_c", il, pre) : NULL,
                *eg = c->venergy && R ? W("blk.%d.%s_energy_g", il, pre) : NULL;
    const float *dc = c->disc ? W("blk.%d.%s_disc", il, pre) : NULL;
    double *q = calloc((size_t)T * H * dh, 8), *k = calloc((size_t)T * G * dh, 8), *v = calloc((size_t)T * G * dh, 8);
    int *in = calloc((size_t)T * H, sizeof(int));
    for (int t = 0; t < T; t++) {
        mv(q + t * H * dh, wq, NULL, u + t * D, H * dh, D);
        mv(k + t * G * dh, wk, NULL, u + t * D, G * dh, D);
        mv(v + t * G * dh, wv, NULL, u + t * D, G * dh, D);
        /* M.6: ball membership on the pre-RoPE key */
        for (int h = 0; h < H; h++) {
            double d2 = 0;
            const double *kh = k + t * G * dh + (h * G / H) * dh;
            for (int e = 0; e < dh; e++) d2 += (kh[e] - (org ? org[h * dh + e] : 0)) * (kh[e] - (org ? org[h * dh + e] : 0));
            in[t * H + h] = !c->balls || sqrt(d2) <= rad[h];
            g_keys++;
            g_pruned += !in[t * H + h];
        }
        /* M.5 BlackHoleRoPE: φ = p θ_i + Σ_r (A sin ν_r p + B cos ν_r p), θ_i = base^(−2i/d_h), ν_r = base^(−r/R) */
        const double p = t;
        for (int hq = 0; hq < H + G; hq++) {
            const int isq = hq < H, g = isq ? hq * G / H : hq - H;
            double *z = isq ? q + t * H * dh + hq * dh : k + t * G * dh + g * dh;
            for (int i = 0; i < dh / 2; i++) {
                double phi = p * pow(10000.0, -2.0 * i / dh);
                for (int r = 0; r < R; r++) {
                    const double nu = pow(10000.0, -(double)(r + 1) / R);
                    phi += ra[(g * (dh / 2) + i) * R + r] * sin(nu * p) + rb[(g * (dh / 2) + i) * R + r] * cos(nu * p);
                }
                const double z0 = z[2 * i], z1 = z[2 * i + 1];
                z[2 * i] = z0 * cos(phi) - z1 * sin(phi);
                z[2 * i + 1] = z0 * sin(phi) + z1 * cos(phi);
            }
        }
        /* V energy: v ← v · exp(ln A · tanh(Σ_r C sin + G cos + m_t)) */
        if (c->venergy) {
            double m = 0;
            if (c->disc && t > 0) {
                double dd = 0, nn = 0;
                for (int e = 0; e < D; e++) dd += (u[t * D + e] - u[(t - 1) * D + e]) * (u[t * D + e] - u[(t - 1) * D + e]), nn += u[t * D + e] * u[t * D + e];
                m = sqrt(dd) / (sqrt(nn) + 1e-6);
            }
            for (int g = 0; g < G; g++) {
                double e = c->disc ? dc[g] * m : 0;
                for (int r = 0; r < R; r++) {
                    const double nu = pow(10000.0, -(double)(r + 1) / R);
                    e += ec[g * R + r] * sin(nu * p) + eg[g * R + r] * cos(nu * p);
                }
                const double gain = exp(log(3.14159265f) * tanh(e));
                for (int e2 = 0; e2 < dh; e2++) v[t * G * dh + g * dh + e2] *= gain;
            }
        }
    }
    double *o = calloc((size_t)T * H * dh, 8), *s = malloc(sizeof(double) * (size_t)T);
    for (int i = 0; i < T; i++)
        for (int h = 0; h < H; h++) {
            const int g = h * G / H;
            const double *qi = q + i * H * dh + h * dh;
            double mx = -INFINITY;
            for (int j = 0; j < T; j++) {
                const double *kj = k + j * G * dh + g * dh;
                double d;
                if (is_cos(c)) {
                    double qq = 0, kk = 0, qk = 0;
                    for (int e = 0; e < dh; e++) qq += qi[e] * qi[e], kk += kj[e] * kj[e], qk += qi[e] * kj[e];
                    d = 1.0 - qk / (sqrt(qq) * sqrt(kk));
                } else {
                    d = 0;
                    for (int e = 0; e < dh; e++) d += (om ? om[h * dh + e] : 1.0) * (qi[e] - kj[e]) * (qi[e] - kj[e]);
                }
                s[j] = -alpha[h] * d;
                if (j > i || (j < i && !in[j * H + h])) s[j] = -INFINITY; /* causal + ball (diagonal kept) */
                mx = fmax(mx, s[j]);
            }
            double sum = 0;
            for (int j = 0; j < T; j++) sum += (s[j] = exp(s[j] - mx));
            for (int j = 0; j < T; j++)
                for (int e = 0; e < dh; e++) o[i * H * dh + h * dh + e] += s[j] / sum * v[j * G * dh + g * dh + e];
        }
    for (int t = 0; t < T; t++) mv(out + t * D, wo, NULL, o + t * H * dh, D, H * dh);
    free(q), free(k), free(v), free(in), free(o), free(s);
}

/* Causal depthwise conv + bias + GELU: y[t, ch] from x [T, ch], w [ch, K]. */
static void ref_dwconv(double *y, const double *x, const float *w, const float *b, int T, int ch, int K) {
    for (int t = 0; t < T; t++)
        for (int e = 0; e < ch; e++) {
            double a = b[e];
            for (int j = 0; j < K; j++) {
                int q = t - K + 1 + j;
                if (q >= 0) a += w[e * K + j] * x[q * ch + e];
            }
            y[t * ch + e] = gelu(a);
        }
}

static void ref_forward(const tcfg *c, const int32_t *tok, int T, double *logits) {
    const int D = c->D, Rh = c->Rh, C = c->Cm * D;
    double *x = calloc((size_t)T * D, 8), *u = calloc((size_t)T * D, 8), *y[4], *z = calloc((size_t)T * D, 8);
    for (int p = 0; p < 4; p++) y[p] = calloc((size_t)T * D, 8);
    double *hr = calloc((size_t)T * Rh, 8), *wr = calloc((size_t)T * 4, 8), *bg = calloc((size_t)T * 4, 8);
    double *hid = calloc((size_t)T * (C > c->M ? (C > c->F ? C : c->F) : (c->M > c->F ? c->M : c->F)), 8);
    double *hid2 = calloc((size_t)T * (C > c->F ? C : c->F), 8), *br = calloc((size_t)T * D, 8), *tmp = calloc((size_t)D, 8);
    const float *E = W("token_embd.weight");
    for (int t = 0; t < T; t++)
        for (int e = 0; e < D; e++) x[t * D + e] = E[(int64_t)tok[t] * D + e];
    for (int il = 0; il < c->L; il++) {
#define LW(nm) W("blk.%d." nm, il)
        for (int t = 0; t < T; t++) ln(u + t * D, x + t * D, LW("attn_norm.weight"), LW("attn_norm.bias"), D);
        for (int t = 0; t < T; t++) {
            mv(hr + t * Rh, LW("moa_router_in.weight"), LW("moa_router_in.bias"), u + t * D, Rh, D);
            for (int e = 0; e < Rh; e++) hr[t * Rh + e] = gelu(hr[t * Rh + e]);
            double l[4];
            mv(l, LW("moa_router_out.weight"), LW("moa_router_out.bias"), hr + t * Rh, 4, Rh);
            softmax_topk(wr + t * 4, l, 4, 2, c->rtemp);
            if (c->rgates) {
                mv(l, LW("moa_gate.weight"), LW("moa_gate.bias"), u + t * D, 4, D);
                for (int p = 0; p < 4; p++) bg[t * 4 + p] = 2.0 / (1.0 + exp(-l[p]));
            } else {
                for (int p = 0; p < 4; p++) bg[t * 4 + p] = 1.0;
            }
        }
        /* the four paths, densely */
        ref_dwconv(hid, u, LW("moa_conv_dw.weight"), LW("moa_conv_dw.bias"), T, D, c->K);
        for (int t = 0; t < T; t++) mv(y[0] + t * D, LW("moa_conv_pw.weight"), NULL, hid + t * D, D, D);
        ref_attn(y[1], c, il, "moa_mha", c->H, c->H, u, T);
        for (int t = 0; t < T; t++) {
            mv(hid, LW("moa_mix_up.weight"), LW("moa_mix_up.bias"), u + t * D, c->M, D);
            for (int e = 0; e < c->M; e++) hid[e] = gelu(hid[e]);
            mv(y[2] + t * D, LW("moa_mix_down.weight"), LW("moa_mix_down.bias"), hid, D, c->M);
        }
        ref_attn(y[3], c, il, "moa_mqa", c->Hq, 1, u, T);
        for (int t = 0; t < T; t++) {
            for (int e = 0; e < D; e++) z[t * D + e] = 0;
            for (int p = 0; p < 4; p++) {
                if (c->fgates) { /* FiLM */
                    double *ga = calloc((size_t)D, 8), *be = calloc((size_t)D, 8);
                    mv(ga, LW("moa_film_gamma.weight") + (int64_t)p * D * Rh, NULL, hr + t * Rh, D, Rh);
                    mv(be, LW("moa_film_beta.weight") + (int64_t)p * D * Rh, NULL, hr + t * Rh, D, Rh);
                    for (int e = 0; e < D; e++) y[p][t * D + e] = y[p][t * D + e] * (1 + ga[e]) + be[e];
                    free(ga), free(be);
                }
                for (int e = 0; e < D; e++) z[t * D + e] += wr[t * 4 + p] * bg[t * 4 + p] * y[p][t * D + e];
            }
            for (int e = 0; e < D; e++) x[t * D + e] += LW("moa_ls_mix")[e] * z[t * D + e];
        }
        /* HyperFFN */
        for (int t = 0; t < T; t++) ln(u + t * D, x + t * D, LW("ffn_norm.weight"), LW("ffn_norm.bias"), D);
        double *a = calloc((size_t)T * C, 8), *ac = calloc((size_t)T * C, 8);
        for (int t = 0; t < T; t++) mv(a + t * C, LW("ffn_conv_in.weight"), NULL, u + t * D, C, D);
        ref_dwconv(ac, a, LW("ffn_conv_dw.weight"), LW("ffn_conv_dw.bias"), T, C, c->K);
        for (int t = 0; t < T; t++) {
            double l[3], pi[3];
            mv(l, LW("ffn_router.weight"), NULL, u + t * D, 3, D);
            softmax_topk(pi, l, 3, c->btopk, c->btemp);
            for (int e = 0; e < D; e++) z[t * D + e] = 0;
            /* SwiGLU */
            mv(hid, LW("ffn_gate.weight"), NULL, u + t * D, c->F, D);
            mv(hid2, LW("ffn_up.weight"), NULL, u + t * D, c->F, D);
            for (int e = 0; e < c->F; e++) hid[e] = silu(hid[e]) * hid2[e];
            mv(br, LW("ffn_down.weight"), NULL, hid, D, c->F);
            for (int e = 0; e < D; e++) z[t * D + e] += pi[0] * br[e];
            /* SepConv */
            mv(br, LW("ffn_conv_out.weight"), NULL, ac + t * C, D, C);
            for (int e = 0; e < D; e++) z[t * D + e] += pi[1] * br[e];
            /* LowRank */
            mv(hid, LW("ffn_lr_down.weight"), NULL, u + t * D, c->r, D);
            for (int e = 0; e < c->r; e++) hid[e] = gelu(hid[e]);
            mv(br, LW("ffn_lr_up.weight"), NULL, hid, D, c->r);
            for (int e = 0; e < D; e++) z[t * D + e] += pi[2] * br[e];
            for (int e = 0; e < D; e++) x[t * D + e] += LW("moa_ls_ffn")[e] * z[t * D + e];
        }
        free(a), free(ac);
#undef LW
    }
    for (int t = 0; t < T; t++) {
        ln(tmp, x + t * D, W("output_norm.weight"), W("output_norm.bias"), D);
        mv(logits + (int64_t)t * c->V, E, NULL, tmp, c->V, D);
    }
    free(x), free(u), free(z), free(hr), free(wr), free(bg), free(hid), free(hid2), free(br), free(tmp);
    for (int p = 0; p < 4; p++) free(y[p]);
}

/* ---- (a) reference ---------------------------------------------------------------------- */

static tcfg tiny(const char *metric) {
    /* ARCHITECTURES.md §4.2 MoA-tiny with vocab 300 */
    return (tcfg){.metric = metric, .L = 6, .V = 300, .D = 128, .H = 4, .Hq = 4, .M = 256, .F = 256, .Rh = 32,
                  .K = 5, .Cm = 2, .r = 16, .R = 8, .maxpos = 256, .balls = 1, .venergy = 1, .disc = 0,
                  .fgates = 1, .rgates = 1, .btopk = 3, .f16 = 0, .rtemp = 1.0f, .btemp = 1.0f};
}

/* The metric variants also vary the optional parts so each is covered against the reference. */
static tcfg variant(const char *metric) {
    tcfg c = tiny(metric);
    if (is_cos(&c)) c.disc = 1, c.btopk = 2, c.rtemp = 1.5f;
    if (is_maha(&c)) c.disc = 1, c.btopk = 1, c.f16 = 1, c.btemp = 0.7f;
    return c;
}

static void test_reference(const char *metric) {
    tcfg c = variant(metric);
    c.L = 2;
    const int T = 40;
    const char *path = tmp_path("ref.gguf");
    write_model(&c, path);
    braid_model *m = load_ok(path);
    if (!m) return;
    int32_t tok[64];
    for (int t = 0; t < T; t++) tok[t] = (int32_t)(rng_u64() % (uint64_t)c.V);
    double *ref = malloc(sizeof(double) * (size_t)T * c.V);
    g_keys = g_pruned = 0;
    ref_forward(&c, tok, T, ref);
    float *got = malloc(sizeof(float) * (size_t)T * c.V);
    for (int32_t isa = BRAID_ISA_REF; isa <= BRAID_ISA_AVX512; isa++) {
        if (braid_isa_set(isa) != BRAID_OK) continue;
        braid_context *ctx = NULL;
        CHECK(braid_context_new(m, T, &ctx) == BRAID_OK, "context_new");
        /* half prefill, then the rest one call: both cache paths against the reference */
        CHECK(braid_context_eval(ctx, tok, 13, 1, got) == BRAID_OK, "eval: %s", braid_last_error());
        CHECK(braid_context_eval(ctx, tok + 13, T - 13, 1, got + 13 * c.V) == BRAID_OK, "eval: %s", braid_last_error());
        double worst = 0;
        for (int64_t i = 0; i < (int64_t)T * c.V; i++) {
            double d = fabs(got[i] - ref[i]) / fmax(1.0, fabs(ref[i]));
            if (!(d <= worst)) worst = d;
        }
        printf("reference %s (2 layers, %s, isa %d): max rel err %.3g, %ld of %ld keys out of ball\n", metric,
               c.f16 ? "F16 matrices" : "F32", isa, worst, g_pruned, g_keys);
        CHECK(worst < 2e-3, "%s: library vs double reference max rel err %g", metric, worst);
        braid_context_free(ctx);
    }
    CHECK(g_pruned > g_keys / 10 && g_pruned < g_keys * 9 / 10, "ball pruning should drop a real share of keys: %ld of %ld",
          g_pruned, g_keys);
    free(ref), free(got);
    braid_model_free(m);
    unlink(path);
}

/* ---- (b)–(d) cache, state, capacity ------------------------------------------------------ */

static int same(const float *a, const float *b, int64_t n) { return memcmp(a, b, sizeof(float) * (size_t)n) == 0; }

static void test_cache(const char *metric) {
    tcfg c = variant(metric);
    const int T = c.maxpos, V = c.V; /* 256 steps fill the whole context */
    char name[64];
    snprintf(name, sizeof name, "cache_%s.gguf", metric);
    const char *path = tmp_path(name);
    write_model(&c, path);
    braid_model *m = load_ok(path);
    if (!m) return;
    CHECK(strstr(braid_model_describe(m), "\"architecture\":\"moa\"") != NULL, "describe: %s", braid_model_describe(m));
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)T);
    for (int t = 0; t < T; t++) tok[t] = (int32_t)(rng_u64() % (uint64_t)V);
    float *dec = malloc(sizeof(float) * (size_t)T * V), *pre = malloc(sizeof(float) * (size_t)T * V),
          *chk = malloc(sizeof(float) * (size_t)T * V), *one = malloc(sizeof(float) * (size_t)V);
    braid_context *a = NULL, *b = NULL;
    CHECK(braid_context_new(m, T, &a) == BRAID_OK && braid_context_new(m, T, &b) == BRAID_OK, "context_new");

    /* (b) decode with the cache, token by token */
    for (int t = 0; t < T; t++) CHECK(braid_context_eval(a, tok + t, 1, 0, dec + (int64_t)t * V) == BRAID_OK, "decode %d", t);
    CHECK(braid_context_n_past(a) == T, "n_past %lld", (long long)braid_context_n_past(a));
    /* one prefill of the whole context (all logits = recomputing at every step) */
    CHECK(braid_context_eval(b, tok, T, 1, pre) == BRAID_OK, "prefill: %s", braid_last_error());
    int ok = same(dec, pre, (int64_t)T * V);
    /* chunked prefill (chunks of 7) */
    braid_context_reset(b);
    for (int t = 0; t < T; t += 7) {
        int n = T - t < 7 ? T - t : 7;
        CHECK(braid_context_eval(b, tok + t, n, 1, chk + (int64_t)t * V) == BRAID_OK, "chunk at %d", t);
    }
    int ok_chunks = same(dec, chk, (int64_t)T * V);
    /* fresh full recomputes of some prefixes (last logits only) */
    int ok_fresh = 1;
    const int lens[] = {1, 2, 5, 31, 100, 177, 256};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        braid_context_reset(b);
        CHECK(braid_context_eval(b, tok, lens[i], 0, one) == BRAID_OK, "recompute %d", lens[i]);
        ok_fresh &= same(one, dec + (int64_t)(lens[i] - 1) * V, V);
    }
    double diff = max_rel_err(dec, pre, (int64_t)T * V);
    printf("%s: cached decode vs full recompute over %d steps: %s (max rel diff %.3g), chunked %s, fresh prefixes %s\n",
           metric, T, ok ? "bit-identical" : "DIFFER", diff, ok_chunks ? "bit-identical" : "DIFFER",
           ok_fresh ? "bit-identical" : "DIFFER");
    CHECK(ok && ok_chunks && ok_fresh, "%s: cached decode differs from recompute", metric);

    /* (d) capacity: the context is full */
    CHECK(braid_context_eval(a, tok, 1, 0, one) == BRAID_ERR_CAPACITY, "eval past max_position_embeddings");
    CHECK(strstr(braid_context_last_error(a), "max_position_embeddings") != NULL, "capacity message: %s",
          braid_context_last_error(a));
    CHECK(braid_context_n_past(a) == T, "capacity error changed n_past");

    /* (c) rewind: drop 56 tokens, re-evaluate other ones, then the originals again */
    CHECK(braid_context_rewind(a, 56) == BRAID_OK && braid_context_n_past(a) == T - 56, "rewind");
    CHECK(braid_context_rewind(a, T) == BRAID_ERR_INVALID_ARG, "rewind past the start");
    int32_t other[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK(braid_context_eval(a, other, 8, 0, one) == BRAID_OK, "eval after rewind");
    CHECK(braid_context_rewind(a, 8) == BRAID_OK, "rewind the other tokens");
    CHECK(braid_context_eval(a, tok + T - 56, 56, 1, chk) == BRAID_OK, "re-eval");
    CHECK(same(chk, dec + (int64_t)(T - 56) * V, 56 * (int64_t)V), "%s: rewind + re-eval differs from the first pass",
          metric);

    /* (c) save at 100 tokens, continue, restore, continue: identical */
    braid_context_reset(a);
    CHECK(braid_context_eval(a, tok, 100, 0, one) == BRAID_OK, "eval 100");
    int64_t sz = braid_context_state_size(a);
    uint8_t *blob = malloc((size_t)sz);
    CHECK(braid_context_state_save(a, blob, sz) == BRAID_OK, "save: %s", braid_context_last_error(a));
    CHECK(braid_context_eval(a, tok + 100, 20, 1, chk) == BRAID_OK, "continue");
    CHECK(same(chk, dec + 100 * (int64_t)V, 20 * (int64_t)V), "continue after save differs");
    CHECK(braid_context_state_load(b, blob, sz) == BRAID_OK, "load: %s", braid_context_last_error(b));
    CHECK(braid_context_n_past(b) == 100, "loaded n_past");
    CHECK(braid_context_eval(b, tok + 100, 20, 1, chk) == BRAID_OK, "continue after load");
    CHECK(same(chk, dec + 100 * (int64_t)V, 20 * (int64_t)V), "%s: continue after load differs", metric);
    /* copy a (at 120) into b, both continue the same */
    CHECK(braid_context_copy(b, a) == BRAID_OK && braid_context_n_past(b) == 120, "copy");
    CHECK(braid_context_eval(b, tok + 120, 1, 0, one) == BRAID_OK, "continue after copy");
    CHECK(same(one, dec + 120 * (int64_t)V, V), "%s: continue after copy differs", metric);
    /* a corrupt blob changes nothing */
    blob[40] ^= 1;
    CHECK(braid_context_state_load(b, blob, sz) == BRAID_ERR_STATE, "corrupt blob accepted");
    CHECK(braid_context_n_past(b) == 121, "failed load changed the context");
    CHECK(braid_context_state_load(b, blob, sz - 4) == BRAID_ERR_STATE, "short blob accepted");
    free(blob);
    /* an empty state round trip */
    braid_context_reset(a);
    sz = braid_context_state_size(a);
    blob = malloc((size_t)sz);
    CHECK(braid_context_state_save(a, blob, sz) == BRAID_OK && braid_context_state_load(b, blob, sz) == BRAID_OK &&
              braid_context_n_past(b) == 0,
          "empty state round trip");
    free(blob);

    /* abort keeps the cache usable: the aborted tokens are dropped */
    braid_context_reset(a);
    CHECK(braid_context_eval(a, tok, 10, 0, one) == BRAID_OK, "eval 10");
    braid_context_abort(a);
    CHECK(braid_context_eval(a, tok + 10, 5, 0, one) == BRAID_ABORTED, "abort");
    CHECK(braid_context_n_past(a) == 10, "abort changed n_past");
    CHECK(braid_context_eval(a, tok + 10, 5, 1, chk) == BRAID_OK, "eval after abort");
    CHECK(same(chk, dec + 10 * (int64_t)V, 5 * (int64_t)V), "%s: eval after abort differs", metric);

    braid_context_free(a);
    braid_context_free(b);
    free(tok), free(dec), free(pre), free(chk), free(one);
    braid_model_free(m);
    unlink(path);
}

/* Blobs do not cross models; a Chimera-only setting keeps its meaning. */
static void test_other_model(void) {
    tcfg c1 = tiny("l2"), c2 = tiny("cosine");
    c1.L = c2.L = 1;
    c1.maxpos = c2.maxpos = 32;
    write_model(&c1, tmp_path("a.gguf"));
    write_model(&c2, tmp_path("b.gguf"));
    braid_model *m1 = load_ok(tmp_path("a.gguf")), *m2 = load_ok(tmp_path("b.gguf"));
    if (!m1 || !m2) return;
    braid_context *a = NULL, *b = NULL;
    braid_context_new(m1, 4, &a);
    braid_context_new(m2, 4, &b);
    int32_t tok[5] = {1, 2, 3, 4, 5};
    float *lg = malloc(sizeof(float) * 300);
    CHECK(braid_context_eval(a, tok, 3, 0, lg) == BRAID_OK, "eval");
    int64_t sz = braid_context_state_size(a);
    uint8_t *blob = malloc((size_t)sz);
    braid_context_state_save(a, blob, sz);
    CHECK(braid_context_state_load(b, blob, sz) == BRAID_ERR_STATE, "blob of another model accepted");
    CHECK(braid_context_copy(b, a) == BRAID_ERR_STATE, "copy across models accepted");
    CHECK(braid_context_eval(a, tok, 5, 0, lg) == BRAID_ERR_CAPACITY, "max_batch");
    CHECK(braid_context_set_loops(a, 1) == BRAID_OK && braid_context_set_loops(a, 2) == BRAID_ERR_INVALID_ARG,
          "a MoA model does not loop");
    CHECK(braid_model_n_vocab(m1) == 300 && braid_model_n_embd(m1) == 128 && braid_model_n_layer(m1) == 1, "queries");
    free(blob), free(lg);
    braid_context_free(a);
    braid_context_free(b);
    braid_model_free(m1);
    braid_model_free(m2);
    unlink(tmp_path("a.gguf"));
    unlink(tmp_path("b.gguf"));
}

/* Load validation: missing keys/tensors, a bad metric, non-positive effective α. */
static void test_validation(void) {
    tcfg c = tiny("l2");
    c.L = 1;
    c.maxpos = 16;
    write_model(&c, tmp_path("v.gguf"));
    braid_model *m = load_ok(tmp_path("v.gguf"));
    braid_model_free(m);
    c.metric = "manhattan";
    write_model(&c, tmp_path("v.gguf"));
    m = NULL;
    CHECK(braid_model_load(tmp_path("v.gguf"), &m) == BRAID_ERR_FORMAT && !m && strstr(braid_last_error(), "moa.metric"),
          "bad metric: %s", braid_last_error());
    c.metric = "l2";
    c.H = 3; /* 128 % 3 != 0 */
    write_model(&c, tmp_path("v.gguf"));
    CHECK(braid_model_load(tmp_path("v.gguf"), &m) == BRAID_ERR_FORMAT && !m, "heads not dividing dim");
    c.H = 4;
    g_skip = "blk.0.moa_mqa_ball_radius";
    write_model(&c, tmp_path("v.gguf"));
    CHECK(braid_model_load(tmp_path("v.gguf"), &m) == BRAID_ERR_FORMAT && !m &&
              strstr(braid_last_error(), "missing tensor 'blk.0.moa_mqa_ball_radius'"),
          "missing tensor: %s", braid_last_error());
    g_skip = NULL;
    g_negate = "blk.0.moa_mha_alpha";
    write_model(&c, tmp_path("v.gguf"));
    CHECK(braid_model_load(tmp_path("v.gguf"), &m) == BRAID_ERR_FORMAT && !m && strstr(braid_last_error(), "moa_mha_alpha"),
          "negative alpha: %s", braid_last_error());
    g_negate = NULL;
    /* a model without balls, V energy, gates and R = 0 (plain RoPE) loads and runs */
    c.balls = c.venergy = c.fgates = c.rgates = 0;
    c.R = 0;
    write_model(&c, tmp_path("v.gguf"));
    m = load_ok(tmp_path("v.gguf"));
    if (m) {
        braid_context *ctx = NULL;
        float *lg = malloc(sizeof(float) * 300 * 3);
        int32_t tk[3] = {7, 8, 9};
        double *ref = malloc(sizeof(double) * 300 * 3);
        CHECK(braid_context_new(m, 3, &ctx) == BRAID_OK && braid_context_eval(ctx, tk, 3, 1, lg) == BRAID_OK,
              "minimal model eval: %s", braid_last_error());
        ref_forward(&c, tk, 3, ref);
        double worst = 0;
        for (int i = 0; i < 900; i++) worst = fmax(worst, fabs(lg[i] - ref[i]) / fmax(1.0, fabs(ref[i])));
        CHECK(worst < 2e-3, "minimal model vs reference: %g", worst);
        braid_context_free(ctx);
        free(lg), free(ref);
        braid_model_free(m);
    }
    unlink(tmp_path("v.gguf"));
}

int main(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/braid_test_moa_XXXXXX", base);
    if (!mkdtemp(g_dir)) {
        printf("mkdtemp failed\n");
        return 2;
    }
    CHECK(braid_init(0) == BRAID_OK, "braid_init");
    printf("system: %s\n", braid_system_info());
    const char *metrics[] = {"l2", "cosine", "maha_diag"};
    const int32_t best = braid_isa_get();
    for (int i = 0; i < 3; i++) test_reference(metrics[i]);
    braid_isa_set(best);
    printf("context tests on isa %s\n", kernels()->name);
    for (int i = 0; i < 3; i++) test_cache(metrics[i]);
    test_other_model();
    test_validation();
    free_host();
    rmdir(g_dir);
    return harness_finish("test_moa");
}
