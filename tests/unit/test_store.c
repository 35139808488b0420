/*
 * test_store — the SQLite store: schema and pragmas, inputs by hash, the run
 * lifecycle (commit, abort, a process that dies mid-run), four writers at once
 * and one killed with SIGKILL mid-write, queries, and the
 * files it must refuse. Every test works in its own mkdtemp directory, which
 * is removed at the end.
 */
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/hash.h"
#include "db/store.h"
#include "db/pack.h"
#include "tap.h"

static char tmpdir[256];
static char paths[16][512];
static int npaths;

/* A fresh path inside the temp dir (remembered for cleanup with its -wal
 * and -shm companions). */
static const char *tmp_path(const char *name)
{
    if (npaths >= (int)(sizeof paths / sizeof paths[0]))
        abort();
    snprintf(paths[npaths], sizeof paths[npaths], "%s/%s", tmpdir, name);
    return paths[npaths++];
}

static void cleanup(void)
{
    char p[600];
    for (int i = 0; i < npaths; i++) {
        remove(paths[i]);
        snprintf(p, sizeof p, "%s-wal", paths[i]);
        remove(p);
        snprintf(p, sizeof p, "%s-shm", paths[i]);
        remove(p);
    }
    rmdir(tmpdir);
}

/* One integer or text from a separate connection (what another process sees). */
static long long raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    long long v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static void raw_text(const char *path, const char *sql, char *out, size_t n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    out[0] = '\0';
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW &&
        sqlite3_column_text(q, 0))
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static bool raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    bool ok = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) ==
                  SQLITE_OK &&
              sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_close(db);
    return ok;
}

// ---- schema and pragmas

static void test_open_schema(void)
{
    const char *path = tmp_path("schema.db");
    diag e;
    diag_clear(&e);
    store *s = NULL;
    CHECK(store_open(path, &s, &e) == LLMSIM_OK && s, "open: %s", e.msg);
    CHECK(raw_int(path, "PRAGMA user_version") == STORE_SCHEMA_VERSION, "user_version");
    char mode[32];
    raw_text(path, "PRAGMA journal_mode", mode, sizeof mode);
    CHECK(strcmp(mode, "wal") == 0, "journal_mode is '%s'", mode);
    const char *tables[] = {"inputs",   "runs",       "run_metrics", "run_stages",
                            "run_tasks", "run_memory", "run_chunks"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_master WHERE name = '%s'",
                 tables[i]);
        CHECK(raw_int(path, sql) == 1, "table %s exists", tables[i]);
    }
    CHECK(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                        "name IN ('runs_model_name', 'runs_hw_name', 'runs_kind')") == 3,
          "indexes on runs");

    /* foreign keys are on in the store's connection: a run naming an input
     * that was never recorded is refused */
    store_run_info info = {.kind = "predict", .model_hash = "0123456789abcdef"};
    int64_t id = 0;
    diag_clear(&e);
    CHECK(store_run_begin(s, &info, &id, &e) != LLMSIM_OK, "dangling model_hash refused");
    CHECK(strstr(e.msg, "FOREIGN KEY") != NULL, "message names the foreign key: %s", e.msg);
    store_close(s);

    /* reopening an up-to-date store changes nothing */
    diag_clear(&e);
    CHECK(store_open(path, &s, &e) == LLMSIM_OK, "reopen: %s", e.msg);
    store_close(s);
    CHECK(raw_int(path, "PRAGMA user_version") == STORE_SCHEMA_VERSION, "user_version kept");
    store_close(NULL); /* accepts NULL */
}

// ---- inputs

static void test_inputs(void)
{
    const char *path = tmp_path("inputs.db");
    diag e;
    diag_clear(&e);
    store *s = NULL;
    CHECK(store_open(path, &s, &e) == LLMSIM_OK, "open: %s", e.msg);
    const char *text = "llmsim: model/1\nname: opt-1.3b\nlayers: 24\n";
    char h1[17] = "", h2[17] = "", want[17];
    hash_hex(text, want);
    CHECK(store_put_input(s, "model", "opt-1.3b", text, h1, &e) == LLMSIM_OK, "put: %s", e.msg);
    CHECK(store_put_input(s, "model", "opt-1.3b", text, h2, &e) == LLMSIM_OK, "put again: %s",
          e.msg);
    CHECK(strcmp(h1, want) == 0 && strcmp(h2, want) == 0, "hash stable: %s %s %s", h1, h2, want);
    CHECK(raw_int(path, "SELECT count(*) FROM inputs") == 1, "one row after two puts");
    char *body = store_input_body(s, h1);
    CHECK(body && strcmp(body, text) == 0, "body round-trips");
    free(body);
    CHECK(store_input_body(s, "ffffffffffffffff") == NULL, "absent hash gives NULL");

    /* a different text under the same hash is a collision */
    char forged[128];
    snprintf(forged, sizeof forged,
             "UPDATE inputs SET body = 'something else' WHERE hash = '%s'", h1);
    CHECK(raw_exec(path, forged), "forge a colliding body");
    diag_clear(&e);
    CHECK(store_put_input(s, "model", "opt-1.3b", text, h1, &e) != LLMSIM_OK, "collision found");
    CHECK(strstr(e.msg, "collision") != NULL, "collision message: %s", e.msg);
    store_close(s);
}

// ---- the run lifecycle

static int64_t begin_run(store *s, const char *kind, const char *model_name, const char *hw,
                         const char *model_hash)
{
    store_run_info info = {
        .kind = kind, .model_hash = model_hash, .model_name = model_name, .hw_name = hw,
        .command = "llmsim test",
    };
    diag e;
    diag_clear(&e);
    int64_t id = 0;
    CHECK(store_run_begin(s, &info, &id, &e) == LLMSIM_OK && id > 0, "begin: %s", e.msg);
    return id;
}

static void test_lifecycle(void)
{
    const char *path = tmp_path("runs.db");
    diag e;
    diag_clear(&e);
    store *s = NULL;
    CHECK(store_open(path, &s, &e) == LLMSIM_OK, "open: %s", e.msg);
    char mh[17];
    CHECK(store_put_input(s, "model", "opt-6.7b", "model text", mh, &e) == LLMSIM_OK, "put: %s",
          e.msg);

    /* begin -> metric -> stage -> commit */
    int64_t id = begin_run(s, "predict", "opt-6.7b", "t4", mh);
    char status[32];
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id = %lld", (long long)id);
    raw_text(path, sql, status, sizeof status);
    CHECK(strcmp(status, "running") == 0, "the 'running' row is visible to others: '%s'", status);
    CHECK(store_run_metric(s, id, "throughput_tok_s", 12.5, &e) == LLMSIM_OK, "metric: %s", e.msg);
    CHECK(store_run_metric(s, id, "total_s", 81.92, &e) == LLMSIM_OK, "metric: %s", e.msg);
    CHECK(store_run_stage(s, id, "decode", 1, "load_weight", 0.25, &e) == LLMSIM_OK, "stage: %s",
          e.msg);
    CHECK(store_run_stage(s, id, "prefill", 0, "compute", 1.5, &e) == LLMSIM_OK, "stage: %s",
          e.msg);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM run_metrics WHERE run_id = %lld",
             (long long)id);
    CHECK(raw_int(path, sql) == 0, "metrics invisible to others before commit");
    CHECK(store_run_commit(s, id, "ok", "{\"throughput_tok_s\": 12.5}", &e) == LLMSIM_OK,
          "commit: %s", e.msg);
    CHECK(raw_int(path, sql) == 2, "two metrics after commit");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM run_stages WHERE run_id = %lld", (long long)id);
    CHECK(raw_int(path, sql) == 2, "two stages after commit");

    store_run_row row = {0};
    CHECK(store_run_get(s, id, &row, &e) == LLMSIM_OK, "get: %s", e.msg);
    CHECK(row.id == id && row.status && strcmp(row.status, "ok") == 0, "status ok");
    CHECK(row.kind && strcmp(row.kind, "predict") == 0, "kind");
    CHECK(row.model_hash && strcmp(row.model_hash, mh) == 0, "model hash");
    CHECK(row.hw_hash == NULL, "no hw hash");
    CHECK(row.result_json && strstr(row.result_json, "12.5"), "result json");
    CHECK(row.tool_version && strcmp(row.tool_version, LLMSIM_VERSION) == 0, "tool version");
    CHECK(row.started_at && strlen(row.started_at) == 24 && row.started_at[10] == 'T' &&
              row.started_at[19] == '.' && row.started_at[23] == 'Z',
          "ISO-8601 UTC with ms: %s", row.started_at ? row.started_at : "(null)");
    CHECK(row.finished_at != NULL, "finished_at set");
    CHECK_REL(row.throughput_tok_s, 12.5, 1e-12, "throughput");
    CHECK_REL(row.total_s, 81.92, 1e-12, "total_s");
    store_row_clear(&row);
    store_row_clear(NULL);

    char **keys = NULL;
    double *values = NULL;
    int n = 0;
    CHECK(store_run_metrics(s, id, &keys, &values, &n, &e) == LLMSIM_OK && n == 2, "metrics: %s",
          e.msg);
    CHECK(n == 2 && strcmp(keys[0], "throughput_tok_s") == 0 && values[0] == 12.5,
          "metrics sorted by key");
    store_metrics_free(keys, values, n);
    store_metrics_free(NULL, NULL, 0);

    /* begin -> metric -> abort: nothing of the run but its marked row */
    for (int k = 0; k < 2; k++) {
        const char *as = k ? "interrupted" : "failed";
        int64_t bad = begin_run(s, "simulate", "opt-6.7b", "t4", NULL);
        CHECK(store_run_metric(s, bad, "total_s", 3.0, &e) == LLMSIM_OK, "metric: %s", e.msg);
        CHECK(store_run_stage(s, bad, "decode", 2, "compute", 1.0, &e) == LLMSIM_OK, "stage: %s",
              e.msg);
        store_run_abort(s, bad, as);
        diag_clear(&e);
        CHECK(store_run_get(s, bad, &row, &e) == LLMSIM_OK, "get aborted: %s", e.msg);
        CHECK(row.status && strcmp(row.status, as) == 0, "aborted run is '%s': %s", as,
              row.status ? row.status : "(null)");
        CHECK(isnan(row.total_s) && row.finished_at, "no metric persisted, finished_at set");
        store_row_clear(&row);
        snprintf(sql, sizeof sql,
                 "SELECT (SELECT count(*) FROM run_metrics WHERE run_id = %lld) + "
                 "(SELECT count(*) FROM run_stages WHERE run_id = %lld)",
                 (long long)bad, (long long)bad);
        CHECK(raw_int(path, sql) == 0, "no metrics or stages after abort");
    }

    /* misuse: a metric for a run that is not open */
    diag_clear(&e);
    CHECK(store_run_metric(s, id, "x", 1.0, &e) == LLMSIM_EFAIL, "metric after commit refused");

    /* a run left open is marked 'interrupted' by store_close */
    int64_t left = begin_run(s, "measure", "opt-6.7b", "t4", NULL);
    CHECK(store_run_metric(s, left, "total_s", 1.0, &e) == LLMSIM_OK, "metric: %s", e.msg);
    store_close(s);
    snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id = %lld", (long long)left);
    raw_text(path, sql, status, sizeof status);
    CHECK(strcmp(status, "interrupted") == 0, "closed with a run open: '%s'", status);
}

/* A process that begins a run and dies: its row is 'interrupted' after the
 * next open, and what it wrote inside the run is gone. */
static void test_dead_process(void)
{
    const char *path = tmp_path("dead.db");
    diag e;
    diag_clear(&e);
    store *s = NULL;
    CHECK(store_open(path, &s, &e) == LLMSIM_OK, "open: %s", e.msg);
    store_close(s); /* never carry an open connection across fork */

    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        store *cs = NULL;
        diag ce;
        diag_clear(&ce);
        store_run_info info = {.kind = "measure", .model_name = "opt-30b", .hw_name = "t4"};
        int64_t id = 0;
        int rc = store_open(path, &cs, &ce) == LLMSIM_OK &&
                         store_run_begin(cs, &info, &id, &ce) == LLMSIM_OK &&
                         store_run_metric(cs, id, "total_s", 42.0, &ce) == LLMSIM_OK
                     ? 0
                     : 3;
        _exit(rc); /* no commit, no close: as if killed */
    }
    CHECK(child > 0, "fork");
    int wstatus = 0;
    CHECK(waitpid(child, &wstatus, 0) == child && WIFEXITED(wstatus) &&
              WEXITSTATUS(wstatus) == 0,
          "child began its run");
    CHECK(raw_int(path, "SELECT count(*) FROM runs WHERE status = 'running'") == 1,
          "the child's run is still 'running'");
    long long pid = raw_int(path, "SELECT pid FROM runs");
    CHECK(pid == (long long)child, "the row carries the child's pid (%lld vs %lld)", pid,
          (long long)child);

    diag_clear(&e);
    CHECK(store_open(path, &s, &e) == LLMSIM_OK, "reopen: %s", e.msg);
    store_run_row *rows = NULL;
    int n = 0;
    CHECK(store_runs_list(s, NULL, &rows, &n, &e) == LLMSIM_OK && n == 1, "list: %s", e.msg);
    if (n == 1) {
        CHECK(strcmp(rows[0].status, "interrupted") == 0, "dead run is '%s'", rows[0].status);
        CHECK(rows[0].finished_at != NULL, "finished_at set");
        CHECK(isnan(rows[0].total_s), "the dead run's metric was rolled back");
    }
    store_rows_free(rows, n);

    /* Our own run is alive and stays 'running' across another open. It has
     * written a metric, so it holds the write lock: opening and listing
     * (what `llmsim runs` does) must neither wait for it nor fail. */
    int64_t mine = begin_run(s, "measure", "opt-30b", "t4", NULL);
    CHECK(store_run_metric(s, mine, "total_s", 1.0, &e) == LLMSIM_OK, "metric: %s", e.msg);
    store *other = NULL;
    time_t t0 = time(NULL);
    CHECK(store_open_existing(path, &other, &e) == LLMSIM_OK, "second handle: %s", e.msg);
    CHECK(other && store_runs_list(other, NULL, &rows, &n, &e) == LLMSIM_OK && n == 2,
          "list: %s", e.msg);
    CHECK(time(NULL) - t0 < 3, "a reader does not wait for the writer's lock");
    store_rows_free(rows, n);
    store_close(other);
    char sql[96], status[32];
    snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id = %lld", (long long)mine);
    raw_text(path, sql, status, sizeof status);
    CHECK(strcmp(status, "running") == 0, "a live run stays 'running': '%s'", status);
    CHECK(store_run_commit(s, mine, "ok", NULL, &e) == LLMSIM_OK, "commit: %s", e.msg);
    store_close(s);
}

// ---- queries

static void test_list(void)
{
    const char *path = tmp_path("list.db");
    diag e;
    diag_clear(&e);
    store *s = NULL;
    CHECK(store_open(path, &s, &e) == LLMSIM_OK, "open: %s", e.msg);
    const char *models[] = {"opt-6.7b", "opt-30b", "opt-6.7b", "opt-6.7b", "opt-30b"};
    const char *hws[] = {"t4", "t4", "a100", "t4", "a100"};
    const char *kinds[] = {"predict", "predict", "simulate", "predict", "measure"};
    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        ids[i] = begin_run(s, kinds[i], models[i], hws[i], NULL);
        CHECK(store_run_metric(s, ids[i], "throughput_tok_s", 10.0 * (i + 1), &e) == LLMSIM_OK,
              "metric: %s", e.msg);
        CHECK(store_run_commit(s, ids[i], "ok", "{}", &e) == LLMSIM_OK, "commit: %s", e.msg);
    }
    store_run_row *rows = NULL;
    int n = 0;
    CHECK(store_runs_list(s, NULL, &rows, &n, &e) == LLMSIM_OK && n == 5, "all: %d", n);
    for (int i = 0; i < n; i++) {
        CHECK(rows[i].id == ids[4 - i], "newest first");
        CHECK(rows[i].result_json == NULL, "no result in lists");
    }
    if (n == 5)
        CHECK_REL(rows[0].throughput_tok_s, 50.0, 1e-12, "newest throughput");
    store_rows_free(rows, n);

    store_run_filter f = {.model_name = "opt-6.7b"};
    CHECK(store_runs_list(s, &f, &rows, &n, &e) == LLMSIM_OK && n == 3, "model filter: %d", n);
    store_rows_free(rows, n);
    f = (store_run_filter){.model_name = "opt-6.7b", .hw_name = "t4"};
    CHECK(store_runs_list(s, &f, &rows, &n, &e) == LLMSIM_OK && n == 2, "model+hw: %d", n);
    store_rows_free(rows, n);
    f = (store_run_filter){.kind = "predict", .limit = 2};
    CHECK(store_runs_list(s, &f, &rows, &n, &e) == LLMSIM_OK && n == 2, "kind+limit: %d", n);
    if (n == 2)
        CHECK(rows[0].id == ids[3] && rows[1].id == ids[1], "the two newest predicts");
    store_rows_free(rows, n);
    f = (store_run_filter){.hw_name = "h100"};
    CHECK(store_runs_list(s, &f, &rows, &n, &e) == LLMSIM_OK && n == 0 && rows == NULL,
          "no match: %d", n);
    store_rows_free(rows, n);
    store_rows_free(NULL, 0);

    store_run_row row = {0};
    diag_clear(&e);
    CHECK(store_run_get(s, 999, &row, &e) == LLMSIM_EINPUT, "unknown id is EINPUT");
    CHECK(strstr(e.msg, "999") != NULL, "message names the id: %s", e.msg);
    store_row_clear(&row);
    store_close(s);
}

// ---- files the store must refuse

static void test_refuse(void)
{
    diag e;
    store *s = NULL;

    /* a store from a newer llmsim */
    const char *future = tmp_path("future.db");
    diag_clear(&e);
    CHECK(store_open(future, &s, &e) == LLMSIM_OK, "open: %s", e.msg);
    store_close(s);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STORE_SCHEMA_VERSION + 1);
    CHECK(raw_exec(future, sql), "bump user_version");
    diag_clear(&e);
    s = NULL;
    CHECK(store_open(future, &s, &e) == LLMSIM_EINPUT && s == NULL, "future store refused");
    CHECK(strstr(e.msg, "newer") != NULL, "message says newer: %s", e.msg);
    CHECK(raw_int(future, "PRAGMA user_version") == STORE_SCHEMA_VERSION + 1, "left untouched");

    /* a text file */
    const char *text = tmp_path("notes.txt");
    const char *content = "these are notes, not a database; SQLite must not accept this file "
                          "as one, nor write to it.\n";
    FILE *f = fopen(text, "w");
    CHECK(f != NULL, "write text file");
    if (f) {
        fputs(content, f);
        fclose(f);
    }
    diag_clear(&e);
    llmsim_status st = store_open(text, &s, &e);
    CHECK((st == LLMSIM_EINPUT || st == LLMSIM_EFAIL) && s == NULL, "text file refused");
    CHECK(strstr(e.msg, "not an llmsim store") != NULL, "message: %s", e.msg);
    char back[256] = "";
    f = fopen(text, "r");
    if (f) {
        size_t got = fread(back, 1, sizeof back - 1, f);
        back[got] = '\0';
        fclose(f);
    }
    CHECK(strcmp(back, content) == 0, "text file unchanged");

    /* another program's SQLite database */
    const char *alien = tmp_path("alien.db");
    CHECK(raw_exec(alien, "CREATE TABLE songs (title TEXT)"), "create alien db");
    diag_clear(&e);
    CHECK(store_open(alien, &s, &e) == LLMSIM_EINPUT, "alien database refused");
    CHECK(strstr(e.msg, "not an llmsim store") != NULL, "message: %s", e.msg);

    /* store_open_existing does not create */
    const char *missing = tmp_path("missing.db");
    diag_clear(&e);
    CHECK(store_open_existing(missing, &s, &e) == LLMSIM_EINPUT && s == NULL, "missing refused");
    CHECK(strstr(e.msg, "no store at") != NULL, "message: %s", e.msg);
    CHECK(access(missing, F_OK) != 0, "missing file not created");
    diag_clear(&e);
    CHECK(store_open_existing(future, &s, &e) == LLMSIM_EINPUT, "existing future refused too");

    /* a path in a directory that does not exist */
    const char *nodir = tmp_path("no/such/dir.db");
    diag_clear(&e);
    CHECK(store_open(nodir, &s, &e) == LLMSIM_EINPUT && s == NULL, "no directory: %s", e.msg);
}

static void fill_two_tasks(void *ctx, size_t i, store_task *out, char *id, size_t len)
{
    (void)ctx;
    *out = (store_task){i ? "disk" : "cpu", 0.5 * (double)i, 0.5 * (double)i + 0.25, 100.0 * (double)i,
                        0};
    snprintf(id, len, "s1.l%zu.compute", i);
}

/* Timings read back: tasks, stages, memory; find_run by inputs. */
static void test_timings(void)
{
    const char *path = tmp_path("timings.db");
    store *s = NULL;
    diag e;
    diag_clear(&e);
    CHECK(store_open(path, &s, &e) == LLMSIM_OK, "open: %s", e.msg);
    char mh[17], ph[17];
    CHECK(store_put_input(s, "model", "m", "model body", mh, &e) == LLMSIM_OK, "put: %s", e.msg);
    CHECK(store_put_input(s, "policy", NULL, "policy body", ph, &e) == LLMSIM_OK, "put: %s", e.msg);
    int64_t found = -1;
    CHECK(store_find_run(s, "measure", mh, NULL, ph, NULL, &found, &e) == LLMSIM_OK && found == 0,
          "no run yet: %lld", (long long)found);
    store_run_info info = {.kind = "measure", .model_hash = mh, .policy_hash = ph, .model_name = "m"};
    int64_t id = 0;
    CHECK(store_run_begin(s, &info, &id, &e) == LLMSIM_OK, "begin: %s", e.msg);
    CHECK(store_run_tasks(s, id, 2, fill_two_tasks, NULL, &e) == LLMSIM_OK, "tasks: %s", e.msg);
    CHECK(store_run_stage(s, id, "decode", 1, "compute", 0.75, &e) == LLMSIM_OK, "stage: %s", e.msg);
    const store_mem_sample mem[] = {{0.0, "cpu", 10}, {0.5, "disk", 20}, {1.0, "cpu", 5}};
    CHECK(store_run_memory(s, id, 3, mem, &e) == LLMSIM_OK, "memory: %s", e.msg);
    CHECK(store_find_run(s, "measure", mh, NULL, ph, NULL, &found, &e) == LLMSIM_OK && found == 0,
          "a running run is not found");
    CHECK(store_run_commit(s, id, "ok", "{}", &e) == LLMSIM_OK, "commit: %s", e.msg);
    CHECK(store_find_run(s, "measure", mh, NULL, ph, NULL, &found, &e) == LLMSIM_OK && found == id,
          "found the run: %lld", (long long)found);
    CHECK(store_find_run(s, "simulate", mh, NULL, ph, NULL, &found, &e) == LLMSIM_OK && found == 0,
          "another kind is not found");
    CHECK(store_find_run(s, "measure", mh, NULL, NULL, NULL, &found, &e) == LLMSIM_OK && found == 0,
          "another policy (none) is not found");

    store_task_row *tr = NULL;
    size_t nt = 0;
    CHECK(store_run_tasks_get(s, id, &tr, &nt, &e) == LLMSIM_OK && nt == 2, "two tasks: %zu", nt);
    if (nt == 2) {
        CHECK(strcmp(tr[1].task_id, "s1.l1.compute") == 0 && strcmp(tr[1].resource, "disk") == 0,
              "task 1: %s %s", tr[1].task_id, tr[1].resource);
        CHECK(tr[1].start_s == 0.5 && tr[1].end_s == 0.75 && tr[1].bytes == 100, "task 1 times");
    }
    free(tr);
    store_stage_row *sr = NULL;
    size_t ns = 0;
    CHECK(store_run_stages_get(s, id, &sr, &ns, &e) == LLMSIM_OK && ns == 1, "one stage: %zu", ns);
    if (ns == 1)
        CHECK(strcmp(sr[0].phase, "decode") == 0 && sr[0].step == 1 &&
                  strcmp(sr[0].stage, "compute") == 0 && sr[0].seconds == 0.75,
              "stage row");
    free(sr);
    store_mem_sample *mr = NULL;
    size_t nm = 0;
    CHECK(store_run_memory_get(s, id, &mr, &nm, &e) == LLMSIM_OK && nm == 3, "three samples: %zu", nm);
    if (nm == 3)
        CHECK(strcmp(mr[1].tier, "disk") == 0 && mr[1].bytes == 20 && mr[2].time_s == 1.0,
              "samples in order");
    free(mr);
    CHECK(store_run_tasks_get(s, id + 100, &tr, &nt, &e) == LLMSIM_OK && nt == 0, "no such run: none");
    free(tr);
    store_close(s);
}

/* Task i of a run large enough for several chunks: ids that share
 * prefixes, resources from a few, doubles of every kind (subnormal, -0,
 * NaN, infinity, big and small). */
static double odd_value(size_t i)
{
    const double odd[] = {0.0, -0.0, 5e-324, 1e300, -1.5, NAN, INFINITY, 3.0e-9};
    return i % 7 == 0 ? odd[(i / 7) % 8] : 1e-3 * (double)i + 1.0 / (double)(i + 3);
}

static void fill_big_tasks(void *ctx, size_t i, store_task *out, char *id, size_t len)
{
    (void)ctx;
    const char *res[] = {"cpu", "disk", "h2d", "gpu"};
    *out = (store_task){res[i % 4], odd_value(i), odd_value(i + 1), (double)(i % 5) * 4096.0,
                        odd_value(3 * i)};
    snprintf(id, len, "s%zu.l%zu.b%zu.%s", i / 1000, (i / 10) % 100, i % 10,
             i % 3 ? "compute" : "c_disk");
}

static bool same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static int cmp_task_id(const void *a, const void *b)
{
    return strcmp(((const store_task_row *)a)->task_id, ((const store_task_row *)b)->task_id);
}

/* The packed form gives back every row exactly, across chunks; a damaged
 * chunk is an error naming the run, never garbage. */
static void test_packed(void)
{
    const char *path = tmp_path("packed.db");
    store *s = NULL;
    diag e;
    diag_clear(&e);
    CHECK(store_open(path, &s, &e) == LLMSIM_OK, "open: %s", e.msg);
    if (!s)
        return;
    enum { N = 150000, NM = 70000 };
    int64_t id = begin_run(s, "simulate", "m", "h", NULL);
    store_mem_sample *mem = malloc(NM * sizeof *mem);
    for (size_t i = 0; mem && i < NM; i++)
        mem[i] = (store_mem_sample){odd_value(i), i % 3 ? "cpu" : "disk", odd_value(i + 2)};
    CHECK(store_run_tasks(s, id, N, fill_big_tasks, NULL, &e) == LLMSIM_OK, "tasks: %s", e.msg);
    CHECK(mem && store_run_memory(s, id, NM, mem, &e) == LLMSIM_OK, "memory: %s", e.msg);
    CHECK(store_run_commit(s, id, "ok", "{}", &e) == LLMSIM_OK, "commit: %s", e.msg);
    CHECK(raw_int(path, "SELECT count(*) FROM run_chunks WHERE what = 'tasks'") ==
              (N + PACK_CHUNK_ROWS - 1) / PACK_CHUNK_ROWS,
          "tasks in chunks of %d", PACK_CHUNK_ROWS);
    CHECK(raw_int(path, "SELECT sum(length(data)) FROM run_chunks") < 16LL * N,
          "packed: %lld bytes for %d tasks", raw_int(path, "SELECT sum(length(data)) FROM run_chunks"),
          N);

    store_task_row *tr = NULL;
    size_t nt = 0;
    CHECK(store_run_tasks_get(s, id, &tr, &nt, &e) == LLMSIM_OK && nt == N, "%zu tasks back", nt);
    if (nt == N) {
        qsort(tr, nt, sizeof *tr, cmp_task_id); /* ids are unique: any order compares */
        size_t bad = 0;
        for (size_t i = 0; i < N; i++) {
            store_task t;
            char want[128];
            fill_big_tasks(NULL, i, &t, want, sizeof want);
            store_task_row key;
            snprintf(key.task_id, sizeof key.task_id, "%s", want);
            const store_task_row *g = bsearch(&key, tr, nt, sizeof *tr, cmp_task_id);
            bad += !g || strcmp(g->resource, t.resource) != 0 || !same_bits(g->start_s, t.start_s) ||
                   !same_bits(g->end_s, t.end_s) || !same_bits(g->bytes, t.bytes) ||
                   !same_bits(g->flops, t.flops);
        }
        CHECK(bad == 0, "every task back bit for bit (%zu differ)", bad);
    }
    free(tr);
    store_mem_sample *mr = NULL;
    size_t nm = 0;
    CHECK(store_run_memory_get(s, id, &mr, &nm, &e) == LLMSIM_OK && nm == NM, "%zu samples", nm);
    size_t badm = 0;
    for (size_t i = 0; mem && nm == NM && i < NM; i++)
        badm += strcmp(mr[i].tier, mem[i].tier) != 0 || !same_bits(mr[i].time_s, mem[i].time_s) ||
                !same_bits(mr[i].bytes, mem[i].bytes);
    CHECK(nm == NM && badm == 0, "every sample back in order (%zu differ)", badm);
    free(mr);
    free(mem);
    store_close(s);

    /* damage: a byte of the zlib stream, then a chunk that claims more rows */
    CHECK(raw_exec(path, "UPDATE run_chunks SET data = substr(data, 1, 20) || x'00ff00ff' || "
                         "substr(data, 25) WHERE what = 'tasks' AND chunk = 1"),
          "damage a chunk");
    diag_clear(&e);
    CHECK(store_open_existing(path, &s, &e) == LLMSIM_OK, "reopen: %s", e.msg);
    CHECK(store_run_tasks_get(s, id, &tr, &nt, &e) == LLMSIM_EINPUT && !tr && nt == 0,
          "a damaged chunk is refused");
    CHECK(strstr(e.msg, "task timings of run") && strstr(e.msg, "damaged"), "message: %s", e.msg);
    store_close(s);
    CHECK(raw_exec(path, "UPDATE run_chunks SET rows = rows + 1 WHERE what = 'memory'"),
          "miscount a chunk");
    diag_clear(&e);
    CHECK(store_open_existing(path, &s, &e) == LLMSIM_OK, "reopen: %s", e.msg);
    CHECK(store_run_memory_get(s, id, &mr, &nm, &e) == LLMSIM_EINPUT && !mr, "miscounted: refused");
    CHECK(strstr(e.msg, "memory samples of run") && strstr(e.msg, "damaged"), "message: %s", e.msg);
    store_close(s);
}

/* A store written by llmsim with schema version 2 (tests/data/store/v2.db: a
 * predict and a simulate run) migrates to the current version keeping every
 * row, accepts the kinds added since, and still enforces foreign keys. */
static void test_migrate_v2(void)
{
    const char *path = tmp_path("v2.db");
    FILE *in = fopen(tap_data("store/v2.db"), "rb"), *out = fopen(path, "wb");
    CHECK(in && out, "copy the version-2 fixture");
    if (!in || !out) {
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        return;
    }
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, k, out);
    fclose(in);
    fclose(out);
    CHECK(raw_int(path, "PRAGMA user_version") == 2, "fixture at version 2");
    long long runs = raw_int(path, "SELECT count(*) FROM runs");
    long long tasks = raw_int(path, "SELECT count(*) FROM run_tasks");
    long long mem = raw_int(path, "SELECT count(*) FROM run_memory");
    long long metrics = raw_int(path, "SELECT count(*) FROM run_metrics");
    CHECK(runs == 2 && tasks > 0 && mem > 0 && metrics > 0, "fixture has rows");

    diag e;
    diag_clear(&e);
    store *s = NULL;
    CHECK(store_open(path, &s, &e) == LLMSIM_OK, "open v2: %s", e.msg);
    if (!s)
        return;
    CHECK(raw_int(path, "PRAGMA user_version") == STORE_SCHEMA_VERSION, "migrated");
    CHECK(raw_int(path, "SELECT count(*) FROM runs") == runs, "runs kept");
    CHECK(raw_int(path, "SELECT count(*) FROM run_tasks") == tasks, "tasks kept");
    /* rows recorded before the packed form are still read */
    store_task_row *tr = NULL;
    size_t nt = 0;
    long long run2_tasks = raw_int(path, "SELECT count(*) FROM run_tasks WHERE run_id = 2");
    CHECK(store_run_tasks_get(s, 2, &tr, &nt, &e) == LLMSIM_OK && (long long)nt == run2_tasks &&
              nt > 0,
          "run 2's %zu task rows read (%lld stored): %s", nt, run2_tasks, e.msg);
    free(tr);
    store_mem_sample *mr = NULL;
    size_t nm = 0;
    long long run2_mem = raw_int(path, "SELECT count(*) FROM run_memory WHERE run_id = 2");
    CHECK(store_run_memory_get(s, 2, &mr, &nm, &e) == LLMSIM_OK && (long long)nm == run2_mem,
          "run 2's %zu memory samples read (%lld stored)", nm, run2_mem);
    free(mr);
    CHECK(raw_int(path, "SELECT count(*) FROM run_memory") == mem, "memory kept");
    CHECK(raw_int(path, "SELECT count(*) FROM run_metrics") == metrics, "metrics kept");
    CHECK(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                        "name IN ('runs_kind', 'runs_inputs', 'runs_model_name', 'runs_hw_name')") == 4,
          "indexes rebuilt");
    CHECK(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'runs_new'") == 0,
          "no leftover table");

    int64_t id = begin_run(s, "serve", "llama-2-7b", "a100", NULL);
    CHECK(id > 0, "a 'serve' run after the migration");
    CHECK(store_run_metric(s, id, "throughput_tok_s", 1.0, &e) == LLMSIM_OK, "metric: %s", e.msg);
    CHECK(store_run_commit(s, id, "ok", "{}", &e) == LLMSIM_OK, "commit: %s", e.msg);
    /* deleting a run still cascades to its children: foreign keys are on */
    CHECK(raw_int(path, "SELECT count(*) FROM run_metrics WHERE run_id = 1") > 0, "run 1 metrics");
    store_close(s);
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) == SQLITE_OK) {
        sqlite3_exec(db, "PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id = 1", NULL, NULL, NULL);
        sqlite3_close(db);
    }
    CHECK(raw_int(path, "SELECT count(*) FROM run_metrics WHERE run_id = 1") == 0,
          "children follow the rebuilt runs table");
}

/* Task rows of every run, as packed (a chunk knows its row count). */
#define TASK_ROWS "SELECT coalesce(sum(rows), 0) FROM run_chunks WHERE what = 'tasks'"

static void fill_many_tasks(void *ctx, size_t i, store_task *out, char *id, size_t len)
{
    (void)ctx;
    *out = (store_task){"cpu", (double)i, (double)i + 0.5, 1.0, 0};
    snprintf(id, len, "s%zu.compute", i);
}

/* One writer process: `runs` runs of 200 tasks each, each committed; exit 0
 * when every one was. */
static int writer(const char *path, int runs, int who)
{
    for (int r = 0; r < runs; r++) {
        store *s = NULL;
        diag e;
        diag_clear(&e);
        char name[32];
        snprintf(name, sizeof name, "writer-%d", who);
        store_run_info info = {.kind = "simulate", .model_name = name, .hw_name = "t4"};
        int64_t id = 0;
        if (store_open(path, &s, &e) || store_run_begin(s, &info, &id, &e) ||
            store_run_metric(s, id, "total_s", (double)r, &e) ||
            store_run_tasks(s, id, 200, fill_many_tasks, NULL, &e) ||
            store_run_commit(s, id, "ok", "{}", &e)) {
            fprintf(stderr, "writer %d run %d: %s\n", who, r, e.msg);
            store_close(s);
            return 1;
        }
        store_close(s);
    }
    return 0;
}

/* Four processes writing one store at once lose no run and never see it
 * locked; one killed with SIGKILL in the middle of its writes leaves a store
 * that passes the integrity check, its run marked interrupted at the next
 * open and its rows rolled back. */
static void test_concurrent_and_killed(void)
{
    const char *path = tmp_path("busy.db");
    diag e;
    diag_clear(&e);
    store *s = NULL;
    CHECK(store_open(path, &s, &e) == LLMSIM_OK, "open: %s", e.msg);
    store_close(s);
    enum { WRITERS = 4, RUNS = 25 };
    pid_t kids[WRITERS];
    fflush(NULL);
    for (int w = 0; w < WRITERS; w++)
        if ((kids[w] = fork()) == 0)
            _exit(writer(path, RUNS, w));
    int ok = 0;
    for (int w = 0; w < WRITERS; w++) {
        int ws = 0;
        ok += kids[w] > 0 && waitpid(kids[w], &ws, 0) == kids[w] && WIFEXITED(ws) &&
              WEXITSTATUS(ws) == 0;
    }
    CHECK(ok == WRITERS, "%d of %d writers committed every run (none saw the store locked)", ok,
          WRITERS);
    CHECK(raw_int(path, "SELECT count(*) FROM runs WHERE status = 'ok'") == WRITERS * RUNS,
          "every run is there (%lld of %d)",
          raw_int(path, "SELECT count(*) FROM runs WHERE status = 'ok'"), WRITERS * RUNS);
    CHECK(raw_int(path, TASK_ROWS) == WRITERS * RUNS * 200, "every task row is there");

    /* killed mid-write, at three moments */
    const int delays_us[3] = {2000, 20000, 60000};
    for (int k = 0; k < 3; k++) {
        const long long before = raw_int(path, TASK_ROWS);
        const long long done_before = raw_int(path, "SELECT count(*) FROM runs WHERE status = "
                                                    "'ok' AND model_name = 'writer-9'");
        fflush(NULL);
        pid_t kid = fork();
        if (kid == 0)
            _exit(writer(path, 1000, 9));
        struct timespec ts = {0, delays_us[k] * 1000L};
        nanosleep(&ts, NULL);
        kill(kid, SIGKILL);
        int ws = 0;
        waitpid(kid, &ws, 0);
        char check[64] = "";
        raw_text(path, "PRAGMA integrity_check", check, sizeof check);
        CHECK(strcmp(check, "ok") == 0, "killed after %d us: integrity_check says '%s'",
              delays_us[k], check);
        diag_clear(&e);
        CHECK(store_open(path, &s, &e) == LLMSIM_OK, "reopen after the kill: %s", e.msg);
        store_close(s);
        CHECK(raw_int(path, "SELECT count(*) FROM runs WHERE status = 'running'") == 0,
              "killed after %d us: no run left 'running'", delays_us[k]);
        const long long done = raw_int(path, "SELECT count(*) FROM runs WHERE status = 'ok' AND "
                                             "model_name = 'writer-9'");
        const long long rows = raw_int(path, TASK_ROWS);
        CHECK(rows == before + 200 * (done - done_before),
              "killed after %d us: the task rows are those of the %lld runs it committed (%lld "
              "rows, %lld before)", delays_us[k], done - done_before, rows, before);
        CHECK(raw_int(path, "SELECT count(*) FROM run_chunks t JOIN runs r ON r.id = t.run_id "
                            "WHERE r.status <> 'ok'") == 0,
              "killed after %d us: no task row of an unfinished run", delays_us[k]);
    }
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/llmsim-test-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_open_schema();
    test_inputs();
    test_lifecycle();
    test_dead_process();
    test_concurrent_and_killed();
    test_list();
    test_timings();
    test_packed();
    test_migrate_v2();
    test_refuse();
    cleanup();
    return tap_done();
}
