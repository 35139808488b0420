/*
 * test_golden_cli — the whole `llmsim` binary, end to end: the JSON that
 * predict, simulate and serve-sim print for fixed cases, held against
 * tests/golden/cli/. The other golden tests call the library; this one runs
 * the command line (argument parsing, loading, the store, printing), so that
 * moving code between the parts cannot change what a user sees without this
 * test saying so. The files were recorded before the layering of issue 21 and
 * must not change with it. What a run cannot repeat is left out: the run's
 * number in the store and the wall time of the simulation.
 *
 * Regenerate deliberately with LLMSIM_GOLDEN_UPDATE=1 and commit the files
 * with the change that explains them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "golden.h"
#include "tap.h"

typedef struct golden_case {
    const char *name;
    const char *args; /* after `llmsim`; --format json and --db are added */
} golden_case;

static const golden_case cases[] = {
    {"predict-opt30b-t4-flexgen",
     "predict --model opt-30b --hardware t4-flexgen --policy "
     "policies/examples/flexgen-opt30b-t4.yaml --prompt-len 512 --gen-len 32"},
    {"predict-llama2-70b-h100-4bit",
     "predict --model llama-2-70b --hardware h100-80gb-sxm --policy "
     "policies/examples/llama2-70b-h100-4bit.yaml --prompt-len 512 --gen-len 32"},
    {"predict-mistral-7b-cpu-disk-kv4",
     "predict --model mistral-7b --hardware cpu-only --percent 0 40 0 30 0 100 "
     "--gpu-batch-size 4 --num-gpu-batches 3 --kv-quant 4/64 --prompt-len 300 --gen-len 20 "
     "--num-prompts 30"},
    {"simulate-opt125m-t4-every-tier",
     "simulate --model opt-125m --hardware t4-flexgen --percent 30 50 20 50 50 25 "
     "--gpu-batch-size 4 --num-gpu-batches 3 --prompt-len 64 --gen-len 6"},
    {"simulate-opt1.3b-t4-delegated-8bit",
     "simulate --model opt-1.3b --hardware t4-flexgen --percent 20 60 0 70 0 100 "
     "--gpu-batch-size 8 --num-gpu-batches 2 --cpu-attention --weight-quant 8/64 "
     "--prompt-len 40 --gen-len 5 --no-pin-weights"},
    {"simulate-llama31-8b-cpu-no-overlap",
     "simulate --model llama-3.1-8b --hardware cpu-only --percent 0 70 0 50 0 100 "
     "--gpu-batch-size 2 --num-gpu-batches 2 --kv-quant 8/64 --no-overlap --prompt-len 48 "
     "--gen-len 4"},
    {"serve-opt125m-t4-swap",
     "serve-sim --model opt-125m --hardware t4-flexgen --rate 40 --num-requests 60 "
     "--prompt-len uniform:64,512 --output-len uniform:16,256 --seed 7 --kv-memory 64MiB "
     "--preemption swap"},
    {"serve-llama31-8b-a100-fair-adaptive",
     "serve-sim --model llama-3.1-8b --hardware a100-80gb-sxm --rate 8 --num-requests 80 "
     "--seed 3 --scheduler fair --preemption adaptive --kv-memory 1GiB --max-batch 32 "
     "--token-budget 512"},
    {"serve-opt125m-cpu-trace",
     "serve-sim --model opt-125m --hardware cpu-only --trace-in tests/data/serve/trace-small.csv "
     "--block-size 32 --swap-space 256MiB"},
};

/* Remove, at any depth, the keys a repeated run cannot reproduce. */
static void strip_volatile(cJSON *o)
{
    static const char *const keys[] = {"run_id", "wall_s", "sim_wall_s", "events_per_s"};
    if (!cJSON_IsObject(o) && !cJSON_IsArray(o))
        return;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        cJSON_DeleteItemFromObjectCaseSensitive(o, keys[k]);
    for (cJSON *c = o->child; c; c = c->next)
        strip_volatile(c);
}

static char *slurp(FILE *f)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (n + 1 == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    }
    if (buf)
        buf[n] = '\0';
    return buf;
}

int main(void)
{
    const char *llmsim = getenv("LLMSIM"), *src = getenv("LLMSIM_DATA_DIR");
    if (!llmsim || !src) {
        printf("1..0 # SKIP LLMSIM and LLMSIM_DATA_DIR are set by ctest\n");
        return 77;
    }
    char db[] = "/tmp/llmsim-golden-cli-XXXXXX";
    int fd = mkstemp(db);
    CHECK(fd >= 0, "a temporary store");
    if (fd < 0)
        return tap_done();
    close(fd);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const golden_case *gc = &cases[i];
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s --format json --db '%s'", src, llmsim,
                 gc->args, db);
        FILE *p = popen(cmd, "r");
        CHECK(p != NULL, "%s: cannot start llmsim", gc->name);
        if (!p)
            continue;
        char *out = slurp(p);
        int rc = pclose(p);
        CHECK(rc == 0, "%s: llmsim exited with %d", gc->name, rc);
        cJSON *got = out ? cJSON_Parse(out) : NULL;
        CHECK(got != NULL, "%s: the output is one JSON object", gc->name);
        if (got && rc == 0) {
            strip_volatile(got);
            golden_check("cli", gc->name, got);
        }
        cJSON_Delete(got);
        free(out);
    }
    unlink(db);
    char side[sizeof db + 8];
    snprintf(side, sizeof side, "%s-wal", db);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", db);
    unlink(side);
    return tap_done();
}
