// SPDX-License-Identifier: MIT
/*
 * The allocation helpers of the OS layer (src/sys.c) that no public call
 * can drive to their limits: growing an array or allocating one whose
 * size in bytes does not fit a size_t fails cleanly (NULL, nothing
 * changed, and no request to malloc larger than PTRDIFF_MAX bytes, which
 * a sanitizer's allocator would abort on) instead of wrapping to a small
 * block; and the one helper that
 * names a descriptor's file under /proc.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "sys.h"

static void grow_keeps_content(void **state)
{
	size_t cap = 0, *v = NULL;

	(void)state;
	for (size_t need = 1; need <= 1000; need++) {
		v = cow__array_grow(v, &cap, need, sizeof(*v), 16);
		assert_non_null(v);
		assert_true(cap >= need);
		assert_true(cap < 2 * need || cap == 16);
		v[need - 1] = need * 7;
	}
	for (size_t i = 0; i < 1000; i++)
		assert_int_equal(v[i], (i + 1) * 7);
	/* no change when it is big enough */
	assert_ptr_equal(cow__array_grow(v, &cap, 10, sizeof(*v), 16), v);
	cow__free(v);
}

/* need * size wraps around: before the check, the product of the doubled
 * count and the element size was 0, so the grow "succeeded" with a block
 * of 0 bytes and a capacity of 2^61 elements. */
static void grow_overflow_fails(void **state)
{
	size_t cap = 0;
	void *v;

	(void)state;
	v = cow__array_grow(NULL, &cap, SIZE_MAX / 8 + 1, 8, 16);
	assert_null(v);
	assert_int_equal(cap, 0);

	/* doubling from 16 overshoots: 2^60 elements of 16 bytes wrapped to
	 * 0 bytes; the need itself is over PTRDIFF_MAX bytes too */
	v = cow__array_grow(NULL, &cap, ((size_t)1 << 59) + 1, 16, 16);
	assert_null(v);
	assert_int_equal(cap, 0);

	/* an existing array stays as it was */
	cap = 0;
	v = cow__array_grow(NULL, &cap, 4, 8, 4);
	assert_non_null(v);
	memset(v, 0x5a, 32);
	assert_null(cow__array_grow(v, &cap, SIZE_MAX / 4, 8, 4));
	assert_int_equal(cap, 4);
	for (int i = 0; i < 32; i++)
		assert_int_equal(((unsigned char *)v)[i], 0x5a);
	cow__free(v);
}

/* A need close to SIZE_MAX: the doubling used to wrap to 0 and loop
 * forever (the alarm turns that into a failure). */
static void grow_near_max_ends(void **state)
{
	size_t cap = 0;

	(void)state;
	alarm(10);
	assert_null(cow__array_grow(NULL, &cap, SIZE_MAX, 1, 16));
	assert_null(cow__array_grow(NULL, &cap, SIZE_MAX / 2 + 2, 1, 16));
	alarm(0);
	assert_int_equal(cap, 0);
}

static void mallocarray_checks(void **state)
{
	void *p;

	(void)state;
	assert_null(cow__mallocarray(SIZE_MAX / 2 + 1, 2));
	assert_null(cow__mallocarray(SIZE_MAX, 16));
	p = cow__mallocarray(0, 8); /* an empty array is not NULL */
	assert_non_null(p);
	cow__free(p);
	p = cow__mallocarray(1000, 8);
	assert_non_null(p);
	memset(p, 1, 8000);
	cow__free(p);
}

static void fd_path_opens_the_same_file(void **state)
{
	char buf[COW__FD_PATH_LEN];
	struct stat a, b;
	int fd, fd2;

	(void)state;
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_string_equal(cow__fd_path(buf, 123456789), "/proc/self/fd/123456789");
	fd2 = open(cow__fd_path(buf, fd), O_RDONLY | O_CLOEXEC);
	assert_true(fd2 >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(fstat(fd2, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_dev, b.st_dev);
	close(fd2);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(grow_keeps_content),
		cmocka_unit_test(grow_overflow_fails),
		cmocka_unit_test(grow_near_max_ends),
		cmocka_unit_test(mallocarray_checks),
		cmocka_unit_test(fd_path_opens_the_same_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
