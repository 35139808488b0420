/*
 * search — one GLPK linear program per discrete choice; see search.h for the
 * formulation. One glp_prob is built per search and its rows are refilled
 * for every choice, so GLPK starts each solve from the previous basis.
 */
#include "search/search.h"

#include <glpk.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/clock.h"
#include "common/grow.h"
#include "costmodel/sizes.h"

/* Memory rows are written in GB so that their coefficients are of the same
 * order as the time rows (seconds). */
#define SEARCH_MEM_SCALE 1e-9
/* Overflow after rounding: tighten the tier by the overflow and this margin. */
#define SEARCH_REPAIR_MARGIN 1.02
#define SEARCH_MAX_REPAIRS 3
/* LP solutions rounded and priced before the best is chosen. */
#define SEARCH_ROUND_POOL 32
/* An LP of ~20 columns and ~50 rows solves in tens of iterations; one that
 * needs thousands is numerically broken, and must fail, not hang. */
#define SEARCH_LP_ITERATIONS 5000
#define SEARCH_LP_TIME_MS 2000
#define SEARCH_TIE_BREAK 1e-6

void search_options_init(search_options *o)
{
    memset(o, 0, sizeof *o);
    o->headroom = 0.05;
    o->top_k = 10;
    o->max_gpu_batch = 1024;
    o->max_gpu_batches = 64;
    o->lp_iteration_limit = SEARCH_LP_ITERATIONS;
}

/* ---- GLPK's terminal output goes here, not into ours */

static char glpk_log[2048];
static size_t glpk_log_len;

static int glpk_hook(void *info, const char *s)
{
    (void)info;
    size_t n = strlen(s);
    if (glpk_log_len + n >= sizeof glpk_log)
        glpk_log_len = 0; /* keep the latest lines */
    memcpy(glpk_log + glpk_log_len, s, n + 1);
    glpk_log_len += n;
    return 1; /* handled: GLPK prints nothing */
}

/* ---- the LP of one search */

typedef struct lp {
    glp_prob *P;
    int nseg;                 /* decode segments */
    int seg_first[SEARCH_DECODE_SEGMENTS];
    int seg_len[SEARCH_DECODE_SEGMENTS];
    bool latency_rows;
    /* columns (1-based) */
    int col_x;                /* first of the nine fractions */
    int col_tp, col_thp, col_td, col_thd;
    /* rows (1-based) */
    int row_sum, row_pre, row_hpre, row_dec, row_hdec, row_mem, row_lat;
} lp;

static void lp_layout(lp *l, const workload *w, const search_options *o)
{
    memset(l, 0, sizeof *l);
    int steps = (int)(w->gen_len - 1);
    l->nseg = steps < SEARCH_DECODE_SEGMENTS ? steps : SEARCH_DECODE_SEGMENTS;
    for (int k = 0, first = 1; k < l->nseg; k++) {
        int len = steps / l->nseg + (k < steps % l->nseg ? 1 : 0);
        l->seg_first[k] = first;
        l->seg_len[k] = len;
        first += len;
    }
    l->latency_rows = o->max_latency_s > 0 && l->nseg > 0;
    l->col_x = 1;
    l->col_tp = 10;
    l->col_thp = 11;
    l->col_td = 12;
    l->col_thd = 12 + l->nseg;
    l->row_sum = 1;
    l->row_pre = 4;
    l->row_hpre = l->row_pre + CM_NTERMS;
    l->row_dec = l->row_hpre + CM_NTERMS;
    l->row_hdec = l->row_dec + CM_NTERMS * l->nseg;
    l->row_mem = l->row_hdec + CM_NTERMS;
    l->row_lat = l->row_mem + TIER_COUNT;
}

static int lp_ncols(const lp *l) { return l->col_thd; }
static int lp_nrows(const lp *l) { return l->row_lat - 1 + (l->latency_rows ? l->nseg : 0); }

static llmsim_status lp_create(lp *l, diag *e)
{
    l->P = glp_create_prob();
    if (!l->P)
        return diag_set(e, LLMSIM_EFAIL, "GLPK: glp_create_prob failed");
    glp_set_obj_dir(l->P, GLP_MIN);
    glp_add_cols(l->P, lp_ncols(l));
    glp_add_rows(l->P, lp_nrows(l));
    for (int j = 0; j < CM_NFRAC; j++)
        glp_set_col_bnds(l->P, l->col_x + j, GLP_DB, 0.0, 1.0);
    for (int j = l->col_tp; j <= lp_ncols(l); j++)
        glp_set_col_bnds(l->P, j, GLP_LO, 0.0, 0.0);
    /* fractions of each kind sum to 1 */
    for (int g = 0; g < 3; g++) {
        int ind[4] = {0, l->col_x + 3 * g, l->col_x + 3 * g + 1, l->col_x + 3 * g + 2};
        double val[4] = {0, 1, 1, 1};
        glp_set_mat_row(l->P, l->row_sum + g, 3, ind, val);
        glp_set_row_bnds(l->P, l->row_sum + g, GLP_FX, 1.0, 1.0);
    }
    return LLMSIM_OK;
}

/* Row: T - sum c_i x_i >= c0 (the phase time is at least this term). */
static void lp_time_row(lp *l, int row, int tcol, double tcoef, const cm_lin *f)
{
    int ind[CM_NFRAC + 2];
    double val[CM_NFRAC + 2];
    int n = 0;
    ind[++n] = tcol;
    val[n] = tcoef;
    for (int i = 0; i < CM_NFRAC; i++) {
        if (f->c[i] != 0) {
            ind[++n] = l->col_x + i;
            val[n] = -f->c[i];
        }
    }
    glp_set_mat_row(l->P, row, n, ind, val);
    glp_set_row_bnds(l->P, row, GLP_LO, f->c0, 0.0);
}

/* The four terms of a phase (overlap), or their sum in the first row and
 * the others made void (no overlap). */
static void lp_phase_rows(lp *l, int row, int tcol, const cm_layer_cost *c, bool overlap)
{
    for (int t = 0; t < CM_NTERMS; t++) {
        if (overlap) {
            lp_time_row(l, row + t, tcol, 1.0, &c->term[t]);
        } else if (t == 0) {
            lp_time_row(l, row, tcol, 1.0, &c->sum);
        } else {
            glp_set_mat_row(l->P, row + t, 0, NULL, NULL);
            glp_set_row_bnds(l->P, row + t, GLP_FR, 0.0, 0.0);
        }
    }
}

static bool lin_finite(const cm_lin *f)
{
    bool ok = isfinite(f->c0);
    for (int i = 0; i < CM_NFRAC; i++)
        ok = ok && isfinite(f->c[i]);
    return ok;
}

static bool cost_finite(const cm_layer_cost *c)
{
    bool ok = lin_finite(&c->sum);
    for (int t = 0; t < CM_NTERMS; t++)
        ok = ok && lin_finite(&c->term[t]);
    return ok;
}

/* Every form the LP of this choice will hold is finite (GLPK aborts the
 * process on a non-finite coefficient, so this is checked first). */
static bool lp_forms_finite(const lp *l, const cm_setup *s)
{
    const double sl = (double)s->w.prompt_len;
    cm_layer_cost c;
    cm_layer_cost_get(s, CM_PHASE_PREFILL, sl, &c);
    bool ok = cost_finite(&c);
    cm_head_cost_get(s, CM_PHASE_PREFILL, &c);
    ok = ok && cost_finite(&c);
    cm_head_cost_get(s, CM_PHASE_DECODE, &c);
    ok = ok && cost_finite(&c);
    if (l->nseg > 0) {
        cm_layer_cost_get(s, CM_PHASE_DECODE, sl + (double)s->w.gen_len, &c);
        ok = ok && cost_finite(&c);
    }
    cm_lin peak[TIER_COUNT];
    cm_peak_memory(s, peak);
    for (int t = 0; t < TIER_COUNT; t++)
        ok = ok && lin_finite(&peak[t]);
    return ok;
}

/* The time rows of every phase: prefill, the head's prefill, each decode
 * segment at its middle token, the head's decode. Returns the scale of a
 * layer's prefill time (its constant and the sum of its coefficients), for
 * the tie-break of lp_fill_objective. */
static double lp_fill_time_rows(lp *l, const cm_setup *s)
{
    const double sl = (double)s->w.prompt_len;
    cm_layer_cost c;
    cm_layer_cost_get(s, CM_PHASE_PREFILL, sl, &c);
    lp_phase_rows(l, l->row_pre, l->col_tp, &c, s->p->overlap);
    double scale = c.sum.c0;
    for (int i = 0; i < CM_NFRAC; i++)
        scale += fabs(c.sum.c[i]);
    cm_head_cost_get(s, CM_PHASE_PREFILL, &c);
    lp_phase_rows(l, l->row_hpre, l->col_thp, &c, s->p->overlap);
    for (int k = 0; k < l->nseg; k++) {
        double mid = sl + l->seg_first[k] + (l->seg_len[k] - 1) / 2.0;
        cm_layer_cost_get(s, CM_PHASE_DECODE, mid, &c);
        lp_phase_rows(l, l->row_dec + CM_NTERMS * k, l->col_td + k, &c, s->p->overlap);
    }
    cm_head_cost_get(s, CM_PHASE_DECODE, &c);
    lp_phase_rows(l, l->row_hdec, l->col_thd, &c, s->p->overlap);
    return scale;
}

/* Peak memory per tier <= its usable capacity (in GB, SEARCH_MEM_SCALE);
 * tiers that do not exist, or that the user excluded, get nothing. */
static void lp_fill_memory_rows(lp *l, const cm_setup *s, const double usable[TIER_COUNT],
                                bool no_disk)
{
    cm_lin peak[TIER_COUNT];
    cm_peak_memory(s, peak);
    for (int t = 0; t < TIER_COUNT; t++) {
        int ind[CM_NFRAC + 1];
        double val[CM_NFRAC + 1];
        int n = 0;
        for (int i = 0; i < CM_NFRAC; i++) {
            if (peak[t].c[i] != 0) {
                ind[++n] = l->col_x + i;
                val[n] = peak[t].c[i] * SEARCH_MEM_SCALE;
            }
        }
        glp_set_mat_row(l->P, l->row_mem + t, n, ind, val);
        glp_set_row_bnds(l->P, l->row_mem + t, GLP_UP, 0.0,
                         (usable[t] - peak[t].c0) * SEARCH_MEM_SCALE);
    }
    for (int t = 0; t < TIER_COUNT; t++) {
        bool off = (t == TIER_GPU && !s->has_gpu) ||
                   (t == TIER_DISK && (no_disk || !s->hw->disk.present));
        for (int g = 0; g < 3; g++)
            glp_set_col_bnds(l->P, l->col_x + 3 * g + t, off ? GLP_FX : GLP_DB, 0.0, off ? 0.0 : 1.0);
    }
}

/* Every decode step of the block (L layers and the head) within the
 * latency bound. */
static void lp_fill_latency_rows(lp *l, double L, double max_latency_s)
{
    for (int k = 0; k < l->nseg; k++) {
        int ind[3] = {0, l->col_td + k, l->col_thd};
        double val[3] = {0, L, 1.0};
        glp_set_mat_row(l->P, l->row_lat + k, 2, ind, val);
        glp_set_row_bnds(l->P, l->row_lat + k, GLP_UP, 0.0, max_latency_s);
    }
}

/* The objective: the block's time (seconds), and the tie-break. */
static void lp_fill_objective(lp *l, double L, double scale)
{
    glp_set_obj_coef(l->P, l->col_tp, L);
    glp_set_obj_coef(l->P, l->col_thp, 1.0);
    double hd = 0;
    for (int k = 0; k < l->nseg; k++) {
        glp_set_obj_coef(l->P, l->col_td + k, L * l->seg_len[k]);
        hd += l->seg_len[k];
    }
    glp_set_obj_coef(l->P, l->col_thd, hd);
    /* Among placements equally fast, prefer the faster tiers: a cost of
     * SEARCH_TIE_BREAK of a layer's time per unit of fraction on the CPU
     * (half) or the disk (whole) — parts per million, far below any real
     * difference, but enough that idle data does not land on disk. */
    for (int g = 0; g < 3; g++) {
        glp_set_obj_coef(l->P, l->col_x + 3 * g + TIER_CPU, 0.5 * SEARCH_TIE_BREAK * scale);
        glp_set_obj_coef(l->P, l->col_x + 3 * g + TIER_DISK, SEARCH_TIE_BREAK * scale);
    }
}

/* Fill every row for one discrete choice. */
static void lp_fill(lp *l, const cm_setup *s, const double usable[TIER_COUNT], bool no_disk,
                    double max_latency_s)
{
    const double L = (double)s->m->num_layers;
    double scale = lp_fill_time_rows(l, s);
    lp_fill_memory_rows(l, s, usable, no_disk);
    if (l->latency_rows)
        lp_fill_latency_rows(l, L, max_latency_s);
    lp_fill_objective(l, L, scale);
}

typedef enum lp_outcome { LP_OPTIMAL, LP_INFEASIBLE, LP_FAILED } lp_outcome;

static lp_outcome lp_solve(lp *l, int it_lim, double *block_s, double x[CM_NFRAC], diag *e)
{
    glp_smcp parm;
    glp_init_smcp(&parm);
    parm.msg_lev = GLP_MSG_ERR; /* errors only, and those go to glpk_hook */
    parm.presolve = GLP_OFF;
    parm.it_lim = it_lim;
    parm.tm_lim = SEARCH_LP_TIME_MS;
    glpk_log_len = 0;
    glpk_log[0] = '\0';
    int ret = glp_simplex(l->P, &parm);
    if (ret == GLP_EBADB || ret == GLP_ESING || ret == GLP_ECOND) {
        /* the previous basis does not fit the new rows: start afresh */
        glp_adv_basis(l->P, 0);
        ret = glp_simplex(l->P, &parm);
    }
    if (ret != 0) {
        const char *why = ret == GLP_EITLIM ? " (iteration limit: the LP is numerically degenerate)"
                          : ret == GLP_ETMLIM ? " (time limit)" : "";
        diag_set(e, LLMSIM_EFAIL, "GLPK: glp_simplex returned %d%s on an LP of %d rows%s%s", ret, why,
                 lp_nrows(l), glpk_log_len ? "; GLPK said: " : "", glpk_log);
        return LP_FAILED;
    }
    int status = glp_get_status(l->P);
    if (status == GLP_NOFEAS)
        return LP_INFEASIBLE;
    if (status != GLP_OPT) {
        diag_set(e, LLMSIM_EFAIL, "GLPK: the LP is %s (status %d); this is a bug in the search's "
                 "formulation", status == GLP_UNBND ? "unbounded" : "undefined", status);
        return LP_FAILED;
    }
    *block_s = glp_get_obj_val(l->P);
    for (int i = 0; i < CM_NFRAC; i++) {
        double v = glp_get_col_prim(l->P, l->col_x + i);
        *block_s -= glp_get_obj_coef(l->P, l->col_x + i) * v; /* the tie-break is not time */
        x[i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
    /* make each triple sum to exactly 1 (simplex tolerances) */
    for (int g = 0; g < 3; g++) {
        double s = x[3 * g] + x[3 * g + 1] + x[3 * g + 2];
        for (int t = 0; t < 3; t++)
            x[3 * g + t] /= s;
    }
    return LP_OPTIMAL;
}

/* Lay out and create the LP of a search (its rows are filled per choice);
 * GLPK's terminal output goes to glpk_hook until lp_close. */
static llmsim_status lp_open(lp *l, const workload *w, const search_options *o, diag *e)
{
    glp_term_hook(glpk_hook, NULL);
    lp_layout(l, w, o);
    llmsim_status st = lp_create(l, e);
    if (st)
        glp_term_hook(NULL, NULL);
    return st;
}

static void lp_close(lp *l)
{
    glp_delete_prob(l->P);
    glp_term_hook(NULL, NULL);
}

/* Fill the LP with the choice s and solve it; *evaluated counts the LPs
 * filled and handed to GLPK. LP_FAILED (e says why) when GLPK fails or a
 * form of the cost model is not finite (GLPK would abort the process). */
static lp_outcome lp_solve_choice(lp *l, const cm_setup *s, const double usable[TIER_COUNT],
                                  const search_options *o, long *evaluated, double *block_s,
                                  double x[CM_NFRAC], diag *e)
{
    if (!lp_forms_finite(l, s)) {
        diag_set(e, LLMSIM_EFAIL, "the cost model gave a non-finite time or size for %s on "
                 "%s (a zero bandwidth or rate in the profile?); the LP cannot be built",
                 s->m->name, s->hw->name);
        return LP_FAILED;
    }
    lp_fill(l, s, usable, o->no_disk, o->max_latency_s);
    (*evaluated)++;
    return lp_solve(l, o->lp_iteration_limit, block_s, x, e);
}

static void policy_set_x(policy *p, const double x[CM_NFRAC])
{
    placement *pl[3] = {&p->weights, &p->kv_cache, &p->activations};
    for (int g = 0; g < 3; g++)
        for (int t = 0; t < TIER_COUNT; t++)
            pl[g]->f[t] = x[3 * g + t];
}

/* ---- the discrete choices */

static const quant quant_choices[] = {
    {0, 0}, {8, 32}, {8, 64}, {8, 128}, {4, 32}, {4, 64}, {4, 128},
};
#define N_QUANT (int)(sizeof quant_choices / sizeof quant_choices[0])

static void usable_capacity(const cm_setup *s, double headroom, double usable[TIER_COUNT])
{
    for (int t = 0; t < TIER_COUNT; t++)
        usable[t] = cm_tier_capacity(s, (tier)t) * (1.0 - headroom);
}

/* Everything on the CPU: fractions valid on any hardware, for a policy
 * whose fractions the LP will choose. */
static void placements_on_cpu(policy *p)
{
    placement cpu = {{0, 1, 0}};
    p->weights = p->kv_cache = p->activations = cpu;
}

/* A policy template valid on any hardware (its fractions are not used). */
static void template_policy(policy *p)
{
    policy_init(p);
    placements_on_cpu(p);
}

typedef struct solution {
    policy p;
    double time_per_token_s; /* the LP objective over prompts x gen_len */
} solution;

static int cmp_solution(const void *a, const void *b)
{
    double x = ((const solution *)a)->time_per_token_s, y = ((const solution *)b)->time_per_token_s;
    return (x > y) - (x < y);
}

/* Batch sizes and batch counts tried: powers of two and one and a half
 * times them (1, 2, 3, 4, 6, 8, 12, ...), the grid FlexGen's own choices
 * (48 x 3, 32 x 8) lie on. */
static int next_size(int v) { return (v & (v - 1)) == 0 && v > 1 ? v + v / 2 : (v == 1 ? 2 : v / 3 * 4); }

/* blocks / (prompts x gen_len): the factor from a block's time to seconds per token */
static double per_token_factor(const cm_setup *s)
{
    double prompts = (double)s->w.num_prompts;
    return ceil(prompts / s->bls) / (prompts * (double)s->w.gen_len);
}

llmsim_status search_solve_choice(const model *m, const hwprofile *hw, const workload *w,
                                  const search_options *o, policy *p,
                                  const double usable[TIER_COUNT], bool *optimal,
                                  double *time_per_token_s, diag *e)
{
    *optimal = false;
    cm_setup s;
    policy tmpl = *p;
    placements_on_cpu(&tmpl);
    llmsim_status st = cm_setup_init(&s, m, hw, &tmpl, w, e);
    if (st)
        return st;
    lp l;
    if ((st = lp_open(&l, w, o, e)))
        return st;
    long evaluated = 0;
    double block_s, x[CM_NFRAC];
    lp_outcome out = lp_solve_choice(&l, &s, usable, o, &evaluated, &block_s, x, e);
    lp_close(&l);
    if (out == LP_FAILED)
        return LLMSIM_EFAIL;
    if (out == LP_OPTIMAL) {
        *optimal = true;
        policy_set_x(p, x);
        *time_per_token_s = block_s * per_token_factor(&s);
    }
    return LLMSIM_OK;
}

/* Round a solution to whole tensors and price it; repair memory overflows by
 * re-solving with the overflowing tier tightened. */
static llmsim_status round_candidate(const model *m, const hwprofile *hw, const workload *w,
                                     const search_options *o, const solution *sol,
                                     search_candidate *c, diag *e)
{
    memset(c, 0, sizeof *c);
    c->lp_policy = sol->p;
    cm_setup s;
    llmsim_status st = cm_setup_init(&s, m, hw, &sol->p, w, e);
    if (st)
        return st;
    c->lp_time_per_token_s = sol->time_per_token_s;
    c->lp_throughput_tok_s = 1.0 / c->lp_time_per_token_s;
    double usable[TIER_COUNT];
    usable_capacity(&s, o->headroom, usable);
    policy lp_p = sol->p;
    for (int attempt = 0; attempt <= SEARCH_MAX_REPAIRS; attempt++) {
        cm_result r;
        if ((st = cm_predict(m, hw, &lp_p, w, &r, e)))
            return st;
        policy rounded = lp_p;
        rounded.weights = r.realized[0];
        rounded.kv_cache = r.realized[1];
        rounded.activations = r.realized[2];
        cm_result_free(&r);
        /* price exactly what is written out (and what predict will load) */
        if ((st = cm_predict(m, hw, &rounded, w, &r, e)))
            return st;
        c->rounded = rounded;
        c->throughput_tok_s = r.throughput_tok_s;
        c->total_s = r.total_s;
        memcpy(c->peak_bytes, r.peak_bytes, sizeof c->peak_bytes);
        c->feasible = true;
        int worst = -1;
        double over = 0;
        for (int t = 0; t < TIER_COUNT; t++) {
            double o_t = r.peak_bytes[t] - usable[t];
            if (o_t > over) {
                over = o_t;
                worst = t;
            }
        }
        if (o->max_latency_s > 0 && r.max_step_s > o->max_latency_s * (1 + 1e-9))
            c->feasible = false;
        cm_result_free(&r);
        if (worst < 0 && c->feasible)
            return LLMSIM_OK;
        c->feasible = false;
        if (worst < 0 || attempt == SEARCH_MAX_REPAIRS)
            return LLMSIM_OK;
        usable[worst] -= over * SEARCH_REPAIR_MARGIN + (1 << 20);
        bool optimal;
        double tpt;
        if ((st = search_solve_choice(m, hw, w, o, &lp_p, usable, &optimal, &tpt, e)))
            return st;
        if (!optimal)
            return LLMSIM_OK;
        c->repairs++;
    }
    return LLMSIM_OK;
}

static int cmp_candidate(const void *a, const void *b)
{
    const search_candidate *x = a, *y = b;
    if (x->feasible != y->feasible)
        return x->feasible ? -1 : 1;
    return (x->throughput_tok_s < y->throughput_tok_s) - (x->throughput_tok_s > y->throughput_tok_s);
}

/* Bytes the model needs at least: its weights at the smallest quantization. */
static double min_model_bytes(const model *m, bool no_quant)
{
    quant q = no_quant ? (quant){0, 0} : (quant){4, 128};
    size_weights w;
    size_weights_get(m, &q, &w);
    return w.total;
}

/* ---- search_run's steps */

/* One search over the discrete choices: its inputs, its LP, the LP
 * solutions found so far and the progress line. */
typedef struct search_state {
    const model *m;
    const hwprofile *hw;
    const workload *w;
    const search_options *o;
    search_result *r;
    lp l;
    solution *sols;    /* [n] in the order found; owned */
    size_t n, cap;
    bool tty;          /* progress lines on stderr */
    double last_print; /* when the last progress line was printed (s) */
} search_state;

/* The progress line, at most every 0.2 s. */
static void search_progress(search_state *S, long done, long total)
{
    if (S->tty && llmsim_now_s() - S->last_print > 0.2) {
        fprintf(stderr, "\rsearch: %ld/%ld quantization and delegation choices, %ld LPs "
                "solved", done, total, S->r->lps_solved);
        S->last_print = llmsim_now_s();
    }
}

/* Solve the LP of one choice p (fractions aside) and keep its solution.
 * *solved is false when the choice does not apply (skipped) or its LP is
 * infeasible: then a larger GPU batch needs more memory still. */
static llmsim_status search_try(search_state *S, policy *p, bool *solved, diag *e)
{
    search_result *r = S->r;
    *solved = false;
    cm_setup s;
    diag ignore;
    diag_clear(&ignore);
    if (cm_setup_init(&s, S->m, S->hw, p, S->w, &ignore)) {
        r->choices_skipped++; /* e.g. a group size that does not divide */
        return LLMSIM_OK;
    }
    double usable[TIER_COUNT];
    usable_capacity(&s, S->o->headroom, usable);
    double block_s, x[CM_NFRAC];
    lp_outcome out = lp_solve_choice(&S->l, &s, usable, S->o, &r->candidates_evaluated, &block_s,
                                     x, e);
    if (out == LP_FAILED)
        return LLMSIM_EFAIL;
    if (out == LP_INFEASIBLE) {
        r->lps_infeasible++;
        return LLMSIM_OK;
    }
    r->lps_solved++;
    *solved = true;
    solution *g = llmsim_grow(S->sols, S->n, &S->cap, sizeof *S->sols, 1024);
    if (!g)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    S->sols = g;
    policy_set_x(p, x);
    S->sols[S->n].p = *p;
    S->sols[S->n].time_per_token_s = block_s * per_token_factor(&s);
    S->n++;
    return LLMSIM_OK;
}

/* The GPU batch sizes and counts of one quantization and delegation choice:
 * for each count, sizes grow until one does not fit; counts grow until no
 * size fits. */
static llmsim_status search_batches(search_state *S, const policy *choice, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    for (int ngb = 1; ngb <= S->o->max_gpu_batches && !st; ngb = next_size(ngb)) {
        bool any = false, solved = true;
        for (int gbs = 1; gbs <= S->o->max_gpu_batch && solved && !st; gbs = next_size(gbs)) {
            policy p = *choice;
            p.gpu_batch_size = gbs;
            p.num_gpu_batches = ngb;
            st = search_try(S, &p, &solved, e);
            any = any || solved;
        }
        if (!any)
            break; /* more GPU batches need more memory still */
    }
    return st;
}

/* Every choice of attention delegation (with a GPU) and of weight and
 * KV-cache quantization, each over its GPU batches. */
static llmsim_status search_choices(search_state *S, const policy *base, diag *e)
{
    int nq = S->o->no_quant ? 1 : N_QUANT;
    int ndeleg = S->hw->gpu.present ? 2 : 1;
    long total = (long)ndeleg * nq * nq;
    long done = 0;
    llmsim_status st = LLMSIM_OK;
    for (int d = 0; d < ndeleg && !st; d++) {
        for (int wi = 0; wi < nq && !st; wi++) {
            for (int ki = 0; ki < nq && !st; ki++, done++) {
                search_progress(S, done, total);
                policy choice = *base;
                choice.cpu_attention = d == 1;
                choice.weight_quant = quant_choices[wi];
                choice.kv_quant = quant_choices[ki];
                st = search_batches(S, &choice, e);
            }
        }
    }
    if (S->tty)
        fprintf(stderr, "\rsearch: %ld LPs solved, %ld infeasible%30s\n", S->r->lps_solved,
                S->r->lps_infeasible, "");
    return st;
}

/* Why no LP had a solution: the weights alone need more than all tiers
 * offer (s: the search's template setup, for the capacities), or the
 * workload does not fit. */
static llmsim_status search_no_fit(const cm_setup *s, const workload *w, const search_options *o,
                                   diag *e)
{
    const model *m = s->m;
    const hwprofile *hw = s->hw;
    double need = min_model_bytes(m, o->no_quant);
    double have = 0;
    for (int t = 0; t < TIER_COUNT; t++)
        if (!(t == TIER_DISK && o->no_disk))
            have += cm_tier_capacity(s, (tier)t) * (1.0 - o->headroom);
    if (need > have)
        return diag_set(e, LLMSIM_EINPUT,
                        "no policy fits: %s needs at least %.1f GB for its weights%s, but %s "
                        "offers %.1f GB on all tiers together%s", m->name, need / 1e9,
                        o->no_quant ? "" : " at 4 bits", hw->name, have / 1e9,
                        o->no_disk ? " without disk" : "");
    return diag_set(e, LLMSIM_EINPUT,
                    "no policy fits %s on %s for prompt %lld + %lld generated tokens%s; "
                    "try a shorter workload or less --headroom%s", m->name, hw->name,
                    w->prompt_len, w->gen_len,
                    o->max_latency_s > 0 ? " within --max-latency" : "",
                    o->max_latency_s > 0 ? ", or a looser --max-latency"
                    : o->no_disk ? ", or allow the disk" : "");
}

/* Round the best LP solutions, best first, until a pool of them fits; rank
 * them by their throughput after rounding and keep the top_k (r->top,
 * r->ntop, r->found, r->best). */
static llmsim_status search_round_best(search_state *S, diag *e)
{
    search_result *r = S->r;
    const search_options *o = S->o;
    qsort(S->sols, S->n, sizeof *S->sols, cmp_solution);
    /* the ranking after rounding must not depend on how many are shown:
     * always round a pool of at least SEARCH_ROUND_POOL that fit */
    int show = o->top_k > 0 ? o->top_k : 1;
    int want = show > SEARCH_ROUND_POOL ? show : SEARCH_ROUND_POOL;
    size_t budget = (size_t)want * 4;
    r->top = calloc(budget, sizeof *r->top);
    if (!r->top)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    int nfeasible = 0;
    for (size_t i = 0; i < S->n && (size_t)r->ntop < budget && nfeasible < want; i++) {
        search_candidate *c = &r->top[r->ntop];
        llmsim_status st = round_candidate(S->m, S->hw, S->w, o, &S->sols[i], c, e);
        if (st)
            return st;
        r->ntop++;
        if (c->feasible)
            nfeasible++;
    }
    qsort(r->top, (size_t)r->ntop, sizeof *r->top, cmp_candidate);
    if (r->ntop > show)
        r->ntop = show;
    r->found = r->ntop > 0 && r->top[0].feasible;
    if (r->found)
        r->best = r->top[0];
    return LLMSIM_OK;
}

llmsim_status search_run(const model *m, const hwprofile *hw, const workload *w,
                         const search_options *o, search_result *r, diag *e)
{
    memset(r, 0, sizeof *r);
    double t0 = llmsim_now_s();
    policy base;
    template_policy(&base);
    cm_setup s;
    llmsim_status st = cm_setup_init(&s, m, hw, &base, w, e);
    if (st)
        return st;
    if (o->headroom < 0 || o->headroom >= 1)
        return diag_set(e, LLMSIM_EINPUT, "--headroom must be in [0, 1)");
    search_state S = {.m = m, .hw = hw, .w = w, .o = o, .r = r,
                      .tty = o->progress && isatty(2), .last_print = t0};
    if ((st = lp_open(&S.l, w, o, e)))
        return st;
    st = search_choices(&S, &base, e);
    lp_close(&S.l);
    if (!st && S.n == 0)
        st = search_no_fit(&s, w, o, e);
    if (!st)
        st = search_round_best(&S, e);
    free(S.sols);
    if (st)
        return st;
    r->search_s = llmsim_now_s() - t0;
    if (!r->found)
        return diag_set(e, LLMSIM_EINPUT, "the LP found policies, but none fits after rounding to "
                        "whole tensors%s; give rounding room with a larger --headroom",
                        o->max_latency_s > 0 ? " within --max-latency" : "");
    return LLMSIM_OK;
}

void search_result_free(search_result *r)
{
    if (!r)
        return;
    free(r->top);
    r->top = NULL;
    r->ntop = 0;
}
