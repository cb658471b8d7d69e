/* SPDX-License-Identifier: MIT */
/*
 * Saved page copies: reference counted, shared by the snapshots that hold
 * the same content for a page, and counted exactly (cow_stats).
 */
#ifndef COW_PAGESTORE_H
#define COW_PAGESTORE_H

#include <stddef.h>

/* The count lives apart from the bytes: taking or dropping a reference
 * (which a snapshot does for many copies at once) writes only the small
 * headers, never the pages. After a fork() every page of the process is
 * copy-on-write: a count inside each copy made every reference taken a
 * page fault (measured: 25 ms for one snapshot sharing 16,384 copies). */
struct cow__page {
	unsigned long ref;
	union {
		unsigned char *data;	/* one page */
		struct cow__page *next; /* a free header: the next one */
	};
};

/* What an arena's copies cost: copies live, bytes allocated for them (and
 * for the spare copies kept for reuse). */
struct cow__pagestore {
	size_t pages, bytes, pgsz;
	struct cow__page **spare;
	size_t nspare;
	/* Headers come in blocks, so that they sit close together. */
	struct cow__hdr_block *blocks;
	struct cow__page *free_hdr; /* linked through next */
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
/* Frees every spare copy and their list. */
void cow__page_trim(struct cow__pagestore *ps);

/* What the store holds (spares, header blocks) before a call that may fail
 * after allocating copies; rewinding after the failure (once the call's
 * copies were dropped) frees what it added, so that saved_bytes is as
 * before. */
struct cow__page_mark {
	size_t nspare;
	struct cow__hdr_block *blocks;
};
struct cow__page_mark cow__page_mark(const struct cow__pagestore *ps);
void cow__page_rewind(struct cow__pagestore *ps, struct cow__page_mark m);

#endif
