// SPDX-License-Identifier: MIT
/*
 * Area 2 and 3, work that follows the pages written, not the arena or the
 * pages read.
 *
 * Table 1, sparse pages in a large arena: 32 pages written in 32 different
 * GiB of a 64 GiB anonymous arena (in --short and --quick, smaller arenas
 * with the pages as far apart), then cow_discard, cow_snapshot (of 32 pages
 * written since the last one) or cow_rollback (of those 32 pages), each
 * against one bare PAGEMAP_SCAN walk of the arena's range (the cheapest
 * kind of walk: no page lookups) timed in the same round. The second
 * column is the median of each round's operation / walk: a dirty scan is
 * such a walk, so 1.0 is the floor.
 *
 * Table 2, a rollback after reading: a 64 MiB file arena is read in whole
 * after a snapshot, with nothing written, then rolled back. Rows: the
 * rollback's time, the pages still mapped after it (pagemap PRESENT), and
 * the time to read the arena in whole again.
 *
 * Table 3, commits on an arena read in whole: a 64 MiB file arena (every
 * page mapped, so the dirty scan cannot test all of them in its one walk)
 * takes asynchronous commits of 256 pages 64 apart, a cow_sync every 16;
 * the commit's return time against one bare walk of the range in the same
 * round. The pages of the commits still being written are known to be
 * private: the scan tests only the others for being file pages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "cowarena.h"

#define SEED 0x5eed0007u
#define SPARSE_K 32

struct sparse {
	size_t size, pg, npages;
	cow_arena *a;
	char *base;
};

static void write_sparse(struct sparse *x, int v)
{
	for (size_t i = 0; i < SPARSE_K; i++) {
		size_t p = bench_spread(i, SPARSE_K, x->npages) + 7;

		x->base[p * x->pg + 8] = (char)(v + (int)i);
	}
}

/* Each page holds what write_sparse(x, v) wrote, or zeros (v < 0). */
static void check_sparse(struct sparse *x, int v, const char *who)
{
	for (size_t i = 0; i < SPARSE_K; i++) {
		size_t p = bench_spread(i, SPARSE_K, x->npages) + 7;
		char want = v < 0 ? 0 : (char)(v + (int)i);

		BENCH_CHECK(x->base[p * x->pg + 8] == want,
			    "%s: page %zu holds %d", who, p,
			    x->base[p * x->pg + 8]);
	}
}

enum { S_DISCARD, S_SNAPSHOT, S_ROLLBACK, NS };
static const char *const sparse_rows[NS] = {
    "cow_discard",
    "cow_snapshot",
    "cow_rollback",
};

/* One round of row op: the operation's time into *op, a bare walk's into
 * *walk (in turn first and second). */
static void sparse_round(struct sparse *x, int op, int round, double *opt,
			 double *walkt)
{
	cow_snap *s = NULL;
	uint64_t t0, t1, t2;
	int r = 0;

	if (op == S_ROLLBACK) {
		write_sparse(x, 1);
		r = cow_snapshot(x->a, &s);
		BENCH_CHECK(r == 0, "cow_snapshot: %s", cow_strerror(r));
	}
	write_sparse(x, 2);
	if (round % 2) {
		t0 = bench_now();
		bench_scan_walk(x->base, x->size);
		t1 = bench_now();
	}
	t2 = bench_now();
	switch (op) {
	case S_DISCARD:
		r = cow_discard(x->a);
		break;
	case S_SNAPSHOT:
		r = cow_snapshot(x->a, &s);
		break;
	case S_ROLLBACK:
		r = cow_rollback(x->a, s);
		break;
	}
	*opt = (double)(bench_now() - t2);
	BENCH_CHECK(r == 0, "%s: %s", sparse_rows[op], cow_strerror(r));
	if (!(round % 2)) {
		t0 = bench_now();
		bench_scan_walk(x->base, x->size);
		t1 = bench_now();
	}
	*walkt = (double)(t1 - t0);
	if (op == S_ROLLBACK)
		check_sparse(x, 1, "cow_rollback");
	else
		check_sparse(x, op == S_DISCARD ? -1 : 2, sparse_rows[op]);
	if (s)
		cow_snap_release(s);
	r = cow_discard(x->a);
	BENCH_CHECK(r == 0, "cow_discard: %s", cow_strerror(r));
}

static void table_sparse(void)
{
	static const char *const names[] = {"operation", "bare walk",
					    "operation / walk"};
	struct cow_options o = {0};
	struct bench_table *t, *tr;
	struct sparse x = {0};
	char title[160], sz[32];
	int reps = bench_opt.reps, r;
	double *v[3];

	x.size = bench_opt.mode == BENCH_FULL	 ? (size_t)64 << 30
		 : bench_opt.mode == BENCH_SHORT ? (size_t)4 << 30
						 : (size_t)256 << 20;
	x.pg = bench_pgsz();
	x.npages = x.size / x.pg;
	o.reserve = x.size;
	r = cow_open_anon(&x.a, x.size, &o);
	BENCH_CHECK(r == 0, "cow_open_anon: %s", cow_strerror(r));
	x.base = cow_base(x.a);
	bench_size_label(sz, sizeof(sz), x.size);
	snprintf(title, sizeof(title),
		 "Sparse pages: %d pages far apart in a %s anonymous arena",
		 SPARSE_K, sz);
	t = bench_table("sparse", title, NULL, BENCH_TIME, -1, 2, names);
	snprintf(title, sizeof(title),
		 "Sparse pages: operation / one bare PAGEMAP_SCAN walk "
		 "(%s)",
		 sz);
	tr = bench_table("sparse-ratio", title, NULL, BENCH_COUNT, -1, 1,
			 names + 2);
	for (int i = 0; i < 3; i++)
		v[i] = calloc((size_t)reps, sizeof(double));
	BENCH_CHECK(v[0] && v[1] && v[2], "out of memory");
	/* the first discard starts the tracking: not timed */
	write_sparse(&x, 3);
	r = cow_discard(x.a);
	BENCH_CHECK(r == 0, "cow_discard: %s", cow_strerror(r));
	for (int op = 0; op < NS; op++) {
		int row = bench_row(t, sparse_rows[op], 0);
		int rr = bench_row(tr, sparse_rows[op], 0);

		for (int i = 0; i < reps; i++) {
			sparse_round(&x, op, i, &v[0][i], &v[1][i]);
			v[2][i] = v[0][i] / v[1][i];
		}
		bench_cell(t, row, 0, v[0], reps);
		bench_cell(t, row, 1, v[1], reps);
		bench_cell(tr, rr, 0, v[2], reps);
	}
	bench_note(t, "Page i of %d is page i * n/%d + 7 (one in each "
		      "1/%d of the arena); the walk is one PAGEMAP_SCAN of "
		      "the whole range asking only for written pages, timed "
		      "in the same round as the operation (before it in one "
		      "round, after it in the next).",
		   SPARSE_K, SPARSE_K, SPARSE_K);
	bench_note(t, "cow_snapshot: the %d pages written since the previous "
		      "snapshot; cow_rollback: back over those %d pages.",
		   SPARSE_K, SPARSE_K);
	bench_note(tr, "The median of each round's ratio; 1.0 is one walk.");
	bench_end(t);
	bench_end(tr);
	for (int i = 0; i < 3; i++)
		free(v[i]);
	cow_close(x.a);
}

/* Pages of [p, p + npages) mapped (pagemap bit 63). */
static size_t present(const char *p, size_t npages, size_t pg)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e[512];
	size_t n = 0;

	BENCH_CHECK(fd >= 0, "/proc/self/pagemap: %s", strerror(errno));
	for (size_t i = 0; i < npages; i += 512) {
		size_t k = npages - i < 512 ? npages - i : 512;
		off_t off = (off_t)(((uintptr_t)p / pg + i) * sizeof(e[0]));

		BENCH_CHECK(pread(fd, e, k * sizeof(e[0]), off) ==
				(ssize_t)(k * sizeof(e[0])),
			    "pagemap: %s", strerror(errno));
		for (size_t j = 0; j < k; j++)
			n += (e[j] >> 63) & 1;
	}
	close(fd);
	return n;
}

static uint64_t read_all(const char *p, size_t npages, size_t pg)
{
	uint64_t t0 = bench_now(), sum = 0;

	for (size_t i = 0; i < npages; i++)
		sum += *(volatile const char *)(p + i * pg);
	(void)sum;
	return bench_now() - t0;
}

static void table_read_rollback(void)
{
	static const char *const names[] = {"cow_rollback"};
	static const char *const rows[] = {
	    "rollback (ns)", "pages mapped after", "reading again (ns)"};
	size_t size = bench_opt.mode == BENCH_QUICK ? (size_t)4 << 20
						    : (size_t)64 << 20;
	size_t pg = bench_pgsz(), npages = size / pg;
	int reps = bench_opt.reps, fd, r;
	struct bench_table *t;
	char path[4096], title[128], sz[32];
	double *v[3];
	cow_snap *s;
	cow_arena *a;
	char *p;

	fd = bench_tmpfile("readrb", path, sizeof(path));
	bench_write_file(fd, npages, SEED);
	r = cow_open(&a, path, NULL);
	BENCH_CHECK(r == 0, "cow_open: %s", cow_strerror(r));
	p = cow_base(a);
	r = cow_snapshot(a, &s);
	BENCH_CHECK(r == 0, "cow_snapshot: %s", cow_strerror(r));
	for (int i = 0; i < 3; i++)
		v[i] = calloc((size_t)reps, sizeof(double));
	BENCH_CHECK(v[0] && v[1] && v[2], "out of memory");
	for (int i = 0; i < reps; i++) {
		uint64_t t0;

		(void)read_all(p, npages, pg);
		t0 = bench_now();
		r = cow_rollback(a, s);
		v[0][i] = (double)(bench_now() - t0);
		BENCH_CHECK(r == 0, "cow_rollback: %s", cow_strerror(r));
		v[1][i] = (double)present(p, npages, pg);
		v[2][i] = (double)read_all(p, npages, pg);
		for (size_t k = 0; k < npages; k += npages / 7 + 1)
			BENCH_CHECK(bench_page_ok(p, k, SEED),
				    "page %zu changed", k);
	}
	bench_size_label(sz, sizeof(sz), size);
	snprintf(title, sizeof(title),
		 "Rollback after reading a %s file arena in whole, nothing "
		 "written",
		 sz);
	t = bench_table("read-rollback", title, NULL, BENCH_COUNT, -1, 1,
			names);
	for (int i = 0; i < 3; i++)
		bench_cell(t, bench_row(t, rows[i], 0), 0, v[i], reps);
	bench_note(t, "Each round reads one byte of every page (the pages "
		      "read after the snapshot), rolls back to it, counts "
		      "the arena's pages still mapped (%zu in all), then "
		      "reads every page again.",
		   npages);
	bench_end(t);
	for (int i = 0; i < 3; i++)
		free(v[i]);
	cow_snap_release(s);
	cow_close(a);
	close(fd);
}

#define COMMIT_K 256
#define COMMIT_GAP 64

static void table_read_commit(void)
{
	static const char *const names[] = {"cow_commit", "bare walk",
					    "commit / walk"};
	size_t size = bench_opt.mode == BENCH_QUICK ? (size_t)4 << 20
						    : (size_t)64 << 20;
	size_t pg = bench_pgsz(), npages = size / pg;
	size_t k = npages / COMMIT_GAP < COMMIT_K ? npages / COMMIT_GAP
						  : COMMIT_K;
	/* enough rounds that the log's checkpoints (one in 16 MiB) and the
	 * syncs stay out of the median */
	int reps = bench_opt.reps < 48 ? 48 : bench_opt.reps, fd, r;
	struct bench_table *t, *tr;
	char path[4096], title[160], sz[32], row[64];
	double *v[3];
	cow_arena *a;
	char *p;

	fd = bench_tmpfile("readcommit", path, sizeof(path));
	bench_write_file(fd, npages, SEED);
	r = cow_open(&a, path, NULL);
	BENCH_CHECK(r == 0, "cow_open: %s", cow_strerror(r));
	p = cow_base(a);
	(void)read_all(p, npages, pg);
	for (int i = 0; i < 3; i++)
		v[i] = calloc((size_t)reps, sizeof(double));
	BENCH_CHECK(v[0] && v[1] && v[2], "out of memory");
	for (int i = -4; i < reps; i++) {
		uint64_t t0, t1, t2, t3;

		for (size_t j = 0; j < k; j++)
			p[j * COMMIT_GAP * pg + 8] = (char)(i + 1 + (int)j);
		t0 = bench_now();
		bench_scan_walk(p, size);
		t1 = bench_now();
		r = cow_commit(a, COW_COMMIT_ASYNC);
		t2 = bench_now();
		BENCH_CHECK(r == 0, "cow_commit: %s", cow_strerror(r));
		if ((i + 4) % 16 == 15) {
			r = cow_sync(a);
			BENCH_CHECK(r == 0, "cow_sync: %s", cow_strerror(r));
		}
		t3 = t2 - t1;
		if (i < 0)
			continue; /* the tracking and the pool warm up */
		v[0][i] = (double)t3;
		v[1][i] = (double)(t1 - t0);
		v[2][i] = v[0][i] / v[1][i];
	}
	r = cow_sync(a);
	BENCH_CHECK(r == 0, "cow_sync: %s", cow_strerror(r));
	BENCH_CHECK(cow_dirty(a, NULL, 0) == 0, "pages left dirty");
	bench_size_label(sz, sizeof(sz), size);
	snprintf(title, sizeof(title),
		 "Asynchronous commits on a %s file arena read in whole", sz);
	t = bench_table("read-commit", title, NULL, BENCH_TIME, -1, 2, names);
	snprintf(title, sizeof(title),
		 "Asynchronous commits on a %s file arena read in whole: "
		 "commit / one bare walk",
		 sz);
	tr = bench_table("read-commit-ratio", title, NULL, BENCH_COUNT, -1, 1,
			 names + 2);
	snprintf(row, sizeof(row), "%zu pages %d apart", k, COMMIT_GAP);
	r = bench_row(t, row, 0);
	for (int c = 0; c < 2; c++)
		bench_cell(t, r, c, v[c], reps);
	bench_cell(tr, bench_row(tr, row, 0), 0, v[2], reps);
	bench_note(t, "Every page of the arena is read first (all mapped); "
		      "each round writes the pages, walks the range once "
		      "(PAGEMAP_SCAN, written pages only), then commits with "
		      "COW_COMMIT_ASYNC (its return time); cow_sync every 16 "
		      "rounds.");
	bench_note(tr, "The median of each round's ratio; 1.0 is one walk.");
	bench_end(t);
	bench_end(tr);
	for (int i = 0; i < 3; i++)
		free(v[i]);
	cow_close(a);
	close(fd);
}

int main(int argc, char **argv)
{
	bench_init(argc, argv,
		   "sparse discard, snapshot and rollback against one walk; "
		   "rollback after reading; commits on an arena read in "
		   "whole");
	table_sparse();
	table_read_rollback();
	table_read_commit();
	return 0;
}
