# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL Server insights from the dynamic management views: sys.dm_exec_query_stats top statements (the
operations document's slow-query query among them), blocking from sys.dm_exec_requests, sys.dm_os_wait_stats,
sessions vs @@MAX_CONNECTIONS, deadlocks and the buffer cache hit ratio from sys.dm_os_performance_counters.

NOT VERIFIED AGAINST A LIVE SQL SERVER: the statements and the call sequence are tested against the recording
fake of pyodbc (tests/unit/fakes/pyodbc_recording.py); see docs/insights.md. The connection and its errors
are the SQL Server client's (``connect``/``execute`` of ``engines/sqlserver/client.py``); it needs VIEW SERVER STATE.

The SQL here is built from constants and integers only (limits, text lengths): no name or value from the user
reaches it (``nosec B608`` marks those lines for bandit).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.insights.core import (
    QUERY_CHARS, Collector, Options, percent)

# The operations document's "Identify slow queries" (avg_elapsed_time DESC), limited to the top N; times are
# microseconds in the DMV.
SLOW_QUERY_SQL = (
    'SELECT TOP (?) qs.execution_count, qs.total_elapsed_time / qs.execution_count AS avg_elapsed_time, '  # nosec B608
    'qs.total_elapsed_time, qs.total_worker_time, qs.total_logical_reads, '
    'SUBSTRING(st.text, 1, %d) AS text, DB_NAME(st.dbid) AS database_name '
    'FROM sys.dm_exec_query_stats qs CROSS APPLY sys.dm_exec_sql_text(qs.sql_handle) st '
    'ORDER BY avg_elapsed_time DESC' % QUERY_CHARS)
TOP_TOTAL_SQL = SLOW_QUERY_SQL.replace('ORDER BY avg_elapsed_time DESC', 'ORDER BY qs.total_elapsed_time DESC')

BLOCKING_SQL = (
    'SELECT r.session_id, r.blocking_session_id, r.wait_type, r.wait_time, r.wait_resource, DB_NAME(r.database_id), '  # nosec B608
    's.login_name, SUBSTRING(t.text, 1, %d), bs.login_name, bs.status, SUBSTRING(bt.text, 1, %d), '
    'DATEDIFF(SECOND, bs.last_request_start_time, SYSDATETIME()) '
    'FROM sys.dm_exec_requests r JOIN sys.dm_exec_sessions s ON s.session_id = r.session_id '
    'OUTER APPLY sys.dm_exec_sql_text(r.sql_handle) t '
    'LEFT JOIN sys.dm_exec_sessions bs ON bs.session_id = r.blocking_session_id '
    'LEFT JOIN sys.dm_exec_connections bc ON bc.session_id = r.blocking_session_id '
    'OUTER APPLY sys.dm_exec_sql_text(bc.most_recent_sql_handle) bt '
    'WHERE r.blocking_session_id <> 0 ORDER BY r.wait_time DESC' % (QUERY_CHARS, QUERY_CHARS))

# Waits that are idle by design (the usual exclusion list, abridged): they say nothing about load.
BENIGN_WAITS = ('BROKER_EVENTHANDLER', 'BROKER_RECEIVE_WAITFOR', 'BROKER_TASK_STOP', 'BROKER_TO_FLUSH',
                'CHECKPOINT_QUEUE', 'CLR_AUTO_EVENT', 'CLR_MANUAL_EVENT', 'DIRTY_PAGE_POLL',
                'DISPATCHER_QUEUE_SEMAPHORE',
                'FT_IFTS_SCHEDULER_IDLE_WAIT', 'HADR_FILESTREAM_IOMGR_IOCOMPLETION', 'LAZYWRITER_SLEEP',
                'LOGMGR_QUEUE', 'ONDEMAND_TASK_QUEUE', 'REQUEST_FOR_DEADLOCK_SEARCH', 'SLEEP_TASK',
                'SLEEP_SYSTEMTASK', 'SP_SERVER_DIAGNOSTICS_SLEEP', 'SQLTRACE_BUFFER_FLUSH',
                'SQLTRACE_INCREMENTAL_FLUSH_SLEEP', 'WAITFOR', 'XE_DISPATCHER_WAIT', 'XE_TIMER_EVENT',
                'QDS_PERSIST_TASK_MAIN_LOOP_SLEEP', 'QDS_ASYNC_QUEUE', 'SOS_WORK_DISPATCHER')
WAITS_SQL = ('SELECT TOP (?) wait_type, waiting_tasks_count, wait_time_ms, signal_wait_time_ms '  # nosec B608
             'FROM sys.dm_os_wait_stats '
             'WHERE wait_time_ms > 0 AND wait_type NOT IN (%s) ORDER BY wait_time_ms DESC'
             % ', '.join("N'%s'" % w for w in BENIGN_WAITS))

SESSIONS_SQL = ('SELECT @@MAX_CONNECTIONS, (SELECT COUNT(*) FROM sys.dm_exec_sessions WHERE is_user_process = 1), '
                "CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128))")
BY_LOGIN_SQL = ('SELECT login_name, DB_NAME(database_id), COUNT(*) FROM sys.dm_exec_sessions WHERE is_user_process = 1 '
                'GROUP BY login_name, DB_NAME(database_id) ORDER BY COUNT(*) DESC')
COUNTERS_SQL = ('SELECT RTRIM(counter_name), RTRIM(instance_name), cntr_value FROM sys.dm_os_performance_counters '
                "WHERE (counter_name = N'Number of Deadlocks/sec' AND instance_name = N'_Total') "
                "OR counter_name IN (N'Buffer cache hit ratio', N'Buffer cache hit ratio base') "
                "OR (counter_name = N'Lock Waits/sec' AND instance_name = N'_Total')")
LONGEST_TX_SQL = ('SELECT TOP 1 st.session_id, s.login_name, s.status, DATEDIFF(SECOND, at.transaction_begin_time, '  # nosec B608
                  'SYSDATETIME()), SUBSTRING(t.text, 1, %d) FROM sys.dm_tran_active_transactions at '
                  'JOIN sys.dm_tran_session_transactions st ON st.transaction_id = at.transaction_id '
                  'JOIN sys.dm_exec_sessions s ON s.session_id = st.session_id '
                  'LEFT JOIN sys.dm_exec_connections c ON c.session_id = st.session_id '
                  'OUTER APPLY sys.dm_exec_sql_text(c.most_recent_sql_handle) t '
                  'ORDER BY at.transaction_begin_time' % QUERY_CHARS)


def _num(value: Any) -> Any:
    """pyodbc hands bigint as int and DECIMAL as Decimal: plain numbers for JSON."""
    if value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return float(value)


def _statement(row: List[Any]) -> Dict[str, Any]:
    calls, avg_us, total_us, worker_us, reads, text, database = [_num(v) for v in row]
    return {'query': text, 'database': database, 'calls': calls, 'mean_ms': round((avg_us or 0) / 1000.0, 3),
            'total_ms': round((total_us or 0) / 1000.0, 3), 'cpu_ms': round((worker_us or 0) / 1000.0, 3),
            'logical_reads': reads}


class SQLServerInsights(Collector):
    engine_name = 'sqlserver'

    def collect(self, options: Options) -> Dict[str, Any]:
        connection = self.client.connect()
        try:
            def rows(sql: str, *params: Any) -> List[List[Any]]:
                return [[_num(v) for v in r] for r in self.client.execute(connection, sql, tuple(params))]

            maximum, used, version = rows(SESSIONS_SQL)[0]
            by = rows(BY_LOGIN_SQL)
            blocking = rows(BLOCKING_SQL)
            by_mean = [_statement(r) for r in rows(SLOW_QUERY_SQL, options.top)] if options.top else []
            by_total = [_statement(r) for r in rows(TOP_TOTAL_SQL, options.top)] if options.top else []
            waits = rows(WAITS_SQL, options.waits_top) if options.waits_top else []
            perf = rows(COUNTERS_SQL)
            longest = rows(LONGEST_TX_SQL)
        finally:
            connection.close()
        users: Dict[str, int] = {}
        databases: Dict[str, int] = {}
        for login, database, count in by:
            users[login] = users.get(login, 0) + int(count)
            databases[database] = databases.get(database, 0) + int(count)
        counters: Dict[str, Any] = {}
        ratio: Optional[float] = None
        ratio_value = ratio_base = None
        for name, _instance, value in perf:
            if name == 'Number of Deadlocks/sec':
                counters['deadlocks'] = int(value)      # despite the name, a cumulative count
            elif name == 'Lock Waits/sec':
                counters['lock_waits'] = int(value)
            elif name == 'Buffer cache hit ratio':
                ratio_value = value
            elif name == 'Buffer cache hit ratio base':
                ratio_base = value
        if ratio_value is not None and ratio_base:
            ratio = percent(ratio_value, ratio_base)
        wait_list = [{'wait_type': w[0], 'waiting_tasks': w[1], 'wait_time_ms': w[2], 'signal_wait_time_ms': w[3]}
                     for w in waits]
        for wait in wait_list:
            counters['wait_ms:%s' % wait['wait_type']] = wait['wait_time_ms']
        snap: Dict[str, Any] = {
            'server_version': version,
            'connections': {'used': int(used), 'max': int(maximum), 'percent': percent(used, maximum),
                            'by_user': [{'user': k, 'count': v} for k, v in sorted(users.items(), key=lambda i: -i[1])],
                            'by_database': [{'database': k, 'count': v}
                                            for k, v in sorted(databases.items(), key=lambda i: -i[1])]},
            'lock_waits': [{'pid': b[0], 'wait_type': b[2], 'wait_seconds': round((b[3] or 0) / 1000.0, 3),
                            'resource': b[4], 'database': b[5], 'user': b[6], 'query': b[7],
                            'blockers': [{'pid': b[1], 'user': b[8], 'state': b[9], 'query': b[10],
                                          'transaction_seconds': b[11]}]}
                           for b in blocking[:options.lock_waits_max]],
            'deadlocks': {'total': counters.get('deadlocks')},
            'transactions': {'longest': ({'pid': longest[0][0], 'user': longest[0][1], 'state': longest[0][2],
                                          'seconds': longest[0][3], 'query': longest[0][4]} if longest else None),
                             'idle_in_transaction_longest': None},
            'cache': {'hit_percent': ratio, 'accesses': None},
            'waits': wait_list,
            'statements': {'enabled': True, 'source': 'sys.dm_exec_query_stats (plans in cache)',
                           'by_total_time': by_total, 'by_mean_time': by_mean},
            'counters': counters,
        }
        return snap


__all__ = ['SQLServerInsights', 'SLOW_QUERY_SQL']
