// SPDX-License-Identifier: MIT
/*
 * The persistent page maps (src/ptrie.c) against a plain array per
 * version: random batches of inserts and removals, range removals, lookups,
 * range queries, walks and diffs between any two live versions; sharing of
 * the untouched nodes; an allocation failure at every position leaves the
 * old tree as it was; every node and copy is freed with the last
 * reference (copies counted by the page store, nodes by ASan).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "internal.h"
#include "pagestore.h"
#include "ptrie.h"

#define NPAGES 20000 /* below 64^3: a height of 3 */
#define NVER 6
#define ROUNDS 300

static struct cow__pagestore ps = {.pgsz = 16};
static struct cow__ptrie trie = {.height = 3, .ps = &ps};

/* A live tree and what it should map. */
struct version {
	struct cow__pnode *root;
	struct cow__page *model[NPAGES];
};

static struct version ver[NVER];

static unsigned rnd(unsigned n)
{
	return (unsigned)random() % n;
}

static void check_all(const struct version *v)
{
	for (size_t p = 0; p < NPAGES; p++)
		assert_ptr_equal(cow__ptrie_get(&trie, v->root, p),
				 v->model[p]);
}

/* A sorted batch of distinct pages, some clustered, some spread. */
static size_t make_batch(size_t *pages, size_t max)
{
	size_t n = 1 + rnd((unsigned)max), k = 0;
	size_t at = rnd(NPAGES);
	static unsigned char seen[NPAGES];

	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < n; i++) {
		size_t p = rnd(4) ? (at + rnd(300)) % NPAGES : rnd(NPAGES);

		if (!seen[p])
			seen[p] = 1, k++;
	}
	n = 0;
	for (size_t p = 0; p < NPAGES; p++)
		if (seen[p])
			pages[n++] = p;
	assert_int_equal(n, k);
	return n;
}

struct seen {
	size_t n;
	size_t page[NPAGES];
	struct cow__page *a[NPAGES], *b[NPAGES];
};

static int record(void *ctx, size_t page, struct cow__page *a,
		  struct cow__page *b)
{
	struct seen *s = ctx;

	assert_true(s->n < NPAGES);
	assert_true(s->n == 0 || s->page[s->n - 1] < page);
	s->page[s->n] = page;
	s->a[s->n] = a;
	s->b[s->n++] = b;
	return 0;
}

static void check_diff(const struct version *x, const struct version *y)
{
	static struct seen s;
	size_t k = 0;

	s.n = 0;
	assert_int_equal(cow__ptrie_diff(&trie, x->root, y->root, record, &s),
			 0);
	for (size_t p = 0; p < NPAGES; p++) {
		if (x->model[p] == y->model[p])
			continue;
		assert_true(k < s.n);
		assert_int_equal(s.page[k], p);
		assert_ptr_equal(s.a[k], x->model[p]);
		assert_ptr_equal(s.b[k], y->model[p]);
		k++;
	}
	assert_int_equal(k, s.n);
}

static void check_range(const struct version *v, size_t first, size_t end)
{
	static struct seen s;
	size_t k = 0;
	int any = 0;

	s.n = 0;
	assert_int_equal(
	    cow__ptrie_each(&trie, v->root, first, end, record, &s), 0);
	for (size_t p = first; p < end && p < NPAGES; p++) {
		if (!v->model[p])
			continue;
		any = 1;
		assert_true(k < s.n);
		assert_int_equal(s.page[k], p);
		assert_ptr_equal(s.a[k], v->model[p]);
		assert_null(s.b[k]);
		k++;
	}
	assert_int_equal(k, s.n);
	assert_int_equal(cow__ptrie_any(&trie, v->root, first, end), any);
}

/* Replaces version i by version j with a random batch applied. */
static void step_insert(int i, int j)
{
	static size_t pages[600];
	static struct cow__page *copies[600];
	static int fresh[600];
	struct cow__pnode *root;
	size_t n = make_batch(pages, 600);

	for (size_t k = 0; k < n; k++) {
		unsigned how = rnd(8);

		fresh[k] = 0;
		if (how < 2) {
			copies[k] = NULL; /* remove */
		} else if (how < 3 && ver[(j + 1) % NVER].model[pages[k]]) {
			/* a copy another version holds for the page */
			copies[k] = ver[(j + 1) % NVER].model[pages[k]];
		} else {
			copies[k] = cow__page_new(&ps);
			fresh[k] = 1;
		}
	}
	assert_int_equal(
	    cow__ptrie_insert(&trie, ver[j].root, pages, copies, n, &root), 0);
	for (size_t k = 0; k < n; k++)
		if (fresh[k])
			cow__page_unref(&ps, copies[k]); /* the tree holds it */
	check_all(&ver[j]); /* unchanged */
	cow__pnode_unref(&trie, ver[i].root);
	if (i != j)
		memcpy(ver[i].model, ver[j].model, sizeof(ver[i].model));
	ver[i].root = root;
	for (size_t k = 0; k < n; k++)
		ver[i].model[pages[k]] = copies[k];
	check_all(&ver[i]);
}

static void step_remove_range(int i, int j)
{
	size_t first = rnd(NPAGES), end = first + rnd(5000);
	struct cow__pnode *root;

	assert_int_equal(cow__ptrie_remove_range(&trie, ver[j].root, first,
						 end, &root),
			 0);
	check_all(&ver[j]);
	cow__pnode_unref(&trie, ver[i].root);
	if (i != j)
		memcpy(ver[i].model, ver[j].model, sizeof(ver[i].model));
	ver[i].root = root;
	for (size_t p = first; p < end && p < NPAGES; p++)
		ver[i].model[p] = NULL;
	check_all(&ver[i]);
}

static int by_address(const void *x, const void *y)
{
	const struct cow__page *a = *(struct cow__page *const *)x;
	const struct cow__page *b = *(struct cow__page *const *)y;

	return (a > b) - (a < b);
}

/* The distinct copies the versions hold. */
static size_t count_copies(void)
{
	static struct cow__page *all[NVER * NPAGES];
	size_t n = 0, d = 0;

	for (int i = 0; i < NVER; i++)
		for (size_t p = 0; p < NPAGES; p++)
			if (ver[i].model[p])
				all[n++] = ver[i].model[p];
	qsort(all, n, sizeof(all[0]), by_address);
	for (size_t k = 0; k < n; k++)
		d += k == 0 || all[k] != all[k - 1];
	return d;
}

static void test_model(void **state)
{
	(void)state;
	srandom(7);
	for (int r = 0; r < ROUNDS; r++) {
		int i = rnd(NVER), j = rnd(NVER), x = rnd(NVER);

		if (rnd(5))
			step_insert(i, j);
		else
			step_remove_range(i, j);
		check_diff(&ver[i], &ver[x]);
		check_diff(&ver[x], &ver[i]);
		check_diff(&ver[i], &ver[i]);
		for (int k = 0; k < 4; k++) {
			size_t first = rnd(NPAGES + 100);

			check_range(&ver[i], first, first + rnd(k * 2000 + 2));
		}
		if (r % 50 == 0)
			assert_int_equal(ps.pages, count_copies());
	}
	assert_int_equal(ps.pages, count_copies());
	for (int i = 0; i < NVER; i++) {
		cow__pnode_unref(&trie, ver[i].root);
		ver[i].root = NULL;
		memset(ver[i].model, 0, sizeof(ver[i].model));
	}
	assert_int_equal(ps.pages, 0);
	cow__page_trim(&ps);
	assert_int_equal(ps.bytes, 0);
}

/* One page changed: every node off its path is the old tree's. */
static void test_sharing(void **state)
{
	size_t pages[NPAGES / 7 + 1], n = 0, one = 64 * 64 + 5;
	struct cow__page *copies[NPAGES / 7 + 1], *c;
	struct cow__pnode *a, *b;
	struct seen *s = calloc(1, sizeof(*s));

	(void)state;
	for (size_t p = 0; p < NPAGES; p += 7, n++) {
		pages[n] = p;
		copies[n] = cow__page_new(&ps);
	}
	assert_int_equal(cow__ptrie_insert(&trie, NULL, pages, copies, n, &a),
			 0);
	for (size_t k = 0; k < n; k++)
		cow__page_unref(&ps, copies[k]);
	c = cow__page_new(&ps);
	assert_int_equal(cow__ptrie_insert(&trie, a, &one, &c, 1, &b), 0);
	cow__page_unref(&ps, c);
	assert_ptr_not_equal(a, b);
	for (unsigned i = 0; i < COW__PTRIE_FAN; i++) {
		struct cow__pnode *x = a->slot[i], *y = b->slot[i];

		if (i != one >> 12) {
			assert_ptr_equal(x, y);
			if (x)
				assert_int_equal(x->ref, 2);
			continue;
		}
		for (unsigned k = 0; k < COW__PTRIE_FAN; k++)
			if (k != ((one >> 6) & 63))
				assert_ptr_equal(x->slot[k], y->slot[k]);
			else
				assert_ptr_not_equal(x->slot[k], y->slot[k]);
	}
	/* The diff sees the one page; a tree differs from none in all. */
	assert_int_equal(cow__ptrie_diff(&trie, a, b, record, s), 0);
	assert_int_equal(s->n, 1);
	assert_int_equal(s->page[0], one);
	assert_null(s->a[0]);
	assert_ptr_equal(s->b[0], c);
	s->n = 0;
	assert_int_equal(cow__ptrie_diff(&trie, a, NULL, record, s), 0);
	assert_int_equal(s->n, n);
	cow__pnode_unref(&trie, b);
	/* Removing what is not there, or nothing, shares the whole tree. */
	assert_int_equal(cow__ptrie_remove_range(&trie, a, 1, 7, &b), 0);
	assert_ptr_equal(a, b);
	cow__pnode_unref(&trie, b);
	assert_int_equal(cow__ptrie_insert(&trie, a, pages, copies, 0, &b), 0);
	assert_ptr_equal(a, b);
	cow__pnode_unref(&trie, b);
	/* Removing everything leaves no node. */
	assert_int_equal(cow__ptrie_remove_range(&trie, a, 0, NPAGES, &b), 0);
	assert_null(b);
	c = NULL;
	assert_int_equal(cow__ptrie_insert(&trie, NULL, &one, &c, 1, &b), 0);
	assert_null(b);
	cow__pnode_unref(&trie, a);
	assert_int_equal(ps.pages, 0);
	cow__page_trim(&ps);
	free(s);
}

static void test_height(void **state)
{
	(void)state;
	assert_int_equal(cow__ptrie_height(0), 1);
	assert_int_equal(cow__ptrie_height(1), 1);
	assert_int_equal(cow__ptrie_height(64), 1);
	assert_int_equal(cow__ptrie_height(65), 2);
	assert_int_equal(cow__ptrie_height(4096), 2);
	assert_int_equal(cow__ptrie_height(4097), 3);
	assert_int_equal(cow__ptrie_height((size_t)1 << 36), 6);
	assert_int_equal(cow__ptrie_height(SIZE_MAX), 10);
}

/*
 * Each allocation of an insert or a range removal fails in turn: the call
 * returns -ENOMEM, the old tree maps what it mapped with the same
 * references, and nothing is left allocated (ASan).
 */
static void test_alloc_failure(void **state)
{
	size_t pages[400], n = 0;
	struct cow__page *copies[400];
	struct cow__pnode *a, *b;
	unsigned long refs[400];
	int fired = 1, op;

	(void)state;
	for (size_t p = 0; p < NPAGES; p += 97, n++) {
		pages[n] = p;
		copies[n] = cow__page_new(&ps);
	}
	assert_int_equal(cow__ptrie_insert(&trie, NULL, pages, copies, n, &a),
			 0);
	for (op = 0; op < 2; op++) {
		unsigned long nth;

		for (nth = 1, fired = 1; fired; nth++) {
			size_t live = ps.pages;
			unsigned long calls;
			int r;

			for (size_t k = 0; k < n; k++)
				refs[k] = copies[k]->ref;
			b = (void *)1;
			calls = cow__fault_calls(COW__SYS_MALLOC);
			cow__fault_inject(COW__SYS_MALLOC, nth, ENOMEM, 0);
			if (op == 0) {
				/* every third page removed, others replaced */
				static struct cow__page *nc[400];

				for (size_t k = 0; k < n; k++)
					nc[k] = k % 3 ? copies[(k + 1) % n]
						      : NULL;
				r = cow__ptrie_insert(&trie, a, pages, nc, n,
						      &b);
			} else {
				r = cow__ptrie_remove_range(&trie, a, 500,
							    NPAGES - 500, &b);
			}
			fired = cow__fault_calls(COW__SYS_MALLOC) >= calls + nth;
			cow__fault_reset();
			if (fired) {
				assert_int_equal(r, -ENOMEM);
				assert_ptr_equal(b, (void *)1);
			} else {
				assert_int_equal(r, 0);
				assert_ptr_not_equal(a, b);
				cow__pnode_unref(&trie, b);
			}
			/* a as before, copies' references as before */
			assert_int_equal(ps.pages, live);
			for (size_t k = 0; k < n; k++)
				assert_int_equal(copies[k]->ref, refs[k]);
			for (size_t p = 0, k = 0; p < NPAGES; p++) {
				struct cow__page *c =
				    cow__ptrie_get(&trie, a, p);

				if (k < n && pages[k] == p)
					assert_ptr_equal(c, copies[k++]);
				else
					assert_null(c);
			}
		}
		assert_true(nth > 3);
	}
	for (size_t k = 0; k < n; k++)
		cow__page_unref(&ps, copies[k]);
	cow__pnode_unref(&trie, a);
	assert_int_equal(ps.pages, 0);
	cow__page_trim(&ps);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_height),
	    cmocka_unit_test(test_model),
	    cmocka_unit_test(test_sharing),
	    cmocka_unit_test(test_alloc_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
