# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capacity planning: least-squares trends of the health history and the days until each threshold.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

DAY = 86400.0
# Resource -> threshold key of health_check (the critical level is the one the trend must not cross).
RESOURCES = {'cpu': 'cpu_percent', 'mem': 'memory_percent', 'swap': 'swap_percent', 'fs': 'disk_percent',
             'inodes': 'inode_percent'}


def least_squares(points: Sequence[Tuple[float, float]]) -> Tuple[float, float, float]:
    """(slope, intercept, r2) of y = slope * x + intercept."""
    n = len(points)
    if n < 2:
        raise OpsReadyError('A trend needs at least two samples.')
    mean_x = sum(x for x, _y in points) / n
    mean_y = sum(y for _x, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _y in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    syy = sum((y - mean_y) ** 2 for _x, y in points)
    if sxx == 0:
        return 0.0, mean_y, 0.0
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else 1.0
    return slope, intercept, r2


def _series(samples: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    series: Dict[str, Dict[str, Any]] = {}

    def add(name: str, kind: str, t: float, value: Any, **meta: Any) -> None:
        if value is None:
            return
        entry = series.setdefault(name, {'kind': kind, 'points': [], 'meta': {}})
        entry['points'].append((t, float(value)))
        entry['meta'].update(meta)

    for s in samples:
        t = float(s['t'])
        add('cpu', 'cpu', t, s.get('cpu'))
        add('memory', 'mem', t, s.get('mem'), total_bytes=s.get('mem_total'))
        add('swap', 'swap', t, s.get('swap'))
        for mount, values in (s.get('fs') or {}).items():
            add('filesystem:' + mount, 'fs', t, values[0], mountpoint=mount, size_bytes=values[2],
                used_bytes=values[3] if len(values) > 3 else None)
            add('inodes:' + mount, 'inodes', t, values[1], mountpoint=mount)
    return series


def _fmt_bytes(value: float) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(value) < 1024 or unit == 'TiB':
            return '%.1f %s' % (value, unit)
        value /= 1024.0
    return '%.1f TiB' % value


def analyze(samples: List[Dict[str, Any]], levels: Dict[str, float], horizon_days: float = 90.0,
            window_days: float = 30.0, min_samples: int = 3, host: Optional[str] = None,
            now: Optional[float] = None) -> Dict[str, Any]:
    """Trend per resource over the last ``window_days``; days until each crosses its level."""
    if host:
        samples = [s for s in samples if s.get('host') == host]
    if not samples:
        raise OpsReadyError('The history has no samples%s.' % (' for host %s' % host if host else ''))
    latest = max(float(s['t']) for s in samples)
    now = latest if now is None else now
    samples = [s for s in samples if float(s['t']) >= latest - window_days * DAY]
    resources = []
    recommendations = []
    for name, entry in sorted(_series(samples).items()):
        points = entry['points']
        level = levels.get(RESOURCES[entry['kind']])
        item: Dict[str, Any] = {'resource': name, 'kind': entry['kind'], 'samples': len(points),
                                'threshold': level, 'current': round(points[-1][1], 2)}
        item.update({k: v for k, v in entry['meta'].items() if v is not None})
        span_days = (points[-1][0] - points[0][0]) / DAY
        item['span_days'] = round(span_days, 3)
        if len(points) < min_samples or span_days <= 0:
            item.update(trend='insufficient_data', slope_per_day=None, days_until_threshold=None)
            resources.append(item)
            continue
        t0 = points[0][0]
        slope, intercept, r2 = least_squares([((t - t0) / DAY, v) for t, v in points])
        fitted_now = slope * ((now - t0) / DAY) + intercept
        item.update(slope_per_day=round(slope, 4), r2=round(r2, 3), fitted=round(fitted_now, 2))
        days = None
        if level is not None:
            if item['current'] >= level:
                days = 0.0
            elif slope > 1e-9:
                days = max(0.0, (level - fitted_now) / slope)
        item['days_until_threshold'] = None if days is None else round(days, 1)
        item['trend'] = 'growing' if slope > 1e-6 else ('shrinking' if slope < -1e-6 else 'flat')
        if entry['kind'] == 'fs' and item.get('size_bytes') and item.get('used_bytes') is not None:
            item['growth_bytes_per_day'] = round(slope / 100.0 * item['size_bytes'], 1)
        resources.append(item)
        if days is not None and days <= horizon_days and level is not None:
            recommendations.append(_recommend(item, days, level, horizon_days))
    recommendations.sort(key=lambda r: r['days'])
    return {'resources': resources, 'recommendations': recommendations, 'samples': len(samples),
            'window_days': window_days, 'horizon_days': horizon_days}


def _recommend(item: Dict[str, Any], days: float, level: float, horizon: float) -> Dict[str, Any]:
    when = 'now' if days <= 0 else 'within %d days' % max(1, int(math.floor(days)))
    rate = '%+.2f points/day' % item['slope_per_day']
    kind = item['kind']
    rec: Dict[str, Any] = {'resource': item['resource'], 'days': round(days, 1), 'threshold': level}
    if kind == 'fs':
        text = 'Grow filesystem %s %s: %.1f %% used, %s, crosses %g %%' % (
            item['mountpoint'], when, item['current'], rate, level)
        if item.get('size_bytes') and item.get('growth_bytes_per_day') is not None:
            used_at_horizon = item['used_bytes'] + max(0.0, item['growth_bytes_per_day']) * horizon
            needed = used_at_horizon / (level / 100.0)
            rec['recommended_size_bytes'] = int(needed)
            text += '; to stay under %g %% for %d days it needs at least %s (now %s)' % (
                level, horizon, _fmt_bytes(needed), _fmt_bytes(item['size_bytes']))
        rec['action'] = 'grow_disk'
    elif kind == 'inodes':
        text = 'Filesystem %s runs out of inodes %s (%.1f %% used, %s): clean up small files or ' \
               'rebuild with more inodes' % (item['mountpoint'], when, item['current'], rate)
        rec['action'] = 'add_inodes'
    elif kind in ('mem', 'swap'):
        text = 'Add memory %s: %s at %.1f %%, %s, crosses %g %%' % (when, item['resource'], item['current'], rate,
                                                                    level)
        rec['action'] = 'add_memory'
    else:
        text = 'Add CPU capacity %s: CPU at %.1f %%, %s, crosses %g %%' % (when, item['current'], rate, level)
        rec['action'] = 'add_cpu'
    rec['message'] = text + '.'
    return rec


def table(result: Dict[str, Any]) -> List[str]:
    """A short fixed-width table for the play output."""
    lines = ['%-32s %8s %12s %10s' % ('resource', 'now', 'per day', 'days left')]
    for item in result['resources']:
        if item.get('slope_per_day') is None:
            continue
        days = item.get('days_until_threshold')
        lines.append('%-32s %8.1f %12s %10s' % (item['resource'][:32], item['current'],
                                                '%+.3f' % item['slope_per_day'],
                                                '-' if days is None else '%.1f' % days))
    return lines
