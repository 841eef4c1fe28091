# -*- coding: utf-8 -*-
"""Hashing a base backup behind pg_basebackup as it writes (engines/postgresql/backup.py ``_hash_behind``): every
byte is hashed, and the loop ends when the writer exits, not at its next 20 ms poll tick (issue 22: the fixed
cost of ``db_backup kind=base`` over the raw tool). A shell writer stands in for pg_basebackup: appends, then
exits. The poll tick is stretched to 60 s: a loop that notices the exit only at its next tick takes a minute, one
woken by the exit (pidfd) returns at once - a yes/no answer, not a timing that a busy machine can fail."""

from __future__ import annotations

import functools
import hashlib
import subprocess
import time

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import backup
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import (
    _hash_behind, _hash_rest)

WRITER = 'printf first > "$1"; sleep 0.02; printf second >> "$1"; sleep 0.022'


TICK = 60.0


def test_every_byte_is_hashed_and_the_loop_ends_when_the_writer_exits(tmp_path, monkeypatch):
    monkeypatch.setattr(backup, '_pause', functools.partial(backup._pause, seconds=TICK))
    path = tmp_path / 'base.tar.zst'
    times = []
    for _round in range(3):
        path.unlink(missing_ok=True)
        proc = subprocess.Popen(['sh', '-c', WRITER, 'sh', str(path)])
        started = time.monotonic()
        digest = hashlib.sha256()
        size = _hash_behind(str(path), proc, digest)
        times.append(time.monotonic() - started)
        size += _hash_rest(str(path), size, digest)
        assert proc.returncode == 0
        assert size == len(b'firstsecond') and digest.hexdigest() == hashlib.sha256(b'firstsecond').hexdigest()
    # woken by the exit: far below one tick even on a loaded machine (a tick-bound loop needs >= TICK per round)
    assert max(times) < TICK / 2, times
