/*
 * calibrate — fit a hardware profile's parameters to measured task times.
 *
 * Every task of a plan is priced from the profile (plan/plan.h); a measured
 * run gives each task's real duration under the same plan id. The fit moves
 * the parameters the tasks depend on so that the priced durations match the
 * measured ones in the least-squares sense:
 *   - each link (disk read, disk write, host<->device): latency per copy and
 *     bandwidth;
 *   - each point of the GEMM tables (efficiency by shape: the rate at that
 *     m x n x k, interpolated between points as the cost model does);
 *   - memory bandwidth (memory passes, dequantization, memory-bound GEMMs),
 *     the attention throughput, and a fixed overhead per compute task.
 * Rates are fitted as log-multipliers (a rate stays positive), latencies and
 * overheads as seconds (clamped at 0). The solver is Levenberg-Marquardt
 * with a Jacobian by finite differences of the plan's prices, and a weak
 * prior toward the profile as given, so that a parameter the runs cannot
 * tell apart from another stays where it was instead of drifting.
 */
#ifndef LLMSIM_PROFILER_CALIBRATE_H
#define LLMSIM_PROFILER_CALIBRATE_H

#include <signal.h>
#include <stddef.h>

#include "hwprofiles/hwprofile.h"
#include "models/model.h"
#include "workload/workload.h"
#include "policies/policy.h"

/* One measured run: its inputs and the measured duration of every task of
 * the plan that (model, base profile, policy, workload) lowers to, by task
 * index (NaN: not measured). */
typedef struct calib_run {
    const model *m;
    const policy *p;
    const workload *w;
    const double *measured;
    size_t ntasks;
} calib_run;

typedef struct calib_param {
    char name[80];   /* "disk read bandwidth", "CPU GEMM m=16 n=2048 k=2048", ... */
    char unit[8];    /* "B/s", "FLOP/s", "s" */
    double before, after;
    bool fitted;     /* some task depends on it */
} calib_param;

typedef struct calib_result {
    hwprofile hw;          /* the base with the fitted parameters */
    calib_param *params;   /* owned */
    int nparams;
    long tasks;            /* measured tasks fitted */
    double sse_before, sse_after; /* sum of squared task errors, s^2 */
    int iterations;
} calib_result;

/* Fit base to the runs. LLMSIM_EINPUT when a run's plan has another number
 * of tasks than its measurement (another plan) or no task is measured. When
 * *stop becomes nonzero (a signal handler's flag; NULL: never) the fit stops
 * within one iteration: LLMSIM_EFAIL "interrupted". */
llmsim_status calib_fit(const hwprofile *base, const calib_run *runs, int nruns,
                        const volatile sig_atomic_t *stop, calib_result *out, diag *e);
void calib_result_free(calib_result *r);

/* The priced durations of a run's plan under hw, by task index ([ntasks]). */
llmsim_status calib_task_prices(const hwprofile *hw, const calib_run *run, double *out, diag *e);

#endif
