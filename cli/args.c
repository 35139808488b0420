/*
 * args — parsing of the job options shared by predict, simulate and run.
 * FlexGen's `--percent a b c d e f` takes six values, so it is lifted out of
 * argv before getopt_long sees the rest.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#include <unistd.h>

#include "common/grow.h"
#include "common/units.h"
#include "exec/offload.h"

/* Append c to out[0..len) at *used, keeping the NUL; false when full. */
static bool cmd_put(char *out, size_t len, size_t *used, char c)
{
    if (*used + 1 >= len)
        return false;
    out[(*used)++] = c;
    out[*used] = '\0';
    return true;
}

/* True when a shell reads a as one word as it is. */
static bool shell_plain(const char *a)
{
    if (!*a)
        return false;
    for (; *a; a++)
        if (!(isalnum((unsigned char)*a) || strchr("@%+=:,./_-", *a)))
            return false;
    return true;
}

void cli_command_line(int argc, char **argv, char *out, size_t len)
{
    size_t used = 0;
    bool ok = len > 0;
    if (ok)
        out[0] = '\0';
    for (const char *p = "llmsim"; ok && *p; p++)
        ok = cmd_put(out, len, &used, *p);
    for (int i = 0; i < argc && ok; i++) {
        const char *a = argv[i];
        ok = cmd_put(out, len, &used, ' ');
        if (shell_plain(a)) {
            for (; ok && *a; a++)
                ok = cmd_put(out, len, &used, *a);
            continue;
        }
        /* single quotes, each ' as '\'' : the line pastes back into a shell */
        ok = ok && cmd_put(out, len, &used, '\'');
        for (; ok && *a; a++) {
            if (*a == '\'')
                for (const char *q = "'\\''"; ok && *q; q++)
                    ok = cmd_put(out, len, &used, *q);
            else
                ok = cmd_put(out, len, &used, *a);
        }
        ok = ok && cmd_put(out, len, &used, '\'');
    }
    if (!ok && len > 4) /* cut: say so rather than record a different command */
        memcpy(out + len - 4, "...", 4);
}

const char *const cli_engine_opt_names[CLI_ENGINE_OPTS] = {
    "--synthetic", "--weights", "--prompt-seed", "--temperature", "--top-p", "--offload-dir",
    "--max-ram", "--threads",
};

static bool parse_real_in(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool cli_engine_opt(engine_opts *eng, int which, const char *v)
{
    long long n = 0;
    double d = 0;
    char why[128];
    switch (which) {
    case 0: if (!cli_parse_ll(v, 0, LLONG_MAX, &n)) return false; eng->synthetic_seed = (uint64_t)n; return true;
    case 1: eng->weights_path = v; return true;
    case 2: if (!cli_parse_ll(v, 0, LLONG_MAX, &n)) return false; eng->prompt_seed = (uint64_t)n; return true;
    case 3: return parse_real_in(v, 0, 100, &eng->temperature);
    case 4: return parse_real_in(v, 1e-6, 1, &eng->top_p);
    case 5: eng->offload_parent = v; return true;
    case 6:
        if (!units_parse(v, UNITS_BYTES, &d, why, sizeof why) || !(d > 0))
            return false;
        eng->max_ram_bytes = d;
        return true;
    case 7: if (!cli_parse_ll(v, 1, 4096, &n)) return false; eng->threads = (int)n; return true;
    }
    return false;
}

llmsim_status cli_token_line(const char *path, size_t lineno, const char *line, long long vocab,
                             int32_t **toks, size_t *n, size_t *cap, long long *count, diag *e)
{
    *count = 0;
    for (const char *p = line;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (!*p || *p == '#')
            return LLMSIM_OK;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno == ERANGE || v < 0 || v >= vocab)
            return diag_at(e, LLMSIM_EINPUT, path, lineno, (size_t)(p - line) + 1,
                           "token ids must be whole numbers from 0 to %lld (the vocabulary)",
                           vocab - 1);
        int32_t *g = llmsim_grow(*toks, *n, cap, sizeof *g, 1024);
        if (!g)
            return diag_set(e, LLMSIM_EFAIL, "out of memory");
        *toks = g;
        g[(*n)++] = (int32_t)v;
        ++*count;
        p = end;
    }
}

volatile sig_atomic_t cli_interrupted;
static struct sigaction cli_old_term; /* SIGTERM's handler before cli_sigint_catch */

static void cli_on_sigint(int sig)
{
    if (cli_interrupted) { /* a second signal: clean up now and go */
        offload_remove_all_from_signal();
        _exit(128 + sig);
    }
    cli_interrupted = sig;
}

void cli_sigint_catch(struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, old);
    sigaction(SIGTERM, &sa, &cli_old_term);
}

void cli_sigint_release(const struct sigaction *old)
{
    sigaction(SIGINT, old, NULL);
    sigaction(SIGTERM, &cli_old_term, NULL);
}

int cli_interrupt_status(void) { return 128 + (cli_interrupted ? (int)cli_interrupted : SIGINT); }

const char *cli_db_path(const char *opt)
{
    if (opt && opt[0])
        return opt;
    const char *env = getenv("LLMSIM_DB");
    return env && env[0] ? env : "llmsim.db";
}

record_job cli_record_job(const cli_job *job)
{
    return (record_job){&job->model, &job->hw, &job->policy, &job->workload, job->workload_text,
                        job->command, job->db_path};
}

int cli_exit_status(llmsim_status st)
{
    return st == LLMSIM_OK ? CLI_EXIT_OK : st == LLMSIM_EINPUT ? CLI_EXIT_INPUT : CLI_EXIT_FAIL;
}

int cli_fail(const char *cmd, const diag *e)
{
    fprintf(stderr, "llmsim %s: %s\n", cmd, e->msg[0] ? e->msg : "failed");
    return cli_exit_status(e->status ? e->status : LLMSIM_EFAIL);
}

int cli_not_recorded(const char *cmd, const diag *e)
{
    fprintf(stderr, "llmsim %s: warning: the result above was not recorded in the store: %s\n",
            cmd, e->msg[0] ? e->msg : "failed");
    return cli_exit_status(e->status ? e->status : LLMSIM_EFAIL);
}

void cli_job_usage(FILE *out, const char *cmd, const char *summary)
{
    fprintf(out,
            "usage: llmsim %s --model M --hardware H [policy] [workload] [options]\n"
            "\n%s\n\n"
            "  --model M              shipped model name (llmsim models), a model YAML, or a\n"
            "                         Hugging Face config.json (OPT, Llama 2/3, Mistral, Qwen2,\n"
            "                         Qwen3, Gemma, Phi-3)\n"
            "  --hardware H           shipped hardware profile name or a profile YAML\n"
            "policy (a file, or the flags; flags override the file; with neither, everything\n"
            "on the GPU, or in RAM on a profile without a GPU):\n"
            "  --policy FILE          a policy YAML (llmsim: policy/1)\n"
            "  --percent WG WC CG CC HG HC\n"
            "                         FlexGen's shorthand: weights, cache, activations on\n"
            "                         GPU and CPU in percent; the rest of each on disk\n"
            "  --gpu-batch-size B     sequences per GPU batch\n"
            "  --num-gpu-batches K    GPU batches per block (zig-zag schedule)\n"
            "  --compress-weight      4-bit group-wise weights, group 64 (FlexGen's setting)\n"
            "  --compress-cache       4-bit group-wise KV cache, group 64\n"
            "  --weight-quant B/G     weights with B bits (4 or 8), group size G\n"
            "  --kv-quant B/G         KV cache with B bits, group size G\n"
            "  --cpu-attention        compute attention over a CPU-resident cache on the CPU\n"
            "  --no-overlap           do not overlap I/O with compute\n"
            "  --no-pin-weights       CPU-resident weights in pageable memory\n"
            "workload (a file, or the flags):\n"
            "  --workload FILE        a workload YAML (llmsim: workload/1)\n"
            "  --prompt-len S         prompt tokens per sequence\n"
            "  --gen-len N            generated tokens per sequence\n"
            "  --num-prompts P        prompts in all (default: one block)\n"
            "output:\n"
            "  --format table|json    human table (default) or one JSON object\n"
            "  --db PATH              the store (default $LLMSIM_DB or ./llmsim.db)\n"
            "  --help                 this text\n",
            cmd, summary);
}


static bool parse_quant(const char *s, quant *q)
{
    long long b, g;
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s", s);
    char *slash = strchr(tmp, '/');
    if (!slash)
        return false;
    *slash = '\0';
    if (!cli_parse_ll(tmp, 4, 8, &b) || (b != 4 && b != 8) || !cli_parse_ll(slash + 1, 2, 65536, &g) || g % 2)
        return false;
    q->bits = (int)b;
    q->group_size = (int)g;
    return true;
}

int cli_load_inputs(const char *cmd, cli_job *job)
{
    diag e;
    diag_clear(&e);
    if (!job->model_spec || !job->hw_spec) {
        fprintf(stderr, "llmsim %s: --model and --hardware are required (see llmsim %s --help)\n",
                cmd, cmd);
        return CLI_EXIT_INPUT;
    }
    if (model_load(job->model_spec, &job->model, &e) || hwprofile_load(job->hw_spec, &job->hw, &e))
        return cli_fail(cmd, &e);
    return CLI_EXIT_OK;
}

int cli_flagged_check(const char *cmd, const char *spec, const hwprofile *hw, unsigned uses,
                      bool refuse)
{
    strbuf lines = {0};
    int n = hwprofile_flagged(hw, uses, &lines);
    if (n) {
        fprintf(stderr, "llmsim %s: %s: %d figure%s of the profile used here spread over %.0f%% between "
                "the profiler's runs (FLAGGED: the machine was busy or drifting while it was measured):\n",
                cmd, refuse ? "error" : "warning", n, n > 1 ? "s" : "", 100 * HW_SPREAD_LIMIT);
        const char *s = strbuf_str(&lines);
        while (*s) {
            const char *nl = strchr(s, '\n');
            fprintf(stderr, "  %s: %.*s\n", spec, (int)(nl - s), s);
            s = nl + 1;
        }
        fprintf(stderr, "  measure the profile again on a quiet machine (llmsim profile -o FILE)%s\n",
                refuse ? ", or give --allow-noisy to use it as it is" : "");
    }
    strbuf_free(&lines);
    return n && refuse ? CLI_EXIT_INPUT : CLI_EXIT_OK;
}

int cli_load_workload(const char *cmd, cli_job *job, const char *file, long long prompt,
                      long long gen, long long nprompts)
{
    diag e;
    diag_clear(&e);
    if (file) {
        if (workload_load_yaml(file, &job->workload, &e))
            return cli_fail(cmd, &e);
    } else if (prompt < 0 || gen < 0) {
        fprintf(stderr, "llmsim %s: give --prompt-len and --gen-len, or --workload FILE\n", cmd);
        return CLI_EXIT_INPUT;
    }
    if (prompt > 0)
        job->workload.prompt_len = prompt;
    if (gen > 0)
        job->workload.gen_len = gen;
    if (nprompts > 0)
        job->workload.num_prompts = nprompts;
    if (workload_validate(&job->workload, "the workload", &e))
        return cli_fail(cmd, &e);
    return CLI_EXIT_OK;
}

bool cli_parse_ll(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE || v < min || v > max)
        return false;
    *out = v;
    return true;
}

// ---- options

bool cli_opt_whole(const char *cmd, const char *opt, const char *val, long long min, long long max,
                   long long *out)
{
    if (cli_parse_ll(val, min, max, out))
        return true;
    fprintf(stderr, "llmsim %s: %s '%s' must be a whole number from %lld to %lld\n", cmd, opt, val,
            min, max);
    return false;
}

bool cli_opt_count(const char *cmd, const char *opt, const char *val, long long *out)
{
    if (cli_parse_ll(val, 1, 1LL << 40, out))
        return true;
    fprintf(stderr, "llmsim %s: %s '%s' must be a positive whole number\n", cmd, opt, val);
    return false;
}

bool cli_format_parse(const char *s, cli_format *f)
{
    if (strcmp(s, "table") == 0)
        *f = CLI_FORMAT_TABLE;
    else if (strcmp(s, "json") == 0)
        *f = CLI_FORMAT_JSON;
    else
        return false;
    return true;
}

bool cli_opt_format(const char *cmd, const char *val, cli_format *f)
{
    if (cli_format_parse(val, f))
        return true;
    fprintf(stderr, "llmsim %s: --format must be table or json, not '%s'\n", cmd, val);
    return false;
}

bool cli_input_opt(const char *cmd, const char *name, const char *val, cli_job *job,
                   cli_input_opts *in)
{
    if (strcmp(name, "model") == 0)
        job->model_spec = val;
    else if (strcmp(name, "hardware") == 0)
        job->hw_spec = val;
    else if (strcmp(name, "workload") == 0)
        in->workload_file = val;
    else if (strcmp(name, "db") == 0)
        in->db = val;
    else if (strcmp(name, "format") == 0)
        return cli_opt_format(cmd, val, &job->format);
    else {
        char opt[32];
        snprintf(opt, sizeof opt, "--%s", name);
        long long *dst = strcmp(name, "prompt-len") == 0 ? &in->prompt_len
                         : strcmp(name, "gen-len") == 0  ? &in->gen_len
                                                         : &in->num_prompts;
        return cli_opt_count(cmd, opt, val, dst);
    }
    return true;
}

char **cli_args_new(const char *cmd, int argc, int extra)
{
    char **args = malloc(sizeof(char *) * ((size_t)argc + (size_t)extra + 1));
    if (!args)
        fprintf(stderr, "llmsim %s: out of memory\n", cmd);
    return args;
}

void cli_getopt_reset(void)
{
    optind = 1;
    opterr = 0;
}

int cli_opt_rejected(const char *cmd, int c, char **argv)
{
    const char *opt = argv[optind - 1];
    if (c == ':')
        fprintf(stderr, "llmsim %s: %s needs a value (see llmsim %s --help)\n", cmd, opt, cmd);
    else
        fprintf(stderr, "llmsim %s: unknown option '%s' (see llmsim %s --help)\n", cmd, opt, cmd);
    return CLI_EXIT_INPUT;
}

int cli_name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

int cli_opt_valued(const char *cmd, int argc, char **argv, int *i, const char *const *names, int n,
                   const char **val)
{
    int which = cli_name_index(argv[*i], names, n);
    if (which < 0)
        return -1;
    if (*i + 1 >= argc) {
        fprintf(stderr, "llmsim %s: %s needs a value (see llmsim %s --help)\n", cmd, argv[*i], cmd);
        return -2;
    }
    *val = argv[++*i];
    return which;
}

int cli_opt_invalid(const char *cmd, const char *opt, const char *val)
{
    fprintf(stderr, "llmsim %s: %s '%s' is not valid (see llmsim %s --help)\n", cmd, opt, val, cmd);
    return CLI_EXIT_INPUT;
}

void cli_engine_opts_init(engine_opts *o)
{
    *o = (engine_opts){.synthetic_seed = 1, .prompt_seed = 1, .sample_seed = 1, .top_p = 1,
                       .interrupt = &cli_interrupted};
}

// ---- the job options

/* The job options as given, before the inputs are loaded. */
typedef struct job_flags {
    cli_input_opts in;
    const char *percent[6]; /* --percent's six values */
    bool have_percent;
    const char *policy_file;
    long long gbs, ngb; /* negative: not given */
    quant wq, kq;       /* bits negative: not given */
    bool cpu_att, no_overlap, no_pin;
} job_flags;

/* argv without --percent and its six values (kept in f) into args, NULL
 * ended. Returns an exit status. */
static int lift_percent(int argc, char **argv, const char *cmd, char **args, int *nargs,
                        job_flags *f)
{
    *nargs = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--percent") != 0) {
            args[(*nargs)++] = argv[i];
            continue;
        }
        if (i + 6 >= argc) {
            fprintf(stderr, "llmsim %s: --percent takes six numbers: WG WC CG CC HG HC\n", cmd);
            return CLI_EXIT_INPUT;
        }
        for (int k = 0; k < 6; k++) {
            f->percent[k] = argv[i + 1 + k];
            if (f->percent[k][0] == '-') { /* the next option, not a number */
                fprintf(stderr, "llmsim %s: --percent takes six numbers: WG WC CG CC HG HC "
                        "(got '%s' as number %d)\n", cmd, f->percent[k], k + 1);
                return CLI_EXIT_INPUT;
            }
        }
        f->have_percent = true;
        i += 6;
    }
    args[*nargs] = NULL;
    return CLI_EXIT_OK;
}

enum {
    OPT_MODEL = 256, OPT_HW, OPT_POLICY, OPT_GBS, OPT_NGB, OPT_CW, OPT_CC, OPT_WQ, OPT_KQ,
    OPT_CPUATT, OPT_NOOVERLAP, OPT_NOPIN, OPT_WORKLOAD, OPT_PROMPT, OPT_GEN, OPT_NPROMPTS,
    OPT_FORMAT, OPT_DB, OPT_HELP,
};

/* The value of a batch or quantization option (c, with optarg) into f;
 * false after a message. */
static bool take_checked(const char *cmd, int c, job_flags *f)
{
    if (c == OPT_GBS || c == OPT_NGB)
        return cli_opt_whole(cmd, c == OPT_GBS ? "--gpu-batch-size" : "--num-gpu-batches", optarg,
                             1, 1 << 20, c == OPT_GBS ? &f->gbs : &f->ngb);
    if (parse_quant(optarg, c == OPT_WQ ? &f->wq : &f->kq))
        return true;
    fprintf(stderr, "llmsim %s: %s '%s' must be BITS/GROUP with BITS 4 or 8 and an even "
            "GROUP, e.g. 4/64\n", cmd, c == OPT_WQ ? "--weight-quant" : "--kv-quant", optarg);
    return false;
}

/* The options of args into job (its specs and format) and f. Returns an exit
 * status (0 with *help after --help). */
static int parse_flags(int nargs, char **args, const char *cmd, cli_job *job, job_flags *f,
                       bool *help)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, OPT_MODEL},
        {"hardware", required_argument, 0, OPT_HW},
        {"policy", required_argument, 0, OPT_POLICY},
        {"gpu-batch-size", required_argument, 0, OPT_GBS},
        {"num-gpu-batches", required_argument, 0, OPT_NGB},
        {"compress-weight", no_argument, 0, OPT_CW},
        {"compress-cache", no_argument, 0, OPT_CC},
        {"weight-quant", required_argument, 0, OPT_WQ},
        {"kv-quant", required_argument, 0, OPT_KQ},
        {"cpu-attention", no_argument, 0, OPT_CPUATT},
        {"no-overlap", no_argument, 0, OPT_NOOVERLAP},
        {"no-pin-weights", no_argument, 0, OPT_NOPIN},
        {"workload", required_argument, 0, OPT_WORKLOAD},
        {"prompt-len", required_argument, 0, OPT_PROMPT},
        {"gen-len", required_argument, 0, OPT_GEN},
        {"num-prompts", required_argument, 0, OPT_NPROMPTS},
        {"format", required_argument, 0, OPT_FORMAT},
        {"db", required_argument, 0, OPT_DB},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    cli_getopt_reset();
    int c, li;
    while ((c = getopt_long(nargs, args, ":", opts, &li)) != -1) {
        switch (c) {
        case OPT_POLICY: f->policy_file = optarg; break;
        case OPT_CW: f->wq = (quant){4, 64}; break;
        case OPT_CC: f->kq = (quant){4, 64}; break;
        case OPT_CPUATT: f->cpu_att = true; break;
        case OPT_NOOVERLAP: f->no_overlap = true; break;
        case OPT_NOPIN: f->no_pin = true; break;
        case OPT_GBS: case OPT_NGB: case OPT_WQ: case OPT_KQ:
            if (!take_checked(cmd, c, f))
                return CLI_EXIT_INPUT;
            break;
        case OPT_MODEL: case OPT_HW: case OPT_WORKLOAD: case OPT_PROMPT: case OPT_GEN:
        case OPT_NPROMPTS: case OPT_FORMAT: case OPT_DB:
            if (!cli_input_opt(cmd, opts[li].name, optarg, job, &f->in))
                return CLI_EXIT_INPUT;
            break;
        case OPT_HELP: *help = true; return CLI_EXIT_OK;
        default: return cli_opt_rejected(cmd, c, args);
        }
    }
    if (optind < nargs) {
        fprintf(stderr, "llmsim %s: unexpected argument '%s' (see llmsim %s --help)\n", cmd,
                args[optind], cmd);
        return CLI_EXIT_INPUT;
    }
    return CLI_EXIT_OK;
}

/* job->policy: the file, then the shorthand, then the flags; validated. */
static int job_policy(const char *cmd, cli_job *job, const job_flags *f)
{
    diag e;
    diag_clear(&e);
    if (f->policy_file) {
        if (policy_load_yaml(f->policy_file, &job->policy, &e))
            return cli_fail(cmd, &e);
    } else {
        policy_init(&job->policy);
        if (f->have_percent && policy_from_percent(f->percent, &job->policy, &e))
            return cli_fail(cmd, &e);
        if (!f->have_percent && !job->hw.gpu.present) {
            /* a CPU-only machine: default to everything in RAM */
            placement cpu = {{0, 1, 0}};
            job->policy.weights = job->policy.kv_cache = job->policy.activations = cpu;
        }
    }
    if (f->gbs > 0)
        job->policy.gpu_batch_size = (int)f->gbs;
    if (f->ngb > 0)
        job->policy.num_gpu_batches = (int)f->ngb;
    if (f->wq.bits >= 0)
        job->policy.weight_quant = f->wq;
    if (f->kq.bits >= 0)
        job->policy.kv_quant = f->kq;
    if (f->cpu_att)
        job->policy.cpu_attention = true;
    if (f->no_overlap)
        job->policy.overlap = false;
    if (f->no_pin)
        job->policy.pin_weights = false;
    if (policy_validate(&job->policy, "the policy", &e))
        return cli_fail(cmd, &e);
    return CLI_EXIT_OK;
}

int cli_job_parse(int argc, char **argv, const char *cmd, cli_job *job, bool *help)
{
    memset(job, 0, sizeof *job);
    *help = false;
    cli_command_line(argc, argv, job->command, sizeof job->command);
    char **args = cli_args_new(cmd, argc, 0);
    if (!args)
        return CLI_EXIT_FAIL;
    job_flags f = {.in = CLI_INPUT_OPTS_INIT, .gbs = -1, .ngb = -1, .wq = {-1, 0}, .kq = {-1, 0}};
    int nargs;
    int status = lift_percent(argc, argv, cmd, args, &nargs, &f);
    if (!status)
        status = parse_flags(nargs, args, cmd, job, &f, help);
    free(args);
    if (status || *help)
        return status;
    job->db_path = cli_db_path(f.in.db);
    if (f.policy_file && f.have_percent) {
        fprintf(stderr, "llmsim %s: give --policy FILE or --percent, not both\n", cmd);
        return CLI_EXIT_INPUT;
    }
    if ((status = cli_load_inputs(cmd, job)) || (status = job_policy(cmd, job, &f)))
        return status;
    return cli_load_workload(cmd, job, f.in.workload_file, f.in.prompt_len, f.in.gen_len,
                             f.in.num_prompts);
}

int cli_job_new(int argc, char **argv, const char *cmd, const char *summary, const char *more,
                cli_job **out)
{
    *out = NULL;
    cli_job *job = calloc(1, sizeof *job);
    if (!job) {
        fprintf(stderr, "llmsim %s: out of memory\n", cmd);
        return CLI_EXIT_FAIL;
    }
    bool help;
    int status = cli_job_parse(argc, argv, cmd, job, &help);
    if (help) {
        cli_job_usage(stdout, cmd, summary);
        if (more)
            fputs(more, stdout);
    }
    if (status || help)
        free(job);
    else
        *out = job;
    return status;
}
