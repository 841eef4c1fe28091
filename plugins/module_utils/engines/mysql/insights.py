# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB/MySQL insights: threads connected vs max_connections, InnoDB row lock waits and the blocking
transaction, deadlocks, buffer pool hit ratio, performance_schema statement digests, the slow log.

Queries go through the client's ``query`` (the mariadb/mysql program with a 0600 option file). A probe
reads the settings the snapshot depends on; one SELECT then builds the snapshot as a JSON document.
MariaDB keeps status and lock waits in ``information_schema`` (GLOBAL_STATUS, INNODB_LOCK_WAITS); MySQL 8
in ``performance_schema`` (global_status, data_lock_waits): the flavor picks the source. Only MariaDB runs
in the tests here; the MySQL 8 sources follow its documentation.

The SQL here is built from constants and integers only (limits, text lengths): no name or value from the user
reaches it (``nosec B608`` marks those lines for bandit).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.insights.core import (
    QUERY_CHARS, Collector, Options, percent)

PROBE_SQL = ('SELECT VERSION(), @@max_connections, @@performance_schema, @@slow_query_log, @@long_query_time, '
             '@@log_output, @@slow_query_log_file, @@datadir')

STATUS = ('Threads_connected', 'Threads_running', 'Max_used_connections', 'Innodb_deadlocks', 'Innodb_row_lock_waits',
          'Innodb_row_lock_time', 'Innodb_row_lock_current_waits', 'Innodb_buffer_pool_read_requests',
          'Innodb_buffer_pool_reads', 'Slow_queries', 'Questions', 'Aborted_connects',
          'Connection_errors_max_connections')
# The counters kept in the history (status name -> counter name).
COUNTERS = {'Innodb_deadlocks': 'deadlocks', 'Innodb_row_lock_waits': 'row_lock_waits',
            'Innodb_row_lock_time': 'row_lock_time_ms', 'Slow_queries': 'slow_queries', 'Questions': 'questions',
            'Aborted_connects': 'aborted_connects', 'Connection_errors_max_connections': 'connections_refused'}

HOW_TO_ENABLE = ('performance_schema is off, so there are no statement digests: set performance_schema=ON in the '
                 '[mysqld] section of the server configuration and restart the server (the digest table then fills '
                 'as statements run).')
SLOW_LOG_HOW = ('The slow query log is off: SET GLOBAL slow_query_log = ON, long_query_time = 1 (and the same in '
                'the server configuration to keep it across restarts).')
# How much of a slow log file is read (its newest entries).
SLOW_LOG_TAIL = 4 * 1024 * 1024
_QUERY_TIME = re.compile(r'^# Query_time: ([0-9.]+)\s+Lock_time: ([0-9.]+)\s+Rows_sent: (\d+)\s+Rows_examined: (\d+)')


def _j(value: Any, default: Any) -> Any:
    """A nested JSON value: MariaDB hands a JSON subquery result to JSON_OBJECT as text."""
    if value is None:
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _snapshot_sql(flavor: str, digests: bool, slow_table: bool, options: Options) -> str:
    q = QUERY_CHARS
    mariadb = flavor == 'mariadb'
    status = 'information_schema.GLOBAL_STATUS' if mariadb else 'performance_schema.global_status'
    names = ', '.join("'%s'" % n.upper() if mariadb else "'%s'" % n for n in STATUS)
    if mariadb:
        waits = ('information_schema.INNODB_LOCK_WAITS w JOIN information_schema.INNODB_TRX r '
                 'ON r.trx_id = w.requesting_trx_id JOIN information_schema.INNODB_TRX b '
                 'ON b.trx_id = w.blocking_trx_id')
    else:
        waits = ('performance_schema.data_lock_waits w JOIN information_schema.INNODB_TRX r '
                 'ON r.trx_id = w.REQUESTING_ENGINE_TRANSACTION_ID JOIN information_schema.INNODB_TRX b '
                 'ON b.trx_id = w.BLOCKING_ENGINE_TRANSACTION_ID')
    trx_age = 'TIMESTAMPDIFF(MICROSECOND, %s.trx_started, NOW(6)) / 1000000'
    parts = [
        "'status', (SELECT JSON_OBJECTAGG(VARIABLE_NAME, VARIABLE_VALUE) FROM %s WHERE VARIABLE_NAME IN (%s))"  # nosec B608
        % (status, names),
        "'by_user', (SELECT JSON_ARRAYAGG(JSON_OBJECT('user', u, 'count', c)) FROM (SELECT USER AS u, COUNT(*) AS c "
        "FROM information_schema.PROCESSLIST GROUP BY USER ORDER BY c DESC LIMIT 50) x)",
        "'by_database', (SELECT JSON_ARRAYAGG(JSON_OBJECT('database', d, 'count', c)) FROM (SELECT DB AS d, COUNT(*) "
        "AS c FROM information_schema.PROCESSLIST GROUP BY DB ORDER BY c DESC LIMIT 50) x)",
        "'by_state', (SELECT JSON_OBJECTAGG(s, c) FROM (SELECT COMMAND AS s, COUNT(*) AS c "
        "FROM information_schema.PROCESSLIST GROUP BY COMMAND) x)",
        # Row lock waits: the waiting transaction and the one holding the lock (its statement, or idle).
        "'lock_waits', (SELECT JSON_ARRAYAGG(JSON_OBJECT('pid', r.trx_mysql_thread_id, 'query', LEFT(r.trx_query, %d), "  # nosec B608
        "'wait_seconds', TIMESTAMPDIFF(MICROSECOND, r.trx_wait_started, NOW(6)) / 1000000, "
        "'blocker_pid', b.trx_mysql_thread_id, 'blocker_query', LEFT(b.trx_query, %d), "
        "'blocker_transaction_seconds', %s, 'blocker_state', b.trx_state, "
        "'blocker_user', (SELECT USER FROM information_schema.PROCESSLIST p WHERE p.ID = b.trx_mysql_thread_id), "
        "'blocker_command', (SELECT COMMAND FROM information_schema.PROCESSLIST p WHERE p.ID = b.trx_mysql_thread_id), "
        "'user', (SELECT USER FROM information_schema.PROCESSLIST p WHERE p.ID = r.trx_mysql_thread_id), "
        "'database', (SELECT DB FROM information_schema.PROCESSLIST p WHERE p.ID = r.trx_mysql_thread_id))) FROM %s)"
        % (q, q, trx_age % 'b', waits),
        "'longest_transaction', (SELECT JSON_OBJECT('pid', t.trx_mysql_thread_id, 'seconds', %s, 'query', "  # nosec B608
        "LEFT(t.trx_query, %d), 'state', p.COMMAND, 'user', p.USER, 'database', p.DB) "
        "FROM information_schema.INNODB_TRX t "
        "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id ORDER BY t.trx_started LIMIT 1)"
        % (trx_age % 't', q),
        # A transaction whose session sleeps: idle in transaction, holding its locks.
        "'idle_in_transaction', (SELECT JSON_OBJECT('pid', t.trx_mysql_thread_id, 'seconds', p.TIME, 'query', "  # nosec B608
        "LEFT(t.trx_query, %d), 'state', 'idle in transaction', 'user', p.USER, 'database', p.DB) "
        "FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
        "WHERE p.COMMAND = 'Sleep' ORDER BY p.TIME DESC LIMIT 1)" % q,
    ]
    if not mariadb:
        # MySQL 8 has no Innodb_deadlocks status variable; its InnoDB metric lock_deadlocks is on by default.
        parts.append("'metric_deadlocks', (SELECT COUNT FROM information_schema.INNODB_METRICS "
                     "WHERE NAME = 'lock_deadlocks')")
    if digests:
        row = ("SELECT JSON_OBJECT('query', LEFT(DIGEST_TEXT, %d), 'digest', DIGEST, 'database', SCHEMA_NAME, "  # nosec B608
               "'calls', COUNT_STAR, 'total_ms', ROUND(SUM_TIMER_WAIT / 1000000000, 3), "
               "'mean_ms', ROUND(AVG_TIMER_WAIT / 1000000000, 3), 'rows', SUM_ROWS_SENT, "
               "'rows_examined', SUM_ROWS_EXAMINED) AS j, %%s AS k "
               "FROM performance_schema.events_statements_summary_by_digest "
               "WHERE DIGEST_TEXT IS NOT NULL ORDER BY %%s DESC LIMIT %d" % (q, options.top))
        for name, column in (('by_total_time', 'SUM_TIMER_WAIT'), ('by_mean_time', 'AVG_TIMER_WAIT')):
            parts.append("'%s', (SELECT JSON_ARRAYAGG(x.j ORDER BY x.k DESC) FROM (%s) x)"  # nosec B608
                         % (name, row % (column, column)))
        parts.append("'statements_tracked', (SELECT COUNT(*) "
                     "FROM performance_schema.events_statements_summary_by_digest)")
    if slow_table:
        parts.append("'slow_log', (SELECT JSON_ARRAYAGG(JSON_OBJECT("  # nosec B608
                     "'query', LEFT(CONVERT(sql_text USING utf8mb4), %d), "
                     "'seconds', TIME_TO_SEC(query_time), 'database', db, "
                     "'at', DATE_FORMAT(start_time, '%%Y-%%m-%%dT%%H:%%i:%%s'), 'rows_examined', rows_examined)) FROM "
                     "(SELECT * FROM mysql.slow_log WHERE start_time > NOW() - INTERVAL 1 DAY ORDER BY query_time "
                     "DESC LIMIT %d) s)" % (q, options.top))
        parts.append("'slow_log_count', (SELECT COUNT(*) FROM mysql.slow_log "
                     "WHERE start_time > NOW() - INTERVAL 1 DAY)")
    return 'SELECT JSON_OBJECT(%s)' % ', '.join(parts)


def summarize_slow_log_file(path: str, top: int) -> Dict[str, Any]:
    """Entries of the newest part of a slow log file: count and the slowest ones (by Query_time)."""
    handle = safeio.open_regular_stream(path, what='Slow query log', limit=1 << 62)
    if handle is None:  # pragma: no cover - missing_ok is off
        raise OpsReadyError('Slow query log %s vanished.' % path)
    with handle:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(max(0, size - SLOW_LOG_TAIL))
        text = handle.read(SLOW_LOG_TAIL).decode('utf-8', 'replace')
    entries: List[Dict[str, Any]] = []
    current: Optional[Dict[str, Any]] = None
    for line in text.split('\n'):
        match = _QUERY_TIME.match(line)
        if match:
            current = {'seconds': float(match.group(1)), 'lock_seconds': float(match.group(2)),
                       'rows_examined': int(match.group(4)), 'query': ''}
            entries.append(current)
        elif current is not None and line and not line.startswith('#') and not line.startswith('SET timestamp='):
            if not line.startswith('use ') and len(current['query']) < QUERY_CHARS:
                current['query'] = (current['query'] + ' ' + line).strip()[:QUERY_CHARS]
    entries.sort(key=lambda e: -e['seconds'])
    return {'entries_read': len(entries), 'slowest': entries[:top], 'bytes_read': min(size, SLOW_LOG_TAIL)}


def latest_deadlock(status_text: str) -> Optional[Dict[str, Any]]:
    """The LATEST DETECTED DEADLOCK section of SHOW ENGINE INNODB STATUS: when, the transactions' threads and
    statements, and which one InnoDB rolled back."""
    match = re.search(r'LATEST DETECTED DEADLOCK\n-+\n(.*?)\n-{8,}\n', status_text, re.S)
    if not match:
        return None
    section = match.group(1)
    when = section.split('\n', 1)[0].strip()
    threads = re.findall(r'(?:MySQL|MariaDB) thread id (\d+)', section)
    queries = []
    for block in re.split(r'\*\*\* \(\d+\) TRANSACTION:', section)[1:]:
        lines = [ln for ln in block.split('\n') if ln.strip()]
        stmt = [ln for ln in lines[1:] if not ln.startswith(('MySQL thread', 'MariaDB thread', 'mysql tables',
                                                             'LOCK WAIT', 'RECORD',
                                                             '***', 'Record lock', ' ', 'TABLE LOCK'))]
        queries.append(stmt[0][:QUERY_CHARS] if stmt else '')
    victim = re.search(r'\*\*\* WE ROLL BACK TRANSACTION \((\d+)\)', section)
    return {'at': when, 'threads': [int(t) for t in threads], 'queries': queries,
            'rolled_back': int(victim.group(1)) if victim else None, 'text': section[:4000]}


class MySQLInsights(Collector):
    engine_name = 'mariadb'

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.engine_name = client.flavor

    def collect(self, options: Options) -> Dict[str, Any]:
        rows = self.client.query(PROBE_SQL)
        if not rows or len(rows[0]) < 8:
            raise OpsReadyError('%s did not answer the insights probe (got %r).' % (self.engine_name, rows))
        version, max_conn, ps, slow_on, long_time, log_output, slow_file, datadir = rows[0]
        if slow_file and not os.path.isabs(slow_file):
            slow_file = os.path.join(datadir, slow_file)   # the server reads a relative name from its datadir
        digests = ps in ('1', 'ON')
        slow_enabled = slow_on in ('1', 'ON')
        outputs = [o.strip().upper() for o in log_output.split(',')]
        rows = self.client.query(_snapshot_sql(self.client.flavor, digests, slow_enabled and 'TABLE' in outputs,
                                               options))
        raw = json.loads(rows[0][0])
        status = {k.lower(): v for k, v in (_j(raw.get('status'), {}) or {}).items()}

        def stat(name: str) -> Optional[int]:
            value = status.get(name.lower())
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        used, maximum = stat('Threads_connected'), int(max_conn)
        counters = {name: stat(var) for var, name in COUNTERS.items() if stat(var) is not None}
        if 'deadlocks' not in counters and raw.get('metric_deadlocks') is not None:
            counters['deadlocks'] = int(raw['metric_deadlocks'])
        requests, reads = stat('Innodb_buffer_pool_read_requests'), stat('Innodb_buffer_pool_reads')
        if requests is not None and reads is not None:
            counters['cache_hits'] = max(0, requests - reads)
            counters['cache_misses'] = reads
        snap: Dict[str, Any] = {
            'server_version': version,
            'connections': {'used': used, 'max': maximum, 'percent': percent(used, maximum),
                            'max_used': stat('Max_used_connections'), 'running': stat('Threads_running'),
                            'by_user': _j(raw.get('by_user'), []), 'by_database': _j(raw.get('by_database'), []),
                            'by_state': _j(raw.get('by_state'), {})},
            'lock_waits': [self._wait(w) for w in _j(raw.get('lock_waits'), [])],
            'row_locks': {'current_waits': stat('Innodb_row_lock_current_waits'),
                          'waits_total': stat('Innodb_row_lock_waits'), 'time_ms_total': stat('Innodb_row_lock_time')},
            'deadlocks': {'total': counters.get('deadlocks')},
            'transactions': {'longest': _j(raw.get('longest_transaction'), None),
                             'idle_in_transaction_longest': _j(raw.get('idle_in_transaction'), None)},
            'counters': counters,
        }
        snap['lock_waits'].sort(key=lambda w: -(w.get('wait_seconds') or 0))
        if digests:
            snap['statements'] = {'enabled': True, 'source': 'performance_schema digests',
                                  'tracked': raw.get('statements_tracked'),
                                  'by_total_time': _j(raw.get('by_total_time'), []),
                                  'by_mean_time': _j(raw.get('by_mean_time'), [])}
        else:
            snap['statements'] = {'enabled': False, 'by_total_time': [], 'by_mean_time': [],
                                  'how_to_enable': HOW_TO_ENABLE}
        snap['slow_log'] = self._slow_log(slow_enabled, float(long_time), outputs, slow_file, raw, options,
                                          stat('Slow_queries'))
        return snap

    @staticmethod
    def _wait(raw: Dict[str, Any]) -> Dict[str, Any]:
        idle = raw.get('blocker_command') == 'Sleep'
        blocker = {'pid': raw.get('blocker_pid'), 'user': raw.get('blocker_user'), 'query': raw.get('blocker_query'),
                   'transaction_seconds': raw.get('blocker_transaction_seconds'),
                   'state': 'idle in transaction' if idle else raw.get('blocker_state')}
        return {'pid': raw.get('pid'), 'user': raw.get('user'), 'database': raw.get('database'),
                'query': raw.get('query'), 'wait_seconds': _float(raw.get('wait_seconds')), 'blockers': [blocker]}

    def _slow_log(self, enabled: bool, long_time: float, outputs: List[str], path: str, raw: Dict[str, Any],
                  options: Options, total: Optional[int]) -> Dict[str, Any]:
        out: Dict[str, Any] = {'enabled': enabled, 'long_query_time': long_time, 'log_output': ','.join(outputs),
                               'slow_queries': total}
        if not enabled:
            out['how_to_enable'] = SLOW_LOG_HOW
            return out
        if 'TABLE' in outputs:
            out['last_day_count'] = raw.get('slow_log_count')
            out['slowest'] = [dict(e, seconds=_float(e.get('seconds'))) for e in _j(raw.get('slow_log'), [])]
        elif 'FILE' in outputs and path:
            out['file'] = path
            try:
                out.update(summarize_slow_log_file(path, options.top))
            except OpsReadyError as exc:
                # The file lives on the database host: readable only when insights run there as a user allowed to.
                out['file_error'] = exc.message
        return out

    def after_deltas(self, snap: Dict[str, Any], change: Dict[str, Any], options: Options) -> None:
        moved = snap['deadlocks'].get('since_last_sample')
        if not moved and not (moved is None and snap['deadlocks'].get('total')):
            return
        try:
            rows = self.client.query('SHOW ENGINE INNODB STATUS')
        except OpsReadyError as exc:   # needs the PROCESS privilege: say so, do not fail the run
            snap['deadlocks']['latest_error'] = 'SHOW ENGINE INNODB STATUS failed (it needs PROCESS): %s' % exc.message
            return
        text = rows[0][2] if rows and len(rows[0]) >= 3 else ''
        latest = latest_deadlock(text)
        if latest:
            snap['deadlocks']['latest'] = latest
            snap['deadlocks']['latest_summary'] = 'latest at %s between threads %s; rolled back transaction (%s)' % (
                latest['at'], ', '.join(str(t) for t in latest['threads']), latest['rolled_back'])


def _float(value: Any) -> Optional[float]:
    try:
        return None if value is None else round(float(value), 3)
    except (TypeError, ValueError):
        return None


__all__ = ['MySQLInsights', 'latest_deadlock', 'summarize_slow_log_file']
