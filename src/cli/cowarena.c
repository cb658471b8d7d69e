// SPDX-License-Identifier: MIT
/*
 * The cowarena command-line tool: inspect, verify and recover arena files,
 * describe and check snapshot files.
 * Exit status: 0 success, 1 the operation failed (or, for verify, the log
 * is not sound; or standard output could not be written), 2 bad usage.
 *
 * Options are parsed with getopt_long, first the tool's own (-h, -V), then
 * each command's; "--" ends them. It reads the write-ahead log with the
 * library's own parser (wal.c, linked statically), so it reports exactly
 * what an open would replay. `info` and `verify` only read: they open no
 * arena and take no lock, so they work on a file a writer holds.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowarena.h"
#include "internal.h"
#include "snapfile.h"
#include "wal.h"

static int bench_dir(char *dir, size_t len);

/* `bench` is offered only where its programs are (a source tree after
 * `make bench`, or $COWARENA_BENCH_DIR): an installed copy has none. */
static int bench_offered(void)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];

	if (bench_dir(dir, sizeof(dir)))
		return 0;
	snprintf(path, sizeof(path), "%s/bench_commit", dir);
	return access(path, X_OK) == 0;
}

static int usage(FILE *f, int status)
{
	fprintf(f,
		"usage: cowarena [-h | -V] <command> [options] [--] [args]\n"
		"commands:\n"
		"  info FILE      print the file's size and arena state\n"
		"  verify FILE    check every record of the file's log\n"
		"  recover FILE   replay the log into the file, remove it\n"
		"  snap info FILE describe a snapshot file (cow_snap_save)\n"
		"  snap verify FILE\n"
		"                 check every checksum of a snapshot file\n");
	if (bench_offered())
		fprintf(f, "  bench          run the benchmarks in a short "
			   "version\n");
	fprintf(f, "  version        print the library version\n"
		   "  help           this text\n"
		   "options:\n"
		   "  -h, --help     this text\n"
		   "  -V, --version  print the version\n"
		   "Each command takes -h/--help. Exit status: 0 success, 1 "
		   "failure, 2 bad usage.\n");
	return status;
}

/*
 * getopt_long over argv with "+:" prefixed to shortopts (stop at the first
 * operand, report a missing argument apart). On an unknown option or a
 * missing argument prints the error naming it and returns -2; else the
 * option, or -1 at the end of the options (optind: the first operand).
 */
static int next_opt(int argc, char **argv, const char *shortopts,
		    const struct option *longopts, const char *cmd)
{
	char opts[32];
	int c;

	snprintf(opts, sizeof(opts), "+:%s", shortopts);
	opterr = 0;
	c = getopt_long(argc, argv, opts, longopts, NULL);
	if (c != '?' && c != ':')
		return c;
	fprintf(stderr, "cowarena%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	if (c == ':')
		fprintf(stderr, "option '%s' needs an argument\n",
			argv[optind - 1]);
	else if (optopt)
		fprintf(stderr, "unknown option '-%c'\n", optopt);
	else
		fprintf(stderr, "unknown option '%s'\n", argv[optind - 1]);
	return -2;
}

static const struct option help_only[] = {
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/*
 * Parses the options of a command that takes one FILE: -h/--help prints
 * text on stdout (returns 0); an unknown option or a wrong number of
 * operands prints the error and the text on stderr (returns 2). Otherwise
 * returns -1 with *file set.
 */
static int parse_file_cmd(int argc, char **argv, const char *text,
			  const char **file)
{
	int c;

	optind = 0;
	while ((c = next_opt(argc, argv, "h", help_only, argv[0])) != -1) {
		if (c == 'h') {
			fputs(text, stdout);
			return 0;
		}
		fputs(text, stderr);
		return 2;
	}
	if (argc - optind != 1) {
		fprintf(stderr, "cowarena %s: %s\n", argv[0],
			argc == optind ? "FILE missing" : "one FILE only");
		fputs(text, stderr);
		return 2;
	}
	*file = argv[optind];
	return -1;
}

/*
 * Opens FILE's log for reading, as the library does (cow__wal_open_log):
 * without blocking (a FIFO in its place must not hang the tool) and
 * without following a symlink. 0 with *fd -1: no log. Not a regular file:
 * -EINVAL, with *why set.
 */
static int open_log(const char *file, int *fd, const char **why)
{
	struct stat st;
	char *log;
	int r;

	*fd = -1;
	*why = NULL;
	if (asprintf(&log, "%s.cowlog", file) < 0)
		return -ENOMEM;
	r = cow__wal_open_log(AT_FDCWD, log, 1);
	if (r == COW_ELOGTYPE) {
		*why = "a special file";
		if (lstat(log, &st) == 0)
			*why = S_ISLNK(st.st_mode)    ? "a symbolic link"
			       : S_ISFIFO(st.st_mode) ? "a FIFO"
			       : S_ISDIR(st.st_mode)  ? "a directory"
			       : S_ISSOCK(st.st_mode) ? "a socket"
			       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)
				   ? "a device"
				   : "a special file";
		r = -EINVAL;
	}
	free(log);
	if (r >= 0)
		*fd = r;
	return r == -ENOENT ? 0 : r < 0 ? r : 0;
}

/* Scans FILE's log. 0 and info->present = 0: no log; else COW_E* etc.
 * *exists: a log is there (1), or something that is not a log (-1, *why
 * says what). */
static int scan_log(const char *file, const struct stat *sb,
		    struct cow__wal_info *info, int *exists, const char **why)
{
	int fd, r;

	memset(info, 0, sizeof(*info));
	*exists = 0;
	r = open_log(file, &fd, why);
	if (*why)
		*exists = -1;
	if (fd < 0)
		return r;
	*exists = 1;
	r = cow__wal_scan(fd, (size_t)sysconf(_SC_PAGESIZE), sb, info, NULL,
			  NULL);
	close(fd);
	return r;
}

/* stat()s FILE, which must be a regular file; prints the error. */
static int stat_file(const char *cmd, const char *file, struct stat *sb)
{
	if (stat(file, sb)) {
		fprintf(stderr, "cowarena %s: %s: %s\n", cmd, file,
			strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb->st_mode)) {
		fprintf(stderr, "cowarena %s: %s: not a regular file%s\n", cmd,
			file, S_ISDIR(sb->st_mode) ? " (a directory)" : "");
		return -1;
	}
	return 0;
}

/* Prints the error of a log that could not be read; returns 1. */
static int log_error(const char *cmd, const char *file, int r, const char *why)
{
	if (why)
		fprintf(stderr,
			"cowarena %s: %s.cowlog: the log is %s, not a regular "
			"file (cowarena did not make it)\n",
			cmd, file, why);
	else
		fprintf(stderr, "cowarena %s: %s.cowlog: %s\n", cmd, file,
			cow_strerror(r));
	return 1;
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
 * Which arenas hold the file, from its lock (F_OFD_GETLK only tests: it
 * takes nothing): a writable arena holds an exclusive lock, read-only
 * ones shared locks.
 */
static const char *file_holder(const char *file)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int fd = open(file, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return "unknown (the file cannot be opened)";
	r = fcntl(fd, F_OFD_GETLK, &fl);
	close(fd);
	if (r)
		return "unknown (the file system has no locks)";
	if (fl.l_type == F_UNLCK)
		return "no arena";
	return fl.l_type == F_WRLCK ? "a writable arena (a writer holds it)"
				    : "read-only arenas";
}

static int cmd_info(int argc, char **argv)
{
	struct cow__wal_info li;
	const char *file, *why;
	size_t pgsz = (size_t)sysconf(_SC_PAGESIZE);
	unsigned long long pages;
	struct stat sb;
	int exists, r;

	r = parse_file_cmd(argc, argv,
			   "usage: cowarena info [--] FILE\n"
			   "Prints the file's size and its arena state: which "
			   "arenas hold it, the\n"
			   "write-ahead log beside it (FILE.cowlog), the last "
			   "durable commit and the\n"
			   "transactions waiting to be replayed into the file. "
			   "Only reads: it opens\n"
			   "no arena and takes no lock, so it works while a "
			   "writer holds the file.\n",
			   &file);
	if (r >= 0)
		return r;
	if (stat_file("info", file, &sb))
		return 1;
	r = scan_log(file, &sb, &li, &exists, &why);
	if (exists < 0)
		return log_error("info", file, r, why);
	printf("file:       %s\n", file);
	pages = ((unsigned long long)sb.st_size + pgsz - 1) / pgsz;
	if (sb.st_size == 0)
		printf("size:       0 bytes (empty: an arena opens it only "
		       "with cow_options.size set)\n");
	else
		printf("size:       %lld bytes (%llu page%s of %zu)\n",
		       (long long)sb.st_size, pages, pages == 1 ? "" : "s",
		       pgsz);
	printf("held by:    %s\n", file_holder(file));
	print_log(&li, exists, r);
	return 0;
}

/*
 * The benchmarks are programs of their own (they link LMDB and SQLite,
 * which the library and this tool do not need): `make bench` builds them
 * in build/bench/, beside this tool's build/cowarena. Found there, or in
 * $COWARENA_BENCH_DIR. `make install` does not install them, so an
 * installed copy does not offer the command.
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
	pid_t pid;

	if (fflush(stdout))
		return -1;
	pid = fork();
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

static const char bench_help[] =
    "usage: cowarena bench [--quick] [--dir DIR]\n"
    "Runs a short version of every benchmark (under 30 s) and prints its "
    "tables.\n"
    "  -q, --quick    tiny sizes: only checks that they run\n"
    "  -d, --dir DIR  where scratch files go (default /var/tmp)\n"
    "The benchmark programs are built by `make bench` in the source tree "
    "and\n"
    "looked for in $COWARENA_BENCH_DIR, else in bench/ beside this "
    "program;\n"
    "an installed cowarena does not include them.\n";

static int cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"quick", no_argument, NULL, 'q'},
	    {"dir", required_argument, NULL, 'd'},
	    {NULL, 0, NULL, 0},
	};
	const char *mode = "--short", *tmp = NULL;
	char dir[PATH_MAX], path[PATH_MAX + 256];
	struct dirent **list;
	int c, n, failed = 0, ran = 0;

	optind = 0;
	while ((c = next_opt(argc, argv, "hqd:", opts, "bench")) != -1) {
		if (c == 'q') {
			mode = "--quick";
		} else if (c == 'd') {
			tmp = optarg;
		} else {
			fputs(bench_help, c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cowarena bench: unexpected argument '%s'\n",
			argv[optind]);
		fputs(bench_help, stderr);
		return 2;
	}
	if (!bench_offered()) {
		fprintf(
		    stderr,
		    "cowarena: bench is not available here: the benchmark "
		    "programs are built by\n`make bench` in the source tree "
		    "and run from there (build/cowarena bench, or\n"
		    "set COWARENA_BENCH_DIR); an installed cowarena does not "
		    "include them\n");
		return 2;
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
	const char *file, *why;
	struct stat sb;
	int exists, r;

	r = parse_file_cmd(argc, argv,
			   "usage: cowarena verify [--] FILE\n"
			   "Checks every record of the write-ahead log beside "
			   "FILE (FILE.cowlog):\n"
			   "checksums, sequence, and that nothing after a "
			   "damaged record was durable.\n"
			   "Exit status 0: sound (no log, or complete "
			   "transactions followed at most\n"
			   "by the torn tail of an interrupted commit); 1: "
			   "corrupt, foreign or unreadable.\n"
			   "Only reads: works while a writer holds the file.\n",
			   &file);
	if (r >= 0)
		return r;
	if (stat_file("verify", file, &sb))
		return 1;
	r = scan_log(file, &sb, &li, &exists, &why);
	if (r < 0)
		return log_error("verify", file, r, why);
	if (!exists || !li.present) {
		printf("%s: sound (no log)\n", file);
		return 0;
	}
	printf("%s: sound: %llu complete transaction%s, sequence %llu..%llu, "
	       "%lld bytes of records",
	       file, (unsigned long long)li.ntx, li.ntx == 1 ? "" : "s",
	       (unsigned long long)li.start_seq,
	       (unsigned long long)li.last_seq, (long long)(li.end - li.head));
	if (li.stop > li.end)
		printf(", then %lld bytes of an interrupted commit (ignored)",
		       (long long)(li.stop - li.end));
	printf("\n");
	return 0;
}

static int cmd_recover(int argc, char **argv)
{
	struct cow__wal_info li, after;
	const char *file, *why;
	struct stat sb;
	cow_arena *a;
	int exists, left, r;

	r = parse_file_cmd(
	    argc, argv,
	    "usage: cowarena recover [--] FILE\n"
	    "Replays the complete transactions of the log beside "
	    "FILE into FILE, makes\n"
	    "it durable and removes the log (as opening it "
	    "writable would). Needs the\n"
	    "file to be writable and not open in another "
	    "arena.\n",
	    &file);
	if (r >= 0)
		return r;
	if (stat_file("recover", file, &sb))
		return 1;
	r = scan_log(file, &sb, &li, &exists, &why);
	if (r < 0)
		return log_error("recover", file, r, why);
	r = cow_open(&a, file, NULL);
	if (r == -EBUSY) {
		fprintf(stderr,
			"cowarena recover: %s: held by another arena (one "
			"writer per file): close it first\n",
			file);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "cowarena recover: %s: %s\n", file,
			cow_strerror(r));
		return 1;
	}
	r = cow_close(a);
	if (r < 0) {
		fprintf(stderr, "cowarena recover: %s: %s\n", file,
			cow_strerror(r));
		return 1;
	}
	if (!exists) {
		printf("%s: nothing to recover\n", file);
		return 0;
	}
	/* Say what is there now, not what the open was meant to do. */
	r = scan_log(file, &sb, &after, &left, &why);
	if (r < 0 || (left && after.ntx)) {
		fprintf(stderr,
			"cowarena recover: %s.cowlog: the log is still "
			"there%s%s\n",
			file, r < 0 ? ": " : "", r < 0 ? cow_strerror(r) : "");
		return 1;
	}
	printf("%s: replayed %llu transaction%s; log %s\n", file,
	       (unsigned long long)li.ntx, li.ntx == 1 ? "" : "s",
	       left ? "emptied (its removal failed)" : "removed");
	return 0;
}

static const char snap_text[] =
    "usage: cowarena snap info [--] FILE\n"
    "       cowarena snap verify [--] FILE\n"
    "A snapshot file made by cow_snap_save().\n"
    "info:   prints its format version, the snapshot's size, the pages "
    "saved and the\n"
    "        base it was taken against (checks the header and index).\n"
    "verify: checks every checksum (header, index, each page); exit "
    "status 0: sound,\n"
    "        1: corrupt, of an unknown version or unreadable.\n";

/* Opens and checks FILE (every page too with pages set); prints why not. */
static int snap_check(const char *cmd, const char *file, int pages,
		      struct cow__snapfile_info *info)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK), r;

	if (fd < 0) {
		fprintf(stderr, "cowarena snap %s: %s: %s\n", cmd, file,
			strerror(errno));
		return -1;
	}
	r = cow__snapfile_check(fd, pages, info);
	close(fd);
	if (r < 0) {
		fprintf(stderr, "cowarena snap %s: %s: %s\n", cmd, file,
			r == COW_ECORRUPT ? "not a snapshot file, or a damaged "
					    "or truncated one"
			: r == COW_EVERSION
			    ? "a snapshot file of an unknown format version"
			    : cow_strerror(r));
		return -1;
	}
	return 0;
}

static void snap_print_base(const struct cow__snapfile_hdr *h)
{
	switch (h->base_kind) {
	case COW__SNAPBASE_ZEROS:
		printf("base:       zeros (an anonymous arena never "
		       "committed)\n");
		break;
	case COW__SNAPBASE_MEMORY:
		printf("base:       an anonymous arena's committed content "
		       "(in that process only)\n");
		break;
	default:
		printf("base:       a file: device %llu:%llu, inode %llu, "
		       "%llu bytes, mtime %lld.%09lld; base %llu bytes\n",
		       (unsigned long long)major((dev_t)h->dev),
		       (unsigned long long)minor((dev_t)h->dev),
		       (unsigned long long)h->ino,
		       (unsigned long long)h->file_len, (long long)h->mtime_sec,
		       (long long)h->mtime_nsec,
		       (unsigned long long)h->base_len);
	}
}

static int cmd_snap(int argc, char **argv)
{
	struct cow__snapfile_info info;
	const struct cow__snapfile_hdr *h = &info.hdr;
	const char *cmd, *file;
	int c;

	optind = 0;
	while ((c = next_opt(argc, argv, "h", help_only, "snap")) != -1) {
		fputs(snap_text, c == 'h' ? stdout : stderr);
		return c == 'h' ? 0 : 2;
	}
	if (optind == argc) {
		fprintf(stderr, "cowarena snap: info or verify missing\n");
		fputs(snap_text, stderr);
		return 2;
	}
	cmd = argv[optind];
	if (strcmp(cmd, "info") && strcmp(cmd, "verify")) {
		fprintf(stderr, "cowarena snap: unknown command '%s'\n", cmd);
		fputs(snap_text, stderr);
		return 2;
	}
	argc -= optind;
	argv += optind;
	optind = 0;
	while ((c = next_opt(argc, argv, "h", help_only,
			     !strcmp(cmd, "info") ? "snap info"
						  : "snap verify")) != -1) {
		fputs(snap_text, c == 'h' ? stdout : stderr);
		return c == 'h' ? 0 : 2;
	}
	if (argc - optind != 1) {
		fprintf(stderr, "cowarena snap %s: %s\n", cmd,
			argc == optind ? "FILE missing" : "one FILE only");
		fputs(snap_text, stderr);
		return 2;
	}
	file = argv[optind];
	if (!strcmp(cmd, "verify")) {
		if (snap_check(cmd, file, 1, &info))
			return 1;
		printf("%s: sound: %llu page%s, every checksum matches\n", file,
		       (unsigned long long)h->npages,
		       h->npages == 1 ? "" : "s");
		return 0;
	}
	if (snap_check(cmd, file, 0, &info))
		return 1;
	printf("file:       %s, %llu bytes\n", file,
	       (unsigned long long)info.file_size);
	printf("format:     cowarena snapshot file, version %u\n", h->version);
	printf("snapshot:   %llu bytes (%llu pages of %u)\n",
	       (unsigned long long)h->size,
	       (unsigned long long)(h->size / h->page_size), h->page_size);
	printf("pages:      %llu saved (%s)\n", (unsigned long long)h->npages,
	       (h->flags & COW_SNAP_FULL) ? "every page: COW_SNAP_FULL, loads "
					    "into any arena that large"
					  : "those that differ from the base");
	snap_print_base(h);
	return 0;
}

static int cmd_version(int argc, char **argv)
{
	int c;

	optind = 0;
	while ((c = next_opt(argc, argv, "h", help_only, "version")) != -1) {
		fputs("usage: cowarena version\nPrints the library version.\n",
		      c == 'h' ? stdout : stderr);
		return c == 'h' ? 0 : 2;
	}
	if (optind < argc) {
		fprintf(stderr, "cowarena version: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	printf("cowarena %s\n", cow_version());
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return usage(stdout, 0);
}

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
    {"info", cmd_info}, {"verify", cmd_verify}, {"recover", cmd_recover},
    {"snap", cmd_snap}, {"bench", cmd_bench},	{"version", cmd_version},
    {"help", cmd_help},
};

static int run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = next_opt(argc, argv, "hV", opts, NULL)) != -1) {
		if (c == 'h')
			return usage(stdout, 0);
		if (c == 'V')
			return cmd_version(1, argv);
		return usage(stderr, 2);
	}
	if (optind == argc) {
		fprintf(stderr, "cowarena: no command\n");
		return usage(stderr, 2);
	}
	argc -= optind;
	argv += optind;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[0], commands[i].name))
			return commands[i].run(argc, argv);
	fprintf(stderr, "cowarena: unknown command '%s'\n", argv[0]);
	return usage(stderr, 2);
}

/*
 * Output that cannot be written is an error (`cowarena info f >/dev/full`
 * must not succeed): checks the stream's error flag and the final flush.
 */
static int close_stdout(void)
{
	int failed = ferror(stdout);

	errno = 0;
	if (fclose(stdout))
		failed = 1;
	if (!failed)
		return 0;
	fprintf(stderr, "cowarena: write error on standard output%s%s\n",
		errno ? ": " : "", errno ? strerror(errno) : "");
	return 1;
}

int main(int argc, char **argv)
{
	int r = run(argc, argv);

	if (close_stdout() && r == 0)
		r = 1;
	return r;
}
