/*
 * test_quant_f16 — dequantization straight to fp16 (quant_dequantize_row_f16,
 * its portable and AVX2 paths, and the pooled k_dequantize_f16 /
 * k_dequantize_f32 / k_quantize of exec/cpu/kernels.h).
 *
 * The oracle is the old two-step route: quant_dequantize_row_ref, then
 * half_f32_to_f16 (exec/half.h) value by value. Every path must give the
 * same bits:
 *  - rows quantized from random data of several distributions (uniform,
 *    weight-like, near the fp16 range, far from 0, fp16-subnormal, wide);
 *  - arbitrary blocks: random codes and random finite headers of either sign,
 *    subnormal scales and minimums included, which reach fp16 overflow (inf),
 *    subnormal results and rounding ties;
 *  - hand-made headers at the thresholds (65504 / 65520, 2^-14, 2^-24, 2^-25,
 *    ties at several exponents), every code of the block;
 *  - non-finite headers (inf / NaN scale or minimum): same bits, or NaN for NaN;
 * for 4 and 8 bits, groups 2 .. 4096 (odd multiples of 2 for every tail) and
 * row lengths from one group up, many not a multiple of 8, 16 or 32 values;
 * output at an odd offset, and a canary after the row. The pooled versions
 * (and k_quantize against quant_quantize_rows) give the same bits with no
 * pool and pools of 1, 2 and 3 threads.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/cpu/kernels.h"
#include "exec/cpu/pool.h"
#include "exec/half.h"
#include "exec/quant.h"
#include "common/quant_layout.h"
#include "tap.h"

static uint64_t rng_s;

static uint64_t rng_u64(void) /* splitmix64 */
{
    uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(void) { return (double)(rng_u64() >> 11) * 0x1p-53; }

static float rng_normal(void)
{
    double u = rng_unit(), v = rng_unit();
    return (float)(sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v));
}

static void fill(float *x, size_t n, int kind)
{
    for (size_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: x[i] = (float)(2 * rng_unit() - 1); break;
        case 1: x[i] = 0.02f * rng_normal(); break;
        case 2: x[i] = 3e4f * rng_normal(); break;
        case 3: x[i] = 1000.0f + (float)rng_unit(); break;
        case 4: x[i] = 1e-6f * rng_normal(); break;
        case 5: x[i] = (float)ldexp(rng_normal(), (int)(rng_u64() % 40) - 20); break;
        default: x[i] = (float)(rng_u64() % 16); break;
        }
    }
}
#define N_KINDS 7

typedef struct f16path {
    const char *name;
    void (*deq)(const uint8_t *, size_t, int, int, uint16_t *);
} f16path;

static int paths_get(f16path out[3])
{
    int k = 0;
    out[k++] = (f16path){"dispatch", quant_dequantize_row_f16};
    out[k++] = (f16path){"portable", quant_dequantize_row_f16_portable};
    if (quant_have_avx2())
        out[k++] = (f16path){"avx2", quant_dequantize_row_f16_avx2};
    return k;
}

static int is_nan16(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

/* The oracle: fp32 reference dequantization, then half_f32_to_f16. */
static void oracle(const uint8_t *q, size_t n, int bits, int g, uint16_t *out)
{
    float *y = malloc(n * sizeof *y);
    quant_dequantize_row_ref(q, n, bits, g, y);
    for (size_t i = 0; i < n; i++)
        out[i] = half_f32_to_f16(y[i]);
    free(y);
}

static long n_checked;

/* Every path on the row q against the oracle; nan_ok: any NaN matches any NaN. */
static void check_row(const uint8_t *q, size_t n, int bits, int g, int nan_ok, const char *what)
{
    uint16_t *want = malloc(n * sizeof *want);
    uint16_t *buf = malloc((n + 2) * sizeof *buf);
    oracle(q, n, bits, g, want);
    f16path p[3];
    int np = paths_get(p);
    for (int k = 0; k < np; k++) {
        uint16_t *got = buf + 1; /* an odd offset: stores must not assume alignment */
        buf[0] = 0x1234;
        got[n] = 0xbeef;
        p[k].deq(q, n, bits, g, got);
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n; i++) {
            int same = got[i] == want[i] || (nan_ok && is_nan16(got[i]) && is_nan16(want[i]));
            if (!same && bad++ == 0)
                first = i;
        }
        CHECK(bad == 0 && buf[0] == 0x1234 && got[n] == 0xbeef,
              "%s: %s (%d bits, n %zu, g%d): %zu values differ, first [%zu] %04x vs %04x%s", what, p[k].name,
              bits, n, g, bad, first, got[first], want[first],
              buf[0] != 0x1234 || got[n] != 0xbeef ? " (wrote outside the row)" : "");
        n_checked++;
    }
    free(want);
    free(buf);
}

static const int groups[] = {2, 4, 6, 8, 10, 14, 16, 18, 24, 32, 34, 40, 48, 62, 64, 96, 128, 130, 256, 4096};
#define N_GROUPS (sizeof groups / sizeof *groups)

/* Rows quantized from data. */
static void test_quantized_rows(void)
{
    const size_t blocks[] = {1, 2, 3, 7, 37};
    for (int seed = 1; seed <= 3; seed++) {
        rng_s = 300 + (uint64_t)seed;
        for (size_t gi = 0; gi < N_GROUPS; gi++)
            for (size_t bi = 0; bi < sizeof blocks / sizeof *blocks; bi++)
                for (int bits = 4; bits <= 8; bits += 4) {
                    int g = groups[gi];
                    size_t n = (size_t)g * blocks[bi];
                    if (n > 20000)
                        continue;
                    float *x = malloc(n * sizeof *x);
                    uint8_t *q = malloc(quant_row_bytes(n, bits, g));
                    int kind = (int)(rng_u64() % N_KINDS);
                    fill(x, n, kind);
                    quant_quantize_row_ref(x, n, bits, g, q);
                    char what[64];
                    snprintf(what, sizeof what, "quantized, seed %d kind %d", seed, kind);
                    check_row(q, n, bits, g, 0, what);
                    free(x);
                    free(q);
                }
    }
}

/* A random finite fp16 header field: any sign, exponent field < 31. */
static uint16_t rand_finite_f16(void)
{
    uint16_t h = (uint16_t)rng_u64();
    if ((h & 0x7c00) == 0x7c00)
        h ^= 0x4000;
    return h;
}

/* Arbitrary blocks: every byte random, headers finite. */
static void test_arbitrary_blocks(void)
{
    rng_s = 77;
    for (int rep = 0; rep < 4; rep++)
        for (size_t gi = 0; gi < N_GROUPS; gi++)
            for (int bits = 4; bits <= 8; bits += 4) {
                int g = groups[gi];
                size_t n = (size_t)g * (g >= 1024 ? 3 : 29);
                size_t rb = quant_row_bytes(n, bits, g), bb = quant_block_bytes(bits, g);
                uint8_t *q = malloc(rb);
                for (size_t i = 0; i < rb; i++)
                    q[i] = (uint8_t)rng_u64();
                for (size_t b = 0; b < n / (size_t)g; b++) {
                    uint16_t s = rand_finite_f16(), m = rand_finite_f16();
                    if (b % 3 == 1) /* small headers: subnormal and tiny results */
                        s &= 0x87ff, m &= 0x87ff;
                    quant_block_set_head(q + b * bb, s, m);
                }
                check_row(q, n, bits, g, 0, "arbitrary blocks");
                free(q);
            }
}

/* One block of every code 0 .. L (g = 16 for 4 bits, 256 for 8) per header. */
static void test_thresholds(void)
{
    /* (scale, min) fp16 bits */
    static const uint16_t heads[][2] = {
        {0x3c00, 0x7bff},           /* 65504 + q: 65519 stays finite, 65520 up is inf */
        {0x3c00, 0xfbff},           /* -65504 + q */
        {0x3800, 0x7bf0},           /* 65024 + q/2: ties near the top */
        {0x0001, 0x0000},           /* q * 2^-24: every subnormal */
        {0x0001, 0x8400},           /* -2^-14 + q * 2^-24: across the normal boundary */
        {0x0001, 0x83ff},           /* from the largest negative subnormal up through 0 */
        {0x3800, 0x6800},           /* 2048 + q/2: ties to even at ulp 2 */
        {0x3400, 0x6400},           /* 1024 + q/4: ties to even at ulp 1 */
        {0x1000, 0x0000},           /* q * 2^-11 */
        {0x0003, 0x0001},           /* subnormal scale and min */
        {0x0000, 0x3555},           /* scale 0: a constant block */
        {0x7bff, 0xfbff},           /* -65504 + q * 65504: overflows from q = 3 */
        {0x2e66, 0xb8cd},           /* 0.1 and -0.6 (as fp16) */
    };
    for (size_t hi = 0; hi < sizeof heads / sizeof *heads; hi++)
        for (int bits = 4; bits <= 8; bits += 4) {
            int g = bits == 4 ? 16 : 256;
            size_t reps = 3; /* three blocks of the same header: n = 3g */
            size_t n = (size_t)g * reps, bb = quant_block_bytes(bits, g);
            uint8_t *q = malloc(quant_row_bytes(n, bits, g));
            for (size_t b = 0; b < reps; b++) {
                uint8_t *blk = q + b * bb, *c = blk + QUANT_BLOCK_META_BYTES;
                quant_block_set_head(blk, heads[hi][0], heads[hi][1]);
                for (int j = 0; j < g; j++) {
                    unsigned code = (unsigned)(j + (int)b * 5) % (1u << bits);
                    if (bits == 8)
                        c[j] = (uint8_t)code;
                    else if (j % 2 == 0)
                        c[j / 2] = (uint8_t)code;
                    else
                        c[j / 2] |= (uint8_t)(code << 4);
                }
            }
            char what[64];
            snprintf(what, sizeof what, "thresholds, header %04x %04x", heads[hi][0], heads[hi][1]);
            check_row(q, n, bits, g, 0, what);
            free(q);
        }
}

/* inf and NaN in the headers: the same bits, NaN for NaN. */
static void test_nonfinite_headers(void)
{
    static const uint16_t specials[] = {0x7c00, 0xfc00, 0x7e00, 0xfe01, 0x7c01, 0x3c00, 0x0000, 0x8000};
    const size_t ns = sizeof specials / sizeof *specials;
    for (int bits = 4; bits <= 8; bits += 4) {
        int g = 34; /* a 32-value body and a tail */
        size_t n = (size_t)g * ns * ns, bb = quant_block_bytes(bits, g);
        uint8_t *q = malloc(quant_row_bytes(n, bits, g));
        rng_s = 5;
        for (size_t b = 0; b < ns * ns; b++) {
            uint8_t *blk = q + b * bb;
            for (size_t i = 0; i < bb; i++)
                blk[i] = (uint8_t)rng_u64();
            blk[QUANT_BLOCK_META_BYTES] &= 0xf0; /* code 0 first: 0 * inf */
            quant_block_set_head(blk, specials[b / ns], specials[b % ns]);
        }
        check_row(q, n, bits, g, 1, "non-finite headers");
        free(q);
    }
}

/* The pooled tensor versions: same bits as row by row, any thread count. */
static void test_pooled(void)
{
    static const struct {
        size_t rows, cols;
        int g;
    } shapes[] = {{1, 64, 64}, {5, 6, 2}, {37, 384, 64}, {300, 130, 130}, {257, 2048, 64}, {64, 4096, 4096}};
    pool *pools[4] = {NULL, pool_create(1), pool_create(2), pool_create(3)};
    CHECK(pools[1] && pools[2] && pools[3], "pool_create");
    rng_s = 99;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int bits = 4; bits <= 8; bits += 4) {
            size_t rows = shapes[si].rows, cols = shapes[si].cols, n = rows * cols;
            int g = shapes[si].g;
            size_t rb = quant_row_bytes(cols, bits, g);
            float *x = malloc(n * sizeof *x), *want32 = malloc(n * sizeof *want32),
                  *got32 = malloc(n * sizeof *got32);
            uint16_t *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
            uint8_t *q = malloc(rows * rb);
            fill(x, n, (int)(si % N_KINDS));
            quant_quantize_rows(x, rows, cols, bits, g, q);
            for (size_t r = 0; r < rows; r++) {
                oracle(q + r * rb, cols, bits, g, want + r * cols);
                quant_dequantize_row_ref(q + r * rb, cols, bits, g, want32 + r * cols);
            }
            for (int pi = 0; pi < 4; pi++) {
                memset(got, 0xa5, n * sizeof *got);
                memset(got32, 0xa5, n * sizeof *got32);
                k_dequantize_f16(pools[pi], q, rows, cols, bits, g, got);
                k_dequantize_f32(pools[pi], q, rows, cols, bits, g, got32);
                CHECK(memcmp(got, want, n * sizeof *got) == 0,
                      "k_dequantize_f16 [%zu][%zu] %d bits g%d, %d threads: differs from the oracle", rows,
                      cols, bits, g, pool_nthreads(pools[pi]));
                CHECK(memcmp(got32, want32, n * sizeof *got32) == 0,
                      "k_dequantize_f32 [%zu][%zu] %d bits g%d, %d threads: differs from the reference", rows,
                      cols, bits, g, pool_nthreads(pools[pi]));
            }
            uint8_t *q2 = malloc(rows * rb);
            for (int pi = 0; pi < 4; pi++) {
                memset(q2, 0x5a, rows * rb);
                k_quantize(pools[pi], x, rows, cols, bits, g, q2);
                CHECK(memcmp(q2, q, rows * rb) == 0, "k_quantize [%zu][%zu] %d bits g%d, %d threads: differs", rows,
                      cols, bits, g, pool_nthreads(pools[pi]));
            }
            free(q2);
            uint16_t *rows16 = malloc(n * sizeof *rows16);
            quant_dequantize_rows_f16(q, rows, cols, bits, g, rows16);
            CHECK(memcmp(rows16, want, n * sizeof *rows16) == 0, "quant_dequantize_rows_f16 [%zu][%zu] %d bits g%d",
                  rows, cols, bits, g);
            free(rows16);
            free(x);
            free(want32);
            free(got32);
            free(want);
            free(got);
            free(q);
        }
    for (int pi = 1; pi < 4; pi++)
        pool_destroy(pools[pi]);
}

int main(void)
{
    printf("# avx2 path %s\n", quant_have_avx2() ? "tested" : "not available");
    test_quantized_rows();
    test_arbitrary_blocks();
    test_thresholds();
    test_nonfinite_headers();
    test_pooled();
    printf("# %ld rows x path checked against dequantize_ref + half_f32_to_f16\n", n_checked);
    return tap_done();
}
