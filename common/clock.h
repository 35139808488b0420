/*
 * clock — the monotonic clock in seconds, for timing tasks, searches,
 * probes and benchmarks.
 */
#ifndef LLMSIM_COMMON_CLOCK_H
#define LLMSIM_COMMON_CLOCK_H

#include <time.h>

static inline double llmsim_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
