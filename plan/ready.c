/*
 * ready — the ready-task queue of a plan. See ready.h.
 */
#include "plan/ready.h"

#include <stdlib.h>
#include <string.h>

static void heap_push(uint32_t *a, size_t *n, uint32_t v)
{
    size_t i = (*n)++;
    while (i > 0 && a[(i - 1) / 2] > v) {
        a[i] = a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    a[i] = v;
}

static uint32_t heap_pop(uint32_t *a, size_t *n)
{
    uint32_t top = a[0], last = a[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        uint32_t best = last;
        if (l < *n && a[l] < best) {
            m = l;
            best = a[l];
        }
        if (r < *n && a[r] < best)
            m = r;
        if (m == i)
            break;
        a[i] = a[m];
        i = m;
    }
    if (*n > 0)
        a[i] = last;
    return top;
}

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

/* A heap per resource with room for every task the resource runs. */
static bool heaps(plan_ready *q)
{
    size_t count[PLAN_NRES] = {0};
    for (size_t i = 0; i < q->pl->ntasks; i++)
        count[q->pl->tasks[i].res]++;
    for (int r = 0; r < PLAN_NRES; r++) {
        q->heap[r] = malloc((count[r] + 1) * sizeof *q->heap[r]);
        if (!q->heap[r])
            return false;
    }
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
    if (!q->indeg || !q->succ_off || !q->succ || !successors(q) || !heaps(q)) {
        plan_ready_free(q);
        return diag_set(e, LLMSIM_EFAIL, "out of memory ordering %zu tasks", n);
    }
    for (size_t i = 0; i < n; i++)
        if (q->indeg[i] == 0)
            heap_push(q->heap[pl->tasks[i].res], &q->nheap[pl->tasks[i].res], (uint32_t)i);
    return LLMSIM_OK;
}

uint32_t plan_ready_take(plan_ready *q, int res)
{
    return heap_pop(q->heap[res], &q->nheap[res]);
}

void plan_ready_done(plan_ready *q, uint32_t t)
{
    q->done++;
    for (uint32_t k = q->succ_off[t]; k < q->succ_off[t + 1]; k++) {
        uint32_t v = q->succ[k];
        if (--q->indeg[v] == 0) {
            int r = q->pl->tasks[v].res;
            heap_push(q->heap[r], &q->nheap[r], v);
        }
    }
}

void plan_ready_free(plan_ready *q)
{
    free(q->indeg);
    free(q->succ_off);
    free(q->succ);
    for (int r = 0; r < PLAN_NRES; r++)
        free(q->heap[r]);
    memset(q, 0, sizeof *q);
}
