/*
 * error.c — the thread-local error message, the log sink and aligned allocation.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

#define ERROR_CAP 512
#define LOG_CAP 1024

static _Thread_local char g_error[ERROR_CAP];
static _Atomic(braid_log_fn) g_log_fn = NULL;

int32_t braid_fail(int32_t status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error, sizeof g_error, fmt, ap);
    va_end(ap);
    return status;
}

void braid_clear_error(void) { g_error[0] = '\0'; }

BRAID_API const char *braid_last_error(void) { return g_error; }

BRAID_API void braid_log_set(braid_log_fn fn) { atomic_store(&g_log_fn, fn); }

void braid_log(int32_t level, const char *fmt, ...) {
    braid_log_fn fn = atomic_load(&g_log_fn);
    if (!fn) return;
    char msg[LOG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(level, msg);
}

void *aligned_alloc64(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}

void aligned_free(void *p) { free(p); }
