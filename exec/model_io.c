/*
 * model_io — weights, prompts and sampling shared by the engine's backends
 * (model_io.h).
 */
#include "exec/model_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/half.h"
#include "exec/offload.h"
#include "exec/quant.h"

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t splitmix64(uint64_t *x) { return mix64(*x += 0x9e3779b97f4a7c15ull); }

static double uniform01(uint64_t *x) { return (double)(splitmix64(x) >> 11) * 0x1.0p-53; }

static uint64_t str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* Values of a synthetic tensor: matrices uniform with the variance of a
 * 1/sqrt(fan-in) initialization, norm weights near 1, biases near 0; the
 * same for every placement (each tensor has its own counter stream). */
/* Value i of a synthetic tensor whose stream starts at st0: the i-th output
 * of splitmix64 from st0, computed directly so that tensors fill in parallel. */
static inline float synth_value(uint64_t st0, size_t i, bool norm_w, double a)
{
    uint64_t z = mix64(st0 + (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull);
    double u = 2 * ((double)(z >> 11) * 0x1.0p-53) - 1;
    return (float)(norm_w ? 1.0 + 0.1 * u : a * u);
}

typedef struct synth_ctx {
    uint64_t st0;
    bool norm_w;
    double a;
    float *out;
} synth_ctx;

static void synth_chunk(void *ctx, size_t begin, size_t end)
{
    const synth_ctx *c = ctx;
    for (size_t i = begin; i < end; i++)
        c->out[i] = synth_value(c->st0, i, c->norm_w, c->a);
}

static void synth_fill(pool *p, uint64_t seed, int unit, const model_tensor *t, float *out)
{
    synth_ctx c = {seed ^ str_hash(t->name) ^ ((uint64_t)(unit + 1) * 0x9e37ull),
                   !t->matrix && strstr(t->name, "norm") && strstr(t->name, "weight"),
                   t->matrix ? sqrt(3.0 / (double)t->cols) : 0.02, out};
    size_t n = (size_t)(t->rows * t->cols);
    if (p)
        pool_for(p, n, synth_chunk, &c);
    else
        synth_chunk(&c, 0, n);
}

void engine_synthetic_values(uint64_t seed, int unit, const model_tensor *t, float *out)
{
    synth_fill(NULL, seed, unit, t, out);
}

/* Hugging Face name of a tensor of unit `unit`. */
static void hf_name(const model *m, int unit, const model_tensor *t, char *buf, size_t len, bool alt)
{
    if (unit == (int)m->num_layers) {
        snprintf(buf, len, "%s", alt && strncmp(t->name, "model.", 6) == 0 ? t->name + 6 : t->name);
        return;
    }
    const char *pre = m->family == MODEL_FAMILY_OPT ? (alt ? "decoder.layers" : "model.decoder.layers")
                                                         : (alt ? "layers" : "model.layers");
    snprintf(buf, len, "%s.%d.%s", pre, unit, t->name);
}

/* Phi-3's checkpoints fuse q, k and v into self_attn.qkv_proj (rows q, then
 * k, then v) and gate and up into mlp.gate_up_proj (gate, then up:
 * transformers' chunk(2)); the rows of t in that fused tensor, or false. */
static bool phi3_fused(const model *m, const model_tensor *t, const char **fused, int64_t *row0,
                       int64_t *rows)
{
    const int64_t q = model_q_dim(m), kv = model_kv_dim(m), f = m->ffn_size;
    const struct {
        const char *name, *fused;
        int64_t row0, rows;
    } parts[] = {
        {"self_attn.q_proj.weight", "self_attn.qkv_proj.weight", 0, q + 2 * kv},
        {"self_attn.k_proj.weight", "self_attn.qkv_proj.weight", q, q + 2 * kv},
        {"self_attn.v_proj.weight", "self_attn.qkv_proj.weight", q + kv, q + 2 * kv},
        {"mlp.gate_proj.weight", "mlp.gate_up_proj.weight", 0, 2 * f},
        {"mlp.up_proj.weight", "mlp.gate_up_proj.weight", f, 2 * f},
    };
    if (m->family != MODEL_FAMILY_PHI3)
        return false;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (strcmp(t->name, parts[i].name) == 0) {
            *fused = parts[i].fused;
            *row0 = parts[i].row0;
            *rows = parts[i].rows;
            return true;
        }
    return false;
}

/* The checkpoint's tensor for t of unit `unit` (its Hugging Face name, with
 * or without the "model." prefix), which must hold t's rows x cols values. */
static llmsim_status find_tensor(const model *m, const engine_opts *o, const st_checkpoint *ck,
                                 int unit, const model_tensor *t, const st_tensor **out, diag *e)
{
    char name[256];
    hf_name(m, unit, t, name, sizeof name, false);
    const st_tensor *st = st_find(ck, name);
    if (!st) {
        hf_name(m, unit, t, name, sizeof name, true);
        st = st_find(ck, name);
    }
    if (!st && unit == (int)m->num_layers && strcmp(t->name, "lm_head.weight") == 0)
        return diag_set(e, LLMSIM_EINPUT, "%s: no tensor lm_head.weight (the model config says "
                        "the embeddings are not tied)", o->weights_path);
    if (!st)
        return diag_set(e, LLMSIM_EINPUT, "%s: no tensor %s (is this checkpoint the model %s?)",
                        o->weights_path, name, m->name);
    if ((int64_t)st_tensor_numel(st) != t->rows * t->cols)
        return diag_set(e, LLMSIM_EINPUT, "%s: tensor %s has %llu values, the model needs %lld x %lld",
                        o->weights_path, name, (unsigned long long)st_tensor_numel(st),
                        (long long)t->rows, (long long)t->cols);
    *out = st;
    return LLMSIM_OK;
}

llmsim_status mio_load_values(const model *m, const engine_opts *o, st_checkpoint *ck, pool *p, int unit,
                              const model_tensor *t, float *out, diag *e)
{
    if (!ck) {
        synth_fill(p, o->synthetic_seed, unit, t, out);
        return LLMSIM_OK;
    }
    const char *fused = NULL;
    int64_t row0 = 0, rows = 0;
    const bool part = unit < (int)m->num_layers && phi3_fused(m, t, &fused, &row0, &rows);
    model_tensor whole = *t;
    if (part) { /* found and checked as the whole fused tensor */
        snprintf(whole.name, sizeof whole.name, "%s", fused);
        whole.rows = rows;
    }
    const st_tensor *st = NULL;
    llmsim_status rs = find_tensor(m, o, ck, unit, &whole, &st, e);
    if (rs || !part)
        return rs ? rs : st_read_f32(ck, st, out, e);
    /* t's rows of it: the row-major data's bytes from row row0 on, read alone */
    st_tensor rows_of = *st;
    const uint64_t row_bytes = (uint64_t)t->cols * (uint64_t)st_dtype_size(st->dtype);
    rows_of.ndim = 2;
    rows_of.shape[0] = t->rows;
    rows_of.shape[1] = t->cols;
    rows_of.offset += (uint64_t)row0 * row_bytes;
    rows_of.nbytes = (uint64_t)t->rows * row_bytes;
    return st_read_f32(ck, &rows_of, out, e);
}

void mio_store_values(pool *p, const float *v, size_t rows, size_t cols, k_wtype wt, const quant *wq,
                      uint8_t *dst)
{
    size_t n = rows * cols;
    if (wq && wq->bits) {
        k_quantize(p, v, rows, cols, wq->bits, wq->group_size, dst);
        return;
    }
    switch (wt) {
    case K_WTYPE_F32: memcpy(dst, v, n * 4); break;
    case K_WTYPE_BF16:
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)(void *)dst)[i] = half_f32_to_bf16(v[i]);
        break;
    default: k_convert_f32_to_f16(p, v, n, (uint16_t *)(void *)dst); break;
    }
}

void mio_prompt(const engine_opts *o, long long seq, long long num_prompts, long long prompt_len, size_t vocab,
                int32_t *dst)
{
    for (long long a = 0; a < prompt_len; a++) {
        if (o->prompts && seq < num_prompts) {
            dst[a] = o->prompts[(size_t)seq * (size_t)prompt_len + (size_t)a];
        } else {
            uint64_t x = o->prompt_seed ^ ((uint64_t)seq << 32) ^ (uint64_t)a;
            dst[a] = (int32_t)(splitmix64(&x) % vocab);
        }
    }
}

void mio_block_begin(mio_tokens *tk, const exec_layout *lay, const engine_opts *o, long long block)
{
    tk->block = block;
    for (int s = 0; s < lay->bls; s++)
        mio_prompt(o, block * lay->bls + s, lay->num_prompts, lay->prompt, lay->vocab,
                   tk->tokens + (size_t)s * (size_t)(lay->prompt + lay->gen));
    if (block > 0)
        tk->logits_out = NULL;
}

void mio_block_tokens(const exec_layout *lay, long long block, const int32_t *tokens, int32_t *out)
{
    for (int s = 0; s < lay->bls; s++) {
        long long seq = block * lay->bls + s;
        if (seq >= lay->num_prompts)
            break;
        memcpy(out + (size_t)seq * (size_t)lay->gen,
               tokens + (size_t)s * (size_t)(lay->prompt + lay->gen) + lay->prompt,
               (size_t)lay->gen * sizeof(int32_t));
    }
}

static const float *sort_probs;

static int cmp_prob_desc(const void *a, const void *b)
{
    float x = sort_probs[*(const int32_t *)a], y = sort_probs[*(const int32_t *)b];
    if (x != y)
        return x < y ? 1 : -1;
    return (*(const int32_t *)a > *(const int32_t *)b) - (*(const int32_t *)a < *(const int32_t *)b);
}

/* The next token of a sequence: the argmax (temperature 0), or a draw from
 * softmax(logits / T) restricted to the nucleus (the most likely tokens
 * whose mass reaches top_p), renormalized. The draw depends only on the
 * seed, the sequence's number in the workload and the step. */
int mio_sample(const engine_opts *o, const float *logits, size_t vocab, long long seq, int step, float *probs,
               int32_t *idx)
{
    const size_t V = vocab;
    if (o->temperature <= 0) {
        size_t best = 0;
        for (size_t v = 1; v < V; v++)
            if (logits[v] > logits[best])
                best = v;
        return (int)best;
    }
    float mx = logits[0];
    for (size_t v = 1; v < V; v++)
        mx = logits[v] > mx ? logits[v] : mx;
    double sum = 0;
    float *pr = probs;
    for (size_t v = 0; v < V; v++) {
        pr[v] = (float)exp((logits[v] - mx) / o->temperature);
        sum += pr[v];
    }
    uint64_t st = o->sample_seed ^ ((uint64_t)seq * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)step << 40);
    double u = uniform01(&st);
    double top_p = o->top_p > 0 && o->top_p < 1 ? o->top_p : 1.0;
    if (top_p >= 1.0) { /* the whole distribution: any order will do */
        double r = u * sum, acc = 0;
        for (size_t v = 0; v < V; v++)
            if ((acc += pr[v]) > r)
                return (int)v;
        return (int)(V - 1);
    }
    /* the nucleus: tokens by decreasing probability (ties by id) */
    for (size_t v = 0; v < V; v++)
        idx[v] = (int32_t)v;
    sort_probs = pr; /* the compute thread is the only caller */
    qsort(idx, V, sizeof *idx, cmp_prob_desc);
    double mass = 0;
    size_t n = 0;
    while (n < V && mass < top_p * sum)
        mass += pr[idx[n++]];
    double r = u * mass, acc = 0;
    for (size_t i = 0; i < n; i++)
        if ((acc += pr[idx[i]]) > r)
            return idx[i];
    return idx[n - 1];
}

void mio_next_tokens(const exec_layout *sh, const engine_opts *o, const float *logits, int i, int k,
                     mio_tokens *tk)
{
    for (int s = 0; s < sh->gbs; s++) {
        const float *lg = logits + (size_t)s * sh->vocab;
        int seq = k * sh->gbs + s;
        long long global = tk->block * sh->bls + seq; /* the sequence's number in the workload */
        if (tk->logits_out)
            memcpy(tk->logits_out + ((size_t)i * (size_t)sh->bls + (size_t)seq) * sh->vocab, lg,
                   sh->vocab * 4);
        int32_t *toks = tk->tokens + (size_t)seq * (size_t)(sh->prompt + sh->gen);
        toks[sh->prompt + i] = mio_sample(o, lg, sh->vocab, global, i, tk->probs, tk->idx);
    }
}
