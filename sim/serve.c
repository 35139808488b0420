/*
 * serve — the serving simulation: serving/sched.c's schedule on the cost
 * model's clock. See serve.h.
 *
 * The loop is iteration-level: at each iteration start the scheduler decides
 * the batch (and any preemptions, swaps and admissions), the iteration's time
 * is priced, and the clock moves to its end, where tokens are emitted and
 * finished requests free their blocks. Between iterations with nothing to do
 * the clock jumps to the next arrival.
 */
#include "sim/serve.h"

#include <stdio.h>

#include "sim/sim.h"

static llmsim_status run_loop(serve_sched *sc, const serve_setup *s, serve_result *res,
                              serve_clock_fn clock, void *clock_ctx,
                              void (*progress)(double, void *), void *progress_ctx, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    while (!st && !serve_sched_finished(sc)) {
        if (s->cfg.interrupt && *s->cfg.interrupt) {
            res->interrupted = true; /* the rows so far; no aggregates */
            return LLMSIM_OK;
        }
        serve_sched_arrive(sc);
        if (serve_sched_idle(sc)) {
            st = serve_sched_idle_until(sc, serve_sched_next_arrival(sc), e);
            continue;
        }
        serve_iter it;
        if ((st = serve_sched_form(sc, &it, e)))
            break;
        double dt = serve_sched_predict_s(sc, &it);
        const double predicted = dt;
        if (clock)
            dt = clock(res->iterations, &it, dt, clock_ctx);
        res->swap_s += serve_swap_s(s, it.out_blocks, true) + serve_swap_s(s, it.in_blocks, false);
        st = serve_sched_complete(sc, &it, it.start_s + dt, progress, progress_ctx, e);
        if (!st)
            res->iters[res->iterations - 1].predicted_s = predicted;
    }
    return st ? st : serve_sched_end(sc, e);
}

llmsim_status serve_run_clocked(const serve_setup *s, const serve_requests *q,
                                const serve_prefix_keys *keys, serve_result *res,
                                serve_clock_fn clock, void *clock_ctx,
                                void (*progress)(double, void *), void *progress_ctx, diag *e)
{
    serve_sched *sc;
    llmsim_status st = serve_sched_new(s, q, keys, res, &sc, e);
    if (st)
        return st;
    st = run_loop(sc, s, res, clock, clock_ctx, progress, progress_ctx, e);
    serve_sched_free(sc);
    if (st)
        serve_result_free(res);
    return st;
}

llmsim_status serve_run(const serve_setup *s, const serve_requests *q, serve_result *res,
                        void (*progress)(double, void *), void *progress_ctx, diag *e)
{
    return serve_run_clocked(s, q, NULL, res, NULL, NULL, progress, progress_ctx, e);
}

/* ---- Chrome trace */

typedef struct serve_trace {
    const serve_setup *s;
    const serve_result *r;
} serve_trace;

/* A thread per request, a span per state it was in, the KV block counters. */
static void serve_trace_events(FILE *f, const void *ctx)
{
    const serve_setup *s = ((const serve_trace *)ctx)->s;
    const serve_result *r = ((const serve_trace *)ctx)->r;
    char name[32];
    for (size_t i = 0; i < r->n; i++) {
        snprintf(name, sizeof name, "request %zu", i + 1);
        sim_trace_thread(f, (long long)(i + 1), name);
    }
    for (size_t k = 0; k < r->nspans; k++) {
        const serve_span *sp = &r->spans[k];
        fprintf(f, ",\n{\"name\":\"%s\",\"cat\":\"request\",\"ph\":\"X\",\"pid\":1,\"tid\":%u,"
                   "\"ts\":%.3f,\"dur\":%.3f}", serve_state_names[sp->state], sp->req + 1,
                1e6 * sp->start_s, 1e6 * (sp->end_s - sp->start_s));
    }
    for (size_t k = 0; k < r->nkv; k++)
        fprintf(f, ",\n{\"name\":\"kv blocks\",\"ph\":\"C\",\"pid\":1,\"ts\":%.3f,\"args\":"
                   "{\"%s\":%lld,\"swap\":%lld}}", 1e6 * r->kv[k].time_s,
                tier_names[s->dev_tier], (long long)r->kv[k].dev_blocks,
                (long long)r->kv[k].swap_blocks);
    fprintf(f, ",\n{\"name\":\"kv blocks\",\"ph\":\"C\",\"pid\":1,\"ts\":%.3f,\"args\":"
               "{\"%s\":0,\"swap\":0}}", 1e6 * r->end_s, tier_names[s->dev_tier]);
}

llmsim_status serve_trace_write(const serve_setup *s, const serve_result *r, const char *title,
                                const char *path, diag *e)
{
    const serve_trace ctx = {s, r};
    return sim_trace_file(path, title, serve_trace_events, &ctx, e);
}
