/*
 * bench_disk — one disk figure of `llmsim profile`, measured by the
 * profiler's own code (profile_disk_figure): a fresh file in DIR written
 * once, then passes of O_DIRECT transfers of BLOCK KiB by QD threads. It
 * lets bench/disk_vs_fio.sh put each figure right beside fio's run of the
 * same figure, so that both see the disk in the same minute.
 *   bench_disk DIR BLOCK_KiB QD read|write [FILE_MiB (1024)] [REPS (3)]
 * Prints "MB/s spread%". Exit 2 on bad arguments; ^C removes the file.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/offload.h"
#include "profiler/profiler.h"

static void on_signal(int sig)
{
    (void)sig;
    offload_remove_all_from_signal();
    _exit(130);
}

static long arg_long(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v <= 0) {
        fprintf(stderr, "bench_disk: %s must be a positive whole number, not '%s'\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 7 || (strcmp(argv[4], "read") && strcmp(argv[4], "write"))) {
        fprintf(stderr,
                "usage: bench_disk DIR BLOCK_KiB QD read|write [FILE_MiB (1024)] [REPS (3)]\n");
        return 2;
    }
    size_t block = (size_t)arg_long(argv[2], "BLOCK_KiB") << 10;
    int qd = (int)arg_long(argv[3], "QD");
    uint64_t bytes = (uint64_t)(argc > 5 ? arg_long(argv[5], "FILE_MiB") : 1024) << 20;
    int reps = argc > 6 ? (int)arg_long(argv[6], "REPS") : 3;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double bps, spread;
    diag e = {0};
    llmsim_status st = profile_disk_figure(argv[1], bytes, block, qd, strcmp(argv[4], "write") == 0,
                                           reps, &bps, &spread, &e);
    if (st) {
        fprintf(stderr, "bench_disk: %s\n", e.msg);
        return st == LLMSIM_EINPUT ? 2 : 1;
    }
    printf("%.1f %.1f%%\n", bps / 1e6, 100 * spread);
    return 0;
}
