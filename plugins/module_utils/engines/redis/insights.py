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

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
import time
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.client import (
    RedisClient, keyspace_keys)

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
    if facts['oom_rejected_commands'] and policy == 'noeviction' and ratio is not None \
            and ratio >= th['memory_warning']:
        _finding(f, 'memory', 'critical',
                 'Redis out of memory: %d write(s) refused with OOM, used_memory %d of maxmemory %d bytes, policy '
                 'noeviction. Raise maxmemory, delete or expire keys, or choose an eviction policy (allkeys-lru) '
                 'if this is a cache.' % (facts['oom_rejected_commands'], facts['used_memory_bytes'],
                                          facts['maxmemory_bytes']), value=ratio)
    elif ratio is not None and policy == 'noeviction' and ratio >= th['memory_critical']:
        _finding(f, 'memory', 'critical',
                 'Redis out of memory: used_memory is %.0f%% of maxmemory with policy noeviction; writes are '
                 'refused at 100%%. Raise maxmemory or free keys.' % (ratio * 100), value=ratio)
    elif ratio is not None and policy == 'noeviction' and ratio >= th['memory_warning']:
        _finding(f, 'memory', 'warning', 'used_memory is %.0f%% of maxmemory (policy noeviction: writes are refused '
                 'at 100%%).' % (ratio * 100), value=ratio)
    if facts['evicted_keys'] >= th['evictions_warning'] and th['evictions_warning'] > 0:
        _finding(f, 'evictions', 'warning',
                 'Redis evicted %d keys since it started (policy %s, used_memory %d of maxmemory %d): the cache '
                 'is too small for its working set; raise maxmemory or shorten TTLs.'
                 % (facts['evicted_keys'], policy, facts['used_memory_bytes'], facts['maxmemory_bytes']),
                 value=facts['evicted_keys'])
    lookups = facts['keyspace_hits'] + facts['keyspace_misses']
    if facts['hit_ratio'] is not None and lookups >= th['hit_ratio_min_lookups'] \
            and facts['hit_ratio'] < th['hit_ratio_warning']:
        _finding(f, 'hit_ratio', 'warning', 'Cache hit ratio is %.1f%% over %d lookups (below %.0f%%).'
                 % (facts['hit_ratio'] * 100, lookups, th['hit_ratio_warning'] * 100), value=facts['hit_ratio'])
    if facts['maxclients']:
        used = facts['connected_clients'] / float(facts['maxclients'])
        for level in ('critical', 'warning'):
            if used >= th['clients_%s' % level]:
                _finding(f, 'clients', level, 'Redis connection pool %s: %d of maxclients %d connected.'
                         % ('exhausted' if level == 'critical' else 'nearly full', facts['connected_clients'],
                            facts['maxclients']), value=used)
                break
    if facts['rejected_connections'] >= th['rejected_connections_warning'] > 0:
        _finding(f, 'rejected_connections', 'warning',
                 'Redis rejected %d connections since it started (maxclients %s reached): connection pool '
                 'exhausted; raise maxclients or find the client leaking connections (CLIENT LIST).'
                 % (facts['rejected_connections'], facts['maxclients']), value=facts['rejected_connections'])
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


def _escape(value: str) -> str:
    return value.replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


def render_metrics(server: str, facts: Optional[Dict[str, Any]], verdict: str,
                   findings: List[Dict[str, Any]], now: Optional[float] = None) -> str:
    """node_exporter textfile (docs/metrics.md, ``opsready_redis_*``); every sample labelled ``server``."""
    label = 'server="%s"' % _escape(server)
    lines: List[str] = []

    def gauge(name: str, help_text: str, samples: List[Tuple[str, Any]], kind: str = 'gauge') -> None:
        samples = [(extra, value) for extra, value in samples if value is not None]
        if not samples:
            return
        lines.append('# HELP opsready_redis_%s %s' % (name, help_text))
        lines.append('# TYPE opsready_redis_%s %s' % (name, kind))
        for extra, value in samples:
            labels = label + (',' + extra if extra else '')
            number = repr(float(value)) if isinstance(value, float) else str(int(value))
            lines.append('opsready_redis_%s{%s} %s' % (name, labels, number))

    gauge('up', '1 when Redis answered INFO.', [('', 1 if facts is not None else 0)])
    gauge('verdict', 'Verdict of the last run: 0 ok, 1 warning, 2 critical.', [('', SEVERITY[verdict])])
    gauge('last_run_timestamp_seconds', 'Unix time of the last run.', [('', float(now or time.time()))])
    worst: Dict[str, int] = {}
    for item in findings:
        worst[item['name']] = max(worst.get(item['name'], 0), SEVERITY[item['severity']])
    gauge('finding_severity', 'Worst finding per area: 1 warning, 2 critical.',
          [('finding="%s"' % _escape(k), v) for k, v in sorted(worst.items())])
    if facts is None:
        return '\n'.join(lines) + '\n'
    gauge('keys', 'Keys in every database.', [('', facts['keys'])])
    gauge('keyspace_hits_total', 'Successful key lookups since start.', [('', facts['keyspace_hits'])], 'counter')
    gauge('keyspace_misses_total', 'Failed key lookups since start.', [('', facts['keyspace_misses'])], 'counter')
    gauge('hit_ratio', 'Hits of lookups since start, 0-1.', [('', facts['hit_ratio'])])
    gauge('memory_used_bytes', 'used_memory.', [('', facts['used_memory_bytes'])])
    gauge('memory_max_bytes', 'maxmemory (0: no limit).', [('', facts['maxmemory_bytes'])])
    gauge('memory_used_ratio', 'used_memory of maxmemory, 0-1 (absent without a limit).',
          [('', min(1.0, facts['memory_used_ratio']) if facts['memory_used_ratio'] is not None else None)])
    gauge('evicted_keys_total', 'Keys evicted since start.', [('', facts['evicted_keys'])], 'counter')
    gauge('oom_rejected_commands_total', 'Commands refused with OOM since start.',
          [('', facts['oom_rejected_commands'])], 'counter')
    gauge('clients_connected', 'Connected clients.', [('', facts['connected_clients'])])
    gauge('clients_blocked', 'Clients blocked in a blocking command.', [('', facts['blocked_clients'])])
    gauge('clients_max', 'maxclients.', [('', facts['maxclients'])])
    gauge('rejected_connections_total', 'Connections refused at maxclients since start.',
          [('', facts['rejected_connections'])], 'counter')
    gauge('is_primary', '1 on a primary, 0 on a replica.', [('', 1 if facts['role'] == 'primary' else 0)])
    gauge('replicas', 'Replicas connected to this primary.', [('', len(facts['replicas']))])
    gauge('replication_lag_seconds', 'Replica: seconds since the last I/O with its primary.',
          [('', facts.get('replication_lag_seconds'))])
    gauge('replication_lag_bytes', 'Replica: replication offset behind its primary.',
          [('', facts.get('replication_lag_bytes'))])
    gauge('replica_lag_seconds', 'Primary side: lag each replica reports.',
          [('replica="%s"' % _escape(r['address']), r['lag_seconds']) for r in facts['replicas']])
    gauge('rdb_last_save_ok', '1 when the last RDB save succeeded.',
          [('', None if facts['rdb_last_bgsave_status'] is None else int(facts['rdb_last_bgsave_status'] == 'ok'))])
    gauge('rdb_last_save_timestamp_seconds', 'Unix time of the last successful RDB save.',
          [('', facts['rdb_last_save_time'] if facts['rdb_last_save_time'] and facts['rdb_last_save_time'] > 1e9
            else None)])
    gauge('rdb_changes_since_last_save', 'Writes not in the last RDB.', [('', facts['rdb_changes_since_last_save'])])
    gauge('aof_enabled', '1 when the AOF is on.', [('', int(facts['aof_enabled']))])
    gauge('aof_last_write_ok', '1 when the last AOF write succeeded.',
          [('', int(facts['aof_last_write_status'] == 'ok') if facts['aof_enabled'] else None)])
    return '\n'.join(lines) + '\n'
