/*
 * cmd_calibrate — `llmsim calibrate`: fit a hardware profile to the task
 * times of measured runs (profiler/calibrate.h), write the fitted profile
 * with its provenance, and report the simulation's error on total time
 * before and after, on the runs of the fit and on runs held out from it.
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "db/record.h"
#include "cli/validate.h"
#include "profiler/calibrate.h"
#include "sim/sim.h"

#define MAX_RUNS 1024

/* A measured run and what the fit needs of it. */
typedef struct c_run {
    int64_t id;
    char name[96];
    model m;
    policy p;
    workload w;
    double *measured;   /* [ntasks] by plan task index; NaN: not measured */
    size_t ntasks;
    double measured_s;  /* the run's measured total */
    double before_s, after_s; /* simulated totals with the base and the fitted profile */
    bool held_out;
} c_run;

typedef struct c_state {
    const char *db_path;
    hwprofile base;
    c_run *runs;
    int nruns;
} c_state;

static void usage(void)
{
    printf("usage: llmsim calibrate --hardware H -o FILE [--runs ID[,ID...]] [--holdout ID[,ID...]]\n"
           "                        [--holdout-every K] [--name NAME] [--format table|json] [--db PATH]\n\n"
           "Fit the parameters of hardware profile H that the measured task times point to -\n"
           "each link's latency and bandwidth, the GEMM table's rate at each shape, memory\n"
           "bandwidth, attention throughput and an overhead per compute task - by least squares\n"
           "over every task of the measured runs (Levenberg-Marquardt on the plan's own prices).\n"
           "Write the fitted profile to FILE with its provenance, and print the simulation's\n"
           "error on total time before and after, on the runs of the fit and on runs held out.\n\n"
           "  --hardware H        the profile to start from (a measured one: llmsim profile)\n"
           "  -o, --output FILE   where the fitted profile goes\n"
           "  --runs IDS          measure runs, or validate runs (each stands for the measure runs\n"
           "                      of its policies); default: the newest validate run of H\n"
           "  --holdout IDS       measure runs kept out of the fit (to judge it)\n"
           "  --holdout-every K   without --holdout: every K-th run is held out (default 3;\n"
           "                      0: none)\n"
           "  --name NAME         the fitted profile's name (default: H's name + \"-calibrated\")\n"
           "  --format table|json human tables (default) or one JSON object\n"
           "  --db PATH           the store (default $LLMSIM_DB or ./llmsim.db)\n"
           "  --help              this text\n");
}

/* "12,15,18" (or one per option) appended to ids. */
static bool parse_ids(const char *s, int64_t *ids, int *n)
{
    const char *p = s;
    while (*p) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v <= 0 || *n >= MAX_RUNS)
            return false;
        ids[(*n)++] = v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return false;
    }
    return true;
}

static int add_run(c_state *S, int64_t id, const char *name)
{
    for (int i = 0; i < S->nruns; i++)
        if (S->runs[i].id == id)
            return CLI_EXIT_OK; /* named twice */
    if (S->nruns >= MAX_RUNS) {
        fprintf(stderr, "llmsim calibrate: more than %d runs\n", MAX_RUNS);
        return CLI_EXIT_INPUT;
    }
    c_run *r = &S->runs[S->nruns++];
    memset(r, 0, sizeof *r);
    r->id = id;
    snprintf(r->name, sizeof r->name, "%s", name ? name : "");
    return CLI_EXIT_OK;
}

/* A validate run stands for the measure runs of its policies. */
static int expand_run(c_state *S, store *db, int64_t id)
{
    store_run_row row;
    diag e;
    diag_clear(&e);
    if (store_run_get(db, id, &row, &e)) {
        fprintf(stderr, "llmsim calibrate: --runs: %s\n", e.msg);
        return CLI_EXIT_INPUT;
    }
    int status = CLI_EXIT_OK;
    if (row.status && strcmp(row.status, "ok") != 0) {
        fprintf(stderr, "llmsim calibrate: run %lld is %s, not a finished run\n", (long long)id, row.status);
        status = CLI_EXIT_INPUT;
    } else if (row.kind && strcmp(row.kind, "measure") == 0) {
        status = add_run(S, id, NULL);
    } else if (row.kind && strcmp(row.kind, "validate") == 0) {
        cJSON *obj = row.result_json ? cJSON_Parse(row.result_json) : NULL;
        cJSON *runs = cJSON_GetObjectItemCaseSensitive(obj, "runs"), *it;
        if (!cJSON_IsArray(runs)) {
            fprintf(stderr, "llmsim calibrate: validate run %lld has no runs in its result\n", (long long)id);
            status = CLI_EXIT_INPUT;
        }
        cJSON_ArrayForEach(it, runs) {
            cJSON *ids = cJSON_GetObjectItemCaseSensitive(it, "run_ids");
            cJSON *meas = cJSON_GetObjectItemCaseSensitive(ids, "measure");
            cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
            if (cJSON_IsNumber(meas) && !status)
                status = add_run(S, (int64_t)meas->valuedouble, cJSON_IsString(name) ? name->valuestring : NULL);
        }
        cJSON_Delete(obj);
    } else {
        fprintf(stderr, "llmsim calibrate: run %lld is a %s run; give measure or validate runs\n", (long long)id,
                row.kind ? row.kind : "?");
        status = CLI_EXIT_INPUT;
    }
    store_row_clear(&row);
    return status;
}

/* The newest validate run of the profile's name. */
static int default_runs(c_state *S, store *db)
{
    store_run_filter f = {.hw_name = S->base.name, .kind = "validate", .limit = 0};
    store_run_row *rows = NULL;
    int n = 0;
    diag e;
    diag_clear(&e);
    if (store_runs_list(db, &f, &rows, &n, &e))
        return cli_fail("calibrate", &e);
    int64_t id = 0;
    for (int i = 0; i < n && !id; i++)
        if (rows[i].status && strcmp(rows[i].status, "ok") == 0)
            id = rows[i].id;
    store_rows_free(rows, n);
    if (!id) {
        fprintf(stderr, "llmsim calibrate: the store %s has no validate run of hardware '%s'; run llmsim "
                "validate --hardware ... first, or give --runs\n", S->db_path, S->base.name);
        return CLI_EXIT_INPUT;
    }
    return expand_run(S, db, id);
}

/* Inputs from the store, the plan's task count, and the measured durations. */
static llmsim_status load_run(c_state *S, store *db, c_run *r, diag *e)
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
    if (!r->name[0]) /* a name for the table: the command's policy is not kept, the id is */
        snprintf(r->name, sizeof r->name, "run %lld", (long long)r->id);
    store_row_clear(&row);
    if (st)
        return st;
    r->measured_s = v_run_metric(db, r->id, "total_s", e, &st);
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
        st = v_tasks_sorted(db, r->id, &rows, &n, e);
    size_t found = 0;
    for (size_t i = 0; !st && i < pl.ntasks; i++) {
        char id[96];
        plan_task_id(&pl, i, id, sizeof id);
        const store_task_row *t = v_task_find(rows, n, id);
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

/* The simulated total of a run with hw. */
static llmsim_status simulated_total(const hwprofile *hw, const c_run *r, double *total, diag *e)
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

/* Provenance: where the numbers came from, and every change. */
static void provenance(hwprofile *hw, const c_state *S, const calib_result *cr, const char *command,
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

static cJSON *run_json(const c_run *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "run_id", (double)r->id);
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddBoolToObject(o, "held_out", r->held_out);
    cJSON_AddNumberToObject(o, "measured_s", r->measured_s);
    cJSON_AddNumberToObject(o, "simulated_before_s", r->before_s);
    cJSON_AddNumberToObject(o, "simulated_after_s", r->after_s);
    cJSON_AddNumberToObject(o, "error_before", v_pct(r->before_s, r->measured_s));
    cJSON_AddNumberToObject(o, "error_after", v_pct(r->after_s, r->measured_s));
    return o;
}

int cmd_calibrate(int argc, char **argv)
{
    const char *hw_spec = NULL, *out_path = NULL, *name = NULL, *db_opt = NULL;
    cli_format format = CLI_FORMAT_TABLE;
    int64_t *ids = calloc(MAX_RUNS, sizeof *ids), *held = calloc(MAX_RUNS, sizeof *held);
    c_state *S = calloc(1, sizeof *S);
    calib_result cr;
    memset(&cr, 0, sizeof cr);
    int nids = 0, nheld_ids = 0, status = CLI_EXIT_INPUT;
    long long every = 3;
    if (!ids || !held || !S || !(S->runs = calloc(MAX_RUNS, sizeof *S->runs))) {
        fprintf(stderr, "llmsim calibrate: out of memory\n");
        status = CLI_EXIT_FAIL;
        goto out;
    }
    for (int i = 1; i < argc; i++) { /* argv[0] is the command's name */
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            usage();
            status = CLI_EXIT_OK;
            goto out;
        }
        static const char *const valued[] = {"--hardware", "-o", "--output", "--runs", "--holdout",
                                             "--holdout-every", "--name", "--format", "--db"};
        int which = -1;
        for (int k = 0; k < (int)(sizeof valued / sizeof valued[0]); k++)
            if (strcmp(a, valued[k]) == 0)
                which = k;
        if (which < 0) {
            fprintf(stderr, "llmsim calibrate: unknown option '%s' (see llmsim calibrate --help)\n", a);
            goto out;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "llmsim calibrate: %s needs a value (see llmsim calibrate --help)\n", a);
            goto out;
        }
        const char *v = argv[++i];
        bool ok = true;
        switch (which) {
        case 0: hw_spec = v; break;
        case 1: case 2: out_path = v; break;
        case 3: ok = parse_ids(v, ids, &nids); break;
        case 4: ok = parse_ids(v, held, &nheld_ids); break;
        case 5: ok = cli_parse_ll(v, 0, 1000, &every) && every != 1; break;
        case 6: name = v; break;
        case 7:
            ok = strcmp(v, "table") == 0 || strcmp(v, "json") == 0;
            format = strcmp(v, "json") == 0 ? CLI_FORMAT_JSON : CLI_FORMAT_TABLE;
            break;
        case 8: db_opt = v; break;
        }
        if (!ok) {
            fprintf(stderr, "llmsim calibrate: %s '%s' is not valid (see llmsim calibrate --help)\n", a, v);
            goto out;
        }
    }
    if (!hw_spec || !out_path) {
        fprintf(stderr, "llmsim calibrate: give --hardware H and -o FILE (see llmsim calibrate --help)\n");
        goto out;
    }
    S->db_path = cli_db_path(db_opt);
    diag e;
    diag_clear(&e);
    if (hwprofile_load(hw_spec, &S->base, &e)) {
        status = cli_fail("calibrate", &e);
        goto out;
    }
    store *db = NULL;
    if (store_open_existing(S->db_path, &db, &e)) {
        status = cli_fail("calibrate", &e);
        goto out;
    }
    status = CLI_EXIT_OK;
    for (int i = 0; i < nids && !status; i++)
        status = expand_run(S, db, ids[i]);
    if (!status && nids == 0)
        status = default_runs(S, db);
    for (int i = 0; i < S->nruns && !status; i++) {
        llmsim_status st = load_run(S, db, &S->runs[i], &e);
        if (st)
            status = cli_fail("calibrate", &e);
    }
    store_close(db);
    if (status)
        goto out;

    /* which runs judge the fit */
    int nfit = 0, nheld = 0;
    for (int i = 0; i < S->nruns; i++) {
        c_run *r = &S->runs[i];
        if (nheld_ids) {
            for (int k = 0; k < nheld_ids; k++)
                r->held_out |= held[k] == r->id;
        } else {
            r->held_out = every > 1 && S->nruns > 1 && i % every == every - 1;
        }
        nheld += r->held_out;
    }
    for (int k = 0; k < nheld_ids; k++) {
        bool known = false;
        for (int i = 0; i < S->nruns; i++)
            known |= S->runs[i].id == held[k];
        if (!known) {
            fprintf(stderr, "llmsim calibrate: --holdout %lld is not one of the measure runs given\n",
                    (long long)held[k]);
            status = CLI_EXIT_INPUT;
            goto out;
        }
    }
    calib_run *fit = calloc((size_t)S->nruns, sizeof *fit);
    if (!fit) {
        fprintf(stderr, "llmsim calibrate: out of memory\n");
        status = CLI_EXIT_FAIL;
        goto out;
    }
    for (int i = 0; i < S->nruns; i++)
        if (!S->runs[i].held_out) {
            const c_run *r = &S->runs[i];
            fit[nfit++] = (calib_run){&r->m, &r->p, &r->w, r->measured, r->ntasks};
        }
    if (nfit == 0) {
        free(fit);
        fprintf(stderr, "llmsim calibrate: every run is held out; nothing to fit\n");
        status = CLI_EXIT_INPUT;
        goto out;
    }
    if (isatty(2))
        fprintf(stderr, "llmsim calibrate: fitting %s to %d runs (%d held out) ...\n", S->base.name, nfit, nheld);
    llmsim_status st = calib_fit(&S->base, fit, nfit, &cr, &e);
    free(fit);
    if (st) {
        status = cli_fail("calibrate", &e);
        goto out;
    }
    snprintf(cr.hw.name, sizeof cr.hw.name, "%.50s%s", name ? name : S->base.name, name ? "" : "-calibrated");
    char command[1024];
    cli_command_line(argc, argv, command, sizeof command);
    provenance(&cr.hw, S, &cr, command, nfit, nheld);

    double mape[2][2] = {{0, 0}, {0, 0}}; /* [fit|held][before|after] */
    for (int i = 0; i < S->nruns && !st; i++) {
        c_run *r = &S->runs[i];
        if (!(st = simulated_total(&S->base, r, &r->before_s, &e)))
            st = simulated_total(&cr.hw, r, &r->after_s, &e);
        mape[r->held_out][0] += fabs(v_pct(r->before_s, r->measured_s));
        mape[r->held_out][1] += fabs(v_pct(r->after_s, r->measured_s));
    }
    for (int k = 0; k < 2; k++) {
        mape[0][k] /= nfit;
        mape[1][k] = nheld ? mape[1][k] / nheld : NAN;
    }
    /* the profile first (a file the user asked for), then the record */
    if (!st)
        st = hwprofile_write(&cr.hw, out_path, &e);
    if (st) {
        status = cli_fail("calibrate", &e);
        goto out;
    }

    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "profile", out_path);
    cJSON_AddStringToObject(obj, "name", cr.hw.name);
    cJSON_AddStringToObject(obj, "from", S->base.name);
    cJSON_AddNumberToObject(obj, "tasks", (double)cr.tasks);
    cJSON_AddNumberToObject(obj, "iterations", cr.iterations);
    cJSON_AddNumberToObject(obj, "sse_before", cr.sse_before);
    cJSON_AddNumberToObject(obj, "sse_after", cr.sse_after);
    cJSON *params = cJSON_AddArrayToObject(obj, "parameters");
    for (int j = 0; j < cr.nparams; j++) {
        if (!cr.params[j].fitted)
            continue;
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "name", cr.params[j].name);
        cJSON_AddStringToObject(p, "unit", cr.params[j].unit);
        cJSON_AddNumberToObject(p, "before", cr.params[j].before);
        cJSON_AddNumberToObject(p, "after", cr.params[j].after);
        cJSON_AddItemToArray(params, p);
    }
    cJSON *runs = cJSON_AddArrayToObject(obj, "runs");
    for (int i = 0; i < S->nruns; i++)
        cJSON_AddItemToArray(runs, run_json(&S->runs[i]));
    cJSON_AddNumberToObject(obj, "mape_fit_before", mape[0][0]);
    cJSON_AddNumberToObject(obj, "mape_fit_after", mape[0][1]);
    if (nheld) {
        cJSON_AddNumberToObject(obj, "mape_holdout_before", mape[1][0]);
        cJSON_AddNumberToObject(obj, "mape_holdout_after", mape[1][1]);
    } else {
        cJSON_AddNullToObject(obj, "mape_holdout_before");
        cJSON_AddNullToObject(obj, "mape_holdout_after");
    }

    /* the record: the fitted profile as an input, the errors as metrics */
    int64_t run_id = 0;
    char *text = cJSON_PrintUnformatted(obj);
    strbuf canon = {0};
    hwprofile_save(&cr.hw, &canon);
    char hash[17];
    if (!(st = store_open(S->db_path, &db, &e)) &&
        !(st = store_put_input(db, "hwprofile", cr.hw.name, strbuf_str(&canon), hash, &e))) {
        store_run_info info = {.kind = "calibrate", .hw_hash = hash, .hw_name = cr.hw.name, .command = command};
        if (!(st = store_run_begin(db, &info, &run_id, &e))) {
            const record_metric m[] = {{"mape_fit_before", mape[0][0]}, {"mape_fit_after", mape[0][1]},
                                    {"mape_holdout_before", mape[1][0]}, {"mape_holdout_after", mape[1][1]},
                                    {"runs", S->nruns}, {"tasks", (double)cr.tasks}};
            for (size_t k = 0; k < sizeof m / sizeof m[0] && !st; k++)
                if (isfinite(m[k].value))
                    st = store_run_metric(db, run_id, m[k].key, m[k].value, &e);
            if (!st)
                st = store_run_commit(db, run_id, "ok", text, &e);
            else
                store_run_abort(db, run_id, "failed");
        }
    }
    store_close(db);
    strbuf_free(&canon);
    free(text);
    if (st) {
        cJSON_Delete(obj);
        status = cli_fail("calibrate", &e);
        goto out;
    }
    cJSON_AddNumberToObject(obj, "run_id", (double)run_id);
    if (format == CLI_FORMAT_JSON) {
        cli_print_json(obj);
    } else {
        cJSON_Delete(obj);
        printf("calibrated %s: fit on %ld tasks of %d runs, %d runs held out; %d iterations\n\n", S->base.name, cr.tasks,
               nfit, nheld, cr.iterations);
        printf("%-40s %14s %14s %8s\n", "parameter", "before", "after", "change");
        for (int j = 0; j < cr.nparams; j++) {
            const calib_param *p = &cr.params[j];
            if (!p->fitted)
                continue;
            char ch[16] = "";
            if (p->before > 0)
                snprintf(ch, sizeof ch, "%+.1f%%", v_pct(p->after, p->before));
            printf("%-40s %10.4g %-3s %10.4g %-3s %8s\n", p->name, p->before, p->unit, p->after, p->unit, ch);
        }
        printf("\n%-28s %9s %12s %8s %12s %8s\n", "run", "measured", "sim before", "error", "sim after", "error");
        for (int i = 0; i < S->nruns; i++) {
            const c_run *r = &S->runs[i];
            printf("%-28.28s %7.3f s %10.3f s %+7.1f%% %10.3f s %+7.1f%%%s\n", r->name, r->measured_s, r->before_s,
                   v_pct(r->before_s, r->measured_s), r->after_s, v_pct(r->after_s, r->measured_s),
                   r->held_out ? "  held out" : "");
        }
        printf("\nMAPE on the runs of the fit   %6.1f%% -> %5.1f%%\n", mape[0][0], mape[0][1]);
        if (nheld)
            printf("MAPE on the held-out runs     %6.1f%% -> %5.1f%%\n", mape[1][0], mape[1][1]);
        printf("\nwritten   %s (use it as --hardware %s)\nrecorded  run %lld in %s\n", out_path, out_path,
               (long long)run_id, S->db_path);
    }
    status = CLI_EXIT_OK;
out:
    if (S && S->runs)
        for (int i = 0; i < S->nruns; i++)
            free(S->runs[i].measured);
    if (S)
        free(S->runs);
    free(S);
    calib_result_free(&cr);
    free(ids);
    free(held);
    return status;
}
