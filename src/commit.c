// SPDX-License-Identifier: MIT
/*
 * Commits: the current content becomes the new base, atomically and
 * durably.
 *
 * A commit is a transaction: the dirty pages (found by the page scan)
 * are copied into a buffer of the commit's pool and become log frames
 * followed by a commit record. The order is
 *   1. append the transaction to the log (one sequential write) and
 *      fdatasync it: the durable point, where a synchronous commit
 *      returns;
 *   2. in the background, write the pages in place into the base
 *      (io_uring, sorted and coalesced runs, buffered: they land in the
 *      page cache);
 *   3. at the next call that has the writers paused (a commit, or the
 *      settle barrier of discard, revert, rollback), drop the private
 *      copies of the pages that are in the base and still hold what was
 *      committed (MADV_DONTNEED per run): the arena reads the new base.
 *      Never before: the dirty scan takes the pages of transactions not
 *      yet applied as private without testing them
 *      (cow__commit_unapplied);
 *   4. later, in the background, while appends go on: once the log holds
 *      CKPT_BYTES past its head (or an append finds no room in the ring),
 *      a checkpoint fdatasyncs the base, then writes the log's other
 *      header slot with the head moved past every transaction written in
 *      place, and fdatasyncs the log; only then is the ring's space
 *      before the new head reused. Syncing the base once per checkpoint,
 *      not per commit, keeps a commit's cost at one fdatasync: a crash
 *      before the checkpoint replays the log from its head. Appends wait
 *      only when the ring is full (back-pressure); a transaction larger
 *      than the ring waits until the log is empty and the checkpoint
 *      that empties it grows the ring.
 * An asynchronous commit returns once its pages are copied (captured); 1
 * and 2 run in the background and batch every transaction captured
 * meanwhile into one log write and one fdatasync (group commit). The base
 * is never written before its log record is durable, so a crash at any
 * instant leaves either the old content or, after replay, the new.
 *
 * From the durable point the committed content is the base for every
 * call: the settle barrier (cow__commit_settle) waits for the in-place
 * writes before anything drops a private copy or reads the file, and
 * cow_close waits for them. The copies of the transactions not yet written
 * in place are bounded (pending_max, 64 MiB by default): a commit that
 * would exceed it first waits for the background writes.
 *
 * Committed pages keep their private copies until then (a later store may
 * have changed a page after the capture, and only the caller can pause
 * writers): the next call with writers paused drops each page still equal
 * to its committed copy once that copy is in the base, and no commit
 * captures such a page again. Until then the dirty scans that report
 * (cow_dirty, cow_stats: writers may run) leave such a page out once its
 * commit is durable: it equals the base (cow__commit_split).
 *
 * This file calls only down: the log, the ring and the OS. arena.c finds
 * the dirty pages (track), saves what snapshots need of the old base
 * around a commit (snap), checks and refreshes the guard, and hands the
 * pages down to cow__commit_write.
 *
 * Errors (the "fsyncgate" rule: a failed fsync is never retried and
 * reported as success): a failure before the durable point fails the
 * commit and changes nothing; the log is rewound. A failure after it (the
 * in-place writes, the base's sync, the checkpoint) leaves the data safe in
 * the log; the arena then refuses further commits with that error, and
 * reopening the file recovers.
 *
 * Locks: all the state below is guarded by the commit's own lock
 * (struct cow__commit.lock), one per arena: its calls take it, and the
 * completions of its I/O run their done functions under it, in the
 * reaper thread (or a thread waiting). The io engine's lock guards the
 * ring alone and is taken inside this one (queueing an operation), never
 * around it. Nothing is submitted to the ring with the commit's lock
 * held (but when queueing finds the ring full: io.c submits to make
 * room): the calls queue their operations and submit them once they
 * dropped it (commit_unlock), and the reaper submits what completions
 * queued after running them. An asynchronous commit that joins the
 * queued transaction takes only this lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
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

/* The log is checkpointed (the base synced, the head moved) once it holds
 * this much past its head; its ring is twice that, so appends go on
 * meanwhile. Tests lower it to reach the checkpoint and the ring's wrap
 * often (cow__commit_ckpt_bytes). */
#define CKPT_DEFAULT ((off_t)16 << 20)
static off_t ckpt_bytes = CKPT_DEFAULT;
#define CKPT_BYTES __atomic_load_n(&ckpt_bytes, __ATOMIC_RELAXED)

void cow__commit_ckpt_bytes(off_t n)
{
	__atomic_store_n(&ckpt_bytes, n ? n : CKPT_DEFAULT, __ATOMIC_RELAXED);
}
/* The copies of commits not yet written in place, at most (a commit
 * larger than this alone waits until nothing else is pending). Tests
 * lower it (cow__commit_pending_max). */
#define PENDING_DEFAULT ((size_t)64 << 20)
static size_t pending_max = PENDING_DEFAULT;

void cow__commit_pending_max(size_t n)
{
	__atomic_store_n(&pending_max, n ? n : PENDING_DEFAULT,
			 __ATOMIC_RELAXED);
}
#define BATCH_BYTES ((size_t)16 << 20) /* most bytes per log write */
/*
 * A commit that finds this many pages of earlier commits unchanged and not
 * yet in place starts their apply (drop_wanted), so that the next commit
 * drops them all in one call. Page by page, a stream of commits of a
 * different page each paid an in-place write and a MADV_DONTNEED of one
 * page (a TLB flush, ~15 us in this VM) per commit; waiting for a batch,
 * each commit compares at most this many unchanged pages with their
 * copies (~0.2 us each).
 */
#define DROP_BATCH 16
#define MAX_IOV 1024
/* A log write is one write per log_iov iovecs (a frame takes two), and
 * goes to the ring as one linked chain with its fdatasync when that chain
 * has at most log_chain entries (start_log). Tests lower both to reach a
 * long log write with a few pages (cow__commit_log_split). */
static int log_iov = MAX_IOV;
static unsigned log_chain = COW__IO_CHAIN_MAX;

void cow__commit_log_split(int iov, unsigned chain)
{
	if (iov <= 0 || iov > MAX_IOV)
		iov = MAX_IOV;
	if (!chain || chain > COW__IO_CHAIN_MAX)
		chain = COW__IO_CHAIN_MAX;
	__atomic_store_n(&log_iov, iov, __ATOMIC_RELAXED);
	__atomic_store_n(&log_chain, chain, __ATOMIC_RELAXED);
}
#define MAX_RUN ((size_t)1 << 30) /* bytes per in-place write */

enum txn_state { TX_QUEUED, TX_LOGGING, TX_LOGGED, TX_APPLIED };

struct txn {
	struct txn *next;
	uint64_t seq;
	enum txn_state state;
	/* owned: the queue frees it (an asynchronous commit, or a
	 * synchronous one that returned); else its waiting caller does */
	int owned, done, err;
	int inflight; /* in a log write or an apply in flight */
	int pending;  /* counted in c->pending: not yet written in place */
	size_t nframes, room; /* frames, and room for */
	size_t *pages;
	struct cow__wal_frame *fh; /* and pages, in one allocation */
	struct cow__wal_commit rec;
	/* the captured images, frame i at i * pgsz (zeros past the file's
	 * end), a buffer of the pool */
	char *copy;
	unsigned order; /* of the copy buffer */
	off_t file_len;
	size_t bytes; /* in the log */
};

/*
 * Copy buffers, reused across commits: a buffer of 2^order pages per
 * transaction, kept on a free list per order once its transaction is
 * gone (up to POOL_IDLE bytes idle), so a commit's copy costs no page
 * faults once the pool is warm (a fresh malloc of 1 MiB cost ~1 ms of
 * faults). Guarded by the commit's lock, like all the commit state.
 */
#define POOL_ORDERS 20
#define POOL_IDLE ((size_t)16 << 20)
struct pool {
	void *free[POOL_ORDERS]; /* linked through their first word */
	size_t idle;		 /* bytes on the free lists */
};

/*
 * Open addressing with linear probing, keyed by page: the transaction and
 * frame holding the newest captured image of the page among the live
 * transactions. Set when a transaction is queued (or a batch takes newer
 * images), cleared when it is freed; a commit and a dirty report look up
 * only the pages they meet, never walk the queue.
 */
struct slot {
	size_t page;
	struct txn *t; /* NULL: empty */
	size_t frame;
};

struct pindex {
	struct slot *v;
	size_t cap, n; /* cap a power of two, or 0 */
};

struct batch {
	struct batch *next;
	struct cow__commit *c;
	struct txn *first;
	size_t ntx;
	uint64_t last_seq;
	uint64_t start, end; /* log positions */
	struct cow__io_group g;
	struct cow__io_op *ops;
	struct iovec *iov;
	size_t niov;
	size_t ops_cap, iov_cap; /* kept when the batch is reused */
	int chunk;		 /* a log write's iovecs per write (log_iov) */
};

struct cow__commit {
	pthread_mutex_t lock; /* guards all below (but the fields set once) */
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
	int sync_busy, ckpt_busy, closing, in_kick, kick_again;
	int blocked;	      /* the next append waits for room in the ring */
	int apply_now;	      /* callers waiting for the in-place writes */
	int drop_wanted;      /* apply: a batch of pages to drop waits */
	uint64_t ring_want;   /* a ring this large, once the log is empty */
	uint64_t applied_pos; /* log position after the last applied batch */
	uint64_t sync_target;
	int fatal;	/* data safe in the log; no more commits */
	int torn;	/* the base's page cache may be partly applied */
	int async_err;	/* an asynchronous commit failed (reported once) */
	unsigned again; /* background steps retried in a row (retry) */
	struct cow__io_group sync_g, ckpt_g;
	struct cow__io_op sync_op, ckpt_op[3];
	struct iovec ckpt_iov;
	char *ckpt_sector; /* the header slot being written */
	struct cow__wal_hdr ckpt_hdr;
	uint64_t ckpt_seq; /* the last transaction the checkpoint covers */
	size_t size;	   /* the last commit's arena size */
	off_t file_len;	   /* and file length */
	size_t pending;	   /* bytes of copies not yet written in place */
	struct pool pool;
	struct pindex index;
	/*
	 * Kept for the next commit, so that an asynchronous commit in the
	 * steady state allocates nothing here: transactions (with their
	 * frame arrays; the copy goes back to the pool) and batches (with
	 * their arrays) that were freed, and the arrays a commit and an
	 * apply fill and drop.
	 */
	struct txn *spare_txn;
	struct batch *spare_batch;
	unsigned nspare_txn, nspare_batch;
	size_t *sel;	 /* select_pages: the pages to capture */
	struct img *img; /* start_apply: the newest images */
	size_t *unap;	 /* cow__commit_unapplied: their pages */
	size_t sel_cap, img_cap, unap_cap;
};

static void kick(struct cow__commit *c);

static void commit_lock(struct cow__commit *c)
{
	pthread_mutex_lock(&c->lock);
}

/* Drops the lock, then submits what was queued under it. */
static void commit_unlock(struct cow__commit *c)
{
	pthread_mutex_unlock(&c->lock);
	if (c->engine)
		(void)cow__io_submit();
}

/* With the lock held: drops it until a completion was processed (what
 * was queued is submitted first), then takes it again. Call only while
 * something of this commit's is queued or in flight. */
static void commit_wait(struct cow__commit *c)
{
	unsigned gen = cow__io_gen();

	commit_unlock(c);
	cow__io_wait(gen);
	commit_lock(c);
}

/* ---- copy buffers ---- */

static unsigned pool_order(size_t npages)
{
	unsigned o = 0;

	while (((size_t)1 << o) < npages)
		o++;
	return o;
}

/* A buffer of at least npages pages (order in *order), or NULL. */
static char *pool_get(struct cow__commit *c, size_t npages, unsigned *order)
{
	unsigned o = pool_order(npages ? npages : 1);
	void *p;

	*order = o;
	if (o >= POOL_ORDERS)
		return cow__mallocarray(npages, c->pgsz);
	p = c->pool.free[o];
	if (p) {
		c->pool.free[o] = *(void **)p;
		c->pool.idle -= c->pgsz << o;
		return p;
	}
	return cow__mallocarray((size_t)1 << o, c->pgsz);
}

static void pool_put(struct cow__commit *c, char *p, unsigned order)
{
	if (!p)
		return;
	if (order >= POOL_ORDERS ||
	    c->pool.idle + (c->pgsz << order) > POOL_IDLE) {
		cow__free(p);
		return;
	}
	*(void **)p = c->pool.free[order];
	c->pool.free[order] = p;
	c->pool.idle += c->pgsz << order;
}

static void pool_free(struct cow__commit *c)
{
	for (unsigned o = 0; o < POOL_ORDERS; o++)
		while (c->pool.free[o]) {
			void *p = c->pool.free[o];

			c->pool.free[o] = *(void **)p;
			cow__free(p);
		}
	c->pool.idle = 0;
}

/* ---- the page index: each queued page's newest image ---- */

static size_t slot_of(const struct pindex *x, size_t page)
{
	uint64_t h = (uint64_t)page * 0x9e3779b97f4a7c15ull;

	return (size_t)(h ^ (h >> 29)) & (x->cap - 1);
}

static struct slot *index_find(const struct pindex *x, size_t page)
{
	if (!x->n)
		return NULL;
	for (size_t i = slot_of(x, page);; i = (i + 1) & (x->cap - 1)) {
		if (!x->v[i].t)
			return NULL;
		if (x->v[i].page == page)
			return &x->v[i];
	}
}

/* Room for more entries, so that index_set cannot fail. */
static int index_reserve(struct pindex *x, size_t more)
{
	struct pindex y = {0};
	size_t cap = x->cap ? x->cap : 64;

	while ((x->n + more) * 4 > cap * 3) {
		if (cap > SIZE_MAX / 2 / sizeof(*y.v))
			return -ENOMEM;
		cap *= 2;
	}
	if (cap == x->cap)
		return 0;
	y.v = cow__calloc(cap, sizeof(*y.v));
	if (!y.v)
		return -ENOMEM;
	y.cap = cap;
	for (size_t i = 0; i < x->cap; i++)
		if (x->v[i].t) {
			size_t j = slot_of(&y, x->v[i].page);

			while (y.v[j].t)
				j = (j + 1) & (cap - 1);
			y.v[j] = x->v[i];
		}
	y.n = x->n;
	cow__free(x->v);
	*x = y;
	return 0;
}

/* With room reserved. */
static void index_set(struct pindex *x, size_t page, struct txn *t,
		      size_t frame)
{
	size_t i = slot_of(x, page);

	while (x->v[i].t && x->v[i].page != page)
		i = (i + 1) & (x->cap - 1);
	if (!x->v[i].t)
		x->n++;
	x->v[i].page = page;
	x->v[i].t = t;
	x->v[i].frame = frame;
}

/* Removes s, moving back the entries after it that probed past it. */
static void index_remove(struct pindex *x, struct slot *s)
{
	size_t i = (size_t)(s - x->v), j = i;

	x->v[i].t = NULL;
	x->n--;
	for (;;) {
		size_t k;

		j = (j + 1) & (x->cap - 1);
		if (!x->v[j].t)
			return;
		k = slot_of(x, x->v[j].page);
		/* x->v[j] may move to i if its home k is not in (i, j] */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		x->v[i] = x->v[j];
		x->v[j].t = NULL;
		i = j;
	}
}

/* Forgets the pages whose newest image is t's. */
static void index_drop_txn(struct pindex *x, const struct txn *t)
{
	for (size_t j = 0; j < t->nframes; j++) {
		struct slot *s = index_find(x, t->pages[j]);

		if (s && s->t == t)
			index_remove(x, s);
	}
}

/* ---- transactions ---- */

/* t's copies are in the base (or will never be): no longer pending. */
static void txn_written(struct cow__commit *c, struct txn *t)
{
	if (t->pending) {
		c->pending -= t->nframes * c->pgsz;
		t->pending = 0;
	}
}

#define SPARES 4 /* transactions, and batches, kept for reuse */

static void txn_free(struct cow__commit *c, struct txn *t)
{
	struct cow__wal_frame *fh;
	size_t room;

	if (!t)
		return;
	txn_written(c, t);
	index_drop_txn(&c->index, t);
	pool_put(c, t->copy, t->order);
	if (c->nspare_txn >= SPARES) {
		cow__free(t->fh);
		cow__free(t);
		return;
	}
	fh = t->fh;
	room = t->room;
	memset(t, 0, sizeof(*t));
	t->fh = fh;
	t->room = room;
	t->pages = (size_t *)(fh + room);
	t->next = c->spare_txn;
	c->spare_txn = t;
	c->nspare_txn++;
}

/* A transaction, reused if one is spare (its frame arrays kept, no copy
 * buffer), else new; NULL when out of memory. */
static struct txn *txn_get(struct cow__commit *c)
{
	struct txn *t = c->spare_txn;

	if (!t)
		return cow__calloc(1, sizeof(*t));
	c->spare_txn = t->next;
	c->nspare_txn--;
	t->next = NULL;
	return t;
}

/* Frees a transaction that was never queued (its arrays too). */
static void txn_destroy(struct cow__commit *c, struct txn *t)
{
	pool_put(c, t->copy, t->order);
	cow__free(t->fh);
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
		txn_free(c, t);
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
		if (t->owned) {
			if (!c->async_err)
				c->async_err = err;
			txn_free(c, t);
		}
		/* A synchronous transaction belongs to its waiting caller. */
		t = n;
	}
}

/* ---- background steps ---- */

/*
 * Whether a background step that failed with err runs again: -EAGAIN says
 * only that the ring did not take some of its operations (the kernel
 * could not allocate a request, or a chain found the ring full) and that
 * none of those ran; each step is whole again when repeated (an apply
 * writes the same images, a checkpoint the same header slot, a sync syncs
 * more). At most RETRY_MAX times in a row: then the error stands, and the
 * arena stops committing as for any other failure. A step that succeeds
 * resets the count.
 */
#define RETRY_MAX 8

static int retry(struct cow__commit *c, int err)
{
	if (!err) {
		c->again = 0;
		return 0;
	}
	return err == -EAGAIN && c->again++ < RETRY_MAX;
}

static void ckpt_done(void *ctx, int err)
{
	struct cow__commit *c = ctx;

	c->ckpt_busy = 0;
	if (retry(c, err)) {
		kick(c); /* the same checkpoint is still due */
		return;
	}
	if (err) {
		/* Any other failure is not retried (a failed fdatasync).
		 * The old head stays valid: nothing was written before
		 * it. */
		set_fatal(c, err);
	} else {
		cow__wal_head_moved(&c->wal, &c->ckpt_hdr);
		if (!c->nosync && c->ckpt_seq > c->seq_base)
			c->seq_base = c->ckpt_seq;
	}
	kick(c);
}

/*
 * Moves the log's head past every applied transaction: the base's
 * fdatasync (the in-place writes are done), then the header slot not in
 * use, then the log's fdatasync, linked in that order. With ring set, the
 * log is empty and the header names a ring of that size.
 */
static void start_ckpt(struct cow__commit *c, uint64_t ring)
{
	off_t off = cow__wal_next_header(&c->wal, c->seq_applied + 1,
					 c->applied_pos, ring, &c->ckpt_hdr);
	unsigned link = c->nosync ? 0 : COW__IO_LINK;

	c->ckpt_seq = c->seq_applied;
	memset(c->ckpt_sector, 0, COW__WAL_SLOT);
	memcpy(c->ckpt_sector, &c->ckpt_hdr, sizeof(c->ckpt_hdr));
	c->ckpt_iov.iov_base = c->ckpt_sector;
	c->ckpt_iov.iov_len = COW__WAL_SLOT;
	c->ckpt_busy = 1;
	cow__io_group_init(&c->ckpt_g, ckpt_done, c, &c->lock);
	if ((c->nosync ||
	     cow__io_fsync(&c->ckpt_op[0], &c->ckpt_g, c->basefd, link) == 0) &&
	    cow__io_write(&c->ckpt_op[1], &c->ckpt_g, c->wal.fd, &c->ckpt_iov,
			  1, off, link) == 0 &&
	    !c->nosync)
		(void)cow__io_fsync(&c->ckpt_op[2], &c->ckpt_g, c->wal.fd, 0);
	cow__io_group_release(&c->ckpt_g);
}

static void sync_done(void *ctx, int err)
{
	struct cow__commit *c = ctx;

	c->sync_busy = 0;
	if (retry(c, err)) {
		kick(c); /* still closing: the sync starts again */
		return;
	}
	if (err) {
		/* A failed fdatasync is not retried: the kernel may have
		 * dropped the pages. The log keeps the transactions;
		 * reopening replays them. */
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
	cow__io_group_init(&c->sync_g, sync_done, c, &c->lock);
	(void)cow__io_fsync(&c->sync_op, &c->sync_g, c->basefd, 0);
	cow__io_group_release(&c->sync_g);
}

static void batch_destroy(struct batch *b)
{
	cow__free(b->ops);
	cow__free(b->iov);
	cow__free(b);
}

/* Done with b: kept for the next log write or apply (its arrays too). */
static void batch_free(struct cow__commit *c, struct batch *b)
{
	if (c->nspare_batch >= SPARES) {
		batch_destroy(b);
		return;
	}
	b->next = c->spare_batch;
	c->spare_batch = b;
	c->nspare_batch++;
}

/* A batch, reused if one is spare (its arrays kept), else new; NULL
 * when out of memory. */
static struct batch *batch_get(struct cow__commit *c)
{
	struct batch *b = c->spare_batch;

	struct cow__io_op *ops;
	struct iovec *iov;
	size_t ops_cap, iov_cap;

	if (!b)
		return cow__calloc(1, sizeof(*b));
	c->spare_batch = b->next;
	c->nspare_batch--;
	ops = b->ops;
	iov = b->iov;
	ops_cap = b->ops_cap;
	iov_cap = b->iov_cap;
	memset(b, 0, sizeof(*b));
	b->ops = ops;
	b->iov = iov;
	b->ops_cap = ops_cap;
	b->iov_cap = iov_cap;
	return b;
}

/* Room in b's arrays for niov buffers and nops operations: 0, or -ENOMEM
 * (the arrays b holds stay valid). */
static int batch_room(struct batch *b, size_t niov, size_t nops)
{
	void *p;

	p = cow__array_grow(b->iov, &b->iov_cap, niov ? niov : 1,
			    sizeof(*b->iov), 16);
	if (!p)
		return -ENOMEM;
	b->iov = p;
	p = cow__array_grow(b->ops, &b->ops_cap, nops ? nops : 1,
			    sizeof(*b->ops), 4);
	if (!p)
		return -ENOMEM;
	b->ops = p;
	return 0;
}

static void apply_done(void *ctx, int err)
{
	struct batch *b = ctx;
	struct cow__commit *c = b->c;
	struct txn *t = b->first;

	c->apply_b = NULL;
	if (retry(c, err)) {
		/* Not torn: the apply starts again, first of the logged
		 * batches (the pages it wrote get the same images again). */
		for (size_t i = 0; i < b->ntx; i++, t = t->next)
			t->inflight = 0;
		b->next = c->logged;
		c->logged = b;
		if (!c->logged_tail)
			c->logged_tail = b;
		c->drop_wanted = 1;
		kick(c);
		return;
	}
	if (err)
		c->torn = err;
	for (size_t i = 0; i < b->ntx; i++, t = t->next) {
		t->inflight = 0;
		t->state = TX_APPLIED;
		t->err = err;
		t->done = 1;
		txn_written(c, t);
		if (err && t->owned && !c->async_err)
			c->async_err = err;
	}
	if (!err) {
		c->seq_applied = b->last_seq;
		c->applied_pos = b->end;
	} else
		set_fatal(c, err);
	batch_free(c, b);
	kick(c);
}

/* A page image an apply writes: pos orders the images of one page (the
 * later frame in the batch is the newer image). */
struct img {
	size_t page, pos;
	const char *src;
};

static int img_cmp(const void *x, const void *y)
{
	const struct img *a = x, *b = y;

	if (a->page != b->page)
		return a->page < b->page ? -1 : 1;
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* The newest image of each page of the batch inside file_len, sorted by
 * page, into v (room for every frame); returns their number. */
static size_t apply_images(struct cow__commit *c, struct batch *b,
			   off_t file_len, struct img *v)
{
	struct txn *t = b->first;
	size_t n = 0, k = 0;

	for (size_t i = 0; i < b->ntx; i++, t = t->next)
		for (size_t j = 0; t->copy && j < t->nframes; j++, n++) {
			v[n].page = t->pages[j];
			v[n].pos = n;
			v[n].src = t->copy + j * c->pgsz;
		}
	qsort(v, n, sizeof(*v), img_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && v[i + 1].page == v[i].page)
			continue;
		if ((off_t)(v[i].page * c->pgsz) >= file_len)
			continue;
		v[k++] = v[i];
	}
	return k;
}

/*
 * Writes the batch's pages in place, in the background: the newest image
 * of each page, sorted and coalesced into runs, one write per run, none
 * linked to another (the writes go to the page cache; ordering them only
 * serialises them), each run by the kernel's workers (COW__IO_ASYNC), so
 * that the submitting thread - often a committing caller - does not copy
 * the pages itself.
 */
static void start_apply(struct cow__commit *c, struct batch *b)
{
	size_t n = 0, k, pgsz = c->pgsz;
	struct txn *t = b->first;
	off_t file_len = 0;
	struct img *v;

	for (size_t i = 0; i < b->ntx; i++, t = t->next) {
		n += t->nframes;
		file_len = t->file_len;
		t->inflight = 1;
	}
	c->apply_b = b;
	__atomic_store_n(&c->arena->refresh, 1, __ATOMIC_RELAXED);
	cow__io_group_init(&b->g, apply_done, b, &c->lock);
	v = cow__array_grow(c->img, &c->img_cap, n ? n : 1, sizeof(*v), 16);
	if (v)
		c->img = v;
	/* 2 operations per page at most (the file and an isolated copy) */
	if (!v || batch_room(b, n, 2 * n) < 0) {
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
	k = apply_images(c, b, file_len, v);
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
		if (cow__io_write(&b->ops[nops++], &b->g, c->basefd, &b->iov[i],
				  (int)(j - i), off, COW__IO_ASYNC) < 0)
			break;
		if (c->copyfd >= 0 &&
		    cow__io_write(&b->ops[nops++], &b->g, c->copyfd, &b->iov[i],
				  (int)(j - i), off, COW__IO_ASYNC) < 0)
			break;
		i = j;
	}
out:
	cow__io_group_release(&b->g);
}

/*
 * Gives back the copies of the logged transactions waiting for their
 * apply whose every page has a newer image in a logged transaction (the
 * page index's): the apply, which takes every logged transaction at once
 * and writes the newest image of each page, reads nothing of them. So a
 * page committed again and again holds one copy, not one per commit
 * since the last apply (each a buffer of the pool: one that must grow
 * costs page faults, ~1 ms per MiB). A page whose newer image went with
 * a failed log write has no entry: its copy stays.
 */
static void release_superseded(struct cow__commit *c)
{
	for (struct batch *b = c->logged; b; b = b->next) {
		struct txn *t = b->first;

		for (size_t i = 0; i < b->ntx; i++, t = t->next) {
			size_t j = 0;

			if (!t->copy || t->inflight || t->state != TX_LOGGED)
				continue;
			for (; j < t->nframes; j++) {
				const struct slot *s =
				    index_find(&c->index, t->pages[j]);

				if (!s || s->t == t || s->t->state < TX_LOGGED)
					break;
			}
			if (j < t->nframes)
				continue;
			txn_written(c, t);
			pool_put(c, t->copy, t->order);
			t->copy = NULL;
		}
	}
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
				      cow__wal_off(&c->wal, b->start));
		fail_from(c, b->first, err);
		batch_free(c, b);
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
	release_superseded(c);
	set_fatal(c, 0);
	kick(c);
}

/* Seals the records with the log's current salt and position. */
static void seal_txn(struct cow__commit *c, struct txn *t)
{
	uint64_t chain = cow__wal_chain_start(c->wal.salt, t->seq);

	for (size_t i = 0; i < t->nframes; i++) {
		cow__wal_frame_seal(&t->fh[i], c->wal.salt,
				    t->copy + i * c->pgsz, c->pgsz);
		chain = cow__wal_chain(chain, t->fh[i].sum);
	}
	t->rec.frames_sum = chain;
	t->rec.synced_end = c->wal.synced;
	cow__wal_commit_seal(&t->rec, c->wal.salt);
}

/* Adds len bytes at base to the batch's iovecs, the next at log position
 * *pos: split in two where the ring wraps. */
static void batch_add(struct cow__commit *c, struct batch *b, void *base,
		      size_t len, uint64_t *pos)
{
	uint64_t left = c->wal.ring - *pos % c->wal.ring;

	if (len > left) {
		b->iov[b->niov].iov_base = base;
		b->iov[b->niov++].iov_len = (size_t)left;
		base = (char *)base + left;
		len -= (size_t)left;
		*pos += left;
	}
	b->iov[b->niov].iov_base = base;
	b->iov[b->niov++].iov_len = len;
	*pos += len;
}

/* The next write of the batch, from iovec i at log position pos: its
 * number of iovecs (at most b->chunk, never across the ring's end) and,
 * in *len, its bytes. */
static int batch_chunk(struct cow__commit *c, const struct batch *b, size_t i,
		       uint64_t pos, size_t *len)
{
	int cnt = 0;

	*len = 0;
	while (i + (size_t)cnt < b->niov && cnt < b->chunk) {
		if (cnt && (pos + *len) % c->wal.ring == 0)
			break;
		*len += b->iov[i + (size_t)cnt++].iov_len;
	}
	return cnt;
}

/* Does t fit in the ring now, before its head? */
static int fits(struct cow__commit *c, const struct txn *t)
{
	return t->bytes <= cow__wal_room(&c->wal);
}

/* Takes the unsent transactions (up to BATCH_BYTES, and the room in the
 * ring) as the next log write: sealed, their room reserved, c->log_b set.
 * NULL if none. The first fits (the caller checked). */
static struct batch *log_prepare(struct cow__commit *c)
{
	struct batch *b = batch_get(c);
	size_t bytes = 0, niov = 0, nops;
	uint64_t room = cow__wal_room(&c->wal), pos;
	struct txn *t;
	int r;

	if (!b) {
		fail_from(c, c->unsent, -ENOMEM);
		return NULL;
	}
	b->c = c;
	b->first = c->unsent;
	for (t = c->unsent; t; t = t->next) {
		if (b->ntx &&
		    (bytes + t->bytes > BATCH_BYTES || bytes + t->bytes > room))
			break;
		bytes += t->bytes;
		niov += 2 * t->nframes + 1;
		b->ntx++;
		b->last_seq = t->seq;
	}
	/* one more iovec and one more write where the ring wraps */
	b->chunk = __atomic_load_n(&log_iov, __ATOMIC_RELAXED);
	nops = (niov + (size_t)b->chunk - 1) / (size_t)b->chunk + 2;
	r = batch_room(b, niov + 1, nops);
	if (r == 0)
		r = cow__wal_reserve(&c->wal, bytes);
	if (r < 0) {
		fail_from(c, b->first, r);
		batch_free(c, b);
		return NULL;
	}
	t = b->first;
	pos = c->wal.end;
	for (size_t i = 0; i < b->ntx; i++, t = t->next) {
		seal_txn(c, t);
		t->state = TX_LOGGING;
		t->inflight = 1;
		for (size_t j = 0; j < t->nframes; j++) {
			batch_add(c, b, &t->fh[j], sizeof(t->fh[j]), &pos);
			batch_add(c, b, t->copy + j * c->pgsz, c->pgsz, &pos);
		}
		batch_add(c, b, &t->rec, sizeof(t->rec), &pos);
	}
	c->unsent = t;
	b->start = c->wal.end;
	b->end = b->start + bytes;
	c->wal.end = b->end;
	c->log_b = b;
	return b;
}

/* The number of writes of the batch's log write. */
static size_t batch_writes(struct cow__commit *c, const struct batch *b)
{
	uint64_t pos = b->start;
	size_t n = 0;

	for (size_t i = 0, len; i < b->niov; pos += len, n++)
		i += (size_t)batch_chunk(c, b, i, pos, &len);
	return n;
}

/*
 * Appends the unsent transactions through the ring: a write per chunk of
 * iovecs, then (without COW_NOSYNC) the log's fdatasync, which must not
 * start before every write completed. Usually the writes and the sync are
 * one linked chain: a write that fails cancels the rest, the sync among
 * them (-ECANCELED), and io.c makes room on the ring for a chain of up
 * to COW__IO_CHAIN_MAX entries. A longer one (a log write of more than
 * ~250 MiB, which only one transaction makes: BATCH_BYTES bounds a batch
 * of several) may find the ring full in its middle, where io.c fails it
 * rather than cut it (the kernel ends a link at the end of a submission:
 * the sync would run before some of the writes, a commit reported
 * durable that is not). So a long log write's writes go unlinked, and its
 * sync waits for them all (COW__IO_AFTER) and does not run if one failed.
 * It costs a hand-over (the last write's completion, then the sync's
 * submission) and delays no one else's I/O.
 * The writes' order among themselves does not matter: recovery validates
 * each transaction whole (each frame's checksum, and the commit record's
 * chain of them), and a crash leaves the log's unsynced tail in any state
 * anyway.
 */
static void start_log(struct cow__commit *c)
{
	struct batch *b = log_prepare(c);
	unsigned chain = __atomic_load_n(&log_chain, __ATOMIC_RELAXED);
	uint64_t pos;
	size_t op = 0;
	int linked;

	if (!b)
		return;
	pos = b->start;
	cow__io_group_init(&b->g, log_done, b, &c->lock);
	/* Inside the log's preallocation, checked when it was made; the
	 * limit may have been lowered since. */
	b->g.err = cow__sys_fsize_check(
	    cow__wal_span_end(&c->wal, b->start, (size_t)(b->end - b->start)));
	if (b->g.err)
		goto out;
	linked = batch_writes(c, b) + !c->nosync <= chain;
	/* By the kernel's workers (COW__IO_ASYNC): the submission, often
	 * made by a committing caller, does not copy the pages itself. */
	for (size_t i = 0, len; i < b->niov; pos += len) {
		int cnt = batch_chunk(c, b, i, pos, &len);
		unsigned how = COW__IO_ASYNC;
		size_t at = i;

		i += (size_t)cnt;
		if (linked && (i < b->niov || !c->nosync))
			how |= COW__IO_LINK;
		if (cow__io_write(&b->ops[op++], &b->g, c->wal.fd, &b->iov[at],
				  cnt, cow__wal_off(&c->wal, pos), how) < 0)
			goto out;
	}
	if (!c->nosync)
		(void)cow__io_fsync(&b->ops[op], &b->g, c->wal.fd,
				    linked ? 0 : COW__IO_AFTER);
out:
	cow__io_group_release(&b->g);
}

/*
 * The same on the caller's thread, for a synchronous commit that finds
 * the log idle: pwritev and fdatasync directly cost no hand-over to the
 * ring's thread and back, which is most of a small commit's latency.
 * With the commit's lock held; drops it during the I/O.
 */
static void log_direct(struct cow__commit *c)
{
	struct batch *b = log_prepare(c);
	uint64_t pos;
	int r = 0;

	if (!b)
		return;
	commit_unlock(c);
	pos = b->start;
	for (size_t i = 0, len; r == 0 && i < b->niov; pos += len) {
		int cnt = batch_chunk(c, b, i, pos, &len);
		ssize_t n = cow__sys_pwritev(c->wal.fd, &b->iov[i], cnt,
					     cow__wal_off(&c->wal, pos));

		/* a short buffered write: out of room (as the ring says) */
		r = n < 0 ? (int)n : (size_t)n == len ? 0 : -ENOSPC;
		i += (size_t)cnt;
	}
	if (r == 0 && !c->nosync)
		r = cow__sys_fsync(c->wal.fd, 1);
	commit_lock(c);
	log_done(b, r);
}

/*
 * Starts a checkpoint if one is due: the log holds CKPT_BYTES past its
 * head and half of that is applied (the head moves by that much at
 * least), or the next append finds no room and anything past the head is
 * applied. An append larger than the whole ring waits until
 * everything logged is applied: that checkpoint empties the log and
 * grows the ring.
 */
static void ckpt_maybe(struct cow__commit *c)
{
	struct cow__wal *w = &c->wal;
	int grow;

	c->blocked = c->unsent && !fits(c, c->unsent);
	if (c->blocked && c->unsent->bytes > w->ring &&
	    c->ring_want < 2 * c->unsent->bytes)
		c->ring_want = 2 * c->unsent->bytes;
	if (c->ckpt_busy)
		return;
	grow = c->ring_want > w->ring && !c->log_b &&
	       c->applied_pos == w->end && c->seq_applied == c->seq_logged;
	if (grow)
		start_ckpt(c, c->ring_want);
	else if (c->blocked ? c->applied_pos > w->head_pos
			    : w->end - w->head_pos >= (uint64_t)CKPT_BYTES &&
				  c->applied_pos - w->head_pos >=
				      (uint64_t)CKPT_BYTES / 2)
		start_ckpt(c, w->ring);
}

/*
 * Are the logged transactions to be written in place now? Only when
 * something needs them there: a caller waiting (the settle barrier, sync,
 * close, room for copies), the checkpoint (the log holds CKPT_BYTES not
 * yet applied, or the ring is full), the copies reaching half their bound,
 * a commit that grew the file of an isolated arena (the apply extends
 * it, as soon as the commit is durable), or a commit that found
 * DROP_BATCH pages of earlier ones unchanged (select_pages): they hold the
 * base once it is in place, and the next commit drops them together
 * instead of comparing them again each time. Until then they wait, and
 * the next ones join them: the apply writes the newest image of each page
 * once for all of them, not once per commit. Recovery does not need the
 * earlier images in place: the log keeps every transaction from its head
 * on, and the head moves only past transactions written in place and
 * synced (start_ckpt).
 */
static int apply_due(struct cow__commit *c)
{
	size_t max = __atomic_load_n(&pending_max, __ATOMIC_RELAXED);

	return c->apply_now || c->closing || c->blocked ||
	       c->wal.end - c->applied_pos >= (uint64_t)CKPT_BYTES ||
	       c->pending > max / 2 || c->file_len > c->real_len ||
	       c->drop_wanted;
}

/* Every logged batch as one apply: they follow each other in the list of
 * transactions, so the first batch takes the others' transactions. */
static struct batch *take_logged(struct cow__commit *c)
{
	struct batch *b = c->logged, *n;

	while ((n = b->next)) {
		b->ntx += n->ntx;
		b->last_seq = n->last_seq;
		b->end = n->end;
		b->next = n->next;
		batch_free(c, n);
	}
	c->logged = c->logged_tail = NULL;
	return b;
}

/* Advances the background work as far as it can go now: queues the next
 * steps' I/O (the caller submits it, commit_unlock, or the reaper after
 * the completions it ran). */
static void kick(struct cow__commit *c)
{
	if (c->in_kick) {
		c->kick_again = 1;
		return;
	}
	c->in_kick = 1;
	do {
		c->kick_again = 0;
		if (!c->apply_b && c->logged && !c->fatal && apply_due(c)) {
			c->drop_wanted = 0;
			start_apply(c, take_logged(c));
		}
		if (c->closing && !c->nosync && !c->sync_busy && !c->fatal &&
		    !c->apply_b && !c->logged && !c->log_b &&
		    c->seq_applied > c->seq_base)
			start_sync(c);
		if (c->fatal || c->wal.fd < 0)
			continue;
		ckpt_maybe(c);
		if (c->unsent && !c->log_b && !c->blocked)
			start_log(c);
	} while (c->kick_again);
	c->in_kick = 0;
}

/* ---- waiting ---- */

static int idle(struct cow__commit *c)
{
	return !c->log_b && !c->apply_b && !c->sync_busy && !c->ckpt_busy &&
	       ((!c->unsent && !c->logged) || c->fatal);
}

/* With the lock held: wait until cond(c) holds (the in-place writes
 * start at once meanwhile: every wait needs them or what follows them). */
static void wait_for(struct cow__commit *c, int (*cond)(struct cow__commit *))
{
	c->apply_now++;
	kick(c);
	while (!cond(c))
		commit_wait(c);
	c->apply_now--;
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
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->pgsz = pgsz;
	c->flags = flags;
	c->nosync = !!(flags & COW_NOSYNC);
	c->basefd = -1;
	c->copyfd = -1;
	c->wal.fd = -1;
	c->wal.dirfd = -1;
	c->real_len = st.st_size;
	c->ckpt_sector = cow__malloc(COW__WAL_SLOT);
	r = c->ckpt_sector ? 0 : -ENOMEM;
	if (r < 0)
		goto err_c;
	r = cow__wal_open(&c->wal, path, fd, pgsz, !!(flags & COW_READONLY),
			  &info);
	if (r < 0)
		goto err_sector;
	if (!(flags & COW_READONLY)) {
		r = cow__sys_open(cow__fd_path(link, fd), O_RDWR | O_CLOEXEC,
				  0);
		if (r < 0)
			goto err_wal;
		c->basefd = r;
	}
	if (info.ntx) {
		/* the replay may have changed the file's length */
		r = cow__sys_fstat(fd, &st);
		if (r < 0)
			goto err_base;
		c->real_len = st.st_size;
	}
	c->seq_next = info.present ? info.last_seq + 1 : 1;
	c->seq_logged = c->seq_applied = c->seq_base = c->seq_next - 1;
	*out = c;
	return 0;

err_base:
	if (c->basefd >= 0)
		cow__sys_close(c->basefd);
err_wal:
	cow__wal_close(&c->wal, 0);
err_sector:
	cow__free(c->ckpt_sector);
err_c:
	pthread_mutex_destroy(&c->lock);
	cow__free(c);
	return r;
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
		batch_destroy(b);
	}
	while (c->spare_batch) {
		struct batch *b = c->spare_batch;

		c->spare_batch = b->next;
		batch_destroy(b);
	}
	while (c->head) {
		struct txn *t = c->head;

		c->head = t->next;
		txn_free(c, t);
	}
	while (c->spare_txn) {
		struct txn *t = c->spare_txn;

		c->spare_txn = t->next;
		txn_destroy(c, t);
	}
	pool_free(c);
	cow__free(c->index.v);
	cow__free(c->sel);
	cow__free(c->img);
	cow__free(c->unap);
	cow__wal_close(&c->wal, 0);
	cow__sys_close(c->basefd);
	cow__free(c->ckpt_sector);
	pthread_mutex_destroy(&c->lock);
	cow__free(c);
}

void cow__commit_close(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;
	int clean;

	if (!c)
		return;
	if (c->engine) {
		commit_lock(c);
		c->closing = 1;
		wait_for(c, idle);
		/* The log goes only when every transaction it holds is in
		 * the base, and (unless COW_NOSYNC) the base is synced: a
		 * failed in-place write leaves it for the next open to
		 * replay, with COW_NOSYNC too. */
		clean = !c->fatal && c->seq_applied == c->seq_logged &&
			(c->nosync || c->seq_base == c->seq_logged);
		commit_unlock(c);
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
	commit_lock(c);
	wait_for(c, all_applied);
	r = c->torn;
	commit_unlock(c);
	return r;
}

/* The arena's own in-place writes are running, or may start without a
 * call of its owner: a log write is in flight or about to be, or
 * transactions wait for their apply while a checkpoint or sync is in
 * flight, whose completion may start it. Transactions logged and waiting
 * for their apply (apply_due) while nothing is in flight write nothing
 * until a call starts it: the file is stable, and the guard may read it. */
static int own_writes_pending(struct cow__commit *c)
{
	return c->apply_b || c->log_b || c->unsent ||
	       (c->logged && (c->ckpt_busy || c->sync_busy));
}

int cow__commit_writing(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;
	int pending;

	if (!c || !c->engine)
		return 0;
	cow__io_poll();
	commit_lock(c);
	pending = own_writes_pending(c);
	commit_unlock(c);
	return pending;
}

int cow__commit_refresh_due(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;
	int need;

	if (c)
		commit_lock(c);
	need = __atomic_load_n(&a->refresh, __ATOMIC_RELAXED) &&
	       !(c && own_writes_pending(c));
	if (c)
		commit_unlock(c);
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
	commit_lock(c);
	st->commits = c->commits;
	st->commit_seq_durable = c->seq_logged;
	st->log_bytes =
	    c->wal.fd >= 0 ? (size_t)(c->wal.end - c->wal.head_pos) : 0;
	st->commit_pending_bytes = c->pending;
	commit_unlock(c);
}

/* ---- the public calls ---- */

/* Drops the private copies of the runs, noted in out (may be NULL), in
 * one call (cow__sys_madvise_vec: one TLB flush where the kernel batches
 * the ranges; the runs of a batch of commits lie apart). A failure leaves
 * pages that equal the base private, which changes no content: it is not
 * an error. */
static void drop_runs(struct cow_arena *a, const struct cow__pageset *s,
		      struct cow__pageset *out)
{
	struct iovec one, *iov = &one;
	size_t done = 0;

	if (s->n > 1)
		iov = cow__mallocarray(s->n, sizeof(*iov));
	if (!s->n || !iov)
		return;
	for (size_t i = 0; i < s->n; i++) {
		iov[i].iov_base = a->base + s->v[i].first * a->pgsz;
		iov[i].iov_len = s->v[i].n * a->pgsz;
	}
	(void)cow__sys_madvise_vec(iov, s->n, MADV_DONTNEED, &done);
	for (size_t i = 0; out && i < done; i++)
		(void)cow__pageset_add(out, s->v[i].first, s->v[i].n);
	if (iov != &one)
		cow__free(iov);
}

/*
 * A base with nothing durable behind it (anonymous arena, memfd, unlinked
 * file): write the dirty pages into it and drop the private copies. The
 * old content is saved first, so that a failed write can be undone.
 */
/* A run of dirty pages clipped to the file's bytes, and where its old
 * content is saved. */
struct span {
	off_t off;
	size_t len, pos;
};

/* Writes src over span v of the base (and of the real file of an
 * isolated arena). */
static int span_write(struct cow_arena *a, const struct span *v,
		      const char *src)
{
	ssize_t n = cow__sys_pwrite(a->fd, src, v->len, v->off);

	if (n >= 0 && a->file_fd >= 0 && a->file_fd != a->fd)
		n = cow__sys_pwrite(a->file_fd, src, v->len, v->off);
	return n < 0 ? (int)n : 0;
}

/* The runs clipped to the file's bytes, as spans (*nv of them) whose
 * saved content takes *total bytes. */
static struct span *spans_of(const struct cow_arena *a,
			     const struct cow__pageset *rs, size_t *nv,
			     size_t *total)
{
	struct span *v = cow__mallocarray(rs->n ? rs->n : 1, sizeof(*v));

	*nv = *total = 0;
	for (size_t i = 0; v && i < rs->n; i++) {
		off_t off = (off_t)(rs->v[i].first * a->pgsz);
		size_t len = rs->v[i].n * a->pgsz;

		if (off >= a->file_size)
			continue;
		if ((off_t)len > a->file_size - off)
			len = (size_t)(a->file_size - off);
		v[*nv].off = off;
		v[*nv].len = len;
		v[*nv].pos = *total;
		*total += len;
		(*nv)++;
	}
	return v;
}

static int commit_direct(struct cow_arena *a, const struct cow__pageset *rs,
			 int *took, struct cow__pageset *dropped)
{
	size_t nv = 0, total = 0, done;
	struct span *v = NULL;
	char *save = NULL;
	int r = 0;

	if (!rs->n)
		goto out;
	v = spans_of(a, rs, &nv, &total);
	save = v ? cow__malloc(total ? total : 1) : NULL;
	r = save ? 0 : -ENOMEM;
	if (r < 0)
		goto out;
	for (size_t i = 0; r == 0 && i < nv; i++) {
		ssize_t n =
		    cow__sys_pread(a->fd, save + v[i].pos, v[i].len, v[i].off);

		r = n < 0 ? (int)n : 0;
	}
	/* done counts the span that failed too: it may be partly written */
	for (done = 0; r == 0 && done < nv; done++)
		r = span_write(a, &v[done], a->base + v[done].off);
	if (r < 0) {
		/* Put back what was written (all or nothing). */
		for (size_t i = 0; i < done; i++)
			(void)span_write(a, &v[i], save + v[i].pos);
		goto out;
	}
	drop_runs(a, rs, dropped);
	*took = 1;
out:
	if (r == 0)
		a->direct_commits++;
	/* Written, or written and put back: the file is ours. */
	__atomic_store_n(&a->refresh, a->file_fd >= 0, __ATOMIC_RELAXED);
	cow__free(v);
	cow__free(save);
	return r;
}

/* Does page p hold img? Only the file's bytes count: past the file's end
 * the image holds zeros, and the arena's bytes there are not committed
 * (they go when the page is dropped). */
static int page_same(const struct cow_arena *a, size_t p, const char *img)
{
	off_t off = (off_t)(p * a->pgsz);
	size_t len = a->pgsz;

	if (off + (off_t)len > a->file_size)
		len = off < a->file_size ? (size_t)(a->file_size - off) : 0;
	return !memcmp(a->base + off, img, len);
}

/* The newest captured image of page among the live transactions, or
 * NULL; *t receives its transaction. */
static const char *latest_image(const struct cow__commit *c, size_t page,
				const struct txn **t)
{
	const struct slot *s = index_find(&c->index, page);

	if (!s)
		return NULL;
	*t = s->t;
	return s->t->copy + s->frame * c->pgsz;
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

int cow__commit_may_clean(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;
	int any;

	if (!c || !c->engine)
		return 0;
	commit_lock(c);
	any = c->index.n && !c->fatal && !c->torn;
	commit_unlock(c);
	return any;
}

/*
 * Splits the private pages into those that differ from the base (to
 * dirty) and those that do not (to clean): the pages whose newest commit
 * is durable (its bytes are the base's from then on) and which still hold
 * exactly what it captured. Comparing with the captured copy is exact
 * whatever the write tracking (a page written again with other bytes
 * differs, one written back to the same bytes does not) and costs a
 * compare per page of the commits not yet followed by another commit: the
 * pages written, not the arena. After the settle barrier every durable
 * commit is also written in place, so the clean pages may be dropped.
 * After a failed write the base may not hold a durable commit: every
 * private page is dirty.
 */
int cow__commit_split(struct cow_arena *a, const struct cow__pageset *priv,
		      cow__run_fn dirty, void *dctx, cow__run_fn clean,
		      void *cctx)
{
	struct cow__commit *c = a->commit;
	struct page_runs pd = {dirty, dctx, 0, 0}, pc = {clean, cctx, 0, 0};
	int r = 0;

	/* Under the commit's lock: completions change the transactions'
	 * state, and a failed log write frees asynchronous ones. */
	commit_lock(c);
	for (size_t i = 0; r == 0 && i < priv->n; i++)
		for (size_t p = priv->v[i].first;
		     r == 0 && p < priv->v[i].first + priv->v[i].n; p++) {
			const struct txn *t = NULL;
			const char *img = latest_image(c, p, &t);
			int same = img && t->state >= TX_LOGGED && !t->err &&
				   !c->fatal && !c->torn &&
				   page_same(a, p, img);
			struct page_runs *to = same ? &pc : &pd;

			if (to->fn)
				r = page_runs_add(to, p);
		}
	commit_unlock(c);
	if (r == 0 && pd.n)
		r = dirty(dctx, pd.first, pd.n);
	if (r == 0 && pc.n)
		r = clean(cctx, pc.first, pc.n);
	return r;
}

static int page_cmp(const void *x, const void *y)
{
	size_t a = *(const size_t *)x, b = *(const size_t *)y;

	return a < b ? -1 : a > b;
}

/* From the page index, not the queue: the transactions waiting for their
 * apply may be many (every commit since the last one), their distinct
 * pages few. */
int cow__commit_unapplied(struct cow_arena *a, struct cow__pageset *out)
{
	struct cow__commit *c = a->commit;
	size_t n = 0, *v;
	int r = 0;

	if (!c || !c->engine)
		return 0;
	commit_lock(c);
	v = cow__array_grow(c->unap, &c->unap_cap, c->index.n ? c->index.n : 1,
			    sizeof(*v), 16);
	if (!v) {
		commit_unlock(c);
		return -ENOMEM;
	}
	c->unap = v;
	for (size_t i = 0; i < c->index.cap; i++)
		if (c->index.v[i].t && c->index.v[i].t->state < TX_APPLIED)
			v[n++] = c->index.v[i].page;
	qsort(v, n, sizeof(*v), page_cmp);
	for (size_t i = 0, j; r == 0 && i < n; i = j) {
		for (j = i + 1; j < n && v[j] == v[j - 1] + 1; j++)
			;
		r = cow__pageset_add(out, v[i], j - i);
	}
	commit_unlock(c);
	return r;
}

void cow__commit_forget_applied(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;

	if (!c || !c->engine)
		return;
	commit_lock(c);
	drop_applied(c);
	commit_unlock(c);
}

/* Copies page p of the arena into img: past the file's end the image
 * holds zeros (only the file's bytes are committed). */
static void capture(const struct cow_arena *a, size_t p, char *img)
{
	off_t off = (off_t)(p * a->pgsz);
	size_t keep = a->pgsz;

	if (off + (off_t)keep > a->file_size)
		keep = off < a->file_size ? (size_t)(a->file_size - off) : 0;
	memcpy(img, a->base + off, keep);
	memset(img + keep, 0, a->pgsz - keep);
}

/* Room in t for n frames: its arrays and its copy buffer (kept). */
static int txn_room(struct cow__commit *c, struct txn *t, size_t n)
{
	size_t per = sizeof(*t->fh) + sizeof(*t->pages), room = t->room;
	struct cow__wal_frame *fh;
	unsigned order;
	char *copy;

	if (n <= room && t->copy)
		return 0;
	if (n <= room) {
		/* a spare transaction: its arrays, a buffer of the pool */
		t->copy = pool_get(c, room, &t->order);
		return t->copy ? 0 : -ENOMEM;
	}
	while (room < n)
		room = room ? 2 * room : n;
	fh = cow__mallocarray(room, per);
	copy = pool_get(c, room, &order);
	if (!fh || !copy) {
		cow__free(fh);
		pool_put(c, copy, order);
		return -ENOMEM;
	}
	if (t->nframes) {
		memcpy(fh, t->fh, t->nframes * sizeof(*fh));
		memcpy(fh + room, t->pages, t->nframes * sizeof(*t->pages));
		memcpy(copy, t->copy, t->nframes * c->pgsz);
	}
	cow__free(t->fh);
	pool_put(c, t->copy, t->order);
	t->fh = fh;
	t->pages = (size_t *)(fh + room);
	t->copy = copy;
	t->order = order;
	t->room = room;
	return 0;
}

/* Appends page p's current image as a frame of t (room reserved). */
static void txn_add(struct cow_arena *a, struct txn *t, size_t p)
{
	size_t i = t->nframes++;

	capture(a, p, t->copy + i * a->pgsz);
	t->pages[i] = p;
	memset(&t->fh[i], 0, sizeof(t->fh[i]));
	t->fh[i].magic = COW__WAL_FRAME_MAGIC;
	t->fh[i].page_size = (uint32_t)a->pgsz;
	t->fh[i].page = p;
	t->fh[i].seq = t->seq;
}

/* The record and sizes of t after its frames changed. */
static void txn_seal_sizes(struct cow_arena *a, struct txn *t)
{
	t->file_len = a->file_size;
	t->rec.magic = COW__WAL_COMMIT_MAGIC;
	t->rec.seq = t->seq;
	t->rec.nframes = t->nframes;
	t->rec.size = a->size;
	t->rec.file_len = (uint64_t)a->file_size;
	t->bytes = t->nframes * (sizeof(struct cow__wal_frame) + a->pgsz) +
		   sizeof(struct cow__wal_commit);
}

/* Builds the transaction of the pages in cap (page indexes). */
static struct txn *txn_build(struct cow_arena *a, const size_t *cap, size_t n,
			     int async)
{
	struct cow__commit *c = a->commit;
	struct txn *t = txn_get(c);

	if (!t)
		return NULL;
	t->owned = async;
	if (txn_room(c, t, n ? n : 1) < 0) {
		txn_destroy(c, t);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		txn_add(a, t, cap[i]);
	txn_seal_sizes(a, t);
	return t;
}

/* Queues t (room in the index reserved): the newest image of its pages. */
static void txn_enqueue(struct cow__commit *c, struct txn *t)
{
	t->seq = c->seq_next++;
	t->rec.seq = t->seq;
	for (size_t i = 0; i < t->nframes; i++) {
		t->fh[i].seq = t->seq;
		index_set(&c->index, t->pages[i], t, i);
	}
	t->pending = 1;
	c->pending += t->nframes * c->pgsz;
	if (c->tail)
		c->tail->next = t;
	else
		c->head = t;
	c->tail = t;
	if (!c->unsent)
		c->unsent = t;
}

/*
 * An asynchronous commit while the newest queued transaction is an
 * asynchronous one not yet sent to the log: the pages join it (a page it
 * holds gets the newer image in place), so that the commits between two
 * log writes become one transaction holding the newest image of each
 * page. A crash then keeps both or neither, which the asynchronous
 * promise allows: no cow_sync() returned in between, since it waits for
 * everything queued. Returns 1 when merged, 0 when t cannot take them,
 * or -ENOMEM (nothing changed).
 */
static int txn_merge(struct cow_arena *a, const size_t *cap, size_t n)
{
	struct cow__commit *c = a->commit;
	struct txn *t = c->tail;
	size_t added = 0;

	if (!t || !t->owned || t != c->unsent || t->state != TX_QUEUED ||
	    t->inflight || t->err)
		return 0;
	if (t->bytes + n * (sizeof(struct cow__wal_frame) + a->pgsz) >
	    BATCH_BYTES)
		return 0;
	COW_TRY(txn_room(c, t, t->nframes + n));
	COW_TRY(index_reserve(&c->index, n));
	/* the index names frames by number: txn_room moving them is fine */
	for (size_t i = 0; i < n; i++) {
		struct slot *s = index_find(&c->index, cap[i]);

		if (s && s->t == t) {
			capture(a, cap[i], t->copy + s->frame * a->pgsz);
			continue;
		}
		txn_add(a, t, cap[i]);
		index_set(&c->index, cap[i], t, t->nframes - 1);
		added++;
	}
	c->pending += added * a->pgsz;
	txn_seal_sizes(a, t);
	return 1;
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
		r = cow__wal_create(&c->wal, c->seq_next,
				    2 * (uint64_t)CKPT_BYTES, c->nosync);
	if (r < 0 && took) {
		cow__io_put(!(c->flags & COW_NOTHREAD));
		c->engine = 0;
	}
	return r;
}

/* Which dirty pages go into the transaction: not those equal to their
 * newest committed image (and those already in the base are dropped;
 * once DROP_BATCH of them are logged and wait for an apply, it starts:
 * the pages of transactions not yet logged, or in an apply already, it
 * would not take). *cap is c's array, reused by the next commit. */
static int select_pages(struct cow_arena *a, struct cow__commit *c,
			const struct cow__pageset *rs, size_t **cap,
			size_t *ncap, struct cow__pageset *drop)
{
	size_t n = 0, waiting = 0;
	int r = 0;

	n = rs->pages;
	*ncap = 0;
	*cap =
	    cow__array_grow(c->sel, &c->sel_cap, n ? n : 1, sizeof(**cap), 16);
	if (!*cap)
		return -ENOMEM;
	c->sel = *cap;
	for (size_t i = 0; r == 0 && i < rs->n; i++)
		for (size_t p = rs->v[i].first;
		     r == 0 && p < rs->v[i].first + rs->v[i].n; p++) {
			const struct txn *t = NULL;
			const char *img = latest_image(c, p, &t);

			if (img && page_same(a, p, img)) {
				if (t->state == TX_APPLIED && !t->err)
					r = cow__pageset_add(drop, p, 1);
				else if (t->state == TX_LOGGED && !t->inflight)
					waiting++;
				continue;
			}
			(*cap)[(*ncap)++] = p;
		}
	if (waiting >= DROP_BATCH)
		c->drop_wanted = 1;
	return r;
}

/*
 * Back-pressure: waits until the copies not yet written in place leave
 * room for bytes more under pending_max (or nothing else is pending: a
 * commit larger than the bound goes alone). With the lock held.
 */
static void wait_room(struct cow__commit *c, size_t bytes)
{
	size_t max = __atomic_load_n(&pending_max, __ATOMIC_RELAXED);
	int full = c->pending && c->pending + bytes > max;

	c->apply_now += full;
	kick(c);
	while (c->pending && c->pending + bytes > max && !c->fatal) {
		commit_wait(c);
		kick(c);
	}
	c->apply_now -= full;
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

/* The error of an earlier failure that fails this commit: the fatal one
 * (every time), or an asynchronous commit's (once). */
static int take_error(struct cow__commit *c)
{
	int r = c->fatal;

	if (!r && c->async_err) {
		r = c->async_err;
		c->async_err = 0;
	}
	return r;
}

/*
 * Nothing new since the newest commit: its content is the base once it
 * is in place, and a synchronous commit waits for that and drops every
 * private copy (they all hold it).
 */
static int commit_unchanged(struct cow_arena *a, const struct cow__pageset *rs,
			    const struct cow__pageset *drop, int async,
			    struct cow__pageset *dropped)
{
	struct cow__commit *c = a->commit;

	if (!async)
		wait_for(c, all_applied);
	COW_TRY(c->fatal);
	drop_runs(a, drop, dropped);
	drop_applied(c);
	if (!async)
		drop_runs(a, rs, dropped);
	c->commits++;
	return 0;
}

/*
 * A synchronous commit waits for its durable point: then the queue owns
 * t (written in place in the background) and the commit happened.
 * Before it, a failure undoes t: nothing changed.
 */
static int wait_durable(struct cow__commit *c, struct txn *t, size_t old_size,
			off_t old_len)
{
	int r;

	while (t->state < TX_LOGGED && !t->done)
		commit_wait(c);
	if (t->state >= TX_LOGGED) {
		t->owned = 1;
		c->commits++;
		return 0;
	}
	r = t->err;
	txn_unlink(c, t);
	txn_free(c, t);
	c->size = old_size;
	c->file_len = old_len;
	return r;
}

/*
 * Turns the dirty runs rs into a transaction (or into the batch of the
 * queued asynchronous one) and queues it; a synchronous commit returns at
 * its durable point. With the lock held throughout (log_direct drops it
 * for the I/O only, the waits while they wait).
 */
static int commit_queue(struct cow_arena *a, const struct cow__pageset *rs,
			int async, struct cow__pageset *dropped)
{
	struct cow__commit *c = a->commit;
	size_t *cap = NULL, ncap = 0, old_size = c->size;
	off_t old_len = c->file_len;
	struct cow__pageset drop = COW__PAGESET_INIT;
	struct txn *t = NULL;
	int r;

	/* First, so that what select_pages finds stays true until the
	 * transaction is queued: no completion runs in between (they need
	 * the lock). */
	wait_room(c, rs->pages * a->pgsz);
	r = take_error(c);
	if (r == 0)
		r = select_pages(a, c, rs, &cap, &ncap, &drop);
	if (r < 0)
		goto out;
	if (!ncap && a->size == c->size && a->file_size == c->file_len) {
		r = commit_unchanged(a, rs, &drop, async, dropped);
		goto out;
	}
	r = base_fsize_check(a, c, cap, ncap);
	if (r == 0 && async)
		r = txn_merge(a, cap, ncap);
	if (r == 0) {
		r = index_reserve(&c->index, ncap);
		t = r == 0 ? txn_build(a, cap, ncap, async) : NULL;
		if (r == 0 && !t)
			r = -ENOMEM;
	}
	if (r < 0)
		goto out;
	drop_runs(a, &drop, dropped);
	drop_applied(c);
	if (t)
		txn_enqueue(c, t);
	c->size = a->size;
	c->file_len = a->file_size;
	if (async) {
		c->commits++;
		kick(c);
		r = 0;
	} else {
		if (c->unsent == t && !c->log_b && !c->fatal && fits(c, t))
			log_direct(c);
		else
			kick(c);
		r = wait_durable(c, t, old_size, old_len);
	}
out:
	cow__pageset_free(&drop);
	return r;
}

int cow__commit_write(struct cow_arena *a, const struct cow__pageset *dirty,
		      int async, int *took, struct cow__pageset *dropped)
{
	struct cow__commit *c = a->commit;
	int r;

	*took = 0;
	if (!c)
		return commit_direct(a, dirty, took, dropped);
	COW_TRY(commit_ready(c));
	/* completions ready run first (without the lock: they take it) */
	cow__io_poll();
	commit_lock(c);
	r = commit_queue(a, dirty, async, dropped);
	commit_unlock(c);
	*took = r == 0;
	return r;
}

int cow__commit_sync(struct cow_arena *a)
{
	struct cow__commit *c = a->commit;
	int r;

	if (!c || !c->engine)
		return 0;
	commit_lock(c);
	/* Applied too: then the next commit can drop the pages. */
	wait_for(c, all_applied);
	r = take_error(c);
	commit_unlock(c);
	return r;
}
