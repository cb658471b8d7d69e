// SPDX-License-Identifier: MIT
/*
 * mprotect + SIGSEGV write tracking (mptrack.h). The handler runs on the
 * faulting thread; it copies the page before unprotecting it, so the copy
 * is the content at the checkpoint.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "mptrack.h"

static struct mptrack *active;
static int installed;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	struct mptrack *t = active;
	uintptr_t a = (uintptr_t)si->si_addr;
	char *page;

	(void)uc;
	if (!t || a < (uintptr_t)t->base || a >= (uintptr_t)t->base + t->len ||
	    t->n == t->cap) {
		signal(sig, SIG_DFL); /* a real crash: fault again, die */
		return;
	}
	page = (char *)(a & ~(uintptr_t)(t->pgsz - 1));
	memcpy(t->store + t->n * t->pgsz, page, t->pgsz);
	t->pages[t->n++] = (size_t)(page - t->base) / t->pgsz;
	if (mprotect(page, t->pgsz, PROT_READ | PROT_WRITE))
		signal(sig, SIG_DFL);
}

void mptrack_init(struct mptrack *t, size_t cap)
{
	memset(t, 0, sizeof(*t));
	t->pgsz = bench_pgsz();
	t->cap = cap;
	t->store = mmap(NULL, cap * t->pgsz, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	t->pages = malloc(cap * sizeof(*t->pages));
	if (t->store == MAP_FAILED || !t->pages)
		bench_fail("mptrack: out of memory");
	if (!installed) {
		struct sigaction sa = {0};

		sa.sa_sigaction = on_segv;
		sa.sa_flags = SA_SIGINFO | SA_NODEFER;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSEGV, &sa, NULL))
			bench_fail("sigaction");
		installed = 1;
	}
}

void mptrack_free(struct mptrack *t)
{
	if (active == t)
		active = NULL;
	munmap(t->store, t->cap * t->pgsz);
	free(t->pages);
}

void mptrack_arm(struct mptrack *t, char *base, size_t len)
{
	t->base = base;
	t->len = len;
	t->n = 0;
	active = t;
	if (mprotect(base, len, PROT_READ))
		bench_fail("mprotect PROT_READ");
}

void mptrack_rollback(struct mptrack *t)
{
	/* The page is still writable from its fault: copy, then unprotect
	 * the whole range in one call (which also merges the split VMAs). */
	for (size_t i = 0; i < t->n; i++)
		memcpy(t->base + t->pages[i] * t->pgsz, t->store + i * t->pgsz,
		       t->pgsz);
	mptrack_disarm(t);
}

void mptrack_disarm(struct mptrack *t)
{
	if (mprotect(t->base, t->len, PROT_READ | PROT_WRITE))
		bench_fail("mprotect PROT_READ|PROT_WRITE");
	active = NULL;
}
