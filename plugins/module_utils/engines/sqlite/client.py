# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQLite client: Python's sqlite3, opening exactly the file named (a ``file:`` URI with every special
byte escaped, never creating it unless asked), with the busy timeout from connect_timeout. Backup
(``engines/sqlite/backup.py``), restore, maintenance and DR drill checks open files through it.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
import struct
from typing import Any, List, Optional
from urllib.parse import quote

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

# The files SQLite opens by name next to a database (WAL, shared memory, rollback journal).
SIDECARS = ('-wal', '-shm', '-journal')


def sqlite_uri(path: str, mode: str = 'ro') -> str:
    """The ``file:`` URI of ``path`` for ``sqlite3.connect(..., uri=True)``.

    Every byte that means something in a URI (``#`` starts a fragment, ``?`` the query, ``%`` an escape,
    spaces, non-ASCII, bytes that are not UTF-8) is percent-escaped, so any legal file name opens that very file:
    unescaped, a ``#`` silently opened (and created) a different, empty database. The path is made absolute first,
    so a name starting with ``-`` or looking like a URI is never read as anything but a path.
    """
    if mode not in ('ro', 'rw', 'rwc', 'memory', 'immutable'):
        raise ValueError('mode %r' % mode)
    # the file name's own bytes (os.fsencode): a name that is not UTF-8 is a str with lone surrogates here, which
    # quote() refused with UnicodeEncodeError; SQLite decodes %FF back to the byte and opens that very file
    name = quote(os.fsencode(os.path.abspath(path)), safe='/')
    if mode == 'immutable':
        # the main file only, as it is on disk: no lock, no -wal/-shm/-journal opened or created
        return 'file:%s?mode=ro&immutable=1' % name
    return 'file:%s?mode=%s' % (name, mode)


def check_sidecars(path: str) -> None:
    """Refuse a database whose sidecars (``-wal``, ``-shm``, ``-journal``) are anything but SQLite's own files.

    SQLite opens them by name in the database's directory - often an application account's - with ``O_CREAT``;
    as root it writes and truncates ``-shm``, writes ``-wal`` and chowns both to the database's owner. It refuses a
    symlink there itself (``O_NOFOLLOW``), with only "unable to open database file", but a hard link it takes:
    one planted to a root-only file (/etc/shadow) had root overwrite that file and hand it to the application
    account, even by a read-only backup. So each existing sidecar must be a regular file with no other name. (The
    kernel's fs.protected_hardlinks, on by default, keeps an account from linking a file it could not write: a link
    slipped in between this check and SQLite's open needs that setting off.)
    """
    for suffix in SIDECARS:
        sidecar = path + suffix
        try:
            st = os.lstat(sidecar)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not stat.S_ISREG(st.st_mode):
            problem = 'is %s' % safeio.kind_of(st.st_mode)
        elif st.st_nlink != 1:
            problem = 'has %d hard links (another name for it may be a file outside this directory)' % st.st_nlink
        else:
            continue
        raise OpsReadyError('SQLite database %s: %s %s, not a file of SQLite\'s own, and SQLite would write, truncate '
                            'and chown it as this user: nothing was opened. Whoever can write %s may have planted '
                            'it: remove it (SQLite creates it again when needed), or run the task as the account '
                            'that owns the database (become_user).'
                            % (path, sidecar, problem, os.path.dirname(path) or '.'), database=path, path=sidecar)


# The byte ranges SQLite's unix VFS locks (os_unix.c): in the database file PENDING, RESERVED and the SHARED range
# (0x40000000 + 512); in the -shm file the "DMS" byte every connection in WAL mode holds a read lock on while open.
LOCK_RANGES = (('', 0x40000000, 512), ('-shm', 128, 1))
FLOCK = 'hhqqi4x'   # struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid


def user_of(path: str, proc: str = '/proc') -> Optional[int]:
    """The pid of another process that has ``path`` open, else None: one that holds an SQLite lock on it (every
    connection in WAL mode does for as long as it is open, whoever owns it), or one whose open descriptors
    (``/proc/<pid>/fd``, those this account may see) lead to it - an idle connection in rollback mode holds no lock
    but has the file open all the same."""
    holder = lock_holder(path)
    if holder is not None:
        return holder
    try:
        held = os.stat(path)
        pids = [name for name in os.listdir(proc) if name.isdigit() and int(name) != os.getpid()]
    except OSError:
        return None
    for pid in pids:
        fds = os.path.join(proc, pid, 'fd')
        try:
            names = os.listdir(fds)
        except OSError:
            continue   # gone, or not ours to look at
        for name in names:
            try:
                st = os.stat(os.path.join(fds, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
                return int(pid)
    return None


def lock_holder(path: str) -> Optional[int]:
    """The pid of another process that holds an SQLite lock on ``path`` (or its ``-shm``), else None. Asked with
    F_GETLK: nothing is locked, and no connection is disturbed. This process's own locks are not reported."""
    for suffix, start, length in LOCK_RANGES:
        try:
            fd = os.open(path + suffix, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            asked = struct.pack(FLOCK, fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
            kind, _whence, _start, _length, pid = struct.unpack(FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, asked))
        except OSError:
            continue
        finally:
            os.close(fd)   # this process holds no SQLite lock on it: closing drops none that matters
        if kind != fcntl.F_UNLCK:
            return pid
    return None


def connect(path: str, mode: str = 'ro', timeout: float = 5.0, **kwargs: Any) -> sqlite3.Connection:
    """Open exactly the file ``path`` (never another one, never creating it unless ``mode='rwc'``), refusing
    planted sidecars (``check_sidecars``)."""
    check_sidecars(os.path.abspath(path))
    conn = sqlite3.connect(sqlite_uri(path, mode), uri=True, timeout=timeout, **kwargs)
    try:
        opened = main_file(conn)
        if opened and os.path.exists(path) and not os.path.samefile(opened, path):
            raise OpsReadyError('Opening %s opened %s instead: refusing to work on another file.' % (path, opened),
                                database=path)
    except BaseException:
        conn.close()
        raise
    return conn


def main_file(conn: sqlite3.Connection) -> Optional[str]:
    """The path of the file ``conn`` opened as ``main``, as ``os`` names it. Read as bytes: SQLite gives the file
    name's own bytes, and a name that is not UTF-8 failed the query ("Could not decode to UTF-8 column 'file'")."""
    factory = conn.text_factory
    conn.text_factory = bytes
    try:
        rows = conn.execute('PRAGMA database_list').fetchall()
    finally:
        conn.text_factory = factory
    for row in rows:
        if row[1] == b'main':
            return os.fsdecode(row[2]) if row[2] else None
    return None


class SQLiteClient:
    """SQLite files as this collection opens them (``database`` is a path)."""

    engine = 'sqlite'

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> None:
        self.conn = conn
        self.runner = runner or ToolRunner()

    def connect(self, path: str, mode: str = 'ro', **kwargs: Any) -> sqlite3.Connection:
        """Exactly the file ``path``; waits up to connect_timeout for another writer's lock."""
        kwargs.setdefault('timeout', float(max(1, self.conn.connect_timeout)))
        return connect(path, mode, **kwargs)

    def query(self, sql: str, database: Optional[str] = None) -> List[List[Any]]:
        """Rows of ``sql`` on the file ``database``, read-only."""
        if not database:
            raise OpsReadyError('An SQLite query needs the database file path.')
        handle = self.connect(database, 'ro')
        try:
            return [list(row) for row in handle.execute(sql).fetchall()]
        finally:
            handle.close()
