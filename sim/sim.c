/*
 * sim — the event loop. See sim.h.
 */
#include "sim/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/atomicfile.h"
#include "common/grow.h"
#include "common/clock.h"
#include "plan/ready.h"
#include "sim/eventq.h"

void sim_result_free(sim_result *r)
{
    if (!r)
        return;
    free(r->start_s);
    free(r->end_s);
    free(r->steps);
    free(r->step_end_s);
    free(r->mem);
    memset(r, 0, sizeof *r);
}

typedef struct sim_state {
    const plan *pl;
    sim_result *r;
    const double *capacity;
    double used[TIER_COUNT];
    bool record;
    size_t mem_cap;
    bool oom;
} sim_state;

static void mem_change(sim_state *s, tier t, double delta, double time_s, uint32_t task)
{
    sim_result *r = s->r;
    if (delta == 0) /* an empty buffer: no change to record */
        return;
    s->used[t] += delta;
    if (s->used[t] > r->peak_bytes[t])
        r->peak_bytes[t] = s->used[t];
    double over = s->used[t] - s->capacity[t];
    if (delta > 0 && over > 0) {
        if (r->fits) {
            r->fits = false;
            r->overflow_task = task;
            r->overflow_tier = t;
        }
        if (t == r->overflow_tier && over > r->overflow_bytes)
            r->overflow_bytes = over;
    }
    if (!s->record)
        return;
    sim_mem_sample *m = llmsim_grow(r->mem, r->nmem, &s->mem_cap, sizeof *m, 4096);
    if (!m) {
        s->oom = true;
        return;
    }
    r->mem = m;
    r->mem[r->nmem++] = (sim_mem_sample){time_s, s->used[t], (uint8_t)t};
}

/* Counting sort of buffer indices by a task field: offsets[ntasks + 1]. */
static bool index_buffers(const plan *pl, bool by_alloc, uint32_t **off_out, uint32_t **idx_out)
{
    uint32_t *off = calloc(pl->ntasks + 2, sizeof *off);
    uint32_t *idx = malloc((pl->nbuffers + 1) * sizeof *idx);
    if (!off || !idx) {
        free(off);
        free(idx);
        return false;
    }
    for (size_t k = 0; k < pl->nbuffers; k++) {
        uint32_t t = by_alloc ? pl->buffers[k].alloc_task : pl->buffers[k].free_task;
        if (t != PLAN_NONE)
            off[t + 1]++;
    }
    for (size_t i = 0; i < pl->ntasks; i++)
        off[i + 1] += off[i];
    uint32_t *fill = malloc((pl->ntasks + 1) * sizeof *fill);
    if (!fill) {
        free(off);
        free(idx);
        return false;
    }
    memcpy(fill, off, (pl->ntasks + 1) * sizeof *fill);
    for (size_t k = 0; k < pl->nbuffers; k++) {
        uint32_t t = by_alloc ? pl->buffers[k].alloc_task : pl->buffers[k].free_task;
        if (t != PLAN_NONE)
            idx[fill[t]++] = (uint32_t)k;
    }
    free(fill);
    *off_out = off;
    *idx_out = idx;
    return true;
}

/* The buffers a task allocates and frees, by task (index_buffers), and the
 * event queue of the tasks running. */
typedef struct sim_loop {
    sim_state s;
    plan_ready q;
    eventq ev;
    uint32_t *a_off, *a_idx, *f_off, *f_idx;
    bool busy[PLAN_NRES];
    bool oom;
    double now;
} sim_loop;

/* Buffers with no allocating task are resident from the start and leave at
 * the end (sign -1). */
static void resident_buffers(sim_loop *l, double sign)
{
    const plan *pl = l->s.pl;
    for (size_t k = 0; k < pl->nbuffers; k++)
        if (pl->buffers[k].alloc_task == PLAN_NONE)
            mem_change(&l->s, (tier)pl->buffers[k].tier, sign * pl->buffers[k].bytes, l->now,
                       PLAN_NONE);
}

/* Every idle resource starts its next ready task: its buffers are
 * allocated, its end is an event. */
static void start_ready(sim_loop *l)
{
    const plan *pl = l->s.pl;
    sim_result *r = l->s.r;
    for (int res = 0; res < PLAN_NRES; res++) {
        if (l->busy[res] || !plan_ready_any(&l->q, res))
            continue;
        uint32_t ti = plan_ready_take(&l->q, res);
        l->busy[res] = true;
        r->start_s[ti] = l->now;
        for (uint32_t k = l->a_off[ti]; k < l->a_off[ti + 1]; k++) {
            const plan_buffer *bf = &pl->buffers[l->a_idx[k]];
            mem_change(&l->s, (tier)bf->tier, bf->bytes, l->now, ti);
        }
        l->oom |= !eventq_push(&l->ev, l->now + pl->tasks[ti].dur_s, ti);
        r->events++;
    }
}

/* Task ti ends now: its resource is free, its time is counted, its buffers
 * freed, and the tasks waiting on it may become ready. */
static void finish(sim_loop *l, uint32_t ti)
{
    const plan_task *t = &l->s.pl->tasks[ti];
    sim_result *r = l->s.r;
    r->end_s[ti] = l->now;
    r->events++;
    l->busy[t->res] = false;
    r->busy_s[t->res] += t->dur_s;
    r->steps[t->step].s[t->stage] += t->dur_s;
    if (l->now > r->step_end_s[t->step])
        r->step_end_s[t->step] = l->now;
    for (uint32_t k = l->f_off[ti]; k < l->f_off[ti + 1]; k++) {
        const plan_buffer *bf = &l->s.pl->buffers[l->f_idx[k]];
        mem_change(&l->s, (tier)bf->tier, -bf->bytes, l->now, ti);
    }
    l->oom |= !plan_ready_done(&l->q, ti);
}

/* The events in time order until none is left. */
static llmsim_status run_events(sim_loop *l, diag *e)
{
    for (;;) {
        start_ready(l);
        if (l->oom || l->s.oom)
            return diag_set(e, LLMSIM_EFAIL, "out of memory during the simulation");
        sim_event ev;
        if (!eventq_pop(&l->ev, &ev))
            break;
        l->now = ev.time_s;
        finish(l, ev.task);
    }
    const size_t n = l->s.pl->ntasks;
    if (l->q.done != n)
        return diag_set(e, LLMSIM_EFAIL, "simulation stalled after %zu of %zu tasks: the plan has "
                        "a dependency cycle (a bug in plan/)", l->q.done, n);
    return LLMSIM_OK;
}

llmsim_status sim_run(const plan *pl, const double capacity[TIER_COUNT], bool record_memory,
                      sim_result *r, diag *e)
{
    double t0 = llmsim_now_s();
    memset(r, 0, sizeof *r);
    r->fits = true;
    r->overflow_task = PLAN_NONE;
    r->ntasks = pl->ntasks;
    r->nsteps = pl->nsteps;
    const size_t n = pl->ntasks;
    sim_loop l;
    memset(&l, 0, sizeof l);
    l.s = (sim_state){pl, r, capacity, {0}, record_memory, 0, false};
    llmsim_status st = plan_ready_init(&l.q, pl, e);
    if (st)
        goto out;
    r->start_s = malloc((n + 1) * sizeof *r->start_s);
    r->end_s = malloc((n + 1) * sizeof *r->end_s);
    r->steps = calloc((size_t)pl->nsteps + 1, sizeof *r->steps);
    r->step_end_s = calloc((size_t)pl->nsteps + 1, sizeof *r->step_end_s);
    if (!r->start_s || !r->end_s || !r->steps || !r->step_end_s ||
        !index_buffers(pl, true, &l.a_off, &l.a_idx) ||
        !index_buffers(pl, false, &l.f_off, &l.f_idx)) {
        st = diag_set(e, LLMSIM_EFAIL, "out of memory simulating %zu tasks", n);
        goto out;
    }
    if (record_memory) { /* at most two changes a buffer: no growing on the way */
        l.s.mem_cap = 2 * pl->nbuffers + 1;
        if (!(r->mem = malloc(l.s.mem_cap * sizeof *r->mem))) {
            st = diag_set(e, LLMSIM_EFAIL, "out of memory simulating %zu tasks", n);
            goto out;
        }
    }
    resident_buffers(&l, 1.0);
    st = run_events(&l, e);
    if (st)
        goto out;
    r->makespan_s = l.now;
    resident_buffers(&l, -1.0);
    memcpy(r->final_bytes, l.s.used, sizeof r->final_bytes);
out:
    plan_ready_free(&l.q);
    free(l.a_off);
    free(l.a_idx);
    free(l.f_off);
    free(l.f_idx);
    eventq_free(&l.ev);
    if (st) /* nothing of a failed simulation is kept */
        sim_result_free(r);
    r->wall_s = llmsim_now_s() - t0;
    return st;
}

/* ---- the whole workload from one block */

void sim_totals_get(const plan *pl, const sim_result *r, sim_totals *t)
{
    memset(t, 0, sizeof *t);
    t->total_s = pl->blocks * r->makespan_s;
    t->prefill_s = pl->blocks * r->step_end_s[0];
    t->decode_s = t->total_s - t->prefill_s;
    t->throughput_tok_s = pl->num_prompts * (double)pl->gen_len / t->total_s;
    for (size_t i = 0; i < pl->ntasks; i++) {
        const plan_task *k = &pl->tasks[i];
        if (k->layer >= pl->nlayers)
            continue;
        if (k->step == 0)
            t->prefill_stage_s[k->stage] += k->dur_s;
        else
            t->layer_stage_s[k->stage] += k->dur_s;
    }
    for (int s = 0; s < CM_NSTAGES; s++) {
        t->prefill_stage_s[s] /= pl->nlayers;
        if (pl->nsteps > 1)
            t->layer_stage_s[s] /= (double)pl->nlayers * (pl->nsteps - 1);
    }
}

/* ---- Chrome Trace Event JSON */

llmsim_status sim_trace_file(const char *path, const char *title,
                             void (*events)(FILE *f, const void *ctx), const void *ctx, diag *e)
{
    atomicfile a;
    llmsim_status st = atomicfile_open(&a, path, "--trace", e);
    if (st)
        return st;
    fprintf(a.f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
    fprintf(a.f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"");
    for (const char *c = title; *c; c++)
        if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20)
            fputc(*c, a.f);
    fprintf(a.f, "\"}}");
    events(a.f, ctx);
    fprintf(a.f, "\n]}\n");
    return atomicfile_commit(&a, "--trace", e);
}

void sim_trace_thread(FILE *f, long long tid, const char *name)
{
    fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%lld,\"args\":{\"name\":"
               "\"%s\"}}", tid, name);
}

typedef struct plan_trace {
    const plan *pl;
    const sim_result *r;
} plan_trace;

/* A thread per resource, a span per task, the memory counters. */
static void plan_trace_events(FILE *f, const void *ctx)
{
    const plan *pl = ((const plan_trace *)ctx)->pl;
    const sim_result *r = ((const plan_trace *)ctx)->r;
    for (int res = 0; res < PLAN_NRES; res++)
        sim_trace_thread(f, res + 1, plan_res_names[res]);
    char id[96];
    for (size_t i = 0; i < pl->ntasks; i++) {
        const plan_task *t = &pl->tasks[i];
        plan_task_id(pl, i, id, sizeof id);
        fprintf(f, ",\n{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":1,\"tid\":%d,"
                   "\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"id\":\"%s\",\"step\":%d,\"bytes\":%.0f}}",
                plan_kind_names[t->kind], cm_stage_names[t->stage], t->res + 1, 1e6 * r->start_s[i],
                1e6 * (r->end_s[i] - r->start_s[i]), id, t->step, t->bytes);
    }
    for (size_t k = 0; k < r->nmem; k++)
        fprintf(f, ",\n{\"name\":\"memory %s\",\"ph\":\"C\",\"pid\":1,\"ts\":%.3f,\"args\":"
                   "{\"bytes\":%.0f}}", tier_names[r->mem[k].tier], 1e6 * r->mem[k].time_s,
                r->mem[k].bytes);
}

llmsim_status sim_trace_write(const plan *pl, const sim_result *r, const char *title,
                              const char *path, diag *e)
{
    const plan_trace ctx = {pl, r};
    return sim_trace_file(path, title, plan_trace_events, &ctx, e);
}

double sim_plan_peak(const plan *pl, tier t)
{
    double inf[TIER_COUNT] = {1e300, 1e300, 1e300};
    sim_result r;
    diag e;
    diag_clear(&e);
    if (sim_run(pl, inf, false, &r, &e))
        return 0;
    double peak = r.peak_bytes[t];
    sim_result_free(&r);
    return peak;
}
