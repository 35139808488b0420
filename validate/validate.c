/* validate — see validate.h. */
#include "validate/validate.h"
#include "validate/search_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/record.h"
#include "db/result_json.h"
#include "common/stats.h"
#include "common/units.h"
#include "costmodel/interval.h"
#include "costmodel/primitives.h"
#include "profiler/profiler.h"
#include "sim/sim.h"

double validate_run_metric(store *db, int64_t id, const char *key, diag *e, llmsim_status *st)
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

llmsim_status validate_run_conditions(store *db, int64_t id, exec_conditions *c, diag *e)
{
    char **keys = NULL;
    double *values = NULL;
    int n = 0;
    cond_clear(c);
    llmsim_status st = store_run_metrics(db, id, &keys, &values, &n, e);
    for (int i = 0; i < n && !st; i++)
        if (cond_field_set(c, keys[i], values[i]) && strcmp(keys[i], "disturbed") == 0)
            c->measured = true; /* recorded with its conditions */
    store_metrics_free(keys, values, n);
    return st;
}

static int task_row_cmp(const void *a, const void *b)
{
    return strcmp(((const store_task_row *)a)->task_id, ((const store_task_row *)b)->task_id);
}

llmsim_status validate_tasks_sorted(store *db, int64_t id, store_task_row **rows, size_t *n, diag *e)
{
    llmsim_status st = store_run_tasks_get(db, id, rows, n, e);
    if (!st && *n)
        qsort(*rows, *n, sizeof **rows, task_row_cmp);
    return st;
}

const store_task_row *validate_task_find(const store_task_row *rows, size_t n, const char *id)
{
    store_task_row key;
    if (strlen(id) >= sizeof key.task_id) /* cut, it could match another id */
        return NULL;
    snprintf(key.task_id, sizeof key.task_id, "%s", id);
    return n ? bsearch(&key, rows, n, sizeof *rows, task_row_cmp) : NULL;
}

void validate_primitive_key(const plan *pl, size_t i, long long prompt_len, char *out, size_t len)
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

double validate_pct(double x, double ref) { return ref > 0 ? 100.0 * (x - ref) / ref : NAN; }

/* The four stages the table shows, summed: the reference of "a stage too
 * small to have a relative error" (the same rows as the stages, so that a
 * long generation, whose stored steps are a sample, compares like with like). */
double validate_stage_total(const double s[CM_NSTAGES])
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

/* The relative error of one task into the report's list of them. */
static llmsim_status task_error_add(validate_report *r, double sim_s, double meas_s, diag *e)
{
    if (!(meas_s > 0))
        return LLMSIM_OK;
    if (r->ntask_err == r->task_err_cap) {
        size_t ncap = r->task_err_cap ? 2 * r->task_err_cap : 1024;
        double *v = realloc(r->task_err, ncap * sizeof *v);
        if (!v)
            return diag_set(e, LLMSIM_EFAIL, "out of memory");
        r->task_err = v;
        r->task_err_cap = ncap;
    }
    r->task_err[r->ntask_err++] = fabs(sim_s - meas_s) / meas_s;
    return LLMSIM_OK;
}

/* Group the simulated and measured task times of one policy by primitive
 * (and each task's error into the report's list). */
static llmsim_status group_tasks(store *db, const record_job *job, const validate_policy *vp, validate_report *out,
                                 size_t *cap, diag *e)
{
    validate_group **groups = &out->groups;
    size_t *ngroups = &out->ngroups;
    plan pl;
    llmsim_status st = plan_build(job->model, job->hw, &vp->p, job->workload, &pl, e);
    if (st)
        return st;
    store_task_row *sim = NULL, *meas = NULL;
    size_t nsim = 0, nmeas = 0;
    if (!(st = validate_tasks_sorted(db, vp->id_sim, &sim, &nsim, e)))
        st = validate_tasks_sorted(db, vp->id_meas, &meas, &nmeas, e);
    for (size_t i = 0; i < pl.ntasks && !st; i++) {
        char id[96], key[96];
        plan_task_id(&pl, i, id, sizeof id);
        const store_task_row *a = validate_task_find(sim, nsim, id), *b = validate_task_find(meas, nmeas, id);
        if (!a || !b)
            continue;
        validate_primitive_key(&pl, i, job->workload->prompt_len, key, sizeof key);
        size_t g = 0;
        while (g < *ngroups && strcmp((*groups)[g].key, key) != 0)
            g++;
        if (g == *ngroups) {
            if (*ngroups == *cap) {
                size_t ncap = *cap ? 2 * *cap : 32;
                validate_group *gr = realloc(*groups, ncap * sizeof *gr);
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
        validate_group *gp = &(*groups)[g];
        gp->tasks++;
        gp->sim_s += ds;
        gp->meas_s += dm;
        gp->abs_err_s += fabs(ds - dm);
        st = task_error_add(out, ds, dm, e);
    }
    free(sim);
    free(meas);
    plan_free(&pl);
    return st;
}

static int group_cmp(const void *a, const void *b)
{
    double x = ((const validate_group *)a)->abs_err_s, y = ((const validate_group *)b)->abs_err_s;
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
        double err = meas[k] > 0.01 * total ? validate_pct(sim[k], meas[k]) : NAN;
        cJSON_AddItemToObject(o, key, num_or_null(err));
    }
    return o;
}

static llmsim_status record_validate(const record_job *job, const char *json, const validate_report *r,
                                     int64_t *run_id, diag *e)
{
    record_metric metrics[4];
    int nm = 0;
    if (!isnan(r->mape_sim)) { /* over none when every run was disturbed: not recorded */
        metrics[nm++] = (record_metric){"mape", r->mape_sim};
        metrics[nm++] = (record_metric){"mape_predicted", r->mape_pred};
    }
    metrics[nm++] = (record_metric){"policies", r->n};
    metrics[nm++] = (record_metric){"disturbed_excluded", r->excluded};
    record_data rec = {.kind = "validate", .metrics = metrics, .nmetrics = nm, .result_json = json};
    /* the record names the model and the hardware; policies are per row */
    policy none;
    policy_init(&none);
    record_job rj = *job;
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
static llmsim_status predict_disk_now(const record_job *job, const policy *p, const double rate[2], validate_row *row,
                                      diag *e)
{
    hwprofile hw = *job->hw; /* a shallow copy: only the disk links change */
    row->disk_now[0] = link_now(&hw.disk.read, rate[0]);
    row->disk_now[1] = link_now(&hw.disk.write, rate[1]);
    cm_result r;
    llmsim_status st = cm_predict(job->model, &hw, p, job->workload, &r, e);
    if (st)
        return st;
    row->now[0] = r.total_s;
    cm_result_free(&r);
    plan pl;
    if ((st = plan_build(job->model, &hw, p, job->workload, &pl, e)))
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

/* Whether the job's calibrated profile was fitted on policy p's inputs. */
static llmsim_status seen_by_fit(store *db, const record_job *job, const policy *p, bool *seen, diag *e)
{
    const hw_calibration *k = &job->hw->calib;
    *seen = false;
    if (!k->present)
        return LLMSIM_OK;
    record_job one = *job;
    one.policy = p;
    record_hashes h;
    llmsim_status st = record_inputs(db, &one, &h, e);
    char key[HW_FIT_INPUT_LEN];
    snprintf(key, sizeof key, "%.16s:%.16s:%.16s", h.model, h.policy, h.workload);
    for (int i = 0; !st && i < k->nfit && !*seen; i++)
        *seen = strcmp(k->fit_inputs[i], key) == 0;
    return st;
}

/* A row's throughputs, its interval, whether the fit saw it. */
static llmsim_status row_extras(store *db, const record_job *job, const validate_policy *vp, validate_row *row,
                                validate_report *out, diag *e)
{
    const int64_t ids[3] = {vp->id_pred, vp->id_sim, vp->id_meas};
    llmsim_status st = LLMSIM_OK;
    for (int k = 0; k < 3 && !st; k++)
        row->tput[k] = validate_run_metric(db, ids[k], "throughput_tok_s", e, &st);
    cm_interval iv;
    if (!st)
        st = cm_predict_interval(job->model, job->hw, &vp->p, job->workload, &iv, e);
    if (st)
        return st;
    out->interval_source = cm_interval_source_names[iv.source];
    row->interval[0] = iv.source != CM_INTERVAL_NONE ? iv.lo * row->total[1] : NAN;
    row->interval[1] = iv.source != CM_INTERVAL_NONE ? iv.hi * row->total[1] : NAN;
    if ((st = seen_by_fit(db, job, &vp->p, &row->fit_seen, e)))
        return st;
    out->fit_seen += row->fit_seen;
    return LLMSIM_OK;
}

/* One policy's row: its three totals and stage sums, its tasks into the
 * groups, and with a --check-disk the totals again at the disk's rate. */
static llmsim_status compare_one(store *db, const record_job *job, const validate_policy *vp,
                                 validate_row *row, validate_report *out, size_t *gcap, diag *e)
{
    const int64_t ids[3] = {vp->id_pred, vp->id_sim, vp->id_meas};
    llmsim_status st = LLMSIM_OK;
    for (int k = 0; k < 3 && !st; k++) {
        row->total[k] = validate_run_metric(db, ids[k], "total_s", e, &st);
        if (!st)
            st = stage_sums(db, ids[k], row->stage[k], e);
    }
    if (!st && !(row->total[2] > 0))
        st = diag_set(e, LLMSIM_EFAIL, "run %lld (policy %s) has no measured total", (long long)ids[2],
                      vp->name);
    if (!st)
        st = validate_run_conditions(db, ids[2], &row->cond, e);
    row->disturbed = row->cond.measured && cond_judge(&row->cond, NULL, 0);
    row->excluded = row->disturbed && !out->keep_disturbed;
    out->disturbed += row->disturbed;
    out->excluded += row->excluded;
    out->unknown += !row->cond.measured;
    if (!st)
        st = row_extras(db, job, vp, row, out, e);
    if (!st && !row->excluded && !row->fit_seen)
        st = group_tasks(db, job, vp, out, gcap, e);
    double rate[2] = {NAN, NAN};
    for (int k = 0; k < 2 && !st; k++)
        rate[k] = validate_run_metric(db, ids[2], k ? "disk_write_now_Bps" : "disk_read_now_Bps", e, &st);
    row->now[0] = row->now[1] = row->disk_now[0] = row->disk_now[1] = NAN;
    if (!st && rate[0] > 0 && rate[1] > 0)
        st = predict_disk_now(job, &vp->p, rate, row, e);
    return st;
}

/* The MAPEs over the policies not left out (NaN over none); with the disk
 * as measured, over the same set with the runs that had no check as they
 * are. */
static void compare_mapes(validate_report *r)
{
    double sum_sim = 0, sum_pred = 0, sum_sim_now = 0, sum_pred_now = 0;
    int nnow = 0, n = 0; /* policies with a --check-disk; policies counted */
    for (int i = 0; i < r->n; i++) {
        const validate_row *w = &r->rows[i];
        if (w->excluded || w->fit_seen)
            continue;
        n++;
        sum_sim += fabs(validate_pct(w->total[1], w->total[2]));
        sum_pred += fabs(validate_pct(w->total[0], w->total[2]));
        nnow += !isnan(w->now[1]);
        sum_sim_now += fabs(validate_pct(isnan(w->now[1]) ? w->total[1] : w->now[1], w->total[2]));
        sum_pred_now += fabs(validate_pct(isnan(w->now[0]) ? w->total[0] : w->now[0], w->total[2]));
    }
    r->mape_sim = n ? sum_sim / n : NAN;
    r->mape_pred = n ? sum_pred / n : NAN;
    r->mape_now[0] = nnow ? sum_pred_now / n : NAN;
    r->mape_now[1] = nnow ? sum_sim_now / n : NAN;
    r->counted = n;
}

/* Coverage of the intervals and the tasks' median error over the counted
 * runs; the ranking over every run not left out as disturbed. */
static void compare_summary(validate_report *r)
{
    double pred[VALIDATE_MAX_RANKED] = {0}, sim[VALIDATE_MAX_RANKED] = {0}, meas[VALIDATE_MAX_RANKED] = {0};
    int n = 0, idx[VALIDATE_MAX_RANKED] = {0};
    for (int i = 0; i < r->n; i++) {
        const validate_row *w = &r->rows[i];
        if (!w->excluded && !w->fit_seen && !isnan(w->interval[0])) {
            r->with_interval++;
            r->covered += w->total[2] >= w->interval[0] && w->total[2] <= w->interval[1];
        }
        if (!w->excluded && n < VALIDATE_MAX_RANKED && w->tput[2] > 0) {
            pred[n] = w->tput[0];
            sim[n] = w->tput[1];
            meas[n] = w->tput[2];
            idx[n++] = i;
        }
    }
    r->task_median = NAN;
    if (r->ntask_err) {
        stats_sort(r->task_err, r->ntask_err);
        r->task_median = 100 * stats_median_sorted(r->task_err, r->ntask_err);
    }
    validate_rank rk;
    validate_rank_get(pred, meas, n, VALIDATE_BEST_WITHIN, &rk);
    r->rank_rho[0] = rk.rho;
    r->best[0] = n ? idx[rk.best_predicted] : -1;
    r->shortfall[0] = n ? 100 * rk.shortfall : NAN;
    validate_rank_get(sim, meas, n, VALIDATE_BEST_WITHIN, &rk);
    r->rank_rho[1] = rk.rho;
    r->best[1] = n ? idx[rk.best_predicted] : -1;
    r->best[2] = n ? idx[rk.best_measured] : -1;
    r->shortfall[1] = n ? 100 * rk.shortfall : NAN;
}

static cJSON *row_json(const validate_policy *vp, const validate_row *w)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "name", vp->name);
    cJSON_AddItemToObject(r, "policy", result_policy_json(&vp->p));
    cJSON_AddNumberToObject(r, "predicted_s", w->total[0]);
    cJSON_AddNumberToObject(r, "simulated_s", w->total[1]);
    cJSON_AddNumberToObject(r, "measured_s", w->total[2]);
    cJSON_AddNumberToObject(r, "error", validate_pct(w->total[1], w->total[2]));
    cJSON_AddNumberToObject(r, "predicted_error", validate_pct(w->total[0], w->total[2]));
    cJSON *stg = cJSON_AddObjectToObject(r, "stages");
    cJSON_AddItemToObject(stg, "predicted", result_stages_json(w->stage[0]));
    cJSON_AddItemToObject(stg, "simulated", result_stages_json(w->stage[1]));
    cJSON_AddItemToObject(stg, "measured", result_stages_json(w->stage[2]));
    cJSON_AddItemToObject(r, "stage_error",
                          stage_errors_json(w->stage[1], w->stage[2], validate_stage_total(w->stage[2])));
    cJSON *ids = cJSON_AddObjectToObject(r, "run_ids");
    cJSON_AddNumberToObject(ids, "predict", (double)vp->id_pred);
    cJSON_AddNumberToObject(ids, "simulate", (double)vp->id_sim);
    cJSON_AddNumberToObject(ids, "measure", (double)vp->id_meas);
    cJSON_AddBoolToObject(r, "reused", vp->reused[2]);
    cJSON_AddNumberToObject(r, "measurements", vp->measurements);
    /* null: recorded before llmsim kept a run's conditions */
    cJSON_AddItemToObject(r, "disturbed", w->cond.measured ? cJSON_CreateBool(w->disturbed)
                                                           : cJSON_CreateNull());
    cJSON_AddBoolToObject(r, "excluded", w->excluded);
    cJSON_AddBoolToObject(r, "fit_seen", w->fit_seen);
    cJSON *tp = cJSON_AddObjectToObject(r, "throughput_tok_s");
    cJSON_AddItemToObject(tp, "predicted", num_or_null(w->tput[0]));
    cJSON_AddItemToObject(tp, "simulated", num_or_null(w->tput[1]));
    cJSON_AddItemToObject(tp, "measured", num_or_null(w->tput[2]));
    cJSON *iv = cJSON_AddObjectToObject(r, "interval");
    cJSON_AddItemToObject(iv, "simulated_s_p10", num_or_null(w->interval[0]));
    cJSON_AddItemToObject(iv, "simulated_s_p90", num_or_null(w->interval[1]));
    cJSON_AddItemToObject(iv, "inside", isnan(w->interval[0]) ? cJSON_CreateNull()
                          : cJSON_CreateBool(w->total[2] >= w->interval[0] && w->total[2] <= w->interval[1]));
    cJSON_AddItemToObject(r, "conditions", w->cond.measured ? result_conditions_json(&w->cond)
                                                            : cJSON_CreateNull());
    if (!isnan(w->now[1])) {
        cJSON *dn = cJSON_AddObjectToObject(r, "disk_now");
        cJSON_AddNumberToObject(dn, "read_ratio", w->disk_now[0]);
        cJSON_AddNumberToObject(dn, "write_ratio", w->disk_now[1]);
        cJSON_AddNumberToObject(dn, "predicted_s", w->now[0]);
        cJSON_AddNumberToObject(dn, "simulated_s", w->now[1]);
        cJSON_AddNumberToObject(dn, "error", validate_pct(w->now[1], w->total[2]));
        cJSON_AddNumberToObject(dn, "predicted_error", validate_pct(w->now[0], w->total[2]));
    }
    return r;
}

/* Coverage, the tasks' median error, the fit's runs, the ranking. */
static void summary_json(cJSON *obj, const validate_policy *ps, const validate_report *r)
{
    cJSON_AddNumberToObject(obj, "counted", r->counted);
    cJSON_AddNumberToObject(obj, "fit_seen", r->fit_seen);
    cJSON_AddItemToObject(obj, "task_median_error", num_or_null(r->task_median));
    cJSON *cov = cJSON_AddObjectToObject(obj, "coverage");
    cJSON_AddStringToObject(cov, "source", r->interval_source ? r->interval_source : "none");
    cJSON_AddNumberToObject(cov, "runs", r->with_interval);
    cJSON_AddNumberToObject(cov, "inside", r->covered);
    cJSON_AddItemToObject(cov, "fraction", r->with_interval ? cJSON_CreateNumber((double)r->covered / r->with_interval)
                                                            : cJSON_CreateNull());
    cJSON *rk = cJSON_AddObjectToObject(obj, "ranking");
    cJSON_AddItemToObject(rk, "rho_predicted", num_or_null(r->rank_rho[0]));
    cJSON_AddItemToObject(rk, "rho", num_or_null(r->rank_rho[1]));
    static const char *const keys[3] = {"best_predicted", "best_simulated", "best_measured"};
    for (int k = 0; k < 3; k++)
        cJSON_AddItemToObject(rk, keys[k], r->best[k] >= 0 ? cJSON_CreateString(ps[r->best[k]].name)
                                                           : cJSON_CreateNull());
    cJSON_AddItemToObject(rk, "shortfall_predicted_pct", num_or_null(r->shortfall[0]));
    cJSON_AddItemToObject(rk, "shortfall_pct", num_or_null(r->shortfall[1]));
    cJSON_AddItemToObject(rk, "best_within", isnan(r->shortfall[0]) ? cJSON_CreateNull()
                                                                    : cJSON_CreateBool(r->shortfall[0] <= 100 * VALIDATE_BEST_WITHIN));
}

static cJSON *report_json(const record_job *job, const validate_policy *ps, const validate_report *r,
                          int top)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "model", job->model->name);
    cJSON_AddStringToObject(obj, "hardware", job->hw->name);
    cJSON *wl = cJSON_AddObjectToObject(obj, "workload");
    cJSON_AddNumberToObject(wl, "prompt_len", (double)job->workload->prompt_len);
    cJSON_AddNumberToObject(wl, "gen_len", (double)job->workload->gen_len);
    cJSON_AddNumberToObject(wl, "num_prompts", (double)job->workload->num_prompts);
    cJSON *arr = cJSON_AddArrayToObject(obj, "runs");
    for (int i = 0; i < r->n; i++)
        cJSON_AddItemToArray(arr, row_json(&ps[i], &r->rows[i]));
    cJSON_AddItemToObject(obj, "mape", num_or_null(r->mape_sim)); /* null: over none */
    cJSON_AddItemToObject(obj, "mape_predicted", num_or_null(r->mape_pred));
    if (!isnan(r->mape_now[1])) {
        cJSON_AddNumberToObject(obj, "mape_disk_now", r->mape_now[1]);
        cJSON_AddNumberToObject(obj, "mape_predicted_disk_now", r->mape_now[0]);
    }
    cJSON_AddNumberToObject(obj, "disturbed_runs", r->disturbed);
    cJSON_AddNumberToObject(obj, "disturbed_excluded", r->excluded);
    cJSON_AddBoolToObject(obj, "keep_disturbed", r->keep_disturbed);
    cJSON_AddNumberToObject(obj, "conditions_unknown", r->unknown);
    summary_json(obj, ps, r);
    cJSON *prims = cJSON_AddArrayToObject(obj, "primitives");
    for (size_t g = 0; g < r->ngroups && (int)g < top; g++) {
        const validate_group *gp = &r->groups[g];
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "primitive", gp->key);
        cJSON_AddNumberToObject(p, "tasks", (double)gp->tasks);
        cJSON_AddNumberToObject(p, "simulated_s", gp->sim_s);
        cJSON_AddNumberToObject(p, "measured_s", gp->meas_s);
        cJSON_AddNumberToObject(p, "abs_error_s", gp->abs_err_s);
        cJSON_AddItemToObject(p, "error", num_or_null(validate_pct(gp->sim_s, gp->meas_s)));
        cJSON_AddItemToArray(prims, p);
    }
    return obj;
}

llmsim_status validate_compare(const record_job *job, const validate_policy *ps, int n, int top,
                               bool keep_disturbed, validate_report *out, diag *e)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    out->keep_disturbed = keep_disturbed;
    store *db = NULL;
    llmsim_status st = store_open(job->db_path, &db, e);
    size_t gcap = 0;
    if (!st && !(out->rows = calloc((size_t)n, sizeof *out->rows)))
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
    for (int i = 0; i < n && !st; i++)
        st = compare_one(db, job, &ps[i], &out->rows[i], out, &gcap, e);
    store_close(db);
    if (st) {
        validate_report_free(out);
        return st;
    }
    compare_mapes(out);
    compare_summary(out);
    if (out->ngroups)
        qsort(out->groups, out->ngroups, sizeof *out->groups, group_cmp);
    out->json = report_json(job, ps, out, top);
    char *text = cJSON_PrintUnformatted(out->json);
    st = text ? record_validate(job, text, out, &out->run_id, e)
              : diag_set(e, LLMSIM_EFAIL, "out of memory");
    free(text);
    if (st)
        validate_report_free(out);
    else
        cJSON_AddNumberToObject(out->json, "run_id", (double)out->run_id);
    return st;
}

void validate_report_free(validate_report *r)
{
    free(r->rows);
    free(r->groups);
    free(r->task_err);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}
