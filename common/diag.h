/*
 * diag — status codes and error messages shared by every module.
 *
 * Policy: a function that can fail on user input returns an llmsim_status and
 * fills a caller-owned `diag` with one message that says where (file:line:col
 * when known) and what to fix. LLMSIM_EINPUT is the user's fault and the CLI
 * exits with 2; LLMSIM_EFAIL is ours or the system's and exits with 1. Broken
 * invariants are asserts, not statuses.
 */
#ifndef LLMSIM_COMMON_DIAG_H
#define LLMSIM_COMMON_DIAG_H

#include <stddef.h>

typedef enum llmsim_status {
    LLMSIM_OK = 0,
    LLMSIM_EFAIL = 1,  /* system or internal failure: exit status 1 */
    LLMSIM_EINPUT = 2, /* bad input from the user: exit status 2 */
} llmsim_status;

typedef struct diag {
    llmsim_status status; /* status of the first error recorded */
    char msg[1024];       /* "file:line:col: what is wrong; what to do" */
} diag;

#if defined(__GNUC__)
#define LLMSIM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LLMSIM_PRINTF(a, b)
#endif

void diag_clear(diag *d);

/* Record an error (first one wins); returns `status` so callers can
 * `return diag_set(d, LLMSIM_EINPUT, ...)`. d may be NULL. */
llmsim_status diag_set(diag *d, llmsim_status status, const char *fmt, ...) LLMSIM_PRINTF(3, 4);

/* Same with a position: line and col are 1-based; col 0 omits the column. */
llmsim_status diag_at(diag *d, llmsim_status status, const char *file, size_t line, size_t col,
                      const char *fmt, ...) LLMSIM_PRINTF(6, 7);

/* Prefix the stored message with "context: " (for example the file name). */
void diag_prefix(diag *d, const char *context);

/* For clang's static analyzer only (scripts/scan-build.sh): it analyses one
 * file at a time and does not follow calls into variadic functions, so it
 * cannot see that diag_set and diag_at return their status argument and
 * would follow `st = diag_set(e, LLMSIM_EFAIL, ...)` on as if st could be
 * LLMSIM_OK. These say so; common/diag.c defines the functions
 * with their names in parentheses, which these macros leave alone. */
#if defined(__clang_analyzer__)
#define diag_set(d, status, ...) (diag_set((d), (status), __VA_ARGS__), (status))
#define diag_at(d, status, ...) (diag_at((d), (status), __VA_ARGS__), (status))
#endif

#endif
