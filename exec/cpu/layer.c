/* layer — see layer.h. */
#include "exec/cpu/layer.h"

#include <string.h>

#include "exec/cpu/kernels.h"

const uint8_t *xl_tensor(const xl_ctx *c, int u, int i, const uint8_t *stage)
{
    const exec_wtensor *t = &c->units[u].t[i];
    return t->home == TIER_DISK ? stage + t->disk_rel : t->data;
}

const void *xl_matrix(const xl_ctx *c, int u, int i, const uint8_t *stage, k_wtype *wt)
{
    const exec_wtensor *t = &c->units[u].t[i];
    if (!t->quantized) {
        *wt = c->wt;
        return xl_tensor(c, u, i, stage);
    }
    *wt = K_WTYPE_F16;
    return c->deq + t->deq_off;
}

const float *xl_vec(const xl_ctx *c, int u, const char *name, const uint8_t *stage, float *out)
{
    int i = exec_wunit_find(&c->units[u], name);
    const exec_wtensor *t = &c->units[u].t[i];
    k_convert_to_f32(NULL, xl_tensor(c, u, i, stage), c->wt, (size_t)(t->desc.rows * t->desc.cols),
                     out);
    return out;
}

void xl_dequant(const xl_ctx *c, int u, const uint8_t *stage)
{
    for (int i = 0; i < c->units[u].n; i++) {
        const exec_wtensor *t = &c->units[u].t[i];
        if (!t->quantized)
            continue;
        /* fused to fp16, rows over the pool (the same bits as f16 of quant_dequantize_row) */
        k_dequantize_f16(c->pool, xl_tensor(c, u, i, stage), (size_t)t->desc.rows,
                         (size_t)t->desc.cols, c->wq->bits, c->wq->group_size,
                         c->deq + t->deq_off);
    }
}

void xl_linear(const xl_ctx *c, int u, const char *name, const char *bias, const uint8_t *stage,
               const float *x, size_t m, float *y)
{
    int i = exec_wunit_find(&c->units[u], name);
    const exec_wtensor *t = &c->units[u].t[i];
    k_wtype wt;
    const void *w = xl_matrix(c, u, i, stage, &wt);
    const float *b = NULL;
    if (bias && exec_wunit_find(&c->units[u], bias) >= 0) /* the model has it (model_layer_tensors) */
        b = xl_vec(c, u, bias, stage, c->a->vec + 2 * c->wmax);
    k_linear(c->pool, x, m, (size_t)t->desc.cols, w, wt, b, (size_t)t->desc.rows, y);
}

void xl_norm(const xl_ctx *c, int u, const char *wn, const char *bn, const uint8_t *stage,
             const float *x, size_t rows, float *out)
{
    float *v1 = c->a->vec, *v2 = c->a->vec + c->wmax;
    const float eps = (float)c->m->norm_eps;
    xl_vec(c, u, wn, stage, v1);
    if (c->m->norm_plus_one) /* Gemma: (1 + weight) in fp32, as transformers' GemmaRMSNorm */
        for (size_t i = 0; i < c->h; i++)
            v1[i] += 1.0f;
    if (bn)
        k_layernorm(c->pool, x, rows, c->h, v1, xl_vec(c, u, bn, stage, v2), eps, out);
    else
        k_rmsnorm(c->pool, x, rows, c->h, v1, eps, out);
}

void xl_qkv(const xl_ctx *c, int j, const uint8_t *stage, size_t rows)
{
    const exec_layer_names *nm = c->ln;
    exec_acts *a = c->a;
    xl_norm(c, j, nm->attn_norm_w, nm->attn_norm_b, stage, a->x, rows, a->hn);
    float *q = a->qkv, *kk = a->qkv + rows * c->qd, *vv = kk + rows * c->kvd;
    xl_linear(c, j, nm->q, nm->q_b, stage, a->hn, rows, q);
    xl_linear(c, j, nm->k, nm->k_b, stage, a->hn, rows, kk);
    xl_linear(c, j, nm->v, nm->v_b, stage, a->hn, rows, vv);
    if (c->m->qk_norm) { /* Qwen3: RMSNorm over each head of q and k, before RoPE */
        const model *m = c->m;
        const size_t hd = (size_t)m->head_dim;
        const float eps = (float)m->norm_eps;
        float *w = a->vec;
        k_rmsnorm(c->pool, q, rows * (size_t)m->num_heads, hd, xl_vec(c, j, nm->q_norm, stage, w), eps, q);
        k_rmsnorm(c->pool, kk, rows * (size_t)m->num_kv_heads, hd, xl_vec(c, j, nm->k_norm, stage, w),
                  eps, kk);
    }
}

void xl_rotary(const xl_ctx *c, float *q, float *k, const int64_t *pos, size_t rows)
{
    const model *m = c->m;
    double inv_freq[MODEL_MAX_HEAD_DIM / 2], *f = NULL;
    if (m->rope_scaling.kind != MODEL_ROPE_NONE) /* else theta^(-2i/hd), the unscaled bits */
        model_rope_inv_freq(m, f = inv_freq);
    k_rotary(c->pool, q, pos, rows, (size_t)m->num_heads, (size_t)m->head_dim, m->rope_theta, f);
    k_rotary(c->pool, k, pos, rows, (size_t)m->num_kv_heads, (size_t)m->head_dim, m->rope_theta, f);
}

void xl_attn_out(const xl_ctx *c, int j, const uint8_t *stage, size_t rows)
{
    exec_acts *a = c->a;
    xl_linear(c, j, c->ln->o, c->ln->o_b, stage, a->att, rows, a->tmp);
    k_add(c->pool, a->x, a->tmp, rows * c->h, a->x);
}

void xl_mlp(const xl_ctx *c, int j, const uint8_t *stage, size_t rows)
{
    const exec_layer_names *nm = c->ln;
    exec_acts *a = c->a;
    const size_t n = rows * c->f;
    xl_norm(c, j, nm->mlp_norm_w, nm->mlp_norm_b, stage, a->x, rows, a->hn);
    if (model_ffn_gated(c->m)) {
        float *gate = a->ffn, *up = a->ffn + n;
        xl_linear(c, j, nm->gate, NULL, stage, a->hn, rows, gate);
        xl_linear(c, j, nm->up, NULL, stage, a->hn, rows, up);
        if (c->m->ffn_kind == MODEL_FFN_GEGLU_TANH)
            k_gelu_tanh_mul(c->pool, gate, up, n, gate);
        else
            k_silu_mul(c->pool, gate, up, n, gate);
        xl_linear(c, j, nm->down, NULL, stage, gate, rows, a->tmp);
    } else {
        xl_linear(c, j, nm->fc1, nm->fc1_b, stage, a->hn, rows, a->ffn);
        if (c->m->ffn_kind == MODEL_FFN_GELU)
            k_gelu(c->pool, a->ffn, n, a->ffn);
        else
            k_relu(c->pool, a->ffn, n, a->ffn);
        xl_linear(c, j, nm->fc2, nm->fc2_b, stage, a->ffn, rows, a->tmp);
    }
    k_add(c->pool, a->x, a->tmp, rows * c->h, a->x);
}

void xl_embed(const xl_ctx *c, const int32_t *ids, const int32_t *pos, size_t t,
              const uint8_t *stage, float *out)
{
    const int L = (int)c->m->num_layers;
    const exec_wunit *head = &c->units[L];
    int ti = exec_wunit_find(head, c->hn->embed_tokens);
    k_wtype wt;
    const void *table = xl_matrix(c, L, ti, stage, &wt);
    k_embed(c->pool, ids, t, table, wt, (size_t)c->m->vocab_size, c->h, out);
    if (c->m->scale_embeddings) { /* Gemma: times sqrt(hidden), rounded to the dtype */
        const float sc = (float)model_embed_scale(c->m);
        for (size_t i = 0; i < t * c->h; i++)
            out[i] *= sc;
    }
    if (c->m->position != MODEL_POS_LEARNED)
        return;
    int pi = exec_wunit_find(head, c->hn->embed_positions);
    const void *pt = xl_matrix(c, L, pi, stage, &wt);
    const int off = c->m->family == MODEL_FAMILY_OPT ? 2 : 0;
    int32_t *pids = (int32_t *)(void *)c->a->att; /* free while embedding */
    for (size_t a = 0; a < t; a++)
        pids[a] = pos[a] + off;
    float *pe = c->a->tmp; /* [t][h] */
    k_embed(c->pool, pids, t, pt, wt, (size_t)head->t[pi].desc.rows, c->h, pe);
    k_add(c->pool, out, pe, t * c->h, out);
}

void xl_logits(const xl_ctx *c, float *x, size_t rows, const uint8_t *stage)
{
    const int L = (int)c->m->num_layers;
    xl_norm(c, L, c->hn->norm_w, c->hn->norm_b, stage, x, rows, x);
    int li = exec_wunit_find(&c->units[L], c->hn->lm_head);
    k_wtype wt;
    const void *w = xl_matrix(c, L, li, stage, &wt);
    k_linear(c->pool, x, rows, c->h, w, wt, NULL, (size_t)c->m->vocab_size, c->a->logits);
}
