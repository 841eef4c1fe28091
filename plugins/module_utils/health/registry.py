# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health check registry: check types, their options, and the validation of a run's checks.

A check type is one ``CheckType`` subclass decorated with ``@register``: it declares the options it accepts
(merged into the module's ``checks`` suboptions), validates a spec before anything is measured, runs one probe
within its timeout, and turns the result into findings. The built-in types live one concern per file
(``net_check.py``: tcp and http; ``db_check.py``: db through the engine clients or ODBC; ``host_check.py``:
process, service, command; ``backup_check.py``: backup freshness); ``checks.py`` imports them all. A new type
is a new file with an ``@register`` class, imported by the module (``plugins/modules/health_check.py``) after
``checks``.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple, Type

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import REDACTED
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import (
    Threshold, finding, measure, parse_one)

REGISTRY: Dict[str, 'CheckType'] = {}
MAX_BODY = 1024 * 1024

# Options every check accepts (Ansible suboption specs).
COMMON_OPTIONS: Dict[str, Dict[str, Any]] = {
    'type': {'type': 'str', 'required': True},
    'name': {'type': 'str'},
    'timeout': {'type': 'float', 'default': 5.0},
    'severity': {'type': 'str', 'choices': ['warning', 'critical'], 'default': 'critical'},
    'unit': {'type': 'str'},
    'thresholds': {'type': 'dict'},
}


def register(cls: Type['CheckType']) -> Type['CheckType']:
    REGISTRY[cls.type_name] = cls()
    return cls


def suboptions() -> Dict[str, Dict[str, Any]]:
    """The union of every registered type's options, for the module's argument_spec."""
    merged: Dict[str, Dict[str, Any]] = {k: dict(v) for k, v in COMMON_OPTIONS.items()}
    merged['type']['choices'] = sorted(REGISTRY)
    for check in REGISTRY.values():
        for key, spec in check.options.items():
            bare = {k: v for k, v in spec.items() if k != 'default'}
            if key in merged and 'choices' in bare and 'choices' in merged[key]:
                # Two types may offer different choices for one option (engine): the module accepts their union
                # and normalise() holds each type to its own.
                union = list(merged[key]['choices']) + [c for c in bare['choices'] if c not in merged[key]['choices']]
                bare['choices'] = union
                rest = {k: v for k, v in bare.items() if k != 'choices'}
                if {k: v for k, v in merged[key].items() if k != 'choices'} == rest:
                    merged[key] = bare
                    continue
            if key in merged and merged[key] != bare:
                raise OpsReadyError('Internal error: option %s of %s checks conflicts with another type.'
                                    % (key, check.type_name))
            # Type-specific defaults are applied by normalise(): were Ansible to fill them in, an option
            # of another type could not be told apart from one the user set.
            merged[key] = bare
    return merged


class CheckType:
    type_name = ''
    options: Dict[str, Dict[str, Any]] = {}
    one_of: Sequence[Sequence[str]] = ()       # at least one option of each group
    exclusive: Sequence[Sequence[str]] = ()    # at most one option of each group
    down_condition = 'check_failed'

    def default_name(self, spec: Dict[str, Any]) -> str:
        return self.type_name

    def secrets(self, spec: Dict[str, Any]) -> List[str]:
        """Credentials the spec carries in options that are not no_log (an http check's URL): redacted from
        every output, Ansible's invocation included."""
        return []

    def validate(self, spec: Dict[str, Any]) -> None:
        """Raise OpsReadyError on a spec that cannot be run."""

    def overall_timeout(self, spec: Dict[str, Any]) -> float:
        return float(spec['timeout']) + 1.0

    def run(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        raise NotImplementedError

    def timeout_result(self, spec: Dict[str, Any], elapsed: float) -> Dict[str, Any]:
        return {'ok': False, 'timed_out': True, 'latency_ms': None, 'condition': self.timeout_condition(),
                'message': '%s did not answer within %.1fs.' % (spec['name'], elapsed)}

    def timeout_condition(self) -> str:
        return self.down_condition

    def evaluate(self, spec: Dict[str, Any], result: Dict[str, Any], th: Dict[str, Threshold]) -> List[Dict[str, Any]]:
        name = spec['name']
        extra = {'type': self.type_name}
        if spec.get('unit'):
            extra['unit'] = spec['unit']
        if not result.get('ok'):
            return [finding(name, result.get('condition') or self.down_condition, result.get('value'), None,
                            spec['severity'], result.get('message') or '%s failed.' % name, **extra)]
        if result.get('latency_ms') is not None and 'latency_ms' in th:
            return measure(name, 'slow_response', result['latency_ms'], th['latency_ms'],
                           '%s latency' % name, **extra)
        return []


def check_thresholds(spec: Dict[str, Any], base: Dict[str, Threshold]) -> Dict[str, Threshold]:
    result = dict(base)
    for key, value in (spec.get('thresholds') or {}).items():
        result[key] = parse_one(key, value, base.get(key))
    return result


def normalise(specs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Validate every check (unknown type, options of another type, missing target, duplicates)
    before anything is measured; returns the specs with names filled in and irrelevant keys dropped."""
    result = []
    names = set()
    for index, raw in enumerate(specs or []):
        ctype = raw.get('type')
        if ctype not in REGISTRY:
            raise OpsReadyError('checks[%d]: unknown check type %r; use one of %s.'
                                % (index, ctype, ', '.join(sorted(REGISTRY))))
        check = REGISTRY[ctype]
        allowed = set(COMMON_OPTIONS) | set(check.options)
        spec = {}
        for key, value in raw.items():
            if value is None:
                continue
            if key not in allowed:
                raise OpsReadyError('checks[%d]: option %s does not apply to %s checks (they take %s).'
                                    % (index, key, ctype, ', '.join(sorted(check.options))))
            choices = check.options.get(key, {}).get('choices')
            if choices and value not in choices:
                raise OpsReadyError('checks[%d]: %s=%s is not available for %s checks; use one of %s.'
                                    % (index, key, value, ctype, ', '.join(str(c) for c in choices)))
            spec[key] = value
        for key in COMMON_OPTIONS:
            spec.setdefault(key, COMMON_OPTIONS[key].get('default'))
        for key, opt in check.options.items():
            if key not in spec and 'default' in opt:
                spec[key] = opt['default']
        for group in check.one_of:
            if not any(spec.get(k) not in (None, '', []) for k in group):
                raise OpsReadyError('checks[%d]: a %s check needs %s.' % (index, ctype, ' or '.join(group)))
        for group in check.exclusive:
            given = [k for k in group if spec.get(k) not in (None, '', [])]
            if len(given) > 1:
                raise OpsReadyError('checks[%d]: %s are mutually exclusive in a %s check.'
                                    % (index, ' and '.join(given), ctype))
        if spec['timeout'] is None or spec['timeout'] <= 0:
            raise OpsReadyError('checks[%d]: timeout must be more than 0 seconds.' % index)
        for key, value in (spec.get('thresholds') or {}).items():
            parse_one(key, value)
        spec['name'] = spec.get('name') or check.default_name(spec)
        try:
            check.validate(spec)
        except OpsReadyError as exc:
            raise OpsReadyError('checks[%d] (%s): %s' % (index, spec['name'], exc.message))
        if spec['name'] in names:
            raise OpsReadyError('checks[%d]: two checks are named %r; give each a distinct name.'
                                % (index, spec['name']))
        names.add(spec['name'])
        result.append(spec)
    return result


def ms(seconds: float) -> float:
    """Seconds as milliseconds, for ``latency_ms``."""
    return round(seconds * 1000.0, 2)


def _redact(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {_redact(k, secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v, secrets) for v in value]
    return value


def redact_result(result: Dict[str, Any], secrets: Sequence[str]) -> Dict[str, Any]:
    """The result with every secret starred in its strings (keys too). Numbers and booleans are left alone: a
    short secret (a password V(1)) must not rewrite a latency or a count."""
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return result
    redacted: Dict[str, Any] = _redact(result, ordered)
    return redacted


def run_spec(spec: Dict[str, Any]) -> Tuple[str, Any, float]:
    """(key, callable, overall timeout) for deadline.run_all."""
    check = REGISTRY[spec['type']]
    return ('check:' + spec['name'], lambda: check.run(spec), check.overall_timeout(spec))
