/* diag — see diag.h. */
#include "common/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void diag_clear(diag *d)
{
    if (!d)
        return;
    d->status = LLMSIM_OK;
    d->msg[0] = '\0';
}

static llmsim_status diag_vset(diag *d, llmsim_status status, const char *prefix, const char *fmt,
                               va_list ap)
{
    if (!d || d->status != LLMSIM_OK)
        return status;
    d->status = status;
    size_t n = 0;
    if (prefix) {
        snprintf(d->msg, sizeof d->msg, "%s", prefix);
        n = strlen(d->msg);
    }
    vsnprintf(d->msg + n, sizeof d->msg - n, fmt, ap);
    return status;
}

llmsim_status (diag_set)(diag *d, llmsim_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vset(d, status, NULL, fmt, ap);
    va_end(ap);
    return status;
}

llmsim_status (diag_at)(diag *d, llmsim_status status, const char *file, size_t line, size_t col,
                        const char *fmt, ...)
{
    char prefix[512];
    if (col)
        snprintf(prefix, sizeof prefix, "%s:%zu:%zu: ", file ? file : "<input>", line, col);
    else if (line)
        snprintf(prefix, sizeof prefix, "%s:%zu: ", file ? file : "<input>", line);
    else
        snprintf(prefix, sizeof prefix, "%s: ", file ? file : "<input>");
    va_list ap;
    va_start(ap, fmt);
    diag_vset(d, status, prefix, fmt, ap);
    va_end(ap);
    return status;
}

void diag_prefix(diag *d, const char *context)
{
    if (!d || !context)
        return;
    size_t c = strlen(context), n = strlen(d->msg);
    if (c + 2 >= sizeof d->msg)
        return;
    if (c + 2 + n >= sizeof d->msg)
        n = sizeof d->msg - c - 3;
    memmove(d->msg + c + 2, d->msg, n);
    d->msg[c + 2 + n] = '\0';
    memcpy(d->msg, context, c);
    d->msg[c] = ':';
    d->msg[c + 1] = ' ';
}
