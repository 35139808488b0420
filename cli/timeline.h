/*
 * timeline — what simulate, run and validate share about a timeline: a
 * measured one in the simulator's shape (so that output and store rows are
 * the same code), and the memory per tier over time that a timeline implies
 * for the plan's buffers.
 */
#ifndef LLMSIM_CLI_TIMELINE_H
#define LLMSIM_CLI_TIMELINE_H

#include "cli/cli.h"
#include "db/store.h"
#include "exec/engine.h"
#include "sim/sim.h"

/* The engine's first-block task times as a sim_result (per-step stage sums,
 * busy time per resource, makespan; peak CPU memory = what the engine
 * allocated). Free with sim_result_free. */
llmsim_status cli_measured_timeline(const plan *pl, const engine_result *er, sim_result *r, diag *e);

/* Occupancy of each tier over time: every plan buffer held from the start of
 * the task that allocates it (resident: from 0) to the end of the task that
 * releases it (resident: to the end of the last task), at the times of
 * start[]/end[] (simulated or measured). Samples in time order, one per
 * change, equal times of a tier coalesced; *out is malloc'd. */
llmsim_status cli_memory_timeline(const plan *pl, const double *start, const double *end,
                                  store_mem_sample **out, size_t *n, diag *e);

/* Record a simulated timeline of job's plan as a 'simulate' run (metrics,
 * stages, every task, memory over time): *obj gets the command's JSON object
 * (caller owns; run_id added), *t the totals. */
struct cJSON;
llmsim_status cli_simulation_record(const cli_job *job, const plan *pl, const sim_result *r,
                                    cli_sim_totals *t, struct cJSON **obj, int64_t *run_id, diag *e);

/* The same for a finished engine run: r gets the measured timeline (free it
 * with sim_result_free, also on failure), t the whole workload's measured
 * totals, obj the JSON with its "measurement" object. */
llmsim_status cli_measurement_record(const cli_job *job, const plan *pl, const engine_result *er,
                                     const engine_opts *o, sim_result *r, cli_sim_totals *t,
                                     struct cJSON **obj, int64_t *run_id, diag *e);

/* The plan's predicted peak of GPU memory (its buffers simulated with no
 * capacity limit), bytes; 0 when the plan has no GPU. */
double cli_plan_gpu_peak(const plan *pl);

#endif
