// SPDX-License-Identifier: MIT
/* The README's example, complete. Build it with
 *   cc readme.c $(pkg-config --cflags --libs cowarena)
 */
#include <cowarena.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Every call returns 0 (or a count), or a negative errno. */
#define TRY(call)                                                     \
	do {                                                          \
		long r_ = (long)(call);                               \
		if (r_ < 0) {                                         \
			fprintf(stderr, "%s: %s\n", #call,            \
				cow_strerror((int)r_));               \
			exit(1);                                      \
		}                                                     \
	} while (0)

int main(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	char path[] = "/tmp/disk-XXXXXX"; /* a scratch file, empty */
	struct cow_options o = {.size = 16 * pg}; /* grow it to 16 pages */
	struct cow_range r[8];
	cow_arena *a;
	cow_snap *s;
	ssize_t n;

	int fd = mkstemp(path);
	if (fd < 0 || close(fd))
		return 1;
	TRY(cow_open(&a, path, &o));
	unsigned char *p = cow_base(a); /* plain memory: the file's bytes */
	p[1 * pg] = 0xcc;               /* private: the file is untouched */
	p[9 * pg] = 0x90;
	TRY(n = cow_dirty(a, r, 8)); /* 2 runs: pages 1 and 9 */
	printf("dirty: %zd runs, pages %zu and %zu\n", n, r[0].offset / pg,
	       r[1].offset / pg);
	TRY(cow_revert(a, p + 9 * pg, pg)); /* page 9 reads the file again */

	TRY(cow_snapshot(a, &s)); /* remember this state */
	p[2 * pg] = 0x42;
	TRY(cow_rollback(a, s)); /* page 2 is back to 0, page 1 stays 0xcc */
	cow_snap_release(s);
	printf("after rollback: page 1 = %#x, page 2 = %#x, page 9 = %#x\n",
	       p[pg], p[2 * pg], p[9 * pg]);

	TRY(cow_commit(a, 0)); /* page 1 is in the file now, durably */
	p[3 * pg] = 7;
	TRY(cow_discard(a)); /* back to the last commit: page 3 is 0 */
	TRY(cow_grow(a, 2 * cow_size(a))); /* same address, more zero pages */
	printf("after commit, discard, grow: page 1 = %#x, page 3 = %#x, "
	       "%zu pages\n",
	       p[pg], p[3 * pg], cow_size(a) / pg);
	TRY(cow_close(a));

	/* Another open sees what was committed (and the grown file). */
	o = (struct cow_options){.flags = COW_READONLY};
	TRY(cow_open(&a, path, &o));
	p = cow_base(a);
	printf("reopened: page 1 = %#x, %zu pages\n", p[pg], cow_size(a) / pg);
	int ok = p[pg] == 0xcc && p[2 * pg] == 0 && p[3 * pg] == 0 &&
		 p[9 * pg] == 0 && cow_size(a) == 32 * pg;
	TRY(cow_close(a));
	unlink(path);
	return ok ? 0 : 1;
}
