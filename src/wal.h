/* SPDX-License-Identifier: MIT */
/*
 * The write-ahead log beside a base file ("<file>.cowlog"): its on-disk
 * format and the functions that create, append to, scan, replay and
 * checkpoint it. Everything is little-endian native layout (x86-64,
 * arm64).
 *
 * Layout (version 2): two 512-byte header slots (each one sector, with its
 * own checksum and a generation: the valid one with the higher generation
 * is the header), zeros up to COW__WAL_AREA, then the ring: records are
 * addressed by their log position (bytes appended since the log was
 * created) and one at position p lies at COW__WAL_AREA + p % ring. Each
 * record is a multiple of 64 bytes: frames (a 64-byte header followed by
 * one page image) and commit records (64 bytes). A transaction is its
 * frames followed by its commit record. Every checksum is XXH3-64 seeded
 * with the log's random salt, so records of another log never validate;
 * records of an earlier lap carry a lower sequence number. The header
 * names the head: the position and sequence number of the oldest
 * transaction not yet checkpointed.
 *
 * Version 1 (linear: one 512-byte header, records from offset 512 on,
 * positions are file offsets) is still read, to replay a log an older
 * library left.
 */
#ifndef COW_WAL_H
#define COW_WAL_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define COW__WAL_MAGIC "cowlog\r\n"
#define COW__WAL_VERSION 2u
#define COW__WAL_SLOT 512u	 /* one header slot: one sector */
#define COW__WAL_AREA 4096u	 /* where the ring starts */
#define COW__WAL_RING_MIN 65536u /* the smallest ring */
#define COW__WAL_ALIGN 64u	 /* every record starts at a multiple of this */
#define COW__WAL_FRAME_MAGIC 0x454d4152u  /* "RAME" */
#define COW__WAL_COMMIT_MAGIC 0x54494d43u /* "CMIT" */

struct cow__wal_hdr {
	char magic[8];
	uint32_t version;
	uint32_t page_size;
	uint64_t salt;
	uint64_t dev, ino; /* identity of the base file */
	uint64_t gen;	   /* of this slot: the higher valid one counts */
	uint64_t head_seq; /* sequence number of the oldest transaction */
	uint64_t head_pos; /* and its log position */
	uint64_t ring;	   /* bytes of the ring */
	uint64_t reserved[2];
	uint64_t sum; /* XXH3 of the bytes before it */
};

/* The header of a version-1 log (read to replay it, never written). */
struct cow__wal_hdr1 {
	char magic[8];
	uint32_t version;
	uint32_t page_size;
	uint64_t salt;
	uint64_t dev, ino;
	uint64_t start_seq;
	uint64_t reserved;
	uint64_t sum;
};
#define COW__WAL_HDR1 512u /* version 1: bytes before the first record */

struct cow__wal_frame {
	uint32_t magic;
	uint32_t page_size;
	uint64_t seq;  /* the transaction */
	uint64_t page; /* page index in the base file */
	uint64_t reserved[4];
	uint64_t sum; /* XXH3(salt) of the header before it, then the page */
};

struct cow__wal_commit {
	uint32_t magic;
	uint32_t reserved0;
	uint64_t seq;
	uint64_t nframes;
	uint64_t size;	     /* the arena's size */
	uint64_t file_len;   /* the base file's length in bytes */
	uint64_t synced_end; /* log bytes known durable when this was written */
	uint64_t frames_sum; /* chain of the frames' checksums */
	uint64_t sum;	     /* XXH3(salt) of the bytes before it */
};

/* An open log. fd < 0: no log file exists (yet). Positions are log
 * positions (see above), not file offsets. */
struct cow__wal {
	int fd;
	int dirfd;  /* the base file's directory, opened once (O_PATH) */
	char *name; /* "<base name>.cowlog", in dirfd */
	size_t pgsz;
	uint64_t salt, dev, ino;
	uint64_t gen;	   /* of the durable header */
	uint64_t head_seq; /* the durable header's head */
	uint64_t head_pos;
	uint64_t ring;	 /* bytes of the ring */
	uint64_t end;	 /* where the next record goes */
	uint64_t synced; /* log known durable up to here */
	off_t alloc;	 /* file bytes allocated: no size change below */
};

/* What a scan found. */
struct cow__wal_info {
	int present; /* a log with a valid header */
	uint32_t version;
	uint64_t salt, start_seq; /* start_seq: the head's */
	uint64_t ring;		  /* 0: a linear (version 1) log */
	uint64_t head;		  /* the head's position */
	uint64_t ntx;		  /* complete, valid transactions */
	uint64_t last_seq;	  /* of the last one (start_seq - 1 if none) */
	uint64_t size, file_len;  /* of the last one */
	uint64_t pages;		  /* frames in the complete transactions */
	uint64_t end;  /* the position after the last complete transaction */
	uint64_t stop; /* where parsing stopped */
	off_t file_size;
};

typedef int (*cow__wal_frame_fn)(void *ctx, uint64_t page, const void *data,
				 uint64_t file_len);

/* Checksums, shared by the writer (commit.c) and the reader. */
void cow__wal_frame_seal(struct cow__wal_frame *f, uint64_t salt,
			 const void *page, size_t pgsz);
void cow__wal_commit_seal(struct cow__wal_commit *c, uint64_t salt);
uint64_t cow__wal_chain(uint64_t prev, uint64_t frame_sum);
uint64_t cow__wal_chain_start(uint64_t salt, uint64_t seq);

/* Parses an in-memory log image (the fuzz target): 0 or COW_E*. */
int cow__wal_parse_buf(const void *buf, size_t len, size_t pgsz,
		       struct cow__wal_info *info);
/* Scans the log file fd; base may be NULL (no identity check). With fn,
 * calls it for each frame of each complete transaction, in order. */
int cow__wal_scan(int fd, size_t pgsz, const struct stat *base,
		  struct cow__wal_info *info, cow__wal_frame_fn fn, void *ctx);
/* Opens the existing log name in dirfd without following a symlink or
 * waiting on a FIFO: the fd, -ENOENT, COW_ELOGTYPE when the name is not a
 * regular file, or a negative errno. */
int cow__wal_open_log(int dirfd, const char *name, int readonly);
/* Finds the log beside base_path (its directory is opened here, once: the
 * log stays beside the file whatever the process's working directory
 * becomes), replays it into basefd, makes the base durable and, unless
 * readonly, removes the log (see retire in wal.c); w->fd is left -1: the
 * first commit creates a new log. Returns the number of transactions
 * replayed or a negative errno / COW_E* (the log is then kept). */
int cow__wal_open(struct cow__wal *w, const char *base_path, int basefd,
		  size_t pgsz, int readonly, struct cow__wal_info *info);
/* Creates the log file (complete under a temporary name, renamed into
 * place, directory synced) with a ring of ring bytes (rounded up to
 * COW__WAL_RING_MIN at least), empty, its head start_seq at position 0.
 * The temporary name is created exclusively (O_EXCL, never through a
 * symlink); a regular file there (the spare a retired log left, or a log
 * a crash left before its rename) is reused, its blocks kept, header and
 * salt new; anything else is COW_ELOGTYPE. -EFBIG past RLIMIT_FSIZE,
 * before anything is created. */
int cow__wal_create(struct cow__wal *w, uint64_t start_seq, uint64_t ring,
		    int nosync);
/* The file offset of log position pos. */
off_t cow__wal_off(const struct cow__wal *w, uint64_t pos);
/* Bytes an append may take now without reaching the head. */
uint64_t cow__wal_room(const struct cow__wal *w);
/* The file offset past the last byte of len bytes appended at log
 * position pos (the ring's end if they wrap). */
off_t cow__wal_span_end(const struct cow__wal *w, uint64_t pos, size_t len);
/* Makes sure the file is allocated for len bytes appended at w->end. */
int cow__wal_reserve(struct cow__wal *w, size_t len);
/* Fills the header slot that a checkpoint writes next (the one not in
 * use, the next generation) for the head (seq, pos) and a ring of ring
 * bytes; returns its file offset. The caller writes it, syncs it and
 * then calls cow__wal_head_moved. */
off_t cow__wal_next_header(const struct cow__wal *w, uint64_t seq, uint64_t pos,
			   uint64_t ring, struct cow__wal_hdr *hdr);
/* The header h (from cow__wal_next_header) is durable. */
void cow__wal_head_moved(struct cow__wal *w, const struct cow__wal_hdr *h);
/* Removes the log beside base_path, if any (best effort). */
void cow__wal_unlink(const char *base_path);
/* Closes the log; if clean (everything applied) takes it out of use:
 * header zeroed, unlinked, or, grown past its first MiB, renamed to the
 * temporary name as the next log's spare. */
void cow__wal_close(struct cow__wal *w, int clean);

#endif
