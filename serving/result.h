/*
 * result — what a serving run gives, simulated (serve-sim) or measured
 * (serve): per request its first token and finish and its preemptions, the
 * KV blocks in use over time, each request's states for a trace, and the
 * aggregates (throughput, TTFT, TPOT and end-to-end percentiles, weighted
 * turnaround, KV utilization), computed in one place for both.
 */
#ifndef LLMSIM_SERVING_RESULT_H
#define LLMSIM_SERVING_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "serving/setup.h"

typedef struct serve_req_result {
    double admitted_s;     /* time it was first scheduled */
    double first_token_s;  /* time its first output token was emitted */
    double finish_s;
    int32_t swaps, recomputes;
    int64_t cached_tokens; /* prompt tokens found in the prefix cache, over its admissions */
} serve_req_result;

/* One iteration: what the scheduler ran and how long it took. The driver
 * sets predicted_s and, measuring, the times inside (0 in serve-sim). */
typedef struct serve_iter_row {
    double start_s, end_s;
    double predicted_s;              /* the cost model's price of it */
    double sched_s, swap_s, weights_s; /* measured: the scheduler's own time, the
                                        * swaps', the wait for disk weights */
    int32_t seqs;                    /* sequences in the batch */
    int64_t prefill_tokens, decode_tokens;
    int64_t dev_blocks, swap_blocks; /* held at its end */
    int64_t out_blocks, in_blocks;   /* swapped */
    int32_t preempt_swap, preempt_recompute;
    int64_t hit_tokens;              /* prompt tokens its admissions found cached */
} serve_iter_row;

typedef struct serve_kv_sample {
    double time_s, dur_s;            /* an iteration's start and length */
    int64_t dev_blocks, swap_blocks; /* blocks in use during it */
} serve_kv_sample;

typedef enum serve_state { SERVE_WAITING, SERVE_RUNNING, SERVE_SWAPPED } serve_state;
extern const char *const serve_state_names[3];

typedef struct serve_span {
    uint32_t req;
    uint8_t state;
    double start_s, end_s;
} serve_span;

typedef struct serve_stat {
    double mean, p50, p90, p99, max;
} serve_stat;

typedef struct serve_result {
    size_t n;
    serve_req_result *req;        /* [n], in the requests' order */
    double makespan_s;            /* first arrival to last finish */
    double end_s;                 /* last finish */
    long long iterations, events;
    long long preempt_swap, preempt_recompute, swap_full; /* swap_full: swaps that fell back */
    double swap_out_bytes, swap_in_bytes, swap_s;
    double recomputed_tokens;     /* cached tokens recompute preemptions dropped (the
                                   * prefix cache may give some back: prefix_hit_tokens) */
    double output_tokens, prompt_tokens;
    /* the prefix cache: tokens admissions asked to prefill, those found
     * cached, cached blocks evicted for reuse */
    double prefix_query_tokens, prefix_hit_tokens;
    long long prefix_evicted;
    serve_kv_sample *kv;          /* one per iteration */
    size_t nkv;
    serve_iter_row *iters;        /* [iterations] */
    serve_span *spans;            /* with keep_spans */
    size_t nspans;
    /* aggregates */
    double throughput_tok_s;      /* output tokens / makespan */
    double request_rate;          /* requests / makespan */
    serve_stat ttft, tpot, e2e;   /* seconds; tpot over requests with >= 2 output tokens */
    double weighted_turnaround_s; /* sum weight * e2e / sum weight */
    double kv_util_mean, kv_util_peak; /* device blocks in use / total (time-weighted mean) */
    double prefix_hit_rate;       /* prefix_hit_tokens / prefix_query_tokens (0: none asked) */
    bool interrupted;             /* stopped by cfg.interrupt: rows so far, no aggregates */
} serve_result;

/* Mean, nearest-rank percentiles and maximum of v [n] (sorts v; zeros for
 * n = 0). */
serve_stat serve_stat_of(double *v, size_t n);

/* The aggregates of r from its per-request times and KV samples (r->n,
 * r->req, r->kv, r->end_s set). */
llmsim_status serve_result_aggregate(const serve_setup *s, const serve_requests *q,
                                     serve_result *r, diag *e);
void serve_result_free(serve_result *r);

#endif
