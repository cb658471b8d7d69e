/* SPDX-License-Identifier: MIT */
/*
 * A small benchmark framework: monotonic timing, contenders run interleaved
 * (A B C A B C ..., the starting contender rotating each round) so that the
 * noise of a shared machine falls on all of them alike, the median and the
 * min-max spread of each, and one markdown table per area with cowarena's
 * ratio against each peer. Tables go to stdout and, with --out DIR, to
 * DIR/<name>.md and DIR/<name>.csv, plus DIR/<name>.svg where gnuplot is
 * installed.
 *
 * Nothing here is a constant: every cell is measured by the run that prints
 * it. A benchmark checks its own result (the content after a restore equals
 * the expected bytes) before it reports a time, and stops with bench_fail()
 * when it does not.
 */
#ifndef COW_BENCH_H
#define COW_BENCH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* How much to measure. */
enum bench_mode {
	BENCH_FULL,  /* the sizes of the README tables */
	BENCH_SHORT, /* smaller sizes, 3 runs: `cowarena bench`, seconds */
	BENCH_QUICK, /* tiny sizes, 1 run: only proves the benchmark runs */
};

struct bench_opts {
	enum bench_mode mode;
	int reps;	 /* runs per contender and row (--reps N) */
	const char *out; /* directory for .md/.csv/.svg, or NULL */
	const char *dir; /* directory for scratch files (--dir, /var/tmp) */
	double budget;	 /* ns: one run longer than this is not repeated */
};
extern struct bench_opts bench_opt;

/* Parses --quick, --short, --reps N, --out DIR, --dir DIR, --help. */
void bench_init(int argc, char **argv, const char *what);

/* The value for the run's mode: full, --short or --quick (a size, a
 * count). */
size_t bench_pick(size_t full, size_t shrt, size_t quick);

/* Nanoseconds from CLOCK_MONOTONIC. */
uint64_t bench_now(void);

/* A correctness failure: prints the message and exits with status 1. */
__attribute__((noreturn, format(printf, 1, 2))) void bench_fail(const char *fmt,
								...);
#define BENCH_CHECK(cond, ...)                   \
	do {                                     \
		if (!(cond))                     \
			bench_fail(__VA_ARGS__); \
	} while (0)

/* What a table's numbers are. TIME and BYTES and COUNT: lower is better;
 * RATE: higher is better. Ratios are always "how many times better
 * cowarena is": peer / cowarena for costs, cowarena / peer for rates. */
enum bench_unit { BENCH_TIME, BENCH_BYTES, BENCH_COUNT, BENCH_RATE };

#define BENCH_NA NAN /* a contender that does not apply to a row */

struct bench_table;

/*
 * A new table. name: file stem under --out; title: the heading; xname: what
 * the rows' x value is (the plot's x axis, e.g. "pages written"), or NULL
 * for no plot; ours: index of the cowarena contender the ratios are taken
 * against (-1: no ratios); names: ncont contender names.
 */
struct bench_table *bench_table(const char *name, const char *title,
				const char *xname, enum bench_unit unit,
				int ours, int ncont, const char *const *names);
/* A line printed under the table (method, caveats). */
__attribute__((format(printf, 2, 3))) void bench_note(struct bench_table *t,
						      const char *fmt, ...);
/* Adds a row; x is its position on the plot (> 0), or 0. Returns its index. */
int bench_row(struct bench_table *t, const char *label, double x);
/* Sets one cell from n samples (NAN samples are ignored; none = n/a). */
void bench_cell(struct bench_table *t, int row, int c, const double *v, int n);

/*
 * Measures one row: reps rounds, each running every contender once, in an
 * order that rotates by one each round. fn(ctx, c) does the setup, the
 * timed work and the check of contender c and returns the elapsed
 * nanoseconds (or another value in the table's unit), or BENCH_NA when c
 * does not apply. A contender that returns BENCH_NA once is not run again
 * for that row.
 */
typedef double (*bench_fn)(void *ctx, int c);
void bench_measure(struct bench_table *t, int row, int reps, bench_fn fn,
		   void *ctx);

/*
 * A row of the README's headline table, from row `row` of t once it is
 * measured: what, cowarena's median (the contender `ours`), each of the
 * npeers contenders peers[] with its median, and the ratios against them.
 * With --out it goes to DIR/headline-<table name>.md (rewritten by the
 * table's first headline of the run); tools/bench-readme.sh puts those
 * lines into the README.
 */
void bench_headline(struct bench_table *t, int row, const char *what,
		    int npeers, const int *peers);

/* Prints the table, writes its files and plot, frees it. */
void bench_end(struct bench_table *t);

/* Small helpers shared by the benchmark programs. */
size_t bench_pgsz(void);
/* What a PAGEMAP_SCAN asks for (the fields of struct pm_scan_arg). */
struct bench_scan {
	uint64_t flags, inverted, mask, anyof, ret;
};
/* PAGEMAP_SCAN over [p, p + len), through vec (vlen struct page_region):
 * the number of pages found. */
size_t bench_pagemap_scan(void *p, size_t len, const struct bench_scan *sp,
			  void *vec, size_t vlen);
/* One PAGEMAP_SCAN walk of the range, the cheapest kind (see bench.c). */
void bench_scan_walk(void *p, size_t len);
/* Pages of [p, p + len) mapped to the shared zero page (PAGE_IS_PFNZERO). */
size_t bench_zero_pages(void *p, size_t len);
/* Page number of the i-th of k pages spread evenly over npages. */
static inline size_t bench_spread(size_t i, size_t k, size_t npages)
{
	return k >= npages ? i : i * (npages / k);
}
/* Fills page p (of a mapping at base) with its reference content. */
void bench_fill_page(char *base, size_t p, uint64_t seed);
/* Writes page p's reference content at dst (one page). */
void bench_fill_at(char *dst, size_t p, uint64_t seed);
/* 1 when page p holds its reference content. */
int bench_page_ok(const char *base, size_t p, uint64_t seed);
/* Writes the reference content of pages [0, npages) to fd. */
void bench_write_file(int fd, size_t npages, uint64_t seed);
/* A scratch directory in bench_opt.dir, removed with all it holds when the
 * program exits (flat: files only). */
const char *bench_tmpdir(void);
/* Creates and opens a scratch file in it; its name goes to path. */
int bench_tmpfile(const char *tag, char *path, size_t pathlen);
/* Formats k pages as "1", "16", "0.1 %" of npages etc. */
/* A row's pages written: k, or frac of npages when k is 0; at least one,
 * at most npages. */
size_t bench_kpages(size_t k, double frac, size_t npages);
void bench_klabel(char *buf, size_t len, size_t k, size_t npages, double frac);
/* Formats a byte count as "64 MiB". */
void bench_size_label(char *buf, size_t len, size_t bytes);

#endif
