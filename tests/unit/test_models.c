/*
 * test_models — the shipped model configs, their parameter counts against the
 * published figures, the Hugging Face config.json importer (the same model as
 * the shipped YAML, and the errors for malformed files), and the YAML
 * loader's grouped-query attention rule.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <stdbool.h>

#include "models/model.h"
#include "tap.h"

/* OPT-1.3B ... OPT-175B are published only as nominal sizes ("1.3B"); the
 * computed count must lie within this fraction of the nominal figure. The
 * worst case is OPT-1.3B, 1,315,758,080 parameters (+1.2%). */
#define NOMINAL_REL_TOL 0.02

/* ---- parameter counts of the shipped models */

typedef struct published_count {
    const char *name;
    int64_t params; /* published parameter count */
    bool exact;     /* exact figure (safetensors metadata) or nominal size */
} published_count;

/* Exact counts: the total of the safetensors metadata of each Hugging Face
 * release (facebook/opt-125m, meta-llama/Llama-2-*-hf, meta-llama/Llama-3.1-*,
 * mistralai/Mistral-7B-v0.1). They count every stored tensor once, so OPT's
 * tied LM head is not counted twice and its position table has
 * max_context + 2 rows. Nominal counts: the model names in the OPT paper
 * (Zhang et al. 2022, arXiv:2205.01068, Table 1). */
static const published_count published[] = {
    {"opt-125m", 125239296LL, true},
    {"opt-1.3b", 1300000000LL, false},
    {"opt-6.7b", 6700000000LL, false},
    {"opt-13b", 13000000000LL, false},
    {"opt-30b", 30000000000LL, false},
    {"opt-66b", 66000000000LL, false},
    {"opt-175b", 175000000000LL, false},
    {"llama-2-7b", 6738415616LL, true},
    {"llama-2-13b", 13015864320LL, true},
    {"llama-2-70b", 68976648192LL, true},
    {"llama-3.1-8b", 8030261248LL, true},
    {"llama-3.1-70b", 70553706496LL, true},
    {"mistral-7b", 7241732096LL, true},
    {"tinyllama-1.1b", 1100048384LL, true},
    {"llama-3.2-1b", 1235814400LL, true},
    {"llama-3.2-3b", 3212749824LL, true},
    {"qwen2.5-0.5b", 494032768LL, true},
    {"qwen2.5-1.5b", 1543714304LL, true},
    {"qwen2.5-7b", 7615616512LL, true},
    {"qwen3-0.6b", 596049920LL, true},  /* the safetensors' 751632384 also store the tied lm_head */
    {"qwen3-1.7b", 1720574976LL, true}, /* 2031739904 likewise */
    {"qwen3-8b", 8190735360LL, true},
    {"gemma-2b", 2506172416LL, true},
    {"gemma-7b", 8537680896LL, true},
    {"phi-3-mini-4k", 3821079552LL, true},
    {"mixtral-8x7b", 46702792704LL, true},
    {"qwen1.5-moe-a2.7b", 14315784192LL, true},
    {"qwen3-30b-a3b", 30532122624LL, true},
};
#define N_PUBLISHED (sizeof published / sizeof published[0])

static void test_shipped_counts(void)
{
    size_t n_shipped = 0;
    for (; model_shipped_names[n_shipped]; n_shipped++) {
    }
    CHECK(n_shipped == N_PUBLISHED, "%zu shipped models, %zu published counts", n_shipped,
          (size_t)N_PUBLISHED);
    for (size_t i = 0; i < n_shipped; i++) {
        const char *name = model_shipped_names[i];
        const published_count *pc = NULL;
        for (size_t j = 0; j < N_PUBLISHED; j++)
            if (strcmp(published[j].name, name) == 0)
                pc = &published[j];
        CHECK(pc != NULL, "%s: no published count in this test", name);
        model m;
        diag e = {0};
        llmsim_status st = model_load(name, &m, &e);
        CHECK(st == LLMSIM_OK, "%s: model_load: %s", name, e.msg);
        if (st != LLMSIM_OK || !pc)
            continue;
        CHECK(strcmp(m.name, name) == 0, "%s: the file calls itself '%s'", name, m.name);
        int64_t got = model_param_count(&m);
        if (pc->exact) {
            CHECK(got == pc->params, "%s: %lld parameters, published %lld (off by %lld)", name,
                  (long long)got, (long long)pc->params, (long long)(got - pc->params));
        } else {
            char what[96];
            snprintf(what, sizeof what, "%s: parameters vs nominal size", name);
            CHECK_REL((double)got, (double)pc->params, NOMINAL_REL_TOL, what);
        }
        /* The pieces add up, and the head is counted only when untied. */
        int64_t sum = model_embed_param_count(&m) + model_lm_head_param_count(&m);
        for (int64_t l = 0; l < m.num_layers; l++) /* a sparse layer has its experts instead */
            sum += model_layer_param_count_at(&m, l);
        CHECK(sum == got, "%s: pieces %lld != total %lld", name, (long long)sum, (long long)got);
        CHECK((model_lm_head_param_count(&m) == 0) == m.tied_embeddings, "%s: LM head vs tied", name);
    }
}

/* Per-tensor check of the smallest model against its state dict:
 * OPT-125M has 768-wide q/k/v/out_proj with biases, fc1 768x3072 + 3072,
 * fc2 3072x768 + 768, two LayerNorms (weight + bias) per block, a
 * 50272x768 token table and a 2050x768 position table, and a final LayerNorm. */
static void test_opt125m_breakdown(void)
{
    model m;
    diag e = {0};
    if (model_load("opt-125m", &m, &e) != LLMSIM_OK) {
        CHECK(false, "opt-125m: %s", e.msg);
        return;
    }
    model_layer_params p;
    model_layer_params_get(&m, &p);
    CHECK(p.attn_weights == 4LL * 768 * 768, "attn_weights %lld", (long long)p.attn_weights);
    CHECK(p.attn_bias == 4LL * 768, "attn_bias %lld", (long long)p.attn_bias);
    CHECK(p.mlp_weights == 2LL * 768 * 3072, "mlp_weights %lld", (long long)p.mlp_weights);
    CHECK(p.mlp_bias == 3072 + 768, "mlp_bias %lld", (long long)p.mlp_bias);
    CHECK(p.norm == 4LL * 768, "norm %lld", (long long)p.norm);
    CHECK(model_embed_param_count(&m) == 50272LL * 768 + 2050LL * 768 + 2 * 768, "embed %lld",
          (long long)model_embed_param_count(&m));
}

/* Llama-3.1-8B's grouped-query attention: k_proj and v_proj are 4096 -> 1024. */
static void test_gqa_dims(void)
{
    model m;
    diag e = {0};
    if (model_load("llama-3.1-8b", &m, &e) != LLMSIM_OK) {
        CHECK(false, "llama-3.1-8b: %s", e.msg);
        return;
    }
    CHECK(m.head_dim == 128, "head_dim %lld", (long long)m.head_dim);
    CHECK(model_kv_dim(&m) == 1024, "kv_dim %lld", (long long)model_kv_dim(&m));
    CHECK(model_q_dim(&m) == 4096, "q_dim %lld", (long long)model_q_dim(&m));
    model_layer_params p;
    model_layer_params_get(&m, &p);
    CHECK(p.attn_weights == 2LL * 4096 * 4096 + 2LL * 4096 * 1024, "attn_weights %lld",
          (long long)p.attn_weights);
}

/* ---- the Hugging Face importer */

/* Each sample is the published config.json of the release the shipped YAML
 * names; the import must give the same model, field by field (every other
 * directory of tests/data/hf with a shipped YAML: test_hf_dirs_match_shipped). */
static void test_hf_matches_shipped(void)
{
    static const char *const names[] = {"opt-125m", "llama-2-7b"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "hf/%s/config.json", names[i]);
        const char *path = tap_data(rel);
        model hf, yaml;
        diag e = {0};
        llmsim_status st = model_load(path, &hf, &e);
        CHECK(st == LLMSIM_OK, "%s: %s", path, e.msg);
        diag_clear(&e);
        llmsim_status st2 = model_load(names[i], &yaml, &e);
        CHECK(st2 == LLMSIM_OK, "%s: %s", names[i], e.msg);
        if (st || st2)
            continue;
        strbuf a = {0}, b = {0};
        model_canonical(&hf, &a);
        model_canonical(&yaml, &b);
        CHECK(strcmp(strbuf_str(&a), strbuf_str(&b)) == 0,
              "%s: config.json and shipped YAML differ:\n--- config.json\n%s--- yaml\n%s", names[i],
              strbuf_str(&a), strbuf_str(&b));
        CHECK(model_param_count(&hf) == model_param_count(&yaml), "%s: counts differ", names[i]);
        strbuf_free(&a);
        strbuf_free(&b);
    }
}

typedef struct bad_case {
    const char *rel;    /* under tests/data */
    const char *expect; /* a phrase the message must contain */
} bad_case;

static void test_bad_inputs(void)
{
    static const bad_case cases[] = {
        {"hf/bad-json.json", "invalid JSON"},
        {"hf/bad-model-type.json", "\"gpt2\" is not supported"},
        {"hf/bad-no-hidden.json", "missing required key \"hidden_size\""},
        {"hf/bad-negative.json", "\"num_hidden_layers\" must be a positive whole number"},
        {"hf/bad-float.json", "\"hidden_size\" must be a positive whole number"},
        {"hf/bad-kv-heads.json", "must be a multiple of kv_heads"},
        {"models/bad-kv-heads.yaml", "must be a multiple of kv_heads"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = tap_data(cases[i].rel);
        model m;
        diag e = {0};
        llmsim_status st = model_load(path, &m, &e);
        CHECK(st == LLMSIM_EINPUT, "%s: status %d, want LLMSIM_EINPUT (msg: %s)", cases[i].rel,
              (int)st, e.msg);
        CHECK(strstr(e.msg, path) != NULL, "%s: message does not name the file: %s", cases[i].rel,
              e.msg);
        CHECK(strstr(e.msg, cases[i].expect) != NULL, "%s: message lacks '%s': %s", cases[i].rel,
              cases[i].expect, e.msg);
    }
    /* The JSON error points at the token after the missing comma: line 4, column 3. */
    const char *path = tap_data("hf/bad-json.json");
    char where[1100];
    snprintf(where, sizeof where, "%s:4:3: ", path);
    model m;
    diag e = {0};
    model_load(path, &m, &e);
    CHECK(strncmp(e.msg, where, strlen(where)) == 0, "JSON error position: want '%s', got '%s'",
          where, e.msg);
}

/* A config.json of `base` (tests/data/hf/BASE/config.json) with one key
 * put in after the opening brace (a later duplicate would be refused as
 * such, so the key must not be in base, or `drop` names the one it replaces). */
static llmsim_status load_variant(const char *base, const char *drop, const char *put, model *m,
                                  diag *e, char *path, size_t len)
{
    char rel[128];
    snprintf(rel, sizeof rel, "hf/%s/config.json", base);
    FILE *f = fopen(tap_data(rel), "rb");
    char text[8192];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    snprintf(path, len, "%s/llmsim-hf-variant-%d.json", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    FILE *o = fopen(path, "wb");
    if (!o)
        return diag_set(e, LLMSIM_EFAIL, "cannot write %s", path);
    fputs("{\n  ", o);
    fputs(put, o);
    fputs(",\n", o);
    /* the base without its opening brace, and without the line of `drop` */
    for (char *line = strchr(text, '{') + 1; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) + 1 : strlen(line);
        char key[64];
        snprintf(key, sizeof key, "\"%s\"", drop ? drop : "");
        if (!drop || !memmem(line, ll, key, strlen(key)))
            fwrite(line, 1, ll, o);
        line = nl ? nl + 1 : NULL;
    }
    fclose(o);
    llmsim_status st = model_load(path, m, e);
    remove(path);
    return st;
}

/* What llmsim does not implement is refused, naming the key and its line;
 * a key's neutral value is accepted; a value of the wrong type is an error,
 * never the default. */
static void test_hf_refused(void)
{
    static const struct {
        const char *base, *drop, *put, *expect; /* expect NULL: accepted */
    } cases[] = {
        {"llama-2-7b", "rope_scaling", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", NULL},
        {"llama-2-7b", "rope_scaling", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}",
         "\"rope_scaling\" has rope_type \"yarn\": llmsim implements"},
        {"llama-2-7b", "rope_scaling", "\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2}",
         "rope_type \"dynamic\""},
        {"llama-2-7b", "rope_scaling", "\"rope_scaling\": {\"rope_type\": \"longrope\"}",
         "rope_type \"longrope\""},
        {"llama-2-7b", "rope_scaling", "\"rope_scaling\": {\"rope_type\": \"linear\"}",
         "\"rope_scaling\" needs \"factor\""},
        {"llama-2-7b", "rope_scaling",
         "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 4, "
         "\"high_freq_factor\": 1, \"original_max_position_embeddings\": 8192}",
         "\"high_freq_factor\" must exceed"},
        {"llama-2-7b", "rope_scaling", "\"rope_scaling\": {\"factor\": 2}", "needs \"rope_type\""},
        {"llama-2-7b", "rope_scaling", "\"rope_scaling\": \"fast\"", "\"rope_scaling\" must be an object"},
        {"llama-2-7b", "rope_scaling", "\"rope_scaling\": null", NULL},
        {"llama-2-7b", NULL, "\"sliding_window\": 1024", "a llama config does not have"},
        {"llama-2-7b", NULL, "\"sliding_window\": 4096", NULL},
        {"llama-2-7b", NULL, "\"use_sliding_window\": true", "\"use_sliding_window\" is true"},
        {"llama-2-7b", NULL, "\"attention_bias\": true", "biases to the q, k, v and o"},
        {"llama-2-7b", NULL, "\"attention_bias\": \"yes\"", "\"attention_bias\" is \"yes\""},
        {"llama-2-7b", NULL, "\"mlp_bias\": true", "biases to the MLP"},
        {"llama-2-7b", NULL, "\"partial_rotary_factor\": 0.5", "part of each head"},
        {"llama-2-7b", NULL, "\"partial_rotary_factor\": 1.0", NULL},
        {"llama-2-7b", NULL, "\"final_logit_softcapping\": 30.0", "soft-caps the logits"},
        {"llama-2-7b", NULL, "\"attn_logit_softcapping\": 50.0", "soft-caps the attention"},
        {"llama-2-7b", NULL, "\"qk_norm\": true", "normalizes q and k"},
        {"llama-2-7b", NULL, "\"layer_types\": [\"sliding_attention\"]", "mixes layers"},
        {"llama-2-7b", NULL, "\"query_pre_attn_scalar\": 256", "scales the queries"},
        {"llama-2-7b", "rms_norm_eps", "\"rms_norm_eps\": -1", "\"rms_norm_eps\" must be a number > 0"},
        {"llama-2-7b", NULL, "\"rope_theta\": \"big\"", "\"rope_theta\" must be a number > 0"},
        {"llama-2-7b", "tie_word_embeddings", "\"tie_word_embeddings\": \"no\"",
         "\"tie_word_embeddings\" must be true or false"},
        {"llama-2-7b", "hidden_act", "\"hidden_act\": 7", "\"hidden_act\" must be a string"},
        {"llama-2-7b", "torch_dtype", "\"torch_dtype\": \"int8\"", "\"torch_dtype\" must be"},
        {"mistral-7b", "sliding_window", "\"sliding_window\": null", NULL},
        {"mistral-7b", "sliding_window", "\"sliding_window\": 32768", NULL},
        {"mistral-7b", "sliding_window", "\"max_window_layers\": 28", NULL}, /* 4096: MistralConfig's */
        {"mistral-7b", "sliding_window", "\"sliding_window\": 0.5", "\"sliding_window\" must be a positive whole"},
        /* the later families: each refuses what it does not implement */
        {"qwen2.5-0.5b", "use_sliding_window", "\"use_sliding_window\": true", "on some layers only"},
        {"qwen2.5-0.5b", "sliding_window", "\"sliding_window\": 8", NULL}, /* ignored: use_sliding_window false */
        {"qwen2.5-0.5b", "hidden_act", "\"hidden_act\": \"gelu\"", "hidden_act \"gelu\" is not supported"},
        {"qwen3-0.6b", "attention_bias", "\"attention_bias\": true", "biases to the q, k, v and o"},
        {"qwen3-0.6b", "use_sliding_window", "\"use_sliding_window\": true", "on some layers only"},
        {"qwen3-0.6b", "rope_scaling", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, "
         "\"original_max_position_embeddings\": 32768}", "rope_type \"yarn\""},
        {"gemma-2b", "hidden_activation", "\"hidden_activation\": \"gelu\"",
         "\"hidden_activation\" is not \"gelu_pytorch_tanh\""},
        {"gemma-2b", "hidden_activation", "\"hidden_activation\": null", NULL}, /* hidden_act gelu: tanh */
        {"gemma-2b", NULL, "\"attn_logit_softcapping\": 50.0", "soft-caps the attention"}, /* Gemma 2's */
        {"gemma-2b", NULL, "\"query_pre_attn_scalar\": 224", "scales the queries"},
        {"phi-3-mini-4k", "rope_scaling", "\"rope_scaling\": {\"type\": \"longrope\", \"long_factor\": [1.0], "
         "\"short_factor\": [1.0]}", "rope_type \"longrope\""},
        {"phi-3-mini-4k", "rope_scaling", "\"rope_scaling\": {\"type\": \"su\"}", "rope_type \"su\""},
        {"phi-3-mini-4k", NULL, "\"partial_rotary_factor\": 0.75", "part of each head"},
        {"phi-3-mini-4k", "sliding_window", "\"sliding_window\": null", NULL},
        {"opt-125m", "activation_function", "\"activation_function\": \"gelu_new\"",
         "is not \"relu\" or \"gelu\""},
        {"opt-125m", NULL, "\"layer_norm_elementwise_affine\": false", "drops the LayerNorms"},
        {"opt-125m", NULL, "\"_remove_final_layer_norm\": true", "removes the final LayerNorm"},
        {"opt-125m", "do_layer_norm_before", "\"do_layer_norm_before\": 1",
         "\"do_layer_norm_before\" must be true or false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        model m;
        diag e = {0};
        char path[512];
        llmsim_status st = load_variant(cases[i].base, cases[i].drop, cases[i].put, &m, &e, path,
                                        sizeof path);
        if (!cases[i].expect) {
            CHECK(st == LLMSIM_OK, "%s with %s: accepted (%s)", cases[i].base, cases[i].put, e.msg);
            continue;
        }
        CHECK(st == LLMSIM_EINPUT && strncmp(e.msg, path, strlen(path)) == 0 &&
                  strstr(e.msg, cases[i].expect),
              "%s with %s: refused naming the file and saying '%s': %d %s", cases[i].base,
              cases[i].put, cases[i].expect, (int)st, e.msg);
    }
}

/* The published configs of the later families read as their math says:
 * Llama 3.1's llama3 RoPE scaling, Mistral's window. */
static void test_hf_features(void)
{
    model m;
    diag e = {0};
    CHECK(model_load(tap_data("hf/llama-3.1-8b/config.json"), &m, &e) == LLMSIM_OK, "%s", e.msg);
    const model_rope_scaling *r = &m.rope_scaling;
    CHECK(r->kind == MODEL_ROPE_LLAMA3 && r->factor == 8 && r->low_freq_factor == 1 &&
              r->high_freq_factor == 4 && r->original_max_context == 8192 && m.rope_theta == 500000,
          "llama-3.1-8b: llama3 scaling %d %g %g %g %lld", (int)r->kind, r->factor, r->low_freq_factor,
          r->high_freq_factor, (long long)r->original_max_context);
    CHECK(model_load(tap_data("hf/mistral-7b/config.json"), &m, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(m.sliding_window == 4096 && m.max_context == 32768, "mistral-7b: window %lld",
          (long long)m.sliding_window);
}

/* The llama3 frequencies: high ones kept, low ones divided by the factor,
 * the band between blended (transformers' _compute_llama3_parameters). */
static void test_rope_inv_freq(void)
{
    model m = {.head_dim = 128, .rope_theta = 500000, .position = MODEL_POS_ROTARY};
    double plain[64], scaled[64];
    model_rope_inv_freq(&m, plain);
    m.rope_scaling = (model_rope_scaling){MODEL_ROPE_LLAMA3, 8, 1, 4, 8192};
    model_rope_inv_freq(&m, scaled);
    const double two_pi = 6.283185307179586;
    int kept = 0, divided = 0, blended = 0;
    for (int i = 0; i < 64; i++) {
        double wl = two_pi / plain[i];
        if (wl < 8192 / 4.0)
            kept += scaled[i] == plain[i];
        else if (wl > 8192 / 1.0)
            divided += fabs(scaled[i] - plain[i] / 8) < 1e-15 * plain[i];
        else
            blended += scaled[i] < plain[i] && scaled[i] > plain[i] / 8;
    }
    CHECK(kept + divided + blended == 64 && kept > 0 && divided > 0 && blended > 0,
          "llama3 inv_freq: %d kept, %d divided, %d blended of 64", kept, divided, blended);
    m.rope_scaling = (model_rope_scaling){MODEL_ROPE_LINEAR, 2, 0, 0, 0};
    model_rope_inv_freq(&m, scaled);
    CHECK(scaled[5] == plain[5] / 2 && scaled[63] == plain[63] / 2, "linear: every frequency / 2");
}

/* The sliding window's bound on the KV cache and on what a query sees. */
static void test_window(void)
{
    model m = {.sliding_window = 8};
    CHECK(model_kv_positions(&m, 4, 6) == 6 && model_kv_positions(&m, 4, 100) == 8 &&
              model_kv_positions(&m, 20, 100) == 20,
          "KV positions under a window of 8");
    CHECK(model_attn_first(&m, 7) == 0 && model_attn_first(&m, 8) == 1 && model_attn_first(&m, 20) == 13,
          "a query at 8 sees 1..8 (HF: key j iff pos - window < j <= pos)");
    /* pairs: counted one query at a time */
    for (int64_t st = 0; st < 20; st += 3)
        for (int64_t t = 1; t < 20; t += 4) {
            double want = 0;
            for (int64_t p = st; p < st + t; p++)
                want += (double)(p + 1 - model_attn_first(&m, p));
            CHECK(model_attn_pairs(&m, st, t) == want, "window pairs from %lld, %lld queries: %g, want %g",
                  (long long)st, (long long)t, model_attn_pairs(&m, st, t), want);
        }
    m.sliding_window = 0;
    CHECK(model_kv_positions(&m, 4, 100) == 100 && model_attn_first(&m, 100) == 0, "no window");
    CHECK(model_attn_pairs(&m, 0, 10) == 55 && model_attn_pairs(&m, 10, 1) == 11, "causal pairs");
    CHECK(model_attn_share(&m, 0, 10) == 1, "no window: the whole causal step");
    m.sliding_window = 8;
    CHECK(model_attn_share(&m, 0, 10) == model_attn_pairs(&m, 0, 10) / 55 && model_attn_share(&m, 0, 10) < 1,
          "a window of 8 keeps %g of 10 queries' pairs", model_attn_share(&m, 0, 10));
}

static void test_unknown_name(void)
{
    model m;
    diag e = {0};
    llmsim_status st = model_load("opt-7b", &m, &e);
    CHECK(st == LLMSIM_EINPUT, "unknown name: status %d", (int)st);
    CHECK(strstr(e.msg, "opt-7b") && strstr(e.msg, "opt-6.7b"),
          "unknown name: message should name it and list the shipped models: %s", e.msg);
}

/* Every sample config.json (tests/data/hf/NAME/config.json) whose NAME is
 * a shipped model imports to exactly the model of the shipped YAML: the
 * canonical texts are equal, the name line aside (set equal first). */
static void test_hf_dirs_match_shipped(void)
{
    char dir_path[1024];
    snprintf(dir_path, sizeof dir_path, "%s", tap_data("hf"));
    DIR *dir = opendir(dir_path);
    CHECK(dir != NULL, "%s: cannot open", dir_path);
    if (!dir)
        return;
    int compared = 0;
    for (struct dirent *d; (d = readdir(dir));) {
        bool shipped = false;
        for (size_t i = 0; model_shipped_names[i] && !shipped; i++)
            shipped = strcmp(model_shipped_names[i], d->d_name) == 0;
        char path[1300];
        snprintf(path, sizeof path, "%s/%s/config.json", dir_path, d->d_name);
        if (!shipped || access(path, R_OK) != 0)
            continue;
        model hf, yaml;
        diag e = {0};
        llmsim_status st = model_load(path, &hf, &e);
        CHECK(st == LLMSIM_OK, "%s: %s", path, e.msg);
        diag_clear(&e);
        llmsim_status st2 = model_load(d->d_name, &yaml, &e);
        CHECK(st2 == LLMSIM_OK, "%s: %s", d->d_name, e.msg);
        if (st || st2)
            continue;
        snprintf(hf.name, sizeof hf.name, "%s", yaml.name);
        strbuf a = {0}, b = {0};
        model_canonical(&hf, &a);
        model_canonical(&yaml, &b);
        CHECK(strcmp(strbuf_str(&a), strbuf_str(&b)) == 0,
              "%s: config.json and shipped YAML differ:\n--- config.json\n%s--- yaml\n%s", d->d_name,
              strbuf_str(&a), strbuf_str(&b));
        strbuf_free(&a);
        strbuf_free(&b);
        compared++;
    }
    closedir(dir);
    /* opt-125m, llama-2-7b, llama-3.1-8b, mistral-7b and the 11 of the later families */
    CHECK(compared >= 15, "%d config.json samples compared with their shipped YAML, want 15 or more",
          compared);
}

int main(void)
{
    test_shipped_counts();
    test_opt125m_breakdown();
    test_gqa_dims();
    test_hf_matches_shipped();
    test_hf_refused();
    test_hf_features();
    test_rope_inv_freq();
    test_window();
    test_bad_inputs();
    test_unknown_name();
    test_hf_dirs_match_shipped();
    return tap_done();
}
