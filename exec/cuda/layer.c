/* layer — see layer.h. */
#include "exec/cuda/layer.h"

#include <stdlib.h>
#include <string.h>

#include "common/units.h"

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

// ---- memory

/* A dry run's stand-in for a buffer: counted by the caller, not allocated. */
static void *dry_alloc(diag *e)
{
    void *p = malloc(1);
    if (!p)
        diag_set(e, LLMSIM_EFAIL, "out of memory");
    return p;
}

/* Why gdev_malloc(bytes) of `what` failed, and what to change. */
static void dev_oom(const gmem *g, size_t bytes, const char *what, diag *e)
{
    double total = 0, avail = 0;
    gdev_mem_info(g->dev, &total, &avail);
    char a[32], b[32], c[32];
    units_format(UNITS_BYTES, (double)bytes, a, sizeof a);
    units_format(UNITS_BYTES, (double)gdev_allocated_bytes(g->dev), b, sizeof b);
    units_format(UNITS_BYTES, avail, c, sizeof c);
    diag_set(e, LLMSIM_EINPUT, "out of GPU memory allocating %s (%s) with %s allocated and %s free; "
             "put more of the weights or the KV cache in CPU memory or on disk, or use smaller batches",
             what, a, b, c);
}

void *gmem_dalloc(gmem *g, size_t bytes, const char *what, diag *e)
{
    g->dev_bytes += (double)bytes;
    if (g->dry)
        return dry_alloc(e);
    void *p = gdev_malloc(g->dev, bytes);
    if (!p)
        dev_oom(g, bytes, what, e);
    return p;
}

void *gmem_halloc(gmem *g, size_t bytes, const char *what, diag *e)
{
    bytes = (size_t)offload_round(bytes);
    g->host_bytes += (double)bytes;
    if (g->dry)
        return dry_alloc(e);
    void *p = gdev_host_malloc(g->dev, bytes);
    if (!p)
        diag_set(e, LLMSIM_EFAIL, "out of pinned host memory allocating %s (%zu bytes)", what, bytes);
    return p;
}

void gmem_release(gmem *g, void *p, bool dev)
{
    if (!p)
        return;
    if (g->dry)
        free(p);
    else if (dev)
        gdev_free(g->dev, p);
    else
        gdev_host_free(g->dev, p);
}

void *gmem_scratch_alloc_cb(void *ctx, size_t bytes)
{
    gmem_cb *a = ctx;
    return gmem_dalloc(a->g, bytes, "the compute scratch", a->e);
}

void gmem_scratch_free_cb(void *ctx, void *p) { gmem_release(ctx, p, true); }

// ---- the weights

/* The weight slots' layout: each unit's tensors off the GPU packed,
 * GL_ALIGN-aligned; the largest unit's bytes. */
static size_t slots_layout(gl_weights *w)
{
    size_t slot = 0;
    for (int u = 0; u <= w->L; u++) {
        const exec_wunit *un = &w->units[u];
        gl_slot_map *sm = &w->slots[u];
        for (int i = 0; i < un->n; i++)
            if (un->t[i].home != TIER_GPU) {
                sm->off[i] = sm->bytes;
                sm->bytes += round_up(un->t[i].bytes, GL_ALIGN);
            }
        slot = sm->bytes > slot ? sm->bytes : slot;
    }
    return slot;
}

llmsim_status gl_weights_layout(gmem *g, offload_dir *dir, const model *m, const quant *wq,
                                const placement_realized *pr, gl_weights *w, diag *e)
{
    const int L = m->num_layers;
    memset(w, 0, sizeof *w);
    w->L = L;
    w->units = calloc((size_t)L + 1, sizeof *w->units);
    w->slots = calloc((size_t)L + 1, sizeof *w->slots);
    if (!w->units || !w->slots)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    exec_weights_layout(w->units, m, wq, pr, &w->wext);
    const uint64_t disk = w->wext.disk_bytes, stage = w->wext.unit_disk_bytes;
    const size_t slot = slots_layout(w), deq = w->wext.fp16_values;
    if (disk && !g->dry)
        TRY(offload_file_create(dir, "weights.bin", disk, &w->wfile, e));
    for (int s = 0; s < 2; s++) {
        if (stage && !(w->wstage[s] = gmem_halloc(g, stage, "the weight staging", e)))
            return e->status;
        if (slot && !(w->wslot[s] = gmem_dalloc(g, slot, "a GPU weight slot", e)))
            return e->status;
    }
    if (deq && !(w->deq = gmem_dalloc(g, deq * 2, "the dequantized weights", e)))
        return e->status;
    for (int u = 0; u <= L; u++) /* the resident ones */
        for (int i = 0; i < w->units[u].n; i++) {
            exec_wtensor *t = &w->units[u].t[i];
            if (t->home == TIER_GPU && !(t->data = gmem_dalloc(g, t->bytes, "the weights", e)))
                return e->status;
            if (t->home == TIER_CPU &&
                !(t->data = gmem_halloc(g, t->bytes, "the weights in CPU memory", e)))
                return e->status;
        }
    return LLMSIM_OK;
}

/* A tensor of the fill not on disk: stored in its pinned home, or through
 * the (pinned) stage to the GPU. */
static llmsim_status weights_place(const exec_wfill *f, exec_wtensor *t, const float *vals,
                                   uint8_t *stage, diag *e)
{
    gmem *g = f->ctx;
    if (t->home == TIER_CPU) {
        exec_wtensor_store(f, t, vals, t->data);
        return LLMSIM_OK;
    }
    memset(stage, 0, offload_round(t->bytes));
    exec_wtensor_store(f, t, vals, stage);
    TRY(gdev_copy(g->dev, GDEV_S_LOAD_W, GDEV_H2D, t->data, stage, t->bytes, e));
    return gdev_stream_sync(g->dev, GDEV_S_LOAD_W, e); /* the stage is reused */
}

static void *stage_alloc_cb(void *g, size_t bytes)
{
    return gdev_host_malloc(((gmem *)g)->dev, (size_t)offload_round(bytes));
}

static void stage_free_cb(void *g, void *p) { gdev_host_free(((gmem *)g)->dev, p); }

llmsim_status gl_weights_load(gmem *g, const model *m, const engine_opts *o, pool *threads,
                              const quant *wq, gl_weights *w, diag *e)
{
    const exec_wfill f = {.m = m, .o = o, .pool = threads, .wt = (k_wtype)m->dtype, .wq = wq,
                          .wfile = w->wfile, .stage_alloc = stage_alloc_cb,
                          .stage_free = stage_free_cb, .place = weights_place, .ctx = g};
    return exec_weights_fill(&f, w->units, &w->wext, e);
}

void gl_weights_free(gmem *g, gl_weights *w)
{
    if (w->units) {
        for (int u = 0; u <= w->L; u++)
            for (int i = 0; i < w->units[u].n; i++) {
                const exec_wtensor *t = &w->units[u].t[i];
                gmem_release(g, t->data, t->home == TIER_GPU);
            }
        free(w->units);
    }
    free(w->slots);
    for (int s = 0; s < 2; s++) {
        gmem_release(g, w->wstage[s], false);
        gmem_release(g, w->wslot[s], true);
    }
    gmem_release(g, w->deq, true);
    memset(w, 0, sizeof *w);
}

llmsim_status gl_load_unit(gmem *g, const gl_weights *w, int u, int ws, gdev_stream s, diag *e)
{
    const exec_wunit *un = &w->units[u];
    for (int i = 0; i < un->n; i++) {
        const exec_wtensor *t = &un->t[i];
        if (t->home == TIER_GPU)
            continue;
        const void *src = t->home == TIER_CPU ? (const void *)t->data
                                              : (const void *)(w->wstage[ws] + t->disk_rel);
        TRY(gdev_copy(g->dev, s, GDEV_H2D, (uint8_t *)w->wslot[ws] + w->slots[u].off[i], src,
                      t->bytes, e));
    }
    return LLMSIM_OK;
}

// ---- the math

const void *gl_tensor(const gl_ctx *c, int u, int i, int ws)
{
    const exec_wtensor *t = &c->w->units[u].t[i];
    return t->home == TIER_GPU ? t->data : (const uint8_t *)c->w->wslot[ws] + c->w->slots[u].off[i];
}

const void *gl_matrix(const gl_ctx *c, int u, int i, int ws, gdev_dtype *dt)
{
    const exec_wtensor *t = &c->w->units[u].t[i];
    if (t->quantized) {
        *dt = GDEV_F16;
        return c->deq + t->deq_off;
    }
    *dt = c->wt;
    return gl_tensor(c, u, i, ws);
}

llmsim_status gl_dequant(const gl_ctx *c, int u, int ws, diag *e)
{
    const exec_wunit *un = &c->w->units[u];
    for (int i = 0; i < un->n; i++) {
        const exec_wtensor *t = &un->t[i];
        if (t->quantized)
            TRY(gdev_dequant_f16(c->dev, gl_tensor(c, u, i, ws), (size_t)t->desc.rows,
                                 (size_t)t->desc.cols, c->wq->bits, c->wq->group_size,
                                 c->deq + t->deq_off, e));
    }
    return LLMSIM_OK;
}

/* A vector tensor (norm weight, bias) in fp32 on the device, in out. */
static llmsim_status vec_f32(const gl_ctx *c, int u, const char *name, int ws, float *out,
                             const float **res, diag *e)
{
    int i = exec_wunit_find(&c->w->units[u], name);
    if (i < 0)
        return diag_set(e, LLMSIM_EFAIL, "the model has no tensor %s", name);
    const exec_wtensor *t = &c->w->units[u].t[i];
    TRY(gdev_to_f32(c->dev, gl_tensor(c, u, i, ws), c->wt, (size_t)(t->desc.rows * t->desc.cols),
                    out, e));
    *res = out;
    return LLMSIM_OK;
}

llmsim_status gl_linear(const gl_ctx *c, int u, const char *name, const char *bias, int ws,
                        const float *x, size_t m, float *y, diag *e)
{
    int i = exec_wunit_find(&c->w->units[u], name);
    if (i < 0)
        return diag_set(e, LLMSIM_EFAIL, "the model has no tensor %s", name);
    const exec_wtensor *t = &c->w->units[u].t[i];
    gdev_dtype dt;
    const void *w = gl_matrix(c, u, i, ws, &dt);
    const float *b = NULL;
    if (bias && exec_wunit_find(&c->w->units[u], bias) >= 0) /* the model has it (model_layer_tensors) */
        TRY(vec_f32(c, u, bias, ws, c->a->vec + 2 * c->wmax, &b, e));
    return gdev_linear(c->dev, x, m, (size_t)t->desc.cols, w, dt, b, (size_t)t->desc.rows, y,
                       c->lin, e);
}

llmsim_status gl_norm(const gl_ctx *c, int u, const char *wn, const char *bn, int ws,
                      const float *x, size_t rows, float *out, diag *e)
{
    const float eps = (float)c->m->norm_eps;
    const float *v1 = NULL, *v2 = NULL;
    TRY(vec_f32(c, u, wn, ws, c->a->vec, &v1, e));
    if (c->m->norm_plus_one) /* Gemma: (1 + weight) in fp32, as xl_norm */
        TRY(gdev_add_scalar(c->dev, v1, c->h, 1.0f, c->a->vec, e));
    if (!bn)
        return gdev_rmsnorm(c->dev, x, rows, c->h, v1, eps, out, e);
    TRY(vec_f32(c, u, bn, ws, c->a->vec + c->wmax, &v2, e));
    return gdev_layernorm(c->dev, x, rows, c->h, v1, v2, eps, out, e);
}

llmsim_status gl_qkv(const gl_ctx *c, int j, int ws, const float *x, size_t rows, float *q,
                     float *k, float *v, diag *e)
{
    const exec_layer_names *nm = c->ln;
    TRY(gl_norm(c, j, nm->attn_norm_w, nm->attn_norm_b, ws, x, rows, c->a->hn, e));
    TRY(gl_linear(c, j, nm->q, nm->q_b, ws, c->a->hn, rows, q, e));
    TRY(gl_linear(c, j, nm->k, nm->k_b, ws, c->a->hn, rows, k, e));
    TRY(gl_linear(c, j, nm->v, nm->v_b, ws, c->a->hn, rows, v, e));
    if (c->m->qk_norm) { /* Qwen3: RMSNorm over each head of q and k, before RoPE (xl_qkv) */
        const model *m = c->m;
        const size_t hd = (size_t)m->head_dim;
        const float eps = (float)m->norm_eps;
        const float *w = NULL;
        TRY(vec_f32(c, j, nm->q_norm, ws, c->a->vec, &w, e));
        TRY(gdev_rmsnorm(c->dev, q, rows * (size_t)m->num_heads, hd, w, eps, q, e));
        TRY(vec_f32(c, j, nm->k_norm, ws, c->a->vec, &w, e));
        TRY(gdev_rmsnorm(c->dev, k, rows * (size_t)m->num_kv_heads, hd, w, eps, k, e));
    }
    return LLMSIM_OK;
}

llmsim_status gl_rotary(const gl_ctx *c, float *q, float *k, size_t seqs, size_t t, long long start,
                        diag *e)
{
    const model *m = c->m;
    if (m->position != MODEL_POS_ROTARY)
        return LLMSIM_OK;
    const size_t hd = (size_t)m->head_dim;
    TRY(gdev_rotary(c->dev, q, seqs, t, start, (size_t)m->num_heads, hd, m->rope_theta, c->inv_freq, e));
    return gdev_rotary(c->dev, k, seqs, t, start, (size_t)m->num_kv_heads, hd, m->rope_theta, c->inv_freq,
                       e);
}

llmsim_status gl_embed_scale(const gl_ctx *c, float *x, size_t n, diag *e)
{
    if (!c->m->scale_embeddings) /* Gemma: times sqrt(hidden), rounded to the dtype (xl_embed) */
        return LLMSIM_OK;
    return gdev_scale(c->dev, x, n, (float)model_embed_scale(c->m), x, e);
}

llmsim_status gl_rope_table(gmem *g, const model *m, double **out, diag *e)
{
    *out = NULL;
    if (m->position != MODEL_POS_ROTARY || m->rope_scaling.kind == MODEL_ROPE_NONE)
        return LLMSIM_OK; /* theta^(-2i/hd): the kernels' own, the unscaled bits */
    const size_t half = (size_t)m->head_dim / 2;
    if (!(*out = gmem_dalloc(g, half * sizeof **out, "the rotary frequencies", e)))
        return e->status;
    if (g->dry)
        return LLMSIM_OK;
    double *f = malloc(half * sizeof *f);
    if (!f)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    model_rope_inv_freq(m, f);
    llmsim_status st = gdev_copy(g->dev, GDEV_S_COMPUTE, GDEV_H2D, *out, f, half * sizeof *f, e);
    if (!st) /* f is freed below */
        st = gdev_stream_sync(g->dev, GDEV_S_COMPUTE, e);
    free(f);
    return st;
}

llmsim_status gl_post(const gl_ctx *c, int j, int ws, float *x, const float *att, size_t rows,
                      diag *e)
{
    const model *m = c->m;
    const exec_layer_names *nm = c->ln;
    const exec_acts *a = c->a;
    const size_t h = c->h, n = rows * c->f;
    TRY(gl_linear(c, j, nm->o, nm->o_b, ws, att, rows, a->tmp, e));
    TRY(gdev_add(c->dev, x, a->tmp, rows * h, x, e));
    TRY(gl_norm(c, j, nm->mlp_norm_w, nm->mlp_norm_b, ws, x, rows, a->hn, e));
    if (model_ffn_gated(m)) {
        float *gate = a->ffn, *up = a->ffn + n;
        TRY(gl_linear(c, j, nm->gate, NULL, ws, a->hn, rows, gate, e));
        TRY(gl_linear(c, j, nm->up, NULL, ws, a->hn, rows, up, e));
        if (m->ffn_kind == MODEL_FFN_GEGLU_TANH)
            TRY(gdev_gelu_tanh_mul(c->dev, gate, up, n, gate, e));
        else
            TRY(gdev_silu_mul(c->dev, gate, up, n, gate, e));
        TRY(gl_linear(c, j, nm->down, NULL, ws, gate, rows, a->tmp, e));
    } else {
        TRY(gl_linear(c, j, nm->fc1, nm->fc1_b, ws, a->hn, rows, a->ffn, e));
        if (m->ffn_kind == MODEL_FFN_GELU)
            TRY(gdev_gelu(c->dev, a->ffn, n, a->ffn, e));
        else
            TRY(gdev_relu(c->dev, a->ffn, n, a->ffn, e));
        TRY(gl_linear(c, j, nm->fc2, nm->fc2_b, ws, a->ffn, rows, a->tmp, e));
    }
    return gdev_add(c->dev, x, a->tmp, rows * h, x, e);
}

llmsim_status gl_logits(const gl_ctx *c, int ws, float *x, size_t rows, diag *e)
{
    const int L = c->w->L;
    const exec_head_names *nm = c->hn;
    TRY(gl_norm(c, L, nm->norm_w, nm->norm_b, ws, x, rows, x, e));
    int li = exec_wunit_find(&c->w->units[L], nm->lm_head);
    gdev_dtype dt;
    const void *w = gl_matrix(c, L, li, ws, &dt);
    return gdev_linear(c->dev, x, rows, c->h, w, dt, NULL, c->vocab, c->a->logits, c->lin, e);
}
