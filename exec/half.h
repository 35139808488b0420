/*
 * half — IEEE binary16 (fp16) and bfloat16 (bf16) <-> binary32 (fp32)
 * conversion, scalar and exact. These are the reference conversions that every
 * vectorized or device version is tested against.
 *
 * - Widening (fp16/bf16 -> fp32) is exact for every bit pattern: subnormals are
 *   normalized, infinities kept, NaNs keep their sign and payload.
 * - Narrowing (fp32 -> fp16/bf16) rounds to nearest, ties to even, like a
 *   hardware cvt with the default rounding mode: values at or beyond the
 *   halfway point above the largest finite value become infinity, results below
 *   the normal range become subnormals (or a signed zero), NaNs stay NaN with
 *   their sign and the top bits of their payload, made quiet.
 *
 * Bit patterns travel as uint16_t; no hardware half type and no floating-point
 * environment (rounding mode, flush-to-zero) is involved, so results are the
 * same on every host. Usable from C, C++ and CUDA (host and device).
 */
#ifndef LLMSIM_EXEC_HALF_H
#define LLMSIM_EXEC_HALF_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define HALF_FN static inline __host__ __device__
#else
#define HALF_FN static inline
#endif

/* ---- bit casts */

HALF_FN uint32_t half_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

HALF_FN float half_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- fp16 (1 sign, 5 exponent bits with bias 15, 10 mantissa bits) */

HALF_FN float half_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) { /* infinity or NaN: keep the payload */
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) { /* normal: rebias 15 -> 127 */
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) { /* signed zero */
        bits = sign;
    } else { /* subnormal mant * 2^-24: normalize */
        uint32_t e = 113; /* exponent field of 2^-14, the first normal binade */
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
    return half_bits_f32(bits);
}

HALF_FN uint16_t half_f32_to_f16(float f)
{
    uint32_t x = half_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: top payload bits, quiet bit set */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) /* >= 65520, halfway above 65504: rounds to infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) { /* >= 2^-14: normal result */
        uint32_t h = (ax - 0x38000000u) >> 13; /* rebias 127 -> 15, drop 13 bits */
        uint32_t rest = ax & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
            h++; /* a carry into the exponent is the right answer */
        return (uint16_t)(sign | h);
    }
    /* subnormal result: the value in units of 2^-24, rounded */
    uint32_t e = ax >> 23;
    if (e < 102) /* below 2^-25 (including fp32 subnormals): rounds to zero */
        return sign;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u; /* value = m * 2^(e - 150) */
    uint32_t shift = 126 - e;                  /* 14..24 */
    uint32_t q = m >> shift;
    uint32_t rest = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1u)))
        q++; /* 0x3ff + 1 = 0x400 is the smallest normal: still right */
    return (uint16_t)(sign | q);
}

/* ---- bf16 (the top half of an fp32) */

HALF_FN float half_bf16_to_f32(uint16_t b)
{
    return half_bits_f32((uint32_t)b << 16);
}

HALF_FN uint16_t half_f32_to_bf16(float f)
{
    uint32_t x = half_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: keep sign and top payload, quiet */
        return (uint16_t)((x >> 16) | 0x0040u);
    /* ties to even: add 0x7fff, plus 1 when the kept part is odd; the largest
     * finite values round up into infinity exactly as they should */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

#endif
