/*
 * output — results as tables, and as JSON (their form in the store,
 * db/result_json.h) on stdout.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/units.h"
#include "db/result_json.h"

const char *cli_bytes(double v, char *buf, size_t len)
{
    units_format(UNITS_BYTES, v, buf, len);
    return buf;
}

cJSON *cli_prediction_json(const cli_job *job, const cm_result *r)
{
    record_job j = cli_record_job(job);
    return result_prediction_json(&j, r);
}

cJSON *cli_simulation_json(const cli_job *job, const plan *pl, const sim_result *r,
                           const sim_totals *t)
{
    record_job j = cli_record_job(job);
    return result_simulation_json(&j, pl, r, t);
}

void cli_print_json(cJSON *obj)
{
    char *s = cJSON_Print(obj);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    cJSON_Delete(obj);
}

bool cli_print_json_if_asked(cli_format format, cJSON *obj)
{
    if (format != CLI_FORMAT_JSON) {
        cJSON_Delete(obj);
        return false;
    }
    cli_print_json(obj);
    return true;
}

static void pct_line(FILE *out, const char *name, const placement *asked, const placement *pl)
{
    fprintf(out, "  %-12s gpu %5.1f%%  cpu %5.1f%%  disk %5.1f%%", name, 100 * pl->f[TIER_GPU],
            100 * pl->f[TIER_CPU], 100 * pl->f[TIER_DISK]);
    bool same = true;
    for (int t = 0; t < TIER_COUNT; t++)
        same = same && fabs(asked->f[t] - pl->f[t]) < 5e-4;
    if (!same)
        fprintf(out, "   (asked %.0f/%.0f/%.0f; whole tensors)", 100 * asked->f[TIER_GPU],
                100 * asked->f[TIER_CPU], 100 * asked->f[TIER_DISK]);
    fputc('\n', out);
}

static void fmt_time(double s, char *buf, size_t len) { units_format(UNITS_TIME, s, buf, len); }

void cli_prediction_table(FILE *out, const cli_job *job, const cm_result *r)
{
    const policy *p = &job->policy;
    char a[32], b[32], c[32];
    fprintf(out, "model     %s (%s)\nhardware  %s\n", job->model.name,
            model_family_names[job->model.family], job->hw.name);
    fprintf(out, "workload  prompt %lld, generate %lld, %.0f prompts in %.0f block(s) of %d x %d\n",
            job->workload.prompt_len, job->workload.gen_len, r->num_prompts, r->blocks,
            p->gpu_batch_size, p->num_gpu_batches);
    fprintf(out, "placement (realized)\n");
    static const char *names[3] = {"weights", "kv_cache", "activations"};
    for (int i = 0; i < 3; i++)
        pct_line(out, names[i], &r->requested[i], &r->realized[i]);
    fprintf(out, "  weight quant %s, kv quant %s, cpu attention %s, overlap %s\n",
            p->weight_quant.bits ? (p->weight_quant.bits == 4 ? "4-bit" : "8-bit") : "none",
            p->kv_quant.bits ? (p->kv_quant.bits == 4 ? "4-bit" : "8-bit") : "none",
            p->cpu_attention ? "on" : "off", p->overlap ? "on" : "off");
    fprintf(out, "\n");
    if (!r->feasible)
        fprintf(out, "INFEASIBLE: the %s tier overflows by %s (peak %s, capacity %s)\n\n",
                tier_names[r->overflow_tier], cli_bytes(r->overflow_bytes, a, sizeof a),
                cli_bytes(r->peak_bytes[r->overflow_tier], b, sizeof b),
                cli_bytes(r->capacity_bytes[r->overflow_tier], c, sizeof c));
    fmt_time(r->total_s, a, sizeof a);
    if (r->feasible)
        fprintf(out, "throughput  %.4g tok/s\n", r->throughput_tok_s);
    else /* not a throughput it would run at: it does not run */
        fprintf(out, "throughput  none: the policy does not fit (its timeline, were the %s tier "
                "large enough, is below)\n", tier_names[r->overflow_tier]);
    fprintf(out, "total       %s\n", a);
    if (r->feasible)
        cli_interval_report("predict", job, r->total_s, r->throughput_tok_s * r->total_s, NULL, out);
    fmt_time(r->prefill_s, a, sizeof a);
    fmt_time(r->decode_s, b, sizeof b);
    fprintf(out, "prefill     %s\ndecode      %s\n\n", a, b);
    fprintf(out, "per layer             prefill        decode (avg step)\n");
    for (int k = 0; k < CM_NSTAGES; k++) {
        fmt_time(r->prefill_stage_s[k], a, sizeof a);
        fmt_time(r->layer_stage_s[k], b, sizeof b);
        fprintf(out, "  %-18s %-14s %s\n", cm_stage_names[k], a, b);
    }
    fmt_time(r->prefill_layer_s, a, sizeof a);
    fmt_time(r->decode_layer_s, b, sizeof b);
    fprintf(out, "  %-18s %-14s %s\n", "layer time", a, b);
    fprintf(out, "  %-18s %-14s %s\n\n", "bottleneck",
            (const char *[]){"h2d", "d2h", "disk", "compute"}[r->prefill_bottleneck],
            r->nsteps ? (const char *[]){"h2d", "d2h", "disk", "compute"}[r->decode_bottleneck]
                      : "-");
    fprintf(out, "peak memory           peak           capacity\n");
    for (int t = 0; t < TIER_COUNT; t++)
        fprintf(out, "  %-18s %-14s %s\n", tier_names[t], cli_bytes(r->peak_bytes[t], a, sizeof a),
                cli_bytes(r->capacity_bytes[t], b, sizeof b));
}

/* ---- simulation results */

/* ---- timelines as tables and store rows (simulate and run) */

void cli_simulation_table(const cli_job *job, const plan *pl, const sim_result *r,
                          const sim_totals *t)
{
    char a[32], b[32];
    printf("model     %s\nhardware  %s\n", job->model.name, job->hw.name);
    if (r->wall_s > 0)
        printf("plan      %zu tasks, %d steps x %d layers + head x %d GPU batches; simulated %ld "
               "events in %.3f s (%.3g events/s)\n\n", pl->ntasks, pl->nsteps, pl->nlayers, pl->ngb,
               r->events, r->wall_s, r->events / r->wall_s);
    else
        printf("plan      %zu tasks, %d steps x %d layers + head x %d GPU batches\n\n", pl->ntasks,
               pl->nsteps, pl->nlayers, pl->ngb);
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
    if (r->fits)
    {
        printf("throughput  %.4g tok/s\ntotal       %s\n", t->throughput_tok_s, a);
        cli_interval_report("simulate", job, t->total_s, t->throughput_tok_s * t->total_s, NULL, stdout);
    } else /* not a throughput it would run at: it does not run */
        printf("throughput  none: the plan does not fit (its timeline, were the %s tier large "
               "enough, is below)\ntotal       %s\n", tier_names[r->overflow_tier], a);
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


void cli_interval_report(const char *cmd, const cli_job *job, double total_s, double tokens, cJSON *obj,
                         FILE *out)
{
    diag e;
    diag_clear(&e);
    cm_interval iv;
    if (cm_predict_interval(&job->model, &job->hw, &job->policy, &job->workload, &iv, &e)) {
        fprintf(stderr, "llmsim %s: warning: no interval: %s\n", cmd, e.msg);
        return;
    }
    const bool has = iv.source != CM_INTERVAL_NONE && total_s > 0;
    const double lo = iv.lo * total_s, hi = iv.hi * total_s;
    if (obj) {
        cJSON *o = cJSON_AddObjectToObject(obj, "interval");
        cJSON_AddStringToObject(o, "source", cm_interval_source_names[iv.source]);
        cJSON_AddItemToObject(o, "total_s_p10", has ? cJSON_CreateNumber(lo) : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "total_s_p90", has ? cJSON_CreateNumber(hi) : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "throughput_tok_s_p10", has ? cJSON_CreateNumber(tokens / hi) : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "throughput_tok_s_p90", has ? cJSON_CreateNumber(tokens / lo) : cJSON_CreateNull());
    }
    if (!out)
        return;
    char a[32], b[32];
    if (!has) {
        fprintf(out, "p10-p90     none: the profile has no measured spreads and no calibration\n");
        return;
    }
    units_format(UNITS_TIME, lo, a, sizeof a);
    units_format(UNITS_TIME, hi, b, sizeof b);
    fprintf(out, "p10-p90     %s - %s, %.4g - %.4g tok/s (%s)\n", a, b, tokens / hi, tokens / lo,
            iv.source == CM_INTERVAL_CALIBRATION ? "from the calibration's held-out errors"
                                                 : "from the profile's spreads");
}
