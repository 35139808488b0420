/*
 * test_search — the LP search against the cost model it is built from.
 *
 * 1. For fixed discrete choices, the LP optimum, priced by the cost model,
 *    is never worse than any policy on a 5% grid of the nine fractions that
 *    fits the same memory, and within GRID_GAP_TOL of the grid's best.
 * 2. The LP's objective equals the cost model's prediction for the fractions
 *    it returns (before rounding) within LP_MODEL_TOL.
 * 3. The whole search: the policy it returns is feasible, what it reports is
 *    what `predict` computes for that policy, and it is at least as good as
 *    FlexGen's published policies under llmsim's model.
 * 4. Impossible setups and broken inputs are reported, not skipped.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/search.h"
#include "tap.h"

/* the LP is exact (one variable per decode step when gen_len - 1 <= 8) */
#define LP_MODEL_TOL 1e-3
/* a 5% grid gets within this of the continuous optimum */
#define GRID_GAP_TOL 0.01
/* "never worse": the LP may beat the grid by any amount, lose by rounding only */
#define NEVER_WORSE_TOL 1e-5 /* the LP's tie-break toward faster tiers costs ppm */
#define GRID_STEPS 20 /* 5% */

static model load_model(const char *name)
{
    model m;
    diag e;
    diag_clear(&e);
    CHECK(model_load(name, &m, &e) == LLMSIM_OK, "%s: %s", name, e.msg);
    return m;
}

static hwprofile *load_hw(const char *name)
{
    hwprofile *hw = calloc(1, sizeof *hw);
    diag e;
    diag_clear(&e);
    CHECK(hwprofile_load(name, hw, &e) == LLMSIM_OK, "%s: %s", name, e.msg);
    return hw;
}

/* Every form the grid needs, evaluated fast by splitting each dot product
 * into its weights / cache / activations parts. */
typedef struct forms {
    int n;            /* time forms: groups of CM_NTERMS */
    cm_lin f[64];
    double weight[16]; /* multiplier of each group in the block time */
    cm_lin mem[TIER_COUNT];
    double usable[TIER_COUNT];
} forms;

static void add_group(forms *F, const cm_layer_cost *c, double weight)
{
    int g = F->n / CM_NTERMS;
    for (int t = 0; t < CM_NTERMS; t++)
        F->f[F->n++] = c->term[t];
    F->weight[g] = weight;
}

static void build_forms(const cm_setup *s, double headroom, forms *F)
{
    memset(F, 0, sizeof *F);
    const double L = (double)s->m->num_layers, sl = (double)s->w.prompt_len;
    cm_layer_cost c;
    cm_layer_cost_get(s, CM_PHASE_PREFILL, sl, &c);
    add_group(F, &c, L);
    cm_head_cost_get(s, CM_PHASE_PREFILL, &c);
    add_group(F, &c, 1.0);
    for (long j = 1; j < s->w.gen_len; j++) {
        cm_layer_cost_get(s, CM_PHASE_DECODE, sl + (double)j, &c);
        add_group(F, &c, L);
        cm_head_cost_get(s, CM_PHASE_DECODE, &c);
        add_group(F, &c, 1.0);
    }
    cm_peak_memory(s, F->mem);
    for (int t = 0; t < TIER_COUNT; t++)
        F->usable[t] = cm_tier_capacity(s, (tier)t) * (1 - headroom);
}

/* Best block time over the 5% grid (INFINITY if nothing fits). */
static double grid_best(const forms *F, bool no_disk)
{
    double best = INFINITY;
    int ng = F->n / CM_NTERMS;
    assert(F->n <= 64);
    /* zeroed for the static analyzer, which cannot tie ng to F->n */
    double partw[64] = {0}, partc[64] = {0}, memw[TIER_COUNT], memc[TIER_COUNT];
    for (int wg = 0; wg <= GRID_STEPS; wg++)
    for (int wc = 0; wc <= GRID_STEPS - wg; wc++) {
        int wd = GRID_STEPS - wg - wc;
        if (no_disk && wd)
            continue;
        double w[3] = {wg / (double)GRID_STEPS, wc / (double)GRID_STEPS, wd / (double)GRID_STEPS};
        for (int i = 0; i < F->n; i++)
            partw[i] = F->f[i].c0 + F->f[i].c[0] * w[0] + F->f[i].c[1] * w[1] + F->f[i].c[2] * w[2];
        for (int t = 0; t < TIER_COUNT; t++)
            memw[t] = F->mem[t].c0 + F->mem[t].c[0] * w[0] + F->mem[t].c[1] * w[1] + F->mem[t].c[2] * w[2];
        for (int cg = 0; cg <= GRID_STEPS; cg++)
        for (int cc = 0; cc <= GRID_STEPS - cg; cc++) {
            int cd = GRID_STEPS - cg - cc;
            if (no_disk && cd)
                continue;
            double c[3] = {cg / (double)GRID_STEPS, cc / (double)GRID_STEPS, cd / (double)GRID_STEPS};
            for (int i = 0; i < F->n; i++)
                partc[i] = partw[i] + F->f[i].c[3] * c[0] + F->f[i].c[4] * c[1] + F->f[i].c[5] * c[2];
            for (int t = 0; t < TIER_COUNT; t++)
                memc[t] = memw[t] + F->mem[t].c[3] * c[0] + F->mem[t].c[4] * c[1] + F->mem[t].c[5] * c[2];
            for (int hg = 0; hg <= GRID_STEPS; hg++)
            for (int hc = 0; hc <= GRID_STEPS - hg; hc++) {
                int hd = GRID_STEPS - hg - hc;
                if (no_disk && hd)
                    continue;
                double h[3] = {hg / (double)GRID_STEPS, hc / (double)GRID_STEPS, hd / (double)GRID_STEPS};
                bool fits = true;
                for (int t = 0; t < TIER_COUNT && fits; t++)
                    fits = memc[t] + F->mem[t].c[6] * h[0] + F->mem[t].c[7] * h[1] +
                               F->mem[t].c[8] * h[2] <= F->usable[t];
                if (!fits)
                    continue;
                double total = 0;
                for (int g = 0; g < ng && total < best; g++) {
                    double mx = 0;
                    for (int t = 0; t < CM_NTERMS; t++) {
                        const cm_lin *f = &F->f[g * CM_NTERMS + t];
                        double v = partc[g * CM_NTERMS + t] + f->c[6] * h[0] + f->c[7] * h[1] +
                                   f->c[8] * h[2];
                        mx = v > mx ? v : mx;
                    }
                    total += F->weight[g] * mx;
                }
                if (total < best)
                    best = total;
            }
        }
    }
    return best;
}

typedef struct lp_case {
    const char *model, *hw;
    int gbs, ngb;
    quant wq, kq;
    bool cpu_attention;
    long long prompt, gen;
    bool no_disk;
} lp_case;

static void check_lp_case(const lp_case *lc)
{
    model m = load_model(lc->model);
    hwprofile *hw = load_hw(lc->hw);
    workload w = {lc->prompt, lc->gen, 0};
    search_options o;
    search_options_init(&o);
    o.no_disk = lc->no_disk;
    policy p;
    policy_init(&p);
    placement cpu = {{0, 1, 0}};
    p.weights = p.kv_cache = p.activations = cpu;
    p.gpu_batch_size = lc->gbs;
    p.num_gpu_batches = lc->ngb;
    p.weight_quant = lc->wq;
    p.kv_quant = lc->kq;
    p.cpu_attention = lc->cpu_attention;
    diag e;
    diag_clear(&e);
    cm_setup s;
    CHECK(cm_setup_init(&s, &m, hw, &p, &w, &e) == LLMSIM_OK, "%s", e.msg);
    double usable[TIER_COUNT];
    for (int t = 0; t < TIER_COUNT; t++)
        usable[t] = cm_tier_capacity(&s, (tier)t) * (1 - o.headroom);
    forms *F = malloc(sizeof *F);
    build_forms(&s, o.headroom, F);
    double grid = grid_best(F, lc->no_disk);
    free(F);

    policy lp_p = p;
    bool optimal = false;
    double tpt = 0;
    CHECK(search_solve_choice(&m, hw, &w, &o, &lp_p, usable, &optimal, &tpt, &e) == LLMSIM_OK,
          "%s %dx%d: %s", lc->model, lc->gbs, lc->ngb, e.msg);
    CHECK(optimal == isfinite(grid), "%s %dx%d: LP optimal %d but grid best %g", lc->model, lc->gbs,
          lc->ngb, optimal, grid);
    if (!optimal) {
        free(hw);
        return;
    }
    /* the cost model at the LP's fractions, not rounded */
    cm_setup s2;
    CHECK(cm_setup_init(&s2, &m, hw, &lp_p, &w, &e) == LLMSIM_OK, "%s", e.msg);
    double x[CM_NFRAC];
    cm_policy_x(&lp_p, x);
    cm_result r;
    CHECK(cm_evaluate(&s2, x, x, &r, &e) == LLMSIM_OK, "%s", e.msg);
    double model_tpt = r.total_s / (r.num_prompts * (double)w.gen_len);
    double block = r.total_s / r.blocks;
    CHECK_REL(tpt, model_tpt, LP_MODEL_TOL, "LP objective vs cost model");
    for (int t = 0; t < TIER_COUNT; t++)
        CHECK(r.peak_bytes[t] <= usable[t] * (1 + 1e-6), "%s: LP solution overflows %s", lc->model,
              tier_names[t]);
    CHECK(block <= grid * (1 + NEVER_WORSE_TOL), "%s %dx%d: LP %.9g s worse than the grid's %.9g s",
          lc->model, lc->gbs, lc->ngb, block, grid);
    CHECK(block >= grid * (1 - GRID_GAP_TOL), "%s %dx%d: LP %.9g s more than 1%% below the grid's "
          "%.9g s", lc->model, lc->gbs, lc->ngb, block, grid);
    printf("# %s on %s %dx%d: LP %.6g s/block, grid %.6g s/block (%.3f%%)\n", lc->model, lc->hw,
           lc->gbs, lc->ngb, block, grid, 100 * (grid - block) / grid);
    cm_result_free(&r);
    free(hw);
}

static void test_lp_against_grid(void)
{
    const lp_case cases[] = {
        {"opt-30b", "t4-flexgen", 48, 3, {0, 0}, {0, 0}, true, 512, 8, false},
        {"opt-30b", "t4-flexgen", 24, 3, {0, 0}, {0, 0}, false, 512, 8, false},
        {"opt-175b", "t4-flexgen", 32, 8, {0, 0}, {0, 0}, true, 512, 8, false},
        {"opt-175b", "t4-flexgen", 48, 6, {4, 64}, {4, 64}, false, 512, 8, false},
        {"llama-2-70b", "a100-80gb-sxm", 16, 4, {8, 128}, {0, 0}, true, 1024, 6, false},
        {"llama-3.1-8b", "cpu-only", 8, 2, {0, 0}, {8, 64}, false, 256, 5, false},
        {"opt-13b", "l4", 16, 4, {0, 0}, {0, 0}, false, 512, 8, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_lp_case(&cases[i]);
}

/* The whole search beats FlexGen's published policies under llmsim's model,
 * returns a feasible policy, and reports what predict computes for it. */
static void test_search_flexgen(void)
{
    struct {
        const char *model;
        const char *pct[6];
        int gbs, ngb;
    } cases[] = {
        {"opt-30b", {"20", "80", "0", "100", "0", "100"}, 48, 3},
        {"opt-175b", {"0", "50", "0", "0", "0", "100"}, 32, 8},
    };
    hwprofile *hw = load_hw("t4-flexgen");
    workload w = {512, 32, 0};
    for (size_t i = 0; i < 2; i++) {
        model m = load_model(cases[i].model);
        diag e;
        diag_clear(&e);
        policy fp;
        policy_init(&fp);
        policy_from_percent(cases[i].pct, &fp, &e);
        fp.gpu_batch_size = cases[i].gbs;
        fp.num_gpu_batches = cases[i].ngb;
        fp.cpu_attention = true;
        cm_result fr;
        CHECK(cm_predict(&m, hw, &fp, &w, &fr, &e) == LLMSIM_OK, "%s", e.msg);
        double flexgen = fr.throughput_tok_s;
        cm_result_free(&fr);
        for (int with_quant = 0; with_quant <= 1; with_quant++) {
            search_options o;
            search_options_init(&o);
            o.no_quant = !with_quant;
            search_result r;
            CHECK(search_run(&m, hw, &w, &o, &r, &e) == LLMSIM_OK, "%s: %s", cases[i].model, e.msg);
            CHECK(r.found && r.best.feasible, "%s: no feasible policy", cases[i].model);
            CHECK(r.best.throughput_tok_s >= flexgen * (with_quant ? 1.05 : 1.0),
                  "%s (quant %d): search %.4g tok/s < FlexGen's policy %.4g", cases[i].model, with_quant,
                  r.best.throughput_tok_s, flexgen);
            /* what it reports is what predict says for the written policy */
            cm_result pr;
            CHECK(cm_predict(&m, hw, &r.best.rounded, &w, &pr, &e) == LLMSIM_OK, "%s", e.msg);
            CHECK_REL(pr.throughput_tok_s, r.best.throughput_tok_s, 1e-12, "search vs predict");
            CHECK(pr.feasible, "%s: the best policy does not fit", cases[i].model);
            /* and the rounded placement is a whole-tensor one: realizing it again changes nothing */
            for (int g = 0; g < 3; g++)
                for (int t = 0; t < TIER_COUNT; t++)
                    CHECK(fabs(pr.realized[g].f[t] - pr.requested[g].f[t]) < 1e-9,
                          "%s: rounded fractions are not whole tensors", cases[i].model);
            CHECK(r.lps_solved > 0 && r.candidates_evaluated >= r.lps_solved, "LP counts");
            printf("# %s %s: search %.4g tok/s, FlexGen's policy %.4g tok/s, %ld LPs, %.3f s\n",
                   cases[i].model, with_quant ? "with quantization" : "no quantization",
                   r.best.throughput_tok_s, flexgen, r.lps_solved, r.search_s);
            cm_result_free(&pr);
            search_result_free(&r);
        }
    }
    free(hw);
}

static void test_max_latency(void)
{
    model m = load_model("opt-30b");
    hwprofile *hw = load_hw("t4-flexgen");
    workload w = {512, 32, 0};
    search_options o;
    search_options_init(&o);
    o.no_quant = true;
    diag e;
    diag_clear(&e);
    search_result free_r, r;
    CHECK(search_run(&m, hw, &w, &o, &free_r, &e) == LLMSIM_OK, "%s", e.msg);
    o.max_latency_s = 5.0;
    CHECK(search_run(&m, hw, &w, &o, &r, &e) == LLMSIM_OK, "%s", e.msg);
    cm_result pr;
    CHECK(cm_predict(&m, hw, &r.best.rounded, &w, &pr, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(pr.max_step_s <= 5.0 * (1 + 1e-9), "a decode step takes %g s > --max-latency 5", pr.max_step_s);
    CHECK(r.best.throughput_tok_s <= free_r.best.throughput_tok_s * (1 + 1e-12),
          "a latency bound cannot raise throughput");
    cm_result_free(&pr);
    search_result_free(&r);
    search_result_free(&free_r);
    free(hw);
}

static void test_impossible(void)
{
    model m = load_model("opt-175b");
    hwprofile *hw = load_hw("rtx4090");
    hw->disk.present = false; /* 24 GB GPU + 96 GiB RAM, no disk: 175B cannot fit even at 4 bits */
    hw->cpu.memory_bytes = 32.0 * (1 << 30);
    workload w = {512, 32, 0};
    search_options o;
    search_options_init(&o);
    diag e;
    diag_clear(&e);
    search_result r;
    CHECK(search_run(&m, hw, &w, &o, &r, &e) == LLMSIM_EINPUT, "an impossible setup must be bad input");
    CHECK(strstr(e.msg, "no policy fits") && strstr(e.msg, "GB"), "message: %s", e.msg);
    search_result_free(&r);
    /* a profile with a zero bandwidth (the loader refuses it; code may not)
     * is reported, not skipped */
    hwprofile *bad = load_hw("t4-flexgen");
    bad->links[HW_LINK_H2D_PINNED].bandwidth_Bps = 0;
    model m30 = load_model("opt-30b");
    diag_clear(&e);
    CHECK(search_run(&m30, bad, &w, &o, &r, &e) == LLMSIM_EFAIL, "a broken LP must fail loudly");
    CHECK(strstr(e.msg, "non-finite") != NULL, "message: %s", e.msg);
    search_result_free(&r);
    free(bad);
    /* GLPK stopping short of an optimum (here: an iteration limit of 1) is
     * a failure that stops the search, never a choice silently skipped */
    search_options lim;
    search_options_init(&lim);
    lim.lp_iteration_limit = 1;
    lim.no_quant = true;
    hwprofile *t4 = load_hw("t4-flexgen");
    diag_clear(&e);
    CHECK(search_run(&m30, t4, &w, &lim, &r, &e) == LLMSIM_EFAIL, "an LP GLPK did not solve must fail");
    CHECK(strstr(e.msg, "GLPK") && strstr(e.msg, "iteration limit"), "message: %s", e.msg);
    search_result_free(&r);
    free(t4);
    free(hw);
}

int main(void)
{
    test_lp_against_grid();
    test_search_flexgen();
    test_max_latency();
    test_impossible();
    return tap_done();
}
