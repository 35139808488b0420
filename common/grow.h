/*
 * grow — room for one more element at the end of a growing array: the
 * capacity doubles (from `first`) when the array is full.
 *
 *     T *p = llmsim_grow(arr, n, &cap, sizeof *arr, 1024);
 *     if (!p) ...out of memory: arr and cap are unchanged...
 *     arr = p;
 *     arr[n++] = x;
 */
#ifndef LLMSIM_COMMON_GROW_H
#define LLMSIM_COMMON_GROW_H

#include <stdint.h>
#include <stdlib.h>

/* The array (moved, or as it was when n < *cap), or NULL when out of memory
 * or when the size would overflow. */
static inline void *llmsim_grow(void *arr, size_t n, size_t *cap, size_t elem, size_t first)
{
    if (n < *cap)
        return arr;
    size_t ncap = *cap ? 2 * *cap : first;
    if (ncap < *cap || ncap > SIZE_MAX / elem)
        return NULL;
    void *p = realloc(arr, ncap * elem);
    if (p)
        *cap = ncap;
    return p;
}

#endif
