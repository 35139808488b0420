/*
 * output — JSON (cJSON) and table forms of results. The JSON keys named in
 * ARCHITECTURE §11 are a contract: tests and scripts parse them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/units.h"
#include "db/store.h"
#include "sim/sim.h"

bool cli_step_kept(int j, int n)
{
    if (n <= CLI_MAX_STEPS)
        return true;
    int stride = (n + CLI_MAX_STEPS - 1) / CLI_MAX_STEPS;
    return j == 0 || j == n - 1 || j % stride == 0;
}

const char *cli_bytes(double v, char *buf, size_t len)
{
    units_format(UNITS_BYTES, v, buf, len);
    return buf;
}

void cli_print_json(cJSON *obj)
{
    char *s = cJSON_Print(obj);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    cJSON_Delete(obj);
}

static cJSON *placement_json(const placement *pl)
{
    cJSON *o = cJSON_CreateObject();
    for (int t = 0; t < TIER_COUNT; t++)
        cJSON_AddNumberToObject(o, tier_names[t], pl->f[t]);
    return o;
}

static cJSON *quant_json(const quant *q)
{
    if (!q->bits)
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "bits", q->bits);
    cJSON_AddNumberToObject(o, "group_size", q->group_size);
    return o;
}

cJSON *cli_policy_json(const policy *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "weights", placement_json(&p->weights));
    cJSON_AddItemToObject(o, "kv_cache", placement_json(&p->kv_cache));
    cJSON_AddItemToObject(o, "activations", placement_json(&p->activations));
    cJSON_AddNumberToObject(o, "gpu_batch_size", p->gpu_batch_size);
    cJSON_AddNumberToObject(o, "num_gpu_batches", p->num_gpu_batches);
    cJSON_AddItemToObject(o, "weight_quant", quant_json(&p->weight_quant));
    cJSON_AddItemToObject(o, "kv_quant", quant_json(&p->kv_quant));
    cJSON_AddBoolToObject(o, "cpu_attention", p->cpu_attention);
    cJSON_AddBoolToObject(o, "overlap", p->overlap);
    cJSON_AddBoolToObject(o, "pin_weights", p->pin_weights);
    return o;
}

static cJSON *tiers_json(const double v[TIER_COUNT])
{
    cJSON *o = cJSON_CreateObject();
    for (int t = 0; t < TIER_COUNT; t++)
        cJSON_AddNumberToObject(o, tier_names[t], v[t]);
    return o;
}

cJSON *cli_stages_json(const double s[CM_NSTAGES])
{
    cJSON *o = cJSON_CreateObject();
    char key[64];
    for (int k = 0; k < CM_NSTAGES; k++) {
        snprintf(key, sizeof key, "%s_s", cm_stage_names[k]);
        cJSON_AddNumberToObject(o, key, s[k]);
    }
    return o;
}

static cJSON *res_json(const double s[CM_NRES])
{
    cJSON *o = cJSON_CreateObject();
    char key[64];
    for (int k = 0; k < CM_NRES; k++) {
        snprintf(key, sizeof key, "%s_s", cm_res_names[k]);
        cJSON_AddNumberToObject(o, key, s[k]);
    }
    return o;
}

static const char *term_name(cm_term t)
{
    static const char *names[CM_NTERMS] = {"h2d", "d2h", "disk", "compute"};
    return names[t];
}

cJSON *cli_prediction_json(const cli_job *job, const cm_result *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", job->model.name);
    cJSON_AddStringToObject(o, "hardware", job->hw.name);
    cJSON_AddBoolToObject(o, "feasible", r->feasible);
    if (!r->feasible) {
        cJSON *inf = cJSON_AddObjectToObject(o, "infeasible");
        cJSON_AddStringToObject(inf, "tier", tier_names[r->overflow_tier]);
        cJSON_AddNumberToObject(inf, "overflow_bytes", r->overflow_bytes);
    }
    cJSON_AddNumberToObject(o, "throughput_tok_s", r->throughput_tok_s);
    cJSON_AddNumberToObject(o, "total_s", r->total_s);
    cJSON_AddNumberToObject(o, "prefill_s", r->prefill_s);
    cJSON_AddNumberToObject(o, "decode_s", r->decode_s);
    cJSON_AddItemToObject(o, "peak_bytes", tiers_json(r->peak_bytes));
    cJSON_AddItemToObject(o, "capacity_bytes", tiers_json(r->capacity_bytes));
    /* per layer, one decode step, averaged over the steps (what FlexGen's
     * per-layer timers report); prefill_stages: per layer, the prefill */
    cJSON_AddItemToObject(o, "stages", cli_stages_json(r->layer_stage_s));
    cJSON_AddItemToObject(o, "prefill_stages", cli_stages_json(r->prefill_stage_s));
    cJSON *res = cJSON_AddObjectToObject(o, "resources");
    cJSON_AddItemToObject(res, "prefill", res_json(r->prefill_res_s));
    cJSON_AddItemToObject(res, "decode", res_json(r->decode_res_s));
    cJSON *bn = cJSON_AddObjectToObject(o, "bottleneck");
    cJSON_AddStringToObject(bn, "prefill", term_name(r->prefill_bottleneck));
    cJSON_AddStringToObject(bn, "decode", r->nsteps ? term_name(r->decode_bottleneck) : "none");
    cJSON_AddNumberToObject(o, "prefill_layer_s", r->prefill_layer_s);
    cJSON_AddNumberToObject(o, "decode_layer_s", r->decode_layer_s);
    cJSON *steps = cJSON_AddArrayToObject(o, "steps");
    for (int j = 0; j <= r->nsteps; j++) {
        if (!cli_step_kept(j, r->nsteps + 1))
            continue;
        cJSON *st = cli_stages_json(r->steps[j].s);
        cJSON_AddNumberToObject(st, "step", j);
        cJSON_AddItemToArray(steps, st);
    }
    cJSON *wl = cJSON_AddObjectToObject(o, "workload");
    cJSON_AddNumberToObject(wl, "prompt_len", (double)job->workload.prompt_len);
    cJSON_AddNumberToObject(wl, "gen_len", (double)job->workload.gen_len);
    cJSON_AddNumberToObject(wl, "num_prompts", r->num_prompts);
    cJSON_AddNumberToObject(wl, "blocks", r->blocks);
    cJSON_AddItemToObject(o, "policy", cli_policy_json(&job->policy));
    /* what the engine places in whole tensors (costmodel/placement.h) */
    cJSON *real = cJSON_AddObjectToObject(o, "realized");
    static const char *names[3] = {"weights", "kv_cache", "activations"};
    for (int i = 0; i < 3; i++)
        cJSON_AddItemToObject(real, names[i], placement_json(&r->realized[i]));
    cJSON_AddItemToObject(real, "head_weights", placement_json(&r->realized_head));
    return o;
}

static void pct_line(FILE *out, const char *name, const placement *asked, const placement *pl)
{
    fprintf(out, "  %-12s gpu %5.1f%%  cpu %5.1f%%  disk %5.1f%%", name, 100 * pl->f[TIER_GPU],
            100 * pl->f[TIER_CPU], 100 * pl->f[TIER_DISK]);
    bool same = true;
    for (int t = 0; t < TIER_COUNT; t++)
        same = same && fabs(asked->f[t] - pl->f[t]) < 5e-4;
    if (!same)
        fprintf(out, "   (asked %.0f/%.0f/%.0f; whole tensors)", 100 * asked->f[TIER_GPU],
                100 * asked->f[TIER_CPU], 100 * asked->f[TIER_DISK]);
    fputc('\n', out);
}

static void fmt_time(double s, char *buf, size_t len) { units_format(UNITS_TIME, s, buf, len); }

void cli_prediction_table(FILE *out, const cli_job *job, const cm_result *r)
{
    const policy *p = &job->policy;
    char a[32], b[32], c[32];
    fprintf(out, "model     %s (%s)\nhardware  %s\n", job->model.name,
            model_family_names[job->model.family], job->hw.name);
    fprintf(out, "workload  prompt %lld, generate %lld, %.0f prompts in %.0f block(s) of %d x %d\n",
            job->workload.prompt_len, job->workload.gen_len, r->num_prompts, r->blocks,
            p->gpu_batch_size, p->num_gpu_batches);
    fprintf(out, "placement (realized)\n");
    static const char *names[3] = {"weights", "kv_cache", "activations"};
    for (int i = 0; i < 3; i++)
        pct_line(out, names[i], &r->requested[i], &r->realized[i]);
    fprintf(out, "  weight quant %s, kv quant %s, cpu attention %s, overlap %s\n",
            p->weight_quant.bits ? (p->weight_quant.bits == 4 ? "4-bit" : "8-bit") : "none",
            p->kv_quant.bits ? (p->kv_quant.bits == 4 ? "4-bit" : "8-bit") : "none",
            p->cpu_attention ? "on" : "off", p->overlap ? "on" : "off");
    fprintf(out, "\n");
    if (!r->feasible)
        fprintf(out, "INFEASIBLE: the %s tier overflows by %s (peak %s, capacity %s)\n\n",
                tier_names[r->overflow_tier], cli_bytes(r->overflow_bytes, a, sizeof a),
                cli_bytes(r->peak_bytes[r->overflow_tier], b, sizeof b),
                cli_bytes(r->capacity_bytes[r->overflow_tier], c, sizeof c));
    fmt_time(r->total_s, a, sizeof a);
    fprintf(out, "throughput  %.4g tok/s\n", r->throughput_tok_s);
    fprintf(out, "total       %s\n", a);
    fmt_time(r->prefill_s, a, sizeof a);
    fmt_time(r->decode_s, b, sizeof b);
    fprintf(out, "prefill     %s\ndecode      %s\n\n", a, b);
    fprintf(out, "per layer             prefill        decode (avg step)\n");
    for (int k = 0; k < CM_NSTAGES; k++) {
        fmt_time(r->prefill_stage_s[k], a, sizeof a);
        fmt_time(r->layer_stage_s[k], b, sizeof b);
        fprintf(out, "  %-18s %-14s %s\n", cm_stage_names[k], a, b);
    }
    fmt_time(r->prefill_layer_s, a, sizeof a);
    fmt_time(r->decode_layer_s, b, sizeof b);
    fprintf(out, "  %-18s %-14s %s\n", "layer time", a, b);
    fprintf(out, "  %-18s %-14s %s\n\n", "bottleneck",
            (const char *[]){"h2d", "d2h", "disk", "compute"}[r->prefill_bottleneck],
            r->nsteps ? (const char *[]){"h2d", "d2h", "disk", "compute"}[r->decode_bottleneck]
                      : "-");
    fprintf(out, "peak memory           peak           capacity\n");
    for (int t = 0; t < TIER_COUNT; t++)
        fprintf(out, "  %-18s %-14s %s\n", tier_names[t], cli_bytes(r->peak_bytes[t], a, sizeof a),
                cli_bytes(r->capacity_bytes[t], b, sizeof b));
}

/* ---- simulation results */

void cli_sim_totals_get(const plan *pl, const sim_result *r, cli_sim_totals *t)
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

cJSON *cli_simulation_json(const cli_job *job, const plan *pl, const sim_result *r,
                           const cli_sim_totals *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", job->model.name);
    cJSON_AddStringToObject(o, "hardware", job->hw.name);
    cJSON_AddBoolToObject(o, "feasible", r->fits);
    if (!r->fits) {
        cJSON *inf = cJSON_AddObjectToObject(o, "infeasible");
        char id[96];
        if (r->overflow_task == PLAN_NONE) /* the resident data alone does not fit */
            snprintf(id, sizeof id, "resident (weights, KV cache, hidden states)");
        else
            plan_task_id(pl, r->overflow_task, id, sizeof id);
        cJSON_AddStringToObject(inf, "tier", tier_names[r->overflow_tier]);
        cJSON_AddNumberToObject(inf, "overflow_bytes", r->overflow_bytes);
        cJSON_AddStringToObject(inf, "task", id);
    }
    cJSON_AddNumberToObject(o, "throughput_tok_s", t->throughput_tok_s);
    cJSON_AddNumberToObject(o, "total_s", t->total_s);
    cJSON_AddNumberToObject(o, "prefill_s", t->prefill_s);
    cJSON_AddNumberToObject(o, "decode_s", t->decode_s);
    cJSON *pk = cJSON_AddObjectToObject(o, "peak_bytes");
    for (int k = 0; k < TIER_COUNT; k++)
        cJSON_AddNumberToObject(pk, tier_names[k], r->peak_bytes[k]);
    cJSON_AddItemToObject(o, "stages", cli_stages_json(t->layer_stage_s));
    cJSON_AddItemToObject(o, "prefill_stages", cli_stages_json(t->prefill_stage_s));
    cJSON *steps = cJSON_AddArrayToObject(o, "steps");
    for (int j = 0; j < r->nsteps; j++) {
        if (!cli_step_kept(j, r->nsteps))
            continue;
        cJSON *st = cli_stages_json(r->steps[j].s);
        cJSON_AddNumberToObject(st, "step", j);
        cJSON_AddNumberToObject(st, "end_s", r->step_end_s[j]);
        cJSON_AddItemToArray(steps, st);
    }
    cJSON *ut = cJSON_AddObjectToObject(o, "utilization");
    for (int k = 0; k < PLAN_NRES; k++)
        cJSON_AddNumberToObject(ut, plan_res_names[k],
                                r->makespan_s > 0 ? r->busy_s[k] / r->makespan_s : 0);
    cJSON *sim = cJSON_AddObjectToObject(o, "simulation");
    cJSON_AddNumberToObject(sim, "tasks", (double)pl->ntasks);
    cJSON_AddNumberToObject(sim, "events", (double)r->events);
    cJSON_AddNumberToObject(sim, "wall_s", r->wall_s);
    cJSON_AddNumberToObject(sim, "events_per_s", r->wall_s > 0 ? r->events / r->wall_s : 0);
    cJSON_AddNumberToObject(sim, "block_s", r->makespan_s);
    cJSON_AddNumberToObject(sim, "blocks", pl->blocks);
    cJSON *wl = cJSON_AddObjectToObject(o, "workload");
    cJSON_AddNumberToObject(wl, "prompt_len", (double)job->workload.prompt_len);
    cJSON_AddNumberToObject(wl, "gen_len", (double)job->workload.gen_len);
    cJSON_AddNumberToObject(wl, "num_prompts", pl->num_prompts);
    cJSON_AddNumberToObject(wl, "blocks", pl->blocks);
    cJSON_AddItemToObject(o, "policy", cli_policy_json(&job->policy));
    cJSON *real = cJSON_AddObjectToObject(o, "realized");
    cJSON_AddItemToObject(real, "weights", placement_json(&pl->realized.weights));
    cJSON_AddItemToObject(real, "kv_cache", placement_json(&pl->kv_realized));
    cJSON_AddItemToObject(real, "activations", placement_json(&pl->act_realized));
    cJSON_AddItemToObject(real, "head_weights", placement_json(&pl->realized.head));
    return o;
}


/* ---- timelines as tables and store rows (simulate and run) */

void cli_task_rows_fill(void *ctx, size_t i, struct store_task *out, char *id, size_t id_len)
{
    const cli_task_rows *tr = ctx;
    const plan_task *t = &tr->pl->tasks[i];
    plan_task_id(tr->pl, i, id, id_len);
    out->resource = plan_res_names[t->res];
    out->start_s = tr->r->start_s[i];
    out->end_s = tr->r->end_s[i];
    out->bytes = t->bytes;
    out->flops = 0;
}

void cli_simulation_table(const cli_job *job, const plan *pl, const sim_result *r,
                          const cli_sim_totals *t)
{
    char a[32], b[32];
    printf("model     %s\nhardware  %s\n", job->model.name, job->hw.name);
    if (r->wall_s > 0)
        printf("plan      %zu tasks, %d steps x %d layers + head x %d GPU batches; simulated %ld "
               "events in %.3f s (%.3g events/s)\n\n", pl->ntasks, pl->nsteps, pl->nlayers, pl->ngb,
               r->events, r->wall_s, r->events / r->wall_s);
    else
        printf("plan      %zu tasks, %d steps x %d layers + head x %d GPU batches\n\n", pl->ntasks,
               pl->nsteps, pl->nlayers, pl->ngb);
    if (!r->fits) {
        char id[96];
        if (r->overflow_task == PLAN_NONE) /* the resident data alone does not fit */
            snprintf(id, sizeof id, "resident (weights, KV cache, hidden states)");
        else
            plan_task_id(pl, r->overflow_task, id, sizeof id);
        printf("DOES NOT FIT: the %s tier overflows by %s (first at task %s)\n\n",
               tier_names[r->overflow_tier], cli_bytes(r->overflow_bytes, a, sizeof a), id);
    }
    units_format(UNITS_TIME, t->total_s, a, sizeof a);
    printf("throughput  %.4g tok/s\ntotal       %s\n", t->throughput_tok_s, a);
    units_format(UNITS_TIME, t->prefill_s, a, sizeof a);
    units_format(UNITS_TIME, t->decode_s, b, sizeof b);
    printf("prefill     %s\ndecode      %s\n\n", a, b);
    printf("step   load_weight  load_cache   store_cache  compute      end\n");
    for (int j = 0; j < r->nsteps; j++) {
        if (r->nsteps > 12 && j > 4 && j < r->nsteps - 4) {
            if (j == 5)
                printf("...\n");
            continue;
        }
        char c[4][32], d[32];
        for (int k = 0; k < 4; k++)
            units_format(UNITS_TIME, r->steps[j].s[k], c[k], sizeof c[k]);
        units_format(UNITS_TIME, r->step_end_s[j], d, sizeof d);
        printf("%-6d %-12s %-12s %-12s %-12s %s\n", j, c[0], c[1], c[2], c[3], d);
    }
    printf("\nutilization");
    for (int k = 0; k < PLAN_NRES; k++)
        printf("  %s %.0f%%", plan_res_names[k],
               r->makespan_s > 0 ? 100 * r->busy_s[k] / r->makespan_s : 0);
    printf("\npeak memory");
    for (int k = 0; k < TIER_COUNT; k++)
        printf("  %s %s", tier_names[k], cli_bytes(r->peak_bytes[k], a, sizeof a));
    printf("\n");
}

