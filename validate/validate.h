/*
 * validate — the loop behind `llmsim validate` and `llmsim calibrate`:
 * predict (the cost model), simulate (the plan, event by event) and run (the
 * engine) the same inputs, record all three, and compare them end to end,
 * stage by stage and task by task (the tasks share their plan ids), with the
 * tasks grouped into the primitives they exercise.
 *
 * What the store already holds for the same inputs is reused (a measurement
 * takes minutes; a prediction of the same inputs is the same number) unless
 * the options say rerun. Progress goes to stderr when asked for.
 */
#ifndef LLMSIM_VALIDATE_VALIDATE_H
#define LLMSIM_VALIDATE_VALIDATE_H

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/strbuf.h"
#include "db/record.h"
#include "exec/engine.h"
#include "plan/plan.h"

/* A policy under validation and its three runs in the store. */
typedef struct validate_policy {
    char name[96];
    policy p;
    int64_t id_pred, id_sim, id_meas;
    bool reused[3];   /* found in the store rather than computed now */
    int measurements; /* engine runs made now (0: reused); more than 1 when disturbed */
} validate_policy;

/* ---- the policies */

/* The grid for the job's machine: a spread of policies over the tiers and
 * quantization settings (4 and 8 bits, group 64 or the largest smaller power
 * of 2 that divides the rows), from the job's policy (its batch shape), each
 * kept when the cost model's peak memory fits every tier and the engine's RAM
 * fits the profile's and what is free here. *out is malloc'd; `skipped` gets
 * a line for each entry left out and why. LLMSIM_EINPUT when none fits. */
llmsim_status validate_grid(const record_job *job, validate_policy **out, int *n, strbuf *skipped,
                            diag *e);

/* ---- one policy: predict, simulate, run (or find them in the store) */

typedef struct validate_opts {
    engine_opts engine;
    bool rerun;      /* compute again what the store holds */
    bool progress;   /* a line on stderr per step */
    bool check_disk; /* measure the disk around each run that uses it */
    int remeasure;   /* a run measured under contention is measured again, at most this
                        many more times (exec/conditions.h) */
    bool keep_disturbed; /* disturbed runs count like the others: the newest is reused */
} validate_opts;

/* Predict, simulate and measure policy vp (number index of count) for the
 * job (its policy is ignored), each unless the store has it; vp's run ids
 * and reuse flags are set. Every measurement is bracketed by its conditions
 * (exec/conditions.h); one disturbed is said so on stderr and measured
 * again, at most o->remeasure more times, and the first quiet one is kept,
 * else the least disturbed (all of them are recorded). From the store, the
 * newest measurement not known to be disturbed is reused (the newest, with
 * o->keep_disturbed). */
llmsim_status validate_policy_run(const record_job *job, validate_policy *vp, const validate_opts *o,
                                  int index, int count, diag *e);

/* ---- the comparison */

typedef struct validate_row {
    double total[3];             /* predicted, simulated, measured (s) */
    double stage[3][CM_NSTAGES]; /* per block, summed over the steps */
    double disk_now[2];          /* --check-disk: read, write rate around the run / the profile's */
    double now[2];               /* predicted, simulated with the disk at that rate; NaN without */
    exec_conditions cond;        /* the measurement's, as recorded; cond.measured false: unknown */
    bool disturbed;              /* cond_judge of cond */
    bool excluded;               /* disturbed, and so left out of the MAPEs and the primitives */
    bool fit_seen;               /* a calibrated profile was fitted on these inputs: left out too */
    double tput[3];              /* throughput (tok/s): predicted, simulated, measured */
    double interval[2];          /* p10, p90 of the simulated total (costmodel/interval.h); NaN: none */
} validate_row;

/* The most policies validate ranks by throughput. */
#define VALIDATE_MAX_RANKED 256

/* The tasks of one primitive (validate_primitive_key) over every policy. */
typedef struct validate_group {
    char key[96];
    long tasks;
    double sim_s, meas_s, abs_err_s;
} validate_group;

typedef struct validate_report {
    validate_row *rows;     /* [n], the policies' order */
    int n;
    validate_group *groups; /* by absolute error, largest first */
    size_t ngroups;
    double mape_sim, mape_pred;
    double mape_now[2];     /* predicted, simulated with the disk as measured; NaN without */
    bool keep_disturbed;    /* disturbed runs are counted like the others */
    int disturbed;          /* runs measured under contention */
    int excluded;           /* of them, left out (all of them unless keep_disturbed) */
    int unknown;            /* runs recorded without their conditions (before llmsim kept them) */
    int fit_seen;           /* runs whose inputs the calibrated profile was fitted on */
    int counted;            /* runs in the MAPEs: not excluded, not seen by the fit */
    int covered;            /* of the counted runs with an interval, those measured inside it */
    int with_interval;
    const char *interval_source; /* cm_interval_source_names */
    double *task_err;       /* |simulated - measured| / measured of every task compared */
    size_t ntask_err, task_err_cap;
    double task_median;     /* their median, percent; NaN without */
    double rank_rho[2];     /* Spearman of predicted, simulated against measured throughput */
    int best[3];            /* index of the best by prediction, simulation, measurement */
    double shortfall[2];    /* (measured best - measured of the predicted, simulated best) /
                             * measured best, percent */
    cJSON *json;            /* the comparison as recorded, with its run_id; owned */
    int64_t run_id;
} validate_report;

/* Compare the three runs of each of the n policies of the job (model,
 * hardware, workload), and record the comparison as a 'validate' run (its
 * JSON lists the `top` primitives with the largest errors). A run measured
 * under contention is left out of the MAPEs (NaN when that leaves none) and
 * the primitives unless keep_disturbed. */
llmsim_status validate_compare(const record_job *job, const validate_policy *ps, int n, int top,
                               bool keep_disturbed, validate_report *out, diag *e);
void validate_report_free(validate_report *r);
/* The four stages the tables show, summed. */
double validate_stage_total(const double s[CM_NSTAGES]);

/* The signed error of x against ref in percent; NaN unless ref > 0. */
double validate_pct(double x, double ref);

/* A run's metric by key (NaN when absent). */
double validate_run_metric(store *db, int64_t id, const char *key, diag *e, llmsim_status *st);
/* The conditions a measure run recorded, read back from its metrics;
 * c->measured false for a run recorded before llmsim kept them (unknown). */
llmsim_status validate_run_conditions(store *db, int64_t id, exec_conditions *c, diag *e);

/* The tasks of a run sorted by id, for validate_task_find. Free with free(). */
llmsim_status validate_tasks_sorted(store *db, int64_t id, store_task_row **rows, size_t *n,
                                    diag *e);
const store_task_row *validate_task_find(const store_task_row *rows, size_t n, const char *id);

/* The primitive a task exercises, as a readable key: "disk read 12.6 MiB",
 * "layer compute, decode, context 16-31", ... */
void validate_primitive_key(const plan *pl, size_t i, long long prompt_len, char *out, size_t len);

#endif
