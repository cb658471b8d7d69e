/* SPDX-License-Identifier: MIT */
/*
 * Internal declarations shared across the library's files: the arena
 * structure and the cow__ functions each module offers the others.
 */
#ifndef COW_INTERNAL_H
#define COW_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "cowarena.h"
#include "sys.h"

#define COW_API __attribute__((visibility("default")))

/* Flags cow_open* accept; grows as features land. */
#define COW__OPEN_FLAGS (COW_CREATE | COW_READONLY | COW_FIXED_ADDR)

enum cow__kind {
	COW__ANON = 0, /* base is a memfd of zeros owned by the arena */
	COW__FILE,     /* base is the caller's file */
};

struct cow_arena {
	char *base;	/* reservation start = arena start; never moves */
	size_t size;	/* mapped bytes, a page multiple */
	size_t reserve; /* reserved bytes, a page multiple */
	size_t pgsz;
	int fd; /* the base: our own fd of the file, or the anon memfd */
	enum cow__kind kind;
	unsigned flags; /* COW_* from the options */
	off_t
	    file_size; /* the base file's length in bytes (may be unaligned) */
};

/* reserve.c: address space */
int cow__reserve(void *hint, size_t len, int fixed, char **out);
int cow__reserve_map_base(struct cow_arena *a, size_t from, size_t to);
void cow__reserve_release(char *base, size_t len);

/* track.c: which pages are private (differ from the base) */
typedef int (*cow__run_fn)(void *ctx, size_t first_page, size_t npages);
int cow__track_dirty(struct cow_arena *a, size_t first_page, size_t npages,
		     cow__run_fn fn, void *ctx);
void cow__track_force_pagemap(int on); /* tests: use the pagemap fallback */
int cow__pagemap_get(void);	       /* each open arena holds a reference */
void cow__pagemap_put(void);
int cow__pagemap_fd(void);
int cow__count_mappings(const void *start, size_t len, size_t *out);

/*
 * snap.c: hooks for a commit, which makes the content of the currently
 * dirty pages the new base. prepare saves what live snapshots need of the
 * old base (fallible; changes nothing visible); finish attaches it when the
 * commit took effect (committed = 1) or frees it (committed = 0). finish
 * never fails.
 */
int cow__snap_commit_prepare(struct cow_arena *a, void **token);
void cow__snap_commit_finish(struct cow_arena *a, void *token, int committed);

/* Error-return helpers (zstd style): keep call sites short. */
#define COW_TRY(expr)                 \
	do {                          \
		int r_ = (int)(expr); \
		if (r_ < 0)           \
			return r_;    \
	} while (0)

static inline int cow__aligned(size_t v, size_t pgsz)
{
	return (v & (pgsz - 1)) == 0;
}

#endif
