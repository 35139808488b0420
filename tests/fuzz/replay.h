/*
 * replay — the replay driver of a fuzz target (included by its source under
 * -DLLMSIM_FUZZ_REPLAY): a main() that runs every file named on the command
 * line (directories: every regular file in them, in name order) through
 * LLVMFuzzerTestOneInput, each as an exact-size copy so that ASan sees
 * reads past its end. The committed corpus becomes a regression test on any
 * compiler. Exits 1 when a file cannot be read or there was none.
 */
#ifndef LLMSIM_TESTS_FUZZ_REPLAY_H
#define LLMSIM_TESTS_FUZZ_REPLAY_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            unsigned char *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    int err = ferror(f) || !buf;
    fclose(f);
    if (err) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(buf);
        return -1;
    }
    /* an exact-size copy, so ASan sees reads past the end */
    unsigned char *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    int inputs = 0, errors = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            perror(argv[i]);
            errors++;
            continue;
        }
        if (!S_ISDIR(sb.st_mode)) {
            errors += replay_file(argv[i]) != 0;
            inputs++;
            continue;
        }
        struct dirent **names;
        int k = scandir(argv[i], &names, NULL, alphasort);
        if (k < 0) {
            perror(argv[i]);
            errors++;
            continue;
        }
        for (int j = 0; j < k; j++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[j]->d_name);
            if (names[j]->d_name[0] != '.' && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
                errors += replay_file(path) != 0;
                inputs++;
            }
            free(names[j]);
        }
        free(names);
    }
    printf("%s: %d inputs, %d unreadable\n", argv[0], inputs, errors);
    return errors || inputs == 0 ? 1 : 0;
}

#endif
