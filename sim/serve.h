/*
 * serve — the serving simulation (ARCHITECTURE §8): requests arrive over
 * time and are served by iteration-level (continuous) batching over a paged
 * KV cache, with preemption when the cache runs out. The machine and its
 * pools are serving/setup.h's, the schedule serving/sched.h's; this file is
 * the predicted clock: every iteration lasts what the cost model says
 * (serve_sched_predict_s), or what a clock callback says (serve_run_clocked:
 * replaying measured iteration times through the same scheduler).
 */
#ifndef LLMSIM_SIM_SERVE_H
#define LLMSIM_SIM_SERVE_H

#include <stdio.h>

#include "common/diag.h"
#include "serving/result.h"
#include "serving/sched.h"
#include "serving/setup.h"

/* Simulate the requests to the end. Fails with LLMSIM_EINPUT when a request
 * can never fit (its prompt and output exceed the model's context or the KV
 * cache); the message names the request, and its file and line for a trace.
 * `progress`, when not NULL, is called now and then with the fraction done. */
llmsim_status serve_run(const serve_setup *s, const serve_requests *q, serve_result *r,
                        void (*progress)(double frac, void *ctx), void *progress_ctx, diag *e);

/* The length of iteration `index` (0, 1, ...) as formed, given the cost
 * model's prediction of it; >= 0. */
typedef double (*serve_clock_fn)(long long index, const serve_iter *it, double predicted_s,
                                 void *ctx);

/* serve_run with the prefix cache's keys (NULL: the declared ones; see
 * serve_sched_new) and the iterations' lengths from clock (NULL: the
 * predictions). The result's swap_s stays the predicted time of the swaps. */
llmsim_status serve_run_clocked(const serve_setup *s, const serve_requests *q,
                                const serve_prefix_keys *keys, serve_result *r,
                                serve_clock_fn clock, void *clock_ctx,
                                void (*progress)(double frac, void *ctx), void *progress_ctx,
                                diag *e);

/* Chrome Trace Event JSON: a track per request (its waiting, running and
 * swapped spans) and counters of KV blocks in use. Needs keep_spans. */
llmsim_status serve_trace_write(const serve_setup *s, const serve_result *r, const char *title,
                                const char *path, diag *e);

#endif
