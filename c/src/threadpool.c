/*
 * threadpool.c — the fixed worker pool behind pool_parallel_for.
 *
 * One job at a time (calls are serialized by g_call). The caller publishes
 * the job and bumps `generation`; workers spin on it briefly, then sleep on
 * a condvar. Thread t runs the t-th contiguous range (or, for a dynamic job,
 * claims ranges from an atomic counter until none are left); the caller is thread 0.
 * Sleep/wake uses the Dekker pattern on seq_cst atomics (sleepers counter vs
 * generation) so neither side takes the mutex on the fast path.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "threadpool.h"

#define POOL_MAX_THREADS 256
#define SPIN_ITERS 20000 /* ~0.5 ms of pause (~30 ns each here) before a worker sleeps */
/* The caller, waiting for the workers to finish their ranges, pauses this many
 * times (~0.1 ms) and then yields the CPU on every further spin. A range that
 * takes that much longer than the caller's own is usually one whose worker was
 * preempted on a shared host; a pure spin would burn the time slice that worker
 * needs (decode steps measured 2-3x slower under a load of 6-8 on 2 cores). The
 * workers themselves never yield while waiting for a job: a yielding worker
 * gives its core away for a whole time slice right before the next job arrives
 * (the tiny model's decode step went from 0.3 to 4-6 ms under load). On a quiet
 * host sched_yield returns at once, so nothing changes there. */
#define CALLER_PAUSE_ITERS 4000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

typedef struct {
    pthread_mutex_t call;   /* serializes pool_parallel_for / pool_init */
    pthread_mutex_t lock;   /* protects the condvars */
    pthread_cond_t wake;    /* workers sleep here for a new generation */
    pthread_cond_t done;    /* the caller sleeps here for remaining == 0 */
    int32_t n_threads;      /* 0: not started */
    pthread_t *workers;     /* [n_threads - 1] */

    /* the current job */
    pool_fn fn;
    void *arg;
    int64_t n, align;
    int dynamic;            /* ranges claimed through next_chunk, not fixed per thread */
    atomic_int_fast64_t next_chunk; /* dynamic: first unclaimed chunk of `align` indices */
    int stop;

    uint_fast64_t start_generation; /* generation when the workers were created */
    atomic_uint_fast64_t generation;
    atomic_int remaining;   /* workers still running the current generation */
    atomic_int sleepers;    /* workers waiting on `wake` (or about to) */
    atomic_int caller_sleeping;
} pool_state;

static pool_state g_pool = {
    .call = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};

/* ---- default thread count ------------------------------------------------ */

/* Parses a sysfs cpu list ("0-3,8,10-11") into set. Returns 0 on failure. */
static int parse_cpu_list(const char *s, cpu_set_t *set) {
    CPU_ZERO(set);
    while (*s && *s != '\n') {
        char *end;
        long a = strtol(s, &end, 10);
        if (end == s) return 0;
        long b = a;
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            if (end == s + 1) return 0;
            s = end;
        }
        for (long c = a; c <= b && c < CPU_SETSIZE; c++) CPU_SET((int)c, set);
        if (*s == ',') s++;
    }
    return 1;
}

/* Physical cores among the CPUs this process may run on: a CPU counts unless a
 * lower-numbered hyper-thread sibling is also allowed. Without sysfs every CPU counts. */
static int physical_cores(void) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (int)n : 1;
    }
    int cores = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &allowed)) continue;
        char path[128], buf[256];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", c);
        FILE *f = fopen(path, "r");
        int counted = 1;
        if (f) {
            cpu_set_t sib;
            if (fgets(buf, sizeof buf, f) && parse_cpu_list(buf, &sib)) {
                for (int s = 0; s < c; s++)
                    if (CPU_ISSET(s, &sib) && CPU_ISSET(s, &allowed)) counted = 0;
            }
            fclose(f);
        }
        cores += counted;
    }
    return cores > 0 ? cores : 1;
}

/* CPU limit from cgroup v2 cpu.max along this process's cgroup path (the
 * tightest quota/period wins, rounded up); 0 when unlimited or unknown. */
static int cgroup_cpu_limit(void) {
    char rel[600] = "";
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        char line[600];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "0::", 3) == 0) {
                snprintf(rel, sizeof rel, "%s", line + 3);
                rel[strcspn(rel, "\n")] = '\0';
                break;
            }
        }
        fclose(f);
    }
    int best = 0;
    for (;;) {
        char path[700];
        snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", strcmp(rel, "/") == 0 ? "" : rel);
        FILE *m = fopen(path, "r");
        if (m) {
            char q[32];
            long long period = 0;
            if (fscanf(m, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0 && period > 0) {
                long long quota = atoll(q);
                int lim = (int)((quota + period - 1) / period);
                if (lim < 1) lim = 1;
                if (best == 0 || lim < best) best = lim;
            }
            fclose(m);
        }
        char *slash = strrchr(rel, '/');
        if (!slash || rel[0] == '\0' || strcmp(rel, "/") == 0) break;
        if (slash == rel) strcpy(rel, "/"); else *slash = '\0';
    }
    return best;
}

static int32_t default_threads(void) {
    const char *env = getenv("BRAID_THREADS");
    if (env && *env) {
        long n = strtol(env, NULL, 10);
        if (n > 0) return (int32_t)BRAID_MIN(n, POOL_MAX_THREADS);
    }
    int n = physical_cores();
    int lim = cgroup_cpu_limit();
    if (lim > 0 && lim < n) n = lim;
    return (int32_t)BRAID_MAX(1, BRAID_MIN(n, POOL_MAX_THREADS));
}

/* ---- workers --------------------------------------------------------------- */

/* Guided claiming: each claim takes 1/(2 n_threads) of the chunks still unclaimed (at least
 * one), so the first claims are large (few atomics, long contiguous streams for the
 * prefetchers) and the last are single chunks (whoever finishes first takes them). */
static void run_claims(int32_t t, int64_t chunks) {
    pool_state *p = &g_pool;
    int_fast64_t c = atomic_load_explicit(&p->next_chunk, memory_order_relaxed), take;
    for (;;) {
        do {
            if (c >= chunks) return;
            take = BRAID_MAX(1, (chunks - c) / (2 * p->n_threads));
        } while (!atomic_compare_exchange_weak_explicit(&p->next_chunk, &c, c + take, memory_order_relaxed,
                                                        memory_order_relaxed));
        p->fn(p->arg, c * p->align, BRAID_MIN(p->n, (c + take) * p->align), t);
        c = atomic_load_explicit(&p->next_chunk, memory_order_relaxed);
    }
}

static void run_range(int32_t t) {
    pool_state *p = &g_pool;
    int64_t chunks = (p->n + p->align - 1) / p->align;
    if (p->dynamic) {
        run_claims(t, chunks);
        return;
    }
    int64_t c0 = chunks * t / p->n_threads, c1 = chunks * (t + 1) / p->n_threads;
    int64_t i0 = c0 * p->align, i1 = BRAID_MIN(p->n, c1 * p->align);
    if (i0 < i1) p->fn(p->arg, i0, i1, t);
}

static void *worker_main(void *argp) {
    int32_t t = (int32_t)(intptr_t)argp;
    pool_state *p = &g_pool;
    uint_fast64_t seen = p->start_generation; /* a job may already be published */
    for (;;) {
        uint_fast64_t gen;
        int spins = 0;
        while ((gen = atomic_load(&p->generation)) == seen && spins < SPIN_ITERS) {
            cpu_relax();
            spins++;
        }
        if (gen == seen) {
            pthread_mutex_lock(&p->lock);
            atomic_fetch_add(&p->sleepers, 1);
            while ((gen = atomic_load(&p->generation)) == seen) pthread_cond_wait(&p->wake, &p->lock);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->lock);
        }
        seen = gen;
        if (p->stop) return NULL;
        run_range(t);
        if (atomic_fetch_sub(&p->remaining, 1) == 1 && atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

/* Publishes the current job to the workers. Call with g_pool.call held. */
static void publish(void) {
    pool_state *p = &g_pool;
    atomic_store(&p->remaining, p->n_threads - 1);
    atomic_fetch_add(&p->generation, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
}

static void wait_workers(void) {
    pool_state *p = &g_pool;
    for (int spins = 0; atomic_load(&p->remaining) > 0; spins++) {
        if (spins < SPIN_ITERS) {
            if (spins < CALLER_PAUSE_ITERS)
                cpu_relax();
            else
                sched_yield();
            continue;
        }
        pthread_mutex_lock(&p->lock);
        atomic_store(&p->caller_sleeping, 1);
        while (atomic_load(&p->remaining) > 0) pthread_cond_wait(&p->done, &p->lock);
        atomic_store(&p->caller_sleeping, 0);
        pthread_mutex_unlock(&p->lock);
    }
}

static void stop_workers(void) {
    pool_state *p = &g_pool;
    if (p->n_threads <= 1) {
        p->n_threads = 0;
        return;
    }
    p->stop = 1;
    publish();
    for (int32_t i = 0; i < p->n_threads - 1; i++) pthread_join(p->workers[i], NULL);
    free(p->workers);
    p->workers = NULL;
    p->stop = 0;
    p->n_threads = 0;
}

/* Starts n threads. Call with g_pool.call held and the pool stopped. */
static int32_t start_workers(int32_t n) {
    pool_state *p = &g_pool;
    p->n_threads = 1;
    if (n <= 1) return BRAID_OK;
    p->start_generation = atomic_load(&p->generation);
    p->workers = calloc((size_t)(n - 1), sizeof(pthread_t));
    if (!p->workers) return braid_fail(BRAID_ERR_NOMEM, "thread pool: out of memory");
    for (int32_t i = 0; i < n - 1; i++) {
        if (pthread_create(&p->workers[i], NULL, worker_main, (void *)(intptr_t)(i + 1)) != 0) {
            p->n_threads = i + 1; /* the ones that started */
            stop_workers();
            p->n_threads = 1;
            return braid_fail(BRAID_ERR_NOMEM, "thread pool: pthread_create failed for thread %d", i + 1);
        }
        p->n_threads = i + 2;
    }
    return BRAID_OK;
}

/* Runs when the library is unloaded (dlclose, process exit): workers still
 * spinning in this library's code would otherwise fault once it is unmapped.
 * Skipped if a parallel-for is still running on another thread. */
__attribute__((destructor)) static void pool_unload(void) {
    if (pthread_mutex_trylock(&g_pool.call) != 0) return;
    stop_workers();
    pthread_mutex_unlock(&g_pool.call);
}

int32_t pool_init(int32_t n) {
    if (n <= 0) n = default_threads();
    if (n > POOL_MAX_THREADS) n = POOL_MAX_THREADS;
    pthread_mutex_lock(&g_pool.call);
    int32_t st = BRAID_OK;
    if (g_pool.n_threads != n) {
        stop_workers();
        st = start_workers(n);
    }
    pthread_mutex_unlock(&g_pool.call);
    return st;
}

int32_t pool_threads(void) {
    /* No lock: pool functions may ask from inside a parallel-for. */
    int32_t n = __atomic_load_n(&g_pool.n_threads, __ATOMIC_ACQUIRE);
    return n > 0 ? n : default_threads();
}

static void parallel_for(int64_t n, int64_t align, pool_fn fn, void *arg, int dynamic) {
    if (n <= 0) return;
    if (align < 1) align = 1;
    pthread_mutex_lock(&g_pool.call);
    if (g_pool.n_threads == 0 && start_workers(default_threads()) != BRAID_OK) g_pool.n_threads = 1;
    pool_state *p = &g_pool;
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->align = align;
    p->dynamic = dynamic && p->n_threads > 1;
    atomic_store_explicit(&p->next_chunk, 0, memory_order_relaxed); /* published by publish()'s seq_cst bump */
    if (p->n_threads > 1) publish();
    run_range(0);
    if (p->n_threads > 1) wait_workers();
    pthread_mutex_unlock(&g_pool.call);
}

void pool_parallel_for(int64_t n, int64_t align, pool_fn fn, void *arg) { parallel_for(n, align, fn, arg, 0); }

void pool_parallel_for_dynamic(int64_t n, int64_t align, pool_fn fn, void *arg) {
    parallel_for(n, align, fn, arg, 1);
}
