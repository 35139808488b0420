/* layout — see layout.h. */
#include "exec/layout.h"

#include "costmodel/sizes.h"
#include "exec/cpu/kernels.h"
#include "exec/half.h"
#include "exec/offload.h"
#include "exec/quant.h"

void exec_layout_init(exec_layout *s, const model *m, const policy *p, const workload *w,
                      const plan *pl)
{
    *s = (exec_layout){0};
    s->L = (int)m->num_layers;
    s->ngb = p->num_gpu_batches;
    s->gbs = p->gpu_batch_size;
    s->bls = s->ngb * s->gbs;
    s->prompt = w->prompt_len;
    s->gen = w->gen_len;
    s->ctx_max = w->prompt_len + w->gen_len;
    s->kv_cap = model_kv_positions(m, w->prompt_len, s->ctx_max);
    s->num_prompts = w->num_prompts ? w->num_prompts : s->bls;
    s->h = (size_t)m->hidden_size;
    s->qd = (size_t)model_q_dim(m);
    s->kvd = (size_t)model_kv_dim(m);
    s->f = (size_t)m->ffn_size;
    s->vocab = (size_t)m->vocab_size;
    s->wmax = s->h > s->f ? s->h : s->f;
    s->wmax = s->qd > s->wmax ? s->qd : s->wmax;
    s->ffn_w = (model_ffn_gated(m) ? 2 : 1) * s->f;
    s->kv_row = size_kv_row_bytes(m, &p->kv_quant);
    s->kv_slot = (size_t)s->gbs * 2 * s->kv_row;
    s->kv_dslot = (size_t)size_kv_disk_bytes(m, &p->kv_quant, (double)s->gbs, 1); /* offload_round(kv_slot) */
    s->act_bytes = (size_t)size_hidden_bytes(m, (double)s->gbs * (double)s->prompt);
    s->kv_tier = pl->kv_tier;
    s->act_tier = pl->act_tier;
    for (int k = 0; k < s->ngb; k++) {
        s->kv_off += s->kv_tier[k] != TIER_GPU;
        s->kv_disk += s->kv_tier[k] == TIER_DISK;
        s->act_off += s->act_tier[k] != TIER_GPU;
        s->act_disk += s->act_tier[k] == TIER_DISK;
    }
}

bool exec_acts_alloc(exec_acts *a, const exec_layout *lay, void *(*alloc)(void *ctx, size_t bytes),
                     void *ctx)
{
    const size_t rows = (size_t)lay->gbs * (size_t)lay->prompt;
    struct {
        float **p;
        size_t n;
    } bufs[] = {
        {&a->x, rows * lay->h},
        {&a->hn, rows * (lay->h > lay->qd ? lay->h : lay->qd)},
        {&a->qkv, rows * (lay->qd + 2 * lay->kvd)},
        {&a->att, rows * lay->qd},
        {&a->ffn, rows * lay->ffn_w},
        {&a->tmp, rows * lay->h},
        {&a->vec, 5 * lay->wmax},
        {&a->logits, (size_t)lay->gbs * lay->vocab},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i].p = alloc(ctx, bufs[i].n * sizeof(float))))
            return false;
    return true;
}

void exec_acts_free(exec_acts *a, void (*free_fn)(void *ctx, void *p), void *ctx)
{
    float *bufs[] = {a->x, a->hn, a->qkv, a->att, a->ffn, a->tmp, a->vec, a->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            free_fn(ctx, bufs[i]);
}

void exec_kv_put(const quant *kq, size_t kvd, size_t kv_row, uint8_t *slots, size_t stride, int s,
                 long long pos, const float *kx, const float *vx)
{
    uint8_t *row = slots + (size_t)pos * stride + (size_t)s * 2 * kv_row;
    for (int kv = 0; kv < 2; kv++) {
        const float *src = kv ? vx : kx;
        uint8_t *dst = row + (size_t)kv * kv_row;
        if (kq->bits)
            quant_quantize_row(src, kvd, kq->bits, kq->group_size, dst);
        else
            for (size_t i = 0; i < kvd; i++)
                ((uint16_t *)(void *)dst)[i] = half_f32_to_f16(src[i]);
    }
}

void exec_kv_get(const quant *kq, size_t kvd, size_t kv_row, const uint8_t *slots, size_t stride,
                 int s, long long pos, float *kx, float *vx)
{
    const uint8_t *row = slots + (size_t)pos * stride + (size_t)s * 2 * kv_row;
    for (int kv = 0; kv < 2; kv++) {
        float *dst = kv ? vx : kx;
        const uint8_t *src = row + (size_t)kv * kv_row;
        if (kq->bits)
            quant_dequantize_row(src, kvd, kq->bits, kq->group_size, dst);
        else
            k_convert_to_f32(NULL, src, K_WTYPE_F16, kvd, dst);
    }
}

/* Index of batch k among those of tiers[] (one per batch) that are on disk:
 * the batch's place in the KV and hidden-state files. */
static int disk_index(const tier *tiers, int k)
{
    int n = 0;
    for (int i = 0; i < k; i++)
        n += tiers[i] == TIER_DISK;
    return n;
}

uint64_t exec_kv_disk_off(const exec_layout *lay, int layer, int k, long long pos)
{
    uint64_t kd = (uint64_t)disk_index(lay->kv_tier, k), nd = (uint64_t)lay->kv_disk;
    return (((uint64_t)layer * nd + kd) * (uint64_t)lay->kv_cap + (uint64_t)exec_kv_slot(lay, pos)) *
           lay->kv_dslot;
}

uint64_t exec_act_disk_off(const exec_layout *lay, int k)
{
    return (uint64_t)disk_index(lay->act_tier, k) * offload_round(lay->act_bytes);
}

uint64_t exec_kv_file_bytes(const exec_layout *lay)
{
    return (uint64_t)lay->L * (uint64_t)lay->kv_disk * (uint64_t)lay->kv_cap * lay->kv_dslot;
}

uint64_t exec_act_file_bytes(const exec_layout *lay)
{
    return (uint64_t)lay->act_disk * offload_round(lay->act_bytes);
}

size_t exec_act_step_bytes(const exec_layout *lay, long long t)
{
    return (size_t)lay->gbs * (size_t)t * lay->h * 2;
}

size_t exec_act_disk_bytes(const exec_layout *lay, long long t)
{
    return (size_t)size_disk_round((double)exec_act_step_bytes(lay, t));
}
