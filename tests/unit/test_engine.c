/*
 * test_engine — the CPU engine against a naive reference transformer.
 *
 * The reference is the obvious code: one token at a time, plain loops, fp64
 * accumulation, the same synthetic weights (engine_synthetic_values) rounded
 * as the engine stores them (fp16, or quantized and dequantized to fp16), the
 * KV cache rounded as stored (fp16 or quantized), and hidden states rounded
 * to fp16 between layers as the engine keeps them. For tiny OPT and LLaMA
 * (GQA, SwiGLU, rotary) configs, every placement — all in RAM, weights on
 * disk, KV cache on disk, hidden states on disk, mixed — gives the
 * reference's logits at every step within LOGIT_TOL, and quantized settings
 * within QUANT_LOGIT_TOL; the generated tokens are identical across
 * placements.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/engine.h"
#include "exec/half.h"
#include "exec/quant.h"
#include "exec/safetensors.h"
#include <unistd.h>
#include "tap.h"

/* fp32 arithmetic against fp64, same rounded inputs: logits of O(1). */
#define LOGIT_TOL 2e-3
/* the same with quantized weights and cache: the rounding is emulated, but a
 * K or V value that fp32 and fp64 put on either side of a code boundary
 * lands one step apart, and a 4-bit step is (max - min) / 15 of its group:
 * a few such flips move the logits by up to ~1e-2 */
#define QUANT_LOGIT_TOL 3e-2

#define PROMPT 7
#define GEN 5
#define GBS 2
#define NGB 3
#define BLS (GBS * NGB)

typedef struct ref {
    const model *m;
    quant wq, kq;
    double **w[64];     /* [unit][tensor] values as stored, fp64 */
    int nt[64];
    model_tensor t[64][MODEL_MAX_TENSORS];
} ref;

static double f16r(double v) { return half_f16_to_f32(half_f32_to_f16((float)v)); }

static void ref_init(ref *r, const model *m, uint64_t seed, quant wq, quant kq)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->wq = wq;
    r->kq = kq;
    int L = (int)m->num_layers;
    for (int u = 0; u <= L; u++) {
        r->nt[u] = u == L ? model_head_tensors(m, r->t[u]) : model_layer_tensors(m, r->t[u]);
        r->w[u] = calloc((size_t)r->nt[u], sizeof(double *));
        for (int i = 0; i < r->nt[u]; i++) {
            model_tensor *t = &r->t[u][i];
            size_t n = (size_t)(t->rows * t->cols);
            float *v = malloc(n * sizeof *v);
            engine_synthetic_values(seed, u, t, v);
            r->w[u][i] = malloc(n * sizeof(double));
            if (t->matrix && wq.bits) {
                size_t rb = quant_row_bytes((size_t)t->cols, wq.bits, wq.group_size);
                uint8_t *q = malloc(rb);
                float *d = malloc((size_t)t->cols * sizeof *d);
                for (int64_t row = 0; row < t->rows; row++) {
                    quant_quantize_row_ref(v + row * t->cols, (size_t)t->cols, wq.bits, wq.group_size, q);
                    quant_dequantize_row_ref(q, (size_t)t->cols, wq.bits, wq.group_size, d);
                    for (int64_t c = 0; c < t->cols; c++)
                        r->w[u][i][row * t->cols + c] = f16r(d[c]); /* dequantized to fp16 */
                }
                free(q);
                free(d);
            } else {
                for (size_t k = 0; k < n; k++)
                    r->w[u][i][k] = f16r(v[k]);
            }
            free(v);
        }
    }
}

static void ref_free(ref *r)
{
    for (int u = 0; u <= (int)r->m->num_layers; u++) {
        for (int i = 0; i < r->nt[u]; i++)
            free(r->w[u][i]);
        free(r->w[u]);
    }
}

static const double *W(ref *r, int u, const char *name)
{
    for (int i = 0; i < r->nt[u]; i++)
        if (strcmp(r->t[u][i].name, name) == 0)
            return r->w[u][i];
    return NULL;
}

/* y[n] = W[n][k] x[k] (+ b) */
static void mv(const double *w, const double *b, const double *x, int n, int k, double *y)
{
    for (int i = 0; i < n; i++) {
        double acc = b ? b[i] : 0;
        for (int j = 0; j < k; j++)
            acc += w[(size_t)i * k + j] * x[j];
        y[i] = acc;
    }
}

static void norm(const model *m, const double *x, const double *g, const double *b, int h, double *y)
{
    if (m->norm == MODEL_NORM_LAYERNORM) {
        double mu = 0, var = 0;
        for (int i = 0; i < h; i++)
            mu += x[i];
        mu /= h;
        for (int i = 0; i < h; i++)
            var += (x[i] - mu) * (x[i] - mu);
        var /= h;
        for (int i = 0; i < h; i++)
            y[i] = (x[i] - mu) / sqrt(var + m->norm_eps) * g[i] + b[i];
    } else {
        double ms = 0;
        for (int i = 0; i < h; i++)
            ms += x[i] * x[i];
        ms /= h;
        for (int i = 0; i < h; i++)
            y[i] = x[i] / sqrt(ms + m->norm_eps) * g[i];
    }
}

static void rotary(double *x, int heads, int hd, long pos, double theta)
{
    for (int hh = 0; hh < heads; hh++) {
        double *v = x + hh * hd;
        for (int i = 0; i < hd / 2; i++) {
            double a = pos * pow(theta, -2.0 * i / hd);
            double x0 = v[i], x1 = v[i + hd / 2];
            v[i] = x0 * cos(a) - x1 * sin(a);
            v[i + hd / 2] = x1 * cos(a) + x0 * sin(a);
        }
    }
}

static double kv_round(ref *r, double *row, int n)
{
    if (r->kq.bits) {
        float *f = calloc((size_t)n, sizeof *f);
        uint8_t *q = malloc(quant_row_bytes((size_t)n, r->kq.bits, r->kq.group_size));
        for (int i = 0; i < n; i++)
            f[i] = (float)row[i];
        quant_quantize_row_ref(f, (size_t)n, r->kq.bits, r->kq.group_size, q);
        quant_dequantize_row_ref(q, (size_t)n, r->kq.bits, r->kq.group_size, f);
        for (int i = 0; i < n; i++)
            row[i] = f[i];
        free(f);
        free(q);
    } else {
        for (int i = 0; i < n; i++)
            row[i] = f16r(row[i]);
    }
    return 0;
}

/* Logits of one sequence after positions first .. npos-1 of tokens[npos];
 * out [npos - first][V]. */
static void ref_sequence(ref *r, const int32_t *tokens, int npos, int first, double *out)
{
    const model *m = r->m;
    const int L = (int)m->num_layers, h = (int)m->hidden_size, heads = (int)m->num_heads;
    const int kvh = (int)m->num_kv_heads, hd = (int)m->head_dim, qd = heads * hd, kvd = kvh * hd;
    const int f = (int)m->ffn_size, V = (int)m->vocab_size, T = npos + 1;
    const bool opt = m->family == MODEL_FAMILY_OPT;
    double *K = calloc((size_t)L * T * kvd, sizeof(double)), *Vc = calloc((size_t)L * T * kvd, sizeof(double));
    double *x = malloc(sizeof(double) * h), *hn = malloc(sizeof(double) * h), *q = malloc(sizeof(double) * qd);
    double *k = malloc(sizeof(double) * kvd), *v = malloc(sizeof(double) * kvd), *att = malloc(sizeof(double) * qd);
    double *o = malloc(sizeof(double) * h), *g1 = malloc(sizeof(double) * f), *g2 = malloc(sizeof(double) * f);
    double *sc = malloc(sizeof(double) * T), *lg = malloc(sizeof(double) * V);
    for (int pos = 0; pos < T - 1; pos++) {
        int tok = tokens[pos];
        const double *E = W(r, L, opt ? "model.decoder.embed_tokens.weight" : "model.embed_tokens.weight");
        for (int i = 0; i < h; i++)
            x[i] = E[(size_t)tok * h + i];
        if (opt) {
            const double *P = W(r, L, "model.decoder.embed_positions.weight");
            for (int i = 0; i < h; i++)
                x[i] += P[(size_t)(pos + 2) * h + i];
        }
        for (int l = 0; l < L; l++) {
            norm(m, x, W(r, l, opt ? "self_attn_layer_norm.weight" : "input_layernorm.weight"),
                 opt ? W(r, l, "self_attn_layer_norm.bias") : NULL, h, hn);
            mv(W(r, l, "self_attn.q_proj.weight"), opt ? W(r, l, "self_attn.q_proj.bias") : NULL, hn, qd, h, q);
            mv(W(r, l, "self_attn.k_proj.weight"), opt ? W(r, l, "self_attn.k_proj.bias") : NULL, hn, kvd, h, k);
            mv(W(r, l, "self_attn.v_proj.weight"), opt ? W(r, l, "self_attn.v_proj.bias") : NULL, hn, kvd, h, v);
            if (!opt) {
                rotary(q, heads, hd, pos, m->rope_theta);
                rotary(k, kvh, hd, pos, m->rope_theta);
            }
            kv_round(r, k, kvd);
            kv_round(r, v, kvd);
            memcpy(K + ((size_t)l * T + pos) * kvd, k, sizeof(double) * kvd);
            memcpy(Vc + ((size_t)l * T + pos) * kvd, v, sizeof(double) * kvd);
            for (int hh = 0; hh < heads; hh++) {
                int g = hh / (heads / kvh);
                double mx = -INFINITY, sum = 0;
                for (int c = 0; c <= pos; c++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++)
                        d += q[hh * hd + i] * K[((size_t)l * T + c) * kvd + g * hd + i];
                    sc[c] = d / sqrt(hd);
                    mx = sc[c] > mx ? sc[c] : mx;
                }
                for (int c = 0; c <= pos; c++)
                    sum += (sc[c] = exp(sc[c] - mx));
                for (int i = 0; i < hd; i++) {
                    double a = 0;
                    for (int c = 0; c <= pos; c++)
                        a += sc[c] / sum * Vc[((size_t)l * T + c) * kvd + g * hd + i];
                    att[hh * hd + i] = a;
                }
            }
            mv(W(r, l, opt ? "self_attn.out_proj.weight" : "self_attn.o_proj.weight"),
               opt ? W(r, l, "self_attn.out_proj.bias") : NULL, att, h, qd, o);
            for (int i = 0; i < h; i++)
                x[i] += o[i];
            norm(m, x, W(r, l, opt ? "final_layer_norm.weight" : "post_attention_layernorm.weight"),
                 opt ? W(r, l, "final_layer_norm.bias") : NULL, h, hn);
            if (opt) {
                mv(W(r, l, "fc1.weight"), W(r, l, "fc1.bias"), hn, f, h, g1);
                for (int i = 0; i < f; i++)
                    g1[i] = g1[i] > 0 ? g1[i] : 0;
                mv(W(r, l, "fc2.weight"), W(r, l, "fc2.bias"), g1, h, f, o);
            } else {
                mv(W(r, l, "mlp.gate_proj.weight"), NULL, hn, f, h, g1);
                mv(W(r, l, "mlp.up_proj.weight"), NULL, hn, f, h, g2);
                for (int i = 0; i < f; i++)
                    g1[i] = g1[i] / (1 + exp(-g1[i])) * g2[i];
                mv(W(r, l, "mlp.down_proj.weight"), NULL, g1, h, f, o);
            }
            for (int i = 0; i < h; i++)
                x[i] += o[i];
            if (l < L - 1) /* hidden states are kept in fp16 between layers */
                for (int i = 0; i < h; i++)
                    x[i] = f16r(x[i]);
        }
        if (pos >= first) {
            norm(m, x, W(r, L, opt ? "model.decoder.final_layer_norm.weight" : "model.norm.weight"),
                 opt ? W(r, L, "model.decoder.final_layer_norm.bias") : NULL, h, hn);
            const double *lm = m->tied_embeddings
                                   ? W(r, L, opt ? "model.decoder.embed_tokens.weight" : "model.embed_tokens.weight")
                                   : W(r, L, "lm_head.weight");
            mv(lm, NULL, hn, V, h, lg);
            memcpy(out + (size_t)(pos - first) * V, lg, sizeof(double) * V);
        }
    }
    free(K); free(Vc); free(x); free(hn); free(q); free(k); free(v); free(att); free(o);
    free(g1); free(g2); free(sc); free(lg);
}

typedef struct placement_case {
    const char *name;
    const char *pct[6];
} placement_case;

static const placement_case places[] = {
    {"all in RAM", {"0", "100", "0", "100", "0", "100"}},
    {"weights on disk", {"0", "0", "0", "100", "0", "100"}},
    {"KV cache on disk", {"0", "100", "0", "0", "0", "100"}},
    {"hidden states on disk", {"0", "100", "0", "100", "0", "0"}},
    {"mixed", {"0", "40", "0", "34", "0", "67"}},
};

static void run_model(const char *path, quant wq, quant kq, double tol)
{
    diag e = {0};
    model m;
    hwprofile *hw = calloc(1, sizeof *hw);
    CHECK(model_load(path, &m, &e) == LLMSIM_OK, "%s: %s", path, e.msg);
    CHECK(hwprofile_load("cpu-only", hw, &e) == LLMSIM_OK, "%s", e.msg);
    workload w = {PROMPT, GEN, 0};
    ref r;
    ref_init(&r, &m, 11, wq, kq);
    int32_t first_tokens[BLS * GEN];
    const size_t V = (size_t)m.vocab_size;
    float *logits = malloc(sizeof(float) * GEN * BLS * V);
    double *want = malloc(sizeof(double) * GEN * V);
    for (size_t c = 0; c < sizeof places / sizeof places[0]; c++) {
        policy p;
        policy_init(&p);
        CHECK(policy_from_percent(places[c].pct, &p, &e) == LLMSIM_OK, "%s", e.msg);
        p.gpu_batch_size = GBS;
        p.num_gpu_batches = NGB;
        p.weight_quant = wq;
        p.kv_quant = kq;
        plan pl;
        CHECK(plan_build(&m, hw, &p, &w, &pl, &e) == LLMSIM_OK, "%s", e.msg);
        engine_opts o = {0};
        o.synthetic_seed = 11;
        o.prompt_seed = 5;
        o.threads = 2;
        o.logits_out = logits;
        engine_result res;
        llmsim_status st = engine_run(&m, hw, &p, &w, &pl, &o, &res, &e);
        CHECK(st == LLMSIM_OK, "%s, %s: %s", m.name, places[c].name, e.msg);
        if (st) {
            plan_free(&pl);
            continue;
        }
        double worst = 0;
        for (int s = 0; s < BLS; s++) {
            /* the reference follows the engine's tokens: prompt, then generated */
            int32_t toks[PROMPT + GEN];
            for (int a = 0; a < PROMPT; a++) {
                uint64_t x = o.prompt_seed ^ ((uint64_t)s << 32) ^ (uint64_t)a;
                uint64_t z = (x += 0x9e3779b97f4a7c15ull);
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
                toks[a] = (int32_t)((z ^ (z >> 31)) % V);
            }
            for (int a = 0; a < GEN; a++)
                toks[PROMPT + a] = res.tokens[(size_t)s * GEN + a];
            ref_sequence(&r, toks, PROMPT + GEN - 1, PROMPT - 1, want);
            for (int step = 0; step < GEN; step++)
                for (size_t v = 0; v < V; v++) {
                    double d = fabs(logits[((size_t)step * BLS + s) * V + v] - want[(size_t)step * V + v]);
                    worst = d > worst ? d : worst;
                }
        }
        CHECK(worst <= tol, "%s, %s: logits differ from the reference by %.3g (> %.3g)", m.name,
              places[c].name, worst, tol);
        if (c == 0)
            memcpy(first_tokens, res.tokens, sizeof first_tokens);
        else
            CHECK(memcmp(first_tokens, res.tokens, sizeof first_tokens) == 0,
                  "%s, %s: tokens differ from the all-in-RAM run", m.name, places[c].name);
        CHECK(res.direct_io || c == 0, "%s: O_DIRECT not in effect on the offload files", places[c].name);
        printf("# %s %s%s: max |logit - reference| = %.3g over %d steps x %d sequences\n", m.name,
               places[c].name, wq.bits ? " (quantized)" : "", worst, GEN, BLS);
        engine_result_free(&res);
        plan_free(&pl);
    }
    free(logits);
    free(want);
    ref_free(&r);
    free(hw);
}

/* Perplexity: the NLL the engine sums in the prefill equals the reference's
 * over every position of every prompt, on disk as in RAM. */
static void test_perplexity(void)
{
    diag e = {0};
    model m;
    hwprofile *hw = calloc(1, sizeof *hw);
    CHECK(model_load(tap_data("models/tiny-opt.yaml"), &m, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(hwprofile_load("cpu-only", hw, &e) == LLMSIM_OK, "%s", e.msg);
    const quant none = {0, 0};
    ref r;
    ref_init(&r, &m, 11, none, none);
    const size_t V = (size_t)m.vocab_size;
    int32_t prompts[BLS * PROMPT];
    long long from[BLS];
    for (int s = 0; s < BLS; s++) {
        from[s] = s == 0 ? 1 : 3; /* the first window from its second token, the others later */
        for (int a = 0; a < PROMPT; a++)
            prompts[s * PROMPT + a] = (int32_t)((s * 37 + a * 11) % (int)V);
    }
    double want = 0;
    long long count = 0;
    double *lg = malloc(sizeof(double) * PROMPT * V);
    for (int s = 0; s < BLS; s++) {
        ref_sequence(&r, prompts + s * PROMPT, PROMPT - 1, 0, lg);
        for (int pos = (int)from[s] - 1; pos < PROMPT - 1; pos++) {
            const double *l = lg + (size_t)pos * V;
            double mx = l[0], sum = 0;
            for (size_t v = 1; v < V; v++)
                mx = l[v] > mx ? l[v] : mx;
            for (size_t v = 0; v < V; v++)
                sum += exp(l[v] - mx);
            want += -(l[prompts[s * PROMPT + pos + 1]] - mx - log(sum));
            count++;
        }
    }
    free(lg);
    const char *pcts[2][6] = {{"0", "100", "0", "100", "0", "100"}, {"0", "0", "0", "0", "0", "0"}};
    for (int c = 0; c < 2; c++) {
        policy p;
        policy_init(&p);
        policy_from_percent(pcts[c], &p, &e);
        p.gpu_batch_size = GBS;
        p.num_gpu_batches = NGB;
        workload w = {PROMPT, 1, BLS};
        plan pl;
        CHECK(plan_build(&m, hw, &p, &w, &pl, &e) == LLMSIM_OK, "%s", e.msg);
        engine_opts o = {0};
        o.synthetic_seed = 11;
        o.threads = 2;
        o.prompts = prompts;
        o.score_from = from;
        o.num_windows = BLS;
        engine_result res;
        CHECK(engine_run(&m, hw, &p, &w, &pl, &o, &res, &e) == LLMSIM_OK, "%s", e.msg);
        CHECK(res.nll_count == count, "scored %lld tokens, want %lld", res.nll_count, count);
        CHECK_REL(res.nll_sum, want, 1e-4, "perplexity NLL vs the reference");
        printf("# perplexity (%s): engine %.6g, reference %.6g over %lld tokens\n",
               c ? "on disk" : "in RAM", exp(res.nll_sum / (double)res.nll_count),
               exp(want / (double)count), count);
        engine_result_free(&res);
        plan_free(&pl);
    }
    ref_free(&r);
    free(hw);
}

/* A Hugging Face checkpoint (written here from the synthetic values, in two
 * shards with an index, fp32) loads to the same model: the same logits, bit
 * for bit, as --synthetic with the same seed. */
static void test_checkpoint(const char *model_path)
{
    diag e = {0};
    model m;
    hwprofile *hw = calloc(1, sizeof *hw);
    CHECK(model_load(model_path, &m, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(hwprofile_load("cpu-only", hw, &e) == LLMSIM_OK, "%s", e.msg);
    char dir[] = "/tmp/llmsim-ckpt-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    const int L = (int)m.num_layers;
    bool opt = m.family == MODEL_FAMILY_OPT;
    /* shard 1: layers 0..L-2; shard 2: the last layer and the head */
    st_write_tensor wt[2][256];
    int nw[2] = {0, 0};
    float *bufs[512];
    int64_t shapes[512][2];
    char names[512][128];
    int nb = 0;
    char index[16384];
    size_t ip = (size_t)snprintf(index, sizeof index, "{\"metadata\": {}, \"weight_map\": {");
    for (int u = 0; u <= L; u++) {
        model_tensor t[MODEL_MAX_TENSORS];
        int n = u == L ? model_head_tensors(&m, t) : model_layer_tensors(&m, t);
        int shard = u < L - 1 ? 0 : 1;
        for (int i = 0; i < n; i++, nb++) {
            bufs[nb] = malloc(sizeof(float) * (size_t)(t[i].rows * t[i].cols));
            engine_synthetic_values(11, u, &t[i], bufs[nb]);
            if (u == L)
                snprintf(names[nb], sizeof names[nb], "%s", t[i].name);
            else
                snprintf(names[nb], sizeof names[nb], "%s.%d.%s", opt ? "model.decoder.layers" : "model.layers",
                         u, t[i].name);
            bool vec = t[i].rows == 1;
            shapes[nb][0] = vec ? t[i].cols : t[i].rows;
            shapes[nb][1] = t[i].cols;
            wt[shard][nw[shard]++] = (st_write_tensor){names[nb], ST_F32, vec ? 1 : 2, shapes[nb], bufs[nb]};
            ip += (size_t)snprintf(index + ip, sizeof index - ip, "%s\"%s\": \"part-%d.safetensors\"",
                                   nb ? ", " : "", names[nb], shard + 1);
        }
    }
    snprintf(index + ip, sizeof index - ip, "}}");
    char path[256];
    for (int sh = 0; sh < 2; sh++) {
        snprintf(path, sizeof path, "%s/part-%d.safetensors", dir, sh + 1);
        CHECK(st_write(path, wt[sh], (size_t)nw[sh], &e) == LLMSIM_OK, "%s", e.msg);
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    fputs(index, f);
    fclose(f);

    const size_t V = (size_t)m.vocab_size;
    float *a = malloc(sizeof(float) * GEN * BLS * V), *b = malloc(sizeof(float) * GEN * BLS * V);
    const char *pct[6] = {"0", "50", "0", "50", "0", "100"};
    policy p;
    policy_init(&p);
    policy_from_percent(pct, &p, &e);
    p.gpu_batch_size = GBS;
    p.num_gpu_batches = NGB;
    workload w = {PROMPT, GEN, 0};
    plan pl;
    CHECK(plan_build(&m, hw, &p, &w, &pl, &e) == LLMSIM_OK, "%s", e.msg);
    for (int pass = 0; pass < 2; pass++) {
        engine_opts o = {0};
        o.synthetic_seed = 11;
        o.prompt_seed = 5;
        o.threads = 2;
        o.logits_out = pass ? b : a;
        o.weights_path = pass ? dir : NULL;
        engine_result res;
        CHECK(engine_run(&m, hw, &p, &w, &pl, &o, &res, &e) == LLMSIM_OK, "%s: %s", m.name, e.msg);
        engine_result_free(&res);
    }
    CHECK(memcmp(a, b, sizeof(float) * GEN * BLS * V) == 0,
          "%s: a checkpoint of the synthetic weights gives other logits", m.name);
    /* a checkpoint that lacks a tensor says which */
    snprintf(path, sizeof path, "%s/part-2.safetensors", dir);
    CHECK(st_write(path, wt[1], (size_t)nw[1] - 1, &e) == LLMSIM_OK, "%s", e.msg);
    engine_opts o = {0};
    o.weights_path = dir;
    o.threads = 1;
    engine_result res;
    diag_clear(&e);
    CHECK(engine_run(&m, hw, &p, &w, &pl, &o, &res, &e) == LLMSIM_EINPUT, "a missing tensor is bad input");
    CHECK(strstr(e.msg, "tensor") != NULL, "the message names the tensor: %s", e.msg);
    engine_result_free(&res);
    plan_free(&pl);
    for (int i = 0; i < nb; i++)
        free(bufs[i]);
    free(a);
    free(b);
    for (int sh = 0; sh < 2; sh++) {
        snprintf(path, sizeof path, "%s/part-%d.safetensors", dir, sh + 1);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    unlink(path);
    rmdir(dir);
    free(hw);
}

int main(void)
{
    test_checkpoint(tap_data("models/tiny-opt.yaml"));
    test_checkpoint(tap_data("models/tiny-llama.yaml"));
    test_perplexity();
    const quant none = {0, 0};
    run_model(tap_data("models/tiny-opt.yaml"), none, none, LOGIT_TOL);
    run_model(tap_data("models/tiny-llama.yaml"), none, none, LOGIT_TOL);
    run_model(tap_data("models/tiny-opt.yaml"), (quant){4, 32}, (quant){8, 32}, QUANT_LOGIT_TOL);
    run_model(tap_data("models/tiny-llama.yaml"), (quant){8, 64}, (quant){4, 16}, QUANT_LOGIT_TOL);
    return tap_done();
}
