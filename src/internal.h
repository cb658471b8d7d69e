/* SPDX-License-Identifier: MIT */
/*
 * Internal declarations shared across the library's files: the arena
 * structure and the cow__ functions each module offers the others.
 */
#ifndef COW_INTERNAL_H
#define COW_INTERNAL_H

#include <stdint.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "cowarena.h"
#include "pageset.h"
#include "sys.h"

#define COW_API __attribute__((visibility("default")))

/* Flags cow_open* accept; grows as features land. */
#define COW__OPEN_FLAGS                                             \
	(COW_CREATE | COW_READONLY | COW_ISOLATE | COW_FIXED_ADDR | \
	 COW_NOSYNC | COW_NOTHREAD)

struct cow__commit;

enum cow__kind {
	COW__ANON = 0, /* base is a memfd of zeros owned by the arena */
	COW__FILE,     /* base is the caller's file */
};

/* What the base file looked like when the arena last knew it (guard.c). */
struct cow__ident {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int linked; /* had a name: its removal or replacement is a change */
};

/* Bits of cow_arena.stale, set by the SIGBUS handler (guard.c). */
enum {
	COW__STALE_NOT = 0,
	COW__STALE_LOST = 1, /* truncated: the lost tail reads zeros */
	/* the handler unmapped the reservation past a->mapped to find a
	 * mapping for zeros (at vm.max_map_count, or for a failed page
	 * without userfaultfd); it is no longer ours: close unmaps
	 * [base, base + mapped) only */
	COW__STALE_UNRESERVED = 2,
	/* a page inside the file's size could not be read in (a hole of a
	 * full tmpfs, a read error): it reads zeros, the rest is intact */
	COW__STALE_IO = 4,
};

struct cow_arena {
	char *base; /* reservation start = arena start; never moves */
	/* The arena's bytes, a page multiple. Written only by set_size in
	 * arena.c, which tells the SIGBUS guard (cow__guard_resize). */
	size_t size;
	size_t reserve; /* reserved bytes, a page multiple */
	size_t pgsz;
	/*
	 * fd is what is mapped: the base. file_fd is the real file: it holds
	 * the arena's lock, its identity is checked, and commits go to it.
	 * Without COW_ISOLATE they are the same descriptor (closed once); with
	 * it fd is the private copy (a reflink or a memfd sealed against
	 * shrinking), which a commit must also write, as it is the base that
	 * discard returns to. Anonymous arenas: fd is their memfd of zeros,
	 * file_fd is -1.
	 */
	int fd;
	int file_fd;
	enum cow__kind kind;
	unsigned flags;	 /* COW_* from the options */
	off_t file_size; /* the base's length in bytes (may be unaligned) */
	/* The opener: other processes (fork children) get -ECHILD from
	 * every call but cow_close. */
	pid_t pid;
	/* Atomic, sticky, COW__STALE_* bits: the base was lost (a
	 * truncation fault replaced its tail with zeros) or could not be
	 * read; set by the SIGBUS handler. */
	int stale;
	int guard_slot;		 /* SIGBUS registry slot, -1 when unwatched */
	struct cow__ident ident; /* the real file at open or our last change */
	/* Bytes of the base mapped at the head of the reservation: at least
	 * size. A rollback to a smaller size leaves the pages past it mapped
	 * (and dropped), so a later grow needs no new mapping there. */
	size_t mapped;
	/* userfaultfd of the written-page tracking, or -1; the SIGBUS
	 * handler reads it (atomically) to fill a page it cannot read */
	int uffd;
	unsigned tracking;	    /* COW_TRACK_* */
	struct cow__snaps *snaps;   /* snapshot state; NULL before the first */
	struct cow__commit *commit; /* log and background state; NULL: none */
	unsigned long long direct_commits; /* commits without a log */
	/* The arena wrote the file itself since the guard last recorded its
	 * state (commit.c refreshes it on the caller's thread). */
	int refresh;
};

/*
 * commit.c: durable commits. cow__commit_open runs recovery on a file's
 * log before the arena is mapped (the file's length may change) and
 * returns the state the arena keeps (*out NULL for a base with nothing
 * durable: an unlinked file or a memfd). path may be NULL (cow_open_fd).
 * cow__commit_settle waits until every commit is in the base's page cache
 * and then records the file's state (cow__guard_refresh) after the
 * arena's own background writes: any operation that drops private copies
 * or compares the file (discard, revert, rollback) calls it first, before
 * cow__guard_check, so the dropped pages read the committed content and
 * the arena's own writes are not taken for an outside change. It returns
 * -ECHILD in a fork child.
 */
int cow__commit_open(struct cow__commit **out, int fd, const char *path,
		     size_t pgsz, unsigned flags);
void cow__commit_attach(struct cow_arena *a, struct cow__commit *c);
void cow__commit_close(struct cow_arena *a);
void cow__commit_free(struct cow__commit *c);
int cow__commit_settle(struct cow_arena *a);
void cow__commit_stats(struct cow_arena *a, struct cow_stats *st);
/* The dirty pages as reported (cow_dirty, cow_stats): the private pages
 * less those an applied asynchronous commit made equal to the base. */
typedef int (*cow__run_fn)(void *ctx, size_t first_page, size_t npages);
int cow__commit_dirty(struct cow_arena *a, cow__run_fn fn, void *ctx);
/* Tests: checkpoint the log at n bytes (0: the default, 16 MiB). */
void cow__commit_ckpt_bytes(off_t n);

/* reserve.c: address space */
int cow__reserve(void *hint, size_t len, int fixed, char **out);
int cow__reserve_map_base(struct cow_arena *a, size_t from, size_t to);
void cow__reserve_release(char *base, size_t len);

/* track.c: which pages are private (differ from the base) */
int cow__track_dirty(struct cow_arena *a, size_t first_page, size_t npages,
		     cow__run_fn fn, void *ctx);
void cow__track_force_pagemap(int on); /* tests: use the pagemap fallback */
void cow__track_force_compare(int on); /* tests: no userfaultfd tracking */
int cow__pagemap_get(void);	       /* each open arena holds a reference */
void cow__pagemap_put(void);
int cow__pagemap_fd(void);
int cow__count_mappings(const void *start, size_t len, size_t *out);

/* track.c: which private pages were written since they were last armed
 * (userfaultfd asynchronous write-protect). uffd_open returns -EOPNOTSUPP
 * when the kernel or the system does not offer it. */
int cow__track_uffd_open(struct cow_arena *a);
int cow__track_uffd_register(struct cow_arena *a, size_t from, size_t to);
void cow__track_uffd_close(struct cow_arena *a);
int cow__track_arm(struct cow_arena *a, size_t first_page, size_t npages);
/* Call before MADV_DONTNEED of pages that may be armed (0 without uffd). */
int cow__track_unarm(struct cow_arena *a, size_t first_page, size_t npages);
#define COW__WRITTEN_ALL 1u /* every private page, written or not */
#define COW__WRITTEN_ARM 2u /* and arm what is reported, in the same walk */
/* File pages read in since the last arming may be reported too: no walk
 * tests the candidates for being file pages (a rollback, which only drops
 * or restores what it is given, needs no more). */
#define COW__WRITTEN_ROUGH 4u
int cow__track_written(struct cow_arena *a, size_t first_page, size_t npages,
		       unsigned how, cow__run_fn fn, void *ctx);
int cow__track_arm_written(struct cow_arena *a, size_t first_page,
			   size_t npages);

/* snap.c: rollback. snap_of is -EINVAL unless s is a snapshot of a.
 * snap_rollback restores s's content (the caller validated s, settled
 * commits and checked the guard) and gives s's size in *size, which the
 * caller makes the arena's (arena.c owns the size). */
int cow__snap_of(const struct cow_arena *a, const cow_snap *s);
int cow__snap_rollback(struct cow_arena *a, cow_snap *s, size_t *size);

/* snap.c: keeping snapshots valid across the other operations. */
void cow__snap_close(struct cow_arena *a);
void cow__snap_forget(struct cow_arena *a);	   /* cur unknown */
void cow__snap_forget_clean(struct cow_arena *a);  /* no private page armed */
void cow__snap_track_compare(struct cow_arena *a); /* leave userfaultfd */
void cow__snap_reverted(struct cow_arena *a, size_t first_page, size_t npages);
void cow__snap_stats(const struct cow_arena *a, struct cow_stats *st);
void cow__snap_track_early(struct cow_arena *a);
size_t cow__snap_live(const struct cow_arena *a); /* snapshots not released */
/* The private pages of [first, end) that may be armed, as runs in order,
 * or -EAGAIN when the records do not tell (see dirty_uffd in track.c). */
int cow__snap_armed(struct cow_arena *a, size_t first, size_t end,
		    cow__run_fn fn, void *ctx);

/*
 * snap.c: hooks for a commit, which makes the content of the currently
 * dirty pages the new base. prepare saves what live snapshots need of the
 * old base (fallible; changes nothing visible); finish attaches it when the
 * commit took effect (committed = 1) or frees it (committed = 0). finish
 * never fails.
 */
int cow__snap_commit_prepare(struct cow_arena *a, void **token);
/* The same with the dirty pages already found: runs in pages, ascending. */
int cow__snap_commit_prepare_runs(struct cow_arena *a,
				  const struct cow_range *runs, size_t nruns,
				  void **token);
void cow__snap_commit_finish(struct cow_arena *a, void *token, int committed);

/*
 * guard.c: file lock, change detection, isolated base, SIGBUS guard, fork.
 *
 * cow__guard_owner: 0, or -ECHILD in a process other than the opener (a
 * fork child); every call but cow_close starts with it.
 * cow__guard_check: owner, then -ESTALE if the base changed behind the
 * arena's back: the SIGBUS handler marked it, or (without COW_ISOLATE) the
 * file's identity, size or mtime differ from a->ident; -EIO if the handler
 * found a page inside the file it could not read. Called first by
 * every call whose result depends on the base: grow, discard, revert,
 * rollback.
 * cow__guard_check_commit: the same, but also checks the real file of an
 * isolated arena: a commit must never write over an outside change.
 * cow__guard_refresh: records the real file's current state in a->ident;
 * called after the arena changed the file itself (grow, commit).
 *
 * For the commit: call cow__guard_check_commit before anything else, and
 * cow__guard_refresh once the arena's own writes to the file are done
 * (log recovery at open too, before the state is recorded). While
 * in-place writes of a commit are still running in the background the
 * file's mtime moves under the arena by its own hand: refresh when they
 * complete, and do not compare in between. An isolated arena's commit
 * writes both file_fd and fd (the copy is not write-sealed for that).
 */
int cow__guard_owner(const struct cow_arena *a);
int cow__guard_check(struct cow_arena *a);
int cow__guard_check_commit(struct cow_arena *a);
/* Only the marks of the SIGBUS handler: -ESTALE (the file was truncated),
 * -EIO (a page inside it could not be read), else 0. */
int cow__guard_marked(const struct cow_arena *a);
int cow__guard_refresh(struct cow_arena *a);
int cow__guard_ident(int fd, struct cow__ident *id);
void cow__guard_ident_from(const struct stat *st, struct cow__ident *id);
/* Takes the whole-file OFD lock: shared if readonly, else exclusive.
 * -EBUSY when another arena holds a conflicting one. */
int cow__guard_lock(int fd, int readonly);
void cow__guard_unlock(int fd);
/* Makes a private copy of fd's len bytes; *out receives its descriptor.
 * path, when known, lets a reflink copy be made beside the file. */
int cow__guard_isolate(int fd, const char *path, off_t len, int *out);
/* The SIGBUS registry: watch after the base is mapped; resize whenever
 * a->size or a->mapped changed (arena.c's set_size); unwatch at close
 * before the reservation is unmapped (the last one restores the previous
 * handler). */
int cow__guard_watch(struct cow_arena *a);
void cow__guard_resize(struct cow_arena *a);
void cow__guard_unwatch(struct cow_arena *a);

#ifdef COW_DEBUG
/* The COW_DEBUG build's views for the invariant checks of debug.c: the
 * armed private pages as a full scan finds them, and the guard's record
 * of the size (-ENOENT when the arena is not watched). */
int cow__track_armed_scan(struct cow_arena *a, size_t first_page, size_t npages,
			  cow__run_fn fn, void *ctx);
int cow__guard_watched(const struct cow_arena *a, size_t *size, size_t *mapped);
#endif

static inline int cow__aligned(size_t v, size_t pgsz)
{
	return (v & (pgsz - 1)) == 0;
}

#endif
