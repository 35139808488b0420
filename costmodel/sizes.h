/*
 * sizes — every byte count of llmsim, each computed here once: a tensor as
 * stored (quantized or in the model's dtype), a layer's and the head's
 * weights, the KV cache per token, per block and per batch, hidden states,
 * the q, k, v and attention output that cross to the CPU under delegation,
 * logits, attention scores and the working set of one batch through a layer.
 * The cost model, the plan, the serving simulator and the engine all take
 * their sizes from here, so that what is priced is what is allocated.
 *
 * Units: bytes. Counts may be fractional where the callers take expected
 * values (a double); integer sizes the engine allocates are exact doubles.
 */
#ifndef LLMSIM_COSTMODEL_SIZES_H
#define LLMSIM_COSTMODEL_SIZES_H

#include <stddef.h>

#include "models/model.h"
#include "policies/policy.h"

/* Bytes of an fp16 value: activations, the KV cache before quantization,
 * dequantized weights. */
#define SIZE_F16 2.0
/* Bytes of an fp32 value: logits, attention scores. */
#define SIZE_F32 4.0
/* Queries per tile of the attention kernels: scores are held for one tile of
 * queries at a time (fp32), never for the whole prompt x prompt. */
#define SIZE_ATTN_QUERY_TILE 128.0

/* n values under q: group-quantized (common/quant_layout.h's blocks, a last
 * partial group with its own metadata), or dtype_bytes each when q->bits is 0. */
double quant_bytes(const quant *q, double n_values, int dtype_bytes);

/* A tensor of m as stored: a matrix under wq (when wq->bits) group-quantized
 * row by row, anything else in the model's dtype. */
double size_tensor_bytes(const model *m, const model_tensor *t, const quant *wq);
/* The same tensor dequantized (or computed on) in fp16. */
double size_tensor_fp16_bytes(const model_tensor *t);

/* The weights of m as stored under wq. */
typedef struct size_weights {
    double layer;      /* one decoder layer */
    double layer_fp16; /* the same in fp16: a dequantized working copy */
    double head;       /* embeddings, final norm and LM head */
    double head_fp16;
    double total;      /* every weight: layers x layer + head */
    int layer_tensors; /* tensors of a layer (copies of one layer's load) */
} size_weights;
void size_weights_get(const model *m, const quant *wq, size_weights *w);

/* K and V of `tokens` tokens of `seqs` sequences in one layer: as stored
 * (quantized under kq with its metadata, or fp16), and in fp16. */
double size_kv_bytes(const model *m, const quant *kq, double seqs, double tokens);
double size_kv_fp16_bytes(const model *m, double seqs, double tokens);
/* One K (or V) row of one token of one sequence as stored: the engine's unit
 * of the KV cache (kv_dim fp16 values, or one quantized row). */
size_t size_kv_row_bytes(const model *m, const quant *kq);
/* One KV block of the paged cache: block_tokens tokens of one sequence, every
 * layer, K and V, as stored. */
double size_kv_block_bytes(const model *m, const quant *kq, double block_tokens);

/* The disk tier moves whole aligned blocks (O_DIRECT): every transfer to or
 * from it is a multiple of SIZE_DISK_ALIGN bytes at an aligned offset, so
 * the engine pads each token's slot of a batch's KV cache, and each
 * transfer of hidden states, to a multiple of it. */
#define SIZE_DISK_ALIGN 4096u
/* bytes rounded up to whole SIZE_DISK_ALIGN blocks. */
double size_disk_round(double bytes);
/* K and V of `tokens` tokens of `seqs` sequences in one layer as a disk
 * transfer moves them: one padded slot per token, holding the K and V rows
 * of that token of every sequence (the engine's token-major layout). */
double size_kv_disk_bytes(const model *m, const quant *kq, double seqs, double tokens);

/* Hidden states of `rows` token rows (fp16). */
double size_hidden_bytes(const model *m, double rows);
/* Delegated attention: q, k and v of `rows` rows to the CPU, and the
 * attention output back (fp16). */
double size_qkv_bytes(const model *m, double rows);
double size_attn_out_bytes(const model *m, double rows);
/* Logits of `rows` rows (fp32). */
double size_logits_bytes(const model *m, double rows);
/* Attention scores of `seqs` sequences, `queries` queries each over ctx
 * tokens, every head (fp32). */
double size_scores_bytes(const model *m, double seqs, double queries, double ctx);
/* The intermediate tensors of `seqs` sequences through one layer with
 * new_tokens tokens each over a context of ctx: q, k, v and the attention
 * output, and the larger of the FFN intermediate and one query tile's scores. */
double size_work_bytes(const model *m, double seqs, double new_tokens, double ctx);

#endif
