/*
 * test_golden_simulate — the JSON of `llmsim simulate` for small fixed cases
 * (OPT-125M and a LLaMA-family model, offloaded over every tier), held
 * against tests/golden/simulate/. The simulation has no randomness: the
 * plan is deterministic and events are ordered by (time, sequence), so the
 * same inputs give the same numbers to GOLDEN_REL_TOL. Regenerate
 * deliberately with LLMSIM_GOLDEN_UPDATE=1 and commit the files with the
 * change that explains them. (The wall time of the simulation is left out.)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sim/sim.h"
#include "golden.h"
#include "tap.h"


typedef struct golden_case {
    const char *name;
    const char *args[40];
} golden_case;

static const golden_case cases[] = {
    {"opt125m-t4-offloaded",
     {"simulate", "--model", "opt-125m", "--hardware", "t4-flexgen", "--percent", "30", "50", "20",
      "50", "50", "25", "--gpu-batch-size", "4", "--num-gpu-batches", "3", "--prompt-len", "64",
      "--gen-len", "6", NULL}},
    {"opt125m-t4-delegated-4bit",
     {"simulate", "--model", "opt-125m", "--hardware", "t4-flexgen", "--percent", "0", "100", "0",
      "100", "0", "100", "--gpu-batch-size", "8", "--num-gpu-batches", "2", "--cpu-attention",
      "--compress-weight", "--prompt-len", "32", "--gen-len", "5", NULL}},
    {"llama31-8b-cpu-disk",
     {"simulate", "--model", "llama-3.1-8b", "--hardware", "cpu-only", "--percent", "0", "70", "0",
      "50", "0", "100", "--gpu-batch-size", "2", "--num-gpu-batches", "2", "--kv-quant", "8/64",
      "--prompt-len", "48", "--gen-len", "4", NULL}},
};

int main(void)
{
    printf("# no random seed: the simulation is deterministic by construction\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const golden_case *gc = &cases[i];
        int argc = 0;
        while (gc->args[argc])
            argc++;
        cli_job *job = calloc(1, sizeof *job);
        bool help;
        CHECK(cli_job_parse(argc, (char **)gc->args, "simulate", job, &help) == 0, "%s: arguments",
              gc->name);
        diag e = {0};
        plan pl;
        sim_result r;
        double cap[TIER_COUNT] = {job->hw.gpu.present ? job->hw.gpu.memory_bytes : 0,
                                  job->hw.cpu.memory_bytes, job->hw.disk.capacity_bytes};
        if (plan_build(&job->model, &job->hw, &job->policy, &job->workload, &pl, &e) ||
            sim_run(&pl, cap, false, &r, &e)) {
            CHECK(0, "%s: %s", gc->name, e.msg);
            free(job);
            continue;
        }
        sim_totals t;
        sim_totals_get(&pl, &r, &t);
        cJSON *got = cli_simulation_json(job, &pl, &r, &t);
        cJSON *sim = cJSON_GetObjectItemCaseSensitive(got, "simulation");
        cJSON_DeleteItemFromObjectCaseSensitive(sim, "wall_s");
        cJSON_DeleteItemFromObjectCaseSensitive(sim, "events_per_s");
        golden_check("simulate", gc->name, got);
        cJSON_Delete(got);
        sim_result_free(&r);
        plan_free(&pl);
        free(job);
    }
    return tap_done();
}
