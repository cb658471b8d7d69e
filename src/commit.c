// SPDX-License-Identifier: MIT
/*
 * Commits: the current content becomes the new base, atomically and
 * durably.
 *
 * A commit is a transaction: the dirty pages (found by the page scan)
 * become log frames followed by a commit record. The order is
 *   1. append the transaction to the log (one sequential write) and
 *      fdatasync it: the durable point;
 *   2. write the pages in place into the base (io_uring, sorted and
 *      coalesced runs, buffered: they land in the page cache);
 *   3. drop the private copies (MADV_DONTNEED): the arena reads the new
 *      base;
 *   4. later, in the background: once the log holds CKPT_BYTES (and at
 *      close), appends pause, the base is fdatasync'ed and the log reset
 *      (a new header with a new salt, synced: every record of the old log
 *      is then invalid). Syncing the base once per checkpoint, not per
 *      commit, keeps a commit's cost at one fdatasync: a crash before the
 *      checkpoint replays the log, which holds every commit since.
 * A synchronous commit returns after 3. An asynchronous one returns once
 * the pages are copied (captured); 1 and 2 run in the background and
 * batch every transaction captured meanwhile into one log write and one
 * fdatasync (group commit). The base is never written before its log
 * record is durable, so a crash at any instant leaves either the old
 * content or, after replay, the new.
 *
 * Asynchronous commits keep their private copies (a later store may have
 * changed a page after the capture, and only the caller can pause
 * writers): the next cow_commit(), with writers paused, drops each page
 * still equal to its committed copy once that copy is in the base, and
 * does not capture it again. Until then the dirty scans that report
 * (cow_dirty, cow_stats: writers may run) leave such a page out once its
 * commit is applied: it equals the base (cow__commit_split).
 *
 * This file calls only down: the log, the ring and the OS. arena.c finds
 * the dirty pages (track), saves what snapshots need of the old base
 * around a commit (snap), checks and refreshes the guard, and hands the
 * pages down to cow__commit_write.
 *
 * Errors (the "fsyncgate" rule: a failed fsync is never retried and
 * reported as success): a failure before the durable point fails the
 * commit and changes nothing; the log is rewound. A failure after it (the
 * in-place writes, the base's sync, the log reset) leaves the data safe in
 * the log; the arena then refuses further commits with that error, and
 * reopening the file recovers.
 *
 * All state below is guarded by the io engine's lock: completions update
 * it from the reaper.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "commit.h"
#include "internal.h"
#include "io.h"
#include "testhooks.h"
#include "wal.h"

/* The log is checkpointed (the base synced, the log reset) once it holds
 * this much: appends pause meanwhile. Tests lower it to reach the
 * checkpoint often (cow__commit_ckpt_bytes). */
#define CKPT_DEFAULT ((off_t)16 << 20)
static off_t ckpt_bytes = CKPT_DEFAULT;
#define CKPT_BYTES __atomic_load_n(&ckpt_bytes, __ATOMIC_RELAXED)

void cow__commit_ckpt_bytes(off_t n)
{
	__atomic_store_n(&ckpt_bytes, n ? n : CKPT_DEFAULT, __ATOMIC_RELAXED);
}
#define BATCH_BYTES ((size_t)16 << 20) /* most bytes per log write */
#define MAX_IOV 1024
#define MAX_RUN ((size_t)1 << 30) /* bytes per in-place write */

enum txn_state { TX_QUEUED, TX_LOGGING, TX_LOGGED, TX_APPLIED };

struct txn {
	struct txn *next;
	uint64_t seq;
	enum txn_state state;
	int async, done, err;
	int inflight; /* in a log write or an apply in flight */
	size_t nframes;
	size_t *pages;
	const char **src; /* each frame's page: the arena's or a copy */
	struct cow__wal_frame *fh;
	struct cow__wal_commit rec;
	char *copy; /* asynchronous: the captured pages */
	char *tail; /* the last partial page, zeros past the file's end */
	off_t file_len;
	size_t bytes; /* in the log */
};

struct batch {
	struct batch *next;
	struct cow__commit *c;
	struct txn *first;
	size_t ntx;
	uint64_t last_seq;
	off_t start, end;
	struct cow__io_group g;
	struct cow__io_op *ops;
	struct iovec *iov;
	size_t niov;
};

struct cow__commit {
	struct cow__wal wal;
	size_t pgsz;
	/*
	 * The real file, written and synced through the ring: a descriptor
	 * of its own (a new open file description), not the one holding the
	 * arena's lock. Requests in flight keep their file referenced until
	 * the kernel tears the ring down, which after a crash finishes some
	 * time after the process is gone; the lock must not wait for that.
	 */
	int basefd;
	int copyfd;	/* COW_ISOLATE: the private copy, also written; or -1 */
	off_t real_len; /* the real file's length */
	struct cow_arena *arena;
	unsigned flags;
	int engine; /* holds an engine reference */
	int nosync;
	struct txn *head, *tail;	    /* live transactions, in order */
	struct txn *unsent;		    /* first not yet in a log write */
	struct batch *log_b;		    /* log write in flight */
	struct batch *logged, *logged_tail; /* waiting for their apply */
	struct batch *apply_b;		    /* apply in flight */
	uint64_t seq_next, seq_logged, seq_applied, seq_base;
	unsigned long long commits;
	int sync_busy, reset_busy, closing, in_kick, kick_again;
	int direct; /* the next apply runs on the caller's thread */
	uint64_t sync_target;
	int fatal;     /* data safe in the log; no more commits */
	int torn;      /* the base's page cache may be partly applied */
	int async_err; /* an asynchronous commit failed (reported once) */
	struct cow__io_group sync_g, reset_g;
	struct cow__io_op sync_op, reset_op[2];
	struct iovec reset_iov;
	char *reset_sector;
	struct cow__wal_hdr reset_hdr;
	size_t size;	/* the last commit's arena size */
	off_t file_len; /* and file length */
};

static void kick(struct cow__commit *c);

/* ---- transactions ---- */

static void txn_free(struct txn *t)
{
	if (!t)
		return;
	cow__free(t->pages);
	cow__free(t->src);
	cow__free(t->fh);
	cow__free(t->copy);
	cow__free(t->tail);
	cow__free(t);
}

/* Removes the applied transactions at the head of the list. */
static void drop_applied(struct cow__commit *c)
{
	while (c->head && c->head->state == TX_APPLIED) {
		struct txn *t = c->head;

		c->head = t->next;
		if (!c->head)
			c->tail = NULL;
		txn_free(t);
	}
}

/* Removes t from the live list, if it is there. */
static void txn_unlink(struct cow__commit *c, struct txn *t)
{
	struct txn **pp = &c->head, *prev = NULL;

	while (*pp && *pp != t) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = t->next;
	if (c->tail == t)
		c->tail = prev;
	if (c->unsent == t)
		c->unsent = t->next;
	t->next = NULL;
}

/* Background I/O failed after a durable point: no more commits. Every
 * transaction not yet applied ends with the error (its data is safe in
 * the log, or it was never logged). */
static void set_fatal(struct cow__commit *c, int err)
{
	if (err && !c->fatal)
		c->fatal = err;
	if (!c->fatal)
		return;
	for (struct txn *t = c->head; t; t = t->next)
		if (!t->done && !t->inflight) {
			t->done = 1;
			t->err = c->fatal;
		}
}

/* Fails t and every transaction after it that was not logged. */
static void fail_from(struct cow__commit *c, struct txn *t, int err)
{
	struct txn **pp = &c->head, *prev = NULL;

	while (*pp != t) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = NULL;
	c->tail = prev;
	c->unsent = NULL;
	c->seq_next = t->seq;
	while (t) {
		struct txn *n = t->next;

		t->err = err;
		t->done = 1;
		t->next = NULL;
		if (t->async) {
			if (!c->async_err)
				c->async_err = err;
			txn_free(t);
		}
		/* A synchronous transaction belongs to its waiting caller. */
		t = n;
	}
}

/* ---- background steps ---- */

static void reset_done(void *ctx, int err)
{
	struct cow__commit *c = ctx;

	c->reset_busy = 0;
	if (err) {
		/* The header may be old or new: the log cannot be trusted to
		 * take more records. Its content is in the base already. */
		set_fatal(c, err);
	} else {
		c->wal.salt = c->reset_hdr.salt;
		c->wal.start_seq = c->reset_hdr.start_seq;
		c->wal.end = COW__WAL_HDR;
		c->wal.synced = COW__WAL_HDR;
	}
	kick(c);
}

static void start_reset(struct cow__commit *c)
{
	int r = cow__wal_new_header(&c->wal, c->seq_logged + 1, &c->reset_hdr);

	if (r < 0) {
		set_fatal(c, r);
		return;
	}
	memset(c->reset_sector, 0, COW__WAL_HDR);
	memcpy(c->reset_sector, &c->reset_hdr, sizeof(c->reset_hdr));
	c->reset_iov.iov_base = c->reset_sector;
	c->reset_iov.iov_len = COW__WAL_HDR;
	c->reset_busy = 1;
	cow__io_group_init(&c->reset_g, reset_done, c);
	if (cow__io_write(&c->reset_op[0], &c->reset_g, c->wal.fd,
			  &c->reset_iov, 1, 0, !c->nosync) == 0 &&
	    !c->nosync)
		(void)cow__io_fsync(&c->reset_op[1], &c->reset_g, c->wal.fd, 0);
	cow__io_group_release(&c->reset_g);
}

static void sync_done(void *ctx, int err)
{
	struct cow__commit *c = ctx;

	c->sync_busy = 0;
	if (err) {
		/* Never retried: the kernel may have dropped the pages. The
		 * log keeps the transactions; reopening replays them. */
		set_fatal(c, err);
	} else if (c->sync_target > c->seq_base) {
		c->seq_base = c->sync_target;
	}
	kick(c);
}

static void start_sync(struct cow__commit *c)
{
	c->sync_busy = 1;
	c->sync_target = c->seq_applied;
	cow__io_group_init(&c->sync_g, sync_done, c);
	(void)cow__io_fsync(&c->sync_op, &c->sync_g, c->basefd, 0);
	cow__io_group_release(&c->sync_g);
}

static void batch_free(struct batch *b)
{
	cow__free(b->ops);
	cow__free(b->iov);
	cow__free(b);
}

static void apply_done(void *ctx, int err)
{
	struct batch *b = ctx;
	struct cow__commit *c = b->c;
	struct txn *t = b->first;

	c->apply_b = NULL;
	if (err)
		c->torn = err;
	for (size_t i = 0; i < b->ntx; i++, t = t->next) {
		t->inflight = 0;
		t->state = TX_APPLIED;
		t->err = err;
		t->done = 1;
		if (err && t->async && !c->async_err)
			c->async_err = err;
	}
	if (!err)
		c->seq_applied = b->last_seq;
	else
		set_fatal(c, err);
	batch_free(b);
	kick(c);
}

struct pref {
	size_t page, order;
	const char *src;
	const struct txn *t;
};

static int pref_cmp(const void *x, const void *y)
{
	const struct pref *a = x, *b = y;

	if (a->page != b->page)
		return a->page < b->page ? -1 : 1;
	return a->order < b->order ? -1 : a->order > b->order;
}

/*
 * Writes the batch's pages in place: the newest image of each page, sorted
 * and coalesced into runs, one write per run, none linked to another (the
 * writes go to the page cache; ordering them only serialises them). With
 * c->direct (a synchronous commit that found the log idle) the writes are
 * made on the caller's thread.
 */
static void start_apply(struct cow__commit *c, struct batch *b)
{
	size_t n = 0, k = 0, pgsz = c->pgsz;
	struct txn *t = b->first;
	int direct = c->direct;
	off_t file_len = 0;
	struct pref *v;

	c->direct = 0;
	for (size_t i = 0; i < b->ntx; i++, t = t->next) {
		n += t->nframes;
		file_len = t->file_len;
		t->inflight = 1;
	}
	cow__free(b->ops);
	cow__free(b->iov);
	c->apply_b = b;
	__atomic_store_n(&c->arena->refresh, 1, __ATOMIC_RELAXED);
	cow__io_group_init(&b->g, apply_done, b);
	v = cow__calloc(n ? n : 1, sizeof(*v));
	b->iov = cow__calloc(n ? n : 1, sizeof(*b->iov));
	b->ops = cow__calloc(n ? n : 1, 2 * sizeof(*b->ops)); /* 2 per page */
	if (!v || !b->iov || !b->ops) {
		b->g.err = -ENOMEM;
		goto out;
	}
	if (file_len > c->real_len) {
		/* An isolated arena grows its copy only: the commit extends
		 * the file (after its record is durable). */
		int r = cow__sys_ftruncate(c->basefd, file_len);

		if (r < 0) {
			b->g.err = r;
			goto out;
		}
		c->real_len = file_len;
	}
	t = b->first;
	for (size_t i = 0; i < b->ntx; i++, t = t->next)
		for (size_t j = 0; j < t->nframes; j++, k++) {
			v[k].page = t->pages[j];
			v[k].order = k;
			v[k].src = t->src[j];
		}
	qsort(v, n, sizeof(*v), pref_cmp);
	/* Keep the newest image of each page, inside the file. */
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && v[i + 1].page == v[i].page)
			continue;
		if ((off_t)(v[i].page * pgsz) >= file_len)
			continue;
		v[k++] = v[i];
	}
	if (k) {
		/* One RLIMIT_FSIZE check for the batch's writes (the ring's
		 * are not checked one by one: that would cost a system call
		 * each). The limit may have been lowered since the commit
		 * checked it: this is the error path past the durable point,
		 * not SIGXFSZ. */
		off_t end = (off_t)((v[k - 1].page + 1) * pgsz);
		int r = cow__sys_fsize_check(end < file_len ? end : file_len);

		if (r < 0) {
			b->g.err = r;
			goto out;
		}
	}
	for (size_t i = 0, nops = 0; i < k;) {
		size_t j = i, bytes = 0;
		off_t off = (off_t)(v[i].page * pgsz);

		do {
			size_t len = pgsz;
			off_t o = (off_t)(v[j].page * pgsz);

			if ((off_t)len > file_len - o)
				len = (size_t)(file_len - o);
			b->iov[j].iov_base = (void *)v[j].src;
			b->iov[j].iov_len = len;
			bytes += len;
			j++;
		} while (j < k && v[j].page == v[j - 1].page + 1 &&
			 j - i < MAX_IOV && bytes < MAX_RUN);
		if (direct) {
			ssize_t w = cow__sys_pwritev(c->basefd, &b->iov[i],
						     (int)(j - i), off);

			if (w >= 0 && c->copyfd >= 0)
				w = cow__sys_pwritev(c->copyfd, &b->iov[i],
						     (int)(j - i), off);
			if (w < 0) {
				b->g.err = (int)w;
				break;
			}
			i = j;
			continue;
		}
		if (cow__io_write(&b->ops[nops++], &b->g, c->basefd, &b->iov[i],
				  (int)(j - i), off, 0) < 0)
			break;
		if (c->copyfd >= 0 &&
		    cow__io_write(&b->ops[nops++], &b->g, c->copyfd, &b->iov[i],
				  (int)(j - i), off, 0) < 0)
			break;
		i = j;
	}
out:
	cow__free(v);
	cow__io_group_release(&b->g);
}

static void log_done(void *ctx, int err)
{
	struct batch *b = ctx;
	struct cow__commit *c = b->c;
	struct txn *t = b->first;

	c->log_b = NULL;
	for (size_t i = 0; i < b->ntx; i++, t = t->next)
		t->inflight = 0;
	t = b->first;
	if (err) {
		/* Nothing of the batch counts: rewind, and zero its first
		 * record so that a complete record it may have left is no
		 * longer reachable from the log's start. */
		static const char zeros[COW__WAL_ALIGN];

		c->wal.end = b->start;
		(void)cow__sys_pwrite(c->wal.fd, zeros, sizeof(zeros),
				      b->start);
		fail_from(c, b->first, err);
		batch_free(b);
		kick(c);
		return;
	}
	if (!c->nosync)
		c->wal.synced = b->end;
	for (size_t i = 0; i < b->ntx; i++, t = t->next)
		t->state = TX_LOGGED;
	c->seq_logged = b->last_seq;
	b->next = NULL;
	if (c->logged_tail)
		c->logged_tail->next = b;
	else
		c->logged = b;
	c->logged_tail = b;
	set_fatal(c, 0);
	kick(c);
}

/* Seals the records with the log's current salt and position. */
static void seal_txn(struct cow__commit *c, struct txn *t)
{
	uint64_t chain = cow__wal_chain_start(c->wal.salt, t->seq);

	for (size_t i = 0; i < t->nframes; i++) {
		cow__wal_frame_seal(&t->fh[i], c->wal.salt, t->src[i], c->pgsz);
		chain = cow__wal_chain(chain, t->fh[i].sum);
	}
	t->rec.frames_sum = chain;
	t->rec.synced_end = (uint64_t)c->wal.synced;
	cow__wal_commit_seal(&t->rec, c->wal.salt);
}

/* Takes the unsent transactions (up to BATCH_BYTES) as the next log
 * write: sealed, their room reserved, c->log_b set. NULL if none. */
static struct batch *log_prepare(struct cow__commit *c)
{
	struct batch *b = cow__calloc(1, sizeof(*b));
	size_t bytes = 0, niov = 0, nops, k = 0;
	struct txn *t;
	int r;

	if (!b) {
		fail_from(c, c->unsent, -ENOMEM);
		return NULL;
	}
	b->c = c;
	b->first = c->unsent;
	for (t = c->unsent; t; t = t->next) {
		if (b->ntx && bytes + t->bytes > BATCH_BYTES)
			break;
		bytes += t->bytes;
		niov += 2 * t->nframes + 1;
		b->ntx++;
		b->last_seq = t->seq;
	}
	nops = (niov + MAX_IOV - 1) / MAX_IOV + 1;
	b->niov = niov;
	b->iov = cow__calloc(niov, sizeof(*b->iov));
	b->ops = cow__calloc(nops, sizeof(*b->ops));
	r = b->iov && b->ops ? 0 : -ENOMEM;
	if (r == 0)
		r = cow__wal_reserve(&c->wal, bytes);
	if (r < 0) {
		fail_from(c, b->first, r);
		batch_free(b);
		return NULL;
	}
	t = b->first;
	for (size_t i = 0; i < b->ntx; i++, t = t->next) {
		seal_txn(c, t);
		t->state = TX_LOGGING;
		t->inflight = 1;
		for (size_t j = 0; j < t->nframes; j++) {
			b->iov[k].iov_base = &t->fh[j];
			b->iov[k++].iov_len = sizeof(t->fh[j]);
			b->iov[k].iov_base = (void *)t->src[j];
			b->iov[k++].iov_len = c->pgsz;
		}
		b->iov[k].iov_base = &t->rec;
		b->iov[k++].iov_len = sizeof(t->rec);
	}
	c->unsent = t;
	b->start = c->wal.end;
	b->end = b->start + (off_t)bytes;
	c->wal.end = b->end;
	c->log_b = b;
	return b;
}

/* Appends the unsent transactions in one write and one fdatasync, through
 * the ring (linked: a later part never lands without the earlier, and the
 * sync follows them all). */
static void start_log(struct cow__commit *c)
{
	struct batch *b = log_prepare(c);
	off_t off;
	size_t op = 0;

	if (!b)
		return;
	off = b->start;
	cow__io_group_init(&b->g, log_done, b);
	/* Inside the log's preallocation, checked when it was made; the
	 * limit may have been lowered since. */
	b->g.err = cow__sys_fsize_check(b->end);
	if (b->g.err)
		goto out;
	for (size_t i = 0; i < b->niov; i += MAX_IOV) {
		int cnt = (int)(b->niov - i < MAX_IOV ? b->niov - i : MAX_IOV);
		size_t len = 0;

		for (int j = 0; j < cnt; j++)
			len += b->iov[i + (size_t)j].iov_len;
		if (cow__io_write(&b->ops[op++], &b->g, c->wal.fd, &b->iov[i],
				  cnt, off,
				  i + MAX_IOV < b->niov || !c->nosync) < 0)
			goto out;
		off += (off_t)len;
	}
	if (!c->nosync)
		(void)cow__io_fsync(&b->ops[op], &b->g, c->wal.fd, 0);
out:
	cow__io_group_release(&b->g);
}

/*
 * The same on the caller's thread, for a synchronous commit that finds
 * the log idle: pwritev and fdatasync directly cost no hand-over to the
 * ring's thread and back, which is most of a small commit's latency.
 * With the engine lock held; drops it during the I/O.
 */
static void log_direct(struct cow__commit *c)
{
	struct batch *b = log_prepare(c);
	off_t off;
	int r = 0;

	if (!b)
		return;
	cow__io_unlock();
	off = b->start;
	for (size_t i = 0; r == 0 && i < b->niov; i += MAX_IOV) {
		int cnt = (int)(b->niov - i < MAX_IOV ? b->niov - i : MAX_IOV);
		ssize_t n = cow__sys_pwritev(c->wal.fd, &b->iov[i], cnt, off);

		r = n < 0 ? (int)n : 0;
		off += n < 0 ? 0 : n;
	}
	if (r == 0 && !c->nosync)
		r = cow__sys_fsync(c->wal.fd, 1);
	cow__io_lock();
	/* The apply that follows at once is this commit's alone: its
	 * buffered writes take microseconds, a trip through the ring's
	 * thread several times that. */
	c->direct = !c->apply_b && !c->logged;
	log_done(b, r);
	c->direct = 0;
}

/* Is everything logged applied and in the durable base? */
static int base_caught_up(struct cow__commit *c)
{
	return !c->log_b && !c->apply_b && !c->logged && !c->sync_busy &&
	       (c->nosync || c->seq_base == c->seq_logged) &&
	       c->seq_applied == c->seq_logged;
}

/* Advances the background work as far as it can go now. */
static void kick(struct cow__commit *c)
{
	if (c->in_kick) {
		c->kick_again = 1;
		return;
	}
	c->in_kick = 1;
	do {
		int full;

		c->kick_again = 0;
		if (!c->apply_b && c->logged && !c->fatal) {
			struct batch *b = c->logged;

			c->logged = b->next;
			if (!c->logged)
				c->logged_tail = NULL;
			start_apply(c, b);
		}
		full = c->wal.end >= CKPT_BYTES;
		if ((full || c->closing) && !c->nosync && !c->sync_busy &&
		    !c->fatal && !c->apply_b && !c->logged && !c->log_b &&
		    c->seq_applied > c->seq_base)
			start_sync(c);
		if (c->log_b || c->reset_busy || c->fatal || c->wal.fd < 0)
			continue;
		if (c->unsent && !full)
			start_log(c);
		else if (full && base_caught_up(c) &&
			 (c->unsent || !c->closing))
			start_reset(c);
	} while (c->kick_again);
	c->in_kick = 0;
	(void)cow__io_submit();
}

/* ---- waiting ---- */

static int idle(struct cow__commit *c)
{
	return !c->log_b && !c->apply_b && !c->sync_busy && !c->reset_busy &&
	       ((!c->unsent && !c->logged) || c->fatal);
}

/* With the engine lock held: wait until cond(c) holds. */
static void wait_for(struct cow__commit *c, int (*cond)(struct cow__commit *))
{
	kick(c);
	while (!cond(c))
		cow__io_wait();
}

static int all_applied(struct cow__commit *c)
{
	return (!c->unsent && !c->log_b && !c->logged && !c->apply_b) ||
	       c->fatal;
}

/* ---- open and close ---- */

int cow__commit_open(struct cow__commit **out, int fd, const char *path,
		     size_t pgsz, unsigned flags)
{
	struct cow__wal_info info;
	struct cow__commit *c;
	char link[COW__FD_PATH_LEN], buf[PATH_MAX];
	struct stat st;
	int r;

	*out = NULL;
	COW_TRY(cow__sys_fstat(fd, &st));
	if (st.st_nlink == 0)
		return 0; /* a memfd or an unlinked file: nothing durable */
	if (!path) {
		ssize_t n;

		n = cow__sys_readlink(cow__fd_path(link, fd), buf,
				      sizeof(buf) - 1);
		if (n < 0 || buf[0] != '/')
			return n < 0 ? (int)n : 0;
		buf[n] = 0;
		path = buf;
	}
	c = cow__calloc(1, sizeof(*c));
	r = c ? 0 : -ENOMEM;
	if (c) {
		c->basefd = -1;
		c->wal.fd = -1;
		c->wal.dirfd = -1;
		c->reset_sector = cow__malloc(COW__WAL_HDR);
	}
	if (c && !c->reset_sector)
		r = -ENOMEM;
	if (r == 0)
		r = cow__wal_open(&c->wal, path, fd, pgsz,
				  !!(flags & COW_READONLY), &info);
	if (r < 0) {
		if (c)
			cow__free(c->reset_sector);
		cow__free(c);
		return r;
	}
	c->pgsz = pgsz;
	c->basefd = -1;
	if (!(flags & COW_READONLY)) {
		r = cow__sys_open(cow__fd_path(link, fd), O_RDWR | O_CLOEXEC,
				  0);
		if (r < 0) {
			cow__commit_free(c);
			return r;
		}
		c->basefd = r;
	}
	c->flags = flags;
	c->nosync = !!(flags & COW_NOSYNC);
	c->copyfd = -1;
	c->real_len = st.st_size;
	if (info.ntx) {
		r = cow__sys_fstat(fd, &st);
		if (r < 0) {
			cow__commit_free(c);
			return r;
		}
		c->real_len = st.st_size;
	}
	c->seq_next = info.present ? info.last_seq + 1 : 1;
	c->seq_logged = c->seq_applied = c->seq_base = c->seq_next - 1;
	*out = c;
	return 0;
}

void cow__commit_attach(struct cow_arena *a, struct cow__commit *c)
{
	a->commit = c;
	if (c) {
		c->arena = a;
		c->size = a->size;
		c->file_len = a->file_size;
		if (a->fd != a->file_fd)
			c->copyfd = a->fd;
	}
}

void cow__commit_free(struct cow__commit *c)
{
	if (!c)
		return;
	while (c->logged) {
		struct batch *b = c->logged;

		c->logged = b->next;
		batch_free(b);
	}
	while (c->head) {
		struct txn *t = c->head;

		c->head = t->next;
		txn_free(t);
	}
	cow__wal_close(&c->wal, 0);
	cow__sys_close(c->basefd);
	cow__free(c->reset_sector);
	cow__free(c);
}

void cow__commit_close(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;
	int clean;

	if (!c)
		return;
	if (c->engine) {
		cow__io_lock();
		c->closing = 1;
		wait_for(c, idle);
		/* The log goes only when every transaction it holds is in
		 * the base, and (unless COW_NOSYNC) the base is synced: a
		 * failed in-place write leaves it for the next open to
		 * replay, with COW_NOSYNC too. */
		clean = !c->fatal && c->seq_applied == c->seq_logged &&
			(c->nosync || c->seq_base == c->seq_logged);
		cow__io_unlock();
		if (clean)
			cow__wal_close(&c->wal, 1);
		cow__io_put(!(c->flags & COW_NOTHREAD));
	}
	cow__commit_free(c);
	a->commit = NULL;
}

int cow__commit_settle(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;
	int r;

	if (!c || !c->engine)
		return 0;
	cow__io_lock();
	wait_for(c, all_applied);
	r = c->torn;
	cow__io_unlock();
	return r;
}

/* The arena's own in-place writes (or the log writes they wait for) are
 * still running. */
static int own_writes_pending(struct cow__commit *c)
{
	return c->apply_b || c->logged || c->log_b || c->unsent;
}

int cow__commit_writing(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;
	int pending;

	if (!c || !c->engine)
		return 0;
	cow__io_lock();
	cow__io_poll();
	pending = own_writes_pending(c);
	cow__io_unlock();
	return pending;
}

int cow__commit_refresh_due(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;
	int need;

	if (c && c->engine)
		cow__io_lock();
	need = __atomic_load_n(&a->refresh, __ATOMIC_RELAXED) &&
	       !(c && own_writes_pending(c));
	if (c && c->engine)
		cow__io_unlock();
	return need;
}

void cow__commit_refreshed(struct cow_arena *a)
{
	__atomic_store_n(&a->refresh, 0, __ATOMIC_RELAXED);
}

void cow__commit_stats(struct cow_arena *a, struct cow_stats *st)
{
	struct cow__commit *c = a->commit;

	if (!c) {
		st->commits = st->commit_seq_durable = a->direct_commits;
		return;
	}
	if (c->engine)
		cow__io_lock();
	st->commits = c->commits;
	st->commit_seq_durable = c->seq_logged;
	st->log_bytes = c->wal.fd >= 0 ? (size_t)c->wal.end : 0;
	if (c->engine)
		cow__io_unlock();
}

/* ---- the public calls ---- */

/* Drops the private copies of the runs. A failure leaves pages that equal
 * the base private, which changes no content: it is not an error. */
static void drop_runs(struct cow_arena *a, const struct cow__pageset *s)
{
	for (size_t i = 0; i < s->n; i++)
		(void)cow__sys_madvise(a->base + s->v[i].first * a->pgsz,
				       s->v[i].n * a->pgsz, MADV_DONTNEED);
}

/*
 * A base with nothing durable behind it (anonymous arena, memfd, unlinked
 * file): write the dirty pages into it and drop the private copies. The
 * old content is saved first, so that a failed write can be undone.
 */
static int commit_direct(struct cow_arena *a, const struct cow__pageset *rs,
			 int *took)
{
	size_t total = 0, done = 0;
	char *save = NULL;
	int r = 0;

	if (!rs->n)
		goto out;
	for (size_t i = 0; i < rs->n; i++)
		total += rs->v[i].n * a->pgsz;
	save = cow__malloc(total);
	r = save ? 0 : -ENOMEM;
	if (r < 0)
		goto out;
	for (size_t i = 0, pos = 0; i < rs->n && r >= 0; i++) {
		off_t off = (off_t)(rs->v[i].first * a->pgsz);
		size_t len = rs->v[i].n * a->pgsz;

		if (off >= a->file_size)
			continue;
		if ((off_t)len > a->file_size - off)
			len = (size_t)(a->file_size - off);
		ssize_t n = cow__sys_pread(a->fd, save + pos, len, off);

		r = n < 0 ? (int)n : 0;
		pos += len;
	}
	for (size_t i = 0; i < rs->n && r >= 0; i++, done++) {
		off_t off = (off_t)(rs->v[i].first * a->pgsz);
		size_t len = rs->v[i].n * a->pgsz;

		if (off >= a->file_size)
			continue;
		if ((off_t)len > a->file_size - off)
			len = (size_t)(a->file_size - off);
		ssize_t n = cow__sys_pwrite(a->fd, a->base + off, len, off);

		if (n >= 0 && a->file_fd >= 0 && a->file_fd != a->fd)
			n = cow__sys_pwrite(a->file_fd, a->base + off, len,
					    off);
		r = n < 0 ? (int)n : 0;
	}
	if (r < 0) {
		/* Put back what was written (all or nothing). */
		for (size_t i = 0, pos = 0; i < done; i++) {
			off_t off = (off_t)(rs->v[i].first * a->pgsz);
			size_t len = rs->v[i].n * a->pgsz;

			if (off >= a->file_size)
				continue;
			if ((off_t)len > a->file_size - off)
				len = (size_t)(a->file_size - off);
			(void)cow__sys_pwrite(a->fd, save + pos, len, off);
			if (a->file_fd >= 0 && a->file_fd != a->fd)
				(void)cow__sys_pwrite(a->file_fd, save + pos,
						      len, off);
			pos += len;
		}
		goto out;
	}
	drop_runs(a, rs);
	*took = 1;
out:
	if (r == 0)
		a->direct_commits++;
	/* Written, or written and put back: the file is ours. */
	__atomic_store_n(&a->refresh, a->file_fd >= 0, __ATOMIC_RELAXED);
	cow__free(save);
	return r;
}

/*
 * The newest captured copy of each dirty page in the live transactions:
 * v[i] for the i-th page of the runs (t NULL: none). Built in one pass
 * over the queued frames, oldest first, so that the newest wins: no sort,
 * however many asynchronous commits are queued.
 */
struct latest {
	struct pref *v; /* order = applied flag */
	size_t *start;	/* index in v of each run's first page */
};

/* Index in v of page, or SIZE_MAX when no run holds it. */
static size_t latest_index(const struct cow__pageset *rs, const size_t *start,
			   size_t page)
{
	size_t lo = 0, hi = rs->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cow__pagerun *r = &rs->v[mid];

		if (page < r->first)
			hi = mid;
		else if (page >= r->first + r->n)
			lo = mid + 1;
		else
			return start[mid] + (page - r->first);
	}
	return SIZE_MAX;
}

static int latest_build(struct cow__commit *c, const struct cow__pageset *rs,
			size_t npages, struct latest *l)
{
	size_t k = 0;

	l->v = cow__calloc(npages ? npages : 1, sizeof(*l->v));
	l->start = cow__calloc(rs->n ? rs->n : 1, sizeof(*l->start));
	if (!l->v || !l->start)
		return -ENOMEM;
	for (size_t i = 0; i < rs->n; i++) {
		l->start[i] = k;
		k += rs->v[i].n;
	}
	for (struct txn *t = c->head; t; t = t->next)
		for (size_t j = 0; t->async && j < t->nframes; j++) {
			size_t i = latest_index(rs, l->start, t->pages[j]);

			if (i == SIZE_MAX)
				continue;
			l->v[i].page = t->pages[j];
			l->v[i].src = t->src[j];
			l->v[i].t = t;
		}
	for (size_t i = 0; i < npages; i++)
		if (l->v[i].t)
			l->v[i].order = l->v[i].t->state == TX_APPLIED;
	return 0;
}

/* Emits single pages to fn as merged runs. */
struct page_runs {
	cow__run_fn fn;
	void *ctx;
	size_t first, n;
};

static int page_runs_add(struct page_runs *pr, size_t page)
{
	int r = 0;

	if (pr->n && pr->first + pr->n == page) {
		pr->n++;
		return 0;
	}
	if (pr->n)
		r = pr->fn(pr->ctx, pr->first, pr->n);
	pr->first = page;
	pr->n = 1;
	return r;
}

static int has_async(const struct cow__commit *c)
{
	for (const struct txn *t = c->head; t; t = t->next)
		if (t->async)
			return 1;
	return 0;
}

int cow__commit_may_clean(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;
	int any;

	if (!c || !c->engine)
		return 0;
	cow__io_lock();
	any = has_async(c) && !c->fatal && !c->torn;
	cow__io_unlock();
	return any;
}

/*
 * Splits the private pages into those that differ from the base (to
 * dirty) and those that do not (to clean): the pages whose newest
 * asynchronous commit is applied (its bytes are the base's now) and which
 * still hold exactly what it captured. Comparing with the captured copy
 * is exact whatever the write tracking (a page written again with other
 * bytes differs, one written back to the same bytes does not) and costs
 * a compare per page of the asynchronous commits not yet followed by
 * another commit: the pages written, not the arena. After a failed write
 * the base may not hold an applied commit: every private page is dirty.
 */
int cow__commit_split(struct cow_arena *a, const struct cow__pageset *priv,
		      cow__run_fn dirty, void *dctx, cow__run_fn clean,
		      void *cctx)
{
	struct cow__commit *c = a->commit;
	struct page_runs pd = {dirty, dctx, 0, 0}, pc = {clean, cctx, 0, 0};
	struct latest l = {0};
	size_t k = 0;
	int r;

	/* Under the engine's lock: completions change the transactions'
	 * state, and a failed log write frees asynchronous ones. */
	cow__io_lock();
	r = latest_build(c, priv, priv->pages, &l);
	for (size_t i = 0; r == 0 && i < priv->n; i++)
		for (size_t p = priv->v[i].first;
		     r == 0 && p < priv->v[i].first + priv->v[i].n; p++, k++) {
			const struct pref *f = &l.v[k];
			int same =
			    f->t && f->order && !f->t->err && !c->torn &&
			    !memcmp(a->base + p * a->pgsz, f->src, a->pgsz);
			struct page_runs *to = same ? &pc : &pd;

			if (to->fn)
				r = page_runs_add(to, p);
		}
	cow__io_unlock();
	if (r == 0 && pd.n)
		r = dirty(dctx, pd.first, pd.n);
	if (r == 0 && pc.n)
		r = clean(cctx, pc.first, pc.n);
	cow__free(l.v);
	cow__free(l.start);
	return r;
}

void cow__commit_forget_applied(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;

	if (!c || !c->engine)
		return;
	cow__io_lock();
	drop_applied(c);
	cow__io_unlock();
}

/* Builds the transaction of the pages in cap (page indexes). */
static struct txn *txn_build(struct cow_arena *a, const size_t *cap, size_t n,
			     int async)
{
	struct txn *t = cow__calloc(1, sizeof(*t));
	size_t pgsz = a->pgsz;

	if (!t)
		return NULL;
	t->async = async;
	t->nframes = n;
	t->file_len = a->file_size;
	t->pages = cow__calloc(n ? n : 1, sizeof(*t->pages));
	t->src = cow__calloc(n ? n : 1, sizeof(*t->src));
	t->fh = cow__calloc(n ? n : 1, sizeof(*t->fh));
	if (async && n)
		t->copy = cow__mallocarray(n, pgsz);
	if (!t->pages || !t->src || !t->fh || (async && n && !t->copy))
		goto err;
	for (size_t i = 0; i < n; i++) {
		const char *p = a->base + cap[i] * pgsz;
		off_t off = (off_t)(cap[i] * pgsz);

		t->pages[i] = cap[i];
		if (off + (off_t)pgsz > a->file_size) {
			/* Past the file's end the image holds zeros: only
			 * the file's bytes are committed. */
			size_t keep = off < a->file_size
					  ? (size_t)(a->file_size - off)
					  : 0;

			t->tail = cow__calloc(1, pgsz);
			if (!t->tail)
				goto err;
			memcpy(t->tail, p, keep);
			t->src[i] = t->tail;
		} else if (async) {
			memcpy(t->copy + i * pgsz, p, pgsz);
			t->src[i] = t->copy + i * pgsz;
		} else {
			t->src[i] = p;
		}
		t->fh[i].magic = COW__WAL_FRAME_MAGIC;
		t->fh[i].page_size = (uint32_t)pgsz;
		t->fh[i].page = cap[i];
	}
	t->rec.magic = COW__WAL_COMMIT_MAGIC;
	t->rec.nframes = n;
	t->rec.size = a->size;
	t->rec.file_len = (uint64_t)a->file_size;
	t->bytes = n * (sizeof(struct cow__wal_frame) + pgsz) +
		   sizeof(struct cow__wal_commit);
	return t;
err:
	txn_free(t);
	return NULL;
}

static void txn_enqueue(struct cow__commit *c, struct txn *t)
{
	t->seq = c->seq_next++;
	t->rec.seq = t->seq;
	for (size_t i = 0; i < t->nframes; i++)
		t->fh[i].seq = t->seq;
	if (c->tail)
		c->tail->next = t;
	else
		c->head = t;
	c->tail = t;
	if (!c->unsent)
		c->unsent = t;
}

/* Makes the engine and the log ready for the first commit. On failure
 * nothing is held: an engine taken here is given back. */
static int commit_ready(struct cow__commit *c)
{
	int took = 0, r = 0;

	if (!c->engine) {
		COW_TRY(cow__io_get(!(c->flags & COW_NOTHREAD)));
		c->engine = took = 1;
	}
	if (c->wal.fd < 0)
		r = cow__wal_create(&c->wal, c->seq_next, c->nosync);
	if (r < 0 && took) {
		cow__io_put(!(c->flags & COW_NOTHREAD));
		c->engine = 0;
	}
	return r;
}

/* Which dirty pages go into the transaction: not those equal to their
 * newest committed copy (and those already in the base are dropped). */
static int select_pages(struct cow_arena *a, struct cow__commit *c,
			const struct cow__pageset *rs, size_t **cap,
			size_t *ncap, struct cow__pageset *drop)
{
	struct latest l;
	size_t n = rs->pages, k = 0;
	int r;

	*ncap = 0;
	*cap = cow__mallocarray(n, sizeof(**cap));
	if (!*cap)
		return -ENOMEM;
	r = latest_build(c, rs, n, &l);
	for (size_t i = 0; r == 0 && i < rs->n; i++)
		for (size_t p = rs->v[i].first; p < rs->v[i].first + rs->v[i].n;
		     p++, k++) {
			const struct pref *f = &l.v[k];

			if (f->t &&
			    !memcmp(a->base + p * a->pgsz, f->src, a->pgsz)) {
				if (f->order &&
				    (r = cow__pageset_add(drop, p, 1)) < 0)
					break;
				continue;
			}
			(*cap)[(*ncap)++] = p;
		}
	cow__free(l.v);
	cow__free(l.start);
	return r;
}

/*
 * -EFBIG when the transaction's writes into the base (its pages, inside
 * the file, and the file's extension) reach past RLIMIT_FSIZE: found
 * before anything is logged, since a failure after the durable point
 * would stop the arena's commits.
 */
static int base_fsize_check(const struct cow_arena *a,
			    const struct cow__commit *c, const size_t *cap,
			    size_t n)
{
	off_t end = a->file_size > c->real_len ? a->file_size : 0;

	for (size_t i = 0; i < n; i++) {
		off_t e = (off_t)((cap[i] + 1) * a->pgsz);

		if (e > a->file_size)
			e = a->file_size;
		if (e > end)
			end = e;
	}
	return cow__sys_fsize_check(end);
}

static int commit_log(struct cow_arena *a, const struct cow__pageset *rs,
		      int async, int *took)
{
	struct cow__commit *c = a->commit;
	struct cow__pageset drop = COW__PAGESET_INIT;
	size_t *cap = NULL, ncap = 0;
	size_t old_size = c->size;
	off_t old_len = c->file_len;
	struct txn *t;
	int r, logged;

	COW_TRY(commit_ready(c));
	cow__io_lock();
	cow__io_poll();
	r = c->fatal;
	if (!r && c->async_err) {
		r = c->async_err;
		c->async_err = 0;
	}
	if (r == 0)
		r = select_pages(a, c, rs, &cap, &ncap, &drop);
	if (r < 0)
		goto fail;
	if (!ncap && a->size == c->size && a->file_size == c->file_len) {
		/* Nothing new: the content is the newest commit's. */
		if (!async)
			wait_for(c, all_applied);
		r = c->fatal;
		if (r < 0)
			goto fail;
		drop_runs(a, &drop);
		drop_applied(c);
		if (!async)
			drop_runs(a, rs);
		c->commits++;
		cow__io_unlock();
		*took = 1;
		goto out;
	}
	r = base_fsize_check(a, c, cap, ncap);
	if (r < 0)
		goto fail;
	t = txn_build(a, cap, ncap, async);
	if (!t) {
		r = -ENOMEM;
		goto fail;
	}
	drop_runs(a, &drop);
	drop_applied(c);
	txn_enqueue(c, t);
	c->size = a->size;
	c->file_len = a->file_size;
	if (!async && c->unsent == t && !c->log_b && !c->reset_busy &&
	    c->wal.end < CKPT_BYTES)
		log_direct(c);
	else
		kick(c);
	if (async) {
		c->commits++;
		cow__io_unlock();
		*took = 1;
		goto out;
	}
	while (!t->done)
		cow__io_wait();
	r = t->err;
	logged = t->state >= TX_LOGGED;
	if (t->state == TX_APPLIED) {
		drop_applied(c);
	} else {
		txn_unlink(c, t);
		txn_free(t);
	}
	if (r == 0)
		c->commits++;
	if (r < 0 && !logged) {
		c->size = old_size;
		c->file_len = old_len;
	}
	cow__io_unlock();
	if (r == 0)
		drop_runs(a, rs);
	*took = r == 0 || logged;
	goto out;
fail:
	cow__io_unlock();
out:
	cow__free(cap);
	cow__pageset_free(&drop);
	return r;
}

int cow__commit_write(struct cow_arena *a, const struct cow__pageset *dirty,
		      int async, int *took)
{
	*took = 0;
	if (!a->commit)
		return commit_direct(a, dirty, took);
	return commit_log(a, dirty, async, took);
}

int cow__commit_sync(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;
	int r;

	if (!c || !c->engine)
		return 0;
	cow__io_lock();
	/* Applied too: then the next commit can drop the pages. */
	wait_for(c, all_applied);
	r = c->fatal;
	if (!r) {
		r = c->async_err;
		c->async_err = 0;
	}
	cow__io_unlock();
	return r;
}
