# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQLite client: Python's sqlite3, opening exactly the file named (a ``file:`` URI with every special
byte escaped, never creating it unless asked), with the busy timeout from connect_timeout. Backup
(``engines/sqlite/backup.py``), restore, maintenance and DR drill checks open files through it.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, List, Optional
from urllib.parse import quote

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams


def sqlite_uri(path: str, mode: str = 'ro') -> str:
    """The ``file:`` URI of ``path`` for ``sqlite3.connect(..., uri=True)``.

    Every byte that means something in a URI (``#`` starts a fragment, ``?`` the query, ``%`` an escape,
    spaces, non-ASCII) is percent-escaped, so any legal file name opens that very file: unescaped, a
    ``#`` silently opened (and created) a different, empty database. The path is made absolute first,
    so a name starting with ``-`` or looking like a URI is never read as anything but a path.
    """
    if mode not in ('ro', 'rw', 'rwc', 'memory'):
        raise ValueError('mode %r' % mode)
    return 'file:%s?mode=%s' % (quote(os.path.abspath(path), safe='/'), mode)


def connect(path: str, mode: str = 'ro', timeout: float = 5.0, **kwargs: Any) -> sqlite3.Connection:
    """Open exactly the file ``path`` (never another one, never creating it unless ``mode='rwc'``)."""
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
    for row in conn.execute('PRAGMA database_list').fetchall():
        if row[1] == 'main':
            return row[2] or None
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
