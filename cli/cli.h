/*
 * cli — what the subcommands share: the job arguments (model, hardware,
 * policy, workload) that predict, simulate and run all take, the output
 * format, the store path, and the JSON form of a prediction.
 *
 * Every command returns its process exit status: 0 success, 2 bad input
 * (a message on stderr that says what to fix), 1 any other failure.
 */
#ifndef LLMSIM_CLI_CLI_H
#define LLMSIM_CLI_CLI_H

#include <cJSON.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/diag.h"
#include "costmodel/analytic.h"
#include "hwprofiles/hwprofile.h"
#include "models/model.h"
#include "workload/workload.h"
#include "policies/policy.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_INPUT 2

typedef enum cli_format { CLI_FORMAT_TABLE, CLI_FORMAT_JSON } cli_format;

/* A resolved job: everything predict, simulate and run need. */
typedef struct cli_job {
    model model;
    hwprofile hw;
    policy policy;
    workload workload;
    cli_format format;
    const char *db_path;     /* --db, $LLMSIM_DB, or ./llmsim.db */
    const char *model_spec;  /* as given */
    const char *hw_spec;
    char command[1024];      /* the command line, for the store */
    const char *workload_text; /* recorded instead of `workload` when set (serve-sim's
                                * requests) */
} cli_job;

/* Parse the job options of `cmd` (see cli_job_usage) from argv. On --help,
 * prints usage and sets *help. Returns an exit status (0 on success). */
int cli_job_parse(int argc, char **argv, const char *cmd, cli_job *job, bool *help);
void cli_job_usage(FILE *out, const char *cmd, const char *summary);

/* Load job->model and job->hw from job->model_spec and job->hw_spec. */
int cli_load_inputs(const char *cmd, cli_job *job);
/* The workload from a file and/or the flags (negative: not given). */
int cli_load_workload(const char *cmd, cli_job *job, const char *file, long long prompt,
                      long long gen, long long nprompts);
/* A whole number in [min, max]. */
bool cli_parse_ll(const char *s, long long min, long long max, long long *out);

/* "llmsim " + argv joined by spaces into out (cut to len), for the record. */
void cli_command_line(int argc, char **argv, char *out, size_t len);

/* ^C during long work (run, validate, profile): the first sets
 * cli_interrupted (the engine and the profiler stop at their next step and
 * clean up); a second removes the offload files from the handler and exits
 * 130 at once. cli_sigint_catch installs the handler and saves the old one in
 * *old; cli_sigint_release puts it back. */
extern volatile sig_atomic_t cli_interrupted;
void cli_sigint_catch(struct sigaction *old);
void cli_sigint_release(const struct sigaction *old);

/* The store path from --db or the environment. */
const char *cli_db_path(const char *opt);

/* Print a diag as "llmsim CMD: message" on stderr and return the exit status. */
int cli_fail(const char *cmd, const diag *e);
int cli_exit_status(llmsim_status st);

/* ---- output */
cJSON *cli_policy_json(const policy *p);
/* {"load_weight_s": .., "load_cache_s": .., ...}: one number per stage. */
cJSON *cli_stages_json(const double s[CM_NSTAGES]);
/* The §11 keys of a prediction, plus details. Caller owns the object. */
cJSON *cli_prediction_json(const cli_job *job, const cm_result *r);
void cli_prediction_table(FILE *out, const cli_job *job, const cm_result *r);
/* Print a JSON object on stdout followed by a newline; frees it. */
void cli_print_json(cJSON *obj);
/* Long generations: the per-step breakdown (JSON `steps`, the store's
 * run_stages) keeps at most CLI_MAX_STEPS steps, evenly spaced, with the
 * first and the last; each entry carries its step number. */
#define CLI_MAX_STEPS 512
bool cli_step_kept(int j, int n);

/* A human size / time for tables. */
const char *cli_bytes(double v, char *buf, size_t len);

/* The whole workload's totals from one simulated block of a plan. */
struct plan;
struct sim_result;
typedef struct cli_sim_totals {
    double total_s, prefill_s, decode_s, throughput_tok_s;
    double layer_stage_s[CM_NSTAGES];   /* per decoder layer, decode steps averaged */
    double prefill_stage_s[CM_NSTAGES]; /* per decoder layer, prefill */
} cli_sim_totals;
void cli_sim_totals_get(const struct plan *pl, const struct sim_result *r, cli_sim_totals *t);
/* The §11 keys of a simulation plus steps, utilization and simulation stats. */
cJSON *cli_simulation_json(const cli_job *job, const struct plan *pl, const struct sim_result *r,
                           const cli_sim_totals *t);

/* The table of a simulated or measured timeline. */
void cli_simulation_table(const cli_job *job, const struct plan *pl, const struct sim_result *r,
                          const cli_sim_totals *t);
/* Store rows of every task of a timeline (a store_task_fill). */
typedef struct cli_task_rows {
    const struct plan *pl;
    const struct sim_result *r;
} cli_task_rows;
struct store_task;
void cli_task_rows_fill(void *ctx, size_t i, struct store_task *out, char *id, size_t id_len);

int cmd_predict(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_run(int argc, char **argv);

#endif
