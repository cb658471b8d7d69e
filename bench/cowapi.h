/* SPDX-License-Identifier: MIT */
/*
 * The snapshot and commit calls of the public API, declared weak.
 *
 * The benchmarks measure every contender of an area in one run. Declaring
 * these weak lets the same programs build against a library that does not
 * have them yet: the calls are then NULL, and only the rows of the other
 * contenders are measured (the table says so). The signatures are those of
 * the API contract; a library whose functions differ does not compile here.
 * The programs link the whole static library (--whole-archive), so a weak
 * reference is never left NULL merely because no other reference pulled in
 * the object that defines it.
 */
#ifndef COW_BENCH_COWAPI_H
#define COW_BENCH_COWAPI_H

#include "cowarena.h"

int cow_snapshot(cow_arena *a, cow_snap **out) __attribute__((weak));
int cow_rollback(cow_arena *a, cow_snap *s) __attribute__((weak));
void cow_snap_release(cow_snap *s) __attribute__((weak));
int cow_commit(cow_arena *a, unsigned flags) __attribute__((weak));
int cow_sync(cow_arena *a) __attribute__((weak));

#ifndef COW_COMMIT_ASYNC
#define COW_COMMIT_ASYNC 0x01u
#endif

static inline int bench_have_snapshots(void)
{
	return cow_snapshot && cow_rollback && cow_snap_release;
}

static inline int bench_have_commit(void)
{
	return cow_commit && cow_sync;
}

#endif
