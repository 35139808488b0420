/*
 * quant_layout — the bytes and the arithmetic of group-wise asymmetric min/max
 * quantization, defined once for every backend (C, C++, CUDA host and device).
 * exec/quant.c builds its reference and its fast paths on these functions; a
 * CUDA kernel must call them (or reproduce them operation for operation) to be
 * bit-exact with the CPU.
 *
 * ---- layout
 *
 * A row of n values (n a multiple of the group size g; bits 4 or 8, g even) is
 * n/g blocks stored back to back, block i at byte i * quant_block_bytes(bits, g):
 *
 *   offset 0  uint16  scale, fp16 bits, little-endian
 *   offset 2  uint16  min,   fp16 bits, little-endian
 *   offset 4  codes   g*bits/8 bytes: the codes q_0 .. q_{g-1} of the group
 *                     8-bit: q_j is byte j
 *                     4-bit: q_{2j} is the low nibble of byte j, q_{2j+1} the high one
 *
 * so a row takes n*bits/8 + (n/g)*4 bytes (quant_row_bytes; the cost model's
 * quant_bytes in costmodel/sizes.h counts any number of values by the same
 * blocks). Blocks are not padded, so a block (and
 * its uint16 fields) is in general not 2-byte aligned (4-bit, g = 2 makes
 * 5-byte blocks): read the fields byte-wise (quant_block_scale_bits) or through
 * memcpy, never through a uint16_t pointer. A 2-D tensor [rows][cols] is
 * quantized row by row along cols, row r starting at r * quant_row_bytes(cols).
 *
 * ---- arithmetic (all fp32, IEEE round-to-nearest-even, no contraction)
 *
 *   sanitize   v = NaN -> 0, clamp(x, -65504, 65504) otherwise (so +-inf ->
 *              +-65504): the quantizer's domain is the finite fp16 range, and
 *              every value of a group is sanitized before anything else.
 *   per group  mn = min v, mx = max v (exact)
 *              min_h = f16(mn)                    (round to nearest even)
 *              m     = f32(min_h)
 *              L     = 2^bits - 1                 (15 or 255)
 *              d     = mx - m                     (one fp32 subtraction)
 *              scale_h = (mx > mn && d > 0) ? f16(d / (float)L) : 0
 *                                                 (one fp32 division, then f16)
 *              s     = f32(scale_h)
 *   code       q = s > 0 ? (int)rintf(fminf(fmaxf((v - m) / s, 0), L)) : 0
 *              (clamping in float before rounding equals the spec's
 *              clamp((int)rintf(t), 0, L) since 0 and L are integers, and it
 *              never converts an out-of-range float to int)
 *   dequant    x' = fmaf((float)q, s, m)
 *
 * d > 0 matters only when min_h rounded up above mx (a group narrower than an
 * fp16 ulp): the scale is then 0 rather than negative. A constant group
 * (mx == mn) has scale 0 and decodes to f32(f16(mn)) everywhere.
 *
 * Two facts the fast paths rely on: q*s is exact in fp32 (q has 8 bits, s an
 * fp16 significand of 11, even when s is subnormal), so fmaf(q, s, m) equals
 * q*s + m with one rounding, contracted or not; and (v - m) / s is a true
 * IEEE division, rintf the default round-half-to-even. CUDA: nvcc's defaults
 * (-prec-div=true, -ftz=false) give exactly this; --use_fast_math does not
 * (approximate division, and fp32 subnormal inputs flushed to zero).
 *
 * Round-trip error (derived in tests/unit/test_quant.c): for a value v of a
 * group with the numbers above, |x' - v| <= s/2 + L*h(d/L) + h(mn) + a few
 * fp32 ulps, where h(y) is the largest fp16 rounding error at y (half an fp16
 * ulp; 2^-25 in the subnormal range): the code step plus the fp16 rounding of
 * the scale and of the minimum.
 */
#ifndef LLMSIM_COMMON_QUANT_LAYOUT_H
#define LLMSIM_COMMON_QUANT_LAYOUT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef LLMSIM_HD
#if defined(__CUDACC__)
#define LLMSIM_HD __host__ __device__
#else
#define LLMSIM_HD
#endif
#endif

#ifndef LLMSIM_STATIC_ASSERT
#if defined(__cplusplus)
#define LLMSIM_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define LLMSIM_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
#endif

/* ---- sizes */

#define QUANT_BLOCK_META_BYTES 4 /* fp16 scale + fp16 min in front of every block */
#define QUANT_F16_MAX 65504.0f   /* largest finite fp16: the quantizer's domain is [-max, max] */

/* The block header; documentation and a size check for kernels that copy it. */
typedef struct quant_block_head {
    uint16_t scale_f16; /* fp16 bits of s */
    uint16_t min_f16;   /* fp16 bits of m */
} quant_block_head;

/* Fixed-g blocks for kernels specialized on the common group size 64. */
typedef struct quant_block_q4_g64 {
    uint16_t scale_f16;
    uint16_t min_f16;
    uint8_t codes[32]; /* 64 nibbles, value 2j low, 2j+1 high */
} quant_block_q4_g64;
typedef struct quant_block_q8_g64 {
    uint16_t scale_f16;
    uint16_t min_f16;
    uint8_t codes[64];
} quant_block_q8_g64;

LLMSIM_STATIC_ASSERT(sizeof(quant_block_head) == QUANT_BLOCK_META_BYTES, "block header is 2 x fp16");
LLMSIM_STATIC_ASSERT(sizeof(quant_block_q4_g64) == QUANT_BLOCK_META_BYTES + 64 / 2,
                     "4-bit g64 block is not padded");
LLMSIM_STATIC_ASSERT(sizeof(quant_block_q8_g64) == QUANT_BLOCK_META_BYTES + 64,
                     "8-bit g64 block is not padded");
LLMSIM_STATIC_ASSERT(sizeof(float) == 4 && sizeof(uint32_t) == 4, "fp32 is 4 bytes");

/* Bytes of one block of `group` values at `bits` per code. */
LLMSIM_HD static inline size_t quant_block_bytes(int bits, int group)
{
    return QUANT_BLOCK_META_BYTES + (size_t)group * (size_t)bits / 8;
}

/* Bytes of a row of n values (n a multiple of group). */
LLMSIM_HD static inline size_t quant_row_bytes(size_t n, int bits, int group)
{
    return n / (size_t)group * quant_block_bytes(bits, group);
}

/* ---- block fields (byte-wise: blocks need not be aligned) */

LLMSIM_HD static inline uint16_t quant_block_scale_bits(const uint8_t *blk)
{
    return (uint16_t)(blk[0] | (blk[1] << 8));
}

LLMSIM_HD static inline uint16_t quant_block_min_bits(const uint8_t *blk)
{
    return (uint16_t)(blk[2] | (blk[3] << 8));
}

LLMSIM_HD static inline void quant_block_set_head(uint8_t *blk, uint16_t scale_bits, uint16_t min_bits)
{
    blk[0] = (uint8_t)(scale_bits & 0xffu);
    blk[1] = (uint8_t)(scale_bits >> 8);
    blk[2] = (uint8_t)(min_bits & 0xffu);
    blk[3] = (uint8_t)(min_bits >> 8);
}

/* Code j of a block's codes (codes = blk + QUANT_BLOCK_META_BYTES). */
LLMSIM_HD static inline unsigned quant_code_get(const uint8_t *codes, int bits, size_t j)
{
    if (bits == 8)
        return codes[j];
    return (codes[j / 2] >> (4 * (j & 1))) & 0xfu;
}

/* ---- fp16 <-> fp32, exact, round to nearest even (no hardware half type) */

LLMSIM_HD static inline uint16_t quant_f32_to_f16_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quiet, sign and top payload bits kept */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* >= 65520, the halfway point above 65504: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) { /* >= 2^-14: normal; rebias 127 -> 15, round 13 bits */
        uint32_t r = a - 0x38000000u;
        uint32_t h = r >> 13, rem = r & 0x1fffu;
        h += (rem > 0x1000u) || (rem == 0x1000u && (h & 1u));
        return (uint16_t)(sign | h); /* a carry moves into the exponent, as it should */
    }
    uint32_t e = a >> 23;
    if (e < 102) /* below 2^-25 (fp32 subnormals included): rounds to zero */
        return (uint16_t)sign;
    /* subnormal result k * 2^-24 with k = mant * 2^(e - 126) rounded */
    uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14 .. 24 */
    uint32_t k = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    k += (rem > half) || (rem == half && (k & 1u));
    return (uint16_t)(sign | k); /* k == 0x400 is the smallest normal, correctly */
}

LLMSIM_HD static inline float quant_f16_bits_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t bits;
    if (e == 0x1f) { /* inf / NaN, payload kept */
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (e != 0) {
        bits = sign | ((e + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else { /* subnormal mant * 2^-24: normalize (mant has at most 10 bits) */
        uint32_t fe = 113;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            fe--;
        }
        bits = sign | (fe << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- the arithmetic, one function per line of the definition above */

/* NaN -> 0, then clamp to [-65504, 65504] (infinities included). */
LLMSIM_HD static inline float quant_sanitize(float x)
{
    float v = x != x ? 0.0f : x;
    v = v < -QUANT_F16_MAX ? -QUANT_F16_MAX : v;
    return v > QUANT_F16_MAX ? QUANT_F16_MAX : v;
}

/* Scale and minimum (fp16 bits) of a group whose sanitized values span [mn, mx]. */
LLMSIM_HD static inline void quant_group_params(float mn, float mx, int bits, uint16_t *scale_bits,
                                                uint16_t *min_bits)
{
    uint16_t min_h = quant_f32_to_f16_bits(mn);
    float m = quant_f16_bits_to_f32(min_h);
    float levels = (float)((1 << bits) - 1);
    float d = mx - m;
    *min_bits = min_h;
    *scale_bits = (mx > mn && d > 0.0f) ? quant_f32_to_f16_bits(d / levels) : (uint16_t)0;
}

/* The code of a sanitized value v under fp32 scale s and minimum m. */
LLMSIM_HD static inline unsigned quant_code(float v, float s, float m, int bits)
{
    if (!(s > 0.0f))
        return 0;
    float levels = (float)((1 << bits) - 1);
    float t = (v - m) / s;
    t = fminf(fmaxf(t, 0.0f), levels);
    return (unsigned)rintf(t);
}

/* The value a code decodes to. */
LLMSIM_HD static inline float quant_dequant(unsigned q, float s, float m)
{
    return fmaf((float)q, s, m);
}

#endif
