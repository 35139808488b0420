/*
 * test_calibrate — the profile fit recovers a known truth: task times priced
 * with a "true" profile (slower disk reads with a latency, faster writes,
 * slower GEMMs and memory, an overhead per task), with 1% noise, fitted from
 * the profile as shipped; the fitted profile must price the tasks of policies
 * held out from the fit as the truth does, which the shipped one does not.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "profiler/calibrate.h"
#include "plan/plan.h"
#include "tap.h"

#define NRUNS 6
#define NFIT 4

static double sum(const double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

int main(void)
{
    diag e;
    diag_clear(&e);
    model m;
    hwprofile base, truth;
    if (model_load("opt-125m", &m, &e) || hwprofile_load("cpu-only", &base, &e)) {
        CHECK(false, "load: %s", e.msg);
        return tap_done();
    }
    truth = base;
    truth.disk.read.bandwidth_Bps *= 0.7;
    truth.disk.read.latency_s += 200e-6;
    truth.disk.write.bandwidth_Bps *= 1.3;
    truth.cpu.memory_bandwidth_Bps *= 0.8;
    truth.cpu.task_overhead_s = 300e-6;
    for (int j = 0; j < truth.cpu.gemm.npoints; j++)
        truth.cpu.gemm.points[j].flops *= 0.6;

    workload w = {16, 4, 0};
    policy p[NRUNS];
    for (int k = 0; k < NRUNS; k++) {
        policy_init(&p[k]);
        placement ram = {{0, 1, 0}};
        p[k].weights = p[k].kv_cache = p[k].activations = ram;
        p[k].gpu_batch_size = 2;
        p[k].num_gpu_batches = 2;
    }
    p[1].weights = (placement){{0, 0.5, 0.5}};
    p[2].kv_cache = (placement){{0, 0, 1}};
    p[3].weight_quant = (quant){4, 64};
    p[3].weights = (placement){{0, 0.3, 0.7}};
    /* held out: another batch shape, and a mix */
    p[4].gpu_batch_size = 4;
    p[4].num_gpu_batches = 1;
    p[5].weights = (placement){{0, 0.6, 0.4}};
    p[5].kv_cache = (placement){{0, 0.5, 0.5}};

    calib_run runs[NRUNS];
    double *meas[NRUNS] = {0};
    size_t ntasks[NRUNS] = {0};
    for (int k = 0; k < NRUNS; k++) {
        plan pl;
        if (plan_build(&m, &base, &p[k], &w, &pl, &e)) {
            CHECK(false, "plan %d: %s", k, e.msg);
            return tap_done();
        }
        ntasks[k] = pl.ntasks;
        plan_free(&pl);
        meas[k] = malloc(ntasks[k] * sizeof *meas[k]);
        runs[k] = (calib_run){&m, &p[k], &w, meas[k], ntasks[k]};
        CHECK(calib_task_prices(&truth, &runs[k], meas[k], &e) == LLMSIM_OK, "truth prices: %s", e.msg);
        for (size_t i = 0; i < ntasks[k]; i++) /* +-1%, deterministic */
            meas[k][i] *= 1 + 0.01 * sin(7.0 * (double)i + k);
    }
    meas[0][0] = NAN; /* a task without a measurement is left out */

    calib_result r;
    CHECK(calib_fit(&base, runs, NFIT, NULL, &r, &e) == LLMSIM_OK, "fit: %s", e.msg);
    CHECK(r.sse_after < 0.02 * r.sse_before, "task errors shrink: %g -> %g s^2", r.sse_before, r.sse_after);
    CHECK(r.tasks > 100, "tasks fitted: %ld", r.tasks);
    for (int j = 0; j < r.nparams; j++)
        if (strcmp(r.params[j].name, "disk read bandwidth") == 0)
            CHECK_REL(r.params[j].after, truth.disk.read.bandwidth_Bps, 0.05, "disk read bandwidth");
        else if (strcmp(r.params[j].name, "disk read latency") == 0)
            CHECK(fabs(r.params[j].after - truth.disk.read.latency_s) < 60e-6, "disk read latency %g, true %g",
                  r.params[j].after, truth.disk.read.latency_s);

    for (int k = NFIT; k < NRUNS; k++) {
        double *before = malloc(ntasks[k] * sizeof *before), *after = malloc(ntasks[k] * sizeof *after),
               *want = malloc(ntasks[k] * sizeof *want);
        CHECK(calib_task_prices(&base, &runs[k], before, &e) == LLMSIM_OK, "base prices");
        CHECK(calib_task_prices(&r.hw, &runs[k], after, &e) == LLMSIM_OK, "fitted prices");
        CHECK(calib_task_prices(&truth, &runs[k], want, &e) == LLMSIM_OK, "true prices");
        double tb = sum(before, ntasks[k]), ta = sum(after, ntasks[k]), tw = sum(want, ntasks[k]);
        CHECK(fabs(tb - tw) > 0.1 * tw, "held-out run %d: the shipped profile is off (%g vs %g)", k, tb, tw);
        CHECK_REL(ta, tw, 0.03, "held-out run: fitted task time");
        free(before);
        free(after);
        free(want);
    }
    calib_result_free(&r);

    /* a measurement of another plan is refused */
    calib_run bad = runs[0];
    bad.ntasks = ntasks[0] - 1;
    CHECK(calib_fit(&base, &bad, 1, NULL, &r, &e) == LLMSIM_EINPUT, "another plan refused");
    CHECK(strstr(e.msg, "not the same plan") != NULL, "message: %s", e.msg);
    for (int k = 0; k < NRUNS; k++)
        free(meas[k]);
    return tap_done();
}
