/*
 * safetensors — read (and, for tests and synthetic checkpoints, write) Hugging
 * Face safetensors checkpoints: one file, or shards listed by an index.
 *
 * A file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
 * (plus an optional "__metadata__" object of strings, checked and ignored),
 * then the data; offsets count from the first byte after the header. A
 * sharded checkpoint is a model.safetensors.index.json,
 * {"metadata": {...}, "weight_map": {"tensor": "shard file", ...}}, whose shard
 * names are relative to the index's directory.
 *
 * Everything read from a file is checked before it is used: the header length
 * (zero, past the end of the file, above ST_MAX_HEADER_BYTES), UTF-8 and JSON
 * (errors give the byte offset in the header), dtypes, shapes (at most
 * ST_MAX_DIMS dims; products checked for overflow), offsets (within the data,
 * begin <= end, end - begin = elements * dtype size), overlapping tensors,
 * duplicate names within a file and across shards, shards that are missing
 * or disagree with the index. Every error is LLMSIM_EINPUT with a message
 * that starts with the file's path; LLMSIM_EFAIL is left to the system (out
 * of memory, an I/O error).
 *
 * Ownership: an st_checkpoint owns its paths, its open file descriptors and
 * its tensor table (one allocation holding the st_tensor array and all the
 * names); st_close releases everything. Pointers returned by st_find live
 * until st_close. st_find, st_read and st_read_f32 only read the checkpoint
 * (pread on shared descriptors), so threads may call them concurrently.
 *
 * st_open and the parsers use cJSON, whose last-error pointer is a global:
 * like every cJSON user, call them from one thread at a time.
 *
 * Numbers: cJSON reads JSON numbers as doubles, so dims and offsets must be
 * integers below 2^53 (8 PiB); "1.0" and "1e2" are read as 1 and 100.
 * Byte order: data are little-endian, and so must the host be.
 */
#ifndef LLMSIM_EXEC_SAFETENSORS_H
#define LLMSIM_EXEC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"

#define ST_MAX_DIMS 8
/* Headers longer than this are refused as "not a safetensors file"; the
 * reference implementation's limit is 100 MB. */
#define ST_MAX_HEADER_BYTES (100u << 20)

/* The dtypes llmsim reads. Other safetensors dtypes (F8_*, U16, U32, U64)
 * are refused with a message that names them. */
typedef enum st_dtype {
    ST_F16,
    ST_BF16,
    ST_F32,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
    ST_NDTYPES
} st_dtype;

/* Bytes per element (BOOL is one byte); 0 for a value out of range. */
int st_dtype_size(st_dtype d);
/* The name used in files ("F16", "BF16", ...); "?" for a value out of range. */
const char *st_dtype_name(st_dtype d);
/* Parse a file's dtype name (case-sensitive, as the format says); returns
 * 0 and fills *out, or -1 for an unknown name. */
int st_dtype_parse(const char *name, st_dtype *out);

typedef struct st_tensor {
    char *name;                /* NUL-terminated; owned by the table it is in */
    st_dtype dtype;
    int ndim;                  /* 0..ST_MAX_DIMS; 0 is a scalar (one element) */
    int64_t shape[ST_MAX_DIMS]; /* [ndim] elements per dimension, outermost first */
    uint64_t offset;           /* bytes: absolute position of the data in its file */
    uint64_t nbytes;           /* bytes: elements * st_dtype_size(dtype) */
    int file;                  /* index into st_checkpoint.paths */
} st_tensor;

/* Elements of a tensor (the product of its shape; 1 for a scalar). */
uint64_t st_tensor_numel(const st_tensor *t);

typedef struct st_checkpoint {
    int nfiles;           /* 1, or the number of distinct shards of the index */
    char **paths;         /* [nfiles] owned: the files, shards sorted by name */
    int *fds;             /* [nfiles] owned: read-only descriptors used by st_read */
    uint64_t *file_bytes; /* [nfiles] size of each file */
    st_tensor *tensors;   /* [ntensors] owned, sorted by name (strcmp) */
    size_t ntensors;
} st_checkpoint;

/* Open a checkpoint. `path` is a .safetensors file, an index (any name
 * ending in ".json"), or a directory holding model.safetensors or (else)
 * model.safetensors.index.json. On success *out owns what it holds; on
 * failure *out is left zeroed. Tensors that a shard holds but the index does
 * not list are kept; a tensor the index lists must be in the shard it names. */
llmsim_status st_open(const char *path, st_checkpoint *out, diag *e);

/* Release everything; accepts a zeroed or already closed checkpoint. */
void st_close(st_checkpoint *c);

/* The tensor called `name`, or NULL (binary search, O(log n)). */
const st_tensor *st_find(const st_checkpoint *c, const char *name);

/* Read a tensor's t->nbytes raw bytes (little-endian, as stored) into dst. A
 * file that became shorter since st_open is LLMSIM_EINPUT. */
llmsim_status st_read(const st_checkpoint *c, const st_tensor *t, void *dst, diag *e);

/* Read a tensor as fp32: dst holds st_tensor_numel(t) floats. F16 and BF16
 * are widened exactly (exec/half.h); other dtypes than F16, BF16 and F32 are
 * LLMSIM_EINPUT. */
llmsim_status st_read_f32(const st_checkpoint *c, const st_tensor *t, float *dst, diag *e);

/* ---- parsers over memory (used by st_open and by the fuzzer) */

/* Parse a header: `buf` holds its `len` bytes (the JSON, not the length
 * field), read from a file of `file_bytes` bytes in all (8 + len + data).
 * `name` names the file in messages. On success *tensors is one allocation
 * holding the array and the names (release it with free()), sorted by name,
 * each with file = 0 and an absolute offset; *n may be 0. On failure
 * *tensors = NULL and *n = 0. */
llmsim_status st_parse_header(const unsigned char *buf, size_t len, uint64_t file_bytes,
                              const char *name, st_tensor **tensors, size_t *n, diag *e);

/* Parse a whole safetensors file held in memory: the length field, then the
 * header, as st_open does. Same ownership as st_parse_header. */
llmsim_status st_parse_file_bytes(const unsigned char *buf, size_t size, const char *name,
                                  st_tensor **tensors, size_t *n, diag *e);

/* A parsed index: which shard holds each tensor. */
typedef struct st_index_entry {
    char *name; /* tensor name */
    int shard;  /* into st_index.shards */
} st_index_entry;

typedef struct st_index {
    char **shards;            /* [nshards] owned: distinct shard names, sorted */
    int nshards;
    st_index_entry *entries;  /* [nentries] owned, sorted by name */
    size_t nentries;
} st_index;

/* Parse the text of a model.safetensors.index.json. Shard names must be
 * relative paths without "..", "." or empty components. On failure *out is
 * zeroed. */
llmsim_status st_index_parse(const char *text, size_t len, const char *name, st_index *out,
                             diag *e);
void st_index_free(st_index *x); /* accepts a zeroed index */

/* ---- writer */

typedef struct st_write_tensor {
    const char *name;     /* unique, valid UTF-8, not "__metadata__" */
    st_dtype dtype;
    int ndim;             /* 0..ST_MAX_DIMS */
    const int64_t *shape; /* [ndim] non-negative */
    const void *data;     /* numel * dtype size bytes, little-endian; may be NULL when empty */
} st_write_tensor;

/* Write a safetensors file atomically (temporary file + rename), byte for
 * byte as the reference writer (Python safetensors' save_file without
 * metadata) does: tensors ordered by dtype (largest elements first, in the
 * reference's order) then by name, packed without gaps, so each is aligned
 * to its element size; the header padded with spaces to a multiple of 8
 * bytes. The output does not depend on the order of `t`. All data are in
 * memory. Bad tensors (duplicate names, negative dims) are LLMSIM_EINPUT and
 * leave no file. */
llmsim_status st_write(const char *path, const st_write_tensor *t, size_t n, diag *e);

#endif
