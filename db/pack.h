/*
 * pack — the compact form of a run's many rows (per-task timings, memory
 * samples) in the store: a chunk of rows as columns, each laid out so that
 * zlib compresses it well and fast, deflated into one blob.
 *
 * A simulation of OPT-175B has millions of tasks; one SQL row each made
 * recording take several times as long as simulating, and the store grow by
 * ~100 bytes a task. As columns, a task costs a few bytes and recording a
 * fraction of the simulation. The rows come back exactly (every double bit
 * for bit).
 *
 * Blob: "LPK1", the raw payload's length (u32, little-endian), then the
 * payload as one zlib stream. The payload is the columns in the order they
 * were put, each:
 *   texts   every row: the length of the prefix shared with the previous
 *           row's text (u8), the length of the rest (u8), the rest
 *   names   the distinct names (u8 count, each NUL-terminated), then every
 *           row's index among them (u8)
 *   f64     each row's IEEE-754 double as a 64-bit integer, less the
 *           previous row's (modulo 2^64; the first less 0), in eight planes
 *           of n bytes: plane k holds byte k (little-endian) of every row's
 *           difference. Neighbouring times share their high bits and repeat
 *           their steps, so the planes are mostly runs that zlib's fastest
 *           level shrinks ~80x.
 * The reader knows the columns and the row count (stored beside the blob);
 * it checks every length and index, so a damaged blob is an error, never a
 * read out of bounds.
 */
#ifndef LLMSIM_DB_PACK_H
#define LLMSIM_DB_PACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"

#define PACK_CHUNK_ROWS 65536 /* rows per blob: bounds the memory of both sides */
#define PACK_MAX_RAW (64u << 20)  /* a payload longer than this is refused as damaged */
#define PACK_TEXT_MAX 255         /* longest text or name */

/* Columns being put. Element i of a column is read at base + i * stride. */
typedef struct pack_writer {
    uint8_t *buf;
    size_t len, cap;
    bool oom;
} pack_writer;

/* texts: element i is a NUL-terminated char array; names: a const char *;
 * f64: a double. */
void pack_put_texts(pack_writer *w, const void *base, size_t stride, size_t n);
void pack_put_names(pack_writer *w, const void *base, size_t stride, size_t n);
void pack_put_f64(pack_writer *w, const void *base, size_t stride, size_t n);
/* The blob of what was put (malloc'd), and the writer emptied for reuse.
 * Texts or names over PACK_TEXT_MAX, more than 255 names or a payload over
 * PACK_MAX_RAW are LLMSIM_EFAIL (callers keep within them). */
llmsim_status pack_finish(pack_writer *w, uint8_t **blob, size_t *len, diag *e);
void pack_writer_free(pack_writer *w);

/* pack_finish on a thread of its own, so that the caller fills the next
 * chunk meanwhile (a plan of millions of tasks records about twice as fast
 * on two cores). The writer is the job's until pack_job_wait returns; where
 * no thread can be started, pack_job_start does the work itself. */
typedef struct pack_job {
    pack_writer *w;
    uint8_t *blob;
    size_t len;
    llmsim_status st;
    diag e;
    bool threaded, started;
    pthread_t thread;
} pack_job;
void pack_job_start(pack_job *j, pack_writer *w);
/* The blob of a started job (as pack_finish gives it); a job never started
 * gives LLMSIM_OK and no blob. */
llmsim_status pack_job_wait(pack_job *j, uint8_t **blob, size_t *len, diag *e);

/* Columns being taken from an inflated payload. Element i goes to
 * base + i * stride; a text or name field holds `field` bytes (cut to fit,
 * NUL-terminated). Each get returns false, and the reader stays failed,
 * when the payload is too short or malformed. */
typedef struct pack_reader {
    uint8_t *buf;
    size_t len, pos;
    bool bad;
} pack_reader;

/* Inflate blob into r. A damaged blob is LLMSIM_EINPUT ("<what> is damaged"). */
llmsim_status pack_open(const void *blob, size_t len, const char *what, pack_reader *r, diag *e);
bool pack_get_texts(pack_reader *r, void *base, size_t stride, size_t field, size_t n);
bool pack_get_names(pack_reader *r, void *base, size_t stride, size_t field, size_t n);
bool pack_get_f64(pack_reader *r, void *base, size_t stride, size_t n);
/* True when every column was read whole and nothing is left over. */
bool pack_done(const pack_reader *r);
void pack_reader_free(pack_reader *r);

#endif
