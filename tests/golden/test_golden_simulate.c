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
#include "tap.h"

#define GOLDEN_REL_TOL 1e-9

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

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

static int compare(const cJSON *want, const cJSON *got, const char *path)
{
    char sub[512];
    int diffs = 0;
    if ((want->type & 0xff) != (got->type & 0xff)) {
        CHECK(0, "%s: type differs", path);
        return 1;
    }
    if (cJSON_IsNumber(want)) {
        double a = want->valuedouble, b = got->valuedouble;
        if (!(fabs(a - b) <= GOLDEN_REL_TOL * fmax(fabs(a), 1e-12))) {
            CHECK(0, "%s: golden %.17g, now %.17g", path, a, b);
            diffs++;
        }
    } else if (cJSON_IsString(want)) {
        if (strcmp(want->valuestring, got->valuestring) != 0) {
            CHECK(0, "%s: golden '%s', now '%s'", path, want->valuestring, got->valuestring);
            diffs++;
        }
    } else if (cJSON_IsArray(want) || cJSON_IsObject(want)) {
        CHECK(cJSON_GetArraySize(want) == cJSON_GetArraySize(got), "%s: entry count differs", path);
        int i = 0;
        for (const cJSON *w = want->child; w; w = w->next, i++) {
            const cJSON *g = cJSON_IsArray(want) ? cJSON_GetArrayItem(got, i)
                                                  : cJSON_GetObjectItemCaseSensitive(got, w->string);
            if (cJSON_IsArray(want))
                snprintf(sub, sizeof sub, "%s[%d]", path, i);
            else
                snprintf(sub, sizeof sub, "%s.%s", path, w->string);
            if (!g) {
                CHECK(0, "%s: missing now", sub);
                diffs++;
                continue;
            }
            diffs += compare(w, g, sub);
        }
    } else if (cJSON_IsBool(want) && cJSON_IsTrue(want) != cJSON_IsTrue(got)) {
        CHECK(0, "%s: boolean differs", path);
        diffs++;
    }
    return diffs;
}

int main(void)
{
    bool update = getenv("LLMSIM_GOLDEN_UPDATE") != NULL;
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
        cli_sim_totals t;
        cli_sim_totals_get(&pl, &r, &t);
        cJSON *got = cli_simulation_json(job, &pl, &r, &t);
        cJSON *sim = cJSON_GetObjectItemCaseSensitive(got, "simulation");
        cJSON_DeleteItemFromObjectCaseSensitive(sim, "wall_s");
        cJSON_DeleteItemFromObjectCaseSensitive(sim, "events_per_s");
        char path[1024];
        snprintf(path, sizeof path, "%s/simulate/%s.json", getenv("LLMSIM_GOLDEN"), gc->name);
        if (update) {
            char *text = cJSON_Print(got);
            FILE *f = fopen(path, "w");
            CHECK(f != NULL, "cannot write %s", path);
            if (f) {
                fprintf(f, "%s\n", text);
                fclose(f);
            }
            free(text);
        } else {
            char *text = read_file(path);
            CHECK(text != NULL, "%s: no golden file %s (run with LLMSIM_GOLDEN_UPDATE=1)", gc->name,
                  path);
            cJSON *want = text ? cJSON_Parse(text) : NULL;
            if (want)
                CHECK(compare(want, got, gc->name) == 0, "%s differs from %s", gc->name, path);
            cJSON_Delete(want);
            free(text);
        }
        cJSON_Delete(got);
        sim_result_free(&r);
        plan_free(&pl);
        free(job);
    }
    return tap_done();
}
