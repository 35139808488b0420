/*
 * eventq — the simulator's event queue: a binary min-heap keyed by time, ties
 * broken by a sequence number given at insertion, so two runs of the same
 * plan pop events in the same order (deterministic).
 */
#ifndef LLMSIM_SIM_EVENTQ_H
#define LLMSIM_SIM_EVENTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sim_event {
    double time_s;
    uint64_t seq;
    uint32_t task;
} sim_event;

typedef struct eventq {
    sim_event *heap;
    size_t n, cap;
    uint64_t next_seq;
} eventq;

/* false when out of memory */
bool eventq_push(eventq *q, double time_s, uint32_t task);
/* false when empty */
bool eventq_pop(eventq *q, sim_event *out);
void eventq_free(eventq *q);

#endif
