/* SPDX-License-Identifier: MIT */
/*
 * The OS layer: every system call and allocation the library makes goes
 * through these wrappers, which return 0 (or a count) or a negative errno.
 *
 * Each wrapper first asks the fault injector whether this call should fail:
 * tests make the Nth call of a kind (or of any kind) fail with a chosen
 * errno, once or persistently, so every error path runs in tests.
 *
 * The injector and the trace hook exist only where COW_FAULT_INJECT is
 * defined: the test objects (build/obj-test, libcowarena-test.a) that the
 * tests and the fuzzer link. The release library gets the inline stubs
 * below, which the compiler removes: no counters, no atomics, and no
 * cow__fault_* or trace symbols in libcowarena.a/.so.
 */
#ifndef COW_SYS_H
#define COW_SYS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <signal.h>
#include <sys/resource.h>

enum cow__sys_kind {
	COW__SYS_ANY = 0, /* matches every call, for sweeps */
	COW__SYS_MMAP,
	COW__SYS_MUNMAP,
	COW__SYS_MADVISE,
	COW__SYS_MEMFD,
	COW__SYS_FTRUNCATE,
	COW__SYS_PREAD,
	COW__SYS_PWRITE,
	COW__SYS_FSYNC,
	COW__SYS_IOCTL, /* PAGEMAP_SCAN and userfaultfd ioctls */
	COW__SYS_OPEN,
	COW__SYS_FSTAT,
	COW__SYS_FCNTL,
	COW__SYS_UFFD, /* the userfaultfd(2) system call */
	COW__SYS_MALLOC,
	COW__SYS_URING,	    /* io_uring setup and submission */
	COW__SYS_CQE,	    /* the result of an io_uring completion */
	COW__SYS_SIGNAL,    /* sigaction(2): installing the SIGBUS guard */
	COW__SYS_SEEK,	    /* lseek(2): finding a log's data (SEEK_DATA) */
	COW__SYS_FALLOCATE, /* fallocate(2): growing the log */
	COW__SYS_NKINDS
};

#ifdef COW_FAULT_INJECT
/* Test hooks (test builds only). */
void cow__fault_reset(void);
void cow__fault_inject(enum cow__sys_kind kind, unsigned long nth, int err,
		       int persistent);
unsigned long cow__fault_calls(enum cow__sys_kind kind);
int cow__fault_check(enum cow__sys_kind kind);
/* The next io_uring submission takes only the first n entries ready, as
 * the kernel does when it cannot allocate a request (0: all). */
void cow__fault_uring_take(unsigned long n);
#else
static inline int cow__fault_check(enum cow__sys_kind kind)
{
	(void)kind;
	return 0;
}
#endif

/* Wrappers: 0 or a count on success, -errno on failure. */
int cow__sys_mmap(void **out, void *addr, size_t len, int prot, int flags,
		  int fd, off_t off);
int cow__sys_munmap(void *addr, size_t len);
int cow__sys_madvise(void *addr, size_t len, int advice);
struct iovec;
int cow__sys_madvise_vec(const struct iovec *iov, size_t n, int advice,
			 size_t *done);
int cow__sys_memfd(const char *name, unsigned flags);
int cow__sys_ftruncate(int fd, off_t len);
/* Allocates [off, off + len) of fd (fallocate mode 0), which reads zeros
 * and extends the file: only for growing a file (traced as its new
 * length, like ftruncate). -EOPNOTSUPP where the file system has no
 * fallocate. */
int cow__sys_fallocate(int fd, off_t off, off_t len);
ssize_t cow__sys_pread(int fd, void *buf, size_t len, off_t off);
ssize_t cow__sys_preadv(int fd, const struct iovec *iov, int cnt, off_t off);
ssize_t cow__sys_pwrite(int fd, const void *buf, size_t len, off_t off);
ssize_t cow__sys_pwritev(int fd, const struct iovec *iov, int cnt, off_t off);
int cow__sys_fsync(int fd, int data_only);
int cow__sys_ioctl(int fd, unsigned long req, void *arg);
int cow__sys_open(const char *path, int flags, unsigned mode);
int cow__sys_openat(int dirfd, const char *path, int flags, unsigned mode);
int cow__sys_fstat(int fd, struct stat *st);
int cow__sys_fstatat(int dirfd, const char *path, struct stat *st, int flags);
int cow__sys_fcntl(int fd, int cmd, long arg);
int cow__sys_fcntl_lock(int fd, int cmd, void *flock);
int cow__sys_userfaultfd(int flags);
ssize_t cow__sys_read(int fd, void *buf, size_t len);
void cow__sys_close(int fd);
void cow__sys_unlink(const char *path);
void cow__sys_unlinkat(int dirfd, const char *path);
void cow__sys_ofd_unlock(int fd);
int cow__sys_sigaction(int sig, const struct sigaction *act,
		       struct sigaction *old);
int cow__sys_getrlimit(int resource, struct rlimit *rl);
/* getpid(2), a system call each time (the SIGBUS handler, the pagemap
 * descriptor's owner). */
pid_t cow__sys_getpid(void);
/* The same pid, cached and refreshed in fork() children (pthread_atfork):
 * no system call. A child of a raw clone() or _Fork() runs no fork
 * handlers and reads its parent's pid here (see sys.c). */
pid_t cow__sys_pid(void);

/*
 * For the SIGBUS handler only: raw system calls, async-signal-safe, never
 * injected (a failure inside the handler has no caller to report to).
 */
int cow__sys_sig_fstat(int fd, struct stat *st);
int cow__sys_sig_map_zero(void *addr, size_t len);
int cow__sys_sig_unmap(void *addr, size_t len);
int cow__sys_sig_ioctl(int fd, unsigned long req, void *arg);
void cow__sys_sig_default(int sig, int resend);

int cow__sys_getrandom(void *buf, size_t len);
/* Renames within one directory (dirfd), never across. */
int cow__sys_renameat(int dirfd, const char *from, const char *to);
int cow__sys_fsync_dir(int dirfd); /* open ".", fsync, close */
off_t cow__sys_lseek(int fd, off_t off, int whence);
/* -EFBIG if a file may not reach end bytes (RLIMIT_FSIZE); pwrite, pwritev
 * and ftruncate check it themselves, callers check early to change
 * nothing, and once per batch for the io_uring writes they submit. */
int cow__sys_fsize_check(off_t end);
ssize_t cow__sys_readlink(const char *path, char *buf, size_t len);

struct io_uring;
struct io_uring_cqe;
struct io_uring_params;
int cow__sys_uring_init(struct io_uring *ring, unsigned entries,
			struct io_uring_params *p);
int cow__sys_uring_submit(struct io_uring *ring);
int cow__sys_uring_wait(struct io_uring *ring, struct io_uring_cqe **cqe);
void cow__sys_uring_exit(struct io_uring *ring);

/*
 * Tests: a hook that sees every write and sync that reached a file, after
 * it succeeded (the io_uring engine reports its completions too). kind is
 * COW__SYS_PWRITE, COW__SYS_FSYNC or COW__SYS_FTRUNCATE (len in off); and
 * every munmap after it succeeded: COW__SYS_MUNMAP, fd -1, one iovec for
 * the range (the order of close is seen through it); and every madvise
 * before it runs: COW__SYS_MADVISE, fd -1, its ranges, the advice in off
 * (a test may write there, as a writer racing the call would).
 */
#ifdef COW_FAULT_INJECT
typedef void (*cow__sys_trace_fn)(enum cow__sys_kind kind, int fd,
				  const struct iovec *iov, int cnt, off_t off);
void cow__sys_set_trace(cow__sys_trace_fn fn);
void cow__sys_trace(enum cow__sys_kind kind, int fd, const struct iovec *iov,
		    int cnt, off_t off);
#else
static inline void cow__sys_trace(enum cow__sys_kind kind, int fd,
				  const struct iovec *iov, int cnt, off_t off)
{
	(void)kind;
	(void)fd;
	(void)iov;
	(void)cnt;
	(void)off;
}
#endif

/* Error-return helpers (zstd style): keep call sites short. */
#define COW_TRY(expr)                 \
	do {                          \
		int r_ = (int)(expr); \
		if (r_ < 0)           \
			return r_;    \
	} while (0)

void *cow__malloc(size_t n);
void *cow__calloc(size_t n, size_t sz);
void *cow__realloc(void *p, size_t n);
/* malloc of n elements of sz bytes (at least one, so an empty array is not
 * NULL): NULL when out of memory or when n * sz bytes exceed PTRDIFF_MAX
 * (no object can be larger; the product may not even fit a size_t). */
void *cow__mallocarray(size_t n, size_t sz);
/* Grows array v (of *cap elements of size bytes) to hold at least need,
 * doubling from first: the new array (*cap updated), or NULL when out of
 * memory or when need elements exceed PTRDIFF_MAX bytes (v and *cap
 * untouched). */
void *cow__array_grow(void *v, size_t *cap, size_t need, size_t size,
		      size_t first);
void cow__free(void *p);

/* "/proc/self/fd/N": a path that opens the file of descriptor fd anew (a
 * description of its own) or names it for readlink. Written to buf. */
#define COW__FD_PATH_LEN 32
const char *cow__fd_path(char buf[COW__FD_PATH_LEN], int fd);

#endif
