"""A RECORDING FAKE of pyodbc for the SQL Server engine - not SQL Server.

No SQL Server can run on this machine, so the engine is tested against this fake: it records every
connect/execute/fetch/nextset/close call, and imitates just enough server behaviour to drive the engine
(BACKUP writes a file TO DISK and adds a msdb.dbo.backupset row with LSNs; RESTORE VERIFYONLY checks the
file; errors can be scripted, including one raised only when a later result set is reached, as SQL
Server does). Passing against it proves the statements and call sequence, not SQL Server semantics.
"""

from __future__ import annotations

import datetime
import os
import re
from decimal import Decimal
from typing import Any, Dict, List, Optional

version = 'fake-recording-1.0'
MAGIC = b'TAPE-fake-mtf\n'


class Error(Exception):
    """pyodbc.Error: args = (sqlstate, message)."""


class ProgrammingError(Error):
    pass


class Server:
    """The state the fake 'server' keeps between connections."""

    def __init__(self) -> None:
        self.calls: List[tuple] = []
        self.backupset: List[Dict[str, Any]] = []
        self.lsn = Decimal('42000000001500001')
        self.checkpoint: Optional[Decimal] = None
        self.fail: Dict[str, tuple] = {}          # statement prefix -> (sqlstate, message, in_later_set)
        self.connect_error: Optional[tuple] = None
        self.open_connections = 0


SERVER = Server()


def reset() -> Server:
    global SERVER
    SERVER = Server()
    return SERVER


def connect(connection_string: str, autocommit: bool = False, timeout: int = 0, **kwargs: Any) -> 'Connection':
    SERVER.calls.append(('connect', connection_string, autocommit, timeout))
    if SERVER.connect_error:
        raise Error(*SERVER.connect_error)
    SERVER.open_connections += 1
    return Connection(autocommit)


class Connection:
    def __init__(self, autocommit: bool) -> None:
        self.autocommit = autocommit

    def cursor(self) -> 'Cursor':
        return Cursor(self)

    def close(self) -> None:
        SERVER.calls.append(('close',))
        SERVER.open_connections -= 1


class Cursor:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._sets: List[Any] = []
        self.description: Any = None
        self._rows: List[tuple] = []

    def execute(self, sql: str, *params: Any) -> 'Cursor':
        SERVER.calls.append(('execute', sql, params))
        for prefix, (state, message, later) in SERVER.fail.items():
            if sql.startswith(prefix):
                if later:
                    self._sets = [('rows', [('progress',)]), ('error', state, message)]
                    self._advance()
                    return self
                raise Error(state, message)
        if sql.startswith('BACKUP'):
            if not self.connection.autocommit:
                raise Error('25000', '[25000] Cannot perform a backup or restore operation within a transaction.')
            self._backup(sql)
            self._sets = [('none',), ('none',)]  # BACKUP emits informational messages as extra sets
        elif sql.startswith('RESTORE VERIFYONLY'):
            path = re.search(r"FROM DISK = N'((?:[^']|'')*)'", sql).group(1).replace("''", "'")
            with open(path, 'rb') as handle:
                ok = handle.read(len(MAGIC)) == MAGIC
            if not ok:
                raise Error('42000', '[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]The media family '
                                     'on device is incorrectly formed. (3241) RESTORE VERIFYONLY is terminating '
                                     'abnormally. (3013)')
            self._sets = [('none',)]
        elif 'msdb.dbo.backupset' in sql:
            rows = [r for r in SERVER.backupset if r['path'] == params[0]]
            row = rows[-1] if rows else None
            self._sets = [('rows', [tuple(row[k] for k in ('first_lsn', 'last_lsn', 'checkpoint_lsn',
                                                          'database_backup_lsn', 'differential_base_lsn', 'start',
                                                          'finish', 'type', 'copy_only', 'checksums', 'csize',
                                                          'size'))] if row else [])]
        elif 'SERVERPROPERTY' in sql:
            self._sets = [('rows', [('16.0.4135.4',)])]
        else:
            raise Error('42000', '[42000] fake: unexpected statement %r' % sql)
        self._advance()
        return self

    def _backup(self, sql: str) -> None:
        path = re.search(r"TO DISK = N'((?:[^']|'')*)'", sql).group(1).replace("''", "'")
        kind = 'L' if sql.startswith('BACKUP LOG') else ('I' if 'DIFFERENTIAL' in sql else 'D')
        first = SERVER.lsn
        SERVER.lsn += 1000
        last = SERVER.lsn
        copy_only = 'COPY_ONLY' in sql
        if kind == 'D' and not copy_only:
            SERVER.checkpoint = first
        if kind == 'L':
            first = getattr(SERVER, 'log_end', first)
            SERVER.log_end = last
        with open(path, 'wb') as handle:
            handle.write(MAGIC + os.urandom(512))
        now = datetime.datetime.utcnow()
        SERVER.backupset.append({'path': path, 'first_lsn': first, 'last_lsn': last,
                                 'checkpoint_lsn': first if kind != 'L' else None,
                                 'database_backup_lsn': SERVER.checkpoint,
                                 'differential_base_lsn': SERVER.checkpoint if kind == 'I' else None,
                                 'start': now, 'finish': now, 'type': kind, 'copy_only': copy_only,
                                 'checksums': 'CHECKSUM' in sql, 'csize': 512, 'size': 1024})

    def _advance(self) -> bool:
        if not self._sets:
            self.description = None
            return False
        current = self._sets.pop(0)
        if current[0] == 'error':
            raise Error(current[1], current[2])
        if current[0] == 'rows':
            self.description = [('c',)]
            self._rows = list(current[1])
        else:
            self.description = None
            self._rows = []
        return True

    def fetchall(self) -> List[tuple]:
        SERVER.calls.append(('fetchall',))
        rows, self._rows = self._rows, []
        return rows

    def nextset(self) -> bool:
        SERVER.calls.append(('nextset',))
        return self._advance()

    def close(self) -> None:
        SERVER.calls.append(('cursor.close', len(self._sets)))
