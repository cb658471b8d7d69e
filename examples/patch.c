// SPDX-License-Identifier: MIT
/*
 * Debugger-style patching: open a copy of a binary as an arena, patch bytes
 * at a few offsets, list the dirty runs, revert one patch, and show that the
 * file on disk was never touched.
 *
 * usage: patch [FILE]   (default: a copy of /bin/true in /tmp)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cowarena.h"

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0) {
		close(in);
		return -errno;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			n = -1;
	close(in);
	close(out);
	return n < 0 ? -EIO : 0;
}

static unsigned long checksum(const char *path)
{
	unsigned long h = 5381;
	int fd = open(path, O_RDONLY);
	unsigned char buf[65536];
	ssize_t n;

	while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			h = h * 33 + buf[i];
	if (fd >= 0)
		close(fd);
	return h;
}

static void show_dirty(cow_arena *a)
{
	struct cow_range r[16];
	ssize_t n = cow_dirty(a, r, 16);

	printf("  dirty runs: %zd\n", n);
	for (ssize_t i = 0; i < n && i < 16; i++)
		printf("    offset 0x%06zx, %zu bytes\n", r[i].offset,
		       r[i].length);
}

int main(int argc, char **argv)
{
	char tmp[] = "/tmp/cowarena-patch-XXXXXX";
	const char *path = argc > 1 ? argv[1] : tmp;
	struct cow_options o = { .flags = COW_READONLY };
	unsigned long before, after;
	cow_arena *a;
	unsigned char *p;
	size_t patch_at[3];
	int r;

	if (argc < 2) {
		int fd = mkstemp(tmp);

		if (fd < 0 || copy_file("/bin/true", tmp) < 0) {
			perror("copy /bin/true");
			return 1;
		}
		close(fd);
	}
	before = checksum(path);
	/* Read-only: the file can never be written, the arena still can. */
	r = cow_open(&a, path, &o);
	if (r < 0) {
		fprintf(stderr, "cow_open %s: %s\n", path, cow_strerror(r));
		return 1;
	}
	p = cow_base(a);
	printf("opened %s: %zu bytes at %p, magic %02x '%c%c%c'\n", path,
	       cow_size(a), (void *)p, p[0], p[1], p[2], p[3]);

	/* Patch: the ELF magic, a byte in the middle, one near the end. */
	patch_at[0] = 1;
	patch_at[1] = cow_size(a) / 2;
	patch_at[2] = cow_size(a) - 100;
	for (int i = 0; i < 3; i++) {
		printf("patch %d at 0x%06zx: %02x -> %02x\n", i, patch_at[i],
		       p[patch_at[i]], 0xcc);
		p[patch_at[i]] = 0xcc;
	}
	show_dirty(a);

	/* Revert the middle patch only: its page reads the file again. */
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	r = cow_revert(a, p + (patch_at[1] & ~(pg - 1)), pg);
	printf("revert patch 1: %s; byte at 0x%06zx is %02x again\n",
	       cow_strerror(r), patch_at[1], p[patch_at[1]]);
	show_dirty(a);

	after = checksum(path);
	printf("file on disk: %s (checksum %lx before, %lx after)\n",
	       before == after ? "untouched" : "CHANGED", before, after);
	r = cow_discard(a);
	printf("discard: %s; magic is '%c%c%c' again, %zd dirty runs\n",
	       cow_strerror(r), p[1], p[2], p[3], cow_dirty(a, NULL, 0));
	cow_close(a);
	if (argc < 2)
		unlink(tmp);
	return before == after ? 0 : 1;
}
