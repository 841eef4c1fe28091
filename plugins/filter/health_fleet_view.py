# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health role's fleet view in one Python pass (issue 22: the fleet report of 500 hosts in under 5 s).

The view was Jinja loops over ``hostvars`` in three ``set_fact`` tasks, then two more loops for the
tables: every row built by the template engine, every fact copied to every host. Here each host's
variables are looked up once and the rows, the tables and the report are plain Python. The output is
the same as those templates gave (tests/unit/collection/test_health_fleet_view.py renders both).
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, Iterable, List, Mapping, Optional

DOCUMENTATION = r'''
name: health_fleet_view
short_description: The health role's fleet view (rows, SLO rows, tables, report) from every host's result
version_added: 0.1.0
description:
  - Builds the fleet view of the C(opsready.operations.health) role in one pass over the hosts, each host's
    C(health_result) and C(health_slo) read once from C(hostvars).
  - Returns C(report) (C(hosts), C(verdicts), C(slos) and C(slo_services), the fleet report's JSON), C(table) and
    C(slo_table) (the lines the role prints).
  - Hosts without a C(health_result) (unreachable, or the measurement failed) get the verdict C(unreachable).
options:
  _input:
    description: C(hostvars), or any mapping of host name to that host's variables.
    type: dict
    required: true
  hosts:
    description: Host names, in the order of the view (before sorting by verdict).
    type: list
    elements: str
    required: true
  incidents:
    description: The registered result of the role's C(opsready.operations.incident) task; its open incidents
      give each host's C(incident) column.
    type: dict
    default: {}
'''

EXAMPLES = r'''
- name: Collect the fleet view
  run_once: true
  ansible.builtin.set_fact:
    health_fleet_view: >-
      {{ hostvars | opsready.operations.health_fleet_view(ansible_play_hosts_all, health_incidents | default({})) }}
'''

RETURN = r'''
_value:
  description: C(report), C(table) and C(slo_table).
  type: dict
'''

_MISSING = object()
FLEET_FORMAT = '%-24s %-11s %4s %4s  %s'
FLEET_ROW_FORMAT = '%-24s %-11s %4d %4d  %s'
SLO_FORMAT = '%-14s %-22s %-12s %-8s %9s %9s %8s  %s'


def _get(value: Any, key: str, default: Any = _MISSING) -> Any:
    """``value.key`` as Jinja resolves it (a mapping key, else an attribute), ``default`` when absent."""
    if isinstance(value, Mapping):
        try:
            return value[key]
        except KeyError:
            return default
    try:
        return value[key]
    except (KeyError, TypeError, IndexError):
        return getattr(value, key, default)


def _path(value: Any, *keys: str, default: Any) -> Any:
    """``value.a.b | default(default)``: the default when any step is undefined (not when it is None)."""
    for key in keys:
        if value is _MISSING or value is None:
            return default
        value = _get(value, key)
    return default if value is _MISSING else value


def _int(value: Any) -> int:
    """Jinja's ``int`` filter: 0 for what does not convert."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def _fold(value: Any) -> Any:
    """Jinja's case-insensitive sort key (``sort``/``groupby`` with case_sensitive false)."""
    return value.lower() if isinstance(value, str) else value


def _host_vars(hostvars: Any, host: str) -> Any:
    try:
        return hostvars[host]
    except KeyError:
        return {}


def _slo_row(host: str, slo: Any) -> Dict[str, Any]:
    budget = _get(slo, 'budget')
    alerts = [_get(a, 'severity', '') for a in (_get(slo, 'alerts', None) or []) if _get(a, 'firing', None)]
    if _get(budget, 'alert', None):
        alerts.append('budget')
    return {'service': _get(slo, 'service'), 'slo': _get(slo, 'name'), 'host': host, 'status': _get(slo, 'status'),
            'sli': _get(slo, 'sli'), 'sli_percent': _get(slo, 'sli_percent'), 'objective': _get(slo, 'objective'),
            'window': _get(slo, 'window'), 'budget_consumed_percent': _get(budget, 'consumed_percent'),
            'budget_remaining_percent': _get(budget, 'remaining_percent'),
            'burn_rate_1h': _get(_get(slo, 'burn_rates'), '1h'), 'burn_rate_6h': _get(_get(slo, 'burn_rates'), '6h'),
            'alerts': alerts}


def _service_status(statuses: List[Any]) -> str:
    for status in ('critical', 'warning', 'ok'):
        if status in statuses:
            return status
    return 'no_data'


def fleet_view(hostvars: Any, hosts: Iterable[str], incidents: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """{'report': {hosts, verdicts, slos, slo_services}, 'table': [lines], 'slo_table': [lines]}."""
    incident_ids = {}
    for item in _path(incidents or {}, 'results', default=[]) or []:
        if _get(item, 'state', None) == 'open' and _get(item, 'incident', None):
            incident_ids[_get(item, 'key')] = _get(_get(item, 'incident'), 'id')
    rows: List[Dict[str, Any]] = []
    slos: List[Dict[str, Any]] = []
    for host in hosts:
        host_vars = _host_vars(hostvars, host)
        result = _get(host_vars, 'health_result', {})
        findings = _path(result, 'findings', default=[])
        rows.append({'host': host, 'verdict': _path(result, 'verdict', default='unreachable'),
                     'critical': _path(result, 'summary', 'critical', default=0),
                     'warning': _path(result, 'summary', 'warning', default=0),
                     'worst': [_get(f, 'message') for f in list(findings)[:3]],
                     'conditions': _path(result, 'conditions', default=[]),
                     'incident': incident_ids.get('health:' + host)})
        for slo in _path(_get(host_vars, 'health_slo', _MISSING), 'slos', default=[]):
            slos.append(_slo_row(host, slo))
    rows.sort(key=lambda r: _fold(r['verdict']))
    slos.sort(key=lambda r: (_fold(r['service']), _fold(r['slo']), _fold(r['host'])))
    services: Dict[Any, str] = {}
    for dummy, group in itertools.groupby(slos, key=lambda r: _fold(r['service'])):
        items = list(group)
        # groupby's key is the first row's own spelling, as Jinja's case-insensitive groupby returns it
        services[items[0]['service']] = _service_status([r['status'] for r in items])
    table = [FLEET_FORMAT % ('host', 'verdict', 'crit', 'warn', 'worst finding')]
    table += [FLEET_ROW_FORMAT % (r['host'], r['verdict'], _int(r['critical']), _int(r['warning']),
                                  r['worst'][0] if r['worst'] else '-') for r in rows]
    slo_table = [SLO_FORMAT % ('service', 'slo', 'host', 'status', 'sli %', 'budget', 'burn 1h', 'alerts')]
    slo_table += [SLO_FORMAT % (
        r['service'], r['slo'], r['host'], r['status'],
        '-' if r['sli_percent'] is None else '%.3f' % r['sli_percent'],
        '-' if r['budget_remaining_percent'] is None else '%.1f%%' % r['budget_remaining_percent'],
        '-' if r['burn_rate_1h'] is None else '%.2fx' % r['burn_rate_1h'],
        ','.join(str(a) for a in r['alerts']) or '-') for r in slos]
    report = {'hosts': rows, 'verdicts': [r['verdict'] for r in rows], 'slos': slos, 'slo_services': services}
    return {'report': report, 'table': table, 'slo_table': slo_table}


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {'health_fleet_view': fleet_view}
