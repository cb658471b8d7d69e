// SPDX-License-Identifier: MIT
/*
 * Area 3, write tracking.
 *
 * Table 1, the cost of the first write to a page after a checkpoint, per
 * page: after cow_snapshot (cowarena arms userfaultfd write-protection),
 * the same mechanism armed by hand (uffd WP_ASYNC, armed with
 * UFFDIO_WRITEPROTECT), no tracking at all, and mprotect + SIGSEGV with a
 * copy of the page on its first write. Two page states: a page that is
 * already private (written before the checkpoint: the pure tracking cost)
 * and a clean page of the base (the write also copies it: a copy-on-write
 * fault). Each run counts the written pages the method saw.
 *
 * Table 2, reading the written set of a 1 GiB arena with 0, 1, 10, 100 %
 * of its pages written: cow_dirty (pages that differ from the base),
 * PAGEMAP_SCAN of the same by hand, uffd-wp harvest + re-arm in one
 * PAGEMAP_SCAN (what a snapshot does), /proc/self/pagemap, and the
 * mprotect tracker's re-arm (its list is free; write-protecting again is
 * its cost). Each checks it found exactly the written pages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "compat.h"
#include "cowarena.h"
#include "mptrack.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

#define SEED 0x5eed0003u

static int pmfd = -1;

static int uffd_open(char *m, size_t len)
{
	struct uffdio_api api = {.api = UFFD_API,
				 .features = UFFD_FEATURE_WP_ASYNC |
					     UFFD_FEATURE_WP_UNPOPULATED};
	struct uffdio_register reg = {.range = {(uintptr_t)m, len},
				      .mode = UFFDIO_REGISTER_MODE_WP};
	int u = (int)syscall(SYS_userfaultfd,
			     O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (u < 0)
		return -1;
	if (ioctl(u, UFFDIO_API, &api) || ioctl(u, UFFDIO_REGISTER, &reg)) {
		close(u);
		return -1;
	}
	return u;
}

static void uffd_arm(int u, char *m, size_t len)
{
	struct uffdio_writeprotect wp = {.range = {(uintptr_t)m, len},
					 .mode = UFFDIO_WRITEPROTECT_MODE_WP};

	BENCH_CHECK(ioctl(u, UFFDIO_WRITEPROTECT, &wp) == 0,
		    "UFFDIO_WRITEPROTECT: %s", strerror(errno));
}

/*
 * One PAGEMAP_SCAN pass over [m, m + len): the private pages present, or
 * with wp the pages written, re-arming them. Returns the number found.
 */
static size_t scan(char *m, size_t len, int wp, struct page_region *vec,
		   size_t vlen)
{
	static const struct bench_scan harvest = {
	    PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, 0, PAGE_IS_WRITTEN, 0,
	    PAGE_IS_WRITTEN};
	static const struct bench_scan private = {
	    0, PAGE_IS_FILE, PAGE_IS_FILE, PAGE_IS_PRESENT, PAGE_IS_FILE};

	return bench_pagemap_scan(m, len, wp ? &harvest : &private, vec, vlen);
}

/* --- table 1: first write after a checkpoint --- */

enum { F_COW, F_UFFD, F_NONE, F_MPROT, NF };
static const char *const fnames[NF] = {
    "cowarena (after cow_snapshot)",
    "uffd-wp armed (by hand)",
    "no tracking",
    "mprotect+SIGSEGV",
};

struct fctx {
	size_t size, npages, pg, n; /* n pages written per run */
	int priv;		    /* pages private before the checkpoint */
	int memfd, uffd;
	cow_arena *a;
	char *map;  /* MAP_PRIVATE mapping of the memfd, never tracked */
	char *umap; /* another one, registered with uffd */
	struct page_region *vec;
	size_t vlen;
	struct mptrack mp;
};

static size_t fpage(const struct fctx *x, size_t i)
{
	return bench_spread(i, x->n, x->npages);
}

/* Puts the pages to be written in the row's state (not timed): present
 * base pages, and for the private row, copies (the same bytes rewritten). */
static void fprepare(struct fctx *x, char *base)
{
	madvise(base, x->size, MADV_DONTNEED);
	madvise(base, x->size, MADV_POPULATE_READ);
	if (x->priv)
		for (size_t i = 0; i < x->n; i++) {
			volatile char *p = base + fpage(x, i) * x->pg + 8;

			*p = *p;
		}
}

static uint64_t fwrite_pages(const struct fctx *x, char *base)
{
	uint64_t t0 = bench_now();

	for (size_t i = 0; i < x->n; i++)
		(base + fpage(x, i) * x->pg)[16] ^= 0x5a;
	return bench_now() - t0;
}

static void fcheck_restored(const struct fctx *x, const char *base)
{
	for (size_t i = 0; i < x->n; i++)
		BENCH_CHECK(bench_page_ok(base, fpage(x, i), SEED),
			    "cowarena: page %zu not rolled back", fpage(x, i));
}

static double run_first(void *arg, int c)
{
	struct fctx *x = arg;
	uint64_t t = 0;
	cow_snap *s;
	size_t seen;
	int r;

	switch (c) {
	case F_COW:
		fprepare(x, cow_base(x->a));
		r = cow_snapshot(x->a, &s);
		BENCH_CHECK(r == 0, "cow_snapshot: %s", cow_strerror(r));
		t = fwrite_pages(x, cow_base(x->a));
		r = cow_rollback(x->a, s);
		BENCH_CHECK(r == 0, "cow_rollback: %s", cow_strerror(r));
		cow_snap_release(s);
		fcheck_restored(x, cow_base(x->a));
		break;
	case F_UFFD:
		if (x->uffd < 0)
			return BENCH_NA;
		fprepare(x, x->umap);
		uffd_arm(x->uffd, x->umap, x->size);
		t = fwrite_pages(x, x->umap);
		seen = scan(x->umap, x->size, 1, x->vec, x->vlen);
		BENCH_CHECK(seen == x->n, "uffd-wp saw %zu of %zu writes", seen,
			    x->n);
		break;
	case F_NONE:
		fprepare(x, x->map);
		t = fwrite_pages(x, x->map);
		break;
	case F_MPROT:
		fprepare(x, x->map);
		mptrack_arm(&x->mp, x->map, x->size);
		t = fwrite_pages(x, x->map);
		mptrack_disarm(&x->mp);
		BENCH_CHECK(x->mp.n == x->n, "mprotect saw %zu of %zu writes",
			    x->mp.n, x->n);
		break;
	}
	return (double)t / (double)x->n;
}

static char *xmap(size_t len, int flags, int fd)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);

	BENCH_CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

static int data_memfd(size_t size)
{
	int fd = memfd_create("bench-track", MFD_CLOEXEC);

	BENCH_CHECK(fd >= 0 && ftruncate(fd, (off_t)size) == 0, "memfd: %s",
		    strerror(errno));
	bench_write_file(fd, size / bench_pgsz(), SEED);
	return fd;
}

static void table_first_write(void)
{
	struct fctx x = {0};
	struct cow_options o = {0};
	struct bench_table *t;
	char title[160], sz[32];
	int r;

	x.size =
	    bench_pick((size_t)256 << 20, (size_t)64 << 20, (size_t)4 << 20);
	x.pg = bench_pgsz();
	x.npages = x.size / x.pg;
	x.n = bench_opt.mode == BENCH_FULL ? 4096 : x.npages / 16;
	x.memfd = data_memfd(x.size);
	x.map = xmap(x.size, MAP_PRIVATE, x.memfd);
	x.umap = xmap(x.size, MAP_PRIVATE, x.memfd);
	x.uffd = uffd_open(x.umap, x.size);
	x.vlen = x.n + 16;
	x.vec = calloc(x.vlen, sizeof(*x.vec));
	BENCH_CHECK(x.vec != NULL, "out of memory");
	mptrack_init(&x.mp, x.n);
	o.size = x.size;
	r = cow_open_fd(&x.a, x.memfd, &o);
	BENCH_CHECK(r == 0, "cow_open_fd: %s", cow_strerror(r));
	bench_size_label(sz, sizeof(sz), x.size);
	snprintf(title, sizeof(title),
		 "First write to a page after a checkpoint, per page "
		 "(%zu pages of a %s memfd mapping)",
		 x.n, sz);
	t = bench_table("track-first-write", title, NULL, BENCH_TIME, F_COW, NF,
			fnames);
	for (x.priv = 1; x.priv >= 0; x.priv--) {
		static const int peers[] = {F_NONE};
		int row = bench_row(t,
				    x.priv ? "page already private "
					     "(tracking fault only)"
					   : "clean base page "
					     "(copy-on-write fault too)",
				    0);

		bench_measure(t, row, bench_opt.reps, run_first, &x);
		if (!x.priv)
			bench_headline(t, row,
				       "first write to a clean page after a "
				       "snapshot",
				       1, peers);
	}
	if (x.uffd < 0)
		bench_note(t, "uffd-wp: userfaultfd is not available here.");
	bench_note(t, "Time of the writes / pages written (one byte per "
		      "page, pages spread evenly); the checkpoint and the "
		      "rollback are not timed here (see the checkpoint "
		      "tables).");
	bench_end(t);
	cow_close(x.a);
	mptrack_free(&x.mp);
	if (x.uffd >= 0)
		close(x.uffd);
	munmap(x.map, x.size);
	munmap(x.umap, x.size);
	close(x.memfd);
	free(x.vec);
}

/* --- table 2: reading the written set --- */

enum { H_DIRTY, H_SCAN, H_UFFD, H_PAGEMAP, H_MPROT, NH };
static const char *const hnames[NH] = {
    "cow_dirty",
    "PAGEMAP_SCAN !FILE (by hand)",
    "uffd-wp harvest+re-arm",
    "/proc/self/pagemap",
    "mprotect re-arm",
};

struct hctx {
	size_t size, npages, pg, k;
	int uffd;
	cow_arena *a;
	char *map, *umap;
	struct page_region *vec;
	size_t vlen;
	struct cow_range *runs;
	uint64_t *pm;
	struct mptrack mp;
	long maxmap;
};

static size_t hpage(const struct hctx *x, size_t i)
{
	return bench_spread(i, x->k, x->npages);
}

static void hwrite(const struct hctx *x, char *base)
{
	for (size_t i = 0; i < x->k; i++)
		(base + hpage(x, i) * x->pg)[24] ^= 0x33;
}

static size_t read_pagemap(const struct hctx *x, const char *base)
{
	size_t found = 0, chunk = 4096;
	off_t off = (off_t)((uintptr_t)base / x->pg * 8);

	for (size_t done = 0; done < x->npages; done += chunk) {
		size_t n = x->npages - done < chunk ? x->npages - done : chunk;
		ssize_t got =
		    pread(pmfd, x->pm, n * 8, off + (off_t)(done * 8));

		BENCH_CHECK(got == (ssize_t)(n * 8), "pagemap read");
		for (size_t i = 0; i < n; i++)
			found += (x->pm[i] & PM_ENTRY_PRESENT) &&
				 !(x->pm[i] & PM_ENTRY_FILE);
	}
	return found;
}

static double run_harvest(void *arg, int c)
{
	struct hctx *x = arg;
	char *base = c == H_DIRTY  ? cow_base(x->a)
		     : c == H_UFFD ? x->umap
				   : x->map;
	size_t found = 0;
	uint64_t t0, t1;
	ssize_t n;

	if (c == H_UFFD && x->uffd < 0)
		return BENCH_NA;
	if (c == H_MPROT && x->k < x->npages &&
	    (long)(2 * x->k + 1000) > x->maxmap)
		return BENCH_NA;
	/* Start from the base, armed where it applies, then write. */
	madvise(base, x->size, MADV_DONTNEED);
	if (c == H_UFFD)
		uffd_arm(x->uffd, base, x->size);
	if (c == H_MPROT)
		mptrack_arm(&x->mp, base, x->size);
	hwrite(x, base);
	t0 = bench_now();
	switch (c) {
	case H_DIRTY:
		n = cow_dirty(x->a, x->runs, x->k + 1);
		BENCH_CHECK(n >= 0, "cow_dirty: %s", cow_strerror((int)n));
		for (ssize_t i = 0; i < n; i++)
			found += x->runs[i].length / x->pg;
		break;
	case H_SCAN:
		found = scan(base, x->size, 0, x->vec, x->vlen);
		break;
	case H_UFFD:
		found = scan(base, x->size, 1, x->vec, x->vlen);
		break;
	case H_PAGEMAP:
		found = read_pagemap(x, base);
		break;
	case H_MPROT:
		BENCH_CHECK(mprotect(base, x->size, PROT_READ) == 0,
			    "mprotect: %s", strerror(errno));
		found = x->mp.n;
		break;
	}
	t1 = bench_now();
	if (c == H_MPROT)
		mptrack_disarm(&x->mp);
	BENCH_CHECK(found == x->k, "%s found %zu written pages of %zu",
		    hnames[c], found, x->k);
	return (double)(t1 - t0);
}

static void table_harvest(void)
{
	static const double fracs[] = {0, 0.01, 0.10, 1.0};
	struct hctx x = {0};
	struct bench_table *t;
	char title[160], sz[32], lab[32];
	int memfd, r;

	x.size = bench_pick((size_t)1 << 30, (size_t)64 << 20, (size_t)4 << 20);
	x.pg = bench_pgsz();
	x.npages = x.size / x.pg;
	x.maxmap = 65530;
	memfd = data_memfd(x.size);
	x.map = xmap(x.size, MAP_PRIVATE, memfd);
	x.umap = xmap(x.size, MAP_PRIVATE, memfd);
	x.uffd = uffd_open(x.umap, x.size);
	x.vlen = 4096;
	x.vec = calloc(x.vlen, sizeof(*x.vec));
	x.runs = calloc(x.npages + 1, sizeof(*x.runs));
	x.pm = calloc(4096, 8);
	BENCH_CHECK(x.vec && x.runs && x.pm, "out of memory");
	mptrack_init(&x.mp, x.npages);
	r = cow_open_fd(&x.a, memfd, NULL);
	BENCH_CHECK(r == 0, "cow_open_fd: %s", cow_strerror(r));

	bench_size_label(sz, sizeof(sz), x.size);
	snprintf(title, sizeof(title), "Reading the written set of a %s arena",
		 sz);
	t = bench_table("track-harvest", title, NULL, BENCH_TIME, H_DIRTY, NH,
			hnames);
	for (size_t i = 0; i < 4; i++) {
		x.k = (size_t)(fracs[i] * (double)x.npages);
		snprintf(lab, sizeof(lab), "%g %% (%zu)", fracs[i] * 100, x.k);
		bench_measure(t, bench_row(t, lab, 0), bench_opt.reps,
			      run_harvest, &x);
	}
	bench_note(t, "Written pages spread evenly (the 1 %% and 10 %% rows "
		      "are isolated pages, 100 %% is one run); only the read "
		      "of the set is timed and each method must find exactly "
		      "the written pages. Pages not written are not present "
		      "(read faults would add file PTEs to walk).");
	bench_note(t, "mprotect re-arm: the tracker knows its pages already; "
		      "its cost is write-protecting the range again "
		      "(merging the split mappings). Not run where the split "
		      "mappings would pass vm.max_map_count.");
	bench_end(t);
	cow_close(x.a);
	mptrack_free(&x.mp);
	if (x.uffd >= 0)
		close(x.uffd);
	munmap(x.map, x.size);
	munmap(x.umap, x.size);
	close(memfd);
	free(x.vec);
	free(x.runs);
	free(x.pm);
}

int main(int argc, char **argv)
{
	bench_init(argc, argv,
		   "bench_track: write-tracking costs, uffd-wp vs mprotect");
	pmfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	BENCH_CHECK(pmfd >= 0, "/proc/self/pagemap: %s", strerror(errno));
	table_first_write();
	table_harvest();
	return 0;
}
