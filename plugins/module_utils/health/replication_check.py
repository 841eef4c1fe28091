# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``replication`` health check: a database node's replication status against thresholds.

The same assessment as the ``replication_info`` module (``replication/status.py``): each reason becomes a
finding with its condition (``replication_stopped``, ``replication_lag``, ``replication_slot``,
``replication_role``, ``replica_missing``, ``replication_config``, ``replication_paused``), so the verdict,
the incident path of the ``health`` role and the Prometheus textfile treat it like the host checks. A node that
cannot be reached is a ``database_connection`` finding.

Registered with ``checks.register`` when this module is imported (``health_check`` imports it).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    ConnectionParams, check_option_file)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import (
    REPLICATION_ENGINES, get_engine)
from ansible_collections.opsready.operations.plugins.module_utils.health import prometheus
from ansible_collections.opsready.operations.plugins.module_utils.health.checks import CheckType, register
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import (
    RANK, Threshold, finding)
from ansible_collections.opsready.operations.plugins.module_utils.replication import status as repl


@register
class ReplicationCheck(CheckType):
    type_name = 'replication'
    options = {
        'replication_engine': {'type': 'str', 'choices': list(REPLICATION_ENGINES)},
        # The same specs as the db check's options of these names (suboptions() refuses a conflict).
        'host': {'type': 'str'},
        'port': {'type': 'int'},
        'user': {'type': 'str'},
        'password': {'type': 'str', 'no_log': True},
        'database': {'type': 'str'},
        'unix_socket': {'type': 'path'},
        'option_file': {'type': 'path'},
        'max_lag_bytes': {'type': 'raw'},
        'max_lag_seconds': {'type': 'raw'},
        'max_slot_retained_bytes': {'type': 'raw'},
        'inactive_slot_severity': {'type': 'str', 'choices': ['ok', 'warning', 'critical']},
        'ignore_slots': {'type': 'list', 'elements': 'str'},
        'expected_role': {'type': 'str', 'choices': list(repl.EXPECTED_ROLES)},
        'min_replicas': {'type': 'int'},
    }
    one_of = (('replication_engine',),)
    exclusive = (('host', 'unix_socket'), ('password', 'option_file'))
    down_condition = 'database_connection'

    def default_name(self, spec: Dict[str, Any]) -> str:
        where = spec.get('unix_socket') or '%s:%s' % (spec.get('host') or 'localhost', spec.get('port') or '')
        return 'replication:%s@%s' % (spec['replication_engine'], where)

    def validate(self, spec: Dict[str, Any]) -> None:
        repl.Limits.from_params(spec)  # thresholds and expectations are checked before anything runs
        if spec.get('option_file'):
            check_option_file(spec['option_file'])

    def _connection(self, spec: Dict[str, Any]) -> ConnectionParams:
        return ConnectionParams(host=spec.get('host'), port=spec.get('port'), unix_socket=spec.get('unix_socket'),
                                user=spec.get('user'), password=spec.get('password'),
                                option_file=spec.get('option_file'),
                                connect_timeout=max(1, int(math.ceil(spec['timeout']))))

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        conn = self._connection(spec)
        runner = ToolRunner(secrets=[conn.password])
        started = time.monotonic()
        try:
            engine = get_engine(spec['replication_engine'], conn, runner)
            database = spec.get('database') if spec['replication_engine'] == 'postgresql' else None
            status = repl.gather(engine, repl.Limits.from_params(spec), database=database)
        except OpsReadyError as exc:
            text = runner.redact(exc.message).strip()
            return {'ok': False, 'latency_ms': None, 'condition': 'database_connection',
                    'timed_out': 'timed out' in text.lower(),
                    'message': 'Replication %s: cannot read the status: %s' % (spec['name'], text[-500:])}
        latency = round((time.monotonic() - started) * 1000.0, 2)
        summary = {k: status.get(k) for k in ('role', 'verdict', 'reasons', 'lag_bytes', 'lag_seconds', 'position',
                                              'timeline', 'read_only', 'replicas', 'upstream', 'slots')}
        worst = status['reasons'][0]['message'] if status['reasons'] else 'replication is healthy'
        return {'ok': status['verdict'] != repl.CRITICAL, 'latency_ms': latency, 'replication': summary,
                'message': '%s (%s): %s' % (spec['name'], status['role'], worst)}

    def evaluate(self, spec: Dict[str, Any], result: Dict[str, Any], th: Dict[str, Threshold]) -> List[Dict[str, Any]]:
        if 'replication' not in result:
            return super().evaluate(spec, result, th)
        extra: Dict[str, Any] = {'type': self.type_name, 'engine': spec['replication_engine'],
                                 'role': result['replication']['role']}
        if spec.get('unit'):
            extra['unit'] = spec['unit']
        found = []
        for r in result['replication']['reasons']:
            item = finding(spec['name'], r['condition'], r.get('value'), None, r['severity'], r['message'], **extra)
            item['threshold'] = r.get('threshold')
            if r.get('subject'):
                item['subject'] = r['subject']
            found.append(item)
        return found


def expose(exp: Any, check: Dict[str, Any]) -> None:
    """The replication series of one check result in the health textfile (docs/metrics.md)."""
    data = check.get('replication')
    if not data:
        return
    labels = {'check': check['name']}
    exp.add('replication_verdict', 'Replication verdict of the check: 0 ok, 1 warning, 2 critical.',
            RANK[data['verdict']], labels)
    exp.add('replication_is_primary', '1 when the node is a primary, 0 when it is a standby/replica.',
            data['role'] == 'primary', labels)
    exp.add('replication_lag_bytes', 'Standby: WAL bytes received or reported by the primary, not replayed yet.',
            data.get('lag_bytes'), labels)
    exp.add('replication_lag_seconds', 'Standby: replay lag in seconds (MariaDB/MySQL Seconds_Behind_Master).',
            data.get('lag_seconds'), labels)
    exp.add('replication_timeline', 'PostgreSQL timeline of the node.', data.get('timeline'), labels)
    up = data.get('upstream')
    if data['role'] == 'standby':
        if up is None:
            running = False
        elif 'io_running_ok' in up:
            running = bool(up['io_running_ok'] and up['sql_running_ok'])
        else:
            running = up.get('status') == 'streaming'
        exp.add('replication_upstream_up', 'Standby: 1 when it streams from its upstream (WAL receiver '
                'streaming; IO and SQL threads running).', running, labels)
    replicas = data.get('replicas') or []
    exp.add('replication_replicas', 'Downstream standbys/replicas connected to the node.', len(replicas), labels)
    for r in replicas:
        rl = dict(labels, replica=str(r.get('name') or r.get('client_addr') or ''))
        exp.add('replication_replica_lag_bytes', 'Primary side: WAL bytes a standby has not replayed.',
                r.get('lag_bytes'), rl)
        exp.add('replication_replica_lag_seconds', 'Primary side: a standby\'s replay lag (pg_stat_replication).',
                r.get('lag_seconds'), rl)
    for s in data.get('slots') or []:
        sl = dict(labels, slot=str(s.get('slot_name')))
        exp.add('replication_slot_active', '1 when a consumer is connected to the replication slot.',
                bool(s.get('active')), sl)
        exp.add('replication_slot_retained_bytes', 'WAL the replication slot holds back on the node.',
                s.get('retained_bytes'), sl)


prometheus.EXPOSERS['replication'] = expose
