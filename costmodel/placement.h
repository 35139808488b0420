/*
 * placement — from the fractions a policy asks for to whole tensors on tiers,
 * the granularity the engine can execute.
 *
 * The rule (deterministic): tensors are taken largest first (ties by their
 * order), and each goes to the tier whose remaining share of the bytes
 * (target fraction x total - bytes already placed there) is largest, among
 * the tiers with a positive target; ties go to the faster tier (gpu, then
 * cpu, then disk). A tier asked for 0 never receives a tensor. The realized
 * fractions are the placed bytes over the total.
 *
 * The same rule places, for each decoder layer, its weight tensors; for the
 * KV cache, the K and V of each GPU batch together (num_gpu_batches equal
 * parts per layer: a batch's attention then reads its whole cache from one
 * tier); for activations, the hidden state of each GPU batch. Every layer
 * gets the same placement, so per-layer costs are identical.
 */
#ifndef LLMSIM_COSTMODEL_PLACEMENT_H
#define LLMSIM_COSTMODEL_PLACEMENT_H

#include "models/model.h"
#include "policies/policy.h"

/* bytes[n] -> tiers[n] (may be NULL) and the realized fractions. */
void placement_assign(const double *bytes, int n, const placement *target, tier *tiers,
                      placement *realized);

typedef struct placement_realized {
    placement weights;     /* realized over one decoder layer's tensors */
    placement head;        /* realized over the embedding / LM-head tensors */
    placement kv_cache;
    placement activations;
    tier layer_tiers[MODEL_MAX_TENSORS]; /* per tensor of model_layer_tensors */
    tier head_tiers[MODEL_MAX_TENSORS];  /* per tensor of model_head_tensors */
} placement_realized;

/* Realize a policy's fractions for a model (weights in their stored form,
 * quantized or not). */
void placement_realize(const model *m, const policy *p, placement_realized *out);

/* Bytes of a tensor as stored under the weight quantization. */
double placement_tensor_bytes(const model *m, const model_tensor *t, const quant *wq);

#endif
