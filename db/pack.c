/* pack — see pack.h. */
#include "db/pack.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define PACK_MAGIC "LPK1"
#define PACK_HEAD 8 /* magic, raw length */
#define PACK_MAX_NAMES 255

// ---- writing

/* Room for `more` bytes at the end of the payload. */
static uint8_t *put_room(pack_writer *w, size_t more)
{
    if (w->oom)
        return NULL;
    if (w->len + more > w->cap || !w->buf) {
        size_t cap = w->cap ? w->cap : 1u << 16;
        while (cap < w->len + more)
            cap *= 2;
        uint8_t *p = realloc(w->buf, cap);
        if (!p) {
            w->oom = true;
            return NULL;
        }
        w->buf = p;
        w->cap = cap;
    }
    uint8_t *at = w->buf + w->len;
    w->len += more;
    return at;
}

/* A length over PACK_TEXT_MAX poisons the writer (pack_finish reports it). */
static bool put_len(pack_writer *w, size_t n, uint8_t *at)
{
    if (n > PACK_TEXT_MAX) {
        w->oom = true;
        return false;
    }
    *at = (uint8_t)n;
    return true;
}

void pack_put_texts(pack_writer *w, const void *base, size_t stride, size_t n)
{
    const char *prev = "";
    size_t plen = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = (const char *)base + i * stride;
        size_t len = strlen(t), k = 0;
        while (k < plen && k < len && prev[k] == t[k])
            k++;
        uint8_t *at = put_room(w, 2 + len - k);
        if (!at || !put_len(w, k, at) || !put_len(w, len - k, at + 1))
            return;
        memcpy(at + 2, t + k, len - k);
        prev = t;
        plen = len;
    }
}

void pack_put_names(pack_writer *w, const void *base, size_t stride, size_t n)
{
    const char *names[PACK_MAX_NAMES];
    size_t count = 0;
    uint8_t *idx = malloc(n ? n : 1);
    if (!idx) {
        w->oom = true;
        return;
    }
    size_t last = 0;
    for (size_t i = 0; i < n && !w->oom; i++) {
        const char *t = *(const char *const *)((const char *)base + i * stride);
        if (!(count && (names[last] == t || strcmp(names[last], t) == 0))) {
            last = 0;
            while (last < count && strcmp(names[last], t) != 0)
                last++;
            if (last == count) {
                if (count == PACK_MAX_NAMES || strlen(t) > PACK_TEXT_MAX)
                    w->oom = true;
                else
                    names[count++] = t;
            }
        }
        idx[i] = (uint8_t)last;
    }
    uint8_t *at = w->oom ? NULL : put_room(w, 1);
    if (at) {
        *at = (uint8_t)count;
        for (size_t k = 0; k < count && at; k++) {
            size_t len = strlen(names[k]) + 1;
            if ((at = put_room(w, len)))
                memcpy(at, names[k], len);
        }
        if (at && (at = put_room(w, n)))
            memcpy(at, idx, n);
    }
    free(idx);
}

void pack_put_f64(pack_writer *w, const void *base, size_t stride, size_t n)
{
    uint8_t *at = put_room(w, 8 * n);
    if (!at)
        return;
    uint8_t *p[8];
    for (int k = 0; k < 8; k++)
        p[k] = at + (size_t)k * n;
    /* one pass, eight sequential streams, constant shifts */
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        memcpy(&v, (const char *)base + i * stride, sizeof v);
        uint64_t b = v - prev; /* the difference of neighbours' bits: see pack.h */
        prev = v;
        p[0][i] = (uint8_t)b;
        p[1][i] = (uint8_t)(b >> 8);
        p[2][i] = (uint8_t)(b >> 16);
        p[3][i] = (uint8_t)(b >> 24);
        p[4][i] = (uint8_t)(b >> 32);
        p[5][i] = (uint8_t)(b >> 40);
        p[6][i] = (uint8_t)(b >> 48);
        p[7][i] = (uint8_t)(b >> 56);
    }
}

llmsim_status pack_finish(pack_writer *w, uint8_t **blob, size_t *len, diag *e)
{
    *blob = NULL;
    *len = 0;
    llmsim_status st = LLMSIM_OK;
    if (w->oom)
        st = diag_set(e, LLMSIM_EFAIL, "packing rows: out of memory, or a name or id over %d bytes",
                      PACK_TEXT_MAX);
    else if (w->len > PACK_MAX_RAW)
        st = diag_set(e, LLMSIM_EFAIL, "packing rows: a chunk of %zu bytes is over the limit", w->len);
    uLongf clen = compressBound((uLong)w->len);
    uint8_t *out = st ? NULL : malloc(PACK_HEAD + clen);
    if (!st && !out)
        st = diag_set(e, LLMSIM_EFAIL, "packing rows: out of memory");
    /* level 1: most of the gain (the planes of a double column, the shared
     * prefixes of ids) at several times the speed of the default */
    if (!st && compress2(out + PACK_HEAD, &clen, w->buf, (uLong)w->len, 1) != Z_OK)
        st = diag_set(e, LLMSIM_EFAIL, "packing rows: zlib failed");
    if (!st) {
        memcpy(out, PACK_MAGIC, 4);
        for (int k = 0; k < 4; k++)
            out[4 + k] = (uint8_t)(w->len >> (8 * k));
        *blob = out;
        *len = PACK_HEAD + clen;
        out = NULL;
    }
    free(out);
    w->len = 0;
    w->oom = false;
    return st;
}

void pack_writer_free(pack_writer *w)
{
    free(w->buf);
    *w = (pack_writer){0};
}

static void *pack_job_run(void *arg)
{
    pack_job *j = arg;
    j->st = pack_finish(j->w, &j->blob, &j->len, &j->e);
    return NULL;
}

void pack_job_start(pack_job *j, pack_writer *w)
{
    *j = (pack_job){.w = w, .started = true};
    diag_clear(&j->e);
    j->threaded = pthread_create(&j->thread, NULL, pack_job_run, j) == 0;
    if (!j->threaded)
        pack_job_run(j);
}

llmsim_status pack_job_wait(pack_job *j, uint8_t **blob, size_t *len, diag *e)
{
    *blob = NULL;
    *len = 0;
    if (!j->started)
        return LLMSIM_OK;
    if (j->threaded)
        pthread_join(j->thread, NULL);
    j->started = false;
    if (j->st != LLMSIM_OK)
        return diag_set(e, j->st, "%s", j->e.msg);
    *blob = j->blob;
    *len = j->len;
    return LLMSIM_OK;
}

// ---- reading

llmsim_status pack_open(const void *blob, size_t len, const char *what, pack_reader *r, diag *e)
{
    *r = (pack_reader){0};
    const uint8_t *b = blob;
    if (!b || len < PACK_HEAD || memcmp(b, PACK_MAGIC, 4) != 0)
        return diag_set(e, LLMSIM_EINPUT, "%s is damaged (not a packed chunk)", what);
    size_t raw = 0;
    for (int k = 0; k < 4; k++)
        raw |= (size_t)b[4 + k] << (8 * k);
    if (raw > PACK_MAX_RAW)
        return diag_set(e, LLMSIM_EINPUT, "%s is damaged (a chunk of %zu bytes)", what, raw);
    r->buf = malloc(raw ? raw : 1);
    if (!r->buf)
        return diag_set(e, LLMSIM_EFAIL, "reading %s: out of memory", what);
    uLongf got = (uLongf)raw;
    int rc = uncompress(r->buf, &got, b + PACK_HEAD, (uLong)(len - PACK_HEAD));
    if (rc == Z_MEM_ERROR) {
        pack_reader_free(r);
        return diag_set(e, LLMSIM_EFAIL, "reading %s: out of memory", what);
    }
    if (rc != Z_OK || got != raw) {
        pack_reader_free(r);
        return diag_set(e, LLMSIM_EINPUT, "%s is damaged (its zlib stream does not inflate)", what);
    }
    r->len = raw;
    return LLMSIM_OK;
}

/* The next `n` bytes, or NULL (and the reader failed) when there are fewer. */
static const uint8_t *get_bytes(pack_reader *r, size_t n)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *at = r->buf + r->pos;
    r->pos += n;
    return at;
}

static void put_field(char *dst, size_t field, const char *src, size_t len)
{
    if (len >= field)
        len = field - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

bool pack_get_texts(pack_reader *r, void *base, size_t stride, size_t field, size_t n)
{
    char prev[PACK_TEXT_MAX + 1];
    size_t plen = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *h = get_bytes(r, 2);
        if (!h || h[0] > plen)
            return !(r->bad = true);
        const uint8_t *rest = get_bytes(r, h[1]);
        if (!rest || (size_t)h[0] + h[1] > PACK_TEXT_MAX || memchr(rest, '\0', h[1]))
            return !(r->bad = true);
        memcpy(prev + h[0], rest, h[1]);
        plen = (size_t)h[0] + h[1];
        put_field((char *)base + i * stride, field, prev, plen);
    }
    return !r->bad;
}

bool pack_get_names(pack_reader *r, void *base, size_t stride, size_t field, size_t n)
{
    const uint8_t *c = get_bytes(r, 1);
    if (!c)
        return false;
    const char *names[PACK_MAX_NAMES];
    size_t lens[PACK_MAX_NAMES];
    for (size_t k = 0; k < *c; k++) {
        const uint8_t *start = r->buf + r->pos;
        size_t room = r->len - r->pos, len = 0;
        while (len < room && start[len] != '\0')
            len++;
        if (len == room || len > PACK_TEXT_MAX || !get_bytes(r, len + 1))
            return !(r->bad = true);
        names[k] = (const char *)start;
        lens[k] = len;
    }
    const uint8_t *idx = get_bytes(r, n);
    for (size_t i = 0; idx && i < n; i++) {
        if (idx[i] >= *c)
            return !(r->bad = true);
        put_field((char *)base + i * stride, field, names[idx[i]], lens[idx[i]]);
    }
    return !r->bad;
}

bool pack_get_f64(pack_reader *r, void *base, size_t stride, size_t n)
{
    if (n > SIZE_MAX / 8)
        return !(r->bad = true);
    const uint8_t *p = get_bytes(r, 8 * n);
    uint64_t bits = 0;
    for (size_t i = 0; p && i < n; i++) {
        uint64_t d = 0;
        for (int k = 0; k < 8; k++)
            d |= (uint64_t)p[(size_t)k * n + i] << (8 * k);
        bits += d;
        double v;
        memcpy(&v, &bits, sizeof v);
        memcpy((char *)base + i * stride, &v, sizeof v);
    }
    return !r->bad;
}

bool pack_done(const pack_reader *r) { return !r->bad && r->pos == r->len; }

void pack_reader_free(pack_reader *r)
{
    free(r->buf);
    *r = (pack_reader){0};
}
