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

static cJSON *stage_obj(const double s[CM_NSTAGES])
{
    cJSON *o = cJSON_CreateObject();
    char key[64];
    for (int k = 0; k < CM_NSTAGES; k++) {
        snprintf(key, sizeof key, "%s_s", cm_stage_names[k]);
        cJSON_AddNumberToObject(o, key, s[k]);
    }
    return o;
}

static cJSON *placement_obj(const placement *pl)
{
    cJSON *o = cJSON_CreateObject();
    for (int t = 0; t < TIER_COUNT; t++)
        cJSON_AddNumberToObject(o, tier_names[t], pl->f[t]);
    return o;
}

/* Totals of the whole workload from one simulated block. */
typedef struct sim_totals {
    double total_s, prefill_s, decode_s, throughput_tok_s;
    double layer_stage_s[CM_NSTAGES]; /* per decoder layer, decode steps averaged */
    double prefill_stage_s[CM_NSTAGES];
} sim_totals;

static void totals_get(const plan *pl, const sim_result *r, sim_totals *t)
{
    memset(t, 0, sizeof *t);
    t->total_s = pl->blocks * r->makespan_s;
    t->prefill_s = pl->blocks * r->step_end_s[0];
    t->decode_s = t->total_s - t->prefill_s;
    t->throughput_tok_s = pl->num_prompts * (double)pl->gen_len / t->total_s;
    for (size_t i = 0; i < pl->ntasks; i++) {
        const plan_task *k = &pl->tasks[i];
        if (k->layer >= pl->nlayers)
            continue;
        if (k->step == 0)
            t->prefill_stage_s[k->stage] += k->dur_s;
        else
            t->layer_stage_s[k->stage] += k->dur_s;
    }
    for (int s = 0; s < CM_NSTAGES; s++) {
        t->prefill_stage_s[s] /= pl->nlayers;
        if (pl->nsteps > 1)
            t->layer_stage_s[s] /= (double)pl->nlayers * (pl->nsteps - 1);
    }
}

static cJSON *result_json(const cli_job *job, const plan *pl, const sim_result *r,
                          const sim_totals *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", job->model.name);
    cJSON_AddStringToObject(o, "hardware", job->hw.name);
    cJSON_AddBoolToObject(o, "feasible", r->fits);
    if (!r->fits) {
        cJSON *inf = cJSON_AddObjectToObject(o, "infeasible");
        char id[96];
        plan_task_id(pl, r->overflow_task, id, sizeof id);
        cJSON_AddStringToObject(inf, "tier", tier_names[r->overflow_tier]);
        cJSON_AddNumberToObject(inf, "overflow_bytes", r->overflow_bytes);
        cJSON_AddStringToObject(inf, "task", id);
    }
    cJSON_AddNumberToObject(o, "throughput_tok_s", t->throughput_tok_s);
    cJSON_AddNumberToObject(o, "total_s", t->total_s);
    cJSON_AddNumberToObject(o, "prefill_s", t->prefill_s);
    cJSON_AddNumberToObject(o, "decode_s", t->decode_s);
    cJSON *pk = cJSON_AddObjectToObject(o, "peak_bytes");
    for (int k = 0; k < TIER_COUNT; k++)
        cJSON_AddNumberToObject(pk, tier_names[k], r->peak_bytes[k]);
    cJSON_AddItemToObject(o, "stages", stage_obj(t->layer_stage_s));
    cJSON_AddItemToObject(o, "prefill_stages", stage_obj(t->prefill_stage_s));
    cJSON *steps = cJSON_AddArrayToObject(o, "steps");
    for (int j = 0; j < r->nsteps; j++) {
        cJSON *st = stage_obj(r->steps[j].s);
        cJSON_AddNumberToObject(st, "step", j);
        cJSON_AddNumberToObject(st, "end_s", r->step_end_s[j]);
        cJSON_AddItemToArray(steps, st);
    }
    cJSON *ut = cJSON_AddObjectToObject(o, "utilization");
    for (int k = 0; k < PLAN_NRES; k++)
        cJSON_AddNumberToObject(ut, plan_res_names[k],
                                r->makespan_s > 0 ? r->busy_s[k] / r->makespan_s : 0);
    cJSON *sim = cJSON_AddObjectToObject(o, "simulation");
    cJSON_AddNumberToObject(sim, "tasks", (double)pl->ntasks);
    cJSON_AddNumberToObject(sim, "events", (double)r->events);
    cJSON_AddNumberToObject(sim, "wall_s", r->wall_s);
    cJSON_AddNumberToObject(sim, "events_per_s", r->wall_s > 0 ? r->events / r->wall_s : 0);
    cJSON_AddNumberToObject(sim, "block_s", r->makespan_s);
    cJSON_AddNumberToObject(sim, "blocks", pl->blocks);
    cJSON *wl = cJSON_AddObjectToObject(o, "workload");
    cJSON_AddNumberToObject(wl, "prompt_len", (double)job->workload.prompt_len);
    cJSON_AddNumberToObject(wl, "gen_len", (double)job->workload.gen_len);
    cJSON_AddNumberToObject(wl, "num_prompts", pl->num_prompts);
    cJSON_AddNumberToObject(wl, "blocks", pl->blocks);
    cJSON_AddItemToObject(o, "policy", cli_policy_json(&job->policy));
    cJSON *real = cJSON_AddObjectToObject(o, "realized");
    cJSON_AddItemToObject(real, "weights", placement_obj(&pl->realized.weights));
    cJSON_AddItemToObject(real, "kv_cache", placement_obj(&pl->kv_realized));
    cJSON_AddItemToObject(real, "activations", placement_obj(&pl->act_realized));
    cJSON_AddItemToObject(real, "head_weights", placement_obj(&pl->realized.head));
    return o;
}

static void print_table(const cli_job *job, const plan *pl, const sim_result *r,
                        const sim_totals *t)
{
    char a[32], b[32];
    printf("model     %s\nhardware  %s\n", job->model.name, job->hw.name);
    printf("plan      %zu tasks, %d steps x %d layers + head x %d GPU batches; simulated %ld "
           "events in %.3f s (%.3g events/s)\n\n", pl->ntasks, pl->nsteps, pl->nlayers, pl->ngb,
           r->events, r->wall_s, r->wall_s > 0 ? r->events / r->wall_s : 0);
    if (!r->fits) {
        char id[96];
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
    sim_totals t;
    totals_get(&pl, &r, &t);
    cJSON *obj = result_json(job, &pl, &r, &t);
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
