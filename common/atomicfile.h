/*
 * atomicfile — write a file so that readers see the old one or the whole new
 * one, never half of it: write to a temporary file beside it, then rename.
 * The new file gets the usual permissions (0666 less the umask). A symbolic
 * link is followed (its target is replaced); a device, a directory or a
 * dangling link is refused.
 */
#ifndef LLMSIM_COMMON_ATOMICFILE_H
#define LLMSIM_COMMON_ATOMICFILE_H

#include <stdio.h>

#include "common/diag.h"

typedef struct atomicfile {
    FILE *f;     /* write here */
    char *tmp;   /* the temporary path (owned) */
    const char *path;  /* where the file goes (a link's target when given a link) */
    char *resolved;    /* owned: the resolved target of a symbolic link */
} atomicfile;

/* `what` names the file in messages ("--trace", "-o"). */
llmsim_status atomicfile_open(atomicfile *a, const char *path, const char *what, diag *e);
/* Close and rename into place; on any error the temporary file is removed. */
llmsim_status atomicfile_commit(atomicfile *a, const char *what, diag *e);
/* Give up: close and remove the temporary file. */
void atomicfile_abort(atomicfile *a);
/* Whether path could be written (its temporary file made and removed):
 * checked before long work, so that an output that cannot be written is
 * refused before minutes of measuring, not after. */
llmsim_status atomicfile_check(const char *path, const char *what, diag *e);

#endif
