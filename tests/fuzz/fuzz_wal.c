// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the write-ahead log's parser (src/wal.c): any byte
 * string is a log file; the parser must answer (0 or a COW_E* code),
 * never crash, never read out of bounds. `make fuzz` runs it for
 * FUZZ_TIME seconds from the seed corpus in tests/fuzz/wal-corpus.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "wal.h"
#include "cowarena.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cow__wal_info info;
	int r = cow__wal_parse_buf(data, size, 4096, &info);

	if (r != 0 && r != COW_ECORRUPT && r != COW_EFOREIGN &&
	    r != COW_EVERSION)
		abort();
	/* what was found lies in the buffer (linear) or in one lap of
	 * the ring from the head */
	if (r == 0 && info.ntx && !info.ring && (size_t)info.end > size)
		abort();
	if (r == 0 && info.ntx && info.ring &&
	    (info.end < info.head || info.end - info.head > info.ring))
		abort();
	return 0;
}
