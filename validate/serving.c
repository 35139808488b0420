/* serving — see serving.h. */
#include "validate/serving.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "db/serving.h"
#include "sim/serve.h"
#include "validate/validate.h"

const char *const validate_serving_error_names[VS_NERRORS] = {
    "throughput",  "ttft_p50",        "ttft_p90",        "tpot_p50",
    "e2e_p50",     "e2e_p90",         "weighted_turnaround", "e2e_request_p50",
    "e2e_request_p90", "swap_overhead", "recompute_overhead", "prefix_hit_rate", "ttft_gain",
};

/* The median of the signed errors of the completed events of kind how. */
static double event_error(const engine_serve_result *m, uint8_t how, size_t *count)
{
    double *v = malloc((m->nevents ? m->nevents : 1) * sizeof *v);
    size_t n = 0;
    for (size_t k = 0; v && k < m->nevents; k++) {
        const serve_event *ev = &m->events[k];
        if (ev->how == how && ev->done && ev->measured_s > 0)
            v[n++] = validate_pct(ev->predicted_s, ev->measured_s);
    }
    *count = n;
    double med = n ? serve_stat_of(v, n).p50 : NAN;
    free(v);
    return med;
}

void validate_serving_errors(const serve_requests *q, validate_serving_mode *v)
{
    const serve_result *p = &v->sim, *m = &v->meas.r;
    double *err = v->err;
    err[VS_THROUGHPUT] = validate_pct(p->throughput_tok_s, m->throughput_tok_s);
    err[VS_TTFT_P50] = validate_pct(p->ttft.p50, m->ttft.p50);
    err[VS_TTFT_P90] = validate_pct(p->ttft.p90, m->ttft.p90);
    err[VS_TPOT_P50] = validate_pct(p->tpot.p50, m->tpot.p50);
    err[VS_E2E_P50] = validate_pct(p->e2e.p50, m->e2e.p50);
    err[VS_E2E_P90] = validate_pct(p->e2e.p90, m->e2e.p90);
    err[VS_WEIGHTED_TURNAROUND] = validate_pct(p->weighted_turnaround_s, m->weighted_turnaround_s);
    double *abs_err = malloc((q->n ? q->n : 1) * sizeof *abs_err);
    if (abs_err && q->n) {
        for (size_t i = 0; i < q->n; i++)
            abs_err[i] = fabs(validate_pct(p->req[i].finish_s - q->r[i].arrival_s,
                                           m->req[i].finish_s - q->r[i].arrival_s));
        serve_stat st = serve_stat_of(abs_err, q->n);
        err[VS_E2E_REQUEST_P50] = st.p50;
        err[VS_E2E_REQUEST_P90] = st.p90;
    } else {
        err[VS_E2E_REQUEST_P50] = err[VS_E2E_REQUEST_P90] = NAN;
    }
    free(abs_err);
    err[VS_SWAP_OVERHEAD] = event_error(&v->meas, PREEMPT_SWAP, &v->swap_events);
    err[VS_RECOMPUTE_OVERHEAD] = event_error(&v->meas, PREEMPT_RECOMPUTE, &v->recompute_events);
    err[VS_PREFIX_HIT_RATE] = err[VS_TTFT_GAIN] = NAN;
    if (v->s.cfg.prefix_cache) {
        err[VS_PREFIX_HIT_RATE] = validate_pct(p->prefix_hit_rate, m->prefix_hit_rate);
        err[VS_TTFT_GAIN] = validate_pct(v->sim_off.ttft.mean - p->ttft.mean,
                                         v->meas_off.ttft.mean - m->ttft.mean);
    }
}

cJSON *validate_serving_errors_json(const validate_serving_mode *v)
{
    cJSON *o = cJSON_CreateObject();
    for (int k = 0; k < VS_NERRORS; k++) {
        if (isnan(v->err[k]))
            cJSON_AddNullToObject(o, validate_serving_error_names[k]);
        else
            cJSON_AddNumberToObject(o, validate_serving_error_names[k], v->err[k]);
    }
    return o;
}

void validate_serving_mode_free(validate_serving_mode *v)
{
    serve_result_free(&v->sim);
    engine_serve_result_free(&v->meas);
    serve_result_free(&v->sim_off);
    serve_result_free(&v->meas_off);
}

/* Record a serving run of kind `kind` (its JSON: serve-sim's). */
static llmsim_status record_one(const record_job *job, const char *kind, const serve_setup *s,
                                const serve_requests *q, const serve_result *r,
                                const char *trace_in, const serve_gen *gen, int64_t *id, diag *e)
{
    cJSON *obj = result_serve_json(job, trace_in, gen, s, q, r, 0);
    char *json = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!json)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    llmsim_status st = record_serve(job, kind, s, q, r, json, 0, id, e);
    free(json);
    return st;
}

/* The same mode without the prefix cache, served and simulated, recorded. */
static llmsim_status run_off(const record_job *job, const serve_config *cfg,
                             const serve_requests *q, const engine_serve_opts *o,
                             const char *trace_in, const serve_gen *gen, validate_serving_mode *v,
                             diag *e)
{
    serve_config c = *cfg;
    c.prefix_cache = false;
    serve_setup s;
    engine_serve_result m;
    llmsim_status st = serve_setup_init(&s, job->model, job->hw, job->policy, &c, e);
    if (!st)
        st = engine_serve(&s, q, o, &m, e);
    if (st)
        return st;
    v->meas_off = m.r; /* the rows and aggregates; the rest goes */
    m.r = (serve_result){0};
    const bool interrupted = m.interrupted;
    engine_serve_result_free(&m);
    if (interrupted)
        return diag_set(e, LLMSIM_EFAIL, "interrupted");
    if ((st = serve_run(&s, q, &v->sim_off, NULL, NULL, e)) ||
        (st = record_one(job, "serve", &s, q, &v->sim_off, trace_in, gen, &v->id_sim_off, e)))
        return st;
    return record_one(job, "serve-measure", &s, q, &v->meas_off, trace_in, gen, &v->id_meas_off, e);
}

llmsim_status validate_serving_mode_run(const record_job *job, const serve_config *cfg,
                                        const serve_requests *q, const engine_serve_opts *o,
                                        const char *trace_in, const serve_gen *gen,
                                        validate_serving_mode *v, diag *e)
{
    memset(v, 0, sizeof *v);
    llmsim_status st = serve_setup_init(&v->s, job->model, job->hw, job->policy, cfg, e);
    if (!st)
        st = serve_sched_check(&v->s, q, e);
    if (!st)
        st = engine_serve(&v->s, q, o, &v->meas, e);
    if (!st && v->meas.interrupted)
        st = diag_set(e, LLMSIM_EFAIL, "interrupted");
    /* the prediction shares what the engine's prompts share */
    if (!st)
        st = serve_run_clocked(&v->s, q, cfg->prefix_cache ? &v->meas.keys : NULL, &v->sim, NULL,
                               NULL, NULL, NULL, e);
    if (!st)
        st = record_one(job, "serve", &v->s, q, &v->sim, trace_in, gen, &v->id_sim, e);
    if (!st)
        st = record_one(job, "serve-measure", &v->s, q, &v->meas.r, trace_in, gen, &v->id_meas, e);
    if (!st && cfg->prefix_cache)
        st = run_off(job, cfg, q, o, trace_in, gen, v, e);
    if (st) {
        validate_serving_mode_free(v);
        return st;
    }
    validate_serving_errors(q, v);
    return LLMSIM_OK;
}
