/* timeline — see timeline.h. */
#include "db/timeline.h"

#include "db/result_json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

llmsim_status timeline_measured(const plan *pl, const engine_result *er, sim_result *r, diag *e)
{
    memset(r, 0, sizeof *r);
    r->ntasks = pl->ntasks;
    r->nsteps = pl->nsteps;
    r->fits = true;
    r->overflow_task = PLAN_NONE;
    r->start_s = malloc((pl->ntasks + 1) * sizeof *r->start_s);
    r->end_s = malloc((pl->ntasks + 1) * sizeof *r->end_s);
    r->steps = calloc((size_t)pl->nsteps + 1, sizeof *r->steps);
    r->step_end_s = calloc((size_t)pl->nsteps + 1, sizeof *r->step_end_s);
    if (!r->start_s || !r->end_s || !r->steps || !r->step_end_s)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    memcpy(r->start_s, er->start_s, pl->ntasks * sizeof *r->start_s);
    memcpy(r->end_s, er->end_s, pl->ntasks * sizeof *r->end_s);
    for (size_t i = 0; i < pl->ntasks; i++) {
        const plan_task *t = &pl->tasks[i];
        double d = er->end_s[i] - er->start_s[i];
        r->busy_s[t->res] += d;
        r->steps[t->step].s[t->stage] += d;
        if (er->end_s[i] > r->step_end_s[t->step])
            r->step_end_s[t->step] = er->end_s[i];
        if (er->end_s[i] > r->makespan_s)
            r->makespan_s = er->end_s[i];
        r->events += 2;
    }
    r->peak_bytes[TIER_CPU] = er->ram_bytes;
    r->peak_bytes[TIER_GPU] = er->gpu_bytes;
    return LLMSIM_OK;
}

typedef struct mem_event {
    double time_s;
    double delta;
    int tier;
} mem_event;

static int event_cmp(const void *a, const void *b)
{
    const mem_event *x = a, *y = b;
    if (x->time_s != y->time_s)
        return x->time_s < y->time_s ? -1 : 1;
    /* at one instant, releases before allocations: the task that frees a
     * buffer ends before the one that allocates starts, as in the simulator */
    return (x->delta > y->delta) - (x->delta < y->delta);
}

/* Append smp to s[0..*ns), in time order: the same tier at the same instant
 * keeps its last value. */
static void coalesce_push(store_mem_sample *s, size_t *ns, store_mem_sample smp)
{
    size_t k = *ns;
    while (k > 0 && s[k - 1].time_s == smp.time_s && s[k - 1].tier != smp.tier)
        k--;
    if (k > 0 && s[k - 1].time_s == smp.time_s && s[k - 1].tier == smp.tier)
        s[k - 1].bytes = smp.bytes;
    else
        s[(*ns)++] = smp;
}

llmsim_status timeline_memory_sim(const sim_result *r, store_mem_sample **out, size_t *n, diag *e)
{
    store_mem_sample *s = malloc((r->nmem + TIER_COUNT + 1) * sizeof *s);
    if (!s)
        return diag_set(e, LLMSIM_EFAIL, "out of memory (memory timeline)");
    size_t ns = 0;
    double occ[TIER_COUNT] = {0};
    for (size_t i = 0; i < r->nmem; i++) {
        const sim_mem_sample *m = &r->mem[i];
        occ[m->tier] = m->bytes < 0 && m->bytes > -1.0 ? 0 : m->bytes; /* rounding of the sums */
        coalesce_push(s, &ns, (store_mem_sample){m->time_s, tier_names[m->tier], occ[m->tier]});
    }
    for (int t = 0; t < TIER_COUNT; t++)
        if (occ[t] != 0)
            coalesce_push(s, &ns, (store_mem_sample){r->makespan_s, tier_names[t], 0});
    *out = s;
    *n = ns;
    return LLMSIM_OK;
}

llmsim_status timeline_memory(const plan *pl, const double *start, const double *end,
                              store_mem_sample **out, size_t *n, diag *e)
{
    *out = NULL;
    *n = 0;
    double last = 0;
    for (size_t i = 0; i < pl->ntasks; i++)
        if (end[i] > last)
            last = end[i];
    mem_event *ev = malloc((2 * pl->nbuffers + 1) * sizeof *ev);
    store_mem_sample *s = malloc((2 * pl->nbuffers + 1) * sizeof *s);
    if (!ev || !s) {
        free(ev);
        free(s);
        return diag_set(e, LLMSIM_EFAIL, "out of memory (memory timeline)");
    }
    size_t ne = 0;
    for (size_t i = 0; i < pl->nbuffers; i++) {
        const plan_buffer *b = &pl->buffers[i];
        if (b->bytes <= 0 || b->tier >= TIER_COUNT)
            continue;
        double from = b->alloc_task == PLAN_NONE ? 0.0 : start[b->alloc_task];
        double to = b->free_task == PLAN_NONE ? last : end[b->free_task];
        ev[ne++] = (mem_event){from, b->bytes, b->tier};
        ev[ne++] = (mem_event){to, -b->bytes, b->tier};
    }
    qsort(ev, ne, sizeof *ev, event_cmp);
    double occ[TIER_COUNT] = {0};
    size_t ns = 0;
    for (size_t i = 0; i < ne; i++) {
        occ[ev[i].tier] += ev[i].delta;
        if (occ[ev[i].tier] < 0 && occ[ev[i].tier] > -1.0)
            occ[ev[i].tier] = 0; /* rounding of the sums */
        coalesce_push(s, &ns, (store_mem_sample){ev[i].time_s, tier_names[ev[i].tier],
                                                   occ[ev[i].tier]});
    }
    free(ev);
    *out = s;
    *n = ns;
    return LLMSIM_OK;
}

/* Store rows of every task of a timeline (a store_task_fill). */
typedef struct task_rows {
    const plan *pl;
    const sim_result *r;
} task_rows;

static void task_rows_fill(void *ctx, size_t i, store_task *out, char *id, size_t id_len)
{
    const task_rows *tr = ctx;
    const plan_task *t = &tr->pl->tasks[i];
    plan_task_id(tr->pl, i, id, id_len);
    out->resource = plan_res_names[t->res];
    out->start_s = tr->r->start_s[i];
    out->end_s = tr->r->end_s[i];
    out->bytes = t->bytes;
    out->flops = 0;
}

/* Memory timeline, then one run with every task. */
static llmsim_status record_timeline(const record_job *job, const char *kind, const plan *pl,
                                     const sim_result *r, const record_metric *metrics, int nmetrics,
                                     cJSON *obj, int64_t *run_id, diag *e)
{
    store_mem_sample *mem = NULL;
    size_t nmem = 0;
    llmsim_status st = r->mem ? timeline_memory_sim(r, &mem, &nmem, e)
                              : timeline_memory(pl, r->start_s, r->end_s, &mem, &nmem, e);
    if (st)
        return st;
    char *text = cJSON_PrintUnformatted(obj);
    if (!text) {
        free(mem);
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    }
    task_rows rows = {pl, r};
    record_data rec = {
        .kind = kind, .status = r->fits || strcmp(kind, "simulate") ? "ok" : "infeasible",
        .metrics = metrics, .nmetrics = nmetrics, .steps = r->steps,
        .nsteps = r->nsteps, .ntasks = pl->ntasks, .fill = task_rows_fill, .fill_ctx = &rows,
        .result_json = text, .mem = mem, .nmem = nmem,
    };
    st = record_run(job, &rec, run_id, e);
    free(text);
    free(mem);
    if (!st)
        cJSON_AddNumberToObject(obj, "run_id", (double)*run_id);
    return st;
}

llmsim_status record_simulation(const record_job *job, const plan *pl, const sim_result *r,
                                sim_totals *t, cJSON **obj, int64_t *run_id, diag *e)
{
    sim_totals_get(pl, r, t);
    *obj = result_simulation_json(job, pl, r, t);
    record_metric metrics[RECORD_SUMMARY_METRICS + 2];
    int nm = record_summary_metrics(metrics, t->throughput_tok_s, t->total_s, t->prefill_s,
                                    t->decode_s, r->fits, r->peak_bytes);
    metrics[nm++] = (record_metric){"tasks", (double)pl->ntasks};
    metrics[nm++] = (record_metric){"events", (double)r->events};
    /* not recorded, *obj is still the result (without a run id) */
    return record_timeline(job, "simulate", pl, r, metrics, nm, *obj, run_id, e);
}

/* The metrics of a measurement: the totals, what else decides it (validate
 * reuses only a match), and where measured the disk's rates around it and
 * the conditions it ran under. m has room for 16 + COND_MAX_FIELDS. */
static int measure_metrics(const plan *pl, const engine_result *er, const engine_opts *o,
                           const sim_totals *t, record_metric *m)
{
    int n = 0;
    m[n++] = (record_metric){"throughput_tok_s", t->throughput_tok_s};
    m[n++] = (record_metric){"total_s", t->total_s};
    m[n++] = (record_metric){"prefill_s", t->prefill_s};
    m[n++] = (record_metric){"decode_s", t->decode_s};
    m[n++] = (record_metric){"peak_cpu_bytes", er->ram_bytes};
    m[n++] = (record_metric){"peak_gpu_bytes", er->gpu_bytes};
    m[n++] = (record_metric){"tasks", (double)pl->ntasks};
    m[n++] = (record_metric){"engine_threads", (double)o->threads};
    m[n++] = (record_metric){"synthetic_seed", (double)o->synthetic_seed};
    if (er->disk_now_Bps[0] > 0) {
        m[n++] = (record_metric){"disk_read_now_Bps", er->disk_now_Bps[0]};
        m[n++] = (record_metric){"disk_write_now_Bps", er->disk_now_Bps[1]};
    }
    for (int i = 0; er->cond.measured && i < cond_field_count(); i++) {
        double v;
        const char *key = cond_field_get(&er->cond, i, &v);
        if (isfinite(v)) /* a figure not read is not recorded */
            m[n++] = (record_metric){key, v};
    }
    return n;
}

llmsim_status record_measurement(const record_job *job, const plan *pl, const engine_result *er,
                                 const engine_opts *o, sim_result *r, sim_totals *t, cJSON **obj,
                                 int64_t *run_id, diag *e)
{
    *obj = NULL;
    llmsim_status st = timeline_measured(pl, er, r, e);
    if (st)
        return st;
    sim_totals_get(pl, r, t);
    /* the whole workload as measured (every block), not one block scaled */
    t->total_s = er->total_s;
    t->prefill_s = er->prefill_s;
    t->decode_s = er->total_s - er->prefill_s;
    t->throughput_tok_s = (double)er->num_prompts * (double)job->workload->gen_len / er->total_s;
    *obj = result_simulation_json(job, pl, r, t);
    cJSON_DeleteItemFromObjectCaseSensitive(*obj, "simulation");
    cJSON *meas = cJSON_AddObjectToObject(*obj, "measurement");
    cJSON_AddStringToObject(meas, "engine", pl->has_gpu ? "gpu" : "cpu");
    if (pl->has_gpu) {
        cJSON_AddStringToObject(meas, "device", er->device);
        cJSON_AddNumberToObject(meas, "gpu_peak_bytes", er->gpu_bytes);
        cJSON_AddNumberToObject(meas, "gpu_peak_predicted_bytes", sim_plan_peak(pl, TIER_GPU));
    }
    cJSON_AddBoolToObject(meas, "direct_io", er->direct_io);
    cJSON_AddNumberToObject(meas, "ram_bytes", er->ram_bytes);
    cJSON_AddBoolToObject(meas, "interrupted", er->interrupted);
    cJSON_AddStringToObject(meas, "weights", o->weights_path ? o->weights_path : "synthetic");
    if (o->score_from) {
        double ppl = er->nll_count ? exp(er->nll_sum / (double)er->nll_count) : NAN;
        cJSON_AddNumberToObject(*obj, "perplexity", ppl);
        cJSON_AddNumberToObject(*obj, "tokens_scored", (double)er->nll_count);
    }
    record_metric metrics[16 + COND_MAX_FIELDS];
    int nmetrics = measure_metrics(pl, er, o, t, metrics);
    if (er->cond.measured)
        cJSON_AddItemToObject(*obj, "conditions", result_conditions_json(&er->cond));
    st = record_timeline(job, "measure", pl, r, metrics, nmetrics, *obj, run_id, e);
    if (st) {
        cJSON_Delete(*obj);
        *obj = NULL;
    }
    return st;
}
