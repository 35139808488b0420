/*
 * cmd_calibrate — `llmsim calibrate`: its options and its tables. The work
 * (the measured runs from the store, the fit, the errors before and after,
 * the profile and its record) is validate/calibration.h's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "validate/calibration.h"
#include "validate/validate.h"

static void usage(void)
{
    printf("usage: llmsim calibrate --hardware H -o FILE [--runs ID[,ID...]] [--holdout ID[,ID...]]\n"
           "                        [--holdout-every K] [--name NAME] [--format table|json] [--db PATH]\n\n"
           "Fit the parameters of hardware profile H that the measured task times point to -\n"
           "each link's latency and bandwidth, the GEMM table's rate at each shape, memory\n"
           "bandwidth, attention throughput and an overhead per compute task - by least squares\n"
           "over every task of the measured runs (Levenberg-Marquardt on the plan's own prices).\n"
           "Write the fitted profile to FILE with its provenance, and print the simulation's\n"
           "error on total time before and after, on the runs of the fit and on runs held out.\n\n"
           "  --hardware H        the profile to start from (a measured one: llmsim profile)\n"
           "  -o, --output FILE   where the fitted profile goes\n"
           "  --runs IDS          measure runs, or validate runs (each stands for the measure runs\n"
           "                      of its policies); default: the newest validate run of H\n"
           "  --holdout IDS       measure runs kept out of the fit (to judge it)\n"
           "  --holdout-every K   without --holdout: every K-th run is held out (default 3;\n"
           "                      0: none)\n"
           "  --name NAME         the fitted profile's name (default: H's name + \"-calibrated\")\n"
           "  --format table|json human tables (default) or one JSON object\n"
           "  --db PATH           the store (default $LLMSIM_DB or ./llmsim.db)\n"
           "  --help              this text\n");
}

/* "12,15,18" (or one per option) appended to ids. */
static bool parse_ids(const char *s, int64_t *ids, int *n)
{
    const char *p = s;
    while (*p) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v <= 0 || *n >= CALIBRATION_MAX_RUNS)
            return false;
        ids[(*n)++] = v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return false;
    }
    return true;
}

/* The options of a run of the command. */
typedef struct c_opts {
    const char *hw_spec, *out_path, *name, *db_opt;
    cli_format format;
    int64_t ids[CALIBRATION_MAX_RUNS], held[CALIBRATION_MAX_RUNS];
    int nids, nheld;
    long long every;
} c_opts;

/* The options into o; an exit status (0: go on; *help after --help). */
static int parse_opts(int argc, char **argv, c_opts *o, bool *help)
{
    o->every = 3;
    for (int i = 1; i < argc; i++) { /* argv[0] is the command's name */
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            usage();
            *help = true;
            return CLI_EXIT_OK;
        }
        static const char *const valued[] = {"--hardware", "-o", "--output", "--runs", "--holdout",
                                             "--holdout-every", "--name", "--format", "--db"};
        const char *v;
        int which = cli_opt_valued("calibrate", argc, argv, &i, valued,
                                   (int)(sizeof valued / sizeof valued[0]), &v);
        if (which == -1) {
            fprintf(stderr, "llmsim calibrate: unknown option '%s' (see llmsim calibrate --help)\n", a);
            return CLI_EXIT_INPUT;
        }
        if (which < 0)
            return CLI_EXIT_INPUT;
        bool ok = true;
        switch (which) {
        case 0: o->hw_spec = v; break;
        case 1: case 2: o->out_path = v; break;
        case 3: ok = parse_ids(v, o->ids, &o->nids); break;
        case 4: ok = parse_ids(v, o->held, &o->nheld); break;
        case 5: ok = cli_parse_ll(v, 0, 1000, &o->every) && o->every != 1; break;
        case 6: o->name = v; break;
        case 7:
            ok = strcmp(v, "table") == 0 || strcmp(v, "json") == 0;
            o->format = strcmp(v, "json") == 0 ? CLI_FORMAT_JSON : CLI_FORMAT_TABLE;
            break;
        case 8: o->db_opt = v; break;
        }
        if (!ok)
            return cli_opt_invalid("calibrate", a, v);
    }
    if (!o->hw_spec || !o->out_path) {
        fprintf(stderr, "llmsim calibrate: give --hardware H and -o FILE (see llmsim calibrate --help)\n");
        return CLI_EXIT_INPUT;
    }
    return CLI_EXIT_OK;
}

static void print_table(const calibration *c, const char *out_path, int64_t run_id)
{
    const calib_result *cr = &c->fit;
    printf("calibrated %s: fit on %ld tasks of %d runs, %d runs held out; %d iterations\n\n", c->base.name,
           cr->tasks, c->nfit, c->nheld, cr->iterations);
    printf("%-40s %14s %14s %8s\n", "parameter", "before", "after", "change");
    for (int j = 0; j < cr->nparams; j++) {
        const calib_param *p = &cr->params[j];
        if (!p->fitted)
            continue;
        char ch[16] = "";
        if (p->before > 0)
            snprintf(ch, sizeof ch, "%+.1f%%", validate_pct(p->after, p->before));
        printf("%-40s %10.4g %-3s %10.4g %-3s %8s\n", p->name, p->before, p->unit, p->after, p->unit, ch);
    }
    printf("\n%-28s %9s %12s %8s %12s %8s\n", "run", "measured", "sim before", "error", "sim after", "error");
    for (int i = 0; i < c->nruns; i++) {
        const calibration_run *r = &c->runs[i];
        printf("%-28.28s %7.3f s %10.3f s %+7.1f%% %10.3f s %+7.1f%%%s\n", r->name, r->measured_s, r->before_s,
               validate_pct(r->before_s, r->measured_s), r->after_s, validate_pct(r->after_s, r->measured_s),
               r->held_out ? "  held out" : "");
    }
    printf("\nMAPE on the runs of the fit   %6.1f%% -> %5.1f%%\n", c->mape[0][0], c->mape[0][1]);
    if (c->nheld)
        printf("MAPE on the held-out runs     %6.1f%% -> %5.1f%%\n", c->mape[1][0], c->mape[1][1]);
    printf("\nwritten   %s (use it as --hardware %s)\nrecorded  run %lld in %s\n", out_path, out_path,
           (long long)run_id, c->db_path);
}

/* Interrupted (^C, SIGTERM) before anything was written: the run recorded
 * as such with its command line; exit 128 + the signal. */
static int calibrate_interrupted(const c_opts *o, const char *command, const calibration *c)
{
    record_job rj = {.hw = &c->base, .command = command, .db_path = cli_db_path(o->db_opt)};
    diag e;
    diag_clear(&e);
    bool rec = record_unfinished(&rj, "calibrate", "interrupted", NULL, &e) == LLMSIM_OK;
    fprintf(stderr, "llmsim calibrate: interrupted; nothing written%s\n",
            rec ? ", the run is recorded as interrupted" : "");
    return cli_interrupt_status();
}

/* Load, hold out, fit, write and record (^C stops it before the writing);
 * print. */
static int calibrate(const c_opts *o, const char *command, calibration *c)
{
    diag e;
    diag_clear(&e);
    hwprofile base;
    if (hwprofile_load(o->hw_spec, &base, &e) || calibration_init(c, cli_db_path(o->db_opt), &base, &e))
        return cli_fail("calibrate", &e);
    cli_flagged_check("calibrate", o->hw_spec, &base, HW_USES_CPU | HW_USES_DISK_READ | HW_USES_DISK_WRITE |
                      HW_USES_GPU, false);
    struct sigaction old;
    cli_sigint_catch(&old);
    c->interrupt = &cli_interrupted;
    llmsim_status st = calibration_runs_load(c, o->ids, o->nids, &e);
    if (!st)
        st = calibration_hold_out(c, o->held, o->nheld, o->every, &e);
    if (!st && isatty(2))
        fprintf(stderr, "llmsim calibrate: fitting %s to %d runs (%d held out) ...\n", c->base.name, c->nfit,
                c->nheld);
    if (!st)
        st = calibration_fit(c, o->name, command, &e);
    cJSON *obj = NULL;
    int64_t run_id = 0;
    if (!st && !cli_interrupted) /* what finished is written whole, also if a signal comes now */
        st = calibration_record(c, o->out_path, command, &obj, &run_id, &e);
    const bool stopped = cli_interrupted && obj == NULL;
    cli_sigint_release(&old);
    if (stopped)
        return calibrate_interrupted(o, command, c);
    if (st)
        return cli_fail("calibrate", &e);
    if (o->format == CLI_FORMAT_JSON) {
        cli_print_json(obj);
    } else {
        cJSON_Delete(obj);
        print_table(c, o->out_path, run_id);
    }
    return CLI_EXIT_OK;
}

int cmd_calibrate(int argc, char **argv)
{
    c_opts *o = calloc(1, sizeof *o);
    calibration *c = calloc(1, sizeof *c);
    bool help = false;
    int status = !o || !c ? CLI_EXIT_FAIL : parse_opts(argc, argv, o, &help);
    if (!o || !c)
        fprintf(stderr, "llmsim calibrate: out of memory\n");
    if (!status && !help) {
        char command[CLI_COMMAND_MAX];
        cli_command_line(argc, argv, command, sizeof command);
        status = calibrate(o, command, c);
    }
    if (c)
        calibration_free(c);
    free(c);
    free(o);
    return status;
}
