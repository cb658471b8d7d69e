/* SPDX-License-Identifier: MIT */
/*
 * snap.c as the snapshot files (snapfile.c) and the diff (snapdiff.c) see
 * it: a snapshot read as its size and its map (ptrie.h), the arena's
 * current state read as its map plus the pages written since, and a
 * snapshot built from pages that come from outside. These modules sit
 * above snap.c and call only down into it.
 */
#ifndef COW_SNAP_H
#define COW_SNAP_H

#include <stddef.h>

struct cow_arena;
struct cow_snap;
struct cow__page;
struct cow__pnode;
struct cow__ptrie;

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

#endif
