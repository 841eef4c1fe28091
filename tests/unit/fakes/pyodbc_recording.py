"""A RECORDING FAKE of pyodbc for the SQL Server engine - not SQL Server.

No SQL Server can run on this machine, so the engine is tested against this fake: it records every
connect/execute/fetch/nextset/close call, and imitates just enough server behaviour to drive the engine
(BACKUP writes a file TO DISK and adds a msdb.dbo.backupset row with LSNs; RESTORE VERIFYONLY checks the
file; errors can be scripted, including one raised only when a later result set is reached, as SQL
Server does). Passing against it proves the statements and call sequence, not SQL Server semantics.

Restores (modelled for db_restore): ``RESTORE FILELISTONLY`` returns the logical/physical file names of
the database a backup file was taken from; ``RESTORE DATABASE ... FROM DISK`` creates the database in the
RESTORING state (NORECOVERY) and refuses a physical file another database uses (so a restore under
another name without MOVE fails as on a real server); a differential or log needs the database RESTORING;
``RESTORE DATABASE [x] WITH RECOVERY`` brings it ONLINE; ``sys.databases``, ``<db>.sys.objects``,
``ALTER DATABASE ... MODIFY NAME / SET SINGLE_USER|MULTI_USER`` and ``DROP DATABASE`` act on
``Server.databases``. Every RESTORE statement the fake accepted (VERIFYONLY included; not those failed by
``Server.fail``) is kept, in order, in ``Server.restores``.

Read-only views (the insights DMVs): ``Server.answers`` holds (text, rows) pairs; a statement containing the
text gets those rows (the first pair that matches), so a test scripts what sys.dm_* return.
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
        # restores: name -> {'state': 'ONLINE'|'RESTORING', 'objects': int, 'files': {logical: physical},
        # 'user_access': 'MULTI_USER'|'SINGLE_USER'}
        self.databases: Dict[str, Dict[str, Any]] = {}
        self.restores: List[str] = []
        self.data_path: Optional[str] = '/var/opt/mssql/data/'
        self.log_path: Optional[str] = '/var/opt/mssql/log/'
        self.utc_offset_minutes = 0
        self.clock: Optional[Any] = None          # callable -> naive datetime of a backup (default utcnow)
        # Canned result sets for read-only views (insights DMVs): (text the statement contains, rows), first match.
        self.answers: List[Any] = []


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
        for key, rows in SERVER.answers:
            if key in sql:
                self._sets = [('rows', list(rows))]
                self._advance()
                return self
        if sql.startswith('BACKUP'):
            if not self.connection.autocommit:
                raise Error('25000', '[25000] Cannot perform a backup or restore operation within a transaction.')
            self._backup(sql)
            self._sets = [('none',), ('none',)]  # BACKUP emits informational messages as extra sets
        elif sql.startswith('RESTORE VERIFYONLY'):
            SERVER.restores.append(sql)
            path = re.search(r"FROM DISK = N'((?:[^']|'')*)'", sql).group(1).replace("''", "'")
            with open(path, 'rb') as handle:
                ok = handle.read(len(MAGIC)) == MAGIC
            if not ok:
                raise Error('42000', '[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]The media family '
                                     'on device is incorrectly formed. (3241) RESTORE VERIFYONLY is terminating '
                                     'abnormally. (3013)')
            self._sets = [('none',)]
        elif sql.startswith('RESTORE'):
            if not self.connection.autocommit:
                raise Error('25000', '[25000] Cannot perform a backup or restore operation within a transaction.')
            self._sets = self._restore(sql)
        elif sql.startswith('SELECT name, state_desc FROM sys.databases WHERE name = ?'):
            db = SERVER.databases.get(params[0])
            self._sets = [('rows', [(params[0], db['state'])] if db else [])]
        elif sql.startswith('SELECT COUNT(*) FROM [') and '.sys.objects' in sql:
            db = self._database(_names(sql)[0])
            if db['state'] != 'ONLINE':
                raise Error('42000', "[42000] Database '%s' cannot be opened. It is in the middle of a restore. "
                                     "(927)" % _names(sql)[0])
            self._sets = [('rows', [(db['objects'],)])]
        elif sql.startswith('ALTER DATABASE'):
            self._alter(sql)
            self._sets = [('none',)]
        elif sql.startswith('DROP DATABASE'):
            self._database(_names(sql)[0])
            del SERVER.databases[_names(sql)[0]]
            self._sets = [('none',)]
        elif 'InstanceDefaultDataPath' in sql:
            self._sets = [('rows', [(SERVER.data_path, SERVER.log_path)])]
        elif sql.startswith('SELECT DATEDIFF(minute, SYSUTCDATETIME(), SYSDATETIME())'):
            self._sets = [('rows', [(SERVER.utc_offset_minutes,)])]
        elif 'msdb.dbo.backupset' in sql:
            rows = [r for r in SERVER.backupset if r['path'] == params[0]]
            row = rows[-1] if rows else None
            columns = ('first_lsn', 'last_lsn', 'checkpoint_lsn', 'database_backup_lsn', 'differential_base_lsn',
                       'start', 'finish', 'type', 'copy_only', 'checksums', 'csize', 'size')
            self._sets = [('rows', [tuple(row[k] for k in columns)] if row else [])]
        elif 'SERVERPROPERTY' in sql:
            self._sets = [('rows', [('16.0.4135.4',)])]
        else:
            raise Error('42000', '[42000] fake: unexpected statement %r' % sql)
        self._advance()
        return self

    @staticmethod
    def _database(name: str) -> Dict[str, Any]:
        if name not in SERVER.databases:
            raise Error('42000', "[42000] Cannot find database '%s' because it does not exist or you do not have "
                                 "permission. (3701)" % name)
        return SERVER.databases[name]

    def _alter(self, sql: str) -> None:
        names = _names(sql)
        db = self._database(names[0])
        if ' MODIFY NAME = ' in sql:
            if names[1] in SERVER.databases:
                raise Error('42000', "[42000] The database '%s' already exists. Specify a unique database name. "
                                     "(1801)" % names[1])
            SERVER.databases[names[1]] = SERVER.databases.pop(names[0])
        elif ' SET SINGLE_USER' in sql:
            db['user_access'] = 'SINGLE_USER'
        elif ' SET MULTI_USER' in sql:
            db['user_access'] = 'MULTI_USER'
        else:
            raise Error('42000', '[42000] fake: unexpected statement %r' % sql)

    def _restore(self, sql: str) -> List[Any]:
        SERVER.restores.append(sql)
        disk = re.search(r"FROM DISK = N'((?:[^']|'')*)'", sql)
        path = disk.group(1).replace("''", "'") if disk else None
        row = [r for r in SERVER.backupset if r['path'] == path][-1:] if path else []
        if path is not None:
            try:
                with open(path, 'rb') as handle:
                    intact = handle.read(len(MAGIC)) == MAGIC
            except OSError:
                raise Error('42000', "[42000] Cannot open backup device '%s'. Operating system error 2(The system "
                                     "cannot find the file specified.). (3201)" % path)
            if not intact or not row:
                raise Error('42000', '[42000] The media family on device is incorrectly formed. (3241)')
        if sql.startswith('RESTORE FILELISTONLY'):
            files = row[0]['files']
            return [('rows', [(logical, physical, 'L' if physical.endswith('.ldf') else 'D', None, 8388608,
                               35184372080640, i + 1) for i, (logical, physical) in enumerate(files.items())])]
        name = _names(sql)[0]
        db = SERVER.databases.get(name)
        if path is None:                                   # RESTORE DATABASE [x] WITH RECOVERY
            if not db or db['state'] != 'RESTORING':
                raise Error('42000', '[42000] The database cannot be recovered because the log was not restored. '
                                     '(4333)')
            db['state'] = 'ONLINE'
            return [('none',)]
        kind = row[0]['type']
        if kind == 'D':
            if db is not None and 'REPLACE' not in sql:
                raise Error('42000', "[42000] The backup set holds a backup of a database other than the existing "
                                     "'%s' database. (3154)" % name)
            moves = dict((a.replace("''", "'"), b.replace("''", "'")) for a, b in re.findall(
                r"MOVE N'((?:[^']|'')*)' TO N'((?:[^']|'')*)'", sql))
            files = {logical: moves.get(logical, physical) for logical, physical in row[0]['files'].items()}
            for other_name, other in SERVER.databases.items():
                for physical in files.values():
                    if physical in other['files'].values() and other_name != name:
                        raise Error('42000', "[42000] The file '%s' cannot be overwritten. It is being used by "
                                             "database '%s'. (1834)" % (physical, other_name))
            SERVER.databases[name] = {'state': 'RESTORING', 'objects': row[0]['objects'], 'files': files,
                                      'user_access': 'MULTI_USER'}
        else:
            if not db or db['state'] != 'RESTORING':
                raise Error('42000', '[42000] The log or differential backup cannot be restored because no files '
                                     'are ready to rollforward. (3117)')
        if 'NORECOVERY' not in sql:
            SERVER.databases[name]['state'] = 'ONLINE'
        return [('none',), ('none',)]   # progress messages come as extra sets

    def _backup(self, sql: str) -> None:
        path = re.search(r"TO DISK = N'((?:[^']|'')*)'", sql).group(1).replace("''", "'")
        database = _names(sql)[0]
        source = SERVER.databases.setdefault(database, {
            'state': 'ONLINE', 'objects': 3, 'user_access': 'MULTI_USER',
            'files': {database: '/var/opt/mssql/data/%s.mdf' % database,
                      database + '_log': '/var/opt/mssql/data/%s_log.ldf' % database}})
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
        now = SERVER.clock() if SERVER.clock else datetime.datetime.utcnow()
        SERVER.backupset.append({'path': path, 'first_lsn': first, 'last_lsn': last,
                                 'checkpoint_lsn': first if kind != 'L' else None,
                                 'database_backup_lsn': SERVER.checkpoint,
                                 'differential_base_lsn': SERVER.checkpoint if kind == 'I' else None,
                                 'start': now, 'finish': now, 'type': kind, 'copy_only': copy_only,
                                 'checksums': 'CHECKSUM' in sql, 'csize': 512, 'size': 1024,
                                 'database': database, 'files': dict(source['files']), 'objects': source['objects']})

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


def _names(sql: str) -> List[str]:
    """Bracket-quoted identifiers of a statement, unescaped (]] -> ])."""
    return [m.replace(']]', ']') for m in re.findall(r'\[((?:[^\]]|\]\])*)\]', sql)]
