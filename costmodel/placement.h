/*
 * placement — from the fractions a policy asks for to whole tensors on tiers,
 * the granularity the engine can execute.
 *
 * The rule is FlexGen's, so that a FlexGen policy means here what it means
 * there: tensors in their checkpoint order, each goes to the tier in whose
 * share of the bytes (gpu first, then cpu, then disk, by the target
 * fractions) its middle byte falls; a middle exactly on a boundary goes to the
 * slower tier, and a tier asked for 0 never receives a tensor. A decoder
 * layer is placed as two groups, its attention tensors and its MLP tensors
 * (FlexGen's two "layers"): OPT-30B at 20% GPU puts only q_proj there (8.3%),
 * as FlexGen did. The realized fractions are the placed bytes over the total.
 *
 * The same rule places, for each decoder layer, its weight tensors; for the
 * KV cache, the K and V of each GPU batch together (num_gpu_batches equal
 * parts per layer: a batch's attention then reads its whole cache from one
 * tier); for activations, the hidden state of each GPU batch. Every layer
 * gets the same placement, so per-layer costs are identical.
 */
#ifndef LLMSIM_COSTMODEL_PLACEMENT_H
#define LLMSIM_COSTMODEL_PLACEMENT_H

#include "hwprofiles/hwprofile.h"
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

/* The parts of a profile (hw_uses) whose figures price policy p for model
 * m on hw, by the tiers its realized placement uses: the CPU's figures
 * without a GPU or with attention delegated to it, the disk's reads when
 * anything lives on disk, its writes when the KV cache or the hidden states
 * do, the GPU's when there is one. */
unsigned placement_hw_uses(const model *m, const hwprofile *hw, const policy *p);

#endif
