// SPDX-License-Identifier: MIT
/*
 * Checkpoints on disk: k pages written in an anonymous arena (1 GiB; 128
 * MiB with --short, 4 MiB with --quick), saved to a file and loaded back.
 *
 * cowarena: cow_snap_save of a snapshot (the pages that differ from the
 * base), then cow_snap_load of the file; the same with COW_SNAP_FULL
 * (every page). Peer, what a whole-memory checkpoint does: pwrite of the
 * whole arena to a file, fdatasync, and pread of it back into a buffer.
 * Every save is durable (fdatasync; the snapshot file also syncs its
 * directory). Timed: the save and the load; then each run checks the
 * written pages in what it loaded (a rollback to the loaded snapshot, or
 * the buffer read back), untimed.
 *
 * Second table: the file sizes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "cowarena.h"

#define SEED 0x5eed0012u

enum { C_DELTA, C_FULL, C_WHOLE, NC };
static const char *const names[NC] = {
    "cow_snap_save + load",
    "COW_SNAP_FULL save + load",
    "whole arena write + fdatasync + read",
};

struct ctx {
	size_t size, npages, pg, k;
	cow_arena *a;
	cow_snap *s;	 /* the state to save: k pages written */
	char path[4096]; /* the snapshot file */
	char whole[4096];
	int wfd;
	char *buf;		/* the whole checkpoint read back */
	double bytes[NC];	/* file size of each contender */
};

static void check_pages(const char *base, const struct ctx *x, const char *who)
{
	for (size_t i = 0; i < x->k; i++) {
		size_t p = bench_spread(i, x->k, x->npages);

		BENCH_CHECK(bench_page_ok(base, p, SEED),
			    "%s: page %zu not restored (k=%zu)", who, p, x->k);
	}
}

static double file_bytes(const char *path)
{
	struct stat st;

	BENCH_CHECK(stat(path, &st) == 0, "stat %s: %s", path,
		    strerror(errno));
	return (double)st.st_size;
}

static double run_one(void *arg, int c)
{
	struct ctx *x = arg;
	cow_snap *l = NULL;
	uint64_t t0, t1;
	int r = 0;

	t0 = bench_now();
	if (c == C_WHOLE) {
		ssize_t w = pwrite(x->wfd, cow_base(x->a), x->size, 0);

		if (w != (ssize_t)x->size || fdatasync(x->wfd))
			r = -errno;
		else if (pread(x->wfd, x->buf, x->size, 0) != (ssize_t)x->size)
			r = -errno;
	} else {
		r = cow_snap_save(x->s, x->path, c == C_FULL ? COW_SNAP_FULL
							     : 0);
		if (r == 0)
			r = cow_snap_load(x->a, x->path, &l);
	}
	t1 = bench_now();
	BENCH_CHECK(r == 0, "%s: %s", names[c], cow_strerror(r));
	if (c == C_WHOLE) {
		check_pages(x->buf, x, names[c]);
		x->bytes[c] = file_bytes(x->whole);
	} else {
		x->bytes[c] = file_bytes(x->path);
		r = cow_rollback(x->a, l);
		BENCH_CHECK(r == 0, "cow_rollback: %s", cow_strerror(r));
		check_pages(cow_base(x->a), x, names[c]);
		cow_snap_release(l);
		unlink(x->path);
	}
	return (double)(t1 - t0);
}

int main(int argc, char **argv)
{
	static const double fracs[] = {0, 0, 0.001, 0.01, 0.10};
	static const size_t ks[] = {1, 16, 0, 0, 0};
	struct bench_table *t, *ts;
	struct ctx x = {0};
	char sz[32], title[160], lab[64];
	int r;

	bench_init(argc, argv,
		   "bench_snapfile: checkpoints on disk, cow_snap_save + "
		   "cow_snap_load vs writing and reading the whole arena");
	x.size =
	    bench_pick((size_t)1 << 30, (size_t)128 << 20, (size_t)4 << 20);
	x.pg = bench_pgsz();
	x.npages = x.size / x.pg;
	r = cow_open_anon(&x.a, x.size, NULL);
	BENCH_CHECK(r == 0, "cow_open_anon: %s", cow_strerror(r));
	snprintf(x.path, sizeof(x.path), "%s/state.snap", bench_tmpdir());
	x.wfd = bench_tmpfile("whole", x.whole, sizeof(x.whole));
	x.buf = malloc(x.size);
	BENCH_CHECK(x.buf, "out of memory");

	bench_size_label(sz, sizeof(sz), x.size);
	snprintf(title, sizeof(title),
		 "Checkpoint on disk: save + load of k pages written in a %s "
		 "arena",
		 sz);
	t = bench_table("snapfile", title, "pages written", BENCH_TIME,
			C_DELTA, NC, names);
	ts = bench_table("snapfile-size", "Checkpoint file size",
			 "pages written", BENCH_BYTES, C_DELTA, NC, names);
	for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
		int row;

		x.k = bench_kpages(ks[i], fracs[i], x.npages);
		for (size_t j = 0; j < x.k; j++)
			bench_fill_page(cow_base(x.a),
					bench_spread(j, x.k, x.npages), SEED);
		r = cow_snapshot(x.a, &x.s);
		BENCH_CHECK(r == 0, "cow_snapshot: %s", cow_strerror(r));
		bench_klabel(lab, sizeof(lab), x.k, x.npages,
			     ks[i] ? 0 : fracs[i]);
		row = bench_row(t, lab, (double)x.k);
		bench_measure(t, row, bench_opt.reps, run_one, &x);
		row = bench_row(ts, lab, (double)x.k);
		for (int c = 0; c < NC; c++)
			bench_cell(ts, row, c, &x.bytes[c], 1);
		cow_snap_release(x.s);
		r = cow_discard(x.a);
		BENCH_CHECK(r == 0, "cow_discard: %s", cow_strerror(r));
	}
	bench_note(t, "Written pages are spread evenly (one page every n/k) "
		      "and hold known bytes; the snapshot is taken before the "
		      "timing. Each save is durable (fdatasync of the file, "
		      "and for the snapshot files of the directory); each "
		      "load reads the file back (cow_snap_load into the same "
		      "arena, checking every checksum; pread of the whole "
		      "file into a buffer), from the page cache the save "
		      "left. Untimed, each run then checks every written page "
		      "in what it loaded.");
	bench_note(t, "Scratch files in %s.", bench_opt.dir);
	bench_end(t);
	bench_note(ts, "Snapshot files hold the saved pages plus a page of "
		       "header and index (one more index page per 256 pages).");
	bench_end(ts);
	cow_close(x.a);
	close(x.wfd);
	free(x.buf);
	return 0;
}
