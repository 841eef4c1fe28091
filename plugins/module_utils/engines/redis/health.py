# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``redis`` check type of health_check: a Redis server's insights (memory against maxmemory and the
eviction policy, evictions, hit ratio, clients, rejected connections, replication, persistence) as findings.

The facts and verdicts are ``engines/redis/insights`` (what M(redis_insights) reports); this file maps a check
spec to them and keeps Redis' counters in the host's health history (``reads_history``: the health run hands
the history over, and ``history.sample`` appends this run's ``counters`` under ``key``), so evictions, rejected
connections, OOM refusals and the hit ratio are judged over the interval since the previous run
(``insights/deltas.py``) rather than since Redis started. The textfile gets the ``opsready_redis_*`` samples
of each check (labels ``check`` and ``server``) next to the health families.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import insights
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.client import (
    DEFAULT_PORT, RedisClient, RedisConnection)
from ansible_collections.opsready.operations.plugins.module_utils.health import prometheus
from ansible_collections.opsready.operations.plugins.module_utils.health.checks import CheckType, register
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import Threshold, finding
from ansible_collections.opsready.operations.plugins.module_utils.insights import deltas

# A Redis finding's area -> the health condition (incidents, auto_recovery and alert rules key on these).
# Replication reuses the replication check's conditions; a Redis that does not answer is not a
# database_connection, which auto_recovery would answer by restarting the database service.
CONDITIONS = {
    'memory': 'redis_memory',
    'evictions': 'redis_evictions',
    'hit_ratio': 'redis_hit_ratio',
    'clients': 'redis_clients',
    'rejected_connections': 'redis_rejected_connections',
    'blocked_clients': 'redis_blocked_clients',
    'rdb': 'redis_persistence',
    'aof': 'redis_persistence',
}
DOWN = 'redis_connection'


def condition_of(item: Dict[str, Any]) -> str:
    if item['name'] == 'replication':
        return 'replication_lag' if item.get('value') is not None else 'replication_stopped'
    return CONDITIONS.get(item['name'], 'redis_' + item['name'])


@register
class RedisCheck(CheckType):
    type_name = 'redis'
    # host/port/user/password/unix_socket/ca_path are the other types' options, spelled the same.
    options = {
        'host': {'type': 'str'},
        'port': {'type': 'int'},
        'unix_socket': {'type': 'path'},
        'user': {'type': 'str'},
        'password': {'type': 'str', 'no_log': True},
        'tls': {'type': 'bool'},
        'ca_path': {'type': 'path'},
        'redis_thresholds': {'type': 'dict'},
    }
    exclusive = (('host', 'unix_socket'),)
    down_condition = DOWN
    reads_history = True

    def default_name(self, spec: Dict[str, Any]) -> str:
        return 'redis:%s' % self.connection(spec).label()

    def validate(self, spec: Dict[str, Any]) -> None:
        insights.parse_thresholds(spec.get('redis_thresholds'))
        if spec.get('ca_path') and not spec.get('tls'):
            raise OpsReadyError('ca_path applies to a redis check only with tls: true.')

    def overall_timeout(self, spec: Dict[str, Any]) -> float:
        # INFO, and CONFIG GET maxclients when INFO lacks it: each bounded by the timeout.
        return float(spec['timeout']) * 2 + 1.0

    @staticmethod
    def connection(spec: Dict[str, Any]) -> RedisConnection:
        return RedisConnection(host=spec.get('host') or '127.0.0.1', port=spec.get('port') or DEFAULT_PORT,
                               unix_socket=spec.get('unix_socket'), username=spec.get('user'),
                               password=spec.get('password'), tls=bool(spec.get('tls')), cacert=spec.get('ca_path'),
                               connect_timeout=max(1, int(math.ceil(spec['timeout']))))

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        conn = self.connection(spec)
        label = conn.label()
        key = deltas.series_key(insights.ENGINE, label)
        start = time.monotonic()
        try:
            facts = insights.collect(RedisClient(conn, command_timeout=float(spec['timeout'])))
            latency = round((time.monotonic() - start) * 1000.0, 2)
            now = time.time()
            insights.apply_change(facts, deltas.previous(spec.get('_history_path'), key), now)
        except OpsReadyError as exc:
            return {'ok': False, 'latency_ms': None, 'condition': DOWN, 'server': label,
                    'message': 'Redis check %s failed: %s' % (spec['name'], exc.message)}
        verdict, found = insights.evaluate(facts, insights.parse_thresholds(spec.get('redis_thresholds')))
        found.sort(key=lambda f: -insights.SEVERITY[f['severity']])
        worst = found[0]['message'] if found else 'no finding'
        return {'ok': True, 'latency_ms': latency, 'key': key, 'server': label, 'counters': insights.counters(facts),
                'verdict': verdict, 'redis': {'facts': facts, 'findings': found, 'verdict': verdict},
                'message': 'Redis %s: %s (%s).' % (label, verdict, worst)}

    def evaluate(self, spec: Dict[str, Any], result: Dict[str, Any], th: Dict[str, Threshold]) -> List[Dict[str, Any]]:
        if not result.get('ok'):
            return super().evaluate(spec, result, th)
        extra: Dict[str, Any] = {'type': self.type_name, 'engine': insights.ENGINE, 'server': result['server']}
        if spec.get('unit'):
            extra['unit'] = spec['unit']
        out = []
        for item in result['redis']['findings']:
            more = {'rate_per_second': item['rate_per_second']} if item.get('rate_per_second') is not None else {}
            out.append(finding(spec['name'], condition_of(item), item.get('value'), None, item['severity'],
                               item['message'], area=item['name'], **dict(extra, **more)))
        return out


def expose(exp: prometheus.Exposition, check: Dict[str, Any]) -> None:
    """The check's ``opsready_redis_*`` samples in the health textfile (labels check, server)."""
    if not check.get('ok') or not check.get('redis'):
        return
    snap = check['redis']

    def add(name: str, help_text: str, value: Any, labels: Dict[str, str], kind: str = 'gauge') -> None:
        exp.add_as(insights.PREFIX + name, help_text, value, labels, kind)

    insights.add_facts(add, snap['facts'], snap['verdict'], snap['findings'],
                       {'check': str(check['name']), 'server': str(check.get('server') or '')})


prometheus.EXPOSERS['redis'] = expose
