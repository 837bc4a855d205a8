/*
 * cpu.c — picks the kernel table once at load: the best ISA this CPU and OS
 * support (CPUID feature bits and the XCR0 state the OS saves), unless
 * BRAID_ISA ("ref", "avx2", "avx512") forces one.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define CPU_X86 1
#endif

static int g_available[3] = {1, 0, 0};
static _Atomic int32_t g_active = BRAID_ISA_REF;
static char g_model[64] = "unknown";

#ifdef CPU_X86
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    unsigned max_leaf = a;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    unsigned ecx1 = c;
    int osxsave = (ecx1 >> 27) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6;       /* XMM + YMM state */
    int os_avx512 = (xcr0 & 0xe6) == 0xe6;  /* + opmask, ZMM_Hi256, Hi16_ZMM */
    unsigned ebx7 = 0, ecx7 = 0;
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        ebx7 = b;
        ecx7 = c;
    }
    unsigned ecx81 = 0;
    if (__get_cpuid(0x80000001, &a, &b, &c, &d)) ecx81 = c;

    /* The AVX2 file is compiled for haswell: AVX2 FMA F16C + BMI1/2 LZCNT MOVBE. */
    int avx2 = os_avx && ((ecx1 >> 28) & 1) /* AVX */ && ((ecx1 >> 12) & 1) /* FMA */ &&
               ((ecx1 >> 29) & 1) /* F16C */ && ((ecx1 >> 22) & 1) /* MOVBE */ && ((ebx7 >> 5) & 1) /* AVX2 */ &&
               ((ebx7 >> 3) & 1) /* BMI1 */ && ((ebx7 >> 8) & 1) /* BMI2 */ && ((ecx81 >> 5) & 1) /* LZCNT */;
    /* The AVX-512 file is compiled for x86-64-v4 (F CD BW DQ VL) + VNNI + GFNI. */
    int avx512 = avx2 && os_avx512 && ((ebx7 >> 16) & 1) /* F */ && ((ebx7 >> 17) & 1) /* DQ */ &&
                 ((ebx7 >> 28) & 1) /* CD */ && ((ebx7 >> 30) & 1) /* BW */ && ((ebx7 >> 31) & 1) /* VL */ &&
                 ((ecx7 >> 11) & 1) /* VNNI */ && ((ecx7 >> 8) & 1) /* GFNI */;
    g_available[BRAID_ISA_AVX2] = avx2;
    g_available[BRAID_ISA_AVX512] = avx512;

    unsigned brand[12];
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
        for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1],
                                                     &brand[4 * i + 2], &brand[4 * i + 3]);
        char s[49];
        memcpy(s, brand, 48);
        s[48] = '\0';
        char *p = s;
        while (*p == ' ') p++;
        size_t n = strlen(p);
        while (n && p[n - 1] == ' ') p[--n] = '\0';
        if (n) {
            /* JSON-safe: braid_system_info embeds it without escaping. */
            for (char *q = p; *q; q++)
                if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20) *q = ' ';
            strncpy(g_model, p, sizeof g_model - 1);
        }
    }
}
#else
static void detect(void) {}
#endif

static const kernel_table *const g_tables[3] = {&kernels_ref, &kernels_avx2, &kernels_avx512};

__attribute__((constructor)) static void cpu_init(void) {
    detect();
    int32_t best = g_available[BRAID_ISA_AVX512] ? BRAID_ISA_AVX512
                   : g_available[BRAID_ISA_AVX2] ? BRAID_ISA_AVX2
                                                 : BRAID_ISA_REF;
    const char *force = getenv("BRAID_ISA");
    if (force && *force) {
        int32_t want = strcmp(force, "ref") == 0      ? BRAID_ISA_REF
                       : strcmp(force, "avx2") == 0   ? BRAID_ISA_AVX2
                       : strcmp(force, "avx512") == 0 ? BRAID_ISA_AVX512
                                                      : -1;
        if (want >= 0 && g_available[want]) best = want;
        /* An unknown or unsupported value keeps the best ISA (no logger is set yet at load). */
    }
    atomic_store(&g_active, best);
}

const kernel_table *kernels(void) { return g_tables[atomic_load_explicit(&g_active, memory_order_relaxed)]; }

int cpu_isa_available(int32_t isa) { return isa >= 0 && isa <= 2 && g_available[isa]; }

int32_t cpu_isa_active(void) { return atomic_load(&g_active); }

int32_t cpu_isa_select(int32_t isa) {
    if (isa < 0 || isa > 2) return braid_fail(BRAID_ERR_INVALID_ARG, "unknown ISA id %d", isa);
    if (!g_available[isa])
        return braid_fail(BRAID_ERR_UNSUPPORTED, "this CPU does not support ISA %s", g_tables[isa]->name);
    atomic_store(&g_active, isa);
    return BRAID_OK;
}

const kernel_table *cpu_isa_table(int32_t isa) { return isa >= 0 && isa <= 2 ? g_tables[isa] : NULL; }

const char *cpu_model_name(void) { return g_model; }
