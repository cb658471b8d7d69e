/* SPDX-License-Identifier: MIT */
/*
 * commit.c as arena.c sees it: the durable writer of one arena (its log,
 * its queue of transactions, its background writes), opened before the
 * arena is mapped and closed with it.
 */
#ifndef COW_COMMIT_H
#define COW_COMMIT_H

#include <stddef.h>

#include "pageset.h"

struct cow_arena;
struct cow_stats;
struct cow__commit;

/*
 * cow__commit_open runs recovery on a file's log before the arena is
 * mapped (the file's length may change) and returns the state the arena
 * keeps (*out NULL for a base with nothing durable: an unlinked file or a
 * memfd). path may be NULL (cow_open_fd).
 */
int cow__commit_open(struct cow__commit **out, int fd, const char *path,
		     size_t pgsz, unsigned flags);
void cow__commit_attach(struct cow_arena *a, struct cow__commit *c);
void cow__commit_close(struct cow_arena *a);
void cow__commit_free(struct cow__commit *c);
/*
 * cow__commit_settle waits until every commit is in the base's page cache
 * and then records the file's state (cow__guard_refresh) after the
 * arena's own background writes: any operation that drops private copies
 * or compares the file (discard, revert, rollback) calls it first, before
 * cow__guard_check, so the dropped pages read the committed content and
 * the arena's own writes are not taken for an outside change. It returns
 * -ECHILD in a fork child.
 */
int cow__commit_settle(struct cow_arena *a);
void cow__commit_stats(struct cow_arena *a, struct cow_stats *st);
/* The dirty pages as reported (cow_dirty, cow_stats): the private pages
 * less those an applied asynchronous commit made equal to the base. */
int cow__commit_dirty(struct cow_arena *a, cow__run_fn fn, void *ctx);

#endif
