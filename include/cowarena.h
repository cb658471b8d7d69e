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
 * cow_discard(), cow_revert() and cow_grow(), which need the arena's
 * writers paused (the caller's job).
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

/** @brief The library's version as text, "0.1.0". Thread-safe. */
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
/** opt.addr is required, not a hint: the open fails with -EEXIST if any
 * part of [addr, addr + reserve) is already mapped. */
#define COW_FIXED_ADDR 0x20u
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
	 * COW_FIXED_ADDR it is a hint: used when the range is free. */
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
 *  - -ENOMEM: no memory or address space for the reservation.
 *  - -EMFILE, -ENFILE: out of file descriptors (an arena holds one).
 *  - -EFBIG, -ENOSPC: growing the file to opt.size failed.
 *  - any other errno from open(2), fstat(2), mmap(2).
 * A file created by this call is removed again when the call fails.
 */
int cow_open(cow_arena **out, const char *path, const struct cow_options *opt);

/** @brief Open an already open file as an arena.
 *
 * As cow_open(), on a descriptor. The library uses its own duplicate of fd:
 * the caller may close fd at once. memfds work. COW_CREATE is ignored.
 *
 * @return 0, or a negative errno as cow_open(), and:
 *  - -EBADF: fd is not an open descriptor, or it is open read-only and
 *    COW_READONLY was not given.
 */
int cow_open_fd(cow_arena **out, int fd, const struct cow_options *opt);

/** @brief Open an anonymous arena: its base is zeros.
 *
 * @param[out] out  receives the arena.
 * @param[in] size  the initial size, a non-zero page multiple (opt->size,
 *                  if non-zero, must be equal to it).
 * @param[in] opt   options or NULL; COW_CREATE and COW_READONLY are
 *                  meaningless here and give -EINVAL.
 * @return 0, or a negative errno:
 *  - -EINVAL: bad arguments, as for cow_open().
 *  - -EEXIST: COW_FIXED_ADDR and the range is taken.
 *  - -ENOMEM, -EMFILE, -ENFILE: out of memory, address space or fds.
 */
int cow_open_anon(cow_arena **out, size_t size, const struct cow_options *opt);

/** @brief Close an arena: discards uncommitted changes and releases
 * everything (one munmap of the whole reservation, which cannot fail for
 * lack of mappings). cow_close(NULL) does nothing.
 *
 * @return 0 (reserved for errors of background I/O in later versions).
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
 * changed. An anonymous arena just gets more zero pages.
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
 *  - -EFBIG, -EIO, -ENOMEM and other errnos from ftruncate(2) and mmap(2).
 */
int cow_grow(cow_arena *a, size_t new_size);

/** @brief Drop every private change: the whole arena reads the base again.
 *
 * One MADV_DONTNEED over the span from the first dirty page to the last,
 * so the call either drops every change or none. Its cost follows the page
 * tables present in that span, not the arena's size.
 *
 * @return 0, or a negative errno:
 *  - -EINVAL: a is NULL.
 *  - -ENOMEM: no memory to scan for dirty pages.
 *  - other errnos from madvise(2) or the page scan.
 */
int cow_discard(cow_arena *a);

/** @brief Revert one range to the base.
 *
 * @param[in] a     the arena.
 * @param[in] addr  the range's start, page aligned, inside the arena.
 * @param[in] len   its length, a non-zero page multiple; addr + len must
 *                  not pass the arena's end.
 * @return 0, or a negative errno:
 *  - -EINVAL: a or addr NULL, unaligned, zero length or out of range.
 *  - other errnos from madvise(2).
 */
int cow_revert(cow_arena *a, void *addr, size_t len);

/** A run of pages, in bytes from cow_base(). */
struct cow_range {
	size_t offset, length;
};

/** @brief List the page runs that differ from the base.
 *
 * A page is dirty when the arena holds a private copy of it. Runs come in
 * ascending order, adjacent dirty pages merged into one run.
 *
 * @param[in] a     the arena.
 * @param[out] out  room for max runs, or NULL when max is 0.
 * @param[in] max   how many runs fit in out.
 * @return the number of runs there are (which may exceed max: call again
 *         with more room; only the first max are stored), or a negative
 *         errno:
 *  - -EINVAL: a NULL, or out NULL with max non-zero.
 *  - -ENOMEM: no memory for the scan.
 *  - other errnos from the PAGEMAP_SCAN ioctl or /proc/self/pagemap.
 */
ssize_t cow_dirty(cow_arena *a, struct cow_range *out, size_t max);

/** Statistics of an arena (cow_stats()). */
struct cow_stats {
	size_t size, reserved, page_size;
	size_t dirty_pages; /**< pages that differ from the base now */
	size_t snapshots;   /**< live snapshots */
	size_t saved_pages; /**< page copies held for snapshots */
	size_t saved_bytes; /**< memory those copies use */
	size_t mappings;    /**< lines of /proc/self/maps this arena uses */
	unsigned long long commits, commit_seq_durable;
	size_t log_bytes;  /**< current size of the write-ahead log */
	unsigned tracking; /**< COW_TRACK_* in use */
};

/** @brief Fill *st with the arena's statistics.
 *
 * Costs a scan of the dirty pages and a read of /proc/self/maps.
 *
 * @return 0, or a negative errno:
 *  - -EINVAL: a or st NULL.
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
