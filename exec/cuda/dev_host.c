/*
 * dev_host — GDEV_HOST, the emulated device of exec/cuda/dev.h: "device"
 * memory is host memory, every operation runs to completion on the calling
 * thread when it is issued, and the kernels are the CPU reference kernels
 * (exec/cpu/kernels.h) on a pool of the device's own.
 *
 * What follows from that:
 *  - streams exist only as names: work is complete when its call returns, so
 *    stream_wait, event_wait, stream_sync and sync have nothing to wait for
 *    (they check their arguments and return);
 *  - an event is the clock (llmsim_now_s) of its last record; it is recorded
 *    by one thread and read by others, so each event has a mutex;
 *  - copies are memcpy and touch no shared state: any thread may issue them;
 *  - kernels are issued by one thread at a time (dev.h: the compute stream's
 *    work comes from one thread), so they share one grow-only work buffer in
 *    the state: the rounded copy of x and k_linear's fp32 panel, the gathered
 *    K and V of attention and its scores, rotary's positions.
 *
 * Numerics are those dev.h states, by construction: gdev_linear rounds x to
 * the weight's type and calls k_linear; the other kernels call the k_*
 * kernels, or the quant_* and half_* functions the CUDA kernels are held to
 * bit for bit (tests/unit/test_gdev.c checks both implementations).
 */
#include "exec/cuda/dev_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/pool.h"
#include "exec/half.h"
#include "exec/offload.h"
#include "exec/quant.h"
#include "common/quant_layout.h"

_Static_assert((int)GDEV_F16 == (int)K_WTYPE_F16 && (int)GDEV_BF16 == (int)K_WTYPE_BF16 &&
                   (int)GDEV_F32 == (int)K_WTYPE_F32,
               "gdev_dtype converts to k_wtype by a cast");

typedef struct host_dev {
    gdev base;  /* first: dev.c's gdev * is a host_dev * */
    pool *pool; /* the kernels' threads */
    void *work; /* grow-only scratch of the kernels (one kernel at a time) */
    size_t work_bytes;
} host_dev;

struct gdev_event {
    pthread_mutex_t mu; /* recorded by one thread, read by others */
    double t;           /* llmsim_now_s() of the last record */
    bool recorded;
};

static host_dev *host_of(gdev *d)
{
    return (host_dev *)d;
}

/* ---- small helpers */

/* The work buffer, at least `bytes` long (its contents are not kept). */
static void *work_get(host_dev *st, size_t bytes, const char *fn, diag *e)
{
    if (bytes <= st->work_bytes && st->work)
        return st->work;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        diag_set(e, LLMSIM_EFAIL, "%s: out of memory (%zu bytes of host scratch)", fn, bytes);
        return NULL;
    }
    free(st->work);
    st->work = p;
    st->work_bytes = bytes;
    return p;
}

/* Bytes rounded up to a multiple of 64, for carving the work buffer. */
static size_t carve(size_t bytes)
{
    return (bytes + 63) / 64 * 64;
}

static llmsim_status check_stream(gdev_stream s, const char *fn, diag *e)
{
    if ((unsigned)s >= GDEV_NSTREAMS)
        return diag_set(e, LLMSIM_EFAIL, "%s: no stream %d", fn, (int)s);
    return LLMSIM_OK;
}

static llmsim_status check_dtype(gdev_dtype dt, const char *fn, diag *e)
{
    if (dt != GDEV_F16 && dt != GDEV_BF16 && dt != GDEV_F32)
        return diag_set(e, LLMSIM_EFAIL, "%s: no dtype %d", fn, (int)dt);
    return LLMSIM_OK;
}

static llmsim_status check_dir(gdev_dir dir, const char *fn, diag *e)
{
    if (dir != GDEV_H2D && dir != GDEV_D2H && dir != GDEV_D2D)
        return diag_set(e, LLMSIM_EFAIL, "%s: no copy direction %d", fn, (int)dir);
    return LLMSIM_OK;
}

/* Row (p, s, kv) of a slot array. */
static uint8_t *kv_row(const gdev_kv *kv, size_t p, size_t s, int which)
{
    return kv->base + gdev_kv_slot_off(kv, p) + (2 * s + (size_t)which) * kv->row_bytes;
}

/* ---- the device */

static void host_close(gdev *d)
{
    host_dev *st = host_of(d);
    pool_destroy(st->pool);
    free(st->work);
    free(st);
}

static void host_describe(const gdev *d, char *buf, size_t len)
{
    const host_dev *st = (const host_dev *)d;
    int n = pool_nthreads(st->pool);
    snprintf(buf, len, "host (emulated device, %d thread%s)", n, n == 1 ? "" : "s");
}

static void host_mem_info(const gdev *d, double *total, double *free_bytes)
{
    (void)d;
    *total = 0;
    *free_bytes = 0;
}

/* ---- memory: aligned and zeroed, "device" and "pinned" alike */

static void *host_dmalloc(gdev *d, size_t bytes)
{
    (void)d;
    return offload_alloc(bytes);
}

static void host_dfree(gdev *d, void *p)
{
    (void)d;
    free(p);
}

/* ---- copies: synchronous */

static llmsim_status host_copy(gdev *d, gdev_stream s, gdev_dir dir, void *dst, const void *src,
                               size_t bytes, diag *e)
{
    (void)d;
    llmsim_status st;
    if ((st = check_stream(s, "gdev_copy", e)) || (st = check_dir(dir, "gdev_copy", e)))
        return st;
    memmove(dst, src, bytes); /* a D2D copy within one buffer stays defined */
    return LLMSIM_OK;
}

static llmsim_status host_copy2d(gdev *d, gdev_stream s, gdev_dir dir, void *dst, size_t dpitch,
                                 const void *src, size_t spitch, size_t width, size_t height,
                                 diag *e)
{
    (void)d;
    llmsim_status st;
    if ((st = check_stream(s, "gdev_copy2d", e)) || (st = check_dir(dir, "gdev_copy2d", e)))
        return st;
    uint8_t *to = dst;
    const uint8_t *from = src;
    for (size_t r = 0; r < height; r++)
        memcpy(to + r * dpitch, from + r * spitch, width);
    return LLMSIM_OK;
}

/* ---- events: the clock of the last record */

static llmsim_status host_event_new(gdev *d, gdev_event **ev, diag *e)
{
    (void)d;
    *ev = NULL;
    gdev_event *x = calloc(1, sizeof *x);
    if (!x)
        return diag_set(e, LLMSIM_EFAIL, "gdev_event_new: out of memory");
    if (pthread_mutex_init(&x->mu, NULL)) {
        free(x);
        return diag_set(e, LLMSIM_EFAIL, "gdev_event_new: cannot create a mutex");
    }
    *ev = x;
    return LLMSIM_OK;
}

static void host_event_free(gdev *d, gdev_event *ev)
{
    (void)d;
    pthread_mutex_destroy(&ev->mu);
    free(ev);
}

static llmsim_status host_record(gdev *d, gdev_stream s, gdev_event *ev, diag *e)
{
    (void)d;
    llmsim_status st = check_stream(s, "gdev_record", e);
    if (st)
        return st;
    double now = llmsim_now_s(); /* the stream's earlier work is complete already */
    pthread_mutex_lock(&ev->mu);
    ev->t = now;
    ev->recorded = true;
    pthread_mutex_unlock(&ev->mu);
    return LLMSIM_OK;
}

static llmsim_status host_stream_wait(gdev *d, gdev_stream s, gdev_event *ev, diag *e)
{
    (void)d;
    (void)ev;
    return check_stream(s, "gdev_stream_wait", e);
}

static llmsim_status host_event_wait(gdev *d, gdev_event *ev, diag *e)
{
    (void)d;
    (void)ev;
    (void)e;
    return LLMSIM_OK;
}

static llmsim_status host_stream_sync(gdev *d, gdev_stream s, diag *e)
{
    (void)d;
    return check_stream(s, "gdev_stream_sync", e);
}

static llmsim_status host_sync(gdev *d, diag *e)
{
    (void)d;
    (void)e;
    return LLMSIM_OK;
}

/* The time of ev's last record; false when it was never recorded. */
static bool event_time(gdev_event *ev, double *t)
{
    pthread_mutex_lock(&ev->mu);
    bool ok = ev->recorded;
    *t = ev->t;
    pthread_mutex_unlock(&ev->mu);
    return ok;
}

static llmsim_status host_event_elapsed_s(gdev *d, gdev_event *from, gdev_event *to, double *s,
                                          diag *e)
{
    (void)d;
    double t0, t1;
    if (!event_time(from, &t0) || !event_time(to, &t1))
        return diag_set(e, LLMSIM_EFAIL, "gdev_event_elapsed_s: an event that was never recorded");
    *s = t1 - t0;
    return LLMSIM_OK;
}

/* ---- linear: x rounded to the weight's type, then k_linear */

typedef struct round_job {
    const float *x;
    float *xr;
    gdev_dtype wt;
} round_job;

static void round_range(void *ctx, size_t b, size_t e)
{
    const round_job *J = ctx;
    if (J->wt == GDEV_F16)
        for (size_t i = b; i < e; i++)
            J->xr[i] = half_f16_to_f32(half_f32_to_f16(J->x[i]));
    else
        for (size_t i = b; i < e; i++)
            J->xr[i] = half_bf16_to_f32(half_f32_to_bf16(J->x[i]));
}

static llmsim_status host_linear(gdev *d, const float *x, size_t m, size_t k, const void *w,
                                 gdev_dtype wt, const float *bias, size_t n, float *y,
                                 void *scratch, diag *e)
{
    host_dev *st = host_of(d);
    (void)scratch; /* m k 2 bytes: too small for the fp32 copy of x */
    llmsim_status rc = check_dtype(wt, "gdev_linear", e);
    if (rc)
        return rc;
    if (!k) { /* an empty sum: y is the bias */
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                y[i * n + j] = bias ? bias[j] : 0.0f;
        return LLMSIM_OK;
    }
    const size_t xr_bytes = wt == GDEV_F32 ? 0 : carve(m * k * sizeof(float));
    uint8_t *buf = xr_bytes ? work_get(st, xr_bytes, "gdev_linear", e) : NULL;
    if (xr_bytes && !buf)
        return LLMSIM_EFAIL;
    const float *xin = x;
    if (wt != GDEV_F32) {
        round_job J = {x, (float *)buf, wt};
        pool_for(st->pool, m * k, round_range, &J);
        xin = J.xr;
    }
    k_linear(st->pool, xin, m, k, w, (k_wtype)wt, bias, n, y);
    return LLMSIM_OK;
}

/* ---- conversions */

static llmsim_status host_to_f32(gdev *d, const void *src, gdev_dtype dt, size_t n, float *dst,
                                 diag *e)
{
    llmsim_status rc = check_dtype(dt, "gdev_to_f32", e);
    if (rc)
        return rc;
    k_convert_to_f32(host_of(d)->pool, src, (k_wtype)dt, n, dst);
    return LLMSIM_OK;
}

static llmsim_status host_to_f16(gdev *d, const float *src, size_t n, uint16_t *dst, diag *e)
{
    (void)e;
    k_convert_f32_to_f16(host_of(d)->pool, src, n, dst);
    return LLMSIM_OK;
}

/* ---- norms, rotary, element-wise: the k_* kernels */

static llmsim_status host_layernorm(gdev *d, const float *x, size_t m, size_t h, const float *gamma,
                                    const float *beta, float eps, float *out, diag *e)
{
    (void)e;
    k_layernorm(host_of(d)->pool, x, m, h, gamma, beta, eps, out);
    return LLMSIM_OK;
}

static llmsim_status host_rmsnorm(gdev *d, const float *x, size_t m, size_t h, const float *gamma,
                                  float eps, float *out, diag *e)
{
    (void)e;
    k_rmsnorm(host_of(d)->pool, x, m, h, gamma, eps, out);
    return LLMSIM_OK;
}

static llmsim_status host_rotary(gdev *d, float *x, size_t seqs, size_t t, long long start,
                                 size_t heads, size_t hd, double theta, const double *inv_freq,
                                 diag *e)
{
    host_dev *st = host_of(d);
    int64_t *pos = work_get(st, t * sizeof *pos, "gdev_rotary", e);
    if (!pos)
        return LLMSIM_EFAIL;
    for (size_t a = 0; a < t; a++)
        pos[a] = (int64_t)start + (int64_t)a;
    for (size_t s = 0; s < seqs; s++) /* the same positions in every sequence */
        k_rotary(st->pool, x + s * t * heads * hd, pos, t, heads, hd, theta, inv_freq);
    return LLMSIM_OK;
}

static llmsim_status host_relu(gdev *d, const float *x, size_t n, float *out, diag *e)
{
    (void)e;
    k_relu(host_of(d)->pool, x, n, out);
    return LLMSIM_OK;
}

static llmsim_status host_gelu(gdev *d, const float *x, size_t n, float *out, diag *e)
{
    (void)e;
    k_gelu(host_of(d)->pool, x, n, out);
    return LLMSIM_OK;
}

static llmsim_status host_silu_mul(gdev *d, const float *gate, const float *up, size_t n,
                                   float *out, diag *e)
{
    (void)e;
    k_silu_mul(host_of(d)->pool, gate, up, n, out);
    return LLMSIM_OK;
}

static llmsim_status host_gelu_tanh_mul(gdev *d, const float *gate, const float *up, size_t n,
                                        float *out, diag *e)
{
    (void)e;
    k_gelu_tanh_mul(host_of(d)->pool, gate, up, n, out);
    return LLMSIM_OK;
}

/* x * a (add 0) or x + a (add 1), one fp32 rounding each. */
typedef struct scalar_job {
    const float *x;
    float a;
    bool add;
    float *out;
} scalar_job;

static void scalar_range(void *ctx, size_t b, size_t e)
{
    const scalar_job *J = ctx;
    if (J->add)
        for (size_t i = b; i < e; i++)
            J->out[i] = J->x[i] + J->a;
    else
        for (size_t i = b; i < e; i++)
            J->out[i] = J->x[i] * J->a;
}

/* Fewer values than this go on the calling thread (norm weights, a row). */
#define HOST_SCALAR_PAR_MIN 65536

static void host_scalar(host_dev *st, const float *x, size_t n, float a, bool add, float *out)
{
    scalar_job J = {x, a, add, out};
    if (n < HOST_SCALAR_PAR_MIN)
        scalar_range(&J, 0, n);
    else
        pool_for(st->pool, n, scalar_range, &J);
}

static llmsim_status host_scale(gdev *d, const float *x, size_t n, float s, float *out, diag *e)
{
    (void)e;
    host_scalar(host_of(d), x, n, s, false, out);
    return LLMSIM_OK;
}

static llmsim_status host_add_scalar(gdev *d, const float *x, size_t n, float c, float *out,
                                     diag *e)
{
    (void)e;
    host_scalar(host_of(d), x, n, c, true, out);
    return LLMSIM_OK;
}

static llmsim_status host_add(gdev *d, const float *a, const float *b, size_t n, float *out,
                              diag *e)
{
    (void)e;
    k_add(host_of(d)->pool, a, b, n, out);
    return LLMSIM_OK;
}

static llmsim_status host_add_rows(gdev *d, const float *a, size_t rows, size_t cols,
                                   const float *b, size_t brows, float *out, diag *e)
{
    (void)e;
    k_add_rows(host_of(d)->pool, a, rows, cols, b, brows, out);
    return LLMSIM_OK;
}

static llmsim_status host_embed(gdev *d, const int32_t *ids, size_t n, const void *table,
                                gdev_dtype dt, size_t rows, size_t h, float *out, diag *e)
{
    llmsim_status rc = check_dtype(dt, "gdev_embed", e);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) /* k_embed asserts; the oracle says what is wrong */
        if (ids[i] < 0 || (size_t)ids[i] >= rows)
            return diag_set(e, LLMSIM_EFAIL,
                            "gdev_embed: id %d (index %zu) outside the table's %zu rows",
                            (int)ids[i], i, rows);
    k_embed(host_of(d)->pool, ids, n, table, (k_wtype)dt, rows, h, out);
    return LLMSIM_OK;
}

static llmsim_status host_dequant_f16(gdev *d, const uint8_t *q, size_t rows, size_t cols, int bits,
                                      int group, uint16_t *out, diag *e)
{
    (void)e;
    k_dequantize_f16(host_of(d)->pool, q, rows, cols, bits, group, out);
    return LLMSIM_OK;
}

/* ---- the KV cache */

typedef struct kv_put_job {
    const gdev_kv *kv;
    const float *k, *v;
    size_t seqs, t;
    size_t pos0;
} kv_put_job;

/* Rows u = (a * seqs + s) * 2 + which: position pos0 + a, sequence s, K or V. */
static void kv_put_range(void *ctx, size_t b, size_t e)
{
    const kv_put_job *J = ctx;
    const gdev_kv *kv = J->kv;
    for (size_t u = b; u < e; u++) {
        const int which = (int)(u % 2);
        const size_t s = u / 2 % J->seqs, a = u / 2 / J->seqs;
        const float *src = (which ? J->v : J->k) + (s * J->t + a) * kv->kvd;
        uint8_t *dst = kv_row(kv, J->pos0 + a, s, which);
        if (kv->bits) {
            quant_quantize_row(src, kv->kvd, kv->bits, kv->group, dst);
            continue;
        }
        for (size_t i = 0; i < kv->kvd; i++) { /* byte-wise: the row need not be aligned */
            uint16_t h = half_f32_to_f16(src[i]);
            memcpy(dst + 2 * i, &h, sizeof h);
        }
    }
}

static llmsim_status host_kv_put(gdev *d, const gdev_kv *kv, const float *k, const float *v,
                                 size_t seqs, size_t t, long long pos0, diag *e)
{
    if (pos0 < 0)
        return diag_set(e, LLMSIM_EFAIL, "gdev_kv_put: negative position %lld", pos0);
    kv_put_job J = {kv, k, v, seqs, t, (size_t)pos0};
    pool_for(host_of(d)->pool, t * seqs * 2, kv_put_range, &J);
    return LLMSIM_OK;
}

typedef struct kv_deq_job {
    const gdev_kv *src, *dst;
    size_t seqs;
} kv_deq_job;

/* Rows u = (p * seqs + s) * 2 + which, into fp16 rows that are 2-byte aligned. */
static void kv_deq_range(void *ctx, size_t b, size_t e)
{
    const kv_deq_job *J = ctx;
    for (size_t u = b; u < e; u++) {
        const int which = (int)(u % 2);
        const size_t s = u / 2 % J->seqs, p = u / 2 / J->seqs;
        quant_dequantize_row_f16(kv_row(J->src, p, s, which), J->src->kvd, J->src->bits,
                                 J->src->group, (uint16_t *)(void *)kv_row(J->dst, p, s, which));
    }
}

static llmsim_status host_kv_dequant(gdev *d, const gdev_kv *src, const gdev_kv *dst, size_t seqs,
                                     long long npos, diag *e)
{
    host_dev *st = host_of(d);
    const size_t rows = (size_t)npos * seqs * 2;
    kv_deq_job J = {src, dst, seqs};
    if (((uintptr_t)dst->base | dst->slot_stride | dst->row_bytes | dst->block_stride) % 2 == 0) {
        pool_for(st->pool, rows, kv_deq_range, &J);
        return LLMSIM_OK;
    }
    /* an odd stride: each row through an aligned copy, on this thread */
    uint16_t *tmp = work_get(st, src->kvd * sizeof *tmp, "gdev_kv_dequant", e);
    if (!tmp)
        return LLMSIM_EFAIL;
    for (size_t u = 0; u < rows; u++) {
        const int which = (int)(u % 2);
        const size_t s = u / 2 % seqs, p = u / 2 / seqs;
        quant_dequantize_row_f16(kv_row(src, p, s, which), src->kvd, src->bits, src->group, tmp);
        memcpy(kv_row(dst, p, s, which), tmp, dst->row_bytes);
    }
    return LLMSIM_OK;
}

/* K (which 0) or V (1) of sequence s, positions [first, ctx), to fp32 at
 * their positions in out [ctx][kvd] through stage (fp16 [ctx][kvd]). */
static void gather_kv(pool *p, const gdev_kv *kv, size_t s, int which, size_t first, size_t ctx,
                      uint16_t *stage, float *out)
{
    for (size_t q = first; q < ctx; q++)
        memcpy(stage + q * kv->kvd, kv_row(kv, q, s, which), kv->row_bytes);
    k_convert_to_f32(p, stage + first * kv->kvd, K_WTYPE_F16, (ctx - first) * kv->kvd,
                     out + first * kv->kvd);
}

static llmsim_status host_attention(gdev *d, const float *q, size_t seqs, size_t t, long long start,
                                    const gdev_kv *kv, size_t heads, size_t kv_heads, size_t hd,
                                    size_t window, float *out, diag *e)
{
    host_dev *st = host_of(d);
    if (start < 0)
        return diag_set(e, LLMSIM_EFAIL, "gdev_attention: negative start %lld", start);
    const size_t ctx = (size_t)start + t, vals = ctx * kv->kvd;
    const size_t kv_bytes = carve(vals * sizeof(float));
    const size_t sc_bytes =
        carve(k_attention_scratch_floats(t, (size_t)start, heads) * sizeof(float));
    uint8_t *buf =
        work_get(st, 2 * kv_bytes + sc_bytes + vals * sizeof(uint16_t), "gdev_attention", e);
    if (!buf)
        return LLMSIM_EFAIL;
    float *kf = (float *)buf, *vf = (float *)(buf + kv_bytes),
          *scores = (float *)(buf + 2 * kv_bytes);
    uint16_t *stage = (uint16_t *)(buf + 2 * kv_bytes + sc_bytes);
    const size_t qs = t * heads * hd; /* one sequence of q and out */
    /* the keys the first query sees, on (k_attention reads no earlier one) */
    const size_t first = window && (size_t)start >= window ? (size_t)start - window + 1 : 0;
    for (size_t s = 0; s < seqs; s++) {
        gather_kv(st->pool, kv, s, 0, first, ctx, stage, kf);
        gather_kv(st->pool, kv, s, 1, first, ctx, stage, vf);
        k_attention(st->pool, q + s * qs, t, (size_t)start, kf, vf, heads, kv_heads, hd, window,
                    out + s * qs, scores);
    }
    return LLMSIM_OK;
}

/* ---- the table and the open */

static const gdev_ops host_ops = {
    .close = host_close,
    .describe = host_describe,
    .mem_info = host_mem_info,
    .dmalloc = host_dmalloc,
    .dfree = host_dfree,
    .host_malloc = host_dmalloc,
    .host_free = host_dfree,
    .copy = host_copy,
    .copy2d = host_copy2d,
    .event_new = host_event_new,
    .event_free = host_event_free,
    .record = host_record,
    .stream_wait = host_stream_wait,
    .event_wait = host_event_wait,
    .stream_sync = host_stream_sync,
    .sync = host_sync,
    .event_elapsed_s = host_event_elapsed_s,
    .linear = host_linear,
    .to_f32 = host_to_f32,
    .to_f16 = host_to_f16,
    .layernorm = host_layernorm,
    .rmsnorm = host_rmsnorm,
    .rotary = host_rotary,
    .relu = host_relu,
    .gelu = host_gelu,
    .silu_mul = host_silu_mul,
    .gelu_tanh_mul = host_gelu_tanh_mul,
    .scale = host_scale,
    .add_scalar = host_add_scalar,
    .add = host_add,
    .add_rows = host_add_rows,
    .embed = host_embed,
    .dequant_f16 = host_dequant_f16,
    .kv_put = host_kv_put,
    .kv_dequant = host_kv_dequant,
    .attention = host_attention,
};

llmsim_status gdev_host_open(int threads, gdev **out, diag *e)
{
    *out = NULL;
    host_dev *st = calloc(1, sizeof *st);
    if (!st)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    if (gdev_base_init(&st->base, &host_ops, GDEV_HOST)) {
        free(st);
        return diag_set(e, LLMSIM_EFAIL, "gdev_open: cannot create a mutex");
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int n = threads > 0 ? threads : cores > 0 ? (int)cores : 1;
    if (!(st->pool = pool_create(n))) {
        gdev_base_fini(&st->base);
        free(st);
        return diag_set(e, LLMSIM_EFAIL, "gdev_open: cannot start %d host threads", n);
    }
    *out = &st->base;
    return LLMSIM_OK;
}
