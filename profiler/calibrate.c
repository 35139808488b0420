/* calibrate — see calibrate.h. */
#include "profiler/calibrate.h"

#include "common/fault.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan.h"

typedef enum pmode {
    PM_LOG, /* value = base * exp(-x): for a rate, x is the log of the time multiplier (a
             * cost per byte moves the other way); a base of 0 stays 0 */
    PM_ABS, /* seconds: value = max(0, base + x) */
} pmode;

typedef struct pdesc {
    char name[80];
    char unit[8];
    size_t off;  /* of the double inside hwprofile */
    pmode mode;
    double base;
} pdesc;

#define MAX_PARAMS (16 + 3 * HW_MAX_POINTS + 2 * HW_NLINKS)
#define LOG_LIMIT 3.0       /* a rate moves by at most e^3 = 20x */
#define FD_LOG 1e-3         /* finite-difference steps */
#define FD_ABS 1e-5
#define PRIOR_WEIGHT 1e-4   /* of the measured sum of squares, per unit of log-multiplier^2 */

static double *pptr(hwprofile *hw, const pdesc *d) { return (double *)((char *)hw + d->off); }

static void add(pdesc *ps, int *n, const hwprofile *hw, const char *name, const char *unit, size_t off,
                pmode mode)
{
    pdesc *d = &ps[(*n)++];
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->unit, sizeof d->unit, "%s", unit);
    d->off = off;
    d->mode = mode;
    d->base = *(const double *)((const char *)hw + off);
}

static void add_gemm(pdesc *ps, int *n, const hwprofile *hw, const char *dev, size_t table_off,
                     const hw_gemm_table *t)
{
    for (int j = 0; j < t->npoints; j++) {
        char name[80];
        const hw_gemm_point *p = &t->points[j];
        snprintf(name, sizeof name, "%s GEMM m=%.0f n=%.0f k=%.0f", dev, p->m, p->n, p->k);
        add(ps, n, hw, name, "FLOP/s",
            table_off + offsetof(hw_gemm_table, points) + (size_t)j * sizeof(hw_gemm_point) +
                offsetof(hw_gemm_point, flops),
            PM_LOG);
    }
}

static void add_link(pdesc *ps, int *n, const hwprofile *hw, const char *what, size_t link_off)
{
    char name[80];
    snprintf(name, sizeof name, "%s bandwidth", what);
    add(ps, n, hw, name, "B/s", link_off + offsetof(hw_link, bandwidth_Bps), PM_LOG);
    snprintf(name, sizeof name, "%s latency", what);
    add(ps, n, hw, name, "s", link_off + offsetof(hw_link, latency_s), PM_ABS);
}

static int describe(const hwprofile *hw, pdesc *ps)
{
    int n = 0;
    if (hw->disk.present) {
        add_link(ps, &n, hw, "disk read", offsetof(hwprofile, disk.read));
        add_link(ps, &n, hw, "disk write", offsetof(hwprofile, disk.write));
        /* multipliers (PM_LOG), bounded like the rates: a few bytes moved
         * must not send them anywhere */
        add(ps, &n, hw, "compute lost per GB read from disk", "s",
            offsetof(hwprofile, disk.read_loss_s_per_GB), PM_LOG);
        add(ps, &n, hw, "compute lost per GB written to disk", "s",
            offsetof(hwprofile, disk.write_loss_s_per_GB), PM_LOG);
    }
    add(ps, &n, hw, "CPU memory bandwidth", "B/s", offsetof(hwprofile, cpu.memory_bandwidth_Bps), PM_LOG);
    for (int j = 0; j < hw->cpu.read.npoints; j++) {
        char name[80];
        snprintf(name, sizeof name, "CPU weight reads, working set %.0f MiB",
                 hw->cpu.read.points[j].ws_bytes / (1 << 20));
        add(ps, &n, hw, name, "B/s",
            offsetof(hwprofile, cpu.read.points) + (size_t)j * sizeof(hw_read_point) +
                offsetof(hw_read_point, Bps),
            PM_LOG);
    }
    add(ps, &n, hw, "CPU attention throughput", "B/s", offsetof(hwprofile, cpu.attn_Bps), PM_LOG);
    for (int j = 0; j < hw->cpu.ndequant; j++) {
        char name[80];
        snprintf(name, sizeof name, "CPU dequantization, %d-bit", hw->cpu.dequant[j].bits);
        add(ps, &n, hw, name, "B/s",
            offsetof(hwprofile, cpu.dequant) + (size_t)j * sizeof(hw_dequant_point) +
                offsetof(hw_dequant_point, Bps),
            PM_LOG);
    }
    add(ps, &n, hw, "CPU overhead per compute task", "s", offsetof(hwprofile, cpu.task_overhead_s), PM_ABS);
    add_gemm(ps, &n, hw, "CPU", offsetof(hwprofile, cpu.gemm), &hw->cpu.gemm);
    if (hw->gpu.present) {
        add(ps, &n, hw, "GPU memory bandwidth", "B/s", offsetof(hwprofile, gpu.memory_bandwidth_Bps), PM_LOG);
        add(ps, &n, hw, "GPU attention (prefill)", "FLOP/s", offsetof(hwprofile, gpu.attn_prefill_flops),
            PM_LOG);
        add(ps, &n, hw, "GPU attention (decode)", "B/s", offsetof(hwprofile, gpu.attn_decode_Bps), PM_LOG);
        add(ps, &n, hw, "GPU kernel launch latency", "s", offsetof(hwprofile, gpu.launch_latency_s), PM_ABS);
        add_gemm(ps, &n, hw, "GPU", offsetof(hwprofile, gpu.gemm), &hw->gpu.gemm);
        for (int k = 0; k < HW_NLINKS; k++)
            if (hw->links[k].present)
                add_link(ps, &n, hw, hw_link_names[k], offsetof(hwprofile, links) + (size_t)k * sizeof(hw_link));
    }
    return n;
}

static void apply(const hwprofile *base, const pdesc *ps, int n, const double *x, hwprofile *out)
{
    *out = *base;
    for (int j = 0; j < n; j++) {
        double v = ps[j].mode == PM_LOG ? ps[j].base * exp(-x[j]) : ps[j].base + x[j];
        *pptr(out, &ps[j]) = v > 0 ? v : 0;
    }
}

llmsim_status calib_task_prices(const hwprofile *hw, const calib_run *run, double *out, diag *e)
{
    plan pl;
    llmsim_status st = plan_build(run->m, hw, run->p, run->w, &pl, e);
    if (st)
        return st;
    if (pl.ntasks != run->ntasks)
        st = diag_set(e, LLMSIM_EINPUT, "the plan has %zu tasks but the measurement %zu: not the same plan",
                      pl.ntasks, run->ntasks);
    for (size_t i = 0; !st && i < pl.ntasks; i++)
        out[i] = pl.tasks[i].dur_s;
    plan_free(&pl);
    return st;
}

/* The fitting problem: the measured tasks of every run, one row each. */
typedef struct problem {
    const hwprofile *base;
    const calib_run *runs;
    int nruns;
    pdesc ps[MAX_PARAMS];
    int np;
    size_t rows;        /* measured tasks */
    double *y;          /* [rows] measured */
    double *price;      /* [max ntasks] scratch */
    size_t max_tasks;
    double prior;       /* weight of sum x_j^2 over the log parameters */
    const volatile sig_atomic_t *stop; /* the caller's interrupt flag, or NULL */
} problem;

/* Priced durations of every measured task at x, into d[rows]. */
static llmsim_status prices(problem *P, const double *x, double *d, diag *e)
{
    hwprofile hw;
    apply(P->base, P->ps, P->np, x, &hw);
    size_t r = 0;
    for (int k = 0; k < P->nruns; k++) {
        llmsim_status st = calib_task_prices(&hw, &P->runs[k], P->price, e);
        if (st)
            return st;
        for (size_t i = 0; i < P->runs[k].ntasks; i++)
            if (isfinite(P->runs[k].measured[i]))
                d[r++] = P->price[i];
    }
    return LLMSIM_OK;
}

/* Sum of squared errors of the prices d[rows] against the measured times. */
static double sse(const problem *P, const double *d)
{
    double s = 0;
    for (size_t i = 0; i < P->rows; i++)
        s += (P->y[i] - d[i]) * (P->y[i] - d[i]);
    return s;
}

/* The sum of squared errors and the prior over the log parameters. */
static double objective(const problem *P, const double *x, const double *d)
{
    double f = sse(P, d);
    for (int j = 0; j < P->np; j++)
        if (P->ps[j].mode == PM_LOG)
            f += P->prior * x[j] * x[j];
    return f;
}

static void clamp(const problem *P, double *x)
{
    for (int j = 0; j < P->np; j++) {
        if (P->ps[j].mode == PM_LOG)
            x[j] = fmax(-LOG_LIMIT, fmin(LOG_LIMIT, x[j]));
        else if (P->ps[j].base + x[j] < 0)
            x[j] = -P->ps[j].base;
    }
}

/* Solve A z = b (n x n, row-major, destroyed) by elimination with partial
 * pivoting; false when singular. */
static bool solve(double *A, double *b, double *z, int n)
{
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r * n + c]) > fabs(A[piv * n + c]))
                piv = r;
        if (fabs(A[piv * n + c]) < 1e-300)
            return false;
        if (piv != c) {
            for (int k = 0; k < n; k++) {
                double t = A[c * n + k];
                A[c * n + k] = A[piv * n + k];
                A[piv * n + k] = t;
            }
            double t = b[c];
            b[c] = b[piv];
            b[piv] = t;
        }
        for (int r = c + 1; r < n; r++) {
            double f = A[r * n + c] / A[c * n + c];
            for (int k = c; k < n; k++)
                A[r * n + k] -= f * A[c * n + k];
            b[r] -= f * b[c];
        }
    }
    for (int c = n - 1; c >= 0; c--) {
        double s = b[c];
        for (int k = c + 1; k < n; k++)
            s -= A[c * n + k] * z[k];
        z[c] = s / A[c * n + c];
    }
    return true;
}

static llmsim_status setup(problem *P, const hwprofile *base, const calib_run *runs, int nruns, diag *e)
{
    memset(P, 0, sizeof *P);
    P->base = base;
    P->runs = runs;
    P->nruns = nruns;
    P->np = describe(base, P->ps);
    for (int k = 0; k < nruns; k++) {
        if (runs[k].ntasks > P->max_tasks)
            P->max_tasks = runs[k].ntasks;
        for (size_t i = 0; i < runs[k].ntasks; i++)
            P->rows += isfinite(runs[k].measured[i]);
    }
    if (P->rows == 0)
        return diag_set(e, LLMSIM_EINPUT, "no measured task to fit the profile to");
    /* zeroed, though the loop below fills every row: the static analyzer
     * cannot tie its count to the one above */
    P->y = calloc(P->rows, sizeof *P->y);
    P->price = malloc((P->max_tasks + 1) * sizeof *P->price);
    if (!P->y || !P->price)
        return diag_set(e, LLMSIM_EFAIL, "out of memory (calibration)");
    size_t r = 0;
    double yy = 0;
    for (int k = 0; k < nruns; k++)
        for (size_t i = 0; i < runs[k].ntasks; i++)
            if (isfinite(runs[k].measured[i])) {
                P->y[r++] = runs[k].measured[i];
                yy += runs[k].measured[i] * runs[k].measured[i];
            }
    P->prior = PRIOR_WEIGHT * yy;
    return LLMSIM_OK;
}

/* Free what setup allocated, and P (from calloc). */
static void problem_free(problem *P)
{
    free(P->y);
    free(P->price);
    free(P);
}

/* ---- the Levenberg-Marquardt solver */

#define LM_MAX_ITERATIONS 40
#define LM_MAX_TRIES 12   /* damping increases per iteration before it gives up */
#define LM_MU_START 1e-3  /* the first damping */
#define LM_MIN_GAIN 1e-7  /* relative decrease of the objective below which it stops */

/* The solver's arrays for np parameters and `rows` measured tasks: the
 * doubles are carved out of one block (owned by x), free_idx is its own. */
typedef struct lm_work {
    double *x, *xt;    /* [np] the parameters, and a trial */
    double *d, *dt;    /* [rows] the prices at x, and at the trial */
    double *J;         /* [rows x np] the Jacobian of the prices, row-major */
    double *A;         /* [np x np] J'J (+ prior) */
    double *M;         /* [nfree x nfree] the damped system of the free parameters */
    double *g;         /* [np] J'r (- prior x) */
    double *b, *z;     /* [nfree] the damped system's right side, and its solution (the step) */
    int *free_idx;     /* [np] the parameters some measured task depends on */
    int nfree;
} lm_work;

/* All zero; false when out of memory (lm_work_free releases what was
 * allocated). */
static bool lm_work_alloc(lm_work *W, int np, size_t rows)
{
    memset(W, 0, sizeof *W);
    const size_t n = (size_t)np, vec = n + 1, mat = n * n + 1, col = rows + 1;
    double *block = calloc(2 * n + 2 * col + (rows * n + 1) + 2 * mat + 3 * vec, sizeof *block);
    W->free_idx = calloc(vec, sizeof *W->free_idx);
    if (!block || !W->free_idx) {
        free(block);
        return false;
    }
    W->x = block;
    W->xt = W->x + n;
    W->d = W->xt + n;
    W->dt = W->d + col;
    W->J = W->dt + col;
    W->A = W->J + rows * n + 1;
    W->M = W->A + mat;
    W->g = W->M + mat;
    W->b = W->g + vec;
    W->z = W->b + vec;
    return true;
}

static void lm_work_free(lm_work *W)
{
    free(W->x);
    free(W->free_idx);
}

/* The Jacobian of the prices at x by forward differences, into J. */
static llmsim_status lm_jacobian(problem *P, lm_work *W, diag *e)
{
    const int np = P->np;
    llmsim_status st = LLMSIM_OK;
    for (int j = 0; j < np && !st; j++) {
        double h = P->ps[j].mode == PM_LOG ? FD_LOG : FD_ABS;
        memcpy(W->xt, W->x, (size_t)np * sizeof *W->x);
        W->xt[j] += h;
        st = prices(P, W->xt, W->dt, e);
        for (size_t i = 0; !st && i < P->rows; i++)
            W->J[i * (size_t)np + (size_t)j] = (W->dt[i] - W->d[i]) / h;
    }
    return st;
}

/* The normal equations A = J'J, g = J'r; then the free parameters (those
 * some measured task depends on) into free_idx, each log parameter with the
 * prior added (A + prior, g - prior x). Returns the number free. */
static int lm_normal_equations(const problem *P, lm_work *W)
{
    const int np = P->np;
    for (int j = 0; j < np; j++) {
        for (int k = j; k < np; k++) {
            double s = 0;
            for (size_t i = 0; i < P->rows; i++)
                s += W->J[i * (size_t)np + (size_t)j] * W->J[i * (size_t)np + (size_t)k];
            W->A[j * np + k] = W->A[k * np + j] = s;
        }
        double s = 0;
        for (size_t i = 0; i < P->rows; i++)
            s += W->J[i * (size_t)np + (size_t)j] * (P->y[i] - W->d[i]);
        W->g[j] = s;
    }
    W->nfree = 0;
    for (int j = 0; j < np; j++) {
        if (W->A[j * np + j] <= 0)
            continue; /* nothing measured depends on it */
        W->free_idx[W->nfree++] = j;
        if (P->ps[j].mode == PM_LOG) {
            W->A[j * np + j] += P->prior;
            W->g[j] -= P->prior * W->x[j];
        }
    }
    return W->nfree;
}

/* One iteration's step: solve the system of the free parameters damped by
 * *mu, and accept the trial when it lowers the objective f (*fnew, x and d
 * move there, the damping eases); else damp more and try again, up to
 * LM_MAX_TRIES times. *improved says whether a step was accepted. */
static llmsim_status lm_step(problem *P, lm_work *W, double f, double *mu, double *fnew,
                             bool *improved, diag *e)
{
    const int np = P->np, nfree = W->nfree;
    *improved = false;
    *fnew = f;
    for (int tries = 0; tries < LM_MAX_TRIES && !*improved; tries++) {
        for (int a = 0; a < nfree; a++) {
            for (int c = 0; c < nfree; c++)
                W->M[a * nfree + c] = W->A[W->free_idx[a] * np + W->free_idx[c]];
            W->M[a * nfree + a] *= 1 + *mu;
            W->b[a] = W->g[W->free_idx[a]];
        }
        if (!solve(W->M, W->b, W->z, nfree)) {
            *mu *= 10;
            continue;
        }
        memcpy(W->xt, W->x, (size_t)np * sizeof *W->x);
        for (int a = 0; a < nfree; a++)
            W->xt[W->free_idx[a]] += W->z[a];
        clamp(P, W->xt);
        llmsim_status st = prices(P, W->xt, W->dt, e);
        if (st)
            return st;
        *fnew = objective(P, W->xt, W->dt);
        if (*fnew < f) {
            *improved = true;
            memcpy(W->x, W->xt, (size_t)np * sizeof *W->x);
            memcpy(W->d, W->dt, P->rows * sizeof *W->d);
            *mu = fmax(*mu / 3, 1e-9);
        } else {
            *mu *= 4;
        }
    }
    return LLMSIM_OK;
}

/* Iterate from x = 0 (the profile as given; d its prices, f its objective)
 * until no step improves, the gain is below LM_MIN_GAIN, no parameter is free
 * or LM_MAX_ITERATIONS; *iterations gets the number of steps taken. */
static llmsim_status lm_solve(problem *P, lm_work *W, double f, int *iterations, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    double mu = LM_MU_START;
    int it = 0;
    for (; !st && it < LM_MAX_ITERATIONS; it++) {
        fault_signal_point(); /* tests interrupt here (common/fault.h) */
        if (P->stop && *P->stop) {
            st = diag_set(e, LLMSIM_EFAIL, "interrupted");
            break;
        }
        if ((st = lm_jacobian(P, W, e)))
            break;
        if (lm_normal_equations(P, W) == 0)
            break;
        bool improved;
        double fnew;
        st = lm_step(P, W, f, &mu, &fnew, &improved, e);
        if (st || !improved)
            break;
        double gain = (f - fnew) / f;
        f = fnew;
        if (gain < LM_MIN_GAIN)
            break;
    }
    *iterations = it;
    return st;
}

/* ---- the fit */

/* The fitted profile and, for every parameter, its value before and after
 * and whether it was fitted; the tasks, iterations and error after. */
static llmsim_status fit_result(const problem *P, const lm_work *W, int iterations,
                                calib_result *out, diag *e)
{
    const int np = P->np;
    apply(P->base, P->ps, np, W->x, &out->hw);
    out->params = calloc((size_t)np + 1, sizeof *out->params);
    if (!out->params)
        return diag_set(e, LLMSIM_EFAIL, "out of memory (calibration)");
    out->nparams = np;
    for (int j = 0; j < np; j++) {
        calib_param *cp = &out->params[j];
        snprintf(cp->name, sizeof cp->name, "%s", P->ps[j].name);
        snprintf(cp->unit, sizeof cp->unit, "%s", P->ps[j].unit);
        cp->before = P->ps[j].base;
        cp->after = *pptr(&out->hw, &P->ps[j]);
        cp->fitted = false;
        for (int a = 0; a < W->nfree; a++)
            cp->fitted |= W->free_idx[a] == j;
    }
    out->tasks = (long)P->rows;
    out->iterations = iterations;
    out->sse_after = sse(P, W->d);
    return LLMSIM_OK;
}

llmsim_status calib_fit(const hwprofile *base, const calib_run *runs, int nruns,
                        const volatile sig_atomic_t *stop, calib_result *out, diag *e)
{
    memset(out, 0, sizeof *out);
    problem *P = calloc(1, sizeof *P);
    if (!P)
        return diag_set(e, LLMSIM_EFAIL, "out of memory (calibration)");
    llmsim_status st = setup(P, base, runs, nruns, e);
    P->stop = stop;
    lm_work W;
    if (!lm_work_alloc(&W, P->np, P->rows) && !st)
        st = diag_set(e, LLMSIM_EFAIL, "out of memory (calibration)");
    if (!st)
        st = prices(P, W.x, W.d, e);
    int iterations = 0;
    if (!st) {
        out->sse_before = sse(P, W.d);
        st = lm_solve(P, &W, objective(P, W.x, W.d), &iterations, e);
    }
    if (!st)
        st = fit_result(P, &W, iterations, out, e);
    lm_work_free(&W);
    problem_free(P);
    if (st)
        calib_result_free(out);
    return st;
}

void calib_result_free(calib_result *r)
{
    if (!r)
        return;
    free(r->params);
    r->params = NULL;
    r->nparams = 0;
}
