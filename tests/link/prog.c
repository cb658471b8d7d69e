// SPDX-License-Identifier: MIT
/*
 * The program `make check-link` links the ways the README says a user
 * links: against build/libcowarena.a with -luring -lpthread, and through
 * pkg-config against an installed copy, shared and --static. It touches
 * the log's checksums (a commit on a file arena) and the I/O engine, so a
 * missing library shows up as an undefined reference here.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cowarena.h>

int main(int argc, char **argv)
{
	char dir[] = "/tmp/cowarena-link-XXXXXX", path[64];
	struct cow_options o = {.flags = COW_CREATE, .size = 1 << 16};
	cow_arena *a;
	int r;

	(void)argc;
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/file", dir);
	r = cow_open(&a, path, &o);
	if (r < 0) {
		fprintf(stderr, "%s: cow_open: %s\n", argv[0], cow_strerror(r));
		rmdir(dir);
		return 1;
	}
	memset(cow_base(a), 0xab, 4096);
	r = cow_commit(a, 0);
	if (r < 0)
		fprintf(stderr, "%s: cow_commit: %s\n", argv[0], cow_strerror(r));
	cow_close(a);
	unlink(path);
	rmdir(dir);
	if (r == 0)
		printf("%s: cowarena %s linked and committed\n", argv[0],
		       cow_version());
	return r < 0;
}
