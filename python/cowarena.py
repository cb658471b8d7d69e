# SPDX-License-Identifier: MIT
"""Python bindings for cowarena: copy-on-write memory you can snapshot,
roll back, discard and commit.

Pure ctypes: nothing to compile, only the shared library libcowarena.so.0
is needed. It is looked up in this order: the path in the COWARENA_LIB
environment variable, ../build/libcowarena.so.0 beside this file (a source
tree after `make`), then the system's library path (`make install`).

    import cowarena

    with cowarena.Arena(size=16 << 20) as a:        # anonymous, zeros
        with a.memory() as m:                      # a memoryview
            m[0] = 1
            s = a.snapshot()
            m[0] = 2
            a.rollback(s)                          # m[0] == 1 again
            s.release()
    with cowarena.Arena("state.img", size=1 << 20, create=True) as a:
        ...
        a.commit()                                 # durable and atomic

Errors: a failing call raises OSError with the errno (so
FileNotFoundError, PermissionError and the other subclasses work); the
library's own codes (a corrupt or foreign log, ...) raise CowError, a
subclass of OSError whose errno is the code made positive (ECORRUPT, ...
below) and whose strerror is cow_strerror()'s text.

Memory views and close: the arena's memory is unmapped by close(), so a
view must not outlive it. close() refuses (raises BufferError, as
mmap.mmap.close() does) while any view from memory() or numpy() -- or a
slice or array made from one -- is still alive; release them first
(`with a.memory() as m:`, m.release(), del). While a view lives it keeps
its Arena object alive, so garbage collection never closes an arena under
a view. A view covers the size the arena had when it was made: take a
new one after grow(). After a rollback to a smaller size the bytes past
the new size stay mapped but are no longer part of the arena.

Threads: the calls on one arena are serialised by a lock (the C library
requires that). Stores through a view during snapshot(), rollback(),
discard(), revert(), grow() or commit() from another thread are the
caller's to prevent, as in C.
"""

import ctypes
import dataclasses
import errno
import os
import threading
import weakref

__all__ = [
    "Arena", "Snapshot", "Stats", "CowError", "version", "strerror",
    "CREATE", "READONLY", "ISOLATE", "NOSYNC", "NOTHREAD", "FIXED_ADDR",
    "COMMIT_ASYNC", "SNAP_FULL", "TRACK_NONE", "TRACK_UFFD_WP",
    "TRACK_COMPARE", "ECORRUPT", "EFOREIGN", "EVERSION", "ERECOVER",
    "ELOGTYPE",
]

# cow_options.flags
CREATE = 0x01
READONLY = 0x02
ISOLATE = 0x04
NOSYNC = 0x08
NOTHREAD = 0x10
FIXED_ADDR = 0x20
# cow_commit() flags
COMMIT_ASYNC = 0x01
# cow_snap_save() flags
SNAP_FULL = 0x01
# cow_stats.tracking
TRACK_NONE = 0
TRACK_UFFD_WP = 1
TRACK_COMPARE = 2
# The library's error codes, made positive as errno values are
# (the C header's COW_ECORRUPT is -ECORRUPT).
ECORRUPT = 4097
EFOREIGN = 4098
EVERSION = 4099
ERECOVER = 4100
ELOGTYPE = 4101
_ERRNO_MAX = 4095


class _Options(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("reserve", ctypes.c_size_t),
        ("addr", ctypes.c_void_p),
        ("flags", ctypes.c_uint),
        ("mode", ctypes.c_uint),
        ("reserved", ctypes.c_uint * 8),
    ]


class _Range(ctypes.Structure):
    _fields_ = [("offset", ctypes.c_size_t), ("length", ctypes.c_size_t)]


class _Stats(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("reserved", ctypes.c_size_t),
        ("page_size", ctypes.c_size_t),
        ("dirty_pages", ctypes.c_size_t),
        ("snapshots", ctypes.c_size_t),
        ("saved_pages", ctypes.c_size_t),
        ("saved_bytes", ctypes.c_size_t),
        ("mappings", ctypes.c_size_t),
        ("commits", ctypes.c_ulonglong),
        ("commit_seq_durable", ctypes.c_ulonglong),
        ("log_bytes", ctypes.c_size_t),
        ("tracking", ctypes.c_uint),
    ]


@dataclasses.dataclass(frozen=True)
class Stats:
    """An arena's statistics (struct cow_stats; see cowarena.h)."""
    size: int
    reserved: int
    page_size: int
    dirty_pages: int
    snapshots: int
    saved_pages: int
    saved_bytes: int
    mappings: int
    commits: int
    commit_seq_durable: int
    log_bytes: int
    tracking: int


def _load():
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = []
    if os.environ.get("COWARENA_LIB"):
        candidates.append(os.environ["COWARENA_LIB"])
    else:
        built = os.path.join(here, os.pardir, "build", "libcowarena.so.0")
        if os.path.exists(built):
            candidates.append(built)
        candidates.append("libcowarena.so.0")
    errors = []
    for c in candidates:
        try:
            return ctypes.CDLL(c, use_errno=False)
        except OSError as e:
            errors.append(str(e))
    raise ImportError("cowarena: cannot load the library (set COWARENA_LIB "
                      "to libcowarena.so.0): " + "; ".join(errors))


_lib = _load()


def _proto(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_P = ctypes.c_void_p
_SZ = ctypes.c_size_t
_cow_version = _proto("cow_version", ctypes.c_char_p)
_cow_strerror = _proto("cow_strerror", ctypes.c_char_p, ctypes.c_int)
_cow_open = _proto("cow_open", ctypes.c_int, ctypes.POINTER(_P),
                   ctypes.c_char_p, ctypes.POINTER(_Options))
_cow_open_fd = _proto("cow_open_fd", ctypes.c_int, ctypes.POINTER(_P),
                      ctypes.c_int, ctypes.POINTER(_Options))
_cow_open_anon = _proto("cow_open_anon", ctypes.c_int, ctypes.POINTER(_P),
                        _SZ, ctypes.POINTER(_Options))
_cow_close = _proto("cow_close", ctypes.c_int, _P)
_cow_base = _proto("cow_base", _P, _P)
_cow_size = _proto("cow_size", _SZ, _P)
_cow_reserved = _proto("cow_reserved", _SZ, _P)
_cow_grow = _proto("cow_grow", ctypes.c_int, _P, _SZ)
_cow_discard = _proto("cow_discard", ctypes.c_int, _P)
_cow_revert = _proto("cow_revert", ctypes.c_int, _P, _P, _SZ)
_cow_dirty = _proto("cow_dirty", ctypes.c_ssize_t, _P,
                    ctypes.POINTER(_Range), _SZ)
_cow_snapshot = _proto("cow_snapshot", ctypes.c_int, _P, ctypes.POINTER(_P))
_cow_rollback = _proto("cow_rollback", ctypes.c_int, _P, _P)
_cow_snap_release = _proto("cow_snap_release", None, _P)
_cow_snap_save = _proto("cow_snap_save", ctypes.c_int, _P, ctypes.c_char_p,
                        ctypes.c_uint)
_cow_snap_load = _proto("cow_snap_load", ctypes.c_int, _P, ctypes.c_char_p,
                        ctypes.POINTER(_P))
_cow_snap_diff = _proto("cow_snap_diff", ctypes.c_ssize_t, _P, _P, _P,
                        ctypes.POINTER(_Range), _SZ)
_cow_commit = _proto("cow_commit", ctypes.c_int, _P, ctypes.c_uint)
_cow_sync = _proto("cow_sync", ctypes.c_int, _P)
_cow_stats = _proto("cow_stats", ctypes.c_int, _P, ctypes.POINTER(_Stats))


class CowError(OSError):
    """A library error code (ECORRUPT, EFOREIGN, EVERSION, ERECOVER,
    ELOGTYPE):
    errno is the code made positive, strerror cow_strerror()'s text."""


def version():
    """The library's version, "MAJOR.MINOR.PATCH"."""
    return _cow_version().decode()


def strerror(code):
    """cow_strerror() of a library or errno code (either sign)."""
    return _cow_strerror(-abs(int(code))).decode()


def _error(rc, filename=None):
    err = -int(rc)
    if err > _ERRNO_MAX:
        if filename is None:
            return CowError(err, strerror(err))
        return CowError(err, strerror(err), filename)
    if filename is None:
        return OSError(err, os.strerror(err))
    return OSError(err, os.strerror(err), filename)


def _check(rc, filename=None):
    if rc < 0:
        raise _error(rc, filename)
    return rc


class Snapshot:
    """A snapshot of an arena (Arena.snapshot()). Released by release(),
    at the end of a `with` block, when garbage collected, or with its
    arena. A released snapshot cannot be rolled back to (EINVAL)."""

    def __init__(self, arena, handle):
        self._arena = arena
        self._h = handle

    @property
    def released(self):
        return self._h is None

    def rollback(self):
        """The same as arena.rollback(self)."""
        self._arena.rollback(self)

    def save(self, path, full=False):
        """Write the snapshot to a file (cow_snap_save), atomically and
        durably, for Arena.load_snapshot() in this process or another.
        full=True saves every page (COW_SNAP_FULL): the file then loads
        into any arena large enough, whatever its base."""
        arena = self._arena
        with arena._lock:
            if self._h is None:
                raise _error(-errno.EINVAL)
            path = os.fspath(path)
            _check(_cow_snap_save(self._h, os.fsencode(path),
                                  SNAP_FULL if full else 0), path)

    def release(self):
        """Free the snapshot's saved pages. Does nothing the second time."""
        arena = self._arena
        if arena is None:
            return
        with arena._lock:
            if self._h is not None and arena._a is not None:
                _cow_snap_release(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __del__(self):
        try:
            self.release()
        except Exception:  # interpreter shutdown: nothing to do
            pass


class Arena:
    """An open arena; a context manager that closes it.

    Arena(path, size=0, **options)   a file as an arena (cow_open)
    Arena(size=N, **options)         an anonymous arena of N zero bytes
    Arena(fd=FD, **options)          an open file (cow_open_fd; fd stays
                                     the caller's)

    Options: create, readonly, isolate, nosync, nothread (booleans, the
    COW_* flags), reserve (bytes of address space: the most grow() can
    reach), addr and fixed_addr (placement), mode (for create), flags (raw
    COW_* bits, or-ed with the booleans). Sizes are page multiples.
    """

    def __init__(self, path=None, size=0, *, fd=None, create=False,
                 readonly=False, isolate=False, nosync=False, nothread=False,
                 reserve=0, addr=None, fixed_addr=False, mode=0, flags=0):
        self._a = None
        self._lock = threading.RLock()
        self._views = []
        self._snaps = weakref.WeakSet()
        flags |= ((CREATE if create else 0) | (READONLY if readonly else 0)
                  | (ISOLATE if isolate else 0) | (NOSYNC if nosync else 0)
                  | (NOTHREAD if nothread else 0)
                  | (FIXED_ADDR if fixed_addr else 0))
        opt = _Options(size=size, reserve=reserve, addr=addr, flags=flags,
                       mode=mode)
        h = _P()
        if path is not None and fd is not None:
            raise ValueError("give a path or an fd, not both")
        if path is not None:
            path = os.fspath(path)
            _check(_cow_open(ctypes.byref(h), os.fsencode(path),
                             ctypes.byref(opt)), path)
        elif fd is not None:
            _check(_cow_open_fd(ctypes.byref(h), fd, ctypes.byref(opt)))
        else:
            _check(_cow_open_anon(ctypes.byref(h), size, ctypes.byref(opt)))
        self._a = h.value

    @classmethod
    def open(cls, path, size=0, **options):
        return cls(path, size, **options)

    @classmethod
    def open_fd(cls, fd, **options):
        return cls(fd=fd, **options)

    @classmethod
    def open_anon(cls, size, **options):
        return cls(size=size, **options)

    # --- life -----------------------------------------------------------
    def _handle(self):
        if self._a is None:
            raise ValueError("the arena is closed")
        return self._a

    def _live_views(self):
        self._views = [w for w in self._views if w() is not None]
        return len(self._views)

    @property
    def closed(self):
        return self._a is None

    def close(self):
        """cow_close(): discard uncommitted changes, release the
        snapshots and unmap the memory. Raises BufferError while views
        of the memory exist. Does nothing on a closed arena."""
        with self._lock:
            if self._a is None:
                return
            n = self._live_views()
            if n:
                raise BufferError(
                    "cowarena: %d view(s) of the arena's memory still "
                    "exist; release them before close()" % n)
            for s in list(self._snaps):
                s._h = None  # cow_close releases them
            _cow_close(self._a)
            self._a = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # Views keep their arena alive, so none is left when this runs.
        try:
            if self._a is not None:
                self.close()
        except Exception:
            pass

    def __repr__(self):
        if self._a is None:
            return "<cowarena.Arena closed>"
        return "<cowarena.Arena base=0x%x size=%d>" % (self.base, self.size)

    # --- memory ---------------------------------------------------------
    @property
    def base(self):
        """The address of the arena's first byte (never changes)."""
        return _cow_base(self._handle())

    @property
    def size(self):
        return _cow_size(self._handle())

    @property
    def reserved(self):
        return _cow_reserved(self._handle())

    def __len__(self):
        return self.size

    def memory(self):
        """A writable memoryview (format 'B') of the whole arena at its
        current size. See the module's notes on views and close()."""
        with self._lock:
            size = _cow_size(self._handle())
            buf = (ctypes.c_ubyte * size).from_address(
                _cow_base(self._handle()))
            buf._cowarena_owner = self  # the arena outlives the view
            self._live_views()
            self._views.append(weakref.ref(buf))
            return memoryview(buf).cast("B")

    def numpy(self, dtype="uint8", shape=None):
        """A NumPy array over the arena's memory (needs NumPy): dtype
        elements from the base, reshaped to shape if given. The array is
        a view: it counts as one for close()."""
        import numpy
        dt = numpy.dtype(dtype)
        m = self.memory()
        arr = numpy.frombuffer(m, dtype=dt, count=len(m) // dt.itemsize)
        return arr.reshape(shape) if shape is not None else arr

    # --- undo -----------------------------------------------------------
    def discard(self):
        """Drop every change since the last commit (cow_discard)."""
        with self._lock:
            _check(_cow_discard(self._handle()))

    def revert(self, offset, length):
        """Revert [offset, offset + length) bytes from the base to the
        base's content (page aligned; cow_revert)."""
        with self._lock:
            a = self._handle()
            if offset < 0 or length < 0:
                raise _error(-errno.EINVAL)
            _check(_cow_revert(a, _cow_base(a) + offset, length))

    @staticmethod
    def _runs(call):
        n = 0
        while True:
            out = (_Range * max(n, 1))()
            r = _check(call(out, n))
            if r <= n:
                return [(out[i].offset, out[i].length) for i in range(r)]
            n = r + 8

    def dirty(self):
        """The page runs that differ from the base: a list of
        (offset, length) in bytes, ascending (cow_dirty)."""
        with self._lock:
            a = self._handle()
            return self._runs(lambda out, n: _cow_dirty(a, out, n))

    def diff(self, frm, to=None):
        """The page runs, as dirty() gives them, where snapshot frm
        differs from snapshot to, or with to None from the content now
        (cow_snap_diff). A released snapshot on either side: EINVAL."""
        with self._lock:
            a = self._handle()
            sides = [frm] + ([to] if to is not None else [])
            if any(not isinstance(x, Snapshot) or x._h is None
                   for x in sides):
                raise _error(-errno.EINVAL)
            th = to._h if to is not None else None
            return self._runs(
                lambda out, n: _cow_snap_diff(a, frm._h, th, out, n))

    def grow(self, new_size):
        """Grow in place to new_size bytes (cow_grow): new pages read
        zeros; existing views keep their old size."""
        with self._lock:
            _check(_cow_grow(self._handle(), new_size))

    # --- snapshots ------------------------------------------------------
    def snapshot(self):
        """A snapshot of the content and size now (cow_snapshot)."""
        with self._lock:
            h = _P()
            _check(_cow_snapshot(self._handle(), ctypes.byref(h)))
            s = Snapshot(self, h.value)
            self._snaps.add(s)
            return s

    def load_snapshot(self, path):
        """A snapshot file (Snapshot.save()) as a new snapshot of this
        arena (cow_snap_load); roll back to it to restore its content."""
        with self._lock:
            a = self._handle()
            path = os.fspath(path)
            h = _P()
            _check(_cow_snap_load(a, os.fsencode(path), ctypes.byref(h)),
                   path)
            s = Snapshot(self, h.value)
            self._snaps.add(s)
            return s

    def rollback(self, snap):
        """Return to a live snapshot of this arena (cow_rollback)."""
        with self._lock:
            a = self._handle()
            if not isinstance(snap, Snapshot) or snap._h is None:
                raise _error(-errno.EINVAL)
            _check(_cow_rollback(a, snap._h))

    def release(self, snap):
        """The same as snap.release()."""
        snap.release()

    # --- commit ---------------------------------------------------------
    def commit(self, asynchronous=False):
        """Make the current content the new base, atomically and (for a
        file) durably (cow_commit). asynchronous=True returns once the
        transaction is captured; sync() waits for it."""
        with self._lock:
            _check(_cow_commit(self._handle(),
                               COMMIT_ASYNC if asynchronous else 0))

    def sync(self):
        """Wait until every commit so far is durable (cow_sync)."""
        with self._lock:
            _check(_cow_sync(self._handle()))

    def stats(self):
        """The arena's statistics as a Stats dataclass (cow_stats)."""
        with self._lock:
            st = _Stats()
            _check(_cow_stats(self._handle(), ctypes.byref(st)))
            return Stats(**{f: getattr(st, f) for f, _ in _Stats._fields_})
