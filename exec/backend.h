/*
 * backend — what an engine backend provides (ARCHITECTURE §9): a small table
 * of function pointers, as ggml's backends and calm's forward functions are.
 * exec/engine.c owns the plan's execution (one thread per resource, tasks in
 * plan order as their dependencies complete, every task timed); a backend
 * owns the memory of its tiers and the work of each task. The CPU backend
 * (exec/cpu/backend.c) is the reference and always builds; a CUDA backend is
 * a second implementation of the same table.
 */
#ifndef LLMSIM_EXEC_BACKEND_H
#define LLMSIM_EXEC_BACKEND_H

#include <stdint.h>

#include "exec/engine.h"

/* What a backend is given to run: borrowed for the whole run. */
typedef struct exec_ctx {
    const model *m;
    const hwprofile *hw;
    const policy *p;
    const workload *w;
    const plan *pl;
    const engine_opts *o;
} exec_ctx;

typedef struct exec_backend_ops {
    const char *name;
    /* Whether this backend runs plans for this hardware. */
    bool (*accepts)(const hwprofile *hw);
    /* The RAM a run will allocate (weights, cache and hidden states in RAM,
     * staging, scratch), computed without allocating it. */
    llmsim_status (*ram_bytes)(const exec_ctx *ctx, double *bytes, diag *e);
    /* Allocate the tiers, place and load the weights; *state owned by the
     * backend until release (called also when prepare fails). */
    llmsim_status (*prepare)(void **state, const exec_ctx *ctx, diag *e);
    /* Before a block of bls prompts: its prompts (sequence numbers
     * block * bls ..). */
    llmsim_status (*begin_block)(void *state, long long block, diag *e);
    /* One task of the plan; called from the thread of the task's resource,
     * one task per resource at a time, dependencies complete. */
    llmsim_status (*run_task)(void *state, uint32_t task, diag *e);
    /* After a block's tasks were all run (or issued: a device backend
     * waits here for them to complete): its generated tokens into
     * r->tokens. */
    llmsim_status (*end_block)(void *state, long long block, engine_result *r, diag *e);
    /* After block 0's end_block, when the backend times tasks itself (a
     * device's events): every task's start and end, seconds from one origin
     * taken when the block began. NULL: the engine's clock around run_task
     * is the task's time. */
    llmsim_status (*task_times)(void *state, double *start_s, double *end_s, diag *e);
    /* After the run: what the backend measured of itself (RAM, I/O mode,
     * perplexity sums). */
    void (*finish)(void *state, engine_result *r);
    void (*release)(void *state); /* accepts NULL */
} exec_backend_ops;

extern const exec_backend_ops exec_cpu_backend;
/* exec/cuda/backend.c: plans of a machine with a GPU, on a CUDA device or
 * (engine_opts.gpu_emulated) on the host emulation of one. */
extern const exec_backend_ops exec_gpu_backend;

#endif
