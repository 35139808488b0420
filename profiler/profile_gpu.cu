/*
 * profile_gpu — the GPU probes of `llmsim profile`, CUDA implementation (the
 * API and what each figure means: profile_gpu.h).
 *
 * Errors: every CUDA and cuBLAS call goes through CUDA_CHECK / CUBLAS_CHECK,
 * built from one GPU_CHECK_GEN that records the statement, its error, the
 * function, file and line in the caller's `diag *e` as LLMSIM_EFAIL, sets
 * `st` and jumps to `cleanup`. A function that checks therefore has `e`, `st`
 * and a `cleanup:` label that frees what it owns (every handle starts NULL),
 * and declares all its locals before the first check: C++ forbids a goto
 * across an initialization.
 *
 * Timing: CUDA events around each run on one non-blocking stream, after
 * PROBE_WARMUP untimed runs; the number of timed runs is sized to a time
 * budget between a minimum and a maximum (fewer in quick mode). Kernel probes
 * (GEMM, attention) flush the L2 cache before each run, so weights come from
 * device memory as they do in a layer-by-layer forward pass.
 *
 * fp16 and bf16 data are uint16_t bit patterns: nothing here computes in
 * either on the device, so cuda_fp16.h and cuda_bf16.h are not needed.
 * Units: bytes, seconds, B/s, FLOP/s.
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern "C" {
#include "common/units.h"
#include "profiler/fit.h"
#include "profiler/profile_gpu.h"
}

// ---- error checks

#define GPU_CHECK_GEN(stmt, type, success, name_fn, str_fn)                                        \
    do {                                                                                           \
        type err_ = (stmt);                                                                        \
        if (err_ != (success)) {                                                                   \
            st = diag_set(e, LLMSIM_EFAIL, "%s failed: %s: %s (in %s, %s:%d)", #stmt,              \
                          name_fn(err_), str_fn(err_), __func__, __FILE__, __LINE__);              \
            goto cleanup;                                                                          \
        }                                                                                          \
    } while (0)
#define CUDA_CHECK(stmt)                                                                           \
    GPU_CHECK_GEN(stmt, cudaError_t, cudaSuccess, cudaGetErrorName, cudaGetErrorString)
#define CUBLAS_CHECK(stmt)                                                                         \
    GPU_CHECK_GEN(stmt, cublasStatus_t, CUBLAS_STATUS_SUCCESS, cublasGetStatusName,                \
                  cublasGetStatusString)
/* A call of ours that returns llmsim_status (and has filled `e`). */
#define PROBE_TRY(call)                                                                            \
    do {                                                                                           \
        if ((st = (call)) != LLMSIM_OK)                                                            \
            goto cleanup;                                                                          \
    } while (0)

// ---- what is measured

#define PROBE_WARMUP        2  /* untimed runs before the timed ones */
#define PROBE_MAX_REPS      31 /* timed runs, at most (full mode) */
#define PROBE_MIN_SIZE      4096.0
#define EVENT_RESOLUTION_MS 0.0005 /* cudaEventElapsedTime resolves about 0.5 us */
#define MIB                 ((size_t)1 << 20)

static const int gemm_m_full[] = {1, 16, 64, 256, 1024, 4096, 16384};
static const int gemm_m_quick[] = {1, 16, 256, 4096};
static const int gemm_nk[] = {1024, 4096, 8192}; /* n = k */

/* Prefill attention: one layer of a 7B model over a 1024-token prompt,
 * unfused: S = Q K^T and O = P V batched over heads (fp16, fp32 accumulate). */
enum { PREFILL_HEADS = 32, PREFILL_TOKENS = 1024, HEAD_DIM = 128 };
/* Decode attention: one new token per sequence against its KV cache, GQA as
 * in Llama-3-8B (4 query heads per KV head): batched GEMVs S = K q, O = V^T p. */
enum { DECODE_SEQS = 8 * 8 /* batch x kv heads */, DECODE_GROUP = 4, DECODE_CTX = 4096 };

typedef struct probe {
    diag *e;
    bool quick;
    void (*progress)(const char *what, void *ctx);
    void *progress_ctx;
    cudaStream_t stream; /* every probe runs on this one stream */
    cudaEvent_t start, stop;
    cublasHandle_t blas;
    size_t free_bytes;  /* device memory free after context creation */
    void *flush;        /* written before each kernel run to evict L2 */
    size_t flush_bytes; /* 2 x L2 */
    int nmeasured, nflagged;
    char flagged[1024]; /* "h2d_pageable 4 KiB 23%, ..." */
} probe;

/* Enqueue one run on p->stream. */
typedef llmsim_status (*probe_op)(probe *p, const void *arg);

static int reps_min(const probe *p)
{
    return p->quick ? 5 : 9;
}
static int reps_max(const probe *p)
{
    return p->quick ? 9 : PROBE_MAX_REPS;
}
static double reps_budget_s(const probe *p)
{
    return p->quick ? 0.02 : 0.2;
}

// ---- kernels

__global__ void probe_empty_kernel(void)
{
}

/* fp16 bit patterns of values in +-[0.125, 2): random signs and mantissas,
 * no zeros, NaNs or infinities (tensor cores draw less power on zeros). Read
 * as bf16 the same patterns are values in +-[2^-31, 2), also finite and
 * non-zero. */
__global__ void probe_fill_kernel(uint16_t *v, size_t n, uint32_t seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = ((uint32_t)i * 2654435761u) ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        v[i] = (uint16_t)((h & 0x8000u) | 0x3000u | (h & 0x0fffu));
    }
}

// ---- timing

/* Time `op`: warm-up, then timed runs; per_run = operations one run performs.
 * *median_s = median seconds per operation, *spread = (max-min)/median. A
 * spread above PROFILE_GPU_SPREAD_FLAG is named in p->flagged. */
static llmsim_status probe_time(probe *p, const char *what, bool flush_l2, probe_op op,
                                const void *arg, int per_run, double *median_s, double *spread)
{
    diag *e = p->e;
    llmsim_status st = LLMSIM_OK;
    double t[PROBE_MAX_REPS];
    int reps = reps_min(p), n = 0;
    float ms = 0;
    char label[160];
    size_t used = strlen(p->flagged);

    if (p->progress) {
        snprintf(label, sizeof label, "gpu: %s", what);
        p->progress(label, p->progress_ctx);
    }
    for (int i = 0; i < PROBE_WARMUP; i++)
        PROBE_TRY(op(p, arg));
    CUDA_CHECK(cudaStreamSynchronize(p->stream));
    for (n = 0; n < reps; n++) {
        if (flush_l2 && p->flush)
            CUDA_CHECK(cudaMemsetAsync(p->flush, n & 0xff, p->flush_bytes, p->stream));
        CUDA_CHECK(cudaEventRecord(p->start, p->stream));
        PROBE_TRY(op(p, arg));
        CUDA_CHECK(cudaEventRecord(p->stop, p->stream));
        CUDA_CHECK(cudaEventSynchronize(p->stop));
        CUDA_CHECK(cudaEventElapsedTime(&ms, p->start, p->stop));
        t[n] = fmax(ms, EVENT_RESOLUTION_MS) * 1e-3 / per_run;
        if (n == 0) { /* as many runs as fit the budget, within [min, max] */
            double fit = reps_budget_s(p) / (t[0] * per_run);
            reps = fit >= reps_max(p) ? reps_max(p) : fit <= reps_min(p) ? reps_min(p) : (int)fit;
        }
    }
    *median_s = profile_median(t, n, spread);
    p->nmeasured++;
    if (*spread > PROFILE_GPU_SPREAD_FLAG) {
        p->nflagged++;
        if (used + 1 < sizeof p->flagged)
            snprintf(p->flagged + used, sizeof p->flagged - used, "%s%s %.0f%%", used ? ", " : "",
                     what, 100 * *spread);
    }
cleanup:
    return st;
}

// ---- operations

typedef struct copy_arg {
    void *dst;
    const void *src;
    size_t bytes;
    cudaMemcpyKind kind;
} copy_arg;

static llmsim_status op_copy(probe *p, const void *arg)
{
    const copy_arg *a = (const copy_arg *)arg;
    diag *e = p->e;
    llmsim_status st = LLMSIM_OK;
    CUDA_CHECK(cudaMemcpyAsync(a->dst, a->src, a->bytes, a->kind, p->stream));
cleanup:
    return st;
}

static llmsim_status op_launch(probe *p, const void *arg)
{
    int n = *(const int *)arg;
    diag *e = p->e;
    llmsim_status st = LLMSIM_OK;
    for (int i = 0; i < n; i++)
        probe_empty_kernel<<<1, 1, 0, p->stream>>>();
    CUDA_CHECK(cudaGetLastError());
cleanup:
    return st;
}

/* Row-major C (m x n) = A (m x k) B (k x n), `type` in and out (CUDA_R_16F or
 * CUDA_R_16BF: the fill's bit patterns are valid in both), fp32 compute. */
typedef struct gemm_arg {
    int m, n, k;
    cudaDataType type;
    const uint16_t *a, *b;
    uint16_t *c;
} gemm_arg;

static llmsim_status op_gemm(probe *p, const void *arg)
{
    const gemm_arg *g = (const gemm_arg *)arg;
    const float one = 1.0f, zero = 0.0f;
    diag *e = p->e;
    llmsim_status st = LLMSIM_OK;
    /* cuBLAS is column-major: compute C^T (n x m) = B^T (n x k) A^T (k x m),
     * where each row-major matrix read column-major is its transpose. */
    CUBLAS_CHECK(cublasGemmEx(p->blas, CUBLAS_OP_N, CUBLAS_OP_N, g->n, g->m, g->k, &one, g->b,
                              g->type, g->n, g->a, g->type, g->k, &zero, g->c, g->type, g->n,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
cleanup:
    return st;
}

/* Attention as two batched GEMMs over `nb` independent (sequence, head) pairs,
 * row-major per pair: q (nq x hd), k and v (nk x hd), s (nq x nk), o (nq x hd).
 * S = Q K^T, then O = S V (the softmax between them is not timed). */
typedef struct attn_arg {
    int nb, nq, nk, hd;
    const uint16_t *q, *k, *v;
    uint16_t *s, *o;
} attn_arg;

static llmsim_status op_attention(probe *p, const void *arg)
{
    const attn_arg *a = (const attn_arg *)arg;
    const float one = 1.0f, zero = 0.0f;
    const long long skv = (long long)a->nk * a->hd, sq = (long long)a->nq * a->hd,
                    ss = (long long)a->nq * a->nk;
    diag *e = p->e;
    llmsim_status st = LLMSIM_OK;
    /* column-major S^T (nk x nq) = K (nk x hd, stored as K^T) x Q^T (hd x nq) */
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(p->blas, CUBLAS_OP_T, CUBLAS_OP_N, a->nk, a->nq, a->hd,
                                            &one, a->k, CUDA_R_16F, a->hd, skv, a->q, CUDA_R_16F,
                                            a->hd, sq, &zero, a->s, CUDA_R_16F, a->nk, ss, a->nb,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    /* column-major O^T (hd x nq) = V^T (hd x nk) x S^T (nk x nq) */
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(p->blas, CUBLAS_OP_N, CUBLAS_OP_N, a->hd, a->nq, a->nk,
                                            &one, a->v, CUDA_R_16F, a->hd, skv, a->s, CUDA_R_16F,
                                            a->nk, ss, &zero, a->o, CUDA_R_16F, a->hd, sq, a->nb,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
cleanup:
    return st;
}

// ---- the probes

/* cudaMalloc n fp16 values into *v (left NULL on failure) and fill them. */
static llmsim_status probe_alloc_fp16(probe *p, uint16_t **v, size_t n, uint32_t seed)
{
    diag *e = p->e;
    llmsim_status st = LLMSIM_OK;
    void *ptr = NULL;
    unsigned blocks = (unsigned)((n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096);
    CUDA_CHECK(cudaMalloc(&ptr, n * sizeof(uint16_t)));
    *v = (uint16_t *)ptr;
    probe_fill_kernel<<<blocks, 256, 0, p->stream>>>(*v, n, seed);
    CUDA_CHECK(cudaGetLastError());
cleanup:
    return st;
}

/* Kernel launch latency: the time per launch of an empty kernel, launched
 * back to back (what each kernel of a forward pass adds). */
static llmsim_status probe_launch(probe *p, hw_gpu *g)
{
    llmsim_status st = LLMSIM_OK;
    int n = p->quick ? 200 : 1000;
    double spread = 0;
    PROBE_TRY(
        probe_time(p, "launch latency", false, op_launch, &n, n, &g->launch_latency_s, &spread));
cleanup:
    return st;
}

/* Device memory bandwidth from a device-to-device copy. */
static llmsim_status probe_device_copy(probe *p, hw_gpu *g)
{
    diag *e = p->e;
    llmsim_status st = LLMSIM_OK;
    void *src = NULL, *dst = NULL;
    size_t bytes = 256 * MIB; /* far above any L2 */
    double med = 0, spread = 0;
    copy_arg a;

    while (bytes > MIB && bytes > p->free_bytes / 4)
        bytes /= 2;
    CUDA_CHECK(cudaMalloc(&src, bytes));
    CUDA_CHECK(cudaMalloc(&dst, bytes));
    CUDA_CHECK(cudaMemsetAsync(src, 1, bytes, p->stream));
    a.dst = dst;
    a.src = src;
    a.bytes = bytes;
    a.kind = cudaMemcpyDeviceToDevice;
    PROBE_TRY(probe_time(p, "device-to-device copy", false, op_copy, &a, 1, &med, &spread));
    /* A copy reads `bytes` and writes `bytes`. The cost model charges a memory
     * pass (read + write bytes) / memory_bandwidth (cm_memory_pass_time), so
     * the bandwidth counts both: 2 * bytes / time. */
    g->memory_bandwidth_Bps = 2.0 * (double)bytes / med;
cleanup:
    cudaFree(src);
    cudaFree(dst);
    return st;
}

/* fp16 and bf16 GEMM throughput into g->gemm and g->gemm_bf16: the same
 * shapes, buffers and method for both, each table sorted by (n*k, m). */
static llmsim_status probe_gemm(probe *p, hw_gpu *g)
{
    llmsim_status st = LLMSIM_OK;
    const int *ms = p->quick ? gemm_m_quick : gemm_m_full;
    int nm = p->quick ? (int)(sizeof gemm_m_quick / sizeof *gemm_m_quick)
                      : (int)(sizeof gemm_m_full / sizeof *gemm_m_full);
    const int nkmax = gemm_nk[sizeof gemm_nk / sizeof *gemm_nk - 1];
    /* the fill's bit patterns are valid (finite, non-zero) in both types */
    const cudaDataType types[] = {CUDA_R_16F, CUDA_R_16BF};
    const char *const type_names[] = {"fp16", "bf16"};
    hw_gemm_table *const tables[] = {&g->gemm, &g->gemm_bf16};
    uint16_t *a = NULL, *b = NULL, *c = NULL;
    double med = 0, spread = 0;
    gemm_arg ga;
    char what[96];

    /* drop the largest m while A, B and C would take more than half the free memory */
    while (nm > 1 && 2.0 * ((double)ms[nm - 1] * nkmax * 2 + (double)nkmax * nkmax) >
                         (double)p->free_bytes / 2)
        nm--;
    PROBE_TRY(probe_alloc_fp16(p, &a, (size_t)ms[nm - 1] * nkmax, 1));
    PROBE_TRY(probe_alloc_fp16(p, &b, (size_t)nkmax * nkmax, 2));
    PROBE_TRY(probe_alloc_fp16(p, &c, (size_t)ms[nm - 1] * nkmax, 3));
    ga.a = a;
    ga.b = b;
    ga.c = c;
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        hw_gemm_table *tab = tables[t];
        ga.type = types[t];
        tab->npoints = 0;
        for (size_t j = 0; j < sizeof gemm_nk / sizeof *gemm_nk; j++) {
            for (int i = 0; i < nm && tab->npoints < HW_MAX_POINTS; i++) {
                hw_gemm_point *pt = &tab->points[tab->npoints];
                ga.m = ms[i];
                ga.n = ga.k = gemm_nk[j];
                snprintf(what, sizeof what, "gemm %s m=%d n=k=%d", type_names[t], ga.m, ga.n);
                PROBE_TRY(probe_time(p, what, true, op_gemm, &ga, 1, &med, &spread));
                pt->m = ga.m;
                pt->n = ga.n;
                pt->k = ga.k;
                pt->flops = 2.0 * ga.m * ga.n * ga.k / med;
                pt->spread = spread;
                tab->npoints++;
            }
        }
    }
cleanup:
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    return st;
}

/* Attention: prefill FLOP/s (4 * tokens^2 * head_dim per head, as the cost
 * model counts) and decode bytes of K and V read per second. */
static llmsim_status probe_attention(probe *p, hw_gpu *g)
{
    llmsim_status st = LLMSIM_OK;
    /* one set of buffers, sized for the larger of the two shapes */
    const size_t nkv = (size_t)DECODE_SEQS * DECODE_CTX * HEAD_DIM; /* > prefill's */
    const size_t ns = (size_t)PREFILL_HEADS * PREFILL_TOKENS * PREFILL_TOKENS;
    const size_t nq = (size_t)PREFILL_HEADS * PREFILL_TOKENS * HEAD_DIM;
    uint16_t *q = NULL, *k = NULL, *v = NULL, *s = NULL, *o = NULL;
    double med = 0, spread = 0;
    attn_arg a;

    PROBE_TRY(probe_alloc_fp16(p, &q, nq, 4));
    PROBE_TRY(probe_alloc_fp16(p, &k, nkv, 5));
    PROBE_TRY(probe_alloc_fp16(p, &v, nkv, 6));
    PROBE_TRY(probe_alloc_fp16(p, &s, ns, 7));
    PROBE_TRY(probe_alloc_fp16(p, &o, nq, 8));
    a.q = q;
    a.k = k;
    a.v = v;
    a.s = s;
    a.o = o;
    a.hd = HEAD_DIM;

    a.nb = PREFILL_HEADS;
    a.nq = a.nk = PREFILL_TOKENS;
    PROBE_TRY(probe_time(p, "attention prefill 32 heads x 1024 tokens", true, op_attention, &a, 1,
                         &med, &spread));
    g->attn_prefill_flops = 4.0 * a.nb * (double)a.nq * a.nk * a.hd / med;

    a.nb = DECODE_SEQS;
    a.nq = DECODE_GROUP;
    a.nk = DECODE_CTX;
    PROBE_TRY(probe_time(p, "attention decode 64 caches x 4096 tokens", true, op_attention, &a, 1,
                         &med, &spread));
    g->attn_decode_Bps = 2.0 * (double)nkv * sizeof(uint16_t) / med; /* K and V */
cleanup:
    cudaFree(q);
    cudaFree(k);
    cudaFree(v);
    cudaFree(s);
    cudaFree(o);
    return st;
}

/* Host<->device copies, pinned and pageable: points from 4 KiB by powers of 4
 * (16 in quick mode) to 1 GiB (256 MiB), each link fitted. */
static llmsim_status probe_links(probe *p, hwprofile *hw)
{
    diag *e = p->e;
    llmsim_status st = LLMSIM_OK;
    const size_t step = p->quick ? 16 : 4;
    size_t max_bytes = p->quick ? 256 * MIB : 1024 * MIB;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double host_bytes = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
    void *dev = NULL, *pinned = NULL, *pageable = NULL;
    double med = 0, spread = 0;
    copy_arg a;
    char what[96], size[32];

    /* largest size: at most a quarter of free device memory and an eighth of
     * host memory (it holds a pinned and a pageable buffer) */
    while (max_bytes > PROBE_MIN_SIZE && ((double)max_bytes > p->free_bytes / 4.0 ||
                                          (host_bytes > 0 && max_bytes > host_bytes / 8)))
        max_bytes /= step;
    CUDA_CHECK(cudaMalloc(&dev, max_bytes));
    CUDA_CHECK(cudaMallocHost(&pinned, max_bytes));
    if (!(pageable = malloc(max_bytes))) {
        st = diag_set(e, LLMSIM_EFAIL,
                      "out of memory: %zu bytes of pageable host memory for the "
                      "copy probes",
                      max_bytes);
        goto cleanup;
    }
    memset(pageable, 1, max_bytes); /* resident pages, not the shared zero page */
    memset(pinned, 1, max_bytes);
    CUDA_CHECK(cudaMemsetAsync(dev, 1, max_bytes, p->stream));
    for (int id = 0; id < HW_NLINKS; id++) {
        hw_link *l = &hw->links[id];
        bool h2d = id == HW_LINK_H2D_PINNED || id == HW_LINK_H2D_PAGEABLE;
        void *host = id == HW_LINK_H2D_PINNED || id == HW_LINK_D2H_PINNED ? pinned : pageable;
        a.dst = h2d ? dev : host;
        a.src = h2d ? host : dev;
        a.kind = h2d ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
        l->npoints = 0;
        for (size_t x = (size_t)PROBE_MIN_SIZE; x <= max_bytes && l->npoints < HW_MAX_POINTS;
             x *= step) {
            a.bytes = x;
            units_format(UNITS_BYTES, (double)x, size, sizeof size);
            snprintf(what, sizeof what, "%s %s", hw_link_names[id], size);
            PROBE_TRY(probe_time(p, what, false, op_copy, &a, 1, &med, &spread));
            l->points[l->npoints].bytes = (double)x;
            l->points[l->npoints].time_s = med;
            l->points[l->npoints].spread = spread;
            l->npoints++;
        }
        PROBE_TRY(profile_link_fit(l, e));
        l->present = true;
    }
cleanup:
    cudaFree(dev);
    cudaFreeHost(pinned);
    free(pageable);
    return st;
}

// ---- the entry point

/* The note when there is no GPU to measure: cudaGetDeviceCount failed with
 * cerr, or found no device. */
static void gpu_absent_note(cudaError_t cerr, char *note, size_t note_len)
{
    int driver = 0;
    (void)cudaGetLastError(); /* clear it for later CUDA users */
    /* without a driver the runtime says "driver version is insufficient": say which */
    if (cudaDriverGetVersion(&driver) != cudaSuccess)
        driver = -1;
    if (note_len && cerr != cudaSuccess)
        snprintf(note, note_len,
                 "no GPU: the GPU probes were skipped (%scudaGetDeviceCount: %s: %s)",
                 driver == 0 ? "no NVIDIA driver is installed; " : "", cudaGetErrorName(cerr),
                 cudaGetErrorString(cerr));
    else if (note_len)
        snprintf(note, note_len,
                 "no GPU: the GPU probes were skipped (cudaGetDeviceCount: no device)");
}

/* What every probe shares, on the current device (*dev, its *prop): one
 * stream, the two timing events, a cuBLAS handle on the stream, the free
 * device memory (*total_bytes the total) and the L2 flush buffer. What was
 * opened is released by probe_close, also when this fails. */
static llmsim_status probe_open(probe *p, int *dev, cudaDeviceProp *prop, size_t *total_bytes)
{
    diag *e = p->e;
    llmsim_status st = LLMSIM_OK;
    CUDA_CHECK(cudaGetDevice(dev));
    CUDA_CHECK(cudaGetDeviceProperties(prop, *dev));
    CUDA_CHECK(cudaStreamCreateWithFlags(&p->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreate(&p->start));
    CUDA_CHECK(cudaEventCreate(&p->stop));
    CUBLAS_CHECK(cublasCreate(&p->blas));
    CUBLAS_CHECK(cublasSetStream(p->blas, p->stream));
    CUDA_CHECK(cudaMemGetInfo(&p->free_bytes, total_bytes));
    p->flush_bytes = 2 * (size_t)(prop->l2CacheSize > 0 ? prop->l2CacheSize : 8 * (int)MIB);
    CUDA_CHECK(cudaMalloc(&p->flush, p->flush_bytes));
cleanup:
    return st;
}

/* Release what probe_open opened (each handle only if it was). */
static void probe_close(probe *p)
{
    if (p->stream)
        cudaStreamSynchronize(p->stream);
    cudaFree(p->flush);
    if (p->blas)
        cublasDestroy(p->blas);
    if (p->start)
        cudaEventDestroy(p->start);
    if (p->stop)
        cudaEventDestroy(p->stop);
    if (p->stream)
        cudaStreamDestroy(p->stream);
}

/* The note of a measured GPU: which one, and the measurements flagged. */
static void gpu_measured_note(const probe *p, int dev, int ndev, const char *name, char *note,
                              size_t note_len)
{
    if (note_len && p->nflagged)
        snprintf(note, note_len,
                 "GPU %d of %d (%s): %d of %d measurements have a spread above %.0f%%: %s", dev,
                 ndev, name, p->nflagged, p->nmeasured, 100 * PROFILE_GPU_SPREAD_FLAG,
                 p->flagged);
    else if (note_len)
        snprintf(note, note_len, "GPU %d of %d (%s): all %d measurements within %.0f%% spread", dev,
                 ndev, name, p->nmeasured, 100 * PROFILE_GPU_SPREAD_FLAG);
}

llmsim_status profile_gpu(hwprofile *hw, const profile_gpu_opts *o, char *note, size_t note_len,
                          diag *e)
{
    llmsim_status st = LLMSIM_OK;
    probe p;
    cudaDeviceProp prop;
    cudaError_t cerr;
    int ndev = 0, dev = 0;
    size_t total_bytes = 0;

    memset(&hw->gpu, 0, sizeof hw->gpu);
    memset(hw->links, 0, sizeof hw->links);
    memset(&p, 0, sizeof p);
    p.e = e;
    p.quick = o && o->quick;
    p.progress = o ? o->progress : NULL;
    p.progress_ctx = o ? o->progress_ctx : NULL;
    if (note_len)
        note[0] = '\0';

    cerr = cudaGetDeviceCount(&ndev);
    if (cerr != cudaSuccess || ndev == 0) {
        gpu_absent_note(cerr, note, note_len);
        return LLMSIM_OK;
    }
    PROBE_TRY(probe_open(&p, &dev, &prop, &total_bytes));
    PROBE_TRY(probe_launch(&p, &hw->gpu));
    PROBE_TRY(probe_device_copy(&p, &hw->gpu));
    PROBE_TRY(probe_gemm(&p, &hw->gpu));
    PROBE_TRY(probe_attention(&p, &hw->gpu));
    PROBE_TRY(probe_links(&p, hw));

    hw->gpu.present = true;
    snprintf(hw->gpu.name, sizeof hw->gpu.name, "%s", prop.name);
    hw->gpu.memory_bytes = (double)total_bytes; /* cudaMemGetInfo's total */
    gpu_measured_note(&p, dev, ndev, prop.name, note, note_len);
cleanup:
    probe_close(&p);
    if (st != LLMSIM_OK) {
        memset(&hw->gpu, 0, sizeof hw->gpu);
        memset(hw->links, 0, sizeof hw->links);
        if (note_len)
            snprintf(note, note_len, "the GPU probes failed: %s", e ? e->msg : "(no diag)");
    }
    return st;
}
