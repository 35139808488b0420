/*
 * test_kernels — the CPU kernels against plain double-precision references
 * written here (loops, fp64 accumulation), on random inputs from fixed seeds.
 *
 *  - fp16/bf16 decoding of all 65536 patterns against ldexp; fp32 -> fp16 and
 *    bf16 round to nearest even; the AVX2 conversion gives the scalar's bits;
 *  - the pool runs each index of [0, n) exactly once, for any thread count,
 *    and a nested pool_for runs inline; pool_pin puts each worker and the
 *    caller on a CPU of its own where there are enough CPUs, and nowhere
 *    where there are not;
 *  - k_linear for fp16, bf16 and fp32 weights (m = 1, 3, 7, 8, 16: one
 *    block of rows; 17, 64: several), shapes that are not multiples of 8,
 *    partial register blocks, with and without bias; the error is bounded by
 *    K_TOL_LINEAR * k * FLT_EPSILON * sum |x w| (the worst case of any
 *    summation order); the scalar twin and the AVX2 path agree bit for bit;
 *    a row alone has the bits it has in any batch (batch invariance);
 *  - layernorm, rmsnorm, rotary (against explicit cos/sin, and the
 *    rotate_half pairing checked by hand), element-wise ops, embedding;
 *  - attention: decode and chunked prefill over GQA groups and tile
 *    boundaries (t = 1, 127, 128, 129, 300); the causal mask (changing the
 *    future of the cache changes nothing); chunked prefill has the bits of
 *    one pass; GQA equals MHA over a repeated cache;
 *  - determinism: 1, 2 and 3 threads give identical bytes (memcmp), and so
 *    do the scalar and AVX2 versions of attention (its exp and softmax).
 *
 * Seed: every random input comes from test_rng seeded with a constant named
 * next to its use.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/cpu/f16.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/pool.h"
#include "exec/half.h"
#include "tap.h"

/* k_linear: |y - ref| <= K_TOL_LINEAR * k * FLT_EPSILON * (sum_k |x w| + |b|) */
#define K_TOL_LINEAR 1.0
/* norms, rotary, element-wise: |y - ref| <= tol * (1 + |ref|) */
#define K_TOL_NORM   1e-5
#define K_TOL_ROTARY 1e-5
#define K_TOL_ELEM   1e-6
/* attention (values of V in [-1, 1]): |out - ref| <= K_TOL_ATTN */
#define K_TOL_ATTN 2e-5

// ---- helpers

static uint64_t rng_state;

static void test_rng(uint64_t seed)
{
    rng_state = seed;
}

static uint64_t rng_next(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_unit(void) /* uniform in [-1, 1) */
{
    return (float)((double)(rng_next() >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static float *rand_floats(size_t n)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = rng_unit();
    return v;
}

static double ref_f16(uint16_t h)
{
    const int e = (h >> 10) & 31, man = h & 1023;
    double v = e == 0    ? ldexp(man, -24)
               : e == 31 ? (man ? NAN : INFINITY)
                         : ldexp(1024 + man, e - 25);
    return (h & 0x8000) ? -v : v;
}

static double ref_bf16(uint16_t h)
{
    const int e = (h >> 7) & 255, man = h & 127;
    double v = e == 0     ? ldexp(man, -133)
               : e == 255 ? (man ? NAN : INFINITY)
                          : ldexp(128 + man, e - 134);
    return (h & 0x8000) ? -v : v;
}

static double ref_weight(const void *w, k_wtype wt, size_t idx)
{
    switch (wt) {
    case K_WTYPE_F16: return ref_f16(((const uint16_t *)w)[idx]);
    case K_WTYPE_BF16: return ref_bf16(((const uint16_t *)w)[idx]);
    case K_WTYPE_F32: break;
    }
    return ((const float *)w)[idx];
}

/* Random weights of type wt, values in [-1, 1). */
static void *rand_weights(size_t count, k_wtype wt)
{
    void *w = malloc(count * k_wtype_bytes(wt));
    for (size_t i = 0; i < count; i++) {
        float v = rng_unit();
        if (wt == K_WTYPE_F16)
            ((uint16_t *)w)[i] = k_f32_to_f16(v);
        else if (wt == K_WTYPE_BF16)
            ((uint16_t *)w)[i] = k_f32_to_bf16(v);
        else
            ((float *)w)[i] = v;
    }
    return w;
}

static const char *const wt_names[3] = {"f16", "bf16", "f32"};
static bool have_avx2;

// ---- conversions

static void test_conversions(void)
{
    int bad16 = 0, badbf = 0, badround = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = k_f16_to_f32((uint16_t)h), g = k_bf16_to_f32((uint16_t)h);
        double r = ref_f16((uint16_t)h), rb = ref_bf16((uint16_t)h);
        if (isnan(r) ? !isnan(f) : (double)f != r || !signbit(f) != !signbit(r))
            bad16++;
        if (isnan(rb) ? !isnan(g) : (double)g != rb || !signbit(g) != !signbit(rb))
            badbf++;
        if (!isnan(r) && k_f32_to_f16(f) != h)
            badround++;
        if (!isnan(rb) && k_f32_to_bf16(g) != h)
            badround++;
    }
    CHECK(bad16 == 0, "fp16 decode: %d of 65536 patterns differ from ldexp", bad16);
    CHECK(badbf == 0, "bf16 decode: %d of 65536 patterns differ from ldexp", badbf);
    CHECK(badround == 0, "fp16/bf16 round trip: %d patterns do not come back", badround);

    /* ties to even, overflow, subnormals */
    CHECK(k_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00, "1 + 2^-11 rounds to 1 (even)");
    CHECK(k_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02, "1 + 3 2^-11 rounds up to even");
    CHECK(k_f32_to_f16(65519.0f) == 0x7bff, "65519 -> 65504");
    CHECK(k_f32_to_f16(65520.0f) == 0x7c00, "65520 -> inf");
    CHECK(k_f32_to_f16(0x1p-25f) == 0x0000, "2^-25 ties to 0");
    CHECK(k_f32_to_f16(3 * 0x1p-25f) == 0x0002, "3 2^-25 ties to 2 2^-24");
    CHECK(k_f32_to_f16(-0.0f) == 0x8000, "-0 keeps its sign");
    CHECK(isnan(k_f16_to_f32(k_f32_to_f16(NAN))), "NaN stays NaN");
    CHECK(k_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "bf16: 1 + 2^-8 ties to 1");
    CHECK(k_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82, "bf16: 1 + 3 2^-8 ties up to even");
    CHECK(isnan(k_bf16_to_f32(k_f32_to_bf16(NAN))), "bf16 NaN stays NaN");

    /* k_convert_to_f32: every pattern, both ISAs, same bits */
    uint16_t *all = malloc(65536 * sizeof *all);
    float *a = malloc(65536 * sizeof *a), *b = malloc(65536 * sizeof *b);
    for (uint32_t h = 0; h < 65536; h++)
        all[h] = (uint16_t)h;
    for (int wt = K_WTYPE_F16; wt <= K_WTYPE_BF16; wt++) {
        k_isa_force(K_ISA_SCALAR);
        k_convert_to_f32(NULL, all, (k_wtype)wt, 65536, a);
        k_isa_force(K_ISA_AVX2);
        k_convert_to_f32(NULL, all, (k_wtype)wt, 65536, b);
        CHECK(memcmp(a, b, 65536 * sizeof *a) == 0, "%s convert: scalar and %s bits differ",
              wt_names[wt], k_isa_names[k_isa_get()]);
        int bad = 0;
        for (uint32_t h = 0; h < 65536; h++)
            bad += k_f32_to_bits(a[h]) != k_f32_to_bits(wt == K_WTYPE_F16
                                                            ? k_f16_to_f32((uint16_t)h)
                                                            : k_bf16_to_f32((uint16_t)h));
        CHECK(bad == 0, "%s convert: %d patterns differ from the scalar helper", wt_names[wt], bad);
    }
    free(all);
    free(a);
    free(b);
}

// ---- pool

typedef struct count_ctx {
    unsigned *hits;
    pool *p;
} count_ctx;

static void count_fn(void *ctx, size_t b, size_t e)
{
    count_ctx *c = ctx;
    for (size_t i = b; i < e; i++)
        c->hits[i]++;
}

static void nested_fn(void *ctx, size_t b, size_t e)
{
    count_ctx *c = ctx;
    for (size_t i = b; i < e; i++) {
        count_ctx inner = {c->hits + i * 4, c->p};
        pool_for(c->p, 4, count_fn, &inner); /* runs inline */
    }
}

static void test_pool(void)
{
    CHECK(pool_nthreads(NULL) == 1, "NULL pool has one thread");
    pool_destroy(NULL);
    const size_t ns[] = {0, 1, 2, 3, 7, 100, 10007};
    for (int nt = 1; nt <= 5; nt++) {
        pool *p = pool_create(nt);
        CHECK(p && pool_nthreads(p) == nt, "pool_create(%d)", nt);
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
            for (int rep = 0; rep < 3; rep++) {
                unsigned *hits = calloc(ns[a] + 1, sizeof *hits);
                count_ctx c = {hits, p};
                pool_for(p, ns[a], count_fn, &c);
                size_t bad = 0;
                for (size_t i = 0; i < ns[a]; i++)
                    bad += hits[i] != 1;
                CHECK(bad == 0 && hits[ns[a]] == 0, "%d threads, n = %zu: %zu indices not run once",
                      nt, ns[a], bad);
                free(hits);
            }
        }
        unsigned *hits = calloc(64 * 4, sizeof *hits);
        count_ctx c = {hits, p};
        pool_for(p, 64, nested_fn, &c);
        size_t bad = 0;
        for (size_t i = 0; i < 64 * 4; i++)
            bad += hits[i] != 1;
        CHECK(bad == 0, "%d threads: nested pool_for misses %zu indices", nt, bad);
        free(hits);
        pool_destroy(p);
    }
    pool *p = pool_create(0);
    CHECK(p && pool_nthreads(p) >= 1, "pool_create(0) uses the online CPUs");
    pool_destroy(p);
}

/* The one CPU of the calling thread's affinity set, or -1 when it has more. */
static int only_cpu(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1)
        return -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set))
            return c;
    return -1;
}

/* On its own thread, so that the main thread keeps its affinity. */
static void *pin_thread_main(void *arg)
{
    (void)arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0, "sched_getaffinity");
    const int allowed = CPU_COUNT(&set);
    int first = 0;
    while (first < CPU_SETSIZE && !CPU_ISSET(first, &set))
        first++;
    /* more threads than CPUs: not pinned, and the caller stays free */
    pool *p = pool_create(allowed + 1);
    CHECK(p && pool_pin(p) == 0, "a pool of %d threads on %d CPUs is not pinned", allowed + 1,
          allowed);
    pool_pin_caller(p);
    CHECK(allowed == 1 || only_cpu() == -1, "the caller stays unpinned");
    pool_destroy(p);
    CHECK(pool_pin(NULL) == 0, "pool_pin(NULL)");
    if (allowed < 2)
        return NULL;
    p = pool_create(2);
    CHECK(p && pool_pin(p) == 1, "a pool of 2 threads on %d CPUs is pinned", allowed);
    pool_pin_caller(p);
    CHECK(only_cpu() == first, "the caller is on the first CPU of the set (%d), not %d", first,
          only_cpu());
    unsigned hits[1000] = {0};
    count_ctx c = {hits, p};
    pool_for(p, 999, count_fn, &c);
    size_t bad = 0;
    for (size_t i = 0; i < 999; i++)
        bad += hits[i] != 1;
    CHECK(bad == 0 && hits[999] == 0, "pinned pool: %zu indices not run once", bad);
    pool_destroy(p);
    return NULL;
}

static void test_pool_pin(void)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, pin_thread_main, NULL) == 0, "start the pinning thread");
    pthread_join(t, NULL);
}

// ---- k_linear

/* y from k_linear with the given ISA and pool; caller frees. */
static float *run_linear(pool *p, k_isa isa, const float *x, size_t m, size_t k, const void *w,
                         k_wtype wt, const float *bias, size_t n)
{
    k_isa_force(isa);
    float *y = malloc(m * n * sizeof *y);
    for (size_t i = 0; i < m * n; i++)
        y[i] = NAN; /* every element must be written */
    k_linear(p, x, m, k, w, wt, bias, n, y);
    return y;
}

static void test_linear(pool *p2, pool *p3)
{
    const size_t ms[] = {1, 3, 7, 8, 16, 17, 64};
    const size_t shapes[][2] = {{67, 131}, {8, 1}, {1, 5}, {256, 40}, {96, 1300}, {2053, 9}};
    for (int wt = 0; wt < 3; wt++) {
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const size_t k = shapes[si][0], n = shapes[si][1];
            for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
                const size_t m = ms[mi];
                test_rng(1000 + 100 * (uint64_t)wt + 10 * si + mi); /* seed */
                float *x = rand_floats(m * k);
                void *w = rand_weights(n * k, (k_wtype)wt);
                float *bias = (mi % 2) ? rand_floats(n) : NULL;

                float *ys = run_linear(NULL, K_ISA_SCALAR, x, m, k, w, (k_wtype)wt, bias, n);
                float *yv = run_linear(NULL, K_ISA_AVX2, x, m, k, w, (k_wtype)wt, bias, n);
                double worst = 0;
                size_t bad = 0;
                for (size_t i = 0; i < m; i++) {
                    for (size_t j = 0; j < n; j++) {
                        double s = bias ? bias[j] : 0, mag = bias ? fabs(bias[j]) : 0;
                        for (size_t q = 0; q < k; q++) {
                            double t = (double)x[i * k + q] * ref_weight(w, (k_wtype)wt, j * k + q);
                            s += t;
                            mag += fabs(t);
                        }
                        const double tol = K_TOL_LINEAR * (double)k * FLT_EPSILON * mag;
                        const double err = fabs(yv[i * n + j] - s);
                        if (!(err <= tol) || !(fabs(ys[i * n + j] - s) <= tol))
                            bad++;
                        if (tol > 0 && err / tol > worst)
                            worst = err / tol;
                    }
                }
                CHECK(bad == 0, "linear %s m=%zu k=%zu n=%zu%s: %zu elements out of tolerance",
                      wt_names[wt], m, k, n, bias ? " +bias" : "", bad);
                if (have_avx2)
                    CHECK(memcmp(ys, yv, m * n * sizeof *ys) == 0,
                          "linear %s m=%zu k=%zu n=%zu: scalar and avx2 bits differ", wt_names[wt],
                          m, k, n);
                /* determinism across thread counts, on the best ISA */
                float *y2 = run_linear(p2, K_ISA_AVX2, x, m, k, w, (k_wtype)wt, bias, n);
                float *y3 = run_linear(p3, K_ISA_AVX2, x, m, k, w, (k_wtype)wt, bias, n);
                CHECK(memcmp(yv, y2, m * n * sizeof *yv) == 0 &&
                          memcmp(yv, y3, m * n * sizeof *yv) == 0,
                      "linear %s m=%zu k=%zu n=%zu: 1, 2, 3 threads differ", wt_names[wt], m, k, n);
                /* batch invariance: each row alone gives the bits it had among m */
                for (size_t i = 0; i < m; i += m > 4 ? m / 4 : 1) {
                    float *y1 = run_linear(p2, K_ISA_AVX2, x + i * k, 1, k, w, (k_wtype)wt, bias, n);
                    CHECK(memcmp(y1, yv + i * n, n * sizeof *y1) == 0,
                          "linear %s m=%zu k=%zu n=%zu: row %zu alone differs from the batch",
                          wt_names[wt], m, k, n, i);
                    free(y1);
                }
                free(y2);
                free(y3);
                free(ys);
                free(yv);
                free(x);
                free(w);
                free(bias);
            }
        }
    }
}

/* A large decode case with many threads: parallel chunks of row blocks. */
static void test_linear_big(pool *p2, pool *p3)
{
    const size_t m = 2, k = 1029, n = 3001;
    test_rng(77); /* seed */
    float *x = rand_floats(m * k);
    void *w = rand_weights(n * k, K_WTYPE_F16);
    float *bias = rand_floats(n);
    float *y1 = run_linear(NULL, K_ISA_AVX2, x, m, k, w, K_WTYPE_F16, bias, n);
    float *y2 = run_linear(p2, K_ISA_AVX2, x, m, k, w, K_WTYPE_F16, bias, n);
    float *y3 = run_linear(p3, K_ISA_AVX2, x, m, k, w, K_WTYPE_F16, bias, n);
    float *ys = run_linear(p3, K_ISA_SCALAR, x, m, k, w, K_WTYPE_F16, bias, n);
    CHECK(memcmp(y1, y2, m * n * sizeof *y1) == 0 && memcmp(y1, y3, m * n * sizeof *y1) == 0,
          "big linear: 1, 2, 3 threads differ");
    if (have_avx2)
        CHECK(memcmp(y1, ys, m * n * sizeof *y1) == 0, "big linear: scalar and avx2 differ");
    size_t bad = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = bias[j], mag = fabs(bias[j]);
            for (size_t q = 0; q < k; q++) {
                double t = (double)x[i * k + q] * ref_f16(((uint16_t *)w)[j * k + q]);
                s += t;
                mag += fabs(t);
            }
            bad += !(fabs(y3[i * n + j] - s) <= K_TOL_LINEAR * (double)k * FLT_EPSILON * mag);
        }
    CHECK(bad == 0, "big linear: %zu elements out of tolerance", bad);
    free(x);
    free(w);
    free(bias);
    free(y1);
    free(y2);
    free(y3);
    free(ys);
}

// ---- norms

static void test_norms(pool *p3)
{
    const size_t m = 37, h = 203;
    test_rng(5); /* seed */
    float *x = rand_floats(m * h), *gamma = rand_floats(h), *beta = rand_floats(h);
    for (size_t i = 0; i < m * h; i++)
        x[i] = x[i] * 3 + 0.5f; /* a mean away from 0 */
    for (size_t i = 0; i < h; i++)
        x[4 * h + i] = 2.0f; /* a constant row: variance 0, out = beta */
    const float eps = 1e-5f;
    float *ln = malloc(m * h * sizeof *ln), *rms = malloc(m * h * sizeof *rms);
    float *ln3 = malloc(m * h * sizeof *ln3), *rms3 = malloc(m * h * sizeof *rms3);
    k_layernorm(NULL, x, m, h, gamma, beta, eps, ln);
    k_rmsnorm(NULL, x, m, h, gamma, eps, rms);
    k_layernorm(p3, x, m, h, gamma, beta, eps, ln3);
    k_rmsnorm(p3, x, m, h, gamma, eps, rms3);
    size_t bad_ln = 0, bad_rms = 0;
    for (size_t r = 0; r < m; r++) {
        double mean = 0, var = 0, ms = 0;
        for (size_t i = 0; i < h; i++)
            mean += x[r * h + i];
        mean /= (double)h;
        for (size_t i = 0; i < h; i++) {
            var += (x[r * h + i] - mean) * (x[r * h + i] - mean);
            ms += (double)x[r * h + i] * x[r * h + i];
        }
        var /= (double)h;
        ms /= (double)h;
        for (size_t i = 0; i < h; i++) {
            double a = (x[r * h + i] - mean) / sqrt(var + eps) * gamma[i] + beta[i];
            double b = x[r * h + i] / sqrt(ms + eps) * gamma[i];
            bad_ln += !(fabs(ln[r * h + i] - a) <= K_TOL_NORM * (1 + fabs(a)));
            bad_rms += !(fabs(rms[r * h + i] - b) <= K_TOL_NORM * (1 + fabs(b)));
        }
    }
    CHECK(bad_ln == 0, "layernorm: %zu elements out of tolerance", bad_ln);
    CHECK(bad_rms == 0, "rmsnorm: %zu elements out of tolerance", bad_rms);
    CHECK(memcmp(ln + 4 * h, beta, h * sizeof *beta) == 0, "layernorm of a constant row is beta");
    CHECK(memcmp(ln, ln3, m * h * sizeof *ln) == 0 && memcmp(rms, rms3, m * h * sizeof *rms) == 0,
          "norms: 1 and 3 threads differ");
    /* in place */
    memcpy(ln3, x, m * h * sizeof *x);
    k_layernorm(p3, ln3, m, h, gamma, beta, eps, ln3);
    CHECK(memcmp(ln, ln3, m * h * sizeof *ln) == 0, "layernorm in place");
    free(x);
    free(gamma);
    free(beta);
    free(ln);
    free(rms);
    free(ln3);
    free(rms3);
}

// ---- rotary

static void test_rotary(pool *p3)
{
    /* the pairing by hand: head_dim 4, position 1, theta 10000: pairs (0, 2)
     * at angle 1 and (1, 3) at angle 1/100 */
    float v[4] = {1, 0, 0, 0}, u[4] = {0, 1, 0, 0};
    const int64_t one = 1;
    k_rotary(NULL, v, &one, 1, 1, 4, 10000.0, NULL);
    k_rotary(NULL, u, &one, 1, 1, 4, 10000.0, NULL);
    CHECK(fabs(v[0] - cos(1.0)) < 1e-7 && v[1] == 0 && fabs(v[2] - sin(1.0)) < 1e-7 && v[3] == 0,
          "rotate_half pairs (0, 2): got %g %g %g %g", v[0], v[1], v[2], v[3]);
    CHECK(u[0] == 0 && fabs(u[1] - cos(0.01)) < 1e-7 && u[2] == 0 && fabs(u[3] - sin(0.01)) < 1e-7,
          "rotate_half pairs (1, 3): got %g %g %g %g", u[0], u[1], u[2], u[3]);

    const size_t tokens = 23, heads = 5, hd = 64;
    const double theta = 500000.0;
    test_rng(9); /* seed */
    float *x = rand_floats(tokens * heads * hd);
    int64_t pos[23];
    for (size_t t = 0; t < tokens; t++)
        pos[t] = (int64_t)(t * t * 7 + 3); /* up to 3391 */
    float *a = malloc(tokens * heads * hd * sizeof *a),
          *b = malloc(tokens * heads * hd * sizeof *b);
    memcpy(a, x, tokens * heads * hd * sizeof *x);
    memcpy(b, x, tokens * heads * hd * sizeof *x);
    k_rotary(NULL, a, pos, tokens, heads, hd, theta, NULL);
    k_rotary(p3, b, pos, tokens, heads, hd, theta, NULL);
    size_t bad = 0;
    for (size_t t = 0; t < tokens; t++)
        for (size_t h = 0; h < heads; h++)
            for (size_t i = 0; i < hd / 2; i++) {
                const double ang = (double)pos[t] * pow(theta, -(double)(2 * i) / (double)hd);
                const float *xv = x + (t * heads + h) * hd;
                const double r0 = xv[i] * cos(ang) - xv[i + hd / 2] * sin(ang);
                const double r1 = xv[i + hd / 2] * cos(ang) + xv[i] * sin(ang);
                const float *o = a + (t * heads + h) * hd;
                bad += !(fabs(o[i] - r0) <= K_TOL_ROTARY * (1 + fabs(r0)));
                bad += !(fabs(o[i + hd / 2] - r1) <= K_TOL_ROTARY * (1 + fabs(r1)));
            }
    CHECK(bad == 0, "rotary: %zu elements out of tolerance", bad);
    CHECK(memcmp(a, b, tokens * heads * hd * sizeof *a) == 0, "rotary: 1 and 3 threads differ");
    free(x);
    free(a);
    free(b);
}

// ---- attention

typedef struct attn_case {
    size_t t, start, heads, kv_heads, hd;
} attn_case;

/* out from k_attention; caller frees. */
static float *run_attn(pool *p, const float *q, size_t t, size_t start, const float *kc,
                       const float *vc, size_t heads, size_t kv_heads, size_t hd)
{
    float *out = malloc(t * heads * hd * sizeof *out);
    for (size_t i = 0; i < t * heads * hd; i++)
        out[i] = NAN;
    float *scratch = malloc(k_attention_scratch_floats(t, start, heads) * sizeof *scratch);
    k_attention(p, q, t, start, kc, vc, heads, kv_heads, hd, 0, out, scratch);
    free(scratch);
    return out;
}

/* Worst |out - ref| over all outputs, with the reference in double. */
static double attn_error(const float *out, const float *q, size_t t, size_t start, const float *kc,
                         const float *vc, size_t heads, size_t kv_heads, size_t hd)
{
    const size_t g = heads / kv_heads, ctx = start + t;
    double *s = malloc(ctx * sizeof *s), worst = 0;
    for (size_t r = 0; r < t; r++)
        for (size_t h = 0; h < heads; h++) {
            const size_t kvh = h / g, valid = start + r + 1;
            const float *qv = q + (r * heads + h) * hd;
            double mx = -INFINITY, sum = 0;
            for (size_t j = 0; j < valid; j++) {
                double d = 0;
                for (size_t e = 0; e < hd; e++)
                    d += (double)qv[e] * kc[(j * kv_heads + kvh) * hd + e];
                s[j] = d / sqrt((double)hd);
                mx = s[j] > mx ? s[j] : mx;
            }
            for (size_t j = 0; j < valid; j++) {
                s[j] = exp(s[j] - mx);
                sum += s[j];
            }
            for (size_t e = 0; e < hd; e++) {
                double o = 0;
                for (size_t j = 0; j < valid; j++)
                    o += s[j] / sum * vc[(j * kv_heads + kvh) * hd + e];
                double err = fabs(out[(r * heads + h) * hd + e] - o);
                if (!(err <= worst))
                    worst = isnan(err) ? INFINITY : err;
            }
        }
    free(s);
    return worst;
}

static void test_attention(pool *p2, pool *p3)
{
    const attn_case cases[] = {
        {1, 0, 4, 4, 16},   {1, 37, 8, 2, 64},  {1, 200, 32, 32, 64}, {3, 10, 6, 3, 24},
        {4, 0, 4, 1, 8},    {5, 0, 4, 2, 32},   {127, 0, 4, 2, 16},   {128, 5, 2, 2, 16},
        {129, 0, 4, 4, 12}, {300, 0, 2, 1, 16}, {300, 50, 4, 2, 8},   {130, 3, 8, 1, 64},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const attn_case A = cases[c];
        const size_t ctx = A.start + A.t;
        test_rng(300 + c); /* seed */
        float *q = rand_floats(A.t * A.heads * A.hd);
        float *kc = rand_floats(ctx * A.kv_heads * A.hd),
              *vc = rand_floats(ctx * A.kv_heads * A.hd);
        for (size_t i = 0; i < A.t * A.heads * A.hd; i++)
            q[i] *= 2; /* peakier softmax */
        float *o1 = run_attn(NULL, q, A.t, A.start, kc, vc, A.heads, A.kv_heads, A.hd);
        double err = attn_error(o1, q, A.t, A.start, kc, vc, A.heads, A.kv_heads, A.hd);
        CHECK(err <= K_TOL_ATTN, "attention t=%zu start=%zu heads=%zu/%zu hd=%zu: error %.3g", A.t,
              A.start, A.heads, A.kv_heads, A.hd, err);
        float *o2 = run_attn(p2, q, A.t, A.start, kc, vc, A.heads, A.kv_heads, A.hd);
        float *o3 = run_attn(p3, q, A.t, A.start, kc, vc, A.heads, A.kv_heads, A.hd);
        const size_t bytes = A.t * A.heads * A.hd * sizeof *o1;
        CHECK(memcmp(o1, o2, bytes) == 0 && memcmp(o1, o3, bytes) == 0,
              "attention t=%zu start=%zu: 1, 2, 3 threads differ", A.t, A.start);
        k_isa_force(K_ISA_SCALAR);
        float *os = run_attn(p2, q, A.t, A.start, kc, vc, A.heads, A.kv_heads, A.hd);
        k_isa_force(K_ISA_AVX2);
        CHECK(memcmp(o1, os, bytes) == 0, "attention t=%zu start=%zu: scalar and avx2 differ", A.t,
              A.start);
        free(os);

        /* causal mask: rewrite the cache after the first half of the new
         * tokens; the outputs of that first half do not move */
        const size_t keep = A.t / 2;
        if (keep > 0) {
            for (size_t i = (A.start + keep) * A.kv_heads * A.hd; i < ctx * A.kv_heads * A.hd;
                 i++) {
                kc[i] = 100.0f;
                vc[i] = -100.0f;
            }
            float *o4 = run_attn(p3, q, A.t, A.start, kc, vc, A.heads, A.kv_heads, A.hd);
            /* row r sees keys <= start + r only: the first `keep` rows keep
             * every bit (masked scores become exact zeros) */
            double worst = 0;
            for (size_t i = 0; i < keep * A.heads * A.hd; i++)
                worst = fmax(worst, fabs(o4[i] - o1[i]));
            CHECK(worst == 0, "attention t=%zu start=%zu: the future leaks (%.3g)", A.t, A.start,
                  worst);
            free(o4);
        }
        free(q);
        free(kc);
        free(vc);
        free(o1);
        free(o2);
        free(o3);
    }

    /* chunked prefill agrees with one pass; GQA equals MHA over a repeated cache */
    const size_t t = 300, heads = 8, kvh = 2, hd = 32, g = heads / kvh;
    test_rng(400); /* seed */
    float *q = rand_floats(t * heads * hd), *kc = rand_floats(t * kvh * hd),
          *vc = rand_floats(t * kvh * hd);
    float *full = run_attn(p2, q, t, 0, kc, vc, heads, kvh, hd);
    float *chunked = malloc(t * heads * hd * sizeof *chunked);
    const size_t cuts[] = {0, 1, 100, 101, 233, 300};
    for (size_t i = 0; i + 1 < sizeof cuts / sizeof cuts[0]; i++) {
        const size_t s = cuts[i], n = cuts[i + 1] - cuts[i];
        float *o = run_attn(p2, q + s * heads * hd, n, s, kc, vc, heads, kvh, hd);
        memcpy(chunked + s * heads * hd, o, n * heads * hd * sizeof *o);
        free(o);
    }
    double worst = 0;
    for (size_t i = 0; i < t * heads * hd; i++)
        worst = fmax(worst, fabs(chunked[i] - full[i]));
    CHECK(worst == 0, "chunked prefill vs one pass: %.3g (a row must not depend on its chunk)",
          worst);
    float *kr = malloc(t * heads * hd * sizeof *kr), *vr = malloc(t * heads * hd * sizeof *vr);
    for (size_t j = 0; j < t; j++)
        for (size_t h = 0; h < heads; h++) {
            memcpy(kr + (j * heads + h) * hd, kc + (j * kvh + h / g) * hd, hd * sizeof *kr);
            memcpy(vr + (j * heads + h) * hd, vc + (j * kvh + h / g) * hd, hd * sizeof *vr);
        }
    float *mha = run_attn(p2, q, t, 0, kr, vr, heads, heads, hd);
    worst = 0;
    for (size_t i = 0; i < t * heads * hd; i++)
        worst = fmax(worst, fabs(mha[i] - full[i]));
    CHECK(worst <= K_TOL_ATTN, "GQA vs MHA over a repeated cache: %.3g", worst);
    float *dec = run_attn(NULL, q + (t - 1) * heads * hd, 1, t - 1, kc, vc, heads, kvh, hd);
    float *decr = run_attn(NULL, q + (t - 1) * heads * hd, 1, t - 1, kr, vr, heads, heads, hd);
    CHECK(memcmp(dec, decr, heads * hd * sizeof *dec) == 0, "decode: GQA and repeated MHA differ");
    free(dec);
    free(decr);
    free(q);
    free(kc);
    free(vc);
    free(kr);
    free(vr);
    free(full);
    free(chunked);
    free(mha);
    CHECK(k_attention_scratch_floats(1, 99, 32) == 32 * 100, "decode scratch");
    CHECK(k_attention_scratch_floats(300, 0, 4) == 4 * 4 * 300, "prefill scratch: one tile");
}

// ---- element-wise and embedding

static void test_elementwise(pool *p3)
{
    const size_t n = 100003; /* large enough to go parallel */
    test_rng(11);            /* seed */
    float *a = rand_floats(n), *b = rand_floats(n);
    for (size_t i = 0; i < n; i++)
        a[i] *= 8;
    float *o = malloc(n * sizeof *o), *o3 = malloc(n * sizeof *o3);
    size_t bad[5] = {0};
    k_relu(NULL, a, n, o);
    k_relu(p3, a, n, o3);
    for (size_t i = 0; i < n; i++)
        bad[0] += o[i] != (a[i] > 0 ? a[i] : 0) || o3[i] != o[i];
    k_gelu(NULL, a, n, o);
    k_gelu(p3, a, n, o3);
    for (size_t i = 0; i < n; i++) {
        double r = 0.5 * a[i] * (1 + erf(a[i] / sqrt(2.0)));
        bad[1] += !(fabs(o[i] - r) <= K_TOL_ELEM * (1 + fabs(r))) || o3[i] != o[i];
    }
    k_silu_mul(NULL, a, b, n, o);
    k_silu_mul(p3, a, b, n, o3);
    for (size_t i = 0; i < n; i++) {
        double r = a[i] / (1 + exp(-(double)a[i])) * b[i];
        bad[2] += !(fabs(o[i] - r) <= K_TOL_ELEM * (1 + fabs(r))) || o3[i] != o[i];
    }
    k_add(NULL, a, b, n, o);
    memcpy(o3, a, n * sizeof *a);
    k_add(p3, o3, b, n, o3); /* in place */
    for (size_t i = 0; i < n; i++)
        bad[3] += o[i] != a[i] + b[i] || o3[i] != o[i];
    /* to fp16, with values that overflow and that become subnormal */
    a[0] = 1e6f;
    a[1] = -3e-6f;
    uint16_t *h = malloc(n * sizeof *h), *h3 = malloc(n * sizeof *h3);
    k_convert_f32_to_f16(NULL, a, n, h);
    k_convert_f32_to_f16(p3, a, n, h3);
    for (size_t i = 0; i < n; i++)
        bad[4] += h[i] != half_f32_to_f16(a[i]) || h3[i] != h[i];
    CHECK(h[0] == 0x7c00 && (h[1] & 0x7c00) == 0 && h[1] != 0x8000, "fp16 of 1e6 and -3e-6: %04x %04x",
          h[0], h[1]);
    free(h);
    free(h3);
    CHECK(bad[0] == 0, "relu: %zu wrong", bad[0]);
    CHECK(bad[1] == 0, "gelu: %zu out of tolerance or thread-dependent", bad[1]);
    CHECK(bad[2] == 0, "silu_mul: %zu out of tolerance or thread-dependent", bad[2]);
    CHECK(bad[3] == 0, "add: %zu wrong", bad[3]);
    CHECK(bad[4] == 0, "f32 to f16: %zu differ from half_f32_to_f16 or by thread count", bad[4]);
    free(a);
    free(b);
    free(o);
    free(o3);
}

static void test_embed(pool *p3)
{
    const size_t vocab = 1000, h = 77, t = 513;
    for (int wt = 0; wt < 3; wt++) {
        test_rng(20 + (uint64_t)wt); /* seed */
        void *table = rand_weights(vocab * h, (k_wtype)wt);
        int32_t tokens[513];
        for (size_t i = 0; i < t; i++)
            tokens[i] = (int32_t)(rng_next() % vocab);
        tokens[0] = 0;
        tokens[1] = (int32_t)vocab - 1;
        float *o = malloc(t * h * sizeof *o), *o3 = malloc(t * h * sizeof *o3);
        k_embed(NULL, tokens, t, table, (k_wtype)wt, vocab, h, o);
        k_embed(p3, tokens, t, table, (k_wtype)wt, vocab, h, o3);
        size_t bad = 0;
        for (size_t i = 0; i < t; i++)
            for (size_t e = 0; e < h; e++)
                bad += (double)o[i * h + e] !=
                       ref_weight(table, (k_wtype)wt, (size_t)tokens[i] * h + e);
        CHECK(bad == 0, "embed %s: %zu wrong", wt_names[wt], bad);
        CHECK(memcmp(o, o3, t * h * sizeof *o) == 0, "embed %s: threads differ", wt_names[wt]);
        free(table);
        free(o);
        free(o3);
    }
}

int main(void)
{
    have_avx2 = k_isa_detect() == K_ISA_AVX2;
    printf("# kernels: cpu supports %s%s\n", k_isa_names[k_isa_detect()],
           have_avx2 ? "" : " (scalar-vs-avx2 comparisons are trivial here)");
    pool *p2 = pool_create(2), *p3 = pool_create(3);
    CHECK(p2 && p3, "pools");
    test_conversions();
    test_pool();
    test_pool_pin();
    test_linear(p2, p3);
    test_linear_big(p2, p3);
    test_norms(p3);
    test_rotary(p3);
    test_attention(p2, p3);
    test_elementwise(p3);
    test_embed(p3);
    k_isa_force(K_ISA_AVX2);
    pool_destroy(p2);
    pool_destroy(p3);
    return tap_done();
}
