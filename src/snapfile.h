/* SPDX-License-Identifier: MIT */
/*
 * Snapshot files (cow_snap_save, cow_snap_load): the on-disk format, and
 * the checks the command-line tool shares with the loader.
 *
 * Layout, little-endian native (x86-64, arm64) as the log: a 128-byte
 * header, then an index of 16-byte entries (page number, XXH3-64 of the
 * page seeded with its number), zeros up to the next page boundary, then
 * the pages in index order, each at a page-aligned offset. The header's
 * checksum covers every byte before the first page (header, index,
 * padding, with the checksum field read as zero); each page has its own.
 * So a file of k pages is k pages plus one page of header and index (more
 * index pages past 248 entries with 4 KiB pages).
 */
#ifndef COW_SNAPFILE_H
#define COW_SNAPFILE_H

#include <stdint.h>

#define COW__SNAPFILE_MAGIC "cowsnap\n"
#define COW__SNAPFILE_VERSION 1u
#define COW__SNAPFILE_HDR 128u

/* What the pages the file does not hold read: the base. */
enum {
	COW__SNAPBASE_ZEROS = 1, /* an anonymous arena never committed */
	COW__SNAPBASE_FILE = 2,	 /* a file (or memfd): identified below */
	COW__SNAPBASE_MEMORY = 3 /* an anonymous arena after a commit:
				    only COW_SNAP_FULL files have it */
};

struct cow__snapfile_hdr {
	char magic[8];
	uint32_t version;
	uint32_t page_size;
	uint32_t flags;	    /* COW_SNAP_FULL */
	uint32_t base_kind; /* COW__SNAPBASE_* */
	uint64_t size;	    /* the snapshot's size in bytes */
	uint64_t npages;    /* pages in the file */
	/* The base the snapshot was taken against (see snapfile.c) */
	uint64_t base_len; /* its length in bytes */
	uint64_t dev, ino; /* the file's identity (FILE only) */
	int64_t mtime_sec, mtime_nsec;
	uint64_t file_len; /* the file's length (FILE only) */
	uint64_t reserved[4];
	uint64_t sum; /* XXH3 of every byte before the first page */
};

struct cow__snapfile_entry {
	uint64_t page;
	uint64_t sum; /* XXH3-64 of the page, seeded with page */
};

/* What cow__snapfile_check found. */
struct cow__snapfile_info {
	struct cow__snapfile_hdr hdr;
	uint64_t data_off;  /* where the first page starts */
	uint64_t file_size; /* bytes in the file */
};

/*
 * Reads and checks the snapshot file fd: the header, its checksum over
 * the index, the index's order, the file's length, and with pages set
 * every page's checksum. 0, or COW_ECORRUPT (not a snapshot file, or a
 * damaged or truncated one), COW_EVERSION (an unknown format version),
 * -ENOMEM, or an errno of fstat(2) or pread(2). Needs no arena.
 */
int cow__snapfile_check(int fd, int pages, struct cow__snapfile_info *info);

/* cow_snap_load and cow_snap_save once arena.c validated the arguments,
 * settled the commits and checked the guard (s's arena for a save): the
 * errors of those calls past -EINVAL. */
struct cow_arena;
struct cow_snap;
int cow__snapfile_load(struct cow_arena *a, const char *path,
		       struct cow_snap **out);
int cow__snapfile_save(const struct cow_snap *s, const char *path,
		       unsigned flags);

#endif
