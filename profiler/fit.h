/*
 * fit — the statistics and the fits the probes share, built in every
 * configuration (no CUDA needed): the median and spread of repeated runs,
 * and the latency + bandwidth fit of a link over measured transfer sizes.
 * Used by the CPU and disk probes (profiler.c), the GPU probes
 * (profile_gpu.cu) and the tests. Usable from C and C++.
 */
#ifndef LLMSIM_PROFILER_FIT_H
#define LLMSIM_PROFILER_FIT_H

#include "common/diag.h"
#include "hwprofiles/hwprofile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Median of v[0..n), n >= 1; sorts v in place. *spread (may be NULL) gets
 * (max-min)/median, 0 when the median is 0. */
double profile_median(double *v, int n, double *spread);

/*
 * Fit time = latency_s + bytes / bandwidth_Bps to l->points by least squares
 * in relative error: minimize sum(((latency + bytes/bw) - time) / time)^2.
 * Each point counts by its relative error, so the small sizes (which fix the
 * latency) and the large ones (which fix the bandwidth) weigh alike, where a
 * plain fit in seconds would be decided by the largest sizes alone.
 * Constraints: latency >= 0 (else refit with latency 0) and bandwidth > 0
 * (else the bandwidth achieved at the largest size, latency refit). The
 * bandwidth is clamped into [HW_MIN_BANDWIDTH, HW_MAX_BANDWIDTH] and the
 * latency to HW_MAX_LATENCY, so the profile loads back. Sets l->bandwidth_Bps
 * and l->latency_s; returns LLMSIM_EINPUT (with a message) when there are no
 * points or a point has a size or time that is not positive and finite.
 */
llmsim_status profile_link_fit(hw_link *l, diag *e);

#ifdef __cplusplus
}
#endif

#endif
