/*
 * golden — shared by the golden tests: hold a JSON result against the file
 * tests/golden/<dir>/<name>.json (numbers to GOLDEN_REL_TOL, keys, strings
 * and booleans exactly), or write that file when LLMSIM_GOLDEN_UPDATE is set.
 */
#ifndef LLMSIM_TESTS_GOLDEN_H
#define LLMSIM_TESTS_GOLDEN_H

#include <cJSON.h>

/* Same inputs, same code: only floating-point reassociation may differ. */
#define GOLDEN_REL_TOL 1e-9

/* Records failures through tap's CHECK; does not take ownership of got. */
void golden_check(const char *dir, const char *name, const cJSON *got);

#endif
