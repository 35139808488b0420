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
#include "exec/layout.h"
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

/* The tokens of the block running, as both backends keep them, and what
 * sampling them needs (buffers owned by the backend). */
typedef struct mio_tokens {
    int32_t *tokens;   /* [bls][prompt + gen]: each sequence's prompt, then what it generated */
    long long block;   /* the block running */
    float *logits_out; /* [gen][bls][vocab]: o->logits_out while block 0 runs, then NULL */
    float *probs;      /* [vocab] sampling scratch */
    int32_t *idx;      /* [vocab] sampling order */
} mio_tokens;

/* Block `block` begins: its prompts (its bls sequences, each by mio_prompt)
 * into tk->tokens; logits are recorded for block 0 only. */
void mio_block_begin(mio_tokens *tk, const exec_layout *lay, const engine_opts *o, long long block);
/* The generated tokens of block `block`'s sequences that the workload has
 * (below num_prompts), from tokens [bls][prompt + gen] into out
 * [num_prompts][gen]. */
void mio_block_tokens(const exec_layout *lay, long long block, const int32_t *tokens, int32_t *out);

/* The next token of a sequence from its logits [vocab]: the argmax
 * (o->temperature 0), or a draw from softmax(logits / T) restricted to the
 * nucleus (the most likely tokens whose mass reaches o->top_p),
 * renormalized. The draw depends only on o->sample_seed, the sequence's
 * number in the workload and the step. probs and idx: [vocab] scratch. Not
 * thread-safe (one compute thread per process samples). */
int mio_sample(const engine_opts *o, const float *logits, size_t vocab, long long seq, int step, float *probs,
               int32_t *idx);

/* Step i's next tokens of batch k of the block running, from the batch's
 * logits [gbs][vocab]: sampled (mio_sample) into tk->tokens, and the logits
 * copied to tk->logits_out when it is not NULL. */
void mio_next_tokens(const exec_layout *lay, const engine_opts *o, const float *logits, int i, int k,
                     mio_tokens *tk);

#endif
