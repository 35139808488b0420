/*
 * bench_predict — how long one prediction of the analytic cost model takes.
 *
 *   bench_predict [MODEL HARDWARE PROMPT GEN REPEATS]
 *
 * Loads the inputs once, then times cm_predict (placement, per-layer linear
 * forms, every decode step, peak memory) REPEATS times with a monotonic
 * clock and prints the median and the spread. Default: llama-2-70b on
 * h100-80gb-sxm, prompt 512, gen 32, weights and cache on the CPU.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "costmodel/analytic.h"
#include "common/clock.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *mname = argc > 1 ? argv[1] : "llama-2-70b";
    const char *hname = argc > 2 ? argv[2] : "h100-80gb-sxm";
    workload w = {.prompt_len = argc > 3 ? atoll(argv[3]) : 512,
                  .gen_len = argc > 4 ? atoll(argv[4]) : 32};
    int repeats = argc > 5 ? atoi(argv[5]) : 200;
    if (repeats < 1)
        repeats = 1;
    model m;
    hwprofile *hw = malloc(sizeof *hw);
    diag e;
    diag_clear(&e);
    if (!hw || model_load(mname, &m, &e) || hwprofile_load(hname, hw, &e)) {
        fprintf(stderr, "bench_predict: %s\n", e.msg);
        free(hw);
        return 2;
    }
    policy p;
    policy_init(&p);
    const char *pct[6] = {"20", "80", "0", "100", "0", "100"};
    policy_from_percent(pct, &p, &e);
    p.gpu_batch_size = 64;
    p.num_gpu_batches = 4;
    double *t = malloc(sizeof(double) * (size_t)repeats);
    if (!t) {
        fprintf(stderr, "bench_predict: out of memory\n");
        free(hw);
        return 1;
    }
    cm_result r;
    double tput = 0;
    for (int i = 0; i < repeats; i++) {
        double t0 = llmsim_now_s();
        if (cm_predict(&m, hw, &p, &w, &r, &e)) {
            fprintf(stderr, "bench_predict: %s\n", e.msg);
            free(t);
            free(hw);
            return 1;
        }
        t[i] = llmsim_now_s() - t0;
        tput = r.throughput_tok_s;
        cm_result_free(&r);
    }
    qsort(t, (size_t)repeats, sizeof *t, cmp_double);
    printf("model %s, hardware %s, prompt %lld, gen %lld, %d repeats\n", mname, hname,
           w.prompt_len, w.gen_len, repeats);
    printf("cm_predict: median %.3f ms, min %.3f ms, p90 %.3f ms (predicted %.4g tok/s)\n",
           1e3 * t[repeats / 2], 1e3 * t[0], 1e3 * t[(repeats * 9) / 10], tput);
    free(t);
    free(hw);
    return 0;
}
