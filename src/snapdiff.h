/* SPDX-License-Identifier: MIT */
/*
 * snapdiff.c: cow_snap_diff once arena.c validated the arguments (from
 * and to, when given, snapshots of a), settled the commits and checked
 * the guard. The run count, or -ENOMEM or an error of pread(2).
 */
#ifndef COW_SNAPDIFF_H
#define COW_SNAPDIFF_H

#include <stddef.h>
#include <sys/types.h>

struct cow_arena;
struct cow_range;
struct cow_snap;

ssize_t cow__snapdiff(struct cow_arena *a, const struct cow_snap *from,
		      const struct cow_snap *to, struct cow_range *out,
		      size_t max);

#endif
