/*
 * units — strict parsing and printing of quantities with units.
 *
 * Accepted forms: a decimal number, optional spaces, a unit. Units are
 * case-sensitive as written below; decimal prefixes are powers of 1000,
 * binary prefixes (Ki, Mi, Gi, Ti, Pi) powers of 1024.
 *   bytes      B kB KB MB GB TB PB KiB MiB GiB TiB PiB
 *   bandwidth  any byte unit followed by /s (GB/s, GiB/s, ...)
 *   flops      FLOP/s kFLOP/s MFLOP/s GFLOP/s TFLOP/s PFLOP/s
 *   time       s ms us ns min h
 * Values are returned in base units: bytes, bytes/s, FLOP/s, seconds.
 */
#ifndef LLMSIM_COMMON_UNITS_H
#define LLMSIM_COMMON_UNITS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum units_kind {
    UNITS_BYTES,
    UNITS_BANDWIDTH,
    UNITS_FLOPS,
    UNITS_TIME,
} units_kind;

/* Parse `text` as a quantity of `kind`. On failure returns false and writes a
 * one-line reason (no position) into why[why_len]. Rejects NaN, infinities,
 * numbers that overflow a double, and missing or unknown units. */
bool units_parse(const char *text, units_kind kind, double *out, char *why, size_t why_len);

/* Human form with 4 significant digits ("12.89 GiB/s"), for tables. */
void units_format(units_kind kind, double value, char *buf, size_t len);

/* Exact form: a unit chosen for readability, printed with enough digits that
 * units_parse gives back exactly `value` (falls back to the base unit). */
void units_format_exact(units_kind kind, double value, char *buf, size_t len);

/* Name of the kind, for messages ("a size such as '16 GiB'"). */
const char *units_kind_example(units_kind kind);

#endif
