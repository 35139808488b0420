/*
 * test_placement — from requested fractions to whole tensors on tiers
 * (costmodel/placement.h), FlexGen's midpoint rule: exact splits when they
 * are achievable, a tier asked for 0 never used, boundaries to the slower
 * tier, the realized fractions of OPT layers for FlexGen's policies (what
 * FlexGen itself placed), fractions that sum to 1, determinism, and
 * placement_realize's KV-cache and activation granularity.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "costmodel/placement.h"
#include "costmodel/sizes.h"
#include "tap.h"

/* Realized fractions are ratios of byte sums: equal up to rounding. */
#define FRAC_TOL 1e-12

static void set_pl(placement *pl, double g, double c, double d)
{
    pl->f[TIER_GPU] = g;
    pl->f[TIER_CPU] = c;
    pl->f[TIER_DISK] = d;
}

static unsigned long long rng_state = 0x243f6a8885a308d3ULL;
static double rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static int count_on(const tier *tiers, int n, tier t)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += tiers[i] == t;
    return k;
}

/* Equal tensors: a split that whole tensors can achieve is reproduced
 * exactly (4 at 50/50 -> 2 + 2; 6 at 1/3 each -> 2 + 2 + 2; 10 at 30/50/20
 * -> 3 + 5 + 2; 8 at 25/0/75 -> 2 + 0 + 6). */
static void test_exact_splits(void)
{
    typedef struct split {
        int n;
        double g, c, d;
        int ng, nc, nd;
    } split;
    static const split cases[] = {
        {4, 0.5, 0.5, 0, 2, 2, 0},
        {4, 0, 0.5, 0.5, 0, 2, 2},
        {6, 1.0 / 3, 1.0 / 3, 1.0 / 3, 2, 2, 2},
        {10, 0.3, 0.5, 0.2, 3, 5, 2},
        {8, 0.25, 0, 0.75, 2, 0, 6},
        {5, 1, 0, 0, 5, 0, 0},
        {5, 0, 0, 1, 0, 0, 5},
        {16, 0.125, 0.375, 0.5, 2, 6, 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const split *c = &cases[i];
        double bytes[64];
        tier tiers[64];
        for (int k = 0; k < c->n; k++)
            bytes[k] = 1000;
        placement target, real;
        set_pl(&target, c->g, c->c, c->d);
        placement_assign(bytes, c->n, &target, tiers, &real);
        int ng = count_on(tiers, c->n, TIER_GPU), nc = count_on(tiers, c->n, TIER_CPU),
            nd = count_on(tiers, c->n, TIER_DISK);
        CHECK(ng == c->ng && nc == c->nc && nd == c->nd,
              "%d equal tensors at %.3f/%.3f/%.3f: %d/%d/%d, want %d/%d/%d", c->n, c->g, c->c, c->d, ng,
              nc, nd, c->ng, c->nc, c->nd);
        for (int t = 0; t < TIER_COUNT; t++)
            CHECK_REL(real.f[t], target.f[t], FRAC_TOL, "realized = target when achievable");
    }
    /* empty tensors at the very end (their middle is at 100%) still go to a
     * tier that was asked for something; with no bytes at all, realized =
     * target */
    double zb[3] = {5, 0, 0};
    tier zt[3];
    placement zt_target, zt_real;
    set_pl(&zt_target, 0, 1, 0);
    placement_assign(zb, 3, &zt_target, zt, &zt_real);
    CHECK(zt[0] == TIER_CPU && zt[1] == TIER_CPU && zt[2] == TIER_CPU,
          "0/100/0 with empty tensors: %d %d %d, want all cpu", (int)zt[0], (int)zt[1], (int)zt[2]);
    placement_assign(zb + 1, 2, &zt_target, zt, &zt_real);
    CHECK(zt[0] == TIER_CPU && zt[1] == TIER_CPU, "0/100/0, all tensors empty: %d %d, want cpu",
          (int)zt[0], (int)zt[1]);
    CHECK(zt_real.f[TIER_CPU] == 1 && zt_real.f[TIER_GPU] == 0, "no bytes: realized = target");
    /* tiers may be NULL: the realized fractions alone */
    double b4[4] = {1, 1, 1, 1};
    placement target, real;
    set_pl(&target, 0.5, 0.5, 0);
    placement_assign(b4, 4, &target, NULL, &real);
    CHECK(real.f[TIER_GPU] == 0.5 && real.f[TIER_CPU] == 0.5 && real.f[TIER_DISK] == 0,
          "NULL tiers: %g/%g/%g", real.f[0], real.f[1], real.f[2]);
}

/* A tensor goes where its middle byte falls; a middle exactly on a boundary
 * goes to the slower tier; order matters, size does not. */
static void test_boundaries(void)
{
    double b[2] = {1, 1};
    tier tiers[2];
    placement target, real;
    set_pl(&target, 0.5, 0.5, 0);
    placement_assign(b, 2, &target, tiers, &real);
    CHECK(tiers[0] == TIER_GPU && tiers[1] == TIER_CPU, "50/50 gpu/cpu: first to gpu (%d, %d)",
          (int)tiers[0], (int)tiers[1]);
    set_pl(&target, 0, 0.5, 0.5);
    placement_assign(b, 2, &target, tiers, &real);
    CHECK(tiers[0] == TIER_CPU && tiers[1] == TIER_DISK, "50/50 cpu/disk: first to cpu (%d, %d)",
          (int)tiers[0], (int)tiers[1]);
    /* one tensor, its middle on the 50% boundary: the slower tier */
    double one = 5;
    tier t1;
    set_pl(&target, 0, 0.5, 0.5);
    placement_assign(&one, 1, &target, &t1, &real);
    CHECK(t1 == TIER_DISK && real.f[TIER_DISK] == 1.0, "single tensor 0/50/50 -> disk");
    set_pl(&target, 1.0 / 3, 1.0 / 3, 1.0 / 3);
    placement_assign(&one, 1, &target, &t1, &real);
    CHECK(t1 == TIER_CPU, "single tensor thirds -> cpu (its middle is in the second third)");
    /* order, not size: {1, 1, 2} at 50/50 -> middles at 12.5%, 37.5%, 75% */
    double bs[3] = {1, 1, 2};
    tier ts[3];
    set_pl(&target, 0.5, 0.5, 0);
    placement_assign(bs, 3, &target, ts, &real);
    CHECK(ts[0] == TIER_GPU && ts[1] == TIER_GPU && ts[2] == TIER_CPU,
          "{1,1,2} at 50/50: gpu gpu cpu, got %d %d %d", (int)ts[0], (int)ts[1], (int)ts[2]);
    CHECK(real.f[TIER_GPU] == 0.5, "{1,1,2} 50/50 realized exactly");
}

/* A tier whose target is 0 never receives a tensor, whatever the sizes; the
 * realized fractions are non-negative and sum to 1; every realized fraction
 * is within one largest tensor of its target. Random sizes and targets. */
static void test_random_properties(void)
{
    for (int trial = 0; trial < 2000; trial++) {
        int n = 1 + (int)(rnd() * 40);
        double bytes[64], total = 0, biggest = 0;
        for (int i = 0; i < n; i++) {
            bytes[i] = rnd() < 0.3 ? 1000 : 1 + floor(rnd() * 100000);
            total += bytes[i];
            biggest = fmax(biggest, bytes[i]);
        }
        double f[3] = {rnd(), rnd(), rnd()};
        int zero = (int)(rnd() * 4); /* 0..2: that tier asked for 0; 3: none */
        if (zero < 3)
            f[zero] = 0;
        if (rnd() < 0.15) /* sometimes two tiers at 0 */
            f[(zero + 1) % 3] = 0;
        double s = f[0] + f[1] + f[2];
        if (s <= 0) {
            f[1] = 1;
            s = 1;
        }
        placement target, real;
        set_pl(&target, f[0] / s, f[1] / s, f[2] / s);
        tier tiers[64];
        placement_assign(bytes, n, &target, tiers, &real);
        double sum = 0;
        for (int t = 0; t < TIER_COUNT; t++) {
            if (target.f[t] == 0) {
                CHECK(count_on(tiers, n, (tier)t) == 0, "trial %d: a tensor on %s, asked for 0", trial,
                      tier_names[t]);
                CHECK(real.f[t] == 0, "trial %d: realized %g on %s, asked for 0", trial, real.f[t],
                      tier_names[t]);
            }
            CHECK(real.f[t] >= 0, "negative realized fraction");
            CHECK(fabs(real.f[t] - target.f[t]) <= biggest / total + FRAC_TOL,
                  "trial %d: %s realized %g vs target %g, more than one tensor (%g) off", trial,
                  tier_names[t], real.f[t], target.f[t], biggest / total);
            sum += real.f[t];
        }
        CHECK_REL(sum, 1.0, FRAC_TOL, "realized fractions sum to 1");
        /* the realized fractions are the bytes placed per tier */
        double placed[TIER_COUNT] = {0};
        for (int i = 0; i < n; i++)
            placed[tiers[i]] += bytes[i];
        for (int t = 0; t < TIER_COUNT; t++)
            CHECK_REL(real.f[t], placed[t] / total, FRAC_TOL, "realized = placed bytes / total");
        /* deterministic */
        tier again[64];
        placement real2;
        placement_assign(bytes, n, &target, again, &real2);
        CHECK(memcmp(tiers, again, sizeof(tier) * (size_t)n) == 0 &&
                  memcmp(&real, &real2, sizeof real) == 0,
              "trial %d: a second call placed differently", trial);
    }
}

static bool load(const char *name, model *m)
{
    diag e = {0};
    if (model_load(name, m, &e)) {
        CHECK(false, "model_load %s: %s", name, e.msg);
        return false;
    }
    return true;
}

/* OPT-30B layer (attention: q, k, v, out, 4 x h^2, and MLP: fc1, fc2, 2 x
 * 4h^2, placed as two groups, as FlexGen does): weights 20/80/0 put only
 * q_proj on the GPU (its middle is at 12.5% of the attention group; fc1's at
 * 25% of the MLP group), 1 h^2 of 12 h^2 = 8.3%, what FlexGen placed;
 * 0/50/50 splits the matrices exactly 6 h^2 / 6 h^2 (q, k, fc1 on the CPU;
 * v, out, fc2 on disk), and the 13 h-vectors, which come last in each group,
 * go to disk, so the CPU realizes 6 h^2 / (12 h^2 + 13 h). */
static void test_opt_layer(void)
{
    model m;
    if (!load("opt-30b", &m))
        return;
    const double h = (double)m.hidden_size;
    model_tensor t[MODEL_MAX_TENSORS];
    int n = model_layer_tensors(&m, t);
    CHECK(n == 16, "OPT layer has %d tensors, want 16", n);
    policy p;
    policy_init(&p);
    set_pl(&p.weights, 0.2, 0.8, 0);
    placement_realized pr;
    placement_realize(&m, &p, &pr);
    double total = 0;
    for (int i = 0; i < n; i++) {
        total += size_tensor_bytes(&m, &t[i], &p.weight_quant);
        bool want_gpu = strcmp(t[i].name, "self_attn.q_proj.weight") == 0;
        CHECK((pr.layer_tiers[i] == TIER_GPU) == want_gpu, "20/80: %s on %s", t[i].name,
              tier_names[pr.layer_tiers[i]]);
    }
    CHECK_REL(pr.weights.f[TIER_GPU], h * h * 2 / total, FRAC_TOL, "20/80: realized gpu = q_proj / layer");
    CHECK(fabs(pr.weights.f[TIER_GPU] - 1.0 / 12) < 1e-3, "20/80 realizes ~8.3%% on gpu: %g",
          pr.weights.f[TIER_GPU]);
    CHECK(pr.weights.f[TIER_DISK] == 0, "20/80/0: nothing on disk");
    CHECK_REL(pr.weights.f[0] + pr.weights.f[1] + pr.weights.f[2], 1.0, FRAC_TOL, "sum to 1");

    set_pl(&p.weights, 0, 0.5, 0.5);
    placement_realize(&m, &p, &pr);
    double mat_cpu = 0, mat_disk = 0;
    for (int i = 0; i < n; i++) {
        double b = size_tensor_bytes(&m, &t[i], &p.weight_quant);
        CHECK(pr.layer_tiers[i] != TIER_GPU, "0/50/50: %s on the gpu", t[i].name);
        if (t[i].matrix)
            *(pr.layer_tiers[i] == TIER_CPU ? &mat_cpu : &mat_disk) += b;
        else
            CHECK(pr.layer_tiers[i] == TIER_DISK, "0/50/50: vector %s not on disk", t[i].name);
    }
    CHECK(mat_cpu == mat_disk, "0/50/50: matrices split %g / %g", mat_cpu, mat_disk);
    CHECK(pr.weights.f[TIER_GPU] == 0, "0/50/50: nothing on gpu");
    CHECK_REL(pr.weights.f[TIER_CPU], 6 * h * h / (12 * h * h + 13 * h), FRAC_TOL,
              "0/50/50: cpu realized = 6 h^2 / (12 h^2 + 13 h)");
    CHECK_REL(pr.weights.f[0] + pr.weights.f[1] + pr.weights.f[2], 1.0, FRAC_TOL, "sum to 1");

    /* the head tensors (embeddings, final norm) are placed by the same rule */
    int nh = model_head_tensors(&m, t);
    double hsum = 0;
    for (int i = 0; i < nh; i++)
        CHECK(pr.head_tiers[i] != TIER_GPU, "0/50/50 head tensor %s on gpu", t[i].name);
    for (int k = 0; k < TIER_COUNT; k++)
        hsum += pr.head.f[k];
    CHECK_REL(hsum, 1.0, FRAC_TOL, "head fractions sum to 1");

    /* deterministic: the same policy, the same tiers */
    placement_realized pr2;
    placement_realize(&m, &p, &pr2);
    CHECK(memcmp(pr.layer_tiers, pr2.layer_tiers, sizeof pr.layer_tiers) == 0 &&
              memcmp(&pr.weights, &pr2.weights, sizeof pr.weights) == 0,
          "placement_realize is not deterministic");
}

/* Quantized weights are placed by their stored sizes: matrices at
 * n/2 + n/64 * 4 bytes (4-bit, group 64), vectors at fp16. */
static void test_quantized_sizes(void)
{
    model m;
    if (!load("opt-30b", &m))
        return;
    model_tensor t[MODEL_MAX_TENSORS];
    int n = model_layer_tensors(&m, t);
    quant q = {4, 64}, none = {0, 0};
    for (int i = 0; i < n; i++) {
        double v = (double)t[i].rows * (double)t[i].cols;
        double want = t[i].matrix ? v * 0.5 + ceil(v / 64) * 4 : v * 2;
        CHECK(size_tensor_bytes(&m, &t[i], &q) == want, "%s quantized bytes", t[i].name);
        CHECK(size_tensor_bytes(&m, &t[i], &none) == v * 2, "%s fp16 bytes", t[i].name);
    }
}

/* The KV cache is placed per GPU batch (its K and V together), activations
 * likewise: FlexGen's 0/100 cache is exact; 50/50 over 3 batches puts the
 * first on the GPU (middle at 1/6) and the second, whose middle is on the
 * boundary, with the third on the CPU; 0/50/50 activations over 3 batches
 * likewise one on the CPU, two on disk. */
static void test_kv_and_activations(void)
{
    model m;
    if (!load("opt-30b", &m))
        return;
    policy p;
    policy_init(&p);
    p.num_gpu_batches = 3;
    set_pl(&p.kv_cache, 0.5, 0.5, 0);
    set_pl(&p.activations, 0, 0.5, 0.5);
    placement_realized pr;
    placement_realize(&m, &p, &pr);
    CHECK_REL(pr.kv_cache.f[TIER_GPU], 1.0 / 3, FRAC_TOL, "KV 50/50 over 3 batches: gpu 1/3");
    CHECK_REL(pr.kv_cache.f[TIER_CPU], 2.0 / 3, FRAC_TOL, "KV 50/50 over 3 batches: cpu 2/3");
    CHECK_REL(pr.activations.f[TIER_CPU], 1.0 / 3, FRAC_TOL, "activations 0/50/50 over 3 batches: cpu 1/3");
    CHECK_REL(pr.activations.f[TIER_DISK], 2.0 / 3, FRAC_TOL, "activations: disk 2/3");
    p.num_gpu_batches = 8;
    set_pl(&p.kv_cache, 0.25, 0.5, 0.25);
    placement_realize(&m, &p, &pr);
    CHECK(pr.kv_cache.f[TIER_GPU] == 0.25 && pr.kv_cache.f[TIER_CPU] == 0.5 &&
              pr.kv_cache.f[TIER_DISK] == 0.25,
          "KV 25/50/25 over 8 batches: %g/%g/%g", pr.kv_cache.f[0], pr.kv_cache.f[1], pr.kv_cache.f[2]);
    /* a single GPU batch: one part, 30/70 -> all on the CPU (its middle, 50%, is past 30%) */
    p.num_gpu_batches = 1;
    set_pl(&p.kv_cache, 0.3, 0.7, 0);
    placement_realize(&m, &p, &pr);
    CHECK(pr.kv_cache.f[TIER_GPU] == 0 && pr.kv_cache.f[TIER_CPU] == 1,
          "KV 30/70 over 1 batch: %g/%g", pr.kv_cache.f[TIER_GPU], pr.kv_cache.f[TIER_CPU]);
}

int main(void)
{
    test_exact_splits();
    test_boundaries();
    test_random_properties();
    test_opt_layer();
    test_quantized_sizes();
    test_kv_and_activations();
    return tap_done();
}
