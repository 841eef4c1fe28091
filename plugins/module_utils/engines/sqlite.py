# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite: the online backup API (consistent while the application writes, WAL mode included).

``database`` is the path of the database file. The backup API copies a consistent snapshot into a
staging file next to the artifact (``<artifact>.snapshot.partial``), which is then streamed through
compression + SHA-256 into the artifact and removed. Verification decompresses into a temporary copy
and runs ``PRAGMA integrity_check`` on it.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import (
    BackupOptions, Engine, disk_error, open_artifact, stream_file_to_artifact)


def integrity_check(path: str, what: str, report_path: Optional[str] = None) -> int:
    """``PRAGMA integrity_check`` on the database file ``path``; returns its table count.

    Raises ``IntegrityError`` naming ``what`` (for example "a restored copy of <artifact>") when the
    file is not a SQLite database or the check reports anything but ``ok``; the error's ``path`` is
    ``report_path`` (the artifact) when ``path`` is a temporary copy that is about to be removed.
    """
    try:
        conn = sqlite3.connect(path)
        try:
            rows = [r[0] for r in conn.execute('PRAGMA integrity_check').fetchall()]
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise IntegrityError('%s is not a valid SQLite database: %s.' % (what[0].upper() + what[1:], exc),
                             path=report_path or path)
    if rows != ['ok']:
        raise IntegrityError('PRAGMA integrity_check on %s failed: %s' % (what, '; '.join(rows[:5])),
                             path=report_path or path)
    return int(tables)


class SQLiteEngine(Engine):
    name = 'sqlite'
    kinds = ('full',)
    kind_help = {'full': 'online backup API copy of the whole file'}

    def check_options(self, opts: BackupOptions) -> None:
        super().check_options(opts)
        if opts.all_databases:
            raise OpsReadyError('all_databases does not apply to SQLite: name the database file in database.')

    def _connect_source(self, path: str) -> sqlite3.Connection:
        if not os.path.isfile(path):
            raise OpsReadyError('SQLite database %s does not exist: set database to the path of the file.' % path,
                                database=path)
        try:
            conn = sqlite3.connect('file:%s?mode=ro' % path, uri=True, timeout=self.conn.connect_timeout)
            conn.execute('SELECT count(*) FROM sqlite_master').fetchone()
        except sqlite3.DatabaseError as exc:
            raise OpsReadyError('Cannot open %s as an SQLite database: %s.' % (path, exc), database=path)
        return conn

    def ping(self) -> Dict[str, Any]:
        return {'server_version': sqlite3.sqlite_version}

    def preflight(self, opts: BackupOptions) -> Dict[str, Any]:
        self._connect_source(os.path.abspath(self.catalog_database(opts))).close()
        return self.ping()

    def backup(self, opts: BackupOptions) -> List[Dict[str, Any]]:
        path = os.path.abspath(self.catalog_database(opts))
        source = self._connect_source(path)
        started = utcnow()
        artifact = self.artifact_path(opts, path, 'full', '.sqlite', when=started)
        staging = artifact + '.snapshot.partial'
        try:
            target = sqlite3.connect(staging)
            try:
                # One step (pages=-1): the source is read under one read transaction, so the copy is a
                # consistent snapshot even while other processes write (WAL or rollback journal).
                source.backup(target, pages=-1)
                snapshot_at = utcnow()
                journal = source.execute('PRAGMA journal_mode').fetchone()[0]
                page_count = target.execute('PRAGMA page_count').fetchone()[0]
                tables = target.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
                # The copy is a standalone file: no -wal to ship with it.
                target.execute('PRAGMA journal_mode=DELETE').fetchone()
            finally:
                target.close()
            with open(staging, 'rb') as handle:
                stored = stream_file_to_artifact(handle, artifact, opts)
        except OSError as exc:
            raise disk_error(exc, artifact)
        except sqlite3.Error as exc:
            if 'full' in str(exc).lower():
                raise disk_error(OSError(28, 'No space left on device'), artifact)
            raise OpsReadyError('SQLite backup of %s failed: %s.' % (path, exc), database=path)
        finally:
            source.close()
            for leftover in (staging, staging + '-journal'):
                try:
                    os.unlink(leftover)
                except FileNotFoundError:
                    pass
        data = self.base_manifest(opts, path, 'full', started, stored)
        data.update(
            server='localhost',
            consistent_at=isoformat(snapshot_at),
            tool={'name': 'sqlite3-backup-api', 'version': sqlite3.sqlite_version},
            server_version=sqlite3.sqlite_version,
            format='sqlite',
            details={'journal_mode': journal, 'page_count': page_count, 'tables': tables},
        )
        return [self.commit_manifest(artifact, data)]

    def verify(self, manifest: Manifest) -> Dict[str, Any]:
        workdir = tempfile.mkdtemp(prefix='opsready-verify-')
        copy = os.path.join(workdir, 'restored.sqlite')
        try:
            with open_artifact(manifest, self.identities) as source, open(copy, 'wb') as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            tables = integrity_check(copy, 'a restored copy of %s' % manifest.path, report_path=manifest.path)
            return {'engine_check': 'PRAGMA integrity_check', 'result': 'ok', 'tables': tables}
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
