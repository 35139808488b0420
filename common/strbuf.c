/* strbuf — see strbuf.h. */
#include "common/strbuf.h"

#include "common/atomicfile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(strbuf *b, size_t extra)
{
    if (b->failed)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void strbuf_printf(strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n >= 0 && reserve(b, (size_t)n)) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void strbuf_puts(strbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (reserve(b, n)) {
        memcpy(b->data + b->len, s, n + 1);
        b->len += n;
    }
}

const char *strbuf_str(const strbuf *b) { return b->data ? b->data : ""; }

void strbuf_free(strbuf *b)
{
    if (!b)
        return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

llmsim_status strbuf_write_file(const strbuf *b, const char *path, diag *e)
{
    if (b->failed)
        return diag_set(e, LLMSIM_EFAIL, "out of memory while formatting %s", path);
    atomicfile a;
    llmsim_status st = atomicfile_open(&a, path, "writing", e);
    if (st)
        return st;
    fwrite(strbuf_str(b), 1, b->len, a.f);
    return atomicfile_commit(&a, "writing", e);
}
