/*
 * test_hwprofiles — every shipped hardware profile loads by name, survives a
 * save -> file -> load round trip unchanged (field by field, byte for byte,
 * and in the text a second save produces), and passes sanity checks on its
 * figures (memory, links vs. GPU presence, PCIe limits, disk).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hwprofiles/hwprofile.h"
#include "tap.h"

/* PCIe x16 per direction, theoretical (REFERENCES.md "Hardware limits"). */
static double pcie_x16_limit(int gen)
{
    switch (gen) {
    case 3: return 15.75e9;
    case 4: return 31.5e9;
    case 5: return 63.0e9;
    }
    return 0.0;
}

/* What each shipped profile is expected to be. gen = PCIe generation of the
 * host<->GPU link (0: no GPU); board_gb = nominal GPU memory on the box. */
typedef struct expect {
    const char *name;
    hw_source source;
    int gen;
    double board_gb;
} expect;

static const expect expects[] = {
    {"t4-flexgen", HW_SOURCE_PAPER, 3, 16},
    {"a100-40gb-pcie", HW_SOURCE_SPEC, 4, 40},
    {"a100-80gb-sxm", HW_SOURCE_SPEC, 4, 80},
    {"h100-80gb-sxm", HW_SOURCE_SPEC, 5, 80},
    {"h100-pcie", HW_SOURCE_SPEC, 5, 80},
    {"h200", HW_SOURCE_SPEC, 5, 141},
    {"l4", HW_SOURCE_SPEC, 4, 24},
    {"rtx4090", HW_SOURCE_SPEC, 4, 24},
    {"cpu-only", HW_SOURCE_SPEC, 0, 0},
};

static const expect *find_expect(const char *name)
{
    for (size_t i = 0; i < sizeof expects / sizeof expects[0]; i++)
        if (strcmp(expects[i].name, name) == 0)
            return &expects[i];
    return NULL;
}

/* ---- field-by-field comparison */

#define SAME_NUM(ctx, fld, x, y)                                                                \
    CHECK((x) == (y), "%s: %s differs after the round trip: %.17g vs %.17g", ctx, fld,          \
          (double)(x), (double)(y))
#define SAME_STR(ctx, fld, x, y)                                                                \
    CHECK(strcmp((x), (y)) == 0, "%s: %s differs after the round trip: '%s' vs '%s'", ctx, fld, \
          (x), (y))

static void same_link(const char *ctx, const char *what, const hw_link *x, const hw_link *y)
{
    char f[128];
    snprintf(f, sizeof f, "%s.present", what);
    SAME_NUM(ctx, f, x->present, y->present);
    snprintf(f, sizeof f, "%s.bandwidth", what);
    SAME_NUM(ctx, f, x->bandwidth_Bps, y->bandwidth_Bps);
    snprintf(f, sizeof f, "%s.latency", what);
    SAME_NUM(ctx, f, x->latency_s, y->latency_s);
    snprintf(f, sizeof f, "%s.npoints", what);
    SAME_NUM(ctx, f, x->npoints, y->npoints);
    for (int i = 0; i < x->npoints && i < y->npoints && i < HW_MAX_POINTS; i++) {
        snprintf(f, sizeof f, "%s.points[%d].size", what, i);
        SAME_NUM(ctx, f, x->points[i].bytes, y->points[i].bytes);
        snprintf(f, sizeof f, "%s.points[%d].time", what, i);
        SAME_NUM(ctx, f, x->points[i].time_s, y->points[i].time_s);
        snprintf(f, sizeof f, "%s.points[%d].spread", what, i);
        SAME_NUM(ctx, f, x->points[i].spread, y->points[i].spread);
    }
}

static void same_gemm(const char *ctx, const char *what, const hw_gemm_table *x,
                      const hw_gemm_table *y)
{
    char f[128];
    snprintf(f, sizeof f, "%s.npoints", what);
    SAME_NUM(ctx, f, x->npoints, y->npoints);
    for (int i = 0; i < x->npoints && i < y->npoints && i < HW_MAX_POINTS; i++) {
        const hw_gemm_point *p = &x->points[i], *q = &y->points[i];
        snprintf(f, sizeof f, "%s[%d].m", what, i);
        SAME_NUM(ctx, f, p->m, q->m);
        snprintf(f, sizeof f, "%s[%d].n", what, i);
        SAME_NUM(ctx, f, p->n, q->n);
        snprintf(f, sizeof f, "%s[%d].k", what, i);
        SAME_NUM(ctx, f, p->k, q->k);
        snprintf(f, sizeof f, "%s[%d].throughput", what, i);
        SAME_NUM(ctx, f, p->flops, q->flops);
        snprintf(f, sizeof f, "%s[%d].spread", what, i);
        SAME_NUM(ctx, f, p->spread, q->spread);
    }
}

static void same_profile(const char *ctx, const hwprofile *a, const hwprofile *b)
{
    SAME_STR(ctx, "name", a->name, b->name);
    SAME_NUM(ctx, "provenance.source", a->prov.source, b->prov.source);
    SAME_STR(ctx, "provenance.description", a->prov.description, b->prov.description);
    SAME_STR(ctx, "provenance.host", a->prov.host, b->prov.host);
    SAME_STR(ctx, "provenance.date", a->prov.date, b->prov.date);
    SAME_STR(ctx, "provenance.tool", a->prov.tool, b->prov.tool);
    SAME_STR(ctx, "provenance.command", a->prov.command, b->prov.command);
    SAME_STR(ctx, "provenance.notes", a->prov.notes, b->prov.notes);

    SAME_NUM(ctx, "gpu.present", a->gpu.present, b->gpu.present);
    SAME_STR(ctx, "gpu.name", a->gpu.name, b->gpu.name);
    SAME_NUM(ctx, "gpu.memory", a->gpu.memory_bytes, b->gpu.memory_bytes);
    SAME_NUM(ctx, "gpu.memory_bandwidth", a->gpu.memory_bandwidth_Bps, b->gpu.memory_bandwidth_Bps);
    same_gemm(ctx, "gpu.gemm", &a->gpu.gemm, &b->gpu.gemm);
    same_gemm(ctx, "gpu.gemm_bf16", &a->gpu.gemm_bf16, &b->gpu.gemm_bf16);
    SAME_NUM(ctx, "gpu.attention.prefill", a->gpu.attn_prefill_flops, b->gpu.attn_prefill_flops);
    SAME_NUM(ctx, "gpu.attention.decode", a->gpu.attn_decode_Bps, b->gpu.attn_decode_Bps);
    SAME_NUM(ctx, "gpu.launch_latency", a->gpu.launch_latency_s, b->gpu.launch_latency_s);

    SAME_STR(ctx, "cpu.name", a->cpu.name, b->cpu.name);
    SAME_NUM(ctx, "cpu.cores", a->cpu.cores, b->cpu.cores);
    SAME_NUM(ctx, "cpu.memory", a->cpu.memory_bytes, b->cpu.memory_bytes);
    SAME_NUM(ctx, "cpu.memory_bandwidth", a->cpu.memory_bandwidth_Bps, b->cpu.memory_bandwidth_Bps);
    same_gemm(ctx, "cpu.gemm", &a->cpu.gemm, &b->cpu.gemm);
    SAME_NUM(ctx, "cpu.read_bandwidth.npoints", a->cpu.read.npoints, b->cpu.read.npoints);
    for (int i = 0; i < a->cpu.read.npoints && i < b->cpu.read.npoints && i < HW_MAX_POINTS; i++) {
        char f[64];
        snprintf(f, sizeof f, "cpu.read_bandwidth[%d].working_set", i);
        SAME_NUM(ctx, f, a->cpu.read.points[i].ws_bytes, b->cpu.read.points[i].ws_bytes);
        snprintf(f, sizeof f, "cpu.read_bandwidth[%d].bandwidth", i);
        SAME_NUM(ctx, f, a->cpu.read.points[i].Bps, b->cpu.read.points[i].Bps);
        snprintf(f, sizeof f, "cpu.read_bandwidth[%d].spread", i);
        SAME_NUM(ctx, f, a->cpu.read.points[i].spread, b->cpu.read.points[i].spread);
    }
    SAME_NUM(ctx, "cpu.attention", a->cpu.attn_Bps, b->cpu.attn_Bps);

    SAME_NUM(ctx, "disk.present", a->disk.present, b->disk.present);
    SAME_NUM(ctx, "disk.capacity", a->disk.capacity_bytes, b->disk.capacity_bytes);
    same_link(ctx, "disk.read", &a->disk.read, &b->disk.read);
    same_link(ctx, "disk.write", &a->disk.write, &b->disk.write);
    SAME_NUM(ctx, "disk.read_compute_loss_per_gb", a->disk.read_loss_s_per_GB,
             b->disk.read_loss_s_per_GB);
    SAME_NUM(ctx, "disk.write_compute_loss_per_gb", a->disk.write_loss_s_per_GB,
             b->disk.write_loss_s_per_GB);

    for (int i = 0; i < HW_NLINKS; i++) {
        char f[64];
        snprintf(f, sizeof f, "links.%s", hw_link_names[i]);
        same_link(ctx, f, &a->links[i], &b->links[i]);
    }
    /* Both structs come from the loader, which zeroes them first, so padding
     * and the bytes after each string's NUL are zero in both. */
    CHECK(memcmp(a, b, sizeof *a) == 0, "%s: the structs differ byte-wise after the round trip",
          ctx);
}

/* ---- helpers */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    strbuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk - 1, f)) > 0) {
        chunk[n] = '\0';
        strbuf_puts(&b, chunk);
    }
    fclose(f);
    char *s = strdup(strbuf_str(&b));
    strbuf_free(&b);
    return s;
}

static bool temp_path(char *buf, size_t len)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, len, "%s/llmsim_test_hwprofiles_XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(buf);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static bool gemm_sorted_nondecreasing(const hw_gemm_table *t)
{
    for (int i = 1; i < t->npoints; i++)
        if (t->points[i].m <= t->points[i - 1].m || t->points[i].flops < t->points[i - 1].flops)
            return false;
    return true;
}

static double gemm_max(const hw_gemm_table *t)
{
    double m = 0;
    for (int i = 0; i < t->npoints; i++)
        if (t->points[i].flops > m)
            m = t->points[i].flops;
    return m;
}

/* ---- per-profile checks */

static void check_roundtrip(const char *name, const hwprofile *a)
{
    strbuf s1 = {0}, s2 = {0};
    hwprofile_save(a, &s1);
    CHECK(!s1.failed && s1.len > 0, "%s: hwprofile_save produced no text", name);

    char path[1024];
    if (!temp_path(path, sizeof path)) {
        CHECK(false, "%s: cannot create a temporary file", name);
        strbuf_free(&s1);
        return;
    }
    diag e = {0};
    llmsim_status st = hwprofile_write(a, path, &e);
    CHECK(st == LLMSIM_OK, "%s: hwprofile_write: %s", name, e.msg);
    char *written = read_file(path);
    CHECK(written && strcmp(written, strbuf_str(&s1)) == 0,
          "%s: hwprofile_write wrote something other than hwprofile_save's text", name);
    free(written);

    hwprofile *b = calloc(1, sizeof *b);
    if (!b) {
        CHECK(false, "%s: out of memory", name);
    } else {
        diag_clear(&e);
        st = hwprofile_load(path, b, &e); /* a path: has a '/' */
        CHECK(st == LLMSIM_OK, "%s: reloading the saved profile failed: %s\n--- saved text:\n%s",
              name, e.msg, strbuf_str(&s1));
        if (st == LLMSIM_OK) {
            same_profile(name, a, b);
            hwprofile_save(b, &s2);
            CHECK(strcmp(strbuf_str(&s1), strbuf_str(&s2)) == 0,
                  "%s: saving the reloaded profile gives different text:\n--- first:\n%s\n--- "
                  "second:\n%s",
                  name, strbuf_str(&s1), strbuf_str(&s2));
        }
        free(b);
    }
    unlink(path);
    strbuf_free(&s1);
    strbuf_free(&s2);
}

static void check_sanity(const char *name, const hwprofile *hw)
{
    const expect *x = find_expect(name);
    CHECK(x != NULL, "%s: shipped profile without expectations in test_hwprofiles.c", name);
    if (!x)
        return;

    CHECK(strcmp(hw->name, name) == 0, "%s: file says name '%s'", name, hw->name);
    CHECK(hw->prov.source == x->source, "%s: provenance source is '%s', expected '%s'", name,
          hw_source_names[hw->prov.source], hw_source_names[x->source]);
    CHECK(strlen(hw->prov.description) > 40, "%s: description too short to name the machine", name);
    CHECK(strlen(hw->prov.notes) > 400, "%s: notes too short to justify the figures", name);

    /* CPU */
    CHECK(hw->cpu.name[0] != '\0', "%s: cpu.name empty", name);
    CHECK(hw->cpu.cores > 0, "%s: cpu.cores = %d", name, hw->cpu.cores);
    CHECK(hw->cpu.memory_bytes >= 16e9, "%s: cpu.memory = %g B", name, hw->cpu.memory_bytes);
    CHECK(hw->cpu.memory_bandwidth_Bps > 1e9, "%s: cpu.memory_bandwidth = %g B/s", name,
          hw->cpu.memory_bandwidth_Bps);
    CHECK(hw->cpu.gemm.npoints >= 1, "%s: cpu.gemm has no points", name);
    CHECK(gemm_sorted_nondecreasing(&hw->cpu.gemm),
          "%s: cpu.gemm points not sorted by m with throughput non-decreasing", name);
    CHECK(hw->cpu.attn_Bps > 0 && hw->cpu.attn_Bps <= hw->cpu.memory_bandwidth_Bps,
          "%s: cpu.attention %g B/s must be within DRAM bandwidth %g B/s", name, hw->cpu.attn_Bps,
          hw->cpu.memory_bandwidth_Bps);

    /* GPU */
    CHECK(hw->gpu.present == (x->gen != 0), "%s: gpu.present = %d", name, hw->gpu.present);
    if (hw->gpu.present) {
        const hw_gpu *g = &hw->gpu;
        CHECK(g->name[0] != '\0', "%s: gpu.name empty", name);
        CHECK(g->memory_bytes > 0, "%s: gpu.memory = %g", name, g->memory_bytes);
        /* what CUDA sees: a little less than the board's memory (GB on the box
         * are GiB for GDDR parts), but not much less */
        CHECK(g->memory_bytes <= x->board_gb * 1073741824.0 &&
                  g->memory_bytes >= 0.9 * x->board_gb * 1e9,
              "%s: gpu.memory %.4g GiB is not what CUDA sees of a %g GB board", name,
              g->memory_bytes / 1073741824.0, x->board_gb);
        CHECK(g->memory_bandwidth_Bps > 100e9 && g->memory_bandwidth_Bps < 10e12,
              "%s: gpu.memory_bandwidth = %g B/s", name, g->memory_bandwidth_Bps);
        CHECK(g->gemm.npoints >= 2, "%s: gpu.gemm needs a small-m and a large-m point", name);
        CHECK(gemm_sorted_nondecreasing(&g->gemm),
              "%s: gpu.gemm points not sorted by m with throughput non-decreasing", name);
        CHECK(g->attn_prefill_flops > 0 && g->attn_prefill_flops <= gemm_max(&g->gemm),
              "%s: gpu.attention.prefill %g FLOP/s above the best GEMM rate %g", name,
              g->attn_prefill_flops, gemm_max(&g->gemm));
        CHECK(g->attn_decode_Bps > 0 && g->attn_decode_Bps <= g->memory_bandwidth_Bps,
              "%s: gpu.attention.decode %g B/s must be within memory bandwidth %g B/s", name,
              g->attn_decode_Bps, g->memory_bandwidth_Bps);
        CHECK(g->launch_latency_s > 0 && g->launch_latency_s < 100e-6,
              "%s: gpu.launch_latency = %g s", name, g->launch_latency_s);
    }

    /* links: pinned ones present iff there is a GPU; all absent without one */
    CHECK(hw->links[HW_LINK_H2D_PINNED].present == hw->gpu.present,
          "%s: h2d_pinned present = %d with gpu present = %d", name,
          hw->links[HW_LINK_H2D_PINNED].present, hw->gpu.present);
    CHECK(hw->links[HW_LINK_D2H_PINNED].present == hw->gpu.present,
          "%s: d2h_pinned present = %d with gpu present = %d", name,
          hw->links[HW_LINK_D2H_PINNED].present, hw->gpu.present);
    if (!hw->gpu.present) {
        for (int i = 0; i < HW_NLINKS; i++)
            CHECK(!hw->links[i].present && hw->links[i].bandwidth_Bps == 0,
                  "%s: link %s set without a GPU", name, hw_link_names[i]);
    } else {
        double limit = pcie_x16_limit(x->gen);
        for (int i = 0; i < HW_NLINKS; i++) {
            const hw_link *l = &hw->links[i];
            CHECK(l->bandwidth_Bps > 0 && l->bandwidth_Bps < limit,
                  "%s: %s %.4g GB/s not below the PCIe %d.0 x16 limit %.4g GB/s", name,
                  hw_link_names[i], l->bandwidth_Bps / 1e9, x->gen, limit / 1e9);
            CHECK(l->latency_s >= 0 && l->latency_s < 1e-3, "%s: %s latency %g s", name,
                  hw_link_names[i], l->latency_s);
        }
        CHECK(hw->links[HW_LINK_H2D_PAGEABLE].bandwidth_Bps <=
                  hw->links[HW_LINK_H2D_PINNED].bandwidth_Bps,
              "%s: h2d pageable faster than pinned", name);
        CHECK(hw->links[HW_LINK_D2H_PAGEABLE].bandwidth_Bps <=
                  hw->links[HW_LINK_D2H_PINNED].bandwidth_Bps,
              "%s: d2h pageable faster than pinned", name);
    }

    /* disk: every shipped profile has one; NVMe figures below PCIe 5.0 x4 */
    CHECK(hw->disk.present, "%s: no disk", name);
    if (hw->disk.present) {
        CHECK(hw->disk.capacity_bytes >= 100e9, "%s: disk.capacity = %g B", name,
              hw->disk.capacity_bytes);
        CHECK(hw->disk.read.present && hw->disk.write.present, "%s: disk read/write missing",
              name);
        CHECK(hw->disk.read.bandwidth_Bps > 0 && hw->disk.read.bandwidth_Bps < 15.75e9,
              "%s: disk.read %g B/s", name, hw->disk.read.bandwidth_Bps);
        CHECK(hw->disk.write.bandwidth_Bps > 0 && hw->disk.write.bandwidth_Bps < 15.75e9,
              "%s: disk.write %g B/s", name, hw->disk.write.bandwidth_Bps);
    }
}

/* A profile that uses every optional field the shipped ones leave out: a
 * measured provenance with host/date/tool/command, text that needs escaping,
 * GEMM points with n and k and spreads, a bf16 GEMM table, link points, a
 * link without latency, pageable links, and figures that are awkward to print
 * exactly. */
static const char synthetic_yaml[] =
    "llmsim: hwprofile/1\n"
    "name: synthetic-measured\n"
    "provenance:\n"
    "  source: measured\n"
    "  description: \"quote \\\" backslash \\\\ tab \\t colon: hash # accent \\u00e9\"\n"
    "  host: \"box\\x7f\\u0085\\u2028 \\u2029\\u0090\\ufffe\\uffff\\ufeff\\u00a0.\"\n"
    "  date: 2025-01-02T03:04:05Z\n"
    "  tool: llmsim 0.1.0\n"
    "  command: \"llmsim profile --out 'x y.yaml' --repeat 5\"\n"
    "  notes: |\n"
    "    line one\n"
    "      indented line two\n"
    "    \"line three\"\n"
    "gpu:\n"
    "  name: Test GPU\n"
    "  memory: 15 GiB\n"
    "  memory_bandwidth: 320 GB/s\n"
    "  launch_latency: 0 us\n"
    "  gemm:\n"
    "    - {m: 1, n: 4096, k: 4096, throughput: 1.5 TFLOP/s, spread: 0.03}\n"
    "    - {m: 4096, n: 4096, k: 4096, throughput: 21.24 TFLOP/s, spread: 0.1}\n"
    "    - {m: 48, n: 12288, k: 3072, throughput: 4.3 TFLOP/s}\n"
    "    - {m: 1099511627776, throughput: 0.3333333333333333 TFLOP/s, spread: 1000000}\n"
    "  gemm_bf16:\n"
    "    - {m: 1, n: 1024, k: 1024, throughput: 0.7 TFLOP/s, spread: 0.25}\n"
    "    - {m: 4096, n: 8192, k: 8192, throughput: 20.1 TFLOP/s}\n"
    "    - {m: 16, throughput: 3.3333333333333333 TFLOP/s, spread: 0.04}\n"
    "  attention: {prefill: 9.97 TFLOP/s, decode: 79 GB/s}\n"
    "cpu:\n"
    "  name: Test CPU\n"
    "  cores: 1\n"
    "  memory: 208 GB\n"
    "  memory_bandwidth: 60 GB/s\n"
    "  read_bandwidth:\n"
    "    - {working_set: 8 MiB, bandwidth: 150 GB/s, spread: 0.02}\n"
    "    - {working_set: 96 MiB, bandwidth: 0.3333333333333333 TB/s}\n"
    "    - {working_set: 1 GiB, bandwidth: 41.7 GiB/s, spread: 0.125}\n"
    "  gemm:\n"
    "    - {m: 1024, throughput: 1 TFLOP/s}\n"
    "  attention: 12.3 GB/s\n"
    "disk:\n"
    "  capacity: 1.5 TB\n"
    "  read:\n"
    "    bandwidth: 2.65 GB/s\n"
    "    latency: 100 us\n"
    "    points:\n"
    "      - {size: 1 MiB, time: 500 us, spread: 0.2}\n"
    "      - {size: 64 MiB, time: 25.3 ms}\n"
    "      - {size: 1e9 B, time: 0.377 s, spread: 0.015}\n"
    "  write: {bandwidth: 1.4 GB/s}\n"
    "  read_compute_loss_per_gb: 144.3 ms\n"
    "  write_compute_loss_per_gb: 0.0195 s\n"
    "links:\n"
    "  h2d_pinned:\n"
    "    bandwidth: 12.89 GiB/s\n"
    "    latency: 10 us\n"
    "    points: [{size: 4 KiB, time: 11.5 us}, {size: 256 MiB, time: 19.4 ms, spread: 0.01}]\n"
    "  d2h_pinned: {bandwidth: 4.82 GiB/s}\n"
    "  d2h_pageable: {bandwidth: 0.3333333333333333 GB/s, latency: 1.7e-5 s}\n";

static void check_synthetic(void)
{
    char path[1024];
    if (!temp_path(path, sizeof path)) {
        CHECK(false, "synthetic: cannot create a temporary file");
        return;
    }
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "synthetic: cannot write %s", path);
    if (!f)
        return;
    fputs(synthetic_yaml, f);
    fclose(f);
    hwprofile *hw = calloc(1, sizeof *hw);
    if (hw) {
        diag e = {0};
        llmsim_status st = hwprofile_load_yaml(path, hw, &e);
        CHECK(st == LLMSIM_OK, "synthetic: load failed: %s", e.msg);
        if (st == LLMSIM_OK) {
            CHECK(strcmp(hw->prov.description,
                         "quote \" backslash \\ tab \t colon: hash # accent \xc3\xa9") == 0,
                  "synthetic: description decoded as '%s'", hw->prov.description);
            /* DEL, C1 controls (NEL among them), LS, PS, U+FFFE/FFFF must be
             * escaped by the saver: libyaml rejects or folds them raw */
            CHECK(strcmp(hw->prov.host, "box\x7f\xc2\x85\xe2\x80\xa8 \xe2\x80\xa9\xc2\x90"
                                        "\xef\xbf\xbe\xef\xbf\xbf\xef\xbb\xbf\xc2\xa0.") == 0,
                  "synthetic: host decoded as '%s'", hw->prov.host);
            CHECK(strcmp(hw->prov.notes, "line one\n  indented line two\n\"line three\"\n") == 0,
                  "synthetic: notes decoded as '%s'", hw->prov.notes);
            CHECK(hw->gpu.gemm.npoints == 4 && hw->gpu.gemm.points[2].n == 12288 &&
                      hw->gpu.gemm.points[2].k == 3072,
                  "synthetic: GEMM n/k not loaded");
            CHECK(hw->gpu.gemm_bf16.npoints == 3 && hw->gpu.gemm_bf16.points[1].n == 8192 &&
                      hw->gpu.gemm_bf16.points[1].flops == 20.1e12 &&
                      hw->gpu.gemm_bf16.points[0].spread == 0.25,
                  "synthetic: gemm_bf16 not loaded (%d points)", hw->gpu.gemm_bf16.npoints);
            CHECK(hw->cpu.read.npoints == 3 && hw->cpu.read.points[1].ws_bytes == 96.0 * 1048576 &&
                      hw->cpu.read.points[2].Bps == 41.7 * 1073741824.0 &&
                      hw->cpu.read.points[2].spread == 0.125,
                  "synthetic: read_bandwidth not loaded (%d points)", hw->cpu.read.npoints);
            CHECK(hw->disk.read.npoints == 3 && hw->links[HW_LINK_H2D_PINNED].npoints == 2,
                  "synthetic: link points not loaded");
            CHECK(hw->disk.read_loss_s_per_GB == 0.1443 && hw->disk.write_loss_s_per_GB == 0.0195,
                  "synthetic: disk compute loss not loaded (%g, %g)", hw->disk.read_loss_s_per_GB,
                  hw->disk.write_loss_s_per_GB);
            /* an absent pageable link takes the pinned figures but stays unsaved */
            CHECK(!hw->links[HW_LINK_H2D_PAGEABLE].present &&
                      hw->links[HW_LINK_H2D_PAGEABLE].bandwidth_Bps ==
                          hw->links[HW_LINK_H2D_PINNED].bandwidth_Bps,
                  "synthetic: h2d_pageable default");
            check_roundtrip("synthetic", hw);
            strbuf s = {0};
            hwprofile_save(hw, &s);
            CHECK(strstr(strbuf_str(&s), "\n  gemm_bf16:\n") != NULL,
                  "synthetic: saved text has no gemm_bf16 table:\n%s", strbuf_str(&s));
            strbuf_free(&s);
        }
        free(hw);
    }
    unlink(path);
}

/* gemm_bf16 is optional: a profile without it (npoints 0) saves no key, and
 * one given a table in code (as `llmsim profile` fills it) round-trips. */
static void check_gemm_bf16(void)
{
    hwprofile *hw = calloc(1, sizeof *hw);
    if (!hw) {
        CHECK(false, "gemm_bf16: out of memory");
        return;
    }
    diag e = {0};
    llmsim_status st = hwprofile_load("h100-80gb-sxm", hw, &e);
    CHECK(st == LLMSIM_OK, "gemm_bf16: loading h100-80gb-sxm failed: %s", e.msg);
    if (st == LLMSIM_OK) {
        strbuf s = {0};
        CHECK(hw->gpu.present && hw->gpu.gemm_bf16.npoints == 0,
              "gemm_bf16: shipped profile has %d bf16 points", hw->gpu.gemm_bf16.npoints);
        hwprofile_save(hw, &s);
        CHECK(strstr(strbuf_str(&s), "gemm_bf16") == NULL,
              "gemm_bf16: a profile without the table saves the key:\n%s", strbuf_str(&s));
        strbuf_free(&s);

        static const int ms[] = {1, 16, 256, 4096}, nks[] = {1024, 4096, 8192};
        hw_gemm_table *t = &hw->gpu.gemm_bf16;
        for (int j = 0; j < 3; j++)
            for (int i = 0; i < 4; i++) {
                hw_gemm_point *p = &t->points[t->npoints++];
                p->m = ms[i];
                p->n = p->k = nks[j];
                p->flops = 1e12 / 3.0 * (1 + i + 4 * j); /* not exact in decimal */
                p->spread = 0.01 * (i + j) + 1.0 / 7.0;
            }
        check_roundtrip("h100-80gb-sxm + gemm_bf16", hw);
        hwprofile_save(hw, &s);
        CHECK(strstr(strbuf_str(&s), "\n  gemm_bf16:\n") != NULL,
              "gemm_bf16: a profile with the table saves no key:\n%s", strbuf_str(&s));
        strbuf_free(&s);
    }
    free(hw);
}

/* Spreads of single figures and the calibration section round-trip, and
 * hwprofile_flagged names exactly the figures over HW_SPREAD_LIMIT among
 * the parts asked for. */
static void check_flagged_and_calibration(void)
{
    hwprofile *hw = calloc(1, sizeof *hw);
    diag e = {0};
    if (!hw || hwprofile_load("cpu-only", hw, &e) != LLMSIM_OK) {
        CHECK(false, "flagged: loading cpu-only: %s", e.msg);
        free(hw);
        return;
    }
    CHECK(hwprofile_flagged(hw, ~0u, NULL) == 0, "flagged: the shipped cpu-only has flagged figures");
    hw->cpu.memory_bandwidth_spread = 0.25;
    hw->cpu.attn_spread = HW_SPREAD_LIMIT; /* at the limit: not flagged */
    if (hw->cpu.gemm.npoints > 0)
        hw->cpu.gemm.points[0].spread = 0.5;
    hw->cpu.ndequant = 2;
    hw->cpu.dequant[0] = (hw_dequant_point){4, 1e10 / 3, 0.3};
    hw->cpu.dequant[1] = (hw_dequant_point){8, 2e10 / 3, 0.01};
    hw->calib.present = true;
    hw->calib.nfit = 2;
    snprintf(hw->calib.fit_inputs[0], HW_FIT_INPUT_LEN, "%s", "0123456789abcdef:0123456789abcdef:00");
    snprintf(hw->calib.fit_inputs[1], HW_FIT_INPUT_LEN, "%s", "aa:bb:cc");
    hw->calib.nheld = 3;
    hw->calib.held_err_p10 = -0.0625;
    hw->calib.held_err_p90 = 1.0 / 7.0;
    check_roundtrip("cpu-only + spreads + calibration", hw);
    strbuf s = {0};
    int n = hwprofile_flagged(hw, HW_USES_CPU, &s);
    int want = 2 + (hw->cpu.gemm.npoints > 0); /* memory bandwidth, 4-bit dequantization, GEMM */
    CHECK(n == want, "flagged: %d figures, want %d:\n%s", n, want, strbuf_str(&s));
    CHECK(strstr(strbuf_str(&s), "CPU memory bandwidth: spread 25.0%") != NULL, "flagged: %s", strbuf_str(&s));
    CHECK(hwprofile_flagged(hw, HW_USES_DISK_READ, NULL) == 0, "flagged: CPU figures counted for the disk");
    strbuf_free(&s);
    /* a broken calibration section is the file's error */
    static const char *const bad[] = {
        "calibration:\n  fit_inputs: [\"xyz\"]\n  held_out_runs: 0\n",
        "calibration:\n  fit_inputs: []\n  held_out_runs: 2\n",
        "calibration:\n  fit_inputs: []\n  held_out_runs: 0\n  held_out_error_p10: x\n",
        "calibration:\n  fit_inputs: []\n  held_out_runs: 1\n  held_out_error_p10: 0.2\n"
        "  held_out_error_p90: 0.1\n",
    };
    /* a dequant point of 6 bits, or two of 4 bits, is the file's error */
    hwprofile_save(hw, &s);
    static const char *const deq_bad[] = {"{bits: 6,", "{bits: 4,"};
    for (size_t i = 0; i < 2; i++) {
        const char *at = strstr(strbuf_str(&s), "{bits: 8,");
        CHECK(at != NULL, "dequant: no 8-bit point saved");
        if (!at)
            break;
        strbuf t = {0};
        strbuf_printf(&t, "%.*s%s%s", (int)(at - strbuf_str(&s)), strbuf_str(&s), deq_bad[i], at + 9);
        hwprofile *back = calloc(1, sizeof *back);
        diag_clear(&e);
        CHECK(back && hwprofile_load_yaml_text("bad.yaml", strbuf_str(&t), back, &e) == LLMSIM_EINPUT &&
                  strstr(e.msg, "bad.yaml") != NULL,
              "dequant: %s accepted (%s)", deq_bad[i], e.msg);
        free(back);
        strbuf_free(&t);
    }
    strbuf_free(&s);
    hw->calib.present = false;
    hwprofile_save(hw, &s);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strbuf t = {0};
        strbuf_puts(&t, strbuf_str(&s));
        strbuf_puts(&t, bad[i]);
        hwprofile *back = calloc(1, sizeof *back);
        diag_clear(&e);
        CHECK(back && hwprofile_load_yaml_text("bad.yaml", strbuf_str(&t), back, &e) == LLMSIM_EINPUT,
              "calibration: bad section %zu accepted", i);
        free(back);
        strbuf_free(&t);
    }
    strbuf_free(&s);
    free(hw);
}

int main(void)
{
    int n = 0;
    for (const char *const *p = hwprofile_shipped_names; *p; p++, n++) {
        const char *name = *p;
        hwprofile *hw = calloc(1, sizeof *hw);
        if (!hw) {
            CHECK(false, "out of memory");
            break;
        }
        diag e = {0};
        llmsim_status st = hwprofile_load(name, hw, &e);
        CHECK(st == LLMSIM_OK, "%s: hwprofile_load by name failed: %s", name, e.msg);
        if (st == LLMSIM_OK) {
            check_sanity(name, hw);
            check_roundtrip(name, hw);
            /* spec-sheet and paper profiles have no measured bf16 table */
            CHECK(hw->gpu.gemm_bf16.npoints == 0, "%s: gpu.gemm_bf16 has %d points", name,
                  hw->gpu.gemm_bf16.npoints);
            CHECK(hw->cpu.read.npoints == 0, "%s: cpu.read_bandwidth has %d points", name,
                  hw->cpu.read.npoints);
        }
        free(hw);
    }
    CHECK(n == (int)(sizeof expects / sizeof expects[0]),
          "%d shipped names, %d expected by this test", n,
          (int)(sizeof expects / sizeof expects[0]));

    check_synthetic();
    check_gemm_bf16();
    check_flagged_and_calibration();

    /* by path, as a file under hwprofiles/ */
    hwprofile *hw = calloc(1, sizeof *hw);
    if (hw) {
        diag e = {0};
        CHECK(hwprofile_load(tap_src("hwprofiles/cpu-only.yaml"), hw, &e) == LLMSIM_OK,
              "cpu-only by path: %s", e.msg);
        CHECK(!hw->gpu.present, "cpu-only has a GPU");
        /* an unknown name is the user's error and lists the shipped names */
        diag_clear(&e);
        CHECK(hwprofile_load("no-such-machine", hw, &e) == LLMSIM_EINPUT,
              "unknown profile name accepted");
        CHECK(strstr(e.msg, "h100-80gb-sxm") != NULL, "message does not list shipped names: %s",
              e.msg);
        free(hw);
    }
    return tap_done();
}
