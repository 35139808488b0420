/* interval — see interval.h. */
#include "costmodel/interval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/stats.h"

const char *const cm_interval_source_names[3] = {"none", "spreads", "calibration"};

/* The classes of figures that drift together. */
enum { C_CPU_GEMM, C_CPU_READ, C_CPU_MEM, C_CPU_ATTN, C_CPU_DEQ, C_DISK_R, C_DISK_W, C_GPU, C_LINKS, NCLASS };

#define STEP 1.05 /* the change of a class's rates for its elasticity */

static double median(double *v, int n)
{
    stats_sort(v, (size_t)n);
    return stats_median_sorted(v, (size_t)n);
}

static int gemm_spreads(const hw_gemm_table *t, double *v, int n)
{
    for (int i = 0; i < t->npoints && n < 4 * HW_MAX_POINTS; i++)
        v[n++] = t->points[i].spread;
    return n;
}

static int link_spreads(const hw_link *l, double *v, int n)
{
    for (int i = 0; l->present && i < l->npoints && n < 4 * HW_MAX_POINTS; i++)
        v[n++] = l->points[i].spread;
    return n;
}

/* Half the median spread of class c's points (interval.h). */
static double class_sigma(const hwprofile *hw, int c)
{
    double v[4 * HW_MAX_POINTS];
    int n = 0;
    switch (c) {
    case C_CPU_GEMM: n = gemm_spreads(&hw->cpu.gemm, v, 0); break;
    case C_CPU_READ:
        for (int i = 0; i < hw->cpu.read.npoints; i++)
            v[n++] = hw->cpu.read.points[i].spread;
        break;
    case C_CPU_MEM: v[n++] = hw->cpu.memory_bandwidth_spread; break;
    case C_CPU_ATTN: v[n++] = hw->cpu.attn_spread; break;
    case C_CPU_DEQ:
        for (int i = 0; i < hw->cpu.ndequant; i++)
            v[n++] = hw->cpu.dequant[i].spread;
        break;
    case C_DISK_R: n = hw->disk.present ? link_spreads(&hw->disk.read, v, 0) : 0; break;
    case C_DISK_W: n = hw->disk.present ? link_spreads(&hw->disk.write, v, 0) : 0; break;
    case C_GPU:
        if (hw->gpu.present)
            n = gemm_spreads(&hw->gpu.gemm_bf16, v, gemm_spreads(&hw->gpu.gemm, v, 0));
        break;
    case C_LINKS:
        for (int i = 0; hw->gpu.present && i < HW_NLINKS; i++)
            n = link_spreads(&hw->links[i], v, n);
        break;
    }
    return 0.5 * median(v, n);
}

static void scale_gemm(hw_gemm_table *t, double f)
{
    for (int i = 0; i < t->npoints; i++)
        t->points[i].flops *= f;
}

static void scale_link(hw_link *l, double f)
{
    l->bandwidth_Bps *= f;
    l->latency_s /= f;
    for (int i = 0; i < l->npoints; i++)
        l->points[i].time_s /= f;
}

/* Class c's rates of hw times f. */
static void scale_class(hwprofile *hw, int c, double f)
{
    switch (c) {
    case C_CPU_GEMM: scale_gemm(&hw->cpu.gemm, f); break;
    case C_CPU_READ:
        for (int i = 0; i < hw->cpu.read.npoints; i++)
            hw->cpu.read.points[i].Bps *= f;
        break;
    case C_CPU_MEM: hw->cpu.memory_bandwidth_Bps *= f; break;
    case C_CPU_ATTN: hw->cpu.attn_Bps *= f; break;
    case C_CPU_DEQ:
        for (int i = 0; i < hw->cpu.ndequant; i++)
            hw->cpu.dequant[i].Bps *= f;
        break;
    case C_DISK_R: scale_link(&hw->disk.read, f); break;
    case C_DISK_W: scale_link(&hw->disk.write, f); break;
    case C_GPU:
        scale_gemm(&hw->gpu.gemm, f);
        scale_gemm(&hw->gpu.gemm_bf16, f);
        hw->gpu.memory_bandwidth_Bps *= f;
        hw->gpu.attn_prefill_flops *= f;
        hw->gpu.attn_decode_Bps *= f;
        break;
    case C_LINKS:
        for (int i = 0; i < HW_NLINKS; i++)
            scale_link(&hw->links[i], f);
        break;
    }
}

static llmsim_status total_with(const model *m, const hwprofile *hw, const policy *p, const workload *w,
                                double *t, diag *e)
{
    cm_result r;
    llmsim_status st = cm_predict(m, hw, p, w, &r, e);
    *t = st ? NAN : r.total_s;
    cm_result_free(&r);
    return st;
}

/* From the spreads: the elasticity of the total to each class that has a
 * spread, combined in quadrature. */
static llmsim_status from_spreads(const model *m, const hwprofile *hw, const policy *p, const workload *w,
                                  cm_interval *out, diag *e)
{
    hwprofile *x = malloc(sizeof *x);
    if (!x)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    double t0 = 0, var = 0;
    llmsim_status st = total_with(m, hw, p, w, &t0, e);
    for (int c = 0; c < NCLASS && !st; c++) {
        double sigma = class_sigma(hw, c), t1 = 0;
        if (!(sigma > 0))
            continue;
        memcpy(x, hw, sizeof *x);
        scale_class(x, c, STEP);
        if ((st = total_with(m, x, p, w, &t1, e)))
            break;
        double elasticity = t0 > 0 ? log(t1 / t0) / log(STEP) : 0; /* negative: faster is shorter */
        var += elasticity * elasticity * sigma * sigma;
    }
    free(x);
    if (st)
        return st;
    out->sigma = sqrt(var);
    out->source = var > 0 ? CM_INTERVAL_SPREADS : CM_INTERVAL_NONE;
    out->lo = exp(-1.2815515655446004 * out->sigma);
    out->hi = exp(1.2815515655446004 * out->sigma);
    return LLMSIM_OK;
}

llmsim_status cm_predict_interval(const model *m, const hwprofile *hw, const policy *p, const workload *w,
                                  cm_interval *out, diag *e)
{
    memset(out, 0, sizeof *out);
    out->lo = out->hi = 1;
    const hw_calibration *k = &hw->calib;
    if (k->present && k->nheld >= 2 && k->held_err_p10 > -1) {
        out->source = CM_INTERVAL_CALIBRATION;
        out->lo = 1 / (1 + k->held_err_p90);
        out->hi = 1 / (1 + k->held_err_p10);
        return LLMSIM_OK;
    }
    return from_spreads(m, hw, p, w, out, e);
}
