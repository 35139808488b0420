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
#include "sim/eventq.h"
#include "common/clock.h"

/* ---- a min-heap of task indices: the ready queue of one resource */

typedef struct idxheap {
    uint32_t *a;
    size_t n, cap;
} idxheap;

static bool idx_push(idxheap *h, uint32_t v)
{
    uint32_t *a = llmsim_grow(h->a, h->n, &h->cap, sizeof *a, 256);
    if (!a)
        return false;
    h->a = a;
    size_t i = h->n++;
    while (i > 0 && h->a[(i - 1) / 2] > v) {
        h->a[i] = h->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->a[i] = v;
    return true;
}

static uint32_t idx_pop(idxheap *h)
{
    uint32_t top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        uint32_t best = last;
        if (l < h->n && h->a[l] < best) {
            m = l;
            best = h->a[l];
        }
        if (r < h->n && h->a[r] < best)
            m = r;
        if (m == i)
            break;
        h->a[i] = h->a[m];
        i = m;
    }
    if (h->n > 0)
        h->a[i] = last;
    return top;
}

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
    llmsim_status st = LLMSIM_OK;
    uint32_t *indeg = malloc((n + 1) * sizeof *indeg);
    uint32_t *succ_off = calloc(n + 2, sizeof *succ_off);
    uint32_t *succ = malloc((pl->ndeps + 1) * sizeof *succ);
    uint32_t *a_off = NULL, *a_idx = NULL, *f_off = NULL, *f_idx = NULL;
    r->start_s = malloc((n + 1) * sizeof *r->start_s);
    r->end_s = malloc((n + 1) * sizeof *r->end_s);
    r->steps = calloc((size_t)pl->nsteps + 1, sizeof *r->steps);
    r->step_end_s = calloc((size_t)pl->nsteps + 1, sizeof *r->step_end_s);
    idxheap ready[PLAN_NRES];
    memset(ready, 0, sizeof ready);
    eventq q = {0};
    if (!indeg || !succ_off || !succ || !r->start_s || !r->end_s || !r->steps || !r->step_end_s ||
        !index_buffers(pl, true, &a_off, &a_idx) || !index_buffers(pl, false, &f_off, &f_idx)) {
        st = diag_set(e, LLMSIM_EFAIL, "out of memory simulating %zu tasks", n);
        goto out;
    }
    /* successors (CSR) and in-degrees */
    for (size_t i = 0; i < n; i++) {
        const plan_task *t = &pl->tasks[i];
        indeg[i] = t->ndeps;
        for (uint32_t d = 0; d < t->ndeps; d++)
            succ_off[pl->deps[t->dep_first + d] + 1]++;
    }
    for (size_t i = 0; i < n; i++)
        succ_off[i + 1] += succ_off[i];
    {
        uint32_t *fill = malloc((n + 1) * sizeof *fill);
        if (!fill) {
            st = diag_set(e, LLMSIM_EFAIL, "out of memory");
            goto out;
        }
        memcpy(fill, succ_off, (n + 1) * sizeof *fill);
        for (size_t i = 0; i < n; i++) {
            const plan_task *t = &pl->tasks[i];
            for (uint32_t d = 0; d < t->ndeps; d++)
                succ[fill[pl->deps[t->dep_first + d]]++] = (uint32_t)i;
        }
        free(fill);
    }

    sim_state s = {pl, r, capacity, {0}, record_memory, 0, false};
    /* resident buffers from the start */
    for (size_t k = 0; k < pl->nbuffers; k++)
        if (pl->buffers[k].alloc_task == PLAN_NONE)
            mem_change(&s, (tier)pl->buffers[k].tier, pl->buffers[k].bytes, 0.0, PLAN_NONE);

    bool busy[PLAN_NRES] = {false};
    bool oom = false;
    for (size_t i = 0; i < n; i++)
        if (indeg[i] == 0)
            oom |= !idx_push(&ready[pl->tasks[i].res], (uint32_t)i);
    double now = 0;
    size_t done = 0;
    for (;;) {
        /* start what can start */
        for (int res = 0; res < PLAN_NRES; res++) {
            if (busy[res] || ready[res].n == 0)
                continue;
            uint32_t ti = idx_pop(&ready[res]);
            const plan_task *t = &pl->tasks[ti];
            busy[res] = true;
            r->start_s[ti] = now;
            for (uint32_t k = a_off[ti]; k < a_off[ti + 1]; k++) {
                const plan_buffer *bf = &pl->buffers[a_idx[k]];
                mem_change(&s, (tier)bf->tier, bf->bytes, now, ti);
            }
            oom |= !eventq_push(&q, now + t->dur_s, ti);
            r->events++;
        }
        if (oom || s.oom) {
            st = diag_set(e, LLMSIM_EFAIL, "out of memory during the simulation");
            goto out;
        }
        sim_event ev;
        if (!eventq_pop(&q, &ev))
            break;
        now = ev.time_s;
        const uint32_t ti = ev.task;
        const plan_task *t = &pl->tasks[ti];
        r->end_s[ti] = now;
        r->events++;
        done++;
        busy[t->res] = false;
        r->busy_s[t->res] += t->dur_s;
        r->steps[t->step].s[t->stage] += t->dur_s;
        if (now > r->step_end_s[t->step])
            r->step_end_s[t->step] = now;
        for (uint32_t k = f_off[ti]; k < f_off[ti + 1]; k++) {
            const plan_buffer *bf = &pl->buffers[f_idx[k]];
            mem_change(&s, (tier)bf->tier, -bf->bytes, now, ti);
        }
        for (uint32_t k = succ_off[ti]; k < succ_off[ti + 1]; k++) {
            uint32_t v = succ[k];
            if (--indeg[v] == 0)
                oom |= !idx_push(&ready[pl->tasks[v].res], v);
        }
    }
    if (done != n) {
        st = diag_set(e, LLMSIM_EFAIL, "simulation stalled after %zu of %zu tasks: the plan has a "
                      "dependency cycle (a bug in plan/)", done, n);
        goto out;
    }
    r->makespan_s = now;
    /* resident buffers leave at the end */
    for (size_t k = 0; k < pl->nbuffers; k++)
        if (pl->buffers[k].alloc_task == PLAN_NONE)
            mem_change(&s, (tier)pl->buffers[k].tier, -pl->buffers[k].bytes, now, PLAN_NONE);
    memcpy(r->final_bytes, s.used, sizeof r->final_bytes);
out:
    free(indeg);
    free(succ_off);
    free(succ);
    free(a_off);
    free(a_idx);
    free(f_off);
    free(f_idx);
    for (int i = 0; i < PLAN_NRES; i++)
        free(ready[i].a);
    eventq_free(&q);
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

void sim_trace_begin(FILE *f, const char *title)
{
    fprintf(f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
    fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"");
    for (const char *c = title; *c; c++)
        if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20)
            fputc(*c, f);
    fprintf(f, "\"}}");
}

llmsim_status sim_trace_write(const plan *pl, const sim_result *r, const char *title,
                              const char *path, diag *e)
{
    atomicfile a;
    llmsim_status st = atomicfile_open(&a, path, "--trace", e);
    if (st)
        return st;
    FILE *f = a.f;
    sim_trace_begin(f, title);
    for (int res = 0; res < PLAN_NRES; res++)
        fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"args\":{\"name\":"
                   "\"%s\"}}", res + 1, plan_res_names[res]);
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
    fprintf(f, "\n]}\n");
    return atomicfile_commit(&a, "--trace", e);
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
