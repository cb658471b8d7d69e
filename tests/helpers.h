/* SPDX-License-Identifier: MIT */
/*
 * Shared test fixtures: the same test body runs on every backing (anonymous,
 * memfd, tmpfs file, ext4 file), as the kernel's mm selftests do.
 */
#ifndef COW_TEST_HELPERS_H
#define COW_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <cmocka.h>

#include "cowarena.h"

enum th_backing { TH_ANON, TH_MEMFD, TH_TMPFS, TH_EXT4, TH_NBACKINGS };

struct th_arena {
	enum th_backing b;
	cow_arena *a;
	char path[256]; /* file backings */
	size_t pgsz;
};

extern const char *const th_backing_names[TH_NBACKINGS];

/* The byte a base file holds at offset off (anonymous arenas hold 0). */
unsigned char th_base_byte(enum th_backing b, size_t off);
/* Opens an arena of size bytes on backing b, base filled with th_base_byte. */
int th_open(struct th_arena *t, enum th_backing b, size_t size,
	    const struct cow_options *opt);
void th_close(struct th_arena *t);
/* Makes a file (or memfd, returning its fd) of size bytes with the pattern. */
int th_make_file(enum th_backing b, size_t size, char *path, size_t pathlen);
/* Checks the arena's whole content against ref (size bytes). */
int th_equal(const struct th_arena *t, const unsigned char *ref, size_t size);
/* Fills ref with the base content of the arena's first size bytes. */
void th_base_ref(enum th_backing b, unsigned char *ref, size_t size);

/* ThreadSanitizer maps shadow memory as the program touches memory, and
 * AddressSanitizer's allocator maps new regions while freed memory waits
 * in its quarantine (after failed calls in particular), so the process's
 * mapping count is then no measure of the library's mappings (an arena's
 * own range, th_arena_maps, still is; the plain build checks both). */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define TH_MAPS_EXACT 0
#else
#define TH_MAPS_EXACT 1
#endif

/*
 * Runs fn(arg) in a fork child and returns its wait status. The child
 * exits 0 when fn returns 0, else with fn's value; TH_CHECK in fn reports
 * the failing line on stderr and exits 1 (cmocka's asserts cannot be used
 * in a child).
 */
int th_in_child(int (*fn)(void *), void *arg);
#define TH_CHECK(c)                                                    \
	do {                                                           \
		if (!(c)) {                                            \
			fprintf(stderr, "# child: %s:%d: %s\n", __FILE__, \
				__LINE__, #c);                         \
			_exit(1);                                      \
		}                                                      \
	} while (0)
/* Asserts that a wait status is a normal exit with code 0. */
void th_assert_exit0(int status);

size_t th_count_fds(void);
size_t th_count_maps(void);
/* The page-table memory of this process (VmPTE), in kB; -1 if unknown. */
long th_vm_pte_kb(void);
size_t th_arena_maps(const cow_arena *a);
const char *th_dir(enum th_backing b);

#endif
