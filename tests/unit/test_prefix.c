/*
 * test_prefix — the prefix cache's keys and cache (serving/prefix.h):
 *
 *  - declared keys: equal exactly where two requests' blocks lie inside the
 *    same group's prefix; a block past a request's prefix_len, or partly
 *    inside it, is its own; only full prompt blocks are keyed;
 *  - token keys: equal for equal prefixes at the same block, different
 *    after a changed token (in that block and every later one), different
 *    for the same tokens at another block index;
 *  - the cache against a plain model of it under a long random sequence of
 *    inserts, references, releases and evictions: every key found where it
 *    should be and nowhere else (the open-addressing table's deletions keep
 *    every probe run whole), evictions in the order entries were released,
 *    the counts of entries and evictable ones, ids lowest first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serving/prefix.h"
#include "tap.h"

static void test_declared(void)
{
    diag e = {0};
    serve_request r[4] = {
        {0, 40, 1, 1, 0, 7, 32}, /* group 7, 32 shared tokens: blocks 0, 1 of 16 */
        {0, 50, 1, 1, 0, 7, 20}, /* group 7, 20 tokens: block 0 only, block 1 partly */
        {0, 33, 1, 1, 0, 0, 0},  /* nothing shared */
        {0, 15, 1, 1, 0, 7, 15}, /* no full block */
    };
    serve_requests q = {r, 4, NULL};
    serve_prefix_keys k;
    CHECK(serve_prefix_declared(&q, 16, &k, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(k.off[1] - k.off[0] == 2 && k.off[2] - k.off[1] == 3 && k.off[3] - k.off[2] == 2 &&
              k.off[4] == k.off[3],
          "only full prompt blocks are keyed (2, 3, 2, 0)");
    const uint64_t *a = k.key + k.off[0], *b = k.key + k.off[1], *c = k.key + k.off[2];
    CHECK(a[0] == b[0], "block 0 inside both prefixes of group 7: one key");
    CHECK(a[1] != b[1], "block 1 inside one prefix only: different keys");
    CHECK(c[0] != a[0] && c[0] != b[0] && c[1] != a[1] && c[0] != c[1],
          "an unshared request's blocks are its own");
    serve_prefix_keys_free(&k);
}

static void test_tokens(void)
{
    diag e = {0};
    enum { P = 48 };
    int32_t t[4][P];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < P; j++)
            t[i][j] = (j * 7 + 3) % 101;
    t[1][20] = 5;        /* request 1 differs in block 1 */
    t[2][47] = 9;        /* request 2 in block 2, its last */
    for (int j = 0; j < 16; j++) /* request 3: block 1's tokens in block 0 too */
        t[3][j] = t[3][16 + j];
    serve_request r[4] = {{0, P, 1, 1, 0, 0, 0}, {0, P, 1, 1, 0, 0, 0}, {0, P, 1, 1, 0, 0, 0},
                          {0, P, 1, 1, 0, 0, 0}};
    serve_requests q = {r, 4, NULL};
    const int32_t *pr[4] = {t[0], t[1], t[2], t[3]};
    serve_prefix_keys k;
    CHECK(serve_prefix_of_tokens(&q, pr, 16, &k, &e) == LLMSIM_OK, "%s", e.msg);
    const uint64_t *a = k.key, *b = k.key + 3, *c = k.key + 6, *d = k.key + 9;
    CHECK(a[0] == b[0] && a[1] != b[1] && a[2] != b[2], "a change in block 1 changes it and after");
    CHECK(a[0] == c[0] && a[1] == c[1] && a[2] != c[2], "a change in the last block changes it only");
    CHECK(d[0] != a[1] && d[1] != a[1], "the same tokens at another block, another key");
    serve_prefix_keys_free(&k);
}

/* The plain model: per key slot its entry or -1, and the release order. */
enum { NKEYS = 300, CAP = 64, STEPS = 200000 };

static void test_cache(void)
{
    diag e = {0};
    serve_pcache c;
    CHECK(serve_pcache_init(&c, CAP, &e) == LLMSIM_OK, "%s", e.msg);
    int32_t entry_of[NKEYS], refs[CAP];
    int32_t lru[CAP], nlru = 0; /* evictable ids, released longest ago first */
    uint64_t keys[NKEYS];
    for (int i = 0; i < NKEYS; i++) {
        entry_of[i] = -1;
        keys[i] = (uint64_t)i * 0x100000001ull + 17; /* clustered: long probe runs */
    }
    uint64_t x = 99;
    long long bad = 0, evicted = 0, steps = 0;
    for (; steps < STEPS && !bad; steps++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((x >> 33) % NKEYS), op = (int)((x >> 20) % 4);
        int32_t en = entry_of[k];
        if (serve_pcache_find(&c, keys[k]) != en)
            bad++;
        if (op == 0 && en < 0) { /* insert, evicting when full */
            if (c.nunused == 0) {
                int32_t v = serve_pcache_evict(&c);
                if (nlru == 0 ? v != -1 : v != lru[0])
                    bad++;
                if (v < 0)
                    continue;
                memmove(lru, lru + 1, (size_t)--nlru * sizeof *lru);
                for (int i = 0; i < NKEYS; i++)
                    if (entry_of[i] == v)
                        entry_of[i] = -1;
                evicted++;
            }
            int32_t id = serve_pcache_insert(&c, keys[k]);
            int32_t lowest = CAP;
            for (int32_t i = 0; i < CAP; i++) {
                bool used = false;
                for (int j = 0; j < NKEYS && !used; j++)
                    used = entry_of[j] == i;
                if (!used && i < lowest)
                    lowest = i;
            }
            if (id != lowest)
                bad++;
            entry_of[k] = id;
            refs[id] = 1;
        } else if (op == 1 && en >= 0) { /* another reference */
            if (refs[en]++ == 0) {
                int i = 0;
                while (i < nlru && lru[i] != en)
                    i++;
                memmove(lru + i, lru + i + 1, (size_t)(nlru - i - 1) * sizeof *lru);
                nlru--;
            }
            serve_pcache_ref(&c, en);
        } else if (op >= 2 && en >= 0 && refs[en] > 0) { /* a release */
            if (--refs[en] == 0)
                lru[nlru++] = en;
            serve_pcache_unref(&c, en);
        }
        int64_t live = 0;
        for (int i = 0; i < NKEYS; i++)
            live += entry_of[i] >= 0;
        if (c.entries != live || c.evictable != nlru)
            bad++;
    }
    CHECK(bad == 0, "the cache as the model says, step by step (%lld wrong of %lld)", bad, steps);
    CHECK(evicted > 1000, "the sequence evicts (%lld)", evicted);
    serve_pcache_free(&c);
}

int main(void)
{
    test_declared();
    test_tokens();
    test_cache();
    return tap_done();
}
