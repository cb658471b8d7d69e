// SPDX-License-Identifier: MIT
/*
 * Open and close, grow, discard, revert, dirty and stats: the arena core,
 * and the place that keeps the invariants of DESIGN.md.
 *
 * Every call validates all of its arguments before it changes anything,
 * and undoes what it did when a later step fails (one label per acquired
 * resource). Undoing changes never calls MAP_FIXED or munmap on part of a
 * mapping: discard and revert use one MADV_DONTNEED, which drops the private
 * copies and keeps the mapping whole. MAP_FIXED over the whole mapping is
 * the alternative the design names; it is not used because a failed
 * MAP_FIXED can leave a hole where the arena was (measured on this kernel),
 * and because it would drop the userfaultfd registration snapshots rely on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "compat.h"
#include "internal.h"

COW_API const char *cow_version(void)
{
	return "0.1.0";
}

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t round_up(size_t v, size_t pgsz)
{
	return (v + pgsz - 1) & ~(pgsz - 1);
}

/* Checks what can be checked of the options alone; zero options are OK. */
static int check_options(const struct cow_options *o, unsigned allowed,
			 size_t pgsz)
{
	if (!o)
		return 0;
	if (o->flags & ~allowed)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(o->reserved) / sizeof(o->reserved[0]);
	     i++)
		if (o->reserved[i])
			return -EINVAL;
	if (!cow__aligned(o->size, pgsz) || !cow__aligned(o->reserve, pgsz) ||
	    !cow__aligned((uintptr_t)o->addr, pgsz))
		return -EINVAL;
	if ((o->flags & COW_FIXED_ADDR) && !o->addr)
		return -EINVAL;
	if (o->reserve && o->size > o->reserve)
		return -EINVAL;
	if (o->mode & ~07777u)
		return -EINVAL;
	return 0;
}

static size_t reserve_for(const struct cow_options *o, size_t size)
{
	if (o && o->reserve)
		return o->reserve;
	if (size > SIZE_MAX / 2)
		return size;
	return size * 2 > COW_DEFAULT_RESERVE ? size * 2 : COW_DEFAULT_RESERVE;
}

/*
 * Reserves the address space, maps [0, size) of fd at its head and fills in
 * a new arena. Takes ownership of fd only on success.
 */
static int arena_create(cow_arena **out, const struct cow_options *o, int fd,
			enum cow__kind kind, off_t file_size, size_t size)
{
	size_t reserve = reserve_for(o, size);
	cow_arena *a;
	int r;

	if (reserve < size)
		return -EINVAL;
	a = cow__calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->pgsz = page_size();
	a->size = size;
	a->reserve = reserve;
	a->fd = fd;
	a->kind = kind;
	a->flags = o ? o->flags : 0;
	a->file_size = file_size;
	r = cow__pagemap_get();
	if (r < 0)
		goto err_free;
	r = cow__reserve(o ? o->addr : NULL, reserve,
			 o && (o->flags & COW_FIXED_ADDR), &a->base);
	if (r < 0)
		goto err_pagemap;
	r = cow__reserve_map_base(a, 0, size);
	if (r < 0)
		goto err_reserve;
	*out = a;
	return 0;

err_reserve:
	cow__reserve_release(a->base, reserve);
err_pagemap:
	cow__pagemap_put();
err_free:
	cow__free(a);
	return r;
}

/* Opens an arena on fd (owned by the caller until success). */
static int open_file(cow_arena **out, int fd, const struct cow_options *o)
{
	size_t pgsz = page_size(), size, want = o ? o->size : 0;
	int readonly = o && (o->flags & COW_READONLY);
	struct stat st;
	int r;

	r = cow__sys_fstat(fd, &st);
	if (r < 0)
		return r;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	size = round_up((size_t)st.st_size, pgsz);
	if (want && want <= size)
		size = want;
	if (!size && !want)
		return -EINVAL;
	if (want > size) {
		/* The arena starts bigger than the file: grow it now, as
		 * cow_grow() would, and shrink it back if the open fails. */
		if (readonly)
			return -EROFS;
		if (o->reserve && want > o->reserve)
			return -EINVAL;
		r = cow__sys_ftruncate(fd, (off_t)want);
		if (r < 0)
			return r;
		r = arena_create(out, o, fd, COW__FILE, (off_t)want, want);
		if (r < 0)
			(void)cow__sys_ftruncate(fd, st.st_size);
		return r;
	}
	return arena_create(out, o, fd, COW__FILE, st.st_size, size);
}

COW_API int cow_open(cow_arena **out, const char *path,
		     const struct cow_options *opt)
{
	unsigned flags = opt ? opt->flags : 0;
	int readonly = flags & COW_READONLY;
	int oflags = O_CLOEXEC | (readonly ? O_RDONLY : O_RDWR);
	int created = 0, fd, r;

	if (!out || !path)
		return -EINVAL;
	r = check_options(opt, COW__OPEN_FLAGS, page_size());
	if (r < 0)
		return r;
	if ((flags & COW_CREATE) && readonly)
		return -EINVAL;
	fd = cow__sys_open(path, oflags, 0);
	if (fd == -ENOENT && (flags & COW_CREATE)) {
		if (!opt->size)
			return -EINVAL;
		fd = cow__sys_open(path, oflags | O_CREAT | O_EXCL,
				   opt->mode ? opt->mode : 0644);
		created = fd >= 0;
		if (fd == -EEXIST) /* made by someone else meanwhile */
			fd = cow__sys_open(path, oflags, 0);
		if (fd >= 0) {
			r = cow__sys_ftruncate(fd, (off_t)opt->size);
			if (r < 0)
				goto err;
		}
	}
	if (fd < 0)
		return fd;
	if ((flags & COW_CREATE) && !created) {
		/* An existing file is opened as it is: the size is ignored. */
		struct cow_options o = *opt;

		o.size = 0;
		r = open_file(out, fd, &o);
	} else {
		r = open_file(out, fd, opt);
	}
	if (r == 0)
		return 0;
err:
	cow__sys_close(fd);
	if (created)
		cow__sys_unlink(path);
	return r;
}

COW_API int cow_open_fd(cow_arena **out, int fd, const struct cow_options *opt)
{
	unsigned flags = opt ? opt->flags : 0;
	int mode, own, r;

	if (!out)
		return -EINVAL;
	r = check_options(opt, COW__OPEN_FLAGS, page_size());
	if (r < 0)
		return r;
	if (fd < 0)
		return -EBADF;
	mode = cow__sys_fcntl(fd, F_GETFL, 0);
	if (mode < 0)
		return mode;
	if ((mode & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if ((mode & O_ACCMODE) == O_RDONLY && !(flags & COW_READONLY))
		return -EBADF;
	own = cow__sys_fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (own < 0)
		return own;
	r = open_file(out, own, opt);
	if (r < 0)
		cow__sys_close(own);
	return r;
}

COW_API int cow_open_anon(cow_arena **out, size_t size,
			  const struct cow_options *opt)
{
	int fd, r;

	if (!out || !size || !cow__aligned(size, page_size()))
		return -EINVAL;
	r = check_options(opt, COW_FIXED_ADDR, page_size());
	if (r < 0)
		return r;
	if (opt && opt->size && opt->size != size)
		return -EINVAL;
	if (opt && opt->reserve && opt->reserve < size)
		return -EINVAL;
	/* The base of an anonymous arena is a memfd of zeros: it behaves as a
	 * file mapping in every respect (dirty pages are the non-file pages,
	 * MADV_DONTNEED brings zeros back) and a commit can make any content
	 * the new base by writing it into the memfd. */
	fd = cow__sys_memfd("cowarena-anon", MFD_CLOEXEC);
	if (fd < 0)
		return fd;
	r = cow__sys_ftruncate(fd, (off_t)size);
	if (r == 0)
		r = arena_create(out, opt, fd, COW__ANON, (off_t)size, size);
	if (r < 0)
		cow__sys_close(fd);
	return r;
}

COW_API int cow_close(cow_arena *a)
{
	if (!a)
		return 0;
	cow__reserve_release(a->base, a->reserve);
	cow__sys_close(a->fd);
	cow__pagemap_put();
	cow__free(a);
	return 0;
}

COW_API void *cow_base(const cow_arena *a)
{
	return a ? a->base : NULL;
}

COW_API size_t cow_size(const cow_arena *a)
{
	return a ? a->size : 0;
}

COW_API size_t cow_reserved(const cow_arena *a)
{
	return a ? a->reserve : 0;
}

COW_API int cow_grow(cow_arena *a, size_t new_size)
{
	off_t old_len;
	int r;

	if (!a || !cow__aligned(new_size, a->pgsz) || new_size < a->size)
		return -EINVAL;
	if (new_size > a->reserve)
		return -ENOSPC;
	if (new_size == a->size)
		return 0;
	if (a->kind == COW__FILE && (a->flags & COW_READONLY))
		return -EROFS;
	old_len = a->file_size;
	if ((off_t)new_size > old_len) {
		r = cow__sys_ftruncate(a->fd, (off_t)new_size);
		if (r < 0)
			return r;
	}
	r = cow__reserve_map_base(a, a->size, new_size);
	if (r < 0) {
		if ((off_t)new_size > old_len)
			(void)cow__sys_ftruncate(a->fd, old_len);
		return r;
	}
	if ((off_t)new_size > old_len)
		a->file_size = (off_t)new_size;
	a->size = new_size;
	return 0;
}

/* The span from the first dirty page to the end of the last one. */
struct span {
	size_t first, end;
};

static int span_add(void *ctx, size_t first, size_t n)
{
	struct span *sp = ctx;

	if (sp->end == 0)
		sp->first = first;
	sp->end = first + n;
	return 0;
}

/*
 * One MADV_DONTNEED over the span of the dirty runs, not one per run: a
 * single call either drops every private copy or fails having changed
 * nothing, where a failure after some runs were dropped could not be undone
 * (their content is gone). The span costs no more in practice: the kernel
 * walks only the page tables that exist, and measured on a 1 GiB arena the
 * whole-span call is cheaper than per-run calls from 1 % dirty pages up,
 * and within 3x at 0.1 %. Clean pages inside the span map the base again.
 */
COW_API int cow_discard(cow_arena *a)
{
	struct span sp = {0, 0};

	if (!a)
		return -EINVAL;
	COW_TRY(cow__track_dirty(a, 0, a->size / a->pgsz, span_add, &sp));
	if (sp.end == 0)
		return 0;
	return cow__sys_madvise(a->base + sp.first * a->pgsz,
				(sp.end - sp.first) * a->pgsz, MADV_DONTNEED);
}

/* Validates [addr, addr + len) as a non-empty page range of the arena. */
static int check_range(const struct cow_arena *a, const void *addr, size_t len)
{
	uintptr_t p = (uintptr_t)addr, b = (uintptr_t)a->base;

	if (!addr || !len || !cow__aligned(p, a->pgsz) ||
	    !cow__aligned(len, a->pgsz))
		return -EINVAL;
	if (p < b || p - b > a->size || len > a->size - (p - b))
		return -EINVAL;
	return 0;
}

/* One MADV_DONTNEED over the range: a single call either does all of it or
 * none, and its cost follows the page tables present in the range. */
COW_API int cow_revert(cow_arena *a, void *addr, size_t len)
{
	if (!a)
		return -EINVAL;
	COW_TRY(check_range(a, addr, len));
	return cow__sys_madvise(addr, len, MADV_DONTNEED);
}

struct dirty_out {
	struct cow_range *out;
	size_t max, count, pgsz;
};

static int dirty_add(void *ctx, size_t first, size_t n)
{
	struct dirty_out *d = ctx;

	if (d->count < d->max) {
		d->out[d->count].offset = first * d->pgsz;
		d->out[d->count].length = n * d->pgsz;
	}
	d->count++;
	return 0;
}

COW_API ssize_t cow_dirty(cow_arena *a, struct cow_range *out, size_t max)
{
	struct dirty_out d = {out, max, 0, 0};
	int r;

	if (!a || (!out && max))
		return -EINVAL;
	d.pgsz = a->pgsz;
	r = cow__track_dirty(a, 0, a->size / a->pgsz, dirty_add, &d);
	return r < 0 ? r : (ssize_t)d.count;
}

static int count_pages(void *ctx, size_t first, size_t n)
{
	(void)first;
	*(size_t *)ctx += n;
	return 0;
}

COW_API int cow_stats(const cow_arena *ca, struct cow_stats *st)
{
	/* Scanning reads the arena's page tables, not its state. */
	cow_arena *a = (cow_arena *)ca;
	struct cow_stats s;

	if (!a || !st)
		return -EINVAL;
	memset(&s, 0, sizeof(s));
	s.size = a->size;
	s.reserved = a->reserve;
	s.page_size = a->pgsz;
	s.tracking = COW_TRACK_NONE;
	COW_TRY(cow__track_dirty(a, 0, a->size / a->pgsz, count_pages,
				 &s.dirty_pages));
	COW_TRY(cow__count_mappings(a->base, a->reserve, &s.mappings));
	*st = s;
	return 0;
}

COW_API const char *cow_strerror(int err)
{
	const char *s;

	if (err == 0)
		return "Success";
	s = err < 0 && err > -4096 ? strerrordesc_np(-err) : NULL;
	return s ? s : "Unknown error";
}
