/*
 * test_models — the shipped model configs, their parameter counts against the
 * published figures, the Hugging Face config.json importer (the same model as
 * the shipped YAML, and the errors for malformed files), and the YAML
 * loader's grouped-query attention rule.
 */
#include <stdio.h>
#include <string.h>

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
        int64_t sum = model_embed_param_count(&m) + m.num_layers * model_layer_param_count(&m) +
                      model_lm_head_param_count(&m);
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
 * names; the import must give the same model, field by field. */
static void test_hf_matches_shipped(void)
{
    static const char *const names[] = {"opt-125m", "llama-2-7b", "llama-3.1-8b", "mistral-7b"};
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

static void test_unknown_name(void)
{
    model m;
    diag e = {0};
    llmsim_status st = model_load("opt-7b", &m, &e);
    CHECK(st == LLMSIM_EINPUT, "unknown name: status %d", (int)st);
    CHECK(strstr(e.msg, "opt-7b") && strstr(e.msg, "opt-6.7b"),
          "unknown name: message should name it and list the shipped models: %s", e.msg);
}

int main(void)
{
    test_shipped_counts();
    test_opt125m_breakdown();
    test_gqa_dims();
    test_hf_matches_shipped();
    test_bad_inputs();
    test_unknown_name();
    return tap_done();
}
