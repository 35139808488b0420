/*
 * quant — group-wise asymmetric min/max quantization of weights and KV cache,
 * 4 and 8 bits, on the CPU. The bytes and the arithmetic are defined in
 * common/quant_layout.h (shared with CUDA); this module quantizes, dequantizes
 * and takes dot products of whole rows.
 *
 * Every function has a slow, obvious twin: quant_*_ref applies the definition
 * value by value and is the oracle; the fast versions process a block at a
 * time (portable GNU C that the compiler vectorizes for any target, and
 * AVX2+FMA+F16C variants on x86-64 chosen at run time) and are bit-exact with the reference, which
 * tests/unit/test_quant.c checks for every path. quant_dot_row is the one
 * exception: it sums in a different order and is bounded by quant_dot_tol().
 *
 * Arguments: bits is 4 or 8, group is even and >= 2 and divides n (validate
 * user input with quant_check; the row functions assert it). Buffers are the
 * caller's: a quantized row holds quant_row_bytes(n, bits, group) bytes, a
 * float row n values. Input and output must not overlap. All functions are
 * thread-safe (no state).
 */
#ifndef LLMSIM_EXEC_QUANT_H
#define LLMSIM_EXEC_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "common/quant_layout.h"

/* LLMSIM_EINPUT unless bits is 4 or 8, group is even and >= 2, and group divides n. */
llmsim_status quant_check(size_t n, int bits, int group, diag *e);

/* ---- the reference: the definition of quant_layout.h, value by value */

/* x[n] -> out[quant_row_bytes(n, bits, group)]. */
void quant_quantize_row_ref(const float *x, size_t n, int bits, int group, uint8_t *out);
/* in[quant_row_bytes(n, bits, group)] -> out[n]. */
void quant_dequantize_row_ref(const uint8_t *in, size_t n, int bits, int group, float *out);

/* ---- fast, bit-exact with the reference */

void quant_quantize_row(const float *x, size_t n, int bits, int group, uint8_t *out);
void quant_dequantize_row(const uint8_t *in, size_t n, int bits, int group, float *out);

/*
 * Dequantize straight to fp16 (bit patterns): out[i] is the fp16 of the fp32
 * value quant_dequantize_row gives, rounded to nearest even, exactly what
 * half_f32_to_f16 (exec/half.h) and quant_f32_to_f16_bits return for it,
 * without the fp32 row in memory (tests/unit/test_quant_f16.c checks every
 * path against that two-step route). The portable path rounds subnormal
 * results with an fp32 addition: it assumes the default rounding mode and no
 * flush-to-zero, as the whole program does.
 */
void quant_dequantize_row_f16(const uint8_t *in, size_t n, int bits, int group, uint16_t *out);
void quant_dequantize_rows_f16(const uint8_t *in, size_t rows, size_t cols, int bits, int group,
                               uint16_t *out);

/* A [rows][cols] tensor, row by row along cols: in/out row r at r * quant_row_bytes(cols). */
void quant_quantize_rows(const float *x, size_t rows, size_t cols, int bits, int group, uint8_t *out);
void quant_dequantize_rows(const uint8_t *in, size_t rows, size_t cols, int bits, int group,
                           float *out);

/*
 * Fused dequantize-and-dot for decode GEMV: sum_i x'_i * x[i] with x'_i the
 * dequantized values, without materializing x'. Per group it sums
 * sq = sum q_i x_i and sx = sum x_i in 16 (portable) or 32 (AVX2) interleaved
 * fp32 lanes, adds s*sq + m*sx lane-wise into 2 (portable) or 4 (AVX2)
 * accumulators taken in turn by consecutive groups, and sums the lanes
 * pairwise at the end; values past the last whole 16 (32) of a group go to 8
 * scalar lanes. That order differs from dequantize-then-dot; the error
 * against the exact sum of x'_i x_i is at most
 *   quant_dot_tol(n, group) * sum_i (q_i s + |m|) |x_i|
 * (Higham's gamma_k bound for a summation tree of depth k, with k counted
 * generously: group/8 + n/(2*group) + 48 roundings of FLT_EPSILON each; for
 * n = 4096, group = 64 that is 1.05e-5). NaN or inf in x propagate. The ISA
 * paths may differ from each other in the last bits (all within the bound).
 */
float quant_dot_row(const uint8_t *qrow, const float *x, size_t n, int bits, int group);
double quant_dot_tol(size_t n, int group);

/* ---- the individual paths, for tests and benchmarks */

void quant_quantize_row_portable(const float *x, size_t n, int bits, int group, uint8_t *out);
void quant_dequantize_row_portable(const uint8_t *in, size_t n, int bits, int group, float *out);
void quant_dequantize_row_f16_portable(const uint8_t *in, size_t n, int bits, int group, uint16_t *out);
float quant_dot_row_portable(const uint8_t *qrow, const float *x, size_t n, int bits, int group);

/* 1 when this build has the AVX2+FMA+F16C variants and the CPU runs them; the
 * *_avx2 functions may be called only then. */
int quant_have_avx2(void);
void quant_quantize_row_avx2(const float *x, size_t n, int bits, int group, uint8_t *out);
void quant_dequantize_row_avx2(const uint8_t *in, size_t n, int bits, int group, float *out);
void quant_dequantize_row_f16_avx2(const uint8_t *in, size_t n, int bits, int group, uint16_t *out);
float quant_dot_row_avx2(const uint8_t *qrow, const float *x, size_t n, int bits, int group);

#endif
