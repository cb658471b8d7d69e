// SPDX-License-Identifier: MIT
/*
 * Snapshot files: a snapshot saved to disk, loaded back as a new snapshot
 * of an arena with the same base, in this process or another. The format
 * is in snapfile.h.
 *
 * A snapshot maps the pages where it differs from the arena's base
 * (snap.c keeps that true across commits); the other pages read the base.
 * So a file holds those pages only, and is loadable only where the base
 * is the same. What identifies the base, recorded at the save and
 * compared at the load (a mismatch is COW_EFOREIGN):
 *  - an anonymous arena never committed: zeros. Any anonymous arena never
 *    committed has them.
 *  - a file (or memfd): its device, inode, length and modification time
 *    as the arena last knew them (the guard's record: at open, and after
 *    the arena's own grow or commit), and the base's length. Every commit
 *    moves the mtime, so a file saved before a commit is foreign after
 *    it. This costs nothing at the save or the load; hashing the base
 *    instead would cost its whole size, which is what these files avoid.
 *    The limits (a copy of the file is another file, a writer that puts
 *    back size and mtime goes unseen) are those of the guard and are
 *    documented in cowarena.h.
 *  - an anonymous arena after a commit: its base exists only in that
 *    process's memory, so only COW_SNAP_FULL files, which need no base,
 *    can be made.
 *
 * A save writes the pages straight from the saved copies (no staging
 * buffer) in vectored writes of up to 1024 pages, the index and header
 * last, under a temporary name beside the target (O_EXCL, O_NOFOLLOW),
 * then fdatasync, rename over the target, and fsync of the directory:
 * the target is either the old file or the complete new one. A load
 * checks the header and index, then the base, then reads the pages into
 * new copies (again vectored), checking each, before the snapshot exists:
 * a failed load changes nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
/* xxHash compiled in, as in wal.c: the library needs no libxxhash. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "hash.h"
#include "internal.h"
#include "pagestore.h"
#include "ptrie.h"
#include "snap.h"
#include "snapfile.h"

_Static_assert(sizeof(struct cow__snapfile_hdr) == COW__SNAPFILE_HDR,
	       "header layout");
_Static_assert(sizeof(struct cow__snapfile_entry) == 16, "index layout");

#define BATCH 1024u /* pages per vectored call (IOV_MAX) */
/* Bounds that keep every offset computation far from overflow. */
#define MAX_PAGE_SIZE (1u << 24)
#define MAX_PAGES ((uint64_t)1 << 40)

static uint64_t page_sum(const void *data, size_t pgsz, uint64_t page)
{
	return cow__hash(data, pgsz, page);
}

static uint64_t data_off(uint64_t npages, uint64_t pgsz)
{
	uint64_t n =
	    COW__SNAPFILE_HDR + npages * sizeof(struct cow__snapfile_entry);

	return (n + pgsz - 1) / pgsz * pgsz;
}

/* The checksum of the bytes before the first page; the header's sum
 * field must be zero in prefix while it is taken. */
static uint64_t prefix_sum(const unsigned char *prefix, size_t len)
{
	return XXH3_64bits(prefix, len);
}

/* What the header alone can say is wrong (the rest needs the checksum). */
static int hdr_sane(const struct cow__snapfile_hdr *h)
{
	uint64_t pg = h->page_size, max;

	if (pg < 512 || pg > MAX_PAGE_SIZE || (pg & (pg - 1)))
		return 0;
	if (!h->size || h->size % pg || h->size / pg > MAX_PAGES)
		return 0;
	max = h->size / pg;
	if (h->npages > max || (h->flags & ~COW_SNAP_FULL))
		return 0;
	return !(h->flags & COW_SNAP_FULL) || h->npages == max;
}

/* Reads the header and the index (the bytes before the first page) into
 * a new buffer *prefix and checks them. */
static int read_prefix(int fd, struct cow__snapfile_info *info,
		       unsigned char **prefix)
{
	struct cow__snapfile_hdr *h = &info->hdr;
	const struct cow__snapfile_entry *e;
	unsigned char *buf;
	struct stat st;
	ssize_t got;
	uint64_t end;

	memset(info, 0, sizeof(*info));
	COW_TRY(cow__sys_fstat(fd, &st));
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	info->file_size = (uint64_t)st.st_size;
	got = cow__sys_pread(fd, h, sizeof(*h), 0);
	if (got < 0)
		return (int)got;
	if ((size_t)got < sizeof(h->magic) ||
	    memcmp(h->magic, COW__SNAPFILE_MAGIC, sizeof(h->magic)))
		return COW_ECORRUPT; /* not a snapshot file */
	if ((size_t)got < offsetof(struct cow__snapfile_hdr, page_size))
		return COW_ECORRUPT;
	if (h->version != COW__SNAPFILE_VERSION)
		return COW_EVERSION;
	if ((size_t)got < sizeof(*h) || !hdr_sane(h))
		return COW_ECORRUPT;
	info->data_off = data_off(h->npages, h->page_size);
	end = info->data_off + h->npages * h->page_size;
	if (info->file_size != end)
		return COW_ECORRUPT; /* truncated, or something appended */
	buf = cow__malloc(info->data_off);
	if (!buf)
		return -ENOMEM;
	got = cow__sys_pread(fd, buf, info->data_off, 0);
	if (got >= 0 && (uint64_t)got != info->data_off)
		got = COW_ECORRUPT; /* shrank meanwhile */
	if (got >= 0) {
		memset(buf + offsetof(struct cow__snapfile_hdr, sum), 0,
		       sizeof(h->sum));
		if (prefix_sum(buf, info->data_off) != h->sum)
			got = COW_ECORRUPT;
	}
	e = (const struct cow__snapfile_entry *)(buf + COW__SNAPFILE_HDR);
	for (uint64_t i = 0; got >= 0 && i < h->npages; i++)
		if (e[i].page >= h->size / h->page_size ||
		    (i && e[i].page <= e[i - 1].page))
			got = COW_ECORRUPT;
	if (got < 0) {
		cow__free(buf);
		return (int)got;
	}
	*prefix = buf;
	return 0;
}

/* Reads pages [first, first + n) of the file into dst[] and checks them. */
static int read_pages(int fd, const struct cow__snapfile_info *info,
		      const struct cow__snapfile_entry *e, size_t first,
		      size_t n, unsigned char *const *dst)
{
	size_t pgsz = info->hdr.page_size;
	struct iovec iov[BATCH];
	ssize_t got;

	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = dst[i];
		iov[i].iov_len = pgsz;
	}
	got = cow__sys_preadv(fd, iov, (int)n,
			      (off_t)(info->data_off + first * pgsz));
	if (got < 0)
		return (int)got;
	if ((size_t)got != n * pgsz)
		return COW_ECORRUPT; /* shrank meanwhile */
	for (size_t i = 0; i < n; i++)
		if (page_sum(dst[i], pgsz, e[first + i].page) !=
		    e[first + i].sum)
			return COW_ECORRUPT;
	return 0;
}

int cow__snapfile_check(int fd, int pages, struct cow__snapfile_info *info)
{
	const struct cow__snapfile_entry *e;
	unsigned char *prefix, *buf, *dst[BATCH];
	size_t pgsz;
	int r;

	COW_TRY(read_prefix(fd, info, &prefix));
	pgsz = info->hdr.page_size;
	e = (const struct cow__snapfile_entry *)(prefix + COW__SNAPFILE_HDR);
	buf = pages ? cow__malloc((size_t)BATCH * pgsz) : NULL;
	r = pages && !buf ? -ENOMEM : 0;
	for (size_t i = 0; i < BATCH && buf; i++)
		dst[i] = buf + i * pgsz;
	for (uint64_t i = 0; r == 0 && pages && i < info->hdr.npages;
	     i += BATCH) {
		uint64_t n = info->hdr.npages - i;

		r = read_pages(fd, info, e, i, n < BATCH ? n : BATCH, dst);
	}
	cow__free(buf);
	cow__free(prefix);
	return r;
}

/* The identity of the arena's base, as a header records it. */
static void base_ident(const struct cow_arena *a, struct cow__snapfile_hdr *h)
{
	h->base_len = (uint64_t)a->file_size;
	if (a->kind == COW__ANON) {
		h->base_kind = a->direct_commits ? COW__SNAPBASE_MEMORY
						 : COW__SNAPBASE_ZEROS;
		return;
	}
	h->base_kind = COW__SNAPBASE_FILE;
	h->dev = (uint64_t)a->ident.dev;
	h->ino = (uint64_t)a->ident.ino;
	h->mtime_sec = (int64_t)a->ident.mtime.tv_sec;
	h->mtime_nsec = (int64_t)a->ident.mtime.tv_nsec;
	h->file_len = (uint64_t)a->ident.size;
}

/* Whether the file's pages can be loaded into a: its base and its page
 * size match, and the arena has been large enough since its open (a
 * rollback restores a size up to the pages mapped, as for any snapshot
 * taken before a rollback to a smaller one). */
static int base_matches(const struct cow_arena *a,
			const struct cow__snapfile_hdr *h)
{
	struct cow__snapfile_hdr now;

	if (h->page_size != a->pgsz || h->size > a->mapped)
		return 0;
	if (h->flags & COW_SNAP_FULL)
		return 1; /* every page is in the file */
	memset(&now, 0, sizeof(now));
	base_ident(a, &now);
	if (h->base_kind == COW__SNAPBASE_ZEROS)
		return now.base_kind == COW__SNAPBASE_ZEROS;
	return h->base_kind == COW__SNAPBASE_FILE &&
	       now.base_kind == COW__SNAPBASE_FILE &&
	       h->base_len == now.base_len && h->dev == now.dev &&
	       h->ino == now.ino && h->mtime_sec == now.mtime_sec &&
	       h->mtime_nsec == now.mtime_nsec && h->file_len == now.file_len;
}

struct load {
	int fd;
	const struct cow__snapfile_info *info;
	const struct cow__snapfile_entry *e;
};

static int load_fill(void *ctx, struct cow__page *const *copies)
{
	const struct load *l = ctx;
	unsigned char *dst[BATCH];
	uint64_t n = l->info->hdr.npages;

	for (uint64_t i = 0; i < n; i += BATCH) {
		size_t k = n - i < BATCH ? (size_t)(n - i) : BATCH;

		for (size_t j = 0; j < k; j++)
			dst[j] = copies[i + j]->data;
		COW_TRY(read_pages(l->fd, l->info, l->e, (size_t)i, k, dst));
	}
	return 0;
}

int cow__snapfile_load(struct cow_arena *a, const char *path,
		       struct cow_snap **out)
{
	struct cow__snapfile_info info;
	unsigned char *prefix = NULL;
	size_t *pages = NULL;
	struct load l;
	int fd, r;

	fd = cow__sys_open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	r = read_prefix(fd, &info, &prefix);
	if (r < 0)
		goto out;
	r = COW_EFOREIGN;
	if (!base_matches(a, &info.hdr))
		goto out;
	r = -ENOMEM;
	pages = cow__malloc((info.hdr.npages ? info.hdr.npages : 1) *
			    sizeof(*pages));
	if (!pages)
		goto out;
	l.fd = fd;
	l.info = &info;
	l.e = (const struct cow__snapfile_entry *)(prefix + COW__SNAPFILE_HDR);
	for (uint64_t i = 0; i < info.hdr.npages; i++)
		pages[i] = (size_t)l.e[i].page;
	r = cow__snap_build(a, (size_t)info.hdr.size, pages,
			    (size_t)info.hdr.npages, load_fill, &l, out);
out:
	cow__free(pages);
	cow__free(prefix);
	cow__sys_close(fd);
	return r;
}

/* The pages a save writes, ascending, and the copy of each (NULL: the
 * base's content, for COW_SNAP_FULL). */
struct save {
	struct cow_arena *a;
	size_t n, cap;
	size_t *page;
	const struct cow__page **copy;
};

static int save_add(void *ctx, size_t page, struct cow__page *copy,
		    struct cow__page *unused)
{
	struct save *sv = ctx;
	size_t cap = sv->cap;
	size_t *pg =
	    cow__array_grow(sv->page, &cap, sv->n + 1, sizeof(*pg), 256);
	const struct cow__page **cp;

	(void)unused;
	if (!pg)
		return -ENOMEM;
	sv->page = pg;
	cap = sv->cap;
	cp = cow__array_grow(sv->copy, &cap, sv->n + 1, sizeof(*cp), 256);
	if (!cp)
		return -ENOMEM;
	sv->copy = cp;
	sv->cap = cap;
	sv->page[sv->n] = page;
	sv->copy[sv->n++] = copy;
	return 0;
}

/* Reads the base's pages [first, first + n) into buf (zeros past its
 * end). */
static int read_base(struct cow_arena *a, size_t first, size_t n,
		     unsigned char *buf)
{
	size_t len = n * a->pgsz;
	ssize_t got = cow__sys_pread(a->fd, buf, len, (off_t)(first * a->pgsz));

	if (got < 0)
		return (int)got;
	memset(buf + got, 0, len - (size_t)got);
	return 0;
}

/*
 * Writes the pages of entries [i, i + k) at their place in fd, taking
 * each from its copy, or (NULL) from the base read into bounce, and fills
 * in their index entries.
 */
static int write_batch(struct save *sv, int fd, uint64_t doff, size_t i,
		       size_t k, unsigned char *bounce,
		       struct cow__snapfile_entry *e)
{
	struct cow_arena *a = sv->a;
	size_t pgsz = a->pgsz;
	struct iovec iov[BATCH];
	ssize_t w;

	for (size_t j = 0; j < k; j++) {
		size_t run = 1;

		if (sv->copy[i + j]) {
			iov[j].iov_base = sv->copy[i + j]->data;
			continue;
		}
		/* COW_SNAP_FULL: every page is listed, so a run of base
		 * pages in the list is a run in the arena too. */
		while (j + run < k && !sv->copy[i + j + run])
			run++;
		COW_TRY(read_base(a, sv->page[i + j], run, bounce + j * pgsz));
		for (size_t m = 0; m < run; m++)
			iov[j + m].iov_base = bounce + (j + m) * pgsz;
		j += run - 1;
	}
	for (size_t j = 0; j < k; j++) {
		iov[j].iov_len = pgsz;
		e[i + j].page = sv->page[i + j];
		e[i + j].sum = page_sum(iov[j].iov_base, pgsz, sv->page[i + j]);
	}
	w = cow__sys_pwritev(fd, iov, (int)k, (off_t)(doff + i * pgsz));
	return w < 0 ? (int)w : 0;
}

/* Writes the whole file into fd: the pages, then the header and index. */
static int write_file(struct save *sv, int fd, struct cow__snapfile_hdr *h)
{
	uint64_t doff = data_off(sv->n, sv->a->pgsz);
	unsigned char *prefix = cow__calloc(1, doff), *bounce = NULL;
	struct cow__snapfile_entry *e;
	ssize_t w;
	int r = 0;

	if (!prefix)
		return -ENOMEM;
	e = (struct cow__snapfile_entry *)(prefix + COW__SNAPFILE_HDR);
	if (h->flags & COW_SNAP_FULL) {
		bounce = cow__malloc((size_t)BATCH * sv->a->pgsz);
		if (!bounce)
			r = -ENOMEM;
	}
	for (size_t i = 0; r == 0 && i < sv->n; i += BATCH)
		r = write_batch(sv, fd, doff, i,
				sv->n - i < BATCH ? sv->n - i : BATCH, bounce,
				e);
	if (r == 0) {
		memcpy(prefix, h, sizeof(*h));
		h->sum = prefix_sum(prefix, doff);
		memcpy(prefix, h, sizeof(*h));
		w = cow__sys_pwrite(fd, prefix, doff, 0);
		r = w < 0 ? (int)w : 0;
	}
	cow__free(bounce);
	cow__free(prefix);
	return r;
}

/* "<name>.tmp-<16 hex digits>" into a new string. */
static int temp_name(const char *name, char **out)
{
	size_t n = strlen(name) + sizeof(".tmp-") + 16;
	uint64_t rnd;
	char *t;

	COW_TRY(cow__sys_getrandom(&rnd, sizeof(rnd)));
	t = cow__malloc(n);
	if (!t)
		return -ENOMEM;
	snprintf(t, n, "%s.tmp-%016llx", name, (unsigned long long)rnd);
	*out = t;
	return 0;
}

/* Opens the directory that holds path (O_PATH); *name: the last part. */
static int open_dir(const char *path, const char **name)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	char *dir;
	int fd;

	*name = slash ? slash + 1 : path;
	if (!**name)
		return -EISDIR; /* "dir/": no file name */
	if (!slash)
		return cow__sys_open(".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	dir = cow__malloc(n + 2);
	if (!dir)
		return -ENOMEM;
	memcpy(dir, path, n);
	if (n == 0)
		dir[n++] = '/';
	dir[n] = 0;
	fd = cow__sys_open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	cow__free(dir);
	return fd;
}

/* Writes the file complete under a temporary name in path's directory,
 * then renames it into place: path holds the old file or the new one,
 * never a part. The directory is held open throughout, so that the
 * rename and its sync happen where the file was written. */
static int save_atomic(struct save *sv, const char *path,
		       struct cow__snapfile_hdr *h)
{
	const char *name;
	char *tmp = NULL;
	int dfd, fd, r;

	dfd = open_dir(path, &name);
	if (dfd < 0)
		return dfd;
	r = temp_name(name, &tmp);
	if (r < 0)
		goto out;
	fd = cow__sys_openat(
	    dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0644);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	r = write_file(sv, fd, h);
	if (r == 0)
		r = cow__sys_fsync(fd, 1);
	cow__sys_close(fd);
	if (r == 0)
		r = cow__sys_renameat(dfd, tmp, name);
	if (r < 0)
		cow__sys_unlinkat(dfd, tmp);
	else
		r = cow__sys_fsync_dir(dfd);
out:
	cow__free(tmp);
	cow__sys_close(dfd);
	return r;
}

int cow__snapfile_save(const struct cow_snap *s, const char *path,
		       unsigned flags)
{
	struct cow__snapfile_hdr h;
	struct save sv = {0};
	struct cow_arena *a = cow__snap_owner(s);
	size_t npages;
	int r;

	memset(&h, 0, sizeof(h));
	base_ident(a, &h);
	if (!(flags & COW_SNAP_FULL) && h.base_kind == COW__SNAPBASE_MEMORY)
		return -EINVAL; /* the base exists only in this process */
	sv.a = a;
	npages = cow__snap_size(s) / a->pgsz;
	if (flags & COW_SNAP_FULL) {
		/* Every page: a copy where s has one, else the base. */
		const struct cow__ptrie *t = cow__snap_trie(a);

		for (size_t p = 0; p < npages; p++) {
			r = save_add(&sv, p,
				     cow__ptrie_get(t, cow__snap_map(s), p),
				     NULL);
			if (r < 0)
				goto out;
		}
	} else {
		r = cow__ptrie_each(cow__snap_trie(a), cow__snap_map(s), 0,
				    npages, save_add, &sv);
		if (r < 0)
			goto out;
	}
	memcpy(h.magic, COW__SNAPFILE_MAGIC, sizeof(h.magic));
	h.version = COW__SNAPFILE_VERSION;
	h.page_size = (uint32_t)a->pgsz;
	h.flags = flags;
	h.size = cow__snap_size(s);
	h.npages = sv.n;
	r = save_atomic(&sv, path, &h);
out:
	cow__free(sv.page);
	cow__free(sv.copy);
	return r;
}
