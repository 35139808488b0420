/*
 * test_serve_sched — serving/sched.h, the one scheduler that serve-sim drives
 * with predicted iteration times and the serving engine with measured ones.
 *
 *  - one clock or another: under a "measured" clock (the prediction times a
 *    factor in [0.5, 2) per iteration, as noise and misprediction would make
 *    it) every decision still holds the rules: no request runs before it
 *    arrived, a batch keeps to max_batch sequences and the token budget,
 *    a decode is one token, recompute-only never swaps, every request
 *    finishes with its output (the scheduler checks block conservation);
 *  - replay: the measured clock's iteration times fed back through
 *    serve_run_clocked give the same schedule, decision by decision (chunks,
 *    preemptions and their kinds, swap-ins, start times), and the same
 *    per-request times — for swap, recompute and adaptive under fcfs and
 *    fair, with a pool small enough to preempt;
 *  - the clock matters: the measured clock's schedule differs from the
 *    predicted one's, and serve_run_clocked without a clock is serve_run;
 *  - block tables (serving/blocks.h) follow the scheduler: after every sync
 *    each scheduled request's table has the scheduler's count, no block or
 *    swap slot has two owners, the pools add up, and the KV a request had
 *    cached is still in its blocks after any swap out and back (the copies
 *    listed are done on tags); at the end every block is free.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "serving/blocks.h"
#include "sim/serve.h"
#include "tap.h"

static model M7;
static hwprofile A100;

/* A decision log: every iteration's start, chunks, preemptions, swap-ins. */
typedef struct decision {
    long long iter;
    double start_s, dt;
    char kind;          /* 'c' chunk, 'p' preemption, 'i' swap-in, 't' the iteration */
    uint32_t req;
    int64_t a, b, c;    /* chunk: ctx, tokens, emits; preemption: how, blocks, tokens */
} decision;

typedef struct clock_log {
    decision *d;
    size_t n, cap;
    double *dt;         /* replay: the times to give, by iteration */
    size_t ndt;
    bool measured;      /* scale the prediction by a factor of the iteration */
    /* rule checks */
    const serve_requests *q;
    const serve_config *cfg;
    long long violations;
    char first_violation[200];
} clock_log;

static void logd(clock_log *l, decision d)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4096;
        l->d = realloc(l->d, l->cap * sizeof *l->d);
    }
    l->d[l->n++] = d;
}

static void violation(clock_log *l, long long index, const char *what)
{
    if (!l->violations++)
        snprintf(l->first_violation, sizeof l->first_violation, "iteration %lld: %s", index, what);
}

static void check_rules(clock_log *l, long long index, const serve_iter *it)
{
    int64_t tokens = 0;
    for (int k = 0; k < it->nch; k++) {
        const serve_request *r = &l->q->r[it->req[k]];
        tokens += it->ch[k].tokens;
        if (r->arrival_s > it->start_s)
            violation(l, index, "a request runs before it arrived");
        if (it->ch[k].tokens < 1 || it->ch[k].ctx < 0 ||
            it->ch[k].ctx + it->ch[k].tokens > r->prompt_len + r->output_len)
            violation(l, index, "a chunk outside its request");
    }
    if (it->nch > l->cfg->max_batch)
        violation(l, index, "more sequences than max_batch");
    if (tokens > l->cfg->token_budget)
        violation(l, index, "more tokens than the budget");
    for (int k = 0; k < it->npre; k++)
        if (l->cfg->preempt == PREEMPT_RECOMPUTE && it->pre[k].how != PREEMPT_RECOMPUTE)
            violation(l, index, "recompute-only swapped");
}

static double clock_fn(long long index, const serve_iter *it, double predicted, void *ctx)
{
    clock_log *l = ctx;
    double dt = predicted;
    if (l->dt) {
        dt = (size_t)index < l->ndt ? l->dt[index] : -1;
    } else if (l->measured) {
        uint64_t x = (uint64_t)index * 0x9E3779B97F4A7C15ull + 12345;
        x ^= x >> 29;
        x *= 0xBF58476D1CE4E5B9ull;
        x ^= x >> 32;
        dt = predicted * (0.5 + 1.5 * (double)(x >> 11) * 0x1.0p-53);
    }
    check_rules(l, index, it);
    logd(l, (decision){index, it->start_s, dt, 't', 0, it->nch, it->npre, it->nin});
    for (int k = 0; k < it->nch; k++)
        logd(l, (decision){index, 0, 0, 'c', it->req[k], it->ch[k].ctx, it->ch[k].tokens,
                           it->ch[k].emits});
    for (int k = 0; k < it->npre; k++)
        logd(l, (decision){index, 0, 0, 'p', it->pre[k].req, it->pre[k].how, it->pre[k].blocks,
                           it->pre[k].tokens});
    for (int k = 0; k < it->nin; k++)
        logd(l, (decision){index, 0, 0, 'i', it->swapped_in[k], 0, 0, 0});
    return dt;
}

static bool same_log(const clock_log *a, const clock_log *b, size_t *at)
{
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++) {
        const decision *x = &a->d[i], *y = &b->d[i];
        if (x->iter != y->iter || x->start_s != y->start_s || x->dt != y->dt ||
            x->kind != y->kind || x->req != y->req || x->a != y->a || x->b != y->b ||
            x->c != y->c) {
            *at = i;
            return false;
        }
    }
    *at = n;
    return a->n == b->n;
}

/* A bursty random trace: n requests in bursts of `burst` at one instant. */
static serve_requests bursty(size_t n, size_t burst, double gap_s, uint64_t seed)
{
    serve_requests q = {malloc(n * sizeof(serve_request)), n, NULL};
    uint64_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int p = 32 + (int)((x >> 33) % 1200);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int o = 1 + (int)((x >> 33) % 300);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        q.r[i] = (serve_request){(double)(i / burst) * gap_s, p, o, 1 + (double)((x >> 33) % 4), 0, 0, 0};
    }
    return q;
}

/* LLaMA-2-7B on the A100 with a 128-block pool (16-token blocks: heavy
 * pressure), 32 sequences and 512 tokens an iteration; NULL (and a failed
 * check) when the setup fails. */
static serve_setup *pressure_setup(preemption pm, scheduler sc, double swap_bytes,
                                   serve_config *c, const char *what)
{
    serve_config_init(c);
    c->preempt = pm;
    c->sched = sc;
    c->kv_bytes = 1.0 * 1024 * 1024 * 1024;
    c->swap_bytes = swap_bytes;
    c->max_batch = 32;
    c->token_budget = 512;
    policy p;
    policy_init(&p);
    serve_setup *s = calloc(1, sizeof *s);
    diag e = {0};
    if (serve_setup_init(s, &M7, &A100, &p, c, &e)) {
        CHECK(false, "%s: setup: %s", what, e.msg);
        free(s);
        return NULL;
    }
    return s;
}

static void one_case(const serve_requests *q, preemption pm, scheduler sc, bool pressure,
                     bool prefix)
{
    char what[64];
    snprintf(what, sizeof what, "%s/%s%s%s", preemption_names[pm], scheduler_names[sc],
             pressure ? "" : " light", prefix ? " prefix cache" : "");
    serve_config c;
    serve_setup *s = pressure_setup(pm, sc, 1.0 * 1024 * 1024 * 1024, &c, what);
    if (!s)
        return;
    s->cfg.prefix_cache = prefix;
    diag e = {0};
    clock_log pred = {.q = q, .cfg = &c}, meas = {.q = q, .cfg = &c, .measured = true},
              replay = {.q = q, .cfg = &c};
    serve_result rp, rm, rr, r0;
    CHECK(serve_run_clocked(s, q, NULL, &rp, clock_fn, &pred, NULL, NULL, &e) == LLMSIM_OK,
          "%s predicted: %s", what, e.msg);
    CHECK(serve_run(s, q, &r0, NULL, NULL, &e) == LLMSIM_OK, "%s serve_run: %s", what, e.msg);
    CHECK(rp.n == r0.n && memcmp(rp.req, r0.req, rp.n * sizeof *rp.req) == 0 &&
              rp.iterations == r0.iterations,
          "%s: the predicted clock through the callback is serve_run", what);
    CHECK(serve_run_clocked(s, q, NULL, &rm, clock_fn, &meas, NULL, NULL, &e) == LLMSIM_OK,
          "%s measured clock: %s", what, e.msg);
    CHECK(!meas.violations, "%s measured clock: %lld rule violations, the first %s", what,
          meas.violations, meas.first_violation);
    if (pressure)
        CHECK(rm.preempt_swap + rm.preempt_recompute > 0,
              "%s: the pool is small enough to preempt", what);
    long long swapped_in = 0, swapped_out = 0;
    for (size_t i = 0; i < meas.n; i++) {
        swapped_in += meas.d[i].kind == 'i';
        swapped_out += meas.d[i].kind == 'p' && meas.d[i].a == PREEMPT_SWAP;
    }
    CHECK(swapped_out == rm.preempt_swap && swapped_in == rm.preempt_swap,
          "%s: every swap-out reported (%lld of %lld) and swapped back in once (%lld)", what,
          swapped_out, rm.preempt_swap, swapped_in);
    /* replay the measured clock's times */
    replay.ndt = 0;
    replay.dt = malloc((size_t)rm.iterations * sizeof *replay.dt);
    for (size_t i = 0; i < meas.n; i++)
        if (meas.d[i].kind == 't')
            replay.dt[replay.ndt++] = meas.d[i].dt;
    CHECK(serve_run_clocked(s, q, NULL, &rr, clock_fn, &replay, NULL, NULL, &e) == LLMSIM_OK,
          "%s replay: %s", what, e.msg);
    size_t at;
    bool same = same_log(&meas, &replay, &at);
    CHECK(same, "%s: replayed times, same schedule (%zu and %zu decisions, first difference at "
          "%zu: iteration %lld)", what, meas.n, replay.n, at,
          at < meas.n ? meas.d[at].iter : -1LL);
    CHECK(rr.n == rm.n && memcmp(rr.req, rm.req, rr.n * sizeof *rr.req) == 0 &&
              rr.preempt_swap == rm.preempt_swap && rr.preempt_recompute == rm.preempt_recompute &&
              rr.prefix_hit_tokens == rm.prefix_hit_tokens,
          "%s: replayed times, same per-request times, preemptions and cache hits", what);
    if (prefix)
        CHECK(rm.prefix_hit_tokens > 0, "%s: prompt tokens found cached", what);
    size_t at2;
    CHECK(!same_log(&pred, &meas, &at2), "%s: the clock changes the schedule", what);
    serve_result_free(&rp);
    serve_result_free(&rm);
    serve_result_free(&rr);
    serve_result_free(&r0);
    free(pred.d);
    free(meas.d);
    free(replay.d);
    free(replay.dt);
    free(s);
}

/* Driving the scheduler directly: an iteration cannot end before it began,
 * and idling cannot move the clock back. */
static void test_clock_rules(void)
{
    serve_config c;
    serve_config_init(&c);
    policy p;
    policy_init(&p);
    serve_setup *s = calloc(1, sizeof *s);
    diag e = {0};
    if (serve_setup_init(s, &M7, &A100, &p, &c, &e)) {
        CHECK(false, "setup: %s", e.msg);
        free(s);
        return;
    }
    serve_request one[2] = {{0.5, 100, 3, 1, 0, 0, 0}, {2.0, 10, 1, 1, 0, 0, 0}};
    serve_requests q = {one, 2, NULL};
    serve_result r;
    serve_sched *sc;
    CHECK(serve_sched_new(s, &q, NULL, &r, &sc, &e) == LLMSIM_OK, "new: %s", e.msg);
    serve_sched_arrive(sc);
    CHECK(serve_sched_idle(sc) && serve_sched_next_arrival(sc) == 0.5, "idle until 0.5");
    CHECK(serve_sched_idle_until(sc, 0.5, &e) == LLMSIM_OK, "idle: %s", e.msg);
    CHECK(serve_sched_idle_until(sc, 0.25, &e) == LLMSIM_EFAIL, "the clock does not go back");
    serve_sched_arrive(sc);
    serve_iter it;
    CHECK(!serve_sched_idle(sc) && serve_sched_form(sc, &it, &e) == LLMSIM_OK && it.nch == 1 &&
              it.req[0] == 0 && it.ch[0].tokens == 100 && it.ch[0].emits && it.start_s == 0.5,
          "the first request's prefill at its arrival");
    CHECK(serve_sched_complete(sc, &it, 0.4, NULL, NULL, &e) == LLMSIM_EFAIL,
          "an iteration does not end before it began");
    CHECK(serve_sched_complete(sc, &it, 0.75, NULL, NULL, &e) == LLMSIM_OK, "complete: %s",
          e.msg);
    CHECK(r.req[0].first_token_s == 0.75, "its first token at the iteration's end");
    while (!serve_sched_finished(sc)) {
        serve_sched_arrive(sc);
        if (serve_sched_idle(sc)) {
            CHECK(serve_sched_idle_until(sc, serve_sched_next_arrival(sc), &e) == LLMSIM_OK,
                  "idle: %s", e.msg);
            continue;
        }
        if (serve_sched_form(sc, &it, &e) ||
            serve_sched_complete(sc, &it, it.start_s + 0.125, NULL, NULL, &e)) {
            CHECK(false, "run: %s", e.msg);
            break;
        }
    }
    CHECK(serve_sched_end(sc, &e) == LLMSIM_OK, "end: %s", e.msg);
    CHECK(r.req[0].finish_s == 1.0 && r.req[1].first_token_s == 2.125 &&
              r.req[1].finish_s == 2.125,
          "the given times are the times: %g %g %g", r.req[0].finish_s, r.req[1].first_token_s,
          r.req[1].finish_s);
    serve_sched_free(sc);
    serve_result_free(&r);
    free(s);
}

/* ---- block tables against the scheduler */

typedef struct kv_tags {
    int64_t *dev, *swap; /* what each block or slot holds: req * 1e6 + index + 1, 0: nothing */
    int *owner;          /* scratch: [dev blocks + swap slots] */
} kv_tags;

/* What block j of request req holds: its prefix key's content where it has
 * one (the same for every request with that key), else its own. */
static int64_t tag_of(const serve_prefix_keys *kv_keys, uint32_t req, int64_t j)
{
    if (kv_keys && j < kv_keys->off[req + 1] - kv_keys->off[req])
        return -1 - (int64_t)(kv_keys->key[kv_keys->off[req] + j] & 0x3fffffffffffffffull);
    return (int64_t)req * 1000000 + j + 1;
}

/* The copies of the last sync, done on the tags, then each scheduled
 * request's cached blocks checked and its new ones written. */
static bool check_tables(const serve_blocks *b, const serve_sched *sc, const serve_iter *it,
                         const serve_setup *s, const serve_prefix_keys *keys, kv_tags *kv,
                         size_t nreq, char *why, size_t len)
{
    for (size_t m = 0; m < b->nmoves; m++) {
        const serve_block_move *mv = &b->moves[m];
        if (mv->out)
            kv->swap[mv->swap] = kv->dev[mv->dev];
        else
            kv->dev[mv->dev] = kv->swap[mv->swap];
    }
    for (int k = 0; k < it->nch; k++) {
        uint32_t r = it->req[k];
        const serve_block_table *t = &b->tab[r];
        bool swapped;
        if (t->n != serve_sched_blocks(sc, r, &swapped) || t->swapped || swapped) {
            snprintf(why, len, "request %u: table of %lld blocks, the scheduler %lld", r + 1,
                     (long long)t->n, (long long)serve_sched_blocks(sc, r, NULL));
            return false;
        }
        int64_t cached = (it->ch[k].ctx + s->cfg.block_size - 1) / s->cfg.block_size;
        for (int64_t j = 0; j < t->n; j++) {
            if (j < cached && kv->dev[t->ids[j]] != tag_of(keys, r, j)) {
                snprintf(why, len, "request %u: its block %lld lost its KV", r + 1, (long long)j);
                return false;
            }
            kv->dev[t->ids[j]] = tag_of(keys, r, j);
        }
    }
    /* one owner per block and slot; the free lists and the tables add up */
    int64_t nd = b->dev_blocks;
    memset(kv->owner, 0, (size_t)(nd + b->swap_slots) * sizeof *kv->owner);
    int64_t used_dev = 0, used_swap = 0;
    for (size_t r = 0; r < nreq; r++) {
        const serve_block_table *t = &b->tab[r];
        for (int64_t j = 0; j < t->n; j++) {
            int *o = &kv->owner[(t->swapped ? nd : 0) + t->ids[j]];
            const bool shared = !t->swapped && b->entry_of && b->entry_of[t->ids[j]] >= 0;
            if (*o && !shared) {
                snprintf(why, len, "a %s owned twice", t->swapped ? "swap slot" : "block");
                return false;
            }
            if (!*o)
                *(t->swapped ? &used_swap : &used_dev) += 1;
            *o = 1;
        }
        bool swapped;
        int64_t want = serve_sched_blocks(sc, (uint32_t)r, &swapped);
        if (t->n && (t->n != want || t->swapped != swapped)) {
            snprintf(why, len, "request %zu: %lld blocks%s, the scheduler %lld%s", r + 1,
                     (long long)t->n, t->swapped ? " swapped" : "", (long long)want,
                     swapped ? " swapped" : "");
            return false;
        }
    }
    for (int64_t d = 0; b->entry_of && d < nd; d++) { /* cached, held by no one */
        used_dev += b->entry_of[d] >= 0 && !kv->owner[d];
        if (b->entry_of[d] >= 0 && b->block_of[b->entry_of[d]] != d) {
            snprintf(why, len, "block %lld's cache entry is another block's", (long long)d);
            return false;
        }
    }
    for (int64_t f = 0; f < b->nfree_dev; f++) { /* a free block is in no table, and not cached */
        const int32_t d = b->free_dev[f];
        if (kv->owner[d] || (b->entry_of && b->entry_of[d] >= 0)) {
            snprintf(why, len, "free block %d is %s", d, kv->owner[d] ? "in a table" : "cached");
            return false;
        }
    }
    if (used_dev + b->nfree_dev != nd || used_swap + b->nfree_swap != b->swap_slots) {
        snprintf(why, len, "pools do not add up: %lld + %lld of %lld blocks", (long long)used_dev,
                 (long long)b->nfree_dev, (long long)nd);
        return false;
    }
    return true;
}

static void blocks_case(const serve_requests *q, preemption pm, scheduler scd, bool prefix)
{
    char what[64];
    snprintf(what, sizeof what, "blocks %s/%s%s", preemption_names[pm], scheduler_names[scd],
             prefix ? " prefix cache" : "");
    serve_config c; /* a small swap space: some swaps fall back */
    serve_setup *s = pressure_setup(pm, scd, 0.5 * 1024 * 1024 * 1024, &c, what);
    if (!s)
        return;
    s->cfg.prefix_cache = prefix;
    diag e = {0};
    serve_result r;
    serve_sched *sc = NULL;
    serve_blocks b;
    serve_prefix_keys keys = {0};
    if ((prefix && serve_prefix_declared(q, s->cfg.block_size, &keys, &e)) ||
        serve_sched_new(s, q, prefix ? &keys : NULL, &r, &sc, &e) ||
        serve_blocks_init(&b, s->total_blocks, s->swap_blocks, q->n, s->cfg.prefix_cache, &e)) {
        CHECK(false, "%s: %s", what, e.msg);
        serve_sched_free(sc);
        free(s);
        return;
    }
    kv_tags kv = {calloc((size_t)b.dev_blocks + 1, sizeof(int64_t)),
                  calloc((size_t)b.swap_slots + 1, sizeof(int64_t)),
                  calloc((size_t)(b.dev_blocks + b.swap_slots) + 1, sizeof(int))};
    char why[200] = "";
    bool ok = true;
    long long iters = 0, moved_out = 0, moved_in = 0;
    clock_log l = {.measured = true, .q = q, .cfg = &c};
    while (ok && !serve_sched_finished(sc)) {
        serve_sched_arrive(sc);
        if (serve_sched_idle(sc)) {
            ok = serve_sched_idle_until(sc, serve_sched_next_arrival(sc), &e) == LLMSIM_OK;
            continue;
        }
        serve_iter it;
        ok = serve_sched_form(sc, &it, &e) == LLMSIM_OK &&
             serve_blocks_sync(&b, sc, &it, &e) == LLMSIM_OK;
        if (!ok)
            break;
        for (size_t m = 0; m < b.nmoves; m++)
            ++*(b.moves[m].out ? &moved_out : &moved_in);
        if (!check_tables(&b, sc, &it, s, prefix ? &keys : NULL, &kv, q->n, why, sizeof why)) {
            ok = false;
            break;
        }
        double dt = clock_fn(iters++, &it, serve_sched_predict_s(sc, &it), &l);
        ok = serve_sched_complete(sc, &it, it.start_s + dt, NULL, NULL, &e) == LLMSIM_OK;
        serve_blocks_finish(&b, sc, &it);
        for (int64_t f = 0; ok && b.entry_of && f < b.nfree_dev; f++)
            if (b.entry_of[b.free_dev[f]] >= 0) {
                snprintf(why, sizeof why, "after iteration %lld, free block %d is cached", iters,
                         b.free_dev[f]);
                ok = false;
            }
    }
    CHECK(ok && serve_sched_end(sc, &e) == LLMSIM_OK, "%s: %s %s", what, why, e.msg);
    int64_t cached = 0;
    for (int64_t d = 0; b.entry_of && d < b.dev_blocks; d++)
        cached += b.entry_of[d] >= 0;
    CHECK(b.nfree_dev + cached == b.dev_blocks && b.nfree_swap == b.swap_slots,
          "%s: every block free or cached at the end (%lld + %lld of %lld)", what,
          (long long)b.nfree_dev, (long long)cached, (long long)b.dev_blocks);
    if (prefix)
        CHECK(r.prefix_hit_tokens > 0 && r.prefix_evicted > 0 && cached > 0,
              "%s: %.0f prompt tokens found cached, %lld cached blocks reused, %lld cached at "
              "the end", what, r.prefix_hit_tokens, r.prefix_evicted, (long long)cached);
    if (pm != PREEMPT_RECOMPUTE)
        CHECK((moved_out > 0 || pm == PREEMPT_ADAPTIVE) && moved_out == moved_in &&
                  (double)moved_out * s->block_bytes == r.swap_out_bytes,
              "%s: block copies out %lld, in %lld, as the scheduler's swapped bytes", what,
              moved_out, moved_in);
    else
        CHECK(moved_out == 0 && moved_in == 0, "%s: recompute copies nothing", what);
    free(kv.dev);
    free(kv.swap);
    free(kv.owner);
    free(l.d);
    serve_prefix_keys_free(&keys);
    serve_blocks_free(&b);
    serve_sched_free(sc);
    serve_result_free(&r);
    free(s);
}

int main(void)
{
    diag e = {0};
    if (model_load("llama-2-7b", &M7, &e) || hwprofile_load("a100-80gb-sxm", &A100, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    test_clock_rules();
    /* bursts that overload the pool; pairs that mostly find it idle */
    serve_requests q = bursty(240, 40, 3.0, 11), light = bursty(60, 2, 1.5, 5);
    /* the same bursts, two requests in three starting with one of three
     * system prompts of up to 400 tokens, one in five answering one token */
    serve_requests grouped = bursty(240, 40, 3.0, 11);
    for (size_t i = 0; i < grouped.n; i++) {
        if (i % 5 == 0)
            grouped.r[i].output_len = 1; /* finishes in the iteration that caches its prompt */
        if (i % 3) {
            grouped.r[i].prefix_group = 1 + (uint32_t)(i % 7) % 3;
            grouped.r[i].prefix_len = grouped.r[i].prompt_len < 400 ? grouped.r[i].prompt_len : 400;
        }
    }
    for (int pm = 0; pm < 3; pm++)
        for (int sc = 0; sc < 2; sc++) {
            one_case(&q, (preemption)pm, (scheduler)sc, true, false);
            one_case(&light, (preemption)pm, (scheduler)sc, false, false);
            one_case(&grouped, (preemption)pm, (scheduler)sc, true, true);
            blocks_case(&q, (preemption)pm, (scheduler)sc, false);
            blocks_case(&grouped, (preemption)pm, (scheduler)sc, true);
        }
    serve_requests_free(&q);
    serve_requests_free(&light);
    serve_requests_free(&grouped);
    return tap_done();
}
