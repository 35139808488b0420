/*
 * serve — serving executed for real (ARCHITECTURE §9, issue 22): requests
 * admitted no earlier than their arrival on the wall clock, iteration-level
 * (continuous) batching of decode tokens and prompt chunks of different
 * sequences, a paged KV cache of fixed-size blocks with a block table per
 * sequence, and preemption by swap or recompute when a block cannot be had.
 *
 * The schedule is serving/sched.h's, the one serve-sim drives with predicted
 * times; here it is driven with measured ones: every iteration's end is the
 * wall clock when its forward pass (and its swaps) finished. serving/blocks.h
 * keeps the block tables to the scheduler's counts and lists the copies of
 * every swap. The pool is serving/setup.h's, sized exactly as serve-sim
 * sizes it.
 *
 * The backend runs each iteration's forward pass over the chunks in one
 * batch: weights where the policy's placement puts them (on disk: read
 * layer by layer every iteration, the next layer's read overlapping this
 * layer's compute), every sequence's K and V in its blocks. The CPU
 * backend's kernels are batch-invariant (exec/cpu/kernels.h), so a
 * request's greedy tokens are those of `llmsim run` on its prompt alone,
 * whatever it was batched, chunked, swapped or recomputed with.
 */
#ifndef LLMSIM_EXEC_SERVE_H
#define LLMSIM_EXEC_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "exec/engine.h"
#include "serving/result.h"
#include "serving/sched.h"
#include "serving/setup.h"

/* A preemption and its cost, predicted (the cost model's price when the
 * scheduler decided it) and measured: a swap's block copies out and back; a
 * recompute's share of the iterations that prefilled its tokens again, each
 * iteration's measured time times the part of its predicted time that those
 * chunks add. */
typedef struct serve_event {
    uint32_t req;
    uint8_t how;            /* PREEMPT_SWAP or PREEMPT_RECOMPUTE */
    long long iteration;    /* when it was decided */
    int64_t blocks, tokens;
    double predicted_s, measured_s;
    bool done;              /* swapped back in, or its tokens recomputed */
} serve_event;

typedef struct engine_serve_opts {
    const engine_opts *eng;     /* weights, seed, offload dir, threads, RAM, sampling, ^C */
    /* each request's prompt, [n][q->req[i].prompt] token ids; NULL: random
     * from eng->prompt_seed (mio_prompt with the request's index), a prefix
     * group's first prefix_len tokens the group's (mio_prompt with
     * SERVE_PREFIX_STREAM + the group) */
    const int32_t *const *prompts;
    /* false: iterations follow one another with no waiting for arrivals on
     * the wall clock (the clock still jumps to them): tests */
    bool wall_clock;
    /* test hook: when not NULL, called with the logits [vocab] each output
     * token `step` of request `req` was drawn from */
    void (*on_logits)(void *ctx, uint32_t req, int32_t step, const float *logits, size_t vocab);
    void *logits_ctx;
} engine_serve_opts;

typedef struct engine_serve_result {
    serve_result r;             /* measured: serve-sim's fields and aggregates, and its
                                 * iteration rows with their measured times inside */
    int32_t **tokens;           /* [ntokens][q->r[i].output_len] generated ids (zeros when
                                 * interrupted); owned */
    size_t ntokens;
    const char *engine;         /* the backend: "cpu" or "gpu" */
    char device[128];           /* the GPU backend's device (gdev_describe), else "" */
    double ram_bytes;           /* what the engine allocated in RAM (pinned, for the GPU) */
    double gpu_bytes;           /* the GPU backend's peak device memory */
    double swap_write_s, swap_read_s; /* the swaps' copies, measured */
    serve_event *events;        /* [nevents] every preemption, in order; owned */
    size_t nevents;
    bool direct_io;             /* swap and weight files use O_DIRECT */
    bool interrupted;           /* ^C: admission stopped, rows so far kept */
    serve_prefix_keys keys;     /* with the prefix cache: the prompts' keys it served with */
} engine_serve_result;

/* The prompt stream of prefix group 1 is this one's + 1, and so on: above
 * every request index. */
#define SERVE_PREFIX_STREAM (1LL << 31)

/* Serve q on setup s to the end (or ^C): on the GPU backend (exec/cuda/
 * serve.c; the host emulation with eng->gpu_emulated) for a profile with a
 * GPU, else on the CPU backend. Fails with LLMSIM_EINPUT before allocating
 * anything for a request that can never fit, a placement the engine cannot
 * run (weights on a GPU tier of a CPU-only machine, on disk with a GPU) or
 * more RAM than --max-ram allows. On failure nothing is left on disk. */
llmsim_status engine_serve(const serve_setup *s, const serve_requests *q,
                           const engine_serve_opts *o, engine_serve_result *r, diag *e);
void engine_serve_result_free(engine_serve_result *r);

#endif
