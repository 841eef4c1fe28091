# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite maintenance through the standard library ``sqlite3`` (no server, ``database`` is the file path).

* analyze: ``ANALYZE "t"`` when the table has no ``sqlite_stat1`` rows yet, or its row count moved more
  than ``analyze_threshold`` percent away from the count ANALYZE recorded (the first number of ``stat``).
* vacuum: ``VACUUM`` when free pages (``PRAGMA freelist_count``) exceed ``vacuum_threshold`` percent of
  ``page_count``; refused when the file system lacks room for the copy VACUUM writes.
* optimize: ``PRAGMA optimize(0x10002)`` when its debug form (``0x10003``) lists something to do.
* cleanup: ``DELETE ... WHERE rowid IN (SELECT rowid ... LIMIT n)`` per batch, one transaction each, with
  ``busy_timeout`` = ``lock_timeout``. Text timestamps are compared through ``datetime()`` so both
  ``YYYY-MM-DD HH:MM:SS`` and ISO 8601 ``T`` forms work; values SQLite cannot parse are never deleted.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.backup import connect
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.backup import (
    quote_ident as sqlite_quote)
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
    Backend, Candidate, CleanupSpec, MaintenanceOptions)
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.identifiers import TableRef


def _q(name: str) -> str:
    """Quote a table or column name. Names given by the user were validated by ``core`` already; names
    read from ``sqlite_master`` may need quotes ("odd ""name"" ü") and are quoted, never refused."""
    return sqlite_quote(name)


class SQLiteMaintenance(Backend):
    name = 'sqlite'
    dialect = 'sqlite'
    supported = ('cleanup', 'vacuum', 'analyze', 'optimize')

    def __init__(self, database: str, opts: MaintenanceOptions) -> None:
        super().__init__(os.path.abspath(database), opts)
        self.conn: Optional[sqlite3.Connection] = None

    def open(self) -> Dict[str, Any]:
        if not os.path.isfile(self.database):
            raise OpsReadyError('SQLite database %s does not exist: set database to the path of the file.'
                                % self.database, database=self.database)
        try:
            # An escaped file: URI in rw mode: any legal path opens that very file, and a missing one is never
            # created behind the check above.
            conn = connect(self.database, 'rw', timeout=max(1, self.opts.lock_timeout), isolation_level=None)
            conn.execute('SELECT count(*) FROM sqlite_master').fetchone()
        except sqlite3.DatabaseError as exc:
            raise OpsReadyError('Cannot open %s as an SQLite database: %s.' % (self.database, exc),
                                database=self.database)
        self.conn = conn
        return {'server_version': sqlite3.sqlite_version}

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _db(self) -> sqlite3.Connection:
        if self.conn is None:
            raise OpsReadyError('Internal error: the SQLite database is not open.')
        return self.conn

    def _exec(self, sql: str, params: Any = ()) -> List[Any]:
        try:
            return self._db().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if 'locked' in str(exc) or 'busy' in str(exc):
                raise OpsReadyError('%s is locked by another connection and stayed locked for lock_timeout=%ss: '
                                    'run again when the writer is idle or raise lock_timeout.'
                                    % (self.database, self.opts.lock_timeout))
            raise OpsReadyError('SQLite error on %s: %s.' % (self.database, exc))

    def list_tables(self) -> List[TableRef]:
        rows = self._exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                          "ORDER BY name")
        return [TableRef(r[0]) for r in rows]

    # -- analyze -----------------------------------------------------------------------------------
    def _stat_rows(self, table: TableRef) -> Optional[int]:
        """Rows ANALYZE recorded for the table (None when it was never analyzed)."""
        has_stat = self._exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
        if not has_stat:
            return None
        rows = self._exec('SELECT stat FROM sqlite_stat1 WHERE tbl = ?', (table.name,))
        counts = [int(r[0].split()[0]) for r in rows if r[0] and r[0].split()[0].isdigit()]
        return max(counts) if counts else None

    def _count(self, table: TableRef) -> int:
        return int(self._exec('SELECT count(*) FROM %s' % _q(table.name))[0][0])  # nosec B608 # quoted: identifiers.py

    def plan_analyze(self, tables: List[TableRef]) -> List[Candidate]:
        out = []
        for table in tables:
            recorded = self._stat_rows(table)
            rows = self._count(table)
            before: Dict[str, Any] = {'rows': rows, 'stat_rows': recorded}
            stmt = 'ANALYZE %s' % _q(table.name)
            if self.opts.force:
                out.append(Candidate('analyze', table.label, True, 'force', stmt, before, table))
            elif recorded is None:
                if rows == 0:
                    out.append(Candidate('analyze', table.label, False, 'empty table, nothing to measure', None,
                                         before, table))
                else:
                    out.append(Candidate('analyze', table.label, True, 'never analyzed', stmt, before, table))
            else:
                change = abs(rows - recorded) * 100.0 / max(recorded, 1)
                before['changed_percent'] = round(change, 2)
                due = change > self.opts.analyze_threshold
                reason = ('row count %d vs %d recorded (%.1f%% > %.1f%%)' if due else
                          'row count %d vs %d recorded (%.1f%% <= %.1f%%)') % (
                    rows, recorded, change, self.opts.analyze_threshold)
                out.append(Candidate('analyze', table.label, due, reason, stmt if due else None, before, table))
        return out

    # -- vacuum ------------------------------------------------------------------------------------
    def _pages(self) -> Dict[str, int]:
        page_count = int(self._exec('PRAGMA page_count')[0][0])
        freelist = int(self._exec('PRAGMA freelist_count')[0][0])
        page_size = int(self._exec('PRAGMA page_size')[0][0])
        return {'page_count': page_count, 'freelist_count': freelist, 'page_size': page_size,
                'file_size': os.path.getsize(self.database)}

    def plan_vacuum(self, tables: List[TableRef]) -> List[Candidate]:
        before: Dict[str, Any] = dict(self._pages())
        free_pct = before['freelist_count'] * 100.0 / max(before['page_count'], 1)
        before['free_percent'] = round(free_pct, 2)
        due = self.opts.force or (before['freelist_count'] > 0 and free_pct > self.opts.vacuum_threshold)
        reason = 'force' if self.opts.force else '%.1f%% free pages (threshold %.1f%%)' % (
            free_pct, self.opts.vacuum_threshold)
        return [Candidate('vacuum', self.database, due, reason, 'VACUUM' if due else None, before, None)]

    # -- optimize ----------------------------------------------------------------------------------
    def plan_optimize(self, tables: List[TableRef]) -> List[Candidate]:
        would = [r[0] for r in self._exec('PRAGMA optimize(0x10003)')]
        due = bool(would) or self.opts.force
        reason = ('force' if self.opts.force and not would else
                  'PRAGMA optimize would run: %s' % '; '.join(would) if would else 'PRAGMA optimize has nothing to do')
        return [Candidate('optimize', self.database, due, reason, 'PRAGMA optimize(0x10002)' if due else None,
                          {'would_run': would}, None)]

    # -- execute -----------------------------------------------------------------------------------
    def execute(self, cand: Candidate) -> Dict[str, Any]:
        if cand.task == 'vacuum':
            needed = cand.before['page_count'] * cand.before['page_size']
            free = shutil.disk_usage(os.path.dirname(self.database)).free
            if free < needed:
                raise OpsReadyError('VACUUM of %s needs about %d bytes free next to it for the rebuilt copy, only %d '
                                    'are free: free space first.' % (self.database, needed, free))
            self._exec('VACUUM')
            return self._pages()
        if cand.task == 'analyze':
            self._exec(cand.statement or '')
            return {'stat_rows': self._stat_rows(cand.key)}
        if cand.task == 'optimize':
            self._exec(cand.statement or '')
            return {}
        raise OpsReadyError('Internal error: task %s is not an SQLite task.' % cand.task)

    # -- cleanup -----------------------------------------------------------------------------------
    def check_cleanup(self, spec: CleanupSpec) -> None:
        cols = self._exec('SELECT name FROM pragma_table_info(?)', (spec.table.name,))
        if not cols:
            raise OpsReadyError('cleanup table %s does not exist in %s.' % (spec.table.name, self.database))
        if spec.column not in [c[0] for c in cols]:
            raise OpsReadyError('cleanup column %s does not exist in table %s (columns: %s).'
                                % (spec.column, spec.table.name, ', '.join(c[0] for c in cols)))
        without_rowid = self._exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? AND "
                                   "sql LIKE '%WITHOUT ROWID%'", (spec.table.name,))
        if without_rowid:
            raise OpsReadyError('cleanup table %s is a WITHOUT ROWID table, which batched clean-up does not '
                                'support.' % spec.table.name)

    def cleanup_cutoff(self, spec: CleanupSpec) -> Any:
        if spec.column_format == 'timestamp':
            return self._exec("SELECT datetime('now', ?)", ('-%d days' % spec.older_than_days,))[0][0]
        epoch = int(self._exec("SELECT CAST(strftime('%s', 'now') AS INTEGER)")[0][0]) - spec.older_than_days * 86400
        return epoch * 1000 if spec.column_format == 'epoch_ms' else epoch

    def _where(self, spec: CleanupSpec) -> str:
        col = _q(spec.column)
        if spec.column_format == 'timestamp':
            return 'datetime(%s) < ?' % col
        return '%s < ?' % col

    def cleanup_count(self, spec: CleanupSpec, cutoff: Any) -> int:
        sql = 'SELECT count(*) FROM %s WHERE %s' % (_q(spec.table.name), self._where(spec))  # nosec B608 # quoted
        return int(self._exec(sql, (cutoff,))[0][0])

    def cleanup_batch(self, spec: CleanupSpec, cutoff: Any) -> int:
        table = _q(spec.table.name)
        sql = ('DELETE FROM %s WHERE rowid IN (SELECT rowid FROM %s WHERE %s LIMIT %d)'
               % (table, table, self._where(spec), spec.batch_size))  # nosec B608 # quoted: identifiers.py
        db = self._db()
        try:
            db.execute('BEGIN IMMEDIATE')
            cur = db.execute(sql, (cutoff,))
            count = cur.rowcount
            db.execute('COMMIT')
        except sqlite3.OperationalError as exc:
            if db.in_transaction:
                db.execute('ROLLBACK')
            if 'locked' in str(exc) or 'busy' in str(exc):
                raise OpsReadyError('%s stayed locked by another writer for lock_timeout=%ss during clean-up of %s; '
                                    'the batches before were committed. Run again or raise lock_timeout.'
                                    % (self.database, self.opts.lock_timeout, spec.table.name))
            raise OpsReadyError('Clean-up of %s failed: %s.' % (spec.table.name, exc))
        return int(count)
