/*
 * sim — a discrete-event simulation of a plan on modelled resources
 * (ARCHITECTURE §8).
 *
 * Each resource (GPU, CPU, host->device, device->host, disk) serves one task
 * at a time; among the tasks whose dependencies are done it takes the one
 * earliest in plan order (the order the engine issues them). A task's
 * duration is the one the plan priced. Memory pools per tier track the
 * plan's buffers: resident ones from the start, working ones from the start
 * of the task that allocates them to the end of the task that releases them.
 * An allocation beyond a tier's capacity is recorded (the task, the tier and
 * the excess) and the run goes on, so that one run says both how long the
 * plan takes and by how much it does not fit.
 *
 * Events are popped from a binary heap by (time, insertion sequence), so a
 * plan always simulates to the same timeline.
 */
#ifndef LLMSIM_SIM_SIM_H
#define LLMSIM_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/atomicfile.h"
#include "plan/plan.h"

typedef struct sim_mem_sample {
    double time_s;
    double bytes; /* occupancy of the tier after the change */
    uint8_t tier;
} sim_mem_sample;

typedef struct sim_result {
    double makespan_s;             /* one block */
    size_t ntasks;
    double *start_s, *end_s;       /* per task; owned */
    double busy_s[PLAN_NRES];      /* sum of task durations per resource */
    double peak_bytes[TIER_COUNT];
    double final_bytes[TIER_COUNT]; /* after the end: 0 when every buffer was released */
    bool fits;
    uint32_t overflow_task;        /* the first task whose allocation did not fit */
    tier overflow_tier;
    double overflow_bytes;         /* the largest excess seen on that tier */
    int nsteps;
    cm_step_stages *steps;         /* [nsteps] stage sums per step; owned */
    double *step_end_s;            /* [nsteps] when the step's last task ended; owned */
    long events;                   /* task starts and ends processed */
    double wall_s;                 /* time the simulation took */
    sim_mem_sample *mem;           /* memory counter samples (when asked); owned */
    size_t nmem;
} sim_result;

/* The whole workload's totals from one simulated (or measured) block of a plan:
 * the block's times by the number of blocks, and the plan's stage times per
 * decoder layer. */
typedef struct sim_totals {
    double total_s, prefill_s, decode_s, throughput_tok_s;
    double layer_stage_s[CM_NSTAGES];   /* per decoder layer, decode steps averaged */
    double prefill_stage_s[CM_NSTAGES]; /* per decoder layer, prefill */
} sim_totals;
void sim_totals_get(const plan *pl, const sim_result *r, sim_totals *t);

/* Simulate one block of the plan. capacity: bytes per tier. record_memory:
 * keep every change of occupancy (for the trace). On failure r holds
 * nothing (sim_result_free on it is harmless). */
/* The plan's peak of tier t's memory, its buffers simulated with no
 * capacity limit; 0 when the simulation fails (out of memory). */
double sim_plan_peak(const plan *pl, tier t);

llmsim_status sim_run(const plan *pl, const double capacity[TIER_COUNT], bool record_memory,
                      sim_result *r, diag *e);
void sim_result_free(sim_result *r);

/* Chrome Trace Event JSON (Perfetto, chrome://tracing): one track per
 * resource, every task as a complete event, a counter per memory tier.
 * Written to a temporary file and renamed: never half a file. */
/* A Chrome Trace Event file written to path (atomically, for --trace): the
 * array's opening and process 1 named `title` (quotes and control characters
 * dropped), then what events(f, ctx) writes, each event as ",\n{...}", then
 * the array's end. */
llmsim_status sim_trace_file(const char *path, const char *title,
                             void (*events)(FILE *f, const void *ctx), const void *ctx, diag *e);
/* Thread tid of process 1 named `name` (a plain name: no quotes). */
void sim_trace_thread(FILE *f, long long tid, const char *name);
llmsim_status sim_trace_write(const plan *pl, const sim_result *r, const char *title,
                              const char *path, diag *e);

#endif
