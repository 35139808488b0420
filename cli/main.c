/*
 * main — `llmsim <command> [options]`: dispatch to the subcommands.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "exec/cpu/kernels.h"
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

/* OpenBLAS 0.3.21 takes CPUs it does not know (new Xeons under KVM) for
 * Prescott and runs SSE3 kernels, 2-5x slower in the prefill's sgemm than
 * the AVX2/AVX-512 ones the CPU has. It reads OPENBLAS_CORETYPE only when it
 * is loaded, so a command that runs the kernels sets it and executes itself
 * again, once; a value the user exported is left alone, and where the exec
 * fails the command goes on with the slow kernels (llmsim run says so). */
static void blas_select(char **argv)
{
    static const char *const kernel_commands[] = {"run", "profile", "validate"};
    bool runs_kernels = false;
    for (size_t i = 0; i < sizeof kernel_commands / sizeof kernel_commands[0]; i++)
        runs_kernels |= strcmp(argv[1], kernel_commands[i]) == 0;
    if (!runs_kernels || getenv("OPENBLAS_CORETYPE"))
        return;
    const char *core = k_blas_coretype_hint();
    if (!core || setenv("OPENBLAS_CORETYPE", core, 1) != 0)
        return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");
}

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
        if (strcmp(argv[1], commands[i].name) == 0) {
            blas_select(argv);
            return commands[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "llmsim: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_INPUT;
}
