/*
 * setup — the serving setup and its prices. See setup.h.
 */
#include "serving/setup.h"

#include <math.h>
#include <string.h>

#include "costmodel/sizes.h"

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

double serve_price_s(const serve_setup *s, cm_iter_memo *pm, const cm_iter *w, int64_t out_blocks,
                     int64_t in_blocks)
{
    double swap = serve_swap_s(s, out_blocks, true) + serve_swap_s(s, in_blocks, false);
    return cm_iter_s(&s->cm, pm, s->stream_dev_s, w) + swap;
}

double serve_recompute_price_s(const serve_setup *s, cm_iter_memo *pm, int64_t tokens,
                               int64_t decodes, int64_t decode_ctx)
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
    return serve_price_s(s, NULL, &w, swap_out_blocks, swap_in_blocks);
}

double serve_recompute_s(const serve_setup *s, int64_t tokens, int decodes, int64_t decode_ctx)
{
    return serve_recompute_price_s(s, NULL, tokens, decodes, decode_ctx);
}
