/*
 * search — the best policy for (model, hardware, workload) by linear
 * programming (ARCHITECTURE §7).
 *
 * For every combination of the discrete choices — GPU batch size (1, 2, 3, 4, 6,
 * 8, 12, ... while the working set fits), number of GPU batches (likewise, to 64),
 * weight and KV-cache quantization (none, 8 or 4 bits with groups of 32, 64
 * or 128) and CPU delegation of attention (on, off) — one LP in GLPK:
 *   variables   the nine placement fractions; the layer time of the prefill,
 *               of each decode segment, and of the embedding/LM head
 *   minimize    block time / (prompts x gen_len)  (seconds per generated token)
 *   subject to  fractions of weights, cache, activations each sum to 1;
 *               every phase time >= each resource term of the cost model
 *               (costmodel/analytic.h: h2d, d2h, disk, compute);
 *               peak memory of each tier <= capacity x (1 - headroom);
 *               optionally each decode step <= max_latency.
 * Decode steps are grouped into at most SEARCH_DECODE_SEGMENTS segments,
 * priced at their middle context; with gen_len - 1 <= that many steps every
 * step has its own variable and the LP is exactly the cost model.
 *
 * The best LP solutions are then rounded to whole tensors (the rule of
 * costmodel/placement.h), re-checked for memory with the cost model (a tier
 * that overflows after rounding is tightened by the overflow and the LP
 * solved again), and ranked by the predicted throughput of the rounded
 * policy — the policy the engine can run and `llmsim predict` accepts.
 */
#ifndef LLMSIM_SEARCH_SEARCH_H
#define LLMSIM_SEARCH_SEARCH_H

#include <stdbool.h>

#include "costmodel/analytic.h"

#define SEARCH_DECODE_SEGMENTS 8

typedef struct search_options {
    double headroom;       /* fraction of each tier kept free, [0, 1) */
    double max_latency_s;  /* bound on each decode step of the block; 0 = none */
    bool no_quant;         /* only unquantized weights and cache */
    bool no_disk;          /* nothing on disk */
    int top_k;             /* candidates reported */
    int max_gpu_batch;     /* largest GPU batch tried (power of 2) */
    int max_gpu_batches;   /* largest number of GPU batches tried */
    bool progress;         /* progress lines on stderr */
    int lp_iteration_limit; /* simplex iterations per LP before it counts as failed */
} search_options;

void search_options_init(search_options *o);

typedef struct search_candidate {
    policy lp_policy;          /* discrete choices + the LP's fractions */
    double lp_time_per_token_s; /* the LP objective */
    double lp_throughput_tok_s; /* prompts x gen_len / (blocks x LP block time) */
    policy rounded;            /* whole-tensor fractions: what is written out */
    double throughput_tok_s;   /* cost model on `rounded` */
    double total_s;
    double peak_bytes[TIER_COUNT];
    bool feasible;             /* `rounded` fits */
    int repairs;               /* LP re-solves after rounding overflowed */
} search_candidate;

typedef struct search_result {
    bool found;
    search_candidate best;
    search_candidate *top; /* [ntop], best first; owned */
    int ntop;
    long lps_solved;       /* LPs that GLPK solved to an optimum */
    long lps_infeasible;   /* LPs with no feasible point (memory) */
    long choices_skipped;  /* discrete choices that do not apply (group size) */
    long candidates_evaluated; /* LPs built and solved, all outcomes */
    double search_s;
} search_result;

/* Run the search. LLMSIM_EINPUT when nothing can fit (the message says why)
 * or the inputs contradict; LLMSIM_EFAIL when GLPK fails on an LP (it is
 * reported, never skipped). */
llmsim_status search_run(const model *m, const hwprofile *hw, const workload *w,
                         const search_options *o, search_result *r, diag *e);
void search_result_free(search_result *r);

/* Solve the LP of one discrete choice (p's fractions are ignored) with each
 * tier's usable capacity given; on an optimum, p's fractions are set and
 * *time_per_token_s is the objective. *optimal is false when infeasible.
 * For tests and for the rounding repair. */
llmsim_status search_solve_choice(const model *m, const hwprofile *hw, const workload *w,
                                  const search_options *o, policy *p,
                                  const double usable[TIER_COUNT], bool *optimal,
                                  double *time_per_token_s, diag *e);

#endif
