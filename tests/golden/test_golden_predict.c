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
#include "tap.h"

/* Same inputs, same code: only floating-point reassociation may differ. */
#define GOLDEN_REL_TOL 1e-9

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

static void compare(const cJSON *want, const cJSON *got, const char *path, int *diffs)
{
    char sub[512];
    if ((want->type & 0xff) != (got->type & 0xff)) {
        CHECK(0, "%s: type differs", path);
        (*diffs)++;
        return;
    }
    if (cJSON_IsNumber(want)) {
        double a = want->valuedouble, b = got->valuedouble;
        double tol = GOLDEN_REL_TOL * fmax(fabs(a), 1e-12);
        if (!(fabs(a - b) <= tol)) {
            CHECK(0, "%s: golden %.17g, now %.17g", path, a, b);
            (*diffs)++;
        }
    } else if (cJSON_IsString(want)) {
        if (strcmp(want->valuestring, got->valuestring) != 0) {
            CHECK(0, "%s: golden '%s', now '%s'", path, want->valuestring, got->valuestring);
            (*diffs)++;
        }
    } else if (cJSON_IsArray(want) || cJSON_IsObject(want)) {
        int nw = cJSON_GetArraySize(want), ng = cJSON_GetArraySize(got);
        if (nw != ng) {
            CHECK(0, "%s: %d entries in golden, %d now", path, nw, ng);
            (*diffs)++;
        }
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
                (*diffs)++;
                continue;
            }
            compare(w, g, sub, diffs);
        }
    } else if (cJSON_IsBool(want) && cJSON_IsTrue(want) != cJSON_IsTrue(got)) {
        CHECK(0, "%s: boolean differs", path);
        (*diffs)++;
    }
}

int main(void)
{
    bool update = getenv("LLMSIM_GOLDEN_UPDATE") != NULL;
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
            char path[1024];
            snprintf(path, sizeof path, "%s/predict/%s.json", getenv("LLMSIM_GOLDEN"), gc->name);
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
                CHECK(text != NULL, "%s: no golden file %s (run with LLMSIM_GOLDEN_UPDATE=1)",
                      gc->name, path);
                cJSON *want = text ? cJSON_Parse(text) : NULL;
                CHECK(!text || want, "%s: golden file is not JSON", gc->name);
                if (want) {
                    int diffs = 0;
                    compare(want, got, gc->name, &diffs);
                    CHECK(diffs == 0, "%s: %d differences from %s", gc->name, diffs, path);
                }
                cJSON_Delete(want);
                free(text);
            }
            cJSON_Delete(got);
        }
        cm_result_free(&r);
        free(job);
    }
    return tap_done();
}
