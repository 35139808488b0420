/*
 * result_json — the JSON form of a prediction, a simulation and a
 * measurement: what `--format json` prints and what the store keeps as a
 * run's result (record.h). The keys of ARCHITECTURE §11 are a contract:
 * tests and scripts parse them. Every function returns a new object that
 * the caller owns (cJSON_Delete).
 */
#ifndef LLMSIM_DB_RESULT_JSON_H
#define LLMSIM_DB_RESULT_JSON_H

#include <cJSON.h>

#include "db/record.h"
#include "exec/conditions.h"
#include "sim/sim.h"

cJSON *result_policy_json(const policy *p);
/* {"gpu": .., "cpu": .., "disk": ..}: one number per tier (bytes, ...). */
cJSON *result_tiers_json(const double v[TIER_COUNT]);
/* The same for fractions over the tiers. */
cJSON *result_placement_json(const placement *pl);
/* {"load_weight_s": .., "load_cache_s": .., ...}: one number per stage. */
cJSON *result_stages_json(const double s[CM_NSTAGES]);
/* What a measured run ran under: {"disturbed": bool, "reason": why (when
 * disturbed), and every figure read, by its metric name (exec/conditions.h)}. */
cJSON *result_conditions_json(const exec_conditions *c);
/* The §11 keys of a prediction, plus details. */
cJSON *result_prediction_json(const record_job *job, const cm_result *r);
/* The §11 keys of a simulation (or, with its "simulation" object replaced, a
 * measurement) plus steps, utilization and the simulation's figures. */
cJSON *result_simulation_json(const record_job *job, const plan *pl, const sim_result *r,
                              const sim_totals *t);

#endif
