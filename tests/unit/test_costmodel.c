/*
 * test_costmodel — the cost model of ARCHITECTURE §6: the primitives (copy,
 * GEMM rate and time, attention), the quantized size rule, and the analytic
 * model (linearity in the fractions, overlap, hand-computed transfer terms,
 * monotonicity, CPU delegation, quantization, the growth of decode cost with
 * the context, feasibility, CPU-only machines, input errors, whole-run
 * arithmetic, FlexGen's published throughputs and peak memory).
 *
 * Constructed cases use a "lab" profile and tiny models built in code, with
 * round figures, so that the expected values can be computed by hand.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "costmodel/analytic.h"
#include "costmodel/placement.h"
#include "costmodel/primitives.h"
#include "tap.h"

/* Floating-point noise: results that are the same arithmetic in a different
 * order (sums of a few dozen terms). */
#define EXACT_TOL 1e-12
/* Affine combinations of linear forms: the brief's 1e-9 relative. */
#define LINEAR_TOL 1e-9
/* Two figures that should be equal but come through long sums over steps. */
#define SUM_TOL 1e-9
/* FlexGen published throughputs: how far the prediction may be from them.
 * OPT-30B is looser: llmsim predicts ~8.5 tok/s against 7.32 (FlexGen's own
 * runtime overheads are not modelled); OPT-175B is disk/link bound and close. */
#define FLEXGEN_30B_TOL 0.25
#define FLEXGEN_175B_TOL 0.15

/* ---- fixtures */

/* A machine with round figures and zero latencies: a GPU at 100 GB/s and a
 * flat 10 TFLOP/s GEMM, h2d 10 GB/s pinned / 5 GB/s pageable, d2h 8 / 4 GB/s,
 * a disk at 2 GB/s read, 1 GB/s write, a CPU at 50 GB/s. Memory is ample. */
static void lab_profile(hwprofile *hw)
{
    memset(hw, 0, sizeof *hw);
    snprintf(hw->name, sizeof hw->name, "lab");
    hw->gpu.present = true;
    snprintf(hw->gpu.name, sizeof hw->gpu.name, "labgpu");
    hw->gpu.memory_bytes = 1e12;
    hw->gpu.memory_bandwidth_Bps = 100e9;
    hw->gpu.gemm.npoints = 1;
    hw->gpu.gemm.points[0] = (hw_gemm_point){.m = 1, .n = 0, .k = 0, .flops = 10e12};
    hw->gpu.attn_prefill_flops = 10e12;
    hw->gpu.attn_decode_Bps = 100e9;
    hw->gpu.launch_latency_s = 0;
    snprintf(hw->cpu.name, sizeof hw->cpu.name, "labcpu");
    hw->cpu.cores = 16;
    hw->cpu.memory_bytes = 1e12;
    hw->cpu.memory_bandwidth_Bps = 50e9;
    hw->cpu.gemm.npoints = 1;
    hw->cpu.gemm.points[0] = (hw_gemm_point){.m = 1, .n = 0, .k = 0, .flops = 1e12};
    hw->cpu.attn_Bps = 20e9;
    hw->disk.present = true;
    hw->disk.capacity_bytes = 1e13;
    hw->disk.read = (hw_link){.present = true, .bandwidth_Bps = 2e9, .latency_s = 0};
    hw->disk.write = (hw_link){.present = true, .bandwidth_Bps = 1e9, .latency_s = 0};
    hw->links[HW_LINK_H2D_PINNED] = (hw_link){.present = true, .bandwidth_Bps = 10e9};
    hw->links[HW_LINK_H2D_PAGEABLE] = (hw_link){.present = true, .bandwidth_Bps = 5e9};
    hw->links[HW_LINK_D2H_PINNED] = (hw_link){.present = true, .bandwidth_Bps = 8e9};
    hw->links[HW_LINK_D2H_PAGEABLE] = (hw_link){.present = true, .bandwidth_Bps = 4e9};
}

/* The lab machine without a GPU (and without host<->device links). */
static void lab_cpu_only_profile(hwprofile *hw)
{
    lab_profile(hw);
    snprintf(hw->name, sizeof hw->name, "lab-cpu");
    memset(&hw->gpu, 0, sizeof hw->gpu);
    for (int i = 0; i < HW_NLINKS; i++)
        memset(&hw->links[i], 0, sizeof hw->links[i]);
}

/* An OPT-shaped model: 2 layers, h = 64 (4 heads of 16), ffn 256. */
static void tiny_opt(model *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "tiny-opt");
    m->family = MODEL_FAMILY_OPT;
    m->num_layers = 2;
    m->hidden_size = 64;
    m->num_heads = 4;
    m->num_kv_heads = 4;
    m->head_dim = 16;
    m->ffn_size = 256;
    m->ffn_kind = MODEL_FFN_RELU;
    m->vocab_size = 128;
    m->max_context = 256;
    m->norm = MODEL_NORM_LAYERNORM;
    m->position = MODEL_POS_LEARNED;
    m->tied_embeddings = true;
    m->linear_bias = true;
    m->dtype = MODEL_DTYPE_FP16;
    m->norm_eps = 1e-5;
}

/* A LLaMA-shaped model with grouped-query attention: 8 query heads of 16
 * over 2 KV heads, SwiGLU 192, no biases, RMSNorm, untied head. */
static void tiny_gqa(model *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "tiny-gqa");
    m->family = MODEL_FAMILY_LLAMA;
    m->num_layers = 3;
    m->hidden_size = 128;
    m->num_heads = 8;
    m->num_kv_heads = 2;
    m->head_dim = 16;
    m->ffn_size = 192;
    m->ffn_kind = MODEL_FFN_SWIGLU;
    m->vocab_size = 256;
    m->max_context = 512;
    m->norm = MODEL_NORM_RMSNORM;
    m->position = MODEL_POS_ROTARY;
    m->tied_embeddings = false;
    m->linear_bias = false;
    m->dtype = MODEL_DTYPE_FP16;
    m->norm_eps = 1e-5;
    m->rope_theta = 10000;
}

static void set_pl(placement *pl, double g, double c, double d)
{
    pl->f[TIER_GPU] = g;
    pl->f[TIER_CPU] = c;
    pl->f[TIER_DISK] = d;
}

static void set_fracs(policy *p, const double x[CM_NFRAC])
{
    set_pl(&p->weights, x[CM_WG], x[CM_WC], x[CM_WD]);
    set_pl(&p->kv_cache, x[CM_CG], x[CM_CC], x[CM_CD]);
    set_pl(&p->activations, x[CM_HG], x[CM_HC], x[CM_HD]);
}

static bool load_shipped(const char *model_name, model *m, hwprofile *hw)
{
    diag e = {0};
    if (model_load(model_name, m, &e)) {
        CHECK(false, "model_load %s: %s", model_name, e.msg);
        return false;
    }
    if (hwprofile_load("t4-flexgen", hw, &e)) {
        CHECK(false, "hwprofile_load t4-flexgen: %s", e.msg);
        return false;
    }
    return true;
}

/* Deterministic pseudo-random numbers in [0, 1). */
static unsigned long long rng_state = 0x9e3779b97f4a7c15ULL;
static double rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* A random point of the simplex for each of the three triples; some
 * components forced to 0 now and then so that the corners are visited. */
static void random_x(double x[CM_NFRAC])
{
    for (int i = 0; i < 3; i++) {
        double a = rnd(), b = rnd(), c = rnd();
        if (rnd() < 0.2)
            a = 0;
        if (rnd() < 0.2)
            c = 0;
        double s = a + b + c;
        if (s <= 0)
            a = s = 1;
        x[3 * i + 0] = a / s;
        x[3 * i + 1] = b / s;
        x[3 * i + 2] = c / s;
    }
}

static bool lin_equal(const cm_lin *a, const cm_lin *b)
{
    if (a->c0 != b->c0)
        return false;
    for (int i = 0; i < CM_NFRAC; i++)
        if (a->c[i] != b->c[i])
            return false;
    return true;
}

static double lin_abs_scale(const cm_lin *l)
{
    double s = fabs(l->c0);
    for (int i = 0; i < CM_NFRAC; i++)
        s += fabs(l->c[i]);
    return s;
}

/* ===================================================================
 * primitives
 * =================================================================== */

/* A copy costs latency + bytes / bandwidth, and nothing when there is
 * nothing to copy; a stream costs the bandwidth part only. */
static void test_copy_time(void)
{
    hw_link l = {.present = true, .bandwidth_Bps = 10e9, .latency_s = 20e-6};
    CHECK_REL(cm_copy_time(&l, 1e6), 20e-6 + 1e6 / 10e9, EXACT_TOL, "copy 1 MB");
    CHECK_REL(cm_copy_time(&l, 3.5e9), 20e-6 + 0.35, EXACT_TOL, "copy 3.5 GB");
    CHECK(cm_copy_time(&l, 0) == 0.0, "copy of 0 bytes costs %g, not 0", cm_copy_time(&l, 0));
    CHECK_REL(cm_stream_time(&l, 1e6), 1e-4, EXACT_TOL, "stream 1 MB (no latency)");
    CHECK(cm_stream_time(&l, 0) == 0.0, "stream of 0 bytes is not 0");
}

/* The GEMM rate is linear in log m between two table points (at the
 * geometric midpoint it is the arithmetic mean of the rates) and clamped to
 * the end points outside the table. */
static void test_gemm_rate_in_m(void)
{
    hw_gemm_table t = {0};
    t.npoints = 2;
    t.points[0] = (hw_gemm_point){.m = 16, .flops = 1e12};
    t.points[1] = (hw_gemm_point){.m = 1024, .flops = 7e12};
    /* log(128/16) / log(1024/16) = 3/6 */
    CHECK_REL(cm_gemm_rate(&t, 128, 4096, 4096), 4e12, EXACT_TOL, "rate at m=128 (w=1/2)");
    /* log(32/16) / log(64) = 1/6 */
    CHECK_REL(cm_gemm_rate(&t, 32, 4096, 4096), 2e12, EXACT_TOL, "rate at m=32 (w=1/6)");
    CHECK_REL(cm_gemm_rate(&t, 16, 1, 1), 1e12, EXACT_TOL, "rate at the lower point");
    CHECK_REL(cm_gemm_rate(&t, 1024, 1, 1), 7e12, EXACT_TOL, "rate at the upper point");
    CHECK_REL(cm_gemm_rate(&t, 2, 1, 1), 1e12, EXACT_TOL, "clamped below the table");
    CHECK_REL(cm_gemm_rate(&t, 0.25, 1, 1), 1e12, EXACT_TOL, "m < 1 clamped below");
    CHECK_REL(cm_gemm_rate(&t, 1e7, 1, 1), 7e12, EXACT_TOL, "clamped above the table");
    /* order of the points in the table does not matter */
    hw_gemm_table r = t;
    r.points[0] = t.points[1];
    r.points[1] = t.points[0];
    CHECK_REL(cm_gemm_rate(&r, 128, 1, 1), 4e12, EXACT_TOL, "rate, points reversed");
    /* a single point is a constant rate */
    t.npoints = 1;
    CHECK_REL(cm_gemm_rate(&t, 1, 7, 9), 1e12, EXACT_TOL, "single point, small m");
    CHECK_REL(cm_gemm_rate(&t, 1e6, 7, 9), 1e12, EXACT_TOL, "single point, big m");
    t.npoints = 0;
    CHECK(cm_gemm_rate(&t, 64, 64, 64) == 0.0, "empty table gives rate 0");
}

/* Shape classes (points with n, k) are interpolated in log(n*k) between the
 * two classes around the query, each class interpolated in log m first, and
 * clamped to the nearest class outside the range. */
static void test_gemm_rate_shapes(void)
{
    hw_gemm_table t = {0};
    t.npoints = 4;
    /* class A: n*k = 2^20; class B: n*k = 2^24 */
    t.points[0] = (hw_gemm_point){.m = 16, .n = 1024, .k = 1024, .flops = 1e12};
    t.points[1] = (hw_gemm_point){.m = 1024, .n = 1024, .k = 1024, .flops = 3e12};
    t.points[2] = (hw_gemm_point){.m = 16, .n = 4096, .k = 4096, .flops = 2e12};
    t.points[3] = (hw_gemm_point){.m = 1024, .n = 4096, .k = 4096, .flops = 10e12};
    /* in class A at m=128: 1 + 0.5 * 2 = 2 TFLOP/s; class B: 2 + 0.5 * 8 = 6 */
    CHECK_REL(cm_gemm_rate(&t, 128, 1024, 1024), 2e12, EXACT_TOL, "class A, m=128");
    CHECK_REL(cm_gemm_rate(&t, 128, 4096, 4096), 6e12, EXACT_TOL, "class B, m=128");
    /* the same n*k with a different aspect is the same class */
    CHECK_REL(cm_gemm_rate(&t, 128, 256, 4096), 2e12, EXACT_TOL, "class A by n*k, other aspect");
    /* n*k = 2^22: halfway in log(n*k) -> mean of 2 and 6 */
    CHECK_REL(cm_gemm_rate(&t, 128, 2048, 2048), 4e12, EXACT_TOL, "between classes, m=128");
    /* n*k = 2^21: a quarter of the way: 2 + 0.25 * 4 */
    CHECK_REL(cm_gemm_rate(&t, 128, 2048, 1024), 3e12, EXACT_TOL, "a quarter between classes");
    /* outside in m and between classes: clamp in m then interpolate */
    CHECK_REL(cm_gemm_rate(&t, 1, 2048, 2048), 1.5e12, EXACT_TOL, "between classes, m below");
    /* outside the classes: the nearest class */
    CHECK_REL(cm_gemm_rate(&t, 128, 256, 256), 2e12, EXACT_TOL, "below the smallest class");
    CHECK_REL(cm_gemm_rate(&t, 128, 16384, 16384), 6e12, EXACT_TOL, "above the largest class");
    /* an "any shape" table (n = k = 0) answers every shape */
    hw_gemm_table any = {0};
    any.npoints = 2;
    any.points[0] = (hw_gemm_point){.m = 16, .flops = 1e12};
    any.points[1] = (hw_gemm_point){.m = 1024, .flops = 7e12};
    CHECK_REL(cm_gemm_rate(&any, 128, 4096, 11008), 4e12, EXACT_TOL, "any-shape table, shape given");
}

/* GEMM time is the larger of compute time (2mnk FLOPs at the table's rate)
 * and memory time (reading A and B, writing C at the device bandwidth): a
 * one-row product is memory bound, a big one compute bound. */
static void test_gemm_time(void)
{
    hwprofile hw;
    lab_profile(&hw); /* GPU: 10 TFLOP/s flat, 100 GB/s */
    const double n = 4096, k = 4096, eb = 2;
    /* m = 1: compute 2*4096^2 / 1e13 = 3.355e-6 s; memory (4096 + 4096^2 +
     * 4096) * 2 / 1e11 = 3.3571e-4 s -> memory bound */
    double mem1 = (1 * k + k * n + 1 * n) * eb / 100e9;
    double comp1 = 2.0 * 1 * n * k / 10e12;
    CHECK(mem1 > 50 * comp1, "fixture: m=1 should be memory bound by far");
    CHECK_REL(cm_gemm_time(&hw, CM_DEV_GPU, 1, n, k, eb, 0), mem1, EXACT_TOL, "m=1 GEMM (memory)");
    CHECK_REL(mem1, 3.35708160e-4, 1e-8, "m=1 GEMM hand figure");
    /* m = 8192: compute 2*8192*4096^2 / 1e13 = 0.02748779 s; memory
     * (2*8192*4096 + 4096^2) * 2 / 1e11 = 1.6777e-3 s -> compute bound */
    double comp2 = 2.0 * 8192 * n * k / 10e12;
    CHECK_REL(cm_gemm_time(&hw, CM_DEV_GPU, 8192, n, k, eb, 0), comp2, EXACT_TOL,
              "m=8192 GEMM (compute)");
    CHECK_REL(comp2, 0.0274877907, 1e-8, "m=8192 GEMM hand figure");
    /* the CPU side uses the CPU's table and bandwidth (1 TFLOP/s, 50 GB/s) */
    CHECK_REL(cm_gemm_time(&hw, CM_DEV_CPU, 1, n, k, eb, 0), (k + k * n + n) * eb / 50e9, EXACT_TOL,
              "m=1 GEMM on the CPU");
    CHECK_REL(cm_gemm_time(&hw, CM_DEV_CPU, 8192, n, k, eb, 0), 2.0 * 8192 * n * k / 1e12,
              EXACT_TOL, "m=8192 GEMM on the CPU");
    CHECK(cm_gemm_time(&hw, CM_DEV_GPU, 0, n, k, eb, 0) == 0.0, "empty GEMM costs 0");
    /* a working set is ignored without read_bandwidth points, and on the GPU */
    CHECK_REL(cm_gemm_time(&hw, CM_DEV_CPU, 1, n, k, eb, 1e6), (k + k * n + n) * eb / 50e9,
              EXACT_TOL, "no read table: memory bandwidth");
    hw.cpu.read.npoints = 2;
    hw.cpu.read.points[0] = (hw_read_point){.ws_bytes = 16e6, .Bps = 200e9};
    hw.cpu.read.points[1] = (hw_read_point){.ws_bytes = 1.6e9, .Bps = 40e9};
    CHECK_REL(cm_gemm_time(&hw, CM_DEV_GPU, 1, n, k, eb, 1e6), mem1, EXACT_TOL,
              "GPU: no working set");
    /* the table's time (W in cache: a working set of its own n k eb) plus
     * the extra time of reading W from its working set */
    const double w = k * n * eb, w_cached = w / cm_cpu_read_Bps(&hw, w), c1 = 2.0 * n * k / 1e12;
    CHECK(w_cached > w / 200e9 && w_cached < w / 40e9, "fixture: W alone lies inside the table");
    CHECK_REL(cm_gemm_time(&hw, CM_DEV_CPU, 1, n, k, eb, 2e9), c1 + w / 40e9 - w_cached, EXACT_TOL,
              "m=1 GEMM streamed from DRAM");
    CHECK_REL(cm_gemm_time(&hw, CM_DEV_CPU, 16, n, k, eb, 2e9), 16 * c1 + w / 40e9 - w_cached,
              EXACT_TOL, "m=16: the reads do not hide under the arithmetic");
    CHECK_REL(cm_gemm_time(&hw, CM_DEV_CPU, 1, n, k, eb, 8e6), c1, EXACT_TOL,
              "m=1 GEMM from the cache: the table's time");
    CHECK_REL(cm_gemm_time(&hw, CM_DEV_CPU, 1, n, k, eb, 0), c1 + w / 50e9 - w_cached, EXACT_TOL,
              "unknown working set: memory bandwidth");
    CHECK_REL(cm_gemm_time(&hw, CM_DEV_CPU, 8192, n, k, eb, 8e6), 2.0 * 8192 * n * k / 1e12,
              EXACT_TOL, "compute bound whatever the working set");
}

/* Read bandwidth by working set: interpolated in log(ws) between points,
 * clamped outside them, the memory bandwidth without points. */
static void test_read_bandwidth(void)
{
    hwprofile hw;
    lab_profile(&hw);
    CHECK_REL(cm_cpu_read_Bps(&hw, 1e8), 50e9, EXACT_TOL, "no points: memory bandwidth");
    hw.cpu.read.npoints = 3;
    hw.cpu.read.points[0] = (hw_read_point){.ws_bytes = 1e6, .Bps = 100e9};
    hw.cpu.read.points[1] = (hw_read_point){.ws_bytes = 1e8, .Bps = 60e9};
    hw.cpu.read.points[2] = (hw_read_point){.ws_bytes = 1e9, .Bps = 20e9};
    CHECK_REL(cm_cpu_read_Bps(&hw, 1e3), 100e9, EXACT_TOL, "below the table: the first point");
    CHECK_REL(cm_cpu_read_Bps(&hw, 1e6), 100e9, EXACT_TOL, "at the first point");
    CHECK_REL(cm_cpu_read_Bps(&hw, 1e7), 80e9, EXACT_TOL, "halfway in log(ws)");
    CHECK_REL(cm_cpu_read_Bps(&hw, 1e8), 60e9, EXACT_TOL, "at a middle point");
    CHECK_REL(cm_cpu_read_Bps(&hw, sqrt(1e17)), 40e9, EXACT_TOL, "halfway to the last point");
    CHECK_REL(cm_cpu_read_Bps(&hw, 1e12), 20e9, EXACT_TOL, "beyond the table: the last point");
    CHECK_REL(cm_cpu_read_Bps(&hw, 0), 50e9, EXACT_TOL, "unknown working set: memory bandwidth");
}

/* Decode attention: memory bound for MHA (time = bytes of fp16 K and V /
 * attention bandwidth), linear in the context; GQA reads heads/kv_heads
 * times fewer bytes. Prefill attention is quadratic in the prompt. */
static void test_attention(void)
{
    hwprofile hw;
    lab_profile(&hw);
    const double b = 8, ctx = 1000, heads = 32, hd = 128;
    double bytes = 2.0 * b * ctx * heads * hd * 2.0; /* K and V, fp16 */
    double t1 = cm_attention_decode_time(&hw, CM_DEV_GPU, b, ctx, heads, heads, hd);
    CHECK_REL(t1, bytes / hw.gpu.attn_decode_Bps, EXACT_TOL, "MHA decode = K,V bytes / rate");
    CHECK(t1 > 4.0 * b * ctx * heads * hd / hw.gpu.attn_prefill_flops,
          "MHA decode attention is memory bound on the lab GPU");
    double t2 = cm_attention_decode_time(&hw, CM_DEV_GPU, b, 2 * ctx, heads, heads, hd);
    double t3 = cm_attention_decode_time(&hw, CM_DEV_GPU, b, 3 * ctx, heads, heads, hd);
    CHECK_REL(t2, 2 * t1, EXACT_TOL, "decode attention doubles with the context");
    CHECK_REL(t3, 3 * t1, EXACT_TOL, "decode attention triples with the context");
    /* GQA 32 heads over 8 KV heads: 4x fewer bytes, still memory bound here */
    double tg = cm_attention_decode_time(&hw, CM_DEV_GPU, b, ctx, heads, 8, hd);
    CHECK_REL(t1 / tg, heads / 8, EXACT_TOL, "GQA cuts decode attention by heads/kv_heads");
    /* on the CPU, the CPU's attention rate */
    double tc = cm_attention_decode_time(&hw, CM_DEV_CPU, b, ctx, heads, heads, hd);
    CHECK_REL(tc, bytes / hw.cpu.attn_Bps, EXACT_TOL, "MHA decode on the CPU");
    CHECK_REL(cm_attention_decode_time(&hw, CM_DEV_CPU, b, ctx, heads, 8, hd), tc / 4, EXACT_TOL,
              "GQA on the CPU");
    CHECK(cm_attention_decode_time(&hw, CM_DEV_GPU, b, 0, heads, heads, hd) == 0.0,
          "decode attention over no context costs 0");
    /* prefill: 4 * b * q^2 * heads * hd FLOPs at the prefill rate */
    double p1 = cm_attention_prefill_time(&hw, CM_DEV_GPU, b, 512, heads, hd);
    CHECK_REL(p1, 4.0 * b * 512 * 512 * heads * hd / 10e12, EXACT_TOL, "prefill attention FLOPs");
    CHECK_REL(cm_attention_prefill_time(&hw, CM_DEV_GPU, b, 1024, heads, hd), 4 * p1, EXACT_TOL,
              "prefill attention is quadratic in the prompt");
    /* memory pass: (read + write) / bandwidth */
    CHECK_REL(cm_memory_pass_time(&hw, CM_DEV_GPU, 3e9, 1e9), 4e9 / 100e9, EXACT_TOL,
              "memory pass on the GPU");
    CHECK_REL(cm_memory_pass_time(&hw, CM_DEV_CPU, 3e9, 1e9), 4e9 / 50e9, EXACT_TOL,
              "memory pass on the CPU");
}

/* quant_bytes = n*b/8 + ceil(n/g) * 4 (fp16 scale and min per group); with
 * no quantization, n * dtype bytes. Exact: these are byte counts. */
static void test_quant_bytes(void)
{
    static const int bits[] = {4, 8};
    static const int groups[] = {2, 32, 64, 128, 1000};
    static const double ns[] = {1, 63, 64, 65, 100, 4096.0 * 4096, 7168.0 * 28672, 12345};
    for (size_t bi = 0; bi < 2; bi++)
        for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++)
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
                quant q = {.bits = bits[bi], .group_size = groups[gi]};
                double n = ns[ni];
                double want = n * bits[bi] / 8.0 + ceil(n / groups[gi]) * 4.0;
                double got = quant_bytes(&q, n, 2);
                CHECK(got == want, "quant_bytes(%d bits, g %d, n %.0f) = %.17g, want %.17g",
                      bits[bi], groups[gi], n, got, want);
            }
    /* hand figures */
    quant q4 = {4, 64}, q8 = {8, 128};
    CHECK(quant_bytes(&q4, 100, 2) == 50 + 2 * 4, "4-bit g64 of 100 values = 58 bytes");
    CHECK(quant_bytes(&q4, 4096, 2) == 2048 + 64 * 4, "4-bit g64 of 4096 = 2304 bytes");
    CHECK(quant_bytes(&q8, 129, 2) == 129 + 2 * 4, "8-bit g128 of 129 = 137 bytes");
    /* the dtype does not matter when quantized */
    CHECK(quant_bytes(&q4, 4096, 4) == quant_bytes(&q4, 4096, 2), "quantized size ignores dtype");
    quant none = {0, 0};
    CHECK(quant_bytes(&none, 1000, 2) == 2000, "fp16 unquantized");
    CHECK(quant_bytes(&none, 1000, 4) == 4000, "fp32 unquantized");
    CHECK(quant_bytes(&none, 0, 2) == 0, "no values, no bytes");
}

/* ===================================================================
 * analytic
 * =================================================================== */

typedef struct lin_case {
    const char *what;
    bool use_t4;      /* t4-flexgen + opt-30b, else lab + tiny model */
    bool gqa;         /* lab: tiny_gqa instead of tiny_opt */
    bool cpu_attention;
    bool overlap;
    bool pin;
    int wbits, kvbits;
    int gbs, ngb;
} lin_case;

/* The forms depend only on the discrete choices: the same policy with other
 * fractions gives the same coefficients (so cm_lin_eval at x is "the policy
 * built with x"); every form is affine in x (f(a x1 + (1-a) x2) = a f(x1) +
 * (1-a) f(x2)); the terms group the resources as documented (disk = read +
 * write, compute = gpu + cpu) and `sum` is all resources, which also equals
 * the sum of the stages (every cost is booked on one resource and one stage);
 * cm_predict's per-layer figures are these forms at the realized fractions. */
static void test_linearity(void)
{
    static const lin_case cases[] = {
        {"t4 opt-30b plain", true, false, false, true, true, 0, 0, 48, 3},
        {"t4 opt-30b delegated", true, false, true, true, true, 0, 0, 32, 8},
        {"t4 opt-30b quantized", true, false, false, false, false, 4, 4, 16, 2},
        {"t4 opt-30b deleg+quant", true, false, true, true, true, 8, 4, 8, 1},
        {"lab tiny-opt", false, false, false, true, true, 0, 0, 4, 2},
        {"lab tiny-gqa deleg", false, true, true, true, false, 4, 8, 3, 5},
    };
    model big, m;
    hwprofile t4, lab, *hw;
    if (!load_shipped("opt-30b", &big, &t4))
        return;
    lab_profile(&lab);
    workload w = {.prompt_len = 64, .gen_len = 8, .num_prompts = 0};
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const lin_case *lc = &cases[ci];
        if (lc->use_t4) {
            m = big;
            hw = &t4;
        } else {
            if (lc->gqa)
                tiny_gqa(&m);
            else
                tiny_opt(&m);
            hw = &lab;
        }
        policy p1, p2;
        policy_init(&p1);
        p1.cpu_attention = lc->cpu_attention;
        p1.overlap = lc->overlap;
        p1.pin_weights = lc->pin;
        p1.weight_quant = (quant){lc->wbits, lc->wbits ? 64 : 0};
        p1.kv_quant = (quant){lc->kvbits, lc->kvbits ? 16 : 0};
        p1.gpu_batch_size = lc->gbs;
        p1.num_gpu_batches = lc->ngb;
        p2 = p1;
        for (int trial = 0; trial < 20; trial++) {
            double x1[CM_NFRAC], x2[CM_NFRAC], xm[CM_NFRAC];
            random_x(x1);
            random_x(x2);
            set_fracs(&p1, x1);
            set_fracs(&p2, x2);
            cm_setup s1, s2;
            diag e = {0};
            llmsim_status st1 = cm_setup_init(&s1, &m, hw, &p1, &w, &e);
            llmsim_status st2 = cm_setup_init(&s2, &m, hw, &p2, &w, &e);
            CHECK(st1 == LLMSIM_OK && st2 == LLMSIM_OK, "%s: setup failed: %s", lc->what, e.msg);
            if (st1 || st2)
                break;
            double a = rnd();
            for (int i = 0; i < CM_NFRAC; i++)
                xm[i] = a * x1[i] + (1 - a) * x2[i];
            for (int phase = 0; phase < 3; phase++) {
                cm_layer_cost c1, c2;
                if (phase == 2) {
                    cm_head_cost_get(&s1, CM_PHASE_DECODE, &c1);
                    cm_head_cost_get(&s2, CM_PHASE_DECODE, &c2);
                } else {
                    double ctx = phase == 0 ? 64 : 64 + 1 + trial % 7;
                    cm_layer_cost_get(&s1, (cm_phase)phase, ctx, &c1);
                    cm_layer_cost_get(&s2, (cm_phase)phase, ctx, &c2);
                }
                /* fractions of the policy do not enter the forms */
                bool same = lin_equal(&c1.sum, &c2.sum);
                for (int r = 0; r < CM_NRES; r++)
                    same = same && lin_equal(&c1.res[r], &c2.res[r]);
                for (int k = 0; k < CM_NSTAGES; k++)
                    same = same && lin_equal(&c1.stage[k], &c2.stage[k]);
                CHECK(same, "%s phase %d: the forms depend on the policy's fractions", lc->what,
                      phase);
                /* affine in x */
                const cm_lin *forms[CM_NRES + CM_NSTAGES + CM_NTERMS + 1];
                int nf = 0;
                for (int r = 0; r < CM_NRES; r++)
                    forms[nf++] = &c1.res[r];
                for (int k = 0; k < CM_NSTAGES; k++)
                    forms[nf++] = &c1.stage[k];
                for (int k = 0; k < CM_NTERMS; k++)
                    forms[nf++] = &c1.term[k];
                forms[nf++] = &c1.sum;
                for (int f = 0; f < nf; f++) {
                    double fm = cm_lin_eval(forms[f], xm);
                    double want = a * cm_lin_eval(forms[f], x1) + (1 - a) * cm_lin_eval(forms[f], x2);
                    double scale = fmax(fabs(want), 1e-300);
                    CHECK(fabs(fm - want) <= LINEAR_TOL * scale + 1e-18 * lin_abs_scale(forms[f]),
                          "%s phase %d form %d: f(mix) %.12g vs mix of f %.12g", lc->what, phase, f,
                          fm, want);
                }
                /* terms and sum */
                double x[CM_NFRAC];
                memcpy(x, x1, sizeof x);
                double res[CM_NRES], rsum = 0, ssum = 0;
                for (int r = 0; r < CM_NRES; r++) {
                    res[r] = cm_lin_eval(&c1.res[r], x);
                    rsum += res[r];
                    CHECK(res[r] >= 0, "%s: resource %s negative (%g)", lc->what, cm_res_names[r],
                          res[r]);
                }
                for (int k = 0; k < CM_NSTAGES; k++)
                    ssum += cm_lin_eval(&c1.stage[k], x);
                CHECK_REL(cm_lin_eval(&c1.term[CM_TERM_H2D], x), res[CM_RES_H2D], EXACT_TOL, "term h2d");
                CHECK_REL(cm_lin_eval(&c1.term[CM_TERM_D2H], x), res[CM_RES_D2H], EXACT_TOL, "term d2h");
                CHECK_REL(cm_lin_eval(&c1.term[CM_TERM_DISK], x),
                          res[CM_RES_DISK_READ] + res[CM_RES_DISK_WRITE], EXACT_TOL, "term disk");
                CHECK_REL(cm_lin_eval(&c1.term[CM_TERM_COMPUTE], x), res[CM_RES_GPU] + res[CM_RES_CPU],
                          EXACT_TOL, "term compute");
                CHECK_REL(cm_lin_eval(&c1.sum, x), rsum, EXACT_TOL, "sum = all resources");
                CHECK_REL(ssum, rsum, EXACT_TOL, "stages add up to the resources");
            }
        }
        /* cm_predict reports the forms evaluated at the realized fractions */
        double x[CM_NFRAC];
        random_x(x);
        set_fracs(&p1, x);
        cm_result r;
        diag e = {0};
        llmsim_status st = cm_predict(&m, hw, &p1, &w, &r, &e);
        CHECK(st == LLMSIM_OK, "%s: predict: %s", lc->what, e.msg);
        if (st == LLMSIM_OK) {
            double xr[CM_NFRAC];
            for (int i = 0; i < 3; i++)
                for (int t = 0; t < TIER_COUNT; t++)
                    xr[3 * i + t] = r.realized[i].f[t];
            cm_setup s;
            cm_setup_init(&s, &m, hw, &p1, &w, &e);
            cm_layer_cost c;
            cm_layer_cost_get(&s, CM_PHASE_PREFILL, (double)w.prompt_len, &c);
            for (int k = 0; k < CM_NSTAGES; k++)
                CHECK_REL(r.prefill_stage_s[k], cm_lin_eval(&c.stage[k], xr), EXACT_TOL,
                          "predict prefill stage = form at realized x");
            for (int k = 0; k < CM_NRES; k++)
                CHECK_REL(r.prefill_res_s[k], cm_lin_eval(&c.res[k], xr), EXACT_TOL,
                          "predict prefill resource = form at realized x");
            CHECK_REL(r.prefill_layer_s, cm_layer_time(&s, &c, xr), EXACT_TOL,
                      "predict prefill layer time = cm_layer_time");
        }
        cm_result_free(&r);
    }
}

/* Without overlap a layer costs the sum of all its resources; with overlap
 * the largest term, which is never more. The whole prediction follows. */
static void test_overlap(void)
{
    model m;
    hwprofile hw;
    if (!load_shipped("opt-30b", &m, &hw))
        return;
    workload w = {.prompt_len = 512, .gen_len = 32};
    const bool delegate[2] = {false, true};
    for (int di = 0; di < 2; di++)
        for (int trial = 0; trial < 10; trial++) {
            policy on, off;
            policy_init(&on);
            double x[CM_NFRAC];
            random_x(x);
            set_fracs(&on, x);
            on.gpu_batch_size = 16;
            on.num_gpu_batches = 4;
            on.cpu_attention = delegate[di];
            off = on;
            off.overlap = false;
            cm_setup s_on, s_off;
            diag e = {0};
            if (cm_setup_init(&s_on, &m, &hw, &on, &w, &e) || cm_setup_init(&s_off, &m, &hw, &off, &w, &e)) {
                CHECK(false, "setup: %s", e.msg);
                return;
            }
            for (int phase = 0; phase < 2; phase++) {
                cm_layer_cost c;
                cm_layer_cost_get(&s_off, (cm_phase)phase, phase ? 600 : 512, &c);
                double sum = 0;
                for (int r = 0; r < CM_NRES; r++)
                    sum += cm_lin_eval(&c.res[r], x);
                double t_off = cm_layer_time(&s_off, &c, x), t_on = cm_layer_time(&s_on, &c, x);
                CHECK_REL(t_off, sum, EXACT_TOL, "overlap off: layer time = sum of resources");
                CHECK(t_off >= t_on, "overlap off %g < overlap on %g", t_off, t_on);
                double tmax = 0;
                for (int k = 0; k < CM_NTERMS; k++)
                    tmax = fmax(tmax, cm_lin_eval(&c.term[k], x));
                CHECK_REL(t_on, tmax, EXACT_TOL, "overlap on: layer time = largest term");
            }
            cm_result r_on, r_off;
            cm_predict(&m, &hw, &on, &w, &r_on, &e);
            cm_predict(&m, &hw, &off, &w, &r_off, &e);
            CHECK(r_off.total_s >= r_on.total_s, "total without overlap %g < with %g", r_off.total_s,
                  r_on.total_s);
            CHECK(r_off.throughput_tok_s <= r_on.throughput_tok_s, "throughput off > on");
            cm_result_free(&r_on);
            cm_result_free(&r_off);
        }
}

/* tiny-opt per layer: 4 h^2 attention + 2 h f MLP matrices, biases q,k,v,o
 * (4h) + fc1 (f) + fc2 (h), two LayerNorms (4h); fp16. */
static double tiny_opt_layer_bytes(void)
{
    const double h = 64, f = 256;
    return (4 * h * h + 2 * h * f + 4 * h + f + h + 4 * h) * 2;
}

/* Hand-computed transfers on the lab machine (zero latencies): weights all
 * on the CPU cross h2d once per layer run, w_layer_bytes / 10 GB/s, in
 * prefill and decode; through the pageable link at 5 GB/s when not pinned;
 * with weights on disk the same bytes also cross the disk at 2 GB/s. Nothing
 * else moves when cache and activations are on the GPU. */
static void test_hand_computed(void)
{
    model m;
    hwprofile hw;
    tiny_opt(&m);
    lab_profile(&hw);
    diag e = {0};
    CHECK(model_validate(&m, "tiny-opt", &e) == LLMSIM_OK, "tiny-opt invalid: %s", e.msg);
    policy p;
    policy_init(&p);
    set_pl(&p.weights, 0, 1, 0);
    p.gpu_batch_size = 2;
    p.num_gpu_batches = 2;
    workload w = {.prompt_len = 16, .gen_len = 4};
    cm_setup s;
    if (cm_setup_init(&s, &m, &hw, &p, &w, &e)) {
        CHECK(false, "setup: %s", e.msg);
        return;
    }
    const double wl = tiny_opt_layer_bytes(); /* 107,264 bytes */
    CHECK(s.w_layer_bytes == wl, "w_layer_bytes %.17g, hand %.17g", s.w_layer_bytes, wl);
    CHECK(s.w_layer_fp16_bytes == wl, "w_layer_fp16_bytes == w_layer_bytes unquantized");
    CHECK(s.bls == 4, "bls = 2 x 2");
    double x[CM_NFRAC];
    cm_policy_x(&p, x);
    cm_layer_cost c;
    cm_layer_cost_get(&s, CM_PHASE_DECODE, 20, &c);
    CHECK_REL(cm_lin_eval(&c.term[CM_TERM_H2D], x), wl / 10e9, EXACT_TOL, "decode h2d = W / 10 GB/s");
    CHECK_REL(cm_lin_eval(&c.stage[CM_STAGE_LOAD_WEIGHT], x), wl / 10e9, EXACT_TOL,
              "decode load_weight stage");
    CHECK(cm_lin_eval(&c.term[CM_TERM_D2H], x) == 0, "nothing goes back with all on the GPU");
    CHECK(cm_lin_eval(&c.term[CM_TERM_DISK], x) == 0, "no disk traffic");
    cm_layer_cost_get(&s, CM_PHASE_PREFILL, 16, &c);
    CHECK_REL(cm_lin_eval(&c.term[CM_TERM_H2D], x), wl / 10e9, EXACT_TOL, "prefill h2d = W / 10 GB/s");
    /* through cm_predict: the averaged decode resource */
    cm_result r;
    if (cm_predict(&m, &hw, &p, &w, &r, &e) == LLMSIM_OK) {
        CHECK_REL(r.decode_res_s[CM_RES_H2D], wl / 10e9, EXACT_TOL, "predict decode h2d");
        CHECK(r.realized[0].f[TIER_CPU] == 1.0, "weights 100%% CPU realized as asked");
    } else {
        CHECK(false, "predict: %s", e.msg);
    }
    cm_result_free(&r);
    /* pageable weights: the pageable h2d link */
    p.pin_weights = false;
    cm_setup_init(&s, &m, &hw, &p, &w, &e);
    cm_layer_cost_get(&s, CM_PHASE_DECODE, 20, &c);
    CHECK_REL(cm_lin_eval(&c.res[CM_RES_H2D], x), wl / 5e9, EXACT_TOL, "pageable h2d = W / 5 GB/s");
    /* weights on disk: the disk read as well */
    p.pin_weights = true;
    set_pl(&p.weights, 0, 0, 1);
    cm_setup_init(&s, &m, &hw, &p, &w, &e);
    cm_policy_x(&p, x);
    cm_layer_cost_get(&s, CM_PHASE_DECODE, 20, &c);
    CHECK_REL(cm_lin_eval(&c.res[CM_RES_H2D], x), wl / 10e9, EXACT_TOL, "disk weights: h2d");
    CHECK_REL(cm_lin_eval(&c.res[CM_RES_DISK_READ], x), wl / 2e9, EXACT_TOL, "disk weights: disk read");
    CHECK(cm_lin_eval(&c.res[CM_RES_DISK_WRITE], x) == 0, "disk weights: nothing written");
    /* with overlap the disk (slowest) term is the layer time, if compute is
     * smaller; without it, the sum */
    double comp = cm_lin_eval(&c.term[CM_TERM_COMPUTE], x);
    CHECK_REL(cm_layer_time(&s, &c, x), fmax(wl / 2e9, comp), EXACT_TOL, "disk weights: layer time");
}

/* Moving weights off the GPU (gpu -> cpu -> disk, in steps of 5%) never
 * raises the predicted throughput: each step moves bytes to a slower path.
 * OPT-30B on t4-flexgen; cache on the GPU, and cache on the CPU delegated. */
static void test_monotone_weights(void)
{
    model m;
    hwprofile hw;
    if (!load_shipped("opt-30b", &m, &hw))
        return;
    workload w = {.prompt_len = 512, .gen_len = 32};
    for (int cfg = 0; cfg < 2; cfg++) {
        policy p;
        policy_init(&p);
        p.gpu_batch_size = 16;
        p.num_gpu_batches = 2;
        if (cfg == 1) {
            set_pl(&p.kv_cache, 0, 1, 0);
            set_pl(&p.activations, 0, 1, 0);
            p.cpu_attention = true;
        }
        double prev = INFINITY, prev_g = 1, prev_d = 0;
        for (int step = 0; step <= 40; step++) {
            double g, c, d;
            if (step <= 20) {
                g = 1 - step / 20.0;
                c = step / 20.0;
                d = 0;
            } else {
                g = 0;
                d = (step - 20) / 20.0;
                c = 1 - d;
            }
            set_pl(&p.weights, g, c, d);
            cm_result r;
            diag e = {0};
            if (cm_predict(&m, &hw, &p, &w, &r, &e)) {
                CHECK(false, "predict: %s", e.msg);
                return;
            }
            CHECK(r.throughput_tok_s <= prev * (1 + EXACT_TOL),
                  "cfg %d: weights %.2f/%.2f/%.2f give %.6g tok/s, more than %.6g at the step before "
                  "(realized gpu %.4f disk %.4f, before %.4f %.4f)",
                  cfg, g, c, d, r.throughput_tok_s, prev, r.realized[0].f[TIER_GPU],
                  r.realized[0].f[TIER_DISK], prev_g, prev_d);
            prev = r.throughput_tok_s;
            prev_g = r.realized[0].f[TIER_GPU];
            prev_d = r.realized[0].f[TIER_DISK];
            cm_result_free(&r);
        }
    }
}

/* CPU delegation: with the KV cache on the CPU and attention delegated, no
 * KV bytes cross h2d: the load_cache stage carries at most the attention
 * output (one row per sequence), does not grow with the context and is a
 * small fraction of the undelegated load_cache (the old cache's bytes over
 * h2d); the attention time sits on the CPU resource (the CPU's attention
 * pass over K and V) and leaves the GPU. */
#define DELEGATED_LOAD_CACHE_MAX_SHARE 0.01
static void test_delegation(void)
{
    model m;
    hwprofile hw;
    if (!load_shipped("opt-30b", &m, &hw))
        return;
    workload w = {.prompt_len = 512, .gen_len = 32};
    policy poff, pon;
    policy_init(&poff);
    set_pl(&poff.weights, 0.2, 0.8, 0);
    set_pl(&poff.kv_cache, 0, 1, 0);
    set_pl(&poff.activations, 0, 1, 0);
    poff.gpu_batch_size = 48;
    poff.num_gpu_batches = 3;
    pon = poff;
    pon.cpu_attention = true;
    double x[CM_NFRAC];
    cm_policy_x(&poff, x);
    const double ctx = 530, bls = 144, kvd = 7168, ngb = 3;
    const hw_link *h2d = &hw.links[HW_LINK_H2D_PINNED];
    const double kv_old = 2 * bls * (ctx - 1) * kvd * 2;

    cm_setup soff, son;
    cm_layer_cost off, on, on2, off2;
    diag e = {0};
    cm_setup_init(&soff, &m, &hw, &poff, &w, &e);
    cm_setup_init(&son, &m, &hw, &pon, &w, &e);
    cm_layer_cost_get(&soff, CM_PHASE_DECODE, ctx, &off);
    cm_layer_cost_get(&soff, CM_PHASE_DECODE, ctx + 10, &off2);
    cm_layer_cost_get(&son, CM_PHASE_DECODE, ctx, &on);
    cm_layer_cost_get(&son, CM_PHASE_DECODE, ctx + 10, &on2);

    double lc_off = cm_lin_eval(&off.stage[CM_STAGE_LOAD_CACHE], x);
    double lc_on = cm_lin_eval(&on.stage[CM_STAGE_LOAD_CACHE], x);
    CHECK_REL(lc_off, kv_old / h2d->bandwidth_Bps + 2 * ngb * h2d->latency_s, EXACT_TOL,
              "no delegation: load_cache = old KV bytes over h2d");
    CHECK(cm_lin_eval(&off.res[CM_RES_CPU], x) == 0, "no delegation: the CPU is idle");
    CHECK(lc_on <= DELEGATED_LOAD_CACHE_MAX_SHARE * lc_off,
          "delegation: load_cache %g is not ~0 (undelegated %g)", lc_on, lc_off);
    CHECK(lc_on <= (bls * 7168 * 2) / h2d->bandwidth_Bps + 2 * ngb * h2d->latency_s,
          "delegation: load_cache %g carries more than one hidden-size row per sequence", lc_on);
    CHECK_REL(cm_lin_eval(&on2.stage[CM_STAGE_LOAD_CACHE], x), lc_on, EXACT_TOL,
              "delegation: load_cache does not grow with the context");
    CHECK_REL(cm_lin_eval(&on2.res[CM_RES_H2D], x), cm_lin_eval(&on.res[CM_RES_H2D], x), EXACT_TOL,
              "delegation: h2d does not grow with the context");
    CHECK_REL(cm_lin_eval(&off2.res[CM_RES_H2D], x) - cm_lin_eval(&off.res[CM_RES_H2D], x),
              10 * 2 * bls * kvd * 2 / h2d->bandwidth_Bps, 1e-6,
              "no delegation: h2d grows by the new tokens' K and V");
    double attn_cpu = ngb * cm_attention_decode_time(&hw, CM_DEV_CPU, 48, ctx, 56, 56, 128);
    CHECK_REL(cm_lin_eval(&on.res[CM_RES_CPU], x), attn_cpu, EXACT_TOL,
              "delegation: CPU resource = CPU attention over the cache");
    CHECK(cm_lin_eval(&on.res[CM_RES_GPU], x) < cm_lin_eval(&off.res[CM_RES_GPU], x),
          "delegation takes attention off the GPU");
    /* through the whole prediction */
    cm_result r;
    if (cm_predict(&m, &hw, &pon, &w, &r, &e) == LLMSIM_OK) {
        cm_result roff;
        if (cm_predict(&m, &hw, &poff, &w, &roff, &e) == LLMSIM_OK)
            CHECK(r.layer_stage_s[CM_STAGE_LOAD_CACHE] <=
                      DELEGATED_LOAD_CACHE_MAX_SHARE * roff.layer_stage_s[CM_STAGE_LOAD_CACHE],
                  "predict: delegated load_cache %g vs %g", r.layer_stage_s[CM_STAGE_LOAD_CACHE],
                  roff.layer_stage_s[CM_STAGE_LOAD_CACHE]);
        cm_result_free(&roff);
        CHECK(r.decode_res_s[CM_RES_CPU] > 0, "predict: CPU busy when delegated");
    }
    cm_result_free(&r);
}

/* Weight quantization (4-bit, group 64) stores the matrices at 0.5 + 4/64 =
 * 0.5625 bytes a value instead of 2 (3.56x smaller), vectors stay fp16, and
 * compute gains one dequantization pass (read packed, write fp16). */
static void test_weight_quant(void)
{
    model m;
    hwprofile hw;
    if (!load_shipped("opt-30b", &m, &hw))
        return;
    workload w = {.prompt_len = 512, .gen_len = 32};
    policy p;
    policy_init(&p);
    set_pl(&p.weights, 0, 1, 0);
    p.gpu_batch_size = 8;
    /* cm_setup keeps a pointer to its policy: one policy per setup */
    policy p4 = p, p8 = p;
    p4.weight_quant = (quant){4, 64};
    p8.weight_quant = (quant){8, 128};
    cm_setup s0, s4, s8;
    diag e = {0};
    cm_setup_init(&s0, &m, &hw, &p, &w, &e);
    cm_setup_init(&s4, &m, &hw, &p4, &w, &e);
    const double h = 7168, f = 28672;
    const double mats = 4 * h * h + 2 * h * f, small = 4 * h + f + h + 4 * h;
    CHECK(s0.w_layer_bytes == (mats + small) * 2, "fp16 layer bytes");
    CHECK(s4.w_layer_bytes == mats * (0.5 + 4.0 / 64) + small * 2, "4-bit g64 layer bytes %.17g",
          s4.w_layer_bytes);
    CHECK(s4.w_layer_fp16_bytes == s0.w_layer_bytes, "dequantized size = fp16 size");
    CHECK_REL((s0.w_layer_bytes - small * 2) / (s4.w_layer_bytes - small * 2), 2 / 0.5625, EXACT_TOL,
              "matrices 3.56x smaller");
    cm_setup_init(&s8, &m, &hw, &p8, &w, &e);
    CHECK(s8.w_layer_bytes == mats * (1 + 4.0 / 128) + small * 2, "8-bit g128 layer bytes");

    double x[CM_NFRAC];
    cm_policy_x(&p, x);
    cm_layer_cost c0, c4;
    cm_layer_cost_get(&s0, CM_PHASE_DECODE, 520, &c0);
    cm_layer_cost_get(&s4, CM_PHASE_DECODE, 520, &c4);
    double deq = cm_memory_pass_time(&hw, CM_DEV_GPU, s4.w_layer_bytes, s4.w_layer_fp16_bytes);
    CHECK_REL(cm_lin_eval(&c4.stage[CM_STAGE_COMPUTE], x) - cm_lin_eval(&c0.stage[CM_STAGE_COMPUTE], x),
              deq, 1e-9, "quantized weights add one dequantization pass to compute");
    const hw_link *l = &hw.links[HW_LINK_H2D_PINNED];
    double lat = (double)s0.layer_tensors * l->latency_s;
    CHECK_REL(cm_lin_eval(&c4.stage[CM_STAGE_LOAD_WEIGHT], x) - lat, s4.w_layer_bytes / l->bandwidth_Bps,
              EXACT_TOL, "quantized weights cross h2d at their stored size");
}

/* KV quantization (4-bit, group 64) shrinks the cache that crosses h2d by
 * the same 2 / 0.5625 (lab machine, zero latency), and adds dequantization
 * of the old cache and quantization of the new entries to compute. */
static void test_kv_quant(void)
{
    model m;
    hwprofile hw;
    tiny_opt(&m);
    lab_profile(&hw);
    workload w = {.prompt_len = 32, .gen_len = 16};
    policy p;
    policy_init(&p);
    set_pl(&p.kv_cache, 0, 1, 0);
    p.gpu_batch_size = 4;
    p.num_gpu_batches = 2;
    /* cm_setup keeps a pointer to its policy: one policy per setup */
    policy p4 = p;
    p4.kv_quant = (quant){4, 64};
    cm_setup s0, s4;
    diag e = {0};
    cm_setup_init(&s0, &m, &hw, &p, &w, &e);
    if (cm_setup_init(&s4, &m, &hw, &p4, &w, &e)) {
        CHECK(false, "setup kv quant: %s", e.msg);
        return;
    }
    double x[CM_NFRAC];
    cm_policy_x(&p, x);
    const double ctx = 41, old = ctx - 1, bls = 8, kvd = 64;
    cm_layer_cost c0, c4;
    cm_layer_cost_get(&s0, CM_PHASE_DECODE, ctx, &c0);
    cm_layer_cost_get(&s4, CM_PHASE_DECODE, ctx, &c4);
    double vals = 2 * bls * old * kvd; /* 40,960 values */
    CHECK_REL(cm_lin_eval(&c0.stage[CM_STAGE_LOAD_CACHE], x), vals * 2 / 10e9, EXACT_TOL,
              "fp16 load_cache");
    CHECK_REL(cm_lin_eval(&c4.stage[CM_STAGE_LOAD_CACHE], x), (vals * 0.5 + vals / 64 * 4) / 10e9,
              EXACT_TOL, "4-bit load_cache");
    CHECK_REL(cm_lin_eval(&c0.stage[CM_STAGE_LOAD_CACHE], x) / cm_lin_eval(&c4.stage[CM_STAGE_LOAD_CACHE], x),
              2 / 0.5625, EXACT_TOL, "KV quantization shrinks load_cache 3.56x");
    double nv = 2 * bls * kvd; /* new entries */
    CHECK_REL(cm_lin_eval(&c4.stage[CM_STAGE_STORE_CACHE], x), (nv * 0.5 + nv / 64 * 4) / 8e9, EXACT_TOL,
              "4-bit store_cache");
    double extra = cm_memory_pass_time(&hw, CM_DEV_GPU, vals * 0.5625, vals * 2) +
                   cm_memory_pass_time(&hw, CM_DEV_GPU, nv * 2, nv * 0.5625);
    CHECK_REL(cm_lin_eval(&c4.stage[CM_STAGE_COMPUTE], x) - cm_lin_eval(&c0.stage[CM_STAGE_COMPUTE], x),
              extra, 1e-9, "KV quantization adds dequantize + quantize passes");
}

/* Offloaded cache without delegation: each decode step loads the whole old
 * cache, one token longer than the step before, so the load_cache time of
 * step j grows by a constant: layers x (2 bls kv_dim 2 bytes) / h2d. */
static void test_decode_growth(void)
{
    model m;
    hwprofile hw;
    if (!load_shipped("opt-30b", &m, &hw))
        return;
    workload w = {.prompt_len = 512, .gen_len = 32};
    policy p;
    policy_init(&p);
    set_pl(&p.weights, 0.2, 0.8, 0);
    set_pl(&p.kv_cache, 0, 1, 0);
    p.gpu_batch_size = 8;
    p.num_gpu_batches = 2;
    cm_result r;
    diag e = {0};
    if (cm_predict(&m, &hw, &p, &w, &r, &e)) {
        CHECK(false, "predict: %s", e.msg);
        return;
    }
    CHECK(r.nsteps == 31, "gen 32 -> 31 decode steps, got %d", r.nsteps);
    const double inc = 48.0 * 2 * 16 * 7168 * 2 / hw.links[HW_LINK_H2D_PINNED].bandwidth_Bps;
    CHECK(r.steps[0].s[CM_STAGE_LOAD_CACHE] == 0, "prefill loads no cache");
    for (int j = 2; j <= r.nsteps; j++) {
        double d = r.steps[j].s[CM_STAGE_LOAD_CACHE] - r.steps[j - 1].s[CM_STAGE_LOAD_CACHE];
        CHECK(d > 0, "step %d load_cache not larger than step %d", j, j - 1);
        CHECK_REL(d, inc, 1e-6, "constant increment of load_cache per step");
    }
    cm_result_free(&r);
}

/* OPT-175B (~350 GB of fp16 weights) all on a 15 GiB T4 is infeasible; the
 * GPU tier overflows by exactly peak - capacity. */
static void test_infeasible(void)
{
    model m;
    hwprofile hw;
    if (!load_shipped("opt-175b", &m, &hw))
        return;
    workload w = {.prompt_len = 512, .gen_len = 32};
    policy p;
    policy_init(&p);
    p.gpu_batch_size = 4;
    cm_result r;
    diag e = {0};
    if (cm_predict(&m, &hw, &p, &w, &r, &e)) {
        CHECK(false, "predict: %s", e.msg);
        return;
    }
    CHECK(!r.feasible, "opt-175b all on a T4 is feasible?");
    CHECK(r.overflow_tier == TIER_GPU, "overflow tier %d, want gpu", (int)r.overflow_tier);
    CHECK_REL(r.overflow_bytes, r.peak_bytes[TIER_GPU] - r.capacity_bytes[TIER_GPU], EXACT_TOL,
              "overflow = peak - capacity");
    CHECK_REL(r.capacity_bytes[TIER_GPU], 15.0 * 1024 * 1024 * 1024, EXACT_TOL, "T4 capacity 15 GiB");
    CHECK(r.overflow_bytes > (double)model_param_count(&m) * 2 - r.capacity_bytes[TIER_GPU],
          "overflow at least the weights beyond capacity");
    CHECK(r.throughput_tok_s > 0, "an infeasible policy still gets a prediction");
    cm_result_free(&r);
    /* a feasible one for contrast: opt-1.3b all on the GPU */
    model small;
    diag e2 = {0};
    model_load("opt-1.3b", &small, &e2);
    if (cm_predict(&small, &hw, &p, &w, &r, &e2) == LLMSIM_OK)
        CHECK(r.feasible, "opt-1.3b batch 4 on a T4 should fit (gpu peak %g)", r.peak_bytes[TIER_GPU]);
    cm_result_free(&r);
}

/* A CPU-only machine: compute on the CPU resource, no h2d/d2h, nothing on a
 * GPU; GPU fractions on it are an input error; so are disk fractions on a
 * machine without a disk. */
static void test_cpu_only(void)
{
    model m;
    hwprofile hw;
    tiny_gqa(&m);
    lab_cpu_only_profile(&hw);
    workload w = {.prompt_len = 32, .gen_len = 8};
    policy p;
    policy_init(&p);
    set_pl(&p.weights, 0, 1, 0);
    set_pl(&p.kv_cache, 0, 0.5, 0.5);
    set_pl(&p.activations, 0, 1, 0);
    p.gpu_batch_size = 4;
    cm_setup s;
    diag e = {0};
    if (cm_setup_init(&s, &m, &hw, &p, &w, &e)) {
        CHECK(false, "setup cpu-only: %s", e.msg);
        return;
    }
    CHECK(!s.has_gpu, "cpu-only setup has a GPU");
    double x[CM_NFRAC];
    cm_policy_x(&p, x);
    for (int phase = 0; phase < 2; phase++) {
        cm_layer_cost c;
        cm_layer_cost_get(&s, (cm_phase)phase, phase ? 33 : 32, &c);
        for (int r = 0; r < CM_NRES; r++) {
            if (r != CM_RES_GPU && r != CM_RES_H2D && r != CM_RES_D2H)
                continue;
            CHECK(lin_abs_scale(&c.res[r]) == 0, "cpu-only phase %d: resource %s is not 0", phase,
                  cm_res_names[r]);
        }
        CHECK(cm_lin_eval(&c.res[CM_RES_CPU], x) > 0, "cpu-only: compute on the CPU");
        CHECK(cm_lin_eval(&c.res[CM_RES_DISK_READ], x) > 0 || phase == 0,
              "cpu-only: half the cache read from disk in decode");
    }
    cm_result r;
    if (cm_predict(&m, &hw, &p, &w, &r, &e) == LLMSIM_OK) {
        CHECK(r.decode_res_s[CM_RES_GPU] == 0 && r.decode_res_s[CM_RES_H2D] == 0 &&
                  r.decode_res_s[CM_RES_D2H] == 0, "cpu-only predict: gpu/h2d/d2h busy");
        CHECK(r.decode_res_s[CM_RES_CPU] > 0, "cpu-only predict: CPU idle");
        CHECK(r.capacity_bytes[TIER_GPU] == 0 && r.peak_bytes[TIER_GPU] == 0,
              "cpu-only: gpu tier empty (cap %g, peak %g)", r.capacity_bytes[TIER_GPU],
              r.peak_bytes[TIER_GPU]);
        CHECK(r.feasible, "cpu-only tiny model fits");
        CHECK(r.throughput_tok_s > 0, "cpu-only throughput");
    } else {
        CHECK(false, "cpu-only predict: %s", e.msg);
    }
    cm_result_free(&r);
    /* any GPU fraction is an error */
    for (int i = 0; i < 3; i++) {
        policy q = p;
        placement *pl[3] = {&q.weights, &q.kv_cache, &q.activations};
        set_pl(pl[i], 0.1, 0.9, 0);
        diag e2 = {0};
        llmsim_status st = cm_predict(&m, &hw, &q, &w, &r, &e2);
        CHECK(st == LLMSIM_EINPUT, "cpu-only with gpu fraction in group %d: status %d", i, (int)st);
        CHECK(strstr(e2.msg, "GPU") != NULL, "message names the GPU: %s", e2.msg);
        cm_result_free(&r);
    }
    /* no disk: disk fractions are an error */
    hwprofile nodisk;
    lab_profile(&nodisk);
    memset(&nodisk.disk, 0, sizeof nodisk.disk);
    policy q;
    policy_init(&q);
    set_pl(&q.weights, 0, 0.5, 0.5);
    diag e3 = {0};
    CHECK(cm_predict(&m, &nodisk, &q, &w, &r, &e3) == LLMSIM_EINPUT, "disk fractions without a disk");
    cm_result_free(&r);
}

/* The working sets weight reads are priced at on the CPU: every weight of a
 * pass for weights read where they live, the layer's dequantized copy for
 * quantized ones; with a read table that has the cache faster than DRAM, a
 * decode layer over a quantized layer's copy reads faster than one over fp16
 * weights streamed from RAM, and a GPU setup ignores the table. */
static void test_cpu_read_working_set(void)
{
    model m;
    hwprofile hw;
    tiny_gqa(&m);
    lab_cpu_only_profile(&hw);
    workload w = {.prompt_len = 32, .gen_len = 8};
    policy p, q;
    policy_init(&p);
    set_pl(&p.weights, 0, 1, 0);
    set_pl(&p.kv_cache, 0, 1, 0);
    set_pl(&p.activations, 0, 1, 0);
    q = p;
    q.weight_quant = (quant){4, 64};
    cm_setup sp, sq;
    diag e = {0};
    if (cm_setup_init(&sp, &m, &hw, &p, &w, &e) || cm_setup_init(&sq, &m, &hw, &q, &w, &e)) {
        CHECK(false, "setup: %s", e.msg);
        return;
    }
    double head_fp16 = (double)(model_embed_param_count(&m) + model_lm_head_param_count(&m)) * 2;
    CHECK_REL(sp.w_pass_ws_bytes, m.num_layers * sp.w_layer_bytes + head_fp16, EXACT_TOL,
              "fp16 pass");
    CHECK_REL(sp.w_layer_ws_bytes, sp.w_pass_ws_bytes, EXACT_TOL,
              "fp16 layer reads: the whole pass");
    CHECK_REL(sq.w_layer_ws_bytes, sq.w_layer_fp16_bytes, EXACT_TOL, "quantized: the layer's copy");
    CHECK_REL(sq.w_pass_ws_bytes,
              m.num_layers * sq.w_layer_bytes + head_fp16 + sq.w_layer_fp16_bytes, EXACT_TOL,
              "quantized pass: stored layers, the head's copy and one layer's copy");
    /* cache at 10x DRAM, the boundary between the two working sets */
    double lo = sq.w_layer_ws_bytes, hi = sp.w_layer_ws_bytes;
    CHECK(lo < hi / 2, "fixture: the layer copy is much smaller than the pass (%g, %g)", lo, hi);
    hw.cpu.read.npoints = 2;
    hw.cpu.read.points[0] =
        (hw_read_point){.ws_bytes = lo, .Bps = 10 * hw.cpu.memory_bandwidth_Bps};
    hw.cpu.read.points[1] = (hw_read_point){.ws_bytes = hi, .Bps = hw.cpu.memory_bandwidth_Bps};
    double pre_p, post_p, pre_q, post_q;
    cm_dense_rows_s(&sp, 1, &pre_p, &post_p);
    cm_dense_rows_s(&sq, 1, &pre_q, &post_q);
    CHECK(pre_q + post_q < 0.5 * (pre_p + post_p), "decode over the cached copy: %g s vs %g s",
          pre_q + post_q, pre_p + post_p);
    hw.cpu.read.npoints = 0;
    double pre_0, post_0, pre_1, post_1;
    cm_dense_rows_s(&sq, 1, &pre_0, &post_0);
    cm_dense_rows_s(&sp, 1, &pre_1, &post_1);
    CHECK_REL(pre_0 + post_0, pre_1 + post_1, 1e-9,
              "no read table: the working set changes nothing");
}

/* Inputs that contradict each other are LLMSIM_EINPUT: a quantization group
 * that does not divide the rows, and prompt + generation beyond the model's
 * context. Exactly at the limit is fine. */
static void test_input_errors(void)
{
    model m;
    hwprofile hw;
    if (!load_shipped("opt-30b", &m, &hw))
        return;
    workload w = {.prompt_len = 512, .gen_len = 32};
    policy p;
    policy_init(&p);
    set_pl(&p.weights, 0, 1, 0);
    cm_result r;
    diag e = {0};
    p.weight_quant = (quant){4, 96}; /* 7168 = 96 * 74 + 64 */
    CHECK(cm_predict(&m, &hw, &p, &w, &r, &e) == LLMSIM_EINPUT, "weight group 96 on h 7168: %s", e.msg);
    cm_result_free(&r);
    p.weight_quant = (quant){4, 64};
    diag e1 = {0};
    CHECK(cm_predict(&m, &hw, &p, &w, &r, &e1) == LLMSIM_OK, "weight group 64 divides: %s", e1.msg);
    cm_result_free(&r);
    p.weight_quant = (quant){0, 0};
    p.kv_quant = (quant){4, 96};
    diag e2 = {0};
    CHECK(cm_predict(&m, &hw, &p, &w, &r, &e2) == LLMSIM_EINPUT, "kv group 96 on kv 7168");
    cm_result_free(&r);
    p.kv_quant = (quant){0, 0};
    /* tiny-gqa: ffn 192 is not a multiple of 128 although hidden 128 is */
    model g;
    hwprofile lab;
    tiny_gqa(&g);
    lab_profile(&lab);
    policy pg;
    policy_init(&pg);
    pg.weight_quant = (quant){4, 128};
    workload wg = {.prompt_len = 16, .gen_len = 4};
    diag e3 = {0};
    CHECK(cm_predict(&g, &lab, &pg, &wg, &r, &e3) == LLMSIM_EINPUT, "group 128 vs ffn 192");
    cm_result_free(&r);
    /* context */
    workload over = {.prompt_len = 2000, .gen_len = 49};
    diag e4 = {0};
    CHECK(cm_predict(&m, &hw, &p, &over, &r, &e4) == LLMSIM_EINPUT, "2000 + 49 > 2048");
    CHECK(strstr(e4.msg, "2048") != NULL, "message gives the context: %s", e4.msg);
    cm_result_free(&r);
    workload at = {.prompt_len = 2000, .gen_len = 48};
    diag e5 = {0};
    CHECK(cm_predict(&m, &hw, &p, &at, &r, &e5) == LLMSIM_OK, "2000 + 48 = 2048 is fine: %s", e5.msg);
    cm_result_free(&r);
}

/* throughput = num_prompts x gen_len / total; blocks = ceil(prompts / bls);
 * the total scales with the number of blocks; num_prompts 0 = one block. */
static void test_throughput_blocks(void)
{
    model m;
    hwprofile hw;
    if (!load_shipped("opt-30b", &m, &hw))
        return;
    policy p;
    policy_init(&p);
    set_pl(&p.weights, 0.2, 0.8, 0);
    set_pl(&p.kv_cache, 0, 1, 0);
    set_pl(&p.activations, 0, 1, 0);
    p.gpu_batch_size = 48;
    p.num_gpu_batches = 3;
    p.cpu_attention = true;
    static const long long prompts[] = {0, 1, 143, 144, 145, 288, 300, 1000};
    static const double blocks[] = {1, 1, 1, 1, 2, 2, 3, 7};
    double one_block = 0;
    for (size_t i = 0; i < sizeof prompts / sizeof *prompts; i++) {
        workload w = {.prompt_len = 512, .gen_len = 32, .num_prompts = prompts[i]};
        cm_result r;
        diag e = {0};
        if (cm_predict(&m, &hw, &p, &w, &r, &e)) {
            CHECK(false, "predict: %s", e.msg);
            return;
        }
        double np = prompts[i] ? (double)prompts[i] : 144;
        CHECK(r.num_prompts == np, "num_prompts %g, want %g", r.num_prompts, np);
        CHECK(r.blocks == blocks[i], "%lld prompts: %g blocks, want %g", prompts[i], r.blocks, blocks[i]);
        CHECK_REL(r.throughput_tok_s, np * 32 / r.total_s, EXACT_TOL, "throughput = tokens / total");
        CHECK_REL(r.total_s, r.prefill_s + r.decode_s, EXACT_TOL, "total = prefill + decode");
        if (i == 0)
            one_block = r.total_s;
        CHECK_REL(r.total_s, blocks[i] * one_block, EXACT_TOL, "total = blocks x one block");
        cm_result_free(&r);
    }
}

/* FlexGen's published throughputs on its single T4 (Sheng et al., "FlexGen:
 * High-Throughput Generative Inference of Large Language Models with a
 * Single GPU", ICML 2023; Table 2, prompt 512, generation 32, no
 * compression; the policies are those the paper lists for these runs):
 *   OPT-30B  --percent 20 80 0 100 0 100, GPU batch 48 x 3 batches,
 *            cpu attention: 7.32 tok/s   (llmsim ~8.5)
 *   OPT-175B --percent 0 50 0 0 0 100, GPU batch 32 x 8 batches,
 *            cpu attention: 0.69 tok/s   (llmsim ~0.70)
 * The prediction must stay within FLEXGEN_*_TOL of the paper. */
static void flexgen_case(const char *name, const char *const pct[6], int gbs, int ngb, double paper,
                         double tol)
{
    model m;
    hwprofile hw;
    if (!load_shipped(name, &m, &hw))
        return;
    policy p;
    policy_init(&p);
    diag e = {0};
    if (policy_from_percent(pct, &p, &e)) {
        CHECK(false, "--percent: %s", e.msg);
        return;
    }
    p.gpu_batch_size = gbs;
    p.num_gpu_batches = ngb;
    p.cpu_attention = true;
    workload w = {.prompt_len = 512, .gen_len = 32};
    cm_result r;
    if (cm_predict(&m, &hw, &p, &w, &r, &e)) {
        CHECK(false, "predict %s: %s", name, e.msg);
        return;
    }
    printf("# %s: predicted %.3f tok/s, FlexGen paper %.2f (%+.1f%%), feasible %d\n", name,
           r.throughput_tok_s, paper, 100 * (r.throughput_tok_s / paper - 1), (int)r.feasible);
    CHECK_REL(r.throughput_tok_s, paper, tol, name);
    CHECK(r.feasible, "%s FlexGen policy should be feasible on the T4 (overflow %s by %g)", name,
          tier_names[r.overflow_tier], r.overflow_bytes);
    cm_result_free(&r);
}

static void test_flexgen_published(void)
{
    static const char *const p30[6] = {"20", "80", "0", "100", "0", "100"};
    static const char *const p175[6] = {"0", "50", "0", "0", "0", "100"};
    flexgen_case("opt-30b", p30, 48, 3, 7.32, FLEXGEN_30B_TOL);
    flexgen_case("opt-175b", p175, 32, 8, 0.69, FLEXGEN_175B_TOL);
}

/* All on the GPU, the GPU's peak holds at least all the weights and the KV
 * cache of the block at full length (prompt + generation); the other tiers
 * hold nothing. Moving the cache to the CPU moves those bytes with it. */
static void test_peak_memory(void)
{
    model m;
    hwprofile hw;
    if (!load_shipped("opt-6.7b", &m, &hw))
        return;
    workload w = {.prompt_len = 512, .gen_len = 32};
    policy p;
    policy_init(&p);
    p.gpu_batch_size = 4;
    p.num_gpu_batches = 2;
    cm_result r;
    diag e = {0};
    if (cm_predict(&m, &hw, &p, &w, &r, &e)) {
        CHECK(false, "predict: %s", e.msg);
        return;
    }
    const double weights = (double)model_param_count(&m) * 2;
    const double kv = (double)m.num_layers * 2 * 8 * (512 + 32) * (double)model_kv_dim(&m) * 2;
    CHECK(r.peak_bytes[TIER_GPU] >= weights + kv, "gpu peak %.6g < weights %.6g + kv %.6g",
          r.peak_bytes[TIER_GPU], weights, kv);
    CHECK(r.peak_bytes[TIER_CPU] == 0 && r.peak_bytes[TIER_DISK] == 0,
          "all on GPU: cpu peak %g, disk peak %g", r.peak_bytes[TIER_CPU], r.peak_bytes[TIER_DISK]);
    double gpu_all = r.peak_bytes[TIER_GPU];
    cm_result_free(&r);
    set_pl(&p.kv_cache, 0, 1, 0);
    if (cm_predict(&m, &hw, &p, &w, &r, &e) == LLMSIM_OK) {
        CHECK(r.peak_bytes[TIER_CPU] >= kv, "cache on CPU: cpu peak %g < kv %g", r.peak_bytes[TIER_CPU], kv);
        CHECK(r.peak_bytes[TIER_GPU] < gpu_all, "cache off the GPU lowers the GPU peak");
        /* one layer's cache of one GPU batch (4 of the block's 8 sequences),
         * and its new entries in the prefill (the prompt's 512 of 544) */
        const double kv_batch = kv / (double)m.num_layers / 2;
        const double kv_prompt_batch = kv_batch * 512 / (512 + 32);
        CHECK_REL(gpu_all - r.peak_bytes[TIER_GPU], kv - 2 * kv_batch - 2 * kv_prompt_batch, 1e-9,
                  "GPU saves the cache less two per-batch slots in and two out, of one layer");
    }
    cm_result_free(&r);
}

/* cm_io_loss_s: bytes x the profile's loss per GB, only without a GPU and
 * with overlap; its cap is the loss of a disk streaming for the whole task;
 * a layer with its weights on disk carries the loss in its CPU term, in the
 * weights' disk fraction. */
static void test_io_loss(void)
{
    model m;
    hwprofile hw;
    tiny_gqa(&m);
    lab_cpu_only_profile(&hw);
    hw.disk.read_loss_s_per_GB = 0.1;
    hw.disk.write_loss_s_per_GB = 0.3;
    workload w = {.prompt_len = 32, .gen_len = 8};
    policy p;
    policy_init(&p);
    set_pl(&p.weights, 0, 0.5, 0.5);
    set_pl(&p.kv_cache, 0, 1, 0);
    set_pl(&p.activations, 0, 1, 0);
    cm_setup s;
    diag e = {0};
    if (cm_setup_init(&s, &m, &hw, &p, &w, &e)) {
        CHECK(false, "setup: %s", e.msg);
        return;
    }
    CHECK_REL(cm_io_loss_s(&s, 2e9, 1e9), 0.1 * 2 + 0.3, EXACT_TOL, "2 GB read, 1 GB written");
    /* the lab disk: 2 GB/s read, 1 GB/s write: streaming costs 0.2 and 0.3 of the time */
    CHECK_REL(cm_io_loss_cap_s(&s, 2.0), 2.0 * 0.3, EXACT_TOL, "cap: the costlier stream");
    cm_layer_cost with, without;
    cm_layer_cost_get(&s, CM_PHASE_DECODE, 33, &with);
    hw.disk.read_loss_s_per_GB = hw.disk.write_loss_s_per_GB = 0;
    cm_layer_cost_get(&s, CM_PHASE_DECODE, 33, &without);
    CHECK_REL(with.res[CM_RES_CPU].c[CM_WD] - without.res[CM_RES_CPU].c[CM_WD],
              s.w_layer_bytes * 0.1 / 1e9, 1e-9, "the weights' disk fraction carries the loss");
    CHECK_REL(with.res[CM_RES_CPU].c0, without.res[CM_RES_CPU].c0, 1e-12,
              "nothing in RAM is charged");
    hw.disk.read_loss_s_per_GB = 0.1;
    p.overlap = false;
    CHECK(cm_io_loss_s(&s, 1e9, 1e9) == 0, "no overlap: no loss");
    p.overlap = true;
    hwprofile gpu;
    lab_profile(&gpu);
    gpu.disk.read_loss_s_per_GB = 0.1;
    cm_setup sg;
    if (cm_setup_init(&sg, &m, &gpu, &p, &w, &e) == LLMSIM_OK)
        CHECK(cm_io_loss_s(&sg, 1e9, 1e9) == 0, "with a GPU the compute is not on the CPUs");
    else
        CHECK(false, "setup with a GPU: %s", e.msg);
}

int main(void)
{
    test_copy_time();
    test_gemm_rate_in_m();
    test_gemm_rate_shapes();
    test_gemm_time();
    test_read_bandwidth();
    test_attention();
    test_quant_bytes();
    test_linearity();
    test_overlap();
    test_hand_computed();
    test_monotone_weights();
    test_delegation();
    test_weight_quant();
    test_kv_quant();
    test_decode_growth();
    test_infeasible();
    test_cpu_only();
    test_cpu_read_working_set();
    test_io_loss();
    test_input_errors();
    test_throughput_blocks();
    test_flexgen_published();
    test_peak_memory();
    return tap_done();
}
