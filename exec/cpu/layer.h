/*
 * layer — the decoder layer's and the head's math on the CPU, shared by the
 * plan backend (backend.c) and the serving backend (serve.c), so that both
 * compute a row with the same operations in the same order: the tokens of a
 * request served in any batch are those of `llmsim run` on its prompt
 * alone (the kernels are batch-invariant, kernels.h).
 *
 * A unit's weights are read where they are: a RAM tensor in place, a disk
 * tensor from the staging buffer its unit was read into (`stage`), a
 * quantized matrix from its dequantized fp16 copy (`deq`, written by
 * xl_dequant). Activations live in an exec_acts of the caller's rows.
 */
#ifndef LLMSIM_EXEC_CPU_LAYER_H
#define LLMSIM_EXEC_CPU_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "exec/layout.h"
#include "exec/weights.h"

typedef struct xl_ctx {
    const model *m;
    const quant *wq;              /* the weights' quantization */
    pool *pool;
    const exec_wunit *units;      /* [L + 1] */
    k_wtype wt;                   /* the model's dtype */
    uint16_t *deq;                /* the computing unit's dequantized matrices */
    const exec_layer_names *ln;
    const exec_head_names *hn;
    exec_acts *a;                 /* activations: x, hn, qkv, att, ffn, tmp, vec, logits */
    size_t h, qd, kvd, f, wmax;
} xl_ctx;

/* The data of tensor i of unit u (stage: the unit's staged disk tensors). */
const uint8_t *xl_tensor(const xl_ctx *c, int u, int i, const uint8_t *stage);
/* A matrix of unit u as k_linear wants it, and its type. */
const void *xl_matrix(const xl_ctx *c, int u, int i, const uint8_t *stage, k_wtype *wt);
/* fp32 copy of a vector tensor (norm or bias) of unit u into out. */
const float *xl_vec(const xl_ctx *c, int u, const char *name, const uint8_t *stage, float *out);
/* Unit u's quantized matrices into c->deq (fp16). */
void xl_dequant(const xl_ctx *c, int u, const uint8_t *stage);

/* y = x W^T (+ the bias named `bias` when the model has biases). */
void xl_linear(const xl_ctx *c, int u, const char *name, const char *bias, const uint8_t *stage,
               const float *x, size_t m, float *y);
/* LayerNorm (bn not NULL) or RMSNorm of rows of x into out; its vectors
 * land in a->vec[0 .. 2 wmax). */
void xl_norm(const xl_ctx *c, int u, const char *wn, const char *bn, const uint8_t *stage,
             const float *x, size_t rows, float *out);

/* Layer j's attention input: a->hn = norm(a->x), then q, k, v of rows rows
 * into a->qkv (q [rows][qd], then k and v [rows][kvd]). */
void xl_qkv(const xl_ctx *c, int j, const uint8_t *stage, size_t rows);
/* Rotary embeddings of rows q and k in place at positions pos [rows]. */
void xl_rotary(const xl_ctx *c, float *q, float *k, const int64_t *pos, size_t rows);
/* a->x += o(a->att) over rows rows. */
void xl_attn_out(const xl_ctx *c, int j, const uint8_t *stage, size_t rows);
/* a->x += mlp(norm(a->x)) over rows rows. */
void xl_mlp(const xl_ctx *c, int j, const uint8_t *stage, size_t rows);

/* The embeddings of tokens ids [t] at positions pos [t] (+ OPT's learned
 * positions, offset by 2) into out [t][h]; the head's tensors at hand. */
void xl_embed(const xl_ctx *c, const int32_t *ids, const int32_t *pos, size_t t,
              const uint8_t *stage, float *out);
/* The logits of rows rows of x [rows][h] (normed in place) into
 * a->logits [rows][vocab]. */
void xl_logits(const xl_ctx *c, float *x, size_t rows, const uint8_t *stage);

#endif
