/*
 * cmd_predict — `llmsim predict`: the analytic cost model's prediction of a
 * policy, printed and recorded in the store.
 */
#include <stdlib.h>

#include "cli/cli.h"
#include "db/record.h"

int cmd_predict(int argc, char **argv)
{
    cli_job *job = calloc(1, sizeof *job);
    if (!job) {
        fprintf(stderr, "llmsim predict: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    bool help;
    int status = cli_job_parse(argc, argv, "predict", job, &help);
    if (help) {
        cli_job_usage(stdout, "predict",
                      "Predict throughput, latency, per-stage time and peak memory of a policy\n"
                      "with the analytic cost model; the prediction is recorded in the store.");
        free(job);
        return CLI_EXIT_OK;
    }
    if (status) {
        free(job);
        return status;
    }
    diag e;
    diag_clear(&e);
    cm_result r;
    if (cm_predict(&job->model, &job->hw, &job->policy, &job->workload, &r, &e)) {
        status = cli_fail("predict", &e);
        cm_result_free(&r);
        free(job);
        return status;
    }
    cJSON *obj = cli_prediction_json(job, &r);
    char *text = cJSON_PrintUnformatted(obj);
    int64_t run_id = 0;
    record_job rj = cli_record_job(job);
    llmsim_status st = record_prediction(&rj, "predict", &r, text, &run_id, &e);
    free(text);
    if (st) {
        cJSON_Delete(obj);
        status = cli_fail("predict", &e);
    } else {
        cJSON_AddNumberToObject(obj, "run_id", (double)run_id);
        if (job->format == CLI_FORMAT_JSON) {
            cli_print_json(obj);
        } else {
            cJSON_Delete(obj);
            cli_prediction_table(stdout, job, &r);
            printf("\nrecorded as run %lld in %s\n", (long long)run_id, job->db_path);
        }
    }
    cm_result_free(&r);
    free(job);
    return status;
}
