# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SLO definitions: what an SLO is (name, SLI, source, objective, window) and their validation.

Every SLI is a ratio of good events to all events, so that one budget and burn-rate arithmetic serves
all three kinds (as in the SRE workbook):

* ``availability``: a probe run (history) or a request (Prometheus) is good when it succeeded.
* ``error_rate``: a request is bad when it failed; "error rate < 0.1 %" is ``objective: 99.9``.
* ``latency``: a request is good when it was answered within ``threshold_ms``; "p95 < 200 ms" is
  ``threshold_ms: 200, objective: 95`` (95 % of requests within 200 ms is exactly p95 <= 200 ms).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

SLI_KINDS = ('availability', 'error_rate', 'latency')
SOURCES = ('history', 'prometheus')
NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$')
_DURATION_RE = re.compile(r'^\s*(\d+)\s*([smhdw]?)\s*$')
_UNITS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}

# Ansible suboptions of one SLO (shared by slo_report and prometheus_rules; doc fragment slo).
OPTIONS: Dict[str, Dict[str, Any]] = {
    'name': {'type': 'str', 'required': True},
    'service': {'type': 'str'},
    'sli': {'type': 'str', 'required': True, 'choices': list(SLI_KINDS)},
    'objective': {'type': 'float', 'required': True},
    'window': {'type': 'str', 'default': '30d'},
    'source': {'type': 'str', 'choices': list(SOURCES), 'default': 'history'},
    'check': {'type': 'str'},
    'threshold_ms': {'type': 'float'},
    'percentile': {'type': 'float', 'default': 95.0},
    'total_query': {'type': 'str'},
    'good_query': {'type': 'str'},
    'bad_query': {'type': 'str'},
    'bucket_query': {'type': 'str'},
    'bucket_le': {'type': 'str'},
}


def parse_duration(value: Any, what: str = 'window') -> int:
    """Seconds of ``30d``, ``6h``, ``5m``, ``90s``, ``4w`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise OpsReadyError('%s %r is not a duration: use 30d, 6h, 5m or seconds.' % (what, value))
    if isinstance(value, (int, float)):
        seconds = int(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise OpsReadyError('%s %r is not a duration: use 30d, 6h, 5m or seconds.' % (what, value))
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise OpsReadyError('%s %r must be longer than 0 seconds.' % (what, value))
    return seconds


def format_duration(seconds: int) -> str:
    """The Prometheus spelling (``30d``, ``6h``, ``5m``, ``90s``) of a whole number of seconds."""
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60)):
        if seconds % size == 0:
            return '%d%s' % (seconds // size, unit)
    return '%ds' % seconds


def exact(value: float) -> Fraction:
    """A decimal the user wrote (99.95) as the exact fraction they meant, not its binary float."""
    return Fraction(repr(float(value)))


class Slo:
    """One validated SLO. ``allowed`` is the error budget as an exact fraction of events (1 - objective)."""

    def __init__(self, spec: Dict[str, Any]) -> None:
        self.name: str = spec['name']
        self.service: str = spec.get('service') or spec['name']
        self.sli: str = spec['sli']
        self.objective: float = float(spec['objective'])
        self.window: int = parse_duration(spec.get('window') or '30d')
        self.source: str = spec.get('source') or 'history'
        self.check: Optional[str] = spec.get('check')
        self.threshold_ms: Optional[float] = spec.get('threshold_ms')
        self.percentile: float = float(spec.get('percentile') or 95.0)
        self.total_query: Optional[str] = spec.get('total_query')
        self.good_query: Optional[str] = spec.get('good_query')
        self.bad_query: Optional[str] = spec.get('bad_query')
        self.bucket_query: Optional[str] = spec.get('bucket_query')
        self.bucket_le: Optional[str] = spec.get('bucket_le')
        self.allowed: Fraction = 1 - exact(self.objective) / 100

    def as_dict(self) -> Dict[str, Any]:
        out = {'name': self.name, 'service': self.service, 'sli': self.sli, 'objective': self.objective,
               'window': format_duration(self.window), 'source': self.source}
        for key in ('check', 'threshold_ms'):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _given(spec: Dict[str, Any], key: str) -> bool:
    return spec.get(key) not in (None, '')


def validate_one(index: int, spec: Dict[str, Any]) -> Slo:
    where = 'slos[%d]' % index
    name = spec.get('name')
    if not name or not NAME_RE.match(str(name)):
        raise OpsReadyError('%s: name %r must be 1-100 letters, digits, "_", ".", ":" or "-" (it becomes a '
                            'Prometheus label value and a file key).' % (where, name))
    where = '%s (%s)' % (where, name)
    unknown = sorted(set(spec) - set(OPTIONS))
    if unknown:
        raise OpsReadyError('%s: unknown option(s) %s; an SLO takes %s.'
                            % (where, ', '.join(unknown), ', '.join(sorted(OPTIONS))))
    if spec.get('sli') not in SLI_KINDS:
        raise OpsReadyError('%s: sli must be one of %s, not %r.' % (where, ', '.join(SLI_KINDS), spec.get('sli')))
    source = spec.get('source') or 'history'
    if source not in SOURCES:
        raise OpsReadyError('%s: source must be history or prometheus, not %r.' % (where, source))
    try:
        objective = float(spec['objective'])
    except (KeyError, TypeError, ValueError):
        raise OpsReadyError('%s: objective (percent of good events, e.g. 99.95) is required.' % where)
    if not 0 < objective < 100:
        raise OpsReadyError('%s: objective %s must be a percentage between 0 and 100 (exclusive): 100 %% leaves no '
                            'error budget to alert on.' % (where, objective))
    try:
        parse_duration(spec.get('window') or '30d')
    except OpsReadyError as exc:
        raise OpsReadyError('%s: %s' % (where, exc.message))
    if spec['sli'] == 'latency':
        if spec.get('threshold_ms') is None or float(spec['threshold_ms']) <= 0:
            raise OpsReadyError('%s: a latency SLI needs threshold_ms (> 0): the answer time a good request stays '
                                'within ("p95 < 200 ms" is threshold_ms: 200, objective: 95).' % where)
    elif _given(spec, 'threshold_ms'):
        raise OpsReadyError('%s: threshold_ms applies to latency SLIs only.' % where)
    pct = spec.get('percentile')
    if pct is not None and not 0 < float(pct) <= 100:
        raise OpsReadyError('%s: percentile must be in (0, 100].' % where)
    prom_keys = ('total_query', 'good_query', 'bad_query', 'bucket_query', 'bucket_le')
    if source == 'history':
        if not _given(spec, 'check'):
            raise OpsReadyError('%s: a history SLO needs check: the name of the health_check check whose probes '
                                'are its events.' % where)
        given = [k for k in prom_keys if _given(spec, k)]
        if given:
            raise OpsReadyError('%s: %s apply to source: prometheus only.' % (where, ', '.join(given)))
    else:
        if _given(spec, 'check'):
            raise OpsReadyError('%s: check applies to source: history only.' % where)
        if spec['sli'] == 'latency':
            if not _given(spec, 'bucket_query'):
                raise OpsReadyError('%s: a Prometheus latency SLI needs bucket_query, the histogram bucket counters '
                                    '(e.g. http_request_duration_seconds_bucket{job="api"}).' % where)
            for key in ('total_query', 'good_query', 'bad_query'):
                if _given(spec, key):
                    raise OpsReadyError('%s: %s does not apply to a latency SLI (it uses bucket_query).' % (where, key))
        else:
            if not _given(spec, 'total_query') or _given(spec, 'good_query') == _given(spec, 'bad_query'):
                raise OpsReadyError('%s: a Prometheus %s SLI needs total_query and exactly one of good_query or '
                                    'bad_query (counter selectors, e.g. http_requests_total{job="api"}).'
                                    % (where, spec['sli']))
            for key in ('bucket_query', 'bucket_le'):
                if _given(spec, key):
                    raise OpsReadyError('%s: %s applies to latency SLIs only.' % (where, key))
    return Slo(spec)


def parse(specs: Optional[List[Dict[str, Any]]]) -> List[Slo]:
    """Validate every SLO before anything is read; names must be distinct."""
    result = []
    names = set()
    for index, raw in enumerate(specs or []):
        if not isinstance(raw, dict):
            raise OpsReadyError('slos[%d] must be a dictionary, not %r.' % (index, raw))
        spec = {k: v for k, v in raw.items() if v is not None}
        slo = validate_one(index, spec)
        if slo.name in names:
            raise OpsReadyError('slos[%d]: two SLOs are named %r; give each a distinct name.' % (index, slo.name))
        names.add(slo.name)
        result.append(slo)
    return result
