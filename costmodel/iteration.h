/*
 * iteration — the price of one serving iteration, beside analytic.h's price
 * of one offline layer: a batch of chunks (each a sequence's decode token or
 * a piece of its prompt, of different lengths) run through every decoder
 * layer and the head, the weights that are not resident on the compute
 * device streamed in once per iteration, overlapped with the compute or not
 * by the policy (cm_overlap_s), and the working set such an iteration needs.
 * The serving simulator (sim/serve.c) prices every iteration, recompute and
 * swap here, with the setup of a one-sequence block (cm_setup_init with
 * gpu_batch_size = num_gpu_batches = 1: every price is per token row).
 */
#ifndef LLMSIM_COSTMODEL_ITERATION_H
#define LLMSIM_COSTMODEL_ITERATION_H

#include <stdbool.h>
#include <stdint.h>

#include "costmodel/analytic.h"

/* The work of one iteration, summed over its chunks (cm_iter_add). */
typedef struct cm_iter {
    int64_t tokens;        /* new tokens (GEMM rows) */
    int64_t emits;         /* sequences that emit a token (logit rows) */
    int64_t decodes;       /* single-token chunks */
    int64_t decode_ctx;    /* the keys they attend to (their contexts, or windows), summed */
    int64_t cached;        /* tokens already cached that the chunks read */
    double prefill_attn_s; /* multi-token chunks' causal attention, one layer */
} cm_iter;

/* Prices that depend on one integer only, kept as they are first asked for:
 * one layer's dense work over up to max_rows token rows, the head over up
 * to max_emits logit rows. Optional (NULL: computed each time, the same
 * numbers). */
typedef struct cm_iter_memo {
    int64_t max_rows, max_emits;
    double *dense;     /* [max_rows + 1], -1: not yet */
    double *head;      /* [max_emits + 1] */
    double lookup_per_token;
} cm_iter_memo;

llmsim_status cm_iter_memo_init(cm_iter_memo *pm, const cm_setup *s, int64_t max_rows,
                                int64_t max_emits, diag *e);
void cm_iter_memo_free(cm_iter_memo *pm);

/* Causal attention of `tokens` queries after `ctx` cached tokens, one
 * layer: the part of the whole prompt's attention that the chunk computes. */
double cm_iter_chunk_attn_s(const cm_setup *s, int64_t ctx, int64_t tokens);

/* Add a chunk of `tokens` new tokens after `ctx` cached ones (tokens == 1: a
 * decode step); emits: it ends its prefill or decodes. Inline: the serving
 * simulator adds every chunk of every iteration. */
static inline void cm_iter_add(const cm_setup *s, cm_iter *w, int64_t ctx, int64_t tokens,
                               bool emits)
{
    /* under a sliding window the chunk reads the cache from its first
     * query's window on (model_attn_first), as the engine does */
    const int64_t lo = model_attn_first(s->m, ctx);
    w->tokens += tokens;
    w->emits += emits;
    w->cached += ctx - lo;
    if (tokens == 1) {
        w->decodes++;
        w->decode_ctx += ctx + 1 - lo;
    } else {
        w->prefill_attn_s += cm_iter_chunk_attn_s(s, ctx, tokens);
    }
}

/* The weights not resident on the compute device, streamed in once per
 * iteration: [0] over the host link (from CPU memory, or staged from disk),
 * [1] from the disk. */
void cm_iter_stream_s(const cm_setup *s, double stream_s[2]);

/* One iteration of w: every layer and the head, combined with the weight
 * streaming (stream_s, from cm_iter_stream_s) by cm_overlap_s; 0 without
 * tokens. pm may be NULL. */
double cm_iter_s(const cm_setup *s, cm_iter_memo *pm, const double stream_s[2], const cm_iter *w);

/* Recomputing `tokens` cached tokens in prefill chunks of what the token
 * budget leaves beside `decodes` decoding sequences whose contexts sum to
 * decode_ctx: the chunks' marginal time over those iterations. */
double cm_iter_recompute_s(const cm_setup *s, cm_iter_memo *pm, const double stream_s[2],
                           int64_t token_budget, int64_t tokens, int64_t decodes,
                           int64_t decode_ctx);

/* Copying `blocks` KV blocks of block_bytes (all layers, K and V) over a
 * link: one copy per block, layer and K or V. */
double cm_kv_blocks_copy_s(const cm_setup *s, const hw_link *link, int64_t blocks,
                           double block_bytes);

/* The device workspace of iterations of up to token_budget tokens and
 * max_batch logit rows: their intermediates, the logits (fp32), a
 * dequantized layer with quantized weights, and two streaming slots when not
 * every weight is resident on the device (dev). */
double cm_iter_workspace_bytes(const cm_setup *s, tier dev, int64_t token_budget,
                               int64_t max_batch);

/* With a quantized KV cache, the cache is attended to through a dequantized
 * copy of one layer's K and V: its fp16 bytes per byte of the cache as
 * stored (0 without KV quantization). */
double cm_iter_kv_dequant_per_byte(const cm_setup *s);

#endif
