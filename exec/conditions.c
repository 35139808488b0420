/* conditions — see conditions.h. */
#include "exec/conditions.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/stats.h"

// ---- reading /proc and /sys

/* The first len - 1 bytes of a file, NUL-ended; false when it cannot be read. */
static bool read_text(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

bool cond_parse_stat(const char *text, double *busy_ticks, double *steal_ticks)
{
    /* cpu  user nice system idle iowait irq softirq steal guest guest_nice;
     * guest time is already in user (the kernel counts it twice) */
    const char *p = text;
    while (p && strncmp(p, "cpu ", 4) != 0) {
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    if (!p)
        return false;
    double v[8] = {0};
    int n = sscanf(p + 4, "%lf %lf %lf %lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7]);
    if (n < 4)
        return false;
    /* irq, softirq and steal are absent on old kernels: 0 */
    *busy_ticks = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *steal_ticks = v[7];
    return true;
}

bool cond_parse_loadavg(const char *text, double *load_1m, double *runnable)
{
    double l1, l5, l15, run, total;
    if (sscanf(text, "%lf %lf %lf %lf/%lf", &l1, &l5, &l15, &run, &total) != 5)
        return false;
    *load_1m = l1;
    *runnable = run;
    return true;
}

double cond_parse_cpuinfo_mhz(const char *text)
{
    double sum = 0;
    int n = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        double mhz;
        if (strncmp(p, "cpu MHz", 7) == 0 &&
            sscanf(strchr(p, ':') ? strchr(p, ':') + 1 : "", "%lf", &mhz) == 1 && mhz > 0) {
            sum += mhz;
            n++;
        }
    }
    return n ? sum / n : NAN;
}

double cond_cpu_mhz(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double sum = 0;
    int n = 0;
    for (long c = 0; c < cores && c < 4096; c++) {
        char path[96], buf[64];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/cpufreq/scaling_cur_freq", c);
        double khz;
        if (read_text(path, buf, sizeof buf) && sscanf(buf, "%lf", &khz) == 1 && khz > 0) {
            sum += khz / 1000;
            n++;
        }
    }
    if (n)
        return sum / n;
    size_t len = 1 << 20; /* a line per CPU of each field: large machines have large files */
    char *text = malloc(len);
    double mhz = text && read_text("/proc/cpuinfo", text, len) ? cond_parse_cpuinfo_mhz(text) : NAN;
    free(text);
    return mhz;
}

void cond_snapshot_take(cond_snapshot *s)
{
    s->wall_s = llmsim_now_s();
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        s->self_cpu_s = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
                        (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
        s->nivcsw = (double)ru.ru_nivcsw;
    } else {
        s->self_cpu_s = s->nivcsw = NAN;
    }
    char buf[4096];
    double busy, steal;
    const long hz = sysconf(_SC_CLK_TCK);
    if (hz > 0 && read_text("/proc/stat", buf, sizeof buf) && cond_parse_stat(buf, &busy, &steal)) {
        s->busy_cpu_s = busy / (double)hz;
        s->steal_cpu_s = steal / (double)hz;
    } else {
        s->busy_cpu_s = s->steal_cpu_s = NAN;
    }
    if (!read_text("/proc/loadavg", buf, sizeof buf) ||
        !cond_parse_loadavg(buf, &s->load_1m, &s->runnable))
        s->load_1m = s->runnable = NAN;
}

// ---- the probe

/* Per thread: 2 MiB copied and dotted per unit, its source and destination
 * 4 MiB in all: larger than most L2 caches, so memory and the shared cache
 * are in it as well as the core. */
#define PROBE_FLOATS      ((size_t)512 * 1024)
#define PROBE_MAX_THREADS 256
#define PROBE_WARMUP_S    0.01
#define PROBE_WINDOWS     5

typedef struct probe_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool go;
} probe_gate;

typedef struct probe_worker {
    float *src, *dst; /* [PROBE_FLOATS] each */
    probe_gate *gate; /* NULL: start at once */
    double rate_Bps;  /* the median of the pass's windows */
    float sink;       /* the dot products, so that the work is not optimized out */
} probe_worker;

/* One unit: dst = src * 0.5 + 1, and the dot product of the two. */
static float probe_unit(float *restrict dst, const float *restrict src)
{
    float acc[8] = {0};
    for (size_t i = 0; i < PROBE_FLOATS; i += 8)
        for (int k = 0; k < 8; k++) {
            dst[i + k] = src[i + k] * 0.5f + 1.0f;
            acc[k] += src[i + k] * dst[i + k];
        }
    return acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

/* A pass: a warm-up (an idle core, a VM's idle vCPU above all, takes a while
 * to come to speed), then PROBE_WINDOWS windows of units; the median
 * window's rate, so that a blip of a millisecond does not count and a load
 * that shares the core all along does. */
static void *probe_main(void *arg)
{
    probe_worker *w = arg;
    if (w->gate) {
        pthread_mutex_lock(&w->gate->mu);
        while (!w->gate->go)
            pthread_cond_wait(&w->gate->cv, &w->gate->mu);
        pthread_mutex_unlock(&w->gate->mu);
    }
    for (double t = llmsim_now_s(); llmsim_now_s() - t < PROBE_WARMUP_S;)
        w->sink += probe_unit(w->dst, w->src);
    double rate[PROBE_WINDOWS];
    for (int k = 0; k < PROBE_WINDOWS; k++) {
        double t0 = llmsim_now_s(), t1, bytes = 0;
        do {
            w->sink += probe_unit(w->dst, w->src);
            bytes += 2.0 * sizeof(float) * PROBE_FLOATS;
            t1 = llmsim_now_s();
        } while (t1 - t0 < COND_PROBE_PASS_S / PROBE_WINDOWS);
        rate[k] = bytes / (t1 - t0);
    }
    stats_sort(rate, PROBE_WINDOWS);
    w->rate_Bps = rate[PROBE_WINDOWS / 2];
    return NULL;
}

/* The pass on n threads (the workers' buffers ready): bytes per second, NaN
 * when a thread could not start. */
static double probe_pass(probe_worker *w, int n)
{
    if (n == 1) {
        w[0].gate = NULL;
        probe_main(&w[0]);
        return w[0].rate_Bps;
    }
    probe_gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    pthread_t th[PROBE_MAX_THREADS];
    int started = 0;
    for (; started < n; started++) {
        w[started].gate = &gate;
        if (pthread_create(&th[started], NULL, probe_main, &w[started]) != 0)
            break;
    }
    pthread_mutex_lock(&gate.mu);
    gate.go = true;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    /* each thread's own rate, summed: a thread that woke later than the
     * others shifts its windows, it does not stretch them */
    double rate = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        rate += w[i].rate_Bps;
    }
    return started == n ? rate : NAN;
}

void cond_probe_run(int threads, double rate_Bps[2])
{
    rate_Bps[0] = rate_Bps[1] = NAN;
    int n = threads < 1 ? 1 : threads > PROBE_MAX_THREADS ? PROBE_MAX_THREADS : threads;
    probe_worker *w = calloc((size_t)n, sizeof *w);
    bool ok = w != NULL;
    for (int i = 0; i < n && ok; i++) {
        w[i].src = aligned_alloc(64, PROBE_FLOATS * sizeof(float));
        w[i].dst = aligned_alloc(64, PROBE_FLOATS * sizeof(float));
        ok = w[i].src && w[i].dst;
        for (size_t k = 0; ok && k < PROBE_FLOATS; k++) { /* touched: no page faults timed */
            w[i].src[k] = (float)(k % 97) * 0.01f;
            w[i].dst[k] = 0;
        }
    }
    if (ok) {
        rate_Bps[0] = probe_pass(w, 1);
        rate_Bps[1] = probe_pass(w, n);
    }
    for (int i = 0; w && i < n; i++) {
        free(w[i].src);
        free(w[i].dst);
    }
    free(w);
}

// ---- the recorded figures

/* Every figure by metric name, in the order they are recorded. */
static const struct {
    const char *key;
    size_t off;
} fields[] = {
    {"cpu_cores", offsetof(exec_conditions, cores)},
    {"threads_used", offsetof(exec_conditions, threads)},
    {"load_avg_1m_before", offsetof(exec_conditions, load_before)},
    {"load_avg_1m_after", offsetof(exec_conditions, load_after)},
    {"runnable_before", offsetof(exec_conditions, runnable_before)},
    {"runnable_after", offsetof(exec_conditions, runnable_after)},
    {"engine_wall_s", offsetof(exec_conditions, wall_s)},
    {"engine_cpu_s", offsetof(exec_conditions, cpu_s)},
    {"cpu_per_wall", offsetof(exec_conditions, cpu_per_wall)},
    {"involuntary_ctx_switches", offsetof(exec_conditions, invol_switches)},
    {"others_cpu_s", offsetof(exec_conditions, others_cpu_s)},
    {"steal_s", offsetof(exec_conditions, steal_s)},
    {"cpu_mhz", offsetof(exec_conditions, cpu_mhz)},
    {"probe_1t_before_Bps", offsetof(exec_conditions, probe_before[0])},
    {"probe_all_before_Bps", offsetof(exec_conditions, probe_before[1])},
    {"probe_1t_after_Bps", offsetof(exec_conditions, probe_after[0])},
    {"probe_all_after_Bps", offsetof(exec_conditions, probe_after[1])},
    {"probe_ratio", offsetof(exec_conditions, probe_ratio)},
    {"probe_all_ratio", offsetof(exec_conditions, probe_all_ratio)},
    {"disturbed", offsetof(exec_conditions, disturbed)},
};

// ---- a run's conditions

void cond_clear(exec_conditions *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < cond_field_count(); i++)
        *(double *)((char *)c + fields[i].off) = NAN;
    c->tick_s = NAN;
}

/* The threads the probe runs on: the run's, at most one per core. */
static int probe_threads(const exec_conditions *c)
{
    return (int)fmin(c->threads, c->cores);
}

void cond_begin(exec_conditions *c, int threads)
{
    cond_clear(c);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c->cores = cores > 0 ? (double)cores : NAN;
    c->threads = threads > 0 ? threads : cores > 0 ? (double)cores : 1;
    c->cpu_mhz = cond_cpu_mhz();
    cond_probe_run(probe_threads(c), c->probe_before);
    cond_snapshot_take(&c->at_begin);
    c->load_before = c->at_begin.load_1m;
    c->runnable_before = c->at_begin.runnable;
}

void cond_end(exec_conditions *c, bool skip_probe)
{
    cond_snapshot s;
    cond_snapshot_take(&s);
    const cond_snapshot *b = &c->at_begin;
    const long hz = sysconf(_SC_CLK_TCK);
    c->measured = true;
    c->tick_s = hz > 0 ? 1.0 / (double)hz : NAN;
    c->load_after = s.load_1m;
    c->runnable_after = s.runnable;
    c->wall_s = s.wall_s - b->wall_s;
    c->cpu_s = s.self_cpu_s - b->self_cpu_s;
    c->cpu_per_wall = c->wall_s > 0 ? c->cpu_s / c->wall_s : NAN;
    c->invol_switches = s.nivcsw - b->nivcsw;
    /* the two clocks differ by /proc/stat's resolution: a small negative
     * difference is no CPU time at all */
    c->others_cpu_s = fmax(0, (s.busy_cpu_s - b->busy_cpu_s) - c->cpu_s);
    if (isnan(s.busy_cpu_s) || isnan(b->busy_cpu_s) || isnan(c->cpu_s))
        c->others_cpu_s = NAN;
    c->steal_s = s.steal_cpu_s - b->steal_cpu_s;
    if (!skip_probe) { /* NaN where a pass could not run */
        cond_probe_run(probe_threads(c), c->probe_after);
        c->probe_ratio = c->probe_after[0] / c->probe_before[0];
        c->probe_all_ratio = c->probe_after[1] / c->probe_before[1];
    }
    c->disturbed = cond_judge(c, NULL, 0) ? 1 : 0;
}

// ---- the judgement

double cond_others_share(const exec_conditions *c)
{
    double cap = c->wall_s * c->cores;
    return cap > 0 && !isnan(c->others_cpu_s) ? c->others_cpu_s / cap : NAN;
}

/* Others' share beyond what the counters can tell from nothing: each CPU's
 * counters are read at both ends, each to within a tick. */
static double others_excess(const exec_conditions *c)
{
    double res = 2 * c->cores * (c->tick_s > 0 ? c->tick_s : 0.01);
    return fmax(0, c->others_cpu_s - res) / (c->wall_s * c->cores);
}

/* The probe's change on pass k (0: one thread, 1: every thread) over its
 * limit; NaN when not measured. */
static double probe_over(const exec_conditions *c, int k)
{
    double r = k ? c->probe_all_ratio : c->probe_ratio;
    return isfinite(r) && r > 0 ? fabs(r - 1) / (k ? COND_PROBE_ALL_LIMIT : COND_PROBE_LIMIT) : NAN;
}

double cond_severity(const exec_conditions *c)
{
    double s = NAN;
    if (!isnan(cond_others_share(c)))
        s = others_excess(c) / COND_OTHERS_LIMIT;
    for (int k = 0; k < 2; k++)
        if (!isnan(probe_over(c, k)))
            s = fmax(isnan(s) ? 0 : s, probe_over(c, k));
    return s;
}

bool cond_judge(const exec_conditions *c, char *why, size_t len)
{
    char buf[512] = "";
    size_t n = 0;
    double others = cond_others_share(c);
    if (!isnan(others) && others_excess(c) > COND_OTHERS_LIMIT) {
        n += (size_t)snprintf(
            buf + n, sizeof buf - n,
            "other processes took %.2f CPU-s during the %.2f s run, %.0f%% of the "
            "%.0f cores (limit %.0f%%)",
            c->others_cpu_s, c->wall_s, 100 * others, c->cores, 100 * COND_OTHERS_LIMIT);
        if (c->steal_s > 0.5 * c->others_cpu_s)
            n += (size_t)snprintf(buf + n, sizeof buf - n,
                                  ", %.2f s of it stolen by the hypervisor", c->steal_s);
    }
    for (int k = 0; k < 2; k++) {
        double r = k ? c->probe_all_ratio : c->probe_ratio;
        if (probe_over(c, k) > 1 && n < sizeof buf)
            n += (size_t)snprintf(
                buf + n, sizeof buf - n,
                "%sthe CPU and memory probe on %s ran %.0f%% %s after the run than "
                "before (limit %.0f%%)",
                n ? "; " : "", k ? "every thread" : "one thread", 100 * fabs(r - 1),
                r < 1 ? "slower" : "faster", 100 * (k ? COND_PROBE_ALL_LIMIT : COND_PROBE_LIMIT));
    }
    if (why && len)
        snprintf(why, len, "%s", buf);
    return buf[0] != '\0';
}

void cond_summary(const exec_conditions *c, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
#define PUT(...)                                                                                   \
    do {                                                                                           \
        if (n < len)                                                                               \
            n += (size_t)snprintf(out + n, len - n, __VA_ARGS__);                                  \
    } while (0)
    if (!isnan(c->load_before) && !isnan(c->load_after))
        PUT("load %.2f -> %.2f", c->load_before, c->load_after);
    if (!isnan(c->cpu_per_wall))
        PUT("%sengine CPU %.2f s per s on %.0f threads", n ? ", " : "", c->cpu_per_wall,
            c->threads);
    if (!isnan(c->others_cpu_s))
        PUT("%sothers %.2f CPU-s (%.0f%% of %.0f cores)", n ? ", " : "", c->others_cpu_s,
            100 * c->others_cpu_s / (c->wall_s * c->cores), c->cores);
    if (c->steal_s > 0)
        PUT("%ssteal %.2f s", n ? ", " : "", c->steal_s);
    if (!isnan(c->invol_switches))
        PUT("%s%.0f involuntary switches", n ? ", " : "", c->invol_switches);
    if (!isnan(c->cpu_mhz))
        PUT("%s%.0f MHz", n ? ", " : "", c->cpu_mhz);
    if (isfinite(c->probe_ratio))
        PUT("%sprobe %+.0f%% on one thread", n ? ", " : "", 100 * (c->probe_ratio - 1));
    if (isfinite(c->probe_all_ratio))
        PUT(", %+.0f%% on %.0f", 100 * (c->probe_all_ratio - 1), fmin(c->threads, c->cores));
#undef PUT
    if (n == 0)
        snprintf(out, len, "unknown (neither /proc nor getrusage could be read)");
}

int cond_field_count(void)
{
    return (int)(sizeof fields / sizeof fields[0]);
}

const char *cond_field_get(const exec_conditions *c, int i, double *value)
{
    *value = *(const double *)((const char *)c + fields[i].off);
    return fields[i].key;
}

bool cond_field_set(exec_conditions *c, const char *key, double value)
{
    for (int i = 0; i < cond_field_count(); i++)
        if (strcmp(fields[i].key, key) == 0) {
            *(double *)((char *)c + fields[i].off) = value;
            return true;
        }
    return false;
}
