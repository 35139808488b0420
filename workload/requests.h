/*
 * requests — the requests of a serving simulation (ARCHITECTURE §5,
 * workload): from a trace file, or from a seeded generator.
 *
 * Trace file: CSV with the header line
 *     arrival_s,prompt_len,output_len,weight
 * then one request per line: the arrival time in seconds (>= 0, lines in
 * non-decreasing order of arrival), the prompt length and the output length in
 * tokens (whole numbers >= 1; the output counts the token the prefill
 * produces), and a weight (> 0; what the fair scheduler weighs turnaround
 * by). The header may go on with two more columns,
 *     arrival_s,prompt_len,output_len,weight,prefix_group,prefix_len
 * declaring shared prefixes (a system prompt): requests of the same
 * prefix_group (a whole number >= 1) start with the same prefix_len tokens
 * (1 .. prompt_len); group 0 with length 0 shares nothing. Blank lines and
 * lines starting with '#' are skipped; spaces around fields are allowed. Any
 * other line is an error that names the file, the line and what to fix.
 *
 * Generator: arrivals by a Poisson process at `rate` requests/s, or a gamma
 * process with the same mean rate and coefficient of variation `cv` of the
 * inter-arrival times (cv > 1 is burstier than Poisson, cv < 1 smoother);
 * prompt and output lengths and weights from distributions (below); one
 * 64-bit seed makes the whole set reproducible on every platform.
 *
 * Distribution specs (what --prompt-len and friends take):
 *     N                   always N
 *     uniform:A,B         uniform on [A, B] (whole numbers for lengths)
 *     normal:MEAN,SD      normal, rounded for lengths; resampled below the
 *                         minimum (1 for lengths, > 0 for weights)
 *     hist:BIN=W,...      a histogram: BIN is a value V or a range LO-HI
 *                         (uniform within), W its relative frequency > 0,
 *                         e.g. hist:1-64=0.5,64-512=0.4,2048=0.1
 */
#ifndef LLMSIM_WORKLOAD_REQUESTS_H
#define LLMSIM_WORKLOAD_REQUESTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "common/strbuf.h"

typedef struct serve_request {
    double arrival_s;
    int64_t prompt_len;
    int64_t output_len;
    double weight;
    int64_t line;       /* its line in the trace file; 0 when generated */
    uint32_t prefix_group; /* >= 1: its first prefix_len tokens are the group's; 0: none */
    int64_t prefix_len;    /* 0 .. prompt_len (0 when prefix_group is 0) */
} serve_request;

typedef struct serve_requests {
    serve_request *r; /* sorted by arrival_s (non-decreasing); owned */
    size_t n;
    char *source;     /* the trace file's name for messages, or NULL; owned */
} serve_requests;

void serve_requests_free(serve_requests *q);

/* A trace file; `path` names it in messages ("trace.csv:7: ..."). */
llmsim_status serve_trace_load(const char *path, serve_requests *out, diag *e);
/* The same over text in memory of `len` bytes; `name` stands for the file. */
llmsim_status serve_trace_parse(const char *name, const char *text, size_t len,
                                serve_requests *out, diag *e);
/* The trace file text of a request set (loads back to the same requests:
 * arrival and weight printed with %.17g). */
void serve_trace_save(const serve_requests *q, strbuf *out);

typedef enum serve_dist_kind {
    SERVE_DIST_CONST,
    SERVE_DIST_UNIFORM,
    SERVE_DIST_NORMAL,
    SERVE_DIST_HIST,
} serve_dist_kind;

typedef struct serve_dist {
    serve_dist_kind kind;
    bool integer;      /* lengths: whole numbers >= 1; else reals > 0 */
    double a, b;       /* const: a; uniform: [a, b]; normal: mean a, sd b */
    int nbins;         /* hist */
    double *lo, *hi;   /* hist: bin bounds (lo == hi for a single value); owned */
    double *cum;       /* hist: cumulative weights normalized to 1; owned */
} serve_dist;

/* Parse a spec; `what` names the option in messages ("--prompt-len"). */
llmsim_status serve_dist_parse(const char *spec, const char *what, bool integer, serve_dist *d,
                               diag *e);
void serve_dist_free(serve_dist *d);
/* The spec back as text (parses to the same distribution). */
void serve_dist_format(const serve_dist *d, strbuf *out);
/* The distribution's mean (exact for const, uniform and hist; for normal the
 * mean before resampling). */
double serve_dist_mean(const serve_dist *d);

typedef enum serve_arrival { SERVE_ARRIVAL_POISSON, SERVE_ARRIVAL_GAMMA } serve_arrival;
extern const char *const serve_arrival_names[2];

typedef struct serve_gen {
    serve_arrival arrival;
    double rate;          /* requests per second, > 0 */
    double cv;            /* gamma: coefficient of variation of inter-arrival times, > 0 */
    long long num_requests;
    serve_dist prompt_len, output_len, weight;
    uint64_t seed;
    long long prefix_groups; /* 0: no shared prefixes */
    long long prefix_len;    /* tokens of each group's prefix, >= 1 with groups */
} serve_gen;

/* The largest group id a trace or the generator may use. */
#define SERVE_PREFIX_GROUP_MAX 1000000000LL

/* Generate g->num_requests requests; the first arrives after one
 * inter-arrival time from 0. */
llmsim_status serve_generate(const serve_gen *g, serve_requests *out, diag *e);
/* One line per setting, canonical (the text the store keeps). */
void serve_gen_describe(const serve_gen *g, strbuf *out);

#endif
