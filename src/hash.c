// SPDX-License-Identifier: MIT
/*
 * The checksum of whole pages: XXH3-64, seeded, as xxhash.h defines it.
 *
 * The library is built for any x86-64, which gives xxHash its SSE2 code;
 * inputs longer than XXH3's mid size (240 bytes: every page) go through
 * its AVX2 code instead where the CPU has AVX2 (chosen once, at the first
 * call), which hashes a 4 KiB page 2.5x as fast (measured: 24 against
 * 60 us per MiB). A durable commit seals every page it logs, so this is
 * on its path, as is every page of a log replay and of a snapshot file.
 * Both give the same value: the format does not depend on the CPU.
 */
#include <stddef.h>
#include <stdint.h>

/* xxHash compiled in, as in wal.c; its AVX2 functions too, with a target
 * attribute (not -mavx2, which would let the compiler use AVX2 anywhere
 * in this file). Those functions load and store their accumulator and the
 * secret a seed derives, both arrays on the stack, with aligned 32-byte
 * moves, while xxHash aligns them for the build's own vectors (SSE2: 16
 * bytes): XXH_ACC_ALIGN gives them 64, which AVX2 needs (32: clang built
 * them 16-aligned, and a call from a stack at 16 modulo 32 faulted) and a
 * build for AVX-512 requires (-march=native there: xxHash asserts 64). */
#define XXH_INLINE_ALL
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HASH_AVX2 1
#define XXH_DISPATCH_AVX2 1
#define XXH_TARGET_AVX2 __attribute__((__target__("avx2")))
#define XXH_ACC_ALIGN 64
#include <immintrin.h>
#endif
#include <xxhash.h>

#include "hash.h"

#ifdef HASH_AVX2
__attribute__((__target__("avx2"), __noinline__)) static uint64_t
hash_long_avx2(const void *p, size_t len, uint64_t seed)
{
	return XXH3_hashLong_64b_withSeed_internal(
	    p, len, seed, XXH3_accumulate_512_avx2, XXH3_scrambleAcc_avx2,
	    XXH3_initCustomSecret_avx2);
}

/* 1: AVX2, 0: not, -1: not asked yet */
static int have_avx2 = -1;

static int use_avx2(void)
{
	int v = __atomic_load_n(&have_avx2, __ATOMIC_RELAXED);

	if (v < 0) {
		__builtin_cpu_init();
		v = __builtin_cpu_supports("avx2") ? 1 : 0;
		__atomic_store_n(&have_avx2, v, __ATOMIC_RELAXED);
	}
	return v;
}
#endif

uint64_t cow__hash(const void *p, size_t len, uint64_t seed)
{
#ifdef HASH_AVX2
	if (len > XXH3_MIDSIZE_MAX && use_avx2())
		return hash_long_avx2(p, len, seed);
#endif
	return XXH3_64bits_withSeed(p, len, seed);
}
