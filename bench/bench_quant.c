/*
 * bench_quant — throughput of group-wise dequantization and of the fused
 * dequantize-and-dot (decode GEMV), next to memcpy on the same machine.
 *
 *   bench_quant [MiB]    packed row set of MiB mebibytes (default 64), rows of
 *                        4096 values, 4-bit g64 and 8-bit g64
 *
 * Prints, per configuration and path (dispatch = what quant_*_row picks, and
 * portable C): dequantize throughput in GB/s of fp32 output, quant_dot_row
 * throughput in GB/s of packed input (one x shared by all rows, as in GEMV),
 * and quantize throughput in GB/s of fp32 input; then, for comparison,
 * memcpy GB/s (bytes copied) for a buffer of the packed size and of the fp32
 * size, and the read bandwidth of a buffer of the packed size (what the dot
 * product streams). Best of REPEATS, single thread, buffers touched before
 * timing. Dequantize writes with ordinary stores (its output is read again
 * soon, by the GEMM), so it pays the read-for-ownership that a large memcpy
 * avoids with non-temporal stores.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/quant.h"
#include "common/clock.h"

#define COLS 4096
#define REPEATS 5

static uint64_t rng = 1;
static float rng_weight(void) /* roughly N(0, 0.02^2) from a sum of uniforms */
{
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        s += (float)(rng >> 40) * 0x1p-24f - 0.5f;
    }
    return 0.035f * s;
}

static double bench_memcpy(size_t bytes)
{
    char *a = malloc(bytes), *b = malloc(bytes);
    if (!a || !b) {
        fprintf(stderr, "bench_quant: out of memory\n");
        exit(1);
    }
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double best = 1e30;
    for (int r = 0; r < REPEATS; r++) {
        double t0 = llmsim_now_s();
        memcpy(b, a, bytes);
        double t = llmsim_now_s() - t0;
        best = t < best ? t : best;
    }
    volatile char sink = b[bytes / 2];
    (void)sink;
    free(a);
    free(b);
    return (double)bytes / best / 1e9;
}

/* Read bandwidth: sum a buffer as 64-bit words, 4 independent chains. */
static double bench_read(size_t bytes)
{
    size_t n = bytes / 8;
    uint64_t *a = malloc(n * 8);
    if (!a) {
        fprintf(stderr, "bench_quant: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        a[i] = i;
    double best = 1e30;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int r = 0; r < REPEATS; r++) {
        double t0 = llmsim_now_s();
        for (size_t i = 0; i + 4 <= n; i += 4) {
            s0 += a[i];
            s1 += a[i + 1];
            s2 += a[i + 2];
            s3 += a[i + 3];
        }
        double t = llmsim_now_s() - t0;
        best = t < best ? t : best;
    }
    volatile uint64_t sink = s0 + s1 + s2 + s3;
    (void)sink;
    free(a);
    return (double)(n * 8) / best / 1e9;
}

typedef struct path {
    const char *name;
    void (*quantize)(const float *, size_t, int, int, uint8_t *);
    void (*dequantize)(const uint8_t *, size_t, int, int, float *);
    float (*dot)(const uint8_t *, const float *, size_t, int, int);
} path;

static void run(int bits, int group, size_t packed_bytes)
{
    size_t rb = quant_row_bytes(COLS, bits, group), rows = packed_bytes / rb;
    uint8_t *q = malloc(rows * rb);
    float *y = malloc(rows * COLS * sizeof *y), *x = malloc(COLS * sizeof *x);
    if (!q || !y || !x) {
        fprintf(stderr, "bench_quant: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < rows * COLS; i++)
        y[i] = rng_weight();
    for (size_t i = 0; i < COLS; i++)
        x[i] = rng_weight();
    memset(q, 0, rows * rb);

    path paths[2] = {{"dispatch", quant_quantize_row, quant_dequantize_row, quant_dot_row},
                     {"portable", quant_quantize_row_portable, quant_dequantize_row_portable,
                      quant_dot_row_portable}};
    printf("%d-bit g%d: %zu rows x %d, packed %.1f MiB, fp32 %.1f MiB\n", bits, group, rows, COLS,
           (double)(rows * rb) / 1048576.0, (double)(rows * COLS * 4) / 1048576.0);
    for (int p = 0; p < 2; p++) {
        double tq = 1e30, td = 1e30, tdot = 1e30;
        float sink = 0;
        for (int r = 0; r < REPEATS; r++) {
            double t0 = llmsim_now_s();
            for (size_t i = 0; i < rows; i++)
                paths[p].quantize(y + i * COLS, COLS, bits, group, q + i * rb);
            double t1 = llmsim_now_s();
            for (size_t i = 0; i < rows; i++)
                paths[p].dequantize(q + i * rb, COLS, bits, group, y + i * COLS);
            double t2 = llmsim_now_s();
            for (size_t i = 0; i < rows; i++)
                sink += paths[p].dot(q + i * rb, x, COLS, bits, group);
            double t3 = llmsim_now_s();
            tq = t1 - t0 < tq ? t1 - t0 : tq;
            td = t2 - t1 < td ? t2 - t1 : td;
            tdot = t3 - t2 < tdot ? t3 - t2 : tdot;
        }
        double out_bytes = (double)(rows * COLS * sizeof(float)), in_bytes = (double)(rows * rb);
        printf("  %-8s%s dequantize %6.2f GB/s out (%6.2f GB/s packed in)   dot %6.2f GB/s packed in   "
               "quantize %6.2f GB/s fp32 in   [sum %g]\n",
               paths[p].name, p == 0 ? (quant_have_avx2() ? "(avx2)" : "(port)") : "      ",
               out_bytes / td / 1e9, in_bytes / td / 1e9, in_bytes / tdot / 1e9, out_bytes / tq / 1e9,
               (double)sink);
    }
    printf("  memcpy %6.2f GB/s (%.1f MiB, packed size)   %6.2f GB/s (%.1f MiB, fp32 size)   "
           "read %6.2f GB/s (packed size)\n",
           bench_memcpy(rows * rb), (double)(rows * rb) / 1048576.0, bench_memcpy(rows * COLS * 4),
           (double)(rows * COLS * 4) / 1048576.0, bench_read(rows * rb));
    free(q);
    free(y);
    free(x);
}

int main(int argc, char **argv)
{
    double mib = argc > 1 ? atof(argv[1]) : 64.0;
    if (!(mib > 0)) {
        fprintf(stderr, "usage: bench_quant [MiB]\n");
        return 2;
    }
    size_t bytes = (size_t)(mib * 1048576.0);
    printf("bench_quant: packed row set %.0f MiB, rows of %d values, best of %d, one thread\n", mib,
           COLS, REPEATS);
    run(4, 64, bytes);
    run(8, 64, bytes);
    return 0;
}
