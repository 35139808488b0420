/*
 * report — the base of `llmsim report`: releasing a report and the small
 * helpers every other file of report/ shares (growing an array, strdup,
 * warnings on stderr). It calls no other file of report/; report_load.c,
 * report_fig.c and report_out.c call it.
 *
 * Ownership: report_free releases everything a report holds (report.h);
 * report_run_free one run read from the store.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/grow.h"
#include "report/report.h"

// ---- shared helpers (declared in report.h)

bool report_grow(void **arr, size_t *cap, size_t n, size_t size)
{
    size_t old_cap = *cap;
    char *p = llmsim_grow(*arr, n, cap, size, 8);
    if (!p)
        return false;
    memset(p + old_cap * size, 0, (*cap - old_cap) * size);
    *arr = p;
    return true;
}

void *report_push(void **arr, size_t n, size_t size)
{
    char *p = realloc(*arr, (n + 1) * size);
    if (!p)
        return NULL;
    *arr = p;
    memset(p + n * size, 0, size);
    return p + n * size;
}

char *report_strdup(const char *s) { return s ? strdup(s) : NULL; }

void report_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("llmsim report: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

// ---- releasing a report

static void report_strs_free(char **notes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(notes[i]);
    free(notes);
}

void report_run_free(report_run *run)
{
    if (!run)
        return;
    store_row_clear(&run->row);
    free(run->steps);
    free(run->mem);
    free(run->iters);
    free(run->reqs);
    free(run);
}

void report_free(report *r)
{
    for (size_t i = 0; i < r->nruns; i++)
        report_run_free(r->runs[i]);
    free(r->runs);
    for (size_t i = 0; i < r->nvals; i++) {
        report_validate *v = &r->vals[i];
        for (size_t k = 0; k < v->npol; k++)
            free(v->pol[k].name);
        free(v->pol);
        for (size_t k = 0; k < v->nmodes; k++) {
            free(v->modes[k].name);
            report_strs_free(v->modes[k].err_key, v->modes[k].nerr);
            free(v->modes[k].err_pct);
        }
        free(v->modes);
        free(v->model);
        free(v->hw);
        report_strs_free(v->notes, v->nnotes);
    }
    free(r->vals);
    for (size_t i = 0; i < r->ngroups; i++) {
        free(r->groups[i].title);
        report_strs_free(r->groups[i].notes, r->groups[i].nnotes);
    }
    free(r->groups);
    for (size_t i = 0; i < r->nfigs; i++) {
        report_fig *f = &r->figs[i];
        free(f->title);
        strbuf_free(&f->gp);
        free(f->table.label_head);
        for (int c = 0; c < f->table.ncols; c++)
            free(f->table.head[c]);
        for (size_t k = 0; k < f->table.nrows; k++)
            free(f->table.rows[k].label);
        free(f->table.rows);
    }
    free(r->figs);
    for (size_t i = 0; i < r->nsections; i++) {
        free(r->sections[i].heading);
        strbuf_free(&r->sections[i].text);
        strbuf_free(&r->sections[i].tail);
    }
    free(r->sections);
    memset(r, 0, sizeof *r);
}
