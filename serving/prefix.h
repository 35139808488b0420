/*
 * prefix — automatic prefix caching (vLLM's APC; the survey seed's §3.2.2):
 * the full KV blocks of identical token prefixes are computed once and
 * shared by every request that starts with them.
 *
 * Keys. Each full block of a request's prompt has a key standing for every
 * token up to the block's end: when block j of two requests has the same
 * key, their tokens 0 .. (j+1)*block_size - 1 are the same. Declared keys
 * come from the requests' prefix groups (workload/requests.h): block j
 * inside a group's prefix is keyed (group, j), every other block (request,
 * j), so keys are equal exactly when the declaration says the tokens are.
 * Token keys hash the tokens, chained from block to block; every pair of
 * equal keys is compared token by token, so a hash collision is an error,
 * never a silently shared block.
 *
 * The cache. An entry is a device block holding a key's K and V; requests
 * hold references to it. An entry nobody references stays cached until its
 * block is needed, and then the one released longest ago goes first (a
 * request releases its blocks from the last to the first, so a chain is
 * evicted from its end and its head stays usable longest). Entry ids are
 * handed out lowest first, so a run's cache is a function of its schedule.
 */
#ifndef LLMSIM_SERVING_PREFIX_H
#define LLMSIM_SERVING_PREFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "workload/requests.h"

typedef struct serve_prefix_keys {
    int block_size;
    size_t n;      /* requests */
    int64_t *off;  /* [n + 1]: request i's keys are key[off[i] .. off[i + 1]) */
    uint64_t *key; /* one per full block of its prompt */
} serve_prefix_keys;

/* The declared keys of q's requests for blocks of block_size tokens. */
llmsim_status serve_prefix_declared(const serve_requests *q, int block_size, serve_prefix_keys *k,
                                    diag *e);
/* The keys of the prompts ([n][q->r[i].prompt_len] token ids); fails
 * (LLMSIM_EFAIL) on a collision of two different prefixes. */
llmsim_status serve_prefix_of_tokens(const serve_requests *q, const int32_t *const *prompts,
                                     int block_size, serve_prefix_keys *k, diag *e);
void serve_prefix_keys_free(serve_prefix_keys *k);

typedef struct serve_pentry {
    uint64_t key;
    int32_t refs;
    int32_t prev, next; /* in the evictable list while refs == 0 */
} serve_pentry;

typedef struct serve_pcache {
    serve_pentry *ent;  /* [cap] */
    int32_t cap;
    int32_t *unused;    /* entry ids not in use, a stack with the lowest on top */
    int32_t nunused;
    int32_t *slot;      /* open addressing, linear probing: key -> entry, -1 empty */
    uint64_t mask;
    int32_t head, tail; /* evictable entries, released longest ago first; -1: none */
    int64_t entries, evictable;
} serve_pcache;

/* A cache of at most cap entries. */
llmsim_status serve_pcache_init(serve_pcache *c, int64_t cap, diag *e);
void serve_pcache_free(serve_pcache *c);
/* The entry of key, or -1. */
int32_t serve_pcache_find(const serve_pcache *c, uint64_t key);
/* A new entry for key (not cached), referenced once; -1 when full. */
int32_t serve_pcache_insert(serve_pcache *c, uint64_t key);
void serve_pcache_ref(serve_pcache *c, int32_t id);
/* One reference fewer; with none left the entry becomes evictable. */
void serve_pcache_unref(serve_pcache *c, int32_t id);
/* The evictable entry released longest ago, removed (its id free for
 * reuse); -1 when none. */
int32_t serve_pcache_evict(serve_pcache *c);

#endif
