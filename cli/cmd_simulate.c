/*
 * cmd_simulate — `llmsim simulate`: lower the policy to the plan, run the
 * discrete-event simulation, print the same keys as predict plus the
 * per-step stage breakdown and resource utilization, optionally write a
 * Chrome trace, and record every task's simulated timing in the store.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "db/record.h"
#include "db/timeline.h"
#include "common/units.h"
#include "sim/sim.h"

/* argv without --trace FILE (or --trace=FILE), simulate's own option, into
 * args, NULL ended; the file in *trace. Returns an exit status. */
static int lift_trace(int argc, char **argv, char **args, int *nargs, const char **trace)
{
    *nargs = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--trace") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '-') {
                fprintf(stderr, "llmsim simulate: --trace needs a file name\n");
                return CLI_EXIT_INPUT;
            }
            *trace = argv[++i];
            continue;
        }
        if (strncmp(argv[i], "--trace=", 8) == 0) {
            *trace = argv[i] + 8;
            continue;
        }
        args[(*nargs)++] = argv[i];
    }
    args[*nargs] = NULL;
    return CLI_EXIT_OK;
}

/* Record the simulated timeline and print it. */
static int record_and_print(const cli_job *job, const plan *pl, const sim_result *r,
                            const char *trace)
{
    diag e;
    diag_clear(&e);
    sim_totals t;
    cJSON *obj = NULL;
    int64_t run_id = 0;
    record_job rj = cli_record_job(job);
    llmsim_status st = record_simulation(&rj, pl, r, &t, &obj, &run_id, &e);
    if (!obj)
        return cli_fail("simulate", &e);
    if (r->fits)
        cli_interval_report("simulate", job, t.total_s, t.throughput_tok_s * t.total_s, obj, NULL);
    if (!cli_print_json_if_asked(job->format, obj)) {
        cli_simulation_table(job, pl, r, &t);
        if (trace)
            printf("trace       %s (open in Perfetto or chrome://tracing)\n", trace);
        if (!st)
            printf("recorded as run %lld in %s\n", (long long)run_id, job->db_path);
    }
    if (st) {
        fflush(stdout);
        return cli_not_recorded("simulate", &e);
    }
    return CLI_EXIT_OK;
}

/* Lower the job to its plan, simulate it, write the trace; record and print. */
static int simulate(const cli_job *job, const char *trace)
{
    diag e;
    diag_clear(&e);
    plan pl;
    if (plan_build(&job->model, &job->hw, &job->policy, &job->workload, &pl, &e))
        return cli_fail("simulate", &e);
    double cap[TIER_COUNT];
    cm_hw_capacities(&job->hw, cap);
    sim_result r;
    int status = CLI_EXIT_OK;
    if (sim_run(&pl, cap, true, &r, &e)) { /* its memory samples are the stored timeline */
        status = cli_fail("simulate", &e);
        goto done;
    }
    if (trace) {
        char title[256];
        snprintf(title, sizeof title, "llmsim simulate: %s on %s", job->model.name, job->hw.name);
        if (sim_trace_write(&pl, &r, title, trace, &e)) {
            status = cli_fail("simulate", &e);
            goto done;
        }
    }
    status = record_and_print(job, &pl, &r, trace);
done:
    sim_result_free(&r);
    plan_free(&pl);
    return status;
}

int cmd_simulate(int argc, char **argv)
{
    const char *trace = NULL;
    char **args = cli_args_new("simulate", argc, 0);
    if (!args)
        return CLI_EXIT_FAIL;
    int nargs;
    cli_job *job = NULL;
    int status = lift_trace(argc, argv, args, &nargs, &trace);
    if (!status)
        status = cli_job_new(nargs, args, "simulate",
                             "Lower the policy to the task graph the engine executes and simulate it\n"
                             "event by event: the same keys as predict, plus the stage breakdown of\n"
                             "every step, utilization per resource, and with --trace FILE a Chrome\n"
                             "trace (open it in Perfetto). Every task's timing goes into the store.",
                             "  --trace FILE           write the timeline as Chrome Trace Event JSON\n",
                             &job);
    free(args);
    if (job) /* the whole line, --trace too */
        cli_command_line(argc, argv, job->command, sizeof job->command);
    if (job) {
        cli_flagged_check("simulate", job->hw_spec, &job->hw,
                          placement_hw_uses(&job->model, &job->hw, &job->policy), false);
        status = simulate(job, trace);
    }
    free(job);
    return status;
}
