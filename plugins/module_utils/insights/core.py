# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Database insights: one collector per engine, one snapshot shape, deltas from the history, verdicts.

``engines/registry.get_insights(name, conn)`` returns the engine's ``Collector`` (``postgresql.py``,
``mysql.py``, ``sqlserver.py``); it queries through the engine's client from the registry (``get_client``)
and never builds a client command line or environment itself. ``collect`` returns a snapshot:

``connections``   used, max, percent, by_database, by_user, by_state
``lock_waits``    sessions waiting for a lock: pid, user, database, query, wait_seconds, blockers (pid, user,
                  state, query, transaction_seconds)
``deadlocks``     total (server counter), since_last_sample (from the history), latest_summary
``transactions``  longest, idle_in_transaction_longest (pid, user, seconds, query)
``replication_slots``, ``cache`` (hit_percent, accesses), ``bloat``, ``statements`` (enabled, how_to_enable,
                  by_total_time, by_mean_time), engine extras (``slow_log``, ``waits``)
``counters``      the cumulative counters kept in the history (deadlocks, cache_hits, cache_misses ...)

``run`` adds the deltas since the previous sample, the interval hit ratio and the findings.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.insights import deltas as deltas_mod
from ansible_collections.opsready.operations.plugins.module_utils.insights import verdicts

# Statement text kept in results: long enough to recognise a query, short enough for a report.
QUERY_CHARS = 300


@dataclass
class Options:
    database: Optional[str] = None      # where per-database views are read (PostgreSQL: bloat, pg_stat_statements)
    top: int = 10                       # statements per list
    bloat_tables: int = 10              # largest tables estimated for bloat
    lock_waits_max: int = 50            # waiting sessions listed
    waits_top: int = 10                 # SQL Server wait types listed

    def validate(self) -> None:
        for name in ('top', 'bloat_tables', 'lock_waits_max', 'waits_top'):
            value = getattr(self, name)
            if not 0 <= value <= 1000:
                raise OpsReadyError('%s must be between 0 and 1000 (got %s).' % (name, value))


class Collector:
    """One engine's insight queries through its client (``registry.get_client``); subclasses fill ``collect``."""

    engine_name = ''

    def __init__(self, client: Any) -> None:
        self.client = client

    @property
    def server(self) -> str:
        """The endpoint as the history and the metrics name it: host:port, or node:socket."""
        c = self.client.conn
        if c.unix_socket:
            return '%s:%s' % (socket.gethostname(), c.unix_socket)
        return '%s:%s' % (c.host or 'localhost', c.port or self.client.default_port or '')

    def collect(self, options: Options) -> Dict[str, Any]:
        raise NotImplementedError

    def after_deltas(self, snap: Dict[str, Any], change: Dict[str, Any], options: Options) -> None:
        """A second look once the deltas are known (MariaDB reads the latest deadlock only when one happened)."""


def percent(part: Optional[float], whole: Optional[float]) -> Optional[float]:
    if part is None or not whole:
        return None
    return round(100.0 * float(part) / float(whole), 2)


def _cache_from_counters(snap: Dict[str, Any], change: Dict[str, Any]) -> None:
    cache = snap.setdefault('cache', {})
    counters = snap.get('counters') or {}
    hits, misses = counters.get('cache_hits'), counters.get('cache_misses')
    if hits is not None and misses is not None and cache.get('hit_percent') is None:
        cache['accesses'] = hits + misses
        cache['hit_percent'] = percent(hits, hits + misses)
    d = change.get('deltas') or {}
    if 'cache_hits' in d and 'cache_misses' in d:
        cache['interval_accesses'] = d['cache_hits'] + d['cache_misses']
        cache['interval_hit_percent'] = percent(d['cache_hits'], d['cache_hits'] + d['cache_misses'])


def run(collector: Collector, options: Options, levels: Dict[str, verdicts.Level], check: str,
        history_path: Optional[str] = None, now: Optional[float] = None) -> Dict[str, Any]:
    """Collect, compare with the previous sample in ``history_path``, judge. Nothing is written here."""
    options.validate()
    started = time.monotonic()
    snap = collector.collect(options)
    taken = time.time() if now is None else now
    snap['engine'] = collector.engine_name
    snap['server'] = collector.server
    key = deltas_mod.series_key(collector.engine_name, collector.server)
    prev = deltas_mod.previous(history_path, key)
    change = deltas_mod.compute(prev, taken, snap.get('counters') or {})
    snap['key'] = key
    snap['since_previous'] = change or None
    dl = snap.setdefault('deadlocks', {})
    if change and 'deadlocks' in change['deltas']:
        dl['since_last_sample'] = int(change['deltas']['deadlocks'])
    else:
        dl.setdefault('since_last_sample', None)
    _cache_from_counters(snap, change)
    collector.after_deltas(snap, change, options)
    if change and snap.get('slow_log') is not None and 'slow_queries' in change['rates']:
        snap['slow_log']['per_minute'] = round(change['rates']['slow_queries'] * 60.0, 3)
    findings = verdicts.evaluate(check, snap, levels)
    snap['findings'] = findings
    snap['verdict'] = verdicts.verdict(findings)
    snap['timestamp'] = round(taken, 3)
    snap['duration_seconds'] = round(time.monotonic() - started, 3)
    return snap


def history_counters(results: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """The ``db`` part of a history line: each result's counters under its key."""
    return {r['key']: r['counters'] for r in results if r.get('key') and r.get('counters')}
