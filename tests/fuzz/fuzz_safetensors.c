/*
 * fuzz_safetensors — libFuzzer target for the safetensors parsers.
 *
 * Each input is a whole file. st_parse_file_bytes reads its length field and
 * header exactly as st_open does; the same bytes also go through
 * st_index_parse as a model.safetensors.index.json. Besides "no crash, no
 * out-of-bounds access, no undefined behaviour" (ASan and UBSan), every
 * outcome is checked: a refusal is LLMSIM_EINPUT with a message that names
 * the input, and an accepted table satisfies what the engine relies on
 * (sorted unique names, each tensor inside the file, sizes consistent, no
 * overlaps), and survives a round trip: written with st_write, read back
 * with st_open, st_read and st_read_f32, it gives the same tensors and
 * bytes. A violation aborts, which libFuzzer reports as a crash.
 *
 * Built with -DLLMSIM_FUZZ_REPLAY the file also has a main() that runs every
 * file named on the command line (directories: every file in them) through
 * the target, so the committed corpus is a regression test on any compiler.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/half.h"
#include "exec/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz-input"

static void require(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_safetensors: invariant broken: %s\n", what);
        abort();
    }
}

/* A refusal names the input and says something. */
static void check_refusal(llmsim_status st, const diag *e)
{
    require(st == LLMSIM_EINPUT || st == LLMSIM_EFAIL, "status is EINPUT or EFAIL");
    require(e->status == st, "diag holds the returned status");
    require(memchr(e->msg, '\0', sizeof e->msg) != NULL, "message is terminated");
    require(strncmp(e->msg, NAME ": ", strlen(NAME) + 2) == 0, "message starts with the name");
}

static void check_table(const st_tensor *t, size_t n, const uint8_t *data, size_t size)
{
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | data[i];
    require(size >= 8 && hlen <= size - 8, "header inside the file");
    uint64_t data_start = 8 + hlen;
    for (size_t i = 0; i < n; i++) {
        require(t[i].name != NULL, "names are set");
        require(i == 0 || strcmp(t[i - 1].name, t[i].name) < 0, "names sorted and unique");
        require(t[i].file == 0, "file 0");
        require(st_dtype_size(t[i].dtype) > 0, "known dtype");
        require(t[i].ndim >= 0 && t[i].ndim <= ST_MAX_DIMS, "ndim in range");
        uint64_t numel = 1, nbytes;
        for (int d = 0; d < t[i].ndim; d++) {
            require(t[i].shape[d] >= 0, "non-negative dims");
            require(!__builtin_mul_overflow(numel, (uint64_t)t[i].shape[d], &numel),
                    "numel fits");
        }
        require(numel == st_tensor_numel(&t[i]), "st_tensor_numel");
        require(!__builtin_mul_overflow(numel, (uint64_t)st_dtype_size(t[i].dtype), &nbytes) &&
                    nbytes == t[i].nbytes, "nbytes = numel * dtype size");
        require(t[i].offset >= data_start, "data after the header");
        require(t[i].offset <= size && t[i].nbytes <= size - t[i].offset, "data inside the file");
    }
    /* no two non-empty tensors share a byte (quadratic, but inputs are small) */
    for (size_t i = 0; i < n && n <= 512; i++)
        for (size_t j = i + 1; j < n; j++)
            if (t[i].nbytes && t[j].nbytes)
                require(t[i].offset + t[i].nbytes <= t[j].offset ||
                        t[j].offset + t[j].nbytes <= t[i].offset, "no overlaps");
}

/* An accepted table, written with st_write and read back with st_open and
 * st_read, gives the same tensors and the same bytes. */
static void check_round_trip(const st_tensor *t, size_t n, const uint8_t *data)
{
    static char path[512];
    if (!path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/fuzz_safetensors.%ld.safetensors",
                 tmp && *tmp ? tmp : "/tmp", (long)getpid());
    }
    st_write_tensor *w = calloc(n ? n : 1, sizeof *w);
    require(w != NULL, "memory");
    for (size_t i = 0; i < n; i++)
        w[i] = (st_write_tensor){t[i].name, t[i].dtype, t[i].ndim, t[i].shape,
                                 data + t[i].offset};
    diag e;
    diag_clear(&e);
    llmsim_status st = st_write(path, w, n, &e);
    free(w);
    if (st == LLMSIM_EINPUT && strstr(e.msg, "not UTF-8"))
        return; /* a name decoded from an escape such as \udc00 that is no UTF-8 */
    require(st == LLMSIM_OK, "st_write accepts a parsed table");
    st_checkpoint c;
    require(st_open(path, &c, &e) == LLMSIM_OK, "st_open reads what st_write wrote");
    unlink(path);
    require(c.ntensors == n, "same number of tensors");
    for (size_t i = 0; i < n; i++) {
        const st_tensor *r = st_find(&c, t[i].name);
        require(r && r->dtype == t[i].dtype && r->ndim == t[i].ndim && r->nbytes == t[i].nbytes,
                "same tensor");
        require(memcmp(r->shape, t[i].shape, (size_t)r->ndim * sizeof r->shape[0]) == 0,
                "same shape");
        unsigned char *buf = malloc(r->nbytes * 2 + 1);
        require(buf != NULL, "memory");
        require(st_read(&c, r, buf, &e) == LLMSIM_OK, "st_read");
        require(memcmp(buf, data + t[i].offset, r->nbytes) == 0, "same bytes");
        if (r->dtype == ST_F16 || r->dtype == ST_BF16 || r->dtype == ST_F32) {
            float *f = (float *)(void *)buf; /* 2 * nbytes >= 4 * numel */
            require(st_read_f32(&c, r, f, &e) == LLMSIM_OK, "st_read_f32");
            for (uint64_t k = 0; k < st_tensor_numel(r); k++) {
                const uint8_t *p = data + t[i].offset + k * (uint64_t)st_dtype_size(r->dtype);
                uint16_t h = (uint16_t)(p[0] | p[1] << 8);
                float want = r->dtype == ST_F16    ? half_f16_to_f32(h)
                             : r->dtype == ST_BF16 ? half_bf16_to_f32(h)
                                                   : half_bits_f32((uint32_t)h |
                                                                   (uint32_t)p[2] << 16 |
                                                                   (uint32_t)p[3] << 24);
                require(half_f32_bits(f[k]) == half_f32_bits(want), "st_read_f32 values");
            }
        }
        free(buf);
    }
    st_close(&c);
}

static void check_index(const st_index *x)
{
    require(x->nshards >= 1 && x->nentries >= 1, "an index names shards and tensors");
    for (int i = 0; i < x->nshards; i++) {
        require(x->shards[i] && x->shards[i][0] && x->shards[i][0] != '/', "relative shard");
        const char *s = x->shards[i];
        size_t l = strlen(s);
        require(strcmp(s, "..") != 0 && strncmp(s, "../", 3) != 0 && !strstr(s, "/../") &&
                    !(l >= 3 && strcmp(s + l - 3, "/..") == 0), "no .. component");
        require(strcmp(s, ".") != 0 && strncmp(s, "./", 2) != 0 && !strstr(s, "/./") &&
                    !strstr(s, "//") && s[l - 1] != '/' &&
                    !(l >= 2 && strcmp(s + l - 2, "/.") == 0), "no . or empty component");
        require(i == 0 || strcmp(x->shards[i - 1], x->shards[i]) < 0, "shards sorted, unique");
    }
    for (size_t i = 0; i < x->nentries; i++) {
        require(x->entries[i].shard >= 0 && x->entries[i].shard < x->nshards, "shard in range");
        require(i == 0 || strcmp(x->entries[i - 1].name, x->entries[i].name) < 0,
                "entries sorted, unique");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    diag e;
    diag_clear(&e);
    st_tensor *t = NULL;
    size_t n = 0;
    llmsim_status st = st_parse_file_bytes(data, size, NAME, &t, &n, &e);
    if (st == LLMSIM_OK) {
        check_table(t, n, data, size);
        check_round_trip(t, n, data);
    }
    else {
        require(t == NULL && n == 0, "no table on failure");
        check_refusal(st, &e);
    }
    free(t);

    diag_clear(&e);
    st_index x;
    st = st_index_parse((const char *)data, size, NAME, &x, &e);
    if (st == LLMSIM_OK)
        check_index(&x);
    else {
        require(x.nshards == 0 && x.shards == NULL && x.entries == NULL, "no index on failure");
        check_refusal(st, &e);
    }
    st_index_free(&x);
    return 0;
}

#ifdef LLMSIM_FUZZ_REPLAY
#include "replay.h"
#endif
