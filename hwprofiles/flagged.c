/* flagged — the figures of a profile that spread over HW_SPREAD_LIMIT
 * (hwprofile.h). */
#include <stdio.h>

#include "hwprofiles/hwprofile.h"

static int flag_one(strbuf *out, double spread, const char *what)
{
    if (!(spread > HW_SPREAD_LIMIT))
        return 0;
    if (out)
        strbuf_printf(out, "%s: spread %.1f%%\n", what, 100 * spread);
    return 1;
}

static int flag_gemm(const hw_gemm_table *t, const char *dev, strbuf *out)
{
    int n = 0;
    for (int i = 0; i < t->npoints; i++) {
        const hw_gemm_point *p = &t->points[i];
        char what[128];
        snprintf(what, sizeof what, "%s GEMM m=%.0f n=%.0f k=%.0f", dev, p->m, p->n, p->k);
        n += flag_one(out, p->spread, what);
    }
    return n;
}

static int flag_link(const hw_link *l, const char *name, strbuf *out)
{
    int n = 0;
    for (int i = 0; l->present && i < l->npoints; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s, %.0f KiB", name, l->points[i].bytes / 1024);
        n += flag_one(out, l->points[i].spread, what);
    }
    return n;
}

int hwprofile_flagged(const hwprofile *hw, unsigned uses, strbuf *out)
{
    int n = 0;
    const hw_cpu *c = &hw->cpu;
    if (uses & HW_USES_CPU) {
        n += flag_one(out, c->memory_bandwidth_spread, "CPU memory bandwidth");
        n += flag_gemm(&c->gemm, "CPU", out);
        for (int i = 0; i < c->read.npoints; i++) {
            char what[128];
            snprintf(what, sizeof what, "CPU weight reads, working set %.0f MiB",
                     c->read.points[i].ws_bytes / 1048576);
            n += flag_one(out, c->read.points[i].spread, what);
        }
        n += flag_one(out, c->attn_spread, "CPU decode attention");
        for (int i = 0; i < c->ndequant; i++) {
            char what[64];
            snprintf(what, sizeof what, "CPU dequantization, %d-bit", c->dequant[i].bits);
            n += flag_one(out, c->dequant[i].spread, what);
        }
    }
    if ((uses & HW_USES_DISK_READ) && hw->disk.present)
        n += flag_link(&hw->disk.read, "disk read", out);
    if ((uses & HW_USES_DISK_WRITE) && hw->disk.present)
        n += flag_link(&hw->disk.write, "disk write", out);
    if ((uses & HW_USES_GPU) && hw->gpu.present) {
        n += flag_gemm(&hw->gpu.gemm, "GPU fp16", out);
        n += flag_gemm(&hw->gpu.gemm_bf16, "GPU bf16", out);
        for (int i = 0; i < HW_NLINKS; i++)
            n += flag_link(&hw->links[i], hw_link_names[i], out);
    }
    return n;
}
