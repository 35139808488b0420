/*
 * model_hf — import a Hugging Face config.json (OPT, LLaMA 2 and 3,
 * Mistral, Qwen2/2.5, Qwen3, Gemma and Phi-3 families) into a model. Keys
 * are those of transformers' OPTConfig, LlamaConfig, MistralConfig,
 * Qwen2Config, Qwen3Config, GemmaConfig and Phi3Config; missing optional
 * keys take those classes' defaults. JSON parsing is cJSON's.
 *
 * Nothing is taken on trust: a key llmsim reads must have its type and a
 * sensible value (a string where a number belongs is an error, not the
 * default), and a key that changes the math and that llmsim does not
 * implement (RoPE scaling other than linear and llama3, a per-layer sliding
 * window, logit soft-capping, biases on o or the MLP, partial rotary, ...)
 * is refused naming the key, unless its value is the neutral one. Keys
 * llmsim does not know at all are metadata to it (architectures, token ids,
 * dropout, ...).
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"

static char *read_all(const char *path, size_t *len, diag *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_set(e, LLMSIM_EINPUT, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    const size_t max = 4u << 20;
    char *buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        diag_set(e, LLMSIM_EFAIL, "out of memory");
        return NULL;
    }
    size_t n = fread(buf, 1, max + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > max) {
        free(buf);
        diag_set(e, LLMSIM_EINPUT, "%s: %s", path,
                 err ? "cannot read" : "larger than 4 MiB; this is not a config.json");
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* 1-based line and column of byte offset `off` in text. */
static void position(const char *text, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

typedef struct hf_ctx {
    const char *path;
    const char *text; /* the file, for positions: cJSON keeps none */
    cJSON *root;
    diag *e;
} hf_ctx;

/* Where "key" appears as an object key in the text (the nth time, from 1). */
static bool key_position(const char *text, const char *key, int nth, size_t *line, size_t *col)
{
    char needle[128];
    snprintf(needle, sizeof needle, "\"%s\"", key);
    const char *p = text;
    for (int i = 0; i < nth; i++) {
        p = strstr(i ? p + 1 : p, needle);
        if (!p)
            return false;
    }
    position(text, (size_t)(p - text), line, col);
    return true;
}

static llmsim_status key_error(hf_ctx *c, const char *key, const char *what)
{
    size_t line, col;
    if (key_position(c->text, key, 1, &line, &col))
        return diag_at(c->e, LLMSIM_EINPUT, c->path, line, col, "\"%s\" %s", key, what);
    return diag_set(c->e, LLMSIM_EINPUT, "%s: \"%s\" %s", c->path, key, what);
}

/* Integer key: required, or default when absent. */
static llmsim_status get_int(hf_ctx *c, const char *key, bool required, int64_t dflt, int64_t *out)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!it || cJSON_IsNull(it)) {
        if (required)
            return diag_set(c->e, LLMSIM_EINPUT, "%s: missing required key \"%s\"", c->path, key);
        *out = dflt;
        return LLMSIM_OK;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 1 ||
        it->valuedouble > 1e12)
        return key_error(c, key, "must be a positive whole number");
    *out = (int64_t)it->valuedouble;
    return LLMSIM_OK;
}

/* A number > 0 (finite), or dflt when absent or null. */
static llmsim_status get_num(hf_ctx *c, const char *key, double dflt, double *out)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!it || cJSON_IsNull(it)) {
        *out = dflt;
        return LLMSIM_OK;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || !(it->valuedouble > 0))
        return key_error(c, key, "must be a number > 0");
    *out = it->valuedouble;
    return LLMSIM_OK;
}

/* A string, or NULL when absent or null. */
static llmsim_status get_str(hf_ctx *c, const char *key, const char **out)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(c->root, key);
    *out = NULL;
    if (!it || cJSON_IsNull(it))
        return LLMSIM_OK;
    if (!cJSON_IsString(it))
        return key_error(c, key, "must be a string");
    *out = it->valuestring;
    return LLMSIM_OK;
}

/* true or false, or dflt when absent or null. */
static llmsim_status get_bool(hf_ctx *c, const char *key, bool dflt, bool *out)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(c->root, key);
    *out = dflt;
    if (!it || cJSON_IsNull(it))
        return LLMSIM_OK;
    if (!cJSON_IsBool(it))
        return key_error(c, key, "must be true or false");
    *out = cJSON_IsTrue(it);
    return LLMSIM_OK;
}

/* ---- keys that change the math */

/* A key llmsim does not implement, accepted only at its neutral value. */
typedef struct hf_feature {
    const char *key;
    bool (*neutral)(const cJSON *v, const model *m);
    const char *what; /* what it does, for the message */
} hf_feature;

static bool is_null(const cJSON *v, const model *m)
{
    (void)m;
    return cJSON_IsNull(v);
}

static bool is_false(const cJSON *v, const model *m)
{
    (void)m;
    return cJSON_IsNull(v) || cJSON_IsFalse(v);
}

static bool is_one(const cJSON *v, const model *m)
{
    (void)m;
    return cJSON_IsNull(v) || (cJSON_IsNumber(v) && v->valuedouble == 1.0);
}

/* A window at least as long as the context attends over the whole of it. */
static bool covers_context(const cJSON *v, const model *m)
{
    return cJSON_IsNull(v) || (cJSON_IsNumber(v) && v->valuedouble >= (double)m->max_context);
}

/* Keys of the rotary families that llmsim implements nowhere. Each family
 * reads what it implements (rope_scaling, sliding_window, its biases and
 * norms) before these are checked. */
static const hf_feature rotary_features[] = {
    {"mlp_bias", is_false, "adds biases to the MLP"},
    {"partial_rotary_factor", is_one, "applies rotary embeddings to part of each head"},
    {"attn_logit_softcapping", is_null, "soft-caps the attention scores"},
    {"final_logit_softcapping", is_null, "soft-caps the logits"},
    {"qk_norm", is_false, "normalizes q and k per head"},
    {"use_qk_norm", is_false, "normalizes q and k per head"},
    {"query_pre_attn_scalar", is_null, "scales the queries by another factor than 1/sqrt(head_dim)"},
    {"rope_local_base_freq", is_null, "uses another rotary base on local layers"},
    {"layer_types", is_null, "mixes layers of different attention (sliding and full)"},
    {"residual_multiplier", is_one, "scales the residual branches"},
    {"embedding_multiplier", is_one, "scales the embeddings"},
    {"logits_scaling", is_one, "scales the logits"},
    {NULL, NULL, NULL},
};

/* attention_bias: q, k, v and o biases (LLaMA, Mistral, Qwen3, Gemma,
 * Phi-3 configs may have the key; all of those checkpoints set it false). */
static const hf_feature attention_bias_feature[] = {
    {"attention_bias", is_false, "adds biases to the q, k, v and o projections"},
    {NULL, NULL, NULL},
};

/* use_sliding_window (Qwen2, Qwen3): a window on the layers from
 * max_window_layers on, a different attention per layer. */
static const hf_feature qwen_window_feature[] = {
    {"use_sliding_window", is_false, "limits attention to a sliding window on some layers only"},
    {NULL, NULL, NULL},
};

static const hf_feature opt_features[] = {
    {"layer_norm_elementwise_affine", NULL, "drops the LayerNorms' weights and biases"},
    {"_remove_final_layer_norm", is_false, "removes the final LayerNorm"},
    {NULL, NULL, NULL},
};

static bool is_true(const cJSON *v, const model *m)
{
    (void)m;
    return cJSON_IsNull(v) || cJSON_IsTrue(v);
}

/* Every key of the table present with a value other than its neutral one
 * is refused. */
static llmsim_status check_features(hf_ctx *c, const hf_feature *f, const model *m)
{
    for (; f->key; f++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, f->key);
        bool (*neutral)(const cJSON *, const model *) = f->neutral ? f->neutral : is_true;
        if (!v || neutral(v, m))
            continue;
        char *shown = cJSON_PrintUnformatted(v);
        char what[512];
        snprintf(what, sizeof what, "is %.120s%s: it %s, which llmsim does not implement; it would "
                 "compute something else than the model, so the config is refused",
                 shown ? shown : "set", shown && strlen(shown) > 120 ? "..." : "", f->what);
        free(shown);
        return key_error(c, f->key, what);
    }
    return LLMSIM_OK;
}

static void name_from_path(const char *path, char *out, size_t len)
{
    /* ".../facebook/opt-30b/config.json" -> "opt-30b" */
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    char *slash = strrchr(tmp, '/');
    if (slash && strcmp(slash + 1, "config.json") == 0) {
        *slash = '\0';
        slash = strrchr(tmp, '/');
        snprintf(out, len, "%s", slash ? slash + 1 : tmp);
        return;
    }
    const char *base = slash ? slash + 1 : tmp;
    snprintf(out, len, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot)
        *dot = '\0';
}

/* text [len] (NUL-terminated) parsed as JSON into *root (owned). */
static llmsim_status parse_text(const char *path, const char *text, size_t len, cJSON **root,
                                diag *e)
{
    if (memchr(text, '\0', len))
        return diag_set(e, LLMSIM_EINPUT, "%s: contains NUL bytes; this is not a config.json", path);
    const char *err_at = NULL;
    *root = cJSON_ParseWithOpts(text, &err_at, 1);
    if (!*root) {
        size_t line, col;
        position(text, err_at ? (size_t)(err_at - text) : 0, &line, &col);
        return diag_at(e, LLMSIM_EINPUT, path, line, col, "invalid JSON in config.json");
    }
    return LLMSIM_OK;
}

/* The root is an object and gives no key twice (which is ambiguous: cJSON
 * would take the first). */
static llmsim_status check_keys(hf_ctx *c)
{
    if (!cJSON_IsObject(c->root))
        return diag_set(c->e, LLMSIM_EINPUT, "%s: a config.json must be a JSON object", c->path);
    for (cJSON *a = c->root->child; a; a = a->next) {
        int seen = 1;
        for (cJSON *b = c->root->child; b != a; b = b->next)
            seen += strcmp(a->string, b->string) == 0;
        if (seen > 1) {
            size_t line = 0, col = 0;
            key_position(c->text, a->string, seen, &line, &col);
            return diag_at(c->e, LLMSIM_EINPUT, c->path, line, col,
                           "\"%s\" is given twice; keep one", a->string);
        }
    }
    return LLMSIM_OK;
}

/* The name (from the path), the defaults and the dtype of any family. */
static llmsim_status read_common(hf_ctx *c, model *m)
{
    name_from_path(c->path, m->name, sizeof m->name);
    m->norm_eps = 1e-5;
    m->rope_theta = 10000.0;
    const char *dt, *key = "torch_dtype";
    llmsim_status st = get_str(c, key, &dt);
    if (!st && !dt)
        st = get_str(c, key = "dtype", &dt);
    if (st)
        return st;
    m->dtype = MODEL_DTYPE_FP16;
    if (!dt || strcmp(dt, "float16") == 0)
        return LLMSIM_OK;
    if (strcmp(dt, "bfloat16") == 0)
        m->dtype = MODEL_DTYPE_BF16;
    else if (strcmp(dt, "float32") == 0)
        m->dtype = MODEL_DTYPE_FP32;
    else
        return key_error(c, key, "must be \"float16\", \"bfloat16\" or \"float32\"");
    return LLMSIM_OK;
}

/* OPTConfig's keys; refuses the variants llmsim does not model. */
static llmsim_status import_opt(hf_ctx *c, model *m)
{
    llmsim_status st;
    m->family = MODEL_FAMILY_OPT;
    if ((st = get_int(c, "hidden_size", true, 0, &m->hidden_size)) ||
        (st = get_int(c, "num_attention_heads", true, 0, &m->num_heads)) ||
        (st = get_int(c, "num_hidden_layers", true, 0, &m->num_layers)) ||
        (st = get_int(c, "ffn_dim", true, 0, &m->ffn_size)) ||
        (st = get_int(c, "vocab_size", false, 50272, &m->vocab_size)) ||
        (st = get_int(c, "max_position_embeddings", false, 2048, &m->max_context)))
        return st;
    /* initialized for the static analyzer: it does not follow get_int into
     * key_error here, so it misses that get_int fails whenever it skips *out */
    int64_t proj = m->hidden_size;
    if ((st = get_int(c, "word_embed_proj_dim", false, m->hidden_size, &proj)))
        return st;
    if (proj != m->hidden_size)
        return diag_set(c->e, LLMSIM_EINPUT, "%s: word_embed_proj_dim != hidden_size (OPT-350M's "
                        "projected embeddings) is not supported", c->path);
    bool pre_ln, tied, bias;
    const char *act;
    if ((st = get_bool(c, "do_layer_norm_before", true, &pre_ln)) ||
        (st = get_str(c, "activation_function", &act)) ||
        (st = get_bool(c, "tie_word_embeddings", true, &tied)) ||
        (st = get_bool(c, "enable_bias", true, &bias)) || (st = check_features(c, opt_features, m)))
        return st;
    if (!pre_ln)
        return diag_set(c->e, LLMSIM_EINPUT, "%s: post-LayerNorm OPT (do_layer_norm_before=false) "
                        "is not supported", c->path);
    if (act && strcmp(act, "relu") != 0 && strcmp(act, "gelu") != 0)
        return key_error(c, "activation_function", "is not \"relu\" or \"gelu\" (the exact, "
                         "erf GELU): llmsim does not implement it");
    m->ffn_kind = (act && strcmp(act, "gelu") == 0) ? MODEL_FFN_GELU : MODEL_FFN_RELU;
    if (m->hidden_size % m->num_heads != 0)
        return diag_set(c->e, LLMSIM_EINPUT, "%s: hidden_size is not a multiple of "
                        "num_attention_heads", c->path);
    m->num_kv_heads = m->num_heads;
    m->head_dim = m->hidden_size / m->num_heads;
    m->norm = MODEL_NORM_LAYERNORM;
    m->position = MODEL_POS_LEARNED;
    m->tied_embeddings = tied;
    m->linear_bias = bias;
    return LLMSIM_OK;
}

/* The defaults of a rotary family's config class (transformers'
 * LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, GemmaConfig,
 * Phi3Config) for the keys a config.json may leave out. */
typedef struct hf_family {
    const char *type;
    model_family family;
    int64_t vocab, max_pos;
    int64_t head_dim;  /* 0: hidden_size / num_attention_heads */
    double norm_eps;
    bool tied;
} hf_family;

static const hf_family rotary_families[] = {
    {"llama", MODEL_FAMILY_LLAMA, 32000, 2048, 0, 1e-6, false},
    {"mistral", MODEL_FAMILY_MISTRAL, 32000, 131072, 0, 1e-6, false},
    {"qwen2", MODEL_FAMILY_QWEN2, 151936, 32768, 0, 1e-6, false},
    {"qwen3", MODEL_FAMILY_QWEN3, 151936, 32768, 128, 1e-6, false},
    {"gemma", MODEL_FAMILY_GEMMA, 256000, 8192, 256, 1e-6, true},
    {"phi3", MODEL_FAMILY_PHI3, 32064, 4096, 0, 1e-5, false},
    {"mixtral", MODEL_FAMILY_MIXTRAL, 32000, 131072, 0, 1e-5, false},
    {"qwen2_moe", MODEL_FAMILY_QWEN2_MOE, 151936, 32768, 0, 1e-6, false},
    {"qwen3_moe", MODEL_FAMILY_QWEN3_MOE, 151936, 32768, 0, 1e-6, false},
    {NULL, MODEL_FAMILY_LLAMA, 0, 0, 0, 0, false},
};

/* A number of an object (rope_scaling's), > 0; `key` names it in messages. */
static llmsim_status sub_num(hf_ctx *c, const cJSON *obj, const char *outer, const char *key,
                             bool required, double dflt, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = dflt;
    if (!it || cJSON_IsNull(it)) {
        if (!required)
            return LLMSIM_OK;
        char what[160];
        snprintf(what, sizeof what, "needs \"%s\"", key);
        return key_error(c, outer, what);
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || !(it->valuedouble > 0)) {
        char what[160];
        snprintf(what, sizeof what, "\"%s\" must be a number > 0", key);
        return key_error(c, outer, what);
    }
    *out = it->valuedouble;
    return LLMSIM_OK;
}

/* rope_scaling (or transformers 5's rope_parameters, which also carries
 * rope_theta): none, linear or llama3; any other rope_type is refused. */
static llmsim_status read_rope(hf_ctx *c, model *m)
{
    const char *key = "rope_parameters";
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!r || cJSON_IsNull(r))
        r = cJSON_GetObjectItemCaseSensitive(c->root, key = "rope_scaling");
    if (!r || cJSON_IsNull(r))
        return LLMSIM_OK;
    if (!cJSON_IsObject(r))
        return key_error(c, key, "must be an object (rope_type and its parameters) or null");
    llmsim_status st;
    if (strcmp(key, "rope_parameters") == 0 &&
        (st = sub_num(c, r, key, "rope_theta", false, m->rope_theta, &m->rope_theta)))
        return st;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "rope_type");
    if (!t)
        t = cJSON_GetObjectItemCaseSensitive(r, "type"); /* the older spelling */
    if (!t || !cJSON_IsString(t))
        return key_error(c, key, "needs \"rope_type\" (a string)");
    const char *type = t->valuestring;
    model_rope_scaling *rs = &m->rope_scaling;
    if (strcmp(type, "default") == 0)
        return LLMSIM_OK;
    if (strcmp(type, "linear") == 0) {
        rs->kind = MODEL_ROPE_LINEAR;
        return sub_num(c, r, key, "factor", true, 1, &rs->factor);
    }
    if (strcmp(type, "llama3") == 0) {
        double orig;
        rs->kind = MODEL_ROPE_LLAMA3;
        if ((st = sub_num(c, r, key, "factor", true, 1, &rs->factor)) ||
            (st = sub_num(c, r, key, "low_freq_factor", true, 1, &rs->low_freq_factor)) ||
            (st = sub_num(c, r, key, "high_freq_factor", true, 4, &rs->high_freq_factor)) ||
            (st = sub_num(c, r, key, "original_max_position_embeddings", true, 8192, &orig)))
            return st;
        if (orig != floor(orig) || orig > 1e12)
            return key_error(c, key, "\"original_max_position_embeddings\" must be a whole number");
        rs->original_max_context = (int64_t)orig;
        if (!(rs->high_freq_factor > rs->low_freq_factor))
            return key_error(c, key, "\"high_freq_factor\" must exceed \"low_freq_factor\"");
        return LLMSIM_OK;
    }
    char what[320];
    snprintf(what, sizeof what, "has rope_type \"%.40s\": llmsim implements \"default\", \"linear\" "
             "and \"llama3\" (not dynamic, yarn, longrope or su); it would compute other "
             "positions than the model, so the config is refused", type);
    return key_error(c, key, what);
}

/* The sliding window: a key that is a whole number (or null: none); a
 * window at least as long as the context is none. dflt when absent. */
static llmsim_status read_window(hf_ctx *c, int64_t dflt, model *m)
{
    int64_t w = 0;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(c->root, "sliding_window");
    if (it && cJSON_IsNull(it))
        w = 0;
    else if (!it)
        w = dflt;
    else if (get_int(c, "sliding_window", false, 0, &w))
        return c->e->status;
    m->sliding_window = w > 0 && w < m->max_context ? w : 0;
    return LLMSIM_OK;
}

/* Gemma's MLP activation: hidden_activation when given, else hidden_act,
 * where "gelu" means the tanh approximation: Gemma was trained with it, and
 * transformers' GemmaMLP takes gelu_pytorch_tanh for a config that names
 * hidden_act "gelu" without hidden_activation. */
static llmsim_status gemma_activation(hf_ctx *c, model *m)
{
    const char *act, *key = "hidden_activation";
    llmsim_status st = get_str(c, key, &act);
    if (!st && !act)
        st = get_str(c, key = "hidden_act", &act);
    if (st)
        return st;
    if (act && strcmp(act, "gelu_pytorch_tanh") != 0 && strcmp(act, "gelu_new") != 0 &&
        !(strcmp(act, "gelu") == 0 && strcmp(key, "hidden_act") == 0))
        return key_error(c, key, "is not \"gelu_pytorch_tanh\": llmsim implements Gemma's GeGLU "
                         "with the tanh approximation of GELU only");
    m->ffn_kind = MODEL_FFN_GEGLU_TANH;
    return LLMSIM_OK;
}

/* mlp_only_layers: a list of layer indices, the dense layers of a Qwen MoE. */
static llmsim_status read_dense_layers(hf_ctx *c, model *m)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, "mlp_only_layers");
    if (!v || cJSON_IsNull(v))
        return LLMSIM_OK;
    if (!cJSON_IsArray(v))
        return key_error(c, "mlp_only_layers", "must be a list of layer indices");
    for (const cJSON *it = v->child; it; it = it->next) {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
            it->valuedouble >= (double)m->num_layers)
            return key_error(c, "mlp_only_layers", "must hold layer indices, 0 to num_hidden_layers - 1");
        int64_t i = (int64_t)it->valuedouble;
        m->moe.dense_layers[i / 64] |= (uint64_t)1 << (i % 64);
    }
    return LLMSIM_OK;
}

/* The experts of an MoE family (MixtralConfig's, Qwen2MoeConfig's and
 * Qwen3MoeConfig's keys and defaults). */
static llmsim_status read_moe(hf_ctx *c, model *m)
{
    model_moe *x = &m->moe;
    llmsim_status st;
    x->sparse_step = 1;
    if (m->family == MODEL_FAMILY_MIXTRAL) { /* every layer; the top 2 renormalized */
        x->norm_topk = true;
        x->expert_ffn = m->ffn_size;
        if ((st = get_int(c, "num_local_experts", false, 8, &x->experts)) ||
            (st = get_int(c, "num_experts_per_tok", false, 2, &x->top_k)))
            return st;
        return LLMSIM_OK;
    }
    const bool q2 = m->family == MODEL_FAMILY_QWEN2_MOE;
    if ((st = get_int(c, "num_experts", false, q2 ? 60 : 128, &x->experts)) ||
        (st = get_int(c, "num_experts_per_tok", false, q2 ? 4 : 8, &x->top_k)) ||
        (st = get_int(c, "moe_intermediate_size", false, q2 ? 1408 : 768, &x->expert_ffn)) ||
        (st = get_int(c, "decoder_sparse_step", false, 1, &x->sparse_step)) ||
        (st = get_bool(c, "norm_topk_prob", false, &x->norm_topk)) || (st = read_dense_layers(c, m)))
        return st;
    if (q2) { /* Qwen2-MoE's shared expert, sigmoid-gated */
        x->shared_gate = true;
        if ((st = get_int(c, "shared_expert_intermediate_size", false, 5632, &x->shared_ffn)))
            return st;
    }
    return LLMSIM_OK;
}

/* What a family adds to the LLaMA layer (the keys of its own). */
static llmsim_status family_features(hf_ctx *c, model *m)
{
    llmsim_status st = LLMSIM_OK;
    const bool moe = m->family == MODEL_FAMILY_MIXTRAL || m->family == MODEL_FAMILY_QWEN2_MOE ||
                     m->family == MODEL_FAMILY_QWEN3_MOE;
    if (moe && (st = read_moe(c, m)))
        return st;
    switch (m->family) {
    case MODEL_FAMILY_QWEN2_MOE: /* the attention of Qwen2 and Qwen3 */
    case MODEL_FAMILY_QWEN2: /* q, k, v biases in every Qwen2 checkpoint; no key says so */
        m->qkv_bias = true;
        return check_features(c, qwen_window_feature, m);
    case MODEL_FAMILY_QWEN3_MOE:
    case MODEL_FAMILY_QWEN3:
        m->qk_norm = true;
        if ((st = check_features(c, qwen_window_feature, m)))
            return st;
        return check_features(c, attention_bias_feature, m);
    case MODEL_FAMILY_GEMMA:
        m->norm_plus_one = true;
        m->scale_embeddings = true;
        if ((st = gemma_activation(c, m)))
            return st;
        return check_features(c, attention_bias_feature, m);
    case MODEL_FAMILY_MISTRAL: /* MistralConfig's window is 4096 tokens when the key is absent */
        if ((st = read_window(c, 4096, m)))
            return st;
        return check_features(c, attention_bias_feature, m);
    case MODEL_FAMILY_PHI3:
        if ((st = read_window(c, 0, m)))
            return st;
        return check_features(c, attention_bias_feature, m);
    case MODEL_FAMILY_MIXTRAL: /* MixtralConfig: no window unless the key gives one */
        if ((st = read_window(c, 0, m)))
            return st;
        return check_features(c, attention_bias_feature, m);
    default: {
        /* LLaMA: a window in a llama config is not LlamaConfig's; refused */
        static const hf_feature window[] = {
            {"sliding_window", covers_context, "limits attention to a window shorter than the "
             "context, which a llama config does not have (use model_type mistral)"},
            {"use_sliding_window", is_false, "limits attention to a sliding window"},
            {NULL, NULL, NULL}};
        if ((st = check_features(c, window, m)))
            return st;
        return check_features(c, attention_bias_feature, m);
    }
    }
}

/* The keys of the rotary families (LlamaConfig's set, and what each of the
 * others adds); f is the family's defaults. */
static llmsim_status import_rotary(hf_ctx *c, const hf_family *f, model *m)
{
    llmsim_status st;
    m->family = f->family;
    if ((st = get_int(c, "hidden_size", true, 0, &m->hidden_size)) ||
        (st = get_int(c, "num_attention_heads", true, 0, &m->num_heads)) ||
        (st = get_int(c, "num_hidden_layers", true, 0, &m->num_layers)) ||
        (st = get_int(c, "intermediate_size", true, 0, &m->ffn_size)) ||
        (st = get_int(c, "vocab_size", false, f->vocab, &m->vocab_size)) ||
        (st = get_int(c, "max_position_embeddings", false, f->max_pos, &m->max_context)) ||
        (st = get_int(c, "num_key_value_heads", false, m->num_heads, &m->num_kv_heads)))
        return st;
    bool have_hd = cJSON_GetObjectItemCaseSensitive(c->root, "head_dim") != NULL;
    if (!f->head_dim && m->hidden_size % m->num_heads != 0 && !have_hd)
        return diag_set(c->e, LLMSIM_EINPUT, "%s: hidden_size is not a multiple of "
                        "num_attention_heads and no head_dim is given", c->path);
    if ((st = get_int(c, "head_dim", false, f->head_dim ? f->head_dim : m->hidden_size / m->num_heads,
                      &m->head_dim)))
        return st;
    m->ffn_kind = MODEL_FFN_SWIGLU;
    if (m->family != MODEL_FAMILY_GEMMA) {
        const char *act;
        if ((st = get_str(c, "hidden_act", &act)))
            return st;
        if (act && strcmp(act, "silu") != 0)
            return diag_set(c->e, LLMSIM_EINPUT, "%s: hidden_act \"%s\" is not supported (%s "
                            "models use silu)", c->path, act, f->type);
    }
    m->norm = MODEL_NORM_RMSNORM;
    m->position = MODEL_POS_ROTARY;
    m->linear_bias = false;
    bool tied;
    if ((st = get_bool(c, "tie_word_embeddings", f->tied, &tied)) ||
        (st = get_num(c, "rms_norm_eps", f->norm_eps, &m->norm_eps)) ||
        (st = get_num(c, "rope_theta", 10000.0, &m->rope_theta)) || (st = read_rope(c, m)) ||
        (st = family_features(c, m)) || (st = check_features(c, rotary_features, m)))
        return st;
    m->tied_embeddings = tied;
    return LLMSIM_OK;
}

/* The model types llmsim imports, for messages. */
#define HF_TYPES "opt, llama, mistral, qwen2, qwen3, gemma, phi3, mixtral, qwen2_moe and qwen3_moe"

/* The model of a checked root: its family's keys, then model_validate. */
static llmsim_status import_model(hf_ctx *c, model *m)
{
    const char *type;
    llmsim_status st = get_str(c, "model_type", &type);
    if (st)
        return st;
    if (!type)
        return diag_set(c->e, LLMSIM_EINPUT, "%s: missing \"model_type\"; llmsim imports %s configs",
                        c->path, HF_TYPES);
    if ((st = read_common(c, m)))
        return st;
    const hf_family *f = rotary_families;
    while (f->type && strcmp(f->type, type) != 0)
        f++;
    if (strcmp(type, "opt") == 0)
        st = import_opt(c, m);
    else if (f->type)
        st = import_rotary(c, f, m);
    else
        return diag_set(c->e, LLMSIM_EINPUT, "%s: model_type \"%s\" is not supported; llmsim "
                        "imports %s", c->path, type, HF_TYPES);
    return st ? st : model_validate(m, c->path, c->e);
}

llmsim_status model_load_hf_config_text(const char *name, const char *text, size_t len, model *m,
                                        diag *e)
{
    memset(m, 0, sizeof *m);
    cJSON *root;
    llmsim_status st = parse_text(name, text, len, &root, e);
    if (st)
        return st;
    hf_ctx c = {name, text, root, e};
    if (!(st = check_keys(&c)))
        st = import_model(&c, m);
    cJSON_Delete(root);
    return st;
}

llmsim_status model_load_hf_config(const char *path, model *m, diag *e)
{
    size_t len;
    char *text = read_all(path, &len, e);
    if (!text)
        return e->status;
    llmsim_status st = model_load_hf_config_text(path, text, len, m, e);
    free(text);
    return st;
}
