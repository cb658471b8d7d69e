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
#include "../src/testhooks.h"
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
	off_t last = COW__WAL_AREA + 2 * TXBYTES - 64; /* tx 2's record */
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
			poke(path, COW__WAL_AREA + TXBYTES + 100, 1, -1);
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
	poke(path, COW__WAL_AREA + 64 + 10, 1, -1); /* tx 1, page 0 */
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

/*
 * A version-1 log (linear, one header) as the library before the ring
 * wrote it: transactions 1..n stamping gen g, then the frames of one more
 * without its commit record (torn). Returns the offset of each
 * transaction's first record in at[].
 */
static void write_v1_log(const char *path, unsigned n, off_t *at)
{
	struct cow__wal_hdr1 h = {.version = 1, .page_size = PG};
	unsigned char *page = malloc(PG), sector[COW__WAL_HDR1] = {0};
	char l[300];
	struct stat st;
	off_t off = COW__WAL_HDR1;
	int fd;

	assert_int_equal(stat(path, &st), 0);
	memcpy(h.magic, COW__WAL_MAGIC, 8);
	h.salt = 0x1234567887654321ull;
	h.dev = (uint64_t)st.st_dev;
	h.ino = (uint64_t)st.st_ino;
	h.start_seq = 1;
	h.sum = XXH3_64bits(&h, offsetof(struct cow__wal_hdr1, sum));
	memcpy(sector, &h, sizeof(h));
	log_name(path, l, sizeof(l));
	fd = open(l, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, sector, sizeof(sector), 0),
			 sizeof(sector));
	for (unsigned g = 1; g <= n + 1; g++) {
		struct cow__wal_commit c = {.magic = COW__WAL_COMMIT_MAGIC};
		uint64_t chain = cow__wal_chain_start(h.salt, g);

		at[g - 1] = off;
		memset(page, (int)g, PG);
		for (size_t i = 0; i < TXPAGES; i++) {
			struct cow__wal_frame f = {
			    .magic = COW__WAL_FRAME_MAGIC,
			    .page_size = PG,
			    .seq = g,
			    .page = pages[i]};

			cow__wal_frame_seal(&f, h.salt, page, PG);
			chain = cow__wal_chain(chain, f.sum);
			assert_int_equal(pwrite(fd, &f, sizeof(f), off),
					 sizeof(f));
			assert_int_equal(pwrite(fd, page, PG, off + 64), PG);
			off += 64 + PG;
		}
		if (g > n)
			break; /* torn: no commit record */
		c.seq = g;
		c.nframes = TXPAGES;
		c.size = SZ;
		c.file_len = SZ;
		c.synced_end = (uint64_t)at[g - 1]; /* durable before it */
		c.frames_sum = chain;
		cow__wal_commit_seal(&c, h.salt);
		assert_int_equal(pwrite(fd, &c, sizeof(c), off), sizeof(c));
		off += 64;
	}
	close(fd);
	free(page);
}

/*
 * A version-1 log left by a crash of the library before the ring is
 * replayed (its complete transactions, not the torn one) and retired; the
 * next commit makes a version-2 log. Damage in it that a later record
 * says was durable is COW_ECORRUPT, as before.
 */
static void test_v1_replay(void **state)
{
	struct cow__wal_hdr h;
	struct cow_stats st;
	char path[256], l[300];
	off_t at[4];
	cow_arena *a;
	int fd;

	(void)state;
	new_file(path, sizeof(path));
	log_name(path, l, sizeof(l));
	write_v1_log(path, 3, at);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_true(has_gen(a, 3));
	assert_int_equal(access(l, F_OK), -1);
	assert_int_equal(cow_stats(a, &st), 0);
	assert_int_equal(st.commit_seq_durable, 3);
	stamp(a, 5);
	assert_int_equal(cow_commit(a, 0), 0);
	fd = open(l, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &h, sizeof(h), 0), sizeof(h));
	close(fd);
	assert_int_equal(h.version, COW__WAL_VERSION);
	cow_close(a);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_true(has_gen(a, 5));
	cow_close(a);
	/* tx 1 damaged; tx 3's record says the log was durable past it */
	unbase(path);
	write_v1_log(path, 3, at);
	poke(path, at[0] + 64 + 10, 1, -1);
	assert_int_equal(cow_open(&a, path, NULL), COW_ECORRUPT);
	cleanup(path);
}

/*
 * Many commits through a small ring (64 KiB; a transaction takes 20 KiB
 * of it): the checkpoints write the two header slots in turn, each with
 * the next generation, the head moves laps past the log's start, the file
 * stays the size of the ring, and a crash (the child dies without
 * closing) replays from that head.
 */
static void test_ring_slots(void **state)
{
	struct cow__wal_hdr h[2];
	struct cow__wal_info info;
	char path[256], l[300];
	struct stat st;
	cow_arena *a;
	int fd, newer;

	(void)state;
	new_file(path, sizeof(path));
	cow__commit_ckpt_bytes(16 << 10);
	make_pending(path, 40);
	cow__commit_ckpt_bytes(0);
	log_name(path, l, sizeof(l));
	fd = open(l, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, h, sizeof(h[0]), 0), sizeof(h[0]));
	assert_int_equal(pread(fd, &h[1], sizeof(h[1]), COW__WAL_SLOT),
			 sizeof(h[1]));
	assert_int_equal(cow__wal_scan(fd, PG, NULL, &info, NULL, NULL), 0);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(h[i].version, COW__WAL_VERSION);
		assert_int_equal(h[i].ring, COW__WAL_RING_MIN);
		assert_int_equal(h[i].gen % 2, (uint64_t)!i); /* 1, 3.. */
	}
	newer = h[1].gen > h[0].gen;
	assert_true(h[newer].gen == h[!newer].gen + 1);
	assert_true(h[newer].gen >= 10);
	assert_true(h[newer].head_pos > h[!newer].head_pos);
	assert_true(h[newer].head_pos >= 2 * COW__WAL_RING_MIN);
	assert_int_equal(info.head, h[newer].head_pos);
	assert_int_equal(info.start_seq, h[newer].head_seq);
	assert_int_equal(info.last_seq, 40);
	assert_true(st.st_size <= (off_t)(COW__WAL_AREA + COW__WAL_RING_MIN));
	unbase(path);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	assert_true(has_gen(a, 40));
	cow_close(a);
	cleanup(path);
}

/*
 * A transaction larger than the ring (16 pages, 65 KiB, in a ring of 64
 * KiB): the checkpoint that empties the log grows the ring to twice the
 * transaction, and the transaction is then appended and replayed whole.
 */
static void test_ring_grows(void **state)
{
	struct cow__wal_info info;
	char path[256], l[300];
	const unsigned char *p;
	cow_arena *a;
	pid_t pid;
	int fd, status, ok = 1;

	(void)state;
	new_file(path, sizeof(path));
	cow__commit_ckpt_bytes(16 << 10);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct cow_options o = {.flags = COW_NOTHREAD};

		if (cow_open(&a, path, &o))
			_exit(2);
		stamp(a, 1);
		if (cow_commit(a, 0))
			_exit(3);
		memset(cow_base(a), 2, SZ);
		if (cow_commit(a, 0))
			_exit(3);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	cow__commit_ckpt_bytes(0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	log_name(path, l, sizeof(l));
	fd = open(l, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(cow__wal_scan(fd, PG, NULL, &info, NULL, NULL), 0);
	close(fd);
	assert_int_equal(info.ring, 2 * (NPG * (64 + PG) + 64));
	assert_int_equal(info.ntx, 1);
	assert_int_equal(info.last_seq, 2);
	unbase(path);
	assert_int_equal(cow_open(&a, path, NULL), 0);
	p = cow_base(a);
	for (size_t i = 0; i < SZ; i++)
		ok &= p[i] == 2;
	cow_close(a);
	assert_true(ok);
	cleanup(path);
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
	img = malloc(1 << 17);
	m = malloc(1 << 17);
	n = pread(fd, img, 1 << 17, 0);
	close(fd);
	assert_true(n > (ssize_t)(COW__WAL_AREA + 3 * TXBYTES));
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
		cmocka_unit_test(test_v1_replay),
		cmocka_unit_test(test_ring_slots),
		cmocka_unit_test(test_ring_grows),
		cmocka_unit_test(test_parse_mutations),
		cmocka_unit_test(test_enospc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
