/*
 * serve_args — the options and the summary that `llmsim serve-sim` and
 * `llmsim serve` share: the requests (--trace-in, or the generator's
 * --num-requests, --rate, --arrival, --cv, --prompt-len, --output-len,
 * --weight, --seed), the serving settings (--preemption, --scheduler,
 * --fair-alpha, --block-size, --max-batch, --token-budget, --swap-space,
 * --kv-memory, --mem-util), --trace and --requests-out; the rest goes to the
 * job parser (model, hardware, policy, --format, --db).
 */
#ifndef LLMSIM_CLI_SERVE_ARGS_H
#define LLMSIM_CLI_SERVE_ARGS_H

#include <stdbool.h>
#include <stdio.h>

#include <cJSON.h>

#include "cli/cli.h"
#include "common/strbuf.h"
#include "serving/result.h"
#include "serving/setup.h"
#include "workload/requests.h"

typedef struct serve_opts {
    const char *cmd;      /* "serve-sim" or "serve", for messages */
    const char *trace_in, *trace_out, *requests_out;
    const char *prompt_spec, *output_spec, *weight_spec;
    serve_gen gen;
    bool gen_given;       /* any generator option */
    serve_config cfg;
    bool given_preempt, given_sched, given_block, given_cv;
} serve_opts;

/* The help of the job's, the requests' and the serving settings' options. */
void serve_args_usage(FILE *out);
/* The defaults: vLLM's serving setup, and the generator's requests. */
void serve_opts_init(serve_opts *o, const char *cmd);
/* Serving's options into o, the job's into job (argv[0] the command); the
 * options checked together, and the policy's serving section where no flag
 * says otherwise. args has room for argc + 3. Returns an exit status. */
int serve_args_parse(int argc, char **argv, char **args, serve_opts *o, cli_job *job);
/* The requests, from --trace-in or the generator, and their text for the
 * record (wtext). Returns an exit status. */
int serve_args_requests(serve_opts *o, serve_requests *q, strbuf *wtext);
/* The summary table of a serving run (predicted or measured). */
void serve_args_table(const cli_job *job, const serve_opts *o, const serve_setup *s,
                      const serve_requests *q, const serve_result *r);
/* What the prefix cache gained (on) against the same run without it (off),
 * added to root's "prefix_cache" object (ttft_gain_s: off minus on, and
 * "without") or printed as a line of the table. */
void serve_args_prefix_gain(cJSON *root, const serve_result *on, const serve_result *off);
void serve_args_prefix_gain_print(const serve_result *on, const serve_result *off);
/* --trace and --requests-out writable, checked before the run (exit status). */
int serve_args_check_outputs(const serve_opts *o);
/* --requests-out: one CSV row per request with its timings. */
llmsim_status serve_args_write_requests(const char *path, const serve_requests *q,
                                        const serve_result *r, diag *e);

#endif
