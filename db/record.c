/* record — see record.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "db/record.h"

llmsim_status record_inputs(store *db, const record_job *job, record_hashes *h, diag *e)
{
    memset(h, 0, sizeof *h);
    strbuf b = {0};
    llmsim_status st = LLMSIM_OK;
    if (job->model) {
        model_canonical(job->model, &b);
        st = store_put_input(db, "model", job->model->name, strbuf_str(&b), h->model, e);
        strbuf_free(&b);
    }
    if (!st && job->hw) {
        hwprofile_save(job->hw, &b);
        st = store_put_input(db, "hwprofile", job->hw->name, strbuf_str(&b), h->hw, e);
        strbuf_free(&b);
    }
    if (!st && job->policy) {
        policy_save(job->policy, &b);
        st = store_put_input(db, "policy", NULL, strbuf_str(&b), h->policy, e);
        strbuf_free(&b);
    }
    if (!st && (job->workload_text || job->workload)) {
        if (job->workload_text)
            strbuf_puts(&b, job->workload_text);
        else
            workload_save(job->workload, &b);
        st = store_put_input(db, "workload", NULL, strbuf_str(&b), h->workload, e);
        strbuf_free(&b);
    }
    return st;
}

/* A hash, or NULL for an input the job does not have. */
static const char *hash_or_null(const char *h) { return h[0] ? h : NULL; }

llmsim_status record_unfinished(const record_job *job, const char *kind, const char *status,
                                int64_t *run_id, diag *e)
{
    int64_t id = 0;
    store *db = NULL;
    record_hashes h;
    llmsim_status st = store_open(job->db_path, &db, e);
    if (!st && !(st = record_inputs(db, job, &h, e))) {
        store_run_info info = {
            .kind = kind, .model_hash = hash_or_null(h.model), .hw_hash = hash_or_null(h.hw),
            .policy_hash = hash_or_null(h.policy), .workload_hash = hash_or_null(h.workload),
            .model_name = job->model ? job->model->name : NULL,
            .hw_name = job->hw ? job->hw->name : NULL, .command = job->command,
        };
        if (!(st = store_run_begin(db, &info, &id, e)))
            store_run_abort(db, id, status);
    }
    store_close(db);
    if (run_id)
        *run_id = st ? 0 : id;
    return st;
}

llmsim_status record_run(const record_job *job, const record_data *rec, int64_t *run_id, diag *e)
{
    store *db = NULL;
    llmsim_status st = store_open(job->db_path, &db, e);
    if (st)
        return st;
    record_hashes h;
    if ((st = record_inputs(db, job, &h, e))) {
        store_close(db);
        return st;
    }
    store_run_info info = {
        .kind = rec->kind, .model_hash = h.model, .hw_hash = h.hw, .policy_hash = h.policy,
        .workload_hash = h.workload, .model_name = job->model->name, .hw_name = job->hw->name,
        .command = job->command,
    };
    int64_t id = 0;
    if ((st = store_run_begin(db, &info, &id, e))) {
        store_close(db);
        return st;
    }
    for (int i = 0; i < rec->nmetrics && !st; i++)
        st = store_run_metric(db, id, rec->metrics[i].key, rec->metrics[i].value, e);
    for (int j = 0; j < rec->nsteps && !st; j++) {
        if (!record_step_kept(j, rec->nsteps))
            continue;
        for (int k = 0; k < CM_NSTAGES && !st; k++)
            st = store_run_stage(db, id, j == 0 ? "prefill" : "decode", j, cm_stage_names[k],
                                 rec->steps[j].s[k], e);
    }
    if (!st && rec->ntasks)
        st = store_run_tasks(db, id, rec->ntasks, rec->fill, rec->fill_ctx, e);
    if (!st && rec->nmem)
        st = store_run_memory(db, id, rec->nmem, rec->mem, e);
    if (!st && rec->serve)
        st = store_serve_rows(db, id, rec->serve, rec->serve_q, rec->serve_block_bytes, e);
    if (!st)
        st = store_run_commit(db, id, rec->status ? rec->status : "ok", rec->result_json, e);
    else
        store_run_abort(db, id, "failed");
    store_close(db);
    if (!st && run_id)
        *run_id = id;
    return st;
}

int record_summary_metrics(record_metric *m, double throughput_tok_s, double total_s,
                           double prefill_s, double decode_s, bool feasible,
                           const double peak_bytes[TIER_COUNT])
{
    const record_metric summary[RECORD_SUMMARY_METRICS] = {
        {"throughput_tok_s", throughput_tok_s},
        {"total_s", total_s},
        {"prefill_s", prefill_s},
        {"decode_s", decode_s},
        {"feasible", feasible ? 1.0 : 0.0},
        {"peak_gpu_bytes", peak_bytes[TIER_GPU]},
        {"peak_cpu_bytes", peak_bytes[TIER_CPU]},
        {"peak_disk_bytes", peak_bytes[TIER_DISK]},
    };
    memcpy(m, summary, sizeof summary);
    return RECORD_SUMMARY_METRICS;
}

llmsim_status record_prediction(const record_job *job, const char *kind, const cm_result *r,
                                const char *result_json, int64_t *run_id, diag *e)
{
    record_metric metrics[RECORD_SUMMARY_METRICS + 4];
    int nm = record_summary_metrics(metrics, r->throughput_tok_s, r->total_s, r->prefill_s,
                                    r->decode_s, r->feasible, r->peak_bytes);
    metrics[nm++] = (record_metric){"prefill_layer_s", r->prefill_layer_s};
    metrics[nm++] = (record_metric){"decode_layer_s", r->decode_layer_s};
    if (strcmp(kind, "search") == 0) { /* the search's own figures */
        metrics[nm++] = (record_metric){"search_s", r->search_s};
        metrics[nm++] = (record_metric){"candidates_evaluated", r->candidates_evaluated};
    }
    record_data rec = {
        .kind = kind, .status = r->feasible ? "ok" : "infeasible", .metrics = metrics,
        .nmetrics = nm, .steps = r->steps, .nsteps = r->nsteps + 1, .result_json = result_json,
    };
    return record_run(job, &rec, run_id, e);
}

bool record_step_kept(int j, int n)
{
    if (n <= RECORD_MAX_STEPS)
        return true;
    int stride = (n + RECORD_MAX_STEPS - 1) / RECORD_MAX_STEPS;
    return j == 0 || j == n - 1 || j % stride == 0;
}
