/*
 * test_half — exec/half.h: exhaustive round trips over every fp16 and bf16
 * bit pattern, ties-to-even at every halfway point between neighbouring
 * fp16/bf16 values, overflow, subnormals, NaN, and a nearest-value property
 * check of fp32 -> fp16 over a stride of all fp32 bit patterns.
 */
#include <math.h>
#include <stdint.h>

#include "exec/half.h"
#include "tap.h"

/* The fp32 bit patterns visited by the strided sweep: 2^32 / stride. */
#define SWEEP_STRIDE 4099u

static int f16_is_nan(uint16_t h)
{
    return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
}

static int bf16_is_nan(uint16_t b)
{
    return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu);
}

// ---- widening agrees with an independent formula

static double f16_value(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return (h & 0x8000) ? -v : v;
}

static void test_f16_widen(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = half_f16_to_f32((uint16_t)h);
        if (((h >> 10) & 0x1f) == 0x1f) {
            if (h & 0x3ff)
                bad += !isnan(f) || (signbit(f) != 0) != ((h & 0x8000) != 0);
            else
                bad += !isinf(f) || (signbit(f) != 0) != ((h & 0x8000) != 0);
            continue;
        }
        bad += (double)f != f16_value((uint16_t)h) || (signbit(f) != 0) != ((h & 0x8000) != 0);
    }
    CHECK(bad == 0, "fp16 -> fp32 differs from the formula for %d patterns", bad);
    CHECK(half_f32_bits(half_f16_to_f32(0x0001)) == half_f32_bits(ldexpf(1.0f, -24)),
          "smallest fp16 subnormal is 2^-24");
    CHECK(half_f16_to_f32(0x3c00) == 1.0f && half_f16_to_f32(0x7bff) == 65504.0f,
          "1 and 65504");
}

// ---- exhaustive round trips

static void test_round_trips(void)
{
    int bad16 = 0, badnan16 = 0, bad_bf = 0, badnan_bf = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint16_t r = half_f32_to_f16(half_f16_to_f32((uint16_t)h));
        if (f16_is_nan((uint16_t)h)) /* NaN stays NaN, same sign, made quiet */
            badnan16 += !f16_is_nan(r) || (r & 0x8000) != (h & 0x8000) ||
                        r != (uint16_t)(h | 0x200);
        else
            bad16 += r != h;
        uint16_t b = half_f32_to_bf16(half_bf16_to_f32((uint16_t)h));
        if (bf16_is_nan((uint16_t)h))
            badnan_bf += !bf16_is_nan(b) || b != (uint16_t)(h | 0x40);
        else
            bad_bf += b != h;
    }
    CHECK(bad16 == 0, "fp16 -> fp32 -> fp16 changed %d non-NaN patterns", bad16);
    CHECK(badnan16 == 0, "fp16 NaN round trip wrong for %d patterns", badnan16);
    CHECK(bad_bf == 0, "bf16 -> fp32 -> bf16 changed %d non-NaN patterns", bad_bf);
    CHECK(badnan_bf == 0, "bf16 NaN round trip wrong for %d patterns", badnan_bf);
}

// ---- halfway points: ties to even, and one fp32 ulp either side

static void test_f16_ties(void)
{
    int bad = 0;
    /* every pair of neighbouring finite positive fp16 values, subnormals included */
    for (uint32_t lo = 0; lo < 0x7bff; lo++) {
        uint16_t hi = (uint16_t)(lo + 1);
        float a = half_f16_to_f32((uint16_t)lo), b = half_f16_to_f32(hi);
        float mid = (float)(((double)a + (double)b) / 2); /* exact: 12 bits */
        uint16_t even = (lo & 1) ? hi : (uint16_t)lo;
        uint32_t mb = half_f32_bits(mid);
        bad += half_f32_to_f16(mid) != even;
        bad += half_f32_to_f16(half_bits_f32(mb - 1)) != lo;
        bad += half_f32_to_f16(half_bits_f32(mb + 1)) != hi;
        bad += half_f32_to_f16(-mid) != (even | 0x8000); /* symmetric */
    }
    CHECK(bad == 0, "fp32 -> fp16 rounding wrong at %d halfway cases", bad);
    CHECK(half_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00, "1 + 2^-11 ties to 1 (even)");
    CHECK(half_f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02, "1 + 3*2^-11 ties up to even");
}

static void test_bf16_ties(void)
{
    int bad = 0;
    for (uint32_t lo = 0; lo < 0x7f7f; lo++) {
        uint16_t hi = (uint16_t)(lo + 1);
        uint32_t mb = ((uint32_t)lo << 16) | 0x8000u; /* exactly halfway */
        uint16_t even = (lo & 1) ? hi : (uint16_t)lo;
        bad += half_f32_to_bf16(half_bits_f32(mb)) != even;
        bad += half_f32_to_bf16(half_bits_f32(mb - 1)) != lo;
        bad += half_f32_to_bf16(half_bits_f32(mb + 1)) != hi;
        bad += half_f32_to_bf16(half_bits_f32(mb | 0x80000000u)) != (even | 0x8000);
    }
    CHECK(bad == 0, "fp32 -> bf16 rounding wrong at %d halfway cases", bad);
}

// ---- overflow, infinities, NaN, subnormals

static void test_specials(void)
{
    CHECK(half_f32_to_f16(65504.0f) == 0x7bff, "65504 is the largest fp16");
    CHECK(half_f32_to_f16(65519.996f) == 0x7bff, "just below 65520 rounds down");
    CHECK(half_f32_to_f16(65520.0f) == 0x7c00, "65520 (halfway, odd below) rounds to inf");
    CHECK(half_f32_to_f16(1e10f) == 0x7c00 && half_f32_to_f16(-1e10f) == 0xfc00,
          "overflow to signed infinity");
    CHECK(half_f32_to_f16(INFINITY) == 0x7c00 && half_f32_to_f16(-INFINITY) == 0xfc00,
          "infinities");
    CHECK(f16_is_nan(half_f32_to_f16(NAN)), "NaN stays NaN");
    CHECK(half_f32_to_f16(-NAN) & 0x8000, "NaN keeps its sign");
    /* a signalling NaN whose payload sits below the kept bits stays a NaN */
    CHECK(f16_is_nan(half_f32_to_f16(half_bits_f32(0x7f800001u))), "low-payload NaN stays NaN");
    CHECK(bf16_is_nan(half_f32_to_bf16(half_bits_f32(0x7f800001u))), "bf16: low-payload NaN");
    CHECK(half_f32_to_bf16(half_bits_f32(0x7f7fffffu)) == 0x7f80, "FLT_MAX rounds to bf16 inf");
    CHECK(half_f32_to_bf16(INFINITY) == 0x7f80 && half_f32_to_bf16(-INFINITY) == 0xff80,
          "bf16 infinities");

    /* subnormals */
    CHECK(half_f32_to_f16(ldexpf(1, -24)) == 0x0001, "2^-24 is the smallest subnormal");
    CHECK(half_f32_to_f16(ldexpf(1, -25)) == 0x0000, "2^-25 ties to 0 (even)");
    CHECK(half_f32_to_f16(-ldexpf(1, -25)) == 0x8000, "-2^-25 ties to -0");
    CHECK(half_f32_to_f16(half_bits_f32(half_f32_bits(ldexpf(1, -25)) + 1)) == 0x0001,
          "just above 2^-25 rounds up to 2^-24");
    CHECK(half_f32_to_f16(3 * ldexpf(1, -25)) == 0x0002, "3*2^-25 ties to 2*2^-24 (even)");
    CHECK(half_f32_to_f16(ldexpf(1, -26)) == 0x0000, "2^-26 rounds to 0");
    CHECK(half_f32_to_f16(ldexpf(1, -14)) == 0x0400, "2^-14 is the smallest normal");
    CHECK(half_f32_to_f16(ldexpf(1023, -24)) == 0x03ff, "the largest subnormal");
    CHECK(half_f32_to_f16(ldexpf(2047, -25)) == 0x0400,
          "halfway between the largest subnormal and 2^-14 rounds to the normal (even)");
    CHECK(half_f32_to_f16(half_bits_f32(0x00000001u)) == 0x0000, "fp32 subnormal -> 0");
    CHECK(half_f32_to_f16(-0.0f) == 0x8000, "-0 keeps its sign");
    CHECK(half_f32_to_bf16(half_bits_f32(0x00000001u)) == 0x0000, "bf16: tiny fp32 subnormal");
    CHECK(half_f32_to_bf16(half_bits_f32(0x00018000u)) == 0x0002, "bf16: subnormal tie to even");
}

// ---- nearest-value property over a sweep of fp32 patterns

static void test_nearest_sweep(void)
{
    int bad = 0;
    long visited = 0;
    for (uint64_t u = 0; u < 0x100000000ull; u += SWEEP_STRIDE) {
        float f = half_bits_f32((uint32_t)u);
        if (isnan(f))
            continue;
        visited++;
        uint16_t h = half_f32_to_f16(f);
        double x = fabs((double)f);
        if (x >= 65520.0) {
            bad += (h & 0x7fff) != 0x7c00;
            continue;
        }
        double v = fabs(f16_value(h));
        double err = fabs(v - x);
        uint16_t mag = h & 0x7fff;
        /* no neighbour is closer, and a tie went to the even one */
        if (mag > 0) {
            double e2 = fabs(f16_value((uint16_t)(mag - 1)) - x);
            bad += e2 < err || (e2 == err && (mag & 1));
        }
        if (mag < 0x7bff) {
            double e2 = fabs(f16_value((uint16_t)(mag + 1)) - x);
            bad += e2 < err || (e2 == err && (mag & 1));
        }
        bad += (f != 0 || signbit(f)) && ((h & 0x8000) != 0) != (signbit(f) != 0);
    }
    CHECK(bad == 0, "fp32 -> fp16 is not the nearest value for %d of %ld patterns", bad, visited);
}

int main(void)
{
    test_f16_widen();
    test_round_trips();
    test_f16_ties();
    test_bf16_ties();
    test_specials();
    test_nearest_sweep();
    return tap_done();
}
