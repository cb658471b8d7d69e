// SPDX-License-Identifier: MIT
/* The guard on every file backing: one writer per file (threads and
 * processes), changes from outside (-ESTALE), COW_ISOLATE, and SIGBUS from
 * a file truncated by another process. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "guard.h"
#include "internal.h"
#include "testhooks.h"
#include "compat.h"
#include "track.h"

#define PG 4096UL
#define NPG 64
#define SZ (NPG * PG)

/* An arena on a file the test keeps a descriptor of (the only way to
 * reach a memfd from outside the arena). */
struct fa {
	struct th_arena t;
	int fd;
};

/* Opens another arena on f's file. */
static int open_same(struct fa *f, cow_arena **out, const struct cow_options *o)
{
	if (f->t.b == TH_MEMFD)
		return cow_open_fd(out, f->fd, o);
	return cow_open(out, f->t.path, o);
}

static int fa_open(struct fa *f, int b, size_t size,
		   const struct cow_options *o)
{
	memset(f, 0, sizeof(*f));
	f->t.b = b;
	f->t.pgsz = PG;
	f->fd = th_make_file(b, size, f->t.path, sizeof(f->t.path));
	if (f->fd < 0)
		return f->fd;
	return open_same(f, &f->t.a, o);
}

static void fa_close(struct fa *f)
{
	th_close(&f->t);
	close(f->fd);
}

/* A descriptor of f's file that is not the arena's: someone else. */
static int outsider(struct fa *f)
{
	char link[64];

	snprintf(link, sizeof(link), "/proc/self/fd/%d", f->fd);
	return open(link, O_RDWR | O_CLOEXEC);
}

static const struct cow_options ro = {.flags = COW_READONLY};
static const struct cow_options iso = {.flags = COW_ISOLATE};

static void test_lock_same_process(void **state)
{
	(void)state;
	for (int b = TH_MEMFD; b < TH_NBACKINGS; b++) {
		size_t fds, maps;
		cow_arena *a2, *r1, *r2;
		struct fa f;

		assert_int_equal(fa_open(&f, b, SZ, NULL), 0);
		fds = th_count_fds();
		maps = th_count_maps();
		/* one writer: a second writer and a reader are refused, and
		 * the refusal leaves nothing behind */
		assert_int_equal(open_same(&f, &a2, NULL), -EBUSY);
		assert_int_equal(open_same(&f, &a2, &ro), -EBUSY);
		assert_int_equal(open_same(&f, &a2, &iso), -EBUSY);
		assert_int_equal(th_count_fds(), fds);
		if (TH_MAPS_EXACT)
			assert_int_equal(th_count_maps(), maps);
		cow_close(f.t.a);
		f.t.a = NULL;
		/* readers share; a writer is refused while they read */
		assert_int_equal(open_same(&f, &r1, &ro), 0);
		assert_int_equal(open_same(&f, &r2, &ro), 0);
		assert_int_equal(open_same(&f, &a2, NULL), -EBUSY);
		cow_close(r1);
		assert_int_equal(open_same(&f, &a2, NULL), -EBUSY);
		cow_close(r2);
		/* the last reader gone, a writer gets it */
		assert_int_equal(open_same(&f, &a2, NULL), 0);
		cow_close(a2);
		fa_close(&f);
	}
}

/* Two arenas opened from one caller descriptor still exclude each other:
 * each has its own open file description. */
static void test_lock_same_fd(void **state)
{
	char path[256];
	cow_arena *a, *a2;
	int fd;

	(void)state;
	fd = th_make_file(TH_EXT4, SZ, path, sizeof(path));
	assert_true(fd >= 0);
	assert_int_equal(cow_open_fd(&a, fd, NULL), 0);
	assert_int_equal(cow_open_fd(&a2, fd, NULL), -EBUSY);
	assert_int_equal(cow_open(&a2, path, NULL), -EBUSY);
	cow_close(a);
	/* the caller's descriptor is still open: the lock went with close */
	assert_int_equal(cow_open_fd(&a2, fd, NULL), 0);
	cow_close(a2);
	close(fd);
	unlink(path);
}

struct race {
	const char *path;
	pthread_barrier_t *bar;
	cow_arena *a;
	int r;
};

static void *race_open(void *arg)
{
	struct race *x = arg;

	pthread_barrier_wait(x->bar);
	x->r = cow_open(&x->a, x->path, NULL);
	return NULL;
}

/* Threads racing to open one file: exactly one wins, every round. */
static void test_lock_threads(void **state)
{
	enum { N = 4, ROUNDS = 20 };
	pthread_barrier_t bar;
	struct race x[N];
	pthread_t th[N];
	char path[256];
	int fd;

	(void)state;
	fd = th_make_file(TH_TMPFS, SZ, path, sizeof(path));
	assert_true(fd >= 0);
	pthread_barrier_init(&bar, NULL, N);
	for (int round = 0; round < ROUNDS; round++) {
		int won = 0;

		for (int i = 0; i < N; i++) {
			x[i] = (struct race){path, &bar, NULL, 1};
			pthread_create(&th[i], NULL, race_open, &x[i]);
		}
		for (int i = 0; i < N; i++)
			pthread_join(th[i], NULL);
		for (int i = 0; i < N; i++) {
			if (x[i].r == 0) {
				won++;
				cow_close(x[i].a);
			} else {
				assert_int_equal(x[i].r, -EBUSY);
			}
		}
		assert_int_equal(won, 1);
	}
	pthread_barrier_destroy(&bar);
	close(fd);
	unlink(path);
}

struct child_open {
	struct fa *f;
	const struct cow_options *o;
	int want;
};

static int child_open(void *arg)
{
	struct child_open *c = arg;
	cow_arena *a;
	int r = open_same(c->f, &a, c->o);

	TH_CHECK(r == c->want);
	if (r == 0)
		cow_close(a);
	return 0;
}

/* The lock holds across processes, and dies with its process. */
static void test_lock_processes(void **state)
{
	(void)state;
	for (int b = TH_MEMFD; b < TH_NBACKINGS; b++) {
		struct child_open c;
		int pfd[2], st;
		cow_arena *a;
		struct fa f;
		pid_t pid;
		char ch;

		assert_int_equal(fa_open(&f, b, SZ, NULL), 0);
		c = (struct child_open){&f, NULL, -EBUSY};
		th_assert_exit0(th_in_child(child_open, &c));
		c.o = &ro;
		th_assert_exit0(th_in_child(child_open, &c));
		cow_close(f.t.a);
		f.t.a = NULL;
		c.o = NULL;
		c.want = 0;
		th_assert_exit0(th_in_child(child_open, &c));

		/* a child holds it and dies without closing */
		assert_int_equal(pipe(pfd), 0);
		pid = fork();
		if (pid == 0) {
			TH_CHECK(open_same(&f, &a, NULL) == 0);
			TH_CHECK(write(pfd[1], "x", 1) == 1);
			pause();
			_exit(0);
		}
		assert_int_equal(read(pfd[0], &ch, 1), 1);
		assert_int_equal(open_same(&f, &a, &ro), -EBUSY);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_int_equal(open_same(&f, &a, NULL), 0);
		cow_close(a);
		close(pfd[0]);
		close(pfd[1]);
		fa_close(&f);
	}
}

/* Someone else's pwrite shows through the pages the arena has not
 * written (measured here, so a kernel that behaves otherwise is noticed),
 * and the calls that depend on the base then refuse with -ESTALE. */
static void test_outside_write(void **state)
{
	(void)state;
	for (int b = TH_MEMFD; b < TH_NBACKINGS; b++) {
		unsigned char *before = malloc(SZ);
		char buf[PG];
		struct fa f;
		char *p;
		int o;

		assert_int_equal(fa_open(&f, b, SZ, NULL), 0);
		p = cow_base(f.t.a);
		p[0] = 'A';				 /* private */
		(void)*(volatile char *)(p + 5 * PG);	 /* read: shared */
		assert_int_equal(cow_discard(f.t.a), 0); /* not stale yet */
		p[0] = 'A';
		o = outsider(&f);
		assert_true(o >= 0);
		memset(buf, 'Z', sizeof(buf));
		assert_int_equal(pwrite(o, buf, PG, 0), PG);
		assert_int_equal(pwrite(o, buf, PG, 5 * PG), PG);
		assert_int_equal(pwrite(o, buf, PG, 9 * PG), PG);
		/* visible through read and unread pages, not written ones */
		assert_int_equal(p[5 * PG + 17], 'Z');
		assert_int_equal(p[9 * PG], 'Z');
		assert_int_equal(p[0], 'A');
		assert_int_equal(p[1], th_base_byte(b, 1));
		memcpy(before, p, SZ);
		assert_int_equal(cow_discard(f.t.a), -ESTALE);
		assert_int_equal(cow_revert(f.t.a, p, PG), -ESTALE);
		assert_int_equal(cow_grow(f.t.a, 2 * SZ), -ESTALE);
		/* nothing changed; inspection still works */
		assert_memory_equal(before, p, SZ);
		assert_int_equal(cow_size(f.t.a), SZ);
		assert_int_equal(cow_dirty(f.t.a, NULL, 0), 1);
		/* the arena stays stale */
		assert_int_equal(cow_discard(f.t.a), -ESTALE);
		close(o);
		fa_close(&f);
		free(before);
	}
}

/* A same-size change, a truncation that does not fault, a rename over the
 * path and a deletion are all changes. */
static void test_outside_kinds(void **state)
{
	char path2[256];
	cow_arena *a;
	struct fa f;
	int fd2;

	(void)state;
	/* our own grow is not a change from outside */
	assert_int_equal(fa_open(&f, TH_EXT4, SZ, NULL), 0);
	assert_int_equal(cow_grow(f.t.a, 2 * SZ), 0);
	assert_int_equal(cow_discard(f.t.a), 0);
	/* growing the file from outside is */
	assert_int_equal(ftruncate(f.fd, 3 * SZ), 0);
	assert_int_equal(cow_discard(f.t.a), -ESTALE);
	fa_close(&f);

	/* renamed over */
	assert_int_equal(fa_open(&f, TH_EXT4, SZ, NULL), 0);
	fd2 = th_make_file(TH_EXT4, SZ, path2, sizeof(path2));
	assert_true(fd2 >= 0);
	assert_int_equal(rename(path2, f.t.path), 0);
	assert_int_equal(cow_discard(f.t.a), -ESTALE);
	/* the lock is on the old file: the new one is free */
	assert_int_equal(cow_open(&a, f.t.path, NULL), 0);
	cow_close(a);
	close(fd2);
	fa_close(&f);

	/* deleted */
	assert_int_equal(fa_open(&f, TH_TMPFS, SZ, NULL), 0);
	assert_int_equal(unlink(f.t.path), 0);
	assert_int_equal(cow_revert(f.t.a, cow_base(f.t.a), PG), -ESTALE);
	fa_close(&f);
}

static int truncate_to(struct fa *f, off_t len)
{
	int o = outsider(f);
	int r = ftruncate(o, len);

	close(o);
	return r;
}

struct trunc_job {
	struct fa *f;
	off_t len;
};

static int child_truncate(void *arg)
{
	struct trunc_job *j = arg;

	TH_CHECK(truncate_to(j->f, j->len) == 0);
	return 0;
}

/* Reads then writes every page of the arena. */
static void touch_all(char *p, size_t size)
{
	for (size_t off = 0; off < size; off += PG)
		(void)*(volatile char *)(p + off + 100);
	for (size_t off = 0; off < size; off += PG)
		*(volatile char *)(p + off + 200) = 'w';
}

static size_t maps_now(void)
{
	return TH_MAPS_EXACT ? th_count_maps() : 0;
}

/* The file is truncated by another process: touching every page does not
 * kill us; the lost tail reads zeros, the rest of the content stays, and
 * the arena is stale. */
static void test_truncate_sigbus(void **state)
{
	static const off_t lens[] = {10 * PG + 100, 0, 10 * PG + 100};

	(void)state;
	for (int b = TH_MEMFD; b < TH_NBACKINGS; b++) {
		for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
			/* the last round read-only: guarded the same */
			const struct cow_options *o = k == 2 ? &ro : NULL;
			off_t len = lens[k];
			size_t fds = th_count_fds(), maps = maps_now();
			size_t keep = (size_t)(len + PG - 1) / PG;
			struct trunc_job j;
			struct cow_stats st;
			struct fa f;
			char *p;

			assert_int_equal(fa_open(&f, b, SZ, o), 0);
			p = cow_base(f.t.a);
			p[2 * PG] = 'P';  /* private, kept */
			p[40 * PG] = 'Q'; /* private, in the lost tail */
			j = (struct trunc_job){&f, len};
			th_assert_exit0(th_in_child(child_truncate, &j));
			touch_all(p, SZ);
			for (size_t pg = 0; pg < NPG; pg++) {
				size_t off = pg * PG;

				if (pg >= keep) {
					assert_int_equal(p[off], 0);
					assert_int_equal(p[off + 100], 0);
				} else if (pg == 2) {
					assert_int_equal(p[off], 'P');
				} else {
					assert_int_equal(
					    (unsigned char)p[off + 99],
					    th_base_byte(b, off + 99));
				}
				assert_int_equal(p[off + 200], 'w');
			}
			/* the budget holds: at most one mapping more */
			assert_in_range(th_arena_maps(f.t.a), 1, 3);
			assert_int_equal(cow_stats(f.t.a, &st), 0);
			assert_int_equal(st.mappings, th_arena_maps(f.t.a));
			assert_int_equal(cow_discard(f.t.a), -ESTALE);
			assert_int_equal(cow_revert(f.t.a, p, PG), -ESTALE);
			assert_int_equal(cow_grow(f.t.a, 2 * SZ), -ESTALE);
			assert_true(cow_dirty(f.t.a, NULL, 0) >= 1);
			fa_close(&f);
			assert_int_equal(th_count_fds(), fds);
			if (TH_MAPS_EXACT)
				assert_int_equal(th_count_maps(), maps);
		}
	}
}

/*
 * Rollbacks across cow_grow change the arena's size: the SIGBUS guard must
 * follow, or a truncation fault past the size the guard last heard of
 * kills the process. 16 pages, grow to 32, back to 16, grow to 24, back to
 * 32: the guard must cover all 32 pages. In a child, which such a fault
 * kills alone.
 */
static int child_rollback_grow(void *arg)
{
	cow_snap *s16, *s32;
	struct fa f;
	char *p;

	(void)arg;
	signal(SIGBUS, SIG_DFL); /* not cmocka's: an unrepaired fault kills */
	TH_CHECK(fa_open(&f, TH_TMPFS, 16 * PG, NULL) == 0);
	p = cow_base(f.t.a);
	TH_CHECK(cow_snapshot(f.t.a, &s16) == 0);
	TH_CHECK(cow_grow(f.t.a, 32 * PG) == 0);
	p[28 * PG] = 'X';
	TH_CHECK(cow_snapshot(f.t.a, &s32) == 0);
	TH_CHECK(cow_rollback(f.t.a, s16) == 0);
	TH_CHECK(cow_size(f.t.a) == 16 * PG);
	TH_CHECK(cow_grow(f.t.a, 24 * PG) == 0);
	TH_CHECK(cow_rollback(f.t.a, s32) == 0);
	TH_CHECK(cow_size(f.t.a) == 32 * PG);
	TH_CHECK(p[28 * PG] == 'X');
	TH_CHECK(truncate_to(&f, 8 * PG) == 0);
	/* the kernel drops even private pages past the new end: page 28
	 * faults, and the lost tail reads zeros */
	TH_CHECK(p[28 * PG] == 0);
	TH_CHECK(p[29 * PG] == 0);
	TH_CHECK(p[31 * PG + 5] == 0);
	TH_CHECK(cow_discard(f.t.a) == -ESTALE);
	cow_snap_release(s32);
	cow_snap_release(s16);
	fa_close(&f);
	return 0;
}

/* A rollback to a smaller size leaves the base mapped past it: the zeros
 * over a lost tail reach the end of that mapping, so no third piece of it
 * is left behind them (the budget: 3 mappings). */
static int child_rollback_shrink(void *arg)
{
	cow_snap *s16;
	struct fa f;
	char *p;

	(void)arg;
	signal(SIGBUS, SIG_DFL);
	TH_CHECK(fa_open(&f, TH_TMPFS, 16 * PG, NULL) == 0);
	p = cow_base(f.t.a);
	TH_CHECK(cow_snapshot(f.t.a, &s16) == 0);
	TH_CHECK(cow_grow(f.t.a, 32 * PG) == 0);
	TH_CHECK(cow_rollback(f.t.a, s16) == 0);
	TH_CHECK(cow_size(f.t.a) == 16 * PG);
	TH_CHECK(th_arena_maps(f.t.a) == 2);
	TH_CHECK(truncate_to(&f, 8 * PG) == 0);
	TH_CHECK(p[10 * PG] == 0);
	TH_CHECK(th_arena_maps(f.t.a) <= 3);
	TH_CHECK(cow_rollback(f.t.a, s16) == -ESTALE);
	cow_snap_release(s16);
	fa_close(&f);
	return 0;
}

static void test_rollback_grow_guard(void **state)
{
	(void)state;
	th_assert_exit0(th_in_child(child_rollback_grow, NULL));
	th_assert_exit0(th_in_child(child_rollback_shrink, NULL));
}

/*
 * A truncation fault after the write tracking has its userfaultfd (a
 * snapshot first): the zeros mapped over the lost tail are a mapping the
 * userfaultfd was never registered on, and a page scan over it must not
 * fail for that (PAGEMAP_SCAN with PM_SCAN_CHECK_WPASYNC refuses, -EPERM,
 * a range that is not all registered). Every call then returns what the
 * header says of a stale arena: cow_dirty() and cow_stats() work, the
 * calls that depend on the base return -ESTALE, cow_close() succeeds.
 * Three ways: the userfaultfd tracking, and with it forced off (pagemap
 * reads, compared copies). In a child: an unrepaired fault kills it.
 */
enum { TT_UFFD, TT_PAGEMAP, TT_COMPARE };

static int child_truncate_tracked(void *arg)
{
	int how = (int)(intptr_t)arg;
	struct cow_range out[NPG];
	cow_snap *s = NULL, *s2 = NULL;
	struct cow_stats st;
	struct fa f;
	ssize_t n;
	char *p;

	signal(SIGBUS, SIG_DFL); /* not cmocka's: an unrepaired fault kills */
	cow__track_force_pagemap(how == TT_PAGEMAP);
	cow__track_force_compare(how == TT_COMPARE);
	TH_CHECK(fa_open(&f, TH_TMPFS, SZ, NULL) == 0);
	p = cow_base(f.t.a);
	p[1 * PG] = 'a'; /* before the snapshot */
	p[50 * PG] = 'b';
	TH_CHECK(cow_snapshot(f.t.a, &s) == 0);
	TH_CHECK(cow_stats(f.t.a, &st) == 0);
	if (how == TT_UFFD && st.tracking != COW_TRACK_UFFD_WP) {
		printf("# skipped: the kernel lacks userfaultfd async "
		       "write-protect\n");
		cow_snap_release(s);
		fa_close(&f);
		return 77;
	}
	TH_CHECK(st.tracking == (how == TT_UFFD ? COW_TRACK_UFFD_WP
						: COW_TRACK_COMPARE));
	p[2 * PG] = 'c'; /* after it: kept, and lost in the tail */
	p[3 * PG] = 'd';
	p[40 * PG] = 'e';
	TH_CHECK(truncate_to(&f, 10 * PG) == 0);
	TH_CHECK(p[40 * PG] == 0); /* faults: zeros over the lost tail */
	TH_CHECK(p[60 * PG + 7] == 0);
	TH_CHECK(th_arena_maps(f.t.a) <= 3);
	TH_CHECK(p[1 * PG] == 'a' && p[2 * PG] == 'c' && p[3 * PG] == 'd');

	n = cow_dirty(f.t.a, out, NPG);
	if (n < 0)
		fprintf(stderr, "# cow_dirty: %zd\n", n);
	/* pages 1-3, and the zeros touched in the lost tail: not page 50,
	 * which the kernel dropped untouched, whatever the tracking */
	TH_CHECK(n == 3);
	TH_CHECK(out[0].offset == 1 * PG && out[0].length == 3 * PG);
	TH_CHECK(out[1].offset == 40 * PG && out[1].length == PG);
	TH_CHECK(out[2].offset == 60 * PG && out[2].length == PG);
	TH_CHECK(cow_stats(f.t.a, &st) == 0);
	TH_CHECK(st.mappings == th_arena_maps(f.t.a));
	TH_CHECK(cow_snapshot(f.t.a, &s2) == -ESTALE && !s2);
	TH_CHECK(cow_discard(f.t.a) == -ESTALE);
	TH_CHECK(cow_rollback(f.t.a, s) == -ESTALE);
	TH_CHECK(cow_revert(f.t.a, p + 2 * PG, PG) == -ESTALE);
	TH_CHECK(cow_commit(f.t.a, 0) == -ESTALE);
	/* nothing changed: the same runs, the private pages as written */
	TH_CHECK(cow_dirty(f.t.a, NULL, 0) == n);
	TH_CHECK(p[1 * PG] == 'a' && p[2 * PG] == 'c' && p[3 * PG] == 'd');
	cow_snap_release(s);
	TH_CHECK(cow_close(f.t.a) == 0);
	f.t.a = NULL;
	close(f.fd);
	return 0;
}

static void test_truncate_tracked(void **state)
{
	(void)state;
	for (int how = TT_UFFD; how <= TT_COMPARE; how++) {
		int wst = th_in_child(child_truncate_tracked,
				      (void *)(intptr_t)how);

		if (how == TT_UFFD && WIFEXITED(wst) &&
		    WEXITSTATUS(wst) == 77)
			continue; /* said so in the child */
		th_assert_exit0(wst);
	}
}

/* COW_ISOLATE: outside writes and truncation are invisible, cannot fault,
 * and do not make discard or revert stale. */
static void test_isolate(void **state)
{
	(void)state;
	for (int b = TH_MEMFD; b < TH_NBACKINGS; b++) {
		unsigned char *ref = malloc(2 * SZ);
		struct cow_options o = {.flags = COW_ISOLATE};
		size_t fds = th_count_fds();
		cow_arena *a2;
		struct trunc_job j;
		struct stat sb;
		char buf[PG];
		struct fa f;
		char *p;
		int out;

		assert_int_equal(fa_open(&f, b, SZ, &o), 0);
		/* the file itself stays locked */
		assert_int_equal(open_same(&f, &a2, NULL), -EBUSY);
		p = cow_base(f.t.a);
		th_base_ref(b, ref, SZ);
		assert_true(th_equal(&f.t, ref, SZ));
		p[3 * PG] = 'i';
		out = outsider(&f);
		memset(buf, 'Z', sizeof(buf));
		assert_int_equal(pwrite(out, buf, PG, 5 * PG), PG);
		assert_int_equal((unsigned char)p[5 * PG],
				 th_base_byte(b, 5 * PG));
		j = (struct trunc_job){&f, 0};
		th_assert_exit0(th_in_child(child_truncate, &j));
		touch_all(p, SZ);
		for (size_t off = 0; off < SZ; off += PG)
			ref[off + 200] = 'w';
		assert_int_equal(p[3 * PG], 'i');
		ref[3 * PG] = 'i';
		assert_true(th_equal(&f.t, ref, SZ));
		/* the private base does not go stale */
		assert_int_equal(cow_revert(f.t.a, p + 3 * PG, PG), 0);
		assert_int_equal(cow_discard(f.t.a), 0);
		th_base_ref(b, ref, SZ);
		assert_true(th_equal(&f.t, ref, SZ));
		/* grow grows the copy, not the file */
		assert_int_equal(cow_grow(f.t.a, 2 * SZ), 0);
		memset(ref + SZ, 0, SZ);
		assert_true(th_equal(&f.t, ref, 2 * SZ));
		assert_int_equal(fstat(out, &sb), 0);
		assert_int_equal(sb.st_size, 0);
		assert_in_range(th_arena_maps(f.t.a), 1, 3);
		close(out);
		fa_close(&f);
		assert_int_equal(th_count_fds(), fds);
		free(ref);
	}
}

/* Isolated open variants: read-only, bigger than the file, sparse. */
static void test_isolate_variants(void **state)
{
	struct cow_options o = {.flags = COW_ISOLATE | COW_READONLY};
	cow_arena *a;
	struct stat sb;
	struct fa f;
	char *p;

	(void)state;
	assert_int_equal(fa_open(&f, TH_EXT4, SZ, &o), 0);
	assert_int_equal(cow_grow(f.t.a, 2 * SZ), -EROFS);
	assert_int_equal(open_same(&f, &a, &o), 0); /* readers share */
	cow_close(a);
	fa_close(&f);

	o.flags = COW_ISOLATE;
	o.size = 4 * SZ;
	assert_int_equal(fa_open(&f, TH_TMPFS, SZ, &o), 0);
	assert_int_equal(cow_size(f.t.a), 4 * SZ);
	p = cow_base(f.t.a);
	assert_int_equal((unsigned char)p[PG + 3],
			 th_base_byte(TH_TMPFS, PG + 3));
	assert_int_equal(p[3 * SZ], 0);
	assert_int_equal(fstat(f.fd, &sb), 0);
	assert_int_equal(sb.st_size, SZ); /* the file did not grow */
	fa_close(&f);

	/* a sparse file: holes stay holes in the copy, and read zero */
	o.size = 0;
	assert_int_equal(fa_open(&f, TH_EXT4, SZ, NULL), 0);
	cow_close(f.t.a);
	assert_int_equal(ftruncate(f.fd, 64 * SZ), 0);
	assert_int_equal(open_same(&f, &f.t.a, &o), 0);
	p = cow_base(f.t.a);
	assert_int_equal(cow_size(f.t.a), 64 * SZ);
	assert_int_equal(p[40 * SZ], 0);
	assert_int_equal((unsigned char)p[7], th_base_byte(TH_EXT4, 7));
	fa_close(&f);

	assert_int_equal(
	    cow_open_anon(&a, SZ, &(struct cow_options){.flags = COW_ISOLATE}),
	    -EINVAL);
}

static sigjmp_buf jb;
static volatile sig_atomic_t user_calls;
static void *volatile user_addr;

static void user_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	user_calls++;
	user_addr = si->si_addr;
	siglongjmp(jb, 1);
}

/* A shared mapping of a file that is then truncated: its access faults
 * outside every arena. */
static char *outside_fault_map(void)
{
	int fd = memfd_create("cowarena-outside", MFD_CLOEXEC);
	char *m;

	if (fd < 0 || ftruncate(fd, PG))
		return NULL;
	m = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED || ftruncate(fd, 0))
		return NULL;
	close(fd);
	return m;
}

static int handler_is(void (*fn)(int, siginfo_t *, void *))
{
	struct sigaction cur;

	sigaction(SIGBUS, NULL, &cur);
	return (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == fn;
}

/* A fault outside every arena goes to the handler that was there before;
 * the last close puts it back. Anonymous and isolated arenas install
 * nothing. */
static void test_sigbus_chain(void **state)
{
	struct sigaction act, old;
	cow_arena *an, *ai;
	struct fa f, g;
	char *m;

	(void)state;
	memset(&act, 0, sizeof(act));
	act.sa_sigaction = user_handler;
	act.sa_flags = SA_SIGINFO;
	sigemptyset(&act.sa_mask);
	assert_int_equal(sigaction(SIGBUS, &act, &old), 0);
	m = outside_fault_map();
	assert_non_null(m);

	assert_int_equal(cow_open_anon(&an, SZ, NULL), 0);
	assert_int_equal(fa_open(&g, TH_EXT4, SZ, &iso), 0);
	ai = g.t.a;
	assert_true(handler_is(user_handler));
	assert_int_equal(fa_open(&f, TH_TMPFS, SZ, NULL), 0);
	assert_false(handler_is(user_handler));
	user_calls = 0;
	if (sigsetjmp(jb, 1) == 0)
		(void)*(volatile char *)m;
	assert_int_equal(user_calls, 1);
	assert_ptr_equal(user_addr, m);
	/* the arena is fine */
	assert_int_equal(cow_discard(f.t.a), 0);
	fa_close(&f);
	assert_true(handler_is(user_handler));
	(void)ai;
	fa_close(&g);
	cow_close(an);
	munmap(m, PG);
	assert_int_equal(sigaction(SIGBUS, &old, NULL), 0);
}

enum { DFL_FAULT, DFL_SENT, IGN_SENT, IGN_FAULT };

static int child_chain(void *arg)
{
	int how = (int)(intptr_t)arg;
	struct fa f;
	char *m = outside_fault_map();

	TH_CHECK(m);
	signal(SIGBUS, how >= IGN_SENT ? SIG_IGN : SIG_DFL);
	TH_CHECK(fa_open(&f, TH_TMPFS, SZ, NULL) == 0);
	if (how == DFL_SENT || how == IGN_SENT)
		raise(SIGBUS);
	else
		(void)*(volatile char *)m;
	fa_close(&f);
	return 0;
}

/* The previous default action still kills: a fault outside arenas and a
 * sent SIGBUS with SIG_DFL; an ignored sent one is ignored, an ignored
 * fault kills as the kernel would. */
static void test_sigbus_default(void **state)
{
	int st;

	(void)state;
	st = th_in_child(child_chain, (void *)(intptr_t)DFL_FAULT);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS);
	st = th_in_child(child_chain, (void *)(intptr_t)DFL_SENT);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS);
	st = th_in_child(child_chain, (void *)(intptr_t)IGN_FAULT);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS);
	th_assert_exit0(th_in_child(child_chain, (void *)(intptr_t)IGN_SENT));
}

static void sigbus_now(struct sigaction *sa)
{
	assert_int_equal(sigaction(SIGBUS, NULL, sa), 0);
}

static off_t len_of(int fd)
{
	struct stat sb;

	assert_int_equal(fstat(fd, &sb), 0);
	return sb.st_size;
}

struct variant {
	enum th_backing b;
	unsigned flags;
	size_t size; /* opt.size: 2 * SZ grows the file at open */
};

static const struct variant variants[] = {
    {TH_ANON, 0, 0},
    {TH_MEMFD, 0, 0},
    {TH_EXT4, 0, 0},
    {TH_EXT4, COW_ISOLATE, 0},
    {TH_MEMFD, COW_ISOLATE, 0},
    {TH_TMPFS, COW_READONLY, 0},
    {TH_EXT4, 0, 2 * SZ},
    {TH_TMPFS, COW_ISOLATE, 2 * SZ},
};

static int open_variant(struct fa *f, const struct variant *v, cow_arena **a)
{
	struct cow_options o = {.flags = v->flags, .size = v->size};

	if (v->b == TH_ANON)
		return cow_open_anon(a, SZ, NULL);
	return open_same(f, a, &o);
}

/*
 * Every call the open makes fails in turn (once, then from then on):
 * the open returns that error and leaves nothing behind (descriptors,
 * mappings, the file's size and lock, the SIGBUS handler), and opens
 * once the fault is gone.
 */
static void test_open_faults(void **state)
{
	(void)state;
	for (size_t vi = 0; vi < sizeof(variants) / sizeof(variants[0]); vi++) {
		const struct variant *v = &variants[vi];
		struct fa f;

		memset(&f, 0, sizeof(f));
		f.fd = -1;
		if (v->b != TH_ANON) {
			f.t.b = v->b;
			f.fd =
			    th_make_file(v->b, SZ, f.t.path, sizeof(f.t.path));
			assert_true(f.fd >= 0);
		}
		for (int persist = 0; persist < 2; persist++) {
			for (unsigned long nth = 1;; nth++) {
				size_t fds = th_count_fds(), maps = maps_now();
				struct sigaction before, after;
				cow_arena *a = NULL;
				int r;

				sigbus_now(&before);
				cow__fault_inject(COW__SYS_ANY, nth, EIO,
						  persist);
				r = open_variant(&f, v, &a);
				cow__fault_reset();
				if (r == 0) {
					cow_close(a);
					break;
				}
				assert_true(r < 0);
				assert_int_equal(th_count_fds(), fds);
				/* (persistent faults hit the undo's munmap too)
				 */
				if (TH_MAPS_EXACT && !persist)
					assert_int_equal(th_count_maps(), maps);
				sigbus_now(&after);
				assert_ptr_equal(before.sa_handler,
						 after.sa_handler);
				if (f.fd >= 0 && !persist)
					assert_int_equal(len_of(f.fd), SZ);
				if (f.fd >= 0 && persist && len_of(f.fd) != SZ)
					/* the undo failed too: put it back */
					assert_int_equal(ftruncate(f.fd, SZ),
							 0);
				/* unlocked: a writable open works */
				assert_int_equal(open_variant(&f, v, &a), 0);
				cow_close(a);
				if (f.fd >= 0)
					assert_int_equal(ftruncate(f.fd, SZ),
							 0);
			}
		}
		if (f.fd >= 0) {
			close(f.fd);
			if (f.t.path[0])
				unlink(f.t.path);
		}
	}
}

/*
 * The same for cow_grow on every backing and isolated: a failure leaves
 * the old size usable, the content and the file as they were, and the
 * arena not stale (its own undone change is no change from outside).
 */
static void test_grow_faults(void **state)
{
	(void)state;
	for (size_t vi = 0; vi < 5; vi++) {
		const struct variant *v = &variants[vi];
		unsigned char *ref = malloc(SZ);
		cow_arena *a;
		struct fa f;
		char *p;

		memset(&f, 0, sizeof(f));
		f.fd = -1;
		if (v->b != TH_ANON) {
			f.t.b = v->b;
			f.fd =
			    th_make_file(v->b, SZ, f.t.path, sizeof(f.t.path));
			assert_true(f.fd >= 0);
		}
		assert_int_equal(open_variant(&f, v, &a), 0);
		p = cow_base(a);
		p[3] = 'g';
		memcpy(ref, p, SZ);
		for (unsigned long nth = 1;; nth++) {
			int r;

			cow__fault_inject(COW__SYS_ANY, nth, EIO, 0);
			r = cow_grow(a, 2 * SZ);
			cow__fault_reset();
			if (r == 0)
				break;
			assert_true(r < 0);
			assert_int_equal(cow_size(a), SZ);
			assert_memory_equal(p, ref, SZ);
			if (f.fd >= 0)
				assert_int_equal(len_of(f.fd), SZ);
			assert_in_range(th_arena_maps(a), 1, 3);
			assert_int_equal(cow_revert(a, p + PG, PG), 0);
		}
		assert_int_equal(cow_size(a), 2 * SZ);
		assert_int_equal(p[3], 'g');
		assert_int_equal(p[SZ + 5], 0);
		assert_int_equal(cow_discard(a), 0);
		cow_close(a);
		if (f.fd >= 0) {
			close(f.fd);
			if (f.t.path[0])
				unlink(f.t.path);
		}
		free(ref);
	}
}

/* The hooks a commit calls: cow__guard_check_commit also sees outside
 * changes under an isolated base, and cow__guard_refresh accepts the
 * file's state as the arena's own (as after a commit wrote it). */
static void test_commit_hooks(void **state)
{
	char buf[PG];
	cow_arena *an;
	struct fa f;
	int o;

	(void)state;
	for (int isolated = 0; isolated < 2; isolated++) {
		assert_int_equal(
		    fa_open(&f, TH_EXT4, SZ, isolated ? &iso : NULL), 0);
		assert_int_equal(cow__guard_check_commit(f.t.a), 0);
		o = outsider(&f);
		memset(buf, 'c', sizeof(buf));
		assert_int_equal(pwrite(o, buf, PG, 0), PG);
		close(o);
		assert_int_equal(cow__guard_check(f.t.a),
				 isolated ? 0 : -ESTALE);
		assert_int_equal(cow__guard_check_commit(f.t.a), -ESTALE);
		assert_int_equal(cow__guard_refresh(f.t.a), 0);
		assert_int_equal(cow__guard_check_commit(f.t.a), 0);
		assert_int_equal(cow_discard(f.t.a), 0);
		fa_close(&f);
	}
	assert_int_equal(cow_open_anon(&an, SZ, NULL), 0);
	assert_int_equal(cow__guard_check_commit(an), 0);
	assert_int_equal(cow__guard_refresh(an), 0);
	cow_close(an);
}

/* More watched arenas than one registry chunk holds: a truncation fault
 * in the last one is still caught; the handler goes when they all close. */
static void test_many_arenas(void **state)
{
	enum { N = 70 };
	struct sigaction before, after;
	static struct fa f[N];
	char *p;

	(void)state;
	sigbus_now(&before);
	for (int i = 0; i < N; i++)
		assert_int_equal(fa_open(&f[i], TH_TMPFS, 4 * PG, NULL), 0);
	assert_int_equal(truncate_to(&f[N - 1], PG), 0);
	p = cow_base(f[N - 1].t.a);
	assert_int_equal(p[3 * PG], 0);
	assert_int_equal(cow_discard(f[N - 1].t.a), -ESTALE);
	assert_int_equal(cow_discard(f[0].t.a), 0);
	for (int i = 0; i < N; i++)
		fa_close(&f[i]);
	sigbus_now(&after);
	assert_ptr_equal(before.sa_handler, after.sa_handler);
}

/* Removing the handler fails: it stays, harmless; the next arena keeps
 * the handler saved before it, and the last close restores that one. */
static void test_handler_removal_fails(void **state)
{
	struct sigaction before, after;
	struct fa f;

	(void)state;
	sigbus_now(&before);
	assert_int_equal(fa_open(&f, TH_TMPFS, SZ, NULL), 0);
	cow__fault_inject(COW__SYS_SIGNAL, 1, EINTR, 1);
	fa_close(&f);
	cow__fault_reset();
	sigbus_now(&after);
	assert_ptr_not_equal(before.sa_handler, after.sa_handler);
	assert_int_equal(fa_open(&f, TH_TMPFS, SZ, NULL), 0);
	assert_int_equal(truncate_to(&f, 0), 0);
	assert_int_equal(((char *)cow_base(f.t.a))[5], 0);
	fa_close(&f);
	sigbus_now(&after);
	assert_ptr_equal(before.sa_handler, after.sa_handler);
}

/* A relative path: the reflink attempt looks in the current directory. */
static void test_isolate_relative(void **state)
{
	struct cow_options o = {.flags = COW_ISOLATE};
	char cwd[512];
	cow_arena *a;
	struct fa f;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(fa_open(&f, TH_EXT4, SZ, NULL), 0);
	cow_close(f.t.a);
	f.t.a = NULL;
	assert_int_equal(chdir(th_dir(TH_EXT4)), 0);
	assert_int_equal(cow_open(&a, strrchr(f.t.path, '/') + 1, &o), 0);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal((unsigned char)((char *)cow_base(a))[PG + 1],
			 th_base_byte(TH_EXT4, PG + 1));
	cow_close(a);
	fa_close(&f);
}

static void bus_plain(int sig)
{
	(void)sig;
	user_calls++;
	siglongjmp(jb, 1);
}

/* A previous handler without SA_SIGINFO is called the way it expects. */
static void test_sigbus_chain_plain(void **state)
{
	struct sigaction act, old;
	struct fa f;
	char *m;

	(void)state;
	memset(&act, 0, sizeof(act));
	act.sa_handler = bus_plain;
	sigemptyset(&act.sa_mask);
	assert_int_equal(sigaction(SIGBUS, &act, &old), 0);
	m = outside_fault_map();
	assert_non_null(m);
	assert_int_equal(fa_open(&f, TH_TMPFS, SZ, NULL), 0);
	user_calls = 0;
	if (sigsetjmp(jb, 1) == 0)
		(void)*(volatile char *)m;
	assert_int_equal(user_calls, 1);
	fa_close(&f);
	munmap(m, PG);
	assert_int_equal(sigaction(SIGBUS, &old, NULL), 0);
}

/*
 * Close in the reverse order of open: the guard lets go of the arena's range
 * before the range is unmapped. The trace hook runs right after cow_close's
 * munmap of the reservation and plays the other thread that maps something
 * of its own there at once: a truncated file. Its fault must reach its own
 * handler, never the guard (which would map zeros over it). With another
 * arena still open the guard's handler stays installed, and only the
 * registry decides.
 */
static char *volatile closing_base;
static volatile int closing_seen, closing_calls;

static void close_trace(enum cow__sys_kind kind, int fd,
			const struct iovec *iov, int cnt, off_t off)
{
	int mfd;
	char *m;

	(void)fd, (void)cnt, (void)off;
	if (kind != COW__SYS_MUNMAP || iov->iov_base != closing_base)
		return;
	closing_seen = 1;
	mfd = memfd_create("cowarena-neighbour", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, PG))
		return;
	m = mmap(closing_base, PG, PROT_READ,
		 MAP_SHARED | MAP_FIXED_NOREPLACE, mfd, 0);
	if (m != closing_base || ftruncate(mfd, 0)) {
		close(mfd);
		return;
	}
	close(mfd);
	user_calls = 0;
	if (sigsetjmp(jb, 1) == 0)
		(void)*(volatile char *)m;
	closing_calls = user_calls;
	munmap(m, PG);
}

static int child_close_order(void *arg)
{
	int other = (int)(intptr_t)arg;
	struct sigaction act;
	struct fa f, g;

	memset(&act, 0, sizeof(act));
	act.sa_sigaction = user_handler;
	act.sa_flags = SA_SIGINFO;
	sigemptyset(&act.sa_mask);
	TH_CHECK(sigaction(SIGBUS, &act, NULL) == 0);
	if (other)
		TH_CHECK(fa_open(&g, TH_TMPFS, SZ, NULL) == 0);
	TH_CHECK(fa_open(&f, TH_TMPFS, SZ, NULL) == 0);
	/* the arena's file is truncated too: its range faults until close */
	TH_CHECK(truncate_to(&f, 0) == 0);
	closing_base = cow_base(f.t.a);
	cow__sys_set_trace(close_trace);
	fa_close(&f);
	cow__sys_set_trace(NULL);
	TH_CHECK(closing_seen);
	TH_CHECK(closing_calls == 1);
	if (other)
		fa_close(&g);
	TH_CHECK(handler_is(user_handler));
	return 0;
}

static void test_close_order(void **state)
{
	(void)state;
	th_assert_exit0(th_in_child(child_close_order, (void *)(intptr_t)0));
	th_assert_exit0(th_in_child(child_close_order, (void *)(intptr_t)1));
}

/*
 * A SIGBUS that is no truncation: on a full tmpfs the first read of a hole
 * of a file faults (the kernel cannot allocate the page, ENOSPC) although
 * the file keeps its size. The process survives, the page reads zeros,
 * every private page stays as written, the file is not touched, the arena
 * stays within 3 mappings, and every call that depends on the base
 * returns -EIO, changing nothing. Three ways: with the userfaultfd
 * tracking on (a snapshot first: the page is filled through it, no
 * mapping more, and a second hole costs nothing either), without any
 * tracking, and with the tracking that compares copies (a zero page is
 * mapped over the hole, the unused reservation given up for it).
 */
enum { FULL_UFFD, FULL_PLAIN, FULL_COMPARE };
#define FULL_PAGES 256 /* the file: 1 MiB, on a 256 KiB tmpfs */

static const char *full_dir;

#define PM_UFFD_WP (1ULL << 57)
#define PM_PRESENT (1ULL << 63)

/* The page's /proc/self/pagemap entry. */
static unsigned long long pagemap_bits(const void *addr)
{
	unsigned long long e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (pread(fd, &e, sizeof(e),
			  (off_t)((uintptr_t)addr / PG * sizeof(e))) !=
		    sizeof(e))
			e = 0;
		close(fd);
	}
	return e;
}

static int child_full(void *arg)
{
	static const size_t priv[] = {0, 1, 50, 200, 255};
	int how = (int)(intptr_t)arg, fd, fill;
	char path[512], buf[4096], *p;
	cow_snap *s = NULL;
	struct cow_stats st;
	struct stat sb;
	cow_arena *a;
	size_t maps;
	int uffd = 0;

	signal(SIGBUS, SIG_DFL); /* an unrepaired fault kills */
	snprintf(path, sizeof(path), "%s/base", full_dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	TH_CHECK(fd >= 0 && ftruncate(fd, FULL_PAGES * PG) == 0);
	close(fd);
	if (how == FULL_COMPARE)
		cow__track_force_compare(1);
	TH_CHECK(cow_open(&a, path, NULL) == 0);
	p = cow_base(a);
	for (size_t i = 0; i < sizeof(priv) / sizeof(priv[0]); i++)
		memset(p + priv[i] * PG, 'a' + (int)i, PG);
	if (how != FULL_PLAIN) {
		TH_CHECK(cow_snapshot(a, &s) == 0);
		p[PG + 7] = 'S'; /* written after the snapshot */
		TH_CHECK(cow_stats(a, &st) == 0);
		if (how == FULL_COMPARE)
			TH_CHECK(st.tracking == COW_TRACK_COMPARE);
		uffd = st.tracking == COW_TRACK_UFFD_WP;
		if (how == FULL_UFFD && !uffd)
			printf("# no uffd-wp on this kernel: the way with "
			       "userfaultfd runs as the one without\n");
	}
	if (uffd) {
		/* an armed hole: a write-protect marker in its page-table
		 * entry, which UFFDIO_ZEROPAGE alone does not fill (set
		 * by hand: the library arms only pages it recorded) */
		struct uffdio_writeprotect wp = {
		    .range = {(uintptr_t)(p + 120 * PG), PG},
		    .mode = UFFDIO_WRITEPROTECT_MODE_WP,
		};

		TH_CHECK(ioctl(a->track.uffd, UFFDIO_WRITEPROTECT, &wp) == 0);
		TH_CHECK(pagemap_bits(p + 120 * PG) & PM_UFFD_WP);
	}
	maps = th_arena_maps(a);
	TH_CHECK(maps == 2);
	/* fill the file system */
	snprintf(path, sizeof(path), "%s/fill", full_dir);
	fill = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	TH_CHECK(fill >= 0);
	memset(buf, 'f', sizeof(buf));
	while (write(fill, buf, sizeof(buf)) > 0)
		;
	TH_CHECK(errno == ENOSPC);
	close(fill);

	if (uffd) {
		/* a fork child's fault is completed in the child: the
		 * descriptor it inherited acts on the opener's memory */
		pid_t pid = fork();
		int wst;

		if (pid == 0)
			_exit(p[130 * PG] == 0 && p[200 * PG] == 'd' ? 0 : 1);
		TH_CHECK(pid > 0 && waitpid(pid, &wst, 0) == pid);
		TH_CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
		TH_CHECK(!(pagemap_bits(p + 130 * PG) & PM_PRESENT));
	}
	TH_CHECK(p[100 * PG + 3] == 0); /* a hole: faults, survives */
	TH_CHECK(p[100 * PG + PG - 1] == 0);
	p[100 * PG + 9] = 'h'; /* and takes a store */
	/* the private pages stay as written, the file keeps its size */
	for (size_t i = 0; i < sizeof(priv) / sizeof(priv[0]); i++)
		for (size_t off = 0; off < PG; off += 512)
			TH_CHECK(p[priv[i] * PG + off] == 'a' + (int)i);
	TH_CHECK(th_arena_maps(a) <= 3);
	if (uffd) {
		/* no mapping more, the reservation kept: holes cost nothing */
		TH_CHECK(p[150 * PG] == 0);
		TH_CHECK(p[120 * PG + 5] == 0);
		TH_CHECK(th_arena_maps(a) == maps);
		TH_CHECK(cow_reserved(a) > cow_size(a));
	}
	TH_CHECK(how == FULL_PLAIN || p[PG + 7] == 'S');
	TH_CHECK(p[100 * PG + 9] == 'h');
	snprintf(path, sizeof(path), "%s/base", full_dir);
	TH_CHECK(stat(path, &sb) == 0 && sb.st_size == FULL_PAGES * PG);
	/* the base cannot be trusted: -EIO, and nothing changes */
	TH_CHECK(cow_discard(a) == -EIO);
	TH_CHECK(cow_revert(a, p, PG) == -EIO);
	TH_CHECK(cow_grow(a, cow_size(a) + PG) == -EIO);
	TH_CHECK(cow_commit(a, 0) == -EIO);
	TH_CHECK(cow_commit(a, COW_COMMIT_ASYNC) == -EIO);
	if (s) {
		cow_snap *s2 = NULL;

		TH_CHECK(cow_rollback(a, s) == -EIO);
		TH_CHECK(cow_snapshot(a, &s2) == -EIO && !s2);
	}
	for (size_t i = 0; i < sizeof(priv) / sizeof(priv[0]); i++)
		TH_CHECK(p[priv[i] * PG + 100] == 'a' + (int)i);
	TH_CHECK(p[100 * PG + 9] == 'h');
	TH_CHECK(cow_size(a) == FULL_PAGES * PG);
	TH_CHECK(cow_dirty(a, NULL, 0) >= 4); /* still says what to save */
	TH_CHECK(cow_stats(a, &st) == 0 && st.mappings <= 3);
	TH_CHECK(st.mappings == th_arena_maps(a));
	snprintf(path, sizeof(path), "%s/base.cowlog", full_dir);
	TH_CHECK(access(path, F_OK) < 0); /* the commits wrote nothing */
	if (s)
		cow_snap_release(s);
	TH_CHECK(cow_close(a) == 0);
	return 0;
}

static void test_full_tmpfs(void **state)
{
	char dir[] = "/tmp/cowarena-full-XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(dir));
	if (mount("cowarena", dir, "tmpfs", 0, "size=256k") < 0) {
		int e = errno;

		rmdir(dir);
		printf("# skipped: cannot mount a tmpfs here (%s)\n",
		       strerror(e));
		skip();
	}
	full_dir = dir;
	for (int how = FULL_UFFD; how <= FULL_COMPARE; how++) {
		char path[512];
		int st;

		st = th_in_child(child_full, (void *)(intptr_t)how);
		snprintf(path, sizeof(path), "%s/fill", dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/base", dir);
		unlink(path);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			printf("# way %d failed\n", how);
			umount2(dir, MNT_DETACH);
			rmdir(dir);
		}
		th_assert_exit0(st);
	}
	assert_int_equal(umount2(dir, MNT_DETACH), 0);
	rmdir(dir);
}

/* cow_open_fd's checks before it opens the file again. */
static void test_open_fd_errors(void **state)
{
	struct cow_options bad = {.flags = 0x8000};
	char path[256];
	cow_arena *a;
	int fd, wr, nul;

	(void)state;
	fd = th_make_file(TH_EXT4, SZ, path, sizeof(path));
	assert_true(fd >= 0);
	assert_int_equal(cow_open_fd(NULL, fd, NULL), -EINVAL);
	assert_int_equal(cow_open_fd(&a, fd, &bad), -EINVAL);
	wr = open(path, O_WRONLY | O_CLOEXEC);
	assert_int_equal(cow_open_fd(&a, wr, NULL), -EBADF);
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(cow_open_fd(&a, nul, &ro), -EINVAL);
	/* bigger than a read-only file: it cannot grow */
	assert_int_equal(
	    cow_open_fd(
		&a, fd,
		&(struct cow_options){.flags = COW_READONLY, .size = 2 * SZ}),
	    -EROFS);
	close(nul);
	close(wr);
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lock_same_process),
	    cmocka_unit_test(test_lock_same_fd),
	    cmocka_unit_test(test_lock_threads),
	    cmocka_unit_test(test_lock_processes),
	    cmocka_unit_test(test_outside_write),
	    cmocka_unit_test(test_outside_kinds),
	    cmocka_unit_test(test_truncate_sigbus),
	    cmocka_unit_test(test_rollback_grow_guard),
	    cmocka_unit_test(test_truncate_tracked),
	    cmocka_unit_test(test_isolate),
	    cmocka_unit_test(test_isolate_variants),
	    cmocka_unit_test(test_sigbus_chain),
	    cmocka_unit_test(test_sigbus_default),
	    cmocka_unit_test(test_open_faults),
	    cmocka_unit_test(test_grow_faults),
	    cmocka_unit_test(test_commit_hooks),
	    cmocka_unit_test(test_many_arenas),
	    cmocka_unit_test(test_handler_removal_fails),
	    cmocka_unit_test(test_isolate_relative),
	    cmocka_unit_test(test_sigbus_chain_plain),
	    cmocka_unit_test(test_close_order),
	    cmocka_unit_test(test_full_tmpfs),
	    cmocka_unit_test(test_open_fd_errors),
	};

	return cmocka_run_group_tests_name("guard", tests, NULL, NULL);
}
