/* offload — see offload.h. */
#define _GNU_SOURCE /* O_DIRECT */
#include "exec/offload.h"

#include "common/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- the registry of live directories, for cleanup on a signal */

#define OFFLOAD_REGISTRY 8
static offload_dir *volatile registry[OFFLOAD_REGISTRY];

static void registry_add(offload_dir *d)
{
    d->slot = -1;
    for (int i = 0; i < OFFLOAD_REGISTRY; i++) {
        if (!registry[i]) {
            registry[i] = d;
            d->slot = i;
            return;
        }
    }
}

static void registry_remove(offload_dir *d)
{
    if (d->slot >= 0 && registry[d->slot] == d)
        registry[d->slot] = NULL;
    d->slot = -1;
}

/* The components of d->parent that llmsim made, deepest first, removed if
 * empty (async-signal-safe: rmdir on a copy in place). */
static void remove_made(offload_dir *d)
{
    char p[sizeof d->parent];
    size_t n = strlen(d->parent);
    memcpy(p, d->parent, n + 1);
    while (n > d->existed) {
        rmdir(p);
        while (n > 0 && p[n - 1] != '/')
            n--;
        while (n > 1 && p[n - 1] == '/')
            n--;
        p[n] = '\0';
    }
}

void offload_remove_all_from_signal(void)
{
    for (int i = 0; i < OFFLOAD_REGISTRY; i++) {
        offload_dir *d = registry[i];
        if (!d)
            continue;
        for (int k = 0; k < d->nfiles; k++)
            unlink(d->files[k].path); /* async-signal-safe */
        rmdir(d->path);
        remove_made(d);
    }
}

/* Make parent as mkdir -p does; d->existed: the length of its prefix that
 * existed before. */
static llmsim_status make_parent(offload_dir *d, const char *parent, diag *e)
{
    size_t n = strlen(parent);
    if (n >= sizeof d->parent)
        return diag_set(e, LLMSIM_EINPUT, "--offload-dir %s: path too long", parent);
    memcpy(d->parent, parent, n + 1);
    d->existed = n;
    struct stat st;
    if (stat(parent, &st) == 0)
        return S_ISDIR(st.st_mode)
                   ? LLMSIM_OK
                   : diag_set(e, LLMSIM_EINPUT, "--offload-dir %s: not a directory", parent);
    /* the longest prefix that exists */
    char p[sizeof d->parent];
    memcpy(p, parent, n + 1);
    size_t k = n;
    for (;;) {
        while (k > 0 && p[k - 1] != '/')
            k--;
        while (k > 1 && p[k - 1] == '/')
            k--;
        if (k == 0)
            break;
        p[k] = '\0';
        if (stat(p, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return diag_set(e, LLMSIM_EINPUT, "--offload-dir %s: %s is not a directory",
                                parent, p);
            break;
        }
    }
    d->existed = k;
    /* then each missing component, shallowest first */
    memcpy(p, parent, n + 1);
    for (size_t i = k + 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (i > k && p[i - 1] != '/' && mkdir(p, 0777) != 0 && errno != EEXIST) {
            int err = errno;
            remove_made(d);
            return diag_set(e, LLMSIM_EINPUT, "--offload-dir %s: cannot make %s: %s", parent, p,
                            strerror(err));
        }
        p[i] = c;
    }
    return LLMSIM_OK;
}

void *offload_alloc(size_t bytes)
{
    size_t n = (size_t)offload_round(bytes ? bytes : 1);
    void *p = NULL;
    const bool huge = n >= OFFLOAD_HUGE;
    if (posix_memalign(&p, huge ? OFFLOAD_HUGE : OFFLOAD_ALIGN, n) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (huge) /* advice: where transparent huge pages are off it changes nothing */
        (void)madvise(p, n, MADV_HUGEPAGE);
#endif
    memset(p, 0, n);
    return p;
}

llmsim_status offload_dir_create(const char *parent, offload_dir *d, diag *e)
{
    memset(d, 0, sizeof *d);
    d->slot = -1;
    if (!parent || !parent[0]) {
        parent = getenv("TMPDIR");
        if (!parent || !parent[0])
            parent = "/tmp";
    }
    llmsim_status st = make_parent(d, parent, e);
    if (st)
        return st;
    int n = snprintf(d->path, sizeof d->path, "%s/llmsim-offload-XXXXXX", parent);
    if (n < 0 || (size_t)n >= sizeof d->path) {
        remove_made(d);
        d->path[0] = '\0';
        return diag_set(e, LLMSIM_EINPUT, "--offload-dir %s: path too long", parent);
    }
    if (!mkdtemp(d->path)) {
        int err = errno;
        remove_made(d);
        d->path[0] = '\0';
        return diag_set(e, LLMSIM_EINPUT, "--offload-dir %s: cannot create a directory there: %s",
                        parent, strerror(err));
    }
    registry_add(d);
    return LLMSIM_OK;
}

llmsim_status offload_file_create(offload_dir *d, const char *name, uint64_t size,
                                  offload_file **out, diag *e)
{
    if (d->nfiles == OFFLOAD_MAX_FILES)
        return diag_set(e, LLMSIM_EFAIL, "offload: too many files");
    offload_file *f = &d->files[d->nfiles];
    memset(f, 0, sizeof *f);
    char path[sizeof f->path];
    snprintf(path, sizeof path, "%s/%s", d->path, name);
    memcpy(f->path, path, sizeof path);
    f->fd = open(f->path, O_CREAT | O_EXCL | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
    f->direct = f->fd >= 0;
    if (f->fd < 0 && errno == EINVAL) /* a filesystem without O_DIRECT (tmpfs) */
        f->fd = open(f->path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (f->fd < 0)
        return diag_set(e, LLMSIM_EINPUT, "offload file %s: %s", f->path, strerror(errno));
    d->nfiles++;
    f->size = offload_round(size);
    if (f->size) {
        int rc = posix_fallocate(f->fd, 0, (off_t)f->size);
        if (rc != 0)
            return diag_set(e, LLMSIM_EFAIL, "offload file %s: cannot reserve %.3g GB: %s%s",
                            f->path, f->size / 1e9, strerror(rc),
                            rc == ENOSPC ? "; free space, or give --offload-dir a directory on "
                                           "another disk" : "");
    }
    *out = f;
    return LLMSIM_OK;
}

static llmsim_status io_check(offload_file *f, size_t bytes, uint64_t off, const void *buf, diag *e)
{
    if (off % OFFLOAD_ALIGN || bytes % OFFLOAD_ALIGN || (uintptr_t)buf % OFFLOAD_ALIGN)
        return diag_set(e, LLMSIM_EFAIL, "offload %s: unaligned transfer (a bug)", f->path);
    if (off + bytes > f->size)
        return diag_set(e, LLMSIM_EFAIL, "offload %s: transfer beyond the file (a bug)", f->path);
    return LLMSIM_OK;
}

llmsim_status offload_read(offload_file *f, void *buf, size_t bytes, uint64_t off, diag *e)
{
    llmsim_status st = io_check(f, bytes, off, buf, e);
    char *p = buf;
    while (!st && bytes > 0) {
        ssize_t n = fault_now(FAULT_OFFLOAD_READ) ? (errno = EIO, -1)
                                                  : pread(f->fd, p, bytes, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return diag_set(e, LLMSIM_EFAIL, "offload read %s: %s", f->path,
                            n < 0 ? strerror(errno) : "unexpected end of file");
        p += n;
        off += (uint64_t)n;
        bytes -= (size_t)n;
    }
    return st;
}

llmsim_status offload_write(offload_file *f, const void *buf, size_t bytes, uint64_t off, diag *e)
{
    llmsim_status st = io_check(f, bytes, off, buf, e);
    const char *p = buf;
    while (!st && bytes > 0) {
        ssize_t n = fault_now(FAULT_OFFLOAD_WRITE) ? (errno = EIO, -1)
                                                   : pwrite(f->fd, p, bytes, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) /* a full or failing disk is the environment's, not bad input */
            return diag_set(e, LLMSIM_EFAIL, "offload write %s: %s%s", f->path,
                            n < 0 ? strerror(errno) : "nothing written",
                            n < 0 && errno == ENOSPC ? "; free space, or give --offload-dir a "
                                                       "directory on another disk" : "");
        p += n;
        off += (uint64_t)n;
        bytes -= (size_t)n;
    }
    return st;
}

bool offload_dir_direct(const offload_dir *d)
{
    bool direct = true;
    for (int i = 0; i < d->nfiles; i++)
        direct = direct && d->files[i].direct;
    return direct;
}

void offload_dir_remove(offload_dir *d)
{
    if (!d->path[0])
        return;
    registry_remove(d);
    for (int k = 0; k < d->nfiles; k++) {
        if (d->files[k].fd >= 0)
            close(d->files[k].fd);
        unlink(d->files[k].path);
    }
    d->nfiles = 0;
    rmdir(d->path);
    remove_made(d);
    d->path[0] = '\0';
}
