/*
 * test_golden_predict — the JSON of `llmsim predict` for fixed cases, held
 * against files in tests/golden/predict/. Every number must agree to
 * GOLDEN_REL_TOL; keys, strings and booleans exactly. A change to the cost
 * model shows up here as a diff to review; regenerate deliberately with
 *   LLMSIM_GOLDEN_UPDATE=1 ctest -R golden
 * and commit the new files with the change that explains them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "golden.h"
#include "tap.h"


typedef struct golden_case {
    const char *name;
    const char *args[40];
} golden_case;

static const golden_case cases[] = {
    {"flexgen-opt30b-t4",
     {"predict", "--model", "opt-30b", "--hardware", "t4-flexgen", "--percent", "20", "80", "0",
      "100", "0", "100", "--gpu-batch-size", "48", "--num-gpu-batches", "3", "--cpu-attention",
      "--prompt-len", "512", "--gen-len", "32", NULL}},
    {"flexgen-opt175b-t4",
     {"predict", "--model", "opt-175b", "--hardware", "t4-flexgen", "--percent", "0", "50", "0",
      "0", "0", "100", "--gpu-batch-size", "32", "--num-gpu-batches", "8", "--cpu-attention",
      "--prompt-len", "512", "--gen-len", "32", NULL}},
    {"llama2-70b-h100-4bit",
     {"predict", "--model", "llama-2-70b", "--hardware", "h100-80gb-sxm", "--percent", "100", "0",
      "50", "50", "100", "0", "--gpu-batch-size", "32", "--num-gpu-batches", "4",
      "--compress-weight", "--cpu-attention", "--prompt-len", "512", "--gen-len", "32", NULL}},
    {"llama31-8b-cpu-kv8",
     {"predict", "--model", "llama-3.1-8b", "--hardware", "cpu-only", "--percent", "0", "60", "0",
      "50", "0", "100", "--gpu-batch-size", "8", "--num-gpu-batches", "2", "--kv-quant", "8/128",
      "--prompt-len", "256", "--gen-len", "64", NULL}},
    {"mistral-7b-4090-no-overlap",
     {"predict", "--model", "mistral-7b", "--hardware", "rtx4090", "--percent", "40", "60", "0",
      "100", "100", "0", "--gpu-batch-size", "16", "--num-gpu-batches", "2", "--no-overlap",
      "--prompt-len", "1024", "--gen-len", "16", NULL}},
};

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const golden_case *gc = &cases[i];
        int argc = 0;
        while (gc->args[argc])
            argc++;
        cli_job *job = calloc(1, sizeof *job);
        bool help;
        int st = cli_job_parse(argc, (char **)gc->args, "predict", job, &help);
        CHECK(st == 0, "%s: arguments rejected (%d)", gc->name, st);
        if (st) {
            free(job);
            continue;
        }
        diag e;
        diag_clear(&e);
        cm_result r;
        llmsim_status ps = cm_predict(&job->model, &job->hw, &job->policy, &job->workload, &r, &e);
        CHECK(ps == LLMSIM_OK, "%s: %s", gc->name, e.msg);
        if (ps == LLMSIM_OK) {
            cJSON *got = cli_prediction_json(job, &r);
            golden_check("predict", gc->name, got);
            cJSON_Delete(got);
        }
        cm_result_free(&r);
        free(job);
    }
    return tap_done();
}
