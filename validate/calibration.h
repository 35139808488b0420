/*
 * calibration — the work of `llmsim calibrate`: the measured runs it fits
 * (from the store, with the inputs they were run with and every task's
 * measured time under its plan id), the runs held out to judge the fit, the
 * fit itself (profiler/calibrate.h), the simulation's error on total time
 * before and after, on the runs of the fit and on the held-out ones, and the
 * fitted profile written with its provenance and recorded as a 'calibrate'
 * run.
 */
#ifndef LLMSIM_VALIDATE_CALIBRATION_H
#define LLMSIM_VALIDATE_CALIBRATION_H

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "profiler/calibrate.h"

#define CALIBRATION_MAX_RUNS 1024

/* A measured run and what the fit needs of it. */
typedef struct calibration_run {
    int64_t id;
    char name[96];
    model m;
    policy p;
    workload w;
    double *measured;         /* [ntasks] by plan task index; NaN: not measured */
    size_t ntasks;
    double measured_s;        /* the run's measured total */
    double before_s, after_s; /* simulated totals with the base and the fitted profile */
    bool held_out;
    char inputs[HW_FIT_INPUT_LEN]; /* "MODEL:POLICY:WORKLOAD" content hashes */
} calibration_run;

typedef struct calibration {
    const char *db_path;
    hwprofile base;           /* the profile the fit starts from */
    calibration_run *runs;    /* [nruns] */
    int nruns, nfit, nheld;
    calib_result fit;         /* fit.hw: the calibrated profile */
    double mape[2][2];        /* [fit | held out][before | after], percent; NaN without held-out runs */
    const volatile sig_atomic_t *interrupt; /* set by the caller: loading and fitting stop when
                                             * it becomes nonzero (LLMSIM_EFAIL "interrupted") */
} calibration;

/* Start from profile `base` over the store at db_path. */
llmsim_status calibration_init(calibration *c, const char *db_path, const hwprofile *base, diag *e);
void calibration_free(calibration *c);

/* The measure runs of ids (a validate run stands for the measure runs of its
 * policies) or, with no ids, of the newest validate run of the base
 * profile's name; each loaded with its inputs and measured task times. */
llmsim_status calibration_runs_load(calibration *c, const int64_t *ids, int nids, diag *e);

/* The runs that judge the fit: those of `held` (each must be one of the
 * runs), or without any every `every`-th run (0: none). LLMSIM_EINPUT when
 * every run would be held out. */
llmsim_status calibration_hold_out(calibration *c, const int64_t *held, int nheld, long long every,
                                   diag *e);

/* Fit the base to the runs that are not held out, name the result (NULL:
 * the base's name + "-calibrated"), stamp its provenance with the command,
 * and simulate every run with both profiles. */
llmsim_status calibration_fit(calibration *c, const char *name, const char *command, diag *e);

/* Write the calibrated profile to out_path, then record the run; *obj gets
 * the result's JSON (with its run_id; caller owns). */
llmsim_status calibration_record(const calibration *c, const char *out_path, const char *command,
                                 cJSON **obj, int64_t *run_id, diag *e);

#endif
