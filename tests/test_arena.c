// SPDX-License-Identifier: MIT
/* The arena core on every backing: open, grow, dirty, discard, revert,
 * close, and bad input. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "../src/sys.h"
#include "../src/testhooks.h"

#define PG 4096UL
#define NPG 64
#define SZ (NPG * PG)

static size_t dirty_pages(cow_arena *a)
{
	struct cow_stats st;

	assert_int_equal(cow_stats(a, &st), 0);
	return st.dirty_pages;
}

static void test_open_close(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		unsigned char *ref = malloc(SZ);
		size_t fds, maps;
		struct th_arena t;
		struct cow_stats st;

		/* A first open and close warms up the allocator, whose own
		 * regions (under ASan especially) are mappings too. */
		assert_int_equal(th_open(&t, b, SZ, NULL), 0);
		assert_int_equal(cow_stats(t.a, &st), 0);
		th_close(&t);
		fds = th_count_fds();
		maps = th_count_maps();
		assert_int_equal(th_open(&t, b, SZ, NULL), 0);
		th_base_ref(b, ref, SZ);
		assert_true(th_equal(&t, ref, SZ));
		assert_int_equal(cow_size(t.a), SZ);
		assert_int_equal(cow_reserved(t.a), COW_DEFAULT_RESERVE);
		assert_int_equal(cow_stats(t.a, &st), 0);
		assert_int_equal(st.size, SZ);
		assert_int_equal(st.page_size, PG);
		assert_int_equal(st.dirty_pages, 0);
		assert_in_range(st.mappings, 1, 3);
		assert_int_equal(st.mappings, th_arena_maps(t.a));
		th_close(&t);
		assert_int_equal(th_count_fds(), fds);
		if (TH_MAPS_EXACT)
			assert_int_equal(th_count_maps(), maps);
		free(ref);
	}
}

/*
 * A dirty scan reads the arena and changes none of its state: cow_dirty and
 * cow_stats open no descriptor (the write tracking's userfaultfd is opened
 * by a snapshot, or after a commit or discard) and report no tracking; a
 * snapshot then starts it, and discard, close give everything back.
 */
static void test_dirty_scan_changes_nothing(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		size_t fds = th_count_fds(), opened;
		struct cow_stats st;
		struct th_arena t;
		cow_snap *s;
		char *p;

		assert_int_equal(th_open(&t, b, SZ, NULL), 0);
		opened = th_count_fds();
		p = cow_base(t.a);
		p[PG] = 1;
		for (int i = 0; i < 3; i++) {
			assert_int_equal(cow_dirty(t.a, NULL, 0), 1);
			assert_int_equal(cow_stats(t.a, &st), 0);
			assert_int_equal(st.dirty_pages, 1);
			assert_int_equal(st.tracking, COW_TRACK_NONE);
			assert_int_equal(th_count_fds(), opened);
		}
		assert_int_equal(cow_snapshot(t.a, &s), 0);
		assert_true(th_count_fds() >= opened);
		p[5 * PG] = 2;
		assert_int_equal(cow_dirty(t.a, NULL, 0), 2);
		assert_int_equal(cow_discard(t.a), 0);
		assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
		cow_snap_release(s);
		th_close(&t);
		assert_int_equal(th_count_fds(), fds);
	}
}

static void test_dirty_revert_discard(void **state)
{
	(void)state;
	for (int pm = 0; pm < 2; pm++) {
		cow__track_force_pagemap(pm);
		for (int b = 0; b < TH_NBACKINGS; b++) {
			unsigned char *ref = malloc(SZ);
			struct cow_range r[8];
			struct th_arena t;
			char *p;

			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			p = cow_base(t.a);
			th_base_ref(b, ref, SZ);
			/* reads make no page dirty */
			for (size_t i = 0; i < SZ; i += PG)
				assert_int_equal((unsigned char)p[i], ref[i]);
			assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
			p[0] = 'x';
			p[5 * PG + 7] = 'y';
			p[6 * PG] = 'z';
			p[7 * PG + 4095] = 'w';
			p[40 * PG] = 'v';
			assert_int_equal(cow_dirty(t.a, r, 8), 3);
			assert_int_equal(r[0].offset, 0);
			assert_int_equal(r[0].length, PG);
			assert_int_equal(r[1].offset, 5 * PG);
			assert_int_equal(r[1].length, 3 * PG);
			assert_int_equal(r[2].offset, 40 * PG);
			assert_int_equal(r[2].length, PG);
			assert_int_equal(dirty_pages(t.a), 5);
			/* too little room: the count, and only max stored */
			memset(r, 0xff, sizeof(r));
			assert_int_equal(cow_dirty(t.a, r, 1), 3);
			assert_int_equal(r[0].offset, 0);
			assert_int_equal(r[1].offset, (size_t)-1);

			/* revert the middle page of a run */
			assert_int_equal(cow_revert(t.a, p + 6 * PG, PG), 0);
			assert_int_equal((unsigned char)p[6 * PG], ref[6 * PG]);
			assert_int_equal(p[5 * PG + 7], 'y');
			assert_int_equal(p[7 * PG + 4095], 'w');
			assert_int_equal(cow_dirty(t.a, NULL, 0), 4);
			assert_int_equal(dirty_pages(t.a), 4);

			assert_int_equal(cow_discard(t.a), 0);
			assert_true(th_equal(&t, ref, SZ));
			assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
			/* discard of a clean arena is fine */
			assert_int_equal(cow_discard(t.a), 0);
			/* written again after discard: dirty again */
			p[3 * PG] = 1;
			assert_int_equal(dirty_pages(t.a), 1);
			th_close(&t);
			free(ref);
		}
	}
	cow__track_force_pagemap(0);
}

/* A kernel without PAGEMAP_SCAN answers ENOTTY (or EINVAL): the pagemap
 * reader takes over with the same answer; other errors are reported. */
static void test_scan_fallback(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		int errs[2] = { ENOTTY, EINVAL };

		for (int e = 0; e < 2; e++) {
			struct cow_range r[4];
			struct th_arena t;
			char *p;

			assert_int_equal(th_open(&t, b, SZ, NULL), 0);
			p = cow_base(t.a);
			p[2 * PG] = 1;
			p[3 * PG] = 1;
			p[9 * PG] = 1;
			cow__fault_inject(COW__SYS_IOCTL, 1, errs[e], 1);
			assert_int_equal(cow_dirty(t.a, r, 4), 2);
			assert_true(cow__fault_calls(COW__SYS_IOCTL) >= 1);
			cow__fault_reset();
			assert_int_equal(r[0].offset, 2 * PG);
			assert_int_equal(r[0].length, 2 * PG);
			assert_int_equal(r[1].offset, 9 * PG);
			assert_int_equal(cow_discard(t.a), 0);
			assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
			cow__fault_inject(COW__SYS_IOCTL, 1, EIO, 0);
			assert_int_equal(cow_dirty(t.a, r, 4), -EIO);
			cow__fault_reset();
			th_close(&t);
		}
	}
}

/* More runs than one PAGEMAP_SCAN call returns: no run lost or doubled,
 * runs ascending, and neighbours across call boundaries merged. */
static void test_many_runs(void **state)
{
	enum { N = 1500 };
	struct cow_range *r = calloc(N, sizeof(*r));

	(void)state;
	for (int pm = 0; pm < 2; pm++) {
		cow__track_force_pagemap(pm);
		for (int b = 0; b < TH_NBACKINGS; b++) {
			struct th_arena t;
			char *p;

			assert_int_equal(th_open(&t, b, 2 * N * PG, NULL), 0);
			p = cow_base(t.a);
			for (size_t i = 0; i < N; i++)
				p[2 * i * PG] = 1;
			assert_int_equal(cow_dirty(t.a, r, N), N);
			for (size_t i = 0; i < N; i++) {
				assert_int_equal(r[i].offset, 2 * i * PG);
				assert_int_equal(r[i].length, PG);
			}
			for (size_t i = 0; i < N; i++)
				p[(2 * i + 1) * PG] = 1;
			assert_int_equal(cow_dirty(t.a, r, N), 1);
			assert_int_equal(r[0].length, 2 * N * PG);
			assert_int_equal(dirty_pages(t.a), 2 * N);
			th_close(&t);
		}
	}
	cow__track_force_pagemap(0);
	free(r);
}

/*
 * An arena read in whole (more pages present than the dirty scan's walk
 * reports one by one: it then reports only the pages not write-protected)
 * with the tracking on: the scans find exactly the pages written, among
 * thousands of file pages read in, before and after a commit, and a
 * discard leaves none.
 */
static void test_dirty_read_in_whole(void **state)
{
	enum { N = 4096 };
	static const size_t w[] = {0, 1, 700, 2049, N - 1};
	struct cow_range r[8];

	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		unsigned char *ref = malloc(N * PG);
		struct th_arena t;
		volatile char *p;
		size_t sum = 0;

		assert_non_null(ref);
		assert_int_equal(th_open(&t, b, N * PG, NULL), 0);
		p = cow_base(t.a);
		th_base_ref(b, ref, N * PG);
		/* the tracking starts with the first discard */
		assert_int_equal(cow_discard(t.a), 0);
		for (int round = 0; round < 3; round++) {
			for (size_t i = 0; i < N * PG; i += PG)
				sum += (unsigned char)p[i];
			assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
			for (size_t i = 0; i < 5; i++)
				p[w[i] * PG + 9] = (char)(round + 1);
			assert_int_equal(cow_dirty(t.a, r, 8), 4);
			assert_int_equal(r[0].offset, 0);
			assert_int_equal(r[0].length, 2 * PG);
			assert_int_equal(r[1].offset, 700 * PG);
			assert_int_equal(r[2].offset, 2049 * PG);
			assert_int_equal(r[3].offset, (N - 1) * PG);
			assert_int_equal(r[3].length, PG);
			assert_int_equal(dirty_pages(t.a), 5);
			if (b >= TH_TMPFS && round == 1) {
				/* committed: the file holds them now */
				assert_int_equal(cow_commit(t.a, 0), 0);
				for (size_t i = 0; i < 5; i++)
					ref[w[i] * PG + 9] = (char)(round + 1);
			} else {
				assert_int_equal(cow_discard(t.a), 0);
			}
			assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
			assert_true(th_equal(&t, ref, N * PG));
		}
		assert_true(sum > 0 || b == TH_ANON);
		th_close(&t);
		free(ref);
	}
}

static off_t file_len(const char *path)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	return sb.st_size;
}

static void test_file_untouched(void **state)
{
	(void)state;
	for (int b = TH_TMPFS; b <= TH_EXT4; b++) {
		unsigned char *ref = malloc(SZ), *buf = malloc(SZ);
		struct th_arena t;
		char *p;
		int fd;

		assert_int_equal(th_open(&t, b, SZ, NULL), 0);
		p = cow_base(t.a);
		memset(p, 0xab, SZ);
		assert_int_equal(cow_dirty(t.a, NULL, 0), 1);
		assert_int_equal(dirty_pages(t.a), NPG);
		fd = open(t.path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, buf, SZ, 0), SZ);
		th_base_ref(b, ref, SZ);
		assert_memory_equal(buf, ref, SZ);
		close(fd);
		th_close(&t);
		free(ref);
		free(buf);
	}
}

static void test_grow(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		struct cow_options o = { .reserve = 4 * SZ };
		unsigned char *ref = calloc(1, 4 * SZ);
		struct th_arena t;
		char *p;

		assert_int_equal(th_open(&t, b, SZ, &o), 0);
		p = cow_base(t.a);
		th_base_ref(b, ref, SZ);
		p[PG] = 'a';
		ref[PG] = 'a';
		assert_int_equal(cow_grow(t.a, 2 * SZ), 0);
		assert_ptr_equal(cow_base(t.a), p);
		assert_int_equal(cow_size(t.a), 2 * SZ);
		assert_true(th_equal(&t, ref, 2 * SZ)); /* new pages read 0 */
		assert_in_range(th_arena_maps(t.a), 1, 3);
		p[SZ + 3 * PG] = 'b';
		ref[SZ + 3 * PG] = 'b';
		assert_int_equal(cow_dirty(t.a, NULL, 0), 2);
		if (t.path[0])
			assert_int_equal(file_len(t.path), 2 * SZ);
		/* growing to the full reservation, then nothing more */
		assert_int_equal(cow_grow(t.a, 4 * SZ), 0);
		assert_int_equal(cow_grow(t.a, 4 * SZ), 0);
		assert_int_equal(cow_grow(t.a, 5 * SZ), -ENOSPC);
		assert_int_equal(cow_grow(t.a, SZ), -EINVAL);
		assert_int_equal(cow_grow(t.a, 4 * SZ + 1), -EINVAL);
		assert_int_equal(cow_size(t.a), 4 * SZ);
		assert_true(th_equal(&t, ref, 4 * SZ));
		assert_in_range(th_arena_maps(t.a), 1, 3);
		/* discard returns the grown part to zeros too */
		assert_int_equal(cow_discard(t.a), 0);
		ref[PG] = th_base_byte(b, PG);
		ref[SZ + 3 * PG] = 0;
		assert_true(th_equal(&t, ref, 4 * SZ));
		assert_int_equal(cow_size(t.a), 4 * SZ);
		th_close(&t);
		free(ref);
	}
}

static void test_readonly(void **state)
{
	struct cow_options o = { .flags = COW_READONLY };
	struct th_arena t;
	char *p;

	(void)state;
	assert_int_equal(th_open(&t, TH_EXT4, SZ, &o), 0);
	p = cow_base(t.a);
	p[0] = 'q'; /* private changes work on a read-only base */
	assert_int_equal(cow_dirty(t.a, NULL, 0), 1);
	assert_int_equal(cow_grow(t.a, 2 * SZ), -EROFS);
	assert_int_equal(cow_size(t.a), SZ);
	assert_int_equal(file_len(t.path), SZ);
	th_close(&t);
	/* anonymous arenas have no file to be read-only */
	cow_arena *a;
	assert_int_equal(cow_open_anon(&a, SZ, &o), -EINVAL);
}

static void test_unaligned_file(void **state)
{
	char path[256];
	cow_arena *a;
	char *p;
	int fd;

	(void)state;
	fd = th_make_file(TH_EXT4, 5000, path, sizeof(path));
	assert_true(fd >= 0);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_int_equal(cow_size(a), 2 * PG);
	p = cow_base(a);
	assert_int_equal((unsigned char)p[4999], th_base_byte(TH_EXT4, 4999));
	for (size_t i = 5000; i < 2 * PG; i++)
		assert_int_equal(p[i], 0);
	p[6000] = 1;
	assert_int_equal(cow_dirty(a, NULL, 0), 1);
	cow_close(a);
	assert_int_equal(file_len(path), 5000);
	close(fd);
	unlink(path);
}

static void test_create(void **state)
{
	struct cow_options o = { .flags = COW_CREATE, .size = SZ, .mode = 0600 };
	char path[256];
	struct stat sb;
	cow_arena *a;
	char *p;

	(void)state;
	snprintf(path, sizeof(path), "%s/cowarena-create-%d", th_dir(TH_EXT4),
		 getpid());
	unlink(path);
	assert_int_equal(cow_open(&a, path, NULL), -ENOENT);
	o.size = 0;
	assert_int_equal(cow_open(&a, path, &o), -EINVAL);
	assert_int_equal(access(path, F_OK), -1);
	o.size = SZ;
	o.flags |= COW_READONLY;
	assert_int_equal(cow_open(&a, path, &o), -EINVAL);
	o.flags &= ~COW_READONLY;
	assert_int_equal(cow_open(&a, path, &o), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, SZ);
	assert_int_equal(sb.st_mode & 0777, 0600);
	p = cow_base(a);
	for (size_t i = 0; i < SZ; i += 512)
		assert_int_equal(p[i], 0);
	cow_close(a);
	/* an existing file is opened as it is: the size is ignored */
	o.size = 2 * SZ;
	assert_int_equal(cow_open(&a, path, &o), 0);
	assert_int_equal(cow_size(a), SZ);
	cow_close(a);
	unlink(path);
}

static void test_sizes(void **state)
{
	struct cow_options o = { 0 };
	struct th_arena t;

	(void)state;
	/* a smaller size maps the file's head */
	o.size = 2 * PG;
	assert_int_equal(th_open(&t, TH_EXT4, SZ, &o), 0);
	assert_int_equal(cow_size(t.a), 2 * PG);
	th_close(&t);
	/* a larger one grows the file */
	o.size = 2 * SZ;
	assert_int_equal(th_open(&t, TH_EXT4, SZ, &o), 0);
	assert_int_equal(cow_size(t.a), 2 * SZ);
	assert_int_equal(file_len(t.path), 2 * SZ);
	assert_int_equal(((char *)cow_base(t.a))[SZ + 5], 0);
	th_close(&t);
	/* explicit reserve, and one too small */
	o.size = 0;
	o.reserve = 8 * SZ;
	assert_int_equal(th_open(&t, TH_MEMFD, SZ, &o), 0);
	assert_int_equal(cow_reserved(t.a), 8 * SZ);
	th_close(&t);
	o.reserve = PG;
	assert_int_equal(th_open(&t, TH_MEMFD, SZ, &o), -EINVAL);
	assert_int_equal(th_open(&t, TH_ANON, SZ, &o), -EINVAL);
}

static void test_huge_reserve(void **state)
{
	struct cow_options o = { .reserve = 64UL << 30 };
	cow_arena *a;
	char *p;

	(void)state;
	/* 64 GiB of address space on a 24 GiB machine: reserve, not memory */
	assert_int_equal(cow_open_anon(&a, 64UL << 30, &o), 0);
	p = cow_base(a);
	p[(32UL << 30) + 5] = 1;
	assert_int_equal(cow_dirty(a, NULL, 0), 1);
	assert_int_equal(cow_discard(a), 0);
	assert_int_equal(p[(32UL << 30) + 5], 0);
	assert_int_equal(cow_dirty(a, NULL, 0), 0);
	cow_close(a);
	o.reserve = 0;
	assert_int_equal(cow_open_anon(&a, 16UL << 30, &o), 0);
	assert_int_equal(cow_reserved(a), 32UL << 30);
	cow_close(a);
}

static void test_fixed_addr(void **state)
{
	struct cow_options o = { .flags = COW_FIXED_ADDR };
	cow_arena *a, *b2;
	void *taken;

	(void)state;
	/* find a free range, then use it */
	taken = mmap(NULL, 4 * SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		     0);
	assert_true(taken != MAP_FAILED);
	munmap(taken, 4 * SZ);
	o.addr = taken;
	o.reserve = 2 * SZ;
	assert_int_equal(cow_open_anon(&a, SZ, &o), 0);
	assert_ptr_equal(cow_base(a), taken);
	/* taken now: exact placement fails, a hint goes elsewhere */
	assert_int_equal(cow_open_anon(&b2, SZ, &o), -EEXIST);
	o.flags = 0;
	assert_int_equal(cow_open_anon(&b2, SZ, &o), 0);
	assert_ptr_not_equal(cow_base(b2), taken);
	cow_close(b2);
	cow_close(a);
	/* a free hint is honoured */
	assert_int_equal(cow_open_anon(&a, SZ, &o), 0);
	assert_ptr_equal(cow_base(a), taken);
	cow_close(a);
}

/* A plain hint that cannot be used is ignored, wherever it points: past the
 * top of user space, or so near it that the reservation would cross it.
 * Only COW_FIXED_ADDR makes it an error. */
static void test_hint_outside_user_space(void **state)
{
	void *hints[] = {(void *)0xffff800000000000UL,
			 (void *)0x7ffffff00000UL};
	cow_arena *a;

	(void)state;
#ifdef __SANITIZE_THREAD__
	/* ThreadSanitizer's mmap interceptor replaces a hint outside its
	 * application ranges by NULL but keeps MAP_FIXED_NOREPLACE, so the
	 * kernel (as root) maps page 0 and the runtime dies: this case runs
	 * in the plain and ASan builds only. */
	fprintf(stderr, "# skipped under ThreadSanitizer: its mmap "
			"interceptor cannot pass these hints through\n");
	skip();
#endif
	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
		struct cow_options o = {.addr = hints[i], .reserve = 1UL << 30};
		unsigned char *p;

		assert_int_equal(cow_open_anon(&a, SZ, &o), 0);
		p = cow_base(a);
		assert_ptr_not_equal(p, hints[i]);
		p[0] = 1;
		p[SZ - 1] = 2;
		assert_int_equal(p[0] + p[SZ - 1], 3);
		cow_close(a);
		o.flags = COW_FIXED_ADDR;
		assert_int_equal(cow_open_anon(&a, SZ, &o), -ENOMEM);
	}
}

static void test_open_fd(void **state)
{
	struct cow_options o = { .flags = COW_READONLY };
	char path[256];
	cow_arena *a;
	int fd, rd;

	(void)state;
	fd = th_make_file(TH_EXT4, SZ, path, sizeof(path));
	rd = open(path, O_RDONLY);
	assert_int_equal(cow_open_fd(&a, rd, NULL), -EBADF);
	assert_int_equal(cow_open_fd(&a, rd, &o), 0);
	close(rd); /* the arena keeps its own descriptor */
	assert_int_equal((unsigned char)((char *)cow_base(a))[PG],
			 th_base_byte(TH_EXT4, PG));
	cow_close(a);
	assert_int_equal(cow_open_fd(&a, -1, NULL), -EBADF);
	assert_int_equal(cow_open_fd(&a, 1000000, NULL), -EBADF);
	close(fd);
	unlink(path);
}

static void test_bad_input(void **state)
{
	struct cow_options o = { 0 };
	struct th_arena t;
	struct cow_stats st;
	cow_arena *a;
	char *p;
	int dfd;

	(void)state;
	assert_int_equal(cow_open(NULL, "/x", NULL), -EINVAL);
	assert_int_equal(cow_open(&a, NULL, NULL), -EINVAL);
	assert_int_equal(cow_open_anon(NULL, SZ, NULL), -EINVAL);
	assert_int_equal(cow_open_anon(&a, 0, NULL), -EINVAL);
	assert_int_equal(cow_open_anon(&a, 100, NULL), -EINVAL);
	assert_int_equal(cow_open(&a, "/nonexistent/cowarena", NULL), -ENOENT);
	assert_int_equal(cow_open(&a, "/tmp", NULL), -EISDIR);
	o.flags = COW_READONLY;
	assert_int_equal(cow_open(&a, "/tmp", &o), -EISDIR);
	assert_int_equal(cow_open(&a, "/dev/null", &o), -EINVAL);
	dfd = open("/tmp", O_RDONLY | O_DIRECTORY);
	assert_int_equal(cow_open_fd(&a, dfd, &o), -EISDIR);
	close(dfd);
	o.flags = 0x8000;
	assert_int_equal(cow_open_anon(&a, SZ, &o), -EINVAL);
	o.flags = 0;
	o.reserved[3] = 1;
	assert_int_equal(cow_open_anon(&a, SZ, &o), -EINVAL);
	o.reserved[3] = 0;
	o.addr = (void *)0x10001;
	assert_int_equal(cow_open_anon(&a, SZ, &o), -EINVAL);
	o.addr = NULL;
	o.flags = COW_FIXED_ADDR;
	assert_int_equal(cow_open_anon(&a, SZ, &o), -EINVAL);
	o.flags = 0;
	o.reserve = 100;
	assert_int_equal(cow_open_anon(&a, SZ, &o), -EINVAL);
	o.reserve = 0;
	o.size = 2 * SZ;
	assert_int_equal(cow_open_anon(&a, SZ, &o), -EINVAL);
	o.size = 0;
	o.mode = 010000;
	assert_int_equal(cow_open_anon(&a, SZ, &o), -EINVAL);

	/* an empty file with no size */
	{
		char path[256];
		int fd = th_make_file(TH_EXT4, 0, path, sizeof(path));

		assert_int_equal(cow_open(&a, path, NULL), -EINVAL);
		close(fd);
		unlink(path);
	}

	for (int b = 0; b < TH_NBACKINGS; b++) {
		unsigned char *ref = malloc(SZ);

		assert_int_equal(th_open(&t, b, SZ, NULL), 0);
		p = cow_base(t.a);
		p[PG] = 'k';
		memcpy(ref, p, SZ);
		assert_int_equal(cow_revert(t.a, NULL, PG), -EINVAL);
		assert_int_equal(cow_revert(t.a, p + 1, PG), -EINVAL);
		assert_int_equal(cow_revert(t.a, p, PG + 1), -EINVAL);
		assert_int_equal(cow_revert(t.a, p, 0), -EINVAL);
		assert_int_equal(cow_revert(t.a, p - PG, PG), -EINVAL);
		assert_int_equal(cow_revert(t.a, p, SZ + PG), -EINVAL);
		assert_int_equal(cow_revert(t.a, p + SZ, PG), -EINVAL);
		assert_int_equal(cow_revert(t.a, p + SZ - PG, 2 * PG), -EINVAL);
		assert_int_equal(cow_revert(t.a, p + PG, (size_t)-PG), -EINVAL);
		assert_int_equal(cow_revert(NULL, p, PG), -EINVAL);
		assert_int_equal(cow_dirty(t.a, NULL, 3), -EINVAL);
		assert_int_equal(cow_dirty(NULL, NULL, 0), -EINVAL);
		assert_int_equal(cow_stats(t.a, NULL), -EINVAL);
		assert_int_equal(cow_stats(NULL, &st), -EINVAL);
		assert_int_equal(cow_grow(NULL, SZ), -EINVAL);
		assert_int_equal(cow_discard(NULL), -EINVAL);
		/* nothing changed */
		assert_memory_equal(ref, p, SZ);
		assert_int_equal(cow_dirty(t.a, NULL, 0), 1);
		assert_int_equal(cow_size(t.a), SZ);
		th_close(&t);
		free(ref);
	}
	assert_int_equal(cow_close(NULL), 0);
	assert_null(cow_base(NULL));
	assert_int_equal(cow_size(NULL), 0);
}

static void test_strerror_version(void **state)
{
	(void)state;
	{
		char v[64];

		snprintf(v, sizeof(v), "%d.%d.%d", COWARENA_VERSION_MAJOR,
			 COWARENA_VERSION_MINOR, COWARENA_VERSION_PATCH);
		assert_string_equal(cow_version(), v);
	}
	assert_string_equal(cow_strerror(-ENOENT), "No such file or directory");
	assert_string_equal(cow_strerror(0), "Success");
	assert_non_null(cow_strerror(-99999));
	assert_non_null(cow_strerror(12345));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_close),
		cmocka_unit_test(test_dirty_scan_changes_nothing),
		cmocka_unit_test(test_dirty_revert_discard),
		cmocka_unit_test(test_scan_fallback),
		cmocka_unit_test(test_many_runs),
		cmocka_unit_test(test_dirty_read_in_whole),
		cmocka_unit_test(test_file_untouched),
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_readonly),
		cmocka_unit_test(test_unaligned_file),
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_huge_reserve),
		cmocka_unit_test(test_fixed_addr),
		cmocka_unit_test(test_hint_outside_user_space),
		cmocka_unit_test(test_open_fd),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_strerror_version),
	};

	return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}
