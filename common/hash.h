/*
 * hash — content hashes for the store. FNV-1a, 64 bits, printed as 16 hex
 * digits. Inputs are hashed in their canonical form (see each module's
 * *_canonical function), so formatting and comments do not change the hash;
 * the store keeps the canonical text beside the hash and checks it on insert.
 */
#ifndef LLMSIM_COMMON_HASH_H
#define LLMSIM_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t hash_fnv1a64(const void *data, size_t len);
/* hex must hold 17 bytes. */
void hash_hex(const char *text, char hex[17]);

#endif
