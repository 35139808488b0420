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

int cmd_simulate(int argc, char **argv)
{
    /* --trace FILE is simulate's own; the rest are predict's */
    const char *trace = NULL;
    char **args = malloc(sizeof(char *) * ((size_t)argc + 1));
    cli_job *job = calloc(1, sizeof *job);
    if (!args || !job) {
        free(args);
        free(job);
        fprintf(stderr, "llmsim simulate: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    int nargs = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--trace") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '-') {
                fprintf(stderr, "llmsim simulate: --trace needs a file name\n");
                free(args);
                free(job);
                return CLI_EXIT_INPUT;
            }
            trace = argv[++i];
            continue;
        }
        if (strncmp(argv[i], "--trace=", 8) == 0) {
            trace = argv[i] + 8;
            continue;
        }
        args[nargs++] = argv[i];
    }
    args[nargs] = NULL;
    bool help;
    int status = cli_job_parse(nargs, args, "simulate", job, &help);
    free(args);
    if (help) {
        cli_job_usage(stdout, "simulate",
                      "Lower the policy to the task graph the engine executes and simulate it\n"
                      "event by event: the same keys as predict, plus the stage breakdown of\n"
                      "every step, utilization per resource, and with --trace FILE a Chrome\n"
                      "trace (open it in Perfetto). Every task's timing goes into the store.");
        printf("  --trace FILE           write the timeline as Chrome Trace Event JSON\n");
        free(job);
        return CLI_EXIT_OK;
    }
    if (status) {
        free(job);
        return status;
    }
    diag e;
    diag_clear(&e);
    plan pl;
    if (plan_build(&job->model, &job->hw, &job->policy, &job->workload, &pl, &e)) {
        status = cli_fail("simulate", &e);
        free(job);
        return status;
    }
    double cap[TIER_COUNT];
    cm_hw_capacities(&job->hw, cap);
    sim_result r;
    if (sim_run(&pl, cap, trace != NULL, &r, &e)) {
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
    sim_totals t;
    cJSON *obj = NULL;
    int64_t run_id = 0;
    record_job rj = cli_record_job(job);
    if (record_simulation(&rj, &pl, &r, &t, &obj, &run_id, &e)) {
        status = cli_fail("simulate", &e);
        goto done;
    }
    if (job->format == CLI_FORMAT_JSON) {
        cli_print_json(obj);
    } else {
        cJSON_Delete(obj);
        cli_simulation_table(job, &pl, &r, &t);
        if (trace)
            printf("trace       %s (open in Perfetto or chrome://tracing)\n", trace);
        printf("recorded as run %lld in %s\n", (long long)run_id, job->db_path);
    }
    status = CLI_EXIT_OK;
done:
    sim_result_free(&r);
    plan_free(&pl);
    free(job);
    return status;
}
