// SPDX-License-Identifier: MIT
/*
 * The log's files beside the base (FILE.cowlog, FILE.cowlog.tmp): found in
 * the file's own directory whatever the working directory becomes; never
 * a FIFO, directory or symlink waited on, followed or written through
 * (by the library and by the cowarena tool); a sparse log scanned by its
 * data only.
 *
 * Every test runs under alarm(): a regression that blocks (a FIFO opened
 * for reading waits for a writer) kills the program instead of hanging.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "../src/sys.h"
#include "../src/wal.h"

#define PG 4096UL
#define NPG 16
#define SZ (NPG * PG)

static void log_name(const char *path, const char *suffix, char *out,
		     size_t len)
{
	snprintf(out, len, "%s%s", path, suffix);
}

static void new_file(char *path, size_t len)
{
	int fd = th_make_file(TH_EXT4, SZ, path, len);

	assert_true(fd >= 0);
	close(fd);
}

static void cleanup(const char *path)
{
	char l[300];

	log_name(path, ".cowlog", l, sizeof(l));
	unlink(l);
	log_name(path, ".cowlog.tmp", l, sizeof(l));
	unlink(l);
	unlink(path);
}

/* Every word of the first SZ bytes holds gen. */
static void stamp(cow_arena *a, uint32_t gen)
{
	uint32_t *p = cow_base(a);

	for (size_t i = 0; i < SZ / 4; i++)
		p[i] = gen;
}

static int has_gen(cow_arena *a, uint32_t gen)
{
	const uint32_t *p = cow_base(a);

	for (size_t i = 0; i < SZ / 4; i++)
		if (p[i] != gen)
			return 0;
	return 1;
}

/* The file itself holds gen in every word of its SZ bytes. */
static int file_has_gen(const char *path, uint32_t gen)
{
	uint32_t *buf = malloc(SZ);
	int fd = open(path, O_RDONLY), ok = 0;

	if (buf && fd >= 0 && pread(fd, buf, SZ, 0) == (ssize_t)SZ) {
		ok = 1;
		for (size_t i = 0; i < SZ / 4; i++)
			ok &= buf[i] == gen;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return ok;
}

/* A child commits generations 1..n and dies without closing (the log
 * keeps them: COW_NOTHREAD, nothing resets it). */
static void make_pending(const char *path, uint32_t n)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct cow_options o = {.flags = COW_NOTHREAD};
		cow_arena *a;

		if (cow_open(&a, path, &o))
			_exit(2);
		for (uint32_t g = 1; g <= n; g++) {
			stamp(a, g);
			if (cow_commit(a, 0))
				_exit(3);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * Runs the cowarena tool (built beside the tests' directory) with cmd and
 * file, under an alarm; returns its exit status (a kill by the alarm
 * fails the test) and its stderr in err.
 */
static int run_cli(const char *cmd, const char *file, char *err, size_t len)
{
	char exe[PATH_MAX], tool[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int p[2], status;
	size_t got = 0;
	pid_t pid;

	assert_true(n > 0);
	exe[n] = 0;
	snprintf(tool, sizeof(tool), "%s/../cowarena", dirname(exe));
	if (access(tool, X_OK)) {
		fprintf(stderr, "# %s missing: build it first (make all)\n",
			tool);
		fail();
	}
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(p[1], 2);
		dup2(null, 1);
		close(p[0]);
		alarm(10); /* kept across exec */
		execl(tool, tool, cmd, file, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while (got + 1 < len) {
		ssize_t r = read(p[0], err + got, len - 1 - got);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	err[got] = 0;
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status)) {
		fprintf(stderr, "# cowarena %s: killed by signal %d\n", cmd,
			WTERMSIG(status));
		fail();
	}
	return WEXITSTATUS(status);
}

enum kind {
	K_FIFO,
	K_DIR,
	K_SYMLINK,
	K_DANGLING,
	K_SOCKET,
	K_DEVICE,
	K_NKINDS
};
static const char *const kind_names[K_NKINDS] = {
    "FIFO",
    "directory",
    "symlink to a log",
    "dangling symlink",
    "socket",
    "device (/dev/null's numbers)"};

/* Puts a thing of kind k at name (target: a regular file for symlinks). */
static void make_thing(enum kind k, const char *name, const char *target)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s;

	switch (k) {
	case K_FIFO:
		assert_int_equal(mkfifo(name, 0600), 0);
		break;
	case K_DIR:
		assert_int_equal(mkdir(name, 0700), 0);
		break;
	case K_SYMLINK:
		assert_int_equal(symlink(target, name), 0);
		break;
	case K_DANGLING:
		assert_int_equal(symlink("/nonexistent/cowarena-log", name), 0);
		break;
	case K_SOCKET:
		assert_true(strlen(name) < sizeof(sa.sun_path));
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", name);
		s = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_true(s >= 0);
		assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)),
				 0);
		close(s);
		break;
	case K_DEVICE:
		assert_int_equal(mknod(name, S_IFCHR | 0600, makedev(1, 3)), 0);
		break;
	default:
		fail();
	}
}

static void remove_thing(const char *name)
{
	if (unlink(name))
		assert_int_equal(rmdir(name), 0);
}

/* FILE.cowlog that is not a regular file: every open and every command of
 * the tool refuses it at once, naming the log, and leaves it alone. */
static void test_log_not_regular(void **state)
{
	struct cow_options ro = {.flags = COW_READONLY};
	char path[256], l[300], real[300], err[1024];
	const char *msg;
	struct stat st1, st2;
	cow_arena *a;

	(void)state;
	alarm(60);
	for (int k = 0; k < K_NKINDS; k++) {
		if (k == K_DEVICE && geteuid() != 0) {
			fprintf(stderr, "# a device node needs root (mknod): "
					"that case skipped\n");
			continue;
		}
		fprintf(stderr, "# %s at FILE.cowlog\n", kind_names[k]);
		new_file(path, sizeof(path));
		log_name(path, ".cowlog", l, sizeof(l));
		log_name(path, ".real", real, sizeof(real));
		if (k == K_SYMLINK) {
			/* a real log with a pending transaction, reached
			 * through a symlink: still not followed */
			make_pending(path, 2);
			assert_int_equal(rename(l, real), 0);
		}
		make_thing((enum kind)k, l, real);
		assert_int_equal(lstat(l, &st1), 0);
		assert_int_equal(cow_open(&a, path, &ro), COW_ELOGTYPE);
		assert_int_equal(cow_open(&a, path, NULL), COW_ELOGTYPE);
		assert_int_equal(lstat(l, &st2), 0);
		assert_int_equal(st1.st_ino, st2.st_ino);
		assert_int_equal(st1.st_mode, st2.st_mode);
		msg = cow_strerror(COW_ELOGTYPE);
		assert_non_null(strstr(msg, "FILE.cowlog"));
		/* the tool: info, verify and recover fail at once, naming
		 * the log (not the file) */
		for (int c = 0; c < 3; c++) {
			static const char *const cmds[] = {"info", "verify",
							   "recover"};

			assert_int_equal(
			    run_cli(cmds[c], path, err, sizeof(err)), 1);
			assert_non_null(strstr(err, l));
			assert_non_null(strstr(err, "not a regular file"));
		}
		assert_int_equal(lstat(l, &st2), 0);
		assert_int_equal(st1.st_ino, st2.st_ino);
		/* removed, the file opens again */
		remove_thing(l);
		if (k == K_SYMLINK)
			assert_int_equal(rename(real, l), 0);
		assert_int_equal(cow_open(&a, path, NULL), 0);
		if (k == K_SYMLINK)
			assert_true(has_gen(a, 2));
		cow_close(a);
		cleanup(path);
	}
	alarm(0);
}

/*
 * Every call of an open that finds a log fails in turn: the open returns
 * the error, holds nothing, leaves the log, and the next open replays it.
 * With a symlink at FILE.cowlog, a failing lookup of what the name is
 * reports the open's own error (ELOOP), never a guess.
 */
static void test_log_open_faults(void **state)
{
	struct cow_options ro = {.flags = COW_READONLY};
	char path[256], l[300];
	int done = 0, eloop = 0, retired = 0;
	struct stat st1, st2;
	cow_arena *a;

	(void)state;
	alarm(120);
	new_file(path, sizeof(path));
	log_name(path, ".cowlog", l, sizeof(l));
	make_pending(path, 2);
	assert_int_equal(stat(l, &st1), 0);
	for (unsigned long n = 1; n < 1000 && !done; n++) {
		size_t fds = th_count_fds();
		int r;

		cow__fault_inject(COW__SYS_ANY, n, ENOMEM, 0);
		r = cow_open(&a, path, NULL);
		cow__fault_reset();
		if (r == 0) {
			done = 1;
			assert_true(has_gen(a, 2));
			cow_close(a);
			break;
		}
		assert_int_equal(r, -ENOMEM);
		assert_int_equal(th_count_fds(), fds);
		if (stat(l, &st2) == 0) {
			assert_int_equal(st1.st_ino, st2.st_ino);
		} else {
			/* retired (a writable open removes the log once it
			 * is in the file), then a later step failed */
			assert_true(file_has_gen(path, 2));
			retired++;
		}
	}
	fprintf(stderr, "# %d failed opens after the log was retired\n",
		retired);
	assert_true(done);
	cleanup(path);

	new_file(path, sizeof(path));
	log_name(path, ".cowlog", l, sizeof(l));
	assert_int_equal(symlink(path, l), 0);
	done = 0;
	for (unsigned long n = 1; n < 1000 && !done; n++) {
		size_t fds = th_count_fds();
		unsigned long calls = cow__fault_calls(COW__SYS_ANY);
		int r, fired;

		cow__fault_inject(COW__SYS_ANY, n, ENOMEM, 0);
		r = cow_open(&a, path, &ro);
		fired = cow__fault_calls(COW__SYS_ANY) >= calls + n;
		cow__fault_reset();
		assert_int_equal(th_count_fds(), fds);
		if (!fired) {
			assert_int_equal(r, COW_ELOGTYPE);
			done = 1;
		} else if (r == -ELOOP) {
			eloop++;
		} else if (r != COW_ELOGTYPE) {
			/* (the log's own open failing is still a symlink) */
			assert_int_equal(r, -ENOMEM);
		}
	}
	assert_true(done);
	assert_int_equal(eloop, 1);
	cleanup(path);
	alarm(0);
}

/* A symlink at FILE.cowlog.tmp is never followed: its target keeps its
 * content, the commit is refused; a regular file left there by a crash is
 * made the log. */
static void test_tmp_symlink(void **state)
{
	char path[256], tmp[300], victim[300], got[64];
	const char text[] = "victim's content, never to be truncated";
	cow_arena *a;
	int fd;

	(void)state;
	alarm(60);
	new_file(path, sizeof(path));
	log_name(path, ".cowlog.tmp", tmp, sizeof(tmp));
	log_name(path, ".victim", victim, sizeof(victim));
	fd = open(victim, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text)), sizeof(text));
	close(fd);
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	stamp(a, 7);
	assert_int_equal(cow_commit(a, 0), COW_ELOGTYPE);
	/* the victim is untouched, the symlink is still there */
	fd = open(victim, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, got, sizeof(got)), sizeof(text));
	assert_memory_equal(got, text, sizeof(text));
	close(fd);
	assert_int_equal(readlink(tmp, got, sizeof(got)), strlen(victim));
	/* nothing changed: the changes are still private, a commit after
	 * the symlink is gone succeeds */
	assert_true(has_gen(a, 7));
	assert_int_equal(unlink(tmp), 0);
	assert_int_equal(cow_commit(a, 0), 0);
	cow_close(a);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_true(has_gen(a, 7));
	cow_close(a);
	/* a stale regular .tmp (a crash between create and rename): the
	 * commit makes it the log */
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "stale", 5), 5);
	close(fd);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	stamp(a, 8);
	assert_int_equal(cow_commit(a, 0), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	cow_close(a);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_true(has_gen(a, 8));
	cow_close(a);
	/* a log of 1 MiB is not kept as a spare (test_log_spare) */
	assert_int_equal(access(tmp, F_OK), -1);
	/* a FIFO or a directory there: refused, left alone */
	for (int k = 0; k < 2; k++) {
		make_thing(k ? K_DIR : K_FIFO, tmp, NULL);
		assert_int_equal(cow_open(&a, path, NULL), 0);
		stamp(a, 9);
		assert_int_equal(cow_commit(a, 0), COW_ELOGTYPE);
		cow_close(a);
		remove_thing(tmp);
	}
	unlink(victim);
	cleanup(path);
	alarm(0);
}

/*
 * The log stays beside the file opened by a relative path whatever the
 * working directory becomes: commits create, use and remove it there, a
 * crash is recovered from there, and nothing appears in the new cwd.
 */
static int chdir_child(void *arg)
{
	const char **dirs = arg;
	struct cow_options o = {.flags = COW_NOTHREAD};
	cow_arena *a;

	TH_CHECK(chdir(dirs[0]) == 0);
	TH_CHECK(cow_open(&a, "f", &o) == 0);
	TH_CHECK(chdir(dirs[1]) == 0);
	stamp(a, 5);
	TH_CHECK(cow_commit(a, 0) == 0);
	_exit(0); /* a crash: the log holds generation 5 */
}

static void test_log_beside_file(void **state)
{
	char d1[] = "/var/tmp/cowarena-cwd1-XXXXXX";
	char d2[] = "/var/tmp/cowarena-cwd2-XXXXXX";
	char old[PATH_MAX], path[256], l[300];
	const char *dirs[2];
	cow_arena *a;
	int fd;

	(void)state;
	alarm(60);
	assert_non_null(getcwd(old, sizeof(old)));
	assert_non_null(mkdtemp(d1));
	assert_non_null(mkdtemp(d2));
	snprintf(path, sizeof(path), "%s/f", d1);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SZ), 0);
	close(fd);

	assert_int_equal(chdir(d1), 0);
	assert_int_equal(cow_open(&a, "f", NULL), 0);
	assert_int_equal(chdir(d2), 0);
	stamp(a, 3);
	assert_int_equal(cow_commit(a, 0), 0);
	/* the log is in d1, nothing in d2 */
	assert_int_equal(access("f.cowlog", F_OK), -1);
	assert_int_equal(access("f.cowlog.tmp", F_OK), -1);
	log_name(path, ".cowlog", l, sizeof(l));
	assert_int_equal(access(l, F_OK), 0);
	stamp(a, 4);
	assert_int_equal(cow_commit(a, COW_COMMIT_ASYNC), 0);
	assert_int_equal(cow_sync(a), 0);
	cow_close(a);
	/* removed at close from d1 */
	assert_int_equal(access(l, F_OK), -1);
	assert_int_equal(access("f.cowlog", F_OK), -1);
	assert_int_equal(chdir(old), 0);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_true(has_gen(a, 4));
	cow_close(a);

	/* a crash after the chdir: the log to recover is beside the file */
	dirs[0] = d1;
	dirs[1] = d2;
	th_assert_exit0(th_in_child(chdir_child, dirs));
	snprintf(l, sizeof(l), "%s/f.cowlog", d2);
	assert_int_equal(access(l, F_OK), -1);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_true(has_gen(a, 5));
	cow_close(a);
	cleanup(path);
	assert_int_equal(rmdir(d1), 0);
	assert_int_equal(rmdir(d2), 0);
	alarm(0);
}

/*
 * A log made sparse and huge (64 GiB, its records and 1 MiB of data on
 * disk): recovery reads its data, not its holes, and replays it right.
 * The reads are counted (the fault injector's call counter): reading the
 * holes would take 65536 reads of 1 MiB per scan.
 */
static void test_sparse_log(void **state)
{
	char path[256], l[300];
	unsigned long reads;
	struct stat st;
	cow_arena *a;
	int fd;

	(void)state;
	alarm(60);
	new_file(path, sizeof(path));
	log_name(path, ".cowlog", l, sizeof(l));
	make_pending(path, 3);
	fd = open(l, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)64 << 30), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_blocks * 512 < (off_t)4 << 20);
	close(fd);
	/* the file as before the commits: only the replay brings gen 3 */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	for (size_t i = 0; i < SZ; i += PG) {
		unsigned char pg[PG];

		for (size_t j = 0; j < PG; j++)
			pg[j] = th_base_byte(TH_EXT4, i + j);
		assert_int_equal(pwrite(fd, pg, PG, (off_t)i), PG);
	}
	close(fd);
	reads = cow__fault_calls(COW__SYS_PREAD);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	reads = cow__fault_calls(COW__SYS_PREAD) - reads;
	fprintf(stderr, "# a 64 GiB sparse log: %lu reads\n", reads);
	assert_true(reads < 1000);
	assert_true(has_gen(a, 3));
	stamp(a, 4);
	assert_int_equal(cow_commit(a, 0), 0);
	cow_close(a);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_true(has_gen(a, 4));
	cow_close(a);
	/* the tool's verify reads it the same way */
	make_pending(path, 2);
	fd = open(l, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)64 << 30), 0);
	close(fd);
	{
		char err[1024];

		assert_int_equal(run_cli("verify", path, err, sizeof(err)), 0);
	}
	/* a failing SEEK_DATA fails the open, changing nothing */
	cow__fault_inject(COW__SYS_SEEK, 1, EIO, 0);
	assert_int_equal(cow_open(&a, path, NULL), -EIO);
	cow__fault_reset();
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_true(has_gen(a, 2));
	cow_close(a);
	cleanup(path);
	alarm(0);
}

/*
 * Bytes of [0, len) of the file at path that are allocated but unwritten
 * (FIEMAP_EXTENT_UNWRITTEN), or -1 where the file system has no FIEMAP.
 */
static long unwritten_bytes(const char *path, off_t len)
{
	enum { N = 64 };
	/* struct fiemap ends in its extents (a flexible array): one buffer
	 * holds it and N of them. */
	union {
		struct fiemap m;
		char b[sizeof(struct fiemap) +
		       N * sizeof(struct fiemap_extent)];
	} f;
	long n = 0;
	int fd = open(path, O_RDONLY), r;

	assert_true(fd >= 0);
	memset(&f, 0, sizeof(f));
	f.m.fm_length = (uint64_t)len;
	f.m.fm_flags = FIEMAP_FLAG_SYNC;
	f.m.fm_extent_count = N;
	r = ioctl(fd, FS_IOC_FIEMAP, &f.m);
	close(fd);
	if (r < 0)
		return -1;
	for (unsigned i = 0; i < f.m.fm_mapped_extents; i++)
		if (f.m.fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN)
			n += (long)f.m.fm_extents[i].fe_length;
	return n;
}

/*
 * The log's first MiB is written at creation (zeros, synced once), so
 * that appends there overwrite written blocks and their fdatasync flushes
 * data only: no extent to convert, no inode to write. It grows by
 * fallocate after that (nothing written that a sync must flush), doubling;
 * where the file system says EOPNOTSUPP it writes zeros instead, and a
 * failing fallocate fails the commit before its durable point, changing
 * nothing.
 */
static void test_log_fallocate(void **state)
{
	char path[256], l[300];
	unsigned long before;
	struct stat st;
	cow_arena *a;
	uint32_t gen = 1;
	long unwritten;

	(void)state;
	for (int unsupported = 0; unsupported < 2; unsupported++) {
		new_file(path, sizeof(path));
		log_name(path, ".cowlog", l, sizeof(l));
		assert_int_equal(cow_open(&a, path, NULL), 0);
		before = cow__fault_calls(COW__SYS_FALLOCATE);
		if (unsupported)
			cow__fault_inject(COW__SYS_FALLOCATE, 1, EOPNOTSUPP,
					  1);
		stamp(a, gen);
		assert_int_equal(cow_commit(a, 0), 0);
		assert_int_equal(cow__fault_calls(COW__SYS_FALLOCATE) - before,
				 0);
		assert_int_equal(stat(l, &st), 0);
		assert_int_equal(st.st_size, 1 << 20);
		unwritten = unwritten_bytes(l, 1 << 20);
		if (unwritten < 0)
			print_message("# no FIEMAP here: the log's blocks "
				      "not checked\n");
		else
			assert_int_equal(unwritten, 0);
		/* 66 KiB a commit: past 1 MiB of log, it grows to 2 MiB */
		for (int i = 0; i < 20; i++) {
			stamp(a, ++gen);
			assert_int_equal(cow_commit(a, 0), 0);
		}
		assert_int_equal(cow__fault_calls(COW__SYS_FALLOCATE) - before,
				 1);
		cow__fault_reset();
		assert_int_equal(stat(l, &st), 0);
		assert_int_equal(st.st_size, 2 << 20);
		assert_int_equal(cow_sync(a), 0);
		cow_close(a);
		assert_int_equal(cow_open(&a, path, NULL), 0);
		assert_true(has_gen(a, gen));
		cow_close(a);
		cleanup(path);
	}
	/* a failure: the commit did not happen, the next one does */
	new_file(path, sizeof(path));
	assert_int_equal(cow_open(&a, path, NULL), 0);
	for (int i = 0; i < 15; i++) {
		stamp(a, ++gen);
		assert_int_equal(cow_commit(a, 0), 0);
	}
	stamp(a, ++gen);
	cow__fault_inject(COW__SYS_FALLOCATE, 1, EIO, 0);
	assert_int_equal(cow_commit(a, 0), -EIO);
	cow__fault_reset();
	assert_true(has_gen(a, gen));
	assert_int_equal(cow_stats(a, &(struct cow_stats){0}), 0);
	assert_int_equal(cow_commit(a, 0), 0);
	cow_close(a);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_true(has_gen(a, gen));
	cow_close(a);
	cleanup(path);
}

/*
 * A clean close keeps the blocks of a log that grew past its first MiB:
 * the log, its header zeroed, is renamed to FILE.cowlog.tmp (the spare),
 * and the next open's log is made from it (the same inode and length: no
 * block to allocate or convert); a smaller log is removed as it was.
 * What it held never validates in the new log (a new salt): a crash of
 * the next open replays only its own transactions. A spare longer than a
 * ring of 32 MiB is cut to it; a FIFO at the spare's name is left alone
 * (the log is removed instead); a close whose steps fail in turn keeps
 * the content (replayed by the next open where the log stayed), and one
 * that cannot keep the spare removes the log.
 */
static void test_log_spare(void **state)
{
	const off_t ring_max = COW__WAL_AREA + (32 << 20);
	char path[256], l[300], tmp[300];
	char zeros[2 * COW__WAL_SLOT] = {0}, head[sizeof(zeros)];
	struct stat st, sp;
	int fd, unlinked = 0, done = 0;
	cow_arena *a;

	(void)state;
	alarm(120);
	new_file(path, sizeof(path));
	log_name(path, ".cowlog", l, sizeof(l));
	log_name(path, ".cowlog.tmp", tmp, sizeof(tmp));
	assert_int_equal(cow_open(&a, path, NULL), 0);
	stamp(a, 100);
	assert_int_equal(cow_commit(a, 0), 0);
	assert_int_equal(cow_close(a), 0);
	assert_int_equal(access(l, F_OK), -1);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	for (uint32_t g = 101; g <= 140; g++) {
		stamp(a, g);
		assert_int_equal(cow_commit(a, 0), 0);
	}
	assert_int_equal(stat(l, &st), 0);
	assert_int_equal(cow_close(a), 0);
	assert_int_equal(access(l, F_OK), -1);
	assert_int_equal(stat(tmp, &sp), 0);
	assert_int_equal(sp.st_ino, st.st_ino);
	assert_int_equal(sp.st_size, st.st_size);
	assert_true(sp.st_size >= 2 << 20); /* 40 commits of 66 KiB */
	fd = open(tmp, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, head, sizeof(head), 0), sizeof(head));
	close(fd);
	assert_memory_equal(head, zeros, sizeof(head));

	/* the next log is the spare; a crash replays its own only */
	make_pending(path, 3);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(stat(l, &st), 0);
	assert_int_equal(st.st_ino, sp.st_ino);
	assert_int_equal(st.st_size, sp.st_size);
	/* its first 2 MiB written blocks: none to convert at a sync */
	if (unwritten_bytes(l, 2 << 20) < 0)
		print_message("# no FIEMAP here: the spare's blocks not "
			      "checked\n");
	else
		assert_int_equal(unwritten_bytes(l, 2 << 20), 0);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_true(has_gen(a, 3));
	assert_int_equal(cow_close(a), 0);
	/* the open that replayed it kept it as the spare again */
	assert_int_equal(access(l, F_OK), -1);
	assert_int_equal(stat(tmp, &st), 0);
	assert_int_equal(st.st_ino, sp.st_ino);

	/* longer than the ring: cut when it is made a log, and a log made
	 * longer (by hand here; by a transaction larger than the ring
	 * otherwise) is cut when it is kept */
	assert_int_equal(truncate(tmp, 64 << 20), 0);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	stamp(a, 4);
	assert_int_equal(cow_commit(a, 0), 0);
	assert_int_equal(stat(l, &st), 0);
	assert_int_equal(st.st_size, ring_max);
	assert_int_equal(truncate(l, 64 << 20), 0);
	assert_int_equal(cow_close(a), 0);
	assert_int_equal(stat(tmp, &st), 0);
	assert_int_equal(st.st_size, ring_max);

	/* a FIFO at the spare's name: never replaced, the log goes */
	assert_int_equal(cow_open(&a, path, NULL), 0);
	stamp(a, 5);
	assert_int_equal(cow_commit(a, 0), 0);
	assert_int_equal(mkfifo(tmp, 0600), 0);
	assert_int_equal(cow_close(a), 0);
	assert_int_equal(access(l, F_OK), -1);
	assert_int_equal(lstat(tmp, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(unlink(tmp), 0);

	/* every step of the close failing in turn */
	for (unsigned long n = 1; n < 200 && !done; n++) {
		unsigned long calls;

		assert_int_equal(cow_open(&a, path, NULL), 0);
		stamp(a, 10 + (uint32_t)n);
		assert_int_equal(cow_commit(a, 0), 0);
		calls = cow__fault_calls(COW__SYS_ANY);
		cow__fault_inject(COW__SYS_ANY, n, EIO, 0);
		assert_int_equal(cow_close(a), 0);
		done = cow__fault_calls(COW__SYS_ANY) < calls + n;
		cow__fault_reset();
		/* a failed write or sync leaves the log for the next open;
		 * a failure to keep it removes it */
		unlinked += access(l, F_OK) != 0 && access(tmp, F_OK) != 0;
		assert_int_equal(cow_open(&a, path, NULL), 0);
		assert_true(has_gen(a, 10 + (uint32_t)n));
		assert_int_equal(cow_close(a), 0);
	}
	assert_true(done);
	/* some failure made the close remove the log instead */
	assert_true(unlinked > 0);
	cleanup(path);
	alarm(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_log_not_regular),
	    cmocka_unit_test(test_log_open_faults),
	    cmocka_unit_test(test_tmp_symlink),
	    cmocka_unit_test(test_log_beside_file),
	    cmocka_unit_test(test_sparse_log),
	    cmocka_unit_test(test_log_fallocate),
	    cmocka_unit_test(test_log_spare),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
