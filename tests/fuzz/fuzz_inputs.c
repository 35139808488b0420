/*
 * fuzz_inputs — libFuzzer targets for llmsim's text inputs, one executable
 * per parser, chosen at compile time by FUZZ_KIND:
 *
 *   fuzz_model       models/model.c        a model YAML
 *   fuzz_hwprofile   hwprofiles/           a hardware profile YAML
 *   fuzz_policy      policies/             a policy YAML
 *   fuzz_workload    workload/workload.c   a workload YAML
 *   fuzz_trace       workload/requests.c   a serving trace CSV
 *   fuzz_config      models/model_hf.c     a Hugging Face config.json
 *   fuzz_tokens      cli/ cli_token_line   a token file, line by line
 *
 * Each input is a whole file. Besides "no crash, no out-of-bounds access, no
 * undefined behaviour, no leak" (ASan, UBSan, LeakSanitizer), every outcome
 * is checked: a refusal is LLMSIM_EINPUT whose message starts with the
 * input's name (the file, and a line where there is one); an accepted input
 * saved in its canonical form loads back to the same thing (the model, the
 * profile, the policy, the workload, the trace). A violation aborts, which
 * libFuzzer reports as a crash.
 *
 * Built with -DLLMSIM_FUZZ_REPLAY the file also has a main() that runs every
 * file named on the command line (directories: every file in them) through
 * the target: the committed corpus is a regression test on any compiler.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/strbuf.h"
#include "hwprofiles/hwprofile.h"
#include "models/model.h"
#include "policies/policy.h"
#include "workload/requests.h"
#include "workload/workload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz-input"

/* FUZZ_KIND's values, in tests/fuzz/CMakeLists.txt's order */
#define K_MODEL 1
#define K_HWPROFILE 2
#define K_POLICY 3
#define K_WORKLOAD 4
#define K_TRACE 5
#define K_CONFIG 6
#define K_TOKENS 7

#ifndef FUZZ_KIND
#error "FUZZ_KIND selects the parser"
#endif

static void require(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_inputs (kind %d): invariant broken: %s\n", FUZZ_KIND, what);
        abort();
    }
}

/* A refusal is bad input, named; out of memory is the only other failure. */
static void check_refusal(llmsim_status st, const diag *e)
{
    if (st == LLMSIM_EFAIL && strstr(e->msg, "out of memory"))
        return;
    require(st == LLMSIM_EINPUT, "a refusal that is not LLMSIM_EINPUT");
    require(strncmp(e->msg, NAME, strlen(NAME)) == 0, "a message that does not name the input");
    require(strlen(e->msg) > strlen(NAME) + 2, "a message that says nothing");
}

/* Saved canonically, an accepted input loads back to the same text. */
#define ROUND_TRIP(type, load, save)                                                               \
    do {                                                                                           \
        strbuf a = {0}, b = {0};                                                                   \
        save(&x, &a);                                                                              \
        type y;                                                                                    \
        diag e2 = {0};                                                                             \
        llmsim_status st2 = load(NAME, strbuf_str(&a), &y, &e2);                                   \
        if (st2 != LLMSIM_OK)                                                                      \
            fprintf(stderr, "%s\n---\n%s\n", e2.msg, strbuf_str(&a));                              \
        require(st2 == LLMSIM_OK, "the canonical form of an accepted input is refused");           \
        save(&y, &b);                                                                              \
        require(strcmp(strbuf_str(&a), strbuf_str(&b)) == 0, "the canonical form changes");        \
        strbuf_free(&a);                                                                           \
        strbuf_free(&b);                                                                           \
    } while (0)

static void one(const char *text, size_t len)
{
    diag e = {0};
    llmsim_status st;
#if FUZZ_KIND == K_MODEL
    model x;
    if (!(st = model_load_yaml_text(NAME, text, &x, &e)))
        ROUND_TRIP(model, model_load_yaml_text, model_canonical);
#elif FUZZ_KIND == K_HWPROFILE
    hwprofile x;
    if (!(st = hwprofile_load_yaml_text(NAME, text, &x, &e)))
        ROUND_TRIP(hwprofile, hwprofile_load_yaml_text, hwprofile_save);
#elif FUZZ_KIND == K_POLICY
    policy x;
    if (!(st = policy_load_yaml_text(NAME, text, &x, &e)))
        ROUND_TRIP(policy, policy_load_yaml_text, policy_save);
#elif FUZZ_KIND == K_WORKLOAD
    workload x;
    if (!(st = workload_load_yaml_text(NAME, text, &x, &e)))
        ROUND_TRIP(workload, workload_load_yaml_text, workload_save);
#elif FUZZ_KIND == K_TRACE
    serve_requests q;
    if (!(st = serve_trace_parse(NAME, text, len, &q, &e))) {
        strbuf a = {0};
        serve_trace_save(&q, &a);
        serve_requests r;
        diag e2 = {0};
        require(serve_trace_parse(NAME, strbuf_str(&a), strlen(strbuf_str(&a)), &r, &e2) == 0,
                "the saved trace is refused");
        require(r.n == q.n && r.n > 0, "the saved trace has other requests");
        for (size_t i = 0; i < q.n; i++) {
            const serve_request *u = &q.r[i], *v = &r.r[i];
            require(u->arrival_s == v->arrival_s && u->prompt_len == v->prompt_len &&
                        u->output_len == v->output_len && u->weight == v->weight &&
                        u->prefix_group == v->prefix_group && u->prefix_len == v->prefix_len,
                    "a saved request loads back different");
            require(u->prompt_len >= 1 && u->output_len >= 1 && u->weight > 0 &&
                        u->prefix_len <= u->prompt_len && (i == 0 || u->arrival_s >= q.r[i - 1].arrival_s),
                    "an accepted request breaks the trace's rules");
        }
        strbuf_free(&a);
        serve_requests_free(&q);
        serve_requests_free(&r);
    }
#elif FUZZ_KIND == K_CONFIG
    model x;
    if (!(st = model_load_hf_config_text(NAME, text, len, &x, &e))) {
        require(model_validate(&x, NAME, &e) == LLMSIM_OK, "an imported model is not valid");
        st = LLMSIM_OK;
    }
#elif FUZZ_KIND == K_TOKENS
    int32_t *toks = NULL;
    size_t n = 0, cap = 0, lineno = 0;
    st = LLMSIM_OK;
    /* line by line, as run --prompt-tokens and serve --prompts read them */
    for (const char *p = text; !st && p < text + len;) {
        const char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        char *line = malloc(ll + 1);
        require(line != NULL, "out of memory");
        memcpy(line, p, ll);
        line[ll] = '\0';
        long long count = 0;
        size_t before = n;
        st = cli_token_line(NAME, ++lineno, line, 50272, &toks, &n, &cap, &count, &e);
        free(line);
        if (!st) {
            require(n == before + (size_t)count, "the count is not what was appended");
            for (size_t i = before; i < n; i++)
                require(toks[i] >= 0 && toks[i] < 50272, "an id outside the vocabulary");
        }
        p += ll + 1;
    }
    free(toks);
#else
#error "FUZZ_KIND is not one of the kinds"
#endif
    if (st)
        check_refusal(st, &e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the loaders read NUL-terminated text, as the files' readers give it */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    one(text, size);
    free(text);
    return 0;
}

#ifdef LLMSIM_FUZZ_REPLAY
#include "replay.h"
#endif
