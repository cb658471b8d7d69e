// SPDX-License-Identifier: MIT
/*
 * Model-based test of snapshots and rollback: random writes, reads, grows,
 * snapshots, rollbacks to a random live snapshot, releases, discards,
 * reverts of random ranges and commits (made with the commit hooks), on
 * every backing and with both write-tracking methods; the whole arena and
 * its dirty pages are checked against a plain reference after every
 * operation. The seed is printed; COW_SEED=n replays a run, COW_OPS=n sets
 * the number of operations per run, COW_TRACE=1 prints each operation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/mman.h>

#include "helpers.h"
#include "internal.h"

#define PG 4096UL
#define START_PAGES 32
#define MAX_PAGES 64
#define MAX_SNAPS 12

struct msnap {
	cow_snap *s;
	size_t size;
	unsigned char *img;
	unsigned char priv[MAX_PAGES];
};

struct model {
	struct th_arena t;
	unsigned char *ref, *base;
	unsigned char priv[MAX_PAGES]; /* pages holding a private copy */
	size_t size;
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
	memset(m->priv + off / PG, 1, (off + len - 1) / PG - off / PG + 1);
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
	m->size = np * PG;
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
}

/* The pages the arena reports dirty are exactly those written since they
 * last held the base. */
/*
 * A commit, made with the hooks the commit path calls: the dirty pages are
 * written into the base (the file, or the memfd of an anonymous arena) and
 * dropped; snapshots that read them from the base keep the old content.
 */
static void op_commit(struct model *m)
{
	struct cow_range r[MAX_PAGES];
	ssize_t n = cow_dirty(m->t.a, r, MAX_PAGES);
	char *p = cow_base(m->t.a);
	void *tok;

	assert_in_range(n, 0, MAX_PAGES);
	assert_int_equal(cow__snap_commit_prepare(m->t.a, &tok), 0);
	for (ssize_t i = 0; i < n; i++) {
		assert_int_equal(pwrite(m->t.a->fd, p + r[i].offset,
					r[i].length, (off_t)r[i].offset),
				 (ssize_t)r[i].length);
		assert_int_equal(
		    madvise(p + r[i].offset, r[i].length, MADV_DONTNEED), 0);
		memcpy(m->base + r[i].offset, p + r[i].offset, r[i].length);
		/* A snapshot that read these pages from the base now holds
		 * the old base as a private copy. */
		for (int k = 0; k < m->nsnaps; k++)
			for (size_t pg = r[i].offset / PG;
			     pg < (r[i].offset + r[i].length) / PG; pg++)
				if (pg < m->snaps[k].size / PG)
					m->snaps[k].priv[pg] = 1;
	}
	cow__snap_commit_finish(m->t.a, tok, 1);
	/* a commit records the file it wrote as the arena's own change */
	if (m->t.a->file_fd >= 0)
		assert_int_equal(cow__guard_refresh(m->t.a), 0);
	memset(m->priv, 0, sizeof(m->priv));
}

static void check_dirty(struct model *m, unsigned long op)
{
	struct cow_range r[MAX_PAGES];
	ssize_t n = cow_dirty(m->t.a, r, MAX_PAGES);
	unsigned char got[MAX_PAGES] = {0};

	assert_in_range(n, 0, MAX_PAGES);
	for (ssize_t i = 0; i < n; i++)
		memset(got + r[i].offset / PG, 1, r[i].length / PG);
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
	m.size = START_PAGES * PG;
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
		else if (k < 98)
			op_revert(&m);
		else
			op_commit(&m);
		check(&m, i);
	}
	assert_int_equal(cow_stats(m.t.a, &st), 0);
	assert_int_equal(st.snapshots, (size_t)m.nsnaps);
	assert_int_equal(st.tracking,
			 compare ? COW_TRACK_COMPARE : COW_TRACK_UFFD_WP);
	assert_in_range(st.mappings, 1, 3);
	while (m.nsnaps)
		op_release(&m);
	assert_int_equal(cow_stats(m.t.a, &st), 0);
	assert_int_equal(st.saved_pages, 0);
	assert_int_equal(st.saved_bytes, 0);
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
	};

	seed_base = s ? strtoull(s, NULL, 0) : (unsigned long long)getpid();
	if (n)
		nops = strtoul(n, NULL, 0);
	trace = getenv("COW_TRACE") != NULL;
	printf("# test_model: seed %llu (COW_SEED=%llu replays), %lu ops\n",
	       seed_base, seed_base, nops);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
