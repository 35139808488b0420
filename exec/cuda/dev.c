/*
 * dev — the public functions of exec/cuda/dev.h: what both implementations
 * share (the allocation accounting, NULL and empty-size handling), then a
 * call through the implementation's table (dev_impl.h).
 *
 * The base of the device: the implementations (dev_host.c, dev_cuda.cu)
 * call gdev_base_init and gdev_base_fini here, and this file calls them
 * only through the table, never by name; dev_open.c, above both, chooses
 * which one gdev_open opens.
 */
#include "exec/cuda/dev_impl.h"

#include <stdlib.h>
#include <string.h>

#include "common/quant_layout.h"

/* ---- the allocation table: open addressing on the pointer, tombstones
 * never needed (entries are cleared by backward-shift deletion) */

static size_t ptr_hash(const void *p, size_t cap)
{
    uint64_t z = (uint64_t)(uintptr_t)p;
    z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
    z ^= z >> 33;
    return (size_t)(z & (cap - 1));
}

static int map_grow(gdev_alloc_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    void **keys = calloc(cap, sizeof *keys);
    size_t *sizes = calloc(cap, sizeof *sizes);
    if (!keys || !sizes) {
        free(keys);
        free(sizes);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = ptr_hash(m->keys[i], cap);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        sizes[j] = m->sizes[i];
    }
    free(m->keys);
    free(m->sizes);
    m->keys = keys;
    m->sizes = sizes;
    m->cap = cap;
    return 0;
}

static int map_put(gdev_alloc_map *m, void *p, size_t bytes)
{
    if ((m->n + 1) * 2 > m->cap && map_grow(m))
        return -1;
    size_t j = ptr_hash(p, m->cap);
    while (m->keys[j])
        j = (j + 1) & (m->cap - 1);
    m->keys[j] = p;
    m->sizes[j] = bytes;
    m->n++;
    return 0;
}

/* Remove p; its size, or 0 when p is not in the table. */
static size_t map_take(gdev_alloc_map *m, void *p)
{
    if (!m->cap)
        return 0;
    size_t j = ptr_hash(p, m->cap);
    while (m->keys[j] && m->keys[j] != p)
        j = (j + 1) & (m->cap - 1);
    if (!m->keys[j])
        return 0;
    size_t bytes = m->sizes[j];
    m->keys[j] = NULL;
    m->n--;
    /* backward shift: move up every entry of the run that the hole would hide */
    size_t hole = j;
    for (size_t k = (j + 1) & (m->cap - 1); m->keys[k]; k = (k + 1) & (m->cap - 1)) {
        size_t home = ptr_hash(m->keys[k], m->cap);
        /* k's entry may fill the hole when its home is not in (hole, k] cyclically */
        bool in_range = hole <= k ? (home > hole && home <= k) : (home > hole || home <= k);
        if (!in_range) {
            m->keys[hole] = m->keys[k];
            m->sizes[hole] = m->sizes[k];
            m->keys[k] = NULL;
            hole = k;
        }
    }
    return bytes;
}

int gdev_base_init(gdev *d, const gdev_ops *ops, gdev_kind kind)
{
    memset(&d->allocs, 0, sizeof d->allocs);
    d->ops = ops;
    d->kind = kind;
    d->allocated = d->peak = 0;
    return pthread_mutex_init(&d->mu, NULL) ? -1 : 0;
}

void gdev_base_fini(gdev *d)
{
    pthread_mutex_destroy(&d->mu);
    free(d->allocs.keys);
    free(d->allocs.sizes);
    memset(&d->allocs, 0, sizeof d->allocs);
}

/* ---- the device (gdev_available and gdev_open, which choose an
 * implementation, are dev_open.c's: this file calls none of them) */

void gdev_close(gdev *d)
{
    if (!d)
        return;
    gdev_base_fini(d);
    d->ops->close(d);
}

gdev_kind gdev_get_kind(const gdev *d) { return d->kind; }

void gdev_describe(const gdev *d, char *buf, size_t len) { d->ops->describe(d, buf, len); }

void gdev_mem_info(const gdev *d, double *total, double *free_bytes) { d->ops->mem_info(d, total, free_bytes); }

/* ---- memory */

void *gdev_malloc(gdev *d, size_t bytes)
{
    void *p = d->ops->dmalloc(d, bytes ? bytes : 1);
    if (!p)
        return NULL;
    pthread_mutex_lock(&d->mu);
    int bad = map_put(&d->allocs, p, bytes);
    if (!bad) {
        d->allocated += bytes;
        if (d->allocated > d->peak)
            d->peak = d->allocated;
    }
    pthread_mutex_unlock(&d->mu);
    if (bad) {
        d->ops->dfree(d, p);
        return NULL;
    }
    return p;
}

void gdev_free(gdev *d, void *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&d->mu);
    d->allocated -= map_take(&d->allocs, p);
    pthread_mutex_unlock(&d->mu);
    d->ops->dfree(d, p);
}

size_t gdev_allocated_bytes(const gdev *d)
{
    pthread_mutex_lock((pthread_mutex_t *)&d->mu);
    size_t n = d->allocated;
    pthread_mutex_unlock((pthread_mutex_t *)&d->mu);
    return n;
}

size_t gdev_peak_bytes(const gdev *d)
{
    pthread_mutex_lock((pthread_mutex_t *)&d->mu);
    size_t n = d->peak;
    pthread_mutex_unlock((pthread_mutex_t *)&d->mu);
    return n;
}

void *gdev_host_malloc(gdev *d, size_t bytes) { return d->ops->host_malloc(d, bytes ? bytes : 1); }

void gdev_host_free(gdev *d, void *p)
{
    if (p)
        d->ops->host_free(d, p);
}

/* ---- copies */

llmsim_status gdev_copy(gdev *d, gdev_stream s, gdev_dir dir, void *dst, const void *src, size_t bytes, diag *e)
{
    if (!bytes)
        return LLMSIM_OK;
    return d->ops->copy(d, s, dir, dst, src, bytes, e);
}

llmsim_status gdev_copy2d(gdev *d, gdev_stream s, gdev_dir dir, void *dst, size_t dpitch, const void *src,
                          size_t spitch, size_t width, size_t height, diag *e)
{
    if (!width || !height)
        return LLMSIM_OK;
    if (dpitch < width || spitch < width)
        return diag_set(e, LLMSIM_EFAIL, "gdev_copy2d: a pitch (%zu, %zu) below the width %zu", dpitch, spitch,
                        width);
    return d->ops->copy2d(d, s, dir, dst, dpitch, src, spitch, width, height, e);
}

/* ---- events */

llmsim_status gdev_event_new(gdev *d, gdev_event **ev, diag *e) { return d->ops->event_new(d, ev, e); }

void gdev_event_free(gdev *d, gdev_event *ev)
{
    if (ev)
        d->ops->event_free(d, ev);
}

llmsim_status gdev_record(gdev *d, gdev_stream s, gdev_event *ev, diag *e) { return d->ops->record(d, s, ev, e); }

llmsim_status gdev_stream_wait(gdev *d, gdev_stream s, gdev_event *ev, diag *e)
{
    return d->ops->stream_wait(d, s, ev, e);
}

llmsim_status gdev_event_wait(gdev *d, gdev_event *ev, diag *e) { return d->ops->event_wait(d, ev, e); }

llmsim_status gdev_stream_sync(gdev *d, gdev_stream s, diag *e) { return d->ops->stream_sync(d, s, e); }

llmsim_status gdev_sync(gdev *d, diag *e) { return d->ops->sync(d, e); }

llmsim_status gdev_event_elapsed_s(gdev *d, gdev_event *from, gdev_event *to, double *s, diag *e)
{
    return d->ops->event_elapsed_s(d, from, to, s, e);
}

/* ---- kernels */

size_t gdev_linear_scratch_bytes(size_t m, size_t k) { return m * k * 2; }

llmsim_status gdev_linear(gdev *d, const float *x, size_t m, size_t k, const void *w, gdev_dtype wt,
                          const float *bias, size_t n, float *y, void *scratch, diag *e)
{
    if (!m || !n)
        return LLMSIM_OK;
    return d->ops->linear(d, x, m, k, w, wt, bias, n, y, scratch, e);
}

llmsim_status gdev_to_f32(gdev *d, const void *src, gdev_dtype dt, size_t n, float *dst, diag *e)
{
    return n ? d->ops->to_f32(d, src, dt, n, dst, e) : LLMSIM_OK;
}

llmsim_status gdev_to_f16(gdev *d, const float *src, size_t n, uint16_t *dst, diag *e)
{
    return n ? d->ops->to_f16(d, src, n, dst, e) : LLMSIM_OK;
}

llmsim_status gdev_layernorm(gdev *d, const float *x, size_t m, size_t h, const float *gamma,
                             const float *beta, float eps, float *out, diag *e)
{
    return m && h ? d->ops->layernorm(d, x, m, h, gamma, beta, eps, out, e) : LLMSIM_OK;
}

llmsim_status gdev_rmsnorm(gdev *d, const float *x, size_t m, size_t h, const float *gamma, float eps,
                           float *out, diag *e)
{
    return m && h ? d->ops->rmsnorm(d, x, m, h, gamma, eps, out, e) : LLMSIM_OK;
}

llmsim_status gdev_rotary(gdev *d, float *x, size_t seqs, size_t t, long long start, size_t heads,
                          size_t hd, double theta, const double *inv_freq, diag *e)
{
    if (hd % 2)
        return diag_set(e, LLMSIM_EFAIL, "gdev_rotary: odd head_dim %zu", hd);
    return seqs && t && heads && hd ? d->ops->rotary(d, x, seqs, t, start, heads, hd, theta, inv_freq, e)
                                    : LLMSIM_OK;
}

llmsim_status gdev_relu(gdev *d, const float *x, size_t n, float *out, diag *e)
{
    return n ? d->ops->relu(d, x, n, out, e) : LLMSIM_OK;
}

llmsim_status gdev_gelu(gdev *d, const float *x, size_t n, float *out, diag *e)
{
    return n ? d->ops->gelu(d, x, n, out, e) : LLMSIM_OK;
}

llmsim_status gdev_silu_mul(gdev *d, const float *gate, const float *up, size_t n, float *out, diag *e)
{
    return n ? d->ops->silu_mul(d, gate, up, n, out, e) : LLMSIM_OK;
}

llmsim_status gdev_gelu_tanh_mul(gdev *d, const float *gate, const float *up, size_t n, float *out, diag *e)
{
    return n ? d->ops->gelu_tanh_mul(d, gate, up, n, out, e) : LLMSIM_OK;
}

llmsim_status gdev_scale(gdev *d, const float *x, size_t n, float s, float *out, diag *e)
{
    return n ? d->ops->scale(d, x, n, s, out, e) : LLMSIM_OK;
}

llmsim_status gdev_add_scalar(gdev *d, const float *x, size_t n, float c, float *out, diag *e)
{
    return n ? d->ops->add_scalar(d, x, n, c, out, e) : LLMSIM_OK;
}

llmsim_status gdev_add(gdev *d, const float *a, const float *b, size_t n, float *out, diag *e)
{
    return n ? d->ops->add(d, a, b, n, out, e) : LLMSIM_OK;
}

llmsim_status gdev_add_rows(gdev *d, const float *a, size_t rows, size_t cols, const float *b, size_t brows,
                            float *out, diag *e)
{
    if (!brows)
        return diag_set(e, LLMSIM_EFAIL, "gdev_add_rows: no rows to add");
    return rows && cols ? d->ops->add_rows(d, a, rows, cols, b, brows, out, e) : LLMSIM_OK;
}

llmsim_status gdev_embed(gdev *d, const int32_t *ids, size_t n, const void *table, gdev_dtype dt, size_t rows,
                         size_t h, float *out, diag *e)
{
    return n && h ? d->ops->embed(d, ids, n, table, dt, rows, h, out, e) : LLMSIM_OK;
}

llmsim_status gdev_dequant_f16(gdev *d, const uint8_t *q, size_t rows, size_t cols, int bits, int group,
                               uint16_t *out, diag *e)
{
    if ((bits != 4 && bits != 8) || group < 2 || group % 2 || cols % (size_t)group)
        return diag_set(e, LLMSIM_EFAIL, "gdev_dequant_f16: bits %d, group %d, cols %zu", bits, group, cols);
    return rows && cols ? d->ops->dequant_f16(d, q, rows, cols, bits, group, out, e) : LLMSIM_OK;
}

static llmsim_status kv_check(const gdev_kv *kv, const char *fn, diag *e)
{
    if (kv->bits == 0 ? kv->row_bytes != kv->kvd * 2
                      : ((kv->bits != 4 && kv->bits != 8) || kv->group < 2 || kv->group % 2 ||
                         kv->kvd % (size_t)kv->group ||
                         kv->row_bytes != quant_row_bytes(kv->kvd, kv->bits, kv->group)))
        return diag_set(e, LLMSIM_EFAIL, "%s: KV rows of %zu values, %d bits, group %d, %zu bytes do not agree",
                        fn, kv->kvd, kv->bits, kv->group, kv->row_bytes);
    if (kv->table && (kv->block_size == 0 || kv->block_stride < kv->block_size * kv->slot_stride))
        return diag_set(e, LLMSIM_EFAIL, "%s: blocks of %zu slots of %zu bytes in %zu bytes", fn,
                        kv->block_size, kv->slot_stride, kv->block_stride);
    if (kv->table && kv->ring)
        return diag_set(e, LLMSIM_EFAIL, "%s: a ring is a contiguous slot array (no block table)", fn);
    return LLMSIM_OK;
}

llmsim_status gdev_kv_put(gdev *d, const gdev_kv *kv, const float *k, const float *v, size_t seqs, size_t t,
                          long long pos0, diag *e)
{
    llmsim_status st = kv_check(kv, "gdev_kv_put", e);
    if (st || !seqs || !t)
        return st;
    if (pos0 < 0)
        return diag_set(e, LLMSIM_EFAIL, "gdev_kv_put: position %lld", pos0);
    if (kv->slot_stride < seqs * 2 * kv->row_bytes)
        return diag_set(e, LLMSIM_EFAIL, "gdev_kv_put: slot stride %zu below %zu sequences' rows",
                        kv->slot_stride, seqs);
    if (kv->ring && t > kv->ring)
        return diag_set(e, LLMSIM_EFAIL, "gdev_kv_put: %zu positions into a ring of %zu", t, kv->ring);
    return d->ops->kv_put(d, kv, k, v, seqs, t, pos0, e);
}

llmsim_status gdev_kv_dequant(gdev *d, const gdev_kv *src, const gdev_kv *dst, size_t seqs, long long npos,
                              diag *e)
{
    llmsim_status st;
    if ((st = kv_check(src, "gdev_kv_dequant", e)) || (st = kv_check(dst, "gdev_kv_dequant", e)))
        return st;
    if (src->bits == 0 || dst->bits != 0 || src->kvd != dst->kvd)
        return diag_set(e, LLMSIM_EFAIL, "gdev_kv_dequant: from a quantized to an fp16 array of the same rows");
    if ((src->ring && npos > (long long)src->ring) || (dst->ring && npos > (long long)dst->ring))
        return diag_set(e, LLMSIM_EFAIL, "gdev_kv_dequant: %lld positions of a ring of %zu", npos,
                        src->ring && npos > (long long)src->ring ? src->ring : dst->ring);
    return seqs && npos > 0 ? d->ops->kv_dequant(d, src, dst, seqs, npos, e) : LLMSIM_OK;
}

llmsim_status gdev_attention(gdev *d, const float *q, size_t seqs, size_t t, long long start, const gdev_kv *kv,
                             size_t heads, size_t kv_heads, size_t hd, size_t window, float *out, diag *e)
{
    llmsim_status st = kv_check(kv, "gdev_attention", e);
    if (st)
        return st;
    if (start < 0)
        return diag_set(e, LLMSIM_EFAIL, "gdev_attention: start %lld", start);
    if (kv->bits || !kv_heads || heads % kv_heads || kv->kvd != kv_heads * hd)
        return diag_set(e, LLMSIM_EFAIL, "gdev_attention: fp16 rows of kv_heads x head_dim values, and "
                        "kv_heads dividing heads");
    if (kv->ring) { /* the keys read, from the first query's first on, fit the ring */
        const size_t first = window && (size_t)start >= window ? (size_t)start - window + 1 : 0;
        if ((size_t)start + t - first > kv->ring)
            return diag_set(e, LLMSIM_EFAIL, "gdev_attention: positions %zu .. %lld in a ring of %zu", first,
                            start + (long long)t - 1, kv->ring);
    }
    return seqs && t ? d->ops->attention(d, q, seqs, t, start, kv, heads, kv_heads, hd, window, out, e)
                     : LLMSIM_OK;
}
