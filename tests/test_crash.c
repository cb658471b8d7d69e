// SPDX-License-Identifier: MIT
/*
 * Crash atomicity (invariant 3) by kill sweep: a child commits in a loop,
 * stamping a generation number into every page, and reports each commit
 * that returned through a pipe; it is SIGKILLed at a random instant. The
 * reopened file must hold one generation on every page, no older than the
 * last one reported.
 *
 * The sweeps run synchronous and asynchronous commits, with growth, with
 * COW_NOSYNC and COW_NOTHREAD, through checkpoints, recoveries and a
 * changed directory: over 1000 kills in all (each sweep prints its
 * count). One sweep aims at the window a synchronous commit opens: it
 * returns at its durable point, before its pages are written in place,
 * and the child kills itself right there.
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
#include "../src/sys.h"
#include "../src/testhooks.h"
#include "../src/wal.h"

#define PG 4096UL
#define NPG 16
#define SZ (NPG * PG)
#define MAXSZ (4 * SZ) /* the grow sweep's largest arena */

/* What a sweep's child does (bits). */
enum {
	M_ASYNC = 1,	/* asynchronous commits, every third one synced */
	M_GROW = 2,	/* grows the arena by a page every fourth commit */
	M_NOSYNC = 4,	/* opens with COW_NOSYNC */
	M_NOTHREAD = 8, /* opens with COW_NOTHREAD */
	M_WINDOW = 16,	/* kills itself right after a synchronous commit
			   returned with its in-place writes pending, and
			   reports only those commits */
	M_LONG = 32,	/* killed after 8 reported commits and up to
			   20 ms more: the log's ring wrapped several times */
	M_MANY = 64,	/* with M_WINDOW: only once the log holds three
			   commits or more past its head (they wait for
			   one apply that writes the newest image of each
			   page for all) */
	M_STREAM = 128, /* each commit writes one page, a different one
			   each time (generation g: page g mod SNPG of a
			   larger arena): earlier commits' pages wait,
			   unchanged, for an apply of a batch of them;
			   killed mostly after 24 reported commits */
	M_SPARE = 256,	/* the file starts with a spare (the blocks of a
			   log of 1.3 MiB an earlier close kept, holding its
			   records): every child's log is made from one */
	M_AGAIN = 512,	/* after every second commit, the next io_uring
			   submission takes only its first entry (the
			   others fail with -EAGAIN, unrun): applies,
			   checkpoints and syncs so cut run again, a commit
			   whose log write was cut is made again */
};

#define SNPG 64 /* pages of the M_STREAM arena */

/* Had the log's ring wrapped when the child was killed: its head lies a
 * lap or more past the log's start? */
static int log_wrapped(const char *path)
{
	struct cow__wal_info info;
	char log[300];
	int fd, r;

	snprintf(log, sizeof(log), "%s.cowlog", path);
	fd = open(log, O_RDONLY);
	if (fd < 0)
		return 0;
	r = cow__wal_scan(fd, PG, NULL, &info, NULL, NULL);
	close(fd);
	return r == 0 && info.present && info.ring &&
	       info.head >= info.ring;
}

static void stamp_all(cow_arena *a, uint32_t gen)
{
	uint32_t *p = cow_base(a);

	for (size_t i = 0; i < cow_size(a) / 4; i++)
		p[i] = gen;
}

/*
 * The one generation on every word, or -1 if they differ. A grown arena
 * may end in zeros: cow_grow() extends the file at once, so a crash
 * before the growth's commit leaves the file longer; those pages hold
 * zeros, after every page of the commit.
 */
static long long read_gen(cow_arena *a)
{
	const uint32_t *p = cow_base(a);
	size_t n = cow_size(a) / 4, i;

	for (i = 1; i < n && p[i] == p[0]; i++)
		;
	if (i >= SZ / 4 && i % (PG / 4) == 0)
		while (i < n && p[i] == 0)
			i++;
	if (i < n) {
		fprintf(stderr, "# word %zu: %u, word 0: %u\n", i, p[i], p[0]);
		return -1;
	}
	return p[0];
}

/*
 * M_STREAM: generation g wrote page g mod SNPG alone, so after the commits
 * up to G each page holds the newest generation up to G that wrote it (0
 * if none did). Returns G, or -1 if a page holds anything else (two
 * values, or a generation that is not its newest one up to G: a mix).
 */
static long long read_stream_gen(cow_arena *a)
{
	const uint32_t *p = cow_base(a);
	uint32_t g = 0;

	for (size_t q = 0; q < SNPG; q++) {
		for (size_t i = 1; i < PG / 4; i++)
			if (p[q * PG / 4 + i] != p[q * PG / 4]) {
				fprintf(stderr, "# page %zu torn\n", q);
				return -1;
			}
		if (p[q * PG / 4] > g)
			g = p[q * PG / 4];
	}
	for (size_t q = 0; q < SNPG; q++) {
		uint32_t want = g >= q ? g - (g - q) % SNPG : 0;

		if (p[q * PG / 4] != want) {
			fprintf(stderr, "# page %zu: %u, not %u (newest %u)\n",
				q, p[q * PG / 4], want, g);
			return -1;
		}
	}
	return g;
}

static void stamp_page(cow_arena *a, size_t page, uint32_t gen)
{
	uint32_t *p = (uint32_t *)cow_base(a) + page * PG / 4;

	for (size_t i = 0; i < PG / 4; i++)
		p[i] = gen;
}

/* cow_commit; with M_AGAIN, a commit (or an asynchronous one's error,
 * reported by the next call) that failed with -EAGAIN made again, up to 8
 * times, and after every second generation's the next submission cut. */
static int commit_again(cow_arena *a, unsigned flags, unsigned mode,
			uint32_t gen)
{
	int r;

	for (int tries = 0;; tries++) {
		r = cow_commit(a, flags);
		if (r != -EAGAIN || !(mode & M_AGAIN) || tries == 8)
			break;
	}
	/* the next submission: mostly the ring's own (an apply, a
	 * checkpoint, the log write of asynchronous commits), or the next
	 * commit's log write */
	if ((mode & M_AGAIN) && gen % 2)
		cow__fault_uring_take(1);
	return r;
}

/* cow_sync; with M_AGAIN, an asynchronous commit's -EAGAIN (its log
 * write cut: its pages are dirty still) is followed by a commit of them
 * again and another sync, up to 8 times. */
static int sync_again(cow_arena *a, unsigned mode)
{
	int r = cow_sync(a);

	for (int tries = 0; r == -EAGAIN && (mode & M_AGAIN) && tries < 8;
	     tries++) {
		r = cow_commit(a, COW_COMMIT_ASYNC);
		if (r == 0)
			r = cow_sync(a);
	}
	return r;
}

/* The child: commits generations from gen on, forever (see M_*); only
 * durable generations are reported. With away, it opens the file by its
 * name relative to its directory, then changes to directory away: the log
 * must stay beside the file. */
static void child(const char *path, uint32_t gen, int fd, unsigned mode,
		  const char *away)
{
	struct cow_options o = {0};
	int async = !!(mode & M_ASYNC);
	cow_arena *a;

	if (mode & M_NOSYNC)
		o.flags |= COW_NOSYNC;
	if (mode & M_NOTHREAD)
		o.flags |= COW_NOTHREAD;

	if (away) {
		char dir[256];
		const char *slash = strrchr(path, '/');

		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
		if (chdir(dir))
			_exit(6);
		path = slash + 1;
	}
	if (cow_open(&a, path, &o))
		_exit(2);
	if (away && chdir(away))
		_exit(6);
	for (;; gen++) {
		if ((mode & M_GROW) && gen % 4 == 0 && cow_size(a) < MAXSZ &&
		    cow_grow(a, cow_size(a) + PG))
			_exit(7);
		if (mode & M_STREAM)
			stamp_page(a, gen % SNPG, gen);
		else
			stamp_all(a, gen);
		if (!async) {
			struct cow_stats st;

			if (commit_again(a, 0, mode, gen))
				_exit(3);
			if ((mode & M_WINDOW) && !cow_stats(a, &st) &&
			    st.commit_pending_bytes &&
			    (!(mode & M_MANY) || st.log_bytes >= 3 * SZ)) {
				/* durable, not yet in place: report, die */
				if (write(fd, &gen, sizeof(gen)) != sizeof(gen))
					_exit(5);
				kill(getpid(), SIGKILL);
			}
			if (mode & M_WINDOW)
				continue; /* only window commits reported */
		} else {
			if (commit_again(a, COW_COMMIT_ASYNC, mode, gen))
				_exit(3);
			if (gen % 3)
				continue;
			if (sync_again(a, mode))
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

static void sweep_in(unsigned mode, int rounds, int recovery, const char *away)
{
	char path[256], tmp[300];
	uint32_t gen = 1, first = 1;
	int progressed = 0, ahead = 0, in_recovery = 0, retired = 0;
	int window = 0, wrapped = 0, spared = 0;
	cow_arena *a;
	int fd;

	fd = th_make_file(TH_EXT4, mode & M_STREAM ? SNPG * PG : SZ, path,
			  sizeof(path));
	assert_true(fd >= 0);
	close(fd);
	/* Start from generation 0 on every page. */
	assert_int_equal(cow_open(&a, path, NULL), 0);
	for (uint32_t g = 1000; (mode & M_SPARE) && g < 1020; g++) {
		stamp_all(a, g);
		assert_int_equal(cow_commit(a, 0), 0);
	}
	stamp_all(a, 0);
	assert_int_equal(cow_commit(a, 0), 0);
	cow_close(a);
	snprintf(tmp, sizeof(tmp), "%s.cowlog.tmp", path);
	assert_int_equal(access(tmp, F_OK), (mode & M_SPARE) ? 0 : -1);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int i = 0; i < rounds; i++) {
		int p[2], status;
		uint32_t got, last = 0;
		long long g;
		pid_t pid;

		/* the blocks of the log the last open kept: the child's
		 * log is made from them */
		spared += access(tmp, F_OK) == 0;
		assert_int_equal(pipe(p), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child(path, gen, p[1], mode, away);
		}
		close(p[1]);
		/* Mostly after the child's first commit returned (so the kill
		 * lands in a later one), sometimes anywhere in its start. */
		if (i % 8 && read(p[0], &got, sizeof(got)) == sizeof(got))
			last = got;
		/* M_LONG: after several reported commits, however slow the
		 * build (the log has gone round its ring by then) */
		for (int k = 1; (mode & M_LONG) && k < 8; k++)
			if (read(p[0], &got, sizeof(got)) == sizeof(got))
				last = got;
		/* M_STREAM: past the first batches of waiting pages (16
		 * commits or more), whose applies and drops the kill
		 * then lands among */
		for (int k = 1; (mode & M_STREAM) && i % 8 && k < 24; k++)
			if (read(p[0], &got, sizeof(got)) == sizeof(got))
				last = got;
		usleep((useconds_t)(rand() % (mode & M_LONG ? 20000 :
					      i % 8	    ? 3000 :
							      8000)));
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		wrapped += log_wrapped(path);
		while (read(p[0], &got, sizeof(got)) == sizeof(got))
			last = got;
		close(p[0]);
		if (recovery)
			in_recovery += kill_recovery(path, &retired);
		assert_int_equal(cow_open(&a, path, NULL), 0);
		g = mode & M_STREAM ? read_stream_gen(a) : read_gen(a);
		window += (mode & M_WINDOW) && last >= gen;
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
		/* M_STREAM goes on right after the commit found, so that
		 * every generation up to it wrote its page (a lost one is
		 * written again) */
		if (mode & M_STREAM)
			gen = (uint32_t)g + 1;
		else
			gen = (uint32_t)(g > (long long)gen ? g : gen) + 1;
	}
	fprintf(stderr, "# %d kills, %d after a durable commit, %d found a "
		"newer commit than reported, %u generations\n", rounds,
		progressed, ahead, gen - first);
	if (mode & M_SPARE) {
		/* The recovering open keeps the child's log as the spare
		 * again (it grew past 1 MiB), unless it was killed too. */
		fprintf(stderr, "# %d children made their log from a "
			"spare\n", spared);
		assert_true(spared >= rounds / 2);
	}
	if (recovery)
		fprintf(stderr, "# %d of them killed a recovering open "
			"before it returned, %d after it had removed the "
			"log\n",
			in_recovery, retired);
	if (mode & M_WINDOW) {
		/* Most children die in the window: the file had the commit
		 * in its log only, and the reopen replayed it. */
		fprintf(stderr,
			"# %d of them right after a commit returned "
			"with its in-place writes pending%s\n",
			window, mode & M_MANY ? ", and two commits' before" : "");
		assert_true(window >= rounds / 2);
	}
	if (mode & M_LONG) {
		/* Most kills land after the ring wrapped (and its head
		 * moved past a lap): the reopen replayed from a head in
		 * the middle of the ring. */
		fprintf(stderr, "# %d of them after the log's ring "
			"wrapped\n", wrapped);
		assert_true(wrapped >= rounds / 3);
	}
	/* The sweep must have hit commits in flight, not only start-up. */
	assert_true(progressed >= rounds / 2);
	unlink(path);
	snprintf(tmp, sizeof(tmp), "%s.cowlog", path);
	unlink(tmp);
	snprintf(tmp, sizeof(tmp), "%s.cowlog.tmp", path);
	unlink(tmp);
}

static void sweep(unsigned mode, int rounds, int recovery)
{
	sweep_in(mode, rounds, recovery, NULL);
}

/* Opened by a relative path, then chdir() elsewhere: the log is still
 * created, used, reset and removed beside the file (and recovered from
 * there by the parent, which opens the file by its absolute path);
 * nothing appears in the directory the child moved to. */
static void sweep_away(unsigned mode, int rounds)
{
	char away[] = "/var/tmp/cowarena-away-XXXXXX";

	assert_non_null(mkdtemp(away));
	sweep_in(mode, rounds, 0, away);
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
	sweep(M_ASYNC, 150, 0);
}

/* Growth committed with the pages (the commit record's size). */
static void test_kill_sweep_grow(void **state)
{
	(void)state;
	sweep(M_GROW, 60, 0);
	sweep(M_GROW | M_ASYNC, 40, 0);
}

/* A process crash keeps what COW_NOSYNC wrote (the page cache stays). */
static void test_kill_sweep_nosync(void **state)
{
	(void)state;
	sweep(M_NOSYNC, 60, 0);
	sweep(M_NOSYNC | M_ASYNC, 40, 0);
}

/* Without the reaping thread: the caller's calls advance the I/O. */
static void test_kill_sweep_nothread(void **state)
{
	(void)state;
	sweep(M_NOTHREAD, 60, 0);
	sweep(M_NOTHREAD | M_ASYNC, 40, 0);
}

/* Killed between the durable point and the in-place writes, on purpose:
 * with and without the reaping thread (without it nothing reaps the
 * writes before the kill), growing too; and with three commits or more
 * logged and waiting for the one apply that writes them all. */
static void test_kill_sweep_window(void **state)
{
	(void)state;
	sweep(M_WINDOW, 40, 0);
	sweep(M_WINDOW | M_NOTHREAD | M_GROW, 40, 1);
	sweep(M_WINDOW | M_MANY, 40, 0);
	sweep(M_WINDOW | M_MANY | M_NOTHREAD, 40, 1);
}

/* Each commit writes a different page: the pages of earlier commits wait
 * unchanged for an apply of a batch of them, then the next commit drops
 * them; synchronous and asynchronous, with and without the thread. */
static void test_kill_sweep_stream(void **state)
{
	(void)state;
	sweep(M_STREAM, 60, 0);
	sweep(M_STREAM | M_ASYNC, 60, 0);
	sweep(M_STREAM | M_NOTHREAD, 30, 0);
	sweep(M_STREAM | M_ASYNC | M_NOTHREAD, 30, 1);
}

/* Submissions cut short (M_AGAIN), with a small log: the applies,
 * checkpoints and syncs the ring did not take run again, and kills land
 * among them. */
static void test_kill_sweep_again(void **state)
{
	(void)state;
	cow__commit_ckpt_bytes(200 << 10);
	sweep(M_AGAIN, 60, 0);
	sweep(M_AGAIN | M_ASYNC, 40, 0);
	cow__commit_ckpt_bytes(0);
}

/* With a small log: kills land in checkpoints (base sync, log reset). */
static void test_kill_sweep_ckpt(void **state)
{
	(void)state;
	cow__commit_ckpt_bytes(200 << 10);
	sweep(0, 100, 0);
	sweep(M_ASYNC, 100, 0);
	cow__commit_ckpt_bytes(0);
}

/* Across many checkpoints and wraps of the log's ring (96 KiB, a commit of
 * 16 pages takes 65 KiB of it), and with the arena growing past the
 * ring: the checkpoint that empties the log grows the ring. */
static void test_kill_sweep_wrap(void **state)
{
	(void)state;
	cow__commit_ckpt_bytes(48 << 10);
	sweep(M_LONG, 60, 0);
	sweep(M_LONG | M_ASYNC, 60, 0);
	sweep(M_LONG | M_GROW, 30, 0);
	cow__commit_ckpt_bytes(0);
}

/* Long log writes (a write per frame, at most 4 entries linked into a
 * chain): the writes go unlinked and the log's sync waits for them all. */
static void test_kill_sweep_long_log(void **state)
{
	(void)state;
	cow__commit_log_split(2, 4);
	sweep(M_ASYNC, 80, 0);
	sweep(M_ASYNC | M_NOTHREAD, 40, 0);
	sweep(M_NOSYNC | M_ASYNC, 30, 0);
	cow__commit_log_split(0, 0);
}

/* Kills during the recovery of the next open (replay, sync, the log's
 * retirement) lose nothing either. */
static void test_kill_sweep_recovery(void **state)
{
	(void)state;
	sweep(0, 60, 1);
	sweep(M_ASYNC, 40, 1);
}

/* Every child's log is made from the spare the last open kept, whose
 * blocks hold the records of earlier logs (their salt another): a kill
 * anywhere, in the child or in a recovering open, replays none of them. */
static void test_kill_sweep_spare(void **state)
{
	(void)state;
	sweep(M_SPARE, 60, 0);
	sweep(M_SPARE | M_ASYNC, 40, 1);
}

static void test_kill_sweep_chdir(void **state)
{
	(void)state;
	sweep_away(0, 100);
	cow__commit_ckpt_bytes(200 << 10);
	sweep_away(M_ASYNC, 60);
	cow__commit_ckpt_bytes(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kill_sweep_sync),
	    cmocka_unit_test(test_kill_sweep_async),
	    cmocka_unit_test(test_kill_sweep_grow),
	    cmocka_unit_test(test_kill_sweep_nosync),
	    cmocka_unit_test(test_kill_sweep_nothread),
	    cmocka_unit_test(test_kill_sweep_window),
	    cmocka_unit_test(test_kill_sweep_stream),
	    cmocka_unit_test(test_kill_sweep_ckpt),
	    cmocka_unit_test(test_kill_sweep_wrap),
	    cmocka_unit_test(test_kill_sweep_long_log),
	    cmocka_unit_test(test_kill_sweep_recovery),
	    cmocka_unit_test(test_kill_sweep_chdir),
	    cmocka_unit_test(test_kill_sweep_spare),
	    cmocka_unit_test(test_kill_sweep_again),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
