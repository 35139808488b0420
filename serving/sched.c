/*
 * sched — the serving scheduler. See sched.h.
 */
#include "serving/sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/grow.h"

/* Admissions keep this fraction of the device blocks free when something is
 * running, so that running requests can grow without preempting at once
 * (vLLM's watermark). */
#define SERVE_WATERMARK 0.01

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
    int64_t reg;            /* prefix cache: its prompt's full blocks looked at for registration */
    uint8_t state;
    bool admitted;          /* scheduled at least once */
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

struct serve_sched {
    const serve_setup *s;
    const serve_requests *q;
    rq *R;
    size_t n;
    cm_iter_memo pm;
    rheap waiting, swapped;
    uint32_t *run;          /* running, sorted by (key, index) */
    int nrun;
    int64_t free_blocks, swap_free;
    serve_result *res;
    size_t spans_cap, kv_cap, iter_cap;
    bool oom;
    bool broken;            /* an internal error (a bug in this file) */
    /* the loop */
    double t;               /* the clock */
    size_t next, done;      /* the next request to arrive; requests finished */
    long long stamp;        /* the iteration being scheduled */
    int64_t watermark;      /* device blocks admissions leave free */
    int last_pct;           /* progress reported */
    /* the iteration's chunks, by running index: serve_chunk, request */
    serve_chunk *ch;
    uint32_t *chid, *order;
    /* its preemptions and swap-ins, in the order decided */
    serve_preempt *pre;
    uint32_t *swin;
    int npre, nin;
    /* the prefix cache: the keys (own when declared here), each key's entry
     * while its request holds it (-1: not a cached block), and the events
     * of the iteration being formed and of the last completion */
    const serve_prefix_keys *keys;
    serve_prefix_keys own_keys;
    serve_pcache pc;
    int32_t *held;
    int32_t *evicted;
    serve_prefix_hit *hits;
    serve_prefix_reg *regs;
    size_t nevict, nhits, nregs, cap_evict, cap_hits, cap_regs;
};

/* What one iteration schedules: its chunks (in serve_sched) and swaps. */
typedef struct iter_sched {
    int64_t budget, out_blocks, in_blocks; /* tokens left; blocks swapped out, in */
    int nch;
    bool preempted;
} iter_sched;

static int64_t blocks_for(const serve_setup *s, int64_t tokens)
{
    return (tokens + s->cfg.block_size - 1) / s->cfg.block_size;
}

/* Blocks a request can have now: the free ones and the cached ones nobody
 * holds. */
static int64_t avail(const serve_sched *rs)
{
    return rs->free_blocks + rs->pc.evictable;
}

/* n new blocks: free ones first, then cached ones nobody holds, released
 * longest ago first (n <= avail). */
static void take_blocks(serve_sched *rs, int64_t n)
{
    int64_t f = n < rs->free_blocks ? n : rs->free_blocks;
    rs->free_blocks -= f;
    for (n -= f; n > 0; n--) {
        int32_t *p = llmsim_grow(rs->evicted, rs->nevict, &rs->cap_evict, sizeof *p, 64);
        if (!p) {
            rs->oom = true;
            return;
        }
        rs->evicted = p;
        rs->evicted[rs->nevict++] = serve_pcache_evict(&rs->pc);
        rs->res->prefix_evicted++;
    }
}

/* Request id's device blocks let go, the last first: cached ones lose its
 * reference, its own are free. */
static void drop_blocks(serve_sched *rs, uint32_t id)
{
    rq *r = &rs->R[id];
    if (!rs->keys) {
        rs->free_blocks += r->blocks;
        return;
    }
    int32_t *h = rs->held + rs->keys->off[id];
    const int64_t nk = rs->keys->off[id + 1] - rs->keys->off[id];
    for (int64_t j = r->blocks - 1; j >= 0; j--) {
        if (j < nk && h[j] >= 0) {
            serve_pcache_unref(&rs->pc, h[j]);
            h[j] = -1;
        } else {
            rs->free_blocks++;
        }
    }
}

/* The leading prompt blocks of request id that the cache holds, leaving at
 * least one token of its prefill to compute; *idle: how many of them nobody
 * holds (taking them costs evictable blocks). */
static int64_t cached_prefix(const serve_sched *rs, uint32_t id, int64_t *idle)
{
    *idle = 0;
    if (!rs->keys)
        return 0;
    const rq *r = &rs->R[id];
    const uint64_t *key = rs->keys->key + rs->keys->off[id];
    int64_t lim = rs->keys->off[id + 1] - rs->keys->off[id];
    const int64_t most = (r->prompt + r->gen - 1) / rs->s->cfg.block_size;
    if (lim > most)
        lim = most;
    int64_t j = 0;
    for (; j < lim; j++) {
        int32_t en = serve_pcache_find(&rs->pc, key[j]);
        if (en < 0)
            break;
        *idle += rs->pc.ent[en].refs == 0;
    }
    return j;
}

/* Request id, admitted from waiting, takes its first `hit` blocks from the
 * cache. */
static void take_cached(serve_sched *rs, uint32_t id, int64_t hit)
{
    const uint64_t *key = rs->keys->key + rs->keys->off[id];
    int32_t *h = rs->held + rs->keys->off[id];
    for (int64_t j = 0; j < hit; j++) {
        serve_prefix_hit *p = llmsim_grow(rs->hits, rs->nhits, &rs->cap_hits, sizeof *p, 64);
        if (!p) {
            rs->oom = true;
            return;
        }
        rs->hits = p;
        h[j] = serve_pcache_find(&rs->pc, key[j]);
        serve_pcache_ref(&rs->pc, h[j]);
        rs->hits[rs->nhits++] = (serve_prefix_hit){id, h[j]};
    }
}

/* Request id's prompt blocks that its cached tokens now fill are
 * registered under their keys, unless the key is cached already. */
static void register_blocks(serve_sched *rs, uint32_t id)
{
    rq *r = &rs->R[id];
    const int64_t bs = rs->s->cfg.block_size;
    const int64_t nk = rs->keys->off[id + 1] - rs->keys->off[id];
    const uint64_t *key = rs->keys->key + rs->keys->off[id];
    int32_t *h = rs->held + rs->keys->off[id];
    for (; r->reg < nk && (r->reg + 1) * bs <= r->ctx; r->reg++) {
        const int64_t j = r->reg;
        if (h[j] >= 0 || serve_pcache_find(&rs->pc, key[j]) >= 0)
            continue; /* found in the cache, or computed twice: the first stays */
        serve_prefix_reg *p = llmsim_grow(rs->regs, rs->nregs, &rs->cap_regs, sizeof *p, 64);
        if (!p) {
            rs->oom = true;
            return;
        }
        rs->regs = p;
        if ((h[j] = serve_pcache_insert(&rs->pc, key[j])) < 0) {
            rs->broken = true; /* one entry per device block: the cache cannot be full */
            return;
        }
        rs->regs[rs->nregs++] = (serve_prefix_reg){id, h[j], j};
    }
}

static void span(serve_sched *rs, uint32_t id, double now)
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

static void set_state(serve_sched *rs, uint32_t id, uint8_t state, double now)
{
    span(rs, id, now);
    if (state == SERVE_RUNNING && !rs->R[id].admitted) {
        rs->R[id].admitted = true;
        rs->res->req[id].admitted_s = now;
    }
    rs->R[id].state = state;
    rs->R[id].since = now;
}

static void run_insert(serve_sched *rs, uint32_t id)
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
static void alone_rates(serve_sched *rs, rq *r)
{
    const serve_setup *s = rs->s;
    /* the prompt's chunks next to no decodes: what recomputing it would cost */
    r->pf_s = serve_recompute_price_s(s, &rs->pm, r->prompt, 0, 0) / (double)r->prompt;
    cm_iter w = {0};
    cm_iter_add(&s->cm, &w, r->prompt + r->output / 2, 1, true);
    r->dec_s = serve_price_s(s, &rs->pm, &w, 0, 0);
}

/* The priority key (smaller first): the arrival for fcfs; for fair the
 * virtual deadline arrival + alpha * remaining work / weight, the remaining
 * work being the prompt tokens still to prefill and the tokens still to emit
 * at the request's rates alone. */
static double key_of(const serve_sched *rs, const rq *r)
{
    if (rs->s->cfg.sched != SCHED_FAIR)
        return r->arrival;
    int64_t pending = r->prompt + r->gen - r->ctx; /* >= 1: the last one emits */
    double work = (double)(pending - 1) * r->pf_s + (double)(r->output - r->gen) * r->dec_s;
    return r->arrival + rs->s->cfg.fair_alpha * work / r->weight;
}

/* Fair: the running requests' keys fall as they progress; re-rank them
 * (insertion sort: the order barely changes between iterations). */
static void rerank_running(serve_sched *rs)
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
static uint32_t preempt_one(serve_sched *rs, long long stamp, double now, int64_t *out_blocks)
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
    /* both prices, as the cost model gives them: adaptive takes the cheaper,
     * and each event carries its own for validation */
    int64_t dec = 0, dctx = 0;
    for (int i = 0; i < rs->nrun; i++) {
        const rq *o = &rs->R[rs->run[i]];
        if (o->prompt + o->gen - o->ctx == 1) {
            dec++;
            dctx += o->ctx + 1;
        }
    }
    const double swap = serve_swap_s(s, r->blocks, true) + serve_swap_s(s, r->blocks, false);
    /* a recompute prefills again what the cache will not give back */
    int64_t idle, again = r->ctx - cached_prefix(rs, id, &idle) * s->cfg.block_size;
    if (again < 0)
        again = 0;
    const double recompute = again ? serve_recompute_price_s(s, &rs->pm, again, dec, dctx) : 0;
    preemption how = s->cfg.preempt;
    if (how == PREEMPT_ADAPTIVE)
        how = swap <= recompute ? PREEMPT_SWAP : PREEMPT_RECOMPUTE;
    if (how == PREEMPT_SWAP && r->blocks > rs->swap_free) {
        res->swap_full++;
        how = PREEMPT_RECOMPUTE;
    }
    rs->pre[rs->npre++] =
        (serve_preempt){id, (uint8_t)how, r->blocks, r->ctx, how == PREEMPT_SWAP ? swap : recompute};
    drop_blocks(rs, id);
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

static bool kv_sample(serve_sched *rs, double t0, double dt)
{
    serve_result *res = rs->res;
    int64_t dev = rs->s->total_blocks - avail(rs), swp = rs->s->swap_blocks - rs->swap_free;
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

/* The row of iteration it, ending at end_s (before its tokens are emitted:
 * the blocks it ran with). */
static bool iter_row(serve_sched *rs, const serve_iter *it, double end_s)
{
    serve_result *res = rs->res;
    serve_iter_row *p = llmsim_grow(res->iters, (size_t)res->iterations, &rs->iter_cap, sizeof *p, 4096);
    if (!p)
        return false;
    res->iters = p;
    serve_iter_row *w = &p[res->iterations];
    *w = (serve_iter_row){.start_s = it->start_s, .end_s = end_s, .seqs = it->nch,
                          .dev_blocks = rs->s->total_blocks - avail(rs),
                          .swap_blocks = rs->s->swap_blocks - rs->swap_free,
                          .out_blocks = it->out_blocks, .in_blocks = it->in_blocks};
    for (int c = 0; c < it->nch; c++) {
        if (it->ch[c].tokens == 1 && it->ch[c].ctx >= rs->R[it->req[c]].prompt)
            w->decode_tokens++;
        else
            w->prefill_tokens += it->ch[c].tokens;
    }
    for (int k = 0; k < it->npre; k++)
        *(it->pre[k].how == PREEMPT_SWAP ? &w->preempt_swap : &w->preempt_recompute) += 1;
    w->hit_tokens = (int64_t)it->nhit * rs->s->cfg.block_size;
    return true;
}

/* "FILE:LINE: request N" for a trace, "request N" for generated ones. */
static llmsim_status bad_request(diag *e, const serve_requests *q, size_t i, const char *what)
{
    if (q->source && q->r[i].line > 0)
        return diag_at(e, LLMSIM_EINPUT, q->source, (size_t)q->r[i].line, 0, "request %zu %s", i + 1,
                       what);
    return diag_set(e, LLMSIM_EINPUT, "request %zu %s", i + 1, what);
}

llmsim_status serve_sched_check(const serve_setup *s, const serve_requests *q, diag *e)
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
static llmsim_status check_conservation(const serve_sched *rs, diag *e)
{
    const serve_result *res = rs->res;
    for (size_t i = 0; i < rs->n; i++)
        if (rs->R[i].state != ST_DONE || rs->R[i].gen != rs->R[i].output || rs->R[i].blocks)
            return diag_set(e, LLMSIM_EFAIL, "internal error: request %zu did not finish cleanly",
                            i + 1);
    if (rs->free_blocks + rs->pc.evictable != rs->s->total_blocks ||
        rs->pc.evictable != rs->pc.entries || rs->swap_free != rs->s->swap_blocks ||
        res->swap_out_bytes != res->swap_in_bytes || rs->nrun || rs->waiting.n || rs->swapped.n)
        return diag_set(e, LLMSIM_EFAIL, "internal error: KV blocks or swap bytes not conserved");
    return LLMSIM_OK;
}

static void run_free(serve_sched *rs)
{
    free(rs->R);
    cm_iter_memo_free(&rs->pm);
    free(rs->ch);
    free(rs->chid);
    free(rs->order);
    free(rs->pre);
    free(rs->swin);
    free(rs->waiting.a);
    free(rs->swapped.a);
    free(rs->run);
    serve_prefix_keys_free(&rs->own_keys);
    serve_pcache_free(&rs->pc);
    free(rs->held);
    free(rs->evicted);
    free(rs->hits);
    free(rs->regs);
}

/* The run's memory and its requests, all pending. */
static llmsim_status run_init(serve_sched *rs, const serve_requests *q, diag *e)
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
    rs->pre = malloc((size_t)c->max_batch * sizeof *rs->pre);
    rs->swin = malloc((size_t)c->max_batch * sizeof *rs->swin);
    if (cm_iter_memo_init(&rs->pm, &s->cm, c->token_budget, c->max_batch, e) != LLMSIM_OK ||
        !rs->R || !rs->waiting.a || !rs->swapped.a || !rs->run || !res->req || !rs->ch ||
        !rs->chid || !rs->order || !rs->pre || !rs->swin)
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
static void arrivals(serve_sched *rs)
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
static inline void chunk_add(serve_sched *rs, iter_sched *it, uint32_t id, int64_t tok)
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
static void schedule_running(serve_sched *rs, iter_sched *it)
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
        while (need > avail(rs)) {
            self = preempt_one(rs, rs->stamp, rs->t, &it->out_blocks) == id;
            it->preempted = true;
            if (self)
                break;
        }
        if (self)
            continue;
        take_blocks(rs, need);
        r->blocks += need;
        chunk_add(rs, it, id, tok);
    }
}

/* Then, unless memory ran short, the swapped and the waiting, merged in
 * priority order; admission stops at the first that does not fit. A waiting
 * request reserves the blocks of its whole prefill (its prompt and what it
 * had generated before a recompute), as vLLM's can_allocate does, so that it
 * cannot be preempted in mid-prefill by the growth of the others. */
static void admit(serve_sched *rs, iter_sched *it)
{
    const serve_setup *s = rs->s;
    while (!it->preempted && rs->nrun < s->cfg.max_batch && it->budget > 0 &&
           (rs->swapped.n || rs->waiting.n)) {
        bool from_swap = rs->swapped.n &&
                         (!rs->waiting.n || before(rs->R, rs->swapped.a[0], rs->waiting.a[0]));
        rheap *h = from_swap ? &rs->swapped : &rs->waiting;
        uint32_t id = h->a[0];
        rq *r = &rs->R[id];
        int64_t idle = 0, hit = from_swap ? 0 : cached_prefix(rs, id, &idle);
        int64_t pending = r->prompt + r->gen - r->ctx - hit * s->cfg.block_size;
        int64_t tok = pending < it->budget ? pending : it->budget;
        int64_t need = from_swap ? blocks_for(s, r->ctx + tok) : blocks_for(s, r->prompt + r->gen);
        if (need < r->blocks)
            need = r->blocks;
        /* new blocks, and the cached ones it takes from the evictable */
        const int64_t cost = need - hit + idle;
        if (cost > avail(rs) || (rs->nrun && avail(rs) - cost < rs->watermark))
            break;
        heap_pop(h, rs->R);
        if (!from_swap && rs->keys) {
            const double asked = (double)(r->prompt + r->gen), found = (double)(hit * s->cfg.block_size);
            rs->res->prefix_query_tokens += asked;
            rs->res->prefix_hit_tokens += found;
            rs->res->req[id].cached_tokens += hit * s->cfg.block_size;
            take_cached(rs, id, hit);
            r->ctx = hit * s->cfg.block_size;
            r->reg = hit;
        }
        if (from_swap) {
            rs->swin[rs->nin++] = id;
            it->in_blocks += r->blocks;
            rs->swap_free += r->blocks;
            rs->res->swap_in_bytes += (double)r->blocks * s->block_bytes;
            rs->res->events++;
        }
        take_blocks(rs, need - (from_swap ? 0 : hit));
        r->blocks = need;
        set_state(rs, id, SERVE_RUNNING, rs->t);
        run_insert(rs, id);
        chunk_add(rs, it, id, tok);
    }
}

/* At the iteration's end every chunk's tokens are cached, those that emit
 * emit, and finished requests free their blocks and leave the batch. */
static void emit(serve_sched *rs, const serve_iter *it, void (*progress)(double, void *),
                 void *progress_ctx)
{
    serve_result *res = rs->res;
    bool finished = false;
    for (int k = 0; k < it->nch; k++) {
        uint32_t id = it->req[k];
        rq *r = &rs->R[id];
        r->ctx += it->ch[k].tokens;
        if (rs->keys)
            register_blocks(rs, id);
        if (!it->ch[k].emits)
            continue;
        if (r->gen++ == 0)
            res->req[id].first_token_s = rs->t;
        if (r->gen == r->output) {
            drop_blocks(rs, id);
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

/* ---- the interface */

/* The prefix cache over keys (NULL: the declared ones): at most one entry
 * per device block or key. */
static llmsim_status prefix_init(serve_sched *rs, const serve_requests *q,
                                 const serve_prefix_keys *keys, diag *e)
{
    const serve_setup *s = rs->s;
    llmsim_status st;
    if (!keys) {
        if ((st = serve_prefix_declared(q, s->cfg.block_size, &rs->own_keys, e)))
            return st;
        keys = &rs->own_keys;
    }
    if (keys->n != q->n || keys->block_size != s->cfg.block_size)
        return diag_set(e, LLMSIM_EFAIL, "internal error: prefix keys of %zu requests in "
                        "%d-token blocks for %zu in %d", keys->n, keys->block_size, q->n,
                        s->cfg.block_size);
    const int64_t nkeys = keys->off[q->n];
    if ((st = serve_pcache_init(&rs->pc, nkeys < s->total_blocks ? nkeys : s->total_blocks, e)))
        return st;
    if (!(rs->held = malloc((size_t)(nkeys ? nkeys : 1) * sizeof *rs->held)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory for %lld prefix keys", (long long)nkeys);
    for (int64_t k = 0; k < nkeys; k++)
        rs->held[k] = -1;
    rs->keys = keys;
    return LLMSIM_OK;
}

llmsim_status serve_sched_new(const serve_setup *s, const serve_requests *q,
                              const serve_prefix_keys *keys, serve_result *res, serve_sched **out,
                              diag *e)
{
    *out = NULL;
    memset(res, 0, sizeof *res);
    llmsim_status st = serve_sched_check(s, q, e);
    if (st)
        return st;
    serve_sched *rs = calloc(1, sizeof *rs);
    if (!rs)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    rs->s = s;
    rs->n = q->n;
    rs->res = res;
    if ((st = run_init(rs, q, e)) || (s->cfg.prefix_cache && (st = prefix_init(rs, q, keys, e)))) {
        serve_sched_free(rs);
        serve_result_free(res);
        return st;
    }
    rs->q = q;
    *out = rs;
    return LLMSIM_OK;
}

void serve_sched_free(serve_sched *sc)
{
    if (!sc)
        return;
    run_free(sc);
    free(sc);
}

bool serve_sched_finished(const serve_sched *sc) { return sc->done >= sc->n; }

int64_t serve_sched_blocks(const serve_sched *sc, uint32_t req, bool *swapped)
{
    const rq *r = &sc->R[req];
    if (swapped)
        *swapped = r->state == SERVE_SWAPPED;
    return r->blocks;
}

double serve_sched_clock(const serve_sched *sc) { return sc->t; }

void serve_sched_arrive(serve_sched *sc) { arrivals(sc); }

bool serve_sched_idle(const serve_sched *sc)
{
    return !sc->nrun && !sc->waiting.n && !sc->swapped.n;
}

double serve_sched_next_arrival(const serve_sched *sc)
{
    return sc->next < sc->n ? sc->R[sc->next].arrival : INFINITY;
}

llmsim_status serve_sched_idle_until(serve_sched *sc, double t, diag *e)
{
    if (!(t >= sc->t) || !isfinite(t))
        return diag_set(e, LLMSIM_EFAIL, "internal error: the serving clock cannot go from %.9g "
                        "to %.9g", sc->t, t);
    /* the KV use stays what it is */
    if (sc->res->nkv && !kv_sample(sc, sc->t, t - sc->t))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    sc->t = t;
    return LLMSIM_OK;
}

llmsim_status serve_sched_form(serve_sched *sc, serve_iter *out, diag *e)
{
    const serve_setup *s = sc->s;
    if (s->cfg.sched == SCHED_FAIR)
        rerank_running(sc);
    sc->stamp++;
    sc->npre = sc->nin = 0;
    sc->nevict = sc->nhits = sc->nregs = 0;
    iter_sched it = {.budget = s->cfg.token_budget};
    schedule_running(sc, &it);
    admit(sc, &it);
    if (sc->oom)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    if (!it.nch)
        return diag_set(e, LLMSIM_EFAIL, "internal error: an iteration with nothing to do");
    *out = (serve_iter){.start_s = sc->t, .nch = it.nch, .ch = sc->ch, .req = sc->chid,
                        .npre = sc->npre, .pre = sc->pre, .nin = sc->nin,
                        .swapped_in = sc->swin, .out_blocks = it.out_blocks,
                        .in_blocks = it.in_blocks, .nevict = (int)sc->nevict,
                        .evicted = sc->evicted, .nhit = (int)sc->nhits, .hit = sc->hits};
    return LLMSIM_OK;
}

double serve_sched_predict_s(serve_sched *sc, const serve_iter *it)
{
    const serve_setup *s = sc->s;
    cm_iter w = {0};
    for (int k = 0; k < it->nch; k++)
        cm_iter_add(&s->cm, &w, it->ch[k].ctx, it->ch[k].tokens, it->ch[k].emits);
    return serve_price_s(s, &sc->pm, &w, it->out_blocks, it->in_blocks);
}

llmsim_status serve_sched_complete(serve_sched *sc, const serve_iter *it, double end_s,
                                   void (*progress)(double, void *), void *progress_ctx, diag *e)
{
    if (!(end_s >= it->start_s) || !isfinite(end_s) || it->start_s != sc->t)
        return diag_set(e, LLMSIM_EFAIL, "internal error: an iteration from %.9g cannot end at "
                        "%.9g", it->start_s, end_s);
    if (!kv_sample(sc, sc->t, end_s - sc->t) || !iter_row(sc, it, end_s))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    sc->t = end_s;
    sc->res->iterations++;
    sc->res->events++;
    sc->nregs = 0;
    emit(sc, it, progress, progress_ctx);
    if (sc->broken)
        return diag_set(e, LLMSIM_EFAIL, "internal error: the prefix cache is full");
    if (sc->oom)
        return diag_set(e, LLMSIM_EFAIL, "out of memory for the run's records");
    return LLMSIM_OK;
}

const serve_prefix_reg *serve_sched_registered(const serve_sched *sc, int *n)
{
    *n = (int)sc->nregs;
    return sc->regs;
}

llmsim_status serve_sched_end(serve_sched *sc, diag *e)
{
    serve_result *res = sc->res;
    res->n = sc->n;
    res->end_s = sc->t;
    llmsim_status st = check_conservation(sc, e);
    if (!st)
        st = serve_result_aggregate(sc->s, sc->q, res, e);
    return st;
}
