# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SLO report as node_exporter textfile metrics (``opsready_slo_*``), for dashboards of budgets
computed from the health history (Prometheus itself has no such history to compute them from).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict

from ansible_collections.opsready.operations.plugins.module_utils.health.prometheus import Exposition
from ansible_collections.opsready.operations.plugins.module_utils.slo import budget, definitions
from ansible_collections.opsready.operations.plugins.module_utils.slo.sli import Event, Series

STATUS_VALUE = {'ok': 0, 'warning': 1, 'critical': 2, 'no_data': -1}


def build(report: Dict[str, Any], timestamp: float) -> str:
    exp = Exposition('opsready_slo_')
    exp.add('last_evaluation_timestamp_seconds', 'Unix time the SLOs were evaluated.', timestamp)
    for r in report['slos']:
        labels = {'slo': r['name'], 'service': r['service'], 'sli': r['sli']}
        exp.add('status', 'SLO status: 0 ok, 1 warning, 2 critical, -1 no data in the window.',
                STATUS_VALUE[r['status']], labels)
        exp.add('objective_ratio', 'Objective: the fraction of good events promised (0-1).', r['objective'] / 100.0,
                labels)
        if r['sli_percent'] is not None:
            exp.add('sli_ratio', 'Good events of all events over the SLO window (0-1).', r['sli_percent'] / 100.0,
                    labels)
        remaining = r['budget']['remaining_percent']
        if remaining is not None:
            exp.add('error_budget_remaining', 'Error budget left over the SLO window: 1 whole, 0 spent, below 0 '
                    'overspent.', remaining / 100.0, labels)
        for window, rate in sorted(r['burn_rates'].items()):
            exp.add('burn_rate', 'Bad fraction of the window divided by the error budget (1 spends it over the '
                    'SLO window).', rate, dict(labels, window=window))
        for alert in r['alerts']:
            exp.add('alert_firing', '1 when the multi-window burn-rate alert fires.', alert['firing'],
                    dict(labels, severity=alert['severity'], long_window=alert['long_window'],
                         short_window=alert['short_window']))
        exp.add('budget_alert_firing', '1 when the budget alert share of the error budget is spent.',
                r['budget']['alert'], labels)
    return exp.render()


def sample_text(timestamp: float) -> str:
    """Every family this module can write, for the metrics reference test (docs/metrics.md)."""
    slo = definitions.parse([{'name': 'api', 'sli': 'availability', 'objective': 99.95, 'check': 'api'}])[0]
    return build({'slos': [budget.evaluate(slo, Series([Event(timestamp, 9999, 10000)]), timestamp)]}, timestamp)
