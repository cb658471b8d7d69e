// SPDX-License-Identifier: MIT
/*
 * Dirty-page tracking: which pages of an arena are private copies, i.e.
 * differ from the base.
 *
 * In a MAP_PRIVATE file mapping a page that was written is an anonymous
 * page, no longer a file page. The PAGEMAP_SCAN ioctl (Linux 6.7) returns
 * exactly those, as merged runs, walking only the page tables that exist:
 * the cost follows the pages touched, not the arena's size. Where the
 * kernel lacks it (ENOTTY or EINVAL), /proc/self/pagemap is read instead,
 * 8 bytes per page. A swapped-out private page is still dirty, so "present
 * or swapped, and not a file page" is the test on both paths.
 *
 * The pagemap descriptor is shared by all arenas of the process: it is
 * opened by the first open arena and closed with the last, so no descriptor
 * outlives the arenas.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "internal.h"

#define SCAN_VEC 256 /* regions per PAGEMAP_SCAN call */
#define PM_CHUNK 512 /* pagemap entries per read */

static pthread_mutex_t pm_lock = PTHREAD_MUTEX_INITIALIZER;
static int pm_fd = -1;
static unsigned long pm_users;
static int force_pagemap;

int cow__pagemap_get(void)
{
	int r = 0;

	pthread_mutex_lock(&pm_lock);
	if (pm_users == 0) {
		r = cow__sys_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC,
				  0);
		if (r >= 0) {
			pm_fd = r;
			r = 0;
		}
	}
	if (r == 0)
		pm_users++;
	pthread_mutex_unlock(&pm_lock);
	return r;
}

void cow__pagemap_put(void)
{
	pthread_mutex_lock(&pm_lock);
	if (pm_users && --pm_users == 0) {
		cow__sys_close(pm_fd);
		pm_fd = -1;
	}
	pthread_mutex_unlock(&pm_lock);
}

int cow__pagemap_fd(void)
{
	return pm_fd;
}

void cow__track_force_pagemap(int on)
{
	force_pagemap = on;
}

/* Merges adjacent runs before handing them to the caller. */
struct emitter {
	cow__run_fn fn;
	void *ctx;
	size_t first, n; /* pending run; n == 0: none */
};

static int emit(struct emitter *e, size_t first, size_t n)
{
	int r = 0;

	if (e->n && e->first + e->n == first) {
		e->n += n;
		return 0;
	}
	if (e->n)
		r = e->fn(e->ctx, e->first, e->n);
	e->first = first;
	e->n = n;
	return r;
}

static int emit_flush(struct emitter *e)
{
	return e->n ? e->fn(e->ctx, e->first, e->n) : 0;
}

static int scan_ioctl(struct cow_arena *a, size_t first, size_t npages,
		      struct emitter *e)
{
	struct page_region vec[SCAN_VEC];
	uintptr_t start = (uintptr_t)a->base + first * a->pgsz;
	uintptr_t end = start + npages * a->pgsz;
	struct pm_scan_arg arg;
	int r, first_call = 1;

	while (start < end) {
		memset(&arg, 0, sizeof(arg));
		arg.size = sizeof(arg);
		arg.start = start;
		arg.end = end;
		arg.vec = (uintptr_t)vec;
		arg.vec_len = SCAN_VEC;
		arg.category_inverted = PAGE_IS_FILE;
		arg.category_mask = PAGE_IS_FILE;
		arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
		arg.return_mask = PAGE_IS_FILE;
		r = cow__sys_ioctl(pm_fd, PAGEMAP_SCAN, &arg);
		/* Only the first call can tell that the kernel lacks the
		 * ioctl: report that as -ENOTTY, before any run went out. */
		if (r < 0 && first_call && (r == -EINVAL || r == -EOPNOTSUPP))
			return -ENOTTY;
		if (r < 0)
			return r;
		first_call = 0;
		for (int i = 0; i < r; i++) {
			size_t f =
			    (vec[i].start - (uintptr_t)a->base) / a->pgsz;
			size_t n = (vec[i].end - vec[i].start) / a->pgsz;

			COW_TRY(emit(e, f, n));
		}
		/* A vector not filled means the walk reached the end; walk_end
		 * is then not needed (and has been seen stale on 6.18 after
		 * more than 512 regions in one call). */
		if ((size_t)r < SCAN_VEC)
			break;
		if (arg.walk_end <= start)
			return -EIO; /* no progress: never loop forever */
		start = arg.walk_end;
	}
	return 0;
}

static int scan_pagemap(struct cow_arena *a, size_t first, size_t npages,
			struct emitter *e)
{
	uint64_t ent[PM_CHUNK];
	size_t vpage = (uintptr_t)a->base / a->pgsz + first;

	for (size_t done = 0; done < npages;) {
		size_t k = npages - done < PM_CHUNK ? npages - done : PM_CHUNK;
		ssize_t got = cow__sys_pread(pm_fd, ent, k * sizeof(ent[0]),
					     (off_t)((vpage + done) * 8));

		if (got < 0)
			return (int)got;
		if ((size_t)got != k * sizeof(ent[0]))
			return -EIO;
		for (size_t i = 0; i < k; i++) {
			uint64_t v = ent[i];

			if ((v & (PM_ENTRY_PRESENT | PM_ENTRY_SWAPPED)) &&
			    !(v & PM_ENTRY_FILE))
				COW_TRY(emit(e, first + done + i, 1));
		}
		done += k;
	}
	return 0;
}

/*
 * Calls fn(ctx, page, count) for each run of dirty pages inside
 * [first_page, first_page + npages), in ascending order, adjacent pages
 * merged. A negative return from fn stops the walk and is returned.
 */
int cow__track_dirty(struct cow_arena *a, size_t first_page, size_t npages,
		     cow__run_fn fn, void *ctx)
{
	struct emitter e = {fn, ctx, 0, 0};
	int r = -ENOTTY;

	if (!npages)
		return 0;
	if (!force_pagemap)
		r = scan_ioctl(a, first_page, npages, &e);
	/* The kernel lacks PAGEMAP_SCAN: read pagemap entries instead. */
	if (r == -ENOTTY)
		r = scan_pagemap(a, first_page, npages, &e);
	if (r < 0)
		return r;
	return emit_flush(&e);
}

/* Counts lines of /proc/self/maps that start inside [start, start + len). */
int cow__count_mappings(const void *start, size_t len, size_t *out)
{
	uintptr_t lo = (uintptr_t)start, hi = lo + len;
	size_t cap = 1 << 16, have = 0, count = 0;
	char *buf = cow__malloc(cap), *p;
	int fd, r = 0;

	if (!buf)
		return -ENOMEM;
	fd = cow__sys_open("/proc/self/maps", O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		cow__free(buf);
		return fd;
	}
	for (;;) {
		ssize_t got;

		if (cap - have < 4096) {
			char *n = cow__realloc(buf, cap * 2);

			if (!n) {
				r = -ENOMEM;
				break;
			}
			buf = n;
			cap *= 2;
		}
		got = cow__sys_read(fd, buf + have, cap - 1 - have);
		if (got <= 0) {
			r = (int)got;
			break;
		}
		have += (size_t)got;
	}
	cow__sys_close(fd);
	if (r == 0) {
		buf[have] = 0;
		for (p = buf; p && *p; p = strchr(p, '\n')) {
			uintptr_t s;

			if (*p == '\n')
				p++;
			s = strtoull(p, NULL, 16);
			count += s >= lo && s < hi;
		}
		*out = count;
	}
	cow__free(buf);
	return r;
}
