/*
 * cmd_validate — `llmsim validate`: for each policy, predict (the cost
 * model), simulate (the plan, event by event) and run (the engine) the same
 * workload; record all three; compare them end to end, stage by stage, and
 * task by task (the tasks share their plan ids), and record the comparison
 * as a 'validate' run that `report` plots and `calibrate` fits.
 *
 * What the store already holds for the same inputs on this host is reused
 * (a measurement takes minutes; a prediction of the same inputs is the same
 * number) unless --rerun.
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
#include "cli/commands.h"
#include "db/record.h"
#include "db/timeline.h"
#include "cli/validate.h"
#include "common/units.h"
#include "exec/engine.h"
#include "exec/offload.h"
#include "profiler/profiler.h"
#include "sim/sim.h"

/* ---- the policies */

/* The grid: a spread over the tiers and quantization settings. Fractions
 * are {primary, secondary, disk}: the GPU and the CPU on a machine with a
 * GPU; RAM (twice) and disk without one. */
typedef struct grid_entry {
    const char *name;
    double w[3], c[3], a[3];
    int wq, kq;      /* bits, group 64 */
    int batch_mul;   /* gpu_batch_size x, num_gpu_batches / */
    bool no_overlap;
    bool cpu_attention;
    bool gpu_only;   /* only where there is a GPU */
} grid_entry;

static const grid_entry grid[] = {
    {"all-primary", {1, 0, 0}, {1, 0, 0}, {1, 0, 0}, 0, 0, 1, false, false, false},
    {"weights-disk", {0, 0, 1}, {1, 0, 0}, {1, 0, 0}, 0, 0, 1, false, false, false},
    {"weights-half-disk", {0.5, 0, 0.5}, {1, 0, 0}, {1, 0, 0}, 0, 0, 1, false, false, false},
    {"kv-disk", {1, 0, 0}, {0, 0, 1}, {1, 0, 0}, 0, 0, 1, false, false, false},
    {"activations-disk", {1, 0, 0}, {1, 0, 0}, {0, 0, 1}, 0, 0, 1, false, false, false},
    {"mixed", {0.6, 0, 0.4}, {0.5, 0, 0.5}, {0.5, 0, 0.5}, 0, 0, 1, false, false, false},
    {"w4", {1, 0, 0}, {1, 0, 0}, {1, 0, 0}, 4, 0, 1, false, false, false},
    {"w8", {1, 0, 0}, {1, 0, 0}, {1, 0, 0}, 8, 0, 1, false, false, false},
    {"kv4", {1, 0, 0}, {1, 0, 0}, {1, 0, 0}, 0, 4, 1, false, false, false},
    {"kv8", {1, 0, 0}, {1, 0, 0}, {1, 0, 0}, 0, 8, 1, false, false, false},
    {"w4-kv4-disk", {0.5, 0, 0.5}, {0, 0, 1}, {1, 0, 0}, 4, 4, 1, false, false, false},
    {"w8-kv8-mixed", {0.7, 0, 0.3}, {0.5, 0, 0.5}, {1, 0, 0}, 8, 8, 1, false, false, false},
    {"weights-half-disk-serial", {0.5, 0, 0.5}, {1, 0, 0}, {1, 0, 0}, 0, 0, 1, true, false, false},
    {"wide-batch", {1, 0, 0}, {1, 0, 0}, {1, 0, 0}, 0, 0, 2, false, false, false},
    /* with a GPU: the CPU tier and delegated attention */
    {"weights-cpu", {0, 1, 0}, {1, 0, 0}, {1, 0, 0}, 0, 0, 1, false, false, true},
    {"kv-cpu-attention", {1, 0, 0}, {0, 1, 0}, {1, 0, 0}, 0, 0, 1, false, true, true},
    {"three-tier", {0.3, 0.4, 0.3}, {0.2, 0.5, 0.3}, {0.5, 0.5, 0}, 0, 0, 1, false, true, true},
};

static placement grid_placement(const double f[3], bool has_gpu)
{
    placement p = {{0, 0, 0}};
    if (has_gpu) {
        p.f[TIER_GPU] = f[0];
        p.f[TIER_CPU] = f[1];
    } else {
        p.f[TIER_CPU] = f[0] + f[1];
    }
    p.f[TIER_DISK] = f[2];
    return p;
}

static void grid_policy(const grid_entry *g, const policy *base, bool has_gpu, int group, policy *p)
{
    *p = *base;
    p->weights = grid_placement(g->w, has_gpu);
    p->kv_cache = grid_placement(g->c, has_gpu);
    p->activations = grid_placement(g->a, has_gpu);
    p->weight_quant = (quant){g->wq, g->wq ? group : 0};
    p->kv_quant = (quant){g->kq, g->kq ? group : 0};
    p->overlap = !g->no_overlap;
    p->cpu_attention = has_gpu && g->cpu_attention;
    if (g->batch_mul > 1) {
        p->gpu_batch_size = base->gpu_batch_size * g->batch_mul;
        p->num_gpu_batches = base->num_gpu_batches / g->batch_mul > 0 ? base->num_gpu_batches / g->batch_mul
                                                                      : 1;
    }
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.yaml / *.yml of dir, by name. */
static int load_policy_dir(const char *dir, v_policy **out, int *n)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "llmsim validate: --policies %s: cannot open the directory: %s\n", dir,
                strerror(errno));
        return CLI_EXIT_INPUT;
    }
    char **names = NULL;
    int count = 0, cap = 0, status = CLI_EXIT_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        bool yaml = (len > 5 && strcmp(de->d_name + len - 5, ".yaml") == 0) ||
                    (len > 4 && strcmp(de->d_name + len - 4, ".yml") == 0);
        if (!yaml || de->d_name[0] == '.')
            continue;
        if (count == cap) {
            int ncap = cap ? 2 * cap : 16;
            char **g = realloc(names, (size_t)ncap * sizeof *g);
            if (!g) {
                status = CLI_EXIT_FAIL;
                break;
            }
            names = g;
            cap = ncap;
        }
        if (!(names[count] = strdup(de->d_name))) {
            status = CLI_EXIT_FAIL;
            break;
        }
        count++;
    }
    closedir(d);
    if (!status && count == 0) {
        fprintf(stderr, "llmsim validate: --policies %s: no policy files (*.yaml) in the directory\n", dir);
        status = CLI_EXIT_INPUT;
    }
    v_policy *ps = status ? NULL : calloc((size_t)count, sizeof *ps);
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

/* The grid entries that fit: the cost model's peak memory within every
 * tier, and the engine's RAM within the profile's and what is free here. */
static int make_grid(const cli_job *job, v_policy **out, int *n)
{
    const bool has_gpu = job->hw.gpu.present;
    int total = (int)(sizeof grid / sizeof grid[0]);
    v_policy *ps = calloc((size_t)total, sizeof *ps);
    if (!ps) {
        fprintf(stderr, "llmsim validate: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    int count = 0;
    for (int i = 0; i < total; i++) {
        const grid_entry *g = &grid[i];
        if (g->gpu_only && !has_gpu)
            continue;
        if (!job->hw.disk.present && (g->w[2] > 0 || g->c[2] > 0 || g->a[2] > 0))
            continue;
        policy p;
        diag e;
        diag_clear(&e);
        cm_result r;
        memset(&r, 0, sizeof r);
        llmsim_status st = LLMSIM_OK;
        /* group 64 (FlexGen's), or the largest smaller one that divides the model's rows */
        for (int group = 64; group >= 8; group /= 2) {
            grid_policy(g, &job->policy, has_gpu, group, &p);
            cm_result_free(&r);
            memset(&r, 0, sizeof r);
            st = policy_validate(&p, g->name, &e);
            if (!st)
                st = cm_predict(&job->model, &job->hw, &p, &job->workload, &r, &e);
            if (st != LLMSIM_EINPUT || (!g->wq && !g->kq))
                break;
        }
        bool fits = !st && r.feasible;
        cm_result_free(&r);
        if (fits) {
            plan pl;
            if (plan_build(&job->model, &job->hw, &p, &job->workload, &pl, &e)) {
                fits = false;
            } else {
                double ram = sim_plan_peak(&pl, TIER_CPU);
                double avail = engine_free_ram_bytes(); /* what the engine will allow */
                fits = ram <= job->hw.cpu.memory_bytes && (avail <= 0 || ram <= avail);
                plan_free(&pl);
            }
        }
        if (!fits) {
            fprintf(stderr, "llmsim validate: grid: %s does not fit this machine%s%s; skipped\n", g->name,
                        st ? ": " : "", st ? e.msg : "");
            continue;
        }
        ps[count].p = p;
        snprintf(ps[count].name, sizeof ps[count].name, "%s", g->name);
        count++;
    }
    if (count == 0) {
        free(ps);
        fprintf(stderr, "llmsim validate: no policy of the grid fits %s for %s with this workload; use a "
                "smaller workload or give --policies DIR\n", job->hw.name, job->model.name);
        return CLI_EXIT_INPUT;
    }
    *out = ps;
    *n = count;
    return CLI_EXIT_OK;
}

/* ---- one policy: predict, simulate, run (or find them in the store) */

typedef struct v_opts {
    engine_opts engine;
    bool rerun;
    bool tty;
    bool check_disk; /* measure the disk around each run that uses it */
} v_opts;

/* The newest run of kind with the job's inputs; a measurement also with the
 * same engine settings (threads, synthetic seed, real weights: never reused). */
static llmsim_status find(const cli_job *job, const char *kind, const v_opts *o, int64_t *id, diag *e)
{
    record_job rj = cli_record_job(job);
    *id = 0;
    if (o->rerun)
        return LLMSIM_OK;
    store *db = NULL;
    llmsim_status st = store_open(job->db_path, &db, e);
    record_hashes h;
    if (!st)
        st = record_inputs(db, &rj, &h, e);
    if (!st)
        st = store_find_run(db, kind, h.model, h.hw, h.policy, h.workload, id, e);
    if (!st && *id && strcmp(kind, "measure") == 0) {
        double threads = v_run_metric(db, *id, "engine_threads", e, &st);
        double seed = st ? NAN : v_run_metric(db, *id, "synthetic_seed", e, &st);
        if (!st && !(threads == (double)o->engine.threads && seed == (double)o->engine.synthetic_seed))
            *id = 0;
    }
    store_close(db);
    return st;
}

static llmsim_status do_predict(const cli_job *job, int64_t *id, diag *e)
{
    record_job rj = cli_record_job(job);
    cm_result r;
    llmsim_status st = cm_predict(&job->model, &job->hw, &job->policy, &job->workload, &r, e);
    if (!st) {
        cJSON *obj = cli_prediction_json(job, &r);
        char *text = cJSON_PrintUnformatted(obj);
        st = text ? record_prediction(&rj, "predict", &r, text, id, e)
                  : diag_set(e, LLMSIM_EFAIL, "out of memory");
        free(text);
        cJSON_Delete(obj);
    }
    cm_result_free(&r);
    return st;
}

static llmsim_status do_simulate(const cli_job *job, const plan *pl, int64_t *id, diag *e)
{
    record_job rj = cli_record_job(job);
    double cap[TIER_COUNT];
    cm_hw_capacities(&job->hw, cap);
    sim_result r;
    llmsim_status st = sim_run(pl, cap, false, &r, e);
    if (!st) {
        sim_totals t;
        cJSON *obj = NULL;
        st = record_simulation(&rj, pl, &r, &t, &obj, id, e);
        cJSON_Delete(obj);
    }
    sim_result_free(&r);
    return st;
}

static bool plan_uses_disk(const plan *pl)
{
    for (size_t i = 0; i < pl->ntasks; i++)
        if (pl->tasks[i].res == PLAN_RES_DISK)
            return true;
    return false;
}

/* --check-disk: the disk's rates before and after a run, combined as the
 * rate that moves the same bytes in the mean of the two times. */
static llmsim_status disk_check(const v_opts *o, const char *when, double rate[2], double prev[2], diag *e)
{
    llmsim_status st = profile_disk_now(o->engine.offload_parent, &rate[0], &rate[1], e);
    if (st)
        return st;
    if (o->tty)
        fprintf(stderr, "llmsim validate: the disk %s the run: read %.2f GB/s, write %.2f GB/s\n", when,
                rate[0] / 1e9, rate[1] / 1e9);
    if (prev)
        for (int k = 0; k < 2; k++)
            rate[k] = 2 / (1 / rate[k] + 1 / prev[k]);
    return LLMSIM_OK;
}

static llmsim_status do_measure(const cli_job *job, const plan *pl, const v_opts *o, int64_t *id, diag *e)
{
    record_job rj = cli_record_job(job);
    engine_result er;
    double before[2] = {0, 0}, now[2] = {0, 0};
    const bool check = o->check_disk && plan_uses_disk(pl);
    llmsim_status st = check ? disk_check(o, "before", before, NULL, e) : LLMSIM_OK;
    if (st)
        return st;
    st = engine_run(&job->model, &job->hw, &job->policy, &job->workload, pl, &o->engine, &er, e);
    if (!st && check && !er.interrupted) { /* a failed check loses the check, not the run */
        diag ce;
        diag_clear(&ce);
        if (disk_check(o, "after", now, before, &ce) == LLMSIM_OK)
            memcpy(er.disk_now_Bps, now, sizeof now);
        else
            fprintf(stderr, "llmsim validate: the disk check after the run failed (%s); the run is kept "
                    "without it\n", ce.msg);
    }
    if (!st && er.interrupted)
        st = diag_set(e, LLMSIM_EFAIL, "interrupted");
    if (!st) {
        sim_result r;
        sim_totals t;
        cJSON *obj = NULL;
        st = record_measurement(&rj, pl, &er, &o->engine, &r, &t, &obj, id, e);
        cJSON_Delete(obj);
        sim_result_free(&r);
    }
    engine_result_free(&er);
    return st;
}

/* Predict, simulate and measure one policy (each unless the store has it). */
static llmsim_status validate_one(cli_job *job, v_policy *vp, const v_opts *o, int index, int count,
                                  diag *e)
{
    job->policy = vp->p;
    plan pl;
    llmsim_status st = plan_build(&job->model, &job->hw, &job->policy, &job->workload, &pl, e);
    if (st)
        return st;
    int64_t *ids[3] = {&vp->id_pred, &vp->id_sim, &vp->id_meas};
    static const char *const kinds[3] = {"predict", "simulate", "measure"};
    for (int k = 0; k < 3 && !st; k++) {
        if ((st = find(job, kinds[k], o, ids[k], e)))
            break;
        vp->reused[k] = *ids[k] != 0;
        if (vp->reused[k])
            continue;
        if (o->tty)
            fprintf(stderr, "llmsim validate: [%d/%d] %s: %s ...\n", index + 1, count, vp->name,
                    k == 0 ? "predicting" : k == 1 ? "simulating" : "running on the engine");
        st = k == 0 ? do_predict(job, ids[k], e) : k == 1 ? do_simulate(job, &pl, ids[k], e)
                                                          : do_measure(job, &pl, o, ids[k], e);
    }
    if (!st && o->tty && vp->reused[0] && vp->reused[1] && vp->reused[2])
        fprintf(stderr, "llmsim validate: [%d/%d] %s: in the store (runs %lld, %lld, %lld)\n", index + 1,
                count, vp->name, (long long)vp->id_pred, (long long)vp->id_sim, (long long)vp->id_meas);
    plan_free(&pl);
    return st;
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
           "  --top N                primitives with the largest errors to list (default 8)\n"
           "  --synthetic SEED       seed of the engine's synthetic weights (default 1)\n"
           "  --offload-dir DIR      where the engine's disk tensors go (default $TMPDIR or /tmp)\n"
           "  --threads N            engine compute threads (default: every core)\n"
           "  --format table|json    human tables (default) or one JSON object\n"
           "  --db PATH              the store (default $LLMSIM_DB or ./llmsim.db)\n"
           "  --help                 this text\n\n"
           "Errors are signed percentages of the measured time: (predicted - measured) /\n"
           "measured x 100. MAPE: the mean of their absolute values over the policies.\n");
}

int cmd_validate(int argc, char **argv)
{
    v_opts o;
    memset(&o, 0, sizeof o);
    o.engine.synthetic_seed = 1;
    o.engine.prompt_seed = 1;
    o.engine.sample_seed = 1;
    o.engine.top_p = 1;
    o.engine.interrupt = &cli_interrupted;
    o.tty = isatty(2);
    const char *policies_dir = NULL;
    bool use_grid = false, have_prompt = false, have_gen = false, have_workload = false, have_gbs = false,
         have_ngb = false;
    long long top = 8;
    char **args = malloc(sizeof(char *) * ((size_t)argc + 9));
    cli_job *job = calloc(1, sizeof *job);
    v_policy *ps = NULL;
    int nps = 0, status = CLI_EXIT_INPUT;
    if (!args || !job) {
        fprintf(stderr, "llmsim validate: out of memory\n");
        free(args);
        free(job);
        return CLI_EXIT_FAIL;
    }
    int nargs = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            usage();
            status = CLI_EXIT_OK;
            goto out;
        }
        if (strcmp(a, "--grid") == 0) {
            use_grid = true;
            continue;
        }
        if (strcmp(a, "--rerun") == 0) {
            o.rerun = true;
            continue;
        }
        if (strcmp(a, "--check-disk") == 0) {
            o.check_disk = true;
            continue;
        }
        if (strcmp(a, "--policy") == 0 || strcmp(a, "--percent") == 0) {
            fprintf(stderr, "llmsim validate: %s is not an option of validate; put the policies in a "
                    "directory (--policies DIR) or use --grid\n", a);
            goto out;
        }
        static const char *const valued[] = {"--policies", "--top", "--synthetic", "--offload-dir",
                                             "--threads"};
        int which = -1;
        for (int k = 0; k < (int)(sizeof valued / sizeof valued[0]); k++)
            if (strcmp(a, valued[k]) == 0)
                which = k;
        if (which < 0) {
            have_prompt |= strcmp(a, "--prompt-len") == 0;
            have_gen |= strcmp(a, "--gen-len") == 0;
            have_workload |= strcmp(a, "--workload") == 0;
            have_gbs |= strcmp(a, "--gpu-batch-size") == 0;
            have_ngb |= strcmp(a, "--num-gpu-batches") == 0;
            args[nargs++] = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "llmsim validate: %s needs a value (see llmsim validate --help)\n", a);
            goto out;
        }
        const char *v = argv[++i];
        long long n = 0;
        bool ok = true;
        switch (which) {
        case 0: policies_dir = v; break;
        case 1: ok = cli_parse_ll(v, 1, 1000, &top); break;
        case 2: ok = cli_parse_ll(v, 0, LLONG_MAX, &n); o.engine.synthetic_seed = (uint64_t)n; break;
        case 3: o.engine.offload_parent = v; break;
        case 4: ok = cli_parse_ll(v, 1, 4096, &n); o.engine.threads = (int)n; break;
        }
        if (!ok) {
            fprintf(stderr, "llmsim validate: %s '%s' is not valid (see llmsim validate --help)\n", a, v);
            goto out;
        }
    }
    /* validate's defaults: a workload and a block that a CPU runs in seconds */
    if (!have_workload && !have_prompt) {
        args[nargs++] = "--prompt-len";
        args[nargs++] = "16";
    }
    if (!have_workload && !have_gen) {
        args[nargs++] = "--gen-len";
        args[nargs++] = "8";
    }
    if (!have_gbs) {
        args[nargs++] = "--gpu-batch-size";
        args[nargs++] = "2";
    }
    if (!have_ngb) {
        args[nargs++] = "--num-gpu-batches";
        args[nargs++] = "2";
    }
    args[nargs] = NULL;
    if (!policies_dir == !use_grid) {
        fprintf(stderr, "llmsim validate: give --policies DIR or --grid (one of them)\n");
        goto out;
    }
    bool help = false;
    if ((status = cli_job_parse(nargs, args, "validate", job, &help)))
        goto out;
    cli_command_line(argc, argv, job->command, sizeof job->command);
    status = policies_dir ? load_policy_dir(policies_dir, &ps, &nps) : make_grid(job, &ps, &nps);
    if (status)
        goto out;

    struct sigaction old;
    cli_sigint_catch(&old);
    diag e;
    diag_clear(&e);
    for (int i = 0; i < nps && !status; i++) {
        if (cli_interrupted)
            break;
        llmsim_status st = validate_one(job, &ps[i], &o, i, nps, &e);
        if (st && !cli_interrupted) {
            fprintf(stderr, "llmsim validate: policy %s: %s\n", ps[i].name, e.msg);
            status = cli_exit_status(st);
        }
    }
    cli_sigint_release(&old);
    if (cli_interrupted) {
        fprintf(stderr, "llmsim validate: interrupted; the runs finished so far are in the store and "
                "will be reused\n");
        status = 130;
        goto out;
    }
    if (status)
        goto out;
    status = v_compare_and_report(job, ps, nps, (int)top);
out:
    free(ps);
    free(args);
    free(job);
    return status;
}
