// SPDX-License-Identifier: MIT
/*
 * A simulation that checkpoints to disk and resumes in another process.
 *
 * The state is a 64 MiB world in an anonymous arena; each step changes a
 * few cells scattered over it. Run 1 simulates STEPS steps, saving a
 * checkpoint file every EVERY steps (cow_snapshot + cow_snap_save, which
 * writes only the pages that differ from the base, zeros here, and
 * replaces the file atomically), and stops. Run 2, a new process, opens a
 * fresh arena, loads the file (cow_snap_load), rolls back to it and goes
 * on to 2 x STEPS; then it checks its world against an uninterrupted run.
 * Each save prints the file's size next to the arena's.
 *
 * usage: resume                 runs both, as two processes, in a scratch
 *                               directory
 *        resume first FILE      run 1
 *        resume continue FILE   run 2
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowarena.h"

#define WORLD (64u << 20)
#define STEPS 1000u
#define EVERY 250u
#define TOUCH 4 /* cells a step changes */

struct world {
	uint64_t step; /* steps done */
	uint64_t cell[];
};
#define NCELLS ((WORLD - sizeof(struct world)) / sizeof(uint64_t))

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

/* One step: a few cells, chosen and changed by the step's number. */
static void step(struct world *w)
{
	uint64_t s = ++w->step;

	for (int i = 0; i < TOUCH; i++) {
		uint64_t c = mix(s * TOUCH + (uint64_t)i) % NCELLS;

		w->cell[c] = mix(w->cell[c] + s);
	}
}

static int fail(const char *what, int r)
{
	fprintf(stderr, "resume: %s: %s\n", what, cow_strerror(r));
	return 1;
}

static cow_arena *open_world(void)
{
	cow_arena *a;
	int r = cow_open_anon(&a, WORLD, NULL);

	if (r < 0) {
		fail("cow_open_anon", r);
		exit(1);
	}
	return a;
}

static int first(const char *file)
{
	cow_arena *a = open_world();
	struct world *w = cow_base(a);
	struct stat st;
	cow_snap *s;
	int r;

	while (w->step < STEPS) {
		step(w);
		if (w->step % EVERY)
			continue;
		r = cow_snapshot(a, &s);
		if (r == 0)
			r = cow_snap_save(s, file, 0);
		cow_snap_release(s);
		if (r < 0)
			return fail("checkpoint", r);
		if (stat(file, &st))
			return 1;
		printf("run 1: step %4llu: checkpoint %lld KiB for a %u MiB "
		       "world\n",
		       (unsigned long long)w->step, (long long)st.st_size >> 10,
		       WORLD >> 20);
	}
	printf("run 1: stops at step %llu\n", (unsigned long long)w->step);
	return cow_close(a) < 0;
}

static int resume(const char *file)
{
	cow_arena *a = open_world(), *b;
	struct world *w = cow_base(a), *ref;
	cow_snap *s;
	int r, same;

	r = cow_snap_load(a, file, &s);
	if (r == 0)
		r = cow_rollback(a, s);
	if (r < 0)
		return fail("load", r);
	printf("run 2: resumes at step %llu from %s\n",
	       (unsigned long long)w->step, file);
	while (w->step < 2 * STEPS)
		step(w);
	/* An uninterrupted run for comparison. */
	b = open_world();
	ref = cow_base(b);
	while (ref->step < 2 * STEPS)
		step(ref);
	same = !memcmp(w, ref, WORLD);
	printf("run 2: step %llu, %s an uninterrupted run\n",
	       (unsigned long long)w->step, same ? "equal to" : "DIFFERS from");
	cow_close(b);
	cow_close(a);
	return !same;
}

/* Both runs, each a process of its own, on a scratch file. */
static int both(const char *self)
{
	char dir[] = "/tmp/cowarena-resume.XXXXXX", file[64];
	const char *mode[2] = {"first", "continue"};
	int status = 0;

	if (!mkdtemp(dir))
		return 1;
	snprintf(file, sizeof(file), "%s/world.snap", dir);
	for (int i = 0; i < 2 && status == 0; i++) {
		pid_t pid;

		fflush(NULL);
		pid = fork();
		if (pid == 0) {
			execl(self, self, mode[i], file, (char *)NULL);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &status, 0) < 0)
			status = 1;
	}
	unlink(file);
	rmdir(dir);
	return status != 0;
}

int main(int argc, char **argv)
{
	if (argc == 1)
		return both("/proc/self/exe");
	if (argc == 3 && !strcmp(argv[1], "first"))
		return first(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "continue"))
		return resume(argv[2]);
	fprintf(stderr, "usage: resume [first|continue FILE]\n");
	return 2;
}
