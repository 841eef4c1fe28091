# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One SLO report: every SLO evaluated at one instant, from the health history or Prometheus.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import time
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common import timeutil
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health import history
from ansible_collections.opsready.operations.plugins.module_utils.slo import budget, prometheus_api, sli
from ansible_collections.opsready.operations.plugins.module_utils.slo.definitions import Slo

STATUS_ORDER = ('critical', 'warning', 'no_data', 'ok')


def evaluation_time(value: Optional[str]) -> float:
    """``now`` when unset; else an ISO 8601 time with a zone or Unix seconds (to re-run a past report)."""
    if value in (None, ''):
        return time.time()
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        return timeutil.parse_time(text, 'evaluation_time').timestamp()


def run(slos: List[Slo], now: float, history_path: Optional[str] = None, host: Optional[str] = None,
        client: Optional[prometheus_api.Client] = None, budget_alert_percent: float = 50.0) -> Dict[str, Any]:
    if not 0 < budget_alert_percent <= 100:
        raise OpsReadyError('budget_alert_percent must be in (0, 100], not %s.' % budget_alert_percent)
    if any(s.source == 'history' for s in slos) and not history_path:
        names = ', '.join(s.name for s in slos if s.source == 'history')
        raise OpsReadyError('SLO(s) %s read the health history: set history_path (health_check\'s history_path).'
                            % names)
    if any(s.source == 'prometheus' for s in slos) and client is None:
        names = ', '.join(s.name for s in slos if s.source == 'prometheus')
        raise OpsReadyError('SLO(s) %s read Prometheus: set prometheus_url.' % names)
    samples: List[Dict[str, Any]] = []
    skipped = 0
    if history_path and any(s.source == 'history' for s in slos):
        samples, skipped = history.load(history_path)
    results = []
    for slo in slos:
        if slo.source == 'history':
            series, runs = sli.history_series(slo, samples, host)
            result = budget.evaluate(slo, series, now, budget_alert_percent)
            result['probe_runs'] = runs
            if runs == 0:
                result['message'] = ('%s: the history %s has no probe of check %r%s: name a health_check check '
                                     '(health_checks[].name) and keep history_path set on the runs that probe it.'
                                     % (slo.name, history_path, slo.check, ' for host %s' % host if host else ''))
        else:
            if client is None:   # refused above; for the type checker
                raise OpsReadyError('SLO %s reads Prometheus: set prometheus_url.' % slo.name)
            pseries, end = prometheus_api.prometheus_series(slo, client.query_range, now)
            result = budget.evaluate(slo, pseries, end, budget_alert_percent)
        results.append(result)
    summary = {status: sum(1 for r in results if r['status'] == status) for status in STATUS_ORDER}
    worst = next((s for s in ('critical', 'warning') if summary[s]), 'ok' if results else 'no_data')
    if results and all(r['status'] == 'no_data' for r in results):
        worst = 'no_data'
    services: Dict[str, str] = {}
    for r in results:
        current = services.get(r['service'])
        if current is None or STATUS_ORDER.index(r['status']) < STATUS_ORDER.index(current):
            services[r['service']] = r['status']
    firing = [{'slo': r['name'], 'service': r['service'], 'severity': a['severity'], 'long_window': a['long_window'],
               'short_window': a['short_window'], 'long_burn_rate': a['long_burn_rate'],
               'short_burn_rate': a['short_burn_rate']}
              for r in results for a in r['alerts'] if a['firing']]
    firing += [{'slo': r['name'], 'service': r['service'], 'severity': 'budget',
                'consumed_percent': r['budget']['consumed_percent']} for r in results if r['budget']['alert']]
    return {'slos': results, 'summary': summary, 'status': worst, 'services': services, 'firing': firing,
            'evaluated_at': timeutil.isoformat(datetime.datetime.fromtimestamp(now, timeutil.UTC)),
            'skipped_lines': skipped, 'table': table(results)}


def _fmt(value: Optional[float], pattern: str) -> str:
    return '-' if value is None else pattern % value


def table(results: List[Dict[str, Any]]) -> List[str]:
    header = ('service', 'slo', 'status', 'sli %', 'objective', 'budget', 'burn 1h', 'alerts')
    lines = ['%-16s %-24s %-9s %10s %9s %8s %8s  %s' % header]
    for r in results:
        alerts = ','.join('%s %s/%s' % (a['severity'], a['long_window'], a['short_window'])
                          for a in r['alerts'] if a['firing'])
        if r['budget']['alert']:
            alerts = ','.join(x for x in (alerts, 'budget %g%%' % r['budget']['alert_percent']) if x)
        lines.append('%-16s %-24s %-9s %10s %9s %8s %8s  %s' % (
            r['service'][:16], r['name'][:24], r['status'], _fmt(r['sli_percent'], '%.3f'), '%g' % r['objective'],
            _fmt(r['budget']['remaining_percent'], '%.1f%%'), _fmt(r['burn_rates'].get('1h'), '%.2fx'),
            alerts or '-'))
    return lines
