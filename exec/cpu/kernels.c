/*
 * kernels — see kernels.h. Sections: dispatch; weight conversion;
 * group-quantized rows; the fused kernel of k_linear (scalar twin, then
 * AVX2); norms; rotary; attention; softmax; element-wise ops; embedding.
 *
 * Determinism: every pool chunk covers whole output elements (rows of W,
 * rows of x, heads), and the arithmetic of an element depends only on the
 * shapes, never on the chunk it falls in.
 */
#include "exec/cpu/kernels.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "exec/cpu/f16.h"
#include "exec/half.h"
#include "exec/quant.h"
#include "models/model.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define K_HAVE_AVX2 1
#include <immintrin.h>
#define K_AVX2_FN     __attribute__((target("avx2,fma,f16c")))
#define K_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) static inline
#else
#define K_HAVE_AVX2 0
#endif

/* The AVX2 twin of a chunk function where this CPU runs it (k_isa_get),
 * else the scalar one. */
#if K_HAVE_AVX2
#define K_PICK(scalar, avx2) (k_isa_get() == K_ISA_AVX2 ? (avx2) : (scalar))
#else
#define K_PICK(scalar, avx2) (scalar)
#endif

_Static_assert((int)K_WTYPE_F16 == (int)MODEL_DTYPE_FP16 &&
                   (int)K_WTYPE_BF16 == (int)MODEL_DTYPE_BF16 &&
                   (int)K_WTYPE_F32 == (int)MODEL_DTYPE_FP32,
               "k_wtype mirrors model_dtype");

/* Below this many element-operations a kernel runs on the caller: waking
 * the pool costs more than it saves. */
#define K_PAR_MIN_WORK 32768
/* Rows of W per chunk of the fused decode kernel (its register block). */
#define K_GEMV_ROW_BLOCK 4

size_t k_wtype_bytes(k_wtype wt)
{
    switch (wt) {
    case K_WTYPE_F16: return 2;
    case K_WTYPE_BF16: return 2;
    case K_WTYPE_F32: return 4;
    }
    return 0;
}

/* Run fn over [0, units) on the pool, or on the caller when the whole loop
 * is less than K_PAR_MIN_WORK element-operations (work_per_unit each). */
static void k_par(pool *p, size_t units, size_t work_per_unit,
                  void (*fn)(void *ctx, size_t begin, size_t end), void *ctx)
{
    if (units == 0)
        return;
    if (units * work_per_unit < K_PAR_MIN_WORK)
        fn(ctx, 0, units);
    else
        pool_for(p, units, fn, ctx);
}

// ---- dispatch

const char *const k_isa_names[2] = {"scalar", "avx2"};

static atomic_int k_isa_cur = -1; /* -1: not yet detected */

k_isa k_isa_detect(void)
{
#if K_HAVE_AVX2
    __builtin_cpu_init();
#if defined(__clang__)
    /* Clang's builtin knows no "f16c"; every x86 CPU with AVX2 and FMA
     * (Haswell and Piledriver on) has F16C */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return K_ISA_AVX2;
#else
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
        return K_ISA_AVX2;
#endif
#endif
    return K_ISA_SCALAR;
}

k_isa k_isa_get(void)
{
    int cur = atomic_load_explicit(&k_isa_cur, memory_order_relaxed);
    if (cur < 0) {
        cur = (int)k_isa_detect();
        atomic_store_explicit(&k_isa_cur, cur, memory_order_relaxed);
    }
    return (k_isa)cur;
}

k_isa k_isa_force(k_isa isa)
{
    k_isa best = k_isa_detect();
    k_isa use = isa < best ? isa : best;
    atomic_store_explicit(&k_isa_cur, (int)use, memory_order_relaxed);
    return use;
}

// ---- weight conversion (exact, so every ISA gives the same bits)

static void k_convert_scalar(const void *src, k_wtype wt, size_t off, size_t count, float *dst)
{
    switch (wt) {
    case K_WTYPE_F16: {
        const uint16_t *s = (const uint16_t *)src + off;
        for (size_t i = 0; i < count; i++)
            dst[i] = k_f16_to_f32(s[i]);
        break;
    }
    case K_WTYPE_BF16: {
        const uint16_t *s = (const uint16_t *)src + off;
        for (size_t i = 0; i < count; i++)
            dst[i] = k_bf16_to_f32(s[i]);
        break;
    }
    case K_WTYPE_F32: memcpy(dst, (const float *)src + off, count * sizeof *dst); break;
    }
}

#if K_HAVE_AVX2
/* 8 weights from element `idx` of w, as fp32. */
K_AVX2_INLINE __m256 k_load8_avx2(const void *w, k_wtype wt, size_t idx)
{
    switch (wt) {
    case K_WTYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + idx)));
    case K_WTYPE_BF16: {
        __m256i u =
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + idx)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
    }
    case K_WTYPE_F32: break;
    }
    return _mm256_loadu_ps((const float *)w + idx);
}

K_AVX2_FN static void k_convert_avx2(const void *src, k_wtype wt, size_t off, size_t count,
                                     float *dst)
{
    if (wt == K_WTYPE_F32) {
        memcpy(dst, (const float *)src + off, count * sizeof *dst);
        return;
    }
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        _mm256_storeu_ps(dst + i, k_load8_avx2(src, wt, off + i));
    k_convert_scalar(src, wt, off + i, count - i, dst + i);
}
#endif

/* dst[0 .. count) = src[off .. off + count) as fp32. */
static void k_convert(const void *src, k_wtype wt, size_t off, size_t count, float *dst)
{
#if K_HAVE_AVX2
    if (k_isa_get() == K_ISA_AVX2) {
        k_convert_avx2(src, wt, off, count, dst);
        return;
    }
#endif
    k_convert_scalar(src, wt, off, count, dst);
}

typedef struct k_convert_job {
    const void *src;
    k_wtype wt;
    size_t count;
    float *dst;
} k_convert_job;

#define K_CONVERT_CHUNK 16384 /* elements per pool unit */

static void k_convert_chunks(void *ctx, size_t b, size_t e)
{
    const k_convert_job *j = ctx;
    size_t lo = b * K_CONVERT_CHUNK, hi = e * K_CONVERT_CHUNK;
    if (hi > j->count)
        hi = j->count;
    k_convert(j->src, j->wt, lo, hi - lo, j->dst + lo);
}

void k_convert_to_f32(pool *p, const void *src, k_wtype wt, size_t count, float *dst)
{
    k_convert_job j = {src, wt, count, dst};
    k_par(p, (count + K_CONVERT_CHUNK - 1) / K_CONVERT_CHUNK, K_CONVERT_CHUNK, k_convert_chunks,
          &j);
}

typedef struct k_f16_job {
    const float *src;
    uint16_t *dst;
} k_f16_job;

static void k_to_f16_range(void *ctx, size_t b, size_t e)
{
    const k_f16_job *J = ctx;
    for (size_t i = b; i < e; i++)
        J->dst[i] = half_f32_to_f16(J->src[i]);
}

void k_convert_f32_to_f16(pool *p, const float *src, size_t count, uint16_t *dst)
{
    k_f16_job J = {src, dst};
    k_par(p, count, 1, k_to_f16_range, &J);
}

// ---- group-quantized weights and KV rows (exec/quant.h), rows over the pool

typedef struct k_dequant_job {
    const uint8_t *q;
    size_t cols, rb;
    int bits, group;
    uint16_t *out16;
    float *out32;
    const float *x;  /* k_quantize: the input */
    uint8_t *qout;   /* k_quantize: the output */
} k_dequant_job;

static void k_dequant_rows(void *ctx, size_t b, size_t e)
{
    const k_dequant_job *j = ctx;
    if (j->out16)
        quant_dequantize_rows_f16(j->q + b * j->rb, e - b, j->cols, j->bits, j->group, j->out16 + b * j->cols);
    else
        quant_dequantize_rows(j->q + b * j->rb, e - b, j->cols, j->bits, j->group, j->out32 + b * j->cols);
}

static void k_quant_rows(void *ctx, size_t b, size_t e)
{
    const k_dequant_job *j = ctx;
    quant_quantize_rows(j->x + b * j->cols, e - b, j->cols, j->bits, j->group, j->qout + b * j->rb);
}

void k_quantize(pool *p, const float *x, size_t rows, size_t cols, int bits, int group, uint8_t *out)
{
    k_dequant_job j = {.cols = cols, .rb = quant_row_bytes(cols, bits, group), .bits = bits, .group = group,
                       .x = x, .qout = out};
    k_par(p, rows, 4 * cols, k_quant_rows, &j);
}

void k_dequantize_f16(pool *p, const uint8_t *q, size_t rows, size_t cols, int bits, int group, uint16_t *out)
{
    k_dequant_job j = {.q = q, .cols = cols, .rb = quant_row_bytes(cols, bits, group), .bits = bits, .group = group,
                       .out16 = out};
    k_par(p, rows, cols, k_dequant_rows, &j);
}

void k_dequantize_f32(pool *p, const uint8_t *q, size_t rows, size_t cols, int bits, int group, float *out)
{
    k_dequant_job j = {.q = q, .cols = cols, .rb = quant_row_bytes(cols, bits, group), .bits = bits, .group = group,
                       .out32 = out};
    k_par(p, rows, cols, k_dequant_rows, &j);
}

// ---- k_linear, fused decode path: each row of W streamed once for all m rows of x
//
// Per output element y[i][j]: eight lane sums over k in steps of 8, lane l
// accumulating w[j][8q + l] * x[i][8q + l] by fused multiply-add; a ninth sum
// for the k % 8 tail; then ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)) + tail +
// bias. The scalar twin below does exactly this with fmaf.

typedef struct k_linear_job {
    const float *x; /* [m][k] */
    size_t m, k;
    const void *w; /* [n][k] */
    k_wtype wt;
    const float *bias;
    size_t n;
    float *y;       /* [m][n] */
} k_linear_job;

static inline float k_hsum8(const float a[8])
{
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

static inline float k_wload(const void *w, k_wtype wt, size_t idx)
{
    switch (wt) {
    case K_WTYPE_F16: return k_f16_to_f32(((const uint16_t *)w)[idx]);
    case K_WTYPE_BF16: return k_bf16_to_f32(((const uint16_t *)w)[idx]);
    case K_WTYPE_F32: break;
    }
    return ((const float *)w)[idx];
}

static void k_gemv_rows_scalar(void *ctx, size_t b, size_t e)
{
    const k_linear_job *J = ctx;
    const size_t k = J->k, k8 = k & ~(size_t)7;
    const size_t j1 = e * K_GEMV_ROW_BLOCK < J->n ? e * K_GEMV_ROW_BLOCK : J->n;
    for (size_t j = b * K_GEMV_ROW_BLOCK; j < j1; j++) {
        for (size_t i = 0; i < J->m; i++) {
            const float *xi = J->x + i * k;
            float a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tail = 0;
            for (size_t q = 0; q < k8; q += 8)
                for (int l = 0; l < 8; l++)
                    a[l] = fmaf(k_wload(J->w, J->wt, j * k + q + l), xi[q + l], a[l]);
            for (size_t q = k8; q < k; q++)
                tail = fmaf(k_wload(J->w, J->wt, j * k + q), xi[q], tail);
            float s = k_hsum8(a) + tail;
            if (J->bias)
                s += J->bias[j];
            J->y[i * J->n + j] = s;
        }
    }
}

#if K_HAVE_AVX2
/* R rows of W from row j, against MB rows of x from row i0; R and MB are
 * constants at every call, so the loops unroll into registers. */
K_AVX2_INLINE void k_gemv_block_avx2(const k_linear_job *J, k_wtype wt, size_t j, size_t i0,
                                     const int R, const int MB)
{
    const size_t k = J->k, k8 = k & ~(size_t)7;
    __m256 acc[K_GEMV_ROW_BLOCK][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int i = 0; i < MB; i++)
            acc[r][i] = _mm256_setzero_ps();
    for (size_t q = 0; q < k8; q += 8) {
        __m256 wv[K_GEMV_ROW_BLOCK];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            wv[r] = k_load8_avx2(J->w, wt, (j + (size_t)r) * k + q);
#pragma GCC unroll 4
        for (int i = 0; i < MB; i++) {
            __m256 xv = _mm256_loadu_ps(J->x + (i0 + (size_t)i) * k + q);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r][i] = _mm256_fmadd_ps(wv[r], xv, acc[r][i]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int i = 0; i < MB; i++) {
            const float *xi = J->x + (i0 + (size_t)i) * k;
            float a[8], tail = 0;
            _mm256_storeu_ps(a, acc[r][i]);
            for (size_t q = k8; q < k; q++)
                tail = fmaf(k_wload(J->w, wt, (j + (size_t)r) * k + q), xi[q], tail);
            float s = k_hsum8(a) + tail;
            if (J->bias)
                s += J->bias[j + (size_t)r];
            J->y[(i0 + (size_t)i) * J->n + j + (size_t)r] = s;
        }
    }
}

K_AVX2_INLINE void k_gemv_rows_avx2_wt(const k_linear_job *J, k_wtype wt, size_t b, size_t e)
{
    const size_t j1 = e * K_GEMV_ROW_BLOCK < J->n ? e * K_GEMV_ROW_BLOCK : J->n;
    for (size_t j = b * K_GEMV_ROW_BLOCK; j < j1;) {
        size_t i = 0;
        if (j + K_GEMV_ROW_BLOCK <= j1) {
            for (; i + 4 <= J->m; i += 4) {
                k_gemv_block_avx2(J, wt, j, i, 2, 4);
                k_gemv_block_avx2(J, wt, j + 2, i, 2, 4);
            }
            for (; i + 2 <= J->m; i += 2)
                k_gemv_block_avx2(J, wt, j, i, K_GEMV_ROW_BLOCK, 2);
            if (i < J->m)
                k_gemv_block_avx2(J, wt, j, i, K_GEMV_ROW_BLOCK, 1);
            j += K_GEMV_ROW_BLOCK;
        } else {
            for (; i + 2 <= J->m; i += 2)
                k_gemv_block_avx2(J, wt, j, i, 1, 2);
            if (i < J->m)
                k_gemv_block_avx2(J, wt, j, i, 1, 1);
            j += 1;
        }
    }
}

K_AVX2_FN static void k_gemv_rows_avx2(void *ctx, size_t b, size_t e)
{
    const k_linear_job *J = ctx;
    switch (J->wt) {
    case K_WTYPE_F16: k_gemv_rows_avx2_wt(J, K_WTYPE_F16, b, e); break;
    case K_WTYPE_BF16: k_gemv_rows_avx2_wt(J, K_WTYPE_BF16, b, e); break;
    case K_WTYPE_F32: k_gemv_rows_avx2_wt(J, K_WTYPE_F32, b, e); break;
    }
}
#endif

void k_linear(pool *p, const float *x, size_t m, size_t k, const void *w, k_wtype wt,
              const float *bias, size_t n, float *y)
{
    if (m == 0 || n == 0)
        return;
    assert(x && w && y && k > 0);
    void (*fn)(void *, size_t, size_t) = K_PICK(k_gemv_rows_scalar, k_gemv_rows_avx2);
    /* blocks of K_GEMV_MAX_ROWS rows of x, each streaming W once: every
     * element is the fused kernel's, so a row's bits do not depend on m */
    for (size_t r0 = 0; r0 < m; r0 += K_GEMV_MAX_ROWS) {
        const size_t rows = m - r0 < K_GEMV_MAX_ROWS ? m - r0 : K_GEMV_MAX_ROWS;
        k_linear_job J = {x + r0 * k, rows, k, w, wt, bias, n, y + r0 * n};
        k_par(p, (n + K_GEMV_ROW_BLOCK - 1) / K_GEMV_ROW_BLOCK, K_GEMV_ROW_BLOCK * k * rows, fn, &J);
    }
}

// ---- norms

typedef struct k_norm_job {
    const float *x; /* [m][h] */
    size_t h;
    const float *gamma, *beta;
    float eps;
    float *out;
} k_norm_job;

/* One row of LayerNorm: mean and biased variance in double. */
static void k_layernorm_row(const k_norm_job *J, const float *x, float *o)
{
    const size_t h = J->h;
    double s = 0, ss = 0;
    for (size_t i = 0; i < h; i++)
        s += x[i];
    const double mean = s / (double)h;
    for (size_t i = 0; i < h; i++)
        ss += (x[i] - mean) * (x[i] - mean);
    const float mean_f = (float)mean;
    const float inv = (float)(1.0 / sqrt(ss / (double)h + J->eps));
    for (size_t i = 0; i < h; i++)
        o[i] = (x[i] - mean_f) * inv * J->gamma[i] + J->beta[i];
}

/* One row of RMSNorm: the mean square in double. */
static void k_rmsnorm_row(const k_norm_job *J, const float *x, float *o)
{
    const size_t h = J->h;
    double ss = 0;
    for (size_t i = 0; i < h; i++)
        ss += (double)x[i] * x[i];
    const float inv = (float)(1.0 / sqrt(ss / (double)h + J->eps));
    for (size_t i = 0; i < h; i++)
        o[i] = x[i] * inv * J->gamma[i];
}

/* Rows [b, e) of the job: LayerNorm where it has a beta, else RMSNorm. */
static void k_norm_rows(void *ctx, size_t b, size_t e)
{
    const k_norm_job *J = ctx;
    for (size_t r = b; r < e; r++) {
        if (J->beta)
            k_layernorm_row(J, J->x + r * J->h, J->out + r * J->h);
        else
            k_rmsnorm_row(J, J->x + r * J->h, J->out + r * J->h);
    }
}

void k_layernorm(pool *p, const float *x, size_t m, size_t h, const float *gamma, const float *beta,
                 float eps, float *out)
{
    assert(beta); /* a NULL beta is RMSNorm's job */
    k_norm_job J = {x, h, gamma, beta, eps, out};
    k_par(p, m, 4 * h, k_norm_rows, &J);
}

void k_rmsnorm(pool *p, const float *x, size_t m, size_t h, const float *gamma, float eps,
               float *out)
{
    k_norm_job J = {x, h, gamma, NULL, eps, out};
    k_par(p, m, 3 * h, k_norm_rows, &J);
}

// ---- rotary

typedef struct k_rotary_job {
    float *x; /* [tokens][heads][hd] */
    const int64_t *pos;
    size_t heads, hd;
    double theta;
    const double *inv_freq; /* NULL: theta^(-2i/hd) */
} k_rotary_job;

static void k_rotary_tokens(void *ctx, size_t b, size_t e)
{
    const k_rotary_job *J = ctx;
    const size_t half = J->hd / 2;
    for (size_t t = b; t < e; t++) {
        float *xt = J->x + t * J->heads * J->hd;
        for (size_t i = 0; i < half; i++) {
            const double a = J->inv_freq ? (double)J->pos[t] * J->inv_freq[i]
                                         : (double)J->pos[t] / pow(J->theta, (double)(2 * i) / (double)J->hd);
            const float c = (float)cos(a), s = (float)sin(a);
            for (size_t hh = 0; hh < J->heads; hh++) {
                float *v = xt + hh * J->hd;
                const float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c - x1 * s;
                v[i + half] = x1 * c + x0 * s;
            }
        }
    }
}

void k_rotary(pool *p, float *x, const int64_t *positions, size_t tokens, size_t heads,
              size_t head_dim, double theta, const double *inv_freq)
{
    assert(head_dim % 2 == 0);
    k_rotary_job J = {x, positions, heads, head_dim, theta, inv_freq};
    k_par(p, tokens, heads * head_dim * 4, k_rotary_tokens, &J);
}

// ---- attention

typedef struct k_attn_job {
    const float *q; /* [t][heads][hd] */
    size_t t, start;
    const float *kc, *vc; /* [ctx][kv_heads][hd] */
    size_t heads, kv_heads, hd;
    float *out; /* [t][heads][hd] */
    float *scratch;
    float scale;
    size_t window; /* a query at p sees keys (p - window, p]; 0: all of [0, p] */
} k_attn_job;

/* The first key a query at position pos sees. */
static inline size_t k_attn_lo(const k_attn_job *J, size_t pos)
{
    return J->window && pos >= J->window ? pos - J->window + 1 : 0;
}

/* Dot product in 8 lanes (vectorizes without reassociation). */
static inline float k_dot(const float *a, const float *b, size_t n)
{
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tail = 0;
    size_t n8 = n & ~(size_t)7;
    for (size_t d = 0; d < n8; d += 8)
        for (int i = 0; i < 8; i++)
            l[i] += a[d + i] * b[d + i];
    for (size_t d = n8; d < n; d++)
        tail += a[d] * b[d];
    return k_hsum8(l) + tail;
}

/* o += a v, in 8 lanes. */
static inline void k_axpy(float *restrict o, float a, const float *restrict v, size_t n)
{
    size_t n8 = n & ~(size_t)7;
    for (size_t d = 0; d < n8; d += 8)
        for (int i = 0; i < 8; i++)
            o[d + i] += a * v[d + i];
    for (size_t d = n8; d < n; d++)
        o[d] += a * v[d];
}

// ---- exp and softmax rows, scalar and AVX2 with the same bits
//
// exp(x) as in Cephes' expf: x = n ln2 + r, |r| <= ln2/2, a degree-5
// polynomial for e^r, times 2^n built in the exponent bits; about 1 ulp on
// [-87, 88], 0 below -87.7 (softmax only needs x <= 0). Every step is one
// rounded operation (no fused multiply-add, one operation per statement),
// and the AVX2 version does the same steps, so both give the same bits.

#define K_EXP_HI    88.0f
#define K_EXP_LO    -88.0f
#define K_EXP_LOG2E 1.44269504088896341f
#define K_EXP_C1    0.693359375f
#define K_EXP_C2    -2.12194440e-4f
#define K_EXP_P0    1.9875691500e-4f
#define K_EXP_P1    1.3981999507e-3f
#define K_EXP_P2    8.3334519073e-3f
#define K_EXP_P3    4.1665795894e-2f
#define K_EXP_P4    1.6666665459e-1f
#define K_EXP_P5    5.0000001201e-1f

static inline float k_exp_scalar(float x)
{
    x = x < K_EXP_HI ? x : K_EXP_HI;
    x = x > K_EXP_LO ? x : K_EXP_LO;
    float fx = x * K_EXP_LOG2E;
    fx = fx + 0.5f;
    fx = floorf(fx);
    float t = fx * K_EXP_C1;
    x = x - t;
    t = fx * K_EXP_C2;
    x = x - t;
    const float z = x * x;
    float y = K_EXP_P0 * x;
    y = y + K_EXP_P1;
    y = y * x;
    y = y + K_EXP_P2;
    y = y * x;
    y = y + K_EXP_P3;
    y = y * x;
    y = y + K_EXP_P4;
    y = y * x;
    y = y + K_EXP_P5;
    y = y * z;
    y = y + x;
    y = y + 1.0f;
    const int32_t n = (int32_t)fx;
    return y * k_bits_to_f32((uint32_t)(n + 127) << 23);
}

/* Softmax numerators of s[0 .. valid) in place (max subtracted); returns
 * their sum (8 lanes, then k_hsum8). */
static float k_softmax_row_scalar(float *s, size_t valid)
{
    const size_t v8 = valid & ~(size_t)7;
    float mx = s[0];
    for (size_t j = 1; j < valid; j++)
        mx = s[j] > mx ? s[j] : mx;
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tail = 0;
    for (size_t j = 0; j < v8; j += 8)
        for (int i = 0; i < 8; i++) {
            s[j + i] = k_exp_scalar(s[j + i] - mx);
            l[i] += s[j + i];
        }
    for (size_t j = v8; j < valid; j++) {
        s[j] = k_exp_scalar(s[j] - mx);
        tail += s[j];
    }
    return k_hsum8(l) + tail;
}

#if K_HAVE_AVX2
#define K_AVX2_NOFMA __attribute__((target("avx2")))

K_AVX2_NOFMA static inline __m256 k_exp8_avx2(__m256 x)
{
    x = _mm256_min_ps(x, _mm256_set1_ps(K_EXP_HI));
    x = _mm256_max_ps(x, _mm256_set1_ps(K_EXP_LO));
    __m256 fx = _mm256_mul_ps(x, _mm256_set1_ps(K_EXP_LOG2E));
    fx = _mm256_add_ps(fx, _mm256_set1_ps(0.5f));
    fx = _mm256_floor_ps(fx);
    x = _mm256_sub_ps(x, _mm256_mul_ps(fx, _mm256_set1_ps(K_EXP_C1)));
    x = _mm256_sub_ps(x, _mm256_mul_ps(fx, _mm256_set1_ps(K_EXP_C2)));
    const __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_mul_ps(_mm256_set1_ps(K_EXP_P0), x);
    y = _mm256_add_ps(y, _mm256_set1_ps(K_EXP_P1));
    y = _mm256_mul_ps(y, x);
    y = _mm256_add_ps(y, _mm256_set1_ps(K_EXP_P2));
    y = _mm256_mul_ps(y, x);
    y = _mm256_add_ps(y, _mm256_set1_ps(K_EXP_P3));
    y = _mm256_mul_ps(y, x);
    y = _mm256_add_ps(y, _mm256_set1_ps(K_EXP_P4));
    y = _mm256_mul_ps(y, x);
    y = _mm256_add_ps(y, _mm256_set1_ps(K_EXP_P5));
    y = _mm256_mul_ps(y, z);
    y = _mm256_add_ps(y, x);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    __m256i n = _mm256_cvttps_epi32(fx);
    n = _mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(n));
}

K_AVX2_NOFMA static float k_softmax_row_avx2(float *s, size_t valid)
{
    const size_t v8 = valid & ~(size_t)7;
    float mx = s[0]; /* the maximum is exact in any order */
    if (v8) {
        __m256 mv = _mm256_loadu_ps(s);
        for (size_t j = 8; j < v8; j += 8)
            mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + j));
        float l8[8];
        _mm256_storeu_ps(l8, mv);
        for (int i = 0; i < 8; i++)
            mx = l8[i] > mx ? l8[i] : mx;
    }
    for (size_t j = v8; j < valid; j++)
        mx = s[j] > mx ? s[j] : mx;
    const __m256 m = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    for (size_t j = 0; j < v8; j += 8) {
        __m256 e = k_exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
        _mm256_storeu_ps(s + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float l[8], tail = 0;
    _mm256_storeu_ps(l, acc);
    for (size_t j = v8; j < valid; j++) {
        s[j] = k_exp_scalar(s[j] - mx);
        tail += s[j];
    }
    return k_hsum8(l) + tail;
}
#endif

static float k_softmax_row(float *s, size_t valid)
{
#if K_HAVE_AVX2
    if (k_isa_get() == K_ISA_AVX2)
        return k_softmax_row_avx2(s, valid);
#endif
    return k_softmax_row_scalar(s, valid);
}

/* The streaming path reads, per key, the K (V) rows of a chunk's heads: one
 * segment of the cache row, a whole cache row (kv_heads * hd floats) apart
 * from the next. Segments shorter than K_ATTN_PREFETCH_BYTES are prefetched
 * K_ATTN_PREFETCH_ROWS keys ahead (the hardware prefetcher does not follow
 * them across pages); longer ones it follows on its own, and software
 * prefetches would only fill the line-fill buffers. */
#define K_ATTN_PREFETCH_ROWS  4
#define K_ATTN_PREFETCH_BYTES 4096

static inline void k_prefetch(const float *p, size_t floats)
{
    for (size_t i = 0; i < floats; i += 64 / sizeof *p)
        __builtin_prefetch(p + i);
}

/* Offset in q and out of streaming row rr of KV head kvh: token rr / g,
 * query head kvh * g + rr % g. */
static inline size_t k_attn_row(const k_attn_job *J, size_t g, size_t kvh, size_t rr)
{
    return ((rr / g) * J->heads + kvh * g + rr % g) * J->hd;
}

/* Streaming path (t <= K_ATTN_STREAM_MAX_T): a unit is one KV head with the
 * t * group query rows that read it (row rr: token rr / g, query head
 * kvh * g + rr % g); a chunk walks the cache once, key by key, over all its
 * heads, so K and V are each read once and in address order. The body is
 * compiled twice, for the baseline and for AVX2 (no FMA: the same
 * operations in the same order, so the same bits). */
__attribute__((always_inline)) static inline void k_attn_stream_body(void *ctx, size_t b, size_t e)
{
    const k_attn_job *J = ctx;
    const size_t g = J->heads / J->kv_heads, ctxn = J->start + J->t, hd = J->hd;
    const size_t rows = J->t * g, kv_stride = J->kv_heads * hd;
    const bool pf = (e - b) * hd * sizeof(float) < K_ATTN_PREFETCH_BYTES;
    const size_t j0 = k_attn_lo(J, J->start); /* the tile's first row sees the earliest key */
    for (size_t j = j0; j < ctxn; j++) {
        const float *kj = J->kc + j * kv_stride;
        if (pf && j + K_ATTN_PREFETCH_ROWS < ctxn)
            k_prefetch(kj + K_ATTN_PREFETCH_ROWS * kv_stride + b * hd, (e - b) * hd);
        for (size_t kvh = b; kvh < e; kvh++) {
            float *S = J->scratch + kvh * rows * ctxn; /* [rows][ctxn] */
            for (size_t rr = 0; rr < rows; rr++) {
                const size_t pos = J->start + rr / g;
                if (j <= pos && j >= k_attn_lo(J, pos)) /* causal, in the window */
                    S[rr * ctxn + j] =
                        k_dot(J->q + k_attn_row(J, g, kvh, rr), kj + kvh * hd, hd) * J->scale;
            }
        }
    }
    for (size_t kvh = b; kvh < e; kvh++) {
        float *S = J->scratch + kvh * rows * ctxn;
        for (size_t rr = 0; rr < rows; rr++) { /* normalize P in place */
            const size_t pos = J->start + rr / g, lo = k_attn_lo(J, pos), valid = pos + 1;
            float *s = S + rr * ctxn;
            const float inv = 1.0f / k_softmax_row(s + lo, valid - lo);
            for (size_t j = lo; j < valid; j++)
                s[j] *= inv;
            memset(J->out + k_attn_row(J, g, kvh, rr), 0, hd * sizeof(float));
        }
    }
    for (size_t j = j0; j < ctxn; j++) {
        const float *vj = J->vc + j * kv_stride;
        if (pf && j + K_ATTN_PREFETCH_ROWS < ctxn)
            k_prefetch(vj + K_ATTN_PREFETCH_ROWS * kv_stride + b * hd, (e - b) * hd);
        for (size_t kvh = b; kvh < e; kvh++) {
            const float *S = J->scratch + kvh * rows * ctxn;
            for (size_t rr = 0; rr < rows; rr++) {
                const size_t pos = J->start + rr / g;
                if (j <= pos && j >= k_attn_lo(J, pos))
                    k_axpy(J->out + k_attn_row(J, g, kvh, rr), S[rr * ctxn + j], vj + kvh * hd, hd);
            }
        }
    }
}

static void k_attn_stream(void *ctx, size_t b, size_t e)
{
    k_attn_stream_body(ctx, b, e);
}

#if K_HAVE_AVX2
__attribute__((target("avx2"))) static void k_attn_stream_avx2(void *ctx, size_t b, size_t e)
{
    k_attn_stream_body(ctx, b, e);
}
#endif

size_t k_attention_scratch_floats(size_t t, size_t start, size_t heads)
{
    const size_t tile = t < K_ATTN_STREAM_MAX_T ? t : K_ATTN_STREAM_MAX_T;
    return heads * tile * (start + t);
}

/* Tiles of K_ATTN_STREAM_MAX_T query rows through the streaming path, each
 * seeing the keys up to its last row: a row's operations are those of the
 * streaming path for that row alone, whatever t. J: the whole call. */
static void k_attn_tiles(pool *p, const k_attn_job *whole)
{
    void (*fn)(void *, size_t, size_t) = K_PICK(k_attn_stream, k_attn_stream_avx2);
    const size_t qrow = whole->heads * whole->hd;
    for (size_t t0 = 0; t0 < whole->t; t0 += K_ATTN_STREAM_MAX_T) {
        k_attn_job J = *whole;
        J.t = whole->t - t0 < K_ATTN_STREAM_MAX_T ? whole->t - t0 : K_ATTN_STREAM_MAX_T;
        J.start = whole->start + t0;
        J.q = whole->q + t0 * qrow;
        J.out = whole->out + t0 * qrow;
        k_par(p, J.kv_heads, (J.heads / J.kv_heads) * J.t * (J.start + J.t) * J.hd * 2, fn, &J);
    }
}

void k_attention(pool *p, const float *q, size_t t, size_t start, const float *k_cache,
                 const float *v_cache, size_t heads, size_t kv_heads, size_t hd, size_t window,
                 float *out, float *scratch)
{
    if (t == 0)
        return;
    assert(heads > 0 && kv_heads > 0 && heads % kv_heads == 0 && hd > 0 && scratch);
    k_attn_job J = {.q = q, .t = t, .start = start, .kc = k_cache, .vc = v_cache,
                    .heads = heads, .kv_heads = kv_heads, .hd = hd, .out = out,
                    .scratch = scratch, .scale = (float)(1.0 / sqrt((double)hd)), .window = window};
    k_attn_tiles(p, &J);
}

// ---- element-wise

/* The element-wise operations, one loop each (the switch is outside it). */
typedef enum k_elem_op { K_OP_RELU, K_OP_GELU, K_OP_SILU_MUL, K_OP_GELU_TANH_MUL, K_OP_ADD } k_elem_op;

typedef struct k_elem_job {
    k_elem_op op;
    const float *a, *b;
    float *out;
    size_t cols, brows; /* k_add_rows: [rows][cols], b's rows repeating every brows */
} k_elem_job;

static void k_elem_range(void *ctx, size_t b, size_t e)
{
    const k_elem_job *J = ctx;
    switch (J->op) {
    case K_OP_RELU:
        for (size_t i = b; i < e; i++)
            J->out[i] = J->a[i] > 0 ? J->a[i] : 0;
        break;
    case K_OP_GELU:
        for (size_t i = b; i < e; i++) {
            const float v = J->a[i];
            J->out[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
        }
        break;
    case K_OP_SILU_MUL:
        for (size_t i = b; i < e; i++) {
            const float g = J->a[i];
            J->out[i] = g / (1.0f + expf(-g)) * J->b[i];
        }
        break;
    case K_OP_GELU_TANH_MUL: /* transformers' gelu_pytorch_tanh */
        for (size_t i = b; i < e; i++) {
            const float g = J->a[i];
            const float inner = 0.79788456080286536f * (g + 0.044715f * g * g * g);
            J->out[i] = 0.5f * g * (1.0f + tanhf(inner)) * J->b[i];
        }
        break;
    case K_OP_ADD:
        for (size_t i = b; i < e; i++)
            J->out[i] = J->a[i] + J->b[i];
        break;
    }
}

/* out = op(a, b) over n elements; relu and add cost one element-operation
 * each, the transcendental gelu and silu 16. */
static void k_elem(pool *p, k_elem_op op, const float *a, const float *b, size_t n, float *out)
{
    k_elem_job J = {.op = op, .a = a, .b = b, .out = out};
    k_par(p, n, op == K_OP_RELU || op == K_OP_ADD ? 1 : 16, k_elem_range, &J);
}

void k_relu(pool *p, const float *x, size_t n, float *out) { k_elem(p, K_OP_RELU, x, NULL, n, out); }

void k_gelu(pool *p, const float *x, size_t n, float *out) { k_elem(p, K_OP_GELU, x, NULL, n, out); }

void k_gelu_tanh_mul(pool *p, const float *gate, const float *up, size_t n, float *out)
{
    k_elem(p, K_OP_GELU_TANH_MUL, gate, up, n, out);
}

void k_silu_mul(pool *p, const float *gate, const float *up, size_t n, float *out)
{
    k_elem(p, K_OP_SILU_MUL, gate, up, n, out);
}

void k_add(pool *p, const float *a, const float *b, size_t n, float *out) { k_elem(p, K_OP_ADD, a, b, n, out); }

static void k_add_rows_range(void *ctx, size_t b, size_t e)
{
    const k_elem_job *J = ctx;
    for (size_t r = b; r < e; r++) {
        const float *ar = J->a + r * J->cols, *br = J->b + (r % J->brows) * J->cols;
        float *o = J->out + r * J->cols;
        for (size_t c = 0; c < J->cols; c++)
            o[c] = ar[c] + br[c];
    }
}

void k_add_rows(pool *p, const float *a, size_t rows, size_t cols, const float *b, size_t brows,
                float *out)
{
    k_elem_job J = {.op = K_OP_ADD, .a = a, .b = b, .out = out, .cols = cols, .brows = brows};
    k_par(p, rows, cols, k_add_rows_range, &J);
}

// ---- embedding

typedef struct k_embed_job {
    const int32_t *tokens;
    const void *table;
    k_wtype wt;
    size_t vocab, h;
    float *out;
} k_embed_job;

static void k_embed_rows(void *ctx, size_t b, size_t e)
{
    const k_embed_job *J = ctx;
    for (size_t i = b; i < e; i++) {
        assert(J->tokens[i] >= 0 && (size_t)J->tokens[i] < J->vocab);
        k_convert(J->table, J->wt, (size_t)J->tokens[i] * J->h, J->h, J->out + i * J->h);
    }
}

void k_embed(pool *p, const int32_t *tokens, size_t t, const void *table, k_wtype wt, size_t vocab,
             size_t h, float *out)
{
    k_embed_job J = {tokens, table, wt, vocab, h, out};
    k_par(p, t, h, k_embed_rows, &J);
}
