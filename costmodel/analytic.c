/*
 * analytic — the per-layer cost model and whole-run prediction. See
 * analytic.h for the model; README.md ("How the cost model works") for the
 * reasoning behind each term.
 */
#include "costmodel/analytic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "costmodel/placement.h"
#include "costmodel/primitives.h"
#include "costmodel/sizes.h"

const char *const cm_res_names[CM_NRES] = {"h2d", "d2h", "disk_read", "disk_write", "gpu", "cpu"};
const char *const cm_stage_names[CM_NSTAGES] = {"load_weight",  "load_cache", "store_cache",
                                                "compute",      "load_activation",
                                                "store_activation"};

/* Element passes per token of the non-GEMM work of a layer: two norms (read +
 * write), two residual adds (read 2, write 1), bias adds folded into GEMMs;
 * and the activation over the FFN width (read + write; SwiGLU also reads the
 * gate). Memory bound. */
#define CM_ELEMWISE_H_PASSES 10.0
#define CM_ELEMWISE_F_PASSES 3.0
/* of which before attention: the first norm (read + write) */
#define CM_ELEMWISE_PRE_H_PASSES 2.0
/* Kernels launched per layer per GPU batch (GEMMs, norms, attention, adds),
 * of which before attention (norm, QKV GEMM, rotary or bias). */
#define CM_KERNELS_PER_LAYER 14.0
#define CM_KERNELS_PRE_ATTENTION 3.0

/* ---- linear forms */

double cm_lin_eval(const cm_lin *l, const double x[CM_NFRAC])
{
    double v = l->c0;
    for (int i = 0; i < CM_NFRAC; i++)
        v += l->c[i] * x[i];
    return v;
}

void cm_policy_x(const policy *p, double x[CM_NFRAC])
{
    const placement *pl[3] = {&p->weights, &p->kv_cache, &p->activations};
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < TIER_COUNT; t++)
            x[3 * i + t] = pl[i]->f[t];
}

/* l += coef * (x[a] + x[b]) ; b < 0 for a single fraction */
static void lin_frac(cm_lin *l, int a, int b, double coef)
{
    l->c[a] += coef;
    if (b >= 0)
        l->c[b] += coef;
}

/* Add `coef * (fractions)` to a resource and to a stage at once. */
typedef struct acc {
    cm_layer_cost *c;
} acc;

static void put(cm_layer_cost *c, cm_res r, cm_stage s, int a, int b, double coef)
{
    if (coef == 0)
        return;
    if (a < 0) {
        c->res[r].c0 += coef;
        c->stage[s].c0 += coef;
        return;
    }
    lin_frac(&c->res[r], a, b, coef);
    lin_frac(&c->stage[s], a, b, coef);
}

static void finish_terms(cm_layer_cost *c)
{
    memset(c->term, 0, sizeof c->term);
    memset(&c->sum, 0, sizeof c->sum);
    for (int r = 0; r < CM_NRES; r++) {
        cm_term t;
        switch ((cm_res)r) {
        case CM_RES_H2D: t = CM_TERM_H2D; break;
        case CM_RES_D2H: t = CM_TERM_D2H; break;
        case CM_RES_DISK_READ:
        case CM_RES_DISK_WRITE: t = CM_TERM_DISK; break;
        default: t = CM_TERM_COMPUTE; break;
        }
        c->term[t].c0 += c->res[r].c0;
        c->sum.c0 += c->res[r].c0;
        for (int i = 0; i < CM_NFRAC; i++) {
            c->term[t].c[i] += c->res[r].c[i];
            c->sum.c[i] += c->res[r].c[i];
        }
    }
}

/* ---- setup */

static bool any_on(const policy *p, tier t)
{
    return p->weights.f[t] > 0 || p->kv_cache.f[t] > 0 || p->activations.f[t] > 0;
}

llmsim_status cm_setup_init(cm_setup *s, const model *m, const hwprofile *hw, const policy *p,
                            const workload *w, diag *e)
{
    memset(s, 0, sizeof *s);
    if (m->moe.experts > 0) /* every command that prices or runs a model comes through here */
        return diag_set(e, LLMSIM_EINPUT, "model %s is a mixture of experts (%lld experts, top %lld): "
                        "llmsim reads it and counts its parameters (llmsim models), but does not "
                        "yet predict, plan, simulate, search, serve or run an MoE model",
                        m->name, (long long)m->moe.experts, (long long)m->moe.top_k);
    s->m = m;
    s->hw = hw;
    s->p = p;
    s->w = *w;
    s->has_gpu = hw->gpu.present;
    if (!s->has_gpu && any_on(p, TIER_GPU))
        return diag_set(e, LLMSIM_EINPUT,
                        "hardware '%s' has no GPU: the policy's gpu fractions must all be 0 (put "
                        "weights, kv_cache and activations on cpu or disk)", hw->name);
    if (!hw->disk.present && any_on(p, TIER_DISK))
        return diag_set(e, LLMSIM_EINPUT,
                        "hardware '%s' has no disk: the policy's disk fractions must all be 0",
                        hw->name);
    int64_t kv = model_kv_dim(m), q = model_q_dim(m);
    if (p->weight_quant.bits) {
        int g = p->weight_quant.group_size;
        if (m->hidden_size % g || q % g || m->ffn_size % g)
            return diag_set(e, LLMSIM_EINPUT,
                            "weight_quant group_size %d must divide the rows of every weight "
                            "(hidden %lld, attention %lld, ffn %lld)", g, (long long)m->hidden_size,
                            (long long)q, (long long)m->ffn_size);
    }
    if (p->kv_quant.bits && kv % p->kv_quant.group_size)
        return diag_set(e, LLMSIM_EINPUT, "kv_quant group_size %d must divide the KV width %lld "
                        "(kv_heads x head_dim)", p->kv_quant.group_size, (long long)kv);
    if (w->prompt_len + w->gen_len > m->max_context)
        return diag_set(e, LLMSIM_EINPUT, "prompt %lld + generation %lld tokens exceed %s's "
                        "context of %lld", w->prompt_len, w->gen_len, m->name,
                        (long long)m->max_context);
    s->bls = (double)p->gpu_batch_size * p->num_gpu_batches;
    if (s->w.num_prompts == 0)
        s->w.num_prompts = (long long)s->bls;

    size_weights sw;
    size_weights_get(m, &p->weight_quant, &sw);
    s->w_layer_bytes = sw.layer;
    s->w_layer_fp16_bytes = sw.layer_fp16;
    s->w_head_bytes = sw.head;
    s->w_head_fp16_bytes = sw.head_fp16;
    s->w_pass_ws_bytes = (double)m->num_layers * s->w_layer_bytes +
                         (p->weight_quant.bits ? sw.head_fp16 : sw.head) +
                         (p->weight_quant.bits ? s->w_layer_fp16_bytes : 0.0);
    s->w_layer_ws_bytes = p->weight_quant.bits ? s->w_layer_fp16_bytes : s->w_pass_ws_bytes;
    s->layer_tensors = sw.layer_tensors;
    return LLMSIM_OK;
}

/* The KV positions a sequence holds at a context of `tokens`: all of them,
 * or the sliding window's ring (model_kv_positions, as the engine keeps it). */
static double kv_held(const cm_setup *s, double tokens)
{
    return (double)model_kv_positions(s->m, s->w.prompt_len, (int64_t)ceil(tokens));
}

static double kv_bytes(const cm_setup *s, double seqs, double tokens)
{
    return size_kv_bytes(s->m, &s->p->kv_quant, seqs, fmin(tokens, kv_held(s, tokens)));
}

static double kv_fp16_bytes(const cm_setup *s, double seqs, double tokens)
{
    return size_kv_fp16_bytes(s->m, seqs, fmin(tokens, kv_held(s, tokens)));
}

/* The keys a decode query at context ctx attends to: ctx, or the window. */
static double attended(const cm_setup *s, double ctx)
{
    return ctx - (double)model_attn_first(s->m, (int64_t)ceil(ctx) - 1);
}

static const hw_link *weight_link(const cm_setup *s)
{
    return &s->hw->links[s->p->pin_weights ? HW_LINK_H2D_PINNED : HW_LINK_H2D_PAGEABLE];
}

/* ---- one GPU batch of one decoder layer (shared with the plan) */

void cm_dense_rows_s(const cm_setup *s, double rows, double *pre_s, double *post_s)
{
    const model *m = s->m;
    const hwprofile *hw = s->hw;
    const cm_device dev = s->has_gpu ? CM_DEV_GPU : CM_DEV_CPU;
    const double h = (double)m->hidden_size, f = (double)m->ffn_size;
    const double qd = (double)model_q_dim(m), kvd = (double)model_kv_dim(m);
    const double launch = s->has_gpu ? hw->gpu.launch_latency_s : 0.0;
    /* without a GPU, each batch's pass through a layer is one CPU task */
    const double task = s->has_gpu ? 0.0 : hw->cpu.task_overhead_s;
    const double ws = s->w_layer_ws_bytes;

    /* before attention: the first norm and the QKV projection */
    *pre_s = cm_gemm_time(hw, dev, rows, qd + 2 * kvd, h, SIZE_F16, ws) +
             cm_memory_pass_time(hw, dev, rows * CM_ELEMWISE_PRE_H_PASSES * h * SIZE_F16, 0) +
             CM_KERNELS_PRE_ATTENTION * launch + task;
    /* after: output projection, MLP, the second norm, residual adds */
    double post = cm_gemm_time(hw, dev, rows, h, qd, SIZE_F16, ws);
    if (model_ffn_gated(m))
        post += 2 * cm_gemm_time(hw, dev, rows, f, h, SIZE_F16, ws) +
                cm_gemm_time(hw, dev, rows, h, f, SIZE_F16, ws);
    else
        post += cm_gemm_time(hw, dev, rows, f, h, SIZE_F16, ws) +
                cm_gemm_time(hw, dev, rows, h, f, SIZE_F16, ws);
    *post_s = post +
              cm_memory_pass_time(hw, dev,
                                  rows * ((CM_ELEMWISE_H_PASSES - CM_ELEMWISE_PRE_H_PASSES) * h +
                                          CM_ELEMWISE_F_PASSES * f) * SIZE_F16, 0) +
              (CM_KERNELS_PER_LAYER - CM_KERNELS_PRE_ATTENTION) * launch;
}

void cm_batch_cost_get(const cm_setup *s, cm_phase phase, double ctx, cm_batch_cost *b)
{
    memset(b, 0, sizeof *b);
    const model *m = s->m;
    const hwprofile *hw = s->hw;
    const policy *p = s->p;
    const cm_device dev = s->has_gpu ? CM_DEV_GPU : CM_DEV_CPU;
    const double gbs = p->gpu_batch_size;
    const double heads = (double)m->num_heads, kvh = (double)m->num_kv_heads;
    const double hd = (double)m->head_dim;
    const bool prefill = phase == CM_PHASE_PREFILL;
    const double t = prefill ? ctx : 1.0; /* new tokens per sequence */
    const double rows = gbs * t;          /* GEMM rows */

    cm_dense_rows_s(s, rows, &b->dense_pre_s, &b->dense_post_s);
    b->act_bytes = size_hidden_bytes(m, rows);
    b->act_disk_bytes = size_disk_round(b->act_bytes);
    b->kv_new_disk_bytes = size_kv_disk_bytes(m, &p->kv_quant, gbs, t);
    if (prefill) {
        /* the causal square's time, times the share of its pairs a window keeps */
        b->attn_dev_s = cm_attention_prefill_time(hw, dev, gbs, ctx, heads, hd) *
                        model_attn_share(m, 0, (int64_t)ctx);
        b->kv_new_bytes = kv_bytes(s, gbs, ctx);
        if (p->kv_quant.bits)
            b->kv_quant_dev_s = cm_memory_pass_time(hw, dev, kv_fp16_bytes(s, gbs, ctx), b->kv_new_bytes);
        return;
    }
    const double old = ctx - 1; /* tokens in the cache before this step */
    b->kv_old_bytes = kv_bytes(s, gbs, old);
    b->kv_new_bytes = kv_bytes(s, gbs, 1);
    b->kv_old_disk_bytes = size_kv_disk_bytes(m, &p->kv_quant, gbs, fmin(old, kv_held(s, old)));
    b->attn_dev_s = cm_attention_decode_time(hw, dev, gbs, attended(s, ctx), heads, kvh, hd);
    if (p->kv_quant.bits) {
        b->kv_deq_dev_s = cm_memory_pass_time(hw, dev, b->kv_old_bytes, kv_fp16_bytes(s, gbs, old));
        b->kv_quant_dev_s = cm_memory_pass_time(hw, dev, kv_fp16_bytes(s, gbs, 1), b->kv_new_bytes);
    }
    if (s->has_gpu && p->cpu_attention) {
        b->attn_cpu_s = cm_attention_decode_time(hw, CM_DEV_CPU, gbs, attended(s, ctx), heads, kvh, hd) +
                        hw->cpu.task_overhead_s;
        if (p->kv_quant.bits) {
            b->kv_deq_cpu_s = cm_memory_pass_time(hw, CM_DEV_CPU, b->kv_old_bytes,
                                                  kv_fp16_bytes(s, gbs, old));
            b->kv_quant_cpu_s = cm_memory_pass_time(hw, CM_DEV_CPU, kv_fp16_bytes(s, gbs, 1),
                                                    b->kv_new_bytes);
        }
        b->qkv_bytes = size_qkv_bytes(m, gbs);
        b->out_bytes = size_attn_out_bytes(m, gbs);
    }
}

double cm_copies_time(const hw_link *link, double bytes, double copies)
{
    return bytes > 0 ? copies * link->latency_s + bytes / link->bandwidth_Bps : 0.0;
}

double cm_weight_dequant_s(const cm_setup *s)
{
    if (!s->p->weight_quant.bits)
        return 0.0;
    return cm_dequant_time(s->hw, s->has_gpu ? CM_DEV_GPU : CM_DEV_CPU, s->p->weight_quant.bits,
                           s->w_layer_bytes, s->w_layer_fp16_bytes) +
           (s->has_gpu ? 0.0 : s->hw->cpu.task_overhead_s);
}

const hw_link *cm_weight_link(const cm_setup *s) { return weight_link(s); }

double cm_io_loss_s(const cm_setup *s, double read_B, double write_B)
{
    const hw_disk *d = &s->hw->disk;
    if (s->has_gpu || !s->p->overlap || !d->present)
        return 0.0;
    return (read_B * d->read_loss_s_per_GB + write_B * d->write_loss_s_per_GB) / 1e9;
}

double cm_io_loss_cap_s(const cm_setup *s, double dur_s)
{
    const hw_disk *d = &s->hw->disk;
    double r = d->read.bandwidth_Bps * d->read_loss_s_per_GB,
           w = d->write.bandwidth_Bps * d->write_loss_s_per_GB;
    return dur_s * (r > w ? r : w) / 1e9;
}

/* ---- one decoder layer: every GPU batch, as linear forms in the fractions */

/* Weights of `bytes` in `tensors` copies: what is not on the GPU crosses h2d
 * every time they are used; the disk part crosses the disk first (through
 * CPU staging). Without a GPU, transfers beside the compute slow it
 * (cm_io_loss_s; linear in the bytes, as when the compute is the
 * bottleneck). */
static void load_weights(const cm_setup *s, cm_res comp, double bytes, double tensors,
                         cm_layer_cost *c)
{
    const hwprofile *hw = s->hw;
    if (s->has_gpu)
        put(c, CM_RES_H2D, CM_STAGE_LOAD_WEIGHT, CM_WC, CM_WD,
            cm_copies_time(weight_link(s), bytes, tensors));
    if (hw->disk.present)
        put(c, CM_RES_DISK_READ, CM_STAGE_LOAD_WEIGHT, CM_WD, -1,
            cm_copies_time(&hw->disk.read, bytes, tensors));
    put(c, comp, CM_STAGE_COMPUTE, CM_WD, -1, cm_io_loss_s(s, bytes, 0));
}

/* Prefill: attention over the prompt, its new KV entries out to their tier
 * (all batches: ngb x one batch). */
static void layer_cache_prefill(const cm_setup *s, cm_res comp, const cm_batch_cost *b,
                                cm_layer_cost *c)
{
    const hwprofile *hw = s->hw;
    const double ngb = s->p->num_gpu_batches;
    put(c, comp, CM_STAGE_COMPUTE, -1, -1, ngb * (b->attn_dev_s + b->kv_quant_dev_s));
    if (s->has_gpu)
        put(c, CM_RES_D2H, CM_STAGE_STORE_CACHE, CM_CC, CM_CD,
            ngb * cm_copies_time(&hw->links[HW_LINK_D2H_PINNED], b->kv_new_bytes, 2));
    if (hw->disk.present)
        put(c, CM_RES_DISK_WRITE, CM_STAGE_STORE_CACHE, CM_CD, -1,
            ngb * cm_copies_time(&hw->disk.write, b->kv_new_disk_bytes, 1));
    put(c, comp, CM_STAGE_COMPUTE, CM_CD, -1, ngb * cm_io_loss_s(s, 0, b->kv_new_disk_bytes));
}

/* A decode step: the cache read from its tier and the new entries written,
 * attention on the compute device, or delegated to the CPU for the batches
 * whose cache is not on the GPU. */
static void layer_cache_decode(const cm_setup *s, cm_res comp, const cm_batch_cost *b,
                               cm_layer_cost *c)
{
    const hwprofile *hw = s->hw;
    const hw_link *h2d = &hw->links[HW_LINK_H2D_PINNED], *d2h = &hw->links[HW_LINK_D2H_PINNED];
    const double ngb = s->p->num_gpu_batches;
    double on_dev = ngb * (b->attn_dev_s + b->kv_deq_dev_s + b->kv_quant_dev_s);
    if (hw->disk.present) {
        put(c, CM_RES_DISK_READ, CM_STAGE_LOAD_CACHE, CM_CD, -1,
            ngb * cm_copies_time(&hw->disk.read, b->kv_old_disk_bytes, 1));
        put(c, CM_RES_DISK_WRITE, CM_STAGE_STORE_CACHE, CM_CD, -1,
            ngb * cm_copies_time(&hw->disk.write, b->kv_new_disk_bytes, 1));
    }
    put(c, comp, CM_STAGE_COMPUTE, CM_CD, -1,
        ngb * cm_io_loss_s(s, b->kv_old_disk_bytes, b->kv_new_disk_bytes));
    if (!s->has_gpu) {
        put(c, comp, CM_STAGE_COMPUTE, -1, -1, on_dev);
    } else if (!s->p->cpu_attention) {
        put(c, CM_RES_H2D, CM_STAGE_LOAD_CACHE, CM_CC, CM_CD,
            ngb * cm_copies_time(h2d, b->kv_old_bytes, 2));
        put(c, CM_RES_D2H, CM_STAGE_STORE_CACHE, CM_CC, CM_CD,
            ngb * cm_copies_time(d2h, b->kv_new_bytes, 2));
        put(c, comp, CM_STAGE_COMPUTE, -1, -1, on_dev);
    } else {
        /* Delegation: batches whose cache is on the GPU attend there, the
         * others on the CPU; q, k, v cross to the CPU and the output back
         * (with the cache store and load stages: stages follow the links,
         * so the compute stage stays compute). */
        put(c, CM_RES_GPU, CM_STAGE_COMPUTE, CM_CG, -1, on_dev);
        put(c, CM_RES_CPU, CM_STAGE_COMPUTE, CM_CC, CM_CD,
            ngb * (b->attn_cpu_s + b->kv_deq_cpu_s + b->kv_quant_cpu_s));
        put(c, CM_RES_D2H, CM_STAGE_STORE_CACHE, CM_CC, CM_CD,
            ngb * cm_copies_time(d2h, b->qkv_bytes, 2));
        put(c, CM_RES_H2D, CM_STAGE_LOAD_CACHE, CM_CC, CM_CD,
            ngb * cm_copies_time(h2d, b->out_bytes, 1));
    }
}

/* Hidden states between layers: stored to their tier and loaded back, L - 1
 * times a step (the first layer's input is the embedding and the last
 * layer's output goes to the head, both on the compute device), so each
 * layer carries (L - 1) / L of a crossing. */
static void layer_hidden(const cm_setup *s, cm_res comp, const cm_batch_cost *b, cm_layer_cost *c)
{
    const hwprofile *hw = s->hw;
    const double ngb = s->p->num_gpu_batches;
    const double L = (double)s->m->num_layers, share = (L - 1) / L;
    if (s->has_gpu) {
        put(c, CM_RES_H2D, CM_STAGE_LOAD_ACT, CM_HC, CM_HD,
            share * ngb * cm_copies_time(&hw->links[HW_LINK_H2D_PINNED], b->act_bytes, 1));
        put(c, CM_RES_D2H, CM_STAGE_STORE_ACT, CM_HC, CM_HD,
            share * ngb * cm_copies_time(&hw->links[HW_LINK_D2H_PINNED], b->act_bytes, 1));
    }
    if (hw->disk.present) {
        put(c, CM_RES_DISK_READ, CM_STAGE_LOAD_ACT, CM_HD, -1,
            share * ngb * cm_copies_time(&hw->disk.read, b->act_disk_bytes, 1));
        put(c, CM_RES_DISK_WRITE, CM_STAGE_STORE_ACT, CM_HD, -1,
            share * ngb * cm_copies_time(&hw->disk.write, b->act_disk_bytes, 1));
    }
    put(c, comp, CM_STAGE_COMPUTE, CM_HD, -1,
        share * ngb * cm_io_loss_s(s, b->act_disk_bytes, b->act_disk_bytes));
}

void cm_layer_cost_get(const cm_setup *s, cm_phase phase, double ctx, cm_layer_cost *c)
{
    memset(c, 0, sizeof *c);
    const cm_res comp = s->has_gpu ? CM_RES_GPU : CM_RES_CPU;
    const double ngb = s->p->num_gpu_batches;
    cm_batch_cost b;
    cm_batch_cost_get(s, phase, ctx, &b);
    load_weights(s, comp, s->w_layer_bytes, (double)s->layer_tensors, c);
    put(c, comp, CM_STAGE_COMPUTE, -1, -1, cm_weight_dequant_s(s));
    /* every GPU batch: dense work */
    put(c, comp, CM_STAGE_COMPUTE, -1, -1, ngb * (b.dense_pre_s + b.dense_post_s));
    if (phase == CM_PHASE_PREFILL)
        layer_cache_prefill(s, comp, &b, c);
    else
        layer_cache_decode(s, comp, &b, c);
    layer_hidden(s, comp, &b, c);
    finish_terms(c);
}

/* ---- embedding, final norm and LM head */

/* Tensors the head's weights are loaded as (embeddings, final norm, LM head). */
#define CM_HEAD_TENSORS 3.0

double cm_head_dequant_s(const cm_setup *s)
{
    if (!s->p->weight_quant.bits)
        return 0.0;
    return cm_dequant_time(s->hw, s->has_gpu ? CM_DEV_GPU : CM_DEV_CPU, s->p->weight_quant.bits,
                           s->w_head_bytes, s->w_head_fp16_bytes) +
           (s->has_gpu ? 0.0 : s->hw->cpu.task_overhead_s);
}

double cm_head_rows_s(const cm_setup *s, double token_rows, double logit_rows)
{
    const model *m = s->m;
    const hwprofile *hw = s->hw;
    const cm_device dev = s->has_gpu ? CM_DEV_GPU : CM_DEV_CPU;
    const double h = (double)m->hidden_size, v = (double)m->vocab_size;
    double lookup = cm_memory_pass_time(hw, dev, size_hidden_bytes(m, token_rows),
                                        size_hidden_bytes(m, token_rows));
    double lm = cm_gemm_time(hw, dev, logit_rows, v, h, SIZE_F16, s->w_pass_ws_bytes);
    double launch = s->has_gpu ? 4 * hw->gpu.launch_latency_s : hw->cpu.task_overhead_s;
    return lookup + lm + launch;
}

double cm_head_batch_s(const cm_setup *s, cm_phase phase)
{
    const double gbs = s->p->gpu_batch_size;
    const double t = phase == CM_PHASE_PREFILL ? (double)s->w.prompt_len : 1.0;
    /* Embedding lookup and final norm over the batch's tokens; logits for the
     * last token of each sequence (one row per sequence). */
    return cm_head_rows_s(s, gbs * t, gbs);
}

void cm_head_cost_get(const cm_setup *s, cm_phase phase, cm_layer_cost *c)
{
    memset(c, 0, sizeof *c);
    const cm_res comp = s->has_gpu ? CM_RES_GPU : CM_RES_CPU;
    load_weights(s, comp, s->w_head_bytes, CM_HEAD_TENSORS, c);
    put(c, comp, CM_STAGE_COMPUTE, -1, -1, cm_head_dequant_s(s));
    put(c, comp, CM_STAGE_COMPUTE, -1, -1, s->p->num_gpu_batches * cm_head_batch_s(s, phase));
    finish_terms(c);
}

double cm_overlap_s(const cm_setup *s, const double *terms, int n)
{
    double v = 0;
    for (int i = 0; i < n; i++) {
        if (!s->p->overlap)
            v += terms[i];
        else if (terms[i] > v)
            v = terms[i];
    }
    return v;
}

double cm_layer_time(const cm_setup *s, const cm_layer_cost *c, const double x[CM_NFRAC])
{
    /* without overlap the sum of every resource, as one linear form */
    if (!s->p->overlap)
        return cm_lin_eval(&c->sum, x);
    double t[CM_NTERMS];
    for (int i = 0; i < CM_NTERMS; i++)
        t[i] = cm_lin_eval(&c->term[i], x);
    return cm_overlap_s(s, t, CM_NTERMS);
}

static cm_term bottleneck(const cm_layer_cost *c, const double x[CM_NFRAC])
{
    cm_term best = CM_TERM_COMPUTE;
    double bv = -1;
    for (int i = 0; i < CM_NTERMS; i++) {
        double v = cm_lin_eval(&c->term[i], x);
        if (v > bv) {
            bv = v;
            best = (cm_term)i;
        }
    }
    return best;
}

/* ---- memory */

double cm_hw_tier_capacity(const hwprofile *hw, tier t)
{
    switch (t) {
    case TIER_GPU: return hw->gpu.present ? hw->gpu.memory_bytes : 0.0;
    case TIER_CPU: return hw->cpu.memory_bytes;
    case TIER_DISK: return hw->disk.present ? hw->disk.capacity_bytes : 0.0;
    default: return 0.0;
    }
}

void cm_hw_capacities(const hwprofile *hw, double cap[TIER_COUNT])
{
    for (int t = 0; t < TIER_COUNT; t++)
        cap[t] = cm_hw_tier_capacity(hw, (tier)t);
}

double cm_tier_capacity(const cm_setup *s, tier t) { return cm_hw_tier_capacity(s->hw, t); }

void cm_peak_memory(const cm_setup *s, cm_lin peak[TIER_COUNT])
{
    memset(peak, 0, sizeof(cm_lin) * TIER_COUNT);
    const model *m = s->m;
    const policy *p = s->p;
    const double L = (double)m->num_layers, gbs = p->gpu_batch_size, bls = s->bls;
    const double sl = (double)s->w.prompt_len, full = sl + (double)s->w.gen_len;

    const double w_total = L * s->w_layer_bytes + s->w_head_bytes;
    const double kv_total = L * kv_bytes(s, bls, full);
    const double act_block = size_hidden_bytes(m, bls * sl); /* the block's, prefill */
    const double act_batch = size_hidden_bytes(m, gbs * sl);
    const double kv_batch = kv_bytes(s, gbs, full); /* one layer, one GPU batch */
    const double w_slot = fmax(s->w_layer_bytes, s->w_head_bytes);

    /* Resident shares. */
    for (int t = 0; t < TIER_COUNT; t++) {
        peak[t].c[CM_WG + t] += w_total;
        peak[t].c[CM_CG + t] += kv_total;
        peak[t].c[CM_HG + t] += act_block;
    }
    /* The compute device's working set: one GPU batch's intermediate tensors
     * in prefill (q, k, v, attention output, and the larger of the FFN
     * intermediate and the attention scores) and the logits of the LM head.
     * Hidden states in and out are the resident share or the slots below. */
    double work = size_work_bytes(m, gbs, sl, sl) + size_logits_bytes(m, gbs);
    if (p->weight_quant.bits) /* dequantized copy of the layer being computed */
        work += fmax(s->w_layer_fp16_bytes, s->w_head_fp16_bytes);
    if (p->kv_quant.bits) /* dequantized K and V of one batch */
        work += kv_fp16_bytes(s, gbs, full);
    tier dev = s->has_gpu ? TIER_GPU : TIER_CPU;
    peak[dev].c0 += work;

    if (s->has_gpu) {
        /* Weights not resident: the layer computing and the next one loading. */
        peak[TIER_GPU].c[CM_WC] += 2 * w_slot;
        peak[TIER_GPU].c[CM_WD] += 2 * w_slot;
        /* KV cache not resident and attended on the GPU: this batch's and the
         * next batch's cache for one layer. */
        /* New KV entries of cache not on the GPU wait there until they are out
         * (two slots; the prompt's in the prefill). */
        peak[TIER_GPU].c[CM_CC] += 2 * kv_bytes(s, gbs, sl);
        peak[TIER_GPU].c[CM_CD] += 2 * kv_bytes(s, gbs, sl);
        if (!p->cpu_attention) {
            peak[TIER_GPU].c[CM_CC] += 2 * kv_batch;
            peak[TIER_GPU].c[CM_CD] += 2 * kv_batch;
        } else {
            /* scores of one batch on the CPU, fp32 */
            peak[TIER_CPU].c[CM_CC] += size_scores_bytes(m, gbs, 1, full);
            peak[TIER_CPU].c[CM_CD] += size_scores_bytes(m, gbs, 1, full);
        }
        /* Hidden states not resident: two slots in (this batch's and the
         * next's) and two out (this batch's and the previous one's, still
         * crossing to the host). */
        peak[TIER_GPU].c[CM_HC] += 4 * act_batch;
        peak[TIER_GPU].c[CM_HD] += 4 * act_batch;
    }
    /* Disk data passes through CPU staging buffers, double-buffered. */
    peak[TIER_CPU].c[CM_WD] += 2 * w_slot;
    peak[TIER_CPU].c[CM_CD] += 2 * kv_batch;
    peak[TIER_CPU].c[CM_HD] += 2 * act_batch;
}

/* ---- whole prediction */

void cm_result_free(cm_result *r)
{
    if (!r)
        return;
    free(r->steps);
    r->steps = NULL;
}

llmsim_status cm_predict(const model *m, const hwprofile *hw, const policy *p, const workload *w,
                         cm_result *r, diag *e)
{
    memset(r, 0, sizeof *r);
    cm_setup s;
    llmsim_status st = cm_setup_init(&s, m, hw, p, w, e);
    if (st)
        return st;
    /* The engine places whole tensors: predict what it will run. */
    placement_realized pr;
    placement_realize(m, p, &pr);
    double x[CM_NFRAC], xh[CM_NFRAC];
    const placement *real[3] = {&pr.weights, &pr.kv_cache, &pr.activations};
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < TIER_COUNT; t++)
            x[3 * i + t] = real[i]->f[t];
    memcpy(xh, x, sizeof x);
    for (int t = 0; t < TIER_COUNT; t++)
        xh[CM_WG + t] = pr.head.f[t];
    return cm_evaluate(&s, x, xh, r, e);
}

/* Prefill of one block: each layer's time, stages and resources, and the
 * head; the block's prefill time. */
static double evaluate_prefill(const cm_setup *s, const double x[CM_NFRAC],
                               const double xh[CM_NFRAC], cm_result *r)
{
    const double L = (double)s->m->num_layers;
    cm_layer_cost lc, hc;
    cm_layer_cost_get(s, CM_PHASE_PREFILL, (double)s->w.prompt_len, &lc);
    cm_head_cost_get(s, CM_PHASE_PREFILL, &hc);
    r->prefill_layer_s = cm_layer_time(s, &lc, x);
    double block_prefill = L * r->prefill_layer_s + cm_layer_time(s, &hc, xh);
    for (int k = 0; k < CM_NSTAGES; k++) {
        r->prefill_stage_s[k] = cm_lin_eval(&lc.stage[k], x);
        r->steps[0].s[k] = L * r->prefill_stage_s[k] + cm_lin_eval(&hc.stage[k], xh);
    }
    for (int k = 0; k < CM_NRES; k++)
        r->prefill_res_s[k] = cm_lin_eval(&lc.res[k], x);
    r->prefill_bottleneck = bottleneck(&lc, x);
    return block_prefill;
}

/* Decode, one step at a time, the context growing by one token: the
 * block's decode time, the longest step, and per layer the averages of
 * time, stages, resources and the bottleneck term. */
static double evaluate_decode(const cm_setup *s, const double x[CM_NFRAC],
                              const double xh[CM_NFRAC], cm_result *r)
{
    const double L = (double)s->m->num_layers;
    const double sl = (double)s->w.prompt_len;
    const int nsteps = r->nsteps;
    cm_layer_cost lc, hc;
    cm_head_cost_get(s, CM_PHASE_DECODE, &hc);
    double head_decode = cm_layer_time(s, &hc, xh);
    double block_decode = 0, layer_sum = 0;
    double term_sum[CM_NTERMS] = {0};
    for (int j = 1; j <= nsteps; j++) {
        cm_layer_cost_get(s, CM_PHASE_DECODE, sl + j, &lc);
        double tl = cm_layer_time(s, &lc, x);
        layer_sum += tl;
        block_decode += L * tl + head_decode;
        if (L * tl + head_decode > r->max_step_s)
            r->max_step_s = L * tl + head_decode;
        for (int k = 0; k < CM_NSTAGES; k++) {
            double v = cm_lin_eval(&lc.stage[k], x);
            r->layer_stage_s[k] += v;
            r->steps[j].s[k] = L * v + cm_lin_eval(&hc.stage[k], xh);
        }
        for (int k = 0; k < CM_NRES; k++)
            r->decode_res_s[k] += cm_lin_eval(&lc.res[k], x);
        for (int k = 0; k < CM_NTERMS; k++)
            term_sum[k] += cm_lin_eval(&lc.term[k], x);
    }
    if (nsteps > 0) {
        r->decode_layer_s = layer_sum / nsteps;
        for (int k = 0; k < CM_NSTAGES; k++)
            r->layer_stage_s[k] /= nsteps;
        for (int k = 0; k < CM_NRES; k++)
            r->decode_res_s[k] /= nsteps;
        int best = 0;
        for (int k = 1; k < CM_NTERMS; k++)
            if (term_sum[k] > term_sum[best])
                best = k;
        r->decode_bottleneck = (cm_term)best;
    }
    return block_decode;
}

/* Peak memory per tier against the capacities: feasible, or the tier that
 * overflows most and by how much. */
static void evaluate_memory(const cm_setup *s, const double x[CM_NFRAC], const double xh[CM_NFRAC],
                            cm_result *r)
{
    cm_lin peak[TIER_COUNT];
    cm_peak_memory(s, peak);
    r->feasible = true;
    double worst = 0;
    for (int t = 0; t < TIER_COUNT; t++) {
        /* the head's tensors sit where the rule put them, not at the layers' share */
        r->peak_bytes[t] = cm_lin_eval(&peak[t], x) + (xh[CM_WG + t] - x[CM_WG + t]) * s->w_head_bytes;
        r->capacity_bytes[t] = cm_tier_capacity(s, (tier)t);
        double over = r->peak_bytes[t] - r->capacity_bytes[t];
        if (over > 0 && (r->feasible || over > worst)) {
            r->feasible = false;
            r->overflow_tier = (tier)t;
            r->overflow_bytes = over;
            worst = over;
        }
    }
}

llmsim_status cm_evaluate(const cm_setup *sp, const double x[CM_NFRAC], const double xh[CM_NFRAC],
                          cm_result *r, diag *e)
{
    const cm_setup s = *sp;
    const policy *p = s.p;
    const workload *w = &s.w;
    memset(r, 0, sizeof *r);
    r->requested[0] = p->weights;
    r->requested[1] = p->kv_cache;
    r->requested[2] = p->activations;
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < TIER_COUNT; t++)
            r->realized[i].f[t] = x[3 * i + t];
    for (int t = 0; t < TIER_COUNT; t++)
        r->realized_head.f[t] = xh[CM_WG + t];
    r->nsteps = (int)(w->gen_len - 1);
    r->steps = calloc((size_t)r->nsteps + 1, sizeof *r->steps);
    if (!r->steps)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    double block_prefill = evaluate_prefill(&s, x, xh, r);
    double block_decode = evaluate_decode(&s, x, xh, r);
    r->num_prompts = (double)s.w.num_prompts;
    r->blocks = ceil(r->num_prompts / s.bls);
    r->prefill_s = r->blocks * block_prefill;
    r->decode_s = r->blocks * block_decode;
    r->total_s = r->prefill_s + r->decode_s;
    r->throughput_tok_s = r->num_prompts * (double)w->gen_len / r->total_s;
    evaluate_memory(&s, x, xh, r);
    return LLMSIM_OK;
}
