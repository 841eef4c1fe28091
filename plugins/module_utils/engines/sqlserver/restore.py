# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL Server restore through pyodbc: full, differential, logs (STOPAT), under a temporary name, then renamed.

NOT RUN AGAINST A LIVE SQL SERVER: the statements and the call sequence are tested against the recording
fake of pyodbc (tests/unit/fakes/pyodbc_recording.py); see docs/sqlserver.md.

1. The target is inspected (``sys.databases``; user objects counted with ``<db>.sys.objects``): an
   existing database holding objects, or one not ONLINE, is refused unless ``replace`` is set.
2. ``RESTORE VERIFYONLY ... WITH CHECKSUM`` on every piece of the chain (the SHA-256 of each was already
   checked against its manifest): nothing is written before the whole chain passes.
3. ``RESTORE FILELISTONLY`` on the full backup gives the logical file names; every file is MOVEd to the
   instance's default data/log directory under a name derived from the target, so the restore never
   collides with the files of the source database on the same server.
4. ``RESTORE DATABASE [<target>__opsready_restore_<id>] ... WITH NORECOVERY, CHECKSUM, MOVE ...``, then
   the differential (NORECOVERY), then each log (NORECOVERY; ``STOPAT`` on the last when ``stop_at``
   falls inside it), then ``RESTORE DATABASE [...] WITH RECOVERY``.
5. Any failure drops the temporary database; the target was never touched.
6. Swap: the old target is set SINGLE_USER WITH ROLLBACK IMMEDIATE and renamed aside, the restored database
   renamed to the target (``ALTER DATABASE ... MODIFY NAME``; renamed back if that fails), the aside dropped.

STOPAT is interpreted by the server in its local time: ``stop_at`` (UTC) is shifted by the server's current
UTC offset (``DATEDIFF(minute, SYSUTCDATETIME(), SYSDATETIME())``).

The backup files are read by the server itself (``FROM DISK``): ``src`` must be a path the server can read
(the same host, or a share mounted at the same path), as for db_backup.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import ntpath
import posixpath
import re
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.backup import (
    quote_ident, quote_literal, verify_statement)
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import (
    Restorer, RestoreRequest, Timer, temporary_name)

NAME_LIMIT = 128   # sysname
TARGET_QUERY = 'SELECT name, state_desc FROM sys.databases WHERE name = ?'
DEFAULT_PATHS = ("SELECT CAST(SERVERPROPERTY('InstanceDefaultDataPath') AS nvarchar(4000)), "
                 "CAST(SERVERPROPERTY('InstanceDefaultLogPath') AS nvarchar(4000))")
UTC_OFFSET = 'SELECT DATEDIFF(minute, SYSUTCDATETIME(), SYSDATETIME())'
UNSAFE_FILE_CHARS = re.compile(r'[^A-Za-z0-9_.-]+')


def objects_query(database: str) -> str:
    return 'SELECT COUNT(*) FROM %s.sys.objects WHERE is_ms_shipped = 0' % quote_ident(database)  # nosec B608 # quote_ident


def filelist_statement(path: str) -> str:
    return 'RESTORE FILELISTONLY FROM DISK = %s' % quote_literal(path)


def restore_database_statement(database: str, path: str, moves: List[Tuple[str, str]]) -> str:
    options = ['NORECOVERY', 'CHECKSUM']
    options += ['MOVE %s TO %s' % (quote_literal(logical), quote_literal(physical)) for logical, physical in moves]
    source = quote_literal(path)
    return 'RESTORE DATABASE %s FROM DISK = %s WITH %s' % (quote_ident(database), source, ', '.join(options))


def restore_log_statement(database: str, path: str, stopat: Optional[str] = None) -> str:
    options = ['NORECOVERY', 'CHECKSUM']
    if stopat:
        options.append('STOPAT = %s' % quote_literal(stopat))
    return 'RESTORE LOG %s FROM DISK = %s WITH %s' % (quote_ident(database), quote_literal(path), ', '.join(options))


def recovery_statement(database: str) -> str:
    return 'RESTORE DATABASE %s WITH RECOVERY' % quote_ident(database)


def rename_statement(database: str, new_name: str) -> str:
    return 'ALTER DATABASE %s MODIFY NAME = %s' % (quote_ident(database), quote_ident(new_name))


def single_user_statement(database: str) -> str:
    return 'ALTER DATABASE %s SET SINGLE_USER WITH ROLLBACK IMMEDIATE' % quote_ident(database)


def drop_statement(database: str) -> str:
    return 'DROP DATABASE %s' % quote_ident(database)


def stopat_literal(stop_at: datetime.datetime, offset_minutes: int) -> str:
    """``stop_at`` in the server's local time, ISO 8601 with milliseconds (what STOPAT accepts)."""
    local = stop_at.astimezone(UTC).replace(tzinfo=None) + datetime.timedelta(minutes=offset_minutes)
    return local.strftime('%Y-%m-%dT%H:%M:%S.') + '%03d' % (local.microsecond // 1000)


def _sep(path: str) -> str:
    return '\\' if '\\' in path and '/' not in path else '/'


def _join(directory: str, name: str) -> str:
    if _sep(directory) == '\\':
        return ntpath.join(directory, name)
    return posixpath.join(directory, name)


def _dirname(path: str) -> str:
    return ntpath.dirname(path) if _sep(path) == '\\' else posixpath.dirname(path)


def _extension(path: str, file_type: str) -> str:
    ext = (ntpath.splitext(path)[1] if _sep(path) == '\\' else posixpath.splitext(path)[1]).lower()
    if ext:
        return ext
    return {'L': '.ldf', 'D': '.mdf'}.get(file_type, '')


def plan_moves(filelist: List[List[Any]], target: str, tag: str,
               data_dir: Optional[str], log_dir: Optional[str]) -> List[Tuple[str, str]]:
    """MOVE clauses: every logical file to <default dir>/<target>_<logical>_<tag><ext>.

    FILELISTONLY columns used: LogicalName (0), PhysicalName (1), Type (2: D data, L log, S filestream,
    F full-text catalog)."""
    moves = []
    stem = UNSAFE_FILE_CHARS.sub('_', target)[:60]
    for row in filelist:
        logical, physical, file_type = str(row[0]), str(row[1] or ''), str(row[2] or 'D').upper()
        directory = (log_dir if file_type == 'L' else data_dir) or _dirname(physical)
        if not directory:
            raise OpsReadyError('Cannot tell where to put file %s of the restore: the server reports no default '
                                'data/log directory and the backup records no path for it.' % logical)
        name = '%s_%s_%s%s' % (stem, UNSAFE_FILE_CHARS.sub('_', logical)[:60], tag,
                               _extension(physical, file_type) if file_type in ('D', 'L') else '')
        moves.append((logical, _join(directory, name)))
    return moves


class SwapBrokenError(OpsReadyError):
    """The old target was renamed aside and could not be renamed back: nothing is dropped, the user acts."""


class _Session:
    """One autocommit connection for the whole restore; every statement drained (engine.execute)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.connection = engine.connect()

    def run(self, sql: str, params: Tuple[Any, ...] = ()) -> List[List[Any]]:
        return self.engine.execute(self.connection, sql, params)

    def close(self) -> None:
        self.connection.close()


def inspect_target(session: _Session, name: str) -> Dict[str, Any]:
    rows = session.run(TARGET_QUERY, (name,))
    if not rows:
        return {'exists': False, 'state': None, 'objects': 0}
    state = str(rows[0][1])
    objects = int(session.run(objects_query(name))[0][0]) if state == 'ONLINE' else None
    return {'exists': True, 'state': state, 'objects': objects}


def _refuse_if_needed(session: _Session, request: RestoreRequest, target: str) -> Dict[str, Any]:
    before = inspect_target(session, target)
    if before['exists'] and not request.replace:
        if before['state'] != 'ONLINE':
            raise OpsReadyError('Target database %s on %s exists in state %s (not ONLINE), so whether it holds data '
                                'cannot be checked: set replace=true to replace it, or restore to another '
                                'database name.' % (target, session.engine.server_label(), before['state']),
                                target=target)
        if before['objects']:
            raise OpsReadyError('Target database %s on %s exists and is not empty (%d user objects): set '
                                'replace=true to replace it, or restore to another database name.'
                                % (target, session.engine.server_label(), before['objects']), target=target)
    return before


def _verify_only(session: _Session, chain: List[Manifest]) -> List[str]:
    for entry in chain:
        try:
            session.run(verify_statement(entry.path))
        except OpsReadyError as exc:
            raise IntegrityError('Restore refused before touching the target: RESTORE VERIFYONLY rejects chain '
                                 'piece %s (%s): %s' % (entry.id, entry.kind, exc.message), artifact=entry.id,
                                 path=entry.path)
    return [entry.id for entry in chain]


def _database_name(request: RestoreRequest) -> str:
    if not request.database:
        raise OpsReadyError('database (the target) is required for engine sqlserver.')
    if len(request.database) > NAME_LIMIT:
        raise OpsReadyError('SQL Server database names are at most %d characters; %s is %d.'
                            % (NAME_LIMIT, request.database[:40] + '...', len(request.database)))
    return request.database


def check_target(engine: Any, request: RestoreRequest, chain: List[Manifest]) -> Dict[str, Any]:
    """Check mode: connection, refusal without replace, RESTORE VERIFYONLY of every piece (read-only)."""
    target = _database_name(request)
    session = _Session(engine)
    try:
        before = _refuse_if_needed(session, request, target)
        verified = _verify_only(session, chain)
    finally:
        session.close()
    return {'database': target, 'server': engine.server_label(), 'exists': before['exists'],
            'verifyonly': verified}


def _drop_quietly(session: _Session, name: str) -> Optional[str]:
    try:
        if session.run(TARGET_QUERY, (name,)):
            session.run(drop_statement(name))
    except OpsReadyError as exc:
        return exc.message
    return None


def _swap(session: _Session, target: str, temp: str, before: Dict[str, Any]) -> Optional[str]:
    """Rename the old target aside, the restored database to the target; returns the aside name."""
    if not before['exists']:
        session.run(rename_statement(temp, target))
        return None
    aside = temporary_name(target, 'old', limit=NAME_LIMIT)
    if before['state'] == 'ONLINE':
        session.run(single_user_statement(target))
    session.run(rename_statement(target, aside))
    try:
        session.run(rename_statement(temp, target))
    except OpsReadyError as exc:
        try:
            session.run(rename_statement(aside, target))
            if before['state'] == 'ONLINE':
                session.run('ALTER DATABASE %s SET MULTI_USER' % quote_ident(target))
        except OpsReadyError as back:
            raise SwapBrokenError('The restored database %s could not be renamed to %s (%s), and renaming the old '
                                  'database back from %s failed too (%s): run ALTER DATABASE %s MODIFY NAME = %s and '
                                  'ALTER DATABASE %s SET MULTI_USER by hand.'
                                  % (temp, target, exc.message, aside, back.message, quote_ident(aside),
                                     quote_ident(target), quote_ident(target)), target=target, aside=aside)
        raise
    return aside


def restore(engine: Any, request: RestoreRequest, chain: List[Manifest], timer: Timer) -> Dict[str, Any]:
    target = _database_name(request)
    full, rest = chain[0], chain[1:]
    if full.kind != 'full':
        raise OpsReadyError('A SQL Server restore starts from a full backup (kind=full); %s is a %s.'
                            % (full.id, full.kind))
    diffs = [m for m in rest if m.kind == 'diff']
    logs = [m for m in rest if m.kind == 'log']
    session = _Session(engine)
    try:
        before = _refuse_if_needed(session, request, target)
        timer.lap('inspect_target')
        verified = _verify_only(session, chain)
        timer.lap('verifyonly')
        filelist = session.run(filelist_statement(full.path))
        if not filelist:
            raise OpsReadyError('RESTORE FILELISTONLY returned no files for %s: it is not a database backup.'
                                % full.path, path=full.path)
        paths = session.run(DEFAULT_PATHS)
        data_dir, log_dir = (paths[0][0], paths[0][1]) if paths else (None, None)
        temp = temporary_name(target, limit=NAME_LIMIT)
        moves = plan_moves(filelist, target, temp.rsplit('_', 1)[-1], data_dir, log_dir)
        stopat = None
        if request.stop_at is not None and logs and request.stop_at < logs[-1].consistent_at:
            offset = session.run(UTC_OFFSET)
            stopat = stopat_literal(request.stop_at, int(offset[0][0]) if offset else 0)
        statements = [(full, restore_database_statement(temp, full.path, moves))]
        statements += [(m, restore_log_statement(temp, m.path)) if m.kind == 'log'
                       else (m, restore_database_statement(temp, m.path, [])) for m in diffs + logs]
        if stopat:
            statements[-1] = (logs[-1], restore_log_statement(temp, logs[-1].path, stopat))
        step = '%s (%s)' % (full.id, full.kind)
        try:
            for piece, sql in statements:
                step = '%s (%s)' % (piece.id, piece.kind)
                session.run(sql)
                timer.lap('restore_%s' % piece.kind)
            step = 'RESTORE WITH RECOVERY'
            session.run(recovery_statement(temp))
            timer.lap('recovery')
            step = 'the rename into place'
            aside = _swap(session, target, temp, before)
        except SwapBrokenError:
            raise
        except OpsReadyError as exc:
            leftover = _drop_quietly(session, temp)
            raise OpsReadyError('Restore of %s into %s failed at %s and was rolled back: the temporary database '
                                '%s %s, and %s was not touched. %s'
                                % (full.id, target, step, temp,
                                   'was dropped' if leftover is None else 'could NOT be dropped (%s); drop it by '
                                   'hand' % leftover, target, exc.message), target=target, step=step)
        if aside:
            session.run(drop_statement(aside))
        timer.lap('swap')
        state = session.run(TARGET_QUERY, (target,))
    finally:
        session.close()
    return {'target': {'database': target, 'server': engine.server_label(), 'host': engine.conn.host,
                       'port': engine.conn.port or 1433, 'state': str(state[0][1]) if state else None,
                       'files': [{'logical': logical, 'physical': physical} for logical, physical in moves]},
            'replaced': bool(before['exists']), 'verifyonly': verified, 'stopat': stopat,
            'statements': [sql for dummy, sql in statements] + [recovery_statement(temp)]}


def drop(engine: Any, request: RestoreRequest, check_mode: bool) -> Dict[str, Any]:
    target = _database_name(request)
    session = _Session(engine)
    try:
        rows = session.run(TARGET_QUERY, (target,))
        exists = bool(rows)
        if exists and not check_mode:
            if str(rows[0][1]) == 'ONLINE':
                session.run(single_user_statement(target))
            session.run(drop_statement(target))
    finally:
        session.close()
    return {'changed': exists, 'target': {'database': target, 'server': engine.server_label(), 'removed': exists}}


class SQLServerRestore(Restorer):
    """db_restore for SQL Server (RESTORE DATABASE/LOG through the engine's client)."""

    restore_with = restore
    drop_with = drop

    def check(self, request: RestoreRequest, chain: List[Manifest]) -> Dict[str, Any]:
        return check_target(self.engine(request), request, chain)
