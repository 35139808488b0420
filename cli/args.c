/*
 * args — parsing of the job options shared by predict, simulate and run.
 * FlexGen's `--percent a b c d e f` takes six values, so it is lifted out of
 * argv before getopt_long sees the rest.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#include <unistd.h>

#include "exec/offload.h"

void cli_command_line(int argc, char **argv, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < argc && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%s", i ? " " : "llmsim ", argv[i]);
}

volatile sig_atomic_t cli_interrupted;

static void cli_on_sigint(int sig)
{
    (void)sig;
    if (cli_interrupted) { /* a second ^C: clean up now and go */
        offload_remove_all_from_signal();
        _exit(130);
    }
    cli_interrupted = 1;
}

void cli_sigint_catch(struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, old);
}

void cli_sigint_release(const struct sigaction *old) { sigaction(SIGINT, old, NULL); }

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

void cli_job_usage(FILE *out, const char *cmd, const char *summary)
{
    fprintf(out,
            "usage: llmsim %s --model M --hardware H [policy] [workload] [options]\n"
            "\n%s\n\n"
            "  --model M              shipped model name (llmsim models), a model YAML, or a\n"
            "                         Hugging Face config.json (OPT, LLaMA, Mistral)\n"
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

enum {
    OPT_MODEL = 256, OPT_HW, OPT_POLICY, OPT_GBS, OPT_NGB, OPT_CW, OPT_CC, OPT_WQ, OPT_KQ,
    OPT_CPUATT, OPT_NOOVERLAP, OPT_NOPIN, OPT_WORKLOAD, OPT_PROMPT, OPT_GEN, OPT_NPROMPTS,
    OPT_FORMAT, OPT_DB, OPT_HELP,
};

int cli_job_parse(int argc, char **argv, const char *cmd, cli_job *job, bool *help)
{
    memset(job, 0, sizeof *job);
    *help = false;
    diag e;
    diag_clear(&e);
    cli_command_line(argc, argv, job->command, sizeof job->command);

    /* Lift --percent and its six values out of argv. */
    const char *percent[6] = {0};
    bool have_percent = false;
    char **args = malloc(sizeof(char *) * ((size_t)argc + 1));
    if (!args) {
        fprintf(stderr, "llmsim %s: out of memory\n", cmd);
        return CLI_EXIT_FAIL;
    }
    int nargs = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--percent") == 0) {
            if (i + 6 >= argc) {
                free(args);
                fprintf(stderr, "llmsim %s: --percent takes six numbers: WG WC CG CC HG HC\n", cmd);
                return CLI_EXIT_INPUT;
            }
            for (int k = 0; k < 6; k++) {
                percent[k] = argv[i + 1 + k];
                if (percent[k][0] == '-') { /* the next option, not a number */
                    free(args);
                    fprintf(stderr, "llmsim %s: --percent takes six numbers: WG WC CG CC HG HC "
                            "(got '%s' as number %d)\n", cmd, percent[k], k + 1);
                    return CLI_EXIT_INPUT;
                }
            }
            have_percent = true;
            i += 6;
            continue;
        }
        args[nargs++] = argv[i];
    }
    args[nargs] = NULL;

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
    const char *policy_file = NULL, *workload_file = NULL, *db = NULL;
    long long gbs = -1, ngb = -1, prompt = -1, gen = -1, nprompts = -1;
    quant wq = {-1, 0}, kq = {-1, 0};
    bool cpu_att = false, no_overlap = false, no_pin = false;
    int status = CLI_EXIT_INPUT;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(nargs, args, ":", opts, NULL)) != -1) {
        switch (c) {
        case OPT_MODEL: job->model_spec = optarg; break;
        case OPT_HW: job->hw_spec = optarg; break;
        case OPT_POLICY: policy_file = optarg; break;
        case OPT_GBS:
            if (!cli_parse_ll(optarg, 1, 1 << 20, &gbs)) {
                fprintf(stderr, "llmsim %s: --gpu-batch-size '%s' must be a whole number from 1 to %d\n",
                        cmd, optarg, 1 << 20);
                goto out;
            }
            break;
        case OPT_NGB:
            if (!cli_parse_ll(optarg, 1, 1 << 20, &ngb)) {
                fprintf(stderr, "llmsim %s: --num-gpu-batches '%s' must be a whole number from 1 to %d\n",
                        cmd, optarg, 1 << 20);
                goto out;
            }
            break;
        case OPT_CW: wq = (quant){4, 64}; break;
        case OPT_CC: kq = (quant){4, 64}; break;
        case OPT_WQ:
        case OPT_KQ:
            if (!parse_quant(optarg, c == OPT_WQ ? &wq : &kq)) {
                fprintf(stderr, "llmsim %s: %s '%s' must be BITS/GROUP with BITS 4 or 8 and an even "
                        "GROUP, e.g. 4/64\n", cmd, c == OPT_WQ ? "--weight-quant" : "--kv-quant", optarg);
                goto out;
            }
            break;
        case OPT_CPUATT: cpu_att = true; break;
        case OPT_NOOVERLAP: no_overlap = true; break;
        case OPT_NOPIN: no_pin = true; break;
        case OPT_WORKLOAD: workload_file = optarg; break;
        case OPT_PROMPT:
        case OPT_GEN:
        case OPT_NPROMPTS: {
            long long *dst = c == OPT_PROMPT ? &prompt : c == OPT_GEN ? &gen : &nprompts;
            if (!cli_parse_ll(optarg, 1, 1LL << 40, dst)) {
                fprintf(stderr, "llmsim %s: %s '%s' must be a positive whole number\n", cmd,
                        c == OPT_PROMPT ? "--prompt-len" : c == OPT_GEN ? "--gen-len" : "--num-prompts",
                        optarg);
                goto out;
            }
            break;
        }
        case OPT_FORMAT:
            if (strcmp(optarg, "table") == 0)
                job->format = CLI_FORMAT_TABLE;
            else if (strcmp(optarg, "json") == 0)
                job->format = CLI_FORMAT_JSON;
            else {
                fprintf(stderr, "llmsim %s: --format must be table or json, not '%s'\n", cmd, optarg);
                goto out;
            }
            break;
        case OPT_DB: db = optarg; break;
        case OPT_HELP: *help = true; status = CLI_EXIT_OK; goto out;
        case ':':
            fprintf(stderr, "llmsim %s: %s needs a value (see llmsim %s --help)\n", cmd,
                    args[optind - 1], cmd);
            goto out;
        default:
            fprintf(stderr, "llmsim %s: unknown option '%s' (see llmsim %s --help)\n", cmd,
                    args[optind - 1], cmd);
            goto out;
        }
    }
    if (optind < nargs) {
        fprintf(stderr, "llmsim %s: unexpected argument '%s' (see llmsim %s --help)\n", cmd,
                args[optind], cmd);
        goto out;
    }
    job->db_path = cli_db_path(db);
    if (policy_file && have_percent) {
        fprintf(stderr, "llmsim %s: give --policy FILE or --percent, not both\n", cmd);
        goto out;
    }
    llmsim_status st;
    if ((status = cli_load_inputs(cmd, job)))
        goto out;
    /* policy: file, then shorthand, then flags */
    if (policy_file) {
        if ((st = policy_load_yaml(policy_file, &job->policy, &e))) {
            status = cli_fail(cmd, &e);
            goto out;
        }
    } else {
        policy_init(&job->policy);
        if (have_percent && (st = policy_from_percent(percent, &job->policy, &e))) {
            status = cli_fail(cmd, &e);
            goto out;
        }
        if (!have_percent && !job->hw.gpu.present) {
            /* a CPU-only machine: default to everything in RAM */
            placement cpu = {{0, 1, 0}};
            job->policy.weights = job->policy.kv_cache = job->policy.activations = cpu;
        }
    }
    if (gbs > 0)
        job->policy.gpu_batch_size = (int)gbs;
    if (ngb > 0)
        job->policy.num_gpu_batches = (int)ngb;
    if (wq.bits >= 0)
        job->policy.weight_quant = wq;
    if (kq.bits >= 0)
        job->policy.kv_quant = kq;
    if (cpu_att)
        job->policy.cpu_attention = true;
    if (no_overlap)
        job->policy.overlap = false;
    if (no_pin)
        job->policy.pin_weights = false;
    if ((st = policy_validate(&job->policy, "the policy", &e))) {
        status = cli_fail(cmd, &e);
        goto out;
    }
    if ((status = cli_load_workload(cmd, job, workload_file, prompt, gen, nprompts)))
        goto out;
    status = CLI_EXIT_OK;
out:
    free(args);
    return status;
}
