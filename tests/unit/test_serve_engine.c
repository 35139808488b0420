/*
 * test_serve_engine — the serving engine (exec/serve.h) on the CPU:
 *
 *  - every request's greedy tokens, and the logits of every step bit for
 *    bit, equal those of engine_run (`llmsim run`) on its prompt alone, under continuous batching with
 *    chunked prefill, for swap, recompute and adaptive preemption forced by a
 *    tiny KV pool, fcfs and fair, weights in RAM and on disk, for tiny OPT
 *    and LLaMA (GQA, rotary, SwiGLU) models;
 *  - each preemption kind happens (the test would pass vacuously otherwise);
 *  - one scheduler, two clocks: the measured iteration times replayed
 *    through serve-sim's loop (serve_run_clocked) give the same schedule,
 *    iteration by iteration (sequences, prefill and decode tokens,
 *    preemptions by kind, blocks swapped) and the same per-request times;
 *  - the iteration rows account for every token processed (recomputed ones
 *    again), each request is admitted after it arrives and before its first
 *    token, and every preemption is an event (each swap measured, closed);
 *  - with the prefix cache, requests whose prompts share prefixes (one
 *    group's arriving together, so that some compute the same blocks twice,
 *    one whose whole prompt is shared, later ones finding blocks cached, a
 *    pool small enough to evict cached blocks and to preempt) still get the
 *    solo runs' tokens and logits bit for bit, with blocks found in the cache,
 *    and the replay through serve-sim's loop with the engine's prefix keys
 *    gives the same schedule;
 *  - a pool too small for the longest request is refused before anything
 *    is allocated (LLMSIM_EINPUT naming the request).
 *
 * The same cases run on the GPU serving backend (exec/cuda/serve.c) for a
 * profile with a GPU, against the GPU engine's solo runs:
 *
 *   test_serve_engine         the CPU backend, then the GPU backend on the
 *                             host emulation of the device: bit for bit
 *                             ("weights on disk" is weights in CPU memory,
 *                             streamed every iteration, for the GPU)
 *   test_serve_engine cuda    the GPU backend on a CUDA GPU (exit 77 where
 *                             there is none): cuBLAS's GEMMs may change a
 *                             row's last bits with the batch, so logits are
 *                             held to a tolerance, and where a served token
 *                             differs from the solo run's, the solo run's
 *                             logits must nearly tie between the two there
 *
 * On the GPU backend (emulated and CUDA) the cases also run a tiny model
 * with every later family's feature (written under /tmp: q/k/v biases,
 * per-head q/k norms, Gemma's (1 + weight) norms, scaled embeddings and
 * tanh GeGLU, llama3 RoPE scaling, and a sliding window of 6 positions that
 * five of the seven prompts pass, and every generation) against its solo runs,
 * which tests/unit/test_engine_gpu.c holds against the CPU engine.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/cuda/dev.h"
#include "exec/engine.h"
#include "exec/model_io.h"
#include "exec/serve.h"
#include "sim/serve.h"
#include "tap.h"

#define NREQ 7
/* CUDA: the logits' tolerance (test_engine_gpu's), and how close two logits
 * of a solo run must be for a served token to take the other */
#define CUDA_LOGIT_TOL 5e-3
#define NEAR_TIE 2e-2

typedef enum mode { M_CPU, M_GPU_EMULATED, M_CUDA } mode;
static mode MODE = M_CPU;
static const char *const mode_names[3] = {"cpu", "gpu (emulated)", "cuda"};

/* The placement of a case: everything in the compute device's memory, or
 * the weights off it (on disk for the CPU; in CPU memory for the GPU). */
static void case_policy(bool off, policy *p)
{
    static const char *const cpu[2][6] = {{"0", "100", "0", "100", "0", "100"},
                                          {"0", "0", "0", "100", "0", "100"}};
    static const char *const gpu[2][6] = {{"100", "0", "100", "0", "100", "0"},
                                          {"0", "100", "100", "0", "100", "0"}};
    diag e = {0};
    policy_init(p);
    CHECK(policy_from_percent(MODE == M_CPU ? cpu[off] : gpu[off], p, &e) == LLMSIM_OK, "%s",
          e.msg);
}

static const int64_t prompts[NREQ] = {13, 5, 29, 8, 21, 3, 17};
static const int64_t outputs[NREQ] = {9, 12, 4, 10, 6, 11, 7};
static const double arrivals[NREQ] = {0, 0, 0, 0.0001, 0.0002, 0.0002, 0.0003};

/* Prefix groups (with the prefix cache): requests 0, 2, 4 and 6 start with
 * the same 12 tokens (0 and 2 arrive together), 1 and 3 with the same 5
 * (the whole of request 1's prompt). */
static const uint32_t groups[NREQ] = {1, 2, 1, 2, 1, 0, 1};
static const int64_t shared[NREQ] = {12, 5, 12, 5, 12, 0, 12};

static void make_requests(serve_requests *q, bool prefix)
{
    memset(q, 0, sizeof *q);
    q->r = calloc(NREQ, sizeof *q->r);
    q->n = NREQ;
    for (int i = 0; i < NREQ; i++)
        q->r[i] = (serve_request){arrivals[i], prompts[i], outputs[i], 1.0 + (i % 3), 0,
                                  prefix ? groups[i] : 0, prefix ? shared[i] : 0};
}

/* The tokens of `llmsim run` on request i's prompt alone (all in RAM), and
 * the logits of each of its steps into logits [out][vocab]. */
static int32_t *solo_tokens(const model *m, const hwprofile *hw, const int32_t *prompt, int64_t plen,
                            int64_t out, float *logits)
{
    diag e = {0};
    policy p;
    case_policy(false, &p);
    workload w = {plen, out, 1};
    plan pl;
    CHECK(plan_build(m, hw, &p, &w, &pl, &e) == LLMSIM_OK, "%s", e.msg);
    engine_opts o = {0};
    o.synthetic_seed = 11;
    o.threads = 2;
    o.prompts = prompt;
    o.logits_out = logits;
    o.gpu_emulated = MODE == M_GPU_EMULATED;
    engine_result r;
    CHECK(engine_run(m, hw, &p, &w, &pl, &o, &r, &e) == LLMSIM_OK, "solo run: %s", e.msg);
    int32_t *t = malloc((size_t)out * sizeof *t);
    memcpy(t, r.tokens, (size_t)out * sizeof *t);
    engine_result_free(&r);
    plan_free(&pl);
    return t;
}

/* Replaying measured times: every iteration formed must match the measured
 * one's counts. */
typedef struct replay {
    const engine_serve_result *er;
    long long mismatches, seen;
} replay;

static double replay_clock(long long index, const serve_iter *it, double predicted_s, void *ctx)
{
    (void)predicted_s;
    replay *R = ctx;
    R->seen++;
    if (index >= R->er->r.iterations) {
        R->mismatches++;
        return 0;
    }
    const serve_iter_row *m = &R->er->r.iters[index];
    int64_t pre = 0, dec = 0;
    int ps = 0, pr = 0;
    for (int c = 0; c < it->nch; c++) {
        if (it->ch[c].tokens == 1 && it->ch[c].emits && it->ch[c].ctx > 0)
            dec++;
        else
            pre += it->ch[c].tokens;
    }
    for (int k = 0; k < it->npre; k++)
        *(it->pre[k].how == PREEMPT_SWAP ? &ps : &pr) += 1;
    (void)dec;
    if (it->nch != m->seqs || pre + dec != m->prefill_tokens + m->decode_tokens ||
        ps != m->preempt_swap || pr != m->preempt_recompute || it->out_blocks != m->out_blocks ||
        it->in_blocks != m->in_blocks || fabs(it->start_s - m->start_s) > 1e-9)
        R->mismatches++;
    return m->end_s - m->start_s;
}

/* The served logits, kept to hold against the solo runs' after the run. */
typedef struct logit_check {
    float *got[NREQ];   /* [outputs[i]][vocab] */
    size_t vocab;
    long long calls, bad;
} logit_check;

static void on_logits(void *ctx, uint32_t req, int32_t step, const float *logits, size_t vocab)
{
    logit_check *L = ctx;
    L->calls++;
    if (req >= NREQ || step < 0 || step >= outputs[req] || vocab != L->vocab) {
        L->bad++;
        return;
    }
    memcpy(L->got[req] + (size_t)step * vocab, logits, vocab * sizeof *logits);
}

/* Request i against its solo run: up to the first token that differs (none
 * may, but on CUDA), the logits equal (bit for bit; on CUDA within the
 * tolerance); at that token the solo run's logits of the two nearly tie.
 * Returns the steps compared, -1 on a failure (why in why). */
static int compare_request(const logit_check *L, int i, const int32_t *served,
                           const int32_t *solo_tok, const float *solo, char *why, size_t len)
{
    const size_t V = L->vocab;
    int d = 0;
    while (d < outputs[i] && served[d] == solo_tok[d])
        d++;
    if (d < outputs[i] && MODE != M_CUDA) {
        snprintf(why, len, "token %d is %d, the solo run's %d", d, served[d], solo_tok[d]);
        return -1;
    }
    const int upto = d < outputs[i] ? d + 1 : d; /* the step that drew the differing token too */
    for (int k = 0; k < upto; k++) {
        const float *a = L->got[i] + (size_t)k * V, *b = solo + (size_t)k * V;
        if (MODE != M_CUDA) {
            if (memcmp(a, b, V * sizeof *a) != 0) {
                snprintf(why, len, "the logits of step %d differ from the solo run's bits", k);
                return -1;
            }
            continue;
        }
        for (size_t v = 0; v < V; v++)
            if (!(fabsf(a[v] - b[v]) <= CUDA_LOGIT_TOL)) {
                snprintf(why, len, "step %d logit %zu is %g, the solo run's %g", k, v, a[v], b[v]);
                return -1;
            }
    }
    if (d < outputs[i]) {
        const float *b = solo + (size_t)d * V;
        if (!(b[served[d]] >= b[solo_tok[d]] - NEAR_TIE)) {
            snprintf(why, len, "token %d is %d where the solo run's %d leads it by %g, no near-tie",
                     d, served[d], solo_tok[d], b[solo_tok[d]] - b[served[d]]);
            return -1;
        }
    }
    return upto;
}

typedef struct scase {
    const char *name;
    preemption how;
    scheduler sched;
    bool disk, prefix;
} scase;

static void serve_case(const model *m, const hwprofile *hw, const scase *sc, int32_t **solo,
                       float *const *solo_logits, int32_t *const *seqs)
{
    diag e = {0};
    policy p;
    case_policy(sc->disk, &p);
    serve_config cfg;
    serve_config_init(&cfg);
    cfg.block_size = 4;
    cfg.max_batch = 4;
    cfg.token_budget = 16;
    cfg.preempt = sc->how;
    cfg.sched = sc->sched;
    cfg.prefix_cache = sc->prefix;
    serve_setup s;
    cfg.kv_bytes = 1e6; /* for the block's size */
    CHECK(serve_setup_init(&s, m, hw, &p, &cfg, &e) == LLMSIM_OK, "%s", e.msg);
    /* 12 blocks of 4 tokens: the longest request (29 + 4, 9 blocks) fits alone */
    cfg.kv_bytes = 12 * s.block_bytes;
    cfg.swap_bytes = sc->how == PREEMPT_RECOMPUTE ? 0 : 64 * s.block_bytes;
    CHECK(serve_setup_init(&s, m, hw, &p, &cfg, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(s.total_blocks == 12, "%s: 12 blocks (%lld)", sc->name, (long long)s.total_blocks);
    serve_requests q;
    make_requests(&q, sc->prefix);
    engine_opts eo = {0};
    eo.synthetic_seed = 11;
    eo.threads = 2;
    eo.gpu_emulated = MODE == M_GPU_EMULATED;
    logit_check lc = {.vocab = (size_t)m->vocab_size};
    for (int i = 0; i < NREQ; i++)
        lc.got[i] = calloc((size_t)outputs[i] * lc.vocab, sizeof *lc.got[i]);
    engine_serve_opts so = {.eng = &eo, .prompts = (const int32_t *const *)seqs, .wall_clock = false,
                            .on_logits = on_logits, .logits_ctx = &lc};
    engine_serve_result er;
    llmsim_status st = engine_serve(&s, &q, &so, &er, &e);
    CHECK(st == LLMSIM_OK, "%s %s %s: %s", mode_names[MODE], m->name, sc->name, e.msg);
    if (st) {
        for (int i = 0; i < NREQ; i++)
            free(lc.got[i]);
        serve_requests_free(&q);
        return;
    }
    CHECK(!strcmp(er.engine, MODE == M_CPU ? "cpu" : "gpu"), "%s: served by the %s backend",
          mode_names[MODE], er.engine);
    int64_t want = 0;
    int differ = 0;
    for (int i = 0; i < NREQ; i++) {
        want += outputs[i];
        char why[200];
        int n = compare_request(&lc, i, er.tokens[i], solo[i], solo_logits[i], why, sizeof why);
        CHECK(n >= 0, "%s %s %s: request %d against its solo run: %s", mode_names[MODE], m->name,
              sc->name, i + 1, why);
        differ += n >= 0 && n < outputs[i];
    }
    CHECK(lc.bad == 0 && lc.calls == want, "%s %s: %lld logit rows (%lld expected, %lld bad)",
          m->name, sc->name, lc.calls, (long long)want, lc.bad);
    for (int i = 0; i < NREQ; i++)
        free(lc.got[i]);
    if (differ)
        printf("# %s %s %s: %d requests took a near-tied token\n", mode_names[MODE], m->name,
               sc->name, differ);
    if (sc->how == PREEMPT_SWAP)
        CHECK(er.r.preempt_swap > 0, "%s %s: nothing was swapped", m->name, sc->name);
    if (sc->how == PREEMPT_RECOMPUTE)
        CHECK(er.r.preempt_recompute > 0, "%s %s: nothing was recomputed", m->name, sc->name);
    if (sc->how == PREEMPT_ADAPTIVE)
        CHECK(er.r.preempt_swap + er.r.preempt_recompute > 0, "%s %s: nothing was preempted",
              m->name, sc->name);
    if (sc->prefix)
        CHECK(er.r.prefix_hit_tokens > 0 && er.r.prefix_evicted > 0,
              "%s %s: %.0f prompt tokens found cached, %lld cached blocks reused (both must "
              "happen)", m->name, sc->name, er.r.prefix_hit_tokens, er.r.prefix_evicted);
    /* the rows: every token processed once, plus the recomputed ones, less
     * those found cached; each request admitted after it arrived and before
     * its first token; every preemption an event, each swap measured and
     * closed */
    int64_t rows_tokens = 0, hits = 0,
            want_tokens = (int64_t)er.r.recomputed_tokens - (int64_t)er.r.prefix_hit_tokens;
    for (long long k = 0; k < er.r.iterations; k++)
        hits += er.r.iters[k].hit_tokens;
    CHECK(hits == (int64_t)er.r.prefix_hit_tokens, "%s %s: rows' hit tokens %lld, result's %.0f",
          m->name, sc->name, (long long)hits, er.r.prefix_hit_tokens);
    for (long long k = 0; k < er.r.iterations; k++)
        rows_tokens += er.r.iters[k].prefill_tokens + er.r.iters[k].decode_tokens;
    int order_bad = 0;
    for (int i = 0; i < NREQ; i++) {
        const serve_req_result *rr = &er.r.req[i];
        want_tokens += prompts[i] + outputs[i] - 1;
        order_bad += !(q.r[i].arrival_s <= rr->admitted_s && rr->admitted_s <= rr->first_token_s &&
                       rr->first_token_s <= rr->finish_s);
    }
    CHECK(rows_tokens == want_tokens, "%s %s: the iteration rows hold %lld tokens, not %lld",
          m->name, sc->name, (long long)rows_tokens, (long long)want_tokens);
    CHECK(order_bad == 0, "%s %s: %d requests with times out of order", m->name, sc->name,
          order_bad);
    long long nswap = 0, nrec = 0, swap_bad = 0;
    for (size_t k = 0; k < er.nevents; k++) {
        const serve_event *ev = &er.events[k];
        if (ev->how == PREEMPT_SWAP) {
            nswap++;
            swap_bad += !(ev->done && ev->measured_s > 0 && ev->predicted_s > 0);
        } else {
            nrec++;
        }
    }
    CHECK(nswap == er.r.preempt_swap && nrec == er.r.preempt_recompute && swap_bad == 0,
          "%s %s: events %lld swaps (%lld unmeasured), %lld recomputes, for %lld and %lld",
          m->name, sc->name, nswap, swap_bad, nrec, er.r.preempt_swap, er.r.preempt_recompute);
    printf("# %s %s %s: %lld iterations, %lld swaps, %lld recomputes, %.0f prompt tokens cached, "
           "tokens equal to solo runs\n", mode_names[MODE], m->name, sc->name, er.r.iterations,
           er.r.preempt_swap, er.r.preempt_recompute, er.r.prefix_hit_tokens);

    /* the same schedule on the replayed clock */
    replay R = {&er, 0, 0};
    serve_result rr;
    CHECK(serve_run_clocked(&s, &q, sc->prefix ? &er.keys : NULL, &rr, replay_clock, &R, NULL,
                            NULL, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(R.mismatches == 0 && R.seen == er.r.iterations,
          "%s %s: replay differs in %lld of %lld iterations (%lld measured)", m->name, sc->name,
          R.mismatches, R.seen, er.r.iterations);
    double worst = 0;
    for (int i = 0; i < NREQ; i++)
        worst = fmax(worst, fmax(fabs(rr.req[i].finish_s - er.r.req[i].finish_s),
                                 fabs(rr.req[i].first_token_s - er.r.req[i].first_token_s)));
    CHECK(worst < 1e-9 && rr.preempt_swap == er.r.preempt_swap &&
              rr.preempt_recompute == er.r.preempt_recompute &&
              rr.prefix_hit_tokens == er.r.prefix_hit_tokens &&
              rr.prefix_evicted == er.r.prefix_evicted,
          "%s %s: replayed request times differ by %.3g s", m->name, sc->name, worst);
    serve_result_free(&rr);
    engine_serve_result_free(&er);
    serve_requests_free(&q);
}

static void test_model(const char *path)
{
    diag e = {0};
    model m;
    hwprofile *hw = calloc(1, sizeof *hw);
    CHECK(model_load(path, &m, &e) == LLMSIM_OK, "%s: %s", path, e.msg);
    CHECK(hwprofile_load(MODE == M_CPU ? "cpu-only" : "t4-flexgen", hw, &e) == LLMSIM_OK, "%s",
          e.msg);
    /* [0]: every prompt its own; [1]: the prefix groups' shared */
    int32_t *seqs[2][NREQ], *solo[2][NREQ];
    float *logits[2][NREQ];
    engine_opts po = {0};
    po.prompt_seed = 3;
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < NREQ; i++) {
            seqs[v][i] = malloc((size_t)prompts[i] * sizeof *seqs[v][i]);
            mio_prompt(&po, i, 0, prompts[i], (size_t)m.vocab_size, seqs[v][i]);
            if (v && groups[i])
                mio_prompt(&po, 1000 + groups[i], 0, shared[i], (size_t)m.vocab_size, seqs[v][i]);
            logits[v][i] = malloc((size_t)outputs[i] * (size_t)m.vocab_size * sizeof *logits[v][i]);
            solo[v][i] = solo_tokens(&m, hw, seqs[v][i], prompts[i], outputs[i], logits[v][i]);
        }
    const scase cases[] = {
        {"swap, fcfs", PREEMPT_SWAP, SCHED_FCFS, false, false},
        {"recompute, fcfs", PREEMPT_RECOMPUTE, SCHED_FCFS, false, false},
        {"adaptive, fair", PREEMPT_ADAPTIVE, SCHED_FAIR, false, false},
        {"swap, fair, weights on disk", PREEMPT_SWAP, SCHED_FAIR, true, false},
        {"recompute, weights on disk", PREEMPT_RECOMPUTE, SCHED_FCFS, true, false},
        {"prefix cache, swap, fcfs", PREEMPT_SWAP, SCHED_FCFS, false, true},
        {"prefix cache, recompute, fcfs", PREEMPT_RECOMPUTE, SCHED_FCFS, false, true},
        {"prefix cache, adaptive, fair, weights on disk", PREEMPT_ADAPTIVE, SCHED_FAIR, true, true},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int v = cases[c].prefix;
        serve_case(&m, hw, &cases[c], solo[v], logits[v], seqs[v]);
    }
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < NREQ; i++) {
            free(seqs[v][i]);
            free(solo[v][i]);
            free(logits[v][i]);
        }
    free(hw);
}

/* A pool smaller than the longest request: refused, naming it. */
static void test_refused(const char *path)
{
    diag e = {0};
    model m;
    hwprofile *hw = calloc(1, sizeof *hw);
    CHECK(model_load(path, &m, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(hwprofile_load("cpu-only", hw, &e) == LLMSIM_OK, "%s", e.msg);
    policy p;
    policy_init(&p);
    const char *ram[6] = {"0", "100", "0", "100", "0", "100"};
    CHECK(policy_from_percent(ram, &p, &e) == LLMSIM_OK, "%s", e.msg);
    serve_config cfg;
    serve_config_init(&cfg);
    cfg.block_size = 4;
    cfg.kv_bytes = 1e6;
    serve_setup s;
    CHECK(serve_setup_init(&s, &m, hw, &p, &cfg, &e) == LLMSIM_OK, "%s", e.msg);
    cfg.kv_bytes = 5 * s.block_bytes; /* 20 tokens: request 3 needs 33 */
    CHECK(serve_setup_init(&s, &m, hw, &p, &cfg, &e) == LLMSIM_OK, "%s", e.msg);
    serve_requests q;
    make_requests(&q, false);
    engine_opts eo = {0};
    engine_serve_opts so = {.eng = &eo};
    engine_serve_result er;
    diag_clear(&e);
    llmsim_status st = engine_serve(&s, &q, &so, &er, &e);
    CHECK(st == LLMSIM_EINPUT && strstr(e.msg, "request 1"), "a pool too small is refused: %d %s",
          st, e.msg);
    serve_requests_free(&q);
    free(hw);
}

/* The later families' features on the GPU backend: a tiny model with all
 * of them, written to a YAML file in a new directory under /tmp (removed
 * after). */
static void test_features(void)
{
    char dir[] = "/tmp/test_serve_engine.XXXXXX", path[sizeof dir + 32];
    if (!mkdtemp(dir)) {
        CHECK(false, "cannot create a directory under /tmp for the model");
        return;
    }
    snprintf(path, sizeof path, "%s/tiny-features.yaml", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (f) {
        fputs("llmsim: model/1\nname: tiny-features\nfamily: llama\nlayers: 2\nhidden_size: 64\n"
              "heads: 4\nkv_heads: 2\nffn_size: 128\nffn_kind: geglu_tanh\nvocab_size: 160\n"
              "max_context: 256\nnorm: rmsnorm\nposition: rotary\ntied_embeddings: false\n"
              "dtype: fp16\nnorm_eps: 1.0e-5\nrope_theta: 10000\nqkv_bias: true\nqk_norm: true\n"
              "norm_plus_one: true\nscale_embeddings: true\nsliding_window: 6\n"
              "rope_scaling: {type: llama3, factor: 8, low_freq_factor: 1, high_freq_factor: 4, "
              "original_max_context: 16}\n",
              f);
        fclose(f);
        test_model(path);
        unlink(path);
    }
    rmdir(dir);
}

int main(int argc, char **argv)
{
    char opt[1024], llama[1024];
    const char *data = getenv("LLMSIM_TEST_DATA");
    snprintf(opt, sizeof opt, "%s/models/tiny-opt.yaml", data ? data : "tests/data");
    snprintf(llama, sizeof llama, "%s/models/tiny-llama.yaml", data ? data : "tests/data");
    if (argc > 1 && !strcmp(argv[1], "cuda")) {
        if (!gdev_available(GDEV_CUDA)) {
            printf("# skip: no CUDA GPU\n");
            return 77;
        }
        MODE = M_CUDA;
        test_model(opt);
        test_model(llama);
        test_features();
        return tap_done();
    }
    test_model(opt);
    test_refused(opt);
    test_model(llama);
    MODE = M_GPU_EMULATED;
    test_model(opt);
    test_model(llama);
    test_features();
    return tap_done();
}
