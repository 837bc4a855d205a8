/*
 * gguf.h — a GGUF v3 reader over a read-only mapping (private).
 *
 * gguf_open maps a file, gguf_parse reads a buffer the caller owns. Either
 * validates the whole header before returning: every offset, length and count
 * is checked against the buffer size with overflow-safe arithmetic, strings
 * and arrays have sane caps, keys and tensor names are unique, tensor data is
 * aligned, inside the file and non-overlapping. Anything wrong is
 * BRAID_ERR_FORMAT with a message naming what and where.
 *
 * Strings point into the mapping and are NOT NUL-terminated (gguf_str).
 */
#ifndef BRAID_GGUF_H
#define BRAID_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* Metadata value types (GGUF spec). */
enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT = 13,
};

/* Tensor types this reader can size (ggml ids plus braid's BT2 = 1024, kernels.h). */
enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_I8 = 24,
    GGML_TYPE_I16 = 25,
    GGML_TYPE_I32 = 26,
    GGML_TYPE_I64 = 27,
    GGML_TYPE_F64 = 28,
    GGML_TYPE_BF16 = 30,
};

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME 256                 /* tensor name bytes */
#define GGUF_MAX_STRING (64u << 20)       /* any metadata string */
#define GGUF_MAX_ARRAY_DEPTH 4            /* arrays of arrays of ... */
#define GGUF_MAX_DIM_SIZE ((int64_t)1 << 40)

typedef struct {
    const char *ptr; /* into the buffer; not NUL-terminated */
    uint64_t len;
} gguf_str;

typedef struct {
    gguf_str key;
    uint32_t type;     /* GGUF_TYPE_* */
    size_t val_off;    /* file offset of the value (scalars, string length prefix) */
    gguf_str str;      /* type == STRING */
    uint32_t arr_type; /* type == ARRAY: element type */
    uint64_t arr_n;    /* type == ARRAY: element count */
    size_t arr_off;    /* type == ARRAY: file offset of element 0 */
} gguf_kv;

typedef struct {
    gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] fastest; unused dims are 1 */
    uint32_t type;             /* GGML_TYPE_* or BRAID_GGUF_TYPE_BT2 */
    uint64_t offset;           /* relative to the data section */
    uint64_t nbytes;
    const uint8_t *data;       /* into the buffer, aligned as the file says */
} gguf_tensor;

typedef struct gguf_file {
    const uint8_t *base; /* the whole file */
    size_t size;
    int mapped;          /* 1: base is our mmap (unmapped by gguf_close) */
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv;
    uint64_t n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    size_t data_offset;  /* start of the tensor data section */
    uint64_t data_bytes; /* sum of tensor nbytes */
} gguf_file;

/* Maps path read-only and parses it. */
int32_t gguf_open(gguf_file **out, const char *path);
/* Parses buf[0..size) without copying; buf must outlive the result. label names it in messages. */
int32_t gguf_parse(gguf_file **out, const uint8_t *buf, size_t size, const char *label);
void gguf_close(gguf_file *f);

/* Bytes of a tensor of this type and shape; BRAID_ERR_FORMAT for an unknown
 * type or a shape the type cannot hold (e.g. BT2 with ne[0] % 128 != 0). */
int32_t gguf_tensor_nbytes(uint32_t type, const int64_t *ne, uint32_t n_dims, uint64_t *out);
const char *gguf_type_name(uint32_t type);

/* Compares a gguf_str with a C string. */
int gguf_str_eq(gguf_str s, const char *c);

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed getters: BRAID_ERR_FORMAT naming the key if it is missing or of the wrong type.
 * get_int accepts any integer type whose value fits int64; get_f32 accepts F32 or F64. */
int32_t gguf_get_int(const gguf_file *f, const char *key, int64_t *out);
int32_t gguf_get_f32(const gguf_file *f, const char *key, float *out);
int32_t gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Range-checked getters for model loaders: an integer in [lo, hi] (as int32), a float in the
 * open interval (lo, hi); outside it, BRAID_ERR_FORMAT naming the key and the value. */
int32_t gguf_get_int_in(const gguf_file *f, const char *key, int64_t lo, int64_t hi, int32_t *out);
int32_t gguf_get_f32_in(const gguf_file *f, const char *key, float lo, float hi, float *out);
/* Element i of an array of strings (walks from the start: O(i)). */
int32_t gguf_arr_str(const gguf_file *f, const gguf_kv *kv, uint64_t i, gguf_str *out);
/* Element i of an array of INT32/UINT32/INT64/UINT64 (fits int64). */
int32_t gguf_arr_int(const gguf_file *f, const gguf_kv *kv, uint64_t i, int64_t *out);

#endif /* BRAID_GGUF_H */
