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
#include "costmodel/interval.h"
#include "db/record.h"
#include "exec/engine.h"
#include "hwprofiles/hwprofile.h"
#include "models/model.h"
#include "policies/policy.h"
#include "sim/sim.h"
#include "workload/workload.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_INPUT 2

typedef enum cli_format { CLI_FORMAT_TABLE, CLI_FORMAT_JSON } cli_format;

/* A resolved job: everything predict, simulate and run need. */
#define CLI_COMMAND_MAX 4096 /* a recorded command line, with its NUL */

typedef struct cli_job {
    model model;
    hwprofile hw;
    policy policy;
    workload workload;
    cli_format format;
    const char *db_path;     /* --db, $LLMSIM_DB, or ./llmsim.db */
    const char *model_spec;  /* as given */
    const char *hw_spec;
    char command[CLI_COMMAND_MAX]; /* the command line, for the store */
    const char *workload_text; /* recorded instead of `workload` when set (serve-sim's
                                * requests) */
} cli_job;

/* Parse the job options of `cmd` (see cli_job_usage) from argv. On --help,
 * prints usage and sets *help. Returns an exit status (0 on success). */
int cli_job_parse(int argc, char **argv, const char *cmd, cli_job *job, bool *help);
void cli_job_usage(FILE *out, const char *cmd, const char *summary);
/* A job allocated and parsed (cli_job_parse) for `cmd`. On --help prints
 * cli_job_usage with `summary`, then `more` (the command's own options; NULL:
 * none). Returns an exit status; *out is the job, which the caller frees,
 * when it is 0 and --help was not given, else NULL. */
int cli_job_new(int argc, char **argv, const char *cmd, const char *summary, const char *more,
                cli_job **out);

/* Load job->model and job->hw from job->model_spec and job->hw_spec. */
int cli_load_inputs(const char *cmd, cli_job *job);
/* The FLAGGED figures of profile hw (named `spec`) among the parts `uses`
 * (hw_uses): a warning on stderr naming each, or with `refuse` an error
 * that says how to go on (CLI_EXIT_INPUT); CLI_EXIT_OK when none. */
int cli_flagged_check(const char *cmd, const char *spec, const hwprofile *hw, unsigned uses,
                      bool refuse);
/* The workload from a file and/or the flags (negative: not given). */
int cli_load_workload(const char *cmd, cli_job *job, const char *file, long long prompt,
                      long long gen, long long nprompts);
/* A whole number in [min, max]. */
bool cli_parse_ll(const char *s, long long min, long long max, long long *out);

/* ---- options: each reports a bad one as "llmsim CMD: ..." on stderr */
/* argv's room for a command that lifts its own options out: argc + extra + 1
 * pointers (the caller frees them); NULL after "out of memory". */
char **cli_args_new(const char *cmd, int argc, int extra);
/* The options that name a job's inputs and its output, which the job parser
 * and search share: --model, --hardware and --format go into the job, the
 * rest here. */
typedef struct cli_input_opts {
    const char *workload_file, *db;
    long long prompt_len, gen_len, num_prompts; /* negative: not given */
} cli_input_opts;
#define CLI_INPUT_OPTS_INIT {NULL, NULL, -1, -1, -1}
/* The value of input option `name` (a long option's name, without "--":
 * model, hardware, workload, prompt-len, gen-len, num-prompts, format or
 * db); false after a message when it is not valid. */
bool cli_input_opt(const char *cmd, const char *name, const char *val, cli_job *job,
                   cli_input_opts *in);
/* The value of option `opt` as a whole number in [min, max]; false after
 * "OPT 'VAL' must be a whole number from MIN to MAX". */
bool cli_opt_whole(const char *cmd, const char *opt, const char *val, long long min, long long max,
                   long long *out);
/* A token count (--prompt-len and the like): a whole number from 1 to 2^40;
 * false after "OPT 'VAL' must be a positive whole number". */
bool cli_opt_count(const char *cmd, const char *opt, const char *val, long long *out);
/* "table" or "json" into *f; false (and no message) for anything else. */
bool cli_format_parse(const char *s, cli_format *f);
/* --format's value (table or json) into *f; false after a message. */
bool cli_opt_format(const char *cmd, const char *val, cli_format *f);
/* Make the next getopt_long call start again at argv[1], with its own
 * messages off (the commands' name the command and say what to do). */
void cli_getopt_reset(void);
/* The message for an option getopt_long rejected (opterr off, optstring
 * starting with ':', so c is ':' for a missing value); returns CLI_EXIT_INPUT. */
int cli_opt_rejected(const char *cmd, int c, char **argv);
/* The index of s in names[0..n), or -1. */
int cli_name_index(const char *s, const char *const *names, int n);
/* For commands that lift their own options out of argv before the job parser
 * sees the rest: when argv[*i] is one of the n options of `names`, each of
 * which takes a value, its index, with *i moved onto the value and *val set
 * to it; -1 when it is none of them; -2 (after "OPT needs a value") when no
 * value follows. */
int cli_opt_valued(const char *cmd, int argc, char **argv, int *i, const char *const *names, int n,
                   const char **val);
/* "OPT 'VAL' is not valid (see llmsim CMD --help)"; returns CLI_EXIT_INPUT. */
int cli_opt_invalid(const char *cmd, const char *opt, const char *val);

/* The engine's defaults for run and validate: synthetic weights, prompts and
 * sampling with seed 1, greedy (top-p 1), stopped by ^C (cli_interrupted). */
void cli_engine_opts_init(engine_opts *o);
/* The engine options run and serve share, by index into
 * cli_engine_opt_names: --synthetic SEED, --weights PATH, --prompt-seed N,
 * --temperature T, --top-p P, --offload-dir DIR, --max-ram SIZE, --threads N.
 * cli_engine_opt takes the value of option `which` into o; false when it is
 * not valid. */
#define CLI_ENGINE_OPTS 8
extern const char *const cli_engine_opt_names[CLI_ENGINE_OPTS];
bool cli_engine_opt(engine_opts *o, int which, const char *v);

/* The token ids of one line of a token file (separated by blanks; nothing
 * from '#' on) appended to toks[0 .. *n), grown as needed (llmsim_grow);
 * *count: how many the line had. A bad id: LLMSIM_EINPUT naming
 * path:lineno:column and the vocabulary. */
llmsim_status cli_token_line(const char *path, size_t lineno, const char *line, long long vocab,
                             int32_t **toks, size_t *n, size_t *cap, long long *count, diag *e);

/* "llmsim " + argv joined by spaces into out, for the record: a word a shell
 * would split or expand in single quotes, so that the line pastes back; one
 * that does not fit in len ends in "...". */
void cli_command_line(int argc, char **argv, char *out, size_t len);

/* ^C or SIGTERM during long work (run, validate, profile, serve, serve-sim):
 * the first sets cli_interrupted to the signal (the engine, the simulator
 * and the profiler stop at their next step and clean up); a second removes
 * the offload files from the handler and exits 128 + the signal at once.
 * cli_sigint_catch installs the handler for both and saves SIGINT's old one
 * in *old; cli_sigint_release puts both back. cli_interrupt_status: the exit
 * status of an interrupted command, 130 (SIGINT) or 143 (SIGTERM). */
extern volatile sig_atomic_t cli_interrupted;
void cli_sigint_catch(struct sigaction *old);
void cli_sigint_release(const struct sigaction *old);
int cli_interrupt_status(void);

/* The store path from --db or the environment. */
const char *cli_db_path(const char *opt);

/* Print a diag as "llmsim CMD: message" on stderr and return the exit status. */
int cli_fail(const char *cmd, const diag *e);
/* A result was printed but storing it failed: a warning (e's message) on
 * stderr; the exit status of e (1 for the environment: a full disk, an I/O
 * error; 2 when the store itself is bad input). */
int cli_not_recorded(const char *cmd, const diag *e);
int cli_exit_status(llmsim_status st);

/* The job as the store records it (db/record.h): pointers into job. */
record_job cli_record_job(const cli_job *job);

/* ---- output */
/* The JSON of a prediction and of a simulated timeline (db/result_json.h)
 * for the job. Caller owns the object. */
cJSON *cli_prediction_json(const cli_job *job, const cm_result *r);
/* The interval of the job's total time (costmodel/interval.h) around total_s,
 * for `tokens` generated: into obj as `interval` {source, total_s_p10,
 * total_s_p90, throughput_tok_s_p10, throughput_tok_s_p90} (the keys null
 * without an interval), and as one line on out when out is given. A
 * failure to compute it leaves it out, with a warning. */
void cli_interval_report(const char *cmd, const cli_job *job, double total_s, double tokens, cJSON *obj,
                         FILE *out);
cJSON *cli_simulation_json(const cli_job *job, const plan *pl, const sim_result *r,
                           const sim_totals *t);
void cli_prediction_table(FILE *out, const cli_job *job, const cm_result *r);
/* Print a JSON object on stdout followed by a newline; frees it. */
void cli_print_json(cJSON *obj);
/* With --format json (format): prints obj (cli_print_json) and returns
 * true. Otherwise frees obj and returns false: the caller prints its table. */
bool cli_print_json_if_asked(cli_format format, cJSON *obj);

/* A human size / time for tables. */
const char *cli_bytes(double v, char *buf, size_t len);

/* The table of a simulated or measured timeline. */
void cli_simulation_table(const cli_job *job, const plan *pl, const sim_result *r,
                          const sim_totals *t);

int cmd_predict(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_run(int argc, char **argv);

#endif
