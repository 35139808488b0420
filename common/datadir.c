/* datadir — see datadir.h. */
#include "common/datadir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
