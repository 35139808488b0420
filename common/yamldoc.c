/* yamldoc — see yamldoc.h. */
#include "common/yamldoc.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- loading */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *r = malloc(n);
    if (r)
        memcpy(r, s, n);
    return r;
}

/* 1-based line and column of byte `off` in text. */
static void line_col(const char *text, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

llmsim_status yd_load_string(yd_doc *d, const char *name, const char *text, size_t len, diag *e)
{
    memset(d, 0, sizeof *d);
    d->path = dup_str(name);
    if (!d->path)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    if (memchr(text, '\0', len))
        return diag_at(e, LLMSIM_EINPUT, name, 0, 0,
                       "contains NUL bytes: this is not a YAML text file");
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return diag_set(e, LLMSIM_EFAIL, "libyaml: cannot initialize the parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &d->doc)) {
        size_t line = parser.problem_mark.line + 1, col = parser.problem_mark.column + 1;
        size_t at = parser.problem_mark.index;
        if (parser.error == YAML_READER_ERROR) {
            /* the reader reports a byte offset, not a mark: count the lines */
            at = parser.problem_offset < len ? parser.problem_offset : len;
            line_col(text, at, &line, &col);
        }
        const char *problem = parser.problem ? parser.problem : "syntax error";
        const char *context = parser.context ? parser.context : NULL;
        if (at < len && text[at] == '\t')
            diag_at(e, LLMSIM_EINPUT, name, line, col,
                    "invalid YAML: a tab character; YAML indents with spaces only");
        else if (context)
            diag_at(e, LLMSIM_EINPUT, name, line, col, "invalid YAML: %s %s", problem, context);
        else
            diag_at(e, LLMSIM_EINPUT, name, line, col, "invalid YAML: %s", problem);
        yaml_parser_delete(&parser);
        return LLMSIM_EINPUT;
    }
    d->loaded = true;
    if (!yaml_document_get_root_node(&d->doc)) {
        yaml_parser_delete(&parser);
        return diag_at(e, LLMSIM_EINPUT, name, 1, 1,
                       "the file is empty; an llmsim input starts with its format line, such as "
                       "'llmsim: policy/1' (or model/1, hwprofile/1, workload/1)");
    }
    /* Exactly one document. */
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        size_t line = parser.problem_mark.line + 1, col = parser.problem_mark.column + 1;
        /* read before yaml_parser_delete, which zeroes the parser */
        const char *problem = parser.problem ? parser.problem : "syntax error";
        yaml_parser_delete(&parser);
        return diag_at(e, LLMSIM_EINPUT, name, line, col, "invalid YAML after the first document: %s",
                       problem);
    }
    yaml_node_t *more = yaml_document_get_root_node(&extra);
    size_t more_line = more ? more->start_mark.line + 1 : 0;
    yaml_document_delete(&extra);
    yaml_parser_delete(&parser);
    if (more)
        return diag_at(e, LLMSIM_EINPUT, name, more_line, 1,
                       "a second YAML document ('---') is not allowed; one file holds one document");
    return LLMSIM_OK;
}

llmsim_status yd_load_file(yd_doc *d, const char *path, diag *e)
{
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f)
        return diag_set(e, LLMSIM_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(YD_MAX_FILE_BYTES + 1);
    if (!buf) {
        fclose(f);
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    }
    size_t n = fread(buf, 1, YD_MAX_FILE_BYTES + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        return diag_set(e, LLMSIM_EINPUT, "%s: cannot read (is it a directory?)", path);
    }
    if (n > YD_MAX_FILE_BYTES) {
        free(buf);
        return diag_set(e, LLMSIM_EINPUT, "%s: larger than %u MiB; this is not an llmsim input file",
                        path, YD_MAX_FILE_BYTES >> 20);
    }
    llmsim_status st = yd_load_string(d, path, buf, n, e);
    free(buf);
    return st;
}

void yd_free(yd_doc *d)
{
    if (!d)
        return;
    if (d->loaded)
        yaml_document_delete(&d->doc);
    free(d->path);
    memset(d, 0, sizeof *d);
}

yaml_node_t *yd_root(yd_doc *d) { return d->loaded ? yaml_document_get_root_node(&d->doc) : NULL; }

size_t yd_line(const yaml_node_t *n) { return n ? n->start_mark.line + 1 : 0; }
size_t yd_col(const yaml_node_t *n) { return n ? n->start_mark.column + 1 : 0; }

const char *yd_scalar(const yaml_node_t *n)
{
    return (n && n->type == YAML_SCALAR_NODE) ? (const char *)n->data.scalar.value : NULL;
}

static llmsim_status verror(yd_doc *d, const yaml_node_t *n, diag *e, const char *fmt, va_list ap)
    LLMSIM_PRINTF(4, 0);
static llmsim_status verror(yd_doc *d, const yaml_node_t *n, diag *e, const char *fmt, va_list ap)
{
    char msg[768];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return diag_at(e, LLMSIM_EINPUT, d->path, yd_line(n), yd_col(n), "%s", msg);
}

llmsim_status (yd_error)(yd_doc *d, const yaml_node_t *n, diag *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    llmsim_status st = verror(d, n, e, fmt, ap);
    va_end(ap);
    return st;
}

llmsim_status (yd_key_error)(yd_map *m, const char *key, diag *e, const char *fmt, ...)
{
    yaml_node_t *n = yd_map_get(m, key);
    va_list ap;
    va_start(ap, fmt);
    llmsim_status st = verror(m->doc, n ? n : m->node, e, fmt, ap);
    va_end(ap);
    return st;
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

/* ---- mappings */

llmsim_status yd_map_open(yd_map *m, yd_doc *d, yaml_node_t *node, const char *what, diag *e)
{
    memset(m, 0, sizeof *m);
    m->doc = d;
    m->node = node;
    m->what = what;
    if (!node || node->type != YAML_MAPPING_NODE)
        return yd_error(d, node, e, "%s must be a mapping of 'key: value' lines, not %s", what,
                        node ? node_kind(node) : "nothing");
    yaml_node_pair_t *start = node->data.mapping.pairs.start, *top = node->data.mapping.pairs.top;
    m->npairs = (size_t)(top - start);
    m->used = calloc(m->npairs ? m->npairs : 1, 1);
    if (!m->used)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    for (size_t i = 0; i < m->npairs; i++) {
        yaml_node_t *k = yaml_document_get_node(&d->doc, start[i].key);
        const char *ks = yd_scalar(k);
        if (!ks) {
            yd_map_discard(m);
            return yd_error(d, k, e, "keys in %s must be plain words, not %s", what, node_kind(k));
        }
        for (size_t j = 0; j < i; j++) {
            yaml_node_t *kj = yaml_document_get_node(&d->doc, start[j].key);
            if (strcmp(ks, yd_scalar(kj)) == 0) {
                yd_map_discard(m);
                return yd_error(d, k, e, "duplicate key '%s' in %s (first at line %zu)", ks, what,
                                yd_line(kj));
            }
        }
    }
    return LLMSIM_OK;
}

yaml_node_t *yd_map_get(yd_map *m, const char *key)
{
    if (!m->node)
        return NULL;
    yaml_node_pair_t *start = m->node->data.mapping.pairs.start;
    for (size_t i = 0; i < m->npairs; i++) {
        yaml_node_t *k = yaml_document_get_node(&m->doc->doc, start[i].key);
        if (strcmp(yd_scalar(k), key) == 0) {
            m->used[i] = 1;
            return yaml_document_get_node(&m->doc->doc, start[i].value);
        }
    }
    return NULL;
}

void yd_map_discard(yd_map *m)
{
    free(m->used);
    m->used = NULL;
}

llmsim_status yd_map_close(yd_map *m, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    if (m->node && m->used) {
        yaml_node_pair_t *start = m->node->data.mapping.pairs.start;
        for (size_t i = 0; i < m->npairs; i++) {
            if (!m->used[i]) {
                yaml_node_t *k = yaml_document_get_node(&m->doc->doc, start[i].key);
                st = yd_error(m->doc, k, e, "unknown key '%s' in %s; check the spelling against the "
                              "format in the README", yd_scalar(k), m->what);
                break;
            }
        }
    }
    yd_map_discard(m);
    return st;
}

llmsim_status yd_map_end(yd_map *m, llmsim_status st, diag *e)
{
    if (!st)
        return yd_map_close(m, e);
    yd_map_discard(m);
    return st;
}

/* ---- scalars */

static llmsim_status need_plain_scalar(yd_doc *d, yaml_node_t *n, const char *what, const char *expect,
                                       diag *e)
{
    if (n->type != YAML_SCALAR_NODE)
        return yd_error(d, n, e, "'%s' must be %s, not %s", what, expect, node_kind(n));
    if (n->data.scalar.length == 0)
        return yd_error(d, n, e, "'%s' has no value; expected %s", what, expect);
    return LLMSIM_OK;
}

/* The text of a number: a non-empty scalar, not quoted; NULL after an error
 * (in *st). */
static const char *need_unquoted(yd_doc *d, yaml_node_t *n, const char *what, const char *expect,
                                 llmsim_status *st, diag *e)
{
    if ((*st = need_plain_scalar(d, n, what, expect, e)))
        return NULL;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        *st = yd_error(d, n, e, "'%s' must be %s, not a quoted string", what, expect);
        return NULL;
    }
    return yd_scalar(n);
}

llmsim_status yd_node_int(yd_doc *d, yaml_node_t *n, const char *what, long long min, long long max,
                          long long *out, diag *e)
{
    llmsim_status st;
    const char *s = need_unquoted(d, n, what, "a whole number", &st, e);
    if (!s)
        return st;
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (!*p)
        return yd_error(d, n, e, "'%s' must be a whole number, got '%s'", what, s);
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return yd_error(d, n, e, "'%s' must be a whole number, got '%s'", what, s);
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return yd_error(d, n, e, "'%s' = %s overflows a 64-bit integer", what, s);
    if (v < min || v > max)
        return yd_error(d, n, e, "'%s' = %lld is out of range; it must be between %lld and %lld",
                        what, v, min, max);
    *out = v;
    return LLMSIM_OK;
}

llmsim_status yd_node_double(yd_doc *d, yaml_node_t *n, const char *what, double min, double max,
                             double *out, diag *e)
{
    llmsim_status st;
    const char *s = need_unquoted(d, n, what, "a number", &st, e);
    if (!s)
        return st;
    for (const char *q = s; *q; q++)
        if (!((*q >= '0' && *q <= '9') || *q == '.' || *q == '-' || *q == '+' || *q == 'e' ||
              *q == 'E'))
            return yd_error(d, n, e, "'%s' must be a plain number, got '%s'", what, s);
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end)
        return yd_error(d, n, e, "'%s' must be a number, got '%s'", what, s);
    if (errno == ERANGE || !isfinite(v))
        return yd_error(d, n, e, "'%s' = %s is out of range for a number", what, s);
    if (v < min || v > max)
        return yd_error(d, n, e, "'%s' = %g is out of range; it must be between %g and %g", what, v,
                        min, max);
    *out = v;
    return LLMSIM_OK;
}

llmsim_status yd_node_qty(yd_doc *d, yaml_node_t *n, const char *what, units_kind kind, int range,
                          double *out, diag *e)
{
    llmsim_status st = need_plain_scalar(d, n, what, units_kind_example(kind), e);
    if (st)
        return st;
    char why[256];
    double v;
    if (!units_parse(yd_scalar(n), kind, &v, why, sizeof why))
        return yd_error(d, n, e, "'%s': %s", what, why);
    if (range == YD_POSITIVE && !(v > 0))
        return yd_error(d, n, e, "'%s' must be greater than zero, got '%s'", what, yd_scalar(n));
    if (range == YD_NONNEG && !(v >= 0))
        return yd_error(d, n, e, "'%s' must not be negative, got '%s'", what, yd_scalar(n));
    *out = v;
    return LLMSIM_OK;
}

/* ---- fields */

/* Levenshtein distance, capped at 3 (enough to spot a typo). */
static int edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), k = strlen(b);
    if (n > 63 || k > 63)
        return 3;
    int prev[64], cur[64];
    for (size_t j = 0; j <= k; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= k; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(int) * (k + 1));
    }
    return prev[k] < 3 ? prev[k] : 3;
}

/* A key of the map that nobody asked for and that looks like `key`. */
static yaml_node_t *near_miss(yd_map *m, const char *key)
{
    yaml_node_pair_t *start = m->node->data.mapping.pairs.start;
    for (size_t i = 0; i < m->npairs; i++) {
        yaml_node_t *k = yaml_document_get_node(&m->doc->doc, start[i].key);
        if (!m->used[i] && edit_distance(yd_scalar(k), key) <= 2)
            return k;
    }
    return NULL;
}

llmsim_status yd_field_node(yd_map *m, const char *key, yd_need need, yaml_node_t **out, diag *e)
{
    yaml_node_t *n = yd_map_get(m, key);
    if (!n) {
        yaml_node_t *typo = need == YD_REQUIRED ? near_miss(m, key) : NULL;
        if (typo)
            return yd_error(m->doc, typo, e, "unknown key '%s' in %s; did you mean '%s'?",
                            yd_scalar(typo), m->what, key);
        if (need == YD_REQUIRED)
            return yd_error(m->doc, m->node, e, "missing required key '%s' in %s", key, m->what);
        *out = NULL;
        return LLMSIM_OK;
    }
    *out = n;
    return LLMSIM_OK;
}

/* The value node of a typed field; NULL when there is nothing to convert:
 * an error (in *st), or an optional key that is absent (*st OK). */
static yaml_node_t *field_value(yd_map *m, const char *key, yd_need need, llmsim_status *st, diag *e)
{
    yaml_node_t *n = NULL;
    *st = yd_field_node(m, key, need, &n, e);
    return *st ? NULL : n;
}

/* The value node of a field that must be a non-empty scalar holding
 * `expect`; NULL as field_value, or after an error (in *st) when it is not. */
static yaml_node_t *field_scalar(yd_map *m, const char *key, yd_need need, const char *expect,
                                 llmsim_status *st, diag *e)
{
    yaml_node_t *n = field_value(m, key, need, st, e);
    if (n && (*st = need_plain_scalar(m->doc, n, key, expect, e)))
        return NULL;
    return n;
}

llmsim_status yd_field_str(yd_map *m, const char *key, yd_need need, char *buf, size_t len, diag *e)
{
    llmsim_status st;
    yaml_node_t *n = field_scalar(m, key, need, "a text value", &st, e);
    if (!n)
        return st;
    if (n->data.scalar.length >= len)
        return yd_error(m->doc, n, e, "'%s' is too long (at most %zu characters)", key, len - 1);
    if (strlen(yd_scalar(n)) != n->data.scalar.length)
        return yd_error(m->doc, n, e, "'%s' contains a NUL character (\\0); remove it", key);
    memcpy(buf, yd_scalar(n), n->data.scalar.length + 1);
    return LLMSIM_OK;
}

llmsim_status yd_field_int(yd_map *m, const char *key, yd_need need, long long min, long long max,
                           long long *out, diag *e)
{
    llmsim_status st;
    yaml_node_t *n = field_value(m, key, need, &st, e);
    return n ? yd_node_int(m->doc, n, key, min, max, out, e) : st;
}

llmsim_status yd_field_double(yd_map *m, const char *key, yd_need need, double min, double max,
                              double *out, diag *e)
{
    llmsim_status st;
    yaml_node_t *n = field_value(m, key, need, &st, e);
    return n ? yd_node_double(m->doc, n, key, min, max, out, e) : st;
}

llmsim_status yd_field_bool(yd_map *m, const char *key, yd_need need, bool *out, diag *e)
{
    llmsim_status st;
    yaml_node_t *n = field_scalar(m, key, need, "true or false", &st, e);
    if (!n)
        return st;
    const char *s = yd_scalar(n);
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && strcmp(s, "true") == 0)
        *out = true;
    else if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && strcmp(s, "false") == 0)
        *out = false;
    else
        return yd_error(m->doc, n, e, "'%s' must be true or false, got '%s'", key, s);
    return LLMSIM_OK;
}

llmsim_status yd_field_qty(yd_map *m, const char *key, yd_need need, units_kind kind, int range,
                           double *out, diag *e)
{
    llmsim_status st;
    yaml_node_t *n = field_value(m, key, need, &st, e);
    return n ? yd_node_qty(m->doc, n, key, kind, range, out, e) : st;
}

llmsim_status yd_field_qty_in(yd_map *m, const char *key, yd_need need, units_kind kind, double lo,
                              double hi, double *out, diag *e)
{
    llmsim_status st;
    yaml_node_t *n = field_value(m, key, need, &st, e);
    if (!n)
        return st;
    double v;
    if ((st = yd_node_qty(m->doc, n, key, kind, YD_NONNEG, &v, e)))
        return st;
    if (v < lo || v > hi) {
        char a[48], b[48];
        units_format_exact(kind, lo, a, sizeof a);
        units_format_exact(kind, hi, b, sizeof b);
        return yd_error(m->doc, n, e, "'%s' = '%s' is not plausible (between %s and %s); check the "
                        "unit", key, yd_scalar(n), a, b);
    }
    *out = v;
    return LLMSIM_OK;
}

llmsim_status yd_field_enum(yd_map *m, const char *key, yd_need need, const char *const *names,
                            int n_names, int *out, diag *e)
{
    llmsim_status st;
    yaml_node_t *n = field_scalar(m, key, need, "one of the listed words", &st, e);
    if (!n)
        return st;
    const char *s = yd_scalar(n);
    for (int i = 0; i < n_names; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return LLMSIM_OK;
        }
    }
    char list[256] = "";
    size_t used = 0;
    for (int i = 0; i < n_names && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    return yd_error(m->doc, n, e, "'%s' = '%s' is not one of: %s", key, s, list);
}

llmsim_status yd_field_map(yd_map *m, const char *key, yd_need need, yd_map *sub, diag *e)
{
    memset(sub, 0, sizeof *sub);
    llmsim_status st;
    yaml_node_t *n = field_value(m, key, need, &st, e);
    return n ? yd_map_open(sub, m->doc, n, key, e) : st;
}

llmsim_status yd_field_seq(yd_map *m, const char *key, yd_need need, yaml_node_t **seq, diag *e)
{
    *seq = NULL;
    llmsim_status st;
    yaml_node_t *n = field_value(m, key, need, &st, e);
    if (!n)
        return st;
    if (n->type != YAML_SEQUENCE_NODE)
        return yd_error(m->doc, n, e, "'%s' must be a list, not %s", key, node_kind(n));
    *seq = n;
    return LLMSIM_OK;
}

size_t yd_seq_len(const yaml_node_t *seq)
{
    return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

yaml_node_t *yd_seq_at(yd_doc *d, const yaml_node_t *seq, size_t i)
{
    return yaml_document_get_node(&d->doc, seq->data.sequence.items.start[i]);
}

/* ---- the format key */

llmsim_status yd_check_format(yd_map *root, const char *kind, int version, diag *e)
{
    yaml_node_t *n = yd_map_get(root, "llmsim");
    if (!n)
        return yd_error(root->doc, root->node, e,
                        "missing the format line; the file must start with 'llmsim: %s/%d'", kind,
                        version);
    const char *s = yd_scalar(n);
    if (!s)
        return yd_error(root->doc, n, e, "'llmsim' must be '%s/%d'", kind, version);
    const char *slash = strchr(s, '/');
    size_t klen = slash ? (size_t)(slash - s) : strlen(s);
    if (klen != strlen(kind) || strncmp(s, kind, klen) != 0) {
        if (slash)
            return yd_error(root->doc, n, e,
                            "this is a '%.*s' file, but a '%s' file was expected ('llmsim: %s/%d')",
                            (int)klen, s, kind, kind, version);
        return yd_error(root->doc, n, e, "'llmsim: %s' is not a format; expected 'llmsim: %s/%d'", s,
                        kind, version);
    }
    char want[32];
    snprintf(want, sizeof want, "%d", version);
    if (!slash || strcmp(slash + 1, want) != 0)
        return yd_error(root->doc, n, e,
                        "unsupported format version '%s'; this llmsim reads '%s/%d' (see the README)",
                        s, kind, version);
    return LLMSIM_OK;
}

llmsim_status yd_open_file(yd_doc *doc, yd_map *root, const char *path, const char *what,
                           const char *kind, int version, diag *e)
{
    return yd_open_text(doc, root, path, NULL, what, kind, version, e);
}

llmsim_status yd_open_text(yd_doc *doc, yd_map *root, const char *name, const char *text,
                           const char *what, const char *kind, int version, diag *e)
{
    memset(root, 0, sizeof *root);
    llmsim_status st = text ? yd_load_string(doc, name, text, strlen(text), e) : yd_load_file(doc, name, e);
    if (!st && !(st = yd_map_open(root, doc, yd_root(doc), what, e))) {
        if (!(st = yd_check_format(root, kind, version, e)))
            return LLMSIM_OK;
        yd_map_discard(root);
    }
    yd_free(doc);
    return st;
}

llmsim_status yd_read(const char *name, const char *text, const char *what, const char *kind,
                      int version, yd_read_fn read, void *out, diag *e)
{
    yd_doc doc;
    yd_map root;
    llmsim_status st = yd_open_text(&doc, &root, name, text, what, kind, version, e);
    if (st)
        return st;
    st = yd_map_end(&root, read(&root, out, e), e);
    yd_free(&doc);
    return st;
}

llmsim_status yd_field_read(yd_map *m, const char *key, yd_need need, yd_read_fn read, void *out,
                            diag *e)
{
    yd_map sub;
    llmsim_status st = yd_field_map(m, key, need, &sub, e);
    if (st || !sub.node)
        return st;
    return yd_map_end(&sub, read(&sub, out, e), e);
}

/* ---- the rules of a type */

/* Room for what a rule says is wrong. */
#define YD_RULE_MSG 512

llmsim_status yd_rules_check(yd_rules_fn broken, const void *value, const char *where, diag *e)
{
    const char *key;
    char msg[YD_RULE_MSG];
    if (!broken(value, &key, msg, sizeof msg))
        return LLMSIM_OK;
    return diag_set(e, LLMSIM_EINPUT, "%s: %s", where, msg);
}

llmsim_status yd_rules_check_at(yd_rules_fn broken, const void *value, yd_map *m, diag *e)
{
    const char *key;
    char msg[YD_RULE_MSG];
    if (!broken(value, &key, msg, sizeof msg))
        return LLMSIM_OK;
    return yd_key_error(m, key, e, "%s", msg);
}
