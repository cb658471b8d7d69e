// SPDX-License-Identifier: MIT
/*
 * Persistent page maps (ptrie.h): a radix trie of fan-out 64 whose nodes
 * are immutable once in a tree and reference counted.
 *
 * An update builds a new root: each node on the path to a changed slot is
 * copied (the copy takes a reference on every child and copy it keeps), and
 * the old tree loses nothing. The update of a sorted batch walks each
 * touched node once: O(pages * height * 64) at most. If an allocation
 * fails, the nodes built so far are released, which drops exactly the
 * references they took: the old tree is as before.
 *
 * Two trees that share a subtree share its pointer, so comparing them
 * skips it; a tree's last reference frees only the nodes no other tree
 * holds.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "pagestore.h"
#include "ptrie.h"

#define MASK ((size_t)COW__PTRIE_FAN - 1)
#define MAX_HEIGHT 10 /* 2^60 pages: index arithmetic stays in 64 bits */

/* The page-number bits below a slot of a node at this level. */
static unsigned shift_of(unsigned level)
{
	return (level - 1) * COW__PTRIE_BITS;
}

static unsigned lowest(uint64_t m)
{
	return (unsigned)__builtin_ctzll(m);
}

/* Slots lo..hi. */
static uint64_t slot_mask(unsigned lo, unsigned hi)
{
	uint64_t up = hi >= 63 ? ~0ull : (1ull << (hi + 1)) - 1;

	return up & ~((1ull << lo) - 1);
}

/* The slots of a node at (level, base) that overlap [first, end), which
 * must overlap the node. */
static uint64_t range_slots(unsigned level, size_t base, size_t first,
			    size_t end)
{
	unsigned sh = shift_of(level);
	size_t lo = first > base ? (first - base) >> sh : 0;
	size_t hi = (end - base - 1) >> sh;

	return slot_mask((unsigned)lo,
			 hi > MASK ? (unsigned)MASK : (unsigned)hi);
}

/* Whether the tree's height covers page. */
static int covered(const struct cow__ptrie *t, size_t page)
{
	return !(page >> (t->height * COW__PTRIE_BITS));
}

unsigned cow__ptrie_height(size_t npages)
{
	size_t last = npages ? npages - 1 : 0;
	unsigned h = 1;

	while (h < MAX_HEIGHT && (last >> (h * COW__PTRIE_BITS)))
		h++;
	return h;
}

static void set_slot(struct cow__pnode *n, unsigned i, void *c)
{
	n->slot[i] = c;
	if (c)
		n->bits |= 1ull << i;
	else
		n->bits &= ~(1ull << i);
}

static void node_unref(const struct cow__ptrie *t, struct cow__pnode *n,
		       unsigned level)
{
	if (!n || --n->ref)
		return;
	for (uint64_t m = n->bits; m; m &= m - 1) {
		void *c = n->slot[lowest(m)];

		if (level == 1)
			cow__page_unref(t->ps, c);
		else
			node_unref(t, c, level - 1);
	}
	cow__free(n);
}

void cow__pnode_unref(const struct cow__ptrie *t, struct cow__pnode *root)
{
	node_unref(t, root, t->height);
}

/* A new node with old's slots (referenced again), or an empty one. */
static struct cow__pnode *node_copy(struct cow__pnode *old, unsigned level)
{
	struct cow__pnode *n = cow__malloc(sizeof(*n));

	if (!n)
		return NULL;
	if (!old) {
		memset(n, 0, sizeof(*n));
		n->ref = 1;
		return n;
	}
	memcpy(n, old, sizeof(*n));
	n->ref = 1;
	for (uint64_t m = n->bits; m; m &= m - 1) {
		void *c = n->slot[lowest(m)];

		if (level == 1)
			cow__page_ref(c);
		else
			cow__pnode_ref(c);
	}
	return n;
}

/* Drops the reference n holds in slot i and empties it. */
static void clear_slot(const struct cow__ptrie *t, struct cow__pnode *n,
		       unsigned i, unsigned level)
{
	if (level == 1)
		cow__page_unref(t->ps, n->slot[i]);
	else
		node_unref(t, n->slot[i], level - 1);
	set_slot(n, i, NULL);
}

/* An empty node is no node. */
static struct cow__pnode *node_done(struct cow__pnode *n)
{
	if (n->bits)
		return n;
	cow__free(n);
	return NULL;
}

static int insert(const struct cow__ptrie *t, struct cow__pnode *old,
		  unsigned level, const size_t *pages,
		  struct cow__page *const *copies, size_t n,
		  struct cow__pnode **out)
{
	unsigned sh = shift_of(level);
	struct cow__pnode *nw;
	size_t i, j;

	if (!old) {
		for (i = 0; i < n && !copies[i]; i++)
			;
		if (i == n) { /* removing what is not there */
			*out = NULL;
			return 0;
		}
	}
	nw = node_copy(old, level);
	if (!nw)
		return -ENOMEM;
	for (i = 0; i < n; i = j) {
		unsigned s = (unsigned)((pages[i] >> sh) & MASK);
		void *c;

		for (j = i + 1; j < n && ((pages[j] >> sh) & MASK) == s; j++)
			;
		if (level == 1) {
			c = copies[i] ? cow__page_ref(copies[i]) : NULL;
		} else {
			struct cow__pnode *child;
			int r = insert(t, nw->slot[s], level - 1, pages + i,
				       copies + i, j - i, &child);

			if (r < 0) {
				node_unref(t, nw, level);
				return r;
			}
			c = child;
		}
		clear_slot(t, nw, s, level);
		set_slot(nw, s, c);
	}
	*out = node_done(nw);
	return 0;
}

int cow__ptrie_insert(const struct cow__ptrie *t, struct cow__pnode *root,
		      const size_t *pages, struct cow__page *const *copies,
		      size_t n, struct cow__pnode **out)
{
	struct cow__pnode *nw;

	if (!n) {
		*out = cow__pnode_ref(root);
		return 0;
	}
	COW_TRY(insert(t, root, t->height, pages, copies, n, &nw));
	*out = nw;
	return 0;
}

static int remove_range(const struct cow__ptrie *t, struct cow__pnode *old,
			unsigned level, size_t base, size_t first, size_t end,
			struct cow__pnode **out)
{
	unsigned sh = shift_of(level);
	size_t span = (size_t)1 << sh;
	uint64_t m = old->bits & range_slots(level, base, first, end);
	struct cow__pnode *nw;

	if (!m) {
		*out = cow__pnode_ref(old);
		return 0;
	}
	nw = node_copy(old, level);
	if (!nw)
		return -ENOMEM;
	for (; m; m &= m - 1) {
		unsigned i = lowest(m);
		size_t s0 = base + i * span;
		struct cow__pnode *child = NULL;

		if (level > 1 && (s0 < first || s0 + span > end)) {
			int r = remove_range(t, nw->slot[i], level - 1, s0,
					     first, end, &child);

			if (r < 0) {
				node_unref(t, nw, level);
				return r;
			}
		}
		clear_slot(t, nw, i, level);
		set_slot(nw, i, child);
	}
	*out = node_done(nw);
	return 0;
}

int cow__ptrie_remove_range(const struct cow__ptrie *t, struct cow__pnode *root,
			    size_t first, size_t end, struct cow__pnode **out)
{
	struct cow__pnode *nw;

	if (!cow__ptrie_any(t, root, first, end)) {
		*out = cow__pnode_ref(root);
		return 0;
	}
	COW_TRY(remove_range(t, root, t->height, 0, first, end, &nw));
	*out = nw;
	return 0;
}

struct cow__page *cow__ptrie_get(const struct cow__ptrie *t,
				 const struct cow__pnode *root, size_t page)
{
	const struct cow__pnode *n = root;

	if (!covered(t, page))
		return NULL;
	for (unsigned level = t->height; n && level > 1; level--)
		n = n->slot[(page >> shift_of(level)) & MASK];
	return n ? n->slot[page & MASK] : NULL;
}

/* Calls fn for the copies of n in [first, end), or with fn NULL returns 1
 * at the first one. */
static int walk(const struct cow__pnode *n, unsigned level, size_t base,
		size_t first, size_t end, cow__ptrie_fn fn, void *ctx)
{
	unsigned sh = shift_of(level);
	size_t span = (size_t)1 << sh;

	for (uint64_t m = n->bits & range_slots(level, base, first, end); m;
	     m &= m - 1) {
		unsigned i = lowest(m);
		size_t s0 = base + i * span;
		int r;

		if (level == 1)
			r = fn ? fn(ctx, s0, n->slot[i], NULL) : 1;
		else if (!fn && s0 >= first && s0 + span <= end)
			r = 1; /* no node is empty */
		else
			r = walk(n->slot[i], level - 1, s0, first, end, fn,
				 ctx);
		if (r)
			return r;
	}
	return 0;
}

int cow__ptrie_any(const struct cow__ptrie *t, const struct cow__pnode *root,
		   size_t first, size_t end)
{
	if (!root || first >= end || !covered(t, first))
		return 0;
	return walk(root, t->height, 0, first, end, NULL, NULL);
}

int cow__ptrie_each(const struct cow__ptrie *t, const struct cow__pnode *root,
		    size_t first, size_t end, cow__ptrie_fn fn, void *ctx)
{
	if (!root || first >= end || !covered(t, first))
		return 0;
	return walk(root, t->height, 0, first, end, fn, ctx);
}

static int diff(const struct cow__pnode *a, const struct cow__pnode *b,
		unsigned level, size_t base, cow__ptrie_fn fn, void *ctx)
{
	unsigned sh = shift_of(level);
	uint64_t m;

	if (a == b)
		return 0;
	m = (a ? a->bits : 0) | (b ? b->bits : 0);
	for (; m; m &= m - 1) {
		unsigned i = lowest(m);
		void *x = a ? a->slot[i] : NULL, *y = b ? b->slot[i] : NULL;
		int r;

		if (x == y)
			continue;
		if (level == 1)
			r = fn(ctx, base + i, x, y);
		else
			r = diff(x, y, level - 1, base + ((size_t)i << sh), fn,
				 ctx);
		if (r)
			return r;
	}
	return 0;
}

int cow__ptrie_diff(const struct cow__ptrie *t, const struct cow__pnode *a,
		    const struct cow__pnode *b, cow__ptrie_fn fn, void *ctx)
{
	return diff(a, b, t->height, 0, fn, ctx);
}
