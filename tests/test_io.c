// SPDX-License-Identifier: MIT
/*
 * The io_uring engine's chains (src/io.c): a chain of linked operations
 * reaches the ring whole. The kernel ends a link at the end of a
 * submission, so a submission made by another thread while a chain is
 * half queued (another arena's caller dropping its commit lock, the
 * reaper thread) would cut it, and its rest would run unordered: a log
 * fdatasync before the log write it must follow, a checkpoint's header
 * slot before the base's fdatasync.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "io.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(chain_is_not_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
