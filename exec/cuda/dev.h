/*
 * dev — the device under the GPU backend (exec/cuda/backend.c): memory,
 * streams, events and the kernels, behind one C interface with two
 * implementations:
 *
 *  - GDEV_CUDA (exec/cuda/dev_cuda.cu, built with LLMSIM_CUDA): cudaMalloc'd
 *    device memory, cudaHostAlloc'd pinned host memory, four CUDA streams,
 *    CUDA events, cuBLAS for the GEMMs and our own kernels for the rest;
 *  - GDEV_HOST (exec/cuda/dev_host.c, always built): the same operations on
 *    host memory, executed synchronously when they are issued, with the CPU
 *    reference kernels (exec/cpu/kernels.h). It is what lets CI run the GPU
 *    backend's whole orchestration (tiers, slots, copies, events, task
 *    order) without a GPU, and the oracle the CUDA kernels are tested
 *    against (tests/unit/test_gdev.c).
 *
 * Conventions:
 *  - "device" pointers come from gdev_malloc, "host" pointers from
 *    gdev_host_malloc (pinned; page-aligned, so O_DIRECT can use them) or
 *    anywhere in host memory. Kernels take device pointers only.
 *  - Every operation is issued on a stream and is asynchronous on CUDA:
 *    copies on the stream they name, kernels on GDEV_S_COMPUTE. Work on one
 *    stream runs in issue order; across streams only events order it.
 *  - Every function that can fail returns an llmsim_status and fills the
 *    diag; errors of asynchronous work surface at the next synchronizing call
 *    (gdev_event_wait, gdev_stream_sync, gdev_sync, gdev_event_elapsed_s).
 *  - Activations are fp32 [rows][cols] row-major; weights are in Hugging
 *    Face layout W[out][in] stored as fp16, bf16 or fp32 (gdev_dtype, the
 *    values of k_wtype and model_dtype), or group-quantized rows
 *    (common/quant_layout.h: the same bytes on the CPU and the GPU).
 *  - Thread-safety: allocation and events may be used from any thread; the
 *    operations of one stream must be issued from one thread at a time (the
 *    engine issues each resource's tasks from one thread).
 *
 * Numerics (what the tests hold each implementation to):
 *  - gdev_linear rounds x to the weight's type (fp16 or bf16; not for fp32
 *    weights) and accumulates in fp32 (cuBLAS CUBLAS_COMPUTE_32F); the host
 *    version rounds x the same way and calls k_linear.
 *  - Norms, softmax and attention accumulate in fp32; rotary angles are
 *    computed in double, as k_rotary does (pos * inv_freq[i] with a
 *    table of scaled frequencies, pos / theta^(2i/hd) without).
 *  - Element-wise operations are the fp32 operations of their k_*
 *    counterparts in the same order, unfused (scale, add_scalar: one
 *    rounding, bit-exact; gelu_tanh_mul: tanhf's ulps apart).
 *  - Quantization and dequantization are bit-exact with exec/quant.c (the
 *    functions of common/quant_layout.h, nvcc without --use_fast_math).
 */
#ifndef LLMSIM_EXEC_CUDA_DEV_H
#define LLMSIM_EXEC_CUDA_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "common/diag.h" /* C linkage for its functions in the .cu files too */

typedef enum gdev_kind {
    GDEV_CUDA, /* a CUDA GPU */
    GDEV_HOST  /* host memory and the CPU kernels, synchronous */
} gdev_kind;

typedef enum gdev_stream {
    GDEV_S_COMPUTE, /* kernels and the GEMMs */
    GDEV_S_LOAD_W,  /* weight loads (host -> device) */
    GDEV_S_LOAD_C,  /* cache and hidden-state loads (host -> device) */
    GDEV_S_STORE,   /* cache and hidden-state stores (device -> host) */
    GDEV_NSTREAMS
} gdev_stream;

typedef enum gdev_dtype { GDEV_F16 = 0, GDEV_BF16 = 1, GDEV_F32 = 2 } gdev_dtype;

typedef enum gdev_dir { GDEV_H2D, GDEV_D2H, GDEV_D2D } gdev_dir;

typedef struct gdev gdev;
typedef struct gdev_event gdev_event;

/* ---- the device */

/* Whether a device of this kind can be opened: GDEV_HOST always; GDEV_CUDA
 * when this build has CUDA and the runtime sees at least one GPU. */
bool gdev_available(gdev_kind kind);

/* Open device 0 of `kind`. threads: the host kernels' threads (GDEV_HOST;
 * 0: every core). LLMSIM_EINPUT when the kind is not available, with the
 * reason (no CUDA in this build, no GPU, driver too old). */
llmsim_status gdev_open(gdev_kind kind, int threads, gdev **out, diag *e);
void gdev_close(gdev *d); /* accepts NULL; frees the streams and handles, not the user's buffers */

gdev_kind gdev_get_kind(const gdev *d);
/* "NVIDIA H100 80GB HBM3 (sm_90, 79.2 GiB)" or "host (emulated device, 2 threads)". */
void gdev_describe(const gdev *d, char *buf, size_t len);
/* Device memory: total and free now (cudaMemGetInfo; the host: 0, 0). */
void gdev_mem_info(const gdev *d, double *total, double *free_bytes);

/* ---- memory */

/* Device memory; NULL when it cannot be had. Every allocation is counted:
 * gdev_allocated_bytes is what is held now, gdev_peak_bytes the most held at
 * once since gdev_open (the allocator's figure the engine compares with the
 * plan's predicted peak). gdev_free accepts NULL. */
void *gdev_malloc(gdev *d, size_t bytes);
void gdev_free(gdev *d, void *p);
size_t gdev_allocated_bytes(const gdev *d);
size_t gdev_peak_bytes(const gdev *d);

/* Pinned host memory (page-locked, page-aligned), zeroed; NULL when it
 * cannot be had. gdev_host_free accepts NULL. */
void *gdev_host_malloc(gdev *d, size_t bytes);
void gdev_host_free(gdev *d, void *p);

/* ---- copies, asynchronous on stream s */

llmsim_status gdev_copy(gdev *d, gdev_stream s, gdev_dir dir, void *dst, const void *src, size_t bytes,
                        diag *e);
/* height rows of width bytes, row r from src + r * spitch to dst + r * dpitch
 * (cudaMemcpy2DAsync): pads and unpads the disk's aligned KV slots. */
llmsim_status gdev_copy2d(gdev *d, gdev_stream s, gdev_dir dir, void *dst, size_t dpitch, const void *src,
                          size_t spitch, size_t width, size_t height, diag *e);

/* ---- events and ordering */

llmsim_status gdev_event_new(gdev *d, gdev_event **ev, diag *e);
void gdev_event_free(gdev *d, gdev_event *ev); /* accepts NULL */
/* The event completes when the work issued on s before it has completed. */
llmsim_status gdev_record(gdev *d, gdev_stream s, gdev_event *ev, diag *e);
/* Work issued on s after this waits for ev (cudaStreamWaitEvent). */
llmsim_status gdev_stream_wait(gdev *d, gdev_stream s, gdev_event *ev, diag *e);
/* The calling thread waits for ev. */
llmsim_status gdev_event_wait(gdev *d, gdev_event *ev, diag *e);
/* The calling thread waits for everything issued on s / on every stream. */
llmsim_status gdev_stream_sync(gdev *d, gdev_stream s, diag *e);
llmsim_status gdev_sync(gdev *d, diag *e);
/* Seconds from `from` to `to`, both recorded and complete (cudaEventElapsedTime;
 * the host: the clock when each was recorded); negative when `to` came
 * first. An event never recorded is an error here, and a no-op to wait on. */
llmsim_status gdev_event_elapsed_s(gdev *d, gdev_event *from, gdev_event *to, double *s, diag *e);

/* ---- kernels, on GDEV_S_COMPUTE, device pointers */

/* Bytes of device scratch gdev_linear needs for x of m rows of k values
 * (the rounded copy of x): m * k * 2. Unused for fp32 weights; an
 * implementation may ignore it (the host one keeps its own). */
size_t gdev_linear_scratch_bytes(size_t m, size_t k);

/* y[m][n] = x[m][k] W^T + bias, W [n][k] of wt, bias fp32 [n] or NULL.
 * y must not alias x. scratch: gdev_linear_scratch_bytes(m, k) bytes. */
llmsim_status gdev_linear(gdev *d, const float *x, size_t m, size_t k, const void *w, gdev_dtype wt,
                          const float *bias, size_t n, float *y, void *scratch, diag *e);

/* dst[i] = (float)src[i] (exact), src of dt. NaNs stay NaNs of their sign;
 * their payload is unspecified. */
llmsim_status gdev_to_f32(gdev *d, const void *src, gdev_dtype dt, size_t n, float *dst, diag *e);
/* dst[i] = fp16 bits of src[i], round to nearest even (half_f32_to_f16). */
llmsim_status gdev_to_f16(gdev *d, const float *src, size_t n, uint16_t *dst, diag *e);

/* Per row: (x - mean) / sqrt(var + eps) * gamma + beta, var biased (k_layernorm).
 * out may equal x. gamma, beta fp32 [h]. */
llmsim_status gdev_layernorm(gdev *d, const float *x, size_t m, size_t h, const float *gamma,
                             const float *beta, float eps, float *out, diag *e);
/* Per row: x / sqrt(mean(x^2) + eps) * gamma (k_rmsnorm). out may equal x. */
llmsim_status gdev_rmsnorm(gdev *d, const float *x, size_t m, size_t h, const float *gamma, float eps,
                           float *out, diag *e);

/* Rotary embedding in place (k_rotary's convention, rotate_half) of
 * x [seqs][t][heads][hd]; token a of every sequence is at position start + a.
 * inv_freq: NULL (the angle of pair i is pos / theta^(2i/hd)), or a device
 * array of hd/2 doubles, the scaled frequencies (models/model.h
 * model_rope_inv_freq; the angle is pos * inv_freq[i], theta unused). */
llmsim_status gdev_rotary(gdev *d, float *x, size_t seqs, size_t t, long long start, size_t heads,
                          size_t hd, double theta, const double *inv_freq, diag *e);

/* Element-wise; out may equal an input. */
llmsim_status gdev_relu(gdev *d, const float *x, size_t n, float *out, diag *e);
llmsim_status gdev_gelu(gdev *d, const float *x, size_t n, float *out, diag *e); /* exact, erf */
llmsim_status gdev_silu_mul(gdev *d, const float *gate, const float *up, size_t n, float *out, diag *e);
/* 0.5 g (1 + tanh(0.79788456 (g + 0.044715 g^3))) * up (k_gelu_tanh_mul:
 * transformers' gelu_pytorch_tanh, Gemma's GeGLU). */
llmsim_status gdev_gelu_tanh_mul(gdev *d, const float *gate, const float *up, size_t n, float *out,
                                 diag *e);
/* out[i] = x[i] * s and out[i] = x[i] + c, in fp32 (bit-exact). */
llmsim_status gdev_scale(gdev *d, const float *x, size_t n, float s, float *out, diag *e);
llmsim_status gdev_add_scalar(gdev *d, const float *x, size_t n, float c, float *out, diag *e);
llmsim_status gdev_add(gdev *d, const float *a, const float *b, size_t n, float *out, diag *e);
/* out[r][c] = a[r][c] + b[r % brows][c]: a [rows][cols], b [brows][cols]
 * (OPT's learned positions added to every sequence). out may equal a. */
llmsim_status gdev_add_rows(gdev *d, const float *a, size_t rows, size_t cols, const float *b, size_t brows,
                            float *out, diag *e);

/* out[i][:] = table[ids[i]][:] in fp32; ids device int32 [n], each < rows
 * (the host emulation fails on one that is not; on CUDA it is undefined). */
llmsim_status gdev_embed(gdev *d, const int32_t *ids, size_t n, const void *table, gdev_dtype dt,
                         size_t rows, size_t h, float *out, diag *e);

/* Dequantize a [rows][cols] group-quantized tensor (row r at
 * r * quant_row_bytes(cols)) to fp16 bits: bit-exact with k_dequantize_f16. */
llmsim_status gdev_dequant_f16(gdev *d, const uint8_t *q, size_t rows, size_t cols, int bits, int group,
                               uint16_t *out, diag *e);

/* ---- the KV cache
 *
 * A slot array: for each position p, the rows of every sequence s of a GPU
 * batch, K then V: row (p, s, kv) at base + p * slot_stride + (2 s + kv) *
 * row_bytes. A row is kvd fp16 values (bits 0; row_bytes = 2 kvd) or one
 * quantized row (bits 4 or 8; row_bytes = quant_row_bytes(kvd, bits, group)).
 * The layout is the CPU backend's, so slots copy between tiers as bytes.
 * fp16 arrays need an even base and slot_stride on CUDA (2-byte loads). */
typedef struct gdev_kv {
    uint8_t *base;
    size_t slot_stride; /* bytes from one position to the next */
    size_t row_bytes;   /* bytes of one K (or V) row of one sequence */
    size_t kvd;         /* values per row: kv_heads * head_dim */
    int bits, group;    /* 0: fp16 rows */
    /* paged (serving): position p lives in block table[p / block_size], slot
     * p % block_size, a block being block_stride bytes from base; the table
     * in device memory. NULL: contiguous (position p at p * slot_stride). */
    const int32_t *table;
    size_t block_size, block_stride;
    /* contiguous only: a ring of this many slots, position p in slot
     * p % ring (a sliding window's bounded cache, exec/layout.h kv_cap);
     * 0: position p in slot p */
    size_t ring;
} gdev_kv;

/* Byte offset from kv->base of position p's slot. */
static inline size_t gdev_kv_slot_off(const gdev_kv *kv, size_t p)
{
    if (!kv->table)
        return (kv->ring ? p % kv->ring : p) * kv->slot_stride;
    return (size_t)kv->table[p / kv->block_size] * kv->block_stride +
           p % kv->block_size * kv->slot_stride;
}

/* Store the new K and V rows, k and v fp32 [seqs][t][kvd], of every
 * sequence at positions pos0 .. pos0 + t - 1: to fp16 (round to nearest
 * even) or quantized (bit-exact with quant_quantize_row). */
llmsim_status gdev_kv_put(gdev *d, const gdev_kv *kv, const float *k, const float *v, size_t seqs, size_t t,
                          long long pos0, diag *e);

/* Dequantize positions [0, npos) of a quantized slot array into an fp16 one
 * (dst->bits == 0, the same seqs; dst->slot_stride may differ from src's).
 * Bit-exact with quant_dequantize_row_f16. A ring holds npos <= ring
 * positions: [0, npos) are then its first npos slots, every one in use
 * when npos == ring (give dst the same ring). */
llmsim_status gdev_kv_dequant(gdev *d, const gdev_kv *src, const gdev_kv *dst, size_t seqs, long long npos,
                              diag *e);

/* Causal attention of seqs sequences over an fp16 slot array (kv->bits == 0):
 * q [seqs][t][heads][hd] fp32, the t new tokens at positions start ..
 * start + t - 1, whose K and V are already in the array (ctx = start + t).
 * Query head h reads KV head h / (heads / kv_heads); scores scaled by
 * 1/sqrt(hd), softmax in fp32 after subtracting the row maximum
 * (k_attention). window: a query at position p sees keys p - window < j
 * <= p (a sliding window, models/model.h model_attn_first); 0: all j <= p.
 * Positions below the first query's first key are not read; a ring must
 * hold the rest (ctx - that first key <= ring). out [seqs][t][heads][hd]
 * fp32, must not alias q. */
llmsim_status gdev_attention(gdev *d, const float *q, size_t seqs, size_t t, long long start, const gdev_kv *kv,
                             size_t heads, size_t kv_heads, size_t hd, size_t window, float *out, diag *e);

#ifdef __cplusplus
}
#endif

#endif
