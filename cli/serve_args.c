/* serve_args — what `llmsim serve-sim` and `llmsim serve` parse and print
 * alike: the requests (a trace or the generator), the serving settings, and
 * the summary table of a serving run (see serve_args.h). */
#include "cli/serve_args.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/atomicfile.h"
#include "common/units.h"


/* The option names serving takes itself; everything else goes to the job
 * parser. Each takes a value. */
static const char *const own_opts[] = {
    "--trace-in", "--num-requests", "--rate", "--arrival", "--cv", "--prompt-len", "--output-len",
    "--weight", "--seed", "--preemption", "--scheduler", "--fair-alpha", "--block-size",
    "--max-batch", "--token-budget", "--swap-space", "--kv-memory", "--mem-util", "--trace",
    "--requests-out", "--shared-prefix", NULL,
};
/* ... and those that take none */
static const char *const own_flags[] = {"--prefix-cache", NULL};

static int bad(const serve_opts *o, const char *opt, const char *val, const char *what)
{
    fprintf(stderr, "llmsim %s: %s '%s' %s\n", o->cmd, opt, val, what);
    return CLI_EXIT_INPUT;
}

static bool parse_real(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* The index of val among the n names of an option's values into *k, or
 * "must be `what`". */
static int take_enum(const serve_opts *o, const char *opt, const char *val,
                     const char *const *names, int n, const char *what, int *k)
{
    *k = cli_name_index(val, names, n);
    return *k < 0 ? bad(o, opt, val, what) : CLI_EXIT_OK;
}

/* A generator option (its value in val) into o->gen; -1 when opt is not one. */
static int take_gen_opt(serve_opts *o, const char *opt, const char *val)
{
    long long ll;
    double d = 0;
    int k, st = CLI_EXIT_OK;
    if (!strcmp(opt, "--num-requests")) {
        if (!cli_opt_whole(o->cmd, opt, val, 1, 100000000, &ll))
            return CLI_EXIT_INPUT;
        o->gen.num_requests = ll;
    } else if (!strcmp(opt, "--rate")) {
        if (!parse_real(val, &d) || !(d > 0))
            return bad(o, opt, val, "must be a positive number of requests per second");
        o->gen.rate = d;
    } else if (!strcmp(opt, "--arrival")) {
        if ((st = take_enum(o, opt, val, serve_arrival_names, 2, "must be poisson or gamma", &k)))
            return st;
        o->gen.arrival = (serve_arrival)k;
    } else if (!strcmp(opt, "--cv")) {
        if (!parse_real(val, &d) || !(d >= 0.01 && d <= 100))
            return bad(o, opt, val, "must be from 0.01 to 100 (1 is Poisson-like, above 1 bursty)");
        o->gen.cv = d;
        o->given_cv = true;
    } else if (!strcmp(opt, "--prompt-len") || !strcmp(opt, "--output-len") ||
               !strcmp(opt, "--weight")) {
        const char **dst = opt[2] == 'p' ? &o->prompt_spec : opt[2] == 'o' ? &o->output_spec
                                                                           : &o->weight_spec;
        *dst = val;
    } else if (!strcmp(opt, "--shared-prefix")) {
        char *end;
        long long g = strtoll(val, &end, 10), len = 0;
        bool ok = end != val && *end == ':' && g >= 1 && g <= SERVE_PREFIX_GROUP_MAX;
        if (ok) {
            const char *l = end + 1;
            len = strtoll(l, &end, 10);
            ok = end != l && !*end && len >= 1 && len <= 2147483647LL;
        }
        if (!ok)
            return bad(o, opt, val, "must be GROUPS:LEN, e.g. 4:512 (each prompt starts with one "
                                    "of GROUPS shared prefixes of LEN tokens)");
        o->gen.prefix_groups = g;
        o->gen.prefix_len = len;
    } else if (!strcmp(opt, "--seed")) {
        char *end;
        unsigned long long s = strtoull(val, &end, 10);
        if (end == val || *end || val[0] == '-')
            return bad(o, opt, val, "must be a whole number >= 0");
        o->gen.seed = s;
    } else {
        return -1;
    }
    o->gen_given = true;
    return CLI_EXIT_OK;
}

/* --swap-space or --kv-memory: a size (0 needs no unit). */
static int take_size(serve_opts *o, const char *opt, const char *val)
{
    double d = 0;
    char why[160] = "";
    if (!strcmp(val, "0")) /* nothing needs no unit */
        d = 0;
    else if (!units_parse(val, UNITS_BYTES, &d, why, sizeof why)) {
        fprintf(stderr, "llmsim %s: %s '%s': %s (a size such as '4 GiB')\n", o->cmd, opt, val,
                why);
        return CLI_EXIT_INPUT;
    } else if (d < 0) {
        return bad(o, opt, val, "must not be negative");
    }
    if (opt[2] == 's')
        o->cfg.swap_bytes = d;
    else if (d <= 0)
        return bad(o, opt, val, "must be a positive size");
    else
        o->cfg.kv_bytes = d;
    return CLI_EXIT_OK;
}

/* A serving option (its value in val) into o->cfg. */
static int take_serving_opt(serve_opts *o, const char *opt, const char *val)
{
    long long ll;
    double d = 0;
    int k, st = CLI_EXIT_OK;
    if (!strcmp(opt, "--preemption")) {
        st = take_enum(o, opt, val, preemption_names, 3, "must be swap, recompute or adaptive", &k);
        if (st)
            return st;
        o->cfg.preempt = (preemption)k;
        o->given_preempt = true;
    } else if (!strcmp(opt, "--scheduler")) {
        if ((st = take_enum(o, opt, val, scheduler_names, 2, "must be fcfs or fair", &k)))
            return st;
        o->cfg.sched = (scheduler)k;
        o->given_sched = true;
    } else if (!strcmp(opt, "--fair-alpha")) {
        if (!parse_real(val, &d) || !(d >= 0))
            return bad(o, opt, val, "must be a number >= 0");
        o->cfg.fair_alpha = d;
    } else if (!strcmp(opt, "--block-size")) {
        if (!cli_parse_ll(val, 1, 65536, &ll))
            return bad(o, opt, val, "must be a whole number of tokens from 1 to 65536");
        o->cfg.block_size = (int)ll;
        o->given_block = true;
    } else if (!strcmp(opt, "--max-batch")) {
        if (!cli_parse_ll(val, 1, 1 << 20, &ll))
            return bad(o, opt, val, "must be a whole number of sequences from 1 to 1048576");
        o->cfg.max_batch = (int)ll;
    } else if (!strcmp(opt, "--token-budget")) {
        if (!cli_parse_ll(val, 1, 1 << 24, &ll))
            return bad(o, opt, val, "must be a whole number of tokens from 1 to 16777216");
        o->cfg.token_budget = ll;
    } else if (!strcmp(opt, "--swap-space") || !strcmp(opt, "--kv-memory")) {
        return take_size(o, opt, val);
    } else if (!strcmp(opt, "--mem-util")) {
        if (!parse_real(val, &d) || !(d > 0 && d <= 1))
            return bad(o, opt, val, "must be a fraction in (0, 1]");
        o->cfg.mem_util = d;
    }
    return CLI_EXIT_OK;
}

/* One of serving's own options (own_opts) with its value. */
static int take_opt(serve_opts *o, const char *opt, const char *val)
{
    if (!strcmp(opt, "--trace-in"))
        o->trace_in = val;
    else if (!strcmp(opt, "--trace"))
        o->trace_out = val;
    else if (!strcmp(opt, "--requests-out"))
        o->requests_out = val;
    else {
        int st = take_gen_opt(o, opt, val);
        return st >= 0 ? st : take_serving_opt(o, opt, val);
    }
    return CLI_EXIT_OK;
}

/* Split argv into serving's options (taken) and the job's (returned in
 * args). Returns an exit status. */
static int split_args(int argc, char **argv, serve_opts *o, char **args, int *nargs)
{
    static const char *const offline[] = {"--gen-len", "--num-prompts", "--workload",
                                          "--gpu-batch-size", "--num-gpu-batches",
                                          "--cpu-attention", NULL};
    *nargs = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        size_t len = eq && a[0] == '-' ? (size_t)(eq - a) : strlen(a);
        bool own = false, flag = false;
        for (int k = 0; own_opts[k] && !own; k++)
            if (strlen(own_opts[k]) == len && strncmp(a, own_opts[k], len) == 0)
                own = true;
        for (int k = 0; own_flags[k] && !flag && i > 0; k++)
            if (!strcmp(a, own_flags[k]))
                flag = true;
        if (flag) { /* --prefix-cache */
            o->cfg.prefix_cache = true;
            continue;
        }
        for (int k = 0; offline[k] && i > 0; k++)
            if (strlen(offline[k]) == len && strncmp(a, offline[k], len) == 0) {
                fprintf(stderr, "llmsim %s: %.*s is an offline option; serving takes "
                        "--trace-in, or --num-requests, --rate, --prompt-len and --output-len, "
                        "and --max-batch and --token-budget\n", o->cmd, (int)len, a);
                return CLI_EXIT_INPUT;
            }
        if (!own || i == 0) {
            args[(*nargs)++] = argv[i];
            continue;
        }
        const char *val;
        char opt[32];
        snprintf(opt, sizeof opt, "%.*s", (int)len, a);
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "llmsim %s: %s needs a value\n", o->cmd, opt);
                return CLI_EXIT_INPUT;
            }
            val = argv[++i];
        }
        int st = take_opt(o, opt, val);
        if (st)
            return st;
    }
    args[*nargs] = NULL;
    return CLI_EXIT_OK;
}

void serve_args_table(const cli_job *job, const serve_opts *o, const serve_setup *s,
                      const serve_requests *q, const serve_result *r)
{
    char b1[32], b2[32];
    printf("%-11s %s on %s: %zu requests (%s)\n", o->cmd, job->model.name, job->hw.name, q->n,
           o->trace_in ? o->trace_in : "generated");
    printf("serving     %s, %s, %d-token blocks, max batch %d, %lld tokens per iteration\n",
           preemption_names[s->cfg.preempt], scheduler_names[s->cfg.sched], s->cfg.block_size,
           s->cfg.max_batch, (long long)s->cfg.token_budget);
    printf("KV cache    %lld blocks (%s on %s), swap %lld blocks (%s on %s)\n",
           (long long)s->total_blocks, cli_bytes(s->kv_bytes, b1, sizeof b1),
           tier_names[s->dev_tier], (long long)s->swap_blocks,
           cli_bytes(s->cfg.swap_bytes, b2, sizeof b2), tier_names[s->swap_tier]);
    printf("\nthroughput  %.1f tok/s, %.3f requests/s over %.1f s\n", r->throughput_tok_s,
           r->request_rate, r->makespan_s);
    printf("%-22s %10s %10s %10s %10s\n", "latency (s)", "mean", "p50", "p90", "p99");
    const serve_stat *st[3] = {&r->ttft, &r->tpot, &r->e2e};
    const char *names[3] = {"time to first token", "time per output token", "end to end"};
    for (int i = 0; i < 3; i++)
        printf("%-22s %10.4g %10.4g %10.4g %10.4g\n", names[i], st[i]->mean, st[i]->p50,
               st[i]->p90, st[i]->p99);
    printf("weighted turnaround    %.4g s (mean, weighted)\n", r->weighted_turnaround_s);
    printf("preemptions            %lld by swap, %lld by recompute", r->preempt_swap,
           r->preempt_recompute);
    if (r->swap_full)
        printf(" (%lld swaps fell back to recompute: swap space full)", r->swap_full);
    printf("\nswapped                %s out, %s in, %.3g s of transfers\n",
           cli_bytes(r->swap_out_bytes, b1, sizeof b1), cli_bytes(r->swap_in_bytes, b2, sizeof b2),
           r->swap_s);
    printf("recomputed             %.0f tokens\n", r->recomputed_tokens);
    printf("KV blocks in use       mean %.1f%%, peak %.1f%%\n", 100 * r->kv_util_mean,
           100 * r->kv_util_peak);
    if (s->cfg.prefix_cache)
        printf("prefix cache           %.1f%% hit rate (%.0f of the %.0f tokens admissions asked "
               "to prefill), %lld cached blocks reused\n", 100 * r->prefix_hit_rate,
               r->prefix_hit_tokens, r->prefix_query_tokens, r->prefix_evicted);
}

llmsim_status serve_args_write_requests(const char *path, const serve_requests *q, const serve_result *r,
                                    diag *e)
{
    atomicfile a;
    llmsim_status st = atomicfile_open(&a, path, "--requests-out", e);
    if (st)
        return st;
    fprintf(a.f, "id,arrival_s,prompt_len,output_len,weight,first_token_s,finish_s,ttft_s,tpot_s,"
                 "e2e_s,swaps,recomputes,cached_tokens\n");
    for (size_t i = 0; i < q->n; i++) {
        const serve_request *rq = &q->r[i];
        const serve_req_result *rr = &r->req[i];
        double tpot = rq->output_len > 1
                          ? (rr->finish_s - rr->first_token_s) / (double)(rq->output_len - 1)
                          : 0;
        fprintf(a.f, "%zu,%.9g,%lld,%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%d,%d,%lld\n", i + 1,
                rq->arrival_s, (long long)rq->prompt_len, (long long)rq->output_len, rq->weight,
                rr->first_token_s, rr->finish_s, rr->first_token_s - rq->arrival_s, tpot,
                rr->finish_s - rq->arrival_s, rr->swaps, rr->recomputes,
                (long long)rr->cached_tokens);
    }
    return atomicfile_commit(&a, "--requests-out", e);
}

/* The defaults: vLLM's serving setup, and the generator's requests. */
void serve_opts_init(serve_opts *o, const char *cmd)
{
    memset(o, 0, sizeof *o);
    o->cmd = cmd;
    serve_config_init(&o->cfg);
    o->gen.arrival = SERVE_ARRIVAL_POISSON;
    o->gen.rate = 1.0;
    o->gen.cv = 2.0;
    o->gen.num_requests = 1000;
    o->gen.seed = 1;
    o->prompt_spec = "uniform:64,1024";
    o->output_spec = "uniform:16,512";
    o->weight_spec = "1";
}

/* Serving's options into o, the job's into job; the options checked
 * together, and the policy's serving section where no flag says otherwise.
 * args has room for argc + 3. Returns an exit status. */
int serve_args_parse(int argc, char **argv, char **args, serve_opts *o, cli_job *job)
{
    int nargs, status;
    if ((status = split_args(argc, argv, o, args, &nargs)))
        return status;
    /* The job parser wants an offline workload; serving has its requests
     * instead (recorded as job->workload_text), so give it a placeholder. */
    static char wl_p[] = "--prompt-len=1", wl_g[] = "--gen-len=1";
    args[nargs++] = wl_p;
    args[nargs++] = wl_g;
    args[nargs] = NULL;
    bool help;
    if ((status = cli_job_parse(nargs, args, o->cmd, job, &help)))
        return status;
    cli_command_line(argc, argv, job->command, sizeof job->command);
    if (o->trace_in && o->gen_given) {
        fprintf(stderr, "llmsim %s: --trace-in gives the requests; drop the generator "
                        "options (--num-requests, --rate, --arrival, --cv, --prompt-len, "
                        "--output-len, --weight, --shared-prefix, --seed)\n", o->cmd);
        return CLI_EXIT_INPUT;
    }
    if (o->gen.arrival != SERVE_ARRIVAL_GAMMA && o->given_cv) {
        fprintf(stderr, "llmsim %s: --cv applies to --arrival gamma only\n", o->cmd);
        return CLI_EXIT_INPUT;
    }
    if (!o->given_preempt)
        o->cfg.preempt = job->policy.preempt;
    if (!o->given_sched)
        o->cfg.sched = job->policy.sched;
    if (!o->given_block)
        o->cfg.block_size = job->policy.kv_block_size;
    return CLI_EXIT_OK;
}

/* The requests, from --trace-in or the generator, and their text for the
 * record (wtext). */
int serve_args_requests(serve_opts *o, serve_requests *q, strbuf *wtext)
{
    diag e;
    diag_clear(&e);
    if (o->trace_in) {
        if (serve_trace_load(o->trace_in, q, &e))
            return cli_fail(o->cmd, &e);
        serve_trace_save(q, wtext);
        return CLI_EXIT_OK;
    }
    if (serve_dist_parse(o->prompt_spec, "--prompt-len", true, &o->gen.prompt_len, &e) ||
        serve_dist_parse(o->output_spec, "--output-len", true, &o->gen.output_len, &e) ||
        serve_dist_parse(o->weight_spec, "--weight", false, &o->gen.weight, &e) ||
        serve_generate(&o->gen, q, &e))
        return cli_fail(o->cmd, &e);
    strbuf_puts(wtext, "llmsim: serving-generator/1\n");
    serve_gen_describe(&o->gen, wtext);
    return CLI_EXIT_OK;
}


void serve_args_usage(FILE *out)
{
    fprintf(out,
            "  --model M              shipped model name, a model YAML, or a config.json\n"
            "  --hardware H           shipped hardware profile name or a profile YAML\n"
            "policy (weight placement and quantization; its serving section; flags below win):\n"
            "  --policy FILE          a policy YAML (llmsim: policy/1)\n"
            "  --percent WG WC CG CC HG HC, --weight-quant B/G, --kv-quant B/G, --no-overlap,\n"
            "  --no-pin-weights, --compress-weight, --compress-cache   as for predict\n"
            "requests: a trace file ...\n"
            "  --trace-in FILE        CSV with the header arrival_s,prompt_len,output_len,weight\n"
            "                         (and ,prefix_group,prefix_len to declare shared prefixes)\n"
            "... or the generator:\n"
            "  --num-requests N       requests to generate (default 1000)\n"
            "  --rate R               mean arrivals per second (default 1)\n"
            "  --arrival KIND         poisson (default) or gamma\n"
            "  --cv C                 gamma: coefficient of variation of the gaps (default 2;\n"
            "                         above 1 is burstier than Poisson)\n"
            "  --prompt-len DIST      prompt tokens (default uniform:64,1024)\n"
            "  --output-len DIST      output tokens, the first included (default uniform:16,512)\n"
            "  --weight DIST          request weights for the fair scheduler (default 1)\n"
            "                         DIST: N | uniform:A,B | normal:MEAN,SD | hist:BIN=W,...\n"
            "                         with BIN a value or LO-HI (e.g. hist:1-64=0.5,2048=0.1)\n"
            "  --shared-prefix G:L    each prompt starts with one of G shared prefixes of L tokens\n"
            "                         (a system prompt), then its own --prompt-len tokens\n"
            "  --seed S               generator seed (default 1)\n"
            "serving (defaults are vLLM's):\n"
            "  --preemption P         recompute (default), swap or adaptive\n"
            "  --scheduler S          fcfs (default) or fair\n"
            "  --fair-alpha A         fair: seconds of waiting one second of weighted remaining\n"
            "                         work is worth (default 10; 0 is fcfs)\n"
            "  --block-size N         tokens per KV block (default 16, or the policy's)\n"
            "  --max-batch N          sequences per iteration (default 256)\n"
            "  --token-budget N       tokens per iteration, prefill chunks included (default 2048)\n"
            "  --swap-space SIZE      CPU swap space for KV blocks (default 4 GiB; disk without a GPU,\n"
            "                         where serve pads each block to 4 KiB; none under recompute)\n"
            "  --kv-memory SIZE       device memory for KV blocks (default: what --mem-util of\n"
            "                         the device leaves after weights and workspace)\n"
            "  --mem-util F           fraction of device memory the server uses (default 0.9)\n"
            "  --prefix-cache         share the KV blocks of identical prompt prefixes (vLLM's\n"
            "                         automatic prefix caching); reports the hit rate\n");
}

void serve_args_prefix_gain(cJSON *root, const serve_result *on, const serve_result *off)
{
    if (!root)
        return;
    cJSON *pc = cJSON_GetObjectItemCaseSensitive(root, "prefix_cache");
    if (!pc)
        return;
    cJSON *g = cJSON_AddObjectToObject(pc, "ttft_gain_s");
    cJSON_AddNumberToObject(g, "mean", off->ttft.mean - on->ttft.mean);
    cJSON_AddNumberToObject(g, "p50", off->ttft.p50 - on->ttft.p50);
    cJSON_AddNumberToObject(g, "p90", off->ttft.p90 - on->ttft.p90);
    cJSON *w = cJSON_AddObjectToObject(pc, "without");
    cJSON_AddNumberToObject(w, "throughput_tok_s", off->throughput_tok_s);
    cJSON_AddNumberToObject(w, "ttft_mean_s", off->ttft.mean);
    cJSON_AddNumberToObject(w, "ttft_p50_s", off->ttft.p50);
    cJSON_AddNumberToObject(w, "ttft_p90_s", off->ttft.p90);
}

void serve_args_prefix_gain_print(const serve_result *on, const serve_result *off)
{
    printf("TTFT gained            mean %.4g s, p50 %.4g s, p90 %.4g s (without the cache: mean "
           "%.4g s, p50 %.4g s; %.1f tok/s)\n", off->ttft.mean - on->ttft.mean,
           off->ttft.p50 - on->ttft.p50, off->ttft.p90 - on->ttft.p90, off->ttft.mean,
           off->ttft.p50, off->throughput_tok_s);
}

int serve_args_check_outputs(const serve_opts *o)
{
    diag e;
    diag_clear(&e);
    if ((o->trace_out && atomicfile_check(o->trace_out, "--trace", &e)) ||
        (o->requests_out && atomicfile_check(o->requests_out, "--requests-out", &e)))
        return cli_fail(o->cmd, &e);
    return CLI_EXIT_OK;
}
