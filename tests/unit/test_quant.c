/*
 * test_quant — group-wise min/max quantization (exec/quant.h, common/quant_layout.h).
 *
 *  - the fp16 helpers: every fp16 value round-trips, ties go to even, the
 *    overflow and underflow thresholds, and (where the CPU has F16C) agreement
 *    with the hardware conversion on random fp32 bit patterns;
 *  - sizes: quant_row_bytes equals the cost model's quant_bytes for many
 *    (n, bits, group), rows and 2-D tensors;
 *  - quant_check accepts and rejects what it should, with a message;
 *  - packing order: known patterns give known bytes (header little-endian,
 *    value 2j in the low nibble of byte j);
 *  - the reference round trip is within RT_TOL per value (derived below);
 *  - every fast path (dispatch, portable, AVX2 where the CPU has it) is bit-exact
 *    with the reference, quantizing random rows (seeds 1..4, n 32..4096,
 *    groups 2..4096 and odd ones that exercise the tails, 4 and 8 bits) and edge
 *    cases (constant groups, negative, huge, tiny, subnormal, NaN, inf), and
 *    dequantizing random blocks with arbitrary codes and finite headers;
 *  - the defined behaviour of NaN (read as 0) and +-inf / huge (clamped to
 *    +-65504): same bytes as the sanitized row, finite output;
 *  - quant_dot_row is within quant_dot_tol of dequantize-then-dot;
 *  - the layout's static asserts compile (including them here is the test).
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/quant.h"
#include "common/quant_layout.h"
#include "costmodel/sizes.h"
#include "policies/policy.h"
#include "tap.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TEST_X86 1
#else
#define TEST_X86 0
#endif

/* the layout header's macro works here too */
LLMSIM_STATIC_ASSERT(sizeof(quant_block_q4_g64) == 36, "q4 g64 block is 36 bytes");
LLMSIM_STATIC_ASSERT(QUANT_BLOCK_META_BYTES == 4, "a block starts with an fp16 scale and an fp16 min");

#define N_SEEDS 4

/* ---- helpers */

static uint64_t rng_s;

static uint64_t rng_u64(void) /* splitmix64 */
{
    uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(void) /* [0, 1) */
{
    return (double)(rng_u64() >> 11) * 0x1p-53;
}

static float rng_normal(void)
{
    double u = rng_unit(), v = rng_unit();
    return (float)(sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v));
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Bit-equality of two float arrays, NaN equal to NaN (payloads may differ). */
static size_t count_diff_floats(const float *a, const float *b, size_t n, size_t *first)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        int same = f32_bits(a[i]) == f32_bits(b[i]) || (isnan(a[i]) && isnan(b[i]));
        if (!same && bad++ == 0)
            *first = i;
    }
    return bad;
}

static size_t count_diff_bytes(const uint8_t *a, const uint8_t *b, size_t n, size_t *first)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i] && bad++ == 0)
            *first = i;
    return bad;
}

/* The fast paths under test. */
typedef struct qpath {
    const char *name;
    void (*quantize)(const float *, size_t, int, int, uint8_t *);
    void (*dequantize)(const uint8_t *, size_t, int, int, float *);
    float (*dot)(const uint8_t *, const float *, size_t, int, int);
} qpath;

static int paths_get(qpath out[3])
{
    int k = 0;
    out[k++] = (qpath){"dispatch", quant_quantize_row, quant_dequantize_row, quant_dot_row};
    out[k++] = (qpath){"portable", quant_quantize_row_portable, quant_dequantize_row_portable,
                       quant_dot_row_portable};
    if (quant_have_avx2())
        out[k++] = (qpath){"avx2", quant_quantize_row_avx2, quant_dequantize_row_avx2,
                           quant_dot_row_avx2};
    return k;
}

/* ---- fp16 helpers */

#if TEST_X86
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h)
{
    return _cvtsh_ss(h);
}
#endif

static void test_f16(void)
{
    /* every fp16 value widens and narrows back to itself (NaNs stay NaN, sign kept) */
    size_t bad = 0, bad_nan = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = quant_f16_bits_to_f32((uint16_t)h);
        uint16_t back = quant_f32_to_f16_bits(f);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            bad_nan += !isnan(f) || (back & 0x7c00) != 0x7c00 || !(back & 0x3ff) || (back & 0x8000) != (h & 0x8000);
        } else {
            bad += back != h;
        }
    }
    CHECK(bad == 0, "fp16 -> fp32 -> fp16 changed %zu values", bad);
    CHECK(bad_nan == 0, "%zu NaNs did not stay NaN", bad_nan);

    /* known values */
    CHECK(quant_f16_bits_to_f32(0x3c00) == 1.0f, "1.0");
    CHECK(quant_f16_bits_to_f32(0x0001) == 0x1p-24f, "smallest subnormal");
    CHECK(quant_f16_bits_to_f32(0x03ff) == 1023 * 0x1p-24f, "largest subnormal");
    CHECK(quant_f16_bits_to_f32(0x0400) == 0x1p-14f, "smallest normal");
    CHECK(quant_f16_bits_to_f32(0x7bff) == 65504.0f, "largest finite");
    CHECK(isinf(quant_f16_bits_to_f32(0x7c00)) && quant_f16_bits_to_f32(0xfc00) < 0, "infinities");
    CHECK(f32_bits(quant_f16_bits_to_f32(0x8000)) == 0x80000000u, "-0");
    CHECK(quant_f32_to_f16_bits(65519.99f) == 0x7bff, "below the overflow tie");
    CHECK(quant_f32_to_f16_bits(65520.0f) == 0x7c00, "the overflow tie rounds to inf");
    CHECK(quant_f32_to_f16_bits(-1e30f) == 0xfc00, "-1e30 -> -inf");
    CHECK(quant_f32_to_f16_bits(0x1p-25f) == 0x0000, "2^-25 ties to 0");
    CHECK(quant_f32_to_f16_bits(nextafterf(0x1p-25f, 1.0f)) == 0x0001, "just above 2^-25");
    CHECK(quant_f32_to_f16_bits(3 * 0x1p-25f) == 0x0002, "1.5 * 2^-24 ties to 2");
    CHECK(quant_f32_to_f16_bits(1e-40f) == 0x0000 && quant_f32_to_f16_bits(-1e-40f) == 0x8000,
          "fp32 subnormals go to signed zero");
    CHECK(quant_f32_to_f16_bits(1023.5f * 0x1p-24f) == 0x0400, "subnormal rounds up into normal");

    /* every midpoint between adjacent finite positive fp16 values ties to the even one,
     * and the fp32 values on either side of it go to the nearer */
    bad = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        float a = quant_f16_bits_to_f32((uint16_t)h), b = quant_f16_bits_to_f32((uint16_t)(h + 1));
        float mid = (float)(((double)a + (double)b) / 2); /* 12 significant bits: exact in fp32 */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        bad += quant_f32_to_f16_bits(mid) != even;
        bad += quant_f32_to_f16_bits(nextafterf(mid, 0.0f)) != h;
        bad += quant_f32_to_f16_bits(nextafterf(mid, INFINITY)) != h + 1;
        bad += quant_f32_to_f16_bits(-mid) != (even | 0x8000);
    }
    CHECK(bad == 0, "%zu midpoint roundings wrong", bad);

#if TEST_X86
    if (quant_have_avx2()) { /* which includes F16C */
        /* the hardware conversion on random fp32 bit patterns (NaNs excluded) */
        rng_s = 1;
        bad = 0;
        for (int i = 0; i < (1 << 22); i++) {
            uint32_t u = (uint32_t)rng_u64();
            if (i & 1) /* concentrate half the samples on the fp16 range */
                u = (u & 0x807fffffu) | ((uint32_t)(102 + (u >> 23) % 42) << 23);
            float f = bits_f32(u);
            if (isnan(f))
                continue;
            bad += quant_f32_to_f16_bits(f) != hw_f32_to_f16(f);
        }
        for (uint32_t h = 0; h < 65536; h++) {
            float a = quant_f16_bits_to_f32((uint16_t)h), b = hw_f16_to_f32((uint16_t)h);
            bad += !(f32_bits(a) == f32_bits(b) || (isnan(a) && isnan(b)));
        }
        CHECK(bad == 0, "%zu conversions differ from F16C", bad);
    }
#endif
}

/* ---- sizes and validation */

static void test_sizes(void)
{
    const int groups[] = {2, 4, 6, 8, 30, 32, 64, 96, 128, 256, 4096, 65536};
    const size_t mult[] = {1, 2, 3, 7, 100, 1001};
    size_t bad = 0, checked = 0;
    for (int bits = 4; bits <= 8; bits += 4)
        for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++)
            for (size_t mi = 0; mi < sizeof mult / sizeof *mult; mi++) {
                int g = groups[gi];
                size_t n = (size_t)g * mult[mi];
                quant q = {bits, g};
                double want = quant_bytes(&q, (double)n, 2);
                bad += (double)quant_row_bytes(n, bits, g) != want;
                /* a [rows][n] tensor is rows rows, and the cost model sees rows*n values */
                size_t rows = 3 + mi;
                bad += (double)(rows * quant_row_bytes(n, bits, g)) != quant_bytes(&q, (double)(rows * n), 2);
                bad += quant_block_bytes(bits, g) != 4 + (size_t)g * bits / 8;
                checked++;
            }
    CHECK(bad == 0, "%zu of %zu sizes differ from quant_bytes", bad, checked);
    CHECK(quant_row_bytes(4096, 4, 64) == 2304 && quant_row_bytes(4096, 8, 64) == 4352,
          "4096 values: 2304 bytes at 4 bits g64, 4352 at 8 bits");
    CHECK(quant_block_bytes(4, 2) == 5, "4-bit g2 blocks are 5 bytes: no padding");
}

static void test_check(void)
{
    diag e = {0};
    CHECK(quant_check(4096, 4, 64, &e) == LLMSIM_OK, "4 bits g64");
    CHECK(quant_check(4096, 8, 4096, &e) == LLMSIM_OK, "8 bits g4096");
    CHECK(quant_check(6, 4, 2, &e) == LLMSIM_OK, "g2");
    CHECK(quant_check(65536 * 2, 4, 65536, &e) == LLMSIM_OK, "g65536");
    CHECK(quant_check(0, 4, 64, &e) == LLMSIM_OK, "an empty row");
    struct {
        size_t n;
        int bits, group;
        const char *says;
    } bad[] = {
        {4096, 3, 64, "bits must be 4 or 8, got 3"}, {4096, 16, 64, "got 16"},
        {4096, 0, 64, "got 0"},                      {4096, 4, 0, "even number of at least 2, got 0"},
        {4096, 4, 1, "got 1"},                       {4096, 4, 63, "got 63"},
        {4096, 4, -2, "got -2"},                     {100, 4, 64, "64 must divide the row length 100"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        diag d = {0};
        llmsim_status st = quant_check(bad[i].n, bad[i].bits, bad[i].group, &d);
        CHECK(st == LLMSIM_EINPUT && strstr(d.msg, bad[i].says), "case %zu: status %d, '%s'", i, st,
              d.msg);
    }
    CHECK(quant_check(10, 5, 2, NULL) == LLMSIM_EINPUT, "NULL diag");
}

/* ---- packing order */

static void test_packing(void)
{
    /* 4 bits, g16, two groups: 0..15 (min 0, scale 1) then -8..7 (min -8, scale 1):
     * the codes are the values minus the minimum, exactly */
    float x[32], y[32];
    for (int i = 0; i < 16; i++) {
        x[i] = (float)i;
        x[16 + i] = (float)(i - 8);
    }
    uint8_t q[2 * 12];
    CHECK(quant_row_bytes(32, 4, 16) == sizeof q, "two 12-byte blocks");
    quant_quantize_row_ref(x, 32, 4, 16, q);
    const uint8_t want4[24] = {0x00, 0x3c, 0x00, 0x00, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe,
                               0x00, 0x3c, 0x00, 0xc8, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe};
    size_t first = 0;
    CHECK(count_diff_bytes(q, want4, 24, &first) == 0, "4-bit bytes differ from byte %zu: %02x vs %02x",
          first, q[first], want4[first]);
    quant_dequantize_row_ref(q, 32, 4, 16, y);
    CHECK(count_diff_floats(x, y, 32, &first) == 0, "4-bit exact pattern decodes exactly");
    for (int j = 0; j < 16; j++)
        CHECK(quant_code_get(q + 16, 4, (size_t)j) == (unsigned)j, "quant_code_get 4-bit %d", j);

    /* 8 bits, g256: 0..255 with min 0 and scale 1 */
    float x8[256], y8[256];
    uint8_t q8[4 + 256];
    for (int i = 0; i < 256; i++)
        x8[i] = (float)(255 - i);
    quant_quantize_row_ref(x8, 256, 8, 256, q8);
    CHECK(q8[0] == 0x00 && q8[1] == 0x3c && q8[2] == 0 && q8[3] == 0, "8-bit header: scale 1, min 0");
    size_t bad = 0;
    for (int i = 0; i < 256; i++)
        bad += q8[4 + i] != 255 - i || quant_code_get(q8 + 4, 8, (size_t)i) != (unsigned)(255 - i);
    CHECK(bad == 0, "8-bit codes are byte j = value j");
    quant_dequantize_row_ref(q8, 256, 8, 256, y8);
    CHECK(count_diff_floats(x8, y8, 256, &first) == 0, "8-bit exact pattern decodes exactly");

    /* the header's byte order: scale 0.5 = 0x3800, min -2 = 0xc000 */
    float x2[2] = {-2.0f, 5.5f}; /* 4 bits: d = 7.5, 7.5 / 15 = 0.5 */
    uint8_t q2[5];
    quant_quantize_row_ref(x2, 2, 4, 2, q2);
    CHECK(q2[0] == 0x00 && q2[1] == 0x38 && q2[2] == 0x00 && q2[3] == 0xc0 && q2[4] == 0xf0,
          "g2 block: %02x %02x %02x %02x %02x", q2[0], q2[1], q2[2], q2[3], q2[4]);
    CHECK(quant_block_scale_bits(q2) == 0x3800 && quant_block_min_bits(q2) == 0xc000, "field readers");

    /* every fast path writes the same bytes */
    qpath p[3];
    int np = paths_get(p);
    for (int k = 0; k < np; k++) {
        uint8_t qf[24];
        p[k].quantize(x, 32, 4, 16, qf);
        CHECK(memcmp(qf, want4, 24) == 0, "%s: packing", p[k].name);
    }
}

/* ---- the round trip */

/* Largest fp16 rounding error at y: half an ulp of y's binade, 2^-25 below 2^-14. */
static double f16_half_ulp(double y)
{
    y = fabs(y);
    if (y < 0x1p-14)
        return 0x1p-25;
    int e;
    frexp(y, &e); /* y = f * 2^e, f in [0.5, 1): binade 2^(e-1), ulp 2^(e-11) */
    return ldexp(1.0, e - 12);
}

/*
 * RT_TOL: the bound on |x' - v| for a sanitized value v of a group with range
 * [mn, mx], scale s and minimum m (quant_layout.h's definitions):
 *  - inside the code range the code is the nearest level: s/2;
 *  - at the top the codes stop at L while mx - m can exceed L*s by the fp16
 *    rounding of the scale, L * h(d/L) (also the whole error when the scale
 *    underflows to 0);
 *  - at the bottom m = f16(mn) can lie above mn by h(mn) (also the whole error
 *    of a constant group);
 *  - fp32 roundings of d, d/L, (v - m)/s and of q*s + m: a few ulps of the
 *    magnitudes involved, RT_FP32_ULPS of them.
 */
#define RT_FP32_ULPS 4.0
static double rt_tol(float mn, float mx, float s, int bits)
{
    double L = (double)((1 << bits) - 1), d = (double)mx - (double)quant_f16_bits_to_f32(quant_f32_to_f16_bits(mn));
    return 0.5 * s + L * f16_half_ulp(d / L) + f16_half_ulp(mn) +
           RT_FP32_ULPS * FLT_EPSILON * (fabs(mn) + fabs(mx) + (L + 1) * s);
}

/* Check |dequant - sanitize(x)| <= RT_TOL over a row; returns the worst err/tol. */
static double check_round_trip(const float *x, size_t n, int bits, int g, const char *what)
{
    size_t bb = quant_block_bytes(bits, g);
    uint8_t *q = malloc(quant_row_bytes(n, bits, g));
    float *y = malloc(n * sizeof *y);
    quant_quantize_row_ref(x, n, bits, g, q);
    quant_dequantize_row_ref(q, n, bits, g, y);
    double worst = 0;
    size_t bad = 0, bad_at = 0;
    for (size_t b = 0; b < n / (size_t)g; b++) {
        const float *xg = x + b * (size_t)g;
        float mn = quant_sanitize(xg[0]), mx = mn;
        for (int j = 1; j < g; j++) {
            float v = quant_sanitize(xg[j]);
            mn = fminf(mn, v);
            mx = fmaxf(mx, v);
        }
        float s = quant_f16_bits_to_f32(quant_block_scale_bits(q + b * bb));
        double tol = rt_tol(mn, mx, s, bits);
        for (int j = 0; j < g; j++) {
            size_t i = b * (size_t)g + (size_t)j;
            double err = fabs((double)y[i] - (double)quant_sanitize(x[i]));
            if (err > worst * tol)
                worst = err / tol;
            if (!(err <= tol) && bad++ == 0)
                bad_at = i;
        }
    }
    CHECK(bad == 0, "%s (%d bits, g%d): %zu values beyond RT_TOL, first x[%zu] = %.9g -> %.9g", what,
          bits, g, bad, bad_at, x[bad_at], y[bad_at]);
    free(q);
    free(y);
    return worst;
}

/* Fill x[n] with one of several distributions. */
static void fill(float *x, size_t n, int kind)
{
    for (size_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: x[i] = (float)(2 * rng_unit() - 1); break;           /* uniform [-1, 1) */
        case 1: x[i] = 0.02f * rng_normal(); break;                   /* weight-like */
        case 2: x[i] = 3e4f * rng_normal(); break;                    /* near the fp16 range */
        case 3: x[i] = 1000.0f + (float)rng_unit(); break;            /* offset: min far from 0 */
        case 4: x[i] = 1e-6f * rng_normal(); break;                   /* fp16 subnormal range */
        case 5: x[i] = -(float)rng_unit() * 100.0f; break;            /* all negative */
        case 6: x[i] = (float)ldexp(rng_normal(), (int)(rng_u64() % 40) - 20); break; /* wide */
        default: x[i] = (float)(rng_u64() % 16); break;               /* small integers */
        }
    }
}
#define N_KINDS 8

static void test_round_trip(void)
{
    const int groups[] = {2, 6, 32, 64, 128, 4096};
    double worst = 0;
    for (int seed = 1; seed <= N_SEEDS; seed++) {
        rng_s = (uint64_t)seed;
        for (int kind = 0; kind < N_KINDS; kind++)
            for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++)
                for (int bits = 4; bits <= 8; bits += 4) {
                    size_t n = 4096 - 4096 % (size_t)groups[gi];
                    float *x = malloc(n * sizeof *x);
                    fill(x, n, kind);
                    char what[64];
                    snprintf(what, sizeof what, "seed %d kind %d", seed, kind);
                    double w = check_round_trip(x, n, bits, groups[gi], what);
                    worst = w > worst ? w : worst;
                    free(x);
                }
    }
    printf("# round trip: worst error / RT_TOL = %.3f\n", worst);
    CHECK(worst > 0.45, "RT_TOL is not loose: the worst error reaches %.3f of it", worst);
}

/* ---- fast paths against the reference */

/* Quantize x with every path and the reference; bytes and dequantized floats bit-exact. */
static void check_exact(const float *x, size_t n, int bits, int g, const char *what)
{
    size_t rb = quant_row_bytes(n, bits, g);
    uint8_t *qr = malloc(rb + 1), *qf = malloc(rb + 1);
    float *yr = malloc((n + 1) * sizeof *yr), *yf = malloc((n + 1) * sizeof *yf);
    quant_quantize_row_ref(x, n, bits, g, qr);
    quant_dequantize_row_ref(qr, n, bits, g, yr);
    qpath p[3];
    int np = paths_get(p);
    for (int k = 0; k < np; k++) {
        size_t first = 0;
        qf[rb] = 0xa5;
        yf[n] = -7.0f;
        p[k].quantize(x, n, bits, g, qf);
        size_t bad = count_diff_bytes(qr, qf, rb, &first);
        CHECK(bad == 0 && qf[rb] == 0xa5, "%s: %s quantize (%d bits, n %zu, g%d): %zu bytes differ, first %zu",
              what, p[k].name, bits, n, g, bad, first);
        p[k].dequantize(qr, n, bits, g, yf);
        bad = count_diff_floats(yr, yf, n, &first);
        CHECK(bad == 0 && yf[n] == -7.0f,
              "%s: %s dequantize (%d bits, n %zu, g%d): %zu values differ, first [%zu] %a vs %a", what,
              p[k].name, bits, n, g, bad, first, yf[first], yr[first]);
    }
    free(qr);
    free(qf);
    free(yr);
    free(yf);
}

static void test_fast_exact_random(void)
{
    /* the groups the issue names, and odd ones for every tail: g < 16, not a multiple of 16 or 32 */
    const int groups[] = {2, 32, 64, 128, 4096, 4, 6, 14, 18, 34, 48, 62, 96, 130};
    const size_t sizes[] = {32, 64, 96, 128, 384, 1000, 2048, 4096};
    int cases = 0;
    for (int seed = 1; seed <= N_SEEDS; seed++) {
        rng_s = 100 + (uint64_t)seed;
        for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++)
            for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
                int g = groups[gi];
                size_t n = sizes[si] - sizes[si] % (size_t)g;
                if (n == 0)
                    n = (size_t)g;
                float *x = malloc(n * sizeof *x);
                fill(x, n, (int)(rng_u64() % N_KINDS));
                char what[48];
                snprintf(what, sizeof what, "seed %d", seed);
                check_exact(x, n, 4, g, what);
                check_exact(x, n, 8, g, what);
                cases += 2;
                free(x);
            }
    }
    printf("# fast == reference: %d random rows x %d paths, seeds 1..%d\n", cases,
           quant_have_avx2() ? 3 : 2, N_SEEDS);
}

/* Dequantize arbitrary bytes (any codes, random finite headers of either sign). */
static void test_fast_exact_dequant_any(void)
{
    const int groups[] = {2, 6, 32, 34, 64, 128};
    rng_s = 7;
    qpath p[3];
    int np = paths_get(p);
    for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++)
        for (int bits = 4; bits <= 8; bits += 4) {
            int g = groups[gi];
            size_t n = (size_t)g * 37, rb = quant_row_bytes(n, bits, g), bb = quant_block_bytes(bits, g);
            uint8_t *q = malloc(rb);
            float *yr = malloc(n * sizeof *yr), *yf = malloc(n * sizeof *yf);
            for (size_t i = 0; i < rb; i++)
                q[i] = (uint8_t)rng_u64();
            for (size_t b = 0; b < n / (size_t)g; b++) { /* finite headers: exponent field < 31 */
                uint8_t *blk = q + b * bb;
                if ((blk[1] & 0x7c) == 0x7c)
                    blk[1] ^= 0x40;
                if ((blk[3] & 0x7c) == 0x7c)
                    blk[3] ^= 0x40;
            }
            quant_dequantize_row_ref(q, n, bits, g, yr);
            for (int k = 0; k < np; k++) {
                size_t first = 0, bad;
                p[k].dequantize(q, n, bits, g, yf);
                bad = count_diff_floats(yr, yf, n, &first);
                CHECK(bad == 0, "%s: dequantize arbitrary blocks (%d bits, g%d): %zu differ, first [%zu]",
                      p[k].name, bits, g, bad, first);
            }
            free(q);
            free(yr);
            free(yf);
        }
}

/* ---- edge cases and the defined behaviour of NaN and inf */

static void test_edges(void)
{
    const float nan = NAN, inf = INFINITY;
    /* rows of 64 values, groups of 8, 16, 32 or 64; each row names its case */
    struct {
        const char *name;
        float v[8]; /* repeated over the row, with a per-position twist below */
        int twist;  /* 0: repeat exactly; 1: add i * 1e-3 * |v|; 2: alternate sign */
    } rows[] = {
        {"constant zero", {0, 0, 0, 0, 0, 0, 0, 0}, 0},
        {"constant 0.1", {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f}, 0},
        {"constant negative", {-3.7f, -3.7f, -3.7f, -3.7f, -3.7f, -3.7f, -3.7f, -3.7f}, 0},
        {"constant max", {65504, 65504, 65504, 65504, 65504, 65504, 65504, 65504}, 0},
        {"negative", {-1, -2, -3, -4, -5, -6, -7, -8}, 1},
        {"fp16 extremes", {-65504, 65504, 0, 1, -1, 3e4f, -3e4f, 0.5f}, 0},
        {"huge", {1e30f, -1e30f, FLT_MAX, -FLT_MAX, 7e4f, -7e4f, 65520, 1}, 0},
        {"tiny", {1e-30f, -1e-30f, 1e-40f, -1e-40f, 1e-45f, 0, 3e-8f, 6e-8f}, 1},
        {"fp16 subnormals", {6e-8f, 1e-7f, 3e-6f, 6e-5f, -6e-8f, -2e-5f, 1e-6f, 0}, 2},
        {"narrow above 1", {1.0006f, 1.0007f, 1.00065f, 1.0006f, 1.0007f, 1.0006f, 1.0007f, 1.0006f}, 0},
        {"NaN", {nan, 1, 2, 3, nan, -1, 0.5f, 2.5f}, 0},
        {"all NaN", {nan, nan, nan, nan, nan, nan, nan, nan}, 0},
        {"inf", {inf, -inf, 0, 1, -1, 2, 3, 4}, 0},
        {"+inf only", {inf, inf, inf, inf, inf, inf, inf, inf}, 0},
        {"mixed", {nan, inf, -inf, 1e-40f, -0.0f, 65504, 1e30f, 6e-8f}, 2},
        {"4-bit ties", {0, 15, 0.5f, 1.5f, 2.5f, 3.5f, 14.5f, 7.5f}, 0},   /* scale 1 at 4 bits */
        {"8-bit ties", {0, 255, 0.5f, 1.5f, 2.5f, 3.5f, 254.5f, 127.5f}, 0}, /* scale 1 at 8 bits */
    };
    const int groups[] = {2, 8, 16, 32, 64};
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        float x[64], clean[64];
        for (int i = 0; i < 64; i++) {
            float v = rows[r].v[i % 8];
            if (rows[r].twist == 1)
                v += (float)i * 1e-3f * fabsf(v);
            if (rows[r].twist == 2 && (i / 8) % 2)
                v = -v;
            x[i] = v;
            /* the documented behaviour: NaN reads as 0, the rest clamps to +-65504 */
            clean[i] = isnan(v) ? 0.0f : fmaxf(-65504.0f, fminf(65504.0f, v));
        }
        for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++)
            for (int bits = 4; bits <= 8; bits += 4) {
                int g = groups[gi];
                check_exact(x, 64, bits, g, rows[r].name);
                check_round_trip(x, 64, bits, g, rows[r].name);
                uint8_t q[64 + 4 * 32], qc[64 + 4 * 32];
                float y[64];
                size_t rb = quant_row_bytes(64, bits, g), bb = quant_block_bytes(bits, g);
                quant_quantize_row(x, 64, bits, g, q);
                quant_quantize_row(clean, 64, bits, g, qc);
                CHECK(memcmp(q, qc, rb) == 0, "%s (%d bits, g%d): not the same bytes as the sanitized row",
                      rows[r].name, bits, g);
                quant_dequantize_row(q, 64, bits, g, y);
                size_t nonfinite = 0, badhead = 0;
                for (int i = 0; i < 64; i++)
                    nonfinite += !isfinite(y[i]);
                for (size_t b = 0; b < 64 / (size_t)g; b++) {
                    uint16_t sh = quant_block_scale_bits(q + b * bb), mh = quant_block_min_bits(q + b * bb);
                    /* scale: non-negative and finite; min: finite */
                    badhead += (sh & 0x8000) || (sh & 0x7c00) == 0x7c00 || (mh & 0x7c00) == 0x7c00;
                }
                CHECK(nonfinite == 0 && badhead == 0, "%s (%d bits, g%d): %zu non-finite outputs, %zu bad headers",
                      rows[r].name, bits, g, nonfinite, badhead);
            }
    }

    /* constant groups decode to their value rounded to fp16, with scale 0 */
    float c[8] = {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f}, y[8];
    uint8_t q[4 + 4];
    quant_quantize_row(c, 8, 4, 8, q);
    quant_dequantize_row(q, 8, 4, 8, y);
    CHECK(quant_block_scale_bits(q) == 0 && y[3] == quant_f16_bits_to_f32(quant_f32_to_f16_bits(0.1f)),
          "constant 0.1: scale %04x, decodes to %a", quant_block_scale_bits(q), y[3]);
    /* codes halfway between two levels round to even */
    float ties[8] = {0, 15, 0.5f, 1.5f, 2.5f, 3.5f, 14.5f, 7.5f};
    const unsigned want_ties[8] = {0, 15, 0, 2, 2, 4, 14, 8};
    quant_quantize_row(ties, 8, 4, 8, q);
    size_t bad = 0;
    for (int j = 0; j < 8; j++)
        bad += quant_code_get(q + QUANT_BLOCK_META_BYTES, 4, (size_t)j) != want_ties[j];
    CHECK(quant_block_scale_bits(q) == 0x3c00 && bad == 0, "ties to even: %zu codes wrong", bad);
    /* a group narrower than an fp16 ulp whose min rounds up above its max: scale 0, not negative */
    float w[2] = {1.0006f, 1.0007f};
    uint8_t qw[5];
    quant_quantize_row(w, 2, 4, 2, qw);
    CHECK(quant_f16_bits_to_f32(quant_block_min_bits(qw)) > 1.0007f && quant_block_scale_bits(qw) == 0,
          "narrow group: min %a, scale %04x", quant_f16_bits_to_f32(quant_block_min_bits(qw)),
          quant_block_scale_bits(qw));
    /* the widest group: [-65504, 65504] has a finite scale 131008 / 15 rounded to fp16 */
    float ext[2] = {-65504.0f, 65504.0f};
    quant_quantize_row(ext, 2, 4, 2, qw);
    quant_dequantize_row(qw, 2, 4, 2, y);
    CHECK(quant_block_scale_bits(qw) == quant_f32_to_f16_bits(131008.0f / 15.0f) && y[0] == -65504.0f &&
              fabsf(y[1] - 65504.0f) <= 15 * 4.0f,
          "extremes: scale %04x, decodes to %g %g", quant_block_scale_bits(qw), y[0], y[1]);
}

/* ---- rows, and the fused dot product */

static void test_rows(void)
{
    rng_s = 11;
    size_t rows = 13, cols = 384;
    for (int bits = 4; bits <= 8; bits += 4) {
        int g = 64;
        size_t rb = quant_row_bytes(cols, bits, g);
        float *x = malloc(rows * cols * sizeof *x), *y = malloc(rows * cols * sizeof *y);
        float *yr = malloc(cols * sizeof *yr);
        uint8_t *q = malloc(rows * rb), *qr = malloc(rb);
        fill(x, rows * cols, 1);
        quant_quantize_rows(x, rows, cols, bits, g, q);
        quant_dequantize_rows(q, rows, cols, bits, g, y);
        size_t bad = 0, first = 0;
        for (size_t r = 0; r < rows; r++) {
            quant_quantize_row_ref(x + r * cols, cols, bits, g, qr);
            quant_dequantize_row_ref(qr, cols, bits, g, yr);
            bad += count_diff_bytes(qr, q + r * rb, rb, &first) + count_diff_floats(yr, y + r * cols, cols, &first);
        }
        CHECK(bad == 0, "%d bits: [%zu][%zu] rows differ from the reference row by row (%zu)", bits, rows,
              cols, bad);
        free(x);
        free(y);
        free(yr);
        free(q);
        free(qr);
    }
}

static void test_dot(void)
{
    const int groups[] = {2, 6, 32, 34, 64, 128, 4096};
    const size_t sizes[] = {64, 1000, 4096};
    qpath p[3];
    int np = paths_get(p);
    double worst = 0;
    for (int seed = 1; seed <= N_SEEDS; seed++) {
        rng_s = 200 + (uint64_t)seed;
        for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++)
            for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
                for (int bits = 4; bits <= 8; bits += 4) {
                    int g = groups[gi];
                    size_t n = sizes[si] - sizes[si] % (size_t)g, bb = quant_block_bytes(bits, g);
                    if (n == 0)
                        continue;
                    float *w = malloc(n * sizeof *w), *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
                    uint8_t *q = malloc(quant_row_bytes(n, bits, g));
                    fill(w, n, (int)(rng_u64() % N_KINDS));
                    fill(x, n, seed % 2 ? 0 : 6);
                    quant_quantize_row_ref(w, n, bits, g, q);
                    quant_dequantize_row_ref(q, n, bits, g, y);
                    /* dequantize-then-dot, in double (close to exact), and the magnitude A */
                    double exact = 0, mag = 0;
                    for (size_t i = 0; i < n; i++) {
                        const uint8_t *blk = q + i / (size_t)g * bb;
                        double s = quant_f16_bits_to_f32(quant_block_scale_bits(blk));
                        double m = quant_f16_bits_to_f32(quant_block_min_bits(blk));
                        unsigned c = quant_code_get(blk + QUANT_BLOCK_META_BYTES, bits, i % (size_t)g);
                        exact += (double)y[i] * x[i];
                        mag += (c * s + fabs(m)) * fabs(x[i]);
                    }
                    double tol = quant_dot_tol(n, g) * mag;
                    for (int k = 0; k < np; k++) {
                        double got = p[k].dot(q, x, n, bits, g);
                        double err = fabs(got - exact);
                        CHECK(err <= tol, "%s dot (%d bits, n %zu, g%d, seed %d): %.9g vs %.9g, err %.3g > %.3g",
                              p[k].name, bits, n, g, seed, got, exact, err, tol);
                        if (tol > 0 && err / tol > worst)
                            worst = err / tol;
                    }
                    free(w);
                    free(x);
                    free(y);
                    free(q);
                }
    }
    printf("# quant_dot_row: worst error / quant_dot_tol = %.3g\n", worst);
    /* non-finite x propagates instead of vanishing */
    float w[64], x[64];
    uint8_t q[4 + 32];
    for (int i = 0; i < 64; i++) {
        w[i] = (float)i;
        x[i] = 1;
    }
    quant_quantize_row(w, 64, 4, 64, q);
    x[5] = NAN;
    for (int k = 0; k < np; k++)
        CHECK(isnan(p[k].dot(q, x, 64, 4, 64)), "%s: NaN in x gives NaN", p[k].name);
}

int main(void)
{
    printf("# seeds 1..%d; avx2 path %s\n", N_SEEDS, quant_have_avx2() ? "tested" : "not available");
    test_f16();
    test_sizes();
    test_check();
    test_packing();
    test_round_trip();
    test_fast_exact_random();
    test_fast_exact_dequant_any();
    test_edges();
    test_rows();
    test_dot();
    return tap_done();
}
