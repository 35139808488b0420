/* atomicfile — see atomicfile.h. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "common/atomicfile.h"

#include "common/fault.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Free the temporary file's name and the resolved path. */
static void atomicfile_release(atomicfile *a)
{
    free(a->tmp);
    a->tmp = NULL;
    free(a->resolved);
    a->resolved = NULL;
}

llmsim_status atomicfile_open(atomicfile *a, const char *path, const char *what, diag *e)
{
    memset(a, 0, sizeof *a);
    /* Replace a regular file, or the file a symbolic link points to; never
     * a link itself, a device or a directory. */
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (S_ISLNK(sb.st_mode)) {
            a->resolved = realpath(path, NULL);
            if (!a->resolved || stat(a->resolved, &sb) != 0) {
                atomicfile_release(a);
                return diag_set(e, LLMSIM_EINPUT, "%s %s: a symbolic link to nothing; give a file path",
                                what, path);
            }
            path = a->resolved;
        }
        if (!S_ISREG(sb.st_mode)) {
            /* the message first: path may be a->resolved, which the release frees */
            llmsim_status st = diag_set(e, LLMSIM_EINPUT, "%s %s: not a regular file (a directory or "
                                        "a device); give a file path", what, path);
            atomicfile_release(a);
            return st;
        }
    }
    a->path = path;
    size_t n = strlen(path);
    a->tmp = malloc(n + 16);
    if (!a->tmp)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    snprintf(a->tmp, n + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(a->tmp);
    if (fd < 0) {
        llmsim_status st = diag_set(e, LLMSIM_EINPUT, "%s %s: cannot write: %s", what, path,
                                    strerror(errno));
        atomicfile_release(a);
        return st;
    }
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || !(a->f = fdopen(fd, "w"))) {
        llmsim_status st = diag_set(e, LLMSIM_EFAIL, "%s %s: %s", what, path, strerror(errno));
        close(fd);
        unlink(a->tmp);
        atomicfile_release(a);
        return st;
    }
    return LLMSIM_OK;
}

llmsim_status atomicfile_commit(atomicfile *a, const char *what, diag *e)
{
    bool ok = !ferror(a->f);
    ok = fclose(a->f) == 0 && ok;
    if (ok && fault_now(FAULT_FILE_WRITE)) {
        errno = EIO;
        ok = false;
    }
    a->f = NULL;
    llmsim_status st = LLMSIM_OK;
    if (!ok || rename(a->tmp, a->path) != 0) {
        /* a failing or full disk is the environment's; a path that is wrong, bad input */
        const int err = errno;
        st = diag_set(e, err == EIO || err == ENOSPC ? LLMSIM_EFAIL : LLMSIM_EINPUT,
                      "%s %s: cannot write: %s", what, a->path, strerror(err));
        unlink(a->tmp);
    }
    atomicfile_release(a);
    return st;
}

void atomicfile_abort(atomicfile *a)
{
    if (a->f)
        fclose(a->f);
    if (a->tmp) {
        unlink(a->tmp);
        free(a->tmp);
    }
    free(a->resolved);
    memset(a, 0, sizeof *a);
}

llmsim_status atomicfile_check(const char *path, const char *what, diag *e)
{
    atomicfile a;
    llmsim_status st = atomicfile_open(&a, path, what, e);
    if (!st)
        atomicfile_abort(&a);
    return st;
}
