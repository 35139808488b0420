/*
 * reftx — the reference transformer of the engine tests (reftx.h).
 */
#include "reftx.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec/engine.h"
#include "exec/half.h"
#include "exec/quant.h"

static double f16r(double v) { return half_f16_to_f32(half_f32_to_f16((float)v)); }

void ref_init(ref *r, const model *m, uint64_t seed, quant wq, quant kq)
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

void ref_free(ref *r)
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

/* y[n] = W[n][k] x[k] (+ b); x rounded to fp16 first when the ref says so */
static bool mv_round_x;

static void mv(const double *w, const double *b, const double *x0, int n, int k, double *y)
{
    double xr[4096];
    const double *x = x0;
    if (mv_round_x && k <= 4096) { /* the tests' models are far narrower */
        for (int j = 0; j < k; j++)
            xr[j] = f16r(x0[j]);
        x = xr;
    }
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
        assert(b); /* every LayerNorm here is OPT's, which has a bias */
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

void ref_sequence(ref *r, const int32_t *tokens, int npos, int first, double *out)
{
    mv_round_x = r->round_gemm_inputs;
    const model *m = r->m;
    const int L = (int)m->num_layers, h = (int)m->hidden_size, heads = (int)m->num_heads;
    const int kvh = (int)m->num_kv_heads, hd = (int)m->head_dim, qd = heads * hd, kvd = kvh * hd;
    const int f = (int)m->ffn_size, V = (int)m->vocab_size, T = npos + 1;
    const bool opt = m->family == MODEL_FAMILY_OPT;
    double *K = calloc((size_t)L * T * kvd, sizeof(double)), *Vc = calloc((size_t)L * T * kvd, sizeof(double));
    assert(kvh > 0 && heads % kvh == 0); /* grouped-query attention: whole groups */
    /* zeroed, though each is written before it is read: the static analyzer
     * cannot tie one loop's bound (qd, kvd, h) to the next one's */
    double *x = calloc((size_t)h, sizeof(double)), *hn = calloc((size_t)h, sizeof(double));
    double *q = calloc((size_t)qd, sizeof(double)), *k = calloc((size_t)kvd, sizeof(double));
    double *v = calloc((size_t)kvd, sizeof(double)), *att = calloc((size_t)qd, sizeof(double));
    double *o = calloc((size_t)h, sizeof(double)), *g1 = calloc((size_t)f, sizeof(double));
    double *g2 = calloc((size_t)f, sizeof(double)), *sc = calloc((size_t)T, sizeof(double));
    double *lg = calloc((size_t)V, sizeof(double));
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
            if (r->q_f16_now && pos >= r->q_f16_from)
                for (int i = 0; i < qd; i++)
                    q[i] = f16r(q[i]);
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

int32_t ref_prompt_token(uint64_t prompt_seed, long long seq, long long a, uint64_t vocab)
{
    uint64_t x = prompt_seed ^ ((uint64_t)seq << 32) ^ (uint64_t)a;
    uint64_t z = x + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (int32_t)((z ^ (z >> 31)) % vocab);
}

double ref_max_logit_error(ref *r, const float *logits, const int32_t *tokens, uint64_t prompt_seed, int bls,
                           int prompt, int gen)
{
    const size_t V = (size_t)r->m->vocab_size;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(prompt + gen));
    double *want = malloc(sizeof(double) * (size_t)gen * V);
    double worst = 0;
    for (int s = 0; s < bls; s++) {
        /* the reference follows the engine's tokens: prompt, then generated */
        for (int a = 0; a < prompt; a++)
            toks[a] = ref_prompt_token(prompt_seed, s, a, V);
        for (int a = 0; a < gen; a++)
            toks[prompt + a] = tokens[(size_t)s * (size_t)gen + (size_t)a];
        r->q_f16_now = r->q_f16 && r->q_f16[s];
        ref_sequence(r, toks, prompt + gen - 1, prompt - 1, want);
        for (int step = 0; step < gen; step++)
            for (size_t v = 0; v < V; v++) {
                double d = fabs(logits[((size_t)step * (size_t)bls + (size_t)s) * V + v] - want[(size_t)step * V + v]);
                worst = d > worst || d != d ? d : worst;
            }
    }
    free(toks);
    free(want);
    return worst;
}
