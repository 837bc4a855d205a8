/*
 * sgemm.c — the FP32 GEMM driver: the reference loop, ISA choice, cache
 * blocking, packing scratch, threading; and the portable micro-kernel that
 * runs when the CPU has neither AVX2 nor AVX-512 (or BRAID_ISA=ref).
 *
 * Loop order (the steps are shared by the threads, see "scheduling"):
 *   jc: nc_max columns      — the packed B block (kc x nc) lives in L2
 *     pc: kc_max steps of K — one step: pack the B block once
 *       ic: mc rows         — pack an A block (mc x kc, mc/mr panels)
 *         ir: mr rows       — one A panel (mr x kc) stays in L1
 *           jr: nr columns  — micro-kernel: A panel x B panel streamed from L2
 * C is updated once per K block: the first with the caller's beta, the rest
 * with beta = 1. K is never split across threads, and the k order of every
 * element is fixed by kc_max alone, so any split of C gives the same bits.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels.h"
#include "sgemm.h"
#include "threadpool.h"

/* op(X)(r, c) of a row-major X with row stride ld, stored transposed when trans. */
static inline const float *op_at(const float *X, int64_t ld, int trans, int64_t r, int64_t c) {
    return trans ? X + c * ld + r : X + r * ld + c;
}

/* ---- reference ------------------------------------------------------------------ */

/* C[i0..i1, j0..j1) of the reference (also the out-of-memory fallback of a thread). */
static void ref_block(int trans_a, int trans_b, int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                      int64_t ldb, float beta, float *C, int64_t ldc, int64_t i0, int64_t i1, int64_t j0,
                      int64_t j1) {
    for (int64_t i = i0; i < i1; i++)
        for (int64_t j = j0; j < j1; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)*op_at(A, lda, trans_a, i, k) * (double)*op_at(B, ldb, trans_b, k, j);
            float *c = C + i * ldc + j;
            *c = beta == 0 ? (float)(alpha * s) : (float)(alpha * s + (double)beta * *c);
        }
}

/* C = beta * C, the whole job when alpha == 0 or K == 0 (A and B are not read). */
static void scale_c(float *C, int64_t ldc, int64_t M, int64_t N, float beta) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0 ? 0.0f : beta * C[i * ldc + j];
}

void sgemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (alpha == 0 || K <= 0) {
        scale_c(C, ldc, M, N, beta);
        return;
    }
    ref_block(trans_a, trans_b, K, alpha, A, lda, B, ldb, beta, C, ldc, 0, M, 0, N);
}

/* ---- portable micro-kernel (the "ref" ISA) ----------------------------------------
 * 4 x 16 in plain C: the compiler vectorizes the 16-wide rows with whatever
 * the baseline target has (SSE2). fp-contract is off, so this rounds the
 * product and the sum separately where the SIMD kernels fuse them. */

#define REF_MR 4
#define REF_NR 16
#define REF_MC 32
#define REF_KC 256
#define REF_NC 512

static void pack_a_ref(float *Ap, int64_t ldp, const float *A, int64_t lda, int trans_a, int64_t m, int64_t kc) {
    for (int64_t p = 0; p * REF_MR < m; p++) {
        float *panel = Ap + p * ldp; /* [kc][REF_MR] */
        for (int64_t k = 0; k < kc; k++)
            for (int64_t r = 0; r < REF_MR; r++) {
                int64_t i = p * REF_MR + r;
                panel[k * REF_MR + r] = i < m ? *op_at(A, lda, trans_a, i, k) : 0.0f;
            }
    }
}

static void pack_b_ref(float *Bp, const float *B, int64_t ldb, int trans_b, int64_t kc, int64_t n) {
    for (int64_t p = 0; p * REF_NR < n; p++) {
        float *panel = Bp + p * kc * REF_NR; /* [kc][REF_NR] */
        for (int64_t k = 0; k < kc; k++)
            for (int64_t c = 0; c < REF_NR; c++) {
                int64_t j = p * REF_NR + c;
                panel[k * REF_NR + c] = j < n ? *op_at(B, ldb, trans_b, k, j) : 0.0f;
            }
    }
}

static void kernel_ref(float *C, int64_t ldc, const float *Ap, const float *Bp, int64_t kc, int64_t m, int64_t n,
                       float alpha, float beta) {
    float acc[REF_MR][REF_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++)
        for (int r = 0; r < REF_MR; r++) {
            float a = Ap[k * REF_MR + r];
            for (int c = 0; c < REF_NR; c++) acc[r][c] += a * Bp[k * REF_NR + c];
        }
    for (int64_t r = 0; r < m; r++)
        for (int64_t c = 0; c < n; c++) {
            float *y = C + r * ldc + c;
            *y = beta == 0 ? alpha * acc[r][c] : alpha * acc[r][c] + beta * *y;
        }
}

const sgemm_isa sgemm_isa_ref = {"ref", REF_MR, REF_NR, REF_MC, REF_KC, REF_NC, pack_a_ref, pack_b_ref, kernel_ref};

/* ---- scratch ------------------------------------------------------------------------------
 * Packed A: two blocks per pool thread slot (the `thread` argument of a pool
 * job): the one the kernels read and the next one being packed. Packed B: one
 * double buffer shared by the threads of the running call. Pool jobs run one
 * at a time, so a slot or the B buffer is only ever touched by the job that is
 * running; each is allocated inside the job (slot t by thread t, B by thread
 * 0) the first time it is needed, grown only if an ISA with bigger blocks is
 * selected later, and never freed: the sizes are bounded by the block
 * constants (~115 KB per thread and 1 MB), not by the shapes. */

#define MAX_THREADS 256 /* POOL_MAX_THREADS of threadpool.c */

typedef struct {
    float *buf;
    size_t floats;
} scratch;

static scratch g_apack[MAX_THREADS]; /* [2][apack_floats] per thread */
static scratch g_bpack;              /* [2][bpack_floats] */

static float *scratch_get(scratch *s, size_t floats) {
    if (s->floats < floats) {
        float *p = aligned_alloc64(floats * sizeof(float));
        if (!p) return NULL;
        aligned_free(s->buf);
        s->buf = p;
        s->floats = floats;
    }
    return s->buf;
}

/* Floats between two packed A panels (the slack takes pack_a's spill) and of one A block. */
static int64_t apanel_floats(const sgemm_isa *isa) { return isa->kc_max * isa->mr + SGEMM_PACK_SLACK; }
static size_t apack_floats(const sgemm_isa *isa) { return (size_t)(isa->mc / isa->mr * apanel_floats(isa)); }
static size_t bpack_floats(const sgemm_isa *isa) { /* one buffer, rounded to 64 bytes */
    return (size_t)(isa->kc_max * isa->nc_max + 15) / 16 * 16;
}

/* ---- scheduling ----------------------------------------------------------------------------
 * One pool job per call; every pool thread runs it once and the threads walk
 * the steps (jc, pc) together:
 *   step s:  [barrier]  pack my share of step s+1's B block  |  run units of step s
 * B is packed once per step, shared, into one of two buffers (step s reads
 * buffer s%2 while s+1 is packed into the other), so one barrier per step
 * orders everything: a step's packing is finished before its units run, and a
 * buffer is reused only after every unit that read it is done.
 * A unit is one A block (mc rows) against a group of the step's B panels. The
 * units of a step start split into one contiguous range per thread (a thread
 * keeps the same rows of C through all K steps, so they stay in its cache);
 * a thread that runs out takes units from the others' ranges, so a core that
 * is shared with another process does not hold the whole call back. Which
 * thread runs a unit never changes its bits. */

static inline void spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

typedef struct {
    atomic_int arrived;
    atomic_int generation;
} spin_barrier;

/* Returns when all `parties` threads have arrived. Spins briefly, then yields
 * the core (the other party may be waiting for it on a shared machine). */
static void barrier_wait(spin_barrier *b, int32_t parties) {
    int gen = atomic_load_explicit(&b->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) == parties - 1) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->generation, 1, memory_order_release);
        return;
    }
    for (int spins = 0; atomic_load_explicit(&b->generation, memory_order_acquire) == gen; spins++) {
        if (spins < 4000)
            spin_pause();
        else
            sched_yield();
    }
}

typedef struct {
    const sgemm_isa *isa;
    int trans_a, trans_b;
    int64_t M, N, K;
    float alpha, beta;
    const float *A; /* op(A) [M,K] */
    const float *B; /* op(B) [K,N] */
    float *C;       /* [M,N] */
    int64_t lda, ldb, ldc;
    int64_t max_parties; /* threads worth waking for this much work */
    int64_t k_steps;     /* ceil(K / kc_max): steps per column block */
    int64_t steps;       /* ceil(N / nc_max) * k_steps */
    float *Bp;           /* [2][bpack_floats]: the packed B of steps s%2 == 0 and 1 */
    atomic_int failed;   /* a thread found no scratch */
    spin_barrier barrier;
    _Atomic int64_t next[2][MAX_THREADS]; /* per step parity: the next unit of each thread's range */
} sgemm_job;

/* The block of step s: columns [jc, jc + nc), depth [pc, pc + kc). */
typedef struct {
    int64_t jc, nc, pc, kc;
} step_block;

static step_block step_at(const sgemm_job *j, int64_t s) {
    const sgemm_isa *isa = j->isa;
    step_block b;
    b.jc = s / j->k_steps * isa->nc_max;
    b.pc = s % j->k_steps * isa->kc_max;
    b.nc = BRAID_MIN(isa->nc_max, j->N - b.jc);
    b.kc = BRAID_MIN(isa->kc_max, j->K - b.pc);
    return b;
}

/* Thread t of P packs its share (a contiguous run of panels) of step s's B block. */
static void pack_b_share(const sgemm_job *j, int64_t s, int32_t t, int32_t P) {
    const sgemm_isa *isa = j->isa;
    step_block b = step_at(j, s);
    int64_t np = (b.nc + isa->nr - 1) / isa->nr;
    int64_t p0 = np * t / P, p1 = np * (t + 1) / P;
    if (p0 >= p1) return;
    float *Bp = j->Bp + (size_t)(s & 1) * bpack_floats(isa); /* [np][kc][nr] */
    isa->pack_b(Bp + p0 * isa->nr * b.kc, op_at(j->B, j->ldb, j->trans_b, b.pc, b.jc + p0 * isa->nr), j->ldb,
                j->trans_b, b.kc, BRAID_MIN(b.nc, p1 * isa->nr) - p0 * isa->nr);
}

/* Column groups per step: enough units for every thread to have ~8 to share
 * (small M), at most one B panel per group. */
static int64_t column_groups(const sgemm_isa *isa, int64_t M, int64_t N, int32_t P) {
    int64_t blocks = (M + isa->mc - 1) / isa->mc;
    int64_t panels_n = (BRAID_MIN(N, isa->nc_max) + isa->nr - 1) / isa->nr;
    int64_t g = (8 * (int64_t)P + blocks - 1) / blocks;
    return BRAID_MAX(1, BRAID_MIN(g, panels_n));
}

/* The next unit of step s for thread t: its own range first, then the others'
 * in turn (*v: how many ranges it has emptied). -1 when none is left. */
static int64_t claim(sgemm_job *j, int64_t s, int32_t t, int32_t P, int64_t units, int32_t *v) {
    for (; *v < P; ++*v) {
        int32_t owner = (t + *v) % P;
        int64_t u = atomic_fetch_add_explicit(&j->next[s & 1][owner], 1, memory_order_relaxed);
        if (u < units * (owner + 1) / P) return u;
    }
    return -1;
}

/* A prefetch the optimizer must keep: GCC finds a function whose only effect is
 * __builtin_prefetch "const" and deletes the calls (prefetch_a would vanish). */
static inline void prefetch_line(const float *p) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p, 0, 3);
#endif
}

/* Prefetches the lines of A block rows [ic, ic + m) for steps [pc + k0, pc + k1). */
static void prefetch_a(const sgemm_job *j, int64_t ic, int64_t m, int64_t pc, int64_t k0, int64_t k1) {
    if (j->trans_a) { /* rows of A are steps: m contiguous floats each */
        for (int64_t k = k0; k < k1; k++) {
            const float *a = j->A + (pc + k) * j->lda + ic;
            for (int64_t x = 0; x < m; x += 16) prefetch_line(a + x);
            prefetch_line(a + m - 1);
        }
        return;
    }
    for (int64_t r = 0; r < m; r++) { /* rows of A are rows of the block: k1 - k0 contiguous floats each */
        const float *a = j->A + (ic + r) * j->lda + pc;
        for (int64_t k = k0; k < k1; k += 16) prefetch_line(a + k);
        prefetch_line(a + k1 - 1);
    }
}

/* Steps [k0, k1) of A block rows [ic, ic + m) into Ap (panels apanel_floats apart). */
static void pack_a_steps(const sgemm_job *j, float *Ap, int64_t ic, int64_t m, int64_t pc, int64_t k0, int64_t k1) {
    if (k0 >= k1) return;
    const sgemm_isa *isa = j->isa;
    isa->pack_a(Ap + k0 * isa->mr, apanel_floats(isa), op_at(j->A, j->lda, j->trans_a, ic, pc + k0), j->lda,
                j->trans_a, m, k1 - k0);
}

/* Runs units of step s until none is left.
 * The A block of a unit is packed while the kernels of the previous unit run:
 * the next unit is claimed ahead, and before each kernel call one k slice of
 * its block is packed and the slice after it prefetched. Packed in one go, a
 * block stalls on L3 or DRAM (A is read once per step, not cache resident in
 * the big shapes, and a transposed A reads a few lines from each of kc rows
 * lda apart); a slice prefetched one kernel call (~1 us) ahead is in cache. */
static void run_step(sgemm_job *j, int64_t s, int32_t t, int32_t P, int64_t groups, float *Ap2) {
    const sgemm_isa *isa = j->isa;
    step_block b = step_at(j, s);
    const float *Bp = j->Bp + (size_t)(s & 1) * bpack_floats(isa); /* [np][kc][nr] */
    int64_t np = (b.nc + isa->nr - 1) / isa->nr;
    int64_t units = (j->M + isa->mc - 1) / isa->mc * groups;
    float beta = b.pc == 0 ? j->beta : 1.0f;
    float *Ap[2] = {Ap2, Ap2 + apack_floats(isa)}; /* [mc/mr][apanel_floats] each */
    int cur = 0;                                   /* Ap[cur] holds the block of unit u */
    int32_t v = 0;
    int64_t u = claim(j, s, t, P, units, &v);
    if (u < 0) return;
    {
        int64_t ic = u / groups * isa->mc;
        pack_a_steps(j, Ap[cur], ic, BRAID_MIN(isa->mc, j->M - ic), b.pc, 0, b.kc);
    }
    while (u >= 0) {
        int64_t next = claim(j, s, t, P, units, &v);
        int64_t ic = u / groups * isa->mc, mc = BRAID_MIN(isa->mc, j->M - ic);
        int64_t g = u % groups, q0 = np * g / groups, q1 = np * (g + 1) / groups; /* this unit's B panels */
        /* the next block, unless it is this one (several column groups per block) */
        int64_t nic = next >= 0 && next / groups != u / groups ? next / groups * isa->mc : -1;
        int64_t nmc = nic >= 0 ? BRAID_MIN(isa->mc, j->M - nic) : 0;
        int64_t slices = BRAID_MAX(1, (mc + isa->mr - 1) / isa->mr * (q1 - q0)), slice = 0;
        if (nic >= 0) prefetch_a(j, nic, nmc, b.pc, 0, b.kc / slices);
        for (int64_t ir = 0; ir < mc; ir += isa->mr) {
            const float *a = Ap[cur] + ir / isa->mr * apanel_floats(isa); /* [kc][mr] */
            float *c = j->C + (ic + ir) * j->ldc + b.jc;
            int64_t m = BRAID_MIN(isa->mr, mc - ir);
            for (int64_t q = q0; q < q1; q++, slice++) {
                if (nic >= 0) {
                    if (slice + 1 < slices)
                        prefetch_a(j, nic, nmc, b.pc, b.kc * (slice + 1) / slices, b.kc * (slice + 2) / slices);
                    if (slice > 0)
                        pack_a_steps(j, Ap[cur ^ 1], nic, nmc, b.pc, b.kc * (slice - 1) / slices,
                                     b.kc * slice / slices);
                }
                int64_t jr = q * isa->nr;
                isa->kernel(c + jr, j->ldc, a, Bp + jr * b.kc, b.kc, m, BRAID_MIN(isa->nr, b.nc - jr), j->alpha,
                            beta);
            }
        }
        if (nic >= 0) { /* the slices not packed yet: the last one, or all when this unit had no kernels */
            pack_a_steps(j, Ap[cur ^ 1], nic, nmc, b.pc, b.kc * BRAID_MAX(0, slice - 1) / slices, b.kc);
            cur ^= 1;
        }
        u = next;
    }
}

/* The pool job: every pool thread runs it exactly once (see sgemm); threads
 * 0..P-1 take part, the others return at once. */
static void sgemm_thread(void *argp, int64_t i0, int64_t i1, int32_t t) {
    sgemm_job *j = argp;
    const sgemm_isa *isa = j->isa;
    int32_t P = (int32_t)BRAID_MIN(pool_threads(), j->max_parties); /* the pool cannot resize during a job */
    if (t >= P) return;
    float *Ap = t < MAX_THREADS ? scratch_get(&g_apack[t], 2 * apack_floats(isa)) : NULL; /* [2][block] */
    if (!Ap) atomic_store(&j->failed, 1);
    if (t == 0 && !(j->Bp = scratch_get(&g_bpack, 2 * bpack_floats(isa)))) atomic_store(&j->failed, 1);
    int64_t groups = column_groups(isa, j->M, j->N, P);
    int64_t units = (j->M + isa->mc - 1) / isa->mc * groups;
    atomic_store_explicit(&j->next[0][t], units * t / P, memory_order_relaxed);
    barrier_wait(&j->barrier, P);
    if (atomic_load(&j->failed)) { /* no scratch: the reference loop over a share of the rows */
        ref_block(j->trans_a, j->trans_b, j->K, j->alpha, j->A, j->lda, j->B, j->ldb, j->beta, j->C, j->ldc,
                  j->M * t / P, j->M * (t + 1) / P, 0, j->N);
        return;
    }
    pack_b_share(j, 0, t, P);
    for (int64_t s = 0; s < j->steps; s++) {
        barrier_wait(&j->barrier, P);
        if (s + 1 < j->steps) {
            atomic_store_explicit(&j->next[(s + 1) & 1][t], units * t / P, memory_order_relaxed);
            pack_b_share(j, s + 1, t, P);
        }
        run_step(j, s, t, P, groups, Ap);
    }
}

static const sgemm_isa *sgemm_active(void) {
    switch (cpu_isa_active()) {
    case BRAID_ISA_AVX512: return &sgemm_isa_avx512;
    case BRAID_ISA_AVX2: return &sgemm_isa_avx2;
    default: return &sgemm_isa_ref;
    }
}

void sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
           const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (alpha == 0 || K <= 0) {
        scale_c(C, ldc, M, N, beta);
        return;
    }
    const sgemm_isa *isa = sgemm_active();
    sgemm_job j = {.isa = isa, .trans_a = trans_a != 0, .trans_b = trans_b != 0, .M = M, .N = N, .K = K,
                   .alpha = alpha, .beta = beta, .A = A, .B = B, .C = C, .lda = lda, .ldb = ldb, .ldc = ldc};
    /* A barrier costs microseconds (more when a core is shared), so each thread
     * should get ~10 MFLOP (~50 us); small products run on one thread. */
    j.max_parties = (int64_t)BRAID_MAX(1.0, 2.0 * (double)M * (double)N * (double)K / 1e7);
    j.k_steps = (K + isa->kc_max - 1) / isa->kc_max;
    j.steps = (N + isa->nc_max - 1) / isa->nc_max * j.k_steps;
    /* n = MAX_THREADS >= any pool size: each pool thread gets one non-empty range,
     * so every thread runs sgemm_thread exactly once and can meet at the barriers. */
    pool_parallel_for(MAX_THREADS, 1, sgemm_thread, &j);
}
