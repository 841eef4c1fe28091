# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus text exposition of database insights (``opsready_db_*``, docs/metrics.md).

Gauges in base units and 0-1 ratios like the health metrics; the server's own cumulative counters are
exposed as counters (``_total``) so Prometheus can take ``rate()`` itself, next to the deltas since the
previous run. Statement text never becomes a label (unbounded cardinality, and it may carry literals).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.health import prometheus
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import RANK

PREFIX = 'opsready_db_'


class DbExposition(prometheus.Exposition):
    """The health Exposition with the ``opsready_db_`` prefix."""

    def add(self, name: str, help_text: str, value: Any, labels: Optional[Dict[str, str]] = None,
            kind: str = 'gauge') -> None:
        if value is None:
            return
        family = self._families.setdefault(PREFIX + name, (help_text, kind, []))
        family[2].append((labels or {}, value))


def _ratio(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value) / 100.0, 6)


def add_snapshot(exp: DbExposition, snap: Dict[str, Any], labels: Dict[str, str]) -> None:
    """The samples of one server's snapshot (``labels``: engine, server and, for checks, check)."""
    conn = snap.get('connections') or {}
    exp.add('connections', 'Client connections open.', conn.get('used'), labels)
    exp.add('connections_max', 'Connections the server allows (max_connections).', conn.get('max'), labels)
    exp.add('connections_usage_ratio', 'Connections open, of max_connections (0-1).', _ratio(conn.get('percent')),
            labels)
    for item in conn.get('by_database') or []:
        exp.add('database_connections', 'Client connections open per database.', item.get('count'),
                dict(labels, database=str(item.get('database') or '')))
    for item in conn.get('by_user') or []:
        exp.add('user_connections', 'Client connections open per user.', item.get('count'),
                dict(labels, user=str(item.get('user') or '')))
    waits = snap.get('lock_waits') or []
    exp.add('lock_waiting_sessions', 'Sessions waiting for a lock.', len(waits), labels)
    exp.add('lock_wait_longest_seconds', 'Longest current wait for a lock.',
            max([w.get('wait_seconds') or 0 for w in waits] or [0]), labels)
    dl = snap.get('deadlocks') or {}
    exp.add('deadlocks_total', 'Deadlocks the server counted (cumulative).', dl.get('total'), labels, kind='counter')
    exp.add('deadlocks_since_last_run', 'Deadlocks since the previous insights run.', dl.get('since_last_sample'),
            labels)
    tx = snap.get('transactions') or {}
    exp.add('transaction_longest_seconds', 'Age of the oldest open transaction (0: none).',
            (tx.get('longest') or {}).get('seconds', 0), labels)
    exp.add('idle_in_transaction_longest_seconds', 'Longest time a session sits idle inside a transaction (0: none).',
            (tx.get('idle_in_transaction_longest') or {}).get('seconds', 0), labels)
    for slot in snap.get('replication_slots') or []:
        exp.add('replication_slot_retained_wal_bytes', 'WAL kept on disk for a replication slot.',
                slot.get('retained_bytes'), dict(labels, slot=str(slot.get('name'))))
        exp.add('replication_slot_active', '1 when a consumer is attached to the slot.', bool(slot.get('active')),
                dict(labels, slot=str(slot.get('name'))))
    cache = snap.get('cache') or {}
    exp.add('buffer_cache_hit_ratio', 'Buffer cache hits, of block accesses, since the server counted (0-1).',
            _ratio(cache.get('hit_percent')), labels)
    exp.add('buffer_cache_interval_hit_ratio', 'Buffer cache hits, of block accesses, since the previous run (0-1).',
            _ratio(cache.get('interval_hit_percent')), labels)
    for table in snap.get('bloat') or []:
        tl = dict(labels, table=str(table.get('table')))
        exp.add('table_size_bytes', 'Size of the largest tables (heap).', table.get('size_bytes'), tl)
        exp.add('table_bloat_bytes', 'Estimated space a rewrite would give back.', table.get('bloat_bytes'), tl)
    st = snap.get('statements') or {}
    exp.add('statements_enabled', '1 when statement statistics are collected (pg_stat_statements, '
            'performance_schema, query stats).', bool(st.get('enabled')), labels)
    if st.get('by_mean_time'):
        exp.add('statement_mean_seconds_max', 'Mean time of the slowest statement on average.',
                (st['by_mean_time'][0].get('mean_ms') or 0) / 1000.0, labels)
    slow = snap.get('slow_log') or {}
    if slow.get('slow_queries') is not None:
        exp.add('slow_queries_total', 'Statements the server counted as slow (cumulative).', slow['slow_queries'],
                labels, kind='counter')
    for wait in snap.get('waits') or []:
        exp.add('wait_seconds_total', 'Time spent waiting, per wait type (cumulative).',
                (wait.get('wait_time_ms') or 0) / 1000.0, dict(labels, wait_type=str(wait.get('wait_type'))),
                kind='counter')
    change = snap.get('since_previous') or {}
    exp.add('sample_interval_seconds', 'Seconds since the previous insights run of this server.',
            change.get('interval_seconds'), labels)
    for name, rate in sorted((change.get('rates') or {}).items()):
        exp.add('rate_per_second', 'Per-second rate of a server statistic since the previous run.', rate,
                dict(labels, statistic=name))


def build(results: List[Dict[str, Any]], timestamp: float) -> str:
    """The exposition of one db_insights run (one snapshot per server)."""
    exp = DbExposition()
    exp.add('last_run_timestamp_seconds', 'Unix time of the last insights run.', timestamp)
    for snap in results:
        labels = {'engine': str(snap.get('engine')), 'server': str(snap.get('server'))}
        exp.add('up', '1 when the server answered the insights queries.', 'error' not in snap, labels)
        if 'error' in snap:
            continue
        exp.add('verdict', 'Insights verdict: 0 ok, 1 warning, 2 critical.', RANK[snap['verdict']], labels)
        add_snapshot(exp, snap, labels)
    return exp.render()


def build_checks(snapshots: List[Dict[str, Any]]) -> str:
    """The ``opsready_db_*`` samples of health_check's insights checks (``check`` label: the check name),
    appended to the health textfile; the health run's own families say when it ran and whether it passed."""
    exp = DbExposition()
    for snap in snapshots:
        labels = {'engine': str(snap.get('engine')), 'server': str(snap.get('server')), 'check': str(snap['check'])}
        exp.add('verdict', 'Insights verdict: 0 ok, 1 warning, 2 critical.', RANK[snap['verdict']], labels)
        add_snapshot(exp, snap, labels)
    return exp.render() if snapshots else ''
