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
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.backup import source as source_summary
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import scratch
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions, Engine
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import (
    disk_error, open_artifact, stream_file_to_artifact)

# The client's functions, imported from here by older code (and other branches): one definition.
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.client import (  # noqa: F401,E402  # pylint: disable=unused-import
    SQLiteClient, connect, main_file, sqlite_uri)

OBJECT_TYPES = ('table', 'index', 'view', 'trigger')
SQLITE_READONLY_ROLLBACK = 776   # SQLITE_READONLY | (3 << 8): a hot journal, and no right to roll it back


def summarize(conn: sqlite3.Connection, count_rows: Optional[bool] = None) -> Dict[str, Any]:
    """What an SQLite database holds: objects, tables with rows, exact row counts, pages and pragmas.

    Row counts are exact up to ``source.ROW_COUNT_LIMIT_BYTES`` (``count_rows=None``); above it each table
    is only asked whether it holds a row (one row read). Runs inside the caller's transaction, so on a
    source it describes the same snapshot the backup API copies.
    """
    def one(sql: str) -> Any:
        return conn.execute(sql).fetchone()[0]

    page_count, page_size = int(one('PRAGMA page_count')), int(one('PRAGMA page_size'))
    objects = {kind: 0 for kind in OBJECT_TYPES}
    tables: List[str] = []
    for kind, name in conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' "
                                   "ESCAPE '\\' ORDER BY name").fetchall():
        if kind in objects:
            objects[kind] += 1
        if kind == 'table':
            sql_row = conn.execute('SELECT sql FROM sqlite_master WHERE type = ? AND name = ?', (kind, name)).fetchone()
            if sql_row and sql_row[0] and sql_row[0].upper().startswith('CREATE VIRTUAL TABLE'):
                continue  # a virtual table's rows live in its shadow tables (counted) or outside the file
            tables.append(name)
    size = page_count * page_size
    if count_rows is None:
        count_rows = size <= source_summary.ROW_COUNT_LIMIT_BYTES
    rows: Optional[Dict[str, int]] = None
    if count_rows:
        rows = {name: int(one('SELECT count(*) FROM %s' % quote_ident(name))) for name in tables}  # nosec B608 # quote_ident
        non_empty = sum(1 for n in rows.values() if n)
    else:
        non_empty = sum(1 for name in tables
                        if one('SELECT EXISTS (SELECT 1 FROM %s)' % quote_ident(name)))  # nosec B608 # quote_ident
    return {
        'engine': 'sqlite', 'exact': True, 'tables': len(tables), 'non_empty_tables': non_empty,
        'rows': rows, 'rows_total': sum(rows.values()) if rows is not None else None,
        'objects': objects, 'page_count': page_count, 'page_size': page_size, 'size_bytes': size,
        'freelist_count': int(one('PRAGMA freelist_count')),
        'user_version': int(one('PRAGMA user_version')), 'application_id': int(one('PRAGMA application_id')),
        'encoding': one('PRAGMA encoding'), 'auto_vacuum': int(one('PRAGMA auto_vacuum')),
    }


def quote_ident(name: str) -> str:
    return '"%s"' % name.replace('"', '""')


def integrity_check(path: str, what: str, report_path: Optional[str] = None,
                    summary: bool = False) -> Any:
    """``PRAGMA integrity_check`` on the database file ``path``; returns its table count (or, with
    ``summary``, its full ``summarize`` result).

    Raises ``IntegrityError`` naming ``what`` (for example "a restored copy of <artifact>") when the
    file is not a SQLite database or the check reports anything but ``ok``; the error's ``path`` is
    ``report_path`` (the artifact) when ``path`` is a temporary copy that is about to be removed.
    """
    try:
        conn = connect(path, 'ro')
        try:
            rows = [r[0] for r in conn.execute('PRAGMA integrity_check').fetchall()]
            result: Any = None
            if rows == ['ok']:
                result = summarize(conn) if summary else int(conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise IntegrityError('%s is not a valid SQLite database: %s.' % (what[0].upper() + what[1:], exc),
                             path=report_path or path)
    if rows != ['ok']:
        raise IntegrityError('PRAGMA integrity_check on %s failed: %s' % (what, '; '.join(rows[:5])),
                             path=report_path or path)
    return result


# Up to this size the snapshot copy gets the full PRAGMA integrity_check, above it quick_check (see refuse_corrupt).
INTEGRITY_CHECK_LIMIT_BYTES = source_summary.ROW_COUNT_LIMIT_BYTES


def refuse_corrupt(copy: sqlite3.Connection, path: str, size: int) -> Optional[str]:
    """Raise ``IntegrityError`` when the snapshot ``copy`` of ``path`` (``size`` bytes) is corrupt; returns a warning
    when only part of it could be checked.

    ``quick_check`` reads every page and every record, but not index content: an index whose entries no longer
    match its table (a torn write in an index page that still parses, an index rebuilt by an older SQLite under
    another collation, a schema edited by hand) passes it, and queries through that index return wrong rows after
    the restore as before it. ``integrity_check`` finds those too, at the cost of a look-up per row and index
    (O(N log N) against quick_check's O(N): seconds for a database of a GiB, far longer for tens of GiB). It runs on
    the copy, so the source is never held locked while it runs, only CPU and reads of the copy are spent; up to
    ``INTEGRITY_CHECK_LIMIT_BYTES`` (where row counts are exact too) that is paid on every backup. Above it,
    quick_check runs and the backup carries a warning saying index content was not checked, so a backup stored
    without verification (verify=false, or an encrypted artifact nobody decrypts) is never trusted silently."""
    full = size <= INTEGRITY_CHECK_LIMIT_BYTES
    pragma = 'integrity_check' if full else 'quick_check'
    try:
        rows = [r[0] for r in copy.execute('PRAGMA %s(20)' % pragma).fetchall()]
    except sqlite3.DatabaseError as exc:
        rows = [str(exc)]
    if rows != ['ok']:
        raise IntegrityError('The SQLite database %s is corrupt (PRAGMA %s on its snapshot: %s): no artifact '
                             'was written. Save the file as it is (cp, with its -wal), then recover what it holds '
                             '(sqlite3 %s .recover; an index alone is rebuilt by REINDEX) or restore the last good '
                             'backup.' % (path, pragma, '; '.join(rows[:5]), path), database=path, problems=rows)
    if full:
        return None
    return ('index content not checked: the snapshot (%d bytes) is above %d bytes, so only PRAGMA quick_check ran '
            'on it (integrity_check would take long); backup_verify runs PRAGMA integrity_check on the artifact'
            % (size, INTEGRITY_CHECK_LIMIT_BYTES))


class SQLiteEngine(Engine):
    name = 'sqlite'
    kinds = ('full',)
    kind_help = {'full': 'online backup API copy of the whole file'}

    def __init__(self, conn: Any, runner: Any = None) -> None:
        super().__init__(conn, runner)
        self.client = SQLiteClient(conn, self.runner)
        self.rolled_back = False   # the last backup rolled back a hot journal (_connect_source)

    def check_options(self, opts: BackupOptions) -> None:
        super().check_options(opts)
        if opts.all_databases:
            raise OpsReadyError('all_databases does not apply to SQLite: name the database file in database.')

    def _connect_source(self, path: str, recover: bool = False) -> sqlite3.Connection:
        """A read-only connection to ``path``. A writer that died mid-transaction leaves a hot ``-journal`` (and
        maybe half-written pages in the file) that only a connection allowed to write may roll back; read-only, the
        open failed ("attempt to write a readonly database") - right after a crash, when a backup matters most.
        With ``recover`` the journal is rolled back by a read-write open first, which is what SQLite does on the
        application's next open anyway (under its locks, so a live writer is safe); ``self.rolled_back`` says so."""
        if not os.path.isfile(path):
            raise OpsReadyError('SQLite database %s does not exist: set database to the path of the file.' % path,
                                database=path)
        try:
            conn = self.client.connect(path, 'ro')
            try:
                conn.execute('SELECT count(*) FROM sqlite_master').fetchone()
            except BaseException:
                conn.close()
                raise
        except sqlite3.DatabaseError as exc:
            hot = os.path.exists(path + '-journal') and getattr(exc, 'sqlite_errorcode', None) in (
                SQLITE_READONLY_ROLLBACK, None) and 'readonly' in str(exc)
            if not hot:
                raise OpsReadyError('Cannot open %s as an SQLite database: %s.' % (path, exc), database=path)
            if not recover:
                return self.client.connect(path, 'ro')   # preflight, check mode: the source is left as it is
            try:
                writer = self.client.connect(path, 'rw')
                try:
                    writer.execute('SELECT count(*) FROM sqlite_master').fetchone()   # rolls the journal back
                finally:
                    writer.close()
                conn = self.client.connect(path, 'ro')
                conn.execute('SELECT count(*) FROM sqlite_master').fetchone()
            except sqlite3.DatabaseError as again:
                raise OpsReadyError('Cannot open %s as an SQLite database: %s; it has a hot journal (%s-journal, '
                                    'left by a writer that crashed) and rolling it back failed: %s.'
                                    % (path, exc, path, again), database=path)
            self.rolled_back = True
        return conn

    def ping(self) -> Dict[str, Any]:
        return {'server_version': sqlite3.sqlite_version}

    def preflight(self, opts: BackupOptions) -> Dict[str, Any]:
        self._connect_source(os.path.abspath(self.catalog_database(opts))).close()
        return self.ping()

    def backup(self, opts: BackupOptions) -> List[Dict[str, Any]]:
        path = os.path.abspath(self.catalog_database(opts))
        self.rolled_back = False
        source = self._connect_source(path, recover=True)
        # The file's mode and owner: a restore into a path where the file is gone (the disaster case) gives
        # them back, or the application's account could not open the root-owned 0600 copy.
        held_file = os.stat(path)
        started = utcnow()
        artifact = self.artifact_path(opts, path, 'full', '.sqlite', when=started)
        staging = artifact + '.snapshot.partial'
        try:
            target = sqlite3.connect(sqlite_uri(staging, 'rwc'), uri=True)
            try:
                # One read transaction on the source: the backup API copies the snapshot this transaction
                # holds (it opens its own only when none is open), so what is measured here is what the
                # copy holds, and the snapshot's instant is when its first read ran. Taken just before that
                # read: a commit racing it may be in the copy but is never claimed and missing.
                source.execute('BEGIN')
                snapshot_at = utcnow()
                journal = source.execute('PRAGMA journal_mode').fetchone()[0]
                held = {'page_count': int(source.execute('PRAGMA page_count').fetchone()[0]),
                        'tables': int(source.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                                     "name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").fetchone()[0])}
                # One step (pages=-1): consistent while other processes write (WAL or rollback journal).
                source.backup(target, pages=-1)
                source.execute('COMMIT')
                # A corrupt source copies page for page into a corrupt artifact: stored, it was a backup nobody can
                # restore (silently so with verify=false or an encrypted artifact). Checked on the copy (the same
                # pages; the source is not held); integrity_check up to a size, see refuse_corrupt.
                unchecked = refuse_corrupt(target, path, int(target.execute('PRAGMA page_count').fetchone()[0])
                                           * int(target.execute('PRAGMA page_size').fetchone()[0]))
                # Counted on the copy (the same pages), so the source is not held locked for the count.
                summary = summarize(target)
                # Like with like: every table entry, virtual ones included (summary['tables'] leaves them out).
                copied = summary['objects']['table']
                # a 0-byte file is an empty database of no pages; its copy gets the one page of an empty file
                empty = held['page_count'] == 0 and summary['page_count'] <= 1 and copied == 0
                if (summary['page_count'] != held['page_count'] and not empty) or copied != held['tables']:
                    raise OpsReadyError('The SQLite backup API copied %d pages and %d tables of %s, its snapshot '
                                        'held %d pages and %d tables: no artifact was written.'
                                        % (summary['page_count'], copied, path, held['page_count'],
                                           held['tables']), database=path)
                summary.update(journal_mode=journal, measured_at=isoformat(snapshot_at),
                               method='sqlite3 backup API snapshot, counted on the copy')
                # The copy is a standalone file: no -wal to ship with it (a restore sets WAL again).
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
            for leftover in (staging, staging + '-journal', staging + '-wal', staging + '-shm'):
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
            details={'journal_mode': journal, 'page_count': summary['page_count'], 'tables': summary['tables'],
                     'hot_journal_rolled_back': self.rolled_back,
                     'file': {'mode': '%04o' % (held_file.st_mode & 0o7777), 'uid': held_file.st_uid,
                              'gid': held_file.st_gid}},
        )
        data['details']['source_check'] = 'PRAGMA quick_check' if unchecked else 'PRAGMA integrity_check'
        if unchecked:
            data['warning'] = unchecked
        data[source_summary.SOURCE_KEY] = summary
        return [self.commit_manifest(artifact, data)]

    def verify(self, manifest: Manifest) -> Dict[str, Any]:
        left: Dict[str, Any] = {}
        # The artifact decrypted and decompressed: plaintext, in a private scratch directory (common/scratch.py).
        with scratch('sqlite-verify', left, module='backup_verify') as workdir:
            copy = workdir.file('restored.sqlite')
            with open_artifact(manifest, self.identities) as source, \
                    os.fdopen(workdir.create('restored.sqlite'), 'wb') as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            held = integrity_check(copy, 'a restored copy of %s' % manifest.path, report_path=manifest.path,
                                   summary=True)
            checks = source_summary.compare(manifest.data.get(source_summary.SOURCE_KEY), held,
                                            'The artifact %s' % manifest.path, manifest.path, exact=True)
            found = {k: held[k] for k in ('tables', 'non_empty_tables', 'rows_total', 'page_count')}
        return dict(checks, engine_check='PRAGMA integrity_check', result='ok', tables=held['tables'],
                    rows_total=held['rows_total'], artifact=found, **left)
