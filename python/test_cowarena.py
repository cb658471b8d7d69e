#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tests of the Python bindings (python/cowarena.py).

Run by `make test` through tests/test_python.sh, which points
COWARENA_LIB at the build's shared library. Run alone:
    COWARENA_LIB=build/libcowarena.so.0 python3 python/test_cowarena.py
Besides unittest's report it prints cmocka's summary lines, which
tests/run.sh counts.
"""

import errno
import gc
import mmap
import os
import sys
import tempfile
import unittest
import weakref

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cowarena  # noqa: E402

PG = mmap.PAGESIZE

try:
    import numpy
except ImportError:
    numpy = None


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="cowarena-py-")
        self.path = os.path.join(self.dir.name, "img")

    def tearDown(self):
        gc.collect()
        self.dir.cleanup()


class TestOpenClose(Base):
    def test_anon_context_manager(self):
        with cowarena.Arena(size=4 * PG) as a:
            self.assertFalse(a.closed)
            self.assertEqual(a.size, 4 * PG)
            self.assertEqual(len(a), 4 * PG)
            self.assertGreaterEqual(a.reserved, a.size)
            self.assertNotEqual(a.base, 0)
        self.assertTrue(a.closed)
        with self.assertRaises(ValueError):
            a.size
        a.close()  # twice is harmless

    def test_file_lock_released_by_with(self):
        with cowarena.Arena(self.path, 2 * PG, create=True) as a:
            self.assertEqual(a.size, 2 * PG)
            with self.assertRaises(OSError) as cm:
                cowarena.Arena(self.path)
            self.assertEqual(cm.exception.errno, errno.EBUSY)
        with cowarena.Arena.open(self.path) as b:
            self.assertEqual(b.size, 2 * PG)

    def test_open_fd(self):
        with open(self.path, "wb") as f:
            f.write(b"x" * PG)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            with cowarena.Arena.open_fd(fd, readonly=True) as a:
                with a.memory() as m:
                    self.assertEqual(bytes(m[:3]), b"xxx")
        finally:
            os.close(fd)

    def test_garbage_collected_arena_is_closed(self):
        a = cowarena.Arena(self.path, PG, create=True)
        w = weakref.ref(a)
        del a
        gc.collect()
        self.assertIsNone(w())
        with cowarena.Arena(self.path) as b:  # its lock is gone
            self.assertEqual(b.size, PG)


class TestMemory(Base):
    def test_view_reads_and_writes(self):
        with cowarena.Arena(size=2 * PG) as a:
            with a.memory() as m:
                self.assertEqual(len(m), 2 * PG)
                self.assertEqual(m.format, "B")
                self.assertFalse(m.readonly)
                self.assertEqual(m[PG], 0)
                m[PG:PG + 5] = b"hello"
                self.assertEqual(a.dirty(), [(PG, PG)])
            with a.memory() as m2:
                self.assertEqual(bytes(m2[PG:PG + 5]), b"hello")

    def test_close_refuses_while_views_live(self):
        a = cowarena.Arena(size=2 * PG)
        m = a.memory()
        with self.assertRaises(BufferError):
            a.close()
        self.assertFalse(a.closed)
        part = m[10:20]  # a slice is a view too
        m.release()
        with self.assertRaises(BufferError):
            a.close()
        part[0] = 1  # still mapped
        del part
        a.close()
        self.assertTrue(a.closed)

    def test_view_keeps_arena_alive(self):
        a = cowarena.Arena(size=PG)
        w = weakref.ref(a)
        m = a.memory()
        del a
        gc.collect()
        self.assertIsNotNone(w())  # not closed under the view
        m[0] = 7
        self.assertEqual(m[0], 7)
        m.release()
        del m
        gc.collect()
        self.assertIsNone(w())

    def test_grow_and_new_view(self):
        with cowarena.Arena(size=2 * PG) as a:
            base = a.base
            with a.memory() as old:
                a.grow(8 * PG)
                self.assertEqual(a.base, base)
                self.assertEqual(len(old), 2 * PG)
            with a.memory() as m:
                self.assertEqual(len(m), 8 * PG)
                m[7 * PG] = 1
            with self.assertRaises(OSError) as cm:
                a.grow(PG)  # arenas do not shrink
            self.assertEqual(cm.exception.errno, errno.EINVAL)
            with self.assertRaises(OSError) as cm:
                a.grow(a.reserved + PG)
            self.assertEqual(cm.exception.errno, errno.ENOSPC)
            self.assertEqual(a.size, 8 * PG)

    # One of the two, as NumPy is there or not (its absence is no skip:
    # numpy() must then fail cleanly).
    if numpy is not None:
        def test_numpy_view(self):
            with cowarena.Arena(size=4 * PG) as a:
                arr = a.numpy("uint32", shape=(4, PG // 4))
                self.assertEqual(arr.shape, (4, PG // 4))
                arr[2, 3] = 0xdeadbeef
                with a.memory() as m:
                    self.assertEqual(bytes(m[2 * PG + 12:2 * PG + 16]),
                                     (0xdeadbeef).to_bytes(4, sys.byteorder))
                s = a.snapshot()
                arr[2, 3] = 1
                a.rollback(s)
                self.assertEqual(arr[2, 3], 0xdeadbeef)
                s.release()
                with self.assertRaises(BufferError):
                    a.close()
                del arr

    else:
        def test_numpy_missing(self):
            with cowarena.Arena(size=PG) as a:
                with self.assertRaises(ImportError):
                    a.numpy()


class TestUndo(Base):
    def test_snapshot_rollback_release(self):
        with cowarena.Arena(size=8 * PG) as a, a.memory() as m:
            m[0] = 1
            s1 = a.snapshot()
            m[0] = 2
            m[3 * PG] = 3
            with a.snapshot() as s2:
                m[3 * PG] = 4
                m[7 * PG] = 5
                self.assertEqual(a.stats().snapshots, 2)
                a.rollback(s1)
                self.assertEqual((m[0], m[3 * PG], m[7 * PG]), (1, 0, 0))
                s2.rollback()  # any order, any number of times
                self.assertEqual((m[0], m[3 * PG], m[7 * PG]), (2, 3, 0))
            self.assertTrue(s2.released)
            self.assertEqual(a.stats().snapshots, 1)
            with self.assertRaises(OSError) as cm:
                a.rollback(s2)
            self.assertEqual(cm.exception.errno, errno.EINVAL)
            a.release(s1)
            s1.release()  # twice is harmless
            self.assertEqual(a.stats().snapshots, 0)

    def test_snapshot_outlives_arena(self):
        a = cowarena.Arena(size=PG)
        s = a.snapshot()
        other = cowarena.Arena(size=PG)
        with self.assertRaises(OSError) as cm:
            other.rollback(s)  # not its snapshot
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        a.close()
        self.assertTrue(s.released)
        with self.assertRaises(OSError) as cm:
            other.rollback(s)
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        s.release()
        del s
        other.close()

    def test_snapshot_records_size(self):
        with cowarena.Arena(size=2 * PG) as a:
            s = a.snapshot()
            a.grow(4 * PG)
            a.rollback(s)
            self.assertEqual(a.size, 2 * PG)
            s.release()

    def test_dirty_discard_revert(self):
        with cowarena.Arena(size=8 * PG) as a, a.memory() as m:
            self.assertEqual(a.dirty(), [])
            for p in (0, 1, 5, 6, 7):
                m[p * PG] = 1
            self.assertEqual(a.dirty(),
                             [(0, 2 * PG), (5 * PG, 3 * PG)])
            a.revert(6 * PG, PG)
            self.assertEqual(m[6 * PG], 0)
            self.assertEqual(a.dirty(),
                             [(0, 2 * PG), (5 * PG, PG), (7 * PG, PG)])
            with self.assertRaises(OSError) as cm:
                a.revert(1, PG)
            self.assertEqual(cm.exception.errno, errno.EINVAL)
            with self.assertRaises(OSError):
                a.revert(8 * PG, PG)  # past the end
            self.assertEqual(len(a.dirty()), 3)  # failures changed nothing
            a.discard()
            self.assertEqual(a.dirty(), [])
            self.assertEqual(m[0], 0)

    def test_many_runs(self):
        with cowarena.Arena(size=64 * PG) as a, a.memory() as m:
            for p in range(0, 64, 2):
                m[p * PG] = 1
            runs = a.dirty()  # more runs than the first buffer holds
            self.assertEqual(runs, [(p * PG, PG) for p in range(0, 64, 2)])


class TestSnapFile(Base):
    def test_save_load(self):
        snap = self.path + ".snap"
        with cowarena.Arena(size=8 * PG) as a:
            with a.memory() as m:
                m[3 * PG:3 * PG + 5] = b"saved"
            with a.snapshot() as s:
                s.save(snap)
            with self.assertRaises(OSError) as cm:
                s.save(snap)  # released
            self.assertEqual(cm.exception.errno, errno.EINVAL)
        with cowarena.Arena(size=8 * PG) as b, b.memory() as m:
            s = b.load_snapshot(snap)
            self.assertEqual(m[3 * PG], 0)  # the load alone changes nothing
            b.rollback(s)
            self.assertEqual(bytes(m[3 * PG:3 * PG + 5]), b"saved")
            self.assertEqual(b.stats().snapshots, 1)
            with self.assertRaises(FileNotFoundError):
                b.load_snapshot(snap + ".missing")
            with open(snap + ".junk", "wb") as f:
                f.write(b"\x11" * 2 * PG)
            with self.assertRaises(cowarena.CowError) as cm:
                b.load_snapshot(snap + ".junk")
            self.assertEqual(cm.exception.errno, cowarena.ECORRUPT)
            self.assertEqual(b.stats().snapshots, 1)

    def test_diff(self):
        with cowarena.Arena(size=64 * PG) as a, a.memory() as m:
            s0 = a.snapshot()
            for p in range(0, 64, 2):
                m[p * PG] = 1
            s1 = a.snapshot()
            self.assertEqual(a.diff(s0, s1),
                             [(p * PG, PG) for p in range(0, 64, 2)])
            self.assertEqual(a.diff(s1), [])
            m[PG] = 1
            m[2 * PG] = 1  # its own byte again: no difference
            self.assertEqual(a.diff(s1), [(PG, PG)])
            self.assertEqual(len(a.diff(s0)), 31)
            s1.release()
            for args in ((s1,), (s0, s1)):
                with self.assertRaises(OSError) as cm:
                    a.diff(*args)
                self.assertEqual(cm.exception.errno, errno.EINVAL)
            with cowarena.Arena(size=PG) as b, b.snapshot() as sb:
                with self.assertRaises(OSError) as cm:
                    a.diff(sb)
                self.assertEqual(cm.exception.errno, errno.EINVAL)
            s0.release()

    def test_full_into_a_file_arena(self):
        snap = self.path + ".snap"
        with cowarena.Arena(size=2 * PG) as a:
            with a.memory() as m:
                m[5] = 9
            with a.snapshot() as s:
                s.save(snap, full=True)
        with cowarena.Arena(self.path, 2 * PG, create=True) as f:
            s = f.load_snapshot(snap)  # a full file needs no base
            f.rollback(s)
            with f.memory() as m:
                self.assertEqual(m[5], 9)


class TestCommit(Base):
    def test_commit_sync_reopen(self):
        with cowarena.Arena(self.path, 2 * PG, create=True) as a:
            with a.memory() as m:
                m[PG:PG + 5] = b"hello"
                a.commit()
                m[0:3] = b"abc"
                a.commit(asynchronous=True)
                a.sync()
                m[5] = 1  # never committed
            st = a.stats()
            self.assertEqual(st.commits, 2)
            self.assertEqual(st.dirty_pages, 1)
        with open(self.path, "rb") as f:
            data = f.read()
        self.assertEqual(data[PG:PG + 5], b"hello")
        self.assertEqual(data[0:6], b"abc\0\0\0")
        with cowarena.Arena(self.path, readonly=True) as r:
            with self.assertRaises(OSError) as cm:
                r.commit()
            self.assertEqual(cm.exception.errno, errno.EROFS)

    def test_stats(self):
        with cowarena.Arena(size=8 * PG) as a:
            st = a.stats()
            self.assertIsInstance(st, cowarena.Stats)
            self.assertEqual((st.size, st.page_size, st.dirty_pages,
                              st.snapshots, st.tracking),
                             (8 * PG, PG, 0, 0, cowarena.TRACK_NONE))
            with a.memory() as m:
                m[0] = 1
                m[4 * PG] = 1
            with a.snapshot():
                st = a.stats()
                self.assertEqual((st.dirty_pages, st.snapshots,
                                  st.saved_pages), (2, 1, 2))
                self.assertIn(st.tracking, (cowarena.TRACK_UFFD_WP,
                                            cowarena.TRACK_COMPARE))
                self.assertGreaterEqual(st.saved_bytes, 2 * PG)
                self.assertGreaterEqual(st.mappings, 1)
            a.commit()
            st = a.stats()
            self.assertEqual((st.commits, st.commit_seq_durable,
                              st.dirty_pages), (1, 1, 0))


class TestErrors(Base):
    def test_errno_errors(self):
        with self.assertRaises(FileNotFoundError) as cm:
            cowarena.Arena(self.path)
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assertEqual(cm.exception.filename, self.path)
        with self.assertRaises(OSError) as cm:
            cowarena.Arena(size=PG + 1)
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertNotIsInstance(cm.exception, cowarena.CowError)
        with self.assertRaises(IsADirectoryError):
            cowarena.Arena(self.dir.name)
        with self.assertRaises(OSError) as cm:
            cowarena.Arena(self.path, PG, create=True, readonly=True)
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertFalse(os.path.exists(self.path))

    def test_library_code(self):
        with open(self.path, "wb") as f:
            f.write(b"\xab" * PG)
        with open(self.path + ".cowlog", "wb") as f:
            f.write(b"\xab" * PG)  # a log with a broken header
        with self.assertRaises(cowarena.CowError) as cm:
            cowarena.Arena(self.path)
        e = cm.exception
        self.assertIsInstance(e, OSError)
        self.assertEqual(e.errno, cowarena.ECORRUPT)
        self.assertEqual(e.strerror, cowarena.strerror(cowarena.ECORRUPT))
        self.assertNotIn("Unknown", e.strerror)
        self.assertEqual(e.filename, self.path)
        os.unlink(self.path + ".cowlog")
        os.mkdir(self.path + ".cowlog")  # the log's name taken
        with self.assertRaises(cowarena.CowError) as cm:
            cowarena.Arena(self.path)
        self.assertEqual(cm.exception.errno, cowarena.ELOGTYPE)
        codes = (cowarena.ECORRUPT, cowarena.EFOREIGN, cowarena.EVERSION,
                 cowarena.ERECOVER, cowarena.ELOGTYPE)
        self.assertEqual(codes, tuple(range(4097, 4102)))
        for code in codes:
            self.assertEqual(cowarena.strerror(code),
                             cowarena.strerror(-code))
        self.assertEqual(len({cowarena.strerror(c) for c in codes}), 5)
        self.assertEqual(cowarena.version().count("."), 2)


def main():
    """unittest's report, then cmocka's summary lines for tests/run.sh."""
    suite = unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[__name__])
    res = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    bad = [t for t, _ in res.failures + res.errors]
    run = res.testsRun - len(res.skipped)
    for t, why in res.skipped:
        print("[  SKIPPED ] %s: %s" % (t.id(), why))
    print("[==========] python: %d test(s) run." % res.testsRun)
    print("[  PASSED  ] %d test(s)." % (run - len(bad)))
    if res.skipped:
        print("[  SKIPPED ] %d test(s)." % len(res.skipped))
    if bad:
        print("[  FAILED  ] %d test(s), listed below:" % len(bad))
        for t in bad:
            print("[  FAILED  ] %s" % t.id())
    return 0 if res.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
