/* sizes — see sizes.h. */
#include "costmodel/sizes.h"

#include <math.h>
#include <string.h>

#include "common/quant_layout.h"

double quant_bytes(const quant *q, double n_values, int dtype_bytes)
{
    if (q->bits == 0)
        return n_values * dtype_bytes;
    /* every group, the last one partial, carries its block's metadata */
    return n_values * q->bits / 8.0 + ceil(n_values / q->group_size) * QUANT_BLOCK_META_BYTES;
}

double size_tensor_bytes(const model *m, const model_tensor *t, const quant *wq)
{
    double n = (double)t->rows * (double)t->cols;
    int db = model_dtype_bytes(m->dtype);
    if (!t->matrix || wq->bits == 0)
        return n * db;
    /* groups run along the input dimension, row by row */
    return quant_bytes(wq, n, db);
}

double size_tensor_fp16_bytes(const model_tensor *t)
{
    return (double)t->rows * (double)t->cols * SIZE_F16;
}

void size_weights_get(const model *m, const quant *wq, size_weights *w)
{
    memset(w, 0, sizeof *w);
    model_tensor t[MODEL_MAX_TENSORS];
    int n = model_layer_tensors(m, t);
    for (int i = 0; i < n; i++) {
        w->layer += size_tensor_bytes(m, &t[i], wq);
        w->layer_fp16 += size_tensor_fp16_bytes(&t[i]);
    }
    w->layer_tensors = n;
    n = model_head_tensors(m, t);
    for (int i = 0; i < n; i++) {
        w->head += size_tensor_bytes(m, &t[i], wq);
        w->head_fp16 += size_tensor_fp16_bytes(&t[i]);
    }
    w->total = (double)m->num_layers * w->layer + w->head;
}

double size_kv_bytes(const model *m, const quant *kq, double seqs, double tokens)
{
    double values = 2.0 * seqs * tokens * (double)model_kv_dim(m);
    return quant_bytes(kq, values, (int)SIZE_F16);
}

double size_kv_fp16_bytes(const model *m, double seqs, double tokens)
{
    return 2.0 * seqs * tokens * (double)model_kv_dim(m) * SIZE_F16;
}

size_t size_kv_row_bytes(const model *m, const quant *kq)
{
    size_t kvd = (size_t)model_kv_dim(m);
    return kq->bits ? quant_row_bytes(kvd, kq->bits, kq->group_size) : kvd * (size_t)SIZE_F16;
}

double size_kv_block_bytes(const model *m, const quant *kq, double block_tokens)
{
    return (double)m->num_layers * size_kv_bytes(m, kq, 1, block_tokens);
}

double size_disk_round(double bytes)
{
    return ceil(bytes / SIZE_DISK_ALIGN) * SIZE_DISK_ALIGN;
}

double size_kv_disk_bytes(const model *m, const quant *kq, double seqs, double tokens)
{
    return tokens * size_disk_round(seqs * 2.0 * (double)size_kv_row_bytes(m, kq));
}

double size_hidden_bytes(const model *m, double rows)
{
    return rows * (double)m->hidden_size * SIZE_F16;
}

double size_qkv_bytes(const model *m, double rows)
{
    return rows * (double)(model_q_dim(m) + 2 * model_kv_dim(m)) * SIZE_F16;
}

double size_attn_out_bytes(const model *m, double rows)
{
    return rows * (double)model_q_dim(m) * SIZE_F16;
}

double size_logits_bytes(const model *m, double rows)
{
    return rows * (double)m->vocab_size * SIZE_F32;
}

double size_scores_bytes(const model *m, double seqs, double queries, double ctx)
{
    return seqs * (double)m->num_heads * queries * ctx * SIZE_F32;
}

double size_work_bytes(const model *m, double seqs, double new_tokens, double ctx)
{
    const double h = (double)m->hidden_size, f = (double)m->ffn_size;
    const double qd = (double)model_q_dim(m), kvd = (double)model_kv_dim(m);
    const double ffn_inter = (model_ffn_gated(m) ? 2 : 1) * f;
    const double rows = seqs * new_tokens;
    const double tile = new_tokens < SIZE_ATTN_QUERY_TILE ? new_tokens : SIZE_ATTN_QUERY_TILE;
    double scores = size_scores_bytes(m, seqs, tile, ctx);
    return rows * (qd + 2 * kvd + h) * SIZE_F16 + fmax(rows * ffn_inter * SIZE_F16, scores);
}
