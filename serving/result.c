/*
 * result — the aggregates of a serving run. See result.h.
 */
#include "serving/result.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/stats.h"

const char *const serve_state_names[3] = {"waiting", "running", "swapped"};

serve_stat serve_stat_of(double *v, size_t n)
{
    serve_stat st = {0};
    if (!n)
        return st;
    stats_sort(v, n);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    st.mean = sum / (double)n;
    const double ps[3] = {0.50, 0.90, 0.99};
    double *out[3] = {&st.p50, &st.p90, &st.p99};
    for (int k = 0; k < 3; k++) {
        size_t idx = (size_t)ceil(ps[k] * (double)n);
        *out[k] = v[idx ? idx - 1 : 0];
    }
    st.max = v[n - 1];
    return st;
}

llmsim_status serve_result_aggregate(const serve_setup *s, const serve_requests *q, serve_result *r,
                                     diag *e)
{
    size_t n = q->n;
    double *v = malloc(n * sizeof *v);
    if (!v)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    double first = q->r[0].arrival_s, wsum = 0, wt = 0;
    for (size_t i = 0; i < n; i++) {
        wsum += q->r[i].weight;
        wt += q->r[i].weight * (r->req[i].finish_s - q->r[i].arrival_s);
    }
    r->makespan_s = r->end_s - first;
    r->weighted_turnaround_s = wt / wsum;
    r->throughput_tok_s = r->makespan_s > 0 ? r->output_tokens / r->makespan_s : 0;
    r->request_rate = r->makespan_s > 0 ? (double)n / r->makespan_s : 0;
    for (size_t i = 0; i < n; i++)
        v[i] = r->req[i].first_token_s - q->r[i].arrival_s;
    r->ttft = serve_stat_of(v, n);
    for (size_t i = 0; i < n; i++)
        v[i] = r->req[i].finish_s - q->r[i].arrival_s;
    r->e2e = serve_stat_of(v, n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (q->r[i].output_len > 1)
            v[k++] = (r->req[i].finish_s - r->req[i].first_token_s) / (double)(q->r[i].output_len - 1);
    r->tpot = serve_stat_of(v, k);
    free(v);
    double used = 0;
    int64_t peak = 0;
    for (size_t i = 0; i < r->nkv; i++) {
        used += (double)r->kv[i].dev_blocks * r->kv[i].dur_s;
        if (r->kv[i].dev_blocks > peak)
            peak = r->kv[i].dev_blocks;
    }
    r->kv_util_mean = r->makespan_s > 0 ? used / ((double)s->total_blocks * r->makespan_s) : 0;
    r->kv_util_peak = (double)peak / (double)s->total_blocks;
    r->prefix_hit_rate =
        r->prefix_query_tokens > 0 ? r->prefix_hit_tokens / r->prefix_query_tokens : 0;
    return LLMSIM_OK;
}

void serve_result_free(serve_result *r)
{
    free(r->req);
    free(r->kv);
    free(r->iters);
    free(r->spans);
    memset(r, 0, sizeof *r);
}
