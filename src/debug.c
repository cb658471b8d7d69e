// SPDX-License-Identifier: MIT
/*
 * Invariant checks of the COW_DEBUG build (make debug): what the layers
 * below must agree on after every public call, too costly to check in a
 * release build (each check walks the arena's page tables once).
 *
 * - The guard's record of the arena's size and mapped bytes equals the
 *   arena's: a fault is judged by the guard's copy.
 * - The tracker's armed set (track.c) equals the armed private pages
 *   (present or swapped, not a file page, not written since it was
 *   write-protected) a full PAGEMAP_SCAN finds, up to pages written since
 *   they were armed: every page found is in the set, and every page of the
 *   set not found is a private page written since. A page armed but not in
 *   the set would never be reported as written again, so a snapshot would
 *   miss its changes; a page in the set that is not private would be
 *   reported dirty.
 * - cur covers the armed set (each armed page has its copy in cur), unless
 *   snap.c marked cur partial: then the next harvest copies what it lacks.
 *
 * The checks run after every public call that can change an arena: the
 * debug build links each program with --wrap=cow_open, --wrap=cow_grow
 * and so on (make debug), so a call reaches the wrapper below, which calls
 * the real function and then checks. A broken invariant prints the call
 * and the reason and aborts. The wrappers map each snapshot to its arena,
 * so that a release is checked too.
 *
 * This file sits above every other module and calls only down. Without
 * COW_DEBUG it is empty.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "guard.h"
#include "internal.h"
#include "snap.h"
#include "track.h"

#ifdef COW_DEBUG

static int check_guard(struct cow_arena *a, char *why, size_t len)
{
	size_t size, mapped;

	if (cow__guard_watched(a, &size, &mapped) < 0)
		return 0; /* not watched: nothing to agree on */
	if (size == a->size && mapped == a->mapped)
		return 0;
	snprintf(why, len,
		 "guard records size %zu mapped %zu, arena has %zu and %zu",
		 size, mapped, a->size, a->mapped);
	return -EINVAL;
}

static int check_armed(struct cow_arena *a, char *why, size_t len)
{
	const struct cow__pageset *set = cow__track_armed(a);
	struct cow__pageset found = COW__PAGESET_INIT;
	struct cow__pageset priv = COW__PAGESET_INIT;
	struct cow__pageset lost = COW__PAGESET_INIT;
	struct cow__pageset extra = COW__PAGESET_INIT;
	struct cow__pageset wp = COW__PAGESET_INIT;
	size_t end = a->mapped / a->pgsz, page = 0;
	int r;

	if (a->track.uffd < 0 || a->track.lost)
		return 0; /* nothing armed, or the next scan rebuilds */
	r = cow__track_armed_scan(a, 0, end, cow__pageset_add_run, &found);
	if (r == 0)
		r = cow__track_private_scan(a, 0, end, cow__pageset_add_run,
					    &priv);
	if (r == 0)
		r = cow__pageset_minus(&lost, &found, set);
	if (r == 0)
		r = cow__pageset_minus(&extra, set, &priv);
	if (r == 0)
		r = cow__pageset_intersect(&wp, &found, &a->track.unprotected);
	if (r < 0) {
		/* could not look (an injected fault, no memory): no verdict */
		r = 0;
	} else if (lost.n) {
		snprintf(why, len,
			 "%zu armed private page(s) not in the armed set, "
			 "first %zu (%zu armed found, %zu in the set)",
			 lost.pages, lost.v[0].first, found.pages, set->pages);
		r = -EINVAL;
	} else if (extra.n) {
		snprintf(why, len,
			 "%zu page(s) of the armed set not private, first %zu",
			 extra.pages, extra.v[0].first);
		r = -EINVAL;
	} else if (wp.n) {
		snprintf(why, len,
			 "%zu page(s) held unprotected are write-protected, "
			 "first %zu",
			 wp.pages, wp.v[0].first);
		r = -EINVAL;
	} else if (cow__snap_uncovered(a, set, &page) == 0) {
		snprintf(why, len, "armed page %zu has no copy in cur", page);
		r = -EINVAL;
	}
	cow__pageset_free(&found);
	cow__pageset_free(&priv);
	cow__pageset_free(&lost);
	cow__pageset_free(&extra);
	cow__pageset_free(&wp);
	return r;
}

static int debug_check(struct cow_arena *a, char *why, size_t len)
{
	if (!a || cow__guard_owner(a) < 0)
		return 0; /* a fork child may not look */
	COW_TRY(check_guard(a, why, len));
	return check_armed(a, why, len);
}

/*
 * The wrapped calls, once: X(return type, name, parameters, arguments,
 * the arena to check). Both prototype lists (the --wrap build compiles
 * with -Wmissing-prototypes) and the plain wrappers (call, then check the
 * arena) come from it; the Makefile's DEBUG_WRAP reads the names from
 * here. The calls that also track snapshots or check only on success are
 * marked S and written out below.
 */
/* clang-format off */
#define COW_DEBUG_CALLS(X, S)						\
	S(int, cow_open, (cow_arena **out, const char *path,		\
			  const struct cow_options *opt))		\
	S(int, cow_open_fd, (cow_arena **out, int fd,			\
			     const struct cow_options *opt))		\
	S(int, cow_open_anon, (cow_arena **out, size_t size,		\
			       const struct cow_options *opt))		\
	S(int, cow_close, (cow_arena *a))				\
	X(int, cow_grow, (cow_arena *a, size_t new_size),		\
	  (a, new_size), a)						\
	X(int, cow_discard, (cow_arena *a), (a), a)			\
	X(int, cow_revert, (cow_arena *a, void *addr, size_t len),	\
	  (a, addr, len), a)						\
	X(ssize_t, cow_dirty, (cow_arena *a, struct cow_range *out,	\
			       size_t max), (a, out, max), a)		\
	S(int, cow_snapshot, (cow_arena *a, cow_snap **out))		\
	X(int, cow_rollback, (cow_arena *a, cow_snap *s), (a, s), a)	\
	S(void, cow_snap_release, (cow_snap *s))			\
	X(int, cow_commit, (cow_arena *a, unsigned flags), (a, flags), a) \
	X(int, cow_sync, (cow_arena *a), (a), a)			\
	X(int, cow_stats, (const cow_arena *a, struct cow_stats *st),	\
	  (a, st), (cow_arena *)a)
/* clang-format on */

#define PROTOS(type, name, params, ...) \
	type __real_##name params;      \
	type __wrap_##name params;
#define PROTOS_S(type, name, params) PROTOS(type, name, params)
COW_DEBUG_CALLS(PROTOS, PROTOS_S)

/* Which arena each live snapshot belongs to (tests keep a few). */
#define MAX_SNAPS 4096
static struct {
	cow_snap *s;
	cow_arena *a;
} snaps[MAX_SNAPS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* A broken invariant stops the program where it is seen: a debug build
 * prints, which the library otherwise never does. */
static void check(cow_arena *a, const char *call)
{
	char why[256] = "";

	if (debug_check(a, why, sizeof(why)) < 0) {
		fprintf(stderr, "COW_DEBUG: after %s: %s\n", call, why);
		abort();
	}
}

static void snap_add(cow_snap *s, cow_arena *a)
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < MAX_SNAPS; i++)
		if (!snaps[i].s) {
			snaps[i].s = s;
			snaps[i].a = a;
			break;
		}
	pthread_mutex_unlock(&lock);
}

/* Forgets s (or every snapshot of a when s is NULL); returns the arena. */
static cow_arena *snap_forget(cow_snap *s, cow_arena *a)
{
	cow_arena *owner = NULL;

	pthread_mutex_lock(&lock);
	for (int i = 0; i < MAX_SNAPS; i++)
		if (snaps[i].s && (s ? snaps[i].s == s : snaps[i].a == a)) {
			owner = snaps[i].a;
			snaps[i].s = NULL;
		}
	pthread_mutex_unlock(&lock);
	return owner;
}

int __wrap_cow_open(cow_arena **out, const char *path,
		    const struct cow_options *opt)
{
	int r = __real_cow_open(out, path, opt);

	if (r == 0)
		check(*out, "cow_open");
	return r;
}

int __wrap_cow_open_fd(cow_arena **out, int fd, const struct cow_options *opt)
{
	int r = __real_cow_open_fd(out, fd, opt);

	if (r == 0)
		check(*out, "cow_open_fd");
	return r;
}

int __wrap_cow_open_anon(cow_arena **out, size_t size,
			 const struct cow_options *opt)
{
	int r = __real_cow_open_anon(out, size, opt);

	if (r == 0)
		check(*out, "cow_open_anon");
	return r;
}

int __wrap_cow_close(cow_arena *a)
{
	int r = __real_cow_close(a);

	if (a)
		snap_forget(NULL, a);
	return r;
}

int __wrap_cow_snapshot(cow_arena *a, cow_snap **out)
{
	int r = __real_cow_snapshot(a, out);

	if (r == 0)
		snap_add(*out, a);
	check(a, "cow_snapshot");
	return r;
}

void __wrap_cow_snap_release(cow_snap *s)
{
	cow_arena *a = s ? snap_forget(s, NULL) : NULL;

	__real_cow_snap_release(s);
	if (a)
		check(a, "cow_snap_release");
}

/* The plain wrappers: call, then check the arena. */
#define WRAP(type, name, params, args, arena) \
	type __wrap_##name params             \
	{                                     \
		type r = __real_##name args;  \
                                              \
		check(arena, #name);          \
		return r;                     \
	}
#define SKIP(type, name, params)
COW_DEBUG_CALLS(WRAP, SKIP)
#endif
