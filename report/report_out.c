/*
 * report_out — write a report so that DIR holds a whole report or is left
 * as it was: every file is built in a fresh DIR.tmpXXXXXX beside DIR (same
 * file system, so the final rename is atomic), gnuplot draws in there, and
 * only then is it renamed to DIR. Replacing an earlier report (--force) moves
 * the old one aside first and back again if the rename fails. Any failure
 * removes the temporary directory.
 *
 * gnuplot runs by posix_spawnp (no shell: paths are not quoted for one) with
 * `-e "cd 'DIR.tmpXXXXXX'"` so each script names only its own files and
 * runs unchanged for a user in DIR. Its stderr goes to an anonymous file,
 * shown only when it fails.
 */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include "report/report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ^C or SIGTERM while drawing: finish the gnuplot at hand (the terminal
 * interrupts it too), then remove the temporary directory and stop. */
static volatile sig_atomic_t out_interrupted;

static void out_on_signal(int sig) { out_interrupted = sig; }

int report_interrupted(void) { return out_interrupted; }

#define OUT_GNUPLOT        "gnuplot"
#define OUT_GNUPLOT_ADVICE "install it (Debian/Ubuntu: apt-get install gnuplot-nox)"
#define OUT_LOG_MAX        4096 /* bytes of gnuplot's stderr read back on failure */

// ---- the directory

typedef enum out_dir_state {
    OUT_DIR_ABSENT,
    OUT_DIR_EMPTY,
    OUT_DIR_REPORT, /* not empty, with an index.html: an earlier report */
    OUT_DIR_OTHER,  /* not empty, something else */
} out_dir_state;

static llmsim_status out_dir_state_get(const char *dir, out_dir_state *state, diag *e)
{
    struct stat sb;
    if (lstat(dir, &sb) != 0) {
        if (errno == ENOENT) {
            *state = OUT_DIR_ABSENT;
            return LLMSIM_OK;
        }
        return diag_set(e, LLMSIM_EINPUT, "-o %s: %s", dir, strerror(errno));
    }
    if (S_ISLNK(sb.st_mode))
        return diag_set(e, LLMSIM_EINPUT, "-o %s is a symbolic link; give the directory itself",
                        dir);
    if (!S_ISDIR(sb.st_mode))
        return diag_set(e, LLMSIM_EINPUT, "-o %s exists and is not a directory; give another -o",
                        dir);
    DIR *d = opendir(dir);
    if (!d)
        return diag_set(e, LLMSIM_EINPUT, "-o %s: %s", dir, strerror(errno));
    bool empty = true, index = false;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        empty = false;
        index = index || strcmp(de->d_name, "index.html") == 0;
    }
    closedir(d);
    *state = empty ? OUT_DIR_EMPTY : index ? OUT_DIR_REPORT : OUT_DIR_OTHER;
    return LLMSIM_OK;
}

llmsim_status report_dir_check(char *dir, bool force, diag *e)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = '\0';
    for (const unsigned char *p = (const unsigned char *)dir; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return diag_set(e, LLMSIM_EINPUT, "-o: the directory name has a control character; "
                            "give another name");
    if (strcmp(dir, "/") == 0 || strcmp(dir, ".") == 0 || strcmp(dir, "..") == 0)
        return diag_set(e, LLMSIM_EINPUT, "-o %s: give a directory of its own for the report", dir);
    out_dir_state state;
    llmsim_status st = out_dir_state_get(dir, &state, e);
    if (st != LLMSIM_OK)
        return st;
    if (state == OUT_DIR_REPORT && !force)
        return diag_set(e, LLMSIM_EINPUT, "%s holds an earlier report; give --force to replace it, "
                        "or another -o", dir);
    /* --force replaces a report, never a directory of something else: a
     * mistyped -o must not remove a user's files */
    if (state == OUT_DIR_OTHER)
        return diag_set(e, LLMSIM_EINPUT, "%s exists and is not empty%s; give another -o", dir,
                        force ? " and is not an earlier report (no index.html): --force only "
                                "replaces a report" : "");
    return LLMSIM_OK;
}

static int out_remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

/* Remove a directory tree this command made or replaces; symbolic links are
 * removed, not followed. Failure leaves files behind and says so. */
static void out_remove_tree(const char *path)
{
    if (nftw(path, out_remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        report_warn("could not remove %s: %s", path, strerror(errno));
}

static llmsim_status out_path(char *buf, size_t len, const char *dir, const char *name,
                              const char *ext, diag *e)
{
    int n = snprintf(buf, len, "%s/%s%s", dir, name, ext);
    if (n < 0 || (size_t)n >= len)
        return diag_set(e, LLMSIM_EINPUT, "-o %s: the path is too long", dir);
    return LLMSIM_OK;
}

/* A fresh directory beside dir, with the permissions of a new directory
 * (mkdtemp makes it 0700). */
static llmsim_status out_tmpdir(const char *dir, const char *what, char *buf, size_t len,
                                diag *e)
{
    int n = snprintf(buf, len, "%s.%s", dir, what);
    if (n < 0 || (size_t)n >= len)
        return diag_set(e, LLMSIM_EINPUT, "-o %s: the path is too long", dir);
    if (!mkdtemp(buf))
        return diag_set(e, LLMSIM_EINPUT, "-o %s: cannot create %s: %s", dir, buf,
                        strerror(errno));
    mode_t mask = umask(0);
    umask(mask);
    if (chmod(buf, 0777 & ~mask) != 0) {
        int err = errno;
        out_remove_tree(buf);
        return diag_set(e, LLMSIM_EFAIL, "%s: %s", buf, strerror(err));
    }
    return LLMSIM_OK;
}

// ---- gnuplot

bool report_gnuplot_found(void)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char buf[PATH_MAX];
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        int m = snprintf(buf, sizeof buf, "%.*s%s" OUT_GNUPLOT, (int)n, n ? p : ".", n ? "/" : "/");
        if (m > 0 && (size_t)m < sizeof buf && access(buf, X_OK) == 0)
            return true;
        if (!end)
            return false;
        p = end;
    }
}

/* The last non-empty line of what gnuplot wrote on stderr. */
static void out_log_last_line(FILE *log, char *buf, size_t len)
{
    char text[OUT_LOG_MAX + 1];
    buf[0] = '\0';
    if (fseek(log, 0, SEEK_END) != 0)
        return;
    long size = ftell(log);
    long from = size > OUT_LOG_MAX ? size - OUT_LOG_MAX : 0;
    if (size <= 0 || fseek(log, from, SEEK_SET) != 0)
        return;
    size_t n = fread(text, 1, OUT_LOG_MAX, log);
    text[n] = '\0';
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        text[--n] = '\0';
    const char *line = strrchr(text, '\n');
    snprintf(buf, len, "%s", line ? line + 1 : text);
}

/* Start gnuplot in `dir` on `script`; its stdout to /dev/null, its stderr to log. */
static llmsim_status out_gnuplot_spawn(const char *dir, const char *script, FILE *log, pid_t *pid,
                                       diag *e)
{
    strbuf cd = {0};
    strbuf_puts(&cd, "cd '");
    for (const char *p = dir; *p; p++) /* a gnuplot '...' string: '' is a quote */
        strbuf_puts(&cd, *p == '\'' ? "''" : (char[]){*p, '\0'});
    strbuf_puts(&cd, "'");
    char prog[] = OUT_GNUPLOT, opt_e[] = "-e", file[NAME_MAX + 1];
    snprintf(file, sizeof file, "%s", script);
    char *argv[] = {prog, opt_e, cd.data, file, NULL};
    posix_spawn_file_actions_t fa;
    int rc = cd.failed ? ENOMEM : posix_spawn_file_actions_init(&fa);
    if (rc == 0) {
        rc = posix_spawn_file_actions_adddup2(&fa, fileno(log), STDERR_FILENO);
        if (rc == 0)
            rc = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        if (rc == 0)
            rc = posix_spawnp(pid, OUT_GNUPLOT, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
    }
    strbuf_free(&cd);
    if (rc == ENOENT)
        return diag_set(e, LLMSIM_EFAIL, "gnuplot not found on PATH; " OUT_GNUPLOT_ADVICE);
    if (rc != 0)
        return diag_set(e, LLMSIM_EFAIL, "cannot start gnuplot: %s", strerror(rc));
    return LLMSIM_OK;
}

/* Run `gnuplot NAME.gp` in dir and check that it exits 0. */
static llmsim_status out_gnuplot(const char *dir, const char *name, diag *e)
{
    char script[NAME_MAX + 1];
    snprintf(script, sizeof script, "%s.gp", name);
    FILE *log = tmpfile();
    if (!log)
        return diag_set(e, LLMSIM_EFAIL, "cannot make a temporary file for gnuplot: %s",
                        strerror(errno));
    pid_t pid = 0;
    int status = 0;
    llmsim_status st = out_gnuplot_spawn(dir, script, log, &pid, e);
    while (st == LLMSIM_OK && waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            st = diag_set(e, LLMSIM_EFAIL, "waiting for gnuplot: %s", strerror(errno));
    if (st == LLMSIM_OK && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        char last[512];
        out_log_last_line(log, last, sizeof last);
        if (WIFEXITED(status))
            st = diag_set(e, LLMSIM_EFAIL, "gnuplot failed on %s (exit %d): %s", script,
                          WEXITSTATUS(status), last[0] ? last : "no message");
        else
            st = diag_set(e, LLMSIM_EFAIL, "gnuplot was killed by signal %d drawing %s",
                          WTERMSIG(status), script);
    }
    fclose(log);
    return st;
}

// ---- the files

static llmsim_status out_file(const char *dir, const char *name, const char *ext,
                              const strbuf *b, diag *e)
{
    char path[PATH_MAX];
    llmsim_status st = out_path(path, sizeof path, dir, name, ext, e);
    return st != LLMSIM_OK ? st : strbuf_write_file(b, path, e);
}

static llmsim_status out_fig(const report_fig *f, const char *dir, diag *e)
{
    strbuf dat = {0};
    report_table_dat(f, &dat);
    llmsim_status st = out_file(dir, f->name, ".dat", &dat, e);
    strbuf_free(&dat);
    if (st == LLMSIM_OK)
        st = out_file(dir, f->name, ".gp", &f->gp, e);
    if (st == LLMSIM_OK)
        st = out_gnuplot(dir, f->name, e);
    return st;
}

/* Every figure, drawn, then the page. Progress on stderr at a terminal. */
static llmsim_status out_files(const report *r, const char *dir, diag *e)
{
    bool tty = isatty(STDERR_FILENO);
    llmsim_status st = LLMSIM_OK;
    for (size_t i = 0; i < r->nfigs && st == LLMSIM_OK; i++) {
        if (tty)
            fprintf(stderr, "\rllmsim report: drawing %zu of %zu: %-24s", i + 1, r->nfigs,
                    r->figs[i].name);
        st = out_fig(&r->figs[i], dir, e);
        if (st == LLMSIM_OK && out_interrupted)
            st = diag_set(e, LLMSIM_EFAIL, "interrupted; nothing written");
    }
    if (tty && r->nfigs)
        fputc('\n', stderr);
    strbuf page = {0};
    if (st == LLMSIM_OK) {
        report_html(r, &page);
        st = out_file(dir, "index", ".html", &page, e);
    }
    strbuf_free(&page);
    return st;
}

/* Put the finished directory tmp at dir, replacing an earlier report. */
static llmsim_status out_commit(const char *tmp, const char *dir, bool force, diag *e)
{
    out_dir_state state;
    llmsim_status st = out_dir_state_get(dir, &state, e);
    if (st != LLMSIM_OK)
        return st;
    if (state == OUT_DIR_OTHER || (state == OUT_DIR_REPORT && !force)) /* it changed meanwhile */
        return diag_set(e, LLMSIM_EINPUT, "%s is not empty any more; give another -o", dir);
    if (state != OUT_DIR_REPORT) { /* rename replaces an empty directory */
        if (rename(tmp, dir) != 0)
            return diag_set(e, LLMSIM_EFAIL, "cannot rename %s to %s: %s", tmp, dir,
                            strerror(errno));
        return LLMSIM_OK;
    }
    char old[PATH_MAX];
    if ((st = out_tmpdir(dir, "oldXXXXXX", old, sizeof old, e)) != LLMSIM_OK)
        return st;
    if (rename(dir, old) != 0) {
        st = diag_set(e, LLMSIM_EFAIL, "cannot move %s aside: %s", dir, strerror(errno));
        out_remove_tree(old);
        return st;
    }
    if (rename(tmp, dir) != 0) {
        st = diag_set(e, LLMSIM_EFAIL, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
        if (rename(old, dir) != 0)
            report_warn("the earlier report is now at %s", old);
        return st;
    }
    out_remove_tree(old);
    return LLMSIM_OK;
}

llmsim_status report_write(const report *r, const char *dir, bool force, diag *e)
{
    char tmp[PATH_MAX];
    llmsim_status st = out_tmpdir(dir, "tmpXXXXXX", tmp, sizeof tmp, e);
    if (st != LLMSIM_OK)
        return st;
    /* no SA_RESTART: waitpid returns on a signal and the loop looks again */
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = out_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    st = out_files(r, tmp, e);
    if (st == LLMSIM_OK && out_interrupted)
        st = diag_set(e, LLMSIM_EFAIL, "interrupted; nothing written");
    if (st == LLMSIM_OK)
        st = out_commit(tmp, dir, force, e);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (st != LLMSIM_OK)
        out_remove_tree(tmp);
    return st;
}
