/*
 * cmd_validate — `llmsim validate`: its options, the policies of a
 * directory, and the comparison as tables or JSON. The work (the grid, each
 * policy's prediction, simulation and measurement, the comparison and its
 * record) is validate/validate.h's.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fault.h"
#include "cli/commands.h"
#include "validate/search_check.h"
#include "validate/validate.h"

/* ---- the policies of a directory */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the *.yaml / *.yml files of d into *names (*count of them,
 * unsorted; the caller frees them, also on failure). CLI_EXIT_FAIL when out
 * of memory. */
static int list_yaml(DIR *d, char ***names, int *count)
{
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        bool yaml = (len > 5 && strcmp(de->d_name + len - 5, ".yaml") == 0) ||
                    (len > 4 && strcmp(de->d_name + len - 4, ".yml") == 0);
        if (!yaml || de->d_name[0] == '.')
            continue;
        if (*count == cap) {
            int ncap = cap ? 2 * cap : 16;
            char **g = realloc(*names, (size_t)ncap * sizeof *g);
            if (!g)
                return CLI_EXIT_FAIL;
            *names = g;
            cap = ncap;
        }
        if (!((*names)[*count] = strdup(de->d_name)))
            return CLI_EXIT_FAIL;
        (*count)++;
    }
    return CLI_EXIT_OK;
}

/* Every *.yaml / *.yml of dir, by name. */
static int load_policy_dir(const char *dir, validate_policy **out, int *n)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "llmsim validate: --policies %s: cannot open the directory: %s\n", dir,
                strerror(errno));
        return CLI_EXIT_INPUT;
    }
    char **names = NULL;
    int count = 0;
    int status = list_yaml(d, &names, &count);
    closedir(d);
    if (!status && count == 0) {
        fprintf(stderr, "llmsim validate: --policies %s: no policy files (*.yaml) in the directory\n", dir);
        status = CLI_EXIT_INPUT;
    }
    validate_policy *ps = status ? NULL : calloc((size_t)count, sizeof *ps);
    if (!status && !ps)
        status = CLI_EXIT_FAIL;
    if (status == CLI_EXIT_FAIL)
        fprintf(stderr, "llmsim validate: out of memory\n");
    if (!status)
        qsort(names, (size_t)count, sizeof *names, name_cmp);
    for (int i = 0; i < count && !status; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        diag e;
        diag_clear(&e);
        if (policy_load_yaml(path, &ps[i].p, &e) || policy_validate(&ps[i].p, path, &e)) {
            status = cli_fail("validate", &e);
            break;
        }
        snprintf(ps[i].name, sizeof ps[i].name, "%s", names[i]);
        char *dot = strrchr(ps[i].name, '.');
        if (dot)
            *dot = '\0';
    }
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
    if (status) {
        free(ps);
        return status;
    }
    *out = ps;
    *n = count;
    return CLI_EXIT_OK;
}

/* The grid's policies that fit; a line on stderr for each left out. */
static int grid(const record_job *rj, validate_policy **ps, int *n)
{
    strbuf skipped = {0};
    diag e;
    diag_clear(&e);
    llmsim_status st = validate_grid(rj, ps, n, &skipped, &e);
    const char *line = strbuf_str(&skipped);
    while (*line) {
        const char *nl = strchr(line, '\n');
        fprintf(stderr, "llmsim validate: %.*s\n", (int)(nl - line), line);
        line = nl + 1;
    }
    strbuf_free(&skipped);
    return st ? cli_fail("validate", &e) : CLI_EXIT_OK;
}

/* ---- the comparison as a table */

/* What the row's measurement ran under, after its errors. */
static const char *row_note(const validate_policy *vp, const validate_row *w)
{
    static char note[96];
    snprintf(note, sizeof note, "%s%s%s%s", w->fit_seen ? "  fit" : "",
             w->excluded    ? "  disturbed: left out"
             : w->disturbed ? "  disturbed: counted"
                            : "",
             !w->cond.measured ? "  (conditions unknown)" : "",
             vp->reused[2] ? "  (from the store)" : "");
    return note;
}

/* The MAPE line: its two figures, or that they are over none. */
static void print_mape(const char *label, double pred, double sim, int width, const char *after)
{
    if (isnan(sim))
        printf("%-26s over none: every run was measured under contention (--keep-disturbed counts "
               "them)\n\n", label);
    else
        printf("%-26s %*s %9.1f%% %9.1f%%%s\n\n", label, width, "", pred, sim, after);
}

/* The runs measured under contention, and why; those of unknown conditions. */
static void print_disturbed(const validate_policy *ps, const validate_report *r)
{
    if (r->disturbed)
        printf("%d of %d runs were measured under contention and %s\n", r->disturbed, r->n,
               r->keep_disturbed ? "are counted in the MAPE (--keep-disturbed):"
                                 : "are left out of the MAPE; --keep-disturbed counts them:");
    for (int i = 0; i < r->n; i++) {
        char why[512];
        if (r->rows[i].disturbed && cond_judge(&r->rows[i].cond, why, sizeof why))
            printf("  %s (run %lld): %s\n", ps[i].name, (long long)ps[i].id_meas, why);
    }
    if (r->unknown)
        printf("%d of %d runs were recorded before llmsim kept the conditions of a run: unknown, "
               "counted\n", r->unknown, r->n);
    if (r->disturbed || r->unknown)
        printf("\n");
}

/* Runs a calibrated profile was fitted on, intervals, tasks, ranking. */
static void print_summary(const validate_policy *ps, const validate_report *r)
{
    if (r->fit_seen)
        printf("%d of %d runs have the inputs the calibrated profile was fitted on: marked 'fit', left out\n"
               "of the MAPE, the coverage and the primitives (no error is judged on the fit's own data)\n",
               r->fit_seen, r->n);
    if (r->with_interval)
        printf("intervals (from the %s): %d of %d counted runs measured inside their simulated p10-p90\n",
               strcmp(r->interval_source, "calibration") == 0 ? "calibration's held-out errors"
                                                              : "profile's spreads",
               r->covered, r->with_interval);
    else
        printf("intervals: none (the profile has no measured spreads and no calibration)\n");
    if (!isnan(r->task_median))
        printf("tasks: median error %.1f%% over %zu tasks\n", r->task_median, r->ntask_err);
    if (!isnan(r->rank_rho[1]) && r->best[2] >= 0)
        printf("ranking by throughput: Spearman rho %.3f (simulated), %.3f (cost model) against the\n"
               "measured; the measured best %s; the cost model's best %s, %.1f%% slower%s; the\n"
               "simulation's best %s, %.1f%% slower\n",
               r->rank_rho[1], r->rank_rho[0], ps[r->best[2]].name, ps[r->best[0]].name, r->shortfall[0],
               r->shortfall[0] <= 100 * VALIDATE_BEST_WITHIN ? " (within 5%: the same within noise)" : "",
               ps[r->best[1]].name, r->shortfall[1]);
    printf("\n");
}

/* Totals and their errors, and again with the disk as --check-disk measured it. */
static void print_totals(const validate_policy *ps, const validate_report *r)
{
    const validate_row *rows = r->rows;
    printf("%-26s %11s %11s %11s %10s %10s\n", "policy", "predicted", "simulated", "measured", "err pred",
           "err sim");
    for (int i = 0; i < r->n; i++)
        printf("%-26s %9.3f s %9.3f s %9.3f s %+9.1f%% %+9.1f%%%s\n", ps[i].name, rows[i].total[0],
               rows[i].total[1], rows[i].total[2], validate_pct(rows[i].total[0], rows[i].total[2]),
               validate_pct(rows[i].total[1], rows[i].total[2]), row_note(&ps[i], &rows[i]));
    print_mape("MAPE", r->mape_pred, r->mape_sim, 35, "");
    print_disturbed(ps, r);
    print_summary(ps, r);
    if (isnan(r->mape_now[1]))
        return;
    printf("with the disk as measured around each run that uses it (--check-disk): its rate\n"
           "against the profile's (read, write) and the predictions again with it:\n");
    printf("%-26s %15s %11s %11s %10s %10s\n", "policy", "disk now", "predicted", "simulated", "err pred",
           "err sim");
    for (int i = 0; i < r->n; i++)
        if (!isnan(rows[i].now[1]))
            printf("%-26s %6.2fx %6.2fx %9.3f s %9.3f s %+9.1f%% %+9.1f%%%s\n", ps[i].name, rows[i].disk_now[0],
                   rows[i].disk_now[1], rows[i].now[0], rows[i].now[1],
                   validate_pct(rows[i].now[0], rows[i].total[2]),
                   validate_pct(rows[i].now[1], rows[i].total[2]),
                   rows[i].excluded ? "  disturbed: left out" : "");
    print_mape("MAPE", r->mape_now[0], r->mape_now[1], 39,
               r->excluded ? "  (every policy not left out; the others as above)"
                           : "  (every policy; the others as above)");
}

/* The four stages of each policy, simulated / measured. */
static void print_stages(const cli_job *job, const validate_policy *ps, const validate_report *r)
{
    if (job->workload.gen_len > RECORD_MAX_STEPS)
        printf("stages per block over the %d steps the store keeps of %lld (evenly spaced), simulated /\n"
               "measured (s) and the simulation's error:\n", RECORD_MAX_STEPS, job->workload.gen_len);
    else
        printf("stages per block, simulated / measured (s) and the simulation's error:\n");
    static const int shown[] = {CM_STAGE_LOAD_WEIGHT, CM_STAGE_LOAD_CACHE, CM_STAGE_STORE_CACHE,
                                CM_STAGE_COMPUTE};
    printf("%-26s", "policy");
    for (int k = 0; k < 4; k++)
        printf(" %24s", cm_stage_names[shown[k]]);
    printf("\n");
    for (int i = 0; i < r->n; i++) {
        const validate_row *w = &r->rows[i];
        printf("%-26s", ps[i].name);
        for (int k = 0; k < 4; k++) {
            double sim = w->stage[1][shown[k]], m = w->stage[2][shown[k]];
            char cell[64];
            if (m > 0.01 * validate_stage_total(w->stage[2]))
                snprintf(cell, sizeof cell, "%.3f/%.3f %+.0f%%", sim, m, validate_pct(sim, m));
            else
                snprintf(cell, sizeof cell, "%.3f/%.3f", sim, m);
            printf(" %24s", cell);
        }
        printf("\n");
    }
}

static void print_table(const cli_job *job, const validate_policy *ps, const validate_report *r, int top)
{
    printf("model     %s\nhardware  %s\nworkload  prompt %lld, generate %lld\n\n", job->model.name,
           job->hw.name, job->workload.prompt_len, job->workload.gen_len);
    print_totals(ps, r);
    print_stages(job, ps, r);
    printf("\nprimitives whose simulated time is furthest from the measured (over every policy%s):\n",
           r->excluded ? " not left out" : "");
    printf("%-50s %7s %11s %11s %8s\n", "primitive", "tasks", "simulated", "measured", "error");
    for (size_t g = 0; g < r->ngroups && (int)g < top; g++) {
        const validate_group *gp = &r->groups[g];
        printf("%-50s %7ld %9.4f s %9.4f s %+7.1f%%\n", gp->key, gp->tasks, gp->sim_s, gp->meas_s,
               validate_pct(gp->sim_s, gp->meas_s));
    }
    printf("\nrecorded as run %lld in %s (llmsim report %lld -o DIR plots it)\n", (long long)r->run_id,
           job->db_path, (long long)r->run_id);
}

/* ---- the command */

static void usage(void)
{
    printf("usage: llmsim validate --model M --hardware H (--policies DIR | --grid)\n"
           "                       [--prompt-len S --gen-len N | --workload FILE] [options]\n\n"
           "For each policy: predict (cost model), simulate (the plan, event by event) and run\n"
           "(the engine) the same workload; record all three; print the totals and the error of\n"
           "each prediction against the measurement, the error per stage, the MAPE over the set,\n"
           "and the primitives (a copy by link and size, a layer's compute by shape and context)\n"
           "whose simulated times are furthest from the measured ones. What the store already\n"
           "holds for the same inputs on this host is reused unless --rerun.\n\n"
           "  --model M              shipped model name, model YAML or config.json\n"
           "  --hardware H           shipped profile name or profile YAML (a measured one:\n"
           "                         llmsim profile -o FILE)\n"
           "  --policies DIR         every policy YAML (*.yaml) of DIR, by file name\n"
           "  --grid                 a spread of policies over every tier and quantization\n"
           "                         setting (4 and 8 bits, group 64 or the largest smaller\n"
           "                         power of 2 that divides the rows) that fits the machine\n"
           "  --gpu-batch-size B     the grid's GPU batch (default 2)\n"
           "  --num-gpu-batches K    the grid's GPU batches per block (default 2)\n"
           "  --prompt-len S         prompt tokens (default 16)\n"
           "  --gen-len N            generated tokens (default 8)\n"
           "  --num-prompts P        prompts (default: one block of each policy)\n"
           "  --workload FILE        a workload YAML instead of the three above\n"
           "  --rerun                predict, simulate and run again even when the store has it\n"
           "  --check-disk           measure the disk (256 MiB written and read, 16 MiB blocks)\n"
           "                         before and after each run that uses it, and predict those\n"
           "                         runs again with the profile's disk links moved to that\n"
           "                         rate, to tell the model's error from the disk's drift (a\n"
           "                         short check: a disk with bursts shows its burst rate)\n"
           "  --remeasure N          a run measured under contention is measured again, at\n"
           "                         most N more times, keeping the first quiet one, else the\n"
           "                         least disturbed (default 2; 0: never)\n"
           "  --keep-disturbed       count runs measured under contention in the MAPEs and the\n"
           "                         primitives (by default they are left out, and the report\n"
           "                         says how many and why)\n"
           "  --search K             also the search's best K candidates (llmsim search, GPU\n"
           "                         batches up to 8, two of them at most), named search-1 ..;\n"
           "                         the ranking line says whether its best is the measured best\n"
           "  --allow-noisy          use a profile whose figures these policies read spread over\n"
           "                         10%% when measured (FLAGGED; refused by default)\n"
           "  --top N                primitives with the largest errors to list (default 8)\n"
           "  --synthetic SEED       seed of the engine's synthetic weights (default 1)\n"
           "  --offload-dir DIR      where the engine's disk tensors go (default $TMPDIR or /tmp)\n"
           "  --threads N            engine compute threads (default: every core)\n"
           "  --format table|json    human tables (default) or one JSON object\n"
           "  --db PATH              the store (default $LLMSIM_DB or ./llmsim.db)\n"
           "  --help                 this text\n\n"
           "Errors are signed percentages of the measured time: (predicted - measured) /\n"
           "measured x 100. MAPE: the mean of their absolute values over the policies.\n\n"
           "Every measurement records what it ran under (llmsim run --help): other processes'\n"
           "CPU time (the hypervisor's steal included) over the run, from /proc/stat less this\n"
           "process's own, and a short CPU and memory probe before and after. A run is\n"
           "disturbed when others took over 10%% of the machine's CPU time (wall x cores) or\n"
           "the probe moved by over 10%% on one thread (20%% on every thread); such runs are\n"
           "measured again (--remeasure) and left out of the MAPEs (--keep-disturbed); a\n"
           "second validate reuses the newest run that was not disturbed. JSON: per run\n"
           "disturbed (null: recorded before conditions were kept), excluded, conditions,\n"
           "measurements; disturbed_excluded; mape null when over none.\n\n"
           "Each run is also judged against its interval (the simulated total's p10-p90, from\n"
           "a calibration's held-out errors or the profile's spreads: llmsim predict --help),\n"
           "the tasks' median error is given, and the runs are ranked by throughput (Spearman's\n"
           "rho of predicted and simulated against measured; whether the predicted best is the\n"
           "measured best within 5%%). With a calibrated profile, the runs whose inputs it was\n"
           "fitted on are marked fit and left out. JSON: per run fit_seen, throughput_tok_s,\n"
           "interval; counted, fit_seen, task_median_error, coverage, ranking.\n\n"
           "llmsim validate --serving [the options of llmsim serve] [--preemption all]:\n"
           "serve-sim against serve on the same requests and settings (see llmsim validate\n"
           "--serving --help).\n");
}

/* validate's own options; the job parser takes the rest. */
typedef struct v_args {
    const char *policies_dir;
    bool use_grid;
    bool keep_disturbed;
    bool allow_noisy;
    long long top;
    long long search;       /* --search K: the search's best K candidates beside the policies */
    /* which of the job's options were given (else validate's defaults) */
    bool have_prompt, have_gen, have_workload, have_gbs, have_ngb;
} v_args;

/* The value v of option `which` (an index into lift_opts's names); false
 * when it is not valid. */
static bool take_valued(validate_opts *o, v_args *va, int which, const char *v)
{
    long long n = 0;
    bool ok = true;
    switch (which) {
    case 0: va->policies_dir = v; break;
    case 1: ok = cli_parse_ll(v, 1, 1000, &va->top); break;
    case 2: ok = cli_parse_ll(v, 0, LLONG_MAX, &n); o->engine.synthetic_seed = (uint64_t)n; break;
    case 3: o->engine.offload_parent = v; break;
    case 4: ok = cli_parse_ll(v, 1, 4096, &n); o->engine.threads = (int)n; break;
    case 5: ok = cli_parse_ll(v, 0, 10, &n); o->remeasure = (int)n; break;
    case 6: ok = cli_parse_ll(v, 1, VALIDATE_SEARCH_MAX, &va->search); break;
    }
    return ok;
}

/* argv without validate's own options (taken into o and va) into args.
 * Returns an exit status (0 with *help after --help). */
static int lift_opts(int argc, char **argv, validate_opts *o, v_args *va, char **args, int *nargs,
                     bool *help)
{
    static const char *const valued[] = {"--policies", "--top", "--synthetic", "--offload-dir",
                                         "--threads", "--remeasure", "--search"};
    *nargs = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--help") == 0) {
            usage();
            *help = true;
            return CLI_EXIT_OK;
        }
        bool *flag = strcmp(a, "--grid") == 0         ? &va->use_grid
                     : strcmp(a, "--rerun") == 0      ? &o->rerun
                     : strcmp(a, "--check-disk") == 0 ? &o->check_disk
                     : strcmp(a, "--keep-disturbed") == 0 ? &va->keep_disturbed
                     : strcmp(a, "--allow-noisy") == 0 ? &va->allow_noisy
                                                      : NULL;
        if (flag) {
            *flag = true;
            continue;
        }
        if (strcmp(a, "--policy") == 0 || strcmp(a, "--percent") == 0) {
            fprintf(stderr, "llmsim validate: %s is not an option of validate; put the policies in a "
                    "directory (--policies DIR) or use --grid\n", a);
            return CLI_EXIT_INPUT;
        }
        int which = cli_opt_valued("validate", argc, argv, &i, valued,
                                   (int)(sizeof valued / sizeof valued[0]), &v);
        if (which == -2)
            return CLI_EXIT_INPUT;
        if (which >= 0) {
            if (!take_valued(o, va, which, v))
                return cli_opt_invalid("validate", a, v);
            continue;
        }
        va->have_prompt |= strcmp(a, "--prompt-len") == 0;
        va->have_gen |= strcmp(a, "--gen-len") == 0;
        va->have_workload |= strcmp(a, "--workload") == 0;
        va->have_gbs |= strcmp(a, "--gpu-batch-size") == 0;
        va->have_ngb |= strcmp(a, "--num-gpu-batches") == 0;
        args[(*nargs)++] = argv[i];
    }
    return CLI_EXIT_OK;
}

/* opt and val into args unless the option was given. */
static void add_default(char **args, int *nargs, bool given, char *opt, char *val)
{
    if (!given) {
        args[(*nargs)++] = opt;
        args[(*nargs)++] = val;
    }
}

/* validate's defaults where the options are not given: a workload and a
 * block that a CPU runs in seconds; args NULL ended. */
static void add_defaults(const v_args *va, char **args, int *nargs)
{
    add_default(args, nargs, va->have_workload || va->have_prompt, "--prompt-len", "16");
    add_default(args, nargs, va->have_workload || va->have_gen, "--gen-len", "8");
    add_default(args, nargs, va->have_gbs, "--gpu-batch-size", "2");
    add_default(args, nargs, va->have_ngb, "--num-gpu-batches", "2");
    args[*nargs] = NULL;
}

/* Predict, simulate and run each policy (^C stops between steps). */
static int run_policies(const record_job *rj, validate_policy *ps, int nps, const validate_opts *o)
{
    struct sigaction old;
    cli_sigint_catch(&old);
    diag e;
    diag_clear(&e);
    int status = CLI_EXIT_OK;
    for (int i = 0; i < nps && !status; i++) {
        fault_signal_point(); /* tests interrupt here (common/fault.h) */
        if (cli_interrupted)
            break;
        llmsim_status st = validate_policy_run(rj, &ps[i], o, i, nps, &e);
        if (st && !cli_interrupted) {
            fprintf(stderr, "llmsim validate: policy %s: %s\n", ps[i].name, e.msg);
            status = cli_exit_status(st);
        }
    }
    cli_sigint_release(&old);
    if (cli_interrupted) {
        record_job vj = *rj; /* as a finished validate is recorded: no one policy */
        vj.policy = NULL;
        diag_clear(&e);
        bool rec = record_unfinished(&vj, "validate", "interrupted", NULL, &e) == LLMSIM_OK;
        fprintf(stderr, "llmsim validate: interrupted; the runs finished so far are in the store and "
                "will be reused%s\n", rec ? "; this one is recorded as interrupted" : "");
        return cli_interrupt_status();
    }
    return status;
}

/* The comparison of the policies' runs (the top primitives by error), as
 * JSON or tables. */
static int compare_and_print(const cli_job *job, const record_job *rj, const validate_policy *ps,
                             int nps, int top, bool keep_disturbed)
{
    diag e;
    diag_clear(&e);
    validate_report rep;
    if (validate_compare(rj, ps, nps, top, keep_disturbed, &rep, &e))
        return cli_fail("validate", &e);
    if (job->format == CLI_FORMAT_JSON) {
        cli_print_json(rep.json);
        rep.json = NULL;
    } else {
        print_table(job, ps, &rep, top);
    }
    validate_report_free(&rep);
    return CLI_EXIT_OK;
}

/* The search's best k candidates after the nps policies of *ps (grown). */
static int add_search(const record_job *rj, int k, validate_policy **ps, int *nps)
{
    strbuf skipped = {0};
    diag e;
    diag_clear(&e);
    validate_policy *found = NULL;
    int nfound = 0;
    llmsim_status st = validate_search_policies(rj, k, VALIDATE_SEARCH_BATCH, VALIDATE_SEARCH_BATCHES, &found, &nfound, &skipped, &e);
    for (const char *line = strbuf_str(&skipped); *line;) {
        const char *nl = strchr(line, '\n');
        fprintf(stderr, "llmsim validate: %.*s\n", (int)(nl - line), line);
        line = nl + 1;
    }
    strbuf_free(&skipped);
    if (st)
        return cli_fail("validate", &e);
    validate_policy *all = realloc(*ps, (size_t)(*nps + nfound) * sizeof *all);
    if (!all) {
        free(found);
        fprintf(stderr, "llmsim validate: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    memcpy(all + *nps, found, (size_t)nfound * sizeof *found);
    free(found);
    *ps = all;
    *nps += nfound;
    return CLI_EXIT_OK;
}

/* A profile whose figures these policies read spread over the limit is
 * refused unless --allow-noisy (then a warning). */
static int noisy_check(const cli_job *job, const validate_policy *ps, int nps, bool allow)
{
    unsigned uses = 0;
    for (int i = 0; i < nps; i++)
        uses |= placement_hw_uses(&job->model, &job->hw, &ps[i].p);
    return cli_flagged_check("validate", job->hw_spec, &job->hw, uses, !allow);
}

/* The policies, from the directory or the grid (and the search's); run,
 * compare and print. */
static int validate(const cli_job *job, const v_args *va, const validate_opts *o)
{
    record_job rj = cli_record_job(job);
    validate_policy *ps = NULL;
    int nps = 0;
    int status = va->policies_dir ? load_policy_dir(va->policies_dir, &ps, &nps)
                                  : grid(&rj, &ps, &nps);
    if (!status && va->search)
        status = add_search(&rj, (int)va->search, &ps, &nps);
    if (!status)
        status = noisy_check(job, ps, nps, va->allow_noisy);
    if (!status)
        status = run_policies(&rj, ps, nps, o);
    if (!status)
        status = compare_and_print(job, &rj, ps, nps, (int)va->top, va->keep_disturbed);
    free(ps);
    return status;
}

int cmd_validate(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--serving"))
            return cmd_validate_serving(argc, argv);
    validate_opts o;
    memset(&o, 0, sizeof o);
    cli_engine_opts_init(&o.engine);
    o.progress = isatty(2);
    o.remeasure = 2;
    v_args va = {.top = 8};
    char **args = malloc(sizeof(char *) * ((size_t)argc + 9));
    cli_job *job = calloc(1, sizeof *job);
    if (!args || !job) {
        fprintf(stderr, "llmsim validate: out of memory\n");
        free(args);
        free(job);
        return CLI_EXIT_FAIL;
    }
    int nargs;
    bool help = false;
    int status = lift_opts(argc, argv, &o, &va, args, &nargs, &help);
    if (!status && !help) {
        add_defaults(&va, args, &nargs);
        if (!va.policies_dir == !va.use_grid) {
            fprintf(stderr, "llmsim validate: give --policies DIR or --grid (one of them)\n");
            status = CLI_EXIT_INPUT;
        } else if (!(status = cli_job_parse(nargs, args, "validate", job, &help))) {
            cli_command_line(argc, argv, job->command, sizeof job->command);
            o.keep_disturbed = va.keep_disturbed;
            status = validate(job, &va, &o);
        }
    }
    free(args);
    free(job);
    return status;
}
