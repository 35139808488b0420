/*
 * analytic — the closed-form cost model of ARCHITECTURE §6, FlexGen style.
 *
 * For a block of bls = gpu_batch_size x num_gpu_batches sequences, per layer
 * and per phase (prefill over the prompt; one decode step at a context
 * length), it gives the busy time of every resource and the time of every
 * stage as LINEAR forms in the nine placement fractions
 *   x = (wg, wc, wd, cg, cc, cd, hg, hc, hd),
 * for fixed discrete choices (batch shape, quantization, delegation). The
 * same forms are the rows of the LP search (search/search.h) and, evaluated
 * at a policy's fractions, the prediction of `llmsim predict`.
 *
 * Layer time with overlap = max(h2d, d2h, disk read + disk write (one
 * device), gpu + cpu (delegated attention is on its batch's critical path));
 * without overlap, the sum of all resources. Peak memory per tier is also a
 * linear form. Units: seconds and bytes.
 */
#ifndef LLMSIM_COSTMODEL_ANALYTIC_H
#define LLMSIM_COSTMODEL_ANALYTIC_H

#include <stdbool.h>

#include "hwprofiles/hwprofile.h"
#include "models/model.h"
#include "workload/workload.h"
#include "policies/policy.h"
#include "costmodel/sizes.h"

enum { CM_WG, CM_WC, CM_WD, CM_CG, CM_CC, CM_CD, CM_HG, CM_HC, CM_HD, CM_NFRAC };

/* value = c0 + sum_i c[i] * x[i] */
typedef struct cm_lin {
    double c0;
    double c[CM_NFRAC];
} cm_lin;

double cm_lin_eval(const cm_lin *l, const double x[CM_NFRAC]);
/* The policy's fractions as x. */
void cm_policy_x(const policy *p, double x[CM_NFRAC]);

typedef enum cm_res {
    CM_RES_H2D,        /* host -> device link */
    CM_RES_D2H,        /* device -> host link */
    CM_RES_DISK_READ,
    CM_RES_DISK_WRITE,
    CM_RES_GPU,
    CM_RES_CPU,
    CM_NRES
} cm_res;
extern const char *const cm_res_names[CM_NRES];

typedef enum cm_stage {
    CM_STAGE_LOAD_WEIGHT,  /* weights disk -> cpu -> gpu */
    CM_STAGE_LOAD_CACHE,   /* KV cache into the attention device */
    CM_STAGE_STORE_CACHE,  /* new KV entries out to their tier */
    CM_STAGE_COMPUTE,      /* GPU and CPU compute (delegated attention included) */
    CM_STAGE_LOAD_ACT,     /* hidden states in */
    CM_STAGE_STORE_ACT,    /* hidden states out */
    CM_NSTAGES
} cm_stage;
extern const char *const cm_stage_names[CM_NSTAGES];

/* The terms that the max (overlap) or the sum (no overlap) runs over. */
typedef enum cm_term { CM_TERM_H2D, CM_TERM_D2H, CM_TERM_DISK, CM_TERM_COMPUTE, CM_NTERMS } cm_term;

typedef struct cm_layer_cost {
    cm_lin res[CM_NRES];      /* busy seconds per resource, one layer, whole block */
    cm_lin stage[CM_NSTAGES]; /* seconds per stage */
    cm_lin term[CM_NTERMS];   /* res combined: disk = read + write, compute = gpu + cpu */
    cm_lin sum;               /* all resources added (time without overlap) */
} cm_layer_cost;

/* Everything about a (model, hardware, policy's discrete choices, workload)
 * that does not depend on the fractions: devices, and the sizes of
 * costmodel/sizes.h it keeps at hand. */
typedef struct cm_setup {
    const model *m;
    const hwprofile *hw;
    const policy *p;     /* fractions ignored; discrete choices used. Borrowed, not
                          * copied: sizes below are derived from it at init, so the
                          * policy must not change while the setup is in use */
    workload w;
    bool has_gpu;        /* false: compute on the CPU, gpu tier empty */
    double bls;          /* sequences per block */
    double w_layer_bytes;      /* one decoder layer's weights, as stored (quantized or not) */
    double w_layer_fp16_bytes; /* the same, dequantized */
    double w_head_bytes;       /* embeddings + final norm + LM head, as stored */
    double w_head_fp16_bytes;  /* the same, dequantized */
    /* The working sets the CPU's GEMMs read weights from (cm_gemm_time):
     * every weight a pass over the model reads (each once), and a layer's:
     * its dequantized working copy with quantized weights, else the pass's. */
    double w_pass_ws_bytes;
    double w_layer_ws_bytes;
    int64_t layer_tensors;     /* tensors per layer (copies per layer load) */
} cm_setup;

llmsim_status cm_setup_init(cm_setup *s, const model *m, const hwprofile *hw, const policy *p,
                            const workload *w, diag *e);

typedef enum cm_phase { CM_PHASE_PREFILL, CM_PHASE_DECODE } cm_phase;

/* One GPU batch of one decoder layer: the pieces both the layer cost below
 * (ngb x these, weighted by the fractions) and the plan's tasks are priced
 * from, so that predict and simulate share every number. */
typedef struct cm_batch_cost {
    /* on the compute device (the GPU, or the CPU without one) */
    double dense_pre_s;    /* first norm and QKV projection */
    double dense_post_s;   /* output projection, MLP, second norm, residuals */
    double attn_dev_s;     /* attention (over the prompt, or the context in decode) */
    double kv_deq_dev_s;   /* decode, quantized cache: dequantize the batch's cache */
    double kv_quant_dev_s; /* quantize the new entries */
    /* on the CPU, when attention is delegated (decode) */
    double attn_cpu_s, kv_deq_cpu_s, kv_quant_cpu_s;
    /* bytes of the batch */
    double kv_old_bytes;   /* decode: its cache before the step, as stored */
    double kv_new_bytes;   /* new entries: the prompt's in prefill, one token's in decode */
    double qkv_bytes;      /* delegated: q, k, v to the CPU */
    double out_bytes;      /* delegated: the attention output back */
    double act_bytes;      /* its hidden state (in, or out) */
    /* the same as a disk transfer moves them: in whole aligned blocks, one
     * padded slot per token for the cache (costmodel/sizes.h) */
    double kv_old_disk_bytes, kv_new_disk_bytes, act_disk_bytes;
} cm_batch_cost;
void cm_batch_cost_get(const cm_setup *s, cm_phase phase, double ctx, cm_batch_cost *b);
/* The dense work of one layer over `rows` token rows on the compute device,
 * whatever sequences they come from (the serving simulator's mixed batches):
 * before attention (first norm, QKV projection) and after it (output
 * projection, MLP, second norm, residual adds), launches included. */
void cm_dense_rows_s(const cm_setup *s, double rows, double *pre_s, double *post_s);
/* `copies` transfers of `bytes` in all over a link: copies x latency + bytes / bandwidth. */
double cm_copies_time(const hw_link *link, double bytes, double copies);
/* Compute time lost to read_B bytes read from and write_B bytes written to
 * disk beside the compute (the profile's disk.*_compute_loss_per_gb): only
 * without a GPU (the compute shares the CPUs and memory with the transfers)
 * and with overlap (without it nothing runs beside a transfer); else 0. */
double cm_io_loss_s(const cm_setup *s, double read_B, double write_B);
/* The most compute a task of dur_s can lose that way: the loss while the
 * disk streams the whole time at its bandwidth. */
double cm_io_loss_cap_s(const cm_setup *s, double dur_s);
/* Dequantizing one layer's weights (0 without weight quantization). */
double cm_weight_dequant_s(const cm_setup *s);
/* The link CPU-resident weights cross (pinned or pageable). */
const hw_link *cm_weight_link(const cm_setup *s);

/* One decoder layer: prefill (ctx == prompt_len), or a decode step that
 * attends over ctx tokens (the cache holds ctx - 1 before the step). */
void cm_layer_cost_get(const cm_setup *s, cm_phase phase, double ctx, cm_layer_cost *out);
/* Embedding, final norm and LM head for one step of the block. */
void cm_head_cost_get(const cm_setup *s, cm_phase phase, cm_layer_cost *out);
/* Their compute for one GPU batch, and dequantizing the head's weights. */
double cm_head_batch_s(const cm_setup *s, cm_phase phase);
/* The same for token_rows tokens looked up and logit_rows rows of logits. */
double cm_head_rows_s(const cm_setup *s, double token_rows, double logit_rows);
double cm_head_dequant_s(const cm_setup *s);

/* Times that may run side by side, combined by the policy's overlap: with
 * it, the longest (0 when none is positive); without it, their sum. */
double cm_overlap_s(const cm_setup *s, const double *terms, int n);
/* Layer time of a cost at fractions x (max or sum by the policy's overlap). */
double cm_layer_time(const cm_setup *s, const cm_layer_cost *c, const double x[CM_NFRAC]);

/* Peak bytes per tier as linear forms, and the capacities. */
void cm_peak_memory(const cm_setup *s, cm_lin peak[TIER_COUNT]);
double cm_tier_capacity(const cm_setup *s, tier t);
/* The same from the profile alone (0 for a tier the machine lacks), and all
 * three at once, as the simulator's pools take them. */
double cm_hw_tier_capacity(const hwprofile *hw, tier t);
void cm_hw_capacities(const hwprofile *hw, double cap[TIER_COUNT]);

/* ---- a whole prediction */
typedef struct cm_step_stages {
    double s[CM_NSTAGES]; /* seconds of each stage over all layers of one step */
} cm_step_stages;

typedef struct cm_result {
    bool feasible;
    tier overflow_tier;       /* valid when !feasible */
    double overflow_bytes;    /* peak - capacity of that tier */
    double peak_bytes[TIER_COUNT];
    double capacity_bytes[TIER_COUNT];
    double prefill_s;         /* whole workload */
    double decode_s;
    double total_s;
    double throughput_tok_s;  /* generated tokens / total */
    double blocks;            /* ceil(num_prompts / bls) */
    double num_prompts;
    double prefill_layer_s;   /* one layer, prefill */
    double decode_layer_s;    /* one layer, decode, averaged over steps */
    double max_step_s;        /* the longest decode step of the block (per-token latency) */
    double layer_stage_s[CM_NSTAGES];  /* per layer, decode, averaged over steps */
    double prefill_stage_s[CM_NSTAGES]; /* per layer, prefill */
    double decode_res_s[CM_NRES];       /* per layer, decode, averaged */
    double prefill_res_s[CM_NRES];      /* per layer, prefill */
    cm_term decode_bottleneck;           /* term of the max, averaged decode */
    cm_term prefill_bottleneck;
    placement requested[3];    /* weights, kv_cache, activations as asked */
    placement realized[3];     /* as placed in whole tensors (costmodel/placement.h) */
    placement realized_head;   /* embedding / LM-head tensors */
    int nsteps;                /* gen_len - 1 decode steps */
    double search_s;           /* set by search for its record: how long it took */
    double candidates_evaluated; /* likewise: LPs built (0 for predict) */
    cm_step_stages *steps;     /* [nsteps + 1]: 0 = prefill, owned; cm_result_free */
} cm_result;

/* Predict a policy. Fails (LLMSIM_EINPUT) only when the inputs contradict
 * each other (GPU fractions on a CPU-only profile, a group size that does not
 * divide the hidden size, ...); an infeasible policy is a result. */
llmsim_status cm_predict(const model *m, const hwprofile *hw, const policy *p, const workload *w,
                         cm_result *r, diag *e);
void cm_result_free(cm_result *r);

/* The same at given fractions, without realizing them in whole tensors:
 * x for the decoder layers, xh for the embedding / LM-head weights (the LP
 * search passes its continuous solution for both). */
llmsim_status cm_evaluate(const cm_setup *s, const double x[CM_NFRAC], const double xh[CM_NFRAC],
                          cm_result *r, diag *e);

#endif
