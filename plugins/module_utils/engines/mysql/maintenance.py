# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB/MySQL maintenance through the engine's client (``engines/mysql/client.py``: option file, errors).

* analyze: ``ANALYZE TABLE db.t``. InnoDB tables are due when they have no row in
  ``mysql.innodb_table_stats`` or were modified (``information_schema.TABLES.UPDATE_TIME``, kept in
  memory by InnoDB, so unknown after a restart) after the statistics' ``last_update``. Other engines
  (Aria, MyISAM) are always due; when the server answers "Table is already up to date" nothing changed.
* optimize: ``OPTIMIZE TABLE db.t`` (InnoDB: an online rebuild, "recreate + analyze") when
  ``DATA_FREE / (DATA_LENGTH + INDEX_LENGTH + DATA_FREE)`` exceeds ``fragmentation_threshold`` percent and
  the table occupies at least ``min_size_mb``. DATA_FREE counts whole free pages/extents: rows deleted
  sparsely leave half-empty pages it does not see, so it measures what purges of old (contiguous) rows
  leave behind, which is the usual case.
* cleanup: ``DELETE FROM db.t WHERE col < cutoff ORDER BY <primary key> LIMIT n`` per batch, each in its own
  autocommit transaction with ``innodb_lock_wait_timeout``/``lock_wait_timeout`` = ``lock_timeout``.

Result sets of ANALYZE/OPTIMIZE are read row by row: a ``Msg_type`` of ``error`` fails the step (the
server reports those with exit code 0).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.client import (
    MySQLClient)
# Literals go out as hex (the same under every sql_mode): a database named with a backslash works too.
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.grants import database_named
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.quote import quote_literal
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
    Backend, Candidate, CleanupSpec, MaintenanceOptions)
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.identifiers import (
    TableRef, quote_ident)

TIME_TYPES = ('datetime', 'timestamp', 'date')
NUMBER_TYPES = ('int', 'bigint', 'mediumint', 'smallint', 'decimal', 'double', 'float')


class MySQLMaintenance(Backend):
    name = 'mariadb'
    dialect = 'mariadb'
    supported = ('cleanup', 'analyze', 'optimize')

    def __init__(self, database: str, opts: MaintenanceOptions, conn: ConnectionParams,
                 flavor: str = 'mariadb') -> None:
        super().__init__(database, opts)
        self.name = flavor
        # The engine's client with this run's session limits (SET SESSION ...) and no cap without statement_timeout.
        self.client = MySQLClient(conn, flavor=flavor, limits=opts.limits())
        self._orders: Dict[str, Optional[str]] = {}

    def q(self, sql: str) -> List[List[str]]:
        return self.client.query(sql)

    def _lit_db(self) -> str:
        return quote_literal(self.database)

    def _t(self, table: TableRef) -> str:
        return table.quoted('mariadb', self.database)

    def open(self) -> Dict[str, Any]:
        # the database the server means by the name (with lower_case_table_names=1 İx is the ix it keeps: SCHEMATA
        # asked WHERE SCHEMA_NAME = 'İx' finds nothing on 10.11)
        row = self.q('SELECT VERSION(), (SELECT COUNT(*) '  # nosec B608 # quoted: database_named (quote_literal)
                     'FROM information_schema.SCHEMATA WHERE %s)'
                     % database_named('SCHEMA_NAME', self.database, self.client.flavor))[0]
        if row[1] == '0':
            raise OpsReadyError('Database %s does not exist on %s.' % (self.database,
                                                                       self.client.conn.where(3306)))
        return {'server_version': row[0]}

    def list_tables(self) -> List[TableRef]:
        rows = self.q("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                      "TABLE_TYPE = 'BASE TABLE' ORDER BY 1" % self._lit_db())  # nosec B608 # quoted: identifiers.py
        # every name the server holds (spaces, case, quotes, non-ASCII): each is quoted by engines/mysql/quote.py
        return [TableRef(r[0]) for r in rows if r]

    def _info(self, tables: List[TableRef]) -> Dict[str, Dict[str, Any]]:
        if not tables:
            return {}
        names = ', '.join(quote_literal(t.name) for t in tables)
        rows = self.q(
            "SELECT t.TABLE_NAME, t.ENGINE, COALESCE(t.TABLE_ROWS, 0), COALESCE(t.DATA_LENGTH, 0), "
            "COALESCE(t.INDEX_LENGTH, 0), COALESCE(t.DATA_FREE, 0), COALESCE(t.UPDATE_TIME, ''), "
            "COALESCE(s.last_update, '') FROM information_schema.TABLES t LEFT JOIN mysql.innodb_table_stats s "
            "ON s.database_name = t.TABLE_SCHEMA AND s.table_name = t.TABLE_NAME "
            "WHERE t.TABLE_SCHEMA = %s AND t.TABLE_NAME IN (%s)"
            % (self._lit_db(), names))  # nosec B608 # quoted: identifiers.py
        out = {}
        for r in rows:
            out[r[0]] = {'engine': r[1], 'rows': int(r[2]), 'data_length': int(r[3]), 'index_length': int(r[4]),
                         'data_free': int(r[5]), 'update_time': r[6] or None, 'stats_last_update': r[7] or None}
        return out

    # -- analyze -----------------------------------------------------------------------------------
    def plan_analyze(self, tables: List[TableRef]) -> List[Candidate]:
        info = self._info(tables)
        out = []
        for table in tables:
            i = info.get(table.name, {})
            stmt = 'ANALYZE TABLE %s' % self._t(table)
            if self.opts.force:
                due, reason = True, 'force'
            elif (i.get('engine') or '').lower() != 'innodb':
                due, reason = True, '%s table: the server decides whether statistics are stale' % i.get('engine')
            elif not i.get('stats_last_update'):
                due, reason = True, 'no persistent statistics yet'
            elif i.get('update_time') and i['update_time'] > i['stats_last_update']:
                due, reason = True, 'modified at %s, statistics from %s' % (i['update_time'], i['stats_last_update'])
            else:
                due, reason = False, 'statistics from %s, no modification since%s' % (
                    i['stats_last_update'], '' if i.get('update_time') else ' (modification time unknown: '
                    'the server restarted since; use force to analyze anyway)')
            out.append(Candidate('analyze', table.label, due, reason, stmt if due else None, i, table))
        return out

    # -- optimize ----------------------------------------------------------------------------------
    def plan_optimize(self, tables: List[TableRef]) -> List[Candidate]:
        info = self._info(tables)
        out = []
        min_bytes = self.opts.min_size_mb * 1024 * 1024
        for table in tables:
            i = dict(info.get(table.name, {}))
            total = i.get('data_length', 0) + i.get('index_length', 0) + i.get('data_free', 0)
            frag = i.get('data_free', 0) * 100.0 / total if total else 0.0
            i['fragmentation_percent'] = round(frag, 2)
            stmt = 'OPTIMIZE TABLE %s' % self._t(table)
            if self.opts.force:
                due, reason = True, 'force'
            elif total < min_bytes:
                due, reason = False, 'size %d bytes below min_size_mb=%s' % (total, self.opts.min_size_mb)
            else:
                due = frag > self.opts.fragmentation_threshold
                reason = 'fragmentation %.1f%% (DATA_FREE %d of %d bytes, threshold %.1f%%)' % (
                    frag, i.get('data_free', 0), total, self.opts.fragmentation_threshold)
            out.append(Candidate('optimize', table.label, due, reason, stmt if due else None, i, table))
        return out

    # -- execute -----------------------------------------------------------------------------------
    def execute(self, cand: Candidate) -> Dict[str, Any]:
        rows = self.q(cand.statement or '')
        messages = [r[3] if len(r) > 3 else '\t'.join(r) for r in rows if r]
        errors = [r[3] for r in rows if len(r) > 3 and r[2].lower() == 'error']
        if errors:
            raise OpsReadyError('%s reported: %s' % (cand.statement, '; '.join(errors)))
        after = dict(self._info([cand.key]).get(cand.key.name, {}))
        after['messages'] = messages
        if messages and all(m == 'Table is already up to date' for m in messages):
            after['changed'] = False
        return after

    # -- cleanup -----------------------------------------------------------------------------------
    def check_cleanup(self, spec: CleanupSpec) -> None:
        rows = self.q("SELECT TABLE_TYPE, (SELECT DATA_TYPE FROM information_schema.COLUMNS c WHERE "
                      "c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME AND c.COLUMN_NAME = %s) "
                      "FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = %s AND t.TABLE_NAME = %s"
                      % (quote_literal(spec.column), self._lit_db(),
                         quote_literal(spec.table.name)))  # nosec B608 # quoted: identifiers.py
        if not rows or not rows[0]:
            raise OpsReadyError('cleanup table %s does not exist in database %s.' % (spec.table.name, self.database))
        if rows[0][0] != 'BASE TABLE':
            raise OpsReadyError('cleanup target %s is not a table (%s).' % (spec.table.name, rows[0][0]))
        coltype = rows[0][1] if len(rows[0]) > 1 and rows[0][1] != 'NULL' else ''
        if not coltype:
            raise OpsReadyError('cleanup column %s does not exist in table %s.' % (spec.column, spec.table.name))
        if spec.column_format == 'timestamp' and coltype.lower() not in TIME_TYPES:
            raise OpsReadyError('cleanup column %s.%s is %s, not DATETIME/TIMESTAMP/DATE: set column_format=epoch '
                                'or epoch_ms for numeric epoch columns.' % (spec.table.name, spec.column, coltype))
        if spec.column_format != 'timestamp' and coltype.lower() not in NUMBER_TYPES:
            raise OpsReadyError('cleanup column %s.%s is %s, not numeric: column_format=%s expects epoch numbers.'
                                % (spec.table.name, spec.column, coltype, spec.column_format))

    def cleanup_cutoff(self, spec: CleanupSpec) -> Any:
        if spec.column_format == 'timestamp':
            return self.q('SELECT NOW() - INTERVAL %d DAY' % spec.older_than_days)[0][0]
        epoch = int(self.q('SELECT UNIX_TIMESTAMP()')[0][0]) - spec.older_than_days * 86400
        return epoch * 1000 if spec.column_format == 'epoch_ms' else epoch

    def _where(self, spec: CleanupSpec, cutoff: Any) -> str:
        col = quote_ident(spec.column, 'mariadb')
        if spec.column_format == 'timestamp':
            return '%s < %s' % (col, quote_literal(str(cutoff)))
        return '%s < %d' % (col, int(cutoff))

    def _order(self, spec: CleanupSpec) -> Optional[str]:
        rows = self.q("SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s AND "
                      "TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION"
                      % (self._lit_db(), quote_literal(spec.table.name)))  # nosec B608 # quoted: identifiers.py
        cols = [r[0] for r in rows if r]
        return ', '.join(quote_ident(c, 'mariadb') for c in cols) or None

    def cleanup_count(self, spec: CleanupSpec, cutoff: Any) -> int:
        sql = 'SELECT COUNT(*) FROM %s WHERE %s' % (self._t(spec.table),
                                                    self._where(spec, cutoff))  # nosec B608 # quoted
        return int(self.q(sql)[0][0])

    def cleanup_batch(self, spec: CleanupSpec, cutoff: Any) -> int:
        if spec.table.label not in self._orders:
            self._orders[spec.table.label] = self._order(spec)
        order = self._orders[spec.table.label]
        sql = 'DELETE FROM %s WHERE %s%s LIMIT %d; SELECT ROW_COUNT()' % (  # nosec B608 # quoted: identifiers.py
            self._t(spec.table), self._where(spec, cutoff), (' ORDER BY ' + order) if order else '', spec.batch_size)
        return int(self.q(sql)[-1][0])
