/*
 * test_safetensors — exec/safetensors: the writer and the reader agree bit for
 * bit, fp32 conversion, sharded checkpoints, and every malformed input is
 * refused with LLMSIM_EINPUT and a message that names the file.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec/half.h"
#include "exec/safetensors.h"
#include "tap.h"

static char dir[256];

static const char *tmp(const char *name)
{
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

/* A safetensors file by hand: length field `len`, the header text, then
 * `data_bytes` bytes 0, 1, 2, ... */
static void write_raw_len(const char *path, unsigned long long len, const char *header,
                          size_t data_bytes)
{
    size_t h = strlen(header);
    unsigned char *buf = malloc(8 + h + data_bytes + 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(len >> (8 * i));
    memcpy(buf + 8, header, h);
    for (size_t i = 0; i < data_bytes; i++)
        buf[8 + h + i] = (unsigned char)i;
    write_bytes(path, buf, 8 + h + data_bytes);
    free(buf);
}

static void write_raw(const char *path, const char *header, size_t data_bytes)
{
    write_raw_len(path, strlen(header), header, data_bytes);
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text));
}

/* Opening `path` fails with LLMSIM_EINPUT, and the message names `file` and
 * contains `what`. */
static void expect_bad(const char *path, const char *file, const char *what, const char *label)
{
    st_checkpoint c;
    diag e;
    diag_clear(&e);
    llmsim_status st = st_open(path, &c, &e);
    if (getenv("LLMSIM_TEST_VERBOSE")) /* to read the messages */
        printf("# %s: %s\n", label, e.msg);
    CHECK(st == LLMSIM_EINPUT, "%s: status %d, want EINPUT (%s)", label, st, e.msg);
    CHECK(strstr(e.msg, file) != NULL, "%s: message does not name %s: %s", label, file, e.msg);
    CHECK(strstr(e.msg, what) != NULL, "%s: message lacks '%s': %s", label, what, e.msg);
    CHECK(c.ntensors == 0 && c.tensors == NULL && c.nfiles == 0, "%s: *out not zeroed", label);
    st_close(&c);
}

/* The whole file, *n bytes; NULL (and *n 0) when it cannot be read. */
static unsigned char *read_file(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (!buf) {
        fclose(f);
        return NULL;
    }
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

// ---- the writer and the reader agree

enum { NSAMPLE = 11 };

static void test_round_trip(void)
{
    static uint16_t f16[6], bf16[6];
    static float f32[2][3][4];
    static double f64[5] = {1.5, -2.25, 1e300, -0.0, 3.0};
    static int64_t i64[3] = {INT64_MIN, -1, INT64_MAX};
    static int32_t i32[4] = {INT32_MIN, 0, 7, INT32_MAX};
    static int16_t i16[2] = {-32768, 32767};
    static int8_t i8[3] = {-128, 0, 127};
    static uint8_t u8[7] = {0, 1, 2, 3, 250, 254, 255};
    static uint8_t bools[3] = {1, 0, 1};
    float scalar = 42.0f;
    for (int i = 0; i < 6; i++) {
        f16[i] = half_f32_to_f16((float)i * 0.5f - 1.0f);
        bf16[i] = half_f32_to_bf16((float)i * 3.0f - 7.0f);
    }
    for (int i = 0; i < 24; i++)
        (&f32[0][0][0])[i] = (float)i / 7.0f;
    int64_t s_f16[] = {2, 3}, s_bf16[] = {6}, s_f32[] = {2, 3, 4}, s_f64[] = {5}, s_i64[] = {3},
            s_i32[] = {2, 2}, s_i16[] = {2}, s_i8[] = {3, 1}, s_u8[] = {7}, s_bool[] = {3},
            s_empty[] = {0, 3};
    st_write_tensor w[NSAMPLE] = {
        {"model.embed.weight", ST_F16, 2, s_f16, f16},
        {"bf", ST_BF16, 1, s_bf16, bf16},
        {"layers.0.attn.q", ST_F32, 3, s_f32, f32},
        {"f64", ST_F64, 1, s_f64, f64},
        {"i64", ST_I64, 1, s_i64, i64},
        {"i32", ST_I32, 2, s_i32, i32},
        {"i16", ST_I16, 1, s_i16, i16},
        {"i8", ST_I8, 2, s_i8, i8},
        {"u8 \"quoted\"\\ and \xc3\xa9", ST_U8, 1, s_u8, u8},
        {"mask", ST_BOOL, 1, s_bool, bools},
        {"empty", ST_F32, 2, s_empty, NULL},
    };
    const char *path = tmp("all.safetensors");
    diag e;
    diag_clear(&e);
    CHECK(st_write(path, w, NSAMPLE, &e) == LLMSIM_OK, "st_write: %s", e.msg);

    /* scalars (ndim 0) hold one element */
    st_write_tensor ws = {"scalar", ST_F32, 0, NULL, &scalar};
    CHECK(st_write(tmp("scalar.safetensors"), &ws, 1, &e) == LLMSIM_OK, "scalar: %s", e.msg);

    st_checkpoint c;
    CHECK(st_open(path, &c, &e) == LLMSIM_OK, "st_open: %s", e.msg);
    CHECK(c.nfiles == 1 && c.ntensors == NSAMPLE, "%d files, %zu tensors", c.nfiles, c.ntensors);
    for (size_t i = 1; i < c.ntensors; i++)
        CHECK(strcmp(c.tensors[i - 1].name, c.tensors[i].name) < 0, "tensors sorted by name");
    /* the header is padded to 8 bytes, so every tensor is aligned to its element */
    for (size_t i = 0; i < c.ntensors; i++) {
        const st_tensor *t = &c.tensors[i];
        CHECK(t->offset % (uint64_t)st_dtype_size(t->dtype) == 0, "%s at %llu is not aligned",
              t->name, (unsigned long long)t->offset);
    }
    for (int i = 0; i < NSAMPLE; i++) {
        const st_tensor *t = st_find(&c, w[i].name);
        CHECK(t != NULL, "st_find(%s)", w[i].name);
        if (!t)
            continue;
        CHECK(t->dtype == w[i].dtype && t->ndim == w[i].ndim, "%s: dtype/ndim", w[i].name);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            CHECK(t->shape[d] == w[i].shape[d], "%s: dim %d", w[i].name, d);
            numel *= (uint64_t)w[i].shape[d];
        }
        CHECK(st_tensor_numel(t) == numel, "%s: numel", w[i].name);
        CHECK(t->nbytes == numel * (uint64_t)st_dtype_size(w[i].dtype), "%s: nbytes", w[i].name);
        unsigned char *got = malloc(t->nbytes + 1);
        CHECK(st_read(&c, t, got, &e) == LLMSIM_OK, "st_read(%s): %s", w[i].name, e.msg);
        CHECK(t->nbytes == 0 || memcmp(got, w[i].data, t->nbytes) == 0, "%s: bytes differ",
              w[i].name);
        free(got);
    }
    CHECK(st_find(&c, "missing") == NULL && st_find(&c, "") == NULL, "absent names");
    st_close(&c);
    st_close(&c); /* twice is harmless */

    /* the output does not depend on the order of the tensors */
    st_write_tensor rev[NSAMPLE];
    for (int i = 0; i < NSAMPLE; i++)
        rev[i] = w[NSAMPLE - 1 - i];
    CHECK(st_write(tmp("rev.safetensors"), rev, NSAMPLE, &e) == LLMSIM_OK, "%s", e.msg);
    size_t na, nb;
    unsigned char *a = read_file(path, &na), *b = read_file(tmp("rev.safetensors"), &nb);
    CHECK(a && b && na == nb && memcmp(a, b, na) == 0, "output depends on the input order");
    /* the same bytes through the in-memory parser */
    st_tensor *pt;
    size_t pn;
    CHECK(st_parse_file_bytes(a, na, "mem", &pt, &pn, &e) == LLMSIM_OK && pn == NSAMPLE,
          "st_parse_file_bytes: %s", e.msg);
    free(pt);
    free(a);
    free(b);

    CHECK(st_open(tmp("scalar.safetensors"), &c, &e) == LLMSIM_OK, "%s", e.msg);
    const st_tensor *t = st_find(&c, "scalar");
    float got = 0;
    CHECK(t && t->ndim == 0 && st_tensor_numel(t) == 1 && t->nbytes == 4, "scalar tensor");
    CHECK(t && st_read_f32(&c, t, &got, &e) == LLMSIM_OK && got == 42.0f, "scalar value");
    st_close(&c);
}

/* The writer's bytes are those of the reference implementation, whose
 * serializer orders tensors by its Dtype enum, descending, then by name:
 * save_file({"a": zeros(1, uint8), "b": zeros(2, float32), "c": zeros(1, int32)})
 * puts b (F32) before c (I32) before a (U8). */
static void test_reference_layout(void)
{
    float zf[2] = {0, 0};
    uint8_t zu[1] = {0};
    int32_t zi[1] = {0};
    int64_t s2[] = {2}, s1[] = {1};
    st_write_tensor w[3] = {{"a", ST_U8, 1, s1, zu}, {"c", ST_I32, 1, s1, zi},
                            {"b", ST_F32, 1, s2, zf}};
    diag e;
    diag_clear(&e);
    CHECK(st_write(tmp("ref.safetensors"), w, 3, &e) == LLMSIM_OK, "%s", e.msg);
    size_t n;
    unsigned char *got = read_file(tmp("ref.safetensors"), &n);
    const char *want = "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"c\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                       "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[12,13]}}";
    size_t hl = strlen(want), padded = (hl + 7) / 8 * 8;
    CHECK(got && n == 8 + padded + 13, "file size %zu, want %zu", n, 8 + padded + 13);
    if (got && n == 8 + padded + 13) {
        CHECK(got[0] == padded && got[1] == 0 && got[7] == 0, "length field");
        CHECK(memcmp(got + 8, want, hl) == 0, "header: %.*s", (int)hl, (const char *)got + 8);
        for (size_t i = hl; i < padded; i++)
            CHECK(got[8 + i] == ' ', "padding is spaces");
    }
    free(got);
}

// ---- fp32 conversion

static void test_read_f32(void)
{
    float want[8] = {0.0f, -1.0f, 0.333251953125f, 65504.0f, -INFINITY, 5.9604644775390625e-08f,
                     1.0e-3f, 3.0f};
    uint16_t h[8], b[8];
    for (int i = 0; i < 8; i++) {
        h[i] = half_f32_to_f16(want[i]);
        b[i] = half_f32_to_bf16(want[i]);
    }
    int32_t ints[2] = {1, 2};
    int64_t s8[] = {2, 4}, s2[] = {2};
    st_write_tensor w[4] = {{"h", ST_F16, 2, s8, h}, {"b", ST_BF16, 2, s8, b},
                            {"f", ST_F32, 2, s8, want}, {"i", ST_I32, 1, s2, ints}};
    diag e;
    diag_clear(&e);
    const char *path = tmp("f32.safetensors");
    CHECK(st_write(path, w, 4, &e) == LLMSIM_OK, "%s", e.msg);
    st_checkpoint c;
    CHECK(st_open(path, &c, &e) == LLMSIM_OK, "%s", e.msg);
    float got[8];
    CHECK(st_read_f32(&c, st_find(&c, "h"), got, &e) == LLMSIM_OK, "%s", e.msg);
    for (int i = 0; i < 8; i++)
        CHECK(half_f32_bits(got[i]) == half_f32_bits(half_f16_to_f32(h[i])), "F16 %d: %g", i,
              (double)got[i]);
    CHECK(got[3] == 65504.0f && isinf(got[4]) && got[5] == ldexpf(1, -24), "F16 specials");
    CHECK(st_read_f32(&c, st_find(&c, "b"), got, &e) == LLMSIM_OK, "%s", e.msg);
    for (int i = 0; i < 8; i++)
        CHECK(half_f32_bits(got[i]) == half_f32_bits(half_bf16_to_f32(b[i])), "BF16 %d", i);
    CHECK(got[7] == 3.0f && got[1] == -1.0f, "BF16 exact values");
    CHECK(st_read_f32(&c, st_find(&c, "f"), got, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(memcmp(got, want, sizeof want) == 0, "F32 bit-exact");
    llmsim_status st = st_read_f32(&c, st_find(&c, "i"), got, &e);
    CHECK(st == LLMSIM_EINPUT && strstr(e.msg, path) && strstr(e.msg, "I32"),
          "I32 as fp32 is refused: %s", e.msg);
    st_close(&c);
}

// ---- sharded checkpoints

static void write_shards(const char *sub, const char *index)
{
    char d[512], p[600];
    snprintf(d, sizeof d, "%s/%s", dir, sub);
    mkdir(d, 0777);
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6}, c[3] = {7, 8, 9};
    int64_t s4[] = {4}, s2[] = {2}, s3[] = {3};
    st_write_tensor w1[2] = {{"a", ST_F32, 1, s4, a}, {"b", ST_F32, 1, s2, b}};
    st_write_tensor w2[1] = {{"c", ST_F32, 1, s3, c}};
    diag e;
    diag_clear(&e);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", d);
    CHECK(st_write(p, w1, 2, &e) == LLMSIM_OK, "%s", e.msg);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d);
    CHECK(st_write(p, w2, 1, &e) == LLMSIM_OK, "%s", e.msg);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    write_text(p, index);
}

static const char *good_index =
    "{\n  \"metadata\": {\"total_size\": 36},\n  \"weight_map\": {\n"
    "    \"c\": \"model-00002-of-00002.safetensors\",\n"
    "    \"a\": \"model-00001-of-00002.safetensors\",\n"
    "    \"b\": \"model-00001-of-00002.safetensors\"\n  }\n}\n";

static void test_sharded(void)
{
    write_shards("sharded", good_index);
    const char *opens[2] = {tmp("sharded/model.safetensors.index.json"), tmp("sharded/")};
    for (int k = 0; k < 2; k++) {
        st_checkpoint c;
        diag e;
        diag_clear(&e);
        CHECK(st_open(opens[k], &c, &e) == LLMSIM_OK, "%s: %s", opens[k], e.msg);
        CHECK(c.nfiles == 2 && c.ntensors == 3, "%d files, %zu tensors", c.nfiles, c.ntensors);
        const st_tensor *a = st_find(&c, "a"), *cc = st_find(&c, "c");
        CHECK(a && cc && a->file != cc->file, "tensors in both shards");
        if (a && cc) {
            CHECK(strstr(c.paths[a->file], "model-00001-of-00002") != NULL, "a's shard");
            CHECK(strstr(c.paths[cc->file], "model-00002-of-00002") != NULL, "c's shard");
            float got[4];
            CHECK(st_read_f32(&c, cc, got, &e) == LLMSIM_OK && got[0] == 7 && got[2] == 9,
                  "read from shard 2: %s", e.msg);
            CHECK(st_read_f32(&c, a, got, &e) == LLMSIM_OK && got[3] == 4, "read from shard 1");
        }
        st_close(&c);
    }

    /* a directory with a single model.safetensors */
    char d[512];
    snprintf(d, sizeof d, "%s/single", dir);
    mkdir(d, 0777);
    float v = 1;
    st_write_tensor w = {"x", ST_F32, 0, NULL, &v};
    diag e;
    diag_clear(&e);
    CHECK(st_write(tmp("single/model.safetensors"), &w, 1, &e) == LLMSIM_OK, "%s", e.msg);
    st_checkpoint c;
    CHECK(st_open(d, &c, &e) == LLMSIM_OK && st_find(&c, "x"), "directory: %s", e.msg);
    st_close(&c);
    expect_bad(dir, dir, "neither", "directory without a checkpoint");
}

// ---- malformed files

static void test_malformed(void)
{
    const char *p = tmp("bad.safetensors");
    const char *ok = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

    write_raw_len(p, 0, "{}", 8);
    expect_bad(p, p, "header length is 0", "header length 0");
    write_raw_len(p, 1000, ok, 8);
    expect_bad(p, p, "runs past the end of the file", "header length > file");
    write_raw_len(p, 1ull << 63, ok, 8);
    expect_bad(p, p, "9223372036854775808", "header length 2^63");
    write_bytes(p, "\x05\0\0", 3);
    expect_bad(p, p, "too short", "3-byte file");
    write_raw_len(p, 200ull << 20, "", 0);
    expect_bad(p, p, "runs past the end", "200 MiB header length in an empty file");

    write_raw(p, "{\"x\":{\"dtype\":\"F32\",, }}", 8);
    expect_bad(p, p, "invalid JSON near byte 21 (file offset 29): '{\"x\":{\"dtype\":\"F32\",, }}'", "invalid JSON");
    write_raw(p, "[1, 2]", 8);
    expect_bad(p, p, "not a JSON object", "JSON array");
    write_raw(p, "\"x\"", 0);
    expect_bad(p, p, "not a JSON object", "JSON string");
    write_raw(p, "{} x", 0);
    expect_bad(p, p, "after the JSON value", "trailing bytes");
    write_raw(p, "{\"\xff\":{}}", 0);
    expect_bad(p, p, "byte 2 (file offset 10) is not UTF-8", "not UTF-8");
    write_raw(p, "{\"a\x01\":{}}", 0);
    expect_bad(p, p, "control character", "raw control character");
    write_raw(p, "{\"x\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_bad(p, p, "unsupported dtype \"F17\"", "unknown dtype");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                 "\"data_offsets\":[0,8]}}", 8);
    expect_bad(p, p, "more than 2^64 bytes", "shape product overflow");
    write_raw(p, "{\"x\":{\"dtype\":\"F64\",\"shape\":[1125899906842624,4096],"
                 "\"data_offsets\":[0,8]}}", 8);
    expect_bad(p, p, "more than 2^64 bytes", "bytes overflow");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);
    expect_bad(p, p, "non-negative integers", "negative dim");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                 "\"data_offsets\":[0,4]}}", 8);
    expect_bad(p, p, "at most 8", "9 dims");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8);
    expect_bad(p, p, "non-negative integers", "fractional dim");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}", 8);
    expect_bad(p, p, "run past the end of the data", "offsets beyond the file");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8);
    expect_bad(p, p, "end before they begin", "end < begin");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8);
    expect_bad(p, p, "hold 4 bytes, but F32 [2] needs 8", "size mismatch");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8);
    expect_bad(p, p, "[begin, end]", "one offset");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],"
                 "\"dtype\":\"F16\"}}", 8);
    expect_bad(p, p, "\"dtype\" is given 2 times", "duplicate key in a tensor");
    write_raw(p, "{\"x\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_bad(p, p, "missing \"dtype\"", "missing dtype");
    write_raw(p, "{\"x\":[]}", 8);
    expect_bad(p, p, "expected an object", "tensor not an object");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    expect_bad(p, p, "overlap", "overlapping tensors");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16);
    expect_bad(p, p, "'x' is given twice", "duplicate tensor in one file");
    write_raw(p, "{\"__metadata__\":{\"format\":1}}", 0);
    expect_bad(p, p, "__metadata__", "metadata with a number");

    /* a valid file, cut short */
    float v[16] = {0};
    int64_t s16[] = {16};
    st_write_tensor w = {"v", ST_F32, 1, s16, v};
    diag e;
    diag_clear(&e);
    CHECK(st_write(p, &w, 1, &e) == LLMSIM_OK, "%s", e.msg);
    size_t n;
    unsigned char *all = read_file(p, &n);
    CHECK(all && n > 20, "read back %s", p);
    if (all && n > 20) {
        write_bytes(p, all, n - 5);
        expect_bad(p, p, "truncated", "truncated data");
        write_bytes(p, all, 20);
        expect_bad(p, p, "runs past the end of the file", "truncated header");
    }
    free(all);

    /* a file truncated after it was opened */
    CHECK(st_write(p, &w, 1, &e) == LLMSIM_OK, "%s", e.msg);
    st_checkpoint c;
    CHECK(st_open(p, &c, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(truncate(p, 40) == 0, "truncate");
    float got[16];
    llmsim_status st = st_read(&c, st_find(&c, "v"), got, &e);
    CHECK(st == LLMSIM_EINPUT && strstr(e.msg, p) && strstr(e.msg, "end of file"),
          "read after truncation: %s", e.msg);
    st_close(&c);

    /* valid but unusual: empty header object, metadata, gaps between tensors */
    write_raw(p, "{}", 0);
    CHECK(st_open(p, &c, &e) == LLMSIM_OK && c.ntensors == 0, "empty header: %s", e.msg);
    st_close(&c);
    write_raw(p, "{\"__metadata__\":{\"format\":\"pt\"},"
                 "\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                 "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[5,5]}}   ", 8);
    CHECK(st_open(p, &c, &e) == LLMSIM_OK && c.ntensors == 2, "metadata and a gap: %s", e.msg);
    unsigned char two[2] = {0};
    const st_tensor *t = st_find(&c, "x");
    CHECK(t && st_read(&c, t, two, &e) == LLMSIM_OK && two[0] == 4 && two[1] == 5,
          "reads at its offset: %s", e.msg);
    st_close(&c);

    expect_bad(tmp("does-not-exist.safetensors"), "does-not-exist", "cannot open", "no file");
}

static void test_bad_index(void)
{
    const char *idx = tmp("idx/model.safetensors.index.json");
    write_shards("idx", good_index);

    write_text(idx, "{\"metadata\": {}}");
    expect_bad(idx, idx, "missing \"weight_map\"", "index without weight_map");
    write_text(idx, "{\"weight_map\": {}}");
    expect_bad(idx, idx, "empty", "empty weight_map");
    write_text(idx, "{\"weight_map\": {\"a\": 3}}");
    expect_bad(idx, idx, "shard file name", "shard is a number");
    write_text(idx, "{\"weight_map\": {\"a\": \"../model-00001-of-00002.safetensors\"}}");
    expect_bad(idx, idx, "\"..\"", "shard outside the directory");
    write_text(idx, "{\"weight_map\": {\"a\": \"./model-00001-of-00002.safetensors\"}}");
    expect_bad(idx, idx, "\".\"", "shard with a . component");
    write_text(idx, "{\"weight_map\": {\"a\": \"/etc/passwd\"}}");
    expect_bad(idx, idx, "not absolute", "absolute shard");
    write_text(idx, "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\",,}}");
    expect_bad(idx, idx, "invalid JSON near byte", "index: bad JSON");
    write_text(idx, "[]");
    expect_bad(idx, idx, "JSON object", "index: array");
    write_text(idx, "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\","
                    "\"a\": \"model-00002-of-00002.safetensors\"}}");
    expect_bad(idx, idx, "listed twice", "index: tensor twice");

    /* a missing shard: the message names the index and the shard */
    write_text(idx, "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\","
                    "\"z\": \"model-00003-of-00003.safetensors\"}}");
    expect_bad(idx, idx, "model-00003-of-00003.safetensors: cannot open", "missing shard");
    /* a tensor in the wrong shard, and one that no shard holds */
    write_text(idx, "{\"weight_map\": {\"a\": \"model-00002-of-00002.safetensors\","
                    "\"b\": \"model-00001-of-00002.safetensors\"}}");
    expect_bad(idx, idx, "but it is in", "tensor in the wrong shard");
    write_text(idx, "{\"weight_map\": {\"q\": \"model-00002-of-00002.safetensors\"}}");
    expect_bad(idx, idx, "no shard holds it", "tensor in no shard");

    /* the same tensor in two shards */
    float v[2] = {1, 2};
    int64_t s2[] = {2};
    st_write_tensor w[2] = {{"a", ST_F32, 1, s2, v}, {"c", ST_F32, 1, s2, v}};
    diag e;
    diag_clear(&e);
    CHECK(st_write(tmp("idx/model-00002-of-00002.safetensors"), w, 2, &e) == LLMSIM_OK, "%s",
          e.msg);
    write_text(idx, good_index);
    expect_bad(idx, idx, "'a' is in two shards", "duplicate tensor across shards");

    /* a broken shard: the message names the shard */
    write_raw_len(tmp("idx/model-00002-of-00002.safetensors"), 0, "", 0);
    expect_bad(idx, "model-00002-of-00002.safetensors", "header length is 0", "broken shard");
}

// ---- the writer refuses bad tensors

static void test_write_errors(void)
{
    float v = 0;
    int64_t neg[] = {-1}, one[] = {1};
    diag e;
    const char *p = tmp("w.safetensors");
    struct {
        st_write_tensor t[2];
        size_t n;
        const char *what;
    } cases[] = {
        {{{"a", ST_F32, 1, neg, &v}}, 1, "dimension 0 is -1"},
        {{{"a", ST_F32, 9, one, &v}}, 1, "0 to 8"},
        {{{"__metadata__", ST_F32, 0, NULL, &v}}, 1, "reserved"},
        {{{"a", ST_F32, 0, NULL, &v}, {"a", ST_F32, 0, NULL, &v}}, 2, "given twice"},
        {{{"a", ST_F32, 1, one, NULL}}, 1, "no data"},
        {{{"bad\xff", ST_F32, 0, NULL, &v}}, 1, "not UTF-8"},
        {{{"a", (st_dtype)99, 0, NULL, &v}}, 1, "unknown dtype"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        diag_clear(&e);
        llmsim_status st = st_write(p, cases[i].t, cases[i].n, &e);
        CHECK(st == LLMSIM_EINPUT && strstr(e.msg, p) && strstr(e.msg, cases[i].what),
              "write case %zu: %d %s", i, st, e.msg);
    }
    CHECK(access(p, F_OK) != 0, "nothing written for refused tensors");
    diag_clear(&e);
    CHECK(st_write(tmp("none.safetensors"), NULL, 0, &e) == LLMSIM_OK, "no tensors: %s", e.msg);
    st_checkpoint c;
    CHECK(st_open(tmp("none.safetensors"), &c, &e) == LLMSIM_OK && c.ntensors == 0, "%s", e.msg);
    st_close(&c);
    st_close(NULL);
    st_checkpoint z;
    memset(&z, 0, sizeof z);
    st_close(&z);
}

// ---- dtype names

static void test_dtypes(void)
{
    for (int i = 0; i < ST_NDTYPES; i++) {
        st_dtype d;
        CHECK(st_dtype_parse(st_dtype_name((st_dtype)i), &d) == 0 && d == (st_dtype)i,
              "dtype %d name round trip", i);
    }
    st_dtype d;
    CHECK(st_dtype_parse("f32", &d) != 0, "dtype names are case-sensitive");
    CHECK(st_dtype_size(ST_BF16) == 2 && st_dtype_size(ST_F64) == 8 && st_dtype_size(ST_BOOL) == 1,
          "sizes");
    CHECK(st_dtype_size((st_dtype)-1) == 0 && strcmp(st_dtype_name(ST_NDTYPES), "?") == 0,
          "out of range");
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/llmsim-st-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    test_dtypes();
    test_round_trip();
    test_reference_layout();
    test_read_f32();
    test_sharded();
    test_malformed();
    test_bad_index();
    test_write_errors();
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return tap_done();
}
