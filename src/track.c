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
 * cow__track_open below. This file owns that state (struct cow__track in
 * the arena): the userfaultfd, the mode, and the set of armed private
 * pages. Pages are armed only through cow__track_written (the harvest of a
 * snapshot) and cow__track_arm_set, and dropped only through
 * cow__track_drop, which unarms first: so the set stays exact, and no
 * caller above needs to know which pages are armed.
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
static int cow__pagemap_get(void)
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

static void cow__pagemap_put(void)
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

/* Where the regions of a walk go besides e: those written (not armed),
 * and those written that are not file pages. */
struct sinks {
	struct emitter *wr, *wr_private;
};

/* Walks [first, first + npages) with one PAGEMAP_SCAN per SCAN_VEC
 * regions: each region found goes to e, and, when more is given, to its
 * sinks by its categories. */
static int scan_ioctl(struct cow_arena *a, size_t first, size_t npages,
		      const struct scan_spec *sp, struct emitter *e,
		      const struct sinks *more)
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

			__u64 cat = vec[i].categories;

			COW_TRY(emit(e, f, n));
			if (more && more->wr && (cat & PAGE_IS_WRITTEN))
				COW_TRY(emit(more->wr, f, n));
			if (more && more->wr_private &&
			    (cat & PAGE_IS_WRITTEN) && !(cat & PAGE_IS_FILE))
				COW_TRY(emit(more->wr_private, f, n));
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
		      const struct cow__pageset *known, struct emitter *e);

/*
 * A truncation fault replaced the arena's lost tail by zeros (see guard.c):
 * the armed set still names pages the kernel dropped there, and the zeros
 * are a mapping the userfaultfd was never registered on (PAGEMAP_SCAN
 * with PM_SCAN_CHECK_WPASYNC refuses a range that is not all registered:
 * -EPERM). The walk that needs no userfaultfd sees the private pages as
 * they are, the touched zeros among them.
 */
static int tail_lost(const struct cow_arena *a)
{
	return __atomic_load_n(&a->stale, __ATOMIC_ACQUIRE) & COW__STALE_LOST;
}

int cow__track_dirty(struct cow_arena *a, size_t first_page, size_t npages,
		     const struct cow__pageset *known, cow__run_fn fn,
		     void *ctx)
{
	struct emitter e = {fn, ctx, 0, 0};
	int r = -ENOTTY;

	if (!npages)
		return 0;
	if (!force_pagemap && a->track.uffd >= 0 && !tail_lost(a)) {
		r = dirty_uffd(a, first_page, npages, known, &e);
		if (r == 0)
			return emit_flush(&e);
		if (r != -EAGAIN && r != -ENOTTY)
			return r;
	}
	if (!force_pagemap)
		r = scan_ioctl(a, first_page, npages, &spec_private, &e, NULL);
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
 * The whole mapped base is registered for write-protect once, at open, but
 * only the pages present are ever armed (write-protected): private pages
 * right after a snapshot or rollback has recorded their content, and file
 * pages seen by a harvest or a dirty scan (so that they are not looked at
 * again). Arming the whole range would install a marker in every empty
 * page-table entry of a file mapping, allocating page tables for the whole
 * arena: memory and time that follow the arena's size. Clean pages need no
 * arming: the first write to one makes a new private page, which is not
 * write-protected and so reads as written. A private page read as written
 * is therefore one whose content was not recorded since; MADV_DONTNEED
 * keeps the marker of an armed page on file and memfd mappings, so a
 * dropped page stays unwritten (see cow__track_drop).
 *
 * The descriptor is opened by cow__track_start: at the first snapshot, or
 * after the first commit or discard that succeeded (so that later dirty
 * scans are cheap), never by a dirty scan, which (cow_dirty, cow_stats)
 * reads the arena and changes none of its state, nor by a call that fails.
 * Before it the mode is COW_TRACK_NONE; without userfaultfd (disabled, or
 * the test hook) it is COW_TRACK_COMPARE. Either way nothing is armed.
 */
static int uffd_register(struct cow_arena *a, size_t from, size_t to)
{
	struct uffdio_register reg = {
	    .range = {(uintptr_t)a->base + from, to - from},
	    .mode = UFFDIO_REGISTER_MODE_WP,
	};
	int r;

	if (a->track.uffd < 0 || from == to)
		return 0;
	r = cow__sys_ioctl(a->track.uffd, UFFDIO_REGISTER, &reg);
	/* A kernel that cannot write-protect this kind of mapping. */
	return r == -EINVAL ? -EOPNOTSUPP : r;
}

/* -1 before the close: the SIGBUS handler must never use a descriptor
 * number that is being reused. Closing unregisters the mapping and drops
 * every write-protection: nothing is armed any more. */
static void uffd_close(struct cow_arena *a)
{
	int fd = a->track.uffd;

	if (fd < 0)
		return;
	__atomic_store_n(&a->track.uffd, -1, __ATOMIC_RELEASE);
	cow__sys_close(fd);
	cow__pageset_free(&a->track.armed);
	cow__pageset_free(&a->track.unprotected);
	a->track.lost = 0;
	a->track.mode = COW_TRACK_COMPARE;
}

static int uffd_open(struct cow_arena *a)
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
		a->track.uffd = fd;
		r = uffd_register(a, 0, a->mapped);
	}
	if (r < 0) {
		a->track.uffd = -1;
		cow__sys_close(fd);
	}
	return r;
}

/* At open: the pagemap reference; no tracking yet. */
int cow__track_open(struct cow_arena *a)
{
	a->track.uffd = -1;
	a->track.mode = COW_TRACK_NONE;
	a->track.lost = 0;
	a->track.armed = (struct cow__pageset)COW__PAGESET_INIT;
	a->track.unprotected = (struct cow__pageset)COW__PAGESET_INIT;
	return cow__pagemap_get();
}

/*
 * Starts the written-page tracking once: userfaultfd where the kernel
 * offers it, else the compare fallback. A new userfaultfd has armed
 * nothing, so the armed set is exact and empty whatever the arena's
 * state. 0, or a negative errno (no descriptor, no memory) with nothing
 * started.
 */
int cow__track_start(struct cow_arena *a)
{
	int r;

	if (a->track.mode != COW_TRACK_NONE)
		return 0;
	r = uffd_open(a);
	if (r == 0)
		a->track.mode = COW_TRACK_UFFD_WP;
	else if (r == -EOPNOTSUPP)
		a->track.mode = COW_TRACK_COMPARE;
	return r == -EOPNOTSUPP ? 0 : r;
}

/* Undoes cow__track_start for a call that started it and then failed:
 * no descriptor more, nothing armed. */
void cow__track_stop(struct cow_arena *a)
{
	uffd_close(a);
	a->track.mode = COW_TRACK_NONE;
}

void cow__track_close(struct cow_arena *a)
{
	uffd_close(a);
	cow__pagemap_put();
}

/*
 * The base mapping grew to [from, to): the tracking must cover it. A
 * failure to register cannot be undone without a new mapping, so the
 * arena switches to the tracking that needs no registration instead
 * (which any state allows: a written page either has no copy recorded or
 * differs from it).
 */
void cow__track_grow(struct cow_arena *a, size_t from, size_t to)
{
	if (uffd_register(a, from, to) < 0)
		uffd_close(a);
}

/*
 * What a walk costs, roughly (ns, measured with PAGEMAP_SCAN on 6.18): an
 * ioctl of its own about 1500, each page-table entry present about 5, or
 * 50 with the file-page test, and each 512 pages (one page table, present
 * or not) about 10 for the levels above. A write-protect ioctl
 * (UFFDIO_WRITEPROTECT, either way) flushes the TLB, an interrupt to every
 * CPU the process ran on: about 15000 in a virtual machine, where it
 * costs the most. Candidates go to one file-page walk while walking the
 * gap to the next costs less than an ioctl more; pages are armed or
 * unarmed with one walk or ioctl over their span when that costs less
 * than a write-protect ioctl per run.
 */
#define COST_IOCTL 1500
#define COST_WP 15000
#define COST_ENTRY 5
#define COST_FILE 50
#define COST_TABLE 10

static size_t walk_cost(size_t present, size_t pages, size_t per_entry)
{
	return present * per_entry + pages / 512 * COST_TABLE;
}

static int arm_range(struct cow_arena *a, size_t first_page, size_t npages)
{
	struct uffdio_writeprotect wp = {
	    .range = {(uintptr_t)a->base + first_page * a->pgsz,
		      npages * a->pgsz},
	    .mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	return cow__sys_ioctl(a->track.uffd, UFFDIO_WRITEPROTECT, &wp);
}

/*
 * Arms the private pages [first_page, first_page + npages), whose content
 * the caller recorded, and adds them to the armed set. 0, or a negative
 * errno with the pages not armed (they read as written next time, which
 * costs a copy, not correctness).
 */
static int arm_pages(struct cow_arena *a, size_t first_page, size_t npages)
{
	int r;

	if (a->track.uffd < 0 || !npages)
		return 0;
	COW_TRY(cow__pageset_reserve(&a->track.armed, 1));
	cow__pageset_clear(&a->track.unprotected);
	r = arm_range(a, first_page, npages);
	if (r == 0)
		r = cow__pageset_add(&a->track.armed, first_page, npages);
	return r;
}

static int arm_present(struct cow_arena *a, size_t first_page, size_t npages);

static int arm_one(void *ctx, size_t first, size_t n)
{
	return arm_pages(ctx, first, n);
}

/* Whether one walk over [first, end) costs more than a write-protect ioctl
 * for each of n runs, with the pages present at most what the last walk
 * saw. */
static int span_costs_more(const struct cow_arena *a, size_t n, size_t first,
			   size_t end)
{
	size_t present = a->track.present;

	if (present > end - first)
		present = end - first;
	return walk_cost(present, end - first, COST_ENTRY) > COST_WP * n;
}

/*
 * Arms the pages of set (private pages whose content the caller just
 * recorded, as a rollback copies them back): one ioctl per run when the
 * runs are few for their span, else one walk over the span that arms
 * every page present and not armed (arm_present). That walk
 * arms any private page of the span too: the caller vouches that each of
 * those is recorded as well. Best effort: a page not armed reads as
 * written next time.
 */
void cow__track_arm_set(struct cow_arena *a, const struct cow__pageset *set)
{
	size_t first, end;
	struct cow__pageset u = COW__PAGESET_INIT;

	if (a->track.uffd < 0 || cow__pageset_span(set, &first, &end) < 0)
		return;
	if (span_costs_more(a, set->n, first, end)) {
		(void)cow__pageset_each(set, first, end, arm_one, a);
		return;
	}
	if (cow__pageset_union(&u, &a->track.armed, set) < 0 ||
	    arm_present(a, first, end - first) < 0) {
		cow__pageset_free(&u);
		return;
	}
	cow__pageset_free(&a->track.armed);
	a->track.armed = u;
}

/*
 * Removes the write-protection from a range about to be dropped. A page
 * dropped while armed would leave a userfaultfd marker behind, which the
 * dirty scan cannot tell from a swapped-out private page; unarming first
 * leaves a clean page that needs no arming. Walks only the page tables
 * present. A failure leaves every page as it was.
 */
static int unarm_range(struct cow_arena *a, size_t first_page, size_t npages)
{
	struct uffdio_writeprotect wp = {
	    .range = {(uintptr_t)a->base + first_page * a->pgsz,
		      npages * a->pgsz},
	    .mode = 0,
	};

	return cow__sys_ioctl(a->track.uffd, UFFDIO_WRITEPROTECT, &wp);
}

/* Takes [first, first + n) out of the armed set, unarming it first when
 * unarm is set. */
static int leave_armed(struct cow_arena *a, size_t first, size_t n, int unarm)
{
	COW_TRY(cow__pageset_reserve(&a->track.armed, 1));
	if (unarm)
		COW_TRY(unarm_range(a, first, n));
	return cow__pageset_remove(&a->track.armed, first, n);
}

/* The first run of s that ends after page first (s->n if none). */
static size_t run_after(const struct cow__pageset *s, size_t first)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].first + s->v[mid].n <= first)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Whether the armed set has a page in [first, end). */
static int armed_meets(const struct cow_arena *a, size_t first, size_t end)
{
	const struct cow__pageset *s = &a->track.armed;
	size_t i = run_after(s, first);

	return i < s->n && s->v[i].first < end;
}

/* Whether [first, end) may hold pages write-protected: it meets the armed
 * set, and not all of it was seen written (unprotected) since. */
static int maybe_protected(const struct cow_arena *a, size_t first, size_t end)
{
	const struct cow__pageset *u = &a->track.unprotected;
	size_t i = run_after(u, first);

	if (i < u->n && u->v[i].first <= first &&
	    u->v[i].first + u->v[i].n >= end)
		return 0;
	return armed_meets(a, first, end);
}

/*
 * Unarms the pages of set (private pages) that may be armed: before a
 * commit drops them (a dropped armed page would leave a tracking marker),
 * or after a harvest armed them for a snapshot that then failed (their
 * content was not recorded, so they must read as written again). They
 * leave the armed set. 0, or a negative errno with the armed set lost
 * (some pages may be unarmed, which costs a copy, not correctness).
 */
int cow__track_unarm_set(struct cow_arena *a, const struct cow__pageset *set)
{
	size_t first, end, n = 0, met = 0;
	int r = 0;

	if (a->track.uffd < 0 || cow__pageset_span(set, &first, &end) < 0)
		return 0;
	for (size_t i = 0; i < set->n; i++) {
		size_t f = set->v[i].first, e = f + set->v[i].n;

		met += armed_meets(a, f, e);
		n += maybe_protected(a, f, e);
	}
	/* One ioctl over the span when anything may be armed, or when that
	 * costs less: the armed pages in between read as written next time
	 * (a copy), and stay in the set (it may hold such pages); the pages
	 * of set leave it. */
	if (a->track.lost || (n && !span_costs_more(a, n, first, end))) {
		struct cow__pageset out = COW__PAGESET_INIT;

		r = unarm_range(a, first, end - first);
		if (r == 0)
			r = cow__pageset_minus(&out, &a->track.armed, set);
		if (r == 0) {
			cow__pageset_free(&a->track.armed);
			a->track.armed = out;
		}
		if (r < 0)
			cow__pageset_free(&out);
		met = 0;
	}
	/* Run by run: an ioctl only for the runs that may be write-protected;
	 * the others (seen written since they were armed) only leave the
	 * armed set. */
	for (size_t i = 0; r == 0 && met && i < set->n; i++) {
		size_t f = set->v[i].first, k = set->v[i].n;

		if (armed_meets(a, f, f + k))
			r = leave_armed(a, f, k, maybe_protected(a, f, f + k));
	}
	if (r < 0)
		a->track.lost = 1;
	return r;
}

/*
 * The one place private copies are dropped: unarm, then MADV_DONTNEED, then
 * the pages leave the armed set. With COW__DROP_PRIVATE the caller vouches
 * that every page of the range is private or was reported written (not
 * armed unless the armed set holds it), so the unarm is skipped when the
 * set holds none of them; else the range may hold armed file pages and is
 * always unarmed. A failure of the unarm (or of the memory the set needs)
 * changes nothing; a failure of the madvise leaves the pages private and
 * unarmed, which changes no content. Either is returned.
 */
int cow__track_drop(struct cow_arena *a, size_t first_page, size_t npages,
		    unsigned how)
{
	size_t end = first_page + npages;
	int r;

	if (!npages)
		return 0;
	if (a->track.uffd >= 0) {
		COW_TRY(cow__pageset_reserve(&a->track.armed, 1));
		if (!(how & COW__DROP_PRIVATE) ||
		    maybe_protected(a, first_page, end))
			COW_TRY(unarm_range(a, first_page, npages));
	}
	r = cow__sys_madvise(a->base + first_page * a->pgsz, npages * a->pgsz,
			     MADV_DONTNEED);
	/* reserved above: cannot fail */
	(void)cow__pageset_remove(&a->track.armed, first_page, npages);
	return r;
}

/*
 * Drops every private page of set (runs of private pages, ascending). Runs
 * close together go in one call over their span, which either drops
 * everything or changes nothing (the clean pages in between map the base
 * again, which changes no content); runs far apart one by one, as a span
 * over a sparse set would walk and unmap everything in between (on a 64
 * GiB arena, a span over 32 pages in 32 GiB costs more than the scan that
 * found them): the runs that may be armed are unarmed, then all go in one
 * batched MADV_DONTNEED (cow__sys_madvise_vec). If that stops after some
 * runs, the rest go in one call over their span: only a failure that
 * dropped nothing, or of that last call, is returned.
 */
int cow__track_drop_set(struct cow_arena *a, const struct cow__pageset *set)
{
	size_t first, end, done = 0;
	int r;

	if (cow__pageset_span(set, &first, &end) < 0)
		return 0;
	/* Clean pages in a span may be armed file pages: any range. One
	 * run has none: it is unarmed only if the armed set meets it. */
	if (set->n * 64 >= end - first)
		return cow__track_drop(a, first, end - first,
				       set->n == 1 ? COW__DROP_PRIVATE : 0);
	r = cow__track_drop_runs(a, set, &done);
	if (r < 0 && done > 0) {
		first = set->v[done].first;
		r = cow__track_drop(a, first, end - first, 0);
	}
	return r;
}

/*
 * Drops the runs of set (private pages, or pages reported written) one by
 * one, in one batched call: the runs that may be armed are unarmed first
 * (cow__track_unarm_set), then all go in one MADV_DONTNEED of many ranges
 * (cow__sys_madvise_vec, one TLB flush where the kernel batches them).
 * *done counts the runs dropped before a failure.
 */
int cow__track_drop_runs(struct cow_arena *a, const struct cow__pageset *set,
			 size_t *done)
{
	struct iovec *iov;
	int r;

	*done = 0;
	if (!set->n)
		return 0;
	iov = cow__mallocarray(set->n, sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	r = cow__track_unarm_set(a, set);
	for (size_t i = 0; i < set->n; i++) {
		iov[i].iov_base = a->base + set->v[i].first * a->pgsz;
		iov[i].iov_len = set->v[i].n * a->pgsz;
	}
	if (r == 0)
		r = cow__sys_madvise_vec(iov, set->n, MADV_DONTNEED, done);
	cow__free(iov);
	return r;
}

/* Does the page-table block at addr (bsize bytes) map anything: a present
 * page, or a swapped one (which includes the markers armed pages leave)?
 * 1 yes, 0 no, negative: the walk failed. */
static int block_in_use(uintptr_t addr, size_t bsize)
{
	struct page_region vec[1];
	struct pm_scan_arg arg;
	int r;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.start = addr;
	arg.end = addr + bsize;
	arg.vec = (uintptr_t)vec;
	arg.vec_len = 1;
	arg.max_pages = 1;
	arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	r = cow__sys_ioctl(pm_fd, PAGEMAP_SCAN, &arg);
	return r < 0 ? r : r > 0;
}

#define TRIM_VEC 64 /* blocks per MADV_DONTNEED call */

/*
 * A drop unmaps a few pages and leaves their page table in place, and a
 * dirty scan walks every table in use entry by entry: after one commit of
 * pages spread over a large arena, every later commit of one page walked
 * the tables of the whole spread (on 64 MiB, a third of an asynchronous
 * commit's time). So each page-table block (what one table maps: 2 MiB
 * with 4 KiB pages) that a dropped page lies in, inside the mapped base, is
 * asked whether it still maps anything (one PAGEMAP_SCAN that stops at the
 * first page); one that does not is dropped whole (MADV_DONTNEED over
 * whole blocks, batched), which changes no content, as nothing is mapped
 * there, and lets a kernel with CONFIG_PT_RECLAIM free the table. Pages
 * only read stay mapped: their block is in use. The writers are paused (a
 * write between a block's scan and its drop would be lost). Best effort:
 * returns the number of blocks dropped; a failed walk stops it.
 */
size_t cow__track_trim(struct cow_arena *a, const struct cow__pageset *dropped)
{
	size_t bsize = a->pgsz / sizeof(uint64_t) * a->pgsz, n = 0, freed = 0;
	uintptr_t base = (uintptr_t)a->base, lim = base + a->size, next = 0;
	struct iovec iov[TRIM_VEC];
	int r = 0;

	if (force_pagemap || tail_lost(a))
		return 0;
	for (size_t i = 0; r >= 0 && i < dropped->n; i++) {
		uintptr_t s = base + dropped->v[i].first * a->pgsz;
		uintptr_t e = s + dropped->v[i].n * a->pgsz;
		uintptr_t b = s & ~(uintptr_t)(bsize - 1);

		/* runs ascending: a block is looked at once */
		for (b = b < next ? next : b; r >= 0 && b < e; b += bsize) {
			size_t done;

			next = b + bsize;
			if (b < base || b + bsize > lim)
				continue;
			r = block_in_use(b, bsize);
			if (r != 0)
				continue;
			iov[n].iov_base = (void *)b;
			iov[n++].iov_len = bsize;
			if (n < TRIM_VEC)
				continue;
			r = cow__sys_madvise_vec(iov, n, MADV_DONTNEED, &done);
			freed += done;
			n = 0;
		}
	}
	if (n) {
		size_t done;

		(void)cow__sys_madvise_vec(iov, n, MADV_DONTNEED, &done);
		freed += done;
	}
	return freed;
}

const struct cow__pageset *cow__track_armed(const struct cow_arena *a)
{
	return &a->track.armed;
}

/*
 * Which pages to look at closely: those present or swapped and not
 * write-protected (the candidates). That is every private page written
 * since it was armed, but also file pages read in since the last arming.
 * The walk needs no page lookups and costs a few ns per page-table entry
 * (present or not, in every page table of the range), against about 50
 * ns per page present when the file-page test is asked for (measured on
 * 64 MiB and 1 GiB of present pages): the file-page test is made on the
 * candidates only. With few pages present the walk reports every page
 * present, with the candidates marked (PAGE_IS_WRITTEN), so that the
 * file-page test can cover many candidates in one walk where the pages
 * between them are few; with many it reports the candidates alone: the
 * armed pages present cost no output then (an arena read in whole has
 * thousands present and a commit writes a few: reporting each present
 * run cost a fifth of a 1-page commit's walk).
 * Armed file pages are harmless: writing one makes a private page, not
 * armed; dropping one would leave a tracking marker, which is why every
 * drop unarms its range first (cow__track_drop).
 */
/* The candidates alone (arm_present arms them; and the dirty scan's walk
 * with many pages present). */
static const struct scan_spec spec_candidate = {
    PM_SCAN_CHECK_WPASYNC, 0, PAGE_IS_WRITTEN,
    PAGE_IS_PRESENT | PAGE_IS_SWAPPED, PAGE_IS_WRITTEN};

/* The file pages present (or swapped) and not armed, arming them. */
static const struct scan_spec spec_file_unarmed = {
    PM_SCAN_CHECK_WPASYNC | PM_SCAN_WP_MATCHING, 0,
    PAGE_IS_FILE | PAGE_IS_WRITTEN, PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
    PAGE_IS_FILE};

/* The file pages present (or swapped), armed or not. */
static const struct scan_spec spec_file = {
    PM_SCAN_CHECK_WPASYNC, 0, PAGE_IS_FILE, PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
    PAGE_IS_FILE};

static int emit_run(void *ctx, size_t first, size_t n)
{
	return emit(ctx, first, n);
}

/* With few pages present (the last walk that counted them saw at most
 * FEW_PRESENT) one walk with the file-page test on every page present
 * finds the private candidates too, for less than the file-page walks it
 * saves. Past it the walks no longer count them: the estimate stays (it
 * only chooses between these walks and groups the file-page tests). */
#define FEW_PRESENT 1024

static const struct scan_spec spec_present_file = {
    PM_SCAN_CHECK_WPASYNC, 0, 0, PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
    PAGE_IS_WRITTEN | PAGE_IS_FILE};

/*
 * The candidates of the range into cand, in one walk that arms nothing.
 * When few pages are present (the last walk that counted them saw at
 * most FEW_PRESENT) the same walk puts every page present (or swapped)
 * into present, tests them for being file pages and puts the candidates
 * that are not into priv: 1 then. Else 0, with present left empty (the
 * caller tests the candidates itself, private_among, without it).
 */
static int candidates(struct cow_arena *a, size_t first, size_t npages,
		      struct cow__pageset *cand, struct cow__pageset *present,
		      struct cow__pageset *priv)
{
	struct emitter ec = {cow__pageset_add_run, cand, 0, 0};
	struct emitter ep = {cow__pageset_add_run, present, 0, 0};
	struct emitter ew = {cow__pageset_add_run, priv, 0, 0};
	struct sinks more = {&ec, &ew};

	if (a->track.present > FEW_PRESENT) {
		COW_TRY(
		    scan_ioctl(a, first, npages, &spec_candidate, &ec, NULL));
		return emit_flush(&ec);
	}
	COW_TRY(scan_ioctl(a, first, npages, &spec_present_file, &ep, &more));
	COW_TRY(emit_flush(&ep));
	COW_TRY(emit_flush(&ec));
	COW_TRY(emit_flush(&ew));
	/* an estimate for the next walk: races with writers do no harm */
	a->track.present = present->pages;
	return 1;
}

/* The candidate walk of a snapshot: arms the candidates as it finds them
 * (PM_SCAN_WP_MATCHING, one walk, one TLB flush per page table where it
 * armed some) and reports only them. With few pages present it also tests
 * them for being file pages, putting the private ones into priv: 1 then,
 * else 0. The candidates are a lower bound of the pages present. */
static int candidates_arm(struct cow_arena *a, size_t first, size_t npages,
			  struct cow__pageset *cand, struct cow__pageset *priv)
{
	struct scan_spec sp = spec_candidate;
	struct emitter ec = {cow__pageset_add_run, cand, 0, 0};
	struct emitter ew = {cow__pageset_add_run, priv, 0, 0};
	int few = a->track.present <= FEW_PRESENT;
	struct sinks more = {&ew, NULL};

	sp.flags |= PM_SCAN_WP_MATCHING;
	cow__pageset_clear(&a->track.unprotected);
	if (few) {
		/* every region is a candidate: its file ones are not private */
		sp.ret |= PAGE_IS_FILE;
		more.wr = NULL;
		more.wr_private = &ew;
	}
	COW_TRY(scan_ioctl(a, first, npages, &sp, &ec, few ? &more : NULL));
	COW_TRY(emit_flush(&ec));
	if (few)
		COW_TRY(emit_flush(&ew));
	if (cand->pages > a->track.present)
		a->track.present = cand->pages;
	return few;
}

/* Of n pages, how many are present when the last count is spread evenly
 * over the arena (at least 1 while any is: a gap is not assumed empty). */
static size_t present_share(const struct cow_arena *a, size_t n)
{
	size_t all = a->size / a->pgsz, have = a->track.present;

	if (have >= all || n >= all)
		return n < have ? n : have;
	return have ? (n * have + all - 1) / all : 0;
}

/* The pages of present in [from, to); *j is where the last call stopped
 * (calls come in ascending order). */
static size_t present_in(const struct cow_arena *a,
			 const struct cow__pageset *present, size_t *j,
			 size_t from, size_t to)
{
	size_t n = 0;

	/* Not known: the gap's share of what the last walk saw. */
	if (!present)
		return present_share(a, to - from);
	while (*j < present->n &&
	       present->v[*j].first + present->v[*j].n <= from)
		(*j)++;
	for (size_t k = *j; k < present->n && present->v[k].first < to; k++) {
		size_t f = present->v[k].first, e = f + present->v[k].n;

		n += (e < to ? e : to) - (f > from ? f : from);
	}
	return n;
}

/*
 * The private pages among the candidates, into priv: those that are not
 * file pages. Candidates in the armed set are private (it holds only
 * private pages: written since they were armed) and need no test, nor do
 * those the caller knows to be private (known, may be NULL); the
 * others are tested in as few walks as pay (COST_*) with files
 * (spec_file, or spec_file_unarmed, which arms the file pages in the same
 * go so that the next scan does not look at them again).
 */
static int private_among(struct cow_arena *a, const struct cow__pageset *cand,
			 const struct cow__pageset *present,
			 const struct cow__pageset *known_priv,
			 const struct scan_spec *files,
			 struct cow__pageset *priv)
{
	struct cow__pageset f = COW__PAGESET_INIT, test = COW__PAGESET_INIT;
	struct cow__pageset known = COW__PAGESET_INIT;
	struct cow__pageset both = COW__PAGESET_INIT;
	const struct cow__pageset *k = &a->track.armed;
	struct emitter ef = {cow__pageset_add_run, &f, 0, 0};
	size_t j = 0;
	int r = 0;

	if (known_priv && known_priv->n) {
		r = cow__pageset_union(&both, &a->track.armed, known_priv);
		k = &both;
	}
	if (r == 0)
		r = cow__pageset_minus(&test, cand, k);
	if (r == 0)
		r = cow__pageset_intersect(&known, cand, k);
	for (size_t i = 0; r == 0 && i < test.n;) {
		size_t first = test.v[i].first;
		size_t end = first + test.v[i].n;

		while (
		    ++i < test.n &&
		    walk_cost(present_in(a, present, &j, end, test.v[i].first),
			      test.v[i].first - end, COST_FILE) <= COST_IOCTL)
			end = test.v[i].first + test.v[i].n;
		r = scan_ioctl(a, first, end - first, files, &ef, NULL);
	}
	if (r == 0)
		r = emit_flush(&ef);
	/* test - f, then the known ones */
	if (r == 0)
		r = cow__pageset_minus(priv, &test, &f);
	for (size_t i = 0; r == 0 && i < known.n; i++)
		r = cow__pageset_add(priv, known.v[i].first, known.v[i].n);
	cow__pageset_free(&f);
	cow__pageset_free(&test);
	cow__pageset_free(&known);
	cow__pageset_free(&both);
	return r;
}

/* Every private page of the range, armed or not, into out; with arm, the
 * pages present are armed first (a walk without the file-page test), so
 * that each private page is armed and the file pages are not candidates
 * in the next harvests. */
static int written_all(struct cow_arena *a, size_t first, size_t npages,
		       int arm, struct cow__pageset *out)
{
	struct scan_spec sp = spec_candidate;
	struct emitter e = {cow__pageset_add_run, out, 0, 0};

	if (arm)
		COW_TRY(arm_present(a, first, npages));
	sp.inverted = PAGE_IS_FILE;
	sp.mask = PAGE_IS_FILE;
	sp.ret = PAGE_IS_FILE;
	COW_TRY(scan_ioctl(a, first, npages, &sp, &e, NULL));
	return emit_flush(&e);
}

/* The armed set after an arming harvest of [first, first + npages) found
 * w: w joins it; when it was lost, w replaces it in the range. */
static int armed_add(struct cow_arena *a, size_t first, size_t npages,
		     const struct cow__pageset *w)
{
	struct cow__pageset u = COW__PAGESET_INIT, range = COW__PAGESET_INIT;
	struct cow__pageset out = COW__PAGESET_INIT;
	int r;

	if (a->track.lost) {
		r = cow__pageset_add(&range, first, npages);
		if (r == 0)
			r = cow__pageset_minus(&u, &a->track.armed, &range);
		if (r == 0)
			r = cow__pageset_union(&out, &u, w);
	} else {
		r = cow__pageset_union(&out, &a->track.armed, w);
	}
	if (r == 0) {
		cow__pageset_free(&a->track.armed);
		a->track.armed = out;
		out = (struct cow__pageset)COW__PAGESET_INIT;
		a->track.lost = 0;
	}
	cow__pageset_free(&u);
	cow__pageset_free(&range);
	cow__pageset_free(&out);
	return r;
}

/*
 * Private pages written since they were last armed, as runs: no file
 * pages, so a rollback given them touches only what was written. With
 * COW__WRITTEN_ARM every candidate is armed after the walks (the private
 * pages, whose content the caller records, and the file pages read in,
 * so that they are not candidates again) and the reported pages join the
 * armed set. Without it, the file pages found are armed (the same reason)
 * and nothing else. While the armed set is lost (an arming walk failed
 * half way) every private page is reported, and an arming walk rebuilds
 * the set from them.
 */
int cow__track_written(struct cow_arena *a, size_t first_page, size_t npages,
		       unsigned how, cow__run_fn fn, void *ctx)
{
	struct cow__pageset w = COW__PAGESET_INIT, cand = COW__PAGESET_INIT;
	struct cow__pageset present = COW__PAGESET_INIT;
	int arm = (how & COW__WRITTEN_ARM) != 0, r;

	if (!npages)
		return 0;
	if (a->track.lost) {
		r = written_all(a, first_page, npages, arm, &w);
	} else if (arm) {
		r = candidates_arm(a, first_page, npages, &cand, &w);
		if (r == 0)
			r = private_among(a, &cand, NULL, NULL, &spec_file, &w);
	} else {
		r = candidates(a, first_page, npages, &cand, &present, &w);
		if (r == 0)
			r = private_among(a, &cand, NULL, NULL,
					  &spec_file_unarmed, &w);
	}
	if (r == 1)
		r = 0;
	if (arm && r == 0)
		r = armed_add(a, first_page, npages, &w);
	if (r == 0)
		r = cow__pageset_each(&w, 0, SIZE_MAX, fn, ctx);
	/* An arming walk that failed, or whose pages the caller could not
	 * take, armed pages whose content nobody records. */
	if (arm && r < 0)
		a->track.lost = 1;
	cow__pageset_free(&w);
	cow__pageset_free(&cand);
	cow__pageset_free(&present);
	if (r == -ENOTTY)
		r = -EIO; /* cannot happen: uffd WP_ASYNC implies the ioctl */
	return r;
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
 * empty ones. A failure may leave pages armed that the set lacks: it is
 * then lost.
 */
static int arm_present(struct cow_arena *a, size_t first_page, size_t npages)
{
	struct scan_spec sp = spec_candidate;
	struct emitter e = {ignore_run, NULL, 0, 0};
	int r;

	if (a->track.uffd < 0 || !npages)
		return 0;
	sp.flags |= PM_SCAN_WP_MATCHING;
	cow__pageset_clear(&a->track.unprotected);
	r = scan_ioctl(a, first_page, npages, &sp, &e, NULL);
	if (r < 0)
		a->track.lost = 1;
	return r;
}

/*
 * The dirty scan with userfaultfd tracking on: the private pages are the
 * armed set (which may hold pages written since they were armed: private
 * as well), and those among the pages not armed, found with the cheap walk
 * and tested for being file pages (as in cow__track_written). The file
 * pages among them are armed on the way, so that the next scan does not
 * look at them again: a scan costs about 5 ns per page-table entry present
 * plus the pages written, not 50 ns per entry. -EAGAIN when the armed set
 * is lost: the caller scans the usual way.
 */
static int dirty_uffd(struct cow_arena *a, size_t first_page, size_t npages,
		      const struct cow__pageset *known, struct emitter *e)
{
	struct cow__pageset cand = COW__PAGESET_INIT, priv = COW__PAGESET_INIT;
	struct cow__pageset all = COW__PAGESET_INIT;
	struct cow__pageset present = COW__PAGESET_INIT;
	size_t end = first_page + npages;
	int r;

	if (a->track.lost)
		return -EAGAIN;
	r = candidates(a, first_page, npages, &cand, &present, &priv);
	if (r == 0)
		r = private_among(a, &cand, NULL, known, &spec_file_unarmed,
				  &priv);
	if (r == 1)
		r = 0;
	if (r == 0)
		r = cow__pageset_union(&all, &a->track.armed, &priv);
	if (r == 0)
		r = cow__pageset_each(&all, first_page, end, emit_run, e);
	/* The private candidates were not write-protected at the walk, and
	 * nothing arms them before track does (see struct cow__track). */
	if (r == 0) {
		struct cow__pageset was = a->track.unprotected;

		a->track.unprotected = priv;
		priv = was;
	}
	cow__pageset_free(&cand);
	cow__pageset_free(&priv);
	cow__pageset_free(&all);
	cow__pageset_free(&present);
	/* -ENOTTY (only before any run went out): the caller falls back */
	return r;
}

#ifdef COW_DEBUG
/* Every private page, by the full walk, whatever the armed set says. */
int cow__track_private_scan(struct cow_arena *a, size_t first_page,
			    size_t npages, cow__run_fn fn, void *ctx)
{
	struct emitter e = {fn, ctx, 0, 0};
	int r;

	r = scan_ioctl(a, first_page, npages, &spec_private, &e, NULL);
	if (r == -ENOTTY)
		r = scan_pagemap(a, first_page, npages, &e);
	return r < 0 ? r : emit_flush(&e);
}

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

	if (a->track.uffd < 0 || !npages)
		return 0;
	r = scan_ioctl(a, first_page, npages, &sp, &e, NULL);
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
