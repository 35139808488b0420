/*
 * ready — the ready-task queue of a plan. See ready.h.
 */
#include "plan/ready.h"

#include <stdlib.h>
#include <string.h>

/* In-degrees and the successor lists (CSR, by a counting sort over the
 * dependency lists). */
static bool successors(plan_ready *q)
{
    const plan *pl = q->pl;
    const size_t n = pl->ntasks;
    for (size_t i = 0; i < n; i++) {
        const plan_task *t = &pl->tasks[i];
        q->indeg[i] = t->ndeps;
        for (uint32_t d = 0; d < t->ndeps; d++)
            q->succ_off[pl->deps[t->dep_first + d] + 1]++;
    }
    for (size_t i = 0; i < n; i++)
        q->succ_off[i + 1] += q->succ_off[i];
    uint32_t *fill = malloc((n + 1) * sizeof *fill);
    if (!fill)
        return false;
    memcpy(fill, q->succ_off, (n + 1) * sizeof *fill);
    for (size_t i = 0; i < n; i++) {
        const plan_task *t = &pl->tasks[i];
        for (uint32_t d = 0; d < t->ndeps; d++)
            q->succ[fill[pl->deps[t->dep_first + d]]++] = (uint32_t)i;
    }
    free(fill);
    return true;
}

llmsim_status plan_ready_init(plan_ready *q, const plan *pl, diag *e)
{
    memset(q, 0, sizeof *q);
    q->pl = pl;
    const size_t n = pl->ntasks;
    q->indeg = malloc((n + 1) * sizeof *q->indeg);
    q->succ_off = calloc(n + 2, sizeof *q->succ_off);
    q->succ = malloc((pl->ndeps + 1) * sizeof *q->succ);
    if (!q->indeg || !q->succ_off || !q->succ || !successors(q)) {
        plan_ready_free(q);
        return diag_set(e, LLMSIM_EFAIL, "out of memory ordering %zu tasks", n);
    }
    for (size_t i = 0; i < n; i++)
        if (q->indeg[i] == 0 && !plan_ready_push(q, (uint32_t)i)) {
            plan_ready_free(q);
            return diag_set(e, LLMSIM_EFAIL, "out of memory ordering %zu tasks", n);
        }
    return LLMSIM_OK;
}

void plan_ready_free(plan_ready *q)
{
    free(q->indeg);
    free(q->succ_off);
    free(q->succ);
    for (int r = 0; r < PLAN_NRES; r++)
        free(q->heap[r].a);
    memset(q, 0, sizeof *q);
}
