// SPDX-License-Identifier: MIT
/*
 * cow_snap_diff: the page runs where one snapshot (or the arena's current
 * content) differs from another.
 *
 * Both snapshots map the pages where they differ from the base, and maps
 * that grew from each other share every subtree the pages written in
 * between did not touch (ptrie.c): walking the two maps together and
 * skipping the subtrees they share finds the candidates, the pages whose
 * copies differ, at a cost that follows those pages. The current content
 * is cur (the copies the arena's private pages still equal) overlaid with
 * the pages written since (snap.c), as a rollback sees it. Each candidate
 * is then compared byte for byte (a page rewritten with its own bytes, or
 * copied twice with the same content, is not a difference), reading the
 * base where one side maps none. Pages past the smaller of the two sizes
 * exist on one side only: they all differ.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "pagestore.h"
#include "ptrie.h"
#include "snap.h"
#include "snapdiff.h"

struct diff {
	struct cow_arena *a;
	const struct cow__ptrie *t;
	const struct cow__pnode *from;
	size_t limit;	     /* pages below both sizes */
	unsigned char *base; /* one page of the base, read on demand */
	/* the output: runs in bytes, adjacent pages merged */
	struct cow_range *out;
	size_t max, count;
	size_t run_first, run_end; /* pages of the run being built */
};

static void emit_flush(struct diff *d)
{
	if (d->run_end == d->run_first)
		return;
	if (d->count < d->max) {
		d->out[d->count].offset = d->run_first * d->a->pgsz;
		d->out[d->count].length =
		    (d->run_end - d->run_first) * d->a->pgsz;
	}
	d->count++;
}

static void emit(struct diff *d, size_t first, size_t n)
{
	if (d->run_end != d->run_first && d->run_end == first) {
		d->run_end += n;
		return;
	}
	emit_flush(d);
	d->run_first = first;
	d->run_end = first + n;
}

/* The page's content in a map that holds copy (NULL: the base's). */
static int content(struct diff *d, size_t page, const struct cow__page *copy,
		   const unsigned char **out)
{
	size_t pgsz = d->a->pgsz;
	ssize_t got;

	if (copy) {
		*out = copy->data;
		return 0;
	}
	got = cow__sys_pread(d->a->fd, d->base, pgsz, (off_t)(page * pgsz));
	if (got < 0)
		return (int)got;
	memset(d->base + got, 0, pgsz - (size_t)got); /* past the file's end */
	*out = d->base;
	return 0;
}

/* A candidate page of two snapshots: their copies differ. */
static int snap_page(void *ctx, size_t page, struct cow__page *x,
		     struct cow__page *y)
{
	struct diff *d = ctx;
	const unsigned char *cx, *cy;

	if (page >= d->limit)
		return 0; /* past one of the ends: the tail run has it */
	/* Both copies, or one copy and the base (never both NULL). */
	COW_TRY(content(d, page, x, &cx));
	COW_TRY(content(d, page, y, &cy));
	if (memcmp(cx, cy, d->a->pgsz))
		emit(d, page, 1);
	return 0;
}

/* A candidate page of a snapshot and now: compare with the arena. */
static int now_page(struct diff *d, size_t page)
{
	const unsigned char *cx;

	if (page >= d->limit)
		return 0;
	COW_TRY(content(d, page, cow__ptrie_get(d->t, d->from, page), &cx));
	if (memcmp(cx, d->a->base + page * d->a->pgsz, d->a->pgsz))
		emit(d, page, 1);
	return 0;
}

/* Pages where cur and from hold different copies. */
struct pagelist {
	size_t n, cap;
	size_t *v;
};

static int list_add(void *ctx, size_t page, struct cow__page *x,
		    struct cow__page *y)
{
	struct pagelist *l = ctx;
	size_t *v = cow__array_grow(l->v, &l->cap, l->n + 1, sizeof(*v), 64);

	(void)x;
	(void)y;
	if (!v)
		return -ENOMEM;
	l->v = v;
	l->v[l->n++] = page;
	return 0;
}

/* The current content's candidates: the pages written since cur recorded
 * them, and those where cur and from differ, merged in order. */
static int diff_now(struct diff *d)
{
	struct pagelist c = {0};
	size_t *w = NULL, nw = 0, i = 0, k = 0;
	int r;

	r = cow__snap_written(d->a, &w, &nw);
	if (r == 0)
		r = cow__ptrie_diff(d->t, cow__snap_cur(d->a), d->from,
				    list_add, &c);
	while (r == 0 && (i < nw || k < c.n)) {
		size_t p;

		if (k == c.n || (i < nw && w[i] <= c.v[k]))
			p = w[i];
		else
			p = c.v[k];
		while (i < nw && w[i] == p)
			i++;
		while (k < c.n && c.v[k] == p)
			k++;
		r = now_page(d, p);
	}
	cow__free(w);
	cow__free(c.v);
	return r;
}

ssize_t cow__snapdiff(struct cow_arena *a, const struct cow_snap *from,
		      const struct cow_snap *to, struct cow_range *out,
		      size_t max)
{
	struct diff d;
	size_t fs, ts, lo, hi;
	int r;

	memset(&d, 0, sizeof(d));
	d.a = a;
	d.t = cow__snap_trie(a);
	d.from = cow__snap_map(from);
	d.out = out;
	d.max = max;
	fs = cow__snap_size(from) / a->pgsz;
	ts = (to ? cow__snap_size(to) : a->size) / a->pgsz;
	lo = fs < ts ? fs : ts;
	hi = fs < ts ? ts : fs;
	d.limit = lo;
	d.base = cow__malloc(a->pgsz);
	if (!d.base)
		return -ENOMEM;
	if (to)
		r = cow__ptrie_diff(d.t, d.from, cow__snap_map(to), snap_page,
				    &d);
	else
		r = diff_now(&d);
	cow__free(d.base);
	if (r < 0)
		return r;
	if (hi > lo)
		emit(&d, lo, hi - lo);
	emit_flush(&d);
	return (ssize_t)d.count;
}
