/*
 * datadir — where shipped data (models/configs, hwprofiles) is found:
 * $LLMSIM_DATA_DIR if set, else the source tree llmsim was built from, else
 * the installed share/llmsim directory.
 */
#ifndef LLMSIM_COMMON_DATADIR_H
#define LLMSIM_COMMON_DATADIR_H

#include <stdbool.h>
#include <stddef.h>

/* Find "<root>/<subdir>/<name><ext>" in the data roots; true and the path in
 * out[len] when it exists. `name` must be a plain name (no '/'). */
bool datadir_find(const char *subdir, const char *name, const char *ext, char *out, size_t len);

/* True when `s` names a file (contains '/' or ends with ext and exists). */
bool datadir_is_path(const char *s);

#endif
