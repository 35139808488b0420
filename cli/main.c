/*
 * main — `llmsim <command> [options]`: dispatch to the subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "hwprofiles/hwprofile.h"
#include "models/model.h"

static int cmd_list(const char *const *names, const char *what)
{
    printf("shipped %s:\n", what);
    for (int i = 0; names[i]; i++)
        printf("  %s\n", names[i]);
    return CLI_EXIT_OK;
}

static int cmd_models(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cmd_list(model_shipped_names, "models (--model NAME)");
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
