/* SPDX-License-Identifier: MIT */
/*
 * guard.c: file lock, change detection, isolated base, SIGBUS guard, fork.
 *
 * cow__guard_owner: 0, or -ECHILD in a process other than the opener (a
 * fork child); every call but cow_close starts with it, once (arena.c);
 * it makes no system call (the pid is cached, see cow__sys_pid).
 * cow__guard_check: -ESTALE if the base changed behind the
 * arena's back: the SIGBUS handler marked it, or (without COW_ISOLATE) the
 * file's identity, size or mtime differ from a->ident; -EIO if the handler
 * found a page inside the file it could not read. Called first by
 * every call whose result depends on the base: grow, discard, revert,
 * rollback.
 * cow__guard_check_commit: the same, but also checks the real file of an
 * isolated arena: a commit must never write over an outside change.
 * cow__guard_refresh: records the real file's current state in a->ident;
 * called after the arena changed the file itself (grow, commit).
 *
 * For the commit: call cow__guard_check_commit before anything else, and
 * cow__guard_refresh once the arena's own writes to the file are done
 * (log recovery at open too, before the state is recorded). While
 * in-place writes of a commit are still running in the background the
 * file's mtime moves under the arena by its own hand: refresh when they
 * complete, and do not compare in between. An isolated arena's commit
 * writes both file_fd and fd (the copy is not write-sealed for that).
 */
#ifndef COW_GUARD_H
#define COW_GUARD_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct cow_arena;
struct cow__ident;

int cow__guard_owner(const struct cow_arena *a);
int cow__guard_check(struct cow_arena *a);
int cow__guard_check_commit(struct cow_arena *a);
/* Only the marks of the SIGBUS handler: -ESTALE (the file was truncated),
 * -EIO (a page inside it could not be read), else 0. */
int cow__guard_marked(const struct cow_arena *a);
int cow__guard_refresh(struct cow_arena *a);
int cow__guard_ident(int fd, struct cow__ident *id);
void cow__guard_ident_from(const struct stat *st, struct cow__ident *id);
/* Takes the whole-file OFD lock: shared if readonly, else exclusive.
 * -EBUSY when another arena holds a conflicting one. */
int cow__guard_lock(int fd, int readonly);
void cow__guard_unlock(int fd);
/* Makes a private copy of fd's len bytes; *out receives its descriptor.
 * path, when known, lets a reflink copy be made beside the file. */
int cow__guard_isolate(int fd, const char *path, off_t len, int *out);
/* The SIGBUS registry: init when the arena is made (not watched), watch
 * after the base is mapped; resize whenever a->size or a->mapped changed
 * (arena.c's set_size); unwatch at close before the reservation is
 * unmapped (the last one restores the previous handler). */
void cow__guard_init(struct cow_arena *a);
int cow__guard_watch(struct cow_arena *a);
void cow__guard_resize(struct cow_arena *a);
void cow__guard_unwatch(struct cow_arena *a);

#ifdef COW_DEBUG
/* The COW_DEBUG build's view for the invariant checks of debug.c: the
 * guard's record of the size (-ENOENT when the arena is not watched). */
int cow__guard_watched(const struct cow_arena *a, size_t *size, size_t *mapped);
#endif

#endif
