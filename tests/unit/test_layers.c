/*
 * test_layers — the layer order of docs/ARCHITECTURE.md, held against the
 * code. The table between <!-- layers:begin --> and <!-- layers:end --> gives
 * every part (a top-level folder), its layer and the parts it may include.
 * This test fails, naming the file and line, when:
 *  - the table is missing or malformed, names a part twice, names a folder
 *    that does not exist, or lets a part include one at its own layer or above;
 *  - a top-level folder with C or CUDA sources is not in the table (tests/,
 *    bench/, scripts/, cmake/, docs/ and the build folders are not parts);
 *  - a file of a part has `#include "X/..."` where X is another part that the
 *    part's row does not list;
 *  - a part's CMakeLists.txt links (llmsim_part(... PARTS ...)) a part that
 *    its row does not list.
 *
 * The source root is argv[1], else $LLMSIM_DATA_DIR (ctest sets it), else
 * the tree this test was built from.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tap.h"

#ifndef LLMSIM_SOURCE_DIR
#define LLMSIM_SOURCE_DIR "."
#endif

#define MAX_PARTS 32
#define MAX_NAME 48
#define MAX_LINE 4096
#define MAX_PATH 2048

/* One row of the layer table. */
typedef struct layer_row {
    int layer;                     /* 0 = the bottom */
    char part[MAX_NAME];           /* the folder */
    char may[MAX_PARTS][MAX_NAME]; /* the parts it may include */
    int nmay;
    int doc_line; /* its line in docs/ARCHITECTURE.md */
} layer_row;

typedef struct layer_table {
    layer_row rows[MAX_PARTS];
    int n;
} layer_table;

static const char *DOC = "docs/ARCHITECTURE.md";
static const char *MARK_BEGIN = "<!-- layers:begin -->";
static const char *MARK_END = "<!-- layers:end -->";

/* ---- small string helpers */

/* s without leading and trailing white space, in place. */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Whether s is a part name: lower-case letters, digits and '_'. */
static bool is_name(const char *s)
{
    if (!*s || strlen(s) >= MAX_NAME)
        return false;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static const layer_row *table_find(const layer_table *t, const char *part)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->rows[i].part, part) == 0)
            return &t->rows[i];
    return NULL;
}

static bool row_may(const layer_row *r, const char *part)
{
    for (int i = 0; i < r->nmay; i++)
        if (strcmp(r->may[i], part) == 0)
            return true;
    return false;
}

/* "a, b, c" of row r into buf (for messages). */
static const char *row_may_list(const layer_row *r, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->nmay && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "", r->may[i]);
    return r->nmay ? buf : "nothing";
}

/* path opened for reading, or NULL with the failure reported as "shown: why". */
static FILE *open_or_fail(const char *path, const char *shown, const char *why)
{
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "%s: %s", shown, why);
    return f;
}

/* ---- reading the table */

/* Split a markdown table line "| a | b | c |" into at most max trimmed cells;
 * returns the count, or -1 when the line is not a table line. */
static int split_cells(char *line, char **cells, int max)
{
    char *s = trim(line);
    size_t n = strlen(s);
    if (n < 2 || s[0] != '|' || s[n - 1] != '|')
        return -1;
    s[n - 1] = '\0';
    int k = 0;
    for (char *c = s + 1; k < max; k++) {
        char *bar = strchr(c, '|');
        if (bar)
            *bar = '\0';
        cells[k] = trim(c);
        if (!bar)
            return k + 1;
        c = bar + 1;
    }
    return max + 1; /* too many cells */
}

/* The "may include" cell: "-" or comma-separated part names (backticks allowed). */
static bool parse_may(char *cell, layer_row *r)
{
    r->nmay = 0;
    if (strcmp(cell, "-") == 0)
        return true;
    for (char *tok = strtok(cell, ","); tok; tok = strtok(NULL, ",")) {
        char *name = trim(tok);
        size_t n = strlen(name);
        if (n >= 2 && name[0] == '`' && name[n - 1] == '`') {
            name[n - 1] = '\0';
            name++;
        }
        if (!is_name(name) || r->nmay == MAX_PARTS)
            return false;
        snprintf(r->may[r->nmay++], MAX_NAME, "%s", name);
    }
    return r->nmay > 0;
}

/* One body row: layer (a number), part (a name), may include, owns (text). */
static bool parse_row(char **cells, int ncells, int line_no, layer_row *r)
{
    if (ncells != 4)
        return false;
    char *end;
    long layer = strtol(cells[0], &end, 10);
    if (end == cells[0] || *end || layer < 0 || layer > 99)
        return false;
    r->layer = (int)layer;
    r->doc_line = line_no;
    char *part = cells[1];
    size_t n = strlen(part);
    if (n >= 2 && part[0] == '`' && part[n - 1] == '`') {
        part[n - 1] = '\0';
        part++;
    }
    if (!is_name(part) || !*cells[3])
        return false;
    snprintf(r->part, MAX_NAME, "%s", part);
    return parse_may(cells[2], r);
}

/* The header "| layer | part | may include | owns |" and the rule under it. */
static bool parse_head(char *line, int row)
{
    static const char *names[4] = {"layer", "part", "may include", "owns"};
    char *cells[5];
    int n = split_cells(line, cells, 5);
    if (n != 4)
        return false;
    for (int i = 0; i < 4; i++) {
        if (row == 0 && strcmp(cells[i], names[i]) != 0)
            return false;
        if (row == 1 && (strlen(cells[i]) < 3 || strspn(cells[i], "-:") != strlen(cells[i])))
            return false;
    }
    return true;
}

/* Feed one line between the markers to the table; false (with a message)
 * when it is malformed. `row` counts the table lines seen so far. */
static bool table_line(layer_table *t, char *line, int line_no, int *row)
{
    char copy[MAX_LINE];
    snprintf(copy, sizeof copy, "%s", line);
    if (!*trim(copy))
        return true; /* blank lines around the table */
    if (*row < 2) {
        bool ok = parse_head(line, *row);
        CHECK(ok, "%s:%d: the layer table must start with '| layer | part | may include | owns |' "
                  "and a '| --- |' rule, not: %s", DOC, line_no, trim(copy));
        (*row)++;
        return ok;
    }
    char *cells[5];
    int n = split_cells(line, cells, 5);
    bool ok = t->n < MAX_PARTS && parse_row(cells, n, line_no, &t->rows[t->n]);
    CHECK(ok, "%s:%d: malformed layer row (want '| N | part | a, b or - | what it owns |'): %s",
          DOC, line_no, trim(copy));
    t->n += ok;
    (*row)++;
    return ok;
}

/* The lines of the markers in f (0: not found; the end marker must follow
 * the begin marker). */
static void markers_find(FILE *f, int *begin, int *end)
{
    char line[MAX_LINE];
    *begin = *end = 0;
    for (int line_no = 1; !*end && fgets(line, sizeof line, f); line_no++) {
        if (!*begin && strstr(line, MARK_BEGIN))
            *begin = line_no;
        else if (*begin && strstr(line, MARK_END))
            *end = line_no;
    }
}

/* The table between the markers of root/docs/ARCHITECTURE.md; every
 * malformed line is reported. */
static bool table_read(const char *root, layer_table *t)
{
    char path[MAX_PATH], line[MAX_LINE];
    snprintf(path, sizeof path, "%s/%s", root, DOC);
    FILE *f = open_or_fail(path, path, "cannot open the architecture document");
    if (!f)
        return false;
    int begin, end;
    markers_find(f, &begin, &end);
    CHECK(begin && end, "%s: no layer table: want it between a line '%s' and a line '%s'", DOC,
          MARK_BEGIN, MARK_END);
    bool ok = begin && end;
    rewind(f);
    int row = 0;
    for (int line_no = 1; line_no < end && fgets(line, sizeof line, f); line_no++)
        if (line_no > begin && !table_line(t, line, line_no, &row))
            ok = false;
    fclose(f);
    CHECK(!ok || t->n > 0, "%s:%d: the layer table has no rows", DOC, begin);
    return ok && t->n > 0;
}

/* ---- the table against itself and the folders */

static bool is_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Each part once, an existing folder, including only known parts below it. */
static void check_table(const char *root, const layer_table *t)
{
    for (int i = 0; i < t->n; i++) {
        const layer_row *r = &t->rows[i];
        char path[MAX_PATH];
        snprintf(path, sizeof path, "%s/%s", root, r->part);
        CHECK(table_find(t, r->part) == r, "%s:%d: part %s is listed twice", DOC, r->doc_line,
              r->part);
        CHECK(is_dir(path), "%s:%d: part %s has no folder %s/", DOC, r->doc_line, r->part,
              r->part);
        for (int k = 0; k < r->nmay; k++) {
            const layer_row *below = table_find(t, r->may[k]);
            CHECK(below != NULL, "%s:%d: %s may include %s, which is not a part of the table",
                  DOC, r->doc_line, r->part, r->may[k]);
            CHECK(!below || below->layer < r->layer,
                  "%s:%d: %s (layer %d) may include %s (layer %d): only parts at a lower layer",
                  DOC, r->doc_line, r->part, r->layer, r->may[k], below ? below->layer : -1);
        }
    }
}

/* Folders that are not parts: tests, benchmarks, scripts, build support,
 * documents, build trees and hidden folders. */
static bool skipped_dir(const char *name)
{
    static const char *skip[] = {"tests", "bench", "scripts", "cmake", "docs"};
    if (name[0] == '.' || strncmp(name, "build", 5) == 0)
        return true;
    for (size_t i = 0; i < sizeof skip / sizeof *skip; i++)
        if (strcmp(name, skip[i]) == 0)
            return true;
    return false;
}

static bool is_source(const char *name)
{
    return ends_with(name, ".c") || ends_with(name, ".h") || ends_with(name, ".cu") ||
           ends_with(name, ".cuh");
}

/* Calls visit(ctx, path, rel) for every source file under dir (rel: its path
 * from the source root), skipping the folders that are not parts. */
typedef void (*visit_fn)(void *ctx, const char *path, const char *rel);
static void walk_sources(const char *dir, const char *rel, visit_fn visit, void *ctx)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL, "%s: cannot open the folder", dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || skipped_dir(e->d_name))
            continue;
        char path[MAX_PATH], sub[MAX_PATH];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name);
        if (is_dir(path))
            walk_sources(path, sub, visit, ctx);
        else if (is_source(e->d_name))
            visit(ctx, path, sub);
    }
    closedir(d);
}

static void count_source(void *ctx, const char *path, const char *rel)
{
    (*(int *)ctx)++;
}

/* Every top-level folder with C or CUDA sources is a part of the table. */
static void check_folders_listed(const char *root, const layer_table *t)
{
    DIR *d = opendir(root);
    CHECK(d != NULL, "%s: cannot open the source root", root);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[MAX_PATH];
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            skipped_dir(e->d_name) || !is_dir(path))
            continue;
        int sources = 0;
        walk_sources(path, e->d_name, count_source, &sources);
        CHECK(sources == 0 || table_find(t, e->d_name) != NULL,
              "%s/ holds %d C/CUDA sources but is not a part of the layer table in %s",
              e->d_name, sources, DOC);
    }
    closedir(d);
}

/* ---- the includes */

/* The folder X of a line `#include "X/..."`, into out; false for any other line. */
static bool include_folder(const char *line, char *out, size_t len)
{
    const char *s = line + strspn(line, " \t");
    if (*s != '#')
        return false;
    s++;
    s += strspn(s, " \t");
    if (strncmp(s, "include", 7) != 0)
        return false;
    s += 7;
    s += strspn(s, " \t");
    if (*s != '"')
        return false;
    s++;
    size_t n = strcspn(s, "/\"");
    if (s[n] != '/' || n == 0 || n >= len)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

typedef struct include_scan {
    const layer_table *t;
    const layer_row *part; /* the part whose files are scanned */
    int edges;             /* includes of another part seen */
} include_scan;

/* Every include of another part in one file is allowed by its part's row. */
static void check_file_includes(void *ctx, const char *path, const char *rel)
{
    include_scan *sc = ctx;
    FILE *f = open_or_fail(path, rel, "cannot open");
    if (!f)
        return;
    char line[MAX_LINE], folder[MAX_NAME], list[MAX_LINE];
    for (int line_no = 1; fgets(line, sizeof line, f); line_no++) {
        if (!include_folder(line, folder, sizeof folder) || strcmp(folder, sc->part->part) == 0)
            continue;
        const layer_row *to = table_find(sc->t, folder);
        if (!to)
            continue; /* not a part: a subfolder of this one, or a system path */
        sc->edges++;
        line[strcspn(line, "\r\n")] = '\0';
        CHECK(row_may(sc->part, folder),
              "%s:%d: %s (layer %d) -> %s (layer %d): '%s' is not allowed; %s may include %s "
              "(%s:%d)", rel, line_no, sc->part->part, sc->part->layer, folder, to->layer,
              trim(line), sc->part->part, row_may_list(sc->part, list, sizeof list), DOC,
              sc->part->doc_line);
    }
    fclose(f);
}

static int check_includes(const char *root, const layer_table *t)
{
    int edges = 0;
    for (int i = 0; i < t->n; i++) {
        include_scan sc = {t, &t->rows[i], 0};
        char path[MAX_PATH];
        snprintf(path, sizeof path, "%s/%s", root, t->rows[i].part);
        if (is_dir(path))
            walk_sources(path, t->rows[i].part, check_file_includes, &sc);
        edges += sc.edges;
    }
    return edges;
}

/* ---- the libraries */

/* The text of root/part/CMakeLists.txt without its comments, into buf. */
static bool cmake_text(const char *root, const char *part, char *buf, size_t len)
{
    char path[MAX_PATH], line[MAX_LINE];
    snprintf(path, sizeof path, "%s/%s/CMakeLists.txt", root, part);
    FILE *f = open_or_fail(path, path, "missing (each part is a library, llmsim_part)");
    if (!f)
        return false;
    size_t at = 0;
    buf[0] = '\0';
    while (fgets(line, sizeof line, f) && at + 1 < len) {
        line[strcspn(line, "#")] = '\0';
        at += (size_t)snprintf(buf + at, len - at, "%s ", line);
    }
    fclose(f);
    CHECK(at + 1 < len, "%s/CMakeLists.txt: too long for this test", part);
    return at + 1 < len;
}

/* The arguments of the llmsim_part(...) call in text, in place: NULL when
 * there is none. */
static char *llmsim_part_args(char *text)
{
    for (char *s = strstr(text, "llmsim_part("); s; s = strstr(s + 1, "llmsim_part(")) {
        if (s > text && (isalnum((unsigned char)s[-1]) || s[-1] == '_'))
            continue;
        char *args = s + strlen("llmsim_part(");
        char *close = strchr(args, ')');
        if (close)
            *close = '\0';
        return args;
    }
    return NULL;
}

/* llmsim_part(NAME ... PARTS a b ...) names the part and links only parts
 * its row lists. */
static void check_cmake_parts(const char *root, const layer_row *r)
{
    static char text[1 << 16];
    if (!cmake_text(root, r->part, text, sizeof text))
        return;
    char *args = llmsim_part_args(text);
    CHECK(args != NULL, "%s/CMakeLists.txt: no llmsim_part(%s ...) call", r->part, r->part);
    if (!args)
        return;
    char list[MAX_LINE];
    bool in_parts = false;
    int k = 0;
    for (char *tok = strtok(args, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n"), k++) {
        if (k == 0) {
            CHECK(strcmp(tok, r->part) == 0, "%s/CMakeLists.txt: llmsim_part(%s ...) should be "
                  "llmsim_part(%s ...)", r->part, tok, r->part);
        } else if (strcmp(tok, "SOURCES") == 0 || strcmp(tok, "LIBS") == 0) {
            in_parts = false;
        } else if (strcmp(tok, "PARTS") == 0) {
            in_parts = true;
        } else if (in_parts) {
            CHECK(row_may(r, tok), "%s/CMakeLists.txt: PARTS %s is not allowed; %s may include "
                  "%s (%s:%d)", r->part, tok, r->part, row_may_list(r, list, sizeof list), DOC,
                  r->doc_line);
        }
    }
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : getenv("LLMSIM_DATA_DIR");
    if (!root || !*root)
        root = LLMSIM_SOURCE_DIR;
    static layer_table table;
    if (table_read(root, &table)) {
        check_table(root, &table);
        check_folders_listed(root, &table);
        int edges = check_includes(root, &table);
        CHECK(edges > 0, "no include between parts found under %s: wrong source root?", root);
        for (int i = 0; i < table.n; i++)
            check_cmake_parts(root, &table.rows[i]);
        printf("%d parts, %d includes between parts checked\n", table.n, edges);
    }
    return tap_done();
}
