# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file writes: temp file in the same directory, fsync, rename, fsync the directory.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from typing import Any, Optional, Sequence, Union

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safe_read as safeio

# The name of an artifact while it is written (streaming.ArtifactWriter renames it into place). Here, not in
# streaming.py, so that catalog reads (backup_info) need not import (and Ansible ship) the writer and encryption.
PARTIAL_SUFFIX = '.partial'


def fsync_dir(path: str) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_prefix(name: str, tail: int = 8 + len('.tmp')) -> str:
    """``.<name>.`` for a temporary name beside ``name`` that ``tail`` more bytes end (mkstemp's 8 random characters
    and ``.tmp``), ``name`` cut to its first characters where the whole would pass the 255 bytes of a component: a
    legal 255-byte name failed with ENAMETOOLONG."""
    kept = name
    while len(os.fsencode('.%s.' % kept)) > 255 - tail:
        kept = kept[:-1]
    return '.%s.' % kept


def atomic_write_bytes(path: str, data: Union[bytes, Sequence[bytes]], mode: int = 0o644,
                       uid: Optional[int] = None, gid: Optional[int] = None) -> None:
    """Write ``data`` (bytes, or a list of chunks written in turn: a large file need not be joined into one copy
    first) to ``path`` so that readers see the old file or the new one, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    # mkstemp creates the temp name with O_EXCL | O_NOFOLLOW; mode and owner are then set on the
    # descriptor, never by path: in a directory another user can write, the temp name could be swapped
    # for a symlink between close and a chmod/chown by name, and root would change the link's target.
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(os.path.basename(path)), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            if isinstance(data, (bytes, bytearray, memoryview)):
                handle.write(data)
            else:
                for chunk in data:
                    handle.write(chunk)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if uid is not None or gid is not None:
                os.fchown(handle.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            os.fsync(handle.fileno())
        os.replace(tmp, path)   # replaces a symlink at the final name, never writes through it
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
    """Append one line (JSONL histories) with O_APPEND so concurrent writers never interleave.

    The final name is never followed (O_NOFOLLOW) and must be a regular file with one link: a user who
    can write the history's directory could otherwise plant a symlink or a hard link there and make root
    append to any file. O_NONBLOCK keeps a planted FIFO from blocking the open.
    """
    flags = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
             | getattr(os, 'O_CLOEXEC', 0))
    try:
        # lstat first so a device is refused without being opened (opening one can have effects);
        # the fstat below, on what was really opened, decides.
        before = os.lstat(path)
        if not stat.S_ISREG(before.st_mode):
            raise OpsReadyError('%s is %s, not a regular file: nothing was appended. Point the path at a regular '
                                'file.' % (path, safeio.kind_of(before.st_mode)), path=path)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OpsReadyError('%s is a symlink: it was not followed and nothing was appended. Point the path at '
                                'the file itself.' % path, path=path)
        if exc.errno == errno.ENXIO:
            raise OpsReadyError('%s is a FIFO (named pipe), not a regular file: nothing was appended.' % path,
                                path=path)
        if exc.errno == errno.EISDIR:
            raise OpsReadyError('%s is a directory, not a regular file: nothing was appended.' % path, path=path)
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OpsReadyError('%s is %s, not a regular file: nothing was appended.'
                                % (path, safeio.kind_of(st.st_mode)), path=path)
        if st.st_nlink != 1:
            raise OpsReadyError('%s has %d hard links: another name for it may be outside this directory, so '
                                'nothing was appended.' % (path, st.st_nlink), path=path)
        os.write(fd, (line.rstrip('\n') + '\n').encode('utf-8'))
        os.fsync(fd)
    finally:
        os.close(fd)
