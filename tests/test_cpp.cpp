// SPDX-License-Identifier: MIT
/*
 * The C++ bindings (include/cowarena.hpp), built once as C++11 and once as
 * C++20 (where the span view is tested too) with -Wall -Wextra -Werror
 * -pedantic.
 *
 * cmocka's asserts longjmp out of the test body, past the destructors this
 * file tests, so the checks here throw instead and a small runner prints
 * cmocka's lines ([ RUN ], [ OK ], [ PASSED ] n test(s)) for tests/run.sh.
 */
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <system_error>
#include <type_traits>
#include <unistd.h>
#include <vector>

#include "cowarena.hpp"

namespace {

struct failure {
	const char *file;
	int line;
	std::string what;
};

#define CHECK(c)                                                       \
	do {                                                           \
		if (!(c))                                              \
			throw failure{__FILE__, __LINE__, #c};         \
	} while (0)

/* expr must throw std::system_error whose code() equals want. */
#define CHECK_THROWS(expr, want)                                       \
	do {                                                           \
		bool thrown_ = false;                                  \
		try {                                                  \
			expr;                                          \
		} catch (const std::system_error &e_) {                \
			thrown_ = true;                                \
			if (e_.code() != (want))                       \
				throw failure{__FILE__, __LINE__,      \
					      std::string(#expr " threw ") + \
						      e_.what()};      \
		}                                                      \
		if (!thrown_)                                          \
			throw failure{__FILE__, __LINE__,              \
				      #expr " did not throw"};         \
	} while (0)

const std::size_t pgsz = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

/* True while addr lies in a mapping (msync fails with ENOMEM otherwise). */
bool mapped(void *addr)
{
	return msync(addr, pgsz, MS_ASYNC) == 0;
}

std::string temp_path(const char *name)
{
	const char *dir = getenv("TMPDIR");
	std::string p = std::string(dir ? dir : "/tmp") + "/cowarena-cpp-" +
			std::to_string(getpid()) + "-" + name;

	unlink(p.c_str());
	unlink((p + ".cowlog").c_str());
	return p;
}

void write_file(const std::string &path, const void *buf, std::size_t len)
{
	int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);

	CHECK(fd >= 0);
	CHECK(write(fd, buf, len) == static_cast<ssize_t>(len));
	close(fd);
}

/* The handles are move-only, and moving never throws. */
static_assert(!std::is_copy_constructible<cowarena::arena>::value, "");
static_assert(!std::is_copy_assignable<cowarena::arena>::value, "");
static_assert(std::is_nothrow_move_constructible<cowarena::arena>::value,
	      "");
static_assert(std::is_nothrow_move_assignable<cowarena::arena>::value, "");
static_assert(!std::is_copy_constructible<cowarena::snapshot>::value, "");
static_assert(!std::is_copy_assignable<cowarena::snapshot>::value, "");
static_assert(std::is_nothrow_move_constructible<cowarena::snapshot>::value,
	      "");
static_assert(std::is_nothrow_move_assignable<cowarena::snapshot>::value,
	      "");
/* The struct that cow_stats() hides is reachable by name. */
static_assert(std::is_same<cowarena::stats, struct cow_stats>::value, "");

void test_open_close_raii()
{
	void *base;
	{
		cowarena::arena a = cowarena::arena::open_anon(4 * pgsz);
		CHECK(a.valid() && static_cast<bool>(a));
		CHECK(a.size() == 4 * pgsz);
		CHECK(a.reserved() >= a.size());
		base = a.base();
		CHECK(base != nullptr && a.data() == base);
		CHECK(a.native_handle() != nullptr);
		CHECK(a.data()[0] == 0);
		a.data()[pgsz] = 7;
		CHECK(mapped(base));
	}
	CHECK(!mapped(base)); /* the destructor closed it */

	/* A file arena holds the file's lock until its destructor runs. */
	std::string path = temp_path("raii");
	cowarena::options o{};
	o.flags = COW_CREATE;
	o.size = 2 * pgsz;
	{
		cowarena::arena a = cowarena::arena::open(path, o);
		CHECK(a.size() == 2 * pgsz);
		CHECK_THROWS(cowarena::arena::open(path),
			     std::errc::device_or_resource_busy);
		a.close();
		CHECK(!a.valid() && a.size() == 0 && a.base() == nullptr);
		a.close(); /* twice is harmless */
		cowarena::arena b = cowarena::arena::open(path);
		CHECK(b.size() == 2 * pgsz);
	}
	cowarena::arena c = cowarena::arena::open(path);
	c.close();
	unlink(path.c_str());
}

void test_move()
{
	cowarena::arena a = cowarena::arena::open_anon(2 * pgsz);
	void *base = a.base();
	a.data()[0] = 42;

	cowarena::arena b(std::move(a));
	CHECK(!a.valid() && a.base() == nullptr); // NOLINT: use after move
	CHECK(b.valid() && b.base() == base && b.data()[0] == 42);
	CHECK_THROWS(a.discard(), std::errc::invalid_argument);

	/* Move assignment closes the arena it replaces. */
	cowarena::arena c = cowarena::arena::open_anon(pgsz);
	void *cbase = c.base();
	c = std::move(b);
	CHECK(!mapped(cbase) && mapped(base));
	CHECK(c.base() == base && !b.valid());
	cowarena::arena &alias = c;
	c = std::move(alias); /* self-move leaves it as it was */
	CHECK(c.valid() && c.base() == base);

	/* Snapshots move too; each is released exactly once. */
	cowarena::snapshot s = c.snapshot();
	cowarena::snapshot t(std::move(s));
	CHECK(!s.valid() && t.valid());
	c.data()[0] = 1;
	c.rollback(t);
	CHECK(c.data()[0] == 42);
	cowarena::snapshot u = c.snapshot();
	u = std::move(t); /* releases u's snapshot */
	CHECK(u.valid() && !t.valid());
	CHECK(c.stats().snapshots == 1);
	CHECK_THROWS(c.rollback(t), std::errc::invalid_argument);
	u.release();
	CHECK(!u.valid() && c.stats().snapshots == 0);
}

void test_snapshot_rollback()
{
	cowarena::arena a = cowarena::arena::open_anon(8 * pgsz);
	unsigned char *p = a.data();

	p[0] = 1;
	cowarena::snapshot s1 = a.snapshot();
	p[0] = 2;
	p[3 * pgsz] = 3;
	cowarena::snapshot s2 = a.snapshot();
	p[3 * pgsz] = 4;
	p[7 * pgsz] = 5;
	CHECK(a.stats().snapshots == 2);

	a.rollback(s1);
	CHECK(p[0] == 1 && p[3 * pgsz] == 0 && p[7 * pgsz] == 0);
	a.rollback(s2); /* any live snapshot, in any order */
	CHECK(p[0] == 2 && p[3 * pgsz] == 3 && p[7 * pgsz] == 0);

	/* A snapshot also records the size. */
	a.grow(16 * pgsz);
	CHECK(a.size() == 16 * pgsz);
	p[12 * pgsz] = 9;
	a.rollback(s1);
	CHECK(a.size() == 8 * pgsz && p[0] == 1);

	/* discard, revert and dirty pass through. */
	p[pgsz] = 1;
	p[5 * pgsz] = 1;
	std::vector<cowarena::range> d = a.dirty();
	CHECK(d.size() == 2);
	CHECK(d[0].offset == 0 && d[0].length == 2 * pgsz);
	CHECK(d[1].offset == 5 * pgsz && d[1].length == pgsz);
	a.revert(p + 5 * pgsz, pgsz);
	CHECK(p[5 * pgsz] == 0 && a.dirty().size() == 1);
	CHECK_THROWS(a.revert(p + 1, pgsz), std::errc::invalid_argument);
	a.discard();
	CHECK(a.dirty().empty() && p[0] == 0);

	/* A snapshot of another arena is refused by the library. */
	cowarena::arena other = cowarena::arena::open_anon(pgsz);
	cowarena::snapshot so = other.snapshot();
	CHECK_THROWS(a.rollback(so), std::errc::invalid_argument);

	/* A snapshot that outlives its arena: close released it, so its
	 * destructor must not release it again (ASan would see that). */
	cowarena::snapshot late = other.snapshot();
	other.close();
	CHECK(!so.valid() && !late.valid());
	CHECK(late.native_handle() == nullptr);
	CHECK_THROWS(a.rollback(late), std::errc::invalid_argument);
	late.release();
}

void test_errors()
{
	std::string missing = temp_path("missing");
	CHECK_THROWS(cowarena::arena::open(missing),
		     std::errc::no_such_file_or_directory);
	try {
		cowarena::arena::open(missing);
	} catch (const std::system_error &e) {
		CHECK(e.code().category() == std::generic_category());
		CHECK(e.code().value() == ENOENT);
		CHECK(std::string(e.what()).find("cow_open") !=
		      std::string::npos);
	}
	CHECK_THROWS(cowarena::arena::open_anon(pgsz + 1),
		     std::errc::invalid_argument);
	cowarena::options bad{};
	bad.reserved[0] = 1;
	CHECK_THROWS(cowarena::arena::open_anon(pgsz, bad),
		     std::errc::invalid_argument);
	cowarena::arena a = cowarena::arena::open_anon(pgsz);
	CHECK_THROWS(a.grow(pgsz / 2), std::errc::invalid_argument);
	CHECK_THROWS(a.grow(a.reserved() + pgsz),
		     std::errc::no_space_on_device);
	CHECK_THROWS(a.commit(0x80), std::errc::invalid_argument);
	CHECK(a.size() == pgsz); /* failed calls changed nothing */

	/* A library code: a log beside the file with a broken header. */
	std::string path = temp_path("corrupt");
	std::vector<unsigned char> buf(pgsz, 0xab);
	write_file(path, &buf[0], buf.size());
	write_file(path + ".cowlog", &buf[0], buf.size());
	bool thrown = false;
	try {
		cowarena::arena::open(path);
	} catch (const std::system_error &e) {
		thrown = true;
		CHECK(e.code().category() == cowarena::category());
		CHECK(e.code().value() == -COW_ECORRUPT);
		CHECK(e.code() == cowarena::errc::corrupt);
		CHECK(e.code() != cowarena::errc::foreign);
		CHECK(std::string(e.code().category().name()) == "cowarena");
		CHECK(e.code().message() == cow_strerror(COW_ECORRUPT));
		CHECK(std::string(e.what()).find(cow_strerror(COW_ECORRUPT)) !=
		      std::string::npos);
	}
	CHECK(thrown);
	unlink((path + ".cowlog").c_str());
	CHECK(mkdir((path + ".cowlog").c_str(), 0755) == 0);
	CHECK_THROWS(cowarena::arena::open(path), cowarena::errc::logtype);
	rmdir((path + ".cowlog").c_str());
	unlink(path.c_str());

	/* The mapping of return values to codes, for every library code. */
	const int codes[] = {COW_ECORRUPT, COW_EFOREIGN, COW_EVERSION,
			     COW_ERECOVER, COW_ELOGTYPE};
	const cowarena::errc names[] = {
		cowarena::errc::corrupt, cowarena::errc::foreign,
		cowarena::errc::version, cowarena::errc::recover,
		cowarena::errc::logtype};
	for (std::size_t i = 0; i < 5; i++) {
		std::error_code ec = cowarena::error_code_of(codes[i]);
		CHECK(ec.category() == cowarena::category());
		CHECK(ec.value() == -codes[i] && ec == names[i]);
		CHECK(ec.message() == cow_strerror(codes[i]));
	}
	CHECK(cowarena::error_code_of(-EBUSY) ==
	      std::errc::device_or_resource_busy);
	CHECK(cowarena::check(3, "x") == 3);
	CHECK(std::string(cowarena::version()) == cow_version());
}

void test_view()
{
	cowarena::arena a = cowarena::arena::open_anon(4 * pgsz);
#ifdef COWARENA_HAVE_SPAN
	std::span<std::byte> m = a.bytes();
	CHECK(m.size() == a.size());
	CHECK(static_cast<void *>(m.data()) == a.base());
	m[2 * pgsz + 5] = std::byte{0x5a};
	CHECK(a.data()[2 * pgsz + 5] == 0x5a);
	std::vector<cowarena::range> d = a.dirty();
	CHECK(d.size() == 1 && d[0].offset == 2 * pgsz);
	a.grow(8 * pgsz);
	CHECK(a.bytes().size() == 8 * pgsz);
	cowarena::arena empty;
	CHECK(empty.bytes().empty());
#else
	/* C++ before 20: data() and size() are the view. */
	CHECK(__cplusplus < 202002L);
	a.data()[a.size() - 1] = 1;
	CHECK(a.dirty().size() == 1);
#endif
}

void test_stats()
{
	cowarena::stats st{}; /* names the struct cow_stats() hides */
	CHECK(st.dirty_pages == 0);

	cowarena::arena a = cowarena::arena::open_anon(8 * pgsz);
	st = a.stats();
	CHECK(st.size == 8 * pgsz && st.page_size == pgsz);
	CHECK(st.dirty_pages == 0 && st.snapshots == 0);
	CHECK(st.tracking == COW_TRACK_NONE);
	a.data()[0] = 1;
	a.data()[4 * pgsz] = 1;
	cowarena::snapshot s = a.snapshot();
	st = a.stats();
	CHECK(st.dirty_pages == 2 && st.snapshots == 1);
	CHECK(st.saved_pages == 2);
	CHECK(st.tracking == COW_TRACK_UFFD_WP ||
	      st.tracking == COW_TRACK_COMPARE);
	a.commit();
	CHECK(a.stats().commits == 1 && a.stats().dirty_pages == 0);
	a.sync();
	cowarena::arena empty;
	CHECK_THROWS(empty.stats(), std::errc::invalid_argument);
}

/* A commit through the wrapper reaches the file. */
void test_commit_file()
{
	std::string path = temp_path("commit");
	cowarena::options o{};
	o.flags = COW_CREATE;
	o.size = 2 * pgsz;
	{
		cowarena::arena a = cowarena::arena::open(path, o);
		std::memcpy(a.data() + pgsz, "hello", 5);
		a.commit(COW_COMMIT_ASYNC);
		a.sync();
		a.data()[0] = 'x'; /* not committed: dropped at close */
	}
	cowarena::options ro{};
	ro.flags = COW_READONLY;
	cowarena::arena b = cowarena::arena::open(path, ro);
	CHECK(std::memcmp(b.data() + pgsz, "hello", 5) == 0);
	CHECK(b.data()[0] == 0);
	CHECK_THROWS(b.commit(), std::errc::read_only_file_system);
	b.close();
	unlink(path.c_str());
}

/* Snapshot files: saved by one arena, loaded by another. */
void test_snap_file()
{
	std::string path = temp_path("snapfile");
	cowarena::arena a = cowarena::arena::open_anon(8 * pgsz);
	std::memcpy(a.data() + 3 * pgsz, "saved", 5);
	{
		cowarena::snapshot s = a.snapshot();
		s.save(path);
		cowarena::snapshot gone;
		CHECK_THROWS(gone.save(path), std::errc::invalid_argument);
	}

	cowarena::arena b = cowarena::arena::open_anon(8 * pgsz);
	cowarena::snapshot sb = b.load_snapshot(path);
	CHECK(b.data()[3 * pgsz] == 0); /* the load alone changes nothing */
	b.rollback(sb);
	CHECK(std::memcmp(b.data() + 3 * pgsz, "saved", 5) == 0);
	CHECK(b.stats().snapshots == 1);

	/* Errors: a missing file, a file that is no snapshot (a library
	 * code), a snapshot larger than the arena. */
	CHECK_THROWS(b.load_snapshot(path + ".missing"),
		     std::errc::no_such_file_or_directory);
	std::vector<unsigned char> junk(2 * pgsz, 0x11);
	write_file(path + ".junk", &junk[0], junk.size());
	CHECK_THROWS(b.load_snapshot(path + ".junk"), cowarena::errc::corrupt);
	cowarena::arena small = cowarena::arena::open_anon(2 * pgsz);
	CHECK_THROWS(small.load_snapshot(path), cowarena::errc::foreign);
	CHECK(small.stats().snapshots == 0);
	unlink(path.c_str());
	unlink((path + ".junk").c_str());
}

/* Where snapshots differ, and where one differs from now. */
void test_snap_diff()
{
	cowarena::arena a = cowarena::arena::open_anon(64 * pgsz);
	unsigned char *p = a.data();
	cowarena::snapshot s0 = a.snapshot();
	for (std::size_t i = 0; i < 64; i += 2)
		p[i * pgsz] = 1; /* 32 runs: more than a first guess holds */
	cowarena::snapshot s1 = a.snapshot();
	std::vector<cowarena::range> d = a.diff(s0, s1);
	CHECK(d.size() == 32);
	for (std::size_t i = 0; i < d.size(); i++)
		CHECK(d[i].offset == 2 * i * pgsz && d[i].length == pgsz);
	CHECK(a.diff(s1).empty()); /* nothing written since s1 */
	p[pgsz] = 1;
	p[2 * pgsz] = 1; /* rewritten with its own byte: no difference */
	d = a.diff(s1);
	CHECK(d.size() == 1 && d[0].offset == pgsz && d[0].length == pgsz);
	CHECK(a.diff(s0).size() == 31); /* pages 0-2 merge into one run */

	cowarena::snapshot none;
	CHECK_THROWS(a.diff(none), std::errc::invalid_argument);
	CHECK_THROWS(a.diff(s0, none), std::errc::invalid_argument);
	cowarena::arena other = cowarena::arena::open_anon(pgsz);
	cowarena::snapshot so = other.snapshot();
	CHECK_THROWS(a.diff(so), std::errc::invalid_argument);
}

struct test_case {
	const char *name;
	void (*fn)();
};

} // namespace

int main()
{
	const test_case tests[] = {
		{"open_close_raii", test_open_close_raii},
		{"move", test_move},
		{"snapshot_rollback", test_snapshot_rollback},
		{"errors", test_errors},
		{"view", test_view},
		{"stats", test_stats},
		{"commit_file", test_commit_file},
		{"snap_file", test_snap_file},
		{"snap_diff", test_snap_diff},
	};
	const std::size_t n = sizeof(tests) / sizeof(tests[0]);
	const char *group = __cplusplus >= 202002L ? "cpp20" : "cpp11";
	std::vector<const char *> failed;

	std::printf("[==========] %s: Running %zu test(s).\n", group, n);
	for (const test_case &t : tests) {
		std::printf("[ RUN      ] %s\n", t.name);
		std::fflush(stdout);
		try {
			t.fn();
			std::printf("[       OK ] %s\n", t.name);
			continue;
		} catch (const failure &f) {
			std::printf("[  ERROR   ] --- %s:%d: %s\n", f.file, f.line,
				    f.what.c_str());
		} catch (const std::exception &e) {
			std::printf("[  ERROR   ] --- unexpected exception: %s\n",
				    e.what());
		}
		std::printf("[  FAILED  ] %s\n", t.name);
		failed.push_back(t.name);
	}
	std::printf("[==========] %s: %zu test(s) run.\n", group, n);
	std::printf("[  PASSED  ] %zu test(s).\n", n - failed.size());
	if (!failed.empty()) {
		std::printf("[  FAILED  ] %zu test(s), listed below:\n",
			    failed.size());
		for (const char *f : failed)
			std::printf("[  FAILED  ] %s\n", f);
	}
	return failed.empty() ? 0 : 1;
}
