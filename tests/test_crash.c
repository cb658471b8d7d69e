// SPDX-License-Identifier: MIT
/*
 * Crash atomicity (invariant 3) by kill sweep: a child commits in a loop,
 * stamping a generation number into every page, and reports each commit
 * that returned through a pipe; it is SIGKILLed at a random instant. The
 * reopened file must hold one generation on every page, no older than the
 * last one reported.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "../src/testhooks.h"

#define PG 4096UL
#define NPG 16
#define SZ (NPG * PG)

static void stamp_all(cow_arena *a, uint32_t gen)
{
	uint32_t *p = cow_base(a);

	for (size_t i = 0; i < SZ / 4; i++)
		p[i] = gen;
}

/* The one generation on every word, or -1 if they differ. */
static long long read_gen(cow_arena *a)
{
	const uint32_t *p = cow_base(a);

	for (size_t i = 1; i < SZ / 4; i++)
		if (p[i] != p[0]) {
			fprintf(stderr, "# word %zu: %u, word 0: %u\n", i,
				p[i], p[0]);
			return -1;
		}
	return p[0];
}

/* The child: commits generations from gen on, forever. With async, each
 * commit is asynchronous and every third is followed by cow_sync; only
 * synced generations are reported. With away, it opens the file by its
 * name relative to its directory, then changes to directory away: the log
 * must stay beside the file. */
static void child(const char *path, uint32_t gen, int fd, int async,
		  const char *away)
{
	cow_arena *a;

	if (away) {
		char dir[256];
		const char *slash = strrchr(path, '/');

		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
		if (chdir(dir))
			_exit(6);
		path = slash + 1;
	}
	if (cow_open(&a, path, NULL))
		_exit(2);
	if (away && chdir(away))
		_exit(6);
	for (;; gen++) {
		stamp_all(a, gen);
		if (!async) {
			if (cow_commit(a, 0))
				_exit(3);
		} else {
			if (cow_commit(a, COW_COMMIT_ASYNC))
				_exit(3);
			if (gen % 3)
				continue;
			if (cow_sync(a))
				_exit(4);
		}
		if (write(fd, &gen, sizeof(gen)) != sizeof(gen))
			_exit(5);
	}
}

/*
 * A second child opens the file the first left with a pending log, which
 * replays and retires the log, and is killed at a random instant too: in
 * the replay, the base's sync, the log's invalidation, or after. Returns
 * whether the kill landed before the open returned.
 */
static int kill_recovery(const char *path, int *retired)
{
	char log[300];
	int p[2], status;
	char c = 0;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		cow_arena *a;

		close(p[0]);
		if (cow_open(&a, path, NULL))
			_exit(2);
		if (write(p[1], &c, 1) != 1)
			_exit(5);
		pause();
		_exit(0);
	}
	close(p[1]);
	usleep((useconds_t)(rand() % 12000));
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	c = read(p[0], &c, 1) == 1;
	close(p[0]);
	snprintf(log, sizeof(log), "%s.cowlog", path);
	*retired += access(log, F_OK) != 0;
	return !c;
}

static void sweep_in(int async, int rounds, int recovery, const char *away)
{
	char path[256], tmp[300];
	uint32_t gen = 1, first = 1;
	int progressed = 0, ahead = 0, in_recovery = 0, retired = 0;
	cow_arena *a;
	int fd;

	fd = th_make_file(TH_EXT4, SZ, path, sizeof(path));
	assert_true(fd >= 0);
	close(fd);
	/* Start from generation 0 on every page. */
	assert_int_equal(cow_open(&a, path, NULL), 0);
	stamp_all(a, 0);
	assert_int_equal(cow_commit(a, 0), 0);
	cow_close(a);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int i = 0; i < rounds; i++) {
		int p[2], status;
		uint32_t got, last = 0;
		long long g;
		pid_t pid;

		assert_int_equal(pipe(p), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child(path, gen, p[1], async, away);
		}
		close(p[1]);
		/* Mostly after the child's first commit returned (so the kill
		 * lands in a later one), sometimes anywhere in its start. */
		if (i % 8 && read(p[0], &got, sizeof(got)) == sizeof(got))
			last = got;
		usleep((useconds_t)(rand() % (i % 8 ? 3000 : 8000)));
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		while (read(p[0], &got, sizeof(got)) == sizeof(got))
			last = got;
		close(p[0]);
		if (recovery)
			in_recovery += kill_recovery(path, &retired);
		assert_int_equal(cow_open(&a, path, NULL), 0);
		g = read_gen(a);
		assert_true(g >= 0);
		if (g < (long long)last)
			fprintf(stderr, "# round %d: gen %lld < reported %u\n",
				i, g, last);
		assert_true(g >= (long long)last);
		/* nothing newer than what the child could have committed */
		assert_true(last == 0 || g <= (long long)last + 3);
		cow_close(a);
		progressed += g >= (long long)gen;
		ahead += g > (long long)last;
		gen = (uint32_t)(g > (long long)gen ? g : gen) + 1;
	}
	fprintf(stderr, "# %d kills, %d after a durable commit, %d found a "
		"newer commit than reported, %u generations\n", rounds,
		progressed, ahead, gen - first);
	if (recovery)
		fprintf(stderr, "# %d of them killed a recovering open "
			"before it returned, %d after it had removed the "
			"log\n", in_recovery, retired);
	/* The sweep must have hit commits in flight, not only start-up. */
	assert_true(progressed >= rounds / 2);
	unlink(path);
	snprintf(tmp, sizeof(tmp), "%s.cowlog", path);
	unlink(tmp);
	snprintf(tmp, sizeof(tmp), "%s.cowlog.tmp", path);
	unlink(tmp);
}

static void sweep(int async, int rounds, int recovery)
{
	sweep_in(async, rounds, recovery, NULL);
}

/* Opened by a relative path, then chdir() elsewhere: the log is still
 * created, used, reset and removed beside the file (and recovered from
 * there by the parent, which opens the file by its absolute path);
 * nothing appears in the directory the child moved to. */
static void sweep_away(int async, int rounds)
{
	char away[] = "/var/tmp/cowarena-away-XXXXXX";

	assert_non_null(mkdtemp(away));
	sweep_in(async, rounds, 0, away);
	assert_int_equal(rmdir(away), 0); /* empty */
}

static void test_kill_sweep_sync(void **state)
{
	(void)state;
	sweep(0, 200, 0);
}

static void test_kill_sweep_async(void **state)
{
	(void)state;
	sweep(1, 150, 0);
}

/* With a small log: kills land in checkpoints (base sync, log reset). */
static void test_kill_sweep_ckpt(void **state)
{
	(void)state;
	cow__commit_ckpt_bytes(200 << 10);
	sweep(0, 100, 0);
	sweep(1, 100, 0);
	cow__commit_ckpt_bytes(0);
}

/* Kills during the recovery of the next open (replay, sync, the log's
 * retirement) lose nothing either. */
static void test_kill_sweep_recovery(void **state)
{
	(void)state;
	sweep(0, 60, 1);
	sweep(1, 40, 1);
}

static void test_kill_sweep_chdir(void **state)
{
	(void)state;
	sweep_away(0, 100);
	cow__commit_ckpt_bytes(200 << 10);
	sweep_away(1, 60);
	cow__commit_ckpt_bytes(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_sweep_sync),
		cmocka_unit_test(test_kill_sweep_async),
		cmocka_unit_test(test_kill_sweep_ckpt),
		cmocka_unit_test(test_kill_sweep_recovery),
		cmocka_unit_test(test_kill_sweep_chdir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
