/*
 * offload — the disk tier: an offload directory of files read and written
 * with O_DIRECT (so measured disk time is disk time, not page cache), from
 * and into buffers aligned to OFFLOAD_ALIGN.
 *
 * The directory is created fresh (mkdtemp under the parent the user names,
 * or $TMPDIR, or /tmp) and removed with everything in it by
 * offload_dir_remove — also from a signal handler: the paths are kept in a
 * registry whose cleanup uses only async-signal-safe calls. Where O_DIRECT
 * is refused (tmpfs), files fall back to buffered I/O and say so.
 */
#ifndef LLMSIM_EXEC_OFFLOAD_H
#define LLMSIM_EXEC_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "costmodel/sizes.h"

#define OFFLOAD_ALIGN SIZE_DISK_ALIGN
#define OFFLOAD_MAX_FILES 16

typedef struct offload_file {
    int fd;
    bool direct;     /* O_DIRECT in effect */
    uint64_t size;   /* bytes reserved */
    char path[1024];
} offload_file;

typedef struct offload_dir {
    char path[1024];
    offload_file files[OFFLOAD_MAX_FILES];
    int nfiles;
    int slot;        /* registry slot, -1 when not registered */
    char parent[1024];  /* the parent as given */
    size_t existed;     /* the length of its prefix that existed: the rest llmsim made */
} offload_dir;

/* Round up to the alignment. */
static inline uint64_t offload_round(uint64_t n)
{
    return (n + OFFLOAD_ALIGN - 1) / OFFLOAD_ALIGN * OFFLOAD_ALIGN;
}

/* Buffers of at least this size are aligned to it and asked to be backed by
 * transparent huge pages (MADV_HUGEPAGE). On the development VM a 48 MiB
 * O_DIRECT read into 4 KiB pages ran at 0.9-2.2 GB/s depending on where the
 * buffer landed, and into huge pages at 2.1-2.5 GB/s wherever it landed:
 * the kernel pins and maps 512 times fewer pages per transfer. */
#define OFFLOAD_HUGE ((size_t)2 << 20)

/* A buffer aligned for O_DIRECT, of offload_round(bytes), zeroed; free().
 * Every buffer of the CPU engine comes from here (exec/cpu/ram.c), and so
 * do the profiler's, so that the profile measures memory as the engine
 * holds it. */
void *offload_alloc(size_t bytes);

/* parent: NULL for $TMPDIR or /tmp. A parent that does not exist is made,
 * as mkdir -p would, and removed again (what was made of it, if empty) by
 * offload_dir_remove. LLMSIM_EINPUT when the parent, or a component of it,
 * is not a directory or cannot be made or written. */
llmsim_status offload_dir_create(const char *parent, offload_dir *d, diag *e);
/* A new file of `size` bytes (space reserved with posix_fallocate: a full
 * disk fails here, not halfway through a run). *out stays owned by d. */
llmsim_status offload_file_create(offload_dir *d, const char *name, uint64_t size,
                                  offload_file **out, diag *e);
/* Whole transfers at aligned offsets and sizes (multiples of OFFLOAD_ALIGN). */
llmsim_status offload_read(offload_file *f, void *buf, size_t bytes, uint64_t off, diag *e);
llmsim_status offload_write(offload_file *f, const void *buf, size_t bytes, uint64_t off, diag *e);
/* Whether every file of d uses O_DIRECT (true for none). */
bool offload_dir_direct(const offload_dir *d);
/* Close and unlink every file, remove the directory; safe to call twice. */
void offload_dir_remove(offload_dir *d);
/* From a signal handler: remove every registered directory (async-signal-safe). */
void offload_remove_all_from_signal(void);

#endif
