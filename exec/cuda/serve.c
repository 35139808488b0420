/*
 * serve — the GPU backend of the serving engine (exec/serve_backend.h), over
 * the device of exec/cuda/dev.h (a CUDA GPU, or the host emulation with
 * engine_opts.gpu_emulated): the paged KV cache as a pool of blocks in device
 * memory, the swap space in pinned host memory, and an iteration's chunks in
 * one batch with layer.h's math, the GPU plan backend's.
 *
 * A block holds block_size token slots of every layer, [layer][slot][K row,
 * V row] (fp16 rows, or one quantized row each), contiguous, so one copy
 * swaps it; a swap-out goes device -> host on the store stream, a swap-in
 * host -> device on the cache-load stream after the iteration's swap-outs
 * (a block swapped out may be the one swapped in to), and the compute waits
 * for both.
 *
 * Weights at their homes: device memory, or pinned CPU memory streamed unit
 * by unit every iteration through two device slots on the weight-load
 * stream, the next unit's copy overlapping this one's compute (events order
 * a slot's reuse after the compute that read it). The units run as the head
 * (embeddings), the layers, the head again (logits). Weights on disk are
 * refused: give their fraction to CPU memory.
 *
 * Each chunk is its own sequence in the kernels: rotary, K and V stores and
 * attention run per chunk over its block table (uploaded each iteration),
 * the GEMMs over every row of the batch at once. Hidden states are rounded
 * to fp16 between layers, as the CPU serving backend rounds them. On the
 * host emulation the kernels are the CPU's batch-invariant ones; cuBLAS's
 * GEMMs on a GPU may change a row's last bits with the batch's size, so a
 * served token there can differ from a solo run's where the solo run's
 * logits nearly tie (test_serve_engine_gpu checks exactly that).
 */
#include "exec/serve_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "costmodel/placement.h"
#include "exec/cpu/pool.h"
#include "exec/cuda/layer.h"
#include "exec/model_io.h"

typedef struct gsrv {
    serve_ctx c;
    const model *m;
    exec_layout lay;       /* widths, the KV row; rows: the token budget */
    gmem mem;
    gdev *dev;
    pool *pool;            /* weight generation */
    offload_dir dir;
    gl_weights w;
    uint16_t *hdeq;        /* device: the head's dequantized matrices */
    gl_ctx gl, glh;        /* the layer math on w.deq, the head's on hdeq */
    exec_layer_names ln;
    exec_head_names hn;
    int nseq;              /* units an iteration runs: the head, L layers, the head */
    /* the KV pool and the swap space */
    uint8_t *kv;           /* device [block][layer][slot][K, V] */
    size_t layer_bytes, block_bytes;
    int64_t blocks_per_seq;
    uint8_t *swap;         /* pinned [swap slot][block_bytes] */
    uint16_t *kv_f16;      /* device: a chunk's quantized KV dequantized, [ctx][K, V] */
    double *inv_freq;      /* device: the scaled rotary frequencies, or NULL */
    /* scratch */
    exec_acts a;
    void *lin;
    int32_t *ids_dev, *ids_host;   /* [2 R]: token ids, then learned-position ids */
    int32_t *tab_dev, *tab_host;   /* [max_batch * blocks_per_seq] the chunks' tables */
    uint16_t *round;               /* device [R][h] */
    float *hx;                     /* device [B][h] the emitting rows */
    float *logits_host;            /* pinned [B][vocab] */
    float *probs;
    int32_t *idx;
    /* events: weight slot ws loaded, and done with (computed over) */
    gdev_event *ev_loaded[2], *ev_used[2];
    gdev_event **ev_stall;         /* [2 nseq]: around the compute's wait for each unit */
    gdev_event *ev_out, *ev_in, *ev_copy[2];
} gsrv;

// ---- setup

static llmsim_status weights_init(gsrv *g, diag *e)
{
    placement_realized pr;
    placement_realize(g->m, &g->c.s->pol, &pr);
    TRY(gl_weights_layout(&g->mem, &g->dir, g->m, &g->c.s->pol.weight_quant, &pr, &g->w, e));
    if (g->w.wext.disk_bytes)
        return diag_set(e, LLMSIM_EINPUT, "the policy puts weights on disk, and GPU serving "
                        "streams them from CPU memory only: give the disk fraction to cpu");
    const exec_wunit *head = &g->w.units[g->lay.L];
    if (head->fp16_values &&
        !(g->hdeq = gmem_dalloc(&g->mem, head->fp16_values * 2, "the head's dequantized weights", e)))
        return e->status;
    return LLMSIM_OK;
}

static llmsim_status kv_init(gsrv *g, diag *e)
{
    const serve_setup *s = g->c.s;
    const size_t bs = (size_t)s->cfg.block_size;
    g->layer_bytes = bs * 2 * g->lay.kv_row;
    g->block_bytes = g->layer_bytes * (size_t)g->lay.L;
    if ((double)g->block_bytes != s->block_bytes)
        return diag_set(e, LLMSIM_EFAIL, "the engine's KV block (%zu B) is not the setup's (%.0f B)",
                        g->block_bytes, s->block_bytes);
    g->blocks_per_seq = (s->max_context + s->cfg.block_size - 1) / s->cfg.block_size;
    if (!(g->kv = gmem_dalloc(&g->mem, (size_t)s->total_blocks * g->block_bytes,
                              "the KV cache's blocks", e)))
        return e->status;
    if (s->swap_blocks > 0 && s->cfg.preempt != PREEMPT_RECOMPUTE &&
        !(g->swap = gmem_halloc(&g->mem, (size_t)s->swap_blocks * g->block_bytes,
                                "the swap space", e)))
        return e->status;
    if (s->pol.kv_quant.bits &&
        !(g->kv_f16 = gmem_dalloc(&g->mem, (size_t)s->max_context * 2 * g->lay.kvd * 2,
                                  "the dequantized KV of a chunk", e)))
        return e->status;
    return LLMSIM_OK;
}

static llmsim_status scratch_init(gsrv *g, diag *e)
{
    const serve_setup *s = g->c.s;
    const size_t R = (size_t)s->cfg.token_budget, B = (size_t)s->cfg.max_batch;
    const size_t h = g->lay.h, V = g->lay.vocab;
    g->lay.gbs = (int)B; /* exec_acts holds gbs * prompt rows and gbs rows of logits */
    g->lay.prompt = (long long)((R + B - 1) / B);
    gmem_cb cb = {&g->mem, e};
    if (!exec_acts_alloc(&g->a, &g->lay, gmem_scratch_alloc_cb, &cb))
        return e->status ? e->status : diag_set(e, LLMSIM_EFAIL, "out of memory (compute scratch)");
    const size_t tab = B * (size_t)g->blocks_per_seq * 4;
    if (!(g->lin = gmem_dalloc(&g->mem, gdev_linear_scratch_bytes(R, g->lay.wmax), "scratch", e)) ||
        !(g->ids_dev = gmem_dalloc(&g->mem, 2 * R * 4, "scratch", e)) ||
        !(g->ids_host = gmem_halloc(&g->mem, 2 * R * 4, "scratch", e)) ||
        !(g->tab_dev = gmem_dalloc(&g->mem, tab, "the block tables", e)) ||
        !(g->tab_host = gmem_halloc(&g->mem, tab, "the block tables", e)) ||
        !(g->round = gmem_dalloc(&g->mem, R * h * 2, "scratch", e)) ||
        !(g->hx = gmem_dalloc(&g->mem, B * h * 4, "scratch", e)) ||
        !(g->logits_host = gmem_halloc(&g->mem, B * V * 4, "the logits", e)))
        return e->status;
    if (!(g->probs = malloc(V * 4)) || !(g->idx = malloc(V * 4)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    return LLMSIM_OK;
}

static llmsim_status events_init(gsrv *g, diag *e)
{
    for (int s = 0; s < 2; s++) {
        TRY(gdev_event_new(g->dev, &g->ev_loaded[s], e));
        TRY(gdev_event_new(g->dev, &g->ev_used[s], e));
        TRY(gdev_event_new(g->dev, &g->ev_copy[s], e));
    }
    TRY(gdev_event_new(g->dev, &g->ev_out, e));
    TRY(gdev_event_new(g->dev, &g->ev_in, e));
    if (!(g->ev_stall = calloc(2 * (size_t)g->nseq, sizeof *g->ev_stall)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    for (int k = 0; k < 2 * g->nseq; k++)
        TRY(gdev_event_new(g->dev, &g->ev_stall[k], e));
    return LLMSIM_OK;
}

static void gs_free(gsrv *g)
{
    gmem *mm = &g->mem;
    if (g->dev && !mm->dry) {
        diag e;
        diag_clear(&e);
        (void)gdev_sync(g->dev, &e); /* nothing in flight touches what is freed below */
    }
    gl_weights_free(mm, &g->w);
    exec_acts_free(&g->a, gmem_scratch_free_cb, mm);
    void *d[] = {g->hdeq, g->kv, g->kv_f16, g->lin, g->ids_dev, g->tab_dev, g->round, g->hx,
                 g->inv_freq};
    void *h[] = {g->swap, g->ids_host, g->tab_host, g->logits_host};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        gmem_release(mm, d[i], true);
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++)
        gmem_release(mm, h[i], false);
    free(g->probs);
    free(g->idx);
    if (g->dev) {
        for (int s = 0; s < 2; s++) {
            gdev_event_free(g->dev, g->ev_loaded[s]);
            gdev_event_free(g->dev, g->ev_used[s]);
            gdev_event_free(g->dev, g->ev_copy[s]);
        }
        gdev_event_free(g->dev, g->ev_out);
        gdev_event_free(g->dev, g->ev_in);
        for (int k = 0; g->ev_stall && k < 2 * g->nseq; k++)
            gdev_event_free(g->dev, g->ev_stall[k]);
    }
    free(g->ev_stall);
    pool_destroy(g->pool);
    offload_dir_remove(&g->dir);
    gdev_close(g->dev);
}

static bool gs_accepts(const hwprofile *hw) { return hw->gpu.present; }

static llmsim_status gs_setup(void **state, const serve_ctx *c, bool dry, diag *e)
{
    gsrv *g = calloc(1, sizeof *g);
    *state = g;
    if (!g)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    const serve_setup *s = c->s;
    const engine_opts *o = c->o->eng;
    g->c = *c;
    g->m = s->cm.m;
    g->mem.dry = dry;
    g->dir.slot = -1;
    const workload w = {.prompt_len = 1, .gen_len = 1, .num_prompts = 1};
    static tier dev_home[1] = {TIER_GPU}; /* the widths and the KV row; homes unused */
    plan pl0;
    memset(&pl0, 0, sizeof pl0);
    pl0.kv_tier = pl0.act_tier = dev_home;
    pl0.has_gpu = true;
    exec_layout_init(&g->lay, g->m, &s->pol, &w, &pl0);
    exec_layer_names_get(g->m, &g->ln);
    exec_head_names_get(g->m, &g->hn);
    g->nseq = g->lay.L + 2;
    const int threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    llmsim_status st;
    if (!dry) {
        const gdev_kind kind = o->gpu_emulated ? GDEV_HOST : GDEV_CUDA;
        if ((st = gdev_open(kind, threads, &g->dev, e))) {
            if (st == LLMSIM_EINPUT) {
                char why[sizeof e->msg];
                snprintf(why, sizeof why, "%s", e->msg);
                diag_clear(e);
                diag_set(e, st, "%s; --emulate-gpu serves on the host emulation of the device", why);
            }
            return st;
        }
        g->mem.dev = g->dev;
        if (!(g->pool = pool_create(threads)))
            return diag_set(e, LLMSIM_EFAIL, "cannot start the CPU threads");
        if ((st = offload_dir_create(o->offload_parent, &g->dir, e)))
            return st;
    }
    if ((st = weights_init(g, e)) || (st = kv_init(g, e)) || (st = scratch_init(g, e)) ||
        (st = gl_rope_table(&g->mem, g->m, &g->inv_freq, e)))
        return st;
    g->gl = (gl_ctx){.dev = g->dev, .m = g->m, .w = &g->w, .wt = (gdev_dtype)g->m->dtype,
                     .wq = &s->pol.weight_quant, .deq = g->w.deq, .ln = &g->ln, .hn = &g->hn,
                     .a = &g->a, .lin = g->lin, .inv_freq = g->inv_freq, .h = g->lay.h, .qd = g->lay.qd,
                     .kvd = g->lay.kvd, .f = g->lay.f, .wmax = g->lay.wmax, .vocab = g->lay.vocab};
    g->glh = g->gl;
    g->glh.deq = g->hdeq;
    if (dry)
        return LLMSIM_OK;
    if ((st = events_init(g, e)) ||
        (st = gl_weights_load(&g->mem, g->m, o, g->pool, &s->pol.weight_quant, &g->w, e)))
        return st;
    return gdev_sync(g->dev, e);
}

static llmsim_status gs_prepare(void **state, const serve_ctx *c, diag *e)
{
    return gs_setup(state, c, false, e);
}

static void gs_release(void *state)
{
    if (!state)
        return;
    gs_free(state);
    free(state);
}

static llmsim_status gs_ram_bytes(const serve_ctx *c, double *bytes, diag *e)
{
    void *state = NULL;
    llmsim_status st = gs_setup(&state, c, true, e);
    const gsrv *g = state;
    /* the emulated device's memory is RAM too */
    *bytes = g ? g->mem.host_bytes + (c->o->eng->gpu_emulated ? g->mem.dev_bytes : 0) : 0;
    gs_release(state);
    return st;
}

// ---- swaps

static llmsim_status gs_swap(void *state, const serve_block_move *mv, size_t n, double *seconds,
                             diag *e)
{
    gsrv *g = state;
    /* the outs first: a block swapped out may be one swapped in to */
    for (int pass = 0; pass < 2; pass++) {
        const bool out = pass == 0;
        const gdev_stream s = out ? GDEV_S_STORE : GDEV_S_LOAD_C;
        if (!out)
            TRY(gdev_stream_wait(g->dev, s, g->ev_out, e));
        for (size_t i = 0; i < n; i++) {
            if (mv[i].out != out)
                continue;
            uint8_t *blk = g->kv + (size_t)mv[i].dev * g->block_bytes;
            uint8_t *slot = g->swap + (size_t)mv[i].swap * g->block_bytes;
            TRY(gdev_record(g->dev, s, g->ev_copy[0], e));
            TRY(gdev_copy(g->dev, s, out ? GDEV_D2H : GDEV_H2D, out ? (void *)slot : (void *)blk,
                          out ? (const void *)blk : (const void *)slot, g->block_bytes, e));
            TRY(gdev_record(g->dev, s, g->ev_copy[1], e));
            TRY(gdev_event_wait(g->dev, g->ev_copy[1], e));
            TRY(gdev_event_elapsed_s(g->dev, g->ev_copy[0], g->ev_copy[1], &seconds[i], e));
        }
        TRY(gdev_record(g->dev, s, out ? g->ev_out : g->ev_in, e));
    }
    /* the iteration's compute reads what came in */
    return gdev_stream_wait(g->dev, GDEV_S_COMPUTE, g->ev_in, e);
}

// ---- the forward pass

/* Unit k of the iteration's sequence: the head, the layers, the head. */
static int unit_of(const gsrv *g, int k) { return k == 0 || k == g->nseq - 1 ? g->lay.L : k - 1; }

/* Bring unit k's tensors off the GPU into weight slot k % 2, after the
 * compute is done with the unit that used the slot before. */
static llmsim_status load(gsrv *g, int k, diag *e)
{
    const int u = unit_of(g, k), ws = k % 2;
    if (!g->w.slots[u].bytes)
        return LLMSIM_OK;
    TRY(gdev_stream_wait(g->dev, GDEV_S_LOAD_W, g->ev_used[ws], e));
    TRY(gl_load_unit(&g->mem, &g->w, u, ws, GDEV_S_LOAD_W, e));
    return gdev_record(g->dev, GDEV_S_LOAD_W, g->ev_loaded[ws], e);
}

/* The compute waits for unit k's weights (the wait bracketed by events),
 * and dequantizes its matrices. */
static llmsim_status ready(gsrv *g, int k, diag *e)
{
    const int u = unit_of(g, k), ws = k % 2;
    TRY(gdev_record(g->dev, GDEV_S_COMPUTE, g->ev_stall[2 * k], e));
    if (g->w.slots[u].bytes)
        TRY(gdev_stream_wait(g->dev, GDEV_S_COMPUTE, g->ev_loaded[ws], e));
    TRY(gdev_record(g->dev, GDEV_S_COMPUTE, g->ev_stall[2 * k + 1], e));
    if (g->w.units[u].fp16_values)
        TRY(gl_dequant(u == g->lay.L ? &g->glh : &g->gl, u, ws, e));
    return LLMSIM_OK;
}

/* The compute is done with unit k's slot: the load two after may fill it. */
static llmsim_status used(gsrv *g, int k, diag *e)
{
    return gdev_record(g->dev, GDEV_S_COMPUTE, g->ev_used[k % 2], e);
}

/* Layer j's KV rows of one chunk, over its block table. */
static gdev_kv kv_of(const gsrv *g, int j, const int32_t *table)
{
    const quant *kq = &g->c.s->pol.kv_quant;
    return (gdev_kv){.base = g->kv + (size_t)j * g->layer_bytes, .slot_stride = 2 * g->lay.kv_row,
                     .row_bytes = g->lay.kv_row, .kvd = g->lay.kvd, .bits = kq->bits,
                     .group = kq->group_size, .table = table,
                     .block_size = (size_t)g->c.s->cfg.block_size, .block_stride = g->block_bytes};
}

/* Decoder layer j (unit k, weight slot ws) over the iteration's rows. */
static llmsim_status layer_forward(gsrv *g, const serve_iter *it, const int64_t *tab_off, int j,
                                   int ws, size_t rows, diag *e)
{
    const model *m = g->m;
    const size_t qd = g->lay.qd, kvd = g->lay.kvd, hd = (size_t)m->head_dim;
    float *q = g->a.qkv, *kk = q + rows * qd, *vv = kk + rows * kvd;
    TRY(gl_qkv(&g->gl, j, ws, g->a.x, rows, q, kk, vv, e));
    size_t off = 0;
    for (int c = 0; c < it->nch; c++) {
        const size_t t = (size_t)it->ch[c].tokens;
        const long long ctx = it->ch[c].ctx;
        TRY(gl_rotary(&g->gl, q + off * qd, kk + off * kvd, 1, t, ctx, e));
        const gdev_kv kv = kv_of(g, j, g->tab_dev + tab_off[c]);
        TRY(gdev_kv_put(g->dev, &kv, kk + off * kvd, vv + off * kvd, 1, t, ctx, e));
        gdev_kv att = kv;
        if (kv.bits) { /* attention reads fp16: the chunk's cache so far, dequantized */
            att = (gdev_kv){.base = (uint8_t *)g->kv_f16, .slot_stride = 2 * kvd * 2,
                            .row_bytes = kvd * 2, .kvd = kvd};
            TRY(gdev_kv_dequant(g->dev, &kv, &att, 1, ctx + (long long)t, e));
        }
        /* under a sliding window each query reads from its window's first key on */
        TRY(gdev_attention(g->dev, q + off * qd, 1, t, ctx, &att, (size_t)m->num_heads,
                           (size_t)m->num_kv_heads, hd, (size_t)m->sliding_window,
                           g->a.att + off * qd, e));
        off += t;
    }
    TRY(gl_post(&g->gl, j, ws, g->a.x, g->a.att, rows, e));
    if (j + 1 < g->lay.L) { /* between layers the hidden states are fp16, as the CPU serving backend's */
        TRY(gdev_to_f16(g->dev, g->a.x, rows * g->lay.h, g->round, e));
        TRY(gdev_to_f32(g->dev, g->round, GDEV_F16, rows * g->lay.h, g->a.x, e));
    }
    return LLMSIM_OK;
}

/* The iteration's token ids and learned positions, and the chunks' block
 * tables, up to the device (the previous iteration is done with both: it
 * ended synchronized). Returns the rows. */
static llmsim_status upload(gsrv *g, const serve_fwd *f, int64_t *tab_off, size_t *rows, diag *e)
{
    const serve_iter *it = f->it;
    const size_t R = (size_t)g->c.s->cfg.token_budget;
    const bool opt = g->m->family == MODEL_FAMILY_OPT;
    size_t r = 0;
    int64_t nt = 0;
    for (int c = 0; c < it->nch; c++) {
        const uint32_t req = it->req[c];
        const int32_t *seq = f->seq[req];
        for (int64_t a = 0; a < it->ch[c].tokens; a++, r++) {
            const int64_t p = it->ch[c].ctx + a;
            g->ids_host[r] = seq[p];
            g->ids_host[R + r] = (int32_t)(p + (opt ? 2 : 0));
        }
        const serve_block_table *t = &f->b->tab[req];
        tab_off[c] = nt;
        memcpy(g->tab_host + nt, t->ids, (size_t)t->n * sizeof *t->ids);
        nt += t->n;
    }
    *rows = r;
    TRY(gdev_copy(g->dev, GDEV_S_COMPUTE, GDEV_H2D, g->ids_dev, g->ids_host, r * 4, e));
    TRY(gdev_copy(g->dev, GDEV_S_COMPUTE, GDEV_H2D, g->ids_dev + R, g->ids_host + R, r * 4, e));
    return gdev_copy(g->dev, GDEV_S_COMPUTE, GDEV_H2D, g->tab_dev, g->tab_host, (size_t)nt * 4, e);
}

/* The embeddings of the rows into a.x (the head in weight slot 0). */
static llmsim_status embed(gsrv *g, size_t rows, diag *e)
{
    const int L = g->lay.L;
    const size_t R = (size_t)g->c.s->cfg.token_budget;
    gdev_dtype dt;
    int ti = exec_wunit_find(&g->w.units[L], g->hn.embed_tokens);
    const void *table = gl_matrix(&g->glh, L, ti, 0, &dt);
    TRY(gdev_embed(g->dev, g->ids_dev, rows, table, dt, g->lay.vocab, g->lay.h, g->a.x, e));
    TRY(gl_embed_scale(&g->glh, g->a.x, rows * g->lay.h, e));
    if (g->m->position != MODEL_POS_LEARNED)
        return LLMSIM_OK;
    int pi = exec_wunit_find(&g->w.units[L], g->hn.embed_positions);
    const void *pt = gl_matrix(&g->glh, L, pi, 0, &dt);
    TRY(gdev_embed(g->dev, g->ids_dev + R, rows, pt, dt, (size_t)g->w.units[L].t[pi].desc.rows,
                   g->lay.h, g->a.tmp, e));
    return gdev_add(g->dev, g->a.x, g->a.tmp, rows * g->lay.h, g->a.x, e);
}

/* The next token of every emitting chunk, from its last row (the head in
 * weight slot ws). */
static llmsim_status sample_emitting(gsrv *g, const serve_fwd *f, int ws, diag *e)
{
    const serve_iter *it = f->it;
    const size_t h = g->lay.h, V = g->lay.vocab;
    size_t ne = 0, off = 0;
    for (int c = 0; c < it->nch; c++) {
        off += (size_t)it->ch[c].tokens;
        if (it->ch[c].emits)
            TRY(gdev_copy(g->dev, GDEV_S_COMPUTE, GDEV_D2D, g->hx + ne++ * h, g->a.x + (off - 1) * h,
                          h * 4, e));
    }
    if (ne) {
        TRY(gl_logits(&g->glh, ws, g->hx, ne, e));
        TRY(gdev_copy(g->dev, GDEV_S_COMPUTE, GDEV_D2H, g->logits_host, g->a.logits, ne * V * 4, e));
    }
    TRY(gdev_sync(g->dev, e));
    ne = 0;
    for (int c = 0; c < it->nch; c++) {
        if (!it->ch[c].emits)
            continue;
        const uint32_t req = it->req[c];
        const int64_t at = it->ch[c].ctx + it->ch[c].tokens;
        const float *lg = g->logits_host + ne++ * V;
        if (g->c.o->on_logits)
            g->c.o->on_logits(g->c.o->logits_ctx, req, f->step[c], lg, V);
        f->seq[req][at] = mio_sample(g->c.o->eng, lg, V, (long long)req, f->step[c], g->probs,
                                     g->idx);
    }
    return LLMSIM_OK;
}

static llmsim_status gs_forward(void *state, const serve_fwd *f, double *weights_s, diag *e)
{
    gsrv *g = state;
    const int n = g->nseq;
    int64_t *tab_off = malloc((size_t)(f->it->nch ? f->it->nch : 1) * sizeof *tab_off);
    if (!tab_off)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    size_t rows = 0;
    llmsim_status st = upload(g, f, tab_off, &rows, e);
    /* unit k computes in slot k % 2 while unit k + 1 loads into the other */
    if (!st)
        st = load(g, 0, e);
    for (int k = 0; k < n && !st; k++) {
        if (k + 1 < n)
            st = load(g, k + 1, e);
        if (!st)
            st = ready(g, k, e);
        if (!st)
            st = k == 0 ? embed(g, rows, e)
                 : k == n - 1 ? sample_emitting(g, f, k % 2, e)
                              : layer_forward(g, f->it, tab_off, k - 1, k % 2, rows, e);
        if (!st)
            st = used(g, k, e);
    }
    free(tab_off);
    if (st)
        return st;
    /* the compute's waits for the weights (everything is done: sample_emitting synced) */
    TRY(gdev_sync(g->dev, e));
    for (int k = 0; k < n; k++) {
        double s = 0;
        TRY(gdev_event_elapsed_s(g->dev, g->ev_stall[2 * k], g->ev_stall[2 * k + 1], &s, e));
        *weights_s += s > 0 ? s : 0;
    }
    return LLMSIM_OK;
}

static void gs_finish(void *state, engine_serve_result *r)
{
    gsrv *g = state;
    r->ram_bytes = g->mem.host_bytes;
    r->gpu_bytes = (double)gdev_peak_bytes(g->dev);
    r->direct_io = offload_dir_direct(&g->dir);
    gdev_describe(g->dev, r->device, sizeof r->device);
}

const serve_backend_ops exec_gpu_serve_backend = {
    .name = "gpu",
    .accepts = gs_accepts,
    .ram_bytes = gs_ram_bytes,
    .prepare = gs_prepare,
    .swap = gs_swap,
    .forward = gs_forward,
    .finish = gs_finish,
    .release = gs_release,
};
