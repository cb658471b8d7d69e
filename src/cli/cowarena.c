// SPDX-License-Identifier: MIT
/*
 * The cowarena command-line tool: inspect, verify and recover arena files.
 * Exit status: 0 success, 1 the operation failed (or, for verify, the log
 * is not sound), 2 bad usage.
 *
 * It reads the write-ahead log with the library's own parser (wal.c,
 * linked statically), so it reports exactly what an open would replay.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowarena.h"
#include "internal.h"
#include "wal.h"

static int usage(FILE *f, int status)
{
	fprintf(f, "usage: cowarena <command> [args]\n"
		   "commands:\n"
		   "  version        print the library version\n"
		   "  info FILE      print the file's size and arena state\n"
		   "  verify FILE    check every record of the file's log\n"
		   "  recover FILE   replay the log into the file, remove it\n"
		   "  bench          run the benchmarks in a short version\n"
		   "  help           this text\n"
		   "Each command takes --help.\n");
	return status;
}

/* Scans FILE's log. 0 and info->present = 0: no log; else COW_E* etc. */
static int scan_log(const char *file, struct cow__wal_info *info, int *exists)
{
	struct stat sb;
	char *log;
	int fd, r;

	memset(info, 0, sizeof(*info));
	*exists = 0;
	if (stat(file, &sb))
		return -errno;
	if (asprintf(&log, "%s.cowlog", file) < 0)
		return -ENOMEM;
	fd = open(log, O_RDONLY | O_CLOEXEC);
	free(log);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	*exists = 1;
	r = cow__wal_scan(fd, (size_t)sysconf(_SC_PAGESIZE), &sb, info, NULL,
			  NULL);
	close(fd);
	return r;
}

static void print_log(const struct cow__wal_info *li, int exists, int r)
{
	if (!exists) {
		printf("log:        none (every commit is in the file)\n");
		return;
	}
	if (r < 0) {
		printf("log:        unusable: %s\n", cow_strerror(r));
		return;
	}
	if (!li->present) {
		printf("log:        empty\n");
		return;
	}
	printf("log:        %lld bytes, %llu pending transaction%s "
	       "(%llu pages)\n",
	       (long long)li->file_size, (unsigned long long)li->ntx,
	       li->ntx == 1 ? "" : "s", (unsigned long long)li->pages);
	if (li->ntx)
		printf("last durable sequence: %llu (file length %llu)\n",
		       (unsigned long long)li->last_seq,
		       (unsigned long long)li->file_len);
	else
		printf("last durable sequence: before %llu (all in the "
		       "file)\n",
		       (unsigned long long)li->start_seq);
}

/*
 * The commands that take one FILE: with "--help" (exit 0) or wrong
 * arguments (exit 2, text on stderr) prints text and returns 1.
 */
static int usage_file_cmd(int argc, char **argv, const char *text)
{
	if (argc == 2 && strcmp(argv[1], "--help"))
		return 0;
	fputs(text, argc == 2 ? stdout : stderr);
	return 1;
}

static int cmd_info(int argc, char **argv)
{
	struct cow__wal_info li;
	int exists, lr;
	struct cow_options o = {.flags = COW_READONLY};
	struct cow_stats st;
	struct stat sb;
	cow_arena *a;
	int r;

	if (usage_file_cmd(argc, argv,
			   "usage: cowarena info FILE\n"
			   "Prints the file's size and its arena state: the "
			   "write-ahead log beside it\n"
			   "(FILE.cowlog), the last durable commit and the "
			   "transactions waiting to be\n"
			   "replayed into the file.\n"))
		return argc == 2 ? 0 : 2;
	if (stat(argv[1], &sb)) {
		fprintf(stderr, "cowarena: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	lr = scan_log(argv[1], &li, &exists);
	r = cow_open(&a, argv[1], &o);
	if (r == COW_ERECOVER || r == COW_ECORRUPT || r == COW_EFOREIGN ||
	    r == COW_EVERSION) {
		printf("file:       %s\n", argv[1]);
		printf("size:       %lld bytes\n", (long long)sb.st_size);
		print_log(&li, exists, lr);
		return 0;
	}
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
		print_log(&li, exists, lr);
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

static int cmd_verify(int argc, char **argv)
{
	struct cow__wal_info li;
	int exists, r;

	if (usage_file_cmd(
		argc, argv,
		"usage: cowarena verify FILE\n"
		"Checks every record of the write-ahead log beside "
		"FILE (FILE.cowlog):\n"
		"checksums, sequence, and that nothing after a damaged "
		"record was durable.\n"
		"Exit status 0: sound (no log, or complete "
		"transactions followed at most\n"
		"by the torn tail of an interrupted commit); 1: "
		"corrupt, foreign or unreadable.\n"))
		return argc == 2 ? 0 : 2;
	r = scan_log(argv[1], &li, &exists);
	if (r < 0) {
		fprintf(stderr, "cowarena: %s: %s\n", argv[1], cow_strerror(r));
		return 1;
	}
	if (!exists || !li.present) {
		printf("%s: sound (no log)\n", argv[1]);
		return 0;
	}
	printf("%s: sound: %llu complete transaction%s, sequence %llu..%llu, "
	       "%lld bytes of records",
	       argv[1], (unsigned long long)li.ntx, li.ntx == 1 ? "" : "s",
	       (unsigned long long)li.start_seq,
	       (unsigned long long)li.last_seq,
	       (long long)(li.end - COW__WAL_HDR));
	if (li.stop > li.end)
		printf(", then %lld bytes of an interrupted commit (ignored)",
		       (long long)(li.stop - li.end));
	printf("\n");
	return 0;
}

static int cmd_recover(int argc, char **argv)
{
	struct cow__wal_info li;
	cow_arena *a;
	int exists, r;

	if (usage_file_cmd(
		argc, argv,
		"usage: cowarena recover FILE\n"
		"Replays the complete transactions of the log beside "
		"FILE into FILE, makes\n"
		"it durable and removes the log (as opening it "
		"writable would). Needs the\n"
		"file to be writable and not open in another arena.\n"))
		return argc == 2 ? 0 : 2;
	r = scan_log(argv[1], &li, &exists);
	if (r < 0) {
		fprintf(stderr, "cowarena: %s: %s\n", argv[1], cow_strerror(r));
		return 1;
	}
	r = cow_open(&a, argv[1], NULL);
	if (r < 0) {
		fprintf(stderr, "cowarena: %s: %s\n", argv[1], cow_strerror(r));
		return 1;
	}
	r = cow_close(a);
	if (r < 0) {
		fprintf(stderr, "cowarena: %s: %s\n", argv[1], cow_strerror(r));
		return 1;
	}
	if (exists)
		printf("%s: replayed %llu transaction%s; log removed\n",
		       argv[1], (unsigned long long)li.ntx,
		       li.ntx == 1 ? "" : "s");
	else
		printf("%s: nothing to recover\n", argv[1]);
	return 0;
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
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(argv[1], "recover"))
		return cmd_recover(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help"))
		return usage(stdout, 0);
	fprintf(stderr, "cowarena: unknown command '%s'\n", argv[1]);
	return usage(stderr, 2);
}
