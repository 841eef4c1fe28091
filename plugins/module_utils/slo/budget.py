# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Error budget and multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on SLOs").

The burn rate of a window is its bad fraction divided by the budget (1 - objective): 1x spends the
budget exactly over the SLO window. An alert fires when BOTH its long and short window burn faster than
its factor (strictly more, ``>``, as the workbook's and the generated Prometheus rules' expressions);
a window without data never fires. The seeds' "alert when 50 % of the budget is consumed" is the
budget alert (``>=`` the share). All comparisons are exact fractions: 72 bad of 10,000 at 99.95 % is a
burn of exactly 14.4, which does not fire, where float arithmetic would say 14.399999999999999.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Dict, List, Optional, Union

from ansible_collections.opsready.operations.plugins.module_utils.slo.definitions import Slo, format_duration
from ansible_collections.opsready.operations.plugins.module_utils.slo.sli import (
    Totals, Windowed, histogram_quantile, nearest_rank)

HOUR = 3600
# (severity, long window, short window, burn-rate factor): the workbook's table as issue 19 sets it.
BURN_ALERTS = (
    ('page', HOUR, 5 * 60, Fraction('14.4')),
    ('ticket', 6 * HOUR, 30 * 60, Fraction(6)),
    ('ticket', 3 * 24 * HOUR, 6 * HOUR, Fraction(1)),
)
RANK = {'ok': 0, 'no_data': 0, 'warning': 1, 'critical': 2}


def burn_rate(totals: Totals, allowed: Fraction) -> Optional[Fraction]:
    ratio = totals.bad_ratio()
    return None if ratio is None else ratio / allowed


def _num(value: Optional[Union[int, Fraction]], digits: int = 4) -> Optional[float]:
    return None if value is None else round(float(value), digits)


def _percent(value: Optional[Fraction], digits: int = 4) -> Optional[float]:
    return None if value is None else round(float(value * 100), digits)


def windows_needed(slo: Slo) -> List[int]:
    needed = {slo.window}
    for _severity, long_w, short_w, _factor in BURN_ALERTS:
        needed.update((long_w, short_w))
    return sorted(needed)


def alerts(series: Windowed, slo: Slo, end: float) -> List[Dict[str, Any]]:
    out = []
    for severity, long_w, short_w, factor in BURN_ALERTS:
        long_burn = burn_rate(series.window(end, long_w), slo.allowed)
        short_burn = burn_rate(series.window(end, short_w), slo.allowed)
        firing = long_burn is not None and short_burn is not None and long_burn > factor and short_burn > factor
        out.append({'severity': severity, 'long_window': format_duration(long_w),
                    'short_window': format_duration(short_w), 'factor': float(factor),
                    'long_burn_rate': _num(long_burn), 'short_burn_rate': _num(short_burn), 'firing': firing})
    return out


def evaluate(slo: Slo, series: Windowed, end: float, budget_alert_percent: float = 50.0) -> Dict[str, Any]:
    """The SLO's state at ``end``: SLI, budget, burn rates per window, alerts, status and a message."""
    whole = series.window(end, slo.window, detail=True)
    result: Dict[str, Any] = slo.as_dict()
    result.update({'events': {'good': _num(whole.good, 3), 'bad': _num(whole.bad, 3), 'total': _num(whole.total, 3),
                              'samples': whole.events}})
    result['burn_rates'] = {format_duration(w): _num(burn_rate(series.window(end, w), slo.allowed))
                            for w in windows_needed(slo)}
    result['alerts'] = alerts(series, slo, end)
    result['coverage_percent'] = (round(min(100.0, 100.0 * (end - whole.first) / slo.window), 2)
                                  if whole.first is not None else 0.0)
    good_ratio = whole.good_ratio()
    result['sli_percent'] = _percent(good_ratio)
    if slo.sli == 'error_rate':
        result['error_rate_percent'] = _percent(whole.bad_ratio())
    if slo.sli == 'latency':
        pct = slo.percentile
        value = nearest_rank(whole.latencies, pct) if whole.latencies else None
        if value is None and whole.buckets:
            quantile = histogram_quantile(pct, whole.buckets)
            value = None if quantile is None else quantile * 1000.0
        result['latency_ms'] = {'p%g' % pct: None if value is None else round(value, 3)}
    allowed = slo.allowed
    budget: Dict[str, Any] = {'allowed_percent': _percent(allowed)}
    consumed = None if good_ratio is None else (1 - good_ratio) / allowed
    budget['consumed_percent'] = _percent(consumed, 2)
    budget['remaining_percent'] = None if consumed is None else _percent(1 - consumed, 2)
    if slo.sli == 'availability':
        # The seeds' unit: 99.95 % over 30 days allows 21.6 minutes of downtime.
        allowed_seconds = slo.window * allowed
        budget['allowed_seconds'] = _num(allowed_seconds, 1)
        budget['remaining_seconds'] = None if consumed is None else _num(allowed_seconds * (1 - consumed), 1)
    budget['alert_percent'] = budget_alert_percent
    budget['alert'] = consumed is not None and consumed >= Fraction(repr(float(budget_alert_percent))) / 100
    result['budget'] = budget
    result['met'] = None if good_ratio is None else good_ratio >= 1 - allowed
    firing = [a for a in result['alerts'] if a['firing']]
    if whole.total == 0:
        status = 'no_data'
    elif (consumed is not None and consumed >= 1) or any(a['severity'] == 'page' for a in firing):
        status = 'critical'
    elif firing or budget['alert']:
        status = 'warning'
    else:
        status = 'ok'
    result['status'] = status
    result['message'] = message(result)
    return result


def message(r: Dict[str, Any]) -> str:
    head = '%s (%s, objective %g %% over %s)' % (r['name'], r['sli'], r['objective'], r['window'])
    if r['status'] == 'no_data':
        if r['source'] == 'prometheus':
            return '%s: the queries returned no increase in the window; check the selectors in Prometheus.' % head
        return '%s: no data in the window; check that the probe runs and is recorded.' % head
    parts = ['%s: %.4g %% good of %g events' % (head, r['sli_percent'], r['events']['total'])]
    if r.get('latency_ms'):
        key, value = next(iter(r['latency_ms'].items()))
        if value is not None:
            parts.append('%s %.1f ms (threshold %g ms)' % (key, value, r['threshold_ms']))
    parts.append('%.1f %% of the error budget spent' % r['budget']['consumed_percent'])
    for alert in r['alerts']:
        if alert['firing']:
            parts.append('%s alert: burn %.1fx over %s and %.1fx over %s (> %gx)'
                         % (alert['severity'], alert['long_burn_rate'], alert['long_window'],
                            alert['short_burn_rate'], alert['short_window'], alert['factor']))
    if r['budget']['alert']:
        parts.append('budget alert at %g %%' % r['budget']['alert_percent'])
    return '; '.join(parts) + '.'
