/* eventq — see eventq.h. */
#include "sim/eventq.h"

#include <stdlib.h>

#include "common/grow.h"

static bool before(const sim_event *a, const sim_event *b)
{
    return a->time_s < b->time_s || (a->time_s == b->time_s && a->seq < b->seq);
}

bool eventq_push(eventq *q, double time_s, uint32_t task)
{
    sim_event *h = llmsim_grow(q->heap, q->n, &q->cap, sizeof *h, 1024);
    if (!h)
        return false;
    q->heap = h;
    sim_event ev = {time_s, q->next_seq++, task};
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&ev, &q->heap[parent]))
            break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = ev;
    return true;
}

bool eventq_pop(eventq *q, sim_event *out)
{
    if (q->n == 0)
        return false;
    *out = q->heap[0];
    sim_event last = q->heap[--q->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const sim_event *best = &last;
        if (l < q->n && before(&q->heap[l], best)) {
            m = l;
            best = &q->heap[l];
        }
        if (r < q->n && before(&q->heap[r], best))
            m = r;
        if (m == i)
            break;
        q->heap[i] = q->heap[m];
        i = m;
    }
    if (q->n > 0)
        q->heap[i] = last;
    return true;
}

void eventq_free(eventq *q)
{
    free(q->heap);
    q->heap = NULL;
    q->n = q->cap = 0;
}
