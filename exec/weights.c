/* weights — see weights.h. */
#include "exec/weights.h"

#include <stdlib.h>
#include <string.h>

#include "costmodel/sizes.h"
#include "exec/model_io.h"
#include "exec/safetensors.h"

// ---- the layout

/* Unit u's tensors from disk offset disk_base: homes from tiers, stored
 * bytes, the disk ones packed, the quantized ones in the dequantized copy. */
static void unit_layout(exec_wunit *un, const model *m, const quant *wq, const tier *tiers,
                        bool head, uint64_t disk_base)
{
    model_tensor d[MODEL_MAX_TENSORS];
    un->n = head ? model_head_tensors(m, d) : model_layer_tensors(m, d);
    un->disk_base = disk_base;
    for (int i = 0; i < un->n; i++) {
        exec_wtensor *t = &un->t[i];
        t->desc = d[i];
        t->home = tiers[i];
        t->quantized = d[i].matrix && wq->bits;
        t->bytes = (size_t)size_tensor_bytes(m, &d[i], wq);
        if (t->quantized) {
            t->deq_off = un->fp16_values;
            un->fp16_values += (size_t)d[i].rows * (size_t)d[i].cols;
        }
        if (t->home == TIER_DISK) {
            t->disk_rel = un->disk_bytes;
            un->disk_bytes += offload_round(t->bytes);
        }
    }
}

void exec_weights_layout(exec_wunit *units, const model *m, const quant *wq,
                         const placement_realized *pr, exec_wextent *ext)
{
    const int L = (int)m->num_layers;
    memset(ext, 0, sizeof *ext);
    for (int u = 0; u <= L; u++) {
        exec_wunit *un = &units[u];
        unit_layout(un, m, wq, u == L ? pr->head_tiers : pr->layer_tiers, u == L,
                    ext->disk_bytes);
        ext->disk_bytes += un->disk_bytes;
        if (un->disk_bytes > ext->unit_disk_bytes)
            ext->unit_disk_bytes = un->disk_bytes;
        if (un->fp16_values > ext->fp16_values)
            ext->fp16_values = un->fp16_values;
        for (int i = 0; i < un->n; i++) {
            size_t n = (size_t)(un->t[i].desc.rows * un->t[i].desc.cols);
            ext->tensor_values = n > ext->tensor_values ? n : ext->tensor_values;
        }
    }
}

int exec_wunit_find(const exec_wunit *un, const char *name)
{
    for (int i = 0; i < un->n; i++)
        if (strcmp(un->t[i].desc.name, name) == 0)
            return i;
    return -1;
}

// ---- names (models/model.c lists them)

void exec_layer_names_get(const model *m, exec_layer_names *n)
{
    const bool opt = m->family == MODEL_FAMILY_OPT;
    *n = (exec_layer_names){
        .attn_norm_w = opt ? "self_attn_layer_norm.weight" : "input_layernorm.weight",
        .attn_norm_b = opt ? "self_attn_layer_norm.bias" : NULL,
        .q = "self_attn.q_proj.weight",
        .q_b = "self_attn.q_proj.bias",
        .k = "self_attn.k_proj.weight",
        .k_b = "self_attn.k_proj.bias",
        .v = "self_attn.v_proj.weight",
        .v_b = "self_attn.v_proj.bias",
        .o = opt ? "self_attn.out_proj.weight" : "self_attn.o_proj.weight",
        .o_b = opt ? "self_attn.out_proj.bias" : "self_attn.o_proj.bias",
        .q_norm = "self_attn.q_norm.weight",
        .k_norm = "self_attn.k_norm.weight",
        .mlp_norm_w = opt ? "final_layer_norm.weight" : "post_attention_layernorm.weight",
        .mlp_norm_b = opt ? "final_layer_norm.bias" : NULL,
        .fc1 = opt ? "fc1.weight" : "mlp.fc1.weight",
        .fc1_b = opt ? "fc1.bias" : "mlp.fc1.bias",
        .fc2 = opt ? "fc2.weight" : "mlp.fc2.weight",
        .fc2_b = opt ? "fc2.bias" : "mlp.fc2.bias",
        .gate = "mlp.gate_proj.weight",
        .up = "mlp.up_proj.weight",
        .down = "mlp.down_proj.weight",
    };
}

void exec_head_names_get(const model *m, exec_head_names *n)
{
    const bool opt = m->family == MODEL_FAMILY_OPT, ln = m->norm == MODEL_NORM_LAYERNORM;
    *n = (exec_head_names){
        .embed_tokens = opt ? "model.decoder.embed_tokens.weight" : "model.embed_tokens.weight",
        .embed_positions = opt ? "model.decoder.embed_positions.weight" : "model.embed_positions.weight",
        .norm_w = ln && opt ? "model.decoder.final_layer_norm.weight" : "model.norm.weight",
        .norm_b = !ln ? NULL : opt ? "model.decoder.final_layer_norm.bias" : "model.norm.bias",
    };
    n->lm_head = m->tied_embeddings ? n->embed_tokens : "lm_head.weight";
}

// ---- filling

void exec_wtensor_store(const exec_wfill *f, const exec_wtensor *t, const float *v, uint8_t *dst)
{
    mio_store_values(f->pool, v, (size_t)t->desc.rows, (size_t)t->desc.cols, f->wt,
                     t->quantized ? f->wq : NULL, dst);
}

/* Tensor t of unit un, of fp32 values vals, to its home: a disk tensor
 * through stage (zeroed to its aligned size) into the weights file. */
static llmsim_status tensor_put(const exec_wfill *f, const exec_wunit *un, exec_wtensor *t,
                                const float *vals, uint8_t *stage, diag *e)
{
    if (t->home != TIER_DISK)
        return f->place(f, t, vals, stage, e);
    memset(stage, 0, offload_round(t->bytes));
    exec_wtensor_store(f, t, vals, stage);
    return offload_write(f->wfile, stage, offload_round(t->bytes), un->disk_base + t->disk_rel, e);
}

llmsim_status exec_weights_fill(const exec_wfill *f, exec_wunit *units, const exec_wextent *ext,
                                diag *e)
{
    const int L = (int)f->m->num_layers;
    const engine_opts *o = f->o;
    st_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    llmsim_status st;
    if (o->weights_path && (st = st_open(o->weights_path, &ck, e)))
        return st;
    const size_t maxn = ext->tensor_values;
    float *vals = malloc(maxn * sizeof *vals);
    uint8_t *stage = f->stage_alloc(f->ctx, maxn * 4 + OFFLOAD_ALIGN);
    st = vals && stage ? LLMSIM_OK : diag_set(e, LLMSIM_EFAIL, "out of memory loading weights");
    for (int u = 0; u <= L && !st; u++) {
        exec_wunit *un = &units[u];
        for (int i = 0; i < un->n && !st; i++) {
            exec_wtensor *t = &un->t[i];
            if (o->interrupt && *o->interrupt)
                break; /* ^C while loading: the engine sees the flag and stops */
            if (!(st = mio_load_values(f->m, o, o->weights_path ? &ck : NULL, f->pool, u, &t->desc,
                                       vals, e)))
                st = tensor_put(f, un, t, vals, stage, e);
        }
    }
    free(vals);
    if (stage)
        f->stage_free(f->ctx, stage);
    st_close(&ck);
    return st;
}
