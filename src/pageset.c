// SPDX-License-Identifier: MIT
/*
 * Sets of page numbers as ascending merged runs (pageset.h). Scans report
 * runs in ascending order, so the add path is an append that merges with
 * the last run; an add out of order is rare and takes an insert. The set
 * operations walk both inputs once.
 */
#include <errno.h>
#include <string.h>

#include "pageset.h"
#include "sys.h"

void cow__pageset_free(struct cow__pageset *s)
{
	cow__free(s->v);
	*s = (struct cow__pageset)COW__PAGESET_INIT;
}

void cow__pageset_clear(struct cow__pageset *s)
{
	s->n = 0;
	s->pages = 0;
}

static int reserve_runs(struct cow__pageset *s, size_t need)
{
	struct cow__pagerun *v;

	v = cow__array_grow(s->v, &s->cap, need, sizeof(*v), 16);
	if (!v)
		return -ENOMEM;
	s->v = v;
	return 0;
}

/* The first run that ends at or after page (touching it counts), or n. */
static size_t first_reaching(const struct cow__pageset *s, size_t page)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].first + s->v[mid].n < page)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Out of order: runs i..j-1 touch [first, end) and merge into one. */
static int insert_run(struct cow__pageset *s, size_t first, size_t end)
{
	size_t i = first_reaching(s, first), j = i, covered = 0;

	while (j < s->n && s->v[j].first <= end) {
		if (s->v[j].first < first)
			first = s->v[j].first;
		if (s->v[j].first + s->v[j].n > end)
			end = s->v[j].first + s->v[j].n;
		covered += s->v[j].n;
		j++;
	}
	if (i == j) {
		COW_TRY(reserve_runs(s, s->n + 1));
		memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
		s->n++;
	} else if (j > i + 1) {
		memmove(&s->v[i + 1], &s->v[j], (s->n - j) * sizeof(*s->v));
		s->n -= j - i - 1;
	}
	s->v[i].first = first;
	s->v[i].n = end - first;
	s->pages += end - first - covered;
	return 0;
}

int cow__pageset_add(struct cow__pageset *s, size_t first, size_t n)
{
	struct cow__pagerun *last;

	if (n == 0)
		return 0;
	last = s->n ? &s->v[s->n - 1] : NULL;
	if (last && first < last->first)
		return insert_run(s, first, first + n);
	if (last && first <= last->first + last->n) {
		size_t end = last->first + last->n;

		if (first + n > end) {
			s->pages += first + n - end;
			last->n = first + n - last->first;
		}
		return 0;
	}
	COW_TRY(reserve_runs(s, s->n + 1));
	s->v[s->n].first = first;
	s->v[s->n].n = n;
	s->n++;
	s->pages += n;
	return 0;
}

int cow__pageset_add_run(void *ctx, size_t first, size_t n)
{
	return cow__pageset_add(ctx, first, n);
}

int cow__pageset_contains(const struct cow__pageset *s, size_t page)
{
	size_t i = first_reaching(s, page + 1);

	/* runs before i end before page: v[i] is the only candidate */
	return i < s->n && s->v[i].first <= page &&
	       page < s->v[i].first + s->v[i].n;
}

int cow__pageset_each(const struct cow__pageset *s, size_t from, size_t to,
		      cow__run_fn fn, void *ctx)
{
	for (size_t i = first_reaching(s, from); i < s->n; i++) {
		size_t first = s->v[i].first, end = first + s->v[i].n;

		if (first >= to)
			break;
		if (first < from)
			first = from;
		if (end > to)
			end = to;
		if (first < end) {
			int r = fn(ctx, first, end - first);

			if (r < 0)
				return r;
		}
	}
	return 0;
}

int cow__pageset_reserve(struct cow__pageset *s, size_t k)
{
	return k ? reserve_runs(s, s->n + k) : 0;
}

int cow__pageset_remove(struct cow__pageset *s, size_t first, size_t n)
{
	size_t end = first + n, i = first_reaching(s, first + 1), j = i;

	if (n == 0 || i == s->n || s->v[i].first >= end)
		return 0;
	/* The one run that holds the range inside it splits in two. */
	if (s->v[i].first < first && s->v[i].first + s->v[i].n > end) {
		COW_TRY(reserve_runs(s, s->n + 1));
		memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
		s->n++;
		s->v[i].n = first - s->v[i].first;
		s->v[i + 1].n -= end - s->v[i + 1].first;
		s->v[i + 1].first = end;
		s->pages -= n;
		return 0;
	}
	/* Else the range cuts the tail of v[i], whole runs, and the head of
	 * the last run it reaches: runs i..j-1 go. */
	if (s->v[i].first < first) {
		s->pages -= s->v[i].first + s->v[i].n - first;
		s->v[i].n = first - s->v[i].first;
		i++;
		j = i;
	}
	while (j < s->n && s->v[j].first + s->v[j].n <= end) {
		s->pages -= s->v[j].n;
		j++;
	}
	if (j < s->n && s->v[j].first < end) {
		s->pages -= end - s->v[j].first;
		s->v[j].n -= end - s->v[j].first;
		s->v[j].first = end;
	}
	memmove(&s->v[i], &s->v[j], (s->n - j) * sizeof(*s->v));
	s->n -= j - i;
	return 0;
}

int cow__pageset_pages(const struct cow__pageset *s, size_t **out)
{
	size_t *v = NULL, k = 0;

	if (s->pages) {
		v = cow__mallocarray(s->pages, sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	for (size_t i = 0; i < s->n; i++)
		for (size_t p = s->v[i].first; p < s->v[i].first + s->v[i].n;
		     p++)
			v[k++] = p;
	*out = v;
	return 0;
}

void cow__pageset_clip(struct cow__pageset *s, size_t from, size_t to)
{
	size_t k = 0;

	s->pages = 0;
	for (size_t i = 0; i < s->n; i++) {
		size_t first = s->v[i].first, end = first + s->v[i].n;

		if (first < from)
			first = from;
		if (end > to)
			end = to;
		if (first >= end)
			continue;
		s->v[k].first = first;
		s->v[k++].n = end - first;
		s->pages += end - first;
	}
	s->n = k;
}

int cow__pageset_span(const struct cow__pageset *s, size_t *first, size_t *end)
{
	if (!s->n)
		return -ENOENT;
	*first = s->v[0].first;
	*end = s->v[s->n - 1].first + s->v[s->n - 1].n;
	return 0;
}

int cow__pageset_union(struct cow__pageset *out, const struct cow__pageset *x,
		       const struct cow__pageset *y)
{
	size_t i = 0, j = 0;

	cow__pageset_clear(out);
	while (i < x->n || j < y->n) {
		const struct cow__pagerun *r;

		if (j == y->n || (i < x->n && x->v[i].first <= y->v[j].first))
			r = &x->v[i++];
		else
			r = &y->v[j++];
		COW_TRY(cow__pageset_add(out, r->first, r->n));
	}
	return 0;
}

/* out = x - y (keep 0) or x & y (keep 1): each run of x split at y's. */
static int split_by(struct cow__pageset *out, const struct cow__pageset *x,
		    const struct cow__pageset *y, int keep)
{
	size_t j = 0;

	cow__pageset_clear(out);
	for (size_t i = 0; i < x->n; i++) {
		size_t p = x->v[i].first, end = p + x->v[i].n;

		while (p < end) {
			size_t yf, ye;

			while (j < y->n && y->v[j].first + y->v[j].n <= p)
				j++;
			if (j == y->n || y->v[j].first >= end) {
				if (!keep)
					COW_TRY(
					    cow__pageset_add(out, p, end - p));
				break;
			}
			yf = y->v[j].first;
			ye = yf + y->v[j].n;
			if (yf > p && !keep)
				COW_TRY(cow__pageset_add(out, p, yf - p));
			if (yf < p)
				yf = p;
			if (ye > end)
				ye = end;
			if (keep)
				COW_TRY(cow__pageset_add(out, yf, ye - yf));
			p = ye;
		}
	}
	return 0;
}

int cow__pageset_minus(struct cow__pageset *out, const struct cow__pageset *x,
		       const struct cow__pageset *y)
{
	return split_by(out, x, y, 0);
}

int cow__pageset_intersect(struct cow__pageset *out,
			   const struct cow__pageset *x,
			   const struct cow__pageset *y)
{
	return split_by(out, x, y, 1);
}
