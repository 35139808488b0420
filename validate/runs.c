/*
 * runs — the policies validate compares and their runs: the grid for a
 * machine, and for one policy a prediction, a simulation and a measurement,
 * each recorded, or found in the store when it holds them (validate.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/record.h"
#include "db/result_json.h"
#include "db/timeline.h"
#include "profiler/profiler.h"
#include "sim/sim.h"
#include "validate/validate.h"

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

/* Entry g for the job: the policy with group 64 (FlexGen's), or the largest
 * smaller group that divides the model's rows; *fits when it fits the
 * machine (the cost model's peak within every tier, the engine's RAM within
 * the profile's and what is free here), else e says why when it can. */
static void grid_entry_try(const record_job *job, const grid_entry *g, policy *p, bool *fits,
                           diag *e)
{
    const bool has_gpu = job->hw->gpu.present;
    cm_result r;
    memset(&r, 0, sizeof r);
    llmsim_status st = LLMSIM_OK;
    for (int group = 64; group >= 8; group /= 2) {
        grid_policy(g, job->policy, has_gpu, group, p);
        cm_result_free(&r);
        memset(&r, 0, sizeof r);
        st = policy_validate(p, g->name, e);
        if (!st)
            st = cm_predict(job->model, job->hw, p, job->workload, &r, e);
        if (st != LLMSIM_EINPUT || (!g->wq && !g->kq))
            break;
    }
    *fits = !st && r.feasible;
    cm_result_free(&r);
    if (!st)
        diag_clear(e);
    plan pl;
    if (!*fits)
        return;
    if (plan_build(job->model, job->hw, p, job->workload, &pl, e)) {
        *fits = false;
        diag_clear(e);
        return;
    }
    double ram = sim_plan_peak(&pl, TIER_CPU);
    double avail = engine_free_ram_bytes(); /* what the engine will allow */
    *fits = ram <= job->hw->cpu.memory_bytes && (avail <= 0 || ram <= avail);
    diag_clear(e);
    plan_free(&pl);
}

llmsim_status validate_grid(const record_job *job, validate_policy **out, int *n, strbuf *skipped,
                            diag *e)
{
    const bool has_gpu = job->hw->gpu.present;
    int total = (int)(sizeof grid / sizeof grid[0]);
    validate_policy *ps = calloc((size_t)total, sizeof *ps);
    if (!ps)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    int count = 0;
    for (int i = 0; i < total; i++) {
        const grid_entry *g = &grid[i];
        if (g->gpu_only && !has_gpu)
            continue;
        if (!job->hw->disk.present && (g->w[2] > 0 || g->c[2] > 0 || g->a[2] > 0))
            continue;
        policy p;
        bool fits;
        diag why;
        diag_clear(&why);
        grid_entry_try(job, g, &p, &fits, &why);
        if (!fits) {
            strbuf_printf(skipped, "grid: %s does not fit this machine%s%s; skipped\n", g->name,
                          why.status ? ": " : "", why.status ? why.msg : "");
            continue;
        }
        ps[count].p = p;
        snprintf(ps[count].name, sizeof ps[count].name, "%s", g->name);
        count++;
    }
    if (count == 0) {
        free(ps);
        return diag_set(e, LLMSIM_EINPUT, "no policy of the grid fits %s for %s with this workload; use "
                        "a smaller workload or give --policies DIR", job->hw->name, job->model->name);
    }
    *out = ps;
    *n = count;
    return LLMSIM_OK;
}

/* ---- one policy: predict, simulate, run (or find them in the store) */

/* Of the measure runs ids[0..n) (newest first), the newest with the same
 * engine settings (threads, synthetic seed) that is not known to be
 * disturbed (any, with keep_disturbed), else the newest with those
 * settings; *id = 0 when none. */
static llmsim_status pick_measure(store *db, const int64_t *ids, int n, const validate_opts *o,
                                  int64_t *id, diag *e)
{
    llmsim_status st = LLMSIM_OK;
    for (int i = 0; i < n && !st; i++) {
        double threads = validate_run_metric(db, ids[i], "engine_threads", e, &st);
        double seed = st ? NAN : validate_run_metric(db, ids[i], "synthetic_seed", e, &st);
        if (st || !(threads == (double)o->engine.threads && seed == (double)o->engine.synthetic_seed))
            continue;
        exec_conditions c;
        if ((st = validate_run_conditions(db, ids[i], &c, e)))
            break;
        if (!*id)
            *id = ids[i];
        if (o->keep_disturbed || !c.measured || !cond_judge(&c, NULL, 0)) {
            *id = ids[i];
            break;
        }
    }
    return st;
}

/* The newest run of kind with the job's inputs; a measurement also with the
 * same engine settings (threads, synthetic seed, real weights: never reused),
 * one not disturbed preferred (pick_measure). */
static llmsim_status find(const record_job *job, const char *kind, const validate_opts *o, int64_t *id,
                          diag *e)
{
    *id = 0;
    if (o->rerun)
        return LLMSIM_OK;
    enum { CANDIDATES = 16 }; /* a measurement and its repeats, a few times over */
    const bool measure = strcmp(kind, "measure") == 0;
    int64_t ids[CANDIDATES];
    int n = 0;
    store *db = NULL;
    llmsim_status st = store_open(job->db_path, &db, e);
    record_hashes h;
    if (!st)
        st = record_inputs(db, job, &h, e);
    if (!st)
        st = store_find_runs(db, kind, h.model, h.hw, h.policy, h.workload, ids,
                             measure ? CANDIDATES : 1, &n, e);
    if (!st && measure)
        st = pick_measure(db, ids, n, o, id, e);
    else if (!st && n)
        *id = ids[0];
    store_close(db);
    return st;
}

static llmsim_status do_predict(const record_job *job, int64_t *id, diag *e)
{
    cm_result r;
    llmsim_status st = cm_predict(job->model, job->hw, job->policy, job->workload, &r, e);
    if (!st) {
        cJSON *obj = result_prediction_json(job, &r);
        char *text = cJSON_PrintUnformatted(obj);
        st = text ? record_prediction(job, "predict", &r, text, id, e)
                  : diag_set(e, LLMSIM_EFAIL, "out of memory");
        free(text);
        cJSON_Delete(obj);
    }
    cm_result_free(&r);
    return st;
}

static llmsim_status do_simulate(const record_job *job, const plan *pl, int64_t *id, diag *e)
{
    double cap[TIER_COUNT];
    cm_hw_capacities(job->hw, cap);
    sim_result r;
    llmsim_status st = sim_run(pl, cap, true, &r, e); /* the memory samples are recorded */
    if (!st) {
        sim_totals t;
        cJSON *obj = NULL;
        st = record_simulation(job, pl, &r, &t, &obj, id, e);
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
static llmsim_status disk_check(const validate_opts *o, const char *when, double rate[2], double prev[2], diag *e)
{
    llmsim_status st = profile_disk_now(o->engine.offload_parent, &rate[0], &rate[1], e);
    if (st)
        return st;
    if (o->progress)
        fprintf(stderr, "llmsim validate: the disk %s the run: read %.2f GB/s, write %.2f GB/s\n", when,
                rate[0] / 1e9, rate[1] / 1e9);
    if (prev)
        for (int k = 0; k < 2; k++)
            rate[k] = 2 / (1 / rate[k] + 1 / prev[k]);
    return LLMSIM_OK;
}

/* One run on the engine, bracketed by its conditions (and with --check-disk
 * by the disk's rates), recorded as *id; c gets its conditions. */
static llmsim_status measure_once(const record_job *job, const plan *pl, const validate_opts *o,
                                  int64_t *id, exec_conditions *c, diag *e)
{
    engine_result er;
    double before[2] = {0, 0}, now[2] = {0, 0};
    const bool check = o->check_disk && plan_uses_disk(pl);
    llmsim_status st = check ? disk_check(o, "before", before, NULL, e) : LLMSIM_OK;
    if (st)
        return st;
    cond_begin(c, o->engine.threads);
    st = engine_run(job->model, job->hw, job->policy, job->workload, pl, &o->engine, &er, e);
    cond_end(c, st != LLMSIM_OK || er.interrupted);
    er.cond = *c;
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
        st = record_measurement(job, pl, &er, &o->engine, &r, &t, &obj, id, e);
        cJSON_Delete(obj);
        sim_result_free(&r);
    }
    engine_result_free(&er);
    return st;
}

/* Measure vp; while the run is disturbed, say so and measure again, at most
 * o->remeasure more times: the first quiet run is kept, else the least
 * disturbed (cond_severity). */
static llmsim_status do_measure(const record_job *job, const plan *pl, const validate_opts *o,
                                validate_policy *vp, diag *e)
{
    double best = INFINITY;
    vp->measurements = 0;
    for (int k = 0; k <= o->remeasure; k++) {
        exec_conditions c;
        int64_t id = 0;
        llmsim_status st = measure_once(job, pl, o, &id, &c, e);
        if (st)
            return st;
        vp->measurements++;
        char why[512];
        if (!cond_judge(&c, why, sizeof why)) {
            vp->id_meas = id;
            return LLMSIM_OK;
        }
        double sev = cond_severity(&c);
        if (sev < best || !vp->id_meas) {
            best = sev;
            vp->id_meas = id;
        }
        if (k < o->remeasure)
            fprintf(stderr, "llmsim validate: %s: run %lld was measured under contention (%s); "
                    "measuring again (%d of at most %d more)\n", vp->name, (long long)id, why, k + 1,
                    o->remeasure);
        else if (vp->measurements > 1)
            fprintf(stderr, "llmsim validate: %s: run %lld was measured under contention (%s); "
                    "keeping run %lld, the least disturbed of the %d\n", vp->name, (long long)id,
                    why, (long long)vp->id_meas, vp->measurements);
        else
            fprintf(stderr, "llmsim validate: %s: run %lld was measured under contention (%s); "
                    "kept, not measured again (--remeasure 0)\n", vp->name, (long long)id, why);
    }
    return LLMSIM_OK;
}

/* Predict, simulate and measure one policy (each unless the store has it). */
llmsim_status validate_policy_run(const record_job *base, validate_policy *vp, const validate_opts *o,
                                  int index, int count, diag *e)
{
    record_job one = *base;
    one.policy = &vp->p;
    const record_job *job = &one;
    plan pl;
    llmsim_status st = plan_build(job->model, job->hw, job->policy, job->workload, &pl, e);
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
        if (o->progress)
            fprintf(stderr, "llmsim validate: [%d/%d] %s: %s ...\n", index + 1, count, vp->name,
                    k == 0 ? "predicting" : k == 1 ? "simulating" : "running on the engine");
        st = k == 0 ? do_predict(job, ids[k], e) : k == 1 ? do_simulate(job, &pl, ids[k], e)
                                                          : do_measure(job, &pl, o, vp, e);
    }
    if (!st && o->progress && vp->reused[0] && vp->reused[1] && vp->reused[2])
        fprintf(stderr, "llmsim validate: [%d/%d] %s: in the store (runs %lld, %lld, %lld)\n", index + 1,
                count, vp->name, (long long)vp->id_pred, (long long)vp->id_sim, (long long)vp->id_meas);
    plan_free(&pl);
    return st;
}
