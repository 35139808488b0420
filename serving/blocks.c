/*
 * blocks — block tables for the paged KV cache. See blocks.h.
 */
#include "serving/blocks.h"

#include <stdlib.h>
#include <string.h>

#include "common/grow.h"

/* A free list as a stack with the lowest id on top: ids n-1 .. 0. */
static int32_t *stack_of(int64_t n)
{
    int32_t *a = malloc(((size_t)n + 1) * sizeof *a);
    if (a)
        for (int64_t i = 0; i < n; i++)
            a[i] = (int32_t)(n - 1 - i);
    return a;
}

llmsim_status serve_blocks_init(serve_blocks *b, int64_t dev_blocks, int64_t swap_slots,
                                size_t nreq, bool prefix_cache, diag *e)
{
    memset(b, 0, sizeof *b);
    if (dev_blocks < 0 || swap_slots < 0 || dev_blocks > INT32_MAX || swap_slots > INT32_MAX)
        return diag_set(e, LLMSIM_EINPUT, "%lld KV blocks and %lld swap slots: out of range",
                        (long long)dev_blocks, (long long)swap_slots);
    b->dev_blocks = dev_blocks;
    b->swap_slots = swap_slots;
    b->free_dev = stack_of(dev_blocks);
    b->free_swap = stack_of(swap_slots);
    b->tab = calloc(nreq ? nreq : 1, sizeof *b->tab);
    b->nreq = nreq;
    b->nfree_dev = dev_blocks;
    b->nfree_swap = swap_slots;
    if (prefix_cache) {
        b->entry_of = malloc((size_t)(dev_blocks ? dev_blocks : 1) * sizeof *b->entry_of);
        b->block_of = calloc((size_t)(dev_blocks ? dev_blocks : 1), sizeof *b->block_of);
        for (int64_t i = 0; b->entry_of && i < dev_blocks; i++)
            b->entry_of[i] = -1;
    }
    if (!b->free_dev || !b->free_swap || !b->tab ||
        (prefix_cache && (!b->entry_of || !b->block_of))) {
        serve_blocks_free(b);
        return diag_set(e, LLMSIM_EFAIL, "out of memory for %lld KV blocks", (long long)dev_blocks);
    }
    return LLMSIM_OK;
}

void serve_blocks_free(serve_blocks *b)
{
    if (b->tab)
        for (size_t i = 0; i < b->nreq; i++)
            free(b->tab[i].ids);
    free(b->tab);
    free(b->free_dev);
    free(b->free_swap);
    free(b->entry_of);
    free(b->block_of);
    free(b->moves);
    memset(b, 0, sizeof *b);
}

/* Push id back keeping the lowest on top: insertion from the top (frees are
 * few per iteration and the stack is mostly ordered). */
static void give_back(int32_t *stack, int64_t *n, int32_t id)
{
    int64_t i = (*n)++;
    while (i > 0 && stack[i - 1] < id) {
        stack[i] = stack[i - 1];
        i--;
    }
    stack[i] = id;
}

static bool move(serve_blocks *b, serve_block_move m)
{
    serve_block_move *p = llmsim_grow(b->moves, b->nmoves, &b->cap_moves, sizeof *p, 256);
    if (!p)
        return false;
    b->moves = p;
    b->moves[b->nmoves++] = m;
    return true;
}

/* A device block of a table let go: free, unless a cache entry keeps it. */
static void let_go(serve_blocks *b, int32_t id)
{
    if (!b->entry_of || b->entry_of[id] < 0)
        give_back(b->free_dev, &b->nfree_dev, id);
}

static void release(serve_blocks *b, serve_block_table *t)
{
    for (int64_t j = 0; j < t->n; j++) {
        if (t->swapped)
            give_back(b->free_swap, &b->nfree_swap, t->ids[j]);
        else
            let_go(b, t->ids[j]);
    }
    t->n = 0;
    t->swapped = false;
}

/* Room for `want` ids in t. */
static bool reserve(serve_block_table *t, int64_t want)
{
    if (want <= t->cap)
        return true;
    int64_t cap = want > 2 * t->cap ? want : 2 * t->cap;
    int32_t *ids = realloc(t->ids, (size_t)cap * sizeof *ids);
    if (!ids)
        return false;
    t->ids = ids;
    t->cap = cap;
    return true;
}

/* Table t (device) to swap slots, or back: one copy per block. */
static llmsim_status relocate(serve_blocks *b, uint32_t req, bool out, diag *e)
{
    serve_block_table *t = &b->tab[req];
    int32_t *from = out ? b->free_swap : b->free_dev;
    int64_t *nfrom = out ? &b->nfree_swap : &b->nfree_dev;
    if (t->n > *nfrom)
        return diag_set(e, LLMSIM_EFAIL, "internal error: request %u needs %lld %s, %lld free",
                        req + 1, (long long)t->n, out ? "swap slots" : "KV blocks",
                        (long long)*nfrom);
    for (int64_t j = 0; j < t->n; j++) {
        int32_t to = from[--*nfrom];
        serve_block_move m = {req, out ? t->ids[j] : to, out ? to : t->ids[j], out};
        if (!move(b, m))
            return diag_set(e, LLMSIM_EFAIL, "out of memory");
        if (out)
            let_go(b, t->ids[j]);
        else
            give_back(b->free_swap, &b->nfree_swap, t->ids[j]);
        t->ids[j] = to;
    }
    t->swapped = out;
    return LLMSIM_OK;
}

/* Grow or shrink request req's device table to `want` blocks. */
static llmsim_status resize(serve_blocks *b, uint32_t req, int64_t want, diag *e)
{
    serve_block_table *t = &b->tab[req];
    while (t->n > want)
        let_go(b, t->ids[--t->n]);
    if (want - t->n > b->nfree_dev)
        return diag_set(e, LLMSIM_EFAIL, "internal error: request %u needs %lld more KV blocks, "
                        "%lld free", req + 1, (long long)(want - t->n), (long long)b->nfree_dev);
    if (!reserve(t, want))
        return diag_set(e, LLMSIM_EFAIL, "out of memory");
    while (t->n < want)
        t->ids[t->n++] = b->free_dev[--b->nfree_dev];
    return LLMSIM_OK;
}

llmsim_status serve_blocks_sync(serve_blocks *b, const serve_sched *sc, const serve_iter *it,
                                diag *e)
{
    llmsim_status st = LLMSIM_OK;
    b->nmoves = 0;
    /* first what leaves the device: recomputes free, swaps go out */
    for (int k = 0; k < it->npre && !st; k++) {
        const serve_preempt *p = &it->pre[k];
        if (p->how == PREEMPT_SWAP)
            st = relocate(b, p->req, true, e);
        else
            release(b, &b->tab[p->req]);
    }
    /* cached blocks taken for new ones are free again */
    for (int k = 0; k < it->nevict && !st; k++) {
        const int32_t en = it->evicted[k];
        if (!b->entry_of || en < 0 || en >= b->dev_blocks || b->entry_of[b->block_of[en]] != en)
            return diag_set(e, LLMSIM_EFAIL, "internal error: prefix cache entry %d evicted "
                            "but not cached", en);
        b->entry_of[b->block_of[en]] = -1;
        give_back(b->free_dev, &b->nfree_dev, b->block_of[en]);
    }
    for (int k = 0; k < it->nin && !st; k++)
        st = relocate(b, it->swapped_in[k], false, e);
    /* admitted requests start with their cached blocks */
    for (int k = 0; k < it->nhit && !st; k++) {
        const serve_prefix_hit *h = &it->hit[k];
        serve_block_table *t = &b->tab[h->req];
        if (!b->entry_of || h->entry < 0 || h->entry >= b->dev_blocks ||
            b->entry_of[b->block_of[h->entry]] != h->entry || t->swapped)
            return diag_set(e, LLMSIM_EFAIL, "internal error: request %u starts with prefix cache "
                            "entry %d, not cached", h->req + 1, h->entry);
        if (!reserve(t, t->n + 1))
            return diag_set(e, LLMSIM_EFAIL, "out of memory");
        t->ids[t->n++] = b->block_of[h->entry];
    }
    for (int k = 0; k < it->nch && !st; k++)
        st = resize(b, it->req[k], serve_sched_blocks(sc, it->req[k], NULL), e);
    return st;
}

void serve_blocks_finish(serve_blocks *b, const serve_sched *sc, const serve_iter *it)
{
    int nreg;
    const serve_prefix_reg *reg = serve_sched_registered(sc, &nreg);
    for (int k = 0; k < nreg && b->entry_of; k++) {
        const int32_t id = b->tab[reg[k].req].ids[reg[k].block];
        b->entry_of[id] = reg[k].entry;
        b->block_of[reg[k].entry] = id;
    }
    for (int k = 0; k < it->nch; k++)
        if (serve_sched_blocks(sc, it->req[k], NULL) == 0 && b->tab[it->req[k]].n)
            release(b, &b->tab[it->req[k]]);
}
