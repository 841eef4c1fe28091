# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis insights: what INFO says about a cache, turned into verdicts and Prometheus gauges.

One ``INFO everything`` (a single round trip, consistent within itself) plus ``CONFIG GET maxclients`` when
INFO does not carry it. Counters (hits, misses, evictions, rejected connections, OOM-refused commands) are
cumulative since the server started: they are exported as counters (``_total``, as db_insights exports the
database servers' own), so Prometheus' ``rate()``/``increase()`` turns them into rates (a restart resets them),
and the verdicts here judge what the count says already
(one eviction is a finding for a cache that should not evict; a refused write is never normal).

Between runs (the ``redis`` check type of health_check, which keeps ``counters`` in the host's health history):
``apply_change`` adds the deltas since the previous sample (``insights/deltas.py``, as the database insights
do), and the verdicts then judge evictions, rejected connections, OOM refusals and the hit ratio over that
interval instead of since the server started, so a finding clears once the cause is gone. A restart (a new
``run_id``, or a counter lower than before) counts every counter from zero: never a negative rate.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
import time
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.client import (
    RedisClient, keyspace_keys)
from ansible_collections.opsready.operations.plugins.module_utils.health import prometheus
from ansible_collections.opsready.operations.plugins.module_utils.insights import deltas

SEVERITY = {'ok': 0, 'warning': 1, 'critical': 2}

DEFAULT_THRESHOLDS: Dict[str, float] = {
    'memory_warning': 0.85,          # used_memory / maxmemory
    'memory_critical': 0.95,         # with noeviction: writes are refused at 1.0
    'hit_ratio_warning': 0.80,       # keyspace hits / (hits + misses) ...
    'hit_ratio_min_lookups': 1000,   # ... judged only after this many lookups
    'evictions_warning': 1,          # evicted keys since start at or above: warning
    'clients_warning': 0.80,         # connected_clients / maxclients
    'clients_critical': 0.95,
    'blocked_clients_warning': 10,
    'rejected_connections_warning': 1,
    'replication_lag_warning': 10,   # seconds (replica: since the last I/O with its primary; primary: per replica)
    'replication_lag_critical': 60,
}


# Redis' cumulative counters kept in the history between runs (plus ``run_id``, which tells a restart).
COUNTERS = ('keyspace_hits', 'keyspace_misses', 'evicted_keys', 'rejected_connections', 'oom_rejected_commands')
ENGINE = 'redis'
PREFIX = 'opsready_redis_'


def parse_thresholds(user: Optional[Dict[str, Any]]) -> Dict[str, float]:
    """The defaults overlaid with the user's numbers; unknown keys and non-numbers are refused."""
    result = dict(DEFAULT_THRESHOLDS)
    unknown = sorted(set(user or {}) - set(result))
    if unknown:
        raise OpsReadyError('Unknown Redis threshold(s) %s: use %s.' % (', '.join(unknown), ', '.join(sorted(result))))
    for key, value in (user or {}).items():
        if isinstance(value, bool):
            raise OpsReadyError('Redis threshold %s must be a number, got %r.' % (key, value))
        try:
            result[key] = float(value)
        except (TypeError, ValueError):
            raise OpsReadyError('Redis threshold %s must be a number, got %r.' % (key, value))
    return result


def counters(facts: Dict[str, Any]) -> Dict[str, Any]:
    """What the history keeps of one sample."""
    kept: Dict[str, Any] = {name: facts[name] for name in COUNTERS if facts.get(name) is not None}
    if facts.get('run_id'):
        kept['run_id'] = facts['run_id']
    return kept


def apply_change(facts: Dict[str, Any], prev: Optional[Tuple[float, Dict[str, Any]]], now: float) -> Dict[str, Any]:
    """Add ``since_previous`` (interval, deltas, per-second rates, reset) and the interval's hit ratio to
    ``facts``; ``prev`` is ``deltas.previous``'s (time, counters). Returns the change ({} on a first run)."""
    restarted = False
    if prev is not None:
        before = prev[1].get('run_id')
        uptime = facts.get('uptime_seconds')
        if before and facts.get('run_id'):
            restarted = before != facts['run_id']
        elif uptime is not None:
            # Without run_ids (an older history line): an uptime shorter than the interval is a restart. Only
            # then: with run_ids, a wall clock that jumped ahead must not turn every counter into a burst.
            restarted = uptime < now - prev[0]
    change = deltas.compute(prev, now, counters(facts), restarted=restarted)
    facts['since_previous'] = change or None
    d = change.get('deltas') or {}
    if 'keyspace_hits' in d and 'keyspace_misses' in d:
        lookups = d['keyspace_hits'] + d['keyspace_misses']
        facts['interval_lookups'] = int(lookups)
        facts['interval_hit_ratio'] = d['keyspace_hits'] / float(lookups) if lookups else None
    return change


def _counted(facts: Dict[str, Any], name: str) -> Tuple[int, str, Optional[float]]:
    """(count, when, rate per second): since the previous run when known, else since the server started."""
    change = facts.get('since_previous') or {}
    if name in (change.get('deltas') or {}):
        return (int(change['deltas'][name]), 'in the last %ds' % round(change['interval_seconds']),
                change['rates'].get(name))
    return int(facts[name]), 'since it started', None


def _rate(rate: Optional[float]) -> str:
    return ' (%.3g/s)' % rate if rate else ''


def _num(info: Dict[str, str], key: str, default: Optional[float] = None) -> Optional[float]:
    try:
        return float(info[key])
    except (KeyError, ValueError):
        return default


def _fields(value: str) -> Dict[str, str]:
    return dict(part.split('=', 1) for part in value.split(',') if '=' in part)


def collect(client: RedisClient) -> Dict[str, Any]:
    """The facts (numbers, states) the verdicts and metrics are made of."""
    info = client.info('everything')
    maxclients = _num(info, 'maxclients')
    if maxclients is None:
        configured = client.config_get('maxclients')
        maxclients = float(configured) if configured and configured.isdigit() else None
    hits = _num(info, 'keyspace_hits', 0.0) or 0.0
    misses = _num(info, 'keyspace_misses', 0.0) or 0.0
    used = _num(info, 'used_memory', 0.0) or 0.0
    maxmemory = _num(info, 'maxmemory', 0.0) or 0.0
    oom = 0
    for key, value in info.items():
        if key == 'errorstat_OOM':
            oom = int(_fields(value).get('count', 0))
    role = info.get('role', 'unknown')
    replicas: List[Dict[str, Any]] = []
    for key, value in info.items():
        if re.match(r'^slave\d+$', key):
            f = _fields(value)
            replicas.append({'address': '%s:%s' % (f.get('ip', '?'), f.get('port', '?')), 'state': f.get('state'),
                             'lag_seconds': float(f['lag']) if f.get('lag', '').lstrip('-').isdigit() else None,
                             'lag_bytes': max(0, int(info.get('master_repl_offset', '0')) - int(f.get('offset', '0')))})
    facts: Dict[str, Any] = {
        'server_version': info.get('redis_version'),
        'run_id': info.get('run_id'),
        'uptime_seconds': _num(info, 'uptime_in_seconds'),
        'keys': keyspace_keys(info),
        'keyspace_hits': int(hits),
        'keyspace_misses': int(misses),
        'hit_ratio': hits / (hits + misses) if hits + misses else None,
        'used_memory_bytes': int(used),
        'maxmemory_bytes': int(maxmemory),
        'memory_used_ratio': used / maxmemory if maxmemory else None,
        'maxmemory_policy': info.get('maxmemory_policy'),
        'evicted_keys': int(_num(info, 'evicted_keys', 0) or 0),
        'oom_rejected_commands': oom,
        'connected_clients': int(_num(info, 'connected_clients', 0) or 0),
        'blocked_clients': int(_num(info, 'blocked_clients', 0) or 0),
        'maxclients': int(maxclients) if maxclients is not None else None,
        'rejected_connections': int(_num(info, 'rejected_connections', 0) or 0),
        'role': 'primary' if role == 'master' else ('replica' if role == 'slave' else role),
        'replicas': replicas,
        'master_link_status': info.get('master_link_status'),
        'master_last_io_seconds_ago': _num(info, 'master_last_io_seconds_ago'),
        'master_sync_in_progress': info.get('master_sync_in_progress') == '1',
        'rdb_last_bgsave_status': info.get('rdb_last_bgsave_status'),
        'rdb_last_save_time': _num(info, 'rdb_last_save_time'),
        'rdb_changes_since_last_save': int(_num(info, 'rdb_changes_since_last_save', 0) or 0),
        'rdb_bgsave_in_progress': info.get('rdb_bgsave_in_progress') == '1',
        'aof_enabled': info.get('aof_enabled') == '1',
        'aof_last_write_status': info.get('aof_last_write_status'),
        'aof_last_bgrewrite_status': info.get('aof_last_bgrewrite_status'),
    }
    if facts['role'] == 'replica':
        # A replica's own lag: seconds since the last byte from its primary (-1 or absent while the link is down).
        facts['replication_lag_seconds'] = facts['master_last_io_seconds_ago']
        primary_offset = _num(info, 'master_repl_offset')
        replica_offset = _num(info, 'slave_repl_offset')
        facts['replication_lag_bytes'] = (max(0, int(primary_offset - replica_offset))
                                          if primary_offset is not None and replica_offset is not None else None)
    return facts


def _finding(findings: List[Dict[str, Any]], name: str, severity: str, message: str, **values: Any) -> None:
    findings.append(dict(name=name, severity=severity, message=message, **values))


def evaluate(facts: Dict[str, Any], th: Dict[str, float]) -> Tuple[str, List[Dict[str, Any]]]:
    """(verdict, findings): each finding names what to look at."""
    f: List[Dict[str, Any]] = []
    ratio = facts['memory_used_ratio']
    policy = facts['maxmemory_policy'] or ''
    oom, oom_when, _oom_rate = _counted(facts, 'oom_rejected_commands')
    if oom and policy == 'noeviction' and ratio is not None and ratio >= th['memory_warning']:
        _finding(f, 'memory', 'critical',
                 'Redis out of memory: %d write(s) refused with OOM %s, used_memory %d of maxmemory %d bytes, policy '
                 'noeviction. Raise maxmemory, delete or expire keys, or choose an eviction policy (allkeys-lru) '
                 'if this is a cache.' % (oom, oom_when, facts['used_memory_bytes'], facts['maxmemory_bytes']),
                 value=ratio)
    elif ratio is not None and policy == 'noeviction' and ratio >= th['memory_critical']:
        _finding(f, 'memory', 'critical',
                 'Redis out of memory: used_memory is %.0f%% of maxmemory with policy noeviction; writes are '
                 'refused at 100%%. Raise maxmemory or free keys.' % (ratio * 100), value=ratio)
    elif ratio is not None and policy == 'noeviction' and ratio >= th['memory_warning']:
        _finding(f, 'memory', 'warning', 'used_memory is %.0f%% of maxmemory (policy noeviction: writes are refused '
                 'at 100%%).' % (ratio * 100), value=ratio)
    evicted, when, rate = _counted(facts, 'evicted_keys')
    if evicted >= th['evictions_warning'] and th['evictions_warning'] > 0:
        _finding(f, 'evictions', 'warning',
                 'Redis evicted %d keys %s%s (policy %s, used_memory %d of maxmemory %d): the cache '
                 'is too small for its working set; raise maxmemory or shorten TTLs.'
                 % (evicted, when, _rate(rate), policy, facts['used_memory_bytes'], facts['maxmemory_bytes']),
                 value=evicted, rate_per_second=rate)
    if 'interval_lookups' in facts:
        # The interval's ratio: a cache that turned cold an hour ago is not hidden by a month of hits.
        hit_ratio, lookups, when = facts['interval_hit_ratio'], facts['interval_lookups'], 'in the last %ds' % round(
            facts['since_previous']['interval_seconds'])
    else:
        hit_ratio, lookups = facts['hit_ratio'], facts['keyspace_hits'] + facts['keyspace_misses']
        when = 'since it started'
    if hit_ratio is not None and lookups >= th['hit_ratio_min_lookups'] and hit_ratio < th['hit_ratio_warning']:
        _finding(f, 'hit_ratio', 'warning', 'Cache hit ratio is %.1f%% over %d lookups %s (below %.0f%%).'
                 % (hit_ratio * 100, lookups, when, th['hit_ratio_warning'] * 100), value=hit_ratio)
    if facts['maxclients']:
        used = facts['connected_clients'] / float(facts['maxclients'])
        for level in ('critical', 'warning'):
            if used >= th['clients_%s' % level]:
                _finding(f, 'clients', level, 'Redis connection pool %s: %d of maxclients %d connected.'
                         % ('exhausted' if level == 'critical' else 'nearly full', facts['connected_clients'],
                            facts['maxclients']), value=used)
                break
    rejected, when, rate = _counted(facts, 'rejected_connections')
    if rejected >= th['rejected_connections_warning'] > 0:
        _finding(f, 'rejected_connections', 'warning',
                 'Redis rejected %d connections %s%s (maxclients %s reached): connection pool '
                 'exhausted; raise maxclients or find the client leaking connections (CLIENT LIST).'
                 % (rejected, when, _rate(rate), facts['maxclients']), value=rejected, rate_per_second=rate)
    if facts['blocked_clients'] >= th['blocked_clients_warning'] > 0:
        _finding(f, 'blocked_clients', 'warning', '%d clients are blocked (BLPOP, WAIT, ...).'
                 % facts['blocked_clients'], value=facts['blocked_clients'])
    if facts['role'] == 'replica':
        if facts['master_link_status'] != 'up':
            _finding(f, 'replication', 'critical', 'Replica link to its primary is %s%s.'
                     % (facts['master_link_status'], ' (sync in progress)' if facts['master_sync_in_progress'] else ''))
        else:
            lag = facts.get('replication_lag_seconds')
            for level in ('critical', 'warning'):
                if lag is not None and lag >= th['replication_lag_%s' % level]:
                    _finding(f, 'replication', level, 'Replica last heard from its primary %ds ago.' % lag, value=lag)
                    break
    for replica in facts['replicas']:
        lag = replica['lag_seconds']
        for level in ('critical', 'warning'):
            if lag is not None and lag >= th['replication_lag_%s' % level]:
                _finding(f, 'replication', level, 'Replica %s lags %ds behind (state %s).'
                         % (replica['address'], lag, replica['state']), value=lag)
                break
    if facts['rdb_last_bgsave_status'] not in (None, 'ok'):
        _finding(f, 'rdb', 'critical', 'The last RDB save failed (rdb_last_bgsave_status %s): with '
                 'stop-writes-on-bgsave-error Redis refuses writes; see the Redis log (disk full, permissions).'
                 % facts['rdb_last_bgsave_status'])
    if facts['aof_enabled']:
        for key in ('aof_last_write_status', 'aof_last_bgrewrite_status'):
            if facts[key] not in (None, 'ok'):
                _finding(f, 'aof', 'critical', 'AOF %s is %s: see the Redis log (disk full, fsync errors).'
                         % (key, facts[key]))
    worst = max((SEVERITY[x['severity']] for x in f), default=0)
    return [k for k, v in SEVERITY.items() if v == worst][0], f


def add_facts(add: Any, facts: Optional[Dict[str, Any]], verdict: str, findings: List[Dict[str, Any]],
              labels: Dict[str, str]) -> None:
    """The samples of one server: ``add(name, help, value, labels, kind)``, ``name`` without ``opsready_redis_``."""
    add('verdict', 'Verdict of the last run: 0 ok, 1 warning, 2 critical.', SEVERITY[verdict], labels)
    worst: Dict[str, int] = {}
    for item in findings:
        worst[item['name']] = max(worst.get(item['name'], 0), SEVERITY[item['severity']])
    for name, rank in sorted(worst.items()):
        add('finding_severity', 'Worst finding per area: 1 warning, 2 critical.', rank, dict(labels, finding=name))
    if facts is None:
        return

    def one(name: str, help_text: str, value: Any, kind: str = 'gauge') -> None:
        add(name, help_text, value, labels, kind)

    one('keys', 'Keys in every database.', facts['keys'])
    one('keyspace_hits_total', 'Successful key lookups since start.', facts['keyspace_hits'], 'counter')
    one('keyspace_misses_total', 'Failed key lookups since start.', facts['keyspace_misses'], 'counter')
    one('hit_ratio', 'Hits of lookups since start, 0-1.', facts['hit_ratio'])
    one('memory_used_bytes', 'used_memory.', facts['used_memory_bytes'])
    one('memory_max_bytes', 'maxmemory (0: no limit).', facts['maxmemory_bytes'])
    one('memory_used_ratio', 'used_memory of maxmemory, 0-1 (absent without a limit).',
        min(1.0, facts['memory_used_ratio']) if facts['memory_used_ratio'] is not None else None)
    one('evicted_keys_total', 'Keys evicted since start.', facts['evicted_keys'], 'counter')
    one('oom_rejected_commands_total', 'Commands refused with OOM since start.', facts['oom_rejected_commands'],
        'counter')
    one('clients_connected', 'Connected clients.', facts['connected_clients'])
    one('clients_blocked', 'Clients blocked in a blocking command.', facts['blocked_clients'])
    one('clients_max', 'maxclients.', facts['maxclients'])
    one('rejected_connections_total', 'Connections refused at maxclients since start.',
        facts['rejected_connections'], 'counter')
    one('is_primary', '1 on a primary, 0 on a replica.', 1 if facts['role'] == 'primary' else 0)
    one('replicas', 'Replicas connected to this primary.', len(facts['replicas']))
    one('replication_lag_seconds', 'Replica: seconds since the last I/O with its primary.',
        facts.get('replication_lag_seconds'))
    one('replication_lag_bytes', 'Replica: replication offset behind its primary.', facts.get('replication_lag_bytes'))
    for replica in facts['replicas']:
        add('replica_lag_seconds', 'Primary side: lag each replica reports.', replica['lag_seconds'],
            dict(labels, replica=replica['address']))
    one('rdb_last_save_ok', '1 when the last RDB save succeeded.',
        None if facts['rdb_last_bgsave_status'] is None else int(facts['rdb_last_bgsave_status'] == 'ok'))
    one('rdb_last_save_timestamp_seconds', 'Unix time of the last successful RDB save.',
        facts['rdb_last_save_time'] if facts['rdb_last_save_time'] and facts['rdb_last_save_time'] > 1e9 else None)
    one('rdb_changes_since_last_save', 'Writes not in the last RDB.', facts['rdb_changes_since_last_save'])
    one('aof_enabled', '1 when the AOF is on.', int(facts['aof_enabled']))
    one('aof_last_write_ok', '1 when the last AOF write succeeded.',
        int(facts['aof_last_write_status'] == 'ok') if facts['aof_enabled'] else None)
    change = facts.get('since_previous') or {}
    one('sample_interval_seconds', 'Seconds since the previous sample of this server (health history).',
        change.get('interval_seconds'))
    for name, rate in sorted((change.get('rates') or {}).items()):
        add('rate_per_second', 'Per-second rate of a Redis counter since the previous sample.', rate,
            dict(labels, statistic=name))
    one('interval_hit_ratio', 'Hits of lookups since the previous sample, 0-1.', facts.get('interval_hit_ratio'))


def render_metrics(server: str, facts: Optional[Dict[str, Any]], verdict: str,
                   findings: List[Dict[str, Any]], now: Optional[float] = None) -> str:
    """node_exporter textfile (docs/metrics.md, ``opsready_redis_*``); every sample labelled ``server``."""
    exp = prometheus.Exposition(prefix=PREFIX)
    labels = {'server': server}
    exp.add('up', '1 when Redis answered INFO.', 1 if facts is not None else 0, labels)
    exp.add('last_run_timestamp_seconds', 'Unix time of the last run.', float(now or time.time()), labels)
    add_facts(exp.add, facts, verdict, findings, labels)
    return exp.render()
