# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL Server maintenance through pyodbc. NOT run against a live server here: the statements and the
decisions are tested against a recording fake of pyodbc (tests/unit/plugins/module_utils/maintenance).

* analyze: ``UPDATE STATISTICS [s].[t] WITH FULLSCAN`` when a statistic of the table has
  ``sys.dm_db_stats_properties().modification_counter`` above ``analyze_threshold`` percent of its rows
  (default: any modification) or was never updated.
* reindex: fragmentation from ``sys.dm_db_index_physical_stats(DB_ID(), NULL, NULL, NULL, 'LIMITED')``
  (in-row data, enabled non-heap indexes of at least ``min_size_mb``): ``ALTER INDEX [i] ON [s].[t] REBUILD``
  (``WITH (ONLINE = ON)`` with ``online_rebuild``, Enterprise/Azure only) at ``rebuild_threshold`` percent or
  more, ``REORGANIZE`` at ``reorganize_threshold`` or more. REORGANIZE does not refresh statistics: list
  ``analyze`` in tasks too.
* cleanup: ``DELETE TOP (n) FROM [s].[t] WHERE [c] < ?`` per batch (autocommit: one transaction each;
  keep ``batch_size`` under 5000 so SQL Server does not escalate to a table lock), ``SET LOCK_TIMEOUT``.

The password travels only in the ODBC connection string handed to the driver (never argv, never results).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.client import SQLServerClient
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
    Backend, Candidate, CleanupSpec, MaintenanceOptions)
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.identifiers import (
    IDENT, TableRef, quote_ident)

try:
    import pyodbc
    HAS_PYODBC = True
    PYODBC_IMPORT_ERROR: Optional[str] = None
except ImportError as exc:  # pragma: no cover - depends on the managed host
    pyodbc = None
    HAS_PYODBC = False
    PYODBC_IMPORT_ERROR = str(exc)

TIME_TYPES = ('datetime', 'datetime2', 'smalldatetime', 'date', 'datetimeoffset')
NUMBER_TYPES = ('int', 'bigint', 'decimal', 'numeric', 'float')
ONLINE_EDITIONS = (3, 5, 8)  # Enterprise (and Developer/Evaluation), Azure SQL Database, Managed Instance


def connection_string(conn: ConnectionParams, database: str) -> str:
    """The ODBC connection string of this area's sessions (the engine's client builds it)."""
    return SQLServerClient(conn, app='opsready-maintenance').connection_string(database)


def _b(name: str) -> str:
    return quote_ident(name, 'sqlserver')


class SQLServerMaintenance(Backend):
    name = 'sqlserver'
    dialect = 'sqlserver'
    supported = ('cleanup', 'analyze', 'reindex')
    default_schema = 'dbo'

    def __init__(self, database: str, opts: MaintenanceOptions, conn: ConnectionParams,
                 connect: Optional[Callable[..., Any]] = None) -> None:
        super().__init__(database, opts)
        self.params = conn
        self._connect = connect
        self.conn: Any = None
        self.edition: Optional[int] = None

    def open(self) -> Dict[str, Any]:
        connect = self._connect or (pyodbc.connect if pyodbc is not None else None)
        if connect is None:
            raise OpsReadyError('pyodbc is required for engine sqlserver: pip install pyodbc on the managed host '
                                '(and the Microsoft ODBC driver).')
        self.conn = SQLServerClient(self.params, app='opsready-maintenance', connect=connect).connect(self.database)
        if self.opts.statement_timeout:
            self.conn.timeout = self.opts.statement_timeout
        self.exec('SET LOCK_TIMEOUT %d' % (max(1, self.opts.lock_timeout) * 1000))
        row = self.rows("SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)), "
                        "CAST(SERVERPROPERTY('EngineEdition') AS int)")[0]
        self.edition = int(row[1])
        if self.opts.online_rebuild and self.edition not in ONLINE_EDITIONS:
            raise OpsReadyError('online_rebuild needs SQL Server Enterprise/Developer or Azure SQL (EngineEdition '
                                '%d cannot REBUILD WITH (ONLINE = ON)): set online_rebuild=false.' % self.edition)
        return {'server_version': row[0], 'engine_edition': self.edition}

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def _cursor(self, sql: str, params: Any = ()) -> Any:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, *params) if params else cur.execute(sql)
        except Exception as exc:
            text = str(exc)
            if '1222' in text or 'Lock request time out' in text:
                raise OpsReadyError('Gave up waiting for a lock after lock_timeout=%ss on: %s. Run again later or '
                                    'raise lock_timeout.' % (self.opts.lock_timeout, sql))
            raise OpsReadyError('SQL Server error on "%s": %s' % (sql, text))
        return cur

    def exec(self, sql: str, params: Any = ()) -> int:
        return int(self._cursor(sql, params).rowcount)

    def rows(self, sql: str, params: Any = ()) -> List[Any]:
        return list(self._cursor(sql, params).fetchall())

    def list_tables(self) -> List[TableRef]:
        rows = self.rows('SELECT s.name, t.name FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id '
                         'WHERE t.is_ms_shipped = 0 ORDER BY s.name, t.name')
        return [TableRef(r[1], r[0]) for r in rows if IDENT.match(r[0]) and IDENT.match(r[1])]

    # -- statistics --------------------------------------------------------------------------------
    def _stats(self) -> Dict[str, Dict[str, Any]]:
        rows = self.rows(
            'SELECT s.name, t.name, MAX(sp.modification_counter), MAX(sp.rows), '
            'MIN(CONVERT(varchar(33), sp.last_updated, 126)), COUNT(*), SUM(CASE WHEN sp.last_updated IS NULL '
            'THEN 1 ELSE 0 END) FROM sys.stats st JOIN sys.tables t ON t.object_id = st.object_id '
            'JOIN sys.schemas s ON s.schema_id = t.schema_id '
            'OUTER APPLY sys.dm_db_stats_properties(st.object_id, st.stats_id) sp '
            'WHERE t.is_ms_shipped = 0 GROUP BY s.name, t.name')
        return {'%s.%s' % (r[0], r[1]): {'modification_counter': int(r[2] or 0), 'rows': int(r[3] or 0),
                                         'oldest_update': r[4], 'statistics': int(r[5]),
                                         'never_updated': int(r[6] or 0)} for r in rows}

    def plan_analyze(self, tables: List[TableRef]) -> List[Candidate]:
        stats = self._stats()
        out = []
        for table in tables:
            s = stats.get(table.label, {'modification_counter': 0, 'rows': 0, 'statistics': 0, 'never_updated': 0})
            pct = s['modification_counter'] * 100.0 / max(s['rows'], 1)
            stmt = 'UPDATE STATISTICS %s WITH FULLSCAN' % table.quoted('sqlserver')
            if self.opts.force:
                due, reason = True, 'force'
            elif s['never_updated']:
                due, reason = True, '%d statistic(s) never updated' % s['never_updated']
            else:
                due = s['modification_counter'] > 0 and pct > self.opts.analyze_threshold
                reason = '%d modifications since the last update, %.1f%% (threshold %.1f%%)' % (
                    s['modification_counter'], pct, self.opts.analyze_threshold)
            out.append(Candidate('analyze', table.label, due, reason, stmt if due else None, s, table))
        return out

    # -- indexes -----------------------------------------------------------------------------------
    def _fragmentation(self, index: Optional[str] = None, table: Optional[TableRef] = None) -> List[Dict[str, Any]]:
        sql = ("SELECT s.name, t.name, i.name, ps.avg_fragmentation_in_percent, ps.page_count "
               "FROM sys.dm_db_index_physical_stats(DB_ID(), %s, NULL, NULL, 'LIMITED') ps "
               "JOIN sys.indexes i ON i.object_id = ps.object_id AND i.index_id = ps.index_id "
               "JOIN sys.tables t ON t.object_id = ps.object_id JOIN sys.schemas s ON s.schema_id = t.schema_id "
               "WHERE ps.index_id > 0 AND ps.alloc_unit_type_desc = 'IN_ROW_DATA' AND i.is_disabled = 0 "
               "AND i.is_hypothetical = 0 AND t.is_ms_shipped = 0")
        params: List[Any] = []
        if table is not None:
            sql = sql % 'OBJECT_ID(?)'
            params.append(table.quoted('sqlserver'))
        else:
            sql = sql % 'NULL'
        if index is not None:
            sql += ' AND i.name = ?'
            params.append(index)
        return [{'schema': r[0], 'table': r[1], 'index': r[2], 'fragmentation': float(r[3] or 0),
                 'page_count': int(r[4] or 0)} for r in self.rows(sql + ' ORDER BY 1, 2, 3', params)]

    def plan_reindex(self, tables: List[TableRef]) -> List[Candidate]:
        wanted = {t.label for t in tables}
        min_pages = self.opts.min_size_mb * 1024 * 1024 / 8192
        out = []
        for ix in self._fragmentation():
            table = TableRef(ix['table'], ix['schema'])
            if table.label not in wanted or not IDENT.match(ix['index'] or ''):
                continue
            label = '%s.%s' % (table.label, ix['index'])
            before = {'fragmentation_percent': round(ix['fragmentation'], 2), 'page_count': ix['page_count']}
            head = 'ALTER INDEX %s ON %s ' % (_b(ix['index']), table.quoted('sqlserver'))
            rebuild = head + 'REBUILD' + (' WITH (ONLINE = ON)' if self.opts.online_rebuild else '')
            frag = ix['fragmentation']
            if self.opts.force:
                out.append(Candidate('reindex', label, True, 'force', rebuild, before, (ix, table)))
            elif ix['page_count'] < min_pages:
                out.append(Candidate('reindex', label, False, '%d pages, below min_size_mb=%s'
                                     % (ix['page_count'], self.opts.min_size_mb), None, before, (ix, table)))
            elif frag >= self.opts.rebuild_threshold:
                out.append(Candidate('reindex', label, True, 'fragmentation %.1f%% >= rebuild_threshold %.1f%%'
                                     % (frag, self.opts.rebuild_threshold), rebuild, before, (ix, table)))
            elif frag >= self.opts.reorganize_threshold:
                out.append(Candidate('reindex', label, True, 'fragmentation %.1f%% >= reorganize_threshold %.1f%%'
                                     % (frag, self.opts.reorganize_threshold), head + 'REORGANIZE', before,
                                     (ix, table)))
            else:
                out.append(Candidate('reindex', label, False, 'fragmentation %.1f%% below reorganize_threshold %.1f%%'
                                     % (frag, self.opts.reorganize_threshold), None, before, (ix, table)))
        return out

    def execute(self, cand: Candidate) -> Dict[str, Any]:
        self.exec(cand.statement or '')
        if cand.task == 'reindex':
            ix, table = cand.key
            after = self._fragmentation(ix['index'], table)
            return {'fragmentation_percent': round(after[0]['fragmentation'], 2),
                    'page_count': after[0]['page_count']} if after else {}
        return self._stats().get(cand.key.label, {})

    # -- cleanup -----------------------------------------------------------------------------------
    def check_cleanup(self, spec: CleanupSpec) -> None:
        rows = self.rows('SELECT OBJECT_ID(?, \'U\'), (SELECT TYPE_NAME(c.system_type_id) FROM sys.columns c '
                         'WHERE c.object_id = OBJECT_ID(?, \'U\') AND c.name = ?)',
                         [spec.table.quoted('sqlserver'), spec.table.quoted('sqlserver'), spec.column])
        if not rows or rows[0][0] is None:
            raise OpsReadyError('cleanup table %s does not exist in database %s.' % (spec.table.label, self.database))
        coltype = (rows[0][1] or '').lower()
        if not coltype:
            raise OpsReadyError('cleanup column %s does not exist in table %s.' % (spec.column, spec.table.label))
        if spec.column_format == 'timestamp' and coltype not in TIME_TYPES:
            raise OpsReadyError('cleanup column %s.%s is %s, not a date/time type: set column_format=epoch or '
                                'epoch_ms for numeric epoch columns.' % (spec.table.label, spec.column, coltype))
        if spec.column_format != 'timestamp' and coltype not in NUMBER_TYPES:
            raise OpsReadyError('cleanup column %s.%s is %s, not numeric: column_format=%s expects epoch numbers.'
                                % (spec.table.label, spec.column, coltype, spec.column_format))

    def cleanup_cutoff(self, spec: CleanupSpec) -> Any:
        if spec.column_format == 'timestamp':
            return self.rows('SELECT DATEADD(day, -?, SYSDATETIME())', [spec.older_than_days])[0][0]
        epoch = int(self.rows("SELECT DATEDIFF_BIG(second, '1970-01-01', SYSUTCDATETIME())")[0][0])
        epoch -= spec.older_than_days * 86400
        return epoch * 1000 if spec.column_format == 'epoch_ms' else epoch

    def cleanup_count(self, spec: CleanupSpec, cutoff: Any) -> int:
        sql = 'SELECT COUNT_BIG(*) FROM %s WHERE %s < ?' % (spec.table.quoted('sqlserver'),
                                                            _b(spec.column))  # nosec B608 # quoted
        return int(self.rows(sql, [cutoff])[0][0])

    def cleanup_batch(self, spec: CleanupSpec, cutoff: Any) -> int:
        return self.exec('DELETE TOP (%d) FROM %s WHERE %s < ?' % (spec.batch_size, spec.table.quoted('sqlserver'),
                                                                   _b(spec.column)), [cutoff])
