// SPDX-License-Identifier: MIT
/*
 * txbuf: a bank ledger kept in an arena, changed in transactions.
 *
 * Accounts live in the arena's memory as a plain array; a transfer writes
 * two balances and the ledger's total of transfers. A transaction is
 * either committed (cow_commit: durable and atomic) or aborted
 * (cow_discard). Then a child process starts a transfer, commits half of
 * a batch, and is killed in the middle of the next; reopening the file
 * recovers the last commit and the books still balance.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowarena.h"

#define NACC 1000

struct ledger {
	long long balance[NACC];
	long long transfers;
};

static long long total(const struct ledger *l)
{
	long long t = 0;

	for (int i = 0; i < NACC; i++)
		t += l->balance[i];
	return t;
}

static void transfer(struct ledger *l, int from, int to, long long amount)
{
	l->balance[from] -= amount;
	l->balance[to] += amount;
	l->transfers++;
}

static int check(int r, const char *what)
{
	if (r < 0) {
		fprintf(stderr, "txbuf: %s: %s\n", what, cow_strerror(r));
		exit(1);
	}
	return r;
}

static struct ledger *open_ledger(cow_arena **a, const char *path)
{
	struct cow_options o = {.flags = COW_CREATE, .size = 16 << 12};

	check(cow_open(a, path, &o), "open");
	return cow_base(*a);
}

/* The child: commits transfers one by one, forever, until killed. */
static void busy_child(const char *path, int fd)
{
	cow_arena *a;
	struct ledger *l = open_ledger(&a, path);

	for (unsigned i = 0;; i++) {
		transfer(l, (int)(i % NACC), (int)((i * 7 + 1) % NACC), 3);
		transfer(l, (int)((i * 3) % NACC), (int)(i % NACC), 2);
		if (cow_commit(a, 0) < 0)
			_exit(1);
		if (write(fd, &l->transfers, sizeof(l->transfers)) < 0)
			_exit(1);
	}
}

int main(int argc, char **argv)
{
	char path[] = "/tmp/txbuf-XXXXXX", log[64], spare[64];
	long long reported = 0, n;
	struct ledger *l;
	cow_arena *a;
	int p[2], fd, status;
	pid_t pid;

	(void)argc;
	(void)argv;
	fd = mkstemp(path);
	if (fd < 0)
		return 1;
	close(fd);
	unlink(path);
	snprintf(log, sizeof(log), "%s.cowlog", path);
	/* the log's blocks a clean close keeps for the next open's log */
	snprintf(spare, sizeof(spare), "%s.cowlog.tmp", path);

	l = open_ledger(&a, path);
	for (int i = 0; i < NACC; i++)
		l->balance[i] = 100;
	check(cow_commit(a, 0), "commit");
	printf("opened %s: %d accounts, total %lld, committed\n", path, NACC,
	       total(l));

	transfer(l, 1, 2, 50);
	transfer(l, 3, 4, 25);
	check(cow_commit(a, 0), "commit");
	printf("committed 2 transfers: account 2 has %lld\n", l->balance[2]);

	transfer(l, 2, 5, 1000);
	printf("a transfer overdraws account 2 (%lld): abort\n",
	       l->balance[2]);
	check(cow_discard(a), "discard");
	printf("after the abort account 2 has %lld again, total %lld\n",
	       l->balance[2], total(l));

	for (int i = 0; i < 100; i++)
		transfer(l, i, NACC - 1 - i, i);
	check(cow_commit(a, COW_COMMIT_ASYNC), "commit");
	check(cow_sync(a), "sync");
	printf("100 transfers committed asynchronously, synced: %lld "
	       "transfers so far\n",
	       l->transfers);
	check(cow_close(a), "close");

	if (pipe(p))
		return 1;
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		busy_child(path, p[1]);
	}
	close(p[1]);
	/* Let it commit a while, then kill it in the middle of whatever it
	 * is doing. */
	while (reported < 2000 && read(p[0], &n, sizeof(n)) == sizeof(n))
		reported = n;
	usleep(3000);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	while (read(p[0], &n, sizeof(n)) == sizeof(n))
		reported = n;
	close(p[0]);
	printf("child killed; it had reported %lld transfers committed\n",
	       reported);

	l = open_ledger(&a, path);
	printf("reopened (recovered from the log if needed): %lld "
	       "transfers, total %lld: %s\n",
	       l->transfers, total(l),
	       total(l) == 100LL * NACC && l->transfers >= reported ?
		       "the books balance, nothing committed was lost" :
		       "MISMATCH");
	n = total(l) == 100LL * NACC && l->transfers >= reported;
	cow_close(a);
	unlink(path);
	unlink(log);
	unlink(spare);
	return n ? 0 : 1;
}
