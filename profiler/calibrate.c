/* calibrate — see calibrate.h. */
#include "profiler/calibrate.h"

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

static double objective(const problem *P, const double *x, const double *d)
{
    double f = 0;
    for (size_t i = 0; i < P->rows; i++)
        f += (P->y[i] - d[i]) * (P->y[i] - d[i]);
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
    P->y = malloc(P->rows * sizeof *P->y);
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

llmsim_status calib_fit(const hwprofile *base, const calib_run *runs, int nruns, calib_result *out, diag *e)
{
    memset(out, 0, sizeof *out);
    problem *P = calloc(1, sizeof *P);
    if (!P)
        return diag_set(e, LLMSIM_EFAIL, "out of memory (calibration)");
    llmsim_status st = setup(P, base, runs, nruns, e);
    const int np = P->np;
    const size_t rows = P->rows;
    double *x = calloc((size_t)np, sizeof *x), *xt = calloc((size_t)np, sizeof *xt);
    double *d = malloc((rows + 1) * sizeof *d), *dt = malloc((rows + 1) * sizeof *dt);
    double *J = malloc((rows * (size_t)np + 1) * sizeof *J);
    double *A = malloc(((size_t)np * np + 1) * sizeof *A), *M = malloc(((size_t)np * np + 1) * sizeof *M);
    double *g = malloc(((size_t)np + 1) * sizeof *g), *b = malloc(((size_t)np + 1) * sizeof *b);
    double *z = malloc(((size_t)np + 1) * sizeof *z);
    int *free_idx = malloc(((size_t)np + 1) * sizeof *free_idx);
    if (!st && (!x || !xt || !d || !dt || !J || !A || !M || !g || !b || !z || !free_idx))
        st = diag_set(e, LLMSIM_EFAIL, "out of memory (calibration)");
    if (!st)
        st = prices(P, x, d, e);
    double f = st ? 0 : objective(P, x, d), mu = 1e-3;
    if (!st) {
        out->sse_before = 0;
        for (size_t i = 0; i < rows; i++)
            out->sse_before += (P->y[i] - d[i]) * (P->y[i] - d[i]);
    }
    int it = 0, nfree = 0;
    for (; !st && it < 40; it++) {
        /* the Jacobian of the prices by forward differences */
        for (int j = 0; j < np && !st; j++) {
            double h = P->ps[j].mode == PM_LOG ? FD_LOG : FD_ABS;
            memcpy(xt, x, (size_t)np * sizeof *x);
            xt[j] += h;
            st = prices(P, xt, dt, e);
            for (size_t i = 0; !st && i < rows; i++)
                J[i * (size_t)np + (size_t)j] = (dt[i] - d[i]) / h;
        }
        if (st)
            break;
        /* normal equations: A = J'J (+ prior), g = J'r (- prior x) */
        for (int j = 0; j < np; j++) {
            for (int k = j; k < np; k++) {
                double s = 0;
                for (size_t i = 0; i < rows; i++)
                    s += J[i * (size_t)np + (size_t)j] * J[i * (size_t)np + (size_t)k];
                A[j * np + k] = A[k * np + j] = s;
            }
            double s = 0;
            for (size_t i = 0; i < rows; i++)
                s += J[i * (size_t)np + (size_t)j] * (P->y[i] - d[i]);
            g[j] = s;
        }
        nfree = 0;
        for (int j = 0; j < np; j++) {
            if (A[j * np + j] <= 0)
                continue; /* nothing measured depends on it */
            free_idx[nfree++] = j;
            if (P->ps[j].mode == PM_LOG) {
                A[j * np + j] += P->prior;
                g[j] -= P->prior * x[j];
            }
        }
        if (nfree == 0)
            break;
        bool improved = false;
        double fnew = f;
        for (int tries = 0; tries < 12 && !improved; tries++) {
            for (int a = 0; a < nfree; a++) {
                for (int c = 0; c < nfree; c++)
                    M[a * nfree + c] = A[free_idx[a] * np + free_idx[c]];
                M[a * nfree + a] *= 1 + mu;
                b[a] = g[free_idx[a]];
            }
            if (!solve(M, b, z, nfree)) {
                mu *= 10;
                continue;
            }
            memcpy(xt, x, (size_t)np * sizeof *x);
            for (int a = 0; a < nfree; a++)
                xt[free_idx[a]] += z[a];
            clamp(P, xt);
            if ((st = prices(P, xt, dt, e)))
                break;
            fnew = objective(P, xt, dt);
            if (fnew < f) {
                improved = true;
                memcpy(x, xt, (size_t)np * sizeof *x);
                memcpy(d, dt, rows * sizeof *d);
                mu = fmax(mu / 3, 1e-9);
            } else {
                mu *= 4;
            }
        }
        if (st || !improved)
            break;
        double gain = (f - fnew) / f;
        f = fnew;
        if (gain < 1e-7)
            break;
    }
    if (!st) {
        apply(base, P->ps, np, x, &out->hw);
        out->params = calloc((size_t)np + 1, sizeof *out->params);
        if (!out->params)
            st = diag_set(e, LLMSIM_EFAIL, "out of memory (calibration)");
    }
    if (!st) {
        out->nparams = np;
        for (int j = 0; j < np; j++) {
            calib_param *cp = &out->params[j];
            snprintf(cp->name, sizeof cp->name, "%s", P->ps[j].name);
            snprintf(cp->unit, sizeof cp->unit, "%s", P->ps[j].unit);
            cp->before = P->ps[j].base;
            cp->after = *pptr(&out->hw, &P->ps[j]);
            cp->fitted = false;
            for (int a = 0; a < nfree; a++)
                cp->fitted |= free_idx[a] == j;
        }
        out->tasks = (long)rows;
        out->iterations = it;
        out->sse_after = 0;
        for (size_t i = 0; i < rows; i++)
            out->sse_after += (P->y[i] - d[i]) * (P->y[i] - d[i]);
    }
    free(x);
    free(xt);
    free(d);
    free(dt);
    free(J);
    free(A);
    free(M);
    free(g);
    free(b);
    free(z);
    free(free_idx);
    free(P->y);
    free(P->price);
    free(P);
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
