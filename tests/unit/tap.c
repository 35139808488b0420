/* tap — see tap.h. */
#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int passed, failed;

void tap_check(bool ok, const char *file, int line, const char *fmt, ...)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int tap_done(void)
{
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

void tap_skip(const char *why)
{
    printf("skipped: %s\n", why);
    exit(77);
}

static const char *join(const char *env, const char *rel, char *buf, size_t len)
{
    const char *root = getenv(env);
    snprintf(buf, len, "%s/%s", root ? root : ".", rel);
    return buf;
}

const char *tap_data(const char *rel)
{
    static char buf[4][1024];
    static int i;
    i = (i + 1) % 4;
    return join("LLMSIM_TEST_DATA", rel, buf[i], sizeof buf[i]);
}

const char *tap_src(const char *rel)
{
    static char buf[4][1024];
    static int i;
    i = (i + 1) % 4;
    return join("LLMSIM_DATA_DIR", rel, buf[i], sizeof buf[i]);
}
