/*
 * store — the SQLite store (see store.h and ARCHITECTURE §10).
 *
 * Policy:
 * - Every sqlite3 call is checked. A failure records sqlite3_errmsg, the SQL
 *   (or the C call) and file:line in the caller's diag as LLMSIM_EFAIL; a file
 *   that is not a database, a locked database or a path that cannot be opened
 *   or written is the user's to fix and reads as one clear LLMSIM_EINPUT line.
 * - SQL text is constant; values always go through bound parameters.
 * - Schema changes are append-only entries of store_migrations[]; entry i
 *   takes user_version i to i + 1 inside one BEGIN IMMEDIATE transaction.
 * - A handle is used by one thread at a time. Strings handed out are strdup'd
 *   and owned by the result they are in; the matching *_free releases them.
 * - Timestamps are ISO-8601 UTC with milliseconds, made by SQLite itself.
 */
#include "db/store.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/grow.h"
#include "common/hash.h"
#include "db/pack.h"

#ifndef LLMSIM_VERSION
#define LLMSIM_VERSION "unknown"
#endif

#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_NOW "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

struct store {
    sqlite3 *db;
    char *path;       /* as given, for messages */
    char host[256];   /* gethostname(), recorded with each run */
    int64_t run_open; /* run whose transaction is open; 0 when none */
};

// ---- schema

/* The columns of runs after `kind`, and the indexes on its names: written
 * once for migration 0, which creates the table, and migration 2, which
 * rebuilds it with only the kind CHECK changed. They are part of shipped
 * migrations: never edit them; a new migration changes the table. */
#define STORE_RUNS_COLUMNS_AFTER_KIND                                                              \
    "  status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),\n"       \
    "  model_hash TEXT REFERENCES inputs(hash),\n"                                                 \
    "  hw_hash TEXT REFERENCES inputs(hash),\n"                                                    \
    "  policy_hash TEXT REFERENCES inputs(hash),\n"                                                \
    "  workload_hash TEXT REFERENCES inputs(hash),\n"                                              \
    "  model_name TEXT,\n"                                                                         \
    "  hw_name TEXT,\n"                                                                            \
    "  tool_version TEXT NOT NULL,\n"                                                              \
    "  command TEXT,\n"                                                                            \
    "  host TEXT,\n"                                                                               \
    "  pid INTEGER,\n"                                                                             \
    "  started_at TEXT NOT NULL,\n"                                                                \
    "  finished_at TEXT,\n"                                                                        \
    "  result_json TEXT\n"                                                                         \
    ");\n"
#define STORE_RUNS_NAME_INDEXES                                                                    \
    "CREATE INDEX runs_model_name ON runs(model_name);\n"                                          \
    "CREATE INDEX runs_hw_name ON runs(hw_name);\n"                                                \
    "CREATE INDEX runs_kind ON runs(kind);\n"

/* Append-only: never edit an entry that has shipped; add a new one. */
static const char *const store_migrations[] = {
    /* 0 -> 1: inputs, runs, and per-run metrics, stage and task timings */
    "CREATE TABLE inputs (\n"
    "  hash TEXT PRIMARY KEY,\n"
    "  kind TEXT NOT NULL CHECK (kind IN ('model', 'hwprofile', 'policy', 'workload')),\n"
    "  name TEXT,\n"
    "  body TEXT NOT NULL,\n"
    "  created_at TEXT NOT NULL\n"
    ");\n"
    "CREATE TABLE runs (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  kind TEXT NOT NULL CHECK (kind IN ('predict', 'simulate', 'measure', 'search', 'profile',\n"
    "                                     'validate', 'calibrate')),\n"
    STORE_RUNS_COLUMNS_AFTER_KIND
    STORE_RUNS_NAME_INDEXES
    "CREATE TABLE run_metrics (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  key TEXT NOT NULL,\n"
    "  value REAL,\n"
    "  PRIMARY KEY (run_id, key)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE run_stages (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  phase TEXT NOT NULL CHECK (phase IN ('prefill', 'decode')),\n"
    "  step INTEGER NOT NULL,\n"
    "  stage TEXT NOT NULL,\n"
    "  seconds REAL,\n"
    "  PRIMARY KEY (run_id, phase, step, stage)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE run_tasks (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  task_id TEXT NOT NULL,\n"
    "  resource TEXT,\n"
    "  start_s REAL,\n"
    "  end_s REAL,\n"
    "  bytes REAL,\n"
    "  flops REAL,\n"
    "  PRIMARY KEY (run_id, task_id)\n"
    ") WITHOUT ROWID;\n",
    /* 1 -> 2: memory per tier over time (simulated, or rebuilt from measured
     * task times), for report's plots */
    "CREATE TABLE run_memory (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  seq INTEGER NOT NULL,\n"
    "  time_s REAL NOT NULL,\n"
    "  tier TEXT NOT NULL,\n"
    "  bytes REAL NOT NULL,\n"
    "  PRIMARY KEY (run_id, seq)\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX runs_inputs ON runs(kind, model_hash, hw_hash, policy_hash, workload_hash);\n",
    /* 2 -> 3: runs of kind 'serve' (the serving simulator). SQLite cannot
     * alter a CHECK constraint: the table is rebuilt (the store runs
     * migrations with foreign keys off, so the children's rows stay). */
    "CREATE TABLE runs_new (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  kind TEXT NOT NULL CHECK (kind IN ('predict', 'simulate', 'measure', 'search', 'profile',\n"
    "                                     'validate', 'calibrate', 'serve')),\n"
    STORE_RUNS_COLUMNS_AFTER_KIND
    "INSERT INTO runs_new SELECT id, kind, status, model_hash, hw_hash, policy_hash, workload_hash,\n"
    "  model_name, hw_name, tool_version, command, host, pid, started_at, finished_at, result_json\n"
    "  FROM runs;\n"
    "DROP TABLE runs;\n"
    "ALTER TABLE runs_new RENAME TO runs;\n"
    STORE_RUNS_NAME_INDEXES
    "CREATE INDEX runs_inputs ON runs(kind, model_hash, hw_hash, policy_hash, workload_hash);\n",
    /* 3 -> 4: runs of kind 'serve-measure' (the serving engine), and the rows
     * of a serving run, predicted or measured: one per iteration (what ran,
     * the blocks held, the swaps, the times) and one per request */
    "CREATE TABLE runs_new (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  kind TEXT NOT NULL CHECK (kind IN ('predict', 'simulate', 'measure', 'search', 'profile',\n"
    "                                     'validate', 'calibrate', 'serve', 'serve-measure')),\n"
    STORE_RUNS_COLUMNS_AFTER_KIND
    "INSERT INTO runs_new SELECT id, kind, status, model_hash, hw_hash, policy_hash, workload_hash,\n"
    "  model_name, hw_name, tool_version, command, host, pid, started_at, finished_at, result_json\n"
    "  FROM runs;\n"
    "DROP TABLE runs;\n"
    "ALTER TABLE runs_new RENAME TO runs;\n"
    STORE_RUNS_NAME_INDEXES
    "CREATE INDEX runs_inputs ON runs(kind, model_hash, hw_hash, policy_hash, workload_hash);\n"
    "CREATE TABLE serve_iterations (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  iter INTEGER NOT NULL,\n"
    "  start_s REAL NOT NULL,\n"
    "  end_s REAL NOT NULL,\n"
    "  predicted_s REAL,\n"
    "  seqs INTEGER NOT NULL,\n"
    "  prefill_tokens INTEGER NOT NULL,\n"
    "  decode_tokens INTEGER NOT NULL,\n"
    "  dev_blocks INTEGER NOT NULL,\n"
    "  swap_blocks INTEGER NOT NULL,\n"
    "  out_blocks INTEGER NOT NULL,\n"
    "  in_blocks INTEGER NOT NULL,\n"
    "  swapped_bytes REAL NOT NULL,\n"
    "  preempt_swap INTEGER NOT NULL,\n"
    "  preempt_recompute INTEGER NOT NULL,\n"
    "  sched_s REAL,\n"
    "  swap_s REAL,\n"
    "  weights_s REAL,\n"
    "  PRIMARY KEY (run_id, iter)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE serve_requests (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  req INTEGER NOT NULL,\n"
    "  arrival_s REAL NOT NULL,\n"
    "  admitted_s REAL,\n"
    "  first_token_s REAL,\n"
    "  finish_s REAL,\n"
    "  prompt_tokens INTEGER NOT NULL,\n"
    "  output_tokens INTEGER NOT NULL,\n"
    "  weight REAL NOT NULL,\n"
    "  swaps INTEGER NOT NULL,\n"
    "  recomputes INTEGER NOT NULL,\n"
    "  PRIMARY KEY (run_id, req)\n"
    ") WITHOUT ROWID;\n",
    /* 4 -> 5: the prefix cache: prompt tokens each iteration's admissions
     * found cached, and each request's over its admissions */
    "ALTER TABLE serve_iterations ADD COLUMN hit_tokens INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE serve_requests ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;\n",
    /* 5 -> 6: runs of status 'infeasible' (a prediction or simulation of a
     * policy that does not fit); the table rebuilt for its CHECK */
    "CREATE TABLE runs_new (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  kind TEXT NOT NULL CHECK (kind IN ('predict', 'simulate', 'measure', 'search', 'profile',\n"
    "                                     'validate', 'calibrate', 'serve', 'serve-measure')),\n"
    "  status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted',\n"
    "                                         'infeasible')),\n"
    "  model_hash TEXT REFERENCES inputs(hash),\n"
    "  hw_hash TEXT REFERENCES inputs(hash),\n"
    "  policy_hash TEXT REFERENCES inputs(hash),\n"
    "  workload_hash TEXT REFERENCES inputs(hash),\n"
    "  model_name TEXT,\n"
    "  hw_name TEXT,\n"
    "  tool_version TEXT NOT NULL,\n"
    "  command TEXT,\n"
    "  host TEXT,\n"
    "  pid INTEGER,\n"
    "  started_at TEXT NOT NULL,\n"
    "  finished_at TEXT,\n"
    "  result_json TEXT\n"
    ");\n"
    "INSERT INTO runs_new SELECT id, kind, status, model_hash, hw_hash, policy_hash, workload_hash,\n"
    "  model_name, hw_name, tool_version, command, host, pid, started_at, finished_at, result_json\n"
    "  FROM runs;\n"
    "DROP TABLE runs;\n"
    "ALTER TABLE runs_new RENAME TO runs;\n"
    STORE_RUNS_NAME_INDEXES
    "CREATE INDEX runs_inputs ON runs(kind, model_hash, hw_hash, policy_hash, workload_hash);\n",
    /* 6 -> 7: per-task timings and memory samples packed, a chunk of rows
     * per blob (db/pack.h); runs recorded before keep their rows in
     * run_tasks and run_memory, which are still read */
    "CREATE TABLE run_chunks (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  what TEXT NOT NULL CHECK (what IN ('tasks', 'memory')),\n"
    "  chunk INTEGER NOT NULL,\n"
    "  rows INTEGER NOT NULL,\n"
    "  data BLOB NOT NULL,\n"
    "  PRIMARY KEY (run_id, what, chunk)\n"
    ");\n",
};

_Static_assert(sizeof store_migrations / sizeof store_migrations[0] == STORE_SCHEMA_VERSION,
               "one migration per schema version");

// ---- error reporting

/* Record a failed sqlite3 call in e and return its status. `what` is the SQL
 * or the C call that failed. Must run before any other call on the handle,
 * which would overwrite sqlite3_errmsg. */
static llmsim_status store_fail(const store *s, diag *e, int rc, const char *what, const char *file,
                                int line)
{
    const char *path = s && s->path ? s->path : "<store>";
    const char *msg = s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
        return diag_set(e, LLMSIM_EINPUT,
                        "%s: not an llmsim store (SQLite: %s); pass --db with another path", path,
                        msg);
    case SQLITE_CORRUPT:
        return diag_set(e, LLMSIM_EINPUT,
                        "%s: the store is damaged (SQLite: %s); restore it or use another --db",
                        path, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return diag_set(e, LLMSIM_EINPUT,
                        "%s: the store is locked by another process (waited %d s); retry when it "
                        "finishes",
                        path, STORE_BUSY_TIMEOUT_MS / 1000);
    case SQLITE_CANTOPEN:
        return diag_set(e, LLMSIM_EINPUT,
                        "%s: cannot open the store (SQLite: %s); check that the directory exists "
                        "and is writable",
                        path, msg);
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return diag_set(e, LLMSIM_EINPUT,
                        "%s: cannot write the store (SQLite: %s); check its permissions", path,
                        msg);
    case SQLITE_FULL:
        return diag_set(e, LLMSIM_EFAIL, "%s: the disk is full (SQLite: %s); free space, or give "
                        "--db a store on another disk", path, msg);
    case SQLITE_IOERR:
        return diag_set(e, LLMSIM_EFAIL, "%s: reading or writing the store failed (SQLite: %s); "
                        "the disk may be full or failing: free space or check it, or give --db a "
                        "store elsewhere", path, msg);
    default:
        /* where in llmsim it happened is for a developer: LLMSIM_DEBUG=1 shows it */
        if (getenv("LLMSIM_DEBUG"))
            return diag_set(e, LLMSIM_EFAIL, "%s: SQLite error %d: %s (in `%s`, %s:%d)", path, rc,
                            msg, what, file, line);
        return diag_set(e, LLMSIM_EFAIL, "%s: SQLite error %d: %s", path, rc, msg);
    }
}

/* The checks below expect a local `llmsim_status st` and a `fail:` label. */

/* A call that returns SQLITE_OK on success (bind, exec, ...). */
#define STORE_CHECK(s, e, call)                                                                 \
    do {                                                                                        \
        int rc_ = (call);                                                                       \
        if (rc_ != SQLITE_OK) {                                                                 \
            st = store_fail((s), (e), rc_, #call, __FILE__, __LINE__);                          \
            goto fail;                                                                          \
        }                                                                                       \
    } while (0)

/* Prepare `sql` into *stmt; a failure names the SQL. */
#define STORE_PREPARE(s, e, stmt, sql)                                                          \
    do {                                                                                        \
        int rc_ = sqlite3_prepare_v2((s)->db, (sql), -1, &(stmt), NULL);                       \
        if (rc_ != SQLITE_OK) {                                                                 \
            st = store_fail((s), (e), rc_, (sql), __FILE__, __LINE__);                          \
            goto fail;                                                                          \
        }                                                                                       \
    } while (0)

/* Step a statement that returns no rows. */
#define STORE_STEP_DONE(s, e, stmt)                                                             \
    do {                                                                                        \
        int rc_ = sqlite3_step(stmt);                                                           \
        if (rc_ != SQLITE_DONE) {                                                               \
            st = store_fail((s), (e), rc_, sqlite3_sql(stmt), __FILE__, __LINE__);              \
            goto fail;                                                                          \
        }                                                                                       \
    } while (0)

/* Step a statement that is expected to return a row (*has_row) or none. */
#define STORE_STEP_ROW(s, e, stmt, has_row)                                                     \
    do {                                                                                        \
        int rc_ = sqlite3_step(stmt);                                                           \
        if (rc_ != SQLITE_ROW && rc_ != SQLITE_DONE) {                                          \
            st = store_fail((s), (e), rc_, sqlite3_sql(stmt), __FILE__, __LINE__);              \
            goto fail;                                                                          \
        }                                                                                       \
        (has_row) = rc_ == SQLITE_ROW;                                                          \
    } while (0)

/* Run constant SQL without parameters (transaction control, DDL). */
#define STORE_EXEC(s, e, sql)                                                                   \
    do {                                                                                        \
        int rc_ = sqlite3_exec((s)->db, (sql), NULL, NULL, NULL);                               \
        if (rc_ != SQLITE_OK) {                                                                 \
            st = store_fail((s), (e), rc_, (sql), __FILE__, __LINE__);                          \
            goto fail;                                                                          \
        }                                                                                       \
    } while (0)

/* A step of this file that returns a status of its own. */
#define STORE_TRY(call)                                                                         \
    do {                                                                                        \
        st = (call);                                                                            \
        if (st != LLMSIM_OK)                                                                    \
            goto fail;                                                                          \
    } while (0)

/* Roll back an open transaction, if any, after a failure. Its own result is
 * not reported: the first error is already in the diag, and SQLite rolls back
 * by itself when the statement that failed has already ended it. */
static void store_rollback(store *s)
{
    if (s && s->db && !sqlite3_get_autocommit(s->db))
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* strdup that passes NULL through. */
static char *store_strdup(const char *t) { return t ? strdup(t) : NULL; }

// ---- statements

/* Prepare `sql` into *out with ?1 bound to run_id (a run's id). On failure
 * *out is NULL. */
static llmsim_status store_prepare_id(store *s, const char *sql, int64_t run_id,
                                      sqlite3_stmt **out, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    sqlite3_stmt *q = NULL;
    STORE_PREPARE(s, e, q, sql);
    STORE_CHECK(s, e, sqlite3_bind_int64(q, 1, run_id));
    *out = q;
    return LLMSIM_OK;
fail:
    sqlite3_finalize(q);
    *out = NULL;
    return st;
}

/* Bind texts[0..n) to the parameters ?first.. of q; a NULL text binds NULL.
 * The texts must stay alive until q is stepped. */
static llmsim_status store_bind_texts(store *s, sqlite3_stmt *q, int first,
                                      const char *const *texts, int n, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    for (int i = 0; i < n; i++)
        STORE_CHECK(s, e, sqlite3_bind_text(q, first + i, texts[i], -1, SQLITE_STATIC));
fail:
    return st;
}

/* Take the current row of a query into the caller's context; false when out
 * of memory. */
typedef bool (*store_row_take)(sqlite3_stmt *q, void *ctx);

/* Step q through all its rows, handing each to take, then finalize it. Out
 * of memory reads "<store>: out of memory <doing>". */
static llmsim_status store_rows_each(store *s, sqlite3_stmt *q, store_row_take take, void *ctx,
                                     const char *doing, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    for (;;) {
        bool row = false;
        STORE_STEP_ROW(s, e, q, row);
        if (!row)
            break;
        if (!take(q, ctx)) {
            st = diag_set(e, LLMSIM_EFAIL, "%s: out of memory %s", s->path, doing);
            goto fail;
        }
    }
fail:
    sqlite3_finalize(q);
    return st;
}

// ---- opening, migrations, interrupted runs

/* SQL function llmsim_pid_gone(host, pid): 1 when the run's process was on
 * this host and no longer exists. Rows from other hosts are left alone. */
static void store_sql_pid_gone(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    const store *s = sqlite3_user_data(cx);
    const char *host = (const char *)sqlite3_value_text(argv[0]);
    sqlite3_int64 pid = sqlite3_value_int64(argv[1]);
    int gone = 0;
    if (host && strcmp(host, s->host) == 0 && pid > 0 && pid <= INT_MAX)
        gone = kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    sqlite3_result_int(cx, gone);
}

/* A statement that returns one row of one integer: *value (0 when no row). */
static llmsim_status store_query_int(store *s, const char *sql, int *value, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    sqlite3_stmt *q = NULL;
    bool row = false;
    STORE_PREPARE(s, e, q, sql);
    STORE_STEP_ROW(s, e, q, row);
    *value = row ? sqlite3_column_int(q, 0) : 0;
fail:
    sqlite3_finalize(q);
    return st;
}

/* The schema version of the store, refused when newer than this llmsim's. */
static llmsim_status store_known_version(store *s, int *version, diag *e)
{
    llmsim_status st = store_query_int(s, "PRAGMA user_version", version, e);
    if (st == LLMSIM_OK && *version > STORE_SCHEMA_VERSION)
        st = diag_set(e, LLMSIM_EINPUT,
                      "%s: store schema version %d is newer than this llmsim (%s) knows (%d); "
                      "use a newer llmsim or another --db",
                      s->path, *version, LLMSIM_VERSION, STORE_SCHEMA_VERSION);
    return st;
}

/* user_version 0 with tables in it: some other program's database. */
static llmsim_status store_refuse_foreign(store *s, diag *e)
{
    int objects = 0;
    llmsim_status st = store_query_int(s, "SELECT count(*) FROM sqlite_master", &objects, e);
    if (st == LLMSIM_OK && objects > 0)
        st = diag_set(e, LLMSIM_EINPUT,
                      "%s: an SQLite database but not an llmsim store (it has tables and "
                      "no llmsim schema version); pass --db with another path",
                      s->path);
    return st;
}

/* Migration `version` -> version + 1 inside the open transaction, refused
 * when it would leave a dangling reference. */
static llmsim_status store_migrate_one(store *s, int version, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    sqlite3_stmt *q = NULL;
    STORE_EXEC(s, e, store_migrations[version]);
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", version + 1);
    STORE_EXEC(s, e, pragma);
    bool bad = false;
    STORE_PREPARE(s, e, q, "PRAGMA foreign_key_check");
    STORE_STEP_ROW(s, e, q, bad);
    if (bad)
        st = diag_set(e, LLMSIM_EFAIL,
                      "%s: migrating the store to version %d would break its references; "
                      "it is left at version %d", s->path, version + 1, version);
fail:
    sqlite3_finalize(q);
    return st;
}

/* Apply the migrations this database lacks, each in its own transaction. The
 * version is read inside the transaction, so two processes opening a new
 * file at once apply each migration once. */
static llmsim_status store_migrate(store *s, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    /* SQLite's procedure for schema changes that rebuild a table: foreign
     * keys off (a no-op inside a transaction, so here), checked before each
     * commit, and on again after. */
    STORE_EXEC(s, e, "PRAGMA foreign_keys = OFF");
    for (;;) {
        STORE_EXEC(s, e, "BEGIN IMMEDIATE");
        int version = 0;
        STORE_TRY(store_known_version(s, &version, e));
        if (version == STORE_SCHEMA_VERSION) {
            STORE_EXEC(s, e, "COMMIT");
            STORE_EXEC(s, e, "PRAGMA foreign_keys = ON");
            return LLMSIM_OK;
        }
        if (version == 0)
            STORE_TRY(store_refuse_foreign(s, e));
        STORE_TRY(store_migrate_one(s, version, e));
        STORE_EXEC(s, e, "COMMIT");
    }
fail:
    store_rollback(s);
    sqlite3_exec(s->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    return st;
}

/* A PRAGMA that returns one text row, copied into out ("" when no row). */
static llmsim_status store_pragma_text(store *s, const char *sql, char *out, size_t n, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    sqlite3_stmt *q = NULL;
    bool row = false;
    out[0] = '\0';
    STORE_PREPARE(s, e, q, sql);
    STORE_STEP_ROW(s, e, q, row);
    if (row && sqlite3_column_text(q, 0))
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(q, 0));
fail:
    sqlite3_finalize(q);
    return st;
}

/* A new handle for path, not yet connected: its path and host name. */
static llmsim_status store_new(const char *path, store **out, diag *e)
{
    store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        *out = NULL;
        return diag_set(e, LLMSIM_EFAIL, "%s: out of memory opening the store", path);
    }
    if (gethostname(s->host, sizeof s->host) != 0)
        snprintf(s->host, sizeof s->host, "unknown");
    s->host[sizeof s->host - 1] = '\0';
    *out = s;
    return LLMSIM_OK;
}

// ---- fault injection (tests): a VFS over the default one whose files fail
// the write common/fault.h says (LLMSIM_FAULT=store_write:N) with an I/O error

typedef struct fault_file {
    sqlite3_file base;         /* methods: fault_io */
    sqlite3_file *real;        /* the default VFS's file, allocated behind this one */
} fault_file;

static sqlite3_vfs fault_vfs;
static sqlite3_io_methods fault_io;
static const sqlite3_io_methods *fault_real_io;

static int fault_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    if (fault_now(FAULT_STORE_WRITE))
        return SQLITE_IOERR_WRITE;
    sqlite3_file *r = ((fault_file *)f)->real;
    return r->pMethods->xWrite(r, buf, n, off);
}

#define FAULT_FORWARD(name, params, args)                                                          \
    static int fault_##name params                                                                 \
    {                                                                                              \
        sqlite3_file *r = ((fault_file *)f)->real;                                                 \
        return r->pMethods->x##name args;                                                          \
    }
FAULT_FORWARD(Read, (sqlite3_file *f, void *b, int n, sqlite3_int64 o), (r, b, n, o))
FAULT_FORWARD(Truncate, (sqlite3_file *f, sqlite3_int64 n), (r, n))
FAULT_FORWARD(Sync, (sqlite3_file *f, int fl), (r, fl))
FAULT_FORWARD(FileSize, (sqlite3_file *f, sqlite3_int64 *n), (r, n))
FAULT_FORWARD(Lock, (sqlite3_file *f, int l), (r, l))
FAULT_FORWARD(Unlock, (sqlite3_file *f, int l), (r, l))
FAULT_FORWARD(CheckReservedLock, (sqlite3_file *f, int *o), (r, o))
FAULT_FORWARD(FileControl, (sqlite3_file *f, int op, void *a), (r, op, a))
FAULT_FORWARD(SectorSize, (sqlite3_file *f), (r))
FAULT_FORWARD(DeviceCharacteristics, (sqlite3_file *f), (r))
FAULT_FORWARD(ShmMap, (sqlite3_file *f, int i, int sz, int ext, void volatile **p), (r, i, sz, ext, p))
FAULT_FORWARD(ShmLock, (sqlite3_file *f, int off, int n, int fl), (r, off, n, fl))
FAULT_FORWARD(ShmUnmap, (sqlite3_file *f, int del), (r, del))
FAULT_FORWARD(Fetch, (sqlite3_file *f, sqlite3_int64 o, int n, void **p), (r, o, n, p))
FAULT_FORWARD(Unfetch, (sqlite3_file *f, sqlite3_int64 o, void *p), (r, o, p))

static void fault_ShmBarrier(sqlite3_file *f)
{
    sqlite3_file *r = ((fault_file *)f)->real;
    r->pMethods->xShmBarrier(r);
}

static int fault_close(sqlite3_file *f)
{
    sqlite3_file *r = ((fault_file *)f)->real;
    int rc = r->pMethods ? r->pMethods->xClose(r) : SQLITE_OK;
    sqlite3_free(r);
    return rc;
}

static int fault_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    sqlite3_vfs *real = vfs->pAppData;
    fault_file *ff = (fault_file *)f;
    ff->real = sqlite3_malloc(real->szOsFile);
    if (!ff->real)
        return SQLITE_NOMEM;
    memset(ff->real, 0, (size_t)real->szOsFile);
    int rc = real->xOpen(real, name, ff->real, flags, out);
    if (rc != SQLITE_OK || !ff->real->pMethods) {
        sqlite3_free(ff->real);
        ff->base.pMethods = NULL;
        return rc;
    }
    if (!fault_real_io) { /* every file of the default VFS has the same methods */
        fault_real_io = ff->real->pMethods;
        fault_io = *fault_real_io;
        fault_io.xClose = fault_close;
        fault_io.xRead = fault_Read;
        fault_io.xWrite = fault_write;
        fault_io.xTruncate = fault_Truncate;
        fault_io.xSync = fault_Sync;
        fault_io.xFileSize = fault_FileSize;
        fault_io.xLock = fault_Lock;
        fault_io.xUnlock = fault_Unlock;
        fault_io.xCheckReservedLock = fault_CheckReservedLock;
        fault_io.xFileControl = fault_FileControl;
        fault_io.xSectorSize = fault_SectorSize;
        fault_io.xDeviceCharacteristics = fault_DeviceCharacteristics;
        if (fault_io.iVersion >= 2) {
            fault_io.xShmMap = fault_ShmMap;
            fault_io.xShmLock = fault_ShmLock;
            fault_io.xShmBarrier = fault_ShmBarrier;
            fault_io.xShmUnmap = fault_ShmUnmap;
        }
        if (fault_io.iVersion >= 3) {
            fault_io.xFetch = fault_Fetch;
            fault_io.xUnfetch = fault_Unfetch;
        }
    }
    ff->base.pMethods = &fault_io;
    return SQLITE_OK;
}

/* The VFS name to open stores with: "llmsim-fault" under LLMSIM_FAULT=store_write:N, else
 * NULL (the default). */
static void store_vfs_init(void)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    fault_vfs = *real;
    fault_vfs.zName = "llmsim-fault";
    fault_vfs.szOsFile = (int)sizeof(fault_file);
    fault_vfs.pAppData = real;
    fault_vfs.xOpen = fault_open;
    fault_vfs.pNext = NULL;
    sqlite3_vfs_register(&fault_vfs, 0);
}

static const char *store_vfs(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (!fault_armed(FAULT_STORE_WRITE))
        return NULL;
    pthread_once(&once, store_vfs_init);
    return "llmsim-fault";
}

/* Open the database file (with `flags`), set the busy timeout and register
 * llmsim_pid_gone. */
static llmsim_status store_connect(store *s, const char *path, int flags, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return diag_set(e, LLMSIM_EINPUT, "%s: is a directory; give the path of a store file",
                        path);
    /* sqlite3_open_v2 returns a handle (for sqlite3_errmsg) even on failure */
    STORE_CHECK(s, e, sqlite3_open_v2(path, &s->db, flags, store_vfs()));
    STORE_CHECK(s, e, sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS));
    STORE_CHECK(s, e, sqlite3_create_function_v2(s->db, "llmsim_pid_gone", 2,
                                                 SQLITE_UTF8 | SQLITE_DIRECTONLY, s,
                                                 store_sql_pid_gone, NULL, NULL, NULL));
fail:
    return st;
}

/* WAL mode, set only when not already on: it persists in the file, and
 * setting it needs the write lock. */
static llmsim_status store_journal_wal(store *s, diag *e)
{
    char mode[16];
    llmsim_status st = store_pragma_text(s, "PRAGMA journal_mode", mode, sizeof mode, e);
    if (st != LLMSIM_OK || strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0)
        return st;
    st = store_pragma_text(s, "PRAGMA journal_mode = WAL", mode, sizeof mode, e);
    if (st == LLMSIM_OK && strcmp(mode, "wal") != 0)
        st = diag_set(e, LLMSIM_EFAIL, "%s: cannot switch the store to WAL mode (got '%s')",
                      s->path, mode);
    return st;
}

/* Foreign keys on, and checked to be enforced by this SQLite. */
static llmsim_status store_foreign_keys_on(store *s, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    STORE_EXEC(s, e, "PRAGMA foreign_keys = ON");
    char fk[8];
    STORE_TRY(store_pragma_text(s, "PRAGMA foreign_keys", fk, sizeof fk, e));
    if (strcmp(fk, "1") != 0)
        st = diag_set(e, LLMSIM_EFAIL, "%s: this SQLite does not enforce foreign keys", s->path);
fail:
    return st;
}

/* Mark 'interrupted' the runs left 'running' by a process of this host that
 * is gone. Looked for before any UPDATE, which would need the write lock. */
static llmsim_status store_mark_interrupted(store *s, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    sqlite3_stmt *q = NULL;
    int dead = 0;
    STORE_TRY(store_query_int(s,
                              "SELECT 1 FROM runs WHERE status = 'running' AND "
                              "llmsim_pid_gone(host, pid) LIMIT 1",
                              &dead, e));
    if (!dead)
        return LLMSIM_OK;
    STORE_PREPARE(s, e, q,
                  "UPDATE runs SET status = 'interrupted', finished_at = " STORE_NOW
                  " WHERE status = 'running' AND llmsim_pid_gone(host, pid)");
    /* Busy: another process is writing; a later open marks these rows. */
    int rc = sqlite3_step(q);
    if (rc != SQLITE_DONE && (rc & 0xff) != SQLITE_BUSY)
        st = store_fail(s, e, rc, sqlite3_sql(q), __FILE__, __LINE__);
fail:
    sqlite3_finalize(q);
    return st;
}

/* Remove path and its -wal and -shm files. */
static void store_remove_files(const char *path)
{
    char side[PATH_MAX];
    unlink(path);
    const char *const ext[] = {"-wal", "-shm"};
    for (int k = 0; k < 2; k++)
        if (snprintf(side, sizeof side, "%s%s", path, ext[k]) < (int)sizeof side)
            unlink(side);
}

static llmsim_status store_open_flags(const char *path, int flags, store **out, diag *e)
{
    store *s = NULL;
    llmsim_status st = store_new(path, &s, e);
    *out = NULL;
    if (st != LLMSIM_OK)
        return st;
    struct stat sb;
    const bool existed = stat(path, &sb) == 0;
    STORE_TRY(store_connect(s, path, flags, e));
    /* Refuse a newer store before writing anything to it (this is also the
     * first read, where a file that is not a database shows). */
    int version = 0;
    STORE_TRY(store_known_version(s, &version, e));
    /* Opening must not need the write lock when there is nothing to write:
     * a run in progress holds it for as long as it runs, and `llmsim runs`
     * has to work meanwhile. So WAL is set only when not already on,
     * migrations run only when the store is behind, and dead runs are looked
     * for before any UPDATE. */
    STORE_TRY(store_journal_wal(s, e));
    STORE_TRY(store_foreign_keys_on(s, e));
    if (version < STORE_SCHEMA_VERSION)
        STORE_TRY(store_migrate(s, e));
    STORE_TRY(store_mark_interrupted(s, e));
    *out = s;
    return LLMSIM_OK;
fail:
    store_close(s);
    /* a store this call created and could not even start (a full disk) is
     * not left behind as an empty file */
    if (!existed && (flags & SQLITE_OPEN_CREATE) && stat(path, &sb) == 0 && sb.st_size == 0)
        store_remove_files(path);
    return st;
}

llmsim_status store_open(const char *path, store **out, diag *e)
{
    return store_open_flags(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, out, e);
}

/* A store on a read-only medium (or a read-only file): opened immutable,
 * read only, nothing written (no WAL switch, no migration, no dead runs
 * marked). A store behind this llmsim's schema cannot be read so. */
static llmsim_status store_open_readonly(const char *path, store **out, diag *e)
{
    store *s = NULL;
    llmsim_status st = store_new(path, &s, e);
    *out = NULL;
    if (st != LLMSIM_OK)
        return st;
    /* file:PATH?immutable=1, the path percent-encoded where a URI needs it */
    size_t n = strlen(path);
    char *uri = malloc(3 * n + 32);
    if (!uri) {
        store_close(s);
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    }
    char *u = uri + sprintf(uri, "file:");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == '?' || c == '#' || c == '%' || c < 0x20)
            u += sprintf(u, "%%%02X", c);
        else
            *u++ = (char)c;
    }
    strcpy(u, "?immutable=1");
    st = store_connect(s, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, e);
    free(uri);
    int version = 0;
    if (!st)
        st = store_known_version(s, &version, e);
    if (!st && version < STORE_SCHEMA_VERSION)
        st = diag_set(e, LLMSIM_EINPUT, "%s: a read-only store of schema %d, older than this "
                      "llmsim's %d; open it once where it can be written, to migrate it", path,
                      version, STORE_SCHEMA_VERSION);
    if (st) {
        store_close(s);
        return st;
    }
    *out = s;
    return LLMSIM_OK;
}

llmsim_status store_open_existing(const char *path, store **out, diag *e)
{
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        *out = NULL;
        return diag_set(e, LLMSIM_EINPUT,
                        "no store at %s (run a command such as llmsim predict first)", path);
    }
    llmsim_status st = store_open_flags(path, SQLITE_OPEN_READWRITE, out, e);
    /* reading needs no writing: where the store cannot be written, read it so */
    if (st && access(path, W_OK) != 0) {
        diag e2;
        diag_clear(&e2);
        if (!store_open_readonly(path, out, &e2)) {
            diag_clear(e);
            return LLMSIM_OK;
        }
    }
    return st;
}

void store_close(store *s)
{
    if (!s)
        return;
    if (s->run_open)
        store_run_abort(s, s->run_open, "interrupted");
    /* close_v2 never fails for a valid handle: every statement here is
     * finalized before its function returns. */
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

// ---- inputs

llmsim_status store_put_input(store *s, const char *kind, const char *name, const char *canonical,
                              char hash_out[17], diag *e)
{
    llmsim_status st = LLMSIM_OK;
    sqlite3_stmt *q = NULL;
    hash_hex(canonical, hash_out);
    const char *const values[] = {hash_out, kind, name, canonical};
    STORE_PREPARE(s, e, q,
                  "INSERT OR IGNORE INTO inputs (hash, kind, name, body, created_at) "
                  "VALUES (?1, ?2, ?3, ?4, " STORE_NOW ")");
    STORE_TRY(store_bind_texts(s, q, 1, values, 4, e));
    STORE_STEP_DONE(s, e, q);
    sqlite3_finalize(q);
    q = NULL;

    bool row = false;
    STORE_PREPARE(s, e, q, "SELECT body FROM inputs WHERE hash = ?1");
    STORE_CHECK(s, e, sqlite3_bind_text(q, 1, hash_out, -1, SQLITE_STATIC));
    STORE_STEP_ROW(s, e, q, row);
    const char *body = row ? (const char *)sqlite3_column_text(q, 0) : NULL;
    if (!body)
        st = diag_set(e, LLMSIM_EFAIL, "%s: input %s vanished after insert (%s:%d)", s->path,
                      hash_out, __FILE__, __LINE__);
    else if (strcmp(body, canonical) != 0)
        st = diag_set(e, LLMSIM_EFAIL,
                      "%s: hash collision: %s '%s' hashes to %s, which the store holds for a "
                      "different text",
                      s->path, kind, name ? name : "(unnamed)", hash_out);
fail:
    sqlite3_finalize(q);
    return st;
}

char *store_input_body(store *s, const char *hash)
{
    llmsim_status st = LLMSIM_OK;
    sqlite3_stmt *q = NULL;
    char *body = NULL;
    bool row = false;
    diag *e = NULL; /* this query reports absence and failure alike as NULL */
    STORE_PREPARE(s, e, q, "SELECT body FROM inputs WHERE hash = ?1");
    STORE_CHECK(s, e, sqlite3_bind_text(q, 1, hash, -1, SQLITE_STATIC));
    STORE_STEP_ROW(s, e, q, row);
    if (row)
        body = store_strdup((const char *)sqlite3_column_text(q, 0));
fail:
    (void)st;
    sqlite3_finalize(q);
    return body;
}

// ---- the run lifecycle

/* Set the status of a run still marked 'running' (autocommit). */
static llmsim_status store_run_mark(store *s, int64_t run_id, const char *status, diag *e)
{
    sqlite3_stmt *q = NULL;
    llmsim_status st = store_prepare_id(s,
                                        "UPDATE runs SET status = ?2, finished_at = " STORE_NOW
                                        " WHERE id = ?1 AND status = 'running'",
                                        run_id, &q, e);
    if (st != LLMSIM_OK)
        return st;
    STORE_CHECK(s, e, sqlite3_bind_text(q, 2, status, -1, SQLITE_STATIC));
    STORE_STEP_DONE(s, e, q);
fail:
    sqlite3_finalize(q);
    return st;
}

static llmsim_status store_run_check_open(const store *s, int64_t run_id, diag *e)
{
    if (s->run_open == run_id && run_id != 0)
        return LLMSIM_OK;
    return diag_set(e, LLMSIM_EFAIL, "%s: run %lld is not the open run (%lld) (%s:%d)", s->path,
                    (long long)run_id, (long long)s->run_open, __FILE__, __LINE__);
}

/* A statement that writes into the open run run_id: `sql` with ?1 bound to
 * the run's id. On failure *q is NULL. */
static llmsim_status store_run_prepare(store *s, int64_t run_id, const char *sql,
                                       sqlite3_stmt **q, diag *e)
{
    llmsim_status st = store_run_check_open(s, run_id, e);
    *q = NULL;
    return st != LLMSIM_OK ? st : store_prepare_id(s, sql, run_id, q, e);
}

llmsim_status store_run_begin(store *s, const store_run_info *info, int64_t *run_id, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    sqlite3_stmt *q = NULL;
    int64_t id = 0;
    *run_id = 0;
    if (s->run_open)
        return diag_set(e, LLMSIM_EFAIL,
                        "%s: run %lld is still open; commit or abort it first (%s:%d)", s->path,
                        (long long)s->run_open, __FILE__, __LINE__);
    if (!sqlite3_get_autocommit(s->db))
        return diag_set(e, LLMSIM_EFAIL, "%s: a transaction is open outside a run (%s:%d)",
                        s->path, __FILE__, __LINE__);

    /* 1. the 'running' row, committed on its own so it survives a crash */
    const char *const values[] = {info->kind,       info->model_hash,    info->hw_hash,
                                  info->policy_hash, info->workload_hash, info->model_name,
                                  info->hw_name,    LLMSIM_VERSION,      info->command,
                                  s->host};
    STORE_PREPARE(s, e, q,
                  "INSERT INTO runs (kind, status, model_hash, hw_hash, policy_hash, "
                  "workload_hash, model_name, hw_name, tool_version, command, host, pid, "
                  "started_at) VALUES (?1, 'running', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                  STORE_NOW ")");
    STORE_TRY(store_bind_texts(s, q, 1, values, 10, e));
    STORE_CHECK(s, e, sqlite3_bind_int64(q, 11, (sqlite3_int64)getpid()));
    STORE_STEP_DONE(s, e, q);
    id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(q);
    q = NULL;

    /* 2. the transaction that metrics, stages and tasks go into */
    STORE_EXEC(s, e, "BEGIN");
    s->run_open = id;
    *run_id = id;
    return LLMSIM_OK;
fail:
    sqlite3_finalize(q);
    if (id)
        (void)store_run_mark(s, id, "failed", NULL); /* best effort; the first error stands */
    return st;
}

llmsim_status store_run_metric(store *s, int64_t run_id, const char *key, double value, diag *e)
{
    sqlite3_stmt *q = NULL;
    llmsim_status st = store_run_prepare(
        s, run_id, "INSERT OR REPLACE INTO run_metrics (run_id, key, value) VALUES (?1, ?2, ?3)",
        &q, e);
    if (st != LLMSIM_OK)
        return st;
    STORE_CHECK(s, e, sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC));
    STORE_CHECK(s, e, sqlite3_bind_double(q, 3, value)); /* NaN is stored as NULL */
    STORE_STEP_DONE(s, e, q);
fail:
    sqlite3_finalize(q);
    return st;
}

llmsim_status store_run_stage(store *s, int64_t run_id, const char *phase, int step,
                              const char *stage, double seconds, diag *e)
{
    sqlite3_stmt *q = NULL;
    llmsim_status st = store_run_prepare(
        s, run_id,
        "INSERT OR REPLACE INTO run_stages (run_id, phase, step, stage, seconds) "
        "VALUES (?1, ?2, ?3, ?4, ?5)",
        &q, e);
    if (st != LLMSIM_OK)
        return st;
    STORE_CHECK(s, e, sqlite3_bind_text(q, 2, phase, -1, SQLITE_STATIC));
    STORE_CHECK(s, e, sqlite3_bind_int(q, 3, step));
    STORE_CHECK(s, e, sqlite3_bind_text(q, 4, stage, -1, SQLITE_STATIC));
    STORE_CHECK(s, e, sqlite3_bind_double(q, 5, seconds));
    STORE_STEP_DONE(s, e, q);
fail:
    sqlite3_finalize(q);
    return st;
}

/* A chunk of a run's rows being packed (on a thread) while the next is
 * filled. */
typedef struct store_chunk_job {
    pack_job job;
    const char *what;
    size_t chunk, rows;
} store_chunk_job;

/* Wait for the chunk being packed, if any, and insert it. Always waits, so
 * that the writer is free again, also after an earlier failure. */
static llmsim_status store_chunk_done(store *s, sqlite3_stmt *q, store_chunk_job *c, diag *e)
{
    uint8_t *blob = NULL;
    size_t len = 0;
    llmsim_status st = pack_job_wait(&c->job, &blob, &len, e);
    if (st != LLMSIM_OK || !blob)
        return st;
    STORE_CHECK(s, e, sqlite3_bind_text(q, 2, c->what, -1, SQLITE_STATIC));
    STORE_CHECK(s, e, sqlite3_bind_int64(q, 3, (sqlite3_int64)c->chunk));
    STORE_CHECK(s, e, sqlite3_bind_int64(q, 4, (sqlite3_int64)c->rows));
    STORE_CHECK(s, e, sqlite3_bind_blob64(q, 5, blob, len, SQLITE_STATIC));
    STORE_STEP_DONE(s, e, q);
    STORE_CHECK(s, e, sqlite3_reset(q));
fail:
    free(blob);
    return st;
}

/* Insert the previous chunk, then start packing this one (of w). */
static llmsim_status store_chunk_next(store *s, sqlite3_stmt *q, store_chunk_job *c,
                                      pack_writer *w, size_t chunk, size_t rows, diag *e)
{
    llmsim_status st = store_chunk_done(s, q, c, e);
    if (st == LLMSIM_OK) {
        c->chunk = chunk;
        c->rows = rows;
        pack_job_start(&c->job, w);
    }
    return st;
}

#define STORE_CHUNK_SQL                                                                            \
    "INSERT OR REPLACE INTO run_chunks (run_id, what, chunk, rows, data) "                         \
    "VALUES (?1, ?2, ?3, ?4, ?5)"

/* A chunk of tasks as the packer reads them: a column each, so that each
 * column is read in one sequential pass. */
typedef struct store_task_cols {
    char (*id)[128];
    const char **resource;
    double *v[4]; /* start_s, end_s, bytes, flops */
} store_task_cols;

llmsim_status store_run_tasks(store *s, int64_t run_id, size_t n, store_task_fill fill, void *ctx,
                              diag *e)
{
    sqlite3_stmt *q = NULL;
    llmsim_status st = store_run_prepare(s, run_id, STORE_CHUNK_SQL, &q, e);
    if (st != LLMSIM_OK)
        return st;
    size_t cap = n < PACK_CHUNK_ROWS ? n : PACK_CHUNK_ROWS;
    store_task_cols col = {0};
    bool ok = (col.id = malloc((cap + 1) * sizeof *col.id)) &&
              (col.resource = malloc((cap + 1) * sizeof *col.resource));
    for (int k = 0; k < 4; k++)
        ok = ok && (col.v[k] = malloc((cap + 1) * sizeof *col.v[k]));
    pack_writer w[2] = {{0}, {0}};
    store_chunk_job c = {.what = "tasks"};
    if (!ok)
        st = diag_set(e, LLMSIM_EFAIL, "%s: out of memory recording task timings", s->path);
    for (size_t at = 0, chunk = 0; !st && at < n; at += cap, chunk++) {
        size_t m = n - at < cap ? n - at : cap;
        for (size_t i = 0; i < m; i++) {
            store_task t;
            fill(ctx, at + i, &t, col.id[i], sizeof col.id[i]);
            col.resource[i] = t.resource;
            col.v[0][i] = t.start_s;
            col.v[1][i] = t.end_s;
            col.v[2][i] = t.bytes;
            col.v[3][i] = t.flops;
        }
        pack_writer *wc = &w[chunk % 2];
        pack_put_texts(wc, col.id, sizeof *col.id, m);
        pack_put_names(wc, col.resource, sizeof *col.resource, m);
        for (int k = 0; k < 4; k++)
            pack_put_f64(wc, col.v[k], sizeof *col.v[k], m);
        st = store_chunk_next(s, q, &c, wc, chunk, m, e);
    }
    llmsim_status last = store_chunk_done(s, q, &c, e);
    st = st ? st : last;
    pack_writer_free(&w[0]);
    pack_writer_free(&w[1]);
    free(col.id);
    free(col.resource);
    for (int k = 0; k < 4; k++)
        free(col.v[k]);
    sqlite3_finalize(q);
    return st;
}

llmsim_status store_run_memory(store *s, int64_t run_id, size_t n, const store_mem_sample *m,
                               diag *e)
{
    sqlite3_stmt *q = NULL;
    llmsim_status st = store_run_prepare(s, run_id, STORE_CHUNK_SQL, &q, e);
    if (st != LLMSIM_OK)
        return st;
    pack_writer w[2] = {{0}, {0}};
    store_chunk_job c = {.what = "memory"};
    for (size_t at = 0, chunk = 0; !st && at < n; at += PACK_CHUNK_ROWS, chunk++) {
        size_t k = n - at < PACK_CHUNK_ROWS ? n - at : PACK_CHUNK_ROWS;
        const size_t z = sizeof *m;
        pack_writer *wc = &w[chunk % 2];
        pack_put_f64(wc, &m[at].time_s, z, k);
        pack_put_names(wc, &m[at].tier, z, k);
        pack_put_f64(wc, &m[at].bytes, z, k);
        st = store_chunk_next(s, q, &c, wc, chunk, k, e);
    }
    llmsim_status last = store_chunk_done(s, q, &c, e);
    st = st ? st : last;
    pack_writer_free(&w[0]);
    pack_writer_free(&w[1]);
    sqlite3_finalize(q);
    return st;
}

llmsim_status store_serve_rows(store *s, int64_t run_id, const serve_result *r,
                               const serve_requests *q, double block_bytes, diag *e)
{
    sqlite3_stmt *q1 = NULL, *q2 = NULL;
    llmsim_status st = store_run_prepare(
        s, run_id,
        "INSERT OR REPLACE INTO serve_iterations (run_id, iter, start_s, end_s, predicted_s, seqs, "
        "prefill_tokens, decode_tokens, dev_blocks, swap_blocks, out_blocks, in_blocks, "
        "swapped_bytes, preempt_swap, preempt_recompute, sched_s, swap_s, weights_s, hit_tokens) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
        "?19)",
        &q1, e);
    if (st != LLMSIM_OK)
        return st;
    for (long long i = 0; i < r->iterations; i++) {
        const serve_iter_row *w = &r->iters[i];
        const double reals[] = {w->start_s, w->end_s, w->predicted_s};
        const int64_t ints[] = {w->seqs, w->prefill_tokens, w->decode_tokens, w->dev_blocks,
                                w->swap_blocks, w->out_blocks, w->in_blocks};
        STORE_CHECK(s, e, sqlite3_bind_int64(q1, 2, (sqlite3_int64)i));
        for (int k = 0; k < 3; k++)
            STORE_CHECK(s, e, sqlite3_bind_double(q1, 3 + k, reals[k]));
        for (int k = 0; k < 7; k++)
            STORE_CHECK(s, e, sqlite3_bind_int64(q1, 6 + k, (sqlite3_int64)ints[k]));
        STORE_CHECK(s, e, sqlite3_bind_double(q1, 13, (double)(w->out_blocks + w->in_blocks) *
                                                          block_bytes));
        STORE_CHECK(s, e, sqlite3_bind_int64(q1, 14, w->preempt_swap));
        STORE_CHECK(s, e, sqlite3_bind_int64(q1, 15, w->preempt_recompute));
        STORE_CHECK(s, e, sqlite3_bind_double(q1, 16, w->sched_s));
        STORE_CHECK(s, e, sqlite3_bind_double(q1, 17, w->swap_s));
        STORE_CHECK(s, e, sqlite3_bind_double(q1, 18, w->weights_s));
        STORE_CHECK(s, e, sqlite3_bind_int64(q1, 19, w->hit_tokens));
        STORE_STEP_DONE(s, e, q1);
        STORE_CHECK(s, e, sqlite3_reset(q1));
    }
    STORE_TRY(store_run_prepare(
        s, run_id,
        "INSERT OR REPLACE INTO serve_requests (run_id, req, arrival_s, admitted_s, "
        "first_token_s, finish_s, prompt_tokens, output_tokens, weight, swaps, recomputes, "
        "cached_tokens) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        &q2, e));
    for (size_t i = 0; i < q->n && i < r->n; i++) {
        const serve_req_result *rr = &r->req[i];
        STORE_CHECK(s, e, sqlite3_bind_int64(q2, 2, (sqlite3_int64)i + 1));
        STORE_CHECK(s, e, sqlite3_bind_double(q2, 3, q->r[i].arrival_s));
        STORE_CHECK(s, e, sqlite3_bind_double(q2, 4, rr->admitted_s));
        STORE_CHECK(s, e, sqlite3_bind_double(q2, 5, rr->first_token_s));
        STORE_CHECK(s, e, sqlite3_bind_double(q2, 6, rr->finish_s));
        STORE_CHECK(s, e, sqlite3_bind_int64(q2, 7, q->r[i].prompt_len));
        STORE_CHECK(s, e, sqlite3_bind_int64(q2, 8, q->r[i].output_len));
        STORE_CHECK(s, e, sqlite3_bind_double(q2, 9, q->r[i].weight));
        STORE_CHECK(s, e, sqlite3_bind_int64(q2, 10, rr->swaps));
        STORE_CHECK(s, e, sqlite3_bind_int64(q2, 11, rr->recomputes));
        STORE_CHECK(s, e, sqlite3_bind_int64(q2, 12, rr->cached_tokens));
        STORE_STEP_DONE(s, e, q2);
        STORE_CHECK(s, e, sqlite3_reset(q2));
    }
fail:
    sqlite3_finalize(q1);
    sqlite3_finalize(q2);
    return st;
}

llmsim_status store_run_commit(store *s, int64_t run_id, const char *status, const char *result_json,
                               diag *e)
{
    llmsim_status st = store_run_check_open(s, run_id, e);
    sqlite3_stmt *q = NULL;
    if (st != LLMSIM_OK)
        return st;
    STORE_TRY(store_prepare_id(s,
                               "UPDATE runs SET status = ?2, finished_at = " STORE_NOW
                               ", result_json = ?3 WHERE id = ?1",
                               run_id, &q, e));
    const char *const values[] = {status, result_json};
    STORE_TRY(store_bind_texts(s, q, 2, values, 2, e));
    STORE_STEP_DONE(s, e, q);
    sqlite3_finalize(q);
    q = NULL;
    STORE_EXEC(s, e, "COMMIT");
    s->run_open = 0;
    return LLMSIM_OK;
fail:
    sqlite3_finalize(q);
    store_run_abort(s, run_id, "failed"); /* nothing half-written stays */
    return st;
}

void store_run_abort(store *s, int64_t run_id, const char *status)
{
    if (!s || !run_id)
        return;
    if (s->run_open == run_id) {
        store_rollback(s);
        s->run_open = 0;
    }
    /* void by contract: a failure leaves 'running', which the next open
     * after this process exits turns into 'interrupted' */
    (void)store_run_mark(s, run_id, status, NULL);
}

// ---- queries

/* Columns read by store_row_read, in this order. */
#define STORE_RUN_COLUMNS                                                                       \
    "r.id, r.kind, r.status, r.model_name, r.hw_name, r.started_at, r.finished_at, "            \
    "r.tool_version, r.command, r.model_hash, r.hw_hash, r.policy_hash, r.workload_hash, "      \
    "(SELECT value FROM run_metrics m WHERE m.run_id = r.id AND m.key = 'throughput_tok_s'), "  \
    "(SELECT value FROM run_metrics m WHERE m.run_id = r.id AND m.key = 'total_s')"

static double store_col_double(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? NAN : sqlite3_column_double(q, i);
}

/* Copy a text column; false when a non-NULL value could not be copied. */
static bool store_col_dup(sqlite3_stmt *q, int i, char **out)
{
    const char *t = (const char *)sqlite3_column_text(q, i);
    *out = store_strdup(t);
    return !t || *out;
}

/* The text fields of a run row: those of STORE_RUN_COLUMNS' columns 1 to 12
 * in their order, then result_json (column 15). */
#define STORE_ROW_NTEXTS 13
static void store_row_texts(store_run_row *r, char **texts[STORE_ROW_NTEXTS])
{
    char **const all[STORE_ROW_NTEXTS] = {
        &r->kind,       &r->status,     &r->model_name, &r->hw_name,     &r->started_at,
        &r->finished_at, &r->tool_version, &r->command, &r->model_hash,  &r->hw_hash,
        &r->policy_hash, &r->workload_hash, &r->result_json,
    };
    memcpy(texts, all, sizeof all);
}

/* Fill r from the current row (STORE_RUN_COLUMNS, then result_json at column
 * 15 when with_result). false on out of memory; r then holds what was copied. */
static bool store_row_read(sqlite3_stmt *q, store_run_row *r, bool with_result)
{
    memset(r, 0, sizeof *r);
    char **texts[STORE_ROW_NTEXTS];
    store_row_texts(r, texts);
    r->id = sqlite3_column_int64(q, 0);
    bool ok = true;
    for (int i = 0; i < STORE_ROW_NTEXTS - 1; i++)
        ok &= store_col_dup(q, 1 + i, texts[i]);
    r->throughput_tok_s = store_col_double(q, 13);
    r->total_s = store_col_double(q, 14);
    if (with_result)
        ok &= store_col_dup(q, 15, texts[STORE_ROW_NTEXTS - 1]);
    return ok;
}

void store_row_clear(store_run_row *r)
{
    if (!r)
        return;
    char **texts[STORE_ROW_NTEXTS];
    store_row_texts(r, texts);
    for (int i = 0; i < STORE_ROW_NTEXTS; i++)
        free(*texts[i]);
    memset(r, 0, sizeof *r);
}

void store_rows_free(store_run_row *rows, int n)
{
    if (!rows)
        return;
    for (int i = 0; i < n; i++)
        store_row_clear(&rows[i]);
    free(rows);
}

/* Run rows being listed. */
typedef struct store_run_rows {
    store_run_row *rows;
    size_t n, cap;
} store_run_rows;

static bool store_take_run_row(sqlite3_stmt *q, void *ctx)
{
    store_run_rows *l = ctx;
    store_run_row *grown = llmsim_grow(l->rows, l->n, &l->cap, sizeof *grown, 16);
    if (!grown)
        return false;
    l->rows = grown;
    /* counted even when partial, so store_rows_free releases it */
    return store_row_read(q, &l->rows[l->n++], false);
}

llmsim_status store_runs_list(store *s, const store_run_filter *f, store_run_row **rows, int *n,
                              diag *e)
{
    llmsim_status st = LLMSIM_OK;
    sqlite3_stmt *q = NULL;
    store_run_rows l = {0};
    *rows = NULL;
    *n = 0;
    const char *const values[] = {f ? f->model_name : NULL, f ? f->hw_name : NULL,
                                  f ? f->kind : NULL};
    STORE_PREPARE(s, e, q,
                  "SELECT " STORE_RUN_COLUMNS " FROM runs r "
                  "WHERE (?1 IS NULL OR r.model_name = ?1) AND (?2 IS NULL OR r.hw_name = ?2) "
                  "AND (?3 IS NULL OR r.kind = ?3) ORDER BY r.id DESC LIMIT ?4");
    STORE_TRY(store_bind_texts(s, q, 1, values, 3, e));
    STORE_CHECK(s, e, sqlite3_bind_int(q, 4, f && f->limit > 0 ? f->limit : -1));
    st = store_rows_each(s, q, store_take_run_row, &l, "listing runs", e);
    q = NULL; /* finalized */
    if (st != LLMSIM_OK)
        goto fail;
    *rows = l.rows;
    *n = (int)l.n;
    return LLMSIM_OK;
fail:
    sqlite3_finalize(q);
    store_rows_free(l.rows, (int)l.n);
    return st;
}

llmsim_status store_run_get(store *s, int64_t id, store_run_row *row, diag *e)
{
    sqlite3_stmt *q = NULL;
    bool found = false;
    memset(row, 0, sizeof *row);
    llmsim_status st = store_prepare_id(
        s, "SELECT " STORE_RUN_COLUMNS ", r.result_json FROM runs r WHERE r.id = ?1", id, &q, e);
    if (st != LLMSIM_OK)
        return st;
    STORE_STEP_ROW(s, e, q, found);
    if (!found) {
        st = diag_set(e, LLMSIM_EINPUT, "%s: no run %lld; list the runs with llmsim runs", s->path,
                      (long long)id);
        goto fail;
    }
    if (!store_row_read(q, row, true)) {
        store_row_clear(row);
        st = diag_set(e, LLMSIM_EFAIL, "%s: out of memory reading run %lld", s->path,
                      (long long)id);
    }
fail:
    sqlite3_finalize(q);
    return st;
}

/* Metrics being read: keys[i] and values[i] for i < n. */
typedef struct store_metric_rows {
    char **keys;
    double *values;
    size_t n, cap_keys, cap_values;
} store_metric_rows;

static bool store_take_metric(sqlite3_stmt *q, void *ctx)
{
    store_metric_rows *m = ctx;
    char **keys = llmsim_grow(m->keys, m->n, &m->cap_keys, sizeof *keys, 16);
    if (keys)
        m->keys = keys;
    double *values = keys ? llmsim_grow(m->values, m->n, &m->cap_values, sizeof *values, 16)
                          : NULL;
    if (!values)
        return false;
    m->values = values;
    m->values[m->n] = store_col_double(q, 1);
    return store_col_dup(q, 0, &m->keys[m->n++]);
}

llmsim_status store_run_metrics(store *s, int64_t id, char ***keys, double **values, int *n, diag *e)
{
    sqlite3_stmt *q = NULL;
    store_metric_rows m = {0};
    *keys = NULL;
    *values = NULL;
    *n = 0;
    llmsim_status st = store_prepare_id(
        s, "SELECT key, value FROM run_metrics WHERE run_id = ?1 ORDER BY key", id, &q, e);
    if (st == LLMSIM_OK)
        st = store_rows_each(s, q, store_take_metric, &m, "reading metrics", e);
    if (st != LLMSIM_OK) {
        store_metrics_free(m.keys, m.values, (int)m.n);
        return st;
    }
    *keys = m.keys;
    *values = m.values;
    *n = (int)m.n;
    return LLMSIM_OK;
}

llmsim_status store_find_runs(store *s, const char *kind, const char *model_hash,
                              const char *hw_hash, const char *policy_hash,
                              const char *workload_hash, int64_t *ids, int max, int *n, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    sqlite3_stmt *q = NULL;
    *n = 0;
    const char *const values[] = {kind,        model_hash,    hw_hash,
                                  policy_hash, workload_hash, s->host};
    STORE_PREPARE(s, e, q,
                  "SELECT id FROM runs WHERE kind = ?1 AND status = 'ok' AND host IS ?6 "
                  "AND model_hash IS ?2 AND hw_hash IS ?3 AND policy_hash IS ?4 "
                  "AND workload_hash IS ?5 ORDER BY id DESC LIMIT ?7");
    STORE_TRY(store_bind_texts(s, q, 1, values, 6, e));
    STORE_CHECK(s, e, sqlite3_bind_int(q, 7, max));
    bool row = true;
    while (*n < max) {
        STORE_STEP_ROW(s, e, q, row);
        if (!row)
            break;
        ids[(*n)++] = sqlite3_column_int64(q, 0);
    }
fail:
    sqlite3_finalize(q);
    return st;
}

llmsim_status store_find_run(store *s, const char *kind, const char *model_hash, const char *hw_hash,
                             const char *policy_hash, const char *workload_hash, int64_t *id,
                             diag *e)
{
    int n = 0;
    *id = 0;
    return store_find_runs(s, kind, model_hash, hw_hash, policy_hash, workload_hash, id, 1, &n, e);
}

static void store_col_copy(sqlite3_stmt *q, int i, char *out, size_t len)
{
    const char *t = (const char *)sqlite3_column_text(q, i);
    snprintf(out, len, "%s", t ? t : "");
}

/* Fill one element from the current row. */
typedef void (*store_row_fill)(sqlite3_stmt *q, void *elem);

/* Rows being read into an array of `size`-byte elements, by fill. */
typedef struct store_elem_rows {
    char *rows;
    size_t n, cap, size;
    store_row_fill fill;
} store_elem_rows;

static bool store_take_elem(sqlite3_stmt *q, void *ctx)
{
    store_elem_rows *l = ctx;
    char *grown = llmsim_grow(l->rows, l->n, &l->cap, l->size, 64);
    if (!grown)
        return false;
    l->rows = grown;
    l->fill(q, l->rows + l->n++ * l->size);
    return true;
}

/* Every row of `sql` (one parameter: the run id) into a malloc'd array of
 * `size`-byte elements; out of memory reads "out of memory <doing>". */
static llmsim_status store_collect(store *s, int64_t id, const char *sql, size_t size,
                                   store_row_fill fill, const char *doing, void **rows, size_t *n,
                                   diag *e)
{
    sqlite3_stmt *q = NULL;
    store_elem_rows l = {.size = size, .fill = fill};
    *rows = NULL;
    *n = 0;
    llmsim_status st = store_prepare_id(s, sql, id, &q, e);
    if (st == LLMSIM_OK)
        st = store_rows_each(s, q, store_take_elem, &l, doing, e);
    if (st != LLMSIM_OK) {
        free(l.rows);
        return st;
    }
    *rows = l.rows;
    *n = l.n;
    return LLMSIM_OK;
}

static void fill_task(sqlite3_stmt *q, void *elem)
{
    store_task_row *t = elem;
    store_col_copy(q, 0, t->task_id, sizeof t->task_id);
    store_col_copy(q, 1, t->resource, sizeof t->resource);
    t->start_s = store_col_double(q, 2);
    t->end_s = store_col_double(q, 3);
    t->bytes = store_col_double(q, 4);
    t->flops = store_col_double(q, 5);
}

/* The chunks of `what` of run id, in order: take(r, rows, ctx) reads the
 * columns of each from r; a chunk whose columns do not read whole is damaged. */
typedef bool (*store_chunk_take)(pack_reader *r, size_t rows, void *ctx);

static llmsim_status store_chunks_each(store *s, int64_t id, const char *what,
                                       store_chunk_take take, void *ctx, diag *e)
{
    sqlite3_stmt *q = NULL;
    pack_reader r = {0};
    char name[96];
    snprintf(name, sizeof name, "%s: the %s of run %lld", s->path,
             strcmp(what, "tasks") == 0 ? "task timings" : "memory samples", (long long)id);
    llmsim_status st = store_prepare_id(
        s, "SELECT rows, data FROM run_chunks WHERE run_id = ?1 AND what = ?2 ORDER BY chunk", id,
        &q, e);
    if (st != LLMSIM_OK)
        return st;
    STORE_CHECK(s, e, sqlite3_bind_text(q, 2, what, -1, SQLITE_STATIC));
    for (;;) {
        bool row = false;
        STORE_STEP_ROW(s, e, q, row);
        if (!row)
            break;
        sqlite3_int64 rows = sqlite3_column_int64(q, 0);
        const void *blob = sqlite3_column_blob(q, 1);
        size_t len = (size_t)sqlite3_column_bytes(q, 1);
        if (rows < 0 || rows > PACK_CHUNK_ROWS)
            STORE_TRY(diag_set(e, LLMSIM_EINPUT, "%s are damaged (a chunk of %lld rows)", name,
                               (long long)rows));
        STORE_TRY(pack_open(blob, len, name, &r, e));
        bool ok = take(&r, (size_t)rows, ctx);
        if (!ok && !r.bad)
            STORE_TRY(diag_set(e, LLMSIM_EFAIL, "%s: out of memory reading them", name));
        if (!ok || !pack_done(&r))
            STORE_TRY(diag_set(e, LLMSIM_EINPUT, "%s are damaged (a chunk does not hold its %lld "
                                                 "rows)", name, (long long)rows));
        pack_reader_free(&r);
    }
fail:
    pack_reader_free(&r);
    sqlite3_finalize(q);
    return st;
}

/* Rows of a growing array taken from chunks. */
typedef struct store_chunk_rows {
    void *rows;
    size_t n, size;
} store_chunk_rows;

/* Room for `more` rows at the end of l; NULL when out of memory. */
static char *store_chunk_room(store_chunk_rows *l, size_t more)
{
    if (more > SIZE_MAX / l->size - l->n)
        return NULL;
    char *p = realloc(l->rows, (l->n + more) * l->size + 1);
    if (!p)
        return NULL;
    l->rows = p;
    return p + l->n * l->size;
}

static bool take_task_chunk(pack_reader *r, size_t rows, void *ctx)
{
    store_chunk_rows *l = ctx;
    store_task_row *t = (store_task_row *)store_chunk_room(l, rows);
    if (!t)
        return false;
    memset(t, 0, rows * sizeof *t);
    const size_t z = sizeof *t;
    bool ok = pack_get_texts(r, t->task_id, z, sizeof t->task_id, rows) &&
              pack_get_names(r, t->resource, z, sizeof t->resource, rows) &&
              pack_get_f64(r, &t->start_s, z, rows) && pack_get_f64(r, &t->end_s, z, rows) &&
              pack_get_f64(r, &t->bytes, z, rows) && pack_get_f64(r, &t->flops, z, rows);
    if (ok)
        l->n += rows;
    return ok;
}

/* A run's legacy rows (schema < 7: `sql`, read by fill), then its packed
 * chunks of `what` (read by take), into one malloc'd array; nothing on
 * failure. */
static llmsim_status store_rows_and_chunks(store *s, int64_t id, const char *sql, size_t size,
                                           store_row_fill fill, const char *doing,
                                           const char *what, store_chunk_take take, void **rows,
                                           size_t *n, diag *e)
{
    llmsim_status st = store_collect(s, id, sql, size, fill, doing, rows, n, e);
    if (st != LLMSIM_OK)
        return st;
    store_chunk_rows l = {*rows, *n, size};
    st = store_chunks_each(s, id, what, take, &l, e);
    *rows = l.rows;
    *n = l.n;
    if (st != LLMSIM_OK) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return st;
}

llmsim_status store_run_tasks_get(store *s, int64_t id, store_task_row **rows, size_t *n, diag *e)
{
    return store_rows_and_chunks(s, id,
                                 "SELECT task_id, resource, start_s, end_s, bytes, flops FROM "
                                 "run_tasks WHERE run_id = ?1",
                                 sizeof **rows, fill_task, "reading task timings", "tasks",
                                 take_task_chunk, (void **)rows, n, e);
}

static void fill_stage(sqlite3_stmt *q, void *elem)
{
    store_stage_row *t = elem;
    store_col_copy(q, 0, t->phase, sizeof t->phase);
    t->step = sqlite3_column_int(q, 1);
    store_col_copy(q, 2, t->stage, sizeof t->stage);
    t->seconds = store_col_double(q, 3);
}

llmsim_status store_run_stages_get(store *s, int64_t id, store_stage_row **rows, size_t *n, diag *e)
{
    return store_collect(s, id,
                         "SELECT phase, step, stage, seconds FROM run_stages WHERE run_id = ?1 "
                         "ORDER BY step, stage",
                         sizeof **rows, fill_stage, "reading stage timings", (void **)rows, n, e);
}

static void fill_serve_iter(sqlite3_stmt *q, void *elem)
{
    serve_iter_row *w = elem;
    w->start_s = store_col_double(q, 0);
    w->end_s = store_col_double(q, 1);
    w->predicted_s = store_col_double(q, 2);
    w->seqs = (int32_t)sqlite3_column_int64(q, 3);
    w->prefill_tokens = sqlite3_column_int64(q, 4);
    w->decode_tokens = sqlite3_column_int64(q, 5);
    w->dev_blocks = sqlite3_column_int64(q, 6);
    w->swap_blocks = sqlite3_column_int64(q, 7);
    w->out_blocks = sqlite3_column_int64(q, 8);
    w->in_blocks = sqlite3_column_int64(q, 9);
    w->preempt_swap = (int32_t)sqlite3_column_int64(q, 10);
    w->preempt_recompute = (int32_t)sqlite3_column_int64(q, 11);
    w->sched_s = store_col_double(q, 12);
    w->swap_s = store_col_double(q, 13);
    w->weights_s = store_col_double(q, 14);
    w->hit_tokens = sqlite3_column_int64(q, 15);
}

llmsim_status store_serve_iterations_get(store *s, int64_t id, serve_iter_row **rows, size_t *n,
                                         diag *e)
{
    return store_collect(s, id,
                         "SELECT start_s, end_s, predicted_s, seqs, prefill_tokens, decode_tokens, "
                         "dev_blocks, swap_blocks, out_blocks, in_blocks, preempt_swap, "
                         "preempt_recompute, sched_s, swap_s, weights_s, hit_tokens FROM "
                         "serve_iterations "
                         "WHERE run_id = ?1 ORDER BY iter",
                         sizeof **rows, fill_serve_iter, "reading serving iterations",
                         (void **)rows, n, e);
}

static void fill_serve_req(sqlite3_stmt *q, void *elem)
{
    store_serve_request *r = elem;
    r->req = sqlite3_column_int64(q, 0);
    r->arrival_s = store_col_double(q, 1);
    r->admitted_s = store_col_double(q, 2);
    r->first_token_s = store_col_double(q, 3);
    r->finish_s = store_col_double(q, 4);
    r->prompt_tokens = sqlite3_column_int64(q, 5);
    r->output_tokens = sqlite3_column_int64(q, 6);
    r->weight = store_col_double(q, 7);
    r->swaps = (int32_t)sqlite3_column_int64(q, 8);
    r->recomputes = (int32_t)sqlite3_column_int64(q, 9);
    r->cached_tokens = sqlite3_column_int64(q, 10);
}

llmsim_status store_serve_requests_get(store *s, int64_t id, store_serve_request **rows, size_t *n,
                                       diag *e)
{
    return store_collect(s, id,
                         "SELECT req, arrival_s, admitted_s, first_token_s, finish_s, "
                         "prompt_tokens, output_tokens, weight, swaps, recomputes, cached_tokens "
                         "FROM serve_requests WHERE run_id = ?1 ORDER BY req",
                         sizeof **rows, fill_serve_req, "reading serving requests", (void **)rows,
                         n, e);
}

static const char *const store_tiers[] = {"gpu", "cpu", "disk"};

/* A tier's name as a static string, "?" for one this version does not know. */
static const char *store_tier(const char *name)
{
    for (size_t k = 0; name && k < sizeof store_tiers / sizeof store_tiers[0]; k++)
        if (strcmp(name, store_tiers[k]) == 0)
            return store_tiers[k];
    return "?";
}

static void fill_memory(sqlite3_stmt *q, void *elem)
{
    store_mem_sample *t = elem;
    t->tier = store_tier((const char *)sqlite3_column_text(q, 1));
    t->time_s = store_col_double(q, 0);
    t->bytes = store_col_double(q, 2);
}

static bool take_memory_chunk(pack_reader *r, size_t rows, void *ctx)
{
    store_chunk_rows *l = ctx;
    store_mem_sample *m = (store_mem_sample *)store_chunk_room(l, rows);
    char(*names)[16] = malloc((rows ? rows : 1) * sizeof *names);
    if (!m || !names) {
        free(names);
        return false;
    }
    const size_t z = sizeof *m;
    bool ok = pack_get_f64(r, &m->time_s, z, rows) &&
              pack_get_names(r, names, sizeof *names, sizeof *names, rows) &&
              pack_get_f64(r, &m->bytes, z, rows);
    for (size_t i = 0; ok && i < rows; i++)
        m[i].tier = store_tier(names[i]);
    free(names);
    if (ok)
        l->n += rows;
    return ok;
}

llmsim_status store_run_memory_get(store *s, int64_t id, store_mem_sample **rows, size_t *n, diag *e)
{
    return store_rows_and_chunks(s, id,
                                 "SELECT time_s, tier, bytes FROM run_memory WHERE run_id = ?1 "
                                 "ORDER BY seq",
                                 sizeof **rows, fill_memory, "reading memory samples", "memory",
                                 take_memory_chunk, (void **)rows, n, e);
}

void store_metrics_free(char **keys, double *values, int n)
{
    if (keys)
        for (int i = 0; i < n; i++)
            free(keys[i]);
    free(keys);
    free(values);
}
