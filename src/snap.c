// SPDX-License-Identifier: MIT
/*
 * Snapshot tree and rollback.
 *
 * A snapshot is its size and a sorted map page -> saved copy for every page
 * that was private when it was taken; pages it does not map held the base.
 * Copies are shared (pagestore.c): a snapshot allocates copies only for the
 * pages written since the last snapshot or rollback, and shares the rest.
 * The arena keeps the same kind of map for its current state, `cur`: for
 * each private page not written since it was last recorded, the copy that
 * equals its content. So the pages that differ between now and a snapshot
 * S are the written ones, W, plus those where cur and S disagree: rollback
 * restores only those (and drops the pages past S's size), and never walks
 * the arena's pages. Snapshots are independent of each other, so any live
 * one can be the target, in any order, as often as wanted: a tree.
 *
 * W comes from the written-page tracking: userfaultfd write-protect
 * (track.c), or where that is unavailable, comparing each private page with
 * its copy in cur (a page with no copy there counts as written). Whenever
 * cur may no longer describe the private pages (discard, the last snapshot
 * released) it is emptied and the next harvest takes every private page as
 * written: always correct, only slower once.
 *
 * All or nothing: every allocation and every fallible read happens before
 * the first change. Arming pages after a change may fail: they then read as
 * written next time, which costs a copy, not correctness.
 *
 * A commit replaces the base content of the pages that are dirty at that
 * moment. Snapshots that read those pages from the base must keep the old
 * content: cow__snap_commit_prepare() saves what they need (it may fail
 * and then changes nothing) and cow__snap_commit_finish() attaches it once
 * the commit is the new base, or frees it when the commit failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "pagestore.h"

struct pent {
	size_t page;
	struct cow__page *copy;
};

/* Pages and their copies, sorted by page. */
struct pmap {
	size_t n;
	struct pent *v;
};

struct cow_snap {
	struct cow_arena *owner;
	struct cow_snap *prev, *next;
	size_t size; /* the arena's size when taken, bytes */
	struct pmap map;
};

struct cow__snaps {
	struct cow__pagestore ps;
	struct pmap cur;
	int rescan; /* cur is incomplete: take every private page as written */
	struct cow_snap *head;
	size_t count;
};

/* A growing sorted array of page numbers. */
struct pages {
	size_t n, cap;
	size_t *v;
};

static int pages_add(void *ctx, size_t first, size_t n)
{
	struct pages *p = ctx;

	if (p->n + n > p->cap) {
		size_t cap = p->cap ? p->cap : 64;
		size_t *v;

		while (cap < p->n + n)
			cap *= 2;
		v = cow__realloc(p->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	while (n--)
		p->v[p->n++] = first++;
	return 0;
}

/* cow__malloc that never returns NULL for an empty request. */
static void *alloc_array(size_t n, size_t sz)
{
	return cow__malloc((n ? n : 1) * sz);
}

static char *page_addr(const struct cow_arena *a, size_t page)
{
	return a->base + page * a->pgsz;
}

static void pmap_clear(struct cow__snaps *st, struct pmap *m)
{
	for (size_t i = 0; i < m->n; i++)
		cow__page_unref(&st->ps, m->v[i].copy);
	m->n = 0;
}

/* The copy m holds for page, or NULL (the base). */
static struct cow__page *pmap_find(const struct pmap *m, size_t page)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->v[mid].page == page)
			return m->v[mid].copy;
		if (m->v[mid].page < page)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The fallback tracking: a private page is written unless it equals the
 * copy cur holds for it. */
struct compare {
	const struct cow_arena *a;
	const struct pmap *cur;
	size_t i;
	struct pages *w;
};

static int compare_run(void *ctx, size_t first, size_t n)
{
	struct compare *c = ctx;

	for (size_t p = first; p < first + n; p++) {
		const struct pmap *m = c->cur;

		while (c->i < m->n && m->v[c->i].page < p)
			c->i++;
		if (c->i < m->n && m->v[c->i].page == p &&
		    !memcmp(m->v[c->i].copy->data, page_addr(c->a, p),
			    c->a->pgsz))
			continue;
		COW_TRY(pages_add(c->w, p, 1));
	}
	return 0;
}

/*
 * W: the private pages written since cur recorded them. With arm set (a
 * snapshot) the same walk arms them again: if the call fails later, cur
 * is marked incomplete so that nothing armed here is missed.
 */
static int harvest(struct cow_arena *a, struct pages *w, int arm)
{
	size_t npages = a->size / a->pgsz;
	struct compare c = {a, &a->snaps->cur, 0, w};
	unsigned how = (a->snaps->rescan ? COW__WRITTEN_ALL : 0) |
		       (arm ? COW__WRITTEN_ARM : 0);
	int r;

	if (a->tracking == COW_TRACK_UFFD_WP)
		r = cow__track_written(a, 0, npages, how, pages_add, w);
	else
		r = cow__track_dirty(a, 0, npages, compare_run, &c);
	if (r < 0) {
		cow__free(w->v);
		w->v = NULL;
	}
	return r;
}

/* Sets up the tracking at the first snapshot (userfaultfd if possible). */
static int tracking_start(struct cow_arena *a)
{
	struct cow__snaps *st;
	int r;

	if (a->snaps)
		return 0;
	st = cow__calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->ps.pgsz = a->pgsz;
	st->rescan = 1; /* nothing recorded yet: every private page counts */
	r = cow__track_uffd_open(a);
	if (r == 0) {
		a->tracking = COW_TRACK_UFFD_WP;
	} else if (r == -EOPNOTSUPP) {
		a->tracking = COW_TRACK_COMPARE;
	} else {
		cow__free(st);
		return r;
	}
	a->snaps = st;
	return 0;
}

static void tracking_stop(struct cow_arena *a)
{
	if (a->uffd >= 0)
		cow__track_uffd_close(a);
	if (a->snaps) {
		pmap_clear(a->snaps, &a->snaps->cur);
		cow__page_trim(&a->snaps->ps);
		cow__free(a->snaps->cur.v);
		cow__free(a->snaps);
	}
	a->snaps = NULL;
	a->tracking = COW_TRACK_NONE;
}

/* Number of entries in cur after the pages of w are added to it. */
static size_t merged_count(const struct pmap *cur, const struct pages *w)
{
	size_t i = 0, j = 0, n = 0;

	while (i < cur->n || j < w->n) {
		if (j < w->n && i < cur->n && cur->v[i].page == w->v[j])
			i++, j++;
		else if (j < w->n && (i == cur->n || w->v[j] < cur->v[i].page))
			j++;
		else
			i++;
		n++;
	}
	return n;
}

/* Builds into out the merge of cur with w's new copies; the replaced
 * copies of cur lose their reference. */
static void merge_cur(struct cow__snaps *st, const struct pages *w,
		      struct cow__page **copies, struct pent *out)
{
	const struct pmap *cur = &st->cur;
	size_t i = 0, j = 0, n = 0;

	while (i < cur->n || j < w->n) {
		if (j < w->n && (i == cur->n || w->v[j] <= cur->v[i].page)) {
			if (i < cur->n && cur->v[i].page == w->v[j])
				cow__page_unref(&st->ps, cur->v[i++].copy);
			out[n].page = w->v[j];
			out[n++].copy = copies[j++];
		} else {
			out[n++] = cur->v[i++];
		}
	}
}

COW_API int cow_snapshot(cow_arena *a, cow_snap **out)
{
	struct cow__page **copies = NULL;
	struct pages w = {0};
	struct cow__snaps *st;
	struct cow_snap *sn = NULL;
	struct pent *cur = NULL;
	size_t n, spare;
	int fresh, r;

	if (!a || !out)
		return -EINVAL;
	COW_TRY(cow__commit_settle(a));
	COW_TRY(cow__guard_check(a));
	fresh = !a->snaps;
	COW_TRY(tracking_start(a));
	st = a->snaps;
	spare = st->ps.nspare;
	r = harvest(a, &w, 1);
	if (r < 0)
		goto err;
	r = -ENOMEM;
	copies = cow__calloc(w.n ? w.n : 1, sizeof(*copies));
	if (!copies)
		goto err;
	for (size_t i = 0; i < w.n; i++)
		if (!(copies[i] = cow__page_new(&st->ps)))
			goto err;
	n = merged_count(&st->cur, &w);
	cur = alloc_array(n, sizeof(*cur));
	sn = cow__calloc(1, sizeof(*sn));
	if (!cur || !sn)
		goto err;
	sn->map.v = alloc_array(n, sizeof(*sn->map.v));
	if (!sn->map.v)
		goto err;

	/* Nothing can fail from here on. */
	for (size_t i = 0; i < w.n; i++)
		memcpy(copies[i]->data, page_addr(a, w.v[i]), a->pgsz);
	merge_cur(st, &w, copies, cur);
	cow__free(st->cur.v);
	st->cur.v = cur;
	st->cur.n = n;
	memcpy(sn->map.v, cur, n * sizeof(*cur));
	sn->map.n = n;
	for (size_t i = 0; i < n; i++)
		cow__page_ref(cur[i].copy);
	sn->owner = a;
	sn->size = a->size;
	sn->next = st->head;
	if (st->head)
		st->head->prev = sn;
	st->head = sn;
	st->count++;
	st->rescan = 0;
	cow__free(copies);
	cow__free(w.v);
	*out = sn;
	return 0;

err:
	if (copies)
		for (size_t i = 0; i < w.n; i++)
			cow__page_unref(&st->ps, copies[i]);
	cow__page_trim_to(&st->ps, spare); /* hold what was held before */
	cow__free(copies);
	cow__free(cur);
	if (sn)
		cow__free(sn->map.v);
	cow__free(sn);
	cow__free(w.v);
	st->rescan = 1; /* the harvest may have armed unrecorded pages */
	if (fresh)
		tracking_stop(a);
	return r;
}

/* What a rollback does to one page: copy from copy, or drop it (NULL). */
struct action {
	size_t page;
	struct cow__page *copy;
};

/* A run of pages to drop; armed: some may be write-protected. */
struct drop {
	size_t first, n;
	int armed;
};

struct plan {
	struct action *act; /* pages to restore, ascending */
	size_t nact;
	struct drop *drop; /* runs to drop, ascending */
	size_t ndrop;
};

static void plan_drop(struct plan *pl, size_t p, size_t n, int armed)
{
	struct drop *d = pl->ndrop ? &pl->drop[pl->ndrop - 1] : NULL;

	if (d && d->first + d->n == p) {
		d->n += n;
		d->armed |= armed;
		return;
	}
	d = &pl->drop[pl->ndrop++];
	d->first = p;
	d->n = n;
	d->armed = armed;
}

/* The pages that differ between now and s: W, and where cur and s differ. */
static int plan_rollback(struct cow_arena *a, const struct cow_snap *s,
			 const struct pages *w, struct plan *pl)
{
	const struct pmap *cur = &a->snaps->cur, *t = &s->map;
	size_t i = 0, j = 0, k = 0, limit = s->size / a->pgsz;
	int rescan = a->snaps->rescan;

	pl->act = alloc_array(w->n + cur->n + t->n, sizeof(*pl->act));
	pl->drop = alloc_array(w->n + cur->n + 1, sizeof(*pl->drop));
	if (!pl->act || !pl->drop)
		return -ENOMEM;
	while (i < w->n || j < cur->n || k < t->n) {
		size_t p = SIZE_MAX;
		struct cow__page *c = NULL, *to = NULL;
		int written = 0;

		if (i < w->n)
			p = w->v[i];
		if (j < cur->n && cur->v[j].page < p)
			p = cur->v[j].page;
		if (k < t->n && t->v[k].page < p)
			p = t->v[k].page;
		if (i < w->n && w->v[i] == p)
			written = 1, i++;
		if (j < cur->n && cur->v[j].page == p)
			c = cur->v[j++].copy;
		if (k < t->n && t->v[k].page == p)
			to = t->v[k++].copy;
		if (p >= limit || (!written && c == to))
			continue; /* past s's end: dropped below */
		pl->act[pl->nact].page = p;
		pl->act[pl->nact++].copy = to;
		/* A written page is not write-protected any more. */
		if (!to)
			plan_drop(pl, p, 1, !written || rescan);
	}
	if (a->size > s->size)
		plan_drop(pl, limit, a->size / a->pgsz - limit, 1);
	return 0;
}

/* Whether s holds a copy of any page in [first, end). */
static int holds_any(const struct cow_snap *s, size_t first, size_t end)
{
	size_t lo = 0, hi = s->map.n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->map.v[mid].page < first)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->map.n && s->map.v[lo].page < end;
}

static int drop_range(struct cow_arena *a, size_t first, size_t n)
{
	return cow__sys_madvise(page_addr(a, first), n * a->pgsz,
				MADV_DONTNEED);
}

/*
 * Drops the planned runs, unarming them first: a dropped armed page would
 * leave a tracking marker (see cow__track_unarm).
 *
 * When no page that stays private lies between the first and the last
 * run, one call over their span does it all: it either drops everything
 * or changes nothing (pages in between are clean; dropping them is a
 * no-op). Otherwise each run is dropped alone; if a run after the first
 * fails, the rest are dropped with one call over their span, as above,
 * and *span_from..*span_to tells where: the pages s holds copies of there
 * were dropped too and are copied back. Only a failure of the first call,
 * which changed nothing, or of that span call is returned.
 */
static int drop_plan(struct cow_arena *a, const struct cow_snap *s,
		     const struct plan *pl, size_t *span_from, size_t *span_to)
{
	const struct drop *l = &pl->drop[pl->ndrop - 1];
	size_t first = pl->drop[0].first, end = l->first + l->n;

	if (!holds_any(s, first, end)) {
		/* Clean pages between the runs may be armed file pages. */
		COW_TRY(cow__track_unarm(a, first, end - first));
		return drop_range(a, first, end - first);
	}
	for (size_t i = 0; i < pl->ndrop; i++)
		if (pl->drop[i].armed)
			COW_TRY(cow__track_unarm(a, pl->drop[i].first,
						 pl->drop[i].n));
	for (size_t i = 0; i < pl->ndrop; i++) {
		const struct drop *d = &pl->drop[i];
		int r = drop_range(a, d->first, d->n);

		if (r == 0)
			continue;
		if (i == 0)
			return r;
		*span_from = d->first;
		*span_to = end;
		/* Pages between the runs may be armed: never leave markers. */
		(void)cow__track_unarm(a, d->first, end - d->first);
		return drop_range(a, d->first, end - d->first);
	}
	return 0;
}

/* Arms the copied pages of the plan, one ioctl per run. */
static void arm_plan_runs(struct cow_arena *a, const struct plan *pl)
{
	size_t first = 0, n = 0;

	for (size_t i = 0; i <= pl->nact; i++) {
		const struct action *x = i < pl->nact ? &pl->act[i] : NULL;

		if (x && !x->copy)
			continue;
		if (x && n && first + n == x->page) {
			n++;
			continue;
		}
		/* A failure leaves them counting as written: harmless. */
		if (n)
			(void)cow__track_arm(a, first, n);
		if (x) {
			first = x->page;
			n = 1;
		}
	}
}

/*
 * Restores the planned copies (and, after a span drop, every page of s in
 * the span), then arms what was copied: the only pages written in their
 * span now are those just copied. One walk over the span costs about 35 ns
 * per page-table entry present, one ioctl per run about 1.5 us (measured):
 * few runs far apart are armed run by run.
 */
static void copy_plan(struct cow_arena *a, const struct cow_snap *s,
		      const struct plan *pl, size_t span_from, size_t span_to)
{
	size_t lo = SIZE_MAX, hi = 0, runs = 0;

	for (size_t i = 0; i < pl->nact; i++) {
		const struct action *x = &pl->act[i];

		if (!x->copy)
			continue;
		memcpy(page_addr(a, x->page), x->copy->data, a->pgsz);
		runs += hi != x->page;
		lo = lo < x->page ? lo : x->page;
		hi = x->page + 1;
	}
	for (size_t i = 0; i < s->map.n; i++) {
		const struct pent *e = &s->map.v[i];

		if (e->page < span_from || e->page >= span_to)
			continue;
		memcpy(page_addr(a, e->page), e->copy->data, a->pgsz);
		lo = lo < e->page ? lo : e->page;
		hi = hi > e->page + 1 ? hi : e->page + 1;
	}
	if (hi <= lo || a->tracking != COW_TRACK_UFFD_WP)
		return;
	if (!span_to && runs * 64 <= hi - lo)
		arm_plan_runs(a, pl);
	else
		(void)cow__track_arm_written(a, lo, hi - lo);
}

COW_API int cow_rollback(cow_arena *a, cow_snap *s)
{
	size_t span_from = 0, span_to = 0;
	struct plan pl = {0};
	struct pages w = {0};
	struct cow__snaps *st;
	struct pent *cur = NULL;
	int r;

	if (!a || !s || s->owner != a)
		return -EINVAL;
	COW_TRY(cow__commit_settle(a));
	COW_TRY(cow__guard_check(a));
	st = a->snaps;
	r = harvest(a, &w, 0);
	if (r < 0)
		return r;
	r = plan_rollback(a, s, &w, &pl);
	if (r < 0)
		goto out;
	r = -ENOMEM;
	cur = alloc_array(s->map.n, sizeof(*cur));
	if (!cur)
		goto out;
	/* The base is never shorter than any size the arena had: files are
	 * only extended (a truncation from outside makes the arena stale,
	 * refused above), so the pages up to s->size are backed. */
	r = pl.ndrop ? drop_plan(a, s, &pl, &span_from, &span_to) : 0;
	if (r < 0) {
		if (span_to)
			cow__snap_forget(a); /* partly done: cur unknown */
		goto out;
	}

	/* Nothing can fail from here on. */
	copy_plan(a, s, &pl, span_from, span_to);
	memcpy(cur, s->map.v, s->map.n * sizeof(*cur));
	for (size_t i = 0; i < s->map.n; i++)
		cow__page_ref(cur[i].copy);
	pmap_clear(st, &st->cur);
	cow__free(st->cur.v);
	st->cur.v = cur;
	st->cur.n = s->map.n;
	cur = NULL;
	st->rescan = 0;
	a->size = s->size;
out:
	cow__free(cur);
	cow__free(pl.act);
	cow__free(pl.drop);
	cow__free(w.v);
	return r;
}

COW_API void cow_snap_release(cow_snap *s)
{
	struct cow_arena *a;
	struct cow__snaps *st;

	if (!s)
		return;
	a = s->owner;
	st = a->snaps;
	if (s->prev)
		s->prev->next = s->next;
	else
		st->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	pmap_clear(st, &s->map);
	cow__free(s->map.v);
	cow__free(s);
	/* cur only serves snapshots: with none left, hold no copies. */
	if (--st->count == 0) {
		cow__snap_forget(a);
		cow__page_trim(&st->ps);
	}
}

/*
 * Switches to the compare tracking, which any state allows: a written page
 * either has no copy in cur or differs from it. Closing the userfaultfd
 * unregisters the mapping and drops its write-protection.
 */
void cow__snap_track_compare(struct cow_arena *a)
{
	if (a->tracking != COW_TRACK_UFFD_WP)
		return;
	cow__track_uffd_close(a);
	a->tracking = COW_TRACK_COMPARE;
}

void cow__snap_forget(struct cow_arena *a)
{
	if (!a->snaps)
		return;
	pmap_clear(a->snaps, &a->snaps->cur);
	a->snaps->rescan = 1;
}

/* The reverted pages hold the base now: cur has no copy for them. */
void cow__snap_reverted(struct cow_arena *a, size_t first_page, size_t npages)
{
	struct pmap *m;
	size_t n = 0;

	if (!a->snaps)
		return;
	m = &a->snaps->cur;
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].page >= first_page &&
		    m->v[i].page < first_page + npages)
			cow__page_unref(&a->snaps->ps, m->v[i].copy);
		else
			m->v[n++] = m->v[i];
	}
	m->n = n;
}

void cow__snap_close(struct cow_arena *a)
{
	while (a->snaps && a->snaps->head)
		cow_snap_release(a->snaps->head);
	tracking_stop(a);
}

void cow__snap_stats(const struct cow_arena *a, struct cow_stats *st)
{
	st->tracking = a->tracking;
	if (!a->snaps)
		return;
	st->snapshots = a->snaps->count;
	st->saved_pages = a->snaps->ps.pages;
	st->saved_bytes = a->snaps->ps.bytes;
}

/*
 * Commit hooks. The token holds, for each page about to get a new base
 * that some snapshot reads from the base, a copy of the old base content,
 * and for each snapshot its map with those pages added (allocated here so
 * that finish cannot fail).
 */
struct commit_snap {
	struct cow_snap *s;
	struct pent *v;
	size_t n;
};

struct commit_token {
	size_t spare; /* spare copies before prepare: kept after a failure */
	struct pmap saved;
	struct commit_snap *snaps;
	size_t nsnaps;
};

static int needs_old_base(const struct cow_snap *s, size_t page, size_t pgsz)
{
	return page < s->size / pgsz && !pmap_find(&s->map, page);
}

static void token_free(struct cow_arena *a, struct commit_token *t,
		       int committed)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->saved.n; i++)
		cow__page_unref(&a->snaps->ps, t->saved.v[i].copy);
	if (!committed)
		cow__page_trim_to(&a->snaps->ps, t->spare);
	cow__free(t->saved.v);
	if (t->snaps)
		for (size_t i = 0; i < t->nsnaps; i++)
			cow__free(t->snaps[i].v);
	cow__free(t->snaps);
	cow__free(t);
}

/* Reads the old base content of the page into c (zeros past the file). */
static int read_base(struct cow_arena *a, size_t page, struct cow__page *c)
{
	ssize_t got =
	    cow__sys_pread(a->fd, c->data, a->pgsz, (off_t)(page * a->pgsz));

	if (got < 0)
		return (int)got;
	memset(c->data + got, 0, a->pgsz - (size_t)got);
	return 0;
}

static int save_old_base(struct cow_arena *a, const struct pages *d,
			 struct commit_token *t)
{
	t->saved.v = alloc_array(d->n, sizeof(*t->saved.v));
	if (!t->saved.v)
		return -ENOMEM;
	for (size_t i = 0; i < d->n; i++) {
		struct cow_snap *s;
		struct cow__page *c;

		for (s = a->snaps->head; s; s = s->next)
			if (needs_old_base(s, d->v[i], a->pgsz))
				break;
		if (!s)
			continue;
		c = cow__page_new(&a->snaps->ps);
		if (!c)
			return -ENOMEM;
		t->saved.v[t->saved.n].page = d->v[i];
		t->saved.v[t->saved.n++].copy = c;
		COW_TRY(read_base(a, d->v[i], c));
	}
	return 0;
}

int cow__snap_commit_prepare(struct cow_arena *a, void **token)
{
	struct commit_token *t;
	struct pages d = {0};
	size_t i = 0;
	int r;

	*token = NULL;
	if (!a->snaps)
		return 0;
	t = cow__calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->spare = a->snaps->ps.nspare;
	r = cow__track_dirty(a, 0, a->size / a->pgsz, pages_add, &d);
	if (r == 0)
		r = save_old_base(a, &d, t);
	/* The commit drops the dirty pages: unarm them first, so that no
	 * tracking marker is left behind (see cow__track_unarm). */
	if (r == 0 && d.n)
		r = cow__track_unarm(a, d.v[0], d.v[d.n - 1] + 1 - d.v[0]);
	cow__free(d.v);
	if (r < 0)
		goto err;
	r = -ENOMEM;
	t->snaps = cow__calloc(a->snaps->count + 1, sizeof(*t->snaps));
	if (!t->snaps)
		goto err;
	t->nsnaps = a->snaps->count;
	for (struct cow_snap *s = a->snaps->head; s; s = s->next, i++) {
		size_t add = 0;

		for (size_t k = 0; k < t->saved.n; k++)
			add += needs_old_base(s, t->saved.v[k].page, a->pgsz);
		t->snaps[i].s = s;
		t->snaps[i].v =
		    alloc_array(s->map.n + add, sizeof(struct pent));
		if (!t->snaps[i].v)
			goto err;
	}
	*token = t;
	return 0;
err:
	token_free(a, t, 0);
	return r;
}

/* Adds to s's map the saved old base of each page s read from the base. */
static void attach_old_base(struct cow_arena *a, struct commit_snap *cs,
			    const struct pmap *saved)
{
	struct cow_snap *s = cs->s;
	size_t i = 0, k = 0, n = 0;

	while (i < s->map.n || k < saved->n) {
		if (k < saved->n &&
		    !needs_old_base(s, saved->v[k].page, a->pgsz)) {
			k++;
		} else if (k < saved->n &&
			   (i == s->map.n ||
			    saved->v[k].page < s->map.v[i].page)) {
			cs->v[n].page = saved->v[k].page;
			cs->v[n++].copy = cow__page_ref(saved->v[k++].copy);
		} else {
			cs->v[n++] = s->map.v[i++];
		}
	}
	cow__free(s->map.v);
	s->map.v = cs->v;
	s->map.n = n;
	cs->v = NULL;
}

void cow__snap_commit_finish(struct cow_arena *a, void *token, int committed)
{
	struct commit_token *t = token;

	if (committed && t)
		for (size_t i = 0; i < t->nsnaps; i++)
			attach_old_base(a, &t->snaps[i], &t->saved);
	/* Every page equals the new base now: cur records nothing. */
	if (committed)
		cow__snap_forget(a);
	token_free(a, t, committed);
}
