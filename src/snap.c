// SPDX-License-Identifier: MIT
/*
 * Snapshot tree and rollback.
 *
 * A commit replaces the base content of the pages that are dirty at that
 * moment. Snapshots that read those pages from the base must keep the old
 * content: cow__snap_commit_prepare() saves what they need (it may fail
 * and then changes nothing) and cow__snap_commit_finish() attaches it once
 * the commit is the new base, or frees it when the commit failed.
 */
#include <stddef.h>

#include "internal.h"

int cow__snap_commit_prepare(struct cow_arena *a, void **token)
{
	(void)a;
	*token = NULL; /* no snapshot can exist yet: nothing to save */
	return 0;
}

void cow__snap_commit_finish(struct cow_arena *a, void *token, int committed)
{
	(void)a;
	(void)token;
	(void)committed;
}
