/*
 * profiler — measure the machine llmsim runs on and describe it as a
 * hardware profile (`llmsim profile`).
 *
 * Method, for every figure: a warm-up, then repeated timed runs with the
 * monotonic clock; the median is reported with its spread, (max - min) /
 * median; a measurement whose spread exceeds PROFILE_SPREAD_FLAG is flagged
 * (listed in the profile's notes and the summary) after it has been measured
 * again, as many times again, and taken over all its samples. The CPU's GEMM
 * table, weight reads and attention are timed instead in interleaved rounds
 * (every shape once, then again) and report the mean without the fastest and
 * slowest sample: a virtual machine's speed drifts by 20% and more over
 * seconds, and a figure taken in one burst is that moment's.
 * What is measured:
 *  - CPU: memory copy bandwidth with 1 .. N threads (STREAM's convention:
 *    bytes read + bytes written per second); the engine's GEMM (exec/cpu
 *    k_linear over fp16 weights) as a table of rows m x square shapes n = k;
 *    the rate at which the engine's decode GEMV (m = 1) reads fp16 weights
 *    out of working sets from 8 MiB (in the caches) to 4x the last-level
 *    cache, at least 1 GiB (from DRAM) -- what a decode step over weights
 *    resident in RAM, or over a layer just dequantized, reads at;
 *    the engine's decode attention (fp16 K and V converted and attended) in
 *    bytes of K and V per second; cores and memory from the system.
 *  - Disk: sequential O_DIRECT reads and writes of block sizes from 256 KiB to
 *    64 MiB at queue depths 1 to 4 (that many threads in flight), in a fresh
 *    directory under --disk-dir that is removed afterwards, also on error and
 *    on ^C; free space from statvfs. The link keeps the queue-depth-1 points
 *    and a latency + bandwidth fitted to them (what the engine's single I/O
 *    thread does). Then the compute a transfer takes beside it: the decode
 *    GEMV over the largest working set timed alone and beside one O_DIRECT
 *    stream (reads, then writes), in alternating phases; the time lost per GB
 *    moved (disk.read_loss_s_per_GB, write_loss_s_per_GB).
 *  - GPU, when one is present: profiler/profile_gpu.h.
 */
#ifndef LLMSIM_PROFILER_PROFILER_H
#define LLMSIM_PROFILER_PROFILER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/strbuf.h"
#include "hwprofiles/hwprofile.h"

#define PROFILE_SPREAD_FLAG HW_SPREAD_LIMIT
/* The group size the dequantization probe measures at (FlexGen's). */
#define PROFILE_DEQUANT_GROUP 64

typedef struct profile_opts {
    const char *disk_dir;  /* NULL: $TMPDIR or /tmp */
    bool quick;            /* a fast, coarser profile (tests): under 15 s */
    bool progress;         /* progress lines on stderr */
    const char *name;      /* profile name; NULL: "measured-<host>" */
    const char *command;   /* recorded in the provenance */
    volatile sig_atomic_t *interrupt;
} profile_opts;

/* Measure and fill hw. The summary (one line per figure, flagged ones
 * marked) goes to `summary`. LLMSIM_EINPUT for a bad --disk-dir (missing,
 * read-only, full): nothing is left behind. */
llmsim_status profile_run(const profile_opts *o, hwprofile *hw, strbuf *summary, diag *e);

/* The disk as it is now: one write pass and then one read pass over a
 * PROFILE_DISK_NOW_BYTES file, in PROFILE_DISK_NOW_BLOCK blocks at queue
 * depth 1 with O_DIRECT (as the profile's link points), in a fresh directory
 * under dir (NULL: $TMPDIR or /tmp) that is removed afterwards. About 0.5 s.
 * `llmsim validate --check-disk` runs it around each run that uses the disk:
 * a virtual disk's rate can move by 2x between minutes, and a prediction
 * made with the profile's rate is then wrong by that much whatever the model. */
#define PROFILE_DISK_NOW_BLOCK ((size_t)16 << 20)
#define PROFILE_DISK_NOW_BYTES ((uint64_t)256 << 20)
llmsim_status profile_disk_now(const char *dir, double *read_Bps, double *write_Bps, diag *e);

/* One disk figure measured as profile_run measures it: in a fresh directory
 * under dir (removed afterwards), a file of `bytes` written once untimed,
 * then reps passes of `block`-byte O_DIRECT writes or reads by qd threads
 * (1..4), each on its own part of the file, measured again when their spread
 * exceeds PROFILE_SPREAD_FLAG; the median rate (bytes/s) and its spread.
 * bench/disk_vs_fio.sh pairs each figure in time with fio's, which the
 * profile's noisy neighbours (a virtual disk's rate moves by 2x between
 * minutes) cannot do over a whole profile. */
llmsim_status profile_disk_figure(const char *dir, uint64_t bytes, size_t block, int qd, bool write,
                                  int reps, double *Bps, double *spread, diag *e);

#endif
