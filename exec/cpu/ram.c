/* ram — see ram.h. */
#include "exec/cpu/ram.h"

#include <stdlib.h>

#include "exec/offload.h"

void *cpu_ram_alloc(cpu_ram *r, size_t bytes)
{
    void *p = r->dry ? malloc(1) : offload_alloc(bytes);
    if (p)
        r->bytes += (double)offload_round(bytes);
    return p;
}

void *cpu_ram_alloc_cb(void *ctx, size_t bytes) { return cpu_ram_alloc(ctx, bytes); }

void cpu_ram_free_cb(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static void *stage_alloc_cb(void *ctx, size_t bytes)
{
    (void)ctx;
    return offload_alloc(bytes);
}

/* A RAM tensor of the fill: allocated now, stored in place. */
static llmsim_status place_cb(const exec_wfill *f, exec_wtensor *t, const float *vals,
                              uint8_t *stage, diag *e)
{
    (void)stage;
    if (!(t->data = cpu_ram_alloc(f->ctx, t->bytes)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory (weights)");
    exec_wtensor_store(f, t, vals, t->data);
    return LLMSIM_OK;
}

llmsim_status cpu_weights_init(cpu_ram *r, offload_dir *dir, const model *m, const quant *wq,
                               const placement_realized *pr, const engine_opts *o, pool *pl,
                               exec_wunit **units, exec_wextent *ext, offload_file **wfile,
                               diag *e)
{
    const int L = (int)m->num_layers;
    exec_wunit *u = *units = calloc((size_t)L + 1, sizeof *u);
    if (!u)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    exec_weights_layout(u, m, wq, pr, ext);
    if (r->dry) {
        for (int k = 0; k <= L; k++)
            for (int i = 0; i < u[k].n; i++)
                if (u[k].t[i].home != TIER_DISK)
                    r->bytes += (double)offload_round(u[k].t[i].bytes);
        return LLMSIM_OK;
    }
    llmsim_status st;
    if (ext->disk_bytes &&
        (st = offload_file_create(dir, "weights.bin", ext->disk_bytes, wfile, e)))
        return st;
    const exec_wfill f = {.m = m, .o = o, .pool = pl, .wt = (k_wtype)m->dtype, .wq = wq,
                          .wfile = *wfile, .stage_alloc = stage_alloc_cb,
                          .stage_free = cpu_ram_free_cb, .place = place_cb, .ctx = r};
    return exec_weights_fill(&f, u, ext, e);
}

void cpu_weights_free(exec_wunit *units, int L)
{
    if (!units)
        return;
    for (int u = 0; u <= L; u++)
        for (int i = 0; i < units[u].n; i++)
            free(units[u].t[i].data);
    free(units);
}
