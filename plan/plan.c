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

typedef struct builder {
    plan *pl;
    bool oom;
    bool serial;   /* no overlap: every task waits for the one issued before it */
    uint32_t last; /* the task deps are being added to */
} builder;

static void dep(builder *b, uint32_t task, uint32_t on);

static uint32_t add_task(builder *b, int step, int layer, int batch, plan_kind kind, plan_res res,
                         cm_stage stage, double bytes, double dur_s)
{
    plan *pl = b->pl;
    if (b->oom || !grow((void **)&pl->tasks, &pl->cap_tasks, pl->ntasks + 1, sizeof *pl->tasks)) {
        b->oom = true;
        return PLAN_NONE;
    }
    plan_task *t = &pl->tasks[pl->ntasks];
    t->step = step;
    t->layer = layer;
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

void plan_task_id(const plan *pl, size_t i, char *buf, size_t len)
{
    const plan_task *t = &pl->tasks[i];
    char layer[16];
    if (t->layer == pl->nlayers)
        snprintf(layer, sizeof layer, "head");
    else
        snprintf(layer, sizeof layer, "l%d", t->layer);
    if (t->batch < 0)
        snprintf(buf, len, "s%d.%s.%s", t->step, layer, plan_kind_names[t->kind]);
    else
        snprintf(buf, len, "s%d.%s.b%d.%s", t->step, layer, t->batch, plan_kind_names[t->kind]);
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

llmsim_status plan_build(const model *m, const hwprofile *hw, const policy *p, const workload *w,
                         plan *pl, diag *e)
{
    memset(pl, 0, sizeof *pl);
    cm_setup s;
    llmsim_status st = cm_setup_init(&s, m, hw, p, w, e);
    if (st)
        return st;
    const int L = (int)m->num_layers, ngb = p->num_gpu_batches;
    const int nsteps = (int)w->gen_len;
    const bool gpu = s.has_gpu;
    const tier dev_tier = gpu ? TIER_GPU : TIER_CPU;
    const plan_res comp = gpu ? PLAN_RES_GPU : PLAN_RES_CPU;
    const hw_link *h2d = &hw->links[HW_LINK_H2D_PINNED], *d2h = &hw->links[HW_LINK_D2H_PINNED];
    const hw_link *rd = &hw->disk.read, *wr = &hw->disk.write;
    const double gbs = p->gpu_batch_size, sl = (double)w->prompt_len;
    const double full = sl + (double)w->gen_len;
    pl->nsteps = nsteps;
    pl->nlayers = L;
    pl->ngb = ngb;
    pl->has_gpu = gpu;
    pl->gen_len = w->gen_len;
    pl->num_prompts = (double)s.w.num_prompts;
    pl->blocks = (double)((s.w.num_prompts + (long long)s.bls - 1) / (long long)s.bls);

    /* whole-tensor placement */
    placement_realize(m, p, &pl->realized);
    tier *kv_tier = pl->kv_tier = malloc(sizeof(tier) * (size_t)ngb);
    tier *act_tier = pl->act_tier = malloc(sizeof(tier) * (size_t)ngb);
    double *ones = malloc(sizeof(double) * (size_t)ngb);
    unit_tasks *units = calloc((size_t)nsteps * (size_t)(L + 1), sizeof *units);
    batch_tasks *prev = malloc(sizeof *prev * (size_t)ngb * (size_t)(L + 1));
    batch_tasks *cur = malloc(sizeof *cur * (size_t)ngb * (size_t)(L + 1));
    if (!kv_tier || !act_tier || !ones || !units || !prev || !cur) {
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
        goto out;
    }
    for (int k = 0; k < ngb; k++)
        ones[k] = 1.0;
    placement_assign(ones, ngb, &p->kv_cache, kv_tier, &pl->kv_realized);
    placement_assign(ones, ngb, &p->activations, act_tier, &pl->act_realized);
    unit_weights lw, hwt;
    unit_weights_get(m, p, false, pl->realized.layer_tiers, &lw);
    unit_weights_get(m, p, true, pl->realized.head_tiers, &hwt);

    builder b = {pl, false, !p->overlap, PLAN_NONE};
    /* resident buffers: weights, the KV cache of the block at full length,
     * the block's hidden states */
    for (int t = 0; t < TIER_COUNT; t++)
        buffer(&b, (tier)t, L * lw.bytes[t] + hwt.bytes[t], PLAN_NONE, PLAN_NONE);
    cm_batch_cost full_b;
    cm_batch_cost_get(&s, CM_PHASE_PREFILL, full, &full_b);
    for (int k = 0; k < ngb; k++) {
        buffer(&b, kv_tier[k], L * full_b.kv_new_bytes, PLAN_NONE, PLAN_NONE);
        buffer(&b, act_tier[k], size_hidden_bytes(m, gbs * sl), PLAN_NONE, PLAN_NONE);
    }
    for (size_t i = 0; i < (size_t)ngb * (size_t)(L + 1); i++)
        prev[i] = (batch_tasks){PLAN_NONE, PLAN_NONE, PLAN_NONE};
    /* GPU slots for hidden states in and out, KV cache in and new KV out, and
     * CPU staging for what comes from or goes to disk */
    slots act_in = {{PLAN_NONE, PLAN_NONE}, 0}, act_out = act_in, kv_in = act_in, kv_out = act_in;
    slots staging = act_in, act_staging = act_in;

    /* with a GPU, the last w_h2d that read each CPU staging slot (the unit
     * two back may have nothing on disk, or nothing off the GPU) */
    uint32_t wstage_reader[2] = {PLAN_NONE, PLAN_NONE};
    uint32_t *last_head = malloc(sizeof(uint32_t) * (size_t)ngb);
    if (!last_head) {
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
        goto out;
    }
    for (int k = 0; k < ngb; k++)
        last_head[k] = PLAN_NONE;

    for (int i = 0; i < nsteps; i++) {
        const cm_phase phase = i == 0 ? CM_PHASE_PREFILL : CM_PHASE_DECODE;
        const double ctx = i == 0 ? sl : sl + i;
        const double t_new = i == 0 ? sl : 1.0;
        cm_batch_cost bc;
        cm_batch_cost_get(&s, phase, ctx, &bc);
        for (int k = 0; k < ngb * (L + 1); k++)
            cur[k] = (batch_tasks){PLAN_NONE, PLAN_NONE, PLAN_NONE};
        for (int j = 0; j <= L; j++) {
            const bool head = j == L;
            const size_t u = (size_t)i * (size_t)(L + 1) + (size_t)j;
            const unit_weights *uw = head ? &hwt : &lw;
            unit_tasks *ut = &units[u];
            const unit_tasks *u1 = u >= 1 ? &units[u - 1] : NULL;
            const unit_tasks *u2 = u >= 2 ? &units[u - 2] : NULL;
            *ut = (unit_tasks){PLAN_NONE, PLAN_NONE, PLAN_NONE, PLAN_NONE};

            /* weights: disk -> CPU staging -> GPU slot; two slots each */
            if (uw->bytes[TIER_DISK] > 0) {
                ut->w_disk = add_task(&b, i, j, -1, PLAN_W_DISK, PLAN_RES_DISK, CM_STAGE_LOAD_WEIGHT,
                                      uw->bytes[TIER_DISK],
                                      cm_copies_time(rd, uw->bytes[TIER_DISK], uw->count[TIER_DISK]));
                pl->tasks[ut->w_disk].slot = (uint8_t)(u & 1);
                if (gpu)
                    dep(&b, ut->w_disk, wstage_reader[u & 1]);
                else if (u2)
                    dep(&b, ut->w_disk, u2->last_compute);
            }
            double off = uw->bytes[TIER_CPU] + uw->bytes[TIER_DISK];
            if (gpu && off > 0) {
                ut->w_h2d = add_task(&b, i, j, -1, PLAN_W_H2D, PLAN_RES_H2D, CM_STAGE_LOAD_WEIGHT, off,
                                     cm_copies_time(cm_weight_link(&s), off,
                                                    uw->count[TIER_CPU] + uw->count[TIER_DISK]));
                pl->tasks[ut->w_h2d].slot = (uint8_t)(u & 1);
                dep(&b, ut->w_h2d, ut->w_disk);
                if (u2)
                    dep(&b, ut->w_h2d, u2->last_compute);
                if (ut->w_disk != PLAN_NONE)
                    wstage_reader[u & 1] = ut->w_h2d;
            }
            double deq = head ? cm_head_dequant_s(&s) : cm_weight_dequant_s(&s);
            if (p->weight_quant.bits) {
                ut->w_dequant = add_task(&b, i, j, -1, PLAN_W_DEQUANT, comp, CM_STAGE_COMPUTE,
                                         uw->bytes[TIER_GPU] + off, deq);
                dep(&b, ut->w_dequant, ut->w_h2d);
                dep(&b, ut->w_dequant, ut->w_disk);
                if (u1)
                    dep(&b, ut->w_dequant, u1->last_compute);
            }
            /* the task that makes the weights usable */
            uint32_t weights_ready = ut->w_dequant != PLAN_NONE ? ut->w_dequant
                                     : ut->w_h2d != PLAN_NONE  ? ut->w_h2d
                                                               : ut->w_disk;

            for (int k = 0; k < ngb; k++) {
                batch_tasks *bt = &cur[(size_t)j * (size_t)ngb + (size_t)k];
                const batch_tasks *pbt = &prev[(size_t)j * (size_t)ngb + (size_t)k];
                const batch_tasks *in = j > 0 ? &cur[(size_t)(j - 1) * (size_t)ngb + (size_t)k] : NULL;
                const tier kt = kv_tier[k], at = act_tier[k];
                const bool delegated = gpu && p->cpu_attention && phase == CM_PHASE_DECODE &&
                                       kt != TIER_GPU && !head;
                /* outputs that leave the compute device's memory use out slots */
                const bool kv_leaves = !head && !delegated && (gpu ? kt != TIER_GPU : kt == TIER_DISK);
                const bool act_leaves = !head && j < L - 1 && (gpu ? at != TIER_GPU : at == TIER_DISK);

                /* bytes this batch moves to and from disk (its share of the
                 * unit's weights): what the compute loses beside them */
                double io_r = uw->bytes[TIER_DISK] / ngb, io_w = 0;

                /* -- inputs: the hidden state */
                uint32_t input = PLAN_NONE, a_disk = PLAN_NONE, a_h2d = PLAN_NONE;
                /* producer of the input: the previous layer of this step, or
                 * the head of the previous step (the next token's embedding) */
                uint32_t producer = in ? in->compute_end : (i > 0 ? last_head[k] : PLAN_NONE);
                uint32_t stored = in ? in->a_store : PLAN_NONE;
                double act = bc.act_bytes;
                if (!head && j > 0 && at == TIER_DISK) {
                    a_disk = add_task(&b, i, j, k, PLAN_A_DISK, PLAN_RES_DISK, CM_STAGE_LOAD_ACT, act,
                                      cm_copies_time(rd, act, 1));
                    dep(&b, a_disk, stored);
                    dep(&b, a_disk, slot_wait(&act_staging));
                    pl->tasks[a_disk].slot = (uint8_t)act_staging.next;
                    input = a_disk;
                    io_r += act;
                }
                if (gpu && !head && j > 0 && at != TIER_GPU) {
                    a_h2d = add_task(&b, i, j, k, PLAN_A_H2D, PLAN_RES_H2D, CM_STAGE_LOAD_ACT, act,
                                     cm_copies_time(h2d, act, 1));
                    dep(&b, a_h2d, a_disk != PLAN_NONE ? a_disk : stored);
                    dep(&b, a_h2d, slot_wait(&act_in));
                    pl->tasks[a_h2d].slot = (uint8_t)act_in.next;
                    input = a_h2d;
                }
                if (input == PLAN_NONE)
                    input = producer;

                /* -- inputs: the KV cache (decode) */
                uint32_t c_disk = PLAN_NONE, c_h2d = PLAN_NONE;
                if (!head && phase == CM_PHASE_DECODE && kt == TIER_DISK) {
                    c_disk = add_task(&b, i, j, k, PLAN_C_DISK, PLAN_RES_DISK, CM_STAGE_LOAD_CACHE,
                                      bc.kv_old_bytes, cm_copies_time(rd, bc.kv_old_bytes, 2));
                    dep(&b, c_disk, pbt->c_store);
                    dep(&b, c_disk, slot_wait(&staging));
                    pl->tasks[c_disk].slot = (uint8_t)staging.next;
                    io_r += bc.kv_old_bytes;
                }
                if (!head && gpu && !delegated && phase == CM_PHASE_DECODE && kt != TIER_GPU) {
                    c_h2d = add_task(&b, i, j, k, PLAN_C_H2D, PLAN_RES_H2D, CM_STAGE_LOAD_CACHE,
                                     bc.kv_old_bytes, cm_copies_time(h2d, bc.kv_old_bytes, 2));
                    dep(&b, c_h2d, c_disk != PLAN_NONE ? c_disk : pbt->c_store);
                    dep(&b, c_h2d, slot_wait(&kv_in));
                    pl->tasks[c_h2d].slot = (uint8_t)kv_in.next;
                }

                /* -- compute */
                double work = size_work_bytes(m, gbs, t_new, ctx);
                if (p->kv_quant.bits && !head)
                    work += size_kv_fp16_bytes(m, gbs, ctx);
                uint32_t end_task;
                if (head) {
                    end_task = add_task(&b, i, j, k, PLAN_HEAD, comp, CM_STAGE_COMPUTE, act,
                                        cm_head_batch_s(&s, phase));
                    dep(&b, end_task, weights_ready);
                    dep(&b, end_task, producer);
                    buffer(&b, dev_tier, size_logits_bytes(m, gbs) + act, end_task, end_task);
                    last_head[k] = end_task;
                } else if (!delegated) {
                    end_task = add_task(&b, i, j, k, PLAN_COMPUTE, comp, CM_STAGE_COMPUTE,
                                        act + bc.kv_old_bytes,
                                        bc.dense_pre_s + bc.dense_post_s + bc.attn_dev_s +
                                            bc.kv_deq_dev_s + bc.kv_quant_dev_s);
                    dep(&b, end_task, weights_ready);
                    dep(&b, end_task, input);
                    dep(&b, end_task, c_h2d != PLAN_NONE ? c_h2d : c_disk);
                    /* its outputs go to out slots when they leave the device */
                    if (kv_leaves) {
                        dep(&b, end_task, slot_wait(&kv_out));
                        pl->tasks[end_task].slot = (uint8_t)kv_out.next;
                    }
                    if (act_leaves) {
                        dep(&b, end_task, slot_wait(&act_out));
                        pl->tasks[end_task].slot2 = (uint8_t)act_out.next;
                    }
                    if (phase == CM_PHASE_DECODE && c_h2d == PLAN_NONE && c_disk == PLAN_NONE)
                        dep(&b, end_task, pbt->c_store); /* the cache it reads in place */
                    buffer(&b, dev_tier, work, end_task, end_task);
                } else {
                    uint32_t pre = add_task(&b, i, j, k, PLAN_PRE, PLAN_RES_GPU, CM_STAGE_COMPUTE, act,
                                            bc.dense_pre_s);
                    dep(&b, pre, weights_ready);
                    dep(&b, pre, input);
                    if (act_leaves) {
                        dep(&b, pre, slot_wait(&act_out));
                        pl->tasks[pre].slot2 = (uint8_t)act_out.next;
                    }
                    uint32_t qkv = add_task(&b, i, j, k, PLAN_QKV_D2H, PLAN_RES_D2H,
                                            CM_STAGE_STORE_CACHE, bc.qkv_bytes,
                                            cm_copies_time(d2h, bc.qkv_bytes, 2));
                    dep(&b, qkv, pre);
                    uint32_t att = add_task(&b, i, j, k, PLAN_CPU_ATTN, PLAN_RES_CPU, CM_STAGE_COMPUTE,
                                            bc.kv_old_bytes,
                                            bc.attn_cpu_s + bc.kv_deq_cpu_s + bc.kv_quant_cpu_s);
                    dep(&b, att, qkv);
                    dep(&b, att, c_disk != PLAN_NONE ? c_disk : pbt->c_store);
                    uint32_t out = add_task(&b, i, j, k, PLAN_OUT_H2D, PLAN_RES_H2D, CM_STAGE_LOAD_CACHE,
                                            bc.out_bytes, cm_copies_time(h2d, bc.out_bytes, 1));
                    dep(&b, out, att);
                    end_task = add_task(&b, i, j, k, PLAN_POST, PLAN_RES_GPU, CM_STAGE_COMPUTE, act,
                                        bc.dense_post_s);
                    dep(&b, end_task, out);
                    /* GPU intermediates live from pre to post; CPU scores for the attention */
                    buffer(&b, TIER_GPU, work, pre, end_task);
                    buffer(&b, TIER_CPU, size_scores_bytes(m, gbs, 1, ctx), att, att);
                    if (kt == TIER_DISK) /* the staged cache, read by the CPU attention */
                        buffer(&b, TIER_CPU, bc.kv_old_bytes, c_disk, att);
                    bt->c_store = att; /* the new k, v are appended in CPU memory */
                    if (c_disk != PLAN_NONE)
                        slot_use(&staging, att);
                }
                bt->compute_end = end_task;
                /* working buffers of the inputs, and who releases their slots */
                if (c_disk != PLAN_NONE && !delegated) {
                    uint32_t rel = c_h2d != PLAN_NONE ? c_h2d : end_task;
                    buffer(&b, TIER_CPU, bc.kv_old_bytes, c_disk, rel);
                    slot_use(&staging, rel);
                }
                if (c_h2d != PLAN_NONE) {
                    buffer(&b, TIER_GPU, bc.kv_old_bytes, c_h2d, end_task);
                    slot_use(&kv_in, end_task);
                }
                if (a_disk != PLAN_NONE) {
                    uint32_t rel = a_h2d != PLAN_NONE ? a_h2d : end_task;
                    buffer(&b, TIER_CPU, act, a_disk, rel);
                    slot_use(&act_staging, rel);
                }
                if (a_h2d != PLAN_NONE) {
                    buffer(&b, TIER_GPU, act, a_h2d, end_task);
                    slot_use(&act_in, end_task);
                }

                /* -- outputs: new KV entries, hidden state */
                if (!head && !delegated) {
                    if (kt == TIER_GPU || !gpu) {
                        bt->c_store = end_task;
                    }
                    uint32_t c_d2h = PLAN_NONE;
                    if (gpu && kt != TIER_GPU) {
                        c_d2h = add_task(&b, i, j, k, PLAN_C_D2H, PLAN_RES_D2H, CM_STAGE_STORE_CACHE,
                                         bc.kv_new_bytes, cm_copies_time(d2h, bc.kv_new_bytes, 2));
                        dep(&b, c_d2h, end_task);
                        /* the new entries wait on the GPU until they are out */
                        buffer(&b, TIER_GPU, bc.kv_new_bytes, end_task, c_d2h);
                        slot_use(&kv_out, c_d2h);
                        bt->c_store = c_d2h;
                    }
                    if (kt == TIER_DISK) {
                        uint32_t c_w = add_task(&b, i, j, k, PLAN_C_WRITE, PLAN_RES_DISK,
                                                CM_STAGE_STORE_CACHE, bc.kv_new_bytes,
                                                cm_copies_time(wr, bc.kv_new_bytes, 2));
                        dep(&b, c_w, c_d2h != PLAN_NONE ? c_d2h : end_task);
                        buffer(&b, TIER_CPU, bc.kv_new_bytes, c_d2h != PLAN_NONE ? c_d2h : end_task, c_w);
                        if (!gpu)
                            slot_use(&kv_out, c_w);
                        bt->c_store = c_w;
                        io_w += bc.kv_new_bytes;
                    }
                } else if (delegated && kt == TIER_DISK) {
                    uint32_t c_w = add_task(&b, i, j, k, PLAN_C_WRITE, PLAN_RES_DISK,
                                            CM_STAGE_STORE_CACHE, bc.kv_new_bytes,
                                            cm_copies_time(wr, bc.kv_new_bytes, 2));
                    dep(&b, c_w, bt->c_store);
                    bt->c_store = c_w;
                }
                if (!head && j < L - 1) { /* the last layer's output goes to the head */
                    uint32_t a_d2h = PLAN_NONE;
                    bt->a_store = end_task;
                    if (gpu && at != TIER_GPU) {
                        a_d2h = add_task(&b, i, j, k, PLAN_A_D2H, PLAN_RES_D2H, CM_STAGE_STORE_ACT, act,
                                         cm_copies_time(d2h, act, 1));
                        dep(&b, a_d2h, end_task);
                        buffer(&b, TIER_GPU, act, end_task, a_d2h); /* the output until it is out */
                        slot_use(&act_out, a_d2h);
                        bt->a_store = a_d2h;
                    }
                    if (at == TIER_DISK) {
                        uint32_t a_w = add_task(&b, i, j, k, PLAN_A_WRITE, PLAN_RES_DISK,
                                                CM_STAGE_STORE_ACT, act, cm_copies_time(wr, act, 1));
                        dep(&b, a_w, a_d2h != PLAN_NONE ? a_d2h : end_task);
                        buffer(&b, TIER_CPU, act, a_d2h != PLAN_NONE ? a_d2h : end_task, a_w);
                        if (!gpu)
                            slot_use(&act_out, a_w);
                        bt->a_store = a_w;
                        io_w += act;
                    }
                }
                if (!gpu && end_task != PLAN_NONE) { /* cm_io_loss_s, at most its cap */
                    plan_task *ct = &pl->tasks[end_task];
                    double lost = cm_io_loss_s(&s, io_r, io_w),
                           cap = cm_io_loss_cap_s(&s, ct->dur_s);
                    ct->dur_s += lost < cap ? lost : cap;
                }
                ut->last_compute = end_task;
            }
            /* weight buffers: the GPU slot and the staging until the layer is done */
            if (ut->w_h2d != PLAN_NONE)
                buffer(&b, TIER_GPU, off, ut->w_h2d, ut->last_compute);
            if (ut->w_disk != PLAN_NONE)
                buffer(&b, TIER_CPU, uw->bytes[TIER_DISK], ut->w_disk,
                       ut->w_h2d != PLAN_NONE ? ut->w_h2d : ut->last_compute);
            if (ut->w_dequant != PLAN_NONE)
                buffer(&b, dev_tier, uw->fp16_bytes, ut->w_dequant, ut->last_compute);
        }
        batch_tasks *tmp = prev;
        prev = cur;
        cur = tmp;
    }
    free(last_head);
    if (b.oom)
        st = diag_set(e, LLMSIM_EFAIL, "out of memory building the plan (%zu tasks)", pl->ntasks);
out:
    free(ones);
    free(units);
    free(prev);
    free(cur);
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
