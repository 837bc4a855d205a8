/*
 * threadpool.h — the library's one piece of global mutable state: a fixed
 * pool of worker threads that runs parallel-for loops.
 *
 * pool_parallel_for splits [0, n) into one contiguous range per thread (the
 * calling thread takes part) and returns when all ranges are done. Calls from
 * different threads (two contexts evaluating at once) are serialized by a
 * mutex: on a 2-core machine interleaving them would only thrash caches.
 */
#ifndef BRAID_THREADPOOL_H
#define BRAID_THREADPOOL_H

#include <stdint.h>

/* fn processes [i0, i1); thread is 0..pool_threads()-1 (for per-thread scratch). */
typedef void (*pool_fn)(void *arg, int64_t i0, int64_t i1, int32_t thread);

/* Starts or resizes the pool (n <= 0: default from BRAID_THREADS or physical cores). */
int32_t pool_init(int32_t n);
int32_t pool_threads(void);
/* Runs fn over [0, n) split into ranges that are multiples of `align` (except the last):
 * thread t gets the t-th of n_threads equal contiguous ranges. */
void pool_parallel_for(int64_t n, int64_t align, pool_fn fn, void *arg);
/* The same, but threads claim ranges as they get to them (guided: about 1/(2 n_threads) of
 * what is left, at least `align`), so a thread that starts late, runs slower or is preempted
 * takes fewer rows instead of making the others wait. Which thread runs which range varies
 * from call to call: only for fn whose every index is computed the same whatever the range
 * (each output row one fixed operation sequence); `thread` is still valid for scratch. */
void pool_parallel_for_dynamic(int64_t n, int64_t align, pool_fn fn, void *arg);

#endif /* BRAID_THREADPOOL_H */
