# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL Server through pyodbc: BACKUP DATABASE / DIFFERENTIAL / BACKUP LOG, RESTORE VERIFYONLY, LSNs from
msdb.dbo.backupset.

NOT RUN AGAINST A LIVE SQL SERVER: the statements and the call sequence are tested against a recording
fake of pyodbc (tests/unit/fakes/pyodbc_recording.py); see docs/sqlserver.md.

SQL Server writes the backup file itself (``TO DISK``), so the stream never passes through this host:
``dest`` must be a directory the server can write and this host can read (the same host, or a share
mounted at the same path). The artifact is then hashed here for the manifest. The connection runs with
autocommit on (BACKUP cannot run inside a transaction) and every result set is drained with
``nextset()`` so errors raised after the first result set are not lost.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import sha256_file
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC, isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions, Engine
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.client import SQLServerClient

try:
    import pyodbc
    HAS_PYODBC = True
except ImportError:  # pragma: no cover
    pyodbc = None
    HAS_PYODBC = False

BACKUPSET_QUERY = (
    'SELECT TOP 1 bs.first_lsn, bs.last_lsn, bs.checkpoint_lsn, bs.database_backup_lsn, '
    'bs.differential_base_lsn, bs.backup_start_date, bs.backup_finish_date, bs.type, bs.is_copy_only, '
    'bs.has_backup_checksums, bs.compressed_backup_size, bs.backup_size '
    'FROM msdb.dbo.backupset AS bs JOIN msdb.dbo.backupmediafamily AS mf ON bs.media_set_id = mf.media_set_id '
    'WHERE mf.physical_device_name = ? ORDER BY bs.backup_set_id DESC')


def quote_ident(name: str) -> str:
    """[name] with ] doubled: database names are never interpolated raw."""
    if not name or '\x00' in name:
        raise OpsReadyError('Invalid SQL Server database name %r.' % name)
    return '[%s]' % name.replace(']', ']]')


def quote_literal(text: str) -> str:
    return "N'%s'" % text.replace("'", "''")


def backup_statement(kind: str, database: str, path: str, copy_only: bool = False, compression: bool = False,
                     description: Optional[str] = None) -> str:
    """The T-SQL for one backup. CHECKSUM always; INIT/FORMAT so each file holds exactly one backup set."""
    options = ['CHECKSUM', 'INIT', 'FORMAT']
    if kind == 'diff':
        options.insert(0, 'DIFFERENTIAL')
    if compression:
        options.append('COMPRESSION')
    if copy_only:
        options.append('COPY_ONLY')
    options.append('NAME = %s' % quote_literal(description or 'opsready %s' % os.path.basename(path)))
    verb = 'BACKUP LOG' if kind == 'log' else 'BACKUP DATABASE'
    return '%s %s TO DISK = %s WITH %s' % (verb, quote_ident(database), quote_literal(path), ', '.join(options))


def verify_statement(path: str) -> str:
    return 'RESTORE VERIFYONLY FROM DISK = %s WITH CHECKSUM' % quote_literal(path)


def _pyodbc_connect(*args: Any, **kwargs: Any) -> Any:
    """pyodbc.connect as this module sees it (tests put a recording fake of pyodbc in its place)."""
    if not HAS_PYODBC or pyodbc is None:
        raise OpsReadyError('engine=sqlserver needs the Python package pyodbc and an ODBC driver for SQL Server '
                            'on the managed host (pip install pyodbc; msodbcsql18).')
    return pyodbc.connect(*args, **kwargs)


class SQLServerEngine(Engine):
    name = 'sqlserver'
    kinds = ('full', 'diff', 'log')
    default_port = 1433
    kind_help = {'full': 'BACKUP DATABASE', 'diff': 'BACKUP DATABASE WITH DIFFERENTIAL', 'log': 'BACKUP LOG'}
    can_encrypt = False
    encrypt_refusal = ('SQL Server writes the backup file itself, so it never passes through the encrypting '
                       'stream. Use SQL Server backup encryption (BACKUP ... WITH ENCRYPTION and a server '
                       'certificate) or encrypt the copies with backup_copy to an encrypted bucket.')

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> None:
        super().__init__(conn, runner)
        self.client = SQLServerClient(conn, self.runner, app='opsready-backup', connect=_pyodbc_connect)

    # -- the client, as the engine offers it ---------------------------------------------------------
    def connection_string(self, database: str = 'master') -> str:
        return self.client.connection_string(database)

    def connect(self) -> Any:
        return self.client.connect()

    def execute(self, connection: Any, sql: str, params: Tuple[Any, ...] = ()) -> List[List[Any]]:
        return self.client.execute(connection, sql, params)

    def ping(self) -> Dict[str, Any]:
        connection = self.connect()
        try:
            rows = self.execute(connection, "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128))")
        finally:
            connection.close()
        return {'server_version': rows[0][0] if rows else None}

    def check_options(self, opts: BackupOptions) -> None:
        super().check_options(opts)
        if opts.all_databases:
            raise OpsReadyError('all_databases is not offered for SQL Server: back up each database by name.')
        if opts.kind == 'log' and opts.copy_only:
            pass  # COPY_ONLY log backups are valid: they do not truncate the log

    def backup(self, opts: BackupOptions) -> List[Dict[str, Any]]:
        if opts.database is None:
            raise OpsReadyError('database is required for engine sqlserver.')
        started = utcnow()
        ext = {'full': '.bak', 'diff': '.dif', 'log': '.trn'}[opts.kind]
        artifact = self.artifact_path(opts, opts.database, opts.kind, ext, compressed=False, when=started)
        connection = self.connect()
        try:
            version = self.execute(connection, "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128))")
            self.execute(connection, backup_statement(opts.kind, opts.database, artifact, opts.copy_only,
                                                      opts.native_compression))
            rows = self.execute(connection, BACKUPSET_QUERY, (artifact,))
        finally:
            connection.close()
        if not rows:
            raise OpsReadyError('SQL Server reported success but msdb.dbo.backupset has no row for %s.' % artifact)
        first, last, checkpoint, db_backup_lsn, diff_base, bstart, bfinish = rows[0][:7]
        if not os.path.isfile(artifact):
            raise OpsReadyError('SQL Server wrote %s on its own file system, but this host cannot read it: dest must '
                                'be the same path on both (same host, or a share mounted at that path).' % artifact)
        stored = {'size': os.path.getsize(artifact), 'sha256': sha256_file(artifact), 'compression': 'none',
                  'compression_level': 0, 'raw_size': None}
        data = self.base_manifest(opts, opts.database, opts.kind, started, stored)
        position: Dict[str, Any] = {'first_lsn': str(first), 'last_lsn': str(last), 'checkpoint_lsn': str(checkpoint),
                                    'database_backup_lsn': str(db_backup_lsn), 'differential_base_lsn': str(diff_base)}
        if opts.kind == 'log':
            position.update(start=int(Decimal(first)), end=int(Decimal(last)))
        else:
            position['log_start'] = int(Decimal(last))
        data.update(position=position, format='mtf', native_compression=opts.native_compression,
                    copy_only=opts.copy_only, server_version=version[0][0] if version else None,
                    tool={'name': 'pyodbc', 'version': getattr(pyodbc, 'version', None)},
                    consistent_at=isoformat(_utc(bfinish)) if bfinish else data['finished'],
                    covers_from=isoformat(_utc(bstart)) if (bstart and opts.kind == 'log') else None)
        if opts.kind == 'diff':
            data['parent'] = self._diff_parent(opts, diff_base)
        return [self.commit_manifest(artifact, data)]

    def _diff_parent(self, opts: BackupOptions, base_lsn: Any) -> str:
        # the catalog code only when a catalog is read (every import of an AnsiballZ payload is compiled on each run)
        from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
        # this server's fulls only: another server's full with an equal LSN is not this differential's base
        catalog = Catalog(opts.dest, engine=self.name, database=opts.database, origin=self.origin(),
                          own=True)
        for full in reversed(catalog.fulls()):
            if str(full.position.get('checkpoint_lsn')) == str(base_lsn) and not full.data.get('copy_only'):
                return full.id
        raise OpsReadyError('The differential base (checkpoint LSN %s) is not a full backup in %s: the differential '
                            'was written but cannot be restored from this catalog. Take a full backup here.'
                            % (base_lsn, opts.dest))

    def verify(self, manifest: Manifest) -> Dict[str, Any]:
        connection = self.connect()
        try:
            try:
                self.execute(connection, verify_statement(manifest.path))
            except OpsReadyError as exc:
                raise IntegrityError('RESTORE VERIFYONLY rejects %s: %s' % (manifest.path, exc.message),
                                     path=manifest.path)
        finally:
            connection.close()
        return {'engine_check': 'RESTORE VERIFYONLY WITH CHECKSUM', 'result': 'ok'}

    # -- what the source held (recorded in the manifest) ----------------------------------------------
    def source_summary(self, opts: BackupOptions, database: str) -> Optional[Dict[str, Any]]:
        """User tables, tables holding rows and rows (sys.partitions of heaps/clustered indexes) and the
        size of the data and log files, taken just before the backup starts."""
        if opts.kind != 'full':
            return None
        connection = None
        try:
            connection = self.connect()
            row = self.execute(connection, sqlserver_summary_sql(database))[0]
        except OpsReadyError as exc:
            return {'engine': 'sqlserver', 'error': exc.message}
        finally:
            if connection is not None:
                connection.close()
        return {'engine': 'sqlserver', 'tables': int(row[0] or 0), 'non_empty_tables': int(row[1] or 0),
                'rows_estimate': int(row[2] or 0), 'size_bytes': int(row[3] or 0),
                'measured_at': isoformat(utcnow()), 'method': 'sys.tables, sys.partitions, sys.database_files'}


def _utc(value: Any) -> Any:
    """msdb stores server-local datetimes without zone; SQL Server on Linux defaults to UTC."""
    return value.replace(tzinfo=UTC) if getattr(value, 'tzinfo', 1) is None else value


def sqlserver_summary_sql(database: str) -> str:
    db = quote_ident(database)
    user_rows = ('FROM %s.sys.partitions p JOIN %s.sys.tables t ON t.object_id = p.object_id '
                 'WHERE t.is_ms_shipped = 0 AND p.index_id IN (0, 1)' % (db, db))
    return ('SELECT (SELECT count(*) FROM %s.sys.tables WHERE is_ms_shipped = 0), '  # nosec B608 # quote_ident
            '(SELECT count(DISTINCT p.object_id) %s AND p.rows > 0), '
            '(SELECT coalesce(sum(p.rows), 0) %s), '
            '(SELECT sum(CAST(size AS bigint)) * 8192 FROM %s.sys.database_files)' % (db, user_rows, user_rows, db))
