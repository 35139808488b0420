/*
 * plan — lowering a policy to the task graph. See plan.h for the schedule
 * and what each task is; durations come from costmodel/analytic.h's
 * per-batch pieces, so the plan and the analytic model price the same work.
 */
#include "plan/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "costmodel/sizes.h"

const char *const plan_res_names[PLAN_NRES] = {"gpu", "cpu", "h2d", "d2h", "disk"};
const char *const plan_kind_names[PLAN_NKINDS] = {
    "w_disk", "w_h2d",  "w_dequant", "c_disk", "c_h2d", "a_disk",  "a_h2d",   "compute", "pre",
    "qkv_d2h", "cpu_attention", "out_h2d", "post", "c_d2h", "c_write", "a_d2h", "a_write", "head",
};


/* ---- growable arrays */

/* Room for `need` elements of `elem` bytes in *p (capacity *cap), doubling. */
static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}

void plan_free(plan *pl)
{
    if (!pl)
        return;
    free(pl->tasks);
    free(pl->deps);
    free(pl->buffers);
    free(pl->kv_tier);
    free(pl->act_tier);
    memset(pl, 0, sizeof *pl);
}

/* Append text at *at, keeping room for the NUL of a buffer ending at end. */
static void id_put(char **at, const char *end, const char *text)
{
    while (*text && *at < end - 1)
        *(*at)++ = *text++;
}

static void id_put_int(char **at, const char *end, long v)
{
    char digits[24], *d = digits + sizeof digits;
    unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
    *--d = '\0';
    do
        *--d = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--d = '-';
    id_put(at, end, d);
}

/* By hand, not snprintf: recording a plan of millions of tasks formats
 * every id, and this is several times faster. The same text as
 * "s%d.l%d.b%d.%s" (no batch: without ".b%d"; the head: "head" for l%d). */
void plan_task_id(const plan *pl, size_t i, char *buf, size_t len)
{
    if (len == 0)
        return;
    const plan_task *t = &pl->tasks[i];
    char *at = buf;
    const char *end = buf + len;
    id_put(&at, end, "s");
    id_put_int(&at, end, t->step);
    if (t->layer == pl->nlayers) {
        id_put(&at, end, ".head");
    } else {
        id_put(&at, end, ".l");
        id_put_int(&at, end, t->layer);
    }
    if (t->batch >= 0) {
        id_put(&at, end, ".b");
        id_put_int(&at, end, t->batch);
    }
    id_put(&at, end, ".");
    id_put(&at, end, plan_kind_names[t->kind]);
    *at = '\0';
}

/* ---- what a unit (one layer of one step) leaves behind for later units */

typedef struct unit_tasks {
    uint32_t w_disk, w_h2d, w_dequant; /* PLAN_NONE when absent */
    uint32_t last_compute;             /* the last compute task of any batch */
} unit_tasks;

typedef struct batch_tasks {
    uint32_t compute_end; /* the task that produces the batch's output hidden state */
    uint32_t c_store;     /* the last task that writes its new KV entries to their home */
    uint32_t a_store;     /* the last task that writes its output hidden state home */
} batch_tasks;

/* Double buffering: a kind of working buffer has two slots, used in issue
 * order; a task that needs a slot waits for the task that released it the
 * time before last. */
typedef struct slots {
    uint32_t release[2];
    int next;
} slots;

static uint32_t slot_wait(const slots *s) { return s->release[s->next]; }

static void slot_use(slots *s, uint32_t releaser)
{
    s->release[s->next] = releaser;
    s->next ^= 1;
}

/* Sizes of the weights of one unit by tier (stored form) and their counts. */
typedef struct unit_weights {
    double bytes[TIER_COUNT];
    double count[TIER_COUNT];
    double fp16_bytes; /* dequantized */
} unit_weights;

static void unit_weights_get(const model *m, const policy *p, bool head, const tier *tiers,
                             unit_weights *uw)
{
    memset(uw, 0, sizeof *uw);
    model_tensor t[MODEL_MAX_TENSORS];
    int n = head ? model_head_tensors(m, t) : model_layer_tensors(m, t);
    for (int i = 0; i < n; i++) {
        uw->bytes[tiers[i]] += size_tensor_bytes(m, &t[i], &p->weight_quant);
        uw->count[tiers[i]] += 1;
        uw->fp16_bytes += size_tensor_fp16_bytes(&t[i]);
    }
}

/* ---- the builder: the setup, the plan being built and the running indices */

typedef struct builder {
    /* the plan being built */
    plan *pl;
    bool oom;
    bool serial;   /* no overlap: every task waits for the one issued before it */
    uint32_t last; /* the task deps are being added to */
    /* the setup */
    cm_setup s;
    const model *m;
    const policy *p;
    int L, ngb;                        /* decoder layers, GPU batches */
    bool gpu;
    tier dev_tier;                     /* the compute device's memory */
    plan_res comp;                     /* the compute device */
    const hw_link *h2d, *d2h, *rd, *wr; /* pinned PCIe both ways, disk read and write */
    double gbs, sl;                    /* GPU batch size, prompt tokens */
    unit_weights lw, hwt;              /* one decoder layer's weights, the head's */
    /* what earlier units and steps leave for later ones */
    unit_tasks *units;       /* [nsteps * (L + 1)] */
    batch_tasks *prev, *cur; /* [(L + 1) * ngb] the previous step's and this step's */
    uint32_t *last_head;     /* [ngb] each batch's latest head task */
    /* with a GPU, the last w_h2d that read each CPU staging slot (the unit
     * two back may have nothing on disk, or nothing off the GPU) */
    uint32_t wstage_reader[2];
    /* GPU slots for hidden states in and out, KV cache in and new KV out, and
     * CPU staging for what comes from or goes to disk */
    slots act_in, act_out, kv_in, kv_out, staging, act_staging;
    /* the step being lowered */
    int i;
    cm_phase phase;
    double ctx, t_new;       /* tokens attended over, tokens new in the step */
    cm_batch_cost bc;        /* one batch of one decoder layer at this step */
    /* the unit being lowered: step i, layer j (L: the head) */
    int j;
    bool head;
    size_t u;                /* its index in units */
    const unit_weights *uw;
    unit_tasks *ut;
    const unit_tasks *u1, *u2; /* the units one and two back, or NULL */
    double off;              /* bytes of its weights off the GPU (CPU and disk) */
    uint32_t weights_ready;  /* the task that makes its weights usable */
} builder;

static void dep(builder *b, uint32_t task, uint32_t on);

/* A task of batch `batch` (-1: per layer) of the unit being lowered. */
static uint32_t add_task(builder *b, int batch, plan_kind kind, plan_res res, cm_stage stage,
                         double bytes, double dur_s)
{
    plan *pl = b->pl;
    if (b->oom || !grow((void **)&pl->tasks, &pl->cap_tasks, pl->ntasks + 1, sizeof *pl->tasks)) {
        b->oom = true;
        return PLAN_NONE;
    }
    plan_task *t = &pl->tasks[pl->ntasks];
    t->step = b->i;
    t->layer = b->j;
    t->batch = batch;
    t->kind = (uint8_t)kind;
    t->res = (uint8_t)res;
    t->stage = (uint8_t)stage;
    t->bytes = bytes;
    t->dur_s = dur_s;
    t->dep_first = (uint32_t)pl->ndeps;
    t->ndeps = 0;
    t->slot = t->slot2 = 0;
    b->last = (uint32_t)pl->ntasks;
    uint32_t id = (uint32_t)pl->ntasks++;
    if (b->serial && id > 0) /* the policy's overlap: false */
        dep(b, id, id - 1);
    return id;
}

/* A dependency of the task just added (deps of a task are contiguous). */
static void dep(builder *b, uint32_t task, uint32_t on)
{
    plan *pl = b->pl;
    if (task == PLAN_NONE || on == PLAN_NONE || b->oom)
        return;
    /* dependencies are only ever added to the newest task */
    if (task != b->last)
        abort();
    for (uint32_t i = 0; i < pl->tasks[task].ndeps; i++)
        if (pl->deps[pl->tasks[task].dep_first + i] == on)
            return;
    if (!grow((void **)&pl->deps, &pl->cap_deps, pl->ndeps + 1, sizeof *pl->deps)) {
        b->oom = true;
        return;
    }
    pl->deps[pl->ndeps++] = on;
    pl->tasks[task].ndeps++;
}

/* A buffer of `bytes` on tier t from alloc_task to free_task (PLAN_NONE both: resident). */
static void buffer(builder *b, tier t, double bytes, uint32_t alloc_task, uint32_t free_task)
{
    plan *pl = b->pl;
    if (b->oom || bytes <= 0)
        return;
    if (!grow((void **)&pl->buffers, &pl->cap_buffers, pl->nbuffers + 1, sizeof *pl->buffers)) {
        b->oom = true;
        return;
    }
    pl->buffers[pl->nbuffers++] = (plan_buffer){alloc_task, free_task, bytes, (uint8_t)t};
}

/* A copy of `bytes` in `copies` transfers over `link` (resource res), after task `after`. */
static uint32_t add_copy(builder *b, int batch, plan_kind kind, plan_res res, cm_stage stage,
                         const hw_link *link, double bytes, double copies, uint32_t after)
{
    uint32_t id = add_task(b, batch, kind, res, stage, bytes, cm_copies_time(link, bytes, copies));
    dep(b, id, after);
    return id;
}

/* Task `id` fills the next buffer of `s`: it waits for the task that released
 * that buffer last, and records it as its slot (slot2 when `second`). */
static void slot_fill(builder *b, uint32_t id, const slots *s, bool second)
{
    dep(b, id, slot_wait(s));
    if (id == PLAN_NONE)
        return;
    plan_task *t = &b->pl->tasks[id];
    if (second)
        t->slot2 = (uint8_t)s->next;
    else
        t->slot = (uint8_t)s->next;
}

/* ---- setup: the builder, placement, the resident buffers */

/* The setup and the plan's header (sizes, counts, blocks). */
/* At most this many tasks per (step, unit, GPU batch) and per (step, unit)
 * (10.2 and a few measured over every placement, with and without CPU
 * attention); a plan estimated above PLAN_MAX_TASKS is refused. */
#define PLAN_TASKS_PER_BATCH 11.0
#define PLAN_TASKS_PER_UNIT 6.0
#define PLAN_MAX_TASKS 2e7

static llmsim_status builder_init(builder *b, const model *m, const hwprofile *hw, const policy *p,
                                  const workload *w, plan *pl, diag *e)
{
    memset(pl, 0, sizeof *pl);
    memset(b, 0, sizeof *b);
    llmsim_status st = cm_setup_init(&b->s, m, hw, p, w, e);
    if (st)
        return st;
    /* the plan's size is known before it is built: refuse one too big to
     * hold (a plan task is about 200 bytes with its dependencies and the
     * simulator's state), before allocating any of it */
    const double est = (double)w->gen_len * (double)(m->num_layers + 1) *
                       ((double)p->num_gpu_batches * PLAN_TASKS_PER_BATCH + PLAN_TASKS_PER_UNIT);
    if (est > PLAN_MAX_TASKS)
        return diag_set(e, LLMSIM_EINPUT,
                        "the plan would have about %.3g tasks (%lld steps x %lld units x %d GPU "
                        "batches), more than the %.0f million llmsim builds; use fewer GPU batches "
                        "or a shorter generation, or `llmsim predict` (the cost model builds no "
                        "plan)", est, (long long)w->gen_len, (long long)m->num_layers + 1,
                        p->num_gpu_batches, PLAN_MAX_TASKS / 1e6);
    b->pl = pl;
    b->serial = !p->overlap;
    b->last = PLAN_NONE;
    b->m = m;
    b->p = p;
    b->L = (int)m->num_layers;
    b->ngb = p->num_gpu_batches;
    b->gpu = b->s.has_gpu;
    b->dev_tier = b->gpu ? TIER_GPU : TIER_CPU;
    b->comp = b->gpu ? PLAN_RES_GPU : PLAN_RES_CPU;
    b->h2d = &hw->links[HW_LINK_H2D_PINNED];
    b->d2h = &hw->links[HW_LINK_D2H_PINNED];
    b->rd = &hw->disk.read;
    b->wr = &hw->disk.write;
    b->gbs = p->gpu_batch_size;
    b->sl = (double)w->prompt_len;
    pl->nsteps = (int)w->gen_len;
    pl->nlayers = b->L;
    pl->ngb = b->ngb;
    pl->has_gpu = b->gpu;
    pl->gen_len = w->gen_len;
    pl->num_prompts = (double)b->s.w.num_prompts;
    pl->blocks = (double)((b->s.w.num_prompts + (long long)b->s.bls - 1) / (long long)b->s.bls);
    return LLMSIM_OK;
}

/* Whole-tensor placement: the weights' tiers, and each GPU batch's KV cache and hidden states. */
static bool builder_place(builder *b)
{
    plan *pl = b->pl;
    const size_t ngb = (size_t)b->ngb;
    placement_realize(b->m, b->p, &pl->realized);
    pl->kv_tier = malloc(sizeof(tier) * ngb);
    pl->act_tier = malloc(sizeof(tier) * ngb);
    double *ones = malloc(sizeof(double) * ngb);
    if (!pl->kv_tier || !pl->act_tier || !ones) {
        free(ones);
        return false;
    }
    for (size_t k = 0; k < ngb; k++)
        ones[k] = 1.0;
    placement_assign(ones, b->ngb, &b->p->kv_cache, pl->kv_tier, &pl->kv_realized);
    placement_assign(ones, b->ngb, &b->p->activations, pl->act_tier, &pl->act_realized);
    free(ones);
    unit_weights_get(b->m, b->p, false, pl->realized.layer_tiers, &b->lw);
    unit_weights_get(b->m, b->p, true, pl->realized.head_tiers, &b->hwt);
    return true;
}

/* The running state: no unit, batch or slot has a task yet. */
static bool builder_alloc(builder *b)
{
    const size_t ngb = (size_t)b->ngb, units = (size_t)b->L + 1;
    b->units = calloc((size_t)b->pl->nsteps * units, sizeof *b->units);
    b->prev = malloc(sizeof *b->prev * ngb * units);
    b->cur = malloc(sizeof *b->cur * ngb * units);
    b->last_head = malloc(sizeof(uint32_t) * ngb);
    if (!b->units || !b->prev || !b->cur || !b->last_head)
        return false;
    for (size_t i = 0; i < ngb * units; i++)
        b->prev[i] = (batch_tasks){PLAN_NONE, PLAN_NONE, PLAN_NONE};
    for (size_t k = 0; k < ngb; k++)
        b->last_head[k] = PLAN_NONE;
    b->act_in = (slots){{PLAN_NONE, PLAN_NONE}, 0};
    b->act_out = b->kv_in = b->kv_out = b->staging = b->act_staging = b->act_in;
    b->wstage_reader[0] = b->wstage_reader[1] = PLAN_NONE;
    return true;
}

/* The running state (the plan itself is the caller's). */
static void builder_free(builder *b)
{
    free(b->units);
    free(b->prev);
    free(b->cur);
    free(b->last_head);
}

/* Resident buffers: weights, the block's KV cache at full length, the block's hidden states. */
static void resident_buffers(builder *b)
{
    const plan *pl = b->pl;
    const int L = b->L;
    for (int t = 0; t < TIER_COUNT; t++)
        buffer(b, (tier)t, L * b->lw.bytes[t] + b->hwt.bytes[t], PLAN_NONE, PLAN_NONE);
    const double full = b->sl + (double)pl->gen_len;
    cm_batch_cost full_b;
    cm_batch_cost_get(&b->s, CM_PHASE_PREFILL, full, &full_b);
    for (int k = 0; k < b->ngb; k++) {
        buffer(b, pl->kv_tier[k], L * full_b.kv_new_bytes, PLAN_NONE, PLAN_NONE);
        buffer(b, pl->act_tier[k], size_hidden_bytes(b->m, b->gbs * b->sl), PLAN_NONE, PLAN_NONE);
    }
}

/* ---- a unit's weights: disk -> CPU staging -> GPU slot (two slots each), dequantized */

/* The unit's disk-resident weights -> CPU staging slot u & 1. */
static void load_weights_disk(builder *b)
{
    const unit_weights *uw = b->uw;
    if (!(uw->bytes[TIER_DISK] > 0))
        return;
    /* the slot is free after the last w_h2d that read it, or without a GPU
     * after the compute of the unit two back */
    uint32_t slot_free = b->gpu ? b->wstage_reader[b->u & 1]
                         : b->u2 ? b->u2->last_compute
                                 : PLAN_NONE;
    b->ut->w_disk = add_copy(b, -1, PLAN_W_DISK, PLAN_RES_DISK, CM_STAGE_LOAD_WEIGHT, b->rd,
                             uw->bytes[TIER_DISK], uw->count[TIER_DISK], slot_free);
    if (b->ut->w_disk != PLAN_NONE)
        b->pl->tasks[b->ut->w_disk].slot = (uint8_t)(b->u & 1);
}

/* The unit's CPU- and disk-resident weights -> GPU slot u & 1, free after
 * the compute of the unit two back. */
static void load_weights_h2d(builder *b)
{
    const unit_weights *uw = b->uw;
    unit_tasks *ut = b->ut;
    if (!b->gpu || !(b->off > 0))
        return;
    ut->w_h2d = add_copy(b, -1, PLAN_W_H2D, PLAN_RES_H2D, CM_STAGE_LOAD_WEIGHT,
                         cm_weight_link(&b->s), b->off, uw->count[TIER_CPU] + uw->count[TIER_DISK],
                         ut->w_disk);
    if (ut->w_h2d != PLAN_NONE)
        b->pl->tasks[ut->w_h2d].slot = (uint8_t)(b->u & 1);
    if (b->u2)
        dep(b, ut->w_h2d, b->u2->last_compute);
    if (ut->w_disk != PLAN_NONE)
        b->wstage_reader[b->u & 1] = ut->w_h2d;
}

/* Quantized weights: dequantize the unit's into the one working copy, free
 * after the previous unit's compute. */
static void dequant_weights(builder *b)
{
    unit_tasks *ut = b->ut;
    if (!b->p->weight_quant.bits)
        return;
    double deq = b->head ? cm_head_dequant_s(&b->s) : cm_weight_dequant_s(&b->s);
    ut->w_dequant = add_task(b, -1, PLAN_W_DEQUANT, b->comp, CM_STAGE_COMPUTE,
                             b->uw->bytes[TIER_GPU] + b->off, deq);
    dep(b, ut->w_dequant, ut->w_h2d);
    dep(b, ut->w_dequant, ut->w_disk);
    if (b->u1)
        dep(b, ut->w_dequant, b->u1->last_compute);
}

/* Weight buffers: the GPU slot, the staging and the working copy until the unit is done. */
static void weight_buffers(builder *b)
{
    const unit_tasks *ut = b->ut;
    if (ut->w_h2d != PLAN_NONE)
        buffer(b, TIER_GPU, b->off, ut->w_h2d, ut->last_compute);
    if (ut->w_disk != PLAN_NONE)
        buffer(b, TIER_CPU, b->uw->bytes[TIER_DISK], ut->w_disk,
               ut->w_h2d != PLAN_NONE ? ut->w_h2d : ut->last_compute);
    if (ut->w_dequant != PLAN_NONE)
        buffer(b, b->dev_tier, b->uw->fp16_bytes, ut->w_dequant, ut->last_compute);
}

/* ---- one GPU batch through one unit */

typedef struct batch_lowering {
    int k;                     /* the GPU batch */
    batch_tasks *bt;           /* this step's record of the batch at this unit */
    const batch_tasks *pbt;    /* the previous step's */
    const batch_tasks *in;     /* this step's at the layer before, or NULL */
    tier kt, at;               /* where its KV cache and its hidden states live */
    bool delegated;            /* attention on the CPU over the CPU-resident cache */
    bool kv_leaves, act_leaves; /* outputs that leave the compute device's memory use out slots */
    double act;                /* bytes of its hidden state */
    /* bytes this batch moves to and from disk (its share of the unit's
     * weights): what the compute loses beside them */
    double io_r, io_w;
    uint32_t producer;         /* the previous layer of this step, or the previous step's head */
    uint32_t stored;           /* the task that stored the input hidden state home */
    uint32_t input;            /* the task that makes the input hidden state ready */
    uint32_t a_disk, a_h2d, c_disk, c_h2d; /* input copies, PLAN_NONE when absent */
    uint32_t end_task;         /* the task that produces the output hidden state */
} batch_lowering;

/* Where batch k's state lives this unit, and who produced its input. */
static void batch_begin(builder *b, int k, batch_lowering *c)
{
    const size_t ngb = (size_t)b->ngb, j = (size_t)b->j;
    *c = (batch_lowering){.k = k,
                          .bt = &b->cur[j * ngb + (size_t)k],
                          .pbt = &b->prev[j * ngb + (size_t)k],
                          .in = b->j > 0 ? &b->cur[(j - 1) * ngb + (size_t)k] : NULL,
                          .kt = b->pl->kv_tier[k],
                          .at = b->pl->act_tier[k]};
    c->delegated = b->gpu && b->p->cpu_attention && b->phase == CM_PHASE_DECODE &&
                   c->kt != TIER_GPU && !b->head;
    c->kv_leaves = !b->head && !c->delegated && (b->gpu ? c->kt != TIER_GPU : c->kt == TIER_DISK);
    c->act_leaves =
        !b->head && b->j < b->L - 1 && (b->gpu ? c->at != TIER_GPU : c->at == TIER_DISK);
    c->io_r = b->uw->bytes[TIER_DISK] / b->ngb;
    c->io_w = 0;
    /* the head of the previous step makes the next token's embedding */
    c->producer = c->in ? c->in->compute_end : (b->i > 0 ? b->last_head[k] : PLAN_NONE);
    c->stored = c->in ? c->in->a_store : PLAN_NONE;
    c->act = b->bc.act_bytes;
    c->input = c->a_disk = c->a_h2d = c->c_disk = c->c_h2d = c->end_task = PLAN_NONE;
}

/* Input: the hidden state, from disk to CPU staging, and to a GPU slot. */
static void load_hidden(builder *b, batch_lowering *c)
{
    if (!b->head && b->j > 0 && c->at == TIER_DISK) {
        c->a_disk = add_copy(b, c->k, PLAN_A_DISK, PLAN_RES_DISK, CM_STAGE_LOAD_ACT, b->rd,
                             b->bc.act_disk_bytes, 1, c->stored);
        slot_fill(b, c->a_disk, &b->act_staging, false);
        c->input = c->a_disk;
        c->io_r += b->bc.act_disk_bytes;
    }
    if (b->gpu && !b->head && b->j > 0 && c->at != TIER_GPU) {
        c->a_h2d = add_copy(b, c->k, PLAN_A_H2D, PLAN_RES_H2D, CM_STAGE_LOAD_ACT, b->h2d, c->act, 1,
                            c->a_disk != PLAN_NONE ? c->a_disk : c->stored);
        slot_fill(b, c->a_h2d, &b->act_in, false);
        c->input = c->a_h2d;
    }
    if (c->input == PLAN_NONE)
        c->input = c->producer;
}

/* Input (decode): the KV cache, from disk to CPU staging, and to a GPU slot. */
static void load_kv(builder *b, batch_lowering *c)
{
    const double kv_old = b->bc.kv_old_bytes, kv_old_disk = b->bc.kv_old_disk_bytes;
    if (b->head || b->phase != CM_PHASE_DECODE)
        return;
    if (c->kt == TIER_DISK) { /* one read of the batch's padded token slots */
        c->c_disk = add_copy(b, c->k, PLAN_C_DISK, PLAN_RES_DISK, CM_STAGE_LOAD_CACHE, b->rd,
                             kv_old_disk, 1, c->pbt->c_store);
        slot_fill(b, c->c_disk, &b->staging, false);
        c->io_r += kv_old_disk;
    }
    if (b->gpu && !c->delegated && c->kt != TIER_GPU) {
        c->c_h2d = add_copy(b, c->k, PLAN_C_H2D, PLAN_RES_H2D, CM_STAGE_LOAD_CACHE, b->h2d,
                            kv_old, 2, c->c_disk != PLAN_NONE ? c->c_disk : c->pbt->c_store);
        slot_fill(b, c->c_h2d, &b->kv_in, false);
    }
}

/* The working set of one batch through a decoder layer on the compute device. */
static double layer_work_bytes(const builder *b)
{
    double work = size_work_bytes(b->m, b->gbs, b->t_new, b->ctx);
    if (b->p->kv_quant.bits)
        work += size_kv_fp16_bytes(b->m, b->gbs, b->ctx);
    return work;
}

/* Compute: the head (final norm, LM head, the next token's embedding). */
static void compute_head(builder *b, batch_lowering *c)
{
    c->end_task = add_task(b, c->k, PLAN_HEAD, b->comp, CM_STAGE_COMPUTE, c->act,
                           cm_head_batch_s(&b->s, b->phase));
    dep(b, c->end_task, b->weights_ready);
    dep(b, c->end_task, c->producer);
    buffer(b, b->dev_tier, size_logits_bytes(b->m, b->gbs) + c->act, c->end_task, c->end_task);
    b->last_head[c->k] = c->end_task;
}

/* Compute: a decoder layer on the compute device. */
static void compute_layer(builder *b, batch_lowering *c)
{
    const cm_batch_cost *bc = &b->bc;
    const double dur_s =
        bc->dense_pre_s + bc->dense_post_s + bc->attn_dev_s + bc->kv_deq_dev_s + bc->kv_quant_dev_s;
    uint32_t end = c->end_task = add_task(b, c->k, PLAN_COMPUTE, b->comp, CM_STAGE_COMPUTE,
                                          c->act + bc->kv_old_bytes, dur_s);
    dep(b, end, b->weights_ready);
    dep(b, end, c->input);
    dep(b, end, c->c_h2d != PLAN_NONE ? c->c_h2d : c->c_disk);
    /* its outputs go to out slots when they leave the device */
    if (c->kv_leaves)
        slot_fill(b, end, &b->kv_out, false);
    if (c->act_leaves)
        slot_fill(b, end, &b->act_out, true);
    if (b->phase == CM_PHASE_DECODE && c->c_h2d == PLAN_NONE && c->c_disk == PLAN_NONE)
        dep(b, end, c->pbt->c_store); /* the cache it reads in place */
    buffer(b, b->dev_tier, layer_work_bytes(b), end, end);
}

/* Compute, attention delegated: pre -> q, k, v out -> CPU attention -> output back -> post. */
static void compute_delegated(builder *b, batch_lowering *c)
{
    const cm_batch_cost *bc = &b->bc;
    const int k = c->k;
    uint32_t pre =
        add_task(b, k, PLAN_PRE, PLAN_RES_GPU, CM_STAGE_COMPUTE, c->act, bc->dense_pre_s);
    dep(b, pre, b->weights_ready);
    dep(b, pre, c->input);
    if (c->act_leaves)
        slot_fill(b, pre, &b->act_out, true);
    uint32_t qkv = add_copy(b, k, PLAN_QKV_D2H, PLAN_RES_D2H, CM_STAGE_STORE_CACHE, b->d2h,
                            bc->qkv_bytes, 2, pre);
    uint32_t att = add_task(b, k, PLAN_CPU_ATTN, PLAN_RES_CPU, CM_STAGE_COMPUTE, bc->kv_old_bytes,
                            bc->attn_cpu_s + bc->kv_deq_cpu_s + bc->kv_quant_cpu_s);
    dep(b, att, qkv);
    dep(b, att, c->c_disk != PLAN_NONE ? c->c_disk : c->pbt->c_store);
    uint32_t out = add_copy(b, k, PLAN_OUT_H2D, PLAN_RES_H2D, CM_STAGE_LOAD_CACHE, b->h2d,
                            bc->out_bytes, 1, att);
    c->end_task =
        add_task(b, k, PLAN_POST, PLAN_RES_GPU, CM_STAGE_COMPUTE, c->act, bc->dense_post_s);
    dep(b, c->end_task, out);
    /* GPU intermediates live from pre to post; CPU scores for the attention */
    buffer(b, TIER_GPU, layer_work_bytes(b), pre, c->end_task);
    buffer(b, TIER_CPU, size_scores_bytes(b->m, b->gbs, 1, b->ctx), att, att);
    if (c->kt == TIER_DISK) /* the staged cache, read by the CPU attention */
        buffer(b, TIER_CPU, bc->kv_old_bytes, c->c_disk, att);
    c->bt->c_store = att; /* the new k, v are appended in CPU memory */
    if (c->c_disk != PLAN_NONE)
        slot_use(&b->staging, att);
}

/* An input's working buffers: CPU staging (filled by `disk`) until the copy
 * to the device or the compute `end` reads it, the device slot (filled by
 * `h2d`) until `end`; the same tasks release their slots. */
static void release_input(builder *b, uint32_t disk, uint32_t h2d, uint32_t end, double bytes,
                          slots *staging, slots *device)
{
    if (disk != PLAN_NONE) {
        uint32_t rel = h2d != PLAN_NONE ? h2d : end;
        buffer(b, TIER_CPU, bytes, disk, rel);
        slot_use(staging, rel);
    }
    if (h2d != PLAN_NONE) {
        buffer(b, TIER_GPU, bytes, h2d, end);
        slot_use(device, end);
    }
}

/* How an output of a batch goes home. */
typedef struct output_route {
    plan_kind d2h_kind, write_kind;
    cm_stage stage;
    double bytes, copies;
    double disk_bytes;         /* the write to a disk home: one transfer of whole blocks */
    tier home;
    slots *out;                /* its out slots */
} output_route;

/* An output of the compute to its home: GPU -> CPU when its home is not the
 * GPU, then CPU -> disk when its home is the disk; returns the last task
 * that stores it. */
static uint32_t store_output(builder *b, batch_lowering *c, const output_route *r)
{
    uint32_t last = c->end_task;
    if (b->gpu && r->home != TIER_GPU) {
        uint32_t d2h = add_copy(b, c->k, r->d2h_kind, PLAN_RES_D2H, r->stage, b->d2h, r->bytes,
                                r->copies, c->end_task);
        buffer(b, TIER_GPU, r->bytes, c->end_task, d2h); /* the output waits until it is out */
        slot_use(r->out, d2h);
        last = d2h;
    }
    if (r->home == TIER_DISK) {
        uint32_t write = add_copy(b, c->k, r->write_kind, PLAN_RES_DISK, r->stage, b->wr, r->disk_bytes,
                                  1, last);
        buffer(b, TIER_CPU, r->bytes, last, write);
        if (!b->gpu)
            slot_use(r->out, write);
        last = write;
        c->io_w += r->disk_bytes;
    }
    return last;
}

/* Outputs: the new KV entries (the CPU attention appended them in CPU
 * memory: only a disk home needs a write), then the hidden state, which the
 * last layer hands to the head in place. */
static void store_outputs(builder *b, batch_lowering *c)
{
    const double kv_new = b->bc.kv_new_bytes;
    if (!b->head && !c->delegated) {
        const output_route kv = {.d2h_kind = PLAN_C_D2H, .write_kind = PLAN_C_WRITE,
                                 .stage = CM_STAGE_STORE_CACHE, .bytes = kv_new, .copies = 2,
                                 .disk_bytes = b->bc.kv_new_disk_bytes, .home = c->kt,
                                 .out = &b->kv_out};
        c->bt->c_store = store_output(b, c, &kv);
    } else if (c->delegated && c->kt == TIER_DISK) {
        c->bt->c_store = add_copy(b, c->k, PLAN_C_WRITE, PLAN_RES_DISK, CM_STAGE_STORE_CACHE, b->wr,
                                  b->bc.kv_new_disk_bytes, 1, c->bt->c_store);
    }
    if (!b->head && b->j < b->L - 1) {
        const output_route hidden = {.d2h_kind = PLAN_A_D2H, .write_kind = PLAN_A_WRITE,
                                     .stage = CM_STAGE_STORE_ACT, .bytes = c->act, .copies = 1,
                                     .disk_bytes = b->bc.act_disk_bytes, .home = c->at,
                                     .out = &b->act_out};
        c->bt->a_store = store_output(b, c, &hidden);
    }
}

/* Without a GPU, the compute loses time to the disk I/O beside it (cm_io_loss_s, at most its
 * cap). */
static void charge_io_loss(builder *b, const batch_lowering *c)
{
    if (b->gpu || c->end_task == PLAN_NONE)
        return;
    plan_task *ct = &b->pl->tasks[c->end_task];
    double lost = cm_io_loss_s(&b->s, c->io_r, c->io_w), cap = cm_io_loss_cap_s(&b->s, ct->dur_s);
    ct->dur_s += lost < cap ? lost : cap;
}

/* Batch k through the unit: its inputs, its compute, its outputs. */
static void lower_batch(builder *b, int k)
{
    batch_lowering c;
    batch_begin(b, k, &c);
    load_hidden(b, &c);
    load_kv(b, &c);
    if (b->head)
        compute_head(b, &c);
    else if (!c.delegated)
        compute_layer(b, &c);
    else
        compute_delegated(b, &c);
    c.bt->compute_end = c.end_task;
    release_input(b, c.delegated ? PLAN_NONE : c.c_disk, c.c_h2d, c.end_task, b->bc.kv_old_bytes,
                  &b->staging, &b->kv_in);
    release_input(b, c.a_disk, c.a_h2d, c.end_task, c.act, &b->act_staging, &b->act_in);
    store_outputs(b, &c);
    charge_io_loss(b, &c);
    b->ut->last_compute = c.end_task;
}

/* ---- steps and units */

/* Unit j (a decoder layer, or the head) of the step: its weights, each GPU batch, then the
 * weight buffers. */
static void lower_unit(builder *b, int j)
{
    b->j = j;
    b->head = j == b->L;
    b->u = (size_t)b->i * (size_t)(b->L + 1) + (size_t)j;
    b->uw = b->head ? &b->hwt : &b->lw;
    b->ut = &b->units[b->u];
    b->u1 = b->u >= 1 ? &b->units[b->u - 1] : NULL;
    b->u2 = b->u >= 2 ? &b->units[b->u - 2] : NULL;
    *b->ut = (unit_tasks){PLAN_NONE, PLAN_NONE, PLAN_NONE, PLAN_NONE};
    b->off = b->uw->bytes[TIER_CPU] + b->uw->bytes[TIER_DISK];
    load_weights_disk(b);
    load_weights_h2d(b);
    dequant_weights(b);
    const unit_tasks *ut = b->ut;
    b->weights_ready = ut->w_dequant != PLAN_NONE ? ut->w_dequant
                       : ut->w_h2d != PLAN_NONE   ? ut->w_h2d
                                                  : ut->w_disk;
    for (int k = 0; k < b->ngb; k++)
        lower_batch(b, k);
    weight_buffers(b);
}

/* Step i (0 = prefill, then each decode step): every unit, layer 0 to the head. */
static void lower_step(builder *b, int i)
{
    b->i = i;
    b->phase = i == 0 ? CM_PHASE_PREFILL : CM_PHASE_DECODE;
    b->ctx = i == 0 ? b->sl : b->sl + i;
    b->t_new = i == 0 ? b->sl : 1.0;
    cm_batch_cost_get(&b->s, b->phase, b->ctx, &b->bc);
    for (int k = 0; k < b->ngb * (b->L + 1); k++)
        b->cur[k] = (batch_tasks){PLAN_NONE, PLAN_NONE, PLAN_NONE};
    for (int j = 0; j <= b->L; j++)
        lower_unit(b, j);
    batch_tasks *tmp = b->prev;
    b->prev = b->cur;
    b->cur = tmp;
}

llmsim_status plan_build(const model *m, const hwprofile *hw, const policy *p, const workload *w,
                         plan *pl, diag *e)
{
    builder b;
    llmsim_status st = builder_init(&b, m, hw, p, w, pl, e);
    if (st)
        return st;
    if (!builder_place(&b) || !builder_alloc(&b)) {
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
    } else {
        resident_buffers(&b);
        for (int i = 0; i < pl->nsteps; i++)
            lower_step(&b, i);
        if (b.oom)
            st = diag_set(e, LLMSIM_EFAIL, "out of memory building the plan (%zu tasks)",
                          pl->ntasks);
    }
    builder_free(&b);
    if (st)
        plan_free(pl);
    return st;
}

uint32_t plan_sibling(const plan *pl, uint32_t near, plan_kind kind)
{
    const plan_task *n = &pl->tasks[near];
    size_t lo = near > 16 ? near - 16 : 0, hi = near + 16 < pl->ntasks ? near + 16 : pl->ntasks;
    for (size_t t = lo; t < hi; t++) {
        const plan_task *k = &pl->tasks[t];
        if (k->step == n->step && k->layer == n->layer && k->batch == n->batch && k->kind == kind)
            return (uint32_t)t;
    }
    return PLAN_NONE;
}

llmsim_status plan_validate(const plan *pl, diag *e)
{
    for (size_t i = 0; i < pl->ntasks; i++) {
        const plan_task *t = &pl->tasks[i];
        if (!(t->dur_s >= 0))
            return diag_set(e, LLMSIM_EFAIL, "plan: task %zu has a negative or NaN duration", i);
        for (uint32_t d = 0; d < t->ndeps; d++)
            if (pl->deps[t->dep_first + d] >= i)
                return diag_set(e, LLMSIM_EFAIL, "plan: task %zu depends on a later task", i);
    }
    for (size_t k = 0; k < pl->nbuffers; k++) {
        const plan_buffer *bf = &pl->buffers[k];
        if ((bf->alloc_task == PLAN_NONE) != (bf->free_task == PLAN_NONE))
            return diag_set(e, LLMSIM_EFAIL, "plan: buffer %zu is resident on one side only", k);
        if (bf->alloc_task != PLAN_NONE &&
            (bf->alloc_task >= pl->ntasks || bf->free_task >= pl->ntasks || bf->free_task < bf->alloc_task))
            return diag_set(e, LLMSIM_EFAIL, "plan: buffer %zu is released before it is allocated", k);
        if (!(bf->bytes > 0))
            return diag_set(e, LLMSIM_EFAIL, "plan: buffer %zu is empty", k);
    }
    return LLMSIM_OK;
}
