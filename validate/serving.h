/*
 * serving — `llmsim validate --serving`: serve-sim and the serving engine
 * on the same requests and settings (for one preemption mode, or each of
 * swap, recompute and adaptive), and the errors of the prediction as signed
 * percent of the measurement: throughput, TTFT p50 and p90, TPOT p50,
 * end-to-end p50 and p90, weighted turnaround; the median and p90 of the
 * per-request end-to-end errors in absolute value; and the median over
 * preemption events of the error of each event's predicted cost (the price
 * the scheduler decided it by) against its measured cost (exec/serve.h's
 * serve_event), for swaps and for recomputes. With the prefix cache, each
 * mode also runs both with the cache off, for the errors of the predicted
 * hit rate and of the predicted mean TTFT gained (off minus on).
 */
#ifndef LLMSIM_VALIDATE_SERVING_H
#define LLMSIM_VALIDATE_SERVING_H

#include <cJSON.h>

#include "db/record.h"
#include "exec/serve.h"
#include "serving/setup.h"

enum {
    VS_THROUGHPUT,
    VS_TTFT_P50,
    VS_TTFT_P90,
    VS_TPOT_P50,
    VS_E2E_P50,
    VS_E2E_P90,
    VS_WEIGHTED_TURNAROUND,
    VS_E2E_REQUEST_P50,
    VS_E2E_REQUEST_P90,
    VS_SWAP_OVERHEAD,
    VS_RECOMPUTE_OVERHEAD,
    VS_PREFIX_HIT_RATE,
    VS_TTFT_GAIN,
    VS_NERRORS
};
/* The JSON keys of the errors, in that order. */
extern const char *const validate_serving_error_names[VS_NERRORS];

/* One mode: its setup, the simulation and the measurement, the errors
 * (NaN where there is nothing to compare: no events of a kind). */
typedef struct validate_serving_mode {
    serve_setup s;
    serve_result sim;
    engine_serve_result meas;
    serve_result sim_off, meas_off;       /* with the prefix cache: both without it */
    double err[VS_NERRORS];
    size_t swap_events, recompute_events; /* completed, compared */
    int64_t id_sim, id_meas;              /* their runs in the store */
    int64_t id_sim_off, id_meas_off;      /* 0 without the prefix cache */
} validate_serving_mode;

/* The errors of a mode whose sim and meas are filled. */
void validate_serving_errors(const serve_requests *q, validate_serving_mode *v);

/* Simulate and serve q under the job's model, hardware and policy with cfg
 * and the engine options o; record both runs (kinds 'serve' and
 * 'serve-measure', serve-sim's JSON) and compute the errors. On failure v is
 * freed (LLMSIM_EFAIL "interrupted" after ^C). */
llmsim_status validate_serving_mode_run(const record_job *job, const serve_config *cfg,
                                        const serve_requests *q, const engine_serve_opts *o,
                                        const char *trace_in, const serve_gen *gen,
                                        validate_serving_mode *v, diag *e);
void validate_serving_mode_free(validate_serving_mode *v);

/* The errors as JSON: {"throughput": .., ...} (null for NaN). */
cJSON *validate_serving_errors_json(const validate_serving_mode *v);

#endif
