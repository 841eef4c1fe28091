# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL maintenance through the engine's client (``engines/postgresql/client.py``: psql, secrets, errors).

* vacuum: ``VACUUM (ANALYZE) s.t`` when dead tuples exceed ``vacuum_threshold`` percent of the tuples
  (``pg_stat_user_tables.n_dead_tup`` against ``n_live_tup + n_dead_tup``).
* analyze: ``ANALYZE s.t`` when it was never analyzed or ``n_mod_since_analyze`` exceeds
  ``analyze_threshold`` percent of ``n_live_tup`` (with the default 0, any modification).
* reindex: ``REINDEX INDEX CONCURRENTLY s.i`` for B-tree indexes of at least ``min_size_mb`` whose bloat
  exceeds ``bloat_threshold`` percent. Bloat comes from ``pgstatindex()`` when the pgstattuple extension is
  installed in the database (``100 - avg_leaf_density * 100 / fillfactor``), otherwise from an estimate
  (see ``estimate_btree_pages``). A failed REINDEX CONCURRENTLY leaves an invalid ``<index>_ccnew``
  index behind: it is dropped (``DROP INDEX CONCURRENTLY``) before the failure is reported.
* cleanup: ``DELETE ... WHERE ctid = ANY(ARRAY(SELECT ctid ... LIMIT n))``: one psql session (and
  one transaction) per batch, ``lock_timeout`` set for each, the cut-off computed once by the server.

Every session gets ``lock_timeout`` (and ``statement_timeout`` when set) through ``PGOPTIONS``; the
password reaches libpq through ``PGPASSWORD`` only.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import PostgresClient
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
    Backend, Candidate, CleanupSpec, MaintenanceOptions)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import (
    check_name, quote_ident, quote_literal)
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.identifiers import TableRef

PAGE = 8192
PAGE_HEADER = 24
BTREE_SPECIAL = 16
INDEX_TUPLE_HEADER = 8
ITEM_ID = 4
NUMBER_TYPES = ('bigint', 'integer', 'numeric', 'double precision', 'real', 'smallint')


def maxalign(value: int) -> int:
    return (value + 7) // 8 * 8


def estimate_btree_pages(reltuples: float, key_width: float, fillfactor: int) -> int:
    """Pages a freshly built B-tree of ``reltuples`` keys of ``key_width`` bytes (pg_stats avg_width) needs.

    Leaf tuple = MAXALIGN(8-byte IndexTupleData + key) + 4-byte line pointer; usable leaf space =
    (8192 - 24 page header - 16 btree special) * fillfactor; plus the meta page and ~1 internal page per
    leaf-page-full of downlinks. Deduplication (PostgreSQL 13+) can make real indexes smaller than this,
    which reads as less bloat, so the estimate errs on the side of not rebuilding.
    """
    per_tuple = maxalign(INDEX_TUPLE_HEADER + int(math.ceil(key_width))) + ITEM_ID
    usable = (PAGE - PAGE_HEADER - BTREE_SPECIAL) * fillfactor / 100.0
    per_page = max(1, int(usable // per_tuple))
    leaves = int(math.ceil(max(reltuples, 0) / per_page)) or 1
    internal = int(math.ceil(leaves / float(max(1, int((PAGE - PAGE_HEADER - BTREE_SPECIAL) // per_tuple)))))
    return leaves + internal + 1


def _t(table: TableRef) -> str:
    """schema.table through pg_quote: tables found in the catalogs may have any name PostgreSQL allows."""
    return '%s.%s' % (quote_ident(table.schema or 'public'), quote_ident(table.name))


class PostgresMaintenance(Backend):
    name = 'postgresql'
    dialect = 'postgresql'
    supported = ('cleanup', 'vacuum', 'analyze', 'reindex')
    default_schema = 'public'

    def __init__(self, database: str, opts: MaintenanceOptions, conn: ConnectionParams) -> None:
        check_name(database, 'database name')  # refused before connecting: the server would cut it to 63 bytes
        super().__init__(database, opts)
        # The engine's client with this run's session limits (PGOPTIONS) and no cap without statement_timeout; our
        # statements name user objects schema-qualified, so the database's own search_path (which may list a schema
        # whose functions shadow pg_catalog's, run then as our login) is never used.
        self.client = PostgresClient(conn, app='opsready-maintenance', limits=opts.limits())
        self._pgstattuple: Optional[str] = None

    def q(self, sql: str) -> List[List[str]]:
        return self.client.query(sql, self.database)

    def open(self) -> Dict[str, Any]:
        row = self.q("SELECT current_setting('server_version'), pg_is_in_recovery()::text, "
                     "(SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgstattuple')")[0]
        if row[1] == 'true':
            raise OpsReadyError('PostgreSQL at %s is a standby (in recovery): run maintenance on the primary.'
                                % self.client.conn.where(5432))
        self._pgstattuple = row[2] if len(row) > 2 and row[2] else None
        return {'server_version': row[0], 'pgstattuple': self._pgstattuple}

    def list_tables(self) -> List[TableRef]:
        rows = self.q("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                      "WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                      "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1, 2")
        # Every name the catalogs hold (quote, backslash, newline, non-ASCII...): each is quoted by pg_quote.
        return [TableRef(r[1], r[0]) for r in rows]

    def _stats(self, tables: List[TableRef]) -> Dict[str, Dict[str, Any]]:
        if not tables:
            return {}
        where = ' OR '.join('(schemaname = %s AND relname = %s)' % (quote_literal(t.schema or 'public'),
                                                                    quote_literal(t.name)) for t in tables)
        rows = self.q('SELECT schemaname, relname, n_live_tup, n_dead_tup, n_mod_since_analyze, '
                      'coalesce(last_analyze::text, \'\'), coalesce(last_autoanalyze::text, \'\'), '
                      'coalesce(last_vacuum::text, \'\'), coalesce(last_autovacuum::text, \'\') '
                      'FROM pg_stat_user_tables WHERE ' + where)  # nosec B608 # quoted: identifiers.py
        out = {}
        for r in rows:
            out['%s.%s' % (r[0], r[1])] = {'n_live_tup': int(r[2]), 'n_dead_tup': int(r[3]),
                                           'n_mod_since_analyze': int(r[4]), 'last_analyze': r[5] or None,
                                           'last_autoanalyze': r[6] or None, 'last_vacuum': r[7] or None,
                                           'last_autovacuum': r[8] or None}
        return out

    # -- vacuum / analyze --------------------------------------------------------------------------
    def plan_vacuum(self, tables: List[TableRef]) -> List[Candidate]:
        stats = self._stats(tables)
        out = []
        for table in tables:
            s = stats.get(table.label, {'n_live_tup': 0, 'n_dead_tup': 0})
            total = s['n_live_tup'] + s['n_dead_tup']
            pct = s['n_dead_tup'] * 100.0 / total if total else 0.0
            before = dict(s, dead_percent=round(pct, 2))
            due = self.opts.force or (s['n_dead_tup'] > 0 and pct > self.opts.vacuum_threshold)
            reason = 'force' if self.opts.force else '%d dead tuples, %.1f%% (threshold %.1f%%)' % (
                s['n_dead_tup'], pct, self.opts.vacuum_threshold)
            out.append(Candidate('vacuum', table.label, due, reason,
                                 'VACUUM (ANALYZE) %s' % _t(table) if due else None, before, table))
        return out

    def plan_analyze(self, tables: List[TableRef]) -> List[Candidate]:
        stats = self._stats(tables)
        out = []
        for table in tables:
            s = stats.get(table.label, {'n_live_tup': 0, 'n_mod_since_analyze': 0, 'last_analyze': None,
                                        'last_autoanalyze': None})
            never = not (s.get('last_analyze') or s.get('last_autoanalyze'))
            pct = s['n_mod_since_analyze'] * 100.0 / max(s['n_live_tup'], 1)
            before = dict(s, modified_percent=round(pct, 2))
            if self.opts.force:
                due, reason = True, 'force'
            elif never and (s['n_live_tup'] or s['n_mod_since_analyze']):
                due, reason = True, 'never analyzed'
            else:
                due = s['n_mod_since_analyze'] > 0 and pct > self.opts.analyze_threshold
                reason = '%d rows modified since the last analyze, %.1f%% (threshold %.1f%%)' % (
                    s['n_mod_since_analyze'], pct, self.opts.analyze_threshold)
            out.append(Candidate('analyze', table.label, due, reason, 'ANALYZE %s' % _t(table) if due else None,
                                 before, table))
        return out

    # -- reindex -----------------------------------------------------------------------------------
    def _indexes(self, tables: List[TableRef]) -> List[Dict[str, Any]]:
        if not tables:
            return []
        where = ' OR '.join('(n.nspname = %s AND t.relname = %s)' % (quote_literal(tb.schema or 'public'),
                                                                     quote_literal(tb.name)) for tb in tables)
        rows = self.q(
            "SELECT n.nspname, t.relname, i.relname, i.relpages, greatest(i.reltuples, 0)::bigint, "
            "pg_relation_size(i.oid), coalesce((SELECT option_value FROM pg_options_to_table(i.reloptions) "
            "WHERE option_name = 'fillfactor'), '90'), "
            "(SELECT coalesce(sum(s.avg_width), -1) FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord) "
            " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            " LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname "
            " WHERE k.ord <= x.indnkeyatts), "
            "(0 = ANY(x.indkey::int2[]) OR x.indexprs IS NOT NULL)::text, "
            "EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid AND c.contype = 'x')::text, "
            "(SELECT count(*) FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord) "
            " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            " JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname "
            " WHERE k.ord <= x.indnkeyatts), x.indnkeyatts "  # nosec B608 # quoted: identifiers.py
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_am am ON am.oid = i.relam "
            "WHERE am.amname = 'btree' AND x.indisvalid AND x.indisready AND (%s) ORDER BY 1, 2, 3" % where)
        out = []
        for r in rows:
            out.append({'schema': r[0], 'table': r[1], 'index': r[2], 'relpages': int(r[3]),
                        'reltuples': int(r[4]), 'size': int(r[5]), 'fillfactor': int(r[6]),
                        'key_width': float(r[7]), 'expression': r[8] == 'true', 'exclusion': r[9] == 'true',
                        'stats_columns': int(r[10]), 'key_columns': int(r[11])})
        return out

    def _bloat(self, ix: Dict[str, Any]) -> Tuple[Optional[float], str]:
        """(bloat percent or None when unknown, how it was measured)."""
        method = self.opts.bloat_method
        if method == 'pgstattuple' and not self._pgstattuple:
            raise OpsReadyError('bloat_method=pgstattuple but the pgstattuple extension is not installed in %s: '
                                'CREATE EXTENSION pgstattuple (as a superuser) or use bloat_method=auto.'
                                % self.database)
        if self._pgstattuple and method in ('auto', 'pgstattuple'):
            fn = '%s.pgstatindex' % quote_ident(self._pgstattuple)
            target = quote_literal('%s.%s' % (quote_ident(ix['schema']), quote_ident(ix['index'])))
            sql = 'SELECT avg_leaf_density, leaf_pages FROM %s(%s::regclass)' % (fn, target)  # nosec B608 # quoted
            row = self.q(sql)[0]
            if int(row[1]) == 0 or row[0].lower() == 'nan':
                return 0.0, 'pgstattuple (empty index)'
            density = float(row[0])
            return max(0.0, 100.0 - density * 100.0 / ix['fillfactor']), 'pgstattuple'
        if ix['expression']:
            return None, 'estimate impossible for an expression index (install pgstattuple for a measurement)'
        if ix['stats_columns'] < ix['key_columns'] or ix['key_width'] < 0:
            return None, 'no column statistics yet (run the analyze task first)'
        expected = estimate_btree_pages(ix['reltuples'], ix['key_width'], ix['fillfactor'])
        if ix['relpages'] <= 0:
            return 0.0, 'estimate (empty index)'
        return max(0.0, (ix['relpages'] - expected) * 100.0 / ix['relpages']), 'estimate'

    def plan_reindex(self, tables: List[TableRef]) -> List[Candidate]:
        out = []
        min_bytes = self.opts.min_size_mb * 1024 * 1024
        for ix in self._indexes(tables):
            label = '%s.%s' % (ix['schema'], ix['index'])
            stmt = 'REINDEX INDEX CONCURRENTLY %s.%s' % (quote_ident(ix['schema']), quote_ident(ix['index']))
            before: Dict[str, Any] = {'table': '%s.%s' % (ix['schema'], ix['table']), 'size': ix['size']}
            if ix['exclusion']:
                out.append(Candidate('reindex', label, False, 'exclusion-constraint index: REINDEX CONCURRENTLY '
                                     'cannot rebuild it', None, before, ix))
                continue
            if ix['size'] < min_bytes and not self.opts.force:
                out.append(Candidate('reindex', label, False, 'size %d bytes below min_size_mb=%s'
                                     % (ix['size'], self.opts.min_size_mb), None, before, ix))
                continue
            bloat, how = self._bloat(ix)
            before.update(bloat_percent=None if bloat is None else round(bloat, 2), bloat_method=how)
            if self.opts.force:
                out.append(Candidate('reindex', label, True, 'force', stmt, before, ix))
            elif bloat is None:
                out.append(Candidate('reindex', label, False, how, None, before, ix))
            else:
                due = bloat > self.opts.bloat_threshold
                reason = 'bloat %.1f%% (%s, threshold %.1f%%)' % (bloat, how, self.opts.bloat_threshold)
                out.append(Candidate('reindex', label, due, reason, stmt if due else None, before, ix))
        return out

    def _drop_ccnew(self, ix: Dict[str, Any]) -> List[str]:
        rows = self.q("SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
                      "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT x.indisvalid AND n.nspname = %s "
                      "AND starts_with(c.relname, %s)"
                      % (quote_literal(ix['schema']),
                         quote_literal(ix['index'] + '_ccnew')))  # nosec B608 # quoted: identifiers.py
        dropped = []
        for r in rows:
            self.q('DROP INDEX CONCURRENTLY IF EXISTS %s.%s' % (quote_ident(ix['schema']), quote_ident(r[0])))
            dropped.append(r[0])
        return dropped

    # -- execute -----------------------------------------------------------------------------------
    def execute(self, cand: Candidate) -> Dict[str, Any]:
        if cand.task == 'reindex':
            ix = cand.key
            try:
                self.q(cand.statement or '')
            except OpsReadyError as exc:
                dropped = self._drop_ccnew(ix)
                if dropped:
                    raise OpsReadyError('%s Invalid index(es) left by the interrupted REINDEX CONCURRENTLY were '
                                        'dropped: %s.' % (exc.message, ', '.join(dropped)))
                raise
            after = [i for i in self._indexes([TableRef(ix['table'], ix['schema'])]) if i['index'] == ix['index']]
            if not after:
                return {}
            bloat, how = self._bloat(after[0])
            return {'size': after[0]['size'], 'bloat_percent': None if bloat is None else round(bloat, 2),
                    'bloat_method': how}
        self.q(cand.statement or '')
        return self._stats([cand.key]).get(cand.key.label, {})

    # -- cleanup -----------------------------------------------------------------------------------
    def check_cleanup(self, spec: CleanupSpec) -> None:
        schema = spec.table.schema or 'public'
        rows = self.q("SELECT c.relkind::text, coalesce((SELECT format_type(a.atttypid, a.atttypmod) "
                      "FROM pg_attribute a "
                      "WHERE a.attrelid = c.oid AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped), '') "
                      "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND "
                      "c.relname = %s" % (quote_literal(spec.column), quote_literal(schema),
                                          quote_literal(spec.table.name)))  # nosec B608 # quoted: identifiers.py
        if not rows:
            raise OpsReadyError('cleanup table %s.%s does not exist in database %s.'
                                % (schema, spec.table.name, self.database))
        kind, coltype = rows[0][0], rows[0][1] if len(rows[0]) > 1 else ''
        if kind == 'p':
            raise OpsReadyError('cleanup table %s.%s is partitioned: detach and drop old partitions instead of '
                                'deleting rows.' % (schema, spec.table.name))
        if kind != 'r':
            raise OpsReadyError('cleanup target %s.%s is not a table.' % (schema, spec.table.name))
        if not coltype:
            raise OpsReadyError('cleanup column %s does not exist in table %s.%s.'
                                % (spec.column, schema, spec.table.name))
        base = coltype.split('(')[0].strip()
        if spec.column_format == 'timestamp' and not base.startswith(('timestamp', 'date')):
            raise OpsReadyError('cleanup column %s.%s is %s, not a timestamp or date: set column_format=epoch or '
                                'epoch_ms for numeric epoch columns.' % (spec.table.name, spec.column, coltype))
        if spec.column_format != 'timestamp' and base not in NUMBER_TYPES:
            raise OpsReadyError('cleanup column %s.%s is %s, not numeric: column_format=%s expects epoch numbers.'
                                % (spec.table.name, spec.column, coltype, spec.column_format))

    def cleanup_cutoff(self, spec: CleanupSpec) -> Any:
        if spec.column_format == 'timestamp':
            return self.q('SELECT (now() - make_interval(days => %d))::text' % spec.older_than_days)[0][0]
        epoch = int(self.q('SELECT floor(extract(epoch FROM now()))::bigint')[0][0]) - spec.older_than_days * 86400
        return epoch * 1000 if spec.column_format == 'epoch_ms' else epoch

    def _where(self, spec: CleanupSpec, cutoff: Any) -> str:
        col = quote_ident(spec.column)
        if spec.column_format == 'timestamp':
            return '%s < %s::timestamptz' % (col, quote_literal(str(cutoff)))
        return '%s < %d' % (col, int(cutoff))

    def cleanup_count(self, spec: CleanupSpec, cutoff: Any) -> int:
        sql = 'SELECT count(*) FROM %s WHERE %s' % (_t(spec.table), self._where(spec, cutoff))  # nosec B608 # quoted
        return int(self.q(sql)[0][0])

    def cleanup_batch(self, spec: CleanupSpec, cutoff: Any) -> int:
        table = _t(spec.table)
        sql = ('WITH doomed AS (DELETE FROM %s WHERE ctid = ANY(ARRAY(SELECT ctid FROM %s WHERE %s LIMIT %d)) '
               'RETURNING 1) SELECT count(*) FROM doomed'
               % (table, table, self._where(spec, cutoff), spec.batch_size))  # nosec B608 # quoted: identifiers.py
        return int(self.q(sql)[0][0])
