/*
 * ready — when a task of a plan may start, the one rule the simulator
 * (sim/sim.c) and the engine (exec/engine.c) share: a task is ready once
 * every task it depends on is done, and each resource takes its ready tasks
 * in plan order (the lowest index first), one at a time.
 *
 *     plan_ready q;
 *     if (plan_ready_init(&q, pl, e)) ...out of memory...
 *     while (plan_ready_any(&q, res)) {
 *         uint32_t t = plan_ready_take(&q, res);   start t on res
 *         ...
 *         plan_ready_done(&q, t);                  its successors may start
 *     }
 *     plan_ready_free(&q);
 *
 * Not thread-safe: the engine calls it under its scheduler's lock.
 */
#ifndef LLMSIM_PLAN_READY_H
#define LLMSIM_PLAN_READY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "plan/plan.h"

typedef struct plan_ready {
    const plan *pl;
    uint32_t *indeg;           /* per task: its dependencies not yet done */
    uint32_t *succ_off, *succ; /* the tasks that depend on task i: succ[succ_off[i] .. [i + 1]) */
    uint32_t *heap[PLAN_NRES]; /* per resource: a min-heap of its ready tasks, room for all of them */
    size_t nheap[PLAN_NRES];
    size_t done;               /* tasks completed */
} plan_ready;

/* The tasks without dependencies ready on their resources. */
llmsim_status plan_ready_init(plan_ready *q, const plan *pl, diag *e);
/* Whether resource res has a ready task. */
static inline bool plan_ready_any(const plan_ready *q, int res)
{
    return q->nheap[res] > 0;
}
/* The lowest-numbered ready task of resource res, taken off the queue (there
 * must be one: plan_ready_any). */
uint32_t plan_ready_take(plan_ready *q, int res);
/* Task t is done: each task depending on it whose last dependency this was
 * becomes ready. */
void plan_ready_done(plan_ready *q, uint32_t t);
void plan_ready_free(plan_ready *q);

#endif
