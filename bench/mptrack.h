/* SPDX-License-Identifier: MIT */
/*
 * The hand-written way to track writes: write-protect the range with
 * mprotect, and on each SIGSEGV save a copy of the page and make it
 * writable again (copy on first write). Rollback copies the saved pages
 * back. One tracker is active per process.
 */
#ifndef COW_BENCH_MPTRACK_H
#define COW_BENCH_MPTRACK_H

#include <stddef.h>

struct mptrack {
	char *base;
	size_t len, pgsz;
	char *store;   /* room for cap saved pages */
	size_t *pages; /* page numbers saved, in fault order */
	size_t n, cap;
};

/* Allocates room for cap pages of copies. */
void mptrack_init(struct mptrack *t, size_t cap);
void mptrack_free(struct mptrack *t);
/* Checkpoint: forgets saved pages, write-protects [base, base + len). */
void mptrack_arm(struct mptrack *t, char *base, size_t len);
/* Rollback: copies the saved pages back, makes the range writable. */
void mptrack_rollback(struct mptrack *t);
/* Ends tracking without restoring (the range becomes writable). */
void mptrack_disarm(struct mptrack *t);

#endif
