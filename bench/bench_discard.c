// SPDX-License-Identifier: MIT
/*
 * Area 2, discard to base: k written pages of a file arena go back to the
 * file's content.
 *
 * cowarena: cow_discard (finds the dirty pages itself) and cow_revert of
 * each written run (the caller knows the runs). Peers, on a MAP_PRIVATE
 * mapping of the same file: MADV_DONTNEED of each written run (the caller
 * knows the runs), one MAP_FIXED re-map of the whole range, memcpy of the
 * written pages from a saved copy of the file, pread of them from the file.
 * Only the restore is timed; every run then checks each written page holds
 * the file's bytes again.
 *
 * Second table, cost follows work: one dirty page in anonymous arenas of
 * 1 MiB, 1 GiB and 64 GiB.
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

#define SEED 0x5eed0002u

enum { C_DISCARD, C_REVERT, C_DONTNEED, C_REMAP, C_MEMCPY, C_PREAD, NC };
static const char *const names[NC] = {
    "cow_discard",     "cow_revert",	 "MADV_DONTNEED runs",
    "MAP_FIXED remap", "memcpy restore", "pread restore",
};

struct ctx {
	size_t size, npages, pg, k;
	int fd;
	cow_arena *a;
	char *map;   /* the peers' MAP_PRIVATE mapping of the file */
	char *saved; /* the file's content, for memcpy restore */
};

static void write_pages(char *base, const struct ctx *x)
{
	for (size_t i = 0; i < x->k; i++) {
		size_t p = bench_spread(i, x->k, x->npages);

		*(volatile uint64_t *)(base + p * x->pg + 64) = ~0ull - i;
	}
}

static void check_pages(const char *base, const struct ctx *x, const char *who)
{
	for (size_t i = 0; i < x->k; i++) {
		size_t p = bench_spread(i, x->k, x->npages);

		BENCH_CHECK(bench_page_ok(base, p, SEED),
			    "%s: page %zu not restored (k=%zu)", who, p, x->k);
	}
}

/* Applies f to each run of written pages: one run when k covers it all. */
static void for_runs(const struct ctx *x, char *base,
		     void (*f)(const struct ctx *, char *, size_t, size_t))
{
	if (x->k >= x->npages) {
		f(x, base, 0, x->npages);
		return;
	}
	for (size_t i = 0; i < x->k; i++)
		f(x, base, bench_spread(i, x->k, x->npages), 1);
}

static void do_revert(const struct ctx *x, char *base, size_t p, size_t n)
{
	int r = cow_revert(x->a, base + p * x->pg, n * x->pg);

	BENCH_CHECK(r == 0, "cow_revert: %s", cow_strerror(r));
}

static void do_dontneed(const struct ctx *x, char *base, size_t p, size_t n)
{
	BENCH_CHECK(madvise(base + p * x->pg, n * x->pg, MADV_DONTNEED) == 0,
		    "madvise: %s", strerror(errno));
}

static void do_memcpy(const struct ctx *x, char *base, size_t p, size_t n)
{
	memcpy(base + p * x->pg, x->saved + p * x->pg, n * x->pg);
}

static void do_pread(const struct ctx *x, char *base, size_t p, size_t n)
{
	size_t len = n * x->pg;

	BENCH_CHECK(pread(x->fd, base + p * x->pg, len, (off_t)(p * x->pg)) ==
			(ssize_t)len,
		    "pread: %s", strerror(errno));
}

static double run_one(void *arg, int c)
{
	struct ctx *x = arg;
	char *base = c <= C_REVERT ? cow_base(x->a) : x->map;
	uint64_t t0, t1;
	int r = 0;

	write_pages(base, x);
	t0 = bench_now();
	switch (c) {
	case C_DISCARD:
		r = cow_discard(x->a);
		break;
	case C_REVERT:
		for_runs(x, base, do_revert);
		break;
	case C_DONTNEED:
		for_runs(x, base, do_dontneed);
		break;
	case C_REMAP:
		if (mmap(base, x->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_FIXED, x->fd, 0) != base)
			r = -errno;
		break;
	case C_MEMCPY:
		for_runs(x, base, do_memcpy);
		break;
	case C_PREAD:
		for_runs(x, base, do_pread);
		break;
	}
	t1 = bench_now();
	BENCH_CHECK(r == 0, "%s: %s", names[c], strerror(-r));
	check_pages(base, x, names[c]);
	if (c <= C_REVERT) {
		BENCH_CHECK(cow_dirty(x->a, NULL, 0) == 0,
			    "%s left dirty pages", names[c]);
	} else {
		/* Start every run from a mapping with no private pages. */
		madvise(x->map, x->size, MADV_DONTNEED);
	}
	return (double)(t1 - t0);
}

static void table_discard(void)
{
	static const double fracs[] = {0, 0, 0.01, 0.10, 1.0};
	static const size_t ks[] = {1, 16, 0, 0, 0};
	struct ctx x = {0};
	char path[4096], sz[32], title[128], lab[64];
	struct cow_options o = {0};
	struct bench_table *t;
	int r;

	x.size =
	    bench_pick((size_t)1 << 30, (size_t)128 << 20, (size_t)4 << 20);
	x.pg = bench_pgsz();
	x.npages = x.size / x.pg;
	x.fd = bench_tmpfile("discard", path, sizeof(path));
	bench_write_file(x.fd, x.npages, SEED);
	r = cow_open(&x.a, path, &o);
	BENCH_CHECK(r == 0, "cow_open: %s", cow_strerror(r));
	x.map =
	    mmap(NULL, x.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, x.fd, 0);
	x.saved = malloc(x.size);
	BENCH_CHECK(x.map != MAP_FAILED && x.saved, "out of memory");
	BENCH_CHECK(pread(x.fd, x.saved, x.size, 0) == (ssize_t)x.size,
		    "pread");

	bench_size_label(sz, sizeof(sz), x.size);
	snprintf(title, sizeof(title),
		 "Discard to base: k written pages of a %s file arena", sz);
	t = bench_table("discard", title, "pages written", BENCH_TIME,
			C_DISCARD, NC, names);
	for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
		x.k = bench_kpages(ks[i], fracs[i], x.npages);
		bench_klabel(lab, sizeof(lab), x.k, x.npages,
			     ks[i] ? 0 : fracs[i]);
		bench_measure(t, bench_row(t, lab, (double)x.k), bench_opt.reps,
			      run_one, &x);
	}
	bench_note(t, "Written pages are spread evenly (one page every "
		      "n/k); each run writes one word in each, restores, "
		      "then checks every written page against the file.");
	bench_note(t, "cow_discard finds the written pages itself "
		      "(PAGEMAP_SCAN); cow_revert, MADV_DONTNEED, memcpy and "
		      "pread are given them (one call per run of pages).");
	bench_note(t, "After MADV_DONTNEED and MAP_FIXED the next access "
		      "faults again; memcpy and pread keep the pages private "
		      "(memory in use) and need a saved copy or the file.");
	bench_end(t);
	cow_close(x.a);
	munmap(x.map, x.size);
	free(x.saved);
	close(x.fd);
}

/* Cost follows work: one written page in arenas of very different sizes. */
enum { W_DISCARD, W_REVERT, W_DONTNEED_ALL, W_REMAP, NW };
static const char *const wnames[NW] = {
    "cow_discard",
    "cow_revert (1 page)",
    "MADV_DONTNEED whole range",
    "MAP_FIXED remap whole range",
};

struct wctx {
	size_t size, pg;
	cow_arena *a;
	char *map; /* a peer mapping of the same size, of zeros */
	int mfd;
};

static double run_work(void *arg, int c)
{
	struct wctx *x = arg;
	char *base = c <= W_REVERT ? cow_base(x->a) : x->map;
	char *page = base + (x->size / x->pg / 2) * x->pg;
	uint64_t t0, t1;
	int r = 0;

	*(volatile char *)page = 1;
	t0 = bench_now();
	switch (c) {
	case W_DISCARD:
		r = cow_discard(x->a);
		break;
	case W_REVERT:
		r = cow_revert(x->a, page, x->pg);
		break;
	case W_DONTNEED_ALL:
		r = madvise(base, x->size, MADV_DONTNEED) ? -errno : 0;
		break;
	case W_REMAP:
		if (mmap(base, x->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, x->mfd,
			 0) != base)
			r = -errno;
		break;
	}
	t1 = bench_now();
	BENCH_CHECK(r == 0, "%s: %s", wnames[c], strerror(-r));
	BENCH_CHECK(*(volatile char *)page == 0, "%s: page not restored",
		    wnames[c]);
	return (double)(t1 - t0);
}

static void table_work(void)
{
	size_t sizes[] = {(size_t)1 << 20, (size_t)1 << 30, (size_t)64 << 30};
	struct bench_table *t;
	char lab[32];
	int reps = bench_opt.mode == BENCH_QUICK ? 1 : 4 * bench_opt.reps;

	t = bench_table("discard-scale",
			"Cost follows work: discard 1 written page of an "
			"anonymous arena",
			"arena size (MiB)", BENCH_TIME, W_DISCARD, NW, wnames);
	for (size_t i = 0; i < 3; i++) {
		struct wctx x = {.size = sizes[i], .pg = bench_pgsz()};
		int r = cow_open_anon(&x.a, x.size, NULL);

		BENCH_CHECK(r == 0, "cow_open_anon(%zu): %s", x.size,
			    cow_strerror(r));
		x.mfd = memfd_create("bench-zeros", MFD_CLOEXEC);
		BENCH_CHECK(x.mfd >= 0 && ftruncate(x.mfd, (off_t)x.size) == 0,
			    "memfd");
		x.map = mmap(NULL, x.size, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_NORESERVE, x.mfd, 0);
		BENCH_CHECK(x.map != MAP_FAILED, "mmap");
		bench_size_label(lab, sizeof(lab), x.size);
		bench_measure(t, bench_row(t, lab, (double)(x.size >> 20)),
			      reps, run_work, &x);
		cow_close(x.a);
		munmap(x.map, x.size);
		close(x.mfd);
	}
	bench_note(t, "The peers run on a MAP_PRIVATE memfd mapping of the "
		      "same size (what an anonymous arena is). Nothing but "
		      "the one written page is populated.");
	bench_end(t);
}

int main(int argc, char **argv)
{
	bench_init(argc, argv,
		   "bench_discard: discard to base, cowarena vs "
		   "MADV_DONTNEED, MAP_FIXED, memcpy, pread");
	table_discard();
	table_work();
	return 0;
}
