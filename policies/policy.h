/*
 * policy — everything a user chooses about execution (ARCHITECTURE §5):
 * placement fractions of weights, KV cache and activations over the gpu, cpu
 * and disk tiers, the zig-zag block shape, quantization, CPU delegation of
 * attention, overlap, and the serving options.
 */
#ifndef LLMSIM_POLICIES_POLICY_H
#define LLMSIM_POLICIES_POLICY_H

#include <stdbool.h>

#include "common/diag.h"
#include "common/strbuf.h"

typedef enum tier { TIER_GPU, TIER_CPU, TIER_DISK, TIER_COUNT } tier;
extern const char *const tier_names[TIER_COUNT];

/* Fractions over the tiers, each in [0, 1], summing to 1. */
typedef struct placement {
    double f[TIER_COUNT];
} placement;

/* Group-wise asymmetric min/max quantization; bits == 0 means none. */
typedef struct quant {
    int bits;       /* 0 (none), 4 or 8 */
    int group_size; /* values per group */
} quant;
/* The bytes it takes: costmodel/sizes.h; its layout: common/quant_layout.h. */

typedef enum preemption { PREEMPT_SWAP, PREEMPT_RECOMPUTE, PREEMPT_ADAPTIVE } preemption;
typedef enum scheduler { SCHED_FCFS, SCHED_FAIR } scheduler;
extern const char *const preemption_names[3];
extern const char *const scheduler_names[2];

typedef struct policy {
    placement weights;
    placement kv_cache;
    placement activations;
    int gpu_batch_size;  /* sequences per GPU batch */
    int num_gpu_batches; /* GPU batches per block (zig-zag) */
    quant weight_quant;
    quant kv_quant;
    bool cpu_attention;  /* attention over a CPU-resident KV cache runs on the CPU */
    bool overlap;        /* I/O overlaps compute */
    bool pin_weights;    /* CPU-resident weights in pinned memory */
    /* serving */
    preemption preempt;
    scheduler sched;
    int kv_block_size;   /* tokens per KV block */
} policy;

/* Defaults: everything on the GPU, batch 1 x 1, no quantization, overlap on,
 * pinned weights, recompute (vLLM's default), fcfs, 16-token blocks. */
void policy_init(policy *p);

llmsim_status policy_load_yaml(const char *path, policy *p, diag *e);
/* The same over YAML text in memory (the store keeps inputs as text); name
 * stands for the file in messages. */
llmsim_status policy_load_yaml_text(const char *name, const char *text, policy *p, diag *e);

/* FlexGen's shorthand: wg wc cg cc hg hc in percent; the rest of each goes
 * to disk. `args` are the six strings from the command line. */
llmsim_status policy_from_percent(const char *const args[6], policy *p, diag *e);

/* Rules that need no model or hardware (also applied by the loaders). */
llmsim_status policy_validate(const policy *p, const char *where, diag *e);

/* Canonical YAML (loads back unchanged); also the text that is hashed. */
void policy_save(const policy *p, strbuf *out);

#endif
