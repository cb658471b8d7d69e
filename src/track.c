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
 * Written-page tracking for snapshots (which private pages were written
 * since their content was last recorded) uses userfaultfd asynchronous
 * write-protect read back with the same PAGEMAP_SCAN; see
 * cow__track_uffd_open below.
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
#include "snap.h"
#include "testhooks.h"
#include "track.h"

#define SCAN_VEC 256 /* regions per PAGEMAP_SCAN call */
#define PM_CHUNK 512 /* pagemap entries per read */

static pthread_mutex_t pm_lock = PTHREAD_MUTEX_INITIALIZER;
static int pm_fd = -1;
static pid_t pm_pid; /* the process pm_fd reads the page tables of */
static unsigned long pm_users;
static int force_pagemap;
static int force_compare;

/*
 * "/proc/self" is resolved when the file is opened: a fork child inherits
 * a descriptor that reads its parent's page tables. The first arena a
 * child opens gets a descriptor of its own (the inherited one is the
 * child's copy, closed; the parent's arenas the child inherited hold
 * their references on, and can only be closed there anyway).
 */
int cow__pagemap_get(void)
{
	pid_t self = cow__sys_getpid();
	int r = 0;

	pthread_mutex_lock(&pm_lock);
	if (pm_users == 0 || pm_pid != self) {
		r = cow__sys_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC,
				  0);
		if (r >= 0) {
			if (pm_users)
				cow__sys_close(pm_fd);
			pm_fd = r;
			pm_pid = self;
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

void cow__track_force_pagemap(int on)
{
	force_pagemap = on;
}

void cow__track_force_compare(int on)
{
	force_compare = on;
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

/* What a PAGEMAP_SCAN asks for (see struct pm_scan_arg). */
struct scan_spec {
	__u64 flags, inverted, mask, anyof, ret;
};

/* Private pages: present or swapped, and not file pages. */
static const struct scan_spec spec_private = {0, PAGE_IS_FILE, PAGE_IS_FILE,
					      PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
					      PAGE_IS_FILE};

static int scan_ioctl(struct cow_arena *a, size_t first, size_t npages,
		      const struct scan_spec *sp, struct emitter *e)
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
		arg.flags = sp->flags;
		arg.category_inverted = sp->inverted;
		arg.category_mask = sp->mask;
		arg.category_anyof_mask = sp->anyof;
		arg.return_mask = sp->ret;
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
static int dirty_uffd(struct cow_arena *a, size_t first_page, size_t npages,
		      struct emitter *e);

int cow__track_dirty(struct cow_arena *a, size_t first_page, size_t npages,
		     cow__run_fn fn, void *ctx)
{
	struct emitter e = {fn, ctx, 0, 0};
	int r = -ENOTTY;

	if (!npages)
		return 0;
	if (!force_pagemap && !force_compare && !a->snaps)
		cow__snap_track_early(a);
	if (!force_pagemap && a->uffd >= 0) {
		r = dirty_uffd(a, first_page, npages, &e);
		if (r != -EAGAIN)
			return r < 0 ? r : emit_flush(&e);
		r = -ENOTTY;
	}
	if (!force_pagemap)
		r = scan_ioctl(a, first_page, npages, &spec_private, &e);
	/* The kernel lacks PAGEMAP_SCAN: read pagemap entries instead. */
	if (r == -ENOTTY)
		r = scan_pagemap(a, first_page, npages, &e);
	if (r < 0)
		return r;
	return emit_flush(&e);
}

/*
 * Written-page tracking with userfaultfd asynchronous write-protect.
 *
 * The whole mapped base is registered for write-protect once, but only the
 * pages present are ever armed (write-protected): private pages right after
 * a snapshot or rollback has recorded their content, and file pages seen by
 * a harvest or a dirty scan (so that they are not looked at again). Arming
 * the whole range would install a marker in every empty page-table entry of
 * a file mapping, allocating page tables for the whole arena: memory and
 * time that follow the arena's size. Clean pages need no arming: the first
 * write to one makes a new private page, which is not write-protected and so
 * reads as written. A private page read as written is therefore one whose
 * content was not recorded since; MADV_DONTNEED keeps the marker of an armed
 * page on file and memfd mappings, so a dropped page stays unwritten.
 */
int cow__track_uffd_open(struct cow_arena *a)
{
	struct uffdio_api api = {
	    .api = UFFD_API,
	    .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED,
	};
	int fd, r;

	if (force_compare || force_pagemap)
		return -EOPNOTSUPP;
	fd = cow__sys_userfaultfd(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	/* Disabled by sysctl or seccomp, or a kernel without it. */
	if (fd == -EPERM || fd == -ENOSYS || fd == -EINVAL)
		return -EOPNOTSUPP;
	if (fd < 0)
		return fd;
	r = cow__sys_ioctl(fd, UFFDIO_API, &api);
	if (r == -EINVAL || (r == 0 && !(api.features & UFFD_FEATURE_WP_ASYNC)))
		r = -EOPNOTSUPP;
	if (r == 0) {
		a->uffd = fd;
		r = cow__track_uffd_register(a, 0, a->mapped);
	}
	if (r < 0) {
		a->uffd = -1;
		cow__sys_close(fd);
	}
	return r;
}

int cow__track_uffd_register(struct cow_arena *a, size_t from, size_t to)
{
	struct uffdio_register reg = {
	    .range = {(uintptr_t)a->base + from, to - from},
	    .mode = UFFDIO_REGISTER_MODE_WP,
	};
	int r;

	if (a->uffd < 0 || from == to)
		return 0;
	r = cow__sys_ioctl(a->uffd, UFFDIO_REGISTER, &reg);
	/* A kernel that cannot write-protect this kind of mapping. */
	return r == -EINVAL ? -EOPNOTSUPP : r;
}

/* -1 before the close: the SIGBUS handler must never use a descriptor
 * number that is being reused. */
void cow__track_uffd_close(struct cow_arena *a)
{
	int fd = a->uffd;

	__atomic_store_n(&a->uffd, -1, __ATOMIC_RELEASE);
	cow__sys_close(fd);
}

int cow__track_arm(struct cow_arena *a, size_t first_page, size_t npages)
{
	struct uffdio_writeprotect wp = {
	    .range = {(uintptr_t)a->base + first_page * a->pgsz,
		      npages * a->pgsz},
	    .mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	return cow__sys_ioctl(a->uffd, UFFDIO_WRITEPROTECT, &wp);
}

/*
 * Removes the write-protection from a range about to be dropped. A page
 * dropped while armed would leave a userfaultfd marker behind, which the
 * dirty scan cannot tell from a swapped-out private page; unarming first
 * leaves a clean page that needs no arming. Walks only the page tables
 * present. A failure leaves every page as it was.
 */
int cow__track_unarm(struct cow_arena *a, size_t first_page, size_t npages)
{
	struct uffdio_writeprotect wp = {
	    .range = {(uintptr_t)a->base + first_page * a->pgsz,
		      npages * a->pgsz},
	    .mode = 0,
	};

	if (a->uffd < 0 || !npages)
		return 0;
	return cow__sys_ioctl(a->uffd, UFFDIO_WRITEPROTECT, &wp);
}

/*
 * Which pages to look at closely: those present or swapped and not
 * write-protected. That is every private page written since it was armed,
 * but also file pages read in since the last arming. The scan needs no
 * page lookups and costs about 5 ns per page-table entry present, against
 * about 50 ns when the file-page test is asked for (measured on 64 MiB and
 * 1 GiB of present pages): the file-page test is made on these candidates
 * only. With PM_SCAN_WP_MATCHING the same walk arms every candidate, file
 * pages included, so that a file page read once is not a candidate again.
 * Armed file pages are harmless: writing one makes a private page, not
 * armed; dropping one would leave a tracking marker, which is why every
 * drop unarms its whole range first (cow__track_unarm).
 */
static const struct scan_spec spec_candidate = {
    PM_SCAN_CHECK_WPASYNC, 0, PAGE_IS_WRITTEN,
    PAGE_IS_PRESENT | PAGE_IS_SWAPPED, PAGE_IS_WRITTEN};

/* Candidate runs, merged into spans when the gap between two is small:
 * one file-page scan of a few clean entries costs less than an ioctl. */
#define SPAN_GAP 16

struct runs {
	size_t n, cap;
	struct cow__run {
		size_t first, n;
	} * v;
};

static int runs_add(void *ctx, size_t first, size_t n)
{
	struct runs *rs = ctx;
	struct cow__run *v =
	    cow__array_grow(rs->v, &rs->cap, rs->n + 1, sizeof(*v), 32);

	if (!v)
		return -ENOMEM;
	rs->v = v;
	rs->v[rs->n].first = first;
	rs->v[rs->n++].n = n;
	return 0;
}

/* The file pages present (or swapped) and not armed, arming them. */
static const struct scan_spec spec_file_unarmed = {
    PM_SCAN_CHECK_WPASYNC | PM_SCAN_WP_MATCHING, 0,
    PAGE_IS_FILE | PAGE_IS_WRITTEN, PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
    PAGE_IS_FILE};

/* The file pages present (or swapped), armed or not. */
static const struct scan_spec spec_file = {
    PM_SCAN_CHECK_WPASYNC, 0, PAGE_IS_FILE, PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
    PAGE_IS_FILE};

/* Emits the parts of the runs cand[from, to) outside the runs of f (both
 * ascending). */
static int emit_minus(const struct runs *cand, size_t from, size_t to,
		      const struct runs *f, struct emitter *e)
{
	size_t j = 0;

	for (size_t i = from; i < to; i++) {
		size_t p = cand->v[i].first, end = p + cand->v[i].n;

		while (p < end) {
			while (j < f->n && f->v[j].first + f->v[j].n <= p)
				j++;
			if (j == f->n || f->v[j].first >= end) {
				COW_TRY(emit(e, p, end - p));
				break;
			}
			if (f->v[j].first > p)
				COW_TRY(emit(e, p, f->v[j].first - p));
			p = f->v[j].first + f->v[j].n;
		}
	}
	return 0;
}

/*
 * The private pages among the candidates (present or swapped): those that
 * are not file pages. One walk per span of candidates finds the file pages
 * with files (spec_file, or spec_file_unarmed, which arms them in the same
 * go so that the next scan does not look at them again).
 */
static int private_among(struct cow_arena *a, const struct runs *cand,
			 const struct scan_spec *files, struct emitter *e)
{
	struct runs f = {0};
	struct emitter ef = {runs_add, &f, 0, 0};
	int r = 0;

	for (size_t i = 0; r == 0 && i < cand->n;) {
		size_t from = i, first = cand->v[i].first;
		size_t end = first + cand->v[i].n;

		while (++i < cand->n && cand->v[i].first <= end + SPAN_GAP)
			end = cand->v[i].first + cand->v[i].n;
		f.n = 0;
		ef.n = 0;
		r = scan_ioctl(a, first, end - first, files, &ef);
		if (r == 0)
			r = emit_flush(&ef);
		if (r == 0)
			r = emit_minus(cand, from, i, &f, e);
	}
	cow__free(f.v);
	return r;
}

/*
 * Private pages written since they were last armed (every private page
 * with COW__WRITTEN_ALL), as runs. With COW__WRITTEN_ARM the walk arms
 * what it reports (PM_SCAN_WP_MATCHING), and file pages read in since the
 * last arming. Without it, it only reads.
 */
int cow__track_written(struct cow_arena *a, size_t first_page, size_t npages,
		       unsigned how, cow__run_fn fn, void *ctx)
{
	struct scan_spec sp = spec_candidate;
	struct emitter e = {fn, ctx, 0, 0};
	struct runs cand = {0};
	int r;

	if (how & COW__WRITTEN_ARM)
		sp.flags |= PM_SCAN_WP_MATCHING;
	if (!npages)
		return 0;
	if (how & COW__WRITTEN_ALL) {
		/* Every private page, armed or not: one walk with the test.
		 * When arming, the file pages present are armed first, in a
		 * walk without the test: else each would be a candidate in
		 * the next harvests, until one arms it. */
		if (how & COW__WRITTEN_ARM) {
			r = cow__track_arm_written(a, first_page, npages);
			if (r < 0)
				return r == -ENOTTY ? -EIO : r;
		}
		sp.inverted = PAGE_IS_FILE;
		sp.mask = PAGE_IS_FILE;
		sp.ret = PAGE_IS_FILE;
		r = scan_ioctl(a, first_page, npages, &sp, &e);
	} else {
		struct emitter ec = {runs_add, &cand, 0, 0};

		if (how & COW__WRITTEN_ROUGH)
			ec = e;
		r = scan_ioctl(a, first_page, npages, &sp, &ec);
		if (r == 0)
			r = emit_flush(&ec);
		if (r == 0 && (how & COW__WRITTEN_ROUGH))
			e.n = 0; /* flushed to the caller already */
		else if (r == 0)
			r = private_among(a, &cand, &spec_file, &e);
		cow__free(cand.v);
	}
	if (r == -ENOTTY)
		r = -EIO; /* cannot happen: uffd WP_ASYNC implies the ioctl */
	return r < 0 ? r : emit_flush(&e);
}

static int ignore_run(void *ctx, size_t first, size_t n)
{
	(void)ctx;
	(void)first;
	(void)n;
	return 0;
}

/*
 * Arms every page of the range present and not armed, in one walk and
 * without the file-page test. The walk gets an output vector although
 * nothing is read from it: without one the kernel takes a fast path that
 * write-protects every entry of the range, installing markers in the
 * empty ones.
 */
int cow__track_arm_written(struct cow_arena *a, size_t first_page,
			   size_t npages)
{
	struct scan_spec sp = spec_candidate;
	struct emitter e = {ignore_run, NULL, 0, 0};

	if (a->uffd < 0 || !npages)
		return 0;
	sp.flags |= PM_SCAN_WP_MATCHING;
	return scan_ioctl(a, first_page, npages, &sp, &e);
}

/* Emits the union of two ascending lists of runs, in order. */
static int emit_union(const struct runs *x, const struct runs *y,
		      struct emitter *e)
{
	size_t i = 0, j = 0, first = 0, end = 0;
	int open = 0;

	while (i < x->n || j < y->n) {
		const struct cow__run *r;

		if (j == y->n || (i < x->n && x->v[i].first <= y->v[j].first))
			r = &x->v[i++];
		else
			r = &y->v[j++];
		if (open && r->first <= end) {
			if (r->first + r->n > end)
				end = r->first + r->n;
			continue;
		}
		if (open)
			COW_TRY(emit(e, first, end - first));
		first = r->first;
		end = r->first + r->n;
		open = 1;
	}
	return open ? emit(e, first, end - first) : 0;
}

/*
 * The dirty scan with userfaultfd tracking on: the private pages are the
 * armed ones, which the snapshots' records list (cow__snap_armed), and
 * those among the pages not armed, found with the cheap walk and tested
 * for being file pages (as in cow__track_written). The file pages among
 * them are armed on the way, so that the next scan does not look at them
 * again: a scan costs about 5 ns per page-table entry present plus the
 * pages written, not 50 ns per entry. -EAGAIN when the records are not
 * complete: the caller scans the usual way.
 */
static int dirty_uffd(struct cow_arena *a, size_t first_page, size_t npages,
		      struct emitter *e)
{
	struct runs armed = {0}, cand = {0}, priv = {0};
	struct emitter ec = {runs_add, &cand, 0, 0};
	struct emitter ep = {runs_add, &priv, 0, 0};
	int r;

	r = cow__snap_armed(a, first_page, first_page + npages, runs_add,
			    &armed);
	if (r == 0)
		r = scan_ioctl(a, first_page, npages, &spec_candidate, &ec);
	if (r == 0)
		r = emit_flush(&ec);
	if (r == 0)
		r = private_among(a, &cand, &spec_file_unarmed, &ep);
	if (r == 0)
		r = emit_flush(&ep);
	if (r == 0)
		r = emit_union(&armed, &priv, e);
	cow__free(armed.v);
	cow__free(cand.v);
	cow__free(priv.v);
	if (r == -ENOTTY)
		r = -EIO; /* cannot happen: uffd WP_ASYNC implies the ioctl */
	return r;
}

#ifdef COW_DEBUG
/* The armed private pages: present or swapped, not file pages, not
 * written since they were write-protected (src/debug.c checks them). */
int cow__track_armed_scan(struct cow_arena *a, size_t first_page, size_t npages,
			  cow__run_fn fn, void *ctx)
{
	static const struct scan_spec sp = {
	    PM_SCAN_CHECK_WPASYNC, PAGE_IS_FILE | PAGE_IS_WRITTEN,
	    PAGE_IS_FILE | PAGE_IS_WRITTEN, PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	    PAGE_IS_FILE};
	struct emitter e = {fn, ctx, 0, 0};
	int r;

	if (a->uffd < 0 || !npages)
		return 0;
	r = scan_ioctl(a, first_page, npages, &sp, &e);
	return r < 0 ? r : emit_flush(&e);
}
#endif

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
