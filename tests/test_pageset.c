// SPDX-License-Identifier: MIT
/*
 * The page sets (src/pageset.c) against a plain bitmap: random adds (in
 * order, as scans report, and out of order), clips, unions, differences,
 * intersections, removes and the page list; after each step the runs are
 * ascending, merged and count their pages, and they cover exactly the
 * bitmap's pages. An allocation failure in an add or a remove leaves the
 * set as it was.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "pageset.h"
#include "sys.h"

#define NPAGES 3000
#define ROUNDS 400

struct model {
	unsigned char bit[NPAGES];
};

static unsigned rnd(unsigned n)
{
	return (unsigned)random() % n;
}

/* Runs ascending, merged (a gap between two), pages counted, and the
 * pages those of m. */
static void check(const struct cow__pageset *s, const struct model *m)
{
	size_t pages = 0, next = 0;
	unsigned char seen[NPAGES] = {0};

	for (size_t i = 0; i < s->n; i++) {
		assert_true(s->v[i].n > 0);
		if (i)
			assert_true(s->v[i].first > next); /* not touching */
		next = s->v[i].first + s->v[i].n;
		assert_true(next <= NPAGES);
		for (size_t p = s->v[i].first; p < next; p++)
			seen[p] = 1;
		pages += s->v[i].n;
	}
	assert_int_equal(pages, s->pages);
	assert_memory_equal(seen, m->bit, NPAGES);
}

static void model_add(struct model *m, size_t first, size_t n)
{
	memset(&m->bit[first], 1, n);
}

static void random_set(struct cow__pageset *s, struct model *m, int ordered)
{
	size_t p = rnd(50);

	cow__pageset_clear(s);
	memset(m, 0, sizeof(*m));
	for (int k = rnd(40); k > 0; k--) {
		size_t first = ordered ? p : rnd(NPAGES), n;

		if (first >= NPAGES)
			break;
		n = 1 + rnd(60);
		if (first + n > NPAGES)
			n = NPAGES - first;
		assert_int_equal(cow__pageset_add(s, first, n), 0);
		model_add(m, first, n);
		/* sometimes touching or overlapping the run just added */
		p = first + (rnd(4) ? n + rnd(100) : rnd((unsigned)n + 1));
	}
	check(s, m);
}

struct collect {
	struct model m;
	size_t last_end;
	int runs;
};

static int collect_run(void *ctx, size_t first, size_t n)
{
	struct collect *c = ctx;

	assert_true(n > 0);
	assert_true(!c->runs || first > c->last_end);
	c->last_end = first + n;
	c->runs++;
	model_add(&c->m, first, n);
	return 0;
}

static int stop_run(void *ctx, size_t first, size_t n)
{
	(void)first;
	(void)n;
	return ++*(int *)ctx == 2 ? -EINTR : 0;
}

static void random_against_bitmap(void **state)
{
	struct cow__pageset x = COW__PAGESET_INIT, y = COW__PAGESET_INIT;
	struct cow__pageset o = COW__PAGESET_INIT;
	struct model mx, my, mo;

	(void)state;
	srandom(10);
	for (int round = 0; round < ROUNDS; round++) {
		int op = rnd(9);

		random_set(&x, &mx, rnd(3) != 0);
		random_set(&y, &my, rnd(3) != 0);
		memset(&mo, 0, sizeof(mo));
		if (op == 0) {
			assert_int_equal(cow__pageset_union(&o, &x, &y), 0);
			for (int p = 0; p < NPAGES; p++)
				mo.bit[p] = mx.bit[p] | my.bit[p];
			check(&o, &mo);
		} else if (op == 1) {
			assert_int_equal(cow__pageset_minus(&o, &x, &y), 0);
			for (int p = 0; p < NPAGES; p++)
				mo.bit[p] = mx.bit[p] & !my.bit[p];
			check(&o, &mo);
		} else if (op == 2) {
			assert_int_equal(cow__pageset_intersect(&o, &x, &y),
					 0);
			for (int p = 0; p < NPAGES; p++)
				mo.bit[p] = mx.bit[p] & my.bit[p];
			check(&o, &mo);
		} else if (op == 3) {
			size_t from = rnd(NPAGES), to = from + rnd(NPAGES);

			cow__pageset_clip(&x, from, to);
			for (size_t p = 0; p < NPAGES; p++)
				if (p < from || p >= to)
					mx.bit[p] = 0;
			check(&x, &mx);
		} else if (op == 4) {
			for (int k = 0; k < 50; k++) {
				size_t p = rnd(NPAGES);

				assert_int_equal(cow__pageset_contains(&x, p),
						 mx.bit[p]);
			}
		} else if (op == 5) {
			struct collect c;
			size_t from = rnd(NPAGES), to = from + rnd(NPAGES);

			memset(&c, 0, sizeof(c));
			assert_int_equal(
			    cow__pageset_each(&x, from, to, collect_run, &c),
			    0);
			for (size_t p = 0; p < NPAGES; p++)
				mo.bit[p] = mx.bit[p] && p >= from && p < to;
			assert_memory_equal(c.m.bit, mo.bit, NPAGES);
		} else if (op == 6) {
			/* removes of random ranges, each after a reserve of
			 * one run, which makes it never fail */
			for (int k = rnd(6); k > 0; k--) {
				size_t from = rnd(NPAGES), n = rnd(200);

				if (from + n > NPAGES)
					n = NPAGES - from;
				assert_int_equal(cow__pageset_reserve(&x, 1),
						 0);
				cow__fault_inject(COW__SYS_MALLOC, 1, ENOMEM,
						  1);
				assert_int_equal(
				    cow__pageset_remove(&x, from, n), 0);
				cow__fault_reset();
				memset(&mx.bit[from], 0, n);
				check(&x, &mx);
			}
		} else if (op == 7) {
			size_t *v = NULL, k = 0;

			assert_int_equal(cow__pageset_pages(&x, &v), 0);
			for (size_t p = 0; p < NPAGES; p++)
				if (mx.bit[p])
					assert_int_equal(v[k++], p);
			assert_int_equal(k, x.pages);
			assert_true(k || !v);
			cow__free(v);
		} else {
			size_t first, end;
			int lo = -1, hi = -1;

			for (int p = 0; p < NPAGES; p++)
				if (mx.bit[p]) {
					if (lo < 0)
						lo = p;
					hi = p + 1;
				}
			if (lo < 0) {
				assert_int_equal(
				    cow__pageset_span(&x, &first, &end),
				    -ENOENT);
			} else {
				assert_int_equal(
				    cow__pageset_span(&x, &first, &end), 0);
				assert_int_equal(first, lo);
				assert_int_equal(end, hi);
			}
		}
	}
	cow__pageset_free(&x);
	cow__pageset_free(&y);
	cow__pageset_free(&o);
	assert_null(x.v);
	assert_int_equal(x.n + x.pages + x.cap, 0);
}

/* Adds of every shape at one spot of a fixed set: the touching and
 * overlapping cases of both paths (append and insert). */
static void add_edges(void **state)
{
	static const size_t cases[][2] = {
	    {0, 5},   {5, 5},  {9, 2},	 {19, 1}, {20, 1}, {21, 1}, {22, 1},
	    {18, 13}, {25, 1}, {30, 1},	 {31, 1}, {32, 1}, {0, 100},
	    {29, 3},  {10, 10}, {11, 8}, {40, 0}, {3, 30}, {36, 1},
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct cow__pageset s = COW__PAGESET_INIT;
		struct model m;

		memset(&m, 0, sizeof(m));
		/* [10, 20) [22, 25) [30, 31) [35, 40) */
		assert_int_equal(cow__pageset_add(&s, 10, 10), 0);
		assert_int_equal(cow__pageset_add(&s, 22, 3), 0);
		assert_int_equal(cow__pageset_add(&s, 30, 1), 0);
		assert_int_equal(cow__pageset_add(&s, 35, 5), 0);
		model_add(&m, 10, 10);
		model_add(&m, 22, 3);
		model_add(&m, 30, 1);
		model_add(&m, 35, 5);
		assert_int_equal(cow__pageset_add(&s, cases[c][0], cases[c][1]),
				 0);
		model_add(&m, cases[c][0], cases[c][1]);
		check(&s, &m);
		cow__pageset_free(&s);
	}
}

/* A walk stops at the callback's error and returns it; an add that cannot
 * grow the array returns -ENOMEM and leaves the set as it was. */
static void errors(void **state)
{
	struct cow__pageset s = COW__PAGESET_INIT;
	struct model m;
	int calls = 0;

	(void)state;
	memset(&m, 0, sizeof(m));
	for (size_t k = 0; k < 16; k++) {
		assert_int_equal(cow__pageset_add(&s, 10 * k, 2), 0);
		model_add(&m, 10 * k, 2);
	}
	assert_int_equal(cow__pageset_each(&s, 0, NPAGES, stop_run, &calls),
			 -EINTR);
	assert_int_equal(calls, 2);

	/* the 17th run needs a bigger array: at the end, and inserted */
	cow__fault_inject(COW__SYS_MALLOC, 1, ENOMEM, 0);
	assert_int_equal(cow__pageset_add(&s, 500, 1), -ENOMEM);
	check(&s, &m);
	cow__fault_inject(COW__SYS_MALLOC, 1, ENOMEM, 0);
	assert_int_equal(cow__pageset_add(&s, 5, 1), -ENOMEM);
	check(&s, &m);
	cow__fault_reset();
	/* merging needs no memory */
	cow__fault_inject(COW__SYS_MALLOC, 1, ENOMEM, 1);
	assert_int_equal(cow__pageset_add(&s, 12, 3), 0);
	assert_int_equal(cow__pageset_add(&s, 0, 11), 0);
	cow__fault_reset();
	model_add(&m, 12, 3);
	model_add(&m, 0, 11);
	check(&s, &m);
	/* a remove that splits a run of a full array, without a reserve:
	 * -ENOMEM and the set unchanged; cutting ends needs no memory */
	assert_int_equal(cow__pageset_add(&s, 500, 1), 0);
	model_add(&m, 500, 1);
	assert_int_equal(s.n, s.cap);
	cow__fault_inject(COW__SYS_MALLOC, 1, ENOMEM, 1);
	assert_int_equal(cow__pageset_remove(&s, 5, 1), -ENOMEM);
	check(&s, &m);
	assert_int_equal(cow__pageset_remove(&s, 0, 2), 0);
	assert_int_equal(cow__pageset_remove(&s, 13, 30), 0);
	cow__fault_reset();
	memset(&m.bit[0], 0, 2);
	memset(&m.bit[13], 0, 30);
	check(&s, &m);
	cow__pageset_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_against_bitmap),
		cmocka_unit_test(add_edges),
		cmocka_unit_test(errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
