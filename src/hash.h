/* SPDX-License-Identifier: MIT */
/*
 * hash.c: the 64-bit checksum of the log's and the snapshot files' pages
 * (XXH3-64 with a seed), with the vector code the CPU has.
 */
#ifndef COW_HASH_H
#define COW_HASH_H

#include <stddef.h>
#include <stdint.h>

/* XXH3_64bits_withSeed(p, len, seed): the same value on every CPU. */
uint64_t cow__hash(const void *p, size_t len, uint64_t seed);

#endif
