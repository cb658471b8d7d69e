// SPDX-License-Identifier: MIT
/*
 * Area 4, durable commit of k pages of 4 KiB.
 *
 * Every contender holds the same 64 MiB of pages in its own file in the
 * same directory, and one transaction writes the same bytes: k pages
 * spread evenly, each stamped with the transaction's number. Timed: the
 * whole transaction, from the first write into the contender's memory to
 * the return of its commit.
 *  - cowarena: stores into the arena, cow_commit(a, 0) (durable) or
 *    cow_commit(a, COW_COMMIT_ASYNC) (returns once captured);
 *  - LMDB: one write transaction of k mdb_put of 4 KiB values, default
 *    (durable) flags;
 *  - SQLite: WAL mode, synchronous=FULL, BEGIN, k UPDATEs of 4 KiB blobs,
 *    COMMIT;
 *  - floor: pwrite of the k pages in place + one fdatasync;
 *  - floor, sequential: one pwrite of the k pages side by side + one
 *    fdatasync;
 *  - floor, log record: one pwrite of as many bytes as cowarena's log
 *    record of k pages (k frames of a 64-byte header and a page, and a
 *    64-byte commit record), appended to a file written in full
 *    beforehand, as the log is + one fdatasync: what a commit that
 *    returns once its log record is durable cannot beat.
 * Checks: each commit's pages read back with the stamp (LMDB, SQLite,
 * pread of the floor file); cowarena has no dirty pages left after a
 * commit, and after each row the arena is closed, the file must show the
 * last commit's stamps, and the arena is opened again (each row starts
 * with no page mapped but those it writes).
 *
 * Second table: throughput, n commits then one final sync (cow_sync; LMDB
 * with MDB_NOSYNC then mdb_env_sync; SQLite with synchronous=NORMAL then
 * a FULL checkpoint; pwrite without sync then one fdatasync). Its last row
 * writes a different page in each commit, as a transactional buffer does
 * more often than rewriting the same page: commit j of a contender's
 * sequence writes page (j * VARY_STRIDE) mod npages, the same pages in the
 * same order for every contender, and each run goes on where the
 * contender's previous run stopped (so no run rewrites a page an earlier
 * run wrote). After each run every page it wrote is checked for the run's
 * last stamp there (cowarena: pread of the file after cow_sync).
 *
 * The rows of the README's headline table come from both tables.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "cowarena.h"

#define SEED 0x5eed0004u

enum { C_SYNC, C_ASYNC, C_LMDB, C_SQLITE, C_FLOOR, C_SEQ, C_LOG, NC };
static const char *const names[NC] = {
    "cowarena commit",
    "cowarena async commit (return)",
    "LMDB",
    "SQLite WAL FULL",
    "floor: pwrite in place + fdatasync",
    "floor: one sequential pwrite + fdatasync",
    "floor: one pwrite of the log record + fdatasync",
};
#define LOG_HDR 64    /* a log frame's header, and a commit record */
#define VARY_STRIDE 7 /* pages between two commits' pages, odd: all differ */

struct ctx {
	size_t size, npages, pg, k;
	uint64_t gen;	  /* transaction number, stamped into each page */
	uint64_t cow_gen; /* the last one cowarena committed */
	int nosync;	  /* throughput table: sync once at the end */
	size_t ncommits;
	size_t staged_k;  /* buf holds the pattern of these k pages */
	int vary;	  /* one page a commit, a different one each time */
	size_t vidx;	  /* vary: the commit's index in its sequence */
	size_t vnext[NC]; /* vary: each contender's next index */
	char cowpath[4096];
	cow_arena *a;
	MDB_env *env;
	MDB_dbi dbi;
	sqlite3 *db;
	sqlite3_stmt *upd, *sel;
	int ffd, sfd, lfd; /* floor files: in place, sequential, log */
	off_t lend;	   /* where the next log record goes in lfd */
	char *buf;	   /* k pages staged for pwrite/mdb_put/sqlite */
	char *rec;	   /* the log record of the k pages */
};

static size_t page_of(const struct ctx *x, size_t i)
{
	if (x->vary)
		return x->vidx * VARY_STRIDE % x->npages;
	return bench_spread(i, x->k, x->npages);
}

/* The page image of page p in transaction gen: pattern + stamp. With
 * vary the pattern stays the first page's (a fill of 4 KiB per commit
 * would be timed for the peers, not for cowarena's stores of the stamp):
 * the bytes written per commit are as many, only their pattern differs. */
static void stage(struct ctx *x)
{
	if (x->staged_k != x->k) {
		for (size_t i = 0; i < x->k; i++)
			bench_fill_at(x->buf + i * x->pg, page_of(x, i), SEED);
		x->staged_k = x->k;
	}
	for (size_t i = 0; i < x->k; i++)
		memcpy(x->buf + i * x->pg, &x->gen, sizeof(x->gen));
}

static int stamp_ok(const void *page, uint64_t gen)
{
	uint64_t v;

	memcpy(&v, page, sizeof(v));
	return v == gen;
}

/* --- setup of each contender's copy of the pages --- */

static void setup_cow(struct ctx *x)
{
	struct cow_options o = {.flags = COW_CREATE, .size = x->size};
	int fd, r;

	fd = bench_tmpfile("cow", x->cowpath, sizeof(x->cowpath));
	bench_write_file(fd, x->npages, SEED);
	BENCH_CHECK(fsync(fd) == 0, "fsync");
	close(fd);
	r = cow_open(&x->a, x->cowpath, &o);
	BENCH_CHECK(r == 0, "cow_open: %s", cow_strerror(r));
}

static double txn_cow(struct ctx *x, unsigned flags);
static void check_cow(struct ctx *x, int async);

/* One commit, not timed: the first one creates the log. */
static void warm_cow(struct ctx *x)
{
	x->k = 1;
	x->gen++;
	txn_cow(x, 0);
	check_cow(x, 0);
}

#define MDB_OK(call)                                                       \
	do {                                                               \
		int rc_ = (call);                                          \
		BENCH_CHECK(rc_ == 0, "%s: %s", #call, mdb_strerror(rc_)); \
	} while (0)

static void setup_lmdb(struct ctx *x)
{
	char path[4096];
	MDB_txn *txn;
	int fd = bench_tmpfile("lmdb", path, sizeof(path));

	close(fd);
	unlink(path);
	MDB_OK(mdb_env_create(&x->env));
	MDB_OK(mdb_env_set_mapsize(x->env, 4 * x->size + (64 << 20)));
	MDB_OK(mdb_env_open(x->env, path, MDB_NOSUBDIR, 0644));
	MDB_OK(mdb_txn_begin(x->env, NULL, 0, &txn));
	MDB_OK(mdb_dbi_open(txn, NULL, MDB_INTEGERKEY, &x->dbi));
	for (size_t p = 0; p < x->npages; p++) {
		MDB_val key = {sizeof(p), &p}, val = {x->pg, x->buf};

		bench_fill_at(x->buf, p, SEED);
		MDB_OK(mdb_put(txn, x->dbi, &key, &val, 0));
	}
	MDB_OK(mdb_txn_commit(txn));
}

#define SQL_OK(call)                                                  \
	do {                                                          \
		int rc_ = (call);                                     \
		BENCH_CHECK(rc_ == SQLITE_OK || rc_ == SQLITE_DONE || \
				rc_ == SQLITE_ROW,                    \
			    "%s: %s", #call, sqlite3_errmsg(x->db));  \
	} while (0)

static void setup_sqlite(struct ctx *x)
{
	char path[4096];
	sqlite3_stmt *ins;
	int fd = bench_tmpfile("sqlite", path, sizeof(path));

	close(fd);
	unlink(path);
	SQL_OK(sqlite3_open(path, &x->db));
	SQL_OK(sqlite3_exec(x->db,
			    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			    "CREATE TABLE p(id INTEGER PRIMARY KEY, d BLOB);"
			    "BEGIN",
			    NULL, NULL, NULL));
	SQL_OK(sqlite3_prepare_v2(x->db, "INSERT INTO p VALUES (?1, ?2)", -1,
				  &ins, NULL));
	for (size_t p = 0; p < x->npages; p++) {
		bench_fill_at(x->buf, p, SEED);
		sqlite3_bind_int64(ins, 1, (sqlite3_int64)p);
		sqlite3_bind_blob(ins, 2, x->buf, (int)x->pg, SQLITE_STATIC);
		SQL_OK(sqlite3_step(ins));
		sqlite3_reset(ins);
	}
	sqlite3_finalize(ins);
	SQL_OK(sqlite3_exec(x->db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE)",
			    NULL, NULL, NULL));
	SQL_OK(sqlite3_prepare_v2(x->db, "UPDATE p SET d = ?1 WHERE id = ?2",
				  -1, &x->upd, NULL));
	SQL_OK(sqlite3_prepare_v2(x->db, "SELECT d FROM p WHERE id = ?1", -1,
				  &x->sel, NULL));
}

static void sql_exec(struct ctx *x, const char *sql)
{
	SQL_OK(sqlite3_exec(x->db, sql, NULL, NULL, NULL));
}

static void setup_floor(struct ctx *x)
{
	char path[4096];

	x->ffd = bench_tmpfile("floor", path, sizeof(path));
	bench_write_file(x->ffd, x->npages, SEED);
	x->sfd = bench_tmpfile("seq", path, sizeof(path));
	bench_write_file(x->sfd, x->npages, SEED);
	x->lfd = bench_tmpfile("log", path, sizeof(path));
	bench_write_file(x->lfd, x->npages, SEED);
	BENCH_CHECK(fsync(x->ffd) == 0 && fsync(x->sfd) == 0 &&
			fsync(x->lfd) == 0,
		    "fsync");
}

/* Bytes of cowarena's log record of k pages. */
static size_t rec_len(const struct ctx *x)
{
	return x->k * (LOG_HDR + x->pg) + LOG_HDR;
}

/* The floor's log record: frame headers and the staged pages, stamped
 * with the transaction at its start (as the commit record's seq). */
static void stage_rec(struct ctx *x)
{
	stage(x);
	for (size_t i = 0; i < x->k; i++)
		memcpy(x->rec + i * (LOG_HDR + x->pg) + LOG_HDR,
		       x->buf + i * x->pg, x->pg);
	memcpy(x->rec, &x->gen, sizeof(x->gen));
	if (x->lend + (off_t)rec_len(x) > (off_t)x->size)
		x->lend = 0; /* wrap: the file stays the same size */
}

/* --- one transaction of each --- */

static double txn_cow(struct ctx *x, unsigned flags)
{
	char *base = cow_base(x->a);
	uint64_t t0, t1;
	int r;

	t0 = bench_now();
	for (size_t i = 0; i < x->k; i++)
		memcpy(base + page_of(x, i) * x->pg, &x->gen, sizeof(x->gen));
	r = cow_commit(x->a, flags);
	t1 = bench_now();
	BENCH_CHECK(r == 0, "cow_commit: %s", cow_strerror(r));
	return (double)(t1 - t0);
}

/* After a commit: the pages hold the stamp; after a synchronous one
 * nothing is dirty any more (an asynchronous commit may leave its pages
 * private until a later commit finds them in the file). */
static void check_cow(struct ctx *x, int async)
{
	char *base = cow_base(x->a);
	ssize_t n = cow_dirty(x->a, NULL, 0);

	BENCH_CHECK(async || n == 0, "cowarena: %zd dirty runs after a commit",
		    n);
	for (size_t i = 0; i < x->k; i++)
		BENCH_CHECK(stamp_ok(base + page_of(x, i) * x->pg, x->gen),
			    "cowarena: page %zu after commit %llu",
			    page_of(x, i), (unsigned long long)x->gen);
	x->cow_gen = x->gen;
}

/*
 * After each row: the last commit is durable and is in the file once the
 * arena is closed (read back with pread, as another reader would). Then
 * the arena is opened again, and one commit that is not timed, so that
 * the next row does not pay for the reopen. Nothing is read through the
 * new mapping: each row starts with only the pages it writes mapped, not
 * with the pages an earlier row's check read (a dirty scan walks every
 * page-table entry in use; bench_sparse times arenas read in whole).
 */
static int open_cow_file(const struct ctx *x)
{
	int fd = open(x->cowpath, O_RDONLY | O_CLOEXEC);

	BENCH_CHECK(fd >= 0, "open %s", x->cowpath);
	return fd;
}

/* The k pages of the commit stamped gen are in the file fd. */
static void check_cow_file(const struct ctx *x, int fd, uint64_t gen)
{
	uint64_t v;

	for (size_t i = 0; i < x->k; i++) {
		off_t off = (off_t)(page_of(x, i) * x->pg);

		BENCH_CHECK(pread(fd, &v, sizeof(v), off) == sizeof(v) &&
				v == gen,
			    "cowarena: page %zu lost commit %llu in the file",
			    page_of(x, i), (unsigned long long)gen);
	}
}

static void check_cow_reopen(struct ctx *x)
{
	int fd, r;

	r = cow_sync(x->a);
	BENCH_CHECK(r == 0, "cow_sync: %s", cow_strerror(r));
	BENCH_CHECK(cow_close(x->a) == 0, "cow_close");
	fd = open_cow_file(x);
	check_cow_file(x, fd, x->cow_gen);
	close(fd);
	r = cow_open(&x->a, x->cowpath, NULL);
	BENCH_CHECK(r == 0, "cow_open (again): %s", cow_strerror(r));
	x->gen++;
	txn_cow(x, 0);
	check_cow(x, 0);
}

static double txn_lmdb(struct ctx *x)
{
	MDB_txn *txn;
	uint64_t t0, t1;

	stage(x);
	t0 = bench_now();
	MDB_OK(mdb_txn_begin(x->env, NULL, 0, &txn));
	for (size_t i = 0; i < x->k; i++) {
		size_t p = page_of(x, i);
		MDB_val key = {sizeof(p), &p};
		MDB_val val = {x->pg, x->buf + i * x->pg};

		MDB_OK(mdb_put(txn, x->dbi, &key, &val, 0));
	}
	MDB_OK(mdb_txn_commit(txn));
	t1 = bench_now();
	return (double)(t1 - t0);
}

static void check_lmdb(struct ctx *x)
{
	MDB_txn *txn;

	MDB_OK(mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn));
	for (size_t i = 0; i < x->k; i++) {
		size_t p = page_of(x, i);
		MDB_val key = {sizeof(p), &p}, val;

		MDB_OK(mdb_get(txn, x->dbi, &key, &val));
		BENCH_CHECK(val.mv_size == x->pg &&
				stamp_ok(val.mv_data, x->gen),
			    "LMDB: page %zu lost commit", p);
	}
	mdb_txn_abort(txn);
}

static double txn_sqlite(struct ctx *x)
{
	uint64_t t0, t1;

	stage(x);
	t0 = bench_now();
	SQL_OK(sqlite3_exec(x->db, "BEGIN", NULL, NULL, NULL));
	for (size_t i = 0; i < x->k; i++) {
		sqlite3_bind_blob(x->upd, 1, x->buf + i * x->pg, (int)x->pg,
				  SQLITE_STATIC);
		sqlite3_bind_int64(x->upd, 2, (sqlite3_int64)page_of(x, i));
		SQL_OK(sqlite3_step(x->upd));
		sqlite3_reset(x->upd);
	}
	SQL_OK(sqlite3_exec(x->db, "COMMIT", NULL, NULL, NULL));
	t1 = bench_now();
	return (double)(t1 - t0);
}

static void check_sqlite(struct ctx *x)
{
	for (size_t i = 0; i < x->k; i++) {
		sqlite3_bind_int64(x->sel, 1, (sqlite3_int64)page_of(x, i));
		BENCH_CHECK(
		    sqlite3_step(x->sel) == SQLITE_ROW &&
			sqlite3_column_bytes(x->sel, 0) == (int)x->pg &&
			stamp_ok(sqlite3_column_blob(x->sel, 0), x->gen),
		    "SQLite: page %zu lost commit", page_of(x, i));
		sqlite3_reset(x->sel);
	}
}

static int floor_fd(const struct ctx *x, int c)
{
	return c == C_LOG ? x->lfd : c == C_SEQ ? x->sfd : x->ffd;
}

static double txn_floor(struct ctx *x, int c)
{
	int fd = floor_fd(x, c);
	uint64_t t0, t1;

	if (c == C_LOG)
		stage_rec(x);
	else
		stage(x);
	t0 = bench_now();
	if (c == C_LOG) {
		BENCH_CHECK(pwrite(fd, x->rec, rec_len(x), x->lend) ==
				(ssize_t)rec_len(x),
			    "pwrite: %s", strerror(errno));
	} else if (c == C_SEQ) {
		BENCH_CHECK(pwrite(fd, x->buf, x->k * x->pg, 0) ==
				(ssize_t)(x->k * x->pg),
			    "pwrite: %s", strerror(errno));
	} else {
		for (size_t i = 0; i < x->k; i++)
			BENCH_CHECK(pwrite(fd, x->buf + i * x->pg, x->pg,
					   (off_t)(page_of(x, i) * x->pg)) ==
					(ssize_t)x->pg,
				    "pwrite: %s", strerror(errno));
	}
	if (!x->nosync)
		BENCH_CHECK(fdatasync(fd) == 0, "fdatasync: %s",
			    strerror(errno));
	t1 = bench_now();
	if (c == C_LOG)
		x->lend += (off_t)rec_len(x);
	return (double)(t1 - t0);
}

/* The last transaction's stamp is where it was written. */
static void check_floor(struct ctx *x, int c)
{
	char page[64];

	if (c == C_LOG) {
		off_t off = x->lend - (off_t)rec_len(x);

		BENCH_CHECK(pread(x->lfd, page, sizeof(page), off) ==
				    (ssize_t)sizeof(page) &&
				stamp_ok(page, x->gen),
			    "floor: log record at %lld", (long long)off);
		return;
	}
	for (size_t i = 0; i < x->k; i++) {
		off_t off = (off_t)((c == C_SEQ ? i : page_of(x, i)) * x->pg);

		BENCH_CHECK(pread(floor_fd(x, c), page, sizeof(page), off) ==
				    (ssize_t)sizeof(page) &&
				stamp_ok(page, x->gen),
			    "floor: page %zu", page_of(x, i));
	}
}

static double run_latency(void *arg, int c)
{
	struct ctx *x = arg;
	double t;

	x->gen++;
	switch (c) {
	case C_SYNC:
	case C_ASYNC:
		t = txn_cow(x, c == C_ASYNC ? COW_COMMIT_ASYNC : 0);
		check_cow(x, c == C_ASYNC);
		return t;
	case C_LMDB:
		t = txn_lmdb(x);
		check_lmdb(x);
		return t;
	case C_SQLITE:
		t = txn_sqlite(x);
		check_sqlite(x);
		return t;
	default:
		t = txn_floor(x, c);
		check_floor(x, c);
		return t;
	}
}

/* The check of one contender's last commit, after its final sync. */
static void check_rate(struct ctx *x, int c)
{
	switch (c) {
	case C_ASYNC:
		check_cow(x, 1);
		break;
	case C_LMDB:
		check_lmdb(x);
		break;
	case C_SQLITE:
		check_sqlite(x);
		break;
	default:
		check_floor(x, c);
	}
}

/*
 * After a run of the vary row that started at index idx0 with stamp gen0:
 * each page it wrote holds the stamp of its commit (none was written
 * twice). cowarena's pages are read from the file (cow_sync has applied
 * them), not through the arena, which would map them all for the next
 * run's dirty scans. The sequential and log floors write one place, where
 * only the last commit is.
 */
static void check_rate_vary(struct ctx *x, int c, size_t idx0, uint64_t gen0)
{
	uint64_t last = x->gen;
	int fd = c == C_ASYNC ? open_cow_file(x) : -1;

	for (size_t n = 0; n < x->ncommits; n++) {
		x->vidx = idx0 + n;
		x->gen = gen0 + n + 1;
		if (c == C_ASYNC)
			check_cow_file(x, fd, x->gen);
		else if (x->gen == last || (c != C_SEQ && c != C_LOG))
			check_rate(x, c);
	}
	if (fd >= 0) {
		close(fd);
		x->cow_gen = last;
	}
}

/* n transactions, then one sync; returns transactions per second. */
static double run_rate(void *arg, int c)
{
	struct ctx *x = arg;
	size_t idx0 = x->vnext[c];
	uint64_t t0, t1, gen0 = x->gen;
	int r;

	if (c == C_SYNC)
		return BENCH_NA;
	t0 = bench_now();
	for (size_t n = 0; n < x->ncommits; n++) {
		x->gen++;
		x->vidx = idx0 + n;
		switch (c) {
		case C_ASYNC:
			txn_cow(x, COW_COMMIT_ASYNC);
			break;
		case C_LMDB:
			txn_lmdb(x);
			break;
		case C_SQLITE:
			txn_sqlite(x);
			break;
		default:
			txn_floor(x, c);
		}
	}
	switch (c) {
	case C_ASYNC:
		r = cow_sync(x->a);
		BENCH_CHECK(r == 0, "cow_sync: %s", cow_strerror(r));
		break;
	case C_LMDB:
		MDB_OK(mdb_env_sync(x->env, 1));
		break;
	case C_SQLITE:
		SQL_OK(sqlite3_exec(x->db, "PRAGMA wal_checkpoint(FULL)", NULL,
				    NULL, NULL));
		break;
	default:
		BENCH_CHECK(fdatasync(floor_fd(x, c)) == 0, "fdatasync");
	}
	t1 = bench_now();
	if (x->vary) {
		x->vnext[c] = idx0 + x->ncommits;
		check_rate_vary(x, c, idx0, gen0);
	} else {
		check_rate(x, c);
	}
	return (double)x->ncommits * 1e9 / (double)(t1 - t0);
}

static const char *const rnames[NC - 1] = {
    "cowarena async commits + cow_sync",
    "LMDB MDB_NOSYNC + mdb_env_sync",
    "SQLite WAL NORMAL + checkpoint",
    "pwrite in place, fdatasync at the end",
    "sequential pwrite, fdatasync at the end",
    "log records by pwrite, fdatasync at the end",
};

/* The throughput table's contenders are C_ASYNC onwards. */
static double run_rate_col(void *arg, int c)
{
	return run_rate(arg, c + 1);
}

int main(int argc, char **argv)
{
	static const size_t ks[] = {1, 16, 256};
	static const int dpeers[] = {C_LMDB, C_SQLITE, C_SEQ, C_LOG};
	static const int apeers[] = {C_LMDB - 1, C_SQLITE - 1};
	struct ctx x = {0};
	struct bench_table *t;
	char title[160], sz[32], lab[32], what[96];
	int row[3];

	bench_init(argc, argv,
		   "bench_commit: durable commit, cowarena vs LMDB, SQLite "
		   "and pwrite + fdatasync");
	x.size =
	    bench_pick((size_t)64 << 20, (size_t)64 << 20, (size_t)1 << 20);
	x.pg = bench_pgsz();
	x.npages = x.size / x.pg;
	x.buf = malloc(256 * x.pg);
	x.rec = malloc(256 * (LOG_HDR + x.pg) + LOG_HDR);
	BENCH_CHECK(x.buf && x.rec, "out of memory");
	setup_cow(&x);
	setup_lmdb(&x);
	setup_sqlite(&x);
	setup_floor(&x);
	warm_cow(&x);
	bench_size_label(sz, sizeof(sz), x.size);

	snprintf(title, sizeof(title),
		 "Durable commit of k pages of 4 KiB (%s of pages, ext4 in "
		 "%s)",
		 sz, bench_opt.dir);
	t = bench_table("commit", title, "pages per commit", BENCH_TIME, C_SYNC,
			NC, names);
	for (size_t i = 0; i < 3; i++) {
		x.k = ks[i];
		snprintf(lab, sizeof(lab), "%zu", x.k);
		row[i] = bench_row(t, lab, (double)x.k);
		/* One commit per sample: three times the runs (but in
		 * --quick), since a single fdatasync swings 2-10x on a
		 * shared disk and a median of 3 moved the 1-page ratio
		 * between 1.07 and 1.64 from run to run. */
		bench_measure(t, row[i],
			      bench_opt.mode == BENCH_QUICK
				  ? bench_opt.reps
				  : 3 * bench_opt.reps,
			      run_latency, &x);
		check_cow_reopen(&x);
		snprintf(what, sizeof(what), "durable commit of %zu page%s",
			 x.k, x.k > 1 ? "s" : "");
		if (x.k > 1)
			snprintf(what + strlen(what),
				 sizeof(what) - strlen(what), ", %zu apart",
				 x.npages / x.k);
		bench_headline(t, row[i], what, 4, dpeers);
	}
	/* 256 pages again after enough commits that the log's ring (32
	 * MiB) wrapped: its appends overwrite blocks written in its first
	 * lap, as in an arena that commits for long, while the rows above
	 * run in the first lap of a log made at the reopen (from the
	 * spare, as long as the last log reached). */
	x.k = 256;
	for (int i = 0; i < (bench_opt.mode == BENCH_QUICK ? 2 : 34); i++) {
		x.gen++;
		txn_cow(&x, 0);
	}
	check_cow(&x, 0);
	row[0] = bench_row(t, "256, the log past its first lap", 0);
	bench_measure(t, row[0],
		      bench_opt.mode == BENCH_QUICK ? bench_opt.reps
						    : 3 * bench_opt.reps,
		      run_latency, &x);
	check_cow_reopen(&x);
	bench_note(t, "Timed: the writes into each contender's memory and "
		      "its commit. Pages spread evenly over the file (256 "
		      "pages of 64 MiB: 64 apart); LMDB and SQLite store "
		      "each 4 KiB value in overflow pages of their own.");
	bench_note(t, "The floors: the same bytes written in one pwrite; "
		      "and as many bytes as cowarena's log record (a 64-byte "
		      "header per page and a 64-byte commit record) appended "
		      "to a file already written in full, as the log is.");
	bench_note(t, "A log's first lap appends into blocks fallocated "
		      "as it grows, which each fdatasync converts (on ext4 "
		      "a metadata write more); a reopened arena's log is "
		      "made from the last one's blocks, so the rows above "
		      "pay it past what the previous row's log reached. "
		      "The last row follows 34 commits of 256 pages: its "
		      "log has wrapped.");
	bench_note(t, "The async column is the time until "
		      "cow_commit(COW_COMMIT_ASYNC) returns (not durable "
		      "yet); it is not in the ratios' baseline.");
	bench_end(t);

	x.nosync = 1;
	x.staged_k = 0;
	MDB_OK(mdb_env_set_flags(x.env, MDB_NOSYNC, 1));
	sql_exec(&x, "PRAGMA synchronous=NORMAL");
	snprintf(title, sizeof(title),
		 "Commit throughput, %s: n commits of k pages, then one sync",
		 sz);
	t = bench_table("commit-throughput", title, "pages per commit",
			BENCH_RATE, 0, NC - 1, rnames);
	for (size_t i = 0; i < 3; i++) {
		x.k = ks[i];
		x.ncommits = bench_opt.mode == BENCH_QUICK ? 10
			     : x.k >= 256		   ? 100
							   : 1000;
		snprintf(lab, sizeof(lab), "%zu", x.k);
		row[i] = bench_row(t, lab, (double)x.k);
		bench_measure(t, row[i], bench_opt.mode == BENCH_QUICK ? 1 : 3,
			      run_rate_col, &x);
		check_cow_reopen(&x);
		snprintf(what, sizeof(what),
			 "async commits of %zu page%s, then one sync", x.k,
			 x.k > 1 ? "s" : "");
		if (x.k < 256)
			bench_headline(t, row[i], what, 2, apeers);
	}
	x.k = 1;
	x.vary = 1;
	x.ncommits = bench_opt.mode == BENCH_QUICK ? 10 : 1000;
	row[0] = bench_row(t, "1, a different page each commit", 0);
	bench_measure(t, row[0], bench_opt.mode == BENCH_QUICK ? 1 : 3,
		      run_rate_col, &x);
	check_cow_reopen(&x);
	x.vary = 0;
	bench_headline(t, row[0],
		       "async commits of 1 page, a different page each, "
		       "then one sync",
		       2, apeers);
	bench_note(t, "Commits per second over n commits (1000; 100 of 256 "
		      "pages), the final sync included; every commit is "
		      "atomic, only the last sync makes them durable.");
	bench_note(t,
		   "Last row: commit j of each contender's sequence "
		   "writes page %dj mod %zu, each run going on where the "
		   "contender's last run stopped (no page written twice "
		   "in the row).",
		   VARY_STRIDE, x.npages);
	bench_end(t);

	cow_close(x.a);
	mdb_env_close(x.env);
	sqlite3_finalize(x.upd);
	sqlite3_finalize(x.sel);
	sqlite3_close(x.db);
	close(x.ffd);
	close(x.sfd);
	close(x.lfd);
	free(x.buf);
	free(x.rec);
	return 0;
}
