// SPDX-License-Identifier: MIT
/*
 * The one place that calls mmap, madvise, pread/pwrite, fsync, ioctl, open,
 * malloc and friends, with fault injection for the tests.
 *
 * Injection is process-wide and thread-safe (atomic counters): the test sets
 * "fail the Nth call of kind K with errno E", once or from then on. A kind of
 * COW__SYS_ANY counts every wrapped call, which is how the tests sweep a
 * public function over each of its underlying calls in turn. The cost when no
 * fault is armed is two relaxed atomic increments per call, paid only by
 * the test build (COW_FAULT_INJECT): the release library has none of it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/random.h>
#include <unistd.h>
#include <liburing.h>
#include <pthread.h>

#include "sys.h"

#ifdef COW_FAULT_INJECT
struct fault {
	unsigned long calls;   /* calls seen since reset */
	unsigned long fire_at; /* 0 = disarmed; else the call number to fail */
	int err;
	int persistent;
};

static struct fault faults[COW__SYS_NKINDS];
static int armed; /* any fault armed: skip the slow path otherwise */

void cow__fault_reset(void)
{
	__atomic_store_n(&armed, 0, __ATOMIC_SEQ_CST);
	for (int i = 0; i < COW__SYS_NKINDS; i++) {
		__atomic_store_n(&faults[i].fire_at, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&faults[i].calls, 0, __ATOMIC_SEQ_CST);
	}
}

void cow__fault_inject(enum cow__sys_kind kind, unsigned long nth, int err,
		       int persistent)
{
	struct fault *f = &faults[kind];
	unsigned long now = __atomic_load_n(&f->calls, __ATOMIC_SEQ_CST);

	f->err = err;
	f->persistent = persistent;
	__atomic_store_n(&f->fire_at, nth ? now + nth : 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&armed, 1, __ATOMIC_SEQ_CST);
}

unsigned long cow__fault_calls(enum cow__sys_kind kind)
{
	return __atomic_load_n(&faults[kind].calls, __ATOMIC_SEQ_CST);
}

static int hit(struct fault *f)
{
	unsigned long n = __atomic_add_fetch(&f->calls, 1, __ATOMIC_SEQ_CST);
	unsigned long at = __atomic_load_n(&f->fire_at, __ATOMIC_SEQ_CST);

	if (!at || n < at || (n > at && !f->persistent))
		return 0;
	return -f->err;
}

/* Returns 0, or the injected negative errno for this call. */
int cow__fault_check(enum cow__sys_kind kind)
{
	int e1, e2;

	if (!__atomic_load_n(&armed, __ATOMIC_RELAXED)) {
		__atomic_add_fetch(&faults[kind].calls, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&faults[0].calls, 1, __ATOMIC_RELAXED);
		return 0;
	}
	e1 = hit(&faults[kind]);
	e2 = hit(&faults[COW__SYS_ANY]);
	return e1 ? e1 : e2;
}
#endif

#define INJECT(kind)                             \
	do {                                     \
		int e_ = cow__fault_check(kind); \
		if (e_)                          \
			return e_;               \
	} while (0)

int cow__sys_mmap(void **out, void *addr, size_t len, int prot, int flags,
		  int fd, off_t off)
{
	void *p;

	INJECT(COW__SYS_MMAP);
	p = mmap(addr, len, prot, flags, fd, off);
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

int cow__sys_munmap(void *addr, size_t len)
{
	struct iovec iov = {addr, len};

	INJECT(COW__SYS_MUNMAP);
	if (munmap(addr, len))
		return -errno;
	cow__sys_trace(COW__SYS_MUNMAP, -1, &iov, 1, 0);
	return 0;
}

int cow__sys_madvise(void *addr, size_t len, int advice)
{
	struct iovec iov = {addr, len};

	INJECT(COW__SYS_MADVISE);
	cow__sys_trace(COW__SYS_MADVISE, -1, &iov, 1, advice);
	return madvise(addr, len, advice) ? -errno : 0;
}

/*
 * The same advice over several ranges of the caller's memory in one call
 * where the kernel offers it: process_madvise(2) on the caller itself
 * (PIDFD_SELF, Linux 6.15), which for MADV_DONTNEED flushes the TLB once
 * for all the ranges (6.16) instead of once per call, and a flush is what
 * a small madvise costs most, above all in a virtual machine. Elsewhere,
 * madvise range by range. *done counts the ranges wholly advised before a
 * failure (all of them on success).
 */
#define PIDFD_SELF_THREAD -10000
#define IOV_MAX_CALL 1024

int cow__sys_madvise_vec(const struct iovec *iov, size_t n, int advice,
			 size_t *done)
{
	static int no_vec;

	*done = 0;
	INJECT(COW__SYS_MADVISE);
	cow__sys_trace(COW__SYS_MADVISE, -1, iov, (int)n, advice);
	while (*done < n && !__atomic_load_n(&no_vec, __ATOMIC_RELAXED)) {
		size_t k = n - *done < IOV_MAX_CALL ? n - *done : IOV_MAX_CALL;
		long got = syscall(SYS_process_madvise, PIDFD_SELF_THREAD,
				   iov + *done, k, advice, 0);

		if (got < 0 && *done == 0 &&
		    (errno == ENOSYS || errno == EBADF || errno == EINVAL ||
		     errno == EPERM || errno == ESRCH)) {
			__atomic_store_n(&no_vec, 1, __ATOMIC_RELAXED);
			break;
		}
		if (got < 0)
			return -errno;
		for (size_t i = 0; i < k; i++) {
			if ((size_t)got < iov[*done].iov_len)
				return -EAGAIN; /* a partial advice */
			got -= (long)iov[*done].iov_len;
			(*done)++;
		}
	}
	for (; *done < n; (*done)++)
		if (madvise(iov[*done].iov_base, iov[*done].iov_len, advice))
			return -errno;
	return 0;
}

int cow__sys_memfd(const char *name, unsigned flags)
{
	int fd;

	INJECT(COW__SYS_MEMFD);
	fd = memfd_create(name, flags);
	return fd < 0 ? -errno : fd;
}

/*
 * RLIMIT_FSIZE: a write that reaches past the limit (whether or not the
 * file is that long already) or a truncation that grows a file past it
 * makes the kernel send SIGXFSZ, which kills the process by default. Every
 * wrapper that can make a file longer checks first and returns -EFBIG, as
 * the kernel would with the signal ignored; the limit is read each time
 * (setrlimit may change it at any moment).
 */
int cow__sys_fsize_check(off_t end)
{
	struct rlimit rl;

	int r = cow__sys_getrlimit(RLIMIT_FSIZE, &rl);

	if (r < 0)
		return r;
	if (rl.rlim_cur != RLIM_INFINITY && end > 0 &&
	    (rlim_t)end > rl.rlim_cur)
		return -EFBIG;
	return 0;
}

int cow__sys_ftruncate(int fd, off_t len)
{
	INJECT(COW__SYS_FTRUNCATE);
	if (cow__sys_fsize_check(len) < 0) {
		/* Only growing past the limit raises the signal. */
		struct stat st;

		if (fstat(fd, &st))
			return -errno;
		if (len > st.st_size)
			return -EFBIG;
	}
	while (ftruncate(fd, len)) {
		if (errno != EINTR)
			return -errno;
	}
	cow__sys_trace(COW__SYS_FTRUNCATE, fd, NULL, 0, len);
	return 0;
}

int cow__sys_fallocate(int fd, off_t off, off_t len)
{
	INJECT(COW__SYS_FALLOCATE);
	/* the caller checked RLIMIT_FSIZE: past it the call raises SIGXFSZ */
	while (fallocate(fd, 0, off, len)) {
		if (errno != EINTR)
			return -errno;
	}
	cow__sys_trace(COW__SYS_FTRUNCATE, fd, NULL, 0, off + len);
	return 0;
}

/* Full reads: a short read means end of file and returns the count. */
ssize_t cow__sys_pread(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	INJECT(COW__SYS_PREAD);
	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done,
				  off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* Full vectored reads: one preadv, a short one finished buffer by buffer
 * (a short read there means end of file and returns the count). */
ssize_t cow__sys_preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
	size_t done = 0, skip;
	ssize_t r;

	INJECT(COW__SYS_PREAD);
	do
		r = preadv(fd, iov, cnt, off);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	skip = (size_t)r;
	for (int i = 0; i < cnt; i++) {
		size_t l = iov[i].iov_len, got = 0;

		if (skip >= l) {
			skip -= l;
			done += l;
			continue;
		}
		while (skip + got < l) {
			r = pread(fd, (char *)iov[i].iov_base + skip + got,
				  l - skip - got,
				  off + (off_t)(done + skip + got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -errno;
			if (r == 0)
				return (ssize_t)(done + skip + got);
			got += (size_t)r;
		}
		done += l;
		skip = 0;
	}
	return (ssize_t)done;
}

/* Full writes: loops over short writes; a write that makes no progress is
 * reported as ENOSPC, as the kernel would on the next attempt. */
static ssize_t write_full(int fd, const char *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r =
		    pwrite(fd, buf + done, len - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENOSPC;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

#ifdef COW_FAULT_INJECT
static cow__sys_trace_fn trace_fn;

void cow__sys_set_trace(cow__sys_trace_fn fn)
{
	__atomic_store_n(&trace_fn, fn, __ATOMIC_SEQ_CST);
}

void cow__sys_trace(enum cow__sys_kind kind, int fd, const struct iovec *iov,
		    int cnt, off_t off)
{
	cow__sys_trace_fn fn = __atomic_load_n(&trace_fn, __ATOMIC_SEQ_CST);

	if (fn)
		fn(kind, fd, iov, cnt, off);
}
#endif

ssize_t cow__sys_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	struct iovec iov = {(void *)buf, len};
	ssize_t r;

	INJECT(COW__SYS_PWRITE);
	r = cow__sys_fsize_check(off + (off_t)len);
	if (r < 0)
		return r;
	r = write_full(fd, buf, len, off);
	if (r >= 0)
		cow__sys_trace(COW__SYS_PWRITE, fd, &iov, 1, off);
	return r;
}

/* One pwritev; a short one is finished buffer by buffer. */
ssize_t cow__sys_pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	size_t total = 0, skip;
	off_t start = off;
	ssize_t r;

	INJECT(COW__SYS_PWRITE);
	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	r = cow__sys_fsize_check(off + (off_t)total);
	if (r < 0)
		return r;
	r = pwritev(fd, iov, cnt, off);
	if (r < 0 && errno != EINTR)
		return -errno;
	skip = r < 0 ? 0 : (size_t)r;
	for (int i = 0; i < cnt; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			off += (off_t)l;
			continue;
		}
		r = write_full(fd, (const char *)iov[i].iov_base + skip,
			       l - skip, off + (off_t)skip);
		if (r < 0)
			return r;
		skip = 0;
		off += (off_t)l;
	}
	cow__sys_trace(COW__SYS_PWRITE, fd, iov, cnt, start);
	return (ssize_t)total;
}

/* Never retried: after a failed fsync the kernel may have dropped the dirty
 * pages, so a retry that succeeds would report data as durable that is not. */
int cow__sys_fsync(int fd, int data_only)
{
	INJECT(COW__SYS_FSYNC);
	if (data_only ? fdatasync(fd) : fsync(fd))
		return -errno;
	cow__sys_trace(COW__SYS_FSYNC, fd, NULL, 0, 0);
	return 0;
}

int cow__sys_fsync_dir(int dirfd)
{
	int fd =
	    cow__sys_openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	int r;

	if (fd < 0)
		return fd;
	r = cow__sys_fsync(fd, 0);
	close(fd);
	return r;
}

int cow__sys_getrandom(void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = getrandom((char *)buf + done, len - done, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		done += (size_t)r;
	}
	return 0;
}

int cow__sys_renameat(int dirfd, const char *from, const char *to)
{
	INJECT(COW__SYS_OPEN);
	return renameat(dirfd, from, dirfd, to) ? -errno : 0;
}

off_t cow__sys_lseek(int fd, off_t off, int whence)
{
	off_t r;

	INJECT(COW__SYS_SEEK);
	r = lseek(fd, off, whence);
	return r < 0 ? -errno : r;
}

ssize_t cow__sys_readlink(const char *path, char *buf, size_t len)
{
	ssize_t r;

	INJECT(COW__SYS_OPEN);
	r = readlink(path, buf, len);
	return r < 0 ? -errno : r;
}

int cow__sys_uring_init(struct io_uring *ring, unsigned entries,
			struct io_uring_params *p)
{
	INJECT(COW__SYS_URING);
	return io_uring_queue_init_params(entries, ring, p);
}

#ifdef COW_FAULT_INJECT
static unsigned long take_max; /* 0: every entry ready */

void cow__fault_uring_take(unsigned long n)
{
	__atomic_store_n(&take_max, n, __ATOMIC_SEQ_CST);
}

/* As the kernel does when it cannot allocate a request: takes only the
 * first n entries ready (io_uring_submit's first step, the prepared
 * entries made visible to the kernel, then an enter for n of them). */
static int submit_part(struct io_uring *ring, unsigned n)
{
	struct io_uring_sq *sq = &ring->sq;
	unsigned ready;

	if (sq->sqe_head != sq->sqe_tail) {
		sq->sqe_head = sq->sqe_tail;
		io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
	}
	ready = *sq->ktail - io_uring_smp_load_acquire(sq->khead);
	return io_uring_enter((unsigned)ring->ring_fd, n < ready ? n : ready, 0,
			      0, NULL);
}
#endif

int cow__sys_uring_submit(struct io_uring *ring)
{
	int r;

	INJECT(COW__SYS_URING);
#ifdef COW_FAULT_INJECT
	{
		unsigned long n =
		    __atomic_exchange_n(&take_max, 0, __ATOMIC_SEQ_CST);

		if (n)
			return submit_part(ring, (unsigned)n);
	}
#endif
	do
		r = io_uring_submit(ring);
	while (r == -EINTR);
	return r;
}

/* Waits for a completion; not injected (the completion's result is, with
 * COW__SYS_CQE, by the engine). */
int cow__sys_uring_wait(struct io_uring *ring, struct io_uring_cqe **cqe)
{
	int r;

	do
		r = io_uring_wait_cqe(ring, cqe);
	while (r == -EINTR);
	return r;
}

void cow__sys_uring_exit(struct io_uring *ring)
{
	io_uring_queue_exit(ring);
}

int cow__sys_ioctl(int fd, unsigned long req, void *arg)
{
	int r;

	INJECT(COW__SYS_IOCTL);
	r = ioctl(fd, req, arg);
	return r < 0 ? -errno : r;
}

int cow__sys_open(const char *path, int flags, unsigned mode)
{
	return cow__sys_openat(AT_FDCWD, path, flags, mode);
}

int cow__sys_openat(int dirfd, const char *path, int flags, unsigned mode)
{
	int fd;

	INJECT(COW__SYS_OPEN);
	do
		fd = openat(dirfd, path, flags, mode);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

int cow__sys_fstat(int fd, struct stat *st)
{
	INJECT(COW__SYS_FSTAT);
	return fstat(fd, st) ? -errno : 0;
}

int cow__sys_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	INJECT(COW__SYS_FSTAT);
	return fstatat(dirfd, path, st, flags) ? -errno : 0;
}

int cow__sys_fcntl(int fd, int cmd, long arg)
{
	int r;

	INJECT(COW__SYS_FCNTL);
	r = fcntl(fd, cmd, arg);
	return r < 0 ? -errno : r;
}

int cow__sys_fcntl_lock(int fd, int cmd, void *flock)
{
	int r;

	INJECT(COW__SYS_FCNTL);
	r = fcntl(fd, cmd, flock);
	return r < 0 ? -errno : r;
}

int cow__sys_userfaultfd(int flags)
{
	long r;

	INJECT(COW__SYS_UFFD);
	r = syscall(SYS_userfaultfd, flags);
	return r < 0 ? -errno : (int)r;
}

/* close(2) is not injected: its failure cannot be undone by the caller, and
 * on Linux the descriptor is released even when it reports an error. */
void cow__sys_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* Cleanup only: not injected, its failure changes nothing we could undo. */
void cow__sys_unlink(const char *path)
{
	(void)unlink(path);
}

void cow__sys_unlinkat(int dirfd, const char *path)
{
	(void)unlinkat(dirfd, path, 0);
}

/* Cleanup only, not injected (as close): removing a lock we hold cannot
 * fail, and a failure could not be undone. */
void cow__sys_ofd_unlock(int fd)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_UNLCK;
	fl.l_whence = SEEK_SET;
	(void)fcntl(fd, F_OFD_SETLK, &fl);
}

int cow__sys_sigaction(int sig, const struct sigaction *act,
		       struct sigaction *old)
{
	INJECT(COW__SYS_SIGNAL);
	return sigaction(sig, act, old) ? -errno : 0;
}

/* Not injected: reading a limit of the own process cannot fail. */
int cow__sys_getrlimit(int resource, struct rlimit *rl)
{
	return getrlimit((__rlimit_resource_t)resource, rl) ? -errno : 0;
}

pid_t cow__sys_getpid(void)
{
	return getpid();
}

/*
 * The process's pid without a system call on every use (glibc has not
 * cached it since 2.25, and every cow_* call asks: the fork rule of
 * guard.c). Read once, forgotten in the child of every fork() through a
 * pthread_atfork handler, registered before the first pid is cached, so
 * no fork() after that can leave a stale value. A child made without the
 * fork handlers (a raw clone() or clone3(), glibc's _Fork()) keeps its
 * parent's pid here: the library cannot tell it from its parent and does
 * not refuse its calls with -ECHILD. vfork() and posix_spawn() children
 * may only exec or exit, and are not concerned.
 */
static pid_t pid_cached; /* 0: not read (yet, or since a fork) */
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void pid_forget(void)
{
	__atomic_store_n(&pid_cached, 0, __ATOMIC_RELAXED);
}

static void pid_watch_forks(void)
{
	/* Without the handler the cache cannot be trusted: no caching. */
	if (pthread_atfork(NULL, NULL, pid_forget))
		__atomic_store_n(&pid_cached, -1, __ATOMIC_RELAXED);
}

pid_t cow__sys_pid(void)
{
	pid_t p = __atomic_load_n(&pid_cached, __ATOMIC_RELAXED);

	if (p > 0)
		return p;
	pthread_once(&pid_once, pid_watch_forks);
	if (__atomic_load_n(&pid_cached, __ATOMIC_RELAXED) < 0)
		return getpid();
	p = getpid();
	__atomic_store_n(&pid_cached, p, __ATOMIC_RELAXED);
	return p;
}

int cow__sys_sig_fstat(int fd, struct stat *st)
{
	return fstat(fd, st) ? -errno : 0;
}

/* Private anonymous zero pages over [addr, addr + len): no descriptor is
 * needed (the process may be out of them) and no file size limit applies. */
int cow__sys_sig_map_zero(void *addr, size_t len)
{
	void *p = mmap(addr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
		       -1, 0);

	return p == MAP_FAILED ? -errno : 0;
}

int cow__sys_sig_unmap(void *addr, size_t len)
{
	return munmap(addr, len) ? -errno : 0;
}

int cow__sys_sig_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

/*
 * Restores the default action of sig. A fault re-executes the access when
 * the handler returns and so meets the default action by itself; a signal
 * that was sent (resend) is sent again, and stays pending until the
 * handler returns.
 */
void cow__sys_sig_default(int sig, int resend)
{
	struct sigaction dfl;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	(void)sigaction(sig, &dfl, NULL);
	if (resend)
		(void)raise(sig);
}

ssize_t cow__sys_read(int fd, void *buf, size_t len)
{
	ssize_t r;

	INJECT(COW__SYS_PREAD);
	do
		r = read(fd, buf, len);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

void *cow__malloc(size_t n)
{
	if (cow__fault_check(COW__SYS_MALLOC))
		return NULL;
	return malloc(n);
}

void *cow__calloc(size_t n, size_t sz)
{
	if (cow__fault_check(COW__SYS_MALLOC))
		return NULL;
	return calloc(n, sz);
}

void *cow__realloc(void *p, size_t n)
{
	if (cow__fault_check(COW__SYS_MALLOC))
		return NULL;
	return realloc(p, n);
}

void *cow__mallocarray(size_t n, size_t sz)
{
	if (n == 0)
		n = 1;
	if (sz && n > PTRDIFF_MAX / sz)
		return NULL;
	return cow__malloc(n * sz);
}

void *cow__array_grow(void *v, size_t *cap, size_t need, size_t size,
		      size_t first)
{
	size_t n = *cap ? *cap : first;

	if (need <= *cap)
		return v;
	if (n == 0)
		n = 1;
	while (n < need)
		n = n > SIZE_MAX / 2 ? need : 2 * n;
	/* No object is larger than PTRDIFF_MAX bytes (malloc refuses, and
	 * a sanitizer's would abort): fail before asking. */
	if (size && n > PTRDIFF_MAX / size) {
		/* doubling overshot what fits: the exact need may still */
		n = need;
		if (n > PTRDIFF_MAX / size)
			return NULL;
	}
	v = cow__realloc(v, n * size);
	if (v)
		*cap = n;
	return v;
}

void cow__free(void *p)
{
	free(p);
}

const char *cow__fd_path(char buf[COW__FD_PATH_LEN], int fd)
{
	snprintf(buf, COW__FD_PATH_LEN, "/proc/self/fd/%d", fd);
	return buf;
}
