/*
 * engine — execute a plan for real and time every task (ARCHITECTURE §9).
 *
 * The engine's scheduler is backend-neutral (exec/backend.h: a table of
 * function pointers); the CPU backend (exec/cpu/backend.c) runs the plans of
 * a machine without a GPU: weights, KV cache
 * and hidden states live in RAM or on disk, as the plan's whole-tensor
 * placement says; the disk is read and written with O_DIRECT into aligned
 * staging buffers by an I/O thread while a compute thread runs the layers
 * (the kernels of exec/cpu, threaded); both take the tasks of
 * their resource in the order the plan issues them as their dependencies
 * complete, exactly as the simulator schedules them, and every task is
 * timed with the monotonic clock under its plan id.
 *
 * Weights come from a Hugging Face checkpoint (exec/safetensors.h) or are
 * generated from a seed (--synthetic), deterministically for any model.
 * Compute is fp32 over weights stored as the model's dtype (fp16, bf16, fp32)
 * or group-quantized (common/quant_layout.h); the KV cache and hidden states
 * are stored in fp16 (or quantized KV), as the cost model counts them.
 */
#ifndef LLMSIM_EXEC_ENGINE_H
#define LLMSIM_EXEC_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "exec/conditions.h"
#include "plan/plan.h"

typedef struct engine_opts {
    const char *weights_path;  /* safetensors file, index or directory; NULL: synthetic */
    uint64_t synthetic_seed;   /* seed of the synthetic weights */
    const char *offload_parent;/* where the offload directory goes; NULL: $TMPDIR or /tmp */
    double max_ram_bytes;      /* refuse plans that need more RAM; 0: the free RAM */
    int threads;               /* compute threads; 0: every core */
    const int32_t *prompts;    /* [num_prompts][prompt_len] token ids, or NULL: random */
    uint64_t prompt_seed;      /* seed of the random prompts */
    double temperature;        /* 0: greedy */
    double top_p;              /* nucleus sampling, (0, 1] */
    uint64_t sample_seed;
    volatile sig_atomic_t *interrupt; /* set to stop at the next task */
    /* perplexity: when non-NULL, prompts are windows of a token file and
     * the next token after every position from score_from[window] - 1 on
     * is scored (-log p) in the prefill; [num_windows] */
    const long long *score_from;
    long long num_windows;
    /* a plan for a GPU runs on the host emulation of a device
     * (exec/cuda/dev.h GDEV_HOST) instead of CUDA: tests and CI */
    bool gpu_emulated;
    /* when non-NULL (llmsim run --logits-out, tests), the logits of every step of the first block,
     * [gen_len][bls][vocab] */
    float *logits_out;
} engine_opts;

typedef struct engine_result {
    size_t ntasks;
    double *start_s, *end_s;   /* [ntasks] measured, first block; owned */
    int32_t *tokens;           /* [num_prompts][gen_len] generated; owned */
    long long num_prompts;
    double total_s;            /* every block */
    double prefill_s;          /* every block's prefill */
    double ram_bytes;          /* what the engine allocated */
    bool interrupted;
    bool direct_io;            /* the offload files use O_DIRECT */
    double gpu_bytes;          /* the GPU engine: the most device memory allocated at once */
    char device[128];          /* the GPU engine: the device it ran on */
    double nll_sum;            /* perplexity: sum of -log p over the scored tokens */
    long long nll_count;       /* tokens scored */
    /* the disk's read and write rates (B/s) just before and after the run,
     * by profile_disk_now: filled by the caller (llmsim validate
     * --check-disk), 0 when not measured */
    double disk_now_Bps[2];
    /* what the run ran under (exec/conditions.h): filled by the caller,
     * which brackets engine_run with cond_begin and cond_end (llmsim run,
     * validate); cond.measured false when not taken */
    exec_conditions cond;
} engine_result;

llmsim_status engine_run(const model *m, const hwprofile *hw, const policy *p, const workload *w,
                         const plan *pl, const engine_opts *o, engine_result *r, diag *e);
void engine_result_free(engine_result *r);

/* The synthetic values (fp32, before storage rounding) of tensor t of unit
 * `unit` (0 .. L-1 a decoder layer, L the head) for `seed`: what
 * --synthetic SEED loads, for tests to rebuild the same model. */
void engine_synthetic_values(uint64_t seed, int unit, const model_tensor *t, float *out);

/* The RAM the engine may use by default: MemAvailable from /proc/meminfo,
 * bytes; 0 when unknown. */
double engine_free_ram_bytes(void);

#endif
