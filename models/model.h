/*
 * model — the architecture of a decoder-only transformer, as llmsim needs it
 * to count bytes and FLOPs (and, later, to run it).
 *
 * Sources: a shipped name (models/configs/NAME.yaml), a YAML file
 * (`llmsim: model/1`), or a Hugging Face config.json of the OPT, LLaMA
 * (Llama 2 and 3), Mistral, Qwen2, Qwen3, Gemma or Phi-3 families. All sizes
 * are element counts unless a name says bytes.
 */
#ifndef LLMSIM_MODELS_MODEL_H
#define LLMSIM_MODELS_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/diag.h"
#include "common/strbuf.h"

/* The family decides the checkpoint's tensor names (OPT's, Phi-3's fused
 * qkv_proj and gate_up_proj) and nothing of the math: every feature that
 * changes the math is a field of its own. */
typedef enum model_family {
    MODEL_FAMILY_OPT,
    MODEL_FAMILY_LLAMA,
    MODEL_FAMILY_MISTRAL,
    MODEL_FAMILY_QWEN2,
    MODEL_FAMILY_QWEN3,
    MODEL_FAMILY_GEMMA,
    MODEL_FAMILY_PHI3,
    MODEL_FAMILY_MIXTRAL,   /* block_sparse_moe.gate, .experts.M.w1/w2/w3 */
    MODEL_FAMILY_QWEN2_MOE, /* mlp.gate, mlp.experts.M.*, mlp.shared_expert(_gate) */
    MODEL_FAMILY_QWEN3_MOE, /* mlp.gate, mlp.experts.M.* */
} model_family;
#define MODEL_FAMILIES 10
/* RELU/GELU: 2 matrices (fc1, fc2); SWIGLU and GEGLU_TANH: 3 (gate, up,
 * down), silu(gate) * up or gelu_tanh(gate) * up (Gemma's GeGLU, the tanh
 * approximation of GELU). */
typedef enum model_ffn { MODEL_FFN_RELU, MODEL_FFN_GELU, MODEL_FFN_SWIGLU, MODEL_FFN_GEGLU_TANH } model_ffn;
#define MODEL_FFNS 4
/* How the rotary frequencies are scaled (transformers' rope_type): none;
 * linear (every frequency / factor); llama3 (Llama 3.1's: low frequencies
 * / factor, high ones kept, a smooth blend between). */
typedef enum model_rope_kind { MODEL_ROPE_NONE, MODEL_ROPE_LINEAR, MODEL_ROPE_LLAMA3 } model_rope_kind;
typedef struct model_rope_scaling {
    model_rope_kind kind;
    double factor;                /* linear, llama3: > 0 */
    double low_freq_factor;       /* llama3 */
    double high_freq_factor;      /* llama3: > low_freq_factor */
    int64_t original_max_context; /* llama3: original_max_position_embeddings */
} model_rope_scaling;
typedef enum model_norm { MODEL_NORM_LAYERNORM, MODEL_NORM_RMSNORM } model_norm;
typedef enum model_pos { MODEL_POS_LEARNED, MODEL_POS_ROTARY } model_pos;
typedef enum model_dtype { MODEL_DTYPE_FP16, MODEL_DTYPE_BF16, MODEL_DTYPE_FP32 } model_dtype;

extern const char *const model_family_names[MODEL_FAMILIES];
extern const char *const model_ffn_names[MODEL_FFNS];
extern const char *const model_rope_names[3];
extern const char *const model_norm_names[2];
extern const char *const model_pos_names[2];
extern const char *const model_dtype_names[3];

/* A mixture-of-experts MLP (Mixtral, Qwen2-MoE, Qwen3-MoE): a router picks
 * top_k of `experts` gated experts (gate, up, down of expert_ffn) per token,
 * weighted by the softmax of its logits (renormalized over the k when
 * norm_topk), plus a shared expert of shared_ffn (0: none), sigmoid-gated
 * when shared_gate. A layer is sparse iff (layer + 1) % sparse_step == 0 and
 * it is not in dense_layers (Qwen2-MoE's mlp_only_layers); the others have
 * the dense MLP of ffn_size. experts == 0: a dense model. */
#define MODEL_MAX_LAYERS 4096
typedef struct model_moe {
    int64_t experts, top_k, expert_ffn, shared_ffn;
    bool shared_gate, norm_topk;
    int64_t sparse_step;
    uint64_t dense_layers[MODEL_MAX_LAYERS / 64]; /* a bit per layer */
} model_moe;

/* The widest head model_validate accepts. */
#define MODEL_MAX_HEAD_DIM 4096

typedef struct model {
    char name[64];
    char source[96];          /* where it comes from (a Hugging Face repo id); metadata, not in model_canonical */
    model_family family;
    int64_t num_layers;       /* decoder blocks */
    int64_t hidden_size;      /* h: width of the residual stream */
    int64_t num_heads;        /* query heads */
    int64_t num_kv_heads;     /* key/value heads (== num_heads without GQA) */
    int64_t head_dim;         /* per head; hidden_size / num_heads unless given (<= MODEL_MAX_HEAD_DIM) */
    int64_t ffn_size;         /* intermediate width of the MLP */
    model_ffn ffn_kind;       /* RELU/GELU: 2 matrices; SWIGLU, GEGLU_TANH: 3 (gate, up, down) */
    int64_t vocab_size;
    int64_t max_context;      /* max positions */
    model_norm norm;
    model_pos position;
    bool tied_embeddings;     /* LM head shares the token embedding */
    bool linear_bias;         /* biases on every linear layer (OPT) */
    bool qkv_bias;            /* biases on the q, k and v projections only (Qwen2) */
    bool qk_norm;             /* RMSNorm over each head of q and k before RoPE (Qwen3) */
    bool norm_plus_one;       /* RMSNorm scales by (1 + weight) (Gemma) */
    bool scale_embeddings;    /* embeddings times sqrt(hidden_size), rounded to the dtype (Gemma) */
    int64_t sliding_window;   /* attention over the last this many positions; 0: all (Mistral) */
    model_rope_scaling rope_scaling;
    model_moe moe;            /* moe.experts > 0: a mixture of experts */
    model_dtype dtype;        /* dtype of the published weights */
    double norm_eps;          /* 1e-5 LayerNorm / RMSNorm epsilon */
    double rope_theta;        /* rotary base (rotary models only) */
} model;

/* Bytes per element of a dtype. */
int model_dtype_bytes(model_dtype dt);
/* Whether layer i's MLP is a mixture of experts. */
bool model_layer_sparse(const model *m, int64_t layer);
/* A gated MLP: gate, up and down matrices (SwiGLU, GeGLU). */
bool model_ffn_gated(const model *m);
/* The positions a sequence's KV cache holds when its context is ctx and its
 * prompt was `prompt` tokens long: ctx, bounded under a sliding window by
 * max(window, prompt) (a rolling buffer of the window; the prefill writes
 * the whole prompt at once, so a longer prompt sets the bound). The one
 * definition of the bound, for the engine's buffers and the cost model. */
int64_t model_kv_positions(const model *m, int64_t prompt, int64_t ctx);
/* The first position a query at position pos attends to: pos - window + 1
 * under a sliding window (transformers' mask: key j is seen iff
 * pos - window < j <= pos), else 0. */
int64_t model_attn_first(const model *m, int64_t pos);
/* Gemma's embedding scale: sqrt(hidden_size) rounded to the model's dtype
 * (transformers: torch.tensor(hidden_size ** 0.5, dtype)); 1 without
 * scale_embeddings. */
double model_embed_scale(const model *m);
/* The (query, key) pairs attention scores for t queries at positions
 * start .. start + t - 1: sum of pos + 1 - model_attn_first(pos). */
double model_attn_pairs(const model *m, int64_t start, int64_t t);
/* The share of a causal step's pairs (model_attn_pairs without a window)
 * that the model's window keeps: 1 without one. */
double model_attn_share(const model *m, int64_t start, int64_t t);
/* The rotary inverse frequencies of the model, scaled as rope_scaling says
 * (transformers' _compute_default/linear/llama3_parameters), in double:
 * out [head_dim / 2]. */
void model_rope_inv_freq(const model *m, double *out);

/* Resolve `spec` (shipped name, YAML path, or config.json path) and load it. */
llmsim_status model_load(const char *spec, model *m, diag *e);
llmsim_status model_load_yaml(const char *path, model *m, diag *e);
/* The same over YAML text in memory (the store keeps inputs as text); name
 * stands for the file in messages. */
llmsim_status model_load_yaml_text(const char *name, const char *text, model *m, diag *e);
llmsim_status model_load_hf_config(const char *path, model *m, diag *e);
/* The same over text [len] in memory (NUL-terminated at len); name stands
 * for the file in messages. */
llmsim_status model_load_hf_config_text(const char *name, const char *text, size_t len, model *m,
                                        diag *e);
/* Check the cross-field rules (heads divide, GQA groups, ...); `where` names
 * the source in messages. */
llmsim_status model_validate(const model *m, const char *where, diag *e);

/* ---- counts (elements) */
typedef struct model_layer_params {
    int64_t attn_weights;  /* q, k, v, o projection matrices */
    int64_t attn_bias;     /* their biases */
    int64_t mlp_weights;   /* fc1/fc2 or gate/up/down */
    int64_t mlp_bias;
    int64_t norm;          /* norm weights (and LayerNorm biases) */
} model_layer_params;

void model_layer_params_get(const model *m, model_layer_params *p);
int64_t model_layer_param_count(const model *m);
/* Of layer i: model_layer_param_count for a dense one; a sparse one's
 * router, experts and shared expert in place of the dense MLP. */
int64_t model_layer_param_count_at(const model *m, int64_t layer);
/* Embedding (tokens + learned positions), final norm, untied LM head. */
int64_t model_embed_param_count(const model *m);
int64_t model_lm_head_param_count(const model *m); /* 0 when tied */
int64_t model_param_count(const model *m);
/* Width of K (or V) per token: num_kv_heads * head_dim. */
int64_t model_kv_dim(const model *m);
/* Width of Q per token: num_heads * head_dim. */
int64_t model_q_dim(const model *m);

/* ---- tensors, as stored in Hugging Face checkpoints */
#define MODEL_MAX_TENSORS 16
typedef struct model_tensor {
    char name[48];  /* suffix after "model.decoder.layers.N." / "model.layers.N.", or full name */
    int64_t rows;   /* output features (1 for vectors) */
    int64_t cols;   /* input features (the length of a quantization row) */
    bool matrix;    /* a 2-D weight: quantized when weights are */
} model_tensor;

/* The tensors of one decoder layer; returns the count (<= MODEL_MAX_TENSORS). */
int model_layer_tensors(const model *m, model_tensor *out);
/* Embeddings, final norm and (untied) LM head; returns the count. */
int model_head_tensors(const model *m, model_tensor *out);

/* Canonical text (for hashing and for the store) and YAML form. */
void model_canonical(const model *m, strbuf *out);

/* Names of the shipped models, NULL-terminated. */
extern const char *const model_shipped_names[];

#endif
