/*
 * model_io — what every engine backend does the same way with a model's
 * weights, prompts and logits: the synthetic weights of a seed, the values
 * of a Hugging Face checkpoint, the stored form of a tensor (the model's
 * dtype or group-quantized rows), the random prompts of a seed, and the
 * sampling of the next token. The CPU and the GPU backend call these, so
 * that the same seeds give the same model, prompts and tokens on both.
 */
#ifndef LLMSIM_EXEC_MODEL_IO_H
#define LLMSIM_EXEC_MODEL_IO_H

#include <stdint.h>

#include "exec/cpu/kernels.h"
#include "exec/engine.h"
#include "exec/safetensors.h"

/* The fp32 values of tensor t of unit `unit` (0 .. L-1 a decoder layer, L
 * the head): from the checkpoint ck, or synthetic from o->synthetic_seed
 * when ck is NULL (filled over the pool p, which may be NULL). Errors name
 * the checkpoint and the tensor (missing, wrong size). */
llmsim_status mio_load_values(const model *m, const engine_opts *o, st_checkpoint *ck, pool *p, int unit,
                              const model_tensor *t, float *out, diag *e);

/* Store the fp32 values v of a [rows][cols] tensor in its stored form at
 * dst: group-quantized rows when wq is non-NULL with bits (k_quantize),
 * else the dtype wt (fp16 and bf16 round to nearest even). */
void mio_store_values(pool *p, const float *v, size_t rows, size_t cols, k_wtype wt, const quant *wq,
                      uint8_t *dst);

/* The prompt of sequence `seq` of the workload (prompt_len tokens) into
 * dst: o->prompts' row when given and seq < num_prompts, else random
 * tokens < vocab from o->prompt_seed. */
void mio_prompt(const engine_opts *o, long long seq, long long num_prompts, long long prompt_len, size_t vocab,
                int32_t *dst);

/* The next token of a sequence from its logits [vocab]: the argmax
 * (o->temperature 0), or a draw from softmax(logits / T) restricted to the
 * nucleus (the most likely tokens whose mass reaches o->top_p),
 * renormalized. The draw depends only on o->sample_seed, the sequence's
 * number in the workload and the step. probs and idx: [vocab] scratch. Not
 * thread-safe (one compute thread per process samples). */
int mio_sample(const engine_opts *o, const float *logits, size_t vocab, long long seq, int step, float *probs,
               int32_t *idx);

/* ---- the shape of a run, both engines': what the model, policy and workload
 * fix, and where each GPU batch keeps its KV cache and hidden states. */
typedef struct mio_shape {
    int L;             /* decoder layers */
    int ngb, gbs, bls; /* GPU batches, their size, the sequences of a block */
    long long prompt, gen, ctx_max, num_prompts;
    size_t h, qd, kvd, f, vocab;
    size_t kv_row;         /* bytes of one K (or V) row of one sequence */
    size_t kv_slot;        /* bytes of one token slot of a batch: gbs * 2 * kv_row */
    size_t kv_dslot;       /* the same padded for the disk */
    size_t act_bytes;      /* one batch's hidden states in prefill: gbs * prompt * h fp16 */
    tier *kv_tier;         /* [ngb] each batch's KV home, by the plan's rule */
    tier *act_tier;        /* [ngb] each batch's hidden-state home */
    int kv_off, kv_disk;   /* batches whose KV cache is off the GPU, on disk */
    int act_off, act_disk; /* the same for the hidden states */
} mio_shape;

/* Fill s for model m, policy p and workload w (num_prompts 0: a block's
 * sequences). The tiers come from placement_assign over equal batches, the
 * rule the plan uses. Free with mio_shape_free. */
llmsim_status mio_shape_init(mio_shape *s, const model *m, const policy *p, const workload *w,
                             diag *e);
void mio_shape_free(mio_shape *s);

/* Step i's next tokens of batch k of block `block` from the batch's logits
 * [gbs][vocab]: sampled (mio_sample) into tokens ([bls][prompt + gen], the
 * block's sequences), and the logits copied to logits_out [gen][bls][vocab]
 * when it is not NULL. probs and idx: [vocab] scratch. */
void mio_next_tokens(const mio_shape *sh, const engine_opts *o, const float *logits, int i, int k,
                     long long block, float *logits_out, int32_t *tokens, float *probs,
                     int32_t *idx);

/* ---- the KV cache's host layout, both engines': slot arrays of one
 * position for a batch's sequences, [pos][seq][K row, V row] with `stride`
 * bytes per position; a row is kvd fp16 values, or one quantized row when
 * kq->bits (kv_row bytes either way). */

/* Store sequence s's new K and V rows (fp32 [kvd] each) at position pos. */
void mio_kv_put(const quant *kq, size_t kvd, size_t kv_row, uint8_t *slots, size_t stride, int s, long long pos,
                const float *kx, const float *vx);
/* Load sequence s's K and V rows at position pos into fp32 kx, vx [kvd]. */
void mio_kv_get(const quant *kq, size_t kvd, size_t kv_row, const uint8_t *slots, size_t stride, int s,
                long long pos, float *kx, float *vx);

/* Index of batch k among those of tiers[] (one per batch) that are on disk:
 * the batch's place in the KV and hidden-state files. */
int mio_disk_index(const tier *tiers, int k);
/* Offset in the KV file of position `slot` of (layer, batch k): the file
 * holds, per layer, each disk batch's ctx_max padded slots of dslot bytes. */
uint64_t mio_kv_disk_off(const tier *kv_tier, int ngb, int layer, int k, long long ctx_max, long long slot,
                         size_t dslot);

#endif
