/*
 * engine — executing a plan: one thread per resource takes its tasks in the
 * order the plan issues them as their dependencies complete (the
 * simulator's rule), hands each to the backend (exec/backend.h), and times
 * it with the monotonic clock. See engine.h.
 */
#include "exec/engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/units.h"
#include "exec/backend.h"
#include "common/clock.h"

/* ---- the scheduler: one thread per resource, tasks in plan order as they
 * become ready (the simulator's rule) */

typedef struct sched {
    const plan *pl;
    const engine_opts *o;
    const exec_backend_ops *ops;
    void *state;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t *indeg;
    uint32_t *succ_off, *succ;
    uint32_t **ready;      /* per resource: a min-heap of task indices */
    size_t nready[PLAN_NRES], cap[PLAN_NRES];
    size_t done;
    bool failed;
    diag err;
    double t0;
    double *start_s, *end_s;
} sched;

static void heap_push(sched *s, int r, uint32_t v)
{
    uint32_t *a = s->ready[r];
    size_t i = s->nready[r]++;
    while (i > 0 && a[(i - 1) / 2] > v) {
        a[i] = a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    a[i] = v;
}

static uint32_t heap_pop(sched *s, int r)
{
    uint32_t *a = s->ready[r];
    uint32_t top = a[0], last = a[--s->nready[r]];
    size_t i = 0, n = s->nready[r];
    for (;;) {
        size_t l = 2 * i + 1, rr = l + 1, m = i;
        uint32_t best = last;
        if (l < n && a[l] < best) {
            m = l;
            best = a[l];
        }
        if (rr < n && a[rr] < best)
            m = rr;
        if (m == i)
            break;
        a[i] = a[m];
        i = m;
    }
    if (n > 0)
        a[i] = last;
    return top;
}

typedef struct worker {
    sched *s;
    int res;
} worker;

static void *worker_main(void *arg)
{
    worker *wk = arg;
    sched *s = wk->s;
    const plan *pl = s->pl;
    volatile sig_atomic_t *intr = s->o->interrupt;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->failed && s->done < pl->ntasks && s->nready[wk->res] == 0 &&
               !(intr && *intr))
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->failed || s->done >= pl->ntasks || (intr && *intr))
            break;
        uint32_t ti = heap_pop(s, wk->res);
        pthread_mutex_unlock(&s->mu);
        diag e;
        diag_clear(&e);
        double a = llmsim_now_s();
        llmsim_status st = s->ops->run_task(s->state, ti, &e);
        double b = llmsim_now_s();
        pthread_mutex_lock(&s->mu);
        if (s->start_s) {
            s->start_s[ti] = a - s->t0;
            s->end_s[ti] = b - s->t0;
        }
        if (st) {
            if (!s->failed)
                s->err = e;
            s->failed = true;
            pthread_cond_broadcast(&s->cv);
            break;
        }
        s->done++;
        for (uint32_t k = s->succ_off[ti]; k < s->succ_off[ti + 1]; k++) {
            uint32_t v = s->succ[k];
            if (--s->indeg[v] == 0)
                heap_push(s, pl->tasks[v].res, v);
        }
        pthread_cond_broadcast(&s->cv);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static llmsim_status run_plan(const exec_ctx *c, const exec_backend_ops *ops, void *state,
                              double *start_s, double *end_s, bool *interrupted, diag *e)
{
    const plan *pl = c->pl;
    const size_t n = pl->ntasks;
    sched s;
    memset(&s, 0, sizeof s);
    s.pl = pl;
    s.o = c->o;
    s.ops = ops;
    s.state = state;
    s.start_s = start_s;
    s.end_s = end_s;
    s.indeg = malloc((n + 1) * sizeof *s.indeg);
    s.succ_off = calloc(n + 2, sizeof *s.succ_off);
    s.succ = malloc((pl->ndeps + 1) * sizeof *s.succ);
    s.ready = calloc(PLAN_NRES, sizeof *s.ready);
    llmsim_status st = LLMSIM_OK;
    if (!s.indeg || !s.succ_off || !s.succ || !s.ready) {
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
        goto out;
    }
    for (int r = 0; r < PLAN_NRES; r++) {
        s.ready[r] = malloc((n + 1) * sizeof **s.ready);
        if (!s.ready[r]) {
            st = diag_set(e, LLMSIM_EFAIL, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        s.indeg[i] = pl->tasks[i].ndeps;
        for (uint32_t d = 0; d < pl->tasks[i].ndeps; d++)
            s.succ_off[pl->deps[pl->tasks[i].dep_first + d] + 1]++;
    }
    for (size_t i = 0; i < n; i++)
        s.succ_off[i + 1] += s.succ_off[i];
    {
        uint32_t *fill = malloc((n + 1) * sizeof *fill);
        if (!fill) {
            st = diag_set(e, LLMSIM_EFAIL, "out of memory");
            goto out;
        }
        memcpy(fill, s.succ_off, (n + 1) * sizeof *fill);
        for (size_t i = 0; i < n; i++)
            for (uint32_t d = 0; d < pl->tasks[i].ndeps; d++)
                s.succ[fill[pl->deps[pl->tasks[i].dep_first + d]]++] = (uint32_t)i;
        free(fill);
    }
    for (size_t i = 0; i < n; i++)
        if (s.indeg[i] == 0)
            heap_push(&s, pl->tasks[i].res, (uint32_t)i);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    diag_clear(&s.err);
    s.t0 = llmsim_now_s();
    pthread_t th[PLAN_NRES];
    worker wk[PLAN_NRES];
    int started = 0;
    for (int r = 0; r < PLAN_NRES; r++) {
        wk[r] = (worker){&s, r};
        if (pthread_create(&th[r], NULL, worker_main, &wk[r]) != 0) {
            pthread_mutex_lock(&s.mu);
            s.failed = true;
            diag_set(&s.err, LLMSIM_EFAIL, "cannot start an engine thread");
            pthread_cond_broadcast(&s.cv);
            pthread_mutex_unlock(&s.mu);
            break;
        }
        started++;
    }
    for (int r = 0; r < started; r++)
        pthread_join(th[r], NULL);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    if (s.failed) {
        *e = s.err;
        st = s.err.status ? s.err.status : LLMSIM_EFAIL;
    } else if (s.done < n) {
        *interrupted = true;
    }
out:
    free(s.indeg);
    free(s.succ_off);
    free(s.succ);
    if (s.ready)
        for (int r = 0; r < PLAN_NRES; r++)
            free(s.ready[r]);
    free(s.ready);
    return st;
}

void engine_result_free(engine_result *r)
{
    if (!r)
        return;
    free(r->start_s);
    free(r->end_s);
    free(r->tokens);
    memset(r, 0, sizeof *r);
}

double engine_free_ram_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

llmsim_status engine_run(const model *m, const hwprofile *hw, const policy *p, const workload *w,
                         const plan *pl, const engine_opts *o, engine_result *r, diag *e)
{
    memset(r, 0, sizeof *r);
    /* the backend: the GPU engine for a machine with a GPU, else the CPU engine */
    const exec_backend_ops *ops = hw->gpu.present ? &exec_gpu_backend : &exec_cpu_backend;
    if (!ops->accepts(hw))
        return diag_set(e, LLMSIM_EFAIL, "the %s engine does not run plans for profile '%s'", ops->name, hw->name);
    const long long bls = (long long)p->gpu_batch_size * p->num_gpu_batches;
    const long long np = w->num_prompts ? w->num_prompts : bls;
    r->num_prompts = np;
    /* refuse before allocating anything: the backend adds up what it will
     * allocate, by the code that allocates it */
    exec_ctx ctx = {m, hw, p, w, pl, o};
    double limit = o->max_ram_bytes > 0 ? o->max_ram_bytes : engine_free_ram_bytes();
    double need = 0;
    llmsim_status st = ops->ram_bytes(&ctx, &need, e);
    if (st)
        return st;
    if (limit > 0 && need > limit) {
        char a[32], b[32];
        units_format(UNITS_BYTES, need, a, sizeof a);
        units_format(UNITS_BYTES, limit, b, sizeof b);
        return diag_set(e, LLMSIM_EINPUT, "the run needs %s of RAM, more than %s %s; put more of "
                        "the weights or the KV cache on disk", a,
                        o->max_ram_bytes > 0 ? "--max-ram" : "the free RAM", b);
    }
    void *state = NULL;
    st = ops->prepare(&state, &ctx, e);
    if (st)
        goto out;
    if (o->interrupt && *o->interrupt) { /* ^C while the weights were loading */
        r->interrupted = true;
        goto out;
    }
    r->ntasks = pl->ntasks;
    r->start_s = calloc(pl->ntasks + 1, sizeof *r->start_s);
    r->end_s = calloc(pl->ntasks + 1, sizeof *r->end_s);
    r->tokens = calloc((size_t)np * (size_t)w->gen_len, sizeof *r->tokens);
    if (!r->start_s || !r->end_s || !r->tokens) {
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
        goto out;
    }
    const long long blocks = (np + bls - 1) / bls;
    double t0 = llmsim_now_s();
    for (long long blk = 0; blk < blocks; blk++) {
        if ((st = ops->begin_block(state, blk, e)))
            goto out;
        bool intr = false;
        st = run_plan(&ctx, ops, state, blk == 0 ? r->start_s : NULL, blk == 0 ? r->end_s : NULL,
                      &intr, e);
        if (st)
            goto out;
        if (intr) {
            r->interrupted = true;
            break;
        }
        if ((st = ops->end_block(state, blk, r, e)))
            goto out;
        if (blk == 0 && ops->task_times && (st = ops->task_times(state, r->start_s, r->end_s, e)))
            goto out;
        if (blk == 0) { /* the prefill: until the last task of step 0 ended */
            double pre = 0;
            for (size_t t = 0; t < pl->ntasks; t++)
                if (pl->tasks[t].step == 0 && r->end_s[t] > pre)
                    pre = r->end_s[t];
            r->prefill_s = pre * (double)blocks;
        }
    }
    r->total_s = llmsim_now_s() - t0;
    ops->finish(state, r);
out:
    ops->release(state);
    return st;
}
