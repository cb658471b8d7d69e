/* SPDX-License-Identifier: MIT */
/*
 * track.c: which pages are private (differ from the base), and which of
 * them were written since they were last armed (userfaultfd asynchronous
 * write-protect), with the pagemap reader they share.
 */
#ifndef COW_TRACK_H
#define COW_TRACK_H

#include <stddef.h>

#include "pageset.h"

struct cow_arena;

int cow__track_dirty(struct cow_arena *a, size_t first_page, size_t npages,
		     cow__run_fn fn, void *ctx);
int cow__pagemap_get(void); /* each open arena holds a reference */
void cow__pagemap_put(void);
int cow__count_mappings(const void *start, size_t len, size_t *out);

/* uffd_open returns -EOPNOTSUPP when the kernel or the system does not
 * offer userfaultfd write-protect. */
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

#ifdef COW_DEBUG
/* The COW_DEBUG build's view for the invariant checks of debug.c: the
 * armed private pages as a full scan finds them. */
int cow__track_armed_scan(struct cow_arena *a, size_t first_page, size_t npages,
			  cow__run_fn fn, void *ctx);
#endif

#endif
