// SPDX-License-Identifier: MIT
/*
 * Area 5, scale.
 *
 * Table 1: opening and closing 10,000 small arenas, all open at once, per
 * arena, against plain anonymous mmap/munmap and a memfd + mmap by hand.
 * Table 2: lines of /proc/self/maps one 64 MiB state uses through a
 * typical life, cowarena against the mprotect tracker (which splits a
 * mapping at every isolated page it unprotects; vm.max_map_count is 65530
 * by default). Table 3: memory held per checkpoint when k pages are written
 * between checkpoints: cowarena's saved_bytes, a fork() checkpoint (the
 * child's private memory and page tables, read from /proc), the mprotect
 * tracker's page copies, and a full copy. Table 4: resident memory that
 * reading every page of a never-written anonymous arena adds, against
 * plain anonymous memory (which maps the shared zero page where the
 * kernel has one), a private memfd mapping (what an anonymous arena's
 * base is) and an arena on a sparse file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cowarena.h"
#include "mptrack.h"

#define SEED 0x5eed0005u

/* --- table 1: open/close of many arenas --- */

enum { O_COW, O_MMAP, O_MEMFD, NO };
static const char *const onames[NO] = {
    "cowarena (cow_open_anon / cow_close)",
    "mmap / munmap anonymous",
    "memfd_create + mmap / munmap + close",
};

struct octx {
	size_t n, size;
	int close_row; /* 0: time the opens, 1: time the closes */
	cow_arena **a;
	char **m;
	int *fd;
};

static void open_one(struct octx *x, int c, size_t i)
{
	int r;

	switch (c) {
	case O_COW:
		r = cow_open_anon(&x->a[i], x->size, NULL);
		BENCH_CHECK(r == 0, "cow_open_anon #%zu: %s", i,
			    cow_strerror(r));
		break;
	case O_MMAP:
		x->m[i] = mmap(NULL, x->size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		BENCH_CHECK(x->m[i] != MAP_FAILED, "mmap #%zu", i);
		break;
	case O_MEMFD:
		x->fd[i] = memfd_create("bench", MFD_CLOEXEC);
		BENCH_CHECK(x->fd[i] >= 0 &&
				ftruncate(x->fd[i], (off_t)x->size) == 0,
			    "memfd #%zu: %s", i, strerror(errno));
		x->m[i] = mmap(NULL, x->size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE, x->fd[i], 0);
		BENCH_CHECK(x->m[i] != MAP_FAILED, "mmap #%zu", i);
		break;
	}
}

static void close_one(struct octx *x, int c, size_t i)
{
	switch (c) {
	case O_COW:
		BENCH_CHECK(cow_close(x->a[i]) == 0, "cow_close");
		break;
	case O_MMAP:
		munmap(x->m[i], x->size);
		break;
	case O_MEMFD:
		munmap(x->m[i], x->size);
		close(x->fd[i]);
		break;
	}
}

static char *mem_of(struct octx *x, int c, size_t i)
{
	return c == O_COW ? cow_base(x->a[i]) : x->m[i];
}

static double run_open(void *arg, int c)
{
	struct octx *x = arg;
	uint64_t t0, t1, t2;

	t0 = bench_now();
	for (size_t i = 0; i < x->n; i++)
		open_one(x, c, i);
	t1 = bench_now();
	/* All open at once: each is usable and its own. */
	for (size_t i = 0; i < x->n; i++)
		*(volatile size_t *)mem_of(x, c, i) = i;
	for (size_t i = 0; i < x->n; i++)
		BENCH_CHECK(*(volatile size_t *)mem_of(x, c, i) == i,
			    "%s: region %zu lost its content", onames[c], i);
	t2 = bench_now();
	for (size_t i = 0; i < x->n; i++)
		close_one(x, c, i);
	return (double)(x->close_row ? bench_now() - t2 : t1 - t0) /
	       (double)x->n;
}

static void table_open(void)
{
	struct octx x = {0};
	struct bench_table *t;
	struct rlimit rl;
	char title[128];

	x.n = bench_pick(10000, 4000, 200);
	x.size = 64 << 10;
	/* One descriptor per open anonymous arena (its memfd). */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < x.n + 100) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < x.n + 100)
			x.n = rl.rlim_cur > 200 ? rl.rlim_cur - 100 : 100;
	}
	x.a = calloc(x.n, sizeof(*x.a));
	x.m = calloc(x.n, sizeof(*x.m));
	x.fd = calloc(x.n, sizeof(*x.fd));
	BENCH_CHECK(x.a && x.m && x.fd, "out of memory");
	snprintf(title, sizeof(title),
		 "Open and close %zu arenas of 64 KiB, all open at once "
		 "(time per arena)",
		 x.n);
	t = bench_table("scale-open", title, NULL, BENCH_TIME, O_COW, NO,
			onames);
	x.close_row = 0;
	bench_measure(t, bench_row(t, "open", 0), bench_opt.reps, run_open, &x);
	x.close_row = 1;
	bench_measure(t, bench_row(t, "close", 0), bench_opt.reps, run_open,
		      &x);
	bench_note(t, "Each run opens all of them, writes and checks a word "
		      "in each, then closes all.");
	bench_end(t);
	free(x.a);
	free(x.m);
	free(x.fd);
}

/* --- table 2: mappings used --- */

/* Lines of /proc/self/maps that start inside [p, p + len). */
static size_t maps_in(const void *p, size_t len)
{
	uintptr_t lo = (uintptr_t)p, hi = lo + len;
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	size_t n = 0;

	BENCH_CHECK(f != NULL, "/proc/self/maps");
	while (fgets(line, sizeof(line), f)) {
		uintptr_t s = (uintptr_t)strtoull(line, NULL, 16);

		n += s >= lo && s < hi;
	}
	fclose(f);
	return n;
}

static void table_maps(void)
{
	enum { M_COW, M_MPROT, NM };
	static const char *const mnames[NM] = {"cowarena", "mprotect tracker"};
	size_t size =
	    bench_pick((size_t)64 << 20, (size_t)64 << 20, (size_t)4 << 20);
	size_t pg = bench_pgsz(), np = size / pg, reserve;
	struct bench_table *t;
	struct mptrack mp;
	cow_arena *a;
	cow_snap *s;
	char *m, *b;
	double v;
	int rows[5], r;

	r = cow_open_anon(&a, size, NULL);
	BENCH_CHECK(r == 0, "cow_open_anon: %s", cow_strerror(r));
	reserve = cow_reserved(a);
	b = cow_base(a);
	m = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	BENCH_CHECK(m != MAP_FAILED, "mmap");
	mptrack_init(&mp, np);
	t = bench_table("scale-mappings",
			"Lines of /proc/self/maps used by one 64 MiB state",
			NULL, BENCH_COUNT, M_COW, NM, mnames);
	rows[0] = bench_row(t, "after open", 0);
	rows[1] = bench_row(t, "every other page written", 0);
	rows[2] = bench_row(t, "checkpoint, every other page written again", 0);
	rows[3] = bench_row(t, "after rollback", 0);
	rows[4] = bench_row(t, "after discard / close of the checkpoint", 0);

#define CELL(row, c, val)                           \
	do {                                        \
		v = (double)(val);                  \
		bench_cell(t, rows[row], c, &v, 1); \
	} while (0)
	CELL(0, M_COW, maps_in(b, reserve));
	CELL(0, M_MPROT, maps_in(m, size));
	for (size_t p = 0; p < np; p += 2) {
		b[p * pg] = 1;
		m[p * pg] = 1;
	}
	CELL(1, M_COW, maps_in(b, reserve));
	CELL(1, M_MPROT, maps_in(m, size));
	r = cow_snapshot(a, &s);
	BENCH_CHECK(r == 0, "cow_snapshot: %s", cow_strerror(r));
	mptrack_arm(&mp, m, size);
	for (size_t p = 0; p < np; p += 2) {
		b[p * pg] = 2;
		m[p * pg] = 2;
	}
	CELL(2, M_COW, maps_in(b, reserve));
	CELL(2, M_MPROT, maps_in(m, size));
	r = cow_rollback(a, s);
	BENCH_CHECK(r == 0, "cow_rollback: %s", cow_strerror(r));
	BENCH_CHECK(b[0] == 1 && b[pg] == 0, "rollback content");
	CELL(3, M_COW, maps_in(b, reserve));
	cow_snap_release(s);
	/* The tracker's rollback makes the range writable in one call: the
	 * count before that is what it needs while rolling back. */
	for (size_t i = 0; i < mp.n; i++)
		memcpy(m + mp.pages[i] * pg, mp.store + i * pg, pg);
	BENCH_CHECK(m[0] == 1 && m[pg] == 0, "mprotect rollback content");
	CELL(3, M_MPROT, maps_in(m, size));
	mptrack_disarm(&mp);
	r = cow_discard(a);
	BENCH_CHECK(r == 0, "cow_discard: %s", cow_strerror(r));
	CELL(4, M_COW, maps_in(b, reserve));
	CELL(4, M_MPROT, maps_in(m, size));
#undef CELL
	bench_note(t,
		   "cowarena counts its whole reservation (%zu MiB); "
		   "vm.max_map_count bounds the total per process.",
		   reserve >> 20);
	bench_end(t);
	mptrack_free(&mp);
	munmap(m, size);
	cow_close(a);
}

/* --- table 3: memory held per checkpoint --- */

enum { S_COW, S_FORK, S_MPROT, S_FULL, NS };
static const char *const snames[NS] = {
    "cowarena (saved_bytes)",
    "fork() (child's own pages + page tables)",
    "mprotect tracker (page copies)",
    "full copy",
};

struct sctx {
	size_t size, npages, pg, k, nsnap;
	double first_bytes; /* saved_bytes of the first snapshot */
	cow_arena *a;
	char *m;
	struct mptrack mp;
};

static size_t spage(const struct sctx *x, size_t snap, size_t i)
{
	/* Each checkpoint's k pages differ from the others'. */
	return (bench_spread(i, x->k, x->npages) + snap) % x->npages;
}

/* kB value of a "Name: N kB" line in a /proc file. */
static size_t proc_kb(pid_t pid, const char *file, const char *key)
{
	char path[64], line[256];
	size_t sum = 0, klen = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	f = fopen(path, "r");
	BENCH_CHECK(f != NULL, "%s", path);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen))
			sum += strtoull(line + klen, NULL, 10);
	fclose(f);
	return sum;
}

/*
 * The first snapshot of this state copies every page that differs from the
 * base (all of them here); the ones after it copy only what was written
 * since. The cell is the growth of saved_bytes per snapshot after the
 * first; the first one's cost goes to a note.
 */
static double mem_cow(struct sctx *x)
{
	cow_snap *s[65];
	struct cow_stats st0, st;
	int r;

	r = cow_snapshot(x->a, &s[0]);
	BENCH_CHECK(r == 0, "cow_snapshot: %s", cow_strerror(r));
	r = cow_stats(x->a, &st0);
	BENCH_CHECK(r == 0, "cow_stats: %s", cow_strerror(r));
	x->first_bytes = (double)st0.saved_bytes;
	for (size_t j = 1; j <= x->nsnap; j++) {
		r = cow_snapshot(x->a, &s[j]);
		BENCH_CHECK(r == 0, "cow_snapshot: %s", cow_strerror(r));
		for (size_t i = 0; i < x->k; i++)
			((char *)cow_base(x->a))[spage(x, j, i) * x->pg] ^= 1;
	}
	r = cow_stats(x->a, &st);
	BENCH_CHECK(r == 0, "cow_stats: %s", cow_strerror(r));
	r = cow_rollback(x->a, s[0]);
	BENCH_CHECK(r == 0, "cow_rollback: %s", cow_strerror(r));
	for (size_t j = 0; j <= x->nsnap; j++)
		cow_snap_release(s[j]);
	for (size_t p = 0; p < x->npages; p++)
		BENCH_CHECK(bench_page_ok(cow_base(x->a), p, SEED),
			    "cowarena: page %zu after rollback", p);
	return ((double)st.saved_bytes - (double)st0.saved_bytes) /
	       (double)x->nsnap;
}

static double mem_fork(struct sctx *x)
{
	int go[2], st;
	size_t kb;
	pid_t pid;
	char c = 0;

	BENCH_CHECK(pipe(go) == 0, "pipe");
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		for (size_t i = 0; i < x->k; i++)
			if (!bench_page_ok(x->m, spage(x, 0, i), SEED))
				_exit(1);
		_exit(0);
	}
	BENCH_CHECK(pid > 0, "fork");
	for (size_t i = 0; i < x->k; i++)
		x->m[spage(x, 0, i) * x->pg] ^= 1;
	kb = proc_kb(pid, "smaps_rollup", "Private_Clean:") +
	     proc_kb(pid, "smaps_rollup", "Private_Dirty:") +
	     proc_kb(pid, "status", "VmPTE:");
	BENCH_CHECK(write(go[1], &c, 1) == 1, "pipe");
	waitpid(pid, &st, 0);
	close(go[0]);
	close(go[1]);
	BENCH_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "fork: the child's copy changed");
	for (size_t i = 0; i < x->k; i++)
		x->m[spage(x, 0, i) * x->pg] ^= 1;
	return (double)kb * 1024;
}

static double mem_mprot(struct sctx *x)
{
	mptrack_arm(&x->mp, x->m, x->size);
	for (size_t i = 0; i < x->k; i++)
		x->m[spage(x, 0, i) * x->pg] ^= 1;
	mptrack_rollback(&x->mp);
	BENCH_CHECK(x->mp.n == x->k, "mprotect: %zu copies", x->mp.n);
	for (size_t i = 0; i < x->k; i++)
		BENCH_CHECK(bench_page_ok(x->m, spage(x, 0, i), SEED),
			    "mprotect rollback");
	return (double)(x->mp.n * (x->pg + sizeof(size_t)));
}

static double mem_full(struct sctx *x)
{
	/* Resident size of a full copy, measured by making one. */
	char *c = mmap(NULL, x->size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *vec = malloc(x->npages);
	size_t res = 0;

	BENCH_CHECK(c != MAP_FAILED && vec, "mmap");
	madvise(c, x->size, MADV_NOHUGEPAGE);
	memcpy(c, x->m, x->size);
	BENCH_CHECK(mincore(c, x->size, vec) == 0, "mincore");
	for (size_t p = 0; p < x->npages; p++)
		res += vec[p] & 1;
	BENCH_CHECK(!memcmp(c, x->m, x->size), "full copy");
	munmap(c, x->size);
	free(vec);
	return (double)(res * x->pg);
}

static double run_mem(void *arg, int c)
{
	struct sctx *x = arg;

	switch (c) {
	case S_COW:
		return mem_cow(x);
	case S_FORK:
		return mem_fork(x);
	case S_MPROT:
		return mem_mprot(x);
	default:
		return mem_full(x);
	}
}

static void table_memory(void)
{
	static const size_t ks[] = {1, 16, 256};
	struct sctx x = {0};
	struct bench_table *t;
	char lab[64];
	int r;

	x.size =
	    bench_pick((size_t)64 << 20, (size_t)64 << 20, (size_t)4 << 20);
	x.pg = bench_pgsz();
	x.npages = x.size / x.pg;
	x.nsnap = 16;
	x.m = mmap(NULL, x.size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	BENCH_CHECK(x.m != MAP_FAILED, "mmap");
	madvise(x.m, x.size, MADV_NOHUGEPAGE);
	for (size_t p = 0; p < x.npages; p++)
		bench_fill_page(x.m, p, SEED);
	r = cow_open_anon(&x.a, x.size, NULL);
	BENCH_CHECK(r == 0, "cow_open_anon: %s", cow_strerror(r));
	for (size_t p = 0; p < x.npages; p++)
		bench_fill_page(cow_base(x.a), p, SEED);
	t = bench_table("scale-memory",
			"Memory held per checkpoint of a 64 MiB state, k "
			"pages written after it",
			"pages written", BENCH_BYTES, S_COW, NS, snames);
	for (size_t i = 0; i < 3; i++) {
		x.k = ks[i];
		mptrack_init(&x.mp, x.k);
		snprintf(lab, sizeof(lab), "%zu", x.k);
		bench_measure(t, bench_row(t, lab, (double)x.k),
			      bench_opt.mode == BENCH_QUICK ? 1 : 3, run_mem,
			      &x);
		mptrack_free(&x.mp);
	}
	bench_note(t,
		   "cowarena: growth of saved_bytes over %zu more live "
		   "snapshots, each followed by k writes to other pages, "
		   "/ %zu. The first snapshot of this state (every page "
		   "differs from the base) held %.3g MiB.",
		   x.nsnap, x.nsnap, x.first_bytes / 1048576);
	bench_note(t, "fork(): one child's Private_Clean + Private_Dirty + "
		      "VmPTE after the parent wrote k pages. mprotect: pages "
		      "copied + their index. Full copy: resident pages of "
		      "a copy.");
	bench_end(t);
	cow_close(x.a);
	munmap(x.m, x.size);
}

/* --- table 4: memory that reading costs --- */

enum { R_COW, R_ANON, R_MEMFD, R_FILE, NR };
static const char *const rnames[NR] = {
    "cowarena (cow_open_anon)",
    "plain anonymous mmap",
    "MAP_PRIVATE memfd mapping",
    "cowarena on a sparse file (cow_open)",
};

struct rctx {
	size_t size, pg;
	size_t zero;	  /* pages of the plain mapping on the zero page */
	double shmem[NR]; /* bytes of shared memory the last read added */
	double clean[NR]; /* bytes of clean pages (file cache) it added */
};

/* A cowarena on a new sparse file of x->size bytes (its name to path). */
static cow_arena *open_sparse(const struct rctx *x, char *path, size_t len)
{
	int fd = bench_tmpfile("read", path, len), r;
	cow_arena *a;

	BENCH_CHECK(ftruncate(fd, (off_t)x->size) == 0, "ftruncate: %s",
		    strerror(errno));
	close(fd);
	r = cow_open(&a, path, NULL);
	BENCH_CHECK(r == 0, "cow_open: %s", cow_strerror(r));
	return a;
}

static size_t clean_kb(void)
{
	return proc_kb(getpid(), "smaps_rollup", "Private_Clean:") +
	       proc_kb(getpid(), "smaps_rollup", "Shared_Clean:");
}

/* Reads one byte of every page: their sum, 0 for pages of zeros. */
static unsigned read_pages(const char *p, size_t size, size_t pg)
{
	unsigned sum = 0;

	for (size_t off = 0; off < size; off += pg)
		sum += (unsigned char)*(const volatile char *)(p + off);
	return sum;
}

/* Resident bytes that reading contender c in whole adds. */
static double run_read(void *arg, int c)
{
	struct rctx *x = arg;
	cow_arena *a = NULL;
	size_t rss, shm, cln;
	char *p, path[4096] = "";
	int fd = -1, r;

	switch (c) {
	case R_FILE:
		a = open_sparse(x, path, sizeof(path));
		p = cow_base(a);
		break;
	case R_COW:
		r = cow_open_anon(&a, x->size, NULL);
		BENCH_CHECK(r == 0, "cow_open_anon: %s", cow_strerror(r));
		p = cow_base(a);
		break;
	case R_ANON:
		p = mmap(NULL, x->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		break;
	default:
		fd = memfd_create("bench-read", MFD_CLOEXEC);
		BENCH_CHECK(fd >= 0 && ftruncate(fd, (off_t)x->size) == 0,
			    "memfd: %s", strerror(errno));
		p = mmap(NULL, x->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_NORESERVE, fd, 0);
	}
	BENCH_CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	rss = proc_kb(getpid(), "smaps_rollup", "Rss:");
	shm = proc_kb(getpid(), "smaps_rollup", "Pss_Shmem:");
	cln = clean_kb();
	BENCH_CHECK(read_pages(p, x->size, x->pg) == 0,
		    "%s: a page never written is not zero", rnames[c]);
	rss = proc_kb(getpid(), "smaps_rollup", "Rss:") - rss;
	shm = proc_kb(getpid(), "smaps_rollup", "Pss_Shmem:") - shm;
	x->shmem[c] = (double)shm * 1024;
	x->clean[c] = (double)(clean_kb() - cln) * 1024;
	if (c == R_ANON)
		x->zero = bench_zero_pages(p, x->size);
	if (a)
		cow_close(a);
	else
		munmap(p, x->size);
	if (fd >= 0)
		close(fd);
	if (*path)
		unlink(path);
	return (double)rss * 1024;
}

static void table_read(void)
{
	static const size_t sizes[] = {(size_t)64 << 20, (size_t)1 << 30};
	struct rctx x = {.pg = bench_pgsz()};
	struct bench_table *t;
	char lab[32];
	size_t n = bench_opt.mode == BENCH_FULL ? 2 : 1;

	t = bench_table("scale-read",
			"Resident memory added by reading every page of a "
			"never-written region once",
			NULL, BENCH_BYTES, R_COW, NR, rnames);
	for (size_t i = 0; i < n; i++) {
		x.size = bench_pick(sizes[i], sizes[i], (size_t)4 << 20);
		bench_size_label(lab, sizeof(lab), x.size);
		bench_measure(t, bench_row(t, lab, 0),
			      bench_opt.mode == BENCH_QUICK ? 1 : 3, run_read,
			      &x);
		bench_note(t,
			   "%s: of it, shared memory (Pss_Shmem): cowarena "
			   "%.0f MiB, memfd %.0f MiB; clean file cache of the "
			   "sparse file %.0f MiB; the plain mapping had %zu "
			   "of %zu pages on the shared zero page.",
			   lab, x.shmem[R_COW] / 1048576,
			   x.shmem[R_MEMFD] / 1048576,
			   x.clean[R_FILE] / 1048576, x.zero, x.size / x.pg);
	}
	bench_note(t, "Rss growth in /proc/self/smaps_rollup across a read "
		      "of one byte per page (each read checked to be 0). A "
		      "kernel that maps the shared zero page on a read fault "
		      "of anonymous memory adds almost nothing for the plain "
		      "mapping; a memfd hole read through a private mapping "
		      "allocates a page of shared memory, a sparse file's "
		      "hole a page of clean file cache; the kernel can "
		      "reclaim both under memory pressure.");
	bench_end(t);
}

int main(int argc, char **argv)
{
	bench_init(argc, argv,
		   "bench_scale: many arenas, mappings used, memory per "
		   "checkpoint");
	signal(SIGPIPE, SIG_IGN);
	table_open();
	table_maps();
	table_memory();
	table_read();
	return 0;
}
