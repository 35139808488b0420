/*
 * test_sim — the plan and the discrete-event simulator.
 *
 *  - the event queue pops by time, ties in insertion order;
 *  - for a spread of policies (every tier, delegation, quantization, GQA, a
 *    CPU-only machine): the plan is well formed; every task starts after its
 *    dependencies end and lasts its duration; no resource runs two tasks at
 *    once and its busy time is the sum of its tasks; every byte allocated is
 *    released and no pool goes negative; the peak per tier is the cost
 *    model's within PEAK_TOL; each step's stage sums are the cost model's
 *    within STAGE_TOL; two runs give the same timeline;
 *  - where the analytic model's assumptions hold exactly (one resource does
 *    everything, or one transfer dominates a long pipeline), simulate and
 *    predict agree within AGREE_TOL; where they do not, the test shows why:
 *    pipeline fill with few layers (sim slower), delegated attention
 *    overlapping the next batch's GPU work (sim faster);
 *  - the load-cache stage grows with the step when the cache is offloaded;
 *  - a plan that does not fit names the tier, the task and the excess;
 *  - the trace is valid JSON with every task in it.
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/eventq.h"
#include "db/timeline.h"
#include "sim/sim.h"
#include "tap.h"

#define PEAK_TOL 0.05   /* the bound on simulated vs modelled peak memory */
#define STAGE_TOL 0.01  /* per-step stage sums: latency counts differ slightly */
#define AGREE_TOL 0.01  /* simulate vs predict where the model's assumptions hold */
#define EXACT_TOL 1e-9

static hwprofile *load_hw(const char *name)
{
    hwprofile *hw = calloc(1, sizeof *hw);
    diag e = {0};
    CHECK(hwprofile_load(name, hw, &e) == LLMSIM_OK, "%s: %s", name, e.msg);
    return hw;
}

static model load_model(const char *name)
{
    model m;
    diag e = {0};
    CHECK(model_load(name, &m, &e) == LLMSIM_OK, "%s: %s", name, e.msg);
    return m;
}

static void test_eventq(void)
{
    eventq q = {0};
    const double times[] = {3, 1, 2, 1, 3, 0.5, 2};
    for (uint32_t i = 0; i < 7; i++)
        CHECK(eventq_push(&q, times[i], i), "push");
    /* by time; equal times in the order pushed */
    const uint32_t want[] = {5, 1, 3, 2, 6, 0, 4};
    sim_event ev;
    for (int i = 0; i < 7; i++) {
        CHECK(eventq_pop(&q, &ev) && ev.task == want[i], "pop %d: task %u, want %u", i, ev.task,
              want[i]);
    }
    CHECK(!eventq_pop(&q, &ev), "empty queue pops nothing");
    /* many random events come out sorted */
    unsigned long long x = 42;
    for (uint32_t i = 0; i < 10000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        eventq_push(&q, (double)(x >> 54), i);
    }
    double last = -1;
    uint64_t last_seq = 0;
    bool sorted = true;
    while (eventq_pop(&q, &ev)) {
        sorted = sorted && (ev.time_s > last || (ev.time_s == last && ev.seq > last_seq));
        last = ev.time_s;
        last_seq = ev.seq;
    }
    CHECK(sorted, "10000 events pop in (time, seq) order");
    eventq_free(&q);
}

typedef struct sim_case {
    const char *name;
    const char *model, *hw;
    const char *pct[6];
    int gbs, ngb;
    quant wq, kq;
    bool cpu_attention;
    long long prompt, gen;
} sim_case;

static const sim_case cases[] = {
    {"flexgen-opt30b", "opt-30b", "t4-flexgen", {"20", "80", "0", "100", "0", "100"}, 48, 3,
     {0, 0}, {0, 0}, true, 512, 8},
    {"flexgen-opt175b", "opt-175b", "t4-flexgen", {"0", "50", "0", "0", "0", "100"}, 32, 8,
     {0, 0}, {0, 0}, true, 512, 8},
    {"llama70b-h100-kv-split", "llama-2-70b", "h100-80gb-sxm", {"100", "0", "50", "50", "100", "0"},
     16, 4, {4, 64}, {8, 64}, false, 1024, 6},
    {"opt13b-everything-off", "opt-13b", "l4", {"30", "40", "25", "25", "0", "50"}, 8, 4,
     {0, 0}, {0, 0}, false, 256, 6},
    {"opt13b-delegated-disk", "opt-13b", "l4", {"10", "90", "0", "50", "100", "0"}, 16, 4,
     {0, 0}, {4, 64}, true, 256, 6},
    {"llama8b-cpu-disk", "llama-3.1-8b", "cpu-only", {"0", "60", "0", "50", "0", "50"}, 4, 2,
     {0, 0}, {0, 0}, false, 128, 5},
};

static bool build(const sim_case *c, model *m, hwprofile **hw, policy *p, workload *w, plan *pl)
{
    *m = load_model(c->model);
    *hw = load_hw(c->hw);
    policy_init(p);
    diag e = {0};
    policy_from_percent(c->pct, p, &e);
    p->gpu_batch_size = c->gbs;
    p->num_gpu_batches = c->ngb;
    p->weight_quant = c->wq;
    p->kv_quant = c->kq;
    p->cpu_attention = c->cpu_attention;
    *w = (workload){c->prompt, c->gen, 0};
    llmsim_status st = plan_build(m, *hw, p, w, pl, &e);
    CHECK(st == LLMSIM_OK, "%s: plan_build: %s", c->name, e.msg);
    if (st)
        return false;
    st = plan_validate(pl, &e);
    CHECK(st == LLMSIM_OK, "%s: plan_validate: %s", c->name, e.msg);
    return st == LLMSIM_OK;
}

static const double *sort_key;
static int cmp_idx(const void *a, const void *b)
{
    double x = sort_key[*(const uint32_t *)a], y = sort_key[*(const uint32_t *)b];
    return (x > y) - (x < y);
}

/* plan_task_id formats by hand what snprintf would, cut like snprintf. */
static void check_task_ids(const char *name, const plan *pl)
{
    size_t bad = 0;
    for (size_t i = 0; i < pl->ntasks; i++) {
        const plan_task *t = &pl->tasks[i];
        char layer[16], want[96], got[96], cut_want[9], cut_got[9];
        if (t->layer == pl->nlayers)
            snprintf(layer, sizeof layer, "head");
        else
            snprintf(layer, sizeof layer, "l%d", t->layer);
        if (t->batch < 0)
            snprintf(want, sizeof want, "s%d.%s.%s", t->step, layer, plan_kind_names[t->kind]);
        else
            snprintf(want, sizeof want, "s%d.%s.b%d.%s", t->step, layer, t->batch,
                     plan_kind_names[t->kind]);
        plan_task_id(pl, i, got, sizeof got);
        snprintf(cut_want, sizeof cut_want, "%s", want);
        plan_task_id(pl, i, cut_got, sizeof cut_got);
        bad += strcmp(want, got) != 0 || strcmp(cut_want, cut_got) != 0;
    }
    CHECK(bad == 0, "%s: %zu task ids differ from their printf form", name, bad);
}

/* Samples by time, then tier. */
static int cmp_sample(const void *a, const void *b)
{
    const store_mem_sample *x = a, *y = b;
    if (x->time_s != y->time_s)
        return x->time_s < y->time_s ? -1 : 1;
    return strcmp(x->tier, y->tier);
}

/* The stored memory timeline from the simulator's samples is the one rebuilt
 * from the task times: the same instants and tiers, the same bytes (but for
 * the rounding of sums taken in another order). */
static void check_timelines(const char *name, const plan *pl, const sim_result *r, double peak)
{
    store_mem_sample *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    diag e = {0};
    CHECK(timeline_memory_sim(r, &a, &na, &e) == LLMSIM_OK &&
              timeline_memory(pl, r->start_s, r->end_s, &b, &nb, &e) == LLMSIM_OK,
          "%s: timelines: %s", name, e.msg);
    CHECK(na == nb && na > 0, "%s: %zu samples from the simulator, %zu from the task times", name,
          na, nb);
    if (a && b && na == nb) {
        qsort(a, na, sizeof *a, cmp_sample);
        qsort(b, nb, sizeof *b, cmp_sample);
        size_t bad = 0;
        for (size_t i = 0; i < na; i++)
            bad += a[i].time_s != b[i].time_s || strcmp(a[i].tier, b[i].tier) != 0 ||
                   fabs(a[i].bytes - b[i].bytes) > 1e-9 * peak;
        CHECK(bad == 0, "%s: %zu samples differ", name, bad);
    }
    free(a);
    free(b);
}

static void check_invariants(const sim_case *c)
{
    model m;
    hwprofile *hw;
    policy p;
    workload w;
    plan pl;
    if (!build(c, &m, &hw, &p, &w, &pl)) {
        free(hw);
        return;
    }
    double inf[TIER_COUNT] = {1e300, 1e300, 1e300};
    sim_result r, r2;
    diag e = {0};
    CHECK(sim_run(&pl, inf, true, &r, &e) == LLMSIM_OK, "%s: %s", c->name, e.msg);
    /* dependencies and durations */
    bool deps_ok = true, dur_ok = true;
    for (size_t i = 0; i < pl.ntasks; i++) {
        const plan_task *t = &pl.tasks[i];
        dur_ok = dur_ok && fabs(r.end_s[i] - r.start_s[i] - t->dur_s) <= 1e-9 * (1 + t->dur_s + r.end_s[i]);
        for (uint32_t d = 0; d < t->ndeps; d++)
            deps_ok = deps_ok && r.start_s[i] >= r.end_s[pl.deps[t->dep_first + d]];
    }
    CHECK(deps_ok, "%s: a task started before one of its dependencies ended", c->name);
    CHECK(dur_ok, "%s: a task did not last its duration", c->name);
    /* one task at a time per resource; busy = sum of durations */
    uint32_t *idx = malloc(sizeof *idx * pl.ntasks);
    for (int res = 0; res < PLAN_NRES; res++) {
        size_t n = 0;
        double sum = 0;
        for (size_t i = 0; i < pl.ntasks; i++)
            if (pl.tasks[i].res == res) {
                idx[n++] = (uint32_t)i;
                sum += pl.tasks[i].dur_s;
            }
        sort_key = r.start_s;
        qsort(idx, n, sizeof *idx, cmp_idx);
        bool overlap = false;
        for (size_t k = 1; k < n; k++)
            overlap = overlap || r.start_s[idx[k]] < r.end_s[idx[k - 1]] - 1e-12 * (1 + r.end_s[idx[k - 1]]);
        CHECK(!overlap, "%s: two tasks at once on %s", c->name, plan_res_names[res]);
        CHECK_REL(r.busy_s[res], sum, EXACT_TOL, "busy time = sum of task durations");
        CHECK(r.busy_s[res] <= r.makespan_s * (1 + 1e-12), "%s: %s busy longer than the run", c->name,
              plan_res_names[res]);
    }
    free(idx);
    /* conservation: every byte allocated is released, no pool negative */
    double peak_all = r.peak_bytes[0] + r.peak_bytes[1] + r.peak_bytes[2];
    for (int t = 0; t < TIER_COUNT; t++)
        CHECK(fabs(r.final_bytes[t]) <= 1e-9 * peak_all, "%s: %s holds %g bytes at the end", c->name,
              tier_names[t], r.final_bytes[t]);
    bool negative = false;
    for (size_t k = 0; k < r.nmem; k++)
        negative = negative || r.mem[k].bytes < -1e-9 * peak_all;
    CHECK(!negative, "%s: a memory pool went negative", c->name);
    check_timelines(c->name, &pl, &r, peak_all);
    check_task_ids(c->name, &pl);
    /* peak memory and step stages against the cost model */
    cm_result cr;
    CHECK(cm_predict(&m, hw, &p, &w, &cr, &e) == LLMSIM_OK, "%s", e.msg);
    for (int t = 0; t < TIER_COUNT; t++) {
        double a = r.peak_bytes[t], b = cr.peak_bytes[t];
        CHECK(fabs(a - b) <= PEAK_TOL * fmax(a, b) + 1.0, "%s: %s peak: simulated %.6g, modelled %.6g",
              c->name, tier_names[t], a, b);
    }
    for (int j = 0; j < r.nsteps; j++)
        for (int k = 0; k < CM_NSTAGES; k++) {
            double a = r.steps[j].s[k], b = cr.steps[j].s[k];
            CHECK(fabs(a - b) <= STAGE_TOL * fmax(a, b) + 1e-9, "%s: step %d %s: simulated %.6g, "
                  "modelled %.6g", c->name, j, cm_stage_names[k], a, b);
        }
    /* deterministic */
    CHECK(sim_run(&pl, inf, false, &r2, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(memcmp(r.start_s, r2.start_s, sizeof(double) * pl.ntasks) == 0 &&
              memcmp(r.end_s, r2.end_s, sizeof(double) * pl.ntasks) == 0,
          "%s: two runs gave different timelines", c->name);
    printf("# %s: %zu tasks, sim %.6g s, predict %.6g s per block (%+.2f%%); peak gpu %.4g/%.4g GB\n",
           c->name, pl.ntasks, r.makespan_s, cr.total_s / cr.blocks,
           100 * (r.makespan_s / (cr.total_s / cr.blocks) - 1), r.peak_bytes[0] / 1e9,
           cr.peak_bytes[0] / 1e9);
    cm_result_free(&cr);
    sim_result_free(&r);
    sim_result_free(&r2);
    plan_free(&pl);
    free(hw);
}

/* simulate and predict, one block each */
static void both(const model *m, const hwprofile *hw, const policy *p, const workload *w,
                 double *sim_s, double *pred_s, sim_result *keep)
{
    diag e = {0};
    plan pl;
    sim_result r;
    cm_result cr;
    *sim_s = *pred_s = NAN;
    if (keep) /* empty if the plan fails: the caller reads and frees it */
        *keep = (sim_result){0};
    if (plan_build(m, hw, p, w, &pl, &e) != LLMSIM_OK) {
        CHECK(false, "plan_build: %s", e.msg);
        return;
    }
    double inf[TIER_COUNT] = {1e300, 1e300, 1e300};
    CHECK(sim_run(&pl, inf, false, &r, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(cm_predict(m, hw, p, w, &cr, &e) == LLMSIM_OK, "%s", e.msg);
    *sim_s = r.makespan_s;
    *pred_s = cr.total_s / cr.blocks;
    cm_result_free(&cr);
    if (keep)
        *keep = r;
    else
        sim_result_free(&r);
    plan_free(&pl);
}

static void test_agreement(void)
{
    model m = load_model("opt-6.7b");
    hwprofile *hw = load_hw("a100-80gb-sxm");
    workload w = {512, 16, 0};
    policy p;
    policy_init(&p);
    p.gpu_batch_size = 8;
    p.num_gpu_batches = 4;
    double s, pr;
    /* everything on the GPU: one resource does all the work, in series, as
     * the model adds it */
    both(&m, hw, &p, &w, &s, &pr, NULL);
    CHECK_REL(s, pr, AGREE_TOL, "all on the GPU: simulate vs predict");
    /* weights streamed from the CPU over a slow link, compute negligible:
     * one transfer dominates every layer of a long pipeline */
    hw->links[HW_LINK_H2D_PINNED].bandwidth_Bps = 1e9;
    hw->links[HW_LINK_H2D_PINNED].latency_s = 0;
    p.weights = (placement){{0, 1, 0}};
    w.gen_len = 64;
    both(&m, hw, &p, &w, &s, &pr, NULL);
    CHECK_REL(s, pr, AGREE_TOL, "weights streamed over a slow link: simulate vs predict");
    CHECK(s >= pr, "the simulation is never faster than the sum of the bottleneck's work");

    /* where they differ 1: pipeline fill and drain. Two layers, weights on the
     * CPU, the prefill only: the first layer's load has nothing to overlap
     * and the last layer's compute nothing after it; the model assumes every
     * layer's load hides under a compute. */
    model tiny = m;
    tiny.num_layers = 2;
    w.gen_len = 1;
    hw->links[HW_LINK_H2D_PINNED].bandwidth_Bps = 14e9; /* a layer's load ~ its compute */
    both(&tiny, hw, &p, &w, &s, &pr, NULL);
    CHECK(s > pr * (1 + AGREE_TOL), "pipeline fill: sim %.6g s should exceed predict %.6g s", s, pr);
    free(hw);
}

static void test_delegation_overlap(void)
{
    /* where they differ 2: with CPU attention the model adds GPU and CPU time
     * (FlexGen runs them in series); the plan lets the GPU run the next
     * batch while the CPU attends, so the sim is faster, but never faster
     * than the busier of the two. */
    model m = load_model("opt-30b");
    hwprofile *hw = load_hw("t4-flexgen");
    policy p;
    policy_init(&p);
    const char *pct[6] = {"20", "80", "0", "100", "0", "100"};
    diag e = {0};
    policy_from_percent(pct, &p, &e);
    p.gpu_batch_size = 48;
    p.num_gpu_batches = 3;
    p.cpu_attention = true;
    workload w = {512, 16, 0};
    double s, pr;
    sim_result r;
    both(&m, hw, &p, &w, &s, &pr, &r);
    CHECK(s < pr, "delegated attention overlaps: sim %.6g s should be below predict %.6g s", s, pr);
    CHECK(s >= fmax(r.busy_s[PLAN_RES_GPU], r.busy_s[PLAN_RES_CPU]), "sim below the busiest resource");
    sim_result_free(&r);
    free(hw);
}

static void test_load_cache_grows(void)
{
    model m = load_model("opt-6.7b");
    hwprofile *hw = load_hw("a100-40gb-pcie");
    policy p;
    policy_init(&p);
    p.weights = (placement){{0, 1, 0}};
    p.kv_cache = (placement){{0, 1, 0}};
    p.gpu_batch_size = 16;
    p.num_gpu_batches = 2;
    workload w = {256, 12, 0};
    plan pl;
    diag e = {0};
    sim_result r;
    double inf[TIER_COUNT] = {1e300, 1e300, 1e300};
    CHECK(plan_build(&m, hw, &p, &w, &pl, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(sim_run(&pl, inf, false, &r, &e) == LLMSIM_OK, "%s", e.msg);
    double d1 = r.steps[2].s[CM_STAGE_LOAD_CACHE] - r.steps[1].s[CM_STAGE_LOAD_CACHE];
    CHECK(d1 > 0, "load cache grows from step 1 to 2");
    for (int j = 2; j < r.nsteps; j++) {
        double d = r.steps[j].s[CM_STAGE_LOAD_CACHE] - r.steps[j - 1].s[CM_STAGE_LOAD_CACHE];
        CHECK_REL(d, d1, 1e-6, "load cache grows by the same amount every step");
        CHECK_REL(r.steps[j].s[CM_STAGE_LOAD_WEIGHT], r.steps[1].s[CM_STAGE_LOAD_WEIGHT], 1e-12,
                  "load weight is the same every step");
    }
    sim_result_free(&r);
    plan_free(&pl);
    free(hw);
}

static void test_overflow_and_trace(void)
{
    model m = load_model("opt-1.3b");
    hwprofile *hw = load_hw("t4-flexgen");
    policy p;
    policy_init(&p); /* everything on the GPU */
    p.gpu_batch_size = 64;
    p.num_gpu_batches = 8;
    workload w = {1024, 4, 0};
    plan pl;
    diag e = {0};
    sim_result r;
    CHECK(plan_build(&m, hw, &p, &w, &pl, &e) == LLMSIM_OK, "%s", e.msg);
    double cap[TIER_COUNT] = {hw->gpu.memory_bytes, hw->cpu.memory_bytes, hw->disk.capacity_bytes};
    CHECK(sim_run(&pl, cap, true, &r, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(!r.fits && r.overflow_tier == TIER_GPU, "512 sequences of 1k tokens overflow a T4");
    CHECK_REL(r.overflow_bytes, r.peak_bytes[TIER_GPU] - cap[TIER_GPU], 1e-9,
              "the excess is the peak less the capacity");
    cm_result cr;
    CHECK(cm_predict(&m, hw, &p, &w, &cr, &e) == LLMSIM_OK && !cr.feasible &&
              cr.overflow_tier == TIER_GPU, "predict agrees that the GPU overflows");
    cm_result_free(&cr);

    /* the trace: valid JSON, every task once, counters for memory */
    char path[] = "/tmp/llmsim-trace-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    CHECK(sim_trace_write(&pl, &r, "test \"title\"", path, &e) == LLMSIM_OK, "%s", e.msg);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    CHECK(fread(text, 1, (size_t)n, f) == (size_t)n, "read trace");
    text[n] = '\0';
    fclose(f);
    cJSON *doc = cJSON_Parse(text);
    CHECK(doc != NULL, "the trace is valid JSON");
    cJSON *ev = cJSON_GetObjectItemCaseSensitive(doc, "traceEvents");
    size_t complete = 0, counters = 0;
    char *seen = calloc(pl.ntasks, 1);
    cJSON *it;
    cJSON_ArrayForEach(it, ev)
    {
        const char *ph = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "ph"));
        if (ph && strcmp(ph, "X") == 0) {
            complete++;
            const char *id = cJSON_GetStringValue(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(it, "args"), "id"));
            (void)id;
        } else if (ph && strcmp(ph, "C") == 0) {
            counters++;
        }
    }
    CHECK(complete == pl.ntasks, "trace has %zu task events, the plan %zu tasks", complete, pl.ntasks);
    CHECK(counters == r.nmem && counters > 0, "trace has a counter sample per memory change");
    /* every task id appears: ids are unique, so count distinct */
    size_t distinct = 0;
    char id[96];
    for (size_t i = 0; i < pl.ntasks; i++) {
        plan_task_id(&pl, i, id, sizeof id);
        char needle[128];
        snprintf(needle, sizeof needle, "\"id\":\"%s\"", id);
        if (strstr(text, needle)) {
            seen[i] = 1;
            distinct++;
        }
    }
    CHECK(distinct == pl.ntasks, "every task id is in the trace (%zu of %zu)", distinct, pl.ntasks);
    free(seen);
    cJSON_Delete(doc);
    free(text);
    unlink(path);
    sim_result_free(&r);
    plan_free(&pl);
    free(hw);
}

static void test_no_overlap(void)
{
    /* overlap: false lowers to a chain: the simulated time is the sum of
     * every task, and above the overlapped plan's */
    model m = load_model("opt-1.3b");
    hwprofile *hw = load_hw("cpu-only");
    policy p;
    policy_init(&p);
    p.weights = (placement){{0, 0.5, 0.5}};
    p.kv_cache = (placement){{0, 0, 1}};
    p.activations = (placement){{0, 1, 0}};
    p.gpu_batch_size = 2;
    p.num_gpu_batches = 2;
    workload w = {16, 4, 0};
    double over = 0;
    for (int serial = 0; serial < 2; serial++) {
        p.overlap = !serial;
        double s, pr;
        sim_result r;
        both(&m, hw, &p, &w, &s, &pr, &r);
        double busy = 0;
        for (int k = 0; k < PLAN_NRES; k++)
            busy += r.busy_s[k];
        if (serial) {
            CHECK_REL(r.makespan_s, busy, 1e-9, "serial plan: makespan is the sum of the tasks");
            CHECK(r.makespan_s > 1.05 * over, "serial %.6g s above overlapped %.6g s", r.makespan_s, over);
        } else {
            over = r.makespan_s;
            CHECK(over < 0.95 * busy, "overlapped plan below the sum of its tasks");
        }
        sim_result_free(&r);
    }
    free(hw);
}

/* Without a GPU, transfers beside the compute slow it: each compute task
 * grows by the loss of its share of the disk bytes, at most the loss of a
 * disk streaming for the whole task; nothing without overlap. The cost
 * model adds the same loss, linear in the bytes, so where the compute is
 * the bottleneck both grow alike. */
static void test_io_loss(void)
{
    model m = load_model("opt-1.3b");
    hwprofile *hw = load_hw("cpu-only");
    policy p;
    policy_init(&p);
    /* weights and cache in RAM, hidden states on disk: few bytes cross, the
     * compute is the bottleneck */
    p.weights = (placement){{0, 1, 0}};
    p.kv_cache = (placement){{0, 1, 0}};
    p.activations = (placement){{0, 0, 1}};
    p.gpu_batch_size = 4;
    workload w = {16, 4, 0};
    const double lr = 0.1, lw = 0.2; /* s per GB */
    for (int overlap = 0; overlap < 2; overlap++) {
        p.overlap = overlap;
        plan a, b;
        diag e = {0};
        hw->disk.read_loss_s_per_GB = hw->disk.write_loss_s_per_GB = 0;
        if (plan_build(&m, hw, &p, &w, &a, &e) != LLMSIM_OK) {
            CHECK(false, "plan_build: %s", e.msg);
            break;
        }
        hw->disk.read_loss_s_per_GB = lr;
        hw->disk.write_loss_s_per_GB = lw;
        if (plan_build(&m, hw, &p, &w, &b, &e) != LLMSIM_OK) {
            CHECK(false, "plan_build: %s", e.msg);
            plan_free(&a);
            break;
        }
        CHECK(a.ntasks == b.ntasks, "the loss changes no task");
        double grown = 0, rd = 0, wr = 0, capmax = 0;
        bool within = true;
        for (size_t i = 0; i < a.ntasks && a.ntasks == b.ntasks; i++) {
            const plan_task *t = &b.tasks[i];
            double d = t->dur_s - a.tasks[i].dur_s;
            if (t->res == PLAN_RES_DISK && t->kind == PLAN_W_DISK)
                rd += t->bytes;
            else if (t->kind == PLAN_C_DISK || t->kind == PLAN_A_DISK)
                rd += t->bytes;
            else if (t->kind == PLAN_C_WRITE || t->kind == PLAN_A_WRITE)
                wr += t->bytes;
            double cap = a.tasks[i].dur_s *
                         fmax(hw->disk.read.bandwidth_Bps * lr, hw->disk.write.bandwidth_Bps * lw) /
                         1e9;
            within &= d >= 0 && d <= cap * (1 + 1e-9) + 1e-15;
            within &= d == 0 || t->kind == PLAN_COMPUTE || t->kind == PLAN_HEAD;
            capmax = fmax(capmax, cap);
            grown += d;
        }
        CHECK(within, "overlap %d: a task grew beyond its cap, or a task that is not compute grew",
              overlap);
        if (!overlap) {
            CHECK(grown == 0, "no overlap: nothing runs beside a transfer, nothing lost (%g s)",
                  grown);
        } else {
            CHECK(rd > 0 && wr > 0, "fixture: reads and writes on disk (%g, %g B)", rd, wr);
            CHECK_REL(grown, (rd * lr + wr * lw) / 1e9, 1e-6,
                      "compute-bound: every byte's loss is charged once");
        }
        plan_free(&a);
        plan_free(&b);
        /* the cost model grows by the same */
        double s0, p0, s1, p1;
        hw->disk.read_loss_s_per_GB = hw->disk.write_loss_s_per_GB = 0;
        both(&m, hw, &p, &w, &s0, &p0, NULL);
        hw->disk.read_loss_s_per_GB = lr;
        hw->disk.write_loss_s_per_GB = lw;
        both(&m, hw, &p, &w, &s1, &p1, NULL);
        if (!overlap) {
            CHECK(s1 == s0 && p1 == p0, "no overlap: simulated and predicted unchanged");
        } else {
            CHECK(s1 > s0 && p1 > p0, "the loss slows the block (sim %g -> %g, model %g -> %g)", s0,
                  s1, p0, p1);
            CHECK_REL(p1 - p0, s1 - s0, 0.05, "the cost model's loss matches the simulator's");
        }
    }
    free(hw);
}

int main(void)
{
    test_eventq();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_invariants(&cases[i]);
    test_agreement();
    test_delegation_overlap();
    test_no_overlap();
    test_io_loss();
    test_load_cache_grows();
    test_overflow_and_trace();
    return tap_done();
}
