// SPDX-License-Identifier: MIT
/*
 * The io_uring engine: one ring and one reaper thread per process, shared
 * by all arenas (invariant 1 of DESIGN.md: a fixed few mappings, created
 * once). The ring is created by the first arena that needs it and torn
 * down with the last; the thread runs while at least one arena without
 * COW_NOTHREAD holds a reference, so nothing is left running after the
 * last cow_close().
 *
 * The engine's lock guards the ring (preparing and submitting entries,
 * taking completions off it) and nothing else: a completion is counted in
 * its group, and the group's done function run, under the group owner's
 * lock with the engine's lock dropped (lock order: an owner's lock, then
 * the engine's; never the other way). Exactly one thread reaps at a time
 * (the "reaping" flag): the reaper thread when there is one, else a
 * caller waiting for its own I/O, or one polling. Others wait on the
 * condition variable, broadcast after every batch of completions, which
 * also advances the generation (cow__io_gen) that waiters compare.
 *
 * Each completion's result passes through the fault injector
 * (COW__SYS_CQE), so tests can fail any write or sync as the kernel would.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <liburing.h>

#include "internal.h"
#include "io.h"
#include "testhooks.h"

#define SQ_ENTRIES 256u
#define CQ_ENTRIES 4096u
#define REAP_BATCH 256u /* completions taken off the ring at a time */

struct reaped {
	struct cow__io_op *op;
	int res;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct io_uring ring;
	unsigned long refs, thread_refs;
	int thread_on, stop, reaping;
	unsigned gen; /* batches of completions processed */
	pthread_t thread;
	unsigned npend; /* prepared, not yet submitted */
	struct io_uring_sqe *pend_sqe[SQ_ENTRIES];
	struct cow__io_op *pend_op[SQ_ENTRIES];
	/* the reaping thread's: taken off the ring, processed unlocked */
	struct reaped done[REAP_BATCH];
} eng = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

void cow__io_group_init(struct cow__io_group *g, cow__io_done_fn done,
			void *ctx, pthread_mutex_t *lock)
{
	g->pending = 1;
	g->inring = 0;
	g->err = 0;
	g->done = done;
	g->ctx = ctx;
	g->lock = lock;
	g->after = NULL;
}

/* With g's lock held. The first error is kept, but an operation that
 * failed (the device's error) takes the place of -EAGAIN, which says only
 * that an operation was not queued or not taken. */
static void group_err(struct cow__io_group *g, int err)
{
	if (err && (!g->err || (g->err == -EAGAIN && err != -EAGAIN)))
		g->err = err;
}

/* With g's lock held. */
static void group_put(struct cow__io_group *g, int err)
{
	group_err(g, err);
	if (--g->pending == 0)
		g->done(g->ctx, g->err);
}

void cow__io_group_release(struct cow__io_group *g)
{
	group_put(g, 0);
}

static void after_start(struct cow__io_group *g);

/* Counts op's end in its group, under the group's lock (the engine's not
 * held); the end of the group's last operation on the ring starts the
 * one held back. done may free op and its group: nothing is touched
 * after. */
static void op_end(struct cow__io_op *op, int err)
{
	struct cow__io_group *g = op->g;
	pthread_mutex_t *lock = g->lock;

	pthread_mutex_lock(lock);
	group_err(g, err);
	if (--g->inring == 0 && g->after)
		after_start(g);
	group_put(g, err);
	pthread_mutex_unlock(lock);
}

static void complete(struct cow__io_op *op, int res)
{
	int inj = cow__fault_check(COW__SYS_CQE);

	if (inj)
		res = inj;
	if (res >= 0 && op->iov && (size_t)res < op->expect)
		res = -ENOSPC; /* a short buffered write: out of room */
	if (res >= 0)
		cow__sys_trace(op->iov ? COW__SYS_PWRITE : COW__SYS_FSYNC,
			       op->fd, op->iov, op->cnt, op->off);
	op_end(op, res < 0 ? res : 0);
}

/* The prepared entries fail: they become no-ops nobody waits for. With
 * the engine lock held, dropped while their groups count them. Their
 * ends count as completions: the generation moves, so that a caller that
 * read it before this submission (commit_wait in commit.c) and waits for
 * it to move is woken, as after a reaped completion, and does not wait
 * for one that will never come. */
static void fail_pending(int err)
{
	struct cow__io_op *ops[SQ_ENTRIES];
	unsigned n = eng.npend;

	for (unsigned i = 0; i < n; i++) {
		io_uring_prep_nop(eng.pend_sqe[i]);
		io_uring_sqe_set_data(eng.pend_sqe[i], NULL);
		ops[i] = eng.pend_op[i];
	}
	__atomic_store_n(&eng.npend, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&eng.lock);
	for (unsigned i = 0; i < n; i++)
		op_end(ops[i], err);
	pthread_mutex_lock(&eng.lock);
	if (n) {
		__atomic_store_n(&eng.gen, eng.gen + 1, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&eng.cond);
	}
}

/* The low bit of an entry's data: the operation was not taken (took). */
#define NOT_TAKEN ((uintptr_t)1)

/*
 * With the engine lock held, after a submission that succeeded: the kernel
 * may take fewer entries than were ready (it stops a submission when it
 * cannot allocate a request), and a chain among those left would run cut
 * from its head, which already runs: a log's fdatasync later, unordered
 * with the writes it must follow. So each entry left (ours are the last
 * npend ones) becomes a no-op whose completion fails its operation with
 * -EAGAIN (NOT_TAKEN in its data, see reap): none of them runs, and their
 * groups fail (a commit whose sync was not taken fails, rather than being
 * reported durable). They stay prepared for the next submission.
 */
static void took(void)
{
	unsigned left = io_uring_sq_ready(&eng.ring);
	unsigned n = left < eng.npend ? left : eng.npend;
	unsigned from = eng.npend - n;

	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = eng.pend_sqe[from + i];
		struct cow__io_op *op = eng.pend_op[from + i];

		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data(sqe, (void *)((uintptr_t)op | NOT_TAKEN));
		eng.pend_sqe[i] = sqe;
		eng.pend_op[i] = op;
	}
	__atomic_store_n(&eng.npend, n, __ATOMIC_RELAXED);
}

/* With the engine lock held (and no owner's lock: a failure fails the
 * prepared entries, whose groups' locks are taken). Entries the kernel did
 * not take are submitted once more, as the no-ops took made them; those
 * still left then fail at once. */
static int submit_locked(void)
{
	int r;

	if (!eng.npend)
		return 0;
	for (int tries = 0; eng.npend && tries < 2; tries++) {
		r = cow__sys_uring_submit(&eng.ring);
		if (r < 0) {
			fail_pending(r);
			return r;
		}
		took();
	}
	if (eng.npend)
		fail_pending(-EAGAIN);
	return 0;
}

int cow__io_submit(void)
{
	int r;

	/* Nothing prepared: no lock. Whoever prepares entries submits
	 * them (after dropping its owner's lock), so one prepared
	 * meanwhile is not left behind. */
	if (!__atomic_load_n(&eng.npend, __ATOMIC_RELAXED))
		return 0;
	pthread_mutex_lock(&eng.lock);
	r = submit_locked();
	pthread_mutex_unlock(&eng.lock);
	return r;
}

/*
 * With the engine lock held and the reaping flag set by the caller: waits
 * for a completion first (wait set; the lock dropped meanwhile), then
 * processes every completion ready, a batch at a time with the lock
 * dropped, and submits what their done functions queued.
 */
static void reap(int wait)
{
	struct io_uring_cqe *cqe;

	if (wait) {
		pthread_mutex_unlock(&eng.lock);
		(void)cow__sys_uring_wait(&eng.ring, &cqe);
		pthread_mutex_lock(&eng.lock);
	}
	for (;;) {
		unsigned n = 0;

		while (n < REAP_BATCH &&
		       io_uring_peek_cqe(&eng.ring, &cqe) == 0) {
			uintptr_t d = (uintptr_t)io_uring_cqe_get_data(cqe);

			if (d) {
				eng.done[n].op =
				    (struct cow__io_op *)(d & ~NOT_TAKEN);
				eng.done[n].res =
				    d & NOT_TAKEN ? -EAGAIN : cqe->res;
				n++;
			}
			io_uring_cqe_seen(&eng.ring, cqe);
		}
		if (!n)
			break;
		pthread_mutex_unlock(&eng.lock);
		for (unsigned i = 0; i < n; i++)
			complete(eng.done[i].op, eng.done[i].res);
		pthread_mutex_lock(&eng.lock);
	}
	(void)submit_locked();
}

/* With the engine lock held: one turn of reaping (waiting for a
 * completion when wait is set), or, while another thread reaps, a wait
 * for its next batch. */
static void reap_turn(int wait)
{
	if (eng.reaping) {
		if (wait)
			pthread_cond_wait(&eng.cond, &eng.lock);
		return;
	}
	eng.reaping = 1;
	reap(wait);
	eng.reaping = 0;
	__atomic_store_n(&eng.gen, eng.gen + 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&eng.cond);
}

unsigned cow__io_gen(void)
{
	return __atomic_load_n(&eng.gen, __ATOMIC_ACQUIRE);
}

void cow__io_wait(unsigned gen)
{
	pthread_mutex_lock(&eng.lock);
	while (eng.gen == gen)
		reap_turn(1);
	pthread_mutex_unlock(&eng.lock);
}

void cow__io_poll(void)
{
	/* Never waits for the lock: its holder reaps, or will submit. */
	if (pthread_mutex_trylock(&eng.lock))
		return;
	if (eng.refs && io_uring_cq_ready(&eng.ring))
		reap_turn(0);
	pthread_mutex_unlock(&eng.lock);
}

static void *reaper(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&eng.lock);
	while (!eng.stop)
		reap_turn(1);
	pthread_mutex_unlock(&eng.lock);
	return NULL;
}

/* Wakes a thread blocked in the ring's wait: a no-op completion. Not
 * injected: the thread must always be able to stop. */
static void wake_ring(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&eng.ring);

	if (!sqe) {
		io_uring_submit(&eng.ring);
		sqe = io_uring_get_sqe(&eng.ring);
	}
	if (sqe) {
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data(sqe, NULL);
	}
	io_uring_submit(&eng.ring);
}

static int thread_start(void)
{
	sigset_t all, old;
	int r;

	eng.stop = 0;
	/* The thread takes no signals: they belong to the program. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&eng.thread, NULL, reaper, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* EAGAIN is pthread_create's word for "no stack": out of memory or
	 * of mappings (vm.max_map_count) or threads. Callers document the
	 * engine's set-up errors as -ENOMEM. */
	if (r == -EAGAIN)
		r = -ENOMEM;
	if (r == 0)
		eng.thread_on = 1;
	return r;
}

static void thread_stop(void)
{
	eng.stop = 1;
	wake_ring();
	pthread_cond_broadcast(&eng.cond);
	pthread_mutex_unlock(&eng.lock);
	pthread_join(eng.thread, NULL);
	pthread_mutex_lock(&eng.lock);
	eng.thread_on = 0;
	eng.stop = 0;
}

/*
 * The ring, with IORING_SETUP_COOP_TASKRUN where the kernel has it (5.19):
 * a request the kernel's workers ran is freed by task work of the thread
 * that submitted it, and without the flag each one interrupts that thread
 * at once (an IPI, and a reschedule: measured here, a committing caller
 * that had submitted the 256 in-place writes of a commit took one per
 * write while it went on committing). With it the thread runs them at its
 * next entry into the kernel, and a sleeping one is woken. The
 * completions themselves do not wait for that: the workers post them.
 * An older kernel refuses the flag (-EINVAL): the ring is made without.
 */
static int ring_init(void)
{
	struct io_uring_params p;
	int r;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
	p.cq_entries = CQ_ENTRIES;
	r = cow__sys_uring_init(&eng.ring, SQ_ENTRIES, &p);
	if (r != -EINVAL)
		return r;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = CQ_ENTRIES;
	return cow__sys_uring_init(&eng.ring, SQ_ENTRIES, &p);
}

unsigned cow__io_ring_flags(void)
{
	unsigned f;

	pthread_mutex_lock(&eng.lock);
	f = eng.refs ? eng.ring.flags : 0;
	pthread_mutex_unlock(&eng.lock);
	return f;
}

int cow__io_get(int thread)
{
	int r = 0;

	pthread_mutex_lock(&eng.lock);
	if (eng.refs == 0) {
		r = ring_init();
		if (r < 0)
			goto out;
	}
	if (thread && !eng.thread_on) {
		r = thread_start();
		if (r < 0) {
			if (eng.refs == 0)
				cow__sys_uring_exit(&eng.ring);
			goto out;
		}
	}
	eng.refs++;
	eng.thread_refs += !!thread;
out:
	pthread_mutex_unlock(&eng.lock);
	return r;
}

void cow__io_put(int thread)
{
	pthread_mutex_lock(&eng.lock);
	if (thread && --eng.thread_refs == 0 && eng.thread_on)
		thread_stop();
	if (--eng.refs == 0) {
		if (eng.thread_on)
			thread_stop();
		cow__sys_uring_exit(&eng.ring);
	}
	pthread_mutex_unlock(&eng.lock);
}

/* Set while this thread queues a chain, past its first operation. */
static __thread int chain_open;

/* With the engine lock held, and the caller's owner lock: a full ring is
 * submitted to make room, but a failure fails nothing (the entries stay
 * prepared for the next submission; the new operation is not queued).
 * Never in the middle of a chain: that submission would cut it. */
static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&eng.ring);

	if (sqe || chain_open)
		return sqe;
	if (cow__sys_uring_submit(&eng.ring) < 0)
		return NULL;
	took();
	return io_uring_get_sqe(&eng.ring);
}

/* With the engine lock held (and the group's). */
static void queue(struct cow__io_op *op, struct io_uring_sqe *sqe, unsigned how)
{
	if (how & COW__IO_LINK)
		sqe->flags |= IOSQE_IO_LINK;
	if (how & COW__IO_ASYNC)
		sqe->flags |= IOSQE_ASYNC;
	io_uring_sqe_set_data(sqe, op);
	op->g->pending++;
	op->g->inring++;
	eng.pend_sqe[eng.npend] = sqe;
	eng.pend_op[eng.npend] = op;
	__atomic_store_n(&eng.npend, eng.npend + 1, __ATOMIC_RELAXED);
}

/*
 * A chain of linked operations (COW__IO_LINK on each but the last) is
 * queued whole: the thread queueing it keeps the engine lock from the
 * chain's first operation to its last. The kernel ends a link at the end
 * of a submission, so a submission made meanwhile (another owner's
 * commit_unlock, the reaper) would cut the chain, and the rest would run
 * unordered: a log fdatasync before the log write it must follow, a
 * checkpoint's header slot before the base's fdatasync. Nor may another
 * owner's entry land inside the chain. Nor is a full ring submitted in
 * its middle (get_sqe): the operation that finds no room fails (-EAGAIN),
 * and the chain ends before it (op_unlock), its entries so far linked to
 * nothing after them; the operations that had to follow do not run. The
 * chain's first operation makes room for COW__IO_CHAIN_MAX entries (half
 * the ring), so that a chain that long fails only if that submission
 * failed; what must follow more operations waits for them with
 * COW__IO_AFTER instead.
 */
#define CHAIN_ROOM COW__IO_CHAIN_MAX
_Static_assert(CHAIN_ROOM <= SQ_ENTRIES / 2, "a chain's room: half the ring");

static void op_lock(unsigned how)
{
	if (chain_open)
		return;
	pthread_mutex_lock(&eng.lock);
	if ((how & COW__IO_LINK) &&
	    io_uring_sq_space_left(&eng.ring) < CHAIN_ROOM &&
	    cow__sys_uring_submit(&eng.ring) >= 0)
		took();
}

/* sqe: the operation just queued, NULL when it could not be. A chain
 * that ends early (an entry not queued) links its last entry to nothing,
 * so that no later entry of anyone's is tied to it. */
static void op_unlock(struct io_uring_sqe *sqe, unsigned how)
{
	if (sqe && (how & COW__IO_LINK)) {
		chain_open = 1;
		return;
	}
	if (!sqe && chain_open && eng.npend)
		eng.pend_sqe[eng.npend - 1]->flags &= (__u8)~IOSQE_IO_LINK;
	chain_open = 0;
	pthread_mutex_unlock(&eng.lock);
}

/* Takes a submission entry and fills in op; NULL (and g->err set to
 * -EAGAIN unless the group already failed) when the ring is full. */
static struct io_uring_sqe *op_start(struct cow__io_op *op,
				     struct cow__io_group *g, int fd,
				     const struct iovec *iov, int cnt,
				     off_t off)
{
	struct io_uring_sqe *sqe = get_sqe();

	if (!sqe) {
		if (!g->err)
			g->err = -EAGAIN;
		return NULL;
	}
	op->g = g;
	op->fd = fd;
	op->iov = iov;
	op->cnt = cnt;
	op->off = off;
	op->expect = 0;
	return sqe;
}

int cow__io_write(struct cow__io_op *op, struct cow__io_group *g, int fd,
		  const struct iovec *iov, int cnt, off_t off, unsigned how)
{
	struct io_uring_sqe *sqe;

	op_lock(how);
	sqe = op_start(op, g, fd, iov, cnt, off);
	if (!sqe) {
		op_unlock(NULL, how);
		return g->err;
	}
	for (int i = 0; i < cnt; i++)
		op->expect += iov[i].iov_len;
	if (cnt == 1)
		io_uring_prep_write(sqe, fd, iov[0].iov_base,
				    (unsigned)iov[0].iov_len, (__u64)off);
	else
		io_uring_prep_writev(sqe, fd, iov, (unsigned)cnt, (__u64)off);
	queue(op, sqe, how);
	op_unlock(sqe, how);
	return 0;
}

static int fsync_queue(struct cow__io_op *op, struct cow__io_group *g, int fd,
		       unsigned how)
{
	struct io_uring_sqe *sqe;

	op_lock(how);
	sqe = op_start(op, g, fd, NULL, 0, 0);
	if (sqe) {
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		queue(op, sqe, how);
	}
	op_unlock(sqe, how);
	return sqe ? 0 : g->err;
}

/*
 * COW__IO_AFTER: a sync that must not start before every operation its
 * group queued earlier ended. A link orders it only if it reaches the
 * ring in one chain with them, which holds up to COW__IO_CHAIN_MAX
 * entries; this holds for any number. The sync is held back (counted in
 * pending, so that the group cannot end) and queued when the group's last
 * operation on the ring ends (op_end, under the group's lock, in the
 * thread that processed that completion: the reaper, or a thread waiting
 * or polling, which submits what it queued once done). It costs the sync
 * a hand-over (the last completion, then its submission), little next to
 * the 128 operations and more it follows. IOSQE_IO_DRAIN would order it
 * too, but holds every later entry of the ring, every owner's, until the
 * drained one completed: the fdatasync of a 250 MiB log write would stall
 * all other arenas' I/O for its whole length.
 */
int cow__io_fsync(struct cow__io_op *op, struct cow__io_group *g, int fd,
		  unsigned how)
{
	/* An earlier operation failed: the sync does not run. */
	if ((how & COW__IO_AFTER) && g->err)
		return g->err;
	if (!(how & COW__IO_AFTER) || !g->inring)
		return fsync_queue(op, g, fd, how & ~COW__IO_AFTER);
	op->g = g;
	op->fd = fd;
	g->after = op;
	g->pending++;
	return 0;
}

/* With the group's lock held: its last operation on the ring ended. The
 * held-back sync is queued now, or not at all if anything failed. */
static void after_start(struct cow__io_group *g)
{
	struct cow__io_op *op = g->after;

	g->after = NULL;
	if (!g->err)
		(void)fsync_queue(op, g, op->fd, 0);
	g->pending--; /* held back no more: queued (counted again) or not */
}
