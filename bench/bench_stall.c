// SPDX-License-Identifier: MIT
/*
 * The longest commit calls: how long a cow_commit waits when the log is
 * checkpointed under it. Every call of a long series is timed on its own
 * and the series reports the median, the 99th percentile, the longest
 * call, the longest of the calls during which the log was checkpointed
 * (its cow_stats.log_bytes fell: the head moved, or the log was reset),
 * and, in a second table, how many calls took over 1 ms and how many
 * checkpoints the log went through.
 *
 *  - 10000 asynchronous commits of 1 page (a different page each), then
 *    one cow_sync: about 42 MiB of log, two or three checkpoints;
 *  - synchronous commits of 16 pages 1024 apart across four or more
 *    checkpoints (66 KiB of log each).
 *
 * The checkpoint size is the library's default (16 MiB). After each
 * series the file is reopened and every page the last commits wrote is
 * checked.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cowarena.h"

#define NPAGES 16384 /* 64 MiB of 4 KiB pages */

enum { S_MEDIAN, S_P99, S_MAX, S_MAX_CKPT, NT, S_SLOW = NT, S_CKPT, NS };
static const char *const names[NS] = {
    "median call",     "99th percentile", "longest call",
    "longest call across a checkpoint", "calls over 1 ms", "checkpoints",
};

struct series {
	const char *label;
	int async;
	size_t pages;  /* per commit */
	size_t stride; /* between them */
	size_t calls;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void stamp(char *base, size_t pg, size_t page, uint64_t gen)
{
	uint64_t *w = (uint64_t *)(base + page * pg);

	w[0] = gen;
	w[pg / 8 - 1] = gen;
}

static size_t page_at(const struct series *s, size_t call, size_t i)
{
	return (call * (s->async ? 1 : 7) + i * s->stride) % NPAGES;
}

/* One series: v[] gets the NS statistics. */
static void run(const struct series *s, double *v)
{
	char path[256];
	struct cow_options o = {.flags = COW_CREATE};
	struct cow_stats st;
	size_t pg = bench_pgsz(), ckpts = 0, slow = 0, last_log = 0;
	uint64_t max_ckpt = 0;
	uint64_t *t = malloc(s->calls * sizeof(*t));
	cow_arena *a;
	char *base;
	int fd;

	BENCH_CHECK(t, "out of memory");
	fd = bench_tmpfile("stall", path, sizeof(path));
	BENCH_CHECK(fd >= 0, "scratch file");
	BENCH_CHECK(ftruncate(fd, (off_t)(NPAGES * pg)) == 0, "ftruncate");
	close(fd);
	o.size = NPAGES * pg;
	BENCH_CHECK(cow_open(&a, path, &o) == 0, "cow_open");
	base = cow_base(a);
	for (size_t call = 0; call < s->calls; call++) {
		uint64_t t0;
		int r;

		for (size_t i = 0; i < s->pages; i++)
			stamp(base, pg, page_at(s, call, i), call + 1);
		t0 = bench_now();
		r = cow_commit(a, s->async ? COW_COMMIT_ASYNC : 0);
		t[call] = bench_now() - t0;
		BENCH_CHECK(r == 0, "cow_commit: %s", cow_strerror(r));
		slow += t[call] > 1000000;
		BENCH_CHECK(cow_stats(a, &st) == 0, "cow_stats");
		if (st.log_bytes < last_log) {
			ckpts++;
			if (t[call] > max_ckpt)
				max_ckpt = t[call];
		}
		last_log = st.log_bytes;
	}
	BENCH_CHECK(cow_sync(a) == 0, "cow_sync");
	BENCH_CHECK(cow_close(a) == 0, "cow_close");
	/* the last commits' pages, after a reopen */
	BENCH_CHECK(cow_open(&a, path, NULL) == 0, "reopen");
	base = cow_base(a);
	for (size_t call = s->calls - 8; call < s->calls; call++)
		for (size_t i = 0; i < s->pages; i++) {
			size_t p = page_at(s, call, i);
			const uint64_t *w = (const uint64_t *)(base + p * pg);

			BENCH_CHECK(w[0] >= call + 1 && w[0] == w[pg / 8 - 1],
				    "page %zu lost its commit", p);
		}
	cow_close(a);
	unlink(path);
	qsort(t, s->calls, sizeof(*t), cmp_u64);
	v[S_MEDIAN] = (double)t[s->calls / 2];
	v[S_P99] = (double)t[s->calls * 99 / 100];
	v[S_MAX] = (double)t[s->calls - 1];
	v[S_MAX_CKPT] = ckpts ? (double)max_ckpt : BENCH_NA;
	v[S_SLOW] = (double)slow;
	v[S_CKPT] = (double)ckpts;
	free(t);
}

int main(int argc, char **argv)
{
	struct series ser[] = {
	    {"async, 1 page, 10000 calls", 1, 1, 1, 10000},
	    {"sync, 16 pages 1024 apart, 1100 calls", 0, 16, 1024, 1100},
	};
	struct bench_table *tb, *tc;

	bench_init(argc, argv,
		   "the longest cow_commit calls across log checkpoints");
	/* --quick: a few calls, no checkpoint (only proves it runs) */
	ser[0].calls = bench_pick(10000, 10000, 500);
	ser[1].calls = bench_pick(1100, 1100, 40);
	tb = bench_table("stall", "Commit calls across log checkpoints "
				  "(per-call latency; counts are per series)",
			 NULL, BENCH_TIME, -1, NT, names);
	tc = bench_table("stall-counts", "Commit calls across log checkpoints "
					 "(counts per series)",
			 NULL, BENCH_COUNT, -1, NS - NT, names + NT);
	bench_note(tb, "Each row: one series of calls on a 64 MiB file, "
		       "medians over %d runs of each statistic; the log "
		       "checkpoints every 16 MiB (default).",
		   bench_opt.reps);
	bench_note(tb, "Longest call across a checkpoint: of the calls "
		       "after which cow_stats.log_bytes had fallen.");
	for (size_t r = 0; r < sizeof(ser) / sizeof(ser[0]); r++) {
		int row = bench_row(tb, ser[r].label, 0);
		int rowc = bench_row(tc, ser[r].label, 0);
		int reps = bench_opt.reps;
		double *v = calloc((size_t)reps * NS, sizeof(*v));
		double col[64];

		BENCH_CHECK(v && reps <= 64, "reps");
		for (int k = 0; k < reps; k++)
			run(&ser[r], v + (size_t)k * NS);
		for (int c = 0; c < NS; c++) {
			for (int k = 0; k < reps; k++)
				col[k] = v[(size_t)k * NS + (size_t)c];
			if (c < NT)
				bench_cell(tb, row, c, col, reps);
			else
				bench_cell(tc, rowc, c - NT, col, reps);
		}
		free(v);
	}
	bench_end(tb);
	bench_end(tc);
	return 0;
}
