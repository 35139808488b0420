/*
 * commands — the entry points of `llmsim <command>`, one per command; main.c
 * dispatches to them. Each takes the arguments from the command name on
 * (argv[0] is the command name), parses its own options, prints its output,
 * and returns the process exit status: 0 ok, 2 bad input, 1 other failure
 * (ARCHITECTURE §11).
 */
#ifndef LLMSIM_CLI_COMMANDS_H
#define LLMSIM_CLI_COMMANDS_H

/* llmsim runs: list recorded runs, newest first (cli/cmd_runs.c). */
int cmd_runs(int argc, char **argv);
/* llmsim show RUN_ID: one run with its metrics and result (cli/cmd_runs.c). */
int cmd_show(int argc, char **argv);

/* llmsim profile: measure this machine into a hardware profile; --compare A B
 * puts two profiles side by side (cli/cmd_profile.c). */
int cmd_profile(int argc, char **argv);
/* llmsim validate: predict, simulate and run policies and compare (cli/cmd_validate.c). */
int cmd_validate(int argc, char **argv);
/* llmsim calibrate: fit a profile to measured runs (cli/cmd_calibrate.c). */
int cmd_calibrate(int argc, char **argv);
/* llmsim serve-sim: simulate online serving (cli/cmd_serve_sim.c). */
int cmd_serve_sim(int argc, char **argv);
/* llmsim serve: serve for real on the engine (cli/cmd_serve.c). */
int cmd_serve(int argc, char **argv);
/* llmsim validate --serving: serve-sim against serve (cli/cmd_serve.c). */
int cmd_validate_serving(int argc, char **argv);
/* llmsim report [RUN...] -o DIR: plots and index.html (cli/cmd_report.c). */
int cmd_report(int argc, char **argv);

#endif
