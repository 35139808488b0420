/*
 * cmd_serve_sim — `llmsim serve-sim`: simulate online serving (sim/serve.h)
 * of a trace file or of generated requests, print throughput, latency
 * percentiles, weighted turnaround, preemptions and KV use, optionally write
 * a Chrome trace and a per-request CSV, and record the run in the store.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/serve_args.h"
#include "db/serving.h"
#include "common/atomicfile.h"
#include "common/clock.h"
#include "common/units.h"
#include "sim/serve.h"


static void usage(FILE *out)
{
    fprintf(out,
            "usage: llmsim serve-sim --model M --hardware H [policy] (--trace-in FILE | generator)\n"
            "                        [serving] [options]\n"
            "\n"
            "Simulate online serving: requests arrive over time and are served by continuous\n"
            "(iteration-level) batching over a paged KV cache, with preemption by swap or\n"
            "recompute when the cache runs out. Prints throughput, time to first token, time\n"
            "per output token, end-to-end latency (mean, p50, p90, p99), weighted turnaround,\n"
            "preemptions and KV use, and records the run in the store.\n"
            "\n");
    serve_args_usage(out);
    fprintf(out,
            "output:\n"
            "  --trace FILE           Chrome trace: a track per request, KV blocks in use\n"
            "  --requests-out FILE    one CSV row per request with its timings\n"
            "  --format table|json    human table (default) or one JSON object\n"
            "  --db PATH              the store (default $LLMSIM_DB or ./llmsim.db)\n"
            "  --help                 this text\n");
}

static void on_progress(double frac, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "\rllmsim serve-sim: %3.0f%% of the requests done", 100 * frac);
    if (frac >= 1)
        fputc('\n', stderr);
}

/* ^C or SIGTERM stopped the simulation: the run recorded as interrupted
 * with its rows so far, nothing else written. */
static int interrupted(const cli_job *job, const serve_setup *s, const serve_requests *q,
                       serve_result *r)
{
    diag e;
    diag_clear(&e);
    record_job rj = cli_record_job(job);
    llmsim_status st = record_serve_unfinished(&rj, "serve", s, q, r, "interrupted", &e);
    fprintf(stderr, "\nllmsim serve-sim: interrupted after %lld iterations%s%s\n", r->iterations,
            st ? "; not recorded: " : "; the run and its rows so far recorded as interrupted",
            st ? e.msg : "");
    return cli_interrupt_status();
}

/* Serve the requests (the simulation's wall time in *wall_s); write the
 * trace and the requests' CSV. */
static int serve(const cli_job *job, const serve_opts *o, serve_setup *s, const serve_requests *q,
                 serve_result *r, serve_result *off, double *wall_s)
{
    diag e;
    diag_clear(&e);
    int status = serve_args_check_outputs(o);
    if (status)
        return status;
    if (serve_setup_init(s, &job->model, &job->hw, &job->policy, &o->cfg, &e))
        return cli_fail("serve-sim", &e);
    s->cfg.keep_spans = o->trace_out != NULL;
    s->cfg.interrupt = &cli_interrupted;
    bool shared = false;
    for (size_t i = 0; i < q->n && !shared; i++)
        shared = q->r[i].prefix_group != 0;
    if (o->cfg.prefix_cache && !shared)
        fprintf(stderr, "llmsim serve-sim: note: no request declares a shared prefix (the "
                "generator's --shared-prefix, or a trace's prefix_group column), so the prefix "
                "cache can only give a recomputed request its own prompt back\n");
    double t0 = llmsim_now_s();
    bool tty = isatty(2);
    if (serve_run(s, q, r, tty ? on_progress : NULL, NULL, &e))
        return cli_fail("serve-sim", &e);
    if (r->interrupted)
        return interrupted(job, s, q, r);
    *wall_s = llmsim_now_s() - t0;
    if (o->cfg.prefix_cache) { /* what the cache gains: the same run without it */
        serve_config c = o->cfg;
        c.prefix_cache = false;
        serve_setup so;
        if (serve_setup_init(&so, &job->model, &job->hw, &job->policy, &c, &e))
            return cli_fail("serve-sim", &e);
        so.cfg.interrupt = &cli_interrupted;
        if (serve_run(&so, q, off, NULL, NULL, &e))
            return cli_fail("serve-sim", &e);
        if (off->interrupted)
            return interrupted(job, s, q, r);
    }
    if (o->trace_out) {
        char title[256];
        snprintf(title, sizeof title, "llmsim serve-sim: %s on %s", job->model.name, job->hw.name);
        if (serve_trace_write(s, r, title, o->trace_out, &e))
            return cli_fail("serve-sim", &e);
    }
    if (o->requests_out && serve_args_write_requests(o->requests_out, q, r, &e))
        return cli_fail("serve-sim", &e);
    return CLI_EXIT_OK;
}

/* Record the run and print it. */
static int record_and_print(const cli_job *job, const serve_opts *o, const serve_setup *s,
                            const serve_requests *q, const serve_result *r,
                            const serve_result *off, double wall)
{
    diag e;
    diag_clear(&e);
    record_job rj = cli_record_job(job);
    cJSON *obj = result_serve_json(&rj, o->trace_in, &o->gen, s, q, r, wall);
    if (o->cfg.prefix_cache)
        serve_args_prefix_gain(obj, r, off);
    char *json = cJSON_PrintUnformatted(obj);
    int64_t run_id = 0;
    if (!json || record_serve(&rj, "serve", s, q, r, json, wall, &run_id, &e)) {
        if (!json)
            diag_set(&e, LLMSIM_EFAIL, "out of memory");
        free(json);
        cJSON_Delete(obj);
        return cli_fail("serve-sim", &e);
    }
    free(json);
    if (!cli_print_json_if_asked(job->format, obj)) {
        serve_args_table(job, o, s, q, r);
        if (o->cfg.prefix_cache)
            serve_args_prefix_gain_print(r, off);
        printf("simulated              %lld iterations, %lld events in %.3f s (%.3g events/s)\n",
               r->iterations, r->events, wall, wall > 0 ? (double)r->events / wall : 0);
        if (o->trace_out)
            printf("trace                  %s (open in Perfetto or chrome://tracing)\n",
                   o->trace_out);
        if (o->requests_out)
            printf("requests               %s\n", o->requests_out);
        printf("recorded as run %lld in %s\n", (long long)run_id, job->db_path);
    }
    return CLI_EXIT_OK;
}

int cmd_serve_sim(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
    serve_opts o;
    serve_opts_init(&o, "serve-sim");
    char **args = malloc(sizeof(char *) * ((size_t)argc + 3));
    cli_job *job = calloc(1, sizeof *job);
    serve_setup *s = calloc(1, sizeof *s);
    serve_requests q = {0};
    serve_result r = {0}, off = {0};
    strbuf wtext = {0};
    double wall = 0;
    int status = CLI_EXIT_FAIL;
    if (!args || !job || !s)
        fprintf(stderr, "llmsim serve-sim: out of memory\n");
    else if (!(status = serve_args_parse(argc, argv, args, &o, job)) &&
             !(status = serve_args_requests(&o, &q, &wtext))) {
        job->workload_text = strbuf_str(&wtext);
        struct sigaction old;
        cli_sigint_catch(&old);
        if (!(status = serve(job, &o, s, &q, &r, &off, &wall)))
            status = record_and_print(job, &o, s, &q, &r, &off, wall);
        cli_sigint_release(&old);
    }
    serve_result_free(&r);
    serve_result_free(&off);
    serve_requests_free(&q);
    serve_dist_free(&o.gen.prompt_len);
    serve_dist_free(&o.gen.output_len);
    serve_dist_free(&o.gen.weight);
    strbuf_free(&wtext);
    free(s);
    free(job);
    free(args);
    return status;
}
