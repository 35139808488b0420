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
#include "common/clock.h"
#include "exec/backend.h"
#include "plan/ready.h"

/* ---- the scheduler: one thread per resource, tasks in plan order as they
 * become ready (plan/ready.h, the simulator's rule) */

typedef struct sched {
    const plan *pl;
    const engine_opts *o;
    const exec_backend_ops *ops;
    void *state;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    plan_ready q; /* under mu */
    bool failed;
    diag err;
    double t0;
    double *start_s, *end_s;
} sched;

typedef struct worker {
    sched *s;
    int res;
} worker;

/* One resource's thread: takes its ready tasks in plan order and runs them
 * on the backend, until all are done, one fails or ^C. */
static void *worker_main(void *arg)
{
    worker *wk = arg;
    sched *s = wk->s;
    const plan *pl = s->pl;
    volatile sig_atomic_t *intr = s->o->interrupt;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->failed && s->q.done < pl->ntasks && !plan_ready_any(&s->q, wk->res) &&
               !(intr && *intr))
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->failed || s->q.done >= pl->ntasks || (intr && *intr))
            break;
        uint32_t ti = plan_ready_take(&s->q, wk->res);
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
        if (!st && !plan_ready_done(&s->q, ti))
            st = diag_set(&e, LLMSIM_EFAIL, "out of memory ordering the ready tasks");
        if (st) {
            if (!s->failed)
                s->err = e;
            s->failed = true;
            break; /* the others are woken below */
        }
        pthread_cond_broadcast(&s->cv);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* A thread per resource, joined; when one cannot start, s->failed says so
 * and the others stop at once. */
static void run_workers(sched *s)
{
    pthread_t th[PLAN_NRES];
    worker wk[PLAN_NRES];
    int started = 0;
    for (int r = 0; r < PLAN_NRES; r++) {
        wk[r] = (worker){s, r};
        if (pthread_create(&th[r], NULL, worker_main, &wk[r]) != 0) {
            pthread_mutex_lock(&s->mu);
            s->failed = true;
            diag_set(&s->err, LLMSIM_EFAIL, "cannot start an engine thread");
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            break;
        }
        started++;
    }
    for (int r = 0; r < started; r++)
        pthread_join(th[r], NULL);
}

static llmsim_status run_plan(const exec_ctx *c, const exec_backend_ops *ops, void *state,
                              double *start_s, double *end_s, bool *interrupted, diag *e)
{
    sched s;
    memset(&s, 0, sizeof s);
    s.pl = c->pl;
    s.o = c->o;
    s.ops = ops;
    s.state = state;
    s.start_s = start_s;
    s.end_s = end_s;
    llmsim_status st = plan_ready_init(&s.q, c->pl, e);
    if (st)
        return st;
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    diag_clear(&s.err);
    s.t0 = llmsim_now_s();
    run_workers(&s);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    if (s.failed) {
        *e = s.err;
        st = s.err.status ? s.err.status : LLMSIM_EFAIL;
    } else if (s.q.done < c->pl->ntasks) {
        *interrupted = true;
    }
    plan_ready_free(&s.q);
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
