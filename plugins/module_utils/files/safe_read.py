# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a named file only when it is a regular file no larger than a cap (``read_regular``, ``read_fd``).

The part of ``safeio`` the catalog's readers need (a manifest, the catalog index), on its own so that a module
that only reads the catalog (``backup_info``) neither ships nor compiles the rest of ``safeio`` (``SafeDir``, the
backup directory checks, xattrs and flags): Ansible ships every file an import reaches and the target compiles each
imported one on every run (issue 22, module start-up). ``safeio`` re-exports every name defined here: import
either.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError


MiB = 1024 * 1024


class UnsafeFileError(OpsReadyError):
    """A path is not a regular file of acceptable size, or a directory is not safe to write into."""


def kind_of(mode: int) -> str:
    """What a file is, in words (for messages)."""
    if stat.S_ISREG(mode):
        return 'a regular file'
    if stat.S_ISDIR(mode):
        return 'a directory'
    if stat.S_ISFIFO(mode):
        return 'a FIFO (named pipe)'
    if stat.S_ISCHR(mode):
        return 'a character device'
    if stat.S_ISBLK(mode):
        return 'a block device'
    if stat.S_ISSOCK(mode):
        return 'a socket'
    if stat.S_ISLNK(mode):
        return 'a symlink'
    return 'a special file'


def human_size(size: int) -> str:
    if size >= MiB:
        return '%.1f MiB' % (size / float(MiB))
    if size >= 1024:
        return '%.1f KiB' % (size / 1024.0)
    return '%d bytes' % size


def explain_missing(path: str, what: str = 'File') -> str:
    """Why ``path`` cannot be opened: missing, a symlink loop, or a symlink to nothing."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return ('%s %s is a symlink loop (following its links never reaches a file): fix or remove the '
                    'link.' % (what, path))
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return ('%s %s is a symlink to %s, which does not exist: fix the link or the path.'
                    % (what, path, os.readlink(path)))
        if exc.errno == errno.ENOENT:
            return '%s %s does not exist: fix the path.' % (what, path)
        return 'Cannot read %s: %s.' % (path, exc.strerror)
    return ''


def _check_stat(path: str, st: os.stat_result, limit: int, what: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError('%s %s is %s, not a regular file: it was not read. Point the path at the file '
                              'itself.' % (what, path, kind_of(st.st_mode)), path=path)
    if st.st_size > limit:
        raise UnsafeFileError('%s %s is %s, more than the %s such a file can hold: it was not read. Point the '
                              'path at the right file.' % (what, path, human_size(st.st_size), human_size(limit)),
                              path=path)


def read_fd(fd: int, path: str, limit: int, what: str) -> bytes:
    """Read an open descriptor after checking it is a regular file within ``limit`` bytes."""
    _check_stat(path, os.fstat(fd), limit, what)
    chunks: List[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(MiB, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            # The file grew after fstat (or lies about its size, as /proc files do): stop at the cap.
            raise UnsafeFileError('%s %s grew past %s while it was read: it was not used.'
                                  % (what, path, human_size(limit)), path=path)
    return b''.join(chunks)


def open_checked(path: str, limit: int, what: str, follow: bool, dir_fd: Optional[int] = None) -> int:
    """A read-only descriptor of ``path`` once a stat shows a regular file of at most ``limit`` bytes: devices and
    FIFOs are refused before they are even opened (opening a tape or a serial line can have effects; the caller's
    fstat decides). ``follow=False``: a symlink at the final name is refused (``UnsafeFileError``), never opened.
    Any other failure of the stat or the open is its ``OSError``, for the caller to word."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, 'O_CLOEXEC', 0)
    if not follow:
        flags |= os.O_NOFOLLOW
    try:
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow)
        if not stat.S_ISLNK(st.st_mode):
            _check_stat(path, st, limit, what)
            return os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno != errno.ELOOP or follow:
            raise
    raise UnsafeFileError('%s %s is a symlink and symlinks are not followed here (someone else could have planted '
                          'it): it was not read.' % (what, path), path=path)


def read_regular(path: str, limit: int, what: str = 'File', follow: bool = True,
                 dir_fd: Optional[int] = None, single_link: bool = False) -> bytes:
    """The content of ``path`` when it is a regular file of at most ``limit`` bytes.

    ``follow=False`` refuses a symlink at the final name instead of reading what it points to. ``single_link``
    refuses a file with more than one name: in a directory another account writes, a hard link it planted to a
    root-only file (where fs.protected_hardlinks is off) would make root read that file as this one.
    """
    try:
        fd = open_checked(path, limit, what, follow, dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP) and dir_fd is None and os.path.islink(path):
            raise UnsafeFileError(explain_missing(path, what), path=path, errno=exc.errno)
        raise UnsafeFileError('Cannot read %s %s: %s.' % (what.lower(), path, exc.strerror), path=path,
                              errno=exc.errno)
    try:
        if single_link:
            links = os.fstat(fd).st_nlink
            if links > 1:
                raise UnsafeFileError('%s %s has %d hard links (names elsewhere for the same file): it was not read, '
                                      'as someone who can write its directory could have linked another file there. '
                                      'Replace it with a copy of its own (cp, then mv over the name).'
                                      % (what, path, links), path=path)
        return read_fd(fd, path, limit, what)
    finally:
        os.close(fd)
