/* record — store a job's inputs and a run's results (see record.c). */
#ifndef LLMSIM_CLI_RECORD_H
#define LLMSIM_CLI_RECORD_H

#include <stdint.h>

#include "cli/cli.h"
#include "db/store.h"

typedef struct cli_input_hashes {
    char model[17], hw[17], policy[17], workload[17];
} cli_input_hashes;

llmsim_status cli_record_inputs(store *db, const cli_job *job, cli_input_hashes *h, diag *e);

typedef struct cli_metric {
    const char *key;
    double value;
} cli_metric;

/* What a command computed or measured, written as one run in one transaction. */
typedef struct cli_record {
    const char *kind;           /* predict, simulate, search, ... */
    const cli_metric *metrics;
    int nmetrics;
    const cm_step_stages *steps; /* [nsteps]: 0 = prefill, then decode steps */
    int nsteps;
    size_t ntasks;              /* per-task timings, 0 for none */
    store_task_fill fill;
    void *fill_ctx;
    const char *result_json;    /* the command's JSON output */
    const store_mem_sample *mem; /* memory per tier over time, or NULL */
    size_t nmem;
} cli_record;

llmsim_status cli_record_run(const cli_job *job, const cli_record *rec, int64_t *run_id, diag *e);

/* A prediction: its metrics and per-step stages. */
llmsim_status cli_record_prediction(const cli_job *job, const char *kind, const cm_result *r,
                                    const char *result_json, int64_t *run_id, diag *e);

#endif
