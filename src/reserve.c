// SPDX-License-Identifier: MIT
/*
 * Address-space reservation, fixed placement and growth.
 *
 * The whole range an arena may ever use is reserved once, PROT_NONE and
 * MAP_NORESERVE, by mapping an empty memfd (closed right after). A
 * file-backed reservation never merges with a neighbouring mapping, unlike
 * anonymous PROT_NONE memory, so unmapping it never splits someone else's
 * mapping and never fails with ENOMEM at vm.max_map_count. The base is then
 * mapped MAP_PRIVATE|MAP_FIXED at the head, and growth maps the next piece
 * of the same file right after it: same file, contiguous offsets, same
 * flags, so the kernel merges it into the existing mapping and the count of
 * mappings does not change.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "compat.h"
#include "internal.h"
#include "reserve.h"

static int map_placeholder(void *hint, size_t len, int how, void **out)
{
	int mfd = cow__sys_memfd("cowarena-reserve", MFD_CLOEXEC);
	int r;

	if (mfd < 0)
		return mfd;
	r = cow__sys_mmap(out, hint, len, PROT_NONE,
			  MAP_PRIVATE | MAP_NORESERVE | how, mfd, 0);
	cow__sys_close(mfd);
	return r;
}

int cow__reserve(void *hint, size_t len, int fixed, char **out)
{
	void *p = NULL;
	int r;

	if (hint) {
		r = map_placeholder(hint, len, MAP_FIXED_NOREPLACE, &p);
		/* Kernels before 4.17 treat the flag as a plain hint. */
		if (r == 0 && p != hint) {
			cow__sys_munmap(p, len);
			r = -EEXIST;
		}
		/* A plain hint is ignored when it cannot be used: the range
		 * is taken (EEXIST) or lies outside user space (ENOMEM, as a
		 * plain mmap would ignore it). */
		if (r == 0 || fixed || (r != -EEXIST && r != -ENOMEM))
			goto out;
	}
	r = map_placeholder(NULL, len, 0, &p);
out:
	if (r == 0)
		*out = p;
	return r;
}

/*
 * A MAP_FIXED that fails may already have torn down what was there, leaving
 * a hole in the reservation that another mmap could take (and that the
 * final munmap of the reservation would then destroy). Fill it again; if the
 * range is still mapped, MAP_FIXED_NOREPLACE says so and nothing happens.
 */
static void patch_hole(char *addr, size_t len)
{
	void *p;

	if (map_placeholder(addr, len, MAP_FIXED_NOREPLACE, &p) == 0 &&
	    p != addr)
		cow__sys_munmap(p, len);
}

/*
 * Map bytes [from, to) of the base file at the same offset in the arena.
 * MAP_NORESERVE: private copies are charged when written, not up front, so
 * a 64 GiB arena opens on a smaller machine (as anonymous memory would).
 */
int cow__reserve_map_base(struct cow_arena *a, size_t from, size_t to)
{
	void *p;
	int r;

	r = cow__sys_mmap(&p, a->base + from, to - from, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, a->fd,
			  (off_t)from);
	if (r < 0)
		patch_hole(a->base + from, to - from);
	return r;
}

/* One munmap of the whole reservation: it covers whole mappings only, so it
 * needs no new mapping and cannot fail for lack of them. */
void cow__reserve_release(char *base, size_t len)
{
	cow__sys_munmap(base, len);
}
