// SPDX-License-Identifier: MIT
/*
 * The cowarena tool behaves like a Unix tool: -h/--help, -V/--version,
 * "--" ends the options, an unknown option is named in the error (exit 2),
 * output that cannot be written is an error (exit 1), `info` and `verify`
 * read a file that a writer holds without its lock, an empty file and a
 * log that is not a regular file get a clear message, and an installed
 * copy (no benchmark programs beside it) does not offer `bench`, and
 * `snap info` and `snap verify` describe and check snapshot files.
 *
 * Runs the tool built beside this test (BUILD/cowarena) in a child, its
 * output captured in memfds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define PG 4096UL
#define MAXARGS 8

static char tool[PATH_MAX];   /* BUILD/cowarena */
static char dir[512];         /* scratch directory, the children's cwd */
static char out[65536], err[65536];

struct run {
	const char *stdout_path; /* NULL: captured into out */
	const char *exe;	 /* NULL: tool */
	const char *argv[MAXARGS];
};

static void read_back(int fd, char *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = 0;
	close(fd);
}

/* Runs the tool in dir with argv (NULL-terminated, without argv[0]);
 * returns its exit status, or -1 if it did not exit (a signal: the
 * alarm fires after 20 s, for a tool that hangs). */
static int run_tool(const struct run *r)
{
	int ofd = memfd_create("out", 0), efd = memfd_create("err", 0);
	const char *exe = r->exe ? r->exe : tool;
	char *argv[MAXARGS + 2];
	int st, n = 0;
	pid_t pid;

	assert_true(ofd >= 0 && efd >= 0);
	argv[n++] = (char *)"cowarena";
	for (int i = 0; i < MAXARGS && r->argv[i]; i++)
		argv[n++] = (char *)r->argv[i];
	argv[n] = NULL;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int o = r->stdout_path ? open(r->stdout_path, O_WRONLY) : ofd;

		if (o < 0 || dup2(o, 1) < 0 || dup2(efd, 2) < 0 || chdir(dir))
			_exit(126);
		unsetenv("COWARENA_BENCH_DIR");
		alarm(20);
		execv(exe, argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	read_back(ofd, out, sizeof(out));
	read_back(efd, err, sizeof(err));
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define RUN(...) run_tool(&(struct run){.argv = {__VA_ARGS__, NULL}})
#define RUN_TO(path, ...)                                             \
	run_tool(&(struct run){.stdout_path = (path),                 \
			       .argv = {__VA_ARGS__, NULL}})

/* Makes dir/name of size bytes (0: empty); returns its path. */
static const char *make_file(const char *name, size_t size, char *path)
{
	int fd;

	snprintf(path, PATH_MAX, "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
	return path;
}

static int setup(void **state)
{
	char exe[1024];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	(void)state;
	if (n <= 0)
		return -1;
	exe[n] = 0;
	/* BUILD/tests/test_cli -> BUILD/cowarena */
	slash = strrchr(exe, '/');
	*slash = 0;
	slash = strrchr(exe, '/');
	*slash = 0;
	snprintf(tool, sizeof(tool), "%s/cowarena", exe);
	if (access(tool, X_OK)) {
		fprintf(stderr, "# %s: not built\n", tool);
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s/cli.XXXXXX", th_dir(TH_EXT4));
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? -1 : 0;
}

static void test_help(void **state)
{
	(void)state;
	assert_int_equal(RUN("--help"), 0);
	assert_non_null(strstr(out, "usage: cowarena"));
	assert_string_equal(err, "");
	assert_int_equal(RUN("-h"), 0);
	assert_non_null(strstr(out, "usage: cowarena"));
	assert_int_equal(RUN("help"), 0);
	assert_non_null(strstr(out, "usage: cowarena"));
	/* Each command's own help, on stdout, exit 0. */
	assert_int_equal(RUN("info", "--help"), 0);
	assert_non_null(strstr(out, "usage: cowarena info"));
	assert_int_equal(RUN("verify", "-h"), 0);
	assert_non_null(strstr(out, "usage: cowarena verify"));
	assert_int_equal(RUN("recover", "--help"), 0);
	assert_non_null(strstr(out, "usage: cowarena recover"));
	/* No command: usage on stderr, exit 2. */
	assert_int_equal(RUN(NULL), 2);
	assert_string_equal(out, "");
	assert_non_null(strstr(err, "usage: cowarena"));
}

static void test_version(void **state)
{
	char want[64];

	(void)state;
	snprintf(want, sizeof(want), "cowarena %s\n", cow_version());
	assert_int_equal(RUN("--version"), 0);
	assert_string_equal(out, want);
	assert_int_equal(RUN("-V"), 0);
	assert_string_equal(out, want);
	assert_int_equal(RUN("version"), 0);
	assert_string_equal(out, want);
	assert_string_equal(err, "");
}

static void test_unknown_option(void **state)
{
	char path[PATH_MAX];

	(void)state;
	make_file("f", PG, path);
	assert_int_equal(RUN("--bogus"), 2);
	assert_non_null(strstr(err, "unknown option '--bogus'"));
	assert_string_equal(out, "");
	assert_int_equal(RUN("-x", "info", path), 2);
	assert_non_null(strstr(err, "unknown option '-x'"));
	assert_int_equal(RUN("info", "--nope", path), 2);
	assert_non_null(strstr(err, "unknown option '--nope'"));
	assert_string_equal(out, "");
	assert_int_equal(RUN("verify", "-q", path), 2);
	assert_non_null(strstr(err, "unknown option '-q'"));
	assert_int_equal(RUN("bench", "--dir"), 2);
	assert_non_null(strstr(err, "'--dir' needs an argument"));
	assert_int_equal(RUN("frob"), 2);
	assert_non_null(strstr(err, "unknown command 'frob'"));
	/* Operands: one FILE exactly. */
	assert_int_equal(RUN("info"), 2);
	assert_non_null(strstr(err, "FILE missing"));
	assert_int_equal(RUN("info", path, path), 2);
	assert_int_equal(RUN("version", "extra"), 2);
}

static void test_double_dash(void **state)
{
	char path[PATH_MAX];

	(void)state;
	make_file("-f", 3 * PG, path);
	/* Without "--" the name is taken for an option... */
	assert_int_equal(RUN("info", "-f"), 2);
	assert_non_null(strstr(err, "unknown option '-f'"));
	/* ... with it, as the file. */
	assert_int_equal(RUN("info", "--", "-f"), 0);
	assert_non_null(strstr(out, "file:       -f\n"));
	assert_non_null(strstr(out, "12288 bytes"));
	assert_int_equal(RUN("verify", "--", "-f"), 0);
	assert_non_null(strstr(out, "-f: sound (no log)"));
	/* "--" before the command ends the tool's own options. */
	assert_int_equal(RUN("--", "info", "--", "-f"), 0);
	assert_int_equal(RUN("--", "--version"), 2);
	assert_non_null(strstr(err, "unknown command '--version'"));
}

static void test_stdout_full(void **state)
{
	char path[PATH_MAX];

	(void)state;
	if (access("/dev/full", W_OK)) {
		skip(); /* no /dev/full in this container */
		return;
	}
	make_file("g", PG, path);
	assert_int_equal(RUN_TO("/dev/full", "--version"), 1);
	assert_non_null(strstr(err, "write error"));
	assert_int_equal(RUN_TO("/dev/full", "--help"), 1);
	assert_non_null(strstr(err, "write error"));
	assert_int_equal(RUN_TO("/dev/full", "info", path), 1);
	assert_non_null(strstr(err, "write error"));
	assert_int_equal(RUN_TO("/dev/full", "verify", path), 1);
	/* A usage error keeps its own status. */
	assert_int_equal(RUN_TO("/dev/full", "--bogus"), 2);
}

/* A writer holds the file (its exclusive lock) and has committed: info and
 * verify read it anyway, recover says who holds it. */
static void test_info_locked(void **state)
{
	struct cow_options o = {.flags = COW_NOTHREAD | COW_NOSYNC};
	char path[PATH_MAX];
	unsigned char *p;
	cow_arena *a;

	(void)state;
	make_file("held", 16 * PG, path);
	assert_int_equal(cow_open(&a, path, &o), 0);
	p = cow_base(a);
	p[0] = 1;
	p[5 * PG] = 2;
	assert_int_equal(cow_commit(a, 0), 0);

	assert_int_equal(RUN("info", path), 0);
	assert_non_null(strstr(out, "65536 bytes (16 pages of 4096)"));
	assert_non_null(strstr(out, "held by:    a writable arena"));
	assert_non_null(strstr(out, "log:        "));
	assert_string_equal(err, "");
	assert_int_equal(RUN("verify", path), 0);
	assert_non_null(strstr(out, ": sound"));
	assert_int_equal(RUN("recover", path), 1);
	assert_non_null(strstr(err, "held by another arena"));
	/* The writer still works, and was never disturbed. */
	p[PG] = 3;
	assert_int_equal(cow_commit(a, 0), 0);
	assert_int_equal(cow_close(a), 0);

	assert_int_equal(RUN("info", path), 0);
	assert_non_null(strstr(out, "held by:    no arena"));
	assert_non_null(strstr(out, "log:        none"));
}

static void test_info_empty(void **state)
{
	char path[PATH_MAX];

	(void)state;
	make_file("empty", 0, path);
	assert_int_equal(RUN("info", path), 0);
	assert_non_null(strstr(out, "size:       0 bytes (empty"));
	assert_string_equal(err, "");
	assert_int_equal(RUN("info", dir), 1);
	assert_non_null(strstr(err, "not a regular file (a directory)"));
	assert_int_equal(RUN("info", "missing-file"), 1);
	assert_non_null(strstr(err, "missing-file: No such file"));
}

/* A FIFO where the log goes: a clear error, and no hang on its open. */
static void test_info_fifo_log(void **state)
{
	char path[PATH_MAX], log[PATH_MAX + 8];

	(void)state;
	make_file("piped", PG, path);
	snprintf(log, sizeof(log), "%s.cowlog", path);
	assert_int_equal(mkfifo(log, 0600), 0);
	assert_int_equal(RUN("info", path), 1);
	assert_non_null(strstr(err, "the log is a FIFO, not a regular file"));
	assert_int_equal(RUN("verify", path), 1);
	assert_non_null(strstr(err, "the log is a FIFO"));
	assert_int_equal(RUN("recover", path), 1);
	assert_non_null(strstr(err, "the log is a FIFO"));
	unlink(log);
	assert_int_equal(mkdir(log, 0700), 0);
	assert_int_equal(RUN("info", path), 1);
	assert_non_null(strstr(err, "the log is a directory"));
	rmdir(log);
}

/* A copy of the tool with no benchmark programs beside it, as `make
 * install` leaves it: bench is not offered. */
static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* snap info and snap verify on snapshot files, sound and damaged. */
static void test_snap(void **state)
{
	char path[PATH_MAX], snap[PATH_MAX], full[PATH_MAX], zeros[PATH_MAX];
	unsigned char *p;
	cow_arena *a;
	cow_snap *s;

	(void)state;
	make_file("snapbase", 16 * PG, path);
	snprintf(snap, sizeof(snap), "%s/s.snap", dir);
	snprintf(full, sizeof(full), "%s/f.snap", dir);
	snprintf(zeros, sizeof(zeros), "%s/z.snap", dir);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	p = cow_base(a);
	p[0] = p[5 * PG] = p[9 * PG] = 7;
	assert_int_equal(cow_snapshot(a, &s), 0);
	assert_int_equal(cow_snap_save(s, snap, 0), 0);
	assert_int_equal(cow_snap_save(s, full, COW_SNAP_FULL), 0);
	assert_int_equal(cow_close(a), 0);
	assert_int_equal(cow_open_anon(&a, 4 * PG, NULL), 0);
	assert_int_equal(cow_snapshot(a, &s), 0);
	assert_int_equal(cow_snap_save(s, zeros, 0), 0);
	assert_int_equal(cow_close(a), 0);

	assert_int_equal(RUN("snap", "info", snap), 0);
	assert_non_null(strstr(out, "version 1"));
	assert_non_null(strstr(out, "65536 bytes (16 pages of 4096)"));
	assert_non_null(strstr(out, "3 saved (those that differ"));
	assert_non_null(strstr(out, "base:       a file: device"));
	assert_string_equal(err, "");
	assert_int_equal(RUN("snap", "info", "--", full), 0);
	assert_non_null(strstr(out, "16 saved (every page"));
	assert_int_equal(RUN("snap", "info", zeros), 0);
	assert_non_null(strstr(out, "base:       zeros"));
	assert_int_equal(RUN("snap", "verify", snap), 0);
	assert_non_null(strstr(out, ": sound: 3 pages"));
	assert_int_equal(RUN("snap", "verify", full), 0);

	/* a damaged page: info reads the header only, verify finds it */
	flip_byte(snap, 2 * PG + 100);
	assert_int_equal(RUN("snap", "info", snap), 0);
	assert_int_equal(RUN("snap", "verify", snap), 1);
	assert_non_null(strstr(err, "damaged"));
	assert_string_equal(out, "");
	/* a damaged header: both; an unknown version */
	flip_byte(full, 40);
	assert_int_equal(RUN("snap", "info", full), 1);
	assert_int_equal(RUN("snap", "verify", full), 1);
	flip_byte(full, 40);
	flip_byte(full, 8);
	assert_int_equal(RUN("snap", "verify", full), 1);
	assert_non_null(strstr(err, "unknown format version"));
	assert_int_equal(RUN("snap", "verify", path), 1); /* not one */
	assert_int_equal(RUN("snap", "verify", "missing.snap"), 1);
	assert_non_null(strstr(err, "No such file"));

	/* usage */
	assert_int_equal(RUN("snap", "-h"), 0);
	assert_non_null(strstr(out, "usage: cowarena snap info"));
	assert_int_equal(RUN("snap", "verify", "--help"), 0);
	assert_int_equal(RUN("snap"), 2);
	assert_non_null(strstr(err, "info or verify missing"));
	assert_int_equal(RUN("snap", "check", snap), 2);
	assert_non_null(strstr(err, "unknown command 'check'"));
	assert_int_equal(RUN("snap", "info"), 2);
	assert_non_null(strstr(err, "FILE missing"));
	assert_int_equal(RUN("snap", "info", snap, full), 2);
	assert_int_equal(RUN("snap", "info", "-x", snap), 2);
	assert_non_null(strstr(err, "unknown option '-x'"));
}

static void test_bench_installed(void **state)
{
	char bin[600], exe[700], cmd[2 * PATH_MAX];

	(void)state;
	snprintf(bin, sizeof(bin), "%s/bin", dir);
	assert_int_equal(mkdir(bin, 0755), 0);
	snprintf(exe, sizeof(exe), "%s/cowarena", bin);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", tool, exe);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(run_tool(&(struct run){.exe = exe,
						.argv = {"--help", NULL}}),
			 0);
	assert_non_null(strstr(out, "usage: cowarena"));
	assert_null(strstr(out, "bench"));
	assert_int_equal(run_tool(&(struct run){.exe = exe,
						.argv = {"bench", NULL}}),
			 2);
	assert_non_null(strstr(err, "bench is not available here"));
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_unknown_option),
		cmocka_unit_test(test_double_dash),
		cmocka_unit_test(test_stdout_full),
		cmocka_unit_test(test_info_locked),
		cmocka_unit_test(test_info_empty),
		cmocka_unit_test(test_info_fifo_log),
		cmocka_unit_test(test_snap),
		cmocka_unit_test(test_bench_installed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
