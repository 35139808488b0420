/*
 * validate — the comparison behind `llmsim validate` and `llmsim calibrate`:
 * predicted, simulated and measured runs of the same inputs, read back from
 * the store and matched end to end, stage by stage and task by task (plan
 * ids), with the tasks grouped into the primitives they exercise.
 */
#ifndef LLMSIM_CLI_VALIDATE_H
#define LLMSIM_CLI_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/cli.h"
#include "db/store.h"
#include "plan/plan.h"

/* A policy under validation and its three runs in the store. */
typedef struct v_policy {
    char name[96];
    policy p;
    int64_t id_pred, id_sim, id_meas;
    bool reused[3]; /* found in the store rather than computed now */
} v_policy;

/* Compare the runs of every policy of job (model, hardware, workload), print
 * the tables or the JSON (job->format), and record the comparison as a
 * 'validate' run. Returns the exit status. */
int v_compare_and_report(cli_job *job, v_policy *ps, int n, int top);

/* The signed error of x against ref in percent; NaN unless ref > 0. */
double v_pct(double x, double ref);

/* A run's metric by key (NaN when absent). */
double v_run_metric(store *db, int64_t id, const char *key, diag *e, llmsim_status *st);

/* The tasks of a run sorted by id, for v_task_find. Free with free(). */
llmsim_status v_tasks_sorted(store *db, int64_t id, store_task_row **rows, size_t *n, diag *e);
const store_task_row *v_task_find(const store_task_row *rows, size_t n, const char *id);

/* The primitive a task exercises, as a readable key: "disk read 12.6 MiB",
 * "layer compute, decode, batch 2, context 17-32", ... */
void v_primitive_key(const plan *pl, size_t i, long long prompt_len, char *out, size_t len);

#endif
