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
#include "common/grow.h"
#include "plan/plan.h"

/* A min-heap of task indices: one resource's ready tasks. */
typedef struct plan_ready_heap {
    uint32_t *a;
    size_t n, cap;
} plan_ready_heap;

typedef struct plan_ready {
    const plan *pl;
    uint32_t *indeg;           /* per task: its dependencies not yet done */
    uint32_t *succ_off, *succ; /* the tasks that depend on task i: succ[succ_off[i] .. [i + 1]) */
    plan_ready_heap heap[PLAN_NRES]; /* per resource, grown as tasks become ready */
    size_t done;                     /* tasks completed */
} plan_ready;

/* The tasks without dependencies ready on their resources. */
llmsim_status plan_ready_init(plan_ready *q, const plan *pl, diag *e);
void plan_ready_free(plan_ready *q);

/* Whether resource res has a ready task. */
static inline bool plan_ready_any(const plan_ready *q, int res)
{
    return q->heap[res].n > 0;
}

/* Task v joins its resource's ready tasks (false: out of memory). */
static inline bool plan_ready_push(plan_ready *q, uint32_t v)
{
    plan_ready_heap *h = &q->heap[q->pl->tasks[v].res];
    uint32_t *a = llmsim_grow(h->a, h->n, &h->cap, sizeof *a, 256);
    if (!a)
        return false;
    h->a = a;
    size_t i = h->n++;
    while (i > 0 && a[(i - 1) / 2] > v) {
        a[i] = a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    a[i] = v;
    return true;
}

/* The lowest-numbered ready task of resource res, taken off the queue (there
 * must be one: plan_ready_any). */
static inline uint32_t plan_ready_take(plan_ready *q, int res)
{
    plan_ready_heap *h = &q->heap[res];
    uint32_t *a = h->a;
    uint32_t top = a[0], last = a[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        uint32_t best = last;
        if (l < n && a[l] < best) {
            m = l;
            best = a[l];
        }
        if (r < n && a[r] < best)
            m = r;
        if (m == i)
            break;
        a[i] = a[m];
        i = m;
    }
    if (n > 0)
        a[i] = last;
    return top;
}

/* Task t is done: each task depending on it whose last dependency this was
 * becomes ready (false: out of memory). Inline, as take: the
 * simulator runs millions of tasks a second through them. */
static inline bool plan_ready_done(plan_ready *q, uint32_t t)
{
    q->done++;
    for (uint32_t k = q->succ_off[t]; k < q->succ_off[t + 1]; k++) {
        uint32_t v = q->succ[k];
        if (--q->indeg[v] == 0 && !plan_ready_push(q, v))
            return false;
    }
    return true;
}

#endif
