/* SPDX-License-Identifier: MIT */
/*
 * The io_uring engine: one ring and at most one reaper thread per process,
 * shared by all arenas. Its lock guards the ring alone.
 *
 * Operations are grouped: a group holds one reference while its owner adds
 * operations, and calls its done function (with the first error, or 0)
 * once the owner released it and every operation completed. A group is
 * guarded by its owner's lock (given at init): the owner adds operations
 * and releases the group with that lock held, and a completion takes it
 * to count the operation and run done, in whichever thread reaped it,
 * never with the engine lock held. Lock order: an owner's lock, then the
 * engine's.
 */
#ifndef COW_IO_H
#define COW_IO_H

#include <pthread.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef void (*cow__io_done_fn)(void *ctx, int err);

struct cow__io_group {
	unsigned pending; /* operations in flight or held back, + 1 while
			     held */
	unsigned inring;  /* operations queued on the ring, not yet ended */
	int err;	  /* first failure */
	cow__io_done_fn done;
	void *ctx;
	pthread_mutex_t *lock;	  /* the owner's: guards the group */
	struct cow__io_op *after; /* COW__IO_AFTER, held back */
};

struct cow__io_op {
	struct cow__io_group *g;
	int fd, cnt;
	const struct iovec *iov; /* NULL for a sync */
	off_t off;
	size_t expect; /* bytes a write must transfer */
};

/* References: every arena that commits through the engine holds one; with
 * thread set it also keeps the reaper thread running. Called with no
 * owner's lock held. */
int cow__io_get(int thread);
void cow__io_put(int thread);

/* All below but submit, gen and wait: with the group's lock held. */
void cow__io_group_init(struct cow__io_group *g, cow__io_done_fn done,
			void *ctx, pthread_mutex_t *lock);
/* Drops the owner's reference; done may run inside this call. */
void cow__io_group_release(struct cow__io_group *g);
/* Queue a write of iov (cnt buffers) at off, or an fdatasync. how:
 * COW__IO_LINK: the next queued operation starts only after this one
 * succeeded; COW__IO_ASYNC: the kernel runs it in its worker threads, never
 * inline in the submission (a buffered write of many pages would otherwise
 * copy them on the submitting thread). A negative return means the
 * operation was not queued (the group records it). Queued operations start
 * at the next cow__io_submit, by whichever thread makes it. A chain (the
 * operations queued with COW__IO_LINK and the one after them) is never
 * cut: the engine's lock stays with the queueing thread from its first
 * operation to its last (queue a chain's operations back to back, with no
 * other engine call between them), and no submission is made in its
 * middle (the kernel ends a link at the end of a submission, and the rest
 * would run unordered). An operation of a chain that finds the ring full
 * fails with -EAGAIN, not queued, and ends the chain there: queue nothing
 * more of it. The chain's first operation makes room for COW__IO_CHAIN_MAX
 * operations, so a chain that long finds room unless the submission that
 * made it failed. Nor does the kernel cut one: where it takes only part
 * of a submission (it could not allocate a request), the entries it left
 * fail with -EAGAIN when their no-op completes, none of them runs.
 * COW__IO_AFTER (a sync, the group's last operation, not in a chain): it
 * is held back until every operation the group queued before it ended,
 * however many, and then queued by the thread that processed the last
 * one's completion; if any of them failed it does not run (the group
 * keeps the failure). Nothing else waits for it, unlike IOSQE_IO_DRAIN,
 * which would hold every later entry of the ring (every owner's) until
 * it completed. */
#define COW__IO_LINK 1u
#define COW__IO_ASYNC 2u
#define COW__IO_AFTER 4u
#define COW__IO_CHAIN_MAX 128u
int cow__io_write(struct cow__io_op *op, struct cow__io_group *g, int fd,
		  const struct iovec *iov, int cnt, off_t off, unsigned how);
int cow__io_fsync(struct cow__io_op *op, struct cow__io_group *g, int fd,
		  unsigned how);
/* Submits what was queued; on failure the queued operations fail (their
 * groups' locks are taken: call it with no owner's lock held). */
int cow__io_submit(void);
/*
 * Waiting for a completion without a lost wake-up: read the generation
 * with the owner's lock held (after finding the condition false), drop
 * the lock, then wait: cow__io_wait returns once completions were
 * processed since gen was read (by this thread, reaping, or the reaper
 * thread). Call only while something is in flight, with no owner's lock
 * held.
 */
unsigned cow__io_gen(void);
void cow__io_wait(unsigned gen);
/* Processes the completions that are ready, without waiting (nothing if
 * another thread is reaping or holds the engine's lock). With no owner's
 * lock held. */
void cow__io_poll(void);

#endif
