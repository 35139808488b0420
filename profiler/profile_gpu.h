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
 * (which measures nothing and says why). The statistics and the link fit
 * the probes use are in fit.h, built in both configurations. Usable from C
 * and C++.
 */
#ifndef LLMSIM_PROFILER_PROFILE_GPU_H
#define LLMSIM_PROFILER_PROFILE_GPU_H

#include <stdbool.h>
#include <stddef.h>

#include "common/diag.h"
#include "hwprofiles/hwprofile.h"
#include "profiler/fit.h"

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

#ifdef __cplusplus
}
#endif

#endif
