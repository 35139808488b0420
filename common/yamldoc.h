/*
 * yamldoc — strict, schema-checked reading of YAML files through libyaml.
 *
 * A file is loaded whole into a libyaml document (yd_load_file), then read
 * through yd_map: every key a loader asks for is marked used, and
 * yd_map_close reports the first key nobody asked for as unknown. Every error
 * names file:line:column (1-based) of the offending node and what to write
 * instead, with status LLMSIM_EINPUT.
 *
 * Ownership: yd_doc owns the libyaml document and a copy of the path; nodes
 * returned by the functions below point into it and live until yd_free.
 * Typed scalars must be plain (unquoted) for numbers and booleans; quantities
 * ('16 GiB') are parsed by common/units.
 */
#ifndef LLMSIM_COMMON_YAMLDOC_H
#define LLMSIM_COMMON_YAMLDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "common/diag.h"
#include "common/units.h"

typedef struct yd_doc {
    yaml_document_t doc;
    char *path;   /* owned copy, used in messages */
    bool loaded;
} yd_doc;

/* Files larger than this are refused before parsing. */
#define YD_MAX_FILE_BYTES (16u << 20)

llmsim_status yd_load_file(yd_doc *d, const char *path, diag *e);
/* `name` is what messages call the input (a path, or "<--percent>"). */
llmsim_status yd_load_string(yd_doc *d, const char *name, const char *text, size_t len, diag *e);
void yd_free(yd_doc *d); /* accepts a zeroed or freed doc */

/* Root node; loaders check it with yd_map_open. */
yaml_node_t *yd_root(yd_doc *d);

/* Position helpers (1-based). */
size_t yd_line(const yaml_node_t *n);
size_t yd_col(const yaml_node_t *n);
/* Scalar text (NUL-terminated by libyaml), or NULL when n is not a scalar. */
const char *yd_scalar(const yaml_node_t *n);

typedef enum yd_need { YD_OPTIONAL = 0, YD_REQUIRED = 1 } yd_need;

/* Range flags for numbers and quantities. */
enum {
    YD_ANY = 0,
    YD_POSITIVE = 1, /* > 0 */
    YD_NONNEG = 2,   /* >= 0 */
};

typedef struct yd_map {
    yd_doc *doc;
    yaml_node_t *node;
    const char *what; /* "the policy", "'gpu'" — used in messages */
    unsigned char *used;
    size_t npairs;
} yd_map;

/* Open `node` as a mapping. Fails on a non-mapping, a non-scalar key or a
 * duplicate key. */
llmsim_status yd_map_open(yd_map *m, yd_doc *d, yaml_node_t *node, const char *what, diag *e);
/* Value node for `key` (marking it used), or NULL. */
yaml_node_t *yd_map_get(yd_map *m, const char *key);
/* Report the first unused key, and free the map. Always frees. */
llmsim_status yd_map_close(yd_map *m, diag *e);
/* Free without checking (on an error path). */
void yd_map_discard(yd_map *m);
/* Finish reading m: after an error st, discard it and return st; otherwise
 * yd_map_close. Always frees. */
llmsim_status yd_map_end(yd_map *m, llmsim_status st, diag *e);

/* Typed fields. When the key is absent: YD_REQUIRED is an error naming the
 * mapping's position; YD_OPTIONAL leaves *out unchanged and sets *present
 * (when non-NULL) to false. */
llmsim_status yd_field_node(yd_map *m, const char *key, yd_need need, yaml_node_t **out, diag *e);
llmsim_status yd_field_str(yd_map *m, const char *key, yd_need need, char *buf, size_t len, diag *e);
llmsim_status yd_field_int(yd_map *m, const char *key, yd_need need, long long min, long long max,
                           long long *out, diag *e);
llmsim_status yd_field_double(yd_map *m, const char *key, yd_need need, double min, double max,
                              double *out, diag *e);
llmsim_status yd_field_bool(yd_map *m, const char *key, yd_need need, bool *out, diag *e);
llmsim_status yd_field_qty(yd_map *m, const char *key, yd_need need, units_kind kind, int range,
                           double *out, diag *e);
/* A quantity that must lie in [lo, hi] to be plausible (a bandwidth of
 * 12 KB/s is a wrong unit, not a slow link): outside it, an error that
 * names the range and says to check the unit. */
llmsim_status yd_field_qty_in(yd_map *m, const char *key, yd_need need, units_kind kind, double lo,
                              double hi, double *out, diag *e);
/* names[0..n) are the accepted words; *out is the index. */
llmsim_status yd_field_enum(yd_map *m, const char *key, yd_need need, const char *const *names,
                            int n, int *out, diag *e);
/* A nested mapping; on success the caller must yd_map_close(sub). When
 * optional and absent, returns OK with sub->node == NULL. */
llmsim_status yd_field_map(yd_map *m, const char *key, yd_need need, yd_map *sub, diag *e);
/* A sequence node; NULL when optional and absent. */
llmsim_status yd_field_seq(yd_map *m, const char *key, yd_need need, yaml_node_t **seq, diag *e);

/* Sequence access. */
size_t yd_seq_len(const yaml_node_t *seq);
yaml_node_t *yd_seq_at(yd_doc *d, const yaml_node_t *seq, size_t i);

/* Scalar conversions on an arbitrary node (used by the field helpers and
 * for sequence items); `what` names the value in messages. */
llmsim_status yd_node_int(yd_doc *d, yaml_node_t *n, const char *what, long long min, long long max,
                          long long *out, diag *e);
llmsim_status yd_node_double(yd_doc *d, yaml_node_t *n, const char *what, double min, double max,
                             double *out, diag *e);
llmsim_status yd_node_qty(yd_doc *d, yaml_node_t *n, const char *what, units_kind kind, int range,
                          double *out, diag *e);

/* An error at node n (status LLMSIM_EINPUT). */
llmsim_status yd_error(yd_doc *d, const yaml_node_t *n, diag *e, const char *fmt, ...)
    LLMSIM_PRINTF(4, 5);
/* An error at the value of `key` in m (marking it used), or at m itself
 * when the key is absent. */
llmsim_status yd_key_error(yd_map *m, const char *key, diag *e, const char *fmt, ...)
    LLMSIM_PRINTF(4, 5);

/* For clang's static analyzer only, as diag_set in common/diag.h: it does not
 * follow calls into variadic functions, so it is told that these two return
 * LLMSIM_EINPUT (common/yamldoc.c names them in parentheses). */
#if defined(__clang_analyzer__)
#define yd_error(d, n, e, ...) (yd_error((d), (n), (e), __VA_ARGS__), LLMSIM_EINPUT)
#define yd_key_error(m, key, e, ...) (yd_key_error((m), (key), (e), __VA_ARGS__), LLMSIM_EINPUT)
#endif

#endif

#ifndef LLMSIM_COMMON_YAMLDOC_FORMAT
#define LLMSIM_COMMON_YAMLDOC_FORMAT
/* Check the root's `llmsim: KIND/VERSION` key against kind and version;
 * names a different kind or version in the message. */
llmsim_status yd_check_format(yd_map *root, const char *kind, int version, diag *e);

/* Load `path`, open its root mapping (`what` names it in messages) and check
 * its format line. On success the caller reads `root`, then calls
 * yd_map_close (or yd_map_discard) and yd_free; on failure both are freed. */
llmsim_status yd_open_file(yd_doc *doc, yd_map *root, const char *path, const char *what,
                           const char *kind, int version, diag *e);
/* The same over text in memory (text NULL: the file `name`); name is what
 * messages call it. */
llmsim_status yd_open_text(yd_doc *doc, yd_map *root, const char *name, const char *text,
                           const char *what, const char *kind, int version, diag *e);

/* A loader's reading of the root mapping into `out`: its fields and checks
 * (root->doc names the file in messages). */
typedef llmsim_status (*yd_read_fn)(yd_map *root, void *out, diag *e);
/* The whole load of an llmsim input: yd_open_text, read(&root, out, e), the
 * check for unknown keys (skipped after an error) and yd_free. */
llmsim_status yd_read(const char *name, const char *text, const char *what, const char *kind,
                      int version, yd_read_fn read, void *out, diag *e);
/* The same for the mapping under `key` of m: open it, read(&sub, out, e),
 * then the check for unknown keys (skipped after an error). An optional key
 * that is absent reads nothing (LLMSIM_OK, read not called). */
llmsim_status yd_field_read(yd_map *m, const char *key, yd_need need, yd_read_fn read, void *out,
                            diag *e);

/* The rules of a type read from YAML (a model, a policy) beyond the types of
 * its fields: the first rule `value` breaks, as a message without location
 * in msg and the key it concerns in *key; false when it breaks none. */
typedef bool (*yd_rules_fn)(const void *value, const char **key, char *msg, size_t len);
/* LLMSIM_OK, or LLMSIM_EINPUT "<where>: <what is wrong>". */
llmsim_status yd_rules_check(yd_rules_fn broken, const void *value, const char *where, diag *e);
/* LLMSIM_OK, or LLMSIM_EINPUT at the value of the key concerned in m (at m
 * when the key is absent), as yd_key_error. */
llmsim_status yd_rules_check_at(yd_rules_fn broken, const void *value, yd_map *m, diag *e);
#endif
