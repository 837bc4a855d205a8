/*
 * bench_moa.c — MoA decode speed with the KV cache against recomputing the whole context
 * every step (what the reference implementation does: the card's "no KV cache"), measured
 * in the same run, on a random MoA at the seed card's example config (dim 768, 12 layers,
 * 8 heads, 8 MQA heads, mixer/ffn hidden 3072, vocab 50257, FP32, metric l2).
 *
 * usage: bench_moa [--threads N] [--steps S] [--contexts 128,1024,2048] [--f16] [--prune]
 *   --prune   ball radius chosen so about half of the keys are pruned (default: radius large,
 *             every key in its ball: the attention's worst case)
 * For each context length c: cached = S single-token decode steps at positions c−S..c−1
 * after a prefill (tok/s = S / time); recompute = one eval of all c tokens from a reset
 * context for the last token's logits (tok/s = 1 / time). Prints both and the speed-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../include/braid.h"
#include "bench_common.h"
#include "../test/gguf_writer.h"

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static float rnd(void) { /* uniform(-1, 1) */
    g_rng ^= g_rng >> 12, g_rng ^= g_rng << 25, g_rng ^= g_rng >> 27;
    return (float)((g_rng * 2685821657736338717ull) >> 40) / 8388608.0f - 1.0f;
}

static int g_f16;

/* GGUF dims n0 fastest; values c + s·U(−1, 1); matrices F16 with --f16. */
static void put(gw *w, const char *name, int64_t n0, int64_t n1, int64_t n2, float c, float s) {
    const int64_t n = n0 * (n1 ? n1 : 1) * (n2 ? n2 : 1);
    int64_t ne[3] = {n0, n1, n2};
    uint32_t nd = n2 ? 3 : n1 ? 2 : 1;
    if (g_f16 && nd == 2) {
        uint16_t *h = malloc(2 * (size_t)n);
        for (int64_t i = 0; i < n; i++) h[i] = float_to_half(c + s * rnd());
        gw_tensor(w, name, GGML_TYPE_F16, nd, ne, h, 2 * (size_t)n);
        free(h);
    } else {
        float *d = malloc(4 * (size_t)n);
        for (int64_t i = 0; i < n; i++) d[i] = c + s * rnd();
        gw_tensor(w, name, GGML_TYPE_F32, nd, ne, d, 4 * (size_t)n);
        free(d);
    }
}

static int write_model(const char *path, int maxpos, int prune) {
    const int V = 50257, D = 768, L = 12, H = 8, Hq = 8, M = 3072, F = 3072, Rh = 128, K = 5, C = 2 * D, r = 32, R = 16;
    const int dh = D / H;
    gw w;
    gw_init(&w);
    gw_kv_str(&w, "general.architecture", "moa");
    gw_kv_str(&w, "general.name", "moa-bench-card-config");
    gw_kv_u32(&w, "moa.vocab_size", V);
    gw_kv_u32(&w, "moa.dim", D);
    gw_kv_u32(&w, "moa.num_layers", L);
    gw_kv_u32(&w, "moa.max_position_embeddings", (uint32_t)maxpos);
    gw_kv_u32(&w, "moa.attn_heads", H);
    gw_kv_u32(&w, "moa.mqa_q_heads", Hq);
    gw_kv_u32(&w, "moa.mixer_hidden", M);
    gw_kv_u32(&w, "moa.ffn_hidden", F);
    gw_kv_u32(&w, "moa.router_hidden", Rh);
    gw_kv_u32(&w, "moa.router_topk", 2);
    gw_kv_f32(&w, "moa.router_temperature", 1.0f);
    gw_kv_u32(&w, "moa.conv_kernel", K);
    gw_kv_u32(&w, "moa.conv_mult", 2);
    gw_kv_u32(&w, "moa.lr_rank", r);
    gw_kv_u32(&w, "moa.n_branches", 3);
    gw_kv_u32(&w, "moa.r_basis", R);
    gw_kv_f32(&w, "moa.theta_base", 10000.0f);
    gw_kv_f32(&w, "moa.energy_amplification", 3.14159265f);
    gw_kv_str(&w, "moa.metric", "l2");
    gw_kv_u32(&w, "moa.use_balls", 1);
    gw_kv_u32(&w, "moa.enable_feature_gates", 1);
    gw_kv_u32(&w, "moa.enable_router_gates", 1);
    gw_kv_u32(&w, "moa.enable_v_energy", 1);
    gw_kv_f32(&w, "moa.layer_norm_eps", 1e-5f);
    const float s = 0.02f * 1.7320508f; /* U(−a, a) with std 0.02 (M.13) */
    put(&w, "token_embd.weight", D, V, 0, 0, s);
    put(&w, "output_norm.weight", D, 0, 0, 1, 0);
    put(&w, "output_norm.bias", D, 0, 0, 0, 0);
    char nm[128];
    for (int il = 0; il < L; il++) {
#define B(x) (snprintf(nm, sizeof nm, "blk.%d.%s", il, x), nm)
        put(&w, B("attn_norm.weight"), D, 0, 0, 1, 0);
        put(&w, B("attn_norm.bias"), D, 0, 0, 0, 0);
        put(&w, B("ffn_norm.weight"), D, 0, 0, 1, 0);
        put(&w, B("ffn_norm.bias"), D, 0, 0, 0, 0);
        put(&w, B("moa_router_in.weight"), D, Rh, 0, 0, s);
        put(&w, B("moa_router_in.bias"), Rh, 0, 0, 0, 0);
        put(&w, B("moa_router_out.weight"), Rh, 4, 0, 0, 1.0f);
        put(&w, B("moa_router_out.bias"), 4, 0, 0, 0, 0);
        put(&w, B("moa_film_gamma.weight"), Rh, 4 * D, 0, 0, s);
        put(&w, B("moa_film_beta.weight"), Rh, 4 * D, 0, 0, s);
        put(&w, B("moa_gate.weight"), D, 4, 0, 0, s);
        put(&w, B("moa_gate.bias"), 4, 0, 0, 0, 0);
        put(&w, B("moa_conv_dw.weight"), K, D, 0, 0, 0.4f);
        put(&w, B("moa_conv_dw.bias"), D, 0, 0, 0, 0);
        put(&w, B("moa_conv_pw.weight"), D, D, 0, 0, s);
        const char *pre[2] = {"moa_mha", "moa_mqa"};
        for (int a = 0; a < 2; a++) {
            const int Hh = a ? Hq : H, G = a ? 1 : H;
            char sub[64];
#define A(x) (snprintf(sub, sizeof sub, "%s_%s", pre[a], x), B(sub))
            put(&w, A("q.weight"), D, Hh * dh, 0, 0, s);
            put(&w, A("k.weight"), D, G * dh, 0, 0, s);
            put(&w, A("v.weight"), D, G * dh, 0, 0, s);
            put(&w, A("o.weight"), Hh * dh, D, 0, 0, s);
            put(&w, A("alpha"), Hh, 0, 0, 1.0f, 0);
            put(&w, A("ball_origin"), dh, Hh, 0, 0, 0);
            /* pre-RoPE key norms here are ≈ 0.02·√(768·96)·√(LN gain) ≈ 5.4 */
            put(&w, A("ball_radius"), Hh, 0, 0, prune ? 5.4f : 1e6f, 0);
            put(&w, A("rope_a"), R, dh / 2, G, 0, 0.05f);
            put(&w, A("rope_b"), R, dh / 2, G, 0, 0.05f);
            put(&w, A("energy_c"), R, G, 0, 0, 0.1f);
            put(&w, A("energy_g"), R, G, 0, 0, 0.1f);
#undef A
        }
        put(&w, B("moa_mix_up.weight"), D, M, 0, 0, s);
        put(&w, B("moa_mix_up.bias"), M, 0, 0, 0, 0);
        put(&w, B("moa_mix_down.weight"), M, D, 0, 0, s);
        put(&w, B("moa_mix_down.bias"), D, 0, 0, 0, 0);
        put(&w, B("moa_ls_mix"), D, 0, 0, 0.1f, 0);
        put(&w, B("moa_ls_ffn"), D, 0, 0, 0.1f, 0);
        put(&w, B("ffn_router.weight"), D, 3, 0, 0, s);
        put(&w, B("ffn_gate.weight"), D, F, 0, 0, s);
        put(&w, B("ffn_up.weight"), D, F, 0, 0, s);
        put(&w, B("ffn_down.weight"), F, D, 0, 0, s);
        put(&w, B("ffn_conv_in.weight"), D, C, 0, 0, s);
        put(&w, B("ffn_conv_dw.weight"), K, C, 0, 0, 0.4f);
        put(&w, B("ffn_conv_dw.bias"), C, 0, 0, 0, 0);
        put(&w, B("ffn_conv_out.weight"), C, D, 0, 0, s);
        put(&w, B("ffn_lr_down.weight"), D, r, 0, 0, s);
        put(&w, B("ffn_lr_up.weight"), r, D, 0, 0, s);
#undef B
    }
    size_t size;
    uint8_t *buf = gw_finish(&w, &size, NULL);
    gw_free(&w);
    int rc = gw_write_file(path, buf, size);
    free(buf);
    return rc;
}

int main(int argc, char **argv) {
    int threads = 2, steps = 8, prune = 0;
    int ctxs[8] = {128, 1024, 2048}, n_ctx = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--f16")) g_f16 = 1;
        else if (!strcmp(argv[i], "--prune")) prune = 1;
        else if (!strcmp(argv[i], "--contexts") && i + 1 < argc) {
            n_ctx = 0;
            for (char *p = strtok(argv[++i], ","); p && n_ctx < 8; p = strtok(NULL, ",")) ctxs[n_ctx++] = atoi(p);
        } else {
            fprintf(stderr, "usage: bench_moa [--threads N] [--steps S] [--contexts a,b,c] [--f16] [--prune]\n");
            return 2;
        }
    }
    int maxpos = 0;
    for (int i = 0; i < n_ctx; i++) maxpos = ctxs[i] > maxpos ? ctxs[i] : maxpos;
    char path[512];
    snprintf(path, sizeof path, "%s/bench_moa_%d.gguf", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    double t0 = now_s();
    if (write_model(path, maxpos, prune)) {
        fprintf(stderr, "bench_moa: cannot write %s\n", path);
        return 2;
    }
    braid_init(threads);
    braid_model *m = NULL;
    if (braid_model_load(path, &m)) {
        fprintf(stderr, "bench_moa: %s\n", braid_last_error());
        unlink(path);
        return 2;
    }
    printf("model: %s\n", braid_model_describe(m));
    printf("system: %s\n", braid_system_info());
    printf("weights %.0f MB (%s), written in %.1f s; %d threads, %d cached steps per context, balls %s\n",
           braid_model_tensor_bytes(m) / 1e6, g_f16 ? "F16 matrices" : "F32", now_s() - t0, braid_thread_count(), steps,
           prune ? "pruning ~half the keys" : "keeping every key");
    const int V = braid_model_n_vocab(m);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)maxpos);
    for (int i = 0; i < maxpos; i++) tok[i] = (int32_t)((rnd() + 1.0f) * 0.5f * (V - 1));
    float *logits = malloc(sizeof(float) * (size_t)V);
    braid_context *cached = NULL, *full = NULL;
    if (braid_context_new(m, maxpos, &cached) || braid_context_new(m, maxpos, &full)) {
        fprintf(stderr, "bench_moa: %s\n", braid_last_error());
        return 2;
    }
    printf("%8s %14s %16s %10s\n", "context", "cached tok/s", "recompute tok/s", "speed-up");
    for (int i = 0; i < n_ctx; i++) {
        const int c = ctxs[i], pre = c - steps - (int)braid_context_n_past(cached);
        if (pre > 0 && braid_context_eval(cached, tok + braid_context_n_past(cached), pre, 0, logits)) {
            fprintf(stderr, "bench_moa: prefill: %s\n", braid_last_error());
            return 2;
        }
        double a = now_s();
        for (int s = 0; s < steps; s++) {
            int64_t p = braid_context_n_past(cached);
            if (braid_context_eval(cached, tok + p, 1, 0, logits)) {
                fprintf(stderr, "bench_moa: decode: %s\n", braid_last_error());
                return 2;
            }
        }
        const double t_cached = (now_s() - a) / steps;
        braid_context_reset(full);
        a = now_s();
        if (braid_context_eval(full, tok, c, 0, logits)) {
            fprintf(stderr, "bench_moa: recompute: %s\n", braid_last_error());
            return 2;
        }
        const double t_full = now_s() - a;
        printf("%8d %14.2f %16.3f %9.1fx\n", c, 1.0 / t_cached, 1.0 / t_full, t_full / t_cached);
        fflush(stdout);
    }
    printf("KV cache at %d positions: %.0f MB per context\n", maxpos,
           (double)braid_context_state_size(cached) / 1e6);
    braid_context_free(cached);
    braid_context_free(full);
    braid_model_free(m);
    free(tok), free(logits);
    unlink(path);
    return 0;
}
