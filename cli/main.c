/*
 * main — `llmsim <command> [options]`: dispatch to the subcommands.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/datadir.h"
#include "hwprofiles/hwprofile.h"
#include "models/model.h"

static int cmd_list(const char *const *names, const char *what)
{
    printf("shipped %s:\n", what);
    for (int i = 0; names[i]; i++)
        printf("  %s\n", names[i]);
    return CLI_EXIT_OK;
}

/* Where a shipped model comes from when its YAML has no `source` key: the
 * first comment line of the file, cut to its first word when that is a
 * Hugging Face repo id (owner/name); "" when there is none. */
static void model_comment_source(const char *name, char *out, size_t len)
{
    char path[1024], line[512];
    out[0] = '\0';
    if (!datadir_find("models/configs", name, ".yaml", path, sizeof path))
        return;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (line[0] != '#')
            continue;
        char *s = line + 1;
        while (*s == ' ')
            s++;
        s[strcspn(s, "\r\n")] = '\0';
        size_t word = strcspn(s, " ");
        if (memchr(s, '/', word))
            s[word] = '\0';
        snprintf(out, len, "%s", s);
        break;
    }
    fclose(f);
}

/* A parameter count as "125 M" below a billion, else "1.24 B". */
static void format_params(int64_t n, char *out, size_t len)
{
    if (n < 1000000000)
        snprintf(out, len, "%.0f M", (double)n / 1e6);
    else
        snprintf(out, len, "%.2f B", (double)n / 1e9);
}

static void models_usage(FILE *out)
{
    fprintf(out, "usage: llmsim models\n\n"
                 "List the shipped models (--model NAME): each one's family, parameter count and\n"
                 "source (the Hugging Face repository whose config.json it describes).\n");
}

static int cmd_models(int argc, char **argv)
{
    if (argc > 1) {
        bool help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
        if (!help)
            fprintf(stderr, "llmsim models: unexpected argument '%s'\n\n", argv[1]);
        models_usage(help ? stdout : stderr);
        return help ? CLI_EXIT_OK : CLI_EXIT_INPUT;
    }
    int n = 0, name_w = (int)strlen("NAME"), family_w = (int)strlen("FAMILY");
    for (; model_shipped_names[n]; n++) {
        int w = (int)strlen(model_shipped_names[n]);
        name_w = w > name_w ? w : name_w;
    }
    for (int i = 0; i < MODEL_FAMILIES; i++) {
        int w = (int)strlen(model_family_names[i]);
        family_w = w > family_w ? w : family_w;
    }
    printf("shipped models (--model NAME):\n");
    printf("  %-*s  %-*s  %9s  %s\n", name_w, "NAME", family_w, "FAMILY", "PARAMS", "SOURCE");
    int rc = CLI_EXIT_OK;
    for (int i = 0; i < n; i++) {
        const char *name = model_shipped_names[i];
        model m;
        diag e = {0};
        if (model_load(name, &m, &e) != LLMSIM_OK) {
            fprintf(stderr, "llmsim models: %s\n", e.msg);
            rc = CLI_EXIT_FAIL;
            continue;
        }
        char params[32], source[sizeof m.source];
        format_params(model_param_count(&m), params, sizeof params);
        if (m.source[0])
            snprintf(source, sizeof source, "%s", m.source);
        else
            model_comment_source(name, source, sizeof source);
        printf("  %-*s  %-*s  %9s  %s\n", name_w, name, family_w, model_family_names[m.family],
               params, source[0] ? source : "-");
    }
    return rc;
}

static int cmd_hardware(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cmd_list(hwprofile_shipped_names, "hardware profiles (--hardware NAME)");
}

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"predict", cmd_predict, "predict throughput, latency and memory of a policy (cost model)"},
    {"simulate", cmd_simulate, "simulate the plan of a policy task by task (discrete events)"},
    {"run", cmd_run, "run the plan for real (GPU or CPU engine) and time every task"},
    {"serve-sim", cmd_serve_sim, "simulate online serving: continuous batching, paged KV, preemption"},
    {"serve", cmd_serve, "serve requests for real on the engine, as serve-sim simulates them"},
    {"search", cmd_search, "find the best policy (one LP per discrete choice, GLPK)"},
    {"profile", cmd_profile, "measure this machine (CPU, memory, disk, GPU) into a hardware profile"},
    {"runs", cmd_runs, "list the runs recorded in the store"},
    {"show", cmd_show, "print one recorded run"},
    {"validate", cmd_validate, "predict, simulate and run policies; compare them task by task"},
    {"calibrate", cmd_calibrate, "fit a hardware profile to measured task times (least squares)"},
    {"report", cmd_report, "plot recorded runs (gnuplot) into an HTML page"},
    {"models", cmd_models, "list the shipped models"},
    {"hardware", cmd_hardware, "list the shipped hardware profiles"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: llmsim <command> [options]   (llmsim <command> --help for its options)\n\n"
                 "llmsim %s: predict, search, execute and validate LLM inference with offloading.\n\n"
                 "commands:\n", LLMSIM_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_INPUT;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("llmsim %s\n", LLMSIM_VERSION);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "llmsim: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_INPUT;
}
