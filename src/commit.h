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
struct cow__pageset;

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
 * The commit's part of the settle barrier (arena.c owns the barrier):
 * waits until every commit is in the base's page cache. The error of a
 * torn base, or 0. The caller then records the file's state after the
 * arena's own writes (cow__commit_refresh_due) and drops the pages that
 * equal the base (cow__commit_may_clean), so that a call that drops
 * private copies or compares the file reads the committed content and
 * does not take the arena's own writes for an outside change.
 */
int cow__commit_settle(struct cow_arena *a);
/* Whether the arena's own writes to the file are still running (the
 * file's mtime moves by its own hand meanwhile: the guard compares only
 * once they are done). Polls the completions first. */
int cow__commit_writing(struct cow_arena *a);
/* Whether the arena wrote the file itself since the guard last recorded
 * its state, with none of its writes still running: the caller records
 * the state (cow__guard_refresh) and then calls cow__commit_refreshed. */
int cow__commit_refresh_due(struct cow_arena *a);
void cow__commit_refreshed(struct cow_arena *a);
void cow__commit_stats(struct cow_arena *a, struct cow_stats *st);

/*
 * Private pages that equal the base: those a durable commit made equal
 * to it and that still hold what it captured (after the settle barrier
 * the commit is also written in place: they may be dropped). may_clean: 0
 * when there can be none (then every private page is dirty). split: the
 * private pages priv (runs ascending) to dirty (those that differ) and
 * clean (those that do not); either function may be NULL.
 * forget_applied frees the applied transactions once their clean pages
 * were dropped, so that later calls skip the compare.
 */
int cow__commit_may_clean(struct cow_arena *a);
int cow__commit_split(struct cow_arena *a, const struct cow__pageset *priv,
		      cow__run_fn dirty, void *dctx, cow__run_fn clean,
		      void *cctx);
void cow__commit_forget_applied(struct cow_arena *a);
/*
 * The pages whose newest captured image is in a transaction not yet
 * written in place, added to out: each still holds its private copy
 * (nothing drops a page before its newest commit is applied), so the
 * dirty scan needs no file-page test for them. Best effort: 0, or -ENOMEM
 * with out holding part of them.
 */
int cow__commit_unapplied(struct cow_arena *a, struct cow__pageset *out);

/*
 * Commits the dirty pages (runs ascending, every private page of the
 * arena): makes their content the new base, durably through the log when
 * the base has one (returning at the log record's durable point; the
 * pages are written in place in the background and their private copies
 * dropped by a later call, see commit.c), else written into the base
 * directly and the private copies dropped. *took is set to 1 when the
 * content became the new base, else 0: the caller tells the snapshots
 * (snap's commit hooks). dropped (may be NULL) receives the runs whose
 * private copies the call dropped (best effort: a page it could not note
 * is only left out). The caller validated, settled and checked the guard.
 * The errors of cow_commit.
 */
int cow__commit_write(struct cow_arena *a, const struct cow__pageset *dirty,
		      int async, int *took, struct cow__pageset *dropped);
/* cow_sync's wait: every commit durable and applied; the first error of
 * an asynchronous commit (reported once) or the arena's fatal one. */
int cow__commit_sync(struct cow_arena *a);

#endif
