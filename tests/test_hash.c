// SPDX-License-Identifier: MIT
/*
 * The page checksum (src/hash.c) gives XXH3_64bits_withSeed's value, the
 * one the log and snapshot file formats define, whichever code it runs on
 * this CPU (AVX2 where there is AVX2): every length from 0 to past two
 * pages, odd addresses, seeds 0 and not, bytes all zero and random; and
 * one page whose value is written down, so that the reference itself
 * cannot drift; and calls made from stacks at every 16-byte offset, since
 * the AVX2 code keeps 32-byte aligned vectors on the stack.
 */
#include <alloca.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "helpers.h"

/* The reference, compiled here for this program's target (SSE2). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define MAX_LEN (2 * 4096 + 300)

static void test_hash_matches_xxh3(void **state)
{
	static const uint64_t seeds[] = {0, 1, 0x9e3779b97f4a7c15ull,
					 ~0ull};
	unsigned char *buf = malloc(MAX_LEN + 64);

	(void)state;
	assert_non_null(buf);
	srandom(11);
	for (size_t i = 0; i < MAX_LEN + 64; i++)
		buf[i] = (unsigned char)random();
	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++)
		for (size_t len = 0; len <= MAX_LEN; len++) {
			const unsigned char *p = buf + len % 61;

			assert_true(cow__hash(p, len, seeds[s]) ==
				    XXH3_64bits_withSeed(p, len, seeds[s]));
		}
	memset(buf, 0, MAX_LEN);
	for (size_t len = 4096; len <= MAX_LEN; len += 4096)
		assert_true(cow__hash(buf, len, 7) ==
			    XXH3_64bits_withSeed(buf, len, 7));
	free(buf);
}

/* A page of the bytes 0, 1, ..., 255 repeated, seeded with 42. */
static void test_hash_known_value(void **state)
{
	unsigned char page[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(page); i++)
		page[i] = (unsigned char)i;
	assert_true(cow__hash(page, sizeof(page), 42) ==
		    XXH3_64bits_withSeed(page, sizeof(page), 42));
	assert_true(cow__hash(page, sizeof(page), 42) == 0x0c535f8a1bfd00adull);
}

/* Calls cow__hash with the stack pointer moved down by shift bytes
 * (alloca keeps it 16-byte aligned, so shifts 16 apart give both
 * alignments modulo 32). */
__attribute__((noinline)) static uint64_t hash_shifted(size_t shift,
						      const void *p,
						      size_t len, uint64_t seed)
{
	volatile unsigned char *pad = alloca(shift);

	pad[0] = 0;
	return cow__hash(p, len, seed);
}

/* XXH3 derives a secret from a non-zero seed on the stack and the AVX2
 * code stores it with aligned 32-byte moves: the library must give that
 * array 32-byte alignment whatever the compiler makes of the frame (clang
 * kept xxHash's SSE2 alignment of 16, and half of the calls faulted). */
static void test_hash_any_stack_alignment(void **state)
{
	unsigned char page[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(page); i++)
		page[i] = (unsigned char)(i * 7);
	for (size_t shift = 16; shift <= 128; shift += 16)
		assert_true(hash_shifted(shift, page, sizeof(page), 42) ==
			    XXH3_64bits_withSeed(page, sizeof(page), 42));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hash_matches_xxh3),
	    cmocka_unit_test(test_hash_known_value),
	    cmocka_unit_test(test_hash_any_stack_alignment),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
