/* SPDX-License-Identifier: MIT */
/**
 * @file cowarena.hpp
 * @brief C++ bindings for cowarena: header-only, C++11 and later.
 *
 * A thin layer over cowarena.h that owns the handles and turns the C
 * error returns into exceptions:
 *
 *  - cowarena::arena and cowarena::snapshot are move-only RAII handles
 *    (copying is deleted, moving is noexcept). An arena's destructor
 *    calls cow_close(), a snapshot's cow_snap_release(). cow_close()
 *    releases an arena's snapshots itself, so a snapshot object that
 *    outlives its arena knows it (it shares a small control block with
 *    the arena) and its destructor then does nothing; using it in a
 *    rollback throws EINVAL.
 *  - Every failure throws std::system_error. Its code() is the negated
 *    C return: an errno value in std::generic_category() (so
 *    `e.code() == std::errc::device_or_resource_busy` works), or a
 *    library code COW_E* in cowarena::category(), whose name() is
 *    "cowarena" and whose message() is cow_strerror()'s text. The
 *    library codes are also cowarena::errc values:
 *    `e.code() == cowarena::errc::corrupt`.
 *  - The arena's memory: data() and size(), and bytes() as a
 *    std::span<std::byte> where the compiler has <span> (C++20).
 *  - In C++ the function cow_stats() hides the struct of the same name
 *    (`cow_stats st{};` does not compile; `struct cow_stats st{};`
 *    does). cowarena::stats names the struct, and arena::stats()
 *    returns one filled in.
 *  - Snapshot files: snapshot::save() (cow_snap_save()) and
 *    arena::load_snapshot() (cow_snap_load()); arena::diff()
 *    (cow_snap_diff()) lists where two snapshots, or one and now, differ.
 *
 * Thread safety is the C library's: one arena's calls must not run
 * concurrently; different arenas may be used from different threads.
 *
 * Link with the library as a C program does (pkg-config cowarena).
 */
#ifndef COWARENA_HPP
#define COWARENA_HPP

#include <cstddef>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "cowarena.h"

#if __cplusplus >= 202002L
#if __has_include(<span>)
#include <span>
#if defined(__cpp_lib_span) && __cpp_lib_span >= 202002L
#define COWARENA_HAVE_SPAN 1
#endif
#endif
#endif

namespace cowarena {

/** The options of the open functions (zero-initialise: `options o{};`). */
typedef struct ::cow_options options;
/** A run of pages, in bytes from the arena's base. */
typedef struct ::cow_range range;
/** An arena's statistics; `cowarena::stats st{};` compiles where
 * `cow_stats st{};` does not. */
typedef struct ::cow_stats stats;

/** The library's own error codes (positive: the negated COW_E* values,
 * as std::system_error carries errno values). */
enum class errc {
	corrupt = -COW_ECORRUPT,
	foreign = -COW_EFOREIGN,
	version = -COW_EVERSION,
	recover = -COW_ERECOVER,
	logtype = -COW_ELOGTYPE,
};

namespace detail {

class category_impl : public std::error_category {
public:
	const char *name() const noexcept override
	{
		return "cowarena";
	}
	std::string message(int code) const override
	{
		return ::cow_strerror(-code);
	}
};

/* The negative errno values end at -4095; the library's codes lie below. */
inline bool is_library_code(int rc) noexcept
{
	return rc < -4095;
}

} // namespace detail

/** The category of the library's COW_E* codes. */
inline const std::error_category &category() noexcept
{
	static const detail::category_impl c;
	return c;
}

inline std::error_code make_error_code(errc e) noexcept
{
	return std::error_code(static_cast<int>(e), category());
}

/** The error_code of a negative return of a cow_* function. */
inline std::error_code error_code_of(int rc) noexcept
{
	if (detail::is_library_code(rc))
		return std::error_code(-rc, category());
	return std::error_code(-rc, std::generic_category());
}

/** Throws std::system_error for a negative rc; returns rc otherwise. */
inline long check(long rc, const char *what)
{
	if (rc < 0)
		throw std::system_error(error_code_of(static_cast<int>(rc)),
					what);
	return rc;
}

/** The library's version, "MAJOR.MINOR.PATCH". */
inline const char *version() noexcept
{
	return ::cow_version();
}

class arena;

namespace detail {
/* Shared by an arena and its snapshots: a is NULL once the arena is
 * closed (cow_close() released the snapshots with it). */
struct handle {
	cow_arena *a;
};
} // namespace detail

/** A snapshot of an arena (move-only). Released by its destructor, by
 * release(), or with its arena. */
class snapshot {
public:
	snapshot() noexcept : s_(nullptr) {}
	snapshot(const snapshot &) = delete;
	snapshot &operator=(const snapshot &) = delete;
	snapshot(snapshot &&o) noexcept
		: h_(std::move(o.h_)), s_(o.s_)
	{
		o.s_ = nullptr;
	}
	snapshot &operator=(snapshot &&o) noexcept
	{
		if (this != &o) {
			release();
			h_ = std::move(o.h_);
			s_ = o.s_;
			o.s_ = nullptr;
		}
		return *this;
	}
	~snapshot()
	{
		release();
	}

	/** Release the snapshot now (nothing if it is empty or its arena
	 * was closed). */
	void release() noexcept
	{
		std::shared_ptr<detail::handle> h = h_.lock();

		if (s_ && h && h->a)
			::cow_snap_release(s_);
		s_ = nullptr;
		h_.reset();
	}

	/** True while the snapshot is live: taken, not released, and its
	 * arena still open. */
	bool valid() const noexcept
	{
		std::shared_ptr<detail::handle> h = h_.lock();

		return s_ && h && h->a;
	}
	explicit operator bool() const noexcept
	{
		return valid();
	}

	/** The C handle (NULL when not valid()); still owned by this. */
	cow_snap *native_handle() const noexcept
	{
		return valid() ? s_ : nullptr;
	}

	/** cow_snap_save(): write the snapshot to a file (flags 0 or
	 * COW_SNAP_FULL), for arena::load_snapshot() in this process or
	 * another. An empty or released snapshot throws EINVAL. */
	void save(const std::string &path, unsigned flags = 0) const
	{
		check(::cow_snap_save(native_handle(), path.c_str(), flags),
		      "cow_snap_save");
	}

private:
	friend class arena;
	snapshot(std::weak_ptr<detail::handle> h, cow_snap *s) noexcept
		: h_(std::move(h)), s_(s)
	{
	}

	std::weak_ptr<detail::handle> h_;
	cow_snap *s_;
};

/** An open arena (move-only). Closed by its destructor or close(). */
class arena {
public:
	/** An empty handle; valid() is false. */
	arena() noexcept {}
	arena(const arena &) = delete;
	arena &operator=(const arena &) = delete;
	arena(arena &&o) noexcept : h_(std::move(o.h_)) {}
	arena &operator=(arena &&o) noexcept
	{
		if (this != &o) {
			close();
			h_ = std::move(o.h_);
		}
		return *this;
	}
	~arena()
	{
		close();
	}

	/** cow_open(): a file as an arena. */
	static arena open(const std::string &path, const options &o = options())
	{
		cow_arena *a = nullptr;

		check(::cow_open(&a, path.c_str(), &o), "cow_open");
		return arena(a);
	}
	/** cow_open_fd(): an open file as an arena (fd stays the caller's). */
	static arena open_fd(int fd, const options &o = options())
	{
		cow_arena *a = nullptr;

		check(::cow_open_fd(&a, fd, &o), "cow_open_fd");
		return arena(a);
	}
	/** cow_open_anon(): an anonymous arena of size bytes (zeros). */
	static arena open_anon(std::size_t size, const options &o = options())
	{
		cow_arena *a = nullptr;

		check(::cow_open_anon(&a, size, &o), "cow_open_anon");
		return arena(a);
	}

	/** cow_close(): discards uncommitted changes, releases the
	 * snapshots. Nothing if the handle is empty. */
	void close() noexcept
	{
		if (h_ && h_->a) {
			::cow_close(h_->a);
			h_->a = nullptr;
		}
		h_.reset();
	}

	bool valid() const noexcept
	{
		return h_ && h_->a;
	}
	explicit operator bool() const noexcept
	{
		return valid();
	}
	/** The C handle (NULL when empty); still owned by this. */
	cow_arena *native_handle() const noexcept
	{
		return h_ ? h_->a : nullptr;
	}

	/** The arena's first byte (cow_base()); NULL when empty. */
	void *base() const noexcept
	{
		return valid() ? ::cow_base(h_->a) : nullptr;
	}
	unsigned char *data() const noexcept
	{
		return static_cast<unsigned char *>(base());
	}
	/** The size in bytes (cow_size()); 0 when empty. */
	std::size_t size() const noexcept
	{
		return valid() ? ::cow_size(h_->a) : 0;
	}
	std::size_t reserved() const noexcept
	{
		return valid() ? ::cow_reserved(h_->a) : 0;
	}
#ifdef COWARENA_HAVE_SPAN
	/** The arena's memory at its current size. After grow() or a
	 * rollback to another size, take a new span. */
	std::span<std::byte> bytes() const noexcept
	{
		return std::span<std::byte>(static_cast<std::byte *>(base()),
					    size());
	}
#endif

	void grow(std::size_t new_size)
	{
		check(::cow_grow(get("cow_grow"), new_size), "cow_grow");
	}
	void discard()
	{
		check(::cow_discard(get("cow_discard")), "cow_discard");
	}
	/** cow_revert() of [addr, addr + len). */
	void revert(void *addr, std::size_t len)
	{
		check(::cow_revert(get("cow_revert"), addr, len), "cow_revert");
	}
	/** The page runs that differ from the base (cow_dirty()). */
	std::vector<range> dirty()
	{
		return runs(get("cow_dirty"), nullptr, nullptr, "cow_dirty");
	}


	/** cow_snapshot(): a snapshot of the content and size now. */
	::cowarena::snapshot snapshot()
	{
		cow_snap *s = nullptr;

		check(::cow_snapshot(get("cow_snapshot"), &s), "cow_snapshot");
		return ::cowarena::snapshot(h_, s);
	}
	/** cow_snap_load(): a snapshot file (snapshot::save()) as a new
	 * snapshot of this arena; roll back to it to restore its content. */
	::cowarena::snapshot load_snapshot(const std::string &path)
	{
		cow_snap *s = nullptr;

		check(::cow_snap_load(get("cow_snap_load"), path.c_str(), &s),
		      "cow_snap_load");
		return ::cowarena::snapshot(h_, s);
	}
	/** cow_snap_diff(): the page runs where from differs from the
	 * arena's content now. An empty or released from throws EINVAL. */
	std::vector<range> diff(const ::cowarena::snapshot &from)
	{
		return diff_runs(from.native_handle(), nullptr);
	}
	/** cow_snap_diff(): the page runs where from and to differ. An
	 * empty or released snapshot on either side throws EINVAL. */
	std::vector<range> diff(const ::cowarena::snapshot &from,
				const ::cowarena::snapshot &to)
	{
		if (!to.valid())
			throw std::system_error(
				std::make_error_code(std::errc::invalid_argument),
				"cow_snap_diff");
		return diff_runs(from.native_handle(), to.native_handle());
	}
	/** Return to a live snapshot of this arena; an empty or released
	 * snapshot, or one of a closed arena, throws EINVAL. */
	void rollback(const ::cowarena::snapshot &s)
	{
		check(::cow_rollback(get("cow_rollback"), s.native_handle()),
		      "cow_rollback");
	}

	/** cow_commit(); flags 0 or COW_COMMIT_ASYNC. */
	void commit(unsigned flags = 0)
	{
		check(::cow_commit(get("cow_commit"), flags), "cow_commit");
	}
	void sync()
	{
		check(::cow_sync(get("cow_sync")), "cow_sync");
	}
	::cowarena::stats stats() const
	{
		::cowarena::stats st = ::cowarena::stats();

		check(::cow_stats(get("cow_stats"), &st), "cow_stats");
		return st;
	}

private:
	explicit arena(cow_arena *a)
	{
		try {
			h_ = std::make_shared<detail::handle>();
		} catch (...) {
			::cow_close(a);
			throw;
		}
		h_->a = a;
	}
	/* The C handle, or EINVAL for an empty or closed arena (the C
	 * functions would return it for NULL too). */
	cow_arena *get(const char *what) const
	{
		if (!valid())
			throw std::system_error(
				std::make_error_code(std::errc::invalid_argument),
				what);
		return h_->a;
	}

	std::vector<range> diff_runs(const cow_snap *from, const cow_snap *to)
	{
		if (!from) /* empty or released: not "no snapshot" */
			throw std::system_error(
				std::make_error_code(std::errc::invalid_argument),
				"cow_snap_diff");
		return runs(get("cow_snap_diff"), from, to, "cow_snap_diff");
	}
	/* The runs of cow_dirty() (from NULL) or cow_snap_diff(), with as
	 * much room as they need. */
	static std::vector<range> runs(cow_arena *a, const cow_snap *from,
				       const cow_snap *to, const char *what)
	{
		std::vector<range> v;

		for (;;) {
			range *out = v.empty() ? nullptr : &v[0];
			ssize_t n = from ? ::cow_snap_diff(a, from, to, out,
							   v.size())
					 : ::cow_dirty(a, out, v.size());

			check(n, what);
			if (static_cast<std::size_t>(n) <= v.size()) {
				v.resize(static_cast<std::size_t>(n));
				return v;
			}
			v.resize(static_cast<std::size_t>(n) + 8);
		}
	}

	std::shared_ptr<detail::handle> h_;
};

} // namespace cowarena

namespace std {
template <> struct is_error_code_enum<cowarena::errc> : true_type {
};
} // namespace std

#endif
