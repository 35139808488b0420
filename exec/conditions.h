/*
 * conditions — what a measured run ran under, and whether that disturbed it.
 *
 * A measurement is only as good as the machine was quiet while it ran. The
 * caller brackets the run (engine_run, engine_serve) with cond_begin and
 * cond_end, which take:
 *   - the 1-minute load average and the runnable tasks (/proc/loadavg);
 *   - this process's CPU time and involuntary context switches over the run
 *     (getrusage), against the run's wall time;
 *   - the CPU time the whole machine was busy meanwhile (/proc/stat: user +
 *     nice + system + irq + softirq + steal), less our own: the CPU time
 *     everything else took, the hypervisor's steal included and also given
 *     on its own;
 *   - the CPU clock where the kernel says it (cpufreq's scaling_cur_freq, else
 *     /proc/cpuinfo's "cpu MHz");
 *   - a short fixed probe of CPU and memory (cond_probe_run: a copy and a dot
 *     product over a few MiB, on one thread and on the run's threads) just
 *     before and just after.
 * cond_judge decides from those numbers alone whether the run was disturbed,
 * so that a run read back from the store (cond_field_set) is judged by the
 * same rule as when it was measured.
 *
 * Units are in the names: seconds (_s), CPU-seconds (_cpu_s), bytes per
 * second (_Bps), MHz. A figure that could not be read is NaN, and is not
 * recorded: nothing is invented. Not thread-safe (one run at a time).
 */
#ifndef LLMSIM_EXEC_CONDITIONS_H
#define LLMSIM_EXEC_CONDITIONS_H

#include <stdbool.h>
#include <stddef.h>

/* Other processes' CPU time over a run (with the steal), as a share of the
 * machine's capacity (wall time x cores), above which the run is disturbed.
 * The engine runs a compute thread per core by default and its pool waits at
 * every barrier for the slowest thread, so CPU time taken by others stretches
 * the run at least in proportion; 10% is also the error validate is judged
 * by (the MAPE target), so a disturbance that large is as large as what it
 * measures. Over a short run the limit is on what is left after the
 * counters' resolution (two ticks of /proc/stat per CPU, 0.02 CPU-s each)
 * is taken off: a 0.1 s run is not disturbed by one tick. */
#define COND_OTHERS_LIMIT 0.10
/* The probe's rate after the run against before: a change beyond 10% on one
 * thread means the machine changed under the run (a load that came or went,
 * a neighbour's memory traffic, the clock moved). On every thread, 20%: that
 * pass also runs on the cores where the kernel's own work lands (interrupts,
 * I/O completion, the clean-up after the previous run), so it is noisier.
 * Measured on the development VM (2 vCPUs), quiet, over 14 runs of 1-4 s:
 * one thread within 2%, every thread within 8% but once 15%. */
#define COND_PROBE_LIMIT     0.10
#define COND_PROBE_ALL_LIMIT 0.20
/* How long each of the probe's two passes (one thread, every thread) runs. */
#define COND_PROBE_PASS_S 0.05

/* One reading of the counters (cond_snapshot_take). */
typedef struct cond_snapshot {
    double wall_s;      /* the monotonic clock */
    double self_cpu_s;  /* this process: user + system time */
    double nivcsw;      /* this process: involuntary context switches */
    double busy_cpu_s;  /* the machine since boot: user+nice+system+irq+softirq+steal */
    double steal_cpu_s; /* of which stolen by the hypervisor */
    double load_1m;     /* 1-minute load average */
    double runnable;    /* tasks runnable now, this one included */
} cond_snapshot;

/* What a run ran under. Every figure a double (NaN: not read), so that
 * the table of cond_field_* can record and read them back by name. */
typedef struct exec_conditions {
    bool measured;                          /* cond_begin and cond_end were taken */
    double cores;                           /* online CPUs */
    double threads;                         /* the run's compute threads */
    double load_before, load_after;         /* 1-minute load average */
    double runnable_before, runnable_after; /* runnable tasks, this one included */
    double wall_s;                          /* from cond_begin's reading to cond_end's */
    double cpu_s;                           /* this process's CPU time over it */
    double cpu_per_wall;                    /* cpu_s / wall_s: about `threads` for a busy engine */
    double invol_switches;  /* this process's involuntary context switches over it */
    double others_cpu_s;    /* everything else's CPU time over it, steal included; >= 0 */
    double steal_s;         /* of which stolen by the hypervisor */
    double tick_s;          /* the resolution of /proc/stat's counters, per CPU */
    double cpu_mhz;         /* mean current clock of the online CPUs */
    double probe_before[2]; /* the probe's rate before the run: one thread, `threads` (B/s) */
    double probe_after[2];  /* and after it */
    double probe_ratio;     /* after / before, one thread */
    double probe_all_ratio; /* after / before, `threads` threads */
    double disturbed;       /* 1 disturbed, 0 not (cond_judge at cond_end) */
    cond_snapshot at_begin; /* cond_begin's reading (not recorded) */
} exec_conditions;

/* ---- the pieces, each testable on its own */

/* The busy and steal CPU time (in ticks) of /proc/stat's text (its first,
 * aggregate "cpu" line); false when there is no such line. */
bool cond_parse_stat(const char *text, double *busy_ticks, double *steal_ticks);
/* The 1-minute load and the runnable tasks of /proc/loadavg's text
 * ("0.52 0.58 0.59 3/467 12345"); false when malformed. */
bool cond_parse_loadavg(const char *text, double *load_1m, double *runnable);
/* The mean of /proc/cpuinfo's "cpu MHz" lines; NaN when there is none. */
double cond_parse_cpuinfo_mhz(const char *text);
/* The mean current clock of the online CPUs (MHz): cpufreq where the kernel
 * has it, else /proc/cpuinfo; NaN when neither says. */
double cond_cpu_mhz(void);
/* Read the counters now; what cannot be read is NaN. */
void cond_snapshot_take(cond_snapshot *s);
/* The probe: a fixed copy and dot product over a few MiB per thread for
 * COND_PROBE_PASS_S on one thread, then as long on `threads` threads; the
 * bytes moved per second of each pass (NaN when it could not allocate). */
void cond_probe_run(int threads, double rate_Bps[2]);

/* ---- a run's conditions */

/* Just before the run: the probe, then the first reading. threads: the
 * run's compute threads (0: every core). */
void cond_begin(exec_conditions *c, int threads);
/* Just after the run: the second reading, then (unless skip_probe, as for an
 * interrupted run) the probe again; the figures and the judgement. */
void cond_end(exec_conditions *c, bool skip_probe);

/* Whether conditions c disturbed the run, by the limits above; why gets one
 * sentence per figure over its limit (empty when not disturbed). A figure
 * that is NaN does not count either way. */
bool cond_judge(const exec_conditions *c, char *why, size_t len);
/* The largest of the judged figures over its limit (others' share /
 * COND_OTHERS_LIMIT, the probe's changes / their limits): above 1 the run
 * is disturbed; the least disturbed of several runs has the smallest. NaN
 * when there is nothing to judge by. */
double cond_severity(const exec_conditions *c);
/* Others' CPU time over the run as a share of the machine's capacity (wall
 * x cores); NaN when unknown. (The judgement first takes off what the
 * counters cannot resolve: two ticks per CPU.) */
double cond_others_share(const exec_conditions *c);
/* One line for people: "load 0.30 -> 0.50, engine CPU 1.97 s per s on 2
 * threads, others 0.02 CPU-s (1% of 2 cores), 12 involuntary switches,
 * probe -1%"; the figures that are NaN left out. */
void cond_summary(const exec_conditions *c, char *out, size_t len);

/* ---- the recorded figures, by metric name */

/* The number of named figures, at most COND_MAX_FIELDS. */
#define COND_MAX_FIELDS 24
int cond_field_count(void);
/* Figure i's metric name and value (NaN: not read, not recorded). */
const char *cond_field_get(const exec_conditions *c, int i, double *value);
/* Set the figure of that metric name; false when the name is not one. */
bool cond_field_set(exec_conditions *c, const char *key, double value);
/* Every figure NaN, not measured. */
void cond_clear(exec_conditions *c);

#endif
