/* golden — see golden.h. */
#include "golden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
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
    if ((want->type & 0xff) != (got->type & 0xff)) {
        CHECK(0, "%s: type differs", path);
        return 1;
    }
    int diffs = 0;
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
        int nw = cJSON_GetArraySize(want), ng = cJSON_GetArraySize(got);
        if (nw != ng) {
            CHECK(0, "%s: %d entries in golden, %d now", path, nw, ng);
            diffs++;
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

void golden_check(const char *dir, const char *name, const cJSON *got)
{
    char path[1024];
    const char *root = getenv("LLMSIM_GOLDEN");
    snprintf(path, sizeof path, "%s/%s/%s.json", root ? root : "tests/golden", dir, name);
    if (getenv("LLMSIM_GOLDEN_UPDATE")) {
        char *text = cJSON_Print(got);
        FILE *f = fopen(path, "w");
        CHECK(f != NULL, "cannot write %s", path);
        if (f) {
            fprintf(f, "%s\n", text);
            fclose(f);
        }
        free(text);
        return;
    }
    char *text = read_file(path);
    CHECK(text != NULL, "%s: no golden file %s (run with LLMSIM_GOLDEN_UPDATE=1)", name, path);
    cJSON *want = text ? cJSON_Parse(text) : NULL;
    CHECK(!text || want, "%s: golden file is not JSON", name);
    if (want) {
        int diffs = compare(want, got, name);
        CHECK(diffs == 0, "%s: %d differences from %s", name, diffs, path);
    }
    cJSON_Delete(want);
    free(text);
}
