// SPDX-License-Identifier: MIT
/* Commits on every backing: synchronous and asynchronous, reopen, growth,
 * read-only, bad input, and every write, sync and completion failing. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "../src/sys.h"
#include "../src/testhooks.h"
#include "../src/track.h"

#define PG 4096UL
#define NPG 32
#define SZ (NPG * PG)

/* Threads of the process, not counting the kernel's io_uring workers
 * (iou-wrk-*, iou-sqp-*), which belong to the kernel and leave on their
 * own. */
static size_t count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char p[300], comm[64] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/proc/self/task/%s/comm", e->d_name);
		/* A task that exits between readdir and the read (an idle
		 * io_uring worker, iou-wrk-*, does after a few seconds) is
		 * no thread any more: counting it as one made the check
		 * flaky under load. */
		f = fopen(p, "r");
		if (!f)
			continue;
		if (!fgets(comm, sizeof(comm), f)) {
			fclose(f);
			continue;
		}
		fclose(f);
		n += strncmp(comm, "iou-", 4) != 0;
	}
	closedir(d);
	return n;
}

static int log_exists(const char *path)
{
	char p[300];

	snprintf(p, sizeof(p), "%s.cowlog", path);
	return access(p, F_OK) == 0;
}

static void unlink_log(const char *path)
{
	char p[300];

	snprintf(p, sizeof(p), "%s.cowlog", path);
	unlink(p);
}

/* Stamps a pattern depending on gen into the given pages (and ref). */
static void stamp(cow_arena *a, unsigned char *ref, const size_t *pages,
		  size_t n, unsigned gen)
{
	unsigned char *p = cow_base(a);

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < PG; j += 64) {
			unsigned char v = (unsigned char)(gen * 31 + pages[i] +
							  j / 64);
			p[pages[i] * PG + j] = v;
			if (ref)
				ref[pages[i] * PG + j] = v;
		}
}

static size_t dirty_pages(cow_arena *a)
{
	struct cow_stats st;

	assert_int_equal(cow_stats(a, &st), 0);
	return st.dirty_pages;
}

/* Reopens a file backing (after closing) and compares with ref. */
static void reopen_check(struct th_arena *t, const unsigned char *ref,
			 const struct cow_options *o)
{
	if (t->b == TH_ANON || t->b == TH_MEMFD)
		return;
	cow_close(t->a);
	t->a = NULL;
	assert_false(log_exists(t->path)); /* a clean close removes it */
	assert_int_equal(cow_open(&t->a, t->path, o), 0);
	assert_true(th_equal(t, ref, SZ));
}

static void commit_basic(unsigned flags)
{
	struct cow_options o = {.flags = flags};

	for (int b = 0; b < TH_NBACKINGS; b++) {
		unsigned char *ref = malloc(SZ);
		size_t pages[] = {0, 1, 2, 7, 8, 31};
		size_t fds = th_count_fds(), thr = count_threads();
		struct th_arena t;
		struct cow_stats st;

		assert_int_equal(th_open(&t, b, SZ, &o), 0);
		th_base_ref(b, ref, SZ);
		stamp(t.a, ref, pages, 6, 1);
		assert_int_equal(dirty_pages(t.a), 6);
		assert_int_equal(cow_commit(t.a, 0), 0);
		assert_int_equal(dirty_pages(t.a), 0);
		assert_true(th_equal(&t, ref, SZ));
		/* discard and revert return to the committed content */
		stamp(t.a, NULL, pages, 6, 2);
		assert_int_equal(cow_discard(t.a), 0);
		assert_true(th_equal(&t, ref, SZ));
		stamp(t.a, NULL, pages, 3, 3);
		assert_int_equal(cow_revert(t.a, cow_base(t.a), SZ), 0);
		assert_true(th_equal(&t, ref, SZ));
		assert_int_equal(cow_stats(t.a, &st), 0);
		assert_int_equal(st.commits, 1);
		assert_int_equal(st.commit_seq_durable, 1);
		assert_int_equal(st.dirty_pages, 0);
		/* the file holds the commit */
		if (b == TH_TMPFS || b == TH_EXT4) {
			int fd = open(t.path, O_RDONLY);
			unsigned char *buf = malloc(SZ);

			assert_true(fd >= 0);
			assert_int_equal(pread(fd, buf, SZ, 0), SZ);
			assert_memory_equal(buf, ref, SZ);
			close(fd);
			free(buf);
			assert_true(log_exists(t.path));
		}
		/* a second commit on top */
		stamp(t.a, ref, pages + 2, 3, 4);
		assert_int_equal(cow_commit(t.a, 0), 0);
		assert_true(th_equal(&t, ref, SZ));
		reopen_check(&t, ref, &o);
		th_close(&t);
		assert_int_equal(th_count_fds(), fds);
#ifndef __SANITIZE_THREAD__ /* TSan starts a thread of its own */
		assert_int_equal(count_threads(), thr);
#else
		(void)thr;
#endif
		free(ref);
	}
}

/*
 * An arena read in whole, with no snapshot: the dirty scans find exactly
 * the pages written, commit them, and pages read before or after stay
 * clean, across commits, discard and revert (the first commit starts the
 * write tracking where the kernel has it, so later scans look only at the
 * pages not armed); the descriptor the tracking takes goes with
 * cow_close().
 */
static void test_commit_read_in(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		unsigned char *ref = malloc(SZ);
		size_t a1[] = {3, 9}, a2[] = {4, 9, 30}, fds = th_count_fds();
		volatile unsigned char *p;
		struct th_arena t;
		struct cow_stats st;

		assert_int_equal(th_open(&t, b, SZ, NULL), 0);
		th_base_ref(b, ref, SZ);
		p = cow_base(t.a);
		for (size_t i = 0; i < NPG; i++)
			(void)p[i * PG];
		assert_int_equal(dirty_pages(t.a), 0);
		stamp(t.a, ref, a1, 2, 1);
		for (size_t i = 0; i < NPG; i++)
			(void)p[i * PG];
		assert_int_equal(dirty_pages(t.a), 2);
		assert_int_equal(cow_commit(t.a, 0), 0);
		assert_int_equal(dirty_pages(t.a), 0);
		assert_true(th_equal(&t, ref, SZ));
		stamp(t.a, ref, a2, 3, 2);
		assert_int_equal(dirty_pages(t.a), 3);
		assert_int_equal(cow_commit(t.a, COW_COMMIT_ASYNC), 0);
		assert_int_equal(cow_sync(t.a), 0);
		assert_true(th_equal(&t, ref, SZ));
		stamp(t.a, NULL, a1, 2, 3);
		for (size_t i = 0; i < NPG; i++)
			(void)p[i * PG];
		assert_int_equal(cow_discard(t.a), 0);
		assert_int_equal(dirty_pages(t.a), 0);
		assert_true(th_equal(&t, ref, SZ));
		stamp(t.a, NULL, a2, 3, 4);
		assert_int_equal(cow_revert(t.a, (void *)(p + 4 * PG), PG), 0);
		assert_int_equal(dirty_pages(t.a), 2);
		assert_int_equal(cow_revert(t.a, (void *)p, SZ), 0);
		assert_int_equal(dirty_pages(t.a), 0);
		assert_true(th_equal(&t, ref, SZ));
		assert_int_equal(cow_stats(t.a, &st), 0);
		assert_int_equal(st.tracking, COW_TRACK_NONE);
		assert_int_equal(st.snapshots, 0);
		reopen_check(&t, ref, NULL);
		th_close(&t);
		assert_int_equal(th_count_fds(), fds);
		free(ref);
	}
}

static void test_commit_basic(void **state)
{
	(void)state;
	commit_basic(0);
}

static void test_commit_nothread(void **state)
{
	(void)state;
	commit_basic(COW_NOTHREAD);
}

static void test_commit_nosync(void **state)
{
	(void)state;
	commit_basic(COW_NOSYNC);
}

static void commit_async(unsigned flags)
{
	struct cow_options o = {.flags = flags};

	for (int b = 0; b < TH_NBACKINGS; b++) {
		unsigned char *ref = malloc(SZ);
		struct th_arena t;
		struct cow_stats st;

		assert_int_equal(th_open(&t, b, SZ, &o), 0);
		th_base_ref(b, ref, SZ);
		for (unsigned g = 1; g <= 50; g++) {
			size_t pages[3] = {g % NPG, (g * 7) % NPG,
					   (g * 13 + 1) % NPG};

			stamp(t.a, ref, pages, 3, g);
			assert_int_equal(cow_commit(t.a, COW_COMMIT_ASYNC), 0);
			/* later stores do not change the captured commit */
			stamp(t.a, NULL, pages, 1, g + 1000);
			assert_int_equal(cow_discard(t.a), 0);
			assert_true(th_equal(&t, ref, SZ));
		}
		assert_int_equal(cow_sync(t.a), 0);
		assert_int_equal(cow_stats(t.a, &st), 0);
		assert_int_equal(st.commits, 50);
		if (b != TH_ANON && b != TH_MEMFD)
			assert_int_equal(st.commit_seq_durable, 50);
		/* a synchronous commit drops every copy */
		assert_int_equal(cow_commit(t.a, 0), 0);
		assert_int_equal(dirty_pages(t.a), 0);
		assert_true(th_equal(&t, ref, SZ));
		reopen_check(&t, ref, &o);
		th_close(&t);
		free(ref);
	}
}

static void test_commit_async(void **state)
{
	(void)state;
	commit_async(0);
}

static void test_commit_async_nothread(void **state)
{
	(void)state;
	commit_async(COW_NOTHREAD);
}

/* Async commits without discard: the next commit drops unchanged pages. */
static void test_async_drop(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		unsigned char *ref = malloc(SZ);
		size_t p1[] = {1, 2, 3}, p2[] = {10, 11};
		struct th_arena t;

		assert_int_equal(th_open(&t, b, SZ, NULL), 0);
		th_base_ref(b, ref, SZ);
		stamp(t.a, ref, p1, 3, 1);
		assert_int_equal(cow_commit(t.a, COW_COMMIT_ASYNC), 0);
		assert_int_equal(cow_sync(t.a), 0);
		stamp(t.a, ref, p2, 2, 2);
		assert_int_equal(cow_commit(t.a, COW_COMMIT_ASYNC), 0);
		assert_int_equal(cow_sync(t.a), 0);
		/* p1 was in the base and unchanged: no longer private; p2
		 * is in the file too: no longer reported */
		assert_int_equal(dirty_pages(t.a), 0);
		assert_true(th_equal(&t, ref, SZ));
		reopen_check(&t, ref, NULL);
		th_close(&t);
		free(ref);
	}
}

/* The one run cow_dirty() reports is exactly pages [first, first + n). */
static void assert_dirty(cow_arena *a, const size_t *pages, size_t n)
{
	struct cow_range r[NPG];
	ssize_t got = cow_dirty(a, r, NPG);
	size_t k = 0;

	assert_int_equal(dirty_pages(a), n);
	assert_true(got >= 0 && got <= NPG);
	for (ssize_t i = 0; i < got; i++)
		for (size_t p = r[i].offset / PG;
		     p < (r[i].offset + r[i].length) / PG; p++, k++) {
			assert_true(k < n);
			assert_int_equal(p, pages[k]);
		}
	assert_int_equal(k, n);
}

/*
 * Once an asynchronous commit is in the file (cow_sync), its pages not
 * written since are clean: cow_dirty() and cow_stats() leave them out,
 * and the next commit neither reports nor writes them again. A page
 * written after the capture stays dirty. On every backing, with either
 * write tracking, and with snapshots taken before and after, which roll
 * back exactly.
 */
static void async_clean(enum th_backing b, int compare, int snaps)
{
	size_t p1[] = {1, 2, 3, 9}, p9[] = {9}, p2[] = {2}, p29[] = {2, 9};
	unsigned char *ref = malloc(SZ), *ref0 = malloc(SZ),
		      *ref1 = malloc(SZ);
	struct cow_stats st;
	cow_snap *s0 = NULL, *s1 = NULL;
	struct th_arena t;
	size_t log0;

	cow__track_force_compare(compare);
	assert_int_equal(th_open(&t, b, SZ, NULL), 0);
	th_base_ref(b, ref, SZ);
	memcpy(ref0, ref, SZ);
	if (snaps)
		assert_int_equal(cow_snapshot(t.a, &s0), 0);
	stamp(t.a, ref, p1, 4, 1);
	assert_int_equal(cow_commit(t.a, COW_COMMIT_ASYNC), 0);
	stamp(t.a, ref, p9, 1, 3); /* written again after the capture */
	assert_int_equal(cow_sync(t.a), 0);
	assert_dirty(t.a, p9, 1);
	if (snaps) {
		assert_int_equal(cow_snapshot(t.a, &s1), 0);
		memcpy(ref1, ref, SZ);
	}
	stamp(t.a, ref, p2, 1, 4);
	assert_dirty(t.a, p29, 2);
	/* the next commit writes the two pages that changed, no more */
	assert_int_equal(cow_stats(t.a, &st), 0);
	log0 = st.log_bytes;
	assert_int_equal(cow_commit(t.a, 0), 0);
	assert_int_equal(cow_stats(t.a, &st), 0);
	if (b == TH_TMPFS || b == TH_EXT4)
		assert_int_equal(st.log_bytes - log0, 2 * (64 + PG) + 64);
	assert_dirty(t.a, NULL, 0);
	assert_true(th_equal(&t, ref, SZ));
	if (snaps) {
		assert_int_equal(cow_rollback(t.a, s1), 0);
		assert_true(th_equal(&t, ref1, SZ));
		assert_int_equal(cow_rollback(t.a, s0), 0);
		assert_true(th_equal(&t, ref0, SZ));
		cow_snap_release(s1);
		cow_snap_release(s0);
	}
	reopen_check(&t, ref, NULL);
	th_close(&t);
	cow__track_force_compare(0);
	free(ref);
	free(ref0);
	free(ref1);
}

static void test_async_clean(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++)
		for (int compare = 0; compare < 2; compare++)
			for (int snaps = 0; snaps < 2; snaps++)
				async_clean(b, compare, snaps);
}

static void test_grow_commit(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		unsigned char *ref = calloc(1, 2 * SZ);
		size_t pages[] = {0, NPG + 3};
		struct th_arena t;

		assert_int_equal(th_open(&t, b, SZ, NULL), 0);
		th_base_ref(b, ref, SZ);
		/* an asynchronous commit still being written, then grow */
		stamp(t.a, ref, pages, 1, 4);
		assert_int_equal(cow_commit(t.a, COW_COMMIT_ASYNC), 0);
		assert_int_equal(cow_grow(t.a, 2 * SZ), 0);
		stamp(t.a, ref, pages, 2, 5);
		assert_int_equal(cow_commit(t.a, 0), 0);
		if (b == TH_TMPFS || b == TH_EXT4) {
			cow_close(t.a);
			assert_int_equal(cow_open(&t.a, t.path, NULL), 0);
			assert_int_equal(cow_size(t.a), 2 * SZ);
		}
		assert_true(th_equal(&t, ref, 2 * SZ));
		th_close(&t);
		free(ref);
	}
}

/* A file whose length is not a page multiple keeps it. */
static void test_unaligned_commit(void **state)
{
	char path[256];
	unsigned char *p;
	cow_arena *a;
	struct stat st;
	int fd;

	(void)state;
	fd = th_make_file(TH_EXT4, 5000, path, sizeof(path));
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	p = cow_base(a);
	p[4000] = 0xab;
	p[4999] = 0xcd;
	p[5000] = 0xee; /* past the end: not committed */
	assert_int_equal(cow_commit(a, 0), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 5000);
	assert_int_equal(p[4000], 0xab);
	/* The page holds the commit: not dirty, and once dropped (here by
	 * a discard, which finds it in the file) it reads zeros past the
	 * file's end. */
	assert_int_equal(cow_dirty(a, NULL, 0), 0);
	assert_int_equal(cow_discard(a), 0);
	assert_int_equal(p[4000], 0xab);
	assert_int_equal(p[4999], 0xcd);
	assert_int_equal(p[5000], 0);
	cow_close(a);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	p = cow_base(a);
	assert_int_equal(p[4000], 0xab);
	assert_int_equal(p[4999], 0xcd);
	assert_int_equal(p[5000], 0);
	cow_close(a);
	unlink(path);
}

/* An isolated arena's commit writes the file and its private copy; a
 * growth reaches the file with the commit. */
static void test_commit_isolate(void **state)
{
	struct cow_options o = {.flags = COW_ISOLATE};
	size_t pages[] = {0, 4, NPG + 1};
	unsigned char *ref = calloc(1, 2 * SZ);
	struct th_arena t;
	struct stat st;

	(void)state;
	for (int b = TH_TMPFS; b <= TH_EXT4; b++) {
		memset(ref, 0, 2 * SZ);
		assert_int_equal(th_open(&t, b, SZ, &o), 0);
		th_base_ref(b, ref, SZ);
		assert_int_equal(cow_grow(t.a, 2 * SZ), 0);
		stamp(t.a, ref, pages, 3, 9);
		assert_int_equal(cow_commit(t.a, 0), 0);
		assert_int_equal(stat(t.path, &st), 0);
		assert_int_equal(st.st_size, 2 * SZ);
		stamp(t.a, NULL, pages, 3, 10);
		assert_int_equal(cow_discard(t.a), 0);
		assert_true(th_equal(&t, ref, 2 * SZ));
		stamp(t.a, ref, pages, 2, 11);
		assert_int_equal(cow_commit(t.a, COW_COMMIT_ASYNC), 0);
		assert_int_equal(cow_sync(t.a), 0);
		cow_close(t.a);
		assert_int_equal(cow_open(&t.a, t.path, &o), 0);
		assert_true(th_equal(&t, ref, 2 * SZ));
		th_close(&t);
	}
	free(ref);
}

/* The ioctls (page scans, userfaultfd) a call makes. The COW_DEBUG
 * build's invariant checks make full scans of their own around each call:
 * there only the call's result counts. */
#ifdef COW_DEBUG
#define IOCTLS(call, want) assert_int_equal((call), 0)
#else
#define IOCTLS(call, want)                                               \
	do {                                                             \
		unsigned long n_ = cow__fault_calls(COW__SYS_IOCTL);     \
									 \
		assert_int_equal((call), 0);                             \
		assert_int_equal(cow__fault_calls(COW__SYS_IOCTL) - n_, \
				 (want));                                \
	} while (0)
#endif

/* A commit with a live snapshot, or a discard, after an earlier commit
 * whose pages are still private: the settle barrier's scan (which drops
 * the pages that equal the base) finds the dirty pages too, and the call
 * scans no second time (it did: two PAGEMAP_SCAN walks). The content
 * stays right: the page written after the commit is committed or
 * discarded, the committed one kept. */
static void test_one_scan_after_commit(void **state)
{
	(void)state;
	for (unsigned cf = 0; cf <= COW_COMMIT_ASYNC; cf++) {
		struct th_arena t;
		cow_snap *s;
		char *p;

		assert_int_equal(th_open(&t, TH_EXT4, SZ, NULL), 0);
		p = cow_base(t.a);
		assert_int_equal(cow_snapshot(t.a, &s), 0);
		p[PG] = 'a';
		assert_int_equal(cow_commit(t.a, cf), 0);
		p[2 * PG] = 'b';
		IOCTLS(cow_commit(t.a, cf), 1);
		p[2 * PG] = 'c';
		p[3 * PG] = 'd';
		IOCTLS(cow_discard(t.a), 1);
		assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
		assert_true(p[PG] == 'a' && p[2 * PG] == 'b');
		assert_int_equal((unsigned char)p[3 * PG],
				 th_base_byte(TH_EXT4, 3 * PG));
		assert_int_equal(cow_rollback(t.a, s), 0);
		assert_int_equal((unsigned char)p[PG], th_base_byte(TH_EXT4, PG));
		cow_snap_release(s);
		assert_int_equal(cow_sync(t.a), 0);
		cow_close(t.a);
		assert_int_equal(cow_open(&t.a, t.path, NULL), 0);
		p = cow_base(t.a);
		assert_true(p[PG] == 'a' && p[2 * PG] == 'b');
		th_close(&t);
	}
}

/*
 * A page a snapshot armed and that was written again before a commit: the
 * commit's scan saw it written (no longer write-protected), so the commit
 * takes it out of the armed set without an unarm ioctl (it made one).
 * Writes after the commit are still seen: the page is dirty, a snapshot
 * records it, rollbacks and a discard give each recorded content back. A
 * page armed and not written again is still unarmed (its later write is
 * seen as well).
 */
static void test_commit_written_armed(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		for (unsigned cf = 0; cf <= COW_COMMIT_ASYNC; cf++) {
			struct th_arena t;
			cow_snap *s[4];
			char *p;

			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			p = cow_base(t.a);
			assert_int_equal(cow_snapshot(t.a, &s[0]), 0);
			p[PG] = 'a';
			assert_int_equal(cow_snapshot(t.a, &s[1]), 0);
			p[PG] = 'b';
			IOCTLS(cow_commit(t.a, cf), 1); /* the scan alone */
			p[PG] = 'c';
			assert_int_equal(cow_dirty(t.a, NULL, 0), 1);
			p[3 * PG] = 'x';
			assert_int_equal(cow_snapshot(t.a, &s[2]), 0);
			/* armed, not written again: unarmed by the commit */
			assert_int_equal(cow_commit(t.a, cf), 0);
			p[PG] = 'd';
			p[3 * PG] = 'y';
			assert_int_equal(cow_dirty(t.a, NULL, 0), 2);
			assert_int_equal(cow_snapshot(t.a, &s[3]), 0);
			p[PG] = 'e';
			p[3 * PG] = 'z';
			assert_int_equal(cow_rollback(t.a, s[3]), 0);
			assert_true(p[PG] == 'd' && p[3 * PG] == 'y');
			assert_int_equal(cow_rollback(t.a, s[2]), 0);
			assert_true(p[PG] == 'c' && p[3 * PG] == 'x');
			assert_int_equal(cow_rollback(t.a, s[1]), 0);
			assert_true(p[PG] == 'a');
			assert_int_equal((unsigned char)p[3 * PG],
					 th_base_byte(b, 3 * PG));
			assert_int_equal(cow_discard(t.a), 0);
			assert_true(p[PG] == 'c' && p[3 * PG] == 'x');
			assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
			for (int i = 0; i < 4; i++)
				cow_snap_release(s[i]);
			th_close(&t);
		}
	}
}

/*
 * The dirty scan runs no file-page test for the pages its caller knows to
 * be private (those of commits not yet written in place): on an arena with
 * many pages present (past the size where one walk tests them all), two
 * written pages far apart take two test walks, one when the other is
 * known. A known page that the walk does not find written (an armed file
 * page) is not reported. Then the same through the public calls: async
 * commits of pages far apart, rewritten while earlier commits are still
 * being written, keep the content.
 */
#define KNPG 4096
static int scan_runs(cow_arena *a, const struct cow__pageset *known,
		     struct cow__pageset *out, unsigned long *ioctls)
{
	unsigned long n = cow__fault_calls(COW__SYS_IOCTL);
	int r;

	cow__pageset_clear(out);
	r = cow__track_dirty(a, 0, KNPG, known, cow__pageset_add_run, out);
	*ioctls = cow__fault_calls(COW__SYS_IOCTL) - n;
	return r;
}

static void test_known_private(void **state)
{
	struct cow__pageset known = COW__PAGESET_INIT, out = COW__PAGESET_INIT;
	unsigned char *ref = malloc(KNPG * PG);
	unsigned long n;
	struct th_arena t;
	volatile char *p;
	char sum = 0;

	(void)state;
	assert_non_null(ref);
	assert_int_equal(th_open(&t, TH_EXT4, KNPG * PG, NULL), 0);
	p = cow_base(t.a);
	p[0] = 1;
	assert_int_equal(cow_discard(t.a), 0); /* the tracking starts */
	for (size_t i = 0; i < KNPG; i++)
		sum += p[i * PG];
	/* the first scan counts the pages present, the second arms the
	 * file pages among them */
	assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
	assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
	p[100 * PG] = 'a';
	p[3000 * PG] = 'b';
	assert_int_equal(scan_runs(t.a, NULL, &out, &n), 0);
	assert_int_equal(out.n, 2);
	assert_int_equal(n, 3); /* the walk, a file-page test for each */
	assert_int_equal(cow__pageset_add(&known, 3000, 1), 0);
	assert_int_equal(cow__pageset_add(&known, 50, 1), 0);
	assert_int_equal(scan_runs(t.a, &known, &out, &n), 0);
	assert_int_equal(n, 2); /* the walk, the test of page 100 */
	assert_int_equal(out.n, 2);
	assert_true(out.v[0].first == 100 && out.v[0].n == 1);
	assert_true(out.v[1].first == 3000 && out.v[1].n == 1);
	assert_int_equal(cow_discard(t.a), 0);

	/* the public path: commits still being written are known */
	th_base_ref(TH_EXT4, ref, KNPG * PG);
	for (int round = 0; round < 40; round++) {
		for (size_t k = 0; k < 4; k++) {
			size_t pg = (k * 997 + (size_t)round * 131) % KNPG;

			p[pg * PG + 8] = (char)(round + 1);
			ref[pg * PG + 8] = (unsigned char)(round + 1);
		}
		assert_int_equal(cow_commit(t.a, COW_COMMIT_ASYNC), 0);
		if (round % 8 == 7)
			assert_int_equal(cow_dirty(t.a, NULL, 0) >= 0, 1);
	}
	assert_int_equal(cow_sync(t.a), 0);
	assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
	assert_true(th_equal(&t, ref, KNPG * PG));
	cow_close(t.a);
	assert_int_equal(cow_open(&t.a, t.path, NULL), 0);
	assert_true(th_equal(&t, ref, KNPG * PG));
	th_close(&t);
	cow__pageset_free(&known);
	cow__pageset_free(&out);
	free(ref);
	(void)sum;
}

/*
 * A commit after the previous commit's in-place writes ended: the guard
 * records the file's state after them and compares nothing more (it read
 * the file twice, fstat for the record and fstat for the compare, to
 * compare the two). A change from outside after a cow_sync is still
 * -ESTALE, with COW_ISOLATE too (the real file is recorded and compared).
 */
static void test_commit_guard_once(void **state)
{
	(void)state;
	for (int i = 0; i < 4; i++) {
		struct cow_options o = {
		    .flags = COW_NOTHREAD | (i & 1 ? COW_ISOLATE : 0)};
		int b = i & 2 ? TH_EXT4 : TH_TMPFS;
		struct th_arena t;
		unsigned long n;
		char *p;
		int fd;

		assert_int_equal(th_open(&t, b, SZ, &o), 0);
		p = cow_base(t.a);
		p[0] = 'a';
		assert_int_equal(cow_commit(t.a, 0), 0);
		usleep(100 * 1000); /* its in-place writes end meanwhile */
		p[PG] = 'b';
		n = cow__fault_calls(COW__SYS_FSTAT);
		assert_int_equal(cow_commit(t.a, 0), 0);
		assert_true(cow__fault_calls(COW__SYS_FSTAT) - n <= 1);
		assert_int_equal(cow_sync(t.a), 0);
		fd = open(t.path, O_WRONLY);
		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, "x", 1, 5 * PG), 1);
		close(fd);
		p[2 * PG] = 'c';
		assert_int_equal(cow_commit(t.a, 0), -ESTALE);
		th_close(&t);
	}
}

/* Snapshots taken before a commit stay valid: rollback returns to them,
 * discard to the commit. */
static void test_commit_snapshots(void **state)
{
	unsigned char *r0 = malloc(SZ), *r1 = malloc(SZ), *r2 = malloc(SZ);
	size_t pa[] = {1, 2, 3}, pb[] = {2, 3, 9, 20};

	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		for (unsigned cf = 0; cf <= COW_COMMIT_ASYNC; cf++) {
			struct th_arena t;
			cow_snap *s0, *s1;

			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			th_base_ref(b, r0, SZ);
			assert_int_equal(cow_snapshot(t.a, &s0), 0);
			memcpy(r1, r0, SZ);
			stamp(t.a, r1, pa, 3, 1);
			assert_int_equal(cow_snapshot(t.a, &s1), 0);
			memcpy(r2, r1, SZ);
			stamp(t.a, r2, pb, 4, 2);
			assert_int_equal(cow_commit(t.a, cf), 0);
			stamp(t.a, NULL, pa, 3, 3);
			assert_int_equal(cow_rollback(t.a, s1), 0);
			assert_true(th_equal(&t, r1, SZ));
			assert_int_equal(cow_rollback(t.a, s0), 0);
			assert_true(th_equal(&t, r0, SZ));
			assert_int_equal(cow_discard(t.a), 0);
			assert_true(th_equal(&t, r2, SZ));
			cow_snap_release(s0);
			cow_snap_release(s1);
			assert_int_equal(cow_sync(t.a), 0);
			if (b == TH_TMPFS || b == TH_EXT4) {
				cow_close(t.a);
				assert_int_equal(cow_open(&t.a, t.path, NULL),
						 0);
				assert_true(th_equal(&t, r2, SZ));
			}
			th_close(&t);
		}
	}
	free(r0);
	free(r1);
	free(r2);
}

static void test_commit_bad_input(void **state)
{
	struct cow_options ro = {.flags = COW_READONLY};
	struct th_arena t;

	(void)state;
	assert_int_equal(cow_commit(NULL, 0), -EINVAL);
	assert_int_equal(cow_sync(NULL), -EINVAL);
	assert_int_equal(th_open(&t, TH_EXT4, SZ, &ro), 0);
	assert_int_equal(cow_commit(t.a, 0), -EROFS);
	assert_int_equal(cow_commit(t.a, COW_COMMIT_ASYNC), -EROFS);
	assert_int_equal(cow_commit(t.a, 2), -EINVAL);
	assert_int_equal(cow_sync(t.a), 0);
	th_close(&t);
	assert_int_equal(th_open(&t, TH_ANON, SZ, NULL), 0);
	assert_int_equal(cow_commit(t.a, ~0u), -EINVAL);
	th_close(&t);
	assert_non_null(strstr(cow_strerror(COW_ECORRUPT), "log"));
	assert_non_null(strstr(cow_strerror(COW_ECORRUPT), "corrupt"));
	assert_non_null(strstr(cow_strerror(COW_EFOREIGN), "another file"));
	assert_non_null(strstr(cow_strerror(COW_EVERSION), "version"));
	assert_non_null(strstr(cow_strerror(COW_ERECOVER), "recover"));
	assert_string_equal(cow_strerror(-4200), "Unknown error");
}

/*
 * Asynchronous commits made while a log write is in flight join one
 * transaction holding the newest image of each page: 300 commits of the
 * same few pages reach the log as far fewer transactions (each commit
 * used to be one, its pages logged again), commit_seq_durable counts the
 * transactions, and the file holds the last commit after a reopen. With
 * and without the reaping thread; some commits add a page the batch does
 * not hold yet.
 */
static void test_async_batches(void **state)
{
	static const unsigned oflags[] = {0, COW_NOTHREAD};

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct cow_options o = {.flags = oflags[i]};
		unsigned char *ref = malloc(SZ);
		size_t pages[] = {1, 2, 3, 9}, extra;
		unsigned long long seq0;
		struct cow_stats st;
		struct th_arena t;

		assert_int_equal(th_open(&t, TH_EXT4, SZ, &o), 0);
		th_base_ref(TH_EXT4, ref, SZ);
		stamp(t.a, ref, pages, 4, 1);
		assert_int_equal(cow_commit(t.a, 0), 0);
		assert_int_equal(cow_stats(t.a, &st), 0);
		seq0 = st.commit_seq_durable;
		for (unsigned g = 2; g < 302; g++) {
			stamp(t.a, ref, pages, 4, g);
			extra = 10 + g % 20;
			if (g % 7 == 0)
				stamp(t.a, ref, &extra, 1, g);
			assert_int_equal(cow_commit(t.a, COW_COMMIT_ASYNC), 0);
		}
		assert_int_equal(cow_sync(t.a), 0);
		assert_int_equal(cow_stats(t.a, &st), 0);
		assert_int_equal(st.commits, 301);
		assert_int_equal(st.dirty_pages, 0);
		assert_int_equal(st.commit_pending_bytes, 0);
		fprintf(stderr,
			"# 300 asynchronous commits in %llu log transactions\n",
			st.commit_seq_durable - seq0);
		assert_true(st.commit_seq_durable - seq0 < 150);
		assert_true(th_equal(&t, ref, SZ));
		cow_close(t.a);
		assert_int_equal(cow_open(&t.a, t.path, NULL), 0);
		assert_true(th_equal(&t, ref, SZ));
		th_close(&t);
		free(ref);
	}
}

/*
 * A bound on the copies not yet written in place: with it at one page,
 * every commit waits for the ones before it, and nothing is lost.
 */
static void test_pending_bound(void **state)
{
	struct cow_options o = {.flags = COW_NOTHREAD};
	unsigned char *ref = malloc(SZ);
	size_t pages[] = {0, 5, 6};
	struct cow_stats st;
	struct th_arena t;

	(void)state;
	cow__commit_pending_max(PG);
	assert_int_equal(th_open(&t, TH_EXT4, SZ, &o), 0);
	th_base_ref(TH_EXT4, ref, SZ);
	for (unsigned g = 1; g < 20; g++) {
		stamp(t.a, ref, pages, 3, g);
		assert_int_equal(cow_commit(t.a, g % 2 ? COW_COMMIT_ASYNC : 0),
				 0);
		assert_int_equal(cow_stats(t.a, &st), 0);
		/* this commit's pages at most: the earlier ones went */
		assert_true(st.commit_pending_bytes <= 3 * PG);
	}
	cow__commit_pending_max(0);
	assert_int_equal(cow_sync(t.a), 0);
	cow_close(t.a);
	assert_int_equal(cow_open(&t.a, t.path, NULL), 0);
	assert_true(th_equal(&t, ref, SZ));
	th_close(&t);
	free(ref);
}

static void fill_gen(cow_arena *a, unsigned char *ref, unsigned gen)
{
	size_t pages[] = {0, 3, 4, 5, 17, 30, 31};

	stamp(a, ref, pages, 7, gen);
}

/*
 * Fails the Nth system call (any kind, including io_uring completions)
 * of a commit, for every N: the commit fails or succeeds, nothing is
 * lost, and reopening gives the old or the new content - the new one
 * whenever the commit reported success.
 */
static void fault_sweep(enum th_backing b, unsigned oflags, unsigned cflags)
{
	struct cow_options o = {.flags = oflags};
	unsigned char *ref1 = malloc(SZ), *ref2 = malloc(SZ);
	int done = 0, failures = 0;

	for (unsigned long n = 1; !done && n < 400; n++) {
		struct th_arena t;
		struct cow_stats st;
		unsigned long before;
		int r, r2, fired, logged;

		assert_int_equal(th_open(&t, b, SZ, &o), 0);
		th_base_ref(b, ref1, SZ);
		fill_gen(t.a, ref1, 1);
		assert_int_equal(cow_commit(t.a, 0), 0);
		memcpy(ref2, ref1, SZ);
		fill_gen(t.a, ref2, 2);
		before = cow__fault_calls(COW__SYS_ANY);
		cow__fault_inject(COW__SYS_ANY, n, EIO, 0);
		/* and the background writes after a synchronous one */
		r = cow_commit(t.a, cflags);
		if (r == 0)
			r = cow_sync(t.a);
		fired = cow__fault_calls(COW__SYS_ANY) - before >= n;
		cow__fault_reset();
		/* Its log record was written (and, without COW_NOSYNC,
		 * synced): the reopened file must hold it, whatever failed
		 * after. */
		logged = cow_stats(t.a, &st) == 0 && st.commit_seq_durable >= 2;
		if (!fired)
			assert_int_equal(r, 0);
		done = !fired;
		failures += r < 0;
		/* nothing lost: the arena shows the new content */
		assert_true(th_equal(&t, ref2, SZ));
		r2 = cow_commit(t.a, 0);
		if (r2 == 0)
			r = 0;
		assert_true(th_equal(&t, ref2, SZ));
		if (b == TH_ANON || b == TH_MEMFD) {
			assert_int_equal(r2, 0);
			assert_int_equal(cow_discard(t.a), 0);
			assert_true(th_equal(&t, ref2, SZ));
			th_close(&t);
			continue;
		}
		cow_close(t.a);
		assert_int_equal(cow_open(&t.a, t.path, NULL), 0);
		if (r == 0 || logged) {
			assert_true(th_equal(&t, ref2, SZ));
		} else if (memcmp(cow_base(t.a), ref2, SZ)) {
			assert_true(th_equal(&t, ref1, SZ));
		}
		th_close(&t);
		unlink_log(t.path);
	}
	assert_true(done);
	assert_true(failures > 0);
	free(ref1);
	free(ref2);
}

static void test_fault_sweep_sync(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++)
		fault_sweep(b, COW_NOTHREAD, 0);
	fault_sweep(TH_EXT4, 0, 0);
}

/* The same with checkpoints (base sync and log reset) every commit or
 * two: their failures too. */
static void test_fault_sweep_ckpt(void **state)
{
	(void)state;
	cow__commit_ckpt_bytes(16 << 10);
	fault_sweep(TH_EXT4, COW_NOTHREAD, 0);
	fault_sweep(TH_TMPFS, 0, COW_COMMIT_ASYNC);
	cow__commit_ckpt_bytes(0);
}

static void test_fault_sweep_async(void **state)
{
	(void)state;
	fault_sweep(TH_EXT4, COW_NOTHREAD, COW_COMMIT_ASYNC);
	fault_sweep(TH_TMPFS, 0, COW_COMMIT_ASYNC);
}

/* COW_NOSYNC: no sync to fail, but the writes can, and a commit whose
 * record reached the log must not be lost by the close. */
static void test_fault_sweep_nosync(void **state)
{
	(void)state;
	fault_sweep(TH_EXT4, COW_NOTHREAD | COW_NOSYNC, 0);
	fault_sweep(TH_TMPFS, COW_NOSYNC, 0);
	fault_sweep(TH_EXT4, COW_NOTHREAD | COW_NOSYNC, COW_COMMIT_ASYNC);
	fault_sweep(TH_TMPFS, COW_NOSYNC, COW_COMMIT_ASYNC);
}

/*
 * The in-place write failing after the log record was durable (written,
 * with COW_NOSYNC): the commit returns 0 at its durable point, the
 * failure of the background write is reported by the next call (cow_sync
 * here, and every later commit), and the close keeps the log, so that the
 * reopened file holds the commit (the close used to remove the log
 * whatever had failed). Before, the synchronous commit wrote in place
 * itself and returned the write's error.
 */
static void apply_fails(unsigned oflags)
{
	struct cow_options o = {.flags = COW_NOTHREAD | oflags};

	for (int b = TH_TMPFS; b <= TH_EXT4; b++) {
		unsigned char *ref = malloc(SZ);
		struct th_arena t;
		struct cow_stats st;
		int r, r2, ok;

		assert_int_equal(th_open(&t, b, SZ, &o), 0);
		th_base_ref(b, ref, SZ);
		fill_gen(t.a, ref, 1);
		assert_int_equal(cow_commit(t.a, 0), 0);
		assert_int_equal(cow_sync(t.a), 0);
		fill_gen(t.a, ref, 2);
		/* without COW_NOSYNC the log is synced on the caller's
		 * thread: the first completion is the in-place write */
		cow__fault_inject(COW__SYS_CQE, 1, EIO, 0);
		r = cow_commit(t.a, 0);
		assert_int_equal(cow_stats(t.a, &st), 0);
		r2 = cow_sync(t.a);
		cow__fault_reset();
		assert_int_equal(r, 0);
		assert_int_equal(st.commit_seq_durable, 2);
		assert_int_equal(st.commit_pending_bytes, 7 * 4096);
		assert_int_equal(r2, -EIO);
		assert_true(th_equal(&t, ref, SZ));
		assert_int_equal(cow_commit(t.a, 0), -EIO);
		cow_close(t.a);
		assert_true(log_exists(t.path));
		assert_int_equal(cow_open(&t.a, t.path, &o), 0);
		ok = th_equal(&t, ref, SZ);
		th_close(&t);
		assert_true(ok);
		free(ref);
	}
}

static void test_nosync_apply_fails(void **state)
{
	(void)state;
	apply_fails(COW_NOSYNC);
}

static void test_apply_fails_after_durable(void **state)
{
	(void)state;
	apply_fails(0);
}

/*
 * After a commit (and its sync) that returned r on t (closed): reopening
 * gives the new content ref whenever r is 0, else the new content or the
 * base's (ref is overwritten with it then). Closes t and removes its log.
 */
static void reopen_old_or_new(struct th_arena *t, enum th_backing b,
			      unsigned char *ref, int r)
{
	assert_int_equal(cow_open(&t->a, t->path, NULL), 0);
	if (r == 0 || memcmp(cow_base(t->a), ref, SZ)) {
		if (r == 0)
			assert_true(th_equal(t, ref, SZ));
		else
			th_base_ref(b, ref, SZ);
		assert_true(th_equal(t, ref, SZ));
	}
	th_close(t);
	unlink_log(t->path);
}

/* Each io_uring completion failing in turn, as the kernel would report a
 * failed write or fdatasync. */
static void test_fault_cqe(void **state)
{
	(void)state;
	for (int b = TH_TMPFS; b <= TH_EXT4; b++) {
		for (unsigned long n = 1; n < 64; n++) {
			unsigned char *ref = malloc(SZ);
			struct th_arena t;
			unsigned long before;
			int r, fired;

			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			th_base_ref(b, ref, SZ);
			fill_gen(t.a, ref, 1);
			before = cow__fault_calls(COW__SYS_CQE);
			cow__fault_inject(COW__SYS_CQE, n, EIO, 0);
			r = cow_commit(t.a, 0);
			if (r == 0)
				r = cow_sync(t.a);
			cow_close(t.a);
			fired = cow__fault_calls(COW__SYS_CQE) - before >= n;
			cow__fault_reset();
			reopen_old_or_new(&t, b, ref, r);
			free(ref);
			if (!fired)
				break;
		}
	}
}

/*
 * A submission of which the kernel takes only the first k entries (as when
 * it cannot allocate a request), for the first submission of a commit, on
 * the caller's thread or the ring's: the entries left fail their
 * operations, the commit (or its sync) reports it or succeeds, and
 * reopening gives the old content or the new one, the new one whenever
 * both returned 0.
 */
static void test_partial_submit(void **state)
{
	(void)state;
	for (int b = TH_TMPFS; b <= TH_EXT4; b++)
		for (unsigned k = 1; k <= 4; k++)
			for (int thr = 0; thr < 2; thr++) {
				struct cow_options o = {
				    .flags = thr ? 0 : COW_NOTHREAD};
				unsigned char *ref = malloc(SZ);
				struct th_arena t;
				int r;

				assert_int_equal(th_open(&t, b, SZ, &o), 0);
				th_base_ref(b, ref, SZ);
				fill_gen(t.a, ref, 1);
				cow__fault_uring_take(k);
				r = cow_commit(t.a, k % 2 ? COW_COMMIT_ASYNC : 0);
				if (r == 0)
					r = cow_sync(t.a);
				cow_close(t.a);
				cow__fault_uring_take(0);
				reopen_old_or_new(&t, b, ref, r);
				free(ref);
			}
}

/*
 * Each io_uring completion in turn reports -EAGAIN, as for an operation
 * the ring did not take (none of it ran): of commits whose applies and
 * checkpoints (a small log) run on the ring, then of the close's. An
 * apply, checkpoint or sync so failed runs again and the arena goes on:
 * the next commit and cow_sync succeed, and a reopen gives their
 * content. Only a log write so failed fails its commit (nothing changed;
 * an asynchronous one is reported once, by the next call). Before, the
 * first two made the arena stop committing.
 */
static void test_fault_cqe_again(void **state)
{
	(void)state;
	cow__commit_ckpt_bytes(64 << 10);
	for (int b = TH_TMPFS; b <= TH_EXT4; b++) {
		unsigned long n, reached = 0;

		for (n = 1;; n++) {
			unsigned char *ref = malloc(SZ);
			struct th_arena t;
			unsigned long before;
			int r;

			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			th_base_ref(b, ref, SZ);
			before = cow__fault_calls(COW__SYS_CQE);
			cow__fault_inject(COW__SYS_CQE, n, EAGAIN, 0);
			for (unsigned g = 1; g <= 6; g++) {
				fill_gen(t.a, ref, g);
				r = cow_commit(t.a,
					       g % 2 ? COW_COMMIT_ASYNC : 0);
				assert_true(r == 0 || r == -EAGAIN);
			}
			r = cow_sync(t.a);
			assert_true(r == 0 || r == -EAGAIN);
			reached = cow__fault_calls(COW__SYS_CQE) - before;
			cow__fault_reset();
			fill_gen(t.a, ref, 7);
			r = cow_commit(t.a, 0);
			if (r == -EAGAIN) /* an asynchronous one's, once */
				r = cow_commit(t.a, 0);
			assert_int_equal(r, 0);
			assert_int_equal(cow_sync(t.a), 0);
			assert_int_equal(cow_close(t.a), 0);
			reopen_old_or_new(&t, b, ref, 0);
			free(ref);
			if (reached < n)
				break;
		}
		/* every completion of the commits was hit once */
		print_message("# %s: %lu completions of the commits failed "
			      "in turn\n",
			      b == TH_EXT4 ? "ext4" : "tmpfs", n - 1);
		assert_true(n > 10);
		for (n = 1;; n++) {
			unsigned char *ref = malloc(SZ);
			struct th_arena t;
			unsigned long before;

			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			th_base_ref(b, ref, SZ);
			for (unsigned g = 1; g <= 3; g++) {
				fill_gen(t.a, ref, g);
				assert_int_equal(cow_commit(t.a, 0), 0);
			}
			before = cow__fault_calls(COW__SYS_CQE);
			cow__fault_inject(COW__SYS_CQE, n, EAGAIN, 0);
			assert_int_equal(cow_close(t.a), 0);
			reached = cow__fault_calls(COW__SYS_CQE) - before;
			cow__fault_reset();
			reopen_old_or_new(&t, b, ref, 0);
			free(ref);
			if (reached < n)
				break;
		}
		/* the close's apply and sync: tmpfs syncs nothing */
		assert_true(n > (b == TH_EXT4 ? 2 : 1));
	}
	cow__commit_ckpt_bytes(0);
}

/* Does the kernel free a page table that MADV_DONTNEED of its whole
 * block leaves empty (CONFIG_PT_RECLAIM, Linux 6.14)? */
static int kernel_frees_tables(size_t blk)
{
	char *m = mmap(NULL, 8 * blk, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *b;
	long before, after;

	assert_true(m != MAP_FAILED);
	(void)madvise(m, 8 * blk, MADV_NOHUGEPAGE);
	b = (char *)(((uintptr_t)m + blk - 1) & ~(uintptr_t)(blk - 1));
	for (int i = 0; i < 4; i++)
		b[(size_t)i * blk] = 1;
	before = th_vm_pte_kb();
	assert_int_equal(madvise(b, 4 * blk, MADV_DONTNEED), 0);
	after = th_vm_pte_kb();
	munmap(m, 8 * blk);
	return before > 0 && after >= 0 && after < before;
}

/* Is the page at p mapped (/proc/self/pagemap: present)? */
static int page_present(const void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &e, sizeof(e),
			       (off_t)((uintptr_t)p / PG * sizeof(e))),
			 (ssize_t)sizeof(e));
	close(fd);
	return (int)(e >> 63);
}

/*
 * The page tables that dropped copies leave empty are given back. After
 * a commit of one page in each of 32 page-table blocks (2 MiB each), the
 * copies are dropped once their content is in the base (by that commit
 * without a log, by the next one with a log), and so are the tables of the
 * blocks that then map nothing: a dirty scan walks every table in use, so
 * small commits after a spread one paid for the spread. A block where a
 * page was only read keeps it mapped, and no content changes.
 */
static void test_commit_frees_page_tables(void **state)
{
	size_t blk = PG / 8 * PG, size = 32 * blk;
	long before, after;

	(void)state;
	if (!kernel_frees_tables(blk))
		skip(); /* the kernel keeps empty page tables (no
			 * CONFIG_PT_RECLAIM): nothing to give back */
	for (int b = 0; b < TH_NBACKINGS; b++) {
		struct th_arena t;
		volatile char *p;
		char seen;

		assert_int_equal(th_open(&t, b, size, NULL), 0);
		p = cow_base(t.a);
		for (size_t i = 0; i < 32; i++)
			p[i * blk + 100] = (char)(i + 1);
		seen = p[5 * blk + 7 * PG];
		before = th_vm_pte_kb();
		assert_int_equal(cow_commit(t.a, 0), 0);
		assert_int_equal(cow_sync(t.a), 0);
		p[200] = 9;
		assert_int_equal(cow_commit(t.a, 0), 0);
		after = th_vm_pte_kb();
		print_message("# %s: page tables %ld kB -> %ld kB\n",
			      th_backing_names[b], before, after);
		/* 31 blocks emptied (not the one of page 0, written again,
		 * nor the one with a page read); one may straddle the
		 * arena's start: at least 16 tables of 4 kB went. */
		assert_true(before - after >= 16 * (long)(PG / 1024));
		assert_true(page_present((const void *)&p[5 * blk + 7 * PG]));
		assert_int_equal(p[5 * blk + 7 * PG], seen);
		assert_int_equal(p[200], 9);
		for (size_t i = 0; i < 32; i++)
			assert_int_equal(p[i * blk + 100], (char)(i + 1));
		assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
		th_close(&t);
	}
}

/*
 * Every call of a commit that drops copies and gives back page tables
 * failing in turn (the scan of a block, the drop of blocks among them):
 * giving back is best effort, and no failure changes the arena's content.
 */
static void test_commit_trim_faults(void **state)
{
	size_t blk = PG / 8 * PG, size = 4 * blk;
	unsigned fired = 1, n;

	(void)state;
	for (n = 1; fired; n++) {
		struct th_arena t;
		volatile char *p;
		unsigned long calls;

		assert_int_equal(th_open(&t, TH_EXT4, size, NULL), 0);
		p = cow_base(t.a);
		for (size_t i = 0; i < 4; i++)
			p[i * blk + 100] = (char)(i + 1);
		assert_int_equal(cow_commit(t.a, 0), 0);
		assert_int_equal(cow_sync(t.a), 0);
		p[200] = 9;
		calls = cow__fault_calls(COW__SYS_ANY);
		cow__fault_inject(COW__SYS_ANY, n, EIO, 0);
		(void)cow_commit(t.a, 0); /* either way, the content: */
		fired = cow__fault_calls(COW__SYS_ANY) >= calls + n;
		cow__fault_reset();
		assert_int_equal(p[200], 9);
		for (size_t i = 0; i < 4; i++)
			assert_int_equal(p[i * blk + 100], (char)(i + 1));
		th_close(&t);
	}
	print_message("# %u calls failed in turn\n", n - 2);
}

static volatile char *race_page;
static int race_hits;

/* The trace hook: a writer racing the call stores into a page that is
 * about to be dropped. */
static void racing_writer(enum cow__sys_kind kind, int fd,
			  const struct iovec *iov, int cnt, off_t off)
{
	const char *at = (const char *)race_page;

	(void)fd;
	if (kind != COW__SYS_MADVISE || off != MADV_DONTNEED)
		return;
	for (int i = 0; i < cnt; i++)
		if (at >= (const char *)iov[i].iov_base &&
		    at < (const char *)iov[i].iov_base + iov[i].iov_len) {
			*race_page = 42;
			race_hits++;
		}
}

/*
 * cow_snap_save, cow_snap_load and cow_snap_diff of two snapshots may run
 * while the arena's writers write: they drop no private copy. Their settle
 * barrier dropped the pages that a commit had made equal to the base, and
 * a store landing between the compare and the drop was lost (the trace
 * hook stores into every range about to be dropped, as a racing writer
 * would).
 */
static void test_snap_calls_drop_nothing(void **state)
{
	static const enum th_backing bs[] = {TH_TMPFS, TH_EXT4};

	(void)state;
	for (size_t i = 0; i < sizeof(bs) / sizeof(bs[0]); i++) {
		char path[] = "/var/tmp/cowarena-race-XXXXXX";
		cow_snap *s, *s2;
		struct th_arena t;
		volatile char *p;
		int fd;

		assert_int_equal(th_open(&t, bs[i], SZ, NULL), 0);
		p = cow_base(t.a);
		assert_int_equal(cow_snapshot(t.a, &s), 0);
		p[3 * PG] = 7;
		assert_int_equal(cow_commit(t.a, 0), 0);
		assert_int_equal(cow_sync(t.a), 0);
		fd = mkstemp(path);
		assert_true(fd >= 0);
		close(fd);
		race_page = &p[3 * PG];
		race_hits = 0;
		cow__sys_set_trace(racing_writer);
		assert_int_equal(cow_snap_save(s, path, 0), 0);
		assert_int_equal(cow_snap_load(t.a, path, &s2), 0);
		assert_true(cow_snap_diff(t.a, s, s2, NULL, 0) >= 0);
		cow__sys_set_trace(NULL);
		assert_int_equal(p[3 * PG], race_hits ? 42 : 7);
		assert_int_equal(race_hits, 0);
		cow_snap_release(s2);
		cow_snap_release(s);
		unlink(path);
		th_close(&t);
	}
}

/*
 * A long log write (more writes than the ring takes whole as one linked
 * chain, io.h): its fdatasync must still follow every write, and the
 * reopened file holds the commit. The log's writes and syncs are traced
 * in the order their completions were processed; no log write may
 * complete after the log's sync.
 */
static pthread_mutex_t log_ev_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t log_writes, log_syncs, log_writes_after_sync;

static void trace_log(enum cow__sys_kind kind, int fd, const struct iovec *iov,
		      int cnt, off_t off)
{
	char link[64], target[300];
	ssize_t n;

	(void)iov;
	(void)cnt;
	(void)off;
	if (kind != COW__SYS_PWRITE && kind != COW__SYS_FSYNC)
		return;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return;
	target[n] = 0;
	if (!strstr(target, ".cowlog"))
		return;
	pthread_mutex_lock(&log_ev_lock);
	if (kind == COW__SYS_FSYNC)
		log_syncs++;
	else if (log_syncs)
		log_writes_after_sync++;
	else
		log_writes++;
	pthread_mutex_unlock(&log_ev_lock);
}

/* One asynchronous commit of pages npg pages, then cow_sync, traced;
 * then the reopened file holds it. */
static void long_log_commit(int b, unsigned oflags, size_t npg,
			    size_t min_writes)
{
	struct cow_options o = {.flags = oflags};
	size_t sz = npg * PG;
	unsigned char *ref = malloc(sz);
	struct th_arena t;
	uint32_t *w;

	assert_int_equal(th_open(&t, b, sz, &o), 0);
	/* the log exists (made by a first commit), and is empty */
	memset(cow_base(t.a), 1, PG);
	assert_int_equal(cow_commit(t.a, 0), 0);
	w = cow_base(t.a);
	for (size_t i = 0; i < sz / 4; i++)
		w[i] = (uint32_t)(i * 2654435761u) ^ 7;
	memcpy(ref, cow_base(t.a), sz);
	log_writes = log_syncs = log_writes_after_sync = 0;
	cow__sys_set_trace(trace_log);
	assert_int_equal(cow_commit(t.a, COW_COMMIT_ASYNC), 0);
	assert_int_equal(cow_sync(t.a), 0);
	cow__sys_set_trace(NULL);
	if (getenv("COW_TRACE"))
		fprintf(stderr, "# %zu pages: %zu log writes, %zu syncs, %zu "
			"writes after the sync\n", npg, log_writes, log_syncs,
			log_writes_after_sync);
	assert_true(log_writes >= min_writes);
	assert_int_equal(log_writes_after_sync, 0);
	assert_int_equal(log_syncs, (oflags & COW_NOSYNC) ? 0 : 1);
	cow_close(t.a);
	assert_int_equal(cow_open(&t.a, t.path, &o), 0);
	assert_memory_equal(cow_base(t.a), ref, sz);
	th_close(&t);
	unlink_log(t.path);
	free(ref);
}

/* A log write of 301 writes (one page each), more than the ring's 256
 * entries: the ring is submitted in its middle, where a chain of them
 * would have been cut. Then with the chain's limit lowered, with and
 * without the reaping thread, and with COW_NOSYNC (no sync at all). The
 * completions' order cannot show a sync that started too early (on this
 * kernel, a cut chain's writes still completed before its sync did):
 * test_io checks the start of a COW__IO_AFTER sync. */
static void test_long_log_write(void **state)
{
	(void)state;
	cow__commit_log_split(2, 0);
	long_log_commit(TH_EXT4, 0, 300, 300);
	long_log_commit(TH_EXT4, COW_NOTHREAD, 300, 300);
	cow__commit_log_split(2, 4);
	long_log_commit(TH_EXT4, 0, 16, 16);
	long_log_commit(TH_TMPFS, COW_NOTHREAD, 16, 16);
	long_log_commit(TH_EXT4, COW_NOSYNC, 16, 16);
	cow__commit_log_split(0, 0);
}

/* Every call of an asynchronous commit failing in turn (the writes, the
 * sync queued after them, their completions) with long log writes: a
 * write that fails fails the commit, the sync does not run, nothing of it
 * is durable. */
static void test_fault_sweep_long_log(void **state)
{
	(void)state;
	cow__commit_log_split(2, 4);
	fault_sweep(TH_EXT4, COW_NOTHREAD, COW_COMMIT_ASYNC);
	fault_sweep(TH_TMPFS, 0, COW_COMMIT_ASYNC);
	fault_sweep(TH_EXT4, COW_NOTHREAD | COW_NOSYNC, COW_COMMIT_ASYNC);
	cow__commit_log_split(0, 0);
}

/* Writes into page 0 of the file whose inode is apply_ino (the trace
 * hook runs in the reaping thread too). */
static ino_t apply_ino;
static unsigned apply_writes;

static void apply_trace(enum cow__sys_kind kind, int fd,
			const struct iovec *iov, int cnt, off_t off)
{
	struct stat st;

	(void)iov;
	(void)cnt;
	if (kind == COW__SYS_PWRITE && off == 0 && fstat(fd, &st) == 0 &&
	    st.st_ino == apply_ino)
		__atomic_add_fetch(&apply_writes, 1, __ATOMIC_SEQ_CST);
}

static unsigned page0_writes(void)
{
	return __atomic_load_n(&apply_writes, __ATOMIC_SEQ_CST);
}

/*
 * Synchronous commits of the same pages write them in place once for
 * all, when something needs them there (here a discard, then cow_sync),
 * not once per commit: the newest image of each page. Meanwhile only the
 * newest copy of each page is held (the older ones are given back once a
 * newer one is logged). The content is the last commit's throughout, and
 * after a reopen.
 */
static void test_apply_coalesced(void **state)
{
	(void)state;
	for (unsigned flags = 0; flags <= COW_NOTHREAD; flags += COW_NOTHREAD) {
		struct cow_options o = {.flags = flags};
		unsigned char *ref = malloc(SZ), *junk = malloc(SZ);
		struct th_arena t;
		struct stat st;

		assert_int_equal(th_open(&t, TH_EXT4, SZ, &o), 0);
		th_base_ref(TH_EXT4, ref, SZ);
		assert_int_equal(stat(t.path, &st), 0);
		apply_ino = st.st_ino;
		apply_writes = 0;
		cow__sys_set_trace(apply_trace);
		for (unsigned g = 1; g <= 8; g++) {
			struct cow_stats cs;

			fill_gen(t.a, ref, g);
			assert_int_equal(cow_commit(t.a, 0), 0);
			assert_true(th_equal(&t, ref, SZ));
			assert_int_equal(cow_stats(t.a, &cs), 0);
			assert_int_equal(cs.commit_pending_bytes, 7 * PG);
			if (g != 4)
				continue;
			/* the discard needs generation 4 in the file */
			fill_gen(t.a, junk, 99);
			assert_int_equal(cow_discard(t.a), 0);
			assert_true(th_equal(&t, ref, SZ));
			assert_int_equal(page0_writes(), 1);
		}
		assert_int_equal(cow_sync(t.a), 0);
		assert_int_equal(page0_writes(), 2);
		cow__sys_set_trace(NULL);
		assert_int_equal(cow_close(t.a), 0);
		assert_int_equal(cow_open(&t.a, t.path, NULL), 0);
		assert_true(th_equal(&t, ref, SZ));
		th_close(&t);
		free(ref);
		free(junk);
	}
}

/* The MADV_DONTNEED calls made (each a TLB flush, whatever its ranges),
 * and the pages they dropped. */
static unsigned drop_calls;
static size_t drop_pages;

static void drop_trace(enum cow__sys_kind kind, int fd, const struct iovec *iov,
		       int cnt, off_t advice)
{
	(void)fd;
	if (kind != COW__SYS_MADVISE || advice != MADV_DONTNEED)
		return;
	__atomic_add_fetch(&drop_calls, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < cnt; i++)
		__atomic_add_fetch(&drop_pages, iov[i].iov_len / PG,
				   __ATOMIC_SEQ_CST);
}

/*
 * A stream of commits of a different page each (asynchronous, then
 * synchronous), threaded and COW_NOTHREAD: the copies of the committed
 * pages are dropped in batches, not one MADV_DONTNEED (a TLB flush) per
 * commit: at most a call per 16 commits, plus a few. The copies waiting
 * for their apply stay bounded, every copy is dropped by the commit after
 * cow_sync, and the content is the last commit's, in the arena and after
 * a reopen.
 */
#define STREAM_PAGES 512
#define STREAM_COMMITS 256

static void commit_stream(unsigned flags, unsigned cflags)
{
	struct cow_options o = {.flags = flags};
	size_t size = STREAM_PAGES * PG;
	unsigned char *ref = malloc(size);
	struct th_arena t;
	struct cow_stats st;
	unsigned calls;

	assert_non_null(ref);
	assert_int_equal(th_open(&t, TH_EXT4, size, &o), 0);
	th_base_ref(TH_EXT4, ref, size);
	drop_calls = 0;
	drop_pages = 0;
	cow__sys_set_trace(drop_trace);
	for (size_t i = 0; i < STREAM_COMMITS; i++) {
		size_t page = i * 7 % STREAM_PAGES;

		stamp(t.a, ref, &page, 1, (unsigned)i + 1);
		assert_int_equal(cow_commit(t.a, cflags), 0);
		/* synchronous: every page but the last is logged, and
		 * those not yet in place wait for a batch */
		assert_int_equal(cow_stats(t.a, &st), 0);
		assert_true(cflags || st.commit_pending_bytes <= 64 * PG);
	}
	assert_true(th_equal(&t, ref, size));
	/* then every copy goes: the commit after a sync drops them all */
	assert_int_equal(cow_sync(t.a), 0);
	assert_int_equal(cow_commit(t.a, cflags), 0);
	cow__sys_set_trace(NULL);
	calls = __atomic_load_n(&drop_calls, __ATOMIC_SEQ_CST);
	assert_true(calls <= STREAM_COMMITS / 16 + 4);
	assert_true(__atomic_load_n(&drop_pages, __ATOMIC_SEQ_CST) >=
		    STREAM_COMMITS);
	assert_true(th_equal(&t, ref, size));
	assert_int_equal(cow_close(t.a), 0);
	assert_int_equal(cow_open(&t.a, t.path, NULL), 0);
	assert_true(th_equal(&t, ref, size));
	th_close(&t);
	free(ref);
}

static void test_commit_stream_drops(void **state)
{
	(void)state;
	commit_stream(0, COW_COMMIT_ASYNC);
	commit_stream(COW_NOTHREAD, COW_COMMIT_ASYNC);
	commit_stream(0, 0);
	commit_stream(COW_NOTHREAD, 0);
}

/*
 * A submission to the ring that fails while a caller waits for its
 * operations (cow_close queues the base's final sync after cow_sync, and
 * waits): their ends count as completions, so the waiter wakes and the
 * close returns, with the log kept for the next open. Run in a child
 * with an alarm: a waiter never woken hangs.
 */
static void test_submit_fails_while_waiting(void **state)
{
	(void)state;
	for (unsigned flags = 0; flags <= COW_NOTHREAD; flags += COW_NOTHREAD) {
		struct cow_options o = {.flags = flags};
		unsigned char *ref = malloc(SZ), *junk = malloc(SZ);
		struct th_arena t;
		cow_arena *a;
		int status;
		pid_t pid;

		/* ref: the file with generation 1 stamped */
		assert_int_equal(th_open(&t, TH_EXT4, SZ, &o), 0);
		th_base_ref(TH_EXT4, ref, SZ);
		fill_gen(t.a, ref, 1);
		assert_int_equal(cow_close(t.a), 0);
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			alarm(10);
			if (cow_open(&a, t.path, &o))
				_exit(2);
			fill_gen(a, junk, 1);
			if (cow_commit(a, 0) || cow_sync(a))
				_exit(3);
			cow__fault_inject(COW__SYS_URING, 1, EIO, 0);
			cow_close(a);
			_exit(cow__fault_calls(COW__SYS_URING) ? 0 : 4);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
		/* the child's commit, from the log it kept */
		assert_int_equal(cow_open(&t.a, t.path, NULL), 0);
		assert_true(th_equal(&t, ref, SZ));
		th_close(&t);
		unlink_log(t.path);
		free(ref);
		free(junk);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_commit_basic),
	    cmocka_unit_test(test_commit_read_in),
	    cmocka_unit_test(test_commit_nothread),
	    cmocka_unit_test(test_commit_nosync),
	    cmocka_unit_test(test_commit_async),
	    cmocka_unit_test(test_commit_async_nothread),
	    cmocka_unit_test(test_async_drop),
	    cmocka_unit_test(test_async_clean),
	    cmocka_unit_test(test_grow_commit),
	    cmocka_unit_test(test_unaligned_commit),
	    cmocka_unit_test(test_commit_isolate),
	    cmocka_unit_test(test_commit_snapshots),
	    cmocka_unit_test(test_one_scan_after_commit),
	    cmocka_unit_test(test_commit_written_armed),
	    cmocka_unit_test(test_known_private),
	    cmocka_unit_test(test_commit_guard_once),
	    cmocka_unit_test(test_commit_bad_input),
	    cmocka_unit_test(test_fault_sweep_sync),
	    cmocka_unit_test(test_fault_sweep_async),
	    cmocka_unit_test(test_fault_sweep_ckpt),
	    cmocka_unit_test(test_fault_sweep_nosync),
	    cmocka_unit_test(test_nosync_apply_fails),
	    cmocka_unit_test(test_apply_fails_after_durable),
	    cmocka_unit_test(test_async_batches),
	    cmocka_unit_test(test_pending_bound),
	    cmocka_unit_test(test_fault_cqe),
	    cmocka_unit_test(test_partial_submit),
	    cmocka_unit_test(test_fault_cqe_again),
	    cmocka_unit_test(test_commit_frees_page_tables),
	    cmocka_unit_test(test_commit_trim_faults),
	    cmocka_unit_test(test_snap_calls_drop_nothing),
	    cmocka_unit_test(test_long_log_write),
	    cmocka_unit_test(test_fault_sweep_long_log),
	    cmocka_unit_test(test_submit_fails_while_waiting),
	    cmocka_unit_test(test_apply_coalesced),
	    cmocka_unit_test(test_commit_stream_drops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
