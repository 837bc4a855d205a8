/*
 * library.c — library-level entry points: pool start-up, ISA choice, system info.
 */
#include <stdio.h>

#include "common.h"
#include "kernels.h"
#include "threadpool.h"

#define BRAID_VERSION "0.1.0"

BRAID_API int32_t braid_init(int32_t n_threads) {
    int32_t st = pool_init(n_threads);
    if (st == BRAID_OK) braid_clear_error();
    return st;
}

BRAID_API int32_t braid_thread_count(void) { return pool_threads(); }

BRAID_API int32_t braid_isa_get(void) { return cpu_isa_active(); }

BRAID_API int32_t braid_isa_set(int32_t isa) {
    int32_t st = cpu_isa_select(isa);
    if (st == BRAID_OK) braid_clear_error();
    return st;
}

BRAID_API const char *braid_system_info(void) {
    static _Thread_local char buf[512];
    char avail[64] = "";
    size_t len = 0;
    for (int32_t isa = BRAID_ISA_REF; isa <= BRAID_ISA_AVX512; isa++) {
        if (!cpu_isa_available(isa)) continue;
        len += (size_t)snprintf(avail + len, sizeof avail - len, "%s\"%s\"", len ? "," : "", cpu_isa_table(isa)->name);
    }
    snprintf(buf, sizeof buf, "{\"version\":\"%s\",\"isa\":\"%s\",\"isa_available\":[%s],\"threads\":%d,\"cpu\":\"%s\"}",
             BRAID_VERSION, kernels()->name, avail, (int)pool_threads(), cpu_model_name());
    return buf;
}
