/* units — see units.h. */
#include "common/units.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct unit_def {
    const char *name;
    double scale;
} unit_def;

static const unit_def byte_units[] = {
    {"B", 1.0},         {"kB", 1e3},          {"KB", 1e3},          {"MB", 1e6},
    {"GB", 1e9},        {"TB", 1e12},         {"PB", 1e15},         {"KiB", 1024.0},
    {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
    {"PiB", 1125899906842624.0},
};
static const unit_def flop_units[] = {
    {"FLOP/s", 1.0},    {"kFLOP/s", 1e3},  {"MFLOP/s", 1e6},
    {"GFLOP/s", 1e9},   {"TFLOP/s", 1e12}, {"PFLOP/s", 1e15},
};
static const unit_def time_units[] = {
    {"s", 1.0}, {"ms", 1e-3}, {"us", 1e-6}, {"ns", 1e-9}, {"min", 60.0}, {"h", 3600.0},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *units_kind_example(units_kind kind)
{
    switch (kind) {
    case UNITS_BYTES: return "a size with a unit, such as '16 GiB' or '512 MB'";
    case UNITS_BANDWIDTH: return "a bandwidth with a unit, such as '12.9 GB/s' or '25 GiB/s'";
    case UNITS_FLOPS: return "a throughput with a unit, such as '21.2 TFLOP/s'";
    case UNITS_TIME: return "a time with a unit, such as '35 us' or '1.5 ms'";
    }
    return "a quantity with a unit";
}

static bool lookup(const unit_def *defs, size_t n, const char *name, double *scale)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(defs[i].name, name) == 0) {
            *scale = defs[i].scale;
            return true;
        }
    }
    return false;
}

static bool unit_scale(units_kind kind, const char *unit, double *scale)
{
    switch (kind) {
    case UNITS_BYTES: return lookup(byte_units, COUNT(byte_units), unit, scale);
    case UNITS_BANDWIDTH: {
        size_t n = strlen(unit);
        if (n < 3 || strcmp(unit + n - 2, "/s") != 0 || n - 2 >= 16)
            return false;
        char base[16];
        memcpy(base, unit, n - 2);
        base[n - 2] = '\0';
        return lookup(byte_units, COUNT(byte_units), base, scale);
    }
    case UNITS_FLOPS: return lookup(flop_units, COUNT(flop_units), unit, scale);
    case UNITS_TIME: return lookup(time_units, COUNT(time_units), unit, scale);
    }
    return false;
}

/* The plain decimal number at p, in text: its value, and in *end where it
 * ends. false with the reason in why. */
static bool parse_number(const char *text, const char *p, units_kind kind, double *v, char **end,
                         char *why, size_t why_len)
{
    /* strtod accepts hex, inf and nan: allow only plain decimal numbers. */
    for (const char *q = p; *q && !isalpha((unsigned char)*q) && *q != ' '; q++) {
        if (!(isdigit((unsigned char)*q) || *q == '.' || *q == '-' || *q == '+')) {
            snprintf(why, why_len, "'%s' is not a number followed by a unit; expected %s", text,
                     units_kind_example(kind));
            return false;
        }
    }
    if (!(isdigit((unsigned char)*p) || *p == '.' || *p == '-' || *p == '+')) {
        snprintf(why, why_len, "'%s' does not start with a number; expected %s", text,
                 units_kind_example(kind));
        return false;
    }
    errno = 0;
    *end = NULL;
    *v = strtod(p, end);
    if (*end == p) {
        snprintf(why, why_len, "'%s' does not start with a number; expected %s", text,
                 units_kind_example(kind));
        return false;
    }
    /* strtod also reads hex ("0x10") and hex floats: only decimal digits,
     * a point, signs and an exponent may have been consumed */
    for (const char *q = p; q < *end; q++) {
        if (!(isdigit((unsigned char)*q) || *q == '.' || *q == '-' || *q == '+' || *q == 'e' ||
              *q == 'E')) {
            snprintf(why, why_len, "'%s' is not a number followed by a unit; expected %s", text,
                     units_kind_example(kind));
            return false;
        }
    }
    if (errno == ERANGE || !isfinite(*v)) {
        snprintf(why, why_len, "number in '%s' is out of range", text);
        return false;
    }
    return true;
}

/* The scale of the unit that follows the number in text, from `end` (blanks
 * around it ignored). false with the reason in why. */
static bool parse_unit(const char *text, const char *end, units_kind kind, double *scale,
                       char *why, size_t why_len)
{
    while (*end == ' ' || *end == '\t')
        end++;
    char unit[32];
    size_t n = strlen(end);
    while (n > 0 && (end[n - 1] == ' ' || end[n - 1] == '\t'))
        n--;
    if (n == 0) {
        snprintf(why, why_len, "'%s' has no unit; expected %s", text, units_kind_example(kind));
        return false;
    }
    if (n >= sizeof unit) {
        snprintf(why, why_len, "unknown unit in '%s'; expected %s", text, units_kind_example(kind));
        return false;
    }
    memcpy(unit, end, n);
    unit[n] = '\0';
    if (!unit_scale(kind, unit, scale)) {
        snprintf(why, why_len, "unknown unit '%s'; expected %s", unit, units_kind_example(kind));
        return false;
    }
    return true;
}

bool units_parse(const char *text, units_kind kind, double *out, char *why, size_t why_len)
{
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0') {
        snprintf(why, why_len, "empty value; expected %s", units_kind_example(kind));
        return false;
    }
    double v, scale;
    char *end;
    if (!parse_number(text, p, kind, &v, &end, why, why_len) ||
        !parse_unit(text, end, kind, &scale, why, why_len))
        return false;
    double r = v * scale;
    if (!isfinite(r)) {
        snprintf(why, why_len, "'%s' overflows", text);
        return false;
    }
    *out = r;
    return true;
}

/* The largest of 6 units, each `step` times the one before, that a (>= 0)
 * reaches: its index, and its size in *scale. */
static int pick_step(double a, double step, double *scale)
{
    int i = 0;
    double s = 1.0;
    while (i < 5 && a >= s * step) {
        s *= step;
        i++;
    }
    *scale = s;
    return i;
}

/* Pick the display unit: binary for bytes and bandwidth, decimal for flops. */
static const char *pick_unit(units_kind kind, double value, double *scale)
{
    double a = fabs(value);
    switch (kind) {
    case UNITS_BYTES: {
        static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
        return names[pick_step(a, 1024.0, scale)];
    }
    case UNITS_BANDWIDTH: {
        static const char *names[] = {"B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s", "PiB/s"};
        return names[pick_step(a, 1024.0, scale)];
    }
    case UNITS_FLOPS: {
        static const char *names[] = {"FLOP/s", "kFLOP/s", "MFLOP/s", "GFLOP/s", "TFLOP/s", "PFLOP/s"};
        return names[pick_step(a, 1000.0, scale)];
    }
    case UNITS_TIME:
        if (a == 0.0 || a >= 1.0) {
            *scale = 1.0;
            return "s";
        }
        if (a >= 1e-3) {
            *scale = 1e-3;
            return "ms";
        }
        if (a >= 1e-6) {
            *scale = 1e-6;
            return "us";
        }
        *scale = 1e-9;
        return "ns";
    }
    *scale = 1.0;
    return "";
}

void units_format(units_kind kind, double value, char *buf, size_t len)
{
    double scale;
    const char *unit = pick_unit(kind, value, &scale);
    snprintf(buf, len, "%.4g %s", value / scale, unit);
}

/* Decimal display unit for bytes and bandwidth (GB, GB/s), as spec sheets write them. */
static const char *pick_decimal(units_kind kind, double value, double *scale)
{
    static const char *names[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    static const char *bw[] = {"B/s", "kB/s", "MB/s", "GB/s", "TB/s", "PB/s"};
    double a = fabs(value), s = 1.0;
    int i = 0;
    while (i < 5 && a >= s * 1000.0) {
        s *= 1000.0;
        i++;
    }
    *scale = s;
    return kind == UNITS_BYTES ? names[i] : bw[i];
}

static bool try_exact(units_kind kind, double value, double scale, const char *unit, char *buf,
                      size_t len, int max_digits)
{
    for (int digits = 1; digits <= max_digits; digits++) {
        snprintf(buf, len, "%.*g %s", digits, value / scale, unit);
        double back;
        char why[8];
        if (units_parse(buf, kind, &back, why, sizeof why) && back == value)
            return true;
    }
    return false;
}

void units_format_exact(units_kind kind, double value, char *buf, size_t len)
{
    double scale;
    const char *unit;
    /* the shortest exact form: a round decimal figure first (3.35 TB/s),
     * then the binary units (12.89 GiB/s) */
    if (kind == UNITS_BYTES || kind == UNITS_BANDWIDTH) {
        unit = pick_decimal(kind, value, &scale);
        if (try_exact(kind, value, scale, unit, buf, len, 8))
            return;
    }
    unit = pick_unit(kind, value, &scale);
    if (try_exact(kind, value, scale, unit, buf, len, 17))
        return;
    static const char *base[] = {"B", "B/s", "FLOP/s", "s"};
    snprintf(buf, len, "%.17g %s", value, base[kind]);
}
