/*
 * kernels — the compute kernels of the CPU reference backend.
 *
 * Activations are fp32, row-major, contiguous. Weights are in Hugging Face
 * layout W[out_features][in_features], stored fp16 or bf16 (uint16 bit
 * patterns) or fp32; a linear layer computes y = x W^T + b. Small tensors
 * (norm weights, biases) are fp32: the engine converts them once.
 *
 * Threading: every kernel takes a pool (NULL: run on the caller) and splits
 * its work so that each output element is computed by one thread in an order
 * fixed by the shapes alone: results are bit-identical for any number of
 * threads.
 *
 * ISA: the decode path of k_linear, the weight conversions and the
 * streaming attention and softmax have an AVX2 (+FMA+F16C) version chosen
 * at run time and a portable scalar twin that is always compiled; each twin
 * does the same operations in the same order (fmaf in 8 lanes for k_linear,
 * the same exp polynomial for softmax), so both give the same bits
 * (test_kernels checks with memcmp). Larger problems go through the same
 * kernels in blocks of rows, so a row's result never depends on the batch.
 *
 * Buffers never alias unless a kernel says so. Kernels assert their
 * invariants (shapes > 0 where needed, token ids < vocab): the engine
 * validates user input before it gets here.
 */
#ifndef LLMSIM_EXEC_CPU_KERNELS_H
#define LLMSIM_EXEC_CPU_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/cpu/pool.h"

/* Storage type of a weight tensor; the values are those of model_dtype
 * (checked in kernels.c), so a model_dtype converts by a cast. */
typedef enum k_wtype { K_WTYPE_F16, K_WTYPE_BF16, K_WTYPE_F32 } k_wtype;

/* Bytes per element of a weight type. */
size_t k_wtype_bytes(k_wtype wt);

/* ---- dispatch */

typedef enum k_isa { K_ISA_SCALAR, K_ISA_AVX2 } k_isa;
extern const char *const k_isa_names[2];

/* The best the CPU supports (AVX2 needs avx2, fma and f16c). */
k_isa k_isa_detect(void);
/* The one in use: the detected one unless forced lower. */
k_isa k_isa_get(void);
/* Test hook: use `isa` (clamped to what the CPU supports); returns the one
 * now in use. Not for use while kernels run on other threads. */
k_isa k_isa_force(k_isa isa);

/* ---- linear layers */

/* Rows of x that k_linear's fused kernel takes at once, streaming W once
 * for them all; more rows go through it in blocks of this many. */
#define K_GEMV_MAX_ROWS 16

/* y = x W^T + bias. y must not alias x. Every element is one fused
 * multiply-add chain in eight lanes over k (see kernels.c), so a row's bits
 * depend on that row of x and on W only: not on m, on the other rows, or
 * on the thread count (batch invariance: serving's rows equal a solo run's). */
void k_linear(pool *p, const float *x /* [m][k] */, size_t m, size_t k,
              const void *w /* [n][k] of wt */, k_wtype wt, const float *bias /* [n] or NULL */,
              size_t n, float *y /* [m][n] */);

/* Convert `count` weights to fp32 (exact). */
void k_convert_to_f32(pool *p, const void *src /* [count] of wt */, k_wtype wt, size_t count,
                      float *dst /* [count] */);

/* Round `count` fp32 values to fp16 (half_f32_to_f16 of exec/half.h: to
 * nearest even), over the pool when there are many. */
void k_convert_f32_to_f16(pool *p, const float *src /* [count] */, size_t count,
                          uint16_t *dst /* [count] */);

/* ---- group-quantized rows (exec/quant.h) */
/* (Each row is one thread's work: the results do not depend on the pool.) */

/* Dequantize a [rows][cols] tensor quantized row by row (row r at
 * r * quant_row_bytes(cols)) into fp16 bit patterns or fp32, rows split over
 * the pool: the bits of quant_dequantize_row_f16 / quant_dequantize_row. */
void k_dequantize_f16(pool *p, const uint8_t *q, size_t rows, size_t cols, int bits, int group,
                      uint16_t *out /* [rows][cols] */);
void k_dequantize_f32(pool *p, const uint8_t *q, size_t rows, size_t cols, int bits, int group,
                      float *out /* [rows][cols] */);
/* Quantize a [rows][cols] tensor row by row, rows split over the pool: the
 * bytes of quant_quantize_rows. */
void k_quantize(pool *p, const float *x /* [rows][cols] */, size_t rows, size_t cols, int bits, int group,
                uint8_t *out /* [rows][quant_row_bytes(cols)] */);

/* ---- norms (in place allowed: out == x) */

/* (x - mean) / sqrt(var + eps) * gamma + beta per row, var biased (OPT). */
void k_layernorm(pool *p, const float *x /* [m][h] */, size_t m, size_t h,
                 const float *gamma /* [h] */, const float *beta /* [h] */, float eps,
                 float *out /* [m][h] */);

/* x / sqrt(mean(x^2) + eps) * gamma per row (LLaMA). */
void k_rmsnorm(pool *p, const float *x /* [m][h] */, size_t m, size_t h,
               const float *gamma /* [h] */, float eps, float *out /* [m][h] */);

/* ---- positions */

/* Rotary embedding in place, Hugging Face LLaMA convention (rotate_half):
 * for i < head_dim/2, with a = pos * theta^(-2i/head_dim),
 *   x'[i]       = x[i] cos a - x[i + head_dim/2] sin a
 *   x'[i + d/2] = x[i + head_dim/2] cos a + x[i] sin a.
 * Angles are computed in double (HF computes them in fp32). head_dim even.
 * inv_freq [head_dim / 2] (a scaled RoPE: models/model.h
 * model_rope_inv_freq) replaces theta^(-2i/head_dim) when not NULL. */
void k_rotary(pool *p, float *x /* [tokens][heads][head_dim] */,
              const int64_t *positions /* [tokens] */, size_t tokens, size_t heads, size_t head_dim,
              double theta, const double *inv_freq);

/* ---- attention */

/* Query rows that attention's streaming path takes at once (K and V read
 * once for them all); more go through it in tiles of this many. */
#define K_ATTN_STREAM_MAX_T 4

/* Floats of scratch k_attention needs:
 * heads * min(t, K_ATTN_STREAM_MAX_T) * (start + t), one tile's scores. */
size_t k_attention_scratch_floats(size_t t, size_t start, size_t heads);

/* Causal attention of one sequence. The t new tokens sit at positions
 * start .. start + t - 1 and the cache already holds them: ctx = start + t.
 * Query head h reads KV head h / (heads / kv_heads) (grouped-query
 * attention; kv_heads divides heads). Scores scaled by 1/sqrt(hd), softmax
 * in fp32 after subtracting the row maximum. out must not alias q. A
 * row's bits depend on its position, its query and the cache only (tiles of
 * the streaming path), whatever t. With a sliding window (window > 0), the
 * query at position p sees keys p - window < j <= p only (transformers'
 * mask); the cache rows before the tile's first window are not read. */
void k_attention(pool *p, const float *q /* [t][heads][hd] */, size_t t, size_t start,
                 const float *k_cache /* [start + t][kv_heads][hd] */,
                 const float *v_cache /* [start + t][kv_heads][hd] */, size_t heads,
                 size_t kv_heads, size_t hd, size_t window, float *out /* [t][heads][hd] */,
                 float *scratch /* [k_attention_scratch_floats(t, start, heads)] */);

/* ---- element-wise (in place allowed: out may equal an input) */

void k_relu(pool *p, const float *x /* [n] */, size_t n, float *out /* [n] */);
/* Exact GELU: x/2 (1 + erf(x / sqrt 2)). */
void k_gelu(pool *p, const float *x /* [n] */, size_t n, float *out /* [n] */);
/* GeGLU with the tanh GELU (transformers' gelu_pytorch_tanh):
 * 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) * up. */
void k_gelu_tanh_mul(pool *p, const float *gate /* [n] */, const float *up /* [n] */, size_t n,
                     float *out /* [n] */);
/* SwiGLU: silu(gate) * up, silu(g) = g / (1 + exp(-g)). */
void k_silu_mul(pool *p, const float *gate /* [n] */, const float *up /* [n] */, size_t n,
                float *out /* [n] */);
/* out = a + b (the residual). */
void k_add(pool *p, const float *a /* [n] */, const float *b /* [n] */, size_t n,
           float *out /* [n] */);
/* out[r][c] = a[r][c] + b[r % brows][c] (rows that repeat: OPT's learned
 * positions added to every sequence); brows > 0. */
void k_add_rows(pool *p, const float *a /* [rows][cols] */, size_t rows, size_t cols,
                const float *b /* [brows][cols] */, size_t brows, float *out /* [rows][cols] */);

/* out[i] = table[tokens[i]] in fp32; every token < vocab. */
void k_embed(pool *p, const int32_t *tokens /* [t] */, size_t t,
             const void *table /* [vocab][h] of wt */, k_wtype wt, size_t vocab, size_t h,
             float *out /* [t][h] */);

#endif
