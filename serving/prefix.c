/* prefix — see prefix.h. */
#include "serving/prefix.h"

#include <stdlib.h>
#include <string.h>

/* splitmix64's finalizer: a bijection of 64-bit words that mixes every bit. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The smallest power of two >= 2n (>= 16), as a mask. */
static uint64_t mask_for(int64_t n)
{
    uint64_t m = 16;
    while (m < 2 * (uint64_t)n)
        m <<= 1;
    return m - 1;
}

void serve_prefix_keys_free(serve_prefix_keys *k)
{
    free(k->off);
    free(k->key);
    memset(k, 0, sizeof *k);
}

/* k's offsets for q (full prompt blocks only) and room for its keys. */
static llmsim_status keys_alloc(const serve_requests *q, int bs, serve_prefix_keys *k, diag *e)
{
    memset(k, 0, sizeof *k);
    if (bs < 1)
        return diag_set(e, LLMSIM_EFAIL, "internal error: block size %d", bs);
    k->block_size = bs;
    k->n = q->n;
    k->off = malloc((q->n + 1) * sizeof *k->off);
    if (!k->off)
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    k->off[0] = 0;
    for (size_t i = 0; i < q->n; i++)
        k->off[i + 1] = k->off[i] + q->r[i].prompt_len / bs;
    k->key = malloc((size_t)(k->off[q->n] ? k->off[q->n] : 1) * sizeof *k->key);
    if (!k->key) {
        serve_prefix_keys_free(k);
        return diag_set(e, LLMSIM_EFAIL, "out of memory for %lld prefix keys",
                        (long long)k->off[q->n]);
    }
    return LLMSIM_OK;
}

llmsim_status serve_prefix_declared(const serve_requests *q, int bs, serve_prefix_keys *k, diag *e)
{
    llmsim_status st = keys_alloc(q, bs, k, e);
    if (st)
        return st;
    /* (id << 32) | j: a group's id is the group (< 2^31), a request's own
     * 2^31 + its index (< 2^32); j < 2^31 */
    for (size_t i = 0; i < q->n; i++) {
        const serve_request *r = &q->r[i];
        for (int64_t j = 0; j < k->off[i + 1] - k->off[i]; j++) {
            bool shared = r->prefix_group && (j + 1) * bs <= r->prefix_len;
            uint64_t id = shared ? r->prefix_group : (1ull << 31) + i;
            k->key[k->off[i] + j] = id << 32 | (uint64_t)j;
        }
    }
    return LLMSIM_OK;
}

/* Equal keys must mean equal prefixes: each key's first block (request,
 * index) is kept; a later block with its key must sit at the same index,
 * follow the same key and hold the same tokens. By induction on the index
 * the whole prefixes are then equal. */
static llmsim_status check_collisions(const serve_prefix_keys *k, const int32_t *const *prompts,
                                      diag *e)
{
    const int64_t total = k->off[k->n];
    const uint64_t mask = mask_for(total);
    int64_t *first = malloc((mask + 1) * sizeof *first); /* a key's first block, flat index */
    uint32_t *owner = malloc((size_t)(total ? total : 1) * sizeof *owner);
    if (!first || !owner) {
        free(first);
        free(owner);
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    }
    for (uint64_t s = 0; s <= mask; s++)
        first[s] = -1;
    const size_t bs = (size_t)k->block_size;
    llmsim_status st = LLMSIM_OK;
    for (size_t i = 0; i < k->n && !st; i++)
        for (int64_t f = k->off[i]; f < k->off[i + 1] && !st; f++) {
            owner[f] = (uint32_t)i;
            uint64_t s = mix64(k->key[f]) & mask;
            while (first[s] >= 0 && k->key[first[s]] != k->key[f])
                s = (s + 1) & mask;
            if (first[s] < 0) {
                first[s] = f;
                continue;
            }
            const int64_t g = first[s];
            const uint32_t i0 = owner[g];
            const int64_t j = f - k->off[i], j0 = g - k->off[i0];
            if (j != j0 || (j > 0 && k->key[f - 1] != k->key[g - 1]) ||
                memcmp(prompts[i] + (size_t)j * bs, prompts[i0] + (size_t)j * bs,
                       bs * sizeof **prompts) != 0)
                st = diag_set(e, LLMSIM_EFAIL, "prefix keys of requests %u and %zu collide "
                              "(block %lld); the prefix cache cannot tell them apart",
                              i0 + 1, i + 1, (long long)j);
        }
    free(first);
    free(owner);
    return st;
}

llmsim_status serve_prefix_of_tokens(const serve_requests *q, const int32_t *const *prompts, int bs,
                                     serve_prefix_keys *k, diag *e)
{
    llmsim_status st = keys_alloc(q, bs, k, e);
    if (st)
        return st;
    for (size_t i = 0; i < q->n; i++) {
        uint64_t h = 0x6a09e667f3bcc908ull; /* the chain's start */
        for (int64_t j = 0; j < k->off[i + 1] - k->off[i]; j++) {
            const int32_t *t = prompts[i] + (size_t)j * (size_t)bs;
            for (int a = 0; a < bs; a++)
                h = mix64(h + 0x9e3779b97f4a7c15ull + (uint32_t)t[a]);
            k->key[k->off[i] + j] = h;
        }
    }
    if ((st = check_collisions(k, prompts, e)))
        serve_prefix_keys_free(k);
    return st;
}

/* ---- the cache */

llmsim_status serve_pcache_init(serve_pcache *c, int64_t cap, diag *e)
{
    memset(c, 0, sizeof *c);
    if (cap < 0 || cap > INT32_MAX / 2)
        return diag_set(e, LLMSIM_EFAIL, "internal error: %lld prefix cache entries",
                        (long long)cap);
    c->cap = (int32_t)cap;
    c->mask = mask_for(cap);
    c->ent = calloc((size_t)(cap ? cap : 1), sizeof *c->ent);
    c->unused = malloc((size_t)(cap ? cap : 1) * sizeof *c->unused);
    c->slot = malloc((c->mask + 1) * sizeof *c->slot);
    if (!c->ent || !c->unused || !c->slot) {
        serve_pcache_free(c);
        return diag_set(e, LLMSIM_EFAIL, "out of memory for %lld prefix cache entries",
                        (long long)cap);
    }
    for (int32_t i = 0; i < c->cap; i++)
        c->unused[i] = c->cap - 1 - i;
    c->nunused = c->cap;
    for (uint64_t s = 0; s <= c->mask; s++)
        c->slot[s] = -1;
    c->head = c->tail = -1;
    return LLMSIM_OK;
}

void serve_pcache_free(serve_pcache *c)
{
    free(c->ent);
    free(c->unused);
    free(c->slot);
    memset(c, 0, sizeof *c);
}

/* The slot of key: its entry's, or the empty one where it would go. */
static uint64_t slot_of(const serve_pcache *c, uint64_t key)
{
    uint64_t s = mix64(key) & c->mask;
    while (c->slot[s] >= 0 && c->ent[c->slot[s]].key != key)
        s = (s + 1) & c->mask;
    return s;
}

int32_t serve_pcache_find(const serve_pcache *c, uint64_t key)
{
    return c->slot ? c->slot[slot_of(c, key)] : -1;
}

int32_t serve_pcache_insert(serve_pcache *c, uint64_t key)
{
    if (!c->nunused)
        return -1;
    uint64_t s = slot_of(c, key);
    int32_t id = c->unused[--c->nunused];
    c->ent[id] = (serve_pentry){key, 1, -1, -1};
    c->slot[s] = id;
    c->entries++;
    return id;
}

static void unlink_lru(serve_pcache *c, int32_t id)
{
    serve_pentry *p = &c->ent[id];
    *(p->prev >= 0 ? &c->ent[p->prev].next : &c->head) = p->next;
    *(p->next >= 0 ? &c->ent[p->next].prev : &c->tail) = p->prev;
    p->prev = p->next = -1;
    c->evictable--;
}

void serve_pcache_ref(serve_pcache *c, int32_t id)
{
    if (c->ent[id].refs++ == 0)
        unlink_lru(c, id);
}

void serve_pcache_unref(serve_pcache *c, int32_t id)
{
    serve_pentry *p = &c->ent[id];
    if (--p->refs > 0)
        return;
    p->prev = c->tail;
    p->next = -1;
    *(c->tail >= 0 ? &c->ent[c->tail].next : &c->head) = id;
    c->tail = id;
    c->evictable++;
}

/* Remove the slot at s, shifting later members of its probe run back
 * (deletion without tombstones). */
static void slot_remove(serve_pcache *c, uint64_t s)
{
    for (uint64_t t = (s + 1) & c->mask; c->slot[t] >= 0; t = (t + 1) & c->mask) {
        uint64_t home = mix64(c->ent[c->slot[t]].key) & c->mask;
        /* t's member may move to s if its home is not in (s, t] cyclically */
        bool stays = s <= t ? (home > s && home <= t) : (home > s || home <= t);
        if (!stays) {
            c->slot[s] = c->slot[t];
            s = t;
        }
    }
    c->slot[s] = -1;
}

int32_t serve_pcache_evict(serve_pcache *c)
{
    int32_t id = c->head;
    if (id < 0)
        return -1;
    unlink_lru(c, id);
    slot_remove(c, slot_of(c, c->ent[id].key));
    /* back on the unused stack, keeping the lowest on top */
    int32_t i = c->nunused++;
    while (i > 0 && c->unused[i - 1] < id) {
        c->unused[i] = c->unused[i - 1];
        i--;
    }
    c->unused[i] = id;
    c->entries--;
    return id;
}
