/*
 * iteration — per-iteration pricing for serving. See iteration.h.
 */
#include "costmodel/iteration.h"

#include <stdlib.h>

#include "costmodel/primitives.h"
#include "costmodel/sizes.h"

static cm_device dev_of(const cm_setup *s) { return s->has_gpu ? CM_DEV_GPU : CM_DEV_CPU; }

llmsim_status cm_iter_memo_init(cm_iter_memo *pm, const cm_setup *s, int64_t max_rows,
                                int64_t max_emits, diag *e)
{
    pm->max_rows = max_rows;
    pm->max_emits = max_emits;
    pm->dense = malloc(((size_t)max_rows + 1) * sizeof *pm->dense);
    pm->head = malloc(((size_t)max_emits + 1) * sizeof *pm->head);
    if (!pm->dense || !pm->head) {
        cm_iter_memo_free(pm);
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    }
    for (int64_t i = 0; i <= max_rows; i++)
        pm->dense[i] = -1;
    for (int64_t i = 0; i <= max_emits; i++)
        pm->head[i] = -1;
    pm->lookup_per_token = cm_head_rows_s(s, 1, 0) - cm_head_rows_s(s, 0, 0);
    return LLMSIM_OK;
}

void cm_iter_memo_free(cm_iter_memo *pm)
{
    free(pm->dense);
    free(pm->head);
    pm->dense = pm->head = NULL;
}

/* One layer's dense work over `rows` token rows. */
static double dense_s(const cm_setup *s, cm_iter_memo *pm, int64_t rows)
{
    if (pm && rows <= pm->max_rows && pm->dense[rows] >= 0)
        return pm->dense[rows];
    double pre, post;
    cm_dense_rows_s(s, (double)rows, &pre, &post);
    double v = rows > 0 ? pre + post : 0.0;
    if (pm && rows <= pm->max_rows)
        pm->dense[rows] = v;
    return v;
}

/* The head with `emits` logit rows, no lookup. */
static double head_s(const cm_setup *s, cm_iter_memo *pm, int64_t emits)
{
    if (pm && emits <= pm->max_emits && pm->head[emits] >= 0)
        return pm->head[emits];
    double v = cm_head_rows_s(s, 0, (double)emits);
    if (pm && emits <= pm->max_emits)
        pm->head[emits] = v;
    return v;
}

double cm_iter_chunk_attn_s(const cm_setup *s, int64_t ctx, int64_t tokens)
{
    const model *m = s->m;
    double hi = cm_attention_prefill_time(s->hw, dev_of(s), 1, (double)(ctx + tokens),
                                          (double)m->num_heads, (double)m->head_dim);
    double lo = ctx > 0 ? cm_attention_prefill_time(s->hw, dev_of(s), 1, (double)ctx,
                                                    (double)m->num_heads, (double)m->head_dim)
                        : 0.0;
    if (hi <= lo)
        return 0.0;
    /* the causal square's part, times the share of its pairs a window keeps */
    return (hi - lo) * model_attn_share(m, ctx, tokens);
}

void cm_iter_stream_s(const cm_setup *s, double stream_s[2])
{
    const double L = (double)s->m->num_layers;
    const double wbytes = L * s->w_layer_bytes + s->w_head_bytes;
    const placement *wp = &s->p->weights;
    const double copies = L * (double)s->layer_tensors;
    double off_dev = s->has_gpu ? wp->f[TIER_CPU] + wp->f[TIER_DISK] : 0.0;
    stream_s[0] = cm_copies_time(cm_weight_link(s), off_dev * wbytes, copies);
    stream_s[1] = s->hw->disk.present
                      ? cm_copies_time(&s->hw->disk.read, wp->f[TIER_DISK] * wbytes, copies)
                      : 0.0;
}

/* One decoder layer of w on the compute device. */
static double layer_s(const cm_setup *s, cm_iter_memo *pm, const cm_iter *w)
{
    const model *m = s->m;
    const hwprofile *hw = s->hw;
    const cm_device dev = dev_of(s);
    const quant *kq = &s->p->kv_quant;
    double layer = dense_s(s, pm, w->tokens) + w->prefill_attn_s + cm_weight_dequant_s(s);
    if (w->decodes)
        layer += cm_attention_decode_time(hw, dev, (double)w->decodes,
                                          (double)w->decode_ctx / (double)w->decodes,
                                          (double)m->num_heads, (double)m->num_kv_heads,
                                          (double)m->head_dim);
    if (kq->bits) {
        /* dequantize the cached K and V attended to, quantize the new entries */
        layer += cm_memory_pass_time(hw, dev, size_kv_bytes(m, kq, 1, (double)w->cached),
                                     size_kv_fp16_bytes(m, 1, (double)w->cached)) +
                 cm_memory_pass_time(hw, dev, size_kv_fp16_bytes(m, 1, (double)w->tokens),
                                     size_kv_bytes(m, kq, 1, (double)w->tokens));
    }
    return layer;
}

double cm_iter_s(const cm_setup *s, cm_iter_memo *pm, const double stream_s[2], const cm_iter *w)
{
    if (w->tokens == 0)
        return 0.0;
    double lookup = pm ? pm->lookup_per_token : cm_head_rows_s(s, 1, 0) - cm_head_rows_s(s, 0, 0);
    double compute = (double)s->m->num_layers * layer_s(s, pm, w) + head_s(s, pm, w->emits) +
                     lookup * (double)w->tokens + cm_head_dequant_s(s);
    const double t[3] = {compute, stream_s[0], stream_s[1]};
    return cm_overlap_s(s, t, 3);
}

double cm_iter_recompute_s(const cm_setup *s, cm_iter_memo *pm, const double stream_s[2],
                           int64_t token_budget, int64_t tokens, int64_t decodes,
                           int64_t decode_ctx)
{
    cm_iter base = {.tokens = decodes, .emits = decodes, .decodes = decodes,
                    .decode_ctx = decode_ctx, .cached = decode_ctx - decodes};
    double t0 = cm_iter_s(s, pm, stream_s, &base);
    int64_t room = token_budget - decodes;
    if (room < 1)
        room = 1;
    double cost = 0;
    for (int64_t done = 0; done < tokens;) {
        int64_t c = tokens - done < room ? tokens - done : room;
        cm_iter w = base;
        cm_iter_add(s, &w, done, c, done + c == tokens);
        cost += cm_iter_s(s, pm, stream_s, &w) - t0;
        done += c;
    }
    return cost;
}

double cm_kv_blocks_copy_s(const cm_setup *s, const hw_link *link, int64_t blocks,
                           double block_bytes)
{
    if (blocks <= 0)
        return 0.0;
    double copies = (double)blocks * (double)s->m->num_layers * 2.0;
    return cm_copies_time(link, (double)blocks * block_bytes, copies);
}

double cm_iter_workspace_bytes(const cm_setup *s, tier dev, int64_t token_budget,
                               int64_t max_batch)
{
    double work = size_work_bytes(s->m, 1, (double)token_budget, (double)token_budget) +
                  size_logits_bytes(s->m, (double)max_batch);
    if (s->p->weight_quant.bits)
        work += s->w_layer_fp16_bytes;
    if (s->p->weights.f[dev] < 1.0)
        work += 2.0 * s->w_layer_bytes;
    return work;
}

double cm_iter_kv_dequant_per_byte(const cm_setup *s)
{
    if (!s->p->kv_quant.bits)
        return 0.0;
    return size_kv_fp16_bytes(s->m, 1, 1) /
           ((double)s->m->num_layers * size_kv_bytes(s->m, &s->p->kv_quant, 1, 1));
}
