# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File operations of a rotation that no race in the log directory can redirect.

Log directories are often writable by the service that logs into them, while rotation runs as root.
Whoever can write the directory can swap any name in it (``app.log``, ``app.log.1``, a temporary
name) for a symlink or a hard link to a file elsewhere, between the moment the rotation looks at the
name and the moment it acts on it. So:

- a log directory is opened once (``LogDir.open``) and every later operation is relative to that
  descriptor (``dir_fd``): a directory path swapped afterwards changes nothing;
- files are opened with ``O_PATH | O_NOFOLLOW`` first (no side effect even on a FIFO or a device),
  checked with ``fstat`` (a regular file, one link, the device and inode that were planned), and only
  then reopened for reading or writing through ``/proc/self/fd/N``, which is that very inode;
- new names are made with ``O_CREAT | O_EXCL | O_NOFOLLOW`` or ``linkat`` of an open descriptor
  (``/proc/self/fd/N`` with ``AT_SYMLINK_FOLLOW``), which never follow a symlink an attacker planted
  and never replace an existing name; renames and unlinks never follow the last component;
- a directory that someone other than root can write (``insecure_reason``) is refused when running
  as root, as logrotate does, unless the task names a user to act as (``acting_as``): the file
  operations then run with that user's effective uid/gid/groups, so the kernel refuses what that user
  could not do by hand.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from typing import Any, Iterator, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

Ident = Tuple[int, int]
O_PATH = getattr(os, 'O_PATH', 0)


def ident(st: os.stat_result) -> Ident:
    return (st.st_dev, st.st_ino)


class Refused(OpsReadyError):
    """A name in the log directory is not what the plan said (swapped, a link, a special file)."""


def insecure_reason(fd: int, path: str) -> Optional[str]:
    """Why the directory open as ``fd`` (and every directory above it) is unsafe for root, or None.

    The log directory itself must be owned by root and not writable by group (unless the group is
    root) or others: whoever can write it can swap the names rotation acts on. A directory above it
    may be writable by others only with the sticky bit (``/tmp``): then nobody but its owner and root
    can rename the entry below. The walk goes up through ``..`` from the opened descriptor, so it
    checks the directories the log really lives in, not a path that could be swapped meanwhile.
    """
    st = os.fstat(fd)
    if st.st_uid != 0:
        return ('%s is owned by uid %d, not root: that user can replace any file in it with a link to another '
                'file' % (path, st.st_uid))
    if st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and st.st_gid != 0):
        return ('%s has insecure permissions (%04o, group %d): it is world writable or writable by a group '
                'which is not root' % (path, stat.S_IMODE(st.st_mode), st.st_gid))
    current = os.open('..', os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    try:
        below = st
        for _depth in range(4096):
            up = os.fstat(current)
            if ident(up) == ident(below):   # / is its own parent
                return None
            writable = up.st_mode & stat.S_IWOTH or (up.st_mode & stat.S_IWGRP and up.st_gid != 0)
            if up.st_uid != 0 or (writable and not up.st_mode & stat.S_ISVTX):
                return ('a directory above %s (device %d inode %d, owner uid %d, mode %04o) can be written by a user '
                        'other than root, who could swap the log directory for another one'
                        % (path, up.st_dev, up.st_ino, up.st_uid, stat.S_IMODE(up.st_mode)))
            parent = os.open('..', os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=current)
            os.close(current)
            current, below = parent, up
        return None
    finally:
        os.close(current)


class LogDir:
    """A log directory opened once; every operation is relative to its descriptor."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def open(cls, path: str) -> 'LogDir':
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return cls(path, fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def full(self, name: str) -> str:
        """The path to show an operator (never used to act on the file)."""
        return os.path.join(self.path, name)

    def proc(self, name: str) -> str:
        """A path that resolves through this descriptor (for APIs that only take paths)."""
        return '/proc/self/fd/%d/%s' % (self.fd, name)

    def listdir(self) -> List[str]:
        return os.listdir(self.fd)

    def lstat(self, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def lstat_or_none(self, name: str) -> Optional[os.stat_result]:
        try:
            return self.lstat(name)
        except FileNotFoundError:
            return None

    def open_regular(self, name: str, flags: Optional[int], expect: Optional[Ident] = None,
                     single_link: bool = True, what: str = 'log') -> int:
        """Open ``name`` for ``flags`` only if it is a regular file (not a symlink, FIFO, device...),
        with one link, and the inode ``expect``-ed; raises ``Refused`` otherwise.

        ``flags=None`` returns the ``O_PATH`` descriptor itself: enough to fstat and to ``link_fd``,
        and it needs no read or write permission on the file.
        """
        try:
            pfd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Refused('%s is now a symlink: it was not followed and the %s was not touched.'
                              % (self.full(name), what), path=self.full(name))
            raise
        try:
            st = os.fstat(pfd)
            if not stat.S_ISREG(st.st_mode):
                kind = 'a symlink' if stat.S_ISLNK(st.st_mode) else 'not a regular file (mode %06o)' % st.st_mode
                raise Refused('%s is %s: it was not opened and the %s was not touched.'
                              % (self.full(name), kind, what), path=self.full(name))
            if expect is not None and ident(st) != expect:
                raise Refused('%s was replaced by another file (device/inode %d/%d, planned %d/%d) since it was '
                              'looked at: the %s was not touched.'
                              % (self.full(name), st.st_dev, st.st_ino, expect[0], expect[1], what),
                              path=self.full(name))
            if single_link and st.st_nlink != 1:
                raise Refused('%s has %d hard links: another name for the same file may be outside this directory, '
                              'so the %s was not touched.' % (self.full(name), st.st_nlink, what),
                              path=self.full(name))
            if flags is None:
                return pfd
            with self.naming(name):   # the error would name /proc/self/fd/<pfd>
                fd = os.open('/proc/self/fd/%d' % pfd, flags | os.O_CLOEXEC | os.O_NOCTTY)
        except BaseException:
            os.close(pfd)
            raise
        os.close(pfd)
        try:
            if ident(os.fstat(fd)) != ident(st):  # cannot happen through /proc/self/fd; checked all the same
                raise Refused('%s changed while it was opened: not touched.' % self.full(name), path=self.full(name))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def create_temp(self, base: str, suffix: str, mode: int = 0o600) -> Tuple[str, int]:
        """A new file ``.<base>.<random><suffix>`` made here (O_EXCL, never through a symlink)."""
        for _attempt in range(100):
            name = '.%s.%s%s' % (base, secrets.token_hex(6), suffix)
            try:
                fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                             dir_fd=self.fd)
            except FileExistsError:
                continue
            return name, fd
        raise OpsReadyError('Could not create a temporary file in %s.' % self.path)

    def shown(self, name: Any) -> Any:
        """The path an operator knows for a name an ``OSError`` carries: a name relative to this directory or a
        ``/proc/self/fd/<this directory>/<name>`` path becomes the directory's path joined with it."""
        if not isinstance(name, str):
            return name
        inside = '/proc/self/fd/%d/' % self.fd
        if name.startswith(inside):
            return self.full(name[len(inside):])
        if name == inside[:-1]:
            return self.path   # the directory itself (an fsync of it)
        return name if os.path.isabs(name) else self.full(name)

    @contextlib.contextmanager
    def naming(self, *names: str) -> Iterator[None]:
        """An ``OSError`` raised in the block names the files by their paths (``shown``), never by a descriptor's
        /proc/self/fd path: an operator reading "File exists: '/proc/self/fd/7'" cannot tell which file it is.
        ``names``: the names the operation acts on, in its order, replacing what the error carries."""
        try:
            yield
        except OSError as exc:
            if names:
                exc.filename = self.full(names[0])
                exc.filename2 = self.full(names[1]) if len(names) > 1 else None
            else:
                exc.filename, exc.filename2 = self.shown(exc.filename), self.shown(exc.filename2)
            raise

    def link_fd(self, fd: int, name: str) -> None:
        """Give the open file ``fd`` the new name ``name`` here; FileExistsError if the name is taken (an error names
        ``name`` here: the file itself has only a /proc/self/fd path)."""
        with self.naming(name):
            os.link('/proc/self/fd/%d' % fd, name, dst_dir_fd=self.fd, follow_symlinks=True)

    def move_no_replace(self, src: str, dst: str) -> None:
        """Rename that refuses to overwrite (link then unlink); a symlink is moved, never followed."""
        with self.naming(src, dst):
            os.link(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
        with self.naming(src):
            os.unlink(src, dir_fd=self.fd)

    def rename(self, src: str, dst: str) -> None:
        with self.naming(src, dst):
            os.rename(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def unlink(self, name: str) -> bool:
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        return True

    def unlink_if(self, name: str, expect: Ident) -> bool:
        """Remove ``name`` only if it still is the inode ``expect`` (not something swapped in)."""
        st = self.lstat_or_none(name)
        if st is None or ident(st) != expect:
            return False
        return self.unlink(name)

    def fsync(self) -> None:
        os.fsync(self.fd)

    def free_bytes(self) -> int:
        vfs = os.fstatvfs(self.fd)
        return vfs.f_bavail * vfs.f_frsize

    def describe(self, names: List[str]) -> str:
        """What is on disk now under ``names``: for messages that must not guess."""
        parts = []
        for name in names:
            st = self.lstat_or_none(name)
            if st is None:
                parts.append('%s: absent' % name)
            elif stat.S_ISREG(st.st_mode):
                parts.append('%s: %d bytes' % (name, st.st_size))
            else:
                parts.append('%s: not a regular file' % name)
        return 'on disk in %s now: %s' % (self.path, ', '.join(parts))


@contextlib.contextmanager
def acting_as(uid: Optional[int], gid: Optional[int]) -> Iterator[None]:
    """Run the block with effective uid ``uid``, gid ``gid`` and no other group (logrotate's ``su``).

    The real uid stays root so the block's end can switch back; seteuid applies to every thread of
    the process (glibc), so compression threads started inside run as that user too. With no user,
    or when already running as that user, nothing changes.
    """
    if uid is None or (uid == os.geteuid() and (gid is None or gid == os.getegid())):
        yield
        return
    if os.geteuid() != 0:
        raise OpsReadyError('su asks to act as uid %d but this task runs as uid %d, which cannot switch user: run it '
                            'with become: true (root).' % (uid, os.geteuid()))
    target_gid = gid if gid is not None else os.getegid()
    saved_groups = os.getgroups()
    saved_gid = os.getegid()
    os.setgroups([target_gid])
    os.setegid(target_gid)
    try:
        os.seteuid(uid)
    except BaseException:
        os.setegid(saved_gid)
        os.setgroups(saved_groups)
        raise
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(saved_gid)
        os.setgroups(saved_groups)
