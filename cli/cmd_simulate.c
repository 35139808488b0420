/*
 * cmd_simulate — `llmsim simulate`: lower the policy to the plan, run the
 * discrete-event simulation, print the same keys as predict plus the
 * per-step stage breakdown and resource utilization, optionally write a
 * Chrome trace, and record every task's simulated timing in the store.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/record.h"
#include "common/units.h"
#include "sim/sim.h"

typedef struct task_rows {
    const plan *pl;
    const sim_result *r;
} task_rows;

static void fill_task(void *ctx, size_t i, store_task *out, char *id, size_t id_len)
{
    const task_rows *tr = ctx;
    const plan_task *t = &tr->pl->tasks[i];
    plan_task_id(tr->pl, i, id, id_len);
    out->resource = plan_res_names[t->res];
    out->start_s = tr->r->start_s[i];
    out->end_s = tr->r->end_s[i];
    out->bytes = t->bytes;
    out->flops = 0;
}

static void print_table(const cli_job *job, const plan *pl, const sim_result *r,
                        const cli_sim_totals *t)
{
    char a[32], b[32];
    printf("model     %s\nhardware  %s\n", job->model.name, job->hw.name);
    printf("plan      %zu tasks, %d steps x %d layers + head x %d GPU batches; simulated %ld "
           "events in %.3f s (%.3g events/s)\n\n", pl->ntasks, pl->nsteps, pl->nlayers, pl->ngb,
           r->events, r->wall_s, r->wall_s > 0 ? r->events / r->wall_s : 0);
    if (!r->fits) {
        char id[96];
        if (r->overflow_task == PLAN_NONE) /* the resident data alone does not fit */
            snprintf(id, sizeof id, "resident (weights, KV cache, hidden states)");
        else
            plan_task_id(pl, r->overflow_task, id, sizeof id);
        printf("DOES NOT FIT: the %s tier overflows by %s (first at task %s)\n\n",
               tier_names[r->overflow_tier], cli_bytes(r->overflow_bytes, a, sizeof a), id);
    }
    units_format(UNITS_TIME, t->total_s, a, sizeof a);
    printf("throughput  %.4g tok/s\ntotal       %s\n", t->throughput_tok_s, a);
    units_format(UNITS_TIME, t->prefill_s, a, sizeof a);
    units_format(UNITS_TIME, t->decode_s, b, sizeof b);
    printf("prefill     %s\ndecode      %s\n\n", a, b);
    printf("step   load_weight  load_cache   store_cache  compute      end\n");
    for (int j = 0; j < r->nsteps; j++) {
        if (r->nsteps > 12 && j > 4 && j < r->nsteps - 4) {
            if (j == 5)
                printf("...\n");
            continue;
        }
        char c[4][32], d[32];
        for (int k = 0; k < 4; k++)
            units_format(UNITS_TIME, r->steps[j].s[k], c[k], sizeof c[k]);
        units_format(UNITS_TIME, r->step_end_s[j], d, sizeof d);
        printf("%-6d %-12s %-12s %-12s %-12s %s\n", j, c[0], c[1], c[2], c[3], d);
    }
    printf("\nutilization");
    for (int k = 0; k < PLAN_NRES; k++)
        printf("  %s %.0f%%", plan_res_names[k],
               r->makespan_s > 0 ? 100 * r->busy_s[k] / r->makespan_s : 0);
    printf("\npeak memory");
    for (int k = 0; k < TIER_COUNT; k++)
        printf("  %s %s", tier_names[k], cli_bytes(r->peak_bytes[k], a, sizeof a));
    printf("\n");
}

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
    double cap[TIER_COUNT] = {
        job->hw.gpu.present ? job->hw.gpu.memory_bytes : 0,
        job->hw.cpu.memory_bytes,
        job->hw.disk.present ? job->hw.disk.capacity_bytes : 0,
    };
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
    cli_sim_totals t;
    cli_sim_totals_get(&pl, &r, &t);
    cJSON *obj = cli_simulation_json(job, &pl, &r, &t);
    char *text = cJSON_PrintUnformatted(obj);
    const cli_metric metrics[] = {
        {"throughput_tok_s", t.throughput_tok_s},
        {"total_s", t.total_s},
        {"prefill_s", t.prefill_s},
        {"decode_s", t.decode_s},
        {"feasible", r.fits ? 1.0 : 0.0},
        {"peak_gpu_bytes", r.peak_bytes[TIER_GPU]},
        {"peak_cpu_bytes", r.peak_bytes[TIER_CPU]},
        {"peak_disk_bytes", r.peak_bytes[TIER_DISK]},
        {"tasks", (double)pl.ntasks},
        {"events", (double)r.events},
    };
    task_rows rows = {&pl, &r};
    cli_record rec = {
        .kind = "simulate", .metrics = metrics, .nmetrics = (int)(sizeof metrics / sizeof metrics[0]),
        .steps = r.steps, .nsteps = r.nsteps, .ntasks = pl.ntasks, .fill = fill_task,
        .fill_ctx = &rows, .result_json = text,
    };
    int64_t run_id = 0;
    llmsim_status rs = cli_record_run(job, &rec, &run_id, &e);
    free(text);
    if (rs) {
        cJSON_Delete(obj);
        status = cli_fail("simulate", &e);
        goto done;
    }
    cJSON_AddNumberToObject(obj, "run_id", (double)run_id);
    if (job->format == CLI_FORMAT_JSON) {
        cli_print_json(obj);
    } else {
        cJSON_Delete(obj);
        print_table(job, &pl, &r, &t);
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
