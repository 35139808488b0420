/*
 * cmd_run — `llmsim run`: execute the plan of a policy on the GPU or CPU engine,
 * time every task, and print and record the same keys as simulate, so that a
 * prediction, a simulation and a measurement line up task by task.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "db/record.h"
#include "db/timeline.h"
#include "common/atomicfile.h"
#include "common/units.h"
#include "exec/conditions.h"
#include "exec/engine.h"
#include "exec/offload.h"
#include "sim/sim.h"

/* Append token v to toks[0..*n), doubling *cap when it is full; false when
 * out of memory (toks is kept). */
static bool push_token(int32_t **toks, size_t *n, size_t *cap, long long v)
{
    if (*n == *cap) {
        int32_t *g = realloc(*toks, 2 * *cap * sizeof *g);
        if (!g)
            return false;
        *toks = g;
        *cap *= 2;
    }
    (*toks)[(*n)++] = (int32_t)v;
    return true;
}

/* Prompts from a text file: one prompt a line, token ids separated by
 * spaces; every line the same length. */
static llmsim_status read_prompts(const char *path, long long vocab, int32_t **out, long long *nprompts,
                                  long long *len, diag *e)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return diag_set(e, LLMSIM_EINPUT, "--prompt-tokens %s: cannot open: %s", path, strerror(errno));
    size_t cap = 1024, n = 0;
    int32_t *toks = malloc(cap * sizeof *toks);
    char line[1 << 16];
    long long lines = 0, width = -1;
    llmsim_status st = toks ? LLMSIM_OK : diag_set(e, LLMSIM_EFAIL, "out of memory");
    size_t lineno = 0;
    while (!st && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            st = diag_at(e, LLMSIM_EINPUT, path, lineno, 0, "line longer than %zu characters",
                         sizeof line - 1);
            break;
        }
        long long count = 0;
        st = cli_token_line(path, lineno, line, vocab, &toks, &n, &cap, &count, e);
        if (st || count == 0)
            continue;
        if (width >= 0 && count != width) {
            st = diag_at(e, LLMSIM_EINPUT, path, lineno, 0,
                         "%lld tokens, but the first prompt has %lld; every prompt must be as long", count,
                         width);
            break;
        }
        width = count;
        lines++;
    }
    fclose(f);
    if (!st && lines == 0)
        st = diag_set(e, LLMSIM_EINPUT, "--prompt-tokens %s: no prompts in the file", path);
    if (st) {
        free(toks);
        return st;
    }
    *out = toks;
    *nprompts = lines;
    *len = width;
    return LLMSIM_OK;
}

static llmsim_status write_tokens(const char *path, const engine_result *r, long long gen, diag *e)
{
    atomicfile a;
    llmsim_status st = atomicfile_open(&a, path, "--tokens-out", e);
    if (st)
        return st;
    for (long long s = 0; s < r->num_prompts; s++) {
        for (long long t = 0; t < gen; t++)
            fprintf(a.f, "%s%d", t ? " " : "", r->tokens[s * gen + t]);
        fputc('\n', a.f);
    }
    return atomicfile_commit(&a, "--tokens-out", e);
}

/* Every token id of a file (whitespace-separated, any number of lines). */
static llmsim_status read_token_file(const char *path, long long vocab, int32_t **out, long long *n,
                                     diag *e)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return diag_set(e, LLMSIM_EINPUT, "--eval-ppl %s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, k = 0, line = 1, col = 1;
    int32_t *t = malloc(cap * sizeof *t);
    llmsim_status st = t ? LLMSIM_OK : diag_set(e, LLMSIM_EFAIL, "out of memory");
    int c;
    long long v = -1;
    size_t vcol = 0;
    while (!st && (c = fgetc(f)) != EOF) {
        if (c >= '0' && c <= '9') {
            if (v < 0) {
                v = 0;
                vcol = col;
            }
            v = v * 10 + (c - '0');
            if (v >= vocab)
                st = diag_at(e, LLMSIM_EINPUT, path, line, vcol, "token ids must be below %lld (the "
                             "vocabulary)", vocab);
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (v >= 0) {
                if (!push_token(&t, &k, &cap, v)) {
                    st = diag_set(e, LLMSIM_EFAIL, "out of memory");
                    break;
                }
                v = -1;
            }
        } else {
            st = diag_at(e, LLMSIM_EINPUT, path, line, col, "'%c' in a token file; token ids are whole "
                         "numbers separated by spaces or new lines", c);
        }
        if (c == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    if (!st && v >= 0 && !push_token(&t, &k, &cap, v))
        st = diag_set(e, LLMSIM_EFAIL, "out of memory");
    fclose(f);
    if (st) {
        free(t);
        return st;
    }
    *out = t;
    *n = (long long)k;
    return LLMSIM_OK;
}

/* The engine options of llmsim run (its own; the rest are the job's). */
static const char usage_engine[] =
    "engine (llmsim run):\n"
    "  --synthetic SEED       weights generated from SEED (the default, seed 1)\n"
    "  --weights PATH         a Hugging Face safetensors file, index or directory\n"
    "  --prompt-tokens FILE   prompts: token ids, one prompt a line (sets the prompt\n"
    "                         length and the number of prompts)\n"
    "  --prompt-seed N        seed of random prompts (default 1)\n"
    "  --tokens-out FILE      write the generated tokens, one line a prompt\n"
    "  --logits-out FILE      write the logits of the first block's steps: float32,\n"
    "                         little-endian, [gen-len][sequences][vocab] (for checking\n"
    "                         the engine against another implementation)\n"
    "  --temperature T        sampling temperature (default 0: greedy)\n"
    "  --top-p P              nucleus sampling (default 1)\n"
    "  --seed N               sampling seed (default 1)\n"
    "  --offload-dir DIR      where disk tensors go (default $TMPDIR or /tmp); removed at\n"
    "                         exit, on error and on ^C\n"
    "  --max-ram SIZE         refuse a plan that needs more RAM (default: the free RAM)\n"
    "  --threads N            compute threads (default: every core)\n"
    "  --emulate-gpu          run a plan for a GPU on the host emulation of the device\n"
    "                         (the GPU engine's code, host memory and CPU kernels; for\n"
    "                         checking a GPU plan where no GPU is, not for its timings)\n"
    "  --eval-ppl FILE        perplexity over the token ids of FILE with a sliding window\n"
    "                         of --prompt-len tokens moving by half a window (each token\n"
    "                         after the first window is scored once, with at least half a\n"
    "                         window of context); the prompts are the windows\n\n"
    "Every run records what it ran under (a line of the table, \"conditions\" in the\n"
    "JSON, metrics of the run): the load average and runnable tasks before and after,\n"
    "this process's CPU time per wall second and involuntary context switches, the CPU\n"
    "time other processes took over the run (/proc/stat less our own, the hypervisor's\n"
    "steal included), the CPU clock where readable, and a CPU and memory probe (0.05 s\n"
    "on one thread and on the run's threads) before and after. It warns when the run\n"
    "was disturbed: others took over 10% of the machine's CPU time (wall x cores), or\n"
    "the probe moved by over 10% on one thread or 20% on every thread.\n";

/* The options of a run: the engine's, the files, and the buffers the engine's
 * prompts point into (owned; freed by run_opts_free). */
typedef struct run_opts {
    engine_opts eng;
    const char *prompt_file, *tokens_out, *ppl_file, *logits_file;
    int32_t *prompts, *ppl_tokens;
    float *logits; /* --logits-out: [gen][bls][vocab], the engine's logits_out */
    long long *score_from;
} run_opts;

static void run_opts_free(run_opts *o)
{
    free(o->ppl_tokens);
    free(o->score_from);
    free(o->prompts);
    free(o->logits);
}

/* The value v of option `which` (an index into lift_engine_opts's names:
 * the shared engine options first) into o; false when it is not valid. */
static bool take_engine_opt(run_opts *o, int which, const char *v)
{
    long long n;
    if (which < CLI_ENGINE_OPTS)
        return cli_engine_opt(&o->eng, which, v);
    switch (which - CLI_ENGINE_OPTS) {
    case 0: o->prompt_file = v; return true;
    case 1: o->tokens_out = v; return true;
    case 2:
        if (!cli_parse_ll(v, 0, LLONG_MAX, &n))
            return false;
        o->eng.sample_seed = (uint64_t)n;
        return true;
    case 3: o->ppl_file = v; return true;
    case 4: o->logits_file = v; return true;
    }
    return false;
}

/* argv without the engine's options (taken into o) into args, with the
 * workload the prompt and perplexity files stand for; NULL ended. Returns an
 * exit status. */
static int lift_engine_opts(int argc, char **argv, run_opts *o, char **args, int *nargs)
{
    const char *valued[CLI_ENGINE_OPTS + 5];
    memcpy(valued, cli_engine_opt_names, sizeof cli_engine_opt_names);
    const char *const own[] = {"--prompt-tokens", "--tokens-out", "--seed", "--eval-ppl",
                               "--logits-out"};
    memcpy(valued + CLI_ENGINE_OPTS, own, sizeof own);
    *nargs = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--emulate-gpu") == 0) {
            o->eng.gpu_emulated = true;
            continue;
        }
        const char *v;
        int which = cli_opt_valued("run", argc, argv, &i, valued,
                                   (int)(sizeof valued / sizeof valued[0]), &v);
        if (which == -2)
            return CLI_EXIT_INPUT;
        if (which < 0)
            args[(*nargs)++] = argv[i];
        else if (!take_engine_opt(o, which, v))
            return cli_opt_invalid("run", argv[i - 1], v);
    }
    if (o->prompt_file) {
        /* the vocabulary is the model's: load it first through the job parser */
        args[(*nargs)++] = "--prompt-len";
        args[(*nargs)++] = "1";
    }
    if (o->ppl_file) { /* the prefill of each window and one step: gen-len 1 */
        args[(*nargs)++] = "--gen-len";
        args[(*nargs)++] = "1";
    }
    args[*nargs] = NULL;
    return CLI_EXIT_OK;
}

/* --prompt-tokens: the prompts, and the workload's prompt length and count. */
static int load_prompt_file(cli_job *job, run_opts *o)
{
    diag e;
    diag_clear(&e);
    long long pn = 0, plen = 0;
    if (read_prompts(o->prompt_file, job->model.vocab_size, &o->prompts, &pn, &plen, &e))
        return cli_fail("run", &e);
    job->workload.prompt_len = plen;
    job->workload.num_prompts = pn;
    o->eng.prompts = o->prompts;
    if (workload_validate(&job->workload, o->prompt_file, &e))
        return cli_fail("run", &e);
    return CLI_EXIT_OK;
}

/* --eval-ppl: the token file cut into windows of --prompt-len tokens moving by
 * half a window, the prompts of the run, and where each window's scoring
 * starts. */
static int load_ppl_windows(cli_job *job, run_opts *o)
{
    diag e;
    diag_clear(&e);
    long long ntok = 0, W = job->workload.prompt_len, S = W / 2 > 0 ? W / 2 : 1;
    if (o->prompt_file) {
        fprintf(stderr, "llmsim run: give --eval-ppl or --prompt-tokens, not both\n");
        return CLI_EXIT_INPUT;
    }
    if (read_token_file(o->ppl_file, job->model.vocab_size, &o->ppl_tokens, &ntok, &e))
        return cli_fail("run", &e);
    if (ntok < W || W < 2) {
        fprintf(stderr, "llmsim run: --eval-ppl %s has %lld tokens; a window of --prompt-len %lld "
                "needs at least that many (and at least 2)\n", o->ppl_file, ntok, W);
        return CLI_EXIT_INPUT;
    }
    long long nw = (ntok - W) / S + 1;
    o->prompts = malloc(sizeof(int32_t) * (size_t)(nw * W));
    o->score_from = malloc(sizeof(long long) * (size_t)nw);
    if (!o->prompts || !o->score_from) {
        fprintf(stderr, "llmsim run: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    for (long long w = 0; w < nw; w++) {
        memcpy(o->prompts + w * W, o->ppl_tokens + w * S, sizeof(int32_t) * (size_t)W);
        o->score_from[w] = w == 0 ? 1 : W - S;
    }
    o->eng.prompts = o->prompts;
    o->eng.score_from = o->score_from;
    o->eng.num_windows = nw;
    job->workload.num_prompts = nw;
    return CLI_EXIT_OK;
}

/* Run the plan on the engine, with ^C caught; what it is doing on a tty. */
static llmsim_status execute(const cli_job *job, const run_opts *o, const plan *pl,
                             engine_result *er, diag *e)
{
    struct sigaction old;
    cli_sigint_catch(&old);
    bool tty = isatty(2);
    if (tty)
        fprintf(stderr, "llmsim run: %s, %zu tasks, %lld prompts x %lld tokens ...\n", job->model.name,
                pl->ntasks, job->workload.num_prompts ? job->workload.num_prompts
                                                      : (long long)job->policy.gpu_batch_size *
                                                            job->policy.num_gpu_batches,
                job->workload.gen_len);
    exec_conditions cond; /* what the run ran under, from just before to just after */
    cond_begin(&cond, o->eng.threads);
    llmsim_status st = engine_run(&job->model, &job->hw, &job->policy, &job->workload, pl, &o->eng,
                                  er, e);
    cond_end(&cond, st != LLMSIM_OK || er->interrupted);
    er->cond = cond;
    cli_sigint_release(&old);
    return st;
}

/* A run that did not finish: recorded with `status` (interrupted, or failed
 * in the environment: a full disk, an I/O error), what there is of it. */
static llmsim_status record_unfinished_run(const cli_job *job, const char *status, diag *e)
{
    record_job rj = cli_record_job(job);
    return record_unfinished(&rj, "measure", status, NULL, e);
}

/* An interrupted run: recorded as such; exit status 130 (143 for SIGTERM). */
static int record_interrupted(const cli_job *job)
{
    diag e;
    diag_clear(&e);
    llmsim_status rs = record_unfinished_run(job, "interrupted", &e);
    fprintf(stderr, "llmsim run: interrupted; offload files removed%s\n",
            rs ? "" : ", the run is recorded as interrupted");
    return cli_interrupt_status();
}

/* The engine failed in the environment (a full disk, an I/O error): the
 * message, and the run recorded as failed (its files are gone). */
static int record_failed(const cli_job *job, const diag *e)
{
    int status = cli_fail("run", e);
    diag e2;
    diag_clear(&e2);
    if (!record_unfinished_run(job, "failed", &e2))
        fprintf(stderr, "llmsim run: the run is recorded as failed; offload files removed\n");
    return status;
}

/* The timeline's table, then the engine, the files written and the
 * perplexity. */
static void print_table(const cli_job *job, const run_opts *o, const plan *pl,
                        const engine_result *er, const sim_result *r, const sim_totals *t,
                        int64_t run_id)
{
    cli_simulation_table(job, pl, r, t);
    if (pl->has_gpu) {
        char a[32], b[32];
        units_format(UNITS_BYTES, er->gpu_bytes, a, sizeof a);
        units_format(UNITS_BYTES, sim_plan_peak(pl, TIER_GPU), b, sizeof b);
        printf("measured    on the GPU engine, %s (%s I/O), %s weights\n", er->device,
               er->direct_io ? "O_DIRECT" : "buffered",
               o->eng.weights_path ? o->eng.weights_path : "synthetic");
        printf("GPU memory  %s at peak (the plan predicts %s)\n", a, b);
    } else {
        printf("measured    on the CPU engine (%s I/O), %s weights\n",
               er->direct_io ? "O_DIRECT" : "buffered",
               o->eng.weights_path ? o->eng.weights_path : "synthetic");
    }
    char cond[512];
    cond_summary(&er->cond, cond, sizeof cond);
    printf("conditions  %s%s\n", cond, er->cond.disturbed == 1 ? " (disturbed)" : "");
    if (o->tokens_out)
        printf("tokens      %s\n", o->tokens_out);
    if (o->logits_file)
        printf("logits      %s\n", o->logits_file);
    if (o->ppl_file)
        printf("perplexity  %.6g over %lld tokens of %s\n",
               er->nll_count ? exp(er->nll_sum / (double)er->nll_count) : NAN, er->nll_count,
               o->ppl_file);
    printf("recorded as run %lld in %s\n", (long long)run_id, job->db_path);
}
/* The sequences of a block, whose logits --logits-out writes. */
static long long block_seqs(const cli_job *job)
{
    return (long long)job->policy.gpu_batch_size * job->policy.num_gpu_batches;
}

/* --logits-out: the buffer the engine fills, after checking the file can be
 * written (before the run, so that nothing is run for nothing). */
static int logits_prepare(const cli_job *job, run_opts *o)
{
    diag e;
    diag_clear(&e);
    const double n = (double)job->workload.gen_len * (double)block_seqs(job) *
                     (double)job->model.vocab_size;
    if (n * sizeof(float) > 4.0 * (1ull << 30)) {
        diag_set(&e, LLMSIM_EINPUT, "--logits-out %s: %.3g GiB of logits (gen-len x sequences x "
                 "vocabulary); at most 4 GiB: shorten --gen-len or the batch", o->logits_file,
                 n * sizeof(float) / (1ull << 30));
        return cli_fail("run", &e);
    }
    if (atomicfile_check(o->logits_file, "--logits-out", &e))
        return cli_fail("run", &e);
    if (!(o->logits = calloc((size_t)n, sizeof(float)))) {
        diag_set(&e, LLMSIM_EFAIL, "--logits-out: out of memory for %.0f logits", n);
        return cli_fail("run", &e);
    }
    o->eng.logits_out = o->logits;
    return CLI_EXIT_OK;
}

/* The logits as float32, little-endian (the host's order on every machine
 * llmsim builds for: checked), [gen][bls][vocab]. */
static llmsim_status write_logits(const cli_job *job, const run_opts *o, diag *e)
{
    const uint32_t one = 1;
    if (*(const uint8_t *)&one != 1)
        return diag_set(e, LLMSIM_EFAIL, "--logits-out: this host is big-endian; the file is "
                        "little-endian float32");
    const size_t n = (size_t)job->workload.gen_len * (size_t)block_seqs(job) *
                     (size_t)job->model.vocab_size;
    atomicfile a;
    llmsim_status st = atomicfile_open(&a, o->logits_file, "--logits-out", e);
    if (st)
        return st;
    if (fwrite(o->logits, sizeof(float), n, a.f) != n) {
        atomicfile_abort(&a);
        return diag_set(e, LLMSIM_EFAIL, "--logits-out %s: cannot write: %s", o->logits_file,
                        strerror(errno));
    }
    return atomicfile_commit(&a, "--logits-out", e);
}

/* Record the measured timeline, write the tokens; print. */
static int record_and_print(const cli_job *job, const run_opts *o, const plan *pl,
                            engine_result *er)
{
    diag e;
    diag_clear(&e);
    sim_result r;
    memset(&r, 0, sizeof r);
    sim_totals t;
    cJSON *obj = NULL;
    int64_t run_id = 0;
    record_job rj = cli_record_job(job);
    int status = CLI_EXIT_OK;
    char why[512];
    if (cond_judge(&er->cond, why, sizeof why))
        fprintf(stderr, "llmsim run: warning: measured under contention: %s; its times are not "
                "this machine's alone (the run is recorded with its conditions)\n", why);
    if (record_measurement(&rj, pl, er, &o->eng, &r, &t, &obj, &run_id, &e)) {
        status = cli_fail("run", &e);
    } else if ((o->tokens_out && write_tokens(o->tokens_out, er, job->workload.gen_len, &e)) ||
               (o->logits_file && write_logits(job, o, &e))) {
        cJSON_Delete(obj);
        status = cli_fail("run", &e);
    } else if (!cli_print_json_if_asked(job->format, obj)) {
        print_table(job, o, pl, er, &r, &t, run_id);
    }
    sim_result_free(&r);
    return status;
}

/* Build the job's plan, run it on the engine; record and print. */
static int run(cli_job *job, const run_opts *o)
{
    diag e;
    diag_clear(&e);
    plan pl;
    if (plan_build(&job->model, &job->hw, &job->policy, &job->workload, &pl, &e))
        return cli_fail("run", &e);
    engine_result er;
    int status;
    llmsim_status st = execute(job, o, &pl, &er, &e);
    if (st == LLMSIM_EFAIL)
        status = record_failed(job, &e);
    else if (st)
        status = cli_fail("run", &e);
    else if (er.interrupted)
        status = record_interrupted(job);
    else
        status = record_and_print(job, o, &pl, &er);
    engine_result_free(&er);
    plan_free(&pl);
    return status;
}

int cmd_run(int argc, char **argv)
{
    run_opts o = {0};
    cli_engine_opts_init(&o.eng);
    char **args = cli_args_new("run", argc, 4);
    if (!args)
        return CLI_EXIT_FAIL;
    int nargs;
    cli_job *job = NULL;
    int status = lift_engine_opts(argc, argv, &o, args, &nargs);
    if (!status)
        status = cli_job_new(nargs, args, "run",
                             "Run the policy's plan for real: on the GPU engine (CUDA) for a profile with\n"
                             "a GPU, on the CPU engine for one without. Weights, KV cache and hidden\n"
                             "states on the GPU, in (pinned) RAM or on disk (O_DIRECT), I/O overlapped\n"
                             "with compute as the plan orders it (CUDA streams and events on the GPU);\n"
                             "every task is timed under its plan id (CUDA events, or the clock) and\n"
                             "recorded, with the same keys as simulate.",
                             usage_engine, &job);
    free(args);
    if (job) /* the whole line, with the engine's options lifted above */
        cli_command_line(argc, argv, job->command, sizeof job->command);
    if (job && o.prompt_file)
        status = load_prompt_file(job, &o);
    if (job && !status && o.ppl_file)
        status = load_ppl_windows(job, &o);
    if (job && !status && o.logits_file)
        status = logits_prepare(job, &o);
    if (job && !status)
        status = run(job, &o);
    run_opts_free(&o);
    free(job);
    return status;
}
