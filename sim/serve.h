/*
 * serve — the serving simulation (ARCHITECTURE §8): requests arrive over
 * time and are served by iteration-level (continuous) batching over a paged
 * KV cache, with preemption when the cache runs out.
 *
 * The machine. Compute runs on the GPU (on the CPU for a profile without
 * one). The KV cache lives in blocks of `block_size` tokens in the compute
 * device's memory; swap space lives in CPU memory (on disk for a CPU-only
 * profile). Weights are placed as the policy says: what is not in device
 * memory streams in once per iteration (overlapping compute when the policy
 * overlaps). Weight and KV quantization follow the policy. The policy's KV
 * and activation fractions, batch shape and CPU delegation are offline
 * choices and are not used here.
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
 * V1 has no swap.) The iteration's time is priced from the cost model's
 * primitives: dense layer work over all its tokens, attention per sequence
 * (decode over its context; a prefill chunk over its causal part), KV
 * (de)quantization, the head for every sequence that emits a token, weight
 * streaming, and the iteration's swaps (vLLM copies block by block, one copy
 * per block per layer for K and for V; the swaps finish before the forward
 * pass). A request that completes its prompt, or decodes, emits one token.
 *
 * Preemption. `swap`: the victim's blocks go out over the device->host link
 * and come back over host->device when it resumes. `recompute`: its blocks
 * are freed and it re-enters the waiting queue, to prefill its prompt and the
 * tokens it has generated again. `adaptive`: per victim, the cheaper of the
 * predicted swap (out and back) and the predicted recompute (the marginal
 * cost of prefilling its cached tokens in chunks next to the current batch's
 * decodes). Swap falls back to recompute when the swap space is full.
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
 */
#ifndef LLMSIM_SIM_SERVE_H
#define LLMSIM_SIM_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/diag.h"
#include "costmodel/analytic.h"
#include "workload/requests.h"

typedef struct serve_config {
    int max_batch;         /* sequences per iteration */
    int64_t token_budget;  /* tokens per iteration, >= max_batch */
    int block_size;        /* tokens per KV block */
    preemption preempt;
    scheduler sched;
    double fair_alpha;     /* fair: seconds of waiting one second of weighted work is worth */
    double kv_bytes;       /* device memory for KV blocks; 0: what weights and workspace leave */
    double mem_util;       /* fraction of device memory the server may use (with kv_bytes == 0) */
    double swap_bytes;     /* swap space */
    bool keep_spans;       /* record each request's states for the Chrome trace */
} serve_config;

/* vLLM's defaults: 256 sequences, 2048 tokens, recompute (vLLM preempts a
 * single-sequence request by recompute), fcfs, 16-token blocks, 90% of
 * device memory, 4 GiB of swap space; fair alpha 10. */
void serve_config_init(serve_config *c);

/* Everything fixed for a (model, hardware, policy, config). */
typedef struct serve_setup {
    cm_setup cm;
    policy pol;             /* the setup's policy (cm points here) */
    workload wl;
    serve_config cfg;
    bool has_gpu;
    tier dev_tier, swap_tier;
    const hw_link *swap_out, *swap_in; /* device->host and back (disk without a GPU) */
    double block_bytes;     /* one block, all layers, K and V, as stored */
    int64_t total_blocks;   /* device KV blocks */
    int64_t swap_blocks;    /* swap-space blocks */
    double kv_bytes;        /* device memory given to the KV cache */
    double weights_dev_bytes, workspace_bytes;
    double stream_dev_s[2]; /* per iteration: weights over the host link, over the disk */
    int64_t max_context;
} serve_setup;

/* Fails with LLMSIM_EINPUT when the policy does not apply to the hardware or
 * when weights and workspace leave no room for a KV block. The setup keeps
 * pointers to m and hw. */
llmsim_status serve_setup_init(serve_setup *s, const model *m, const hwprofile *hw,
                               const policy *p, const serve_config *c, diag *e);

/* A sequence's work in one iteration: `tokens` new tokens after `ctx`
 * tokens already cached (tokens == 1: a decode step). */
typedef struct serve_chunk {
    int64_t ctx, tokens;
    bool emits;             /* the chunk ends its prefill or is a decode step */
} serve_chunk;

/* The time of one iteration of these chunks with swaps of so many blocks. */
double serve_iteration_s(const serve_setup *s, const serve_chunk *ch, int n, int64_t swap_out_blocks,
                         int64_t swap_in_blocks);
/* Swapping `blocks` out (out = true) or in: copies per block per layer for K and V. */
double serve_swap_s(const serve_setup *s, int64_t blocks, bool out);
/* Recomputing `tokens` cached tokens next to `decodes` decoding sequences whose
 * contexts sum to decode_ctx: the marginal time of its prefill chunks. */
double serve_recompute_s(const serve_setup *s, int64_t tokens, int decodes, int64_t decode_ctx);

typedef struct serve_req_result {
    double first_token_s;  /* time its first output token was emitted */
    double finish_s;
    int32_t swaps, recomputes;
} serve_req_result;

typedef struct serve_kv_sample {
    double time_s, dur_s;            /* an iteration's start and length */
    int64_t dev_blocks, swap_blocks; /* blocks in use during it */
} serve_kv_sample;

typedef enum serve_state { SERVE_WAITING, SERVE_RUNNING, SERVE_SWAPPED } serve_state;
extern const char *const serve_state_names[3];

typedef struct serve_span {
    uint32_t req;
    uint8_t state;
    double start_s, end_s;
} serve_span;

typedef struct serve_stat {
    double mean, p50, p90, p99, max;
} serve_stat;

typedef struct serve_result {
    size_t n;
    serve_req_result *req;        /* [n], in the requests' order */
    double makespan_s;            /* first arrival to last finish */
    double end_s;                 /* last finish */
    long long iterations, events;
    long long preempt_swap, preempt_recompute, swap_full; /* swap_full: swaps that fell back */
    double swap_out_bytes, swap_in_bytes, swap_s;
    double recomputed_tokens, output_tokens, prompt_tokens;
    serve_kv_sample *kv;          /* one per iteration */
    size_t nkv;
    serve_span *spans;            /* with keep_spans */
    size_t nspans;
    /* aggregates */
    double throughput_tok_s;      /* output tokens / makespan */
    double request_rate;          /* requests / makespan */
    serve_stat ttft, tpot, e2e;   /* seconds; tpot over requests with >= 2 output tokens */
    double weighted_turnaround_s; /* sum weight * e2e / sum weight */
    double kv_util_mean, kv_util_peak; /* device blocks in use / total (time-weighted mean) */
} serve_result;

/* Simulate the requests to the end. Fails with LLMSIM_EINPUT when a request
 * can never fit (its prompt and output exceed the model's context or the KV
 * cache); the message names the request, and its file and line for a trace.
 * `progress`, when not NULL, is called now and then with the fraction done. */
llmsim_status serve_run(const serve_setup *s, const serve_requests *q, serve_result *r,
                        void (*progress)(double frac, void *ctx), void *progress_ctx, diag *e);
void serve_result_free(serve_result *r);

/* Chrome Trace Event JSON: a track per request (its waiting, running and
 * swapped spans) and counters of KV blocks in use. Needs keep_spans. */
llmsim_status serve_trace_write(const serve_setup *s, const serve_result *r, const char *title,
                                const char *path, diag *e);

#endif
