/*
 * profiler — the probes of `llmsim profile`. See profiler.h for the method.
 */
#define _GNU_SOURCE /* O_DIRECT via exec/offload, gethostname */
#include "profiler/profiler.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/units.h"
#include "exec/cpu/kernels.h"
#include "profiler/fit.h"
#include "profiler/profile_gpu.h"
#include "exec/half.h"
#include "exec/quant.h"
#include "exec/offload.h"
#include "common/clock.h"


typedef struct prof {
    const profile_opts *o;
    strbuf *summary;
    strbuf notes;
    int flagged;
} prof;

static bool stopped(const prof *P) { return P->o->interrupt && *P->o->interrupt; }

static void progress(prof *P, const char *what)
{
    if (P->o->progress)
        fprintf(stderr, "\rprofile: %-60s", what);
}

static void flag(prof *P, const char *what, double spread)
{
    if (spread <= PROFILE_SPREAD_FLAG)
        return;
    P->flagged++;
    strbuf_printf(&P->notes, " FLAGGED: %s varied by %.0f%% between runs.", what, 100 * spread);
}

/* The median of `reps` timed runs of fn (seconds each), with its spread;
 * when that spread exceeds PROFILE_SPREAD_FLAG, `reps` runs more and the
 * median over all of them. Stops at fn's first error. */
typedef llmsim_status (*timed_fn)(void *ctx, double *secs, diag *e);
#define REPS_MAX 8
static llmsim_status median_again(timed_fn fn, void *ctx, int reps, double *med, double *spread,
                                  diag *e)
{
    double times[2 * REPS_MAX], sorted[2 * REPS_MAX];
    int done = 0;
    llmsim_status st = LLMSIM_OK;
    if (reps > REPS_MAX)
        reps = REPS_MAX;
    *spread = 0;
    for (int pass = 0; pass < 2 && (pass == 0 || *spread > PROFILE_SPREAD_FLAG); pass++) {
        for (int r = 0; r < reps; r++)
            if ((st = fn(ctx, &times[done++], e)))
                return st;
        memcpy(sorted, times, sizeof(double) * (size_t)done);
        *med = profile_median(sorted, done, spread);
    }
    return st;
}

/* ---- memory copy bandwidth */

typedef struct copy_ctx {
    char *dst;
    const char *src;
} copy_ctx;

/* STREAM's Copy kernel, c[i] = a[i] over doubles, as compiled code moves data
 * (regular stores; memcpy's non-temporal stores would skip the write-allocate
 * read that the engine's kernels pay). */
static void copy_chunk(void *ctx, size_t begin, size_t end)
{
    copy_ctx *c = ctx;
    double *restrict dst = (double *)(void *)c->dst;
    const double *restrict src = (const double *)(const void *)c->src;
    for (size_t i = begin / sizeof(double); i < end / sizeof(double); i++)
        dst[i] = src[i];
}

typedef struct copy_run {
    pool *pl;
    size_t bytes;
    copy_ctx c;
} copy_run;

static llmsim_status copy_timed(void *ctx, double *secs, diag *e)
{
    (void)e;
    copy_run *r = ctx;
    double t0 = llmsim_now_s();
    pool_for(r->pl, r->bytes, copy_chunk, &r->c);
    *secs = fault_stretch(llmsim_now_s() - t0);
    return LLMSIM_OK;
}

static llmsim_status probe_memory(prof *P, hwprofile *hw, diag *e)
{
    const size_t bytes = (P->o->quick ? (size_t)128 : (size_t)512) << 20;
    const int reps = P->o->quick ? 3 : 5;
    char *a = offload_alloc(bytes), *b = offload_alloc(bytes);
    if (!a || !b) {
        free(a);
        free(b);
        return diag_set(e, LLMSIM_EFAIL, "out of memory (memory probe)");
    }
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    int cores = hw->cpu.cores;
    double best = 0, best_spread = 0;
    strbuf_puts(&P->notes, " Memory copy (STREAM convention, read + write):");
    for (int t = 1; t <= cores && !stopped(P); t++) {
        pool *pl = pool_create(t);
        if (!pl)
            break;
        copy_run cr = {pl, bytes, {b, a}};
        double spread = 0, med = 0;
        pool_for(pl, bytes, copy_chunk, &cr.c);                /* warm-up */
        median_again(copy_timed, &cr, reps, &med, &spread, e); /* cannot fail */
        pool_destroy(pl);
        double bw = 2.0 * (double)bytes / med;
        char what[64];
        snprintf(what, sizeof what, "memory copy with %d thread%s", t, t > 1 ? "s" : "");
        flag(P, what, spread);
        strbuf_printf(&P->notes, " %d thread%s %.2f GB/s (spread %.0f%%);", t, t > 1 ? "s" : "", bw / 1e9,
                      100 * spread);
        strbuf_printf(P->summary, "memory copy, %2d thread%s  %8.2f GB/s   spread %4.1f%%%s\n", t,
                      t > 1 ? "s" : " ", bw / 1e9, 100 * spread, spread > PROFILE_SPREAD_FLAG ? "  FLAGGED" : "");
        if (bw > best) {
            best = bw;
            best_spread = spread;
        }
    }
    free(a);
    free(b);
    hw->cpu.memory_bandwidth_Bps = best;
    hw->cpu.memory_bandwidth_spread = best_spread;
    return LLMSIM_OK;
}

/* ---- the engine's GEMM and attention */

static void fill_random(float *x, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(seed >> 11) * 0x1.0p-53 - 0.5);
    }
}

/* Time fn() repeatedly: each sample is the mean over enough calls to last
 * at least min_s. */
typedef void (*probe_fn)(void *ctx);
static double sample(probe_fn fn, void *ctx, double min_s)
{
    int calls = 0;
    double t0 = llmsim_now_s(), t;
    do {
        fn(ctx);
        calls++;
        t = llmsim_now_s() - t0;
    } while (t < min_s);
    return fault_stretch(t / calls);
}

/* The mean of v[0..n) without its fastest and slowest value when n >= 5
 * (one disturbed sample, or one lucky one, cannot move the figure); sorts v.
 * *spread gets (max - min) / median over the values kept. */
static double trimmed_mean(double *v, int n, double *spread)
{
    profile_median(v, n, NULL); /* sorts */
    int lo = n >= 5, hi = n - (n >= 5);
    double sum = 0;
    for (int i = lo; i < hi; i++)
        sum += v[i];
    profile_median(v + lo, hi - lo, spread);
    return hi > lo ? sum / (hi - lo) : 0;
}

/* Time n probes (fn over ctxs[i], ctx_size bytes apart) in interleaved
 * rounds: probe 0 to n-1, then again, `rounds` times. Each sample is the
 * mean over enough calls to last min_s. A probe whose samples spread by more
 * than PROFILE_SPREAD_FLAG is measured again, in as many rounds again
 * interleaved among the probes so flagged: a machine that was disturbed for
 * a moment gets a second chance, and the figure gets twice the samples.
 * A probe's figure is the trimmed mean time of all its samples, taken at
 * moments spread over the whole series, the way a long run averages the fast
 * and slow phases of a machine whose speed drifts over seconds (a shared or
 * virtual one); the spread of the samples kept says how much it drifted. */
typedef char probe_label[96];
#define PROBE_MAX_ROUNDS 16
static void time_rounds(prof *P, probe_fn fn, void *ctxs, size_t ctx_size, const probe_label *what,
                        int n, int rounds, double min_s, double *mean, double *spread)
{
    double t[HW_MAX_POINTS][PROBE_MAX_ROUNDS];
    int done[HW_MAX_POINTS] = {0};
    bool again[HW_MAX_POINTS] = {false};
    if (n > HW_MAX_POINTS)
        n = HW_MAX_POINTS;
    if (rounds > PROBE_MAX_ROUNDS / 2)
        rounds = PROBE_MAX_ROUNDS / 2;
    for (int i = 0; i < n && !stopped(P); i++) {
        fn((char *)ctxs + (size_t)i * ctx_size); /* warm-up */
        again[i] = true;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int r = 0; r < rounds && !stopped(P); r++)
            for (int i = 0; i < n && !stopped(P); i++) {
                if (!again[i])
                    continue;
                char line[160];
                snprintf(line, sizeof line, "%s, round %d/%d%s", what[i], r + 1, rounds,
                         pass ? " (again: it varied)" : "");
                progress(P, line);
                t[i][done[i]++] = sample(fn, (char *)ctxs + (size_t)i * ctx_size, min_s);
            }
        for (int i = 0; i < n; i++) {
            double v[PROBE_MAX_ROUNDS];
            memcpy(v, t[i], sizeof(double) * (size_t)done[i]);
            spread[i] = 0;
            mean[i] = done[i] ? trimmed_mean(v, done[i], &spread[i]) : 0;
            again[i] = spread[i] > PROFILE_SPREAD_FLAG;
        }
    }
}

typedef struct gemm_ctx {
    pool *pl;
    const float *x;
    const uint16_t *w;
    size_t m, n, k;
    float *y;
} gemm_ctx;

static void gemm_call(void *ctx)
{
    gemm_ctx *g = ctx;
    k_linear(g->pl, g->x, g->m, g->k, g->w, K_WTYPE_F16, NULL, g->n, g->y);
}

static llmsim_status probe_gemm(prof *P, hwprofile *hw, pool *pl, diag *e)
{
    /* m on both sides of K_GEMV_MAX_ROWS, the rows the fused kernel takes at
     * once (above, it runs once per block of rows) */
    static const size_t ms_full[] = {1, 4, K_GEMV_MAX_ROWS, K_GEMV_MAX_ROWS + 1, 32, 64, 256, 1024},
                        ms_quick[] = {1, K_GEMV_MAX_ROWS, K_GEMV_MAX_ROWS + 1, 256};
    static const size_t hs_full[] = {1024, 2048, 4096}, hs_quick[] = {1024, 2048};
    const size_t *ms = P->o->quick ? ms_quick : ms_full, *hs = P->o->quick ? hs_quick : hs_full;
    size_t nm = P->o->quick ? 4 : 8, nh = P->o->quick ? 2 : 3;
    size_t hmax = hs[nh - 1], mmax = ms[nm - 1];
    float *x = offload_alloc(sizeof(float) * mmax * hmax), *y = offload_alloc(sizeof(float) * mmax * hmax);
    uint16_t *w = offload_alloc(sizeof(uint16_t) * hmax * hmax);
    float *tmp = offload_alloc(sizeof(float) * hmax * hmax);
    llmsim_status st = x && y && w && tmp ? LLMSIM_OK
                                                      : diag_set(e, LLMSIM_EFAIL, "out of memory (GEMM probe)");
    if (!st) {
        fill_random(x, mmax * hmax, 1);
        fill_random(tmp, hmax * hmax, 2);
        for (size_t i = 0; i < hmax * hmax; i++)
            w[i] = half_f32_to_f16(tmp[i]);
    }
    hw_gemm_table *t = &hw->cpu.gemm;
    t->npoints = 0;
    int n = (int)(nh * nm);
    gemm_ctx c[HW_MAX_POINTS];
    probe_label what[HW_MAX_POINTS];
    double mean[HW_MAX_POINTS], spread[HW_MAX_POINTS];
    for (size_t hi = 0; hi < nh; hi++)
        for (size_t mi = 0; mi < nm; mi++) {
            size_t i = hi * nm + mi;
            c[i] = (gemm_ctx){pl, x, w, ms[mi], hs[hi], hs[hi], y};
            snprintf(what[i], sizeof what[i], "CPU GEMM m=%zu n=k=%zu (fp16 weights)", ms[mi],
                     hs[hi]);
        }
    if (!st)
        time_rounds(P, gemm_call, c, sizeof c[0], what, n, P->o->quick ? 3 : 5,
                    P->o->quick ? 0.01 : 0.03, mean, spread);
    for (int i = 0; i < n && !st && !stopped(P); i++) {
        double flops = 2.0 * (double)c[i].m * (double)c[i].n * (double)c[i].k / mean[i];
        t->points[t->npoints++] =
            (hw_gemm_point){(double)c[i].m, (double)c[i].n, (double)c[i].k, flops, spread[i]};
        flag(P, what[i], spread[i]);
        strbuf_printf(P->summary, "CPU GEMM m=%-5zu n=k=%-5zu  %8.2f GFLOP/s spread %4.1f%%%s\n",
                      c[i].m, c[i].n, flops / 1e9, 100 * spread[i],
                      spread[i] > PROFILE_SPREAD_FLAG ? "  FLAGGED" : "");
    }
    free(x);
    free(y);
    free(w);
    free(tmp);
    return st;
}

/* ---- weight reads by working set */

typedef struct read_ctx {
    pool *pl;
    const float *x;
    const uint16_t *w;
    size_t h, count; /* count matrices of h x h, one after the other */
    float *y;
} read_ctx;

/* One pass over the working set: the engine's decode GEMV (m = 1) over
 * each matrix in turn, the way a decode step reads the layers' weights. */
static void read_pass(void *ctx)
{
    read_ctx *r = ctx;
    for (size_t i = 0; i < r->count; i++)
        k_linear(r->pl, r->x, 1, r->h, r->w + i * r->h * r->h, K_WTYPE_F16, NULL, r->h, r->y);
}

/* The largest working set: far beyond the last-level cache (4x its size,
 * at least 1 GiB), and at most an eighth of RAM. */
static size_t read_ws_max(const hwprofile *hw, bool quick)
{
    size_t ws = (size_t)(quick ? 256 : 1024) << 20;
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (!quick && llc > 0 && (size_t)llc * 4 > ws)
        ws = (size_t)llc * 4;
    while (ws > (size_t)(64 << 20) && (double)ws > hw->cpu.memory_bytes / 8)
        ws /= 2;
    return ws;
}

/* count fp16 matrices of h x h, one after the other: one random matrix,
 * copied; NULL when out of memory. */
static uint16_t *weight_set(size_t h, size_t count)
{
    const size_t mat = h * h;
    uint16_t *w = offload_alloc(count * mat * sizeof(uint16_t));
    float *tmp = offload_alloc(mat * sizeof(float));
    if (w && tmp) {
        fill_random(tmp, mat, 4);
        for (size_t i = 0; i < mat; i++)
            w[i] = half_f32_to_f16(tmp[i]);
        for (size_t c = 1; c < count; c++)
            memcpy(w + c * mat, w, mat * sizeof(uint16_t));
    } else {
        free(w);
        w = NULL;
    }
    free(tmp);
    return w;
}

#define READ_H 2048 /* the read probes' matrices: 8 MiB of fp16 each */

static llmsim_status probe_read(prof *P, hwprofile *hw, pool *pl, diag *e)
{
    const size_t h = READ_H, mat = h * h;
    const size_t ws_min = (size_t)8 << 20, ws_max = read_ws_max(hw, P->o->quick);
    size_t nmax = ws_max / (mat * sizeof(uint16_t));
    uint16_t *w = weight_set(h, nmax);
    float *x = malloc(h * sizeof(float)), *y = malloc(h * sizeof(float));
    llmsim_status st =
        w && x && y ? LLMSIM_OK : diag_set(e, LLMSIM_EFAIL, "out of memory (read probe)");
    if (!st)
        fill_random(x, h, 3);
    hw_read_table *t = &hw->cpu.read;
    t->npoints = 0;
    /* working sets doubling from 8 MiB (quick: quadrupling) up to ws_max */
    read_ctx c[HW_MAX_POINTS];
    probe_label what[HW_MAX_POINTS];
    double mean[HW_MAX_POINTS], spread[HW_MAX_POINTS];
    int n = 0;
    for (size_t ws = ws_min; ws <= ws_max && n < HW_MAX_POINTS; ws *= P->o->quick ? 4 : 2, n++) {
        c[n] = (read_ctx){pl, x, w, h, ws / (mat * sizeof(uint16_t)), y};
        snprintf(what[n], sizeof what[n], "CPU weight reads, working set %zu MiB", ws >> 20);
    }
    if (!st)
        time_rounds(P, read_pass, c, sizeof c[0], what, n, P->o->quick ? 3 : 5,
                    P->o->quick ? 0.01 : 0.03, mean, spread);
    for (int i = 0; i < n && !st && !stopped(P); i++) {
        double bytes = (double)(c[i].count * mat * sizeof(uint16_t)), bps = bytes / mean[i];
        t->points[t->npoints++] = (hw_read_point){bytes, bps, spread[i]};
        flag(P, what[i], spread[i]);
        strbuf_printf(P->summary,
                      "CPU weight reads, working set %5.0f MiB  %8.2f GB/s spread %4.1f%%%s\n",
                      bytes / 1048576, bps / 1e9, 100 * spread[i],
                      spread[i] > PROFILE_SPREAD_FLAG ? "  FLAGGED" : "");
    }
    free(w);
    free(x);
    free(y);
    return st;
}

typedef struct deq_ctx {
    pool *pl;
    const uint8_t *q;
    size_t rows, cols;
    int bits;
    uint16_t *out;
} deq_ctx;

static void deq_call(void *ctx)
{
    deq_ctx *d = ctx;
    k_dequantize_f16(d->pl, d->q, d->rows, d->cols, d->bits, PROFILE_DEQUANT_GROUP, d->out);
}

/* The engine's weight dequantization (k_dequantize_f16, group 64) at 4 and 8
 * bits, over a matrix whose fp16 copy (64 MiB) is well beyond the caches, as
 * a layer's is: fp16 bytes written per second. */
static llmsim_status probe_dequant(prof *P, hwprofile *hw, pool *pl, diag *e)
{
    const size_t rows = 8192, cols = 4096, n = rows * cols;
    static const int bits[2] = {4, 8};
    uint8_t *q[2] = {offload_alloc(rows * quant_row_bytes(cols, 4, PROFILE_DEQUANT_GROUP)),
                     offload_alloc(rows * quant_row_bytes(cols, 8, PROFILE_DEQUANT_GROUP))};
    float *x = offload_alloc(cols * 64 * sizeof(float));
    uint16_t *out = offload_alloc(n * sizeof(uint16_t));
    llmsim_status st = q[0] && q[1] && x && out ? LLMSIM_OK
                                                 : diag_set(e, LLMSIM_EFAIL, "out of memory (dequantization probe)");
    deq_ctx c[2];
    probe_label what[2];
    for (int b = 0; b < 2 && !st; b++) {
        size_t rb = quant_row_bytes(cols, bits[b], PROFILE_DEQUANT_GROUP);
        fill_random(x, cols * 64, (uint64_t)(5 + b));
        k_quantize(pl, x, 64, cols, bits[b], PROFILE_DEQUANT_GROUP, q[b]); /* 64 distinct rows, repeated */
        for (size_t r = 64; r < rows; r += 64)
            memcpy(q[b] + r * rb, q[b], 64 * rb);
        c[b] = (deq_ctx){pl, q[b], rows, cols, bits[b], out};
        snprintf(what[b], sizeof what[b], "CPU dequantization, %d-bit", bits[b]);
    }
    double mean[2], spread[2];
    if (!st)
        time_rounds(P, deq_call, c, sizeof c[0], what, 2, P->o->quick ? 3 : 5, 0.02, mean, spread);
    for (int b = 0; b < 2 && !st; b++) {
        hw->cpu.dequant[b] = (hw_dequant_point){bits[b], (double)n * 2 / mean[b], spread[b]};
        flag(P, what[b], spread[b]);
        strbuf_printf(P->summary, "CPU dequantization %d-bit  %8.2f GB/s of fp16 spread %4.1f%%%s\n", bits[b],
                      hw->cpu.dequant[b].Bps / 1e9, 100 * spread[b], spread[b] > PROFILE_SPREAD_FLAG ? "  FLAGGED" : "");
    }
    if (!st)
        hw->cpu.ndequant = 2;
    free(q[0]);
    free(q[1]);
    free(x);
    free(out);
    return st;
}

typedef struct attn_ctx {
    pool *pl;
    const uint16_t *k16, *v16;
    float *k, *v, *q, *out, *scratch;
    size_t ctx, heads, hd;
} attn_ctx;

/* What the engine does per sequence in decode: the cache to fp32, then attention. */
static void attn_call(void *ctx)
{
    attn_ctx *a = ctx;
    size_t n = a->ctx * a->heads * a->hd;
    k_convert_to_f32(a->pl, a->k16, K_WTYPE_F16, n, a->k);
    k_convert_to_f32(a->pl, a->v16, K_WTYPE_F16, n, a->v);
    k_attention(a->pl, a->q, 1, a->ctx - 1, a->k, a->v, a->heads, a->heads, a->hd, 0, a->out, a->scratch);
}

static llmsim_status probe_attention(prof *P, hwprofile *hw, pool *pl, diag *e)
{
    const size_t heads = 32, hd = 128, ctx = P->o->quick ? 2048 : 4096, n = ctx * heads * hd;
    attn_ctx a = {pl, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ctx, heads, hd};
    uint16_t *k16 = offload_alloc(n * 2), *v16 = offload_alloc(n * 2);
    a.k = offload_alloc(n * 4);
    a.v = offload_alloc(n * 4);
    a.q = offload_alloc(heads * hd * 4);
    a.out = offload_alloc(heads * hd * 4);
    a.scratch = offload_alloc(k_attention_scratch_floats(1, ctx - 1, heads) * 4 + 4);
    llmsim_status st = LLMSIM_OK;
    if (!k16 || !v16 || !a.k || !a.v || !a.q || !a.out || !a.scratch) {
        st = diag_set(e, LLMSIM_EFAIL, "out of memory (attention probe)");
    } else {
        fill_random(a.k, n, 3);
        fill_random(a.q, heads * hd, 4);
        for (size_t i = 0; i < n; i++) {
            k16[i] = half_f32_to_f16(a.k[i]);
            v16[i] = half_f32_to_f16(a.k[n - 1 - i]);
        }
        a.k16 = k16;
        a.v16 = v16;
        probe_label what = "CPU attention (decode)";
        double spread, mean;
        time_rounds(P, attn_call, &a, sizeof a, &what, 1, P->o->quick ? 3 : 5, 0.02, &mean,
                    &spread);
        hw->cpu.attn_Bps = 2.0 * (double)n * 2 / mean; /* fp16 K and V */
        hw->cpu.attn_spread = spread;
        flag(P, "CPU decode attention", spread);
        strbuf_printf(P->summary, "CPU attention (decode)     %8.2f GB/s of K+V spread %4.1f%%%s\n",
                      hw->cpu.attn_Bps / 1e9, 100 * spread, spread > PROFILE_SPREAD_FLAG ? "  FLAGGED" : "");
    }
    free(k16);
    free(v16);
    free(a.k);
    free(a.v);
    free(a.q);
    free(a.out);
    free(a.scratch);
    return st;
}

/* ---- disk */

typedef struct io_job {
    offload_file *f;
    char *buf;
    size_t block;
    uint64_t from, to; /* byte range of this thread */
    bool write;
    uint64_t nonce; /* differs between passes */
    llmsim_status st;
    diag e;
} io_job;

/* One block read or written at off. A block written has every 4 KiB sector
 * unique, as fio's scramble_buffers: a virtual disk that deduplicates must
 * not see the same block twice (nonce differs between passes). */
static llmsim_status io_block(offload_file *f, char *buf, size_t block, uint64_t off, bool write,
                              uint64_t nonce, diag *e)
{
    if (!write)
        return offload_read(f, buf, block, off, e);
    for (size_t s = 0; s + 8 <= block; s += 4096) {
        uint64_t stamp = (off + s) ^ nonce;
        memcpy(buf + s, &stamp, 8);
    }
    return offload_write(f, buf, block, off, e);
}

static void *io_thread(void *arg)
{
    io_job *j = arg;
    diag_clear(&j->e);
    for (uint64_t off = j->from; off < j->to && !j->st; off += j->block)
        j->st = io_block(j->f, j->buf, j->block, off, j->write, j->nonce, &j->e);
    return NULL;
}

/* One pass over the file with qd threads in flight; seconds. */
static llmsim_status disk_pass(offload_file *f, uint64_t bytes, size_t block, int qd, bool write,
                               char **bufs, double *secs, diag *e)
{
    io_job jobs[4];
    pthread_t th[4];
    uint64_t blocks = bytes / block, per = (blocks + (uint64_t)qd - 1) / (uint64_t)qd;
    double t0 = llmsim_now_s();
    int started = 0;
    for (int q = 0; q < qd; q++) {
        uint64_t from = (uint64_t)q * per * block, to = from + per * block;
        if (to > blocks * block)
            to = blocks * block;
        jobs[q] = (io_job){f, bufs[q], block, from, to, write, (uint64_t)(llmsim_now_s() * 1e9), LLMSIM_OK, {0}};
        if (pthread_create(&th[q], NULL, io_thread, &jobs[q]) != 0)
            break;
        started++;
    }
    for (int q = 0; q < started; q++)
        pthread_join(th[q], NULL);
    *secs = fault_stretch(llmsim_now_s() - t0);
    if (started < qd)
        return diag_set(e, LLMSIM_EFAIL, "cannot start the disk probe's threads");
    for (int q = 0; q < qd; q++)
        if (jobs[q].st) {
            *e = jobs[q].e;
            return jobs[q].st;
        }
    return LLMSIM_OK;
}

/* One pass over the file (disk_pass) as a timed_fn. */
typedef struct disk_run {
    offload_file *f;
    uint64_t bytes;
    size_t block;
    int qd;
    bool write;
    char **bufs;
} disk_run;

static llmsim_status disk_timed(void *ctx, double *secs, diag *e)
{
    disk_run *r = ctx;
    return disk_pass(r->f, r->bytes, r->block, r->qd, r->write, r->bufs, secs, e);
}

/* One disk figure: passes over the file (measured again when their spread is
 * over the flag); the median seconds of a pass, its spread and the rate. */
static llmsim_status disk_figure(offload_file *f, uint64_t bytes, size_t block, int qd, bool write,
                                 char **bufs, int reps, double *secs, double *spread, double *Bps,
                                 diag *e)
{
    disk_run dr = {f, bytes, block, qd, write, bufs};
    llmsim_status st = median_again(disk_timed, &dr, reps, secs, spread, e);
    *Bps = st ? NAN : (double)(bytes / block * block) / *secs;
    return st;
}

/* Four transfer buffers of `bytes` for the disk passes, filled with
 * incompressible data, as weights and caches are: a virtual disk that
 * compresses or deduplicates would make a constant pattern look fast. */
static llmsim_status disk_bufs(char *bufs[4], size_t bytes, diag *e)
{
    for (int q = 0; q < 4; q++) {
        if (!(bufs[q] = offload_alloc(bytes)))
            return diag_set(e, LLMSIM_EFAIL, "out of memory (disk probe)");
        uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(q + 1);
        for (size_t i = 0; i + 8 <= bytes; i += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(bufs[q] + i, &x, 8);
        }
    }
    return LLMSIM_OK;
}

/* ---- compute lost to concurrent disk transfers */

typedef struct io_stream {
    offload_file *f;
    char *buf;
    size_t block;
    uint64_t bytes; /* of the file */
    bool write;
    atomic_bool stop;
    atomic_ullong blocks; /* transferred */
    llmsim_status st;
    diag e;
} io_stream;

/* Transfer the file block by block, round and round, until told to stop:
 * one transfer at a time, as the engine's I/O thread. */
static void *io_stream_thread(void *arg)
{
    io_stream *s = arg;
    diag_clear(&s->e);
    uint64_t off = 0;
    while (!atomic_load(&s->stop) && !s->st) {
        if (off + s->block > s->bytes)
            off = 0;
        s->st = io_block(s->f, s->buf, s->block, off, s->write,
                         (uint64_t)atomic_load(&s->blocks) + 1, &s->e);
        if (!s->st)
            atomic_fetch_add(&s->blocks, 1);
        off += s->block;
    }
    return NULL;
}

/* One direction of probe_io_loss: rounds of passes alone, then beside a
 * stream; the time lost and the bytes moved are added to *lost, *moved. */
static llmsim_status io_loss_rounds(prof *P, read_ctx *rc, offload_file *f, uint64_t file_bytes,
                                    size_t block, char *buf, bool write, double *lost,
                                    double *moved, diag *e)
{
    const int rounds = P->o->quick ? 2 : 3, passes = P->o->quick ? 4 : 8;
    double alone = 0;
    int nalone = 0;
    char what[96];
    snprintf(what, sizeof what, "compute beside disk %s", write ? "writes" : "reads");
    for (int r = 0; r < rounds && !stopped(P); r++) {
        progress(P, what);
        double t0 = llmsim_now_s();
        for (int k = 0; k < passes; k++)
            read_pass(rc);
        alone += llmsim_now_s() - t0;
        nalone += passes;
        io_stream s = {f, buf, block, file_bytes, write, false, 0, LLMSIM_OK, {0}};
        atomic_init(&s.stop, false);
        atomic_init(&s.blocks, 0);
        pthread_t th;
        if (pthread_create(&th, NULL, io_stream_thread, &s) != 0)
            return diag_set(e, LLMSIM_EFAIL, "cannot start the disk loss probe's thread");
        t0 = llmsim_now_s();
        for (int k = 0; k < passes; k++)
            read_pass(rc);
        double with = llmsim_now_s() - t0;
        double moved0 = (double)atomic_load(&s.blocks) * (double)block; /* while the passes ran */
        atomic_store(&s.stop, true);
        pthread_join(th, NULL);
        if (s.st) {
            *e = s.e;
            return s.st;
        }
        *lost += with - passes * (alone / nalone);
        *moved += moved0;
    }
    return LLMSIM_OK;
}

/* The compute time lost per GB transferred while the CPU computes, for
 * reads and then writes: the engine's decode pass over weights in DRAM (the
 * read probe's largest working set) is timed alone and with one disk stream
 * running beside it, in alternating phases; the loss is the time the passes
 * took beyond their time alone, over the bytes the stream moved meanwhile. */
static llmsim_status probe_io_loss(prof *P, hwprofile *hw, pool *pl, offload_file *f,
                                   uint64_t file_bytes, size_t block, char *buf, diag *e)
{
    const size_t h = READ_H;
    const size_t count = read_ws_max(hw, P->o->quick) / (h * h * sizeof(uint16_t));
    uint16_t *w = weight_set(h, count);
    float *x = calloc(h, sizeof(float)), *y = malloc(h * sizeof(float));
    llmsim_status st =
        w && x && y ? LLMSIM_OK : diag_set(e, LLMSIM_EFAIL, "out of memory (disk loss probe)");
    read_ctx rc = {pl, x, w, h, count, y};
    if (!st)
        read_pass(&rc); /* warm-up */
    for (int wr = 0; wr < 2 && !st && !stopped(P); wr++) {
        double lost = 0, moved = 0;
        st = io_loss_rounds(P, &rc, f, file_bytes, block, buf, wr == 1, &lost, &moved, e);
        if (st || stopped(P) || !(moved > 0))
            continue;
        double per_GB = lost > 0 ? lost / moved * 1e9 : 0;
        *(wr ? &hw->disk.write_loss_s_per_GB : &hw->disk.read_loss_s_per_GB) = per_GB;
        strbuf_printf(&P->notes,
                      " A decode pass over weights in DRAM lost %.0f ms per GB %s beside "
                      "it (%.1f GB moved).",
                      1e3 * per_GB, wr ? "written" : "read", moved / 1e9);
        strbuf_printf(P->summary, "disk %-5s compute lost       %8.1f ms per GB\n",
                      wr ? "write" : "read", 1e3 * per_GB);
    }
    free(w);
    free(x);
    free(y);
    return st;
}

/* What the disk probe measures: transfer block sizes (the largest also sizes
 * the buffers and the warm-up), queue depths, repetitions and the file. */
typedef struct disk_grid {
    const size_t *blocks;
    int nblocks;
    const int *qds;
    int nqds;
    int reps;
    uint64_t file_bytes;
} disk_grid;

static disk_grid disk_grid_get(bool quick)
{
    static const size_t blocks_full[] = {256u << 10, 1u << 20, 4u << 20, 16u << 20, 64u << 20};
    static const size_t blocks_quick[] = {1u << 20, 16u << 20};
    static const int qds_full[] = {1, 2, 4}, qds_quick[] = {1, 4};
    disk_grid g = {quick ? blocks_quick : blocks_full, quick ? 2 : 5, quick ? qds_quick : qds_full,
                   quick ? 2 : 3, quick ? 2 : 3, (quick ? (uint64_t)256 : (uint64_t)1024) << 20};
    return g;
}

/* --disk-dir as messages show it. */
static const char *disk_dir_shown(const prof *P)
{
    return P->o->disk_dir ? P->o->disk_dir : "(default)";
}

/* The probe's directory under --disk-dir (nothing to remove when this
 * fails), and the room free there into hw->disk.capacity_bytes. */
static llmsim_status disk_dir_open(prof *P, hwprofile *hw, offload_dir *d, diag *e)
{
    /* the disk measured is the one the directory is on: a missing one (a
     * typo) is refused rather than made somewhere else */
    struct stat sb;
    if (P->o->disk_dir && P->o->disk_dir[0] && (stat(P->o->disk_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        return diag_set(e, LLMSIM_EINPUT, "--disk-dir %s: no such directory; give a directory on "
                        "the disk to measure", disk_dir_shown(P));
    if (offload_dir_create(P->o->disk_dir, d, e)) {
        diag_clear(e);
        return diag_set(e, LLMSIM_EINPUT, "--disk-dir %s: cannot create a directory there (missing, "
                        "read-only or not a directory)", disk_dir_shown(P));
    }
    struct statvfs vfs;
    if (statvfs(d->path, &vfs) == 0)
        hw->disk.capacity_bytes = (double)vfs.f_bavail * (double)vfs.f_frsize;
    return LLMSIM_OK;
}

/* The probe's file of `bytes` in d; a file that does not fit says so. */
static llmsim_status disk_file_open(prof *P, const hwprofile *hw, offload_dir *d, uint64_t bytes,
                                    offload_file **f, diag *e)
{
    llmsim_status st = offload_file_create(d, "probe.bin", bytes, f, e);
    if (st && (st == LLMSIM_EINPUT || hw->disk.capacity_bytes < (double)bytes)) {
        diag_clear(e);
        st = diag_set(e, LLMSIM_EINPUT, "--disk-dir %s: no room for the %.0f MiB test file "
                      "(%.0f MiB free)", disk_dir_shown(P),
                      (double)bytes / 1048576, hw->disk.capacity_bytes / 1048576);
    }
    return st;
}

/* One direction of the disk (writes or reads): a figure per block size and
 * queue depth, noted and summarized; the queue-depth-1 figures are the
 * link's points, and the link is fitted to them. */
static llmsim_status disk_link(prof *P, const disk_grid *g, offload_file *f, char **bufs, bool write,
                               hw_link *l, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    const char *dir = write ? "write" : "read";
    l->npoints = 0;
    for (int bi = 0; bi < g->nblocks && !st && !stopped(P); bi++) {
        for (int qi = 0; qi < g->nqds && !st && !stopped(P); qi++) {
            const size_t block = g->blocks[bi];
            const int qd = g->qds[qi];
            char what[96];
            snprintf(what, sizeof what, "disk %s, blocks of %zu KiB, queue depth %d", dir,
                     block >> 10, qd);
            progress(P, what);
            double spread = 0, med = 0, bw;
            if ((st = disk_figure(f, g->file_bytes, block, qd, write, bufs, g->reps, &med, &spread,
                                  &bw, e)))
                break;
            flag(P, what, spread);
            strbuf_printf(&P->notes, " %s %zu KiB QD%d %.0f MB/s;", dir, block >> 10, qd, bw / 1e6);
            strbuf_printf(P->summary, "disk %-5s %6zu KiB QD%d   %8.1f MB/s   spread %4.1f%%%s\n",
                          dir, block >> 10, qd, bw / 1e6, 100 * spread,
                          spread > PROFILE_SPREAD_FLAG ? "  FLAGGED" : "");
            if (qd == 1) /* the link: one transfer at a time, as the engine's I/O thread */
                l->points[l->npoints++] = (hw_point){(double)block, (double)block / bw, spread};
        }
    }
    if (!st && l->npoints) {
        l->present = true;
        st = profile_link_fit(l, e);
    }
    return st;
}

/* The measurements on the open file: the disk is present; a warm-up pass,
 * then the write and read links, then the compute lost beside transfers. */
static llmsim_status disk_measure(prof *P, hwprofile *hw, pool *pl, const disk_grid *g,
                                  offload_file *f, char **bufs, diag *e)
{
    const size_t block_max = g->blocks[g->nblocks - 1];
    hw->disk.present = true;
    strbuf_printf(&P->notes, " Disk (O_DIRECT%s, %s):", f->direct ? "" : " refused: buffered",
                  P->o->disk_dir ? P->o->disk_dir : "the default offload directory");
    /* warm-up: one untimed write pass that also allocates the whole file, so the
     * timed writes measure the disk rather than the file system's block
     * allocation (and the reads find the file written) */
    progress(P, "disk warm-up");
    double warm;
    llmsim_status st = disk_pass(f, g->file_bytes, block_max, 1, true, bufs, &warm, e);
    for (int w = 0; w < 2 && !st; w++) /* writes first */
        st = disk_link(P, g, f, bufs, w == 0, w == 0 ? &hw->disk.write : &hw->disk.read, e);
    if (!st && !stopped(P))
        st = probe_io_loss(P, hw, pl, f, g->file_bytes, block_max, bufs[0], e);
    return st;
}

static llmsim_status probe_disk(prof *P, hwprofile *hw, pool *pl, diag *e)
{
    const disk_grid g = disk_grid_get(P->o->quick);
    offload_dir d;
    llmsim_status st = disk_dir_open(P, hw, &d, e);
    if (st)
        return st;
    offload_file *f = NULL;
    char *bufs[4] = {0};
    if (!(st = disk_file_open(P, hw, &d, g.file_bytes, &f, e)) &&
        !(st = disk_bufs(bufs, g.blocks[g.nblocks - 1], e)))
        st = disk_measure(P, hw, pl, &g, f, bufs, e);
    for (int q = 0; q < 4; q++)
        free(bufs[q]);
    offload_dir_remove(&d);
    return st;
}

/* The scratch of a one-figure disk measurement: a fresh directory under dir
 * (*d, which the caller removes whatever this returns) holding a file of
 * `bytes`, written once in `block` transfers from bufs, untimed by the
 * caller: the pass allocates the file and gives reads their data, as the
 * profile's warm-up does; *write_s is the time it took. */
static llmsim_status disk_scratch(const char *dir, const char *name, uint64_t bytes, size_t block,
                                  char **bufs, offload_dir *d, offload_file **f, double *write_s,
                                  diag *e)
{
    llmsim_status st = offload_dir_create(dir, d, e);
    if (!st)
        st = offload_file_create(d, name, bytes, f, e);
    if (!st)
        st = disk_pass(*f, bytes, block, 1, true, bufs, write_s, e);
    return st;
}

/* See profiler.h. */
llmsim_status profile_disk_now(const char *dir, double *read_Bps, double *write_Bps, diag *e)
{
    *read_Bps = *write_Bps = NAN;
    char *buf = offload_alloc(PROFILE_DISK_NOW_BLOCK);
    char *bufs[4] = {buf, buf, buf, buf};
    offload_dir d = {0};
    offload_file *f = NULL;
    double w = 0, r = 0;
    llmsim_status st = buf ? disk_scratch(dir, "check.bin", PROFILE_DISK_NOW_BYTES,
                                          PROFILE_DISK_NOW_BLOCK, bufs, &d, &f, &w, e)
                           : diag_set(e, LLMSIM_EFAIL, "out of memory (disk check)");
    if (!st)
        st = disk_pass(f, PROFILE_DISK_NOW_BYTES, PROFILE_DISK_NOW_BLOCK, 1, false, bufs, &r, e);
    if (!st) {
        *write_Bps = (double)PROFILE_DISK_NOW_BYTES / w;
        *read_Bps = (double)PROFILE_DISK_NOW_BYTES / r;
    }
    free(buf);
    offload_dir_remove(&d);
    return st;
}

/* See profiler.h. */
llmsim_status profile_disk_figure(const char *dir, uint64_t bytes, size_t block, int qd, bool write,
                                  int reps, double *Bps, double *spread, diag *e)
{
    *Bps = *spread = NAN;
    if (block == 0 || block % 4096 || bytes < block || qd < 1 || qd > 4 || reps < 1)
        return diag_set(e, LLMSIM_EINPUT,
                        "disk figure: the block must be a multiple of 4 KiB no larger than "
                        "the file, the queue depth 1 to 4, the repetitions at least 1");
    offload_dir d = {0};
    offload_file *f = NULL;
    char *bufs[4] = {0};
    double warm, secs;
    llmsim_status st = disk_bufs(bufs, block, e);
    if (!st && !(st = disk_scratch(dir, "figure.bin", bytes, block, bufs, &d, &f, &warm, e)))
        st = disk_figure(f, bytes, block, qd, write, bufs, reps, &secs, spread, Bps, e);
    for (int q = 0; q < 4; q++)
        free(bufs[q]);
    offload_dir_remove(&d);
    return st;
}

/* ---- the system */

static void system_info(hwprofile *hw)
{
    hw->cpu.cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    hw->cpu.memory_bytes = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    snprintf(hw->cpu.name, sizeof hw->cpu.name, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    c++;
                    while (*c == ' ')
                        c++;
                    c[strcspn(c, "\n")] = '\0';
                    snprintf(hw->cpu.name, sizeof hw->cpu.name, "%s", c);
                }
                break;
            }
        }
        fclose(f);
    }
}

static void gpu_progress(const char *what, void *ctx) { progress(ctx, what); }

llmsim_status profile_run(const profile_opts *o, hwprofile *hw, strbuf *summary, diag *e)
{
    memset(hw, 0, sizeof *hw);
    prof P = {o, summary, {0}, 0};
    double t0 = llmsim_now_s();
    system_info(hw);
    hwprofile_stamp(&hw->prov, o->command ? o->command : "llmsim profile");
    const char *host = hw->prov.host;
    snprintf(hw->name, sizeof hw->name, "%s", o->name ? o->name : "");
    if (!o->name)
        snprintf(hw->name, sizeof hw->name, "measured-%.50s", host);
    snprintf(hw->prov.description, sizeof hw->prov.description, "measured by llmsim profile%s on %s (%s, "
             "%d cores)", o->quick ? " --quick" : "", host, hw->cpu.name, hw->cpu.cores);
    strbuf_printf(summary, "host %s: %s, %d cores, %.1f GiB RAM\n", host, hw->cpu.name, hw->cpu.cores,
                  hw->cpu.memory_bytes / 1073741824.0);
    llmsim_status st;
    pool *pl = pool_create(hw->cpu.cores);
    if (!pl)
        return diag_set(e, LLMSIM_EFAIL, "cannot start threads");
    progress(&P, "memory copy bandwidth");
    if ((st = probe_memory(&P, hw, e)) || (st = probe_gemm(&P, hw, pl, e)) ||
        (st = probe_read(&P, hw, pl, e)) || (st = probe_attention(&P, hw, pl, e)) ||
        (st = probe_dequant(&P, hw, pl, e)) ||
        (st = probe_disk(&P, hw, pl, e)))
        goto out;
    char note[256] = "";
    profile_gpu_opts go = {o->quick, gpu_progress, &P};
    if ((st = profile_gpu(hw, &go, note, sizeof note, e)))
        goto out;
    if (note[0]) {
        strbuf_printf(summary, "GPU: %s\n", note);
        strbuf_printf(&P.notes, " GPU: %s.", note);
    }
    if (stopped(&P)) {
        st = diag_set(e, LLMSIM_EFAIL, "interrupted");
        goto out;
    }
    strbuf_printf(summary, "%d measurement%s flagged (spread over %.0f%%); %.1f s\n", P.flagged,
                  P.flagged == 1 ? "" : "s", 100 * PROFILE_SPREAD_FLAG, llmsim_now_s() - t0);
    snprintf(hw->prov.notes, sizeof hw->prov.notes,
             "Median of repeated runs after a warm-up (CPU GEMM, weight reads and attention: "
             "the mean of interleaved rounds without the fastest and slowest); spread = "
             "(max - min) / median; a figure that spread over %.0f%% was measured again, as "
             "many times again, and taken over all its runs. "
             "CPU GEMMs are the engine's own fused kernels (k_linear, %s).%s",
             100 * PROFILE_SPREAD_FLAG, k_isa_names[k_isa_get()], strbuf_str(&P.notes));
out:
    if (o->progress)
        fprintf(stderr, "\r%80s\r", "");
    pool_destroy(pl);
    strbuf_free(&P.notes);
    return st;
}
