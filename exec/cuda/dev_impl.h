/*
 * dev_impl — what an implementation of exec/cuda/dev.h provides: a table of
 * operations that exec/cuda/dev.c calls through, after doing what is common
 * to both (argument checks, the allocation accounting, NULL handling).
 *
 * An implementation embeds `gdev` as the first member of its own state and
 * fills `ops`; dev.c's wrappers call d->ops->x(d, ...) with the arguments
 * unchanged. The files in order, each calling only those before it: dev.c
 * (the base), dev_host.c and dev_cuda.cu (the implementations), dev_open.c
 * (gdev_open: which implementation). Sizes of zero reach the implementation only where dev.h allows
 * them (a copy of 0 bytes, a kernel over 0 elements are no-ops in dev.c).
 */
#ifndef LLMSIM_EXEC_CUDA_DEV_IMPL_H
#define LLMSIM_EXEC_CUDA_DEV_IMPL_H

#include <pthread.h>

#include "exec/cuda/dev.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gdev_ops {
    void (*close)(gdev *d); /* free the implementation's resources and state, d included */
    void (*describe)(const gdev *d, char *buf, size_t len);
    void (*mem_info)(const gdev *d, double *total, double *free_bytes);

    void *(*dmalloc)(gdev *d, size_t bytes); /* NULL on failure */
    void (*dfree)(gdev *d, void *p);         /* p != NULL */
    void *(*host_malloc)(gdev *d, size_t bytes);
    void (*host_free)(gdev *d, void *p);

    llmsim_status (*copy)(gdev *d, gdev_stream s, gdev_dir dir, void *dst, const void *src, size_t bytes, diag *e);
    llmsim_status (*copy2d)(gdev *d, gdev_stream s, gdev_dir dir, void *dst, size_t dpitch, const void *src,
                            size_t spitch, size_t width, size_t height, diag *e);

    llmsim_status (*event_new)(gdev *d, gdev_event **ev, diag *e);
    void (*event_free)(gdev *d, gdev_event *ev); /* ev != NULL */
    llmsim_status (*record)(gdev *d, gdev_stream s, gdev_event *ev, diag *e);
    llmsim_status (*stream_wait)(gdev *d, gdev_stream s, gdev_event *ev, diag *e);
    llmsim_status (*event_wait)(gdev *d, gdev_event *ev, diag *e);
    llmsim_status (*stream_sync)(gdev *d, gdev_stream s, diag *e);
    llmsim_status (*sync)(gdev *d, diag *e);
    llmsim_status (*event_elapsed_s)(gdev *d, gdev_event *from, gdev_event *to, double *s, diag *e);

    llmsim_status (*linear)(gdev *d, const float *x, size_t m, size_t k, const void *w, gdev_dtype wt,
                            const float *bias, size_t n, float *y, void *scratch, diag *e);
    llmsim_status (*to_f32)(gdev *d, const void *src, gdev_dtype dt, size_t n, float *dst, diag *e);
    llmsim_status (*to_f16)(gdev *d, const float *src, size_t n, uint16_t *dst, diag *e);
    llmsim_status (*layernorm)(gdev *d, const float *x, size_t m, size_t h, const float *gamma,
                               const float *beta, float eps, float *out, diag *e);
    llmsim_status (*rmsnorm)(gdev *d, const float *x, size_t m, size_t h, const float *gamma, float eps,
                             float *out, diag *e);
    llmsim_status (*rotary)(gdev *d, float *x, size_t seqs, size_t t, long long start, size_t heads, size_t hd,
                            double theta, const double *inv_freq, diag *e);
    llmsim_status (*relu)(gdev *d, const float *x, size_t n, float *out, diag *e);
    llmsim_status (*gelu)(gdev *d, const float *x, size_t n, float *out, diag *e);
    llmsim_status (*silu_mul)(gdev *d, const float *gate, const float *up, size_t n, float *out, diag *e);
    llmsim_status (*gelu_tanh_mul)(gdev *d, const float *gate, const float *up, size_t n, float *out, diag *e);
    llmsim_status (*scale)(gdev *d, const float *x, size_t n, float s, float *out, diag *e);
    llmsim_status (*add_scalar)(gdev *d, const float *x, size_t n, float c, float *out, diag *e);
    llmsim_status (*add)(gdev *d, const float *a, const float *b, size_t n, float *out, diag *e);
    llmsim_status (*add_rows)(gdev *d, const float *a, size_t rows, size_t cols, const float *b, size_t brows,
                              float *out, diag *e);
    llmsim_status (*embed)(gdev *d, const int32_t *ids, size_t n, const void *table, gdev_dtype dt, size_t rows,
                           size_t h, float *out, diag *e);
    llmsim_status (*dequant_f16)(gdev *d, const uint8_t *q, size_t rows, size_t cols, int bits, int group,
                                 uint16_t *out, diag *e);
    llmsim_status (*kv_put)(gdev *d, const gdev_kv *kv, const float *k, const float *v, size_t seqs, size_t t,
                            long long pos0, diag *e);
    llmsim_status (*kv_dequant)(gdev *d, const gdev_kv *src, const gdev_kv *dst, size_t seqs, long long npos,
                                diag *e);
    llmsim_status (*attention)(gdev *d, const float *q, size_t seqs, size_t t, long long start, const gdev_kv *kv,
                               size_t heads, size_t kv_heads, size_t hd, size_t window, float *out,
                               diag *e);
} gdev_ops;

/* The allocation table of dev.c: device pointer -> size. */
typedef struct gdev_alloc_map {
    void **keys;
    size_t *sizes;
    size_t cap, n;
} gdev_alloc_map;

struct gdev {
    const gdev_ops *ops;
    gdev_kind kind;
    pthread_mutex_t mu;      /* guards the accounting */
    gdev_alloc_map allocs;
    size_t allocated, peak;
};

/* gdev_base_init: called by the implementations' open functions on their
 * embedded gdev (0 on success). gdev_close calls gdev_base_fini and then
 * ops->close, which frees the implementation's resources and the state. */
int gdev_base_init(gdev *d, const gdev_ops *ops, gdev_kind kind);
void gdev_base_fini(gdev *d);

/* The implementations' entry points, called by dev_open.c only. gdev_cuda_*
 * come from dev_cuda.cu, or from dev_cuda_stub.c in a build without CUDA
 * (unavailable, and an open that says so). */
bool gdev_cuda_available(void);
llmsim_status gdev_cuda_open(gdev **out, diag *e);
llmsim_status gdev_host_open(int threads, gdev **out, diag *e);

#ifdef __cplusplus
}
#endif

#endif
