/* result_json — see result_json.h. */
#include "db/result_json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// ---- pieces

cJSON *result_tiers_json(const double v[TIER_COUNT])
{
    cJSON *o = cJSON_CreateObject();
    for (int t = 0; t < TIER_COUNT; t++)
        cJSON_AddNumberToObject(o, tier_names[t], v[t]);
    return o;
}

cJSON *result_placement_json(const placement *pl) { return result_tiers_json(pl->f); }

static cJSON *quant_json(const quant *q)
{
    if (!q->bits)
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "bits", q->bits);
    cJSON_AddNumberToObject(o, "group_size", q->group_size);
    return o;
}

cJSON *result_policy_json(const policy *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "weights", result_placement_json(&p->weights));
    cJSON_AddItemToObject(o, "kv_cache", result_placement_json(&p->kv_cache));
    cJSON_AddItemToObject(o, "activations", result_placement_json(&p->activations));
    cJSON_AddNumberToObject(o, "gpu_batch_size", p->gpu_batch_size);
    cJSON_AddNumberToObject(o, "num_gpu_batches", p->num_gpu_batches);
    cJSON_AddItemToObject(o, "weight_quant", quant_json(&p->weight_quant));
    cJSON_AddItemToObject(o, "kv_quant", quant_json(&p->kv_quant));
    cJSON_AddBoolToObject(o, "cpu_attention", p->cpu_attention);
    cJSON_AddBoolToObject(o, "overlap", p->overlap);
    cJSON_AddBoolToObject(o, "pin_weights", p->pin_weights);
    return o;
}

/* {"<names[0]>_s": s[0], ...}: n times in seconds. */
static cJSON *seconds_json(const char *const *names, int n, const double *s)
{
    cJSON *o = cJSON_CreateObject();
    char key[64];
    for (int k = 0; k < n; k++) {
        snprintf(key, sizeof key, "%s_s", names[k]);
        cJSON_AddNumberToObject(o, key, s[k]);
    }
    return o;
}

cJSON *result_stages_json(const double s[CM_NSTAGES])
{
    return seconds_json(cm_stage_names, CM_NSTAGES, s);
}

cJSON *result_conditions_json(const exec_conditions *c)
{
    cJSON *o = cJSON_CreateObject();
    char why[512];
    bool disturbed = cond_judge(c, why, sizeof why);
    cJSON_AddBoolToObject(o, "disturbed", disturbed);
    if (disturbed)
        cJSON_AddStringToObject(o, "reason", why);
    for (int i = 0; i < cond_field_count(); i++) {
        double v;
        const char *key = cond_field_get(c, i, &v);
        if (isfinite(v) && strcmp(key, "disturbed") != 0)
            cJSON_AddNumberToObject(o, key, v);
    }
    return o;
}

static const char *term_name(cm_term t)
{
    static const char *names[CM_NTERMS] = {"h2d", "d2h", "disk", "compute"};
    return names[t];
}

/* A new result object with the job's names and whether it fits. */
static cJSON *head_json(const record_job *job, bool feasible)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", job->model->name);
    cJSON_AddStringToObject(o, "hardware", job->hw->name);
    cJSON_AddBoolToObject(o, "feasible", feasible);
    return o;
}

/* The §11 throughput and times, added to o. */
static void times_json(cJSON *o, double throughput_tok_s, double total_s, double prefill_s,
                       double decode_s)
{
    cJSON_AddNumberToObject(o, "throughput_tok_s", throughput_tok_s);
    cJSON_AddNumberToObject(o, "total_s", total_s);
    cJSON_AddNumberToObject(o, "prefill_s", prefill_s);
    cJSON_AddNumberToObject(o, "decode_s", decode_s);
}

/* One kept step of "steps": its stages and its number. */
static cJSON *step_json(const double s[CM_NSTAGES], int j)
{
    cJSON *st = result_stages_json(s);
    cJSON_AddNumberToObject(st, "step", j);
    return st;
}

/* "workload" (the job's lengths, and num_prompts in `blocks` blocks) and
 * "policy", added to o. */
static void workload_json(cJSON *o, const record_job *job, double num_prompts, double blocks)
{
    cJSON *wl = cJSON_AddObjectToObject(o, "workload");
    cJSON_AddNumberToObject(wl, "prompt_len", (double)job->workload->prompt_len);
    cJSON_AddNumberToObject(wl, "gen_len", (double)job->workload->gen_len);
    cJSON_AddNumberToObject(wl, "num_prompts", num_prompts);
    cJSON_AddNumberToObject(wl, "blocks", blocks);
    cJSON_AddItemToObject(o, "policy", result_policy_json(job->policy));
}

/* "realized": the fractions as placed in whole tensors, added to o. */
static void realized_json(cJSON *o, const placement *weights, const placement *kv_cache,
                          const placement *activations, const placement *head_weights)
{
    cJSON *real = cJSON_AddObjectToObject(o, "realized");
    cJSON_AddItemToObject(real, "weights", result_placement_json(weights));
    cJSON_AddItemToObject(real, "kv_cache", result_placement_json(kv_cache));
    cJSON_AddItemToObject(real, "activations", result_placement_json(activations));
    cJSON_AddItemToObject(real, "head_weights", result_placement_json(head_weights));
}

// ---- a prediction

cJSON *result_prediction_json(const record_job *job, const cm_result *r)
{
    cJSON *o = head_json(job, r->feasible);
    if (!r->feasible) {
        cJSON *inf = cJSON_AddObjectToObject(o, "infeasible");
        cJSON_AddStringToObject(inf, "tier", tier_names[r->overflow_tier]);
        cJSON_AddNumberToObject(inf, "overflow_bytes", r->overflow_bytes);
    }
    times_json(o, r->throughput_tok_s, r->total_s, r->prefill_s, r->decode_s);
    cJSON_AddItemToObject(o, "peak_bytes", result_tiers_json(r->peak_bytes));
    cJSON_AddItemToObject(o, "capacity_bytes", result_tiers_json(r->capacity_bytes));
    /* per layer, one decode step, averaged over the steps (what FlexGen's
     * per-layer timers report); prefill_stages: per layer, the prefill */
    cJSON_AddItemToObject(o, "stages", result_stages_json(r->layer_stage_s));
    cJSON_AddItemToObject(o, "prefill_stages", result_stages_json(r->prefill_stage_s));
    cJSON *res = cJSON_AddObjectToObject(o, "resources");
    cJSON_AddItemToObject(res, "prefill", seconds_json(cm_res_names, CM_NRES, r->prefill_res_s));
    cJSON_AddItemToObject(res, "decode", seconds_json(cm_res_names, CM_NRES, r->decode_res_s));
    cJSON *bn = cJSON_AddObjectToObject(o, "bottleneck");
    cJSON_AddStringToObject(bn, "prefill", term_name(r->prefill_bottleneck));
    cJSON_AddStringToObject(bn, "decode", r->nsteps ? term_name(r->decode_bottleneck) : "none");
    cJSON_AddNumberToObject(o, "prefill_layer_s", r->prefill_layer_s);
    cJSON_AddNumberToObject(o, "decode_layer_s", r->decode_layer_s);
    cJSON *steps = cJSON_AddArrayToObject(o, "steps");
    for (int j = 0; j <= r->nsteps; j++)
        if (record_step_kept(j, r->nsteps + 1))
            cJSON_AddItemToArray(steps, step_json(r->steps[j].s, j));
    workload_json(o, job, r->num_prompts, r->blocks);
    /* what the engine places in whole tensors (costmodel/placement.h) */
    realized_json(o, &r->realized[0], &r->realized[1], &r->realized[2], &r->realized_head);
    return o;
}

// ---- a simulation

/* "infeasible": the tier that overflowed, by how much, at which task. */
static void infeasible_json(cJSON *o, const plan *pl, const sim_result *r)
{
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

/* "simulation": the simulator's own figures. */
static void simulation_json(cJSON *o, const plan *pl, const sim_result *r)
{
    cJSON *sim = cJSON_AddObjectToObject(o, "simulation");
    cJSON_AddNumberToObject(sim, "tasks", (double)pl->ntasks);
    cJSON_AddNumberToObject(sim, "events", (double)r->events);
    cJSON_AddNumberToObject(sim, "wall_s", r->wall_s);
    cJSON_AddNumberToObject(sim, "events_per_s", r->wall_s > 0 ? r->events / r->wall_s : 0);
    cJSON_AddNumberToObject(sim, "block_s", r->makespan_s);
    cJSON_AddNumberToObject(sim, "blocks", pl->blocks);
}

cJSON *result_simulation_json(const record_job *job, const plan *pl, const sim_result *r,
                              const sim_totals *t)
{
    cJSON *o = head_json(job, r->fits);
    if (!r->fits)
        infeasible_json(o, pl, r);
    times_json(o, t->throughput_tok_s, t->total_s, t->prefill_s, t->decode_s);
    cJSON_AddItemToObject(o, "peak_bytes", result_tiers_json(r->peak_bytes));
    cJSON_AddItemToObject(o, "stages", result_stages_json(t->layer_stage_s));
    cJSON_AddItemToObject(o, "prefill_stages", result_stages_json(t->prefill_stage_s));
    cJSON *steps = cJSON_AddArrayToObject(o, "steps");
    for (int j = 0; j < r->nsteps; j++) {
        if (!record_step_kept(j, r->nsteps))
            continue;
        cJSON *st = step_json(r->steps[j].s, j);
        cJSON_AddNumberToObject(st, "end_s", r->step_end_s[j]);
        cJSON_AddItemToArray(steps, st);
    }
    cJSON *ut = cJSON_AddObjectToObject(o, "utilization");
    for (int k = 0; k < PLAN_NRES; k++)
        cJSON_AddNumberToObject(ut, plan_res_names[k],
                                r->makespan_s > 0 ? r->busy_s[k] / r->makespan_s : 0);
    simulation_json(o, pl, r);
    workload_json(o, job, pl->num_prompts, pl->blocks);
    realized_json(o, &pl->realized.weights, &pl->kv_realized, &pl->act_realized,
                  &pl->realized.head);
    return o;
}
