// SPDX-License-Identifier: MIT
/*
 * The io_uring engine's chains (src/io.c): a chain of linked operations
 * reaches the ring whole. The kernel ends a link at the end of a
 * submission, so a submission made by another thread while a chain is
 * half queued (another arena's caller dropping its commit lock, the
 * reaper thread) would cut it, and its rest would run unordered: a log
 * fdatasync before the log write it must follow, a checkpoint's header
 * slot before the base's fdatasync. And a sync that must follow more
 * operations than a chain holds (COW__IO_AFTER) waits for them all.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "helpers.h"
#include "io.h"
#include "sys.h"
#include "testhooks.h"

struct chain {
	pthread_mutex_t lock; /* the owner's */
	struct cow__io_group g;
	struct cow__io_op op[2];
	struct iovec iov;
	char buf[4096];
	int fd;
	int rest_queued; /* set just before the chain's last operation */
	int seen;	 /* rest_queued when the other thread's submit ended */
	int done, err;
};

static void chain_done(void *ctx, int err)
{
	struct chain *x = ctx;

	x->err = err;
	x->done = 1;
}

/* Another thread submits while the chain is half queued. */
static void *submitter(void *arg)
{
	struct chain *x = arg;

	(void)cow__io_submit();
	x->seen = __atomic_load_n(&x->rest_queued, __ATOMIC_SEQ_CST);
	return NULL;
}

static void chain_is_not_cut(void **state)
{
	struct timespec pause = {0, 50 * 1000 * 1000};
	char path[] = "/var/tmp/cowarena-io-XXXXXX";
	struct chain x;
	pthread_t t;
	int done;

	(void)state;
	memset(&x, 0, sizeof(x));
	pthread_mutex_init(&x.lock, NULL);
	x.fd = mkstemp(path);
	assert_true(x.fd >= 0);
	unlink(path);
	x.iov.iov_base = x.buf;
	x.iov.iov_len = sizeof(x.buf);
	assert_int_equal(cow__io_get(0), 0);

	pthread_mutex_lock(&x.lock);
	cow__io_group_init(&x.g, chain_done, &x, &x.lock);
	assert_int_equal(
	    cow__io_write(&x.op[0], &x.g, x.fd, &x.iov, 1, 0, COW__IO_LINK), 0);
	/* The other thread's submission must wait for the chain's end. */
	assert_int_equal(pthread_create(&t, NULL, submitter, &x), 0);
	nanosleep(&pause, NULL);
	__atomic_store_n(&x.rest_queued, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(cow__io_fsync(&x.op[1], &x.g, x.fd, 0), 0);
	cow__io_group_release(&x.g);
	pthread_mutex_unlock(&x.lock);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(x.seen, 1);

	/* Both ran, in order, and the group ended once. */
	(void)cow__io_submit();
	for (;;) {
		unsigned gen;

		pthread_mutex_lock(&x.lock);
		done = x.done;
		gen = cow__io_gen();
		pthread_mutex_unlock(&x.lock);
		if (done)
			break;
		cow__io_wait(gen);
	}
	assert_int_equal(x.err, 0);
	cow__io_put(0);
	close(x.fd);
	pthread_mutex_destroy(&x.lock);
}

/* ---- COW__IO_AFTER ---- */

#define NWRITES 300 /* more than the ring's 256 entries */

struct after {
	pthread_mutex_t lock; /* the owner's */
	struct cow__io_group g;
	struct cow__io_op op[NWRITES + 2];
	struct iovec iov;
	char buf[4096];
	int fd, pipe[2];
	int done, err;
};

/* Completions seen for the file, in order. */
static int after_fd = -1;
static unsigned file_writes, file_syncs, writes_after_sync;

static void trace_file(enum cow__sys_kind kind, int fd, const struct iovec *iov,
		       int cnt, off_t off)
{
	(void)iov;
	(void)cnt;
	(void)off;
	if (fd != after_fd)
		return;
	if (kind == COW__SYS_FSYNC)
		file_syncs++;
	else if (kind == COW__SYS_PWRITE && file_syncs)
		writes_after_sync++;
	else if (kind == COW__SYS_PWRITE)
		file_writes++;
}

static void after_done(void *ctx, int err)
{
	struct after *x = ctx;

	x->err = err;
	/* released: ring_coop_taskrun reads it without the lock */
	__atomic_store_n(&x->done, 1, __ATOMIC_RELEASE);
}

/* done2: the group's result, -EAGAIN here (1 for success). */
static void chain_end(void *ctx, int err)
{
	*(int *)ctx = err ? err : 1;
}

static void after_open(struct after *x)
{
	char path[] = "/var/tmp/cowarena-io-XXXXXX";

	memset(x, 0, sizeof(*x));
	pthread_mutex_init(&x->lock, NULL);
	x->fd = mkstemp(path);
	assert_true(x->fd >= 0);
	unlink(path);
	x->iov.iov_base = x->buf;
	x->iov.iov_len = sizeof(x->buf);
	after_fd = x->fd;
	file_writes = file_syncs = writes_after_sync = 0;
	cow__sys_set_trace(trace_file);
	assert_int_equal(cow__io_get(0), 0);
}

static void after_close(struct after *x)
{
	cow__sys_set_trace(NULL);
	after_fd = -1;
	cow__io_put(0);
	close(x->fd);
	pthread_mutex_destroy(&x->lock);
}

/* Queues the NWRITES file writes, unlinked (the ring is submitted in
 * their middle), then the sync that must follow them. */
static void queue_writes_then_sync(struct after *x, int first)
{
	for (int i = 0; i < NWRITES; i++)
		assert_int_equal(cow__io_write(&x->op[first + i], &x->g, x->fd,
					       &x->iov, 1, (off_t)i * 4096, 0),
				 0);
	assert_int_equal(
	    cow__io_fsync(&x->op[first + NWRITES], &x->g, x->fd, COW__IO_AFTER),
	    0);
}

/* The NWRITES writes and their sync as the group's only operations. */
static void group_writes_then_sync(struct after *x)
{
	pthread_mutex_lock(&x->lock);
	cow__io_group_init(&x->g, after_done, x, &x->lock);
	queue_writes_then_sync(x, 0);
	cow__io_group_release(&x->g);
	pthread_mutex_unlock(&x->lock);
}

static void wait_done(struct after *x)
{
	(void)cow__io_submit();
	for (;;) {
		unsigned gen;
		int done;

		pthread_mutex_lock(&x->lock);
		done = x->done;
		gen = cow__io_gen();
		pthread_mutex_unlock(&x->lock);
		if (done)
			break;
		cow__io_wait(gen);
	}
}

/* Processes the completions that come for about ms milliseconds. */
static void poll_for(int ms)
{
	struct timespec pause = {0, 1000 * 1000};

	for (int i = 0; i < ms; i++) {
		cow__io_poll();
		nanosleep(&pause, NULL);
	}
}

/* The group's first operation, a write to a full pipe, blocks until the
 * test reads the pipe; the file's writes all complete meanwhile; the sync
 * must not run before the pipe's write ended. (A link from the writes
 * could not hold: they are more than a submission.) */
static void after_waits_for_every_operation(void **state)
{
	static struct after x;
	char drain[65536];
	int fl;

	(void)state;
	after_open(&x);
	assert_int_equal(pipe(x.pipe), 0);
	fl = fcntl(x.pipe[1], F_GETFL);
	assert_int_equal(fcntl(x.pipe[1], F_SETFL, fl | O_NONBLOCK), 0);
	while (write(x.pipe[1], drain, sizeof(drain)) > 0)
		;
	assert_int_equal(fcntl(x.pipe[1], F_SETFL, fl), 0);

	pthread_mutex_lock(&x.lock);
	cow__io_group_init(&x.g, after_done, &x, &x.lock);
	assert_int_equal(
	    cow__io_write(&x.op[0], &x.g, x.pipe[1], &x.iov, 1, 0, 0), 0);
	queue_writes_then_sync(&x, 1);
	cow__io_group_release(&x.g);
	pthread_mutex_unlock(&x.lock);
	(void)cow__io_submit();

	/* Every file write completes (however loaded the machine: up to
	 * 20 s), and 100 ms more pass: the sync has not run. */
	for (int ms = 0; file_writes < NWRITES && ms < 20000; ms += 10)
		poll_for(10);
	assert_int_equal(file_writes, NWRITES);
	poll_for(100);
	pthread_mutex_lock(&x.lock);
	assert_int_equal(x.done, 0);
	pthread_mutex_unlock(&x.lock);
	assert_int_equal(file_syncs, 0);

	/* The pipe's write ends: then the sync runs, after every write. */
	assert_true(read(x.pipe[0], drain, sizeof(drain)) > 0);
	wait_done(&x);
	assert_int_equal(x.err, 0);
	assert_int_equal(file_syncs, 1);
	assert_int_equal(writes_after_sync, 0);
	close(x.pipe[0]);
	close(x.pipe[1]);
	after_close(&x);
}

/* One of the writes fails: the sync does not run, the group ends with
 * the failure. With nothing else in flight, the sync runs at once. */
static void after_skipped_on_failure(void **state)
{
	static struct after x;

	(void)state;
	after_open(&x);
	pthread_mutex_lock(&x.lock);
	cow__io_group_init(&x.g, after_done, &x, &x.lock);
	queue_writes_then_sync(&x, 0);
	cow__fault_inject(COW__SYS_CQE, 7, EIO, 0);
	cow__io_group_release(&x.g);
	pthread_mutex_unlock(&x.lock);
	wait_done(&x);
	cow__fault_reset();
	assert_int_equal(x.err, -EIO);
	assert_int_equal(file_writes, NWRITES - 1);
	assert_int_equal(file_syncs, 0);

	x.done = 0;
	pthread_mutex_lock(&x.lock);
	cow__io_group_init(&x.g, after_done, &x, &x.lock);
	assert_int_equal(cow__io_fsync(&x.op[0], &x.g, x.fd, COW__IO_AFTER), 0);
	cow__io_group_release(&x.g);
	pthread_mutex_unlock(&x.lock);
	wait_done(&x);
	assert_int_equal(x.err, 0);
	assert_int_equal(file_syncs, 1);
	after_close(&x);
}

/*
 * A chain that finds the ring full in its middle is not cut: no
 * submission is made there (the kernel would end the link, and the rest
 * of the chain would run unordered). The operation that finds no room
 * fails with -EAGAIN and ends the chain. Here the ring holds 200 entries
 * not yet submitted, and the submission that would make room for the
 * chain fails.
 */
static void chain_fails_rather_than_cut(void **state)
{
	static struct after x;
	static struct cow__io_group g2;
	static struct cow__io_op chain[100];
	int queued = 0, r = 0, done2 = 0;

	(void)state;
	after_open(&x);
	pthread_mutex_lock(&x.lock);
	cow__io_group_init(&x.g, after_done, &x, &x.lock);
	for (int i = 0; i < 200; i++)
		assert_int_equal(cow__io_write(&x.op[i], &x.g, x.fd, &x.iov, 1,
					       (off_t)i * 4096, 0),
				 0);
	cow__io_group_init(&g2, chain_end, &done2, &x.lock);
	cow__fault_inject(COW__SYS_URING, 1, EBUSY, 0);
	while (queued < 100 && r == 0) {
		r = cow__io_write(&chain[queued], &g2, x.fd, &x.iov, 1,
				  (off_t)(200 + queued) * 4096,
				  queued < 99 ? COW__IO_LINK : 0);
		queued += r == 0;
	}
	cow__fault_reset();
	assert_int_equal(r, -EAGAIN);
	assert_int_equal(queued, 256 - 200); /* the ring's room, no more */
	cow__io_group_release(&g2);
	cow__io_group_release(&x.g);
	pthread_mutex_unlock(&x.lock);
	wait_done(&x);
	for (;;) {
		unsigned gen;

		pthread_mutex_lock(&x.lock);
		gen = cow__io_gen();
		r = done2;
		pthread_mutex_unlock(&x.lock);
		if (r)
			break;
		cow__io_wait(gen);
	}
	assert_int_equal(x.err, 0);
	assert_int_equal(done2, -EAGAIN);
	assert_int_equal(file_writes, 200 + 56);
	after_close(&x);
}

/*
 * The kernel may take fewer entries than a submission offers (it stops
 * when it cannot allocate a request): a linked write and fdatasync of
 * which it takes only the write. The sync left must never run on its own
 * later, unordered with the write (a commit reported durable before its
 * log write is): it fails with -EAGAIN and the group with it. The old
 * engine counted every entry as taken, and the sync stayed in the ring to
 * run at some later submission (or never, and the group never ended).
 */
static void sync_not_taken_fails(void **state)
{
	static struct after x;

	(void)state;
	after_open(&x);
	pthread_mutex_lock(&x.lock);
	cow__io_group_init(&x.g, after_done, &x, &x.lock);
	assert_int_equal(cow__io_write(&x.op[0], &x.g, x.fd, &x.iov, 1, 0,
				       COW__IO_LINK),
			 0);
	assert_int_equal(cow__io_fsync(&x.op[1], &x.g, x.fd, 0), 0);
	cow__io_group_release(&x.g);
	pthread_mutex_unlock(&x.lock);
	cow__fault_uring_take(1);
	(void)cow__io_submit();
	cow__fault_uring_take(0);
	for (int ms = 0; ms < 5000; ms += 10) {
		int done;

		poll_for(10);
		pthread_mutex_lock(&x.lock);
		done = x.done;
		pthread_mutex_unlock(&x.lock);
		if (done)
			break;
	}
	assert_int_equal(x.done, 1);
	assert_int_equal(x.err, -EAGAIN);
	assert_int_equal(file_writes, 1);
	assert_int_equal(file_syncs, 0);
	after_close(&x);
}

/*
 * The ring is made with IORING_SETUP_COOP_TASKRUN: the kernel's workers do
 * not interrupt the submitting thread for each request they ran (its task
 * work waits for its next entry into the kernel). The completions do not
 * wait for that: here the submitter spins in user space, making no
 * system call, until the engine's thread has run the group's end. A
 * kernel that refuses the flag (-EINVAL, before 5.19; injected here) gets
 * a ring without it that works the same; any other error of the set-up is
 * returned, with no ring made.
 */
static void ring_coop_taskrun(void **state)
{
	static struct after x;
	struct io_uring probe;
	struct io_uring_params p;
	struct timespec t0, t;
	int has, done = 0;

	(void)state;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_COOP_TASKRUN;
	has = io_uring_queue_init_params(4, &probe, &p) == 0;
	if (has)
		io_uring_queue_exit(&probe);
	else
		print_message("ring_coop_taskrun: the kernel lacks "
			      "IORING_SETUP_COOP_TASKRUN: only the fallback "
			      "is checked\n");
	assert_int_equal(cow__io_ring_flags(), 0);

	after_open(&x);
	assert_int_equal(cow__io_ring_flags() & IORING_SETUP_COOP_TASKRUN,
			 has ? IORING_SETUP_COOP_TASKRUN : 0);
	cow__io_put(0);
	assert_int_equal(cow__io_get(1), 0); /* with the engine's thread */
	group_writes_then_sync(&x);
	(void)cow__io_submit();
	clock_gettime(CLOCK_MONOTONIC, &t0); /* the vDSO: no system call */
	do {
		done = __atomic_load_n(&x.done, __ATOMIC_ACQUIRE);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (!done && t.tv_sec - t0.tv_sec < 20);
	assert_int_equal(done, 1);
	assert_int_equal(x.err, 0);
	assert_int_equal(file_writes, NWRITES);
	assert_int_equal(file_syncs, 1);
	cow__io_put(1);
	assert_int_equal(cow__io_get(0), 0);
	after_close(&x);
	assert_int_equal(cow__io_ring_flags(), 0);

	/* The flag refused: a second set-up without it. */
	cow__fault_reset();
	cow__fault_inject(COW__SYS_URING, 1, EINVAL, 0);
	after_open(&x);
	assert_int_equal(cow__fault_calls(COW__SYS_URING), 2);
	cow__fault_reset();
	assert_int_equal(cow__io_ring_flags() & IORING_SETUP_COOP_TASKRUN, 0);
	assert_true(cow__io_ring_flags() & IORING_SETUP_CQSIZE);
	group_writes_then_sync(&x);
	wait_done(&x);
	assert_int_equal(x.err, 0);
	assert_int_equal(file_syncs, 1);
	after_close(&x);

	/* Any other error: returned, and no second try. */
	cow__fault_reset();
	cow__fault_inject(COW__SYS_URING, 1, EPERM, 0);
	assert_int_equal(cow__io_get(0), -EPERM);
	assert_int_equal(cow__fault_calls(COW__SYS_URING), 1);
	cow__fault_reset();
	assert_int_equal(cow__io_ring_flags(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(chain_is_not_cut),
	    cmocka_unit_test(after_waits_for_every_operation),
	    cmocka_unit_test(after_skipped_on_failure),
	    cmocka_unit_test(chain_fails_rather_than_cut),
	    cmocka_unit_test(sync_not_taken_fails),
	    cmocka_unit_test(ring_coop_taskrun),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
