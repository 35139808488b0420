/*
 * cmd_search — `llmsim search`: the best policy by one LP per discrete
 * choice (search/search.h), written as a policy YAML, shown with the top
 * candidates, and recorded in the store.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "db/record.h"
#include "db/result_json.h"
#include "common/units.h"
#include "search/search.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: llmsim search --model M --hardware H (--prompt-len S --gen-len N | --workload FILE)\n"
            "                     [options]\n\n"
            "Find the policy with the highest predicted throughput: one linear program (GLPK)\n"
            "per GPU batch size, number of GPU batches, weight and KV-cache quantization and\n"
            "CPU delegation; the best solutions are rounded to whole tensors and re-checked.\n\n"
            "  --model M, --hardware H   as for llmsim predict\n"
            "  --prompt-len S --gen-len N [--num-prompts P] | --workload FILE\n"
            "  --max-latency SECONDS     bound on each decode step of the block: the time\n"
            "                            between two tokens of every sequence (gen-len >= 2)\n"
            "  --headroom F              keep this fraction of every tier free (default 0.05)\n"
            "  --no-quant                only unquantized weights and cache\n"
            "  --no-disk                 nothing on disk\n"
            "  --max-gpu-batch B         largest GPU batch size tried (default 1024)\n"
            "  --max-gpu-batches K       largest number of GPU batches tried (default 64)\n"
            "  --top K                   candidates shown (default 10)\n"
            "  -o FILE                   write the best policy as a policy YAML\n"
            "  --format table|json       output (default table)\n"
            "  --db PATH                 the store (default $LLMSIM_DB or ./llmsim.db)\n"
            "  --help                    this text\n");
}

static const char *quant_name(const quant *q, char *buf, size_t len)
{
    if (!q->bits)
        snprintf(buf, len, "none");
    else
        snprintf(buf, len, "%d/%d", q->bits, q->group_size);
    return buf;
}

static cJSON *candidate_json(const search_candidate *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "policy", result_policy_json(&c->rounded));
    cJSON_AddItemToObject(o, "lp_policy", result_policy_json(&c->lp_policy));
    cJSON_AddNumberToObject(o, "throughput_tok_s", c->throughput_tok_s);
    cJSON_AddNumberToObject(o, "lp_throughput_tok_s", c->lp_throughput_tok_s);
    cJSON_AddNumberToObject(o, "total_s", c->total_s);
    cJSON_AddBoolToObject(o, "feasible", c->feasible);
    cJSON_AddNumberToObject(o, "repairs", c->repairs);
    cJSON_AddItemToObject(o, "peak_bytes", result_tiers_json(c->peak_bytes));
    return o;
}

static void print_table(const cli_job *job, const search_result *r, const char *out_path)
{
    char a[32], b[32], wq[16], kq[16];
    printf("search    %s on %s, prompt %lld, generate %lld\n", job->model.name, job->hw.name,
           job->workload.prompt_len, job->workload.gen_len);
    printf("          %ld LPs solved, %ld infeasible, %ld choices not applicable, %.3f s\n\n",
           r->lps_solved, r->lps_infeasible, r->choices_skipped, r->search_s);
    printf("  #  batch      wquant  kvquant  cpu-att  weights g/c/d      cache g/c/d        act g/c/d"
           "          LP tok/s   tok/s      peak gpu   peak cpu\n");
    for (int i = 0; i < r->ntop; i++) {
        const search_candidate *c = &r->top[i];
        const policy *p = &c->rounded;
        char batch[24];
        snprintf(batch, sizeof batch, "%dx%d", p->gpu_batch_size, p->num_gpu_batches);
        printf("%3d  %-10s %-7s %-8s %-8s %4.0f/%4.0f/%4.0f     %4.0f/%4.0f/%4.0f     %4.0f/%4.0f/%4.0f"
               "     %-10.4g %-10.4g %-10s %s%s\n",
               i + 1, batch, quant_name(&p->weight_quant, wq, sizeof wq),
               quant_name(&p->kv_quant, kq, sizeof kq), p->cpu_attention ? "on" : "off",
               100 * p->weights.f[0], 100 * p->weights.f[1], 100 * p->weights.f[2],
               100 * p->kv_cache.f[0], 100 * p->kv_cache.f[1], 100 * p->kv_cache.f[2],
               100 * p->activations.f[0], 100 * p->activations.f[1], 100 * p->activations.f[2],
               c->lp_throughput_tok_s, c->throughput_tok_s, cli_bytes(c->peak_bytes[TIER_GPU], a, sizeof a),
               cli_bytes(c->peak_bytes[TIER_CPU], b, sizeof b), c->feasible ? "" : "  (does not fit)");
    }
    printf("\nbest      %.4g tok/s (rounded to whole tensors; the LP said %.4g)\n",
           r->best.throughput_tok_s, r->best.lp_throughput_tok_s);
    if (out_path)
        printf("written   %s\n", out_path);
}

/* search's options besides the job's specs and format (set in the job). */
typedef struct s_opts {
    search_options so;
    cli_input_opts in;
    const char *out_path;
} s_opts;

enum { O_MODEL = 256, O_HW, O_WORKLOAD, O_PROMPT, O_GEN, O_NPROMPTS, O_LAT, O_HEAD, O_NOQ, O_NOD,
       O_MAXB, O_MAXK, O_TOP, O_FORMAT, O_DB, O_HELP };

/* The value of a number option of the search's (c, with optarg) into o;
 * false after a message. */
static bool take_number(int c, s_opts *o)
{
    long long v;
    char *end;
    switch (c) {
    case O_LAT:
        o->so.max_latency_s = strtod(optarg, &end);
        if (end == optarg || *end || !(o->so.max_latency_s > 0) ||
            !isfinite(o->so.max_latency_s)) {
            fprintf(stderr, "llmsim search: --max-latency '%s' must be a positive number of "
                    "seconds\n", optarg);
            return false;
        }
        return true;
    case O_HEAD:
        o->so.headroom = strtod(optarg, &end);
        if (end == optarg || *end || !(o->so.headroom >= 0 && o->so.headroom < 1)) {
            fprintf(stderr, "llmsim search: --headroom '%s' must be a fraction in [0, 1)\n",
                    optarg);
            return false;
        }
        return true;
    default: /* O_MAXB, O_MAXK, O_TOP */
        if (!cli_opt_whole("search",
                           c == O_MAXB   ? "--max-gpu-batch"
                           : c == O_MAXK ? "--max-gpu-batches"
                                         : "--top",
                           optarg, 1, 1 << 20, &v))
            return false;
        if (c == O_MAXB)
            o->so.max_gpu_batch = (int)v;
        else if (c == O_MAXK)
            o->so.max_gpu_batches = (int)v;
        else
            o->so.top_k = (int)v;
        return true;
    }
}

/* The options into job (its specs and format) and o. Returns an exit status
 * (0 with *help after --help). */
static int parse_opts(int argc, char **argv, cli_job *job, s_opts *o, bool *help)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},       {"hardware", required_argument, 0, O_HW},
        {"workload", required_argument, 0, O_WORKLOAD}, {"prompt-len", required_argument, 0, O_PROMPT},
        {"gen-len", required_argument, 0, O_GEN},       {"num-prompts", required_argument, 0, O_NPROMPTS},
        {"max-latency", required_argument, 0, O_LAT},   {"headroom", required_argument, 0, O_HEAD},
        {"no-quant", no_argument, 0, O_NOQ},            {"no-disk", no_argument, 0, O_NOD},
        {"max-gpu-batch", required_argument, 0, O_MAXB}, {"max-gpu-batches", required_argument, 0, O_MAXK},
        {"top", required_argument, 0, O_TOP},           {"format", required_argument, 0, O_FORMAT},
        {"db", required_argument, 0, O_DB},             {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    cli_getopt_reset();
    int c, li;
    while ((c = getopt_long(argc, argv, ":o:", opts, &li)) != -1) {
        switch (c) {
        case O_NOQ: o->so.no_quant = true; break;
        case O_NOD: o->so.no_disk = true; break;
        case 'o': o->out_path = optarg; break;
        case O_LAT: case O_HEAD: case O_MAXB: case O_MAXK: case O_TOP:
            if (!take_number(c, o))
                return CLI_EXIT_INPUT;
            break;
        case O_MODEL: case O_HW: case O_WORKLOAD: case O_PROMPT: case O_GEN: case O_NPROMPTS:
        case O_FORMAT: case O_DB:
            if (!cli_input_opt("search", opts[li].name, optarg, job, &o->in))
                return CLI_EXIT_INPUT;
            break;
        case O_HELP:
            usage(stdout);
            *help = true;
            return CLI_EXIT_OK;
        default: return cli_opt_rejected("search", c, argv);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "llmsim search: unexpected argument '%s'\n", argv[optind]);
        return CLI_EXIT_INPUT;
    }
    return CLI_EXIT_OK;
}

/* The model, hardware and workload of the job, checked against the options. */
static int load_job(cli_job *job, const s_opts *o)
{
    int status;
    job->db_path = cli_db_path(o->in.db);
    if ((status = cli_load_inputs("search", job)) ||
        (status = cli_load_workload("search", job, o->in.workload_file, o->in.prompt_len,
                                    o->in.gen_len, o->in.num_prompts)))
        return status;
    cli_flagged_check("search", job->hw_spec, &job->hw,
                      HW_USES_CPU | HW_USES_DISK_READ | HW_USES_DISK_WRITE | HW_USES_GPU, false);
    if (o->so.max_latency_s > 0 && job->workload.gen_len < 2) {
        fprintf(stderr, "llmsim search: --max-latency bounds each decode step, and --gen-len 1 has "
                "none; generate at least 2 tokens\n");
        return CLI_EXIT_INPUT;
    }
    return CLI_EXIT_OK;
}

/* -o FILE: the best policy as a policy YAML, written atomically. */
static int write_policy(const cli_job *job, const search_result *r, const char *path)
{
    diag e;
    diag_clear(&e);
    strbuf b = {0};
    strbuf_printf(&b, "# written by: %s\n# predicted %.6g tok/s on %s\n", job->command,
                  r->best.throughput_tok_s, job->hw.name);
    policy_save(&job->policy, &b);
    llmsim_status ws = strbuf_write_file(&b, path, &e);
    strbuf_free(&b);
    return ws ? cli_fail("search", &e) : CLI_EXIT_OK;
}

/* The search's JSON: the best policy, the search's figures, the prediction
 * of the best policy, and the top candidates. */
static cJSON *search_json(const cli_job *job, const search_result *r, const cm_result *pr)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddItemToObject(obj, "policy", result_policy_json(&job->policy));
    cJSON_AddNumberToObject(obj, "throughput_tok_s", r->best.throughput_tok_s);
    cJSON_AddNumberToObject(obj, "lp_throughput_tok_s", r->best.lp_throughput_tok_s);
    cJSON_AddNumberToObject(obj, "candidates_evaluated", (double)r->candidates_evaluated);
    cJSON_AddNumberToObject(obj, "lps_solved", (double)r->lps_solved);
    cJSON_AddNumberToObject(obj, "lps_infeasible", (double)r->lps_infeasible);
    cJSON_AddNumberToObject(obj, "search_s", r->search_s);
    cJSON_AddItemToObject(obj, "prediction", cli_prediction_json(job, pr));
    cJSON *top = cJSON_AddArrayToObject(obj, "top");
    for (int i = 0; i < r->ntop; i++)
        cJSON_AddItemToArray(top, candidate_json(&r->top[i]));
    return obj;
}

/* The best policy: written with -o, predicted, recorded and printed. */
static int take_best(cli_job *job, const search_result *r, const char *out_path)
{
    int status;
    job->policy = r->best.rounded;
    if (out_path && (status = write_policy(job, r, out_path)))
        return status;
    diag e;
    diag_clear(&e);
    cm_result pr;
    if (cm_predict(&job->model, &job->hw, &job->policy, &job->workload, &pr, &e))
        return cli_fail("search", &e);
    cJSON *obj = search_json(job, r, &pr);
    pr.search_s = r->search_s; /* recorded with the run's metrics */
    pr.candidates_evaluated = (double)r->candidates_evaluated;
    char *text = cJSON_PrintUnformatted(obj);
    int64_t run_id = 0;
    record_job rj = cli_record_job(job);
    llmsim_status rs = record_prediction(&rj, "search", &pr, text, &run_id, &e);
    free(text);
    cm_result_free(&pr);
    if (rs) {
        cJSON_Delete(obj);
        return cli_fail("search", &e);
    }
    cJSON_AddNumberToObject(obj, "run_id", (double)run_id);
    if (!cli_print_json_if_asked(job->format, obj)) {
        print_table(job, r, out_path);
        printf("recorded  run %lld in %s\n", (long long)run_id, job->db_path);
    }
    return CLI_EXIT_OK;
}

int cmd_search(int argc, char **argv)
{
    cli_job *job = calloc(1, sizeof *job);
    if (!job) {
        fprintf(stderr, "llmsim search: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    s_opts o = {.in = CLI_INPUT_OPTS_INIT};
    search_options_init(&o.so);
    o.so.progress = true;
    cli_command_line(argc, argv, job->command, sizeof job->command);
    bool help = false;
    int status = parse_opts(argc, argv, job, &o, &help);
    if (!status && !help)
        status = load_job(job, &o);
    if (!status && !help) {
        diag e;
        diag_clear(&e);
        search_result r;
        if (search_run(&job->model, &job->hw, &job->workload, &o.so, &r, &e))
            status = cli_fail("search", &e);
        else
            status = take_best(job, &r, o.out_path);
        search_result_free(&r);
    }
    free(job);
    return status;
}
