# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Database insight thresholds and the findings a snapshot produces (engine-independent).

A snapshot (see ``core``) has the same shape for every engine; this file turns it into findings with
the health_check finding shape (check, condition, value, threshold, severity, message), so the
``insights`` check type of health_check, the ``db_insights`` module, incidents and auto_recovery read them
alike. A level is reached AT or above it (below it, for ``cache_hit_percent``): 18 of 20 connections is
90 %, the critical level, and one deadlock reaches the warning level of one.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import (
    CRITICAL, OK, RANK, WARNING, finding, sort_findings, threshold_number, worst)
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import fmt_number as _fmt

# (warning, critical); None switches a level off.
DEFAULTS: Dict[str, Tuple[Optional[float], Optional[float]]] = {
    'connections_percent': (80.0, 90.0),        # connections in use, of max_connections
    'lock_wait_seconds': (10.0, 120.0),         # the longest wait for a lock (row or relation)
    'deadlocks': (1.0, None),                   # deadlocks since the previous sample
    'transaction_seconds': (600.0, 3600.0),     # the oldest open transaction
    'idle_in_transaction_seconds': (60.0, 600.0),
    'replication_slot_retained_mb': (1024.0, 10240.0),
    'cache_hit_percent': (95.0, 90.0),          # lower is worse; only judged past MIN_CACHE_ACCESSES
    'bloat_percent': (50.0, None),              # only tables of at least MIN_BLOAT_TABLE_BYTES
    'statement_mean_ms': (None, None),          # the slowest statement on average (off by default)
    'slow_queries_per_minute': (None, None),    # MariaDB/MySQL Slow_queries rate (off by default)
}
LOWER_IS_WORSE = frozenset(['cache_hit_percent'])
PERCENT = frozenset(k for k in DEFAULTS if k.endswith('_percent'))
UNITS = {'lock_wait_seconds': ' s', 'transaction_seconds': ' s', 'idle_in_transaction_seconds': ' s',
         'replication_slot_retained_mb': ' MiB', 'statement_mean_ms': ' ms', 'deadlocks': '',
         'slow_queries_per_minute': '/min'}
# A hit ratio over a handful of reads says nothing (a fresh or idle server): judge it past this many accesses.
MIN_CACHE_ACCESSES = 10000
# Bloat of a small table costs nothing worth an alert.
MIN_BLOAT_TABLE_BYTES = 16 * 1024 * 1024


class Level:
    """One metric's warning and critical levels."""

    def __init__(self, name: str, warning: Optional[float], critical: Optional[float]) -> None:
        self.name = name
        self.warning = warning
        self.critical = critical
        self.lower_is_worse = name in LOWER_IS_WORSE

    def _reaches(self, value: float, level: Optional[float]) -> bool:
        if level is None:
            return False
        return value <= level if self.lower_is_worse else value >= level

    def evaluate(self, value: Optional[float]) -> str:
        if value is None:
            return OK
        if self._reaches(value, self.critical):
            return CRITICAL
        if self._reaches(value, self.warning):
            return WARNING
        return OK

    def level(self, severity: str) -> Optional[float]:
        return self.critical if severity == CRITICAL else self.warning

    def unit(self) -> str:
        return UNITS.get(self.name, ' %' if self.name in PERCENT else '')

    def as_dict(self) -> Dict[str, Optional[float]]:
        return {'warning': self.warning, 'critical': self.critical}


def _number(name: str, which: str, value: Any) -> Optional[float]:
    return threshold_number(name, which, value, PERCENT)


def parse(user: Optional[Dict[str, Any]]) -> Dict[str, Level]:
    """The defaults overlaid with the user's levels: ``{warning: W, critical: C}`` (either null = off) or a bare
    number meaning the critical level. Unknown names and inverted levels are refused before anything runs."""
    result = {name: Level(name, w, c) for name, (w, c) in DEFAULTS.items()}
    for name, value in (user or {}).items():
        if name not in DEFAULTS:
            raise OpsReadyError('Unknown insights threshold %r: use one of %s.' % (name, ', '.join(sorted(DEFAULTS))))
        level = result[name]
        if isinstance(value, dict):
            unknown = set(value) - {'warning', 'critical'}
            if unknown:
                raise OpsReadyError('thresholds.%s accepts only warning and critical, not %s.'
                                    % (name, ', '.join(sorted(unknown))))
            if 'warning' in value:
                level.warning = _number(name, 'warning', value['warning'])
            if 'critical' in value:
                level.critical = _number(name, 'critical', value['critical'])
        else:
            level.critical = _number(name, 'critical', value)
            if level.warning is not None and level.critical is not None:
                if (level.warning < level.critical) if level.lower_is_worse else (level.warning > level.critical):
                    level.warning = level.critical
        if level.warning is not None and level.critical is not None:
            if level.lower_is_worse and level.warning < level.critical:
                raise OpsReadyError('thresholds.%s: warning (%s) must not be below critical (%s); lower values are '
                                    'worse for this metric.' % (name, _fmt(level.warning), _fmt(level.critical)))
            if not level.lower_is_worse and level.warning > level.critical:
                raise OpsReadyError('thresholds.%s: warning (%s) must not be above critical (%s).'
                                    % (name, _fmt(level.warning), _fmt(level.critical)))
    return result


def _measure(check: str, condition: str, value: Optional[float], level: Level, what: str,
             detail: str = '', **extra: Any) -> List[Dict[str, Any]]:
    severity = level.evaluate(value)
    if severity == OK:
        return []
    sign = '<=' if level.lower_is_worse else '>='
    message = '%s is %s%s (%s at %s %s%s)%s' % (
        what, _fmt(value), level.unit(), severity, sign, _fmt(level.level(severity)), level.unit(),
        ': ' + detail if detail else '.')
    item = finding(check, condition, value, None, severity, message, **extra)
    item['threshold'] = level.level(severity)
    return [item]


def _who(session: Dict[str, Any]) -> str:
    parts = ['pid %s' % session.get('pid')]
    if session.get('user'):
        parts.append('user %s' % session['user'])
    if session.get('state'):
        parts.append(str(session['state']))
    query = (session.get('query') or '').strip()
    parts.append('query %r' % query[:120] if query else 'no statement running')
    return ', '.join(parts)


def evaluate(check: str, snap: Dict[str, Any], levels: Dict[str, Level]) -> List[Dict[str, Any]]:
    """Findings of one snapshot, worst first."""
    extra: Dict[str, Any] = {'type': 'insights', 'engine': snap.get('engine'), 'server': snap.get('server')}
    found: List[Dict[str, Any]] = []
    conn = snap.get('connections') or {}
    if conn.get('percent') is not None:
        found += _measure(check, 'db_connections', conn['percent'], levels['connections_percent'],
                          'Connections in use', '%s of max_connections %s; most by %s'
                          % (conn.get('used'), conn.get('max'), _top_user(conn)), **extra)
    waits = snap.get('lock_waits') or []
    if waits:
        longest = max(waits, key=lambda w: w.get('wait_seconds') or 0)
        blockers = '; '.join(_who(b) for b in longest.get('blockers') or []) or 'unknown blocker'
        detail = '%d session(s) waiting; pid %s waits on %s (blocked by %s)' % (
            len(waits), longest.get('pid'), (longest.get('query') or '')[:120] or 'a lock', blockers)
        found += _measure(check, 'lock_contention', longest.get('wait_seconds'), levels['lock_wait_seconds'],
                          'Longest lock wait', detail, blocking_pids=sorted({b.get('pid') for w in waits
                                                                            for b in w.get('blockers') or []
                                                                            if b.get('pid') is not None}),
                          **extra)
    dl = snap.get('deadlocks') or {}
    if dl.get('since_last_sample') is not None:
        found += _measure(check, 'deadlock', dl['since_last_sample'], levels['deadlocks'],
                          'Deadlocks since the previous sample', dl.get('latest_summary') or '', **extra)
    tx = snap.get('transactions') or {}
    if tx.get('longest'):
        found += _measure(check, 'long_transaction', tx['longest'].get('seconds'), levels['transaction_seconds'],
                          'Oldest open transaction', _who(tx['longest']), **extra)
    if tx.get('idle_in_transaction_longest'):
        item = tx['idle_in_transaction_longest']
        found += _measure(check, 'idle_in_transaction', item.get('seconds'), levels['idle_in_transaction_seconds'],
                          'Longest idle in transaction', _who(item), **extra)
    for slot in snap.get('replication_slots') or []:
        if slot.get('retained_bytes') is None:
            continue
        found += _measure(check, 'replication_slot', round(slot['retained_bytes'] / 1048576.0, 1),
                          levels['replication_slot_retained_mb'], 'WAL retained by slot %s' % slot.get('name'),
                          '%s slot; drop it if its consumer is gone (SELECT pg_drop_replication_slot(...))'
                          % ('an active' if slot.get('active') else 'an INACTIVE'), slot=slot.get('name'), **extra)
    cache = snap.get('cache') or {}
    ratio, accesses = cache.get('interval_hit_percent'), cache.get('interval_accesses')
    if ratio is None:
        ratio, accesses = cache.get('hit_percent'), cache.get('accesses')
    if ratio is not None and (accesses is None or accesses >= MIN_CACHE_ACCESSES):
        found += _measure(check, 'cache_hit', ratio, levels['cache_hit_percent'], 'Buffer cache hit ratio',
                          'over %s block accesses' % accesses if accesses is not None else '', **extra)
    for table in snap.get('bloat') or []:
        if (table.get('size_bytes') or 0) < MIN_BLOAT_TABLE_BYTES or table.get('bloat_percent') is None:
            continue
        found += _measure(check, 'table_bloat', table['bloat_percent'], levels['bloat_percent'],
                          'Estimated bloat of %s' % table.get('table'),
                          'about %d MiB of %d MiB; VACUUM (FULL) or pg_repack reclaims it'
                          % (table.get('bloat_bytes', 0) // 1048576, table['size_bytes'] // 1048576),
                          table=table.get('table'), **extra)
    statements = (snap.get('statements') or {}).get('by_mean_time') or []
    if statements:
        slowest = statements[0]
        found += _measure(check, 'slow_query', slowest.get('mean_ms'), levels['statement_mean_ms'],
                          'Slowest statement on average', repr((slowest.get('query') or '')[:120]), **extra)
    slow = snap.get('slow_log') or {}
    if slow.get('per_minute') is not None:
        found += _measure(check, 'slow_query', slow['per_minute'], levels['slow_queries_per_minute'],
                          'Slow queries per minute', '', **extra)
    return sort_findings(found)


def _top_user(conn: Dict[str, Any]) -> str:
    users = conn.get('by_user') or []
    if not users:
        return 'nobody'
    return ', '.join('%s (%s)' % (u.get('user'), u.get('count')) for u in users[:3])


def verdict(findings: List[Dict[str, Any]]) -> str:
    return worst([f['severity'] for f in findings])


__all__ = ['DEFAULTS', 'Level', 'parse', 'evaluate', 'verdict', 'RANK']
