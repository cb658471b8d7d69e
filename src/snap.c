// SPDX-License-Identifier: MIT
/*
 * Snapshot tree and rollback.
 *
 * A snapshot is its size and a map page -> saved copy for every page that
 * was private when it was taken; pages it does not map held the base.
 * Copies are shared (pagestore.c): a snapshot allocates copies only for the
 * pages written since the last snapshot or rollback, and shares the rest.
 * The arena keeps the same kind of map for its current state, `cur`: for
 * each private page not written since it was last recorded, the copy that
 * equals its content. The maps are persistent tries (ptrie.c): a snapshot
 * is one more reference on cur's root once the written pages are in it,
 * and maps that grew from each other share all but the paths to the pages
 * that changed in between. So the pages that differ between now and a
 * snapshot S are the written ones, W, plus those where cur and S disagree,
 * found by walking only the nodes they do not share: rollback restores
 * only those (and drops the pages past S's size), and neither it, nor a
 * snapshot, nor a release walks the arena's pages or a whole map.
 * Snapshots are independent of each other, so any live one can be the
 * target, in any order, as often as wanted: a tree.
 *
 * W comes from the written-page tracking: userfaultfd write-protect
 * (track.c, which owns the set of armed pages), or where that is
 * unavailable, comparing each private page with its copy in cur (a page
 * with no copy there counts as written). cur must hold the content of
 * every armed page (an armed page is never reported written). Whenever cur
 * may no longer do so (a commit, a discard, the last snapshot released, a
 * failure half way) it is emptied and marked partial, and the next harvest
 * adds the armed pages it lacks to W: always correct, only a copy more.
 *
 * All or nothing: every allocation and every fallible read happens before
 * the first change. Arming pages after a change may fail: they then read as
 * written next time, which costs a copy, not correctness.
 *
 * A commit replaces the base content of the pages that are dirty at that
 * moment. Snapshots that read those pages from the base must keep the old
 * content: cow__snap_commit_prepare() saves what they need and builds
 * their new maps (it may fail and then changes nothing), and
 * cow__snap_commit_finish() installs those once the commit is the new
 * base, or frees them when the commit failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "pagestore.h"
#include "ptrie.h"
#include "snap.h"
#include "track.h"

struct cow_snap {
	struct cow_arena *owner;
	struct cow_snap *prev, *next;
	size_t size;		/* the arena's size when taken, bytes */
	struct cow__pnode *map; /* one reference */
};

struct cow__snaps {
	struct cow__pagestore ps;
	struct cow__ptrie trie; /* the shape of every map of the arena */
	struct cow__pnode *cur; /* one reference */
	/* cur may lack the content of armed pages: the next harvest takes
	 * those as written (add_unrecorded) */
	int partial;
	int snapped; /* a snapshot was taken: cow_stats reports the tracking */
	struct cow_snap *head;
	size_t count;
};

static char *page_addr(const struct cow_arena *a, size_t page)
{
	return a->base + page * a->pgsz;
}

/* The fallback tracking: a private page is written unless it equals the
 * copy cur holds for it. */
struct compare {
	const struct cow_arena *a;
	struct cow__pageset *w;
};

static int compare_run(void *ctx, size_t first, size_t n)
{
	struct compare *c = ctx;
	const struct cow__snaps *st = c->a->snaps;

	for (size_t p = first; p < first + n; p++) {
		const struct cow__page *copy =
		    cow__ptrie_get(&st->trie, st->cur, p);

		if (copy && !memcmp(copy->data, page_addr(c->a, p), c->a->pgsz))
			continue;
		COW_TRY(cow__pageset_add(c->w, p, 1));
	}
	return 0;
}

/* The armed pages cur holds no copy of (all of them when cur is empty),
 * added to w: their content was not recorded, and they are not reported
 * written. */
static int add_unrecorded(struct cow_arena *a, struct cow__pageset *w)
{
	const struct cow__pageset *armed = cow__track_armed(a);
	const struct cow__snaps *st = a->snaps;
	size_t npages = a->size / a->pgsz;

	for (size_t i = 0; i < armed->n; i++)
		for (size_t p = armed->v[i].first;
		     p < armed->v[i].first + armed->v[i].n && p < npages; p++)
			if (!st->cur || !cow__ptrie_get(&st->trie, st->cur, p))
				COW_TRY(cow__pageset_add(w, p, 1));
	return 0;
}

/*
 * W: the private pages written since cur recorded them. With arm set (a
 * snapshot) the same walk arms them again: if the call fails later, cur
 * is marked incomplete so that nothing armed here is missed.
 */
static int harvest(struct cow_arena *a, struct cow__pageset *w, int arm)
{
	size_t npages = a->size / a->pgsz;
	struct compare c = {a, w};
	/* No file page is reported: a rollback leaves the pages only read
	 * since the snapshot mapped. */
	unsigned how = arm ? COW__WRITTEN_ARM : 0;
	int r;

	if (a->track.mode == COW_TRACK_UFFD_WP) {
		r = cow__track_written(a, 0, npages, how, cow__pageset_add_run,
				       w);
		if (r == 0 && a->snaps->partial)
			r = add_unrecorded(a, w);
	} else {
		r = cow__track_dirty(a, 0, npages, NULL, compare_run, &c);
	}
	if (r < 0)
		cow__pageset_free(w);
	return r;
}

/* The snapshot state, at the first snapshot: cur empty and partial. */
static int snaps_start(struct cow_arena *a)
{
	struct cow__snaps *st;

	if (a->snaps)
		return 0;
	st = cow__calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->ps.pgsz = a->pgsz;
	/* The reservation never changes: every page the arena can have. */
	st->trie.height = cow__ptrie_height(a->reserve / a->pgsz);
	st->trie.ps = &st->ps;
	st->partial = 1;
	a->snaps = st;
	return 0;
}

static void snaps_stop(struct cow_arena *a)
{
	if (a->snaps) {
		cow__pnode_unref(&a->snaps->trie, a->snaps->cur);
		cow__page_trim(&a->snaps->ps);
		cow__free(a->snaps);
	}
	a->snaps = NULL;
}

/* Links a new snapshot of the arena with map (its reference) and size. */
static void snap_link(struct cow_arena *a, struct cow_snap *sn,
		      struct cow__pnode *map, size_t size)
{
	struct cow__snaps *st = a->snaps;

	sn->map = map;
	sn->owner = a;
	sn->size = size;
	sn->prev = NULL;
	sn->next = st->head;
	if (st->head)
		st->head->prev = sn;
	st->head = sn;
	st->count++;
	st->snapped = 1;
}

int cow__snap_take(struct cow_arena *a, struct cow_snap **out)
{
	struct cow__page **copies = NULL;
	struct cow__pageset w = COW__PAGESET_INIT;
	size_t *pages = NULL;
	struct cow__snaps *st;
	struct cow_snap *sn = NULL;
	struct cow__pnode *cur;
	struct cow__page_mark mark;
	int fresh, started, r;

	fresh = !a->snaps;
	started = a->track.mode == COW_TRACK_NONE;
	COW_TRY(cow__track_start(a));
	r = snaps_start(a);
	if (r < 0)
		goto err_track;
	st = a->snaps;
	mark = cow__page_mark(&st->ps);
	r = harvest(a, &w, 1);
	if (r == 0)
		r = cow__pageset_pages(&w, &pages);
	if (r < 0)
		goto err;
	r = -ENOMEM;
	copies = cow__calloc(w.pages ? w.pages : 1, sizeof(*copies));
	if (!copies)
		goto err;
	for (size_t i = 0; i < w.pages; i++)
		if (!(copies[i] = cow__page_new(&st->ps)))
			goto err;
	sn = cow__calloc(1, sizeof(*sn));
	if (!sn)
		goto err;
	r = cow__ptrie_insert(&st->trie, st->cur, pages, copies, w.pages, &cur);
	if (r < 0)
		goto err;

	/* Nothing can fail from here on. */
	for (size_t i = 0; i < w.pages; i++) {
		memcpy(copies[i]->data, page_addr(a, pages[i]), a->pgsz);
		cow__page_unref(&st->ps, copies[i]); /* cur holds it now */
	}
	cow__pnode_unref(&st->trie, st->cur);
	st->cur = cur;
	snap_link(a, sn, cow__pnode_ref(cur), a->size);
	st->partial = 0;
	cow__free(copies);
	cow__free(pages);
	cow__pageset_free(&w);
	*out = sn;
	return 0;

err:
	if (copies)
		for (size_t i = 0; i < w.pages; i++)
			cow__page_unref(&st->ps, copies[i]);
	cow__page_rewind(&st->ps, mark); /* hold what was held before */
	cow__free(copies);
	cow__free(sn);
	cow__free(pages);
	/* The harvest armed pages whose content cur does not hold. */
	(void)cow__track_unarm_set(a, &w);
	cow__pageset_free(&w);
	if (fresh)
		snaps_stop(a);
err_track:
	if (started)
		cow__track_stop(a);
	return r;
}

/* What a rollback does to one page: copy from copy, or drop it (NULL). */
struct action {
	size_t page;
	struct cow__page *copy;
};

/* A run of pages to drop; any: not only private or written pages (past
 * the snapshot's end), so armed file pages may be among them. */
struct drop {
	size_t first, n;
	int any;
};

struct plan {
	struct action *act; /* pages to restore, ascending */
	size_t nact;
	struct drop *drop; /* runs to drop, ascending */
	size_t ndrop;
};

static void plan_drop(struct plan *pl, size_t p, size_t n, int any)
{
	struct drop *d = pl->ndrop ? &pl->drop[pl->ndrop - 1] : NULL;

	if (d && d->first + d->n == p) {
		d->n += n;
		d->any |= any;
		return;
	}
	d = &pl->drop[pl->ndrop++];
	d->first = p;
	d->n = n;
	d->any = any;
}

/* A page where cur and a snapshot hold different copies, and the
 * snapshot's. */
struct dent {
	size_t page;
	struct cow__page *to;
};

struct diffs {
	size_t n, cap;
	struct dent *v;
};

static int diff_add(void *ctx, size_t page, struct cow__page *cur,
		    struct cow__page *to)
{
	struct diffs *d = ctx;
	struct dent *v =
	    cow__array_grow(d->v, &d->cap, d->n + 1, sizeof(*v), 64);

	(void)cur;
	if (!v)
		return -ENOMEM;
	d->v = v;
	d->v[d->n].page = page;
	d->v[d->n++].to = to;
	return 0;
}

/* The pages that differ between now and s: W (wn pages in wv), and where
 * cur and s differ (d). */
static int plan_rollback(struct cow_arena *a, const struct cow_snap *s,
			 const size_t *wv, size_t wn, const struct diffs *d,
			 struct plan *pl)
{
	const struct cow__snaps *st = a->snaps;
	size_t i = 0, k = 0, limit = s->size / a->pgsz;

	pl->act = cow__mallocarray(wn + d->n, sizeof(*pl->act));
	pl->drop = cow__mallocarray(wn + d->n + 1, sizeof(*pl->drop));
	if (!pl->act || !pl->drop)
		return -ENOMEM;
	while (i < wn || k < d->n) {
		size_t p = SIZE_MAX;
		struct cow__page *to = NULL;

		if (i < wn)
			p = wv[i];
		if (k < d->n && d->v[k].page < p)
			p = d->v[k].page;
		if (i < wn && wv[i] == p)
			i++;
		if (k < d->n && d->v[k].page == p)
			to = d->v[k++].to; /* cur holds another copy */
		else if (p < limit)
			to = cow__ptrie_get(&st->trie, s->map, p);
		if (p >= limit)
			continue; /* past s's end: dropped below */
		pl->act[pl->nact].page = p;
		pl->act[pl->nact++].copy = to;
		/* Written, or private with a copy in cur: the tracking
		 * knows which may be armed. */
		if (!to)
			plan_drop(pl, p, 1, 0);
	}
	if (a->size > s->size)
		plan_drop(pl, limit, a->size / a->pgsz - limit, 1);
	return 0;
}

/* Whether s holds a copy of any page in [first, end). */
static int holds_any(const struct cow_arena *a, const struct cow_snap *s,
		     size_t first, size_t end)
{
	return cow__ptrie_any(&a->snaps->trie, s->map, first, end);
}

/*
 * Drops the planned runs one by one: those of written or private pages in
 * one batched call (cow__track_drop_runs), then the one past the
 * snapshot's end (any pages), as drop_plan says.
 */
static int drop_runs(struct cow_arena *a, const struct plan *pl, size_t end,
		     size_t *span_from, size_t *span_to)
{
	struct cow__pageset runs = COW__PAGESET_INIT;
	const struct drop *l = &pl->drop[pl->ndrop - 1];
	size_t done = 0, from;
	int r = 0;

	for (size_t i = 0; r == 0 && i < pl->ndrop; i++)
		if (!pl->drop[i].any)
			r = cow__pageset_add(&runs, pl->drop[i].first,
					     pl->drop[i].n);
	if (r == 0)
		r = cow__track_drop_runs(a, &runs, &done);
	if (r < 0 && done > 0) {
		from = runs.v[done].first;
		*span_from = from;
		*span_to = end;
		r = cow__track_drop(a, from, end - from, 0);
	} else if (r == 0 && l->any) {
		r = cow__track_drop(a, l->first, l->n, 0);
		if (r < 0 && runs.n) { /* the others went: once more */
			*span_from = l->first;
			*span_to = end;
			r = cow__track_drop(a, l->first, l->n, 0);
		}
	}
	cow__pageset_free(&runs);
	return r;
}

/*
 * Drops the planned runs through the tracking's drop point (which unarms
 * what may be armed first: a dropped armed page would leave a tracking
 * marker).
 *
 * When no page that stays private lies between the first and the last
 * run, and the pages in between are few (at most a quarter of those
 * dropped), one call over their span does it all: it either drops
 * everything or changes nothing (pages in between are clean; dropping
 * them changes no content). Otherwise the clean pages in between would be
 * unmapped too, each to be faulted in again when next read (a span over a
 * read-in 1 GiB arena cost 8 ms to drop 262 pages), where a rollback
 * touches only what was written: each run is dropped alone; if a run after the
 * first fails, the rest are dropped with one call over their span, as above,
 * and *span_from..*span_to tells where: the pages s holds copies of there were
 * dropped too and are copied back. Only a failure of the first call, which
 * changed nothing, or of that span call is returned.
 */
static int drop_plan(struct cow_arena *a, const struct cow_snap *s,
		     const struct plan *pl, size_t *span_from, size_t *span_to)
{
	const struct drop *l = &pl->drop[pl->ndrop - 1];
	size_t first = pl->drop[0].first, end = l->first + l->n, n = 0;

	for (size_t i = 0; i < pl->ndrop; i++)
		n += pl->drop[i].n;
	/* Clean pages between the runs may be armed file pages: the span
	 * is dropped as any range. */
	if ((end - first - n) * 4 <= n && !holds_any(a, s, first, end))
		return cow__track_drop(a, first, end - first, 0);
	return drop_runs(a, pl, end, span_from, span_to);
}

/* Copies one page of s back and notes it among the pages copied. */
struct span_copy {
	struct cow_arena *a;
	struct cow__pageset copied;
	int err;
};

static void copy_page(struct span_copy *c, size_t page,
		      const struct cow__page *copy)
{
	memcpy(page_addr(c->a, page), copy->data, c->a->pgsz);
	if (c->err == 0)
		c->err = cow__pageset_add(&c->copied, page, 1);
}

static int copy_back(void *ctx, size_t page, struct cow__page *copy,
		     struct cow__page *unused)
{
	(void)unused;
	copy_page(ctx, page, copy);
	return 0;
}

/*
 * Restores the planned copies (and, after a span drop, every page of s in
 * the span), then arms what was copied (cow__track_arm_set, which picks
 * one ioctl per run or one walk over the span). Best effort: without the
 * memory to list them the copies are not armed and read as written next
 * time.
 */
static void copy_plan(struct cow_arena *a, const struct cow_snap *s,
		      const struct plan *pl, size_t span_from, size_t span_to)
{
	struct span_copy c = {a, COW__PAGESET_INIT, 0};

	for (size_t i = 0; i < pl->nact; i++)
		if (pl->act[i].copy)
			copy_page(&c, pl->act[i].page, pl->act[i].copy);
	(void)cow__ptrie_each(&a->snaps->trie, s->map, span_from, span_to,
			      copy_back, &c);
	if (c.err == 0)
		cow__track_arm_set(a, &c.copied);
	cow__pageset_free(&c.copied);
}

int cow__snap_of(const struct cow_arena *a, const cow_snap *s)
{
	return s && s->owner == a ? 0 : -EINVAL;
}

int cow__snap_rollback(struct cow_arena *a, cow_snap *s, size_t *size)
{
	size_t span_from = 0, span_to = 0, *wv = NULL;
	struct cow__pageset w = COW__PAGESET_INIT;
	struct diffs d = {0};
	struct plan pl = {0};
	struct cow__snaps *st;
	int r;

	st = a->snaps;
	r = harvest(a, &w, 0);
	if (r < 0)
		return r;
	r = cow__pageset_pages(&w, &wv);
	if (r == 0)
		r = cow__ptrie_diff(&st->trie, st->cur, s->map, diff_add, &d);
	if (r == 0)
		r = plan_rollback(a, s, wv, w.pages, &d, &pl);
	if (r < 0)
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
	cow__pnode_unref(&st->trie, st->cur);
	st->cur = cow__pnode_ref(s->map);
	/* Every armed page is in s: it was armed and untouched (recorded
	 * alike in cur and s, or restored) or just copied from s. */
	st->partial = 0;
	*size = s->size;
out:
	cow__free(d.v);
	cow__free(pl.act);
	cow__free(pl.drop);
	cow__free(wv);
	cow__pageset_free(&w);
	return r;
}

void cow__snap_release(struct cow_snap *s)
{
	struct cow_arena *a = s->owner;
	struct cow__snaps *st = a->snaps;

	if (s->prev)
		s->prev->next = s->next;
	else
		st->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	cow__pnode_unref(&st->trie, s->map);
	cow__free(s);
	/* cur only serves snapshots: with none left, hold no copies. The
	 * armed pages stay armed (the tracking keeps their set), and the
	 * next snapshot copies them (partial). */
	if (--st->count == 0) {
		cow__snap_forget(a);
		cow__page_trim(&st->ps);
	}
}

struct cow_arena *cow__snap_owner(const struct cow_snap *s)
{
	return s->owner;
}

size_t cow__snap_size(const struct cow_snap *s)
{
	return s->size;
}

const struct cow__pnode *cow__snap_map(const struct cow_snap *s)
{
	return s->map;
}

const struct cow__ptrie *cow__snap_trie(const struct cow_arena *a)
{
	return a->snaps ? &a->snaps->trie : NULL;
}

const struct cow__pnode *cow__snap_cur(const struct cow_arena *a)
{
	return a->snaps ? a->snaps->cur : NULL;
}

int cow__snap_written(struct cow_arena *a, size_t **pages, size_t *n)
{
	struct cow__pageset w = COW__PAGESET_INIT;
	int r;

	COW_TRY(harvest(a, &w, 0));
	r = cow__pageset_pages(&w, pages);
	*n = w.pages;
	cow__pageset_free(&w);
	return r;
}

/*
 * A snapshot from outside has nothing to do with cur or the tracking: it
 * is a map like any other, and a rollback to it restores what differs
 * between it and now, as for any snapshot.
 */
int cow__snap_build(struct cow_arena *a, size_t size, const size_t *pages,
		    size_t n, cow__snap_fill_fn fill, void *ctx,
		    struct cow_snap **out)
{
	struct cow__page **copies = NULL;
	struct cow_snap *sn = NULL;
	struct cow__pnode *map;
	struct cow__page_mark mark;
	struct cow__snaps *st;
	int fresh = !a->snaps, r;

	COW_TRY(snaps_start(a));
	st = a->snaps;
	mark = cow__page_mark(&st->ps);
	r = -ENOMEM;
	copies = cow__calloc(n ? n : 1, sizeof(*copies));
	if (!copies)
		goto err;
	for (size_t i = 0; i < n; i++)
		if (!(copies[i] = cow__page_new(&st->ps)))
			goto err;
	sn = cow__calloc(1, sizeof(*sn));
	if (!sn)
		goto err;
	r = fill(ctx, copies);
	if (r == 0)
		r = cow__ptrie_insert(&st->trie, NULL, pages, copies, n, &map);
	if (r < 0)
		goto err;

	/* Nothing can fail from here on. */
	for (size_t i = 0; i < n; i++)
		cow__page_unref(&st->ps, copies[i]); /* the map holds them */
	snap_link(a, sn, map, size);
	cow__free(copies);
	*out = sn;
	return 0;

err:
	if (copies)
		for (size_t i = 0; i < n; i++)
			cow__page_unref(&st->ps, copies[i]);
	cow__page_rewind(&st->ps, mark);
	cow__free(copies);
	cow__free(sn);
	if (fresh)
		snaps_stop(a);
	return r;
}

void cow__snap_forget(struct cow_arena *a)
{
	if (!a->snaps)
		return;
	cow__pnode_unref(&a->snaps->trie, a->snaps->cur);
	a->snaps->cur = NULL;
	a->snaps->partial = 1;
}

/* The reverted pages hold the base now: cur has no copy for them. Without
 * the memory to record that, cur records nothing (always correct). */
void cow__snap_reverted(struct cow_arena *a, size_t first_page, size_t npages)
{
	struct cow__snaps *st = a->snaps;
	struct cow__pnode *cur;

	if (!st)
		return;
	if (cow__ptrie_remove_range(&st->trie, st->cur, first_page,
				    first_page + npages, &cur) < 0) {
		cow__snap_forget(a);
		return;
	}
	cow__pnode_unref(&st->trie, st->cur);
	st->cur = cur;
}

#ifdef COW_DEBUG
/* The first armed page cur holds no copy of into *page: -ENOENT when cur
 * covers the armed set, -EAGAIN when cur does not claim to (partial, or
 * no snapshot state: the next harvest copies what it lacks). */
int cow__snap_uncovered(struct cow_arena *a, const struct cow__pageset *armed,
			size_t *page)
{
	const struct cow__snaps *st = a->snaps;

	if (!st || st->partial)
		return -EAGAIN;
	for (size_t i = 0; i < armed->n; i++)
		for (size_t p = armed->v[i].first;
		     p < armed->v[i].first + armed->v[i].n; p++)
			if (!cow__ptrie_get(&st->trie, st->cur, p)) {
				*page = p;
				return 0;
			}
	return -ENOENT;
}
#endif

size_t cow__snap_live(const struct cow_arena *a)
{
	return a->snaps ? a->snaps->count : 0;
}

void cow__snap_close(struct cow_arena *a)
{
	while (a->snaps && a->snaps->head)
		cow__snap_release(a->snaps->head);
	snaps_stop(a);
}

void cow__snap_stats(const struct cow_arena *a, struct cow_stats *st)
{
	st->tracking =
	    a->snaps && a->snaps->snapped ? a->track.mode : COW_TRACK_NONE;
	if (!a->snaps)
		return;
	st->snapshots = a->snaps->count;
	st->saved_pages = a->snaps->ps.pages;
	st->saved_bytes = a->snaps->ps.bytes;
}

/*
 * Commit hooks. The token holds, for each page about to get a new base
 * that some snapshot reads from the base, a copy of the old base content,
 * and for each snapshot its map with those pages added (built here so that
 * finish cannot fail).
 */
struct commit_snap {
	struct cow_snap *s;
	struct cow__pnode *map; /* one reference */
};

struct commit_token {
	/* what the store held before prepare: held again after a failure */
	struct cow__page_mark mark;
	size_t nsaved;
	size_t *page; /* the saved pages, ascending */
	struct cow__page **copy;
	struct commit_snap *snaps;
	size_t nsnaps;
};

static int needs_old_base(const struct cow_arena *a, const struct cow_snap *s,
			  size_t page)
{
	return page < s->size / a->pgsz &&
	       !cow__ptrie_get(&a->snaps->trie, s->map, page);
}

static void token_free(struct cow_arena *a, struct commit_token *t,
		       int committed)
{
	struct cow__snaps *st = a->snaps;

	if (!t)
		return;
	if (t->snaps)
		for (size_t i = 0; i < t->nsnaps; i++)
			cow__pnode_unref(&st->trie, t->snaps[i].map);
	for (size_t i = 0; i < t->nsaved; i++)
		cow__page_unref(&st->ps, t->copy[i]);
	if (!committed)
		cow__page_rewind(&st->ps, t->mark);
	cow__free(t->page);
	cow__free(t->copy);
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

static int save_old_base(struct cow_arena *a, const struct cow__pageset *d,
			 struct commit_token *t)
{
	t->page = cow__mallocarray(d->pages, sizeof(*t->page));
	t->copy = cow__mallocarray(d->pages, sizeof(*t->copy));
	if (d->pages && (!t->page || !t->copy))
		return -ENOMEM;
	for (size_t i = 0; i < d->n; i++)
		for (size_t p = d->v[i].first; p < d->v[i].first + d->v[i].n;
		     p++) {
			struct cow_snap *s;
			struct cow__page *c;

			for (s = a->snaps->head; s; s = s->next)
				if (needs_old_base(a, s, p))
					break;
			if (!s)
				continue;
			c = cow__page_new(&a->snaps->ps);
			if (!c)
				return -ENOMEM;
			t->page[t->nsaved] = p;
			t->copy[t->nsaved++] = c;
			COW_TRY(read_base(a, p, c));
		}
	return 0;
}

/*
 * Builds into cs->map s's map with the saved old base of each page s reads
 * from the base. pg and cp are room for the saved pages. A snapshot with
 * the map and size of the one before it shares its new map.
 */
static int add_old_base(struct cow_arena *a, struct commit_token *t, size_t i,
			size_t *pg, struct cow__page **cp)
{
	struct commit_snap *cs = &t->snaps[i];
	const struct cow_snap *s = cs->s, *prev = i ? t->snaps[i - 1].s : NULL;
	size_t n = 0;

	if (prev && prev->map == s->map && prev->size == s->size) {
		cs->map = cow__pnode_ref(t->snaps[i - 1].map);
		return 0;
	}
	for (size_t k = 0; k < t->nsaved; k++) {
		if (!needs_old_base(a, s, t->page[k]))
			continue;
		pg[n] = t->page[k];
		cp[n++] = t->copy[k];
	}
	return cow__ptrie_insert(&a->snaps->trie, s->map, pg, cp, n, &cs->map);
}

int cow__snap_commit_prepare(struct cow_arena *a,
			     const struct cow__pageset *dirty, void **token)
{
	struct commit_token *t;
	struct cow__page **cp = NULL;
	size_t *pg = NULL, i = 0;
	int r;

	*token = NULL;
	if (!a->snaps)
		return 0;
	t = cow__calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->mark = cow__page_mark(&a->snaps->ps);
	r = save_old_base(a, dirty, t);
	if (r < 0)
		goto err;
	r = -ENOMEM;
	t->snaps = cow__calloc(a->snaps->count + 1, sizeof(*t->snaps));
	pg = cow__mallocarray(t->nsaved, sizeof(*pg));
	cp = cow__mallocarray(t->nsaved, sizeof(*cp));
	if (!t->snaps || !pg || !cp)
		goto err;
	t->nsnaps = a->snaps->count;
	for (struct cow_snap *s = a->snaps->head; s; s = s->next, i++) {
		t->snaps[i].s = s;
		r = add_old_base(a, t, i, pg, cp);
		if (r < 0)
			goto err;
	}
	cow__free(pg);
	cow__free(cp);
	*token = t;
	return 0;
err:
	cow__free(pg);
	cow__free(cp);
	token_free(a, t, 0);
	return r;
}

void cow__snap_commit_finish(struct cow_arena *a, void *token, int committed)
{
	struct commit_token *t = token;

	/* Each snapshot takes its map with the old base added. */
	if (committed && t)
		for (size_t i = 0; i < t->nsnaps; i++) {
			struct cow_snap *s = t->snaps[i].s;

			cow__pnode_unref(&a->snaps->trie, s->map);
			s->map = t->snaps[i].map;
			t->snaps[i].map = NULL;
		}
	/* Every page equals the new base now: cur records nothing (the
	 * commit drops the private pages through the tracking, which
	 * unarms them; those it keeps are copied by the next snapshot). */
	if (committed)
		cow__snap_forget(a);
	token_free(a, t, committed);
}
