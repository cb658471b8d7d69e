/* SPDX-License-Identifier: MIT */
/*
 * Hooks that exist only for the tests: each forces a path the machine
 * would not otherwise take (no userfaultfd, no PAGEMAP_SCAN, a small log
 * checkpoint) or reaches a step of an operation on its own. The library
 * never calls them. The fault injection of sys.c is declared in sys.h
 * (COW_FAULT_INJECT builds).
 */
#ifndef COW_TESTHOOKS_H
#define COW_TESTHOOKS_H

#include <sys/types.h>

struct cow_arena;

/* track.c: use the pagemap fallback / no userfaultfd tracking. */
void cow__track_force_pagemap(int on);
void cow__track_force_compare(int on);
/* commit.c: checkpoint the log at n bytes (0: the default, 16 MiB). */
void cow__commit_ckpt_bytes(off_t n);
/* snap.c: cow__snap_commit_prepare_runs with the dirty pages found by a
 * scan of its own (a commit simulated by hand). */
int cow__snap_commit_prepare(struct cow_arena *a, void **token);

#endif
