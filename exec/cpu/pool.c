/*
 * pool — see pool.h. One job at a time: the caller publishes (fn, ctx, n,
 * chunk), bumps the generation and wakes the workers; everyone, the caller
 * included, takes chunks from an atomic counter until none are left; each
 * worker then checks out (pending), and the caller returns when all have.
 * Waiting is a short spin, then a condition variable.
 */
#define _GNU_SOURCE /* pthread_setaffinity_np, sched_getaffinity, CPU_SET */
#include "exec/cpu/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

/* Steps of the spin before a waiting thread sleeps (tens of microseconds). */
#define POOL_SPIN 2000

struct pool {
    int nthreads;            /* in all, the caller included */
    pthread_t *workers;      /* [nthreads - 1] */
    pthread_mutex_t call_mu; /* serializes callers of pool_for */
    pthread_mutex_t mu;      /* guards the sleeps below */
    pthread_cond_t work_cv;  /* workers sleep here for a new generation */
    pthread_cond_t done_cv;  /* the caller sleeps here for pending == 0 */
    /* the job, written by the caller before gen is bumped */
    void (*fn)(void *ctx, size_t begin, size_t end);
    void *ctx;
    size_t n;           /* loop length */
    size_t chunk;       /* iterations per chunk */
    atomic_size_t next; /* first iteration not yet taken */
    atomic_uint gen;    /* job generation */
    atomic_int pending; /* workers not yet done with this generation */
    atomic_bool stop;
    int caller_cpu; /* the CPU kept for callers by pool_pin, or -1 */
};

/* True on a pool worker, and on a caller while it runs a pool_for. */
static _Thread_local bool pool_inside;

/* One step of a spin: a pause, and every POOL_YIELD_EVERY steps a
 * sched_yield, so that a pool larger than the free cores still moves. */
#define POOL_YIELD_EVERY 64

static inline void pool_cpu_relax(int i)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if (i % POOL_YIELD_EVERY == POOL_YIELD_EVERY - 1)
        sched_yield();
}

static void pool_run_chunks(pool *p)
{
    const size_t n = p->n, chunk = p->chunk;
    for (;;) {
        size_t b = atomic_fetch_add_explicit(&p->next, chunk, memory_order_relaxed);
        if (b >= n)
            break;
        size_t e = n - b < chunk ? n : b + chunk;
        p->fn(p->ctx, b, e);
    }
}

static void *pool_worker(void *arg)
{
    pool *p = arg;
    pool_inside = true;
    unsigned seen = 0; /* the generation at creation: a job may be published before we run */
    for (;;) {
        unsigned g = 0;
        bool got = false;
        for (int i = 0; i < POOL_SPIN && !got; i++) {
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
            got = g != seen || atomic_load_explicit(&p->stop, memory_order_acquire);
            if (!got)
                pool_cpu_relax(i);
        }
        if (!got) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
                   !atomic_load_explicit(&p->stop, memory_order_acquire))
                pthread_cond_wait(&p->work_cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            break;
        seen = g;
        pool_run_chunks(p);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

pool *pool_create(int nthreads)
{
    if (nthreads <= 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = ncpu > 0 ? (int)ncpu : 1;
    }
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->nthreads = nthreads;
    p->caller_cpu = -1;
    pthread_mutex_init(&p->call_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->next, 0);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, false);
    if (nthreads > 1) {
        p->workers = calloc((size_t)nthreads - 1, sizeof *p->workers);
        if (!p->workers) {
            p->nthreads = 1;
            pool_destroy(p);
            return NULL;
        }
        for (int i = 0; i < nthreads - 1; i++) {
            if (pthread_create(&p->workers[i], NULL, pool_worker, p) != 0) {
                p->nthreads = i + 1; /* join the i started */
                pool_destroy(p);
                return NULL;
            }
        }
    }
    return p;
}

void pool_destroy(pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->stop, true, memory_order_release);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads - 1; i++)
        pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->call_mu);
    free(p->workers);
    free(p);
}

int pool_nthreads(const pool *p)
{
    return p ? p->nthreads : 1;
}

static int pin_thread(pthread_t t, int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return pthread_setaffinity_np(t, sizeof one, &one) == 0 ? 0 : -1;
}

int pool_pin(pool *p)
{
    if (!p || p->nthreads < 2)
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return -1;
    if (CPU_COUNT(&set) < p->nthreads)
        return 0;
    int cpus[CPU_SETSIZE], n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < p->nthreads; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = c;
    for (int i = 0; i < p->nthreads - 1; i++)
        if (pin_thread(p->workers[i], cpus[i + 1]))
            return -1;
    p->caller_cpu = cpus[0];
    return 1;
}

/* The CPU the calling thread has pinned itself to, -1 for none yet. */
static _Thread_local int pool_caller_pinned = -1;

void pool_pin_caller(pool *p)
{
    if (!p || p->caller_cpu < 0 || pool_caller_pinned == p->caller_cpu)
        return;
    if (pin_thread(pthread_self(), p->caller_cpu) == 0)
        pool_caller_pinned = p->caller_cpu;
}

void pool_for(pool *p, size_t n, void (*fn)(void *ctx, size_t begin, size_t end), void *ctx)
{
    if (n == 0)
        return;
    if (!p || p->nthreads == 1 || n == 1 || pool_inside) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&p->call_mu);
    pool_inside = true;
    const size_t target = (size_t)p->nthreads * POOL_CHUNKS_PER_THREAD;
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->chunk = n <= target ? 1 : (n + target - 1) / target;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->nthreads - 1, memory_order_relaxed);
    /* publish the job: the workers' acquire of gen sees the fields above */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    pool_run_chunks(p);

    bool done = false;
    for (int i = 0; i < POOL_SPIN && !done; i++) {
        done = atomic_load_explicit(&p->pending, memory_order_acquire) == 0;
        if (!done)
            pool_cpu_relax(i);
    }
    if (!done) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
            pthread_cond_wait(&p->done_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    pool_inside = false;
    pthread_mutex_unlock(&p->call_mu);
}
