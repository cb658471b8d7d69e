// SPDX-License-Identifier: MIT
/*
 * The benchmark framework (bench.h): options, timing, interleaved runs,
 * statistics, and the table in markdown, CSV and an SVG plot.
 *
 * Spread is min-max, not a percentile range: with 3 to 7 runs per cell a
 * percentile says little, and the extremes show how noisy the shared
 * machine was while the cell was measured.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "compat.h"

struct bench_opts bench_opt = {BENCH_FULL, 5, NULL, "/var/tmp", 15e9};

#define MAX_CONT 12
#define MAX_ROWS 64
#define MAX_NOTES 16

struct cell {
	int n; /* samples; 0 = n/a */
	double med, min, max;
};

struct bench_table {
	char *name, *title, *xname;
	enum bench_unit unit;
	int ours, ncont, nrows, nnotes;
	char *cont[MAX_CONT];
	char *label[MAX_ROWS];
	double x[MAX_ROWS];
	struct cell cell[MAX_ROWS][MAX_CONT];
	char *note[MAX_NOTES];
	int slow[MAX_CONT]; /* went over the time budget: not run again */
	int reps;	    /* the most samples a cell was given */
	int slow_noted;
	int headlines; /* headline rows written so far */
};

static void usage(const char *what, int status)
{
	fprintf(
	    status ? stderr : stdout,
	    "%s\n"
	    "options:\n"
	    "  --quick     tiny sizes, one run: checks that it still works\n"
	    "  --short     smaller sizes, 3 runs (a few seconds)\n"
	    "  --reps N    runs per contender and row (default 5)\n"
	    "  --out DIR   also write DIR/<table>.md, .csv and .svg\n"
	    "  --dir DIR   where scratch files go (default /var/tmp)\n",
	    what);
	exit(status);
}

/* Creates dir and its missing parents, as mkdir -p; exits on failure. */
static void mkdir_p(const char *dir)
{
	char p[4096];
	size_t n = strlen(dir);

	BENCH_CHECK(n > 0 && n < sizeof(p), "--out: bad directory name");
	memcpy(p, dir, n + 1);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		BENCH_CHECK(mkdir(p, 0755) == 0 || errno == EEXIST,
			    "--out: cannot create a parent directory");
		*s = '/';
	}
	BENCH_CHECK(mkdir(p, 0755) == 0 || errno == EEXIST,
		    "--out: cannot create the directory");
}

void bench_init(int argc, char **argv, const char *what)
{
	int reps = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--quick"))
			bench_opt.mode = BENCH_QUICK;
		else if (!strcmp(a, "--short"))
			bench_opt.mode = BENCH_SHORT;
		else if (!strcmp(a, "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (!strcmp(a, "--out") && i + 1 < argc)
			bench_opt.out = argv[++i];
		else if (!strcmp(a, "--dir") && i + 1 < argc)
			bench_opt.dir = argv[++i];
		else if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			usage(what, 0);
		else
			usage(what, 2);
	}
	bench_opt.reps = bench_opt.mode == BENCH_QUICK	 ? 1
			 : bench_opt.mode == BENCH_SHORT ? 3
							 : 5;
	if (reps > 0)
		bench_opt.reps = reps;
	bench_opt.budget = bench_opt.mode == BENCH_FULL ? 15e9 : 2e9;
	/* Quick runs only prove the programs work: never overwrite the
	 * results of a real run with their numbers. */
	if (bench_opt.mode == BENCH_QUICK)
		bench_opt.out = NULL;
	if (bench_opt.out)
		mkdir_p(bench_opt.out);
	setvbuf(stdout, NULL, _IOLBF, 0);
}

size_t bench_pick(size_t full, size_t shrt, size_t quick)
{
	return bench_opt.mode == BENCH_FULL    ? full
	       : bench_opt.mode == BENCH_SHORT ? shrt
					       : quick;
}

uint64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "bench: CHECK FAILED: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");

	if (!d)
		bench_fail("out of memory");
	return d;
}

struct bench_table *bench_table(const char *name, const char *title,
				const char *xname, enum bench_unit unit,
				int ours, int ncont, const char *const *names)
{
	struct bench_table *t = calloc(1, sizeof(*t));

	if (!t || ncont > MAX_CONT)
		bench_fail("bench_table(%s): too many contenders", name);
	t->name = xstrdup(name);
	t->title = xstrdup(title);
	t->xname = xname ? xstrdup(xname) : NULL;
	t->unit = unit;
	t->ours = ours;
	t->ncont = ncont;
	for (int c = 0; c < ncont; c++)
		t->cont[c] = xstrdup(names[c]);
	return t;
}

void bench_note(struct bench_table *t, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (t->nnotes == MAX_NOTES)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		bench_fail("out of memory");
	va_end(ap);
	t->note[t->nnotes++] = s;
}

int bench_row(struct bench_table *t, const char *label, double x)
{
	if (t->nrows == MAX_ROWS)
		bench_fail("bench_row(%s): too many rows", t->name);
	t->label[t->nrows] = xstrdup(label);
	t->x[t->nrows] = x;
	return t->nrows++;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

void bench_cell(struct bench_table *t, int row, int c, const double *v, int n)
{
	double s[256];
	int m = 0;
	struct cell *ce = &t->cell[row][c];

	if (n > t->reps)
		t->reps = n;

	for (int i = 0; i < n && m < 256; i++)
		if (!isnan(v[i]))
			s[m++] = v[i];
	ce->n = m;
	if (!m)
		return;
	qsort(s, (size_t)m, sizeof(s[0]), cmp_double);
	ce->min = s[0];
	ce->max = s[m - 1];
	ce->med = m % 2 ? s[m / 2] : (s[m / 2 - 1] + s[m / 2]) / 2;
}

void bench_measure(struct bench_table *t, int row, int reps, bench_fn fn,
		   void *ctx)
{
	double v[MAX_CONT][256];
	int skip[MAX_CONT] = {0};

	if (reps < 1)
		reps = 1;
	if (reps > 256)
		reps = 256;
	for (int c = 0; c < t->ncont; c++)
		skip[c] = t->slow[c];
	for (int r = 0; r < reps; r++) {
		for (int i = 0; i < t->ncont; i++) {
			int c = (i + r) % t->ncont;
			uint64_t t0 = bench_now();

			v[c][r] = skip[c] ? BENCH_NA : fn(ctx, c);
			if (isnan(v[c][r]))
				skip[c] = 1;
			/* A contender far slower than the others: keep what
			 * was measured, do not repeat it, and skip it in the
			 * table's later (larger) rows. */
			if (!skip[c] &&
			    (double)(bench_now() - t0) > bench_opt.budget) {
				skip[c] = 1;
				t->slow[c] = 1;
			}
		}
	}
	for (int c = 0; c < t->ncont; c++)
		if (t->slow[c] && !t->slow_noted) {
			t->slow_noted = 1;
			bench_note(t,
				   "A contender whose one run took more than "
				   "%.0f s is measured once there and not run "
				   "in the later rows (—).",
				   bench_opt.budget / 1e9);
		}
	for (int c = 0; c < t->ncont; c++)
		bench_cell(t, row, c, v[c], reps);
}

/* Formats v in the table's unit, with 3 significant digits. */
static void fmt_value(char *b, size_t n, enum bench_unit u, double v)
{
	static const char *tu[] = {"ns", "µs", "ms", "s"};
	static const char *bu[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;

	switch (u) {
	case BENCH_TIME:
		while (v >= 1000 && i < 3) {
			v /= 1000;
			i++;
		}
		snprintf(b, n, "%.3g %s", v, tu[i]);
		break;
	case BENCH_BYTES:
		while (v >= 1024 && i < 4) {
			v /= 1024;
			i++;
		}
		snprintf(b, n, "%.3g %s", v, bu[i]);
		break;
	case BENCH_RATE:
		if (v >= 1e6)
			snprintf(b, n, "%.3gM/s", v / 1e6);
		else if (v >= 1e3)
			snprintf(b, n, "%.3gk/s", v / 1e3);
		else
			snprintf(b, n, "%.3g/s", v);
		break;
	default:
		if (v == (double)(long long)v && fabs(v) < 1e15)
			snprintf(b, n, "%lld", (long long)v);
		else
			snprintf(b, n, "%.4g", v);
	}
}

static double ratio(const struct bench_table *t, int row, int c)
{
	const struct cell *o = &t->cell[row][t->ours], *p = &t->cell[row][c];

	if (!o->n || !p->n || o->med <= 0 || p->med <= 0)
		return NAN;
	return t->unit == BENCH_RATE ? o->med / p->med : p->med / o->med;
}

static void fmt_ratio(char *b, size_t n, double r)
{
	if (isnan(r))
		snprintf(b, n, "—");
	else if (r >= 100)
		snprintf(b, n, "%.0f×", r);
	else if (r >= 10)
		snprintf(b, n, "%.1f×", r);
	else
		snprintf(b, n, "%.2f×", r);
}

static void print_md(const struct bench_table *t, FILE *f)
{
	char a[48], b[48], c[48];

	fprintf(f, "### %s\n\n| %s |", t->title, t->xname ? t->xname : "case");
	for (int k = 0; k < t->ncont; k++)
		fprintf(f, " %s |", t->cont[k]);
	if (t->ours >= 0)
		for (int k = 0; k < t->ncont; k++)
			if (k != t->ours)
				fprintf(f, " vs %s |", t->cont[k]);
	fprintf(f, "\n|---|");
	for (int k = 0; k < t->ncont; k++)
		fprintf(f, "---:|");
	if (t->ours >= 0)
		for (int k = 0; k < t->ncont - 1; k++)
			fprintf(f, "---:|");
	fprintf(f, "\n");
	for (int r = 0; r < t->nrows; r++) {
		fprintf(f, "| %s |", t->label[r]);
		for (int k = 0; k < t->ncont; k++) {
			const struct cell *ce = &t->cell[r][k];

			if (!ce->n) {
				fprintf(f, " — |");
				continue;
			}
			fmt_value(a, sizeof(a), t->unit, ce->med);
			if (ce->n == 1 || ce->min == ce->max) {
				fprintf(f, " %s |", a);
				continue;
			}
			fmt_value(b, sizeof(b), t->unit, ce->min);
			fmt_value(c, sizeof(c), t->unit, ce->max);
			fprintf(f, " %s <sub>%s–%s</sub> |", a, b, c);
		}
		if (t->ours >= 0)
			for (int k = 0; k < t->ncont; k++) {
				if (k == t->ours)
					continue;
				fmt_ratio(a, sizeof(a), ratio(t, r, k));
				fprintf(f, " %s |", a);
			}
		fprintf(f, "\n");
	}
	fprintf(f, "\n");
	if (t->ours >= 0)
		fprintf(f,
			"Median of %d run%s per cell, interleaved, "
			"<sub>min–max</sub>. \"vs X\" = how many times %s "
			"%s is than X (>1: %s is better).\n",
			t->reps, t->reps == 1 ? "" : "s",
			t->unit == BENCH_RATE	? "higher the rate of"
			: t->unit == BENCH_TIME ? "faster"
						: "smaller",
			t->cont[t->ours], t->cont[t->ours]);
	for (int i = 0; i < t->nnotes; i++)
		fprintf(f, "%s%s\n", t->ours >= 0 || i ? "" : "\n", t->note[i]);
	fprintf(f, "\n");
}

static void write_csv(const struct bench_table *t, FILE *f)
{
	fprintf(f, "case,x");
	for (int k = 0; k < t->ncont; k++)
		fprintf(f, ",\"%s median\",\"%s min\",\"%s max\"", t->cont[k],
			t->cont[k], t->cont[k]);
	fprintf(f, "\n");
	for (int r = 0; r < t->nrows; r++) {
		fprintf(f, "\"%s\",%g", t->label[r], t->x[r]);
		for (int k = 0; k < t->ncont; k++) {
			const struct cell *ce = &t->cell[r][k];

			if (ce->n)
				fprintf(f, ",%.6g,%.6g,%.6g", ce->med, ce->min,
					ce->max);
			else
				fprintf(f, ",NaN,NaN,NaN");
		}
		fprintf(f, "\n");
	}
}

static int have_gnuplot(void)
{
	return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

/* Escapes a name for a single-quoted gnuplot string. */
static void gp_str(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++)
		if (*s == '\'')
			fputs("''", f);
		else
			fputc(*s, f);
	fputc('\'', f);
}

static const struct bench_table *sort_t;

static int cmp_row_x(const void *a, const void *b)
{
	double x = sort_t->x[*(const int *)a], y = sort_t->x[*(const int *)b];

	return x < y ? -1 : x > y;
}

/* The plot's data: one line per row with an x (> 0), sorted by x: x,
 * then each contender's median (µs for times). */
static int write_plot_data(const struct bench_table *t, const char *path)
{
	double s = t->unit == BENCH_TIME ? 1000 : 1;
	int order[MAX_ROWS];
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	for (int r = 0; r < t->nrows; r++)
		order[r] = r;
	sort_t = t;
	qsort(order, (size_t)t->nrows, sizeof(order[0]), cmp_row_x);
	for (int i = 0; i < t->nrows; i++) {
		int r = order[i];

		if (t->x[r] <= 0)
			continue;
		fprintf(f, "%g", t->x[r]);
		for (int k = 0; k < t->ncont; k++)
			if (t->cell[r][k].n)
				fprintf(f, " %.6g", t->cell[r][k].med / s);
			else
				fprintf(f, " NaN");
		fprintf(f, "\n");
	}
	fclose(f);
	return 0;
}

static void plot(const struct bench_table *t, const char *dir)
{
	char gp[4096], dat[4096], cmd[4200];
	int points = 0;
	FILE *f;

	if (!t->xname || !have_gnuplot())
		return;
	/* Rows without an x (0: a variant of a row, as "256, the log past
	 * its first lap") stay in the table only. */
	for (int r = 0; r < t->nrows; r++)
		points += t->x[r] > 0;
	if (points < 2)
		return;
	snprintf(gp, sizeof(gp), "%s/%s.gp", dir, t->name);
	snprintf(dat, sizeof(dat), "%s/%s.dat", dir, t->name);
	if (write_plot_data(t, dat))
		return;
	f = fopen(gp, "w");
	if (!f)
		return;
	fprintf(f,
		"set terminal svg size 800,600 dynamic enhanced "
		"font 'sans,12' background '#ffffff'\n"
		"set output '%s/%s.svg'\n"
		"set datafile missing 'NaN'\n"
		"set logscale xy\nset grid\n"
		"set key below noenhanced\n"
		"set xlabel ",
		dir, t->name);
	gp_str(f, t->xname);
	fprintf(f, "\nset ylabel ");
	gp_str(f, t->unit == BENCH_TIME	   ? "time (µs), median"
		  : t->unit == BENCH_RATE  ? "per second, median"
		  : t->unit == BENCH_BYTES ? "bytes, median"
					   : "median");
	fprintf(f, "\nset title ");
	gp_str(f, t->title);
	fprintf(f, " noenhanced\nplot ");
	for (int k = 0; k < t->ncont; k++) {
		fprintf(f, "%s'%s' using 1:%d with linespoints lw 2 title ",
			k ? ", " : "", dat, 2 + k);
		gp_str(f, t->cont[k]);
	}
	fprintf(f, "\n");
	fclose(f);
	snprintf(cmd, sizeof(cmd), "gnuplot '%s' 2>/dev/null", gp);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: gnuplot failed on %s\n", gp);
	unlink(gp);
	unlink(dat);
}

void bench_headline(struct bench_table *t, int row, const char *what,
		    int npeers, const int *peers)
{
	char p[4096], v[48];
	FILE *f;

	if (!bench_opt.out || row < 0 || row >= t->nrows || t->ours < 0)
		return;
	snprintf(p, sizeof(p), "%s/headline-%s.md", bench_opt.out, t->name);
	f = fopen(p, t->headlines++ ? "a" : "w");
	if (!f)
		return;
	fmt_value(v, sizeof(v), t->unit, t->cell[row][t->ours].med);
	fprintf(f, "| %s | %s |", what, t->cell[row][t->ours].n ? v : "—");
	for (int i = 0; i < npeers; i++) {
		const struct cell *ce = &t->cell[row][peers[i]];

		fmt_value(v, sizeof(v), t->unit, ce->med);
		fprintf(f, "%s %s %s", i ? ";" : "", t->cont[peers[i]],
			ce->n ? v : "—");
	}
	fprintf(f, " |");
	for (int i = 0; i < npeers; i++) {
		fmt_ratio(v, sizeof(v), ratio(t, row, peers[i]));
		fprintf(f, "%s %s", i ? ";" : "", v);
	}
	fprintf(f, " |\n");
	fclose(f);
}

void bench_end(struct bench_table *t)
{
	print_md(t, stdout);
	if (bench_opt.out) {
		char p[4096];
		FILE *f;

		snprintf(p, sizeof(p), "%s/%s.md", bench_opt.out, t->name);
		f = fopen(p, "w");
		if (f) {
			print_md(t, f);
			fclose(f);
		}
		snprintf(p, sizeof(p), "%s/%s.csv", bench_opt.out, t->name);
		f = fopen(p, "w");
		if (f) {
			write_csv(t, f);
			fclose(f);
		}
		plot(t, bench_opt.out);
	}
	for (int k = 0; k < t->ncont; k++)
		free(t->cont[k]);
	for (int r = 0; r < t->nrows; r++)
		free(t->label[r]);
	for (int i = 0; i < t->nnotes; i++)
		free(t->note[i]);
	free(t->name);
	free(t->title);
	free(t->xname);
	free(t);
}

size_t bench_pgsz(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static uint64_t word(size_t p, size_t i, uint64_t seed)
{
	uint64_t x = ((uint64_t)p << 20 | i) ^ seed;

	x ^= x >> 31;
	x *= 0x9e3779b97f4a7c15ull;
	return x ^ (x >> 29);
}

void bench_fill_at(char *dst, size_t p, uint64_t seed)
{
	size_t n = bench_pgsz() / 8;
	uint64_t *w = (uint64_t *)dst;

	for (size_t i = 0; i < n; i++)
		w[i] = word(p, i, seed);
}

void bench_fill_page(char *base, size_t p, uint64_t seed)
{
	bench_fill_at(base + p * bench_pgsz(), p, seed);
}

int bench_page_ok(const char *base, size_t p, uint64_t seed)
{
	size_t n = bench_pgsz() / 8;
	const uint64_t *w = (const uint64_t *)(base + p * bench_pgsz());

	for (size_t i = 0; i < n; i++)
		if (w[i] != word(p, i, seed))
			return 0;
	return 1;
}

void bench_write_file(int fd, size_t npages, uint64_t seed)
{
	size_t pg = bench_pgsz(), chunk = 256;
	char *buf = malloc(chunk * pg);

	if (!buf)
		bench_fail("out of memory");
	for (size_t p = 0; p < npages; p += chunk) {
		size_t n = npages - p < chunk ? npages - p : chunk;

		for (size_t i = 0; i < n; i++)
			bench_fill_at(buf + i * pg, p + i, seed);
		if (pwrite(fd, buf, n * pg, (off_t)(p * pg)) !=
		    (ssize_t)(n * pg))
			bench_fail("writing the data file: %s",
				   strerror(errno));
	}
	free(buf);
}

static char tmpdir[4096];

/* Removes the scratch directory and everything in it. */
static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char p[8192];

	if (!d)
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(tmpdir);
}

const char *bench_tmpdir(void)
{
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "%s/cowarena-bench-XXXXXX",
			 bench_opt.dir);
		if (!mkdtemp(tmpdir))
			bench_fail("mkdtemp %s: %s", tmpdir, strerror(errno));
		atexit(remove_tmpdir);
	}
	return tmpdir;
}

int bench_tmpfile(const char *tag, char *path, size_t pathlen)
{
	int fd;

	snprintf(path, pathlen, "%s/%s-XXXXXX", bench_tmpdir(), tag);
	fd = mkstemp(path);
	if (fd < 0)
		bench_fail("mkstemp %s: %s", path, strerror(errno));
	return fd;
}

size_t bench_kpages(size_t k, double frac, size_t npages)
{
	if (!k)
		k = (size_t)(frac * (double)npages);
	if (k < 1)
		k = 1;
	return k > npages ? npages : k;
}

void bench_klabel(char *buf, size_t len, size_t k, size_t npages, double frac)
{
	(void)npages;
	if (frac > 0)
		snprintf(buf, len, "%g %% (%zu)", frac * 100, k);
	else
		snprintf(buf, len, "%zu", k);
}

void bench_size_label(char *buf, size_t len, size_t bytes)
{
	if (bytes >= (1ul << 30) && bytes % (1ul << 30) == 0)
		snprintf(buf, len, "%zu GiB", bytes >> 30);
	else if (bytes >= (1ul << 20))
		snprintf(buf, len, "%zu MiB", bytes >> 20);
	else
		snprintf(buf, len, "%zu KiB", bytes >> 10);
}

static int pagemap_fd(void)
{
	static int fd = -1;

	if (fd < 0)
		fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	BENCH_CHECK(fd >= 0, "/proc/self/pagemap: %s", strerror(errno));
	return fd;
}

size_t bench_pagemap_scan(void *p, size_t len, const struct bench_scan *sp,
			  void *vecp, size_t vlen)
{
	struct page_region *vec = vecp;
	uintptr_t start = (uintptr_t)p, end = start + len;
	size_t pages = 0, pg = bench_pgsz();
	int fd = pagemap_fd();

	while (start < end) {
		struct pm_scan_arg a = {0};
		long r;

		a.size = sizeof(a);
		a.start = start;
		a.end = end;
		a.vec = (uintptr_t)vec;
		a.vec_len = vlen;
		a.flags = sp->flags;
		a.category_inverted = sp->inverted;
		a.category_mask = sp->mask;
		a.category_anyof_mask = sp->anyof;
		a.return_mask = sp->ret;
		r = ioctl(fd, PAGEMAP_SCAN, &a);
		BENCH_CHECK(r >= 0, "PAGEMAP_SCAN: %s", strerror(errno));
		for (long i = 0; i < r; i++)
			pages += (vec[i].end - vec[i].start) / pg;
		/* A vector not filled means the walk reached the end. Do not
		 * rely on walk_end then: Linux 6.18 reports a stale one once
		 * more than 512 regions went out (its internal buffer), and
		 * walking on from it would count pages twice. */
		if ((size_t)r < vlen || a.walk_end <= start)
			break;
		start = a.walk_end;
	}
	return pages;
}

/*
 * One walk of the page tables of [p, p + len) by PAGEMAP_SCAN, asking only
 * for pages not write-protected: the kernel's fastest walk (no page
 * lookups), the least any scan-based tracker pays per checkpoint.
 */
void bench_scan_walk(void *p, size_t len)
{
	static const struct bench_scan written = {0, 0, PAGE_IS_WRITTEN, 0,
						  PAGE_IS_WRITTEN};
	struct page_region vec[64];

	bench_pagemap_scan(p, len, &written, vec, 64);
}

size_t bench_zero_pages(void *p, size_t len)
{
	static const struct bench_scan zero = {0, 0, PAGE_IS_PFNZERO, 0,
					       PAGE_IS_PFNZERO};
	struct page_region vec[64];

	return bench_pagemap_scan(p, len, &zero, vec, 64);
}
