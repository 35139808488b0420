/*
 * bench_serve — how fast the serving simulator runs.
 *
 *   bench_serve [N]      N requests (default 100,000) of LLaMA-2-7B on
 *                        a100-80gb-sxm, Poisson arrivals at 50 requests/s
 *                        (about 6x what the machine serves, so the server is
 *                        saturated from the first seconds to the last),
 *                        prompts uniform:64,1024, outputs uniform:16,512,
 *                        seed 1; vLLM's defaults otherwise
 *
 * For every preemption mode x scheduler: the best of three wall times of
 * serve_run (the requests are generated once, outside the timing), its
 * iterations and events, events/s and simulated requests/s, and the
 * simulated throughput, as a check that the runs did the same work.
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/clock.h"
#include "models/model.h"
#include "sim/serve.h"

int main(int argc, char **argv)
{
    long long n = argc > 1 ? atoll(argv[1]) : 100000;
    if (n < 1) {
        fprintf(stderr, "usage: bench_serve [NUM_REQUESTS]\n");
        return 2;
    }
    model m;
    hwprofile *hw = malloc(sizeof *hw);
    diag e = {0};
    if (!hw || model_load("llama-2-7b", &m, &e) || hwprofile_load("a100-80gb-sxm", hw, &e)) {
        fprintf(stderr, "bench_serve: %s\n", e.msg);
        free(hw);
        return 1;
    }
    serve_gen g = {.arrival = SERVE_ARRIVAL_POISSON, .rate = 50, .cv = 1, .num_requests = n,
                   .seed = 1};
    serve_requests q;
    if (serve_dist_parse("uniform:64,1024", "prompt", true, &g.prompt_len, &e) ||
        serve_dist_parse("uniform:16,512", "output", true, &g.output_len, &e) ||
        serve_dist_parse("1", "weight", false, &g.weight, &e) || serve_generate(&g, &q, &e)) {
        fprintf(stderr, "bench_serve: %s\n", e.msg);
        free(hw);
        return 1;
    }
    policy p;
    policy_init(&p);
    printf("%lld requests, llama-2-7b on a100-80gb-sxm, Poisson at 50/s\n", n);
    printf("%-10s %-6s %9s %10s %10s %12s %12s %10s\n", "preempt", "sched", "wall_s", "iterations",
           "events", "events/s", "requests/s", "tok/s sim");
    for (int pm = 0; pm < 3; pm++)
        for (int sc = 0; sc < 2; sc++) {
            serve_config c;
            serve_config_init(&c);
            c.preempt = (preemption)pm;
            c.sched = (scheduler)sc;
            serve_setup *s = calloc(1, sizeof *s);
            if (!s || serve_setup_init(s, &m, hw, &p, &c, &e)) {
                fprintf(stderr, "bench_serve: %s\n", e.msg);
                free(s);
                free(hw);
                return 1;
            }
            double best = 1e30;
            serve_result r = {0};
            for (int k = 0; k < 3; k++) {
                serve_result_free(&r);
                double t0 = llmsim_now_s();
                if (serve_run(s, &q, &r, NULL, NULL, &e)) {
                    fprintf(stderr, "bench_serve: %s\n", e.msg);
                    free(s);
                    free(hw);
                    return 1;
                }
                double dt = llmsim_now_s() - t0;
                best = dt < best ? dt : best;
            }
            printf("%-10s %-6s %9.3f %10lld %10lld %12.3g %12.3g %10.1f\n", preemption_names[pm],
                   scheduler_names[sc], best, r.iterations, r.events, (double)r.events / best,
                   (double)n / best, r.throughput_tok_s);
            serve_result_free(&r);
            free(s);
        }
    serve_requests_free(&q);
    serve_dist_free(&g.prompt_len);
    serve_dist_free(&g.output_len);
    serve_dist_free(&g.weight);
    free(hw);
    return 0;
}
