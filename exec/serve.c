/*
 * serve — the serving engine's loop: serving/sched.h's schedule on the wall
 * clock, serving/blocks.h's tables, a backend's forward passes and swaps
 * (serve_backend.h). See serve.h.
 */
#include "exec/serve.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/grow.h"
#include "common/units.h"
#include "exec/model_io.h"
#include "exec/serve_backend.h"

void engine_serve_result_free(engine_serve_result *r)
{
    if (!r)
        return;
    if (r->tokens)
        for (size_t i = 0; i < r->ntokens; i++)
            free(r->tokens[i]);
    free(r->tokens);
    serve_result_free(&r->r);
    serve_prefix_keys_free(&r->keys);
    free(r->events);
    memset(r, 0, sizeof *r);
}

/* The run's state besides the backend's. */
typedef struct loop {
    const serve_setup *s;
    const serve_requests *q;
    const engine_serve_opts *o;
    const serve_backend_ops *ops;
    void *state;
    serve_sched *sc;
    serve_blocks b;
    int32_t **seq;   /* [n] prompt, then generated */
    int32_t *step;   /* [max_batch] */
    double t0;
    double *move_s;        /* [cap_moves] each block copy's time */
    size_t cap_moves, cap_events;
    serve_chunk *chunks;   /* [max_batch] an iteration's chunks but one */
} loop;

/* ---- preemption events: their measured cost */

static llmsim_status event_add(engine_serve_result *r, size_t *cap, const serve_event *ev, diag *e)
{
    serve_event *p = llmsim_grow(r->events, r->nevents, cap, sizeof *p, 64);
    if (!p)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    r->events = p;
    r->events[r->nevents++] = *ev;
    return LLMSIM_OK;
}

/* The open event of request req of kind how, or NULL. */
static serve_event *event_open(engine_serve_result *r, uint32_t req, uint8_t how)
{
    for (size_t k = r->nevents; k-- > 0;)
        if (r->events[k].req == req && r->events[k].how == how && !r->events[k].done)
            return &r->events[k];
    return NULL;
}

/* This iteration's preemptions as events, and its block copies' times to
 * the swaps they belong to (out: the event just opened; in: the one it
 * closes). */
static llmsim_status events_swap(loop *L, engine_serve_result *r, const serve_iter *it,
                                 const double *move_s, diag *e)
{
    for (int k = 0; k < it->npre; k++) {
        const serve_preempt *p = &it->pre[k];
        const serve_event ev = {.req = p->req, .how = p->how, .iteration = r->r.iterations,
                                .blocks = p->blocks, .tokens = p->tokens,
                                .predicted_s = p->predicted_s, .done = p->tokens == 0};
        llmsim_status st = event_add(r, &L->cap_events, &ev, e);
        if (st)
            return st;
    }
    for (size_t i = 0; i < L->b.nmoves; i++) {
        serve_event *ev = event_open(r, L->b.moves[i].req, PREEMPT_SWAP);
        if (ev)
            ev->measured_s += move_s[i];
    }
    for (int k = 0; k < it->nin; k++) {
        serve_event *ev = event_open(r, it->swapped_in[k], PREEMPT_SWAP);
        if (ev)
            ev->done = true;
    }
    return LLMSIM_OK;
}

/* The recomputes this iteration advanced: each chunk that prefills again
 * tokens a recomputed request had cached takes its share of the measured
 * time, the fraction of the iteration's predicted time it adds. */
static void events_recompute(loop *L, engine_serve_result *r, const serve_iter *it,
                             double predicted, double measured)
{
    for (int c = 0; c < it->nch; c++) {
        serve_event *ev = event_open(r, it->req[c], PREEMPT_RECOMPUTE);
        if (!ev)
            continue;
        if (it->ch[c].ctx >= ev->tokens) { /* the prefix cache gave all of it back */
            ev->done = true;
            continue;
        }
        serve_chunk *rest = L->chunks;
        int n = 0;
        for (int k = 0; k < it->nch; k++)
            if (k != c)
                rest[n++] = it->ch[k];
        const double without = serve_iteration_s(L->s, rest, n, it->out_blocks, it->in_blocks);
        if (predicted > 0)
            ev->measured_s += measured * (predicted - without) / predicted;
        if (it->ch[c].ctx + it->ch[c].tokens >= ev->tokens)
            ev->done = true;
    }
}

/* Sleep until the scheduler's time t on the wall clock, or ^C. */
static void wait_until(const loop *L, double t)
{
    volatile sig_atomic_t *intr = L->o->eng->interrupt;
    for (;;) {
        double left = t - (llmsim_now_s() - L->t0);
        if (left <= 0 || (intr && *intr))
            return;
        if (left > 0.05)
            left = 0.05;
        struct timespec ts = {0, (long)(left * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* One iteration: formed, its tables synced, its swaps and forward pass run,
 * completed at the wall clock. */
static llmsim_status one_iteration(loop *L, engine_serve_result *r, diag *e)
{
    double a = llmsim_now_s();
    serve_iter it;
    llmsim_status st = serve_sched_form(L->sc, &it, e);
    if (!st)
        st = serve_blocks_sync(&L->b, L->sc, &it, e);
    if (st)
        return st;
    const double predicted = serve_sched_predict_s(L->sc, &it);
    for (int c = 0; c < it.nch; c++)
        L->step[c] = (int32_t)(it.ch[c].ctx + it.ch[c].tokens - L->q->r[it.req[c]].prompt_len);
    const double sched_s = llmsim_now_s() - a;
    double w = 0, rd = 0, weights_s = 0;
    if (L->b.nmoves) {
        if (L->b.nmoves > L->cap_moves) {
            double *g = realloc(L->move_s, L->b.nmoves * sizeof *g);
            if (!g)
                return diag_set(e, LLMSIM_EFAIL, "out of memory");
            L->move_s = g;
            L->cap_moves = L->b.nmoves;
        }
        if ((st = L->ops->swap(L->state, L->b.moves, L->b.nmoves, L->move_s, e)))
            return st;
        for (size_t i = 0; i < L->b.nmoves; i++)
            *(L->b.moves[i].out ? &w : &rd) += L->move_s[i];
    }
    if ((st = events_swap(L, r, &it, L->move_s, e)))
        return st;
    r->swap_write_s += w;
    r->swap_read_s += rd;
    r->r.swap_s += w + rd;
    const serve_fwd f = {.it = &it, .b = &L->b, .seq = L->seq, .step = L->step};
    if ((st = L->ops->forward(L->state, &f, &weights_s, e)))
        return st;
    double end = llmsim_now_s() - L->t0;
    if (end < it.start_s)
        end = it.start_s;
    events_recompute(L, r, &it, predicted, end - it.start_s);
    if ((st = serve_sched_complete(L->sc, &it, end, NULL, NULL, e)))
        return st;
    serve_iter_row *row = &r->r.iters[r->r.iterations - 1];
    row->predicted_s = predicted;
    row->sched_s = sched_s;
    row->swap_s = w + rd;
    row->weights_s = weights_s;
    serve_blocks_finish(&L->b, L->sc, &it);
    return LLMSIM_OK;
}

static llmsim_status run_loop(loop *L, engine_serve_result *r, diag *e)
{
    volatile sig_atomic_t *intr = L->o->eng->interrupt;
    llmsim_status st = LLMSIM_OK;
    L->t0 = llmsim_now_s();
    while (!st && !serve_sched_finished(L->sc)) {
        if (intr && *intr) {
            r->interrupted = true;
            return LLMSIM_OK;
        }
        serve_sched_arrive(L->sc);
        if (serve_sched_idle(L->sc)) {
            double t = serve_sched_next_arrival(L->sc);
            if (L->o->wall_clock)
                wait_until(L, t);
            st = serve_sched_idle_until(L->sc, t, e);
            continue;
        }
        st = one_iteration(L, r, e);
    }
    return st ? st : serve_sched_end(L->sc, e);
}

/* Every request's token array: its prompt, room for its output. */
static llmsim_status seq_init(loop *L, engine_serve_result *r, diag *e)
{
    const serve_requests *q = L->q;
    const size_t vocab = (size_t)L->s->cm.m->vocab_size;
    L->seq = calloc(q->n ? q->n : 1, sizeof *L->seq);
    r->tokens = calloc(q->n ? q->n : 1, sizeof *r->tokens);
    if (!L->seq || !r->tokens)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    r->ntokens = q->n;
    for (size_t i = 0; i < q->n; i++) {
        const int64_t p = q->r[i].prompt_len, n = q->r[i].output_len;
        if (!(L->seq[i] = calloc((size_t)(p + n), sizeof **L->seq)) ||
            !(r->tokens[i] = calloc((size_t)n ? (size_t)n : 1, sizeof **r->tokens)))
            return diag_set(e, LLMSIM_EFAIL, "out of memory");
        if (L->o->prompts) {
            memcpy(L->seq[i], L->o->prompts[i], (size_t)p * sizeof **L->seq);
        } else {
            mio_prompt(L->o->eng, (long long)i, 0, p, vocab, L->seq[i]);
            if (q->r[i].prefix_group)
                mio_prompt(L->o->eng, SERVE_PREFIX_STREAM + q->r[i].prefix_group, 0,
                           q->r[i].prefix_len, vocab, L->seq[i]);
        }
    }
    /* the prefix cache shares what the tokens share */
    if (L->s->cfg.prefix_cache)
        return serve_prefix_of_tokens(q, (const int32_t *const *)L->seq, L->s->cfg.block_size,
                                      &r->keys, e);
    return LLMSIM_OK;
}

/* The RAM the run needs against what it may use. */
static llmsim_status check_ram(const loop *L, const serve_ctx *c, diag *e)
{
    const engine_opts *o = L->o->eng;
    double limit = o->max_ram_bytes > 0 ? o->max_ram_bytes : engine_free_ram_bytes();
    double need = 0;
    llmsim_status st = L->ops->ram_bytes(c, &need, e);
    if (st || limit <= 0 || need <= limit)
        return st;
    char a[32], b[32];
    units_format(UNITS_BYTES, need, a, sizeof a);
    units_format(UNITS_BYTES, limit, b, sizeof b);
    if (L->s->has_gpu)
        return diag_set(e, LLMSIM_EINPUT, "serving needs %s of RAM (pinned weights, the swap "
                        "space%s), more than %s %s; lower --swap-space, or put weights on the GPU",
                        a, o->gpu_emulated ? ", the emulated device's memory" : "",
                        o->max_ram_bytes > 0 ? "--max-ram" : "the free RAM", b);
    return diag_set(e, LLMSIM_EINPUT, "serving needs %s of RAM (weights in RAM, %lld KV blocks, "
                    "scratch), more than %s %s; lower --kv-memory or --token-budget, or put weights "
                    "on disk", a, (long long)L->s->total_blocks,
                    o->max_ram_bytes > 0 ? "--max-ram" : "the free RAM", b);
}

llmsim_status engine_serve(const serve_setup *s, const serve_requests *q,
                           const engine_serve_opts *o, engine_serve_result *r, diag *e)
{
    memset(r, 0, sizeof *r);
    loop L = {.s = s, .q = q, .o = o,
              .ops = s->cm.hw->gpu.present ? &exec_gpu_serve_backend : &exec_cpu_serve_backend};
    if (!L.ops->accepts(s->cm.hw))
        return diag_set(e, LLMSIM_EFAIL, "internal error: no serving backend for '%s'",
                        s->cm.hw->name);
    r->engine = L.ops->name;
    /* the scheduler's checks first: a request that can never fit is refused */
    llmsim_status st = serve_sched_check(s, q, e);
    if (st)
        return st;
    const serve_ctx c = {s, q, o};
    if ((st = check_ram(&L, &c, e)) || (st = seq_init(&L, r, e)) ||
        (st = serve_sched_new(s, q, s->cfg.prefix_cache ? &r->keys : NULL, &r->r, &L.sc, e)) ||
        (st = serve_blocks_init(&L.b, s->total_blocks, s->swap_blocks, q->n, s->cfg.prefix_cache,
                                e)))
        goto out;
    if (!(L.step = calloc((size_t)s->cfg.max_batch, sizeof *L.step)) ||
        !(L.chunks = calloc((size_t)s->cfg.max_batch, sizeof *L.chunks))) {
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
        goto out;
    }
    if ((st = L.ops->prepare(&L.state, &c, e)))
        goto out;
    if (o->eng->interrupt && *o->eng->interrupt) { /* ^C while the weights loaded */
        r->interrupted = true;
        goto out;
    }
    if ((st = run_loop(&L, r, e)))
        goto out;
    for (size_t i = 0; i < q->n && !r->interrupted; i++)
        memcpy(r->tokens[i], L.seq[i] + q->r[i].prompt_len,
               (size_t)q->r[i].output_len * sizeof **L.seq);
    L.ops->finish(L.state, r);
out:
    L.ops->release(L.state);
    serve_blocks_free(&L.b);
    serve_sched_free(L.sc);
    if (L.seq)
        for (size_t i = 0; i < q->n; i++)
            free(L.seq[i]);
    free(L.seq);
    free(L.step);
    free(L.chunks);
    free(L.move_s);
    if (st)
        engine_serve_result_free(r);
    return st;
}
