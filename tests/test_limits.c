// SPDX-License-Identifier: MIT
/* Resource limits: RLIMIT_NOFILE, RLIMIT_AS and RLIMIT_FSIZE give a clear
 * errno from the call that hit them, leak nothing, and the arena works
 * once the limit is lifted. Each test runs in a fork child so its limits
 * stay there. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define PG 4096UL
#define NPG 64
#define SZ (NPG * PG)
#define FD_LIMIT 256

/* Counts open descriptors below FD_LIMIT without opening one. */
static int fds_open(void)
{
	int n = 0;

	for (int fd = 0; fd < FD_LIMIT; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

struct nofile_case {
	enum th_backing b;
	unsigned flags;
	int pre_open; /* an arena already open (the pagemap fd is held) */
};

/* Fills every descriptor slot, then frees one at a time: the open fails
 * with -EMFILE and leaves the count as it was until there is room. */
static int child_nofile(void *arg)
{
	const struct nofile_case *c = arg;
	struct cow_options o = {.flags = c->flags};
	struct rlimit rl = {FD_LIMIT, FD_LIMIT};
	int filler[FD_LIMIT], nfill = 0, failures = 0;
	struct th_arena pre;
	char path[256];
	int fd = -1;

	if (c->b != TH_ANON) {
		fd = th_make_file(c->b, SZ, path, sizeof(path));
		TH_CHECK(fd >= 0);
	}
	if (c->pre_open)
		TH_CHECK(th_open(&pre, TH_ANON, SZ, NULL) == 0);
	TH_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	for (;;) {
		int f = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (f < 0)
			break;
		filler[nfill++] = f;
	}
	TH_CHECK(errno == EMFILE);
	for (;;) {
		int before = fds_open(), r;
		cow_arena *a;

		if (c->b == TH_ANON)
			r = cow_open_anon(&a, SZ, &o);
		else if (c->b == TH_MEMFD)
			r = cow_open_fd(&a, fd, &o);
		else
			r = cow_open(&a, path, &o);
		if (r == 0) {
			char *p = cow_base(a);

			p[5] = 1;
			TH_CHECK(cow_discard(a) == 0);
			TH_CHECK(cow_close(a) == 0);
			TH_CHECK(fds_open() == before);
			break;
		}
		TH_CHECK(r == -EMFILE);
		TH_CHECK(fds_open() == before);
		failures++;
		TH_CHECK(nfill > 0);
		close(filler[--nfill]);
	}
	TH_CHECK(failures >= 1);
	while (nfill)
		close(filler[--nfill]);
	if (c->pre_open)
		th_close(&pre);
	if (fd >= 0)
		close(fd);
	if (c->b == TH_TMPFS || c->b == TH_EXT4)
		unlink(path);
	return 0;
}

static void test_nofile(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		for (int pre = 0; pre < 2; pre++) {
			struct nofile_case c = {(enum th_backing)b, 0, pre};

			th_assert_exit0(th_in_child(child_nofile, &c));
			if (b == TH_ANON)
				continue;
			c.flags = COW_ISOLATE;
			th_assert_exit0(th_in_child(child_nofile, &c));
			c.flags = COW_READONLY;
			th_assert_exit0(th_in_child(child_nofile, &c));
		}
	}
}

static size_t vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t kb = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

/* Address space: the reservation is refused with -ENOMEM; an arena
 * opened before keeps working, and grows inside its reservation. */
static int child_as(void *arg)
{
	struct cow_options o = {.reserve = 4 * SZ};
	struct rlimit rl, old;
	struct th_arena t, u;
	cow_arena *a;
	char *p;
	size_t fds;

	(void)arg;
	TH_CHECK(th_open(&t, TH_EXT4, SZ, &o) == 0);
	TH_CHECK(th_open(&u, TH_TMPFS, SZ, NULL) == 0);
	th_close(&u); /* warm up every allocation size */
	TH_CHECK(getrlimit(RLIMIT_AS, &old) == 0);
	fds = th_count_fds();
	rl = old;
	rl.rlim_cur = vm_size() + (64UL << 20);
	TH_CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
	TH_CHECK(cow_open_anon(&a, SZ, NULL) == -ENOMEM);
	TH_CHECK(th_open(&u, TH_TMPFS, SZ, NULL) == -ENOMEM);
	TH_CHECK(th_count_fds() == fds);
	p = cow_base(t.a);
	p[PG] = 'a';
	TH_CHECK(cow_grow(t.a, 4 * SZ) == 0); /* no new address space */
	p[3 * SZ] = 'b';
	TH_CHECK(cow_dirty(t.a, NULL, 0) == 2);
	TH_CHECK(cow_discard(t.a) == 0);
	TH_CHECK(p[PG] == (char)th_base_byte(TH_EXT4, PG) && p[3 * SZ] == 0);
	TH_CHECK(setrlimit(RLIMIT_AS, &old) == 0);
	TH_CHECK(cow_open_anon(&a, SZ, NULL) == 0);
	cow_close(a);
	th_close(&t);
	return 0;
}

static void test_as(void **state)
{
	(void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* Not a kernel limitation: a sanitizer's runtime maps its own memory
	 * on demand and aborts when the address-space limit refuses it. */
	skip();
#endif
	th_assert_exit0(th_in_child(child_as, NULL));
}

static off_t file_len(const char *path)
{
	struct stat sb;

	return stat(path, &sb) ? -1 : sb.st_size;
}

/* File size: cow_grow past RLIMIT_FSIZE returns -EFBIG, with SIGXFSZ at
 * its default action (it would kill): the library checks first. */
static int child_fsize(void *arg)
{
	struct rlimit rl = {2 * SZ, RLIM_INFINITY};
	unsigned flags = (unsigned)(uintptr_t)arg;
	struct cow_options o = {.flags = flags};
	char cpath[256];
	cow_arena *a;

	signal(SIGXFSZ, SIG_DFL);
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	for (int b = 0; b < TH_NBACKINGS; b++) {
		struct th_arena t;
		char *p;

		if (b == TH_ANON && flags)
			continue;
		TH_CHECK(th_open(&t, (enum th_backing)b, SZ, &o) == 0);
		p = cow_base(t.a);
		p[7] = 'x';
		TH_CHECK(cow_grow(t.a, 3 * SZ) == -EFBIG);
		TH_CHECK(cow_size(t.a) == SZ);
		TH_CHECK(p[7] == 'x');
		if (t.path[0])
			TH_CHECK(file_len(t.path) == (off_t)SZ);
		TH_CHECK(cow_grow(t.a, 2 * SZ) == 0); /* up to the limit */
		p[SZ + 1] = 'y';
		TH_CHECK(cow_dirty(t.a, NULL, 0) == 2);
		rl.rlim_cur = RLIM_INFINITY;
		TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
		TH_CHECK(cow_grow(t.a, 3 * SZ) == 0);
		TH_CHECK(p[7] == 'x' && p[SZ + 1] == 'y' && p[2 * SZ] == 0);
		rl.rlim_cur = 2 * SZ;
		TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
		th_close(&t);
		/* opening bigger than the limit */
		o.size = 4 * SZ;
		if (b == TH_ANON)
			TH_CHECK(cow_open_anon(&a, 4 * SZ, NULL) == -EFBIG);
		else if (b != TH_MEMFD)
			TH_CHECK(th_open(&t, (enum th_backing)b, SZ, &o) ==
				 -EFBIG);
		o.size = 0;
	}
	/* COW_CREATE past the limit leaves no file behind */
	snprintf(cpath, sizeof(cpath), "%s/cowarena-fsize-%d", th_dir(TH_EXT4),
		 getpid());
	o.flags = COW_CREATE;
	o.size = 4 * SZ;
	TH_CHECK(cow_open(&a, cpath, &o) == -EFBIG);
	TH_CHECK(access(cpath, F_OK) == -1);
	return 0;
}

/* An isolated copy of a file larger than the limit is refused. */
static int child_fsize_copy(void *arg)
{
	struct cow_options o = {.flags = COW_ISOLATE};
	struct rlimit rl = {SZ, RLIM_INFINITY};
	cow_arena *a;
	int fd;

	(void)arg;
	signal(SIGXFSZ, SIG_DFL);
	fd = th_make_file(TH_MEMFD, 2 * SZ, NULL, 0);
	TH_CHECK(fd >= 0);
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	TH_CHECK(cow_open_fd(&a, fd, &o) == -EFBIG);
	rl.rlim_cur = RLIM_INFINITY;
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	TH_CHECK(cow_open_fd(&a, fd, &o) == 0);
	cow_close(a);
	close(fd);
	return 0;
}

/*
 * Commits under RLIMIT_FSIZE: the log's preallocation, its growth, a page
 * at or past the limit (inside the file), a replay that writes past it:
 * each is -EFBIG (no SIGXFSZ), leaves nothing behind (no log, no
 * FILE.cowlog.tmp, the changes still private), and works once the limit
 * is lifted.
 */
#define MIB (1L << 20)
static int child_fsize_commit(void *arg)
{
	struct rlimit rl = {MIB / 2, RLIM_INFINITY};
	char path[256], log[300], tmp[300];
	struct stat st;
	cow_arena *a;
	pid_t pid;
	char *p;
	int fd, r, i, status;

	(void)arg;
	signal(SIGXFSZ, SIG_DFL);
	fd = th_make_file(TH_EXT4, SZ, path, sizeof(path));
	TH_CHECK(fd >= 0);
	close(fd);
	snprintf(log, sizeof(log), "%s.cowlog", path);
	snprintf(tmp, sizeof(tmp), "%s.cowlog.tmp", path);
	TH_CHECK(cow_open(&a, path, NULL) == 0);
	p = cow_base(a);
	/* the log's first 1 MiB */
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	p[0] = 'a';
	TH_CHECK(cow_commit(a, 0) == -EFBIG);
	TH_CHECK(cow_commit(a, COW_COMMIT_ASYNC) == -EFBIG);
	TH_CHECK(access(log, F_OK) == -1 && access(tmp, F_OK) == -1);
	TH_CHECK(p[0] == 'a' && cow_dirty(a, NULL, 0) == 1);
	/* its growth past 1 MiB: commits of the whole arena fill it */
	rl.rlim_cur = 3 * MIB / 2;
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	for (i = 1;; i++) {
		memset(p, i, SZ);
		r = cow_commit(a, 0);
		if (r)
			break;
		TH_CHECK(i < 10);
	}
	TH_CHECK(r == -EFBIG);
	TH_CHECK(stat(log, &st) == 0 && st.st_size == MIB);
	TH_CHECK(p[0] == (char)i && p[SZ - 1] == (char)i);
	TH_CHECK(cow_dirty(a, NULL, 0) == 1); /* one run, all private */
	rl.rlim_cur = RLIM_INFINITY;
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	TH_CHECK(cow_commit(a, 0) == 0);
	cow_close(a);
	unlink(path);

	/* a page past the limit, inside a file longer than the limit */
	fd = th_make_file(TH_EXT4, 2 * MIB, path, sizeof(path));
	TH_CHECK(fd >= 0);
	close(fd);
	snprintf(log, sizeof(log), "%s.cowlog", path);
	TH_CHECK(cow_open(&a, path, NULL) == 0);
	p = cow_base(a);
	rl.rlim_cur = 3 * MIB / 2;
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	p[7 * MIB / 4] = 'b';
	TH_CHECK(cow_commit(a, 0) == -EFBIG);
	TH_CHECK(cow_commit(a, COW_COMMIT_ASYNC) == -EFBIG);
	TH_CHECK(cow_discard(a) == 0);
	p[0] = 'c'; /* below the limit: fine */
	TH_CHECK(cow_commit(a, 0) == 0);
	cow_close(a);
	/* the limit lowered between an asynchronous commit and its in-place
	 * writes: the error past the durable point, no signal; the log
	 * keeps the commit for the next open */
	rl.rlim_cur = RLIM_INFINITY;
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	{
		struct cow_options o = {.flags = COW_NOTHREAD};

		TH_CHECK(cow_open(&a, path, &o) == 0);
	}
	p = cow_base(a);
	p[7 * MIB / 4] = 'e';
	TH_CHECK(cow_commit(a, COW_COMMIT_ASYNC) == 0);
	rl.rlim_cur = 3 * MIB / 2;
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	TH_CHECK(cow_sync(a) == -EFBIG);
	cow_close(a);
	rl.rlim_cur = RLIM_INFINITY;
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	TH_CHECK(cow_open(&a, path, NULL) == 0);
	p = cow_base(a);
	TH_CHECK(p[0] == 'c' && p[7 * MIB / 4] == 'e');
	cow_close(a);
	/* a log whose replay writes past the limit: refused, kept */
	rl.rlim_cur = RLIM_INFINITY;
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	pid = fork();
	TH_CHECK(pid >= 0);
	if (pid == 0) {
		struct cow_options o = {.flags = COW_NOTHREAD};

		if (cow_open(&a, path, &o))
			_exit(2);
		((char *)cow_base(a))[7 * MIB / 4] = 'd';
		_exit(cow_commit(a, 0) ? 3 : 0); /* crash: the log stays */
	}
	TH_CHECK(waitpid(pid, &status, 0) == pid);
	TH_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	rl.rlim_cur = 3 * MIB / 2;
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	TH_CHECK(cow_open(&a, path, NULL) == -EFBIG);
	TH_CHECK(access(log, F_OK) == 0);
	rl.rlim_cur = RLIM_INFINITY;
	TH_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	TH_CHECK(cow_open(&a, path, NULL) == 0);
	p = cow_base(a);
	TH_CHECK(p[0] == 'c' && p[7 * MIB / 4] == 'd');
	/* (the replay retired the log) */
	cow_close(a);
	unlink(log);
	unlink(path);
	return 0;
}

static void test_fsize(void **state)
{
	(void)state;
	th_assert_exit0(th_in_child(child_fsize, (void *)(uintptr_t)0));
	th_assert_exit0(
	    th_in_child(child_fsize, (void *)(uintptr_t)COW_ISOLATE));
	th_assert_exit0(th_in_child(child_fsize_copy, NULL));
	th_assert_exit0(th_in_child(child_fsize_commit, NULL));
}

/* At vm.max_map_count the truncation repair cannot split the base's
 * mapping: the whole arena becomes zeros instead, and the process lives. */
static int child_maps_full(void *arg)
{
	size_t pages = 70000;
	struct th_arena t;
	char *fill, *p;
	size_t i;
	int fd;

	(void)arg;
	TH_CHECK(th_open(&t, TH_TMPFS, 16 * PG, NULL) == 0);
	p = cow_base(t.a);
	p[PG] = 'k';
	fd = open(t.path, O_RDWR | O_CLOEXEC);
	TH_CHECK(fd >= 0);
	fill = mmap(NULL, pages * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	TH_CHECK(fill != MAP_FAILED);
	for (i = 1; i < pages; i += 2)
		if (mprotect(fill + i * PG, PG, PROT_READ))
			break;
	TH_CHECK(i < pages && errno == ENOMEM); /* at the limit now */
	/* mmap allows one mapping more than mprotect does: take it too */
	while (mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) !=
	       MAP_FAILED)
		;
	TH_CHECK(errno == ENOMEM);
	TH_CHECK(ftruncate(fd, 4 * PG) == 0);
	TH_CHECK(p[10 * PG] == 0); /* faults: repaired */
	TH_CHECK(p[PG] == 'k');	   /* the head is kept */
	TH_CHECK(p[3 * PG + 5] == (char)th_base_byte(TH_TMPFS, 3 * PG + 5));
	/* the mapping came from the reservation past the end, now unmapped */
	TH_CHECK(msync(p + 16 * PG, PG, MS_ASYNC) == -1 && errno == ENOMEM);
	munmap(fill, pages * PG);
	TH_CHECK(th_arena_maps(t.a) <= 3);
	TH_CHECK(cow_discard(t.a) == -ESTALE);
	th_close(&t);
	close(fd);
	return 0;
}

static void test_maps_full(void **state)
{
	(void)state;
#if defined(__SANITIZE_THREAD__)
	/* Not a kernel limitation: ThreadSanitizer's runtime needs mappings
	 * of its own for shadow memory and fails at the limit itself. */
	skip();
#endif
	th_assert_exit0(th_in_child(child_maps_full, NULL));
}

/*
 * A commit near vm.max_map_count: the first commit sets up the process's
 * I/O engine (its ring's mappings and its thread's stack). Each slot less
 * than it needs gives a documented error (-ENOMEM; pthread_create's -EAGAIN
 * once was passed through), the arena unchanged; with room, the same
 * commit succeeds and the file holds it.
 */
static int child_commit_maps_full(void *arg)
{
	size_t n = 0, cap = 70000, tries = 0;
	void **maps = malloc(cap * sizeof(*maps));
	struct th_arena t;
	char *p, c = 0;
	int r, fd;

	(void)arg;
	TH_CHECK(maps);
	TH_CHECK(th_open(&t, TH_EXT4, 16 * PG, NULL) == 0);
	p = cow_base(t.a);
	p[PG] = 'c';
	/* one mapping per page, neighbours of different protection so none
	 * merge: unmapping the newest frees exactly one slot */
	for (;;) {
		void *m = mmap(NULL, PG, n & 1 ? PROT_READ : PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED)
			break;
		TH_CHECK(n < cap);
		maps[n++] = m;
	}
	TH_CHECK(errno == ENOMEM);
	while ((r = cow_commit(t.a, 0)) != 0) {
		if (r != -ENOMEM)
			fprintf(stderr, "commit with %zu slots free: %d\n", tries,
				r);
		TH_CHECK(r == -ENOMEM);
		TH_CHECK(p[PG] == 'c');
		TH_CHECK(++tries < 64 && n > 0);
		munmap(maps[--n], PG);
	}
	TH_CHECK(tries > 0); /* the limit was hit at least once */
	while (n)
		munmap(maps[--n], PG);
	free(maps);
	cow_close(t.a);
	t.a = NULL;
	fd = open(t.path, O_RDONLY | O_CLOEXEC);
	TH_CHECK(fd >= 0 && pread(fd, &c, 1, PG) == 1 && c == 'c');
	close(fd);
	th_close(&t);
	return 0;
}

static void test_commit_maps_full(void **state)
{
	(void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* Not a kernel limitation: the sanitizers' pthread_create maps
	 * memory of its own for the new thread and aborts at the limit. */
	skip();
#endif
	th_assert_exit0(th_in_child(child_commit_maps_full, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nofile),
	    cmocka_unit_test(test_as),
	    cmocka_unit_test(test_fsize),
	    cmocka_unit_test(test_maps_full),
	    cmocka_unit_test(test_commit_maps_full),
	};

	return cmocka_run_group_tests_name("limits", tests, NULL, NULL);
}
