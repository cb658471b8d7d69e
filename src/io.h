/* SPDX-License-Identifier: MIT */
/*
 * The io_uring engine: one ring and at most one reaper thread per process,
 * shared by all arenas, and one lock that also guards the arenas' commit
 * state touched by completions.
 *
 * Operations are grouped: a group holds one reference while its owner adds
 * operations, and calls its done function (with the first error, or 0)
 * once the owner released it and every operation completed. done runs with
 * the engine lock held, in whichever thread reaped the last completion.
 */
#ifndef COW_IO_H
#define COW_IO_H

#include <sys/types.h>
#include <sys/uio.h>

typedef void (*cow__io_done_fn)(void *ctx, int err);

struct cow__io_group {
	unsigned pending; /* operations in flight + 1 while held */
	int err;	  /* first failure */
	cow__io_done_fn done;
	void *ctx;
};

struct cow__io_op {
	struct cow__io_group *g;
	int fd, cnt;
	const struct iovec *iov; /* NULL for a sync */
	off_t off;
	size_t expect; /* bytes a write must transfer */
};

/* References: every arena that commits through the engine holds one; with
 * thread set it also keeps the reaper thread running. */
int cow__io_get(int thread);
void cow__io_put(int thread);

void cow__io_lock(void);
void cow__io_unlock(void);

/* All below: with the lock held. */
void cow__io_group_init(struct cow__io_group *g, cow__io_done_fn done,
			void *ctx);
/* Drops the owner's reference; done may run inside this call. */
void cow__io_group_release(struct cow__io_group *g);
/* Queue a write of iov (cnt buffers) at off, or an fdatasync. how:
 * COW__IO_LINK: the next queued operation starts only after this one
 * succeeded; COW__IO_ASYNC: the kernel runs it in its worker threads, never
 * inline in the submission (a buffered write of many pages would otherwise
 * copy them on the submitting thread). A negative return means the
 * operation was not queued (the group records it). */
#define COW__IO_LINK 1u
#define COW__IO_ASYNC 2u
int cow__io_write(struct cow__io_op *op, struct cow__io_group *g, int fd,
		  const struct iovec *iov, int cnt, off_t off, unsigned how);
int cow__io_fsync(struct cow__io_op *op, struct cow__io_group *g, int fd,
		  unsigned how);
/* Submits what was queued; on failure the queued operations fail. */
int cow__io_submit(void);
/* Waits until some completion was processed (by this thread or the reaper
 * thread). Call only while something is in flight. */
void cow__io_wait(void);
/* Processes the completions that are ready, without waiting. */
void cow__io_poll(void);

#endif
