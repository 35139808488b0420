/* hash — see hash.h. */
#include "common/hash.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

uint64_t hash_fnv1a64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void hash_hex(const char *text, char hex[17])
{
    snprintf(hex, 17, "%016" PRIx64, hash_fnv1a64(text, strlen(text)));
}
