/*
 * plan — a policy lowered, once, into the task graph that the simulator
 * predicts and the engine executes (ARCHITECTURE §2).
 *
 * The zig-zag block schedule: for each step (0 = prefill, then each decode
 * step), for each layer (0 .. L-1 the decoder layers, L the head: final norm,
 * LM head and the next token's embedding), for each GPU batch. Every task has
 * a stable id "s<step>.l<layer|head>.b<batch>.<kind>" (per-layer tasks have
 * no ".b"), one resource, its bytes, its predicted duration (priced with the
 * cost model's primitives, costmodel/analytic.h), and the tasks it waits for.
 *
 * What the engine will do, and so what the plan says:
 *  - weights of a layer that are not on the GPU are staged disk -> CPU and
 *    copied CPU -> GPU into one of two GPU slots: the next layer loads while
 *    this one computes (a load waits for the compute of the layer two back);
 *    quantized weights are dequantized into one working copy;
 *  - the KV cache of a GPU batch that is not on the GPU is staged from disk
 *    and copied to the GPU into one of two batch slots (the next batch loads
 *    while this one computes); with CPU attention it stays on the CPU: q, k, v
 *    go out, the CPU attends, the output comes back, and the GPU finishes the
 *    layer (pre -> cpu_attention -> post), so the GPU can work on the next
 *    batch meanwhile;
 *  - outputs that leave the compute device's memory (new KV entries and
 *    hidden states whose home is elsewhere) go through two out slots each;
 *    each double-buffered kind has its own pair, and every task records the
 *    slot it fills, so the engine needs no bookkeeping of its own;
 *  - new KV entries go out to the batch's tier after its compute, hidden
 *    states to theirs; the next layer loads them.
 *  - without overlap (policy overlap: false) every task also waits for the
 *    one issued before it: I/O and compute take turns, in plan order;
 * Memory is explicit: buffers (resident ones from the start to the end, and
 * working ones allocated when a task starts and released when another ends).
 *
 * Placement is whole tensors, by the rule of costmodel/placement.h: the
 * realized fractions are reported. Without a GPU, the compute device is the
 * CPU, the gpu tier is empty, and nothing crosses PCIe.
 */
#ifndef LLMSIM_PLAN_PLAN_H
#define LLMSIM_PLAN_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "costmodel/analytic.h"
#include "costmodel/placement.h"

#define PLAN_NONE UINT32_MAX

typedef enum plan_res {
    PLAN_RES_GPU,  /* GPU compute */
    PLAN_RES_CPU,  /* CPU compute */
    PLAN_RES_H2D,  /* host -> device link */
    PLAN_RES_D2H,  /* device -> host link (independent of h2d) */
    PLAN_RES_DISK, /* disk reads and writes share the device */
    PLAN_NRES
} plan_res;
extern const char *const plan_res_names[PLAN_NRES];

typedef enum plan_kind {
    PLAN_W_DISK,     /* a layer's disk-resident weights -> CPU staging */
    PLAN_W_H2D,      /* a layer's CPU- and disk-resident weights -> GPU slot */
    PLAN_W_DEQUANT,  /* dequantize a layer's weights into the working copy */
    PLAN_C_DISK,     /* a batch's KV cache: disk -> CPU staging */
    PLAN_C_H2D,      /* a batch's KV cache: CPU -> GPU slot */
    PLAN_A_DISK,     /* a batch's hidden state: disk -> CPU staging */
    PLAN_A_H2D,      /* a batch's hidden state: CPU -> GPU */
    PLAN_COMPUTE,    /* a batch through a layer on the compute device */
    PLAN_PRE,        /* delegated attention: norm and QKV projection on the GPU */
    PLAN_QKV_D2H,    /* delegated: q, k, v to the CPU */
    PLAN_CPU_ATTN,   /* delegated: attention over the CPU-resident cache */
    PLAN_OUT_H2D,    /* delegated: the attention output back to the GPU */
    PLAN_POST,       /* delegated: output projection and MLP on the GPU */
    PLAN_C_D2H,      /* new KV entries: GPU -> CPU */
    PLAN_C_WRITE,    /* new KV entries: CPU -> disk */
    PLAN_A_D2H,      /* hidden state out: GPU -> CPU */
    PLAN_A_WRITE,    /* hidden state out: CPU -> disk */
    PLAN_HEAD,       /* a batch through the head (LM head, next embedding) */
    PLAN_NKINDS
} plan_kind;
extern const char *const plan_kind_names[PLAN_NKINDS];

typedef struct plan_task {
    int32_t step;       /* 0 = prefill, 1.. decode steps */
    int32_t layer;      /* 0 .. L-1 decoder layers; L = the head */
    int32_t batch;      /* GPU batch, or -1 for a per-layer task */
    uint8_t kind;       /* plan_kind */
    uint8_t res;        /* plan_res */
    uint8_t stage;      /* cm_stage (for the per-step breakdown) */
    uint8_t slot;       /* which of the two buffers of its kind the task fills: weights
                         * (w_disk, w_h2d), staging (c_disk, a_disk), device slots
                         * (c_h2d, a_h2d), or for a compute task the new-KV out slot */
    uint8_t slot2;      /* compute tasks: the hidden-state out slot */
    double bytes;       /* bytes moved (copies) or tensor bytes read (compute) */
    double dur_s;       /* predicted duration */
    uint32_t dep_first; /* deps[dep_first .. dep_first + ndeps) */
    uint32_t ndeps;
} plan_task;

/* A buffer on a tier: allocated when alloc_task starts (PLAN_NONE: from the
 * start, resident) and released when free_task ends (PLAN_NONE: at the end). */
typedef struct plan_buffer {
    uint32_t alloc_task;
    uint32_t free_task;
    double bytes;
    uint8_t tier;       /* tier */
} plan_buffer;

typedef struct plan {
    plan_task *tasks;
    size_t ntasks, cap_tasks;
    uint32_t *deps;
    size_t ndeps, cap_deps;
    plan_buffer *buffers;
    size_t nbuffers, cap_buffers;
    int nsteps;          /* prefill + decode steps = gen_len */
    int nlayers;         /* decoder layers (the head is layer nlayers) */
    int ngb;             /* GPU batches */
    double blocks;       /* the workload runs this many blocks of this plan */
    double num_prompts;
    long long gen_len;
    bool has_gpu;
    placement_realized realized; /* weights (layer, head), KV, activations */
    placement kv_realized, act_realized;
    tier *kv_tier;       /* [ngb] where each GPU batch's KV cache lives, owned */
    tier *act_tier;      /* [ngb] where each GPU batch's hidden states live, owned */
} plan;

/* Lower (model, hardware, policy, workload) into a plan. Owns its arrays;
 * plan_free releases them (accepts a zeroed plan). LLMSIM_EINPUT for the same
 * contradictions cm_predict reports. */
llmsim_status plan_build(const model *m, const hwprofile *hw, const policy *p, const workload *w,
                         plan *out, diag *e);
void plan_free(plan *pl);

/* The stable id of task i: "s3.l12.b1.c_h2d", "s0.head.b0.head", "s2.l0.w_h2d". */
void plan_task_id(const plan *pl, size_t i, char *buf, size_t len);

/* The task of `kind` of the same (step, layer, batch) as task `near`, or
 * PLAN_NONE: plan_build issues a batch's tasks of a layer next to each other
 * (within 16 places), so the engines find a task's siblings this way. */
uint32_t plan_sibling(const plan *pl, uint32_t near, plan_kind kind);

/* Structural checks: deps point backwards, every working buffer is released
 * once, after it is allocated, by a task that depends on its allocator. */
llmsim_status plan_validate(const plan *pl, diag *e);

#endif
