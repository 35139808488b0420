/*
 * test_profiler — `llmsim profile --quick` as a library call (hwprofiles/
 * profiler.h): the measured profile is plausible, names its provenance,
 * round-trips through save and load unchanged (text and struct), and the
 * disk directory is left as it was; a bad --disk-dir is LLMSIM_EINPUT with a
 * message naming it; an interrupt stops the run and still cleans up; one
 * disk figure alone (profile_disk_figure, bench/disk_vs_fio.sh) is a rate
 * and leaves nothing behind, and refuses a block the file cannot hold.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "profiler/profiler.h"
#include "tap.h"

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *de; (de = readdir(d));)
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return n;
}

static void check_profile(const hwprofile *hw)
{
    CHECK(hw->cpu.cores >= 1, "cores %d", hw->cpu.cores);
    CHECK(hw->cpu.memory_bytes > 64e6, "memory %g", hw->cpu.memory_bytes);
    CHECK(hw->cpu.memory_bandwidth_Bps > 1e8 && hw->cpu.memory_bandwidth_Bps < 1e13,
          "memory bandwidth %g", hw->cpu.memory_bandwidth_Bps);
    CHECK(hw->cpu.gemm.npoints >= 2, "a GEMM table (%d points)", hw->cpu.gemm.npoints);
    for (int i = 0; i < hw->cpu.gemm.npoints; i++)
        CHECK(hw->cpu.gemm.points[i].flops > 1e7 && hw->cpu.gemm.points[i].flops < 1e14,
              "GEMM point %d: %g FLOP/s", i, hw->cpu.gemm.points[i].flops);
    /* weight reads by working set: 8 MiB upward, in increasing order (the loader's rule) */
    CHECK(hw->cpu.read.npoints >= 2, "a read_bandwidth table (%d points)", hw->cpu.read.npoints);
    CHECK(hw->cpu.read.npoints == 0 || hw->cpu.read.points[0].ws_bytes == 8 << 20,
          "first working set %g", hw->cpu.read.npoints ? hw->cpu.read.points[0].ws_bytes : 0);
    for (int i = 0; i < hw->cpu.read.npoints; i++) {
        CHECK(hw->cpu.read.points[i].Bps > 1e8 && hw->cpu.read.points[i].Bps < 1e13, "reads %g B/s",
              hw->cpu.read.points[i].Bps);
        CHECK(i == 0 || hw->cpu.read.points[i].ws_bytes > hw->cpu.read.points[i - 1].ws_bytes,
              "working sets increase");
    }
    CHECK(hw->cpu.attn_Bps > 1e7, "attention %g B/s", hw->cpu.attn_Bps);
    CHECK(hw->disk.present && hw->disk.capacity_bytes > 0, "disk with a capacity");
    const hw_link *l[2] = {&hw->disk.read, &hw->disk.write};
    for (int i = 0; i < 2; i++) {
        CHECK(l[i]->present && l[i]->npoints >= 2, "disk %s: %d points", i ? "write" : "read",
              l[i]->npoints);
        CHECK(l[i]->bandwidth_Bps > 1e6 && l[i]->latency_s >= 0, "disk %s: %g B/s, %g s",
              i ? "write" : "read", l[i]->bandwidth_Bps, l[i]->latency_s);
        for (int p = 0; p < l[i]->npoints; p++)
            CHECK(l[i]->points[p].bytes >= 256 * 1024 && l[i]->points[p].time_s > 0,
                  "disk point %d: %g B in %g s", p, l[i]->points[p].bytes, l[i]->points[p].time_s);
    }
    /* the compute lost beside transfers: measured (0 where the noise hid it), and far
     * below a second per GB (the loader's bound) */
    CHECK(hw->disk.read_loss_s_per_GB >= 0 && hw->disk.read_loss_s_per_GB < 1 &&
              hw->disk.write_loss_s_per_GB >= 0 && hw->disk.write_loss_s_per_GB < 1,
          "compute lost per GB: read %g s, write %g s", hw->disk.read_loss_s_per_GB,
          hw->disk.write_loss_s_per_GB);
    CHECK(strstr(hw->prov.notes, "lost") != NULL,
          "the notes give the compute lost beside the disk");
    CHECK(strcmp(hw->name, "unit-machine") == 0, "name '%s'", hw->name);
    CHECK(strstr(hw->prov.command, "test_profiler") != NULL, "command recorded: '%s'",
          hw->prov.command);
    CHECK(hw->prov.host[0] && hw->prov.date[0] && hw->prov.tool[0],
          "host '%s', date '%s', tool '%s'", hw->prov.host, hw->prov.date,
          hw->prov.tool);
}

static void test_quick(const char *dir)
{
    hwprofile *hw = calloc(1, sizeof *hw), *back = calloc(1, sizeof *back);
    strbuf sum = {0}, a = {0}, b = {0};
    diag e;
    diag_clear(&e);
    profile_opts o = {.disk_dir = dir, .quick = true, .name = "unit-machine", .command = "test_profiler"};
    llmsim_status st = profile_run(&o, hw, &sum, &e);
    CHECK(st == LLMSIM_OK, "profile_run: %s", e.msg);
    CHECK(entries(dir) == 0, "the disk directory is empty again (%d entries)", entries(dir));
    CHECK(strstr(strbuf_str(&sum), "memory copy") && strstr(strbuf_str(&sum), "disk read"),
          "the summary names the figures");
    if (st == LLMSIM_OK) {
        check_profile(hw);
        char path[4200];
        snprintf(path, sizeof path, "%s/../profile.yaml", dir);
        hwprofile_save(hw, &a);
        st = hwprofile_write(hw, path, &e);
        CHECK(st == LLMSIM_OK, "write: %s", e.msg);
        st = hwprofile_load(path, back, &e);
        CHECK(st == LLMSIM_OK, "the written profile loads: %s", e.msg);
        hwprofile_save(back, &b);
        CHECK(strcmp(strbuf_str(&a), strbuf_str(&b)) == 0, "save(load(save(p))) == save(p)");
        CHECK(back->cpu.gemm.npoints == hw->cpu.gemm.npoints &&
                  back->disk.read.npoints == hw->disk.read.npoints,
              "the tables and points survive");
        CHECK_REL(back->disk.read.bandwidth_Bps, hw->disk.read.bandwidth_Bps, 1e-12, "read bandwidth");
        CHECK(back->disk.read_loss_s_per_GB == hw->disk.read_loss_s_per_GB &&
                  back->disk.write_loss_s_per_GB == hw->disk.write_loss_s_per_GB,
              "the compute lost per GB survives");
        CHECK_REL(back->cpu.memory_bandwidth_Bps, hw->cpu.memory_bandwidth_Bps, 1e-12, "memory bandwidth");
        unlink(path);
    }
    strbuf_free(&sum);
    strbuf_free(&a);
    strbuf_free(&b);
    free(hw);
    free(back);
}

static void test_bad_dir(const char *dir, const char *what)
{
    hwprofile *hw = calloc(1, sizeof *hw);
    strbuf sum = {0};
    diag e;
    diag_clear(&e);
    profile_opts o = {.disk_dir = dir, .quick = true};
    llmsim_status st = profile_run(&o, hw, &sum, &e);
    CHECK(st == LLMSIM_EINPUT, "%s: EINPUT, got %d (%s)", what, st, e.msg);
    CHECK(strstr(e.msg, dir) != NULL, "%s: the message names %s: '%s'", what, dir, e.msg);
    strbuf_free(&sum);
    free(hw);
}

static void test_interrupt(const char *dir)
{
    hwprofile *hw = calloc(1, sizeof *hw);
    strbuf sum = {0};
    diag e;
    diag_clear(&e);
    volatile sig_atomic_t stop = 1; /* already interrupted: every probe stops at once */
    profile_opts o = {.disk_dir = dir, .quick = true, .interrupt = &stop};
    (void)profile_run(&o, hw, &sum, &e);
    CHECK(entries(dir) == 0, "interrupted: nothing left in the disk directory");
    strbuf_free(&sum);
    free(hw);
}

static void test_disk_figure(const char *dir)
{
    diag e;
    diag_clear(&e);
    double bps = 0, spread = 0;
    llmsim_status st = profile_disk_figure(dir, 8u << 20, 1u << 20, 2, false, 2, &bps, &spread, &e);
    CHECK(st == LLMSIM_OK, "a disk figure: %s", e.msg);
    /* any disk or tmpfs moves 8 MiB at more than 1 MB/s and less than 1 TB/s */
    CHECK(bps > 1e6 && bps < 1e12, "a disk figure is a rate: %g B/s", bps);
    CHECK(spread >= 0 && spread < 10, "its spread %g", spread);
    CHECK(entries(dir) == 0, "a disk figure leaves nothing in the directory");
    st = profile_disk_figure(dir, 8u << 20, 16u << 20, 1, true, 2, &bps, &spread, &e);
    CHECK(st == LLMSIM_EINPUT && isnan(bps), "a block larger than the file is refused: %d", st);
    st = profile_disk_figure(dir, 8u << 20, 1000, 1, true, 2, &bps, &spread, &e);
    CHECK(st == LLMSIM_EINPUT, "a block that is not a multiple of 4 KiB is refused: %d", st);
    CHECK(entries(dir) == 0, "refused figures leave nothing");
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/llmsim-test-profiler.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    char *root = mkdtemp(buf);
    if (!root) {
        perror("mkdtemp");
        return 1;
    }
    char disk[4200], file[4200], missing[4200];
    snprintf(disk, sizeof disk, "%s/disk", root);
    snprintf(file, sizeof file, "%s/afile", root);
    snprintf(missing, sizeof missing, "%s/no/such/dir", root);
    CHECK(mkdir(disk, 0700) == 0, "mkdir %s", disk);
    test_quick(disk);
    test_interrupt(disk);
    test_disk_figure(disk);
    FILE *f = fopen(file, "w");
    if (f)
        fclose(f);
    test_bad_dir(missing, "missing directory");
    test_bad_dir(file, "a file, not a directory");
    unlink(file);
    rmdir(disk);
    rmdir(root);
    return tap_done();
}
