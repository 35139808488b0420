/*
 * report_html — index.html of `llmsim report`: one self-contained page (its
 * style inline, no scripts) that shows each figure as its SVG, links the
 * PNG, the data and the gnuplot script by relative paths, and lists the
 * numbers drawn. Every string from the store goes through html_esc: model
 * names, policy names and commands are the user's text.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report/report.h"

#define HTML_MAX_ROWS  300 /* a table shows at most this many rows; the .dat has all */
#define HTML_OPEN_ROWS 24  /* tables up to this long are shown unfolded */

static const char html_style[] =
    "body{font-family:system-ui,sans-serif;color:#222;max-width:1280px;margin:2em auto;"
    "padding:0 1em}\n"
    "h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2.5em}\n"
    "table{border-collapse:collapse;font-size:90%;margin:.5em 0 1.5em}\n"
    "th,td{border:1px solid #ccc;padding:.15em .6em;text-align:right}\n"
    "th{background:#f3f3f3}\n"
    "td.l,th.l{text-align:left}\n"
    "img{max-width:100%;height:auto;border:1px solid #eee}\n"
    "figure{margin:1.5em 0 .5em}\n"
    "figcaption{margin-top:.3em}\n"
    ".note{color:#555;margin:.2em 0}\n"
    "summary{cursor:pointer;color:#555}\n";

/* Text into HTML: the five characters that can end a text or an attribute. */
static void html_esc(strbuf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': strbuf_puts(b, "&amp;"); break;
        case '<': strbuf_puts(b, "&lt;"); break;
        case '>': strbuf_puts(b, "&gt;"); break;
        case '"': strbuf_puts(b, "&quot;"); break;
        case '\'': strbuf_puts(b, "&#39;"); break;
        default: strbuf_printf(b, "%c", *s); break;
        }
    }
}

static void html_num(strbuf *b, double v, int digits)
{
    if (isfinite(v))
        strbuf_printf(b, "<td>%.*g</td>", digits, v);
    else
        strbuf_puts(b, "<td>-</td>");
}

static void html_cell(strbuf *b, const char *text, bool left)
{
    strbuf_puts(b, left ? "<td class=\"l\">" : "<td>");
    html_esc(b, text ? text : "-");
    strbuf_puts(b, "</td>");
}

static void html_head_cell(strbuf *b, const char *text, bool left)
{
    strbuf_puts(b, left ? "<th class=\"l\">" : "<th>");
    html_esc(b, text);
    strbuf_puts(b, "</th>");
}

/* Lines of plain text as notes. */
static void html_notes(strbuf *b, const strbuf *text)
{
    const char *s = strbuf_str(text);
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)n, s);
        strbuf_puts(b, "<p class=\"note\">");
        html_esc(b, line);
        strbuf_puts(b, "</p>\n");
        s += n + (nl != NULL);
    }
}

// ---- the runs read

static void html_runs(strbuf *b, const report *r)
{
    static const char *const head[] = {"run", "kind", "status", "model", "hardware",
                                       "total (s)", "throughput (tok/s)", "started", "command"};
    strbuf_puts(b, "<h2>Runs</h2>\n<table>\n<tr>");
    for (size_t c = 0; c < sizeof head / sizeof head[0]; c++)
        html_head_cell(b, head[c], c != 0 && c != 5 && c != 6);
    strbuf_puts(b, "</tr>\n");
    /* in id order, without sorting the report's list: the runs are few */
    int64_t last = 0;
    for (size_t n = 0; n < r->nruns; n++) {
        const store_run_row *w = NULL;
        for (size_t i = 0; i < r->nruns; i++)
            if (r->runs[i]->row.id > last && (!w || r->runs[i]->row.id < w->id))
                w = &r->runs[i]->row;
        last = w->id;
        strbuf_printf(b, "<tr><td>%" PRId64 "</td>", w->id);
        html_cell(b, w->kind, true);
        html_cell(b, w->status, true);
        html_cell(b, w->model_name, true);
        html_cell(b, w->hw_name, true);
        html_num(b, w->total_s, 6);
        html_num(b, w->throughput_tok_s, 6);
        html_cell(b, w->started_at, true);
        html_cell(b, w->command, true);
        strbuf_puts(b, "</tr>\n");
    }
    strbuf_puts(b, "</table>\n");
}

// ---- a figure and its numbers

static void html_table(strbuf *b, const report_fig *f)
{
    const report_table *t = &f->table;
    strbuf_printf(b, "<details%s><summary>numbers plotted (%zu row%s)</summary>\n<table>\n<tr>",
                  t->nrows <= HTML_OPEN_ROWS ? " open" : "", t->nrows, t->nrows == 1 ? "" : "s");
    if (t->label_head)
        html_head_cell(b, t->label_head, true);
    for (int c = 0; c < t->ncols; c++)
        html_head_cell(b, t->head[c], false);
    strbuf_puts(b, "</tr>\n");
    size_t shown = t->nrows < HTML_MAX_ROWS ? t->nrows : HTML_MAX_ROWS;
    for (size_t i = 0; i < shown; i++) {
        strbuf_puts(b, "<tr>");
        if (t->label_head)
            html_cell(b, t->rows[i].label, true);
        for (int c = 0; c < t->ncols; c++)
            html_num(b, t->rows[i].v[c], 6);
        strbuf_puts(b, "</tr>\n");
    }
    strbuf_puts(b, "</table>\n");
    if (shown < t->nrows)
        strbuf_printf(b, "<p class=\"note\">the first %zu of %zu rows; all of them are in "
                         "<a href=\"%s.dat\">%s.dat</a></p>\n", shown, t->nrows, f->name, f->name);
    strbuf_puts(b, "</details>\n");
}

static void html_fig(strbuf *b, const report_fig *f)
{
    /* f->name is ours ([a-z_0-9]); escaped all the same */
    strbuf_puts(b, "<figure id=\"");
    html_esc(b, f->name);
    strbuf_puts(b, "\">\n<img src=\"");
    html_esc(b, f->name);
    strbuf_puts(b, ".svg\" alt=\"");
    html_esc(b, f->title);
    strbuf_puts(b, "\">\n<figcaption>");
    html_esc(b, f->title);
    static const char *const links[][2] = {
        {"png", "PNG"}, {"svg", "SVG"}, {"dat", "data"}, {"gp", "gnuplot script"}};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        strbuf_puts(b, i ? " &middot; <a href=\"" : " &mdash; <a href=\"");
        html_esc(b, f->name);
        strbuf_printf(b, ".%s\">%s</a>", links[i][0], links[i][1]);
    }
    strbuf_puts(b, "</figcaption>\n</figure>\n");
    html_table(b, f);
}

void report_html(const report *r, strbuf *b)
{
    strbuf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                   "<title>llmsim report</title>\n<style>\n");
    strbuf_puts(b, html_style);
    strbuf_puts(b, "</style>\n</head>\n<body>\n<h1>llmsim report</h1>\n<p>Written by llmsim "
                   LLMSIM_VERSION " from the store <code>");
    html_esc(b, r->db);
    strbuf_printf(b, "</code>: %zu run%s, %zu plot%s. Each plot links its PNG, its data and "
                     "the gnuplot script that draws it; run <code>gnuplot NAME.gp</code> in this "
                     "directory to draw it again.</p>\n",
                  r->nruns, r->nruns == 1 ? "" : "s", r->nfigs, r->nfigs == 1 ? "" : "s");
    html_runs(b, r);
    for (size_t i = 0; i < r->nsections; i++) {
        const report_section *s = &r->sections[i];
        strbuf_puts(b, "<h2>");
        html_esc(b, s->heading);
        strbuf_puts(b, "</h2>\n");
        html_notes(b, &s->text);
        for (size_t k = 0; k < s->nfigs; k++)
            html_fig(b, &r->figs[s->first_fig + k]);
        html_notes(b, &s->tail);
    }
    strbuf_puts(b, "</body>\n</html>\n");
}
