"""The feed of a decompressed copy into pg_restore's stdin while zstd writes it (``restore._follow``, issue 22).

pg_restore reads its stdin ~8 KiB at a time. A blocking ``splice`` into the full 1 MiB pipe returned each time it
freed a page: one wake-up and one system call of the feeder per read (41,716 splices and ~30,000 context switches
of the module process for a 370 MB dump under strace). The feeder now waits until the reader has taken half the
pipe, then sends the half in one go. These tests use a real pipe, a real file and a reader thread that reads in
pg_restore's pieces at a database load's pace; they check the bytes arrive whole and in order, that the number of
sends is per half pipe and not per read, and that a reader that stops (``pg_restore --list`` reads the head and
exits) ends the feed instead of leaving it waiting for a pipe nobody drains."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import threading
import time

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (  # noqa: E402
    restore as pg_restore)

MIB = 1024 * 1024


class DoneCopier:
    """What ``_follow`` reads of a ``_Copier``: a copy that is complete and checked."""

    def __init__(self, path: str) -> None:
        self.growing = path
        self.error = None
        self.running = False
        self._begun = threading.Event()
        self._begun.set()
        self._cancel = threading.Event()

    def wait(self, timeout: float) -> None:
        time.sleep(timeout)


def make_copy(tmp_path, size: int) -> str:
    path = str(tmp_path / 'dump')
    with open(path, 'wb') as handle:
        handle.write(os.urandom(size))
    return path


def feed(path: str, reader, monkeypatch) -> list:
    """Run ``_follow`` into a 1 MiB pipe read by ``reader(fd)``; returns [sends, reader's result]."""
    sends = [0]
    send = pg_restore._send

    def counted(*args):
        sends[0] += 1
        return send(*args)
    monkeypatch.setattr(pg_restore, '_send', counted)
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, 1031, MIB)   # F_SETPIPE_SZ, as grow_pipe does
    except OSError:
        pass
    got: list = []
    thread = threading.Thread(target=lambda: got.append(reader(read_end)))
    thread.start()
    with os.fdopen(write_end, 'wb') as sink:
        feeder = threading.Thread(target=pg_restore._follow, args=(DoneCopier(path), sink, threading.Event()))
        feeder.start()
        feeder.join(60)
        assert not feeder.is_alive(), 'the feed did not end'
    thread.join(60)
    os.close(read_end)
    return [sends[0], got[0]]


def paced_reader(fd: int) -> str:
    """pg_restore's reads: 8 KiB at a time, at ~200 MB/s (a fast load)."""
    digest = hashlib.sha256()
    count = 0
    while True:
        data = os.read(fd, 8192)
        if not data:
            return digest.hexdigest()
        digest.update(data)
        count += 1
        if count % 32 == 0:
            time.sleep(0.001)


def test_a_full_pipe_is_refilled_by_the_half_not_by_the_page(tmp_path, monkeypatch):
    size = 24 * MIB
    path = make_copy(tmp_path, size)
    with open(path, 'rb') as handle:
        expected = hashlib.sha256(handle.read()).hexdigest()
    sends, digest = feed(path, paced_reader, monkeypatch)
    assert digest == expected
    # ~48 half-pipe refills (and a few short sends when the reader was quick); one per read would be ~3,000
    assert sends < 200, '%d sends for %d reads of 8 KiB' % (sends, size // 8192)


def test_a_reader_that_stops_early_ends_the_feed(tmp_path):
    """pg_restore --list reads the archive's head and exits while the pipe is full."""
    path = make_copy(tmp_path, 8 * MIB)

    def head_only(fd: int) -> int:
        time.sleep(0.2)              # the pipe is full by now: the feeder waits for it to drain
        return len(os.read(fd, 65536))
    started = time.monotonic()
    assert feed_closing(path, head_only) == 65536
    assert time.monotonic() - started < 10


def feed_closing(path: str, reader) -> int:
    """As ``feed``, but the reader's end of the pipe is closed when ``reader`` returns (a tool that exits); returns
    what ``reader`` returned."""
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, 1031, MIB)
    except OSError:
        pass
    got: list = []

    def run() -> None:
        try:
            got.append(reader(read_end))
        finally:
            os.close(read_end)
    thread = threading.Thread(target=run)
    thread.start()
    with os.fdopen(write_end, 'wb') as sink:
        feeder = threading.Thread(target=pg_restore._follow, args=(DoneCopier(path), sink, threading.Event()))
        feeder.start()
        feeder.join(20)
        assert not feeder.is_alive(), 'the feed kept waiting on a pipe whose reader had gone'
    thread.join(20)
    return got[0]
