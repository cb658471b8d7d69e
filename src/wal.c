// SPDX-License-Identifier: MIT
/*
 * The write-ahead log: format, checksums, creation, scanning, replay.
 *
 * Recovery replays the complete, checksum-valid transactions in order from
 * the header's head on and stops at the first record that is torn, zeroed,
 * invalid or of an earlier lap of the ring (a lower sequence number): a
 * crash can leave the tail of the last (unsynced) write in any state. What
 * must not happen is stopping early at a record that was durable: that is
 * corruption in the middle, and replaying only the transactions before it
 * would mix commits. Each commit record carries "synced_end", the log
 * position up to which the log was durable when it was written; so after
 * the stop, the whole ring is searched for a valid commit record whose
 * synced_end lies past the stop. If one exists, the record at the stop was
 * durable once and is now damaged: COW_ECORRUPT, nothing is replayed. (A
 * record of an earlier lap says at most its own position, which lies
 * before the head: the ring's space before the head is reused only once
 * the header naming that head is durable.)
 *
 * The header is two slots, each one sector with its own checksum and a
 * generation; a checkpoint writes the one not in use. A slot torn by a
 * crash fails its checksum and the other one, older, is used: its head's
 * records are intact, since nothing is written before a head until the
 * header naming it is durable.
 *
 * A log is created complete under a temporary name and renamed into place
 * (then the directory is synced), so a log file either does not exist or
 * has a valid header. Both names are looked up in the base file's
 * directory through a descriptor opened once at open (the *at calls), so
 * a chdir() of the process never moves the log; neither is ever followed
 * through a symlink, and anything but a regular file there is refused
 * (COW_ELOGTYPE) rather than read, waited on or written through.
 *
 * A header with the wrong identity (the base file's device and inode) or
 * page size is COW_EFOREIGN when it holds transactions; an empty one is
 * simply replaced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* xxHash compiled in (header-only use, from libxxhash-dev): the library
 * links with nothing beyond liburing and pthread. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "hash.h"
#include "internal.h"
#include "wal.h"

_Static_assert(sizeof(struct cow__wal_hdr) == 96, "header layout");
_Static_assert(sizeof(struct cow__wal_hdr1) == 64, "version-1 header");
_Static_assert(sizeof(struct cow__wal_hdr) <= COW__WAL_SLOT, "one slot");
_Static_assert(sizeof(struct cow__wal_frame) == 64, "frame layout");
_Static_assert(sizeof(struct cow__wal_commit) == 64, "commit layout");

#define SCAN_CHUNK (1u << 20)

void cow__wal_frame_seal(struct cow__wal_frame *f, uint64_t salt,
			 const void *page, size_t pgsz)
{
	uint64_t h =
	    XXH3_64bits_withSeed(f, offsetof(struct cow__wal_frame, sum), salt);

	f->sum = cow__hash(page, pgsz, h);
}

void cow__wal_commit_seal(struct cow__wal_commit *c, uint64_t salt)
{
	c->sum = XXH3_64bits_withSeed(c, offsetof(struct cow__wal_commit, sum),
				      salt);
}

uint64_t cow__wal_chain_start(uint64_t salt, uint64_t seq)
{
	return XXH3_64bits_withSeed(&seq, sizeof(seq), salt);
}

uint64_t cow__wal_chain(uint64_t prev, uint64_t frame_sum)
{
	return XXH3_64bits_withSeed(&frame_sum, sizeof(frame_sum), prev);
}

static uint64_t hdr_sum(const struct cow__wal_hdr *h)
{
	return XXH3_64bits(h, offsetof(struct cow__wal_hdr, sum));
}

static uint64_t hdr1_sum(const struct cow__wal_hdr1 *h)
{
	return XXH3_64bits(h, offsetof(struct cow__wal_hdr1, sum));
}

/* The head of a log as read from its header, either version: where
 * parsing starts and how positions map to the file. */
struct head {
	uint32_t version, page_size;
	uint64_t salt, dev, ino, gen;
	uint64_t seq, pos; /* the first transaction */
	uint64_t ring;	   /* 0: linear, a position is a file offset */
};

#define RING_MAX ((uint64_t)1 << 48)
#define POS_MAX ((uint64_t)1 << 62)

/* "<path>.cowlog" into a new string; -ENOMEM. */
static int cow__wal_path(const char *base_path, char **out)
{
	size_t n = strlen(base_path);
	char *p = cow__malloc(n + sizeof(".cowlog"));

	if (!p)
		return -ENOMEM;
	memcpy(p, base_path, n);
	memcpy(p + n, ".cowlog", sizeof(".cowlog"));
	*out = p;
	return 0;
}

/* Where the log's bytes come from: a file or a buffer (the fuzz target). */
struct src {
	int fd;
	const unsigned char *buf;
	off_t size;
};

static int src_read(const struct src *s, off_t off, void *dst, size_t len)
{
	ssize_t r;

	if (off < 0 || off > s->size || (off_t)len > s->size - off)
		return 0; /* past the end: not there */
	if (s->buf) {
		memcpy(dst, s->buf + off, len);
		return 1;
	}
	r = cow__sys_pread(s->fd, dst, len, off);
	if (r < 0)
		return (int)r;
	return (size_t)r == len;
}

/*
 * The first offset at or after off that may hold data (not a hole): holes
 * read as zeros, which never make a record, so a sparse log's scan reads
 * only what was written (s->size when nothing follows). Rounded down to a
 * record boundary.
 */
static off_t src_data(const struct src *s, off_t off)
{
	off_t d;

	if (s->buf)
		return off;
	d = cow__sys_lseek(s->fd, off, SEEK_DATA);
	if (d == -ENXIO)
		return s->size; /* only a hole from off on */
	if (d == -EINVAL)
		return off; /* no SEEK_DATA here: all data */
	if (d < 0)
		return d;
	d &= ~(off_t)(COW__WAL_ALIGN - 1);
	return d > off ? d : off;
}

static int is_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i])
			return 0;
	return 1;
}

/*
 * Reads and checks the header slot at off. 1: valid, 0: absent (too short
 * or all zeros), or COW_ECORRUPT / COW_EVERSION / a negative errno.
 */
static int read_slot(const struct src *s, off_t off, struct head *out)
{
	union {
		struct cow__wal_hdr h;
		struct cow__wal_hdr1 h1;
	} u;
	int r = src_read(s, off, &u, sizeof(u.h));

	if (r == 0 && off == 0) /* a version-1 log may be this short */
		r = src_read(s, off, &u, sizeof(u.h1));
	if (r <= 0)
		return r;
	if (is_zero(&u, sizeof(u.h1)))
		return 0;
	if (memcmp(u.h.magic, COW__WAL_MAGIC, 8))
		return COW_ECORRUPT;
	if (u.h.version == 1 && off == 0) {
		if (u.h1.sum != hdr1_sum(&u.h1))
			return COW_ECORRUPT;
		*out = (struct head){
		    1, u.h1.page_size, u.h1.salt,     u.h1.dev, u.h1.ino,
		    0, u.h1.start_seq, COW__WAL_HDR1, 0};
		return 1;
	}
	if (u.h.version != COW__WAL_VERSION)
		return COW_EVERSION;
	if (r == 0 || u.h.sum != hdr_sum(&u.h))
		return COW_ECORRUPT;
	if (u.h.ring < COW__WAL_RING_MIN || u.h.ring > RING_MAX ||
	    u.h.ring % COW__WAL_ALIGN || u.h.head_pos > POS_MAX ||
	    u.h.head_pos % COW__WAL_ALIGN)
		return COW_ECORRUPT;
	*out = (struct head){COW__WAL_VERSION, u.h.page_size, u.h.salt,
			     u.h.dev,	       u.h.ino,	      u.h.gen,
			     u.h.head_seq,     u.h.head_pos,  u.h.ring};
	return 1;
}

/*
 * Reads and checks the header: the valid slot with the higher generation
 * (a version-1 log has one). 1: valid, 0: no log (too short or all
 * zeros), or a negative errno / COW_E*.
 */
static int read_header(const struct src *s, size_t pgsz,
		       const struct stat *base, struct head *h)
{
	struct head h1;
	int r0 = read_slot(s, 0, h), r1;

	if (r0 == 1 && h->version == 1)
		goto check;
	r1 = read_slot(s, COW__WAL_SLOT, &h1);
	if (r1 == 1 && h1.version == 1)
		r1 = COW_ECORRUPT; /* only slot 0 may say version 1 */
	if (r1 == 1 && (r0 != 1 || h1.gen > h->gen)) {
		*h = h1;
		r0 = 1;
	}
	if (r0 != 1)
		return r0 < 0 ? r0 : r1;
check:
	if (h->page_size != pgsz)
		return COW_EFOREIGN;
	if (base && (h->dev != (uint64_t)base->st_dev ||
		     h->ino != (uint64_t)base->st_ino))
		return COW_EFOREIGN;
	return 1;
}

/* Reads len bytes at log position pos (across the ring's end). */
static int log_read(const struct src *s, const struct head *h, uint64_t pos,
		    void *dst, size_t len)
{
	uint64_t o, first;
	int r;

	if (!h->ring)
		return pos > POS_MAX ? 0 : src_read(s, (off_t)pos, dst, len);
	o = pos % h->ring;
	first = h->ring - o;
	if (len <= first)
		return src_read(s, COW__WAL_AREA + (off_t)o, dst, len);
	r = src_read(s, COW__WAL_AREA + (off_t)o, dst, (size_t)first);
	if (r <= 0)
		return r;
	return src_read(s, COW__WAL_AREA, (char *)dst + first,
			len - (size_t)first);
}

/* Does [pos, pos + len) lie inside one lap from the head? */
static int in_lap(const struct head *h, uint64_t pos, size_t len)
{
	return !h->ring || pos - h->pos + len <= h->ring;
}

/* Reads a frame's header and page at off; 1 if it is valid for seq. */
static int read_frame(const struct src *s, uint64_t pos, const struct head *h,
		      uint64_t seq, struct cow__wal_frame *f, void *page)
{
	uint64_t sum;
	int r = in_lap(h, pos, sizeof(*f) + h->page_size)
		    ? log_read(s, h, pos, f, sizeof(*f))
		    : 0;

	if (r <= 0)
		return r;
	if (f->magic != COW__WAL_FRAME_MAGIC || f->seq != seq ||
	    f->page_size != h->page_size)
		return 0;
	r = log_read(s, h, pos + sizeof(*f), page, h->page_size);
	if (r <= 0)
		return r;
	sum = f->sum;
	cow__wal_frame_seal(f, h->salt, page, h->page_size);
	return f->sum == sum;
}

static int commit_valid(const struct cow__wal_commit *c, uint64_t salt)
{
	struct cow__wal_commit t = *c;

	if (c->magic != COW__WAL_COMMIT_MAGIC)
		return 0;
	cow__wal_commit_seal(&t, salt);
	return t.sum == c->sum;
}

/*
 * Is there a valid commit record past stop that says the log was durable
 * beyond stop? Then the record at stop is damaged, not torn.
 */
static int durable_past(const struct src *s, const struct head *h,
			uint64_t stop)
{
	unsigned char *buf = cow__malloc(SCAN_CHUNK);
	/* linear: what follows the stop; a ring: all of it */
	off_t off =
	    h->ring ? (off_t)COW__WAL_AREA : (off_t)stop + COW__WAL_ALIGN;
	int found = 0;

	if (!buf)
		return -ENOMEM;
	while (!found &&
	       off + (off_t)sizeof(struct cow__wal_commit) <= s->size) {
		size_t n = SCAN_CHUNK;
		int r;

		off = src_data(s, off);
		if (off < 0) {
			cow__free(buf);
			return (int)off;
		}
		if (off + (off_t)sizeof(struct cow__wal_commit) > s->size)
			break;
		if ((off_t)n > s->size - off)
			n = (size_t)(s->size - off);
		n -= n % COW__WAL_ALIGN;
		r = src_read(s, off, buf, n);
		if (r < 0) {
			cow__free(buf);
			return r;
		}
		for (size_t i = 0; r > 0 && i < n; i += COW__WAL_ALIGN) {
			struct cow__wal_commit c;

			memcpy(&c, buf + i, sizeof(c));
			if (commit_valid(&c, h->salt) && c.synced_end > stop) {
				found = 1;
				break;
			}
		}
		off += (off_t)n;
	}
	cow__free(buf);
	return found;
}

/*
 * One pass over the records. With fn, replays the frames of complete
 * transactions up to limit (found by a first pass).
 */
static int parse(const struct src *s, const struct head *h,
		 struct cow__wal_info *info, uint64_t limit,
		 cow__wal_frame_fn fn, void *ctx)
{
	size_t pgsz = h->page_size;
	uint64_t off = h->pos, fsz = sizeof(struct cow__wal_frame) + pgsz;
	uint64_t seq = h->seq, nframes = 0, chain;
	uint64_t tx_start = off;
	void *page = cow__malloc(pgsz);
	int r = 0;

	if (!page)
		return -ENOMEM;
	chain = cow__wal_chain_start(h->salt, seq);
	info->end = off;
	while (!limit || off < limit) {
		struct cow__wal_frame f;
		struct cow__wal_commit c;

		r = in_lap(h, off, sizeof(c))
			? log_read(s, h, off, &c, sizeof(c))
			: 0;
		if (r <= 0)
			break;
		if (c.magic == COW__WAL_COMMIT_MAGIC) {
			if (!commit_valid(&c, h->salt) || c.seq != seq ||
			    c.nframes != nframes || c.frames_sum != chain ||
			    !c.size || c.size % pgsz || c.file_len > c.size)
				break;
			info->ntx++;
			info->pages += nframes;
			info->last_seq = seq;
			info->size = c.size;
			info->file_len = c.file_len;
			off += sizeof(c);
			info->end = off;
			if (fn) {
				/* Second pass: replay this transaction. */
				uint64_t p = tx_start;

				for (uint64_t i = 0; i < nframes; i++) {
					r = read_frame(s, p, h, seq, &f, page);
					if (r <= 0) {
						r = r < 0 ? r : COW_ECORRUPT;
						goto out;
					}
					r = fn(ctx, f.page, page, c.file_len);
					if (r < 0)
						goto out;
					p += fsz;
				}
			}
			seq++;
			nframes = 0;
			chain = cow__wal_chain_start(h->salt, seq);
			tx_start = off;
			continue;
		}
		r = read_frame(s, off, h, seq, &f, page);
		if (r <= 0)
			break;
		if (f.page > (UINT64_MAX >> 16)) /* no such arena */
			break;
		chain = cow__wal_chain(chain, f.sum);
		nframes++;
		off += fsz;
	}
	if (r >= 0)
		r = 0;
	info->stop = off;
out:
	cow__free(page);
	return r;
}

static int scan_src(const struct src *s, size_t pgsz, const struct stat *base,
		    struct cow__wal_info *info, cow__wal_frame_fn fn, void *ctx)
{
	struct head h;
	int r;

	memset(info, 0, sizeof(*info));
	info->file_size = s->size;
	r = read_header(s, pgsz, NULL, &h);
	if (r <= 0)
		return r;
	info->present = 1;
	info->version = h.version;
	info->salt = h.salt;
	info->start_seq = h.seq;
	info->ring = h.ring;
	info->head = h.pos;
	info->last_seq = h.seq - 1;
	r = parse(s, &h, info, 0, NULL, NULL);
	if (r < 0)
		return r;
	r = durable_past(s, &h, info->stop);
	if (r < 0)
		return r;
	if (r > 0)
		return COW_ECORRUPT;
	/* The identity only matters when there is something to replay: an
	 * empty log of a copied file is just replaced. */
	if (info->ntx && base) {
		r = read_header(s, pgsz, base, &h);
		if (r < 0)
			return r;
	}
	if (fn && info->ntx) {
		struct cow__wal_info again = {0};

		r = parse(s, &h, &again, info->end, fn, ctx);
		if (r < 0)
			return r;
		if (again.ntx != info->ntx)
			return COW_ECORRUPT; /* changed under us */
	}
	return 0;
}

int cow__wal_parse_buf(const void *buf, size_t len, size_t pgsz,
		       struct cow__wal_info *info)
{
	struct src s = {-1, buf, (off_t)len};

	if (!pgsz || pgsz > (1u << 16) || (pgsz & (pgsz - 1)))
		return -EINVAL;
	return scan_src(&s, pgsz, NULL, info, NULL, NULL);
}

int cow__wal_scan(int fd, size_t pgsz, const struct stat *base,
		  struct cow__wal_info *info, cow__wal_frame_fn fn, void *ctx)
{
	struct stat st;
	struct src s = {fd, NULL, 0};

	COW_TRY(cow__sys_fstat(fd, &st));
	s.size = st.st_size;
	return scan_src(&s, pgsz, base, info, fn, ctx);
}

struct replay {
	int fd;
	size_t pgsz;
};

/* Writes one page image into the base, never past the transaction's file
 * length (the image's bytes past it are zeros anyway). */
static int replay_frame(void *ctx, uint64_t page, const void *data,
			uint64_t file_len)
{
	struct replay *rp = ctx;
	uint64_t off = page * rp->pgsz;
	size_t n = rp->pgsz;
	ssize_t r;

	if (off >= file_len)
		return 0;
	if (file_len - off < n)
		n = (size_t)(file_len - off);
	r = cow__sys_pwrite(rp->fd, data, n, (off_t)off);
	return r < 0 ? (int)r : 0;
}

/* Fills a header slot for w with the given head, generation and ring. */
static void fill_header(const struct cow__wal *w, uint64_t gen, uint64_t seq,
			uint64_t pos, uint64_t ring, struct cow__wal_hdr *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, COW__WAL_MAGIC, 8);
	h->version = COW__WAL_VERSION;
	h->page_size = (uint32_t)w->pgsz;
	h->salt = w->salt;
	h->dev = w->dev;
	h->ino = w->ino;
	h->gen = gen;
	h->head_seq = seq;
	h->head_pos = pos;
	h->ring = ring;
	h->sum = hdr_sum(h);
}

off_t cow__wal_next_header(const struct cow__wal *w, uint64_t seq, uint64_t pos,
			   uint64_t ring, struct cow__wal_hdr *h)
{
	/* odd generations in slot 0 (1 at the creation), even in slot 1:
	 * never the slot of the header in use */
	fill_header(w, w->gen + 1, seq, pos, ring, h);
	return (off_t)((w->gen & 1) * COW__WAL_SLOT);
}

void cow__wal_head_moved(struct cow__wal *w, const struct cow__wal_hdr *h)
{
	w->gen = h->gen;
	w->head_seq = h->head_seq;
	w->head_pos = h->head_pos;
	/* Written only when it changes (the log is then empty, no append
	 * in flight): an append running without the commit's lock reads
	 * it. */
	if (w->ring != h->ring)
		w->ring = h->ring;
}

off_t cow__wal_off(const struct cow__wal *w, uint64_t pos)
{
	return (off_t)(COW__WAL_AREA + pos % w->ring);
}

uint64_t cow__wal_room(const struct cow__wal *w)
{
	return w->ring - (w->end - w->head_pos);
}

/*
 * Opens the directory of base_path (as it is now: once, at open) and
 * makes the log's name in it.
 */
static int dir_open(struct cow__wal *w, const char *base_path)
{
	const char *slash = strrchr(base_path, '/');
	const char *file = slash ? slash + 1 : base_path;
	size_t n = strlen(file);
	const char *dir_name = NULL;
	char *dir = NULL;
	int fd;

	w->name = cow__malloc(n + sizeof(".cowlog"));
	if (!w->name)
		return -ENOMEM;
	memcpy(w->name, file, n);
	memcpy(w->name + n, ".cowlog", sizeof(".cowlog"));
	if (slash && slash > base_path) {
		dir = cow__malloc((size_t)(slash - base_path) + 1);
		if (!dir) {
			fd = -ENOMEM;
			goto out;
		}
		memcpy(dir, base_path, (size_t)(slash - base_path));
		dir[slash - base_path] = 0;
	}
	if (!dir)
		dir_name = slash ? "/" : ".";
	fd = cow__sys_openat(AT_FDCWD, dir ? dir : dir_name,
			     O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	cow__free(dir);
out:
	if (fd < 0) {
		cow__free(w->name);
		w->name = NULL;
		return fd;
	}
	w->dirfd = fd;
	return 0;
}

int cow__wal_open_log(int dirfd, const char *name, int readonly)
{
	struct stat st;
	int fd, r;

	/* O_NONBLOCK: a FIFO opens at once (to be refused below) instead of
	 * waiting for a writer; O_NOFOLLOW: a symlink fails (ELOOP). */
	fd = cow__sys_openat(dirfd, name,
			     (readonly ? O_RDONLY : O_RDWR) | O_NONBLOCK |
				 O_NOFOLLOW | O_NOCTTY | O_CLOEXEC,
			     0);
	if (fd == -ENOENT)
		return fd;
	if (fd < 0) {
		/* A symlink, a directory, a socket or a device without a
		 * driver fails to open: say what the name is. */
		r = cow__sys_fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW);
		return r == 0 && !S_ISREG(st.st_mode) ? COW_ELOGTYPE : fd;
	}
	r = cow__sys_fstat(fd, &st);
	if (r == 0 && !S_ISREG(st.st_mode))
		r = COW_ELOGTYPE;
	/* Back to blocking: io_uring would fail a write on a non-blocking
	 * file with EAGAIN instead of waiting. */
	if (r == 0) {
		r = cow__sys_fcntl(fd, F_GETFL, 0);
		if (r >= 0)
			r = cow__sys_fcntl(fd, F_SETFL, r & ~O_NONBLOCK);
	}
	if (r < 0) {
		cow__sys_close(fd);
		return r;
	}
	return fd;
}

/* "<name>.tmp" into a new string, or NULL (no memory). */
static char *tmp_name(const char *name)
{
	size_t n = strlen(name);
	char *tmp = cow__malloc(n + 5);

	if (tmp) {
		memcpy(tmp, name, n);
		memcpy(tmp + n, ".tmp", 5);
	}
	return tmp;
}

/*
 * Takes the log fd, whose header reads as empty, out of its name. A log
 * that grew past the first MiB a new one is made with is renamed to the
 * temporary name, where the next log's creation finds it and writes into
 * its blocks instead of new ones (see cow__wal_create); cut to SPARE_MAX
 * first. Any other log is unlinked: a log that small costs a new one
 * nothing more (its first MiB is written at creation), and a file left
 * beside the base is one more that its owner must remove with it. So is
 * a log where the temporary name holds anything but a regular file (never
 * replaced), or where the rename fails. Best effort, as the unlink it
 * replaces: a log left under its name reads as empty.
 */
#define PREALLOC_MIN ((off_t)1 << 20)
#define SPARE_MAX ((off_t)(COW__WAL_AREA + ((uint64_t)32 << 20)))

static void keep_spare(const struct cow__wal *w, int fd)
{
	char *tmp = tmp_name(w->name);
	struct stat st, at;
	int keep, r;

	keep = tmp && cow__sys_fstat(fd, &st) == 0 && st.st_size > PREALLOC_MIN;
	if (keep) {
		r = cow__sys_fstatat(w->dirfd, tmp, &at, AT_SYMLINK_NOFOLLOW);
		keep = r == -ENOENT || (r == 0 && S_ISREG(at.st_mode));
	}
	if (keep && st.st_size > SPARE_MAX)
		keep = cow__sys_ftruncate(fd, SPARE_MAX) == 0;
	if (!keep || cow__sys_renameat(w->dirfd, w->name, tmp) < 0)
		cow__sys_unlinkat(w->dirfd, w->name);
	cow__free(tmp);
}

/*
 * Retires the log of a writable open once everything in it is in the
 * base (replayed and synced): it must not outlive this open, or a change
 * made to the file while no arena holds it (a backup copied over it)
 * would be overwritten by the same transactions at the next open, and
 * read-only opens would go on refusing the file. The header is zeroed and
 * synced first (both slots; of a version-1 log its header and the start
 * of its first record), so that a lost unlink or rename leaves a log
 * that reads as empty; taking it out of its name (keep_spare: unlinked,
 * or kept as the next log's spare) is then best effort. A log without
 * transactions (all checkpointed) has nothing to replay: it is only taken
 * out of its name (a spare's header is rewritten before it is a log).
 * COW_NOSYNC does not apply here: the transactions were committed by an
 * earlier open, with the durability it promised.
 */
static int retire(int fd, const struct cow__wal *w, int replayed)
{
	static const char zeros[2 * COW__WAL_SLOT];

	if (replayed) {
		ssize_t n = cow__sys_pwrite(fd, zeros, sizeof(zeros), 0);

		if (n < 0)
			return (int)n;
		COW_TRY(cow__sys_fsync(fd, 1));
	}
	keep_spare(w, fd);
	return 0;
}

int cow__wal_open(struct cow__wal *w, const char *base_path, int basefd,
		  size_t pgsz, int readonly, struct cow__wal_info *info)
{
	struct stat st;
	struct replay rp = {basefd, pgsz};
	int fd, r;

	memset(info, 0, sizeof(*info));
	w->fd = -1;
	w->dirfd = -1;
	w->name = NULL;
	w->pgsz = pgsz;
	COW_TRY(cow__sys_fstat(basefd, &st));
	w->dev = (uint64_t)st.st_dev;
	w->ino = (uint64_t)st.st_ino;
	COW_TRY(dir_open(w, base_path));
	fd = cow__wal_open_log(w->dirfd, w->name, readonly);
	if (fd == -ENOENT) {
		r = 0;
		goto out;
	}
	if (fd < 0) {
		r = fd;
		goto err;
	}
	r = cow__wal_scan(fd, pgsz, &st, info, NULL, NULL);
	if (r < 0)
		goto err_fd;
	if (info->ntx && readonly) {
		r = COW_ERECOVER;
		goto err_fd;
	}
	if (info->ntx && !readonly) {
		/* Extend first (the base may have lost a growth that the
		 * commit recorded), then replay, then make it durable. */
		if ((off_t)info->file_len > st.st_size) {
			r = cow__sys_ftruncate(basefd, (off_t)info->file_len);
			if (r < 0)
				goto err_fd;
		}
		r = cow__wal_scan(fd, pgsz, &st, info, replay_frame, &rp);
		if (r < 0)
			goto err_fd;
		r = cow__sys_fsync(basefd, 1);
		if (r < 0)
			goto err_fd;
	}
	if (!readonly) {
		r = retire(fd, w, info->ntx != 0);
		if (r < 0)
			goto err_fd;
	}
	cow__sys_close(fd);
	r = (int)info->ntx;
out:
	if (readonly) {
		/* never written: the directory is not needed any more */
		cow__sys_close(w->dirfd);
		w->dirfd = -1;
	}
	return r;

err_fd:
	cow__sys_close(fd);
err:
	cow__sys_close(w->dirfd);
	w->dirfd = -1;
	cow__free(w->name);
	w->name = NULL;
	return r;
}

/* Writes zeros over [from, to) of fd. */
static int write_zeros(int fd, off_t from, off_t to)
{
	static const char zeros[65536];
	struct iovec iov[16];

	while (from < to) {
		int n = 0;
		size_t total = 0;

		while (n < 16 && from + (off_t)total < to) {
			size_t l = sizeof(zeros);

			if ((off_t)l > to - from - (off_t)total)
				l = (size_t)(to - from - (off_t)total);
			iov[n].iov_base = (void *)zeros;
			iov[n].iov_len = l;
			total += l;
			n++;
		}
		ssize_t r = cow__sys_pwritev(fd, iov, n, from);

		if (r < 0)
			return (int)r;
		from += (off_t)total;
	}
	return 0;
}

/*
 * Grows fd from its length from to to, reading zeros: allocated with
 * fallocate, which writes nothing the next fdatasync must flush but the
 * new length and extents, or, where the file system has no fallocate
 * (-EOPNOTSUPP), by writing zeros. The caller checked RLIMIT_FSIZE.
 */
static int grow_zeros(int fd, off_t from, off_t to)
{
	int r = cow__sys_fallocate(fd, from, to - from);

	if (r == -EOPNOTSUPP)
		r = write_zeros(fd, from, to);
	return r;
}

/*
 * The first lap allocates the ring as the tail reaches it (1 MiB, then
 * doubling); from the second lap on every append overwrites blocks
 * already written, so its fdatasync flushes data and no extent change.
 */
off_t cow__wal_span_end(const struct cow__wal *w, uint64_t pos, size_t len)
{
	uint64_t o = pos % w->ring;

	return (off_t)(COW__WAL_AREA +
		       (o + len >= w->ring ? w->ring : o + len));
}

int cow__wal_reserve(struct cow__wal *w, size_t len)
{
	off_t full = (off_t)(COW__WAL_AREA + w->ring), to;
	off_t want = cow__wal_span_end(w, w->end, len);

	if (want <= w->alloc)
		return 0;
	to = w->alloc * 2 > want ? w->alloc * 2 : want;
	to = (to + PREALLOC_MIN - 1) & ~(PREALLOC_MIN - 1);
	if (to > full)
		to = full;
	COW_TRY(cow__sys_fsize_check(to));
	COW_TRY(grow_zeros(w->fd, w->alloc, to));
	w->alloc = to;
	return 0;
}

/*
 * Opens the temporary log, never through a symlink: created exclusively,
 * or the regular file already there reused, *len its length. That is the
 * spare a clean close or a retired log left (keep_spare), or a log a crash
 * left between its creation and the rename (the file's write lock is
 * ours: no other writer makes one); either way the caller writes a new
 * header over it, with a new salt, so that nothing it held validates.
 * Anything else is not ours to remove or follow: COW_ELOGTYPE.
 */
static int tmp_open(int dirfd, const char *tmp, off_t *len)
{
	int flags = O_RDWR | O_NOFOLLOW | O_CLOEXEC;
	struct stat st;
	int fd = cow__sys_openat(dirfd, tmp, flags | O_CREAT | O_EXCL, 0600), r;

	*len = 0;
	if (fd != -EEXIST)
		return fd;
	r = cow__sys_fstatat(dirfd, tmp, &st, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return r;
	if (!S_ISREG(st.st_mode))
		return COW_ELOGTYPE;
	fd = cow__sys_openat(dirfd, tmp, flags, 0);
	if (fd < 0)
		return fd;
	r = cow__sys_fstat(fd, &st);
	if (r == 0 && !S_ISREG(st.st_mode))
		r = COW_ELOGTYPE;
	if (r < 0) {
		cow__sys_close(fd);
		return r;
	}
	*len = st.st_size;
	return fd;
}

int cow__wal_create(struct cow__wal *w, uint64_t start_seq, uint64_t ring,
		    int nosync)
{
	char *tmp;
	struct cow__wal_hdr h;
	char area[COW__WAL_AREA];
	off_t alloc, have, full;
	int fd, r;

	ring = (ring + COW__WAL_ALIGN - 1) & ~(uint64_t)(COW__WAL_ALIGN - 1);
	if (ring < COW__WAL_RING_MIN)
		ring = COW__WAL_RING_MIN;
	if (ring > RING_MAX)
		return -EFBIG;
	full = (off_t)(COW__WAL_AREA + ring);
	alloc = full > PREALLOC_MIN ? PREALLOC_MIN : full;
	/* The preallocation is the first write past RLIMIT_FSIZE: check
	 * before anything is created. */
	COW_TRY(cow__sys_fsize_check(alloc));
	tmp = tmp_name(w->name);
	if (!tmp)
		return -ENOMEM;
	r = cow__sys_getrandom(&w->salt, sizeof(w->salt));
	if (r < 0)
		goto out;
	fill_header(w, 1, start_seq, 0, ring, &h);
	fd = tmp_open(w->dirfd, tmp, &have);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	/* slot 0 the header, slot 1 zeros (generation 0: not in use) */
	memset(area, 0, sizeof(area));
	memcpy(area, &h, sizeof(h));
	r = (int)cow__sys_pwrite(fd, area, sizeof(area), 0);
	/* The first MiB at least is written, not fallocate'd: an append
	 * into unwritten blocks makes its fdatasync convert the extent and
	 * write the inode too (on ext4), which cost a commit of 16 pages up
	 * to a third more than the same append into written blocks
	 * (measured); the sync below flushes the zeros once, at creation.
	 * A spare's blocks were written by the log it was (the first lap
	 * of a log of 256-page commits cost 1.5x the later laps): the ring
	 * is allocated as far as the spare reaches, up to its end. */
	if (r >= 0 && have > full)
		r = cow__sys_ftruncate(fd, full);
	if (r >= 0 && have < alloc)
		r = write_zeros(fd, have > COW__WAL_AREA ? have : COW__WAL_AREA,
				alloc);
	else if (r >= 0)
		alloc = have > full ? full : have;
	if (r >= 0 && !nosync)
		r = cow__sys_fsync(fd, 0);
	if (r >= 0)
		r = cow__sys_renameat(w->dirfd, tmp, w->name);
	if (r >= 0 && !nosync)
		r = cow__sys_fsync_dir(w->dirfd);
	if (r < 0) {
		cow__sys_close(fd);
		cow__sys_unlinkat(w->dirfd, tmp);
		goto out;
	}
	w->fd = fd;
	cow__wal_head_moved(w, &h);
	w->end = 0;
	w->alloc = alloc;
	w->synced = 0;
	r = 0;
out:
	cow__free(tmp);
	return r;
}

void cow__wal_unlink(const char *base_path)
{
	char *p;

	if (cow__wal_path(base_path, &p) == 0) {
		cow__sys_unlink(p);
		cow__free(p);
	}
}

void cow__wal_close(struct cow__wal *w, int clean)
{
	if (w->fd >= 0 && clean) {
		/* Everything is in the base: zero the header first, so that
		 * if the rename is lost the log reads as empty; its blocks
		 * stay for the next open's log. */
		static const char zeros[2 * COW__WAL_SLOT];

		(void)cow__sys_pwrite(w->fd, zeros, sizeof(zeros), 0);
		keep_spare(w, w->fd);
	}
	cow__sys_close(w->fd);
	w->fd = -1;
	cow__sys_close(w->dirfd);
	w->dirfd = -1;
	cow__free(w->name);
	w->name = NULL;
}
