/*
 * test_gguf.c — the GGUF reader (gguf.c) on files written by gguf_writer.h:
 * every metadata type (incl. nested arrays) round-trips, tensors are found with
 * the right bytes; then systematic corruption (every truncation point of the
 * header, many of the data, bad magic/version, huge counts and lengths, bad
 * types, dims, offsets, alignment, duplicates, random byte flips) must give a
 * negative status with a message — never a crash or an out-of-bounds read
 * (each parse reads an exact-size malloc copy, so valgrind/ASan would see one).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../include/braid.h"
#include "../src/common.h"
#include "gguf_writer.h"
#include "harness.h"

static float f32data[15];
static uint16_t f16data[10];
static uint8_t *bt2data;

static uint8_t *build(size_t *size, uint32_t alignment, size_t *tinfo) {
    gw w;
    gw_init(&w);
    if (alignment != GGUF_DEFAULT_ALIGNMENT) {
        w.alignment = alignment;
        gw_kv_u32(&w, "general.alignment", alignment);
    }
    gw_kv_str(&w, "general.architecture", "chimera");
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int32_t i32 = -2000000000;
    uint64_t u64 = 1ull << 40;
    int64_t i64 = -(1ll << 50);
    double f64 = 2.5;
    uint8_t b = 1;
    gw_key(&w, "t.u8", GGUF_TYPE_UINT8), gw_put(&w.kv, &u8, 1);
    gw_key(&w, "t.i8", GGUF_TYPE_INT8), gw_put(&w.kv, &i8, 1);
    gw_key(&w, "t.u16", GGUF_TYPE_UINT16), gw_put(&w.kv, &u16, 2);
    gw_key(&w, "t.i16", GGUF_TYPE_INT16), gw_put(&w.kv, &i16, 2);
    gw_kv_u32(&w, "t.u32", 4000000000u);
    gw_key(&w, "t.i32", GGUF_TYPE_INT32), gw_put(&w.kv, &i32, 4);
    gw_kv_f32(&w, "t.f32", 0.125f);
    gw_key(&w, "t.bool", GGUF_TYPE_BOOL), gw_put(&w.kv, &b, 1);
    gw_key(&w, "t.u64", GGUF_TYPE_UINT64), gw_put(&w.kv, &u64, 8);
    gw_key(&w, "t.i64", GGUF_TYPE_INT64), gw_put(&w.kv, &i64, 8);
    gw_key(&w, "t.f64", GGUF_TYPE_FLOAT64), gw_put(&w.kv, &f64, 8);
    const char *strs[] = {"GD", "", "hello world"};
    gw_kv_arr_str(&w, "t.strs", strs, 3);
    int32_t ints[] = {1, -2, 3, -4};
    gw_kv_arr_i32(&w, "t.ints", ints, 4);
    /* nested: array of 2 arrays of i32 */
    gw_key(&w, "t.nested", GGUF_TYPE_ARRAY);
    gw_u32(&w.kv, GGUF_TYPE_ARRAY);
    gw_u64(&w.kv, 2);
    for (int k = 0; k < 2; k++) {
        gw_u32(&w.kv, GGUF_TYPE_INT32);
        gw_u64(&w.kv, 2);
        gw_put(&w.kv, ints + 2 * k, 8);
    }
    int64_t ne_f32[2] = {5, 3}, ne_f16[1] = {10}, ne_bt2[2] = {128, 2};
    gw_tensor(&w, "t.f32", GGML_TYPE_F32, 2, ne_f32, f32data, sizeof f32data);
    gw_tensor(&w, "t.f16", GGML_TYPE_F16, 1, ne_f16, f16data, sizeof f16data);
    gw_tensor(&w, "t.bt2", BRAID_GGUF_TYPE_BT2, 2, ne_bt2, bt2data, bt2_bytes(2, 128));
    uint8_t *file = gw_finish(&w, size, tinfo);
    gw_free(&w);
    return file;
}

/* Parses an exact-size copy of buf[0..size). */
static int32_t parse_copy(const uint8_t *buf, size_t size, gguf_file **out) {
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, buf, size);
    gguf_file *f = NULL;
    int32_t st = gguf_parse(&f, copy, size, "test");
    if (st == BRAID_OK) {
        /* touch every tensor byte: they must lie inside the copy */
        unsigned sum = 0;
        for (uint64_t i = 0; i < f->n_tensors; i++)
            for (uint64_t j = 0; j < f->tensors[i].nbytes; j++) sum += f->tensors[i].data[j];
        (void)sum;
    }
    if (out && st == BRAID_OK)
        *out = f;
    else
        gguf_close(f);
    if (!(out && st == BRAID_OK)) free(copy);
    return st;
}

static void expect_fail(const uint8_t *buf, size_t size, const char *needle, const char *what) {
    braid_clear_error();
    int32_t st = parse_copy(buf, size, NULL);
    CHECK(st == BRAID_ERR_FORMAT, "%s: status %d", what, st);
    CHECK(braid_last_error()[0] != 0, "%s: no message", what);
    if (needle) CHECK(strstr(braid_last_error(), needle), "%s: message '%s' lacks '%s'", what, braid_last_error(), needle);
}

/* Offset of the first occurrence of the string s preceded by its u64 length (a GGUF string). */
static size_t find_gstr(const uint8_t *buf, size_t size, const char *s) {
    size_t n = strlen(s);
    for (size_t i = 8; i + n <= size; i++) {
        uint64_t len;
        memcpy(&len, buf + i - 8, 8);
        if (len == n && memcmp(buf + i, s, n) == 0) return i - 8;
    }
    printf("string %s not found\n", s);
    exit(2);
}

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static void test_valid(void) {
    size_t size, tinfo[3];
    uint8_t *buf = build(&size, GGUF_DEFAULT_ALIGNMENT, tinfo);
    uint8_t *copy = malloc(size);
    memcpy(copy, buf, size);
    gguf_file *f = NULL;
    int32_t st = gguf_parse(&f, copy, size, "valid");
    CHECK(st == BRAID_OK, "valid file: %d %s", st, braid_last_error());
    if (st) return;
    int64_t v;
    float x;
    gguf_str s;
    CHECK(f->version == 3 && f->n_tensors == 3 && f->alignment == 32, "header");
    CHECK(gguf_get_int(f, "t.u8", &v) == 0 && v == 200, "u8");
    CHECK(gguf_get_int(f, "t.i8", &v) == 0 && v == -100, "i8");
    CHECK(gguf_get_int(f, "t.u16", &v) == 0 && v == 60000, "u16");
    CHECK(gguf_get_int(f, "t.i16", &v) == 0 && v == -30000, "i16");
    CHECK(gguf_get_int(f, "t.u32", &v) == 0 && v == 4000000000ll, "u32");
    CHECK(gguf_get_int(f, "t.i32", &v) == 0 && v == -2000000000, "i32");
    CHECK(gguf_get_int(f, "t.u64", &v) == 0 && v == 1ll << 40, "u64");
    CHECK(gguf_get_int(f, "t.i64", &v) == 0 && v == -(1ll << 50), "i64");
    CHECK(gguf_get_f32(f, "t.f32", &x) == 0 && x == 0.125f, "f32");
    CHECK(gguf_get_f32(f, "t.f64", &x) == 0 && x == 2.5f, "f64");
    CHECK(gguf_get_str(f, "general.architecture", &s) == 0 && gguf_str_eq(s, "chimera"), "string");
    CHECK(gguf_get_int(f, "t.f32", &v) == BRAID_ERR_FORMAT && strstr(braid_last_error(), "t.f32"), "type mismatch");
    CHECK(gguf_get_int(f, "t.missing", &v) == BRAID_ERR_FORMAT && strstr(braid_last_error(), "t.missing"), "missing key");
    int32_t v32 = 0;
    CHECK(gguf_get_int_in(f, "t.u16", 0, 60000, &v32) == 0 && v32 == 60000, "int in range (inclusive)");
    CHECK(gguf_get_int_in(f, "t.u16", 0, 59999, &v32) == BRAID_ERR_FORMAT && strstr(braid_last_error(), "t.u16 = 60000"),
          "int out of range names key and value");
    CHECK(gguf_get_f32_in(f, "t.f32", 0.0f, 1.0f, &x) == 0 && x == 0.125f, "f32 in range");
    CHECK(gguf_get_f32_in(f, "t.f32", 0.125f, 1.0f, &x) == BRAID_ERR_FORMAT && strstr(braid_last_error(), "t.f32"),
          "f32 range is open");
    const gguf_kv *kv = gguf_find_kv(f, "t.strs");
    CHECK(kv && kv->arr_n == 3, "string array");
    if (kv) {
        CHECK(gguf_arr_str(f, kv, 0, &s) == 0 && gguf_str_eq(s, "GD"), "strs[0]");
        CHECK(gguf_arr_str(f, kv, 1, &s) == 0 && s.len == 0, "strs[1]");
        CHECK(gguf_arr_str(f, kv, 2, &s) == 0 && gguf_str_eq(s, "hello world"), "strs[2]");
        CHECK(gguf_arr_str(f, kv, 3, &s) == BRAID_ERR_FORMAT, "strs[3] out of range");
    }
    kv = gguf_find_kv(f, "t.nested");
    CHECK(kv && kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_ARRAY && kv->arr_n == 2, "nested array");
    const gguf_tensor *t = gguf_find_tensor(f, "t.f32");
    CHECK(t && t->type == GGML_TYPE_F32 && t->ne[0] == 5 && t->ne[1] == 3 && t->nbytes == sizeof f32data &&
              memcmp(t->data, f32data, sizeof f32data) == 0 && (t->data - copy) % 32 == 0,
          "tensor t.f32");
    t = gguf_find_tensor(f, "t.f16");
    CHECK(t && t->nbytes == sizeof f16data && memcmp(t->data, f16data, sizeof f16data) == 0, "tensor t.f16");
    t = gguf_find_tensor(f, "t.bt2");
    CHECK(t && t->nbytes == bt2_bytes(2, 128) && memcmp(t->data, bt2data, t->nbytes) == 0, "tensor t.bt2");
    CHECK(gguf_find_tensor(f, "t.none") == NULL, "missing tensor");
    CHECK(f->data_bytes == sizeof f32data + sizeof f16data + bt2_bytes(2, 128), "data_bytes");
    gguf_close(f);
    free(copy);

    /* another alignment */
    uint8_t *b64 = build(&size, 64, NULL);
    f = NULL;
    copy = malloc(size);
    memcpy(copy, b64, size);
    CHECK(gguf_parse(&f, copy, size, "a64") == BRAID_OK, "alignment 64: %s", braid_last_error());
    if (f) {
        CHECK(f->alignment == 64, "alignment read");
        for (uint64_t i = 0; i < f->n_tensors; i++)
            CHECK((f->tensors[i].data - copy) % 64 == 0, "tensor %llu aligned", (unsigned long long)i);
    }
    gguf_close(f);
    free(copy);
    free(b64);
    free(buf);
}

static void test_truncation(void) {
    size_t size, tinfo[3];
    uint8_t *buf = build(&size, GGUF_DEFAULT_ALIGNMENT, tinfo);
    gguf_file *f = NULL;
    parse_copy(buf, size, &f);
    size_t data_off = f ? f->data_offset : size;
    if (f) {
        free((void *)f->base);
        gguf_close(f);
    }
    int bad = 0;
    /* every byte boundary of the header region, then every 7th byte of the data */
    for (size_t n = 0; n < size; n += n < data_off + 8 ? 1 : 7) {
        braid_clear_error();
        int32_t st = parse_copy(buf, n, NULL);
        if (st != BRAID_ERR_FORMAT || !braid_last_error()[0]) {
            if (bad++ < 5) printf("truncated at %zu of %zu: status %d '%s'\n", n, size, st, braid_last_error());
        }
    }
    CHECK(bad == 0, "%d truncation points did not fail cleanly", bad);
    free(buf);
}

static void test_corruption(void) {
    size_t size, tinfo[3];
    uint8_t *buf = build(&size, GGUF_DEFAULT_ALIGNMENT, tinfo);
    uint8_t *b = malloc(size);
#define RESET() memcpy(b, buf, size)
    RESET(), b[0] ^= 1, expect_fail(b, size, "magic", "bad magic");
    RESET(), put32(b + 4, 1), expect_fail(b, size, "version", "version 1");
    RESET(), put32(b + 4, 4), expect_fail(b, size, "version", "version 4");
    RESET(), put64(b + 8, ~0ull), expect_fail(b, size, "tensor count", "huge tensor count");
    RESET(), put64(b + 8, 1000), expect_fail(b, size, NULL, "too many tensors");
    RESET(), put64(b + 16, ~0ull), expect_fail(b, size, "metadata count", "huge kv count");
    RESET(), put64(b + 16, 200), expect_fail(b, size, NULL, "too many kvs");
    /* first key's length */
    RESET(), put64(b + 24, ~0ull), expect_fail(b, size, "length", "huge key length");
    RESET(), put64(b + 24, 0), expect_fail(b, size, "empty key", "empty key");
    size_t arch = find_gstr(buf, size, "general.architecture");
    size_t archval = arch + 8 + strlen("general.architecture") + 4;
    RESET(), put32(b + archval - 4, 13), expect_fail(b, size, "unknown value type", "value type 13");
    RESET(), put32(b + archval - 4, 0xffffffffu), expect_fail(b, size, "unknown value type", "value type ~0");
    RESET(), put64(b + archval, ~0ull), expect_fail(b, size, "length", "huge string length");
    RESET(), put64(b + archval, size), expect_fail(b, size, NULL, "string past EOF");
    size_t bl = find_gstr(buf, size, "t.bool") + 8 + 6 + 4;
    RESET(), b[bl] = 2, expect_fail(b, size, "bool", "bool value 2");
    size_t strs = find_gstr(buf, size, "t.strs") + 8 + 6 + 4; /* → elem type, count */
    RESET(), put64(b + strs + 4, ~0ull), expect_fail(b, size, "array elements", "huge string array");
    RESET(), put64(b + strs + 4, 1u << 20), expect_fail(b, size, NULL, "long string array");
    RESET(), put32(b + strs, 99), expect_fail(b, size, "unknown type", "array of type 99");
    size_t ints = find_gstr(buf, size, "t.ints") + 8 + 6 + 4;
    RESET(), put64(b + ints + 4, ~0ull / 2), expect_fail(b, size, "array elements", "huge int array");
    size_t nest = find_gstr(buf, size, "t.nested") + 8 + 8 + 4;
    RESET(), put64(b + nest + 4 + 8 + 4, ~0ull), expect_fail(b, size, NULL, "huge inner array");
    /* duplicate key: rename t.u16 to t.u8x → no; rename "t.i8" to "t.u8" */
    size_t i8 = find_gstr(buf, size, "t.i8");
    RESET(), memcpy(b + i8 + 8, "t.u8", 4), expect_fail(b, size, "duplicate key", "duplicate key");

    /* tensor infos: name, n_dims, ne[], type, offset */
    size_t t0 = tinfo[0], t1 = tinfo[1], t2 = tinfo[2];
    size_t nd0 = t0 + 8 + 5, nd1 = t1 + 8 + 5, nd2 = t2 + 8 + 5;
    size_t type0 = nd0 + 4 + 16, off0 = type0 + 4, type2 = nd2 + 4 + 16, off2 = type2 + 4, off1 = nd1 + 4 + 8 + 4;
    RESET(), put64(b + t0, 1000), expect_fail(b, size, "length", "long tensor name");
    RESET(), put64(b + t0, 0), expect_fail(b, size, "empty name", "empty tensor name");
    RESET(), put32(b + nd0, 0), expect_fail(b, size, "dimensions", "0 dims");
    RESET(), put32(b + nd0, 5), expect_fail(b, size, "dimensions", "5 dims");
    RESET(), put64(b + nd0 + 4, 0), expect_fail(b, size, "dimension 0", "dim 0");
    RESET(), put64(b + nd0 + 4, 1ull << 62), expect_fail(b, size, "dimension 0", "huge dim");
    RESET(), put64(b + nd0 + 4, 1ull << 39), put64(b + nd0 + 12, 1ull << 39), expect_fail(b, size, "overflow", "dim product");
    RESET(), put64(b + nd0 + 4, 1ull << 30), expect_fail(b, size, "past the end", "tensor bigger than file");
    RESET(), put32(b + type0, 77), expect_fail(b, size, "unsupported tensor type", "type 77");
    RESET(), put32(b + type2, GGML_TYPE_F32), expect_fail(b, size, NULL, "bt2 retyped f32 (overlap/size)");
    RESET(), put64(b + nd2 + 4, 64), expect_fail(b, size, "BT2", "bt2 cols 64");
    RESET(), put64(b + off0, 4), expect_fail(b, size, "alignment", "misaligned offset");
    RESET(), put64(b + off2, ((uint64_t)size + 31) / 32 * 32), expect_fail(b, size, "past the end", "offset past EOF");
    RESET(), put64(b + off2, ~0ull - 31), expect_fail(b, size, "past the end", "offset ~0");
    RESET(), put64(b + off1, 0), expect_fail(b, size, "overlap", "overlapping tensors");
    RESET(), memcpy(b + t1 + 8, "t.f32", 5), expect_fail(b, size, "duplicate tensor", "duplicate tensor name");

    /* random byte flips in the header: must never crash; a parse that succeeds must be in bounds (parse_copy) */
    size_t hdr = tinfo[2] + 8 + 5 + 4 + 16 + 4 + 8;
    int ok = 0, failed_clean = 0;
    for (int it = 0; it < 3000; it++) {
        RESET();
        int flips = 1 + (int)(rng_u64() % 3);
        for (int k = 0; k < flips; k++) b[rng_u64() % hdr] ^= (uint8_t)(1u << (rng_u64() % 8));
        braid_clear_error();
        int32_t st = parse_copy(b, size, NULL);
        if (st == BRAID_OK)
            ok++;
        else if (st == BRAID_ERR_FORMAT && braid_last_error()[0])
            failed_clean++;
    }
    CHECK(ok + failed_clean == 3000, "random flips: %d ok, %d clean failures of 3000", ok, failed_clean);
    printf("random header flips: %d parsed, %d rejected\n", ok, failed_clean);
    free(b);
    free(buf);
#undef RESET
}

static void test_files(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/braid_test_gguf_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) return;
    char path[300];
    snprintf(path, sizeof path, "%s/x.gguf", dir);
    size_t size;
    uint8_t *buf = build(&size, GGUF_DEFAULT_ALIGNMENT, NULL);
    gguf_file *f = NULL;
    CHECK(gw_write_file(path, buf, size) == 0, "write");
    CHECK(gguf_open(&f, path) == BRAID_OK && f && f->mapped, "open valid: %s", braid_last_error());
    if (f) CHECK(gguf_find_tensor(f, "t.bt2") != NULL, "tensor from the mapping");
    gguf_close(f);
    /* truncated on disk, empty, a directory, missing */
    size_t cuts[] = {0, 3, 23, 24, 100, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        gw_write_file(path, buf, cuts[i]);
        f = NULL;
        int32_t st = gguf_open(&f, path);
        CHECK(st == BRAID_ERR_FORMAT && !f && strstr(braid_last_error(), path), "file cut at %zu: %d '%s'", cuts[i], st,
              braid_last_error());
    }
    CHECK(gguf_open(&f, dir) == BRAID_ERR_IO, "directory");
    unlink(path);
    CHECK(gguf_open(&f, path) == BRAID_ERR_IO, "missing file");
    /* the public loader on a GGUF that is not a Chimera model */
    gw_write_file(path, buf, size);
    braid_model *m = NULL;
    int32_t st = braid_model_load(path, &m);
    CHECK(st == BRAID_ERR_FORMAT && !m, "model_load of a non-model: %d %s", st, braid_last_error());
    unlink(path);
    rmdir(dir);
    free(buf);
}

int main(void) {
    for (int i = 0; i < 15; i++) f32data[i] = (float)i * 0.5f;
    for (int i = 0; i < 10; i++) f16data[i] = float_to_half((float)i);
    float w[256];
    for (int i = 0; i < 256; i++) w[i] = rng_normal();
    bt2data = bt2_quantize(w, 2, 128);
    test_valid();
    test_truncation();
    test_corruption();
    test_files();
    free(bt2data);
    return harness_finish("test_gguf");
}
