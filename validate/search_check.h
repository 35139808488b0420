/*
 * search_check — does the search choose well? `validate --search` runs the
 * search's best candidates beside the grid; this ranks the measured
 * policies by predicted and by measured throughput and says whether the
 * predicted best is the measured best within a tolerance.
 */
#ifndef LLMSIM_VALIDATE_SEARCH_CHECK_H
#define LLMSIM_VALIDATE_SEARCH_CHECK_H

#include "validate/validate.h"

/* validate --search K: at most this many candidates, with GPU batches up to
 * VALIDATE_SEARCH_BATCH and at most VALIDATE_SEARCH_BATCHES of them: a block
 * of at most 16 sequences, 4 times the grid's 2 x 2, which a CPU runs in
 * tens of seconds (with 8 of them, the search's best blocks ran 195 s each
 * for OPT-1.3B at 128 + 8 tokens). */
#define VALIDATE_SEARCH_MAX 20
#define VALIDATE_SEARCH_BATCH 8
#define VALIDATE_SEARCH_BATCHES 2

/* Whether the engine can run policy p for the job here: the plan's RAM
 * within the profile's memory and what is free on this machine. */
bool validate_fits_engine(const record_job *job, const policy *p);

/* The search's (search/search.h) best k distinct candidates for the job,
 * with GPU batches up to max_batch and at most max_batches of them, that fit and that
 * the engine can run, named search-1 .. search-k (best first); *out is
 * malloc'd, `skipped` gets a line for each left out. LLMSIM_EINPUT when none. */
llmsim_status validate_search_policies(const record_job *job, int k, int max_batch, int max_batches,
                                       validate_policy **out, int *n, strbuf *skipped, diag *e);

/* Spearman's rank correlation of x and y (ties at their mean rank); NaN
 * with fewer than 3 points or a constant side. */
double validate_spearman(const double *x, const double *y, int n);

/* The predicted best is "the measured best within noise" when the measured
 * best is at most this much faster (a fraction): two runs of one policy on
 * the development VM differ by up to 5%. */
#define VALIDATE_BEST_WITHIN 0.05

typedef struct validate_rank {
    int n;
    double rho;             /* Spearman, predicted against measured throughput */
    int best_predicted;     /* index of the highest predicted throughput */
    int best_measured;      /* index of the highest measured throughput */
    double shortfall;       /* (measured best - measured of the predicted best) / measured best */
    bool best_within;       /* shortfall <= tolerance */
} validate_rank;

void validate_rank_get(const double *predicted, const double *measured, int n, double tolerance,
                       validate_rank *out);

#endif
