/*
 * fuzz_pack — libFuzzer target for the store's packed chunks (db/pack.c),
 * read as the store reads them: a run's task timings or memory samples.
 *
 * Input: a mode byte, the row count (12 bits of a u16, little-endian: up
 * to 4095 rows keeps each run fast), the rest. Mode
 * bit 0: the rest is a blob as stored (pack_open inflates it) or, set, an
 * inflated payload as it is (so that the column parsers are fuzzed without
 * libFuzzer having to find valid zlib streams); bit 1: the task layout
 * (texts, names, four f64) or, set, the memory layout (f64, names, f64).
 *
 * Besides "no crash, no out-of-bounds access, no undefined behaviour" (ASan
 * and UBSan), every outcome is checked: a damaged blob is LLMSIM_EINPUT with
 * a message that names it; columns that read whole survive a round trip:
 * packed again (pack_put_*, pack_finish) and read back, they give the same
 * texts and the same bits. A violation aborts, which libFuzzer reports as a
 * crash.
 *
 * Built with -DLLMSIM_FUZZ_REPLAY the file also has a main() that runs every
 * file named on the command line (directories: every file in them) through
 * the target, so the committed corpus is a regression test on any compiler.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz-chunk"

static void require(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_pack: invariant broken: %s\n", what);
        abort();
    }
}

/* The rows of either layout: texts[0] the id (tasks), names the resource or
 * the tier, v[] the doubles (tasks: 4, memory: 2). */
typedef struct rows {
    char (*text)[64];
    char (*name)[16];
    double *v[4];
    int nv;
} rows;

static bool rows_alloc(rows *r, size_t n, int nv)
{
    memset(r, 0, sizeof *r);
    r->nv = nv;
    bool ok = (r->text = calloc(n + 1, sizeof *r->text)) && (r->name = calloc(n + 1, sizeof *r->name));
    for (int k = 0; k < nv; k++)
        ok = ok && (r->v[k] = calloc(n + 1, sizeof *r->v[k]));
    return ok;
}

static void rows_free(rows *r)
{
    free(r->text);
    free(r->name);
    for (int k = 0; k < 4; k++)
        free(r->v[k]);
}

/* Columns in the store's order for the layout. */
static bool get_rows(pack_reader *p, bool memory, size_t n, rows *r)
{
    if (memory)
        return pack_get_f64(p, r->v[0], sizeof *r->v[0], n) &&
               pack_get_names(p, r->name, sizeof *r->name, sizeof *r->name, n) &&
               pack_get_f64(p, r->v[1], sizeof *r->v[1], n) && pack_done(p);
    bool ok = pack_get_texts(p, r->text, sizeof *r->text, sizeof *r->text, n) &&
              pack_get_names(p, r->name, sizeof *r->name, sizeof *r->name, n);
    for (int k = 0; k < 4; k++)
        ok = ok && pack_get_f64(p, r->v[k], sizeof *r->v[k], n);
    return ok && pack_done(p);
}

static void put_rows(pack_writer *w, bool memory, size_t n, const rows *r, const char **names)
{
    for (size_t i = 0; i < n; i++)
        names[i] = r->name[i];
    if (memory) {
        pack_put_f64(w, r->v[0], sizeof *r->v[0], n);
        pack_put_names(w, names, sizeof *names, n);
        pack_put_f64(w, r->v[1], sizeof *r->v[1], n);
        return;
    }
    pack_put_texts(w, r->text, sizeof *r->text, n);
    pack_put_names(w, names, sizeof *names, n);
    for (int k = 0; k < 4; k++)
        pack_put_f64(w, r->v[k], sizeof *r->v[k], n);
}

/* Packed again and read back: the same rows, bit for bit. */
static void round_trip(bool memory, size_t n, const rows *a)
{
    const char **names = malloc((n + 1) * sizeof *names);
    pack_writer w = {0};
    rows b;
    if (!names || !rows_alloc(&b, n, a->nv)) {
        free(names);
        rows_free(&b);
        return;
    }
    put_rows(&w, memory, n, a, names);
    uint8_t *blob = NULL;
    size_t len = 0;
    diag e = {0};
    llmsim_status st = pack_finish(&w, &blob, &len, &e);
    if (st == LLMSIM_OK) {
        pack_reader p;
        require(pack_open(blob, len, NAME, &p, &e) == LLMSIM_OK, "a packed chunk does not open");
        require(get_rows(&p, memory, n, &b), "a packed chunk does not read back");
        for (size_t i = 0; i < n; i++) {
            require(memory || strcmp(a->text[i], b.text[i]) == 0, "a text changed");
            require(strcmp(a->name[i], b.name[i]) == 0, "a name changed");
            for (int k = 0; k < a->nv; k++)
                require(memcmp(&a->v[k][i], &b.v[k][i], sizeof(double)) == 0, "a double changed");
        }
        pack_reader_free(&p);
    } else {
        /* what was read is within every limit of the writer */
        require(strstr(e.msg, "out of memory") != NULL, "rows that were read do not pack");
    }
    free(blob);
    pack_writer_free(&w);
    free(names);
    rows_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const bool raw = data[0] & 1, memory = data[0] & 2;
    const size_t n = (size_t)data[1] | (size_t)(data[2] & 0x0f) << 8;
    const uint8_t *rest = data + 3;
    size_t len = size - 3;
    pack_reader p = {0};
    diag e = {0};
    if (raw) {
        p.buf = malloc(len ? len : 1);
        if (!p.buf)
            return 0;
        memcpy(p.buf, rest, len);
        p.len = len;
    } else {
        llmsim_status st = pack_open(rest, len, NAME, &p, &e);
        if (st != LLMSIM_OK) {
            require(st == LLMSIM_EINPUT || strstr(e.msg, "out of memory"), "a refusal that is not "
                                                                             "LLMSIM_EINPUT");
            require(strncmp(e.msg, NAME, strlen(NAME)) == 0 && strstr(e.msg, "damaged"),
                    "a refusal that does not name the chunk");
            return 0;
        }
    }
    rows r;
    if (rows_alloc(&r, n, memory ? 2 : 4) && get_rows(&p, memory, n, &r))
        round_trip(memory, n, &r);
    rows_free(&r);
    pack_reader_free(&p);
    return 0;
}

#ifdef LLMSIM_FUZZ_REPLAY
#include "replay.h"
#endif
