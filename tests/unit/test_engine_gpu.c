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
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    return tap_done();
}
