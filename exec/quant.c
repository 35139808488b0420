/*
 * quant — group-wise min/max quantization on the CPU: the value-by-value
 * reference, block-at-a-time portable C, and AVX2+FMA+F16C variants picked at
 * run time. The arithmetic is quant_layout.h's; the fast paths reorganize it
 * into loops the compiler vectorizes, never change it:
 *
 * - no a*b+c outside fmaf in anything that must be bit-exact; the one product
 *   that is added, q*s in dequantization, is exact in fp32 (quant_layout.h),
 *   so q*s + m rounds once whether or not a compiler contracts it into an fma;
 * - rounding to integer is rintf or, for t in [0, 255], (t + 1.5*2^23) -
 *   1.5*2^23, which is the same round-half-to-even when fp32 expressions are
 *   evaluated in fp32 (FLT_EVAL_METHOD == 0, checked below);
 * - quant_dot_row only is allowed another summation order (quant.h).
 */
#include "exec/quant.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "policies/policy.h"

/* fp-contract=off semantics: GCC in ISO C mode (-std=c11) does not contract
 * a*b+c into an fma; Clang contracts by default and is told not to here. (The
 * bit-exact results would not change either way, see above.) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define QUANT_X86 1
#include <cpuid.h>
#include <immintrin.h>
#define QUANT_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define QUANT_X86 0
#endif

llmsim_status quant_check(size_t n, int bits, int group, diag *e)
{
    if (bits != 4 && bits != 8)
        return diag_set(e, LLMSIM_EINPUT, "quantization bits must be 4 or 8, got %d", bits);
    if (group < 2 || group % 2)
        return diag_set(e, LLMSIM_EINPUT,
                        "quantization group size must be an even number of at least 2, got %d", group);
    if (n % (size_t)group)
        return diag_set(e, LLMSIM_EINPUT,
                        "quantization group size %d must divide the row length %zu; pick a divisor of %zu",
                        group, n, n);
    return LLMSIM_OK;
}

__attribute__((unused)) /* used by asserts only */
static inline int quant_args_ok(size_t n, int bits, int group)
{
    return (bits == 4 || bits == 8) && group >= 2 && group % 2 == 0 && n % (size_t)group == 0;
}

/* ---- the reference */

void quant_quantize_row_ref(const float *x, size_t n, int bits, int group, uint8_t *out)
{
    assert(quant_args_ok(n, bits, group));
    size_t g = (size_t)group, bb = quant_block_bytes(bits, group);
    for (size_t b = 0; b < n / g; b++) {
        const float *xg = x + b * g;
        uint8_t *blk = out + b * bb, *codes = blk + QUANT_BLOCK_META_BYTES;
        float mn = quant_sanitize(xg[0]), mx = mn;
        for (size_t j = 1; j < g; j++) {
            float v = quant_sanitize(xg[j]);
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
        uint16_t sh, mh;
        quant_group_params(mn, mx, bits, &sh, &mh);
        quant_block_set_head(blk, sh, mh);
        float s = quant_f16_bits_to_f32(sh), m = quant_f16_bits_to_f32(mh);
        memset(codes, 0, g * (size_t)bits / 8);
        for (size_t j = 0; j < g; j++) {
            unsigned q = quant_code(quant_sanitize(xg[j]), s, m, bits);
            if (bits == 8)
                codes[j] = (uint8_t)q;
            else
                codes[j / 2] |= (uint8_t)(q << (4 * (j & 1)));
        }
    }
}

void quant_dequantize_row_ref(const uint8_t *in, size_t n, int bits, int group, float *out)
{
    assert(quant_args_ok(n, bits, group));
    size_t g = (size_t)group, bb = quant_block_bytes(bits, group);
    for (size_t b = 0; b < n / g; b++) {
        const uint8_t *blk = in + b * bb;
        float s = quant_f16_bits_to_f32(quant_block_scale_bits(blk));
        float m = quant_f16_bits_to_f32(quant_block_min_bits(blk));
        for (size_t j = 0; j < g; j++)
            out[b * g + j] = quant_dequant(quant_code_get(blk + QUANT_BLOCK_META_BYTES, bits, j), s, m);
    }
}

/* ---- portable fast paths: a block at a time */

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#define QUANT_ROUND(t) rintf(t)
#else
/* rintf for t in [0, 2^22]: adding 1.5*2^23 leaves an ulp of 1, so the sum
 * rounds t half-to-even, and the subtraction is exact. */
#define QUANT_ROUND(t) (((t) + 0x1.8p23f) - 0x1.8p23f)
#endif

#define QUANT_INLINE static inline __attribute__((always_inline))

/*
 * Quantization is plain C whose fixed-length inner loops GCC and Clang
 * vectorize at -O2. Dequantization and the dot product use GNU C vector
 * extensions of 4 fp32 lanes, which every target has (SSE2, NEON) and the
 * compiler lowers to scalars elsewhere; vector ops are element-wise IEEE,
 * exactly the scalar definition. Loops over 4 vectors are written out: at
 * -O2, GCC keeps a loop over an array of vectors in memory.
 */
typedef float quant_v4f __attribute__((vector_size(16)));
typedef int32_t quant_v4i __attribute__((vector_size(16)));

QUANT_INLINE quant_v4f quant_v4f_load(const float *p)
{
    quant_v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

QUANT_INLINE void quant_v4f_store(float *p, quant_v4f v)
{
    memcpy(p, &v, sizeof v);
}

/* Bytes p[0..7] as a little-endian word, and back (plain loads and stores on
 * little-endian targets). */
QUANT_INLINE uint64_t quant_le64_load(const uint8_t *p)
{
    uint64_t w;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&w, p, 8);
#else
    w = 0;
    for (int k = 7; k >= 0; k--)
        w = w << 8 | p[k];
#endif
    return w;
}

QUANT_INLINE void quant_le32_store(uint8_t *p, uint32_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &w, 4);
#else
    for (int k = 0; k < 4; k++)
        p[k] = (uint8_t)(w >> (8 * k));
#endif
}

/* Eight 4-bit codes, one per byte (code k in byte k), packed into 4 bytes,
 * code 2i in the low nibble of byte i. */
QUANT_INLINE uint32_t quant_pack_nibbles8(uint64_t w)
{
    w = (w | w >> 4) & 0x00ff00ff00ff00ffull; /* byte 2i = c[2i] | c[2i+1] << 4 */
    w = (w | w >> 8) & 0x0000ffff0000ffffull; /* 16-bit lanes 0 and 2 hold the bytes */
    return (uint32_t)(w | w >> 16);
}

#define QUANT_LANES 16 /* values per inner step of quant_block_quantize */

/* One block: sanitize, min/max, header, codes. Inlined into the portable and
 * the AVX2 entry points so that the compiler vectorizes it for each ISA (its
 * fixed-length inner loops are what -O2 vectorizes). */
QUANT_INLINE void quant_block_quantize(const float *restrict xg, size_t g, int bits, uint8_t *restrict blk)
{
    float lmn[QUANT_LANES], lmx[QUANT_LANES];
    for (int k = 0; k < QUANT_LANES; k++) {
        lmn[k] = QUANT_F16_MAX;
        lmx[k] = -QUANT_F16_MAX;
    }
    size_t j = 0;
    for (; j + QUANT_LANES <= g; j += QUANT_LANES)
        for (int k = 0; k < QUANT_LANES; k++) {
            float v = quant_sanitize(xg[j + k]);
            lmn[k] = v < lmn[k] ? v : lmn[k];
            lmx[k] = v > lmx[k] ? v : lmx[k];
        }
    for (; j < g; j++) {
        float v = quant_sanitize(xg[j]);
        lmn[0] = v < lmn[0] ? v : lmn[0];
        lmx[0] = v > lmx[0] ? v : lmx[0];
    }
    for (int w = QUANT_LANES / 2; w > 0; w /= 2) /* a tree, not a chain of 15 dependent ops */
        for (int k = 0; k < w; k++) {
            lmn[k] = lmn[k + w] < lmn[k] ? lmn[k + w] : lmn[k];
            lmx[k] = lmx[k + w] > lmx[k] ? lmx[k + w] : lmx[k];
        }
    float mn = lmn[0], mx = lmx[0];
    uint16_t sh, mh;
    quant_group_params(mn, mx, bits, &sh, &mh);
    quant_block_set_head(blk, sh, mh);
    uint8_t *restrict codes = blk + QUANT_BLOCK_META_BYTES;
    float s = quant_f16_bits_to_f32(sh), m = quant_f16_bits_to_f32(mh);
    if (!(s > 0.0f)) {
        memset(codes, 0, g * (size_t)bits / 8);
        return;
    }
    float levels = (float)((1 << bits) - 1);
    j = 0;
    for (; j + QUANT_LANES <= g; j += QUANT_LANES) {
        uint8_t q[QUANT_LANES];
        for (int k = 0; k < QUANT_LANES; k++) {
            float t = (quant_sanitize(xg[j + k]) - m) / s;
            t = t > 0.0f ? t : 0.0f;
            t = t < levels ? t : levels;
            q[k] = (uint8_t)(int)QUANT_ROUND(t); /* an integer in [0, 255] */
        }
        if (bits == 8) {
            memcpy(codes + j, q, QUANT_LANES);
        } else {
            quant_le32_store(codes + j / 2, quant_pack_nibbles8(quant_le64_load(q)));
            quant_le32_store(codes + j / 2 + 4, quant_pack_nibbles8(quant_le64_load(q + 8)));
        }
    }
    for (; j < g; j += 2) { /* g is even: the tail is whole pairs */
        unsigned q0 = quant_code(quant_sanitize(xg[j]), s, m, bits);
        unsigned q1 = quant_code(quant_sanitize(xg[j + 1]), s, m, bits);
        if (bits == 8) {
            codes[j] = (uint8_t)q0;
            codes[j + 1] = (uint8_t)q1;
        } else {
            codes[j / 2] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void quant_quantize_row_portable(const float *x, size_t n, int bits, int group, uint8_t *out)
{
    assert(quant_args_ok(n, bits, group));
    size_t g = (size_t)group, bb = quant_block_bytes(bits, group);
    for (size_t b = 0; b < n / g; b++)
        quant_block_quantize(x + b * g, g, bits, out + b * bb);
}

/*
 * Dequantization and the dot product work on 4 fp32 lanes, which every
 * target has. Codes become floats without shuffles: four codes are
 * masked in place out of one 32-bit word, converted, and scaled back by exact
 * powers of two, in order (value 2j is the low nibble of byte j):
 *   4 bits: {w & 0xf, w & 0xf0, w & 0xf00, w & 0xf000} * {1, 2^-4, 2^-8, 2^-12}
 *   8 bits: {w & 0xff, w & 0xff00, w & 0xff0000, (w >> 8) & 0xff0000} * {1, 2^-8, 2^-16, 2^-16}
 */
/* Bytes p[0..3] as a little-endian word (one load on little-endian targets). */
QUANT_INLINE uint32_t quant_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Codes 0..3 of the 4-bit codes in w (bytes 0 and 1), as exact floats. */
QUANT_INLINE quant_v4f quant_v4_codes4(uint32_t w)
{
    const quant_v4i mask = {0xf, 0xf0, 0xf00, 0xf000};
    const quant_v4f unit = {1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f};
    int32_t iw = (int32_t)(w & 0xffffu);
    quant_v4i v = (quant_v4i){iw, iw, iw, iw} & mask;
    return __builtin_convertvector(v, quant_v4f) * unit;
}

/* Codes 0..3 of the 8-bit codes in w, as exact floats. */
QUANT_INLINE quant_v4f quant_v4_codes8(uint32_t w)
{
    const quant_v4i mask = {0xff, 0xff00, 0xff0000, 0xff0000};
    const quant_v4f unit = {1.0f, 0x1p-8f, 0x1p-16f, 0x1p-16f};
    int32_t lo = (int32_t)(w & 0xffffffu), hi = (int32_t)(w >> 8);
    quant_v4i v = (quant_v4i){lo, lo, lo, hi} & mask;
    return __builtin_convertvector(v, quant_v4f) * unit;
}

/* 16 codes starting at code j of a block, as four vectors in order. (The
 * loops over 4 vectors are written out: at -O2 a loop over an array of
 * vectors keeps the array in memory.) */
QUANT_INLINE void quant_v4_codes16(const uint8_t *c, int bits, size_t j, quant_v4f *q0, quant_v4f *q1,
                                    quant_v4f *q2, quant_v4f *q3)
{
    if (bits == 4) {
        uint32_t w0 = quant_le32(c + j / 2), w1 = quant_le32(c + j / 2 + 4);
        *q0 = quant_v4_codes4(w0);
        *q1 = quant_v4_codes4(w0 >> 16);
        *q2 = quant_v4_codes4(w1);
        *q3 = quant_v4_codes4(w1 >> 16);
    } else {
        *q0 = quant_v4_codes8(quant_le32(c + j));
        *q1 = quant_v4_codes8(quant_le32(c + j + 4));
        *q2 = quant_v4_codes8(quant_le32(c + j + 8));
        *q3 = quant_v4_codes8(quant_le32(c + j + 12));
    }
}

/*
 * Dequantization straight to fp16: f16(x') with x' = q*s + m as above and
 * f16 quant_f32_to_f16_bits (round to nearest even, the same function as
 * half_f32_to_f16), without branches so that it vectorizes: per lane every
 * case of quant_f32_to_f16_bits is computed and the right one selected.
 *  - normal (|x| >= 2^-14): rebias and round the 13 dropped bits, as
 *    (a - 0x38000000 + 0xfff + odd) >> 13 (a carry is a round up);
 *  - subnormal: |x| + 0.5f rounds |x| to a multiple of 2^-24 (the ulp of
 *    0.5), half to even, in the FPU's default rounding mode; the low bits of
 *    the sum are the fp16 subnormal (0 below 2^-25, 0x400 for the smallest
 *    normal);
 *  - >= 65520: infinity; NaN: quiet, top payload bits kept.
 */
typedef uint32_t quant_v4u __attribute__((vector_size(16)));
typedef uint16_t quant_v4h __attribute__((vector_size(8)));

/* in_range: the caller knows |f| <= 65504 in every lane (no infinity, no NaN). */
QUANT_INLINE quant_v4u quant_v4_f32_to_f16(quant_v4f f, int in_range)
{
    quant_v4u x, sub;
    memcpy(&x, &f, sizeof x);
    quant_v4u a = x & 0x7fffffffu, sign = (x >> 16) & 0x8000u;
    quant_v4f af, sf;
    memcpy(&af, &a, sizeof af);
    sf = af + 0.5f;
    memcpy(&sub, &sf, sizeof sub);
    sub -= 0x3f000000u;
    quant_v4u nrm = (a - 0x38000000u + 0xfffu + ((a >> 13) & 1u)) >> 13;
    /* masks: all ones where the comparison holds (a < 2^31: signed compares are right) */
    quant_v4u is_nrm = (quant_v4u)((quant_v4i)a >= 0x38800000);
    quant_v4u h = (is_nrm & nrm) | (~is_nrm & sub);
    if (!in_range) {
        quant_v4u is_inf = (quant_v4u)((quant_v4i)a >= 0x477ff000), is_nan = (quant_v4u)((quant_v4i)a > 0x7f800000);
        h = (is_inf & 0x7c00u) | (~is_inf & h);
        h = (is_nan & (0x7e00u | ((a >> 13) & 0x3ffu))) | (~is_nan & h);
    }
    return h | sign;
}

QUANT_INLINE void quant_v4h_store(uint16_t *p, quant_v4u v)
{
    quant_v4h h = __builtin_convertvector(v, quant_v4h);
    memcpy(p, &h, sizeof h);
}

/* The whole 16-value chunks of a block: o[j..] = f16(q*s + m) (q*s exact: == fmaf). */
QUANT_INLINE void quant_block_deq16_f16(const uint8_t *c, int bits, size_t g16, float s, float m, uint16_t *o,
                                        int in_range)
{
    for (size_t j = 0; j < g16; j += 16) {
        quant_v4f q0, q1, q2, q3;
        quant_v4_codes16(c, bits, j, &q0, &q1, &q2, &q3);
        quant_v4h_store(o + j, quant_v4_f32_to_f16(q0 * s + m, in_range));
        quant_v4h_store(o + j + 4, quant_v4_f32_to_f16(q1 * s + m, in_range));
        quant_v4h_store(o + j + 8, quant_v4_f32_to_f16(q2 * s + m, in_range));
        quant_v4h_store(o + j + 12, quant_v4_f32_to_f16(q3 * s + m, in_range));
    }
}

/* The whole 16-value chunks of a block: o[j..] = q*s + m (== fmaf(q, s, m):
 * q*s is exact). */
QUANT_INLINE void quant_block_deq16(const uint8_t *c, int bits, size_t g16, float s, float m, float *o)
{
    for (size_t j = 0; j < g16; j += 16) {
        quant_v4f q0, q1, q2, q3;
        quant_v4_codes16(c, bits, j, &q0, &q1, &q2, &q3);
        quant_v4f_store(o + j, q0 * s + m);
        quant_v4f_store(o + j + 4, q1 * s + m);
        quant_v4f_store(o + j + 8, q2 * s + m);
        quant_v4f_store(o + j + 12, q3 * s + m);
    }
}

/* One block to fp16: |q*s + m| <= L|s| + |m| (exact in double); below
 * 65504 the block has no infinity or NaN to convert (the common case, the
 * fast loop). */
QUANT_INLINE void quant_block_deq_f16(const uint8_t *c, int bits, size_t g, size_t g16, float s, float m,
                                      uint16_t *o)
{
    double bound = (double)((1 << bits) - 1) * fabs((double)s) + fabs((double)m);
    if (bound <= (double)QUANT_F16_MAX)
        quant_block_deq16_f16(c, bits, g16, s, m, o, 1);
    else
        quant_block_deq16_f16(c, bits, g16, s, m, o, 0);
    for (size_t j = g16; j < g; j++)
        o[j] = quant_f32_to_f16_bits((float)quant_code_get(c, bits, j) * s + m);
}

/* A row of n values dequantized to fp32 (out32) or to fp16 (out16), the
 * other NULL: inlined into the two callers below with their constant NULL,
 * so each gets its own loop, without the test. */
QUANT_INLINE void quant_portable_deq_row(const uint8_t *in, size_t n, int bits, int group, float *out32,
                                         uint16_t *out16)
{
    assert(quant_args_ok(n, bits, group));
    assert((out32 == NULL) != (out16 == NULL)); /* one output, the other NULL */
    size_t g = (size_t)group, bb = quant_block_bytes(bits, group), g16 = g / 16 * 16;
    for (size_t b = 0; b < n / g; b++) {
        const uint8_t *blk = in + b * bb, *c = blk + QUANT_BLOCK_META_BYTES;
        float s = quant_f16_bits_to_f32(quant_block_scale_bits(blk));
        float m = quant_f16_bits_to_f32(quant_block_min_bits(blk));
        if (out16) {
            quant_block_deq_f16(c, bits, g, g16, s, m, out16 + b * g);
            continue;
        }
        float *o = out32 + b * g;
        quant_block_deq16(c, bits, g16, s, m, o);
        for (size_t j = g16; j < g; j++)
            o[j] = (float)quant_code_get(c, bits, j) * s + m;
    }
}

void quant_dequantize_row_portable(const uint8_t *in, size_t n, int bits, int group, float *out)
{
    quant_portable_deq_row(in, n, bits, group, out, NULL);
}

void quant_dequantize_row_f16_portable(const uint8_t *in, size_t n, int bits, int group, uint16_t *out)
{
    quant_portable_deq_row(in, n, bits, group, NULL, out);
}

/* Pairwise sum of 8 lanes. */
QUANT_INLINE float quant_sum8(const float a[8])
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

float quant_dot_row_portable(const uint8_t *qrow, const float *x, size_t n, int bits, int group)
{
    assert(quant_args_ok(n, bits, group));
    size_t g = (size_t)group, bb = quant_block_bytes(bits, group), g16 = g / 16 * 16;
    /* whole 16-value chunks: 4x4 lanes per block, folded into 2 rotating
     * vector accumulators; a tail (g % 16) into 8 rotating scalar ones */
    quant_v4f acc0 = {0}, acc1 = {0};
    float tacc[8] = {0};
    for (size_t b = 0; b < n / g; b++) {
        const uint8_t *blk = qrow + b * bb, *c = blk + QUANT_BLOCK_META_BYTES;
        const float *xg = x + b * g;
        float s = quant_f16_bits_to_f32(quant_block_scale_bits(blk));
        float m = quant_f16_bits_to_f32(quant_block_min_bits(blk));
        if (g16) {
            quant_v4f sq0 = {0}, sq1 = sq0, sq2 = sq0, sq3 = sq0, sx0 = sq0, sx1 = sq0, sx2 = sq0, sx3 = sq0;
            for (size_t j = 0; j < g16; j += 16) {
                quant_v4f q0, q1, q2, q3;
                quant_v4_codes16(c, bits, j, &q0, &q1, &q2, &q3);
                quant_v4f x0 = quant_v4f_load(xg + j), x1 = quant_v4f_load(xg + j + 4);
                quant_v4f x2 = quant_v4f_load(xg + j + 8), x3 = quant_v4f_load(xg + j + 12);
                sq0 += q0 * x0;
                sq1 += q1 * x1;
                sq2 += q2 * x2;
                sq3 += q3 * x3;
                sx0 += x0;
                sx1 += x1;
                sx2 += x2;
                sx3 += x3;
            }
            quant_v4f t = s * ((sq0 + sq1) + (sq2 + sq3)) + m * ((sx0 + sx1) + (sx2 + sx3));
            if (b % 2)
                acc1 += t;
            else
                acc0 += t;
        }
        if (g16 < g) {
            float tq[8] = {0}, tx[8] = {0};
            for (size_t j = g16; j < g; j++) {
                tq[j % 8] += (float)quant_code_get(c, bits, j) * xg[j];
                tx[j % 8] += xg[j];
            }
            tacc[b % 8] += s * quant_sum8(tq) + m * quant_sum8(tx);
        }
    }
    quant_v4f v = acc0 + acc1;
    return ((v[0] + v[1]) + (v[2] + v[3])) + quant_sum8(tacc);
}

/* ---- AVX2 + FMA + F16C */

#if QUANT_X86

/* __builtin_cpu_supports checks that the OS saves the AVX state too; not
 * every compiler knows "f16c" there, so its CPUID bit (leaf 1, ECX bit 29) is
 * read directly (every AVX2 CPU has it). CPUID is slow (a VM exit under a
 * hypervisor), so the answer is computed once: threads that race here store
 * the same value. */
int quant_have_avx2(void)
{
    static _Atomic int have = -1;
    int h = atomic_load_explicit(&have, memory_order_relaxed);
    if (h < 0) {
        unsigned a, b, c, d;
        h = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __get_cpuid(1, &a, &b, &c, &d) &&
            (c & (1u << 29));
        atomic_store_explicit(&have, h, memory_order_relaxed);
    }
    return h;
}

QUANT_TARGET_AVX2 void quant_quantize_row_avx2(const float *x, size_t n, int bits, int group,
                                               uint8_t *out)
{
    assert(quant_args_ok(n, bits, group));
    size_t g = (size_t)group, bb = quant_block_bytes(bits, group);
    for (size_t b = 0; b < n / g; b++)
        quant_block_quantize(x + b * g, g, bits, out + b * bb);
}

/* 8 codes (bytes, low 8 of v) -> 8 floats q*s + m. */
QUANT_TARGET_AVX2 static inline __m256 quant_avx2_deq8(__m128i v, __m256 s, __m256 m)
{
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)), s, m);
}

/* 16 bytes of 4-bit codes -> the 32 codes in order, as two vectors of 16 bytes. */
QUANT_TARGET_AVX2 static inline void quant_avx2_unpack4(const uint8_t *c, __m128i *v0, __m128i *v1)
{
    const __m128i mask = _mm_set1_epi8(0x0f);
    __m128i b = _mm_loadu_si128((const __m128i *)c);
    __m128i lo = _mm_and_si128(b, mask);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
    *v0 = _mm_unpacklo_epi8(lo, hi); /* codes 0..15 */
    *v1 = _mm_unpackhi_epi8(lo, hi); /* codes 16..31 */
}

/* The 32 codes from code j of a block's codes c (bits 4 or 8), in order,
 * as two vectors of 16 bytes. */
QUANT_TARGET_AVX2 static inline void quant_avx2_codes32(const uint8_t *c, size_t j, int bits, __m128i *v0,
                                                        __m128i *v1)
{
    if (bits == 4) {
        quant_avx2_unpack4(c + j / 2, v0, v1);
    } else {
        *v0 = _mm_loadu_si128((const __m128i *)(c + j));
        *v1 = _mm_loadu_si128((const __m128i *)(c + j + 16));
    }
}

/* 32 codes (v0, v1) -> their 32 floats q*s + m, stored at o. */
QUANT_TARGET_AVX2 static inline void quant_avx2_deq32(__m128i v0, __m128i v1, __m256 s, __m256 m, float *o)
{
    _mm256_storeu_ps(o, quant_avx2_deq8(v0, s, m));
    _mm256_storeu_ps(o + 8, quant_avx2_deq8(_mm_srli_si128(v0, 8), s, m));
    _mm256_storeu_ps(o + 16, quant_avx2_deq8(v1, s, m));
    _mm256_storeu_ps(o + 24, quant_avx2_deq8(_mm_srli_si128(v1, 8), s, m));
}

/* 8 codes (bytes, low 8 of v) -> their 8 fp16 values f16(q*s + m), stored at o. */
QUANT_TARGET_AVX2 static inline void quant_avx2_deq8_f16(__m128i v, __m256 s, __m256 m, uint16_t *o)
{
    __m128i h = _mm256_cvtps_ph(quant_avx2_deq8(v, s, m), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128((__m128i *)o, h);
}

/* 32 codes (v0, v1) -> their 32 fp16 values, stored at o. */
QUANT_TARGET_AVX2 static inline void quant_avx2_deq32_f16(__m128i v0, __m128i v1, __m256 s, __m256 m,
                                                          uint16_t *o)
{
    quant_avx2_deq8_f16(v0, s, m, o);
    quant_avx2_deq8_f16(_mm_srli_si128(v0, 8), s, m, o + 8);
    quant_avx2_deq8_f16(v1, s, m, o + 16);
    quant_avx2_deq8_f16(_mm_srli_si128(v1, 8), s, m, o + 24);
}

/* Codes [j, g) of a block, after its 32-code chunks -> fp32 q*s + m at o. */
QUANT_TARGET_AVX2 static inline void quant_avx2_tail(const uint8_t *c, size_t j, size_t g, int bits, float s,
                                                     float m, float *o)
{
    if (bits == 4) {
        for (; j < g; j += 2) {
            o[j] = fmaf((float)(c[j / 2] & 0xfu), s, m);
            o[j + 1] = fmaf((float)(c[j / 2] >> 4), s, m);
        }
    } else {
        for (; j < g; j++)
            o[j] = fmaf((float)c[j], s, m);
    }
}

/* Codes [j, g) of a block, after its 32-code chunks -> fp16 at o: 8 at a
 * time, then one by one (vs, vm: s and m broadcast). F16C narrows with the
 * rounding asked for (to nearest even), gives subnormals (MXCSR.FTZ does
 * not apply to VCVTPS2PH), infinity from 65520 up, and quiet NaNs with the
 * top payload bits: quant_f32_to_f16_bits. */
QUANT_TARGET_AVX2 static inline void quant_avx2_tail_f16(const uint8_t *c, size_t j, size_t g, int bits, float s,
                                                         float m, __m256 vs, __m256 vm, uint16_t *o)
{
    const __m128i nib = _mm_set1_epi8(0x0f);
    if (bits == 4) {
        for (; j + 8 <= g; j += 8) { /* 4 bytes: 8 codes */
            uint32_t w;
            memcpy(&w, c + j / 2, 4);
            __m128i b4 = _mm_cvtsi32_si128((int)w);
            __m128i lo = _mm_and_si128(b4, nib), hi = _mm_and_si128(_mm_srli_epi16(b4, 4), nib);
            quant_avx2_deq8_f16(_mm_unpacklo_epi8(lo, hi), vs, vm, o + j);
        }
        for (; j < g; j += 2) {
            o[j] = (uint16_t)_cvtss_sh(fmaf((float)(c[j / 2] & 0xfu), s, m), _MM_FROUND_TO_NEAREST_INT);
            o[j + 1] = (uint16_t)_cvtss_sh(fmaf((float)(c[j / 2] >> 4), s, m), _MM_FROUND_TO_NEAREST_INT);
        }
    } else {
        for (; j + 8 <= g; j += 8)
            quant_avx2_deq8_f16(_mm_loadl_epi64((const __m128i *)(c + j)), vs, vm, o + j);
        for (; j < g; j++)
            o[j] = (uint16_t)_cvtss_sh(fmaf((float)c[j], s, m), _MM_FROUND_TO_NEAREST_INT);
    }
}

/* A row of n values dequantized to fp32 (out32) or to fp16 (out16), the
 * other NULL: always inlined into the two callers below with their
 * constant NULL, so each gets its own loop, without the test. */
QUANT_TARGET_AVX2 static inline __attribute__((always_inline)) void
quant_avx2_deq_row(const uint8_t *in, size_t n, int bits, int group, float *out32, uint16_t *out16)
{
    assert(quant_args_ok(n, bits, group));
    assert((out32 == NULL) != (out16 == NULL)); /* one output, the other NULL */
    size_t g = (size_t)group, bb = quant_block_bytes(bits, group);
    for (size_t b = 0; b < n / g; b++) {
        const uint8_t *blk = in + b * bb, *c = blk + QUANT_BLOCK_META_BYTES;
        /* F16C widening is exact, like quant_f16_bits_to_f32 */
        float s = _cvtsh_ss(quant_block_scale_bits(blk));
        float m = _cvtsh_ss(quant_block_min_bits(blk));
        __m256 vs = _mm256_set1_ps(s), vm = _mm256_set1_ps(m);
        size_t j = 0;
        for (; j + 32 <= g; j += 32) {
            __m128i v0, v1;
            quant_avx2_codes32(c, j, bits, &v0, &v1);
            if (out16)
                quant_avx2_deq32_f16(v0, v1, vs, vm, out16 + b * g + j);
            else
                quant_avx2_deq32(v0, v1, vs, vm, out32 + b * g + j);
        }
        if (out16)
            quant_avx2_tail_f16(c, j, g, bits, s, m, vs, vm, out16 + b * g);
        else
            quant_avx2_tail(c, j, g, bits, s, m, out32 + b * g);
    }
}

QUANT_TARGET_AVX2 void quant_dequantize_row_avx2(const uint8_t *in, size_t n, int bits, int group,
                                                 float *out)
{
    quant_avx2_deq_row(in, n, bits, group, out, NULL);
}

QUANT_TARGET_AVX2 void quant_dequantize_row_f16_avx2(const uint8_t *in, size_t n, int bits, int group,
                                                     uint16_t *out)
{
    quant_avx2_deq_row(in, n, bits, group, NULL, out);
}

/* Horizontal pairwise sum of 8 lanes. */
QUANT_TARGET_AVX2 static inline float quant_avx2_hsum(__m256 v)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

QUANT_TARGET_AVX2 float quant_dot_row_avx2(const uint8_t *qrow, const float *x, size_t n, int bits,
                                           int group)
{
    assert(quant_args_ok(n, bits, group));
    size_t g = (size_t)group, bb = quant_block_bytes(bits, group), g32 = g / 32 * 32;
    /* whole 32-value chunks: 4x8 lanes per block, folded into 4 rotating
     * vector accumulators (no horizontal sum per block); a tail (g % 32) goes
     * to 8 rotating scalar accumulators */
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float tacc[8] = {0};
    for (size_t b = 0; b < n / g; b++) {
        const uint8_t *blk = qrow + b * bb, *c = blk + QUANT_BLOCK_META_BYTES;
        const float *xg = x + b * g;
        float s = _cvtsh_ss(quant_block_scale_bits(blk));
        float m = _cvtsh_ss(quant_block_min_bits(blk));
        if (g32) {
            __m256 sq0 = _mm256_setzero_ps(), sq1 = sq0, sq2 = sq0, sq3 = sq0;
            __m256 sx0 = sq0, sx1 = sq0, sx2 = sq0, sx3 = sq0;
            for (size_t j = 0; j < g32; j += 32) {
                __m128i v0, v1;
                quant_avx2_codes32(c, j, bits, &v0, &v1);
                __m256 x0 = _mm256_loadu_ps(xg + j), x1 = _mm256_loadu_ps(xg + j + 8);
                __m256 x2 = _mm256_loadu_ps(xg + j + 16), x3 = _mm256_loadu_ps(xg + j + 24);
                sq0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v0)), x0, sq0);
                sq1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v0, 8))), x1, sq1);
                sq2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v1)), x2, sq2);
                sq3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v1, 8))), x3, sq3);
                sx0 = _mm256_add_ps(sx0, x0);
                sx1 = _mm256_add_ps(sx1, x1);
                sx2 = _mm256_add_ps(sx2, x2);
                sx3 = _mm256_add_ps(sx3, x3);
            }
            __m256 sq = _mm256_add_ps(_mm256_add_ps(sq0, sq1), _mm256_add_ps(sq2, sq3));
            __m256 sx = _mm256_add_ps(_mm256_add_ps(sx0, sx1), _mm256_add_ps(sx2, sx3));
            __m256 t = _mm256_fmadd_ps(_mm256_set1_ps(s), sq, _mm256_mul_ps(_mm256_set1_ps(m), sx));
            acc[b % 4] = _mm256_add_ps(acc[b % 4], t);
        }
        if (g32 < g) {
            float tq[8] = {0}, tx[8] = {0};
            for (size_t j = g32; j < g; j++) {
                tq[j % 8] = fmaf((float)quant_code_get(c, bits, j), xg[j], tq[j % 8]);
                tx[j % 8] += xg[j];
            }
            tacc[b % 8] += fmaf(s, quant_sum8(tq), m * quant_sum8(tx));
        }
    }
    __m256 v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    return quant_avx2_hsum(v) + quant_sum8(tacc);
}

#else

int quant_have_avx2(void)
{
    return 0;
}

void quant_quantize_row_avx2(const float *x, size_t n, int bits, int group, uint8_t *out)
{
    assert(!"quant_quantize_row_avx2: not built for this target");
    quant_quantize_row_portable(x, n, bits, group, out);
}

void quant_dequantize_row_avx2(const uint8_t *in, size_t n, int bits, int group, float *out)
{
    assert(!"quant_dequantize_row_avx2: not built for this target");
    quant_dequantize_row_portable(in, n, bits, group, out);
}

void quant_dequantize_row_f16_avx2(const uint8_t *in, size_t n, int bits, int group, uint16_t *out)
{
    assert(!"quant_dequantize_row_f16_avx2: not built for this target");
    quant_dequantize_row_f16_portable(in, n, bits, group, out);
}

float quant_dot_row_avx2(const uint8_t *qrow, const float *x, size_t n, int bits, int group)
{
    assert(!"quant_dot_row_avx2: not built for this target");
    return quant_dot_row_portable(qrow, x, n, bits, group);
}

#endif

/* ---- dispatch */

void quant_quantize_row(const float *x, size_t n, int bits, int group, uint8_t *out)
{
    if (quant_have_avx2())
        quant_quantize_row_avx2(x, n, bits, group, out);
    else
        quant_quantize_row_portable(x, n, bits, group, out);
}

void quant_dequantize_row(const uint8_t *in, size_t n, int bits, int group, float *out)
{
    if (quant_have_avx2())
        quant_dequantize_row_avx2(in, n, bits, group, out);
    else
        quant_dequantize_row_portable(in, n, bits, group, out);
}

void quant_dequantize_row_f16(const uint8_t *in, size_t n, int bits, int group, uint16_t *out)
{
    if (quant_have_avx2())
        quant_dequantize_row_f16_avx2(in, n, bits, group, out);
    else
        quant_dequantize_row_f16_portable(in, n, bits, group, out);
}

float quant_dot_row(const uint8_t *qrow, const float *x, size_t n, int bits, int group)
{
    if (quant_have_avx2())
        return quant_dot_row_avx2(qrow, x, n, bits, group);
    return quant_dot_row_portable(qrow, x, n, bits, group);
}

void quant_quantize_rows(const float *x, size_t rows, size_t cols, int bits, int group, uint8_t *out)
{
    size_t rb = quant_row_bytes(cols, bits, group);
    for (size_t r = 0; r < rows; r++)
        quant_quantize_row(x + r * cols, cols, bits, group, out + r * rb);
}

void quant_dequantize_rows(const uint8_t *in, size_t rows, size_t cols, int bits, int group, float *out)
{
    size_t rb = quant_row_bytes(cols, bits, group);
    for (size_t r = 0; r < rows; r++)
        quant_dequantize_row(in + r * rb, cols, bits, group, out + r * cols);
}

void quant_dequantize_rows_f16(const uint8_t *in, size_t rows, size_t cols, int bits, int group,
                               uint16_t *out)
{
    size_t rb = quant_row_bytes(cols, bits, group);
    for (size_t r = 0; r < rows; r++)
        quant_dequantize_row_f16(in + r * rb, cols, bits, group, out + r * cols);
}

double quant_dot_tol(size_t n, int group)
{
    double g = group > 0 ? (double)group : 1.0;
    return ((double)group / 8.0 + (double)n / (2.0 * g) + 48.0) * FLT_EPSILON;
}
