// SPDX-License-Identifier: MIT
/* Shared test fixtures: backings, reference content, fd and map counts. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sys/wait.h>

#include "helpers.h"

const char *const th_backing_names[TH_NBACKINGS] = { "anon", "memfd", "tmpfs",
						     "ext4" };

/*
 * Each test process works in directories of its own, made on first use and
 * removed with everything in them when it exits: a file or log left by an
 * earlier run (a killed test, a crash) can never meet this run's files.
 */
static char dirs[2][256];
static pid_t dirs_owner;

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static void rm_dirs(void)
{
	if (getpid() != dirs_owner) /* a forked child leaves them alone */
		return;
	for (int i = 0; i < 2; i++)
		if (dirs[i][0])
			rm_dir(dirs[i]);
}

const char *th_dir(enum th_backing b)
{
	int i = b == TH_TMPFS;
	const char *root = getenv("COW_TEST_DIR") ? getenv("COW_TEST_DIR")
						   : "/var/tmp";

	if (dirs[i][0])
		return dirs[i];
	snprintf(dirs[i], sizeof(dirs[i]), "%s/cowarena-test.XXXXXX",
		 i ? "/dev/shm" : root);
	if (!mkdtemp(dirs[i])) {
		perror(dirs[i]);
		abort();
	}
	if (!dirs_owner) {
		dirs_owner = getpid();
		atexit(rm_dirs);
	}
	return dirs[i];
}

unsigned char th_base_byte(enum th_backing b, size_t off)
{
	if (b == TH_ANON)
		return 0;
	return (unsigned char)((off / 4096) * 7 + (off % 251) + 1);
}

void th_base_ref(enum th_backing b, unsigned char *ref, size_t size)
{
	for (size_t i = 0; i < size; i++)
		ref[i] = th_base_byte(b, i);
}

static int fill(int fd, enum th_backing b, size_t size)
{
	unsigned char buf[65536];

	for (size_t off = 0; off < size; off += sizeof(buf)) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = th_base_byte(b, off + i);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			return -errno;
	}
	return 0;
}

int th_make_file(enum th_backing b, size_t size, char *path, size_t pathlen)
{
	int fd;

	if (b == TH_MEMFD) {
		fd = memfd_create("cowarena-test", MFD_CLOEXEC);
	} else {
		snprintf(path, pathlen, "%s/cowarena-test-XXXXXX", th_dir(b));
		fd = mkstemp(path);
	}
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) || fill(fd, b, size)) {
		close(fd);
		return -EIO;
	}
	return fd;
}

int th_open(struct th_arena *t, enum th_backing b, size_t size,
	    const struct cow_options *opt)
{
	int fd, r;

	memset(t, 0, sizeof(*t));
	t->b = b;
	t->pgsz = (size_t)sysconf(_SC_PAGESIZE);
	if (b == TH_ANON)
		return cow_open_anon(&t->a, size, opt);
	fd = th_make_file(b, size, t->path, sizeof(t->path));
	if (fd < 0)
		return fd;
	if (b == TH_MEMFD)
		r = cow_open_fd(&t->a, fd, opt);
	else
		r = cow_open(&t->a, t->path, opt);
	close(fd);
	if (r < 0 && t->path[0])
		unlink(t->path);
	return r;
}

void th_close(struct th_arena *t)
{
	cow_close(t->a);
	t->a = NULL;
	if (t->path[0]) {
		char log[sizeof(t->path) + 12];

		unlink(t->path);
		snprintf(log, sizeof(log), "%s.cowlog", t->path);
		unlink(log);
		/* the spare a close keeps of a log past 1 MiB */
		snprintf(log, sizeof(log), "%s.cowlog.tmp", t->path);
		unlink(log);
	}
	t->path[0] = 0;
}

int th_equal(const struct th_arena *t, const unsigned char *ref, size_t size)
{
	const unsigned char *p = cow_base(t->a);

	for (size_t i = 0; i < size; i++) {
		if (p[i] != ref[i]) {
			fprintf(stderr, "# %s: byte %zu is %u, expected %u\n",
				th_backing_names[t->b], i, p[i], ref[i]);
			return 0;
		}
	}
	return 1;
}

size_t th_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;

	if (!d)
		return 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static size_t count_maps_in(uintptr_t lo, uintptr_t hi)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	size_t n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		uintptr_t s = strtoull(line, NULL, 16);

		n += s >= lo && s < hi;
	}
	fclose(f);
	return n;
}

size_t th_count_maps(void)
{
	return count_maps_in(0, UINTPTR_MAX);
}

size_t th_arena_maps(const cow_arena *a)
{
	uintptr_t b = (uintptr_t)cow_base(a);

	return count_maps_in(b, b + cow_reserved(a));
}

#ifdef COW_COVERAGE
/* The coverage runtime's: _exit skips its atexit handler. */
extern void __gcov_dump(void);
#endif

int th_in_child(int (*fn)(void *), void *arg)
{
	int status = -1;
	pid_t pid;

	/* made here, so the parent removes them (the child leaves by _exit) */
	th_dir(TH_EXT4);
	th_dir(TH_TMPFS);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int rc = fn(arg);

#ifdef COW_COVERAGE
		__gcov_dump();
#endif
		_exit(rc);
	}
	if (pid < 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

void th_assert_exit0(int status)
{
	if (WIFSIGNALED(status))
		fprintf(stderr, "# child killed by signal %d\n",
			WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

long th_vm_pte_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPTE: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}
