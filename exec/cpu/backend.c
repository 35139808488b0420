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
 *    read stages the whole unit (exec/weights.h, shared with the GPU
 *    backend).
 *  - KV cache of (layer, batch): slots of one token for the batch's
 *    sequences, [ctx][seq][K row, V row], a row being kv_dim fp16 values or
 *    one quantized row; on disk each slot is padded to OFFLOAD_ALIGN.
 *  - hidden states of a batch: [seq][token][h] fp16.
 * Ownership: everything the engine allocates lives in `eng` and is freed by
 * eng_free, on every path.
 */
#include "exec/backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/cpu/kernels.h"
#include "exec/cpu/layer.h"
#include "exec/cpu/ram.h"
#include "exec/model_io.h"
#include "exec/offload.h"
#include "exec/weights.h"

// ---- state

typedef struct eng {
    exec_ctx c;            /* the run: model, policy, workload, plan, options (borrowed) */
    exec_layout sh;
    k_wtype wt;            /* the model's dtype */
    pool *pool;
    offload_dir dir;
    offload_file *wfile, *kvfile, *actfile;
    exec_wunit *units;     /* [L + 1], units[L] the head; data: the home cpu ones, in RAM */
    exec_wextent wext;     /* what the units need at most */
    exec_layer_names lnames;
    exec_head_names hnames;
    /* staging */
    uint8_t *wstage[2];    /* a unit's disk weights */
    uint16_t *deq;         /* dequantized matrices of the unit computing (fp16) */
    /* KV cache */
    uint8_t **kv_ram;      /* [L * ngb]: home cpu, kv_cap slots (a ring under a sliding window) */
    uint8_t *kv_stage[2];  /* disk homes: kv_cap padded slots */
    uint8_t *kv_out[2];    /* disk homes: the new entries of a step (prompt_len slots) */
    /* hidden states */
    uint16_t **act_ram;    /* [ngb] home cpu */
    uint16_t *act_stage[2], *act_out[2];
    float **last;          /* [ngb] the last layer's output, last token of each sequence [gbs][h] */
    float **next_in;       /* [ngb] layer 0's input: the prompt's embeddings [gbs][prompt][h], then
                            * the head's embedding of each new token [gbs][h] */
    float **final_all;     /* eval_ppl: [ngb] the last layer's output for every prompt token */
    cpu_ram ram;           /* every buffer's bytes; dry: count the RAM of a run, allocate
                            * and load nothing */
    double nll_sum;        /* eval_ppl: -log p of the scored tokens */
    long long nll_count;
    int32_t *ids;          /* [2 prompt] token and position ids */
    xl_ctx xl;             /* the layer math's view of the above (layer.h) */
    mio_tokens tk;         /* the block's tokens; probs, idx: from eng_alloc */
    /* compute scratch (one compute thread) */
    exec_acts a;           /* the activations of a step */
    float *kf, *vf;        /* [ctx_max][kvd] a sequence's K and V in fp32 */
    float *ascratch;       /* k_attention's scratch */
} eng;

/* Every buffer of the backend comes from here (ram.h). */
static void *eng_alloc(eng *g, size_t bytes) { return cpu_ram_alloc(&g->ram, bytes); }

// ---- weights

/* The units (ram.h), the staging of a unit's disk tensors and the
 * dequantized copy. */
static llmsim_status weights_init(eng *g, diag *e)
{
    llmsim_status st = cpu_weights_init(&g->ram, &g->dir, g->c.m, &g->c.p->weight_quant,
                                        &g->c.pl->realized, g->c.o, g->pool, &g->units, &g->wext,
                                        &g->wfile, e);
    if (st)
        return st;
    const exec_wextent ext = g->wext;
    if (ext.disk_bytes)
        for (int s = 0; s < 2; s++)
            if (!(g->wstage[s] = eng_alloc(g, ext.unit_disk_bytes)))
                return diag_set(e, LLMSIM_EFAIL, "out of memory (weight staging)");
    size_t deq = ext.fp16_values * 2;
    if (deq && !(g->deq = eng_alloc(g, deq)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory (dequantized weights)");
    return LLMSIM_OK;
}

// ---- KV cache and hidden states

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
        if (!g->ram.dry && (st = offload_file_create(&g->dir, "kv.bin", exec_kv_file_bytes(&g->sh),
                                                 &g->kvfile, e)))
            return st;
        for (int s = 0; s < 2; s++)
            if (!(g->kv_stage[s] = eng_alloc(g, (size_t)g->sh.kv_cap * g->sh.kv_dslot)) ||
                !(g->kv_out[s] = eng_alloc(g, (size_t)g->sh.prompt * g->sh.kv_dslot)))
                return diag_set(e, LLMSIM_EFAIL, "out of memory (KV staging)");
    }
    for (int j = 0; j < L; j++)
        for (int k = 0; k < ngb; k++)
            if (g->sh.kv_tier[k] == TIER_CPU &&
                !(g->kv_ram[j * ngb + k] = eng_alloc(g, (size_t)g->sh.kv_cap * g->sh.kv_slot)))
                return diag_set(e, LLMSIM_EFAIL, "out of memory (KV cache)");
    if (act_disk) {
        if (!g->ram.dry && (st = offload_file_create(&g->dir, "act.bin", exec_act_file_bytes(&g->sh),
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
        if (g->c.o->score_from && !g->final_all &&
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

// ---- compute scratch

static llmsim_status scratch_init(eng *g, diag *e)
{
    if (!exec_acts_alloc(&g->a, &g->sh, cpu_ram_alloc_cb, &g->ram))
        return diag_set(e, LLMSIM_EFAIL, "out of memory (compute scratch)");
    size_t ctx = (size_t)g->sh.ctx_max;
    struct {
        float **p;
        size_t n;
    } bufs[] = {
        {&g->kf, ctx * g->sh.kvd},
        {&g->vf, ctx * g->sh.kvd},
        {&g->ascratch,
         k_attention_scratch_floats((size_t)g->sh.prompt, 0, (size_t)g->c.m->num_heads) +
             k_attention_scratch_floats(1, ctx, (size_t)g->c.m->num_heads)},
        {&g->tk.probs, g->sh.vocab},
        {(float **)&g->tk.idx, g->sh.vocab},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i].p = eng_alloc(g, bufs[i].n * sizeof(float))))
            return diag_set(e, LLMSIM_EFAIL, "out of memory (compute scratch)");
    if (!(g->ids = eng_alloc(g, 2 * (size_t)g->sh.prompt * sizeof(int32_t))))
        return diag_set(e, LLMSIM_EFAIL, "out of memory (compute scratch)");
    return LLMSIM_OK;
}

// ---- the layer math (layer.h), on the staging of weight slot wslot

static const uint8_t *wstage(const eng *g, int wslot) { return g->wstage[wslot]; }

static void dequant_unit(eng *g, int u, int wslot) { xl_dequant(&g->xl, u, wstage(g, wslot)); }

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

/* Write the new K and V of sequence s, token position pos, into slot array
 * (slot exec_kv_slot: the position's place in the ring). */
static void kv_put(const eng *g, uint8_t *slots, size_t stride, int s, long long pos, const float *kx,
                   const float *vx)
{
    exec_kv_put(&g->c.p->kv_quant, g->sh.kvd, g->sh.kv_row, slots, stride, s,
                exec_kv_slot(&g->sh, pos), kx, vx);
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
    for (size_t u = b; u < e; u++) {
        const size_t c = (size_t)J->start + u; /* the position */
        exec_kv_get(&g->c.p->kv_quant, g->sh.kvd, g->sh.kv_row, J->src, J->stride, J->s,
                    exec_kv_slot(&g->sh, (long long)c), g->kf + c * g->sh.kvd, g->vf + c * g->sh.kvd);
    }
}

/* fp32 K and V of sequence s for positions [first, ctx) into kf and vf at
 * their positions, positions over the pool. */
static void kv_gather(eng *g, const uint8_t *slots, size_t stride, int s, long long first, long long ctx)
{
    kv_job J = {.g = g, .src = slots, .stride = stride, .s = s, .start = first};
    eng_par(g, (size_t)(ctx - first), (size_t)(ctx - first) * 2 * g->sh.kvd, kv_gather_chunk, &J);
}

/* Rotary embeddings of q and k of every sequence of a batch, in place: t
 * tokens a sequence from position start. */
static void rotary_batch(eng *g, float *q, float *kk, long long start, long long t)
{
    int64_t *pos = (int64_t *)(void *)g->a.tmp;
    for (int s = 0; s < g->sh.gbs; s++) {
        for (long long a = 0; a < t; a++)
            pos[a] = start + a;
        xl_rotary(&g->xl, q + (size_t)s * (size_t)t * g->sh.qd, kk + (size_t)s * (size_t)t * g->sh.kvd,
                  pos, (size_t)t);
    }
}

/* The attention block of decoder layer j at step i for one GPU batch (t
 * tokens a sequence): x += o(attention(q, k, v of norm(x))), the new K and
 * V into the slot array (and into out for a disk home). */
static void attn_block(eng *g, int i, int j, int wslot, uint8_t *kv_slots, size_t stride,
                       uint8_t *kv_out, long long t)
{
    const model *m = g->c.m;
    const int gbs = g->sh.gbs;
    const size_t qd = g->sh.qd, kvd = g->sh.kvd, rows = (size_t)gbs * (size_t)t;
    const long long start = exec_step_start(&g->sh, i);
    xl_qkv(&g->xl, j, wstage(g, wslot), rows);
    float *q = g->a.qkv, *kk = g->a.qkv + rows * qd, *vv = kk + rows * kvd;
    if (m->position == MODEL_POS_ROTARY)
        rotary_batch(g, q, kk, start, t);
    /* the new entries: in place for a RAM home (and the staged copy of a
     * disk home), and into the out slot that C_WRITE sends to disk */
    kv_put_batch(g, kv_slots, stride, kv_out, start, t, kk, vv);
    for (int s = 0; s < gbs; s++) { /* the keys the step's first query sees, on */
        kv_gather(g, kv_slots, stride, s, model_attn_first(m, start), start + t);
        k_attention(g->pool, q + (size_t)s * (size_t)t * qd, (size_t)t, (size_t)start, g->kf, g->vf,
                    (size_t)m->num_heads, (size_t)m->num_kv_heads, (size_t)m->head_dim,
                    (size_t)m->sliding_window, g->a.att + (size_t)s * (size_t)t * qd, g->ascratch);
    }
    xl_attn_out(&g->xl, j, wstage(g, wslot), rows);
}

/* One GPU batch through decoder layer j at step i (t tokens per sequence).
 * x holds the input [gbs][t][h] in fp32 and receives the output. */
static void layer_forward(eng *g, int i, int j, int wslot, uint8_t *kv_slots, size_t stride,
                          uint8_t *kv_out, long long t)
{
    attn_block(g, i, j, wslot, kv_slots, stride, kv_out, t);
    xl_mlp(&g->xl, j, wstage(g, wslot), (size_t)g->sh.gbs * (size_t)t);
}

/* Embeddings of t tokens of each sequence of batch k, from position start,
 * into out [gbs][t][h]. The head's tensors must be at hand (resident or
 * staged in wslot). */
static void embed(eng *g, int k, long long start, long long t, int wslot, float *out)
{
    int32_t *ids = g->ids, *pos = g->ids + t;
    for (long long a = 0; a < t; a++)
        pos[a] = (int32_t)(start + a);
    for (int s = 0; s < g->sh.gbs; s++) {
        const int32_t *seq =
            g->tk.tokens + (size_t)(k * g->sh.gbs + s) * (size_t)(g->sh.prompt + g->sh.gen);
        for (long long a = 0; a < t; a++)
            ids[a] = seq[start + a];
        xl_embed(&g->xl, ids, pos, (size_t)t, wstage(g, wslot), out + (size_t)s * (size_t)t * g->sh.h);
    }
}

/* Before the plan runs: the prompts' embeddings, layer 0's input in the
 * prefill (the head's weights are read here once if they live on disk). */
static llmsim_status embed_prompts(eng *g, diag *e)
{
    const exec_wunit *head = &g->units[g->sh.L];
    if (head->disk_bytes) {
        llmsim_status st = offload_read(g->wfile, g->wstage[0], head->disk_bytes, head->disk_base, e);
        if (st)
            return st;
    }
    if (head->fp16_values)
        dequant_unit(g, g->sh.L, 0);
    for (int k = 0; k < g->sh.ngb; k++)
        embed(g, k, 0, g->sh.prompt, 0, g->next_in[k]);
    return LLMSIM_OK;
}

/* Perplexity: -log p(next token) at every scored position of the prompts of
 * batch k, from the last layer's output of the prefill. */
static void score_prompts(eng *g, int k, const float *normg, const float *normb, const void *lmw,
                          k_wtype lmt)
{
    const model *m = g->c.m;
    const engine_opts *o = g->c.o;
    const size_t h = g->sh.h, V = g->sh.vocab;
    for (int s = 0; s < g->sh.gbs; s++) {
        long long seq = g->tk.block * g->sh.bls + (long long)k * g->sh.gbs + s;
        if (seq >= o->num_windows)
            continue;
        const int32_t *toks =
            g->tk.tokens + (size_t)(k * g->sh.gbs + s) * (size_t)(g->sh.prompt + g->sh.gen);
        for (long long pos = o->score_from[seq] - 1; pos < g->sh.prompt - 1; pos++) {
            if (pos < 0)
                continue;
            float *x = g->a.tmp; /* not hn: the head's own batch input is there */
            memcpy(x, g->final_all[k] + ((size_t)s * (size_t)g->sh.prompt + (size_t)pos) * h,
                   h * 4);
            if (m->norm == MODEL_NORM_LAYERNORM)
                k_layernorm(g->pool, x, 1, h, normg, normb, (float)m->norm_eps, x);
            else
                k_rmsnorm(g->pool, x, 1, h, normg, (float)m->norm_eps, x);
            k_linear(g->pool, x, 1, h, lmw, lmt, NULL, V, g->a.logits);
            double mx = g->a.logits[0], sum = 0;
            for (size_t v = 1; v < V; v++)
                mx = g->a.logits[v] > mx ? g->a.logits[v] : mx;
            for (size_t v = 0; v < V; v++)
                sum += exp(g->a.logits[v] - mx);
            g->nll_sum += -(g->a.logits[toks[pos + 1]] - mx - log(sum));
            g->nll_count++;
        }
    }
}

static void head_forward(eng *g, int i, int k, int wslot)
{
    const int L = g->sh.L, gbs = g->sh.gbs;
    const exec_head_names *nm = &g->hnames;
    float *x = g->a.hn;
    memcpy(x, g->last[k], (size_t)gbs * g->sh.h * 4);
    xl_norm(&g->xl, L, nm->norm_w, nm->norm_b, wstage(g, wslot), x, (size_t)gbs, x);
    int li = exec_wunit_find(&g->units[L], nm->lm_head);
    k_wtype wt;
    const void *w = xl_matrix(&g->xl, L, li, wstage(g, wslot), &wt);
    if (g->final_all && i == 0) {
        /* the norm's vectors are in vec (norm); score before the batch's logits reuse them */
        score_prompts(g, k, g->a.vec, nm->norm_b ? g->a.vec + g->sh.wmax : NULL, w, wt);
    }
    k_linear(g->pool, x, (size_t)gbs, g->sh.h, w, wt, NULL, g->sh.vocab, g->a.logits);
    mio_next_tokens(&g->sh, g->c.o, g->a.logits, i, k, &g->tk);
    /* the next step's input: the embeddings of the new tokens */
    if (i + 1 < g->sh.gen)
        embed(g, k, g->sh.prompt + i, 1, wslot, g->next_in[k]);
}

// ---- running one task

static uint32_t find(const eng *g, uint32_t near, plan_kind kind) { return plan_sibling(g->c.pl, near, kind); }

/* A disk read or write of task ti (W_DISK, C_DISK, A_DISK, C_WRITE, A_WRITE)
 * between its file and the staging or out slot the plan gives it. */
static llmsim_status disk_task(eng *g, uint32_t ti, diag *e)
{
    const plan *pl = g->c.pl;
    const plan_task *t = &pl->tasks[ti];
    const int i = t->step, j = t->layer, k = t->batch;
    const long long tnew = exec_step_tokens(&g->sh, i);
    switch ((plan_kind)t->kind) {
    case PLAN_W_DISK: {
        const exec_wunit *un = &g->units[j];
        return offload_read(g->wfile, g->wstage[t->slot], un->disk_bytes, un->disk_base, e);
    }
    case PLAN_C_DISK: {
        /* the slots in use: the context before this step, at most the ring */
        size_t n = (size_t)model_kv_positions(g->c.m, g->sh.prompt, g->sh.prompt + i - 1) * g->sh.kv_dslot;
        return offload_read(g->kvfile, g->kv_stage[t->slot], n, exec_kv_disk_off(&g->sh, j, k, 0), e);
    }
    case PLAN_A_DISK:
        return offload_read(g->actfile, g->act_stage[t->slot], exec_act_disk_bytes(&g->sh, tnew),
                            exec_act_disk_off(&g->sh, k), e);
    case PLAN_C_WRITE: {
        uint32_t c = find(g, ti, PLAN_COMPUTE);
        size_t n = (size_t)tnew * g->sh.kv_dslot;
        long long first = exec_step_start(&g->sh, i);
        return offload_write(g->kvfile, g->kv_out[pl->tasks[c].slot], n, exec_kv_disk_off(&g->sh, j, k, first), e);
    }
    case PLAN_A_WRITE: {
        uint32_t c = find(g, ti, PLAN_COMPUTE);
        return offload_write(g->actfile, g->act_out[pl->tasks[c].slot2], exec_act_disk_bytes(&g->sh, tnew),
                             exec_act_disk_off(&g->sh, k), e);
    }
    default:
        return diag_set(e, LLMSIM_EFAIL, "the CPU engine cannot run task kind %s as a disk transfer",
                        plan_kind_names[t->kind]);
    }
}

/* The input of compute task ti (rows tokens) into x in fp32: the
 * embeddings for layer 0, else the hidden states at home or staged. */
static void compute_input(eng *g, uint32_t ti, size_t rows)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const int k = t->batch;
    if (t->layer == 0) {
        memcpy(g->a.x, g->next_in[k], rows * g->sh.h * sizeof(float));
        return;
    }
    const uint16_t *src;
    if (g->sh.act_tier[k] == TIER_DISK)
        src = g->act_stage[g->c.pl->tasks[find(g, ti, PLAN_A_DISK)].slot];
    else
        src = g->act_ram[k];
    k_convert_to_f32(g->pool, src, K_WTYPE_F16, rows * g->sh.h, g->a.x);
}

/* The output of compute task t from x: the last layer's to the head (and,
 * scoring, the prefill's every token), the others to their home. */
static void compute_output(eng *g, const plan_task *t, long long tnew, size_t rows)
{
    const int j = t->layer, k = t->batch;
    if (j == g->sh.L - 1 && g->final_all && t->step == 0)
        memcpy(g->final_all[k], g->a.x, rows * g->sh.h * sizeof(float));
    if (j == g->sh.L - 1) {
        for (int s = 0; s < g->sh.gbs; s++)
            memcpy(g->last[k] + (size_t)s * g->sh.h,
                   g->a.x + ((size_t)s * (size_t)tnew + (size_t)tnew - 1) * g->sh.h, g->sh.h * 4);
    } else {
        k_convert_f32_to_f16(g->pool, g->a.x, rows * g->sh.h,
                             g->sh.act_tier[k] == TIER_DISK ? g->act_out[t->slot2] : g->act_ram[k]);
    }
}

/* Compute task ti: one batch through one layer in weight slot wslot. */
static void compute_task(eng *g, uint32_t ti, int wslot)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const int i = t->step, j = t->layer, k = t->batch;
    const long long tnew = exec_step_tokens(&g->sh, i);
    const size_t rows = (size_t)g->sh.gbs * (size_t)tnew;
    compute_input(g, ti, rows);
    /* KV: the RAM home, or the staged copy; new entries of a disk home
     * also go to the out slot (in the prefill, only there) */
    uint8_t *slots, *out = NULL;
    size_t stride = kv_stride(g, k);
    if (g->sh.kv_tier[k] == TIER_DISK && i == 0) {
        slots = g->kv_out[t->slot];
    } else if (g->sh.kv_tier[k] == TIER_DISK) {
        slots = g->kv_stage[g->c.pl->tasks[find(g, ti, PLAN_C_DISK)].slot];
        out = g->kv_out[t->slot];
    } else {
        slots = kv_base(g, j, k, 0);
    }
    layer_forward(g, i, j, wslot, slots, stride, out, tnew);
    compute_output(g, t, tnew, rows);
}

static llmsim_status run_task(eng *g, uint32_t ti, diag *e)
{
    const plan_task *t = &g->c.pl->tasks[ti];
    const size_t u = (size_t)t->step * (size_t)(g->sh.L + 1) + (size_t)t->layer;
    const int wslot = (int)(u & 1);
    if (t->res == PLAN_RES_CPU)
        pool_pin_caller(g->pool); /* the compute thread, on the CPU the workers leave free */
    switch ((plan_kind)t->kind) {
    case PLAN_W_DISK:
    case PLAN_C_DISK:
    case PLAN_A_DISK:
    case PLAN_C_WRITE:
    case PLAN_A_WRITE: return disk_task(g, ti, e);
    case PLAN_W_DEQUANT: dequant_unit(g, t->layer, wslot); return LLMSIM_OK;
    case PLAN_COMPUTE: compute_task(g, ti, wslot); return LLMSIM_OK;
    case PLAN_HEAD: head_forward(g, t->step, t->batch, wslot); return LLMSIM_OK;
    default:
        return diag_set(e, LLMSIM_EFAIL, "the CPU engine cannot run task kind %s (a plan for a GPU)",
                        plan_kind_names[t->kind]);
    }
}

// ---- setup and teardown

/* Free the n buffers of array a (NULL entries too), then a. */
static void free_each(void *a, size_t n)
{
    void **p = a;
    if (!p)
        return;
    for (size_t i = 0; i < n; i++)
        free(p[i]);
    free(p);
}

static void eng_free(eng *g)
{
    cpu_weights_free(g->units, g->sh.L);
    for (int s = 0; s < 2; s++) {
        free(g->wstage[s]);
        free(g->kv_stage[s]);
        free(g->kv_out[s]);
        free(g->act_stage[s]);
        free(g->act_out[s]);
    }
    free(g->deq);
    const size_t ngb = (size_t)g->sh.ngb;
    free_each(g->kv_ram, (size_t)g->sh.L * ngb);
    free_each(g->act_ram, ngb);
    free_each(g->last, ngb);
    free_each(g->next_in, ngb);
    free_each(g->final_all, ngb);
    free(g->ids);
    exec_acts_free(&g->a, cpu_ram_free_cb, NULL);
    float *bufs[] = {g->kf, g->vf, g->ascratch, g->tk.probs, (float *)g->tk.idx};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(g->tk.tokens);
    pool_destroy(g->pool);
    offload_dir_remove(&g->dir);
}

// ---- the backend table

static bool cpu_accepts(const hwprofile *hw) { return !hw->gpu.present; }

static llmsim_status cpu_setup(void **state, const exec_ctx *c, bool dry, diag *e)
{
    eng *g = calloc(1, sizeof *g);
    *state = g;
    if (!g)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    g->ram.dry = dry;
    g->c = *c;
    g->wt = (k_wtype)c->m->dtype;
    g->tk.logits_out = c->o->logits_out;
    g->dir.slot = -1;
    exec_layout_init(&g->sh, c->m, c->p, c->w, c->pl);
    exec_layer_names_get(c->m, &g->lnames);
    exec_head_names_get(c->m, &g->hnames);
    llmsim_status st;
    const int threads = c->o->threads > 0 ? c->o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (!(g->pool = pool_create(threads)))
        return diag_set(e, LLMSIM_EFAIL, "cannot start the compute threads");
    if (!dry)
        pool_pin(g->pool); /* best effort: unpinned is slower, not wrong */
    if ((!dry && (st = offload_dir_create(c->o->offload_parent, &g->dir, e))) ||
        (st = weights_init(g, e)) || (st = state_init(g, e)) || (st = scratch_init(g, e)))
        return st;
    g->xl = (xl_ctx){.m = c->m, .wq = &c->p->weight_quant, .pool = g->pool, .units = g->units,
                     .wt = g->wt, .deq = g->deq, .ln = &g->lnames, .hn = &g->hnames, .a = &g->a,
                     .h = g->sh.h, .qd = g->sh.qd, .kvd = g->sh.kvd, .f = g->sh.f,
                     .wmax = g->sh.wmax};
    g->tk.tokens = calloc((size_t)g->sh.bls * (size_t)(g->sh.prompt + g->sh.gen), sizeof *g->tk.tokens);
    if (!g->tk.tokens)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    return LLMSIM_OK;
}

static llmsim_status cpu_prepare(void **state, const exec_ctx *c, diag *e)
{
    return cpu_setup(state, c, false, e);
}

static void cpu_release(void *state)
{
    if (!state)
        return;
    eng_free(state);
    free(state);
}

static llmsim_status cpu_ram_bytes(const exec_ctx *c, double *bytes, diag *e)
{
    void *state = NULL;
    llmsim_status st = cpu_setup(&state, c, true, e);
    *bytes = state ? ((eng *)state)->ram.bytes : 0;
    cpu_release(state);
    return st;
}

static llmsim_status cpu_begin_block(void *state, long long blk, diag *e)
{
    eng *g = state;
    /* prompts of this block: given, or random from the seed */
    mio_block_begin(&g->tk, &g->sh, g->c.o, blk);
    return embed_prompts(g, e);
}

static llmsim_status cpu_run_task(void *state, uint32_t task, diag *e) { return run_task(state, task, e); }

static llmsim_status cpu_end_block(void *state, long long blk, engine_result *r, diag *e)
{
    (void)e;
    eng *g = state;
    mio_block_tokens(&g->sh, blk, g->tk.tokens, r->tokens);
    return LLMSIM_OK;
}

static void cpu_finish(void *state, engine_result *r)
{
    eng *g = state;
    r->direct_io = offload_dir_direct(&g->dir);
    r->ram_bytes = g->ram.bytes;
    r->nll_sum = g->nll_sum;
    r->nll_count = g->nll_count;
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
