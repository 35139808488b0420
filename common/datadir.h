/*
 * datadir — where shipped data (models/configs, hwprofiles) is found:
 * $LLMSIM_DATA_DIR if set, else the source tree llmsim was built from, else
 * the installed share/llmsim directory.
 */
#ifndef LLMSIM_COMMON_DATADIR_H
#define LLMSIM_COMMON_DATADIR_H

#include <stdbool.h>
#include <stddef.h>

#include "common/diag.h"

/* Find "<root>/<subdir>/<name><ext>" in the data roots; true and the path in
 * out[len] when it exists. `name` must be a plain name (no '/'). */
bool datadir_find(const char *subdir, const char *name, const char *ext, char *out, size_t len);

/* True when `s` names a file (contains '/' or ends with ext and exists). */
bool datadir_is_path(const char *s);

/* The file `spec` names: spec itself when it is a path (datadir_is_path),
 * else the shipped "<subdir>/<spec><ext>" found by datadir_find, in out[len];
 * NULL when it is neither. */
const char *datadir_resolve(const char *subdir, const char *spec, const char *ext, char *out,
                            size_t len);

/* The error for a spec that is neither a file nor a shipped name: the
 * message of fmt, then ": " and the names in `shipped` (NULL-terminated)
 * joined by ", ". Returns LLMSIM_EINPUT. */
llmsim_status datadir_unknown(diag *e, const char *const *shipped, const char *fmt, ...)
    LLMSIM_PRINTF(3, 4);

/* For clang's static analyzer only, as diag_set in common/diag.h: it does not
 * follow calls into variadic functions (common/datadir.c names it in parentheses). */
#if defined(__clang_analyzer__)
#define datadir_unknown(e, shipped, ...) (datadir_unknown((e), (shipped), __VA_ARGS__), LLMSIM_EINPUT)
#endif

#endif
