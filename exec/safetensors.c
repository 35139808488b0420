/* safetensors — see safetensors.h. */
#include "exec/safetensors.h"

#include <assert.h>
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/strbuf.h"
#include "exec/half.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data are little-endian; st_read would need byte swaps on this host"
#endif

/* Every input error names the file first: "path: what is wrong". */
#define BAD(e, file, ...) diag_at((e), LLMSIM_EINPUT, (file), 0, 0, __VA_ARGS__)

/* JSON numbers are doubles in cJSON: integers are exact below 2^53. */
#define ST_EXACT_LIMIT 9007199254740992.0

/* Names in messages are cut to this many bytes. */
#define QUOTE_BYTES 96

// ---- dtypes

static const struct {
    const char *name;
    int size;
} dtypes[ST_NDTYPES] = {
    [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2}, [ST_F32] = {"F32", 4},
    [ST_F64] = {"F64", 8}, [ST_I64] = {"I64", 8},   [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},     [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1},
};

int st_dtype_size(st_dtype d)
{
    return (unsigned)d < ST_NDTYPES ? dtypes[d].size : 0;
}

const char *st_dtype_name(st_dtype d)
{
    return (unsigned)d < ST_NDTYPES ? dtypes[d].name : "?";
}

int st_dtype_parse(const char *name, st_dtype *out)
{
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(name, dtypes[i].name) == 0) {
            *out = (st_dtype)i;
            return 0;
        }
    return -1;
}

uint64_t st_tensor_numel(const st_tensor *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (uint64_t)t->shape[i]; /* checked for overflow when parsed */
    return n;
}

// ---- text helpers for messages and checks

/* Copy at most `len` bytes of s (stopping at a NUL) into out[QUOTE_BYTES] for a
 * message: control characters become '?', a long text is cut on a character
 * boundary and ends with "...". */
static const char *quote(char *out, const char *s, size_t len)
{
    size_t max = QUOTE_BYTES - 4, i = 0;
    for (; i < len && s[i] && i < max; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (i < len && s[i]) {
        while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
            i--; /* do not split a UTF-8 sequence */
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

static const char *qname(char *out, const char *s)
{
    return quote(out, s, strlen(s));
}

/* Offset of the first byte of s[0..len) that is not UTF-8 (or, unless
 * `controls`, is a control character other than tab, newline and carriage
 * return, which JSON allows nowhere else); len when all are fine. */
static size_t text_check(const unsigned char *s, size_t len, bool controls, const char **why)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (!controls && c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
                *why = "a control character, which JSON does not allow";
                return i;
            }
            i++;
            continue;
        }
        size_t more;
        unsigned lo = 0x80, hi = 0xbf; /* range of the first continuation byte */
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2;
            if (c == 0xe0)
                lo = 0xa0; /* no overlong forms */
            if (c == 0xed)
                hi = 0x9f; /* no surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3;
            if (c == 0xf0)
                lo = 0x90;
            if (c == 0xf4)
                hi = 0x8f; /* nothing above U+10FFFF */
        } else {
            *why = "not UTF-8";
            return i;
        }
        if (len - i <= more || s[i + 1] < lo || s[i + 1] > hi) {
            *why = "not UTF-8";
            return i;
        }
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xc0) != 0x80) {
                *why = "not UTF-8";
                return i;
            }
        i += more + 1;
    }
    return len;
}

static bool is_json_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A JSON number that is an exact non-negative integer. */
static bool json_u53(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d < ST_EXACT_LIMIT)) /* also refuses NaN */
        return false;
    uint64_t u = (uint64_t)d;
    if ((double)u != d)
        return false;
    *out = u;
    return true;
}

/* The member `key` of an object, counting how often it occurs (cJSON keeps
 * duplicate keys and would silently take the first). */
static const cJSON *member(const cJSON *obj, const char *key, int *count)
{
    const cJSON *first = NULL;
    *count = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        if (c->string && strcmp(c->string, key) == 0) {
            if (!first)
                first = c;
            ++*count;
        }
    return first;
}

static void shape_str(char *out, size_t cap, const int64_t *shape, int ndim)
{
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap)
        snprintf(out + n, cap - n, "]");
}

/* Parse `len` bytes of JSON text that `name` holds at file offset `base`:
 * checks the bytes, parses, and refuses anything but whitespace after the
 * value. `what` is "header" or "index". *root is the value or NULL. */
static llmsim_status json_parse(const unsigned char *buf, size_t len, size_t base,
                                const char *name, const char *what, cJSON **root, diag *e)
{
    const char *why = NULL;
    char q[QUOTE_BYTES];
    *root = NULL;
    size_t at = text_check(buf, len, false, &why);
    if (at < len)
        return BAD(e, name, "%s: byte %zu (file offset %zu) is %s", what, at, base + at, why);
    /* cJSON gets its own NUL-terminated copy: it never has to trust `len` */
    char *text = malloc(len + 1);
    if (!text)
        return diag_set(e, LLMSIM_EFAIL, "%s: out of memory for the %s (%zu bytes)", name, what,
                        len);
    memcpy(text, buf, len);
    text[len] = '\0';
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len + 1, &end, 0);
    llmsim_status st = LLMSIM_OK;
    if (!v) {
        /* cJSON stops at or just after the offending byte: show what leads there */
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        size_t from = off > 24 ? off - 24 : 0;
        st = BAD(e, name, "%s: invalid JSON near byte %zu (file offset %zu): '%s'", what, off,
                 base + off, quote(q, text + from, len - from));
    } else {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
        while (off < len && is_json_space((unsigned char)text[off]))
            off++;
        if (off < len) {
            st = BAD(e, name, "%s: unexpected '%s' at byte %zu (file offset %zu) after the JSON "
                     "value", what, quote(q, text + off, len - off), off, base + off);
            cJSON_Delete(v);
            v = NULL;
        }
    }
    free(text);
    *root = v;
    return st;
}

// ---- tensor tables: one allocation for the array and the names

/* Allocate room for n tensors and `name_bytes` bytes of names; *pool points
 * at the name area. */
static st_tensor *table_alloc(size_t n, size_t name_bytes, char **pool)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, sizeof(st_tensor), &bytes) ||
        __builtin_add_overflow(bytes, name_bytes, &bytes))
        return NULL;
    st_tensor *t = malloc(bytes ? bytes : 1);
    if (t)
        *pool = (char *)(t + n);
    return t;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int cmp_offset(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Refuse overlapping tensors (empty ones occupy nothing). `base` is the
 * absolute offset that data_offsets count from, for messages. */
static llmsim_status check_overlaps(const st_tensor *t, size_t n, uint64_t base, const char *name,
                                    diag *e)
{
    if (n < 2)
        return LLMSIM_OK;
    const st_tensor **by = malloc(n * sizeof *by);
    if (!by)
        return diag_set(e, LLMSIM_EFAIL, "%s: out of memory", name);
    for (size_t i = 0; i < n; i++)
        by[i] = &t[i];
    qsort(by, n, sizeof *by, cmp_offset);
    const st_tensor *last = NULL; /* the non-empty tensor that ends furthest */
    llmsim_status st = LLMSIM_OK;
    for (size_t i = 0; i < n && st == LLMSIM_OK; i++) {
        const st_tensor *x = by[i];
        if (x->nbytes == 0)
            continue;
        if (last && x->offset < last->offset + last->nbytes) {
            char qa[QUOTE_BYTES], qb[QUOTE_BYTES];
            uint64_t a0 = last->offset - base, b0 = x->offset - base;
            st = BAD(e, name, "tensors '%s' (data_offsets [%llu, %llu]) and '%s' ([%llu, %llu]) "
                     "overlap", qname(qa, last->name), (unsigned long long)a0,
                     (unsigned long long)(a0 + last->nbytes), qname(qb, x->name),
                     (unsigned long long)b0, (unsigned long long)(b0 + x->nbytes));
        }
        if (!last || x->offset + x->nbytes > last->offset + last->nbytes)
            last = x;
    }
    free(by);
    return st;
}

// ---- the header parser

static llmsim_status check_header_len(uint64_t n, uint64_t file_bytes, const char *name, diag *e)
{
    if (file_bytes < 8)
        return BAD(e, name, "%llu bytes is too short for a safetensors file, which starts with "
                   "an 8-byte header length", (unsigned long long)file_bytes);
    if (n == 0)
        return BAD(e, name, "header length is 0; a safetensors file starts with the length of "
                   "a non-empty JSON header");
    if (n > file_bytes - 8)
        return BAD(e, name, "header length %llu bytes runs past the end of the file (%llu bytes): "
                   "truncated, or not a safetensors file", (unsigned long long)n,
                   (unsigned long long)file_bytes);
    if (n > ST_MAX_HEADER_BYTES)
        return BAD(e, name, "header length %llu bytes is above the limit of %u MiB: not a "
                   "safetensors file", (unsigned long long)n, ST_MAX_HEADER_BYTES >> 20);
    return LLMSIM_OK;
}

static llmsim_status check_metadata(const cJSON *m, const char *name, diag *e)
{
    if (!cJSON_IsObject(m))
        return BAD(e, name, "header: \"__metadata__\" must be an object of strings");
    for (const cJSON *c = m->child; c; c = c->next)
        if (!cJSON_IsString(c)) {
            char q[QUOTE_BYTES];
            return BAD(e, name, "header: \"__metadata__\" must be an object of strings; \"%s\" "
                       "is not a string", qname(q, c->string ? c->string : ""));
        }
    return LLMSIM_OK;
}

/* The members "dtype", "shape" and "data_offsets" of tensor tn's entry v,
 * each exactly once, into f[3]. */
static llmsim_status tensor_members(const cJSON *v, const char *tn, const char *name,
                                    const cJSON *f[3], diag *e)
{
    if (!cJSON_IsObject(v))
        return BAD(e, name, "tensor '%s': expected an object with \"dtype\", \"shape\" and "
                   "\"data_offsets\"", tn);
    static const char *keys[] = {"dtype", "shape", "data_offsets"};
    for (int k = 0; k < 3; k++) {
        int count;
        f[k] = member(v, keys[k], &count);
        if (count == 0)
            return BAD(e, name, "tensor '%s': missing \"%s\"", tn, keys[k]);
        if (count > 1)
            return BAD(e, name, "tensor '%s': \"%s\" is given %d times", tn, keys[k], count);
    }
    return LLMSIM_OK;
}

/* Tensor t's dtype (dt) and shape (sh), and its bytes into *nbytes; s
 * (cap bytes) receives the shape as text. */
static llmsim_status tensor_dtype_shape(const cJSON *dt, const cJSON *sh, st_tensor *t,
                                        const char *tn, const char *name, uint64_t *nbytes,
                                        char *s, size_t cap, diag *e)
{
    if (!cJSON_IsString(dt))
        return BAD(e, name, "tensor '%s': \"dtype\" must be a string such as \"F16\"", tn);
    if (st_dtype_parse(dt->valuestring, &t->dtype) != 0) {
        char qd[QUOTE_BYTES];
        return BAD(e, name, "tensor '%s': unsupported dtype \"%s\"; llmsim reads F16, BF16, F32, "
                   "F64, I64, I32, I16, I8, U8 and BOOL", tn, qname(qd, dt->valuestring));
    }
    int ndim = cJSON_IsArray(sh) ? cJSON_GetArraySize(sh) : -1;
    if (ndim < 0 || ndim > ST_MAX_DIMS)
        return BAD(e, name, "tensor '%s': \"shape\" must be an array of at most %d non-negative "
                   "integers", tn, ST_MAX_DIMS);
    t->ndim = ndim;
    uint64_t numel = 1;
    bool overflow = false;
    int i = 0;
    for (const cJSON *d = sh->child; d; d = d->next, i++) {
        uint64_t dim;
        if (!json_u53(d, &dim))
            return BAD(e, name, "tensor '%s': \"shape\" must be an array of at most %d "
                       "non-negative integers (below 2^53)", tn, ST_MAX_DIMS);
        t->shape[i] = (int64_t)dim;
        overflow |= __builtin_mul_overflow(numel, dim, &numel);
    }
    overflow |= __builtin_mul_overflow(numel, (uint64_t)st_dtype_size(t->dtype), nbytes);
    shape_str(s, cap, t->shape, t->ndim);
    if (overflow)
        return BAD(e, name, "tensor '%s': shape %s of %s holds more than 2^64 bytes", tn, s,
                   st_dtype_name(t->dtype));
    return LLMSIM_OK;
}

/* Fill t (name already set) from the JSON object v; data_bytes is the size of
 * the data section, data_start its absolute offset. */
static llmsim_status parse_tensor(const cJSON *v, st_tensor *t, uint64_t data_bytes,
                                  uint64_t data_start, const char *name, diag *e)
{
    char q[QUOTE_BYTES], s[256];
    const char *tn = qname(q, t->name);
    const cJSON *f[3];
    uint64_t nbytes = 0;
    llmsim_status st;
    if ((st = tensor_members(v, tn, name, f, e)) ||
        (st = tensor_dtype_shape(f[0], f[1], t, tn, name, &nbytes, s, sizeof s, e)))
        return st;
    const cJSON *of = f[2];
    uint64_t begin, end;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !json_u53(of->child, &begin) ||
        !json_u53(of->child->next, &end))
        return BAD(e, name, "tensor '%s': \"data_offsets\" must be [begin, end], two "
                   "non-negative integers (below 2^53)", tn);
    if (end < begin)
        return BAD(e, name, "tensor '%s': data_offsets [%llu, %llu] end before they begin", tn,
                   (unsigned long long)begin, (unsigned long long)end);
    if (end - begin != nbytes)
        return BAD(e, name, "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but %s "
                   "%s needs %llu", tn, (unsigned long long)begin, (unsigned long long)end,
                   (unsigned long long)(end - begin), st_dtype_name(t->dtype), s,
                   (unsigned long long)nbytes);
    if (end > data_bytes)
        return BAD(e, name, "tensor '%s': data_offsets [%llu, %llu] run past the end of the data "
                   "(%llu bytes after the header, the file is %llu bytes): truncated file?", tn,
                   (unsigned long long)begin, (unsigned long long)end,
                   (unsigned long long)data_bytes, (unsigned long long)(data_start + data_bytes));
    t->offset = data_start + begin;
    t->nbytes = nbytes;
    return LLMSIM_OK;
}

/* The header's tensors counted (all but "__metadata__", which is checked
 * and may be given once), and the bytes of their names with the NULs. */
static llmsim_status header_count(const cJSON *root, const char *name, size_t *count,
                                  size_t *name_bytes, diag *e)
{
    int nmeta = 0;
    llmsim_status st;
    *count = *name_bytes = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if ((st = check_metadata(c, name, e)))
                return st;
            if (++nmeta > 1)
                return BAD(e, name, "header: \"__metadata__\" is given twice");
            continue;
        }
        ++*count;
        *name_bytes += strlen(c->string) + 1;
    }
    return LLMSIM_OK;
}

/* The header's count tensors parsed into table t (names into pool), sorted
 * by name; a name given twice, or overlapping data, is an error. */
static llmsim_status header_tensors(const cJSON *root, st_tensor *t, size_t count, char *pool,
                                    uint64_t data_bytes, uint64_t data_start, const char *name,
                                    diag *e)
{
    llmsim_status st;
    size_t i = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0)
            continue;
        size_t l = strlen(c->string) + 1;
        t[i].name = memcpy(pool, c->string, l);
        pool += l;
        if ((st = parse_tensor(c, &t[i], data_bytes, data_start, name, e)))
            return st;
        i++;
    }
    qsort(t, count, sizeof *t, cmp_name);
    for (i = 1; i < count; i++)
        if (strcmp(t[i - 1].name, t[i].name) == 0) {
            char q[QUOTE_BYTES];
            return BAD(e, name, "header: tensor '%s' is given twice", qname(q, t[i].name));
        }
    return check_overlaps(t, count, data_start, name, e);
}

llmsim_status st_parse_header(const unsigned char *buf, size_t len, uint64_t file_bytes,
                              const char *name, st_tensor **tensors, size_t *n, diag *e)
{
    *tensors = NULL;
    *n = 0;
    if (!name)
        name = "<header>";
    llmsim_status st = check_header_len(len, file_bytes, name, e);
    if (st)
        return st;
    uint64_t data_start = 8 + (uint64_t)len, data_bytes = file_bytes - data_start;

    cJSON *root;
    if ((st = json_parse(buf, len, 8, name, "header", &root, e)))
        return st;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return BAD(e, name, "header: not a JSON object of tensors");
    }
    size_t count, name_bytes;
    char *pool;
    st_tensor *t = NULL;
    if ((st = header_count(root, name, &count, &name_bytes, e)))
        goto out;
    if (!(t = table_alloc(count, name_bytes, &pool))) {
        st = diag_set(e, LLMSIM_EFAIL, "%s: out of memory for %zu tensors", name, count);
        goto out;
    }
    memset(t, 0, count * sizeof *t);
    if ((st = header_tensors(root, t, count, pool, data_bytes, data_start, name, e))) {
        free(t);
        goto out;
    }
    *tensors = t;
    *n = count;
out:
    cJSON_Delete(root);
    return st;
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

llmsim_status st_parse_file_bytes(const unsigned char *buf, size_t size, const char *name,
                                  st_tensor **tensors, size_t *n, diag *e)
{
    *tensors = NULL;
    *n = 0;
    if (!name)
        name = "<buffer>";
    uint64_t hlen = size >= 8 ? le64(buf) : 0;
    llmsim_status st = check_header_len(hlen, size, name, e);
    if (st)
        return st;
    return st_parse_header(buf + 8, (size_t)hlen, size, name, tensors, n, e);
}

// ---- the index parser

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const st_index_entry *)a)->name, ((const st_index_entry *)b)->name);
}

/* A shard name is a relative path that stays in the index's directory and
 * has one spelling: no empty, "." or ".." components. */
static bool shard_name_ok(const char *s)
{
    if (!*s || *s == '/')
        return false;
    for (const char *p = s; *p;) {
        const char *q = strchr(p, '/');
        size_t l = q ? (size_t)(q - p) : strlen(p);
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += l + (q != NULL);
        if (q && !*p)
            return false; /* a trailing '/' names a directory */
    }
    return true;
}

void st_index_free(st_index *x)
{
    if (!x)
        return;
    for (int i = 0; i < x->nshards; i++)
        free(x->shards[i]);
    free(x->shards);
    for (size_t i = 0; i < x->nentries; i++)
        free(x->entries[i].name);
    free(x->entries);
    memset(x, 0, sizeof *x);
}

/* The index's root checked: a JSON object with at most one "metadata"
 * object and exactly one "weight_map" object, which *wm is. */
static llmsim_status index_root_check(const cJSON *root, const char *name, const cJSON **wm,
                                      diag *e)
{
    int count;
    if (!cJSON_IsObject(root))
        return BAD(e, name, "an index must be a JSON object with a \"weight_map\"");
    const cJSON *meta = member(root, "metadata", &count);
    if (count > 1 || (meta && !cJSON_IsObject(meta) && !cJSON_IsNull(meta)))
        return BAD(e, name, "\"metadata\" must be given at most once, as an object");
    *wm = member(root, "weight_map", &count);
    if (count != 1 || !cJSON_IsObject(*wm))
        return BAD(e, name, count > 1 ? "\"weight_map\" is given twice"
                   : "missing \"weight_map\", the object that maps each tensor to its shard file");
    return LLMSIM_OK;
}

/* The weight map's entries, counted into *n: each a string naming a shard
 * (shard_name_ok), and at least one. */
static llmsim_status index_map_count(const cJSON *wm, const char *name, size_t *n, diag *e)
{
    char q[QUOTE_BYTES];
    *n = 0;
    for (const cJSON *c = wm->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !shard_name_ok(c->valuestring))
            return BAD(e, name, "weight_map: tensor '%s' must map to a shard file name relative to "
                       "the index's directory (not absolute, no \"..\", \".\" or empty "
                       "components)", qname(q, c->string));
        ++*n;
    }
    if (*n == 0)
        return BAD(e, name, "weight_map is empty: the index lists no tensors");
    return LLMSIM_OK;
}

/* The distinct shard names of the weight map's n entries, sorted, into
 * out->shards (copies). */
static llmsim_status index_shards(const cJSON *wm, size_t n, const char *name, st_index *out,
                                  diag *e)
{
    char **all = malloc(n * sizeof *all);
    if (!all)
        return diag_set(e, LLMSIM_EFAIL, "%s: out of memory", name);
    size_t i = 0;
    for (const cJSON *c = wm->child; c; c = c->next)
        all[i++] = c->valuestring;
    qsort(all, n, sizeof *all, cmp_str);
    size_t ns = 0;
    for (i = 0; i < n; i++)
        if (i == 0 || strcmp(all[i], all[i - 1]) != 0)
            all[ns++] = all[i];
    llmsim_status st = LLMSIM_OK;
    if (ns > 65536)
        st = BAD(e, name, "weight_map names %zu shard files; llmsim opens at most 65536", ns);
    else if (!(out->shards = calloc(ns, sizeof *out->shards)))
        st = diag_set(e, LLMSIM_EFAIL, "%s: out of memory", name);
    for (i = 0; i < ns && !st; i++) {
        if (!(out->shards[i] = strdup(all[i])))
            st = diag_set(e, LLMSIM_EFAIL, "%s: out of memory", name);
        else
            out->nshards++;
    }
    free(all);
    return st;
}

/* The weight map's n entries into out->entries (tensor name, shard index),
 * sorted by name; a tensor listed twice is an error. */
static llmsim_status index_entries(const cJSON *wm, size_t n, const char *name, st_index *out,
                                   diag *e)
{
    char q[QUOTE_BYTES], q2[QUOTE_BYTES];
    if (!(out->entries = calloc(n, sizeof *out->entries)))
        return diag_set(e, LLMSIM_EFAIL, "%s: out of memory", name);
    const size_t ns = (size_t)out->nshards;
    for (const cJSON *c = wm->child; c; c = c->next) {
        st_index_entry *x = &out->entries[out->nentries];
        char **hit = bsearch(&c->valuestring, out->shards, ns, sizeof *out->shards, cmp_str);
        assert(hit);
        x->shard = (int)(hit - out->shards);
        if (!(x->name = strdup(c->string)))
            return diag_set(e, LLMSIM_EFAIL, "%s: out of memory", name);
        out->nentries++;
    }
    qsort(out->entries, out->nentries, sizeof *out->entries, cmp_entry);
    for (size_t i = 1; i < out->nentries; i++)
        if (strcmp(out->entries[i - 1].name, out->entries[i].name) == 0)
            return BAD(e, name, "weight_map: tensor '%s' is listed twice (in '%s' and '%s')",
                       qname(q, out->entries[i].name),
                       qname(q2, out->shards[out->entries[i - 1].shard]),
                       out->shards[out->entries[i].shard]);
    return LLMSIM_OK;
}

llmsim_status st_index_parse(const char *text, size_t len, const char *name, st_index *out,
                             diag *e)
{
    memset(out, 0, sizeof *out);
    if (!name)
        name = "<index>";
    if (len > ST_MAX_HEADER_BYTES)
        return BAD(e, name, "%zu bytes is above the limit of %u MiB for an index", len,
                   ST_MAX_HEADER_BYTES >> 20);
    cJSON *root;
    llmsim_status st = json_parse((const unsigned char *)text, len, 0, name, "index", &root, e);
    if (st)
        return st;
    const cJSON *wm = NULL;
    size_t n = 0;
    if (!(st = index_root_check(root, name, &wm, e)) && !(st = index_map_count(wm, name, &n, e)) &&
        !(st = index_shards(wm, n, name, out, e)))
        st = index_entries(wm, n, name, out, e);
    cJSON_Delete(root);
    if (st)
        st_index_free(out);
    return st;
}

// ---- files

/* Read exactly n bytes at `off`, looping over short reads and EINTR. */
static llmsim_status read_at(int fd, void *dst, uint64_t n, uint64_t off, const char *path,
                             diag *e)
{
    unsigned char *p = dst;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        if (off > (uint64_t)INT64_MAX - chunk)
            return BAD(e, path, "offset %llu is beyond what this system can read",
                       (unsigned long long)off);
        ssize_t r = pread(fd, p, chunk, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return diag_set(e, LLMSIM_EFAIL, "%s: read failed at byte %llu: %s", path,
                            (unsigned long long)off, strerror(errno));
        }
        if (r == 0)
            return BAD(e, path, "unexpected end of file at byte %llu (was it truncated?)",
                       (unsigned long long)off);
        p += r;
        off += (uint64_t)r;
        n -= (uint64_t)r;
    }
    return LLMSIM_OK;
}

/* Open a regular file read-only. `what` prefixes the path in messages ("shard
 * listed in x.json: ") or is "". */
static llmsim_status open_file(const char *path, const char *what, int *fd, uint64_t *bytes,
                               diag *e)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        /* out of descriptors or memory, an I/O error: the system's fault;
         * anything else (missing, no permission, a loop...) the user's */
        bool sys = errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == EIO;
        return diag_set(e, sys ? LLMSIM_EFAIL : LLMSIM_EINPUT, "%s%s: cannot open: %s", what,
                        path, strerror(errno));
    }
    struct stat sb;
    const char *why = NULL;
    if (fstat(*fd, &sb) != 0)
        why = strerror(errno);
    else if (!S_ISREG(sb.st_mode))
        why = "not a regular file";
    if (why) {
        close(*fd);
        *fd = -1;
        return diag_set(e, LLMSIM_EINPUT, "%s%s: %s", what, path, why);
    }
    *bytes = (uint64_t)sb.st_size;
    return LLMSIM_OK;
}

/* Read and parse the header of an open safetensors file. */
static llmsim_status parse_file(int fd, uint64_t bytes, const char *path, st_tensor **t,
                                size_t *n, diag *e)
{
    *t = NULL;
    *n = 0;
    unsigned char len8[8];
    llmsim_status st = bytes < 8 ? check_header_len(0, bytes, path, e) /* "too short" */
                                 : read_at(fd, len8, 8, 0, path, e);
    if (st)
        return st;
    uint64_t hlen = le64(len8);
    if ((st = check_header_len(hlen, bytes, path, e)))
        return st;
    unsigned char *buf = malloc((size_t)hlen);
    if (!buf)
        return diag_set(e, LLMSIM_EFAIL, "%s: out of memory for a %llu-byte header", path,
                        (unsigned long long)hlen);
    if (!(st = read_at(fd, buf, hlen, 8, path, e)))
        st = st_parse_header(buf, (size_t)hlen, bytes, path, t, n, e);
    free(buf);
    return st;
}

/* Room for nfiles files in c, every descriptor -1. On failure st_close
 * frees what there is (it takes a NULL array). */
static llmsim_status files_alloc(st_checkpoint *c, int nfiles, diag *e)
{
    c->paths = calloc((size_t)nfiles, sizeof *c->paths);
    c->fds = malloc((size_t)nfiles * sizeof *c->fds);
    c->file_bytes = calloc((size_t)nfiles, sizeof *c->file_bytes);
    for (int i = 0; c->fds && i < nfiles; i++)
        c->fds[i] = -1;
    c->nfiles = nfiles;
    if (!c->paths || !c->fds || !c->file_bytes)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    return LLMSIM_OK;
}

static llmsim_status open_single(const char *path, st_checkpoint *c, diag *e)
{
    llmsim_status st = files_alloc(c, 1, e);
    if (st)
        return st;
    if (!(c->paths[0] = strdup(path)))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    if ((st = open_file(path, "", &c->fds[0], &c->file_bytes[0], e)))
        return st;
    return parse_file(c->fds[0], c->file_bytes[0], path, &c->tensors, &c->ntensors, e);
}

static char *path_join(const char *dir, size_t dirlen, const char *name)
{
    size_t n = strlen(name);
    char *p = malloc(dirlen + n + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, dirlen);
    p[dirlen] = '/';
    memcpy(p + dirlen + 1, name, n + 1);
    return p;
}

static llmsim_status read_small_file(const char *path, char **text, size_t *len, diag *e)
{
    int fd;
    uint64_t bytes;
    *text = NULL;
    llmsim_status st = open_file(path, "", &fd, &bytes, e);
    if (st)
        return st;
    if (bytes > ST_MAX_HEADER_BYTES) {
        close(fd);
        return BAD(e, path, "%llu bytes is above the limit of %u MiB for an index",
                   (unsigned long long)bytes, ST_MAX_HEADER_BYTES >> 20);
    }
    *text = malloc((size_t)bytes + 1);
    if (!*text) {
        close(fd);
        return diag_set(e, LLMSIM_EFAIL, "%s: out of memory", path);
    }
    st = read_at(fd, *text, bytes, 0, path, e);
    close(fd);
    (*text)[bytes] = '\0';
    *len = (size_t)bytes;
    return st;
}

/* The directory of the index at `path`, which shard names are relative to:
 * *dir and its length (".", or "" for an index in "/"). */
static void index_dir(const char *path, const char **dir, size_t *dirlen)
{
    const char *slash = strrchr(path, '/');
    *dir = slash ? path : ".";
    *dirlen = slash ? (size_t)(slash - path) : 1;
    if (slash && *dirlen == 0)
        *dir = ""; /* the index is in "/" */
}

/* Open and parse every shard of index x (at `path`): c's files, and each
 * shard's tensors in parts[i] (counts[i] of them); *total tensors in all,
 * *name_bytes of their names with the NULs. */
static llmsim_status shards_open(st_checkpoint *c, const st_index *x, const char *path,
                                 st_tensor **parts, size_t *counts, size_t *total,
                                 size_t *name_bytes, diag *e)
{
    const char *dir;
    size_t dirlen;
    index_dir(path, &dir, &dirlen);
    char what[512];
    snprintf(what, sizeof what, "%s: shard ", path);
    llmsim_status st;
    *total = *name_bytes = 0;
    for (int i = 0; i < x->nshards; i++) {
        if (!(c->paths[i] = path_join(dir, dirlen, x->shards[i])))
            return diag_set(e, LLMSIM_EFAIL, "out of memory");
        if ((st = open_file(c->paths[i], what, &c->fds[i], &c->file_bytes[i], e)) ||
            (st = parse_file(c->fds[i], c->file_bytes[i], c->paths[i], &parts[i], &counts[i], e)))
            return st;
        *total += counts[i];
        for (size_t k = 0; k < counts[i]; k++)
            *name_bytes += strlen(parts[i][k].name) + 1;
    }
    return LLMSIM_OK;
}

/* The shards' tables merged into c's one table, sorted by name (each
 * tensor's file its shard); a tensor in two shards is an error. */
static llmsim_status shards_merge(st_checkpoint *c, int nshards, st_tensor *const *parts,
                                  const size_t *counts, size_t total, size_t name_bytes,
                                  const char *path, diag *e)
{
    char *pool;
    c->tensors = table_alloc(total, name_bytes, &pool);
    if (!c->tensors)
        return diag_set(e, LLMSIM_EFAIL, "%s: out of memory for %zu tensors", path, total);
    size_t m = 0;
    for (int i = 0; i < nshards; i++)
        for (size_t k = 0; k < counts[i]; k++, m++) {
            st_tensor *t = &c->tensors[m];
            *t = parts[i][k];
            size_t l = strlen(t->name) + 1;
            t->name = memcpy(pool, t->name, l);
            pool += l;
            t->file = i;
        }
    c->ntensors = total;
    qsort(c->tensors, total, sizeof *c->tensors, cmp_name);
    char q[QUOTE_BYTES];
    for (size_t k = 1; k < total; k++) {
        const st_tensor *a = &c->tensors[k - 1], *b = &c->tensors[k];
        if (strcmp(a->name, b->name) == 0) {
            int fa = a->file < b->file ? a->file : b->file, fb = a->file ^ b->file ^ fa;
            return BAD(e, path, "tensor '%s' is in two shards, %s and %s", qname(q, a->name),
                       c->paths[fa], c->paths[fb]);
        }
    }
    return LLMSIM_OK;
}

/* Every tensor index x lists is in the shard it says. */
static llmsim_status index_places_check(const st_checkpoint *c, const st_index *x,
                                        const char *path, diag *e)
{
    char q[QUOTE_BYTES];
    for (size_t k = 0; k < x->nentries; k++) {
        const st_index_entry *en = &x->entries[k];
        const st_tensor *t = st_find(c, en->name);
        if (!t || t->file != en->shard)
            return BAD(e, path, "the index puts tensor '%s' in %s, but %s%s", qname(q, en->name),
                       c->paths[en->shard], t ? "it is in " : "no shard holds it",
                       t ? c->paths[t->file] : "");
    }
    return LLMSIM_OK;
}

static llmsim_status open_index(const char *path, st_checkpoint *c, diag *e)
{
    char *text = NULL;
    size_t len = 0, total = 0, name_bytes = 0;
    st_index x;
    memset(&x, 0, sizeof x);
    st_tensor **parts = NULL;
    size_t *counts = NULL;
    llmsim_status st = read_small_file(path, &text, &len, e);
    if (st || (st = st_index_parse(text, len, path, &x, e)))
        goto out;
    if ((st = files_alloc(c, x.nshards, e)))
        goto out;
    parts = calloc((size_t)x.nshards, sizeof *parts);
    counts = calloc((size_t)x.nshards, sizeof *counts);
    if (!parts || !counts) {
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
        goto out;
    }
    if (!(st = shards_open(c, &x, path, parts, counts, &total, &name_bytes, e)) &&
        !(st = shards_merge(c, x.nshards, parts, counts, total, name_bytes, path, e)))
        st = index_places_check(c, &x, path, e);
out:
    if (parts)
        for (int i = 0; i < x.nshards; i++)
            free(parts[i]);
    free(parts);
    free(counts);
    st_index_free(&x);
    free(text);
    return st;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool is_regular(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

llmsim_status st_open(const char *path, st_checkpoint *out, diag *e)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return diag_set(e, LLMSIM_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    llmsim_status st;
    if (S_ISDIR(sb.st_mode)) {
        size_t dl = strlen(path);
        while (dl > 1 && path[dl - 1] == '/')
            dl--;
        char *single = path_join(path, dl, "model.safetensors");
        char *index = path_join(path, dl, "model.safetensors.index.json");
        if (!single || !index)
            st = diag_set(e, LLMSIM_EFAIL, "out of memory");
        else if (is_regular(single))
            st = open_single(single, out, e);
        else if (is_regular(index))
            st = open_index(index, out, e);
        else
            st = BAD(e, path, "a directory with neither model.safetensors nor "
                     "model.safetensors.index.json; give a .safetensors file or an index");
        free(single);
        free(index);
    } else if (ends_with(path, ".json")) {
        st = open_index(path, out, e);
    } else {
        st = open_single(path, out, e);
    }
    if (st)
        st_close(out);
    return st;
}

void st_close(st_checkpoint *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nfiles; i++) {
        if (c->fds && c->fds[i] >= 0)
            close(c->fds[i]);
        if (c->paths)
            free(c->paths[i]);
    }
    free(c->paths);
    free(c->fds);
    free(c->file_bytes);
    free(c->tensors);
    memset(c, 0, sizeof *c);
}

const st_tensor *st_find(const st_checkpoint *c, const char *name)
{
    size_t lo = 0, hi = c->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(name, c->tensors[mid].name);
        if (r == 0)
            return &c->tensors[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

llmsim_status st_read(const st_checkpoint *c, const st_tensor *t, void *dst, diag *e)
{
    assert(t->file >= 0 && t->file < c->nfiles);
    return read_at(c->fds[t->file], dst, t->nbytes, t->offset, c->paths[t->file], e);
}

llmsim_status st_read_f32(const st_checkpoint *c, const st_tensor *t, float *dst, diag *e)
{
    uint64_t n = st_tensor_numel(t);
    switch (t->dtype) {
    case ST_F32:
        return st_read(c, t, dst, e);
    case ST_F16:
    case ST_BF16: {
        /* read the 2-byte values into the upper half of dst, then widen
         * front to back: element i is read before float i overwrites it */
        unsigned char *raw = (unsigned char *)dst + 2 * n;
        llmsim_status st = st_read(c, t, raw, e);
        if (st)
            return st;
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, raw + 2 * i, 2);
            dst[i] = t->dtype == ST_F16 ? half_f16_to_f32(h) : half_bf16_to_f32(h);
        }
        return LLMSIM_OK;
    }
    default: {
        char q[QUOTE_BYTES];
        return BAD(e, c->paths[t->file], "tensor '%s' is %s; only F16, BF16 and F32 tensors "
                   "can be read as fp32", qname(q, t->name), st_dtype_name(t->dtype));
    }
    }
}

// ---- the writer

/* Append s as a JSON string, escaped as serde_json does. */
static void json_string(strbuf *b, const char *s)
{
    strbuf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': strbuf_puts(b, "\\\""); break;
        case '\\': strbuf_puts(b, "\\\\"); break;
        case '\b': strbuf_puts(b, "\\b"); break;
        case '\f': strbuf_puts(b, "\\f"); break;
        case '\n': strbuf_puts(b, "\\n"); break;
        case '\r': strbuf_puts(b, "\\r"); break;
        case '\t': strbuf_puts(b, "\\t"); break;
        default:
            if (*p < 0x20) {
                strbuf_printf(b, "\\u%04x", *p);
            } else {
                char ch[2] = {(char)*p, '\0'};
                strbuf_puts(b, ch);
            }
        }
    }
    strbuf_puts(b, "\"");
}

static int cmp_wname(const void *a, const void *b)
{
    return strcmp((*(const st_write_tensor *const *)a)->name,
                  (*(const st_write_tensor *const *)b)->name);
}

/* The reference writer's order: its Dtype enum descending (which orders
 * element sizes descending), then by name. */
static int cmp_wlayout(const void *a, const void *b)
{
    static const int rank[ST_NDTYPES] = {
        [ST_BOOL] = 0, [ST_U8] = 1, [ST_I8] = 2,  [ST_I16] = 3, [ST_F16] = 4,
        [ST_BF16] = 5, [ST_I32] = 6, [ST_F32] = 7, [ST_F64] = 8, [ST_I64] = 9,
    };
    const st_write_tensor *x = *(const st_write_tensor *const *)a;
    const st_write_tensor *y = *(const st_write_tensor *const *)b;
    if (rank[x->dtype] != rank[y->dtype])
        return rank[x->dtype] > rank[y->dtype] ? -1 : 1;
    return strcmp(x->name, y->name);
}

static llmsim_status write_check(const st_write_tensor *t, uint64_t *nbytes, const char *path,
                                 diag *e)
{
    char q[QUOTE_BYTES];
    const char *why;
    if (!t->name)
        return BAD(e, path, "a tensor without a name");
    const char *tn = qname(q, t->name);
    if (text_check((const unsigned char *)t->name, strlen(t->name), true, &why) <
        strlen(t->name))
        return BAD(e, path, "tensor '%s': the name is not UTF-8", tn);
    if (strcmp(t->name, "__metadata__") == 0)
        return BAD(e, path, "\"__metadata__\" is reserved and cannot name a tensor");
    if (st_dtype_size(t->dtype) == 0)
        return BAD(e, path, "tensor '%s': unknown dtype %d", tn, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > ST_MAX_DIMS || (t->ndim > 0 && !t->shape))
        return BAD(e, path, "tensor '%s': %d dimensions; a tensor has 0 to %d", tn, t->ndim,
                   ST_MAX_DIMS);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || (double)t->shape[i] >= ST_EXACT_LIMIT ||
            __builtin_mul_overflow(numel, (uint64_t)t->shape[i], &numel))
            return BAD(e, path, "tensor '%s': dimension %d is %lld; dimensions are non-negative "
                       "and the size must fit in 2^53 bytes", tn, i, (long long)t->shape[i]);
    }
    if (__builtin_mul_overflow(numel, (uint64_t)st_dtype_size(t->dtype), nbytes) ||
        (double)*nbytes >= ST_EXACT_LIMIT)
        return BAD(e, path, "tensor '%s': more than 2^53 bytes", tn);
    if (*nbytes > 0 && !t->data)
        return BAD(e, path, "tensor '%s': no data for %llu bytes", tn,
                   (unsigned long long)*nbytes);
    return LLMSIM_OK;
}

/* The n tensors checked (write_check, their bytes into nbytes, 2^53 in
 * all at most, no name twice) and put in layout order into order. */
static llmsim_status write_order(const st_write_tensor *t, size_t n, const char *path,
                                 const st_write_tensor **order, uint64_t *nbytes, diag *e)
{
    llmsim_status st;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        order[i] = &t[i];
        if ((st = write_check(&t[i], &nbytes[i], path, e)))
            return st;
        total += nbytes[i]; /* each is below 2^53: no overflow */
        if ((double)total >= ST_EXACT_LIMIT)
            return BAD(e, path, "more than 2^53 bytes of tensors");
    }
    qsort(order, n, sizeof *order, cmp_wname);
    for (size_t i = 1; i < n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            char q[QUOTE_BYTES];
            return BAD(e, path, "tensor '%s' is given twice", qname(q, order[i]->name));
        }
    qsort(order, n, sizeof *order, cmp_wlayout);
    return LLMSIM_OK;
}

/* The JSON header of the tensors in layout order (order; t for their
 * bytes), padded with spaces to a multiple of 8 bytes. */
static llmsim_status write_header(const st_write_tensor *t, size_t n,
                                  const st_write_tensor *const *order, const uint64_t *nbytes,
                                  const char *path, strbuf *h, diag *e)
{
    uint64_t off = 0;
    strbuf_puts(h, "{");
    for (size_t i = 0; i < n; i++) {
        const st_write_tensor *x = order[i];
        uint64_t b = nbytes[x - t];
        if (i)
            strbuf_puts(h, ",");
        json_string(h, x->name);
        strbuf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(x->dtype));
        for (int d = 0; d < x->ndim; d++)
            strbuf_printf(h, "%s%lld", d ? "," : "", (long long)x->shape[d]);
        strbuf_printf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                      (unsigned long long)(off + b));
        off += b;
    }
    strbuf_puts(h, "}");
    while (!h->failed && h->len % 8)
        strbuf_puts(h, " ");
    if (h->failed)
        return diag_set(e, LLMSIM_EFAIL, "%s: out of memory for the header", path);
    return LLMSIM_OK;
}

llmsim_status st_write(const char *path, const st_write_tensor *t, size_t n, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    const st_write_tensor **order = malloc((n ? n : 1) * sizeof *order);
    uint64_t *nbytes = malloc((n ? n : 1) * sizeof *nbytes);
    strbuf h = {0};
    if (!order || !nbytes) {
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
        goto out;
    }
    if ((st = write_order(t, n, path, order, nbytes, e)) ||
        (st = write_header(t, n, order, nbytes, path, &h, e)))
        goto out;
    atomicfile a;
    if ((st = atomicfile_open(&a, path, "safetensors file", e)))
        goto out;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    fwrite(len8, 1, 8, a.f);
    fwrite(h.data, 1, h.len, a.f);
    for (size_t i = 0; i < n; i++)
        if (nbytes[order[i] - t])
            fwrite(order[i]->data, 1, (size_t)nbytes[order[i] - t], a.f);
    st = atomicfile_commit(&a, "safetensors file", e);
out:
    strbuf_free(&h);
    free(order);
    free(nbytes);
    return st;
}
