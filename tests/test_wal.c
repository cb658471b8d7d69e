// SPDX-License-Identifier: MIT
/*
 * The write-ahead log: replay on open, torn and zeroed tails, corruption in
 * the middle, foreign and unknown logs, read-only opens, the parser on
 * mutated input, and ENOSPC while appending (on a small tmpfs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "helpers.h"
#include "../src/wal.h"

#define PG 4096UL
#define NPG 16
#define SZ (NPG * PG)
#define TXPAGES 5
#define TXBYTES (TXPAGES * (64 + PG) + 64)

static const size_t pages[TXPAGES] = {0, 1, 5, 9, 15};

static void stamp(cow_arena *a, unsigned gen)
{
	unsigned char *p = cow_base(a);

	for (size_t i = 0; i < TXPAGES; i++)
		memset(p + pages[i] * PG, (int)gen, PG);
}

/* Every stamped page holds gen (gen 0: the base pattern). */
static int has_gen(cow_arena *a, unsigned gen)
{
	unsigned char *p = cow_base(a);

	for (size_t i = 0; i < TXPAGES; i++)
		for (size_t j = 0; j < PG; j++) {
			unsigned char want = gen ? (unsigned char)gen :
						   th_base_byte(TH_EXT4,
								pages[i] * PG +
									j);
			if (p[pages[i] * PG + j] != want)
				return 0;
		}
	return 1;
}

/* A child commits generations 1..n and dies without closing: with
 * COW_NOTHREAD nothing resets the log, so it keeps all n. */
static void make_pending(const char *path, unsigned n)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct cow_options o = {.flags = COW_NOTHREAD};
		cow_arena *a;

		if (cow_open(&a, path, &o))
			_exit(2);
		for (unsigned g = 1; g <= n; g++) {
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

static void log_name(const char *path, char *out, size_t len)
{
	snprintf(out, len, "%s.cowlog", path);
}

static int new_file(char *path, size_t len)
{
	int fd = th_make_file(TH_EXT4, SZ, path, len);

	assert_true(fd >= 0);
	close(fd);
	return 0;
}

static void cleanup(const char *path)
{
	char l[300];

	log_name(path, l, sizeof(l));
	unlink(l);
	unlink(path);
}

static void unbase(const char *path)
{
	unsigned char *buf = malloc(SZ);
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	th_base_ref(TH_EXT4, buf, SZ);
	assert_int_equal(pwrite(fd, buf, SZ, 0), SZ);
	close(fd);
	free(buf);
}

static void test_replay(void **state)
{
	struct cow_options ro = {.flags = COW_READONLY};
	struct cow_stats st;
	char path[256], l[300];
	cow_arena *a;

	(void)state;
	new_file(path, sizeof(path));
	make_pending(path, 3);
	unbase(path);
	log_name(path, l, sizeof(l));
	assert_int_equal(access(l, F_OK), 0);
	assert_int_equal(cow_open(&a, path, &ro), COW_ERECOVER);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_true(has_gen(a, 3));
	assert_int_equal(cow_stats(a, &st), 0);
	assert_int_equal(st.commit_seq_durable, 3);
	/* sequence numbers go on */
	stamp(a, 4);
	assert_int_equal(cow_commit(a, 0), 0);
	assert_int_equal(cow_stats(a, &st), 0);
	assert_int_equal(st.commit_seq_durable, 4);
	cow_close(a);
	assert_int_equal(access(l, F_OK), -1);
	assert_int_equal(cow_open(&a, path, &ro), 0);
	assert_true(has_gen(a, 4));
	cow_close(a);
	cleanup(path);
}

/* Writes byte over the first stamped page from outside the library. */
static void write_outside(const char *path, int byte)
{
	unsigned char buf[PG];
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	memset(buf, byte, sizeof(buf));
	assert_int_equal(pwrite(fd, buf, PG, (off_t)(pages[0] * PG)), PG);
	close(fd);
}

/* The open (read-only and writable) sees the outside write, not gen. */
static void check_outside(const char *path, int byte)
{
	struct cow_options ro = {.flags = COW_READONLY};
	const unsigned char *p;
	cow_arena *a;

	for (int rw = 0; rw < 2; rw++) {
		int ok;

		assert_int_equal(cow_open(&a, path, rw ? NULL : &ro), 0);
		p = cow_base(a);
		ok = p[pages[0] * PG] == byte &&
		     p[pages[0] * PG + PG - 1] == byte &&
		     p[pages[1] * PG] == 3; /* the rest: gen 3 */
		cow_close(a);
		assert_true(ok);
	}
}

/*
 * A replayed log is retired by the open that replayed it, without a
 * commit: it is gone after the close, read-only opens work, and a change
 * made to the file from outside afterwards is never overwritten by the
 * old transactions.
 */
static void test_replay_retires(void **state)
{
	char path[256], l[300];
	cow_arena *a;
	int ok, gone;

	(void)state;
	new_file(path, sizeof(path));
	make_pending(path, 3);
	log_name(path, l, sizeof(l));
	assert_int_equal(cow_open(&a, path, NULL), 0);
	ok = has_gen(a, 3);
	gone = access(l, F_OK) == -1; /* at once, not at the close */
	cow_close(a);
	assert_true(ok);
	assert_true(gone);
	assert_int_equal(access(l, F_OK), -1);
	write_outside(path, 0xab);
	check_outside(path, 0xab);
	cleanup(path);
}

/* The CLI next to the test programs (build/cowarena for build/tests/). */
static void cli_path(char *out, size_t len)
{
	char exe[256];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	assert_true(n > 0);
	exe[n] = 0;
	for (int i = 0; i < 2; i++) {
		slash = strrchr(exe, '/');
		assert_non_null(slash);
		*slash = 0;
	}
	snprintf(out, len, "%s/cowarena", exe);
	if (access(out, X_OK))
		fprintf(stderr, "# %s: missing (make all builds it)\n", out);
	assert_int_equal(access(out, X_OK), 0);
}

/* Runs `cowarena recover path`; returns its exit status and output. */
static int run_recover(const char *path, char *out, size_t len)
{
	char cli[300], cmd[700];
	size_t n;
	FILE *f;

	cli_path(cli, sizeof(cli));
	snprintf(cmd, sizeof(cmd), "'%s' recover '%s' 2>&1", cli, path);
	f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(out, 1, len - 1, f);
	out[n] = 0;
	return pclose(f);
}

/* The same through `cowarena recover`, which says "log removed" only when
 * it is. */
static void test_recover_cli(void **state)
{
	char path[256], l[300], out[1024];
	int status;

	(void)state;
	new_file(path, sizeof(path));
	make_pending(path, 3);
	log_name(path, l, sizeof(l));
	status = run_recover(path, out, sizeof(out));
	fprintf(stderr, "# %s", out);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_non_null(strstr(out, "replayed 3 transactions; log removed"));
	assert_int_equal(access(l, F_OK), -1);
	write_outside(path, 0xcd);
	check_outside(path, 0xcd);
	/* nothing left to do */
	status = run_recover(path, out, sizeof(out));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_non_null(strstr(out, "nothing to recover"));
	cleanup(path);
}

/* Overwrites len bytes of the log at off with byte (or flips one). */
static void poke(const char *path, off_t off, size_t len, int byte)
{
	char l[300];
	unsigned char buf[64];
	int fd;

	log_name(path, l, sizeof(l));
	fd = open(l, O_RDWR);
	assert_true(fd >= 0);
	assert_true(len <= sizeof(buf));
	if (byte < 0) {
		assert_int_equal(pread(fd, buf, 1, off), 1);
		buf[0] ^= 0x40;
	} else {
		memset(buf, byte, len);
	}
	assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

/* The last transaction's tail torn (zeroed or garbage): the one before. */
static void test_torn_tail(void **state)
{
	off_t last = COW__WAL_HDR + 2 * TXBYTES - 64; /* tx 2's record */
	char path[256];
	cow_arena *a;

	(void)state;
	for (int v = 0; v < 3; v++) {
		new_file(path, sizeof(path));
		make_pending(path, 2);
		if (v == 0)
			poke(path, last, 64, 0);
		else if (v == 1)
			poke(path, last, 64, 0x5a);
		else
			poke(path, COW__WAL_HDR + TXBYTES + 100, 1, -1);
		/* As if the in-place writes never reached the disk: the
		 * file gets its first content back, the log replays tx 1. */
		unbase(path);
		assert_int_equal(cow_open(&a, path, NULL), 0);
		assert_true(has_gen(a, 1));
		cow_close(a);
		cleanup(path);
	}
}

/* Damage in a record that a later one says was durable. */
static void test_corrupt_middle(void **state)
{
	char path[256];
	struct stat st1, st2;
	cow_arena *a;

	(void)state;
	new_file(path, sizeof(path));
	make_pending(path, 3);
	poke(path, COW__WAL_HDR + 64 + 10, 1, -1); /* tx 1, page 0 */
	assert_int_equal(stat(path, &st1), 0);
	assert_int_equal(cow_open(&a, path, NULL), COW_ECORRUPT);
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st1.st_mtim.tv_nsec, st2.st_mtim.tv_nsec);
	/* a damaged header */
	poke(path, 0, 1, -1);
	assert_int_equal(cow_open(&a, path, NULL), COW_ECORRUPT);
	cleanup(path);
}

static void test_foreign_version(void **state)
{
	char p1[256], p2[256], l1[300], l2[300];
	struct cow__wal_hdr h;
	cow_arena *a;
	int fd;

	(void)state;
	new_file(p1, sizeof(p1));
	new_file(p2, sizeof(p2));
	make_pending(p1, 2);
	log_name(p1, l1, sizeof(l1));
	log_name(p2, l2, sizeof(l2));
	/* p1's log beside p2 */
	assert_int_equal(link(l1, l2), 0);
	assert_int_equal(cow_open(&a, p2, NULL), COW_EFOREIGN);
	/* a file created anew ignores the log of the one that was there */
	{
		struct cow_options co = {.flags = COW_CREATE, .size = SZ};

		unlink(p2);
		assert_int_equal(cow_open(&a, p2, &co), 0);
		assert_int_equal(access(l2, F_OK), -1);
		cow_close(a);
	}
	unlink(l2);
	/* an unknown version */
	fd = open(l1, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &h, sizeof(h), 0), sizeof(h));
	h.version = 99;
	h.sum = XXH3_64bits(&h, offsetof(struct cow__wal_hdr, sum));
	assert_int_equal(pwrite(fd, &h, sizeof(h), 0), sizeof(h));
	close(fd);
	assert_int_equal(cow_open(&a, p1, NULL), COW_EVERSION);
	cleanup(p1);
	cleanup(p2);
}

/* The parser on mutated logs: any answer but a crash. */
static void test_parse_mutations(void **state)
{
	char path[256], l[300];
	unsigned char *img, *m;
	struct cow__wal_info info;
	ssize_t n;
	int fd;

	(void)state;
	new_file(path, sizeof(path));
	make_pending(path, 3);
	log_name(path, l, sizeof(l));
	fd = open(l, O_RDONLY);
	assert_true(fd >= 0);
	img = malloc(1 << 16);
	m = malloc(1 << 16);
	n = pread(fd, img, 1 << 16, 0);
	close(fd);
	assert_true(n > (ssize_t)(COW__WAL_HDR + 3 * TXBYTES));
	assert_int_equal(cow__wal_parse_buf(img, (size_t)n, PG, &info), 0);
	assert_int_equal(info.ntx, 3);
	srand(7);
	for (int i = 0; i < 3000; i++) {
		size_t len = (size_t)n - (size_t)(rand() % 64 ? 0 : rand() % n);
		int r;

		memcpy(m, img, (size_t)n);
		for (int k = rand() % 4; k >= 0; k--)
			m[rand() % n] = (unsigned char)rand();
		r = cow__wal_parse_buf(m, len, PG, &info);
		assert_true(r == 0 || r == COW_ECORRUPT ||
			    r == COW_EFOREIGN || r == COW_EVERSION);
		assert_true(info.ntx <= 3);
	}
	free(img);
	free(m);
	cleanup(path);
}

/*
 * ENOSPC while appending the log, on a 6 MiB tmpfs mounted in a new user
 * and mount namespace: the commit fails cleanly, the previous commit
 * stays the base, and once there is room again the commit succeeds.
 */
static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);

	if (fd >= 0) {
		/* best effort: the mount below tells */
		ssize_t n = write(fd, text, strlen(text));

		(void)n;
		close(fd);
	}
}

static int enospc_child(void)
{
	const char *dir = "/tmp/cowarena-enospc";
	char path[300], filler[300];
	static char buf[1 << 16];
	struct cow_options o = {.flags = COW_CREATE, .size = 2 << 20};
	unsigned char *p;
	cow_arena *a;
	int fd, r;

	uid_t uid = getuid();
	gid_t gid = getgid();

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS))
		return 77;
	/* Map ourselves, or files could not be created (EOVERFLOW). */
	snprintf(path, sizeof(path), "0 %u 1", (unsigned)uid);
	write_file("/proc/self/uid_map", path);
	write_file("/proc/self/setgroups", "deny");
	snprintf(path, sizeof(path), "0 %u 1", (unsigned)gid);
	write_file("/proc/self/gid_map", path);
	mkdir(dir, 0700);
	if (mount("none", dir, "tmpfs", 0, "size=6m"))
		return 77;
	snprintf(path, sizeof(path), "%s/arena", dir);
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	/* Every page of the file allocated first: on a full tmpfs a fault on
	 * a hole of the mapping would fail (SIGBUS). */
	fd = open(path, O_RDWR | O_CREAT, 0600);
	memset(buf, 7, sizeof(buf));
	for (size_t off = 0; off < o.size; off += sizeof(buf))
		if (pwrite(fd, buf, sizeof(buf), (off_t)off) != sizeof(buf))
			return 19;
	close(fd);
	r = cow_open(&a, path, &o);
	if (r) {
		fprintf(stderr, "# open: %s\n", cow_strerror(r));
		return 10;
	}
	p = cow_base(a);
	p[0] = 1;
	if (cow_commit(a, 0)) /* creates the log: 1 MiB */
		return 11;
	fd = open(filler, O_RDWR | O_CREAT, 0600);
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	memset(p, 2, o.size); /* 512 pages: the log must grow */
	r = cow_commit(a, 0);
	if (r != -ENOSPC) {
		fprintf(stderr, "# commit on a full tmpfs: %s\n",
			cow_strerror(r));
		return 12;
	}
	if (p[0] != 2 || p[o.size - 1] != 2)
		return 13;
	cow_close(a);
	if (cow_open(&a, path, NULL))
		return 14;
	p = cow_base(a);
	if (p[0] != 1 || p[4096] != 7)
		return 15;
	memset(p, 2, o.size);
	close(fd);
	unlink(filler);
	if (cow_commit(a, 0))
		return 16;
	cow_close(a);
	if (cow_open(&a, path, NULL))
		return 17;
	p = cow_base(a);
	r = p[0] == 2 && p[o.size - 1] == 2 ? 0 : 18;
	cow_close(a);
	return r;
}

static void test_enospc(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(enospc_child());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77) {
		fprintf(stderr, "# unshare(CLONE_NEWUSER|CLONE_NEWNS) or the "
				"tmpfs mount is not allowed here: skipped\n");
		skip();
	}
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_replay_retires),
		cmocka_unit_test(test_recover_cli),
		cmocka_unit_test(test_torn_tail),
		cmocka_unit_test(test_corrupt_middle),
		cmocka_unit_test(test_foreign_version),
		cmocka_unit_test(test_parse_mutations),
		cmocka_unit_test(test_enospc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
