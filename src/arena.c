// SPDX-License-Identifier: MIT
/*
 * Open and close, grow, discard, revert, dirty and stats: the arena core,
 * and the place that keeps the invariants of DESIGN.md.
 *
 * Every call validates all of its arguments before it changes anything,
 * and undoes what it did when a later step fails (one label per acquired
 * resource). Undoing changes never calls MAP_FIXED or munmap on part of a
 * mapping: discard and revert use one MADV_DONTNEED, which drops the private
 * copies and keeps the mapping whole. MAP_FIXED over the whole mapping is
 * the alternative the design names; it is not used because a failed
 * MAP_FIXED can leave a hole where the arena was (measured on this kernel),
 * and because it would drop the userfaultfd registration snapshots rely on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "commit.h"
#include "compat.h"
#include "guard.h"
#include "internal.h"
#include "reserve.h"
#include "snap.h"
#include "snapdiff.h"
#include "snapfile.h"
#include "track.h"
#include "wal.h"

/* Flags cow_open* accept; grows as features land. */
#define COW__OPEN_FLAGS                                             \
	(COW_CREATE | COW_READONLY | COW_ISOLATE | COW_FIXED_ADDR | \
	 COW_NOSYNC | COW_NOTHREAD)

static inline int cow__aligned(size_t v, size_t pgsz)
{
	return (v & (pgsz - 1)) == 0;
}

#define VERSION_STR_(x) #x
#define VERSION_STR(x) VERSION_STR_(x)

/* Built from the header's macros: the version lives there alone. */
COW_API const char *cow_version(void)
{
	return VERSION_STR(COWARENA_VERSION_MAJOR) "." VERSION_STR(
	    COWARENA_VERSION_MINOR) "." VERSION_STR(COWARENA_VERSION_PATCH);
}

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t round_up(size_t v, size_t pgsz)
{
	return (v + pgsz - 1) & ~(pgsz - 1);
}

/* Checks what can be checked of the options alone; zero options are OK. */
static int check_options(const struct cow_options *o, unsigned allowed,
			 size_t pgsz)
{
	if (!o)
		return 0;
	if (o->flags & ~allowed)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(o->reserved) / sizeof(o->reserved[0]);
	     i++)
		if (o->reserved[i])
			return -EINVAL;
	if (!cow__aligned(o->size, pgsz) || !cow__aligned(o->reserve, pgsz) ||
	    !cow__aligned((uintptr_t)o->addr, pgsz))
		return -EINVAL;
	if ((o->flags & COW_FIXED_ADDR) && !o->addr)
		return -EINVAL;
	if (o->reserve && o->size > o->reserve)
		return -EINVAL;
	if (o->mode & ~07777u)
		return -EINVAL;
	return 0;
}

static size_t reserve_for(const struct cow_options *o, size_t size)
{
	if (o && o->reserve)
		return o->reserve;
	if (size > SIZE_MAX / 2)
		return size;
	return size * 2 > COW_DEFAULT_RESERVE ? size * 2 : COW_DEFAULT_RESERVE;
}

/*
 * The one place an arena's size changes (open, grow, rollback): the SIGBUS
 * guard repairs truncation faults only inside the size it was told, so it
 * hears of every change, and of a->mapped, the end of the base mapping,
 * which bounds the zeros it maps over a lost tail.
 */
static void set_size(struct cow_arena *a, size_t size)
{
	a->size = size;
	cow__guard_resize(a);
}

/*
 * The guard records the file's state after the arena's own writes to it
 * (a commit's, once none is running any more), so that they are not taken
 * for an outside change. 1 when it did (the state was read just now), 0
 * when nothing was due.
 */
static int refresh_guard(struct cow_arena *a)
{
	if (!cow__commit_refresh_due(a))
		return 0;
	COW_TRY(cow__guard_refresh(a));
	cow__commit_refreshed(a);
	return 1;
}

/*
 * The private pages of the arena to fn (track's scan). The pages of
 * commits not yet written in place are known to be private (commit.c
 * keeps them until then): the scan makes no file-page test for them.
 * Knowing fewer costs only that test, so a failure to list them is no
 * error.
 */
static int scan_private(struct cow_arena *a, cow__run_fn fn, void *ctx)
{
	struct cow__pageset known = COW__PAGESET_INIT;
	int r;

	(void)cow__commit_unapplied(a, &known);
	r = cow__track_dirty(a, 0, a->size / a->pgsz, &known, fn, ctx);
	cow__pageset_free(&known);
	return r;
}

/* Runs of the private pages: every one to dirty (those that differ from
 * the base) and clean (those a durable commit made equal to it); either
 * may be NULL. */
static int split_private(struct cow_arena *a, cow__run_fn dirty, void *dctx,
			 cow__run_fn clean, void *cctx)
{
	struct cow__pageset priv = COW__PAGESET_INIT;
	int r;

	if (!cow__commit_may_clean(a))
		return dirty ? scan_private(a, dirty, dctx) : 0;
	r = scan_private(a, cow__pageset_add_run, &priv);
	if (r == 0)
		r = cow__commit_split(a, &priv, dirty, dctx, clean, cctx);
	cow__pageset_free(&priv);
	return r;
}

/*
 * With the writers paused and every commit applied: drops the private
 * copies that commits made equal to the base, as a revert would (through
 * the tracking's drop point, per run, then the page tables left empty
 * given back, and the
 * snapshots' records told that the pages hold the base), so that no
 * snapshot or commit meets them again. Best effort: a run that cannot be
 * dropped stays private and is reported dirty again once its commit is
 * forgotten. When all went, the applied transactions are freed, so later
 * calls skip the compare.
 *
 * The scan that splits the private pages also finds the others, which
 * differ from the base: with dirty given they go there, and 1 says that
 * they are then every private page of the arena (the scan ran and every
 * clean page went), so that a caller that needs them (commit, discard)
 * makes no second scan; else 0 and dirty is left empty.
 */
static int drop_clean(struct cow_arena *a, struct cow__pageset *dirty)
{
	struct cow__pageset clean = COW__PAGESET_INIT;
	int r;

	if (!cow__commit_may_clean(a))
		return 0;
	r = split_private(a, dirty ? cow__pageset_add_run : NULL, dirty,
			  cow__pageset_add_run, &clean);
	for (size_t i = 0; r == 0 && i < clean.n; i++) {
		size_t first = clean.v[i].first, n = clean.v[i].n;

		r = cow__track_drop(a, first, n, COW__DROP_PRIVATE);
		if (r == 0)
			cow__snap_reverted(a, first, n);
	}
	if (r == 0)
		cow__commit_forget_applied(a);
	(void)cow__track_trim(a, &clean);
	cow__pageset_free(&clean);
	if (r < 0 && dirty) {
		cow__pageset_free(dirty);
		*dirty = (struct cow__pageset)COW__PAGESET_INIT;
	}
	return r == 0 && dirty;
}

/* The settle barrier (below) without the drop: what a call that the
 * arena's writers may run through passes. */
static int settle_base(struct cow_arena *a)
{
	COW_TRY(cow__commit_settle(a));
	COW_TRY(refresh_guard(a));
	return 0;
}

/*
 * The settle barrier: every commit is in the base's page cache, the guard
 * has recorded the file after the arena's own writes, and the private
 * pages that equal the base are dropped (with the writers paused). Any
 * call that drops private copies or compares the file (grow, discard,
 * revert, rollback, snapshot; the snapshot files without the drop) passes
 * it first, before cow__guard_check, so the dropped pages read the
 * committed content and the arena's own writes are not taken for an
 * outside change. The caller checked the owner (cow__guard_owner).
 * dirty, when given, may receive every private page (drop_clean): 1 then,
 * else 0.
 */
static int settle(struct cow_arena *a, struct cow__pageset *dirty)
{
	COW_TRY(settle_base(a));
	return drop_clean(a, dirty);
}

/* How every call whose result depends on the base starts: the owner
 * (-ECHILD in a fork child), the settle barrier, then the guard's check
 * (-ESTALE, -EIO). The calls that the arena's writers may run through
 * (cow_snap_save, cow_snap_load, cow_snap_diff) pass paused 0: they drop
 * no private copy, since a store that lands between the compare that
 * finds a page equal to the base and its drop would be lost. */
static int settle_check(struct cow_arena *a, int paused)
{
	COW_TRY(cow__guard_owner(a));
	COW_TRY(paused ? settle(a, NULL) : settle_base(a));
	return cow__guard_check(a);
}

/*
 * Reserves the address space, maps [0, size) of t->fd at its head and fills
 * in a new arena from the template t (fd, file_fd, kind, file_size,
 * ident). Takes ownership of the descriptors only on success.
 */
static int arena_create(cow_arena **out, const struct cow_options *o,
			const struct cow_arena *t, size_t size)
{
	size_t reserve = reserve_for(o, size);
	cow_arena *a;
	int r;

	if (reserve < size)
		return -EINVAL;
	a = cow__calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	*a = *t;
	a->pgsz = page_size();
	a->reserve = reserve;
	a->flags = o ? o->flags : 0;
	a->pid = cow__sys_pid();
	a->mapped = size;
	cow__guard_init(a);
	set_size(a, size); /* unwatched yet: cow__guard_watch records it */
	r = cow__reserve(o ? o->addr : NULL, reserve,
			 o && (o->flags & COW_FIXED_ADDR), &a->base);
	if (r < 0)
		goto err_free;
	r = cow__reserve_map_base(a, 0, size);
	if (r < 0)
		goto err_reserve;
	r = cow__track_open(a);
	if (r < 0)
		goto err_reserve;
	r = cow__guard_watch(a);
	if (r < 0)
		goto err_track;
	*out = a;
	return 0;

err_track:
	cow__track_close(a);
err_reserve:
	cow__reserve_release(a->base, reserve);
err_free:
	cow__free(a);
	return r;
}

/* fstat, and only regular files: a directory is -EISDIR, others -EINVAL. */
static int stat_regular(int fd, struct stat *st)
{
	int r = cow__sys_fstat(fd, st);

	if (r < 0)
		return r;
	if (S_ISDIR(st->st_mode))
		return -EISDIR;
	return S_ISREG(st->st_mode) ? 0 : -EINVAL;
}

/*
 * Opens an arena on the file fd (owned by the caller until success): locks
 * it, records its state, makes the private copy for COW_ISOLATE, grows it
 * to opt.size if that is larger. path (NULL for cow_open_fd) is where a
 * reflink copy may be made.
 */
static int open_file(cow_arena **out, int fd, const struct cow_options *o,
		     const char *path)
{
	size_t pgsz = page_size(), size, want = o ? o->size : 0;
	unsigned flags = o ? o->flags : 0;
	int readonly = flags & COW_READONLY, isolate = flags & COW_ISOLATE;
	struct cow__commit *c = NULL;
	struct cow_arena t;
	struct stat st;
	int base = fd, grown = 0, r;

	r = stat_regular(fd, &st);
	if (r < 0)
		return r;
	r = cow__guard_lock(fd, readonly);
	if (r < 0)
		return r;
	/* Recovery replays the log beside the file (holding the lock, before
	 * the file's state is recorded: it may write and extend the file). */
	r = cow__commit_open(&c, fd, path, pgsz, flags);
	if (r < 0)
		goto err_unlock;
	r = cow__sys_fstat(fd, &st);
	if (r < 0)
		goto err_commit;
	size = round_up((size_t)st.st_size, pgsz);
	if (want && want <= size)
		size = want;
	r = -EINVAL;
	if (!size && !want)
		goto err_commit;
	if (want > size && o->reserve && want > o->reserve)
		goto err_commit;
	r = -EROFS;
	if (want > size && readonly)
		goto err_commit;
	memset(&t, 0, sizeof(t));
	cow__guard_ident_from(&st, &t.ident);
	t.file_size = st.st_size;
	if (isolate) {
		r = cow__guard_isolate(fd, path, st.st_size, &base);
		if (r < 0)
			goto err_commit;
	}
	if (want > size) {
		/* The arena starts bigger than the file: grow it (or its
		 * copy) now, as cow_grow() would, and shrink it back if the
		 * open fails. */
		r = cow__sys_fsize_check((off_t)want);
		if (r == 0)
			r = cow__sys_ftruncate(base, (off_t)want);
		if (r < 0)
			goto err_base;
		grown = 1;
		t.file_size = (off_t)want;
		size = want;
		if (!isolate) {
			r = cow__guard_ident(fd, &t.ident);
			if (r < 0)
				goto err_shrink;
		}
	}
	t.fd = base;
	t.file_fd = fd;
	t.kind = COW__FILE;
	r = arena_create(out, o, &t, size);
	if (r == 0) {
		cow__commit_attach(*out, c);
		return 0;
	}
err_shrink:
	if (grown && !isolate)
		(void)cow__sys_ftruncate(fd, st.st_size);
err_base:
	if (base != fd)
		cow__sys_close(base);
err_commit:
	cow__commit_free(c);
err_unlock:
	cow__guard_unlock(fd);
	return r;
}

COW_API int cow_open(cow_arena **out, const char *path,
		     const struct cow_options *opt)
{
	unsigned flags = opt ? opt->flags : 0;
	int readonly = flags & COW_READONLY;
	int oflags = O_CLOEXEC | (readonly ? O_RDONLY : O_RDWR);
	int created = 0, fd, r;

	if (!out || !path)
		return -EINVAL;
	r = check_options(opt, COW__OPEN_FLAGS, page_size());
	if (r < 0)
		return r;
	if ((flags & COW_CREATE) && readonly)
		return -EINVAL;
	fd = cow__sys_open(path, oflags, 0);
	if (fd == -ENOENT && (flags & COW_CREATE)) {
		if (!opt->size)
			return -EINVAL;
		r = cow__sys_fsize_check((off_t)opt->size);
		if (r < 0)
			return r;
		fd = cow__sys_open(path, oflags | O_CREAT | O_EXCL,
				   opt->mode ? opt->mode : 0644);
		created = fd >= 0;
		if (fd == -EEXIST) /* made by someone else meanwhile */
			fd = cow__sys_open(path, oflags, 0);
		if (created) {
			/* Only our own new file: someone else's is opened as
			 * it is, and never before it is locked. */
			r = cow__sys_ftruncate(fd, (off_t)opt->size);
			if (r < 0)
				goto err;
			/* A log left beside a file that no longer exists
			 * belongs to nothing: it must not block the new one
			 * (COW_EFOREIGN). */
			cow__wal_unlink(path);
		}
	}
	if (fd < 0)
		return fd;
	if ((flags & COW_CREATE) && !created) {
		/* An existing file is opened as it is: the size is ignored. */
		struct cow_options o = *opt;

		o.size = 0;
		r = open_file(out, fd, &o, path);
	} else {
		r = open_file(out, fd, opt, path);
	}
	if (r == 0)
		return 0;
err:
	cow__sys_close(fd);
	if (created)
		cow__sys_unlink(path);
	return r;
}

/*
 * The arena needs an open file description of its own: a dup of the
 * caller's would share its lock with the caller and with any other arena
 * opened on the same fd (OFD locks never conflict with their own
 * description). /proc/self/fd/N opens the same file anew.
 */
static int reopen(int fd, int readonly)
{
	char link[COW__FD_PATH_LEN];
	struct stat st;
	int r;

	r = stat_regular(fd, &st);
	if (r < 0)
		return r;
	return cow__sys_open(cow__fd_path(link, fd),
			     O_CLOEXEC | (readonly ? O_RDONLY : O_RDWR), 0);
}

COW_API int cow_open_fd(cow_arena **out, int fd, const struct cow_options *opt)
{
	unsigned flags = opt ? opt->flags : 0;
	int mode, own, r;

	if (!out)
		return -EINVAL;
	r = check_options(opt, COW__OPEN_FLAGS, page_size());
	if (r < 0)
		return r;
	if (fd < 0)
		return -EBADF;
	mode = cow__sys_fcntl(fd, F_GETFL, 0);
	if (mode < 0)
		return mode;
	if ((mode & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if ((mode & O_ACCMODE) == O_RDONLY && !(flags & COW_READONLY))
		return -EBADF;
	own = reopen(fd, flags & COW_READONLY);
	if (own < 0)
		return own;
	r = open_file(out, own, opt, NULL);
	if (r < 0)
		cow__sys_close(own);
	return r;
}

COW_API int cow_open_anon(cow_arena **out, size_t size,
			  const struct cow_options *opt)
{
	struct cow_arena t;
	int fd, r;

	if (!out || !size || !cow__aligned(size, page_size()))
		return -EINVAL;
	r = check_options(opt, COW_FIXED_ADDR | COW_NOSYNC | COW_NOTHREAD,
			  page_size());
	if (r < 0)
		return r;
	if (opt && opt->size && opt->size != size)
		return -EINVAL;
	if (opt && opt->reserve && opt->reserve < size)
		return -EINVAL;
	r = cow__sys_fsize_check((off_t)size);
	if (r < 0)
		return r;
	/* The base of an anonymous arena is a memfd of zeros: it behaves as a
	 * file mapping in every respect (dirty pages are the non-file pages,
	 * MADV_DONTNEED brings zeros back) and a commit can make any content
	 * the new base by writing it into the memfd. */
	fd = cow__sys_memfd("cowarena-anon", MFD_CLOEXEC);
	if (fd < 0)
		return fd;
	memset(&t, 0, sizeof(t));
	t.fd = fd;
	t.file_fd = -1;
	t.kind = COW__ANON;
	t.file_size = (off_t)size;
	r = cow__sys_ftruncate(fd, (off_t)size);
	if (r == 0)
		r = arena_create(out, opt, &t, size);
	if (r < 0)
		cow__sys_close(fd);
	return r;
}

/*
 * Undoes open in the exact reverse order: snapshot tracking (set up after
 * open), the commit state (attached last), the SIGBUS guard, the
 * reservation, the pagemap reference, the isolated copy, then the lock and
 * the file. The guard lets go of the range before it is unmapped: from the
 * munmap on, another thread may map something of its own there, and a
 * fault in that must never be taken for the arena's.
 *
 * In a fork child this releases the child's copies only: its mapping, its
 * descriptors and the memory of the handle. The lock is the parent's (the
 * child's descriptor shares its open file description), so it is left
 * alone; closing the child's descriptor does not release it.
 */
COW_API int cow_close(cow_arena *a)
{
	int owner;

	if (!a)
		return 0;
	cow__snap_close(a);
	owner = cow__guard_owner(a) == 0;
	/* Waits for background I/O; in a fork child only frees the copy. */
	if (owner)
		cow__commit_close(a);
	else
		cow__commit_free(a->commit);
	cow__guard_unwatch(a);
	/* Read after the unwatch: the handler no longer changes it. */
	if (__atomic_load_n(&a->stale, __ATOMIC_ACQUIRE) &
	    COW__STALE_UNRESERVED)
		a->reserve = a->mapped;
	cow__track_close(a);
	cow__reserve_release(a->base, a->reserve);
	if (a->fd != a->file_fd)
		cow__sys_close(a->fd); /* the isolated copy or the anon memfd */
	if (a->file_fd >= 0) {
		if (owner)
			cow__guard_unlock(a->file_fd);
		cow__sys_close(a->file_fd);
	}
	cow__free(a);
	return 0;
}

COW_API void *cow_base(const cow_arena *a)
{
	return a ? a->base : NULL;
}

COW_API size_t cow_size(const cow_arena *a)
{
	return a ? a->size : 0;
}

COW_API size_t cow_reserved(const cow_arena *a)
{
	return a ? a->reserve : 0;
}

/* Whether fd is the real file itself (not a private copy or a memfd of
 * zeros): then changing its length changes what the guard compares. */
static int base_is_file(const struct cow_arena *a)
{
	return a->kind == COW__FILE && a->fd == a->file_fd;
}

COW_API int cow_grow(cow_arena *a, size_t new_size)
{
	int extend, r;
	off_t old_len;

	if (!a || !cow__aligned(new_size, a->pgsz) || new_size < a->size)
		return -EINVAL;
	if (new_size > a->reserve)
		return -ENOSPC;
	/* Commits still being written move the file's mtime by the arena's
	 * own hand: let them finish before the guard compares. */
	COW_TRY(settle_check(a, 1));
	if (new_size == a->size)
		return 0;
	if (a->kind == COW__FILE && (a->flags & COW_READONLY))
		return -EROFS;
	old_len = a->file_size;
	extend = (off_t)new_size > old_len;
	if (extend) {
		/* Checked first: past RLIMIT_FSIZE ftruncate raises SIGXFSZ. */
		COW_TRY(cow__sys_fsize_check((off_t)new_size));
		COW_TRY(cow__sys_ftruncate(a->fd, (off_t)new_size));
		/* Our own change of the file is not a change from outside. */
		if (base_is_file(a)) {
			r = cow__guard_refresh(a);
			if (r < 0)
				goto err_shrink;
		}
	}
	/* After a rollback to a smaller size the pages up to a->mapped are
	 * still mapped (and dropped, so they read the file): only the piece
	 * past them needs mapping. The written-page tracking must cover it,
	 * which also merges it into the mapping before it. A failure to
	 * register cannot be undone without a new mapping, so the arena
	 * switches to the tracking that needs no registration instead. */
	if (new_size > a->mapped) {
		r = cow__reserve_map_base(a, a->mapped, new_size);
		if (r < 0)
			goto err_shrink;
		cow__track_grow(a, a->mapped, new_size);
		a->mapped = new_size;
	}
	if (extend)
		a->file_size = (off_t)new_size;
	set_size(a, new_size);
	return 0;

err_shrink:
	if (extend) {
		(void)cow__sys_ftruncate(a->fd, old_len);
		if (base_is_file(a))
			(void)cow__guard_refresh(a);
	}
	return r;
}

/* A rollback may change the size both ways (a snapshot taken before or
 * after a cow_grow): the guard follows through set_size. */
COW_API int cow_rollback(cow_arena *a, cow_snap *s)
{
	size_t size;

	if (!a)
		return -EINVAL;
	COW_TRY(cow__snap_of(a, s));
	COW_TRY(settle_check(a, 1));
	COW_TRY(cow__snap_rollback(a, s, &size));
	set_size(a, size);
	return 0;
}

/*
 * The dirty pages go through the tracking's drop point: in one
 * MADV_DONTNEED over their span when they lie close together (a single
 * call either drops every private copy or fails having changed nothing;
 * the kernel walks only the page tables that exist, and measured on a 1
 * GiB arena the whole-span call is cheaper than per-run calls from 1 %
 * dirty pages up), run by run when they are far apart (a span over a few
 * pages spread over a large arena walks and unmaps all in between). Clean
 * pages inside a span map the base again.
 */
COW_API int cow_discard(cow_arena *a)
{
	struct cow__pageset d = COW__PAGESET_INIT;
	int r;

	if (!a)
		return -EINVAL;
	COW_TRY(cow__guard_owner(a));
	r = settle(a, &d);
	if (r >= 0)
		r = cow__guard_check(a) ?: r;
	if (r == 0)
		r = scan_private(a, cow__pageset_add_run, &d);
	else if (r == 1)
		r = 0; /* the settle barrier's scan found them */
	if (r == 0 && d.n) {
		r = cow__track_drop_set(a, &d);
		/* No page may hold what snapshots recorded as current (a
		 * failure after the first run dropped some). */
		cow__snap_forget(a);
	}
	cow__pageset_free(&d);
	/* Later scans are cheaper with the tracking on (best effort). */
	if (r == 0 && !(a->flags & COW_READONLY))
		(void)cow__track_start(a);
	return r;
}

/* Validates [addr, addr + len) as a non-empty page range of the arena. */
static int check_range(const struct cow_arena *a, const void *addr, size_t len)
{
	uintptr_t p = (uintptr_t)addr, b = (uintptr_t)a->base;

	if (!addr || !len || !cow__aligned(p, a->pgsz) ||
	    !cow__aligned(len, a->pgsz))
		return -EINVAL;
	if (p < b || p - b > a->size || len > a->size - (p - b))
		return -EINVAL;
	return 0;
}

/* One MADV_DONTNEED over the range: a single call either does all of it or
 * none, and its cost follows the page tables present in the range. */
COW_API int cow_revert(cow_arena *a, void *addr, size_t len)
{
	if (!a)
		return -EINVAL;
	COW_TRY(check_range(a, addr, len));
	COW_TRY(settle_check(a, 1));
	COW_TRY(cow__track_drop(a, (size_t)((char *)addr - a->base) / a->pgsz,
				len / a->pgsz, 0));
	cow__snap_reverted(a, (size_t)((char *)addr - a->base) / a->pgsz,
			   len / a->pgsz);
	return 0;
}

struct dirty_out {
	struct cow_range *out;
	size_t max, count, pgsz;
};

static int dirty_add(void *ctx, size_t first, size_t n)
{
	struct dirty_out *d = ctx;

	if (d->count < d->max) {
		d->out[d->count].offset = first * d->pgsz;
		d->out[d->count].length = n * d->pgsz;
	}
	d->count++;
	return 0;
}

COW_API ssize_t cow_dirty(cow_arena *a, struct cow_range *out, size_t max)
{
	struct dirty_out d = {out, max, 0, 0};
	int r;

	if (!a || (!out && max))
		return -EINVAL;
	COW_TRY(cow__guard_owner(a));
	d.pgsz = a->pgsz;
	r = split_private(a, dirty_add, &d, NULL, NULL);
	return r < 0 ? r : (ssize_t)d.count;
}

static int count_pages(void *ctx, size_t first, size_t n)
{
	(void)first;
	*(size_t *)ctx += n;
	return 0;
}

COW_API int cow_stats(const cow_arena *ca, struct cow_stats *st)
{
	/* Scanning reads the arena's page tables, not its state. */
	cow_arena *a = (cow_arena *)ca;
	struct cow_stats s;

	if (!a || !st)
		return -EINVAL;
	COW_TRY(cow__guard_owner(a));
	memset(&s, 0, sizeof(s));
	s.size = a->size;
	s.reserved = a->reserve;
	s.page_size = a->pgsz;
	cow__snap_stats(a, &s);
	COW_TRY(split_private(a, count_pages, &s.dirty_pages, NULL, NULL));
	COW_TRY(cow__count_mappings(a->base, a->reserve, &s.mappings));
	cow__commit_stats(a, &s);
	*st = s;
	return 0;
}

/*
 * The guard's check before a commit. While the arena's own in-place
 * writes are still running the file's mtime moves by its own hand, so
 * only the sticky marks of the SIGBUS handler are checked then; otherwise
 * the file is compared with the state recorded after the arena's last own
 * write, the real file of an isolated arena too (the refresh records that
 * same file).
 */
static int check_commit_guard(struct cow_arena *a)
{
	int r;

	if (cow__commit_writing(a))
		return cow__guard_marked(a);
	r = refresh_guard(a);
	if (r < 0)
		return r;
	/* Just refreshed: the file compared would be the state recorded a
	 * moment ago (one fstat of the same descriptor): the marks only. */
	return r ? cow__guard_marked(a) : cow__guard_check_commit(a);
}

/*
 * The order of a commit's steps: the dirty pages (track), what live
 * snapshots need of the old base saved (snap), the dirty pages unarmed
 * (track: the commit drops them, and a dropped armed page would leave a
 * tracking marker), the write (commit), the snapshots told whether it
 * took effect, the guard told of the arena's own writes, the page tables
 * the dropped copies left empty given back (track). Snapshots save
 * the old base of the pages a commit changes, read from the file: earlier
 * commits must be in it first. After a commit that succeeded the write
 * tracking starts (best effort), which makes later dirty scans cheaper.
 */
COW_API int cow_commit(cow_arena *a, unsigned flags)
{
	struct cow__pageset dirty = COW__PAGESET_INIT;
	struct cow__pageset dropped = COW__PAGESET_INIT;
	int async = !!(flags & COW_COMMIT_ASYNC), logged, took = 0, r;
	void *token;

	if (!a || (flags & ~COW_COMMIT_ASYNC))
		return -EINVAL;
	COW_TRY(cow__guard_owner(a));
	if (a->flags & COW_READONLY)
		return -EROFS;
	COW_TRY(check_commit_guard(a));
	logged = a->commit != NULL;
	r = logged && cow__snap_live(a) ? settle(a, &dirty) : 0;
	if (r == 0)
		r = scan_private(a, cow__pageset_add_run, &dirty);
	else if (r == 1)
		r = 0; /* the settle barrier's scan found them */
	if (r == 0)
		r = cow__snap_commit_prepare(a, &dirty, &token);
	if (r == 0) {
		r = cow__track_unarm_set(a, &dirty);
		if (r == 0)
			r = cow__commit_write(a, &dirty, async, &took,
					      &dropped);
		cow__snap_commit_finish(a, token, took);
	}
	cow__pageset_free(&dirty);
	(void)cow__track_trim(a, &dropped);
	cow__pageset_free(&dropped);
	/* Without a log the file was written (or written and put back)
	 * whatever the result; with one, the in-place writes run in the
	 * background (refresh_guard waits until none is running). */
	if (!logged || (r == 0 && !async))
		(void)refresh_guard(a);
	if (r == 0)
		(void)cow__track_start(a);
	return r;
}

COW_API int cow_sync(cow_arena *a)
{
	int r;

	if (!a)
		return -EINVAL;
	COW_TRY(cow__guard_owner(a));
	r = cow__commit_sync(a);
	if (r == 0)
		(void)refresh_guard(a);
	return r;
}

COW_API int cow_snapshot(cow_arena *a, cow_snap **out)
{
	if (!a || !out)
		return -EINVAL;
	COW_TRY(settle_check(a, 1));
	return cow__snap_take(a, out);
}

COW_API void cow_snap_release(cow_snap *s)
{
	if (s)
		cow__snap_release(s);
}

COW_API ssize_t cow_snap_diff(cow_arena *a, const cow_snap *from,
			      const cow_snap *to, struct cow_range *out,
			      size_t max)
{
	if (!a || !from || (!out && max) || cow__snap_owner(from) != a ||
	    (to && cow__snap_owner(to) != a))
		return -EINVAL;
	/* The base must hold the committed content, as the maps assume. */
	COW_TRY(settle_check(a, 0));
	return cow__snapdiff(a, from, to, out, max);
}

COW_API int cow_snap_load(cow_arena *a, const char *path, cow_snap **out)
{
	if (!a || !path || !out)
		return -EINVAL;
	COW_TRY(settle_check(a, 0));
	return cow__snapfile_load(a, path, out);
}

COW_API int cow_snap_save(const cow_snap *s, const char *path, unsigned flags)
{
	struct cow_arena *a;

	if (!s || !path || !path[0] || (flags & ~COW_SNAP_FULL))
		return -EINVAL;
	a = cow__snap_owner(s);
	COW_TRY(settle_check(a, 0));
	return cow__snapfile_save(s, path, flags);
}

COW_API const char *cow_strerror(int err)
{
	const char *s;

	static const char *const lib[] = {
	    [-COW_ECORRUPT - 4096] = "the write-ahead log beside the file, "
				     "or the snapshot file, is corrupt",
	    [-COW_EFOREIGN - 4096] = "the write-ahead log beside the file, "
				     "or the snapshot file, belongs to "
				     "another file, base or page size",
	    [-COW_EVERSION - 4096] = "the write-ahead log beside the file, "
				     "or the snapshot file, has an unknown "
				     "format version",
	    [-COW_ERECOVER - 4096] = "the write-ahead log holds committed "
				     "transactions; open the file "
				     "writable to recover them",
	    [-COW_ELOGTYPE - 4096] = "the write-ahead log beside the file "
				     "(FILE.cowlog or FILE.cowlog.tmp) is "
				     "not a regular file",
	};

	if (err == 0)
		return "Success";
	if (err <= COW_ECORRUPT && err >= COW_ELOGTYPE)
		return lib[-err - 4096];
	s = err < 0 && err > -4096 ? strerrordesc_np(-err) : NULL;
	return s ? s : "Unknown error";
}
