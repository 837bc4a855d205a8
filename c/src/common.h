/*
 * common.h — private helpers shared by every libbraid source file.
 */
#ifndef BRAID_COMMON_H
#define BRAID_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "../include/braid.h"

/* Records a readable message for braid_last_error() on this thread and
 * returns status, so call sites read `return braid_fail(BRAID_ERR_FORMAT, "...", ...);`. */
int32_t braid_fail(int32_t status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clears the thread's message (called at the start of public entry points that succeed). */
void braid_clear_error(void);
/* Logs through the callback set by braid_log_set (no-op when none is set). */
void braid_log(int32_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 64-byte aligned allocation for SIMD scratch (free with aligned_free). Returns NULL on failure. */
void *aligned_alloc64(size_t bytes);
void aligned_free(void *p);

#define BRAID_MIN(a, b) ((a) < (b) ? (a) : (b))
#define BRAID_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* BRAID_COMMON_H */
