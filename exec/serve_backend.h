/*
 * serve_backend — what a serving backend provides to exec/serve.c's loop: a
 * small table of function pointers, as exec/backend.h is for plans. The
 * loop owns the clock, the scheduler and the block tables; a backend owns
 * the weights, the block pool and the swap space, and runs an iteration's
 * forward pass. The CPU backend is exec/cpu/serve.c.
 */
#ifndef LLMSIM_EXEC_SERVE_BACKEND_H
#define LLMSIM_EXEC_SERVE_BACKEND_H

#include "exec/serve.h"
#include "serving/blocks.h"

/* What a serving backend is given: borrowed for the whole run. */
typedef struct serve_ctx {
    const serve_setup *s;
    const serve_requests *q;
    const engine_serve_opts *o;
} serve_ctx;

/* One iteration's forward pass: chunk c of it is request it->req[c]'s
 * tokens seq[req][ctx .. ctx + tokens) at those positions, its K and V in
 * the blocks of b->tab[req]; an emitting chunk's next token goes to
 * seq[req][ctx + tokens], drawn as output token `step[c]`. */
typedef struct serve_fwd {
    const serve_iter *it;
    const serve_blocks *b;
    int32_t *const *seq;   /* [n requests] prompt, then generated */
    const int32_t *step;   /* [it->nch] the output index an emitting chunk draws */
} serve_fwd;

typedef struct serve_backend_ops {
    const char *name;
    bool (*accepts)(const hwprofile *hw);
    /* The RAM the run will allocate, computed without allocating it. */
    llmsim_status (*ram_bytes)(const serve_ctx *c, double *bytes, diag *e);
    /* Weights loaded, the block pool and swap space made; *state owned by
     * the backend until release (called also when prepare fails). */
    llmsim_status (*prepare)(void **state, const serve_ctx *c, diag *e);
    /* The copies of a swap, in order; each one's measured time into
     * seconds[i]. */
    llmsim_status (*swap)(void *state, const serve_block_move *mv, size_t n, double *seconds,
                          diag *e);
    /* The forward pass; *weights_s: time spent waiting for weights. */
    llmsim_status (*forward)(void *state, const serve_fwd *f, double *weights_s, diag *e);
    void (*finish)(void *state, engine_serve_result *r);
    void (*release)(void *state); /* accepts NULL */
} serve_backend_ops;

extern const serve_backend_ops exec_cpu_serve_backend;
extern const serve_backend_ops exec_gpu_serve_backend; /* exec/cuda/serve.c */

#endif
