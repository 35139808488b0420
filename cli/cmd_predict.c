/*
 * cmd_predict — `llmsim predict`: the analytic cost model's prediction of a
 * policy, printed and recorded in the store.
 */
#include <stdlib.h>

#include "cli/cli.h"
#include "db/record.h"

/* Predict, record and print the job's prediction. */
static int predict(const cli_job *job)
{
    diag e;
    diag_clear(&e);
    cm_result r;
    if (cm_predict(&job->model, &job->hw, &job->policy, &job->workload, &r, &e)) {
        int status = cli_fail("predict", &e);
        cm_result_free(&r);
        return status;
    }
    cJSON *obj = cli_prediction_json(job, &r);
    if (r.feasible)
        cli_interval_report("predict", job, r.total_s, r.throughput_tok_s * r.total_s, obj, NULL);
    char *text = cJSON_PrintUnformatted(obj);
    int64_t run_id = 0;
    record_job rj = cli_record_job(job);
    llmsim_status st = record_prediction(&rj, "predict", &r, text, &run_id, &e);
    free(text);
    int status = CLI_EXIT_OK;
    if (!st) /* not recorded, the result is still printed (without a run id) */
        cJSON_AddNumberToObject(obj, "run_id", (double)run_id);
    if (!cli_print_json_if_asked(job->format, obj)) {
        cli_prediction_table(stdout, job, &r);
        if (!st)
            printf("\nrecorded as run %lld in %s\n", (long long)run_id, job->db_path);
    }
    if (st) {
        fflush(stdout);
        status = cli_not_recorded("predict", &e);
    }
    cm_result_free(&r);
    return status;
}

int cmd_predict(int argc, char **argv)
{
    cli_job *job;
    int status = cli_job_new(argc, argv, "predict",
                             "Predict throughput, latency, per-stage time and peak memory of a policy\n"
                             "with the analytic cost model; the prediction is recorded in the store.",
                             NULL, &job);
    if (job)
        cli_flagged_check("predict", job->hw_spec, &job->hw,
                          placement_hw_uses(&job->model, &job->hw, &job->policy), false);
    if (job)
        status = predict(job);
    free(job);
    return status;
}
