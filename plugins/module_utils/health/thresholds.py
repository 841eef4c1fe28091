# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Warning/critical thresholds, their validation, and the findings they produce.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

OK = 'ok'
WARNING = 'warning'
CRITICAL = 'critical'
SEVERITIES = (OK, WARNING, CRITICAL)
RANK = {OK: 0, WARNING: 1, CRITICAL: 2}

# (warning, critical). The critical levels are the runbook's alert levels (CPU > 80 %, memory > 85 %,
# disk > 90 %, network > 80 % of link speed, p95 latency > 500 ms, error rate > 1 %).
DEFAULTS: Dict[str, Tuple[Optional[float], Optional[float]]] = {
    'cpu_percent': (70.0, 80.0),
    'memory_percent': (75.0, 85.0),
    'swap_percent': (80.0, None),
    'disk_percent': (80.0, 90.0),
    'inode_percent': (80.0, 90.0),
    'network_percent': (70.0, 80.0),
    'load_per_core': (1.5, 2.0),
    'latency_ms': (250.0, 500.0),
    'error_rate_percent': (0.5, 1.0),
    'tls_days': (30.0, 7.0),
}
PERCENT = frozenset(k for k in DEFAULTS if k.endswith('_percent'))
LOWER_IS_WORSE = frozenset(['tls_days'])
UNITS = {'latency_ms': ' ms', 'tls_days': ' days', 'load_per_core': ''}


class Threshold:
    """One metric's levels; ``evaluate`` maps a value to ok/warning/critical."""

    def __init__(self, name: str, warning: Optional[float], critical: Optional[float]) -> None:
        self.name = name
        self.warning = warning
        self.critical = critical
        self.lower_is_worse = name in LOWER_IS_WORSE

    def _crosses(self, value: float, level: Optional[float]) -> bool:
        if level is None:
            return False
        return value < level if self.lower_is_worse else value > level

    def evaluate(self, value: Optional[float]) -> str:
        if value is None:
            return OK
        if self._crosses(value, self.critical):
            return CRITICAL
        if self._crosses(value, self.warning):
            return WARNING
        return OK

    def level(self, severity: str) -> Optional[float]:
        return self.critical if severity == CRITICAL else self.warning

    def as_dict(self) -> Dict[str, Optional[float]]:
        return {'warning': self.warning, 'critical': self.critical}

    def describe(self, severity: str) -> str:
        unit = UNITS.get(self.name, ' %' if self.name in PERCENT else '')
        sign = '<' if self.lower_is_worse else '>'
        return '%s %s%s' % (sign, fmt_number(self.level(severity)), unit)


def fmt_number(value: Any) -> str:
    """A threshold or measured value as people write it: at most two decimals, no trailing zeros."""
    if isinstance(value, float):
        return ('%.2f' % value).rstrip('0').rstrip('.')
    return str(value)


def threshold_number(name: str, level: str, value: Any, percent: frozenset = PERCENT) -> Optional[float]:
    """One threshold level from user input: null, or a non-negative number (at most 100 for ``percent`` names)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise OpsReadyError('thresholds.%s.%s must be a number or null, not %r.' % (name, level, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OpsReadyError('thresholds.%s.%s must be a number or null, not %r.' % (name, level, value))
    if number < 0:
        raise OpsReadyError('thresholds.%s.%s must not be negative (got %s).' % (name, level, fmt_number(number)))
    if name in percent and number > 100:
        raise OpsReadyError('thresholds.%s.%s is a percentage and cannot be over 100 (got %s).'
                            % (name, level, fmt_number(number)))
    return number


def parse_one(name: str, value: Any, base: Optional[Threshold] = None) -> Threshold:
    """A user threshold: ``{warning: W, critical: C}`` (either may be null = off), or a bare number
    meaning the critical level (the warning level then stays at its default unless above it)."""
    if name not in DEFAULTS:
        raise OpsReadyError('Unknown threshold %r: use one of %s.' % (name, ', '.join(sorted(DEFAULTS))))
    warning, critical = (base.warning, base.critical) if base else DEFAULTS[name]
    if isinstance(value, dict):
        unknown = set(value) - {'warning', 'critical'}
        if unknown:
            raise OpsReadyError('thresholds.%s accepts only warning and critical, not %s.'
                                % (name, ', '.join(sorted(unknown))))
        if 'warning' in value:
            warning = threshold_number(name, 'warning', value['warning'])
        if 'critical' in value:
            critical = threshold_number(name, 'critical', value['critical'])
    else:
        critical = threshold_number(name, 'critical', value)
        if warning is not None and critical is not None:
            worse = warning < critical if name in LOWER_IS_WORSE else warning > critical
            if worse:
                warning = critical
    if warning is not None and critical is not None:
        if name in LOWER_IS_WORSE and warning < critical:
            raise OpsReadyError('thresholds.%s: warning (%s) must not be below critical (%s); lower values are '
                                'worse for this metric.' % (name, fmt_number(warning), fmt_number(critical)))
        if name not in LOWER_IS_WORSE and warning > critical:
            raise OpsReadyError('thresholds.%s: warning (%s) must not be above critical (%s).'
                                % (name, fmt_number(warning), fmt_number(critical)))
    return Threshold(name, warning, critical)


def parse(user: Optional[Dict[str, Any]]) -> Dict[str, Threshold]:
    """Defaults overlaid with the user's ``thresholds`` option; raises on any bad entry."""
    result = {name: Threshold(name, w, c) for name, (w, c) in DEFAULTS.items()}
    for name, value in (user or {}).items():
        result[name] = parse_one(name, value)
    return result


def finding(check: str, condition: str, value: Any, threshold: Optional[Threshold], severity: str,
            message: str, **extra: Any) -> Dict[str, Any]:
    item: Dict[str, Any] = {
        'check': check,
        'condition': condition,
        'value': value,
        'threshold': threshold.level(severity) if threshold is not None else None,
        'severity': severity,
        'message': message,
    }
    item.update(extra)
    return item


def measure(check: str, condition: str, value: Optional[float], threshold: Threshold, what: str,
            **extra: Any) -> List[Dict[str, Any]]:
    """A finding (as a one-item list) when ``value`` crosses ``threshold``, else nothing."""
    severity = threshold.evaluate(value)
    if severity == OK:
        return []
    unit = UNITS.get(threshold.name, ' %' if threshold.name in PERCENT else '')
    message = '%s is %s%s (%s %s).' % (what, fmt_number(value), unit, severity, threshold.describe(severity))
    return [finding(check, condition, value, threshold, severity, message, **extra)]


def worst(severities: List[str]) -> str:
    result = OK
    for severity in severities:
        if RANK.get(severity, 0) > RANK[result]:
            result = severity
    return result


def sort_findings(findings: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Worst first, then by check name: the order an operator reads them in."""
    return sorted(findings, key=lambda f: (-RANK.get(f.get('severity', OK), 0), str(f.get('check'))))
