/*
 * search_check — `validate --search`: the search's best candidates as
 * policies to validate beside the grid, and how well the predictions rank
 * the policies that were measured (validate.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/search.h"
#include "sim/sim.h"
#include "validate/search_check.h"

bool validate_fits_engine(const record_job *job, const policy *p)
{
    plan pl;
    diag e;
    diag_clear(&e);
    if (plan_build(job->model, job->hw, p, job->workload, &pl, &e))
        return false;
    double ram = sim_plan_peak(&pl, TIER_CPU);
    double avail = engine_free_ram_bytes(); /* what the engine will allow */
    plan_free(&pl);
    return ram <= job->hw->cpu.memory_bytes && (avail <= 0 || ram <= avail);
}

static bool same_policy(const policy *a, const policy *b)
{
    return memcmp(&a->weights, &b->weights, sizeof a->weights) == 0 &&
           memcmp(&a->kv_cache, &b->kv_cache, sizeof a->kv_cache) == 0 &&
           memcmp(&a->activations, &b->activations, sizeof a->activations) == 0 &&
           a->gpu_batch_size == b->gpu_batch_size && a->num_gpu_batches == b->num_gpu_batches &&
           a->weight_quant.bits == b->weight_quant.bits &&
           a->weight_quant.group_size == b->weight_quant.group_size &&
           a->kv_quant.bits == b->kv_quant.bits && a->kv_quant.group_size == b->kv_quant.group_size &&
           a->cpu_attention == b->cpu_attention;
}

llmsim_status validate_search_policies(const record_job *job, int k, int max_batch, int max_batches,
                                       validate_policy **out, int *n, strbuf *skipped, diag *e)
{
    search_options so;
    search_options_init(&so);
    so.top_k = 4 * k; /* spares for the ones that repeat or do not fit the engine */
    so.max_gpu_batch = max_batch;
    so.max_gpu_batches = max_batches;
    search_result sr;
    llmsim_status st = search_run(job->model, job->hw, job->workload, &so, &sr, e);
    if (st)
        return st;
    validate_policy *ps = calloc((size_t)k, sizeof *ps);
    int count = 0;
    if (!ps)
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
    for (int i = 0; !st && i < sr.ntop && count < k; i++) {
        const search_candidate *c = &sr.top[i];
        bool dup = false;
        for (int j = 0; j < count && !dup; j++)
            dup = same_policy(&ps[j].p, &c->rounded);
        if (dup || !c->feasible)
            continue;
        if (!validate_fits_engine(job, &c->rounded)) {
            strbuf_printf(skipped, "search: candidate %d needs more RAM than the engine may use; skipped\n",
                          i + 1);
            continue;
        }
        ps[count].p = c->rounded;
        ps[count].p.overlap = true;
        snprintf(ps[count].name, sizeof ps[count].name, "search-%d", count + 1);
        count++;
    }
    search_result_free(&sr);
    if (!st && count == 0)
        st = diag_set(e, LLMSIM_EINPUT, "the search found no candidate that the engine can run here");
    if (st) {
        free(ps);
        return st;
    }
    *out = ps;
    *n = count;
    return LLMSIM_OK;
}

/* Ranks of v[0..n) from 1 (smallest), ties at their mean rank. */
static void ranks(const double *v, int n, double *r)
{
    for (int i = 0; i < n; i++) {
        int below = 0, equal = 0;
        for (int j = 0; j < n; j++) {
            below += v[j] < v[i];
            equal += v[j] == v[i];
        }
        r[i] = below + (equal + 1) / 2.0;
    }
}

double validate_spearman(const double *x, const double *y, int n)
{
    if (n < 3)
        return NAN;
    double *rx = malloc(2 * (size_t)n * sizeof *rx);
    if (!rx)
        return NAN;
    double *ry = rx + n, mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    ranks(x, n, rx);
    ranks(y, n, ry);
    for (int i = 0; i < n; i++) {
        mx += rx[i] / n;
        my += ry[i] / n;
    }
    for (int i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    free(rx);
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

void validate_rank_get(const double *predicted, const double *measured, int n, double tolerance,
                       validate_rank *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    out->rho = validate_spearman(predicted, measured, n);
    out->best_predicted = out->best_measured = -1;
    for (int i = 0; i < n; i++) {
        if (out->best_predicted < 0 || predicted[i] > predicted[out->best_predicted])
            out->best_predicted = i;
        if (out->best_measured < 0 || measured[i] > measured[out->best_measured])
            out->best_measured = i;
    }
    if (n == 0)
        return;
    const double best = measured[out->best_measured];
    out->shortfall = best > 0 ? (best - measured[out->best_predicted]) / best : NAN;
    out->best_within = out->shortfall <= tolerance;
}
