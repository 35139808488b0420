/*
 * layer — what the GPU plan backend (backend.c) and the GPU serving backend
 * (serve.c) share: the memory they allocate, counted (a dry run adds up what
 * a real one allocates), the weights at their homes with two device slots
 * for the units off the GPU, and the decoder layer's and the head's math on
 * the device (exec/cuda/dev.h), so that both compute a row with the same
 * operations in the same order (as exec/cpu/layer.h does on the CPU).
 *
 * Weights: each tensor at its home (exec/weights.h): device memory, pinned
 * host memory, or the disk (an O_DIRECT weights file). A unit's tensors off
 * the GPU are copied into one of two device weight slots (packed, GL_ALIGN
 * aligned) before it computes, the disk ones through a pinned staging
 * buffer; quantized matrices are dequantized into one fp16 working copy.
 */
#ifndef LLMSIM_EXEC_CUDA_LAYER_H
#define LLMSIM_EXEC_CUDA_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/cuda/dev.h"
#include "exec/layout.h"
#include "exec/offload.h"
#include "exec/weights.h"

#define GL_ALIGN 256u /* offsets within a GPU weight slot */

/* Return a failed status at once (the GPU backends' files, whose every
 * device call can fail). */
#define TRY(x)                                                                                     \
    do {                                                                                           \
        llmsim_status st_ = (x);                                                                   \
        if (st_)                                                                                   \
            return st_;                                                                            \
    } while (0)

// ---- memory

typedef struct gmem {
    gdev *dev;          /* NULL while dry */
    bool dry;           /* count, allocate nothing */
    double dev_bytes;   /* device memory allocated (or counted) */
    double host_bytes;  /* pinned host memory allocated (or counted), whole pages */
} gmem;

/* Device memory for `what` (named in the message when it cannot be had,
 * with what to change); a stand-in of one byte when dry. */
void *gmem_dalloc(gmem *g, size_t bytes, const char *what, diag *e);
/* Pinned host memory, rounded up to whole pages (O_DIRECT transfers use it). */
void *gmem_halloc(gmem *g, size_t bytes, const char *what, diag *e);
/* Free one of either (dev: gmem_dalloc's); NULL is ignored. */
void gmem_release(gmem *g, void *p, bool dev);
/* The compute scratch through exec_acts: ctx is a gmem_cb. */
typedef struct gmem_cb {
    gmem *g;
    diag *e;
} gmem_cb;
void *gmem_scratch_alloc_cb(void *ctx, size_t bytes);
void gmem_scratch_free_cb(void *ctx, void *p);

// ---- the weights

/* Where a unit's tensors off the GPU go in a weight slot. */
typedef struct gl_slot_map {
    size_t off[MODEL_MAX_TENSORS]; /* tensor i, home cpu or disk: its offset, GL_ALIGN-aligned */
    size_t bytes;                  /* the unit's tensors off the GPU, packed */
} gl_slot_map;

typedef struct gl_weights {
    int L;
    exec_wunit *units;     /* [L + 1]; data: device memory (home gpu) or pinned (home cpu) */
    exec_wextent wext;     /* what the units need at most */
    gl_slot_map *slots;    /* [L + 1] */
    offload_file *wfile;   /* the disk tensors */
    uint8_t *wstage[2];    /* pinned: a unit's disk tensors */
    void *wslot[2];        /* device: a unit's tensors off the GPU */
    uint16_t *deq;         /* device: the computing unit's dequantized matrices */
} gl_weights;

/* Lay the units out as placed, and allocate the weights file (in dir; not
 * when dry), the staging, the slots, the dequantized copy and the resident
 * tensors. */
llmsim_status gl_weights_layout(gmem *g, offload_dir *dir, const model *m, const quant *wq,
                                const placement_realized *pr, gl_weights *w, diag *e);
/* Generate or read every tensor and store it at its home. */
llmsim_status gl_weights_load(gmem *g, const model *m, const engine_opts *o, pool *threads,
                              const quant *wq, gl_weights *w, diag *e);
void gl_weights_free(gmem *g, gl_weights *w);
/* Copy unit u's tensors that are off the GPU into weight slot ws (from
 * pinned memory, or from staging buffer ws that its disk read filled), on s. */
llmsim_status gl_load_unit(gmem *g, const gl_weights *w, int u, int ws, gdev_stream s, diag *e);

// ---- the math

typedef struct gl_ctx {
    gdev *dev;
    const model *m;
    const gl_weights *w;
    gdev_dtype wt;                 /* the model's dtype */
    const quant *wq;               /* the weights' quantization */
    uint16_t *deq;                 /* the computing unit's dequantized matrices (w->deq, or another) */
    const exec_layer_names *ln;
    const exec_head_names *hn;
    exec_acts *a;                  /* device activations: hn, qkv, att, ffn, tmp, vec, logits */
    void *lin;                     /* gdev_linear's scratch */
    const double *inv_freq;        /* device: scaled rotary frequencies (gl_rope_table), or NULL */
    size_t h, qd, kvd, f, wmax, vocab;
} gl_ctx;

/* Tensor i of unit u while the unit computes in weight slot ws. */
const void *gl_tensor(const gl_ctx *c, int u, int i, int ws);
/* A matrix as gdev_linear takes it: its stored form, or its dequantized copy. */
const void *gl_matrix(const gl_ctx *c, int u, int i, int ws, gdev_dtype *dt);
/* Unit u's quantized matrices (in weight slot ws) into c->deq. */
llmsim_status gl_dequant(const gl_ctx *c, int u, int ws, diag *e);
/* y = x W^T (+ the bias named `bias` when the model has biases). */
llmsim_status gl_linear(const gl_ctx *c, int u, const char *name, const char *bias, int ws,
                        const float *x, size_t m, float *y, diag *e);
/* LayerNorm (bn not NULL) or RMSNorm of rows of x into out; its vectors
 * land in a->vec[0 .. 2 wmax). */
llmsim_status gl_norm(const gl_ctx *c, int u, const char *wn, const char *bn, int ws,
                      const float *x, size_t rows, float *out, diag *e);
/* Layer j's attention input: a->hn = norm(x), then q [rows][qd], k and v
 * [rows][kvd] (with their biases, and per-head q and k norms, where the
 * model has them; rotary not applied). */
llmsim_status gl_qkv(const gl_ctx *c, int j, int ws, const float *x, size_t rows, float *q,
                     float *k, float *v, diag *e);
/* Rotary embeddings (a rotary model; else nothing) of q [seqs][t][heads][hd]
 * and k [seqs][t][kv_heads][hd] in place, token a at position start + a,
 * with the model's scaled frequencies where it has them (c->inv_freq). */
llmsim_status gl_rotary(const gl_ctx *c, float *q, float *k, size_t seqs, size_t t, long long start,
                        diag *e);
/* The embeddings x [n values] times the model's scale (scale_embeddings;
 * else nothing), after the lookup, as xl_embed. */
llmsim_status gl_embed_scale(const gl_ctx *c, float *x, size_t n, diag *e);
/* A rotary model with scaled frequencies: their table (model_rope_inv_freq,
 * hd/2 doubles) in device memory, counted, and uploaded unless dry (free it
 * with gmem_release(g, *out, true)); else *out = NULL. */
llmsim_status gl_rope_table(gmem *g, const model *m, double **out, diag *e);
/* The output projection, the residual and the MLP: x += o(att); x += mlp(x). */
llmsim_status gl_post(const gl_ctx *c, int j, int ws, float *x, const float *att, size_t rows,
                      diag *e);
/* The logits of rows rows of x [rows][h] (normed in place) into a->logits. */
llmsim_status gl_logits(const gl_ctx *c, int ws, float *x, size_t rows, diag *e);

#endif
