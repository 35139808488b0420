/*
 * serve — the CPU backend of the serving engine (exec/serve_backend.h): the
 * weights where the policy's placement puts them (RAM, or the O_DIRECT
 * weights file, read unit by unit every iteration by an I/O thread while
 * the previous unit computes), the paged KV cache as a pool of blocks in RAM
 * and the swap space as a file of block slots on disk, and the forward pass
 * of an iteration's chunks in one batch, with layer.h's math (the same as
 * the plan backend's, row for row).
 *
 * A block holds block_size token slots of every layer, [layer][slot][K row,
 * V row] (a row as the plan backend stores it: fp16, or one quantized row),
 * padded to OFFLOAD_ALIGN so that one O_DIRECT transfer swaps it whole.
 */
#include "exec/serve_backend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "costmodel/placement.h"
#include "costmodel/sizes.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/layer.h"
#include "exec/cpu/ram.h"
#include "exec/model_io.h"
#include "exec/offload.h"
#include "exec/weights.h"

/* ---- the weights' reader: an I/O thread reads the disk units in their
 * order (the head, then the layers), read n into the slot it owns, when the
 * compute thread allows it (its slot is free) */

typedef struct wio {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, quit, failed;
    long long allowed, done; /* reads allowed and completed, counted over the run */
    diag err;
} wio;

typedef struct srv {
    serve_ctx c;
    const model *m;
    const quant *kq;
    exec_layout lay;       /* widths, the KV row; rows: the token budget */
    k_wtype wt;
    pool *pool;
    offload_dir dir;
    offload_file *wfile, *swapfile;
    cpu_ram ram;           /* every buffer's bytes (dry: counted only) */
    /* weights */
    exec_wunit *units;     /* [L + 1] */
    exec_wextent wext;
    exec_layer_names ln;
    exec_head_names hn;
    int *ord;              /* [L + 1] the disk units in read order */
    int nord;
    uint8_t *wstage[2], *hstage;   /* two layer slots, the head's */
    uint16_t *deq, *hdeq;          /* dequantized copies: a layer's, the head's */
    xl_ctx xl, xlh;                /* the layer math on deq, on hdeq */
    wio io;
    long long reads;       /* the weights' reads issued by past iterations */
    /* the KV pool */
    uint8_t *kv;
    size_t layer_bytes, block_stride;
    int64_t nblocks;
    /* scratch */
    exec_acts a;
    float *kf, *vf, *ascratch, *hx, *probs;
    int32_t *ids, *pos, *idx;
    int *chunk_of;         /* [token budget] each row's chunk */
    int64_t *pos64;
    uint16_t *round;
} srv;

static void *srv_alloc(srv *g, size_t bytes) { return cpu_ram_alloc(&g->ram, bytes); }

// ---- the weights

static llmsim_status weights_init(srv *g, diag *e)
{
    const int L = g->lay.L;
    const serve_setup *s = g->c.s;
    placement_realized pr;
    placement_realize(g->m, &s->pol, &pr);
    llmsim_status st = cpu_weights_init(&g->ram, &g->dir, g->m, &s->pol.weight_quant, &pr,
                                        g->c.o->eng, g->pool, &g->units, &g->wext, &g->wfile, e);
    if (st)
        return st;
    for (int u = 0; u <= L; u++)
        for (int i = 0; i < g->units[u].n; i++)
            if (g->units[u].t[i].home == TIER_GPU)
                return diag_set(e, LLMSIM_EINPUT, "the policy puts weights on the GPU, and the "
                                "CPU serving engine has none: give them to cpu and disk");
    if (!(g->ord = calloc((size_t)L + 1, sizeof *g->ord)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    if (g->units[L].disk_bytes)
        g->ord[g->nord++] = L;
    for (int j = 0; j < L; j++)
        if (g->units[j].disk_bytes)
            g->ord[g->nord++] = j;
    const bool layers_disk = g->nord > (g->units[L].disk_bytes ? 1 : 0);
    if (layers_disk)
        for (int k = 0; k < 2; k++)
            if (!(g->wstage[k] = srv_alloc(g, g->wext.unit_disk_bytes)))
                return diag_set(e, LLMSIM_EFAIL, "out of memory (weight staging)");
    if (g->units[L].disk_bytes && !(g->hstage = srv_alloc(g, g->units[L].disk_bytes)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory (weight staging)");
    size_t layer_deq = 0;
    for (int j = 0; j < L; j++)
        layer_deq = g->units[j].fp16_values > layer_deq ? g->units[j].fp16_values : layer_deq;
    if (layer_deq && !(g->deq = srv_alloc(g, layer_deq * 2)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory (dequantized weights)");
    if (g->units[L].fp16_values && !(g->hdeq = srv_alloc(g, g->units[L].fp16_values * 2)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory (dequantized weights)");
    return LLMSIM_OK;
}

/* Read n of the run: its unit and the buffer it goes to. */
static uint8_t *read_slot(const srv *g, long long n, int *unit)
{
    const int L = g->lay.L, p = (int)(n % g->nord);
    const bool head = g->units[L].disk_bytes != 0;
    *unit = g->ord[p];
    if (*unit == L)
        return g->hstage;
    return g->wstage[(p - (head ? 1 : 0)) & 1];
}

static void *wio_main(void *arg)
{
    srv *g = arg;
    wio *w = &g->io;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->quit && !w->failed && w->done >= w->allowed)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit || w->failed)
            break;
        long long n = w->done;
        pthread_mutex_unlock(&w->mu);
        int u;
        uint8_t *dst = read_slot(g, n, &u);
        diag e;
        diag_clear(&e);
        llmsim_status st = offload_read(g->wfile, dst, g->units[u].disk_bytes, g->units[u].disk_base, &e);
        pthread_mutex_lock(&w->mu);
        if (st) {
            w->failed = true;
            w->err = e;
        } else {
            w->done++;
        }
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Allow reads up to `allowed` (never fewer than before). */
static void wio_allow(srv *g, long long allowed)
{
    wio *w = &g->io;
    pthread_mutex_lock(&w->mu);
    if (allowed > w->allowed)
        w->allowed = allowed;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Wait until read n is done; the time waited is added to *wait_s. */
static llmsim_status wio_wait(srv *g, long long n, double *wait_s, diag *e)
{
    wio *w = &g->io;
    double t0 = llmsim_now_s();
    pthread_mutex_lock(&w->mu);
    while (!w->failed && w->done <= n)
        pthread_cond_wait(&w->cv, &w->mu);
    bool failed = w->failed;
    if (failed)
        *e = w->err;
    pthread_mutex_unlock(&w->mu);
    *wait_s += llmsim_now_s() - t0;
    return failed ? (e->status ? e->status : LLMSIM_EFAIL) : LLMSIM_OK;
}

// ---- the KV pool and the swap space

static llmsim_status kv_init(srv *g, diag *e)
{
    const serve_setup *s = g->c.s;
    const size_t bs = (size_t)s->cfg.block_size;
    g->layer_bytes = bs * 2 * g->lay.kv_row;
    const double block = (double)g->layer_bytes * (double)g->lay.L;
    if (block != s->block_bytes)
        return diag_set(e, LLMSIM_EFAIL, "the engine's KV block (%.0f B) is not the setup's (%.0f B)",
                        block, s->block_bytes);
    g->block_stride = (size_t)offload_round((uint64_t)block);
    g->nblocks = s->total_blocks;
    if (!(g->kv = srv_alloc(g, (size_t)g->nblocks * g->block_stride)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory (the KV pool of %lld blocks)",
                        (long long)g->nblocks);
    /* the swap space: block slots of block_stride bytes (a block padded to
     * OFFLOAD_ALIGN, so the file can exceed --swap-space by that padding);
     * none when nothing can swap */
    if (!g->ram.dry && s->swap_blocks > 0 && s->cfg.preempt != PREEMPT_RECOMPUTE)
        return offload_file_create(&g->dir, "swap.bin", (uint64_t)s->swap_blocks * g->block_stride,
                                   &g->swapfile, e);
    return LLMSIM_OK;
}

static uint8_t *kv_block(const srv *g, int32_t block, int layer)
{
    return g->kv + (size_t)block * g->block_stride + (size_t)layer * g->layer_bytes;
}

// ---- scratch

static llmsim_status scratch_init(srv *g, diag *e)
{
    const serve_setup *s = g->c.s;
    const size_t R = (size_t)s->cfg.token_budget, B = (size_t)s->cfg.max_batch;
    const size_t ctx = (size_t)s->max_context, kvd = g->lay.kvd, h = g->lay.h;
    /* exec_acts holds gbs * prompt rows and gbs rows of logits */
    g->lay.gbs = (int)B;
    g->lay.prompt = (long long)((R + B - 1) / B);
    if (!exec_acts_alloc(&g->a, &g->lay, cpu_ram_alloc_cb, &g->ram))
        return diag_set(e, LLMSIM_EFAIL, "out of memory (compute scratch)");
    struct {
        void **p;
        size_t bytes;
    } bufs[] = {
        {(void **)&g->kf, ctx * kvd * 4},
        {(void **)&g->vf, ctx * kvd * 4},
        {(void **)&g->ascratch, k_attention_scratch_floats(R < ctx ? R : ctx, ctx, (size_t)g->m->num_heads) * 4},
        {(void **)&g->hx, B * h * 4},
        {(void **)&g->probs, g->lay.vocab * 4},
        {(void **)&g->idx, g->lay.vocab * 4},
        {(void **)&g->ids, R * 4},
        {(void **)&g->pos, R * 4},
        {(void **)&g->pos64, R * 8},
        {(void **)&g->chunk_of, R * sizeof(int)},
        {(void **)&g->round, R * h * 2},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i].p = srv_alloc(g, bufs[i].bytes)))
            return diag_set(e, LLMSIM_EFAIL, "out of memory (compute scratch)");
    return LLMSIM_OK;
}

// ---- setup and teardown

static void srv_free(srv *g)
{
    if (g->io.started) {
        pthread_mutex_lock(&g->io.mu);
        g->io.quit = true;
        pthread_cond_broadcast(&g->io.cv);
        pthread_mutex_unlock(&g->io.mu);
        pthread_join(g->io.th, NULL);
        pthread_mutex_destroy(&g->io.mu);
        pthread_cond_destroy(&g->io.cv);
    }
    cpu_weights_free(g->units, g->lay.L);
    free(g->ord);
    void *bufs[] = {g->wstage[0], g->wstage[1], g->hstage, g->deq, g->hdeq, g->kv, g->kf, g->vf,
                    g->ascratch, g->hx, g->probs, g->ids, g->pos, g->idx, g->pos64, g->round, g->chunk_of};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    exec_acts_free(&g->a, cpu_ram_free_cb, NULL);
    pool_destroy(g->pool);
    offload_dir_remove(&g->dir);
}

static bool cpu_accepts(const hwprofile *hw) { return !hw->gpu.present; }

static llmsim_status cpu_setup(void **state, const serve_ctx *c, bool dry, diag *e)
{
    srv *g = calloc(1, sizeof *g);
    *state = g;
    if (!g)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    const serve_setup *s = c->s;
    g->c = *c;
    g->ram.dry = dry;
    g->m = s->cm.m;
    g->kq = &s->pol.kv_quant;
    g->wt = (k_wtype)g->m->dtype;
    g->dir.slot = -1;
    const workload w = {.prompt_len = 1, .gen_len = 1, .num_prompts = 1};
    /* the widths and the KV row; the setup's policy has one batch of one
     * sequence, whose homes (read by exec_layout_init) are RAM */
    static tier ram[1] = {TIER_CPU};
    plan pl0;
    memset(&pl0, 0, sizeof pl0);
    pl0.kv_tier = pl0.act_tier = ram;
    exec_layout_init(&g->lay, g->m, &s->pol, &w, &pl0);
    exec_layer_names_get(g->m, &g->ln);
    exec_head_names_get(g->m, &g->hn);
    const engine_opts *o = c->o->eng;
    const int threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (!(g->pool = pool_create(threads)))
        return diag_set(e, LLMSIM_EFAIL, "cannot start the compute threads");
    if (!dry)
        pool_pin(g->pool);
    llmsim_status st;
    if ((!dry && (st = offload_dir_create(o->offload_parent, &g->dir, e))) ||
        (st = weights_init(g, e)) || (st = kv_init(g, e)) || (st = scratch_init(g, e)))
        return st;
    g->xl = (xl_ctx){.m = g->m, .wq = &s->pol.weight_quant, .pool = g->pool, .units = g->units,
                     .wt = g->wt, .deq = g->deq, .ln = &g->ln, .hn = &g->hn, .a = &g->a,
                     .h = g->lay.h, .qd = g->lay.qd, .kvd = g->lay.kvd, .f = g->lay.f,
                     .wmax = g->lay.wmax};
    g->xlh = g->xl;
    g->xlh.deq = g->hdeq;
    if (!dry && g->nord) {
        pthread_mutex_init(&g->io.mu, NULL);
        pthread_cond_init(&g->io.cv, NULL);
        if (pthread_create(&g->io.th, NULL, wio_main, g) != 0) {
            pthread_mutex_destroy(&g->io.mu);
            pthread_cond_destroy(&g->io.cv);
            return diag_set(e, LLMSIM_EFAIL, "cannot start the weights' I/O thread");
        }
        g->io.started = true;
    }
    return LLMSIM_OK;
}

static llmsim_status cpu_prepare(void **state, const serve_ctx *c, diag *e)
{
    return cpu_setup(state, c, false, e);
}

static void cpu_release(void *state)
{
    if (!state)
        return;
    srv_free(state);
    free(state);
}

static llmsim_status cpu_ram_bytes(const serve_ctx *c, double *bytes, diag *e)
{
    void *state = NULL;
    llmsim_status st = cpu_setup(&state, c, true, e);
    *bytes = state ? ((srv *)state)->ram.bytes : 0;
    cpu_release(state);
    return st;
}

// ---- swaps

static llmsim_status cpu_swap(void *state, const serve_block_move *mv, size_t n, double *seconds,
                              diag *e)
{
    srv *g = state;
    for (size_t i = 0; i < n; i++) {
        uint8_t *blk = g->kv + (size_t)mv[i].dev * g->block_stride;
        const uint64_t off = (uint64_t)mv[i].swap * g->block_stride;
        double t0 = llmsim_now_s();
        llmsim_status st = mv[i].out ? offload_write(g->swapfile, blk, g->block_stride, off, e)
                                     : offload_read(g->swapfile, blk, g->block_stride, off, e);
        if (st)
            return st;
        seconds[i] = llmsim_now_s() - t0;
    }
    return LLMSIM_OK;
}

// ---- the forward pass

/* The rows of an iteration: row r is a token of chunk chunk_of[r]. */
typedef struct kv_job {
    const srv *g;
    const serve_fwd *f;
    int layer;
    const int *chunk_of;  /* put: [rows] */
    const float *kk, *vv; /* put: the new K and V rows */
    const int32_t *table; /* gather */
    size_t first;         /* gather: the first position (the window's) */
} kv_job;

static void kv_put_rows(void *ctx, size_t b, size_t e)
{
    const kv_job *J = ctx;
    const srv *g = J->g;
    const size_t bs = (size_t)g->c.s->cfg.block_size, kvd = g->lay.kvd;
    for (size_t r = b; r < e; r++) {
        const int c = J->chunk_of[r];
        const int32_t *tab = J->f->b->tab[J->f->it->req[c]].ids;
        const long long p = g->pos[r];
        exec_kv_put(g->kq, kvd, g->lay.kv_row, kv_block(g, tab[p / (long long)bs], J->layer),
                    2 * g->lay.kv_row, 0, (long long)((size_t)p % bs), J->kk + r * kvd, J->vv + r * kvd);
    }
}

static void kv_gather_rows(void *ctx, size_t b, size_t e)
{
    const kv_job *J = ctx;
    const srv *g = J->g;
    const size_t bs = (size_t)g->c.s->cfg.block_size, kvd = g->lay.kvd;
    for (size_t u = b; u < e; u++) {
        const size_t p = J->first + u;
        exec_kv_get(g->kq, kvd, g->lay.kv_row, kv_block(g, J->table[p / bs], J->layer),
                    2 * g->lay.kv_row, 0, (long long)(p % bs), g->kf + p * kvd, g->vf + p * kvd);
    }
}

/* Loops over fewer values than this run on the compute thread alone. */
#define SRV_PAR_MIN_VALUES 32768

static void srv_par(const srv *g, size_t units, size_t values, void (*fn)(void *, size_t, size_t),
                    void *ctx)
{
    if (values < SRV_PAR_MIN_VALUES)
        fn(ctx, 0, units);
    else
        pool_for(g->pool, units, fn, ctx);
}

/* Decoder layer j over the iteration's rows: K and V into the blocks, each
 * chunk's attention over its context. */
static void layer_forward(srv *g, const serve_fwd *f, int j, const uint8_t *stage, size_t rows,
                          const int *chunk_of)
{
    const model *m = g->m;
    const size_t qd = g->lay.qd, kvd = g->lay.kvd;
    const serve_iter *it = f->it;
    if (g->units[j].fp16_values)
        xl_dequant(&g->xl, j, stage);
    xl_qkv(&g->xl, j, stage, rows);
    float *q = g->a.qkv, *kk = g->a.qkv + rows * qd, *vv = kk + rows * kvd;
    if (m->position == MODEL_POS_ROTARY)
        xl_rotary(&g->xl, q, kk, g->pos64, rows);
    kv_job J = {.g = g, .f = f, .layer = j, .chunk_of = chunk_of, .kk = kk, .vv = vv};
    srv_par(g, rows, rows * 2 * kvd, kv_put_rows, &J);
    size_t off = 0;
    for (int c = 0; c < it->nch; c++) {
        const size_t ctx = (size_t)it->ch[c].ctx, t = (size_t)it->ch[c].tokens;
        J.table = f->b->tab[it->req[c]].ids;
        J.first = (size_t)model_attn_first(m, (int64_t)ctx); /* the chunk's first query's window */
        srv_par(g, ctx + t - J.first, (ctx + t - J.first) * 2 * kvd, kv_gather_rows, &J);
        k_attention(g->pool, q + off * qd, t, ctx, g->kf, g->vf, (size_t)m->num_heads,
                    (size_t)m->num_kv_heads, (size_t)m->head_dim, (size_t)m->sliding_window,
                    g->a.att + off * qd, g->ascratch);
        off += t;
    }
    xl_attn_out(&g->xl, j, stage, rows);
    xl_mlp(&g->xl, j, stage, rows);
    if (j + 1 < g->lay.L) { /* between layers the hidden states are fp16, as the plan backend keeps them */
        k_convert_f32_to_f16(g->pool, g->a.x, rows * g->lay.h, g->round);
        k_convert_to_f32(g->pool, g->round, K_WTYPE_F16, rows * g->lay.h, g->a.x);
    }
}

/* The iteration's rows: token ids, positions, and each row's chunk. */
static size_t gather_rows(srv *g, const serve_fwd *f, int *chunk_of)
{
    const serve_iter *it = f->it;
    size_t r = 0;
    for (int c = 0; c < it->nch; c++) {
        const int32_t *seq = f->seq[it->req[c]];
        for (int64_t a = 0; a < it->ch[c].tokens; a++, r++) {
            const int64_t p = it->ch[c].ctx + a;
            g->ids[r] = seq[p];
            g->pos[r] = (int32_t)p;
            g->pos64[r] = p;
            chunk_of[r] = c;
        }
    }
    return r;
}

/* The next token of every emitting chunk, from its last row. */
static void sample_emitting(srv *g, const serve_fwd *f, const uint8_t *hstage)
{
    const serve_iter *it = f->it;
    const size_t h = g->lay.h, V = g->lay.vocab;
    size_t ne = 0, off = 0;
    for (int c = 0; c < it->nch; c++) {
        off += (size_t)it->ch[c].tokens;
        if (it->ch[c].emits)
            memcpy(g->hx + ne++ * h, g->a.x + (off - 1) * h, h * 4);
    }
    if (!ne)
        return;
    xl_logits(&g->xlh, g->hx, ne, hstage);
    ne = 0;
    for (int c = 0; c < it->nch; c++) {
        if (!it->ch[c].emits)
            continue;
        const uint32_t req = it->req[c];
        const int64_t at = it->ch[c].ctx + it->ch[c].tokens;
        const float *lg = g->a.logits + ne++ * V;
        if (g->c.o->on_logits)
            g->c.o->on_logits(g->c.o->logits_ctx, req, f->step[c], lg, V);
        f->seq[req][at] = mio_sample(g->c.o->eng, lg, V, (long long)req, f->step[c], g->probs,
                                     g->idx);
    }
}

static llmsim_status cpu_forward(void *state, const serve_fwd *f, double *weights_s, diag *e)
{
    srv *g = state;
    const int L = g->lay.L;
    const size_t rows = gather_rows(g, f, g->chunk_of);
    /* this iteration's reads are n0 .. n0 + nord - 1: the head's, then the
     * layers' through two slots, each slot read again once its layer ran */
    const long long n0 = g->reads, end = n0 + g->nord;
    const bool head_disk = g->units[L].disk_bytes != 0;
    const int layer_reads = g->nord - (head_disk ? 1 : 0);
    long long next = n0; /* the next read to wait for */
    llmsim_status st;
    if (g->nord)
        wio_allow(g, n0 + (head_disk ? 1 : 0) + (layer_reads < 2 ? layer_reads : 2));
    if (head_disk && (st = wio_wait(g, next++, weights_s, e)))
        return st;
    if (g->units[L].fp16_values)
        xl_dequant(&g->xlh, L, g->hstage);
    xl_embed(&g->xlh, g->ids, g->pos, rows, g->hstage, g->a.x);
    for (int j = 0; j < L; j++) {
        const uint8_t *stage = NULL;
        const bool disk = g->units[j].disk_bytes != 0;
        if (disk) {
            if ((st = wio_wait(g, next, weights_s, e)))
                return st;
            int u;
            stage = read_slot(g, next, &u);
        }
        layer_forward(g, f, j, stage, rows, g->chunk_of);
        if (disk) { /* its slot is free for the read two after it */
            next++;
            wio_allow(g, next + 2 < end ? next + 2 : end);
        }
    }
    g->reads = end;
    sample_emitting(g, f, g->hstage);
    return LLMSIM_OK;
}

static void cpu_finish(void *state, engine_serve_result *r)
{
    srv *g = state;
    r->ram_bytes = g->ram.bytes;
    r->direct_io = offload_dir_direct(&g->dir);
}

const serve_backend_ops exec_cpu_serve_backend = {
    .name = "cpu",
    .accepts = cpu_accepts,
    .ram_bytes = cpu_ram_bytes,
    .prepare = cpu_prepare,
    .swap = cpu_swap,
    .forward = cpu_forward,
    .finish = cpu_finish,
    .release = cpu_release,
};
