/*
 * policy — YAML load/save, the --percent shorthand and validation. See
 * policy.h, and README.md ("Policies") for the format.
 */
#include "policies/policy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/yamldoc.h"

const char *const tier_names[TIER_COUNT] = {"gpu", "cpu", "disk"};
const char *const preemption_names[3] = {"swap", "recompute", "adaptive"};
const char *const scheduler_names[2] = {"fcfs", "fair"};

/* Fractions may be off by rounding in a hand-written file, not more. */
#define FRACTION_SUM_TOLERANCE 1e-6

void policy_init(policy *p)
{
    memset(p, 0, sizeof *p);
    p->weights.f[TIER_GPU] = 1.0;
    p->kv_cache.f[TIER_GPU] = 1.0;
    p->activations.f[TIER_GPU] = 1.0;
    p->gpu_batch_size = 1;
    p->num_gpu_batches = 1;
    p->overlap = true;
    p->pin_weights = true;
    p->preempt = PREEMPT_RECOMPUTE;
    p->sched = SCHED_FCFS;
    p->kv_block_size = 16;
}

/* The first broken rule: a message without location and the key it concerns. */
static bool policy_rule_broken(const void *value, const char **key, char *msg, size_t len)
{
    const policy *p = value;
    const placement *pl[3] = {&p->weights, &p->kv_cache, &p->activations};
    const char *names[3] = {"weights", "kv_cache", "activations"};
    for (int i = 0; i < 3; i++) {
        double sum = 0;
        *key = names[i];
        for (int t = 0; t < TIER_COUNT; t++) {
            if (!(pl[i]->f[t] >= 0 && pl[i]->f[t] <= 1)) {
                snprintf(msg, len, "%s.%s = %g must be between 0 and 1", names[i], tier_names[t],
                         pl[i]->f[t]);
                return true;
            }
            sum += pl[i]->f[t];
        }
        if (fabs(sum - 1.0) > FRACTION_SUM_TOLERANCE) {
            snprintf(msg, len, "the %s fractions sum to %g; gpu + cpu + disk must be 1", names[i], sum);
            return true;
        }
    }
    *key = "gpu_batch_size";
    if (p->gpu_batch_size < 1 || p->num_gpu_batches < 1) {
        snprintf(msg, len, "gpu_batch_size and num_gpu_batches must be at least 1");
        return true;
    }
    if ((long long)p->gpu_batch_size * p->num_gpu_batches > (1LL << 24)) {
        snprintf(msg, len, "a block of %d x %d = %lld sequences is too large (at most %lld)",
                 p->gpu_batch_size, p->num_gpu_batches,
                 (long long)p->gpu_batch_size * p->num_gpu_batches, 1LL << 24);
        return true;
    }
    const quant *q[2] = {&p->weight_quant, &p->kv_quant};
    const char *qn[2] = {"weight_quant", "kv_quant"};
    for (int i = 0; i < 2; i++) {
        *key = qn[i];
        if (q[i]->bits == 0)
            continue;
        if (q[i]->bits != 4 && q[i]->bits != 8) {
            snprintf(msg, len, "%s bits must be 4 or 8, got %d", qn[i], q[i]->bits);
            return true;
        }
        if (q[i]->group_size < 2 || q[i]->group_size > 65536 || q[i]->group_size % 2) {
            snprintf(msg, len, "%s group_size must be an even number from 2 to 65536, got %d", qn[i],
                     q[i]->group_size);
            return true;
        }
    }
    *key = "serving";
    if (p->kv_block_size < 1 || p->kv_block_size > 65536) {
        snprintf(msg, len, "kv_block_size must be 1..65536");
        return true;
    }
    return false;
}

llmsim_status policy_validate(const policy *p, const char *where, diag *e)
{
    return yd_rules_check(policy_rule_broken, p, where, e);
}

/* ---- YAML */

static llmsim_status load_placement(yd_map *root, const char *key, placement *pl, diag *e)
{
    yd_map m;
    llmsim_status st = yd_field_map(root, key, YD_REQUIRED, &m, e);
    if (st)
        return st;
    memset(pl, 0, sizeof *pl);
    double sum = 0;
    for (int t = 0; t < TIER_COUNT; t++) {
        if ((st = yd_field_double(&m, tier_names[t], YD_OPTIONAL, 0.0, 1.0, &pl->f[t], e))) {
            yd_map_discard(&m);
            return st;
        }
        sum += pl->f[t];
    }
    /* an unknown key first: {gpu: 0.2, cpus: 0.8} is a typo, not a bad sum */
    yaml_node_t *node = m.node;
    if ((st = yd_map_close(&m, e)))
        return st;
    if (fabs(sum - 1.0) > FRACTION_SUM_TOLERANCE)
        return yd_error(m.doc, node, e,
                        "the %s fractions sum to %g; gpu + cpu + disk must be 1 (omitted tiers are 0)",
                        key, sum);
    return LLMSIM_OK;
}

static llmsim_status load_quant(yd_map *root, const char *key, quant *q, diag *e)
{
    yaml_node_t *n;
    llmsim_status st = yd_field_node(root, key, YD_OPTIONAL, &n, e);
    if (st || !n)
        return st;
    q->bits = 0;
    q->group_size = 0;
    if (yd_scalar(n) && strcmp(yd_scalar(n), "none") == 0)
        return LLMSIM_OK;
    if (n->type != YAML_MAPPING_NODE)
        return yd_error(root->doc, n, e, "'%s' must be 'none' or a mapping such as "
                        "{bits: 4, group_size: 64}", key);
    yd_map m;
    if ((st = yd_map_open(&m, root->doc, n, key, e)))
        return st;
    long long bits = 0, group = 64;
    if ((st = yd_field_int(&m, "bits", YD_REQUIRED, 1, 64, &bits, e)) ||
        (st = yd_field_int(&m, "group_size", YD_OPTIONAL, 1, 1 << 20, &group, e))) {
        yd_map_discard(&m);
        return st;
    }
    if (bits != 4 && bits != 8) {
        st = yd_error(root->doc, yd_map_get(&m, "bits"), e, "'bits' must be 4 or 8, got %lld", bits);
        yd_map_discard(&m);
        return st;
    }
    if (group < 2 || group % 2) {
        st = yd_error(root->doc, n, e, "'group_size' must be an even number of at least 2, got %lld",
                      group);
        yd_map_discard(&m);
        return st;
    }
    q->bits = (int)bits;
    q->group_size = (int)group;
    return yd_map_close(&m, e);
}

/* serving (of a policy): preemption, scheduler and KV block size. */
static llmsim_status read_serving(yd_map *m, void *out, diag *e)
{
    policy *p = out;
    int pre = (int)p->preempt, sch = (int)p->sched;
    long long bs = p->kv_block_size;
    llmsim_status st;
    if ((st = yd_field_enum(m, "preemption", YD_OPTIONAL, preemption_names, 3, &pre, e)) ||
        (st = yd_field_enum(m, "scheduler", YD_OPTIONAL, scheduler_names, 2, &sch, e)) ||
        (st = yd_field_int(m, "kv_block_size", YD_OPTIONAL, 1, 65536, &bs, e)))
        return st;
    p->preempt = (preemption)pre;
    p->sched = (scheduler)sch;
    p->kv_block_size = (int)bs;
    return LLMSIM_OK;
}

static llmsim_status policy_load_yaml_doc(const char *path, const char *text, policy *p, diag *e)
{
    policy_init(p);
    yd_doc doc;
    yd_map root;
    llmsim_status st = yd_open_text(&doc, &root, path, text, "the policy", "policy", 1, e);
    if (st)
        return st;
    long long gbs = 1, ngb = 1;
    if ((st = load_placement(&root, "weights", &p->weights, e)) ||
        (st = load_placement(&root, "kv_cache", &p->kv_cache, e)) ||
        (st = load_placement(&root, "activations", &p->activations, e)) ||
        (st = yd_field_int(&root, "gpu_batch_size", YD_REQUIRED, 1, 1 << 20, &gbs, e)) ||
        (st = yd_field_int(&root, "num_gpu_batches", YD_REQUIRED, 1, 1 << 20, &ngb, e)) ||
        (st = load_quant(&root, "weight_quant", &p->weight_quant, e)) ||
        (st = load_quant(&root, "kv_quant", &p->kv_quant, e)) ||
        (st = yd_field_bool(&root, "cpu_attention", YD_OPTIONAL, &p->cpu_attention, e)) ||
        (st = yd_field_bool(&root, "overlap", YD_OPTIONAL, &p->overlap, e)) ||
        (st = yd_field_bool(&root, "pin_weights", YD_OPTIONAL, &p->pin_weights, e)) ||
        (st = yd_field_read(&root, "serving", YD_OPTIONAL, read_serving, p, e))) {
        yd_map_discard(&root);
        yd_free(&doc);
        return st;
    }
    p->gpu_batch_size = (int)gbs;
    p->num_gpu_batches = (int)ngb;
    if ((st = yd_rules_check_at(policy_rule_broken, p, &root, e)))
        yd_map_discard(&root);
    else
        st = yd_map_close(&root, e);
    yd_free(&doc);
    return st;
}

/* ---- the --percent shorthand */

llmsim_status policy_from_percent(const char *const args[6], policy *p, diag *e)
{
    static const char *what[6] = {"weights GPU%", "weights CPU%", "cache GPU%",
                                  "cache CPU%",   "activations GPU%", "activations CPU%"};
    double v[6];
    for (int i = 0; i < 6; i++) {
        char *end;
        errno = 0;
        v[i] = strtod(args[i], &end);
        if (end == args[i] || *end || errno == ERANGE || !isfinite(v[i]) || v[i] < 0 || v[i] > 100)
            return diag_set(e, LLMSIM_EINPUT, "--percent: %s = '%s' must be a number from 0 to 100",
                            what[i], args[i]);
    }
    placement *pl[3] = {&p->weights, &p->kv_cache, &p->activations};
    for (int i = 0; i < 3; i++) {
        double g = v[2 * i], c = v[2 * i + 1];
        if (g + c > 100 + 1e-9)
            return diag_set(e, LLMSIM_EINPUT, "--percent: %s + %s = %g exceeds 100", what[2 * i],
                            what[2 * i + 1], g + c);
        pl[i]->f[TIER_GPU] = g / 100.0;
        pl[i]->f[TIER_CPU] = c / 100.0;
        pl[i]->f[TIER_DISK] = fmax(0.0, 1.0 - (g + c) / 100.0);
    }
    return LLMSIM_OK;
}

/* ---- canonical YAML */

static void save_quant(strbuf *b, const char *key, const quant *q)
{
    if (q->bits == 0)
        strbuf_printf(b, "%s: none\n", key);
    else
        strbuf_printf(b, "%s: {bits: %d, group_size: %d}\n", key, q->bits, q->group_size);
}

void policy_save(const policy *p, strbuf *b)
{
    const placement *pl[3] = {&p->weights, &p->kv_cache, &p->activations};
    const char *names[3] = {"weights", "kv_cache", "activations"};
    strbuf_puts(b, "llmsim: policy/1\n");
    for (int i = 0; i < 3; i++)
        strbuf_printf(b, "%s: {gpu: %.17g, cpu: %.17g, disk: %.17g}\n", names[i], pl[i]->f[TIER_GPU],
                      pl[i]->f[TIER_CPU], pl[i]->f[TIER_DISK]);
    strbuf_printf(b, "gpu_batch_size: %d\nnum_gpu_batches: %d\n", p->gpu_batch_size,
                  p->num_gpu_batches);
    save_quant(b, "weight_quant", &p->weight_quant);
    save_quant(b, "kv_quant", &p->kv_quant);
    strbuf_printf(b, "cpu_attention: %s\noverlap: %s\npin_weights: %s\n",
                  p->cpu_attention ? "true" : "false", p->overlap ? "true" : "false",
                  p->pin_weights ? "true" : "false");
    strbuf_printf(b, "serving:\n  preemption: %s\n  scheduler: %s\n  kv_block_size: %d\n",
                  preemption_names[p->preempt], scheduler_names[p->sched], p->kv_block_size);
}

llmsim_status policy_load_yaml(const char *path, policy *p, diag *e)
{
    return policy_load_yaml_doc(path, NULL, p, e);
}

llmsim_status policy_load_yaml_text(const char *name, const char *text, policy *p, diag *e)
{
    return policy_load_yaml_doc(name, text, p, e);
}
