/*
 * test_engine_gpu — the GPU engine (exec/cuda/backend.c) against the
 * reference transformer (reftx.h), for tiny OPT and LLaMA configs, every
 * placement of weights, KV cache and hidden states over GPU, CPU memory and
 * disk, with and without CPU attention, and quantized weights and KV cache.
 *
 *   test_engine_gpu         on the host emulation of the device (CI)
 *   test_engine_gpu cuda    on the CUDA GPU (exit 77 where there is none)
 *
 * The reference rounds every GEMM input to fp16, as the GPU engine's GEMMs
 * take it, so the tolerances are test_engine's. On the emulated device every
 * placement runs the same arithmetic, so the generated tokens must be
 * identical across placements; on CUDA only the logits are held to the
 * reference (the reference follows the engine's tokens either way).
 * Every run also checks the GPU memory the allocator saw against the plan's
 * predicted GPU peak, and that every task was timed (end >= start >= 0).
 *
 * The later families' features (models/model.h: RoPE scaling linear and
 * llama3, q/k/v biases, per-head q/k norms, the (1 + weight) RMSNorm, scaled
 * embeddings, the tanh GeGLU MLP, sliding windows shorter and longer than
 * the prompt with generation past them), which the reference does not know,
 * are held against the CPU engine instead (itself checked against an fp64
 * reference of transformers by tests/ref/compare.py): tiny fp32 models
 * written under /tmp, one feature each and one with all of them, so that
 * the GPU engine's GEMMs round nothing and compute what the CPU engine does.
 * Placements: everything on the GPU, weights, KV cache and hidden states in
 * CPU memory and on disk, mixed, CPU attention over a cache in CPU memory and
 * on disk, and an 8-bit KV cache on the GPU, in CPU memory and on disk (the
 * ring quantized, and dequantized for attention). Each sequence's logits
 * are compared step by step while the two engines' tokens agree (LOGIT_TOL;
 * QUANT_LOGIT_TOL with the quantized cache, which the GPU dequantizes to
 * fp16 and the CPU to fp32; CPU_ATTN_TOL under CPU attention, whose q comes
 * from the GPU in fp16), and a token may differ only where the CPU engine's
 * logits of the two nearly tie; on the emulated device without CPU
 * attention and quantization the tokens must be the CPU engine's, every one
 * (the logits then agree to the bit, though only LOGIT_TOL is asked).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/cuda/dev.h"
#include "exec/engine.h"
#include "exec/model_io.h"
#include "reftx.h"
#include "sim/sim.h"
#include "tap.h"

/* fp32 arithmetic against fp64 on the same rounded inputs, as test_engine's
 * 2e-3, plus what the fp16 rounding of every GEMM input adds: an input that
 * fp32 and fp64 put on either side of an fp16 rounding boundary enters one
 * fp16 ulp (2^-11 relative) apart, and a few such flips per layer move
 * O(1) logits by a few 1e-3 */
#define LOGIT_TOL 5e-3
/* quantized weights and cache: test_engine's 3e-2 for code-boundary flips,
 * which the fp16 GEMM inputs make a little more frequent */
#define QUANT_LOGIT_TOL 5e-2

#define PROMPT 7
#define GEN 5
#define GBS 2
#define NGB 3
#define BLS (GBS * NGB)

typedef struct gpu_case {
    const char *name;
    const char *pct[6]; /* weights gpu, cpu; cache gpu, cpu; hidden gpu, cpu (%) */
    bool cpu_attention;
} gpu_case;

static const gpu_case cases[] = {
    {"all on the GPU", {"100", "0", "100", "0", "100", "0"}, false},
    {"weights in CPU memory", {"0", "100", "100", "0", "100", "0"}, false},
    {"weights on disk", {"0", "0", "100", "0", "100", "0"}, false},
    /* the head on the GPU, the layers' tail on disk: a unit with nothing to
     * stage between two that share a staging slot */
    {"weights 80% on the GPU, the rest on disk", {"80", "0", "100", "0", "100", "0"}, false},
    {"KV cache in CPU memory", {"100", "0", "0", "100", "100", "0"}, false},
    {"KV cache in CPU memory, CPU attention", {"100", "0", "0", "100", "100", "0"}, true},
    {"KV cache on disk", {"100", "0", "0", "0", "100", "0"}, false},
    {"KV cache on disk, CPU attention", {"100", "0", "0", "0", "100", "0"}, true},
    {"hidden states in CPU memory", {"100", "0", "100", "0", "0", "100"}, false},
    {"hidden states on disk", {"100", "0", "100", "0", "0", "0"}, false},
    {"mixed", {"30", "40", "34", "33", "33", "33"}, false},
    {"mixed, CPU attention", {"30", "40", "34", "33", "33", "33"}, true},
};

static bool on_cuda;

static void run_model(const char *path, quant wq, quant kq, double tol)
{
    diag e = {0};
    model m;
    hwprofile *hw = calloc(1, sizeof *hw);
    CHECK(model_load(path, &m, &e) == LLMSIM_OK, "%s: %s", path, e.msg);
    CHECK(hwprofile_load("h100-80gb-sxm", hw, &e) == LLMSIM_OK, "%s", e.msg);
    workload w = {PROMPT, GEN, 0};
    ref r;
    ref_init(&r, &m, 11, wq, kq);
    r.round_gemm_inputs = true;
    int32_t first_tokens[BLS * GEN];
    const size_t V = (size_t)m.vocab_size;
    float *logits = malloc(sizeof(float) * GEN * BLS * V);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        policy p;
        policy_init(&p);
        CHECK(policy_from_percent(cases[c].pct, &p, &e) == LLMSIM_OK, "%s", e.msg);
        p.gpu_batch_size = GBS;
        p.num_gpu_batches = NGB;
        p.weight_quant = wq;
        p.kv_quant = kq;
        p.cpu_attention = cases[c].cpu_attention;
        plan pl;
        CHECK(plan_build(&m, hw, &p, &w, &pl, &e) == LLMSIM_OK, "%s", e.msg);
        engine_opts o = {0};
        o.synthetic_seed = 11;
        o.prompt_seed = 5;
        o.threads = 2;
        o.logits_out = logits;
        o.gpu_emulated = !on_cuda;
        engine_result res;
        llmsim_status st = engine_run(&m, hw, &p, &w, &pl, &o, &res, &e);
        CHECK(st == LLMSIM_OK, "%s, %s: %s", m.name, cases[c].name, e.msg);
        if (st) {
            plan_free(&pl);
            continue;
        }
        /* the sequences whose decode attention ran on the CPU took q in fp16 */
        bool q_f16[BLS];
        for (int s = 0; s < BLS; s++)
            q_f16[s] = p.cpu_attention && pl.kv_tier[s / GBS] != TIER_GPU;
        r.q_f16 = q_f16;
        r.q_f16_from = PROMPT;
        double worst = ref_max_logit_error(&r, logits, res.tokens, o.prompt_seed, BLS, PROMPT, GEN);
        r.q_f16 = NULL;
        CHECK(worst <= tol, "%s, %s: logits differ from the reference by %.3g (> %.3g)", m.name, cases[c].name,
              worst, tol);
        /* emulated: the same arithmetic for every placement, but CPU
         * attention takes q in fp16 and dequantizes a quantized cache to
         * fp32, not fp16 */
        bool same_math = !on_cuda && !cases[c].cpu_attention;
        if (c == 0)
            memcpy(first_tokens, res.tokens, sizeof first_tokens);
        else if (same_math)
            CHECK(memcmp(first_tokens, res.tokens, sizeof first_tokens) == 0,
                  "%s, %s: tokens differ from the all-on-GPU run", m.name, cases[c].name);
        /* every task timed, on one clock */
        size_t bad = 0;
        for (size_t t = 0; t < res.ntasks; t++)
            bad += !(res.start_s[t] >= 0 && res.end_s[t] >= res.start_s[t]);
        CHECK(bad == 0, "%s, %s: %zu tasks without a time", m.name, cases[c].name, bad);
        CHECK(res.prefill_s > 0 && res.prefill_s <= res.total_s, "%s, %s: prefill %.3g s of %.3g s", m.name,
              cases[c].name, res.prefill_s, res.total_s);
        /* the allocator's peak against the plan's: both count the same
         * tensors, the engine holds its two weight, cache and hidden-state
         * slots and its scratch for the whole run */
        double pred = sim_plan_peak(&pl, TIER_GPU);
        CHECK(res.gpu_bytes > 0 && res.gpu_bytes >= 0.5 * pred, "%s, %s: GPU peak %.0f bytes, plan %.0f", m.name,
              cases[c].name, res.gpu_bytes, pred);
        CHECK(res.direct_io || c == 0, "%s: O_DIRECT not in effect on the offload files", cases[c].name);
        printf("# %s %s%s on %s: max |logit - reference| = %.3g; GPU peak %.0f bytes (plan %.0f)\n", m.name,
               cases[c].name, wq.bits ? " (quantized)" : "", res.device, worst, res.gpu_bytes, pred);
        engine_result_free(&res);
        plan_free(&pl);
    }
    free(logits);
    ref_free(&r);
    free(hw);
}

// ---- the later families' features, against the CPU engine

/* A window of 4 is shorter than the prompt (the prefill's queries see a
 * part of it; the ring holds the prompt, 9 positions), one of 11 longer
 * (the ring is the window); both are passed by the generation, positions
 * up to 16, so the ring wraps. */
#define FPROMPT 9
#define FGEN 8
#define FBLS BLS
/* how close the CPU engine's logits of two tokens must be for the GPU
 * engine to take the other (test_serve_engine's) */
#define NEAR_TIE 2e-2
/* CPU attention takes q from the GPU in fp16 (as the cost model counts
 * it), which the CPU engine does not round: every element of q moves by up
 * to 2^-11 of itself, the scores (of O(10) with norm_plus_one's doubled
 * activations) by a few 1e-3, and the logits by up to 1.2e-2 measured; a
 * window or a ring position lost moves them by O(0.1) and more */
#define CPU_ATTN_TOL 2e-2

typedef struct feature_model {
    const char *name;
    const char *ffn;   /* ffn_kind */
    const char *extra; /* YAML lines that turn the feature on */
} feature_model;

static const feature_model features[] = {
    {"rope-linear", "swiglu", "rope_scaling: {type: linear, factor: 4}\n"},
    {"rope-llama3", "swiglu",
     "rope_scaling: {type: llama3, factor: 8, low_freq_factor: 1, high_freq_factor: 4, "
     "original_max_context: 16}\n"},
    {"qkv-bias", "swiglu", "qkv_bias: true\n"},
    {"qk-norm", "swiglu", "qk_norm: true\n"},
    {"norm-plus-one", "swiglu", "norm_plus_one: true\n"},
    {"scale-embeddings", "swiglu", "scale_embeddings: true\n"},
    {"geglu-tanh", "geglu_tanh", ""},
    {"window-4", "swiglu", "sliding_window: 4\n"},
    {"window-11", "swiglu", "sliding_window: 11\n"},
    {"all-features", "geglu_tanh",
     "qkv_bias: true\nqk_norm: true\nnorm_plus_one: true\nscale_embeddings: true\n"
     "sliding_window: 5\nrope_scaling: {type: llama3, factor: 8, low_freq_factor: 1, "
     "high_freq_factor: 4, original_max_context: 16}\n"},
};

typedef struct feature_case {
    const char *name;
    const char *pct[6]; /* weights gpu, cpu; cache gpu, cpu; hidden gpu, cpu (%) */
    bool cpu_attention;
    bool kv8;           /* an 8-bit KV cache (group 16) */
} feature_case;

static const feature_case fcases[] = {
    {"all on the GPU", {"100", "0", "100", "0", "100", "0"}, false, false},
    {"weights, KV cache and hidden states in CPU memory", {"0", "100", "0", "100", "0", "100"}, false,
     false},
    {"weights, KV cache and hidden states on disk", {"0", "0", "0", "0", "0", "0"}, false, false},
    {"mixed", {"30", "40", "34", "33", "33", "33"}, false, false},
    {"KV cache in CPU memory, CPU attention", {"100", "0", "0", "100", "100", "0"}, true, false},
    {"KV cache on disk, CPU attention", {"100", "0", "0", "0", "100", "0"}, true, false},
    {"mixed, CPU attention", {"30", "40", "34", "33", "33", "33"}, true, false},
    {"8-bit KV cache on the GPU", {"100", "0", "100", "0", "100", "0"}, false, true},
    {"8-bit KV cache in CPU memory", {"100", "0", "0", "100", "100", "0"}, false, true},
    {"8-bit KV cache on disk", {"100", "0", "0", "0", "100", "0"}, false, true},
};

/* The model of feature f: a tiny fp32 LLaMA with the feature on, as a YAML
 * file in dir. */
static bool feature_load(const char *dir, const feature_model *f, model *m)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.yaml", dir, f->name);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return false;
    fprintf(fp,
            "llmsim: model/1\nname: tiny-%s\nfamily: llama\nlayers: 2\nhidden_size: 64\nheads: 4\n"
            "kv_heads: 2\nffn_size: 128\nffn_kind: %s\nvocab_size: 160\nmax_context: 256\n"
            "norm: rmsnorm\nposition: rotary\ntied_embeddings: false\ndtype: fp32\n"
            "norm_eps: 1.0e-5\nrope_theta: 10000\n%s",
            f->name, f->ffn, f->extra);
    fclose(fp);
    diag e = {0};
    llmsim_status st = model_load(path, m, &e);
    CHECK(st == LLMSIM_OK, "%s: %s", path, e.msg);
    unlink(path);
    return st == LLMSIM_OK;
}

/* One engine_run of m (tokens and logits into res and logits). */
static llmsim_status feature_run(const model *m, const hwprofile *hw, const char *const pct[6],
                                 bool cpu_attention, quant kq, float *logits, engine_result *res,
                                 plan *pl, diag *e)
{
    policy p;
    policy_init(&p);
    llmsim_status st = policy_from_percent(pct, &p, e);
    if (st)
        return st;
    p.gpu_batch_size = GBS;
    p.num_gpu_batches = NGB;
    p.kv_quant = kq;
    p.cpu_attention = cpu_attention;
    workload w = {FPROMPT, FGEN, 0};
    if ((st = plan_build(m, hw, &p, &w, pl, e)))
        return st;
    engine_opts o = {0};
    o.synthetic_seed = 11;
    o.prompt_seed = 5;
    o.threads = 2;
    o.logits_out = logits;
    o.gpu_emulated = hw->gpu.present && !on_cuda;
    st = engine_run(m, hw, &p, &w, pl, &o, res, e);
    if (st)
        plan_free(pl);
    return st;
}

/* The GPU engine's logits and tokens against the CPU engine's, each
 * sequence step by step while their tokens agree; at a step where they
 * differ the CPU engine's logits of the two must nearly tie. The worst
 * logit difference; *steps: the (sequence, step) pairs compared; *split:
 * the sequences whose tokens differ; *bad: a difference not at a near tie. */
static double feature_compare(const float *gl, const int32_t *gt, const float *cl, const int32_t *ct,
                              size_t V, int *steps, int *split, int *bad)
{
    double worst = 0;
    *steps = *split = *bad = 0;
    for (int s = 0; s < FBLS; s++)
        for (int g = 0; g < FGEN; g++) {
            const float *a = gl + ((size_t)g * FBLS + (size_t)s) * V, *b = cl + ((size_t)g * FBLS + (size_t)s) * V;
            for (size_t v = 0; v < V; v++) {
                const double d = fabs((double)a[v] - (double)b[v]);
                worst = d > worst || d != d ? d : worst;
            }
            ++*steps;
            const int32_t tg = gt[s * FGEN + g], tc = ct[s * FGEN + g];
            if (tg != tc) { /* the rest of the sequence follows other tokens */
                ++*split;
                *bad += !(b[tg] >= b[tc] - NEAR_TIE);
                break;
            }
        }
    return worst;
}

static void run_feature(const char *dir, const feature_model *f, const hwprofile *gpu, const hwprofile *cpu)
{
    model m;
    if (!feature_load(dir, f, &m))
        return;
    const size_t V = (size_t)m.vocab_size, nl = (size_t)FGEN * FBLS * V;
    float *cl[2] = {malloc(nl * sizeof(float)), malloc(nl * sizeof(float))}, *gl = malloc(nl * sizeof(float));
    int32_t ct[2][FBLS * FGEN];
    const quant kqs[2] = {{0, 0}, {8, 16}};
    static const char *const ram[6] = {"0", "100", "0", "100", "0", "100"};
    diag e = {0};
    for (int q = 0; q < 2; q++) { /* the CPU engine, all in RAM: fp16 and 8-bit caches */
        engine_result res;
        plan pl;
        llmsim_status st = feature_run(&m, cpu, ram, false, kqs[q], cl[q], &res, &pl, &e);
        CHECK(st == LLMSIM_OK, "%s on the CPU engine: %s", m.name, e.msg);
        if (st) {
            free(cl[0]), free(cl[1]), free(gl);
            return;
        }
        memcpy(ct[q], res.tokens, sizeof ct[q]);
        engine_result_free(&res);
        plan_free(&pl);
    }
    for (size_t c = 0; c < sizeof fcases / sizeof fcases[0]; c++) {
        const feature_case *fc = &fcases[c];
        const int q = fc->kv8;
        engine_result res;
        plan pl;
        diag_clear(&e);
        llmsim_status st = feature_run(&m, gpu, fc->pct, fc->cpu_attention, kqs[q], gl, &res, &pl, &e);
        CHECK(st == LLMSIM_OK, "%s, %s: %s", m.name, fc->name, e.msg);
        if (st)
            continue;
        int steps, split, bad;
        const double tol = q ? QUANT_LOGIT_TOL : fc->cpu_attention ? CPU_ATTN_TOL : LOGIT_TOL;
        double worst = feature_compare(gl, res.tokens, cl[q], ct[q], V, &steps, &split, &bad);
        CHECK(worst <= tol, "%s, %s: logits differ from the CPU engine's by %.3g (> %.3g)", m.name, fc->name,
              worst, tol);
        CHECK(bad == 0, "%s, %s: %d sequences take a token the CPU engine's logits do not nearly tie with",
              m.name, fc->name, bad);
        /* the emulated device computes the CPU engine's arithmetic (fp32
         * weights: no rounding of the GEMMs' inputs) but for q in fp16 under
         * CPU attention and the fp16 dequantized cache */
        if (!on_cuda && !fc->cpu_attention && !q)
            CHECK(memcmp(res.tokens, ct[q], sizeof ct[q]) == 0, "%s, %s: tokens differ from the CPU engine's",
                  m.name, fc->name);
        const double pred = sim_plan_peak(&pl, TIER_GPU);
        CHECK(res.gpu_bytes > 0 && res.gpu_bytes >= 0.5 * pred, "%s, %s: GPU peak %.0f bytes, plan %.0f", m.name,
              fc->name, res.gpu_bytes, pred);
        printf("# %s %s on %s: max |logit - CPU engine| = %.3g over %d steps (%d sequences took another "
               "token); GPU peak %.0f bytes (plan %.0f)\n",
               m.name, fc->name, res.device, worst, steps, split, res.gpu_bytes, pred);
        engine_result_free(&res);
        plan_free(&pl);
    }
    free(cl[0]);
    free(cl[1]);
    free(gl);
}

static void run_features(void)
{
    char dir[] = "/tmp/test_engine_gpu.XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(false, "cannot create a directory under /tmp for the models");
        return;
    }
    hwprofile *gpu = calloc(1, sizeof *gpu), *cpu = calloc(1, sizeof *cpu);
    diag e = {0};
    CHECK(hwprofile_load("h100-80gb-sxm", gpu, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(hwprofile_load("cpu-only", cpu, &e) == LLMSIM_OK, "%s", e.msg);
    for (size_t f = 0; f < sizeof features / sizeof features[0]; f++)
        run_feature(dir, &features[f], gpu, cpu);
    rmdir(dir);
    free(gpu);
    free(cpu);
}

int main(int argc, char **argv)
{
    on_cuda = argc > 1 && strcmp(argv[1], "cuda") == 0;
    if (on_cuda && !gdev_available(GDEV_CUDA))
        tap_skip("no CUDA device");
    const quant none = {0, 0};
    run_model(tap_data("models/tiny-opt.yaml"), none, none, LOGIT_TOL);
    run_model(tap_data("models/tiny-llama.yaml"), none, none, LOGIT_TOL);
    run_model(tap_data("models/tiny-llama-4l.yaml"), none, none, LOGIT_TOL);
    run_model(tap_data("models/tiny-opt.yaml"), (quant){4, 32}, (quant){8, 32}, QUANT_LOGIT_TOL);
    run_model(tap_data("models/tiny-llama.yaml"), (quant){8, 64}, (quant){4, 16}, QUANT_LOGIT_TOL);
    run_features();
    return tap_done();
}
