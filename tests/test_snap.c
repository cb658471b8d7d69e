// SPDX-License-Identifier: MIT
/*
 * Snapshots and rollback on every backing, with both write-tracking
 * methods: the tree case, shared copies, size across grow, validity across
 * discard, revert and commit, bad input, and a fault-injection sweep over
 * snapshot and rollback.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "guard.h"
#include "internal.h"
#include "track.h"
#include "snap.h"
#include "testhooks.h"
#include "track.h"

#define PG 4096UL
#define NPG 32
#define SZ (NPG * PG)

static int have_uffd;

static struct cow_stats stats(cow_arena *a)
{
	struct cow_stats st;

	assert_int_equal(cow_stats(a, &st), 0);
	return st;
}

static unsigned expect_tracking(int compare)
{
	return compare || !have_uffd ? COW_TRACK_COMPARE : COW_TRACK_UFFD_WP;
}

/* Writes byte v over page pg of the arena and of ref. */
static void put(struct th_arena *t, unsigned char *ref, size_t pg, int v)
{
	memset((char *)cow_base(t->a) + pg * PG, v, PG);
	memset(ref + pg * PG, v, PG);
}

static unsigned char at(struct th_arena *t, size_t pg)
{
	return ((unsigned char *)cow_base(t->a))[pg * PG + 100];
}

/* s0; write A; s1; write B; rollback s0; write C; s2; rollback s1 -> A
 * present, B and C absent; rollback s2 -> C present, A absent. */
static void tree_case(enum th_backing b, int compare, unsigned flags)
{
	struct cow_options o = {.flags = flags};
	unsigned char *base = malloc(SZ);
	cow_snap *s0, *s1, *s2;
	struct th_arena t;
	struct cow_stats st;
	char *p;

	cow__track_force_compare(compare);
	assert_int_equal(th_open(&t, b, SZ, &o), 0);
	p = cow_base(t.a);
	th_base_ref(b, base, SZ);
	assert_int_equal(stats(t.a).tracking, COW_TRACK_NONE);
	p[9 * PG] = 'x'; /* private before any snapshot */
	assert_int_equal(cow_snapshot(t.a, &s0), 0);
	st = stats(t.a);
	assert_int_equal(st.tracking, expect_tracking(compare));
	assert_int_equal(st.snapshots, 1);
	assert_int_equal(st.saved_pages, 1);
	assert_in_range(st.mappings, 1, 3);
	assert_int_equal(st.mappings, th_arena_maps(t.a));
	p[3 * PG] = 'A';
	assert_int_equal(cow_snapshot(t.a, &s1), 0);
	p[4 * PG] = 'B';
	p[9 * PG] = 'b';
	assert_int_equal(cow_rollback(t.a, s0), 0);
	assert_int_equal(p[3 * PG], (char)base[3 * PG]);
	assert_int_equal(p[4 * PG], (char)base[4 * PG]);
	assert_int_equal(p[9 * PG], 'x');
	p[5 * PG] = 'C';
	assert_int_equal(cow_snapshot(t.a, &s2), 0);
	assert_int_equal(cow_rollback(t.a, s1), 0);
	assert_int_equal(p[3 * PG], 'A');
	assert_int_equal(p[4 * PG], (char)base[4 * PG]);
	assert_int_equal(p[5 * PG], (char)base[5 * PG]);
	assert_int_equal(p[9 * PG], 'x');
	assert_int_equal(cow_rollback(t.a, s2), 0);
	assert_int_equal(p[5 * PG], 'C');
	assert_int_equal(p[3 * PG], (char)base[3 * PG]);
	assert_int_equal(p[9 * PG], 'x');
	/* only pages 5 and 9 hold anything but the base */
	assert_int_equal(stats(t.a).dirty_pages, 2);
	assert_int_equal(memcmp(p + 10 * PG, base + 10 * PG, SZ - 10 * PG), 0);
	assert_int_equal(stats(t.a).snapshots, 3);
	cow_snap_release(s1);
	cow_snap_release(s0);
	assert_int_equal(cow_rollback(t.a, s2), 0);
	assert_int_equal(p[5 * PG], 'C');
	cow_snap_release(s2);
	st = stats(t.a);
	assert_int_equal(st.snapshots, 0);
	assert_int_equal(st.saved_pages, 0);
	assert_int_equal(st.saved_bytes, 0);
	assert_int_equal(st.tracking, expect_tracking(compare));
	th_close(&t);
	cow__track_force_compare(0);
	free(base);
}

static void test_tree(void **state)
{
	(void)state;
	for (int c = 0; c < 2; c++)
		for (int b = 0; b < TH_NBACKINGS; b++)
			tree_case(b, c, 0);
	/* a private copy of the file as the base, and a read-only file */
	for (int b = TH_MEMFD; b < TH_NBACKINGS; b++) {
		tree_case(b, 0, COW_ISOLATE);
		tree_case(b, 0, COW_READONLY);
	}
}

/* A changed file and a fork child are refused, as by every call that
 * depends on the base. */
static void test_stale_child(void **state)
{
	struct th_arena t;
	cow_snap *s, *x = NULL;
	int status;
	pid_t pid;

	(void)state;
	assert_int_equal(th_open(&t, TH_TMPFS, SZ, NULL), 0);
	((char *)cow_base(t.a))[0] = 1;
	assert_int_equal(cow_snapshot(t.a, &s), 0);
	pid = fork();
	if (pid == 0) {
		int ok = cow_snapshot(t.a, &x) == -ECHILD &&
			 cow_rollback(t.a, s) == -ECHILD && !x;

		_exit(ok ? 0 : 1);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	{
		int fd = open(t.path, O_WRONLY);

		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, "x", 1, 5 * PG), 1);
		close(fd);
	}
	assert_int_equal(cow_rollback(t.a, s), -ESTALE);
	assert_int_equal(cow_snapshot(t.a, &x), -ESTALE);
	assert_null(x);
	assert_int_equal(stats(t.a).snapshots, 1);
	th_close(&t);
}

/* A snapshot copies only the pages written since the previous one; reads
 * copy nothing; copies are shared and released exactly. */
static void test_shared_copies(void **state)
{
	(void)state;
	for (int c = 0; c < 2; c++) {
		for (int b = 0; b < TH_NBACKINGS; b++) {
			unsigned char *ref = malloc(SZ);
			volatile char *p;
			cow_snap *s[8];
			struct th_arena t;
			struct cow_stats st;
			unsigned sum = 0;

			cow__track_force_compare(c);
			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			p = cow_base(t.a);
			th_base_ref(b, ref, SZ);
			for (int i = 0; i < 10; i++)
				put(&t, ref, (size_t)i * 2, 'a' + i);
			assert_int_equal(cow_snapshot(t.a, &s[0]), 0);
			assert_int_equal(stats(t.a).saved_pages, 10);
			for (size_t i = 0; i < SZ; i += 512)
				sum += (unsigned char)p[i];
			(void)sum;
			for (int i = 1; i < 8; i++) {
				put(&t, ref, 4, 'A' + i); /* one page each */
				assert_int_equal(cow_snapshot(t.a, &s[i]), 0);
				st = stats(t.a);
				assert_int_equal(st.saved_pages,
						 10 + (size_t)i);
			}
			assert_true(st.saved_bytes >= st.saved_pages * PG);
			/* the copies, and their headers (in blocks of 64) */
			assert_true(st.saved_bytes <
				    st.saved_pages * PG + 2048);
			/* releasing a middle snapshot frees its own copy */
			cow_snap_release(s[3]);
			assert_int_equal(stats(t.a).saved_pages, 16);
			assert_int_equal(cow_rollback(t.a, s[2]), 0);
			assert_int_equal(at(&t, 4), 'A' + 2);
			assert_int_equal(at(&t, 0), 'a');
			for (int i = 0; i < 8; i++)
				if (i != 3)
					cow_snap_release(s[i]);
			st = stats(t.a);
			assert_int_equal(st.saved_pages, 0);
			assert_int_equal(st.saved_bytes, 0);
			/* a snapshot after all were released starts over */
			assert_int_equal(cow_snapshot(t.a, &s[0]), 0);
			assert_int_equal(stats(t.a).saved_pages, 10);
			put(&t, ref, 30, 'z');
			assert_int_equal(cow_rollback(t.a, s[0]), 0);
			assert_int_equal(at(&t, 30),
					 th_base_byte(b, 30 * PG + 100));
			assert_int_equal(at(&t, 18), 'a' + 9);
			th_close(&t);
			cow__track_force_compare(0);
			free(ref);
		}
	}
}

/* Rollback restores the size; the reservation and mapping count stay. */
static void test_grow(void **state)
{
	struct cow_options o = {.reserve = 4 * SZ};

	(void)state;
	for (int c = 0; c < 2; c++) {
		for (int b = 0; b < TH_NBACKINGS; b++) {
			unsigned char *base = calloc(4, SZ);
			cow_snap *small, *big;
			struct th_arena t;
			char *p;

			cow__track_force_compare(c);
			assert_int_equal(th_open(&t, b, SZ, &o), 0);
			th_base_ref(b, base, SZ);
			p = cow_base(t.a);
			p[PG] = 's';
			assert_int_equal(cow_snapshot(t.a, &small), 0);
			assert_in_range(th_arena_maps(t.a), 1, 3);
			assert_int_equal(cow_grow(t.a, 3 * SZ), 0);
			assert_in_range(th_arena_maps(t.a), 1, 3);
			p[2 * SZ + 5] = 'g';
			p[PG] = 'S';
			assert_int_equal(cow_snapshot(t.a, &big), 0);
			assert_int_equal(cow_rollback(t.a, small), 0);
			assert_int_equal(cow_size(t.a), SZ);
			assert_int_equal(p[PG], 's');
			assert_int_equal(stats(t.a).dirty_pages, 1);
			assert_in_range(th_arena_maps(t.a), 1, 3);
			/* growing again shows the base, not the old pages */
			assert_int_equal(cow_grow(t.a, 2 * SZ), 0);
			assert_int_equal(memcmp(p + SZ, base + SZ, SZ), 0);
			p[SZ + 7] = 'n';
			/* back to the bigger snapshot, and past the mapping */
			assert_int_equal(cow_rollback(t.a, big), 0);
			assert_int_equal(cow_size(t.a), 3 * SZ);
			assert_int_equal(p[2 * SZ + 5], 'g');
			assert_int_equal(p[SZ + 7], 0);
			assert_int_equal(p[PG], 'S');
			assert_int_equal(cow_grow(t.a, 4 * SZ), 0);
			assert_in_range(th_arena_maps(t.a), 1, 3);
			p[4 * SZ - 1] = 'e';
			assert_int_equal(cow_rollback(t.a, small), 0);
			assert_int_equal(cow_grow(t.a, 4 * SZ), 0);
			assert_int_equal(p[4 * SZ - 1], 0);
			assert_int_equal(stats(t.a).dirty_pages, 1);
			assert_in_range(th_arena_maps(t.a), 1, 3);
			assert_int_equal(stats(t.a).mappings,
					 th_arena_maps(t.a));
			th_close(&t);
			cow__track_force_compare(0);
			free(base);
		}
	}
}

/* Snapshots stay valid across discard and revert. */
static void test_discard_revert(void **state)
{
	(void)state;
	for (int c = 0; c < 2; c++) {
		for (int b = 0; b < TH_NBACKINGS; b++) {
			unsigned char *ref = malloc(SZ), *img = malloc(SZ);
			struct th_arena t;
			cow_snap *s;
			char *p;

			cow__track_force_compare(c);
			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			p = cow_base(t.a);
			th_base_ref(b, ref, SZ);
			put(&t, ref, 1, 'a');
			put(&t, ref, 2, 'b');
			put(&t, ref, 3, 'c');
			memcpy(img, ref, SZ);
			assert_int_equal(cow_snapshot(t.a, &s), 0);
			assert_int_equal(cow_revert(t.a, p + 2 * PG, PG), 0);
			put(&t, ref, 5, 'e');
			assert_int_equal(cow_rollback(t.a, s), 0);
			assert_true(th_equal(&t, img, SZ));
			assert_int_equal(cow_discard(t.a), 0);
			assert_int_equal(stats(t.a).dirty_pages, 0);
			assert_int_equal(cow_rollback(t.a, s), 0);
			assert_true(th_equal(&t, img, SZ));
			assert_int_equal(stats(t.a).dirty_pages, 3);
			/* revert, then write the same page again */
			assert_int_equal(cow_revert(t.a, p + PG, 3 * PG), 0);
			p[PG] = 'a';
			assert_int_equal(cow_rollback(t.a, s), 0);
			assert_true(th_equal(&t, img, SZ));
			cow_snap_release(s);
			th_close(&t);
			cow__track_force_compare(0);
			free(ref);
			free(img);
		}
	}
}

/*
 * A revert whose record of the reverted pages runs out of memory still
 * succeeds: the arena then records nothing of its current content, and
 * the next snapshot and rollback take every private page as written.
 */
static void test_revert_nomem(void **state)
{
	(void)state;
	for (int c = 0; c < 2; c++) {
		for (int b = 0; b < TH_NBACKINGS; b++) {
			unsigned long n;
			int fired = 1;

			cow__track_force_compare(c);
			for (n = 1; fired; n++) {
				unsigned char *ref = malloc(SZ),
					      *base = malloc(SZ),
					      *img = malloc(SZ),
					      *img2 = malloc(SZ);
				struct th_arena t;
				unsigned long calls;
				cow_snap *s, *s2;
				char *p;
				int r;

				assert_int_equal(th_open(&t, b, SZ, NULL), 0);
				p = cow_base(t.a);
				th_base_ref(b, ref, SZ);
				memcpy(base, ref, SZ);
				put(&t, ref, 1, 'a');
				put(&t, ref, 2, 'b');
				put(&t, ref, 3, 'c');
				put(&t, ref, 5, 'e');
				memcpy(img, ref, SZ);
				assert_int_equal(cow_snapshot(t.a, &s), 0);
				put(&t, ref, 2, 'x');
				put(&t, ref, 4, 'd');
				calls = cow__fault_calls(COW__SYS_MALLOC);
				cow__fault_inject(COW__SYS_MALLOC, n, ENOMEM, 0);
				r = cow_revert(t.a, p + PG, 3 * PG);
				fired = cow__fault_calls(COW__SYS_MALLOC) >=
					calls + n;
				cow__fault_reset();
				if (r < 0) {
					assert_true(fired);
					assert_true(th_equal(&t, ref, SZ));
					r = cow_revert(t.a, p + PG, 3 * PG);
				}
				assert_int_equal(r, 0);
				memcpy(ref + PG, base + PG, 3 * PG);
				assert_true(th_equal(&t, ref, SZ));
				put(&t, ref, 1, 'y');
				memcpy(img2, ref, SZ);
				assert_int_equal(cow_snapshot(t.a, &s2), 0);
				put(&t, ref, 3, 'z');
				assert_int_equal(cow_rollback(t.a, s), 0);
				assert_true(th_equal(&t, img, SZ));
				assert_int_equal(cow_rollback(t.a, s2), 0);
				assert_true(th_equal(&t, img2, SZ));
				assert_int_equal(cow_rollback(t.a, s), 0);
				assert_true(th_equal(&t, img, SZ));
				cow_snap_release(s);
				cow_snap_release(s2);
				th_close(&t);
				free(ref);
				free(base);
				free(img);
				free(img2);
			}
			assert_true(n > 2);
			cow__track_force_compare(0);
		}
	}
}

/* The runs cow_dirty reports, as a string of page numbers: "5 6 ". */
static const char *dirty_pages_of(cow_arena *a)
{
	static char out[256];
	struct cow_range r[NPG];
	ssize_t n = cow_dirty(a, r, NPG);
	size_t len = 0;

	assert_in_range(n, 0, NPG);
	out[0] = 0;
	for (ssize_t i = 0; i < n; i++)
		for (size_t pg = r[i].offset / PG;
		     pg < (r[i].offset + r[i].length) / PG; pg++)
			len += (size_t)snprintf(out + len, sizeof(out) - len,
						"%zu ", pg);
	return out;
}

/* Pages of [0, NPG) present in the page tables (pagemap bit 63). */
static size_t present_pages(const void *base)
{
	uint64_t e[NPG];
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, e, sizeof(e),
			       (off_t)((uintptr_t)base / PG * sizeof(e[0]))),
			 (ssize_t)sizeof(e));
	close(fd);
	for (size_t i = 0; i < NPG; i++)
		n += (e[i] >> 63) & 1;
	return n;
}

/*
 * A rollback touches only what was written: the pages read since the
 * snapshot (faulted in after it) stay mapped, with both trackings, while
 * the written ones go back to the snapshot's content. Then the same with
 * the pages read before the snapshot, and with nothing written at all.
 */
static void test_rollback_keeps_read(void **state)
{
	(void)state;
	for (int c = 0; c < 2; c++) {
		for (int b = 0; b < TH_NBACKINGS; b++) {
			unsigned char *ref = malloc(SZ);
			struct th_arena t;
			volatile char *p;
			cow_snap *s;

			cow__track_force_compare(c);
			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			p = cow_base(t.a);
			th_base_ref(b, ref, SZ);
			put(&t, ref, 2, 'a');
			assert_int_equal(cow_snapshot(t.a, &s), 0);
			for (size_t i = 0; i < NPG; i++)
				(void)p[i * PG];
			assert_int_equal(present_pages(cow_base(t.a)), NPG);
			p[2 * PG] = 'x';      /* written, private before */
			p[9 * PG + 1] = 'y';  /* written, clean before */
			p[20 * PG + 2] = 'z'; /* far apart */
			assert_int_equal(cow_rollback(t.a, s), 0);
			/* all but pages 9 and 20, dropped: their base is
			 * read in again on the next access (a compare) */
			assert_int_equal(present_pages(cow_base(t.a)),
					 NPG - 2);
			assert_true(th_equal(&t, ref, SZ));
			for (size_t i = 0; i < NPG; i++)
				(void)p[i * PG];
			/* read before the snapshot, nothing written */
			assert_int_equal(cow_rollback(t.a, s), 0);
			assert_int_equal(present_pages(cow_base(t.a)), NPG);
			assert_true(th_equal(&t, ref, SZ));
			cow_snap_release(s);
			th_close(&t);
			cow__track_force_compare(0);
			free(ref);
		}
	}
}

/*
 * Pages only read are base pages: never saved, never dirty, whether they
 * were read before or after a snapshot, and dropping runs around them
 * (rollback, discard, revert) leaves them clean.
 */
static void test_read_pages(void **state)
{
	(void)state;
	for (int c = 0; c < 2; c++) {
		for (int b = 0; b < TH_NBACKINGS; b++) {
			unsigned char *ref = malloc(SZ);
			struct th_arena t;
			cow_snap *s0, *s1;
			volatile char *p;

			cow__track_force_compare(c);
			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			p = cow_base(t.a);
			th_base_ref(b, ref, SZ);
			for (size_t i = 0; i < NPG; i++)
				(void)p[i * PG];
			assert_int_equal(cow_snapshot(t.a, &s0), 0);
			assert_int_equal(stats(t.a).saved_pages, 0);
			p[PG] = 'a';
			p[10 * PG] = 'b';
			for (size_t i = 0; i < NPG; i++)
				(void)p[i * PG];
			assert_string_equal(dirty_pages_of(t.a), "1 10 ");
			assert_int_equal(cow_rollback(t.a, s0), 0);
			assert_true(th_equal(&t, ref, SZ));
			assert_string_equal(dirty_pages_of(t.a), "");
			p[5 * PG] = 'c';
			ref[5 * PG] = 'c';
			assert_int_equal(cow_snapshot(t.a, &s1), 0);
			assert_int_equal(stats(t.a).saved_pages, 1);
			for (size_t i = 0; i < NPG; i++)
				(void)p[i * PG];
			p[3 * PG] = 'd';
			p[20 * PG] = 'e';
			assert_int_equal(cow_rollback(t.a, s1), 0);
			assert_true(th_equal(&t, ref, SZ));
			assert_string_equal(dirty_pages_of(t.a), "5 ");
			assert_int_equal(cow_revert(t.a, (void *)p, SZ / 2), 0);
			assert_string_equal(dirty_pages_of(t.a), "");
			p[30 * PG] = 'f';
			assert_int_equal(cow_discard(t.a), 0);
			assert_string_equal(dirty_pages_of(t.a), "");
			assert_int_equal(cow_rollback(t.a, s1), 0);
			assert_true(th_equal(&t, ref, SZ));
			assert_string_equal(dirty_pages_of(t.a), "5 ");
			cow_snap_release(s1);
			cow_snap_release(s0);
			th_close(&t);
			cow__track_force_compare(0);
			free(ref);
		}
	}
}

/*
 * Releasing the last snapshot frees every copy, but the pages written
 * before it stay private: the next snapshot must save them again, even
 * though they were not written since (nor reverted in between).
 */
static void test_release_last(void **state)
{
	(void)state;
	for (int c = 0; c < 2; c++) {
		for (int b = 0; b < TH_NBACKINGS; b++) {
			unsigned char *ref = malloc(SZ);
			struct th_arena t;
			cow_snap *s;

			cow__track_force_compare(c);
			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			th_base_ref(b, ref, SZ);
			put(&t, ref, 1, 'a');
			put(&t, ref, 2, 'b');
			put(&t, ref, 7, 'c');
			assert_int_equal(cow_snapshot(t.a, &s), 0);
			cow_snap_release(s);
			assert_int_equal(stats(t.a).saved_pages, 0);
			assert_int_equal(cow_snapshot(t.a, &s), 0);
			assert_int_equal(stats(t.a).saved_pages, 3);
			((char *)cow_base(t.a))[PG] = 'x';
			((char *)cow_base(t.a))[3 * PG] = 'y';
			assert_int_equal(cow_rollback(t.a, s), 0);
			assert_true(th_equal(&t, ref, SZ));
			cow_snap_release(s);
			/* a revert in between: that page is the base again */
			assert_int_equal(cow_revert(t.a,
						    (char *)cow_base(t.a) + 2 * PG,
						    PG),
					 0);
			for (size_t i = 0; i < PG; i++)
				ref[2 * PG + i] = th_base_byte(b, 2 * PG + i);
			assert_int_equal(cow_snapshot(t.a, &s), 0);
			assert_int_equal(stats(t.a).saved_pages, 2);
			memset((char *)cow_base(t.a) + 7 * PG, 'd', PG);
			((char *)cow_base(t.a))[PG + 5] = 'z';
			assert_int_equal(cow_rollback(t.a, s), 0);
			assert_true(th_equal(&t, ref, SZ));
			cow_snap_release(s);
			/* a commit now: the recorded pages (armed) and one
			 * written since are the dirty ones, and become the
			 * base */
			put(&t, ref, 11, 'e');
			assert_string_equal(dirty_pages_of(t.a), "1 7 11 ");
			assert_int_equal(cow_commit(t.a, 0), 0);
			assert_string_equal(dirty_pages_of(t.a), "");
			assert_true(th_equal(&t, ref, SZ));
			put(&t, ref, 12, 'f');
			assert_int_equal(cow_snapshot(t.a, &s), 0);
			assert_int_equal(stats(t.a).saved_pages, 1);
			assert_int_equal(cow_discard(t.a), 0);
			assert_int_equal(cow_rollback(t.a, s), 0);
			assert_true(th_equal(&t, ref, SZ));
			cow_snap_release(s);
			th_close(&t);
			cow__track_force_compare(0);
			free(ref);
		}
	}
}

/* The commit hooks' prepare, given the dirty pages as cow_commit finds
 * them. */
static int prepare(cow_arena *a, void **tok)
{
	struct cow__pageset d = COW__PAGESET_INIT;
	int r;

	r = cow__track_dirty(a, 0, cow_size(a) / PG, NULL, cow__pageset_add_run,
			     &d);
	if (r == 0)
		r = cow__snap_commit_prepare(a, &d, tok);
	cow__pageset_free(&d);
	return r;
}

/*
 * A commit, simulated with the hooks the commit path calls: the dirty
 * pages are written into the base (the file, or the memfd of an anonymous
 * arena), then dropped. Older snapshots must still give the old base.
 */
static void commit_by_hand(cow_arena *a)
{
	struct cow_range r[64];
	ssize_t n = cow_dirty(a, r, 64);
	void *tok;

	assert_in_range(n, 0, 64);
	assert_int_equal(prepare(a, &tok), 0);
	for (ssize_t i = 0; i < n; i++) {
		char *p = (char *)cow_base(a) + r[i].offset;

		assert_int_equal(pwrite(a->fd, p, r[i].length,
					(off_t)r[i].offset),
				 (ssize_t)r[i].length);
		/* dropped as a commit drops: through the tracking, which
		 * unarms first */
		assert_int_equal(cow__track_drop(a, r[i].offset / PG,
						 r[i].length / PG, 0),
				 0);
	}
	cow__snap_commit_finish(a, tok, 1);
	/* a commit records the file it wrote as the arena's own change */
	if (a->file_fd >= 0)
		assert_int_equal(cow__guard_refresh(a), 0);
}

static void test_commit_hooks(void **state)
{
	(void)state;
	for (int c = 0; c < 2; c++) {
		for (int b = 0; b < TH_NBACKINGS; b++) {
			unsigned char *ref = malloc(SZ), *img0 = malloc(SZ);
			unsigned char *img1 = malloc(SZ);
			cow_snap *s0, *s1, *s2;
			struct th_arena t;
			struct cow_stats st;
			void *tok;

			cow__track_force_compare(c);
			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			th_base_ref(b, ref, SZ);
			put(&t, ref, 1, 'a');
			memcpy(img0, ref, SZ);
			assert_int_equal(cow_snapshot(t.a, &s0), 0);
			put(&t, ref, 1, 'A');
			put(&t, ref, 2, 'B');
			put(&t, ref, 7, 'C');
			/* a failed commit changes nothing */
			st = stats(t.a);
			assert_int_equal(prepare(t.a, &tok), 0);
			assert_true(stats(t.a).saved_pages > st.saved_pages);
			cow__snap_commit_finish(t.a, tok, 0);
			assert_int_equal(stats(t.a).saved_pages,
					 st.saved_pages);
			assert_int_equal(stats(t.a).saved_bytes,
					 st.saved_bytes);
			/* a prepare that fails changes nothing either */
			cow__fault_inject(COW__SYS_PREAD, 1, EIO, 0);
			assert_int_equal(prepare(t.a, &tok), -EIO);
			cow__fault_reset();
			assert_int_equal(stats(t.a).saved_pages,
					 st.saved_pages);
			assert_int_equal(stats(t.a).saved_bytes,
					 st.saved_bytes);
			commit_by_hand(t.a);
			assert_true(th_equal(&t, ref, SZ));
			assert_int_equal(stats(t.a).dirty_pages, 0);
			memcpy(img1, ref, SZ);
			assert_int_equal(cow_snapshot(t.a, &s1), 0);
			put(&t, ref, 2, 'x');
			put(&t, ref, 9, 'y');
			assert_int_equal(cow_snapshot(t.a, &s2), 0);
			/* page 2 and 7 came from the base in s0 */
			assert_int_equal(cow_rollback(t.a, s0), 0);
			assert_true(th_equal(&t, img0, SZ));
			assert_int_equal(cow_rollback(t.a, s1), 0);
			assert_true(th_equal(&t, img1, SZ));
			assert_int_equal(stats(t.a).dirty_pages, 0);
			/* a second commit while s2 has page 2 private */
			put(&t, ref, 3, 'z');
			commit_by_hand(t.a);
			assert_int_equal(cow_rollback(t.a, s2), 0);
			assert_int_equal(at(&t, 2), 'x');
			assert_int_equal(at(&t, 3), img1[3 * PG + 100]);
			assert_int_equal(cow_rollback(t.a, s0), 0);
			assert_true(th_equal(&t, img0, SZ));
			cow_snap_release(s0);
			cow_snap_release(s1);
			cow_snap_release(s2);
			assert_int_equal(stats(t.a).saved_pages, 0);
			th_close(&t);
			cow__track_force_compare(0);
			free(ref);
			free(img0);
			free(img1);
		}
	}
}

static void test_bad_input(void **state)
{
	struct th_arena t, u;
	cow_snap *s, *x = (cow_snap *)1;

	(void)state;
	assert_int_equal(th_open(&t, TH_ANON, SZ, NULL), 0);
	assert_int_equal(th_open(&u, TH_ANON, SZ, NULL), 0);
	assert_int_equal(cow_snapshot(NULL, &s), -EINVAL);
	assert_int_equal(cow_snapshot(t.a, NULL), -EINVAL);
	assert_int_equal(cow_rollback(NULL, NULL), -EINVAL);
	assert_int_equal(cow_rollback(t.a, NULL), -EINVAL);
	assert_int_equal(cow_snapshot(t.a, &s), 0);
	assert_int_equal(cow_rollback(NULL, s), -EINVAL);
	((char *)cow_base(u.a))[0] = 1;
	assert_int_equal(cow_rollback(u.a, s), -EINVAL);
	assert_int_equal(((char *)cow_base(u.a))[0], 1);
	assert_int_equal(cow_snapshot(u.a, &x), 0);
	assert_int_equal(cow_rollback(t.a, x), -EINVAL);
	cow_snap_release(NULL);
	assert_int_equal(stats(t.a).snapshots, 1);
	/* cow_close releases live snapshots (ASan checks the leak) */
	th_close(&t);
	th_close(&u);
}

/* Without userfaultfd (disabled, or too old) the fallback is used. */
static void test_fallback_selected(void **state)
{
	size_t fds = th_count_fds();
	struct th_arena t;
	cow_snap *s;

	(void)state;
	for (int e = 0; e < 3; e++) {
		static const int err[] = {ENOSYS, EPERM, EINVAL};

		cow__fault_inject(COW__SYS_UFFD, 1, err[e], 1);
		assert_int_equal(th_open(&t, TH_MEMFD, SZ, NULL), 0);
		((char *)cow_base(t.a))[PG] = 1;
		assert_int_equal(cow_snapshot(t.a, &s), 0);
		assert_int_equal(stats(t.a).tracking, COW_TRACK_COMPARE);
		((char *)cow_base(t.a))[PG] = 2;
		assert_int_equal(cow_rollback(t.a, s), 0);
		assert_int_equal(((char *)cow_base(t.a))[PG], 1);
		th_close(&t);
		cow__fault_reset();
	}
	assert_int_equal(th_count_fds(), fds);
}

/* The state a failed call must leave as it was. */
struct shot {
	unsigned char *img;
	size_t size, maps, fds, nruns;
	struct cow_range runs[NPG * 2];
	struct cow_stats st;
};

static void take(struct th_arena *t, struct shot *s)
{
	ssize_t n;

	s->size = cow_size(t->a);
	s->img = malloc(s->size);
	memcpy(s->img, cow_base(t->a), s->size);
	/* first: the first dirty scan sets up the write tracking (one
	 * descriptor more), which is then part of the state */
	n = cow_dirty(t->a, s->runs, NPG * 2);
	s->maps = th_arena_maps(t->a);
	s->fds = th_count_fds();
	assert_in_range(n, 0, NPG * 2);
	s->nruns = (size_t)n;
	s->st = stats(t->a);
}

static void same(struct th_arena *t, struct shot *s)
{
	struct shot now;

	take(t, &now);
	assert_int_equal(now.size, s->size);
	assert_int_equal(memcmp(now.img, s->img, s->size), 0);
	assert_int_equal(now.maps, s->maps);
	assert_int_equal(now.fds, s->fds);
	assert_int_equal(now.nruns, s->nruns);
	assert_int_equal(memcmp(now.runs, s->runs,
				s->nruns * sizeof(s->runs[0])),
			 0);
	assert_int_equal(now.st.snapshots, s->st.snapshots);
	assert_int_equal(now.st.saved_pages, s->st.saved_pages);
	assert_int_equal(now.st.saved_bytes, s->st.saved_bytes);
	assert_int_equal(now.st.tracking, s->st.tracking);
	assert_int_equal(now.st.size, s->st.size);
	free(now.img);
}

enum sweep_op { SW_FIRST_SNAP, SW_SNAP, SW_ROLLBACK };

/* Sets up the arena for the operation: snapshot s0 at SZ, pages written,
 * grown to 2 * SZ with more writes, snapshot s1. */
static void sweep_setup(struct th_arena *t, enum th_backing b,
			enum sweep_op op, cow_snap **s0, unsigned char *img0)
{
	struct cow_options o = {.reserve = 4 * SZ};
	char *p;

	assert_int_equal(th_open(t, b, SZ, &o), 0);
	p = cow_base(t->a);
	for (size_t i = 0; i < NPG; i += 3)
		p[i * PG] = (char)i;
	*s0 = NULL;
	if (op == SW_FIRST_SNAP)
		return;
	assert_int_equal(cow_snapshot(t->a, s0), 0);
	memcpy(img0, p, SZ);
	for (size_t i = 1; i < NPG; i += 4)
		p[i * PG] = 'w';
	assert_int_equal(cow_grow(t->a, 2 * SZ), 0);
	for (size_t i = NPG; i < 2 * NPG; i += 5)
		p[i * PG] = 'g';
	assert_int_equal(cow_revert(t->a, p + 6 * PG, 2 * PG), 0);
}

static void sweep(enum th_backing b, int compare, enum sweep_op op)
{
	unsigned char *img0 = malloc(SZ);
	unsigned long n;

	cow__track_force_compare(compare);
	for (n = 1;; n++) {
		struct th_arena t;
		struct shot before;
		unsigned long calls;
		cow_snap *s0, *s = NULL;
		int r, fired;

		sweep_setup(&t, b, op, &s0, img0);
		take(&t, &before);
		calls = cow__fault_calls(COW__SYS_ANY);
		cow__fault_inject(COW__SYS_ANY, n, EIO, 0);
		r = op == SW_ROLLBACK ? cow_rollback(t.a, s0)
				      : cow_snapshot(t.a, &s);
		fired = cow__fault_calls(COW__SYS_ANY) >= calls + n;
		cow__fault_reset();
		if (r < 0) {
			assert_true(fired);
			assert_true(r == -EIO || r == -ENOMEM);
			same(&t, &before);
			r = op == SW_ROLLBACK ? cow_rollback(t.a, s0)
					      : cow_snapshot(t.a, &s);
			assert_int_equal(r, 0);
		}
		/* the call (or its retry) did its whole job */
		if (op == SW_ROLLBACK) {
			assert_int_equal(cow_size(t.a), SZ);
			assert_true(th_equal(&t, img0, SZ));
		} else {
			char *p = cow_base(t.a);

			assert_int_equal(stats(t.a).snapshots, 1 + !!s0);
			memset(p, 'q', cow_size(t.a));
			assert_int_equal(cow_rollback(t.a, s), 0);
			assert_true(th_equal(&t, before.img, before.size));
		}
		assert_int_equal(stats(t.a).tracking,
				 expect_tracking(compare));
		assert_in_range(th_arena_maps(t.a), 1, 3);
		th_close(&t);
		free(before.img);
		if (!fired)
			break;
	}
	assert_true(n > 3);
	cow__track_force_compare(0);
	free(img0);
}

static void test_fault_sweep(void **state)
{
	(void)state;
	for (int c = 0; c < 2; c++)
		for (int b = 0; b < TH_NBACKINGS; b++)
			for (int op = 0; op < 3; op++)
				sweep(b, c, op);
}

/*
 * cow_grow with snapshots live fails cleanly at each of its calls; when
 * only the tracking registration of the new pages fails, the grow succeeds
 * and the arena switches to the compare tracking, snapshots intact.
 */
static void test_grow_faults(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		unsigned long n;
		int fired = 1, switched = 0;

		for (n = 1; fired; n++) {
			struct cow_options o = {.reserve = 4 * SZ};
			unsigned char *img = malloc(SZ);
			struct th_arena t;
			struct shot before;
			unsigned long calls;
			cow_snap *s;
			char *p;
			int r;

			assert_int_equal(th_open(&t, b, SZ, &o), 0);
			p = cow_base(t.a);
			p[3 * PG] = 'a';
			assert_int_equal(cow_snapshot(t.a, &s), 0);
			memcpy(img, p, SZ);
			p[4 * PG] = 'b';
			take(&t, &before);
			calls = cow__fault_calls(COW__SYS_ANY);
			cow__fault_inject(COW__SYS_ANY, n, EIO, 0);
			r = cow_grow(t.a, 2 * SZ);
			fired = cow__fault_calls(COW__SYS_ANY) >= calls + n;
			cow__fault_reset();
			if (r < 0) {
				same(&t, &before);
				assert_int_equal(cow_grow(t.a, 2 * SZ), 0);
			}
			assert_int_equal(cow_size(t.a), 2 * SZ);
			assert_in_range(th_arena_maps(t.a), 1, 3);
			switched += stats(t.a).tracking == COW_TRACK_COMPARE;
			p[SZ + PG] = 'c';
			assert_int_equal(stats(t.a).dirty_pages, 3);
			assert_int_equal(cow_rollback(t.a, s), 0);
			assert_true(th_equal(&t, img, SZ));
			assert_int_equal(stats(t.a).dirty_pages, 1);
			assert_int_equal(cow_grow(t.a, 3 * SZ), 0);
			p[2 * SZ] = 'd';
			assert_int_equal(cow_rollback(t.a, s), 0);
			assert_true(th_equal(&t, img, SZ));
			assert_in_range(th_arena_maps(t.a), 1, 3);
			th_close(&t);
			free(before.img);
			free(img);
		}
		assert_true(n > 3);
		assert_true(switched || !have_uffd);
	}
}

/* Page-table memory of the process, in KiB (VmPTE). */
static long vm_pte_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPTE: %ld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

/*
 * Cost follows work: tracking a 64 GiB arena must not allocate page
 * tables for all of it (arming every entry would take 128 MiB of them).
 */
static void test_huge_arena(void **state)
{
	const size_t size = (size_t)64 << 30, stride = (size_t)4093 << 20;

	(void)state;
	for (int b = 0; b < 2; b++) {
		struct th_arena t;
		cow_snap *s0, *s1;
		long before;
		char *p;

		/* zeros, or a sparse 64 GiB tmpfs file */
		memset(&t, 0, sizeof(t));
		if (b) {
			int fd = th_make_file(TH_TMPFS, PG, t.path,
					      sizeof(t.path));

			assert_true(fd >= 0);
			assert_int_equal(ftruncate(fd, (off_t)size), 0);
			assert_int_equal(cow_open_fd(&t.a, fd, NULL), 0);
			close(fd);
		} else {
			assert_int_equal(cow_open_anon(&t.a, size, NULL), 0);
		}
		p = cow_base(t.a);
		for (size_t off = 0; off < size; off += stride)
			p[off] = 1;
		before = vm_pte_kib();
		assert_int_equal(cow_snapshot(t.a, &s0), 0);
		for (size_t off = 0; off < size; off += stride)
			p[off + PG] = 2;
		assert_int_equal(cow_snapshot(t.a, &s1), 0);
		assert_int_equal(cow_rollback(t.a, s0), 0);
		assert_int_equal(p[PG], 0);
		assert_int_equal(cow_rollback(t.a, s1), 0);
		assert_int_equal(p[PG], 2);
		assert_int_equal(cow_discard(t.a), 0);
		assert_int_equal(cow_rollback(t.a, s0), 0);
		assert_true(vm_pte_kib() - before < 1024);
		assert_int_equal(stats(t.a).dirty_pages,
				 size / stride + !!(size % stride));
		th_close(&t);
	}
}

static int detect_uffd(void **state)
{
	struct th_arena t;
	cow_snap *s;

	(void)state;
	if (th_open(&t, TH_ANON, PG, NULL) || cow_snapshot(t.a, &s))
		return -1;
	have_uffd = stats(t.a).tracking == COW_TRACK_UFFD_WP;
	if (!have_uffd)
		fprintf(stderr, "# userfaultfd write-protect unavailable: "
				"only the fallback tracking is tested\n");
	th_close(&t);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tree),
	    cmocka_unit_test(test_shared_copies),
	    cmocka_unit_test(test_grow),
	    cmocka_unit_test(test_discard_revert),
	    cmocka_unit_test(test_revert_nomem),
	    cmocka_unit_test(test_read_pages),
	    cmocka_unit_test(test_rollback_keeps_read),
	    cmocka_unit_test(test_release_last),
	    cmocka_unit_test(test_commit_hooks),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_fallback_selected),
	    cmocka_unit_test(test_fault_sweep),
	    cmocka_unit_test(test_huge_arena),
	    cmocka_unit_test(test_grow_faults),
	    cmocka_unit_test(test_stale_child),
	};

	return cmocka_run_group_tests(tests, detect_uffd, NULL);
}
