/* serving — see serving.h. */
#include "db/serving.h"

#include <stdlib.h>
#include <string.h>

#include "db/result_json.h"

/* Samples of KV use kept in the JSON and in the store. */
#define SERVE_MAX_SERIES 512
#define SERVE_MAX_STORED 2000

static cJSON *stat_json(const serve_stat *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mean", s->mean);
    cJSON_AddNumberToObject(o, "p50", s->p50);
    cJSON_AddNumberToObject(o, "p90", s->p90);
    cJSON_AddNumberToObject(o, "p99", s->p99);
    cJSON_AddNumberToObject(o, "max", s->max);
    return o;
}

/* "serving": the settings in effect and the sizes they give. */
static void serving_json(cJSON *root, const serve_setup *s)
{
    cJSON *sv = cJSON_AddObjectToObject(root, "serving");
    cJSON_AddStringToObject(sv, "preemption", preemption_names[s->cfg.preempt]);
    cJSON_AddStringToObject(sv, "scheduler", scheduler_names[s->cfg.sched]);
    cJSON_AddNumberToObject(sv, "fair_alpha", s->cfg.fair_alpha);
    cJSON_AddNumberToObject(sv, "kv_block_size", s->cfg.block_size);
    cJSON_AddNumberToObject(sv, "max_batch", s->cfg.max_batch);
    cJSON_AddNumberToObject(sv, "token_budget", (double)s->cfg.token_budget);
    cJSON_AddNumberToObject(sv, "kv_memory_bytes", s->kv_bytes);
    cJSON_AddNumberToObject(sv, "kv_blocks", (double)s->total_blocks);
    cJSON_AddNumberToObject(sv, "block_bytes", s->block_bytes);
    cJSON_AddNumberToObject(sv, "swap_space_bytes", s->cfg.swap_bytes);
    cJSON_AddNumberToObject(sv, "swap_blocks", (double)s->swap_blocks);
    cJSON_AddBoolToObject(sv, "prefix_cache", s->cfg.prefix_cache);
    cJSON_AddNumberToObject(sv, "weights_device_bytes", s->weights_dev_bytes);
    cJSON_AddNumberToObject(sv, "workspace_bytes", s->workspace_bytes);
}

/* "kv_utilization": mean, peak and the use over time. */
static void kv_utilization_json(cJSON *root, const serve_result *r)
{
    cJSON *kv = cJSON_AddObjectToObject(root, "kv_utilization");
    cJSON_AddNumberToObject(kv, "mean", r->kv_util_mean);
    cJSON_AddNumberToObject(kv, "peak", r->kv_util_peak);
    /* [time_s, device blocks, swap blocks], at most SERVE_MAX_SERIES evenly spaced */
    cJSON *series = cJSON_AddArrayToObject(kv, "series");
    size_t step = r->nkv > SERVE_MAX_SERIES ? (r->nkv + SERVE_MAX_SERIES - 1) / SERVE_MAX_SERIES : 1;
    for (size_t i = 0; i < r->nkv; i += step) {
        cJSON *pt = cJSON_CreateArray();
        cJSON_AddItemToArray(pt, cJSON_CreateNumber(r->kv[i].time_s));
        cJSON_AddItemToArray(pt, cJSON_CreateNumber((double)r->kv[i].dev_blocks));
        cJSON_AddItemToArray(pt, cJSON_CreateNumber((double)r->kv[i].swap_blocks));
        cJSON_AddItemToArray(series, pt);
    }
}

cJSON *result_serve_json(const record_job *job, const char *trace_in, const serve_gen *gen,
                         const serve_setup *s, const serve_requests *q, const serve_result *r,
                         double wall_s)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", job->model->name);
    cJSON_AddStringToObject(root, "hardware", job->hw->name);
    cJSON_AddNumberToObject(root, "requests", (double)q->n);
    cJSON *src = cJSON_AddObjectToObject(root, "source");
    if (trace_in) {
        cJSON_AddStringToObject(src, "trace", trace_in);
    } else {
        strbuf b = {0};
        serve_gen_describe(gen, &b);
        cJSON_AddStringToObject(src, "generator", strbuf_str(&b));
        strbuf_free(&b);
    }
    serving_json(root, s);
    cJSON_AddItemToObject(root, "policy", result_policy_json(&s->pol));

    cJSON_AddNumberToObject(root, "throughput_tok_s", r->throughput_tok_s);
    cJSON_AddNumberToObject(root, "request_rate", r->request_rate);
    cJSON_AddNumberToObject(root, "makespan_s", r->makespan_s);
    cJSON_AddNumberToObject(root, "output_tokens", r->output_tokens);
    cJSON_AddNumberToObject(root, "prompt_tokens", r->prompt_tokens);
    cJSON_AddItemToObject(root, "ttft_s", stat_json(&r->ttft));
    cJSON_AddItemToObject(root, "tpot_s", stat_json(&r->tpot));
    cJSON_AddItemToObject(root, "e2e_s", stat_json(&r->e2e));
    cJSON_AddNumberToObject(root, "weighted_turnaround_s", r->weighted_turnaround_s);
    cJSON *pre = cJSON_AddObjectToObject(root, "preemptions");
    cJSON_AddNumberToObject(pre, "swap", (double)r->preempt_swap);
    cJSON_AddNumberToObject(pre, "recompute", (double)r->preempt_recompute);
    cJSON_AddNumberToObject(pre, "swap_full", (double)r->swap_full);
    cJSON_AddNumberToObject(root, "swapped_out_bytes", r->swap_out_bytes);
    cJSON_AddNumberToObject(root, "swapped_in_bytes", r->swap_in_bytes);
    cJSON_AddNumberToObject(root, "swap_s", r->swap_s);
    cJSON_AddNumberToObject(root, "recomputed_tokens", r->recomputed_tokens);
    kv_utilization_json(root, r);
    if (s->cfg.prefix_cache) {
        cJSON *pc = cJSON_AddObjectToObject(root, "prefix_cache");
        cJSON_AddNumberToObject(pc, "hit_rate", r->prefix_hit_rate);
        cJSON_AddNumberToObject(pc, "hit_tokens", r->prefix_hit_tokens);
        cJSON_AddNumberToObject(pc, "query_tokens", r->prefix_query_tokens);
        cJSON_AddNumberToObject(pc, "evicted_blocks", (double)r->prefix_evicted);
    }
    cJSON_AddNumberToObject(root, "iterations", (double)r->iterations);
    cJSON_AddNumberToObject(root, "events", (double)r->events);
    cJSON_AddNumberToObject(root, "sim_wall_s", wall_s);
    cJSON_AddNumberToObject(root, "events_per_s", wall_s > 0 ? (double)r->events / wall_s : 0);
    return root;
}

llmsim_status record_serve(const record_job *job, const char *kind, const serve_setup *s,
                           const serve_requests *q, const serve_result *r, const char *json,
                           double wall_s, int64_t *run_id, diag *e)
{
    const record_metric metrics[] = {
        {"throughput_tok_s", r->throughput_tok_s},
        {"request_rate", r->request_rate},
        {"makespan_s", r->makespan_s},
        {"requests", (double)r->n},
        {"ttft_mean_s", r->ttft.mean}, {"ttft_p50_s", r->ttft.p50},
        {"ttft_p90_s", r->ttft.p90}, {"ttft_p99_s", r->ttft.p99},
        {"tpot_mean_s", r->tpot.mean}, {"tpot_p50_s", r->tpot.p50},
        {"tpot_p90_s", r->tpot.p90}, {"tpot_p99_s", r->tpot.p99},
        {"e2e_mean_s", r->e2e.mean}, {"e2e_p50_s", r->e2e.p50},
        {"e2e_p90_s", r->e2e.p90}, {"e2e_p99_s", r->e2e.p99},
        {"weighted_turnaround_s", r->weighted_turnaround_s},
        {"preempt_swap", (double)r->preempt_swap},
        {"preempt_recompute", (double)r->preempt_recompute},
        {"swapped_out_bytes", r->swap_out_bytes},
        {"swapped_in_bytes", r->swap_in_bytes},
        {"recomputed_tokens", r->recomputed_tokens},
        {"kv_util_mean", r->kv_util_mean},
        {"kv_util_peak", r->kv_util_peak},
        {"kv_blocks", (double)s->total_blocks},
        {"iterations", (double)r->iterations},
        {"events", (double)r->events},
        {strcmp(kind, "serve") == 0 ? "sim_wall_s" : "wall_s", wall_s},
        /* with the prefix cache only: last */
        {"prefix_hit_rate", r->prefix_hit_rate},
        {"prefix_hit_tokens", r->prefix_hit_tokens},
    };
    const int nmetrics = (int)(sizeof metrics / sizeof metrics[0]) - (s->cfg.prefix_cache ? 0 : 2);
    /* KV bytes per tier over time, at most SERVE_MAX_STORED samples a tier */
    size_t step = r->nkv > SERVE_MAX_STORED ? (r->nkv + SERVE_MAX_STORED - 1) / SERVE_MAX_STORED : 1;
    size_t nmem = 0;
    store_mem_sample *mem = malloc((2 * (r->nkv / step + 1) + 2) * sizeof *mem);
    if (!mem)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    for (size_t i = 0; i < r->nkv; i += step) {
        mem[nmem++] = (store_mem_sample){r->kv[i].time_s, tier_names[s->dev_tier],
                                         (double)r->kv[i].dev_blocks * s->block_bytes};
        mem[nmem++] = (store_mem_sample){r->kv[i].time_s, tier_names[s->swap_tier],
                                         (double)r->kv[i].swap_blocks * s->block_bytes};
    }
    mem[nmem++] = (store_mem_sample){r->end_s, tier_names[s->dev_tier], 0};
    mem[nmem++] = (store_mem_sample){r->end_s, tier_names[s->swap_tier], 0};
    record_data rec = {
        .kind = kind, .metrics = metrics, .nmetrics = nmetrics,
        .result_json = json, .mem = mem, .nmem = nmem,
        .serve = r, .serve_q = q, .serve_block_bytes = s->block_bytes,
    };
    record_job rj = *job;
    rj.policy = &s->pol; /* recorded with the serving settings in effect */
    llmsim_status st = record_run(&rj, &rec, run_id, e);
    free(mem);
    return st;
}

llmsim_status record_serve_unfinished(const record_job *job, const char *kind,
                                      const serve_setup *s, const serve_requests *q,
                                      serve_result *r, const char *status, diag *e)
{
    int64_t run_id = 0;
    store *db = NULL;
    llmsim_status st = store_open(job->db_path, &db, e);
    record_hashes hh;
    record_job rj = *job;
    rj.policy = &s->pol; /* recorded with the serving settings in effect */
    if (!st && !(st = record_inputs(db, &rj, &hh, e))) {
        store_run_info info = {.kind = kind, .model_hash = hh.model, .hw_hash = hh.hw,
                               .policy_hash = hh.policy, .workload_hash = hh.workload,
                               .model_name = job->model->name, .hw_name = job->hw->name,
                               .command = job->command};
        if (!(st = store_run_begin(db, &info, &run_id, e))) {
            r->n = r->req ? q->n : 0;
            if ((st = store_serve_rows(db, run_id, r, q, s->block_bytes, e)) ||
                (st = store_run_commit(db, run_id, status, NULL, e)))
                store_run_abort(db, run_id, status);
        }
    }
    store_close(db);
    return st;
}
