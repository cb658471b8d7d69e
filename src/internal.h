/* SPDX-License-Identifier: MIT */
/*
 * What every module shares: the arena structure. The cow__ functions a
 * module offers the others are declared in its own header (commit.h,
 * guard.h, reserve.h, snap.h, track.h, ...); the hooks only tests call, in
 * testhooks.h.
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

/*
 * The write tracking's state (track.c writes it, on the caller's thread).
 * armed: every private page that may be write-protected (armed), which is
 * each armed private page and maybe some written since they were armed;
 * never a page that is not private. lost: an arming walk failed half way,
 * so armed may miss armed pages; the next written scan takes every private
 * page and rebuilds the set.
 */
struct cow__track {
	/* userfaultfd, or -1; the SIGBUS handler reads it (atomically) to
	 * fill a page it cannot read */
	int uffd;
	unsigned mode; /* COW_TRACK_*: NONE until cow__track_start */
	int lost;
	struct cow__pageset armed;
	/* Private pages the last dirty walk saw written, so not
	 * write-protected: none is armed in the kernel until track arms
	 * private pages again (which empties the set), so unarming them
	 * takes no ioctl. Writers only take protection away. */
	struct cow__pageset unprotected;
	/* pages present at the last walk: picks the next walk's kind */
	size_t present;
};

/*
 * One arena. The fields are grouped by the one file that writes them,
 * each with what guards it: track's in struct cow__track, the others in
 * C11 anonymous structs (grouped in the declaration, named as before at
 * the use). Unless a field says otherwise it
 * is touched only by a call on the arena, and calls on one arena do not
 * run concurrently (the caller's rule, see cowarena.h): that is its lock.
 * Other files read fields; they never write them.
 */
struct cow_arena {
	/* arena.c: the arena's shape and its base. Set at open (from the
	 * template arena_create copies), then changed only by arena.c. */
	struct {
		char *base; /* reservation start = arena start; never moves */
		/* The arena's bytes, a page multiple. Written only by
		 * set_size, which tells the SIGBUS guard
		 * (cow__guard_resize). */
		size_t size;
		/* Reserved bytes, a page multiple (at close, after the guard
		 * let go: only what is still ours). */
		size_t reserve;
		size_t pgsz;
		/*
		 * fd is what is mapped: the base. file_fd is the real file:
		 * it holds the arena's lock, its identity is checked, and
		 * commits go to it. Without COW_ISOLATE they are the same
		 * descriptor (closed once); with it fd is the private copy (a
		 * reflink or a memfd sealed against shrinking), which a
		 * commit must also write, as it is the base that discard
		 * returns to. Anonymous arenas: fd is their memfd of zeros,
		 * file_fd is -1.
		 */
		int fd;
		int file_fd;
		enum cow__kind kind;
		unsigned flags;	 /* COW_* from the options */
		off_t file_size; /* the base's length in bytes (may be
				  * unaligned) */
		/* The opener: other processes (fork children) get -ECHILD
		 * from every call but cow_close. */
		pid_t pid;
		/* Bytes of the base mapped at the head of the reservation:
		 * at least size. A rollback to a smaller size leaves the
		 * pages past it mapped (and dropped), so a later grow needs
		 * no new mapping there. The guard's copy is updated with
		 * size (set_size). */
		size_t mapped;
	};
	/* guard.c: the file's recorded state and the SIGBUS registry. */
	struct {
		/* Atomic, sticky, COW__STALE_* bits: the base was lost (a
		 * truncation fault replaced its tail with zeros) or could
		 * not be read; set by the SIGBUS handler (in any thread). */
		int stale;
		/* SIGBUS registry slot, -1 when unwatched (cow__guard_init);
		 * changed under the registry's lock. */
		int guard_slot;
		/* The real file at open (the template's) or after the
		 * arena's last own change (cow__guard_refresh). */
		struct cow__ident ident;
	};
	/* track.c: the written-page tracking (set at cow__track_open). */
	struct cow__track track;
	/* snap.c: snapshot state; NULL before the first. */
	struct {
		struct cow__snaps *snaps;
	};
	/* commit.c: the durable writer. */
	struct {
		/* Log and background state; NULL: none. What it points to
		 * is guarded by the io engine's lock (io.h). */
		struct cow__commit *commit;
		unsigned long long direct_commits; /* commits without a log */
		/* Atomic: the arena wrote the file itself since the guard
		 * last recorded its state. Set by the reaper thread when
		 * in-place writes start, and by a commit without a log;
		 * arena.c reads it through cow__commit_refresh_due and
		 * clears it through cow__commit_refreshed. */
		int refresh;
	};
};

#endif
