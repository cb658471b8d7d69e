/* SPDX-License-Identifier: MIT */
/*
 * Hooks that exist only for the tests: each forces a path the machine
 * would not otherwise take (no userfaultfd, no PAGEMAP_SCAN, a small log
 * checkpoint). The library never calls them. The fault injection of
 * sys.c is declared in sys.h (COW_FAULT_INJECT builds).
 */
#ifndef COW_TESTHOOKS_H
#define COW_TESTHOOKS_H

#include <sys/types.h>

/* track.c: use the pagemap fallback / no userfaultfd tracking. */
void cow__track_force_pagemap(int on);
void cow__track_force_compare(int on);
/* commit.c: checkpoint the log at n bytes (0: the default, 16 MiB). */
void cow__commit_ckpt_bytes(off_t n);
/* commit.c: bound the copies not yet written in place at n bytes (0: the
 * default, 64 MiB). */
void cow__commit_pending_max(size_t n);
/* commit.c: write the log in writes of at most iov iovecs (a frame is two,
 * a commit record one), and link at most chain entries (the writes and
 * the log's fdatasync) into one chain: a longer log write syncs once its
 * writes completed. 0: the defaults (1024, and COW__IO_CHAIN_MAX of
 * io.h, the longest chain the ring takes whole). */
void cow__commit_log_split(int iov, unsigned chain);
/* io.c: the setup flags of the process's ring (IORING_SETUP_*), 0 when
 * there is none. */
unsigned cow__io_ring_flags(void);

#endif
