/* strbuf — see strbuf.h. */
#include "common/strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    size_t n = strlen(path);
    char *tmp = malloc(n + 16);
    if (!tmp)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    snprintf(tmp, n + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        llmsim_status st = diag_set(e, LLMSIM_EINPUT, "%s: cannot write: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    FILE *f = fdopen(fd, "w");
    bool ok = f && fwrite(strbuf_str(b), 1, b->len, f) == b->len;
    ok = (f && fclose(f) == 0) && ok;
    if (!f)
        close(fd);
    if (!ok || rename(tmp, path) != 0) {
        llmsim_status st = diag_set(e, LLMSIM_EINPUT, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return LLMSIM_OK;
}
