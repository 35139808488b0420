/*
 * model — the architecture of a decoder-only transformer, as llmsim needs it
 * to count bytes and FLOPs (and, later, to run it).
 *
 * Sources: a shipped name (models/configs/NAME.yaml), a YAML file
 * (`llmsim: model/1`), or a Hugging Face config.json of the OPT, LLaMA or
 * Mistral families. All sizes are element counts unless a name says bytes.
 */
#ifndef LLMSIM_MODELS_MODEL_H
#define LLMSIM_MODELS_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/diag.h"
#include "common/strbuf.h"

typedef enum model_family { MODEL_FAMILY_OPT, MODEL_FAMILY_LLAMA, MODEL_FAMILY_MISTRAL } model_family;
typedef enum model_ffn { MODEL_FFN_RELU, MODEL_FFN_GELU, MODEL_FFN_SWIGLU } model_ffn;
typedef enum model_norm { MODEL_NORM_LAYERNORM, MODEL_NORM_RMSNORM } model_norm;
typedef enum model_pos { MODEL_POS_LEARNED, MODEL_POS_ROTARY } model_pos;
typedef enum model_dtype { MODEL_DTYPE_FP16, MODEL_DTYPE_BF16, MODEL_DTYPE_FP32 } model_dtype;

extern const char *const model_family_names[3];
extern const char *const model_ffn_names[3];
extern const char *const model_norm_names[2];
extern const char *const model_pos_names[2];
extern const char *const model_dtype_names[3];

typedef struct model {
    char name[64];
    model_family family;
    int64_t num_layers;       /* decoder blocks */
    int64_t hidden_size;      /* h: width of the residual stream */
    int64_t num_heads;        /* query heads */
    int64_t num_kv_heads;     /* key/value heads (== num_heads without GQA) */
    int64_t head_dim;         /* per head; hidden_size / num_heads unless given */
    int64_t ffn_size;         /* intermediate width of the MLP */
    model_ffn ffn_kind;       /* RELU/GELU: 2 matrices; SWIGLU: 3 (gate, up, down) */
    int64_t vocab_size;
    int64_t max_context;      /* max positions */
    model_norm norm;
    model_pos position;
    bool tied_embeddings;     /* LM head shares the token embedding */
    bool linear_bias;         /* biases on every linear layer (OPT) */
    model_dtype dtype;        /* dtype of the published weights */
    double norm_eps;          /* 1e-5 LayerNorm / RMSNorm epsilon */
    double rope_theta;        /* rotary base (rotary models only) */
} model;

/* Bytes per element of a dtype. */
int model_dtype_bytes(model_dtype dt);

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
