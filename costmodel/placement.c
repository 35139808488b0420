/* placement — see placement.h for the rule. */
#include "costmodel/placement.h"

#include <string.h>

double placement_tensor_bytes(const model *m, const model_tensor *t, const quant *wq)
{
    double n = (double)t->rows * (double)t->cols;
    int db = model_dtype_bytes(m->dtype);
    if (!t->matrix || wq->bits == 0)
        return n * db;
    /* groups run along the input dimension, row by row */
    return quant_bytes(wq, n, db);
}

void placement_assign(const double *bytes, int n, const placement *target, tier *tiers,
                      placement *realized)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        total += bytes[i];
    double placed[TIER_COUNT] = {0};
    unsigned char done[256] = {0};
    if (n > 256)
        n = 256;
    for (int step = 0; step < n; step++) {
        /* the largest remaining tensor, first in order on ties */
        int pick = -1;
        for (int i = 0; i < n; i++)
            if (!done[i] && (pick < 0 || bytes[i] > bytes[pick]))
                pick = i;
        done[pick] = 1;
        int best = -1;
        double best_deficit = 0;
        for (int t = 0; t < TIER_COUNT; t++) {
            if (target->f[t] <= 0)
                continue;
            double deficit = target->f[t] * total - placed[t];
            if (best < 0 || deficit > best_deficit) {
                best = t;
                best_deficit = deficit;
            }
        }
        placed[best] += bytes[pick];
        if (tiers)
            tiers[pick] = (tier)best;
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

void placement_realize(const model *m, const policy *p, placement_realized *out)
{
    memset(out, 0, sizeof *out);
    model_tensor t[MODEL_MAX_TENSORS];
    double bytes[MODEL_MAX_TENSORS];
    int n = model_layer_tensors(m, t);
    for (int i = 0; i < n; i++)
        bytes[i] = placement_tensor_bytes(m, &t[i], &p->weight_quant);
    placement_assign(bytes, n, &p->weights, out->layer_tiers, &out->weights);
    n = model_head_tensors(m, t);
    for (int i = 0; i < n; i++)
        bytes[i] = placement_tensor_bytes(m, &t[i], &p->weight_quant);
    placement_assign(bytes, n, &p->weights, out->head_tiers, &out->head);
    equal_parts(p->num_gpu_batches, &p->kv_cache, &out->kv_cache);
    equal_parts(p->num_gpu_batches, &p->activations, &out->activations);
}
