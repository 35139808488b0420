/*
 * test_serve — the serving simulator (sim/serve.h).
 *
 *  - setup: KV blocks and their bytes by hand for LLaMA-2-7B on an A100;
 *  - prices by hand: a swap is copies x latency + bytes / bandwidth each way;
 *    a lone prefill is the cost model's dense work, attention and head; a
 *    recompute is the marginal cost of its chunks next to the decodes;
 *  - one request alone: its first token after its prefill iteration(s),
 *    then one decode iteration per token, each priced by hand;
 *  - conservation under memory pressure for every preemption mode and
 *    scheduler: every request finishes once with its output, no block leaks
 *    (serve_run checks that itself and fails otherwise), bytes swapped out
 *    equal bytes swapped in, times are ordered;
 *  - determinism: the same inputs give the same per-request times;
 *  - adaptive is no worse than the better of swap and recompute on a trace
 *    built for it (victims of both kinds on a machine where they cross);
 *  - fair beats fcfs on weighted turnaround; alpha = 0 is fcfs exactly; and
 *    with aging a long light request is not starved by a stream of short
 *    heavy ones, while without aging (alpha huge) it waits for the stream.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "costmodel/primitives.h"
#include "models/model.h"
#include "sim/serve.h"
#include "tap.h"

#define EXACT_TOL 1e-12 /* the same arithmetic by another route */

static model M7, M13;
static hwprofile A100, XOVER;

static serve_setup *setup(const model *m, const hwprofile *hw, const serve_config *c)
{
    serve_setup *s = calloc(1, sizeof *s);
    policy p;
    policy_init(&p);
    diag e = {0};
    if (!s || serve_setup_init(s, m, hw, &p, c, &e)) {
        tap_check(false, __FILE__, __LINE__, "setup: %s", e.msg);
        free(s);
        return NULL;
    }
    return s;
}

static void test_setup(void)
{
    serve_config c;
    serve_config_init(&c);
    serve_setup *s = setup(&M7, &A100, &c);
    if (!s)
        return;
    /* 32 layers x K and V x 16 tokens x 4096 x 2 bytes = 8 MiB per block */
    CHECK(s->block_bytes == 32.0 * 2 * 16 * 4096 * 2, "block bytes %.0f", s->block_bytes);
    double expect_kv = 0.9 * A100.gpu.memory_bytes - s->weights_dev_bytes - s->workspace_bytes;
    CHECK_REL(s->kv_bytes, expect_kv, EXACT_TOL, "kv bytes");
    CHECK(s->total_blocks == (int64_t)floor(expect_kv / s->block_bytes), "blocks %lld",
          (long long)s->total_blocks);
    CHECK(s->swap_blocks == 512, "4 GiB of swap is 512 blocks: %lld", (long long)s->swap_blocks);
    CHECK_REL(s->weights_dev_bytes, 2.0 * (double)model_param_count(&M7), EXACT_TOL,
              "fp16 weights on the GPU");

    /* 4-bit weights leave more room; a tiny budget leaves no room for batch 256 */
    policy p;
    policy_init(&p);
    p.weight_quant = (quant){4, 64};
    serve_setup *q = calloc(1, sizeof *q);
    diag e = {0};
    CHECK(serve_setup_init(q, &M7, &A100, &p, &c, &e) == LLMSIM_OK, "4-bit: %s", e.msg);
    CHECK(q->total_blocks > s->total_blocks, "4-bit weights leave more KV blocks");
    c.token_budget = 100;
    diag_clear(&e);
    CHECK(serve_setup_init(q, &M7, &A100, &p, &c, &e) == LLMSIM_EINPUT &&
              strstr(e.msg, "token budget"), "budget < max batch refused: %s", e.msg);
    serve_config_init(&c);
    c.kv_bytes = 200.0 * 1024 * 1024 * 1024;
    diag_clear(&e);
    CHECK(serve_setup_init(q, &M7, &A100, &p, &c, &e) == LLMSIM_EINPUT &&
              strstr(e.msg, "does not fit"), "200 GiB of KV on an 80 GB GPU refused: %s", e.msg);
    free(q);
    free(s);
}

static void test_prices(void)
{
    serve_config c;
    serve_config_init(&c);
    serve_setup *s = setup(&M7, &A100, &c);
    if (!s)
        return;
    /* swap: 10 blocks, 32 layers x 2 copies each, 10 us per copy, 25 GB/s */
    double out = serve_swap_s(s, 10, true), in = serve_swap_s(s, 10, false);
    double bytes = 10 * 32.0 * 2 * 16 * 4096 * 2;
    CHECK_REL(out, 640 * 10e-6 + bytes / 25e9, 1e-9, "swap out by hand");
    CHECK_REL(in, 640 * 10e-6 + bytes / 25e9, 1e-9, "swap in by hand");
    CHECK(serve_swap_s(s, 0, true) == 0, "nothing to swap costs nothing");

    /* a lone prefill of 512 tokens: layers x (dense + attention) + head */
    serve_chunk one = {0, 512, true};
    double pre, post;
    cm_dense_rows_s(&s->cm, 512, &pre, &post);
    double attn = cm_attention_prefill_time(&A100, CM_DEV_GPU, 1, 512, 32, 128);
    double expect = 32 * (pre + post + attn) + cm_head_rows_s(&s->cm, 512, 1);
    CHECK_REL(serve_iteration_s(s, &one, 1, 0, 0), expect, 1e-9, "lone prefill by hand");
    /* with swaps the iteration waits for them */
    CHECK_REL(serve_iteration_s(s, &one, 1, 10, 10), expect + out + in, 1e-9, "swaps added");

    /* chunks split the attention exactly: 256 + 256 causal == 512 */
    serve_chunk a = {0, 256, false}, b = {256, 256, true};
    double attn_a = cm_attention_prefill_time(&A100, CM_DEV_GPU, 1, 256, 32, 128);
    cm_dense_rows_s(&s->cm, 256, &pre, &post);
    double ia = serve_iteration_s(s, &a, 1, 0, 0), ib = serve_iteration_s(s, &b, 1, 0, 0);
    CHECK_REL(ia, 32 * (pre + post + attn_a) + cm_head_rows_s(&s->cm, 256, 0), 1e-9, "chunk 1");
    CHECK_REL(ib - ia, 32 * (attn - 2 * attn_a) + cm_head_rows_s(&s->cm, 0, 1) -
                           cm_head_rows_s(&s->cm, 0, 0), 1e-9,
              "chunk 2 attends to chunk 1: the rest of the square");

    /* recompute of 512 cached tokens next to 8 decodes at context 100 each:
     * the iteration with the chunk less the iteration without it */
    serve_chunk mix[9];
    for (int i = 0; i < 8; i++)
        mix[i] = (serve_chunk){99, 1, true};
    double base = serve_iteration_s(s, mix, 8, 0, 0);
    mix[8] = (serve_chunk){0, 512, true};
    double with = serve_iteration_s(s, mix, 9, 0, 0);
    CHECK_REL(serve_recompute_s(s, 512, 8, 800), with - base, 1e-9, "recompute = marginal chunk");
    /* beyond the budget the recompute runs in chunks of what the decodes leave */
    double r3000 = serve_recompute_s(s, 3000, 8, 800);
    double sum = 0;
    int64_t room = 2048 - 8;
    for (int64_t done = 0; done < 3000; done += room) {
        int64_t n = 3000 - done < room ? 3000 - done : room;
        mix[8] = (serve_chunk){done, n, done + n == 3000};
        sum += serve_iteration_s(s, mix, 9, 0, 0) - base;
    }
    CHECK_REL(r3000, sum, 1e-9, "recompute in chunks");
    free(s);
}

static serve_requests trace_of(const serve_request *r, size_t n)
{
    serve_requests q = {malloc(n * sizeof *r), n, NULL};
    memcpy(q.r, r, n * sizeof *r);
    return q;
}

static void test_alone(void)
{
    serve_config c;
    serve_config_init(&c);
    c.token_budget = 300; /* the 700-token prompt takes three chunks */
    serve_setup *s = setup(&M7, &A100, &c);
    if (!s)
        return;
    serve_request r = {2.5, 700, 5, 1, 0, 0, 0};
    serve_requests q = trace_of(&r, 1);
    serve_result res;
    diag e = {0};
    CHECK(serve_run(s, &q, &res, NULL, NULL, &e) == LLMSIM_OK, "run: %s", e.msg);
    serve_chunk ch[3] = {{0, 300, false}, {300, 300, false}, {600, 100, true}};
    double t = 2.5;
    for (int i = 0; i < 3; i++)
        t += serve_iteration_s(s, &ch[i], 1, 0, 0);
    CHECK_REL(res.req[0].first_token_s, t, EXACT_TOL, "first token after three chunks");
    for (int k = 0; k < 4; k++) {
        serve_chunk d = {700 + k, 1, true};
        t += serve_iteration_s(s, &d, 1, 0, 0);
    }
    CHECK_REL(res.req[0].finish_s, t, EXACT_TOL, "four decode steps");
    CHECK(res.iterations == 7, "7 iterations: %lld", res.iterations);
    CHECK_REL(res.ttft.mean, res.req[0].first_token_s - 2.5, EXACT_TOL, "ttft");
    CHECK_REL(res.tpot.mean, (res.req[0].finish_s - res.req[0].first_token_s) / 4, EXACT_TOL, "tpot");
    CHECK_REL(res.makespan_s, t - 2.5, EXACT_TOL, "makespan from the first arrival");
    CHECK(res.preempt_swap == 0 && res.preempt_recompute == 0, "no preemption");
    /* admission reserves the whole prompt: 44 blocks from the start, and 704
     * tokens still fit; equal consecutive samples are one */
    CHECK(res.nkv == 1 && res.kv[0].dev_blocks == 44, "44 blocks throughout: %zu samples",
          res.nkv);
    CHECK_REL(res.kv[0].dur_s, t - 2.5, EXACT_TOL, "the sample spans the run");
    serve_result_free(&res);
    serve_requests_free(&q);
    free(s);
}

/* A random trace: n requests at `rate`, lengths uniform in the ranges. */
static serve_requests random_trace(size_t n, double rate, int plo, int phi, int olo, int ohi,
                                   uint64_t seed)
{
    serve_requests q = {malloc(n * sizeof(serve_request)), n, NULL};
    uint64_t x = seed;
    double t = 0;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(x >> 11) * 0x1.0p-53;
        t += -log(1 - u) / rate;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int p = plo + (int)((x >> 33) % (uint64_t)(phi - plo + 1));
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int o = olo + (int)((x >> 33) % (uint64_t)(ohi - olo + 1));
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        q.r[i] = (serve_request){t, p, o, 1 + (double)((x >> 33) % 4), 0, 0, 0};
    }
    return q;
}

static void check_result(const serve_requests *q, const serve_result *r, const char *what)
{
    double out = 0;
    bool ordered = true;
    for (size_t i = 0; i < q->n; i++) {
        out += (double)q->r[i].output_len;
        ordered &= r->req[i].first_token_s > q->r[i].arrival_s &&
                   r->req[i].finish_s >= r->req[i].first_token_s &&
                   (q->r[i].output_len == 1) == (r->req[i].finish_s == r->req[i].first_token_s);
    }
    CHECK(ordered, "%s: arrival < first token <= finish", what);
    CHECK(r->output_tokens == out, "%s: every output token once", what);
    CHECK(r->swap_out_bytes == r->swap_in_bytes, "%s: swapped out %.0f == in %.0f", what,
          r->swap_out_bytes, r->swap_in_bytes);
    CHECK(r->ttft.p50 <= r->ttft.p90 && r->ttft.p90 <= r->ttft.p99 && r->ttft.p99 <= r->ttft.max,
          "%s: percentiles ordered", what);
    CHECK(r->kv_util_peak <= 1.0 && r->kv_util_mean <= r->kv_util_peak, "%s: KV use", what);
}

static void test_conservation(void)
{
    serve_requests q = random_trace(400, 40, 64, 1500, 16, 400, 7);
    for (int pm = 0; pm < 3; pm++)
        for (int sc = 0; sc < 2; sc++) {
            serve_config c;
            serve_config_init(&c);
            c.preempt = (preemption)pm;
            c.sched = (scheduler)sc;
            c.kv_bytes = 2.0 * 1024 * 1024 * 1024; /* 256 blocks: heavy pressure */
            c.swap_bytes = 1.0 * 1024 * 1024 * 1024;
            serve_setup *s = setup(&M7, &A100, &c);
            if (!s)
                continue;
            serve_result r, r2;
            diag e = {0};
            char what[64];
            snprintf(what, sizeof what, "%s/%s", preemption_names[pm], scheduler_names[sc]);
            CHECK(serve_run(s, &q, &r, NULL, NULL, &e) == LLMSIM_OK, "%s: %s", what, e.msg);
            check_result(&q, &r, what);
            CHECK(r.preempt_swap + r.preempt_recompute > 0, "%s: memory pressure preempts", what);
            if (pm == PREEMPT_SWAP)
                CHECK(r.preempt_swap > 0 && r.swap_out_bytes > 0, "%s: swaps", what);
            if (pm == PREEMPT_RECOMPUTE)
                CHECK(r.preempt_swap == 0 && r.recomputed_tokens > 0, "%s: recomputes only", what);
            /* determinism */
            CHECK(serve_run(s, &q, &r2, NULL, NULL, &e) == LLMSIM_OK, "%s again: %s", what, e.msg);
            CHECK(r.n == r2.n && memcmp(r.req, r2.req, r.n * sizeof *r.req) == 0 &&
                      r.iterations == r2.iterations && r.events == r2.events,
                  "%s: same inputs, same timeline", what);
            serve_result_free(&r);
            serve_result_free(&r2);
            free(s);
        }
    /* swap space too small: swaps fall back to recompute, still conserved */
    serve_config c;
    serve_config_init(&c);
    c.preempt = PREEMPT_SWAP;
    c.kv_bytes = 2.0 * 1024 * 1024 * 1024;
    c.swap_bytes = 64.0 * 1024 * 1024;
    serve_setup *s = setup(&M7, &A100, &c);
    serve_result r;
    diag e = {0};
    if (s && serve_run(s, &q, &r, NULL, NULL, &e) == LLMSIM_OK) {
        check_result(&q, &r, "small swap");
        CHECK(r.swap_full > 0 && r.preempt_recompute == r.swap_full, "fallbacks counted: %lld",
              r.swap_full);
        serve_result_free(&r);
    } else {
        CHECK(false, "small swap: %s", e.msg);
    }
    free(s);
    serve_requests_free(&q);
}

static void test_bad_requests(void)
{
    serve_config c;
    serve_config_init(&c);
    c.kv_bytes = 64.0 * 1024 * 1024; /* 8 blocks = 128 tokens */
    serve_setup *s = setup(&M7, &A100, &c);
    if (!s)
        return;
    serve_request r[2] = {{0, 10, 10, 1, 0, 0, 0}, {1, 120, 10, 1, 0, 0, 0}};
    serve_requests q = trace_of(r, 2);
    serve_result res;
    diag e = {0};
    CHECK(serve_run(s, &q, &res, NULL, NULL, &e) == LLMSIM_EINPUT && strstr(e.msg, "request 2") &&
              strstr(e.msg, "KV blocks"),
          "a request larger than the cache is named: %s", e.msg);
    /* from a trace: its file and line */
    q.source = strdup("trace.csv");
    q.r[1].line = 9;
    diag_clear(&e);
    CHECK(serve_run(s, &q, &res, NULL, NULL, &e) == LLMSIM_EINPUT &&
              strncmp(e.msg, "trace.csv:9: request 2", 22) == 0,
          "a trace's request is named by file and line: %s", e.msg);
    q.r[1] = (serve_request){1, 4000, 200, 1, 0, 0, 0};
    diag_clear(&e);
    CHECK(serve_run(s, &q, &res, NULL, NULL, &e) == LLMSIM_EINPUT && strstr(e.msg, "context"),
          "beyond the model's context: %s", e.msg);
    serve_requests_free(&q);
    free(s);
}

/* Victims of both kinds on a machine where swap and recompute cross: short
 * ones (cheaper to recompute) and long ones (cheaper to swap). */
static void test_adaptive(void)
{
    serve_config c;
    serve_config_init(&c);
    serve_setup *s = setup(&M13, &XOVER, &c);
    if (!s)
        return;
    /* where they cross on this machine */
    CHECK(serve_recompute_s(s, 32, 32, 32 * 64) < serve_swap_s(s, 2, true) + serve_swap_s(s, 2, false),
          "short: recompute cheaper");
    CHECK(serve_recompute_s(s, 1024, 32, 32 * 64) >
              serve_swap_s(s, 64, true) + serve_swap_s(s, 64, false),
          "long: swap cheaper");
    free(s);

    serve_requests q = {malloc(300 * sizeof(serve_request)), 300, NULL};
    for (size_t i = 0; i < q.n; i++) {
        bool lng = i % 4 == 0;
        q.r[i] = (serve_request){0.01 * (double)i, lng ? 900 + (int64_t)(i % 7) * 50 : 8,
                                 lng ? 150 : 120 + (int64_t)(i % 5) * 10, 1, 0, 0, 0};
    }
    double makespan[3], e2e[3];
    long long pre[3][2];
    for (int pm = 0; pm < 3; pm++) {
        c.preempt = (preemption)pm;
        c.kv_bytes = 600.0 * 1024 * 1024;
        s = setup(&M13, &XOVER, &c);
        serve_result r;
        diag e = {0};
        if (!s || serve_run(s, &q, &r, NULL, NULL, &e)) {
            CHECK(false, "adaptive trace, %s: %s", preemption_names[pm], e.msg);
            free(s);
            continue;
        }
        check_result(&q, &r, preemption_names[pm]);
        makespan[pm] = r.makespan_s;
        e2e[pm] = r.e2e.mean;
        pre[pm][0] = r.preempt_swap;
        pre[pm][1] = r.preempt_recompute;
        serve_result_free(&r);
        free(s);
    }
    printf("# adaptive trace: makespan swap %.4f recompute %.4f adaptive %.4f; mean e2e %.4f %.4f "
           "%.4f; adaptive chose %lld swaps, %lld recomputes\n", makespan[0], makespan[1],
           makespan[2], e2e[0], e2e[1], e2e[2], pre[2][0], pre[2][1]);
    CHECK(pre[2][0] > 0 && pre[2][1] > 0, "adaptive chose both kinds");
    CHECK(makespan[2] <= fmin(makespan[0], makespan[1]), "adaptive makespan no worse than the better");
    CHECK(e2e[2] <= fmin(e2e[0], e2e[1]), "adaptive mean latency no worse than the better");
    serve_requests_free(&q);
}

static void test_fair(void)
{
    /* heavy short requests and light long ones, all at once under load */
    serve_requests q = random_trace(600, 60, 32, 512, 16, 512, 11);
    for (size_t i = 0; i < q.n; i++)
        q.r[i].weight = q.r[i].output_len < 128 ? 4 : 1;
    double wt[2];
    serve_result base;
    diag e = {0};
    for (int sc = 0; sc < 2; sc++) {
        serve_config c;
        serve_config_init(&c);
        c.sched = (scheduler)sc;
        c.max_batch = 32;
        serve_setup *s = setup(&M7, &A100, &c);
        serve_result r;
        if (!s || serve_run(s, &q, &r, NULL, NULL, &e)) {
            CHECK(false, "fair trace: %s", e.msg);
            free(s);
            return;
        }
        check_result(&q, &r, scheduler_names[sc]);
        wt[sc] = r.weighted_turnaround_s;
        if (sc == 0)
            base = r;
        else
            serve_result_free(&r);
        free(s);
    }
    printf("# weighted turnaround fcfs %.3f s, fair %.3f s\n", wt[0], wt[1]);
    CHECK(wt[1] < 0.9 * wt[0], "fair cuts weighted turnaround by more than 10%%");

    /* alpha = 0: the virtual deadline is the arrival, fcfs exactly */
    serve_config c;
    serve_config_init(&c);
    c.sched = SCHED_FAIR;
    c.fair_alpha = 0;
    c.max_batch = 32;
    serve_setup *s = setup(&M7, &A100, &c);
    serve_result r;
    if (s && serve_run(s, &q, &r, NULL, NULL, &e) == LLMSIM_OK) {
        CHECK(memcmp(r.req, base.req, q.n * sizeof *r.req) == 0, "fair with alpha 0 == fcfs");
        serve_result_free(&r);
    }
    free(s);
    serve_result_free(&base);
    serve_requests_free(&q);

    /* starvation: one long light request in a stream of short heavy ones that
     * keeps the server full for far longer than the long one's service */
    size_t n = 3000;
    serve_requests st = {malloc(n * sizeof(serve_request)), n, NULL};
    /* 25 short heavy arrivals a second, more than 8 sequences serve: a
     * backlog that grows for the whole stream; the long light one comes
     * once it has formed */
    for (size_t i = 0; i < n; i++)
        st.r[i] = (serve_request){0.04 * (double)i, 64, 64, 10, 0, 0, 0};
    const size_t L = 26;
    st.r[L] = (serve_request){0.04 * (double)L, 1000, 400, 1, 0, 0, 0};
    double finish[2];
    const double alphas[2] = {10, 1e12};
    for (int k = 0; k < 2; k++) {
        serve_config_init(&c);
        c.sched = SCHED_FAIR;
        c.fair_alpha = alphas[k];
        c.max_batch = 8;
        s = setup(&M7, &A100, &c);
        if (!s || serve_run(s, &st, &r, NULL, NULL, &e)) {
            CHECK(false, "starvation trace: %s", e.msg);
            free(s);
            break;
        }
        finish[k] = r.req[L].finish_s;
        printf("# fair alpha %g: the long light request finishes at %.2f s of %.2f s\n", alphas[k],
               finish[k], r.end_s);
        if (k == 1)
            CHECK(finish[k] >= r.end_s * 0.9, "without aging the light one waits for the stream: "
                                              "%.2f of %.2f s", finish[k], r.end_s);
        else
            CHECK(finish[k] < r.end_s * 0.5, "with aging it is served early: %.2f of %.2f s",
                  finish[k], r.end_s);
        serve_result_free(&r);
        free(s);
    }
    serve_requests_free(&st);
}

/* Everything at once into a small cache (a regression: recompute victims used
 * to come back holding only their first chunk's blocks and thrash): adaptive
 * is again no worse than the better of the two. */
static void test_burst(void)
{
    serve_requests q = random_trace(1000, 1e9, 64, 1200, 16, 1200, 5);
    double wt[3], mk[3];
    for (int pm = 0; pm < 3; pm++) {
        serve_config c;
        serve_config_init(&c);
        c.preempt = (preemption)pm;
        c.kv_bytes = 4.0 * 1024 * 1024 * 1024;
        c.swap_bytes = 1.0 * 1024 * 1024 * 1024;
        serve_setup *s = setup(&M7, &A100, &c);
        serve_result r;
        diag e = {0};
        if (!s || serve_run(s, &q, &r, NULL, NULL, &e)) {
            CHECK(false, "burst %s: %s", preemption_names[pm], e.msg);
            free(s);
            serve_requests_free(&q);
            return;
        }
        check_result(&q, &r, preemption_names[pm]);
        wt[pm] = r.weighted_turnaround_s;
        mk[pm] = r.makespan_s;
        serve_result_free(&r);
        free(s);
    }
    printf("# burst: makespan swap %.2f recompute %.2f adaptive %.2f\n", mk[0], mk[1], mk[2]);
    CHECK(mk[2] <= fmin(mk[0], mk[1]) * (1 + 1e-9) && wt[2] <= fmin(wt[0], wt[1]) * (1 + 1e-9),
          "burst: adaptive no worse than the better");
    serve_requests_free(&q);
}

/* Swapped and waiting requests are admitted in one priority order: under
 * fcfs no request is admitted while one that arrived before it sits swapped
 * out (admission stops at the first that does not fit). */
static void test_admission_order(void)
{
    serve_requests q = random_trace(300, 40, 64, 1500, 16, 400, 3);
    serve_config c;
    serve_config_init(&c);
    c.preempt = PREEMPT_SWAP;
    c.kv_bytes = 2.0 * 1024 * 1024 * 1024;
    c.keep_spans = true;
    serve_setup *s = setup(&M7, &A100, &c);
    serve_result r;
    diag e = {0};
    if (!s || serve_run(s, &q, &r, NULL, NULL, &e)) {
        CHECK(false, "admission order: %s", e.msg);
        free(s);
        serve_requests_free(&q);
        return;
    }
    CHECK(r.preempt_swap > 0, "the trace swaps");
    size_t bad = 0;
    for (size_t i = 0; i < r.nspans; i++) {
        const serve_span *w = &r.spans[i];
        if (w->state != SERVE_RUNNING)
            continue;
        for (size_t j = 0; j < r.nspans; j++) {
            const serve_span *h = &r.spans[j];
            if (h->state == SERVE_SWAPPED && h->start_s < w->start_s && w->start_s < h->end_s &&
                q.r[h->req].arrival_s < q.r[w->req].arrival_s)
                bad++;
        }
    }
    CHECK(bad == 0, "%zu admissions passed an earlier swapped-out request", bad);
    serve_result_free(&r);
    free(s);
    serve_requests_free(&q);
}

int main(void)
{
    diag e = {0};
    if (model_load("llama-2-7b", &M7, &e) || model_load("opt-1.3b", &M13, &e) ||
        hwprofile_load("a100-80gb-sxm", &A100, &e) ||
        hwprofile_load(tap_data("serve/crossover-gpu.yaml"), &XOVER, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    test_setup();
    test_prices();
    test_alone();
    test_conservation();
    test_bad_requests();
    test_adaptive();
    test_burst();
    test_admission_order();
    test_fair();
    return tap_done();
}
