// SPDX-License-Identifier: MIT
/*
 * The cowarena command-line tool: inspect, verify and recover arena files.
 * Exit status: 0 success, 1 the operation failed, 2 bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowarena.h"

static int usage(FILE *f, int status)
{
	fprintf(f, "usage: cowarena <command> [args]\n"
		   "commands:\n"
		   "  version        print the library version\n"
		   "  info FILE      print the file's size and arena state\n"
		   "  bench          run the benchmarks in a short version\n"
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

/*
 * The benchmarks are programs of their own (they link LMDB and SQLite,
 * which the library and this tool do not need): `make bench` builds them
 * in build/bench/, beside this tool's build/cowarena. Found there, or in
 * $COWARENA_BENCH_DIR.
 */
static int bench_dir(char *dir, size_t len)
{
	const char *env = getenv("COWARENA_BENCH_DIR");
	char exe[PATH_MAX];
	ssize_t n;
	char *slash;

	if (env && *env) {
		snprintf(dir, len, "%s", env);
		return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n] = 0;
	slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	if ((size_t)(slash - exe) + sizeof("/bench") > len)
		return -1;
	memcpy(dir, exe, (size_t)(slash - exe));
	memcpy(dir + (slash - exe), "/bench", sizeof("/bench"));
	return 0;
}

static int is_bench(const struct dirent *e)
{
	return !strncmp(e->d_name, "bench_", 6);
}

static int run_bench(const char *path, const char *mode, const char *tmp)
{
	int st;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (tmp)
			execl(path, path, mode, "--dir", tmp, (char *)NULL);
		else
			execl(path, path, mode, (char *)NULL);
		fprintf(stderr, "cowarena: %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int cmd_bench(int argc, char **argv)
{
	const char *mode = "--short", *tmp = NULL;
	char dir[PATH_MAX], path[PATH_MAX + 256];
	struct dirent **list;
	int n, failed = 0, ran = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			mode = "--quick";
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			tmp = argv[++i];
		} else {
			fprintf(!strcmp(argv[i], "--help") ? stdout : stderr,
				"usage: cowarena bench [--quick] [--dir DIR]\n"
				"Runs a short version of every benchmark "
				"(under 30 s) and prints\n"
				"its tables. --quick: tiny sizes, only checks "
				"that they run.\n"
				"--dir: where scratch files go (default "
				"/var/tmp). The benchmark\n"
				"programs are built by `make bench`; they are "
				"looked for in\n"
				"$COWARENA_BENCH_DIR, else in bench/ beside "
				"this program.\n");
			return strcmp(argv[i], "--help") ? 2 : 0;
		}
	}
	if (bench_dir(dir, sizeof(dir))) {
		fprintf(stderr, "cowarena: cannot find the benchmarks\n");
		return 1;
	}
	n = scandir(dir, &list, is_bench, alphasort);
	if (n <= 0) {
		fprintf(stderr,
			"cowarena: no benchmark programs in %s: build them "
			"with `make bench` (or set COWARENA_BENCH_DIR)\n",
			dir);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
		if (access(path, X_OK) == 0) {
			printf("## %s\n\n", list[i]->d_name);
			fflush(stdout);
			ran++;
			if (run_bench(path, mode, tmp)) {
				fprintf(stderr, "cowarena: %s failed\n",
					list[i]->d_name);
				failed = 1;
			}
		}
		free(list[i]);
	}
	free(list);
	return failed || !ran;
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
	if (!strcmp(argv[1], "bench"))
		return cmd_bench(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help"))
		return usage(stdout, 0);
	fprintf(stderr, "cowarena: unknown command '%s'\n", argv[1]);
	return usage(stderr, 2);
}
