/*
 * record — one run written into the store (db/store.h): the inputs it was
 * computed from, stored by content hash (the canonical YAML of the model,
 * the hardware profile, the policy and the workload), what it computed or
 * measured (metrics, the stages of each step, every task's times, memory
 * over time) and its JSON, in one transaction. Every command that computes or
 * measures something records it here, and so can the parts below the
 * command line (validate's runs).
 */
#ifndef LLMSIM_DB_RECORD_H
#define LLMSIM_DB_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "costmodel/analytic.h"
#include "db/store.h"

/* What a run is computed from, and where it is recorded. Every pointer is
 * borrowed for the call. */
typedef struct record_job {
    const model *model;
    const hwprofile *hw;
    const policy *policy;
    const workload *workload;
    const char *workload_text; /* recorded instead of *workload when set (serving requests) */
    const char *command;       /* the command line */
    const char *db_path;       /* the store */
} record_job;

typedef struct record_hashes {
    char model[17], hw[17], policy[17], workload[17];
} record_hashes;

/* Store the job's inputs (once each, by hash) and give their hashes; an
 * input the job has not (NULL) gets an empty hash. */
llmsim_status record_inputs(store *db, const record_job *job, record_hashes *h, diag *e);

/* A run of `kind` that did not finish, recorded with `status` ("interrupted",
 * or "failed" in the environment: a full disk, an I/O error): its inputs
 * and its command line, nothing computed. */
llmsim_status record_unfinished(const record_job *job, const char *kind, const char *status,
                                int64_t *run_id, diag *e);

typedef struct record_metric {
    const char *key;
    double value;
} record_metric;

/* What a command computed or measured, written as one run. */
typedef struct record_data {
    const char *kind;            /* predict, simulate, search, measure, ... */
    const char *status;          /* what the run is committed as: "ok" (NULL) or "infeasible" */
    const record_metric *metrics;
    int nmetrics;
    const cm_step_stages *steps; /* [nsteps]: 0 = prefill, then decode steps */
    int nsteps;
    size_t ntasks;               /* per-task timings, 0 for none */
    store_task_fill fill;
    void *fill_ctx;
    const char *result_json;     /* the command's JSON output */
    const store_mem_sample *mem; /* memory per tier over time, or NULL */
    size_t nmem;
    const serve_result *serve;   /* a serving run: its iteration and request rows, or NULL */
    const serve_requests *serve_q;
    double serve_block_bytes;
} record_data;

/* Open the job's store, write the run in one transaction, close it. */
llmsim_status record_run(const record_job *job, const record_data *rec, int64_t *run_id, diag *e);

/* The metrics that open a prediction's and a simulation's run, into
 * m[0..RECORD_SUMMARY_METRICS): throughput_tok_s, total_s, prefill_s,
 * decode_s, feasible (1 or 0), peak_gpu_bytes, peak_cpu_bytes,
 * peak_disk_bytes. Returns RECORD_SUMMARY_METRICS. */
#define RECORD_SUMMARY_METRICS 8
int record_summary_metrics(record_metric *m, double throughput_tok_s, double total_s,
                           double prefill_s, double decode_s, bool feasible,
                           const double peak_bytes[TIER_COUNT]);

/* A prediction (kind predict or search): its metrics and per-step stages. */
llmsim_status record_prediction(const record_job *job, const char *kind, const cm_result *r,
                                const char *result_json, int64_t *run_id, diag *e);

/* Long generations: the per-step breakdown (JSON `steps`, the store's
 * run_stages) keeps at most RECORD_MAX_STEPS steps, evenly spaced, with the
 * first and the last; each entry carries its step number. */
#define RECORD_MAX_STEPS 512
bool record_step_kept(int j, int n);

#endif
