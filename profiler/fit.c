/*
 * fit — the median of repeated runs and the latency + bandwidth fit of a
 * link (see fit.h). Plain C, no CUDA: built in every configuration.
 */
#include "profiler/fit.h"

#include <math.h>

/* ---- statistics */

double profile_median(double *v, int n, double *spread)
{
    for (int i = 1; i < n; i++) { /* insertion sort: n is a few dozen repeats */
        double x = v[i];
        int j = i;
        for (; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
    double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    if (spread)
        *spread = med != 0 ? (v[n - 1] - v[0]) / med : 0.0;
    return med;
}

/* ---- the link fit: time = latency + bytes * c, c = 1 / bandwidth */

/* The scales of the fit's two unknowns over l's points (amax = the largest
 * 1/t_i, bmax = the largest x_i/t_i) and the point of the largest size
 * (xlast, tlast); LLMSIM_EINPUT when a point is not positive and finite. */
static llmsim_status link_points_scale(const hw_link *l, double *amax, double *bmax, double *xlast,
                                       double *tlast, diag *e)
{
    *amax = 0;
    *bmax = 0;
    *xlast = 0;
    *tlast = 0;
    for (int i = 0; i < l->npoints; i++) {
        double x = l->points[i].bytes, t = l->points[i].time_s;
        if (!(x > 0) || !(t > 0) || !isfinite(x) || !isfinite(t))
            return diag_set(e, LLMSIM_EINPUT,
                            "link point %d: size %g B and time %g s must be positive and finite", i,
                            x, t);
        *amax = fmax(*amax, 1 / t);
        *bmax = fmax(*bmax, x / t);
        if (x >= *xlast) {
            *xlast = x;
            *tlast = t;
        }
    }
    return LLMSIM_OK;
}

llmsim_status profile_link_fit(hw_link *l, diag *e)
{
    if (l->npoints < 1 || l->npoints > HW_MAX_POINTS)
        return diag_set(e, LLMSIM_EINPUT, "fitting a link needs 1 to %d points, not %d",
                        HW_MAX_POINTS, l->npoints);
    /* In relative error the residual of point i is L*a_i + c*b_i - 1 with
     * a_i = 1/t_i and b_i = x_i/t_i. Both are scaled by their largest value so
     * the 2x2 normal equations are well conditioned (a ~ 1e5/s, b ~ 1e10 B/s). */
    double amax, bmax, xlast, tlast;
    llmsim_status st = link_points_scale(l, &amax, &bmax, &xlast, &tlast, e);
    if (st)
        return st;
    double saa = 0, sab = 0, sbb = 0, sa = 0, sb = 0;
    for (int i = 0; i < l->npoints; i++) {
        double a = 1 / l->points[i].time_s / amax;
        double b = l->points[i].bytes / l->points[i].time_s / bmax;
        saa += a * a;
        sab += a * b;
        sbb += b * b;
        sa += a;
        sb += b;
    }
    /* scaled unknowns: L' = L * amax, c' = c * bmax */
    double lat = -1, c = -1;
    double det = saa * sbb - sab * sab;
    if (det > 1e-12 * saa * sbb) {
        lat = (sa * sbb - sb * sab) / det;
        c = (saa * sb - sab * sa) / det;
    }
    if (!(c > 0)) { /* no size dependence resolved: the bandwidth at the largest size */
        c = tlast / xlast * bmax;
        lat = (sa - c * sab) / saa;
    }
    if (!(lat >= 0)) { /* negative latency: fit the bandwidth alone through the origin */
        lat = 0;
        c = sb / sbb;
    }
    lat /= amax;
    c /= bmax;
    c = fmin(fmax(c, 1 / HW_MAX_BANDWIDTH), 1 / HW_MIN_BANDWIDTH);
    l->latency_s = fmin(lat, HW_MAX_LATENCY);
    l->bandwidth_Bps = 1 / c;
    return LLMSIM_OK;
}
