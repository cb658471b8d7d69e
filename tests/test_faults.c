// SPDX-License-Identifier: MIT
/*
 * All or nothing (invariant 2): each public call is run with its 1st, 2nd,
 * ... Nth underlying call (any kind: mmap, madvise, ioctl, malloc, ...)
 * failing through src/sys.c, until the call succeeds. After each failure
 * the arena's content, size and mapping count, the process's descriptors
 * and mappings, and the file on disk must be exactly as before.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "../src/sys.h"
#include "../src/testhooks.h"

#define PG 4096UL
#define SZ (32 * PG)
#define MAX_STEPS 200
#define NPG_RUNS 32

/* What must not change when a call fails. */
struct state {
	size_t size, maps, fds, all_maps, dirty;
	off_t file_len;
	unsigned char *content;
};

static void take(struct state *s, struct th_arena *t)
{
	struct stat sb;

	s->size = cow_size(t->a);
	/* allocated first: a large malloc may add a mapping of its own */
	s->content = malloc(s->size);
	s->dirty = (size_t)cow_dirty(t->a, NULL, 0);
	s->maps = th_arena_maps(t->a);
	s->fds = th_count_fds();
	s->all_maps = th_count_maps();
	s->file_len = t->path[0] && stat(t->path, &sb) == 0 ? sb.st_size : -1;
	memcpy(s->content, cow_base(t->a), s->size);
}

/* An asynchronous commit of every dirty page was pending: a failed call
 * may still have written it into the file (background I/O advances in
 * any call), after which its pages equal the base and are no longer
 * reported dirty (and the next call with writers paused drops them). */
static int dirty_may_clear;

static ssize_t dirty_now(struct th_arena *t, ssize_t before,
			 struct cow_range *runs, size_t max)
{
	ssize_t n = cow_dirty(t->a, runs, max);

	return dirty_may_clear && n == 0 ? before : n;
}

static void same(const struct state *s, struct th_arena *t)
{
	struct stat sb;

	assert_int_equal(cow_size(t->a), s->size);
	assert_int_equal(th_arena_maps(t->a), s->maps);
	assert_int_equal(th_count_fds(), s->fds);
	if (TH_MAPS_EXACT)
		assert_int_equal(th_count_maps(), s->all_maps);
	assert_int_equal(dirty_now(t, (ssize_t)s->dirty, NULL, 0),
			 (ssize_t)s->dirty);
	assert_memory_equal(cow_base(t->a), s->content, s->size);
	if (t->path[0]) {
		assert_int_equal(stat(t->path, &sb), 0);
		assert_int_equal(sb.st_size, s->file_len);
	}
}

typedef int (*op_fn)(struct th_arena *t);

/* Runs op with each underlying call failing in turn; returns the number of
 * failures seen before it succeeded. */
static int sweep(struct th_arena *t, op_fn op, int err)
{
	int fails = 0;

	for (unsigned long n = 1; n <= MAX_STEPS; n++) {
		struct state s;
		int r;

		take(&s, t);
		cow__fault_reset();
		cow__fault_inject(COW__SYS_ANY, n, err, 0);
		r = op(t);
		cow__fault_reset();
		if (r == 0) {
			free(s.content);
			return fails;
		}
		assert_true(r < 0);
		same(&s, t);
		free(s.content);
		fails++;
	}
	fail_msg("call never succeeded");
	return -1;
}

static void dirty_some(struct th_arena *t)
{
	char *p = cow_base(t->a);

	p[0] = 1;
	p[2 * PG] = 2;
	p[3 * PG] = 3;
	p[10 * PG] = 4;
}

static int op_grow(struct th_arena *t)
{
	return cow_grow(t->a, cow_size(t->a) + 4 * PG);
}

static int op_discard(struct th_arena *t)
{
	return cow_discard(t->a);
}

static int op_revert(struct th_arena *t)
{
	return cow_revert(t->a, (char *)cow_base(t->a) + 2 * PG, 4 * PG);
}

static int op_dirty(struct th_arena *t)
{
	struct cow_range r[8];
	ssize_t n = cow_dirty(t->a, r, 8);

	return n < 0 ? (int)n : 0;
}

static int op_stats(struct th_arena *t)
{
	struct cow_stats st;

	return cow_stats(t->a, &st);
}

static void check_base(struct th_arena *t, size_t from, size_t to)
{
	const unsigned char *p = cow_base(t->a);

	for (size_t i = from; i < to; i++)
		if (p[i] != th_base_byte(t->b, i))
			fail_msg("byte %zu not the base", i);
}

static void test_sweep_calls(void **state)
{
	(void)state;
	for (int pm = 0; pm < 2; pm++) {
		cow__track_force_pagemap(pm);
		for (int b = 0; b < TH_NBACKINGS; b++) {
			struct cow_options o = { .reserve = 4 * SZ };
			struct th_arena t;
			int f;

			assert_int_equal(th_open(&t, b, SZ, &o), 0);
			dirty_some(&t);
			f = sweep(&t, op_grow, ENOMEM);
			assert_true(f >= 1); /* grow makes underlying calls */
			assert_int_equal(cow_size(t.a), SZ + 4 * PG);
			for (size_t i = SZ; i < SZ + 4 * PG; i++)
				assert_int_equal(((char *)cow_base(t.a))[i], 0);
			assert_true(sweep(&t, op_dirty, EIO) >= 1);
			assert_true(sweep(&t, op_stats, ENOMEM) >= 1);
			assert_true(sweep(&t, op_revert, EIO) >= 1);
			check_base(&t, 2 * PG, 6 * PG);
			assert_int_equal(cow_dirty(t.a, NULL, 0), 2);
			/* once-failures: discard finishes, or fails whole */
			assert_true(sweep(&t, op_discard, EIO) >= 1);
			check_base(&t, 0, SZ);
			assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
			th_close(&t);
		}
	}
	cow__track_force_pagemap(0);
}

/* A discard of pages far apart drops them run by run: each of its calls
 * failing in turn, it finishes or fails whole, with the tracking not yet
 * started, and with armed pages (written before a snapshot) among them. */
static void test_sweep_sparse_discard(void **state)
{
	static const size_t pages[] = {1, 200, 201, 400};
	const size_t sz = 512 * PG;

	(void)state;
	for (int pm = 0; pm < 2; pm++) {
		cow__track_force_pagemap(pm);
		for (int b = 0; b < TH_NBACKINGS; b++) {
			struct th_arena t;
			cow_snap *s = NULL;

			assert_int_equal(th_open(&t, b, sz, NULL), 0);
			for (int round = 0; round < 2; round++) {
				char *p = cow_base(t.a);

				for (size_t i = 0; i < 4; i++)
					p[pages[i] * PG + 5] = 'x';
				if (round)
					assert_int_equal(cow_snapshot(t.a, &s),
							 0);
				p[pages[0] * PG] = 'y';
				assert_int_equal(cow_dirty(t.a, NULL, 0), 3);
				assert_true(sweep(&t, op_discard, EIO) >= 1);
				check_base(&t, 0, sz);
				assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
			}
			cow_snap_release(s);
			th_close(&t);
		}
	}
	cow__track_force_pagemap(0);
}

/* Persistent failure from the Nth call on: discard must still either
 * succeed or change nothing. */
static void test_discard_persistent(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		for (unsigned long n = 1; n <= 8; n++) {
			struct th_arena t;
			struct state s;
			int r;

			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			dirty_some(&t);
			take(&s, &t);
			cow__fault_inject(COW__SYS_MADVISE, n, EAGAIN, 1);
			r = cow_discard(t.a);
			cow__fault_reset();
			if (r == 0) {
				check_base(&t, 0, SZ);
			} else {
				assert_int_equal(r, -EAGAIN);
				same(&s, &t);
			}
			free(s.content);
			th_close(&t);
		}
	}
}

/*
 * Snapshots, rollback, commits and cow_sync, with snapshots live and
 * commits on the files: each call with its 1st, 2nd, ... underlying call
 * failing once. The engine runs on the caller's thread (COW_NOTHREAD), so
 * the Nth call is the same in every run.
 */
enum cop {
	C_FIRST_COMMIT, /* the first commit: sets up the engine and the log */
	C_COMMIT,
	C_COMMIT_ASYNC, /* captured, then cow_sync(): the whole commit */
	C_SYNC,		/* an asynchronous commit captured before */
	C_SNAP_PENDING, /* cow_snapshot with that commit still unwritten */
	C_ROLLBACK_PENDING,
	C_NOPS
};

static const char *const cop_names[C_NOPS] = {
	"first commit", "commit", "async commit", "sync", "snapshot",
	"rollback"};

/* What a failed call must leave as it was, beyond struct state. */
struct cstate {
	struct state s;
	struct cow_range runs[NPG_RUNS];
	ssize_t nruns;
	struct cow_stats st;
	unsigned char *file; /* the file's bytes (file backings) */
};

static unsigned char *read_file(const char *path, size_t len)
{
	unsigned char *buf = malloc(len);
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, 0), (ssize_t)len);
	close(fd);
	return buf;
}

static void ctake(struct cstate *c, struct th_arena *t)
{
	struct stat sb;

	/* first: a large malloc may add a mapping of its own */
	c->file = NULL;
	if (t->path[0]) {
		assert_int_equal(stat(t->path, &sb), 0);
		c->file = read_file(t->path, (size_t)sb.st_size);
	}
	take(&c->s, t);
	c->nruns = cow_dirty(t->a, c->runs, NPG_RUNS);
	assert_in_range(c->nruns, 0, NPG_RUNS);
	assert_int_equal(cow_stats(t->a, &c->st), 0);
}

static void csame(const struct cstate *c, struct th_arena *t)
{
	struct cow_range runs[NPG_RUNS];
	struct cow_stats st;

	same(&c->s, t);
	if (cow_dirty(t->a, runs, NPG_RUNS) == 0 && dirty_may_clear)
		return;
	assert_int_equal(cow_dirty(t->a, runs, NPG_RUNS), c->nruns);
	assert_memory_equal(runs, c->runs, (size_t)c->nruns * sizeof(*runs));
	assert_int_equal(cow_stats(t->a, &st), 0);
	assert_int_equal(st.snapshots, c->st.snapshots);
	assert_int_equal(st.mappings, c->st.mappings);
	assert_int_equal(st.tracking, c->st.tracking);
}

static size_t saved_pages(struct th_arena *t)
{
	struct cow_stats st;

	assert_int_equal(cow_stats(t->a, &st), 0);
	return st.saved_pages;
}

static void cfree(struct cstate *c)
{
	free(c->s.content);
	free(c->file);
}

/* Writes generation gen into a few pages (and ref). */
static void gen_write(struct th_arena *t, unsigned char *ref, unsigned gen)
{
	static const size_t pages[] = {0, 1, 5, 6, 7, 20, 31};
	unsigned char *p = cow_base(t->a);

	for (size_t i = 0; i < sizeof(pages) / sizeof(*pages); i++)
		for (size_t j = 0; j < PG; j += 512) {
			size_t off = pages[i] * PG + j;

			p[off] = (unsigned char)(gen * 17 + off / 512);
			ref[off] = p[off];
		}
}

/* The asynchronous commit of C_COMMIT_ASYNC was captured (its failure
 * came from cow_sync()). */
static int captured;

static int cop_run(struct th_arena *t, enum cop op, cow_snap *s0,
		   cow_snap **s)
{
	int r;

	switch (op) {
	case C_FIRST_COMMIT:
	case C_COMMIT:
		/* and its in-place writes, which run in the background once
		 * it is durable: their failure is the next call's */
		r = cow_commit(t->a, 0);
		return r < 0 ? r : cow_sync(t->a);
	case C_COMMIT_ASYNC:
		r = cow_commit(t->a, COW_COMMIT_ASYNC);
		captured = r == 0;
		return r < 0 ? r : cow_sync(t->a);
	case C_SYNC:
		return cow_sync(t->a);
	case C_SNAP_PENDING:
		return cow_snapshot(t->a, s);
	default:
		return cow_rollback(t->a, s0);
	}
}

/*
 * Sets up: gen 1 committed (except before the first commit), snapshot s0,
 * gen 2 written (ref2: the content now; img0: s0's). For C_SYNC and the
 * pending ones gen 2 is then committed asynchronously, not yet written.
 */
static void cop_setup(struct th_arena *t, enum th_backing b, enum cop op,
		      cow_snap **s0, unsigned char *img0, unsigned char *ref2)
{
	struct cow_options o = {.flags = COW_NOTHREAD};

	assert_int_equal(th_open(t, b, SZ, &o), 0);
	th_base_ref(b, ref2, SZ);
	gen_write(t, ref2, 1);
	if (op != C_FIRST_COMMIT)
		assert_int_equal(cow_commit(t->a, 0), 0);
	assert_int_equal(cow_snapshot(t->a, s0), 0);
	memcpy(img0, ref2, SZ);
	gen_write(t, ref2, 2);
	if (op >= C_SYNC)
		assert_int_equal(cow_commit(t->a, COW_COMMIT_ASYNC), 0);
}

static void sweep_commit_one(enum th_backing b, enum cop op)
{
	unsigned char *img0 = malloc(SZ), *ref2 = malloc(SZ);
	int file = b == TH_TMPFS || b == TH_EXT4;
	int fired = 1, failed = 0, fatal = 0;
	unsigned long n;

	for (n = 1; fired && n <= MAX_STEPS; n++) {
		struct th_arena t;
		struct cstate c;
		cow_snap *s0, *s = NULL;
		unsigned long calls;
		int r, lost = 0, fatal_now = 0;

		size_t fds0 = th_count_fds();

		cop_setup(&t, b, op, &s0, img0, ref2);
		dirty_may_clear = file && op >= C_COMMIT_ASYNC;
		ctake(&c, &t);
		calls = cow__fault_calls(COW__SYS_ANY);
		cow__fault_inject(COW__SYS_ANY, n, EIO, 0);
		r = cop_run(&t, op, s0, &s);
		fired = cow__fault_calls(COW__SYS_ANY) >= calls + n;
		cow__fault_reset();
		if (!fired)
			assert_int_equal(r, 0);
		if (r < 0) {
			unsigned char *f2 = NULL;
			size_t sp;
			int r2;

			failed++;
			if (getenv("COW_TRACE"))
				fprintf(stderr, "# %s %s: call %lu: %d\n",
					th_backing_names[b], cop_names[op], n,
					r);
			assert_true(r == -EIO || r == -ENOMEM);
			if (op == C_FIRST_COMMIT) {
				/* The log and the I/O ring the first commit
				 * set up stay (until cow_close()). */
				size_t fds = th_count_fds();

				assert_in_range(fds, c.s.fds, c.s.fds + 2);
				if (fds > c.s.fds) {
					c.s.fds = fds;
					c.s.all_maps = th_count_maps();
				}
			}
			csame(&c, &t);
			if (file)
				f2 = read_file(t.path, (size_t)c.s.file_len);
			sp = saved_pages(&t);
			r2 = cop_run(&t, op, s0, &s);
			if (r2 < 0) {
				/* Failed after the durable point: the
				 * documented refusal, every time. */
				fatal++;
				fatal_now = 1;
				assert_true(file);
				assert_int_equal(r2, r);
				assert_int_equal(cow_commit(t.a, 0), r);
				assert_int_equal(cow_sync(t.a), r);
				assert_true(th_equal(&t, ref2, SZ));
				/* When the file's pages could not be written,
				 * every call that needs the base says so. */
				r2 = cow_rollback(t.a, s0);
				if (r2 < 0) {
					assert_int_equal(r2, r);
					assert_int_equal(cow_discard(t.a), r);
					assert_int_equal(cow_snapshot(t.a, &s),
							 r);
					assert_true(th_equal(&t, ref2, SZ));
				} else {
					assert_true(th_equal(&t, img0, SZ));
				}
				free(f2);
				goto reopen;
			} else {
				/* Failed before the durable point: the
				 * snapshots hold no copy of an old base
				 * (a captured commit gave them one), and the
				 * file was not written (snapshot and rollback
				 * may have written the commit before them). */
				if (!(op == C_COMMIT_ASYNC && captured))
					assert_int_equal(sp, c.st.saved_pages);
				if (file && op <= C_SYNC)
					assert_memory_equal(
					    f2, c.file, (size_t)c.s.file_len);
				/* An asynchronous commit that failed did not
				 * happen: its changes are private, commit
				 * them again. */
				if (file && op == C_SYNC)
					assert_int_equal(cow_commit(t.a, 0), 0);
			}
			free(f2);
		}
		/* the call (or its retry) did its whole job */
		if (op == C_ROLLBACK_PENDING) {
			assert_true(th_equal(&t, img0, SZ));
		} else {
			assert_true(th_equal(&t, ref2, SZ));
			if (op == C_SNAP_PENDING) {
				assert_non_null(s);
				memset(cow_base(t.a), 'q', PG);
				assert_int_equal(cow_rollback(t.a, s), 0);
				assert_true(th_equal(&t, ref2, SZ));
			}
			/* the snapshot from before survived */
			assert_int_equal(cow_rollback(t.a, s0), 0);
			assert_true(th_equal(&t, img0, SZ));
		}
		assert_int_equal(cow_stats(t.a, &c.st), 0);
		assert_int_equal(c.st.snapshots, 1 + (s != NULL));
	reopen:
		/* Snapshot and rollback wait for the asynchronous commit
		 * before them; if it failed, the next cow_sync() says so
		 * and it did not happen. */
		if (file && op >= C_SNAP_PENDING && !fatal_now) {
			int r3 = cow_sync(t.a);

			assert_true(r3 == 0 || (fired && r3 == -EIO));
			lost = r3 < 0;
		}
		if (file) {
			/* reopen: the last commit (gen 2) */
			assert_int_equal(cow_close(t.a), 0);
			assert_int_equal(cow_open(&t.a, t.path, NULL), 0);
			assert_true(th_equal(&t, lost ? img0 : ref2, SZ));
		}
		th_close(&t);
		cfree(&c);
		/* everything is released */
		assert_int_equal(th_count_fds(), fds0);
	}
	dirty_may_clear = 0;
	assert_false(fired);
	/* cow_sync() makes no call where there is no log */
	assert_int_equal(failed > 0, op != C_SYNC || file);
	if (getenv("COW_TRACE"))
		fprintf(stderr, "# %s %s: %lu steps, %d failed, %d fatal\n",
			th_backing_names[b], cop_names[op], n - 1, failed,
			fatal);
	free(img0);
	free(ref2);
}

static void test_sweep_commit(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++)
		for (int op = 0; op < C_NOPS; op++)
			sweep_commit_one(b, op);
}

/* Opening: a failure leaves no descriptor, mapping or created file. */
static int open_one(int b, const char *path, int memfd, cow_arena **a)
{
	struct cow_options o = { .flags = COW_CREATE, .size = SZ };

	if (b == TH_ANON)
		return cow_open_anon(a, SZ, NULL);
	if (b == TH_MEMFD)
		return cow_open_fd(a, memfd, NULL);
	return cow_open(a, path, &o);
}

static void test_sweep_open(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		for (int create = 0; create < 2; create++) {
			char path[256] = "";
			int fd = -1, done = 0;

			if (b == TH_MEMFD || b >= TH_TMPFS)
				fd = th_make_file(b == TH_MEMFD ? TH_MEMFD : b,
						  SZ, path, sizeof(path));
			if (create && b >= TH_TMPFS) {
				close(fd);
				fd = -1;
				unlink(path); /* COW_CREATE makes it */
			} else if (create) {
				if (fd >= 0)
					close(fd);
				continue;
			}
			for (unsigned long n = 1; n <= MAX_STEPS && !done;
			     n++) {
				size_t fds = th_count_fds();
				size_t maps = th_count_maps();
				cow_arena *a = NULL;
				int r;

				cow__fault_inject(COW__SYS_ANY, n, ENOMEM, 0);
				r = open_one(b, path, fd, &a);
				cow__fault_reset();
				if (r == 0) {
					done = 1;
					assert_int_equal(cow_size(a), SZ);
					cow_close(a);
					continue;
				}
				assert_int_equal(r, -ENOMEM);
				assert_null(a);
				assert_int_equal(th_count_fds(), fds);
				assert_int_equal(th_count_maps(), maps);
				if (create)
					assert_int_equal(access(path, F_OK),
							 -1);
			}
			assert_true(done);
			if (fd >= 0)
				close(fd);
			if (path[0])
				unlink(path);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sweep_calls),
		cmocka_unit_test(test_sweep_sparse_discard),
		cmocka_unit_test(test_discard_persistent),
		cmocka_unit_test(test_sweep_open),
		cmocka_unit_test(test_sweep_commit),
	};

	return cmocka_run_group_tests_name("faults", tests, NULL, NULL);
}
