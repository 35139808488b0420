/* requests — see requests.h. */
#include "workload/requests.h"

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/grow.h"
#include "common/rng.h"

/* Lengths above 2^31 tokens are typos, not workloads; the bound also keeps
 * every length exact in a double and far from int64 overflow. */
#define LEN_MAX          2147483648.0
#define HIST_MAX_BINS    1024
#define GEN_MAX_REQUESTS 100000000LL
/* Normal samples below the minimum are redrawn; with the mean at or above the
 * minimum each draw succeeds with probability >= 1/2, so the bound only
 * guarantees termination. */
#define NORMAL_TRIES 1000

#define TRACE_HEADER "arrival_s,prompt_len,output_len,weight"
#define TRACE_PREFIX ",prefix_group,prefix_len"
#define TRACE_COLS   6
#define DIST_SYNTAX                                                                                \
    "N, uniform:A,B, normal:MEAN,SD or hist:BIN=W,... (BIN a value V or a range LO-HI, W its "     \
    "relative frequency; e.g. hist:1-64=0.5,64-512=0.4,2048=0.1)"

const char *const serve_arrival_names[2] = {"poisson", "gamma"};

void serve_requests_free(serve_requests *q)
{
    if (!q)
        return;
    free(q->r);
    free(q->source);
    q->r = NULL;
    q->source = NULL;
    q->n = 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_space((*s)[*n - 1]))
        (*n)--;
}

/* A plain decimal number spanning exactly s[0..n). strtod alone would also
 * take hex, "inf" and "nan" and stop quietly at the first bad character, so
 * only decimal characters are let through, and all of them must be consumed. */
static bool parse_number(const char *s, size_t n, double *out)
{
    char buf[128];
    if (n == 0 || n >= sizeof buf)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == '+' || c == '-' || c == 'e' || c == 'E'))
            return false;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end = NULL;
    errno = 0;
    double v = strtod(buf, &end);
    /* overflow comes back as HUGE_VAL and fails isfinite; underflow to a tiny
     * or zero value is left to the range checks of the caller */
    if (end != buf + n || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* The item of s[0..n) from *start to the next comma (or to n), trimmed, into
 * p[0..*pn); *start moves past that comma. Returns whether the item was the
 * last (it ended at n). */
static bool next_item(const char *s, size_t n, size_t *start, const char **p, size_t *pn)
{
    size_t end = *start;
    while (end < n && s[end] != ',')
        end++;
    *p = s + *start;
    *pn = end - *start;
    trim(p, pn);
    *start = end + 1;
    return end == n;
}

/* ---- trace files ---- */

typedef struct field {
    const char *s; /* trimmed */
    size_t n;
    size_t col; /* 1-based column of the trimmed text */
} field;

static const char *const trace_cols[TRACE_COLS] = {"arrival_s",  "prompt_len",   "output_len",
                                                   "weight",     "prefix_group", "prefix_len"};

/* Field texts in messages are cut, so one absurd field cannot crowd out the
 * advice after it. */
#define SHOWN(f) (int)((f).n > 40 ? 40 : (f).n), (f).s, ((f).n > 40 ? "..." : "")

/* Split line[0..n) at commas; fills up to TRACE_COLS fields and returns
 * the count. */
static size_t split_fields(const char *line, size_t n, field f[TRACE_COLS])
{
    size_t nf = 0, start = 0;
    for (bool last = false; !last; nf++) {
        field x;
        last = next_item(line, n, &start, &x.s, &x.n);
        x.col = (size_t)(x.s - line) + 1;
        if (nf < TRACE_COLS)
            f[nf] = x;
    }
    return nf;
}

#define HEADER_RULE                                                                                \
    "it must be exactly '" TRACE_HEADER "', or with shared prefixes '" TRACE_HEADER TRACE_PREFIX "'"

/* The header: 4 columns, or 6 with the shared prefixes. */
static llmsim_status check_header(const char *name, size_t lineno, const field f[TRACE_COLS],
                                  size_t nf, diag *e)
{
    double v;
    if (parse_number(f[0].s, f[0].n, &v))
        return diag_at(
            e, LLMSIM_EINPUT, name, lineno, 1,
            "this looks like a request, but the first line must be the header '" TRACE_HEADER
            "'; add the header above the requests");
    if (nf != 4 && nf != TRACE_COLS)
        return diag_at(e, LLMSIM_EINPUT, name, lineno, 1, "the header has %zu fields; " HEADER_RULE,
                       nf);
    for (size_t k = 0; k < nf; k++) {
        if (f[k].n != strlen(trace_cols[k]) || memcmp(f[k].s, trace_cols[k], f[k].n) != 0)
            return diag_at(e, LLMSIM_EINPUT, name, lineno, f[k].col,
                           "header field %zu is '%.*s%s' but must be '%s'; " HEADER_RULE, k + 1,
                           SHOWN(f[k]), trace_cols[k]);
    }
    return LLMSIM_OK;
}

static llmsim_status check_length(const char *name, size_t lineno, const field *f, int k, double v,
                                  diag *e)
{
    if (v < 1)
        return diag_at(e, LLMSIM_EINPUT, name, lineno, f->col,
                       "%s %.*s%s is below 1; a length counts tokens, at least one", trace_cols[k],
                       SHOWN(*f));
    if (v != floor(v))
        return diag_at(e, LLMSIM_EINPUT, name, lineno, f->col,
                       "%s %.*s%s is not a whole number; write a whole number of tokens",
                       trace_cols[k], SHOWN(*f));
    if (v > LEN_MAX)
        return diag_at(e, LLMSIM_EINPUT, name, lineno, f->col,
                       "%s %.*s%s is above 2^31 (2147483648) tokens; is it a typo?", trace_cols[k],
                       SHOWN(*f));
    return LLMSIM_OK;
}

/* What each column must hold, for the messages. */
static const char *const trace_hints[TRACE_COLS] = {
    "write the arrival time in seconds, a number >= 0",
    "write a whole number of tokens >= 1",
    "write a whole number of tokens >= 1",
    "write a number > 0",
    "write a whole number >= 0 (0: no shared prefix)",
    "write a whole number of tokens from 0 to prompt_len",
};

/* A trace being read: the requests so far and what the messages cite. */
typedef struct trace_reader {
    const char *name;   /* the file, in messages */
    size_t lineno;      /* of the line being read, 1-based */
    bool have_header;
    size_t header_line, ncols; /* the header's: 4, or 6 with shared prefixes */
    serve_request *r;   /* [n]; owned until handed to the caller */
    size_t n, cap;
    field prev_arrival; /* as written, for the ordering message */
    size_t prev_line;
} trace_reader;

/* The next line of text[0..len) from *pos, without its line end ("\n" or
 * "\r\n"), into line[0..*ll); false when the text is over. */
static bool next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *ll)
{
    if (*pos >= len)
        return false;
    *line = text + *pos;
    const char *nl = memchr(*line, '\n', len - *pos);
    *ll = nl ? (size_t)(nl - *line) : len - *pos;
    *pos += *ll + (nl ? 1 : 0);
    if (*ll > 0 && (*line)[*ll - 1] == '\r')
        (*ll)--;
    return true;
}

/* A line with nothing but spaces, or a '#' comment. */
static bool is_blank_or_comment(const char *line, size_t ll)
{
    size_t i = 0;
    while (i < ll && is_space(line[i]))
        i++;
    return i == ll || line[i] == '#';
}

/* The fields of a request as numbers: none empty, each a number. */
static llmsim_status trace_numbers(const trace_reader *T, const field f[TRACE_COLS],
                                   double v[TRACE_COLS], diag *e)
{
    for (size_t k = 0; k < T->ncols; k++) {
        if (f[k].n == 0)
            return diag_at(e, LLMSIM_EINPUT, T->name, T->lineno, f[k].col, "%s is empty; %s",
                           trace_cols[k], trace_hints[k]);
        if (!parse_number(f[k].s, f[k].n, &v[k]))
            return diag_at(e, LLMSIM_EINPUT, T->name, T->lineno, f[k].col,
                           "%s '%.*s%s' is not a number; %s", trace_cols[k], SHOWN(f[k]),
                           trace_hints[k]);
    }
    return LLMSIM_OK;
}

/* The arrival time *v of a request (field f): not negative, and not before
 * the previous request's. -0 becomes +0. */
static llmsim_status trace_arrival(const trace_reader *T, const field *f, double *v, diag *e)
{
    if (*v < 0)
        return diag_at(e, LLMSIM_EINPUT, T->name, T->lineno, f->col,
                       "arrival_s %.*s%s is negative; %s", SHOWN(*f), trace_hints[0]);
    *v += 0.0; /* -0 reads as +0, so the saved trace never prints "-0" */
    if (T->n > 0 && *v < T->r[T->n - 1].arrival_s)
        return diag_at(e, LLMSIM_EINPUT, T->name, T->lineno, f->col,
                       "arrival_s %.*s%s is before the previous request's %.*s%s (line %zu); "
                       "list the requests in non-decreasing order of arrival",
                       SHOWN(*f), SHOWN(T->prev_arrival), T->prev_line);
    return LLMSIM_OK;
}

/* A request's shared prefix (fields 4 and 5, numbers v[4], v[5]) against
 * its prompt length. */
static llmsim_status trace_prefix(const trace_reader *T, const field f[TRACE_COLS],
                                  const double v[TRACE_COLS], diag *e)
{
    if (v[4] < 0 || v[4] != floor(v[4]) || v[4] > (double)SERVE_PREFIX_GROUP_MAX)
        return diag_at(e, LLMSIM_EINPUT, T->name, T->lineno, f[4].col,
                       "prefix_group %.*s%s must be a whole number from 0 (none) to %lld",
                       SHOWN(f[4]), SERVE_PREFIX_GROUP_MAX);
    if (v[5] < 0 || v[5] != floor(v[5]) || v[5] > v[1])
        return diag_at(e, LLMSIM_EINPUT, T->name, T->lineno, f[5].col,
                       "prefix_len %.*s%s must be a whole number of tokens from 0 to the "
                       "prompt_len %.*s%s", SHOWN(f[5]), SHOWN(f[1]));
    if ((v[4] == 0) != (v[5] == 0))
        return diag_at(e, LLMSIM_EINPUT, T->name, T->lineno, f[4].col,
                       "prefix_group %.*s%s with prefix_len %.*s%s: a group shares at least one "
                       "token, and group 0 (no shared prefix) shares none", SHOWN(f[4]),
                       SHOWN(f[5]));
    return LLMSIM_OK;
}

/* One request line of nf fields: checked, and appended to T->r. */
static llmsim_status trace_request(trace_reader *T, const field f[TRACE_COLS], size_t nf, diag *e)
{
    if (nf != T->ncols)
        return diag_at(e, LLMSIM_EINPUT, T->name, T->lineno, 0,
                       "%zu fields where %zu are expected, as in the header (line %zu)", nf,
                       T->ncols, T->header_line);
    double v[TRACE_COLS] = {0};
    llmsim_status st;
    if ((st = trace_numbers(T, f, v, e)) || (st = trace_arrival(T, &f[0], &v[0], e)))
        return st;
    for (int k = 1; k <= 2; k++)
        if ((st = check_length(T->name, T->lineno, &f[k], k, v[k], e)))
            return st;
    if (!(v[3] > 0))
        return diag_at(e, LLMSIM_EINPUT, T->name, T->lineno, f[3].col,
                       "weight %.*s%s is not > 0; the fair scheduler weighs turnaround by it",
                       SHOWN(f[3]));
    if (T->ncols == TRACE_COLS && (st = trace_prefix(T, f, v, e)))
        return st;
    if (T->n >= (size_t)GEN_MAX_REQUESTS) /* before memory runs out, not after */
        return diag_at(e, LLMSIM_EINPUT, T->name, T->lineno, 1,
                       "more than %lld requests; split the trace (serve-sim simulates at most "
                       "that many in one run, as --num-requests)", GEN_MAX_REQUESTS);
    serve_request *p = llmsim_grow(T->r, T->n, &T->cap, sizeof *p, 1024);
    if (!p)
        return diag_at(e, LLMSIM_EFAIL, T->name, T->lineno, 0, "out of memory after %zu requests",
                       T->n);
    T->r = p;
    T->r[T->n++] = (serve_request){v[0], (int64_t)v[1], (int64_t)v[2], v[3], (int64_t)T->lineno,
                                   (uint32_t)v[4], (int64_t)v[5]};
    T->prev_arrival = f[0];
    T->prev_line = T->lineno;
    return LLMSIM_OK;
}

/* At the end of the text: there was a header, and a request after it. */
static llmsim_status trace_end(const trace_reader *T, diag *e)
{
    if (!T->have_header)
        return diag_at(e, LLMSIM_EINPUT, T->name, 0, 0,
                       "no requests and no header (the file is empty or all comments); a trace is "
                       "the header line '" TRACE_HEADER "' then one request per line");
    if (T->n == 0)
        return diag_at(
            e, LLMSIM_EINPUT, T->name, 0, 0,
            "no requests after the header (line %zu); add one request per line: " TRACE_HEADER,
            T->header_line);
    return LLMSIM_OK;
}

llmsim_status serve_trace_parse(const char *name, const char *text, size_t len, serve_requests *out,
                                diag *e)
{
    out->r = NULL;
    out->n = 0;
    out->source = NULL;
    trace_reader T = {.name = name};
    llmsim_status st = LLMSIM_OK;
    size_t pos = 0, ll;
    const char *line;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        pos = 3; /* a UTF-8 byte order mark, as some spreadsheets write */
    while (!st && next_line(text, len, &pos, &line, &ll)) {
        T.lineno++;
        if (is_blank_or_comment(line, ll))
            continue;
        field f[TRACE_COLS];
        size_t nf = split_fields(line, ll, f);
        if (T.have_header) {
            st = trace_request(&T, f, nf, e);
        } else if (!(st = check_header(name, T.lineno, f, nf, e))) {
            T.have_header = true;
            T.header_line = T.lineno;
            T.ncols = nf;
        }
    }
    if (!st)
        st = trace_end(&T, e);
    if (!st && !(out->source = strdup(name)))
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
    if (st) {
        free(T.r);
        return st;
    }
    out->r = T.r;
    out->n = T.n;
    return LLMSIM_OK;
}

llmsim_status serve_trace_load(const char *path, serve_requests *out, diag *e)
{
    out->r = NULL;
    out->n = 0;
    out->source = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return diag_set(e, LLMSIM_EINPUT, "%s: cannot open the trace: %s", path, strerror(errno));
    size_t cap = 1u << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return diag_set(e, LLMSIM_EFAIL, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            char *p = cap > SIZE_MAX / 2 ? NULL : realloc(buf, 2 * cap);
            if (!p) {
                free(buf);
                fclose(f);
                return diag_set(e, LLMSIM_EFAIL, "%s: out of memory reading %zu bytes", path, n);
            }
            buf = p;
            cap *= 2;
        }
        errno = 0;
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0 || ferror(f) || feof(f))
            break;
    }
    if (ferror(f)) {
        int err = errno;
        free(buf);
        fclose(f);
        return diag_set(e, LLMSIM_EINPUT, "%s: cannot read the trace: %s", path,
                        err ? strerror(err) : "read error");
    }
    fclose(f);
    llmsim_status st = serve_trace_parse(path, buf, n, out, e);
    free(buf);
    return st;
}

void serve_trace_save(const serve_requests *q, strbuf *out)
{
    bool prefix = false;
    for (size_t i = 0; i < q->n && !prefix; i++)
        prefix = q->r[i].prefix_group != 0;
    strbuf_puts(out, prefix ? TRACE_HEADER TRACE_PREFIX "\n" : TRACE_HEADER "\n");
    for (size_t i = 0; i < q->n; i++) {
        strbuf_printf(out, "%.17g,%lld,%lld,%.17g", q->r[i].arrival_s,
                      (long long)q->r[i].prompt_len, (long long)q->r[i].output_len, q->r[i].weight);
        if (prefix)
            strbuf_printf(out, ",%u,%lld", q->r[i].prefix_group, (long long)q->r[i].prefix_len);
        strbuf_puts(out, "\n");
    }
}

/* ---- distributions ---- */

/* The spec as shown in messages, cut so the syntax advice after it fits. */
static void shown_spec(const char *spec, char out[128])
{
    size_t n = strlen(spec);
    if (n < 100)
        snprintf(out, 128, "%s", spec);
    else
        snprintf(out, 128, "%.96s...", spec);
}

/* One value of the distribution (a constant, a bound, a bin edge): lengths
 * are whole numbers of tokens in [1, 2^31], weights numbers > 0. */
static llmsim_status check_value(double v, bool integer, const char *role, const char *what,
                                 const char *spec, diag *e)
{
    if (integer && (v < 1 || v != floor(v) || v > LEN_MAX))
        return diag_set(e, LLMSIM_EINPUT,
                        "%s '%s': %s %.15g must be a whole number of tokens from 1 to 2^31", what,
                        spec, role, v);
    if (!integer && !(v > 0))
        return diag_set(e, LLMSIM_EINPUT, "%s '%s': %s %.15g must be > 0", what, spec, role, v);
    return LLMSIM_OK;
}

/* The comma-separated numbers of s[0..n) into v[0..want). */
static llmsim_status parse_params(const char *s, size_t n, double *v, int want, const char *kind,
                                  const char *syntax, const char *what, const char *spec, diag *e)
{
    int got = 0;
    size_t start = 0;
    for (bool last = false; !last; got++) {
        const char *p;
        size_t pn;
        last = next_item(s, n, &start, &p, &pn);
        if (got < want && !parse_number(p, pn, &v[got]))
            return diag_set(e, LLMSIM_EINPUT, "%s '%s': '%.*s' is not a number; write %s", what,
                            spec, (int)(pn > 40 ? 40 : pn), p, syntax);
    }
    if (got != want)
        return diag_set(e, LLMSIM_EINPUT, "%s '%s': %s takes %d numbers, %s; got %d", what, spec,
                        kind, want, syntax, got);
    return LLMSIM_OK;
}

#define CUM_OK       (-1)
#define CUM_OVERFLOW (-2)

/* Raw weights c[0..n) into cumulative weights normalized to 1, in place;
 * the one place this arithmetic is done, so serve_dist_format can check that
 * its text parses back to the same bits. Returns CUM_OK, CUM_OVERFLOW when
 * the total is not finite, or the index of a bin whose weight does not raise
 * the normalized sum. */
static int cumulate(double *c, int n)
{
    double total = 0;
    for (int b = 0; b < n; b++) {
        total += c[b];
        c[b] = total;
    }
    if (!isfinite(total))
        return CUM_OVERFLOW;
    for (int b = 0; b < n; b++) {
        double x = c[b] / total;
        if (!(x > (b > 0 ? c[b - 1] : 0)))
            return b;
        c[b] = x;
    }
    c[n - 1] = 1; /* exactly, so the search always finds a bin */
    return CUM_OK;
}

#define HIST_SYNTAX "hist:BIN=W,... (BIN a value V or a range LO-HI, W > 0)"

/* Room in d for the bins of s[0..n) = "BIN=W,...", one per comma and one
 * more (*nbins); a histogram is not empty and has at most HIST_MAX_BINS. */
static llmsim_status hist_alloc(const char *s, size_t n, serve_dist *d, size_t *nbins,
                                const char *what, const char *spec, diag *e)
{
    size_t nb = 1;
    for (size_t i = 0; i < n; i++)
        nb += s[i] == ',';
    const char *t = s;
    size_t tn = n;
    trim(&t, &tn);
    if (tn == 0)
        return diag_set(e, LLMSIM_EINPUT, "%s '%s': empty histogram; write %s", what, spec,
                        HIST_SYNTAX);
    if (nb > HIST_MAX_BINS)
        return diag_set(e, LLMSIM_EINPUT, "%s '%s': %zu bins; a histogram has at most %d", what,
                        spec, nb, HIST_MAX_BINS);
    d->lo = malloc(nb * sizeof *d->lo);
    d->hi = malloc(nb * sizeof *d->hi);
    d->cum = malloc(nb * sizeof *d->cum);
    if (!d->lo || !d->hi || !d->cum)
        return diag_set(e, LLMSIM_EFAIL, "%s: out of memory", what);
    *nbins = nb;
    return LLMSIM_OK;
}

/* A bin's BIN, bin[0..binn) = "V" or "LO-HI", into its low end ls[0..*ln)
 * and its high end hs[0..*hn), trimmed (both V for a single value). The
 * separator is a '-' that neither starts the text nor belongs to an
 * exponent ("1e-3-2e-3"). Returns its index, 0 for a single value. */
static size_t bin_range(const char *bin, size_t binn, const char **ls, size_t *ln, const char **hs,
                        size_t *hn)
{
    size_t sep = 0;
    for (size_t i = 1; i < binn; i++) {
        if (bin[i] == '-' && bin[i - 1] != 'e' && bin[i - 1] != 'E') {
            sep = i;
            break;
        }
    }
    *hs = sep ? bin + sep + 1 : bin;
    *hn = sep ? binn - sep - 1 : binn;
    *ln = sep ? sep : binn;
    trim(hs, hn);
    *ls = bin;
    trim(ls, ln);
    return sep;
}

/* Bin b, p[0..pn) = "BIN=W" (trimmed): its low and high ends and its raw
 * weight into d (d->nbins counts it). */
static llmsim_status parse_bin(const char *p, size_t pn, size_t b, serve_dist *d, const char *what,
                               const char *spec, diag *e)
{
    int shown = (int)(pn > 40 ? 40 : pn);
    if (pn == 0)
        return diag_set(e, LLMSIM_EINPUT, "%s '%s': bin %zu is empty; write %s", what, spec, b + 1,
                        HIST_SYNTAX);
    const char *eq = memchr(p, '=', pn);
    if (!eq)
        return diag_set(e, LLMSIM_EINPUT,
                        "%s '%s': bin '%.*s' has no '=W' weight; write BIN=W, e.g. 64-512=0.4",
                        what, spec, shown, p);
    const char *bin = p, *w = eq + 1, *ls, *hs;
    size_t binn = (size_t)(eq - p), wn = pn - binn - 1, ln, hn;
    trim(&bin, &binn);
    trim(&w, &wn);
    size_t sep = bin_range(bin, binn, &ls, &ln, &hs, &hn);
    double lo, hi, wt;
    if (!parse_number(ls, ln, &lo) || !parse_number(hs, hn, &hi))
        return diag_set(e, LLMSIM_EINPUT,
                        "%s '%s': bin '%.*s' is not a value V or a range LO-HI; write %s", what,
                        spec, shown, p, HIST_SYNTAX);
    if (!parse_number(w, wn, &wt))
        return diag_set(e, LLMSIM_EINPUT,
                        "%s '%s': the weight of bin '%.*s' is not a number; write %s", what, spec,
                        shown, p, HIST_SYNTAX);
    llmsim_status st;
    if ((st = check_value(lo, d->integer, sep ? "bin low end" : "bin value", what, spec, e)) ||
        (st = check_value(hi, d->integer, "bin high end", what, spec, e)))
        return st;
    if (lo > hi)
        return diag_set(e, LLMSIM_EINPUT,
                        "%s '%s': bin '%.*s' has LO %.15g above HI %.15g; write LO-HI with "
                        "LO <= HI",
                        what, spec, shown, p, lo, hi);
    if (!(wt > 0))
        return diag_set(e, LLMSIM_EINPUT,
                        "%s '%s': bin '%.*s' has weight %.15g; a weight is a relative "
                        "frequency > 0 (drop the bin instead)",
                        what, spec, shown, p, wt);
    d->lo[b] = lo;
    d->hi[b] = hi;
    d->cum[b] = wt;
    d->nbins = (int)b + 1;
    return LLMSIM_OK;
}

/* The bins of a histogram, s[0..n) = "BIN=W,...", into d (lo, hi and the raw
 * weights in cum, normalized after). */
static llmsim_status parse_hist(const char *s, size_t n, serve_dist *d, const char *what,
                                const char *spec, diag *e)
{
    size_t nb = 0, start = 0;
    llmsim_status st = hist_alloc(s, n, d, &nb, what, spec, e);
    for (size_t b = 0; b < nb && !st; b++) {
        const char *p;
        size_t pn;
        next_item(s, n, &start, &p, &pn);
        st = parse_bin(p, pn, b, d, what, spec, e);
    }
    if (st)
        return st;
    int bad = cumulate(d->cum, d->nbins);
    if (bad == CUM_OVERFLOW)
        return diag_set(e, LLMSIM_EINPUT,
                        "%s '%s': the weights add up past the range of a double; scale them down",
                        what, spec);
    /* a weight too small against the total to move the cumulative sum would
     * never be drawn, and would format as 0 */
    if (bad >= 0)
        return diag_set(e, LLMSIM_EINPUT,
                        "%s '%s': bin %d's weight is too small beside the others ever to be "
                        "drawn; drop it or raise it",
                        what, spec, bad + 1);
    return LLMSIM_OK;
}

static bool is_word(const char *s, size_t n, const char *word)
{
    return n == strlen(word) && memcmp(s, word, n) == 0;
}

/* A constant, s[0..n) without a ':': a number, or the name of a
 * distribution without its parameters (which says so). */
static llmsim_status dist_parse_const(const char *s, size_t n, const char *what, const char *shown,
                                      serve_dist *d, diag *e)
{
    double v;
    if (!parse_number(s, n, &v)) {
        if (is_word(s, n, "uniform") || is_word(s, n, "normal") || is_word(s, n, "hist"))
            return diag_set(e, LLMSIM_EINPUT, "%s '%s': %s needs parameters after a ':'; expected %s",
                            what, shown, shown, DIST_SYNTAX);
        return diag_set(e, LLMSIM_EINPUT,
                        "%s '%s' is neither a number nor a distribution; expected %s", what, shown,
                        DIST_SYNTAX);
    }
    llmsim_status st = check_value(v, d->integer, "the value", what, shown, e);
    if (st)
        return st;
    d->kind = SERVE_DIST_CONST;
    d->a = v;
    return LLMSIM_OK;
}

/* uniform:A,B, p[0..pn) = "A,B": A <= B, both valid values. */
static llmsim_status dist_parse_uniform(const char *p, size_t pn, const char *what,
                                        const char *shown, serve_dist *d, diag *e)
{
    double v[2];
    llmsim_status st;
    if ((st = parse_params(p, pn, v, 2, "uniform", "uniform:A,B", what, shown, e)) ||
        (st = check_value(v[0], d->integer, "A", what, shown, e)) ||
        (st = check_value(v[1], d->integer, "B", what, shown, e)))
        return st;
    if (v[0] > v[1])
        return diag_set(e, LLMSIM_EINPUT,
                        "%s '%s': A %.15g is above B %.15g; write uniform:A,B with A <= B", what,
                        shown, v[0], v[1]);
    d->kind = SERVE_DIST_UNIFORM;
    d->a = v[0];
    d->b = v[1];
    return LLMSIM_OK;
}

/* normal:MEAN,SD, p[0..pn) = "MEAN,SD": the mean at or above the minimum
 * value, the standard deviation >= 0. */
static llmsim_status dist_parse_normal(const char *p, size_t pn, const char *what,
                                       const char *shown, serve_dist *d, diag *e)
{
    double v[2];
    llmsim_status st = parse_params(p, pn, v, 2, "normal", "normal:MEAN,SD", what, shown, e);
    if (st)
        return st;
    /* the mean may be fractional, but at or above the minimum, or nearly
     * every draw would be resampled */
    if (d->integer ? !(v[0] >= 1 && v[0] <= LEN_MAX) : !(v[0] > 0))
        return diag_set(e, LLMSIM_EINPUT, "%s '%s': MEAN %.15g must be %s", what, shown, v[0],
                        d->integer ? "from 1 to 2^31 tokens" : "> 0");
    if (v[1] < 0)
        return diag_set(e, LLMSIM_EINPUT,
                        "%s '%s': SD %.15g is negative; a standard deviation is >= 0", what, shown,
                        v[1]);
    d->kind = SERVE_DIST_NORMAL;
    d->a = v[0];
    d->b = v[1] + 0.0;
    return LLMSIM_OK;
}

/* KIND:PARAMS, s[0..n) with its first ':' at colon. */
static llmsim_status dist_parse_kind(const char *s, size_t n, const char *colon, const char *what,
                                     const char *shown, serve_dist *d, diag *e)
{
    const char *kind = s, *p = colon + 1;
    size_t kn = (size_t)(colon - s), pn = n - kn - 1;
    trim(&kind, &kn);
    if (is_word(kind, kn, "uniform"))
        return dist_parse_uniform(p, pn, what, shown, d, e);
    if (is_word(kind, kn, "normal"))
        return dist_parse_normal(p, pn, what, shown, d, e);
    if (is_word(kind, kn, "hist")) {
        d->kind = SERVE_DIST_HIST;
        return parse_hist(p, pn, d, what, shown, e);
    }
    return diag_set(e, LLMSIM_EINPUT, "%s '%s': unknown distribution '%.*s'; expected %s", what,
                    shown, (int)(kn > 40 ? 40 : kn), kind, DIST_SYNTAX);
}

llmsim_status serve_dist_parse(const char *spec, const char *what, bool integer, serve_dist *d,
                               diag *e)
{
    memset(d, 0, sizeof *d);
    d->integer = integer;
    char shown[128];
    shown_spec(spec, shown);
    const char *s = spec;
    size_t n = strlen(spec);
    trim(&s, &n);
    if (n == 0)
        return diag_set(e, LLMSIM_EINPUT, "%s: empty distribution; expected %s", what, DIST_SYNTAX);
    const char *colon = memchr(s, ':', n);
    llmsim_status st = colon ? dist_parse_kind(s, n, colon, what, shown, d, e)
                             : dist_parse_const(s, n, what, shown, d, e);
    if (st) { /* nothing half-parsed is left behind */
        serve_dist_free(d);
        d->integer = integer;
    }
    return st;
}

void serve_dist_free(serve_dist *d)
{
    if (!d)
        return;
    free(d->lo);
    free(d->hi);
    free(d->cum);
    memset(d, 0, sizeof *d);
}

/* The shortest of %.15g, %.16g and %.17g that reads back as v: canonical text
 * stays readable ("0.1", not "0.10000000000000001") and still exact. */
static void put_num(strbuf *out, double v)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    strbuf_puts(out, buf);
}

/* How many digits the histogram's weights are printed with: the weights are
 * the steps of the normalized cumulative sums, which carry rounding (1 - 0.9
 * is 0.09999999999999998), so take the fewest digits, 15 to 17, whose text
 * parses back to the very same cumulative sums; 17 digits print each step
 * exactly, and their sums give back the same bits in all but contrived cases. */
static int weight_digits(const serve_dist *d)
{
    double *c = malloc((size_t)(d->nbins > 0 ? d->nbins : 1) * sizeof *c);
    if (!c)
        return 17;
    int prec = 15;
    for (; prec < 17; prec++) {
        char buf[40];
        for (int i = 0; i < d->nbins; i++) {
            snprintf(buf, sizeof buf, "%.*g", prec, d->cum[i] - (i ? d->cum[i - 1] : 0));
            c[i] = strtod(buf, NULL);
        }
        if (d->nbins > 0 && cumulate(c, d->nbins) == CUM_OK &&
            memcmp(c, d->cum, (size_t)d->nbins * sizeof *c) == 0)
            break;
    }
    free(c);
    return prec;
}

void serve_dist_format(const serve_dist *d, strbuf *out)
{
    switch (d->kind) {
    case SERVE_DIST_CONST: put_num(out, d->a); return;
    case SERVE_DIST_UNIFORM:
    case SERVE_DIST_NORMAL:
        strbuf_puts(out, d->kind == SERVE_DIST_UNIFORM ? "uniform:" : "normal:");
        put_num(out, d->a);
        strbuf_puts(out, ",");
        put_num(out, d->b);
        return;
    case SERVE_DIST_HIST: {
        int prec = weight_digits(d);
        strbuf_puts(out, "hist:");
        for (int i = 0; i < d->nbins; i++) {
            if (i)
                strbuf_puts(out, ",");
            put_num(out, d->lo[i]);
            if (d->hi[i] != d->lo[i]) {
                strbuf_puts(out, "-");
                put_num(out, d->hi[i]);
            }
            strbuf_printf(out, "=%.*g", prec, d->cum[i] - (i ? d->cum[i - 1] : 0));
        }
        return;
    }
    }
}

double serve_dist_mean(const serve_dist *d)
{
    switch (d->kind) {
    case SERVE_DIST_CONST: return d->a;
    case SERVE_DIST_UNIFORM: return 0.5 * (d->a + d->b);
    case SERVE_DIST_NORMAL: return d->a;
    case SERVE_DIST_HIST: {
        double m = 0;
        for (int i = 0; i < d->nbins; i++)
            m += (d->cum[i] - (i ? d->cum[i - 1] : 0)) * 0.5 * (d->lo[i] + d->hi[i]);
        return m;
    }
    }
    return 0;
}

/* Uniform on [a, b]: whole numbers inclusive for lengths. A single value
 * draws nothing (the stream stays a function of the seed either way). */
static double uniform_in(bool integer, double a, double b, rng_state *r)
{
    if (a == b)
        return a;
    if (integer)
        return a + (double)rng_below(r, (uint64_t)(b - a) + 1);
    return a + (b - a) * rng_u01(r);
}

static double dist_sample(const serve_dist *d, rng_state *r)
{
    switch (d->kind) {
    case SERVE_DIST_CONST: return d->a;
    case SERVE_DIST_UNIFORM: return uniform_in(d->integer, d->a, d->b, r);
    case SERVE_DIST_NORMAL:
        for (int t = 0; t < NORMAL_TRIES; t++) {
            double x = d->a + d->b * rng_normal(r);
            if (d->integer) {
                x = round(x);
                if (x >= 1)
                    return x > LEN_MAX ? LEN_MAX : x;
            } else if (x > 0 && isfinite(x)) {
                return x;
            }
        }
        return d->integer ? 1 : DBL_MIN;
    case SERVE_DIST_HIST: {
        double u = rng_u01(r);
        int lo = 0, hi = d->nbins - 1; /* the first bin whose cumulative weight exceeds u */
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (u < d->cum[mid])
                hi = mid;
            else
                lo = mid + 1;
        }
        return uniform_in(d->integer, d->lo[lo], d->hi[lo], r);
    }
    }
    return d->a;
}

/* ---- the generator ---- */

/* The generator's settings, checked. */
static llmsim_status gen_check(const serve_gen *g, diag *e)
{
    assert(g->arrival == SERVE_ARRIVAL_POISSON || g->arrival == SERVE_ARRIVAL_GAMMA);
    assert(g->prompt_len.integer && g->output_len.integer);
    if (g->num_requests < 1 || g->num_requests > GEN_MAX_REQUESTS)
        return diag_set(e, LLMSIM_EINPUT,
                        "num_requests %lld is out of range; generate from 1 to %lld requests",
                        g->num_requests, GEN_MAX_REQUESTS);
    if (!(g->rate > 0) || !isfinite(g->rate))
        return diag_set(e, LLMSIM_EINPUT, "rate %g is not a number of requests per second > 0",
                        g->rate);
    if (g->arrival == SERVE_ARRIVAL_GAMMA && (!(g->cv > 0) || !isfinite(g->cv)))
        return diag_set(e, LLMSIM_EINPUT,
                        "cv %g must be > 0: the coefficient of variation of inter-arrival times "
                        "(1 is as bursty as Poisson, above 1 burstier)",
                        g->cv);
    if (g->prefix_groups < 0 || g->prefix_groups > SERVE_PREFIX_GROUP_MAX ||
        (g->prefix_groups && !(g->prefix_len >= 1 && g->prefix_len <= (long long)LEN_MAX)))
        return diag_set(e, LLMSIM_EINPUT,
                        "shared prefixes %lld:%lld: give 1 to %lld groups of 1 to 2^31 tokens",
                        g->prefix_groups, g->prefix_len, SERVE_PREFIX_GROUP_MAX);
    return LLMSIM_OK;
}

llmsim_status serve_generate(const serve_gen *g, serve_requests *out, diag *e)
{
    out->r = NULL;
    out->n = 0;
    out->source = NULL;
    llmsim_status st = gen_check(g, e);
    if (st)
        return st;
    const bool gamma = g->arrival == SERVE_ARRIVAL_GAMMA;
    size_t n = (size_t)g->num_requests;
    serve_request *r = calloc(n, sizeof *r);
    if (!r)
        return diag_set(e, LLMSIM_EFAIL, "out of memory for %zu requests", n);

    rng_state rs, gs;
    rng_seed(&rs, g->seed);
    /* the groups from a stream of their own: the other draws stay those of
     * the same seed without shared prefixes */
    rng_seed(&gs, g->seed ^ 0x5052454649584553ull);
    /* gamma inter-arrivals with mean 1/rate and the given cv: shape k = 1/cv^2
     * (cv = 1/sqrt(k)), scale = mean/k = cv^2/rate */
    double shape = gamma ? 1 / (g->cv * g->cv) : 1, scale = gamma ? g->cv * g->cv / g->rate : 0;
    double t = 0;
    for (size_t i = 0; i < n; i++) {
        /* one fixed order of draws per request: gap, prompt, output, weight */
        t += gamma ? rng_gamma(&rs, shape, scale) : rng_exponential(&rs, g->rate);
        r[i].arrival_s = t;
        r[i].prompt_len = (int64_t)dist_sample(&g->prompt_len, &rs);
        r[i].output_len = (int64_t)dist_sample(&g->output_len, &rs);
        r[i].weight = dist_sample(&g->weight, &rs);
        if (g->prefix_groups) {
            r[i].prefix_group = 1 + (uint32_t)(rng_u01(&gs) * (double)g->prefix_groups);
            if (r[i].prefix_group > (uint32_t)g->prefix_groups)
                r[i].prefix_group = (uint32_t)g->prefix_groups;
            r[i].prefix_len = g->prefix_len;
            r[i].prompt_len += g->prefix_len;
        }
    }
    if (!isfinite(t)) {
        free(r);
        return diag_set(e, LLMSIM_EINPUT,
                        "arrival times overflow at rate %g; use a rate that spaces %zu requests "
                        "within the range of a double",
                        g->rate, n);
    }
    out->r = r;
    out->n = n;
    return LLMSIM_OK;
}

void serve_gen_describe(const serve_gen *g, strbuf *out)
{
    bool gamma = g->arrival == SERVE_ARRIVAL_GAMMA;
    strbuf_printf(out, "arrival: %s\nrate: ", serve_arrival_names[gamma]);
    put_num(out, g->rate);
    if (gamma) {
        strbuf_puts(out, "\ncv: ");
        put_num(out, g->cv);
    }
    strbuf_printf(out, "\nnum_requests: %lld\nprompt_len: ", g->num_requests);
    serve_dist_format(&g->prompt_len, out);
    strbuf_puts(out, "\noutput_len: ");
    serve_dist_format(&g->output_len, out);
    strbuf_puts(out, "\nweight: ");
    serve_dist_format(&g->weight, out);
    strbuf_printf(out, "\nseed: %" PRIu64 "\n", g->seed);
    if (g->prefix_groups)
        strbuf_printf(out, "shared_prefix: %lld:%lld\n", g->prefix_groups, g->prefix_len);
}
