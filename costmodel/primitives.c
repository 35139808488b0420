/* primitives — see primitives.h. */
#include "costmodel/primitives.h"

#include <math.h>

double cm_copy_time(const hw_link *link, double bytes)
{
    if (bytes <= 0)
        return 0.0;
    return link->latency_s + bytes / link->bandwidth_Bps;
}

double cm_stream_time(const hw_link *link, double bytes)
{
    return bytes > 0 ? bytes / link->bandwidth_Bps : 0.0;
}

/* Interpolate in log m over the points of one shape class (same n*k). */
static double rate_in_class(const hw_gemm_table *t, double nk, double m)
{
    double lo_m = -1, lo_r = 0, hi_m = -1, hi_r = 0;
    for (int i = 0; i < t->npoints; i++) {
        const hw_gemm_point *p = &t->points[i];
        if (p->n * p->k != nk)
            continue;
        if (p->m <= m && (lo_m < 0 || p->m > lo_m)) {
            lo_m = p->m;
            lo_r = p->flops;
        }
        if (p->m >= m && (hi_m < 0 || p->m < hi_m)) {
            hi_m = p->m;
            hi_r = p->flops;
        }
    }
    if (lo_m < 0)
        return hi_r;
    if (hi_m < 0 || hi_m == lo_m)
        return lo_r;
    double w = (log(m) - log(lo_m)) / (log(hi_m) - log(lo_m));
    return lo_r + w * (hi_r - lo_r);
}

double cm_gemm_rate(const hw_gemm_table *t, double m, double n, double k)
{
    if (t->npoints == 0)
        return 0.0;
    if (m < 1)
        m = 1;
    /* Shape classes are the distinct n*k products (0 = any shape). Pick the
     * two classes around the query in log(n*k) and interpolate between them. */
    double q = n * k, below = -1, above = -1;
    for (int i = 0; i < t->npoints; i++) {
        double nk = t->points[i].n * t->points[i].k;
        if (nk <= q && nk > below)
            below = nk;
        if (nk >= q && (above < 0 || nk < above))
            above = nk;
    }
    if (below < 0)
        return rate_in_class(t, above, m);
    if (above < 0 || above == below || below <= 0)
        return rate_in_class(t, above >= 0 && below <= 0 ? above : below, m);
    double rb = rate_in_class(t, below, m), ra = rate_in_class(t, above, m);
    double w = (log(q) - log(below)) / (log(above) - log(below));
    return rb + w * (ra - rb);
}

static double dev_bandwidth(const hwprofile *hw, cm_device dev)
{
    return dev == CM_DEV_GPU ? hw->gpu.memory_bandwidth_Bps : hw->cpu.memory_bandwidth_Bps;
}

double cm_cpu_read_Bps(const hwprofile *hw, double ws_bytes)
{
    const hw_read_table *t = &hw->cpu.read;
    if (t->npoints == 0 || ws_bytes <= 0)
        return hw->cpu.memory_bandwidth_Bps;
    if (ws_bytes <= t->points[0].ws_bytes)
        return t->points[0].Bps;
    for (int i = 1; i < t->npoints; i++) {
        const hw_read_point *a = &t->points[i - 1], *b = &t->points[i];
        if (ws_bytes <= b->ws_bytes) {
            double w = (log(ws_bytes) - log(a->ws_bytes)) / (log(b->ws_bytes) - log(a->ws_bytes));
            return a->Bps + w * (b->Bps - a->Bps);
        }
    }
    return t->points[t->npoints - 1].Bps;
}

/* The working set of weights the table measured a GEMM of n x k at: its
 * own weights (elem_bytes each) at the shape class the rate comes from, the
 * table's largest or smallest class beyond them. */
static double table_ws_bytes(const hw_gemm_table *t, double nk, double elem_bytes)
{
    double lo = -1, hi = -1;
    for (int i = 0; i < t->npoints; i++) {
        double c = t->points[i].n * t->points[i].k;
        if (c > 0 && (lo < 0 || c < lo))
            lo = c;
        if (c > hi)
            hi = c;
    }
    if (lo < 0) /* a table of "any shape" figures: the weights' own */
        return nk * elem_bytes;
    return (nk < lo ? lo : nk > hi ? hi : nk) * elem_bytes;
}

double cm_gemm_time(const hwprofile *hw, cm_device dev, double m, double n, double k,
                    double elem_bytes, double ws_bytes)
{
    if (m <= 0 || n <= 0 || k <= 0)
        return 0.0;
    const hw_gemm_table *t = dev == CM_DEV_GPU ? &hw->gpu.gemm : &hw->cpu.gemm;
    double flops = 2.0 * m * n * k;
    double compute = flops / cm_gemm_rate(t, m, n, k);
    double bw = dev_bandwidth(hw, dev);
    double weights_bw = dev == CM_DEV_CPU ? cm_cpu_read_Bps(hw, ws_bytes) : bw;
    const double w_bytes = k * n * elem_bytes;
    if (dev == CM_DEV_CPU && hw->cpu.read.npoints > 0) {
        double extra = w_bytes / weights_bw - w_bytes / cm_cpu_read_Bps(hw, table_ws_bytes(t, n * k, elem_bytes));
        return compute + fmax(extra, 0.0);
    }
    double memory = w_bytes / weights_bw + (m * k + m * n) * elem_bytes / bw;
    return fmax(compute, memory);
}

double cm_attention_prefill_time(const hwprofile *hw, cm_device dev, double batch, double q_len,
                                 double heads, double head_dim)
{
    double flops = 4.0 * batch * q_len * q_len * heads * head_dim;
    if (flops <= 0)
        return 0.0;
    double rate = dev == CM_DEV_GPU ? hw->gpu.attn_prefill_flops
                                    : cm_gemm_rate(&hw->cpu.gemm, batch * q_len, q_len, head_dim);
    return flops / rate;
}

double cm_attention_decode_time(const hwprofile *hw, cm_device dev, double batch, double ctx,
                                double heads, double kv_heads, double head_dim)
{
    double bytes = 2.0 * batch * ctx * kv_heads * head_dim * 2.0; /* fp16 K and V */
    double flops = 4.0 * batch * ctx * heads * head_dim;
    if (bytes <= 0)
        return 0.0;
    if (dev == CM_DEV_GPU)
        return fmax(bytes / hw->gpu.attn_decode_Bps, flops / hw->gpu.attn_prefill_flops);
    double cpu_rate = cm_gemm_rate(&hw->cpu.gemm, batch, ctx, head_dim);
    return fmax(bytes / hw->cpu.attn_Bps, flops / cpu_rate);
}

double cm_memory_pass_time(const hwprofile *hw, cm_device dev, double read_bytes,
                           double write_bytes)
{
    double b = read_bytes + write_bytes;
    return b > 0 ? b / dev_bandwidth(hw, dev) : 0.0;
}

double cm_dequant_time(const hwprofile *hw, cm_device dev, int bits, double read_bytes, double fp16_bytes)
{
    if (dev == CM_DEV_CPU)
        for (int i = 0; i < hw->cpu.ndequant; i++)
            if (hw->cpu.dequant[i].bits == bits && hw->cpu.dequant[i].Bps > 0)
                return fp16_bytes > 0 ? fp16_bytes / hw->cpu.dequant[i].Bps : 0.0;
    return cm_memory_pass_time(hw, dev, read_bytes, fp16_bytes);
}
