/*
 * profile_gpu — the GPU probes of `llmsim profile`: host<->device copies
 * (pinned and pageable, 4 KiB .. 1 GiB), device-to-device bandwidth, cuBLAS
 * fp16 GEMM throughput over shapes, batched attention (prefill FLOP/s, decode
 * bytes of K+V per second), kernel launch latency and device memory.
 *
 * Method, for every figure: warm-up runs, then repeated runs timed with CUDA
 * events, the median reported with spread = (max-min)/median; a figure whose
 * spread exceeds PROFILE_GPU_SPREAD_FLAG is named in the note.
 *
 * Built from profile_gpu.cu when LLMSIM_CUDA is on, else profile_gpu_stub.c
 * (which also holds the CUDA-free parts below: the statistics and the link
 * fit, built and tested in both configurations). Usable from C and C++.
 */
#ifndef LLMSIM_PROFILER_PROFILE_GPU_H
#define LLMSIM_PROFILER_PROFILE_GPU_H

#include <stdbool.h>
#include <stddef.h>

#include "common/diag.h"
#include "hwprofiles/hwprofile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A measurement whose spread (max-min)/median exceeds this is flagged in the note. */
#define PROFILE_GPU_SPREAD_FLAG 0.10

typedef struct profile_gpu_opts {
    bool quick; /* fewer sizes, shapes and repeats: the whole GPU part well under 10 s */
    /* Called before each probe with a short label ("gpu: h2d_pinned 4 KiB");
     * may be NULL. Not called on the no-GPU path. */
    void (*progress)(const char *what, void *ctx);
    void *progress_ctx;
} profile_gpu_opts;

/*
 * Measure the GPU (the current CUDA device, 0 unless the caller chose
 * another) and fill hw->gpu and hw->links[HW_LINK_*]; both are cleared first,
 * the rest of *hw is left alone. `o` may be NULL (full mode, no progress).
 *
 * Returns LLMSIM_OK in three cases:
 *  - measured: hw->gpu.present is true, every link present with its points;
 *    `note` says which GPU was measured and names the flagged measurements;
 *  - no GPU (cudaGetDeviceCount fails or finds none): hw->gpu.present is
 *    false and `note` says "no GPU: the GPU probes were skipped (...)";
 *  - built without CUDA: present false, `note` says so.
 * Returns LLMSIM_EFAIL when a CUDA or cuBLAS call fails on a present GPU;
 * `e` names the call, function, file and line; hw->gpu and hw->links are
 * left cleared. `note` (may be NULL when note_len is 0) is always a
 * NUL-terminated line, possibly cut to note_len.
 */
llmsim_status profile_gpu(hwprofile *hw, const profile_gpu_opts *o, char *note, size_t note_len,
                          diag *e);

/* ---- the CUDA-free parts (profile_gpu_stub.c) */

/* Median of v[0..n), n >= 1; sorts v in place. *spread (may be NULL) gets
 * (max-min)/median, 0 when the median is 0. */
double profile_gpu_median(double *v, int n, double *spread);

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
llmsim_status profile_gpu_fit_link(hw_link *l, diag *e);

#ifdef __cplusplus
}
#endif

#endif
