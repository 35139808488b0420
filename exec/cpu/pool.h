/*
 * pool — a persistent pthread pool for the data-parallel loops of the CPU
 * kernels.
 *
 * pool_for(p, n, fn, ctx) cuts [0, n) into contiguous chunks and runs
 * fn(ctx, begin, end) on each, on the pool's workers and on the calling
 * thread, and returns when every chunk is done. Which thread runs which chunk
 * is left to chance (threads take the next chunk from a shared counter), so
 * a kernel must compute each output element inside one call of fn, in an
 * order that depends only on the element: then its results do not depend on
 * the number of threads (every kernel in kernels.h is written so, and
 * test_kernels checks it with memcmp).
 *
 * Thread-safety: pool_for may be called from any thread; calls on one pool
 * are serialized. A pool_for called from inside fn (nested) runs its loop on
 * the calling thread. Idle workers spin briefly (POOL_SPIN in pool.c,
 * yielding now and then) and then sleep on a condition variable, so a decode
 * step's many small loops do not pay a wake-up each (about 1.5 us per
 * pool_for with 2 threads on the development machine).
 *
 * Use at most one thread per free core: spinning threads on shared cores
 * slow each other down (3 threads on 2 cores: about 3.5 us per pool_for).
 */
#ifndef LLMSIM_EXEC_CPU_POOL_H
#define LLMSIM_EXEC_CPU_POOL_H

#include <stddef.h>

typedef struct pool pool;

/* Chunks per thread that pool_for aims at (load balance against overhead). */
#define POOL_CHUNKS_PER_THREAD 4

/* A pool of nthreads threads in all, the caller included (nthreads - 1
 * workers are started); nthreads <= 0 means one per online CPU. NULL when out
 * of memory or when a thread cannot be started. Free with pool_destroy. */
pool *pool_create(int nthreads);
/* Stop and join the workers; accepts NULL. */
void pool_destroy(pool *p);
/* Threads in all (1 for NULL). */
int pool_nthreads(const pool *p);
/* Pin the workers to CPUs of the process's affinity set, one each, and keep
 * the first CPU of the set for the thread that calls pool_for (which pins
 * itself with pool_pin_caller). Returns 1 when pinned, 0 when the set has
 * fewer CPUs than the pool has threads (or for a pool of one thread), and -1
 * when the system refuses. Why: between the loops of a compute burst that
 * follows an I/O wait, an unpinned kernel scheduler may stack two of our
 * threads on one CPU, and every fork-join then runs at the pace of the
 * doubled-up CPU. On the development VM, with the weights read from disk
 * between layers (no overlap), the GEMMs took 60% longer than with the
 * weights in RAM unpinned and 8% longer pinned (exec/README.md). */
int pool_pin(pool *p);
/* Pin the calling thread to the CPU that pool_pin kept for callers; nothing
 * when p is not pinned or the thread already is. Cheap after the first call. */
void pool_pin_caller(pool *p);
/* Run fn over [0, n) in chunks; p == NULL runs fn(ctx, 0, n) on the caller.
 * n == 0 calls nothing. */
void pool_for(pool *p, size_t n, void (*fn)(void *ctx, size_t begin, size_t end), void *ctx);

#endif
