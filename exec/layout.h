/*
 * layout — how both engine backends lay out a run in memory and in the
 * offload files: what the model, policy and workload fix (widths, the block
 * shape, the bytes of a KV row and a token slot, a batch's hidden states),
 * where each GPU batch keeps its KV cache and hidden states (read from the
 * plan, which decides it), and the host layout of the KV cache (slot arrays
 * of one position for a batch's sequences) with its place in the KV and
 * hidden-state files. The CPU and the GPU backend call these, so that both
 * read and write the same bytes in the same places.
 */
#ifndef LLMSIM_EXEC_LAYOUT_H
#define LLMSIM_EXEC_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plan/plan.h"

typedef struct exec_layout {
    int L;             /* decoder layers */
    int ngb, gbs, bls; /* GPU batches, their size, the sequences of a block */
    long long prompt, gen, ctx_max, num_prompts;
    long long kv_cap;      /* KV positions a sequence keeps: ctx_max, or the sliding window's
                            * ring (model_kv_positions); position p lives in slot p % kv_cap */
    size_t h, qd, kvd, f, vocab;
    size_t wmax;           /* the widest activation row: max(h, f, qd) */
    size_t ffn_w;          /* the MLP's activations per row: f, or 2 f (SwiGLU's gate and up) */
    size_t kv_row;         /* bytes of one K (or V) row of one sequence */
    size_t kv_slot;        /* bytes of one token slot of a batch: gbs * 2 * kv_row */
    size_t kv_dslot;       /* the same padded for the disk */
    size_t act_bytes;      /* one batch's hidden states in prefill: gbs * prompt * h fp16 */
    const tier *kv_tier;   /* [ngb] each batch's KV home: the plan's, borrowed */
    const tier *act_tier;  /* [ngb] each batch's hidden-state home: the plan's */
    int kv_off, kv_disk;   /* batches whose KV cache is off the GPU, on disk */
    int act_off, act_disk; /* the same for the hidden states */
} exec_layout;

/* The layout of plan pl, lowered from model m, policy p and workload w
 * (num_prompts 0: a block's sequences). Borrows pl's tiers: pl must outlive it. */
void exec_layout_init(exec_layout *lay, const model *m, const policy *p, const workload *w,
                      const plan *pl);

/* Step i's new tokens a sequence: the prompt's at step 0, then one. */
static inline long long exec_step_tokens(const exec_layout *lay, int i)
{
    return i == 0 ? lay->prompt : 1;
}

/* The position of step i's first new token. */
static inline long long exec_step_start(const exec_layout *lay, int i)
{
    return i == 0 ? 0 : lay->prompt + i - 1;
}

/* ---- the compute scratch both backends hold: fp32 activations of one
 * batch's step, sized for the prefill's rows = gbs * prompt */

typedef struct exec_acts {
    float *x;      /* [rows][h] the residual stream */
    float *hn;     /* [rows][max(h, qd)] a norm's output */
    float *qkv;    /* [rows][qd + 2 kvd] q, then k, then v */
    float *att;    /* [rows][qd] attention's output */
    float *ffn;    /* [rows][ffn_w] the MLP's activations (SwiGLU: gate, then up) */
    float *tmp;    /* [rows][h] a projection's output */
    float *vec;    /* [5 wmax] norm weights and biases in fp32 (2 wmax on: a linear's bias) */
    float *logits; /* [gbs][vocab] */
} exec_acts;

/* Allocate a's buffers, in the order above, each by alloc(ctx, bytes) (the
 * backend's memory and its accounting); false at the first NULL. */
bool exec_acts_alloc(exec_acts *a, const exec_layout *lay, void *(*alloc)(void *ctx, size_t bytes),
                     void *ctx);
/* Free a's buffers that are not NULL by free_fn(ctx, p). */
void exec_acts_free(exec_acts *a, void (*free_fn)(void *ctx, void *p), void *ctx);

/* ---- the KV cache's host layout: slot arrays of one position for a
 * batch's sequences, [pos][seq][K row, V row] with `stride` bytes per
 * position; a row is kvd fp16 values, or one quantized row when kq->bits
 * (kv_row bytes either way). */

/* Store sequence s's new K and V rows (fp32 [kvd] each) at position pos. */
void exec_kv_put(const quant *kq, size_t kvd, size_t kv_row, uint8_t *slots, size_t stride, int s,
                 long long pos, const float *kx, const float *vx);
/* Load sequence s's K and V rows at position pos into fp32 kx, vx [kvd]. */
void exec_kv_get(const quant *kq, size_t kvd, size_t kv_row, const uint8_t *slots, size_t stride,
                 int s, long long pos, float *kx, float *vx);

/* ---- the offload files */

/* The slot of position pos in a sequence's KV ring of kv_cap slots. */
static inline long long exec_kv_slot(const exec_layout *lay, long long pos)
{
    return pos % lay->kv_cap;
}

/* Offset in the KV file of position pos of (layer, batch k) (its slot:
 * exec_kv_slot): the file holds, per layer, each disk batch's kv_cap padded
 * slots of kv_dslot bytes. */
uint64_t exec_kv_disk_off(const exec_layout *lay, int layer, int k, long long pos);
/* Offset in the hidden-state file of batch k's hidden states. */
uint64_t exec_act_disk_off(const exec_layout *lay, int k);
/* Bytes of the KV file (every layer's disk batches, kv_cap padded slots
 * each) and of the hidden-state file (each disk batch's, aligned). */
uint64_t exec_kv_file_bytes(const exec_layout *lay);
uint64_t exec_act_file_bytes(const exec_layout *lay);
/* Bytes of a batch's hidden states of t tokens a sequence (fp16), and the
 * same aligned, as an A_DISK read or an A_WRITE transfers them. */
size_t exec_act_step_bytes(const exec_layout *lay, long long t);
size_t exec_act_disk_bytes(const exec_layout *lay, long long t);

#endif
