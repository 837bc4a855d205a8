/*
 * gguf.c — GGUF v3 reader (see gguf.h).
 *
 * Layout (little-endian):
 *   u32 magic "GGUF" · u32 version · u64 n_tensors · u64 n_kv
 *   n_kv × { string key · u32 type · value }
 *   n_tensors × { string name · u32 n_dims · u64 ne[n_dims] · u32 type · u64 offset }
 *   padding to general.alignment · tensor data (offsets relative to here)
 * string = u64 length · bytes; array value = u32 elem type · u64 count · elems.
 *
 * All reads go through a cursor that checks `n <= size - off` before touching
 * memory, so no read can leave the buffer whatever the file says.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "kernels.h"

typedef struct {
    const uint8_t *base;
    size_t size;
    size_t off;
    const char *label;
} cursor;

static int32_t truncated(const cursor *c, const char *what) {
    return braid_fail(BRAID_ERR_FORMAT, "gguf %s: truncated at byte %zu of %zu reading %s", c->label, c->off, c->size,
                      what);
}

static int32_t rd(cursor *c, void *dst, size_t n, const char *what) {
    if (n > c->size - c->off) return truncated(c, what);
    memcpy(dst, c->base + c->off, n);
    c->off += n;
    return BRAID_OK;
}

static int32_t rd_u32(cursor *c, uint32_t *v, const char *what) { return rd(c, v, 4, what); }
static int32_t rd_u64(cursor *c, uint64_t *v, const char *what) { return rd(c, v, 8, what); }

static int32_t skip(cursor *c, uint64_t n, const char *what) {
    if (n > (uint64_t)(c->size - c->off)) return truncated(c, what);
    c->off += (size_t)n;
    return BRAID_OK;
}

static int32_t rd_str(cursor *c, gguf_str *s, uint64_t max_len, const char *what) {
    uint64_t len = 0;
    int32_t st = rd_u64(c, &len, what);
    if (st) return st;
    if (len > max_len)
        return braid_fail(BRAID_ERR_FORMAT, "gguf %s: %s has length %llu at byte %zu (limit %llu)", c->label, what,
                          (unsigned long long)len, c->off - 8, (unsigned long long)max_len);
    if (len > (uint64_t)(c->size - c->off)) return truncated(c, what);
    s->ptr = (const char *)(c->base + c->off);
    s->len = len;
    c->off += (size_t)len;
    return BRAID_OK;
}

static size_t scalar_size(uint32_t type) {
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

/* Smallest encoding of one element of this type (for count-vs-remaining checks). */
static size_t min_elem_size(uint32_t type) {
    if (type == GGUF_TYPE_STRING) return 8;
    if (type == GGUF_TYPE_ARRAY) return 12;
    return scalar_size(type);
}

/* Skips over one value of `type`, validating it (recursing into arrays up to a depth). */
static int32_t skip_value(cursor *c, uint32_t type, int depth, const char *key) {
    if (type >= GGUF_TYPE_COUNT)
        return braid_fail(BRAID_ERR_FORMAT, "gguf %s: key '%s' has unknown value type %u at byte %zu", c->label, key,
                          type, c->off);
    if (type == GGUF_TYPE_STRING) {
        gguf_str s;
        return rd_str(c, &s, GGUF_MAX_STRING, "a string value");
    }
    if (type != GGUF_TYPE_ARRAY) {
        if (type == GGUF_TYPE_BOOL) {
            uint8_t b = 0;
            int32_t st = rd(c, &b, 1, "a bool value");
            if (st) return st;
            if (b > 1)
                return braid_fail(BRAID_ERR_FORMAT, "gguf %s: key '%s' has bool value %u (not 0/1) at byte %zu",
                                  c->label, key, b, c->off - 1);
            return BRAID_OK;
        }
        return skip(c, scalar_size(type), "a scalar value");
    }
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return braid_fail(BRAID_ERR_FORMAT, "gguf %s: key '%s' nests arrays deeper than %d", c->label, key,
                          GGUF_MAX_ARRAY_DEPTH);
    uint32_t et = 0;
    uint64_t n = 0;
    int32_t st = rd_u32(c, &et, "an array element type");
    if (st) return st;
    if ((st = rd_u64(c, &n, "an array length"))) return st;
    if (et >= GGUF_TYPE_COUNT)
        return braid_fail(BRAID_ERR_FORMAT, "gguf %s: key '%s' is an array of unknown type %u", c->label, key, et);
    size_t remain = c->size - c->off;
    if (n > remain / min_elem_size(et))
        return braid_fail(BRAID_ERR_FORMAT,
                          "gguf %s: key '%s' claims %llu array elements but only %zu bytes remain at byte %zu",
                          c->label, key, (unsigned long long)n, remain, c->off);
    if (et == GGUF_TYPE_STRING || et == GGUF_TYPE_ARRAY || et == GGUF_TYPE_BOOL) {
        for (uint64_t i = 0; i < n; i++)
            if ((st = skip_value(c, et, depth + 1, key))) return st;
        return BRAID_OK;
    }
    return skip(c, n * scalar_size(et), "array data"); /* n * size <= remain: checked above */
}

int gguf_str_eq(gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

static int str_cmp(gguf_str a, gguf_str b) {
    size_t n = a.len < b.len ? (size_t)a.len : (size_t)b.len;
    int r = memcmp(a.ptr, b.ptr, n);
    if (r) return r;
    return a.len < b.len ? -1 : a.len > b.len;
}

const char *gguf_type_name(uint32_t type) {
    switch (type) {
    case GGML_TYPE_F32: return "F32";
    case GGML_TYPE_F16: return "F16";
    case GGML_TYPE_Q8_0: return "Q8_0";
    case GGML_TYPE_I8: return "I8";
    case GGML_TYPE_I16: return "I16";
    case GGML_TYPE_I32: return "I32";
    case GGML_TYPE_I64: return "I64";
    case GGML_TYPE_F64: return "F64";
    case GGML_TYPE_BF16: return "BF16";
    case BRAID_GGUF_TYPE_BT2: return "BT2";
    default: return "unknown";
    }
}

int32_t gguf_tensor_nbytes(uint32_t type, const int64_t *ne, uint32_t n_dims, uint64_t *out) {
    uint64_t n = 1;
    for (uint32_t i = 0; i < n_dims; i++) {
        if (ne[i] < 1 || ne[i] > GGUF_MAX_DIM_SIZE) return braid_fail(BRAID_ERR_FORMAT, "dimension %u is %lld", i, (long long)ne[i]);
        if (__builtin_mul_overflow(n, (uint64_t)ne[i], &n) || n > ((uint64_t)1 << 56))
            return braid_fail(BRAID_ERR_FORMAT, "element count overflows");
    }
    uint64_t rows = n / (uint64_t)ne[0], cols = (uint64_t)ne[0];
    switch (type) {
    case GGML_TYPE_I8: *out = n; return BRAID_OK;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
    case GGML_TYPE_I16: *out = n * 2; return BRAID_OK;
    case GGML_TYPE_F32:
    case GGML_TYPE_I32: *out = n * 4; return BRAID_OK;
    case GGML_TYPE_F64:
    case GGML_TYPE_I64: *out = n * 8; return BRAID_OK;
    case GGML_TYPE_Q8_0:
        if (cols % 32) return braid_fail(BRAID_ERR_FORMAT, "Q8_0 needs ne[0] %% 32 == 0, got %llu", (unsigned long long)cols);
        *out = n / 32 * 34;
        return BRAID_OK;
    case BRAID_GGUF_TYPE_BT2:
        if (cols % BT2_GROUP)
            return braid_fail(BRAID_ERR_FORMAT, "BT2 needs ne[0] %% %d == 0, got %llu", BT2_GROUP, (unsigned long long)cols);
        *out = bt2_bytes((int64_t)rows, (int64_t)cols);
        return BRAID_OK;
    default: return braid_fail(BRAID_ERR_FORMAT, "unsupported tensor type %u", type);
    }
}

static int cmp_tensor_name(const void *a, const void *b) {
    return str_cmp((*(const gguf_tensor *const *)a)->name, (*(const gguf_tensor *const *)b)->name);
}
static int cmp_tensor_off(const void *a, const void *b) {
    uint64_t x = (*(const gguf_tensor *const *)a)->offset, y = (*(const gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}
static int cmp_kv_key(const void *a, const void *b) {
    return str_cmp((*(const gguf_kv *const *)a)->key, (*(const gguf_kv *const *)b)->key);
}

/* Uniqueness of keys and names, and non-overlap of tensor data (sort a pointer array). */
static int32_t check_unique(gguf_file *f, const char *label) {
    size_t n = (size_t)BRAID_MAX(f->n_kv, f->n_tensors);
    if (n < 2) return BRAID_OK;
    const void **p = malloc(n * sizeof *p);
    if (!p) return braid_fail(BRAID_ERR_NOMEM, "gguf %s: out of memory", label);
    int32_t st = BRAID_OK;
    for (uint64_t i = 0; i < f->n_kv; i++) p[i] = &f->kv[i];
    qsort(p, (size_t)f->n_kv, sizeof *p, cmp_kv_key);
    for (uint64_t i = 1; i < f->n_kv && !st; i++) {
        const gguf_kv *a = p[i - 1], *b = p[i];
        if (str_cmp(a->key, b->key) == 0)
            st = braid_fail(BRAID_ERR_FORMAT, "gguf %s: duplicate key '%.*s'", label, (int)a->key.len, a->key.ptr);
    }
    for (uint64_t i = 0; i < f->n_tensors && !st; i++) p[i] = &f->tensors[i];
    if (!st) qsort(p, (size_t)f->n_tensors, sizeof *p, cmp_tensor_name);
    for (uint64_t i = 1; i < f->n_tensors && !st; i++) {
        const gguf_tensor *a = p[i - 1], *b = p[i];
        if (str_cmp(a->name, b->name) == 0)
            st = braid_fail(BRAID_ERR_FORMAT, "gguf %s: duplicate tensor '%.*s'", label, (int)a->name.len, a->name.ptr);
    }
    if (!st) qsort(p, (size_t)f->n_tensors, sizeof *p, cmp_tensor_off);
    for (uint64_t i = 1; i < f->n_tensors && !st; i++) {
        const gguf_tensor *a = p[i - 1], *b = p[i];
        if (b->offset < a->offset + a->nbytes)
            st = braid_fail(BRAID_ERR_FORMAT, "gguf %s: tensors '%.*s' and '%.*s' overlap", label, (int)a->name.len,
                            a->name.ptr, (int)b->name.len, b->name.ptr);
    }
    free(p);
    return st;
}

static int32_t parse_kv(cursor *c, gguf_kv *kv, uint64_t i) {
    char what[64];
    snprintf(what, sizeof what, "the key of metadata entry %llu", (unsigned long long)i);
    int32_t st = rd_str(c, &kv->key, 65535, what);
    if (st) return st;
    if (kv->key.len == 0)
        return braid_fail(BRAID_ERR_FORMAT, "gguf %s: metadata entry %llu has an empty key", c->label,
                          (unsigned long long)i);
    char key[96];
    snprintf(key, sizeof key, "%.*s", (int)BRAID_MIN(kv->key.len, 80), kv->key.ptr);
    if ((st = rd_u32(c, &kv->type, "a metadata value type"))) return st;
    kv->val_off = c->off;
    if (kv->type == GGUF_TYPE_STRING) {
        if ((st = rd_str(c, &kv->str, GGUF_MAX_STRING, "a string value"))) return st;
        return BRAID_OK;
    }
    if (kv->type == GGUF_TYPE_ARRAY) {
        cursor peek = *c;
        if ((st = rd_u32(&peek, &kv->arr_type, "an array element type"))) return st;
        if ((st = rd_u64(&peek, &kv->arr_n, "an array length"))) return st;
        kv->arr_off = peek.off;
    }
    return skip_value(c, kv->type, 0, key);
}

static int32_t parse_tensor(cursor *c, gguf_tensor *t, uint64_t i) {
    char what[64];
    snprintf(what, sizeof what, "the name of tensor %llu", (unsigned long long)i);
    int32_t st = rd_str(c, &t->name, GGUF_MAX_NAME, what);
    if (st) return st;
    int nl = (int)t->name.len;
    if (nl == 0) return braid_fail(BRAID_ERR_FORMAT, "gguf %s: tensor %llu has an empty name", c->label, (unsigned long long)i);
    if ((st = rd_u32(c, &t->n_dims, "a tensor's dimension count"))) return st;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return braid_fail(BRAID_ERR_FORMAT, "gguf %s: tensor '%.*s' has %u dimensions (1..%d allowed)", c->label, nl,
                          t->name.ptr, t->n_dims, GGUF_MAX_DIMS);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v = 0;
        if ((st = rd_u64(c, &v, "a tensor dimension"))) return st;
        if (v < 1 || v > (uint64_t)GGUF_MAX_DIM_SIZE)
            return braid_fail(BRAID_ERR_FORMAT, "gguf %s: tensor '%.*s' dimension %u is %llu", c->label, nl,
                              t->name.ptr, d, (unsigned long long)v);
        t->ne[d] = (int64_t)v;
    }
    if ((st = rd_u32(c, &t->type, "a tensor type"))) return st;
    if ((st = rd_u64(c, &t->offset, "a tensor offset"))) return st;
    if (gguf_tensor_nbytes(t->type, t->ne, t->n_dims, &t->nbytes)) {
        char why[160];
        snprintf(why, sizeof why, "%s", braid_last_error()); /* braid_fail overwrites the message buffer */
        return braid_fail(BRAID_ERR_FORMAT, "gguf %s: tensor '%.*s' (type %u %s): %s", c->label, nl, t->name.ptr,
                          t->type, gguf_type_name(t->type), why);
    }
    return BRAID_OK;
}

int32_t gguf_parse(gguf_file **out, const uint8_t *buf, size_t size, const char *label) {
    if (!out || (!buf && size)) return braid_fail(BRAID_ERR_INVALID_ARG, "gguf_parse: NULL argument");
    *out = NULL;
    if (!label) label = "<buffer>";
    cursor c = {buf, size, 0, label};
    uint32_t magic = 0, version = 0;
    uint64_t n_tensors = 0, n_kv = 0;
    int32_t st;
    if ((st = rd_u32(&c, &magic, "the magic"))) return st;
    if (magic != GGUF_MAGIC) return braid_fail(BRAID_ERR_FORMAT, "gguf %s: not a GGUF file (bad magic 0x%08x)", label, magic);
    if ((st = rd_u32(&c, &version, "the version"))) return st;
    if (version != 2 && version != 3)
        return braid_fail(BRAID_ERR_FORMAT, "gguf %s: unsupported GGUF version %u (need 3)", label, version);
    if ((st = rd_u64(&c, &n_tensors, "the tensor count"))) return st;
    if ((st = rd_u64(&c, &n_kv, "the metadata count"))) return st;
    /* Each entry takes at least 14 (kv) / 33 (tensor) bytes: caps allocations by the file size. */
    size_t remain = size - c.off;
    if (n_kv > remain / 14)
        return braid_fail(BRAID_ERR_FORMAT, "gguf %s: metadata count %llu cannot fit in %zu bytes", label,
                          (unsigned long long)n_kv, remain);
    if (n_tensors > remain / 33)
        return braid_fail(BRAID_ERR_FORMAT, "gguf %s: tensor count %llu cannot fit in %zu bytes", label,
                          (unsigned long long)n_tensors, remain);

    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return braid_fail(BRAID_ERR_NOMEM, "gguf %s: out of memory", label);
    f->base = buf;
    f->size = size;
    f->version = version;
    f->n_kv = n_kv;
    f->n_tensors = n_tensors;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    f->kv = calloc((size_t)n_kv + 1, sizeof *f->kv);
    f->tensors = calloc((size_t)n_tensors + 1, sizeof *f->tensors);
    if (!f->kv || !f->tensors) {
        gguf_close(f);
        return braid_fail(BRAID_ERR_NOMEM, "gguf %s: out of memory", label);
    }
    for (uint64_t i = 0; i < n_kv; i++)
        if ((st = parse_kv(&c, &f->kv[i], i))) goto fail;

    const gguf_kv *al = gguf_find_kv(f, "general.alignment");
    if (al) {
        uint32_t a;
        if (al->type != GGUF_TYPE_UINT32) {
            st = braid_fail(BRAID_ERR_FORMAT, "gguf %s: general.alignment must be u32 (type %u)", label, al->type);
            goto fail;
        }
        memcpy(&a, buf + al->val_off, 4);
        if (a == 0 || (a & (a - 1)) || a > (1u << 16)) {
            st = braid_fail(BRAID_ERR_FORMAT, "gguf %s: general.alignment %u is not a power of two <= 65536", label, a);
            goto fail;
        }
        f->alignment = a;
    }

    for (uint64_t i = 0; i < n_tensors; i++)
        if ((st = parse_tensor(&c, &f->tensors[i], i))) goto fail;

    /* The data section starts at the next alignment boundary after the header. */
    size_t data_off = (c.off + f->alignment - 1) / f->alignment * f->alignment;
    if (n_tensors > 0 && data_off > size) {
        st = braid_fail(BRAID_ERR_FORMAT, "gguf %s: truncated: tensor data would start at byte %zu of %zu", label,
                        data_off, size);
        goto fail;
    }
    f->data_offset = data_off;
    uint64_t avail = data_off <= size ? (uint64_t)(size - data_off) : 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        int nl = (int)t->name.len;
        if (t->offset % f->alignment) {
            st = braid_fail(BRAID_ERR_FORMAT, "gguf %s: tensor '%.*s' offset %llu is not a multiple of the alignment %u",
                            label, nl, t->name.ptr, (unsigned long long)t->offset, f->alignment);
            goto fail;
        }
        if (t->offset > avail || t->nbytes > avail - t->offset) {
            st = braid_fail(BRAID_ERR_FORMAT,
                            "gguf %s: tensor '%.*s' data [%llu, +%llu) runs past the end of the file (%llu data bytes)",
                            label, nl, t->name.ptr, (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                            (unsigned long long)avail);
            goto fail;
        }
        t->data = buf + data_off + t->offset;
        f->data_bytes += t->nbytes;
    }
    if ((st = check_unique(f, label))) goto fail;
    *out = f;
    return BRAID_OK;
fail:
    gguf_close(f);
    return st;
}

int32_t gguf_open(gguf_file **out, const char *path) {
    if (!out || !path) return braid_fail(BRAID_ERR_INVALID_ARG, "gguf_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return braid_fail(BRAID_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return braid_fail(BRAID_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return braid_fail(BRAID_ERR_IO, "'%s' is not a regular file", path);
    }
    if (sb.st_size < 24) {
        close(fd);
        return braid_fail(BRAID_ERR_FORMAT, "gguf %s: file too small (%lld bytes) for a GGUF header", path,
                          (long long)sb.st_size);
    }
    size_t size = (size_t)sb.st_size;
    void *base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (base == MAP_FAILED) return braid_fail(BRAID_ERR_IO, "cannot map '%s': %s", path, strerror(e));
    gguf_file *f;
    int32_t st = gguf_parse(&f, base, size, path);
    if (st) {
        munmap(base, size);
        return st;
    }
    f->mapped = 1;
    *out = f;
    return BRAID_OK;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, f->size);
    free(f->kv);
    free(f->tensors);
    free(f);
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (gguf_str_eq(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (gguf_str_eq(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

int32_t gguf_get_int(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return braid_fail(BRAID_ERR_FORMAT, "missing metadata key '%s'", key);
    const uint8_t *p = f->base + kv->val_off;
    switch (kv->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_BOOL: *out = *p; return BRAID_OK;
    case GGUF_TYPE_INT8: *out = (int8_t)*p; return BRAID_OK;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return BRAID_OK; }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return BRAID_OK; }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); *out = v; return BRAID_OK; }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; return BRAID_OK; }
    case GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); *out = v; return BRAID_OK; }
    case GGUF_TYPE_UINT64: {
        uint64_t v = 0;
        memcpy(&v, p, 8);
        if (v > (uint64_t)INT64_MAX) return braid_fail(BRAID_ERR_FORMAT, "metadata key '%s' value is too large", key);
        *out = (int64_t)v;
        return BRAID_OK;
    }
    default: return braid_fail(BRAID_ERR_FORMAT, "metadata key '%s' must be an integer (type %u)", key, kv->type);
    }
}

int32_t gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return braid_fail(BRAID_ERR_FORMAT, "missing metadata key '%s'", key);
    if (kv->type == GGUF_TYPE_FLOAT32) {
        memcpy(out, f->base + kv->val_off, 4);
        return BRAID_OK;
    }
    if (kv->type == GGUF_TYPE_FLOAT64) {
        double d;
        memcpy(&d, f->base + kv->val_off, 8);
        *out = (float)d;
        return BRAID_OK;
    }
    return braid_fail(BRAID_ERR_FORMAT, "metadata key '%s' must be a float (type %u)", key, kv->type);
}

int32_t gguf_get_int_in(const gguf_file *f, const char *key, int64_t lo, int64_t hi, int32_t *out) {
    int64_t v;
    int32_t st = gguf_get_int(f, key, &v);
    if (st) return st;
    if (v < lo || v > hi)
        return braid_fail(BRAID_ERR_FORMAT, "metadata %s = %lld is outside [%lld, %lld]", key, (long long)v,
                          (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return BRAID_OK;
}

int32_t gguf_get_f32_in(const gguf_file *f, const char *key, float lo, float hi, float *out) {
    int32_t st = gguf_get_f32(f, key, out);
    if (st) return st;
    if (!(*out > lo && *out < hi))
        return braid_fail(BRAID_ERR_FORMAT, "metadata %s = %g is not in (%g, %g)", key, (double)*out, (double)lo,
                          (double)hi);
    return BRAID_OK;
}

int32_t gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return braid_fail(BRAID_ERR_FORMAT, "missing metadata key '%s'", key);
    if (kv->type != GGUF_TYPE_STRING)
        return braid_fail(BRAID_ERR_FORMAT, "metadata key '%s' must be a string (type %u)", key, kv->type);
    *out = kv->str;
    return BRAID_OK;
}

int32_t gguf_arr_str(const gguf_file *f, const gguf_kv *kv, uint64_t i, gguf_str *out) {
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING)
        return braid_fail(BRAID_ERR_FORMAT, "metadata key '%.*s' must be an array of strings", (int)kv->key.len,
                          kv->key.ptr);
    if (i >= kv->arr_n)
        return braid_fail(BRAID_ERR_FORMAT, "metadata key '%.*s' has %llu elements, wanted element %llu",
                          (int)kv->key.len, kv->key.ptr, (unsigned long long)kv->arr_n, (unsigned long long)i);
    /* Already validated by gguf_parse, so the walk stays inside the buffer. */
    size_t off = kv->arr_off;
    for (uint64_t j = 0;; j++) {
        uint64_t len;
        memcpy(&len, f->base + off, 8);
        if (j == i) {
            out->ptr = (const char *)f->base + off + 8;
            out->len = len;
            return BRAID_OK;
        }
        off += 8 + (size_t)len;
    }
}

int32_t gguf_arr_int(const gguf_file *f, const gguf_kv *kv, uint64_t i, int64_t *out) {
    size_t size;
    switch (kv->type == GGUF_TYPE_ARRAY ? kv->arr_type : GGUF_TYPE_COUNT) {
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_UINT32: size = 4; break;
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_UINT64: size = 8; break;
    default:
        return braid_fail(BRAID_ERR_FORMAT, "metadata key '%.*s' must be an array of 32/64-bit integers",
                          (int)kv->key.len, kv->key.ptr);
    }
    if (i >= kv->arr_n)
        return braid_fail(BRAID_ERR_FORMAT, "metadata key '%.*s' has %llu elements, wanted element %llu",
                          (int)kv->key.len, kv->key.ptr, (unsigned long long)kv->arr_n, (unsigned long long)i);
    const uint8_t *p = f->base + kv->arr_off + i * size;
    switch (kv->arr_type) {
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; break; }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); *out = v; break; }
    case GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); *out = v; break; }
    default: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > (uint64_t)INT64_MAX)
            return braid_fail(BRAID_ERR_FORMAT, "metadata key '%.*s' element %llu is too large", (int)kv->key.len,
                              kv->key.ptr, (unsigned long long)i);
        *out = (int64_t)v;
    }
    }
    return BRAID_OK;
}
