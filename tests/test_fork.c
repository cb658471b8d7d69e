// SPDX-License-Identifier: MIT
/* fork and threads: what a child may do with inherited arenas, that it
 * never touches the parent's lock, and different arenas used from
 * different threads at once. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "../src/sys.h"

#define PG 4096UL
#define NPG 64
#define SZ (NPG * PG)

struct child_ctx {
	struct th_arena *t;
	unsigned char *ref; /* the content at fork */
};

/* In the child: the memory is its own copy; every call but the accessors
 * and cow_close says -ECHILD. */
static int child_rules(void *arg)
{
	struct child_ctx *c = arg;
	cow_arena *a = c->t->a;
	char *p = cow_base(a);
	struct cow_range r[4];
	struct cow_stats st;
	cow_snap *s;

	TH_CHECK(memcmp(p, c->ref, SZ) == 0);
	p[2 * PG] = 'c';
	TH_CHECK(p[2 * PG] == 'c');
	TH_CHECK(cow_discard(a) == -ECHILD);
	TH_CHECK(cow_revert(a, p, PG) == -ECHILD);
	TH_CHECK(cow_grow(a, 2 * SZ) == -ECHILD);
	TH_CHECK(cow_dirty(a, r, 4) == -ECHILD);
	TH_CHECK(cow_stats(a, &st) == -ECHILD);
	TH_CHECK(cow_commit(a, 0) == -ECHILD);
	TH_CHECK(cow_commit(a, COW_COMMIT_ASYNC) == -ECHILD);
	TH_CHECK(cow_sync(a) == -ECHILD);
	TH_CHECK(cow_snapshot(a, &s) == -ECHILD);
	TH_CHECK(cow_size(a) == SZ);
	TH_CHECK(cow_reserved(a) == COW_DEFAULT_RESERVE);
	TH_CHECK(p[2 * PG] == 'c'); /* the failed calls changed nothing */
	TH_CHECK(cow_close(a) == 0);
	return 0;
}

static void test_fork_child_rules(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		unsigned char *ref = malloc(SZ);
		struct child_ctx c;
		struct th_arena t;
		char *p;

		assert_int_equal(th_open(&t, b, SZ, NULL), 0);
		p = cow_base(t.a);
		p[PG] = 'p';
		memcpy(ref, p, SZ);
		c = (struct child_ctx){&t, ref};
		th_assert_exit0(th_in_child(child_rules, &c));
		/* the parent's arena is untouched and works */
		assert_memory_equal(p, ref, SZ);
		assert_int_equal(cow_dirty(t.a, NULL, 0), 1);
		if (t.path[0]) {
			cow_arena *a2;

			/* still locked: the child's close left the lock */
			assert_int_equal(cow_open(&a2, t.path, NULL), -EBUSY);
		}
		assert_int_equal(cow_discard(t.a), 0);
		assert_int_equal(cow_dirty(t.a, NULL, 0), 0);
		th_close(&t);
		free(ref);
	}
}

/* A child that keeps its copy of the arena (and so of the lock's open file
 * description) does not keep the file locked after the parent closes. */
static void test_fork_child_outlives(void **state)
{
	struct th_arena t;
	cow_arena *a2;
	int pfd[2], st;
	pid_t pid;

	(void)state;
	assert_int_equal(th_open(&t, TH_EXT4, SZ, NULL), 0);
	assert_int_equal(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		char ch;

		close(pfd[1]);
		(void)!read(pfd[0], &ch, 1); /* until the parent is done */
		_exit(0);
	}
	close(pfd[0]);
	cow_close(t.a);
	t.a = NULL;
	assert_int_equal(cow_open(&a2, t.path, NULL), 0);
	cow_close(a2);
	close(pfd[1]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	th_assert_exit0(st);
	th_close(&t);
}

/* The SIGBUS guard holds in a child too: it truncates the file and
 * touches every page of its copy. */
static int child_truncates(void *arg)
{
	struct th_arena *t = arg;
	char *p = cow_base(t->a);
	int fd = open(t->path, O_RDWR);

	TH_CHECK(fd >= 0 && ftruncate(fd, 3 * PG) == 0);
	for (size_t off = 0; off < SZ; off += PG)
		TH_CHECK(
		    p[off + 1] ==
		    (off < 3 * PG ? (char)th_base_byte(t->b, off + 1) : 0));
	TH_CHECK(cow_discard(t->a) == -ECHILD);
	TH_CHECK(cow_close(t->a) == 0);
	close(fd);
	return 0;
}

static void test_fork_child_sigbus(void **state)
{
	struct th_arena t;

	(void)state;
	assert_int_equal(th_open(&t, TH_TMPFS, SZ, NULL), 0);
	th_assert_exit0(th_in_child(child_truncates, &t));
	/* the parent's arena sees the truncation too: stale, alive */
	assert_int_equal(((char *)cow_base(t.a))[10 * PG], 0);
	assert_int_equal(cow_discard(t.a), -ESTALE);
	th_close(&t);
}

/*
 * fork while asynchronous commits are being written (by the I/O thread,
 * or with COW_NOTHREAD in the kernel's ring): the child's calls on the
 * inherited arena say -ECHILD and make no call that could reach a file
 * (no write, sync, truncation, open, lock or ring submission), its memory
 * is its own copy; the parent's cow_sync() then succeeds and a reopen
 * shows the last commit.
 */
#define BIG_NPG 512 /* 2 MiB per commit: still being written at the fork */
#define BIG (BIG_NPG * PG)

static const enum cow__sys_kind file_kinds[] = {
	COW__SYS_PWRITE, COW__SYS_FSYNC, COW__SYS_FTRUNCATE, COW__SYS_OPEN,
	COW__SYS_FCNTL,	 COW__SYS_URING, COW__SYS_MADVISE,   COW__SYS_IOCTL};
#define NKINDS (sizeof(file_kinds) / sizeof(*file_kinds))

static void count_calls(unsigned long *n)
{
	for (size_t i = 0; i < NKINDS; i++)
		n[i] = cow__fault_calls(file_kinds[i]);
}

static int child_writes; /* files written in the child (trace hook) */

static void child_trace(enum cow__sys_kind kind, int fd,
			const struct iovec *iov, int cnt, off_t off)
{
	(void)fd, (void)iov, (void)cnt, (void)off;
	/* unmapping its copy, or advice on it, is no write */
	if (kind != COW__SYS_MUNMAP && kind != COW__SYS_MADVISE)
		child_writes++;
}

static int child_async(void *arg)
{
	struct child_ctx *c = arg;
	cow_arena *a = c->t->a;
	unsigned char *p = cow_base(a);
	unsigned long before[NKINDS], after[NKINDS];
	cow_snap *s = NULL;

	cow__sys_set_trace(child_trace);
	count_calls(before);
	TH_CHECK(memcmp(p, c->ref, BIG) == 0);
	TH_CHECK(cow_commit(a, 0) == -ECHILD);
	TH_CHECK(cow_commit(a, COW_COMMIT_ASYNC) == -ECHILD);
	TH_CHECK(cow_sync(a) == -ECHILD);
	TH_CHECK(cow_snapshot(a, &s) == -ECHILD && s == NULL);
	TH_CHECK(cow_discard(a) == -ECHILD);
	TH_CHECK(cow_grow(a, 2 * BIG) == -ECHILD);
	memset(p + 3 * PG, 'c', 2 * PG); /* its own copy */
	TH_CHECK(p[3 * PG] == 'c' && p[5 * PG] == c->ref[5 * PG]);
	TH_CHECK(cow_close(a) == 0);
	count_calls(after);
	TH_CHECK(memcmp(before, after, sizeof(before)) == 0);
	TH_CHECK(child_writes == 0);
	return 0;
}

static void fork_async(enum th_backing b, unsigned flags)
{
	struct cow_options o = {.flags = flags};
	unsigned char *ref = malloc(BIG);
	struct child_ctx c;
	struct th_arena t;
	struct cow_stats st;
	unsigned char *p;
	cow_arena *a2;

	assert_int_equal(th_open(&t, b, BIG, &o), 0);
	p = cow_base(t.a);
	for (unsigned gen = 1; gen <= 3; gen++) {
		for (size_t i = 0; i < BIG; i += 512)
			p[i] = (unsigned char)(gen * 7 + i / 512);
		assert_int_equal(cow_commit(t.a, COW_COMMIT_ASYNC), 0);
	}
	memcpy(ref, p, BIG);
	c = (struct child_ctx){&t, ref};
	th_assert_exit0(th_in_child(child_async, &c));
	/* the parent's arena is as it was, and its commits complete */
	assert_memory_equal(p, ref, BIG);
	assert_int_equal(cow_sync(t.a), 0);
	assert_int_equal(cow_stats(t.a, &st), 0);
	assert_int_equal(st.commits, 3);
	if (t.path[0]) {
		/* every commit durable: one log transaction each, or fewer
		 * when asynchronous ones were batched */
		assert_in_range(st.commit_seq_durable, 1, st.commits);
		assert_int_equal(st.commit_pending_bytes, 0);
		/* the child left the lock alone */
		assert_int_equal(cow_open(&a2, t.path, NULL), -EBUSY);
		assert_int_equal(cow_close(t.a), 0);
		assert_int_equal(cow_open(&t.a, t.path, NULL), 0);
	}
	assert_true(th_equal(&t, ref, BIG));
	th_close(&t);
	free(ref);
}

static void test_fork_async_commits(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++)
		fork_async(b, 0);
	fork_async(TH_EXT4, COW_NOTHREAD);
	fork_async(TH_TMPFS, COW_NOTHREAD);
}

/* From here on getpid(2) fails with EPERM (returns -1) in this thread and
 * the threads it makes. 0, or -1 where seccomp is not available. */
static int deny_getpid(void)
{
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		     offsetof(struct seccomp_data, arch)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		     offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getpid, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* With getpid(2) failing, every call of an arena opened before works:
 * the fork rule's check makes no system call (it did one per call, and
 * two or three in a commit). A fork child still gets -ECHILD. */
static int child_no_getpid(void *arg)
{
	enum th_backing b = (enum th_backing)(uintptr_t)arg;
	struct cow_stats st;
	struct th_arena t;
	cow_snap *s;
	char *p;
	pid_t pid;
	int status;

	TH_CHECK(th_open(&t, b, SZ, NULL) == 0);
	p = cow_base(t.a);
	p[0] = 1;
	TH_CHECK(cow_commit(t.a, 0) == 0);
	if (deny_getpid())
		return 77;
	TH_CHECK(getpid() == -1);
	for (int i = 0; i < 32; i++) {
		p[(size_t)(i % NPG) * PG] = (char)i;
		TH_CHECK(cow_commit(t.a, COW_COMMIT_ASYNC) == 0);
	}
	TH_CHECK(cow_sync(t.a) == 0);
	TH_CHECK(cow_snapshot(t.a, &s) == 0);
	p[PG] = 'x';
	TH_CHECK(cow_commit(t.a, 0) == 0);
	p[2 * PG] = 'y';
	TH_CHECK(cow_dirty(t.a, NULL, 0) == 1);
	TH_CHECK(cow_stats(t.a, &st) == 0 && st.dirty_pages == 1);
	TH_CHECK(cow_rollback(t.a, s) == 0);
	TH_CHECK(p[PG] == 1 && p[2 * PG] == 2);
	p[3 * PG] = 'z';
	TH_CHECK(cow_discard(t.a) == 0);
	TH_CHECK(cow_revert(t.a, p, PG) == 0);
	TH_CHECK(cow_grow(t.a, SZ) == 0);
	pid = fork();
	TH_CHECK(pid >= 0);
	if (pid == 0)
		_exit(cow_discard(t.a) == -ECHILD ? 0 : 1);
	TH_CHECK(waitpid(pid, &status, 0) == pid);
	TH_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cow_snap_release(s);
	th_close(&t);
	return 0;
}

static void test_owner_check_no_syscall(void **state)
{
	(void)state;
	for (int b = 0; b < TH_NBACKINGS; b++) {
		int status = th_in_child(child_no_getpid, (void *)(uintptr_t)b);

		if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
			skip(); /* seccomp is not available */
		th_assert_exit0(status);
	}
}

struct worker {
	enum th_backing b;
	unsigned seed;
	int failures;
};

#define WCHECK(w, c)                                                          \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "# %s: %s:%d: %s\n",                  \
				th_backing_names[(w)->b], __FILE__, __LINE__, \
				#c);                                          \
			(w)->failures++;                                      \
			goto out;                                             \
		}                                                             \
	} while (0)

/* One arena per thread, opened and closed again and again (which installs
 * and removes the SIGBUS handler concurrently), each checked against a
 * reference copy after every operation. */
/* In a child whose parent has an arena open: a new arena of the child's
 * own snapshots and rolls back right, on its own page tables. */
static int child_own_arena(void *arg)
{
	unsigned char want[8 * 4096];
	cow_arena *a;
	cow_snap *s;
	unsigned char *b;

	(void)arg;
	TH_CHECK(cow_open_anon(&a, sizeof(want), NULL) == 0);
	b = cow_base(a);
	for (size_t i = 0; i < sizeof(want); i += 61)
		b[i] = (unsigned char)(i * 7 + 1);
	memcpy(want, b, sizeof(want));
	TH_CHECK(cow_snapshot(a, &s) == 0);
	for (int round = 0; round < 2; round++) {
		memset(b, 0x5a, sizeof(want));
		TH_CHECK(cow_dirty(a, NULL, 0) == 1);
		TH_CHECK(cow_rollback(a, s) == 0);
		TH_CHECK(memcmp(b, want, sizeof(want)) == 0);
	}
	TH_CHECK(cow_close(a) == 0);
	return 0;
}

/* The page scans read /proc/self/pagemap through one descriptor per
 * process: a child must not scan its parent's page tables through the
 * one it inherited (it did: its rollbacks restored nothing). */
static void test_fork_child_new_arena(void **state)
{
	struct th_arena t;
	cow_snap *s;

	(void)state;
	for (enum th_backing b = TH_ANON; b < TH_NBACKINGS; b++) {
		assert_int_equal(th_open(&t, b, 8 * 4096, NULL), 0);
		memset(cow_base(t.a), 1, 4096);
		assert_int_equal(cow_snapshot(t.a, &s), 0);
		th_assert_exit0(th_in_child(child_own_arena, NULL));
		th_close(&t);
	}
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	unsigned char *ref = malloc(2 * SZ);

	for (int round = 0; round < 8; round++) {
		struct cow_options o = {.reserve = 2 * SZ};
		struct cow_stats st;
		struct th_arena t;
		char *p;

		WCHECK(w, th_open(&t, w->b, SZ, &o) == 0);
		p = cow_base(t.a);
		th_base_ref(w->b, ref, SZ);
		for (int op = 0; op < 40; op++) {
			size_t pg =
			    (size_t)rand_r(&w->seed) % (cow_size(t.a) / PG);

			switch (rand_r(&w->seed) % 8) {
			case 0:
				WCHECK(w,
				       cow_revert(t.a, p + pg * PG, PG) == 0);
				for (size_t i = pg * PG; i < (pg + 1) * PG; i++)
					ref[i] =
					    i < SZ ? th_base_byte(w->b, i) : 0;
				break;
			case 1:
				WCHECK(w, cow_discard(t.a) == 0);
				th_base_ref(w->b, ref, SZ);
				memset(ref + SZ, 0, cow_size(t.a) - SZ);
				break;
			case 2:
				if (cow_size(t.a) == SZ) {
					WCHECK(w, cow_grow(t.a, 2 * SZ) == 0);
					memset(ref + SZ, 0, SZ);
				}
				break;
			case 3:
				WCHECK(w, cow_stats(t.a, &st) == 0);
				WCHECK(w, st.mappings <= 3);
				break;
			default:
				p[pg * PG + op] = (char)op;
				ref[pg * PG + op] = (unsigned char)op;
			}
			WCHECK(w, memcmp(p, ref, cow_size(t.a)) == 0);
		}
		th_close(&t);
	}
out:
	free(ref);
	return NULL;
}

static void test_threads_arenas(void **state)
{
	struct worker w[TH_NBACKINGS * 2];
	pthread_t th[TH_NBACKINGS * 2];

	(void)state;
	for (int i = 0; i < TH_NBACKINGS * 2; i++) {
		w[i] = (struct worker){(enum th_backing)(i % TH_NBACKINGS),
				       (unsigned)i * 7919u + 1, 0};
		assert_int_equal(
		    pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < TH_NBACKINGS * 2; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fork_child_rules),
	    cmocka_unit_test(test_fork_child_outlives),
	    cmocka_unit_test(test_fork_child_sigbus),
	    cmocka_unit_test(test_fork_child_new_arena),
	    cmocka_unit_test(test_fork_async_commits),
	    cmocka_unit_test(test_owner_check_no_syscall),
	    cmocka_unit_test(test_threads_arenas),
	};

	return cmocka_run_group_tests_name("fork", tests, NULL, NULL);
}
