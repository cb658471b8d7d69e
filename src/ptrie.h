/* SPDX-License-Identifier: MIT */
/*
 * Persistent page maps: page number -> saved copy (pagestore.h), as an
 * immutable radix trie whose nodes are reference counted and shared.
 *
 * A tree is a root pointer; NULL is the empty tree. Nothing ever changes a
 * node that is in a tree: an update copies the path to each changed slot
 * and shares everything else, so a snapshot of a map is one more reference
 * on its root, and two maps that grew from each other differ in few nodes,
 * found without looking at the shared ones.
 *
 * Every node has 64 slots (6 bits of the page number per level); all
 * leaves are at the same depth, the tree's height, fixed for an arena so
 * that 64^height pages cover its reservation. A leaf slot holds a copy
 * (and one reference on it), an interior slot a child node (and one
 * reference on it); NULL is an empty slot: the page reads the base. No
 * node in a tree is empty.
 */
#ifndef COW_PTRIE_H
#define COW_PTRIE_H

#include <stddef.h>
#include <stdint.h>

struct cow__page;
struct cow__pagestore;

#define COW__PTRIE_BITS 6
#define COW__PTRIE_FAN (1u << COW__PTRIE_BITS)

struct cow__pnode {
	unsigned long ref;
	uint64_t bits; /* the slots in use */
	void *slot[COW__PTRIE_FAN];
};

/* How a family of trees is shaped, and where their copies live. */
struct cow__ptrie {
	unsigned height;	   /* levels; leaves are level 1 */
	struct cow__pagestore *ps; /* the copies' references go back here */
};

/* The height whose trees cover pages [0, npages). */
unsigned cow__ptrie_height(size_t npages);

static inline struct cow__pnode *cow__pnode_ref(struct cow__pnode *root)
{
	if (root)
		root->ref++;
	return root;
}

/* Drops a reference on a tree; the nodes that only it held are freed and
 * drop theirs on their children and copies. NULL is ignored. */
void cow__pnode_unref(const struct cow__ptrie *t, struct cow__pnode *root);

/*
 * Builds into *out (one reference) root with the n pages of pages (strictly
 * ascending, each below 64^height) mapped to copies[i], or removed where
 * copies[i] is NULL. The new tree takes a reference on each copy it adds.
 * root is never changed. Returns 0, or -ENOMEM: then nothing was built and
 * *out is untouched.
 */
int cow__ptrie_insert(const struct cow__ptrie *t, struct cow__pnode *root,
		      const size_t *pages, struct cow__page *const *copies,
		      size_t n, struct cow__pnode **out);

/* The same for removing every page in [first, end). */
int cow__ptrie_remove_range(const struct cow__ptrie *t, struct cow__pnode *root,
			    size_t first, size_t end, struct cow__pnode **out);

/* The copy root maps page to, or NULL. */
struct cow__page *cow__ptrie_get(const struct cow__ptrie *t,
				 const struct cow__pnode *root, size_t page);

/* Whether root maps any page in [first, end). */
int cow__ptrie_any(const struct cow__ptrie *t, const struct cow__pnode *root,
		   size_t first, size_t end);

/* Called with a page and its copies in two trees (NULL: not mapped); a
 * nonzero return stops the walk and is returned. */
typedef int (*cow__ptrie_fn)(void *ctx, size_t page, struct cow__page *a,
			     struct cow__page *b);

/* Calls fn for each page where a and b map different copies, ascending.
 * Subtrees they share are skipped: the cost follows the nodes that
 * differ. */
int cow__ptrie_diff(const struct cow__ptrie *t, const struct cow__pnode *a,
		    const struct cow__pnode *b, cow__ptrie_fn fn, void *ctx);

/* Calls fn(ctx, page, copy, NULL) for each page root maps in [first, end),
 * ascending. */
int cow__ptrie_each(const struct cow__ptrie *t, const struct cow__pnode *root,
		    size_t first, size_t end, cow__ptrie_fn fn, void *ctx);

#endif
