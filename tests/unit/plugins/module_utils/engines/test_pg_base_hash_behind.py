# -*- coding: utf-8 -*-
"""Hashing a base backup behind pg_basebackup as it writes (engines/postgresql/backup.py ``_hash_behind``): every
byte is hashed, and the loop ends when the writer exits, not at its next 20 ms poll tick (issue 22: the fixed
cost of ``db_backup kind=base`` over the raw tool). A shell writer stands in for pg_basebackup: appends, then
exits after a pause placed just past a tick (the old loop slept 20 ms between polls: it returned >= 60 ms)."""

from __future__ import annotations

import hashlib
import subprocess
import time

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import (
    _hash_behind, _hash_rest)

WRITER = 'printf first > "$1"; sleep 0.02; printf second >> "$1"; sleep 0.022'


def test_every_byte_is_hashed_and_the_loop_ends_when_the_writer_exits(tmp_path):
    path = tmp_path / 'base.tar.zst'
    times = []
    for _round in range(5):
        path.unlink(missing_ok=True)
        proc = subprocess.Popen(['sh', '-c', WRITER, 'sh', str(path)])
        started = time.monotonic()
        digest = hashlib.sha256()
        size = _hash_behind(str(path), proc, digest)
        times.append(time.monotonic() - started)
        size += _hash_rest(str(path), size, digest)
        assert proc.returncode == 0
        assert size == len(b'firstsecond') and digest.hexdigest() == hashlib.sha256(b'firstsecond').hexdigest()
    # the writer takes ~45 ms (two pauses and its start); the best of five rounds absorbs a busy machine
    assert min(times) < 0.058, times
