// SPDX-License-Identifier: MIT
/*
 * Model-based test of snapshots and rollback: random writes, reads, grows,
 * snapshots, rollbacks to a random live snapshot, releases, discards,
 * reverts of random ranges, synchronous and asynchronous commits and
 * cow_sync(), snapshots saved to files and loaded back, and
 * cow_snap_diff() checked against a comparison of the images, on every
 * backing and with both write-tracking methods; the
 * whole arena and its dirty pages are checked against a plain reference
 * after every operation, and a file arena, closed and reopened at the end,
 * must hold exactly the last committed content. The seed is printed;
 * COW_SEED=n replays a run, COW_OPS=n sets the number of operations per
 * run, COW_TRACE=1 prints each operation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/mman.h>
#include <sys/stat.h>

#include "helpers.h"
#include "testhooks.h"

#define PG 4096UL
#define START_PAGES 32
#define MAX_PAGES 64
#define MAX_SNAPS 12

/* priv[]: whether a page holds a private copy: */
#define P_NO 0
#define P_YES 1
#define P_MAYBE 2 /* either: settled by the next check (see check_dirty) */

struct msnap {
	cow_snap *s;
	size_t size;
	unsigned char *img;
	unsigned char priv[MAX_PAGES];
};

struct model {
	struct th_arena t;
	unsigned char *ref;  /* the arena's content */
	unsigned char *base; /* the committed content (the file's, for every
				page up to file_size) */
	unsigned char priv[MAX_PAGES]; /* pages holding a private copy */
	/* private only because an asynchronous commit kept them: equal to
	 * the base, and dropped by a later commit once written */
	unsigned char kept[MAX_PAGES];
	/* cow_sync() or a synchronous commit since the last asynchronous
	 * commit: the kept pages are not reported dirty */
	int synced;
	/* a commit through the log: its images may stay queued, so that a
	 * page written back to the base may be reported clean */
	int async_live;
	size_t size, file_size;
	int logged; /* a file arena: commits go through the log */
	unsigned long long commits;
	struct msnap snaps[MAX_SNAPS];
	int nsnaps;
	unsigned long long rng;
};

static unsigned long long seed_base;
static unsigned long nops = 10000;
static int trace; /* COW_TRACE=1: print each operation */

static unsigned rnd(struct model *m, unsigned n)
{
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return (unsigned)(m->rng % n);
}

static void op_write(struct model *m)
{
	unsigned char *p = cow_base(m->t.a);
	size_t pages = m->size / PG, pg = rnd(m, (unsigned)pages);
	size_t n = 1 + rnd(m, 3), off, len;
	unsigned char v = (unsigned char)rnd(m, 256);

	if (pg + n > pages)
		n = pages - pg;
	off = pg * PG + rnd(m, PG);
	len = n * PG - (off - pg * PG);
	if (rnd(m, 2))
		len = 1 + rnd(m, 64);
	if (off + len > m->size)
		len = m->size - off;
	memset(p + off, v, len);
	memset(m->ref + off, v, len);
	memset(m->priv + off / PG, P_YES, (off + len - 1) / PG - off / PG + 1);
	memset(m->kept + off / PG, 0, (off + len - 1) / PG - off / PG + 1);
}

/*
 * Whether the arena may leave page pg out of its dirty pages although it
 * holds a private copy: a commit through the log may have captured
 * exactly these bytes (the page equals the base),
 * and once that commit is in the file such a page is not reported, and
 * is dropped by the next call that has the writers paused.
 */
static int maybe_clean(const struct model *m, size_t pg)
{
	return m->kept[pg] ||
	       (m->async_live &&
		!memcmp(m->ref + pg * PG, m->base + pg * PG, PG));
}

static void op_read(struct model *m)
{
	volatile unsigned char *p = cow_base(m->t.a);
	size_t pages = m->size / PG;
	unsigned sum = 0;

	for (size_t i = rnd(m, (unsigned)pages); i < pages; i += 3)
		sum += p[i * PG];
	(void)sum;
}

static void op_grow(struct model *m)
{
	size_t pages = m->size / PG, np;

	if (pages >= MAX_PAGES)
		return;
	np = pages + 1 + rnd(m, (unsigned)(MAX_PAGES - pages));
	assert_int_equal(cow_grow(m->t.a, np * PG), 0);
	memcpy(m->ref + m->size, m->base + m->size, np * PG - m->size);
	memset(m->priv + pages, 0, np - pages);
	memset(m->kept + pages, 0, np - pages);
	m->size = np * PG;
	if (m->size > m->file_size)
		m->file_size = m->size;
}

static void op_snapshot(struct model *m)
{
	struct msnap *s;

	if (m->nsnaps == MAX_SNAPS)
		return;
	s = &m->snaps[m->nsnaps];
	assert_int_equal(cow_snapshot(m->t.a, &s->s), 0);
	s->size = m->size;
	s->img = malloc(m->size);
	memcpy(s->img, m->ref, m->size);
	memcpy(s->priv, m->priv, sizeof(s->priv));
	/* A page kept by an asynchronous commit equals the base: the
	 * snapshot may count it as the base (a rollback drops it) or save
	 * it (a rollback copies it back). */
	for (size_t i = 0; i < m->size / PG; i++)
		if (maybe_clean(m, i))
			s->priv[i] = P_MAYBE;
	m->nsnaps++;
}

static void op_rollback(struct model *m)
{
	struct msnap *s;

	if (!m->nsnaps)
		return;
	s = &m->snaps[rnd(m, (unsigned)m->nsnaps)];
	assert_int_equal(cow_rollback(m->t.a, s->s), 0);
	m->size = s->size;
	memcpy(m->ref, s->img, s->size);
	memcpy(m->priv, s->priv, sizeof(m->priv));
	memset(m->kept, 0, sizeof(m->kept));
}

static void op_release(struct model *m)
{
	int i;

	if (!m->nsnaps)
		return;
	i = (int)rnd(m, (unsigned)m->nsnaps);
	cow_snap_release(m->snaps[i].s);
	free(m->snaps[i].img);
	m->snaps[i] = m->snaps[--m->nsnaps];
}

static void op_discard(struct model *m)
{
	assert_int_equal(cow_discard(m->t.a), 0);
	memcpy(m->ref, m->base, m->size);
	memset(m->priv, 0, sizeof(m->priv));
	memset(m->kept, 0, sizeof(m->kept));
}

static void op_revert(struct model *m)
{
	size_t pages = m->size / PG, pg = rnd(m, (unsigned)pages);
	size_t n = 1 + rnd(m, (unsigned)(pages - pg));
	char *p = cow_base(m->t.a);

	if (rnd(m, 2))
		n = 1;
	assert_int_equal(cow_revert(m->t.a, p + pg * PG, n * PG), 0);
	memcpy(m->ref + pg * PG, m->base + pg * PG, n * PG);
	memset(m->priv + pg, 0, n);
	memset(m->kept + pg, 0, n);
}

/*
 * A commit through the public API: the content becomes the base. Snapshots
 * that read a committed page from the old base now hold it as a saved
 * copy. A commit without a log drops every private copy; one on a file
 * (synchronous or asynchronous: both write in place in the background)
 * keeps them, but drops a page equal to its newest committed copy once
 * that copy is written into the file: whether it is yet is up to the
 * background I/O, so a page equal to the old base may go either way.
 */
static void op_commit(struct model *m, unsigned flags)
{
	/* A kept page may be dropped first (it equals the base): then the
	 * snapshots go on reading it from the base. */
	for (int k = 0; k < m->nsnaps; k++)
		for (size_t pg = 0; pg < m->snaps[k].size / PG; pg++)
			if (pg < m->size / PG && m->priv[pg])
				m->snaps[k].priv[pg] =
				    maybe_clean(m, pg) ? P_MAYBE : P_YES;
	assert_int_equal(cow_commit(m->t.a, flags), 0);
	m->commits++;
	if (m->logged) {
		for (size_t pg = 0; pg < m->size / PG; pg++)
			if (m->priv[pg]) {
				int same = !memcmp(m->ref + pg * PG,
						   m->base + pg * PG, PG);

				m->priv[pg] = same ? P_MAYBE : P_YES;
				m->kept[pg] = 1;
			}
		/* a synchronous commit returned at its durable point */
		m->synced = !(flags & COW_COMMIT_ASYNC);
		m->async_live = 1;
		memcpy(m->base, m->ref, m->size);
	} else {
		memcpy(m->base, m->ref, m->size);
		memset(m->priv, 0, sizeof(m->priv));
		memset(m->kept, 0, sizeof(m->kept));
	}
}

/*
 * cow_snap_diff against a brute-force comparison of the images: the runs
 * of pages whose bytes differ between a snapshot and another (or the
 * current content), and every page past the smaller size.
 */
static void op_diff(struct model *m)
{
	struct cow_range got[MAX_PAGES], want[MAX_PAGES];
	const struct msnap *from, *to = NULL;
	const unsigned char *ti;
	size_t fs, ts, lo, hi, nw = 0;
	ssize_t n;

	if (!m->nsnaps)
		return;
	from = &m->snaps[rnd(m, (unsigned)m->nsnaps)];
	if (rnd(m, 2))
		to = &m->snaps[rnd(m, (unsigned)m->nsnaps)];
	ti = to ? to->img : m->ref;
	fs = from->size / PG;
	ts = (to ? to->size : m->size) / PG;
	lo = fs < ts ? fs : ts;
	hi = fs < ts ? ts : fs;
	for (size_t p = 0; p < hi; p++) {
		if (p < lo && !memcmp(from->img + p * PG, ti + p * PG, PG))
			continue;
		if (nw && want[nw - 1].offset + want[nw - 1].length == p * PG)
			want[nw - 1].length += PG;
		else
			want[nw++] = (struct cow_range){p * PG, PG};
	}
	n = cow_snap_diff(m->t.a, from->s, to ? to->s : NULL, got, MAX_PAGES);
	assert_int_equal(n, (ssize_t)nw);
	for (size_t i = 0; i < nw; i++) {
		assert_int_equal(got[i].offset, want[i].offset);
		assert_int_equal(got[i].length, want[i].length);
	}
	/* the count alone, and a short buffer gets the first runs */
	assert_int_equal(cow_snap_diff(m->t.a, from->s, to ? to->s : NULL,
				       NULL, 0),
			 (ssize_t)nw);
}

/*
 * A snapshot saved to a file and loaded back is one more snapshot with
 * the same image. Without COW_SNAP_FULL it maps the pages the original
 * maps (the same private pages after a rollback to it); where the base
 * cannot be recorded or has changed since, with COW_SNAP_FULL, which
 * maps every page.
 */
static void op_save_load(struct model *m)
{
	char path[300];
	struct msnap *from, *s;
	unsigned flags = rnd(m, 4) ? 0 : COW_SNAP_FULL;
	int r;

	if (!m->nsnaps || m->nsnaps == MAX_SNAPS)
		return;
	from = &m->snaps[rnd(m, (unsigned)m->nsnaps)];
	s = &m->snaps[m->nsnaps];
	snprintf(path, sizeof(path), "%s/model.snap", th_dir(TH_TMPFS));
	r = cow_snap_save(from->s, path, flags);
	if (r == -EINVAL && !flags) /* an anonymous arena after a commit */
		r = cow_snap_save(from->s, path, flags = COW_SNAP_FULL);
	assert_int_equal(r, 0);
	r = cow_snap_load(m->t.a, path, &s->s);
	if (r == COW_EFOREIGN && !flags) {
		assert_int_equal(cow_snap_save(from->s, path, COW_SNAP_FULL),
				 0);
		flags = COW_SNAP_FULL;
		r = cow_snap_load(m->t.a, path, &s->s);
	}
	assert_int_equal(r, 0);
	unlink(path);
	s->size = from->size;
	s->img = malloc(from->size);
	memcpy(s->img, from->img, from->size);
	memcpy(s->priv, from->priv, sizeof(s->priv));
	if (flags)
		memset(s->priv, P_YES, s->size / PG);
	m->nsnaps++;
}

/* Waits for the asynchronous commits: nothing visible changes. */
static void op_sync(struct model *m)
{
	assert_int_equal(cow_sync(m->t.a), 0);
	m->synced = 1;
}

/* The pages the arena reports dirty are exactly those written since they
 * last held the base; a page that may go either way is settled here. */
static void check_dirty(struct model *m, unsigned long op)
{
	struct cow_range r[MAX_PAGES];
	ssize_t n = cow_dirty(m->t.a, r, MAX_PAGES);
	unsigned char got[MAX_PAGES] = {0};

	assert_in_range(n, 0, MAX_PAGES);
	for (ssize_t i = 0; i < n; i++)
		memset(got + r[i].offset / PG, 1, r[i].length / PG);
	for (size_t i = 0; i < m->size / PG; i++) {
		/* A kept page equals the base: not reported once its commit
		 * is in the file (after cow_sync() at the latest), and
		 * dropped by the next call that has the writers paused. */
		if (m->kept[i] && m->synced && got[i]) {
			fprintf(stderr, "# page %zu kept and synced, reported "
					"dirty\n", i);
			m->priv[i] = 0;
			continue;
		}
		if (maybe_clean(m, i)) {
			m->priv[i] = got[i];
			continue;
		}
		if (m->priv[i] == P_MAYBE)
			m->priv[i] = got[i];
	}
	if (memcmp(got, m->priv, m->size / PG)) {
		fprintf(stderr, "# %s: dirty pages wrong after op %lu (seed "
				"%llu)\n",
			th_backing_names[m->t.b], op, seed_base);
		for (size_t i = 0; i < m->size / PG; i++)
			if (got[i] != m->priv[i])
				fprintf(stderr, "# page %zu: dirty %d, "
						"expected %d\n",
					i, got[i], m->priv[i]);
		fail();
	}
}

static void check(struct model *m, unsigned long op)
{
	const unsigned char *p = cow_base(m->t.a);

	assert_int_equal(cow_size(m->t.a), m->size);
	/* First: reading the pages could hide what the scan must not see. */
	check_dirty(m, op);
	if (memcmp(p, m->ref, m->size)) {
		fprintf(stderr, "# %s: mismatch after op %lu (seed %llu)\n",
			th_backing_names[m->t.b], op, seed_base);
		assert_true(th_equal(&m->t, m->ref, m->size));
	}
}

/* A file arena closed and opened again holds the last committed content
 * (the file keeps the length of its largest growth). */
static void check_reopen(struct model *m)
{
	struct stat sb;
	int fd;

	assert_int_equal(cow_close(m->t.a), 0);
	m->t.a = NULL;
	fd = open(m->t.path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	close(fd);
	assert_int_equal(sb.st_size, (off_t)m->file_size);
	assert_int_equal(cow_open(&m->t.a, m->t.path, NULL), 0);
	assert_int_equal(cow_size(m->t.a), m->file_size);
	if (memcmp(cow_base(m->t.a), m->base, m->file_size)) {
		fprintf(stderr, "# %s: reopened file is not the last commit "
				"(seed %llu)\n",
			th_backing_names[m->t.b], seed_base);
		assert_true(th_equal(&m->t, m->base, m->file_size));
	}
}

static void run_model(enum th_backing b, int compare)
{
	struct cow_options o = {.reserve = MAX_PAGES * PG};
	struct model m;
	struct cow_stats st;

	memset(&m, 0, sizeof(m));
	m.rng = seed_base * 8 + (unsigned long long)b * 2 + (unsigned)compare +
		1;
	cow__track_force_compare(compare);
	assert_int_equal(th_open(&m.t, b, START_PAGES * PG, &o), 0);
	m.size = m.file_size = START_PAGES * PG;
	m.logged = b == TH_TMPFS || b == TH_EXT4;
	m.ref = calloc(MAX_PAGES, PG);
	m.base = calloc(MAX_PAGES, PG);
	th_base_ref(b, m.base, START_PAGES * PG);
	memcpy(m.ref, m.base, m.size);
	for (unsigned long i = 0; i < nops; i++) {
		unsigned k = rnd(&m, 100);

		if (trace)
			fprintf(stderr, "# op %lu: %u size %zu snaps %d\n", i, k,
				m.size / PG, m.nsnaps);

		if (k < 40)
			op_write(&m);
		else if (k < 45)
			op_read(&m);
		else if (k < 48)
			op_grow(&m);
		else if (k < 64)
			op_snapshot(&m);
		else if (k < 80)
			op_rollback(&m);
		else if (k < 88)
			op_release(&m);
		else if (k < 91)
			op_discard(&m);
		else if (k < 96)
			op_revert(&m);
		else if (k < 97)
			op_commit(&m, 0);
		else if (k < 99)
			op_commit(&m, COW_COMMIT_ASYNC);
		else if (rnd(&m, 3) == 0)
			op_sync(&m);
		else if (rnd(&m, 2) == 0)
			op_save_load(&m);
		else
			op_write(&m);
		if (rnd(&m, 8) == 0)
			op_diff(&m);
		check(&m, i);
	}
	assert_int_equal(cow_stats(m.t.a, &st), 0);
	assert_int_equal(st.snapshots, (size_t)m.nsnaps);
	assert_int_equal(st.tracking,
			 compare ? COW_TRACK_COMPARE : COW_TRACK_UFFD_WP);
	assert_in_range(st.mappings, 1, 3);
	assert_int_equal(st.commits, m.commits);
	while (m.nsnaps)
		op_release(&m);
	assert_int_equal(cow_stats(m.t.a, &st), 0);
	assert_int_equal(st.saved_pages, 0);
	assert_int_equal(st.saved_bytes, 0);
	if (m.logged)
		check_reopen(&m);
	th_close(&m.t);
	cow__track_force_compare(0);
	free(m.ref);
	free(m.base);
}

static void test_model_uffd(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++)
		run_model(b, 0);
}

static void test_model_compare(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++)
		run_model(b, 1);
}

/*
 * The same kind of model over an arena of BIG_BLOCKS page-table blocks
 * (2 MiB each with 4 KiB pages), where a commit that drops private copies
 * also drops the blocks left mapping nothing (cow__track_trim): writes of
 * one page in a block or of many pages in one block, reads of pages never
 * written (blocks that hold only read pages), synchronous and asynchronous
 * commits, cow_sync(), snapshots, rollbacks, releases, discards, and
 * reverts of a whole block or a random range. Each page written has one
 * tracked byte (big_off), checked against the reference after every
 * operation; a page reverted with its whole block is checked only at the
 * end (a read maps it again, and its block would never be empty), when
 * every page's byte is. The seed is fixed (COW_SEED does not change it);
 * COW_BIG_OPS=n sets the number of operations per backing.
 */
#define BIG_BLOCKS 24
#define BIG_BPG 512 /* pages per block */
#define BIG_PAGES (BIG_BLOCKS * BIG_BPG)
#define BIG_SNAPS 6
#define BIG_OPS 600

/* tracked[]: */
#define T_NO 0
#define T_YES 1	  /* checked after every operation */
#define T_LATER 2 /* reverted with its block: checked at the end */

struct big {
	struct th_arena t;
	unsigned char ref[BIG_PAGES];  /* each page's tracked byte */
	unsigned char base[BIG_PAGES]; /* its committed value */
	unsigned char tracked[BIG_PAGES];
	unsigned char *snaps[BIG_SNAPS];
	cow_snap *snap[BIG_SNAPS];
	int nsnaps;
	unsigned long long rng;
	unsigned long n[12]; /* operation counts, by B_ */
	unsigned long pte_falls; /* commits after which VmPTE fell */
};

enum { B_WRITE1, B_WRITEN, B_READ, B_COMMIT, B_ACOMMIT, B_SYNC, B_SNAP,
       B_ROLLBACK, B_RELEASE, B_DISCARD, B_REVBLK, B_REVRANGE };

static unsigned big_rnd(struct big *m, unsigned n)
{
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return (unsigned)(m->rng % n);
}

static size_t big_off(size_t pg)
{
	return pg * PG + (pg * 73 + 11) % PG;
}

/* The pages of block j: the blocks are aligned in memory, so the arena's
 * first and last may be partial (clipped to the arena). */
static void big_block(const struct big *m, unsigned j, size_t *first,
		      size_t *n)
{
	uintptr_t base = (uintptr_t)cow_base(m->t.a);
	size_t blk = BIG_BPG * PG;
	size_t a0 = ((base + blk - 1) & ~(uintptr_t)(blk - 1)) - base;
	size_t lo = j ? a0 + (j - 1) * blk : 0, hi = a0 + j * blk;

	if (a0 == 0) { /* aligned: BIG_BLOCKS whole blocks */
		lo = j * blk;
		hi = lo + blk;
	}
	if (hi > (size_t)BIG_PAGES * PG)
		hi = (size_t)BIG_PAGES * PG;
	*first = lo / PG;
	*n = hi > lo ? (hi - lo) / PG : 0;
}

static unsigned big_nblocks(const struct big *m)
{
	return (uintptr_t)cow_base(m->t.a) % (BIG_BPG * PG) ? BIG_BLOCKS + 1
							    : BIG_BLOCKS;
}

static void big_write(struct big *m)
{
	unsigned char *p = cow_base(m->t.a);
	size_t first, n, k = 1;

	big_block(m, big_rnd(m, big_nblocks(m)), &first, &n);
	if (!n)
		return;
	if (big_rnd(m, 4) == 0) { /* many pages of one block */
		k = 2 + big_rnd(m, 200);
		m->n[B_WRITEN]++;
	} else {
		m->n[B_WRITE1]++;
	}
	while (k--) {
		size_t pg = first + big_rnd(m, (unsigned)n);
		unsigned char v = (unsigned char)big_rnd(m, 256);

		p[big_off(pg)] = v;
		m->ref[pg] = v;
		m->tracked[pg] = T_YES;
	}
}

/* Reads pages never written: their block may then map only read pages. */
static void big_read(struct big *m)
{
	volatile unsigned char *p = cow_base(m->t.a);
	size_t first, n, k = 1 + big_rnd(m, 32);

	big_block(m, big_rnd(m, big_nblocks(m)), &first, &n);
	if (!n)
		return;
	while (k--) {
		size_t pg = first + big_rnd(m, (unsigned)n);

		(void)p[pg * PG + big_rnd(m, PG)];
	}
	m->n[B_READ]++;
}

static void big_commit(struct big *m, unsigned flags)
{
	long before = th_vm_pte_kb(), after;

	assert_int_equal(cow_commit(m->t.a, flags), 0);
	after = th_vm_pte_kb();
	if (before > 0 && after >= 0 && after < before)
		m->pte_falls++;
	memcpy(m->base, m->ref, sizeof(m->base));
	m->n[flags ? B_ACOMMIT : B_COMMIT]++;
}

static void big_snapshot(struct big *m)
{
	if (m->nsnaps == BIG_SNAPS)
		return;
	assert_int_equal(cow_snapshot(m->t.a, &m->snap[m->nsnaps]), 0);
	m->snaps[m->nsnaps] = malloc(BIG_PAGES);
	memcpy(m->snaps[m->nsnaps], m->ref, BIG_PAGES);
	m->nsnaps++;
	m->n[B_SNAP]++;
}

static void big_rollback(struct big *m)
{
	int i;

	if (!m->nsnaps)
		return;
	i = (int)big_rnd(m, (unsigned)m->nsnaps);
	assert_int_equal(cow_rollback(m->t.a, m->snap[i]), 0);
	memcpy(m->ref, m->snaps[i], BIG_PAGES);
	for (size_t pg = 0; pg < BIG_PAGES; pg++)
		if (m->ref[pg] != m->base[pg])
			m->tracked[pg] = T_YES;
	m->n[B_ROLLBACK]++;
}

static void big_release(struct big *m)
{
	int i;

	if (!m->nsnaps)
		return;
	i = (int)big_rnd(m, (unsigned)m->nsnaps);
	cow_snap_release(m->snap[i]);
	free(m->snaps[i]);
	m->nsnaps--;
	m->snap[i] = m->snap[m->nsnaps];
	m->snaps[i] = m->snaps[m->nsnaps];
	m->n[B_RELEASE]++;
}

static void big_revert(struct big *m, size_t first, size_t n, int later)
{
	char *p = cow_base(m->t.a);

	assert_int_equal(cow_revert(m->t.a, p + first * PG, n * PG), 0);
	memcpy(m->ref + first, m->base + first, n);
	if (later)
		for (size_t pg = first; pg < first + n; pg++)
			if (m->tracked[pg] == T_YES)
				m->tracked[pg] = T_LATER;
}

static void big_check(struct big *m, unsigned long op, int all)
{
	const unsigned char *p = cow_base(m->t.a);

	for (size_t pg = 0; pg < BIG_PAGES; pg++) {
		if (!all && m->tracked[pg] != T_YES)
			continue;
		if (p[big_off(pg)] != m->ref[pg]) {
			fprintf(stderr, "# big %s: page %zu (block %zu) "
					"reads %u, expected %u (base %u) "
					"after op %lu\n",
				th_backing_names[m->t.b], pg, pg / BIG_BPG,
				p[big_off(pg)], m->ref[pg], m->base[pg], op);
			fail();
		}
	}
}

static void run_big(enum th_backing b, unsigned long ops, unsigned long *tot,
		    unsigned long *falls)
{
	struct big *m = calloc(1, sizeof(*m));
	struct cow_options o = {.reserve = BIG_PAGES * PG};

	assert_non_null(m);
	m->rng = 0x9e3779b97f4a7c15ULL + b;
	assert_int_equal(th_open(&m->t, b, BIG_PAGES * PG, &o), 0);
	for (size_t pg = 0; pg < BIG_PAGES; pg++)
		m->ref[pg] = m->base[pg] = th_base_byte(b, big_off(pg));
	for (unsigned long i = 0; i < ops; i++) {
		unsigned k = big_rnd(m, 100);

		if (k < 35) {
			big_write(m);
		} else if (k < 43) {
			big_read(m);
		} else if (k < 51) {
			big_commit(m, 0);
		} else if (k < 60) {
			big_commit(m, COW_COMMIT_ASYNC);
		} else if (k < 63) {
			assert_int_equal(cow_sync(m->t.a), 0);
			m->n[B_SYNC]++;
		} else if (k < 70) {
			big_snapshot(m);
		} else if (k < 76) {
			big_rollback(m);
		} else if (k < 81) {
			big_release(m);
		} else if (k < 84) {
			assert_int_equal(cow_discard(m->t.a), 0);
			memcpy(m->ref, m->base, sizeof(m->ref));
			m->n[B_DISCARD]++;
		} else if (k < 93) {
			size_t first, n;

			big_block(m, big_rnd(m, big_nblocks(m)), &first, &n);
			if (n) {
				big_revert(m, first, n, 1);
				m->n[B_REVBLK]++;
			}
		} else {
			size_t first = big_rnd(m, BIG_PAGES);
			size_t n = 1 + big_rnd(m, BIG_BPG * 2);

			if (first + n > BIG_PAGES)
				n = BIG_PAGES - first;
			big_revert(m, first, n, 0);
			m->n[B_REVRANGE]++;
		}
		big_check(m, i, 0);
	}
	big_check(m, ops, 1);
	while (m->nsnaps)
		big_release(m);
	th_close(&m->t);
	for (int i = 0; i < 12; i++)
		tot[i] += m->n[i];
	*falls += m->pte_falls;
	free(m);
}

static void test_model_blocks(void **state)
{
	unsigned long tot[12] = {0}, falls = 0;
	const char *o = getenv("COW_BIG_OPS");
	unsigned long ops = o ? strtoul(o, NULL, 0) : BIG_OPS;

	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++)
		run_big(b, ops, tot, &falls);
	print_message("# blocks model: %d backings x %lu ops on %d blocks: "
		      "%lu writes of 1 page, %lu of many, %lu reads, %lu "
		      "commits, %lu async, %lu syncs, %lu snapshots, %lu "
		      "rollbacks, %lu releases, %lu discards, %lu block "
		      "reverts, %lu range reverts; VmPTE fell after %lu "
		      "commits\n",
		      TH_NBACKINGS, ops, BIG_BLOCKS, tot[B_WRITE1],
		      tot[B_WRITEN], tot[B_READ], tot[B_COMMIT], tot[B_ACOMMIT],
		      tot[B_SYNC], tot[B_SNAP], tot[B_ROLLBACK], tot[B_RELEASE],
		      tot[B_DISCARD], tot[B_REVBLK], tot[B_REVRANGE], falls);
}

/* Skips when the kernel cannot track writes with userfaultfd. */
static int uffd_setup(void **state)
{
	struct th_arena t;
	struct cow_stats st;
	cow_snap *s;

	(void)state;
	if (th_open(&t, TH_ANON, PG, NULL) || cow_snapshot(t.a, &s))
		return -1;
	cow_stats(t.a, &st);
	th_close(&t);
	if (st.tracking != COW_TRACK_UFFD_WP) {
		fprintf(stderr, "# no userfaultfd write-protect here: the "
				"fallback tracking is tested alone\n");
		*state = (void *)1;
	}
	return 0;
}

static void test_model_uffd_maybe(void **state)
{
	if (*state)
		skip();
	test_model_uffd(state);
}

int main(void)
{
	const char *s = getenv("COW_SEED"), *n = getenv("COW_OPS");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_model_uffd_maybe, uffd_setup),
	    cmocka_unit_test(test_model_compare),
	    cmocka_unit_test(test_model_blocks),
	};

	seed_base = s ? strtoull(s, NULL, 0) : (unsigned long long)getpid();
	if (n)
		nops = strtoul(n, NULL, 0);
	trace = getenv("COW_TRACE") != NULL;
	printf("# test_model: seed %llu (COW_SEED=%llu replays), %lu ops\n",
	       seed_base, seed_base, nops);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
