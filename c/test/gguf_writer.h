/*
 * gguf_writer.h — a tiny GGUF v3 writer and the BT2 reference quantizer,
 * for the C tests only (test_gguf.c, test_model.c). Header-only; aborts on
 * out-of-memory (tests only).
 */
#ifndef BRAID_TEST_GGUF_WRITER_H
#define BRAID_TEST_GGUF_WRITER_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/gguf.h"
#include "../src/kernels.h"

typedef struct {
    uint8_t *p;
    size_t n, cap;
} gw_buf;

static inline void gw_put(gw_buf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = (b->cap + n) * 2 + 64;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}
static inline void gw_u32(gw_buf *b, uint32_t v) { gw_put(b, &v, 4); }
static inline void gw_u64(gw_buf *b, uint64_t v) { gw_put(b, &v, 8); }
static inline void gw_str(gw_buf *b, const char *s) {
    gw_u64(b, strlen(s));
    gw_put(b, s, strlen(s));
}

typedef struct {
    char name[128];
    uint32_t nd, type;
    int64_t ne[4];
    uint8_t *data;
    size_t nbytes;
} gw_tensor_t;

typedef struct {
    gw_buf kv;
    uint64_t n_kv;
    gw_tensor_t *t;
    int n_t;
    uint32_t alignment;
} gw;

static inline void gw_init(gw *w) {
    memset(w, 0, sizeof *w);
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
}
static inline void gw_free(gw *w) {
    free(w->kv.p);
    for (int i = 0; i < w->n_t; i++) free(w->t[i].data);
    free(w->t);
}

static inline void gw_key(gw *w, const char *key, uint32_t type) {
    gw_str(&w->kv, key);
    gw_u32(&w->kv, type);
    w->n_kv++;
}
static inline void gw_kv_u32(gw *w, const char *key, uint32_t v) {
    gw_key(w, key, GGUF_TYPE_UINT32);
    gw_u32(&w->kv, v);
}
static inline void gw_kv_f32(gw *w, const char *key, float v) {
    gw_key(w, key, GGUF_TYPE_FLOAT32);
    gw_put(&w->kv, &v, 4);
}
static inline void gw_kv_str(gw *w, const char *key, const char *s) {
    gw_key(w, key, GGUF_TYPE_STRING);
    gw_str(&w->kv, s);
}
static inline void gw_kv_arr_str(gw *w, const char *key, const char *const *s, uint64_t n) {
    gw_key(w, key, GGUF_TYPE_ARRAY);
    gw_u32(&w->kv, GGUF_TYPE_STRING);
    gw_u64(&w->kv, n);
    for (uint64_t i = 0; i < n; i++) gw_str(&w->kv, s[i]);
}
static inline void gw_kv_arr_i32(gw *w, const char *key, const int32_t *v, uint64_t n) {
    gw_key(w, key, GGUF_TYPE_ARRAY);
    gw_u32(&w->kv, GGUF_TYPE_INT32);
    gw_u64(&w->kv, n);
    gw_put(&w->kv, v, n * 4);
}

/* Adds a tensor; data (nbytes) is copied. ne[0] fastest, as GGUF. */
static inline void gw_tensor(gw *w, const char *name, uint32_t type, uint32_t nd, const int64_t *ne, const void *data,
                      size_t nbytes) {
    w->t = realloc(w->t, sizeof *w->t * (size_t)(w->n_t + 1));
    if (!w->t) abort();
    gw_tensor_t *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->nd = nd;
    t->type = type;
    for (uint32_t i = 0; i < nd; i++) t->ne[i] = ne[i];
    t->data = malloc(nbytes ? nbytes : 1);
    if (!t->data) abort();
    memcpy(t->data, data, nbytes);
    t->nbytes = nbytes;
}

/* The file bytes (malloc'd). tensor_info_off receives where tensor i's info starts (optional). */
static inline uint8_t *gw_finish(const gw *w, size_t *size, size_t *tensor_info_off) {
    gw_buf b = {0};
    gw_u32(&b, GGUF_MAGIC);
    gw_u32(&b, 3);
    gw_u64(&b, (uint64_t)w->n_t);
    gw_u64(&b, w->n_kv);
    gw_put(&b, w->kv.p, w->kv.n);
    uint64_t off = 0;
    for (int i = 0; i < w->n_t; i++) {
        const gw_tensor_t *t = &w->t[i];
        if (tensor_info_off) tensor_info_off[i] = b.n;
        gw_str(&b, t->name);
        gw_u32(&b, t->nd);
        for (uint32_t d = 0; d < t->nd; d++) gw_u64(&b, (uint64_t)t->ne[d]);
        gw_u32(&b, t->type);
        gw_u64(&b, off);
        off += (t->nbytes + w->alignment - 1) / w->alignment * w->alignment;
    }
    static const uint8_t zeros[4096];
    size_t pad = (w->alignment - b.n % w->alignment) % w->alignment;
    gw_put(&b, zeros, pad);
    for (int i = 0; i < w->n_t; i++) {
        const gw_tensor_t *t = &w->t[i];
        gw_put(&b, t->data, t->nbytes);
        pad = (w->alignment - t->nbytes % w->alignment) % w->alignment;
        if (i + 1 < w->n_t) gw_put(&b, zeros, pad);
    }
    *size = b.n;
    return b.p;
}

static inline int gw_write_file(const char *path, const uint8_t *buf, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = fwrite(buf, 1, size, f);
    return fclose(f) == 0 && n == size ? 0 : -1;
}

/* ---- BT2 reference quantizer (ARCHITECTURES.md §2.2, kernels.h layout) ---- */

/* W [rows, cols] float → BT2 bytes (bt2_bytes(rows, cols)); absmean per 128-group. */
static inline uint8_t *bt2_quantize(const float *W, int64_t rows, int64_t cols) {
    uint8_t *out = calloc(1, bt2_bytes(rows, cols));
    if (!out) abort();
    float *scales = (float *)(out + rows * (cols / 4));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < cols / BT2_GROUP; g++) {
            const float *w = W + r * cols + g * BT2_GROUP;
            double s = 0;
            for (int j = 0; j < BT2_GROUP; j++) s += fabs(w[j]);
            float alpha = fmaxf((float)(s / BT2_GROUP), 1e-6f);
            uint8_t *qs = out + r * (cols / 4) + g * 32;
            for (int j = 0; j < BT2_GROUP; j++) {
                float q = rintf(w[j] / alpha);
                q = q < -1 ? -1 : q > 1 ? 1 : q;
                uint8_t code = (uint8_t)((int)q + 1);
                qs[j % 32] |= (uint8_t)(code << (2 * (j / 32)));
            }
            scales[r * (cols / BT2_GROUP) + g] = alpha;
        }
    return out;
}

/* Effective weight W[r, j] = scale · w of a BT2 tensor. */
static inline double bt2_weight(const uint8_t *B, int64_t rows, int64_t cols, int64_t r, int64_t j) {
    int64_t g = j / BT2_GROUP, m = j % BT2_GROUP;
    uint8_t byte = B[r * (cols / 4) + g * 32 + m % 32];
    int w = ((byte >> (2 * (m / 32))) & 3) - 1;
    const float *scales = (const float *)(B + rows * (cols / 4));
    return (double)scales[r * (cols / BT2_GROUP) + g] * w;
}

#endif /* BRAID_TEST_GGUF_WRITER_H */
