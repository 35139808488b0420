/*
 * report_load — the runs of `llmsim report`, read from the store: each run
 * once (a serving run with its iterations and requests), a validate run
 * expanded into its policies and the simulate and measure runs they name (a
 * serving validate run, whose result has `modes`: into its preemption modes
 * and their serve and serve-measure runs), and runs given directly that
 * share their inputs (model, hardware, policy and workload hashes) grouped,
 * so that a simulate and a measure run of one job, or a serve and a
 * serve-measure run, are drawn side by side. report_fig.c turns that into
 * figures, report_out.c writes them.
 *
 * A run that is not in the store, or has nothing to plot, is bad input
 * (EINPUT). Inside a validate run's result, a policy or mode that lacks a
 * key is skipped with a warning: the result is another command's output and
 * may be from an older llmsim.
 */
#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"

// ---- notes

/* Append a formatted note to a list (and say it on stderr); false on out of
 * memory. */
static bool report_note(char ***notes, size_t *n, const char *fmt, ...) LLMSIM_PRINTF(3, 4);
static bool report_note(char ***notes, size_t *n, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    report_warn("%s", buf);
    char **note = report_push((void **)notes, *n, sizeof *note); /* notes are few */
    if (!note || !(*note = report_strdup(buf)))
        return false;
    (*n)++;
    return true;
}

// ---- reading one run

static int report_stage_index(const char *name)
{
    for (int k = 0; k < CM_NSTAGES; k++)
        if (strcmp(name, cm_stage_names[k]) == 0)
            return k;
    return -1;
}

/* The decode steps of a run from its stage rows (ordered by step), one
 * report_step per step; stages a row does not name stay NaN. */
static llmsim_status report_steps_fold(report_run *run, const store_stage_row *rows, size_t n,
                                       diag *e)
{
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        int k = report_stage_index(rows[i].stage);
        if (strcmp(rows[i].phase, "decode") != 0 || rows[i].step < 1 || k < 0)
            continue; /* prefill, per-layer averages (-1) and unknown stages */
        if (run->nsteps == 0 || run->steps[run->nsteps - 1].step != rows[i].step) {
            if (!report_grow((void **)&run->steps, &cap, run->nsteps, sizeof *run->steps))
                return diag_set(e, LLMSIM_EFAIL, "out of memory reading run %" PRId64,
                                run->row.id);
            report_step *st = &run->steps[run->nsteps++];
            st->step = rows[i].step;
            for (int j = 0; j < CM_NSTAGES; j++)
                st->s[j] = NAN;
        }
        run->steps[run->nsteps - 1].s[k] = rows[i].seconds;
    }
    return LLMSIM_OK;
}

/* Read run `id`: its row, decode steps and memory timeline, and a serving
 * run's iterations and requests (other runs have none). */
static llmsim_status report_run_read(store *s, int64_t id, report_run *run, diag *e)
{
    store_stage_row *stages = NULL;
    size_t nstages = 0;
    llmsim_status st = store_run_get(s, id, &run->row, e);
    if (st == LLMSIM_OK)
        st = store_run_stages_get(s, id, &stages, &nstages, e);
    if (st == LLMSIM_OK)
        st = report_steps_fold(run, stages, nstages, e);
    free(stages);
    if (st == LLMSIM_OK)
        st = store_run_memory_get(s, id, &run->mem, &run->nmem, e);
    if (st == LLMSIM_OK)
        st = store_serve_iterations_get(s, id, &run->iters, &run->niters, e);
    if (st == LLMSIM_OK)
        st = store_serve_requests_get(s, id, &run->reqs, &run->nreqs, e);
    return st;
}

/* The run `id`, read from the store once: *out points into r->runs. */
static llmsim_status report_run_get(report *r, store *s, int64_t id, report_run **out, diag *e)
{
    for (size_t i = 0; i < r->nruns; i++)
        if (r->runs[i]->row.id == id) {
            *out = r->runs[i];
            return LLMSIM_OK;
        }
    report_run *run = calloc(1, sizeof *run);
    if (!run)
        return diag_set(e, LLMSIM_EFAIL, "out of memory reading run %" PRId64, id);
    run->row.id = id; /* for messages while reading */
    llmsim_status st = report_run_read(s, id, run, e);
    report_run **slot = st ? NULL : report_push((void **)&r->runs, r->nruns, sizeof *slot);
    if (st == LLMSIM_OK && !slot)
        st = diag_set(e, LLMSIM_EFAIL, "out of memory reading run %" PRId64, id);
    if (st != LLMSIM_OK) {
        report_run_free(run);
        return st;
    }
    *slot = run;
    r->nruns++;
    *out = run;
    return LLMSIM_OK;
}

static bool report_run_has_data(const report_run *run)
{
    return run->nsteps > 0 || run->nmem > 0 || run->niters > 0 || run->nreqs > 0;
}

// ---- groups of runs drawn side by side

/* Panels appear predicted, simulated, measured, then anything else; a
 * serving run predicted (serve) before measured (serve-measure). */
static int report_kind_rank(const char *kind)
{
    static const char *const order[] = {"predict", "search", "serve", "simulate", "measure",
                                         "serve-measure"};
    enum { NORDER = sizeof order / sizeof order[0] };
    for (int i = 0; i < NORDER; i++)
        if (kind && strcmp(kind, order[i]) == 0)
            return i;
    return NORDER;
}

static bool report_str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Two runs of one job: the same four inputs, known. */
static bool report_same_job(const report_run *a, const report_run *b)
{
    return a->row.model_hash && a->row.hw_hash &&
           report_str_eq(a->row.model_hash, b->row.model_hash) &&
           report_str_eq(a->row.hw_hash, b->row.hw_hash) &&
           report_str_eq(a->row.policy_hash, b->row.policy_hash) &&
           report_str_eq(a->row.workload_hash, b->row.workload_hash);
}

static report_group *report_group_new(report *r, const char *title, diag *e)
{
    report_group *g = report_push((void **)&r->groups, r->ngroups, sizeof *g);
    if (!g || !(g->title = report_strdup(title))) {
        diag_set(e, LLMSIM_EFAIL, "out of memory");
        return NULL;
    }
    r->ngroups++;
    return g;
}

/* Put a run in its panel slot, keeping the kind order. */
static void report_group_add(report_group *g, const report_run *run)
{
    int i = g->npanels++;
    while (i > 0 && report_kind_rank(g->panel[i - 1]->row.kind) > report_kind_rank(run->row.kind)) {
        g->panel[i] = g->panel[i - 1];
        i--;
    }
    g->panel[i] = run;
}

/* A group of the direct runs this run can join: same job, free slot, no
 * panel of its kind yet. */
static report_group *report_group_find(report *r, size_t first_direct, const report_run *run)
{
    for (size_t i = first_direct; i < r->ngroups; i++) {
        report_group *g = &r->groups[i];
        bool fits = g->npanels < REPORT_MAX_PANELS && report_same_job(g->panel[0], run);
        for (int p = 0; fits && p < g->npanels; p++)
            fits = !report_str_eq(g->panel[p]->row.kind, run->row.kind) &&
                   g->panel[p]->row.id != run->row.id;
        if (fits)
            return g;
    }
    return NULL;
}

/* Retitle a direct group with its model, hardware and run ids. */
static llmsim_status report_group_retitle(report_group *g, diag *e)
{
    const store_run_row *w = &g->panel[0]->row;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s on %s, run%s", w->model_name ? w->model_name : "?",
                     w->hw_name ? w->hw_name : "?", g->npanels > 1 ? "s" : "");
    for (int p = 0; p < g->npanels && n > 0 && (size_t)n < sizeof buf; p++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s %" PRId64, p ? "," : "",
                      g->panel[p]->row.id);
    char *t = report_strdup(buf);
    if (!t)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    free(g->title);
    g->title = t;
    return LLMSIM_OK;
}

/* A run given on the command line (not a validate run). */
static llmsim_status report_add_direct(report *r, size_t first_direct, const report_run *run,
                                       diag *e)
{
    if (!report_run_has_data(run))
        return diag_set(e, LLMSIM_EINPUT,
                        "run %" PRId64 " (%s) has no stage times, memory timeline or serving "
                        "rows to plot; give a simulate, measure, predict, serve, serve-measure "
                        "or validate run", run->row.id,
                        run->row.kind ? run->row.kind : "?");
    report_group *g = report_group_find(r, first_direct, run);
    if (!g && !(g = report_group_new(r, "", e)))
        return e->status;
    report_group_add(g, run);
    return report_group_retitle(g, e);
}

// ---- a validate run

/* A number member of a JSON object; NaN when absent or not a number. */
static double report_json_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int64_t report_json_id(const cJSON *ids, const char *key)
{
    double v = report_json_num(ids, key);
    return isfinite(v) && v >= 1 && v < 9e15 && v == floor(v) ? (int64_t)v : 0;
}

/* Signed percent error of x against the measurement m. */
static double report_error_pct(double x, double m) { return m > 0 ? 100 * (x - m) / m : NAN; }

/* One policy of a validate result into v->pol; a policy that lacks a key is
 * noted and skipped (*ok stays false). */
static llmsim_status report_policy_read(report_validate *v, size_t *cap, const cJSON *o, size_t i,
                                        bool *ok, diag *e)
{
    static const char *const need[] = {"predicted_s", "simulated_s", "measured_s"};
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    bool noted = true;
    *ok = false;
    if (!cJSON_IsObject(o) || !cJSON_IsString(name) || !name->valuestring[0]) {
        noted = report_note(&v->notes, &v->nnotes,
                            "validate run %" PRId64 ": policy %zu has no name; skipped", v->id,
                            i + 1);
        return noted ? LLMSIM_OK : diag_set(e, LLMSIM_EFAIL, "out of memory");
    }
    for (int k = 0; k < 3; k++)
        if (!isfinite(report_json_num(o, need[k]))) {
            noted = report_note(&v->notes, &v->nnotes,
                                "validate run %" PRId64 ": policy '%s' has no %s; skipped", v->id,
                                name->valuestring, need[k]);
            return noted ? LLMSIM_OK : diag_set(e, LLMSIM_EFAIL, "out of memory");
        }
    if (!report_grow((void **)&v->pol, cap, v->npol, sizeof *v->pol))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    report_policy *p = &v->pol[v->npol];
    if (!(p->name = report_strdup(name->valuestring)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    v->npol++;
    p->predicted_s = report_json_num(o, "predicted_s");
    p->simulated_s = report_json_num(o, "simulated_s");
    p->measured_s = report_json_num(o, "measured_s");
    /* the result's own errors when it has them, else the same formula */
    p->error_pct = report_json_num(o, "error");
    if (isnan(p->error_pct))
        p->error_pct = report_error_pct(p->simulated_s, p->measured_s);
    p->predicted_error_pct = report_json_num(o, "predicted_error");
    if (isnan(p->predicted_error_pct))
        p->predicted_error_pct = report_error_pct(p->predicted_s, p->measured_s);
    *ok = true;
    return LLMSIM_OK;
}

/* How a validate result names the two runs of one of its entries (a policy,
 * or a preemption mode of a serving validation), and what notes call them. */
typedef struct report_entry {
    const char *what;          /* "policy", "preemption" */
    const char *name;
    const cJSON *ids;          /* the object that holds the run ids */
    const char *const *keys;   /* [2] their keys in ids */
    const char *const *kinds;  /* [2] the runs, for notes: "simulate", "measure" */
    const char *lacks;         /* what an empty run did not record, for notes */
} report_entry;

/* The runs an entry names, as a group of the validate run. A run that is
 * missing or empty is a note of the group, not an error: the validation's
 * totals still stand. */
static llmsim_status report_entry_group(report *r, store *s, const report_validate *v,
                                        const report_entry *ent, const char *title, diag *e)
{
    report_group *g = report_group_new(r, title, e);
    if (!g)
        return e->status;
    g->validate_id = v->id;
    for (int k = 0; k < 2; k++) {
        int64_t id = report_json_id(ent->ids, ent->keys[k]);
        report_run *run = NULL;
        diag e2;
        diag_clear(&e2);
        llmsim_status st = id ? report_run_get(r, s, id, &run, &e2) : LLMSIM_OK;
        bool noted = true;
        if (st == LLMSIM_EFAIL)
            return diag_set(e, st, "%s", e2.msg);
        if (!id)
            noted = report_note(&g->notes, &g->nnotes, "validate run %" PRId64 ", %s '%s': "
                                "no %s run id", v->id, ent->what, ent->name, ent->kinds[k]);
        else if (st != LLMSIM_OK)
            noted = report_note(&g->notes, &g->nnotes, "validate run %" PRId64 ", %s '%s': "
                                "%s run %" PRId64 " is not in the store", v->id, ent->what,
                                ent->name, ent->kinds[k], id);
        else if (!report_run_has_data(run))
            noted = report_note(&g->notes, &g->nnotes, "validate run %" PRId64 ", %s '%s': "
                                "%s run %" PRId64 " recorded no %s", v->id, ent->what, ent->name,
                                ent->kinds[k], id, ent->lacks);
        else
            report_group_add(g, run);
        if (!noted)
            return diag_set(e, LLMSIM_EFAIL, "out of memory");
    }
    return LLMSIM_OK;
}

/* The simulate and measure runs one policy names (its run_ids), as a group. */
static llmsim_status report_policy_group(report *r, store *s, report_validate *v,
                                         const cJSON *pol_json, diag *e)
{
    static const char *const kinds[] = {"simulate", "measure"};
    const char *name = cJSON_GetObjectItemCaseSensitive(pol_json, "name")->valuestring;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(pol_json, "run_ids");
    if (!cJSON_IsObject(ids)) /* one note, not an empty section per policy */
        return report_note(&v->notes, &v->nnotes, "validate run %" PRId64 ", policy '%s': no "
                           "run_ids; only its totals are plotted", v->id, name)
                   ? LLMSIM_OK
                   : diag_set(e, LLMSIM_EFAIL, "out of memory");
    char title[320];
    snprintf(title, sizeof title, "policy %s (validate run %" PRId64 ")", name, v->id);
    const report_entry ent = {"policy", name, ids, kinds, kinds, "stage times"};
    return report_entry_group(r, s, v, &ent, title, e);
}

static llmsim_status report_validate_new(report *r, const report_run *run, report_validate **out,
                                         diag *e)
{
    report_validate *v = report_push((void **)&r->vals, r->nvals, sizeof *v);
    if (!v)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    r->nvals++;
    v->id = run->row.id;
    v->mape = v->mape_predicted = v->requests = NAN;
    *out = v;
    return LLMSIM_OK;
}

/* Model and hardware names and the MAPEs of a validate result. */
static llmsim_status report_validate_head(report_validate *v, const report_run *run,
                                          const cJSON *doc, diag *e)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "model");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(doc, "hardware");
    const char *mname = cJSON_IsString(m) ? m->valuestring : run->row.model_name;
    const char *hname = cJSON_IsString(h) ? h->valuestring : run->row.hw_name;
    if ((mname && !(v->model = report_strdup(mname))) ||
        (hname && !(v->hw = report_strdup(hname))))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    v->mape = report_json_num(doc, "mape");
    v->mape_predicted = report_json_num(doc, "mape_predicted");
    return LLMSIM_OK;
}

/* A validate run of offline policies (llmsim validate): its result's `runs`. */
static llmsim_status report_validate_policies(report *r, store *s, const report_run *run,
                                              const cJSON *doc, diag *e)
{
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(doc, "runs");
    if (!cJSON_IsArray(runs) || cJSON_GetArraySize(runs) == 0)
        return diag_set(e, LLMSIM_EINPUT, "validate run %" PRId64 " has no policies in its "
                        "result (\"runs\"); nothing to plot", run->row.id);
    report_validate *v = NULL;
    size_t cap = 0, i = 0;
    llmsim_status st = report_validate_new(r, run, &v, e);
    if (st == LLMSIM_OK)
        st = report_validate_head(v, run, doc, e);
    for (const cJSON *o = runs->child; o && st == LLMSIM_OK; o = o->next, i++) {
        bool ok = false;
        st = report_policy_read(v, &cap, o, i, &ok, e);
        if (st == LLMSIM_OK && ok)
            st = report_policy_group(r, s, v, o, e);
    }
    if (st == LLMSIM_OK && v->npol == 0)
        st = diag_set(e, LLMSIM_EINPUT, "validate run %" PRId64 ": no policy has predicted_s, "
                      "simulated_s and measured_s; nothing to plot", run->row.id);
    return st;
}

// ---- a serving validate run

/* The numbers of a mode's `errors` (null where a measure does not apply). */
static llmsim_status report_mode_errors(report_mode *m, const cJSON *errs, diag *e)
{
    for (const cJSON *x = cJSON_IsObject(errs) ? errs->child : NULL; x; x = x->next) {
        if (!cJSON_IsNumber(x) || !x->string)
            continue;
        char **key = report_push((void **)&m->err_key, m->nerr, sizeof *key);
        if (!key || !(*key = report_strdup(x->string)))
            return diag_set(e, LLMSIM_EFAIL, "out of memory");
        double *pct = report_push((void **)&m->err_pct, m->nerr, sizeof *pct);
        if (!pct) {
            free(*key);
            *key = NULL;
            return diag_set(e, LLMSIM_EFAIL, "out of memory");
        }
        *pct = x->valuedouble;
        m->nerr++;
    }
    return LLMSIM_OK;
}

/* One mode of a serving validate result into v->modes and its serve and
 * serve-measure runs as a group; a mode without a preemption name is noted
 * and skipped. */
static llmsim_status report_mode_read(report *r, store *s, report_validate *v, const cJSON *o,
                                      size_t i, diag *e)
{
    static const char *const keys[] = {"simulated_run", "measured_run"};
    static const char *const kinds[] = {"serve", "serve-measure"};
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "preemption");
    if (!cJSON_IsObject(o) || !cJSON_IsString(name) || !name->valuestring[0])
        return report_note(&v->notes, &v->nnotes, "validate run %" PRId64 ": mode %zu has no "
                           "preemption; skipped", v->id, i + 1)
                   ? LLMSIM_OK
                   : diag_set(e, LLMSIM_EFAIL, "out of memory");
    report_mode *m = report_push((void **)&v->modes, v->nmodes, sizeof *m); /* modes are few */
    if (!m || !(m->name = report_strdup(name->valuestring)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    v->nmodes++;
    m->tput_pred = report_json_num(o, "predicted_throughput_tok_s");
    m->tput_meas = report_json_num(o, "measured_throughput_tok_s");
    llmsim_status st = report_mode_errors(m, cJSON_GetObjectItemCaseSensitive(o, "errors"), e);
    char title[320];
    snprintf(title, sizeof title, "preemption %s (validate run %" PRId64 ")", m->name, v->id);
    const report_entry ent = {"preemption", m->name, o, keys, kinds,
                              "serving iterations or requests"};
    return st ? st : report_entry_group(r, s, v, &ent, title, e);
}

/* A serving validate run (llmsim validate --serving): its result's `modes`,
 * each a serve and a serve-measure run drawn together. */
static llmsim_status report_validate_modes(report *r, store *s, const report_run *run,
                                           const cJSON *doc, const cJSON *modes, diag *e)
{
    if (cJSON_GetArraySize(modes) == 0)
        return diag_set(e, LLMSIM_EINPUT, "validate run %" PRId64 " has no preemption modes in "
                        "its result (\"modes\"); nothing to plot", run->row.id);
    report_validate *v = NULL;
    size_t i = 0;
    llmsim_status st = report_validate_new(r, run, &v, e);
    if (st == LLMSIM_OK)
        st = report_validate_head(v, run, doc, e);
    if (st == LLMSIM_OK) {
        v->serving = true;
        v->requests = report_json_num(doc, "requests");
    }
    for (const cJSON *o = modes->child; o && st == LLMSIM_OK; o = o->next, i++)
        st = report_mode_read(r, s, v, o, i, e);
    if (st == LLMSIM_OK && v->nmodes == 0)
        st = diag_set(e, LLMSIM_EINPUT, "validate run %" PRId64 ": no mode names its "
                      "preemption; nothing to plot", run->row.id);
    return st;
}

/* A validate run: serving when its result has `modes`, else policies. */
static llmsim_status report_add_validate(report *r, store *s, const report_run *run, diag *e)
{
    cJSON *doc = run->row.result_json ? cJSON_Parse(run->row.result_json) : NULL;
    const cJSON *modes = cJSON_GetObjectItemCaseSensitive(doc, "modes");
    llmsim_status st = cJSON_IsArray(modes) ? report_validate_modes(r, s, run, doc, modes, e)
                                            : report_validate_policies(r, s, run, doc, e);
    cJSON_Delete(doc);
    return st;
}

// ---- the runs asked for

/* Load every run of ids[], validate runs first in their own groups, then
 * the others grouped by job. */
llmsim_status report_load(report *r, store *s, const int64_t *ids, size_t n, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    for (size_t i = 0; i < n && st == LLMSIM_OK; i++) {
        report_run *run = NULL;
        st = report_run_get(r, s, ids[i], &run, e);
        if (st == LLMSIM_OK && report_str_eq(run->row.kind, "validate"))
            st = report_add_validate(r, s, run, e);
    }
    size_t first_direct = r->ngroups;
    for (size_t i = 0; i < n && st == LLMSIM_OK; i++) {
        report_run *run = NULL;
        st = report_run_get(r, s, ids[i], &run, e);
        if (st == LLMSIM_OK && !report_str_eq(run->row.kind, "validate"))
            st = report_add_direct(r, first_direct, run, e);
    }
    return st;
}

/* The newest validate run, for a report without RUN ids. */
llmsim_status report_default_run(store *s, const char *db, int64_t *id, diag *e)
{
    store_run_filter f = {.kind = "validate", .limit = 1};
    store_run_row *rows = NULL;
    int n = 0;
    llmsim_status st = store_runs_list(s, &f, &rows, &n, e);
    if (st == LLMSIM_OK && n == 0)
        st = diag_set(e, LLMSIM_EINPUT, "no validate run in %s; give RUN ids (see llmsim runs)",
                      db);
    if (st == LLMSIM_OK)
        *id = rows[0].id;
    store_rows_free(rows, n);
    return st;
}
