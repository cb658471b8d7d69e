// SPDX-License-Identifier: MIT
/*
 * The cowarena command-line tool: inspect, verify and recover arena files.
 * Exit status: 0 success, 1 the operation failed, 2 bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cowarena.h"

static int usage(FILE *f, int status)
{
	fprintf(f, "usage: cowarena <command> [args]\n"
		   "commands:\n"
		   "  version        print the library version\n"
		   "  info FILE      print the file's size and arena state\n"
		   "  help           this text\n");
	return status;
}

static int cmd_info(int argc, char **argv)
{
	struct cow_options o = {.flags = COW_READONLY};
	struct cow_stats st;
	struct stat sb;
	cow_arena *a;
	int r;

	if (argc != 2 || !strcmp(argv[1], "--help")) {
		fprintf(argc == 2 ? stdout : stderr,
			"usage: cowarena info FILE\n"
			"Prints the file's size and its arena state.\n");
		return argc == 2 ? 0 : 2;
	}
	if (stat(argv[1], &sb)) {
		fprintf(stderr, "cowarena: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	r = cow_open(&a, argv[1], &o);
	if (r < 0) {
		fprintf(stderr, "cowarena: %s: %s\n", argv[1], cow_strerror(r));
		return 1;
	}
	r = cow_stats(a, &st);
	if (r == 0) {
		printf("file:       %s\n", argv[1]);
		printf("size:       %lld bytes\n", (long long)sb.st_size);
		printf("arena size: %zu bytes (%zu pages of %zu)\n", st.size,
		       st.size / st.page_size, st.page_size);
	} else {
		fprintf(stderr, "cowarena: %s: %s\n", argv[1], cow_strerror(r));
	}
	cow_close(a);
	return r < 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr, 2);
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("cowarena %s\n", cow_version());
		return 0;
	}
	if (!strcmp(argv[1], "info"))
		return cmd_info(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help"))
		return usage(stdout, 0);
	fprintf(stderr, "cowarena: unknown command '%s'\n", argv[1]);
	return usage(stderr, 2);
}
