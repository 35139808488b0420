/*
 * test_engine — the CPU engine against a naive reference transformer.
 *
 * The reference is the obvious code: one token at a time, plain loops, fp64
 * accumulation, the same synthetic weights (engine_synthetic_values) rounded
 * as the engine stores them (fp16, or quantized and dequantized to fp16), the
 * KV cache rounded as stored (fp16 or quantized), and hidden states rounded
 * to fp16 between layers as the engine keeps them. For tiny OPT and LLaMA
 * (GQA, SwiGLU, rotary) configs, every placement — all in RAM, weights on
 * disk, KV cache on disk, hidden states on disk, mixed — gives the
 * reference's logits at every step within LOGIT_TOL, and quantized settings
 * within QUANT_LOGIT_TOL; the generated tokens are identical across
 * placements.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/engine.h"
#include "exec/half.h"
#include "exec/quant.h"
#include "exec/safetensors.h"
#include <unistd.h>
#include "reftx.h"
#include "tap.h"

/* fp32 arithmetic against fp64, same rounded inputs: logits of O(1). */
#define LOGIT_TOL 2e-3
/* the same with quantized weights and cache: the rounding is emulated, but a
 * K or V value that fp32 and fp64 put on either side of a code boundary
 * lands one step apart, and a 4-bit step is (max - min) / 15 of its group:
 * a few such flips move the logits by up to ~1e-2 */
#define QUANT_LOGIT_TOL 3e-2

#define PROMPT 7
#define GEN 5
#define GBS 2
#define NGB 3
#define BLS (GBS * NGB)

typedef struct placement_case {
    const char *name;
    const char *pct[6];
} placement_case;

static const placement_case places[] = {
    {"all in RAM", {"0", "100", "0", "100", "0", "100"}},
    {"weights on disk", {"0", "0", "0", "100", "0", "100"}},
    {"KV cache on disk", {"0", "100", "0", "0", "0", "100"}},
    {"hidden states on disk", {"0", "100", "0", "100", "0", "0"}},
    {"mixed", {"0", "40", "0", "34", "0", "67"}},
};

static void run_model(const char *path, quant wq, quant kq, double tol)
{
    diag e = {0};
    model m;
    hwprofile *hw = calloc(1, sizeof *hw);
    CHECK(model_load(path, &m, &e) == LLMSIM_OK, "%s: %s", path, e.msg);
    CHECK(hwprofile_load("cpu-only", hw, &e) == LLMSIM_OK, "%s", e.msg);
    workload w = {PROMPT, GEN, 0};
    ref r;
    ref_init(&r, &m, 11, wq, kq);
    int32_t first_tokens[BLS * GEN];
    const size_t V = (size_t)m.vocab_size;
    float *logits = malloc(sizeof(float) * GEN * BLS * V);
    for (size_t c = 0; c < sizeof places / sizeof places[0]; c++) {
        policy p;
        policy_init(&p);
        CHECK(policy_from_percent(places[c].pct, &p, &e) == LLMSIM_OK, "%s", e.msg);
        p.gpu_batch_size = GBS;
        p.num_gpu_batches = NGB;
        p.weight_quant = wq;
        p.kv_quant = kq;
        plan pl;
        CHECK(plan_build(&m, hw, &p, &w, &pl, &e) == LLMSIM_OK, "%s", e.msg);
        engine_opts o = {0};
        o.synthetic_seed = 11;
        o.prompt_seed = 5;
        o.threads = 2;
        o.logits_out = logits;
        engine_result res;
        llmsim_status st = engine_run(&m, hw, &p, &w, &pl, &o, &res, &e);
        CHECK(st == LLMSIM_OK, "%s, %s: %s", m.name, places[c].name, e.msg);
        if (st) {
            plan_free(&pl);
            continue;
        }
        double worst = ref_max_logit_error(&r, logits, res.tokens, o.prompt_seed, BLS, PROMPT, GEN);
        CHECK(worst <= tol, "%s, %s: logits differ from the reference by %.3g (> %.3g)", m.name,
              places[c].name, worst, tol);
        if (c == 0)
            memcpy(first_tokens, res.tokens, sizeof first_tokens);
        else
            CHECK(memcmp(first_tokens, res.tokens, sizeof first_tokens) == 0,
                  "%s, %s: tokens differ from the all-in-RAM run", m.name, places[c].name);
        CHECK(res.direct_io || c == 0, "%s: O_DIRECT not in effect on the offload files", places[c].name);
        printf("# %s %s%s: max |logit - reference| = %.3g over %d steps x %d sequences\n", m.name,
               places[c].name, wq.bits ? " (quantized)" : "", worst, GEN, BLS);
        engine_result_free(&res);
        plan_free(&pl);
    }
    free(logits);
    ref_free(&r);
    free(hw);
}

/* Perplexity: the NLL the engine sums in the prefill equals the reference's
 * over every position of every prompt, on disk as in RAM. */
static void test_perplexity(void)
{
    diag e = {0};
    model m;
    hwprofile *hw = calloc(1, sizeof *hw);
    CHECK(model_load(tap_data("models/tiny-opt.yaml"), &m, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(hwprofile_load("cpu-only", hw, &e) == LLMSIM_OK, "%s", e.msg);
    const quant none = {0, 0};
    ref r;
    ref_init(&r, &m, 11, none, none);
    const size_t V = (size_t)m.vocab_size;
    int32_t prompts[BLS * PROMPT];
    long long from[BLS];
    for (int s = 0; s < BLS; s++) {
        from[s] = s == 0 ? 1 : 3; /* the first window from its second token, the others later */
        for (int a = 0; a < PROMPT; a++)
            prompts[s * PROMPT + a] = (int32_t)((s * 37 + a * 11) % (int)V);
    }
    double want = 0;
    long long count = 0;
    double *lg = malloc(sizeof(double) * PROMPT * V);
    for (int s = 0; s < BLS; s++) {
        ref_sequence(&r, prompts + s * PROMPT, PROMPT - 1, 0, lg);
        for (int pos = (int)from[s] - 1; pos < PROMPT - 1; pos++) {
            const double *l = lg + (size_t)pos * V;
            double mx = l[0], sum = 0;
            for (size_t v = 1; v < V; v++)
                mx = l[v] > mx ? l[v] : mx;
            for (size_t v = 0; v < V; v++)
                sum += exp(l[v] - mx);
            want += -(l[prompts[s * PROMPT + pos + 1]] - mx - log(sum));
            count++;
        }
    }
    free(lg);
    const char *pcts[2][6] = {{"0", "100", "0", "100", "0", "100"}, {"0", "0", "0", "0", "0", "0"}};
    for (int c = 0; c < 2; c++) {
        policy p;
        policy_init(&p);
        policy_from_percent(pcts[c], &p, &e);
        p.gpu_batch_size = GBS;
        p.num_gpu_batches = NGB;
        workload w = {PROMPT, 1, BLS};
        plan pl;
        CHECK(plan_build(&m, hw, &p, &w, &pl, &e) == LLMSIM_OK, "%s", e.msg);
        engine_opts o = {0};
        o.synthetic_seed = 11;
        o.threads = 2;
        o.prompts = prompts;
        o.score_from = from;
        o.num_windows = BLS;
        engine_result res;
        CHECK(engine_run(&m, hw, &p, &w, &pl, &o, &res, &e) == LLMSIM_OK, "%s", e.msg);
        CHECK(res.nll_count == count, "scored %lld tokens, want %lld", res.nll_count, count);
        CHECK_REL(res.nll_sum, want, 1e-4, "perplexity NLL vs the reference");
        printf("# perplexity (%s): engine %.6g, reference %.6g over %lld tokens\n",
               c ? "on disk" : "in RAM", exp(res.nll_sum / (double)res.nll_count),
               exp(want / (double)count), count);
        engine_result_free(&res);
        plan_free(&pl);
    }
    ref_free(&r);
    free(hw);
}

/* A Hugging Face checkpoint (written here from the synthetic values, in two
 * shards with an index, fp32) loads to the same model: the same logits, bit
 * for bit, as --synthetic with the same seed. */
static void test_checkpoint(const char *model_path)
{
    diag e = {0};
    model m;
    hwprofile *hw = calloc(1, sizeof *hw);
    CHECK(model_load(model_path, &m, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(hwprofile_load("cpu-only", hw, &e) == LLMSIM_OK, "%s", e.msg);
    char dir[] = "/tmp/llmsim-ckpt-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    const int L = (int)m.num_layers;
    bool opt = m.family == MODEL_FAMILY_OPT;
    /* shard 1: layers 0..L-2; shard 2: the last layer and the head */
    st_write_tensor wt[2][256];
    int nw[2] = {0, 0};
    float *bufs[512];
    int64_t shapes[512][2];
    char names[512][128];
    int nb = 0;
    char index[16384];
    size_t ip = (size_t)snprintf(index, sizeof index, "{\"metadata\": {}, \"weight_map\": {");
    for (int u = 0; u <= L; u++) {
        model_tensor t[MODEL_MAX_TENSORS];
        int n = u == L ? model_head_tensors(&m, t) : model_layer_tensors(&m, t);
        int shard = u < L - 1 ? 0 : 1;
        for (int i = 0; i < n; i++, nb++) {
            bufs[nb] = malloc(sizeof(float) * (size_t)(t[i].rows * t[i].cols));
            engine_synthetic_values(11, u, &t[i], bufs[nb]);
            if (u == L)
                snprintf(names[nb], sizeof names[nb], "%s", t[i].name);
            else
                snprintf(names[nb], sizeof names[nb], "%s.%d.%s", opt ? "model.decoder.layers" : "model.layers",
                         u, t[i].name);
            bool vec = t[i].rows == 1;
            shapes[nb][0] = vec ? t[i].cols : t[i].rows;
            shapes[nb][1] = t[i].cols;
            wt[shard][nw[shard]++] = (st_write_tensor){names[nb], ST_F32, vec ? 1 : 2, shapes[nb], bufs[nb]};
            ip += (size_t)snprintf(index + ip, sizeof index - ip, "%s\"%s\": \"part-%d.safetensors\"",
                                   nb ? ", " : "", names[nb], shard + 1);
        }
    }
    snprintf(index + ip, sizeof index - ip, "}}");
    char path[256];
    for (int sh = 0; sh < 2; sh++) {
        snprintf(path, sizeof path, "%s/part-%d.safetensors", dir, sh + 1);
        CHECK(st_write(path, wt[sh], (size_t)nw[sh], &e) == LLMSIM_OK, "%s", e.msg);
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    fputs(index, f);
    fclose(f);

    const size_t V = (size_t)m.vocab_size;
    float *a = malloc(sizeof(float) * GEN * BLS * V), *b = malloc(sizeof(float) * GEN * BLS * V);
    const char *pct[6] = {"0", "50", "0", "50", "0", "100"};
    policy p;
    policy_init(&p);
    policy_from_percent(pct, &p, &e);
    p.gpu_batch_size = GBS;
    p.num_gpu_batches = NGB;
    workload w = {PROMPT, GEN, 0};
    plan pl;
    CHECK(plan_build(&m, hw, &p, &w, &pl, &e) == LLMSIM_OK, "%s", e.msg);
    for (int pass = 0; pass < 2; pass++) {
        engine_opts o = {0};
        o.synthetic_seed = 11;
        o.prompt_seed = 5;
        o.threads = 2;
        o.logits_out = pass ? b : a;
        o.weights_path = pass ? dir : NULL;
        engine_result res;
        CHECK(engine_run(&m, hw, &p, &w, &pl, &o, &res, &e) == LLMSIM_OK, "%s: %s", m.name, e.msg);
        engine_result_free(&res);
    }
    CHECK(memcmp(a, b, sizeof(float) * GEN * BLS * V) == 0,
          "%s: a checkpoint of the synthetic weights gives other logits", m.name);
    /* a checkpoint that lacks a tensor says which */
    snprintf(path, sizeof path, "%s/part-2.safetensors", dir);
    CHECK(st_write(path, wt[1], (size_t)nw[1] - 1, &e) == LLMSIM_OK, "%s", e.msg);
    engine_opts o = {0};
    o.weights_path = dir;
    o.threads = 1;
    engine_result res;
    diag_clear(&e);
    CHECK(engine_run(&m, hw, &p, &w, &pl, &o, &res, &e) == LLMSIM_EINPUT, "a missing tensor is bad input");
    CHECK(strstr(e.msg, "tensor") != NULL, "the message names the tensor: %s", e.msg);
    engine_result_free(&res);
    plan_free(&pl);
    for (int i = 0; i < nb; i++)
        free(bufs[i]);
    free(a);
    free(b);
    for (int sh = 0; sh < 2; sh++) {
        snprintf(path, sizeof path, "%s/part-%d.safetensors", dir, sh + 1);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    unlink(path);
    rmdir(dir);
    free(hw);
}

int main(void)
{
    test_checkpoint(tap_data("models/tiny-opt.yaml"));
    test_checkpoint(tap_data("models/tiny-llama.yaml"));
    test_perplexity();
    const quant none = {0, 0};
    run_model(tap_data("models/tiny-opt.yaml"), none, none, LOGIT_TOL);
    run_model(tap_data("models/tiny-llama.yaml"), none, none, LOGIT_TOL);
    run_model(tap_data("models/tiny-opt.yaml"), (quant){4, 32}, (quant){8, 32}, QUANT_LOGIT_TOL);
    run_model(tap_data("models/tiny-llama.yaml"), (quant){8, 64}, (quant){4, 16}, QUANT_LOGIT_TOL);
    return tap_done();
}
