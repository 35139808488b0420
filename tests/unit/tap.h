/*
 * tap — a tiny test harness: CHECK(cond, fmt, ...) records a failure with
 * file:line and keeps going; tap_done() prints "N passed, N failed" and
 * returns the exit status (0 when all passed). tap_skip() exits with 77,
 * ctest's skip code.
 */
#ifndef LLMSIM_TESTS_TAP_H
#define LLMSIM_TESTS_TAP_H

#include <stdbool.h>

void tap_check(bool ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int tap_done(void);
void tap_skip(const char *why) __attribute__((noreturn));
/* Path of a file under tests/data ($LLMSIM_TEST_DATA). */
const char *tap_data(const char *rel);
/* Path under the source root ($LLMSIM_DATA_DIR). */
const char *tap_src(const char *rel);

#define CHECK(cond, ...) tap_check((cond), __FILE__, __LINE__, __VA_ARGS__)
/* |a - b| <= tol * max(|b|, tiny) */
#define CHECK_REL(a, b, tol, what)                                                              \
    do {                                                                                        \
        double a_ = (a), b_ = (b);                                                              \
        double d_ = a_ - b_;                                                                    \
        if (d_ < 0) d_ = -d_;                                                                   \
        double s_ = b_ < 0 ? -b_ : b_;                                                          \
        tap_check(d_ <= (tol) * (s_ > 1e-300 ? s_ : 1e-300), __FILE__, __LINE__,                \
                  "%s: %.9g vs %.9g (rel err %.3g > %.3g)", what, a_, b_, d_ / (s_ ? s_ : 1),   \
                  (double)(tol));                                                               \
    } while (0)

#endif
