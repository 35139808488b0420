/*
 * interval — how far a prediction can be trusted: a p10-p90 interval of the
 * total time, from what the profile knows of its own figures.
 *
 * Two sources, the better one that the profile has:
 *  - a calibrated profile with held-out runs (hw_calibration): the p10 and
 *    p90 of the simulation's error on those runs after the fit. An error
 *    err = (predicted - measured) / measured puts the measurement at
 *    predicted / (1 + err), so the interval is [T / (1 + p90), T / (1 + p10)].
 *  - otherwise the spreads of the measured figures. The figures are grouped
 *    into classes that move together when a machine drifts (the CPU's GEMM
 *    table, its weight-read table, its memory bandwidth, its attention, its
 *    dequantization, the disk's reads, its writes, the GPU's tables, its host
 *    links). Each class
 *    gets a relative standard deviation of half the median spread of its
 *    points (a spread is (max - min) / median of about five runs, and the
 *    expected range of five normal samples is 2.3 standard deviations: half
 *    of it is a slightly wide sigma), and the prediction's elasticity to the
 *    class by a 5% change of its rates through the analytic model. The total
 *    is lognormal with sigma^2 = sum (elasticity x sigma)^2, and the interval
 *    is T exp(-/+ 1.2816 sigma). A profile without spreads (a spec sheet)
 *    has no interval: lo = hi = T, source "none".
 * The elasticities are the analytic model's; the simulator's total uses the
 * same relative interval (its tasks are priced by the same primitives).
 */
#ifndef LLMSIM_COSTMODEL_INTERVAL_H
#define LLMSIM_COSTMODEL_INTERVAL_H

#include "costmodel/analytic.h"

typedef enum cm_interval_source {
    CM_INTERVAL_NONE,        /* no spreads, not calibrated */
    CM_INTERVAL_SPREADS,     /* the measured figures' spreads */
    CM_INTERVAL_CALIBRATION, /* the calibration's held-out errors */
} cm_interval_source;
extern const char *const cm_interval_source_names[3];

typedef struct cm_interval {
    cm_interval_source source;
    double lo, hi;   /* multipliers of the predicted total: p10 = lo T, p90 = hi T */
    double sigma;    /* spreads: the total's relative sigma (log); else 0 */
} cm_interval;

/* The interval of policy p's total time for model m on hw with workload w. */
llmsim_status cm_predict_interval(const model *m, const hwprofile *hw, const policy *p, const workload *w,
                                  cm_interval *out, diag *e);

#endif
