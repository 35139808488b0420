/*
 * test_search_check — the rank agreement of `validate --search`: Spearman's
 * rho on known orders (equal, reversed, tied, too few), and the predicted
 * best against the measured best with its shortfall.
 */
#include <math.h>

#include "tap.h"
#include "validate/search_check.h"

int main(void)
{
    const double a[] = {1, 2, 3, 4, 5}, rev[] = {50, 40, 30, 20, 10}, mono[] = {1, 4, 9, 16, 25};
    CHECK(fabs(validate_spearman(a, mono, 5) - 1) < 1e-12, "same order: %g", validate_spearman(a, mono, 5));
    CHECK(fabs(validate_spearman(a, rev, 5) + 1) < 1e-12, "reversed: %g", validate_spearman(a, rev, 5));
    const double t[] = {1, 1, 2, 3}, u[] = {1, 2, 3, 4};
    /* ranks 1.5 1.5 3 4 against 1 2 3 4: rho = 4.5 / sqrt(4.5 * 5) */
    CHECK(fabs(validate_spearman(t, u, 4) - 4.5 / sqrt(4.5 * 5)) < 1e-12, "ties: %g", validate_spearman(t, u, 4));
    CHECK(isnan(validate_spearman(a, mono, 2)), "two points have a rho");
    const double c[] = {2, 2, 2};
    CHECK(isnan(validate_spearman(c, a, 3)), "a constant side has a rho");

    const double pred[] = {10, 30, 20}, meas[] = {11, 19, 20};
    validate_rank r;
    validate_rank_get(pred, meas, 3, 0.05, &r);
    CHECK(r.best_predicted == 1 && r.best_measured == 2, "best %d %d", r.best_predicted, r.best_measured);
    CHECK(fabs(r.shortfall - 0.05) < 1e-12 && r.best_within, "shortfall %g within %d", r.shortfall, r.best_within);
    validate_rank_get(pred, meas, 3, 0.04, &r);
    CHECK(!r.best_within, "a 5%% shortfall within 4%%");
    return tap_done();
}
