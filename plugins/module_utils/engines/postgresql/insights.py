# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL insights: connections, lock waits and their blockers, deadlocks, long transactions,
replication slots, buffer cache, bloat estimate, pg_stat_statements.

One round trip (one psql run, CSV, no password in argv) on the usual server: one SELECT that builds the whole
snapshot as one JSON document on the server, with the server version and what pg_stat_statements offers in it;
where that statement cannot run (PostgreSQL before 14, pg_stat_statements missing, not loaded or before 1.8) a
probe for those follows, then the snapshot written for them. The document is built on the server (aggregates,
ORDER BY and LIMIT run there, so 200 sessions or 10,000 tracked statements cost the server a sort, not this host
a transfer).

The SQL here is built from constants and integers only (limits, text lengths): no name or value from the user
reaches it (``nosec B608`` marks those lines for bandit). It runs inside a database whose own ``search_path`` a
non-superuser may have set (``ALTER DATABASE ... SET search_path TO their_schema, pg_catalog``), where every
unqualified call of ours would run their function of that name with our login: the client pins ``search_path`` to
pg_catalog for every session (``catalog_only``), and pg_stat_statements, which lives in whatever schema its
``CREATE EXTENSION`` chose, is named with that schema, read from the catalog.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import sqlstate
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import quote_ident
from ansible_collections.opsready.operations.plugins.module_utils.insights.core import (
    QUERY_CHARS, Collector, Options, percent)

PROBE_SQL = (
    "SELECT current_setting('server_version_num'), current_setting('shared_preload_libraries'), "
    "(SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'), current_database(), "
    "current_setting('block_size'), (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
    "ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements')")
# The one-statement snapshot's way to the view: psql reads the extension's schema into a variable (\gset) and
# quotes it as an identifier (:"pss_schema"); without the extension, pg_catalog.pg_stat_statements does not exist
# and the statement fails like any other make-up difference.
PSS_SCHEMA_GSET = ("SELECT coalesce((SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                   "ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'), 'pg_catalog') "
                   "AS pss_schema \\gset\n")
PSS_FROM_GSET = ':"pss_schema".pg_stat_statements'

HOW_TO_ENABLE = ('pg_stat_statements is not enabled: add it to shared_preload_libraries in postgresql.conf '
                 "(shared_preload_libraries = 'pg_stat_statements'), restart PostgreSQL, then run CREATE EXTENSION "
                 'pg_stat_statements; in the database insights read (%s).')
HOW_TO_CREATE = ('pg_stat_statements is loaded but the extension is not created in database %s: run CREATE '
                 'EXTENSION pg_stat_statements; there (or point the database option at a database that has it).')

# Sessions that are client connections (not autovacuum, walsender, background workers).
CLIENT = "backend_type = 'client backend'"


# What the one-statement snapshot assumes (pg_locks.waitstart is 14+, total_exec_time is pg_stat_statements 1.8+):
# where it is not so, the statement fails to run and collect() takes the probe first.
OPTIMISTIC_VERSION = 140000
OPTIMISTIC_EXTVERSION = '1.8'
# How the server says that it is not that server: a relation or column missing, the library not loaded. The
# SQLSTATEs (the statement runs with VERBOSITY=verbose) say it in the server's any language: undefined table, column,
# function, object; object_not_in_prerequisite_state (not in shared_preload_libraries); a syntax error.
MAKE_UP = re.compile(r'does not exist|pg_stat_statements|shared_preload_libraries|syntax error')
MAKE_UP_SQLSTATES = ('42P01', '42703', '42883', '42704', '55000', '42601')


def _snapshot_sql(version: int, statements: Optional[str], options: Options, probe: bool = False,
                  view: str = PSS_FROM_GSET) -> str:
    """The snapshot as one JSON document; ``probe``: with what the probe reads (server version, the extension's
    version, database, block size) in it, for the one-statement snapshot. ``view``: pg_stat_statements, named with
    its schema."""
    q = QUERY_CHARS
    waitstart = 'l.waitstart' if version >= 140000 else 'NULL::timestamptz'
    # pg_locks.waitstart (14+) is when the wait for the lock began; before 14 the statement start is the best bound.
    parts = [
        "'max_connections', current_setting('max_connections')::int",
        "'reserved_connections', current_setting('superuser_reserved_connections')::int",
        "'connections', (SELECT count(*) FROM pg_stat_activity WHERE %s)" % CLIENT,  # nosec B608
        "'by_database', (SELECT coalesce(json_agg(x ORDER BY x.count DESC, x.database), '[]') FROM "  # nosec B608
        "(SELECT datname AS database, count(*) AS count FROM pg_stat_activity WHERE %s GROUP BY datname) x)" % CLIENT,
        "'by_user', (SELECT coalesce(json_agg(x ORDER BY x.count DESC, x.user), '[]') FROM "  # nosec B608
        "(SELECT usename AS user, count(*) AS count FROM pg_stat_activity WHERE %s GROUP BY usename) x)" % CLIENT,
        "'by_state', (SELECT coalesce(json_object_agg(coalesce(x.state, 'unknown'), x.count), '{}') FROM "  # nosec B608
        "(SELECT state, count(*) AS count FROM pg_stat_activity WHERE %s GROUP BY state) x)" % CLIENT,
        # Lock waiters and their blockers (pg_blocking_pids: holders and waiters ahead in the queue).
        "'lock_waits', (SELECT coalesce(json_agg(w ORDER BY w.wait_seconds DESC NULLS LAST), '[]') FROM ("  # nosec B608
        "SELECT a.pid, a.usename AS user, a.datname AS database, left(a.query, %d) AS query, a.wait_event, "
        "round(extract(epoch FROM clock_timestamp() - coalesce(%s, a.query_start))::numeric, 3) AS wait_seconds, "
        "(SELECT coalesce(json_agg(json_build_object('pid', b.pid, 'user', b.usename, 'state', b.state, "
        "'application', b.application_name, 'query', left(b.query, %d), 'transaction_seconds', "
        "round(extract(epoch FROM clock_timestamp() - b.xact_start)::numeric, 3))), '[]') "
        "FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(a.pid))) AS blockers "
        "FROM pg_stat_activity a LEFT JOIN LATERAL (SELECT min(waitstart) AS waitstart FROM pg_locks "
        "WHERE pid = a.pid AND NOT granted) l ON true WHERE a.wait_event_type = 'Lock' "
        "ORDER BY wait_seconds DESC NULLS LAST LIMIT %d) w)" % (q, waitstart, q, options.lock_waits_max),
        "'counters', (SELECT json_build_object('deadlocks', coalesce(sum(deadlocks), 0), "
        "'commits', coalesce(sum(xact_commit), 0), 'rollbacks', coalesce(sum(xact_rollback), 0), "
        "'cache_hits', coalesce(sum(blks_hit), 0), 'cache_misses', coalesce(sum(blks_read), 0), "
        "'temp_bytes', coalesce(sum(temp_bytes), 0)) FROM pg_stat_database)",
        "'deadlocks_by_database', (SELECT coalesce(json_object_agg(datname, deadlocks), '{}') FROM pg_stat_database "
        "WHERE datname IS NOT NULL AND deadlocks > 0)",
        "'longest_transaction', (SELECT row_to_json(t) FROM (SELECT pid, usename AS user, datname AS database, state, "  # nosec B608
        "round(extract(epoch FROM clock_timestamp() - xact_start)::numeric, 3) AS seconds, left(query, %d) AS query "
        "FROM pg_stat_activity WHERE xact_start IS NOT NULL AND %s AND pid <> pg_backend_pid() "
        "ORDER BY xact_start LIMIT 1) t)" % (q, CLIENT),
        "'idle_in_transaction', (SELECT row_to_json(t) FROM (SELECT pid, usename AS user, datname AS database, state, "  # nosec B608
        "round(extract(epoch FROM clock_timestamp() - state_change)::numeric, 3) AS seconds, left(query, %d) AS query "
        "FROM pg_stat_activity WHERE state LIKE 'idle in transaction%%' AND %s ORDER BY state_change LIMIT 1) t)"
        % (q, CLIENT),
        "'replication_slots', (SELECT coalesce(json_agg(s ORDER BY s.retained_bytes DESC NULLS LAST), '[]') FROM ("
        "SELECT slot_name AS name, slot_type AS type, database, active, wal_status, "
        "pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, "
        "restart_lsn)::bigint AS retained_bytes FROM pg_replication_slots) s)",
        # The largest tables of this database and what the bloat estimate needs (see _bloat). Sizes come from
        # pg_class.relpages (as of the last VACUUM/ANALYZE), not pg_relation_size(): that one takes a lock on
        # the table and would queue behind the very ACCESS EXCLUSIVE lock an operator is looking for.
        "'tables', (SELECT coalesce(json_agg(t ORDER BY t.size_bytes DESC), '[]') FROM ("  # nosec B608
        "SELECT n.nspname AS schema, c.relname AS name, "
        "c.relpages::bigint * current_setting('block_size')::bigint AS size_bytes, "
        "c.relpages AS pages, c.reltuples::bigint AS tuples, s.n_live_tup AS live_tuples, s.n_dead_tup AS dead_tuples, "
        "(SELECT sum(st.avg_width) FROM pg_stats st WHERE st.schemaname = n.nspname AND st.tablename = c.relname) "
        "AS row_width, (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 "
        "AND NOT a.attisdropped) AS columns, coalesce((SELECT substring(o FROM 'fillfactor=([0-9]+)')::int "
        "FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%%'), 100) AS fillfactor, "
        "s.last_vacuum, s.last_autovacuum FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relkind IN ('r', 'm') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
        "ORDER BY c.relpages DESC LIMIT %d) t)" % options.bloat_tables,
    ]
    if probe:
        parts += ["'server_version_num', current_setting('server_version_num')::int",
                  "'extversion', (SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements')",
                  "'database', current_database()", "'block_size', current_setting('block_size')::int"]
    prefix = ''
    if statements:
        # pg_stat_statements 1.8 (PostgreSQL 13) renamed total_time/mean_time to total_exec_time/mean_exec_time.
        newer = tuple(int(p) for p in statements.split('.') if p.isdigit()) >= (1, 8)
        total, mean = ('total_exec_time', 'mean_exec_time') if newer else ('total_time', 'mean_time')
        # The view is read once (each read builds every entry with its text: 10,000 entries cost a tuplestore
        # spilled to disk); both top-N lists and the count come from that one copy, by bounded sorts.
        prefix = ('WITH pss AS %s(SELECT s.queryid, s.query, s.calls, s.%s AS total, s.%s AS mean, s.rows, s.dbid, '  # nosec B608
                  's.userid FROM %s s) ' % ('MATERIALIZED ' if version >= 120000 else '', total, mean, view))
        # The top N first (a bounded sort of bare numbers), then their text and names.
        row = ("SELECT s.queryid::text AS queryid, left(s.query, %d) AS query, s.calls, round(s.total::numeric, 3) "  # nosec B608
               "AS total_ms, round(s.mean::numeric, 3) AS mean_ms, s.rows, d.datname AS database, r.rolname AS user "
               "FROM (SELECT * FROM pss ORDER BY %%s DESC LIMIT %d) s LEFT JOIN pg_database d ON d.oid = s.dbid "
               "LEFT JOIN pg_roles r ON r.oid = s.userid" % (q, options.top))
        for name, column, alias in (('by_total_time', 'total', 'total_ms'), ('by_mean_time', 'mean', 'mean_ms')):
            parts.append("'%s', (SELECT coalesce(json_agg(x ORDER BY x.%s DESC), '[]') FROM (%s) x)"  # nosec B608
                         % (name, alias, row % column))
        parts.append("'statements_tracked', (SELECT count(*) FROM pss)")
    return prefix + 'SELECT json_build_object(%s)' % ', '.join(parts)


def _bloat(table: Dict[str, Any], block_size: int) -> Dict[str, Any]:
    """Estimated bloat of one table from its statistics (the approach of the well-known ioguix estimate):
    the pages its live rows need at their average width (tuple header 24 bytes, line pointer 4, 8-byte
    alignment, the fillfactor), compared with the pages it has. Without ANALYZE statistics the dead-tuple
    share stands in. An estimate: a guide to what VACUUM FULL / pg_repack would give back, not a measure."""
    size = int(table['size_bytes'] or 0)
    out: Dict[str, Any] = {
        'table': '%s.%s' % (table['schema'], table['name']), 'size_bytes': size,
        'live_tuples': table.get('live_tuples'), 'dead_tuples': table.get('dead_tuples'),
        'last_vacuum': table.get('last_autovacuum') or table.get('last_vacuum')}
    pages = int(table.get('pages') or 0)
    tuples = max(0, int(table.get('tuples') or 0))
    width = table.get('row_width')
    if width is not None and pages > 0 and tuples > 0:
        tuple_bytes = 24 + int(math.ceil(float(width) / 8.0)) * 8 + 4
        per_page = max(1, int((block_size - 24) * (table.get('fillfactor') or 100) / 100.0 // tuple_bytes))
        expected = int(math.ceil(tuples / float(per_page)))
        wasted = max(0, pages - expected) * block_size
        out.update(method='statistics', bloat_bytes=wasted, bloat_percent=percent(wasted, pages * block_size))
    else:
        live, dead = int(table.get('live_tuples') or 0), int(table.get('dead_tuples') or 0)
        share = percent(dead, live + dead) if live + dead else None
        out.update(method='dead_tuples', bloat_percent=share,
                   bloat_bytes=int(size * share / 100.0) if share is not None else None)
    return out


class PostgresInsights(Collector):
    engine_name = 'postgresql'

    # Set by collect(): whether the last snapshot took one round trip or the probe first (tests, bench).
    round_trips = 0

    def collect(self, options: Options) -> Dict[str, Any]:
        # Each round trip is a psql process and a login: on a loaded host most of a run. The usual server (14 or
        # newer, pg_stat_statements 1.8+ loaded and created) is asked for everything in one statement; when that
        # statement does not run there (an older server, the extension missing, not loaded, or older), the
        # probe says what the server has and the snapshot for it follows, as before. A failure that is not about
        # the server's make-up (login, timeout) fails the probe the same way and is reported from there.
        try:
            rows = self.client.query_script(
                PSS_SCHEMA_GSET + _snapshot_sql(OPTIMISTIC_VERSION, OPTIMISTIC_EXTVERSION, options, probe=True) + ';\n',
                database=options.database, verbose=True)
            raw = json.loads(rows[0][0]) if rows and rows[0] else None
        except OpsReadyError as exc:
            if sqlstate(getattr(exc, 'stderr', '')) not in MAKE_UP_SQLSTATES and \
                    not MAKE_UP.search('%s %s' % (exc.message, getattr(exc, 'stderr', ''))):
                raise  # a login, a timeout, a lock: asking again would only wait again
            raw = None
        if raw is not None:
            self.round_trips = 1
            version, extversion = int(raw['server_version_num']), raw['extversion']
            database, block_size = raw['database'], raw['block_size']
            usable = extversion
        else:
            self.round_trips = 3  # the statement that did not run, the probe, the snapshot
            rows = self.client.query(PROBE_SQL, database=options.database)
            if not rows or len(rows[0]) < 6:
                raise OpsReadyError('PostgreSQL did not answer the insights probe (got %r).' % rows)
            version_num, preload, extversion, database, block_size, schema = rows[0]
            version = int(version_num)
            loaded = 'pg_stat_statements' in [p.strip().strip('"') for p in preload.split(',')]
            usable = extversion if (loaded and extversion) else None
            view = '%s.pg_stat_statements' % quote_ident(schema) if usable else ''
            rows = self.client.query(_snapshot_sql(version, usable, options, view=view), database=options.database)
            if not rows or not rows[0]:
                raise OpsReadyError('PostgreSQL returned no insights snapshot.')
            raw = json.loads(rows[0][0])
        used, maximum = int(raw['connections']), int(raw['max_connections'])
        snap: Dict[str, Any] = {
            'server_version': version,
            'database': database,
            'connections': {'used': used, 'max': maximum, 'percent': percent(used, maximum),
                            'reserved_for_superuser': raw['reserved_connections'],
                            'by_database': raw['by_database'], 'by_user': raw['by_user'], 'by_state': raw['by_state']},
            'lock_waits': [self._wait(w) for w in raw['lock_waits']],
            'deadlocks': {'total': int(raw['counters']['deadlocks']), 'by_database': raw['deadlocks_by_database']},
            'transactions': {'longest': _num(raw['longest_transaction']),
                             'idle_in_transaction_longest': _num(raw['idle_in_transaction'])},
            'replication_slots': raw['replication_slots'],
            'bloat': [_bloat(t, int(block_size)) for t in raw['tables']],
            'counters': {k: int(v) for k, v in raw['counters'].items()},
        }
        if usable:
            snap['statements'] = {'enabled': True, 'source': 'pg_stat_statements %s' % usable,
                                  'tracked': raw.get('statements_tracked'),
                                  'by_total_time': [_num(s) for s in raw['by_total_time']],
                                  'by_mean_time': [_num(s) for s in raw['by_mean_time']]}
        else:
            snap['statements'] = {'enabled': False, 'by_total_time': [], 'by_mean_time': [],
                                  'how_to_enable': (HOW_TO_CREATE % database) if loaded else (HOW_TO_ENABLE % database)}
        return snap

    @staticmethod
    def _wait(raw: Dict[str, Any]) -> Dict[str, Any]:
        item = _num(raw) or {}
        item['blockers'] = [_num(b) for b in raw.get('blockers') or []]
        return item


def _num(item: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """JSON numerics from ``round(...::numeric)`` arrive as numbers already; normalise floats that are whole."""
    if item is None:
        return None
    out: Dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, float) and key in ('calls', 'rows'):
            value = int(value)
        out[key] = value
    return out


__all__: List[str] = ['PostgresInsights']
