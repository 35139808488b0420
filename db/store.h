/*
 * store — the SQLite store (ARCHITECTURE §10): inputs by content hash, runs
 * with their metrics, stage and task timings.
 *
 * One file, WAL mode, foreign keys on, schema versioned by PRAGMA
 * user_version with append-only migrations, each applied in one transaction.
 * A run is written as: store_run_begin commits a row with status 'running',
 * then opens a transaction; metrics, stages and tasks go inside it;
 * store_run_commit sets the status and result and commits; store_run_abort
 * rolls back and marks the row 'failed' or 'interrupted'. A process killed in
 * between leaves a 'running' row whose pid is gone; store_open marks such rows
 * 'interrupted'.
 *
 * Ownership: the store handle is the caller's, freed by store_close
 * (accepts NULL). Strings in results are owned by the result and freed by
 * the matching *_free function.
 */
#ifndef LLMSIM_DB_STORE_H
#define LLMSIM_DB_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/diag.h"
#include "serving/result.h"
#include "workload/requests.h"

typedef struct store store;

/* Current schema version (PRAGMA user_version after migrations). */
#define STORE_SCHEMA_VERSION 7

/* Open (creating if needed) the store at `path` and migrate it to
 * STORE_SCHEMA_VERSION. LLMSIM_EINPUT for a file that is not a store, a store
 * written by a newer llmsim, or a database locked by another process. */
llmsim_status store_open(const char *path, store **out, diag *e);
/* Same, but never creates the file: a missing file is LLMSIM_EINPUT with
 * "no store at PATH (...)". For commands that only read (runs, show). */
llmsim_status store_open_existing(const char *path, store **out, diag *e);
/* Closes the handle; a run still open is aborted as 'interrupted'. */
void store_close(store *s);

/* Record an input by the hash of its canonical text (kind: "model",
 * "hwprofile", "policy", "workload"); idempotent. hash_out gets the hex hash.
 * A different text under an existing hash is reported as a collision.
 * Record inputs before store_run_begin: runs reference them by foreign key. */
llmsim_status store_put_input(store *s, const char *kind, const char *name, const char *canonical,
                              char hash_out[17], diag *e);

typedef struct store_run_info {
    const char *kind;          /* predict, simulate, measure, search, profile, validate,
                                  calibrate, serve */
    const char *model_hash;    /* each may be NULL */
    const char *hw_hash;
    const char *policy_hash;
    const char *workload_hash;
    const char *model_name;
    const char *hw_name;
    const char *command;       /* the command line, for the record */
} store_run_info;

llmsim_status store_run_begin(store *s, const store_run_info *info, int64_t *run_id, diag *e);
llmsim_status store_run_metric(store *s, int64_t run_id, const char *key, double value, diag *e);
/* Per-step stage time: phase "prefill" or "decode", step index (0 = prefill,
 * 1.. = decode steps, -1 = per-layer average of the phase), stage name. */
llmsim_status store_run_stage(store *s, int64_t run_id, const char *phase, int step,
                              const char *stage, double seconds, diag *e);
/* Per-task timings (simulated or measured) of a run, inserted in the run's
 * transaction with one prepared statement. fill(ctx, i, &task, id, id_len)
 * describes task i: its stable plan id goes into id. */
typedef struct store_task {
    const char *resource; /* static string */
    double start_s, end_s, bytes, flops;
} store_task;
typedef void (*store_task_fill)(void *ctx, size_t i, store_task *out, char *id, size_t id_len);
llmsim_status store_run_tasks(store *s, int64_t run_id, size_t n, store_task_fill fill, void *ctx,
                              diag *e);

/* Memory occupancy per tier over time: n samples, in time order. */
typedef struct store_mem_sample {
    double time_s;
    const char *tier; /* "gpu", "cpu", "disk" (static strings when written) */
    double bytes;     /* occupancy of the tier after the change */
} store_mem_sample;
llmsim_status store_run_memory(store *s, int64_t run_id, size_t n, const store_mem_sample *m,
                               diag *e);

/* status: "ok"; result_json: the command's JSON output (owned by caller). */
/* A serving run's rows: one per iteration of r (swapped bytes from
 * block_bytes) and one per request of q (numbered from 1). */
llmsim_status store_serve_rows(store *s, int64_t run_id, const serve_result *r,
                               const serve_requests *q, double block_bytes, diag *e);
llmsim_status store_run_commit(store *s, int64_t run_id, const char *status, const char *result_json,
                               diag *e);
/* status: "failed" or "interrupted". Rolls back the run's transaction and marks
 * the row; does nothing to a run already committed. Where even marking fails,
 * the row stays 'running' and the next store_open after this process exits
 * marks it 'interrupted'. */
void store_run_abort(store *s, int64_t run_id, const char *status);

/* ---- queries */
typedef struct store_run_row {
    int64_t id;
    char *kind, *status, *model_name, *hw_name, *started_at, *finished_at, *tool_version, *command;
    char *model_hash, *hw_hash, *policy_hash, *workload_hash;
    char *result_json; /* NULL in lists; filled by store_run_get */
    double throughput_tok_s; /* the metric of that name, NaN if absent */
    double total_s;
} store_run_row;

typedef struct store_run_filter {
    const char *model_name; /* NULL: any */
    const char *hw_name;
    const char *kind;
    int limit;              /* 0: no limit */
} store_run_filter;

/* Newest first. *rows is an array of *n rows; free with store_rows_free. */
llmsim_status store_runs_list(store *s, const store_run_filter *f, store_run_row **rows, int *n,
                              diag *e);
void store_rows_free(store_run_row *rows, int n);
/* Free the strings of one row (as filled by store_run_get) and zero it;
 * accepts NULL. */
void store_row_clear(store_run_row *row);
/* One run with its result into a caller-owned row (free its strings with
 * store_row_clear); LLMSIM_EINPUT when no such run. */
llmsim_status store_run_get(store *s, int64_t id, store_run_row *row, diag *e);
/* Metrics of a run as (key, value) pairs; free with store_metrics_free. */
llmsim_status store_run_metrics(store *s, int64_t id, char ***keys, double **values, int *n, diag *e);
void store_metrics_free(char **keys, double *values, int n);
/* The newest 'ok' run of `kind` on this host with exactly these inputs
 * (NULL hash: the column is NULL); *id = 0 when there is none. */
llmsim_status store_find_run(store *s, const char *kind, const char *model_hash, const char *hw_hash,
                             const char *policy_hash, const char *workload_hash, int64_t *id,
                             diag *e);
/* The same, the newest `max` of them, newest first: ids[0..*n). */
llmsim_status store_find_runs(store *s, const char *kind, const char *model_hash,
                              const char *hw_hash, const char *policy_hash,
                              const char *workload_hash, int64_t *ids, int max, int *n, diag *e);

/* Task timings of a run, in task_id order (not plan order: callers match
 * by id). Free with free(). */
typedef struct store_task_row {
    char task_id[64];
    char resource[16];
    double start_s, end_s, bytes, flops;
} store_task_row;
llmsim_status store_run_tasks_get(store *s, int64_t id, store_task_row **rows, size_t *n, diag *e);

/* Stage rows of a run, by phase, step and stage. Free with free(). */
typedef struct store_stage_row {
    char phase[16];
    int step;
    char stage[32];
    double seconds;
} store_stage_row;
llmsim_status store_run_stages_get(store *s, int64_t id, store_stage_row **rows, size_t *n, diag *e);

/* Memory samples of a run, in order; tier strings are static ("gpu", "cpu",
 * "disk", or "?" for an unknown name). Free with free(). */
/* A serving run's rows, in order (none for other runs). */
typedef struct store_serve_request {
    int64_t req;               /* from 1, in the requests' order */
    double arrival_s, admitted_s, first_token_s, finish_s;
    int64_t prompt_tokens, output_tokens;
    double weight;
    int32_t swaps, recomputes;
    int64_t cached_tokens;     /* prompt tokens found in the prefix cache */
} store_serve_request;
llmsim_status store_serve_iterations_get(store *s, int64_t id, serve_iter_row **rows, size_t *n,
                                         diag *e);
llmsim_status store_serve_requests_get(store *s, int64_t id, store_serve_request **rows, size_t *n,
                                       diag *e);
llmsim_status store_run_memory_get(store *s, int64_t id, store_mem_sample **rows, size_t *n, diag *e);

/* Text of an input by hash (caller frees); NULL if absent. */
char *store_input_body(store *s, const char *hash);

#endif
