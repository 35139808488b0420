/*
 * ram — what both CPU backends (the plan's, backend.c, and serving's,
 * serve.c) do alike with RAM: every buffer from one allocator that counts
 * it, so that a dry run adds up exactly what a real one allocates without
 * allocating it (the --max-ram check before a run); and the weights placed
 * in RAM or in the O_DIRECT weights file and filled from the checkpoint or
 * the seed.
 */
#ifndef LLMSIM_EXEC_CPU_RAM_H
#define LLMSIM_EXEC_CPU_RAM_H

#include <stdbool.h>
#include <stddef.h>

#include "exec/weights.h"

typedef struct cpu_ram {
    bool dry;      /* count, allocate nothing (malloc(1) stand-ins) */
    double bytes;  /* what was (or would be) allocated */
} cpu_ram;

/* An OFFLOAD_ALIGN-aligned zeroed buffer of bytes, counted; NULL when out
 * of memory. Freed with free(). */
void *cpu_ram_alloc(cpu_ram *r, size_t bytes);
/* The same as callbacks: ctx is the cpu_ram (exec_acts, the fill). */
void *cpu_ram_alloc_cb(void *ctx, size_t bytes);
void cpu_ram_free_cb(void *ctx, void *p);

/* Units [0, L] placed as pr: laid out (*units calloc'd), the disk tensors
 * in a new "weights.bin" of dir (*wfile), the others in RAM; filled from
 * o's checkpoint or seed over pl (nothing filled when dry: the RAM
 * tensors are counted). */
llmsim_status cpu_weights_init(cpu_ram *r, offload_dir *dir, const model *m, const quant *wq,
                               const placement_realized *pr, const engine_opts *o, pool *pl,
                               exec_wunit **units, exec_wextent *ext, offload_file **wfile,
                               diag *e);
/* Free the RAM tensors of units [0, L] and units itself (NULL accepted). */
void cpu_weights_free(exec_wunit *units, int L);

#endif
