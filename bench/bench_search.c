/*
 * bench_search — how long the full policy search takes, and how many LPs it
 * solves.
 *
 *   bench_search [MODEL HARDWARE PROMPT GEN REPEATS [--no-quant]]
 *
 * Default: OPT-175B on t4-flexgen, prompt 512, gen 32, all discrete choices
 * (batch sizes, batch counts, 7 x 7 quantization settings, delegation on and
 * off), 5 repeats; prints the median wall time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/search.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *mname = argc > 1 ? argv[1] : "opt-175b";
    const char *hname = argc > 2 ? argv[2] : "t4-flexgen";
    workload w = {.prompt_len = argc > 3 ? atoll(argv[3]) : 512,
                  .gen_len = argc > 4 ? atoll(argv[4]) : 32};
    int repeats = argc > 5 ? atoi(argv[5]) : 5;
    bool no_quant = argc > 6 && strcmp(argv[6], "--no-quant") == 0;
    if (repeats < 1)
        repeats = 1;
    model m;
    hwprofile *hw = malloc(sizeof *hw);
    diag e;
    diag_clear(&e);
    if (!hw || model_load(mname, &m, &e) || hwprofile_load(hname, hw, &e)) {
        fprintf(stderr, "bench_search: %s\n", e.msg);
        free(hw);
        return 2;
    }
    search_options o;
    search_options_init(&o);
    o.no_quant = no_quant;
    double t[64];
    if (repeats > 64)
        repeats = 64;
    search_result r;
    long lps = 0, infeasible = 0, evaluated = 0;
    double best = 0;
    for (int i = 0; i < repeats; i++) {
        if (search_run(&m, hw, &w, &o, &r, &e)) {
            fprintf(stderr, "bench_search: %s\n", e.msg);
            free(hw);
            return 1;
        }
        t[i] = r.search_s;
        lps = r.lps_solved;
        infeasible = r.lps_infeasible;
        evaluated = r.candidates_evaluated;
        best = r.best.throughput_tok_s;
        search_result_free(&r);
    }
    qsort(t, (size_t)repeats, sizeof *t, cmp_double);
    printf("model %s, hardware %s, prompt %lld, gen %lld%s, %d repeats\n", mname, hname,
           w.prompt_len, w.gen_len, no_quant ? ", no quantization" : "", repeats);
    printf("search: median %.3f s, min %.3f s; %ld LPs built, %ld optimal, %ld infeasible "
           "(%.1f us per LP); best %.4g tok/s\n", t[repeats / 2], t[0], evaluated, lps, infeasible,
           1e6 * t[repeats / 2] / (double)evaluated, best);
    free(hw);
    return 0;
}
