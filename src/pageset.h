/* SPDX-License-Identifier: MIT */
/*
 * Sets of page numbers as ascending runs: the one container the layers use
 * for "these pages" (dirty pages found by a scan, the pages a commit
 * writes, the pages a rollback drops). Runs are kept merged: no two touch
 * or overlap, so the runs of a set are unique and a set compares equal to
 * another run by run.
 *
 * Adding in ascending order, as every scan reports, costs O(1) amortized;
 * an add out of order inserts (O(runs)). Page numbers are not bytes: the
 * public struct cow_range is bytes and is converted at the API.
 */
#ifndef COW_PAGESET_H
#define COW_PAGESET_H

#include <stddef.h>

/* Called with each run in order; a negative return stops the walk and is
 * returned. */
typedef int (*cow__run_fn)(void *ctx, size_t first_page, size_t npages);

struct cow__pagerun {
	size_t first, n;
};

struct cow__pageset {
	struct cow__pagerun *v; /* ascending, merged */
	size_t n, cap;		/* runs, and room for */
	size_t pages;		/* pages in all runs */
};

#define COW__PAGESET_INIT     \
	{                     \
		NULL, 0, 0, 0 \
	}

void cow__pageset_free(struct cow__pageset *s);
/* Empties s, keeping its memory for the next fill. */
void cow__pageset_clear(struct cow__pageset *s);
/* Adds pages [first, first + n); 0 or -ENOMEM (s unchanged). n = 0 adds
 * nothing. */
int cow__pageset_add(struct cow__pageset *s, size_t first, size_t n);
/* cow__pageset_add as a cow__run_fn, ctx the set: a scan fills a set. */
int cow__pageset_add_run(void *ctx, size_t first, size_t n);
int cow__pageset_contains(const struct cow__pageset *s, size_t page);
/* The runs of s clipped to [from, to), in order, to fn. */
int cow__pageset_each(const struct cow__pageset *s, size_t from, size_t to,
		      cow__run_fn fn, void *ctx);
/* Room for k more runs: 0 or -ENOMEM (s unchanged). */
int cow__pageset_reserve(struct cow__pageset *s, size_t k);
/* Takes pages [first, first + n) out. Splitting a run needs one run of
 * room: with cow__pageset_reserve(s, 1) done first it cannot fail, else
 * -ENOMEM (s unchanged). */
int cow__pageset_remove(struct cow__pageset *s, size_t first, size_t n);
/* The page numbers of s, ascending, in a new array (free with cow__free;
 * NULL when s is empty); 0 or -ENOMEM. */
int cow__pageset_pages(const struct cow__pageset *s, size_t **out);
/* Keeps only the pages in [from, to). Never fails. */
void cow__pageset_clip(struct cow__pageset *s, size_t from, size_t to);
/* The span from the first page to the end of the last: 0 and *first,
 * *end set, or -ENOENT for an empty set. */
int cow__pageset_span(const struct cow__pageset *s, size_t *first, size_t *end);
/* out = x | y, x - y, x & y. out must be another set than x and y (it is
 * cleared first); 0 or -ENOMEM (out then holds part of the result). */
int cow__pageset_union(struct cow__pageset *out, const struct cow__pageset *x,
		       const struct cow__pageset *y);
int cow__pageset_minus(struct cow__pageset *out, const struct cow__pageset *x,
		       const struct cow__pageset *y);
int cow__pageset_intersect(struct cow__pageset *out,
			   const struct cow__pageset *x,
			   const struct cow__pageset *y);

#endif
