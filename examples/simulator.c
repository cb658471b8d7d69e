// SPDX-License-Identifier: MIT
/*
 * A search that checkpoints before every move and rolls back on dead ends.
 *
 * The state is a 4 MiB world of counters in an anonymous arena. A move
 * changes a handful of cells scattered over the world (a few pages); a
 * position is a dead end when a checksum of the touched cells says so. The
 * explorer runs a depth-first search: snapshot, move, recurse or roll back
 * at once, roll back to try the next move, release. Each checkpoint costs
 * the pages written since the last one, not the 4 MiB.
 *
 * At the end it rolls back to the root and checks the world is exactly the
 * starting one, then prints checkpoints and rollbacks per second, the
 * memory snapshots held at the deepest point, and for scale what a
 * checkpoint by copying the whole world would cost.
 *
 * usage: simulator [SECONDS]   (default 1.5)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cowarena.h"

#define WORLD (4u << 20)
#define CELLS (WORLD / sizeof(uint32_t))
#define BRANCH 4
#define DEPTH 10
#define TOUCH 6 /* cells a move changes */

static cow_arena *arena;
static uint32_t *world;
static unsigned long checkpoints, rollbacks, deadends, deepest;
static size_t peak_bytes, peak_snaps;
static double deadline;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The naive alternative: copy the whole world at each checkpoint. */
static double full_copy_us(void)
{
	char *buf = malloc(WORLD);
	double t0, best = 1e9;

	if (!buf)
		return 0;
	memset(buf, 0, WORLD);
	for (int i = 0; i < 20; i++) {
		t0 = now();
		memcpy(buf, world, WORLD);
		__asm__ volatile("" : : "r"(buf) : "memory");
		t0 = (now() - t0) * 1e6;
		best = t0 < best ? t0 : best;
	}
	free(buf);
	return best;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

/* Applies move m at a position identified by key; returns a checksum of
 * the cells it touched. */
static uint32_t play(uint64_t key, int m)
{
	uint32_t sum = 0;

	for (int i = 0; i < TOUCH; i++) {
		uint64_t h = mix(key * 31 + (uint64_t)m * 7 + (uint64_t)i);
		uint32_t *c = &world[h % CELLS];

		*c = *c * 3 + (uint32_t)(h >> 40) + 1;
		sum += *c;
	}
	return sum;
}

static void note_memory(void)
{
	struct cow_stats st;

	if (cow_stats(arena, &st) == 0 && st.saved_bytes > peak_bytes) {
		peak_bytes = st.saved_bytes;
		peak_snaps = st.snapshots;
	}
}

static int explore(uint64_t key, int depth)
{
	if (depth == DEPTH || now() > deadline) {
		if ((unsigned long)depth > deepest) {
			deepest = (unsigned long)depth;
			note_memory();
		}
		return 0;
	}
	for (int m = 0; m < BRANCH; m++) {
		cow_snap *cp;
		uint32_t sum;
		int r;

		r = cow_snapshot(arena, &cp);
		if (r < 0)
			return r;
		checkpoints++;
		sum = play(key, m);
		if (sum % 5 == 0) {
			deadends++; /* dead end: undo the move at once */
		} else {
			r = explore(mix(key + sum), depth + 1);
			if (r < 0) {
				cow_snap_release(cp);
				return r;
			}
		}
		r = cow_rollback(arena, cp);
		cow_snap_release(cp);
		if (r < 0)
			return r;
		rollbacks++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.5, t0, t;
	uint64_t before = 0, after = 0;
	struct cow_stats st;
	cow_snap *root;
	int r;

	r = cow_open_anon(&arena, WORLD, NULL);
	if (r < 0) {
		fprintf(stderr, "cow_open_anon: %s\n", cow_strerror(r));
		return 1;
	}
	world = cow_base(arena);
	for (size_t i = 0; i < CELLS; i++)
		world[i] = (uint32_t)mix(i);
	for (size_t i = 0; i < CELLS; i++)
		before = before * 1099511628211ULL + world[i];
	r = cow_snapshot(arena, &root);
	if (r < 0) {
		fprintf(stderr, "cow_snapshot: %s\n", cow_strerror(r));
		return 1;
	}
	cow_stats(arena, &st);
	printf("world: %u MiB, %s tracking; root snapshot holds %.1f MiB\n",
	       WORLD >> 20,
	       st.tracking == COW_TRACK_UFFD_WP ? "userfaultfd" : "compare",
	       (double)st.saved_bytes / (1 << 20));

	t0 = now();
	deadline = t0 + secs;
	for (uint64_t game = 1; now() < deadline && r == 0; game++)
		r = explore(game, 0);
	t = now() - t0;
	if (r < 0) {
		fprintf(stderr, "search: %s\n", cow_strerror(r));
		return 1;
	}

	r = cow_rollback(arena, root);
	for (size_t i = 0; i < CELLS; i++)
		after = after * 1099511628211ULL + world[i];
	cow_snap_release(root);
	cow_stats(arena, &st);
	printf("%lu checkpoints and %lu rollbacks in %.2f s: %.0f "
	       "checkpoints/s, %.0f rollbacks/s (%lu dead ends)\n",
	       checkpoints, rollbacks, t, (double)checkpoints / t,
	       (double)rollbacks / t, deadends);
	printf("memory held at depth %lu: %zu snapshots, %.1f KiB of saved "
	       "pages (the world is %u KiB)\n",
	       deepest, peak_snaps, (double)peak_bytes / 1024, WORLD >> 10);
	printf("for scale: one checkpoint by copying the whole world takes "
	       "%.0f us here\n",
	       full_copy_us());
	printf("back at the root: world %s; saved pages now %zu\n",
	       r == 0 && after == before ? "identical to the start"
					 : "DIFFERENT",
	       st.saved_pages);
	cow_close(arena);
	return r == 0 && after == before && st.saved_pages == 0 ? 0 : 1;
}
