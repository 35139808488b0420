/*
 * bench_sim — how fast the plan is built and simulated, and how the cost
 * grows with layers x steps x GPU batches.
 *
 *   bench_sim            OPT-175B on t4-flexgen, FlexGen's policy (32 x 8,
 *                        weights 0/50/50, cache on disk, CPU attention),
 *                        prompt 512, gen 32: the full task graph; then a sweep
 *
 * Prints, per configuration: tasks, events, plan build time, simulation time,
 * tasks/s and events/s of the simulation, and the process's peak RSS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "sim/sim.h"
#include "common/clock.h"

static int run(const char *mname, int gbs, int ngb, long long gen, int repeats)
{
    model m;
    hwprofile *hw = malloc(sizeof *hw);
    diag e = {0};
    if (!hw || model_load(mname, &m, &e) || hwprofile_load("t4-flexgen", hw, &e)) {
        fprintf(stderr, "bench_sim: %s\n", e.msg);
        free(hw);
        return 1;
    }
    policy p;
    policy_init(&p);
    const char *pct[6] = {"0", "50", "0", "0", "0", "100"};
    policy_from_percent(pct, &p, &e);
    p.gpu_batch_size = gbs;
    p.num_gpu_batches = ngb;
    p.cpu_attention = true;
    workload w = {512, gen, 0};
    double best_build = 1e30, best_sim = 1e30;
    size_t tasks = 0;
    long events = 0;
    for (int i = 0; i < repeats; i++) {
        plan pl;
        sim_result r;
        double t0 = llmsim_now_s();
        if (plan_build(&m, hw, &p, &w, &pl, &e)) {
            fprintf(stderr, "bench_sim: %s\n", e.msg);
            free(hw);
            return 1;
        }
        double t1 = llmsim_now_s();
        double cap[TIER_COUNT] = {hw->gpu.memory_bytes, hw->cpu.memory_bytes, hw->disk.capacity_bytes};
        if (sim_run(&pl, cap, false, &r, &e)) {
            fprintf(stderr, "bench_sim: %s\n", e.msg);
            plan_free(&pl);
            free(hw);
            return 1;
        }
        double t2 = llmsim_now_s();
        best_build = t1 - t0 < best_build ? t1 - t0 : best_build;
        best_sim = t2 - t1 < best_sim ? t2 - t1 : best_sim;
        tasks = pl.ntasks;
        events = r.events;
        sim_result_free(&r);
        plan_free(&pl);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%-9s L=%-3lld steps=%-4lld batches=%-3d %9zu tasks %9ld events  build %7.3f s  "
           "simulate %7.3f s  %6.2f M tasks/s  %6.2f M events/s  peak RSS %ld MiB\n",
           mname, (long long)m.num_layers + 1, gen, ngb, tasks, events, best_build, best_sim,
           tasks / best_sim / 1e6, events / best_sim / 1e6, ru.ru_maxrss / 1024);
    free(hw);
    return 0;
}

int main(void)
{
    int rc = run("opt-175b", 32, 8, 32, 5);
    printf("-- scaling (best of 3)\n");
    rc |= run("opt-30b", 32, 8, 32, 3);
    rc |= run("opt-175b", 32, 2, 32, 3);
    rc |= run("opt-175b", 32, 32, 32, 3);
    rc |= run("opt-175b", 32, 8, 8, 3);
    rc |= run("opt-175b", 32, 8, 128, 3);
    rc |= run("opt-175b", 8, 32, 256, 1);
    return rc;
}
