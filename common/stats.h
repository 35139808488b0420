/*
 * stats — order statistics of a sample of doubles, for the parts that
 * summarize measurements (the intervals, validate's tables, calibrate's
 * held-out errors, the run-condition probe, serving's percentiles).
 */
#ifndef LLMSIM_COMMON_STATS_H
#define LLMSIM_COMMON_STATS_H

#include <stddef.h>

/* v[0..n) in increasing order (NaNs are not expected). */
void stats_sort(double *v, size_t n);
/* The median of v[0..n) sorted: the middle value, or the mean of the two
 * middle ones; 0 when n is 0. */
double stats_median_sorted(const double *v, size_t n);
/* The quantile q in [0, 1] of v[0..n) sorted, linear between order
 * statistics; 0 when n is 0. */
double stats_quantile_sorted(const double *v, size_t n, double q);

#endif
