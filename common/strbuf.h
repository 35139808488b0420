/*
 * strbuf — a growable NUL-terminated string. The buffer owns its memory;
 * strbuf_free releases it (and accepts a zeroed strbuf). On allocation
 * failure the buffer is marked failed and later appends do nothing.
 */
#ifndef LLMSIM_COMMON_STRBUF_H
#define LLMSIM_COMMON_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "common/diag.h"

typedef struct strbuf {
    char *data; /* NUL-terminated, or NULL while empty */
    size_t len;
    size_t cap;
    bool failed;
} strbuf;

void strbuf_printf(strbuf *b, const char *fmt, ...) LLMSIM_PRINTF(2, 3);
void strbuf_puts(strbuf *b, const char *s);
const char *strbuf_str(const strbuf *b); /* "" when empty */
void strbuf_free(strbuf *b);

/* Write the buffer to `path` atomically (temp file + rename): readers see the
 * old file or the whole new one, never half of it. */
llmsim_status strbuf_write_file(const strbuf *b, const char *path, diag *e);

#endif
