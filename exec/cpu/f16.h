/*
 * f16 — exact conversions between IEEE binary16 (fp16), bfloat16 and fp32
 * for the CPU kernels, as static inline functions on uint16 bit patterns.
 *
 * To fp32 every conversion is exact (both formats are subsets of fp32);
 * fp16 NaNs come back quiet, as F16C's VCVTPH2PS returns them, so the scalar
 * and the SIMD paths of the kernels agree bit for bit. From fp32 (used to
 * make weights in tests and benchmarks) rounding is to nearest, ties to even;
 * fp16 overflows to infinity.
 */
#ifndef LLMSIM_EXEC_CPU_F16_H
#define LLMSIM_EXEC_CPU_F16_H

#include <stdint.h>
#include <string.h>

static inline float k_bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t k_f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float k_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf, or NaN made quiet */
        return k_bits_to_f32(sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0));
    if (exp != 0) /* normal: rebias 15 -> 127 */
        return k_bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
    /* zero or subnormal: man * 2^-24, exact in fp32 */
    return k_bits_to_f32(sign | k_f32_to_bits((float)man * 0x1p-24f));
}

static inline float k_bf16_to_f32(uint16_t b)
{
    return k_bits_to_f32((uint32_t)b << 16);
}

/* Round to nearest even (F. Giesen's float_to_half_fast3_rtne). */
static inline uint16_t k_f32_to_f16(float f)
{
    const uint32_t f32_inf = 255u << 23, f16_max = (127u + 16u) << 23;
    const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    uint32_t u = k_f32_to_bits(f);
    const uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint16_t o;
    if (u >= f16_max) { /* overflow, inf or NaN */
        o = u > f32_inf ? 0x7e00u : 0x7c00u;
    } else if (u < (113u << 23)) { /* subnormal or zero: let the FPU round */
        o = (uint16_t)(k_f32_to_bits(k_bits_to_f32(u) + k_bits_to_f32(denorm_magic)) -
                       denorm_magic);
    } else {
        const uint32_t odd = (u >> 13) & 1u;
        u += (uint32_t)(15 - 127) * (1u << 23) + 0xfffu + odd;
        o = (uint16_t)(u >> 13);
    }
    return (uint16_t)(o | (sign >> 16));
}

static inline uint16_t k_f32_to_bf16(float f)
{
    const uint32_t u = k_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a NaN */
        return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

#endif
