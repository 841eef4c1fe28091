# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run at a time on a target: an exclusive ``flock`` on a lock file, taken without waiting.

The kernel releases the lock when the holding process ends, however it ends, so a crashed run never leaves a
stale lock to clean up by hand. With ``remove`` the holder deletes the lock file before it lets go (no file left
beside a target that may be handed to other tools); a run that opened the file just before that deletion finds,
once it holds its lock, that the name no longer leads to the file it locked, and starts again with the new one:
two runs can never hold locks on two different files of one name. The file is opened with ``O_NOFOLLOW``: these
runs are often root, in directories other accounts can write, and a symlink planted at the lock's name must not
make root create or open a file elsewhere.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from typing import Iterator, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError


@contextlib.contextmanager
def exclusive(path: str, busy: str, remove: bool = False, dir_fd: Optional[int] = None,
              owner: Optional[Tuple[int, int]] = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created 0600 when missing) for the block, or fail at once: ``busy``
    is the message when another process holds it. ``remove``: delete the file before releasing it. ``dir_fd``: a
    held descriptor of the directory of ``path``; the file is then made, checked and removed relative to it (by its
    base name), never through a directory swapped in above it. ``owner`` (uid, gid): the file, once held, is given
    to them (a root run making a lock that runs as that account take too: a file it leaves when killed, root's
    and 0600, would shut them out); never a file with other links (one planted there would be chowned too)."""
    name = os.path.basename(path) if dir_fd is not None else path
    fd = _acquire(path, busy, dir_fd)
    try:
        if owner is not None:
            held = os.fstat(fd)
            if (held.st_uid, held.st_gid) != owner and held.st_nlink == 1:
                os.fchown(fd, owner[0], owner[1])
        yield
    finally:
        if remove:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
        os.close(fd)


def _acquire(path: str, busy: str, dir_fd: Optional[int] = None) -> int:
    name = os.path.basename(path) if dir_fd is not None else path
    for _attempt in range(100):
        fd = _open_lock_file(path, 0o600, dir_fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise OpsReadyError('%s (lock %s held).' % (busy, path), lock=path)
            raise OpsReadyError('Cannot lock %s: %s.' % (path, exc.strerror or exc), lock=path)
        held = os.fstat(fd)
        try:
            named = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            named = None
        if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)        # the holder before us removed this file as it let go: lock the current one
    raise OpsReadyError('Could not lock %s: it kept being replaced (another process removing it in a loop?).' % path,
                        lock=path)


@contextlib.contextmanager
def waiting(path: str, what: str, timeout: float = 120.0, mode: int = 0o600, create: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block, waiting up to ``timeout`` seconds for another writer of
    ``what`` to finish. The file stays (writers of a shared store queue on it). The wait is bounded because
    anyone able to open the lock file can hold it: an unbounded ``flock`` would let them stall a root run.
    ``create=False`` (check mode, which must leave the disk as it was): a missing lock file is not made, and the
    block runs without a lock (no writer has ever queued there; a reader of an atomically written file needs none)."""
    if not create and not os.path.lexists(path):
        yield   # (lock files of waiting() are never removed: one made after this test is a writer's, not ours)
        return
    fd = _open_lock_file(path, mode)
    try:
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise OpsReadyError('Cannot lock %s: %s.' % (path, exc.strerror or exc), lock=path)
            if time.monotonic() >= deadline:
                raise OpsReadyError('Another process has held the lock of the %s (%s) for over %d s: find it (fuser '
                                    '%s) and run again when it has ended.' % (what, path, timeout, path), lock=path)
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
        yield
    finally:
        os.close(fd)


def _open_lock_file(path: str, mode: int, dir_fd: Optional[int] = None) -> int:
    try:
        # O_NONBLOCK: a FIFO planted at the name would otherwise hang the open until someone reads it
        fd = os.open(os.path.basename(path) if dir_fd is not None else path,
                     os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OpsReadyError('The lock file %s is a symbolic link: refusing to follow it. Remove it (nothing '
                                'of ours is ever a link there) and run again.' % path, lock=path)
        if exc.errno == errno.ENXIO:      # a FIFO without a reader, as O_NONBLOCK reports it
            raise OpsReadyError('The lock file %s is not a regular file (a FIFO): refusing it. Remove it and run '
                                'again.' % path, lock=path)
        raise OpsReadyError('Cannot create the lock file %s: %s.' % (path, exc.strerror or exc), lock=path)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OpsReadyError('The lock file %s is not a regular file: refusing it. Remove it (nothing of ours is '
                            'ever anything else there) and run again.' % path, lock=path)
    return fd
