/* calibration — see calibration.h. */
#include "validate/calibration.h"

#include "common/fault.h"
#include "common/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/record.h"
#include "sim/sim.h"
#include "validate/validate.h"

llmsim_status calibration_init(calibration *c, const char *db_path, const hwprofile *base, diag *e)
{
    memset(c, 0, sizeof *c);
    c->db_path = db_path;
    c->base = *base;
    if (!(c->runs = calloc(CALIBRATION_MAX_RUNS, sizeof *c->runs)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    return LLMSIM_OK;
}

void calibration_free(calibration *c)
{
    if (c->runs)
        for (int i = 0; i < c->nruns; i++)
            free(c->runs[i].measured);
    free(c->runs);
    calib_result_free(&c->fit);
    memset(c, 0, sizeof *c);
}

/* ---- the runs */

static llmsim_status add_run(calibration *S, int64_t id, const char *name, diag *e)
{
    for (int i = 0; i < S->nruns; i++)
        if (S->runs[i].id == id)
            return LLMSIM_OK; /* named twice */
    if (S->nruns >= CALIBRATION_MAX_RUNS)
        return diag_set(e, LLMSIM_EINPUT, "more than %d runs", CALIBRATION_MAX_RUNS);
    calibration_run *r = &S->runs[S->nruns++];
    memset(r, 0, sizeof *r);
    r->id = id;
    snprintf(r->name, sizeof r->name, "%s", name ? name : "");
    return LLMSIM_OK;
}


/* A validate run stands for the measure runs of its policies: those it
 * counted (a run it left out as measured under contention is left out here
 * too). */
static llmsim_status validate_run_add(calibration *S, const store_run_row *row, int64_t id, diag *e)
{
    cJSON *obj = row->result_json ? cJSON_Parse(row->result_json) : NULL;
    cJSON *runs = cJSON_GetObjectItemCaseSensitive(obj, "runs"), *it;
    llmsim_status st = LLMSIM_OK;
    if (!cJSON_IsArray(runs))
        st = diag_set(e, LLMSIM_EINPUT, "validate run %lld has no runs in its result", (long long)id);
    cJSON_ArrayForEach(it, runs) {
        cJSON *ids = cJSON_GetObjectItemCaseSensitive(it, "run_ids");
        cJSON *meas = cJSON_GetObjectItemCaseSensitive(ids, "measure");
        cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "excluded")))
            continue;
        if (cJSON_IsNumber(meas) && !st)
            st = add_run(S, (int64_t)meas->valuedouble, cJSON_IsString(name) ? name->valuestring : NULL, e);
    }
    cJSON_Delete(obj);
    return st;
}

/* Run id as measure runs: itself, or a validate run's. */
static llmsim_status expand_run(calibration *S, store *db, int64_t id, diag *e)
{
    store_run_row row;
    diag ge;
    diag_clear(&ge);
    if (store_run_get(db, id, &row, &ge))
        return diag_set(e, LLMSIM_EINPUT, "--runs: %s", ge.msg);
    llmsim_status st;
    if (row.status && strcmp(row.status, "ok") != 0)
        st = diag_set(e, LLMSIM_EINPUT, "run %lld is %s, not a finished run", (long long)id, row.status);
    else if (row.kind && strcmp(row.kind, "measure") == 0)
        st = add_run(S, id, NULL, e);
    else if (row.kind && strcmp(row.kind, "validate") == 0)
        st = validate_run_add(S, &row, id, e);
    else
        st = diag_set(e, LLMSIM_EINPUT, "run %lld is a %s run; give measure or validate runs",
                      (long long)id, row.kind ? row.kind : "?");
    store_row_clear(&row);
    return st;
}

/* The newest validate run of the profile's name. */
static llmsim_status default_runs(calibration *S, store *db, diag *e)
{
    store_run_filter f = {.hw_name = S->base.name, .kind = "validate", .limit = 0};
    store_run_row *rows = NULL;
    int n = 0;
    llmsim_status st = store_runs_list(db, &f, &rows, &n, e);
    if (st)
        return st;
    int64_t id = 0;
    for (int i = 0; i < n && !id; i++)
        if (rows[i].status && strcmp(rows[i].status, "ok") == 0)
            id = rows[i].id;
    store_rows_free(rows, n);
    if (!id)
        return diag_set(e, LLMSIM_EINPUT, "the store %s has no validate run of hardware '%s'; run llmsim "
                        "validate --hardware ... first, or give --runs", S->db_path, S->base.name);
    return expand_run(S, db, id, e);
}

/* Inputs from the store, the plan's task count, and the measured durations. */
static llmsim_status load_run(calibration *S, store *db, calibration_run *r, diag *e)
{
    store_run_row row;
    llmsim_status st = store_run_get(db, r->id, &row, e);
    if (st)
        return st;
    char *mb = row.model_hash ? store_input_body(db, row.model_hash) : NULL;
    char *pb = row.policy_hash ? store_input_body(db, row.policy_hash) : NULL;
    char *wb = row.workload_hash ? store_input_body(db, row.workload_hash) : NULL;
    char what[64];
    snprintf(what, sizeof what, "run %lld's model", (long long)r->id);
    if (!row.kind || strcmp(row.kind, "measure") != 0)
        st = diag_set(e, LLMSIM_EINPUT, "run %lld is not a measure run", (long long)r->id);
    else if (!mb || !pb || !wb)
        st = diag_set(e, LLMSIM_EINPUT, "run %lld lacks its inputs in the store", (long long)r->id);
    if (!st)
        st = model_load_yaml_text(what, mb, &r->m, e);
    if (!st) {
        snprintf(what, sizeof what, "run %lld's policy", (long long)r->id);
        st = policy_load_yaml_text(what, pb, &r->p, e);
    }
    if (!st) {
        snprintf(what, sizeof what, "run %lld's workload", (long long)r->id);
        st = workload_load_yaml_text(what, wb, &r->w, e);
    }
    free(mb);
    free(pb);
    free(wb);
    if (!st)
        snprintf(r->inputs, sizeof r->inputs, "%.16s:%.16s:%.16s", row.model_hash, row.policy_hash,
                 row.workload_hash);
    if (!r->name[0]) /* a name for the table: the command's policy is not kept, the id is */
        snprintf(r->name, sizeof r->name, "run %lld", (long long)r->id);
    store_row_clear(&row);
    if (st)
        return st;
    r->measured_s = validate_run_metric(db, r->id, "total_s", e, &st);
    if (!st && !(r->measured_s > 0))
        st = diag_set(e, LLMSIM_EINPUT, "run %lld has no measured total", (long long)r->id);
    if (st)
        return st;
    plan pl;
    if ((st = plan_build(&r->m, &S->base, &r->p, &r->w, &pl, e)))
        return st;
    store_task_row *rows = NULL;
    size_t n = 0;
    r->ntasks = pl.ntasks;
    r->measured = malloc((pl.ntasks + 1) * sizeof *r->measured);
    if (!r->measured)
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
    if (!st)
        st = validate_tasks_sorted(db, r->id, &rows, &n, e);
    size_t found = 0;
    for (size_t i = 0; !st && i < pl.ntasks; i++) {
        char id[96];
        plan_task_id(&pl, i, id, sizeof id);
        const store_task_row *t = validate_task_find(rows, n, id);
        r->measured[i] = t ? t->end_s - t->start_s : NAN;
        found += t != NULL;
    }
    if (!st && found == 0)
        st = diag_set(e, LLMSIM_EINPUT, "run %lld: none of its %zu recorded tasks is a task of the plan that "
                      "%s lowers it to", (long long)r->id, n, S->base.name);
    free(rows);
    plan_free(&pl);
    return st;
}

/* True, with "interrupted" in e, when the caller's flag is up. */
static bool calibration_stopped(const calibration *c, diag *e)
{
    fault_signal_point();
    if (!c->interrupt || !*c->interrupt)
        return false;
    diag_set(e, LLMSIM_EFAIL, "interrupted");
    return true;
}

llmsim_status calibration_runs_load(calibration *c, const int64_t *ids, int nids, diag *e)
{
    store *db = NULL;
    llmsim_status st = store_open_existing(c->db_path, &db, e);
    for (int i = 0; i < nids && !st; i++)
        st = expand_run(c, db, ids[i], e);
    if (!st && nids == 0)
        st = default_runs(c, db, e);
    if (!st && c->nruns == 0)
        st = diag_set(e, LLMSIM_EINPUT, "no measure run to fit: the validate run left out every one "
                      "as measured under contention; measure again on a quieter machine (llmsim "
                      "validate --rerun)");
    for (int i = 0; i < c->nruns && !st; i++)
        st = calibration_stopped(c, e) ? LLMSIM_EFAIL : load_run(c, db, &c->runs[i], e);
    store_close(db);
    return st;
}

llmsim_status calibration_hold_out(calibration *c, const int64_t *held, int nheld, long long every,
                                   diag *e)
{
    c->nfit = c->nheld = 0;
    for (int i = 0; i < c->nruns; i++) {
        calibration_run *r = &c->runs[i];
        r->held_out = false;
        if (nheld) {
            for (int k = 0; k < nheld; k++)
                r->held_out |= held[k] == r->id;
        } else {
            r->held_out = every > 1 && c->nruns > 1 && i % every == every - 1;
        }
        c->nheld += r->held_out;
    }
    c->nfit = c->nruns - c->nheld;
    for (int k = 0; k < nheld; k++) {
        bool known = false;
        for (int i = 0; i < c->nruns; i++)
            known |= c->runs[i].id == held[k];
        if (!known)
            return diag_set(e, LLMSIM_EINPUT, "--holdout %lld is not one of the measure runs given",
                            (long long)held[k]);
    }
    if (c->nfit == 0)
        return diag_set(e, LLMSIM_EINPUT, "every run is held out; nothing to fit");
    return LLMSIM_OK;
}

/* ---- the fit */

/* The simulated total of a run with hw. */
static llmsim_status simulated_total(const hwprofile *hw, const calibration_run *r, double *total, diag *e)
{
    plan pl;
    llmsim_status st = plan_build(&r->m, hw, &r->p, &r->w, &pl, e);
    if (st)
        return st;
    double cap[TIER_COUNT];
    cm_hw_capacities(hw, cap);
    sim_result sr;
    if (!(st = sim_run(&pl, cap, false, &sr, e))) {
        sim_totals t;
        sim_totals_get(&pl, &sr, &t);
        *total = t.total_s;
    }
    sim_result_free(&sr);
    plan_free(&pl);
    return st;
}

/* What the fitted profile keeps of its fit (hw_calibration): the inputs of
 * every run it was fitted on, and the p10 and p90 of the simulation's
 * signed error after the fit on the held-out runs. */
static void fit_record(hwprofile *hw, const calibration *S)
{
    hw_calibration *k = &hw->calib;
    memset(k, 0, sizeof *k);
    k->present = true;
    double err[CALIBRATION_MAX_RUNS];
    for (int i = 0; i < S->nruns; i++) {
        const calibration_run *r = &S->runs[i];
        if (r->held_out) {
            err[k->nheld++] = (r->after_s - r->measured_s) / r->measured_s;
            continue;
        }
        bool seen = false;
        for (int j = 0; j < k->nfit && !seen; j++)
            seen = strcmp(k->fit_inputs[j], r->inputs) == 0;
        if (!seen && k->nfit < HW_MAX_FIT_INPUTS)
            snprintf(k->fit_inputs[k->nfit++], HW_FIT_INPUT_LEN, "%s", r->inputs);
    }
    if (k->nheld) {
        stats_sort(err, (size_t)k->nheld);
        k->held_err_p10 = stats_quantile_sorted(err, (size_t)k->nheld, 0.1);
        k->held_err_p90 = stats_quantile_sorted(err, (size_t)k->nheld, 0.9);
    }
}

/* Provenance: where the numbers came from, and every change. */
static void provenance(hwprofile *hw, const calibration *S, const calib_result *cr, const char *command,
                       int nfit, int nheld)
{
    hwprofile_stamp(&hw->prov, command);
    snprintf(hw->prov.description, sizeof hw->prov.description,
             "calibrated by llmsim calibrate from '%s' on the task times of %d measured runs (%d held out)",
             S->base.name, nfit, nheld);
    strbuf b = {0};
    strbuf_printf(&b, "Fitted by least squares to %ld measured tasks (sum of squared task errors %.4g -> "
                  "%.4g s^2). Changed:", cr->tasks, cr->sse_before, cr->sse_after);
    for (int j = 0; j < cr->nparams; j++) {
        const calib_param *p = &cr->params[j];
        if (p->fitted && fabs(p->after - p->before) > 1e-6 * fmax(fabs(p->before), 1e-12))
            strbuf_printf(&b, " %s %.4g -> %.4g %s;", p->name, p->before, p->after, p->unit);
    }
    strbuf_printf(&b, " Before calibration: %s", S->base.prov.notes);
    snprintf(hw->prov.notes, sizeof hw->prov.notes, "%s", strbuf_str(&b));
    strbuf_free(&b);
}

llmsim_status calibration_fit(calibration *c, const char *name, const char *command, diag *e)
{
    calib_run *fit = calloc((size_t)c->nruns, sizeof *fit);
    if (!fit)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    int nfit = 0;
    for (int i = 0; i < c->nruns; i++)
        if (!c->runs[i].held_out) {
            const calibration_run *r = &c->runs[i];
            fit[nfit++] = (calib_run){&r->m, &r->p, &r->w, r->measured, r->ntasks};
        }
    llmsim_status st = calib_fit(&c->base, fit, nfit, c->interrupt, &c->fit, e);
    free(fit);
    if (st)
        return st;
    hwprofile *hw = &c->fit.hw;
    snprintf(hw->name, sizeof hw->name, "%.50s%s", name ? name : c->base.name, name ? "" : "-calibrated");
    provenance(hw, c, &c->fit, command, c->nfit, c->nheld);
    double (*mape)[2] = c->mape;
    memset(c->mape, 0, sizeof c->mape);
    for (int i = 0; i < c->nruns && !st; i++) {
        calibration_run *r = &c->runs[i];
        if (calibration_stopped(c, e))
            return LLMSIM_EFAIL;
        if (!(st = simulated_total(&c->base, r, &r->before_s, e)))
            st = simulated_total(hw, r, &r->after_s, e);
        mape[r->held_out][0] += fabs(validate_pct(r->before_s, r->measured_s));
        mape[r->held_out][1] += fabs(validate_pct(r->after_s, r->measured_s));
    }
    for (int k = 0; k < 2; k++) {
        mape[0][k] /= c->nfit;
        mape[1][k] = c->nheld ? mape[1][k] / c->nheld : NAN;
    }
    if (!st)
        fit_record(hw, c);
    return st;
}

/* ---- the profile and the record */

static cJSON *run_json(const calibration_run *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "run_id", (double)r->id);
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddBoolToObject(o, "held_out", r->held_out);
    cJSON_AddNumberToObject(o, "measured_s", r->measured_s);
    cJSON_AddNumberToObject(o, "simulated_before_s", r->before_s);
    cJSON_AddNumberToObject(o, "simulated_after_s", r->after_s);
    cJSON_AddNumberToObject(o, "error_before", validate_pct(r->before_s, r->measured_s));
    cJSON_AddNumberToObject(o, "error_after", validate_pct(r->after_s, r->measured_s));
    return o;
}

static cJSON *result_json(const calibration *c, const char *out_path)
{
    const calib_result *cr = &c->fit;
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "profile", out_path);
    cJSON_AddStringToObject(obj, "name", cr->hw.name);
    cJSON_AddStringToObject(obj, "from", c->base.name);
    cJSON_AddNumberToObject(obj, "tasks", (double)cr->tasks);
    cJSON_AddNumberToObject(obj, "iterations", cr->iterations);
    cJSON_AddNumberToObject(obj, "sse_before", cr->sse_before);
    cJSON_AddNumberToObject(obj, "sse_after", cr->sse_after);
    cJSON *params = cJSON_AddArrayToObject(obj, "parameters");
    for (int j = 0; j < cr->nparams; j++) {
        if (!cr->params[j].fitted)
            continue;
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "name", cr->params[j].name);
        cJSON_AddStringToObject(p, "unit", cr->params[j].unit);
        cJSON_AddNumberToObject(p, "before", cr->params[j].before);
        cJSON_AddNumberToObject(p, "after", cr->params[j].after);
        cJSON_AddItemToArray(params, p);
    }
    cJSON *runs = cJSON_AddArrayToObject(obj, "runs");
    for (int i = 0; i < c->nruns; i++)
        cJSON_AddItemToArray(runs, run_json(&c->runs[i]));
    cJSON_AddNumberToObject(obj, "mape_fit_before", c->mape[0][0]);
    cJSON_AddNumberToObject(obj, "mape_fit_after", c->mape[0][1]);
    if (c->nheld) {
        cJSON_AddNumberToObject(obj, "mape_holdout_before", c->mape[1][0]);
        cJSON_AddNumberToObject(obj, "mape_holdout_after", c->mape[1][1]);
    } else {
        cJSON_AddNullToObject(obj, "mape_holdout_before");
        cJSON_AddNullToObject(obj, "mape_holdout_after");
    }
    return obj;
}

/* The record: the fitted profile as an input, the errors as metrics. */
static llmsim_status record(const calibration *c, const char *text, const char *command, int64_t *run_id,
                            diag *e)
{
    const calib_result *cr = &c->fit;
    strbuf canon = {0};
    hwprofile_save(&cr->hw, &canon);
    char hash[17];
    store *db = NULL;
    llmsim_status st;
    if (!(st = store_open(c->db_path, &db, e)) &&
        !(st = store_put_input(db, "hwprofile", cr->hw.name, strbuf_str(&canon), hash, e))) {
        store_run_info info = {.kind = "calibrate", .hw_hash = hash, .hw_name = cr->hw.name,
                               .command = command};
        if (!(st = store_run_begin(db, &info, run_id, e))) {
            const record_metric m[] = {{"mape_fit_before", c->mape[0][0]},
                                       {"mape_fit_after", c->mape[0][1]},
                                       {"mape_holdout_before", c->mape[1][0]},
                                       {"mape_holdout_after", c->mape[1][1]},
                                       {"runs", c->nruns},
                                       {"tasks", (double)cr->tasks}};
            for (size_t k = 0; k < sizeof m / sizeof m[0] && !st; k++)
                if (isfinite(m[k].value))
                    st = store_run_metric(db, *run_id, m[k].key, m[k].value, e);
            if (!st)
                st = store_run_commit(db, *run_id, "ok", text, e);
            else
                store_run_abort(db, *run_id, "failed");
        }
    }
    store_close(db);
    strbuf_free(&canon);
    return st;
}

llmsim_status calibration_record(const calibration *c, const char *out_path, const char *command,
                                 cJSON **obj, int64_t *run_id, diag *e)
{
    *obj = NULL;
    /* the profile first (a file the user asked for), then the record */
    llmsim_status st = hwprofile_write(&c->fit.hw, out_path, e);
    if (st)
        return st;
    cJSON *o = result_json(c, out_path);
    char *text = cJSON_PrintUnformatted(o);
    st = text ? record(c, text, command, run_id, e) : diag_set(e, LLMSIM_EFAIL, "out of memory");
    free(text);
    if (st) {
        cJSON_Delete(o);
        return st;
    }
    cJSON_AddNumberToObject(o, "run_id", (double)*run_id);
    *obj = o;
    return LLMSIM_OK;
}
