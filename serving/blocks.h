/*
 * blocks — the paged KV cache's bookkeeping for an engine: a pool of
 * physical blocks on the compute device, a pool of swap slots, and a block
 * table per request (its blocks in order: block j holds tokens
 * j*block_size .. (j+1)*block_size - 1 of its context). The scheduler
 * (sched.h) decides how many blocks each request holds; serve_blocks_sync
 * makes the tables match after each form and complete, and lists the copies
 * an engine must do: a swapped-out request's device blocks to swap slots, a
 * swapped-in one's slots back to device blocks, in table order.
 *
 * With the prefix cache, a device block may be a cache entry's (the
 * scheduler's serving/prefix.h): shared by the tables of every request that
 * holds the entry, and kept, not freed, when they let it go, until the
 * scheduler reuses it. A request admitted with cached blocks starts its
 * table with them.
 *
 * Block ids are handed out lowest first from a free list, so a run's tables
 * are a function of its schedule alone.
 */
#ifndef LLMSIM_SERVING_BLOCKS_H
#define LLMSIM_SERVING_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "serving/sched.h"

/* One block copy: device block `dev` to swap slot `swap` (out) or back (in). */
typedef struct serve_block_move {
    uint32_t req;
    int32_t dev, swap;
    bool out;
} serve_block_move;

typedef struct serve_block_table {
    int32_t *ids;  /* [n] device blocks, or swap slots while swapped */
    int64_t n, cap;
    bool swapped;
} serve_block_table;

typedef struct serve_blocks {
    int64_t dev_blocks, swap_slots;
    int32_t *free_dev, *free_swap; /* stacks, the lowest id on top */
    int64_t nfree_dev, nfree_swap;
    serve_block_table *tab;        /* [nreq] */
    size_t nreq;
    int32_t *entry_of;             /* prefix cache: [dev_blocks] a block's entry, -1: none */
    int32_t *block_of;             /* [dev_blocks] an entry's block */
    serve_block_move *moves;       /* the last sync's copies */
    size_t nmoves, cap_moves;
} serve_blocks;

llmsim_status serve_blocks_init(serve_blocks *b, int64_t dev_blocks, int64_t swap_slots,
                                size_t nreq, bool prefix_cache, diag *e);
void serve_blocks_free(serve_blocks *b);

/* Make the tables of it's requests (its chunks', preempted and swapped-in
 * ones) match the scheduler: freed, moved to swap slots, brought back or
 * grown. b->moves lists the copies to do before it's forward pass. Fails
 * (LLMSIM_EFAIL, a bug) when the counts cannot be met. */
llmsim_status serve_blocks_sync(serve_blocks *b, const serve_sched *sc, const serve_iter *it,
                                diag *e);
/* After it completed: the blocks it registered in the prefix cache become
 * their entries', and the tables of requests that finished are freed. */
void serve_blocks_finish(serve_blocks *b, const serve_sched *sc, const serve_iter *it);

#endif
