/*
 * bench_kernels — how close the CPU kernels run to the machine's limits.
 *
 *   bench_kernels [threads [section]]
 *       threads: 0 = one per online CPU (default)
 *       section: decode, prefill or attention (default: all; memcpy always runs)
 *
 * 1. memcpy bandwidth: a 512 MiB buffer copied, best of 5 (GB/s of bytes
 *    copied), the yardstick of the engine's acceptance test.
 * 2. k_linear decode (m = 1, 2, 4, 8, 16) on OPT-1.3B-shaped fp16 weights,
 *    fc1 (n 8192 x k 2048) and fc2 (n 2048 x k 8192): enough distinct copies
 *    of the matrix to fill 1 GiB are streamed in turn, like the layers of a
 *    model, so the weights come from DRAM, not from the last-level cache.
 *    Prints GB/s of weight bytes and the ratio to memcpy bandwidth, with the
 *    pool's thread count and with one thread.
 * 3. k_linear prefill (m = 17, 64, 512: the fused kernel in blocks of 16
 *    rows of x, each block streaming W once): GFLOP/s (2 m n k per call).
 * 4. attention: decode over 2048-token fp32 caches (32 heads of 64: K and
 *    V are 32 MiB; distinct caches filling 1 GiB, GB/s of K+V bytes) and a
 *    512-token prefill (GFLOP/s).
 *
 * The first line names the ISA the kernels run (k_isa_get). All timings
 * are the best of 5 with a monotonic clock.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/cpu/f16.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/pool.h"
#include "common/clock.h"

#define BENCH_REPEATS      5
#define BENCH_MEMCPY_BYTES ((size_t)512 << 20)
#define BENCH_STREAM_BYTES ((size_t)1 << 30) /* weights streamed per decode pass */

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "bench_kernels: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static uint64_t rng = 42; /* seed */

static float rnd(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static double bench_memcpy_bps(void)
{
    char *a = xmalloc(BENCH_MEMCPY_BYTES), *b = xmalloc(BENCH_MEMCPY_BYTES);
    memset(a, 1, BENCH_MEMCPY_BYTES);
    memset(b, 2, BENCH_MEMCPY_BYTES);
    double best = 1e30;
    for (int r = 0; r < BENCH_REPEATS; r++) {
        double t0 = llmsim_now_s();
        memcpy(b, a, BENCH_MEMCPY_BYTES);
        double dt = llmsim_now_s() - t0;
        best = dt < best ? dt : best;
    }
    volatile char sink = b[12345];
    (void)sink;
    free(a);
    free(b);
    return (double)BENCH_MEMCPY_BYTES / best;
}

/* Decode: `copies` distinct fp16 matrices [n][k], each multiplied in turn. */
static double bench_decode_bps(pool *p, const uint16_t *w, size_t copies, size_t n, size_t k,
                               size_t m, const float *x, const float *bias, float *y)
{
    double best = 1e30;
    for (int r = 0; r < BENCH_REPEATS; r++) {
        double t0 = llmsim_now_s();
        for (size_t c = 0; c < copies; c++)
            k_linear(p, x, m, k, w + c * n * k, K_WTYPE_F16, bias, n, y);
        double dt = llmsim_now_s() - t0;
        best = dt < best ? dt : best;
    }
    return (double)(copies * n * k * 2) / best;
}

static double bench_prefill_flops(pool *p, const uint16_t *w, size_t n, size_t k, size_t m,
                                  const float *x, const float *bias, float *y)
{
    double best = 1e30;
    for (int r = 0; r < BENCH_REPEATS; r++) {
        double t0 = llmsim_now_s();
        k_linear(p, x, m, k, w, K_WTYPE_F16, bias, n, y);
        double dt = llmsim_now_s() - t0;
        best = dt < best ? dt : best;
    }
    return 2.0 * (double)m * (double)n * (double)k / best;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    const char *only = argc > 2 ? argv[2] : NULL;
    if (only && strcmp(only, "decode") && strcmp(only, "prefill") && strcmp(only, "attention")) {
        fprintf(stderr, "bench_kernels: unknown section '%s' (decode, prefill or attention)\n",
                only);
        return 2;
    }
    pool *p = pool_create(threads);
    if (!p) {
        fprintf(stderr, "bench_kernels: cannot start the thread pool\n");
        return 1;
    }
    const int nt = pool_nthreads(p);
    printf("bench_kernels: isa %s, %d threads, best of %d\n", k_isa_names[k_isa_get()], nt,
           BENCH_REPEATS);

    const double mem_bps = bench_memcpy_bps();
    printf("memcpy 512 MiB: %.2f GB/s (bytes copied)\n\n", mem_bps / 1e9);

    const size_t shapes[2][2] = {{8192, 2048}, {2048, 8192}}; /* n x k: fc1, fc2 */
    const char *names[2] = {"fc1 8192x2048", "fc2 2048x8192"};
    const size_t mmax = 512, kmax = 8192, nmax = 8192;
    float *x = xmalloc(mmax * kmax * sizeof *x), *y = xmalloc(mmax * nmax * sizeof *y);
    float *bias = xmalloc(nmax * sizeof *bias);
    for (size_t i = 0; i < mmax * kmax; i++)
        x[i] = rnd();
    for (size_t i = 0; i < nmax; i++)
        bias[i] = rnd();
    const size_t mat = 8192 * 2048, copies = BENCH_STREAM_BYTES / (mat * 2);
    uint16_t *w = xmalloc(copies * mat * sizeof *w);
    for (size_t i = 0; i < mat; i++)
        w[i] = k_f32_to_f16(rnd() * 0.05f);
    for (size_t c = 1; c < copies; c++)
        memcpy(w + c * mat, w, mat * sizeof *w);

    const bool do_decode = !only || !strcmp(only, "decode");
    const bool do_prefill = !only || !strcmp(only, "prefill");
    const bool do_attn = !only || !strcmp(only, "attention");
    if (do_decode) {
        printf("k_linear decode, fp16, %zu distinct matrices streamed (%.0f MiB):\n", copies,
               (double)(copies * mat * 2) / (1 << 20));
        printf("%-15s %3s %8s %12s %9s %12s %9s\n", "shape", "m", "path", "GB/s", "/memcpy",
               "GB/s 1 thr", "/memcpy");
        const size_t ms[] = {1, 2, 4, 8, 16};
        for (int s = 0; s < 2; s++)
            for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
                const size_t n = shapes[s][0], k = shapes[s][1], m = ms[mi];
                double bps = bench_decode_bps(p, w, copies, n, k, m, x, bias, y);
                double bps1 = bench_decode_bps(NULL, w, copies, n, k, m, x, bias, y);
                printf("%-15s %3zu %8s %12.2f %9.2f %12.2f %9.2f\n", names[s], m, "fused",
                       bps / 1e9, bps / mem_bps, bps1 / 1e9, bps1 / mem_bps);
            }
        k_isa_force(K_ISA_SCALAR);
        {
            double bps = bench_decode_bps(p, w, copies, 8192, 2048, 1, x, bias, y);
            printf("%-15s %3d %8s %12.2f %9.2f   (the scalar twin)\n", names[0], 1, "scalar",
                   bps / 1e9, bps / mem_bps);
        }
        k_isa_force(K_ISA_AVX2);
    }

    if (do_prefill) {
        printf("\nk_linear prefill (blocks of %d rows), fp16 weights:\n", K_GEMV_MAX_ROWS);
        printf("%-15s %3s %10s\n", "shape", "m", "GFLOP/s");
        const size_t ms2[] = {17, 64, 512};
        for (int s = 0; s < 2; s++)
            for (size_t mi = 0; mi < sizeof ms2 / sizeof ms2[0]; mi++) {
                const size_t n = shapes[s][0], k = shapes[s][1], m = ms2[mi];
                double f = bench_prefill_flops(p, w, n, k, m, x, bias, y);
                printf("%-15s %3zu %10.1f\n", names[s], m, f / 1e9);
            }
    }
    free(w);

    /* attention: OPT-1.3B heads over a 2048-token cache; decode cycles
     * through distinct caches (1 GiB in all) so that K and V come from DRAM */
    if (do_attn) {
        const size_t heads = 32, hd = 64, ctx = 2048, tp = 512;
        const size_t cache = ctx * heads * hd, ncache = BENCH_STREAM_BYTES / (2 * cache * 4);
        float *kc = xmalloc(ncache * cache * sizeof *kc),
              *vc = xmalloc(ncache * cache * sizeof *vc);
        for (size_t i = 0; i < cache; i++) {
            kc[i] = rnd();
            vc[i] = rnd();
        }
        for (size_t c = 1; c < ncache; c++) {
            memcpy(kc + c * cache, kc, cache * sizeof *kc);
            memcpy(vc + c * cache, vc, cache * sizeof *vc);
        }
        float *as = xmalloc(k_attention_scratch_floats(tp, 0, heads) * sizeof *as);
        double best = 1e30;
        for (int r = 0; r < BENCH_REPEATS; r++) {
            double t0 = llmsim_now_s();
            for (size_t c = 0; c < ncache; c++)
                k_attention(p, x, 1, ctx - 1, kc + c * cache, vc + c * cache, heads, heads, hd, 0, y,
                            as);
            double dt = (llmsim_now_s() - t0) / (double)ncache;
            best = dt < best ? dt : best;
        }
        const double kv_bytes = 2.0 * (double)cache * 4;
        printf("\nattention decode, ctx %zu, %zu heads x %zu, %zu caches: %.3f ms, %.2f GB/s of "
               "K+V (%.2f of memcpy)\n",
               ctx, heads, hd, ncache, best * 1e3, kv_bytes / best / 1e9,
               kv_bytes / best / mem_bps);
        best = 1e30;
        for (int r = 0; r < BENCH_REPEATS; r++) {
            double t0 = llmsim_now_s();
            k_attention(p, x, tp, 0, kc, vc, heads, heads, hd, 0, y, as);
            double dt = llmsim_now_s() - t0;
            best = dt < best ? dt : best;
        }
        /* causal: about half of the t x t scores; two products of 2 t t hd / 2 flops each */
        printf("attention prefill, %zu tokens: %.1f ms, %.1f GFLOP/s (causal half counted)\n", tp,
               best * 1e3, 2.0 * tp * tp * hd * heads / best / 1e9);
        free(as);
        free(kc);
        free(vc);
    }
    free(x);
    free(y);
    free(bias);
    pool_destroy(p);
    return 0;
}
