/*
 * cmd_profile — `llmsim profile`: measure this machine into a hardware
 * profile (profiler/profiler.h), write it, record it in the store; and
 * `llmsim profile --compare A B`: two profiles side by side with ratios.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/atomicfile.h"
#include "db/record.h"
#include "common/units.h"
#include "costmodel/primitives.h"
#include "db/store.h"
#include "exec/offload.h"
#include "profiler/profiler.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: llmsim profile [-o FILE] [--disk-dir DIR] [--quick] [--name NAME]\n"
            "                      [--format table|json] [--db PATH]\n"
            "       llmsim profile --compare A B\n\n"
            "Measure this machine: memory copy bandwidth with 1..N threads, the engine's GEMM\n"
            "over fp16 weights as a table by shape, its decode attention, O_DIRECT disk reads and\n"
            "writes by block size and queue depth, the compute they take beside them, and the GPU\n"
            "when one is present. Every figure is the median of repeated runs after a warm-up\n"
            "(the CPU's: the trimmed mean of interleaved rounds), with its spread; a figure that\n"
            "spreads over 10%% is measured again, and flagged if it still does. The profile is\n"
            "written as YAML (-o) that every command accepts with --hardware FILE, and recorded\n"
            "in the store by content hash.\n\n"
            "  -o FILE           write the profile here\n"
            "  --disk-dir DIR    where the disk test file goes (default $TMPDIR or /tmp); it is\n"
            "                    removed afterwards, also on error and on ^C\n"
            "  --quick           a coarser profile in under 15 s (fewer sizes and repeats)\n"
            "  --name NAME       the profile's name (default measured-<host>)\n"
            "  --compare A B     print two profiles (names or files) side by side with B / A\n"
            "  --format table|json, --db PATH, --help\n");
}

/* ---- --compare */

static void row(const char *what, double a, double b, units_kind kind)
{
    char x[32], y[32];
    units_format(kind, a, x, sizeof x);
    units_format(kind, b, y, sizeof y);
    if (a > 0 && b > 0)
        printf("  %-34s %-16s %-16s %6.2fx\n", what, x, y, b / a);
    else
        printf("  %-34s %-16s %-16s %7s\n", what, a > 0 ? x : "-", b > 0 ? y : "-", "-");
}

static int compare(const char *sa, const char *sb)
{
    hwprofile *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    diag e;
    diag_clear(&e);
    int status = CLI_EXIT_OK;
    if (!a || !b || hwprofile_load(sa, a, &e) || hwprofile_load(sb, b, &e)) {
        status = !a || !b ? CLI_EXIT_FAIL : cli_fail("profile", &e);
        goto out;
    }
    printf("  %-34s %-16s %-16s %7s\n", "", a->name, b->name, "B / A");
    printf("CPU\n");
    row("memory", a->cpu.memory_bytes, b->cpu.memory_bytes, UNITS_BYTES);
    row("memory bandwidth", a->cpu.memory_bandwidth_Bps, b->cpu.memory_bandwidth_Bps, UNITS_BANDWIDTH);
    row("weight reads, 32 MiB working set", cm_cpu_read_Bps(a, 32.0 * (1 << 20)),
        cm_cpu_read_Bps(b, 32.0 * (1 << 20)), UNITS_BANDWIDTH);
    row("weight reads, 4 GiB working set", cm_cpu_read_Bps(a, 4.0 * (1 << 30)),
        cm_cpu_read_Bps(b, 4.0 * (1 << 30)), UNITS_BANDWIDTH);
    row("attention (K+V per second)", a->cpu.attn_Bps, b->cpu.attn_Bps, UNITS_BANDWIDTH);
    static const double shapes[][2] = {{1, 4096}, {16, 4096}, {256, 4096}, {1024, 4096}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "GEMM m=%.0f n=k=%.0f", shapes[i][0], shapes[i][1]);
        row(what, cm_gemm_rate(&a->cpu.gemm, shapes[i][0], shapes[i][1], shapes[i][1]),
            cm_gemm_rate(&b->cpu.gemm, shapes[i][0], shapes[i][1], shapes[i][1]), UNITS_FLOPS);
    }
    printf("disk\n");
    row("capacity (free)", a->disk.capacity_bytes, b->disk.capacity_bytes, UNITS_BYTES);
    row("read bandwidth", a->disk.read.bandwidth_Bps, b->disk.read.bandwidth_Bps, UNITS_BANDWIDTH);
    row("read latency", a->disk.read.latency_s, b->disk.read.latency_s, UNITS_TIME);
    row("write bandwidth", a->disk.write.bandwidth_Bps, b->disk.write.bandwidth_Bps, UNITS_BANDWIDTH);
    row("write latency", a->disk.write.latency_s, b->disk.write.latency_s, UNITS_TIME);
    row("compute lost per GB read", a->disk.read_loss_s_per_GB, b->disk.read_loss_s_per_GB,
        UNITS_TIME);
    row("compute lost per GB written", a->disk.write_loss_s_per_GB, b->disk.write_loss_s_per_GB,
        UNITS_TIME);
    printf("GPU %s / %s\n", a->gpu.present ? a->gpu.name : "none", b->gpu.present ? b->gpu.name : "none");
    row("memory", a->gpu.memory_bytes, b->gpu.memory_bytes, UNITS_BYTES);
    row("memory bandwidth", a->gpu.memory_bandwidth_Bps, b->gpu.memory_bandwidth_Bps, UNITS_BANDWIDTH);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "GEMM m=%.0f n=k=%.0f", shapes[i][0], shapes[i][1]);
        row(what, a->gpu.present ? cm_gemm_rate(&a->gpu.gemm, shapes[i][0], shapes[i][1], shapes[i][1]) : 0,
            b->gpu.present ? cm_gemm_rate(&b->gpu.gemm, shapes[i][0], shapes[i][1], shapes[i][1]) : 0,
            UNITS_FLOPS);
    }
    row("attention prefill", a->gpu.attn_prefill_flops, b->gpu.attn_prefill_flops, UNITS_FLOPS);
    row("attention decode", a->gpu.attn_decode_Bps, b->gpu.attn_decode_Bps, UNITS_BANDWIDTH);
    row("launch latency", a->gpu.launch_latency_s, b->gpu.launch_latency_s, UNITS_TIME);
    for (int i = 0; i < HW_NLINKS; i++) {
        char what[64];
        snprintf(what, sizeof what, "%s bandwidth", hw_link_names[i]);
        row(what, a->links[i].present ? a->links[i].bandwidth_Bps : 0,
            b->links[i].present ? b->links[i].bandwidth_Bps : 0, UNITS_BANDWIDTH);
    }
out:
    free(a);
    free(b);
    return status;
}

/* ---- measuring */

/* The options of a run of the command. */
typedef struct p_opts {
    profile_opts po;
    const char *out_path, *db;
    bool cmp, json;
} p_opts;

/* The options into o; an exit status (0: go on; *help after --help). */
static int parse_opts(int argc, char **argv, p_opts *o, bool *help)
{
    enum { O_DISK = 256, O_QUICK, O_NAME, O_COMPARE, O_FORMAT, O_DB, O_HELP };
    static const struct option opts[] = {
        {"disk-dir", required_argument, 0, O_DISK}, {"quick", no_argument, 0, O_QUICK},
        {"name", required_argument, 0, O_NAME},     {"compare", no_argument, 0, O_COMPARE},
        {"format", required_argument, 0, O_FORMAT}, {"db", required_argument, 0, O_DB},
        {"help", no_argument, 0, O_HELP},           {0, 0, 0, 0},
    };
    cli_getopt_reset();
    int c;
    cli_format f;
    while ((c = getopt_long(argc, argv, ":o:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o->out_path = optarg; break;
        case O_DISK: o->po.disk_dir = optarg; break;
        case O_QUICK: o->po.quick = true; break;
        case O_NAME: o->po.name = optarg; break;
        case O_COMPARE: o->cmp = true; break;
        case O_FORMAT:
            if (!cli_opt_format("profile", optarg, &f))
                return CLI_EXIT_INPUT;
            o->json |= f == CLI_FORMAT_JSON;
            break;
        case O_DB: o->db = optarg; break;
        case O_HELP:
            usage(stdout);
            *help = true;
            return CLI_EXIT_OK;
        default: return cli_opt_rejected("profile", c, argv);
        }
    }
    return CLI_EXIT_OK;
}

/* The profile's headline figures as the metrics of run run_id. */
static llmsim_status record_metrics(store *s, int64_t run_id, const hwprofile *hw, diag *e)
{
    const struct {
        const char *k;
        double v;
    } m[] = {{"memory_bandwidth_Bps", hw->cpu.memory_bandwidth_Bps},
             {"cpu_attention_Bps", hw->cpu.attn_Bps},
             {"disk_read_Bps", hw->disk.read.bandwidth_Bps},
             {"disk_write_Bps", hw->disk.write.bandwidth_Bps},
             {"disk_read_latency_s", hw->disk.read.latency_s},
             {"disk_read_compute_loss_s_per_GB", hw->disk.read_loss_s_per_GB},
             {"gpu_present", hw->gpu.present}};
    llmsim_status st = LLMSIM_OK;
    for (size_t i = 0; i < sizeof m / sizeof m[0] && !st; i++)
        st = store_run_metric(s, run_id, m[i].k, m[i].v, e);
    return st;
}

/* The profile in the store by content hash (*hash), and a run with its
 * figures (*run_id); body is the profile's YAML. */
static llmsim_status record_profile(const hwprofile *hw, const char *body, const char *db,
                                    const char *command, char hash[17], int64_t *run_id, diag *e)
{
    store *s = NULL;
    llmsim_status st = store_open(cli_db_path(db), &s, e);
    if (!st)
        st = store_put_input(s, "hwprofile", hw->name, body, hash, e);
    if (!st) {
        store_run_info info = {.kind = "profile", .hw_hash = hash, .hw_name = hw->name,
                               .command = command};
        if (!(st = store_run_begin(s, &info, run_id, e)))
            st = record_metrics(s, *run_id, hw, e);
        if (st)
            store_run_abort(s, *run_id, "failed");
        else
            st = store_run_commit(s, *run_id, "ok", body, e);
    }
    store_close(s);
    return st;
}

/* The profile as JSON, or the profiler's summary and where it went. */
static void print_profile(const p_opts *o, const hwprofile *hw, const char *summary,
                          const char *body, const char *hash, int64_t run_id)
{
    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", hw->name);
        cJSON_AddStringToObject(j, "profile", body);
        cJSON_AddStringToObject(j, "hash", hash);
        cJSON_AddNumberToObject(j, "run_id", (double)run_id);
        if (o->out_path)
            cJSON_AddStringToObject(j, "written", o->out_path);
        cli_print_json(j);
        return;
    }
    fputs(summary, stdout);
    if (o->out_path)
        printf("written   %s (use it as --hardware %s)\n", o->out_path, o->out_path);
    else
        printf("not written: give -o FILE to keep the profile as a file\n");
    printf("recorded  run %lld in %s, profile %s\n", (long long)run_id, cli_db_path(o->db), hash);
}

/* Measure this machine (^C stops it); write, record and print the profile. */
static int measure(p_opts *o, const char *command, hwprofile *hw)
{
    diag e0;
    diag_clear(&e0);
    if (o->out_path && atomicfile_check(o->out_path, "-o", &e0)) /* before minutes of measuring */
        return cli_fail("profile", &e0);
    o->po.command = command;
    o->po.progress = isatty(2);
    o->po.interrupt = &cli_interrupted;
    struct sigaction old;
    cli_sigint_catch(&old);
    strbuf summary = {0}, body = {0};
    diag e;
    diag_clear(&e);
    int status = CLI_EXIT_OK;
    llmsim_status st = profile_run(&o->po, hw, &summary, &e);
    cli_sigint_release(&old);
    char hash[17];
    int64_t run_id = 0;
    if (cli_interrupted) {
        record_job rj = {.command = command, .db_path = cli_db_path(o->db)};
        bool rec = record_unfinished(&rj, "profile", "interrupted", NULL, &e) == LLMSIM_OK;
        fprintf(stderr, "llmsim profile: interrupted; the test file is removed%s\n",
                rec ? ", the run is recorded as interrupted" : "");
        status = cli_interrupt_status();
    } else if (st || (o->out_path && hwprofile_write(hw, o->out_path, &e))) {
        status = cli_fail("profile", &e);
    } else {
        hwprofile_save(hw, &body);
        if (record_profile(hw, strbuf_str(&body), o->db, command, hash, &run_id, &e))
            status = cli_fail("profile", &e);
        else
            print_profile(o, hw, strbuf_str(&summary), strbuf_str(&body), hash, run_id);
    }
    strbuf_free(&body);
    strbuf_free(&summary);
    return status;
}

int cmd_profile(int argc, char **argv)
{
    p_opts o;
    memset(&o, 0, sizeof o);
    char command[CLI_COMMAND_MAX];
    cli_command_line(argc, argv, command, sizeof command);
    bool help = false;
    int status = parse_opts(argc, argv, &o, &help);
    if (status || help)
        return status;
    if (o.cmp) {
        if (argc - optind != 2) {
            fprintf(stderr, "llmsim profile: --compare takes two profiles, A and B\n");
            return CLI_EXIT_INPUT;
        }
        return compare(argv[optind], argv[optind + 1]);
    }
    if (optind < argc) {
        fprintf(stderr, "llmsim profile: unexpected argument '%s'\n", argv[optind]);
        return CLI_EXIT_INPUT;
    }
    hwprofile *hw = calloc(1, sizeof *hw);
    if (!hw) {
        fprintf(stderr, "llmsim profile: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    status = measure(&o, command, hw);
    free(hw);
    return status;
}
