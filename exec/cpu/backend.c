/*
 * backend — the CPU backend of the engine: its tiers (RAM and an O_DIRECT
 * offload directory), the weights, and the work of every task kind of a
 * plan for a machine without a GPU. The scheduler is exec/engine.c's; this
 * is the table of exec/backend.h.
 *
 * Layouts (all token-major, so that one step's new entries are contiguous):
 *  - weights of a unit (a decoder layer or the head): each tensor at its
 *    home; the disk-resident ones of a unit packed in one region of the
 *    weights file, each at an OFFLOAD_ALIGN-aligned offset, so one W_DISK
 *    read stages the whole unit.
 *  - KV cache of (layer, batch): slots of one token for the batch's
 *    sequences, [ctx][seq][K row, V row], a row being kv_dim fp16 values or
 *    one quantized row; on disk each slot is padded to OFFLOAD_ALIGN.
 *  - hidden states of a batch: [seq][token][h] fp16.
 * Ownership: everything the engine allocates lives in `eng` and is freed by
 * eng_free, on every path.
 */
#include "exec/backend.h"

#include "costmodel/sizes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/cpu/kernels.h"
#include "exec/half.h"
#include "exec/model_io.h"
#include "exec/offload.h"
#include "exec/quant.h"
#include "common/quant_layout.h"
#include "exec/safetensors.h"

/* ---- weights */

typedef struct eng_tensor {
    model_tensor desc;   /* name suffix, rows x cols, matrix */
    tier home;           /* cpu or disk (the CPU engine has no gpu tier) */
    bool quantized;      /* stored in quant layout (matrices under weight_quant) */
    size_t bytes;        /* as stored */
    uint8_t *ram;        /* home cpu: the data */
    uint64_t disk_rel;   /* home disk: offset within the unit's disk region */
} eng_tensor;

typedef struct eng_unit {
    eng_tensor t[MODEL_MAX_TENSORS];
    int n;
    uint64_t disk_base;  /* of the unit's region in the weights file */
    uint64_t disk_bytes; /* aligned */
    size_t fp16_bytes;   /* dequantized copy of its quantized matrices */
} eng_unit;

typedef struct eng {
    const model *m;
    const policy *p;
    const workload *w;
    const plan *pl;
    const engine_opts *o;
    exec_layout sh;
    k_wtype wt;            /* the model's dtype */
    pool *pool;
    offload_dir dir;
    offload_file *wfile, *kvfile, *actfile;
    eng_unit *units;       /* [L + 1], units[L] the head */
    /* staging */
    uint8_t *wstage[2];    /* a unit's disk weights */
    size_t wstage_bytes;
    uint16_t *deq;         /* dequantized matrices of the unit computing (fp16) */
    /* KV cache */
    uint8_t **kv_ram;      /* [L * ngb]: home cpu, ctx_max slots */
    uint8_t *kv_stage[2];  /* disk homes: ctx_max padded slots */
    uint8_t *kv_out[2];    /* disk homes: the new entries of a step (prompt_len slots) */
    /* hidden states */
    uint16_t **act_ram;    /* [ngb] home cpu */
    uint16_t *act_stage[2], *act_out[2];
    float **last;          /* [ngb] the last layer's output, last token of each sequence [gbs][h] */
    float **next_in;       /* [ngb] layer 0's input: the prompt's embeddings [gbs][prompt][h], then
                            * the head's embedding of each new token [gbs][h] */
    float *probs;          /* [vocab] sampling */
    float **final_all;     /* eval_ppl: [ngb] the last layer's output for every prompt token */
    long long block;       /* the block running */
    bool dry;              /* count the RAM of a run, allocate and load nothing */
    int32_t *sort_idx;     /* [vocab] sampling order */
    double nll_sum;        /* eval_ppl: -log p of the scored tokens */
    long long nll_count;
    int32_t *ids;          /* [prompt + 2] token and position ids */
    size_t wmax;           /* widest row: max(h, f, qd) */
    int32_t *tokens;       /* [bls][prompt + gen] prompt then generated tokens */
    /* compute scratch (one compute thread) */
    float *x, *hn, *qkv, *att, *ffn, *tmp, *kf, *vf, *lin, *ascratch, *logits, *vec;
    size_t lin_floats;
    uint64_t rng;
    float *logits_out;
    double ram_bytes;
} eng;

/* Every buffer of the backend comes from here, so that a dry run (g->dry)
 * adds up exactly what a real one allocates, without allocating it. */
static void *eng_alloc(eng *g, size_t bytes)
{
    void *p = g->dry ? malloc(1) : offload_alloc(bytes);
    if (p)
        g->ram_bytes += (double)offload_round(bytes);
    return p;
}

/* Store fp32 values as the tensor's stored form into dst. */
static void store_values(const eng *g, const eng_tensor *t, const float *v, uint8_t *dst)
{
    mio_store_values(g->pool, v, (size_t)t->desc.rows, (size_t)t->desc.cols, g->wt,
                     t->quantized ? &g->p->weight_quant : NULL, dst);
}

static llmsim_status weights_init(eng *g, diag *e)
{
    const plan *pl = g->pl;
    const int L = g->sh.L;
    g->units = calloc((size_t)L + 1, sizeof *g->units);
    if (!g->units)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    /* layout: every unit's disk region, and the largest for the staging */
    uint64_t disk = 0;
    size_t biggest = 1;
    for (int u = 0; u <= L; u++) {
        eng_unit *un = &g->units[u];
        model_tensor d[MODEL_MAX_TENSORS];
        un->n = u == L ? model_head_tensors(g->m, d) : model_layer_tensors(g->m, d);
        const tier *tiers = u == L ? pl->realized.head_tiers : pl->realized.layer_tiers;
        un->disk_base = disk;
        for (int i = 0; i < un->n; i++) {
            eng_tensor *t = &un->t[i];
            t->desc = d[i];
            t->home = tiers[i];
            t->quantized = d[i].matrix && g->p->weight_quant.bits;
            t->bytes = (size_t)size_tensor_bytes(g->m, &d[i], &g->p->weight_quant);
            if (t->quantized)
                un->fp16_bytes += (size_t)size_tensor_fp16_bytes(&d[i]);
            if (t->home == TIER_DISK) {
                t->disk_rel = un->disk_bytes;
                un->disk_bytes += offload_round(t->bytes);
            }
        }
        disk += un->disk_bytes;
        if (un->disk_bytes > biggest)
            biggest = un->disk_bytes;
    }
    llmsim_status st;
    if (g->dry) {
        for (int u = 0; u <= L; u++)
            for (int i = 0; i < g->units[u].n; i++)
                if (g->units[u].t[i].home != TIER_DISK)
                    g->ram_bytes += (double)offload_round(g->units[u].t[i].bytes);
    } else if (disk && (st = offload_file_create(&g->dir, "weights.bin", disk, &g->wfile, e))) {
        return st;
    }
    if (disk) {
        g->wstage_bytes = biggest;
        for (int s = 0; s < 2; s++)
            if (!(g->wstage[s] = eng_alloc(g, biggest)))
                return diag_set(e, LLMSIM_EFAIL, "out of memory (weight staging)");
    }
    size_t deq = 0;
    for (int u = 0; u <= L; u++)
        deq = g->units[u].fp16_bytes > deq ? g->units[u].fp16_bytes : deq;
    if (deq && !(g->deq = eng_alloc(g, deq)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory (dequantized weights)");

    if (g->dry)
        return LLMSIM_OK;
    /* fill: generate or read every tensor, store it at its home */
    st_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    if (g->o->weights_path && (st = st_open(g->o->weights_path, &ck, e)))
        return st;
    size_t maxn = 0;
    for (int u = 0; u <= L; u++)
        for (int i = 0; i < g->units[u].n; i++) {
            size_t n = (size_t)(g->units[u].t[i].desc.rows * g->units[u].t[i].desc.cols);
            maxn = n > maxn ? n : maxn;
        }
    float *vals = malloc(maxn * sizeof *vals);
    uint8_t *tmp = offload_alloc(maxn * 4 + OFFLOAD_ALIGN);
    st = vals && tmp ? LLMSIM_OK : diag_set(e, LLMSIM_EFAIL, "out of memory loading weights");
    for (int u = 0; u <= L && !st; u++) {
        eng_unit *un = &g->units[u];
        for (int i = 0; i < un->n && !st; i++) {
            eng_tensor *t = &un->t[i];
            if (g->o->interrupt && *g->o->interrupt)
                break; /* ^C while loading: the engine sees the flag and stops */
            if ((st = mio_load_values(g->m, g->o, g->o->weights_path ? &ck : NULL, g->pool, u, &t->desc,
                                       vals, e)))
                break;
            if (t->home == TIER_DISK) {
                memset(tmp, 0, offload_round(t->bytes));
                store_values(g, t, vals, tmp);
                st = offload_write(g->wfile, tmp, offload_round(t->bytes), un->disk_base + t->disk_rel, e);
            } else {
                if (!(t->ram = eng_alloc(g, t->bytes)))
                    st = diag_set(e, LLMSIM_EFAIL, "out of memory (weights)");
                else
                    store_values(g, t, vals, t->ram);
            }
        }
    }
    free(vals);
    free(tmp);
    st_close(&ck);
    return st;
}

/* The data of tensor i of unit u while it computes (staged if on disk). */
static const uint8_t *tensor_data(const eng *g, int u, int i, int wslot)
{
    const eng_tensor *t = &g->units[u].t[i];
    return t->home == TIER_DISK ? g->wstage[wslot] + t->disk_rel : t->ram;
}

/* ---- KV cache and hidden states */

static llmsim_status state_init(eng *g, diag *e)
{
    const int L = g->sh.L, ngb = g->sh.ngb, kv_disk = g->sh.kv_disk, act_disk = g->sh.act_disk;
    g->kv_ram = calloc((size_t)L * (size_t)ngb, sizeof *g->kv_ram);
    g->act_ram = calloc((size_t)ngb, sizeof *g->act_ram);
    g->last = calloc((size_t)ngb, sizeof *g->last);
    g->next_in = calloc((size_t)ngb, sizeof *g->next_in);
    if (!g->kv_ram || !g->act_ram || !g->last || !g->next_in)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    for (int k = 0; k < ngb; k++)
        if (g->sh.kv_tier[k] == TIER_GPU || g->sh.act_tier[k] == TIER_GPU)
            return diag_set(e, LLMSIM_EINPUT, "the CPU engine has no GPU tier");
    llmsim_status st;
    if (kv_disk) {
        uint64_t bytes = (uint64_t)L * (uint64_t)kv_disk * (uint64_t)g->sh.ctx_max * g->sh.kv_dslot;
        if (!g->dry && (st = offload_file_create(&g->dir, "kv.bin", bytes, &g->kvfile, e)))
            return st;
        for (int s = 0; s < 2; s++)
            if (!(g->kv_stage[s] = eng_alloc(g, (size_t)g->sh.ctx_max * g->sh.kv_dslot)) ||
                !(g->kv_out[s] = eng_alloc(g, (size_t)g->sh.prompt * g->sh.kv_dslot)))
                return diag_set(e, LLMSIM_EFAIL, "out of memory (KV staging)");
    }
    for (int j = 0; j < L; j++)
        for (int k = 0; k < ngb; k++)
            if (g->sh.kv_tier[k] == TIER_CPU &&
                !(g->kv_ram[j * ngb + k] = eng_alloc(g, (size_t)g->sh.ctx_max * g->sh.kv_slot)))
                return diag_set(e, LLMSIM_EFAIL, "out of memory (KV cache)");
    if (act_disk) {
        if (!g->dry && (st = offload_file_create(
                            &g->dir, "act.bin", (uint64_t)act_disk * offload_round(g->sh.act_bytes),
                            &g->actfile, e)))
            return st;
        for (int s = 0; s < 2; s++)
            if (!(g->act_stage[s] = eng_alloc(g, g->sh.act_bytes)) ||
                !(g->act_out[s] = eng_alloc(g, g->sh.act_bytes)))
                return diag_set(e, LLMSIM_EFAIL, "out of memory (hidden-state staging)");
    }
    for (int k = 0; k < ngb; k++) {
        if (g->sh.act_tier[k] == TIER_CPU && !(g->act_ram[k] = eng_alloc(g, g->sh.act_bytes)))
            return diag_set(e, LLMSIM_EFAIL, "out of memory (hidden states)");
        if (g->o->score_from && !g->final_all &&
            !(g->final_all = calloc((size_t)ngb, sizeof *g->final_all)))
            return diag_set(e, LLMSIM_EFAIL, "out of memory");
        if (g->final_all && !(g->final_all[k] = eng_alloc(
                                  g, (size_t)g->sh.gbs * (size_t)g->sh.prompt * g->sh.h * 4)))
            return diag_set(e, LLMSIM_EFAIL, "out of memory (perplexity)");
        if (!(g->last[k] = eng_alloc(g, (size_t)g->sh.gbs * g->sh.h * 4)) ||
            !(g->next_in[k] = eng_alloc(g, (size_t)g->sh.gbs * (size_t)g->sh.prompt * g->sh.h * 4)))
            return diag_set(e, LLMSIM_EFAIL, "out of memory");
    }
    return LLMSIM_OK;
}

/* ---- compute scratch */

static llmsim_status scratch_init(eng *g, diag *e)
{
    const size_t rows = (size_t)g->sh.gbs * (size_t)g->sh.prompt;
    const size_t ffn = (g->m->ffn_kind == MODEL_FFN_SWIGLU ? 2 : 1) * g->sh.f;
    g->wmax = g->sh.h > g->sh.f ? g->sh.h : g->sh.f;
    g->wmax = g->sh.qd > g->wmax ? g->sh.qd : g->wmax;
    size_t lin = 0;
    size_t shapes[][2] = {{g->sh.qd + 2 * g->sh.kvd, g->sh.h},
                          {g->sh.h, g->sh.qd},
                          {g->sh.f, g->sh.h},
                          {g->sh.h, g->sh.f},
                          {g->sh.vocab, g->sh.h}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t s = k_linear_scratch_floats(rows, shapes[i][0], shapes[i][1]);
        lin = s > lin ? s : lin;
    }
    g->lin_floats = lin;
    size_t ctx = (size_t)g->sh.ctx_max;
    struct {
        float **p;
        size_t n;
    } bufs[] = {
        {&g->x, rows * g->sh.h},
        {&g->hn, rows * (g->sh.h > g->sh.qd ? g->sh.h : g->sh.qd)},
        {&g->qkv, rows * (g->sh.qd + 2 * g->sh.kvd)},
        {&g->att, rows * g->sh.qd},
        {&g->ffn, rows * ffn},
        {&g->tmp, rows * g->sh.h},
        {&g->kf, ctx * g->sh.kvd},
        {&g->vf, ctx * g->sh.kvd},
        {&g->lin, lin ? lin : 1},
        {&g->ascratch,
         k_attention_scratch_floats((size_t)g->sh.prompt, 0, (size_t)g->m->num_heads) +
             k_attention_scratch_floats(1, ctx, (size_t)g->m->num_heads)},
        {&g->logits, (size_t)g->sh.gbs * g->sh.vocab},
        {&g->vec, 5 * g->wmax},
        {&g->probs, g->sh.vocab},
        {(float **)&g->sort_idx, g->sh.vocab},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i].p = eng_alloc(g, bufs[i].n * sizeof(float))))
            return diag_set(e, LLMSIM_EFAIL, "out of memory (compute scratch)");
    if (!(g->ids = eng_alloc(g, ((size_t)g->sh.prompt + 2) * sizeof(int32_t))))
        return diag_set(e, LLMSIM_EFAIL, "out of memory (compute scratch)");
    return LLMSIM_OK;
}

/* ---- the layer math */

/* fp32 copy of a small vector tensor (norm or bias) into out. */
static const float *vec_f32(eng *g, int u, int i, int wslot, float *out)
{
    const eng_tensor *t = &g->units[u].t[i];
    k_convert_to_f32(NULL, tensor_data(g, u, i, wslot), g->wt, (size_t)(t->desc.rows * t->desc.cols), out);
    return out;
}

static int find_tensor(const eng *g, int u, const char *name)
{
    const eng_unit *un = &g->units[u];
    for (int i = 0; i < un->n; i++)
        if (strcmp(un->t[i].desc.name, name) == 0)
            return i;
    return -1;
}

/* A matrix of unit u as k_linear wants it: stored form, or its dequantized
 * fp16 copy (written by the unit's W_DEQUANT task). */
static const void *matrix(eng *g, int u, int i, int wslot, k_wtype *wt)
{
    const eng_tensor *t = &g->units[u].t[i];
    if (!t->quantized) {
        *wt = g->wt;
        return tensor_data(g, u, i, wslot);
    }
    size_t off = 0;
    for (int k = 0; k < i; k++)
        if (g->units[u].t[k].quantized)
            off += (size_t)(g->units[u].t[k].desc.rows * g->units[u].t[k].desc.cols);
    *wt = K_WTYPE_F16;
    return g->deq + off;
}

static void linear(eng *g, int u, const char *name, const char *bias, int wslot, const float *x,
                   size_t m, float *y)
{
    int i = find_tensor(g, u, name);
    const eng_tensor *t = &g->units[u].t[i];
    k_wtype wt;
    const void *w = matrix(g, u, i, wslot, &wt);
    const float *b = NULL;
    if (bias && g->m->linear_bias) {
        int bi = find_tensor(g, u, bias);
        b = vec_f32(g, u, bi, wslot, g->vec + 2 * g->wmax);
    }
    k_linear(g->pool, x, m, (size_t)t->desc.cols, w, wt, b, (size_t)t->desc.rows, y, g->lin);
}

static void dequant_unit(eng *g, int u, int wslot)
{
    size_t off = 0;
    for (int i = 0; i < g->units[u].n; i++) {
        const eng_tensor *t = &g->units[u].t[i];
        if (!t->quantized)
            continue;
        size_t rows = (size_t)t->desc.rows, cols = (size_t)t->desc.cols;
        /* fused to fp16, rows over the pool (the same bits as f16 of quant_dequantize_row) */
        k_dequantize_f16(g->pool, tensor_data(g, u, i, wslot), rows, cols, g->p->weight_quant.bits,
                         g->p->weight_quant.group_size, g->deq + off);
        off += rows * cols;
    }
}

/* The KV slot array of (layer, batch) in use this step: its RAM home, or the
 * staging slot it was read into. For disk homes, new entries go to out. */
static uint8_t *kv_base(eng *g, int layer, int k, int stage_slot)
{
    if (g->sh.kv_tier[k] == TIER_CPU)
        return g->kv_ram[layer * g->sh.ngb + k];
    return g->kv_stage[stage_slot];
}

static size_t kv_stride(const eng *g, int k)
{
    return g->sh.kv_tier[k] == TIER_DISK ? g->sh.kv_dslot : g->sh.kv_slot;
}

/* Write the new K and V of sequence s, token position pos, into slot array. */
static void kv_put(const eng *g, uint8_t *slots, size_t stride, int s, long long pos, const float *kx,
                   const float *vx)
{
    exec_kv_put(&g->p->kv_quant, g->sh.kvd, g->sh.kv_row, slots, stride, s, pos, kx, vx);
}

/* Loops over fewer values than this (KV rows, hidden states) run on the
 * compute thread alone (waking the pool costs more than it saves). */
#define ENG_PAR_MIN_VALUES 32768

/* Run fn over [0, units) of `values` values in all: on the pool, or on the
 * caller when that is small. Every unit writes its own rows. */
static void eng_par(eng *g, size_t units, size_t values, void (*fn)(void *, size_t, size_t), void *ctx)
{
    if (values < ENG_PAR_MIN_VALUES)
        fn(ctx, 0, units);
    else
        pool_for(g->pool, units, fn, ctx);
}

typedef struct kv_job {
    const eng *g;
    uint8_t *slots;        /* put: slot array */
    uint8_t *out;          /* put: the out slots of a disk home, or NULL */
    const uint8_t *src;    /* gather: slot array */
    size_t stride;         /* of slots / src */
    long long start, t;    /* put: positions start .. start + t - 1 of every sequence */
    const float *kk, *vv;  /* put: the new K and V rows [gbs][t][kvd] */
    int s;                 /* gather: the sequence */
} kv_job;

/* Units are (sequence, new token) pairs u = s * t + a. */
static void kv_put_chunk(void *ctx, size_t b, size_t e)
{
    const kv_job *J = ctx;
    const eng *g = J->g;
    for (size_t u = b; u < e; u++) {
        int s = (int)(u / (size_t)J->t);
        long long a = (long long)(u % (size_t)J->t);
        const float *kr = J->kk + u * g->sh.kvd, *vr = J->vv + u * g->sh.kvd;
        kv_put(g, J->slots, J->stride, s, J->start + a, kr, vr);
        if (J->out)
            kv_put(g, J->out, g->sh.kv_dslot, s, a, kr, vr);
    }
}

/* The new K and V of every sequence of the batch (t tokens each, from
 * position start) into slots, and into out for a disk home (out slot a). */
static void kv_put_batch(eng *g, uint8_t *slots, size_t stride, uint8_t *out, long long start, long long t,
                         const float *kk, const float *vv)
{
    kv_job J = {.g = g, .slots = slots, .out = out, .stride = stride, .start = start, .t = t, .kk = kk, .vv = vv};
    size_t units = (size_t)g->sh.gbs * (size_t)t;
    eng_par(g, units, units * 2 * g->sh.kvd * (out ? 2 : 1), kv_put_chunk, &J);
}

/* Units are positions: both rows of one position. */
static void kv_gather_chunk(void *ctx, size_t b, size_t e)
{
    const kv_job *J = ctx;
    const eng *g = J->g;
    for (size_t c = b; c < e; c++)
        exec_kv_get(&g->p->kv_quant, g->sh.kvd, g->sh.kv_row, J->src, J->stride, J->s, (long long)c,
                   g->kf + c * g->sh.kvd, g->vf + c * g->sh.kvd);
}

/* fp32 K and V of sequence s for positions [0, ctx), positions over the pool. */
static void kv_gather(eng *g, const uint8_t *slots, size_t stride, int s, long long ctx)
{
    kv_job J = {.g = g, .src = slots, .stride = stride, .s = s};
    eng_par(g, (size_t)ctx, (size_t)ctx * 2 * g->sh.kvd, kv_gather_chunk, &J);
}

/* One GPU batch through decoder layer j at step i (t tokens per sequence).
 * x holds the input [gbs][t][h] in fp32 and receives the output. */
static void layer_forward(eng *g, int i, int j, int k, int wslot, uint8_t *kv_slots, size_t stride,
                          uint8_t *kv_out, long long t)
{
    const model *m = g->m;
    const int gbs = g->sh.gbs;
    const size_t h = g->sh.h, qd = g->sh.qd, kvd = g->sh.kvd, rows = (size_t)gbs * (size_t)t;
    const long long start = i == 0 ? 0 : g->sh.prompt + i - 1;
    const bool opt = m->family == MODEL_FAMILY_OPT;
    float *v1 = g->vec, *v2 = g->vec + g->wmax;
    /* attention block */
    if (opt)
        k_layernorm(g->pool, g->x, rows, h, vec_f32(g, j, find_tensor(g, j, "self_attn_layer_norm.weight"), wslot, v1),
                    vec_f32(g, j, find_tensor(g, j, "self_attn_layer_norm.bias"), wslot, v2),
                    (float)m->norm_eps, g->hn);
    else
        k_rmsnorm(g->pool, g->x, rows, h, vec_f32(g, j, find_tensor(g, j, "input_layernorm.weight"), wslot, v1),
                  (float)m->norm_eps, g->hn);
    float *q = g->qkv, *kk = g->qkv + rows * qd, *vv = kk + rows * kvd;
    linear(g, j, "self_attn.q_proj.weight", "self_attn.q_proj.bias", wslot, g->hn, rows, q);
    linear(g, j, "self_attn.k_proj.weight", "self_attn.k_proj.bias", wslot, g->hn, rows, kk);
    linear(g, j, "self_attn.v_proj.weight", "self_attn.v_proj.bias", wslot, g->hn, rows, vv);
    if (m->position == MODEL_POS_ROTARY) {
        int64_t *pos = (int64_t *)(void *)g->tmp;
        for (int s = 0; s < gbs; s++) {
            for (long long a = 0; a < t; a++)
                pos[a] = start + a;
            k_rotary(g->pool, q + (size_t)s * (size_t)t * qd, pos, (size_t)t, (size_t)m->num_heads,
                     (size_t)m->head_dim, m->rope_theta);
            k_rotary(g->pool, kk + (size_t)s * (size_t)t * kvd, pos, (size_t)t, (size_t)m->num_kv_heads,
                     (size_t)m->head_dim, m->rope_theta);
        }
    }
    /* the new entries: in place for a RAM home (and the staged copy of a
     * disk home), and into the out slot that C_WRITE sends to disk */
    kv_put_batch(g, kv_slots, stride, kv_out, start, t, kk, vv);
    for (int s = 0; s < gbs; s++) {
        kv_gather(g, kv_slots, stride, s, start + t);
        k_attention(g->pool, q + (size_t)s * (size_t)t * qd, (size_t)t, (size_t)start, g->kf, g->vf,
                    (size_t)m->num_heads, (size_t)m->num_kv_heads, (size_t)m->head_dim,
                    g->att + (size_t)s * (size_t)t * qd, g->ascratch);
    }
    linear(g, j, opt ? "self_attn.out_proj.weight" : "self_attn.o_proj.weight",
           opt ? "self_attn.out_proj.bias" : "self_attn.o_proj.bias", wslot, g->att, rows, g->tmp);
    k_add(g->pool, g->x, g->tmp, rows * h, g->x);
    /* MLP block */
    if (opt)
        k_layernorm(g->pool, g->x, rows, h, vec_f32(g, j, find_tensor(g, j, "final_layer_norm.weight"), wslot, v1),
                    vec_f32(g, j, find_tensor(g, j, "final_layer_norm.bias"), wslot, v2),
                    (float)m->norm_eps, g->hn);
    else
        k_rmsnorm(g->pool, g->x, rows, h, vec_f32(g, j, find_tensor(g, j, "post_attention_layernorm.weight"), wslot, v1),
                  (float)m->norm_eps, g->hn);
    if (m->ffn_kind == MODEL_FFN_SWIGLU) {
        float *gate = g->ffn, *up = g->ffn + rows * g->sh.f;
        linear(g, j, "mlp.gate_proj.weight", NULL, wslot, g->hn, rows, gate);
        linear(g, j, "mlp.up_proj.weight", NULL, wslot, g->hn, rows, up);
        k_silu_mul(g->pool, gate, up, rows * g->sh.f, gate);
        linear(g, j, "mlp.down_proj.weight", NULL, wslot, gate, rows, g->tmp);
    } else {
        linear(g, j, opt ? "fc1.weight" : "mlp.fc1.weight", opt ? "fc1.bias" : "mlp.fc1.bias", wslot,
               g->hn, rows, g->ffn);
        if (m->ffn_kind == MODEL_FFN_GELU)
            k_gelu(g->pool, g->ffn, rows * g->sh.f, g->ffn);
        else
            k_relu(g->pool, g->ffn, rows * g->sh.f, g->ffn);
        linear(g, j, opt ? "fc2.weight" : "mlp.fc2.weight", opt ? "fc2.bias" : "mlp.fc2.bias", wslot,
               g->ffn, rows, g->tmp);
    }
    k_add(g->pool, g->x, g->tmp, rows * h, g->x);
}

/* Embeddings of t tokens of each sequence of batch k, from position start
 * (+ OPT's learned positions, offset by 2), into out [gbs][t][h]. The head's
 * tensors must be at hand (resident or staged in wslot). */
static void embed(eng *g, int k, long long start, long long t, int wslot, float *out)
{
    const int L = g->sh.L;
    const bool opt = g->m->family == MODEL_FAMILY_OPT;
    int ti = find_tensor(g, L, opt ? "model.decoder.embed_tokens.weight" : "model.embed_tokens.weight");
    int32_t *ids = g->ids;
    k_wtype wt;
    const void *table = matrix(g, L, ti, wslot, &wt);
    for (int s = 0; s < g->sh.gbs; s++) {
        const int32_t *seq =
            g->tokens + (size_t)(k * g->sh.gbs + s) * (size_t)(g->sh.prompt + g->sh.gen);
        for (long long a = 0; a < t; a++)
            ids[a] = seq[start + a];
        k_embed(g->pool, ids, (size_t)t, table, wt, g->sh.vocab, g->sh.h,
                out + (size_t)s * (size_t)t * g->sh.h);
    }
    if (g->m->position == MODEL_POS_LEARNED) {
        int pi = find_tensor(g, L, opt ? "model.decoder.embed_positions.weight" : "model.embed_positions.weight");
        const void *pt = matrix(g, L, pi, wslot, &wt);
        int off = opt ? 2 : 0;
        for (long long a = 0; a < t; a++)
            ids[a] = (int32_t)(start + a + off);
        float *pos = g->tmp; /* [t][h] */
        k_embed(g->pool, ids, (size_t)t, pt, wt, (size_t)g->units[L].t[pi].desc.rows, g->sh.h, pos);
        for (int s = 0; s < g->sh.gbs; s++)
            k_add(g->pool, out + (size_t)s * (size_t)t * g->sh.h, pos, (size_t)t * g->sh.h,
                  out + (size_t)s * (size_t)t * g->sh.h);
    }
}

/* Before the plan runs: the prompts' embeddings, layer 0's input in the
 * prefill (the head's weights are read here once if they live on disk). */
static llmsim_status embed_prompts(eng *g, diag *e)
{
    const eng_unit *head = &g->units[g->sh.L];
    if (head->disk_bytes) {
        llmsim_status st = offload_read(g->wfile, g->wstage[0], head->disk_bytes, head->disk_base, e);
        if (st)
            return st;
    }
    if (head->fp16_bytes)
        dequant_unit(g, g->sh.L, 0);
    for (int k = 0; k < g->sh.ngb; k++)
        embed(g, k, 0, g->sh.prompt, 0, g->next_in[k]);
    return LLMSIM_OK;
}

/* Perplexity: -log p(next token) at every scored position of the prompts of
 * batch k, from the last layer's output of the prefill. */
static void score_prompts(eng *g, int k, int wslot, const float *normg, const float *normb,
                          const void *lmw, k_wtype lmt)
{
    const model *m = g->m;
    const size_t h = g->sh.h, V = g->sh.vocab;
    for (int s = 0; s < g->sh.gbs; s++) {
        long long seq = g->block * g->sh.bls + (long long)k * g->sh.gbs + s;
        if (seq >= g->o->num_windows)
            continue;
        const int32_t *toks =
            g->tokens + (size_t)(k * g->sh.gbs + s) * (size_t)(g->sh.prompt + g->sh.gen);
        for (long long pos = g->o->score_from[seq] - 1; pos < g->sh.prompt - 1; pos++) {
            if (pos < 0)
                continue;
            float *x = g->tmp; /* not hn: the head's own batch input is there */
            memcpy(x, g->final_all[k] + ((size_t)s * (size_t)g->sh.prompt + (size_t)pos) * h,
                   h * 4);
            if (m->norm == MODEL_NORM_LAYERNORM)
                k_layernorm(g->pool, x, 1, h, normg, normb, (float)m->norm_eps, x);
            else
                k_rmsnorm(g->pool, x, 1, h, normg, (float)m->norm_eps, x);
            k_linear(g->pool, x, 1, h, lmw, lmt, NULL, V, g->logits, g->lin);
            double mx = g->logits[0], sum = 0;
            for (size_t v = 1; v < V; v++)
                mx = g->logits[v] > mx ? g->logits[v] : mx;
            for (size_t v = 0; v < V; v++)
                sum += exp(g->logits[v] - mx);
            g->nll_sum += -(g->logits[toks[pos + 1]] - mx - log(sum));
            g->nll_count++;
        }
    }
    (void)wslot;
}

static void head_forward(eng *g, int i, int k, int wslot)
{
    const int L = g->sh.L, gbs = g->sh.gbs;
    const model *m = g->m;
    float *v1 = g->vec, *v2 = g->vec + g->wmax;
    float *x = g->hn;
    memcpy(x, g->last[k], (size_t)gbs * g->sh.h * 4);
    if (m->norm == MODEL_NORM_LAYERNORM) {
        const char *wn = m->family == MODEL_FAMILY_OPT ? "model.decoder.final_layer_norm.weight" : "model.norm.weight";
        const char *bn = m->family == MODEL_FAMILY_OPT ? "model.decoder.final_layer_norm.bias" : "model.norm.bias";
        k_layernorm(g->pool, x, (size_t)gbs, g->sh.h,
                    vec_f32(g, L, find_tensor(g, L, wn), wslot, v1),
                    vec_f32(g, L, find_tensor(g, L, bn), wslot, v2), (float)m->norm_eps, x);
    } else {
        k_rmsnorm(g->pool, x, (size_t)gbs, g->sh.h,
                  vec_f32(g, L, find_tensor(g, L, "model.norm.weight"), wslot, v1),
                  (float)m->norm_eps, x);
    }
    const char *lm = m->tied_embeddings ? (m->family == MODEL_FAMILY_OPT ? "model.decoder.embed_tokens.weight"
                                                                         : "model.embed_tokens.weight")
                                        : "lm_head.weight";
    int li = find_tensor(g, L, lm);
    k_wtype wt;
    const void *w = matrix(g, L, li, wslot, &wt);
    if (g->final_all && i == 0) {
        /* the norm's vectors are in v1, v2; score before the batch's logits reuse them */
        score_prompts(g, k, wslot, v1, m->norm == MODEL_NORM_LAYERNORM ? v2 : NULL, w, wt);
    }
    k_linear(g->pool, x, (size_t)gbs, g->sh.h, w, wt, NULL, g->sh.vocab, g->logits, g->lin);
    mio_next_tokens(&g->sh, g->o, g->logits, i, k, g->block, g->logits_out, g->tokens, g->probs,
                    g->sort_idx);
    /* the next step's input: the embeddings of the new tokens */
    if (i + 1 < g->sh.gen)
        embed(g, k, g->sh.prompt + i, 1, wslot, g->next_in[k]);
}

/* ---- running one task */

typedef struct run_ctx {
    eng *g;
    const uint32_t *idx; /* (step, layer, batch, kind) -> task, for finding slots */
} run_ctx;

static uint32_t find(const eng *g, uint32_t near, plan_kind kind) { return plan_sibling(g->pl, near, kind); }

static llmsim_status run_task(eng *g, uint32_t ti, diag *e)
{
    const plan *pl = g->pl;
    const plan_task *t = &pl->tasks[ti];
    const int i = t->step, j = t->layer, k = t->batch, L = g->sh.L;
    const long long tnew = i == 0 ? g->sh.prompt : 1;
    const size_t u = (size_t)i * (size_t)(L + 1) + (size_t)j;
    const int wslot = (int)(u & 1);
    if (t->res == PLAN_RES_CPU)
        pool_pin_caller(g->pool); /* the compute thread, on the CPU the workers leave free */
    switch ((plan_kind)t->kind) {
    case PLAN_W_DISK: {
        const eng_unit *un = &g->units[j];
        return offload_read(g->wfile, g->wstage[t->slot], un->disk_bytes, un->disk_base, e);
    }
    case PLAN_W_DEQUANT:
        dequant_unit(g, j, wslot);
        return LLMSIM_OK;
    case PLAN_C_DISK: {
        size_t n = (size_t)(g->sh.prompt + i - 1) * g->sh.kv_dslot;
        return offload_read(g->kvfile, g->kv_stage[t->slot], n, exec_kv_disk_off(&g->sh, j, k, 0), e);
    }
    case PLAN_A_DISK: {
        size_t n = (size_t)offload_round((size_t)g->sh.gbs * (size_t)tnew * g->sh.h * 2);
        return offload_read(g->actfile, g->act_stage[t->slot], n, exec_act_disk_off(&g->sh, k), e);
    }
    case PLAN_C_WRITE: {
        uint32_t c = find(g, ti, PLAN_COMPUTE);
        size_t n = (size_t)tnew * g->sh.kv_dslot;
        long long first = i == 0 ? 0 : g->sh.prompt + i - 1;
        return offload_write(g->kvfile, g->kv_out[pl->tasks[c].slot], n, exec_kv_disk_off(&g->sh, j, k, first), e);
    }
    case PLAN_A_WRITE: {
        uint32_t c = find(g, ti, PLAN_COMPUTE);
        size_t n = (size_t)offload_round((size_t)g->sh.gbs * (size_t)tnew * g->sh.h * 2);
        return offload_write(g->actfile, g->act_out[pl->tasks[c].slot2], n, exec_act_disk_off(&g->sh, k), e);
    }
    case PLAN_COMPUTE: {
        const size_t rows = (size_t)g->sh.gbs * (size_t)tnew;
        /* input */
        if (j == 0) {
            memcpy(g->x, g->next_in[k], rows * g->sh.h * sizeof(float));
        } else {
            const uint16_t *src;
            if (g->sh.act_tier[k] == TIER_DISK)
                src = g->act_stage[pl->tasks[find(g, ti, PLAN_A_DISK)].slot];
            else
                src = g->act_ram[k];
            k_convert_to_f32(g->pool, src, K_WTYPE_F16, rows * g->sh.h, g->x);
        }
        /* KV: the RAM home, or the staged copy; new entries of a disk home
         * also go to the out slot (in the prefill, only there) */
        uint8_t *slots, *out = NULL;
        size_t stride = kv_stride(g, k);
        if (g->sh.kv_tier[k] == TIER_DISK && i == 0) {
            slots = g->kv_out[t->slot];
        } else if (g->sh.kv_tier[k] == TIER_DISK) {
            slots = g->kv_stage[pl->tasks[find(g, ti, PLAN_C_DISK)].slot];
            out = g->kv_out[t->slot];
        } else {
            slots = kv_base(g, j, k, 0);
        }
        layer_forward(g, i, j, k, wslot, slots, stride, out, tnew);
        /* output: the last layer's to the head, the others to their home */
        if (j == L - 1 && g->final_all && i == 0)
            memcpy(g->final_all[k], g->x, rows * g->sh.h * sizeof(float));
        if (j == L - 1) {
            for (int s = 0; s < g->sh.gbs; s++)
                memcpy(g->last[k] + (size_t)s * g->sh.h,
                       g->x + ((size_t)s * (size_t)tnew + (size_t)tnew - 1) * g->sh.h, g->sh.h * 4);
        } else {
            k_convert_f32_to_f16(g->pool, g->x, rows * g->sh.h,
                                 g->sh.act_tier[k] == TIER_DISK ? g->act_out[t->slot2]
                                                                : g->act_ram[k]);
        }
        return LLMSIM_OK;
    }
    case PLAN_HEAD:
        head_forward(g, i, k, wslot);
        return LLMSIM_OK;
    default:
        return diag_set(e, LLMSIM_EFAIL, "the CPU engine cannot run task kind %s (a plan for a GPU)",
                        plan_kind_names[t->kind]);
    }
}

/* ---- setup and teardown */

static void eng_free(eng *g)
{
    if (g->units) {
        for (int u = 0; u <= g->sh.L; u++)
            for (int i = 0; i < g->units[u].n; i++)
                free(g->units[u].t[i].ram);
        free(g->units);
    }
    for (int s = 0; s < 2; s++) {
        free(g->wstage[s]);
        free(g->kv_stage[s]);
        free(g->kv_out[s]);
        free(g->act_stage[s]);
        free(g->act_out[s]);
    }
    free(g->deq);
    if (g->kv_ram)
        for (int i = 0; i < g->sh.L * g->sh.ngb; i++)
            free(g->kv_ram[i]);
    free(g->kv_ram);
    if (g->act_ram)
        for (int k = 0; k < g->sh.ngb; k++)
            free(g->act_ram[k]);
    free(g->act_ram);
    if (g->last)
        for (int k = 0; k < g->sh.ngb; k++)
            free(g->last[k]);
    free(g->last);
    if (g->next_in)
        for (int k = 0; k < g->sh.ngb; k++)
            free(g->next_in[k]);
    free(g->next_in);
    if (g->final_all)
        for (int k = 0; k < g->sh.ngb; k++)
            free(g->final_all[k]);
    free(g->final_all);
    free(g->ids);
    float *bufs[] = {g->x, g->hn, g->qkv, g->att, g->ffn, g->tmp, g->kf, g->vf, g->lin, g->ascratch,
                     g->logits, g->vec, g->probs, (float *)g->sort_idx};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(g->tokens);
    pool_destroy(g->pool);
    offload_dir_remove(&g->dir);
}

/* ---- the backend table */

static bool cpu_accepts(const hwprofile *hw) { return !hw->gpu.present; }

static llmsim_status cpu_setup(void **state, const exec_ctx *c, bool dry, diag *e)
{
    eng *g = calloc(1, sizeof *g);
    *state = g;
    if (!g)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    g->dry = dry;
    const model *m = c->m;
    const policy *p = c->p;
    const workload *w = c->w;
    const engine_opts *o = c->o;
    g->m = m;
    g->p = p;
    g->w = w;
    g->pl = c->pl;
    g->o = o;
    g->wt = (k_wtype)m->dtype;
    g->logits_out = o->logits_out;
    g->dir.slot = -1;
    exec_layout_init(&g->sh, m, p, w, c->pl);
    llmsim_status st;
    if (!(g->pool = pool_create(o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN))))
        return diag_set(e, LLMSIM_EFAIL, "cannot start the compute threads");
    if (!dry)
        pool_pin(g->pool); /* best effort: unpinned is slower, not wrong */
    if ((!dry && (st = offload_dir_create(o->offload_parent, &g->dir, e))) ||
        (st = weights_init(g, e)) || (st = state_init(g, e)) || (st = scratch_init(g, e)))
        return st;
    g->tokens = calloc((size_t)g->sh.bls * (size_t)(g->sh.prompt + g->sh.gen), sizeof *g->tokens);
    if (!g->tokens)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    return LLMSIM_OK;
}

static llmsim_status cpu_prepare(void **state, const exec_ctx *c, diag *e)
{
    return cpu_setup(state, c, false, e);
}

static void cpu_release(void *state);

static llmsim_status cpu_ram_bytes(const exec_ctx *c, double *bytes, diag *e)
{
    void *state = NULL;
    llmsim_status st = cpu_setup(&state, c, true, e);
    *bytes = state ? ((eng *)state)->ram_bytes : 0;
    cpu_release(state);
    return st;
}

static llmsim_status cpu_begin_block(void *state, long long blk, diag *e)
{
    eng *g = state;
    const engine_opts *o = g->o;
    g->block = blk;
    /* prompts of this block: given, or random from the seed */
    for (int s = 0; s < g->sh.bls; s++)
        mio_prompt(o, blk * g->sh.bls + s, g->sh.num_prompts, g->sh.prompt, g->sh.vocab,
                   g->tokens + (size_t)s * (size_t)(g->sh.prompt + g->sh.gen));
    if (blk > 0)
        g->logits_out = NULL;
    return embed_prompts(g, e);
}

static llmsim_status cpu_run_task(void *state, uint32_t task, diag *e) { return run_task(state, task, e); }

static llmsim_status cpu_end_block(void *state, long long blk, engine_result *r, diag *e)
{
    (void)e;
    eng *g = state;
    for (int s = 0; s < g->sh.bls; s++) {
        long long seq = blk * g->sh.bls + s;
        if (seq >= g->sh.num_prompts)
            break;
        memcpy(r->tokens + (size_t)seq * (size_t)g->sh.gen,
               g->tokens + (size_t)s * (size_t)(g->sh.prompt + g->sh.gen) + g->sh.prompt,
               (size_t)g->sh.gen * sizeof(int32_t));
    }
    return LLMSIM_OK;
}

static void cpu_finish(void *state, engine_result *r)
{
    eng *g = state;
    r->direct_io = true;
    for (int i = 0; i < g->dir.nfiles; i++)
        r->direct_io = r->direct_io && g->dir.files[i].direct;
    r->ram_bytes = g->ram_bytes;
    r->nll_sum = g->nll_sum;
    r->nll_count = g->nll_count;
}

static void cpu_release(void *state)
{
    if (!state)
        return;
    eng_free(state);
    free(state);
}

const exec_backend_ops exec_cpu_backend = {
    .name = "cpu",
    .accepts = cpu_accepts,
    .ram_bytes = cpu_ram_bytes,
    .prepare = cpu_prepare,
    .begin_block = cpu_begin_block,
    .run_task = cpu_run_task,
    .end_block = cpu_end_block,
    .task_times = NULL,
    .finish = cpu_finish,
    .release = cpu_release,
};
