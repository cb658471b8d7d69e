// SPDX-License-Identifier: MIT
/*
 * The guard: what keeps an arena's base honest while other programs use
 * the file — the file lock, change detection, the isolated base, the
 * SIGBUS guard, and the fork rule.
 *
 * Lock. An arena on a file holds an open-file-description lock
 * (F_OFD_SETLK) over the whole file: exclusive when writable, shared when
 * read-only. OFD locks belong to the open file description, so they
 * conflict between threads and arenas of one process as well as between
 * processes, and the kernel drops them when the last descriptor goes away
 * (process death included). Every arena opens its own description (see
 * cow_open_fd), and cow_close unlocks explicitly, because a fork child may
 * still hold a copy of the descriptor.
 *
 * Changes from outside. Pages the arena has not written show the file's
 * page cache, so someone else's pwrite shows through them. The file's
 * identity, size and mtime are recorded at open and after every change the
 * arena makes itself; calls that depend on the base compare them with the
 * file (one fstat) and return -ESTALE when they differ, or when the file
 * lost its last name (deleted, or replaced by a rename).
 *
 * Isolation. COW_ISOLATE maps a private copy instead of the file: a
 * reflink (FICLONE into an unnamed O_TMPFILE beside the file) where the
 * file system shares extents, else a memfd holding the file's bytes,
 * sealed against shrinking. Only F_SEAL_SHRINK (and F_SEAL_SEAL): a
 * shrink is what makes a mapping fault; growing is how cow_grow extends
 * the copy, and writing is how a commit makes the committed content the
 * new base. Nobody else holds the copy's descriptor.
 *
 * SIGBUS. A truncated file makes every access past its new end fault with
 * SIGBUS. While a non-isolated file arena is open the library holds a
 * SIGBUS handler. For a fault inside an arena it maps zero pages over the
 * arena's lost tail — [first page past the new end, end of the base
 * mapping) — with one MAP_FIXED, so the access completes and the arena
 * uses at most 3 mappings; the arena is then stale. A fault on a page
 * inside the file's size (one fstat tells) is no truncation but a page the
 * kernel could not read in (a hole of a full tmpfs, a read error): only
 * that page gets zeros, the private pages stay, and the arena reports -EIO
 * (see fix_unreadable). Any other fault goes to the handler
 * that was there before (its default action kills the process as it would
 * have). The handler only reads a registry of arenas that is updated with
 * atomic stores and never freed, and makes raw system calls: it is
 * async-signal-safe. (At vm.max_map_count the one mapping it needs comes
 * from unmapping the arena's unused reservation.)
 *
 * fork. The page scans (/proc/self/pagemap opened by the parent), the
 * lock's description and userfaultfd registrations belong to the opener,
 * so an arena records its opener's pid and every call but cow_close
 * returns -ECHILD elsewhere; a child's cow_close frees the child's copies
 * and leaves the lock alone. The pid compared is the one sys.c caches and
 * refreshes in fork() children (no system call per call); a child made
 * by a raw clone() or _Fork(), which runs no fork handlers, is not told
 * from its parent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "compat.h"
#include "guard.h"
#include "internal.h"

/* ---- fork ---- */

int cow__guard_owner(const struct cow_arena *a)
{
	return a->pid == cow__sys_pid() ? 0 : -ECHILD;
}

/* ---- change detection ---- */

void cow__guard_ident_from(const struct stat *st, struct cow__ident *id)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
	id->linked = st->st_nlink > 0;
}

int cow__guard_ident(int fd, struct cow__ident *id)
{
	struct stat st;

	COW_TRY(cow__sys_fstat(fd, &st));
	cow__guard_ident_from(&st, id);
	return 0;
}

static int ident_same(const struct cow__ident *was,
		      const struct cow__ident *now)
{
	return was->dev == now->dev && was->ino == now->ino &&
	       was->size == now->size &&
	       was->mtime.tv_sec == now->mtime.tv_sec &&
	       was->mtime.tv_nsec == now->mtime.tv_nsec &&
	       (!was->linked || now->linked);
}

static int check_file(struct cow_arena *a)
{
	struct cow__ident now;

	COW_TRY(cow__guard_ident(a->file_fd, &now));
	return ident_same(&a->ident, &now) ? 0 : -ESTALE;
}

int cow__guard_marked(const struct cow_arena *a)
{
	int bits = __atomic_load_n(&a->stale, __ATOMIC_ACQUIRE);

	if (bits & COW__STALE_LOST)
		return -ESTALE;
	return bits & COW__STALE_IO ? -EIO : 0;
}

static int check(struct cow_arena *a, int for_commit)
{
	COW_TRY(cow__guard_marked(a));
	if (a->kind != COW__FILE)
		return 0;
	if ((a->flags & COW_ISOLATE) && !for_commit)
		return 0; /* the base is private: outside changes are moot */
	return check_file(a);
}

int cow__guard_check(struct cow_arena *a)
{
	return check(a, 0);
}

int cow__guard_check_commit(struct cow_arena *a)
{
	return check(a, 1);
}

int cow__guard_refresh(struct cow_arena *a)
{
	if (a->kind != COW__FILE)
		return 0;
	return cow__guard_ident(a->file_fd, &a->ident);
}

/* ---- one writer per file ---- */

static int set_lock(int fd, short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET; /* l_start = l_len = 0: the whole file */
	return cow__sys_fcntl_lock(fd, F_OFD_SETLK, &fl);
}

int cow__guard_lock(int fd, int readonly)
{
	int r = set_lock(fd, readonly ? F_RDLCK : F_WRLCK);

	if (r == -EAGAIN || r == -EACCES)
		return -EBUSY;
	return r;
}

/* Explicit, because a fork child may share the open file description
 * and keep the lock alive after our close. */
void cow__guard_unlock(int fd)
{
	cow__sys_ofd_unlock(fd);
}

/* ---- isolation ---- */

/* A reflink of fd into an unnamed file in path's directory. */
static int isolate_reflink(int fd, const char *path, int *out)
{
	size_t n = strlen(path);
	char *dir = cow__malloc(n + 2);
	char *slash;
	int tmp, r;

	if (!dir)
		return -ENOMEM;
	memcpy(dir, path, n + 1);
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	tmp = cow__sys_open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	cow__free(dir);
	if (tmp < 0)
		return tmp;
	r = cow__sys_ioctl(tmp, FICLONE, (void *)(intptr_t)fd);
	if (r < 0) {
		cow__sys_close(tmp);
		return r;
	}
	*out = tmp;
	return 0;
}

#define COPY_CHUNK ((size_t)1 << 20)

/* n > 0; memcmp of the buffer with itself shifted by one runs at memcmp
 * speed, where a byte loop would not. */
static int all_zero(const char *p, size_t n)
{
	return p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

/* Copies fd's first len bytes into mfd; zero chunks stay holes. A file
 * that shrinks meanwhile leaves zeros (and a size the commit check sees). */
static int copy_into(int mfd, int fd, off_t len)
{
	char *buf = cow__malloc(COPY_CHUNK);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (off_t off = 0; off < len;) {
		size_t want = (size_t)(len - off) < COPY_CHUNK
				  ? (size_t)(len - off)
				  : COPY_CHUNK;
		ssize_t got = cow__sys_pread(fd, buf, want, off);

		if (got < 0) {
			r = (int)got;
			break;
		}
		if (got == 0)
			break;
		if (!all_zero(buf, (size_t)got)) {
			got = cow__sys_pwrite(mfd, buf, (size_t)got, off);
			if (got < 0) {
				r = (int)got;
				break;
			}
		}
		off += got;
	}
	cow__free(buf);
	return r;
}

static int isolate_memfd(int fd, off_t len, int *out)
{
	int mfd, r;

	r = cow__sys_fsize_check(len);
	if (r < 0)
		return r;
	mfd = cow__sys_memfd("cowarena-isolated",
			     MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0)
		return mfd;
	r = cow__sys_ftruncate(mfd, len);
	if (r == 0)
		r = copy_into(mfd, fd, len);
	if (r == 0) {
		r = cow__sys_fcntl(mfd, F_ADD_SEALS,
				   F_SEAL_SHRINK | F_SEAL_SEAL);
		r = r > 0 ? 0 : r;
	}
	if (r < 0) {
		cow__sys_close(mfd);
		return r;
	}
	*out = mfd;
	return 0;
}

int cow__guard_isolate(int fd, const char *path, off_t len, int *out)
{
	/* Any reflink failure (EOPNOTSUPP, EXDEV, no O_TMPFILE, ...) falls
	 * back to the copy, whose own errors are the ones reported. */
	if (path && isolate_reflink(fd, path, out) == 0)
		return 0;
	return isolate_memfd(fd, len, out);
}

/* ---- the SIGBUS guard ---- */

enum { SLOT_FREE = 0, SLOT_LIVE = 1 };
#define CHUNK_SLOTS 64

struct slot {
	int state;	 /* SLOT_*; the handler reads only live slots */
	uintptr_t start; /* the arena's base */
	size_t size;	 /* the arena's size: faults in it are ours */
	size_t mapped;	 /* bytes of the base mapped, at least size */
	size_t reserve;	 /* its reserved bytes */
	int fd;		 /* the base file, whose size bounds the lost tail */
	int *stale;	 /* the arena's stale bits, COW__STALE_* */
	int *uffd;	 /* the arena's userfaultfd, -1 when it has none */
	pid_t pid;	 /* the opener, the only process that may use it */
};

struct chunk {
	struct slot s[CHUNK_SLOTS];
	struct chunk *next; /* published atomically, never freed */
};

static struct chunk first_chunk;
/* Serialises watch/unwatch and handler installation; the handler never
 * takes it. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long watchers;
static struct sigaction prev_act; /* written before the handler goes in */
static size_t guard_pgsz;

static struct slot *slot_at(int idx)
{
	struct chunk *c = &first_chunk;

	for (; idx >= CHUNK_SLOTS; idx -= CHUNK_SLOTS)
		c = __atomic_load_n(&c->next, __ATOMIC_ACQUIRE);
	return &c->s[idx];
}

/* Gives up the unused reservation past the base mapping, [end, rend), to
 * make room for a mapping: it is no longer the arena's (close skips it). */
static int unreserve(struct slot *s, uintptr_t start, uintptr_t end,
		     uintptr_t rend)
{
	if (rend <= end || cow__sys_sig_unmap((void *)end, rend - end) < 0)
		return 0;
	__atomic_store_n(&s->reserve, end - start, __ATOMIC_RELAXED);
	__atomic_fetch_or(s->stale, COW__STALE_UNRESERVED, __ATOMIC_RELEASE);
	return 1;
}

/*
 * The file was truncated. Replaces the lost tail of the arena in slot s:
 * from lo (the faulting page), or the first page past the file's new end
 * if that is lower, to the end of the base mapping; everything there
 * faults or soon would, and the kernel dropped the private pages there at
 * the truncation. The end of the mapping, not the arena's size: after a
 * rollback to a smaller size the base stays mapped past it, and zeros up
 * to the size only would leave a third piece of the base mapping behind
 * them.
 *
 * Zeros over part of the base split its mapping: one mapping more. A
 * process at vm.max_map_count has none left; then the unused reservation
 * past the mapping's end (a whole mapping) is given up to make room.
 */
static int fix_truncated(struct slot *s, uintptr_t start, uintptr_t end,
			 uintptr_t rend, uintptr_t lo, const struct stat *st)
{
	uintptr_t mask = ~(uintptr_t)(guard_pgsz - 1);
	int r;

	if (st) {
		uintptr_t eof =
		    ((uintptr_t)st->st_size + guard_pgsz - 1) & mask;

		if (eof < end - start && start + eof < lo)
			lo = start + eof;
	}
	r = cow__sys_sig_map_zero((void *)lo, end - lo);
	if (r == -ENOMEM && unreserve(s, start, end, rend))
		r = cow__sys_sig_map_zero((void *)lo, end - lo);
	if (r < 0)
		return 0;
	__atomic_fetch_or(s->stale, COW__STALE_LOST, __ATOMIC_RELEASE);
	return 1;
}

/*
 * UFFDIO_ZEROPAGE fills only an empty page-table entry. An armed page
 * that was dropped keeps a write-protect marker there (see
 * cow__track_drop): unprotecting the page clears it, then the zero page
 * goes in. -EEXIST after that: another thread filled the page meanwhile,
 * and the access now completes.
 */
static int zero_by_uffd(int uffd, uintptr_t lo)
{
	struct uffdio_range range = {.start = lo, .len = guard_pgsz};
	struct uffdio_zeropage z = {.range = range};
	struct uffdio_writeprotect wp = {.range = range, .mode = 0};
	int r;

	r = cow__sys_sig_ioctl(uffd, UFFDIO_ZEROPAGE, &z);
	if (r != -EEXIST)
		return r;
	r = cow__sys_sig_ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
	if (r < 0)
		return r;
	z.zeropage = 0;
	r = cow__sys_sig_ioctl(uffd, UFFDIO_ZEROPAGE, &z);
	return r == -EEXIST ? 0 : r;
}

/*
 * The page at lo lies inside the file, which was not truncated: the
 * kernel could not read it in (a hole of a full tmpfs, ENOSPC; a read
 * error). The private pages around it are intact and stay: only this page
 * gets zeros. Through the arena's userfaultfd when its tracking has one
 * (registered over the whole base mapping): UFFDIO_ZEROPAGE fills a page
 * of a private mapping without the file and without a new mapping. Only
 * in the opener: a fork child's copy of the descriptor still acts on the
 * opener's memory. Else one zero page is mapped over the page, which
 * splits the base mapping in three; the first time the unused
 * reservation is given up, so the arena stays within 3 mappings; each
 * later such page costs up to two mappings more. (Two threads faulting
 * on the same page at once may both map it; a store made in between by
 * the first is lost.)
 */
static int fix_unreadable(struct slot *s, uintptr_t start, uintptr_t end,
			  uintptr_t rend, uintptr_t lo)
{
	int uffd = __atomic_load_n(s->uffd, __ATOMIC_ACQUIRE);
	int r = -1;

	if (uffd >= 0 &&
	    __atomic_load_n(&s->pid, __ATOMIC_RELAXED) == cow__sys_getpid())
		r = zero_by_uffd(uffd, lo);
	if (r < 0) {
		(void)unreserve(s, start, end, rend);
		r = cow__sys_sig_map_zero((void *)lo, guard_pgsz);
	}
	if (r < 0)
		return 0;
	__atomic_fetch_or(s->stale, COW__STALE_IO, __ATOMIC_RELEASE);
	return 1;
}

/*
 * Completes the fault at addr in the arena of slot s. A page past the
 * file's end means a truncation; a page inside it, a page the kernel
 * could not read in: one fstat tells them apart (the file's size cannot
 * be known otherwise; if even fstat fails, a truncation is assumed).
 */
static int fix_slot(struct slot *s, uintptr_t start, uintptr_t addr)
{
	uintptr_t lo = addr & ~(uintptr_t)(guard_pgsz - 1);
	uintptr_t end = start + __atomic_load_n(&s->mapped, __ATOMIC_RELAXED);
	uintptr_t rend = start + __atomic_load_n(&s->reserve, __ATOMIC_RELAXED);
	int fd = __atomic_load_n(&s->fd, __ATOMIC_RELAXED);
	struct stat st;

	if (cow__sys_sig_fstat(fd, &st) < 0)
		return fix_truncated(s, start, end, rend, lo, NULL);
	if (lo - start < (uintptr_t)st.st_size)
		return fix_unreadable(s, start, end, rend, lo);
	return fix_truncated(s, start, end, rend, lo, &st);
}

/* Fixes the fault at addr if an arena holds it; 0 when none does or the
 * fix failed. */
static int fix_fault(uintptr_t addr)
{
	for (struct chunk *c = &first_chunk; c;
	     c = __atomic_load_n(&c->next, __ATOMIC_ACQUIRE)) {
		for (int i = 0; i < CHUNK_SLOTS; i++) {
			struct slot *s = &c->s[i];
			uintptr_t start, end;

			if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) !=
			    SLOT_LIVE)
				continue;
			start = __atomic_load_n(&s->start, __ATOMIC_RELAXED);
			end =
			    start + __atomic_load_n(&s->size, __ATOMIC_RELAXED);
			if (addr >= start && addr < end)
				return fix_slot(s, start, addr);
		}
	}
	return 0;
}

/* Hands the signal to the handler that was there before ours. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	const struct sigaction *p = &prev_act;
	int sent = si->si_code <= 0; /* kill(), raise(), sigqueue() */

	if (p->sa_handler == SIG_IGN && sent)
		return;
	if (p->sa_handler == SIG_DFL || p->sa_handler == SIG_IGN) {
		/* A fault cannot be ignored: the kernel would kill. */
		cow__sys_sig_default(sig, sent);
		return;
	}
	if (p->sa_flags & SA_SIGINFO)
		p->sa_sigaction(sig, si, uc);
	else
		p->sa_handler(sig);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	/* Truncations and pages that cannot be read in fault with
	 * BUS_ADRERR; a memory error (BUS_MCEERR_*) is not ours to fix. */
	if (si->si_code == BUS_ADRERR && fix_fault((uintptr_t)si->si_addr)) {
		errno = saved;
		return;
	}
	chain(sig, si, uc);
	errno = saved;
}

static int is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_sigbus;
}

/* The previous action is saved before ours goes in, so a fault right after
 * chains correctly. Ours may still be in place if an earlier removal
 * failed: then the saved one stays (chaining to ourselves would loop). */
static int install(void)
{
	struct sigaction act, old;

	COW_TRY(cow__sys_sigaction(SIGBUS, NULL, &old));
	if (is_ours(&old))
		return 0;
	prev_act = old;
	memset(&act, 0, sizeof(act));
	act.sa_sigaction = on_sigbus;
	act.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&act.sa_mask);
	guard_pgsz = (size_t)sysconf(_SC_PAGESIZE);
	return cow__sys_sigaction(SIGBUS, &act, NULL);
}

/* Restores the previous handler, unless someone replaced ours meanwhile
 * (they may chain to it, and it stays correct with no arena watched). */
static void uninstall(void)
{
	struct sigaction cur;

	if (cow__sys_sigaction(SIGBUS, NULL, &cur) < 0)
		return;
	if (is_ours(&cur))
		(void)cow__sys_sigaction(SIGBUS, &prev_act, NULL);
}

/* A free slot's index, growing the registry by a chunk when full. */
static int find_slot(void)
{
	struct chunk *c = &first_chunk;
	int base = 0;

	for (;;) {
		struct chunk *next;

		for (int i = 0; i < CHUNK_SLOTS; i++)
			if (__atomic_load_n(&c->s[i].state, __ATOMIC_RELAXED) ==
			    SLOT_FREE)
				return base + i;
		next = __atomic_load_n(&c->next, __ATOMIC_ACQUIRE);
		if (!next) {
			next = cow__calloc(1, sizeof(*next));
			if (!next)
				return -ENOMEM;
			__atomic_store_n(&c->next, next, __ATOMIC_RELEASE);
		}
		c = next;
		base += CHUNK_SLOTS;
	}
}

/* Only a file that others can shrink needs watching: anonymous arenas
 * and isolated copies are ours alone. */
static int needs_watch(const struct cow_arena *a)
{
	return a->kind == COW__FILE && !(a->flags & COW_ISOLATE);
}

void cow__guard_init(struct cow_arena *a)
{
	a->guard_slot = -1;
}

int cow__guard_watch(struct cow_arena *a)
{
	struct slot *s;
	int idx, r = 0;

	a->guard_slot = -1;
	if (!needs_watch(a))
		return 0;
	pthread_mutex_lock(&reg_lock);
	idx = find_slot();
	if (idx < 0) {
		r = idx;
		goto out;
	}
	if (watchers == 0) {
		r = install();
		if (r < 0)
			goto out;
	}
	watchers++;
	s = slot_at(idx);
	__atomic_store_n(&s->start, (uintptr_t)a->base, __ATOMIC_RELAXED);
	__atomic_store_n(&s->size, a->size, __ATOMIC_RELAXED);
	__atomic_store_n(&s->mapped, a->mapped, __ATOMIC_RELAXED);
	__atomic_store_n(&s->reserve, a->reserve, __ATOMIC_RELAXED);
	__atomic_store_n(&s->fd, a->fd, __ATOMIC_RELAXED);
	__atomic_store_n(&s->stale, &a->stale, __ATOMIC_RELAXED);
	__atomic_store_n(&s->uffd, &a->track.uffd, __ATOMIC_RELAXED);
	__atomic_store_n(&s->pid, a->pid, __ATOMIC_RELAXED);
	__atomic_store_n(&s->state, SLOT_LIVE, __ATOMIC_RELEASE);
	a->guard_slot = idx;
out:
	pthread_mutex_unlock(&reg_lock);
	return r;
}

/* mapped first: a fault seen inside the new size finds the mapping that
 * covers it. */
void cow__guard_resize(struct cow_arena *a)
{
	struct slot *s;

	if (a->guard_slot < 0)
		return;
	s = slot_at(a->guard_slot);
	__atomic_store_n(&s->mapped, a->mapped, __ATOMIC_RELEASE);
	__atomic_store_n(&s->size, a->size, __ATOMIC_RELEASE);
}

#ifdef COW_DEBUG
int cow__guard_watched(const struct cow_arena *a, size_t *size, size_t *mapped)
{
	struct slot *s;

	if (a->guard_slot < 0)
		return -ENOENT;
	s = slot_at(a->guard_slot);
	*size = __atomic_load_n(&s->size, __ATOMIC_ACQUIRE);
	*mapped = __atomic_load_n(&s->mapped, __ATOMIC_ACQUIRE);
	return 0;
}
#endif

void cow__guard_unwatch(struct cow_arena *a)
{
	if (a->guard_slot < 0)
		return;
	pthread_mutex_lock(&reg_lock);
	__atomic_store_n(&slot_at(a->guard_slot)->state, SLOT_FREE,
			 __ATOMIC_RELEASE);
	a->guard_slot = -1;
	if (--watchers == 0)
		uninstall();
	pthread_mutex_unlock(&reg_lock);
}
