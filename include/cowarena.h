/* SPDX-License-Identifier: MIT */
/**
 * @file cowarena.h
 * @brief cowarena: copy-on-write memory you can snapshot, roll back, discard
 * and commit.
 *
 * An arena is a fixed, address-stable window of memory whose content is a
 * base image (a file, or zeros) overlaid by the program's private changes.
 * The program reads and writes it with plain loads and stores. The library
 * tells which pages changed and discards them; it never moves the arena and
 * never splits its mappings: an arena costs at most 3 lines of
 * /proc/self/maps for its whole life.
 *
 * Conventions (as liburing): functions return 0 (or a count) on success and
 * a negative errno on failure. They never print, never exit and never raise
 * a signal. A call that fails leaves the arena exactly as it was before the
 * call. Sizes are in bytes and must be multiples of the page size unless
 * stated; addresses passed in must lie inside
 * [cow_base(a), cow_base(a) + cow_size(a)).
 *
 * Thread safety: different arenas may be used from different threads at
 * once. Calls on one arena must not run concurrently with each other. Other
 * threads may keep reading and writing the arena's memory, except during
 * cow_discard(), cow_revert(), cow_grow(), cow_snapshot(), cow_rollback()
 * and cow_commit(), which need the arena's writers paused (the caller's job):
 * a write racing a snapshot may be missing from it and counted as older
 * than it, and one racing a rollback may survive it. Readers may go on.
 * cow_snap_release() counts as a call on the snapshot's arena.
 *
 * One writer per file: an arena on a file holds an open-file-description
 * lock (F_OFD_SETLK) on the whole file for as long as it is open,
 * exclusive for a writable arena and shared for a COW_READONLY one. So a
 * file has either one writable arena or any number of read-only ones, in
 * this process or any other: a writable open beside any other arena, or a
 * read-only open beside a writable one, returns -EBUSY. (A read-only
 * arena shares the base with the writer's commits, so it may not coexist
 * with one.) cow_close() releases the lock, and so does the death of the
 * process. Programs that write the file without cowarena are not stopped
 * by the lock; their changes are detected (below).
 *
 * Changes from outside: pages an arena has not written show the file's
 * current content, so another program's write to the file shows through
 * them, and a truncation makes them fault. At open and after each change
 * the arena makes to the file itself (cow_grow(), a commit) the library
 * records the file's identity, size and modification time; calls that
 * depend on the base (cow_grow(), cow_discard(), cow_revert(), rollback
 * and commit) first compare them with the file and return -ESTALE when it
 * changed, was truncated, deleted or replaced (renamed over). The state
 * is not refreshed otherwise: a stale arena stays stale (close it and open
 * the file again). Detection relies on the kernel updating the mtime on
 * every write (multigrain timestamps, Linux 6.13, on ext4, xfs, btrfs and
 * tmpfs; older kernels may miss a same-size write within one clock tick),
 * and a writer that restores the old size and mtime goes unseen. With
 * COW_ISOLATE the base is a private copy: outside changes are invisible,
 * and only a commit returns -ESTALE after one.
 *
 * Signals: the library never lets SIGBUS kill the process for a file
 * truncated under an arena. While a file arena without COW_ISOLATE is
 * open, the library holds a SIGBUS handler (installed by the first such
 * arena, the previous one restored when the last closes, unless the
 * program replaced it meanwhile). A fault inside an arena is completed:
 * the pages from the file's new end (or the faulting page, if lower) to
 * the end of the arena are replaced by zero pages (one mapping, within the
 * 3-mapping budget), the private changes made there are lost (the
 * kernel drops them at the truncation), and the arena is stale: every
 * later call but cow_dirty(), cow_stats() and cow_close() returns -ESTALE.
 *
 * A fault on a page inside the file's size is no truncation: the kernel
 * could not read the page in (the first read of a hole of a full tmpfs
 * fails with ENOSPC; a disk's read error). Only that page is completed,
 * with zeros; the file is untouched and every private change the arena
 * holds stays. The arena is then failed: grow, discard, revert, snapshot,
 * rollback and commit return -EIO and change nothing; cow_dirty(),
 * cow_stats(), plain reads and writes and cow_close() still work, so the
 * program can save its changes elsewhere. Cost: with the userfaultfd
 * tracking on (see cow_snapshot(); where the kernel offers it and the
 * base is a tmpfs or memfd file) the zeros go in through it
 * (UFFDIO_ZEROPAGE): no mapping more, however many pages fail. Otherwise
 * a zero page is mapped over the page, which splits the base mapping: the
 * first time the arena's unused reservation is given up for it, so the
 * arena stays within 3 mappings; each later failed page that is not next
 * to an earlier one or at an end of the base costs two mappings more (one
 * when it is), and in a process at vm.max_map_count such a fault is not
 * completed and goes to the previous handler (by default it kills).
 *
 * Any other SIGBUS goes to the handler that was installed before (its
 * default action still kills the process). A program that installs its
 * own SIGBUS handler while such arenas are open must chain to the one it
 * replaces. The repair needs one mapping more;
 * in a process already at vm.max_map_count it gives up the arena's unused
 * reservation (cow_grow() is refused on a stale arena anyway) to get it.
 * cow_grow(), cow_commit() and the recovery in cow_open() check
 * RLIMIT_FSIZE themselves before every write that could pass it, so they
 * return -EFBIG instead of raising SIGXFSZ.
 *
 * fork(): a child inherits copies of the parent's arenas' memory and may
 * read and write them (its changes are its own, as with any private
 * mapping), but not use the handles: the page scans, the lock and the
 * log belong to the process that opened the arena. In a child every call
 * on an inherited arena returns -ECHILD, except the accessors cow_base(),
 * cow_size() and cow_reserved(), and cow_close(), which releases the
 * child's copies (its mapping, descriptors and memory) and never the
 * parent's lock or files. The parent's cow_close() releases the lock
 * even while a child still holds its copy of the descriptor. A child is
 * told from its parent by the fork handlers (pthread_atfork) that fork()
 * runs, not by a system call in every call: a child made without them (a
 * raw clone() or clone3() system call, glibc's _Fork()) is taken for its
 * parent and must not use the inherited arenas at all.
 */
#ifndef COWARENA_H
#define COWARENA_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define COWARENA_VERSION_MAJOR 0
#define COWARENA_VERSION_MINOR 1
#define COWARENA_VERSION_PATCH 0

/** @brief The library's version as text, "MAJOR.MINOR.PATCH" from the
 * COWARENA_VERSION_* macros above (e.g. "0.1.0"). Thread-safe. */
const char *cow_version(void);

/** An open arena (opaque). */
typedef struct cow_arena cow_arena;
/** A snapshot of an arena (opaque). */
typedef struct cow_snap cow_snap;

/** @defgroup flags cow_options.flags
 * @{ */
/** Create the file if it is missing, with size opt.size. An existing file is
 * opened as it is (opt.size is then ignored). Not with COW_READONLY. */
#define COW_CREATE 0x01u
/** Open the base file read-only. The arena's memory stays writable (the
 * changes are private); only the file is never written. */
#define COW_READONLY 0x02u
/** Map a private, immutable copy of the file instead of the file: no
 * later change to the file, nor its truncation, can be seen through the
 * arena or make it fault. The copy is a reflink (FICLONE) where the file
 * system supports it (btrfs, xfs: no data copied), else the file's bytes
 * copied into a memfd sealed against shrinking (O(file size) time and
 * memory, zero blocks excepted). The file itself stays open and locked,
 * and commits are written to it; cow_grow() grows the copy only (a commit
 * extends the file). Not for anonymous arenas (-EINVAL). */
#define COW_ISOLATE 0x04u
/** Commits are atomic but not flushed to stable storage: no fdatasync of
 * the log or the base. A commit survives a crash of the process (the
 * kernel keeps the data) but not necessarily a crash of the system or a
 * power loss, which may lose it or, as with any unsynced write, leave
 * the file torn. As without it, cow_close() removes the log only when
 * every commit it holds is written into the file: after a failed write
 * the log stays, and the next open replays it. */
#define COW_NOSYNC 0x08u
/** No background thread: background I/O (the in-place writes of
 * asynchronous commits, the base's fdatasync, the log's reset) advances
 * only inside cow_* calls on arenas of the process and in cow_sync(). */
#define COW_NOTHREAD 0x10u
/** opt.addr is required, not a hint: the open fails with -EEXIST if any
 * part of [addr, addr + reserve) is already mapped. */
#define COW_FIXED_ADDR 0x20u
/** @} */

/** @defgroup errors Library error codes
 * Negative, below the errno range; cow_strerror() gives their text.
 * @{ */
/** The write-ahead log beside the file is damaged in its middle (a record
 * that was once durable no longer checks out) or its header is invalid:
 * replaying only part of it would mix commits, so nothing is replayed.
 * The file itself is untouched. From cow_snap_load(): the snapshot file
 * is not one, or is damaged or truncated. */
#define COW_ECORRUPT (-4097)
/** The log beside the file holds transactions but belongs to another file
 * (its device and inode differ: the file was replaced or copied without
 * first being recovered) or to another page size. From cow_snap_load():
 * the snapshot file was saved against another base or page size. */
#define COW_EFOREIGN (-4098)
/** The log (or the snapshot file) was written by a newer, unknown format
 * version. (A log of format 1, from before the log was a ring, is still
 * replayed.) */
#define COW_EVERSION (-4099)
/** A read-only open found committed transactions in the log that are not
 * yet in the file: open it writable once (or run `cowarena recover`). */
#define COW_ERECOVER (-4100)
/** The log's name beside the file (FILE.cowlog, or FILE.cowlog.tmp while
 * a commit creates the log) is taken by something that is not a regular
 * file: a directory, FIFO, socket, device or symbolic link. It is never
 * read, waited on, followed or replaced; remove it (after checking what
 * it is) and retry. */
#define COW_ELOGTYPE (-4101)
/** @} */

/** Which write tracking an arena uses (cow_stats.tracking). */
#define COW_TRACK_NONE 0u    /**< no snapshot taken yet: nothing to track */
#define COW_TRACK_UFFD_WP 1u /**< userfaultfd asynchronous write-protect */
#define COW_TRACK_COMPARE 2u /**< fallback: compare pages with saved copies */

/** The default address-space reservation when cow_options.reserve is 0:
 * the larger of this and twice the initial size. Reserved address space
 * costs no memory (it is PROT_NONE and MAP_NORESERVE). */
#define COW_DEFAULT_RESERVE ((size_t)1 << 30)

/** Options for the cow_open* functions. A zero-initialised struct (or a NULL
 * pointer) gives the defaults. */
struct cow_options {
	/** Initial size in bytes, a multiple of the page size. Required for
	 * anonymous arenas (or given as cow_open_anon's size) and for files
	 * created with COW_CREATE. With an existing file: 0 means the file's
	 * size rounded up to a page; a smaller value maps only the file's
	 * head; a larger one grows the arena as cow_grow() would. */
	size_t size;
	/** Address space to reserve, a multiple of the page size: the most
	 * the arena can ever grow to. 0 = COW_DEFAULT_RESERVE or twice the
	 * size, whichever is larger. Must be at least the size. */
	size_t reserve;
	/** Where to place the arena (page aligned). NULL = anywhere. Without
	 * COW_FIXED_ADDR it is a hint: used when the range is free, ignored
	 * (the arena goes anywhere) when it is taken or lies outside user
	 * space. */
	void *addr;
	/** COW_* flags. Unknown bits give -EINVAL. */
	unsigned flags;
	/** Permissions for a file made by COW_CREATE; 0 = 0644. */
	unsigned mode;
	/** Must be zero. */
	unsigned reserved[8];
};

/** @brief Open a file as an arena.
 *
 * The arena's content is the file's (its base) overlaid by private changes;
 * writes to the arena never reach the file unless committed. The file must
 * be a regular file.
 *
 * Recovery: committed transactions are kept in a write-ahead log beside
 * the file, "<path>.cowlog", until they are in the file and the file is
 * durable. If a crash left such a log, the open replays its complete
 * transactions in order into the file (stopping at the first torn or
 * zeroed record: the tail of a commit that had not returned), makes the
 * file durable (fdatasync, also with COW_NOSYNC: the transactions were
 * committed by an earlier open) and removes the log before it returns,
 * so that no later open replays it again over changes made to the file
 * in between, and read-only opens work again. A writable open also
 * removes a log that holds no transactions. A clean cow_close() removes
 * the log its commits wrote. A log that grew past 1 MiB is not unlinked
 * but renamed, its header zeroed, to "<path>.cowlog.tmp" (cut to 32 MiB
 * of ring): the next log is made from it, so that its commits write into
 * blocks already allocated and written (on ext4 an fdatasync after an
 * append into new blocks also writes their extents: a commit of 256
 * pages cost 1.5x). That file holds nothing needed: remove it with the
 * file, while no arena has the file open. The
 * log's header records the file's device and inode: move a file together
 * with a log that holds transactions only after recovering it. A file
 * created by COW_CREATE starts without a log (one left beside a file of
 * that name that no longer exists is removed). The log's directory is the
 * file's, found once by this call (for a relative path, from the working
 * directory of now): a later chdir() never moves the log. The log's names
 * (FILE.cowlog, FILE.cowlog.tmp) are never followed as symlinks; a log
 * name that is not a regular file is refused, never read or waited on.
 *
 * @param[out] out  receives the arena; untouched on failure.
 * @param[in] path  the file.
 * @param[in] opt   options, or NULL for the defaults.
 * @return 0, or a negative errno:
 *  - -EINVAL: out or path NULL; unknown flags or non-zero reserved[];
 *    size or reserve not a page multiple; reserve smaller than the size;
 *    addr not page aligned; COW_FIXED_ADDR without addr; COW_CREATE with
 *    COW_READONLY; COW_CREATE of a missing file with size 0; an empty
 *    file with size 0; a file that is not a regular file.
 *  - -EISDIR: path is a directory.
 *  - -ENOENT: the file does not exist and COW_CREATE was not given.
 *  - -EACCES, -EROFS, -EPERM: the file cannot be opened as asked.
 *  - -EEXIST: COW_FIXED_ADDR and the range at addr is taken.
 *  - -ENOMEM: no memory or address space for the reservation (also
 *    COW_FIXED_ADDR with a range outside user space).
 *  - -EMFILE, -ENFILE: out of file descriptors (an arena holds one; a
 *    writable one three: the file twice and its directory).
 *  - -EBUSY: another arena, in this process or another, holds the file
 *    and one of the two is writable (see "One writer per file" above).
 *  - -ENOLCK: the file system does not support the lock (some network
 *    file systems).
 *  - -EFBIG: opt.size (or the copy of COW_ISOLATE) exceeds RLIMIT_FSIZE
 *    or the file system's limit; or replaying the log would write at or
 *    past RLIMIT_FSIZE (the log is kept; no SIGXFSZ is raised).
 *  - -ENOSPC: growing the file to opt.size failed.
 *  - COW_ECORRUPT, COW_EFOREIGN, COW_EVERSION: the log beside the file
 *    cannot be replayed (see the codes); nothing was changed.
 *  - COW_ERECOVER: COW_READONLY and the log holds transactions.
 *  - COW_ELOGTYPE: FILE.cowlog is not a regular file (a directory, FIFO,
 *    socket, device or symlink); nothing was changed.
 *  - -EIO and other errnos of pread(2), pwrite(2), fdatasync(2) while
 *    replaying the log or invalidating it after the replay (the log is
 *    kept: the next open retries).
 *  - any other errno from open(2), fstat(2), mmap(2), and for COW_ISOLATE
 *    from memfd_create(2), pread(2), pwrite(2).
 * A file created by this call is removed again when the call fails.
 */
int cow_open(cow_arena **out, const char *path, const struct cow_options *opt);

/** @brief Open an already open file as an arena.
 *
 * As cow_open(), on a descriptor. The library opens the file again
 * through /proc/self/fd (a new open file description, so that the arena's
 * lock is its own, not shared with the caller's descriptor or another
 * arena's): the caller may close fd at once. memfds work. COW_CREATE is
 * ignored. COW_ISOLATE copies into a memfd (no directory for a reflink).
 * The log's place is found from the descriptor's path
 * (/proc/self/fd). A file with no name (a memfd, or a file already
 * unlinked) has nothing durable: its commits write the pages straight
 * into it, atomically for the arena but not across crashes, as for an
 * anonymous arena.
 *
 * @return 0, or a negative errno as cow_open(), and:
 *  - -EBADF: fd is not an open descriptor, or it is open read-only and
 *    COW_READONLY was not given.
 *  - -ENOENT: /proc is not mounted.
 */
int cow_open_fd(cow_arena **out, int fd, const struct cow_options *opt);

/** @brief Open an anonymous arena: its base is zeros.
 *
 * @param[out] out  receives the arena.
 * @param[in] size  the initial size, a non-zero page multiple (opt->size,
 *                  if non-zero, must be equal to it).
 * @param[in] opt   options or NULL; COW_CREATE, COW_READONLY and
 *                  COW_ISOLATE are meaningless here and give -EINVAL.
 * @return 0, or a negative errno:
 *  - -EINVAL: bad arguments, as for cow_open().
 *  - -EEXIST: COW_FIXED_ADDR and the range is taken.
 *  - -ENOMEM, -EMFILE, -ENFILE: out of memory, address space or fds.
 *  - -EFBIG: size exceeds RLIMIT_FSIZE (the base is a memfd).
 */
int cow_open_anon(cow_arena **out, size_t size, const struct cow_options *opt);

/** @brief Close an arena: discards uncommitted changes and releases
 * everything (one munmap of the whole reservation, which cannot fail for
 * lack of mappings), including the file's lock and the arena's snapshots
 * (their handles become invalid). cow_close(NULL) does nothing. In a fork
 * child it releases the child's copies only (see fork() above). Works on a
 * stale arena.
 *
 * Waits for the arena's background I/O: asynchronous commits are written
 * and synced, the base is synced and the log removed (a log that grew
 * past 1 MiB is kept, its header zeroed, as "<path>.cowlog.tmp" for the
 * next open's log: see cow_open()). If background I/O
 * failed, the log is kept (the next open recovers from it); the failure
 * was, or would have been, reported by cow_sync() or cow_commit(). The
 * last arena to close stops the process's I/O thread and ring.
 *
 * @return 0.
 */
int cow_close(cow_arena *a);

/** @brief The arena's first byte. Never changes while the arena is open.
 * Thread-safe. */
void *cow_base(const cow_arena *a);

/** @brief The arena's size in bytes (a page multiple). */
size_t cow_size(const cow_arena *a);

/** @brief The address space reserved: the most cow_grow() can reach. */
size_t cow_reserved(const cow_arena *a);

/** @brief Grow the arena in place; cow_base() does not change.
 *
 * The new pages read as zeros. For a file arena the file is extended with
 * zeros to new_size at once (ftruncate), because a private mapping past
 * the end of its file would fault; the bytes already in the file are not
 * changed. An anonymous arena just gets more zero pages. After a
 * cow_rollback() to a smaller size the pages past it read the base again
 * (for a file: the file's bytes there). Snapshots stay valid.
 *
 * Once the userfaultfd tracking is on (see cow_snapshot()), the new pages
 * are registered with it; should that fail, the arena switches to
 * COW_TRACK_COMPARE (same results, slower snapshots and scans) rather than
 * fail the grow.
 *
 * @param[in] a         the arena.
 * @param[in] new_size  the new size, a page multiple. Equal to the current
 *                      size: nothing to do.
 * @return 0, or a negative errno; on failure the old size stays usable:
 *  - -EINVAL: a NULL, new_size not a page multiple or smaller than the
 *    current size (arenas do not shrink).
 *  - -ENOSPC: new_size exceeds cow_reserved().
 *  - -EROFS: a file arena opened with COW_READONLY (its file cannot be
 *    extended).
 *  - -ESTALE: the file changed behind the arena's back (see "Changes
 *    from outside"); nothing done.
 *  - -EIO (or the errno of the failure): writing an earlier commit's
 *    pages into the file failed after its durable point (see
 *    cow_commit()): returned until the file is reopened; a grow
 *    first waits for those writes.
 *  - -EIO: a page inside the file could not be read in (see "Signals"
 *    above: a hole of a full tmpfs, a read error); nothing done, the
 *    private changes stay readable. Returned by every later call of this
 *    kind: close the arena.
 *  - -ECHILD: called in a fork child (see fork() above).
 *  - -EFBIG: new_size exceeds RLIMIT_FSIZE (checked first: no SIGXFSZ is
 *    raised) or the file system's limit.
 *  - -EIO, -ENOMEM and other errnos from ftruncate(2) and mmap(2).
 * With COW_ISOLATE only the private copy grows; the file keeps its size
 * until a commit.
 */
int cow_grow(cow_arena *a, size_t new_size);

/** @brief Drop every private change: the whole arena reads the base again.
 *
 * One MADV_DONTNEED over the span from the first dirty page to the last,
 * so the call either drops every change or none. Its cost follows the page
 * tables present in that span, not the arena's size. Snapshots stay valid.
 * After a commit the base is the committed content; if an asynchronous commit
 * is still being written, this first waits until its pages are in the file's
 * page cache.
 *
 * @return 0, or a negative errno:
 *  - -EINVAL: a is NULL.
 *  - -ESTALE: the file changed behind the arena's back (without
 *    COW_ISOLATE; see "Changes from outside"): the base it would return
 *    to is no longer the one the arena had. Nothing done.
 *  - -EIO: a page inside the file could not be read in (see "Signals"
 *    above: a hole of a full tmpfs, a read error); nothing done, the
 *    private changes stay readable. Returned by every later call of this
 *    kind: close the arena.
 *  - -ECHILD: called in a fork child.
 *  - -EIO (or the errno of the failed write): writing an earlier commit
 *    into the file failed, so the file's pages are not the committed
 *    content; the changes are kept. Reopen the file to recover.
 *  - -ENOMEM: no memory to scan for dirty pages.
 *  - other errnos from madvise(2) or the page scan, and, once the
 *    userfaultfd tracking is on (see cow_snapshot()), from its
 *    UFFDIO_WRITEPROTECT.
 */
int cow_discard(cow_arena *a);

/** @brief Revert one range to the base.
 *
 * @param[in] a     the arena.
 * @param[in] addr  the range's start, page aligned, inside the arena.
 * @param[in] len   its length, a non-zero page multiple; addr + len must
 *                  not pass the arena's end.
 * As cow_discard(), waits for asynchronous commits to reach the file's
 * page cache first.
 *
 * @return 0, or a negative errno:
 *  - -EINVAL: a or addr NULL, unaligned, zero length or out of range.
 *  - -ESTALE: the file changed behind the arena's back (as cow_discard()).
 *  - -EIO: a page inside the file could not be read in (see "Signals"
 *    above: a hole of a full tmpfs, a read error); nothing done, the
 *    private changes stay readable. Returned by every later call of this
 *    kind: close the arena.
 *  - -ECHILD: called in a fork child.
 *  - -EIO (or the errno of the failed write): as for cow_discard().
 *  - other errnos from madvise(2), and, once the userfaultfd tracking is
 *    on (see cow_snapshot()), from its UFFDIO_WRITEPROTECT.
 * Snapshots stay valid.
 */
int cow_revert(cow_arena *a, void *addr, size_t len);

/** A run of pages, in bytes from cow_base(). */
struct cow_range {
	size_t offset, length;
};

/** @brief List the page runs that differ from the base.
 *
 * A page is dirty when it differs from the base: the arena holds a
 * private copy of it, other than a copy that an asynchronous commit
 * already in the file made equal to the base (see cow_commit()). Runs
 * come in ascending order, adjacent dirty pages merged into one run.
 *
 * @param[in] a     the arena.
 * @param[out] out  room for max runs, or NULL when max is 0.
 * @param[in] max   how many runs fit in out.
 * @return the number of runs there are (which may exceed max: call again
 *         with more room; only the first max are stored), or a negative
 *         errno:
 *  - -EINVAL: a NULL, or out NULL with max non-zero.
 *  - -ECHILD: called in a fork child (the page scan reads the opener's
 *    page tables).
 *  - -ENOMEM: no memory for the scan.
 * Works on a stale arena (after a truncation fault, the zero pages that
 * replaced the lost tail count as dirty once touched).
 *  - other errnos from the PAGEMAP_SCAN ioctl or /proc/self/pagemap.
 */
ssize_t cow_dirty(cow_arena *a, struct cow_range *out, size_t max);

/** @brief Take a snapshot of the arena's content and size.
 *
 * The snapshot costs memory only for the pages written since the previous
 * snapshot or rollback: it shares the copies of all other pages with the
 * snapshots before it. Its cost follows those pages, never the arena's
 * size. Snapshots form a tree: cow_rollback() may return to any live one,
 * in any order, any number of times, and new snapshots taken after a
 * rollback start a new branch. A snapshot stays valid across cow_discard(),
 * cow_revert(), cow_grow() and other rollbacks, until cow_snap_release() or
 * cow_close().
 *
 * The first snapshot of an arena starts its written-page tracking:
 * userfaultfd asynchronous write-protect where the kernel and the system
 * allow it (Linux 6.7 and later), else comparing private pages with their
 * saved copies (cow_stats.tracking tells which). With userfaultfd the
 * first write to a page after a snapshot takes one extra, signal-free
 * fault, and the arena holds one more file descriptor until cow_close().
 * A writable arena starts the userfaultfd part earlier, at its first scan
 * for dirty pages (cow_dirty(), cow_stats(), cow_discard(), cow_commit()),
 * where it is available: later scans then look closely only at the pages
 * written or read in since, not at every page present (about 5 instead of
 * 50 ns per page present). cow_stats.tracking stays COW_TRACK_NONE until
 * the first snapshot.
 *
 * @param[in] a     the arena.
 * @param[out] out  receives the snapshot; untouched on failure.
 * @return 0, or a negative errno; on failure the arena, its snapshots and
 *         its tracking are as before:
 *  - -EINVAL: a or out NULL.
 *  - -ESTALE: the file changed behind the arena's back (see "Changes from
 *    outside" above).
 *  - -EIO (or the errno of the failure): writing an earlier commit's
 *    pages into the file failed after its durable point (see
 *    cow_commit()): returned until the file is reopened; this
 *    call first waits for those writes.
 *  - -EIO: a page inside the file could not be read in (see "Signals"
 *    above: a hole of a full tmpfs, a read error); nothing done, the
 *    private changes stay readable. Returned by every later call of this
 *    kind: close the arena.
 *  - -ECHILD: called in a fork child.
 *  - -ENOMEM: no memory for the page copies or the snapshot.
 *  - -EMFILE, -ENFILE: no descriptor for the first snapshot's userfaultfd.
 *  - other errnos from userfaultfd(2) and its ioctls (first snapshot) or
 *    from the PAGEMAP_SCAN ioctl that reads which pages were written.
 */
int cow_snapshot(cow_arena *a, cow_snap **out);

/** @brief Return the arena to a snapshot: its content and its size.
 *
 * Restores only the pages that differ between now and the snapshot: the
 * pages written since the last snapshot or rollback, and those whose saved
 * content differs between the two. A page whose content in the snapshot is
 * the base is dropped (MADV_DONTNEED: it reads the base again and holds no
 * memory); any other is copied back from the snapshot's saved copy. The
 * snapshot stays live: roll back to it again, or to any other.
 *
 * Size: the arena's size becomes the snapshot's. The reservation never
 * moves: after a rollback past a cow_grow(), the pages beyond the old size
 * are dropped and no longer part of the arena, and growing again shows the
 * base there. A file arena's file keeps its length (it is never shrunk).
 *
 * @param[in] a  the arena.
 * @param[in] s  a live snapshot of a.
 * @return 0, or a negative errno; on failure the arena is as before:
 *  - -EINVAL: a or s NULL, or s is a snapshot of another arena.
 *  - -ESTALE: the file changed behind the arena's back (see "Changes from
 *    outside" above).
 *  - -EIO (or the errno of the failure): writing an earlier commit's
 *    pages into the file failed after its durable point (see
 *    cow_commit()): returned until the file is reopened; this
 *    call first waits for those writes.
 *  - -EIO: a page inside the file could not be read in (see "Signals"
 *    above: a hole of a full tmpfs, a read error); nothing done, the
 *    private changes stay readable. Returned by every later call of this
 *    kind: close the arena.
 *  - -ECHILD: called in a fork child.
 *  - -ENOMEM: no memory for the plan of the pages to restore.
 *  - errnos from the PAGEMAP_SCAN ioctl that reads which pages were
 *    written, from UFFDIO_WRITEPROTECT (which unprotects the pages about
 *    to be dropped) and from madvise(2) (dropping pages).
 *  Pages to drop are dropped with one MADV_DONTNEED when no page that
 *  stays private lies between them and they are not far apart (a run per
 *  64 pages of their span, or more), which either drops all or none.
 *  Otherwise each run is dropped alone, and if a run after the first
 *  fails, the rest are dropped with one call over their span; should that
 *  call fail as well (it does not on a mapped range), its errno is returned
 *  with the runs before the span already dropped.
 */
int cow_rollback(cow_arena *a, cow_snap *s);

/** @brief Release a snapshot: free its saved copies that no other snapshot
 * shares. s must not be used afterwards. cow_snap_release(NULL) does
 * nothing. Never fails. cow_close() releases every snapshot of its arena.
 *
 * @param[in] s  a live snapshot, or NULL.
 */
void cow_snap_release(cow_snap *s);

/** cow_snap_save() flags: save every page of the snapshot, not only those
 * that differ from the base, so that the file loads into any arena large
 * enough, whatever its base. */
#define COW_SNAP_FULL 0x01u

/** @brief Save a snapshot to a file, to be loaded later by
 * cow_snap_load(), in this process or another.
 *
 * The file holds a header (format version, page size, the snapshot's
 * size, what identifies the base it was taken against) and the pages
 * where the snapshot differs from the arena's base, each with an XXH3
 * checksum: its size is those pages plus a page of header (and of index,
 * one more page per 256 pages saved, with 4 KiB pages). The cost follows
 * those pages, not the arena's size. With COW_SNAP_FULL every page of the
 * snapshot is saved (the others read from the base), so the file needs no
 * base: it loads into any arena at least as large, anonymous ones in a
 * fresh process included.
 *
 * The base's identity (checked by the load; the file loads only where it
 * matches):
 *  - an anonymous arena never committed: zeros. Any anonymous arena never
 *    committed matches.
 *  - a file, or a memfd (cow_open_fd()): its device and inode, its length
 *    and modification time as the arena last recorded them (at open, and
 *    after its own cow_grow() or commit), and the base's length. A commit
 *    changes the modification time, so a file saved before a commit does
 *    not load after it. Limits: a copy of the file (cp, a backup restored)
 *    is another file and does not match, nor does the same file after a
 *    log replay at open (the replay rewrites its pages) or after a move
 *    to another file system, and some file systems (network, btrfs
 *    subvolumes) may report another device after a reboot: use
 *    COW_SNAP_FULL to keep state across those. A program that writes the
 *    file and puts back its size and modification time goes unseen, as
 *    for the arena's own change detection (see "Changes from outside").
 *  - an anonymous arena after a commit: its base exists only in this
 *    process's memory. Only COW_SNAP_FULL can save it (-EINVAL without).
 *
 * The file appears atomically and durably: it is written complete under
 * a temporary name beside path ("<path>.tmp-" and 16 hex digits, created
 * exclusively, never through a symlink), made durable (fdatasync),
 * renamed over path, and the directory is synced. An existing file at path
 * is replaced only by a complete new one; a crash during the call leaves
 * the old file (and possibly the temporary one) in place. Writes are
 * vectored, up to 1024 pages a call, straight from the saved copies.
 *
 * If the arena has asynchronous commits in flight, this first waits until
 * they are in the file's page cache.
 *
 * @param[in] s      a live snapshot.
 * @param[in] path   the file to write; replaced if it exists.
 * @param[in] flags  0 or COW_SNAP_FULL.
 * @return 0, or a negative errno; path is untouched and no temporary file
 *         is left, unless said otherwise:
 *  - -EINVAL: s or path NULL, path empty, unknown flags; or no
 *    COW_SNAP_FULL and the arena is anonymous and was committed.
 *  - -EISDIR: path ends in a slash (names no file).
 *  - -ESTALE: the file changed behind the arena's back (see "Changes from
 *    outside"): the base the snapshot reads is not the one recorded.
 *  - -ECHILD: called in a fork child.
 *  - -EIO (or the errno of the failure): writing an earlier commit's pages
 *    into the file failed (see cow_commit()).
 *  - -ENOMEM: no memory for the page list or the index.
 *  - -ENOSPC, -EDQUOT, -EFBIG, -EIO: writing or syncing the file failed.
 *  - -EACCES, -EROFS, -ENOENT, -ENOTDIR, -ENAMETOOLONG and other errnos of
 *    open(2) (the temporary file), pwritev(2), fdatasync(2), rename(2),
 *    getrandom(2), and for COW_SNAP_FULL pread(2) of the base.
 *  - an errno of fsync(2) of the directory, or of opening it: the new file
 *    is in place but its name may not survive a crash.
 *
 * Thread safety: a call on the snapshot's arena. The arena's writers may
 * keep writing: the saved pages are the snapshot's copies.
 */
int cow_snap_save(const cow_snap *s, const char *path, unsigned flags);

/** @brief Load a snapshot file (cow_snap_save()) as a new snapshot of a.
 *
 * Checks the file before anything changes: its header and index, the
 * base (the file's base identity must be a's, see cow_snap_save(); a
 * COW_SNAP_FULL file needs none), then every page's checksum as it is read
 * into new page copies. On success *out is a new snapshot of a like any
 * other: cow_rollback(a, *out) restores the saved content and size, it
 * stays valid across commits, and its copies count in
 * cow_stats.saved_pages. The arena's content is not changed by the load
 * itself. The cost follows the pages in the file.
 *
 * @param[in] a      the arena.
 * @param[in] path   a file made by cow_snap_save().
 * @param[out] out   receives the snapshot; untouched on failure.
 * @return 0, or a negative errno; on failure the arena, its snapshots and
 *         its memory are as before:
 *  - -EINVAL: a, path or out NULL; path is not a regular file.
 *  - -EISDIR: path is a directory.
 *  - COW_ECORRUPT: not a snapshot file, or a damaged one: a checksum of
 *    the header, the index or a page does not match, or the file is
 *    truncated or longer than its header says.
 *  - COW_EVERSION: the file has an unknown format version.
 *  - COW_EFOREIGN: the file was saved against another base (another file,
 *    the same file after a commit, a base of another length, an
 *    anonymous arena's zeros loaded into a file arena or the reverse, an
 *    anonymous arena that was committed), or with another page size, or
 *    the snapshot is larger than the arena has been since it was opened
 *    (cow_grow() it first).
 *  - -ESTALE: the file changed behind the arena's back.
 *  - -ECHILD: called in a fork child.
 *  - -EIO (or the errno of the failure): writing an earlier commit's pages
 *    into the file failed (see cow_commit()).
 *  - -ENOMEM: no memory for the page copies.
 *  - -EMFILE, -ENFILE: no descriptor for the file, or for the
 *    userfaultfd of the arena's first snapshot (see cow_snapshot()).
 *  - -ENOENT, -EACCES and other errnos of open(2), fstat(2), pread(2),
 *    preadv(2), and for the arena's first snapshot of userfaultfd(2) and
 *    its ioctls.
 */
int cow_snap_load(cow_arena *a, const char *path, cow_snap **out);

/** @brief List the page runs where one snapshot differs from another, or
 * from the arena's current content.
 *
 * A page differs when its bytes differ: the two snapshots' content of it
 * (a saved copy, or the base where a snapshot has none), or with to NULL,
 * from's content and the arena's memory now. Pages past the smaller of
 * the two sizes exist on one side only and all differ. Runs come as
 * cow_dirty()'s do: byte offsets from cow_base(), ascending, adjacent
 * pages merged. The cost follows the pages that may differ, not the
 * arena's size: the two snapshots' maps share every part that the writes
 * between them did not touch, and only the rest is walked; with to NULL
 * those are the pages written since the last snapshot or rollback and
 * those whose saved content differs. Each candidate page is compared
 * byte for byte (one read of the base where a side has no copy). Changes
 * nothing.
 *
 * @param[in] a     the arena.
 * @param[in] from  a live snapshot of a.
 * @param[in] to    a live snapshot of a, or NULL for the current content.
 * @param[out] out  room for max runs, or NULL when max is 0.
 * @param[in] max   how many runs fit in out.
 * @return the number of runs (which may exceed max: call again with more
 *         room; only the first max are stored), or a negative errno:
 *  - -EINVAL: a or from NULL, out NULL with max non-zero, or from or to
 *    a snapshot of another arena.
 *  - -ESTALE: the file changed behind the arena's back (the base the
 *    snapshots read is not the one they were taken against).
 *  - -ECHILD: called in a fork child.
 *  - -EIO (or the errno of the failure): writing an earlier commit's pages
 *    into the file failed (see cow_commit()); this call first waits for
 *    asynchronous commits to reach the file's page cache.
 *  - -ENOMEM: no memory for the candidate pages.
 *  - errnos of pread(2) of the base, and with to NULL of the
 *    PAGEMAP_SCAN ioctl that reads which pages were written.
 *
 * Thread safety: a call on the arena; with to NULL the arena's writers
 * must be paused (a racing write may or may not be seen).
 */
ssize_t cow_snap_diff(cow_arena *a, const cow_snap *from, const cow_snap *to,
		      struct cow_range *out, size_t max);

/** Statistics of an arena (cow_stats()). */
struct cow_stats {
	size_t size, reserved, page_size;
	size_t dirty_pages; /**< pages that differ from the base now */
	size_t snapshots;   /**< live snapshots */
	size_t saved_pages; /**< page copies held for snapshots (0 when none
			       is live) */
	size_t saved_bytes; /**< bytes allocated for those copies, and for
			       up to 256 spare ones kept for reuse while
			       snapshots live (0 when none is live) */
	size_t mappings;    /**< lines of /proc/self/maps this arena uses */
	/** commits that succeeded since the open (asynchronous ones count
	 * when captured); the sequence number of the newest log transaction
	 * that is durable (written, with COW_NOSYNC; for arenas without a
	 * log, equal to commits). It grows by one per transaction: a
	 * synchronous commit is one, and the asynchronous commits batched
	 * together are one, so it may grow by less than commits */
	unsigned long long commits, commit_seq_durable;
	size_t log_bytes;  /**< bytes in use in the write-ahead log: the
			      transactions past its head (not yet
			      checkpointed) */
	unsigned tracking; /**< COW_TRACK_* in use: NONE until the first
			      snapshot, then UFFD_WP or COMPARE */
	/** bytes of committed page images not yet written into the file in
	 * place (durable in the log, or queued): the memory commits hold
	 * beyond the arena's own pages. The in-place writes wait for the
	 * log's checkpoint or a call that needs them, so this may hold the
	 * pages of the commits of up to 16 MiB of log (the newest copy of
	 * each page only; they start at half the bound).
	 * Bounded (64 MiB by default): a commit that would pass the bound
	 * first waits for the background writes, unless it is alone. */
	size_t commit_pending_bytes;
};

/** cow_commit() flags: return once the transaction is captured. */
#define COW_COMMIT_ASYNC 0x01u

/** @brief Commit: the arena's current content becomes its new base,
 * atomically and durably.
 *
 * The dirty pages are written as one transaction to the write-ahead log
 * beside the file ("<file>.cowlog", created by the first commit) and the
 * log is made durable (fdatasync; skipped with COW_NOSYNC): that is when
 * the commit happens, and when the call returns. From then on the
 * committed content is the arena's base for every call (cow_discard(),
 * cow_revert(), cow_rollback() wait for what follows first, and so does
 * cow_close(): a reader that opens the file after it sees the commit).
 * The pages are written into the file in place in the background
 * (io_uring, sorted and coalesced, from copies the commit made: later
 * stores do not change them), not after every commit but once something
 * needs them there: the log's checkpoint (once per 16 MiB of log not yet
 * in the file), cow_sync(), cow_close(), the wait of cow_discard(),
 * cow_revert(), cow_rollback(), or the copies reaching half their bound;
 * each page is then written once, with its newest image, for all the
 * commits since (a page committed again and again is written once per
 * checkpoint, not once per commit). The arena's private copies of the
 * committed pages are dropped by the next call that has the writers
 * paused (the next cow_commit(), or the wait of cow_discard(),
 * cow_revert(), cow_rollback()) once they are in the file, if they still
 * hold what was committed; cow_dirty() and cow_stats() do not count
 * them meanwhile. The copies not yet written in place are bounded (64 MiB
 * of pages, cow_stats().commit_pending_bytes): a commit that would pass
 * the bound first waits for the background writes. The file's fdatasync
 * and the log's reset follow in the background, once per 16 MiB of log
 * and at cow_close(): until then a crash is repaired by replaying the
 * log. A crash at any instant leaves the file,
 * after the recovery of the next cow_open(), with the content of the newest
 * commit that returned 0 (or a newer one that was also complete) and never a
 * mix.
 *
 * The commit records the arena's size: growth by cow_grow() is committed
 * with it. A file whose length is not a page multiple keeps its length
 * unless the arena grew (bytes written past the file's end are not
 * committed). Note that cow_grow() extends the file at once (with zeros),
 * so a grown but uncommitted arena leaves the file longer after a crash.
 *
 * With COW_COMMIT_ASYNC the call returns once the transaction is captured
 * (its pages are copied): later stores do not change it. It becomes
 * durable in the background; cow_sync() waits for it. The asynchronous
 * commits made while the log is busy join one transaction that holds the
 * newest image of each page (a page committed twice is logged once), so
 * they reach the log together, in one write and one fdatasync. Their
 * pages keep their private copies (writers may run meanwhile, so only a
 * call that has them paused may drop a copy) until a later cow_commit()
 * finds them unchanged and in the file and drops them: once 16 such pages
 * of logged commits wait, they are written in place, and the next commit
 * drops them all in one call. But once the commit is durable a page that
 * still holds exactly what the commit captured equals the base:
 * cow_dirty() and cow_stats() do not count it (a compare of each such
 * page with its captured copy, whatever the write tracking), and no later
 * commit writes it again. A page written with other bytes after the
 * capture stays dirty. A crash loses at most the asynchronous commits
 * after the last cow_sync() that returned 0, never a part of one.
 *
 * An anonymous arena, a memfd or an unlinked file has nothing durable:
 * the commit writes the pages into its base in memory, drops the private
 * copies, and is complete when it returns (also with COW_COMMIT_ASYNC).
 *
 * Snapshots taken before a commit stay valid. The caller pauses the
 * arena's writers during the call.
 *
 * @param[in] a      the arena.
 * @param[in] flags  0 or COW_COMMIT_ASYNC.
 * @return 0, or a negative errno:
 *  - -EINVAL: a NULL or unknown flags.
 *  - -EROFS: the arena was opened with COW_READONLY.
 *  - -ESTALE: the file changed behind the arena's back (see "Changes from
 *    outside" above; with COW_ISOLATE too); nothing written.
 *  - -EIO: a page inside the file could not be read in (see "Signals"
 *    above: a hole of a full tmpfs, a read error); nothing written, the
 *    private changes stay readable. Returned by every later call of this
 *    kind: close the arena.
 *  - -ENOMEM: no memory for the transaction or the page scan.
 *  - -ENOSPC, -EIO, -EDQUOT, -EFBIG: creating or appending to the log, or
 *    writing the base of an arena without a log, failed. Nothing changed:
 *    the previous commit is the base, the changes are still private, and
 *    a later commit may succeed.
 *  - -EFBIG also: RLIMIT_FSIZE is below what the commit would write: the
 *    log's preallocation (1 MiB, then doubling), or a page of the file
 *    at or past the limit (even inside the file). Checked before anything
 *    is written or created, so no SIGXFSZ is raised; nothing changed.
 *  - COW_ELOGTYPE: creating the log found FILE.cowlog.tmp taken by
 *    something that is not a regular file (a symlink is never followed, a
 *    regular file left by a crash is replaced). Nothing changed.
 *  - an errno of io_uring_setup(2) (-EPERM where io_uring is disabled,
 *    -EMFILE, -ENOMEM): the process's I/O ring cannot be set up. Nothing
 *    changed. -ENOMEM also when its thread cannot be started (out of
 *    memory, threads, or mappings near vm.max_map_count).
 *  - -EIO or another errno of a write or fdatasync that failed after an
 *    earlier commit's log record was durable (writing the pages into the
 *    file, syncing the file, resetting the log; -ENOMEM for the buffers
 *    of those writes; -EAGAIN where the kernel did not take the I/O, as
 *    when it cannot allocate a request, 9 times in a row: such a step,
 *    of which nothing ran, is made again up to 8 times): the commit that
 *    returned 0 is safe in the log, but the arena accepts no more
 *    commits (each returns this error; the content stays readable, and
 *    if the file's pages could not be written, cow_discard() and
 *    cow_revert() return it too). Close and reopen the file: the open
 *    replays the log. A failed fsync is never retried.
 *  - the error of an earlier asynchronous commit that failed before its
 *    durable point (reported once, here or by cow_sync()); its changes
 *    are still private and this call did nothing: call it again.
 *  - other errnos from the page scan, madvise(2) or, once the userfaultfd
 *    tracking is on (see cow_snapshot()), its UFFDIO_WRITEPROTECT.
 */
int cow_commit(cow_arena *a, unsigned flags);

/** @brief Wait until every commit so far is durable (its log record is
 * on stable storage, or written with COW_NOSYNC) and written into the
 * file's page cache (so the next cow_commit() can drop the private copies
 * of the commits). Advances background I/O
 * with COW_NOTHREAD. Returns at once for an arena without a log.
 *
 * @return 0, or a negative errno:
 *  - -EINVAL: a is NULL.
 *  - the errno of an asynchronous commit that failed (-ENOSPC, -EIO,
 *    ...): that commit and the asynchronous ones after it did not
 *    happen; their changes are still private (commit again). Reported
 *    once.
 *  - the errno of a failed write or sync after a durable point, as for
 *    cow_commit() (the in-place writes of a synchronous commit that
 *    returned 0 among them): returned by every later call.
 */
int cow_sync(cow_arena *a);

/** @brief Fill *st with the arena's statistics.
 *
 * Costs a scan of the dirty pages and a read of /proc/self/maps.
 *
 * @return 0, or a negative errno:
 *  - -EINVAL: a or st NULL.
 *  - -ECHILD: called in a fork child.
 *  - -ENOMEM, or an errno from reading /proc/self/maps or the page scan.
 */
int cow_stats(const cow_arena *a, struct cow_stats *st);

/** @brief Text for a negative errno or a COW_E* code. Never NULL.
 * Thread-safe: the strings are static. */
const char *cow_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
