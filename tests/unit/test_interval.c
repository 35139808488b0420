/*
 * test_interval — the p10-p90 interval of a prediction (costmodel/interval.h):
 * none without spreads; from the spreads, around the prediction, growing
 * with them, and blind to the figures a policy does not use; from a
 * calibration's held-out errors exactly as they say.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "costmodel/interval.h"
#include "tap.h"

static void set_gemm_spread(hwprofile *hw, double s)
{
    for (int i = 0; i < hw->cpu.gemm.npoints; i++)
        hw->cpu.gemm.points[i].spread = s;
}

int main(void)
{
    model m;
    hwprofile *hw = calloc(1, sizeof *hw);
    diag e = {0};
    if (!hw || model_load("opt-1.3b", &m, &e) || hwprofile_load("cpu-only", hw, &e)) {
        CHECK(false, "loading the inputs: %s", e.msg);
        free(hw);
        return tap_done();
    }
    policy p;
    policy_init(&p);
    p.weights = p.kv_cache = p.activations = (placement){{0, 1, 0}};
    p.gpu_batch_size = 2;
    p.num_gpu_batches = 2;
    workload w = {.prompt_len = 128, .gen_len = 8, .num_prompts = 4};
    cm_interval iv;

    CHECK(cm_predict_interval(&m, hw, &p, &w, &iv, &e) == LLMSIM_OK, "%s", e.msg);
    CHECK(iv.source == CM_INTERVAL_NONE && iv.lo == 1 && iv.hi == 1,
          "a spec profile has an interval: %s %g-%g", cm_interval_source_names[iv.source], iv.lo, iv.hi);

    set_gemm_spread(hw, 0.1);
    CHECK(cm_predict_interval(&m, hw, &p, &w, &iv, &e) == LLMSIM_OK, "%s", e.msg);
    double s1 = iv.sigma;
    CHECK(iv.source == CM_INTERVAL_SPREADS && iv.lo < 1 && iv.hi > 1 && fabs(iv.lo * iv.hi - 1) < 1e-12,
          "GEMM spreads: %s %g-%g", cm_interval_source_names[iv.source], iv.lo, iv.hi);
    /* a compute-bound prefill-heavy run: the elasticity to the GEMM rate is at most 1 */
    CHECK(s1 > 0 && s1 <= 0.05 + 1e-9, "sigma %g for GEMM spreads of 10%% (half: 5%%)", s1);
    set_gemm_spread(hw, 0.2);
    cm_predict_interval(&m, hw, &p, &w, &iv, &e);
    CHECK(fabs(iv.sigma / s1 - 2) < 1e-9, "twice the spread: sigma %g, was %g", iv.sigma, s1);

    /* the disk's spreads do not reach a policy that leaves it alone */
    set_gemm_spread(hw, 0);
    for (int i = 0; i < hw->disk.read.npoints; i++)
        hw->disk.read.points[i].spread = 0.5;
    if (hw->disk.present && hw->disk.read.npoints) {
        cm_predict_interval(&m, hw, &p, &w, &iv, &e);
        CHECK(iv.sigma < 1e-12, "all in RAM, sigma %g from the disk's spreads", iv.sigma);
        p.weights = (placement){{0, 0, 1}};
        cm_predict_interval(&m, hw, &p, &w, &iv, &e);
        CHECK(iv.sigma > 0.01, "weights on disk, sigma %g from disk spreads of 50%%", iv.sigma);
    }

    /* a calibrated profile: the held-out errors, inverted */
    hw->calib.present = true;
    hw->calib.nheld = 4;
    hw->calib.held_err_p10 = -0.2;
    hw->calib.held_err_p90 = 0.25;
    cm_predict_interval(&m, hw, &p, &w, &iv, &e);
    CHECK(iv.source == CM_INTERVAL_CALIBRATION && fabs(iv.lo - 0.8) < 1e-12 && fabs(iv.hi - 1.25) < 1e-12,
          "calibrated: %s %g-%g", cm_interval_source_names[iv.source], iv.lo, iv.hi);
    free(hw);
    return tap_done();
}
