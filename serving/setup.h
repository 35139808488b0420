/*
 * setup — what is fixed for serving a (model, hardware, policy, serving
 * configuration): the KV-cache pool in blocks on the compute device (from
 * --kv-memory, or the memory fraction's share of what weights and workspace
 * leave), the swap space, the per-iteration weight streaming, and the prices
 * the scheduler asks of the cost model (costmodel/iteration.h). serve-sim
 * (sim/serve.c) and the serving engine size their pools from this one setup.
 *
 * The machine. Compute runs on the GPU (on the CPU for a profile without
 * one). The KV cache lives in blocks of `block_size` tokens in the compute
 * device's memory; swap space lives in CPU memory (on disk for a CPU-only
 * profile). Weights are placed as the policy says: what is not in device
 * memory streams in once per iteration (overlapping compute when the policy
 * overlaps). Weight and KV quantization follow the policy. The policy's KV
 * and activation fractions, batch shape and CPU delegation are offline
 * choices and are not used here.
 */
#ifndef LLMSIM_SERVING_SETUP_H
#define LLMSIM_SERVING_SETUP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/diag.h"
#include "costmodel/analytic.h"
#include "costmodel/iteration.h"
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
    bool prefix_cache;     /* share full KV blocks of identical prefixes (serving/prefix.h) */
    /* serve-sim: when set (^C), the simulation stops before its next
     * iteration, the rows so far kept (serve_result.interrupted); NULL: never */
    volatile sig_atomic_t *interrupt;
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

/* The same two prices with a memo of the one-integer prices (pm, from
 * cm_iter_memo_init; NULL: none): an iteration of w with its swaps, and a
 * recompute. */
double serve_price_s(const serve_setup *s, cm_iter_memo *pm, const cm_iter *w, int64_t out_blocks,
                     int64_t in_blocks);
double serve_recompute_price_s(const serve_setup *s, cm_iter_memo *pm, int64_t tokens,
                               int64_t decodes, int64_t decode_ctx);

#endif
