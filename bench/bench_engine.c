/*
 * bench_engine — the CPU engine against the hardware's bounds.
 *
 *   bench_engine [MODEL [GEN]]     default: opt-1.3b, 16 generated tokens
 *
 * 1. memcpy bandwidth (512 MiB, best of 5) and O_DIRECT sequential read
 *    bandwidth (a 1 GiB file in the offload directory, 64 MiB reads, best of 3);
 * 2. decode with everything in RAM (batch 1): the median time of a decode
 *    step against the bound weight bytes / memcpy bandwidth;
 * 3. decode with the weights on disk: the median step against
 *    max(weight bytes / disk read bandwidth, compute time of a step in RAM),
 *    i.e. whether reading the next layer overlaps computing this one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/engine.h"
#include "exec/offload.h"
#include "common/clock.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double memcpy_bw(void)
{
    size_t n = (size_t)512 << 20;
    char *a = malloc(n), *b = malloc(n);
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 1e30;
    for (int i = 0; i < 5; i++) {
        double t0 = llmsim_now_s();
        memcpy(b, a, n);
        double t = llmsim_now_s() - t0;
        best = t < best ? t : best;
    }
    free(a);
    free(b);
    return (double)n / best;
}

static double disk_bw(void)
{
    offload_dir d;
    offload_file *f;
    diag e = {0};
    if (offload_dir_create(NULL, &d, &e))
        return 0;
    const size_t chunk = (size_t)64 << 20, total = (size_t)1 << 30;
    double best = 1e30;
    char *buf = offload_alloc(chunk);
    if (!offload_file_create(&d, "bw.bin", total, &f, &e)) {
        memset(buf, 7, chunk);
        for (size_t off = 0; off < total; off += chunk)
            offload_write(f, buf, chunk, off, &e);
        for (int i = 0; i < 3; i++) {
            double t0 = llmsim_now_s();
            for (size_t off = 0; off < total; off += chunk)
                offload_read(f, buf, chunk, off, &e);
            double t = llmsim_now_s() - t0;
            best = t < best ? t : best;
        }
    }
    free(buf);
    offload_dir_remove(&d);
    return (double)total / best;
}

/* Median decode step and median compute per step of a run. */
static int run(const model *m, const hwprofile *hw, const char *pct[6], long long gen, double *step,
               double *compute)
{
    policy p;
    diag e = {0};
    policy_init(&p);
    policy_from_percent(pct, &p, &e);
    workload w = {32, gen, 0};
    plan pl;
    if (plan_build(m, hw, &p, &w, &pl, &e)) {
        fprintf(stderr, "bench_engine: %s\n", e.msg);
        return 1;
    }
    engine_opts o = {0};
    o.synthetic_seed = 1;
    o.prompt_seed = 1;
    engine_result r;
    if (engine_run(m, hw, &p, &w, &pl, &o, &r, &e)) {
        fprintf(stderr, "bench_engine: %s\n", e.msg);
        return 1;
    }
    double ends[4096] = {0}, comp[4096] = {0};
    for (size_t i = 0; i < pl.ntasks; i++) {
        int s = pl.tasks[i].step;
        if (r.end_s[i] > ends[s])
            ends[s] = r.end_s[i];
        if (pl.tasks[i].kind == PLAN_COMPUTE || pl.tasks[i].kind == PLAN_HEAD)
            comp[s] += r.end_s[i] - r.start_s[i];
    }
    double steps[4096], comps[4096];
    int n = 0;
    for (int s = 1; s < pl.nsteps; s++, n++) {
        steps[n] = ends[s] - ends[s - 1];
        comps[n] = comp[s];
    }
    qsort(steps, (size_t)n, sizeof *steps, cmp);
    qsort(comps, (size_t)n, sizeof *comps, cmp);
    *step = steps[n / 2];
    *compute = comps[n / 2];
    engine_result_free(&r);
    plan_free(&pl);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mname = argc > 1 ? argv[1] : "opt-1.3b";
    long long gen = argc > 2 ? atoll(argv[2]) : 16;
    model m;
    hwprofile *hw = malloc(sizeof *hw);
    diag e = {0};
    if (!hw || model_load(mname, &m, &e) || hwprofile_load("cpu-only", hw, &e)) {
        fprintf(stderr, "bench_engine: %s\n", e.msg);
        free(hw);
        return 2;
    }
    double wbytes = (double)model_param_count(&m) * model_dtype_bytes(m.dtype);
    double mbw = memcpy_bw(), dbw = disk_bw();
    printf("model %s: %.3g GB of weights; memcpy %.2f GB/s, O_DIRECT read %.2f GB/s\n", mname,
           wbytes / 1e9, mbw / 1e9, dbw / 1e9);
    const char *ram[6] = {"0", "100", "0", "100", "0", "100"};
    const char *disk[6] = {"0", "0", "0", "100", "0", "100"};
    double step, comp, dstep, dcomp;
    if (run(&m, hw, ram, gen, &step, &comp)) {
        free(hw);
        return 1;
    }
    double bound = wbytes / mbw;
    printf("all in RAM:      decode step %.4f s; bound (weights / memcpy) %.4f s: %.0f%% of the bound\n",
           step, bound, 100 * bound / step);
    if (run(&m, hw, disk, gen, &dstep, &dcomp)) {
        free(hw);
        return 1;
    }
    double dbound = wbytes / dbw > comp ? wbytes / dbw : comp;
    printf("weights on disk: decode step %.4f s; max(weights / disk read %.4f s, compute %.4f s) = "
           "%.4f s: %+.1f%%\n", dstep, wbytes / dbw, comp, dbound, 100 * (dstep / dbound - 1));
    free(hw);
    return 0;
}
