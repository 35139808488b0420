/*
 * test_ready — plan/ready.h, the ready-task queue that the simulator and the
 * engine share, against a brute-force oracle on random task graphs: every
 * take is the lowest-numbered task of that resource whose dependencies are
 * all done, nothing is taken twice or early, every task is taken once, and
 * bursts far beyond a heap's first capacity (one task many wait on) work.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/ready.h"
#include "tap.h"

static uint64_t rng = 88172645463325252ull;
static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* A DAG of n tasks whose topological order is a random permutation (so plan
 * order and dependency order disagree); task `hub` (the first in that order)
 * is the only dependency of every fan-th task. */
static void random_plan(plan *pl, size_t n, int fan)
{
    memset(pl, 0, sizeof *pl);
    uint32_t *perm = malloc(n * sizeof *perm);
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = next_u32() % (i + 1);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    pl->tasks = calloc(n, sizeof *pl->tasks);
    pl->deps = malloc(n * 4 * sizeof *pl->deps);
    pl->ntasks = n;
    for (size_t k = 0; k < n; k++) {
        plan_task *t = &pl->tasks[perm[k]];
        t->res = (uint8_t)(next_u32() % PLAN_NRES);
        t->dep_first = (uint32_t)pl->ndeps;
        bool hub_only = k > 0 && fan && k % (size_t)fan == 0;
        if (hub_only)
            pl->deps[pl->ndeps++] = perm[0];
        int extra = k > 1 && !hub_only ? (int)(next_u32() % 3) : 0;
        for (int d = 0; d < extra; d++)
            pl->deps[pl->ndeps++] = perm[1 + next_u32() % (k - 1)];
        t->ndeps = (uint32_t)(pl->ndeps - t->dep_first);
    }
    free(perm);
}

static bool deps_done(const plan *pl, const bool *done, size_t i)
{
    const plan_task *t = &pl->tasks[i];
    for (uint32_t d = 0; d < t->ndeps; d++)
        if (!done[pl->deps[t->dep_first + d]])
            return false;
    return true;
}

/* The oracle: the lowest-numbered task of res not yet taken whose
 * dependencies are done; n when there is none. */
static size_t oracle(const plan *pl, const bool *taken, const bool *done, int res)
{
    for (size_t i = 0; i < pl->ntasks; i++)
        if (!taken[i] && pl->tasks[i].res == res && deps_done(pl, done, i))
            return i;
    return pl->ntasks;
}

/* Run the graph: each round, every resource takes its next ready task; the
 * tasks taken finish in a random order. */
static void run_one(size_t n, int fan)
{
    plan pl;
    random_plan(&pl, n, fan);
    plan_ready q;
    diag e;
    diag_clear(&e);
    CHECK(plan_ready_init(&q, &pl, &e) == LLMSIM_OK, "init: %s", e.msg);
    bool *taken = calloc(n, 1), *done = calloc(n, 1);
    uint32_t running[PLAN_NRES];
    size_t ntaken = 0, bad = 0, maxready = 0;
    while (q.done < n && !bad) {
        int nrun = 0;
        for (int res = 0; res < PLAN_NRES; res++) {
            size_t want = oracle(&pl, taken, done, res);
            if (q.heap[res].n > maxready)
                maxready = q.heap[res].n;
            if (plan_ready_any(&q, res) != (want < n)) {
                CHECK(false, "n %zu fan %d: resource %d ready %d, oracle says %d", n, fan, res,
                      plan_ready_any(&q, res), want < n);
                bad++;
                break;
            }
            if (want == n)
                continue;
            uint32_t t = plan_ready_take(&q, res);
            if (t != want) {
                CHECK(false, "n %zu fan %d: resource %d took task %u, the oracle %zu", n, fan,
                      res, t, want);
                bad++;
                break;
            }
            taken[t] = true;
            ntaken++;
            running[nrun++] = t;
        }
        if (!nrun && !bad) {
            CHECK(false, "n %zu fan %d: stalled after %zu tasks", n, fan, q.done);
            bad++;
        }
        for (int k = nrun - 1; k > 0; k--) {
            int j = (int)(next_u32() % (uint32_t)(k + 1));
            uint32_t t = running[k];
            running[k] = running[j];
            running[j] = t;
        }
        for (int k = 0; k < nrun && !bad; k++) {
            done[running[k]] = true;
            CHECK(plan_ready_done(&q, running[k]), "done: out of memory");
        }
    }
    CHECK(!bad && ntaken == n && q.done == n, "n %zu fan %d: %zu of %zu tasks taken", n, fan,
          ntaken, n);
    if (fan)
        CHECK(maxready > 256, "n %zu fan %d: a burst of %zu ready tasks (want > 256 to grow "
              "a heap past its first capacity)", n, fan, maxready);
    plan_ready_free(&q);
    free(taken);
    free(done);
    free(pl.tasks);
    free(pl.deps);
}

int main(void)
{
    run_one(1, 0);
    run_one(50, 0);
    run_one(400, 0);
    run_one(3000, 2); /* half the tasks wait on one: bursts of hundreds per resource */
    /* an empty plan: nothing ready */
    plan pl;
    memset(&pl, 0, sizeof pl);
    plan_ready q;
    diag e;
    diag_clear(&e);
    CHECK(plan_ready_init(&q, &pl, &e) == LLMSIM_OK, "empty plan: %s", e.msg);
    for (int r = 0; r < PLAN_NRES; r++)
        CHECK(!plan_ready_any(&q, r), "empty plan: resource %d has a ready task", r);
    plan_ready_free(&q);
    return tap_done();
}
