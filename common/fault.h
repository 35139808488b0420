/*
 * fault — test-only fault injection: with LLMSIM_FAULT="SITE:N[,SITE:N...]"
 * in the environment, the Nth call (from 1) at SITE fails as an I/O error
 * (EIO) would, so that tests can reach the error paths of the disk tier, the
 * store and the output files without a failing disk. Sites:
 *   offload_read, offload_write   exec/offload.c's transfers
 *   store_write                   every write SQLite makes to a store file
 *   file_write                    atomicfile_commit (every -o, --trace, ... file)
 * one that disturbs measurements instead, so that a test can make a noisy
 * profile on a quiet machine:
 *   noise                         every Nth sample the profiler times takes
 *                                 twice as long (fault_stretch)
 * and two that raise a signal instead, at the points where a long command
 * looks whether it was interrupted (fault_signal_point), so that a test can
 * interrupt it at a known step, however fast the machine:
 *   interrupt, terminate          raise SIGINT, SIGTERM
 * Unset (the normal case) it costs one load per call. Thread-safe.
 */
#ifndef LLMSIM_COMMON_FAULT_H
#define LLMSIM_COMMON_FAULT_H

#include <stdbool.h>

typedef enum fault_site {
    FAULT_OFFLOAD_READ,
    FAULT_OFFLOAD_WRITE,
    FAULT_STORE_WRITE,
    FAULT_FILE_WRITE,
    FAULT_INTERRUPT,
    FAULT_TERMINATE,
    FAULT_NOISE,
    FAULT_NSITES
} fault_site;

/* Count a call at site s; true when it is the one that must fail. */
bool fault_now(fault_site s);
/* Whether LLMSIM_FAULT names site s at all. */
bool fault_armed(fault_site s);
/* A point where a command looks for an interruption: counts a call at
 * interrupt and terminate, and raises the signal on the one named. */
void fault_signal_point(void);
/* A measured duration: secs, or with noise:N armed, twice secs on every Nth
 * call. */
double fault_stretch(double secs);

#endif
