/*
 * sched — the serving scheduler: admission, batch formation, victim choice
 * and swap or recompute, one module for both clocks. serve-sim (sim/serve.c)
 * drives it with the cost model's predicted iteration times; the serving
 * engine drives it with measured ones. Its decisions depend on the clock only
 * through the times it is given, so the same times give the same schedule,
 * decision by decision.
 *
 *     serve_sched *sc;
 *     serve_sched_new(setup, requests, &result, &sc, e);
 *     while (!serve_sched_finished(sc)) {
 *         serve_sched_arrive(sc);                    requests arrived by its clock wait
 *         if (serve_sched_idle(sc)) {                nothing to run: wait for the next
 *             serve_sched_idle_until(sc, serve_sched_next_arrival(sc), e);
 *             continue;
 *         }
 *         serve_iter it;
 *         serve_sched_form(sc, &it, e);              the batch, preemptions, swap-ins
 *         ... run or price it: it.start_s .. end ...
 *         serve_sched_complete(sc, &it, end, progress, ctx, e);   tokens emitted at end
 *     }
 *     serve_sched_end(sc, e);                        checks, aggregates into result
 *     serve_sched_free(sc);
 *
 * An iteration. Running requests first: the decoding ones, then those in
 * their prefill, each group in priority order; each takes one token if it is
 * decoding, or a chunk of its prompt up to the token budget left (chunked
 * prefill), and the blocks that its new tokens need. When no block is free,
 * the lowest-priority running request that has not been scheduled in this
 * iteration is preempted (possibly the one asking). Then, unless something
 * was preempted, swapped and waiting requests are taken in one priority order
 * while a batch slot, budget and blocks (above a 1% watermark) are left; a
 * waiting request reserves the blocks of its whole prefill; admission stops
 * at the first that does not fit. (vLLM V0's chunked-prefill scheduler does
 * the same, decodes first, whole-prefill reservation, swap and watermark;
 * V1 has no swap.) The iteration's swaps finish before its forward pass. A
 * request that completes its prompt, or decodes, emits one token at the
 * iteration's end.
 *
 * Preemption. `swap`: the victim's blocks go out over the device->host link
 * and come back over host->device when it resumes. `recompute`: its blocks
 * are freed and it re-enters the waiting queue, to prefill its prompt and the
 * tokens it has generated again. `adaptive`: per victim, the cheaper of the
 * predicted swap (out and back) and the predicted recompute (the marginal
 * cost of prefilling its cached tokens in chunks next to the current batch's
 * decodes), predicted by the cost model under either clock. Swap falls back
 * to recompute when the swap space is full.
 *
 * Priority. `fcfs`: by arrival. `fair`: by a virtual deadline
 *     key = arrival + alpha * work / weight,
 * work being the request's remaining service time alone on the machine: its
 * prompt tokens still to prefill and tokens still to emit, each at its rate
 * alone (predicted when it arrives). The key is set on arrival and after a
 * preemption, and running requests are re-ranked every iteration as their
 * work shrinks; the smallest key goes first and the largest is the victim.
 * alpha -> infinity is Smith's rule (most weight per unit of work first,
 * which minimizes weighted turnaround); alpha = 0 is fcfs. A request's key
 * never exceeds arrival + alpha * (its whole work) / weight while later
 * arrivals' keys are at least their arrival time, so a request waits behind
 * finitely many others: nothing starves.
 *
 * Prefix caching (cfg.prefix_cache; serving/prefix.h). A request taken
 * from the waiting queue first looks its prompt's full blocks up in the
 * cache, in order, stopping at the first miss and leaving at least its last
 * token to compute (vLLM's rule: the prefill must produce logits); the
 * blocks found are referenced, not computed, and its prefill starts after
 * them. A block that completes a full prompt block is registered under its
 * key at the iteration's end unless the key is cached already (then it stays
 * the request's own). A released cached block stays cached until a new block
 * is needed and none is free: then the cached block nobody holds that was
 * released longest ago is reused. Swapping a request out copies all its
 * blocks, shared ones too, and drops its references; it comes back with
 * blocks of its own. A recomputed request looks its prompt up again when it
 * is admitted, and its predicted recompute counts what the cache holds.
 * Admission counts the cached blocks it takes from the evictable ones
 * against the free blocks, like new ones.
 *
 * Queues are binary heaps keyed by (priority key, request index), so a
 * schedule is a function of the requests and the times alone.
 */
#ifndef LLMSIM_SERVING_SCHED_H
#define LLMSIM_SERVING_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "common/diag.h"
#include "serving/prefix.h"
#include "serving/result.h"
#include "serving/setup.h"

/* A preemption decided while forming an iteration. */
typedef struct serve_preempt {
    uint32_t req;   /* the victim, by index in the requests */
    uint8_t how;    /* PREEMPT_SWAP or PREEMPT_RECOMPUTE (adaptive decided, full swap fell back) */
    int64_t blocks; /* its blocks, swapped out or freed */
    int64_t tokens; /* the tokens whose K and V they held */
    double predicted_s; /* the cost model's price of it: swapping out and back, or
                         * recomputing the tokens next to this batch's decodes */
} serve_preempt;

/* A cached block a request starts with: prefix cache entry `entry`. */
typedef struct serve_prefix_hit {
    uint32_t req;
    int32_t entry;
} serve_prefix_hit;

/* A request's block `block` (its table index) registered as entry `entry`. */
typedef struct serve_prefix_reg {
    uint32_t req;
    int32_t entry;
    int64_t block;
} serve_prefix_reg;

/* One iteration as formed: borrowed from the scheduler until the next
 * serve_sched_form. */
typedef struct serve_iter {
    double start_s;             /* the scheduler's clock when it was formed */
    int nch;                    /* chunks, one per scheduled sequence */
    const serve_chunk *ch;      /* [nch] each sequence's new tokens after its cached ones */
    const uint32_t *req;        /* [nch] its request */
    int npre;
    const serve_preempt *pre;   /* [npre] in the order decided */
    int nin;
    const uint32_t *swapped_in; /* [nin] requests resumed from swap space (their blocks back) */
    int64_t out_blocks, in_blocks;
    /* the prefix cache: entries whose blocks were taken for new ones, in
     * order; then the cached blocks admitted requests start with, each
     * request's in its table's order */
    int nevict;
    const int32_t *evicted;     /* [nevict] */
    int nhit;
    const serve_prefix_hit *hit; /* [nhit] */
} serve_iter;

typedef struct serve_sched serve_sched;

/* Fails with LLMSIM_EINPUT when a request of q can never fit on s (its
 * prompt and output exceed the model's context or the KV cache): the message
 * names the request, and its file and line for a trace. */
llmsim_status serve_sched_check(const serve_setup *s, const serve_requests *q, diag *e);
/* The scheduler over q on setup s, every request pending, the clock at 0;
 * r is cleared and filled as the run goes. With the prefix cache, keys are
 * the requests' prefix keys (NULL: the declared ones, made here). Fails as
 * serve_sched_check does. s, q, keys and r are borrowed until
 * serve_sched_free. */
llmsim_status serve_sched_new(const serve_setup *s, const serve_requests *q,
                              const serve_prefix_keys *keys, serve_result *r, serve_sched **out,
                              diag *e);
void serve_sched_free(serve_sched *sc);

bool serve_sched_finished(const serve_sched *sc);
/* The KV blocks request req holds (reserved, in use or in swap space;
 * *swapped, when not NULL: in swap space), as the scheduler counts them:
 * what an engine's block tables must match after each form and complete. */
int64_t serve_sched_blocks(const serve_sched *sc, uint32_t req, bool *swapped);
/* The scheduler's clock: the end of the last iteration or idle wait. */
double serve_sched_clock(const serve_sched *sc);
/* The requests that have arrived by the clock wait, keyed by the scheduler. */
void serve_sched_arrive(serve_sched *sc);
/* Nothing is running, waiting or swapped: the next iteration must wait for
 * an arrival (serve_sched_next_arrival; there is one unless finished). */
bool serve_sched_idle(const serve_sched *sc);
double serve_sched_next_arrival(const serve_sched *sc);
/* Move the clock to t (>= the clock) with nothing running. */
llmsim_status serve_sched_idle_until(serve_sched *sc, double t, diag *e);

/* Form the next iteration at the clock (not idle): preemptions, swap-ins,
 * admissions and the chunks. */
llmsim_status serve_sched_form(serve_sched *sc, serve_iter *it, diag *e);
/* The cost model's price of it (with its swaps), as serve-sim's clock. */
double serve_sched_predict_s(serve_sched *sc, const serve_iter *it);
/* it ran until end_s (>= it->start_s): every chunk's tokens are cached,
 * those that emit emit at end_s, finished requests free their blocks.
 * progress, when not NULL, is called as the fraction finished grows. */
llmsim_status serve_sched_complete(serve_sched *sc, const serve_iter *it, double end_s,
                                   void (*progress)(double frac, void *ctx), void *progress_ctx,
                                   diag *e);
/* The blocks the last serve_sched_complete registered in the prefix cache
 * (borrowed until the next form), their count in *n. */
const serve_prefix_reg *serve_sched_registered(const serve_sched *sc, int *n);
/* After the last request: every block and swap byte conserved, r's
 * aggregates computed. */
llmsim_status serve_sched_end(serve_sched *sc, diag *e);

#endif
