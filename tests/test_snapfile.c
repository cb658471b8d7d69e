// SPDX-License-Identifier: MIT
/*
 * Snapshot files: cow_snap_save and cow_snap_load, across processes and
 * backings; COW_SNAP_FULL into a fresh anonymous arena; every foreign
 * base; bit flips and truncations; a kill during a save; fault sweeps over
 * save and load; cow_snap_diff's edges (tests/test_model.c checks it
 * against the images).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "../src/sys.h"

#define PG 4096UL
#define NPG 32
#define SZ (NPG * PG)

static void snap_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", th_dir(TH_EXT4), name);
}

/* Writes a pattern into some pages: page p gets bytes from seed. */
static void scribble(cow_arena *a, const size_t *pages, size_t n, int seed)
{
	unsigned char *b = cow_base(a);

	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < PG; k += 61)
			b[pages[i] * PG + k] =
			    (unsigned char)(seed * 31 + pages[i] * 7 + k);
}

static const size_t some[] = {0, 1, 5, 6, 7, 20, NPG - 1};
#define NSOME (sizeof(some) / sizeof(some[0]))

static size_t saved_pages(cow_arena *a)
{
	struct cow_stats st;

	assert_int_equal(cow_stats(a, &st), 0);
	return st.saved_pages;
}

static size_t snapshots(cow_arena *a)
{
	struct cow_stats st;

	assert_int_equal(cow_stats(a, &st), 0);
	return st.snapshots;
}

/* Leftover temporary files "<name>.tmp-*" in the directory of path. */
static int temps_left(const char *path)
{
	char dir[256], pre[256];
	const char *slash = strrchr(path, '/');
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	snprintf(pre, sizeof(pre), "%s.tmp-", slash + 1);
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, pre, strlen(pre));
	closedir(d);
	return n;
}

static off_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* --- across processes, every backing -------------------------------- */

struct child_load {
	enum th_backing b;
	const char *arena_path; /* file backings */
	int memfd;		/* TH_MEMFD */
	const char *snap;
	const unsigned char *want; /* SZ bytes */
	int expect;		   /* the load's result */
};

static int open_like(const struct child_load *c, cow_arena **a)
{
	if (c->b == TH_ANON)
		return cow_open_anon(a, SZ, NULL);
	if (c->b == TH_MEMFD)
		return cow_open_fd(a, c->memfd, NULL);
	return cow_open(a, c->arena_path, NULL);
}

/* In another process: open the same base, load, roll back, compare. */
static int child_load_fn(void *arg)
{
	const struct child_load *c = arg;
	cow_arena *a;
	cow_snap *s = NULL;
	int r;

	TH_CHECK(open_like(c, &a) == 0);
	r = cow_snap_load(a, c->snap, &s);
	if (r != c->expect) {
		fprintf(stderr, "# child: load returned %d (%s), want %d\n", r,
			cow_strerror(r), c->expect);
		_exit(2);
	}
	if (r == 0) {
		struct cow_stats st;

		TH_CHECK(cow_stats(a, &st) == 0);
		TH_CHECK(st.snapshots == 1 && st.saved_pages == NSOME);
		TH_CHECK(cow_rollback(a, s) == 0);
		TH_CHECK(memcmp(cow_base(a), c->want, SZ) == 0);
		/* and again after changing everything */
		memset(cow_base(a), 0x5a, SZ);
		TH_CHECK(cow_rollback(a, s) == 0);
		TH_CHECK(memcmp(cow_base(a), c->want, SZ) == 0);
	}
	TH_CHECK(cow_close(a) == 0);
	return 0;
}

static void roundtrip(enum th_backing b)
{
	unsigned char *want = malloc(SZ);
	struct child_load c = {b, NULL, -1, NULL, want, 0};
	char path[256], snap[256];
	cow_arena *a;
	cow_snap *s;

	snap_path(snap, sizeof(snap), "rt.snap");
	if (b == TH_ANON) {
		assert_int_equal(cow_open_anon(&a, SZ, NULL), 0);
	} else {
		int fd = th_make_file(b, SZ, path, sizeof(path));

		assert_true(fd >= 0);
		assert_int_equal(b == TH_MEMFD ? cow_open_fd(&a, fd, NULL)
					       : cow_open(&a, path, NULL),
				 0);
		if (b == TH_MEMFD)
			c.memfd = fd;
		else
			close(fd);
		c.arena_path = path;
	}
	scribble(a, some, NSOME, 1);
	assert_int_equal(cow_snapshot(a, &s), 0);
	memcpy(want, cow_base(a), SZ);
	assert_int_equal(cow_snap_save(s, snap, 0), 0);
	/* k pages and one page of header and index */
	assert_int_equal(file_size(snap), (off_t)((NSOME + 1) * PG));
	assert_int_equal(temps_left(snap), 0);
	/* the saving arena loads it too, and the copy restores */
	{
		cow_snap *l;

		scribble(a, some, NSOME, 2);
		assert_int_equal(cow_snap_load(a, snap, &l), 0);
		assert_int_equal(snapshots(a), 2);
		assert_int_equal(cow_rollback(a, l), 0);
		assert_memory_equal(cow_base(a), want, SZ);
		cow_snap_release(l);
	}
	assert_int_equal(cow_close(a), 0);
	c.snap = snap;
	th_assert_exit0(th_in_child(child_load_fn, &c));
	if (b == TH_MEMFD)
		close(c.memfd);
	else if (b != TH_ANON)
		unlink(path);
	unlink(snap);
	free(want);
}

static void test_roundtrip_anon(void **state)
{
	(void)state;
	roundtrip(TH_ANON);
}

static void test_roundtrip_memfd(void **state)
{
	(void)state;
	roundtrip(TH_MEMFD);
}

static void test_roundtrip_tmpfs(void **state)
{
	(void)state;
	roundtrip(TH_TMPFS);
}

static void test_roundtrip_ext4(void **state)
{
	(void)state;
	roundtrip(TH_EXT4);
}

/* --- COW_SNAP_FULL into a fresh anonymous arena ---------------------- */

struct child_full {
	const char *snap;
	const unsigned char *want;
	size_t size; /* of the arena to open */
	int expect;
};

static int child_full_fn(void *arg)
{
	const struct child_full *c = arg;
	cow_arena *a;
	cow_snap *s;
	int r;

	TH_CHECK(cow_open_anon(&a, c->size, NULL) == 0);
	r = cow_snap_load(a, c->snap, &s);
	TH_CHECK(r == c->expect);
	if (r == 0) {
		TH_CHECK(cow_rollback(a, s) == 0);
		TH_CHECK(cow_size(a) == SZ);
		TH_CHECK(memcmp(cow_base(a), c->want, SZ) == 0);
	}
	TH_CHECK(cow_close(a) == 0);
	return 0;
}

static void test_full_into_fresh_anon(void **state)
{
	unsigned char *want = malloc(SZ);
	char snap[256];
	struct th_arena t;
	cow_snap *s;

	(void)state;
	snap_path(snap, sizeof(snap), "full.snap");
	assert_int_equal(th_open(&t, TH_EXT4, SZ, NULL), 0);
	scribble(t.a, some, NSOME, 3);
	assert_int_equal(cow_snapshot(t.a, &s), 0);
	memcpy(want, cow_base(t.a), SZ);
	/* changes after the snapshot are not in it */
	scribble(t.a, some, 2, 4);
	assert_int_equal(cow_snap_save(s, snap, COW_SNAP_FULL), 0);
	assert_int_equal(file_size(snap), (off_t)((NPG + 1) * PG));
	{
		struct child_full c = {snap, want, SZ, 0};

		th_assert_exit0(th_in_child(child_full_fn, &c));
		c.size = 2 * SZ; /* larger: fine, the rollback shrinks it */
		th_assert_exit0(th_in_child(child_full_fn, &c));
		c.size = SZ - PG; /* smaller: does not fit */
		c.expect = COW_EFOREIGN;
		th_assert_exit0(th_in_child(child_full_fn, &c));
	}
	th_close(&t);
	unlink(snap);
	free(want);
}

/* An anonymous arena after a commit: its base is in memory only. */
static void test_anon_committed(void **state)
{
	unsigned char *want = malloc(SZ);
	char snap[256];
	cow_arena *a, *b;
	cow_snap *s, *l;

	(void)state;
	snap_path(snap, sizeof(snap), "anon.snap");
	assert_int_equal(cow_open_anon(&a, SZ, NULL), 0);
	scribble(a, some, NSOME, 5);
	assert_int_equal(cow_commit(a, 0), 0);
	scribble(a, some, 3, 6);
	assert_int_equal(cow_snapshot(a, &s), 0);
	memcpy(want, cow_base(a), SZ);
	assert_int_equal(cow_snap_save(s, snap, 0), -EINVAL);
	assert_int_equal(access(snap, F_OK), -1);
	assert_int_equal(temps_left(snap), 0);
	assert_int_equal(cow_snap_save(s, snap, COW_SNAP_FULL), 0);
	/* a never-committed anonymous arena takes the full file */
	assert_int_equal(cow_open_anon(&b, SZ, NULL), 0);
	assert_int_equal(cow_snap_load(b, snap, &l), 0);
	assert_int_equal(cow_rollback(b, l), 0);
	assert_memory_equal(cow_base(b), want, SZ);
	assert_int_equal(cow_close(b), 0);
	assert_int_equal(cow_close(a), 0);
	unlink(snap);
	free(want);
}

/* --- every foreign base ------------------------------------------------ */

static void expect_load(cow_arena *a, const char *snap, int want)
{
	size_t saved = saved_pages(a), n = snapshots(a);
	cow_snap *s = NULL;

	assert_int_equal(cow_snap_load(a, snap, &s), want);
	if (want == 0) {
		assert_non_null(s);
		cow_snap_release(s);
		return;
	}
	assert_null(s);
	assert_int_equal(saved_pages(a), saved);
	assert_int_equal(snapshots(a), n);
}

static void save_one(cow_arena *a, const char *snap, unsigned flags)
{
	cow_snap *s;

	scribble(a, some, NSOME, 7);
	assert_int_equal(cow_snapshot(a, &s), 0);
	assert_int_equal(cow_snap_save(s, snap, flags), 0);
	cow_snap_release(s);
}

static void test_foreign_file(void **state)
{
	struct th_arena t, u;
	char snap[256], full[256];
	cow_arena *a;
	struct timespec ts[2];

	(void)state;
	snap_path(snap, sizeof(snap), "f.snap");
	snap_path(full, sizeof(full), "f-full.snap");
	assert_int_equal(th_open(&t, TH_EXT4, SZ, NULL), 0);
	save_one(t.a, snap, 0);
	save_one(t.a, full, COW_SNAP_FULL);
	expect_load(t.a, snap, 0);

	/* another file with the same content and size */
	assert_int_equal(th_open(&u, TH_EXT4, SZ, NULL), 0);
	expect_load(u.a, snap, COW_EFOREIGN);
	expect_load(u.a, full, 0); /* a full file needs no base */
	th_close(&u);
	/* a copy of the file itself (same bytes, same mtime, new inode) */
	{
		char copy[300];
		int in, out;
		char buf[SZ];
		struct stat st;

		snprintf(copy, sizeof(copy), "%s.copy", t.path);
		in = open(t.path, O_RDONLY);
		out = open(copy, O_RDWR | O_CREAT | O_TRUNC, 0644);
		assert_int_equal(pread(in, buf, SZ, 0), (ssize_t)SZ);
		assert_int_equal(pwrite(out, buf, SZ, 0), (ssize_t)SZ);
		assert_int_equal(fstat(in, &st), 0);
		ts[0] = st.st_atim;
		ts[1] = st.st_mtim;
		assert_int_equal(futimens(out, ts), 0);
		close(in);
		close(out);
		assert_int_equal(cow_open(&a, copy, NULL), 0);
		expect_load(a, snap, COW_EFOREIGN);
		cow_close(a);
		unlink(copy);
	}
	/* the same file after a commit */
	scribble(t.a, some, 1, 8);
	assert_int_equal(cow_commit(t.a, 0), 0);
	expect_load(t.a, snap, COW_EFOREIGN);
	expect_load(t.a, full, 0);
	/* saved again now, and the file grown afterwards: another size */
	save_one(t.a, snap, 0);
	expect_load(t.a, snap, 0);
	assert_int_equal(cow_grow(t.a, SZ + PG), 0);
	expect_load(t.a, snap, COW_EFOREIGN);
	/* the same file reopened: still its base */
	save_one(t.a, snap, 0);
	th_close(&t);
	assert_int_equal(th_open(&t, TH_EXT4, SZ, NULL), 0);
	expect_load(t.a, snap, COW_EFOREIGN); /* another file again */
	th_close(&t);
	unlink(snap);
	unlink(full);
}

static void test_foreign_reopen_touch(void **state)
{
	struct th_arena t;
	char snap[256], path[256];
	cow_arena *a;

	(void)state;
	snap_path(snap, sizeof(snap), "t.snap");
	assert_int_equal(th_open(&t, TH_TMPFS, SZ, NULL), 0);
	save_one(t.a, snap, 0);
	strcpy(path, t.path);
	cow_close(t.a);
	/* reopened unchanged: loads */
	assert_int_equal(cow_open(&a, path, NULL), 0);
	expect_load(a, snap, 0);
	cow_close(a);
	/* touched (same bytes, new mtime): another base */
	assert_int_equal(utimensat(AT_FDCWD, path, NULL, 0), 0);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	expect_load(a, snap, COW_EFOREIGN);
	cow_close(a);
	/* opened smaller than the snapshot: does not fit */
	{
		struct cow_options o = {.size = SZ / 2};
		cow_snap *s;

		assert_int_equal(cow_open(&a, path, NULL), 0);
		scribble(a, some, NSOME, 9);
		assert_int_equal(cow_snapshot(a, &s), 0);
		assert_int_equal(cow_snap_save(s, snap, 0), 0);
		cow_close(a);
		assert_int_equal(cow_open(&a, path, &o), 0);
		expect_load(a, snap, COW_EFOREIGN);
		cow_close(a);
	}
	unlink(path);
	unlink(snap);
}

static void test_foreign_kinds(void **state)
{
	struct th_arena t;
	char zs[256], fs[256];
	cow_arena *a;

	(void)state;
	snap_path(zs, sizeof(zs), "zeros.snap");
	snap_path(fs, sizeof(fs), "file.snap");
	assert_int_equal(cow_open_anon(&a, SZ, NULL), 0);
	save_one(a, zs, 0);
	assert_int_equal(th_open(&t, TH_MEMFD, SZ, NULL), 0);
	save_one(t.a, fs, 0);
	/* zeros into a file arena, a file's into an anonymous one */
	expect_load(t.a, zs, COW_EFOREIGN);
	expect_load(a, fs, COW_EFOREIGN);
	/* zeros into a larger anonymous arena: fine; into a committed one:
	 * its base is no longer zeros */
	{
		cow_arena *b;

		assert_int_equal(cow_open_anon(&b, 2 * SZ, NULL), 0);
		expect_load(b, zs, 0);
		scribble(b, some, 1, 1);
		assert_int_equal(cow_commit(b, 0), 0);
		expect_load(b, zs, COW_EFOREIGN);
		cow_close(b);
		assert_int_equal(cow_open_anon(&b, SZ - PG, NULL), 0);
		expect_load(b, zs, COW_EFOREIGN);
		cow_close(b);
	}
	th_close(&t);
	cow_close(a);
	unlink(zs);
	unlink(fs);
}

/* --- damage ------------------------------------------------------------- */

static void flip(const char *path, off_t off, unsigned char bit)
{
	int fd = open(path, O_RDWR);
	unsigned char c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= bit;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void test_bitflips(void **state)
{
	unsigned char *want = malloc(SZ);
	char snap[256];
	cow_arena *a;
	cow_snap *s;
	off_t size;

	(void)state;
	snap_path(snap, sizeof(snap), "flip.snap");
	assert_int_equal(cow_open_anon(&a, SZ, NULL), 0);
	scribble(a, some, NSOME, 10);
	assert_int_equal(cow_snapshot(a, &s), 0);
	memcpy(want, cow_base(a), SZ);
	assert_int_equal(cow_snap_save(s, snap, 0), 0);
	memset(cow_base(a), 0x11, SZ); /* the arena's state, kept below */
	size = file_size(snap);
	/* every byte of the header, the index and the padding, one bit and
	 * the top bit; then a sample of the pages' bytes */
	for (off_t off = 0; off < size; off += off < (off_t)PG ? 1 : 97) {
		for (int k = 0; k < 2; k++) {
			unsigned char bit = k ? 0x80 : (unsigned char)(1 << (off % 7));
			int want_r = off >= 8 && off < 12 ? COW_EVERSION
							  : COW_ECORRUPT;
			int r;
			cow_snap *l = NULL;

			flip(snap, off, bit);
			r = cow_snap_load(a, snap, &l);
			if (r != want_r)
				fail_msg("flip at %lld bit %#x: %d, want %d",
					 (long long)off, bit, r, want_r);
			assert_null(l);
			flip(snap, off, bit);
		}
	}
	/* nothing changed by all those loads */
	assert_int_equal(snapshots(a), 1);
	assert_int_equal(saved_pages(a), NSOME);
	for (size_t i = 0; i < SZ; i++)
		assert_int_equal(((unsigned char *)cow_base(a))[i], 0x11);
	/* and the file is good again */
	{
		cow_snap *l;

		assert_int_equal(cow_snap_load(a, snap, &l), 0);
		assert_int_equal(cow_rollback(a, l), 0);
		assert_memory_equal(cow_base(a), want, SZ);
	}
	cow_close(a);
	unlink(snap);
	free(want);
}

static void test_truncations(void **state)
{
	char snap[256], cut[300];
	unsigned char *buf;
	cow_arena *a;
	off_t size;
	int fd;

	(void)state;
	snap_path(snap, sizeof(snap), "trunc.snap");
	/* on tmpfs: ext4 flushes a file truncated and rewritten at close */
	snprintf(cut, sizeof(cut), "%s/trunc.cut", th_dir(TH_TMPFS));
	assert_int_equal(cow_open_anon(&a, SZ, NULL), 0);
	save_one(a, snap, 0);
	size = file_size(snap);
	buf = malloc((size_t)size + 1);
	fd = open(snap, O_RDONLY);
	assert_int_equal(read(fd, buf, (size_t)size), size);
	close(fd);
	for (off_t len = 0; len <= size + 1; len++) {
		if (len == size)
			continue;
		buf[size] = 0;
		cow_snap *l = NULL;

		fd = open(cut, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_int_equal(write(fd, buf, (size_t)len), len);
		close(fd);
		if (cow_snap_load(a, cut, &l) != COW_ECORRUPT)
			fail_msg("length %lld loads", (long long)len);
		assert_null(l);
	}
	expect_load(a, cut, COW_ECORRUPT); /* and nothing changed */
	/* not a snapshot file at all */
	expect_load(a, "/proc/self/exe", COW_ECORRUPT);
	cow_close(a);
	unlink(cut);
	unlink(snap);
	free(buf);
}

static void test_bad_args(void **state)
{
	char snap[256];
	cow_arena *a;
	cow_snap *s, *l = NULL;

	(void)state;
	snap_path(snap, sizeof(snap), "args.snap");
	assert_int_equal(cow_open_anon(&a, SZ, NULL), 0);
	assert_int_equal(cow_snapshot(a, &s), 0);
	assert_int_equal(cow_snap_save(NULL, snap, 0), -EINVAL);
	assert_int_equal(cow_snap_save(s, NULL, 0), -EINVAL);
	assert_int_equal(cow_snap_save(s, "", 0), -EINVAL);
	assert_int_equal(cow_snap_save(s, snap, 0x2), -EINVAL);
	assert_int_equal(access(snap, F_OK), -1);
	assert_int_equal(cow_snap_save(s, "/nonexistent-dir/x.snap", 0),
			 -ENOENT);
	assert_int_equal(cow_snap_save(s, "/tmp/", 0), -EISDIR);
	assert_int_equal(cow_snap_save(s, snap, 0), 0);
	/* an empty snapshot: the header alone */
	assert_int_equal(file_size(snap), (off_t)PG);
	assert_int_equal(cow_snap_load(NULL, snap, &l), -EINVAL);
	assert_int_equal(cow_snap_load(a, NULL, &l), -EINVAL);
	assert_int_equal(cow_snap_load(a, snap, NULL), -EINVAL);
	assert_int_equal(cow_snap_load(a, "/nonexistent", &l), -ENOENT);
	assert_int_equal(cow_snap_load(a, th_dir(TH_EXT4), &l), -EISDIR);
	assert_int_equal(cow_snap_load(a, "/dev/null", &l), -EINVAL);
	assert_null(l);
	cow_close(a);
	unlink(snap);
}

/* A loaded snapshot stays valid across commits like any other. */
static void test_loaded_across_commit(void **state)
{
	unsigned char *want = malloc(SZ);
	struct th_arena t;
	char snap[256];
	cow_snap *s, *l;

	(void)state;
	snap_path(snap, sizeof(snap), "commit.snap");
	assert_int_equal(th_open(&t, TH_EXT4, SZ, NULL), 0);
	scribble(t.a, some, NSOME, 11);
	assert_int_equal(cow_snapshot(t.a, &s), 0);
	memcpy(want, cow_base(t.a), SZ);
	assert_int_equal(cow_snap_save(s, snap, 0), 0);
	cow_snap_release(s);
	assert_int_equal(cow_discard(t.a), 0);
	assert_int_equal(cow_snap_load(t.a, snap, &l), 0);
	assert_int_equal(saved_pages(t.a), NSOME);
	/* commit pages the loaded snapshot reads from the base, and others */
	memset(cow_base(t.a), 0x77, SZ);
	assert_int_equal(cow_commit(t.a, 0), 0);
	memset(cow_base(t.a), 0x33, 3 * PG);
	assert_int_equal(cow_rollback(t.a, l), 0);
	assert_memory_equal(cow_base(t.a), want, SZ);
	th_close(&t);
	unlink(snap);
	free(want);
}

/* --- cow_snap_diff (the model test compares it with the images) ------- */

static void test_diff(void **state)
{
	char snap[256];
	struct cow_range r[8];
	cow_arena *a, *b;
	cow_snap *s, *t, *l, *o;
	unsigned char *p;

	(void)state;
	snap_path(snap, sizeof(snap), "diff.snap");
	assert_int_equal(cow_open_anon(&a, SZ, NULL), 0);
	p = cow_base(a);
	assert_int_equal(cow_snapshot(a, &s), 0);
	p[3 * PG] = 1;
	p[4 * PG + 9] = 2;
	p[9 * PG] = 3;
	assert_int_equal(cow_snapshot(a, &t), 0);
	assert_int_equal(cow_snap_diff(a, s, t, r, 8), 2);
	assert_int_equal(r[0].offset, 3 * PG);
	assert_int_equal(r[0].length, 2 * PG);
	assert_int_equal(r[1].offset, 9 * PG);
	assert_int_equal(r[1].length, PG);
	/* only the first run fits; the count is still 2 */
	memset(r, 0, sizeof(r));
	assert_int_equal(cow_snap_diff(a, t, s, r, 1), 2);
	assert_int_equal(r[0].offset, 3 * PG);
	assert_int_equal(r[1].length, 0);
	/* now against t: a page written back with its own bytes is equal */
	p[3 * PG] = 1;
	p[20 * PG] = 4;
	assert_int_equal(cow_snap_diff(a, t, NULL, r, 8), 1);
	assert_int_equal(r[0].offset, 20 * PG);
	/* a loaded copy holds other copies of the same bytes: no run */
	assert_int_equal(cow_snap_save(t, snap, 0), 0);
	assert_int_equal(cow_snap_load(a, snap, &l), 0);
	assert_int_equal(cow_snap_diff(a, t, l, NULL, 0), 0);
	/* sizes: the pages past the smaller one all differ */
	assert_int_equal(cow_grow(a, SZ + 3 * PG), 0);
	assert_int_equal(cow_snap_diff(a, t, NULL, r, 8), 2);
	assert_int_equal(r[1].offset, SZ);
	assert_int_equal(r[1].length, 3 * PG);
	/* bad arguments */
	assert_int_equal(cow_open_anon(&b, SZ, NULL), 0);
	assert_int_equal(cow_snapshot(b, &o), 0);
	assert_int_equal(cow_snap_diff(NULL, s, t, r, 8), -EINVAL);
	assert_int_equal(cow_snap_diff(a, NULL, t, r, 8), -EINVAL);
	assert_int_equal(cow_snap_diff(a, s, t, NULL, 8), -EINVAL);
	assert_int_equal(cow_snap_diff(a, o, t, r, 8), -EINVAL);
	assert_int_equal(cow_snap_diff(a, s, o, r, 8), -EINVAL);
	assert_int_equal(cow_snap_diff(b, o, NULL, r, 8), 0);
	cow_close(b);
	cow_close(a);
	unlink(snap);
}

/* --- a kill during a save --------------------------------------------- */

static int saver_fn(void *arg)
{
	const char *snap = arg;
	cow_arena *a;
	cow_snap *s[2];
	size_t all[NPG];

	for (size_t i = 0; i < NPG; i++)
		all[i] = i;
	TH_CHECK(cow_open_anon(&a, SZ, NULL) == 0);
	scribble(a, all, NPG, 1);
	TH_CHECK(cow_snapshot(a, &s[0]) == 0);
	scribble(a, all, NPG, 2);
	TH_CHECK(cow_snapshot(a, &s[1]) == 0);
	for (unsigned i = 0;; i++)
		TH_CHECK(cow_snap_save(s[i & 1], snap, 0) == 0);
	return 0;
}

static void test_kill_during_save(void **state)
{
	unsigned char *v[2];
	char snap[256];
	size_t all[NPG];
	cow_arena *a;
	cow_snap *s;

	(void)state;
	for (size_t i = 0; i < NPG; i++)
		all[i] = i;
	snap_path(snap, sizeof(snap), "kill.snap");
	assert_int_equal(cow_open_anon(&a, SZ, NULL), 0);
	for (int k = 0; k < 2; k++) {
		scribble(a, all, NPG, k + 1);
		v[k] = malloc(SZ);
		memcpy(v[k], cow_base(a), SZ);
	}
	assert_int_equal(cow_discard(a), 0);
	srand(12);
	for (int round = 0; round < 30; round++) {
		pid_t pid;
		int status, which = -1;

		th_dir(TH_EXT4);
		fflush(NULL);
		pid = fork();
		if (pid == 0)
			_exit(saver_fn(snap));
		assert_true(pid > 0);
		/* until the first file exists, then a random moment */
		while (access(snap, F_OK))
			usleep(100);
		usleep((useconds_t)(rand() % 3000));
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(cow_snap_load(a, snap, &s), 0);
		assert_int_equal(cow_rollback(a, s), 0);
		for (int k = 0; k < 2; k++)
			if (!memcmp(cow_base(a), v[k], SZ))
				which = k;
		assert_true(which >= 0);
		cow_snap_release(s);
		assert_int_equal(cow_discard(a), 0);
		/* the temporary file a kill may leave is not the file */
		{
			char dir[256];
			DIR *d;
			struct dirent *e;

			snprintf(dir, sizeof(dir), "%s", th_dir(TH_EXT4));
			d = opendir(dir);
			while ((e = readdir(d)))
				if (strstr(e->d_name, "kill.snap.tmp-")) {
					char p[600];

					snprintf(p, sizeof(p), "%s/%s", dir,
						 e->d_name);
					unlink(p);
				}
			closedir(d);
		}
	}
	cow_close(a);
	unlink(snap);
	free(v[0]);
	free(v[1]);
}

/* --- fault sweeps --------------------------------------------------------- */

static void test_fault_save(void **state)
{
	char snap[256];
	unsigned char *old = malloc(SZ), *neu = malloc(SZ);
	cow_arena *a;
	cow_snap *s, *l;
	int fails = 0;

	(void)state;
	snap_path(snap, sizeof(snap), "fault-save.snap");
	for (unsigned flags = 0; flags <= COW_SNAP_FULL; flags++) {
		struct th_arena t;

		assert_int_equal(th_open(&t, TH_EXT4, SZ, NULL), 0);
		a = t.a;
		scribble(a, some, NSOME, 12);
		assert_int_equal(cow_snapshot(a, &s), 0);
		memcpy(old, cow_base(a), SZ);
		assert_int_equal(cow_snap_save(s, snap, flags), 0);
		cow_snap_release(s);
		scribble(a, some, NSOME, 13);
		assert_int_equal(cow_snapshot(a, &s), 0);
		memcpy(neu, cow_base(a), SZ);
		for (unsigned long n = 1;; n++) {
			int r;

			assert_true(n < 200);
			cow__fault_reset();
			cow__fault_inject(COW__SYS_ANY, n, EIO, 0);
			r = cow_snap_save(s, snap, flags);
			cow__fault_reset();
			if (r == 0)
				break;
			fails++;
			assert_int_equal(temps_left(snap), 0);
			/* an error after the rename (the directory's sync)
			 * leaves the new file; before it, the old one */
			assert_int_equal(cow_snap_load(a, snap, &l), 0);
			assert_int_equal(cow_rollback(a, l), 0);
			assert_true(!memcmp(cow_base(a), old, SZ) ||
				    !memcmp(cow_base(a), neu, SZ));
			cow_snap_release(l);
		}
		assert_int_equal(cow_snap_load(a, snap, &l), 0);
		assert_int_equal(cow_rollback(a, l), 0);
		assert_memory_equal(cow_base(a), neu, SZ);
		th_close(&t);
	}
	assert_true(fails >= 10);
	unlink(snap);
	free(old);
	free(neu);
}

static void test_fault_load(void **state)
{
	unsigned char *want = malloc(SZ), *now = malloc(SZ);
	char snap[256];
	int fails = 0;

	(void)state;
	snap_path(snap, sizeof(snap), "fault-load.snap");
	for (enum th_backing b = TH_ANON; b < TH_NBACKINGS; b++) {
		struct th_arena t;
		cow_snap *s, *l;

		assert_int_equal(th_open(&t, b, SZ, NULL), 0);
		scribble(t.a, some, NSOME, 14);
		assert_int_equal(cow_snapshot(t.a, &s), 0);
		memcpy(want, cow_base(t.a), SZ);
		assert_int_equal(cow_snap_save(s, snap, 0), 0);
		/* the first snapshot of a fresh arena (on the same base),
		 * then one more; a memfd lives only with its arena */
		if (b == TH_ANON) {
			cow_close(t.a);
			assert_int_equal(cow_open_anon(&t.a, SZ, NULL), 0);
		} else if (b != TH_MEMFD) {
			cow_close(t.a);
			assert_int_equal(cow_open(&t.a, t.path, NULL), 0);
		} else {
			cow_snap_release(s);
		}
		for (int round = 0; round < 2; round++) {
			scribble(t.a, some, 3, 15 + round);
			memcpy(now, cow_base(t.a), SZ);
			for (unsigned long n = 1;; n++) {
				struct cow_stats st, st2;
				size_t fds, maps;
				int r;

				assert_true(n < 200);
				/* first: the first scan may start the
				 * tracking (a descriptor more) */
				assert_int_equal(cow_stats(t.a, &st), 0);
				fds = th_count_fds();
				maps = th_arena_maps(t.a);
				cow__fault_reset();
				cow__fault_inject(COW__SYS_ANY, n, ENOMEM, 0);
				l = NULL;
				r = cow_snap_load(t.a, snap, &l);
				cow__fault_reset();
				if (r == 0)
					break;
				fails++;
				assert_null(l);
				assert_int_equal(cow_stats(t.a, &st2), 0);
				assert_int_equal(st2.snapshots, st.snapshots);
				assert_int_equal(st2.saved_pages,
						 st.saved_pages);
				assert_int_equal(st2.saved_bytes,
						 st.saved_bytes);
				assert_int_equal(st2.tracking, st.tracking);
				assert_int_equal(th_count_fds(), fds);
				assert_int_equal(th_arena_maps(t.a), maps);
				assert_memory_equal(cow_base(t.a), now, SZ);
			}
			assert_memory_equal(cow_base(t.a), now, SZ);
			assert_int_equal(cow_rollback(t.a, l), 0);
			assert_memory_equal(cow_base(t.a), want, SZ);
		}
		th_close(&t);
	}
	assert_true(fails >= 8);
	unlink(snap);
	free(want);
	free(now);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_anon),
	    cmocka_unit_test(test_roundtrip_memfd),
	    cmocka_unit_test(test_roundtrip_tmpfs),
	    cmocka_unit_test(test_roundtrip_ext4),
	    cmocka_unit_test(test_full_into_fresh_anon),
	    cmocka_unit_test(test_anon_committed),
	    cmocka_unit_test(test_foreign_file),
	    cmocka_unit_test(test_foreign_reopen_touch),
	    cmocka_unit_test(test_foreign_kinds),
	    cmocka_unit_test(test_bitflips),
	    cmocka_unit_test(test_truncations),
	    cmocka_unit_test(test_bad_args),
	    cmocka_unit_test(test_loaded_across_commit),
	    cmocka_unit_test(test_diff),
	    cmocka_unit_test(test_kill_during_save),
	    cmocka_unit_test(test_fault_save),
	    cmocka_unit_test(test_fault_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
