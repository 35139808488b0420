/*
 * cmd_serve — `llmsim serve`: serve a trace or generated requests for real
 * on the engine (exec/serve.h), with the settings and the output of
 * serve-sim, measured: throughput, latency percentiles, weighted
 * turnaround, preemptions and KV use; the generated tokens, a Chrome trace
 * and the requests' CSV on request; the run recorded in the store.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/serve_args.h"
#include "common/atomicfile.h"
#include "common/clock.h"
#include "db/result_json.h"
#include "db/serving.h"
#include "exec/conditions.h"
#include "exec/serve.h"
#include "sim/serve.h"
#include "validate/serving.h"
#include "validate/validate.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: llmsim serve --model M --hardware H [policy] (--trace-in FILE | generator)\n"
            "                    [serving] [engine] [options]\n"
            "\n"
            "Serve requests for real on the engine: each is admitted no earlier than its\n"
            "arrival on the wall clock, and served by continuous batching (decode tokens and\n"
            "prompt chunks of many sequences in one iteration) over a paged KV cache, with\n"
            "preemption by swap or recompute when the cache runs out, under the policy's\n"
            "weight placement (weights on disk are read layer by layer every iteration).\n"
            "The schedule is serve-sim's, driven by measured iteration times. Prints what\n"
            "serve-sim prints, measured, and records the run in the store.\n"
            "\n");
    serve_args_usage(out);
    fprintf(out,
            "engine (as for llmsim run):\n"
            "  --synthetic SEED       weights generated from SEED (the default, seed 1)\n"
            "  --weights PATH         a Hugging Face safetensors file, index or directory\n"
            "  --prompts FILE         prompts: token ids, one request a line in trace order,\n"
            "                         each as long as its request's prompt (default: random\n"
            "                         tokens from --prompt-seed)\n"
            "  --prompt-seed N        seed of random prompts (default 1)\n"
            "  --tokens-out FILE      one line a request in trace order: its id, a colon, then\n"
            "                         its generated token ids\n"
            "  --temperature T        sampling temperature (default 0: greedy)\n"
            "  --top-p P              nucleus sampling (default 1)\n"
            "  --sample-seed N        sampling seed (default 1)\n"
            "  --offload-dir DIR      where disk weights and swap space go (default $TMPDIR or\n"
            "                         /tmp); removed at exit, on error and on ^C\n"
            "  --max-ram SIZE         refuse a run that needs more RAM (default: the free RAM)\n"
            "  --threads N            compute threads (default: every core)\n"
            "  --time-scale X         arrival times multiplied by X (default 1; recorded), to\n"
            "                         replay on a small machine a trace made for a big one\n"
            "  --emulate-gpu          a profile with a GPU: serve on the host emulation of the\n"
            "                         device (the GPU engine's orchestration, CPU kernels)\n"
            "output:\n"
            "  --trace FILE           Chrome trace of the measured run: a track per request,\n"
            "                         KV blocks in use\n"
            "  --requests-out FILE    one CSV row per request with its measured timings\n"
            "  --format table|json    human table (default) or one JSON object\n"
            "  --db PATH              the store (default $LLMSIM_DB or ./llmsim.db)\n"
            "  --help                 this text\n"
            "\n"
            "^C stops admitting: the run is recorded as interrupted and the offload files\n"
            "are removed (exit status 130).\n");
}

typedef struct serve_cli {
    engine_opts eng;
    const char *prompts_file, *tokens_out;
    double time_scale;
    int32_t **prompts;   /* [n] from --prompts; owned */
    size_t nprompts;
} serve_cli;

/* argv without the engine's options (taken into c) into args. */
static int lift_engine_opts(int argc, char **argv, serve_cli *c, char **args, int *nargs)
{
    const char *valued[CLI_ENGINE_OPTS + 4];
    memcpy(valued, cli_engine_opt_names, sizeof cli_engine_opt_names);
    const char *const own[] = {"--prompts", "--tokens-out", "--sample-seed", "--time-scale"};
    memcpy(valued + CLI_ENGINE_OPTS, own, sizeof own);
    *nargs = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && !strcmp(argv[i], "--emulate-gpu")) {
            c->eng.gpu_emulated = true;
            continue;
        }
        const char *v;
        int which = cli_opt_valued("serve", argc, argv, &i, valued,
                                   (int)(sizeof valued / sizeof valued[0]), &v);
        if (which == -2)
            return CLI_EXIT_INPUT;
        if (which < 0) {
            args[(*nargs)++] = argv[i];
            continue;
        }
        bool ok = true;
        long long n;
        char *end;
        switch (which - CLI_ENGINE_OPTS) {
        case 0: c->prompts_file = v; break;
        case 1: c->tokens_out = v; break;
        case 2:
            ok = cli_parse_ll(v, 0, LLONG_MAX, &n);
            c->eng.sample_seed = (uint64_t)n;
            break;
        case 3:
            c->time_scale = strtod(v, &end);
            ok = end != v && !*end && c->time_scale > 0 && c->time_scale <= 1e6;
            break;
        default: ok = cli_engine_opt(&c->eng, which, v); break;
        }
        if (!ok)
            return cli_opt_invalid("serve", argv[i - 1], v);
    }
    args[*nargs] = NULL;
    return CLI_EXIT_OK;
}

static const serve_requests *by_group_q;

static int cmp_by_group(const void *a, const void *b)
{
    const serve_request *x = &by_group_q->r[*(const size_t *)a];
    const serve_request *y = &by_group_q->r[*(const size_t *)b];
    if (x->prefix_group != y->prefix_group)
        return x->prefix_group < y->prefix_group ? -1 : 1;
    return (*(const size_t *)a > *(const size_t *)b) - (*(const size_t *)a < *(const size_t *)b);
}

/* The prompts of requests the trace puts in one prefix group start alike:
 * each as the group's first one, over the shorter of their prefixes. */
static llmsim_status check_groups(const serve_cli *c, const serve_requests *q,
                                  const size_t *lines, diag *e)
{
    size_t *idx = malloc((q->n ? q->n : 1) * sizeof *idx), n = 0;
    if (!idx)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    for (size_t i = 0; i < q->n; i++)
        if (q->r[i].prefix_group)
            idx[n++] = i;
    by_group_q = q;
    qsort(idx, n, sizeof *idx, cmp_by_group);
    llmsim_status st = LLMSIM_OK;
    for (size_t g0 = 0, g1; g0 < n && !st; g0 = g1) {
        /* the group idx[g0 .. g1), against its member of the longest prefix: two members
         * that agree with it over their own prefixes agree with each other */
        size_t ref = g0;
        for (g1 = g0; g1 < n && q->r[idx[g1]].prefix_group == q->r[idx[g0]].prefix_group; g1++)
            if (q->r[idx[g1]].prefix_len > q->r[idx[ref]].prefix_len)
                ref = g1;
        const serve_request *a = &q->r[idx[ref]];
        for (size_t k = g0; k < g1 && !st; k++) {
            const int64_t len = q->r[idx[k]].prefix_len;
            int64_t t = 0;
            while (t < len && c->prompts[idx[ref]][t] == c->prompts[idx[k]][t])
                t++;
            if (t < len)
                st = diag_at(e, LLMSIM_EINPUT, c->prompts_file, lines[idx[k]], 0,
                             "request %zu's prompt differs at token %lld from request %zu's "
                             "(line %zu), but the trace puts both in prefix group %u with %lld "
                             "shared tokens; fix the prompts or the trace's prefix columns",
                             idx[k] + 1, (long long)t + 1, idx[ref] + 1, lines[idx[ref]],
                             a->prefix_group, (long long)len);
        }
    }
    free(idx);
    return st;
}

/* The next line of f, of any length, into *line (of *cap bytes, grown);
 * *more: false at the end of the file. */
static llmsim_status next_line(FILE *f, char **line, size_t *cap, bool *more, diag *e)
{
    size_t len = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF && ch != '\n') {
        if (len + 1 == *cap) {
            char *g = realloc(*line, *cap * 2);
            if (!g)
                return diag_set(e, LLMSIM_EFAIL, "out of memory");
            *line = g;
            *cap *= 2;
        }
        (*line)[len++] = (char)ch;
    }
    (*line)[len] = '\0';
    *more = !(ch == EOF && len == 0);
    return LLMSIM_OK;
}

/* --prompts: one line a request (blank lines and # comments skipped), each
 * as long as its request's prompt, and those of a declared prefix group
 * starting with the same tokens. */
static llmsim_status read_prompts(serve_cli *c, const serve_requests *q, long long vocab, diag *e)
{
    const char *path = c->prompts_file;
    FILE *f = fopen(path, "r");
    if (!f)
        return diag_set(e, LLMSIM_EINPUT, "--prompts %s: cannot open: %s", path, strerror(errno));
    if (!(c->prompts = calloc(q->n ? q->n : 1, sizeof *c->prompts))) {
        fclose(f);
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    }
    size_t cap = 1 << 16, lineno = 0, ntok = 0, tcap = 0;
    char *line = malloc(cap);
    size_t *lines = malloc((q->n ? q->n : 1) * sizeof *lines); /* each prompt's line */
    int32_t *toks = NULL; /* one line's ids */
    llmsim_status st = line && lines ? LLMSIM_OK : diag_set(e, LLMSIM_EFAIL, "out of memory");
    bool more = true;
    while (!st && more && c->nprompts < q->n) {
        if ((st = next_line(f, &line, &cap, &more, e)) || !more)
            break;
        lineno++;
        const serve_request *r = &q->r[c->nprompts];
        long long got = 0;
        ntok = 0;
        if ((st = cli_token_line(path, lineno, line, vocab, &toks, &ntok, &tcap, &got, e)))
            break;
        if (got == 0) /* blank or a comment */
            continue;
        if (got != r->prompt_len) {
            st = diag_at(e, LLMSIM_EINPUT, path, lineno, 0,
                         "%lld tokens, but request %zu has a prompt of %lld tokens (prompts are "
                         "one a line, in trace order)", got, c->nprompts + 1,
                         (long long)r->prompt_len);
            break;
        }
        int32_t *dst = malloc((size_t)got * sizeof *dst);
        if (!dst) {
            st = diag_set(e, LLMSIM_EFAIL, "out of memory");
            break;
        }
        memcpy(dst, toks, (size_t)got * sizeof *dst);
        lines[c->nprompts] = lineno;
        c->prompts[c->nprompts++] = dst;
    }
    free(toks);
    free(line);
    fclose(f);
    if (!st && c->nprompts < q->n)
        st = diag_set(e, LLMSIM_EINPUT, "--prompts %s: %zu prompts for %zu requests", path,
                      c->nprompts, q->n);
    if (!st)
        st = check_groups(c, q, lines, e);
    free(lines);
    return st;
}

static llmsim_status write_tokens(const char *path, const serve_requests *q,
                                  const engine_serve_result *er, diag *e)
{
    atomicfile a;
    llmsim_status st = atomicfile_open(&a, path, "--tokens-out", e);
    if (st)
        return st;
    for (size_t i = 0; i < q->n; i++) {
        fprintf(a.f, "%zu:", i + 1);
        for (int64_t t = 0; t < q->r[i].output_len; t++)
            fprintf(a.f, " %d", er->tokens[i][t]);
        fputc('\n', a.f);
    }
    return atomicfile_commit(&a, "--tokens-out", e);
}

/* The measurement's own keys, beside serve-sim's. */
static void measured_json(cJSON *root, const serve_cli *c, const engine_serve_result *er,
                          double wall_s)
{
    double iter_s = 0, sched_s = 0, weights_s = 0, predicted_s = 0;
    for (long long i = 0; i < er->r.iterations; i++) {
        const serve_iter_row *w = &er->r.iters[i];
        iter_s += w->end_s - w->start_s;
        sched_s += w->sched_s;
        weights_s += w->weights_s;
        predicted_s += w->predicted_s;
    }
    cJSON_AddNumberToObject(root, "time_scale", c->time_scale);
    cJSON *m = cJSON_AddObjectToObject(root, "measured");
    cJSON_AddStringToObject(m, "engine", er->engine ? er->engine : "cpu");
    if (er->device[0]) {
        cJSON_AddStringToObject(m, "device", er->device);
        cJSON_AddNumberToObject(m, "gpu_bytes", er->gpu_bytes);
    }
    cJSON_AddStringToObject(m, "weights", c->eng.weights_path ? c->eng.weights_path : "synthetic");
    /* the GPU backend swaps through pinned memory and has no files */
    cJSON_AddStringToObject(m, "io", er->device[0] ? "pinned" : er->direct_io ? "O_DIRECT" : "buffered");
    cJSON_AddNumberToObject(m, "ram_bytes", er->ram_bytes);
    cJSON_AddNumberToObject(m, "wall_s", wall_s);
    cJSON_AddNumberToObject(m, "iteration_s", iter_s);
    cJSON_AddNumberToObject(m, "predicted_iteration_s", predicted_s);
    cJSON_AddNumberToObject(m, "scheduler_s", sched_s);
    cJSON_AddNumberToObject(m, "scheduler_fraction", iter_s > 0 ? sched_s / iter_s : 0);
    cJSON_AddNumberToObject(m, "weights_wait_s", weights_s);
    cJSON_AddNumberToObject(m, "swap_write_s", er->swap_write_s);
    cJSON_AddNumberToObject(m, "swap_read_s", er->swap_read_s);
}

typedef struct serve_run_ctx {
    cli_job *job;
    serve_opts o;
    serve_cli c;
    serve_setup s;
    serve_requests q;
    engine_serve_result er;
    double wall_s;
    exec_conditions cond; /* what the run ran under (in its JSON, not its metrics) */
    strbuf wtext;        /* the requests' text for the record */
} serve_run_ctx;

/* A run that did not finish: recorded with `status` (interrupted, or failed
 * with the engine's error) and the rows it has. */
static llmsim_status record_unfinished_serve(serve_run_ctx *x, const char *status, diag *e)
{
    record_job rj = cli_record_job(x->job);
    return record_serve_unfinished(&rj, "serve-measure", &x->s, &x->q, &x->er.r, status, e);
}

/* An interrupted run: recorded as such; exit status 130. */
static int record_interrupted(serve_run_ctx *x)
{
    diag e;
    diag_clear(&e);
    llmsim_status rs = record_unfinished_serve(x, "interrupted", &e);
    fprintf(stderr, "llmsim serve: interrupted after %lld iterations; swap and offload files "
            "removed%s\n", x->er.r.iterations,
            rs ? "" : ", the run and its rows so far recorded as interrupted");
    return cli_interrupt_status();
}

/* The engine failed (a full disk, an I/O error): the message, the run
 * recorded as failed (its files are gone); the exit status. */
static int record_failed(serve_run_ctx *x, diag *e)
{
    int status = cli_fail("serve", e);
    diag e2;
    diag_clear(&e2);
    if (e->status != LLMSIM_EINPUT && !record_unfinished_serve(x, "failed", &e2))
        fprintf(stderr, "llmsim serve: the run is recorded as failed; its swap and offload files "
                        "are removed\n");
    return status;
}

static int record_and_print(serve_run_ctx *x)
{
    diag e;
    diag_clear(&e);
    const cli_job *job = x->job;
    record_job rj = cli_record_job(job);
    const serve_result *r = &x->er.r;
    cJSON *obj = result_serve_json(&rj, x->o.trace_in, &x->o.gen, &x->s, &x->q, r, x->wall_s);
    cJSON_DeleteItemFromObject(obj, "sim_wall_s");
    cJSON_DeleteItemFromObject(obj, "events_per_s");
    measured_json(obj, &x->c, &x->er, x->wall_s);
    cJSON_AddItemToObject(obj, "conditions", result_conditions_json(&x->cond));
    char why[512];
    if (cond_judge(&x->cond, why, sizeof why))
        fprintf(stderr, "llmsim serve: warning: measured under contention: %s; its times are not "
                "this machine's alone (the run is recorded with its conditions)\n", why);
    char *json = cJSON_PrintUnformatted(obj);
    int64_t run_id = 0;
    if (!json || record_serve(&rj, "serve-measure", &x->s, &x->q, r, json, x->wall_s, &run_id, &e)) {
        if (!json)
            diag_set(&e, LLMSIM_EFAIL, "out of memory");
        free(json);
        cJSON_Delete(obj);
        return cli_fail("serve", &e);
    }
    free(json);
    const cJSON *mj = cJSON_GetObjectItem(obj, "measured");
    const double sched = cJSON_GetObjectItem(mj, "scheduler_fraction")->valuedouble;
    const double busy = cJSON_GetObjectItem(mj, "iteration_s")->valuedouble;
    if (!cli_print_json_if_asked(job->format, obj)) { /* obj is freed */
        serve_args_table(job, &x->o, &x->s, &x->q, r);
        printf("measured               %lld iterations, %.3f s busy (%.3f s wall with the weights' "
               "set-up) on the CPU engine (%s I/O), scheduler %.2f%% of the busy time\n",
               r->iterations, busy, x->wall_s, x->er.direct_io ? "O_DIRECT" : "buffered",
               100 * sched);
        char cond[512];
        cond_summary(&x->cond, cond, sizeof cond);
        printf("conditions             %s%s\n", cond, x->cond.disturbed == 1 ? " (disturbed)" : "");
        if (x->o.trace_out)
            printf("trace                  %s (open in Perfetto or chrome://tracing)\n",
                   x->o.trace_out);
        if (x->o.requests_out)
            printf("requests               %s\n", x->o.requests_out);
        if (x->c.tokens_out)
            printf("tokens                 %s\n", x->c.tokens_out);
        printf("recorded as run %lld in %s\n", (long long)run_id, job->db_path);
    }
    return CLI_EXIT_OK;
}

/* The setup, the prompts, the run (with ^C caught), its files. */
static int serve(serve_run_ctx *x)
{
    diag e;
    diag_clear(&e);
    const cli_job *job = x->job;
    int status = serve_args_check_outputs(&x->o);
    if (status)
        return status;
    if (x->c.tokens_out && atomicfile_check(x->c.tokens_out, "--tokens-out", &e))
        return cli_fail("serve", &e);
    for (size_t i = 0; i < x->q.n; i++)
        x->q.r[i].arrival_s *= x->c.time_scale;
    if (serve_setup_init(&x->s, &job->model, &job->hw, &job->policy, &x->o.cfg, &e))
        return cli_fail("serve", &e);
    x->s.cfg.keep_spans = x->o.trace_out != NULL;
    if (x->c.prompts_file && read_prompts(&x->c, &x->q, job->model.vocab_size, &e))
        return cli_fail("serve", &e);
    engine_serve_opts so = {.eng = &x->c.eng, .prompts = (const int32_t *const *)x->c.prompts,
                            .wall_clock = true};
    struct sigaction old;
    cli_sigint_catch(&old);
    if (isatty(2))
        fprintf(stderr, "llmsim serve: %s, %zu requests, %lld KV blocks ...\n", job->model.name,
                x->q.n, (long long)x->s.total_blocks);
    cond_begin(&x->cond, x->c.eng.threads);
    double t0 = llmsim_now_s();
    llmsim_status st = engine_serve(&x->s, &x->q, &so, &x->er, &e);
    x->wall_s = llmsim_now_s() - t0;
    cond_end(&x->cond, st != LLMSIM_OK || x->er.interrupted);
    cli_sigint_release(&old);
    if (st)
        return record_failed(x, &e);
    if (x->er.interrupted)
        return record_interrupted(x);
    if (x->o.trace_out) {
        char title[256];
        snprintf(title, sizeof title, "llmsim serve: %s on %s (measured)", job->model.name,
                 job->hw.name);
        if (serve_trace_write(&x->s, &x->er.r, title, x->o.trace_out, &e))
            return cli_fail("serve", &e);
    }
    if ((x->o.requests_out &&
         serve_args_write_requests(x->o.requests_out, &x->q, &x->er.r, &e)) ||
        (x->c.tokens_out && write_tokens(x->c.tokens_out, &x->q, &x->er, &e)))
        return cli_fail("serve", &e);
    return CLI_EXIT_OK;
}

/* A command's options into a new *out (cmd names it in messages): the
 * engine's, serving's, the job's; the requests loaded. Returns an exit
 * status; *out is freed by serve_ctx_free either way. */
static int serve_ctx_parse(const char *cmd, int argc, char **argv, serve_run_ctx **out)
{
    serve_run_ctx *x = *out = calloc(1, sizeof *x);
    char **eargs = malloc(sizeof(char *) * ((size_t)argc + 1));
    char **args = malloc(sizeof(char *) * ((size_t)argc + 3));
    int status = CLI_EXIT_FAIL, nargs = 0;
    if (!x || !eargs || !args || !(x->job = calloc(1, sizeof *x->job))) {
        fprintf(stderr, "llmsim %s: out of memory\n", cmd);
    } else {
        serve_opts_init(&x->o, cmd);
        cli_engine_opts_init(&x->c.eng);
        x->c.time_scale = 1;
        if (!(status = lift_engine_opts(argc, argv, &x->c, eargs, &nargs)) &&
            !(status = serve_args_parse(nargs, eargs, args, &x->o, x->job)) &&
            !(status = serve_args_requests(&x->o, &x->q, &x->wtext))) {
            cli_command_line(argc, argv, x->job->command, sizeof x->job->command);
            x->job->workload_text = strbuf_str(&x->wtext);
        }
    }
    free(eargs);
    free(args);
    return status;
}

static void serve_ctx_free(serve_run_ctx *x)
{
    if (!x)
        return;
    engine_serve_result_free(&x->er);
    serve_requests_free(&x->q);
    serve_dist_free(&x->o.gen.prompt_len);
    serve_dist_free(&x->o.gen.output_len);
    serve_dist_free(&x->o.gen.weight);
    for (size_t i = 0; i < x->c.nprompts; i++)
        free(x->c.prompts[i]);
    free(x->c.prompts);
    strbuf_free(&x->wtext);
    free(x->job);
    free(x);
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

int cmd_serve(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    serve_run_ctx *x = NULL;
    int status = serve_ctx_parse("serve", argc, argv, &x);
    if (!status && !(status = serve(x)))
        status = record_and_print(x);
    serve_ctx_free(x);
    return status;
}

// ---- llmsim validate --serving

static void vs_usage(FILE *out)
{
    fprintf(out,
            "usage: llmsim validate --serving --model M --hardware H [policy]\n"
            "                       (--trace-in FILE | generator) [serving] [engine] [options]\n"
            "\n"
            "Serve the same requests with the same settings twice: simulated (serve-sim, the\n"
            "cost model's clock) and for real (serve, the engine); record both; print the\n"
            "error of each prediction as a signed percent of the measurement: throughput,\n"
            "TTFT p50 and p90, TPOT p50, end-to-end p50 and p90, weighted turnaround, the\n"
            "median and p90 of the per-request end-to-end errors (absolute), and for the\n"
            "preemption events the median error of each one's predicted cost (the price the\n"
            "scheduler decided it by) against its measured cost (a swap: its block copies\n"
            "out and back; a recompute: its share of the iterations that prefill it again).\n"
            "With --prefix-cache each mode is also served and simulated without the cache,\n"
            "for the errors of the predicted prefix hit rate (prefix_hit_rate) and of the\n"
            "predicted mean TTFT gained (ttft_gain); the prediction shares the blocks the\n"
            "engine's prompt tokens share.\n"
            "Give --hardware a profile of this machine (llmsim profile -o FILE).\n"
            "\n"
            "  --preemption all       each of swap, recompute and adaptive in turn\n"
            "  (every other option as for llmsim serve: see llmsim serve --help)\n");
}

static void vs_print(const serve_run_ctx *x, const validate_serving_mode *v, int n)
{
    printf("validate --serving  %s on %s: %zu requests (%s)\n", x->job->model.name,
           x->job->hw.name, x->q.n, x->o.trace_in ? x->o.trace_in : "generated");
    printf("%-22s", "error (%)");
    for (int k = 0; k < n; k++)
        printf(" %11s", preemption_names[v[k].s.cfg.preempt]);
    printf("\n");
    const bool pc = x->o.cfg.prefix_cache;
    for (int i = 0; i < VS_NERRORS; i++) {
        if (!pc && (i == VS_PREFIX_HIT_RATE || i == VS_TTFT_GAIN))
            continue;
        printf("%-22s", validate_serving_error_names[i]);
        for (int k = 0; k < n; k++)
            if (isnan(v[k].err[i]))
                printf(" %11s", "-");
            else
                printf(" %+11.1f", v[k].err[i]);
        printf("\n");
    }
    printf("%-22s", "throughput (tok/s)");
    for (int k = 0; k < n; k++)
        printf(" %5.0f/%-5.0f", v[k].sim.throughput_tok_s, v[k].meas.r.throughput_tok_s);
    printf("   predicted/measured\n%-22s", "preemption events");
    for (int k = 0; k < n; k++)
        printf(" %5zu/%-5zu", v[k].swap_events, v[k].recompute_events);
    printf("   swap/recompute compared\n");
    if (pc) {
        printf("%-22s", "prefix hit rate (%)");
        for (int k = 0; k < n; k++)
            printf(" %5.1f/%-5.1f", 100 * v[k].sim.prefix_hit_rate,
                   100 * v[k].meas.r.prefix_hit_rate);
        printf("   predicted/measured\n%-22s", "TTFT gained (ms)");
        for (int k = 0; k < n; k++)
            printf(" %5.1f/%-5.1f", 1e3 * (v[k].sim_off.ttft.mean - v[k].sim.ttft.mean),
                   1e3 * (v[k].meas_off.ttft.mean - v[k].meas.r.ttft.mean));
        printf("   mean, predicted/measured, against the cache off\n");
    }
    printf("%-22s", "runs");
    for (int k = 0; k < n; k++)
        printf(" %5lld/%-5lld", (long long)v[k].id_sim, (long long)v[k].id_meas);
    printf("   serve-sim/serve in %s\n", x->job->db_path);
    if (pc) {
        printf("%-22s", "runs, cache off");
        for (int k = 0; k < n; k++)
            printf(" %5lld/%-5lld", (long long)v[k].id_sim_off, (long long)v[k].id_meas_off);
        printf("\n");
    }
    printf("errors: (predicted - measured) / measured x 100\n");
}

static cJSON *vs_json(const serve_run_ctx *x, const validate_serving_mode *v, int n)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", x->job->model.name);
    cJSON_AddStringToObject(root, "hardware", x->job->hw.name);
    cJSON_AddNumberToObject(root, "requests", (double)x->q.n);
    cJSON_AddNumberToObject(root, "time_scale", x->c.time_scale);
    cJSON *modes = cJSON_AddArrayToObject(root, "modes");
    for (int k = 0; k < n; k++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "preemption", preemption_names[v[k].s.cfg.preempt]);
        cJSON_AddNumberToObject(m, "simulated_run", (double)v[k].id_sim);
        cJSON_AddNumberToObject(m, "measured_run", (double)v[k].id_meas);
        cJSON_AddNumberToObject(m, "predicted_throughput_tok_s", v[k].sim.throughput_tok_s);
        cJSON_AddNumberToObject(m, "measured_throughput_tok_s", v[k].meas.r.throughput_tok_s);
        cJSON *ev = cJSON_AddObjectToObject(m, "events");
        cJSON_AddNumberToObject(ev, "swap", (double)v[k].swap_events);
        cJSON_AddNumberToObject(ev, "recompute", (double)v[k].recompute_events);
        if (v[k].s.cfg.prefix_cache) {
            cJSON *pc = cJSON_AddObjectToObject(m, "prefix_cache");
            cJSON_AddNumberToObject(pc, "predicted_hit_rate", v[k].sim.prefix_hit_rate);
            cJSON_AddNumberToObject(pc, "measured_hit_rate", v[k].meas.r.prefix_hit_rate);
            cJSON_AddNumberToObject(pc, "predicted_ttft_gain_s",
                                    v[k].sim_off.ttft.mean - v[k].sim.ttft.mean);
            cJSON_AddNumberToObject(pc, "measured_ttft_gain_s",
                                    v[k].meas_off.ttft.mean - v[k].meas.r.ttft.mean);
            cJSON_AddNumberToObject(pc, "simulated_run_off", (double)v[k].id_sim_off);
            cJSON_AddNumberToObject(pc, "measured_run_off", (double)v[k].id_meas_off);
        }
        cJSON_AddItemToObject(m, "errors", validate_serving_errors_json(&v[k]));
        cJSON_AddItemToArray(modes, m);
    }
    if (n == 1)
        cJSON_AddItemToObject(root, "errors", validate_serving_errors_json(&v[0]));
    return root;
}

/* The validation's own run: each mode's errors as metrics. */
static llmsim_status vs_record(const serve_run_ctx *x, const validate_serving_mode *v, int n,
                               const char *json, diag *e)
{
    record_metric *m = calloc((size_t)n * VS_NERRORS, sizeof *m);
    char (*keys)[64] = calloc((size_t)n * VS_NERRORS, sizeof *keys);
    int nm = 0;
    llmsim_status st = m && keys ? LLMSIM_OK : diag_set(e, LLMSIM_EFAIL, "out of memory");
    for (int k = 0; k < n && !st; k++)
        for (int i = 0; i < VS_NERRORS; i++) {
            if (isnan(v[k].err[i]))
                continue;
            snprintf(keys[nm], sizeof keys[nm], "serving_%s_%s",
                     preemption_names[v[k].s.cfg.preempt], validate_serving_error_names[i]);
            m[nm] = (record_metric){keys[nm], v[k].err[i]};
            nm++;
        }
    if (!st) {
        record_job rj = cli_record_job(x->job);
        record_data rec = {.kind = "validate", .metrics = m, .nmetrics = nm, .result_json = json};
        st = record_run(&rj, &rec, NULL, e);
    }
    free(m);
    free(keys);
    return st;
}

/* --serving and --preemption all out of argv (the rest into args). */
static void vs_lift(int argc, char **argv, bool *all, char **args, int *nargs)
{
    *nargs = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--serving"))
            continue;
        if (!strcmp(argv[i], "--preemption=all") ||
            (!strcmp(argv[i], "--preemption") && i + 1 < argc && !strcmp(argv[i + 1], "all"))) {
            *all = true;
            i += argv[i][12] == '=' ? 0 : 1;
            continue;
        }
        args[(*nargs)++] = argv[i];
    }
    args[*nargs] = NULL;
}

static int vs_run(serve_run_ctx *x, bool all)
{
    diag e;
    diag_clear(&e);
    const preemption modes[3] = {PREEMPT_SWAP, PREEMPT_RECOMPUTE, PREEMPT_ADAPTIVE};
    const int n = all ? 3 : 1;
    validate_serving_mode v[3];
    for (size_t i = 0; i < x->q.n; i++)
        x->q.r[i].arrival_s *= x->c.time_scale;
    if (x->c.prompts_file && read_prompts(&x->c, &x->q, x->job->model.vocab_size, &e))
        return cli_fail("validate", &e);
    engine_serve_opts so = {.eng = &x->c.eng, .prompts = (const int32_t *const *)x->c.prompts,
                            .wall_clock = true};
    record_job rj = cli_record_job(x->job);
    struct sigaction old;
    cli_sigint_catch(&old);
    int done = 0, status = CLI_EXIT_OK;
    for (; done < n; done++) {
        serve_config cfg = x->o.cfg;
        if (all)
            cfg.preempt = modes[done];
        if (isatty(2))
            fprintf(stderr, "llmsim validate: %s: serve-sim, then serve ...\n",
                    preemption_names[cfg.preempt]);
        if (validate_serving_mode_run(&rj, &cfg, &x->q, &so, x->o.trace_in, &x->o.gen, &v[done],
                                      &e)) {
            status = cli_interrupted ? cli_interrupt_status() : cli_fail("validate", &e);
            break;
        }
    }
    cli_sigint_release(&old);
    if (!status) {
        cJSON *obj = vs_json(x, v, n);
        char *json = cJSON_PrintUnformatted(obj);
        if (!json || vs_record(x, v, n, json, &e))
            status = cli_fail("validate", json ? &e : &(diag){.status = LLMSIM_EFAIL});
        free(json);
        if (!status && !cli_print_json_if_asked(x->job->format, obj))
            vs_print(x, v, n);
        else if (status)
            cJSON_Delete(obj);
    }
    for (int k = 0; k < done; k++)
        validate_serving_mode_free(&v[k]);
    return status;
}

int cmd_validate_serving(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        vs_usage(stdout);
        return CLI_EXIT_OK;
    }
    char **largs = malloc(sizeof(char *) * ((size_t)argc + 1));
    if (!largs) {
        fprintf(stderr, "llmsim validate: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    int nl = 0;
    bool all = false;
    vs_lift(argc, argv, &all, largs, &nl);
    serve_run_ctx *x = NULL;
    int status = serve_ctx_parse("validate", nl, largs, &x);
    if (!status && (x->c.tokens_out || x->o.trace_out || x->o.requests_out)) {
        fprintf(stderr, "llmsim validate: --tokens-out, --trace and --requests-out are llmsim "
                        "serve's; validate records both runs (llmsim show RUN)\n");
        status = CLI_EXIT_INPUT;
    }
    if (!status) {
        cli_command_line(argc, argv, x->job->command, sizeof x->job->command);
        status = vs_run(x, all);
    }
    serve_ctx_free(x);
    free(largs);
    return status;
}
