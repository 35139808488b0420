/*
 * model — parameter counts, tensors, validation and the YAML loader. See
 * model.h; model_load.c resolves a spec, model_hf.c imports config.json.
 */
#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/yamldoc.h"

const char *const model_family_names[MODEL_FAMILIES] = {
    "opt", "llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "mixtral", "qwen2_moe", "qwen3_moe"};
const char *const model_ffn_names[MODEL_FFNS] = {"relu", "gelu", "swiglu", "geglu_tanh"};
const char *const model_rope_names[3] = {"none", "linear", "llama3"};
const char *const model_norm_names[2] = {"layernorm", "rmsnorm"};
const char *const model_pos_names[2] = {"learned", "rotary"};
const char *const model_dtype_names[3] = {"fp16", "bf16", "fp32"};

const char *const model_shipped_names[] = {
    /* opt */
    "opt-125m", "opt-1.3b", "opt-6.7b", "opt-13b", "opt-30b", "opt-66b", "opt-175b",
    /* llama */
    "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.2-1b",
    "llama-3.2-3b", "tinyllama-1.1b",
    /* mistral */
    "mistral-7b",
    /* qwen2 */
    "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b",
    /* qwen3 */
    "qwen3-0.6b", "qwen3-1.7b", "qwen3-8b",
    /* gemma */
    "gemma-2b", "gemma-7b",
    /* phi3 */
    "phi-3-mini-4k",
    /* mixtures of experts: listed and counted, not yet priced or run */
    "mixtral-8x7b", "qwen1.5-moe-a2.7b", "qwen3-30b-a3b",
    NULL,
};

int model_dtype_bytes(model_dtype dt) { return dt == MODEL_DTYPE_FP32 ? 4 : 2; }

bool model_ffn_gated(const model *m)
{
    return m->ffn_kind == MODEL_FFN_SWIGLU || m->ffn_kind == MODEL_FFN_GEGLU_TANH;
}

int64_t model_kv_positions(const model *m, int64_t prompt, int64_t ctx)
{
    if (m->sliding_window <= 0)
        return ctx;
    int64_t cap = m->sliding_window > prompt ? m->sliding_window : prompt;
    return ctx < cap ? ctx : cap;
}

int64_t model_attn_first(const model *m, int64_t pos)
{
    return m->sliding_window > 0 && pos >= m->sliding_window ? pos - m->sliding_window + 1 : 0;
}

double model_attn_pairs(const model *m, int64_t start, int64_t t)
{
    /* causal: positions start+1 .. start+t keys; under a window W a query at
     * pos >= W sees W of them */
    const double end = (double)(start + t), st = (double)start;
    const int64_t w = m->sliding_window;
    if (w <= 0 || start + t <= w)
        return (end * (end + 1) - st * (st + 1)) / 2;
    const int64_t full_end = start > w ? start : w; /* queries before here see pos + 1 keys */
    const double fe = (double)full_end;
    return (fe * (fe + 1) - st * (st + 1)) / 2 + (end - fe) * (double)w;
}

double model_attn_share(const model *m, int64_t start, int64_t t)
{
    const double end = (double)(start + t), st = (double)start;
    const double causal = (end * (end + 1) - st * (st + 1)) / 2;
    return causal > 0 ? model_attn_pairs(m, start, t) / causal : 1.0;
}

/* x rounded to `bits` significant bits, to nearest even (a normal fp16,
 * bf16 or fp32 value of the magnitudes an embedding scale has). */
static double round_significand(double x, int bits)
{
    int ex;
    double fr = frexp(x, &ex); /* x = fr 2^ex, fr in [0.5, 1) */
    return ldexp(nearbyint(ldexp(fr, bits)), ex - bits);
}

double model_embed_scale(const model *m)
{
    if (!m->scale_embeddings)
        return 1.0;
    const int bits = m->dtype == MODEL_DTYPE_FP32 ? 24 : m->dtype == MODEL_DTYPE_BF16 ? 8 : 11;
    return round_significand(sqrt((double)m->hidden_size), bits);
}

void model_rope_inv_freq(const model *m, double *out)
{
    const int64_t half = m->head_dim / 2;
    const model_rope_scaling *r = &m->rope_scaling;
    for (int64_t i = 0; i < half; i++) {
        double f = pow(m->rope_theta, -2.0 * (double)i / (double)m->head_dim);
        if (r->kind == MODEL_ROPE_LINEAR) {
            f /= r->factor;
        } else if (r->kind == MODEL_ROPE_LLAMA3) {
            const double old = (double)r->original_max_context, wavelen = 2 * 3.14159265358979323846 / f;
            if (wavelen > old / r->low_freq_factor) { /* low frequencies: scaled */
                f /= r->factor;
            } else if (wavelen >= old / r->high_freq_factor) { /* between: a blend */
                double s = (old / wavelen - r->low_freq_factor) /
                           (r->high_freq_factor - r->low_freq_factor);
                f = (1 - s) * f / r->factor + s * f;
            } /* high frequencies: kept */
        }
        out[i] = f;
    }
}

/* ---- counts */

int64_t model_kv_dim(const model *m) { return m->num_kv_heads * m->head_dim; }
int64_t model_q_dim(const model *m) { return m->num_heads * m->head_dim; }

void model_layer_params_get(const model *m, model_layer_params *p)
{
    int64_t h = m->hidden_size, q = model_q_dim(m), kv = model_kv_dim(m), f = m->ffn_size;
    memset(p, 0, sizeof *p);
    p->attn_weights = h * q + 2 * h * kv + q * h;
    bool gated = model_ffn_gated(m);
    p->mlp_weights = (gated ? 3 : 2) * h * f;
    if (m->linear_bias) {
        p->attn_bias = q + 2 * kv + h;
        p->mlp_bias = (gated ? 2 * f : f) + h;
    } else if (m->qkv_bias) {
        p->attn_bias = q + 2 * kv;
    }
    p->norm = (m->norm == MODEL_NORM_LAYERNORM ? 2 : 1) * 2 * h + (m->qk_norm ? 2 * m->head_dim : 0);
}

int64_t model_layer_param_count(const model *m)
{
    model_layer_params p;
    model_layer_params_get(m, &p);
    return p.attn_weights + p.attn_bias + p.mlp_weights + p.mlp_bias + p.norm;
}

int64_t model_embed_param_count(const model *m)
{
    int64_t h = m->hidden_size;
    int64_t n = m->vocab_size * h;
    if (m->position == MODEL_POS_LEARNED)
        n += (m->max_context + (m->family == MODEL_FAMILY_OPT ? 2 : 0)) * h; /* OPT offsets by 2 */
    n += (m->norm == MODEL_NORM_LAYERNORM ? 2 : 1) * h; /* final norm */
    return n;
}

int64_t model_lm_head_param_count(const model *m)
{
    return m->tied_embeddings ? 0 : m->vocab_size * m->hidden_size;
}

bool model_layer_sparse(const model *m, int64_t layer)
{
    const model_moe *x = &m->moe;
    return x->experts > 0 && layer >= 0 && layer < MODEL_MAX_LAYERS &&
           (layer + 1) % x->sparse_step == 0 && !(x->dense_layers[layer / 64] >> (layer % 64) & 1);
}

int64_t model_layer_param_count_at(const model *m, int64_t layer)
{
    if (!model_layer_sparse(m, layer))
        return model_layer_param_count(m);
    model_layer_params p;
    model_layer_params_get(m, &p);
    const model_moe *x = &m->moe;
    const int64_t h = m->hidden_size;
    int64_t moe = x->experts * h                   /* the router */
                  + x->experts * 3 * h * x->expert_ffn + 3 * h * x->shared_ffn +
                  (x->shared_ffn && x->shared_gate ? h : 0);
    return p.attn_weights + p.attn_bias + moe + p.norm;
}

int64_t model_param_count(const model *m)
{
    int64_t n = model_embed_param_count(m) + model_lm_head_param_count(m);
    for (int64_t i = 0; i < m->num_layers; i++)
        n += model_layer_param_count_at(m, i);
    return n;
}

/* ---- tensors */

static void tensor(model_tensor *t, const char *name, int64_t rows, int64_t cols, bool matrix)
{
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->matrix = matrix;
}

int model_layer_tensors(const model *m, model_tensor *out)
{
    int64_t h = m->hidden_size, q = model_q_dim(m), kv = model_kv_dim(m), f = m->ffn_size;
    int n = 0;
    bool opt = m->family == MODEL_FAMILY_OPT;
    tensor(&out[n++], "self_attn.q_proj.weight", q, h, true);
    tensor(&out[n++], "self_attn.k_proj.weight", kv, h, true);
    tensor(&out[n++], "self_attn.v_proj.weight", kv, h, true);
    tensor(&out[n++], opt ? "self_attn.out_proj.weight" : "self_attn.o_proj.weight", h, q, true);
    if (model_ffn_gated(m)) {
        tensor(&out[n++], "mlp.gate_proj.weight", f, h, true);
        tensor(&out[n++], "mlp.up_proj.weight", f, h, true);
        tensor(&out[n++], "mlp.down_proj.weight", h, f, true);
    } else {
        tensor(&out[n++], opt ? "fc1.weight" : "mlp.fc1.weight", f, h, true);
        tensor(&out[n++], opt ? "fc2.weight" : "mlp.fc2.weight", h, f, true);
    }
    if (m->linear_bias) {
        tensor(&out[n++], "self_attn.q_proj.bias", 1, q, false);
        tensor(&out[n++], "self_attn.k_proj.bias", 1, kv, false);
        tensor(&out[n++], "self_attn.v_proj.bias", 1, kv, false);
        tensor(&out[n++], opt ? "self_attn.out_proj.bias" : "self_attn.o_proj.bias", 1, h, false);
        if (model_ffn_gated(m)) {
            tensor(&out[n++], "mlp.gate_proj.bias", 1, f, false);
            tensor(&out[n++], "mlp.up_proj.bias", 1, f, false);
            tensor(&out[n++], "mlp.down_proj.bias", 1, h, false);
        } else {
            tensor(&out[n++], opt ? "fc1.bias" : "mlp.fc1.bias", 1, f, false);
            tensor(&out[n++], opt ? "fc2.bias" : "mlp.fc2.bias", 1, h, false);
        }
    } else if (m->qkv_bias) {
        tensor(&out[n++], "self_attn.q_proj.bias", 1, q, false);
        tensor(&out[n++], "self_attn.k_proj.bias", 1, kv, false);
        tensor(&out[n++], "self_attn.v_proj.bias", 1, kv, false);
    }
    if (m->qk_norm) {
        tensor(&out[n++], "self_attn.q_norm.weight", 1, m->head_dim, false);
        tensor(&out[n++], "self_attn.k_norm.weight", 1, m->head_dim, false);
    }
    if (m->norm == MODEL_NORM_LAYERNORM) {
        tensor(&out[n++], "self_attn_layer_norm.weight", 1, h, false);
        tensor(&out[n++], "self_attn_layer_norm.bias", 1, h, false);
        tensor(&out[n++], "final_layer_norm.weight", 1, h, false);
        tensor(&out[n++], "final_layer_norm.bias", 1, h, false);
    } else {
        tensor(&out[n++], "input_layernorm.weight", 1, h, false);
        tensor(&out[n++], "post_attention_layernorm.weight", 1, h, false);
    }
    return n;
}

int model_head_tensors(const model *m, model_tensor *out)
{
    int64_t h = m->hidden_size;
    int n = 0;
    if (m->family == MODEL_FAMILY_OPT) {
        tensor(&out[n++], "model.decoder.embed_tokens.weight", m->vocab_size, h, true);
        tensor(&out[n++], "model.decoder.embed_positions.weight", m->max_context + 2, h, true);
        tensor(&out[n++], "model.decoder.final_layer_norm.weight", 1, h, false);
        tensor(&out[n++], "model.decoder.final_layer_norm.bias", 1, h, false);
    } else {
        tensor(&out[n++], "model.embed_tokens.weight", m->vocab_size, h, true);
        if (m->position == MODEL_POS_LEARNED)
            tensor(&out[n++], "model.embed_positions.weight", m->max_context, h, true);
        tensor(&out[n++], "model.norm.weight", 1, h, false);
        if (m->norm == MODEL_NORM_LAYERNORM)
            tensor(&out[n++], "model.norm.bias", 1, h, false);
    }
    if (!m->tied_embeddings)
        tensor(&out[n++], "lm_head.weight", m->vocab_size, h, true);
    return n;
}

/* ---- validation */

static bool model_feature_rule_broken(const model *m, const char **key, char *msg, size_t len);
static bool model_size_rule_broken(const model *m, const char **key, char *msg, size_t len);

/* The first broken cross-field rule: a message without location, and the
 * key it concerns (so a YAML loader can point at that line). */
static bool model_rule_broken(const void *value, const char **key, char *msg, size_t len)
{
    const model *m = value;
    if (m->num_layers <= 0 || m->hidden_size <= 0 || m->num_heads <= 0 || m->num_kv_heads <= 0 ||
        m->head_dim <= 0 || m->ffn_size <= 0 || m->vocab_size <= 0 || m->max_context <= 0) {
        *key = "layers";
        snprintf(msg, len, "layers, sizes, heads and vocabulary must all be positive");
        return true;
    }
    if (m->num_heads % m->num_kv_heads != 0) {
        *key = "kv_heads";
        snprintf(msg, len, "heads (%lld) must be a multiple of kv_heads (%lld) for grouped-query "
                 "attention", (long long)m->num_heads, (long long)m->num_kv_heads);
        return true;
    }
    if (m->family == MODEL_FAMILY_OPT && m->num_kv_heads != m->num_heads) {
        *key = "kv_heads";
        snprintf(msg, len, "OPT models have no grouped-query attention; kv_heads must equal heads");
        return true;
    }
    if (m->position == MODEL_POS_ROTARY && m->head_dim % 2 != 0) {
        *key = "head_dim";
        snprintf(msg, len, "rotary positions need an even head_dim, got %lld", (long long)m->head_dim);
        return true;
    }
    return model_size_rule_broken(m, key, msg, len) || model_feature_rule_broken(m, key, msg, len);
}

/* Every size well inside what the products llmsim forms can hold. */
static bool model_size_rule_broken(const model *m, const char **key, char *msg, size_t len)
{
    /* Keep every product we form well inside int64. */
    const int64_t lim = (int64_t)1 << 24;
    struct {
        const char *key;
        int64_t v, max;
    } limits[] = {
        {"layers", m->num_layers, 4096},        {"hidden_size", m->hidden_size, lim},
        {"ffn_size", m->ffn_size, lim * 4},     {"vocab_size", m->vocab_size, lim * 4},
        {"max_context", m->max_context, lim * 4}, {"heads", m->num_heads, 4096},
        {"head_dim", m->head_dim, MODEL_MAX_HEAD_DIM},
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        if (limits[i].v > limits[i].max) {
            *key = limits[i].key;
            snprintf(msg, len, "%s = %lld is implausibly large (at most %lld)", limits[i].key,
                     (long long)limits[i].v, (long long)limits[i].max);
            return true;
        }
    }
    if (m->num_heads * m->head_dim > lim) {
        *key = "heads";
        snprintf(msg, len, "heads x head_dim = %lld is implausibly large (at most %lld)",
                 (long long)(m->num_heads * m->head_dim), (long long)lim);
        return true;
    }
    return false;
}

/* Whether moe.dense_layers names a layer past the last. */
static bool moe_dense_beyond(const model *m)
{
    for (int64_t i = m->num_layers; i < MODEL_MAX_LAYERS; i++)
        if (m->moe.dense_layers[i / 64] >> (i % 64) & 1)
            return true;
    return false;
}

/* The rules of the features beyond the sizes. */
static bool model_feature_rule_broken(const model *m, const char **key, char *msg, size_t len)
{
    const model_rope_scaling *r = &m->rope_scaling;
    const char *why = NULL;
    if (m->qkv_bias && m->linear_bias)
        *key = "qkv_bias", why = "linear_bias already puts biases on q, k and v; give one of them";
    else if ((m->norm_plus_one || m->qk_norm) && m->norm != MODEL_NORM_RMSNORM)
        *key = m->qk_norm ? "qk_norm" : "norm_plus_one", why = "needs norm: rmsnorm";
    else if (m->family == MODEL_FAMILY_PHI3 && m->ffn_kind != MODEL_FFN_SWIGLU)
        *key = "ffn_kind", why = "phi3 checkpoints fuse gate and up (gate_up_proj): ffn_kind swiglu";
    else if (r->kind != MODEL_ROPE_NONE && m->position != MODEL_POS_ROTARY)
        *key = "rope_scaling", why = "scales rotary frequencies: needs position: rotary";
    else if (r->kind != MODEL_ROPE_NONE && !(r->factor > 0))
        *key = "rope_scaling", why = "needs factor > 0";
    else if (r->kind == MODEL_ROPE_LLAMA3 &&
             !(r->low_freq_factor > 0 && r->high_freq_factor > r->low_freq_factor &&
               r->original_max_context > 0))
        *key = "rope_scaling", why = "llama3 needs 0 < low_freq_factor < high_freq_factor and "
                                     "original_max_context > 0";
    else if (m->sliding_window < 0)
        *key = "sliding_window", why = "must be a positive number of positions";
    else if (m->moe.experts > 0 && m->moe.top_k > m->moe.experts)
        *key = "moe", why = "top_k must be at most experts";
    else if (m->moe.experts > 0 && moe_dense_beyond(m))
        *key = "moe", why = "dense_layers names a layer the model does not have";
    else if (m->moe.experts > 0 && !model_ffn_gated(m))
        *key = "moe", why = "experts are gated MLPs (gate, up, down): ffn_kind swiglu";
    if (why)
        snprintf(msg, len, "%s", why);
    return why != NULL;
}

llmsim_status model_validate(const model *m, const char *where, diag *e)
{
    return yd_rules_check(model_rule_broken, m, where, e);
}

/* ---- YAML */

/* A size key, at least 1: *dst (and *present) set only when it is given. */
static llmsim_status read_size(yd_map *root, const char *key, yd_need need, int64_t *dst,
                               bool *present, diag *e)
{
    long long v = -1;
    llmsim_status st = yd_field_int(root, key, need, 1, (int64_t)1 << 40, &v, e);
    if (!st && v > 0) {
        *dst = (int64_t)v;
        *present = true;
    }
    return st;
}

/* name, family and the sizes; kv_heads and head_dim may be absent. */
static llmsim_status read_sizes(yd_map *root, model *m, bool *have_kv, bool *have_hd, diag *e)
{
    int iv;
    bool have;
    llmsim_status st;
    if ((st = yd_field_str(root, "name", YD_REQUIRED, m->name, sizeof m->name, e)) ||
        (st = yd_field_enum(root, "family", YD_REQUIRED, model_family_names, MODEL_FAMILIES, &iv, e)))
        return st;
    m->family = (model_family)iv;
    if ((st = read_size(root, "layers", YD_REQUIRED, &m->num_layers, &have, e)) ||
        (st = read_size(root, "hidden_size", YD_REQUIRED, &m->hidden_size, &have, e)) ||
        (st = read_size(root, "heads", YD_REQUIRED, &m->num_heads, &have, e)) ||
        (st = read_size(root, "kv_heads", YD_OPTIONAL, &m->num_kv_heads, have_kv, e)) ||
        (st = read_size(root, "head_dim", YD_OPTIONAL, &m->head_dim, have_hd, e)) ||
        (st = read_size(root, "ffn_size", YD_REQUIRED, &m->ffn_size, &have, e)) ||
        (st = read_size(root, "vocab_size", YD_REQUIRED, &m->vocab_size, &have, e)) ||
        (st = read_size(root, "max_context", YD_REQUIRED, &m->max_context, &have, e)))
        return st;
    return LLMSIM_OK;
}

/* The kinds of layer (MLP, norm, positions) and the embeddings. */
static llmsim_status read_layer_kinds(yd_map *root, model *m, diag *e)
{
    int iv;
    llmsim_status st;
    if ((st = yd_field_enum(root, "ffn_kind", YD_REQUIRED, model_ffn_names, MODEL_FFNS, &iv, e)))
        return st;
    m->ffn_kind = (model_ffn)iv;
    if ((st = yd_field_enum(root, "norm", YD_REQUIRED, model_norm_names, 2, &iv, e)))
        return st;
    m->norm = (model_norm)iv;
    if ((st = yd_field_enum(root, "position", YD_REQUIRED, model_pos_names, 2, &iv, e)))
        return st;
    m->position = (model_pos)iv;
    return yd_field_bool(root, "tied_embeddings", YD_REQUIRED, &m->tied_embeddings, e);
}

/* The optional keys: biases, dtype, norm epsilon and rotary base. */
static llmsim_status read_options(yd_map *root, model *m, diag *e)
{
    llmsim_status st;
    m->linear_bias = m->family == MODEL_FAMILY_OPT; /* OPT has biases, LLaMA has none */
    if ((st = yd_field_bool(root, "linear_bias", YD_OPTIONAL, &m->linear_bias, e)))
        return st;
    if ((st = yd_field_str(root, "source", YD_OPTIONAL, m->source, sizeof m->source, e)))
        return st;
    int iv = MODEL_DTYPE_FP16;
    if ((st = yd_field_enum(root, "dtype", YD_OPTIONAL, model_dtype_names, 3, &iv, e)))
        return st;
    m->dtype = (model_dtype)iv;
    if ((st = yd_field_double(root, "norm_eps", YD_OPTIONAL, 1e-12, 1.0, &m->norm_eps, e)))
        return st;
    return yd_field_double(root, "rope_theta", YD_OPTIONAL, 1.0, 1e12, &m->rope_theta, e);
}

/* rope_scaling: {type: linear, factor} or {type: llama3, factor,
 * low_freq_factor, high_freq_factor, original_max_context}. */
static llmsim_status read_rope_scaling(yd_map *map, void *out, diag *e)
{
    model_rope_scaling *r = out;
    int iv;
    llmsim_status st;
    if ((st = yd_field_enum(map, "type", YD_REQUIRED, model_rope_names, 3, &iv, e)))
        return st;
    r->kind = (model_rope_kind)iv;
    if (r->kind == MODEL_ROPE_NONE)
        return LLMSIM_OK;
    if ((st = yd_field_double(map, "factor", YD_REQUIRED, 1e-6, 1e6, &r->factor, e)) ||
        r->kind != MODEL_ROPE_LLAMA3)
        return st;
    long long orig = 0;
    if ((st = yd_field_double(map, "low_freq_factor", YD_REQUIRED, 1e-6, 1e6, &r->low_freq_factor, e)) ||
        (st = yd_field_double(map, "high_freq_factor", YD_REQUIRED, 1e-6, 1e6, &r->high_freq_factor, e)) ||
        (st = yd_field_int(map, "original_max_context", YD_REQUIRED, 1, (int64_t)1 << 40, &orig, e)))
        return st;
    r->original_max_context = orig;
    return LLMSIM_OK;
}

/* moe: {experts, top_k, expert_ffn_size, shared_ffn_size, shared_gate,
 * norm_topk, sparse_step, dense_layers: [i, ...]}. */
static llmsim_status read_moe(yd_map *map, void *out, diag *e)
{
    model_moe *x = out;
    long long v;
    llmsim_status st;
    const struct {
        const char *key;
        yd_need need;
        long long min;
        int64_t *dst;
    } ints[] = {
        {"experts", YD_REQUIRED, 1, &x->experts},          {"top_k", YD_REQUIRED, 1, &x->top_k},
        {"expert_ffn_size", YD_REQUIRED, 1, &x->expert_ffn}, {"shared_ffn_size", YD_OPTIONAL, 0, &x->shared_ffn},
        {"sparse_step", YD_OPTIONAL, 1, &x->sparse_step},
    };
    x->sparse_step = 1;
    x->norm_topk = true;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        v = -1;
        if ((st = yd_field_int(map, ints[i].key, ints[i].need, ints[i].min, (int64_t)1 << 40, &v, e)))
            return st;
        if (v >= 0)
            *ints[i].dst = v;
    }
    if ((st = yd_field_bool(map, "shared_gate", YD_OPTIONAL, &x->shared_gate, e)) ||
        (st = yd_field_bool(map, "norm_topk", YD_OPTIONAL, &x->norm_topk, e)))
        return st;
    yaml_node_t *seq;
    if ((st = yd_field_seq(map, "dense_layers", YD_OPTIONAL, &seq, e)) || !seq)
        return st;
    for (size_t i = 0; i < yd_seq_len(seq); i++) {
        if ((st = yd_node_int(map->doc, yd_seq_at(map->doc, seq, i), "moe.dense_layers", 0,
                              MODEL_MAX_LAYERS - 1, &v, e)))
            return st;
        x->dense_layers[v / 64] |= (uint64_t)1 << (v % 64);
    }
    return LLMSIM_OK;
}

/* The features of the families after LLaMA: q/k/v biases, q/k norms,
 * Gemma's norms and embeddings, the sliding window, RoPE scaling. */
static llmsim_status read_features(yd_map *root, model *m, diag *e)
{
    llmsim_status st;
    long long w = 0;
    if ((st = yd_field_bool(root, "qkv_bias", YD_OPTIONAL, &m->qkv_bias, e)) ||
        (st = yd_field_bool(root, "qk_norm", YD_OPTIONAL, &m->qk_norm, e)) ||
        (st = yd_field_bool(root, "norm_plus_one", YD_OPTIONAL, &m->norm_plus_one, e)) ||
        (st = yd_field_bool(root, "scale_embeddings", YD_OPTIONAL, &m->scale_embeddings, e)) ||
        (st = yd_field_int(root, "sliding_window", YD_OPTIONAL, 1, (int64_t)1 << 40, &w, e)))
        return st;
    m->sliding_window = w;
    if ((st = yd_field_read(root, "moe", YD_OPTIONAL, read_moe, &m->moe, e)))
        return st;
    return yd_field_read(root, "rope_scaling", YD_OPTIONAL, read_rope_scaling, &m->rope_scaling, e);
}

/* kv_heads and head_dim when not given, then the cross-field rules, each
 * error at the line of the key it concerns. */
static llmsim_status derive_and_check(yd_map *root, model *m, bool have_kv, bool have_hd, diag *e)
{
    if (!have_kv)
        m->num_kv_heads = m->num_heads;
    if (!have_hd) {
        if (m->hidden_size % m->num_heads != 0)
            return yd_key_error(root, "hidden_size", e,
                                "hidden_size (%lld) is not a multiple of heads (%lld); give head_dim",
                                (long long)m->hidden_size, (long long)m->num_heads);
        m->head_dim = m->hidden_size / m->num_heads;
    }
    return yd_rules_check_at(model_rule_broken, m, root, e);
}

static llmsim_status model_read(yd_map *root, void *out, diag *e)
{
    model *m = out;
    bool have_kv = false, have_hd = false;
    m->norm_eps = 1e-5;
    m->rope_theta = 10000.0;
    m->tied_embeddings = false;
    llmsim_status st;
    if ((st = read_sizes(root, m, &have_kv, &have_hd, e)) || (st = read_layer_kinds(root, m, e)) ||
        (st = read_options(root, m, e)) || (st = read_features(root, m, e)))
        return st;
    return derive_and_check(root, m, have_kv, have_hd, e);
}

static llmsim_status model_load_yaml_doc(const char *path, const char *text, model *m, diag *e)
{
    memset(m, 0, sizeof *m);
    return yd_read(path, text, "the model file", "model", 1, model_read, m, e);
}

/* ---- canonical form (also a valid model YAML file) */

void model_canonical(const model *m, strbuf *out)
{
    strbuf_printf(out, "llmsim: model/1\nname: %s\nfamily: %s\nlayers: %lld\nhidden_size: %lld\n"
                       "heads: %lld\nkv_heads: %lld\nhead_dim: %lld\nffn_size: %lld\nffn_kind: %s\n"
                       "vocab_size: %lld\nmax_context: %lld\nnorm: %s\nposition: %s\n"
                       "tied_embeddings: %s\nlinear_bias: %s\ndtype: %s\nnorm_eps: %.17g\n"
                       "rope_theta: %.17g\n",
                  m->name, model_family_names[m->family], (long long)m->num_layers,
                  (long long)m->hidden_size, (long long)m->num_heads, (long long)m->num_kv_heads,
                  (long long)m->head_dim, (long long)m->ffn_size, model_ffn_names[m->ffn_kind],
                  (long long)m->vocab_size, (long long)m->max_context, model_norm_names[m->norm],
                  model_pos_names[m->position], m->tied_embeddings ? "true" : "false",
                  m->linear_bias ? "true" : "false", model_dtype_names[m->dtype], m->norm_eps,
                  m->rope_theta);
    /* the later families' features only where set: the text (and the hash)
     * of a model without them is what it was before they existed */
    const struct {
        const char *key;
        bool on;
    } flags[] = {{"qkv_bias", m->qkv_bias},
                 {"qk_norm", m->qk_norm},
                 {"norm_plus_one", m->norm_plus_one},
                 {"scale_embeddings", m->scale_embeddings}};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (flags[i].on)
            strbuf_printf(out, "%s: true\n", flags[i].key);
    if (m->sliding_window > 0)
        strbuf_printf(out, "sliding_window: %lld\n", (long long)m->sliding_window);
    const model_rope_scaling *r = &m->rope_scaling;
    if (r->kind == MODEL_ROPE_LINEAR)
        strbuf_printf(out, "rope_scaling: {type: linear, factor: %.17g}\n", r->factor);
    else if (r->kind == MODEL_ROPE_LLAMA3)
        strbuf_printf(out, "rope_scaling: {type: llama3, factor: %.17g, low_freq_factor: %.17g, "
                           "high_freq_factor: %.17g, original_max_context: %lld}\n",
                      r->factor, r->low_freq_factor, r->high_freq_factor,
                      (long long)r->original_max_context);
    const model_moe *x = &m->moe;
    if (x->experts > 0) {
        strbuf_printf(out, "moe: {experts: %lld, top_k: %lld, expert_ffn_size: %lld, "
                           "shared_ffn_size: %lld, shared_gate: %s, norm_topk: %s, sparse_step: %lld, "
                           "dense_layers: [",
                      (long long)x->experts, (long long)x->top_k, (long long)x->expert_ffn,
                      (long long)x->shared_ffn, x->shared_gate ? "true" : "false",
                      x->norm_topk ? "true" : "false", (long long)x->sparse_step);
        for (int64_t i = 0, n = 0; i < MODEL_MAX_LAYERS; i++)
            if (x->dense_layers[i / 64] >> (i % 64) & 1)
                strbuf_printf(out, "%s%lld", n++ ? ", " : "", (long long)i);
        strbuf_printf(out, "]}\n");
    }
}

llmsim_status model_load_yaml(const char *path, model *m, diag *e)
{
    return model_load_yaml_doc(path, NULL, m, e);
}

llmsim_status model_load_yaml_text(const char *name, const char *text, model *m, diag *e)
{
    return model_load_yaml_doc(name, text, m, e);
}
