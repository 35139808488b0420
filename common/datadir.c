/* datadir — see datadir.h. */
#include "common/datadir.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/strbuf.h"

#ifndef LLMSIM_SOURCE_DIR
#define LLMSIM_SOURCE_DIR "."
#endif
#ifndef LLMSIM_INSTALL_DATADIR
#define LLMSIM_INSTALL_DATADIR "/usr/local/share/llmsim"
#endif

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

bool datadir_find(const char *subdir, const char *name, const char *ext, char *out, size_t len)
{
    if (!name[0] || strchr(name, '/') || strstr(name, ".."))
        return false;
    const char *roots[3] = {getenv("LLMSIM_DATA_DIR"), LLMSIM_SOURCE_DIR, NULL};
    for (int i = 0; i < 2; i++) {
        if (!roots[i] || !roots[i][0])
            continue;
        snprintf(out, len, "%s/%s/%s%s", roots[i], subdir, name, ext);
        if (is_file(out))
            return true;
    }
    /* installed layout: share/llmsim/models/NAME.yaml */
    const char *flat = strchr(subdir, '/') ? "models" : subdir;
    snprintf(out, len, "%s/%s/%s%s", LLMSIM_INSTALL_DATADIR, flat, name, ext);
    return is_file(out);
}

bool datadir_is_path(const char *s)
{
    return strchr(s, '/') != NULL || is_file(s);
}

const char *datadir_resolve(const char *subdir, const char *spec, const char *ext, char *out,
                            size_t len)
{
    if (datadir_is_path(spec))
        return spec;
    return datadir_find(subdir, spec, ext, out, len) ? out : NULL;
}

llmsim_status (datadir_unknown)(diag *e, const char *const *shipped, const char *fmt, ...)
{
    char lead[sizeof e->msg]; /* the message's own size: cut where it would be cut */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lead, sizeof lead, fmt, ap);
    va_end(ap);
    strbuf names = {0};
    for (int i = 0; shipped[i]; i++)
        strbuf_printf(&names, "%s%s", i ? ", " : "", shipped[i]);
    diag_set(e, LLMSIM_EINPUT, "%s: %s", lead, strbuf_str(&names));
    strbuf_free(&names);
    return LLMSIM_EINPUT;
}
