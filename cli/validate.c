/* validate — see validate.h. */
#include "cli/validate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/record.h"
#include "db/result_json.h"
#include "common/units.h"
#include "costmodel/primitives.h"
#include "profiler/profiler.h"
#include "sim/sim.h"

double v_run_metric(store *db, int64_t id, const char *key, diag *e, llmsim_status *st)
{
    char **keys = NULL;
    double *values = NULL, v = NAN;
    int n = 0;
    if ((*st = store_run_metrics(db, id, &keys, &values, &n, e)))
        return NAN;
    for (int i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            v = values[i];
    store_metrics_free(keys, values, n);
    return v;
}

static int task_row_cmp(const void *a, const void *b)
{
    return strcmp(((const store_task_row *)a)->task_id, ((const store_task_row *)b)->task_id);
}

llmsim_status v_tasks_sorted(store *db, int64_t id, store_task_row **rows, size_t *n, diag *e)
{
    llmsim_status st = store_run_tasks_get(db, id, rows, n, e);
    if (!st && *n)
        qsort(*rows, *n, sizeof **rows, task_row_cmp);
    return st;
}

const store_task_row *v_task_find(const store_task_row *rows, size_t n, const char *id)
{
    store_task_row key;
    if (strlen(id) >= sizeof key.task_id) /* cut, it could match another id */
        return NULL;
    snprintf(key.task_id, sizeof key.task_id, "%s", id);
    return n ? bsearch(&key, rows, n, sizeof *rows, task_row_cmp) : NULL;
}

void v_primitive_key(const plan *pl, size_t i, long long prompt_len, char *out, size_t len)
{
    const plan_task *t = &pl->tasks[i];
    char sz[32];
    units_format(UNITS_BYTES, t->bytes, sz, sizeof sz); /* copies of one tensor: one key */
    const char *phase = t->step == 0 ? "prefill" : "decode";
    long long ctx = prompt_len + t->step;
    long long lo = 1;
    while (lo * 2 <= ctx)
        lo *= 2;
    switch ((plan_kind)t->kind) {
    case PLAN_W_DISK: case PLAN_C_DISK: case PLAN_A_DISK:
        snprintf(out, len, "disk read %s", sz);
        break;
    case PLAN_C_WRITE: case PLAN_A_WRITE:
        snprintf(out, len, "disk write %s", sz);
        break;
    case PLAN_W_H2D: case PLAN_C_H2D: case PLAN_A_H2D: case PLAN_OUT_H2D:
        snprintf(out, len, "host->device %s", sz);
        break;
    case PLAN_C_D2H: case PLAN_A_D2H: case PLAN_QKV_D2H:
        snprintf(out, len, "device->host %s", sz);
        break;
    case PLAN_W_DEQUANT:
        snprintf(out, len, "dequantize a layer's weights (%s)", t->layer == pl->nlayers ? "head" : "layer");
        break;
    case PLAN_HEAD:
        snprintf(out, len, "head (norm, LM head, embedding), %s", phase);
        break;
    case PLAN_CPU_ATTN:
        snprintf(out, len, "attention on the CPU, context %lld-%lld", lo, 2 * lo - 1);
        break;
    default: /* compute, pre, post: a layer's GEMMs and attention */
        if (t->step == 0)
            snprintf(out, len, "layer %s, prefill, prompt %lld", plan_kind_names[t->kind], prompt_len);
        else
            snprintf(out, len, "layer %s, decode, context %lld-%lld", plan_kind_names[t->kind], lo,
                     2 * lo - 1);
        break;
    }
}

/* ---- the comparison */

typedef struct v_group {
    char key[96];
    long tasks;
    double sim_s, meas_s, abs_err_s;
} v_group;

typedef struct v_row {
    double total[3];             /* predicted, simulated, measured (s) */
    double stage[3][CM_NSTAGES]; /* per block, summed over the steps */
    double disk_now[2];          /* --check-disk: read, write rate around the run / the profile's */
    double now[2];               /* predicted, simulated with the disk at that rate; NaN without */
} v_row;

double v_pct(double x, double ref) { return ref > 0 ? 100.0 * (x - ref) / ref : NAN; }

/* The four stages the table shows, summed: the reference of "a stage too
 * small to have a relative error" (the same rows as the stages, so that a
 * long generation, whose stored steps are a sample, compares like with like). */
static double stage_total(const double s[CM_NSTAGES])
{
    return s[CM_STAGE_COMPUTE] + s[CM_STAGE_LOAD_WEIGHT] + s[CM_STAGE_LOAD_CACHE] + s[CM_STAGE_STORE_CACHE];
}

static llmsim_status stage_sums(store *db, int64_t id, double out[CM_NSTAGES], diag *e)
{
    store_stage_row *rows = NULL;
    size_t n = 0;
    memset(out, 0, sizeof(double) * CM_NSTAGES);
    llmsim_status st = store_run_stages_get(db, id, &rows, &n, e);
    for (size_t i = 0; i < n && !st; i++)
        for (int k = 0; k < CM_NSTAGES; k++)
            if (strcmp(rows[i].stage, cm_stage_names[k]) == 0 && isfinite(rows[i].seconds))
                out[k] += rows[i].seconds;
    free(rows);
    return st;
}

/* Group the simulated and measured task times of one policy by primitive. */
static llmsim_status group_tasks(store *db, cli_job *job, const v_policy *vp, v_group **groups,
                                 size_t *ngroups, size_t *cap, diag *e)
{
    plan pl;
    llmsim_status st = plan_build(&job->model, &job->hw, &vp->p, &job->workload, &pl, e);
    if (st)
        return st;
    store_task_row *sim = NULL, *meas = NULL;
    size_t nsim = 0, nmeas = 0;
    if (!(st = v_tasks_sorted(db, vp->id_sim, &sim, &nsim, e)))
        st = v_tasks_sorted(db, vp->id_meas, &meas, &nmeas, e);
    for (size_t i = 0; i < pl.ntasks && !st; i++) {
        char id[96], key[96];
        plan_task_id(&pl, i, id, sizeof id);
        const store_task_row *a = v_task_find(sim, nsim, id), *b = v_task_find(meas, nmeas, id);
        if (!a || !b)
            continue;
        v_primitive_key(&pl, i, job->workload.prompt_len, key, sizeof key);
        size_t g = 0;
        while (g < *ngroups && strcmp((*groups)[g].key, key) != 0)
            g++;
        if (g == *ngroups) {
            if (*ngroups == *cap) {
                size_t ncap = *cap ? 2 * *cap : 32;
                v_group *gr = realloc(*groups, ncap * sizeof *gr);
                if (!gr) {
                    st = diag_set(e, LLMSIM_EFAIL, "out of memory");
                    break;
                }
                *groups = gr;
                *cap = ncap;
            }
            memset(&(*groups)[g], 0, sizeof **groups);
            snprintf((*groups)[g].key, sizeof (*groups)[g].key, "%s", key);
            (*ngroups)++;
        }
        double ds = a->end_s - a->start_s, dm = b->end_s - b->start_s;
        v_group *gp = &(*groups)[g];
        gp->tasks++;
        gp->sim_s += ds;
        gp->meas_s += dm;
        gp->abs_err_s += fabs(ds - dm);
    }
    free(sim);
    free(meas);
    plan_free(&pl);
    return st;
}

static int group_cmp(const void *a, const void *b)
{
    double x = ((const v_group *)a)->abs_err_s, y = ((const v_group *)b)->abs_err_s;
    return (x < y) - (x > y);
}

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static cJSON *stage_errors_json(const double sim[CM_NSTAGES], const double meas[CM_NSTAGES], double total)
{
    cJSON *o = cJSON_CreateObject();
    for (int k = 0; k < CM_NSTAGES; k++) {
        char key[64];
        snprintf(key, sizeof key, "%s_s", cm_stage_names[k]);
        /* a stage under 1% of the run has no meaningful relative error */
        double err = meas[k] > 0.01 * total ? v_pct(sim[k], meas[k]) : NAN;
        cJSON_AddItemToObject(o, key, num_or_null(err));
    }
    return o;
}

static void print_table(const cli_job *job, const v_policy *ps, const v_row *rows, int n, double mape_sim,
                        double mape_pred, const double mape_now[2], const v_group *groups, size_t ngroups,
                        int top, int64_t run_id)
{
    printf("model     %s\nhardware  %s\nworkload  prompt %lld, generate %lld\n\n", job->model.name,
           job->hw.name, job->workload.prompt_len, job->workload.gen_len);
    printf("%-26s %11s %11s %11s %10s %10s\n", "policy", "predicted", "simulated", "measured", "err pred",
           "err sim");
    for (int i = 0; i < n; i++)
        printf("%-26s %9.3f s %9.3f s %9.3f s %+9.1f%% %+9.1f%%%s\n", ps[i].name, rows[i].total[0],
               rows[i].total[1], rows[i].total[2], v_pct(rows[i].total[0], rows[i].total[2]),
               v_pct(rows[i].total[1], rows[i].total[2]),
               ps[i].reused[2] ? "  (from the store)" : "");
    printf("%-26s %35s %9.1f%% %9.1f%%\n\n", "MAPE", "", mape_pred, mape_sim);
    if (!isnan(mape_now[1])) {
        printf("with the disk as measured around each run that uses it (--check-disk): its rate\n"
               "against the profile's (read, write) and the predictions again with it:\n");
        printf("%-26s %15s %11s %11s %10s %10s\n", "policy", "disk now", "predicted", "simulated", "err pred",
               "err sim");
        for (int i = 0; i < n; i++)
            if (!isnan(rows[i].now[1]))
                printf("%-26s %6.2fx %6.2fx %9.3f s %9.3f s %+9.1f%% %+9.1f%%\n", ps[i].name, rows[i].disk_now[0],
                       rows[i].disk_now[1], rows[i].now[0], rows[i].now[1], v_pct(rows[i].now[0], rows[i].total[2]),
                       v_pct(rows[i].now[1], rows[i].total[2]));
        printf("%-26s %39s %9.1f%% %9.1f%%  (every policy; the others as above)\n\n", "MAPE", "", mape_now[0],
               mape_now[1]);
    }

    if (job->workload.gen_len > RECORD_MAX_STEPS)
        printf("stages per block over the %d steps the store keeps of %lld (evenly spaced), simulated /\n"
               "measured (s) and the simulation's error:\n", RECORD_MAX_STEPS, job->workload.gen_len);
    else
        printf("stages per block, simulated / measured (s) and the simulation's error:\n");
    static const int shown[] = {CM_STAGE_LOAD_WEIGHT, CM_STAGE_LOAD_CACHE, CM_STAGE_STORE_CACHE,
                                CM_STAGE_COMPUTE};
    printf("%-26s", "policy");
    for (int k = 0; k < 4; k++)
        printf(" %24s", cm_stage_names[shown[k]]);
    printf("\n");
    for (int i = 0; i < n; i++) {
        printf("%-26s", ps[i].name);
        for (int k = 0; k < 4; k++) {
            double s = rows[i].stage[1][shown[k]], m = rows[i].stage[2][shown[k]];
            char cell[64];
            if (m > 0.01 * stage_total(rows[i].stage[2]))
                snprintf(cell, sizeof cell, "%.3f/%.3f %+.0f%%", s, m, v_pct(s, m));
            else
                snprintf(cell, sizeof cell, "%.3f/%.3f", s, m);
            printf(" %24s", cell);
        }
        printf("\n");
    }
    printf("\nprimitives whose simulated time is furthest from the measured (over every policy):\n");
    printf("%-50s %7s %11s %11s %8s\n", "primitive", "tasks", "simulated", "measured", "error");
    for (size_t g = 0; g < ngroups && (int)g < top; g++)
        printf("%-50s %7ld %9.4f s %9.4f s %+7.1f%%\n", groups[g].key, groups[g].tasks, groups[g].sim_s,
               groups[g].meas_s, v_pct(groups[g].sim_s, groups[g].meas_s));
    printf("\nrecorded as run %lld in %s (llmsim report %lld -o DIR plots it)\n", (long long)run_id,
           job->db_path, (long long)run_id);
}

static llmsim_status record_validate(const cli_job *job, const char *json, double mape_sim, double mape_pred,
                                     int n, int64_t *run_id, diag *e)
{
    const record_metric metrics[] = {{"mape", mape_sim}, {"mape_predicted", mape_pred}, {"policies", n}};
    record_data rec = {.kind = "validate", .metrics = metrics, .nmetrics = 3, .result_json = json};
    /* the record names the model and the hardware; policies are per row */
    policy none;
    policy_init(&none);
    record_job rj = cli_record_job(job);
    rj.policy = &none;
    return record_run(&rj, &rec, run_id, e);
}

/* A link moved to the rate measured now at the disk check's block size: the
 * bandwidth such that the link's time for that block is the measured one
 * (the latency kept); the ratio now / profile of the rates is returned. */
static double link_now(hw_link *l, double rate_Bps)
{
    const double b = (double)PROFILE_DISK_NOW_BLOCK, t_prof = cm_copy_time(l, b), t_now = b / rate_Bps;
    if (t_now > 2 * l->latency_s)
        l->bandwidth_Bps = b / (t_now - l->latency_s);
    else
        l->bandwidth_Bps *= t_prof / t_now;
    return t_prof / t_now;
}

/* Predicted and simulated totals of policy p with the disk links of the
 * job's profile moved to the rates a --check-disk measured around the run. */
static llmsim_status predict_disk_now(const cli_job *job, const policy *p, const double rate[2], v_row *row,
                                      diag *e)
{
    hwprofile hw = job->hw; /* a shallow copy: only the disk links change */
    row->disk_now[0] = link_now(&hw.disk.read, rate[0]);
    row->disk_now[1] = link_now(&hw.disk.write, rate[1]);
    cm_result r;
    llmsim_status st = cm_predict(&job->model, &hw, p, &job->workload, &r, e);
    if (st)
        return st;
    row->now[0] = r.total_s;
    cm_result_free(&r);
    plan pl;
    if ((st = plan_build(&job->model, &hw, p, &job->workload, &pl, e)))
        return st;
    double cap[TIER_COUNT];
    cm_hw_capacities(&hw, cap);
    sim_result sr;
    if (!(st = sim_run(&pl, cap, false, &sr, e))) {
        sim_totals t;
        sim_totals_get(&pl, &sr, &t);
        row->now[1] = t.total_s;
        sim_result_free(&sr);
    }
    plan_free(&pl);
    return st;
}

int v_compare_and_report(cli_job *job, v_policy *ps, int n, int top)
{
    diag e;
    diag_clear(&e);
    store *db = NULL;
    llmsim_status st = store_open(job->db_path, &db, &e);
    v_row *rows = calloc((size_t)n, sizeof *rows);
    v_group *groups = NULL;
    size_t ngroups = 0, gcap = 0;
    if (!st && !rows)
        st = diag_set(&e, LLMSIM_EFAIL, "out of memory");
    double sum_sim = 0, sum_pred = 0, sum_sim_now = 0, sum_pred_now = 0;
    int nnow = 0; /* policies with a --check-disk */
    for (int i = 0; i < n && !st; i++) {
        const int64_t ids[3] = {ps[i].id_pred, ps[i].id_sim, ps[i].id_meas};
        for (int k = 0; k < 3 && !st; k++) {
            rows[i].total[k] = v_run_metric(db, ids[k], "total_s", &e, &st);
            if (!st)
                st = stage_sums(db, ids[k], rows[i].stage[k], &e);
        }
        if (!st && !(rows[i].total[2] > 0))
            st = diag_set(&e, LLMSIM_EFAIL, "run %lld (policy %s) has no measured total", (long long)ids[2],
                          ps[i].name);
        if (!st)
            st = group_tasks(db, job, &ps[i], &groups, &ngroups, &gcap, &e);
        sum_sim += fabs(v_pct(rows[i].total[1], rows[i].total[2]));
        sum_pred += fabs(v_pct(rows[i].total[0], rows[i].total[2]));
        double rate[2] = {NAN, NAN};
        for (int k = 0; k < 2 && !st; k++)
            rate[k] = v_run_metric(db, ids[2], k ? "disk_write_now_Bps" : "disk_read_now_Bps", &e, &st);
        rows[i].now[0] = rows[i].now[1] = rows[i].disk_now[0] = rows[i].disk_now[1] = NAN;
        if (!st && rate[0] > 0 && rate[1] > 0) {
            st = predict_disk_now(job, &ps[i].p, rate, &rows[i], &e);
            nnow++;
        }
        /* the MAPE with the disk as measured: the same set, the other runs as they are */
        sum_sim_now += fabs(v_pct(isnan(rows[i].now[1]) ? rows[i].total[1] : rows[i].now[1], rows[i].total[2]));
        sum_pred_now += fabs(v_pct(isnan(rows[i].now[0]) ? rows[i].total[0] : rows[i].now[0], rows[i].total[2]));
    }
    store_close(db);
    if (st) {
        free(rows);
        free(groups);
        return cli_fail("validate", &e);
    }
    double mape_sim = sum_sim / n, mape_pred = sum_pred / n;
    double mape_now[2] = {nnow ? sum_pred_now / n : NAN, nnow ? sum_sim_now / n : NAN};
    if (ngroups)
        qsort(groups, ngroups, sizeof *groups, group_cmp);

    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "model", job->model.name);
    cJSON_AddStringToObject(obj, "hardware", job->hw.name);
    cJSON *wl = cJSON_AddObjectToObject(obj, "workload");
    cJSON_AddNumberToObject(wl, "prompt_len", (double)job->workload.prompt_len);
    cJSON_AddNumberToObject(wl, "gen_len", (double)job->workload.gen_len);
    cJSON_AddNumberToObject(wl, "num_prompts", (double)job->workload.num_prompts);
    cJSON *arr = cJSON_AddArrayToObject(obj, "runs");
    for (int i = 0; i < n; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "name", ps[i].name);
        cJSON_AddItemToObject(r, "policy", result_policy_json(&ps[i].p));
        cJSON_AddNumberToObject(r, "predicted_s", rows[i].total[0]);
        cJSON_AddNumberToObject(r, "simulated_s", rows[i].total[1]);
        cJSON_AddNumberToObject(r, "measured_s", rows[i].total[2]);
        cJSON_AddNumberToObject(r, "error", v_pct(rows[i].total[1], rows[i].total[2]));
        cJSON_AddNumberToObject(r, "predicted_error", v_pct(rows[i].total[0], rows[i].total[2]));
        cJSON *stg = cJSON_AddObjectToObject(r, "stages");
        cJSON_AddItemToObject(stg, "predicted", result_stages_json(rows[i].stage[0]));
        cJSON_AddItemToObject(stg, "simulated", result_stages_json(rows[i].stage[1]));
        cJSON_AddItemToObject(stg, "measured", result_stages_json(rows[i].stage[2]));
        cJSON_AddItemToObject(r, "stage_error",
                              stage_errors_json(rows[i].stage[1], rows[i].stage[2], stage_total(rows[i].stage[2])));
        cJSON *ids = cJSON_AddObjectToObject(r, "run_ids");
        cJSON_AddNumberToObject(ids, "predict", (double)ps[i].id_pred);
        cJSON_AddNumberToObject(ids, "simulate", (double)ps[i].id_sim);
        cJSON_AddNumberToObject(ids, "measure", (double)ps[i].id_meas);
        cJSON_AddBoolToObject(r, "reused", ps[i].reused[2]);
        if (!isnan(rows[i].now[1])) {
            cJSON *dn = cJSON_AddObjectToObject(r, "disk_now");
            cJSON_AddNumberToObject(dn, "read_ratio", rows[i].disk_now[0]);
            cJSON_AddNumberToObject(dn, "write_ratio", rows[i].disk_now[1]);
            cJSON_AddNumberToObject(dn, "predicted_s", rows[i].now[0]);
            cJSON_AddNumberToObject(dn, "simulated_s", rows[i].now[1]);
            cJSON_AddNumberToObject(dn, "error", v_pct(rows[i].now[1], rows[i].total[2]));
            cJSON_AddNumberToObject(dn, "predicted_error", v_pct(rows[i].now[0], rows[i].total[2]));
        }
        cJSON_AddItemToArray(arr, r);
    }
    cJSON_AddNumberToObject(obj, "mape", mape_sim);
    cJSON_AddNumberToObject(obj, "mape_predicted", mape_pred);
    if (nnow) {
        cJSON_AddNumberToObject(obj, "mape_disk_now", mape_now[1]);
        cJSON_AddNumberToObject(obj, "mape_predicted_disk_now", mape_now[0]);
    }
    cJSON *prims = cJSON_AddArrayToObject(obj, "primitives");
    for (size_t g = 0; g < ngroups && (int)g < top; g++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "primitive", groups[g].key);
        cJSON_AddNumberToObject(p, "tasks", (double)groups[g].tasks);
        cJSON_AddNumberToObject(p, "simulated_s", groups[g].sim_s);
        cJSON_AddNumberToObject(p, "measured_s", groups[g].meas_s);
        cJSON_AddNumberToObject(p, "abs_error_s", groups[g].abs_err_s);
        cJSON_AddItemToObject(p, "error", num_or_null(v_pct(groups[g].sim_s, groups[g].meas_s)));
        cJSON_AddItemToArray(prims, p);
    }
    char *text = cJSON_PrintUnformatted(obj);
    int64_t run_id = 0;
    st = text ? record_validate(job, text, mape_sim, mape_pred, n, &run_id, &e)
              : diag_set(&e, LLMSIM_EFAIL, "out of memory");
    free(text);
    int status = CLI_EXIT_OK;
    if (st) {
        cJSON_Delete(obj);
        status = cli_fail("validate", &e);
    } else if (job->format == CLI_FORMAT_JSON) {
        cJSON_AddNumberToObject(obj, "run_id", (double)run_id);
        cli_print_json(obj);
    } else {
        cJSON_Delete(obj);
        print_table(job, ps, rows, n, mape_sim, mape_pred, mape_now, groups, ngroups, top, run_id);
    }
    free(rows);
    free(groups);
    return status;
}
