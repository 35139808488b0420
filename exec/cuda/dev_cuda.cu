/*
 * dev_cuda — GDEV_CUDA: exec/cuda/dev.h on a CUDA GPU (device 0). The
 * common argument checks, the allocation accounting and the empty-size
 * shortcuts are dev.c's; what arrives here is a non-empty operation whose
 * shapes dev.c has checked.
 *
 * Resources: four non-blocking streams indexed by gdev_stream, one cuBLAS
 * handle bound to GDEV_S_COMPUTE (default math mode: no TF32 for the fp32
 * GEMMs), and a small attention workspace grown on demand (see below).
 * Memory is cudaMalloc / cudaHostAlloc; events are timing-enabled CUDA events.
 *
 * Errors: every CUDA and cuBLAS call is checked; a kernel launch is followed
 * by cudaGetLastError. The message names the dev.h operation, the call and
 * the error (CU_TRY / BLAS_TRY / launched() below), as LLMSIM_EFAIL. Errors of
 * work already queued surface at the next synchronizing call, as dev.h says.
 *
 * Numerics (what the host twin, exec/cuda/dev_host.c with exec/cpu/kernels.c,
 * is matched against):
 *  - conversions use exec/half.h and quantization common/quant_layout.h, both
 *    __host__ __device__: bit-exact with the CPU (no --use_fast_math: IEEE
 *    division, denormals kept);
 *  - where the CPU evaluates a*b+c as two roundings (C11, no contraction),
 *    the kernels use __fmul_rn / __fadd_rn so nvcc does not fuse them: norms
 *    and rotary then round exactly as the CPU does for the same statistics;
 *  - the norms accumulate their row statistics in double, as k_layernorm and
 *    k_rmsnorm do (a different summation order, so the float results agree
 *    with the CPU's all but always to the bit);
 *  - rotary angles are pos / pow(theta, 2i/hd) in double (pos * inv_freq[i]
 *    with a table of scaled frequencies), then cos and sin in double rounded
 *    to float, as k_rotary;
 *  - linear rounds x to the weight's type and runs cublasGemmEx with fp32
 *    compute (fp32 weights: cublasSgemm on x itself);
 *  - attention accumulates in fp32 with an online softmax (a running maximum
 *    and rescaling, as flash attention does): the same function as the CPU's
 *    max-subtracted softmax, rounded differently (a few fp32 ulps).
 *
 * Attention (the decode-critical kernel): one block of ATT_THREADS threads
 * per (sequence, query token, query head) row and context split. The block's
 * warps are cut into groups of lp lanes (lp = hd / VW rounded up to a power
 * of two, at most 32), each group taking one position at a time: every lane
 * loads VW fp16 values (16 bytes when rows are 16-byte aligned and hd % 8 ==
 * 0, else 4 or 2 bytes) of the K and V rows, the dot product is reduced over
 * the group with xor shuffles (identical bits in every lane), and the group
 * keeps its own running max, sum and output slice in registers. Each warp
 * loads ATT_U positions per group before computing, so 2 * ATT_U rows per
 * group are in flight. At the end the groups' states are merged through
 * shared memory (ng * (hd + 3) floats: a few KB, whatever the context). When
 * the rows are too few to fill the GPU (decode with few sequences), the
 * context is split over several blocks, each writing an unnormalized partial
 * state (acc[hd], max, sum) to the workspace, and gk_attn_combine merges them
 * (flash-decoding). No shared memory grows with the context: any ctx works.
 * Under a sliding window the splits cover the keys from the first query's
 * first one on, and each row starts at its own first key (positions before
 * it are neither read nor counted); in a ring (a bounded cache) position p
 * is slot p % ring.
 *
 * Indices are size_t and loops grid-stride, so element counts above 2^31 are
 * safe; grids are capped (GRID_MAX blocks, 65535 in y).
 */
/* exec/half.h and common/quant_layout.h first (static inline __host__
 * __device__ functions: no linkage to declare): they name locals `half`,
 * which -Wshadow reports once cuda_fp16.h's global typedef `half` is declared
 * (cublas_v2.h includes it too). nvcc's implicit cuda_runtime.h does not. */
#include "exec/half.h"
#include "common/quant_layout.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/cuda/dev_impl.h" /* (and dev.h, common/diag.h) in its own extern "C" */

// ---- constants

#define GRID_MAX       (1u << 20) /* blocks of a 1-D grid-stride launch, at most */
#define GRID_Y_MAX     65535u     /* gridDim.y limit */
#define EW_THREADS     256        /* element-wise kernels */
#define NORM_THREADS   256        /* norms: threads per row, at most */
#define ATT_THREADS    128        /* attention: 4 warps per block */
#define ATT_U          4          /* positions per group loaded before computing */
#define ATT_MAX_HD     256        /* 32 lanes x 8 values */
#define ATT_MAX_SPLITS 32         /* context splits of one row, at most */
#define ATT_MIN_CHUNK  256        /* positions per split, at least */
#define FULL_MASK      0xffffffffu

// ---- state

struct gdev_event {
    cudaEvent_t ev;
};

typedef struct cuda_dev {
    gdev base; /* first: gdev * and cuda_dev * convert both ways */
    cudaStream_t st[GDEV_NSTREAMS];
    cublasHandle_t blas;
    char name[256];
    int major, minor, sm_count;
    size_t total_mem;
    /* attention's split-context partial states; used on GDEV_S_COMPUTE only */
    float *att_ws;
    size_t att_ws_bytes;
} cuda_dev;

static cuda_dev *cdev(gdev *d)
{
    return reinterpret_cast<cuda_dev *>(d);
}

static const cuda_dev *cdev_c(const gdev *d)
{
    return reinterpret_cast<const cuda_dev *>(d);
}

// ---- error checks
//
// A host function that checks has `diag *e` in scope; the macros return the
// status they record.

static llmsim_status cuda_fail(diag *e, const char *op, const char *call, cudaError_t err)
{
    // A failed call is also this thread's last error: clear it, or the next
    // launch check would report it as its own. (A sticky error stays anyway.)
    (void)cudaGetLastError();
    return diag_set(e, LLMSIM_EFAIL, "%s: %s failed: %s (%s)", op, call, cudaGetErrorString(err),
                    cudaGetErrorName(err));
}

static llmsim_status blas_fail(diag *e, const char *op, const char *call, cublasStatus_t err)
{
    return diag_set(e, LLMSIM_EFAIL, "%s: %s failed: %s (%s)", op, call, cublasGetStatusString(err),
                    cublasGetStatusName(err));
}

/* One checked call (ggml's CUDA_CHECK_GEN): the value of the call `text`
 * compared with `ok`; on failure, return fail(e, op, text, value). */
#define TRY_GEN(op, value, text, type, ok, fail)                                                   \
    do {                                                                                           \
        type err_ = (value);                                                                       \
        if (err_ != (ok))                                                                          \
            return fail(e, op, text, err_);                                                        \
    } while (0)
#define CU_TRY(op, stmt)   TRY_GEN(op, (stmt), #stmt, cudaError_t, cudaSuccess, cuda_fail)
#define BLAS_TRY(op, stmt) TRY_GEN(op, (stmt), #stmt, cublasStatus_t, CUBLAS_STATUS_SUCCESS, blas_fail)
/* After a kernel launch: a bad configuration (or an earlier asynchronous
 * error) is reported here. */
static llmsim_status launched(diag *e, const char *op, const char *kernel)
{
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
        return diag_set(e, LLMSIM_EFAIL, "%s: launching %s failed: %s (%s)", op, kernel,
                        cudaGetErrorString(err), cudaGetErrorName(err));
    return LLMSIM_OK;
}

// ---- launch geometry

/* Blocks of a 1-D grid-stride loop over n items: at least 1, at most GRID_MAX. */
static unsigned grid_1d(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    if (b < 1)
        b = 1;
    return (unsigned)(b < GRID_MAX ? b : GRID_MAX);
}

/* A [rows][cols] grid: x over cols (blocks of `threads`), y over rows; both
 * loops grid-stride. */
static dim3 grid_2d(size_t rows, size_t cols, unsigned threads)
{
    size_t bx = (cols + threads - 1) / threads, by = rows;
    bx = bx < 1 ? 1 : bx > GRID_MAX ? GRID_MAX : bx;
    by = by < 1 ? 1 : by > GRID_Y_MAX ? GRID_Y_MAX : by;
    return dim3((unsigned)bx, (unsigned)by, 1);
}

/* Threads per row of a row-per-block kernel: h rounded up to a warp, at most max. */
static unsigned row_threads(size_t h, unsigned max)
{
    size_t t = (h + 31) / 32 * 32;
    return (unsigned)(t < 32 ? 32 : t > max ? max : t);
}

#define GRID_STRIDE(i, n)                                                                          \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);                        \
         i += (size_t)gridDim.x * blockDim.x)
#define ROWS_Y(r, rows) for (size_t r = blockIdx.y; r < (rows); r += gridDim.y)
#define COLS_X(c, cols)                                                                            \
    for (size_t c = blockIdx.x * (size_t)blockDim.x + threadIdx.x; c < (cols);                     \
         c += (size_t)gridDim.x * blockDim.x)

// ---- device helpers

struct op_sum {
    template <typename T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct op_max {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

/* Reduce v over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the result, with the same bits (the warps' partials are folded
 * in the same order everywhere). red: 32 elements of shared memory, free
 * again when this returns. Every thread of the block must call it. */
template <typename T, typename Op> static __device__ T block_reduce(T v, T *red, Op op)
{
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1)
        v = op(v, __shfl_xor_sync(FULL_MASK, v, o));
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    T r = red[0];
    for (unsigned i = 1; i < nw; i++)
        r = op(r, red[i]);
    __syncthreads();
    return r;
}

/* fp16 bits -> fp32 in hardware: exact (widening), as half_f16_to_f32 for
 * every non-NaN input; for attention's inner loop. */
static __device__ __forceinline__ float f16_hw(uint32_t bits)
{
    return __half2float(__ushort_as_half((unsigned short)bits));
}

// ---- element-wise kernels

__global__ void gk_to_f32(const void *src, int dt, size_t n, float *dst)
{
    const uint16_t *s16 = (const uint16_t *)src;
    if (dt == GDEV_F16) {
        GRID_STRIDE(i, n)
        {
            dst[i] = half_f16_to_f32(s16[i]);
        }
    } else {
        GRID_STRIDE(i, n)
        {
            dst[i] = half_bf16_to_f32(s16[i]);
        }
    }
}

/* fp32 -> fp16 (bf16 == 0) or bf16 bits, round to nearest even. */
__global__ void gk_round(const float *src, size_t n, int bf16, uint16_t *dst)
{
    if (bf16) {
        GRID_STRIDE(i, n)
        {
            dst[i] = half_f32_to_bf16(src[i]);
        }
    } else {
        GRID_STRIDE(i, n)
        {
            dst[i] = half_f32_to_f16(src[i]);
        }
    }
}

__global__ void gk_relu(const float *x, size_t n, float *out)
{
    GRID_STRIDE(i, n)
    {
        const float v = x[i];
        out[i] = v > 0 ? v : 0; /* NaN and -0 give +0, as k_relu */
    }
}

__global__ void gk_gelu(const float *x, size_t n, float *out)
{
    GRID_STRIDE(i, n)
    {
        const float v = x[i];
        out[i] = __fmul_rn(__fmul_rn(0.5f, v), 1.0f + erff(__fmul_rn(v, 0.70710678118654752f)));
    }
}

__global__ void gk_silu_mul(const float *gate, const float *up, size_t n, float *out)
{
    GRID_STRIDE(i, n)
    {
        const float g = gate[i];
        out[i] = __fmul_rn(g / (1.0f + expf(-g)), up[i]);
    }
}

/* k_gelu_tanh_mul's operations in its order, unfused. */
__global__ void gk_gelu_tanh_mul(const float *gate, const float *up, size_t n, float *out)
{
    GRID_STRIDE(i, n)
    {
        const float g = gate[i];
        const float cube = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, g), g), g);
        const float inner = __fmul_rn(0.79788456080286536f, __fadd_rn(g, cube));
        out[i] = __fmul_rn(__fmul_rn(__fmul_rn(0.5f, g), __fadd_rn(1.0f, tanhf(inner))), up[i]);
    }
}

/* x * a (add 0) or x + a (add 1): one rounding, as the host's loop. */
__global__ void gk_scalar(const float *x, size_t n, float a, int add, float *out)
{
    if (add) {
        GRID_STRIDE(i, n)
        {
            out[i] = __fadd_rn(x[i], a);
        }
    } else {
        GRID_STRIDE(i, n)
        {
            out[i] = __fmul_rn(x[i], a);
        }
    }
}

__global__ void gk_add(const float *a, const float *b, size_t n, float *out)
{
    GRID_STRIDE(i, n)
    {
        out[i] = a[i] + b[i];
    }
}

/* out[r][c] = a[r][c] + b[r % brows][c]; y over rows. Also the bias of
 * linear (a == out, brows == 1). */
__global__ void gk_add_rows(const float *a, size_t rows, size_t cols, const float *b, size_t brows,
                            float *out)
{
    ROWS_Y(r, rows)
    {
        const float *ar = a + r * cols, *br = b + (r % brows) * cols;
        float *o = out + r * cols;
        COLS_X(c, cols)
        {
            o[c] = ar[c] + br[c];
        }
    }
}

/* out[i][:] = table[ids[i]][:]; an id out of range (which the engine never
 * passes) gives a row of NaN rather than a read out of bounds. */
__global__ void gk_embed(const int32_t *ids, size_t n, const void *table, int dt, size_t rows,
                         size_t h, float *out)
{
    ROWS_Y(i, n)
    {
        const int32_t id = ids[i];
        float *o = out + i * h;
        if (id < 0 || (size_t)id >= rows) {
            COLS_X(c, h)
            {
                o[c] = __int_as_float(0x7fc00000);
            }
            continue;
        }
        const size_t off = (size_t)id * h;
        if (dt == GDEV_F16) {
            const uint16_t *t16 = (const uint16_t *)table + off;
            COLS_X(c, h)
            {
                o[c] = half_f16_to_f32(t16[c]);
            }
        } else if (dt == GDEV_BF16) {
            const uint16_t *t16 = (const uint16_t *)table + off;
            COLS_X(c, h)
            {
                o[c] = half_bf16_to_f32(t16[c]);
            }
        } else {
            const float *t32 = (const float *)table + off;
            COLS_X(c, h)
            {
                o[c] = t32[c];
            }
        }
    }
}

// ---- norms: a block per row (grid-stride over rows), statistics in double
//
// Each pass reads x; the statistics are complete (block_reduce syncs) before
// the last pass writes, and each element is read and written by one thread,
// so out may equal x.

__global__ void gk_layernorm(const float *x, size_t m, size_t h, const float *gamma,
                             const float *beta, float eps, float *out)
{
    __shared__ double red[32];
    for (size_t r = blockIdx.x; r < m; r += gridDim.x) {
        const float *xr = x + r * h;
        float *o = out + r * h;
        double s = 0;
        for (size_t i = threadIdx.x; i < h; i += blockDim.x)
            s = __dadd_rn(s, (double)xr[i]);
        s = block_reduce(s, red, op_sum());
        const double mean = s / (double)h;
        double ss = 0;
        for (size_t i = threadIdx.x; i < h; i += blockDim.x) {
            const double dv = __dsub_rn((double)xr[i], mean);
            ss = __dadd_rn(ss, __dmul_rn(dv, dv));
        }
        ss = block_reduce(ss, red, op_sum());
        const float mean_f = (float)mean;
        const float inv = (float)(1.0 / sqrt(ss / (double)h + (double)eps));
        for (size_t i = threadIdx.x; i < h; i += blockDim.x)
            o[i] =
                __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(xr[i], mean_f), inv), gamma[i]), beta[i]);
    }
}

__global__ void gk_rmsnorm(const float *x, size_t m, size_t h, const float *gamma, float eps,
                           float *out)
{
    __shared__ double red[32];
    for (size_t r = blockIdx.x; r < m; r += gridDim.x) {
        const float *xr = x + r * h;
        float *o = out + r * h;
        double ss = 0;
        for (size_t i = threadIdx.x; i < h; i += blockDim.x) {
            const double v = (double)xr[i];
            ss = __dadd_rn(ss, __dmul_rn(v, v));
        }
        ss = block_reduce(ss, red, op_sum());
        const float inv = (float)(1.0 / sqrt(ss / (double)h + (double)eps));
        for (size_t i = threadIdx.x; i < h; i += blockDim.x)
            o[i] = __fmul_rn(__fmul_rn(xr[i], inv), gamma[i]);
    }
}

// ---- rotary: a thread per (token, i < hd/2), looping over the heads

/* inv_freq: NULL, or the scaled frequencies [hd / 2] (k_rotary's table). */
__global__ void gk_rotary(float *x, size_t ntok, size_t t, long long start, size_t heads, size_t hd,
                          double theta, const double *inv_freq)
{
    const size_t hh = hd / 2;
    GRID_STRIDE(idx, ntok * hh)
    {
        const size_t tok = idx / hh, i = idx % hh;
        const long long pos = start + (long long)(tok % t);
        const double ang = inv_freq ? (double)pos * inv_freq[i]
                                    : (double)pos / pow(theta, (double)(2 * i) / (double)hd);
        const float c = (float)cos(ang), s = (float)sin(ang);
        float *xt = x + tok * heads * hd;
        for (size_t h = 0; h < heads; h++) {
            float *v = xt + h * hd;
            const float x0 = v[i], x1 = v[i + hh];
            v[i] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
            v[i + hh] = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s));
        }
    }
}

// ---- quantization (common/quant_layout.h, as quant_quantize_row_ref / dequantize)

/* Quantize one group of g values into its block (header and codes).
 * (__host__ too: tests can hold it against quant_quantize_row_ref.) */
static __host__ __device__ void quant_group_store(const float *xg, int g, int bits, uint8_t *blk)
{
    float mn = quant_sanitize(xg[0]), mx = mn;
    for (int j = 1; j < g; j++) {
        const float v = quant_sanitize(xg[j]);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    uint16_t sh, mh;
    quant_group_params(mn, mx, bits, &sh, &mh);
    quant_block_set_head(blk, sh, mh);
    const float s = quant_f16_bits_to_f32(sh), m = quant_f16_bits_to_f32(mh);
    uint8_t *codes = blk + QUANT_BLOCK_META_BYTES;
    if (bits == 8) {
        for (int j = 0; j < g; j++)
            codes[j] = (uint8_t)quant_code(quant_sanitize(xg[j]), s, m, bits);
    } else { /* code 2j in the low nibble of byte j, 2j+1 in the high one */
        for (int j = 0; j < g / 2; j++) {
            const unsigned lo = quant_code(quant_sanitize(xg[2 * j]), s, m, bits);
            const unsigned hi = quant_code(quant_sanitize(xg[2 * j + 1]), s, m, bits);
            codes[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* Values 2 jp and 2 jp + 1 of a quantized row (group even, so both are in one
 * group) as fp16 bits, packed low | high << 16. */
static __host__ __device__ __forceinline__ uint32_t dequant_pair(const uint8_t *qrow, size_t jp,
                                                                 int bits, int group, size_t bb)
{
    const size_t gp = (size_t)group / 2, b = jp / gp, jj = (jp % gp) * 2;
    const uint8_t *blk = qrow + b * bb, *codes = blk + QUANT_BLOCK_META_BYTES;
    const float s = quant_f16_bits_to_f32(quant_block_scale_bits(blk));
    const float m = quant_f16_bits_to_f32(quant_block_min_bits(blk));
    unsigned q0, q1;
    if (bits == 8) {
        q0 = codes[jj];
        q1 = codes[jj + 1];
    } else {
        const unsigned byte = codes[jj / 2];
        q0 = byte & 0xfu;
        q1 = byte >> 4;
    }
    const uint32_t h0 = half_f32_to_f16(quant_dequant(q0, s, m));
    const uint32_t h1 = half_f32_to_f16(quant_dequant(q1, s, m));
    return h0 | (h1 << 16);
}

/* Store a pair of fp16 bits at dst (2-byte aligned; 4-byte when aligned4). */
static __device__ __forceinline__ void store_pair(uint16_t *dst, uint32_t v, bool aligned4)
{
    if (aligned4) {
        *reinterpret_cast<uint32_t *>(dst) = v;
    } else {
        dst[0] = (uint16_t)(v & 0xffffu);
        dst[1] = (uint16_t)(v >> 16);
    }
}

/* [rows][cols] quantized row by row -> fp16 bits; y over rows, x over pairs. */
__global__ void gk_dequant_f16(const uint8_t *q, size_t rows, size_t cols, int bits, int group,
                               uint16_t *out, bool aligned4)
{
    const size_t bb = quant_block_bytes(bits, group), rb = quant_row_bytes(cols, bits, group);
    ROWS_Y(r, rows)
    {
        const uint8_t *qr = q + r * rb;
        uint16_t *o = out + r * cols;
        COLS_X(jp, cols / 2)
        {
            store_pair(o + 2 * jp, dequant_pair(qr, jp, bits, group, bb), aligned4);
        }
    }
}

/* Where position p's slot is in a slot array: contiguous (table NULL; a
 * ring when ring > 0) or paged (gdev_kv_slot_off, on the device). */
struct kv_where {
    const int32_t *table;
    size_t block_size, block_stride, slot_stride, ring;
};

static kv_where kv_where_of(const gdev_kv *kv)
{
    kv_where w;
    w.table = kv->table;
    w.block_size = kv->block_size;
    w.block_stride = kv->block_stride;
    w.slot_stride = kv->slot_stride;
    w.ring = kv->ring;
    return w;
}

static __device__ __forceinline__ size_t kv_slot(const kv_where &w, size_t p)
{
    if (!w.table)
        return (w.ring ? p % w.ring : p) * w.slot_stride;
    return (size_t)__ldg(w.table + p / w.block_size) * w.block_stride + p % w.block_size * w.slot_stride;
}

/* Slot rows (p, s, kv), p < npos: row r = p * nrs + rs with rs = 2 s + kv. */
__global__ void gk_kv_dequant(const uint8_t *src, kv_where sw, size_t s_row, uint8_t *dst,
                              kv_where dw, size_t d_row, size_t nrs, size_t npos, size_t kvd,
                              int bits, int group, bool aligned4)
{
    const size_t bb = quant_block_bytes(bits, group);
    ROWS_Y(r, npos * nrs)
    {
        const size_t p = r / nrs, rs = r % nrs;
        const uint8_t *qr = src + kv_slot(sw, p) + rs * s_row;
        uint16_t *o = reinterpret_cast<uint16_t *>(dst + kv_slot(dw, p) + rs * d_row);
        COLS_X(jp, kvd / 2)
        {
            store_pair(o + 2 * jp, dequant_pair(qr, jp, bits, group, bb), aligned4);
        }
    }
}

/* New K and V rows to fp16: row r = 2 tok + kv of the [seqs * t] tokens. */
__global__ void gk_kv_put_f16(const float *k, const float *v, size_t ntok, size_t t, long long pos0,
                              uint8_t *base, kv_where w, size_t row_bytes, size_t kvd)
{
    ROWS_Y(r, 2 * ntok)
    {
        const size_t kvi = r & 1, tok = r >> 1, s = tok / t, a = tok % t;
        const float *src = (kvi ? v : k) + tok * kvd;
        uint16_t *dst = reinterpret_cast<uint16_t *>(
            base + kv_slot(w, (size_t)(pos0 + (long long)a)) + (2 * s + kvi) * row_bytes);
        COLS_X(c, kvd)
        {
            dst[c] = half_f32_to_f16(src[c]);
        }
    }
}

/* New K and V rows quantized: a thread per group. */
__global__ void gk_kv_put_q(const float *k, const float *v, size_t ntok, size_t t, long long pos0,
                            uint8_t *base, kv_where w, size_t row_bytes, size_t kvd,
                            int bits, int group)
{
    const size_t ngr = kvd / (size_t)group, bb = quant_block_bytes(bits, group);
    GRID_STRIDE(gi, ntok * 2 * ngr)
    {
        const size_t r = gi / ngr, b = gi % ngr;
        const size_t kvi = r & 1, tok = r >> 1, s = tok / t, a = tok % t;
        const float *src = (kvi ? v : k) + tok * kvd + b * (size_t)group;
        uint8_t *blk =
            base + kv_slot(w, (size_t)(pos0 + (long long)a)) + (2 * s + kvi) * row_bytes + b * bb;
        quant_group_store(src, group, bits, blk);
    }
}

// ---- attention (the design: the header comment)

struct attn_params {
    const float *q; /* [seqs][t][heads][hd] */
    float *out;     /* splits == 1: [seqs][t][heads][hd] */
    float *part;    /* splits > 1: [rows][splits][hd + 2]: acc, max, sum */
    const uint8_t *base;
    kv_where where; /* each position's slot */
    size_t row_bytes;
    long long start;
    unsigned t, heads, group, hd, lp_log2, splits;
    size_t window; /* a query at p sees keys (p - window, p]; 0: [0, p] */
    size_t first;  /* the first query's first key: the splits cover [first, ctx) */
    size_t chunk;  /* positions per split */
    float scale;
};

/* VW fp16 values loaded in one access (16, 4 or 2 bytes), kept as bits. */
template <int VW> struct f16vec {
    uint32_t w[VW == 8 ? 4 : 1];

    __device__ __forceinline__ void load(const uint8_t *p)
    {
        if constexpr (VW == 8) {
            const uint4 u = __ldg(reinterpret_cast<const uint4 *>(p));
            w[0] = u.x;
            w[1] = u.y;
            w[2] = u.z;
            w[3] = u.w;
        } else if constexpr (VW == 2) {
            w[0] = __ldg(reinterpret_cast<const unsigned int *>(p));
        } else {
            w[0] = __ldg(reinterpret_cast<const unsigned short *>(p));
        }
    }
    __device__ __forceinline__ void clear()
    {
#pragma unroll
        for (int i = 0; i < (VW == 8 ? 4 : 1); i++)
            w[i] = 0;
    }
    /* value i (little-endian: the lower address is the low half) */
    __device__ __forceinline__ float get(int i) const
    {
        const uint32_t x = w[i >> 1];
        return f16_hw((i & 1) ? (x >> 16) : (x & 0xffffu));
    }
};

/* Where a thread of gk_attention works: lane gl of group gw (of lp lanes) in
 * its warp, group gid of the block's ng, and the row and the context split
 * its block computes. */
struct attn_thread {
    unsigned lp, nvec;     /* lanes per group; VW-value vectors in a row of hd values */
    unsigned warp, nwarps; /* the thread's warp; the block's warps */
    unsigned gl, gw;       /* lane in group, group in warp */
    unsigned pw, ng, gid;  /* groups per warp, groups in the block, the thread's group */
    size_t row;            /* (s * t + a) * heads + hq */
    unsigned split;        /* the context split of the row */
    size_t p0, p1;         /* the split's positions the row sees: [p0, p1) */
    const uint8_t *kb;     /* K of position j: kb + kv_slot(j); V: row_bytes further */
};

template <int VW> static __device__ __forceinline__ attn_thread attn_thread_of(const attn_params &P)
{
    attn_thread T;
    const unsigned hd = P.hd, lane = threadIdx.x & 31u;
    T.lp = 1u << P.lp_log2;
    T.nvec = hd / VW;
    T.warp = threadIdx.x >> 5;
    T.nwarps = blockDim.x >> 5;
    T.gl = lane & (T.lp - 1u);
    T.gw = lane >> P.lp_log2;
    T.pw = 32u >> P.lp_log2;
    T.ng = T.nwarps * T.pw;
    T.gid = T.warp * T.pw + T.gw;

    T.row = blockIdx.x / P.splits;
    T.split = blockIdx.x % P.splits;
    const unsigned hq = (unsigned)(T.row % P.heads);
    const size_t tok = T.row / P.heads, s = tok / P.t, a = tok % P.t;
    const unsigned kvh = hq / P.group;
    const size_t pos = (size_t)P.start + a, valid = pos + 1; /* positions lo .. start + a */
    const size_t lo = P.window && pos >= P.window ? pos - P.window + 1 : 0;
    const size_t s0 = P.first + (size_t)T.split * P.chunk; /* the split's positions, all rows */
    T.p0 = s0 > lo ? s0 : lo;
    T.p1 = s0 + P.chunk < valid ? s0 + P.chunk : valid;
    T.kb = P.base + 2 * s * P.row_bytes + (size_t)kvh * hd * 2;
    return T;
}

/* The thread's slice of the query row into qv (vectors it owns: own), and
 * its output slice acc cleared. */
template <int VW, int RM>
static __device__ __forceinline__ void attn_load_q(const attn_params &P, const attn_thread &T,
                                                   float (&qv)[RM][VW], float (&acc)[RM][VW],
                                                   bool (&own)[RM])
{
#pragma unroll
    for (int r = 0; r < RM; r++) {
        const unsigned vi = T.gl + T.lp * (unsigned)r;
        own[r] = vi < T.nvec;
#pragma unroll
        for (int x = 0; x < VW; x++) {
            qv[r][x] = own[r] ? P.q[T.row * P.hd + vi * VW + x] : 0.0f;
            acc[r][x] = 0.0f;
        }
    }
}

/* The group's ATT_U positions from jb (position jb + u * pw + gw): the
 * thread's slices of their K and V rows (zero past p1 or off its slice);
 * ok[u]: position u is in the split. */
template <int VW, int RM>
static __device__ __forceinline__ void attn_load_kv(const attn_params &P, const attn_thread &T,
                                                    size_t jb, const bool (&own)[RM],
                                                    f16vec<VW> (&kr)[ATT_U][RM],
                                                    f16vec<VW> (&vr)[ATT_U][RM], bool (&ok)[ATT_U])
{
#pragma unroll
    for (int u = 0; u < ATT_U; u++) {
        const size_t j = jb + (size_t)u * T.pw + T.gw;
        ok[u] = j < T.p1;
        const uint8_t *kp = ok[u] ? T.kb + kv_slot(P.where, j) : T.kb;
#pragma unroll
        for (int r = 0; r < RM; r++) {
            const size_t off = (size_t)(T.gl + T.lp * (unsigned)r) * VW * 2;
            if (ok[u] && own[r]) {
                kr[u][r].load(kp + off);
                vr[u][r].load(kp + P.row_bytes + off);
            } else {
                kr[u][r].clear();
                vr[u][r].clear();
            }
        }
    }
}

/* The unscaled scores q . k of the ATT_U positions, reduced over the group
 * with xor shuffles (the same bits in every lane of it). */
template <int VW, int RM>
static __device__ __forceinline__ void attn_scores(const attn_thread &T, const float (&qv)[RM][VW],
                                                   const f16vec<VW> (&kr)[ATT_U][RM],
                                                   float (&sc)[ATT_U])
{
#pragma unroll
    for (int u = 0; u < ATT_U; u++) {
        float dot = 0.0f;
#pragma unroll
        for (int r = 0; r < RM; r++)
#pragma unroll
            for (int x = 0; x < VW; x++)
                dot = fmaf(qv[r][x], kr[u][r].get(x), dot);
        sc[u] = dot;
    }
    for (unsigned o = T.lp >> 1; o > 0; o >>= 1)
#pragma unroll
        for (int u = 0; u < ATT_U; u++)
            sc[u] += __shfl_xor_sync(FULL_MASK, sc[u], (int)o);
}

/* The group's online softmax over the ATT_U positions: scale the scores,
 * raise the running max m, rescale the sum l and the output acc, and add
 * each position's exp(score - m) and its weighted V. */
template <int VW, int RM>
static __device__ __forceinline__ void attn_online_softmax(const attn_params &P,
                                                           const bool (&ok)[ATT_U],
                                                           const f16vec<VW> (&vr)[ATT_U][RM],
                                                           float (&sc)[ATT_U], float &m, float &l,
                                                           float (&acc)[RM][VW])
{
    float mnew = m;
#pragma unroll
    for (int u = 0; u < ATT_U; u++) {
        sc[u] = ok[u] ? sc[u] * P.scale : -INFINITY;
        mnew = fmaxf(mnew, sc[u]);
    }
    /* mnew is uniform over the group, and there are no shuffles inside */
    if (mnew != -INFINITY) {
        const float corr = expf(m - mnew); /* 0 while m is -inf */
        l *= corr;
#pragma unroll
        for (int r = 0; r < RM; r++)
#pragma unroll
            for (int x = 0; x < VW; x++)
                acc[r][x] *= corr;
#pragma unroll
        for (int u = 0; u < ATT_U; u++) {
            if (!ok[u])
                continue;
            const float p = expf(sc[u] - mnew);
            l += p;
#pragma unroll
            for (int r = 0; r < RM; r++)
#pragma unroll
                for (int x = 0; x < VW; x++)
                    acc[r][x] = fmaf(p, vr[u][r].get(x), acc[r][x]);
        }
        m = mnew;
    }
}

/* Merge the block's groups: shared [ng][hd] outputs, then max, sum, weight
 * per group; the row's output (one split), or the split's unnormalized
 * partial state (acc, max, sum) for gk_attn_combine. Every thread calls it. */
template <int VW, int RM>
static __device__ __forceinline__ void attn_merge_groups(const attn_params &P, const attn_thread &T,
                                                         const float (&acc)[RM][VW],
                                                         const bool (&own)[RM], float m, float l,
                                                         float *att_sm)
{
    const unsigned hd = P.hd, ng = T.ng, gid = T.gid;
    float *sm_acc = att_sm, *sm_m = att_sm + (size_t)ng * hd, *sm_l = sm_m + ng, *sm_w = sm_l + ng,
          *red = sm_w + ng;
#pragma unroll
    for (int r = 0; r < RM; r++)
        if (own[r])
#pragma unroll
            for (int x = 0; x < VW; x++)
                sm_acc[(size_t)gid * hd + (T.gl + T.lp * (unsigned)r) * VW + x] = acc[r][x];
    if (T.gl == 0) {
        sm_m[gid] = m;
        sm_l[gid] = l;
    }
    __syncthreads();
    const unsigned tid = threadIdx.x;
    const float mg = tid < ng ? sm_m[tid] : -INFINITY;
    const float M = block_reduce(mg, red, op_max());
    const float w = (tid < ng && mg != -INFINITY) ? expf(mg - M) : 0.0f;
    if (tid < ng)
        sm_w[tid] = w;
    /* block_reduce's barriers also publish sm_w */
    const float L = block_reduce(tid < ng ? w * sm_l[tid] : 0.0f, red, op_sum());
    const size_t row = T.row;
    const unsigned split = T.split;
    for (unsigned dd = tid; dd < hd; dd += blockDim.x) {
        float o = 0.0f;
        for (unsigned g = 0; g < ng; g++)
            o = fmaf(sm_w[g], sm_acc[(size_t)g * hd + dd], o);
        if (P.splits == 1)
            P.out[row * hd + dd] = o / L;
        else
            P.part[(row * P.splits + split) * (hd + 2) + dd] = o;
    }
    if (P.splits > 1 && tid == 0) {
        float *pp = P.part + (row * P.splits + split) * (hd + 2);
        pp[hd] = M;
        pp[hd + 1] = L;
    }
}

/* One (row, split) of attention per block: each group of lp lanes walks the
 * split's positions ATT_U at a time with its own online softmax, then the
 * groups are merged (the design: the header comment). */
template <int VW> __global__ void __launch_bounds__(ATT_THREADS) gk_attention(attn_params P)
{
    constexpr int RM = ATT_MAX_HD / 32 / VW; /* vectors per lane, at most */
    extern __shared__ float att_sm[];
    const attn_thread T = attn_thread_of<VW>(P);

    float qv[RM][VW], acc[RM][VW];
    bool own[RM];
    attn_load_q<VW, RM>(P, T, qv, acc, own);

    /* This group's online softmax: running max m, sum l, output acc. The loop
     * bounds are uniform over the warp, so every lane reaches the shuffles. */
    float m = -INFINITY, l = 0.0f;
    const size_t step = (size_t)T.nwarps * T.pw * ATT_U;
    for (size_t jb = T.p0 + (size_t)T.warp * T.pw * ATT_U; jb < T.p1; jb += step) {
        f16vec<VW> kr[ATT_U][RM], vr[ATT_U][RM];
        bool ok[ATT_U];
        float sc[ATT_U];
        attn_load_kv<VW, RM>(P, T, jb, own, kr, vr, ok);
        attn_scores<VW, RM>(T, qv, kr, sc);
        attn_online_softmax<VW, RM>(P, ok, vr, sc, m, l, acc);
    }
    attn_merge_groups<VW, RM>(P, T, acc, own, m, l, att_sm);
}

/* Merge the splits of each row: out = sum_i w_i acc_i / sum_i w_i l_i with
 * w_i = exp(m_i - max m). A block per row (grid-stride), blockDim >= splits. */
__global__ void gk_attn_combine(const float *part, size_t rows, unsigned splits, unsigned hd,
                                float *out)
{
    __shared__ float w_s[ATT_MAX_SPLITS];
    const size_t ps = (size_t)hd + 2;
    for (size_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float *pr = part + row * splits * ps;
        float M = -INFINITY;
        for (unsigned i = 0; i < splits; i++)
            M = fmaxf(M, pr[i * ps + hd]);
        if (threadIdx.x < splits) {
            const float mi = pr[threadIdx.x * ps + hd];
            w_s[threadIdx.x] = mi != -INFINITY ? expf(mi - M) : 0.0f;
        }
        __syncthreads();
        float L = 0.0f;
        for (unsigned i = 0; i < splits; i++)
            L = fmaf(w_s[i], pr[i * ps + hd + 1], L);
        for (unsigned dd = threadIdx.x; dd < hd; dd += blockDim.x) {
            float o = 0.0f;
            for (unsigned i = 0; i < splits; i++)
                o = fmaf(w_s[i], pr[i * ps + dd], o);
            out[row * hd + dd] = o / L;
        }
        __syncthreads(); /* w_s is rewritten for the next row */
    }
}

// ---- the device

static void cu_close(gdev *d)
{
    cuda_dev *c = cdev(d);
    for (int i = 0; i < GDEV_NSTREAMS; i++)
        if (c->st[i])
            (void)cudaStreamSynchronize(c->st[i]);
    if (c->blas)
        (void)cublasDestroy(c->blas);
    (void)cudaFree(c->att_ws);
    for (int i = 0; i < GDEV_NSTREAMS; i++)
        if (c->st[i])
            (void)cudaStreamDestroy(c->st[i]);
    (void)cudaGetLastError(); /* nothing to report from a close */
    free(c);
}

static void cu_describe(const gdev *d, char *buf, size_t len)
{
    const cuda_dev *c = cdev_c(d);
    if (len)
        snprintf(buf, len, "%s (sm_%d%d, %.1f GiB)", c->name, c->major, c->minor,
                 (double)c->total_mem / (1024.0 * 1024.0 * 1024.0));
}

static void cu_mem_info(const gdev *d, double *total, double *free_bytes)
{
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) {
        (void)cudaGetLastError();
        fr = tot = 0;
    }
    *total = (double)tot;
    *free_bytes = (double)fr;
}

// ---- memory

static void *cu_dmalloc(gdev *d, size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        (void)cudaGetLastError(); /* not sticky: clear it for the next checks */
        return NULL;
    }
    return p;
}

static void cu_dfree(gdev *d, void *p)
{
    (void)cudaFree(p);
    (void)cudaGetLastError();
}

static void *cu_host_malloc(gdev *d, size_t bytes)
{
    void *p = NULL;
    /* page-aligned (O_DIRECT reads land in it directly) */
    if (cudaHostAlloc(&p, bytes, cudaHostAllocDefault) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    memset(p, 0, bytes);
    return p;
}

static void cu_host_free(gdev *d, void *p)
{
    (void)cudaFreeHost(p);
    (void)cudaGetLastError();
}

// ---- copies

static llmsim_status stream_of(cuda_dev *c, gdev_stream s, const char *op, cudaStream_t *out,
                               diag *e)
{
    *out = NULL;
    if ((unsigned)s >= (unsigned)GDEV_NSTREAMS)
        return diag_set(e, LLMSIM_EFAIL, "%s: no stream %d", op, (int)s);
    *out = c->st[s];
    return LLMSIM_OK;
}

static cudaMemcpyKind kind_of(gdev_dir dir)
{
    switch (dir) {
    case GDEV_H2D: return cudaMemcpyHostToDevice;
    case GDEV_D2H: return cudaMemcpyDeviceToHost;
    case GDEV_D2D: break;
    }
    return cudaMemcpyDeviceToDevice;
}

static llmsim_status cu_copy(gdev *d, gdev_stream s, gdev_dir dir, void *dst, const void *src,
                             size_t bytes, diag *e)
{
    cudaStream_t str = NULL;
    llmsim_status st = stream_of(cdev(d), s, "gdev_copy", &str, e);
    if (st)
        return st;
    CU_TRY("gdev_copy", cudaMemcpyAsync(dst, src, bytes, kind_of(dir), str));
    return LLMSIM_OK;
}

static llmsim_status cu_copy2d(gdev *d, gdev_stream s, gdev_dir dir, void *dst, size_t dpitch,
                               const void *src, size_t spitch, size_t width, size_t height, diag *e)
{
    cudaStream_t str = NULL;
    llmsim_status st = stream_of(cdev(d), s, "gdev_copy2d", &str, e);
    if (st)
        return st;
    CU_TRY("gdev_copy2d",
           cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind_of(dir), str));
    return LLMSIM_OK;
}

// ---- events and ordering

static llmsim_status cu_event_new(gdev *d, gdev_event **ev, diag *e)
{
    *ev = NULL;
    gdev_event *x = (gdev_event *)calloc(1, sizeof *x);
    if (!x)
        return diag_set(e, LLMSIM_EFAIL, "gdev_event_new: out of memory");
    cudaError_t err = cudaEventCreate(&x->ev); /* timing enabled: tasks are timed with events */
    if (err != cudaSuccess) {
        free(x);
        return cuda_fail(e, "gdev_event_new", "cudaEventCreate", err);
    }
    *ev = x;
    return LLMSIM_OK;
}

static void cu_event_free(gdev *d, gdev_event *ev)
{
    (void)cudaEventDestroy(ev->ev);
    (void)cudaGetLastError();
    free(ev);
}

static llmsim_status cu_record(gdev *d, gdev_stream s, gdev_event *ev, diag *e)
{
    cudaStream_t str = NULL;
    llmsim_status st = stream_of(cdev(d), s, "gdev_record", &str, e);
    if (st)
        return st;
    CU_TRY("gdev_record", cudaEventRecord(ev->ev, str));
    return LLMSIM_OK;
}

static llmsim_status cu_stream_wait(gdev *d, gdev_stream s, gdev_event *ev, diag *e)
{
    cudaStream_t str = NULL;
    llmsim_status st = stream_of(cdev(d), s, "gdev_stream_wait", &str, e);
    if (st)
        return st;
    CU_TRY("gdev_stream_wait", cudaStreamWaitEvent(str, ev->ev, 0));
    return LLMSIM_OK;
}

static llmsim_status cu_event_wait(gdev *d, gdev_event *ev, diag *e)
{
    CU_TRY("gdev_event_wait", cudaEventSynchronize(ev->ev));
    return LLMSIM_OK;
}

static llmsim_status cu_stream_sync(gdev *d, gdev_stream s, diag *e)
{
    cudaStream_t str = NULL;
    llmsim_status st = stream_of(cdev(d), s, "gdev_stream_sync", &str, e);
    if (st)
        return st;
    CU_TRY("gdev_stream_sync", cudaStreamSynchronize(str));
    return LLMSIM_OK;
}

/* Every stream of ours, not the whole device: other libraries may share it. */
static llmsim_status cu_sync(gdev *d, diag *e)
{
    cuda_dev *c = cdev(d);
    for (int i = 0; i < GDEV_NSTREAMS; i++)
        CU_TRY("gdev_sync", cudaStreamSynchronize(c->st[i]));
    return LLMSIM_OK;
}

static llmsim_status cu_event_elapsed_s(gdev *d, gdev_event *from, gdev_event *to, double *s,
                                        diag *e)
{
    float ms = 0;
    CU_TRY("gdev_event_elapsed_s", cudaEventElapsedTime(&ms, from->ev, to->ev));
    *s = (double)ms / 1000.0;
    return LLMSIM_OK;
}

// ---- kernels

#define COMPUTE(c) ((c)->st[GDEV_S_COMPUTE])

static llmsim_status cu_linear(gdev *d, const float *x, size_t m, size_t k, const void *w,
                               gdev_dtype wt, const float *bias, size_t n, float *y, void *scratch,
                               diag *e)
{
    static const char op[] = "gdev_linear";
    cuda_dev *c = cdev(d);
    const float one = 1.0f, zero = 0.0f;
    llmsim_status st;
    if (m > (size_t)INT_MAX || n > (size_t)INT_MAX || k > (size_t)INT_MAX)
        return diag_set(e, LLMSIM_EFAIL,
                        "%s: %zu x %zu by %zu x %zu is beyond cuBLAS's int dimensions", op, m, k, n,
                        k);
    if (wt != GDEV_F16 && wt != GDEV_BF16 && wt != GDEV_F32)
        return diag_set(e, LLMSIM_EFAIL, "%s: unknown weight type %d", op, (int)wt);
    if (k == 0) { /* an empty sum: y = bias, or 0 */
        CU_TRY(op, cudaMemsetAsync(y, 0, m * n * sizeof(float), COMPUTE(c)));
    } else if (wt == GDEV_F32) {
        BLAS_TRY(op, cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one,
                                 (const float *)w, (int)k, x, (int)k, &zero, y, (int)n));
    } else {
        if (!scratch)
            return diag_set(e, LLMSIM_EFAIL, "%s: no scratch for the rounded copy of x", op);
        const cudaDataType ty = wt == GDEV_F16 ? CUDA_R_16F : CUDA_R_16BF;
        uint16_t *xh = (uint16_t *)scratch;
        gk_round<<<grid_1d(m * k, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(x, m * k,
                                                                            wt == GDEV_BF16, xh);
        if ((st = launched(e, op, "gk_round")))
            return st;
        /* row-major W [n][k] is column-major k x n: op T gives n x k; x and y
         * row-major are column-major k x m and n x m */
        BLAS_TRY(op, cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one,
                                  w, ty, (int)k, xh, ty, (int)k, &zero, y, CUDA_R_32F, (int)n,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    if (bias) {
        gk_add_rows<<<grid_2d(m, n, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(y, m, n, bias, 1, y);
        if ((st = launched(e, op, "gk_add_rows (bias)")))
            return st;
    }
    return LLMSIM_OK;
}

static llmsim_status cu_to_f32(gdev *d, const void *src, gdev_dtype dt, size_t n, float *dst,
                               diag *e)
{
    static const char op[] = "gdev_to_f32";
    cuda_dev *c = cdev(d);
    switch (dt) {
    case GDEV_F32:
        CU_TRY(op,
               cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, COMPUTE(c)));
        return LLMSIM_OK;
    case GDEV_F16:
    case GDEV_BF16:
        gk_to_f32<<<grid_1d(n, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(src, (int)dt, n, dst);
        return launched(e, op, "gk_to_f32");
    }
    return diag_set(e, LLMSIM_EFAIL, "%s: unknown type %d", op, (int)dt);
}

static llmsim_status cu_to_f16(gdev *d, const float *src, size_t n, uint16_t *dst, diag *e)
{
    cuda_dev *c = cdev(d);
    gk_round<<<grid_1d(n, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(src, n, 0, dst);
    return launched(e, "gdev_to_f16", "gk_round");
}

static llmsim_status cu_layernorm(gdev *d, const float *x, size_t m, size_t h, const float *gamma,
                                  const float *beta, float eps, float *out, diag *e)
{
    cuda_dev *c = cdev(d);
    gk_layernorm<<<grid_1d(m, 1), row_threads(h, NORM_THREADS), 0, COMPUTE(c)>>>(x, m, h, gamma,
                                                                                 beta, eps, out);
    return launched(e, "gdev_layernorm", "gk_layernorm");
}

static llmsim_status cu_rmsnorm(gdev *d, const float *x, size_t m, size_t h, const float *gamma,
                                float eps, float *out, diag *e)
{
    cuda_dev *c = cdev(d);
    gk_rmsnorm<<<grid_1d(m, 1), row_threads(h, NORM_THREADS), 0, COMPUTE(c)>>>(x, m, h, gamma, eps,
                                                                               out);
    return launched(e, "gdev_rmsnorm", "gk_rmsnorm");
}

static llmsim_status cu_rotary(gdev *d, float *x, size_t seqs, size_t t, long long start,
                               size_t heads, size_t hd, double theta, const double *inv_freq,
                               diag *e)
{
    cuda_dev *c = cdev(d);
    const size_t ntok = seqs * t;
    gk_rotary<<<grid_1d(ntok * (hd / 2), EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(
        x, ntok, t, start, heads, hd, theta, inv_freq);
    return launched(e, "gdev_rotary", "gk_rotary");
}

static llmsim_status cu_relu(gdev *d, const float *x, size_t n, float *out, diag *e)
{
    cuda_dev *c = cdev(d);
    gk_relu<<<grid_1d(n, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(x, n, out);
    return launched(e, "gdev_relu", "gk_relu");
}

static llmsim_status cu_gelu(gdev *d, const float *x, size_t n, float *out, diag *e)
{
    cuda_dev *c = cdev(d);
    gk_gelu<<<grid_1d(n, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(x, n, out);
    return launched(e, "gdev_gelu", "gk_gelu");
}

static llmsim_status cu_silu_mul(gdev *d, const float *gate, const float *up, size_t n, float *out,
                                 diag *e)
{
    cuda_dev *c = cdev(d);
    gk_silu_mul<<<grid_1d(n, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(gate, up, n, out);
    return launched(e, "gdev_silu_mul", "gk_silu_mul");
}

static llmsim_status cu_gelu_tanh_mul(gdev *d, const float *gate, const float *up, size_t n,
                                      float *out, diag *e)
{
    cuda_dev *c = cdev(d);
    gk_gelu_tanh_mul<<<grid_1d(n, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(gate, up, n, out);
    return launched(e, "gdev_gelu_tanh_mul", "gk_gelu_tanh_mul");
}

static llmsim_status cu_scale(gdev *d, const float *x, size_t n, float s, float *out, diag *e)
{
    cuda_dev *c = cdev(d);
    gk_scalar<<<grid_1d(n, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(x, n, s, 0, out);
    return launched(e, "gdev_scale", "gk_scalar");
}

static llmsim_status cu_add_scalar(gdev *d, const float *x, size_t n, float a, float *out, diag *e)
{
    cuda_dev *c = cdev(d);
    gk_scalar<<<grid_1d(n, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(x, n, a, 1, out);
    return launched(e, "gdev_add_scalar", "gk_scalar");
}

static llmsim_status cu_add(gdev *d, const float *a, const float *b, size_t n, float *out, diag *e)
{
    cuda_dev *c = cdev(d);
    gk_add<<<grid_1d(n, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(a, b, n, out);
    return launched(e, "gdev_add", "gk_add");
}

static llmsim_status cu_add_rows(gdev *d, const float *a, size_t rows, size_t cols, const float *b,
                                 size_t brows, float *out, diag *e)
{
    cuda_dev *c = cdev(d);
    gk_add_rows<<<grid_2d(rows, cols, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(a, rows, cols, b,
                                                                                brows, out);
    return launched(e, "gdev_add_rows", "gk_add_rows");
}

static llmsim_status cu_embed(gdev *d, const int32_t *ids, size_t n, const void *table,
                              gdev_dtype dt, size_t rows, size_t h, float *out, diag *e)
{
    cuda_dev *c = cdev(d);
    if (dt != GDEV_F16 && dt != GDEV_BF16 && dt != GDEV_F32)
        return diag_set(e, LLMSIM_EFAIL, "gdev_embed: unknown table type %d", (int)dt);
    gk_embed<<<grid_2d(n, h, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(ids, n, table, (int)dt, rows,
                                                                       h, out);
    return launched(e, "gdev_embed", "gk_embed");
}

static llmsim_status cu_dequant_f16(gdev *d, const uint8_t *q, size_t rows, size_t cols, int bits,
                                    int group, uint16_t *out, diag *e)
{
    cuda_dev *c = cdev(d);
    if ((uintptr_t)out & 1)
        return diag_set(e, LLMSIM_EFAIL, "gdev_dequant_f16: output %p is not 2-byte aligned",
                        (void *)out);
    const bool aligned4 = ((uintptr_t)out & 3) == 0; /* cols is even: every row then is */
    gk_dequant_f16<<<grid_2d(rows, cols / 2, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(
        q, rows, cols, bits, group, out, aligned4);
    return launched(e, "gdev_dequant_f16", "gk_dequant_f16");
}

static llmsim_status cu_kv_put(gdev *d, const gdev_kv *kv, const float *k, const float *v,
                               size_t seqs, size_t t, long long pos0, diag *e)
{
    static const char op[] = "gdev_kv_put";
    cuda_dev *c = cdev(d);
    const size_t ntok = seqs * t;
    if (pos0 < 0)
        return diag_set(e, LLMSIM_EFAIL, "%s: negative position %lld", op, pos0);
    if (kv->bits == 0) {
        if (((uintptr_t)kv->base | kv->slot_stride | kv->block_stride) & 1)
            return diag_set(e, LLMSIM_EFAIL,
                            "%s: fp16 slot array not 2-byte aligned (base %p, stride %zu)", op,
                            (void *)kv->base, kv->slot_stride);
        gk_kv_put_f16<<<grid_2d(2 * ntok, kv->kvd, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(
            k, v, ntok, t, pos0, kv->base, kv_where_of(kv), kv->row_bytes, kv->kvd);
        return launched(e, op, "gk_kv_put_f16");
    }
    const size_t groups = ntok * 2 * (kv->kvd / (size_t)kv->group);
    gk_kv_put_q<<<grid_1d(groups, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(
        k, v, ntok, t, pos0, kv->base, kv_where_of(kv), kv->row_bytes, kv->kvd, kv->bits,
        kv->group);
    return launched(e, op, "gk_kv_put_q");
}

static llmsim_status cu_kv_dequant(gdev *d, const gdev_kv *src, const gdev_kv *dst, size_t seqs,
                                   long long npos, diag *e)
{
    cuda_dev *c = cdev(d);
    const uintptr_t al = (uintptr_t)dst->base | dst->slot_stride | dst->row_bytes | dst->block_stride;
    if (al & 1)
        return diag_set(e, LLMSIM_EFAIL,
                        "gdev_kv_dequant: fp16 slot array not 2-byte aligned (base %p, stride %zu)",
                        (void *)dst->base, dst->slot_stride);
    const size_t nrs = 2 * seqs, np = (size_t)npos;
    gk_kv_dequant<<<grid_2d(np * nrs, src->kvd / 2, EW_THREADS), EW_THREADS, 0, COMPUTE(c)>>>(
        src->base, kv_where_of(src), src->row_bytes, dst->base, kv_where_of(dst), dst->row_bytes,
        nrs, np, src->kvd, src->bits, src->group, (al & 3) == 0);
    return launched(e, "gdev_kv_dequant", "gk_kv_dequant");
}

/* The split-context workspace, at least `bytes`: *ws NULL (and OK) when it
 * cannot be had, and attention then runs unsplit. Growing it waits for the
 * compute stream, whose kernels may still read the old one: rare (it only
 * grows, by doubling). */
static llmsim_status att_workspace(cuda_dev *c, size_t bytes, float **ws, diag *e)
{
    static const char op[] = "gdev_attention";
    *ws = NULL;
    if (bytes <= c->att_ws_bytes) {
        *ws = c->att_ws;
        return LLMSIM_OK;
    }
    if (c->att_ws) {
        CU_TRY(op, cudaStreamSynchronize(COMPUTE(c)));
        CU_TRY(op, cudaFree(c->att_ws));
        c->att_ws = NULL;
        c->att_ws_bytes = 0;
    }
    size_t want = bytes < ((size_t)1 << 20) ? ((size_t)1 << 20) : bytes;
    void *p = NULL;
    if (cudaMalloc(&p, want) != cudaSuccess) {
        (void)cudaGetLastError();
        return LLMSIM_OK;
    }
    c->att_ws = (float *)p;
    c->att_ws_bytes = want;
    *ws = c->att_ws;
    return LLMSIM_OK;
}

/* What attention on CUDA cannot take that dev.c lets through: a head_dim
 * beyond ATT_MAX_HD, more rows (sequences x tokens x heads) than an int
 * holds, an fp16 slot array that is not 2-byte aligned. */
static llmsim_status att_check(size_t seqs, size_t t, size_t heads, size_t hd, const gdev_kv *kv,
                               diag *e)
{
    static const char op[] = "gdev_attention";
    if (hd == 0 || hd > ATT_MAX_HD)
        return diag_set(e, LLMSIM_EFAIL, "%s: head_dim %zu (1 .. %d supported)", op, hd,
                        ATT_MAX_HD);
    const size_t rows = seqs * t * heads;
    if (seqs > (size_t)INT_MAX || t > (size_t)INT_MAX || heads > (size_t)INT_MAX ||
        rows / heads / t != seqs || rows > (size_t)INT_MAX)
        return diag_set(e, LLMSIM_EFAIL,
                        "%s: %zu sequences x %zu tokens x %zu heads: too many rows", op, seqs, t,
                        heads);
    if (((uintptr_t)kv->base | kv->slot_stride | kv->row_bytes | kv->block_stride) & 1)
        return diag_set(e, LLMSIM_EFAIL,
                        "%s: fp16 slot array not 2-byte aligned (base %p, stride %zu)", op,
                        (void *)kv->base, kv->slot_stride);
    return LLMSIM_OK;
}

/* The widest load every KV row allows: 8 fp16 values (16 bytes), 2 (4
 * bytes), else 1. */
static int att_vector_width(const gdev_kv *kv, size_t hd)
{
    const uintptr_t al = (uintptr_t)kv->base | kv->slot_stride | kv->row_bytes | kv->block_stride;
    return (hd % 8 == 0 && (al & 15) == 0) ? 8 : (hd % 2 == 0 && (al & 3) == 0) ? 2 : 1;
}

/* log2 of the lanes of a group: a row's nvec vectors rounded up to a power
 * of two, at most 32 lanes. */
static unsigned att_lanes_log2(size_t nvec)
{
    unsigned lp_log2 = 0;
    while ((1u << lp_log2) < nvec && lp_log2 < 5)
        lp_log2++;
    return lp_log2;
}

/* The context splits of each row: more than one when the rows alone would
 * leave most SMs idle, each of at least ATT_MIN_CHUNK positions. */
static unsigned att_splits(const cuda_dev *c, size_t rows, size_t ctx)
{
    unsigned splits = 1;
    const size_t target = 2 * (size_t)(c->sm_count > 0 ? c->sm_count : 1);
    if (rows < target && ctx >= 2 * (size_t)ATT_MIN_CHUNK) {
        size_t sp = (target + rows - 1) / rows;
        if (sp > ctx / ATT_MIN_CHUNK)
            sp = ctx / ATT_MIN_CHUNK;
        if (sp > ATT_MAX_SPLITS)
            sp = ATT_MAX_SPLITS;
        splits = (unsigned)sp;
    }
    return splits;
}

/* Launch gk_attention<vw> over rows x splits blocks, then (split) the
 * combine of the partial states in P.part into P.out. */
static llmsim_status att_launch(cuda_dev *c, const attn_params &P, int vw, size_t rows, diag *e)
{
    static const char op[] = "gdev_attention";
    llmsim_status st;
    const unsigned ng = (ATT_THREADS / 32) * (32u >> P.lp_log2);
    const size_t smem =
        ((size_t)ng * ((size_t)P.hd + 3) + 32) * sizeof(float); /* <= 5.8 KB (ng * hd <= 1024) */
    const unsigned blocks = (unsigned)(rows * P.splits); /* rows < target when split: no overflow */
    switch (vw) {
    case 8: gk_attention<8><<<blocks, ATT_THREADS, smem, COMPUTE(c)>>>(P); break;
    case 2: gk_attention<2><<<blocks, ATT_THREADS, smem, COMPUTE(c)>>>(P); break;
    default: gk_attention<1><<<blocks, ATT_THREADS, smem, COMPUTE(c)>>>(P); break;
    }
    if ((st = launched(e, op, "gk_attention")))
        return st;
    if (P.splits > 1) {
        gk_attn_combine<<<grid_1d(rows, 1), ATT_THREADS, 0, COMPUTE(c)>>>(P.part, rows, P.splits,
                                                                          P.hd, P.out);
        return launched(e, op, "gk_attn_combine");
    }
    return LLMSIM_OK;
}

static llmsim_status cu_attention(gdev *d, const float *q, size_t seqs, size_t t, long long start,
                                  const gdev_kv *kv, size_t heads, size_t kv_heads, size_t hd,
                                  size_t window, float *out, diag *e)
{
    cuda_dev *c = cdev(d);
    llmsim_status st;
    if (start < 0)
        return diag_set(e, LLMSIM_EFAIL, "gdev_attention: negative start %lld", start);
    if (heads == 0)
        return LLMSIM_OK; /* no query heads (dev.c lets 0 through: 0 % kv_heads == 0) */
    if ((st = att_check(seqs, t, heads, hd, kv, e)))
        return st;
    const size_t rows = seqs * t * heads, ctx = (size_t)start + t;
    /* the first query's first key: no row reads an earlier one */
    const size_t first = window && (size_t)start >= window ? (size_t)start - window + 1 : 0;
    const int vw = att_vector_width(kv, hd);
    unsigned splits = att_splits(c, rows, ctx - first);
    float *part = NULL;
    if (splits > 1) {
        if ((st = att_workspace(c, rows * splits * (hd + 2) * sizeof(float), &part, e)))
            return st;
        if (!part)
            splits = 1;
    }

    attn_params P;
    P.q = q;
    P.out = out;
    P.part = part;
    P.base = kv->base;
    P.where = kv_where_of(kv);
    P.row_bytes = kv->row_bytes;
    P.start = start;
    P.t = (unsigned)t;
    P.heads = (unsigned)heads;
    P.group = (unsigned)(heads / kv_heads);
    P.hd = (unsigned)hd;
    P.lp_log2 = att_lanes_log2(hd / (size_t)vw);
    P.splits = splits;
    P.window = window;
    P.first = first;
    P.chunk = (ctx - first + splits - 1) / splits;
    P.scale = (float)(1.0 / sqrt((double)hd)); /* as k_attention */
    return att_launch(c, P, vw, rows, e);
}

// ---- the table (gdev_ops, member by member in its order)

static const gdev_ops cuda_ops = {
    cu_close,           /* close */
    cu_describe,        /* describe */
    cu_mem_info,        /* mem_info */
    cu_dmalloc,         /* dmalloc */
    cu_dfree,           /* dfree */
    cu_host_malloc,     /* host_malloc */
    cu_host_free,       /* host_free */
    cu_copy,            /* copy */
    cu_copy2d,          /* copy2d */
    cu_event_new,       /* event_new */
    cu_event_free,      /* event_free */
    cu_record,          /* record */
    cu_stream_wait,     /* stream_wait */
    cu_event_wait,      /* event_wait */
    cu_stream_sync,     /* stream_sync */
    cu_sync,            /* sync */
    cu_event_elapsed_s, /* event_elapsed_s */
    cu_linear,          /* linear */
    cu_to_f32,          /* to_f32 */
    cu_to_f16,          /* to_f16 */
    cu_layernorm,       /* layernorm */
    cu_rmsnorm,         /* rmsnorm */
    cu_rotary,          /* rotary */
    cu_relu,            /* relu */
    cu_gelu,            /* gelu */
    cu_silu_mul,        /* silu_mul */
    cu_gelu_tanh_mul,   /* gelu_tanh_mul */
    cu_scale,           /* scale */
    cu_add_scalar,      /* add_scalar */
    cu_add,             /* add */
    cu_add_rows,        /* add_rows */
    cu_embed,           /* embed */
    cu_dequant_f16,     /* dequant_f16 */
    cu_kv_put,          /* kv_put */
    cu_kv_dequant,      /* kv_dequant */
    cu_attention,       /* attention */
};

// ---- the entry points

bool gdev_cuda_available(void)
{
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return n > 0;
}

/* The reason a GPU cannot be used that is the user's to fix (LLMSIM_EINPUT),
 * or NULL for a failure of ours or the system's. */
static const char *no_gpu_reason(cudaError_t err)
{
    switch (err) {
    case cudaErrorNoDevice:
        return "no CUDA GPU is visible (check CUDA_VISIBLE_DEVICES and the driver)";
    case cudaErrorInsufficientDriver:
        return "the NVIDIA driver is missing or older than this build's CUDA runtime needs";
    case cudaErrorStubLibrary:
        return "only the CUDA driver's stub library is installed (no NVIDIA driver)";
    case cudaErrorDevicesUnavailable:
        return "the GPU is busy or unavailable (exclusive compute mode?)";
    default: return NULL;
    }
}

/* Make device 0 current and read its properties; LLMSIM_EINPUT with the
 * reason when no GPU can be used (no_gpu_reason). */
static llmsim_status cuda_device_probe(cudaDeviceProp *prop, diag *e)
{
    static const char op[] = "gdev_open";
    int ndev = 0;
    const char *why;
    cudaError_t err = cudaGetDeviceCount(&ndev);
    if (err == cudaSuccess && ndev <= 0)
        err = cudaErrorNoDevice;
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        if ((why = no_gpu_reason(err)))
            return diag_set(e, LLMSIM_EINPUT, "%s: %s (cudaGetDeviceCount: %s)", op, why,
                            cudaGetErrorString(err));
        return cuda_fail(e, op, "cudaGetDeviceCount", err);
    }
    if ((err = cudaSetDevice(0)) != cudaSuccess ||
        (err = cudaGetDeviceProperties(prop, 0)) != cudaSuccess) {
        (void)cudaGetLastError();
        if ((why = no_gpu_reason(err)))
            return diag_set(e, LLMSIM_EINPUT, "%s: %s (%s)", op, why, cudaGetErrorString(err));
        return cuda_fail(e, op, "cudaSetDevice / cudaGetDeviceProperties", err);
    }
    return LLMSIM_OK;
}

/* c's four streams and its cuBLAS handle, bound to the compute stream in the
 * default math mode. A handle that could not be made stays NULL. */
static llmsim_status cuda_handles_create(cuda_dev *c, diag *e)
{
    static const char op[] = "gdev_open";
    cudaError_t err;
    cublasStatus_t berr;
    for (int i = 0; i < GDEV_NSTREAMS; i++)
        if ((err = cudaStreamCreateWithFlags(&c->st[i], cudaStreamNonBlocking)) != cudaSuccess) {
            c->st[i] = NULL;
            return cuda_fail(e, op, "cudaStreamCreateWithFlags", err);
        }
    if ((berr = cublasCreate(&c->blas)) != CUBLAS_STATUS_SUCCESS) {
        c->blas = NULL;
        return blas_fail(e, op, "cublasCreate", berr);
    }
    if ((berr = cublasSetStream(c->blas, c->st[GDEV_S_COMPUTE])) != CUBLAS_STATUS_SUCCESS)
        return blas_fail(e, op, "cublasSetStream", berr);
    if ((berr = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS)
        return blas_fail(e, op, "cublasSetMathMode", berr);
    return LLMSIM_OK;
}

/* Undo a failed open: the handles made so far, the base (when base_ok),
 * the state. */
static void cuda_open_undo(cuda_dev *c, bool base_ok)
{
    if (c->blas)
        (void)cublasDestroy(c->blas);
    for (int i = 0; i < GDEV_NSTREAMS; i++)
        if (c->st[i])
            (void)cudaStreamDestroy(c->st[i]);
    (void)cudaGetLastError();
    if (base_ok)
        gdev_base_fini(&c->base);
    free(c);
}

llmsim_status gdev_cuda_open(gdev **out, diag *e)
{
    static const char op[] = "gdev_open";
    cudaDeviceProp prop;
    *out = NULL;
    llmsim_status st = cuda_device_probe(&prop, e);
    if (st)
        return st;
    cuda_dev *c = (cuda_dev *)calloc(1, sizeof *c);
    if (!c)
        return diag_set(e, LLMSIM_EFAIL, "%s: out of memory", op);
    if (gdev_base_init(&c->base, &cuda_ops, GDEV_CUDA)) {
        st = diag_set(e, LLMSIM_EFAIL, "%s: cannot initialize the device's lock", op);
        cuda_open_undo(c, false);
        return st;
    }
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    c->major = prop.major;
    c->minor = prop.minor;
    c->sm_count = prop.multiProcessorCount;
    c->total_mem = prop.totalGlobalMem;
    if ((st = cuda_handles_create(c, e))) {
        cuda_open_undo(c, true);
        return st;
    }
    *out = &c->base;
    return LLMSIM_OK;
}
