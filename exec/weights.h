/*
 * weights — a run's weights as both engine backends place them, so that
 * the CPU and the GPU backend lay out, name and fill them the same way:
 *
 *  - per unit (a decoder layer, or the head: unit L), its tensors with the
 *    plan's home tier for each, the stored form (the model's dtype, or
 *    group-quantized rows for the matrices under the policy's weight_quant)
 *    and its bytes, the offset of a disk tensor in the unit's region of the
 *    weights file (each OFFLOAD_ALIGN-aligned, so one read stages the whole
 *    unit), and the offset of a quantized one in the unit's dequantized fp16
 *    copy;
 *  - the Hugging Face names of the tensors the layer math reads, as the
 *    model's family spells them (models/model.c);
 *  - filling every tensor from the checkpoint or the seed: a disk tensor
 *    into the weights file here, any other through the backend, which owns
 *    the memory it lives in (exec_wtensor.data).
 */
#ifndef LLMSIM_EXEC_WEIGHTS_H
#define LLMSIM_EXEC_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "costmodel/placement.h"
#include "exec/cpu/kernels.h"
#include "exec/engine.h"
#include "exec/offload.h"

typedef struct exec_wtensor {
    model_tensor desc; /* name suffix, rows x cols, matrix */
    tier home;         /* the placement's */
    bool quantized;    /* stored in quant layout (matrices under weight_quant) */
    size_t bytes;      /* as stored */
    uint64_t disk_rel; /* home disk: offset within the unit's disk region (and its staging) */
    size_t deq_off;    /* quantized: offset (fp16 values) within the unit's dequantized copy */
    void *data;        /* home not disk: the stored form, in the backend's memory (owned by it) */
} exec_wtensor;

typedef struct exec_wunit {
    exec_wtensor t[MODEL_MAX_TENSORS];
    int n;
    uint64_t disk_base;  /* of the unit's region in the weights file */
    uint64_t disk_bytes; /* of that region: its disk tensors, each aligned */
    size_t fp16_values;  /* of its quantized matrices: its dequantized copy */
} exec_wunit;

/* What the units of a run need at most, for the buffers sized by them. */
typedef struct exec_wextent {
    uint64_t disk_bytes;      /* the weights file: every unit's region */
    uint64_t unit_disk_bytes; /* the largest region: one unit's staging */
    size_t fp16_values;       /* the largest dequantized copy */
    size_t tensor_values;     /* the largest tensor */
} exec_wextent;

/* Lay out units [0, L] (L = m->num_layers; units[L] the head) placed as pr
 * (a plan's realized placement, or serving's) with weight quantization wq:
 * every field of every unit but the tensors' data (left NULL). */
void exec_weights_layout(exec_wunit *units, const model *m, const quant *wq,
                         const placement_realized *pr, exec_wextent *ext);

/* The index of the tensor named `name` in unit un, or -1. */
int exec_wunit_find(const exec_wunit *un, const char *name);

/* ---- names */

/* The tensors a decoder layer's math reads; a bias is named whether or not
 * the model has biases (model.linear_bias says). norm_b: NULL for RMSNorm. */
typedef struct exec_layer_names {
    const char *attn_norm_w, *attn_norm_b;
    const char *q, *q_b, *k, *k_b, *v, *v_b, *o, *o_b;
    const char *q_norm, *k_norm;           /* Qwen3's per-head norms (model.qk_norm) */
    const char *mlp_norm_w, *mlp_norm_b;
    const char *fc1, *fc1_b, *fc2, *fc2_b; /* a GELU or ReLU MLP */
    const char *gate, *up, *down;          /* a gated MLP (SwiGLU, GeGLU), no biases */
} exec_layer_names;

/* The head's: the token and (learned) position embeddings, the final norm
 * (norm_b NULL for RMSNorm) and the LM head (the token embeddings when
 * they are tied). */
typedef struct exec_head_names {
    const char *embed_tokens, *embed_positions;
    const char *norm_w, *norm_b;
    const char *lm_head;
} exec_head_names;

void exec_layer_names_get(const model *m, exec_layer_names *n);
void exec_head_names_get(const model *m, exec_head_names *n);

/* ---- filling */

/* How a backend keeps the tensors that do not live on disk, and the
 * staging buffer the fill stores a tensor into first where it needs one. */
typedef struct exec_wfill {
    const model *m;
    const engine_opts *o; /* weights_path (a checkpoint) or synthetic_seed; interrupt */
    pool *pool;           /* reading and storing (NULL: the caller's thread) */
    k_wtype wt;           /* the stored form: the model's dtype */
    const quant *wq;      /* and the quantization of the matrices */
    offload_file *wfile;  /* the disk tensors' file */
    /* A buffer of at least `bytes` bytes, OFFLOAD_ALIGN-aligned, and its free. */
    void *(*stage_alloc)(void *ctx, size_t bytes);
    void (*stage_free)(void *ctx, void *p);
    /* Tensor t, home not disk, of fp32 values vals: store its stored form
     * where it lives (exec_wtensor_store); stage may be used as a bounce. */
    llmsim_status (*place)(const struct exec_wfill *f, exec_wtensor *t, const float *vals,
                           uint8_t *stage, diag *e);
    void *ctx; /* the backend's, for the callbacks */
} exec_wfill;

/* Read (or generate) every tensor of units [0, L] and store it at its home.
 * Stops early, with what is done, when o->interrupt is set (the engine sees
 * the flag and stops). */
llmsim_status exec_weights_fill(const exec_wfill *f, exec_wunit *units, const exec_wextent *ext,
                                diag *e);

/* The stored form of tensor t from its fp32 values v, at dst (t->bytes). */
void exec_wtensor_store(const exec_wfill *f, const exec_wtensor *t, const float *v, uint8_t *dst);

#endif
