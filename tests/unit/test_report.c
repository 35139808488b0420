/*
 * test_report — the figures of `llmsim report` for serving runs, built from
 * runs made here (no store, no gnuplot): the latency CDFs (which requests
 * count, their order, the fractions, the unit), the KV blocks per iteration,
 * the preemption timeline (only iterations that preempted), the notes for
 * what a run lacks, a serving validation's lines per mode, and that a group
 * of offline runs gets none of the serving figures.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"
#include "tap.h"

static report_run *run_new(report *r, const char *kind, int64_t id)
{
    report_run *run = calloc(1, sizeof *run);
    report_run **slot = report_push((void **)&r->runs, r->nruns, sizeof *slot);
    if (!run || !slot || !(run->row.kind = strdup(kind)))
        abort();
    run->row.id = id;
    *slot = run;
    r->nruns++;
    return run;
}

static void run_reqs(report_run *run, const store_serve_request *q, size_t n)
{
    run->reqs = malloc(n * sizeof *q);
    if (!run->reqs)
        abort();
    memcpy(run->reqs, q, n * sizeof *q);
    run->nreqs = n;
}

static void run_iters(report_run *run, const serve_iter_row *it, size_t n)
{
    run->iters = malloc(n * sizeof *it);
    if (!run->iters)
        abort();
    memcpy(run->iters, it, n * sizeof *it);
    run->niters = n;
}

static report_group *group_new(report *r, const char *title, int64_t validate_id)
{
    report_group *g = report_push((void **)&r->groups, r->ngroups, sizeof *g);
    if (!g || !(g->title = strdup(title)))
        abort();
    g->validate_id = validate_id;
    r->ngroups++;
    return g;
}

static const report_fig *fig_named(const report *r, const char *name)
{
    for (size_t i = 0; i < r->nfigs; i++)
        if (strcmp(r->figs[i].name, name) == 0)
            return &r->figs[i];
    return NULL;
}

/* A predicted and a measured serving run of one job, as one group. */
static void serving_pair(report *r)
{
    const double none = NAN;
    report_run *pred = run_new(r, "serve", 1), *meas = run_new(r, "serve-measure", 2);
    const store_serve_request pq[] = {
        /* binary fractions: the ties below are exact */
        {.req = 1, .arrival_s = 0, .first_token_s = 0.125, .finish_s = 0.5, .output_tokens = 4},
        {.req = 2, .arrival_s = 0.0625, .first_token_s = 0.3125, .finish_s = 0.3125,
         .output_tokens = 1},
        {.req = 3, .arrival_s = 0.125, .first_token_s = none, .finish_s = none, .output_tokens = 3},
        {.req = 4, .arrival_s = 0.25, .first_token_s = 0.375, .finish_s = 0.625,
         .output_tokens = 3},
    };
    const store_serve_request mq[] = {
        {.req = 1, .arrival_s = 0, .first_token_s = 0.15, .finish_s = 0.15, .output_tokens = 1},
        {.req = 2, .arrival_s = 0.05, .first_token_s = 0.2, .finish_s = 0.2, .output_tokens = 1},
    };
    const serve_iter_row pi[] = {
        {.start_s = 0, .end_s = 0.125, .dev_blocks = 1},
        {.start_s = 0.125, .end_s = 0.25, .dev_blocks = 2, .swap_blocks = 1, .preempt_swap = 1},
        {.start_s = 0.375, .end_s = 0.5},
    };
    const serve_iter_row mi[] = {{.start_s = 0, .end_s = 0.25, .dev_blocks = 3}};
    run_reqs(pred, pq, 4);
    run_reqs(meas, mq, 2);
    run_iters(pred, pi, 3);
    run_iters(meas, mi, 1);
    report_group *g = group_new(r, "job", 0);
    g->panel[0] = pred;
    g->panel[1] = meas;
    g->npanels = 2;
}

static void test_cdfs(const report *r)
{
    const report_fig *ttft = fig_named(r, "ttft_1"), *tpot = fig_named(r, "tpot_1"),
                     *e2e = fig_named(r, "e2e_1");
    CHECK(ttft && tpot && e2e, "the three CDFs are drawn");
    if (!ttft || !tpot || !e2e)
        return;
    const report_table *t = &ttft->table;
    CHECK(t->ncols == 3 && strcmp(t->head[0], "TTFT (ms)") == 0 &&
              strcmp(t->head[1], "fraction of requests") == 0 && strcmp(t->head[2], "request") == 0,
          "TTFT columns: %s, ...", t->ncols ? t->head[0] : "none");
    /* predicted: requests 1, 4 (0.125 s), 2 (0.25 s); 3 has no first token */
    CHECK(t->nrows == 5, "a TTFT row per request with a first token (%zu)", t->nrows);
    if (t->nrows == 5) {
        CHECK(t->rows[0].v[2] == 1 && t->rows[1].v[2] == 4 && t->rows[2].v[2] == 2,
              "ascending, ties by request");
        CHECK_REL(t->rows[0].v[0], 125, 1e-12, "0.125 s in ms");
        CHECK_REL(t->rows[1].v[1], 2.0 / 3, 1e-12, "fraction of the run's requests");
        CHECK(t->rows[2].v[1] == 1 && t->rows[4].v[1] == 1, "each run's curve ends at 1");
        CHECK(t->rows[2].block == 0 && t->rows[3].block == 1, "one block per run");
        CHECK(strcmp(t->rows[3].label, "measured (run 2)") == 0, "label %s", t->rows[3].label);
    }
    /* TPOT: only predicted requests 1 and 4 have 2 or more output tokens */
    CHECK(tpot->table.nrows == 2 && tpot->table.rows[1].block == 0, "TPOT rows %zu",
          tpot->table.nrows);
    CHECK(tpot->table.nrows == 2 && tpot->table.rows[0].v[0] == 125,
          "TPOT (0.5 - 0.125) / 3 = 125 ms");
    CHECK(strstr(strbuf_str(&tpot->gp), "index 0") && !strstr(strbuf_str(&tpot->gp), "index 1"),
          "a run without TPOT has no curve");
    CHECK(e2e->table.nrows == 5, "e2e rows %zu", e2e->table.nrows);
    strbuf dat = {0};
    report_table_dat(ttft, &dat);
    CHECK(strstr(strbuf_str(&dat), "# \"series\" \"TTFT (ms)\" \"fraction of requests\" "
                                   "\"request\"\n") != NULL,
          "the .dat names its columns");
    strbuf_free(&dat);
}

static void test_timelines(const report *r)
{
    const report_fig *kv = fig_named(r, "kv_1"), *pre = fig_named(r, "preempt_1");
    CHECK(kv && pre, "the KV and preemption figures are drawn");
    if (!kv || !pre)
        return;
    CHECK(kv->table.ncols == 4 && kv->table.nrows == 4, "a KV row per iteration (%zu)",
          kv->table.nrows);
    if (kv->table.nrows == 4)
        CHECK(kv->table.rows[1].v[0] == 125 && kv->table.rows[1].v[1] == 250 &&
                  kv->table.rows[1].v[2] == 2 && kv->table.rows[1].v[3] == 1 &&
                  kv->table.rows[3].block == 1,
              "start, end (ms), device and swap blocks");
    CHECK(strstr(strbuf_str(&kv->gp), "with steps") && strstr(strbuf_str(&kv->gp), "vectors"),
          "KV: a step plot over each iteration");
    CHECK(pre->table.nrows == 1 && pre->table.rows[0].v[1] == 1 && pre->table.rows[0].v[2] == 0,
          "only the iteration that preempted (%zu rows)", pre->table.nrows);
    CHECK(strstr(strbuf_str(&pre->gp), "no preemptions") != NULL, "an empty panel says so");
}

static void test_serving_group(void)
{
    report r = {0};
    serving_pair(&r);
    diag e;
    diag_clear(&e);
    CHECK(report_figs_build(&r, &e) == LLMSIM_OK, "build: %s", e.msg);
    CHECK(r.nfigs == 5 && r.nsections == 1, "five figures, one section (%zu, %zu)", r.nfigs,
          r.nsections);
    test_cdfs(&r);
    test_timelines(&r);
    const char *tail = r.nsections ? strbuf_str(&r.sections[0].tail) : "";
    CHECK(strstr(tail, "measured (run 2): no request has 2 or more output tokens") != NULL,
          "note: no TPOT (%s)", tail);
    CHECK(strstr(tail, "measured (run 2): no preemptions") != NULL, "note: no preemptions");
    report_free(&r);
}

static void test_serving_validate(void)
{
    report r = {0};
    serving_pair(&r);
    r.groups[0].validate_id = 7;
    report_validate *v = report_push((void **)&r.vals, 0, sizeof *v);
    report_mode *m = v ? report_push((void **)&v->modes, 0, sizeof *m) : NULL;
    char **key = m ? report_push((void **)&m->err_key, 0, sizeof *key) : NULL;
    double *pct = key ? report_push((void **)&m->err_pct, 0, sizeof *pct) : NULL;
    if (!pct || !(m->name = strdup("swap")) || !(*key = strdup("throughput")))
        abort();
    r.nvals = v->nmodes = m->nerr = 1;
    v->id = 7;
    v->serving = true;
    v->mape = v->mape_predicted = NAN;
    v->requests = 4;
    m->tput_pred = 10;
    m->tput_meas = 5;
    *pct = 100;
    diag e;
    diag_clear(&e);
    CHECK(report_figs_build(&r, &e) == LLMSIM_OK, "build: %s", e.msg);
    CHECK(r.nsections == 2 &&
              strcmp(r.sections[0].heading, "Serving validation: validate run 7") == 0,
          "a section for the validation, one for its mode");
    CHECK(r.nsections == 2 && r.sections[0].nfigs == 0 && r.sections[1].nfigs == 5,
          "the figures are the mode's");
    const char *text = r.nsections ? strbuf_str(&r.sections[0].text) : "";
    CHECK(strstr(text, "preemption swap: throughput 10 tok/s predicted, 5 measured; errors (%): "
                       "throughput +100.0\n") != NULL,
          "the mode's line: %s", text);
    report_free(&r);
}

static void test_offline_group(void)
{
    report r = {0};
    report_run *sim = run_new(&r, "simulate", 3);
    sim->steps = calloc(1, sizeof *sim->steps);
    if (!sim->steps)
        abort();
    sim->nsteps = 1;
    sim->steps[0].step = 1;
    for (int k = 0; k < CM_NSTAGES; k++)
        sim->steps[0].s[k] = 0.001;
    report_group *g = group_new(&r, "offline", 0);
    g->panel[0] = sim;
    g->npanels = 1;
    diag e;
    diag_clear(&e);
    CHECK(report_figs_build(&r, &e) == LLMSIM_OK, "build: %s", e.msg);
    CHECK(r.nfigs == 1 && strcmp(r.figs[0].name, "stages_1") == 0,
          "an offline run: its stage figure only (%zu figures)", r.nfigs);
    CHECK(r.nsections == 1 && strcmp(strbuf_str(&r.sections[0].tail),
                                     "simulated (run 3): no memory timeline recorded\n") == 0,
          "its one note: no memory timeline");
    report_free(&r);
}

int main(void)
{
    test_serving_group();
    test_serving_validate();
    test_offline_group();
    return tap_done();
}
