# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pre-checks that decide whether a host may be patched now, each with a reason an operator can act on.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, parse_time

DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']
SEVERITY = {'ok': 0, 'warning': 1, 'critical': 2}


def _zone(name: Optional[str]) -> datetime.tzinfo:
    if not name or name.upper() == 'UTC':
        return datetime.timezone.utc
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo(name)
    except Exception:
        raise OpsReadyError('Unknown time zone %r in a blackout window; use an IANA name such as Europe/Paris.' % name)


def _clock(text: Any, what: str) -> datetime.time:
    try:
        hour, minute = str(text).split(':')
        return datetime.time(int(hour), int(minute))
    except ValueError:
        raise OpsReadyError('Blackout window %s %r is not HH:MM.' % (what, text))


def validate_window(window: Dict[str, Any]) -> None:
    absolute = 'from' in window or 'until' in window
    weekly = 'start' in window or 'end' in window or 'days' in window
    name = window.get('name', '(unnamed)')
    if absolute == weekly:
        raise OpsReadyError('Blackout window %s needs either from/until (a date range) or start/end with optional '
                            'days (a weekly window).' % name)
    if absolute and not (window.get('from') and window.get('until')):
        raise OpsReadyError('Blackout window %s needs both from and until.' % name)
    if weekly:
        if not (window.get('start') and window.get('end')):
            raise OpsReadyError('Blackout window %s needs both start and end (HH:MM).' % name)
        _clock(window['start'], 'start')
        _clock(window['end'], 'end')
        for day in window.get('days') or []:
            if str(day).lower()[:3] not in DAYS:
                raise OpsReadyError('Blackout window %s: %r is not a weekday (mon..sun).' % (name, day))
        _zone(window.get('timezone'))
    unknown = set(window) - {'name', 'from', 'until', 'start', 'end', 'days', 'timezone'}
    if unknown:
        raise OpsReadyError('Blackout window %s has unknown keys %s.' % (name, ', '.join(sorted(unknown))))


def in_window(window: Dict[str, Any], now: datetime.datetime) -> bool:
    validate_window(window)
    if 'from' in window:
        return parse_time(str(window['from']), 'from') <= now < parse_time(str(window['until']), 'until')
    local = now.astimezone(_zone(window.get('timezone')))
    start, end = _clock(window['start'], 'start'), _clock(window['end'], 'end')
    days = [str(d).lower()[:3] for d in window.get('days') or DAYS]
    clock = local.time().replace(second=0, microsecond=0)
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local.weekday() - 1) % 7]
    if start <= end:
        return today in days and start <= clock < end
    # Crosses midnight: the window belongs to the day it starts on.
    return (today in days and clock >= start) or (yesterday in days and clock < end)


def active_blackout(windows: Sequence[Dict[str, Any]], now: datetime.datetime) -> Optional[Dict[str, Any]]:
    for window in windows:
        if in_window(window, now):
            return window
    return None


def _check(name: str, ok: bool, reason: str, **details: Any) -> Dict[str, Any]:
    return dict(name=name, ok=ok, reason=reason, **details)


def disk_checks(requirements: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    results = []
    for req in requirements:
        path = req['path']
        try:
            st = os.statvfs(path)
        except OSError as exc:
            results.append(_check('disk:%s' % path, False, 'cannot measure free space of %s: %s' % (path, exc)))
            continue
        free_mb = st.f_bavail * st.f_frsize / 1048576.0
        free_pct = 100.0 * st.f_bavail / st.f_blocks if st.f_blocks else 0.0
        problems = []
        if req.get('min_free_mb') is not None and free_mb < req['min_free_mb']:
            problems.append('%.0f MiB free, needs %d MiB' % (free_mb, req['min_free_mb']))
        if req.get('min_free_percent') is not None and free_pct < req['min_free_percent']:
            problems.append('%.1f%% free, needs %s%%' % (free_pct, req['min_free_percent']))
        reason = ('%s: %s; free space before patching (apt clean, old kernels, logs)' % (path, ' and '.join(problems))
                  if problems else '%s: %.0f MiB (%.1f%%) free' % (path, free_mb, free_pct))
        results.append(_check('disk:%s' % path, not problems, reason, free_mb=round(free_mb, 1),
                              free_percent=round(free_pct, 2)))
    return results


def health_check(verdict: Optional[str], allowed: str, summary: Optional[str]) -> Dict[str, Any]:
    if verdict is None:
        return _check('health', True, 'health not checked')
    if verdict not in SEVERITY:
        raise OpsReadyError('health_verdict must be ok, warning or critical, got %r.' % verdict)
    ok = SEVERITY[verdict] <= SEVERITY[allowed]
    reason = 'health verdict is %s (allowed up to %s)%s' % (verdict, allowed, (': ' + summary) if summary else '')
    if not ok:
        reason += '; fix the host before patching it'
    return _check('health', ok, reason, verdict=verdict)


def backup_checks(sets: Optional[Sequence[Dict[str, Any]]], max_age: int, now: datetime.datetime,
                  required: bool) -> List[Dict[str, Any]]:
    """Newest verified full backup of every set must be younger than ``max_age`` seconds."""
    if sets is None:
        return []
    if not sets:
        return [_check('backup', not required, 'no backups found in the catalog' +
                       ('; take a verified backup before patching' if required else ''))]
    results = []
    for item in sets:
        label = '%s/%s' % (item.get('engine'), item.get('database'))
        newest = item.get('newest_verified_full')
        if not newest or not newest.get('finished'):
            results.append(_check('backup:%s' % label, False, '%s has no verified full backup; take and verify one '
                                  'before patching' % label))
            continue
        age = (now - parse_time(str(newest['finished']), 'finished')).total_seconds()
        ok = age <= max_age
        reason = '%s newest verified full is %.0f s old (objective %d s)' % (label, age, max_age)
        if not ok:
            reason += '; take a fresh backup before patching'
        results.append(_check('backup:%s' % label, ok, reason, age_seconds=round(age, 1), newest=newest.get('id')))
    return results


def evaluate(*, now: datetime.datetime, windows: Sequence[Dict[str, Any]], disk: Sequence[Dict[str, Any]],
             health_verdict: Optional[str], health_allowed: str, health_summary: Optional[str],
             backup_sets: Optional[Sequence[Dict[str, Any]]], max_backup_age: Optional[int],
             backup_required: bool) -> Dict[str, Any]:
    checks = []
    blackout = active_blackout(windows, now)
    checks.append(_check('blackout', blackout is None,
                         'inside blackout window %s; patch after it ends' % blackout.get('name', blackout)
                         if blackout else 'outside all %d blackout window(s)' % len(windows)))
    checks.append(health_check(health_verdict, health_allowed, health_summary))
    if max_backup_age is not None:
        checks.extend(backup_checks(backup_sets, max_backup_age, now, backup_required))
    checks.extend(disk_checks(disk))
    failed = [c for c in checks if not c['ok']]
    return {'proceed': not failed, 'checks': checks, 'reasons': [c['reason'] for c in failed], 'now': isoformat(now)}
