/*
 * cmd_report — `llmsim report [RUN...] [-o DIR]`: plots of recorded runs
 * (gnuplot, PNG and SVG) and DIR/index.html that shows them with their
 * numbers: offline runs (predict, simulate, measure, validate) and serving
 * runs (serve, serve-measure, validate --serving).
 *
 * This file is the command: it parses the options, refuses early what it
 * can (DIR, gnuplot), opens the store and prints the outcome. The work is
 * report/'s: report_load.c reads the runs, report_fig.c turns them into
 * figures, report_out.c writes them.
 *
 * Exit status: 0 ok, 2 bad input (a run not in the store or with nothing to
 * plot, a bad option), 1 other failures, 130 when ^C or SIGTERM stopped it.
 */
#include "cli/commands.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "report/report.h"

#define REPORT_DEFAULT_DB  "./llmsim.db"
#define REPORT_DEFAULT_DIR "llmsim-report"

// ---- options

static void report_usage(FILE *f)
{
    fputs("usage: llmsim report [RUN...] [-o DIR] [--force] [--db PATH] [--help]\n"
          "\n"
          "Plot recorded runs with gnuplot (PNG and SVG) into DIR, with DIR/index.html\n"
          "showing every plot and a table of its numbers. The data (.dat) and gnuplot\n"
          "scripts (.gp) are written too: edit a script and run `gnuplot NAME.gp` in DIR.\n"
          "\n"
          "  RUN               run ids (see llmsim runs); default: the newest validate run.\n"
          "                    A validate run gives predicted, simulated and measured time\n"
          "                    per policy, and per policy the stage time per decode step\n"
          "                    and the memory per tier over time, simulated beside measured.\n"
          "                    Simulate, measure and predict runs of one job (same model,\n"
          "                    hardware, policy and workload) are drawn side by side.\n"
          "                    Serving runs (serve, serve-measure; a validate --serving run\n"
          "                    gives both per preemption mode): the CDFs of TTFT, TPOT and\n"
          "                    end-to-end latency, predicted and measured together, and the\n"
          "                    KV blocks in use and the preemptions over time.\n"
          "  -o, --output DIR  where the report goes (default: " REPORT_DEFAULT_DIR ")\n"
          "  --force           replace DIR when it holds an earlier report\n"
          "  --db PATH         the store (default: $LLMSIM_DB, else ./llmsim.db)\n"
          "  --help            print this help\n"
          "\n"
          "Needs gnuplot (Debian/Ubuntu: apt-get install gnuplot-nox).\n",
          f);
}

static bool report_parse_id(const char *arg, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = arg[0] >= '0' && arg[0] <= '9' ? strtoll(arg, &end, 10) : 0;
    if (errno || !end || *end || v < 1)
        return false;
    *out = (int64_t)v;
    return true;
}

typedef struct report_opts {
    const char *db;
    char *dir;       /* owned: trailing slashes are stripped */
    bool force;
    int64_t *ids;    /* [nids] owned */
    size_t nids;
} report_opts;

/* Returns -1 to go on, else the exit status. */
static int report_parse(int argc, char **argv, report_opts *o)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},  {"output", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'F'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env = getenv("LLMSIM_DB");
    const char *dir = REPORT_DEFAULT_DIR;
    o->db = env && *env ? env : REPORT_DEFAULT_DB;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1;) {
        switch (c) {
        case 'd': o->db = optarg; break;
        case 'o': dir = optarg; break;
        case 'F': o->force = true; break;
        case 'h': report_usage(stdout); return 0;
        case ':':
            fprintf(stderr, "llmsim report: option '%s' needs a value; see llmsim report --help\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "llmsim report: unknown option '%s'; see llmsim report --help\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (!*dir) {
        fprintf(stderr, "llmsim report: -o needs a directory path\n");
        return 2;
    }
    o->dir = report_strdup(dir);
    o->ids = calloc((size_t)(argc - optind) + 1, sizeof *o->ids);
    if (!o->dir || !o->ids) {
        fprintf(stderr, "llmsim report: out of memory\n");
        return 1;
    }
    for (int i = optind; i < argc; i++) {
        int64_t id = 0;
        if (!report_parse_id(argv[i], &id)) {
            fprintf(stderr, "llmsim report: RUN must be a run id, a positive whole number (got "
                    "'%s'); see llmsim runs\n", argv[i]);
            return 2;
        }
        bool seen = false; /* a run named twice is drawn once */
        for (size_t k = 0; k < o->nids; k++)
            seen = seen || o->ids[k] == id;
        if (!seen)
            o->ids[o->nids++] = id;
    }
    return -1;
}

static int report_exit_status(llmsim_status st)
{
    return st == LLMSIM_OK ? 0 : st == LLMSIM_EINPUT ? 2 : 1;
}

int cmd_report(int argc, char **argv)
{
    report_opts o = {0};
    report r = {0};
    store *s = NULL;
    diag e;
    diag_clear(&e);
    int rc = report_parse(argc, argv, &o);
    if (rc >= 0)
        goto done;
    /* cheap refusals first: before reading anything */
    llmsim_status st = report_dir_check(o.dir, o.force, &e);
    if (st == LLMSIM_OK && !report_gnuplot_found())
        st = diag_set(&e, LLMSIM_EFAIL, "gnuplot not found on PATH; install it (Debian/Ubuntu: "
                      "apt-get install gnuplot-nox)");
    if (st == LLMSIM_OK)
        st = store_open_existing(o.db, &s, &e);
    if (st == LLMSIM_OK && o.nids == 0 && (st = report_default_run(s, o.db, &o.ids[0], &e)) == 0)
        o.nids = 1;
    r.db = o.db;
    if (st == LLMSIM_OK)
        st = report_load(&r, s, o.ids, o.nids, &e);
    store_close(s); /* everything is read; plotting takes no lock on the store */
    s = NULL;
    if (st == LLMSIM_OK)
        st = report_figs_build(&r, &e);
    if (st == LLMSIM_OK)
        st = report_write(&r, o.dir, o.force, &e);
    if (st == LLMSIM_OK)
        printf("%s/index.html\n", o.dir);
    else
        fprintf(stderr, "llmsim report: %s\n", e.msg);
    rc = report_interrupted() ? 128 + report_interrupted() : report_exit_status(st);
done:
    report_free(&r);
    store_close(s);
    free(o.dir);
    free(o.ids);
    return rc;
}
