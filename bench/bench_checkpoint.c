// SPDX-License-Identifier: MIT
/*
 * Area 1, checkpoint + rollback of k written pages.
 *
 * One cycle = take a checkpoint, write one word in each of k pages (spread
 * evenly over the arena), return to the checkpoint; the whole cycle is
 * timed, because where the cost lands (checkpoint, write faults, rollback)
 * differs between the methods. After each cycle every written page is
 * checked against its checkpoint content.
 *
 * The state is a file loaded MAP_PRIVATE and read once (all pages present),
 * so the checkpoint is the file's content and every method applies:
 *  - cowarena: cow_snapshot, writes, cow_rollback, cow_snap_release;
 *  - fork(): the child keeps the copy; rolling back means the copy
 *    continues and the other process exits: timed = fork + writes + one
 *    process exit (the child checks its copy while the clock is stopped);
 *  - full memcpy of the arena before the writes and back after;
 *  - mprotect + SIGSEGV: copy each page on its first write, copy back;
 *  - MAP_FIXED re-map of the whole file over the range (only possible
 *    because the checkpoint is the file's content);
 *  - floor: memcpy of just the k pages out before the writes and back;
 *  - floor with a scan: the same plus one walk of the range's page tables
 *    (the cheapest PAGEMAP_SCAN), what finding the written pages costs
 *    at the least.
 * The 64 GiB arena is a sparse file of which only the written pages are
 * ever touched. A second set of tables uses a fully written anonymous state
 * (the checkpoint is not the base, so there is no re-map contender).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cowarena.h"
#include "mptrack.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

#define SEED 0x5eed0001u

enum { C_COW, C_FORK, C_MEMCPY, C_MPROT, C_REMAP, C_FLOOR, C_FLOOR_SCAN, NC };
static const char *const names[NC] = {
    "cowarena",		"fork()",	   "full memcpy",
    "mprotect+SIGSEGV", "MAP_FIXED remap", "floor: memcpy of k pages",
    "floor: one scan + memcpy of k pages",
};

struct ctx {
	size_t size, npages, pg, k;
	int anon;     /* fully written anonymous state, not a file */
	int populate; /* all pages present before each cycle */
	int fd;
	cow_arena *a;
	char *map;	/* the peers' copy of the state */
	char *full;	/* the full-memcpy buffer, or NULL (too big) */
	char *kbuf;	/* the floor's k-page buffer */
	long maxmap;	/* vm.max_map_count */
	cow_snap *root; /* anonymous state: a snapshot kept throughout */
	double root_ns; /* what taking it cost */
	struct mptrack mp;
};

static size_t page_of(const struct ctx *x, size_t i)
{
	return bench_spread(i, x->k, x->npages);
}

static void write_pages(char *base, const struct ctx *x)
{
	for (size_t i = 0; i < x->k; i++)
		*(volatile uint64_t *)(base + page_of(x, i) * x->pg + 64) =
		    ~0ull - i;
}

/* The checkpoint's content of the written pages: the pattern, or zeros
 * in the sparse file. */
static int pages_ok(const char *base, const struct ctx *x)
{
	static const char zero[64];

	for (size_t i = 0; i < x->k; i++) {
		const char *p = base + page_of(x, i) * x->pg;

		if (x->populate || x->anon) {
			if (!bench_page_ok(base, page_of(x, i), SEED))
				return 0;
			continue;
		}
		for (size_t o = 0; o < x->pg; o += sizeof(zero))
			if (memcmp(p + o, zero, sizeof(zero)))
				return 0;
	}
	return 1;
}

/* Brings a state back to where every cycle starts (not timed). */
static void reset(const struct ctx *x, char *base, int whole)
{
	if (x->anon) {
		for (size_t i = 0; i < x->k; i++)
			bench_fill_page(base, page_of(x, i), SEED);
		return;
	}
	if (whole || x->k >= x->npages) {
		madvise(base, x->size, MADV_DONTNEED);
		if (x->populate)
			madvise(base, x->size, MADV_POPULATE_READ);
		return;
	}
	for (size_t i = 0; i < x->k; i++) {
		char *p = base + page_of(x, i) * x->pg;

		madvise(p, x->pg, MADV_DONTNEED);
		if (x->populate)
			(void)*(volatile char *)p;
	}
}

static double cycle_cow(struct ctx *x)
{
	char *base = cow_base(x->a);
	cow_snap *s;
	uint64_t t0, t1;
	int r;

	t0 = bench_now();
	r = cow_snapshot(x->a, &s);
	BENCH_CHECK(r == 0, "cow_snapshot: %s", cow_strerror(r));
	write_pages(base, x);
	r = cow_rollback(x->a, s);
	cow_snap_release(s);
	t1 = bench_now();
	BENCH_CHECK(r == 0, "cow_rollback: %s", cow_strerror(r));
	BENCH_CHECK(pages_ok(base, x), "cowarena: content after rollback");
	reset(x, base, 0);
	return (double)(t1 - t0);
}

static double cycle_fork(struct ctx *x)
{
	int go[2], done[2], st;
	uint64_t t0, t1, t2, t3;
	char c = 0;
	pid_t pid;

	BENCH_CHECK(pipe(go) == 0 && pipe(done) == 0, "pipe");
	t0 = bench_now();
	pid = fork();
	if (pid == 0) {
		/* The checkpoint: check the copy once the parent wrote, then
		 * exit when told (the roll back), or when the parent died. */
		close(go[1]);
		close(done[0]);
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		c = (char)pages_ok(x->map, x);
		if (write(done[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	BENCH_CHECK(pid > 0, "fork: %s", strerror(errno));
	write_pages(x->map, x);
	t1 = bench_now();
	BENCH_CHECK(write(go[1], &c, 1) == 1 && read(done[0], &c, 1) == 1,
		    "fork: child lost");
	BENCH_CHECK(c == 1, "fork: the child's copy changed");
	t2 = bench_now();
	BENCH_CHECK(write(go[1], &c, 1) == 1, "fork: child lost");
	waitpid(pid, &st, 0);
	t3 = bench_now();
	BENCH_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork: child %d",
		    st);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
	reset(x, x->map, 0);
	return (double)(t1 - t0 + t3 - t2);
}

static double cycle_memcpy(struct ctx *x)
{
	uint64_t t0, t1;

	if (!x->full)
		return BENCH_NA;
	t0 = bench_now();
	memcpy(x->full, x->map, x->size);
	write_pages(x->map, x);
	memcpy(x->map, x->full, x->size);
	t1 = bench_now();
	BENCH_CHECK(pages_ok(x->map, x), "memcpy: content after restore");
	/* Every page is now private: start the next cycle from the file. */
	reset(x, x->map, 1);
	return (double)(t1 - t0);
}

static double cycle_mprot(struct ctx *x)
{
	uint64_t t0, t1;

	/* Each isolated unprotected page splits off 2 mappings. */
	if (x->k < x->npages && (long)(2 * x->k + 1000) > x->maxmap)
		return BENCH_NA;
	t0 = bench_now();
	mptrack_arm(&x->mp, x->map, x->size);
	write_pages(x->map, x);
	mptrack_rollback(&x->mp);
	t1 = bench_now();
	BENCH_CHECK(x->mp.n == x->k, "mprotect: %zu pages saved, not %zu",
		    x->mp.n, x->k);
	BENCH_CHECK(pages_ok(x->map, x), "mprotect: content after rollback");
	reset(x, x->map, 0);
	/* Bound the memory held between cycles (the copies are fresh
	 * memory in every cycle). */
	madvise(x->mp.store, x->k * x->pg, MADV_DONTNEED);
	return (double)(t1 - t0);
}

static double cycle_remap(struct ctx *x)
{
	uint64_t t0, t1;
	void *p;

	if (x->anon)
		return BENCH_NA;
	t0 = bench_now();
	write_pages(x->map, x);
	p = mmap(x->map, x->size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, x->fd, 0);
	t1 = bench_now();
	BENCH_CHECK(p == x->map, "mmap MAP_FIXED: %s", strerror(errno));
	BENCH_CHECK(pages_ok(x->map, x), "remap: content after re-map");
	reset(x, x->map, 1);
	return (double)(t1 - t0);
}

static double cycle_floor(struct ctx *x, int scan)
{
	/* The full-copy buffer is already in memory: reuse it. */
	char *kbuf = x->full ? x->full : x->kbuf;
	uint64_t t0, t1;

	t0 = bench_now();
	if (scan)
		bench_scan_walk(x->map, x->size);
	if (x->k >= x->npages) {
		memcpy(kbuf, x->map, x->size);
		write_pages(x->map, x);
		memcpy(x->map, kbuf, x->size);
	} else {
		for (size_t i = 0; i < x->k; i++)
			memcpy(kbuf + i * x->pg, x->map + page_of(x, i) * x->pg,
			       x->pg);
		write_pages(x->map, x);
		for (size_t i = 0; i < x->k; i++)
			memcpy(x->map + page_of(x, i) * x->pg, kbuf + i * x->pg,
			       x->pg);
	}
	t1 = bench_now();
	BENCH_CHECK(pages_ok(x->map, x), "floor: content after restore");
	reset(x, x->map, 0);
	return (double)(t1 - t0);
}

static double run_one(void *arg, int c)
{
	struct ctx *x = arg;

	switch (c) {
	case C_COW:
		return cycle_cow(x);
	case C_FORK:
		return cycle_fork(x);
	case C_MEMCPY:
		return cycle_memcpy(x);
	case C_MPROT:
		return cycle_mprot(x);
	case C_REMAP:
		return cycle_remap(x);
	case C_FLOOR:
		return cycle_floor(x, 0);
	default:
		return cycle_floor(x, 1);
	}
}

static long max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long v = 65530;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 65530;
		fclose(f);
	}
	return v;
}

static void *xmap(size_t len, int prot, int flags, int fd)
{
	void *p = mmap(NULL, len, prot, flags, fd, 0);

	BENCH_CHECK(p != MAP_FAILED, "mmap %zu: %s", len, strerror(errno));
	return p;
}

/*
 * Every page of the anonymous state differs from the base (zeros), and a
 * snapshot with no older one copies each such page. A program keeps its
 * first snapshot and branches from there, so the cycles run under one
 * snapshot taken here, whose cost is reported in a note.
 */
static void root_snapshot(struct ctx *x)
{
	uint64_t t0 = bench_now();
	int r = cow_snapshot(x->a, &x->root);

	BENCH_CHECK(r == 0, "cow_snapshot: %s", cow_strerror(r));
	x->root_ns = (double)(bench_now() - t0);
}

/* Sets up the state of one arena size: file (or anonymous) and mappings. */
static void setup(struct ctx *x)
{
	struct cow_options o = {0};
	char path[4096];
	int r;

	x->pg = bench_pgsz();
	x->npages = x->size / x->pg;
	x->maxmap = max_map_count();
	x->fd = -1;
	x->full = NULL;
	if (x->anon) {
		x->map = xmap(x->size, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
		madvise(x->map, x->size, MADV_NOHUGEPAGE);
		for (size_t p = 0; p < x->npages; p++)
			bench_fill_page(x->map, p, SEED);
	} else {
		/* The sparse state is a memfd: holes of a disk file would
		 * make every first touch a file-system lookup. */
		if (x->populate) {
			x->fd = bench_tmpfile("ckpt", path, sizeof(path));
			bench_write_file(x->fd, x->npages, SEED);
		} else {
			x->fd = memfd_create("bench-sparse", MFD_CLOEXEC);
			BENCH_CHECK(x->fd >= 0 &&
					ftruncate(x->fd, (off_t)x->size) == 0,
				    "memfd: %s", strerror(errno));
		}
		x->map = xmap(x->size, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_NORESERVE, x->fd);
		if (x->populate)
			madvise(x->map, x->size, MADV_POPULATE_READ);
	}
	if (x->anon) {
		r = cow_open_anon(&x->a, x->size, NULL);
		BENCH_CHECK(r == 0, "cow_open_anon: %s", cow_strerror(r));
		for (size_t p = 0; p < x->npages; p++)
			bench_fill_page(cow_base(x->a), p, SEED);
		root_snapshot(x);
	} else {
		o.size = x->size;
		r = cow_open_fd(&x->a, x->fd, &o);
		BENCH_CHECK(r == 0, "cow_open_fd: %s", cow_strerror(r));
		if (x->populate)
			madvise(cow_base(x->a), x->size, MADV_POPULATE_READ);
	}
	if (x->size <= ((size_t)4 << 30)) {
		x->full = xmap(x->size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1);
		memset(x->full, 1, x->size);
	}
}

static void teardown(struct ctx *x)
{
	if (x->root)
		cow_snap_release(x->root);
	cow_close(x->a);
	munmap(x->map, x->size);
	if (x->full)
		munmap(x->full, x->size);
	if (x->fd >= 0)
		close(x->fd);
}

static void table_size(size_t size, int anon)
{
	static const double fracs[] = {0, 0, 0, 0.001, 0.01, 0.10, 1.0};
	static const size_t ks[] = {1, 16, 256, 0, 0, 0, 0};
	static const int peers[] = {C_FORK, C_FLOOR_SCAN};
	struct ctx x = {.size = size, .anon = anon};
	char sz[32], name[64], title[160], lab[64], what[160];
	int row;
	struct bench_table *t;
	/* Bound the memory: at most 1 GiB of written pages per cycle. */
	size_t kmax = bench_opt.mode == BENCH_QUICK
			  ? 1024
			  : ((size_t)1 << 30) / bench_pgsz();

	x.populate = size <= ((size_t)1 << 30);
	setup(&x);
	bench_size_label(sz, sizeof(sz), size);
	snprintf(name, sizeof(name), "checkpoint-%s%s", anon ? "anon-" : "",
		 sz);
	for (char *p = name; *p; p++)
		if (*p == ' ')
			*p = '-';
	snprintf(title, sizeof(title),
		 "Checkpoint + rollback of k written pages, %s %s", sz,
		 anon ? "anonymous state, every page written"
		      : (x.populate ? "file state, all pages present"
				    : "sparse state (memfd), only written "
				      "pages touched"));
	t = bench_table(name, title, "pages written", BENCH_TIME, C_COW, NC,
			names);
	for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
		x.k = bench_kpages(ks[i], fracs[i], x.npages);
		if (x.k > kmax)
			continue;
		mptrack_init(&x.mp, x.k);
		x.kbuf = xmap(x.k * x.pg, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
		bench_klabel(lab, sizeof(lab), x.k, x.npages,
			     ks[i] ? 0 : fracs[i]);
		row = bench_row(t, lab, (double)x.k);
		bench_measure(t, row, bench_opt.reps, run_one, &x);
		/* The headline: the anonymous state against fork(), the
		 * file states read in against fork() and the floor. */
		if (x.populate &&
		    (fracs[i] == 0.001 || (anon && ks[i] == 16))) {
			char k[32];

			snprintf(k, sizeof(k), "%zu pages", x.k);
			snprintf(what, sizeof(what),
				 "checkpoint + rollback, %s %s, %s written", sz,
				 anon ? "state every page written"
				      : "file read in",
				 ks[i] ? k : lab);
			bench_headline(t, row, what, anon ? 1 : 2, peers);
		}
		munmap(x.kbuf, x.k * x.pg);
		mptrack_free(&x.mp);
	}
	if (x.root)
		bench_note(t,
			   "cowarena: the cycles run under one snapshot "
			   "taken after the state was written, kept "
			   "throughout (taking it cost %.3g ms: it copies "
			   "every page that differs from the base).",
			   x.root_ns / 1e6);
	bench_note(t, "One cycle = checkpoint, one word written in each of k "
		      "pages spread evenly, rollback; all timed. Every "
		      "written page is checked after each cycle.");
	if (!x.full)
		bench_note(t, "full memcpy: not run (needs a copy of the "
			      "whole arena in memory).");
	if (x.k < x.npages)
		bench_note(t,
			   "Rows of more than %zu MiB of written pages are "
			   "not run (memory bound).",
			   (kmax * x.pg) >> 20);
	bench_note(t,
		   "mprotect+SIGSEGV: not run where each written page "
		   "would split off 2 mappings beyond vm.max_map_count "
		   "(%ld).",
		   x.maxmap);
	bench_note(t, "fork(): fork + the writes (copy-on-write faults) + "
		      "exit of one of the two processes.");
	bench_end(t);
	teardown(&x);
}

int main(int argc, char **argv)
{
	bench_init(argc, argv,
		   "bench_checkpoint: checkpoint + rollback of k written "
		   "pages, cowarena vs fork, memcpy, mprotect, MAP_FIXED");
	signal(SIGPIPE, SIG_IGN);
	if (bench_opt.mode == BENCH_QUICK) {
		table_size((size_t)4 << 20, 0);
		table_size((size_t)4 << 20, 1);
		table_size((size_t)64 << 30, 0);
		return 0;
	}
	if (bench_opt.mode == BENCH_SHORT) {
		table_size((size_t)64 << 20, 0);
		return 0;
	}
	table_size((size_t)64 << 20, 0);
	table_size((size_t)1 << 30, 0);
	table_size((size_t)64 << 30, 0);
	table_size((size_t)64 << 20, 1);
	return 0;
}
