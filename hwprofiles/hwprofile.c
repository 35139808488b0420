/*
 * hwprofile — YAML load and save. See hwprofile.h for the fields and
 * README.md ("Hardware profiles") for the file format.
 */
#include "hwprofiles/hwprofile.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/datadir.h"
#include "common/units.h"
#include "common/yamldoc.h"

const char *const hw_link_names[HW_NLINKS] = {"h2d_pinned", "h2d_pageable", "d2h_pinned",
                                              "d2h_pageable"};
const char *const hw_source_names[3] = {"measured", "paper", "spec"};
const char *const hwprofile_shipped_names[] = {
    "t4-flexgen", "a100-40gb-pcie", "a100-80gb-sxm", "h100-80gb-sxm", "h100-pcie", "h200",
    "l4",         "rtx4090",        "cpu-only",      NULL,
};

/* ---- loading */

/* Reads item i of a point list (the mapping pm, at node item) into table. */
typedef llmsim_status (*point_read_fn)(yd_map *pm, yaml_node_t *item, size_t i, void *table,
                                       diag *e);

/* Each of the n items of seq as a mapping (`what` in messages), read by fn. */
static llmsim_status read_points(yd_doc *d, yaml_node_t *seq, size_t n, const char *what,
                                 point_read_fn fn, void *table, diag *e)
{
    for (size_t i = 0; i < n; i++) {
        yd_map pm;
        yaml_node_t *item = yd_seq_at(d, seq, i);
        llmsim_status st = yd_map_open(&pm, d, item, what, e);
        if (st)
            return st;
        if ((st = yd_map_end(&pm, fn(&pm, item, i, table, e), e)))
            return st;
    }
    return LLMSIM_OK;
}

static llmsim_status read_link_point(yd_map *pm, yaml_node_t *item, size_t i, void *table, diag *e)
{
    (void)item;
    hw_point *p = &((hw_link *)table)->points[i];
    p->spread = 0;
    llmsim_status st;
    if ((st = yd_field_qty(pm, "size", YD_REQUIRED, UNITS_BYTES, YD_POSITIVE, &p->bytes, e)) ||
        (st = yd_field_qty(pm, "time", YD_REQUIRED, UNITS_TIME, YD_POSITIVE, &p->time_s, e)))
        return st;
    return yd_field_double(pm, "spread", YD_OPTIONAL, 0, 1e6, &p->spread, e);
}

static llmsim_status load_points(yd_doc *d, yaml_node_t *seq, hw_link *l, diag *e)
{
    size_t n = yd_seq_len(seq);
    if (n > HW_MAX_POINTS)
        return yd_error(d, seq, e, "at most %d points per link", HW_MAX_POINTS);
    llmsim_status st = read_points(d, seq, n, "a link point", read_link_point, l, e);
    if (st)
        return st;
    l->npoints = (int)n;
    return LLMSIM_OK;
}

/* A link (an hw_link): present once its mapping is given. */
static llmsim_status read_link(yd_map *m, void *out, diag *e)
{
    hw_link *l = out;
    l->present = true;
    yaml_node_t *seq;
    llmsim_status st;
    if (!(st = yd_field_qty_in(m, "bandwidth", YD_REQUIRED, UNITS_BANDWIDTH, HW_MIN_BANDWIDTH,
                               HW_MAX_BANDWIDTH, &l->bandwidth_Bps, e)) &&
        !(st = yd_field_qty_in(m, "latency", YD_OPTIONAL, UNITS_TIME, 0, HW_MAX_LATENCY,
                               &l->latency_s, e)) &&
        !(st = yd_field_seq(m, "points", YD_OPTIONAL, &seq, e)) && seq)
        st = load_points(m->doc, seq, l, e);
    return st;
}

static llmsim_status load_link(yd_map *parent, const char *key, yd_need need, hw_link *l, diag *e)
{
    return yd_field_read(parent, key, need, read_link, l, e);
}

/* The sequence of points under `key` (NULL when absent and optional): at
 * least one point, at most HW_MAX_POINTS. */
static llmsim_status point_seq(yd_map *parent, const char *key, yd_need need, yaml_node_t **seq,
                               size_t *n, diag *e)
{
    llmsim_status st = yd_field_seq(parent, key, need, seq, e);
    if (st || !*seq)
        return st;
    *n = yd_seq_len(*seq);
    if (*n == 0)
        return yd_error(parent->doc, *seq, e, "'%s' needs at least one point", key);
    if (*n > HW_MAX_POINTS)
        return yd_error(parent->doc, *seq, e, "'%s' has more than %d points", key, HW_MAX_POINTS);
    return LLMSIM_OK;
}

static llmsim_status read_gemm_point(yd_map *pm, yaml_node_t *item, size_t i, void *table, diag *e)
{
    hw_gemm_point *p = &((hw_gemm_table *)table)->points[i];
    long long m = 0, nn = 0, k = 0;
    p->spread = 0;
    llmsim_status st;
    if ((st = yd_field_int(pm, "m", YD_REQUIRED, 1, 1LL << 40, &m, e)) ||
        (st = yd_field_int(pm, "n", YD_OPTIONAL, 1, 1LL << 40, &nn, e)) ||
        (st = yd_field_int(pm, "k", YD_OPTIONAL, 1, 1LL << 40, &k, e)) ||
        (st = yd_field_qty_in(pm, "throughput", YD_REQUIRED, UNITS_FLOPS, HW_MIN_FLOPS,
                              HW_MAX_FLOPS, &p->flops, e)) ||
        (st = yd_field_double(pm, "spread", YD_OPTIONAL, 0, 1e6, &p->spread, e)))
        return st;
    if ((nn == 0) != (k == 0))
        return yd_error(pm->doc, item, e, "give both n and k for a GEMM point, or neither");
    p->m = (double)m;
    p->n = (double)nn;
    p->k = (double)k;
    return LLMSIM_OK;
}

/* A point of cpu.read_bandwidth; working sets strictly increase. */
static llmsim_status read_read_point(yd_map *pm, yaml_node_t *item, size_t i, void *table, diag *e)
{
    hw_read_table *t = table;
    hw_read_point *p = &t->points[i];
    p->spread = 0;
    llmsim_status st;
    if ((st = yd_field_qty(pm, "working_set", YD_REQUIRED, UNITS_BYTES, YD_POSITIVE, &p->ws_bytes,
                           e)) ||
        (st = yd_field_qty_in(pm, "bandwidth", YD_REQUIRED, UNITS_BANDWIDTH, HW_MIN_BANDWIDTH,
                              HW_MAX_BANDWIDTH, &p->Bps, e)) ||
        (st = yd_field_double(pm, "spread", YD_OPTIONAL, 0, 1e6, &p->spread, e)))
        return st;
    if (i > 0 && p->ws_bytes <= t->points[i - 1].ws_bytes)
        return yd_error(pm->doc, item, e,
                        "read_bandwidth points must be in increasing working_set; "
                        "this one is not larger than the one before");
    return LLMSIM_OK;
}

/* A table of points under `key` read by fn into table; with YD_OPTIONAL an
 * absent key leaves *npoints 0 (a present key still needs a point). */
static llmsim_status load_table(yd_map *parent, const char *key, yd_need need, const char *what,
                                point_read_fn fn, void *table, int *npoints, diag *e)
{
    yaml_node_t *seq = NULL;
    size_t n = 0;
    *npoints = 0;
    llmsim_status st = point_seq(parent, key, need, &seq, &n, e);
    if (st || !seq)
        return st;
    if ((st = read_points(parent->doc, seq, n, what, fn, table, e)))
        return st;
    *npoints = (int)n;
    return LLMSIM_OK;
}

static llmsim_status load_gemm(yd_map *parent, const char *key, yd_need need, hw_gemm_table *t,
                               diag *e)
{
    return load_table(parent, key, need, "a GEMM point", read_gemm_point, t, &t->npoints, e);
}

/* provenance (an hw_provenance). */
static llmsim_status read_provenance(yd_map *m, void *out, diag *e)
{
    hw_provenance *p = out;
    int src = 0;
    llmsim_status st;
    if (!(st = yd_field_enum(m, "source", YD_REQUIRED, hw_source_names, 3, &src, e)) &&
        !(st = yd_field_str(m, "description", YD_REQUIRED, p->description,
                            sizeof p->description, e)) &&
        !(st = yd_field_str(m, "host", YD_OPTIONAL, p->host, sizeof p->host, e)) &&
        !(st = yd_field_str(m, "date", YD_OPTIONAL, p->date, sizeof p->date, e)) &&
        !(st = yd_field_str(m, "tool", YD_OPTIONAL, p->tool, sizeof p->tool, e)) &&
        !(st = yd_field_str(m, "command", YD_OPTIONAL, p->command, sizeof p->command, e)) &&
        !(st = yd_field_str(m, "notes", YD_OPTIONAL, p->notes, sizeof p->notes, e)))
        p->source = (hw_source)src;
    return st;
}

/* gpu.attention (of an hw_gpu): the throughput of prefill and the bandwidth
 * of decode. */
static llmsim_status read_gpu_attention(yd_map *att, void *out, diag *e)
{
    hw_gpu *g = out;
    llmsim_status st;
    if (!(st = yd_field_qty_in(att, "prefill", YD_REQUIRED, UNITS_FLOPS, HW_MIN_FLOPS,
                               HW_MAX_FLOPS, &g->attn_prefill_flops, e)))
        st = yd_field_qty_in(att, "decode", YD_REQUIRED, UNITS_BANDWIDTH, HW_MIN_BANDWIDTH,
                             HW_MAX_BANDWIDTH, &g->attn_decode_Bps, e);
    return st;
}

/* gpu (an hw_gpu): present once its mapping is given. */
static llmsim_status read_gpu(yd_map *m, void *out, diag *e)
{
    hw_gpu *g = out;
    g->present = true;
    llmsim_status st;
    if (!(st = yd_field_str(m, "name", YD_REQUIRED, g->name, sizeof g->name, e)) &&
        !(st = yd_field_qty(m, "memory", YD_REQUIRED, UNITS_BYTES, YD_POSITIVE, &g->memory_bytes,
                            e)) &&
        !(st = yd_field_qty_in(m, "memory_bandwidth", YD_REQUIRED, UNITS_BANDWIDTH,
                               HW_MIN_BANDWIDTH, HW_MAX_BANDWIDTH, &g->memory_bandwidth_Bps, e)) &&
        !(st = load_gemm(m, "gemm", YD_REQUIRED, &g->gemm, e)) &&
        !(st = load_gemm(m, "gemm_bf16", YD_OPTIONAL, &g->gemm_bf16, e)) &&
        !(st = yd_field_qty_in(m, "launch_latency", YD_OPTIONAL, UNITS_TIME, 0, HW_MAX_LATENCY,
                               &g->launch_latency_s, e)))
        st = yd_field_read(m, "attention", YD_REQUIRED, read_gpu_attention, g, e);
    return st;
}

/* A point of cpu.dequant; bits 4 or 8, each once. */
static llmsim_status read_dequant_point(yd_map *pm, yaml_node_t *item, size_t i, void *cpu, diag *e)
{
    hw_cpu *c = cpu;
    hw_dequant_point *p = &c->dequant[i];
    long long bits = 0;
    p->spread = 0;
    llmsim_status st;
    if ((st = yd_field_int(pm, "bits", YD_REQUIRED, 4, 8, &bits, e)) ||
        (st = yd_field_qty_in(pm, "bandwidth", YD_REQUIRED, UNITS_BANDWIDTH, HW_MIN_BANDWIDTH,
                              HW_MAX_BANDWIDTH, &p->Bps, e)) ||
        (st = yd_field_double(pm, "spread", YD_OPTIONAL, 0, 1e6, &p->spread, e)))
        return st;
    if (bits != 4 && bits != 8)
        return yd_error(pm->doc, item, e, "a dequant point's bits are 4 or 8");
    for (size_t j = 0; j < i; j++)
        if (c->dequant[j].bits == bits)
            return yd_error(pm->doc, item, e, "dequant has two points of %lld bits", bits);
    p->bits = (int)bits;
    return LLMSIM_OK;
}

/* cpu (an hw_cpu). */
static llmsim_status read_cpu(yd_map *m, void *out, diag *e)
{
    hw_cpu *c = out;
    long long cores = 0;
    llmsim_status st;
    if (!(st = yd_field_str(m, "name", YD_REQUIRED, c->name, sizeof c->name, e)) &&
        !(st = yd_field_int(m, "cores", YD_REQUIRED, 1, 1 << 20, &cores, e)) &&
        !(st = yd_field_qty(m, "memory", YD_REQUIRED, UNITS_BYTES, YD_POSITIVE, &c->memory_bytes,
                            e)) &&
        !(st = yd_field_qty_in(m, "memory_bandwidth", YD_REQUIRED, UNITS_BANDWIDTH,
                               HW_MIN_BANDWIDTH, HW_MAX_BANDWIDTH, &c->memory_bandwidth_Bps, e)) &&
        !(st = yd_field_double(m, "memory_bandwidth_spread", YD_OPTIONAL, 0, 1e6,
                               &c->memory_bandwidth_spread, e)) &&
        !(st = load_table(m, "read_bandwidth", YD_OPTIONAL, "a read_bandwidth point",
                          read_read_point, &c->read, &c->read.npoints, e)) &&
        !(st = load_gemm(m, "gemm", YD_REQUIRED, &c->gemm, e)) &&
        !(st = yd_field_qty_in(m, "attention", YD_REQUIRED, UNITS_BANDWIDTH, HW_MIN_BANDWIDTH,
                               HW_MAX_BANDWIDTH, &c->attn_Bps, e)) &&
        !(st = yd_field_double(m, "attention_spread", YD_OPTIONAL, 0, 1e6, &c->attn_spread, e)) &&
        !(st = load_table(m, "dequant", YD_OPTIONAL, "a dequant point", read_dequant_point, c,
                          &c->ndequant, e)) &&
        !(st = yd_field_qty_in(m, "task_overhead", YD_OPTIONAL, UNITS_TIME, 0, HW_MAX_LATENCY,
                               &c->task_overhead_s, e)))
        c->cores = (int)cores;
    return st;
}

/* disk (an hw_disk): present once its mapping is given. */
static llmsim_status read_disk(yd_map *m, void *out, diag *e)
{
    hw_disk *d = out;
    d->present = true;
    llmsim_status st;
    if (!(st = yd_field_qty(m, "capacity", YD_REQUIRED, UNITS_BYTES, YD_POSITIVE,
                            &d->capacity_bytes, e)) &&
        !(st = load_link(m, "read", YD_REQUIRED, &d->read, e)) &&
        !(st = load_link(m, "write", YD_REQUIRED, &d->write, e)) &&
        !(st = yd_field_qty_in(m, "read_compute_loss_per_gb", YD_OPTIONAL, UNITS_TIME, 0,
                               HW_MAX_LATENCY, &d->read_loss_s_per_GB, e)))
        st = yd_field_qty_in(m, "write_compute_loss_per_gb", YD_OPTIONAL, UNITS_TIME, 0,
                             HW_MAX_LATENCY, &d->write_loss_s_per_GB, e);
    return st;
}

/* The pageable link `to` takes the figures of the pinned `from` when not
 * given (and stays not present: it is not saved back). */
static void default_pageable(hw_link *to, const hw_link *from)
{
    if (!to->present) {
        *to = *from;
        to->present = false;
    }
}

/* links (of a hwprofile, its gpu already read): host<->GPU copies. */
static llmsim_status read_links(yd_map *m, void *out, diag *e)
{
    hwprofile *hw = out;
    if (!hw->gpu.present)
        return yd_error(m->doc, m->node, e, "'links' describes host<->GPU copies, but "
                        "the profile has no 'gpu' section; remove 'links' or add 'gpu'");
    llmsim_status st = LLMSIM_OK;
    for (int i = 0; i < HW_NLINKS && !st; i++) {
        /* pinned links are required; pageable ones default to the pinned figures */
        yd_need need = (i == HW_LINK_H2D_PINNED || i == HW_LINK_D2H_PINNED) ? YD_REQUIRED : YD_OPTIONAL;
        st = load_link(m, hw_link_names[i], need, &hw->links[i], e);
    }
    if (!st) {
        default_pageable(&hw->links[HW_LINK_H2D_PAGEABLE], &hw->links[HW_LINK_H2D_PINNED]);
        default_pageable(&hw->links[HW_LINK_D2H_PAGEABLE], &hw->links[HW_LINK_D2H_PINNED]);
    }
    return st;
}

/* calibration.fit_inputs: "M:P:W" strings. */
static llmsim_status read_fit_inputs(yd_map *m, hw_calibration *c, diag *e)
{
    yaml_node_t *seq = NULL;
    llmsim_status st = yd_field_seq(m, "fit_inputs", YD_REQUIRED, &seq, e);
    size_t n = st ? 0 : yd_seq_len(seq);
    if (!st && n > HW_MAX_FIT_INPUTS)
        return yd_error(m->doc, seq, e, "'fit_inputs' has more than %d entries", HW_MAX_FIT_INPUTS);
    for (size_t i = 0; i < n && !st; i++) {
        yaml_node_t *it = yd_seq_at(m->doc, seq, i);
        const char *s = yd_scalar(it);
        if (!s || strlen(s) >= HW_FIT_INPUT_LEN || strspn(s, "0123456789abcdef:") != strlen(s))
            return yd_error(m->doc, it, e, "a fit input is \"MODEL:POLICY:WORKLOAD\", three "
                            "hexadecimal content hashes");
        snprintf(c->fit_inputs[i], HW_FIT_INPUT_LEN, "%s", s);
    }
    c->nfit = (int)n;
    return st;
}

/* calibration (of a hwprofile): what the fit saw and its held-out error. */
static llmsim_status read_calibration(yd_map *m, void *out, diag *e)
{
    hw_calibration *c = out;
    long long held = 0;
    c->present = true;
    llmsim_status st;
    if ((st = read_fit_inputs(m, c, e)) ||
        (st = yd_field_int(m, "held_out_runs", YD_REQUIRED, 0, 1 << 20, &held, e)) ||
        (st = yd_field_double(m, "held_out_error_p10", held ? YD_REQUIRED : YD_OPTIONAL, -1e6, 1e6,
                              &c->held_err_p10, e)) ||
        (st = yd_field_double(m, "held_out_error_p90", held ? YD_REQUIRED : YD_OPTIONAL, -1e6, 1e6,
                              &c->held_err_p90, e)))
        return st;
    c->nheld = (int)held;
    if (c->held_err_p10 > c->held_err_p90)
        return yd_key_error(m, "held_out_error_p90", e, "held_out_error_p90 is below held_out_error_p10");
    return LLMSIM_OK;
}

static llmsim_status hwprofile_read(yd_map *root, void *out, diag *e)
{
    hwprofile *hw = out;
    llmsim_status st;
    if ((st = yd_field_str(root, "name", YD_REQUIRED, hw->name, sizeof hw->name, e)) ||
        (st = yd_field_read(root, "provenance", YD_REQUIRED, read_provenance, &hw->prov, e)) ||
        (st = yd_field_read(root, "gpu", YD_OPTIONAL, read_gpu, &hw->gpu, e)) ||
        (st = yd_field_read(root, "cpu", YD_REQUIRED, read_cpu, &hw->cpu, e)) ||
        (st = yd_field_read(root, "disk", YD_OPTIONAL, read_disk, &hw->disk, e)) ||
        (st = yd_field_read(root, "calibration", YD_OPTIONAL, read_calibration, &hw->calib, e)))
        return st;
    return yd_field_read(root, "links", hw->gpu.present ? YD_REQUIRED : YD_OPTIONAL, read_links, hw,
                         e);
}

static llmsim_status hwprofile_load_yaml_doc(const char *path, const char *text, hwprofile *hw, diag *e)
{
    memset(hw, 0, sizeof *hw);
    return yd_read(path, text, "the hardware profile", "hwprofile", 1, hwprofile_read, hw, e);
}

llmsim_status hwprofile_load(const char *spec, hwprofile *hw, diag *e)
{
    char buf[1024];
    const char *path = datadir_resolve("hwprofiles", spec, ".yaml", buf, sizeof buf);
    if (path)
        return hwprofile_load_yaml(path, hw, e);
    return datadir_unknown(e, hwprofile_shipped_names,
                           "--hardware '%s': not a shipped profile or a file; shipped profiles", spec);
}

/* ---- saving */

/* A double-quoted YAML scalar that reads back as `s`. Besides C0 controls,
 * escape what libyaml would not read back verbatim: DEL and the C1 controls
 * and U+FFFE/U+FFFF (rejected as "control characters"), and NEL, LS, PS
 * (U+0085, U+2028, U+2029: line breaks, folded inside quotes). */
static void put_str(strbuf *b, const char *s)
{
    strbuf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            strbuf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            strbuf_puts(b, "\\n");
        else if (*p < 0x20 || *p == 0x7f)
            strbuf_printf(b, "\\x%02x", *p);
        else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            strbuf_printf(b, "\\u%04x", p[1]); /* U+0080..U+009F, NEL included */
            p++;
        } else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            strbuf_printf(b, "\\u%04x", 0x2000 + (p[2] - 0x80)); /* LS, PS */
            p += 2;
        } else if (p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)) {
            strbuf_puts(b, p[2] == 0xbe ? "\\ufffe" : "\\uffff");
            p += 2;
        } else
            strbuf_printf(b, "%c", *p);
    }
    strbuf_puts(b, "\"");
}

static void put_qty(strbuf *b, units_kind kind, double v)
{
    char buf[64];
    units_format_exact(kind, v, buf, sizeof buf);
    strbuf_puts(b, buf);
}

static void save_link(strbuf *b, const char *indent, const char *key, const hw_link *l)
{
    strbuf_printf(b, "%s%s:\n%s  bandwidth: ", indent, key, indent);
    put_qty(b, UNITS_BANDWIDTH, l->bandwidth_Bps);
    strbuf_printf(b, "\n%s  latency: ", indent);
    put_qty(b, UNITS_TIME, l->latency_s);
    strbuf_puts(b, "\n");
    if (l->npoints) {
        strbuf_printf(b, "%s  points:\n", indent);
        for (int i = 0; i < l->npoints; i++) {
            strbuf_printf(b, "%s    - {size: ", indent);
            put_qty(b, UNITS_BYTES, l->points[i].bytes);
            strbuf_puts(b, ", time: ");
            put_qty(b, UNITS_TIME, l->points[i].time_s);
            strbuf_printf(b, ", spread: %.17g}\n", l->points[i].spread);
        }
    }
}

static void save_gemm(strbuf *b, const char *indent, const char *key, const hw_gemm_table *t)
{
    strbuf_printf(b, "%s%s:\n", indent, key);
    for (int i = 0; i < t->npoints; i++) {
        const hw_gemm_point *p = &t->points[i];
        strbuf_printf(b, "%s  - {m: %.0f, ", indent, p->m);
        if (p->n > 0)
            strbuf_printf(b, "n: %.0f, k: %.0f, ", p->n, p->k);
        strbuf_puts(b, "throughput: ");
        put_qty(b, UNITS_FLOPS, p->flops);
        strbuf_printf(b, ", spread: %.17g}\n", p->spread);
    }
}

static void save_provenance(strbuf *b, const hw_provenance *p)
{
    strbuf_printf(b, "provenance:\n  source: %s\n  description: ", hw_source_names[p->source]);
    put_str(b, p->description);
    const char *keys[] = {"host", "date", "tool", "command", "notes"};
    const char *vals[] = {p->host, p->date, p->tool, p->command, p->notes};
    for (int i = 0; i < 5; i++) {
        if (vals[i][0]) {
            strbuf_printf(b, "\n  %s: ", keys[i]);
            put_str(b, vals[i]);
        }
    }
    strbuf_puts(b, "\n");
}

/* "<indent><key>: <quantity>\n" */
static void save_qty_line(strbuf *b, const char *indent, const char *key, units_kind kind, double v)
{
    strbuf_printf(b, "%s%s: ", indent, key);
    put_qty(b, kind, v);
    strbuf_puts(b, "\n");
}

static void save_gpu(strbuf *b, const hw_gpu *g)
{
    strbuf_puts(b, "gpu:\n  name: ");
    put_str(b, g->name);
    strbuf_puts(b, "\n");
    save_qty_line(b, "  ", "memory", UNITS_BYTES, g->memory_bytes);
    save_qty_line(b, "  ", "memory_bandwidth", UNITS_BANDWIDTH, g->memory_bandwidth_Bps);
    save_qty_line(b, "  ", "launch_latency", UNITS_TIME, g->launch_latency_s);
    save_gemm(b, "  ", "gemm", &g->gemm);
    if (g->gemm_bf16.npoints > 0) /* optional: absent unless measured */
        save_gemm(b, "  ", "gemm_bf16", &g->gemm_bf16);
    strbuf_puts(b, "  attention:\n");
    save_qty_line(b, "    ", "prefill", UNITS_FLOPS, g->attn_prefill_flops);
    save_qty_line(b, "    ", "decode", UNITS_BANDWIDTH, g->attn_decode_Bps);
}

static void save_cpu(strbuf *b, const hw_cpu *c)
{
    strbuf_puts(b, "cpu:\n  name: ");
    put_str(b, c->name);
    strbuf_printf(b, "\n  cores: %d\n", c->cores);
    save_qty_line(b, "  ", "memory", UNITS_BYTES, c->memory_bytes);
    save_qty_line(b, "  ", "memory_bandwidth", UNITS_BANDWIDTH, c->memory_bandwidth_Bps);
    if (c->memory_bandwidth_spread > 0)
        strbuf_printf(b, "  memory_bandwidth_spread: %.17g\n", c->memory_bandwidth_spread);
    if (c->read.npoints > 0) { /* optional: absent unless measured */
        strbuf_puts(b, "  read_bandwidth:\n");
        for (int i = 0; i < c->read.npoints; i++) {
            strbuf_puts(b, "    - {working_set: ");
            put_qty(b, UNITS_BYTES, c->read.points[i].ws_bytes);
            strbuf_puts(b, ", bandwidth: ");
            put_qty(b, UNITS_BANDWIDTH, c->read.points[i].Bps);
            strbuf_printf(b, ", spread: %.17g}\n", c->read.points[i].spread);
        }
    }
    save_gemm(b, "  ", "gemm", &c->gemm);
    save_qty_line(b, "  ", "attention", UNITS_BANDWIDTH, c->attn_Bps);
    if (c->attn_spread > 0)
        strbuf_printf(b, "  attention_spread: %.17g\n", c->attn_spread);
    if (c->ndequant > 0) { /* optional: absent unless measured */
        strbuf_puts(b, "  dequant:\n");
        for (int i = 0; i < c->ndequant; i++) {
            strbuf_printf(b, "    - {bits: %d, bandwidth: ", c->dequant[i].bits);
            put_qty(b, UNITS_BANDWIDTH, c->dequant[i].Bps);
            strbuf_printf(b, ", spread: %.17g}\n", c->dequant[i].spread);
        }
    }
    if (c->task_overhead_s > 0)
        save_qty_line(b, "  ", "task_overhead", UNITS_TIME, c->task_overhead_s);
}

static void save_calibration(strbuf *b, const hw_calibration *c)
{
    strbuf_puts(b, "calibration:\n  fit_inputs:");
    if (c->nfit == 0)
        strbuf_puts(b, " []");
    strbuf_puts(b, "\n");
    for (int i = 0; i < c->nfit; i++)
        strbuf_printf(b, "    - \"%s\"\n", c->fit_inputs[i]);
    strbuf_printf(b, "  held_out_runs: %d\n", c->nheld);
    if (c->nheld)
        strbuf_printf(b, "  held_out_error_p10: %.17g\n  held_out_error_p90: %.17g\n", c->held_err_p10,
                      c->held_err_p90);
}

static void save_disk(strbuf *b, const hw_disk *d)
{
    strbuf_puts(b, "disk:\n");
    save_qty_line(b, "  ", "capacity", UNITS_BYTES, d->capacity_bytes);
    save_link(b, "  ", "read", &d->read);
    save_link(b, "  ", "write", &d->write);
    if (d->read_loss_s_per_GB > 0) /* optional: absent unless measured */
        save_qty_line(b, "  ", "read_compute_loss_per_gb", UNITS_TIME, d->read_loss_s_per_GB);
    if (d->write_loss_s_per_GB > 0)
        save_qty_line(b, "  ", "write_compute_loss_per_gb", UNITS_TIME, d->write_loss_s_per_GB);
}

void hwprofile_save(const hwprofile *hw, strbuf *b)
{
    strbuf_puts(b, "llmsim: hwprofile/1\nname: ");
    put_str(b, hw->name);
    strbuf_puts(b, "\n");
    save_provenance(b, &hw->prov);
    if (hw->gpu.present)
        save_gpu(b, &hw->gpu);
    save_cpu(b, &hw->cpu);
    if (hw->disk.present)
        save_disk(b, &hw->disk);
    if (hw->calib.present)
        save_calibration(b, &hw->calib);
    if (hw->gpu.present) {
        strbuf_puts(b, "links:\n");
        for (int i = 0; i < HW_NLINKS; i++)
            if (hw->links[i].present)
                save_link(b, "  ", hw_link_names[i], &hw->links[i]);
    }
}

llmsim_status hwprofile_write(const hwprofile *hw, const char *path, diag *e)
{
    strbuf b = {0};
    hwprofile_save(hw, &b);
    llmsim_status st = strbuf_write_file(&b, path, e);
    strbuf_free(&b);
    return st;
}

llmsim_status hwprofile_load_yaml(const char *path, hwprofile *hw, diag *e)
{
    return hwprofile_load_yaml_doc(path, NULL, hw, e);
}

llmsim_status hwprofile_load_yaml_text(const char *name, const char *text, hwprofile *hw, diag *e)
{
    return hwprofile_load_yaml_doc(name, text, hw, e);
}

#ifndef LLMSIM_VERSION
#define LLMSIM_VERSION "unknown"
#endif

void hwprofile_stamp(hw_provenance *prov, const char *command)
{
    char host[128] = "unknown";
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    prov->source = HW_SOURCE_MEASURED;
    snprintf(prov->host, sizeof prov->host, "%s", host);
    strftime(prov->date, sizeof prov->date, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    snprintf(prov->tool, sizeof prov->tool, "llmsim %s", LLMSIM_VERSION);
    snprintf(prov->command, sizeof prov->command, "%s", command);
}
