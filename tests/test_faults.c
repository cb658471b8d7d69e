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

#define PG 4096UL
#define SZ (32 * PG)
#define MAX_STEPS 200

void cow__track_force_pagemap(int on);

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
	s->maps = th_arena_maps(t->a);
	s->fds = th_count_fds();
	s->all_maps = th_count_maps();
	s->dirty = (size_t)cow_dirty(t->a, NULL, 0);
	s->file_len = t->path[0] && stat(t->path, &sb) == 0 ? sb.st_size : -1;
	memcpy(s->content, cow_base(t->a), s->size);
}

static void same(const struct state *s, struct th_arena *t)
{
	struct stat sb;

	assert_int_equal(cow_size(t->a), s->size);
	assert_int_equal(th_arena_maps(t->a), s->maps);
	assert_int_equal(th_count_fds(), s->fds);
	if (TH_MAPS_EXACT)
		assert_int_equal(th_count_maps(), s->all_maps);
	assert_int_equal(cow_dirty(t->a, NULL, 0), (ssize_t)s->dirty);
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
		cmocka_unit_test(test_discard_persistent),
		cmocka_unit_test(test_sweep_open),
	};

	return cmocka_run_group_tests_name("faults", tests, NULL, NULL);
}
