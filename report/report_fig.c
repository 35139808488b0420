/*
 * report_fig — the figures of `llmsim report`. Each figure is first a table
 * (the numbers it plots, scaled to one unit chosen for the figure); that
 * table becomes NAME.dat and the table in the page, so the page shows
 * exactly what is drawn. The gnuplot script NAME.gp reads NAME.dat and
 * draws NAME.png and NAME.svg; it runs in the report directory and names
 * only files there, so a user can edit it and run it again.
 *
 * Figures: per validate run, total time per policy (bars) and simulated
 * against measured (scatter with y = x); per group of runs, the time of each
 * stage per decode step and the memory per tier over time, one panel per run.
 * A group of serving runs (serve, serve-measure) adds the CDFs of TTFT, TPOT
 * and end-to-end latency (the runs' curves together, one figure each), the
 * KV blocks held over time and the preemptions on a timeline (one panel per
 * run on a shared time axis). A serving validate run's section lists each
 * preemption mode's errors; its modes are groups.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"

#define FIG_MARGIN 1.08 /* axes reach this far past the largest value */
#define FIG_MAX_INT_TICKS 16 /* up to this many decode steps, one tick per step */
#define FIG_LABEL_ROOM 1.12 /* room in the scatter for the policy names beside points */
#define FIG_LOG_SPAN   100  /* a scatter whose times span more than this is log-log */
#define FIG_LOG_PAD    2.0  /* log axes reach this factor past the extreme times */

// ---- units

typedef struct fig_unit {
    const char *name;
    double per; /* a value in this unit is v / per */
} fig_unit;

static fig_unit fig_time_unit(double max_s)
{
    if (max_s >= 1)
        return (fig_unit){"s", 1};
    if (max_s >= 1e-3)
        return (fig_unit){"ms", 1e-3};
    return (fig_unit){"us", 1e-6};
}

static fig_unit fig_bytes_unit(double max_bytes)
{
    if (max_bytes >= 1024.0 * 1024 * 1024)
        return (fig_unit){"GiB", 1024.0 * 1024 * 1024};
    if (max_bytes >= 1024.0 * 1024)
        return (fig_unit){"MiB", 1024.0 * 1024};
    if (max_bytes >= 1024)
        return (fig_unit){"KiB", 1024};
    return (fig_unit){"bytes", 1};
}

static double fig_max(double a, double b) { return isfinite(b) && b > a ? b : a; }

/* Whether values from min to max span orders of magnitude: an axis for them
 * is logarithmic, where a linear one would squeeze the small ones into a
 * corner. */
static bool fig_log_span(double min, double max)
{
    return isfinite(min) && min > 0 && max / min > FIG_LOG_SPAN;
}

/* The upper end of an axis from 0 that shows `max`. */
static double fig_axis_top(double max) { return max > 0 ? max * FIG_MARGIN : 1; }

// ---- tables

static bool fig_head(report_table *t, const char *fmt, ...) LLMSIM_PRINTF(2, 3);
static bool fig_head(report_table *t, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (t->ncols >= REPORT_MAX_COLS) /* the figures below stay within it */
        return false;
    return (t->head[t->ncols++] = report_strdup(buf)) != NULL;
}

/* A new row with every value missing; NULL on out of memory. */
static report_row *fig_row(report_table *t, const char *label, int block)
{
    if (!report_grow((void **)&t->rows, &t->cap, t->nrows, sizeof *t->rows))
        return NULL;
    report_row *row = &t->rows[t->nrows];
    if (label && !(row->label = report_strdup(label)))
        return NULL;
    t->nrows++;
    row->block = block;
    for (int c = 0; c < REPORT_MAX_COLS; c++)
        row->v[c] = NAN;
    return row;
}

/* A data file string: gnuplot reads "..." as one column, a double quote
 * cannot be escaped in it and a control character ends the line. */
static void fig_dat_str(strbuf *b, const char *s)
{
    strbuf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p == '\\')
            strbuf_puts(b, "\\\\"); /* gnuplot reads \\ as one backslash */
        else
            strbuf_printf(b, "%c", *p == '"' ? '\'' : *p < 0x20 || *p == 0x7f ? ' ' : *p);
    strbuf_puts(b, "\"");
}

void report_table_dat(const report_fig *f, strbuf *b)
{
    const report_table *t = &f->table;
    strbuf_printf(b, "# %s.dat: ", f->name);
    for (const unsigned char *p = (const unsigned char *)f->title; *p; p++)
        strbuf_printf(b, "%c", *p < 0x20 || *p == 0x7f ? ' ' : *p); /* one comment line */
    strbuf_printf(b, "\n# written by llmsim report, read by %s.gp; '?' is missing\n#", f->name);
    if (t->label_head)
        strbuf_printf(b, " \"%s\"", t->label_head);
    for (int c = 0; c < t->ncols; c++)
        strbuf_printf(b, " \"%s\"", t->head[c]);
    strbuf_puts(b, "\n");
    for (size_t i = 0; i < t->nrows; i++) {
        const report_row *row = &t->rows[i];
        if (i > 0 && row->block != t->rows[i - 1].block)
            strbuf_puts(b, "\n\n"); /* a new gnuplot index */
        if (t->label_head)
            fig_dat_str(b, row->label ? row->label : "");
        for (int c = 0; c < t->ncols; c++) {
            const char *sep = c || t->label_head ? " " : "";
            if (isfinite(row->v[c]))
                strbuf_printf(b, "%s%.9g", sep, row->v[c]);
            else
                strbuf_printf(b, "%s?", sep);
        }
        strbuf_puts(b, "\n");
    }
}

// ---- gnuplot scripts

/* A gnuplot single-quoted string: no escapes but '' for '. */
static void gp_str(strbuf *b, const char *s)
{
    strbuf_puts(b, "'");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\'')
            strbuf_puts(b, "''");
        else
            strbuf_printf(b, "%c", *p < 0x20 || *p == 0x7f ? ' ' : *p);
    }
    strbuf_puts(b, "'");
}

/* One command with a quoted argument: `<indent>cmd 'arg'`. */
static void gp_set(strbuf *b, const char *cmd, const char *arg)
{
    strbuf_printf(b, "    %s ", cmd);
    gp_str(b, arg);
    strbuf_puts(b, "\n");
}

/* The head of a script: the data settings, then a loop that draws the
 * figure twice, PNG (pngcairo where gnuplot has it, else the libgd png
 * terminal) and SVG. Underscores in stage names stay literal (noenhanced). */
static void gp_begin(report_fig *f, const char *about, int width, int height)
{
    strbuf *b = &f->gp;
    strbuf_printf(b, "# %s.gp: %s\n", f->name, about);
    strbuf_printf(b, "# Written by llmsim report. Run `gnuplot %s.gp` in this directory to draw\n"
                     "# %s.png and %s.svg again from %s.dat.\n",
                  f->name, f->name, f->name, f->name);
    strbuf_puts(b, "set datafile missing '?'\n"
                   "do for [fmt in \"png svg\"] {\n"
                   "    if (fmt eq \"png\") {\n"
                   "        if (strstrt(GPVAL_TERMINALS, \" pngcairo \") > 0) {\n");
    strbuf_printf(b, "            set terminal pngcairo noenhanced size %d,%d font \",10\"\n"
                     "        } else {\n"
                     "            set terminal png noenhanced size %d,%d\n"
                     "        }\n"
                     "    } else {\n"
                     "        set terminal svg noenhanced size %d,%d\n"
                     "    }\n",
                  width, height, width, height, width, height);
    strbuf_printf(b, "    set output '%s.'.fmt\n", f->name);
}

/* The start of a clause of a plot command over the figure's data file:
 * `plot 'NAME.dat'` first, then `''` (the same file) on continued lines. */
static void gp_plot_clause(strbuf *b, const report_fig *f, bool first)
{
    if (first)
        strbuf_printf(b, "    plot '%s.dat'", f->name);
    else
        strbuf_puts(b, "         ''");
}

static void gp_end(report_fig *f, bool multiplot)
{
    if (multiplot)
        strbuf_puts(&f->gp, "    unset multiplot\n");
    strbuf_puts(&f->gp, "    set output\n}\n");
}

// ---- figures and sections

static report_fig *fig_new(report *r, const char *title, diag *e, const char *fmt, ...)
    LLMSIM_PRINTF(4, 5);
static report_fig *fig_new(report *r, const char *title, diag *e, const char *fmt, ...)
{
    report_fig *f = report_push((void **)&r->figs, r->nfigs, sizeof *f);
    if (!f || !(f->title = report_strdup(title))) {
        diag_set(e, LLMSIM_EFAIL, "out of memory");
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->name, sizeof f->name, fmt, ap);
    va_end(ap);
    r->nfigs++;
    r->sections[r->nsections - 1].nfigs++; /* figures follow their section */
    return f;
}

static report_section *section_new(report *r, const char *heading, diag *e)
{
    report_section *s = report_push((void **)&r->sections, r->nsections, sizeof *s);
    if (!s || !(s->heading = report_strdup(heading))) {
        diag_set(e, LLMSIM_EFAIL, "out of memory");
        return NULL;
    }
    s->first_fig = r->nfigs;
    r->nsections++;
    return s;
}

static llmsim_status fig_oom(diag *e) { return diag_set(e, LLMSIM_EFAIL, "out of memory"); }

/* What a panel shows: "simulated (run 12)". */
static const char *fig_kind_label(const char *kind)
{
    if (!kind)
        return "run";
    if (strcmp(kind, "predict") == 0 || strcmp(kind, "search") == 0 ||
        strcmp(kind, "serve") == 0)
        return "predicted";
    if (strcmp(kind, "simulate") == 0)
        return "simulated";
    if (strcmp(kind, "measure") == 0 || strcmp(kind, "serve-measure") == 0)
        return "measured";
    return kind;
}

/* Width in pixels of a figure with np panels side by side. */
static int fig_panels_width(int np) { return np < 2 ? 700 : np * 600; }

static void fig_panel_title(const report_run *run, char *buf, size_t len)
{
    snprintf(buf, len, "%s (run %lld)", fig_kind_label(run->row.kind), (long long)run->row.id);
}

/* A line "<panel>: <what>" under a section's figures. */
static void fig_panel_note(report_section *sec, const report_run *run, const char *what)
{
    char pt[128];
    fig_panel_title(run, pt, sizeof pt);
    strbuf_printf(&sec->tail, "%s: %s\n", pt, what);
}

typedef bool (*fig_run_has)(const report_run *run);

/* The runs of g that have what `has` looks for, in panel order, into
 * panels (their count); with sec, a note "<panel>: <lacks>" for each other. */
static int fig_panels_with(const report_group *g, fig_run_has has, report_section *sec,
                           const char *lacks, const report_run **panels)
{
    int np = 0;
    for (int p = 0; p < g->npanels; p++)
        if (has(g->panel[p]))
            panels[np++] = g->panel[p];
        else if (sec)
            fig_panel_note(sec, g->panel[p], lacks);
    return np;
}

/* The head of a script of np panels side by side under one title. */
static strbuf *gp_multiplot(report_fig *f, const char *about, int np, const char *title)
{
    strbuf *b = &f->gp;
    gp_begin(f, about, fig_panels_width(np), 480);
    strbuf_printf(b, "    set multiplot layout 1,%d title ", np);
    gp_str(b, title);
    strbuf_puts(b, "\n    set grid\n    set key below\n");
    return b;
}

// ---- validate: total time per policy

/* The longest of the predicted, simulated and measured totals. */
static double validate_max_s(const report_validate *v)
{
    double max = 0;
    for (size_t i = 0; i < v->npol; i++)
        max = fig_max(fig_max(fig_max(max, v->pol[i].predicted_s), v->pol[i].simulated_s),
                      v->pol[i].measured_s);
    return max;
}

/* A figure of a validate run: a table of one row per policy, its times in
 * one unit. */
typedef struct fig_policies {
    char title[256];
    report_fig *f;
    double max_s; /* the longest total of the run */
    fig_unit u;   /* the unit of every time in the figure */
} fig_policies;

/* The values of one policy's row, times in unit u. */
typedef void (*fig_policy_values)(const report_policy *p, fig_unit u, double *row_v);

/* Start the figure "<heading>, <what>" named <name>_<run id>: its time unit,
 * and its table's heads: "policy", then "<time_heads[k]> (<unit>)". */
static llmsim_status fig_policies_begin(report *r, const report_validate *v, const char *heading,
                                        const char *name, const char *what,
                                        const char *const *time_heads, int nheads,
                                        fig_policies *fp, diag *e)
{
    snprintf(fp->title, sizeof fp->title, "%s, %s", heading, what);
    fp->f = fig_new(r, fp->title, e, "%s_%lld", name, (long long)v->id);
    if (!fp->f)
        return e->status;
    fp->max_s = validate_max_s(v);
    fp->u = fig_time_unit(fp->max_s);
    report_table *t = &fp->f->table;
    bool ok = (t->label_head = report_strdup("policy")) != NULL;
    for (int k = 0; ok && k < nheads; k++)
        ok = fig_head(t, "%s (%s)", time_heads[k], fp->u.name);
    return ok ? LLMSIM_OK : fig_oom(e);
}

/* One row per policy, filled by values; false on out of memory. */
static bool fig_policies_rows(fig_policies *fp, const report_validate *v, fig_policy_values values)
{
    for (size_t i = 0; i < v->npol; i++) {
        report_row *row = fig_row(&fp->f->table, v->pol[i].name, 0);
        if (!row)
            return false;
        values(&v->pol[i], fp->u, row->v);
    }
    return true;
}

/* The head of the figure's script, with its title; the script to go on. */
static strbuf *fig_policies_script(fig_policies *fp, const char *about, int width, int height)
{
    gp_begin(fp->f, about, width, height);
    gp_set(&fp->f->gp, "set title", fp->title);
    return &fp->f->gp;
}

static void totals_values(const report_policy *p, fig_unit u, double *row_v)
{
    row_v[0] = p->predicted_s / u.per;
    row_v[1] = p->simulated_s / u.per;
    row_v[2] = p->measured_s / u.per;
}

static llmsim_status fig_totals(report *r, const report_validate *v, const char *what, diag *e)
{
    static const char *const heads[] = {"predicted", "simulated", "measured"};
    fig_policies fp;
    llmsim_status st =
        fig_policies_begin(r, v, "Total time per policy", "totals", what, heads, 3, &fp, e);
    if (st)
        return st;
    if (!fig_policies_rows(&fp, v, totals_values))
        return fig_oom(e);
    int width = (int)v->npol * 110 + 200;
    width = width < 640 ? 640 : width > 1400 ? 1400 : width;
    strbuf *b = fig_policies_script(
        &fp, "total time per policy: predicted (cost model), simulated, measured", width, 460);
    strbuf_printf(b, "    set style data histograms\n"
                     "    set style histogram clustered gap 1\n"
                     "    set style fill solid 0.85 border -1\n"
                     "    set boxwidth 0.9\n"
                     "    set grid ytics\n"
                     "    set key below\n"
                     "    set yrange [0:%.9g]\n"
                     "    set ylabel 'total time (%s)'\n"
                     "    set xtics %s\n",
                  fig_axis_top(fp.max_s / fp.u.per), fp.u.name,
                  v->npol > 4 ? "rotate by -25" : "norotate");
    strbuf_printf(b, "    plot '%s.dat' using 2:xtic(1) title 'predicted (cost model)', \\\n"
                     "         '' using 3 title 'simulated', \\\n"
                     "         '' using 4 title 'measured'\n", fp.f->name);
    gp_end(fp.f, false);
    return LLMSIM_OK;
}

// ---- validate: simulated against measured

/* The smallest positive time of a validation, for a log scale. */
static double fig_min_positive(const report_validate *v)
{
    double min = INFINITY;
    for (size_t i = 0; i < v->npol; i++) {
        const double t[3] = {v->pol[i].predicted_s, v->pol[i].simulated_s, v->pol[i].measured_s};
        for (int k = 0; k < 3; k++)
            if (t[k] > 0 && t[k] < min)
                min = t[k];
    }
    return min;
}

/* Equal axes from 0 for the scatter; logarithmic ones where the times span
 * orders of magnitude, which linear axes would squeeze into a corner. */
static void gp_accuracy_axes(strbuf *b, double min, double max, fig_unit u)
{
    if (fig_log_span(min, max)) {
        double lo = min / u.per / FIG_LOG_PAD, hi = max / u.per * FIG_LOG_PAD;
        strbuf_printf(b, "    set logscale xy\n    set xrange [%.9g:%.9g]\n"
                         "    set yrange [%.9g:%.9g]\n", lo, hi, lo, hi);
        return;
    }
    double top = fig_axis_top(max / u.per) * FIG_LABEL_ROOM;
    strbuf_printf(b, "    set xrange [0:%.9g]\n    set yrange [0:%.9g]\n", top, top);
}

static void accuracy_values(const report_policy *p, fig_unit u, double *row_v)
{
    row_v[0] = p->measured_s / u.per;
    row_v[1] = p->simulated_s / u.per;
    row_v[2] = p->predicted_s / u.per;
    row_v[3] = p->error_pct;
    row_v[4] = p->predicted_error_pct;
}

static llmsim_status fig_accuracy(report *r, const report_validate *v, const char *what, diag *e)
{
    static const char *const heads[] = {"measured", "simulated", "predicted"};
    fig_policies fp;
    llmsim_status st = fig_policies_begin(r, v, "Simulated and predicted against measured",
                                          "accuracy", what, heads, 3, &fp, e);
    if (st)
        return st;
    report_table *t = &fp.f->table;
    if (!fig_head(t, "simulation error (%%)") || !fig_head(t, "prediction error (%%)") ||
        !fig_policies_rows(&fp, v, accuracy_values))
        return fig_oom(e);
    strbuf *b = fig_policies_script(
        &fp, "simulated and predicted total time against measured, with y = x", 640, 600);
    strbuf_printf(b, "    set size square\n"
                     "    set grid\n"
                     "    set key top left\n"
                     "    set xlabel 'measured (%s)'\n"
                     "    set ylabel 'simulated, predicted (%s)'\n",
                  fp.u.name, fp.u.name);
    gp_accuracy_axes(b, fig_min_positive(v), fp.max_s, fp.u);
    strbuf_printf(b, "    plot x with lines dashtype 2 linecolor rgb 'gray40' title 'y = x', \\\n"
                     "         '%s.dat' using 2:3 with points pointtype 7 pointsize 1.3 title "
                     "'simulated', \\\n"
                     "         '' using 2:4 with points pointtype 6 pointsize 1.3 title "
                     "'predicted (cost model)', \\\n"
                     "         '' using 2:3:1 with labels left offset char 1,0.6 notitle\n",
                  fp.f->name);
    gp_end(fp.f, false);
    return LLMSIM_OK;
}

// ---- stage time per decode step

/* Stages drawn: the four of the offloading breakdown always, the
 * activation stages only where some run spent time in them. */
static int fig_stages_shown(const report_group *g, int shown[CM_NSTAGES])
{
    int n = 0;
    for (int k = 0; k < CM_NSTAGES; k++) {
        bool any = k <= CM_STAGE_COMPUTE;
        for (int p = 0; !any && p < g->npanels; p++)
            for (size_t i = 0; !any && i < g->panel[p]->nsteps; i++)
                any = isfinite(g->panel[p]->steps[i].s[k]) && g->panel[p]->steps[i].s[k] != 0;
        if (any)
            shown[n++] = k;
    }
    return n;
}

static int fig_int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The decode steps of every panel, ascending, each once; NULL on out of
 * memory (or when there are none: *n = 0). */
static int *fig_step_union(const report_run *const *panels, int np, size_t *n)
{
    size_t total = 0;
    for (int p = 0; p < np; p++)
        total += panels[p]->nsteps;
    int *steps = total ? malloc(total * sizeof *steps) : NULL;
    *n = 0;
    if (!steps)
        return NULL;
    for (int p = 0; p < np; p++)
        for (size_t i = 0; i < panels[p]->nsteps; i++)
            steps[(*n)++] = panels[p]->steps[i].step;
    qsort(steps, *n, sizeof *steps, fig_int_cmp);
    size_t u = 0;
    for (size_t i = 0; i < *n; i++)
        if (u == 0 || steps[u - 1] != steps[i])
            steps[u++] = steps[i];
    *n = u;
    return steps;
}

static const report_step *fig_step_find(const report_run *run, int step)
{
    const report_step key = {.step = step};
    return bsearch(&key, run->steps, run->nsteps, sizeof key, fig_int_cmp); /* step is first */
}

/* The table: step, then per panel the shown stages. */
static bool fig_stages_table(report_table *t, const report_run *const *panels, int np,
                             const int *shown, int ns, fig_unit u, double *max)
{
    size_t nsteps = 0;
    int *steps = fig_step_union(panels, np, &nsteps);
    bool ok = steps && fig_head(t, "decode step");
    for (int p = 0; ok && p < np; p++)
        for (int k = 0; ok && k < ns; k++)
            ok = fig_head(t, "%s %s (%s)", fig_kind_label(panels[p]->row.kind),
                          cm_stage_names[shown[k]], u.name);
    for (size_t i = 0; ok && i < nsteps; i++) {
        report_row *row = fig_row(t, NULL, 0);
        if (!(ok = row != NULL))
            break;
        row->v[0] = steps[i];
        for (int p = 0; p < np; p++) {
            const report_step *st = fig_step_find(panels[p], steps[i]);
            for (int k = 0; st && k < ns; k++) {
                row->v[1 + p * ns + k] = st->s[shown[k]] / u.per;
                *max = fig_max(*max, row->v[1 + p * ns + k]);
            }
        }
    }
    free(steps);
    return ok;
}

/* x axis of a step plot: one tick per step while they are few. */
static void gp_step_axis(strbuf *b, const report_table *t)
{
    double lo = t->rows[0].v[0], hi = t->rows[t->nrows - 1].v[0];
    if (lo == hi) {
        lo -= 1;
        hi += 1;
    }
    strbuf_printf(b, "    set xrange [%.9g:%.9g]\n    set xtics %s\n", lo, hi,
                  t->nrows <= FIG_MAX_INT_TICKS ? "1" : "autofreq");
}

static bool fig_has_steps(const report_run *run) { return run->nsteps > 0; }

static llmsim_status fig_stages(report *r, const report_group *g, size_t gi, diag *e)
{
    const report_run *panels[REPORT_MAX_PANELS];
    int np = fig_panels_with(g, fig_has_steps, NULL, NULL, panels);
    double max_s = 0;
    for (int p = 0; p < np; p++)
        for (size_t i = 0; i < panels[p]->nsteps; i++)
            for (int k = 0; k < CM_NSTAGES; k++)
                max_s = fig_max(max_s, panels[p]->steps[i].s[k]);
    if (np == 0)
        return LLMSIM_OK;
    int shown[CM_NSTAGES];
    int ns = fig_stages_shown(g, shown);
    fig_unit u = fig_time_unit(max_s);
    char title[400];
    snprintf(title, sizeof title, "Stage time per decode step, %s", g->title);
    report_fig *f = fig_new(r, title, e, "stages_%zu", gi + 1);
    if (!f)
        return e->status;
    double max = 0;
    if (!fig_stages_table(&f->table, panels, np, shown, ns, u, &max))
        return fig_oom(e);
    strbuf *b = gp_multiplot(f, "time of each stage per decode step, one panel per run", np, title);
    strbuf_printf(b, "    set yrange [0:%.9g]\n"
                     "    set xlabel 'decode step'\n    set ylabel 'time per step (%s)'\n",
                  fig_axis_top(max), u.name);
    gp_step_axis(b, &f->table);
    for (int p = 0; p < np; p++) {
        char pt[128];
        fig_panel_title(panels[p], pt, sizeof pt);
        gp_set(b, "set title", pt);
        for (int k = 0; k < ns; k++) {
            gp_plot_clause(b, f, k == 0);
            strbuf_printf(b, " using 1:%d with linespoints linetype %d title '%s'%s\n",
                          2 + p * ns + k, shown[k] + 1, cm_stage_names[shown[k]],
                          k + 1 < ns ? ", \\" : "");
        }
    }
    gp_end(f, true);
    return LLMSIM_OK;
}

// ---- memory per tier over time

static const char *const fig_tiers[] = {"gpu", "cpu", "disk"};
enum { FIG_NTIERS = 3 };

static bool fig_has_tier(const report_run *run, const char *name)
{
    for (size_t i = 0; i < run->nmem; i++)
        if (strcmp(run->mem[i].tier, name) == 0)
            return true;
    return false;
}

/* Rows of one (run, tier) block. */
static bool fig_memory_block(report_table *t, const report_run *run, int ti, int block,
                             fig_unit tu, fig_unit bu)
{
    char label[64];
    snprintf(label, sizeof label, "%s %s", fig_kind_label(run->row.kind), fig_tiers[ti]);
    for (size_t i = 0; i < run->nmem; i++) {
        if (strcmp(run->mem[i].tier, fig_tiers[ti]) != 0)
            continue;
        report_row *row = fig_row(t, label, block);
        if (!row)
            return false;
        row->v[0] = run->mem[i].time_s / tu.per;
        row->v[1] = run->mem[i].bytes / bu.per;
    }
    return true;
}

/* One panel's plot command: a `with steps` line per tier it has. */
static void gp_memory_panel(strbuf *b, const report_fig *f, const report_run *run, int *block)
{
    char pt[128];
    fig_panel_title(run, pt, sizeof pt);
    gp_set(b, "set title", pt);
    int n = 0;
    for (int k = 0; k < FIG_NTIERS; k++)
        if (fig_has_tier(run, fig_tiers[k]))
            n++;
    for (int k = 0, i = 0; k < FIG_NTIERS; k++) {
        if (!fig_has_tier(run, fig_tiers[k]))
            continue;
        gp_plot_clause(b, f, i == 0);
        strbuf_printf(b, " index %d using 2:3 with steps linewidth 2 linetype %d title '%s'%s\n",
                      (*block)++, k + 1, fig_tiers[k], i + 1 < n ? ", \\" : "");
        i++;
    }
}

static bool fig_has_memory(const report_run *run)
{
    bool any = false;
    for (int k = 0; k < FIG_NTIERS; k++)
        any = any || fig_has_tier(run, fig_tiers[k]);
    return any;
}

static llmsim_status fig_memory(report *r, const report_group *g, size_t gi, report_section *sec,
                                diag *e)
{
    const report_run *panels[REPORT_MAX_PANELS];
    int np = fig_panels_with(g, fig_has_memory, sec, "no memory timeline recorded", panels);
    double max_t = 0, max_b = 0;
    for (int p = 0; p < np; p++)
        for (size_t i = 0; i < panels[p]->nmem; i++) {
            max_t = fig_max(max_t, panels[p]->mem[i].time_s);
            max_b = fig_max(max_b, panels[p]->mem[i].bytes);
        }
    if (np == 0)
        return LLMSIM_OK;
    fig_unit tu = fig_time_unit(max_t), bu = fig_bytes_unit(max_b);
    char title[400];
    snprintf(title, sizeof title, "Memory per tier over time, %s", g->title);
    report_fig *f = fig_new(r, title, e, "memory_%zu", gi + 1);
    if (!f)
        return e->status;
    report_table *t = &f->table;
    bool ok = (t->label_head = report_strdup("series")) && fig_head(t, "time (%s)", tu.name) &&
              fig_head(t, "occupancy (%s)", bu.name);
    int block = 0;
    for (int p = 0; ok && p < np; p++)
        for (int k = 0; ok && k < FIG_NTIERS; k++)
            if (fig_has_tier(panels[p], fig_tiers[k]))
                ok = fig_memory_block(t, panels[p], k, block++, tu, bu);
    if (!ok)
        return fig_oom(e);
    strbuf *b = gp_multiplot(f, "occupancy of each memory tier over time, one panel per run", np,
                             title);
    strbuf_printf(b, "    set yrange [0:%.9g]\n"
                     "    set autoscale xfix\n    set xlabel 'time (%s)'\n"
                     "    set ylabel 'occupancy (%s)'\n",
                  fig_axis_top(max_b / bu.per), tu.name, bu.name);
    block = 0;
    for (int p = 0; p < np; p++)
        gp_memory_panel(b, f, panels[p], &block);
    gp_end(f, true);
    return LLMSIM_OK;
}

// ---- serving: latency CDFs

/* A latency of one request in seconds; NaN where it has none. */
typedef double (*fig_latency_of)(const store_serve_request *q);

static double fig_ttft(const store_serve_request *q) { return q->first_token_s - q->arrival_s; }

/* Over the tokens after the first: requests with 2 or more output tokens. */
static double fig_tpot(const store_serve_request *q)
{
    return q->output_tokens >= 2
               ? (q->finish_s - q->first_token_s) / (double)(q->output_tokens - 1)
               : NAN;
}

static double fig_e2e(const store_serve_request *q) { return q->finish_s - q->arrival_s; }

typedef struct fig_latency {
    const char *name;  /* file stem */
    const char *label; /* axis and column heading */
    const char *about; /* for the script's head */
    const char *none;  /* why a run has no curve */
    fig_latency_of of;
} fig_latency;

static const fig_latency fig_latencies[] = {
    {"ttft", "TTFT", "time to first token (first token - arrival)", "no request has a first token",
     fig_ttft},
    {"tpot", "TPOT", "time per output token after the first, requests with 2 or more output "
     "tokens", "no request has 2 or more output tokens", fig_tpot},
    {"e2e", "E2E latency", "end-to-end latency (finish - arrival)",
     "no request finished", fig_e2e},
};

typedef struct fig_lat_point {
    double s;    /* the latency, seconds */
    int64_t req; /* the request, from 1 */
} fig_lat_point;

static int fig_lat_cmp(const void *a, const void *b)
{
    const fig_lat_point *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    return (x->req > y->req) - (x->req < y->req);
}

/* The latencies of a run's requests that have one, ascending; false on out
 * of memory. */
static bool fig_lat_sorted(const report_run *run, fig_latency_of of, fig_lat_point **out,
                           size_t *n)
{
    *n = 0;
    *out = run->nreqs ? malloc(run->nreqs * sizeof **out) : NULL;
    if (run->nreqs && !*out)
        return false;
    for (size_t i = 0; i < run->nreqs; i++) {
        double s = of(&run->reqs[i]);
        if (isfinite(s))
            (*out)[(*n)++] = (fig_lat_point){s, run->reqs[i].req};
    }
    if (*n)
        qsort(*out, *n, sizeof **out, fig_lat_cmp);
    return true;
}

/* The curves of one CDF: per run its latencies, ascending. */
typedef struct fig_curves {
    const report_run *const *panels;
    int np;
    fig_lat_point *pts[REPORT_MAX_PANELS];
    size_t npts[REPORT_MAX_PANELS];
    double min, max; /* seconds, over every run */
} fig_curves;

/* The table of a CDF: per run with requests one block, a row per request in
 * latency order with the fraction of the run's requests at or below it. */
static bool fig_cdf_rows(report_table *t, const fig_curves *c, fig_unit u)
{
    for (int p = 0, block = 0; p < c->np; p++) {
        char pt[128];
        fig_panel_title(c->panels[p], pt, sizeof pt);
        for (size_t i = 0; i < c->npts[p]; i++) {
            report_row *row = fig_row(t, pt, block);
            if (!row)
                return false;
            row->v[0] = c->pts[p][i].s / u.per;
            row->v[1] = (double)(i + 1) / (double)c->npts[p];
            row->v[2] = (double)c->pts[p][i].req;
        }
        block += c->npts[p] > 0;
    }
    return true;
}

/* The script of a CDF: every run's curve in one plot. */
static void gp_cdf(report_fig *f, const fig_latency *lat, const fig_curves *c, fig_unit u)
{
    strbuf *b = &f->gp;
    gp_begin(f, lat->about, 700, 480);
    gp_set(b, "set title", f->title);
    strbuf_printf(b, "    set grid\n    set key below\n    set yrange [0:1.05]\n"
                     "    set xlabel '%s (%s)'\n    set ylabel 'fraction of requests'\n",
                  lat->label, u.name);
    if (fig_log_span(c->min, c->max))
        strbuf_puts(b, "    set logscale x\n");
    else
        strbuf_printf(b, "    set xrange [0:%.9g]\n", fig_axis_top(c->max / u.per));
    int ncurves = 0, block = 0;
    for (int p = 0; p < c->np; p++)
        ncurves += c->npts[p] > 0;
    for (int p = 0; p < c->np; p++) {
        if (c->npts[p] == 0)
            continue;
        char pt[128];
        fig_panel_title(c->panels[p], pt, sizeof pt);
        gp_plot_clause(b, f, block == 0);
        strbuf_printf(b, " index %d using 2:3 with steps linewidth 2 linetype %d title ", block,
                      p + 1);
        gp_str(b, pt);
        strbuf_puts(b, ++block < ncurves ? ", \\\n" : "\n");
    }
    gp_end(f, false);
}

/* The figure of a CDF whose curves are read. */
static llmsim_status fig_cdf_draw(report *r, const report_group *g, size_t gi,
                                  const fig_latency *lat, const fig_curves *c, diag *e)
{
    fig_unit u = fig_time_unit(c->max);
    char title[400];
    snprintf(title, sizeof title, "%s CDF, %s", lat->label, g->title);
    report_fig *f = fig_new(r, title, e, "%s_%zu", lat->name, gi + 1);
    if (!f)
        return e->status;
    report_table *t = &f->table;
    if (!(t->label_head = report_strdup("series")) || !fig_head(t, "%s (%s)", lat->label, u.name) ||
        !fig_head(t, "fraction of requests") || !fig_head(t, "request") ||
        !fig_cdf_rows(t, c, u))
        return fig_oom(e);
    gp_cdf(f, lat, c, u);
    return LLMSIM_OK;
}

/* The CDF of one latency, over the requests of the runs that have them; a
 * run without one is a note. */
static llmsim_status fig_cdf(report *r, const report_group *g, size_t gi, const fig_latency *lat,
                             const report_run *const *panels, int np, report_section *sec,
                             diag *e)
{
    fig_curves c = {.panels = panels, .np = np, .min = INFINITY};
    llmsim_status st = LLMSIM_OK;
    for (int p = 0; p < np && st == LLMSIM_OK; p++) {
        if (!fig_lat_sorted(panels[p], lat->of, &c.pts[p], &c.npts[p]))
            st = fig_oom(e);
        else if (c.npts[p] == 0)
            fig_panel_note(sec, panels[p], lat->none);
        else {
            c.min = fmin(c.min, c.pts[p][0].s);
            c.max = fig_max(c.max, c.pts[p][c.npts[p] - 1].s);
        }
    }
    if (st == LLMSIM_OK && isfinite(c.min))
        st = fig_cdf_draw(r, g, gi, lat, &c, e);
    for (int p = 0; p < np; p++)
        free(c.pts[p]);
    return st;
}

// ---- serving: KV blocks and preemptions over time

static bool fig_has_requests(const report_run *run) { return run->nreqs > 0; }
static bool fig_has_iters(const report_run *run) { return run->niters > 0; }
static bool fig_has_serving(const report_run *run) { return run->niters > 0 || run->nreqs > 0; }

static bool fig_has_preempt(const report_run *run)
{
    for (size_t i = 0; i < run->niters; i++)
        if (run->iters[i].preempt_swap > 0 || run->iters[i].preempt_recompute > 0)
            return true;
    return false;
}

/* The end of the last iteration of any run, seconds. */
static double fig_iters_end(const report_run *const *panels, int np)
{
    double end = 0;
    for (int p = 0; p < np; p++)
        for (size_t i = 0; i < panels[p]->niters; i++)
            end = fig_max(end, panels[p]->iters[i].end_s);
    return end;
}

/* The time axis the panels share: a run that ends sooner shows so. */
static void gp_time_axis(strbuf *b, double end_s, fig_unit u)
{
    strbuf_printf(b, "    set xrange [0:%.9g]\n    set xlabel 'time (%s)'\n",
                  fig_axis_top(end_s / u.per), u.name);
}

/* The rows of one run: an iteration each, with the blocks held. */
static bool fig_kv_block(report_table *t, const report_run *run, int block, fig_unit u)
{
    char pt[128];
    fig_panel_title(run, pt, sizeof pt);
    for (size_t i = 0; i < run->niters; i++) {
        report_row *row = fig_row(t, pt, block);
        if (!row)
            return false;
        row->v[0] = run->iters[i].start_s / u.per;
        row->v[1] = run->iters[i].end_s / u.per;
        row->v[2] = (double)run->iters[i].dev_blocks;
        row->v[3] = (double)run->iters[i].swap_blocks;
    }
    return true;
}

/* One panel of KV blocks, per place: steps from each iteration's start to
 * the next one's (blocks stay held between iterations) and a segment over
 * each iteration, which draws the last one to its end. */
static void gp_kv_panel(strbuf *b, const report_fig *f, const report_run *run, int block)
{
    static const char *const places[] = {"device", "swap"};
    char pt[128];
    fig_panel_title(run, pt, sizeof pt);
    gp_set(b, "set title", pt);
    for (int k = 0; k < 2; k++) {
        gp_plot_clause(b, f, k == 0);
        strbuf_printf(b, " index %d using 2:%d with steps linewidth 2 linetype %d title '%s', \\\n"
                         "         '' index %d using 2:%d:($3-$2):(0) with vectors nohead "
                         "linewidth 2 linetype %d notitle%s\n",
                      block, 4 + k, k + 1, places[k], block, 4 + k, k + 1, k ? "" : ", \\");
    }
}

static llmsim_status fig_kv(report *r, const report_group *g, size_t gi,
                            const report_run *const *panels, int np, diag *e)
{
    double end_s = fig_iters_end(panels, np), max_blocks = 0;
    for (int p = 0; p < np; p++)
        for (size_t i = 0; i < panels[p]->niters; i++)
            max_blocks = fig_max(fig_max(max_blocks, (double)panels[p]->iters[i].dev_blocks),
                                 (double)panels[p]->iters[i].swap_blocks);
    fig_unit u = fig_time_unit(end_s);
    char title[400];
    snprintf(title, sizeof title, "KV blocks in use over time, %s", g->title);
    report_fig *f = fig_new(r, title, e, "kv_%zu", gi + 1);
    if (!f)
        return e->status;
    report_table *t = &f->table;
    bool ok = (t->label_head = report_strdup("series")) && fig_head(t, "start (%s)", u.name) &&
              fig_head(t, "end (%s)", u.name) && fig_head(t, "device blocks") &&
              fig_head(t, "swap blocks");
    for (int p = 0; ok && p < np; p++)
        ok = fig_kv_block(t, panels[p], p, u);
    if (!ok)
        return fig_oom(e);
    strbuf *b = gp_multiplot(f, "KV cache blocks held on the device and in swap space per "
                             "iteration, one panel per run", np, title);
    strbuf_printf(b, "    set yrange [0:%.9g]\n    set ylabel 'KV blocks in use'\n",
                  fig_axis_top(max_blocks));
    gp_time_axis(b, end_s, u);
    for (int p = 0; p < np; p++)
        gp_kv_panel(b, f, panels[p], p);
    gp_end(f, true);
    return LLMSIM_OK;
}

/* The rows of one run: an iteration that preempted each, at its start. */
static bool fig_preempt_block(report_table *t, const report_run *run, int block, fig_unit u)
{
    char pt[128];
    fig_panel_title(run, pt, sizeof pt);
    for (size_t i = 0; i < run->niters; i++) {
        const serve_iter_row *it = &run->iters[i];
        if (it->preempt_swap <= 0 && it->preempt_recompute <= 0)
            continue;
        report_row *row = fig_row(t, pt, block);
        if (!row)
            return false;
        row->v[0] = it->start_s / u.per;
        row->v[1] = it->preempt_swap;
        row->v[2] = it->preempt_recompute;
    }
    return true;
}

/* One panel of preemptions: per kind an impulse with a point at each
 * iteration that has some; a run without any says so (with the same key,
 * so that the panels line up). */
static void gp_preempt_panel(strbuf *b, const report_fig *f, const report_run *run, int *block)
{
    static const char *const kinds[] = {"swap", "recompute"};
    char pt[128];
    fig_panel_title(run, pt, sizeof pt);
    gp_set(b, "set title", pt);
    if (!fig_has_preempt(run)) {
        strbuf_puts(b, "    set label 1 'no preemptions' at graph 0.5,0.5 center\n");
        for (int k = 0; k < 2; k++)
            strbuf_printf(b, "    %s NaN with impulses linewidth 3 linetype %d title '%s'%s\n",
                          k ? "    " : "plot", k + 1, kinds[k], k ? "" : ", \\");
        strbuf_puts(b, "    unset label 1\n");
        return;
    }
    for (int k = 0; k < 2; k++) {
        gp_plot_clause(b, f, k == 0);
        strbuf_printf(b, " index %d using 2:($%d > 0 ? $%d : 1/0) with impulses linewidth 3 "
                         "linetype %d title '%s', \\\n"
                         "         '' index %d using 2:($%d > 0 ? $%d : 1/0) with points "
                         "pointtype 7 linetype %d notitle%s\n",
                      *block, 3 + k, 3 + k, k + 1, kinds[k], *block, 3 + k, 3 + k, k + 1,
                      k ? "" : ", \\");
    }
    (*block)++;
}

static llmsim_status fig_preempt(report *r, const report_group *g, size_t gi,
                                 const report_run *const *panels, int np, report_section *sec,
                                 diag *e)
{
    int nwith = 0;
    double max_n = 1;
    for (int p = 0; p < np; p++) {
        if (fig_has_preempt(panels[p]))
            nwith++;
        else
            fig_panel_note(sec, panels[p], "no preemptions");
        for (size_t i = 0; i < panels[p]->niters; i++)
            max_n = fig_max(fig_max(max_n, panels[p]->iters[i].preempt_swap),
                            panels[p]->iters[i].preempt_recompute);
    }
    if (nwith == 0)
        return LLMSIM_OK;
    double end_s = fig_iters_end(panels, np);
    fig_unit u = fig_time_unit(end_s);
    char title[400];
    snprintf(title, sizeof title, "Preemptions over time, %s", g->title);
    report_fig *f = fig_new(r, title, e, "preempt_%zu", gi + 1);
    if (!f)
        return e->status;
    report_table *t = &f->table;
    bool ok = (t->label_head = report_strdup("series")) && fig_head(t, "time (%s)", u.name) &&
              fig_head(t, "swap preemptions") && fig_head(t, "recompute preemptions");
    for (int p = 0, block = 0; ok && p < np; p++)
        if (fig_has_preempt(panels[p]))
            ok = fig_preempt_block(t, panels[p], block++, u);
    if (!ok)
        return fig_oom(e);
    strbuf *b = gp_multiplot(f, "iterations that preempted requests, by kind, at their start; "
                             "one panel per run", np, title);
    strbuf_printf(b, "    set yrange [0:%.9g]\n    set ytics %s\n"
                     "    set ylabel 'requests preempted'\n",
                  fig_axis_top(max_n), max_n <= FIG_MAX_INT_TICKS ? "1" : "autofreq");
    gp_time_axis(b, end_s, u);
    for (int p = 0, block = 0; p < np; p++)
        gp_preempt_panel(b, f, panels[p], &block);
    gp_end(f, true);
    return LLMSIM_OK;
}

/* The figures of a group with serving runs: the latency CDFs over the runs
 * with requests, the KV blocks and preemptions over those with iterations. */
static llmsim_status fig_serving(report *r, const report_group *g, size_t gi,
                                 report_section *sec, diag *e)
{
    const report_run *panels[REPORT_MAX_PANELS];
    int np = fig_panels_with(g, fig_has_requests, sec, "no serving requests recorded", panels);
    llmsim_status st = LLMSIM_OK;
    for (size_t k = 0; np > 0 && k < sizeof fig_latencies / sizeof fig_latencies[0] && !st; k++)
        st = fig_cdf(r, g, gi, &fig_latencies[k], panels, np, sec, e);
    np = fig_panels_with(g, fig_has_iters, sec, "no serving iterations recorded", panels);
    if (st == LLMSIM_OK && np > 0)
        st = fig_kv(r, g, gi, panels, np, e);
    if (st == LLMSIM_OK && np > 0)
        st = fig_preempt(r, g, gi, panels, np, sec, e);
    return st;
}

// ---- sections

static void section_notes(report_section *s, char *const *notes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        strbuf_printf(&s->text, "%s\n", notes[i]);
}

/* What the groups of a validate run are: its policies, or its preemption
 * modes (serving). */
static const char *section_entry_word(const report *r, const report_group *g)
{
    for (size_t i = 0; i < r->nvals; i++)
        if (r->vals[i].id == g->validate_id && r->vals[i].serving)
            return "preemption mode";
    return "policy";
}

static llmsim_status section_group(report *r, size_t gi, diag *e)
{
    const report_group *g = &r->groups[gi];
    report_section *s = section_new(r, g->title, e);
    if (!s)
        return e->status;
    section_notes(s, g->notes, g->nnotes);
    if (g->npanels == 0)
        strbuf_printf(&s->text, "nothing to plot for this %s\n", section_entry_word(r, g));
    llmsim_status st = fig_stages(r, g, gi, e);
    s = &r->sections[r->nsections - 1]; /* fig_new does not move sections, but stay safe */
    const report_run *serving[REPORT_MAX_PANELS];
    if (st == LLMSIM_OK && fig_panels_with(g, fig_has_serving, NULL, NULL, serving) > 0)
        st = fig_serving(r, g, gi, s, e);
    if (st == LLMSIM_OK)
        st = fig_memory(r, g, gi, s, e);
    return st;
}

/* The lines of a serving validation: per preemption mode its throughput
 * predicted and measured, and the result's errors. */
static void section_modes(report_section *s, const report_validate *v)
{
    if (isfinite(v->requests))
        strbuf_printf(&s->text, "%.0f requests, served in each preemption mode as predicted "
                      "(llmsim serve-sim) and as measured (llmsim serve)\n", v->requests);
    strbuf_puts(&s->text, "errors in %: (predicted - measured) / measured x 100\n");
    for (size_t i = 0; i < v->nmodes; i++) {
        const report_mode *m = &v->modes[i];
        const char *sep = ":";
        strbuf_printf(&s->text, "preemption %s", m->name);
        if (isfinite(m->tput_pred) && isfinite(m->tput_meas)) {
            strbuf_printf(&s->text, ": throughput %.4g tok/s predicted, %.4g measured",
                          m->tput_pred, m->tput_meas);
            sep = ";";
        }
        if (m->nerr)
            strbuf_printf(&s->text, "%s errors (%%):", sep);
        for (size_t k = 0; k < m->nerr; k++)
            strbuf_printf(&s->text, "%s %s %+.1f", k ? "," : "", m->err_key[k], m->err_pct[k]);
        strbuf_puts(&s->text, "\n");
    }
}

static llmsim_status section_validate(report *r, const report_validate *v, diag *e)
{
    char what[256], heading[320];
    if (v->model && v->hw)
        snprintf(what, sizeof what, "%s on %s (validate run %lld)", v->model, v->hw,
                 (long long)v->id);
    else
        snprintf(what, sizeof what, "validate run %lld", (long long)v->id);
    snprintf(heading, sizeof heading, "%s: %s", v->serving ? "Serving validation" : "Validation",
             what);
    report_section *s = section_new(r, heading, e);
    if (!s)
        return e->status;
    if (v->serving) { /* its figures are its modes' groups */
        section_modes(s, v);
        section_notes(s, v->notes, v->nnotes);
        return LLMSIM_OK;
    }
    if (isfinite(v->mape))
        strbuf_printf(&s->text, "mean absolute percentage error of the simulation: %.2f %%\n",
                      v->mape);
    if (isfinite(v->mape_predicted))
        strbuf_printf(&s->text, "mean absolute percentage error of the cost model: %.2f %%\n",
                      v->mape_predicted);
    section_notes(s, v->notes, v->nnotes);
    llmsim_status st = fig_totals(r, v, what, e);
    if (st == LLMSIM_OK)
        st = fig_accuracy(r, v, what, e);
    return st;
}

llmsim_status report_figs_build(report *r, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    for (size_t i = 0; i < r->nvals && st == LLMSIM_OK; i++) {
        st = section_validate(r, &r->vals[i], e);
        for (size_t g = 0; g < r->ngroups && st == LLMSIM_OK; g++)
            if (r->groups[g].validate_id == r->vals[i].id)
                st = section_group(r, g, e);
    }
    for (size_t g = 0; g < r->ngroups && st == LLMSIM_OK; g++)
        if (r->groups[g].validate_id == 0)
            st = section_group(r, g, e);
    for (size_t i = 0; i < r->nsections && st == LLMSIM_OK; i++)
        if (r->sections[i].text.failed || r->sections[i].tail.failed)
            st = fig_oom(e);
    for (size_t i = 0; i < r->nfigs && st == LLMSIM_OK; i++)
        if (r->figs[i].gp.failed)
            st = fig_oom(e);
    return st;
}
