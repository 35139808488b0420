/*
 * serve — the serving simulation; the model is described in serve.h.
 *
 * The loop is iteration-level: at each iteration start the scheduler decides
 * the batch (and any preemptions, swaps and admissions), the iteration's time
 * is priced, and the clock moves to its end, where tokens are emitted and
 * finished requests free their blocks. Between iterations with nothing to do
 * the clock jumps to the next arrival. Queues are binary heaps keyed by
 * (priority key, request index), so a run is a function of its inputs alone.
 */
#include "sim/serve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/atomicfile.h"
#include "common/grow.h"
#include "costmodel/iteration.h"
#include "costmodel/sizes.h"
#include "sim/sim.h"

const char *const serve_state_names[3] = {"waiting", "running", "swapped"};

/* Admissions keep this fraction of the device blocks free when something is
 * running, so that running requests can grow without preempting at once
 * (vLLM's watermark). */
#define SERVE_WATERMARK 0.01

void serve_config_init(serve_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_batch = 256;
    c->token_budget = 2048;
    c->block_size = 16;
    c->preempt = PREEMPT_RECOMPUTE;
    c->sched = SCHED_FCFS;
    c->fair_alpha = 10.0;
    c->kv_bytes = 0.0;
    c->mem_util = 0.9;
    c->swap_bytes = 4.0 * 1024 * 1024 * 1024;
}

/* ---- setup */

static double gib(double b) { return b / (1024.0 * 1024 * 1024); }

/* The serving knobs in their ranges. */
static llmsim_status check_config(const serve_config *c, diag *e)
{
    if (c->max_batch < 1 || c->max_batch > (1 << 20))
        return diag_set(e, LLMSIM_EINPUT, "the maximum batch must be 1..%d sequences", 1 << 20);
    if (c->token_budget < c->max_batch || c->token_budget > (1 << 24))
        return diag_set(e, LLMSIM_EINPUT,
                        "the token budget (%lld) must be at least the maximum batch (%d), so that "
                        "every running sequence can decode in one iteration, and at most %d",
                        (long long)c->token_budget, c->max_batch, 1 << 24);
    if (c->block_size < 1 || c->block_size > 65536)
        return diag_set(e, LLMSIM_EINPUT, "the KV block size must be 1..65536 tokens");
    if (!(c->mem_util > 0 && c->mem_util <= 1))
        return diag_set(e, LLMSIM_EINPUT, "the memory fraction must be in (0, 1]");
    if (!(c->swap_bytes >= 0) || !(c->kv_bytes >= 0) || !(c->fair_alpha >= 0) ||
        !isfinite(c->fair_alpha))
        return diag_set(e, LLMSIM_EINPUT,
                        "swap space, KV memory and the fair scheduler's alpha must be >= 0");
    return LLMSIM_OK;
}

/* The device's KV cache: the size asked for (checked against the room that
 * weights and workspace leave), or the memory fraction's share of it, in
 * whole blocks. */
static llmsim_status kv_pool(serve_setup *s, const hwprofile *hw, double work, double deq, diag *e)
{
    const model *m = s->cm.m;
    const serve_config *c = &s->cfg;
    const double cap = cm_hw_tier_capacity(hw, s->dev_tier);
    const double room = cap - s->weights_dev_bytes - work;
    const char *devname = s->has_gpu ? "GPU" : "CPU";
    s->block_bytes = size_kv_block_bytes(m, &s->pol.kv_quant, (double)c->block_size);
    if (c->block_size > m->max_context)
        return diag_set(e, LLMSIM_EINPUT,
                        "a KV block of %d tokens is longer than the model's context (%lld tokens)",
                        c->block_size, (long long)m->max_context);
    if (c->kv_bytes > 0) {
        if (c->kv_bytes * (1 + deq) > room)
            return diag_set(e, LLMSIM_EINPUT,
                            "a KV cache of %.2f GiB does not fit: the %s's %.2f GiB less %.2f GiB of "
                            "weights and %.2f GiB of workspace leave %.2f GiB%s",
                            gib(c->kv_bytes), devname, gib(cap), gib(s->weights_dev_bytes),
                            gib(work), gib(room),
                            deq > 0 ? " (with the dequantized copy of one layer of it)" : "");
        s->kv_bytes = c->kv_bytes;
        if (c->kv_bytes < s->block_bytes)
            return diag_set(e, LLMSIM_EINPUT,
                            "a KV cache of %.0f bytes holds no %d-token block (%.1f KiB); give it "
                            "more memory", c->kv_bytes, c->block_size, s->block_bytes / 1024);
    } else {
        s->kv_bytes = (c->mem_util * cap - s->weights_dev_bytes - work) / (1 + deq);
    }
    s->workspace_bytes = work + deq * fmax(s->kv_bytes, 0.0);
    s->total_blocks = s->kv_bytes > 0 ? (int64_t)floor(s->kv_bytes / s->block_bytes) : 0;
    if (s->total_blocks < 1)
        return diag_set(e, LLMSIM_EINPUT,
                        "no room for the KV cache: %.0f%% of the %s's %.2f GiB less %.2f GiB of "
                        "weights and %.2f GiB of workspace leaves less than one %d-token block "
                        "(%.1f KiB); put weights off the %s, quantize them, or lower the token "
                        "budget", 100 * c->mem_util, devname, gib(cap), gib(s->weights_dev_bytes),
                        gib(work), c->block_size, s->block_bytes / 1024, devname);

    return LLMSIM_OK;
}

/* Swap space: in CPU memory beside the weights placed there (on the disk
 * without a GPU). */
static llmsim_status swap_pool(serve_setup *s, const hwprofile *hw, double cpu_weight_bytes,
                               diag *e)
{
    const serve_config *c = &s->cfg;
    double swap_cap = cm_hw_tier_capacity(hw, s->swap_tier);
    if (s->swap_tier == TIER_CPU)
        swap_cap -= cpu_weight_bytes;
    if (c->swap_bytes > 0 && swap_cap <= 0)
        return diag_set(e, LLMSIM_EINPUT,
                        "hardware '%s' has no %s for swap space: set the swap space to 0 (then "
                        "every preemption recomputes)", hw->name, tier_names[s->swap_tier]);
    if (c->swap_bytes > swap_cap)
        return diag_set(e, LLMSIM_EINPUT,
                        "swap space of %.2f GiB does not fit in the %s tier (%.2f GiB free after "
                        "weights)", gib(c->swap_bytes), tier_names[s->swap_tier], gib(swap_cap));
    s->swap_blocks = (int64_t)floor(c->swap_bytes / s->block_bytes);
    return LLMSIM_OK;
}

llmsim_status serve_setup_init(serve_setup *s, const model *m, const hwprofile *hw,
                               const policy *p, const serve_config *c, diag *e)
{
    memset(s, 0, sizeof *s);
    llmsim_status st = check_config(c, e);
    if (st)
        return st;
    s->cfg = *c;
    s->pol = *p;
    s->pol.kv_block_size = c->block_size;
    s->pol.preempt = c->preempt;
    s->pol.sched = c->sched;
    /* the offline batch shape does not apply: every price is per token row */
    s->pol.gpu_batch_size = 1;
    s->pol.num_gpu_batches = 1;
    s->wl = (workload){.prompt_len = 1, .gen_len = 1, .num_prompts = 1};
    st = cm_setup_init(&s->cm, m, hw, &s->pol, &s->wl, e);
    if (st)
        return st;
    s->has_gpu = hw->gpu.present;
    s->dev_tier = s->has_gpu ? TIER_GPU : TIER_CPU;
    s->swap_tier = s->has_gpu ? TIER_CPU : TIER_DISK;
    s->swap_out = s->has_gpu ? &hw->links[HW_LINK_D2H_PINNED] : &hw->disk.write;
    s->swap_in = s->has_gpu ? &hw->links[HW_LINK_H2D_PINNED] : &hw->disk.read;
    s->max_context = m->max_context;

    const double L = (double)m->num_layers;
    const double wbytes = L * s->cm.w_layer_bytes + s->cm.w_head_bytes;
    const placement *wp = &s->pol.weights;
    s->weights_dev_bytes = wp->f[s->dev_tier] * wbytes;
    /* What is not resident streams in once per iteration; the workspace and
     * the dequantized copy of a quantized cache (costmodel/iteration.h). */
    cm_iter_stream_s(&s->cm, s->stream_dev_s);
    double work = cm_iter_workspace_bytes(&s->cm, s->dev_tier, c->token_budget, c->max_batch);
    const double deq = cm_iter_kv_dequant_per_byte(&s->cm);

    if ((st = kv_pool(s, hw, work, deq, e)))
        return st;
    return swap_pool(s, hw, wp->f[TIER_CPU] * wbytes, e);
}

/* ---- pricing (costmodel/iteration.h), with the swaps of the iteration */

/* An iteration of w, swapping out_blocks out and in_blocks in. */
static double iter_s(const serve_setup *s, cm_iter_memo *pm, const cm_iter *w, int64_t out_blocks,
                     int64_t in_blocks)
{
    double swap = serve_swap_s(s, out_blocks, true) + serve_swap_s(s, in_blocks, false);
    return cm_iter_s(&s->cm, pm, s->stream_dev_s, w) + swap;
}

static double recompute_s(const serve_setup *s, cm_iter_memo *pm, int64_t tokens, int64_t decodes,
                          int64_t decode_ctx)
{
    return cm_iter_recompute_s(&s->cm, pm, s->stream_dev_s, s->cfg.token_budget, tokens, decodes,
                               decode_ctx);
}

double serve_swap_s(const serve_setup *s, int64_t blocks, bool out)
{
    return cm_kv_blocks_copy_s(&s->cm, out ? s->swap_out : s->swap_in, blocks, s->block_bytes);
}

double serve_iteration_s(const serve_setup *s, const serve_chunk *ch, int n, int64_t swap_out_blocks,
                         int64_t swap_in_blocks)
{
    cm_iter w = {0};
    for (int i = 0; i < n; i++)
        cm_iter_add(&s->cm, &w, ch[i].ctx, ch[i].tokens, ch[i].emits);
    return iter_s(s, NULL, &w, swap_out_blocks, swap_in_blocks);
}

double serve_recompute_s(const serve_setup *s, int64_t tokens, int decodes, int64_t decode_ctx)
{
    return recompute_s(s, NULL, tokens, decodes, decode_ctx);
}

/* ---- the run */

enum { ST_PENDING = 3, ST_DONE = 4 };

typedef struct rq {
    int64_t prompt, output; /* as asked */
    int64_t gen;            /* tokens emitted */
    int64_t ctx;            /* tokens whose K and V are cached (device or swap) */
    int64_t blocks;         /* blocks held, on the device or in swap space */
    double arrival, weight, key;
    double since;           /* when it entered its state */
    double pf_s, dec_s;     /* fair: alone, a prompt token's share and a decode step */
    long long stamp;        /* the iteration that last scheduled it */
    uint8_t state;
} rq;

/* A min-heap of request indices by (key, index). */
typedef struct rheap {
    uint32_t *a;
    size_t n;
} rheap;

static bool before(const rq *R, uint32_t x, uint32_t y)
{
    return R[x].key < R[y].key || (R[x].key == R[y].key && x < y);
}

static void heap_push(rheap *h, const rq *R, uint32_t id)
{
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(R, id, h->a[p]))
            break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = id;
}

static uint32_t heap_pop(rheap *h, const rq *R)
{
    uint32_t top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        uint32_t mv = last;
        if (l < h->n && before(R, h->a[l], mv)) {
            m = l;
            mv = h->a[l];
        }
        if (r < h->n && before(R, h->a[r], mv))
            m = r;
        if (m == i)
            break;
        h->a[i] = h->a[m];
        i = m;
    }
    if (h->n)
        h->a[i] = last;
    return top;
}

typedef struct run_state {
    const serve_setup *s;
    rq *R;
    size_t n;
    cm_iter_memo pm;
    rheap waiting, swapped;
    uint32_t *run;          /* running, sorted by (key, index) */
    int nrun;
    int64_t free_blocks, swap_free;
    serve_result *res;
    size_t spans_cap, kv_cap;
    bool oom;
    /* the loop */
    double t;               /* the clock */
    size_t next, done;      /* the next request to arrive; requests finished */
    long long stamp;        /* the iteration being scheduled */
    int64_t watermark;      /* device blocks admissions leave free */
    int last_pct;           /* progress reported */
    /* the iteration's chunks, by running index: serve_chunk, request */
    serve_chunk *ch;
    uint32_t *chid, *order;
} run_state;

/* What one iteration schedules: its chunks (in run_state) and swaps. */
typedef struct iter_sched {
    int64_t budget, out_blocks, in_blocks; /* tokens left; blocks swapped out, in */
    int nch;
    bool preempted;
} iter_sched;

static int64_t blocks_for(const serve_setup *s, int64_t tokens)
{
    return (tokens + s->cfg.block_size - 1) / s->cfg.block_size;
}

static void span(run_state *rs, uint32_t id, double now)
{
    rq *r = &rs->R[id];
    if (rs->s->cfg.keep_spans && r->state <= SERVE_SWAPPED && now > r->since) {
        serve_result *res = rs->res;
        serve_span *p = llmsim_grow(res->spans, res->nspans, &rs->spans_cap, sizeof *p, 1024);
        if (!p) {
            rs->oom = true;
            return;
        }
        res->spans = p;
        res->spans[res->nspans++] = (serve_span){id, r->state, r->since, now};
    }
}

static void set_state(run_state *rs, uint32_t id, uint8_t state, double now)
{
    span(rs, id, now);
    rs->R[id].state = state;
    rs->R[id].since = now;
}

static void run_insert(run_state *rs, uint32_t id)
{
    int lo = 0, hi = rs->nrun;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (before(rs->R, rs->run[mid], id))
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(rs->run + lo + 1, rs->run + lo, (size_t)(rs->nrun - lo) * sizeof *rs->run);
    rs->run[lo] = id;
    rs->nrun++;
}

/* Fair: what the request costs alone on the machine, per prompt token (its
 * prompt in chunks of the budget, amortized) and per decode step (at its mean
 * context); set when it arrives. */
static void alone_rates(run_state *rs, rq *r)
{
    const serve_setup *s = rs->s;
    /* the prompt's chunks next to no decodes: what recomputing it would cost */
    r->pf_s = recompute_s(s, &rs->pm, r->prompt, 0, 0) / (double)r->prompt;
    cm_iter w = {0};
    cm_iter_add(&s->cm, &w, r->prompt + r->output / 2, 1, true);
    r->dec_s = iter_s(s, &rs->pm, &w, 0, 0);
}

/* The priority key (smaller first): the arrival for fcfs; for fair the
 * virtual deadline arrival + alpha * remaining work / weight, the remaining
 * work being the prompt tokens still to prefill and the tokens still to emit
 * at the request's rates alone. */
static double key_of(const run_state *rs, const rq *r)
{
    if (rs->s->cfg.sched != SCHED_FAIR)
        return r->arrival;
    int64_t pending = r->prompt + r->gen - r->ctx; /* >= 1: the last one emits */
    double work = (double)(pending - 1) * r->pf_s + (double)(r->output - r->gen) * r->dec_s;
    return r->arrival + rs->s->cfg.fair_alpha * work / r->weight;
}

/* Fair: the running requests' keys fall as they progress; re-rank them
 * (insertion sort: the order barely changes between iterations). */
static void rerank_running(run_state *rs)
{
    for (int i = 0; i < rs->nrun; i++)
        rs->R[rs->run[i]].key = key_of(rs, &rs->R[rs->run[i]]);
    for (int i = 1; i < rs->nrun; i++) {
        uint32_t id = rs->run[i];
        int j = i;
        for (; j > 0 && before(rs->R, id, rs->run[j - 1]); j--)
            rs->run[j] = rs->run[j - 1];
        rs->run[j] = id;
    }
}

/* Preempt the lowest-priority running request that this iteration has not
 * scheduled, at time now; returns it. *out_blocks collects the blocks swapped
 * out in this iteration. */
static uint32_t preempt_one(run_state *rs, long long stamp, double now, int64_t *out_blocks)
{
    const serve_setup *s = rs->s;
    serve_result *res = rs->res;
    int pos = rs->nrun - 1;
    while (pos > 0 && rs->R[rs->run[pos]].stamp == stamp)
        pos--;
    uint32_t id = rs->run[pos];
    memmove(rs->run + pos, rs->run + pos + 1, (size_t)(rs->nrun - pos - 1) * sizeof *rs->run);
    rs->nrun--;
    rq *r = &rs->R[id];
    preemption how = s->cfg.preempt;
    if (how == PREEMPT_ADAPTIVE) {
        int64_t dec = 0, dctx = 0;
        for (int i = 0; i < rs->nrun; i++) {
            const rq *o = &rs->R[rs->run[i]];
            if (o->prompt + o->gen - o->ctx == 1) {
                dec++;
                dctx += o->ctx + 1;
            }
        }
        double swap = serve_swap_s(s, r->blocks, true) + serve_swap_s(s, r->blocks, false);
        double recompute = recompute_s(s, &rs->pm, r->ctx, dec, dctx);
        how = swap <= recompute ? PREEMPT_SWAP : PREEMPT_RECOMPUTE;
    }
    if (how == PREEMPT_SWAP && r->blocks > rs->swap_free) {
        res->swap_full++;
        how = PREEMPT_RECOMPUTE;
    }
    rs->free_blocks += r->blocks;
    res->events++;
    if (how == PREEMPT_SWAP) {
        rs->swap_free -= r->blocks;
        *out_blocks += r->blocks;
        res->swap_out_bytes += (double)r->blocks * s->block_bytes;
        res->preempt_swap++;
        res->req[id].swaps++;
        set_state(rs, id, SERVE_SWAPPED, now);
        r->key = key_of(rs, r);
        heap_push(&rs->swapped, rs->R, id);
    } else {
        res->recomputed_tokens += (double)r->ctx;
        r->ctx = 0;
        r->blocks = 0;
        res->preempt_recompute++;
        res->req[id].recomputes++;
        set_state(rs, id, SERVE_WAITING, now);
        r->key = key_of(rs, r);
        heap_push(&rs->waiting, rs->R, id);
    }
    return id;
}

static bool kv_sample(run_state *rs, double t0, double dt)
{
    serve_result *res = rs->res;
    int64_t dev = rs->s->total_blocks - rs->free_blocks, swp = rs->s->swap_blocks - rs->swap_free;
    if (res->nkv) {
        serve_kv_sample *last = &res->kv[res->nkv - 1];
        if (last->dev_blocks == dev && last->swap_blocks == swp &&
            fabs(last->time_s + last->dur_s - t0) <= 1e-12 * fmax(1.0, t0)) {
            last->dur_s += dt; /* the same use, one sample */
            return true;
        }
    }
    serve_kv_sample *p = llmsim_grow(res->kv, res->nkv, &rs->kv_cap, sizeof *p, 4096);
    if (!p)
        return false;
    res->kv = p;
    res->kv[res->nkv++] = (serve_kv_sample){t0, dt, dev, swp};
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Mean and nearest-rank percentiles; sorts v. */
static serve_stat stat_of(double *v, size_t n)
{
    serve_stat st = {0};
    if (!n)
        return st;
    qsort(v, n, sizeof *v, cmp_double);
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

static llmsim_status aggregate(const serve_setup *s, const serve_requests *q, serve_result *r,
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
    r->ttft = stat_of(v, n);
    for (size_t i = 0; i < n; i++)
        v[i] = r->req[i].finish_s - q->r[i].arrival_s;
    r->e2e = stat_of(v, n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (q->r[i].output_len > 1)
            v[k++] = (r->req[i].finish_s - r->req[i].first_token_s) / (double)(q->r[i].output_len - 1);
    r->tpot = stat_of(v, k);
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
    return LLMSIM_OK;
}

/* "FILE:LINE: request N" for a trace, "request N" for generated ones. */
static llmsim_status bad_request(diag *e, const serve_requests *q, size_t i, const char *what)
{
    if (q->source && q->r[i].line > 0)
        return diag_at(e, LLMSIM_EINPUT, q->source, (size_t)q->r[i].line, 0, "request %zu %s", i + 1,
                       what);
    return diag_set(e, LLMSIM_EINPUT, "request %zu %s", i + 1, what);
}

static llmsim_status check_requests(const serve_setup *s, const serve_requests *q, diag *e)
{
    char what[320];
    if (!q->n)
        return diag_set(e, LLMSIM_EINPUT, "no requests to serve");
    if (q->n > UINT32_MAX / 2)
        return diag_set(e, LLMSIM_EINPUT, "too many requests (%zu)", q->n);
    for (size_t i = 0; i < q->n; i++) {
        const serve_request *r = &q->r[i];
        if (r->prompt_len < 1 || r->output_len < 1 || !(r->weight > 0) || !(r->arrival_s >= 0) ||
            (i && r->arrival_s < q->r[i - 1].arrival_s))
            return bad_request(e, q, i,
                               "is malformed: lengths must be >= 1, the weight > 0 and arrivals "
                               "in order");
        if (r->prompt_len + r->output_len > s->max_context) {
            snprintf(what, sizeof what,
                     "has prompt_len + output_len = %lld, more than the model's context of %lld "
                     "tokens; shorten it", (long long)(r->prompt_len + r->output_len),
                     (long long)s->max_context);
            return bad_request(e, q, i, what);
        }
        int64_t need = blocks_for(s, r->prompt_len + r->output_len - 1);
        if (need > s->total_blocks) {
            snprintf(what, sizeof what,
                     "needs %lld KV blocks but the cache holds %lld: give the KV cache more "
                     "memory or shorten the request", (long long)need, (long long)s->total_blocks);
            return bad_request(e, q, i, what);
        }
    }
    return LLMSIM_OK;
}

/* Every request finished once with its output, every block came back, and
 * what went out to swap came back in. A failure is a bug in this file. */
static llmsim_status check_conservation(const run_state *rs, diag *e)
{
    const serve_result *res = rs->res;
    for (size_t i = 0; i < rs->n; i++)
        if (rs->R[i].state != ST_DONE || rs->R[i].gen != rs->R[i].output || rs->R[i].blocks)
            return diag_set(e, LLMSIM_EFAIL, "internal error: request %zu did not finish cleanly",
                            i + 1);
    if (rs->free_blocks != rs->s->total_blocks || rs->swap_free != rs->s->swap_blocks ||
        res->swap_out_bytes != res->swap_in_bytes || rs->nrun || rs->waiting.n || rs->swapped.n)
        return diag_set(e, LLMSIM_EFAIL, "internal error: KV blocks or swap bytes not conserved");
    return LLMSIM_OK;
}

static void run_free(run_state *rs)
{
    free(rs->R);
    cm_iter_memo_free(&rs->pm);
    free(rs->ch);
    free(rs->chid);
    free(rs->order);
    free(rs->waiting.a);
    free(rs->swapped.a);
    free(rs->run);
}

/* The run's memory and its requests, all pending. */
static llmsim_status run_init(run_state *rs, const serve_requests *q, diag *e)
{
    const serve_setup *s = rs->s;
    const serve_config *c = &s->cfg;
    serve_result *res = rs->res;
    const size_t n = q->n;
    rs->R = calloc(n, sizeof *rs->R);
    rs->waiting.a = malloc(n * sizeof(uint32_t));
    rs->swapped.a = malloc(n * sizeof(uint32_t));
    rs->run = malloc((size_t)c->max_batch * sizeof(uint32_t));
    res->req = calloc(n, sizeof *res->req);
    rs->ch = malloc((size_t)c->max_batch * sizeof *rs->ch);
    rs->chid = malloc((size_t)c->max_batch * sizeof *rs->chid);
    rs->order = malloc((size_t)c->max_batch * sizeof *rs->order);
    if (cm_iter_memo_init(&rs->pm, &s->cm, c->token_budget, c->max_batch, e) != LLMSIM_OK ||
        !rs->R || !rs->waiting.a || !rs->swapped.a || !rs->run || !res->req || !rs->ch ||
        !rs->chid || !rs->order)
        return diag_set(e, LLMSIM_EFAIL, "out of memory for %zu requests", n);
    rs->free_blocks = s->total_blocks;
    rs->swap_free = s->swap_blocks;
    for (size_t i = 0; i < n; i++) {
        rq *r = &rs->R[i];
        r->prompt = q->r[i].prompt_len;
        r->output = q->r[i].output_len;
        r->arrival = q->r[i].arrival_s;
        r->weight = q->r[i].weight;
        r->state = ST_PENDING;
        res->prompt_tokens += (double)r->prompt;
        res->output_tokens += (double)r->output;
    }
    rs->watermark = (int64_t)floor(SERVE_WATERMARK * (double)s->total_blocks);
    rs->last_pct = -1;
    return LLMSIM_OK;
}

/* The requests that have arrived by now wait, keyed by the scheduler. */
static void arrivals(run_state *rs)
{
    while (rs->next < rs->n && rs->R[rs->next].arrival <= rs->t) {
        rq *r = &rs->R[rs->next];
        if (rs->s->cfg.sched == SCHED_FAIR)
            alone_rates(rs, r);
        r->key = key_of(rs, r);
        set_state(rs, (uint32_t)rs->next, SERVE_WAITING, r->arrival);
        heap_push(&rs->waiting, rs->R, (uint32_t)rs->next);
        rs->res->events++;
        rs->next++;
    }
}

/* Request id's next chunk of tok tokens joins the iteration. */
static inline void chunk_add(run_state *rs, iter_sched *it, uint32_t id, int64_t tok)
{
    rq *r = &rs->R[id];
    r->stamp = rs->stamp;
    rs->ch[it->nch] = (serve_chunk){r->ctx, tok, r->ctx + tok == r->prompt + r->gen};
    rs->chid[it->nch++] = id;
    it->budget -= tok;
}

/* Running requests: the decoding first, then those in their prefill, each
 * in priority order; the budget (>= max batch) always covers the decodes,
 * so a long prefill chunk never stalls them. A request whose next blocks do
 * not fit preempts others (or itself) first. */
static void schedule_running(run_state *rs, iter_sched *it)
{
    int norder = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < rs->nrun; i++) {
            const rq *r = &rs->R[rs->run[i]];
            if ((r->prompt + r->gen - r->ctx == 1) == (pass == 0))
                rs->order[norder++] = rs->run[i];
        }
    for (int k = 0; k < norder && it->budget > 0; k++) {
        uint32_t id = rs->order[k];
        rq *r = &rs->R[id];
        if (r->state != SERVE_RUNNING)
            continue; /* preempted earlier in this iteration */
        int64_t pending = r->prompt + r->gen - r->ctx;
        int64_t tok = pending < it->budget ? pending : it->budget;
        int64_t need = blocks_for(rs->s, r->ctx + tok) - r->blocks;
        if (need < 0)
            need = 0; /* blocks reserved at admission */
        bool self = false;
        while (need > rs->free_blocks) {
            self = preempt_one(rs, rs->stamp, rs->t, &it->out_blocks) == id;
            it->preempted = true;
            if (self)
                break;
        }
        if (self)
            continue;
        rs->free_blocks -= need;
        r->blocks += need;
        chunk_add(rs, it, id, tok);
    }
}

/* Then, unless memory ran short, the swapped and the waiting, merged in
 * priority order; admission stops at the first that does not fit. A waiting
 * request reserves the blocks of its whole prefill (its prompt and what it
 * had generated before a recompute), as vLLM's can_allocate does, so that it
 * cannot be preempted in mid-prefill by the growth of the others. */
static void admit(run_state *rs, iter_sched *it)
{
    const serve_setup *s = rs->s;
    while (!it->preempted && rs->nrun < s->cfg.max_batch && it->budget > 0 &&
           (rs->swapped.n || rs->waiting.n)) {
        bool from_swap = rs->swapped.n &&
                         (!rs->waiting.n || before(rs->R, rs->swapped.a[0], rs->waiting.a[0]));
        rheap *h = from_swap ? &rs->swapped : &rs->waiting;
        uint32_t id = h->a[0];
        rq *r = &rs->R[id];
        int64_t pending = r->prompt + r->gen - r->ctx;
        int64_t tok = pending < it->budget ? pending : it->budget;
        int64_t need = from_swap ? blocks_for(s, r->ctx + tok) : blocks_for(s, r->prompt + r->gen);
        if (need < r->blocks)
            need = r->blocks;
        if (need > rs->free_blocks || (rs->nrun && rs->free_blocks - need < rs->watermark))
            break;
        heap_pop(h, rs->R);
        if (from_swap) {
            it->in_blocks += r->blocks;
            rs->swap_free += r->blocks;
            rs->res->swap_in_bytes += (double)r->blocks * s->block_bytes;
            rs->res->events++;
        }
        rs->free_blocks -= need;
        r->blocks = need;
        set_state(rs, id, SERVE_RUNNING, rs->t);
        run_insert(rs, id);
        chunk_add(rs, it, id, tok);
    }
}

/* At the iteration's end every chunk's tokens are cached, those that emit
 * emit, and finished requests free their blocks and leave the batch. */
static void emit(run_state *rs, const iter_sched *it, void (*progress)(double, void *),
                 void *progress_ctx)
{
    serve_result *res = rs->res;
    bool finished = false;
    for (int k = 0; k < it->nch; k++) {
        uint32_t id = rs->chid[k];
        rq *r = &rs->R[id];
        r->ctx += rs->ch[k].tokens;
        if (!rs->ch[k].emits)
            continue;
        if (r->gen++ == 0)
            res->req[id].first_token_s = rs->t;
        if (r->gen == r->output) {
            rs->free_blocks += r->blocks;
            r->blocks = 0;
            res->req[id].finish_s = rs->t;
            set_state(rs, id, ST_DONE, rs->t);
            res->events++;
            rs->done++;
            finished = true;
        }
    }
    if (!finished)
        return;
    int j = 0;
    for (int i = 0; i < rs->nrun; i++)
        if (rs->R[rs->run[i]].state != ST_DONE)
            rs->run[j++] = rs->run[i];
    rs->nrun = j;
    int pct = (int)(100.0 * (double)rs->done / (double)rs->n);
    if (progress && pct != rs->last_pct) {
        progress((double)rs->done / (double)rs->n, progress_ctx);
        rs->last_pct = pct;
    }
}

/* One iteration: schedule, price, move the clock, emit. */
static llmsim_status iteration(run_state *rs, void (*progress)(double, void *), void *progress_ctx,
                               diag *e)
{
    const serve_setup *s = rs->s;
    if (s->cfg.sched == SCHED_FAIR)
        rerank_running(rs);
    rs->stamp++;
    iter_sched it = {.budget = s->cfg.token_budget};
    schedule_running(rs, &it);
    admit(rs, &it);
    if (!it.nch)
        return diag_set(e, LLMSIM_EFAIL, "internal error: an iteration with nothing to do");
    cm_iter w = {0};
    for (int k = 0; k < it.nch; k++)
        cm_iter_add(&s->cm, &w, rs->ch[k].ctx, rs->ch[k].tokens, rs->ch[k].emits);
    double dt = iter_s(s, &rs->pm, &w, it.out_blocks, it.in_blocks);
    rs->res->swap_s += serve_swap_s(s, it.out_blocks, true) + serve_swap_s(s, it.in_blocks, false);
    if (!kv_sample(rs, rs->t, dt))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    rs->t += dt;
    rs->res->iterations++;
    rs->res->events++;
    emit(rs, &it, progress, progress_ctx);
    if (rs->oom)
        return diag_set(e, LLMSIM_EFAIL, "out of memory for the trace spans");
    return LLMSIM_OK;
}

llmsim_status serve_run(const serve_setup *s, const serve_requests *q, serve_result *res,
                        void (*progress)(double frac, void *ctx), void *progress_ctx, diag *e)
{
    memset(res, 0, sizeof *res);
    llmsim_status st = check_requests(s, q, e);
    if (st)
        return st;
    run_state rs = {.s = s, .n = q->n, .res = res};
    if ((st = run_init(&rs, q, e)))
        goto out;
    while (rs.done < rs.n) {
        arrivals(&rs);
        if (!rs.nrun && !rs.waiting.n && !rs.swapped.n) {
            /* idle until the next arrival; the KV use stays what it is */
            double next_t = rs.R[rs.next].arrival;
            if (res->nkv && !kv_sample(&rs, rs.t, next_t - rs.t)) {
                st = diag_set(e, LLMSIM_EFAIL, "out of memory");
                goto out;
            }
            rs.t = next_t;
            continue;
        }
        if ((st = iteration(&rs, progress, progress_ctx, e)))
            goto out;
    }
    res->n = rs.n;
    res->end_s = rs.t;
    if ((st = check_conservation(&rs, e)) || (st = aggregate(s, q, res, e)))
        goto out;
out:
    run_free(&rs);
    if (st)
        serve_result_free(res);
    return st;
}

void serve_result_free(serve_result *r)
{
    free(r->req);
    free(r->kv);
    free(r->spans);
    memset(r, 0, sizeof *r);
}

/* ---- Chrome trace */

typedef struct serve_trace {
    const serve_setup *s;
    const serve_result *r;
} serve_trace;

/* A thread per request, a span per state it was in, the KV block counters. */
static void serve_trace_events(FILE *f, const void *ctx)
{
    const serve_setup *s = ((const serve_trace *)ctx)->s;
    const serve_result *r = ((const serve_trace *)ctx)->r;
    char name[32];
    for (size_t i = 0; i < r->n; i++) {
        snprintf(name, sizeof name, "request %zu", i + 1);
        sim_trace_thread(f, (long long)(i + 1), name);
    }
    for (size_t k = 0; k < r->nspans; k++) {
        const serve_span *sp = &r->spans[k];
        fprintf(f, ",\n{\"name\":\"%s\",\"cat\":\"request\",\"ph\":\"X\",\"pid\":1,\"tid\":%u,"
                   "\"ts\":%.3f,\"dur\":%.3f}", serve_state_names[sp->state], sp->req + 1,
                1e6 * sp->start_s, 1e6 * (sp->end_s - sp->start_s));
    }
    for (size_t k = 0; k < r->nkv; k++)
        fprintf(f, ",\n{\"name\":\"kv blocks\",\"ph\":\"C\",\"pid\":1,\"ts\":%.3f,\"args\":"
                   "{\"%s\":%lld,\"swap\":%lld}}", 1e6 * r->kv[k].time_s,
                tier_names[s->dev_tier], (long long)r->kv[k].dev_blocks,
                (long long)r->kv[k].swap_blocks);
    fprintf(f, ",\n{\"name\":\"kv blocks\",\"ph\":\"C\",\"pid\":1,\"ts\":%.3f,\"args\":"
               "{\"%s\":0,\"swap\":0}}", 1e6 * r->end_s, tier_names[s->dev_tier]);
}

llmsim_status serve_trace_write(const serve_setup *s, const serve_result *r, const char *title,
                                const char *path, diag *e)
{
    const serve_trace ctx = {s, r};
    return sim_trace_file(path, title, serve_trace_events, &ctx, e);
}
