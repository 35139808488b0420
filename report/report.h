/*
 * report — the parts of `llmsim report` and what they share. Each file
 * calls only the files listed above it (no circles):
 *
 *   report.c       releasing a report; the helpers every file uses
 *   report_load.c  reading runs from the store (each once), the expansion of
 *                  a validate run into its policies (or, serving, its
 *                  preemption modes) and their runs, the grouping of runs of
 *                  one job
 *   report_fig.c   the figures: each one is a table of numbers (written as
 *                  NAME.dat and shown in the page) and a gnuplot script (NAME.gp)
 *   report_html.c  index.html: the figures with their tables
 *   report_out.c   the temporary directory, gnuplot, the rename into place
 *
 * cli/cmd_report.c is the command on top: options, then load, figures, write.
 *
 * Ownership: a `report` owns every run, policy, group, figure and section in
 * it and is released by report_free. Groups point at runs held by the report.
 * Units: times in seconds and sizes in bytes as read from the store; a
 * figure scales its columns to one unit chosen for it (named in the header).
 */
#ifndef LLMSIM_REPORT_REPORT_H
#define LLMSIM_REPORT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "common/strbuf.h"
#include "costmodel/analytic.h"
#include "db/store.h"

#define REPORT_MAX_COLS   24  /* step + 3 panels x CM_NSTAGES stages */
#define REPORT_MAX_PANELS 3   /* runs of one job side by side: predict, simulate, measure */

// ---- what is read from the store

/* Stage times of one decode step of a run. */
typedef struct report_step {
    int step;              /* 1.. (0 is the prefill, not plotted) */
    double s[CM_NSTAGES];  /* seconds per stage (cm_stage order), NaN where not recorded */
} report_step;

/* One run: the fields report plots. */
typedef struct report_run {
    store_run_row row;       /* owned strings (store_row_clear), result_json included */
    report_step *steps;      /* [nsteps] decode steps, ascending */
    size_t nsteps;
    store_mem_sample *mem;   /* [nmem] occupancy per tier in time order; static tier names */
    size_t nmem;
    serve_iter_row *iters;   /* [niters] a serving run's iterations in order; none for others */
    size_t niters;
    store_serve_request *reqs; /* [nreqs] a serving run's requests in order */
    size_t nreqs;
} report_run;

/* One policy of a validate run (its result_json `runs[i]`). */
typedef struct report_policy {
    char *name;
    double predicted_s, simulated_s, measured_s; /* whole workload, seconds */
    double error_pct;           /* simulated against measured, signed percent */
    double predicted_error_pct; /* cost model against measured */
} report_policy;

/* One preemption mode of a serving validate run (its result_json `modes[i]`). */
typedef struct report_mode {
    char *name;                  /* swap, recompute, adaptive */
    double tput_pred, tput_meas; /* throughput, tokens/s; NaN when absent */
    char **err_key;              /* [nerr] the result's `errors` that are numbers, in its order */
    double *err_pct;             /* [nerr] predicted against measured, signed percent */
    size_t nerr;
} report_mode;

/* A validate run expanded: its policies (llmsim validate) or, serving, its
 * preemption modes (llmsim validate --serving; the result has `modes`). */
typedef struct report_validate {
    int64_t id;
    char *model, *hw;              /* NULL when the result does not name them */
    double mape, mape_predicted;   /* percent; NaN when absent */
    report_policy *pol;            /* [npol] the policies that could be read */
    size_t npol;
    bool serving;                  /* the result has `modes` */
    double requests;               /* serving: requests served; NaN when absent */
    report_mode *modes;            /* [nmodes] the modes that could be read */
    size_t nmodes;
    char **notes;                  /* [nnotes] policies or modes skipped, and why */
    size_t nnotes;
} report_validate;

/* Runs of one job (same model, hardware, policy and workload) drawn side by
 * side: one panel each, predicted, simulated, measured in that order (a
 * serving group: serve, then serve-measure). */
typedef struct report_group {
    char *title;
    int64_t validate_id;  /* the validate run whose policy or mode this is; 0 for runs given
                           * directly */
    const report_run *panel[REPORT_MAX_PANELS];
    int npanels;
    char **notes;   /* [nnotes] runs of the job that could not be drawn */
    size_t nnotes;
} report_group;

// ---- what is written

/* A row of a figure's table: an optional text label, then numbers. */
typedef struct report_row {
    char *label;                  /* owned; NULL when the table has no label column */
    int block;                    /* rows of one block are one gnuplot `index` */
    double v[REPORT_MAX_COLS];    /* NaN: missing ('?' in .dat, '-' in the page) */
} report_row;

/* The numbers a figure plots: written to NAME.dat and shown in the page. */
typedef struct report_table {
    char *label_head;             /* heading of the label column, NULL for none */
    int ncols;
    char *head[REPORT_MAX_COLS];  /* column headings with their unit */
    report_row *rows;
    size_t nrows, cap;
} report_table;

typedef struct report_fig {
    char name[48];     /* file stem: NAME.png, NAME.svg, NAME.dat, NAME.gp */
    char *title;       /* caption in the page and alt text */
    report_table table;
    strbuf gp;         /* the gnuplot script */
} report_fig;

/* A heading of the page with its notes and figures. */
typedef struct report_section {
    char *heading;
    strbuf text;        /* plain-text lines shown under the heading ('\n' separated) */
    strbuf tail;        /* the same, shown after the figures */
    size_t first_fig;   /* figures [first_fig, first_fig + nfigs) of the report */
    size_t nfigs;
} report_section;

typedef struct report {
    const char *db;              /* the store path, for the page */
    report_run **runs;           /* every run read, each once (pointers stay valid) */
    size_t nruns;
    report_validate *vals;
    size_t nvals;
    report_group *groups;
    size_t ngroups;
    report_fig *figs;
    size_t nfigs;
    report_section *sections;
    size_t nsections;
} report;

// ---- report.c: the base every other file uses

void report_free(report *r);
/* One run read from the store, with its row's strings; NULL is a no-op. */
void report_run_free(report_run *run);

/* Grow *arr (of *cap elements of `size` bytes) to hold n + 1; false on out of
 * memory. New elements are zeroed. */
bool report_grow(void **arr, size_t *cap, size_t n, size_t size);
/* Room for one more element, zeroed, at the end of *arr (n elements of
 * `size` bytes): the array grows by one, for lists that stay short. The new
 * element, not yet counted by the caller; NULL when out of memory (*arr is
 * then unchanged). */
void *report_push(void **arr, size_t n, size_t size);
/* strdup that fails cleanly: NULL only when s is NULL or memory is out. */
char *report_strdup(const char *s);
/* A message "llmsim report: warning: ..." on stderr. */
void report_warn(const char *fmt, ...) LLMSIM_PRINTF(1, 2);

// ---- report_load.c: the runs asked for, read from the store

/* Load every run of ids[n] into r (each read once), validate runs first in
 * their own groups (one per policy, or per preemption mode), then the others
 * grouped by job. EINPUT for a run not in the store or with nothing to plot;
 * what was read stays in r (report_free). */
llmsim_status report_load(report *r, store *s, const int64_t *ids, size_t n, diag *e);
/* The newest validate run in the store, for a report without RUN ids; EINPUT
 * when there is none (the message names `db`, the store's path). */
llmsim_status report_default_run(store *s, const char *db, int64_t *id, diag *e);

// ---- report_fig.c: build the figures and sections of a loaded report

/* Adds the sections and figures for every validate run and group: a group
 * with serving runs gets the latency CDFs, the KV blocks over time and the
 * preemptions on a timeline (report_fig.c's head). */
llmsim_status report_figs_build(report *r, diag *e);
/* NAME.dat of a figure. */
void report_table_dat(const report_fig *f, strbuf *out);

// ---- report_html.c

/* index.html of a report whose figures are drawn. */
void report_html(const report *r, strbuf *out);

// ---- report_out.c

/* Strip trailing slashes from dir in place; EINPUT when DIR is unusable:
 * not a directory, a symbolic link, non-empty without `force`, or with
 * `force` not an earlier report (no index.html). */
llmsim_status report_dir_check(char *dir, bool force, diag *e);
/* Whether `gnuplot` is an executable on $PATH. */
bool report_gnuplot_found(void);
/* Build the whole report in DIR.tmpXXXXXX and rename it to DIR. ^C or
 * SIGTERM meanwhile stops it (EFAIL) with nothing written. */
llmsim_status report_write(const report *r, const char *dir, bool force, diag *e);
/* The signal report_write stopped on (SIGINT, SIGTERM), 0 if none: the
 * command exits 128 + it, as a shell reports a process the signal killed. */
int report_interrupted(void);

#endif
