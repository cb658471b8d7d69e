/* SPDX-License-Identifier: MIT */
/*
 * Saved page copies: reference counted, shared by the snapshots that hold
 * the same content for a page, and counted exactly (cow_stats).
 */
#ifndef COW_PAGESTORE_H
#define COW_PAGESTORE_H

#include <stddef.h>

struct cow__page {
	unsigned long ref;
	unsigned char data[]; /* one page */
};

/* What an arena's copies cost: copies live, bytes allocated for them (and
 * for the spare copies kept for reuse). */
struct cow__pagestore {
	size_t pages, bytes, pgsz;
	struct cow__page **spare;
	size_t nspare;
};

/* A new copy with one reference, or NULL when out of memory. */
struct cow__page *cow__page_new(struct cow__pagestore *ps);
static inline struct cow__page *cow__page_ref(struct cow__page *p)
{
	p->ref++;
	return p;
}
/* Drops a reference; the last one frees the copy. NULL is ignored. */
void cow__page_unref(struct cow__pagestore *ps, struct cow__page *p);
/* Frees spare copies down to keep, or all of them and their list. */
void cow__page_trim_to(struct cow__pagestore *ps, size_t keep);
void cow__page_trim(struct cow__pagestore *ps);

#endif
