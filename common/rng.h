/*
 * rng — a small deterministic random number generator, header only.
 * xoshiro256** (Blackman and Vigna) seeded through splitmix64, so one 64-bit
 * seed gives the same bits on every platform and compiler: no rand(), no
 * libc state. The distributions on top (uniform, normal, exponential, gamma)
 * consume the stream in a fixed order and use only IEEE double arithmetic,
 * sqrt (exact) and log/pow (which libms round alike but for rare last-bit
 * differences), so a seed fixes every sample.
 */
#ifndef LLMSIM_COMMON_RNG_H
#define LLMSIM_COMMON_RNG_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct rng_state {
    uint64_t s[4];
    double spare; /* the polar method's second normal, used by the next call */
    bool has_spare;
} rng_state;

/* splitmix64: one step of a 64-bit counter through a strong mixer; used to
 * spread a seed over xoshiro's 256 bits of state (never all zero). */
static inline uint64_t rng_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void rng_seed(rng_state *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = rng_splitmix64(&x);
    r->spare = 0;
    r->has_spare = false;
}

static inline uint64_t rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: the next 64 random bits. */
static inline uint64_t rng_next(rng_state *r)
{
    uint64_t *s = r->s;
    uint64_t out = rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng_rotl(s[3], 45);
    return out;
}

/* Uniform on [0, 1): the top 53 bits (the low bits of xoshiro** are fine too,
 * but the top ones are the convention) scaled exactly. */
static inline double rng_u01(rng_state *r)
{
    return (double)(rng_next(r) >> 11) * 0x1p-53;
}

/* Uniform whole number in [0, n), n >= 1, without modulo bias: draws below
 * 2^64 mod n are rejected so every residue has the same number of draws. */
static inline uint64_t rng_below(rng_state *r, uint64_t n)
{
    uint64_t reject_below = (0 - n) % n; /* 2^64 mod n */
    for (;;) {
        uint64_t x = rng_next(r);
        if (x >= reject_below)
            return x % n;
    }
}

/* Standard normal by Marsaglia's polar method (no sin/cos; one log and one
 * sqrt per pair). It yields two values per accepted pair; the second
 * is kept in the state, so the stream stays a pure function of the seed. */
static inline double rng_normal(rng_state *r)
{
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2 * rng_u01(r) - 1;
        v = 2 * rng_u01(r) - 1;
        s = u * u + v * v;
    } while (s >= 1 || s == 0);
    double m = sqrt(-2 * log(s) / s);
    r->spare = v * m;
    r->has_spare = true;
    return u * m;
}

/* Exponential with the given rate (> 0): mean 1/rate. 1 - u is in (0, 1],
 * so the log is finite. */
static inline double rng_exponential(rng_state *r, double rate)
{
    return -log(1 - rng_u01(r)) / rate;
}

/* Gamma(shape, scale), shape > 0, scale > 0: mean shape*scale, variance
 * shape*scale^2. Marsaglia and Tsang's squeeze method for shape >= 1; below 1
 * it is undefined, so draw gamma(shape + 1) and multiply by U^(1/shape)
 * (the same paper's boost). */
static inline double rng_gamma(rng_state *r, double shape, double scale)
{
    if (shape < 1) {
        double g = rng_gamma(r, shape + 1, 1);
        double u = 1 - rng_u01(r); /* (0, 1]: never 0^(1/shape) from a zero draw */
        return g * pow(u, 1 / shape) * scale;
    }
    double d = shape - 1.0 / 3, c = 1 / sqrt(9 * d);
    for (;;) {
        double x, v;
        do {
            x = rng_normal(r);
            v = 1 + c * x;
        } while (v <= 0);
        v = v * v * v;
        double u = rng_u01(r);
        double x2 = x * x;
        if (u < 1 - 0.0331 * x2 * x2)
            return d * v * scale;
        if (log(u) < 0.5 * x2 + d * (1 - v + log(v)))
            return d * v * scale;
    }
}

#endif
