# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``insights`` check type of health_check: a database server's insights (connections, lock waits,
deadlocks since the previous run, long transactions, cache, statements) as findings of the health run.

The work is ``insights/core.run`` with the engine's collector from the registry; this file maps a check
spec to it. The previous run's counters come from the module's ``history_path`` (``reads_history``: the
health run hands it over), and the module appends this run's counters to the same history.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines import registry
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.health.checks import CheckType, register
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import Threshold
from ansible_collections.opsready.operations.plugins.module_utils.insights import core, verdicts


@register
class InsightsCheck(CheckType):
    type_name = 'insights'
    # host/port/user/password/database are the db check's options, spelled the same (one suboption each).
    options = {
        'engine': {'type': 'str', 'choices': list(registry.INSIGHTS_ENGINES)},
        'host': {'type': 'str'},
        'port': {'type': 'int'},
        'user': {'type': 'str'},
        'password': {'type': 'str', 'no_log': True},
        'database': {'type': 'str'},
        'top_statements': {'type': 'int', 'default': 5},
        'insights_thresholds': {'type': 'dict'},
    }
    one_of = (('engine',),)
    down_condition = 'database_connection'
    reads_history = True

    def default_name(self, spec: Dict[str, Any]) -> str:
        return 'insights:%s@%s:%s' % (spec['engine'], spec.get('host') or 'localhost', spec.get('port') or '')

    def validate(self, spec: Dict[str, Any]) -> None:
        verdicts.parse(spec.get('insights_thresholds'))
        core.Options(top=spec['top_statements']).validate()

    def overall_timeout(self, spec: Dict[str, Any]) -> float:
        # Two or three queries, each bounded by the connect timeout plus what the server takes to answer.
        return float(spec['timeout']) * 3 + 1.0

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        conn = ConnectionParams(host=spec.get('host'), port=spec.get('port'), user=spec.get('user'),
                                password=spec.get('password'), connect_timeout=max(1, int(math.ceil(spec['timeout']))))
        start = time.monotonic()
        try:
            collector = registry.get_insights(spec['engine'], conn)
            snap = core.run(collector, core.Options(database=spec.get('database'), top=spec['top_statements']),
                            verdicts.parse(spec.get('insights_thresholds')), spec['name'],
                            history_path=spec.get('_history_path'))
        except OpsReadyError as exc:
            return {'ok': False, 'latency_ms': None, 'condition': 'database_connection',
                    'message': 'Insights of %s failed: %s' % (spec['name'], exc.message)}
        worst = snap['findings'][0]['message'] if snap['findings'] else 'no finding'
        return {'ok': True, 'latency_ms': round((time.monotonic() - start) * 1000.0, 2), 'key': snap['key'],
                'counters': snap.get('counters') or {}, 'verdict': snap['verdict'], 'insights': snap,
                'message': '%s %s: %s (%s).' % (spec['engine'], snap['server'], snap['verdict'], worst)}

    def evaluate(self, spec: Dict[str, Any], result: Dict[str, Any], th: Dict[str, Threshold]) -> List[Dict[str, Any]]:
        if not result.get('ok'):
            return super().evaluate(spec, result, th)
        found = [dict(f) for f in result['insights']['findings']]
        if spec.get('unit'):
            for item in found:
                item['unit'] = spec['unit']
        return found
