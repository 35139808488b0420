/* record — store a job's inputs and a prediction (see record.c). */
#ifndef LLMSIM_CLI_RECORD_H
#define LLMSIM_CLI_RECORD_H

#include <stdint.h>

#include "cli/cli.h"
#include "db/store.h"

typedef struct cli_input_hashes {
    char model[17], hw[17], policy[17], workload[17];
} cli_input_hashes;

llmsim_status cli_record_inputs(store *db, const cli_job *job, cli_input_hashes *h, diag *e);
/* One run of `kind` with the prediction's metrics and per-step stages, in one
 * transaction; *run_id gets its id. */
llmsim_status cli_record_prediction(const cli_job *job, const char *kind, const cm_result *r,
                                    const char *result_json, int64_t *run_id, diag *e);

#endif
