/* SPDX-License-Identifier: MIT */
/*
 * The write-ahead log beside a base file ("<file>.cowlog"): its on-disk
 * format and the functions that create, append to, scan, replay and reset
 * it. Everything is little-endian native layout (x86-64, arm64).
 *
 * Layout: a 512-byte header (one sector, so its rewrite is atomic), then
 * records, each a multiple of 64 bytes: frames (a 64-byte header followed
 * by one page image) and commit records (64 bytes). A transaction is its
 * frames followed by its commit record. Every checksum is XXH3-64 seeded
 * with the log's random salt, so records left over from an earlier log
 * (another salt) never validate.
 */
#ifndef COW_WAL_H
#define COW_WAL_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define COW__WAL_MAGIC "cowlog\r\n"
#define COW__WAL_VERSION 1u
#define COW__WAL_HDR 512u  /* bytes before the first record */
#define COW__WAL_ALIGN 64u /* every record starts at a multiple of this */
#define COW__WAL_FRAME_MAGIC 0x454d4152u  /* "RAME" */
#define COW__WAL_COMMIT_MAGIC 0x54494d43u /* "CMIT" */

struct cow__wal_hdr {
	char magic[8];
	uint32_t version;
	uint32_t page_size;
	uint64_t salt;
	uint64_t dev, ino;  /* identity of the base file */
	uint64_t start_seq; /* sequence number of the first transaction */
	uint64_t reserved;
	uint64_t sum; /* XXH3 of the bytes before it */
};

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

/* An open log. fd < 0: no log file exists (yet). */
struct cow__wal {
	int fd;
	int dirfd;  /* the base file's directory, opened once (O_PATH) */
	char *name; /* "<base name>.cowlog", in dirfd */
	size_t pgsz;
	uint64_t salt, dev, ino, start_seq;
	off_t end;    /* where the next record goes */
	off_t alloc;  /* bytes written (zeros past end): no size change */
	off_t synced; /* bytes known durable */
};

/* What a scan found. */
struct cow__wal_info {
	int present; /* a log with a valid header */
	uint64_t salt, start_seq;
	uint64_t ntx;		 /* complete, valid transactions */
	uint64_t last_seq;	 /* of the last one (start_seq - 1 if none) */
	uint64_t size, file_len; /* of the last one */
	uint64_t pages;		 /* frames in the complete transactions */
	off_t end;  /* the byte after the last complete transaction */
	off_t stop; /* where parsing stopped */
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
 * place, directory synced). The temporary name is created exclusively
 * (O_EXCL, never through a symlink); a regular file left there by a crash
 * is replaced, anything else is COW_ELOGTYPE. -EFBIG past RLIMIT_FSIZE,
 * before anything is created. */
int cow__wal_create(struct cow__wal *w, uint64_t start_seq, int nosync);
/* Makes sure [w->end, w->end + len) is preallocated. */
int cow__wal_reserve(struct cow__wal *w, size_t len);
/* Fills hdr with a fresh header (new salt) for w. */
int cow__wal_new_header(struct cow__wal *w, uint64_t start_seq,
			struct cow__wal_hdr *hdr);
/* Removes the log beside base_path, if any (best effort). */
void cow__wal_unlink(const char *base_path);
/* Closes the log; unlinks it if clean (everything applied). */
void cow__wal_close(struct cow__wal *w, int clean);

#endif
