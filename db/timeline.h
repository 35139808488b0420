/*
 * timeline — recording a timeline of a plan, simulated or measured: a
 * measured one in the simulator's shape (so that its JSON and its store rows
 * are the same code), the memory per tier over time that a timeline implies
 * for the plan's buffers, and the run that holds it all (every task's times,
 * the stages of every step, memory over time, the JSON).
 */
#ifndef LLMSIM_DB_TIMELINE_H
#define LLMSIM_DB_TIMELINE_H

#include <cJSON.h>

#include "db/record.h"
#include "exec/engine.h"
#include "sim/sim.h"

/* The engine's first-block task times as a sim_result (per-step stage sums,
 * busy time per resource, makespan; peak CPU memory = what the engine
 * allocated). Free with sim_result_free. */
llmsim_status timeline_measured(const plan *pl, const engine_result *er, sim_result *r, diag *e);

/* Occupancy of each tier over time: every plan buffer held from the start of
 * the task that allocates it (resident: from 0) to the end of the task that
 * releases it (resident: to the end of the last task), at the times of
 * start[]/end[] (simulated or measured). Samples in time order, one per
 * change, equal times of a tier coalesced; *out is malloc'd. */
llmsim_status timeline_memory(const plan *pl, const double *start, const double *end,
                              store_mem_sample **out, size_t *n, diag *e);
/* The same timeline from the simulator's own samples (r->mem, recorded in
 * time order): no sort of every buffer's two events, so a plan of millions
 * of tasks records in a fraction of its simulation. As above, what no task
 * releases is released at the end. */
llmsim_status timeline_memory_sim(const sim_result *r, store_mem_sample **out, size_t *n, diag *e);

/* Record a simulated timeline of job's plan as a 'simulate' run (metrics,
 * stages, every task, memory over time): *obj gets the command's JSON object
 * (caller owns; run_id added when recorded; also when recording failed, so
 * that the result can still be printed; NULL only out of memory), *t the
 * totals. */
llmsim_status record_simulation(const record_job *job, const plan *pl, const sim_result *r,
                                sim_totals *t, cJSON **obj, int64_t *run_id, diag *e);

/* The same for a finished engine run: r gets the measured timeline (free it
 * with sim_result_free, also on failure), t the whole workload's measured
 * totals, obj the JSON with its "measurement" object. */
llmsim_status record_measurement(const record_job *job, const plan *pl, const engine_result *er,
                                 const engine_opts *o, sim_result *r, sim_totals *t, cJSON **obj,
                                 int64_t *run_id, diag *e);

#endif
