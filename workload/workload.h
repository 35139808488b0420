/*
 * workload — what is asked of the model. Offline: num_prompts prompts of
 * prompt_len tokens, each generating gen_len tokens (the FlexGen setting).
 * Serving workloads (arrival traces) come with the serving simulator.
 */
#ifndef LLMSIM_WORKLOAD_WORKLOAD_H
#define LLMSIM_WORKLOAD_WORKLOAD_H

#include "common/diag.h"
#include "common/strbuf.h"

typedef struct workload {
    long long prompt_len;  /* tokens per prompt */
    long long gen_len;     /* tokens generated per prompt, >= 1 */
    long long num_prompts; /* 0: one block (gpu_batch_size x num_gpu_batches) */
} workload;

llmsim_status workload_load_yaml(const char *path, workload *w, diag *e);
/* The same over YAML text in memory (the store keeps inputs as text); name
 * stands for the file in messages. */
llmsim_status workload_load_yaml_text(const char *name, const char *text, workload *w, diag *e);
llmsim_status workload_validate(const workload *w, const char *where, diag *e);
void workload_save(const workload *w, strbuf *out);

#endif
