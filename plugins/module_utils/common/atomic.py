# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file writes: temp file in the same directory, fsync, rename, fsync the directory.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Optional


def fsync_dir(path: str) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str, data: bytes, mode: int = 0o644,
                       uid: Optional[int] = None, gid: Optional[int] = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if uid is not None or gid is not None:
            os.chown(tmp, -1 if uid is None else uid, -1 if gid is None else gid)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def atomic_write_text(path: str, text: str, mode: int = 0o644,
                      uid: Optional[int] = None, gid: Optional[int] = None) -> None:
    atomic_write_bytes(path, text.encode('utf-8'), mode=mode, uid=uid, gid=gid)


def atomic_write_json(path: str, data: Any, mode: int = 0o644) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + '\n', mode=mode)


def append_line_durable(path: str, line: str, mode: int = 0o644) -> None:
    """Append one line (JSONL histories) with O_APPEND so concurrent writers never interleave."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    try:
        os.write(fd, (line.rstrip('\n') + '\n').encode('utf-8'))
        os.fsync(fd)
    finally:
        os.close(fd)
