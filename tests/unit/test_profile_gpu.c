/*
 * test_profile_gpu — the GPU probes (profiler/profile_gpu.h).
 *
 * Everywhere: the statistics and the link fit on synthetic points, and
 * profile_gpu(quick) itself. Without a GPU (or without CUDA) it must return
 * OK with gpu.present false, links cleared and a note saying why; the checks
 * that need a GPU are then reported as skipped and the test passes. With a
 * GPU: the measured profile is plausible (bandwidths and latencies under
 * physical limits, GEMM table sorted, spreads >= 0) and survives
 * hwprofile_save -> file -> hwprofile_load_yaml unchanged.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "profiler/fit.h"
#include "profiler/profile_gpu.h"
#include "hwprofiles/hwprofile.h"
#include "tap.h"

/* Physical limits a measurement cannot exceed (REFERENCES.md "Hardware limits"). */
#define PCIE_MAX_BPS   64e9  /* PCIe 5.0 x16, one direction (63 GB/s) */
#define DEVICE_MAX_BPS 10e12 /* HBM of any current GPU (B200: 8 TB/s) */
#define GPU_MAX_FLOPS  1e16  /* dense fp16 of any current GPU (B200: 2.25 PFLOP/s) */
#define LATENCY_MAX_S  1e-3  /* per copy or launch */
#define FIT_EXACT_TOL  1e-9  /* relative: fit of noiseless points */
#define FIT_NOISY_TOL  0.10  /* relative: fit of points with +-3% noise */

/* ---- the CUDA-free parts */

static void test_median(void)
{
    double odd[] = {3, 1, 2};
    double spread = -1;
    CHECK(profile_median(odd, 3, &spread) == 2, "median of 3 values");
    CHECK_REL(spread, 1.0, 1e-15, "spread of {1,2,3}");
    CHECK(odd[0] == 1 && odd[1] == 2 && odd[2] == 3, "median sorts in place");
    double even[] = {4, 1, 3, 2};
    CHECK(profile_median(even, 4, &spread) == 2.5, "median of 4 values");
    CHECK_REL(spread, 3 / 2.5, 1e-15, "spread of {1,2,3,4}");
    double one[] = {7};
    CHECK(profile_median(one, 1, &spread) == 7 && spread == 0, "median of 1 value");
    double zeros[] = {0, 0};
    CHECK(profile_median(zeros, 2, &spread) == 0 && spread == 0, "spread with a zero median");
}

/* Points 4 KiB .. 1 GiB by powers of 4 on time = lat + bytes / bw, each time
 * times (1 + noise * a fixed pattern in [-1, 1]). */
static void synth_link(hw_link *l, double lat, double bw, double noise)
{
    static const double pattern[] = {1, -1, 0.5, -0.5, 0, 1, -1, 0.25, -0.75, 0.8};
    memset(l, 0, sizeof *l);
    for (double x = 4096; x <= 1024.0 * 1024 * 1024; x *= 4) {
        hw_point *p = &l->points[l->npoints];
        p->bytes = x;
        p->time_s = (lat + x / bw) * (1 + noise * pattern[l->npoints % 10]);
        l->npoints++;
    }
}

static void test_fit(void)
{
    hw_link l;
    diag e;
    diag_clear(&e);

    synth_link(&l, 10e-6, 25e9, 0);
    CHECK(profile_link_fit(&l, &e) == LLMSIM_OK, "fit: %s", e.msg);
    CHECK_REL(l.latency_s, 10e-6, FIT_EXACT_TOL, "exact fit: latency");
    CHECK_REL(l.bandwidth_Bps, 25e9, FIT_EXACT_TOL, "exact fit: bandwidth");

    synth_link(&l, 8e-6, 12e9, 0.03);
    CHECK(profile_link_fit(&l, &e) == LLMSIM_OK, "fit: %s", e.msg);
    CHECK_REL(l.latency_s, 8e-6, FIT_NOISY_TOL, "noisy fit: latency");
    CHECK_REL(l.bandwidth_Bps, 12e9, FIT_NOISY_TOL, "noisy fit: bandwidth");

    /* no latency at all, and the smallest sizes a little fast: the unconstrained
     * latency is negative, so the fit must clamp it to 0 and keep bw > 0 */
    synth_link(&l, 0, 20e9, 0);
    l.points[0].time_s *= 0.8;
    l.points[1].time_s *= 0.9;
    CHECK(profile_link_fit(&l, &e) == LLMSIM_OK, "fit: %s", e.msg);
    CHECK(l.latency_s == 0, "negative latency clamped to 0 (got %g)", l.latency_s);
    CHECK(l.bandwidth_Bps > 0 && fabs(l.bandwidth_Bps / 20e9 - 1) < 0.25,
          "bandwidth with latency 0 (got %g)", l.bandwidth_Bps);

    /* times that fall with size: no bandwidth resolvable, still bw > 0, lat >= 0 */
    memset(&l, 0, sizeof l);
    l.npoints = 3;
    l.points[0] = (hw_point){4096, 3e-6, 0};
    l.points[1] = (hw_point){65536, 2e-6, 0};
    l.points[2] = (hw_point){1048576, 1e-6, 0};
    CHECK(profile_link_fit(&l, &e) == LLMSIM_OK, "fit: %s", e.msg);
    CHECK(l.bandwidth_Bps >= HW_MIN_BANDWIDTH && l.bandwidth_Bps <= HW_MAX_BANDWIDTH &&
              l.latency_s >= 0 && l.latency_s <= HW_MAX_LATENCY,
          "degenerate fit stays in range (bw %g, lat %g)", l.bandwidth_Bps, l.latency_s);

    /* one point, and all points at one size */
    memset(&l, 0, sizeof l);
    l.npoints = 1;
    l.points[0] = (hw_point){1e6, 1e-4, 0};
    CHECK(profile_link_fit(&l, &e) == LLMSIM_OK, "fit: %s", e.msg);
    CHECK(l.bandwidth_Bps > 0 && l.latency_s >= 0, "one point: bw %g, lat %g", l.bandwidth_Bps,
          l.latency_s);
    l.npoints = 2;
    l.points[1] = (hw_point){1e6, 1.1e-4, 0};
    CHECK(profile_link_fit(&l, &e) == LLMSIM_OK, "fit: %s", e.msg);
    CHECK(l.bandwidth_Bps > 0 && l.latency_s >= 0, "one size: bw %g, lat %g", l.bandwidth_Bps,
          l.latency_s);

    /* what cannot be fitted */
    memset(&l, 0, sizeof l);
    CHECK(profile_link_fit(&l, &e) == LLMSIM_EINPUT && e.msg[0], "no points: EINPUT");
    diag_clear(&e);
    l.npoints = 1;
    l.points[0] = (hw_point){4096, 0, 0};
    CHECK(profile_link_fit(&l, &e) == LLMSIM_EINPUT && e.msg[0], "zero time: EINPUT");
    diag_clear(&e);
    l.points[0] = (hw_point){4096, NAN, 0};
    CHECK(profile_link_fit(&l, &e) == LLMSIM_EINPUT && e.msg[0], "NaN time: EINPUT");
}

/* ---- with a GPU */

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* A measured GEMM table (fp16 or bf16): at least 4 shapes m x n x n, each
 * throughput within the GPU bounds, sorted by (n*k, m). */
static void check_gemm_table(const char *what, const hw_gemm_table *t)
{
    CHECK(t->npoints >= 4 && t->npoints <= HW_MAX_POINTS, "%s: %d points", what, t->npoints);
    for (int i = 0; i < t->npoints && i < HW_MAX_POINTS; i++) {
        const hw_gemm_point *p = &t->points[i];
        CHECK(p->m >= 1 && p->n >= 1 && p->n == p->k, "%s[%d]: shape %gx%gx%g", what, i, p->m,
              p->n, p->k);
        CHECK(p->flops > HW_MIN_FLOPS && p->flops < GPU_MAX_FLOPS, "%s[%d]: %g FLOP/s", what, i,
              p->flops);
        CHECK(p->spread >= 0, "%s[%d]: spread %g", what, i, p->spread);
        if (i > 0) {
            const hw_gemm_point *q = &t->points[i - 1];
            double nk = p->n * p->k, qnk = q->n * q->k;
            CHECK(nk > qnk || (nk == qnk && p->m > q->m), "%s[%d] not sorted by (n*k, m)", what,
                  i);
        }
    }
}

static void check_plausible(const hwprofile *hw)
{
    const hw_gpu *g = &hw->gpu;
    CHECK(g->name[0] != '\0', "gpu name is empty");
    CHECK(g->memory_bytes >= 1e9, "gpu memory %g B", g->memory_bytes);
    CHECK(g->memory_bandwidth_Bps > 0 && g->memory_bandwidth_Bps < DEVICE_MAX_BPS,
          "gpu memory bandwidth %g B/s", g->memory_bandwidth_Bps);
    CHECK(g->launch_latency_s > 0 && g->launch_latency_s < LATENCY_MAX_S, "launch latency %g s",
          g->launch_latency_s);
    CHECK(g->attn_prefill_flops > HW_MIN_FLOPS && g->attn_prefill_flops < GPU_MAX_FLOPS,
          "attention prefill %g FLOP/s", g->attn_prefill_flops);
    CHECK(g->attn_decode_Bps > 0 && g->attn_decode_Bps < DEVICE_MAX_BPS, "attention decode %g B/s",
          g->attn_decode_Bps);

    check_gemm_table("gemm", &g->gemm);
    check_gemm_table("gemm_bf16", &g->gemm_bf16); /* measured like fp16, same bounds */

    for (int id = 0; id < HW_NLINKS; id++) {
        const hw_link *l = &hw->links[id];
        const char *n = hw_link_names[id];
        CHECK(l->present, "link %s absent", n);
        CHECK(l->bandwidth_Bps > 0 && l->bandwidth_Bps < PCIE_MAX_BPS, "link %s: %g B/s", n,
              l->bandwidth_Bps);
        CHECK(l->latency_s >= 0 && l->latency_s < LATENCY_MAX_S, "link %s: latency %g s", n,
              l->latency_s);
        CHECK(l->npoints >= 3, "link %s: %d points", n, l->npoints);
        CHECK(l->points[0].bytes == 4096, "link %s: first size %g", n, l->points[0].bytes);
        for (int i = 0; i < l->npoints; i++) {
            const hw_point *p = &l->points[i];
            CHECK(p->time_s > 0 && p->spread >= 0, "link %s[%d]: time %g s, spread %g", n, i,
                  p->time_s, p->spread);
            CHECK(i == 0 || p->bytes > l->points[i - 1].bytes, "link %s[%d]: sizes not increasing",
                  n, i);
            CHECK(p->bytes / p->time_s < PCIE_MAX_BPS, "link %s[%d]: %g B/s", n, i,
                  p->bytes / p->time_s);
        }
    }
}

/* Save -> file -> load -> save: the same text, and the GPU fields equal. */
static void check_roundtrip(hwprofile *hw)
{
    snprintf(hw->name, sizeof hw->name, "test-profile-gpu");
    hw->prov.source = HW_SOURCE_MEASURED;
    snprintf(hw->prov.description, sizeof hw->prov.description, "test_profile_gpu");
    snprintf(hw->cpu.name, sizeof hw->cpu.name, "test cpu");
    hw->cpu.cores = 1;
    hw->cpu.memory_bytes = 1e9;
    hw->cpu.memory_bandwidth_Bps = 1e10;
    hw->cpu.gemm.npoints = 1;
    hw->cpu.gemm.points[0] = (hw_gemm_point){1, 0, 0, 1e9, 0};
    hw->cpu.attn_Bps = 1e9;

    char path[256];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/llmsim_test_profile_gpu_XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp %s", path);
    if (fd < 0)
        return;
    close(fd);

    strbuf a = {0}, b = {0};
    diag e;
    diag_clear(&e);
    hwprofile_save(hw, &a);
    CHECK(strbuf_write_file(&a, path, &e) == LLMSIM_OK, "write: %s", e.msg);
    hwprofile *back = calloc(1, sizeof *back);
    CHECK(back != NULL, "calloc");
    if (back && hwprofile_load_yaml(path, back, &e) == LLMSIM_OK) {
        hwprofile_save(back, &b);
        CHECK(strcmp(strbuf_str(&a), strbuf_str(&b)) == 0,
              "the profile changed in the round trip:\n%s\n---\n%s", strbuf_str(&a),
              strbuf_str(&b));
        CHECK(back->gpu.present && strcmp(back->gpu.name, hw->gpu.name) == 0 &&
                  back->gpu.memory_bytes == hw->gpu.memory_bytes &&
                  back->gpu.memory_bandwidth_Bps == hw->gpu.memory_bandwidth_Bps &&
                  back->gpu.launch_latency_s == hw->gpu.launch_latency_s &&
                  back->gpu.attn_prefill_flops == hw->gpu.attn_prefill_flops &&
                  back->gpu.attn_decode_Bps == hw->gpu.attn_decode_Bps,
              "gpu fields differ after the round trip");
        CHECK(memcmp(&back->gpu.gemm, &hw->gpu.gemm, sizeof hw->gpu.gemm) == 0,
              "gpu gemm table differs after the round trip");
        CHECK(memcmp(&back->gpu.gemm_bf16, &hw->gpu.gemm_bf16, sizeof hw->gpu.gemm_bf16) == 0,
              "gpu gemm_bf16 table differs after the round trip");
        for (int id = 0; id < HW_NLINKS; id++)
            CHECK(memcmp(&back->links[id], &hw->links[id], sizeof hw->links[id]) == 0,
                  "link %s differs after the round trip", hw_link_names[id]);
    } else {
        CHECK(false, "load back %s: %s", path, e.msg);
    }
    free(back);
    strbuf_free(&a);
    strbuf_free(&b);
    unlink(path);
}

/* ---- profile_gpu itself */

static void count_progress(const char *what, void *ctx)
{
    (void)what;
    ++*(int *)ctx;
}

static void test_profile(void)
{
    hwprofile *hw = calloc(1, sizeof *hw);
    CHECK(hw != NULL, "calloc");
    if (!hw)
        return;
    /* stale figures that profile_gpu must clear or overwrite */
    hw->gpu.present = true;
    hw->gpu.memory_bytes = 1;
    hw->links[HW_LINK_H2D_PINNED].present = true;
    hw->cpu.cores = 3; /* not its business: must survive */

    int calls = 0;
    profile_gpu_opts o = {.quick = true, .progress = count_progress, .progress_ctx = &calls};
    char note[512];
    memset(note, 'x', sizeof note);
    diag e;
    diag_clear(&e);
    llmsim_status st = profile_gpu(hw, &o, note, sizeof note, &e);
    CHECK(st == LLMSIM_OK, "profile_gpu: %s", e.msg);
    CHECK(memchr(note, '\0', sizeof note) != NULL && note[0] != '\0', "note is a non-empty line");
    CHECK(hw->cpu.cores == 3, "profile_gpu touched the cpu section");
    printf("note: %s\n", note);

    if (st == LLMSIM_OK && !hw->gpu.present) {
        CHECK(all_zero(&hw->gpu, sizeof hw->gpu), "no GPU: the gpu section is cleared");
        CHECK(all_zero(hw->links, sizeof hw->links), "no GPU: the links are cleared");
        CHECK(strstr(note, "skipped") != NULL, "no GPU: the note says the probes were skipped");
        CHECK(calls == 0, "no GPU: no progress reported (%d calls)", calls);
        /* a zero-length note is allowed */
        CHECK(profile_gpu(hw, NULL, NULL, 0, &e) == LLMSIM_OK, "profile_gpu without a note");
        printf("skipped: the checks of a measured profile (no GPU here)\n");
    } else if (st == LLMSIM_OK) {
        CHECK(calls > 0, "progress was reported");
        check_plausible(hw);
        check_roundtrip(hw);
    }
    free(hw);
}

int main(void)
{
    test_median();
    test_fit();
    test_profile();
    return tap_done();
}
