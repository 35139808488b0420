/*
 * test_offload — the offload directory (exec/offload.h):
 *
 *  - made fresh under an existing parent, a file in it, everything removed;
 *  - a parent that does not exist is made as mkdir -p would (several
 *    levels), and what was made is removed again with the directory, while
 *    what existed stays;
 *  - a parent that is a file, or under a file, is refused naming it, and
 *    nothing is left behind;
 *  - a made parent that something else wrote into meanwhile is kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec/offload.h"
#include "tap.h"

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

int main(void)
{
    char base[] = "/tmp/llmsim-test-offload-XXXXXX";
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    char p[1200], q[1200];
    diag e = {0};
    offload_dir d;

    /* an existing parent */
    CHECK(offload_dir_create(base, &d, &e) == LLMSIM_OK, "existing parent: %s", e.msg);
    offload_file *f;
    CHECK(offload_file_create(&d, "w.bin", 8192, &f, &e) == LLMSIM_OK, "a file: %s", e.msg);
    snprintf(q, sizeof q, "%s", d.path);
    CHECK(is_dir(q), "the directory is made under the parent");
    offload_dir_remove(&d);
    CHECK(!exists(q) && is_dir(base), "removed, the parent kept");

    /* a parent three levels deep that does not exist */
    snprintf(p, sizeof p, "%s/a/b//c", base);
    CHECK(offload_dir_create(p, &d, &e) == LLMSIM_OK, "a missing parent is made: %s", e.msg);
    snprintf(q, sizeof q, "%s/a/b/c", base);
    CHECK(is_dir(q) && strncmp(d.path, p, strlen(p)) == 0, "made as mkdir -p would");
    offload_dir_remove(&d);
    snprintf(q, sizeof q, "%s/a", base);
    CHECK(!exists(q) && is_dir(base), "what was made is removed again, what existed stays");

    /* a made parent another program wrote into meanwhile stays */
    snprintf(p, sizeof p, "%s/m/n", base);
    CHECK(offload_dir_create(p, &d, &e) == LLMSIM_OK, "%s", e.msg);
    snprintf(q, sizeof q, "%s/m/theirs.txt", base);
    FILE *o = fopen(q, "w");
    if (o)
        fclose(o);
    offload_dir_remove(&d);
    snprintf(q, sizeof q, "%s/m/n", base);
    CHECK(!exists(q), "the made leaf is removed");
    snprintf(q, sizeof q, "%s/m/theirs.txt", base);
    CHECK(exists(q), "a made directory that is not empty is kept");
    unlink(q);
    snprintf(q, sizeof q, "%s/m", base);
    rmdir(q);

    /* a file where a directory must be */
    snprintf(q, sizeof q, "%s/file", base);
    o = fopen(q, "w");
    if (o)
        fclose(o);
    diag_clear(&e);
    CHECK(offload_dir_create(q, &d, &e) == LLMSIM_EINPUT && strstr(e.msg, "not a directory"),
          "a file as the parent is refused: %s", e.msg);
    snprintf(p, sizeof p, "%s/file/x/y", base);
    diag_clear(&e);
    CHECK(offload_dir_create(p, &d, &e) == LLMSIM_EINPUT && strstr(e.msg, "file is not a directory"),
          "a parent under a file is refused naming the file: %s", e.msg);
    unlink(q);
    CHECK(rmdir(base) == 0, "nothing left behind in the test's directory");
    return tap_done();
}
