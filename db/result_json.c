/* result_json — see result_json.h. */
#include "db/result_json.h"

#include <stdio.h>

cJSON *result_placement_json(const placement *pl)
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

static cJSON *tiers_json(const double v[TIER_COUNT])
{
    cJSON *o = cJSON_CreateObject();
    for (int t = 0; t < TIER_COUNT; t++)
        cJSON_AddNumberToObject(o, tier_names[t], v[t]);
    return o;
}

cJSON *result_stages_json(const double s[CM_NSTAGES])
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

cJSON *result_prediction_json(const record_job *job, const cm_result *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", job->model->name);
    cJSON_AddStringToObject(o, "hardware", job->hw->name);
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
    cJSON_AddItemToObject(o, "stages", result_stages_json(r->layer_stage_s));
    cJSON_AddItemToObject(o, "prefill_stages", result_stages_json(r->prefill_stage_s));
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
        if (!record_step_kept(j, r->nsteps + 1))
            continue;
        cJSON *st = result_stages_json(r->steps[j].s);
        cJSON_AddNumberToObject(st, "step", j);
        cJSON_AddItemToArray(steps, st);
    }
    cJSON *wl = cJSON_AddObjectToObject(o, "workload");
    cJSON_AddNumberToObject(wl, "prompt_len", (double)job->workload->prompt_len);
    cJSON_AddNumberToObject(wl, "gen_len", (double)job->workload->gen_len);
    cJSON_AddNumberToObject(wl, "num_prompts", r->num_prompts);
    cJSON_AddNumberToObject(wl, "blocks", r->blocks);
    cJSON_AddItemToObject(o, "policy", result_policy_json(job->policy));
    /* what the engine places in whole tensors (costmodel/placement.h) */
    cJSON *real = cJSON_AddObjectToObject(o, "realized");
    static const char *names[3] = {"weights", "kv_cache", "activations"};
    for (int i = 0; i < 3; i++)
        cJSON_AddItemToObject(real, names[i], result_placement_json(&r->realized[i]));
    cJSON_AddItemToObject(real, "head_weights", result_placement_json(&r->realized_head));
    return o;
}

cJSON *result_simulation_json(const record_job *job, const plan *pl, const sim_result *r,
                              const sim_totals *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", job->model->name);
    cJSON_AddStringToObject(o, "hardware", job->hw->name);
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
    cJSON_AddItemToObject(o, "stages", result_stages_json(t->layer_stage_s));
    cJSON_AddItemToObject(o, "prefill_stages", result_stages_json(t->prefill_stage_s));
    cJSON *steps = cJSON_AddArrayToObject(o, "steps");
    for (int j = 0; j < r->nsteps; j++) {
        if (!record_step_kept(j, r->nsteps))
            continue;
        cJSON *st = result_stages_json(r->steps[j].s);
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
    cJSON_AddNumberToObject(wl, "prompt_len", (double)job->workload->prompt_len);
    cJSON_AddNumberToObject(wl, "gen_len", (double)job->workload->gen_len);
    cJSON_AddNumberToObject(wl, "num_prompts", pl->num_prompts);
    cJSON_AddNumberToObject(wl, "blocks", pl->blocks);
    cJSON_AddItemToObject(o, "policy", result_policy_json(job->policy));
    cJSON *real = cJSON_AddObjectToObject(o, "realized");
    cJSON_AddItemToObject(real, "weights", result_placement_json(&pl->realized.weights));
    cJSON_AddItemToObject(real, "kv_cache", result_placement_json(&pl->kv_realized));
    cJSON_AddItemToObject(real, "activations", result_placement_json(&pl->act_realized));
    cJSON_AddItemToObject(real, "head_weights", result_placement_json(&pl->realized.head));
    return o;
}
