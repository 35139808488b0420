/*
 * model — parameter counts, tensors, validation and the YAML loader. See
 * model.h; model_load.c resolves a spec, model_hf.c imports config.json.
 */
#include "models/model.h"

#include <stdio.h>
#include <string.h>

#include "common/yamldoc.h"

const char *const model_family_names[3] = {"opt", "llama", "mistral"};
const char *const model_ffn_names[3] = {"relu", "gelu", "swiglu"};
const char *const model_norm_names[2] = {"layernorm", "rmsnorm"};
const char *const model_pos_names[2] = {"learned", "rotary"};
const char *const model_dtype_names[3] = {"fp16", "bf16", "fp32"};

const char *const model_shipped_names[] = {
    "opt-125m",    "opt-1.3b",     "opt-6.7b",     "opt-13b",      "opt-30b",
    "opt-66b",     "opt-175b",     "llama-2-7b",   "llama-2-13b",  "llama-2-70b",
    "llama-3.1-8b", "llama-3.1-70b", "mistral-7b", "tinyllama-1.1b", NULL,
};

int model_dtype_bytes(model_dtype dt) { return dt == MODEL_DTYPE_FP32 ? 4 : 2; }

/* ---- counts */

int64_t model_kv_dim(const model *m) { return m->num_kv_heads * m->head_dim; }
int64_t model_q_dim(const model *m) { return m->num_heads * m->head_dim; }

void model_layer_params_get(const model *m, model_layer_params *p)
{
    int64_t h = m->hidden_size, q = model_q_dim(m), kv = model_kv_dim(m), f = m->ffn_size;
    memset(p, 0, sizeof *p);
    p->attn_weights = h * q + 2 * h * kv + q * h;
    bool swiglu = m->ffn_kind == MODEL_FFN_SWIGLU;
    p->mlp_weights = (swiglu ? 3 : 2) * h * f;
    if (m->linear_bias) {
        p->attn_bias = q + 2 * kv + h;
        p->mlp_bias = (swiglu ? 2 * f : f) + h;
    }
    p->norm = (m->norm == MODEL_NORM_LAYERNORM ? 2 : 1) * 2 * h;
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

int64_t model_param_count(const model *m)
{
    return model_embed_param_count(m) + m->num_layers * model_layer_param_count(m) +
           model_lm_head_param_count(m);
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
    if (m->ffn_kind == MODEL_FFN_SWIGLU) {
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
        if (m->ffn_kind == MODEL_FFN_SWIGLU) {
            tensor(&out[n++], "mlp.gate_proj.bias", 1, f, false);
            tensor(&out[n++], "mlp.up_proj.bias", 1, f, false);
            tensor(&out[n++], "mlp.down_proj.bias", 1, h, false);
        } else {
            tensor(&out[n++], opt ? "fc1.bias" : "mlp.fc1.bias", 1, f, false);
            tensor(&out[n++], opt ? "fc2.bias" : "mlp.fc2.bias", 1, h, false);
        }
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
    /* Keep every product we form well inside int64. */
    const int64_t lim = (int64_t)1 << 24;
    struct {
        const char *key;
        int64_t v, max;
    } limits[] = {
        {"layers", m->num_layers, 4096},        {"hidden_size", m->hidden_size, lim},
        {"ffn_size", m->ffn_size, lim * 4},     {"vocab_size", m->vocab_size, lim * 4},
        {"max_context", m->max_context, lim * 4}, {"heads", m->num_heads, 4096},
        {"head_dim", m->head_dim, 4096},
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
        (st = yd_field_enum(root, "family", YD_REQUIRED, model_family_names, 3, &iv, e)))
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
    if ((st = yd_field_enum(root, "ffn_kind", YD_REQUIRED, model_ffn_names, 3, &iv, e)))
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
    int iv = MODEL_DTYPE_FP16;
    if ((st = yd_field_enum(root, "dtype", YD_OPTIONAL, model_dtype_names, 3, &iv, e)))
        return st;
    m->dtype = (model_dtype)iv;
    if ((st = yd_field_double(root, "norm_eps", YD_OPTIONAL, 1e-12, 1.0, &m->norm_eps, e)))
        return st;
    return yd_field_double(root, "rope_theta", YD_OPTIONAL, 1.0, 1e12, &m->rope_theta, e);
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
        (st = read_options(root, m, e)))
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
}

llmsim_status model_load_yaml(const char *path, model *m, diag *e)
{
    return model_load_yaml_doc(path, NULL, m, e);
}

llmsim_status model_load_yaml_text(const char *name, const char *text, model *m, diag *e)
{
    return model_load_yaml_doc(name, text, m, e);
}
