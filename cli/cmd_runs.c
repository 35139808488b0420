/*
 * cmd_runs — `llmsim runs` (list recorded runs) and `llmsim show RUN_ID` (one
 * run with its metrics and stored result), read from the store.
 *
 * Both only read: they open the store with store_open_existing, so a missing
 * file is reported (exit 2) and never created. Output is a table by default
 * or one JSON object with --format json. Everything a command allocates is
 * released at its single `done:` label.
 */
#include "cli/commands.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "db/store.h"

#define CMD_DEFAULT_DB "./llmsim.db"

// ---- shared helpers

static int cmd_exit_status(llmsim_status st)
{
    return st == LLMSIM_OK ? 0 : st == LLMSIM_EINPUT ? 2 : 1;
}

static const char *cmd_default_db(void)
{
    const char *env = getenv("LLMSIM_DB");
    return env && *env ? env : CMD_DEFAULT_DB;
}

/* --format: false (with a message) unless "table" or "json". */
static bool cmd_parse_format(const char *cmd, const char *arg, bool *json)
{
    cli_format f;
    if (!cli_format_parse(arg, &f)) {
        fprintf(stderr, "llmsim %s: --format must be table or json (got '%s')\n", cmd, arg);
        return false;
    }
    *json = f == CLI_FORMAT_JSON;
    return true;
}

/* A decimal integer in [lo, hi], the whole string. */
static bool cmd_parse_int(const char *arg, long long lo, long long hi, long long *out)
{
    if (!arg || !*arg)
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Report an option getopt_long rejected (opterr is off; optstring starts with
 * ':' so a missing argument returns ':'). */
static void cmd_bad_option(const char *cmd, int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        fprintf(stderr, "llmsim %s: option '%s' needs a value; see llmsim %s --help\n", cmd, arg,
                cmd);
    else
        fprintf(stderr, "llmsim %s: unknown option '%s'; see llmsim %s --help\n", cmd, arg, cmd);
}

/* The options both commands take (--db, --format, --help), and any option
 * getopt_long rejected: -1 to go on, else the exit status. */
static int cmd_common_opt(const char *cmd, int c, char **argv, const char **db, bool *json,
                          void (*usage)(FILE *))
{
    switch (c) {
    case 'd':
        *db = optarg;
        return -1;
    case 'f':
        return cmd_parse_format(cmd, optarg, json) ? -1 : 2;
    case 'h':
        usage(stdout);
        return 0;
    default:
        cmd_bad_option(cmd, c, argv);
        return 2;
    }
}

/* Add a string, or null for NULL; false on out of memory. */
static bool json_add_str(cJSON *o, const char *key, const char *v)
{
    return (v ? cJSON_AddStringToObject(o, key, v) : cJSON_AddNullToObject(o, key)) != NULL;
}

/* Add a number, or null for NaN. */
static bool json_add_num(cJSON *o, const char *key, double v)
{
    return (isnan(v) ? cJSON_AddNullToObject(o, key) : cJSON_AddNumberToObject(o, key, v)) != NULL;
}

/* The fields of one run as a JSON object (the result excepted); NULL on out of
 * memory. `full` adds the input hashes. */
static cJSON *cmd_run_json(const store_run_row *r, bool full)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o != NULL;
    ok = ok && cJSON_AddNumberToObject(o, "id", (double)r->id);
    ok = ok && json_add_str(o, "kind", r->kind);
    ok = ok && json_add_str(o, "status", r->status);
    ok = ok && json_add_str(o, "model_name", r->model_name);
    ok = ok && json_add_str(o, "hw_name", r->hw_name);
    ok = ok && json_add_num(o, "throughput_tok_s", r->throughput_tok_s);
    ok = ok && json_add_num(o, "total_s", r->total_s);
    ok = ok && json_add_str(o, "started_at", r->started_at);
    ok = ok && json_add_str(o, "finished_at", r->finished_at);
    ok = ok && json_add_str(o, "tool_version", r->tool_version);
    ok = ok && json_add_str(o, "command", r->command);
    if (full) {
        ok = ok && json_add_str(o, "model_hash", r->model_hash);
        ok = ok && json_add_str(o, "hw_hash", r->hw_hash);
        ok = ok && json_add_str(o, "policy_hash", r->policy_hash);
        ok = ok && json_add_str(o, "workload_hash", r->workload_hash);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Print a JSON document on stdout; false on out of memory. */
static bool cmd_print_json(const cJSON *doc)
{
    char *text = doc ? cJSON_Print(doc) : NULL;
    if (!text)
        return false;
    puts(text);
    cJSON_free(text);
    return true;
}

/* "2024-05-01T12:34:56.789Z" -> "2024-05-01 12:34:56" for tables. */
static const char *cmd_short_time(const char *iso, char *buf, size_t n)
{
    if (!iso)
        return "-";
    snprintf(buf, n, "%.19s", iso);
    char *t = strchr(buf, 'T');
    if (t)
        *t = ' ';
    return buf;
}

// ---- llmsim runs

static void runs_usage(FILE *f)
{
    fputs("usage: llmsim runs [--db PATH] [--model NAME] [--hardware NAME] [--kind KIND]\n"
          "                   [--limit N] [--format table|json] [--help]\n"
          "\n"
          "List the runs recorded in the store, newest first.\n"
          "\n"
          "  --db PATH         the store (default: $LLMSIM_DB, else ./llmsim.db)\n"
          "  --model NAME      only runs of this model\n"
          "  --hardware NAME   only runs on this hardware profile\n"
          "  --kind KIND       only runs of this kind (predict, simulate, measure, search,\n"
          "                    profile, validate, calibrate, serve, serve-measure)\n"
          "  --limit N         at most N runs (N >= 1)\n"
          "  --format FORMAT   table (default) or json: {\"runs\": [...]}\n"
          "  --help            print this help\n",
          f);
}

enum { RUNS_COLS = 8 };

/* Text of one table cell; numbers are formatted into buf. */
static const char *runs_cell(const store_run_row *r, int col, char *buf, size_t n)
{
    switch (col) {
    case 0:
        snprintf(buf, n, "%" PRId64, r->id);
        return buf;
    case 1:
        return r->kind ? r->kind : "-";
    case 2:
        return r->status ? r->status : "-";
    case 3:
        return r->model_name ? r->model_name : "-";
    case 4:
        return r->hw_name ? r->hw_name : "-";
    case 5:
        if (isnan(r->throughput_tok_s))
            return "-";
        snprintf(buf, n, "%.2f", r->throughput_tok_s);
        return buf;
    case 6:
        if (isnan(r->total_s))
            return "-";
        snprintf(buf, n, "%.3f", r->total_s);
        return buf;
    default:
        return cmd_short_time(r->started_at, buf, n);
    }
}

static void runs_print_table(const store_run_row *rows, int n)
{
    static const char *const head[RUNS_COLS] = {
        "id", "kind", "status", "model", "hardware", "throughput tok/s", "total s", "started",
    };
    static const bool right[RUNS_COLS] = {true, false, false, false, false, true, true, false};
    int width[RUNS_COLS];
    char buf[64];
    for (int c = 0; c < RUNS_COLS; c++)
        width[c] = (int)strlen(head[c]);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < RUNS_COLS; c++) {
            int w = (int)strlen(runs_cell(&rows[i], c, buf, sizeof buf));
            if (w > width[c])
                width[c] = w;
        }
    /* the last column is left-aligned and not padded: no trailing blanks */
    for (int c = 0; c < RUNS_COLS; c++)
        printf("%s%*s", c ? "  " : "", right[c] ? width[c] : c + 1 < RUNS_COLS ? -width[c] : 0,
               head[c]);
    putchar('\n');
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < RUNS_COLS; c++)
            printf("%s%*s", c ? "  " : "",
                   right[c] ? width[c] : c + 1 < RUNS_COLS ? -width[c] : 0,
                   runs_cell(&rows[i], c, buf, sizeof buf));
        putchar('\n');
    }
}

static bool runs_print_json(const store_run_row *rows, int n)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *list = doc ? cJSON_AddArrayToObject(doc, "runs") : NULL;
    bool ok = list != NULL;
    for (int i = 0; ok && i < n; i++) {
        cJSON *o = cmd_run_json(&rows[i], false);
        ok = o && cJSON_AddItemToArray(list, o);
        if (!ok)
            cJSON_Delete(o);
    }
    ok = ok && cmd_print_json(doc);
    cJSON_Delete(doc);
    return ok;
}

/* --kind: one of the kinds of run; false (with a message) otherwise. */
static bool runs_parse_kind(const char *arg)
{
    static const char *const kinds[] = {"predict", "simulate", "measure", "search",
                                        "profile", "validate", "calibrate", "serve",
                                        "serve-measure"};
    bool known = false;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        known = known || strcmp(arg, kinds[i]) == 0;
    if (!known)
        fprintf(stderr, "llmsim runs: --kind '%s' is not a kind of run (predict, simulate, "
                "measure, search, profile, validate, calibrate, serve, serve-measure)\n", arg);
    return known;
}

/* The options of llmsim runs: -1 to go on, else the exit status. */
static int runs_parse(int argc, char **argv, const char **db, store_run_filter *filter, bool *json)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},     {"model", required_argument, NULL, 'm'},
        {"hardware", required_argument, NULL, 'w'}, {"kind", required_argument, NULL, 'k'},
        {"limit", required_argument, NULL, 'n'},  {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    long long limit = 0;
    cli_getopt_reset();
    for (int c; (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        int st = -1;
        if (c == 'm') {
            filter->model_name = optarg;
        } else if (c == 'w') {
            filter->hw_name = optarg;
        } else if (c == 'k') {
            if (!runs_parse_kind(optarg))
                return 2;
            filter->kind = optarg;
        } else if (c == 'n') {
            if (!cmd_parse_int(optarg, 1, INT_MAX, &limit)) {
                fprintf(stderr, "llmsim runs: --limit must be a whole number >= 1 (got '%s')\n",
                        optarg);
                return 2;
            }
            filter->limit = (int)limit;
        } else {
            st = cmd_common_opt("runs", c, argv, db, json, runs_usage);
        }
        if (st >= 0)
            return st;
    }
    if (optind < argc) {
        fprintf(stderr, "llmsim runs: unexpected argument '%s'; see llmsim runs --help\n",
                argv[optind]);
        return 2;
    }
    return -1;
}

/* The runs of the store db that pass the filter, as a table or JSON; the exit
 * status. */
static int runs_list(const char *db, const store_run_filter *filter, bool json)
{
    diag e;
    diag_clear(&e);
    store *s = NULL;
    store_run_row *rows = NULL;
    int n = 0;
    llmsim_status st = store_open_existing(db, &s, &e);
    if (st == LLMSIM_OK)
        st = store_runs_list(s, filter, &rows, &n, &e);
    if (st != LLMSIM_OK) {
        fprintf(stderr, "llmsim runs: %s\n", e.msg);
        goto done;
    }
    if (json) {
        if (!runs_print_json(rows, n))
            st = diag_set(&e, LLMSIM_EFAIL, "out of memory printing JSON");
    } else if (n == 0) {
        if (filter->model_name || filter->hw_name || filter->kind)
            printf("no runs match\n");
        else
            printf("no runs recorded in %s\n", db);
    } else {
        runs_print_table(rows, n);
    }
    if (st != LLMSIM_OK)
        fprintf(stderr, "llmsim runs: %s\n", e.msg);
done:
    store_rows_free(rows, n);
    store_close(s);
    return cmd_exit_status(st);
}

int cmd_runs(int argc, char **argv)
{
    const char *db = cmd_default_db();
    store_run_filter filter = {0};
    bool json = false;
    int status = runs_parse(argc, argv, &db, &filter, &json);
    return status >= 0 ? status : runs_list(db, &filter, json);
}

// ---- llmsim show

static void show_usage(FILE *f)
{
    fputs("usage: llmsim show RUN_ID [--tasks | --memory] [--db PATH] [--format table|json]\n"
          "                  [--help]\n"
          "\n"
          "Print one recorded run: its fields, its metrics and its stored result; or\n"
          "every task's timing, or the memory per tier over time, of a simulated or\n"
          "measured run (the store keeps them packed: this is how to read them).\n"
          "\n"
          "  RUN_ID            the id printed by llmsim runs\n"
          "  --tasks           the run's tasks as CSV: task_id,resource,start_s,end_s,\n"
          "                    bytes,flops (json: {\"tasks\": [{...}, ...]})\n"
          "  --memory          its memory samples as CSV: time_s,tier,bytes (json:\n"
          "                    {\"memory\": [...]}); both exact (17 digits)\n"
          "  --db PATH         the store (default: $LLMSIM_DB, else ./llmsim.db)\n"
          "  --format FORMAT   table (default) or json: {\"run\": ..., \"metrics\": ...,\n"
          "                    \"result\": ...}\n"
          "  --help            print this help\n",
          f);
}

static void show_print_table(const store_run_row *r, char **keys, const double *values, int n)
{
    char buf[32], buf2[32];
    printf("run %" PRId64 "\n", r->id);
    printf("  %-14s %s\n", "kind", r->kind ? r->kind : "-");
    printf("  %-14s %s\n", "status", r->status ? r->status : "-");
    printf("  %-14s %s\n", "model", r->model_name ? r->model_name : "-");
    printf("  %-14s %s\n", "hardware", r->hw_name ? r->hw_name : "-");
    printf("  %-14s %s\n", "started", cmd_short_time(r->started_at, buf, sizeof buf));
    printf("  %-14s %s\n", "finished", cmd_short_time(r->finished_at, buf2, sizeof buf2));
    printf("  %-14s %s\n", "tool version", r->tool_version ? r->tool_version : "-");
    printf("  %-14s %s\n", "command", r->command ? r->command : "-");
    printf("  %-14s %s\n", "model hash", r->model_hash ? r->model_hash : "-");
    printf("  %-14s %s\n", "hw hash", r->hw_hash ? r->hw_hash : "-");
    printf("  %-14s %s\n", "policy hash", r->policy_hash ? r->policy_hash : "-");
    printf("  %-14s %s\n", "workload hash", r->workload_hash ? r->workload_hash : "-");

    printf("\nmetrics\n");
    if (n == 0)
        printf("  (none)\n");
    int w = 0;
    for (int i = 0; i < n; i++)
        if ((int)strlen(keys[i]) > w)
            w = (int)strlen(keys[i]);
    for (int i = 0; i < n; i++) {
        if (isnan(values[i]))
            printf("  %-*s  -\n", w, keys[i]);
        else
            printf("  %-*s  %.6g\n", w, keys[i], values[i]);
    }
}

/* The options and the RUN_ID of llmsim show: -1 to go on, else the exit
 * status. */
typedef enum show_what { SHOW_RUN, SHOW_TASKS, SHOW_MEMORY } show_what;

static int show_parse(int argc, char **argv, const char **db, bool *json, show_what *what,
                      long long *id)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {"tasks", no_argument, NULL, 't'},
        {"memory", no_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    cli_getopt_reset();
    for (int c; (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        if (c == 't' || c == 'm') {
            show_what w = c == 't' ? SHOW_TASKS : SHOW_MEMORY;
            if (*what != SHOW_RUN && *what != w) {
                fprintf(stderr, "llmsim show: give --tasks or --memory, not both\n");
                return 2;
            }
            *what = w;
            continue;
        }
        int st = cmd_common_opt("show", c, argv, db, json, show_usage);
        if (st >= 0)
            return st;
    }
    if (optind >= argc) {
        fprintf(stderr, "llmsim show: give a RUN_ID (see llmsim runs); see llmsim show --help\n");
        return 2;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "llmsim show: unexpected argument '%s'; give one RUN_ID\n",
                argv[optind + 1]);
        return 2;
    }
    if (!cmd_parse_int(argv[optind], 1, INT64_MAX, id)) {
        fprintf(stderr, "llmsim show: RUN_ID must be a positive whole number (got '%s')\n",
                argv[optind]);
        return 2;
    }
    return -1;
}

/* {"run": ..., "metrics": ..., "result": ...} on stdout; false on out of
 * memory. *result (the parsed stored result, or NULL) goes into the
 * document, which then owns it (*result is set to NULL). */
static bool show_print_json(const store_run_row *row, char **keys, const double *values, int n,
                            cJSON **result, cJSON *serving)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *run = cmd_run_json(row, true);
    bool ok = doc && run && cJSON_AddItemToObject(doc, "run", run);
    if (!ok)
        cJSON_Delete(run);
    cJSON *metrics = ok ? cJSON_AddObjectToObject(doc, "metrics") : NULL;
    ok = metrics != NULL;
    for (int i = 0; ok && i < n; i++)
        ok = json_add_num(metrics, keys[i], values[i]);
    if (ok) {
        cJSON *r = *result ? *result
                   : row->result_json ? cJSON_CreateString(row->result_json)
                                      : cJSON_CreateNull();
        ok = r && cJSON_AddItemToObject(doc, "result", r);
        if (ok && r == *result)
            *result = NULL; /* now owned by doc */
        else if (!ok && r != *result)
            cJSON_Delete(r);
    }
    if (serving) { /* a serving run's rows: {"iterations": [...], "requests": [...]} */
        if (ok && doc)
            ok = cJSON_AddItemToObject(doc, "serving", serving);
        else
            cJSON_Delete(serving);
    }
    ok = ok && cmd_print_json(doc);
    cJSON_Delete(doc);
    return ok;
}

/* A serving run's rows (serve, serve-measure). */
typedef struct show_serving {
    serve_iter_row *it;
    size_t nit;
    store_serve_request *rq;
    size_t nrq;
} show_serving;

/* Requests shown in the table; --format json has them all. */
#define SHOW_MAX_REQUESTS 40

static void show_serving_table(const show_serving *sv)
{
    if (!sv->nit && !sv->nrq)
        return;
    int64_t pre = 0, dec = 0, out = 0, in = 0, ps = 0, pr = 0, hit = 0;
    double busy = 0, pred = 0, sched = 0;
    for (size_t i = 0; i < sv->nit; i++) {
        const serve_iter_row *w = &sv->it[i];
        pre += w->prefill_tokens;
        dec += w->decode_tokens;
        out += w->out_blocks;
        in += w->in_blocks;
        ps += w->preempt_swap;
        pr += w->preempt_recompute;
        busy += w->end_s - w->start_s;
        pred += w->predicted_s;
        sched += w->sched_s;
        hit += w->hit_tokens;
    }
    printf("\nserving rows\n");
    printf("  iterations     %zu: %lld prefill and %lld decode tokens, %.4g s busy (priced %.4g s), "
           "scheduler %.4g s\n", sv->nit, (long long)pre, (long long)dec, busy, pred, sched);
    printf("  preemptions    %lld by swap (%lld blocks out, %lld in), %lld by recompute\n",
           (long long)ps, (long long)out, (long long)in, (long long)pr);
    if (hit)
        printf("  prefix cache   %lld prompt tokens found cached\n", (long long)hit);
    printf("  requests       %zu\n", sv->nrq);
    printf("  %5s %10s %10s %10s %10s %7s %7s %7s %5s %5s\n", "id", "arrival", "admitted",
           "first tok", "finish", "prompt", "cached", "output", "swaps", "recmp");
    for (size_t i = 0; i < sv->nrq && i < SHOW_MAX_REQUESTS; i++) {
        const store_serve_request *r = &sv->rq[i];
        printf("  %5lld %10.4f %10.4f %10.4f %10.4f %7lld %7lld %7lld %5d %5d\n", (long long)r->req,
               r->arrival_s, r->admitted_s, r->first_token_s, r->finish_s,
               (long long)r->prompt_tokens, (long long)r->cached_tokens,
               (long long)r->output_tokens, r->swaps, r->recomputes);
    }
    if (sv->nrq > SHOW_MAX_REQUESTS)
        printf("  ... %zu more (--format json has them all)\n", sv->nrq - SHOW_MAX_REQUESTS);
}

static cJSON *show_serving_json(const show_serving *sv)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *its = cJSON_AddArrayToObject(o, "iterations");
    for (size_t i = 0; i < sv->nit; i++) {
        const serve_iter_row *w = &sv->it[i];
        cJSON *x = cJSON_CreateObject();
        const struct {
            const char *k;
            double v;
        } f[] = {{"start_s", w->start_s}, {"end_s", w->end_s}, {"predicted_s", w->predicted_s},
                 {"seqs", w->seqs}, {"prefill_tokens", (double)w->prefill_tokens},
                 {"decode_tokens", (double)w->decode_tokens}, {"dev_blocks", (double)w->dev_blocks},
                 {"swap_blocks", (double)w->swap_blocks}, {"out_blocks", (double)w->out_blocks},
                 {"in_blocks", (double)w->in_blocks}, {"preempt_swap", w->preempt_swap},
                 {"preempt_recompute", w->preempt_recompute}, {"sched_s", w->sched_s},
                 {"swap_s", w->swap_s}, {"weights_s", w->weights_s},
                 {"hit_tokens", (double)w->hit_tokens}};
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
            cJSON_AddNumberToObject(x, f[k].k, f[k].v);
        cJSON_AddItemToArray(its, x);
    }
    cJSON *rqs = cJSON_AddArrayToObject(o, "requests");
    for (size_t i = 0; i < sv->nrq; i++) {
        const store_serve_request *r = &sv->rq[i];
        cJSON *x = cJSON_CreateObject();
        const struct {
            const char *k;
            double v;
        } f[] = {{"id", (double)r->req}, {"arrival_s", r->arrival_s},
                 {"admitted_s", r->admitted_s}, {"first_token_s", r->first_token_s},
                 {"finish_s", r->finish_s}, {"prompt_tokens", (double)r->prompt_tokens},
                 {"output_tokens", (double)r->output_tokens}, {"weight", r->weight},
                 {"swaps", r->swaps}, {"recomputes", r->recomputes},
                 {"cached_tokens", (double)r->cached_tokens}};
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
            cJSON_AddNumberToObject(x, f[k].k, f[k].v);
        cJSON_AddItemToArray(rqs, x);
    }
    return o;
}

/* Run id of the store db: its fields, metrics and result, as a table or JSON;
 * the exit status. */
static int show_run(const char *db, int64_t id, bool json)
{
    diag e;
    diag_clear(&e);
    store *s = NULL;
    store_run_row row = {0};
    char **keys = NULL;
    double *values = NULL;
    int n = 0;
    cJSON *result = NULL;
    show_serving sv = {0};
    llmsim_status st = store_open_existing(db, &s, &e);
    if (st == LLMSIM_OK)
        st = store_run_get(s, id, &row, &e);
    if (st == LLMSIM_OK)
        st = store_run_metrics(s, id, &keys, &values, &n, &e);
    if (st == LLMSIM_OK)
        st = store_serve_iterations_get(s, id, &sv.it, &sv.nit, &e);
    if (st == LLMSIM_OK)
        st = store_serve_requests_get(s, id, &sv.rq, &sv.nrq, &e);
    if (st != LLMSIM_OK)
        goto done;

    /* The stored result is our own JSON; an unreadable one is shown as text. */
    result = row.result_json ? cJSON_Parse(row.result_json) : NULL;
    if (!json) {
        show_print_table(&row, keys, values, n);
        show_serving_table(&sv);
        printf("\nresult\n");
        if (!row.result_json)
            printf("  (none)\n");
        else if (!result || !cmd_print_json(result))
            puts(row.result_json);
    } else if (!show_print_json(&row, keys, values, n, &result,
                                sv.nit || sv.nrq ? show_serving_json(&sv) : NULL)) {
        st = diag_set(&e, LLMSIM_EFAIL, "out of memory printing JSON");
    }
done:
    free(sv.it);
    free(sv.rq);
    if (st != LLMSIM_OK)
        fprintf(stderr, "llmsim show: %s\n", e.msg);
    cJSON_Delete(result);
    store_metrics_free(keys, values, n);
    store_row_clear(&row);
    store_close(s);
    return cmd_exit_status(st);
}

/* A JSON string of plain text (ids and names of our own, or of an older
 * store: escaped all the same). */
static void show_json_str(const char *t)
{
    putchar('"');
    for (; *t; t++) {
        unsigned char c = (unsigned char)*t;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* A double as the shortest text that reads back to it, or null (json) /
 * empty (CSV) for a non-finite one. */
static void show_num(double v, bool json)
{
    if (isfinite(v))
        printf("%.17g", v);
    else if (json)
        fputs("null", stdout);
}

/* The run's tasks or memory samples, as CSV or JSON; the exit status. */
static int show_rows(const char *db, int64_t id, show_what what, bool json)
{
    diag e;
    diag_clear(&e);
    store *s = NULL;
    store_run_row row = {0};
    store_task_row *t = NULL;
    store_mem_sample *m = NULL;
    size_t n = 0;
    llmsim_status st = store_open_existing(db, &s, &e);
    if (st == LLMSIM_OK) /* the run exists: an unknown id is an error, not an empty list */
        st = store_run_get(s, id, &row, &e);
    if (st == LLMSIM_OK)
        st = what == SHOW_TASKS ? store_run_tasks_get(s, id, &t, &n, &e)
                                : store_run_memory_get(s, id, &m, &n, &e);
    if (st == LLMSIM_OK && json)
        printf("{\"%s\": [", what == SHOW_TASKS ? "tasks" : "memory");
    else if (st == LLMSIM_OK)
        puts(what == SHOW_TASKS ? "task_id,resource,start_s,end_s,bytes,flops" : "time_s,tier,bytes");
    for (size_t i = 0; st == LLMSIM_OK && i < n; i++) {
        if (json)
            fputs(i ? ",\n  {" : "\n  {", stdout);
        if (what == SHOW_TASKS && json) {
            const double v[] = {t[i].start_s, t[i].end_s, t[i].bytes, t[i].flops};
            const char *const keys[] = {"start_s", "end_s", "bytes", "flops"};
            fputs("\"task_id\": ", stdout);
            show_json_str(t[i].task_id);
            fputs(", \"resource\": ", stdout);
            show_json_str(t[i].resource);
            for (int k = 0; k < 4; k++) {
                printf(", \"%s\": ", keys[k]);
                show_num(v[k], true);
            }
        } else if (what == SHOW_TASKS) {
            const double v[] = {t[i].start_s, t[i].end_s, t[i].bytes, t[i].flops};
            printf("%s,%s", t[i].task_id, t[i].resource);
            for (int k = 0; k < 4; k++) {
                putchar(',');
                show_num(v[k], false);
            }
        } else {
            fputs(json ? "\"time_s\": " : "", stdout);
            show_num(m[i].time_s, json);
            printf(json ? ", \"tier\": \"%s\", \"bytes\": " : ",%s,", m[i].tier);
            show_num(m[i].bytes, json);
        }
        fputs(json ? "}" : "\n", stdout);
    }
    if (st == LLMSIM_OK && json)
        puts(n ? "\n]}" : "]}");
    if (st != LLMSIM_OK)
        fprintf(stderr, "llmsim show: %s\n", e.msg);
    free(t);
    free(m);
    store_row_clear(&row);
    store_close(s);
    return cmd_exit_status(st);
}

int cmd_show(int argc, char **argv)
{
    const char *db = cmd_default_db();
    bool json = false;
    show_what what = SHOW_RUN;
    long long id = 0;
    int status = show_parse(argc, argv, &db, &json, &what, &id);
    if (status >= 0)
        return status;
    return what == SHOW_RUN ? show_run(db, (int64_t)id, json) : show_rows(db, (int64_t)id, what, json);
}
