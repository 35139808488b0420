/*
 * backend — the GPU backend of the engine (ARCHITECTURE §9): the table of
 * exec/backend.h for plans of a machine with a GPU, over the device of
 * exec/cuda/dev.h (a CUDA GPU, or the host emulation that CI runs it on).
 *
 * Tiers, as the plan's whole-tensor placement says: device memory, pinned
 * host memory, and the disk (an O_DIRECT offload directory, staged through
 * pinned buffers by the disk thread).
 *
 * How a plan runs. exec/engine.c gives each resource a host thread that
 * takes the resource's tasks in plan order as their dependencies complete.
 * Here a device task (GPU compute, host->device and device->host copies)
 * does not run on its thread: the thread issues it on its stream (compute;
 * weight loads; cache and hidden-state loads; stores), makes the stream wait
 * first for the end events of its dependencies on other streams, brackets
 * it with two events and returns. So the device orders the work exactly by
 * the plan's dependencies, and the host threads run ahead, issuing. A host
 * task (disk reads and writes, CPU attention) waits on the end events of its
 * device dependencies, then runs. Every task is timed: device tasks by their
 * events, host tasks by the clock, both from one origin taken when the block
 * starts (engine task_times).
 *
 * Layouts are the CPU backend's (exec/cpu/backend.c), so that data moves
 * between tiers as bytes:
 *  - weights of a unit (a decoder layer, or the head): each tensor at its
 *    home (exec/weights.h, shared with the CPU backend); the ones not on the
 *    GPU are copied, per tensor, into one of two GPU weight slots (packed,
 *    256-byte aligned) by the unit's W_H2D; the
 *    disk ones are first read, as one region, into one of two pinned staging
 *    buffers by W_DISK. Quantized matrices are dequantized into one fp16
 *    working copy by W_DEQUANT.
 *  - KV cache of (layer, batch): slots of one position for the batch's
 *    sequences, [kv_cap][seq][K row, V row], a row kvd fp16 values or one
 *    quantized row; on disk each slot padded to OFFLOAD_ALIGN (2-D copies
 *    pad and unpad). Under a sliding window the kv_cap slots are a ring
 *    (exec/layout.h: position p in slot p % kv_cap) in every tier, so the
 *    bytes still move as they are (the slots in use, in the ring's order);
 *    without one kv_cap is ctx_max. Off the GPU, a decode step copies the
 *    cache into one of two GPU cache slots (C_H2D), the compute appends the
 *    new entries there and into one of two GPU out slots, and C_D2H sends
 *    those home.
 *  - hidden states of a batch: [seq][token][h] fp16, in and out slots the
 *    same way.
 *  - with CPU attention (delegated decode over a cache off the GPU): PRE
 *    (norm, QKV projection, rotary) on the GPU, q, k, v to pinned memory,
 *    the CPU appends k, v to the cache where it lives and attends with the
 *    CPU backend's kernel, the output goes back, POST finishes the layer.
 * Host buffers that a device->host copy fills for a disk write (new KV
 * entries, hidden states) come from a small ring: the copy takes a free
 * buffer (waiting if none is), the write gives it back.
 *
 * Compute: fp32 activations, GEMMs through gdev_linear (x rounded to the
 * weights' fp16/bf16, fp32 accumulation), KV cache and hidden states stored
 * fp16 or quantized, as the cost model counts them.
 * Ownership: everything lives in `geng` and is freed by g_free on every path.
 */
#include "exec/backend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/units.h"
#include "exec/cpu/kernels.h"
#include "exec/cuda/dev.h"
#include "exec/cuda/layer.h"
#include "exec/model_io.h"
#include "exec/offload.h"
#include "exec/weights.h"

#define G_RING 4     /* host out buffers for device -> host -> disk */


// ---- state

/* A ring of host buffers: taken by the producer of a disk write, given back
 * by the write. */
typedef struct g_ring {
    uint8_t *buf[G_RING];
    bool busy[G_RING];
    size_t bytes;
} g_ring;

typedef struct geng {
    exec_ctx c;            /* the run: model, policy, workload, plan, options (borrowed) */
    gmem mem;              /* what is allocated (dry: counted only) */
    gdev *dev;
    gdev_kind kind;
    pool *pool;            /* CPU attention and weight preparation */
    exec_layout sh;
    gdev_dtype wt;
    offload_dir dir;
    offload_file *kvfile, *actfile;
    gl_weights w;          /* the weights at their homes, the slots, the dequantized copy */
    gl_ctx gl;             /* the layer math over them */
    exec_layer_names lnames;
    exec_head_names hnames;
    /* KV cache */
    uint8_t **kv_dev;      /* [L * ngb] home gpu: kv_cap slots */
    uint8_t **kv_host;     /* [L * ngb] home cpu: kv_cap slots, pinned */
    uint8_t *kv_in[2];     /* device: a batch's cache copied in, kv_cap slots */
    uint8_t *kv_out[2];    /* device: new entries of a step, prompt slots */
    uint8_t *kv_stage[2];  /* pinned: disk homes, kv_cap padded slots */
    g_ring kv_ring;        /* pinned: new entries going to disk, prompt padded slots */
    uint16_t *kv_f16;      /* device: quantized KV dequantized for attention, kv_cap slots */
    size_t kv_ring_slots;  /* the cache's slots as a ring (gdev_kv.ring): kv_cap under a
                            * sliding window, else 0 (position p in slot p) */
    double *inv_freq;      /* device: the scaled rotary frequencies, or NULL */
    /* hidden states */
    uint16_t **act_dev;    /* [ngb] home gpu */
    uint16_t **act_host;   /* [ngb] home cpu, pinned */
    uint16_t *act_in[2], *act_out[2]; /* device slots */
    uint8_t *act_stage[2]; /* pinned: read from disk */
    g_ring act_ring;       /* pinned: going to disk */
    pthread_mutex_t ring_mu;
    pthread_cond_t ring_cv;
    bool ring_init;
    bool ring_stop;        /* a task failed: no buffer will come back */
    uint8_t *ring_of;      /* [ntasks]: the ring buffer a producer task filled */
    float **next_in;       /* [ngb] device: layer 0's input [gbs][prompt][h] */
    float **last;          /* [ngb] device: the last layer's output, last token [gbs][h] */
    /* CPU attention (delegated) */
    float **dx;            /* [ngb] device: the residual from PRE to POST [gbs][h] */
    /* q, k, v and the attention's output cross PCIe in fp16, as the cost
     * model counts them (half the bytes of fp32); the out projection takes
     * fp16 input anyway, and fp16 K and V are what the cache stores */
    uint16_t **dqkv;         /* [ngb] device: q, k, v [q: gbs][qd], [k: gbs][kvd], [v: gbs][kvd] */
    uint16_t **hqkv;         /* [ngb] pinned: the same on the host */
    uint16_t **hatt;         /* [ngb] pinned: the attention output [gbs][qd] */
    uint16_t **datt;         /* [ngb] device: the same on the GPU */
    float *cqkv, *catt;      /* host: q, k, v and the output in fp32 for the CPU kernel */
    float *ckf, *cvf, *cscr; /* host: gathered K, V and the attention's scratch */
    /* compute scratch (device) */
    exec_acts a;           /* the activations of a step */
    void *lin;             /* gdev_linear's scratch */
    int32_t *ids_dev;      /* [max(prompt, gbs) + 2] */
    /* host */
    int32_t *ids_host;     /* pinned [bls * prompt + 2] */
    float *logits_host;    /* pinned [gbs * vocab] */
    mio_tokens tk;         /* the block's tokens; probs, idx: malloc'd */
    /* events and timing */
    gdev_event **ev_start, **ev_end; /* [ntasks], device tasks only */
    gdev_event *ev_base;
    double host_base;
    double *host_start, *host_end; /* [ntasks] host tasks, block 0 */
} geng;

static bool is_dev_task(const plan_task *t) { return t->res != PLAN_RES_CPU && t->res != PLAN_RES_DISK; }

static gdev_stream stream_of(const plan_task *t)
{
    switch ((plan_kind)t->kind) {
    case PLAN_W_H2D: return GDEV_S_LOAD_W;
    case PLAN_C_H2D:
    case PLAN_A_H2D:
    case PLAN_OUT_H2D: return GDEV_S_LOAD_C;
    case PLAN_C_D2H:
    case PLAN_A_D2H:
    case PLAN_QKV_D2H: return GDEV_S_STORE;
    default: return GDEV_S_COMPUTE;
    }
}

// ---- memory: every buffer comes from here, so that a dry run adds up what
// a real one allocates

static void *g_dalloc(geng *g, size_t bytes, const char *what, diag *e)
{
    return gmem_dalloc(&g->mem, bytes, what, e);
}

static void *g_halloc(geng *g, size_t bytes, const char *what, diag *e)
{
    return gmem_halloc(&g->mem, bytes, what, e);
}

/* Free a buffer of g_dalloc (dev) or g_halloc; NULL is ignored. */
static void g_release_buf(geng *g, void *p, bool dev) { gmem_release(&g->mem, p, dev); }

/* Free the n buffers of list a, device (dev) or pinned ones. */
static void free_list(geng *g, void *const *a, size_t n, bool dev)
{
    for (size_t i = 0; i < n; i++)
        g_release_buf(g, a[i], dev);
}

/* g_dalloc and its free as callbacks (exec_acts): the compute scratch. */
typedef struct g_alloc_ctx {
    geng *g;
    diag *e;
} g_alloc_ctx;

static void *scratch_alloc_cb(void *ctx, size_t bytes)
{
    g_alloc_ctx *a = ctx;
    return g_dalloc(a->g, bytes, "the compute scratch", a->e);
}

static void dfree_cb(void *g, void *p) { g_release_buf(g, p, true); }

// ---- weights

/* The weights at their homes (gl_weights_layout). */
static llmsim_status weights_layout(geng *g, diag *e)
{
    return gl_weights_layout(&g->mem, &g->dir, g->c.m, &g->c.p->weight_quant, &g->c.pl->realized,
                             &g->w, e);
}

static llmsim_status weights_load(geng *g, diag *e)
{
    return gl_weights_load(&g->mem, g->c.m, g->c.o, g->pool, &g->c.p->weight_quant, &g->w, e);
}

// ---- KV cache, hidden states, scratch

static llmsim_status ring_init(geng *g, g_ring *r, size_t bytes, const char *what, diag *e)
{
    r->bytes = bytes;
    for (int i = 0; i < G_RING; i++)
        if (!(r->buf[i] = g_halloc(g, bytes, what, e)))
            return e->status;
    return LLMSIM_OK;
}

/* A free buffer of the ring (waits for one); its index, or -1 when the run
 * is stopping (a task failed, or ^C) and none will come back. */
static int ring_take(geng *g, g_ring *r)
{
    volatile sig_atomic_t *intr = g->c.o->interrupt;
    pthread_mutex_lock(&g->ring_mu);
    int i = -1;
    for (;;) {
        if (g->ring_stop || (intr && *intr)) {
            i = -1;
            break;
        }
        for (i = 0; i < G_RING && r->busy[i]; i++)
            ;
        if (i < G_RING) {
            r->busy[i] = true;
            break;
        }
        /* a timed wait: ^C sets a flag, it does not signal */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->ring_cv, &g->ring_mu, &ts);
    }
    pthread_mutex_unlock(&g->ring_mu);
    return i;
}

/* Take a buffer of ring r for producer task ti (ring_of[ti]); *skip when
 * the run is stopping on ^C and the task should do nothing (the engine
 * stops too), an error when another task failed. */
static llmsim_status take_for(geng *g, g_ring *r, uint32_t ti, bool *skip, diag *e)
{
    int i = ring_take(g, r);
    *skip = i < 0;
    if (i < 0)
        return g->ring_stop ? diag_set(e, LLMSIM_EFAIL, "the run stopped") : LLMSIM_OK;
    g->ring_of[ti] = (uint8_t)i;
    return LLMSIM_OK;
}

/* A task failed: wake every thread waiting for a ring buffer. */
static void ring_stop(geng *g)
{
    pthread_mutex_lock(&g->ring_mu);
    g->ring_stop = true;
    pthread_cond_broadcast(&g->ring_cv);
    pthread_mutex_unlock(&g->ring_mu);
}

static void ring_give(geng *g, g_ring *r, int i)
{
    pthread_mutex_lock(&g->ring_mu);
    r->busy[i] = false;
    pthread_cond_broadcast(&g->ring_cv);
    pthread_mutex_unlock(&g->ring_mu);
}

/* The per-batch and per-(layer, batch) pointer arrays, zeroed. */
static llmsim_status state_arrays(geng *g, diag *e)
{
    const size_t lk = (size_t)g->sh.L * (size_t)g->sh.ngb, nk = (size_t)g->sh.ngb;
    g->kv_dev = calloc(lk, sizeof *g->kv_dev);
    g->kv_host = calloc(lk, sizeof *g->kv_host);
    g->act_dev = calloc(nk, sizeof *g->act_dev);
    g->act_host = calloc(nk, sizeof *g->act_host);
    g->next_in = calloc(nk, sizeof *g->next_in);
    g->last = calloc(nk, sizeof *g->last);
    g->dx = calloc(nk, sizeof *g->dx);
    g->dqkv = calloc(nk, sizeof *g->dqkv);
    g->hqkv = calloc(nk, sizeof *g->hqkv);
    g->hatt = calloc(nk, sizeof *g->hatt);
    g->datt = calloc(nk, sizeof *g->datt);
    g->ring_of = calloc(g->c.pl->ntasks + 1, 1);
    if (!g->kv_dev || !g->kv_host || !g->act_dev || !g->act_host || !g->next_in || !g->last ||
        !g->dx || !g->dqkv || !g->hqkv || !g->hatt || !g->datt || !g->ring_of)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    return LLMSIM_OK;
}

/* A tier on disk: its offload file `name` of `bytes` (none in a dry run)
 * and two pinned staging buffers of stage_bytes for its reads. */
static llmsim_status disk_file_init(geng *g, const char *name, uint64_t bytes, offload_file **f,
                                    uint8_t **stage, size_t stage_bytes, const char *what, diag *e)
{
    llmsim_status st;
    if (!g->mem.dry && (st = offload_file_create(&g->dir, name, bytes, f, e)))
        return st;
    for (int s = 0; s < 2; s++)
        if (!(stage[s] = g_halloc(g, stage_bytes, what, e)))
            return e->status;
    return LLMSIM_OK;
}

/* The KV cache: each (layer, batch)'s home, the GPU cache slots of the
 * batches off the GPU, the disk's file, staging and write ring, and the
 * fp16 copy attention reads of a quantized cache. */
static llmsim_status kv_init(geng *g, diag *e)
{
    const int L = g->sh.L, ngb = g->sh.ngb, kv_off = g->sh.kv_off;
    const size_t ctx = (size_t)g->sh.kv_cap, pr = (size_t)g->sh.prompt; /* the slots a sequence keeps */
    for (int j = 0; j < L; j++)
        for (int k = 0; k < ngb; k++) {
            size_t n = ctx * g->sh.kv_slot;
            if (g->sh.kv_tier[k] == TIER_GPU &&
                !(g->kv_dev[j * ngb + k] = g_dalloc(g, n, "the KV cache", e)))
                return e->status;
            if (g->sh.kv_tier[k] == TIER_CPU &&
                !(g->kv_host[j * ngb + k] = g_halloc(g, n, "the KV cache in CPU memory", e)))
                return e->status;
        }
    const bool copies_in = kv_off && g->sh.gen > 1 && !g->c.p->cpu_attention; /* c_h2d tasks */
    for (int s = 0; s < 2 && kv_off; s++)
        if ((copies_in &&
             !(g->kv_in[s] = g_dalloc(g, ctx * g->sh.kv_slot, "a GPU cache slot", e))) ||
            !(g->kv_out[s] = g_dalloc(g, pr * g->sh.kv_slot, "a GPU cache out slot", e)))
            return e->status;
    if (g->sh.kv_disk) {
        TRY(disk_file_init(g, "kv.bin", exec_kv_file_bytes(&g->sh), &g->kvfile, g->kv_stage,
                           ctx * g->sh.kv_dslot, "the KV staging", e));
        TRY(ring_init(g, &g->kv_ring, pr * g->sh.kv_dslot, "the KV write buffers", e));
    }
    if (g->c.p->kv_quant.bits &&
        !(g->kv_f16 = g_dalloc(g, ctx * (size_t)g->sh.gbs * 2 * g->sh.kvd * 2, "the dequantized KV", e)))
        return e->status;
    return LLMSIM_OK;
}

/* The hidden states: each batch's home, the GPU slots of the batches off
 * the GPU, the disk's file, staging and write ring. */
static llmsim_status act_init(geng *g, diag *e)
{
    for (int k = 0; k < g->sh.ngb; k++) {
        if (g->sh.act_tier[k] == TIER_GPU &&
            !(g->act_dev[k] = g_dalloc(g, g->sh.act_bytes, "the hidden states", e)))
            return e->status;
        if (g->sh.act_tier[k] == TIER_CPU &&
            !(g->act_host[k] = g_halloc(g, g->sh.act_bytes, "the hidden states in CPU memory", e)))
            return e->status;
    }
    if (g->sh.act_off)
        for (int s = 0; s < 2; s++)
            if (!(g->act_in[s] = g_dalloc(g, g->sh.act_bytes, "a hidden-state slot", e)) ||
                !(g->act_out[s] = g_dalloc(g, g->sh.act_bytes, "a hidden-state slot", e)))
                return e->status;
    if (g->sh.act_disk) {
        TRY(disk_file_init(g, "act.bin", exec_act_file_bytes(&g->sh), &g->actfile, g->act_stage,
                           g->sh.act_bytes, "the hidden-state staging", e));
        TRY(ring_init(g, &g->act_ring, g->sh.act_bytes, "the hidden-state write buffers", e));
    }
    return LLMSIM_OK;
}

/* Per batch: layer 0's input, the head's input, and (delegated decode over
 * a cache off the GPU) CPU attention's buffers and scratch. */
static llmsim_status batch_init(geng *g, diag *e)
{
    const bool delegate = g->c.p->cpu_attention && g->sh.kv_off && g->sh.gen > 1;
    const size_t ctx = (size_t)g->sh.ctx_max, pr = (size_t)g->sh.prompt, gbs = (size_t)g->sh.gbs;
    const size_t qkvw = g->sh.qd + 2 * g->sh.kvd, h = g->sh.h, qd = g->sh.qd;
    static const char cpu_att[] = "CPU attention's buffers";
    for (int k = 0; k < g->sh.ngb; k++) {
        if (!(g->next_in[k] = g_dalloc(g, gbs * pr * h * 4, "the embeddings", e)) ||
            !(g->last[k] = g_dalloc(g, gbs * h * 4, "the head's input", e)))
            return e->status;
        if (delegate && g->sh.kv_tier[k] != TIER_GPU &&
            (!(g->dx[k] = g_dalloc(g, gbs * h * 4, cpu_att, e)) ||
             !(g->dqkv[k] = g_dalloc(g, gbs * qkvw * 2, cpu_att, e)) ||
             !(g->datt[k] = g_dalloc(g, gbs * qd * 2, cpu_att, e)) ||
             !(g->hqkv[k] = g_halloc(g, gbs * qkvw * 2, cpu_att, e)) ||
             !(g->hatt[k] = g_halloc(g, gbs * qd * 2, cpu_att, e))))
            return e->status;
    }
    if (delegate) {
        static const char scr[] = "CPU attention's scratch";
        size_t sc = k_attention_scratch_floats(1, ctx, (size_t)g->c.m->num_heads);
        if (!(g->cqkv = g_halloc(g, gbs * qkvw * 4, scr, e)) ||
            !(g->catt = g_halloc(g, gbs * qd * 4, scr, e)) ||
            !(g->ckf = g_halloc(g, ctx * g->sh.kvd * 4, scr, e)) ||
            !(g->cvf = g_halloc(g, ctx * g->sh.kvd * 4, scr, e)) ||
            !(g->cscr = g_halloc(g, sc * 4, scr, e)))
            return e->status;
    }
    return LLMSIM_OK;
}

static llmsim_status state_init(geng *g, diag *e)
{
    llmsim_status st;
    if ((st = state_arrays(g, e)) || (st = kv_init(g, e)) || (st = act_init(g, e)))
        return st;
    return batch_init(g, e);
}

static llmsim_status scratch_init(geng *g, diag *e)
{
    const size_t rows = (size_t)g->sh.gbs * (size_t)g->sh.prompt;
    const size_t kmax = g->sh.wmax; /* the widest input of a linear layer */
    g_alloc_ctx ac = {g, e};
    if (!exec_acts_alloc(&g->a, &g->sh, scratch_alloc_cb, &ac))
        return e->status;
    /* token ids of a batch's prompts, then their positions (learned positions) */
    size_t idn = ((size_t)g->sh.gbs + 1) * (size_t)g->sh.prompt + 2;
    if (!(g->lin = g_dalloc(g, gdev_linear_scratch_bytes(rows, kmax), "the compute scratch", e)) ||
        !(g->ids_dev = g_dalloc(g, idn * 4, "the compute scratch", e)) ||
        !(g->ids_host = g_halloc(g, idn * 4, "the token ids", e)) ||
        !(g->logits_host = g_halloc(g, (size_t)g->sh.gbs * g->sh.vocab * 4, "the logits", e)))
        return e->status;
    return LLMSIM_OK;
}

// ---- the layer math (on the compute stream)

/* KV rows of a slot array as the kernels take them: a cache's kv_cap slots
 * (a ring under a sliding window; ring true), or a step's new entries. */
static gdev_kv kv_desc(const geng *g, uint8_t *base, size_t stride, bool ring)
{
    gdev_kv d = {.base = base, .slot_stride = stride, .row_bytes = g->sh.kv_row, .kvd = g->sh.kvd,
                 .bits = g->c.p->kv_quant.bits, .group = g->c.p->kv_quant.group_size,
                 .ring = ring ? g->kv_ring_slots : 0};
    return d;
}

/* The first norm, q, k, v and rotary of a batch: x [rows][h] -> q, k, v. */
static llmsim_status attn_pre(geng *g, int i, int j, int ws, const float *x, long long t, float *q, float *kk,
                              float *vv, diag *e)
{
    const size_t rows = (size_t)g->sh.gbs * (size_t)t;
    const long long start = exec_step_start(&g->sh, i);
    TRY(gl_qkv(&g->gl, j, ws, x, rows, q, kk, vv, e));
    return gl_rotary(&g->gl, q, kk, (size_t)g->sh.gbs, (size_t)t, start, e);
}

/* One batch through decoder layer j at step i on the GPU: g->a.x holds the
 * input [gbs][t][h] and receives the output. The new entries go into kv at
 * their positions (and into out, slot 0 on, when it is not NULL). */
static llmsim_status layer_forward(geng *g, int i, int j, int ws, gdev_kv kv, const gdev_kv *out, long long t,
                                   diag *e)
{
    const model *m = g->c.m;
    const size_t rows = (size_t)g->sh.gbs * (size_t)t, qd = g->sh.qd, kvd = g->sh.kvd;
    const long long start = exec_step_start(&g->sh, i);
    float *q = g->a.qkv, *kk = g->a.qkv + rows * qd, *vv = kk + rows * kvd;
    TRY(attn_pre(g, i, j, ws, g->a.x, t, q, kk, vv, e));
    TRY(gdev_kv_put(g->dev, &kv, kk, vv, (size_t)g->sh.gbs, (size_t)t, start, e));
    if (out)
        TRY(gdev_kv_put(g->dev, out, kk, vv, (size_t)g->sh.gbs, (size_t)t, 0, e));
    gdev_kv att_kv = kv;
    if (kv.bits) { /* attention reads fp16: the cache so far (a ring: its slots), dequantized */
        att_kv =
            (gdev_kv){.base = (uint8_t *)g->kv_f16, .slot_stride = (size_t)g->sh.gbs * 2 * kvd * 2,
                      .row_bytes = kvd * 2, .kvd = kvd, .ring = kv.ring};
        const long long npos = kv.ring && start + t > (long long)kv.ring ? (long long)kv.ring : start + t;
        TRY(gdev_kv_dequant(g->dev, &kv, &att_kv, (size_t)g->sh.gbs, npos, e));
    }
    TRY(gdev_attention(g->dev, q, (size_t)g->sh.gbs, (size_t)t, start, &att_kv,
                       (size_t)m->num_heads, (size_t)m->num_kv_heads, (size_t)m->head_dim,
                       (size_t)m->sliding_window, g->a.att, e));
    return gl_post(&g->gl, j, ws, g->a.x, g->a.att, rows, e);
}

/* Embeddings of t tokens of every sequence of batch k from position start
 * (+ OPT's learned positions, offset by 2) into out [gbs][t][h]; the
 * head's tensors in weight slot ws. Token ids go up through ids_host. */
static llmsim_status embed(geng *g, int k, long long start, long long t, int ws, float *out, diag *e)
{
    const int L = g->sh.L;
    const bool opt = g->c.m->family == MODEL_FAMILY_OPT;
    const size_t n = (size_t)g->sh.gbs * (size_t)t;
    int32_t *ids = g->ids_host;
    /* the previous use of ids_host must be done before it is rewritten */
    TRY(gdev_stream_sync(g->dev, GDEV_S_COMPUTE, e));
    for (int s = 0; s < g->sh.gbs; s++) {
        const int32_t *seq =
            g->tk.tokens + (size_t)(k * g->sh.gbs + s) * (size_t)(g->sh.prompt + g->sh.gen);
        for (long long a = 0; a < t; a++)
            ids[(size_t)s * (size_t)t + (size_t)a] = seq[start + a];
    }
    if (g->c.m->position == MODEL_POS_LEARNED)
        for (long long a = 0; a < t; a++)
            ids[n + (size_t)a] = (int32_t)(start + a + (opt ? 2 : 0));
    size_t nid = n + (g->c.m->position == MODEL_POS_LEARNED ? (size_t)t : 0);
    TRY(gdev_copy(g->dev, GDEV_S_COMPUTE, GDEV_H2D, g->ids_dev, ids, nid * 4, e));
    int ti = exec_wunit_find(&g->w.units[L], g->hnames.embed_tokens);
    gdev_dtype dt;
    const void *table = gl_matrix(&g->gl, L, ti, ws, &dt);
    TRY(gdev_embed(g->dev, g->ids_dev, n, table, dt, g->sh.vocab, g->sh.h, out, e));
    TRY(gl_embed_scale(&g->gl, out, n * g->sh.h, e));
    if (g->c.m->position == MODEL_POS_LEARNED) {
        int pi = exec_wunit_find(&g->w.units[L], g->hnames.embed_positions);
        const void *pt = gl_matrix(&g->gl, L, pi, ws, &dt);
        TRY(gdev_embed(g->dev, g->ids_dev + n, (size_t)t, pt, dt,
                       (size_t)g->w.units[L].t[pi].desc.rows, g->sh.h, g->a.tmp, e));
        TRY(gdev_add_rows(g->dev, out, n, g->sh.h, g->a.tmp, (size_t)t, out, e));
    }
    return LLMSIM_OK;
}

/* Before the plan runs: the prompts' embeddings (the head's weights are
 * brought to weight slot 0 for this, and dequantized, synchronously). */
static llmsim_status embed_prompts(geng *g, diag *e)
{
    const int L = g->sh.L;
    const exec_wunit *head = &g->w.units[L];
    if (head->disk_bytes)
        TRY(offload_read(g->w.wfile, g->w.wstage[0], head->disk_bytes, head->disk_base, e));
    TRY(gl_load_unit(&g->mem, &g->w, L, 0, GDEV_S_COMPUTE, e));
    if (head->fp16_values)
        TRY(gl_dequant(&g->gl, L, 0, e));
    for (int k = 0; k < g->sh.ngb; k++)
        TRY(embed(g, k, 0, g->sh.prompt, 0, g->next_in[k], e));
    return gdev_sync(g->dev, e);
}

static llmsim_status head_forward(geng *g, int i, int k, int ws, diag *e)
{
    const int gbs = g->sh.gbs;
    float *x = g->a.hn;
    TRY(gdev_copy(g->dev, GDEV_S_COMPUTE, GDEV_D2D, x, g->last[k], (size_t)gbs * g->sh.h * 4, e));
    TRY(gl_logits(&g->gl, ws, x, (size_t)gbs, e));
    TRY(gdev_copy(g->dev, GDEV_S_COMPUTE, GDEV_D2H, g->logits_host, g->a.logits,
                  (size_t)gbs * g->sh.vocab * 4, e));
    TRY(gdev_stream_sync(g->dev, GDEV_S_COMPUTE, e));
    mio_next_tokens(&g->sh, g->c.o, g->logits_host, i, k, &g->tk);
    if (i + 1 < g->sh.gen)
        TRY(embed(g, k, g->sh.prompt + i, 1, ws, g->next_in[k], e));
    return LLMSIM_OK;
}

// ---- the tasks

static uint32_t find(const geng *g, uint32_t near, plan_kind kind) { return plan_sibling(g->c.pl, near, kind); }

static llmsim_status need(uint32_t t, const char *what, diag *e)
{
    return t == PLAN_NONE ? diag_set(e, LLMSIM_EFAIL, "the plan has no %s task where the GPU engine needs one", what)
                          : LLMSIM_OK;
}

/* The layer's input into x (fp32): the embeddings for layer 0, else the
 * hidden state at home on the GPU or in the slot its A_H2D filled. */
static llmsim_status load_input(geng *g, uint32_t ti, float *x, size_t rows, diag *e)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const int k = t->batch;
    if (t->layer == 0)
        return gdev_copy(g->dev, GDEV_S_COMPUTE, GDEV_D2D, x, g->next_in[k], rows * g->sh.h * 4, e);
    const uint16_t *src = g->act_dev[k];
    if (g->sh.act_tier[k] != TIER_GPU) {
        uint32_t a = find(g, ti, PLAN_A_H2D);
        TRY(need(a, "a_h2d", e));
        src = g->act_in[g->c.pl->tasks[a].slot];
    }
    return gdev_to_f32(g->dev, src, GDEV_F16, rows * g->sh.h, x, e);
}

/* The layer's output from x: the last layer's last tokens to the head, the
 * others as fp16 to their home on the GPU or to out slot `slot2`. */
static llmsim_status store_output(geng *g, int j, int k, int slot2, const float *x, long long t, diag *e)
{
    const size_t rows = (size_t)g->sh.gbs * (size_t)t;
    if (j == g->sh.L - 1)
        return gdev_copy2d(g->dev, GDEV_S_COMPUTE, GDEV_D2D, g->last[k], g->sh.h * 4,
                           x + (size_t)(t - 1) * g->sh.h, (size_t)t * g->sh.h * 4, g->sh.h * 4,
                           (size_t)g->sh.gbs, e);
    uint16_t *dst = g->sh.act_tier[k] == TIER_GPU ? g->act_dev[k] : g->act_out[slot2];
    return gdev_to_f16(g->dev, x, rows * g->sh.h, dst, e);
}

static llmsim_status task_compute(geng *g, uint32_t ti, int ws, diag *e)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const int i = t->step, j = t->layer, k = t->batch;
    const long long tnew = exec_step_tokens(&g->sh, i);
    const size_t rows = (size_t)g->sh.gbs * (size_t)tnew;
    TRY(load_input(g, ti, g->a.x, rows, e));
    gdev_kv kv, out, *outp = NULL;
    if (g->sh.kv_tier[k] == TIER_GPU) {
        kv = kv_desc(g, g->kv_dev[j * g->sh.ngb + k], g->sh.kv_slot, true);
    } else if (i == 0) { /* the prompt's entries: only in the out slot */
        kv = kv_desc(g, g->kv_out[t->slot], g->sh.kv_slot, false);
    } else {
        uint32_t c = find(g, ti, PLAN_C_H2D);
        TRY(need(c, "c_h2d", e));
        kv = kv_desc(g, g->kv_in[g->c.pl->tasks[c].slot], g->sh.kv_slot, true);
        out = kv_desc(g, g->kv_out[t->slot], g->sh.kv_slot, false);
        outp = &out;
    }
    TRY(layer_forward(g, i, j, ws, kv, outp, tnew, e));
    return store_output(g, j, k, t->slot2, g->a.x, tnew, e);
}

/* Delegated attention, GPU side before: the input to dx[k], q, k, v to dqkv[k]. */
static llmsim_status task_pre(geng *g, uint32_t ti, int ws, diag *e)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const int k = t->batch;
    const size_t rows = (size_t)g->sh.gbs;
    TRY(load_input(g, ti, g->dx[k], rows, e));
    float *q = g->a.qkv, *kk = q + rows * g->sh.qd, *vv = kk + rows * g->sh.kvd;
    TRY(attn_pre(g, t->step, t->layer, ws, g->dx[k], 1, q, kk, vv, e));
    return gdev_to_f16(g->dev, q, rows * (g->sh.qd + 2 * g->sh.kvd), g->dqkv[k], e);
}

static llmsim_status task_post(geng *g, uint32_t ti, int ws, diag *e)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const int k = t->batch;
    uint32_t pre = find(g, ti, PLAN_PRE);
    TRY(need(pre, "pre", e));
    TRY(gdev_to_f32(g->dev, g->datt[k], GDEV_F16, (size_t)g->sh.gbs * g->sh.qd, g->a.att, e));
    TRY(gl_post(&g->gl, t->layer, ws, g->dx[k], g->a.att, (size_t)g->sh.gbs, e));
    return store_output(g, t->layer, k, g->c.pl->tasks[pre].slot2, g->dx[k], 1, e);
}

/* Delegated attention on the CPU: q, k, v from hqkv[k] (fp16); append k, v
 * to the cache where it lives (and to a ring buffer for the disk), attend,
 * output to hatt[k] (fp16). */
static llmsim_status task_cpu_attn(geng *g, uint32_t ti, diag *e)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const int i = t->step, j = t->layer, k = t->batch, gbs = g->sh.gbs;
    const long long start = g->sh.prompt + i - 1;
    const size_t qd = g->sh.qd, kvd = g->sh.kvd;
    const float *q = g->cqkv, *kk = q + (size_t)gbs * qd, *vv = kk + (size_t)gbs * kvd;
    uint8_t *slots, *out = NULL;
    size_t stride;
    if (g->sh.kv_tier[k] == TIER_DISK) {
        uint32_t c = find(g, ti, PLAN_C_DISK);
        TRY(need(c, "c_disk", e));
        slots = g->kv_stage[g->c.pl->tasks[c].slot];
        stride = g->sh.kv_dslot;
        bool skip;
        TRY(take_for(g, &g->kv_ring, ti, &skip, e));
        if (skip)
            return LLMSIM_OK;
        out = g->kv_ring.buf[g->ring_of[ti]];
    } else {
        slots = g->kv_host[j * g->sh.ngb + k];
        stride = g->sh.kv_slot;
    }
    const quant *kq = &g->c.p->kv_quant;
    const model *m = g->c.m;
    const long long ctx = start + 1, first = model_attn_first(m, start); /* the keys the query sees */
    k_convert_to_f32(g->pool, g->hqkv[k], K_WTYPE_F16, (size_t)gbs * (qd + 2 * kvd), g->cqkv);
    for (int s = 0; s < gbs; s++) {
        const float *kx = kk + (size_t)s * kvd, *vx = vv + (size_t)s * kvd;
        /* the cache's slots are a ring of kv_cap (exec_kv_slot: p itself without a window) */
        exec_kv_put(kq, kvd, g->sh.kv_row, slots, stride, s, exec_kv_slot(&g->sh, start), kx, vx);
        if (out)
            exec_kv_put(kq, kvd, g->sh.kv_row, out, g->sh.kv_dslot, s, 0, kx, vx);
        for (long long c = first; c < ctx; c++)
            exec_kv_get(kq, kvd, g->sh.kv_row, slots, stride, s, exec_kv_slot(&g->sh, c),
                        g->ckf + (size_t)c * kvd, g->cvf + (size_t)c * kvd);
        k_attention(g->pool, q + (size_t)s * qd, 1, (size_t)start, g->ckf, g->cvf, (size_t)m->num_heads,
                    (size_t)m->num_kv_heads, (size_t)m->head_dim, (size_t)m->sliding_window,
                    g->catt + (size_t)s * qd, g->cscr);
    }
    k_convert_f32_to_f16(g->pool, g->catt, (size_t)gbs * qd, g->hatt[k]);
    return LLMSIM_OK;
}

/* The ring a device task fills for a disk write (a store to a disk home), or NULL. */
static g_ring *store_ring(geng *g, const plan_task *t)
{
    if (t->kind == PLAN_C_D2H && g->sh.kv_tier[t->batch] == TIER_DISK)
        return &g->kv_ring;
    if (t->kind == PLAN_A_D2H && g->sh.act_tier[t->batch] == TIER_DISK)
        return &g->act_ring;
    return NULL;
}

/* C_H2D on stream s: a batch's cache so far into a GPU cache slot, from
 * its pinned home, or unpadded from the disk's staging. */
static llmsim_status kv_copy_in(geng *g, uint32_t ti, gdev_stream s, diag *e)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const int j = t->layer, k = t->batch;
    /* the slots in use: the positions so far, at most the ring (in its order) */
    const size_t n = (size_t)model_kv_positions(g->c.m, g->sh.prompt, g->sh.prompt + t->step - 1);
    uint8_t *dst = g->kv_in[t->slot];
    if (g->sh.kv_tier[k] == TIER_CPU)
        return gdev_copy(g->dev, s, GDEV_H2D, dst, g->kv_host[j * g->sh.ngb + k], n * g->sh.kv_slot, e);
    uint32_t c = find(g, ti, PLAN_C_DISK);
    TRY(need(c, "c_disk", e));
    return gdev_copy2d(g->dev, s, GDEV_H2D, dst, g->sh.kv_slot, g->kv_stage[g->c.pl->tasks[c].slot],
                       g->sh.kv_dslot, g->sh.kv_slot, n, e);
}

/* A_H2D on stream s: a batch's hidden states into a GPU slot, from their
 * pinned home or the disk's staging. */
static llmsim_status act_copy_in(geng *g, uint32_t ti, gdev_stream s, diag *e)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const void *src = g->act_host[t->batch];
    if (g->sh.act_tier[t->batch] == TIER_DISK) {
        uint32_t a = find(g, ti, PLAN_A_DISK);
        TRY(need(a, "a_disk", e));
        src = g->act_stage[g->c.pl->tasks[a].slot];
    }
    return gdev_copy(g->dev, s, GDEV_H2D, g->act_in[t->slot], src,
                     exec_act_step_bytes(&g->sh, exec_step_tokens(&g->sh, t->step)), e);
}

/* C_D2H on stream s: the new KV entries its compute task left in a GPU out
 * slot, to their pinned home, or padded into a ring buffer for the disk. */
static llmsim_status kv_copy_out(geng *g, uint32_t ti, gdev_stream s, diag *e)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const int j = t->layer, k = t->batch;
    const size_t tnew = (size_t)exec_step_tokens(&g->sh, t->step);
    uint32_t c = find(g, ti, PLAN_COMPUTE);
    TRY(need(c, "compute", e));
    const uint8_t *src = g->kv_out[g->c.pl->tasks[c].slot];
    if (g->sh.kv_tier[k] == TIER_CPU) {
        uint8_t *home = g->kv_host[j * g->sh.ngb + k];
        /* the step's slots in the ring: a prompt (kv_cap >= prompt) or one position, never wrapping */
        const size_t at = (size_t)exec_kv_slot(&g->sh, exec_step_start(&g->sh, t->step));
        return gdev_copy(g->dev, s, GDEV_D2H, home + at * g->sh.kv_slot, src, tnew * g->sh.kv_slot, e);
    }
    return gdev_copy2d(g->dev, s, GDEV_D2H, g->kv_ring.buf[g->ring_of[ti]], g->sh.kv_dslot, src,
                       g->sh.kv_slot, g->sh.kv_slot, tnew, e);
}

/* A_D2H on stream s: the hidden states its compute task (or, delegated,
 * POST) left in a GPU out slot, to their pinned home or a ring buffer. */
static llmsim_status act_copy_out(geng *g, uint32_t ti, gdev_stream s, diag *e)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    uint32_t c = find(g, ti, PLAN_COMPUTE);
    if (c == PLAN_NONE)
        c = find(g, ti, PLAN_PRE); /* delegated: PRE holds the out slot POST fills */
    TRY(need(c, "compute", e));
    const uint16_t *src = g->act_out[g->c.pl->tasks[c].slot2];
    const size_t n = exec_act_step_bytes(&g->sh, exec_step_tokens(&g->sh, t->step));
    void *dst = g->sh.act_tier[t->batch] == TIER_CPU ? (void *)g->act_host[t->batch]
                                                     : (void *)g->act_ring.buf[g->ring_of[ti]];
    return gdev_copy(g->dev, s, GDEV_D2H, dst, src, n, e);
}

/* The device work of task ti, issued on stream s (its ring buffer, if it
 * needs one, already taken: ring_of[ti]). */
static llmsim_status issue_dev(geng *g, uint32_t ti, gdev_stream s, diag *e)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const int i = t->step, j = t->layer, k = t->batch;
    const int ws = (int)(((size_t)i * (size_t)(g->sh.L + 1) + (size_t)j) & 1);
    const size_t gbs = (size_t)g->sh.gbs;
    switch ((plan_kind)t->kind) {
    case PLAN_W_H2D: return gl_load_unit(&g->mem, &g->w, j, t->slot, s, e);
    case PLAN_W_DEQUANT: return gl_dequant(&g->gl, j, ws, e);
    case PLAN_C_H2D: return kv_copy_in(g, ti, s, e);
    case PLAN_A_H2D: return act_copy_in(g, ti, s, e);
    case PLAN_C_D2H: return kv_copy_out(g, ti, s, e);
    case PLAN_A_D2H: return act_copy_out(g, ti, s, e);
    case PLAN_QKV_D2H:
        return gdev_copy(g->dev, s, GDEV_D2H, g->hqkv[k], g->dqkv[k], gbs * (g->sh.qd + 2 * g->sh.kvd) * 2, e);
    case PLAN_OUT_H2D: return gdev_copy(g->dev, s, GDEV_H2D, g->datt[k], g->hatt[k], gbs * g->sh.qd * 2, e);
    case PLAN_COMPUTE: return task_compute(g, ti, ws, e);
    case PLAN_PRE: return task_pre(g, ti, ws, e);
    case PLAN_POST: return task_post(g, ti, ws, e);
    case PLAN_HEAD: return head_forward(g, i, k, ws, e);
    default:
        return diag_set(e, LLMSIM_EFAIL, "the GPU engine cannot issue task kind %s on the device",
                        plan_kind_names[t->kind]);
    }
}

/* A disk write from the ring buffer that task `producer` filled, given
 * back after the write. */
static llmsim_status write_from_ring(geng *g, uint32_t producer, g_ring *ring, offload_file *f,
                                     size_t bytes, uint64_t off, diag *e)
{
    int r = g->ring_of[producer];
    llmsim_status st = offload_write(f, ring->buf[r], bytes, off, e);
    ring_give(g, ring, r);
    return st;
}

/* The host work of task ti (disk transfers, CPU attention). */
static llmsim_status run_host(geng *g, uint32_t ti, diag *e)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const int i = t->step, j = t->layer, k = t->batch;
    const long long tnew = exec_step_tokens(&g->sh, i);
    const long long first = exec_step_start(&g->sh, i);
    switch ((plan_kind)t->kind) {
    case PLAN_W_DISK: {
        const exec_wunit *un = &g->w.units[j];
        return offload_read(g->w.wfile, g->w.wstage[t->slot], un->disk_bytes, un->disk_base, e);
    }
    case PLAN_C_DISK: {
        /* the slots in use: the context before this step, at most the ring */
        const size_t n = (size_t)model_kv_positions(g->c.m, g->sh.prompt, g->sh.prompt + i - 1);
        return offload_read(g->kvfile, g->kv_stage[t->slot], n * g->sh.kv_dslot,
                            exec_kv_disk_off(&g->sh, j, k, 0), e);
    }
    case PLAN_A_DISK:
        return offload_read(g->actfile, g->act_stage[t->slot], exec_act_disk_bytes(&g->sh, tnew),
                            exec_act_disk_off(&g->sh, k), e);
    case PLAN_C_WRITE: {
        uint32_t p = find(g, ti, PLAN_C_D2H);
        if (p == PLAN_NONE)
            p = find(g, ti, PLAN_CPU_ATTN);
        TRY(need(p, "c_d2h", e));
        return write_from_ring(g, p, &g->kv_ring, g->kvfile, (size_t)tnew * g->sh.kv_dslot,
                               exec_kv_disk_off(&g->sh, j, k, first), e);
    }
    case PLAN_A_WRITE: {
        uint32_t p = find(g, ti, PLAN_A_D2H);
        TRY(need(p, "a_d2h", e));
        return write_from_ring(g, p, &g->act_ring, g->actfile, exec_act_disk_bytes(&g->sh, tnew),
                               exec_act_disk_off(&g->sh, k), e);
    }
    case PLAN_CPU_ATTN: return task_cpu_attn(g, ti, e);
    default:
        return diag_set(e, LLMSIM_EFAIL, "the GPU engine cannot run task kind %s on the host",
                        plan_kind_names[t->kind]);
    }
}

static llmsim_status run_task(geng *g, uint32_t ti, diag *e)
{
    const plan *pl = g->c.pl;
    const plan_task *t = &pl->tasks[ti];
    if (is_dev_task(t)) {
        gdev_stream s = stream_of(t);
        g_ring *ring = store_ring(g, t);
        if (ring) { /* before the start event: waiting for a buffer is not the copy's time */
            bool skip;
            TRY(take_for(g, ring, ti, &skip, e));
            if (skip)
                return LLMSIM_OK;
        }
        for (uint32_t d = 0; d < t->ndeps; d++) {
            const plan_task *dt = &pl->tasks[pl->deps[t->dep_first + d]];
            if (is_dev_task(dt) && stream_of(dt) != s)
                TRY(gdev_stream_wait(g->dev, s, g->ev_end[pl->deps[t->dep_first + d]], e));
        }
        TRY(gdev_record(g->dev, s, g->ev_start[ti], e));
        TRY(issue_dev(g, ti, s, e));
        return gdev_record(g->dev, s, g->ev_end[ti], e);
    }
    for (uint32_t d = 0; d < t->ndeps; d++) {
        uint32_t di = pl->deps[t->dep_first + d];
        if (is_dev_task(&pl->tasks[di]))
            TRY(gdev_event_wait(g->dev, g->ev_end[di], e));
    }
    double a = llmsim_now_s();
    llmsim_status st = run_host(g, ti, e);
    if (g->tk.block == 0) {
        g->host_start[ti] = a - g->host_base;
        g->host_end[ti] = llmsim_now_s() - g->host_base;
    }
    return st;
}

static llmsim_status g_run_task(void *state, uint32_t ti, diag *e)
{
    geng *g = state;
    llmsim_status st = run_task(g, ti, e);
    if (st) /* the engine stops: nobody will give a ring buffer back */
        ring_stop(g);
    return st;
}

// ---- setup and teardown

/* An owned array of n buffers: the buffers (free_list), then the array. */
static void free_ptrs(geng *g, void **a, size_t n, bool dev)
{
    if (!a)
        return;
    free_list(g, a, n, dev);
    free(a);
}

/* The double buffers and the rings: GPU slots and pinned staging. */
static void free_slots(geng *g)
{
    for (int s = 0; s < 2; s++) {
        void *d[] = {g->kv_in[s], g->kv_out[s], g->act_in[s], g->act_out[s]};
        void *h[] = {g->kv_stage[s], g->act_stage[s]};
        free_list(g, d, sizeof d / sizeof d[0], true);
        free_list(g, h, sizeof h / sizeof h[0], false);
    }
    for (int r = 0; r < G_RING; r++) {
        g_release_buf(g, g->kv_ring.buf[r], false);
        g_release_buf(g, g->act_ring.buf[r], false);
    }
}

/* The per-(layer, batch) and per-batch buffers, the compute scratch and
 * CPU attention's. */
static void free_state(geng *g)
{
    size_t lk = (size_t)g->sh.L * (size_t)g->sh.ngb, nk = (size_t)g->sh.ngb;
    free_ptrs(g, (void **)g->kv_dev, lk, true);
    free_ptrs(g, (void **)g->kv_host, lk, false);
    free_ptrs(g, (void **)g->act_dev, nk, true);
    free_ptrs(g, (void **)g->act_host, nk, false);
    free_ptrs(g, (void **)g->next_in, nk, true);
    free_ptrs(g, (void **)g->last, nk, true);
    free_ptrs(g, (void **)g->dx, nk, true);
    free_ptrs(g, (void **)g->dqkv, nk, true);
    free_ptrs(g, (void **)g->datt, nk, true);
    free_ptrs(g, (void **)g->hqkv, nk, false);
    free_ptrs(g, (void **)g->hatt, nk, false);
    exec_acts_free(&g->a, dfree_cb, g);
    void *d[] = {g->kv_f16, g->lin, g->ids_dev, g->inv_freq};
    void *h[] = {g->cqkv, g->catt, g->ckf, g->cvf, g->cscr, g->ids_host, g->logits_host};
    free_list(g, d, sizeof d / sizeof d[0], true);
    free_list(g, h, sizeof h / sizeof h[0], false);
}

/* The events and the task times. */
static void free_events(geng *g)
{
    if (g->ev_start)
        for (size_t i = 0; i < g->c.pl->ntasks; i++) {
            gdev_event_free(g->dev, g->ev_start[i]);
            gdev_event_free(g->dev, g->ev_end[i]);
        }
    free(g->ev_start);
    free(g->ev_end);
    if (g->ev_base)
        gdev_event_free(g->dev, g->ev_base);
    free(g->host_start);
    free(g->host_end);
}

static void g_free(geng *g)
{
    if (g->dev && !g->mem.dry) {
        diag e;
        diag_clear(&e);
        (void)gdev_sync(g->dev, &e); /* nothing in flight touches what is freed below */
    }
    gl_weights_free(&g->mem, &g->w);
    free_slots(g);
    free_state(g);
    free_events(g);
    free(g->ring_of);
    free(g->tk.probs);
    free(g->tk.idx);
    free(g->tk.tokens);
    if (g->ring_init) {
        pthread_mutex_destroy(&g->ring_mu);
        pthread_cond_destroy(&g->ring_cv);
    }
    pool_destroy(g->pool);
    offload_dir_remove(&g->dir);
    gdev_close(g->dev);
}

static bool g_accepts(const hwprofile *hw) { return hw->gpu.present; }

static llmsim_status events_init(geng *g, diag *e)
{
    const plan *pl = g->c.pl;
    g->ev_start = calloc(pl->ntasks + 1, sizeof *g->ev_start);
    g->ev_end = calloc(pl->ntasks + 1, sizeof *g->ev_end);
    g->host_start = calloc(pl->ntasks + 1, sizeof *g->host_start);
    g->host_end = calloc(pl->ntasks + 1, sizeof *g->host_end);
    if (!g->ev_start || !g->ev_end || !g->host_start || !g->host_end)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    TRY(gdev_event_new(g->dev, &g->ev_base, e));
    for (size_t i = 0; i < pl->ntasks; i++)
        if (is_dev_task(&pl->tasks[i])) {
            TRY(gdev_event_new(g->dev, &g->ev_start[i], e));
            TRY(gdev_event_new(g->dev, &g->ev_end[i], e));
        }
    return LLMSIM_OK;
}

static llmsim_status g_setup(void **state, const exec_ctx *c, bool dry, diag *e)
{
    geng *g = calloc(1, sizeof *g);
    *state = g;
    if (!g)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    const engine_opts *o = c->o;
    g->mem.dry = dry;
    g->c = *c;
    g->wt = (gdev_dtype)c->m->dtype;
    g->tk.logits_out = o->logits_out;
    g->dir.slot = -1;
    g->kind = o->gpu_emulated ? GDEV_HOST : GDEV_CUDA;
    if (o->score_from)
        return diag_set(e, LLMSIM_EINPUT, "perplexity runs on the CPU engine; give a profile without a GPU");
    if (!c->pl->has_gpu)
        return diag_set(e, LLMSIM_EINPUT, "the GPU engine runs plans for a machine with a GPU");
    exec_layout_init(&g->sh, c->m, c->p, c->w, c->pl);
    g->kv_ring_slots = c->m->sliding_window > 0 ? (size_t)g->sh.kv_cap : 0;
    exec_layer_names_get(c->m, &g->lnames);
    exec_head_names_get(c->m, &g->hnames);
    llmsim_status st;
    if (pthread_mutex_init(&g->ring_mu, NULL) || pthread_cond_init(&g->ring_cv, NULL))
        return diag_set(e, LLMSIM_EFAIL, "cannot create a mutex");
    g->ring_init = true;
    int threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (!dry) {
        if ((st = gdev_open(g->kind, threads, &g->dev, e))) {
            if (st == LLMSIM_EINPUT) {
                char why[sizeof e->msg];
                snprintf(why, sizeof why, "%s", e->msg);
                diag_clear(e);
                diag_set(e, st, "%s; llmsim run --emulate-gpu runs the GPU engine on the host, to check a plan",
                         why);
            }
            return st;
        }
        if (!(g->pool = pool_create(threads)))
            return diag_set(e, LLMSIM_EFAIL, "cannot start the CPU threads");
        if ((st = offload_dir_create(o->offload_parent, &g->dir, e)))
            return st;
    }
    g->mem.dev = g->dev;
    if ((st = weights_layout(g, e)) || (st = state_init(g, e)) || (st = scratch_init(g, e)) ||
        (st = gl_rope_table(&g->mem, c->m, &g->inv_freq, e)))
        return st;
    g->gl = (gl_ctx){.dev = g->dev, .m = c->m, .w = &g->w, .wt = g->wt, .wq = &c->p->weight_quant,
                     .deq = g->w.deq, .ln = &g->lnames, .hn = &g->hnames, .a = &g->a,
                     .lin = g->lin, .inv_freq = g->inv_freq, .h = g->sh.h, .qd = g->sh.qd, .kvd = g->sh.kvd,
                     .f = g->sh.f, .wmax = g->sh.wmax, .vocab = g->sh.vocab};
    g->tk.tokens = calloc((size_t)g->sh.bls * (size_t)(g->sh.prompt + g->sh.gen), sizeof *g->tk.tokens);
    g->tk.probs = malloc(g->sh.vocab * sizeof *g->tk.probs);
    g->tk.idx = malloc(g->sh.vocab * sizeof *g->tk.idx);
    if (!g->tk.tokens || !g->tk.probs || !g->tk.idx)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    if (dry)
        return LLMSIM_OK;
    if ((st = events_init(g, e)) || (st = weights_load(g, e)))
        return st;
    return gdev_sync(g->dev, e);
}

static void g_release(void *state)
{
    if (!state)
        return;
    g_free(state);
    free(state);
}

static llmsim_status g_prepare(void **state, const exec_ctx *c, diag *e) { return g_setup(state, c, false, e); }

static llmsim_status g_ram_bytes(const exec_ctx *c, double *bytes, diag *e)
{
    void *state = NULL;
    llmsim_status st = g_setup(&state, c, true, e);
    *bytes = state ? ((geng *)state)->mem.host_bytes : 0;
    g_release(state);
    return st;
}

static llmsim_status g_begin_block(void *state, long long blk, diag *e)
{
    geng *g = state;
    g->ring_stop = false;
    mio_block_begin(&g->tk, &g->sh, g->c.o, blk);
    TRY(embed_prompts(g, e));
    /* the origin of the block's task times: the device is idle here */
    TRY(gdev_record(g->dev, GDEV_S_COMPUTE, g->ev_base, e));
    TRY(gdev_event_wait(g->dev, g->ev_base, e));
    g->host_base = llmsim_now_s();
    return LLMSIM_OK;
}

static llmsim_status g_end_block(void *state, long long blk, engine_result *r, diag *e)
{
    geng *g = state;
    TRY(gdev_sync(g->dev, e));
    mio_block_tokens(&g->sh, blk, g->tk.tokens, r->tokens);
    return LLMSIM_OK;
}

static llmsim_status g_task_times(void *state, double *start_s, double *end_s, diag *e)
{
    geng *g = state;
    const plan *pl = g->c.pl;
    for (size_t i = 0; i < pl->ntasks; i++) {
        if (!is_dev_task(&pl->tasks[i])) {
            start_s[i] = g->host_start[i];
            end_s[i] = g->host_end[i];
            continue;
        }
        TRY(gdev_event_elapsed_s(g->dev, g->ev_base, g->ev_start[i], &start_s[i], e));
        TRY(gdev_event_elapsed_s(g->dev, g->ev_base, g->ev_end[i], &end_s[i], e));
    }
    return LLMSIM_OK;
}

static void g_finish(void *state, engine_result *r)
{
    geng *g = state;
    r->direct_io = offload_dir_direct(&g->dir);
    r->ram_bytes = g->mem.host_bytes;
    r->gpu_bytes = (double)gdev_peak_bytes(g->dev);
    gdev_describe(g->dev, r->device, sizeof r->device);
}

const exec_backend_ops exec_gpu_backend = {
    .name = "gpu",
    .accepts = g_accepts,
    .ram_bytes = g_ram_bytes,
    .prepare = g_prepare,
    .begin_block = g_begin_block,
    .run_task = g_run_task,
    .end_block = g_end_block,
    .task_times = g_task_times,
    .finish = g_finish,
    .release = g_release,
};
