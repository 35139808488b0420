/* placement — see placement.h for the rule. */
#include "costmodel/placement.h"

#include "costmodel/sizes.h"

#include <string.h>

void placement_assign(const double *bytes, int n, const placement *target, tier *tiers,
                      placement *realized)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        total += bytes[i];
    /* the tiers asked for something, and where each one's share ends */
    double end_at[TIER_COUNT];
    int last = -1, first = -1;
    double cum = 0;
    for (int t = 0; t < TIER_COUNT; t++) {
        cum += target->f[t];
        end_at[t] = cum;
        if (target->f[t] > 0) {
            last = t;
            if (first < 0)
                first = t;
        }
    }
    double placed[TIER_COUNT] = {0};
    double before = 0;
    for (int i = 0; i < n; i++) {
        /* the middle of the tensor, as a fraction of all the bytes */
        double mid = total > 0 ? (before + bytes[i] / 2) / total : 0;
        int pick = last;
        for (int t = 0; t < TIER_COUNT; t++) {
            if (target->f[t] > 0 && mid < end_at[t]) {
                pick = t;
                break;
            }
        }
        if (pick < 0)
            pick = TIER_CPU; /* no target at all: cannot happen with a valid policy */
        if (total <= 0 && first >= 0)
            pick = first;
        placed[pick] += bytes[i];
        before += bytes[i];
        if (tiers)
            tiers[i] = (tier)pick;
    }
    for (int t = 0; t < TIER_COUNT; t++)
        realized->f[t] = total > 0 ? placed[t] / total : target->f[t];
}

static void equal_parts(int n, const placement *target, placement *realized)
{
    double ones[256];
    for (int i = 0; i < 256; i++)
        ones[i] = 1.0;
    if (n > 256)
        n = 256;
    placement_assign(ones, n, target, NULL, realized);
}

/* FlexGen places the attention and the MLP of a layer as two groups; so do we. */
static bool attention_group(const model_tensor *t)
{
    return strncmp(t->name, "self_attn", 9) == 0 || strcmp(t->name, "input_layernorm.weight") == 0;
}

void placement_realize(const model *m, const policy *p, placement_realized *out)
{
    memset(out, 0, sizeof *out);
    model_tensor t[MODEL_MAX_TENSORS];
    double bytes[MODEL_MAX_TENSORS], gbytes[MODEL_MAX_TENSORS] = {0};
    tier gtiers[MODEL_MAX_TENSORS];
    int idx[MODEL_MAX_TENSORS];
    int n = model_layer_tensors(m, t);
    double placed[TIER_COUNT] = {0}, total = 0;
    for (int i = 0; i < n; i++)
        bytes[i] = size_tensor_bytes(m, &t[i], &p->weight_quant);
    for (int g = 0; g < 2; g++) {
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (attention_group(&t[i]) == (g == 0)) {
                idx[k] = i;
                gbytes[k++] = bytes[i];
            }
        }
        placement unused;
        placement_assign(gbytes, k, &p->weights, gtiers, &unused);
        for (int j = 0; j < k; j++) {
            out->layer_tiers[idx[j]] = gtiers[j];
            placed[gtiers[j]] += gbytes[j];
            total += gbytes[j];
        }
    }
    for (int k = 0; k < TIER_COUNT; k++)
        out->weights.f[k] = total > 0 ? placed[k] / total : p->weights.f[k];
    n = model_head_tensors(m, t);
    for (int i = 0; i < n; i++)
        bytes[i] = size_tensor_bytes(m, &t[i], &p->weight_quant);
    placement_assign(bytes, n, &p->weights, out->head_tiers, &out->head);
    equal_parts(p->num_gpu_batches, &p->kv_cache, &out->kv_cache);
    equal_parts(p->num_gpu_batches, &p->activations, &out->activations);
}

unsigned placement_hw_uses(const model *m, const hwprofile *hw, const policy *p)
{
    placement_realized r;
    placement_realize(m, p, &r);
    unsigned uses = 0;
    if (!hw->gpu.present || p->cpu_attention)
        uses |= HW_USES_CPU;
    if (hw->gpu.present)
        uses |= HW_USES_GPU;
    const bool w = r.weights.f[TIER_DISK] > 0 || r.head.f[TIER_DISK] > 0;
    const bool kv = r.kv_cache.f[TIER_DISK] > 0 || r.activations.f[TIER_DISK] > 0;
    if (w || kv)
        uses |= HW_USES_DISK_READ;
    if (kv)
        uses |= HW_USES_DISK_WRITE;
    return uses;
}
