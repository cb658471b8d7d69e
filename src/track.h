/* SPDX-License-Identifier: MIT */
/*
 * track.c: which pages are private (differ from the base), and which of
 * them were written since they were last armed (userfaultfd asynchronous
 * write-protect), with the pagemap reader they share. track.c owns the
 * tracking's state (struct cow__track in the arena): the userfaultfd, the
 * mode and the set of armed private pages, with the one arm point and the
 * one drop point every other module uses. It calls nothing above pageset
 * and sys.
 */
#ifndef COW_TRACK_H
#define COW_TRACK_H

#include <stddef.h>

#include "pageset.h"

struct cow_arena;

/* open takes a pagemap reference (each open arena holds one) and starts
 * no tracking; start sets it up once (userfaultfd write-protect where the
 * kernel offers it, else COW_TRACK_COMPARE): at the first snapshot, or best
 * effort after a commit or discard that succeeded; stop undoes a start for
 * a call that then failed; grow covers newly mapped base (or leaves
 * userfaultfd when it cannot); close releases everything. */
int cow__track_open(struct cow_arena *a);
int cow__track_start(struct cow_arena *a);
void cow__track_stop(struct cow_arena *a);
void cow__track_grow(struct cow_arena *a, size_t from, size_t to);
void cow__track_close(struct cow_arena *a);

/* The private pages of [first_page, first_page + npages) as merged runs in
 * order. known (may be NULL) holds pages the caller knows to be private
 * (the layers above: pages of commits not yet written in place): they get
 * no file-page test when the walk finds them written. Changes no state of
 * the arena. */
int cow__track_dirty(struct cow_arena *a, size_t first_page, size_t npages,
		     const struct cow__pageset *known, cow__run_fn fn,
		     void *ctx);
int cow__count_mappings(const void *start, size_t len, size_t *out);

/* The arm point: pages whose content the caller recorded (a harvest arms
 * what it reports, see cow__track_written). arm_set picks
 * one ioctl per run or one walk over the span (which arms every page
 * present there: the caller vouches that the private ones are recorded);
 * best effort. unarm_set unarms the pages of a set that may be armed
 * (before a commit drops them, or after a snapshot whose harvest armed
 * them failed) and takes them out of the armed set. */
void cow__track_arm_set(struct cow_arena *a, const struct cow__pageset *set);
int cow__track_unarm_set(struct cow_arena *a, const struct cow__pageset *set);

/* The drop point: unarm, MADV_DONTNEED, out of the armed set. With
 * COW__DROP_PRIVATE the caller vouches that every page of the range is
 * private or was reported written (so only pages of the armed set may be
 * armed); without it the range may hold armed file pages. */
#define COW__DROP_PRIVATE 1u
int cow__track_drop(struct cow_arena *a, size_t first_page, size_t npages,
		    unsigned how);
/* Every page of set (private pages), in one call over their span when
 * they lie close together, else run by run. */
int cow__track_drop_set(struct cow_arena *a, const struct cow__pageset *set);
/* The runs of set (private or written pages) one by one, in one batched
 * call; *done counts the runs dropped before a failure. */
int cow__track_drop_runs(struct cow_arena *a, const struct cow__pageset *set,
			 size_t *done);

/* After private copies were dropped (dropped: their runs, ascending): the
 * page-table blocks they lay in that map nothing any more are dropped
 * whole, so that the kernel can free their tables and later walks skip
 * them. With the writers paused; best effort: the number of blocks. */
size_t cow__track_trim(struct cow_arena *a, const struct cow__pageset *dropped);
/* The private pages that may be armed (see struct cow__track). */
const struct cow__pageset *cow__track_armed(const struct cow_arena *a);

/* Private pages written since they were last armed (never a file page).
 * COW__WRITTEN_ARM: arm what is reported, and the file pages read in, and
 * add the reported pages to the armed set. */
#define COW__WRITTEN_ARM 2u
int cow__track_written(struct cow_arena *a, size_t first_page, size_t npages,
		       unsigned how, cow__run_fn fn, void *ctx);

#ifdef COW_DEBUG
/* The COW_DEBUG build's views for the invariant checks of debug.c: the
 * armed private pages, and every private page, as a full scan finds
 * them. */
int cow__track_armed_scan(struct cow_arena *a, size_t first_page, size_t npages,
			  cow__run_fn fn, void *ctx);
int cow__track_private_scan(struct cow_arena *a, size_t first_page,
			    size_t npages, cow__run_fn fn, void *ctx);
#endif

#endif
