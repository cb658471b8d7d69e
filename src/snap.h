/* SPDX-License-Identifier: MIT */
/*
 * snap.c: snapshots. For arena.c: rollback, and the hooks that keep
 * snapshots valid across the other operations (discard, revert, commit,
 * close). For the snapshot files (snapfile.c) and the diff (snapdiff.c):
 * a snapshot read as its size and its map (ptrie.h), the arena's current
 * state read as its map plus the pages written since, and a snapshot built
 * from pages that come from outside. These modules sit above snap.c and
 * call only down into it.
 */
#ifndef COW_SNAP_H
#define COW_SNAP_H

#include <stddef.h>

#include "pageset.h"

struct cow_arena;
struct cow_snap;
struct cow_stats;
struct cow__page;
struct cow__pnode;
struct cow__ptrie;

/* Takes a snapshot (cow_snapshot; the caller validated, settled commits
 * and checked the guard); releases one (cow_snap_release, s not NULL). */
int cow__snap_take(struct cow_arena *a, struct cow_snap **out);
void cow__snap_release(struct cow_snap *s);

/* Rollback. snap_of is -EINVAL unless s is a snapshot of a.
 * snap_rollback restores s's content (the caller validated s, settled
 * commits and checked the guard) and gives s's size in *size, which the
 * caller makes the arena's (arena.c owns the size). */
int cow__snap_of(const struct cow_arena *a, const struct cow_snap *s);
int cow__snap_rollback(struct cow_arena *a, struct cow_snap *s, size_t *size);

/* Keeping snapshots valid across the other operations. */
void cow__snap_close(struct cow_arena *a);
/* forget: cur records nothing any more (every private page was dropped,
 * or may differ from its record): the next snapshot copies them. */
void cow__snap_forget(struct cow_arena *a);
void cow__snap_reverted(struct cow_arena *a, size_t first_page, size_t npages);
void cow__snap_stats(const struct cow_arena *a, struct cow_stats *st);
size_t cow__snap_live(const struct cow_arena *a); /* snapshots not released */

/*
 * Hooks for a commit, which makes the content of the currently dirty
 * pages the new base. prepare saves what live snapshots need of the old
 * base (fallible; changes nothing visible but the dirty pages' arming),
 * given the dirty pages, every private page; finish attaches it when the
 * commit took effect (committed = 1) or frees it (committed = 0). finish
 * never fails.
 */
int cow__snap_commit_prepare(struct cow_arena *a,
			     const struct cow__pageset *dirty, void **token);
void cow__snap_commit_finish(struct cow_arena *a, void *token, int committed);

/* The arena a snapshot belongs to, its size in bytes, its map. */
struct cow_arena *cow__snap_owner(const struct cow_snap *s);
size_t cow__snap_size(const struct cow_snap *s);
const struct cow__pnode *cow__snap_map(const struct cow_snap *s);

/* The shape of the arena's maps (NULL before its first snapshot) and its
 * current map: the copy that equals each private page not written since
 * it was recorded. */
const struct cow__ptrie *cow__snap_trie(const struct cow_arena *a);
const struct cow__pnode *cow__snap_cur(const struct cow_arena *a);

/*
 * The pages written since cur recorded them (every private page whose
 * content cur may not hold), ascending, into a new array *pages (free with
 * cow__free) of *n. Arms nothing, changes nothing; may list clean pages
 * too (their content is the base either way). The arena must have had a
 * snapshot.
 */
int cow__snap_written(struct cow_arena *a, size_t **pages, size_t *n);

/*
 * Builds a new snapshot of a, of size bytes, mapping pages[i] (strictly
 * ascending, below size / page size) to a new copy each; fill(ctx, copies)
 * fills those copies' bytes and may fail (its error is returned). Nothing
 * is visible before fill succeeded: on any failure the arena, its
 * snapshots, its tracking and its memory accounting are as before.
 */
typedef int (*cow__snap_fill_fn)(void *ctx, struct cow__page *const *copies);
int cow__snap_build(struct cow_arena *a, size_t size, const size_t *pages,
		    size_t n, cow__snap_fill_fn fill, void *ctx,
		    struct cow_snap **out);

#ifdef COW_DEBUG
/* For debug.c: the first armed page cur has no copy of, in *page; -ENOENT
 * when cur covers the armed set, -EAGAIN when it does not claim to. */
struct cow__pageset;
int cow__snap_uncovered(struct cow_arena *a, const struct cow__pageset *armed,
			size_t *page);
#endif

#endif
