"""The health role's fleet view (roles/health/tasks/fleet.yml) rendered by Ansible's own templar for 500
synthetic hosts: the rows, the table, the SLO view and the JSON report say what every host's result says.
The time this takes at scale is measured by bench/fleet_scale.py, not asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROLE = Path(__file__).resolve().parents[3] / 'roles' / 'health'
HOSTS = 500
VERDICTS = ('ok', 'warning', 'critical', 'ok', None)     # None: unreachable, no health_result at all


def host_name(i: int) -> str:
    return 'h%03d' % i


def health_result(i: int, verdict: str) -> dict:
    findings = [{'check': 'check%d' % k, 'severity': verdict, 'message': '%s finding %d' % (host_name(i), k)}
                for k in range({'ok': 0, 'warning': 2, 'critical': 5}[verdict])]
    return {'verdict': verdict, 'findings': findings, 'conditions': ['cond-%d' % i] if findings else [],
            'summary': {'critical': len(findings) if verdict == 'critical' else 0,
                        'warning': len(findings) if verdict == 'warning' else 0}}


def slo(i: int, service: str, status: str) -> dict:
    return {'service': service, 'name': service + '-availability', 'status': status, 'sli': 0.999,
            'sli_percent': 99.9, 'objective': 99.5, 'window': '30d',
            'budget': {'consumed_percent': 20.0, 'remaining_percent': 80.0, 'alert': status == 'critical'},
            'burn_rates': {'1h': 0.5, '6h': 0.25},
            'alerts': [{'severity': 'page', 'firing': status == 'critical'}, {'severity': 'ticket', 'firing': False}]}


def fleet_variables() -> dict:
    hosts = [host_name(i) for i in range(HOSTS)]
    hostvars = {}
    incident_results = []
    for i, name in enumerate(hosts):
        verdict = VERDICTS[i % len(VERDICTS)]
        hostvars[name] = {}
        if verdict is None:
            continue
        hostvars[name]['health_result'] = health_result(i, verdict)
        if i % 10 == 0:   # every tenth host has an SLO
            hostvars[name]['health_slo'] = {'slos': [slo(i, 'svc%d' % (i % 3), 'critical' if i % 20 == 0 else 'ok')]}
        if verdict == 'critical':
            incident_results.append({'key': 'health:' + name, 'state': 'open', 'changed': i % 2 == 0,
                                     'incident': {'id': 'INC-%s' % name}})
        else:
            incident_results.append({'key': 'health:' + name, 'state': 'resolved', 'changed': False, 'incident': None})
    return {'ansible_play_hosts_all': hosts, 'hostvars': hostvars,
            'health_incidents': {'changed': True, 'results': incident_results},
            'health_report_path': '/nonexistent/fleet.json'}


def render_fleet_view(variables: dict) -> dict:
    """Run fleet.yml's templates in order (set_fact results feed the next tasks): {task name: output}, and
    the facts set under 'facts'."""
    tasks = yaml.safe_load((ROLE / 'tasks' / 'fleet.yml').read_text())
    templar = Templar(loader=DataLoader(), variables=variables)
    out = {}
    for task in tasks:
        templar.available_variables = variables
        when = task.get('when')
        if when is not None and not templar.template(trust_as_template('{{ %s }}' % when)):
            continue
        if 'ansible.builtin.set_fact' in task:
            facts = {k: templar.template(trust_as_template(v)) for k, v in task['ansible.builtin.set_fact'].items()}
            variables = dict(variables, **facts)
            out[task['name']] = facts
        elif 'ansible.builtin.debug' in task:
            out[task['name']] = templar.template(trust_as_template(task['ansible.builtin.debug']['msg']))
        elif 'ansible.builtin.copy' in task:
            out[task['name']] = templar.template(trust_as_template(task['ansible.builtin.copy']['content']))
        assert task.get('run_once') is True, '%s must run once on the control node, not on every host' % task['name']
    out['facts'] = variables
    return out


@pytest.fixture(scope='module')
def rendered():
    variables = fleet_variables()
    return variables, render_fleet_view(variables)


def test_every_host_has_its_row_sorted_by_verdict(rendered):
    variables, out = rendered
    rows = out['facts']['health_fleet']
    assert len(rows) == HOSTS
    assert [r['verdict'] for r in rows] == sorted(r['verdict'] for r in rows)
    by_host = {r['host']: r for r in rows}
    assert set(by_host) == set(variables['ansible_play_hosts_all'])
    for i, name in enumerate(variables['ansible_play_hosts_all']):
        row = by_host[name]
        verdict = VERDICTS[i % len(VERDICTS)]
        if verdict is None:
            assert row == {'host': name, 'verdict': 'unreachable', 'critical': 0, 'warning': 0, 'worst': [],
                           'conditions': [], 'incident': None}
            continue
        result = variables['hostvars'][name]['health_result']
        assert row['verdict'] == verdict
        assert (row['critical'], row['warning']) == (result['summary']['critical'], result['summary']['warning'])
        assert row['worst'] == [f['message'] for f in result['findings'][:3]]
        assert row['conditions'] == result['conditions']
        # the incident column comes from the fleet's one incident task, per host key
        assert row['incident'] == ('INC-%s' % name if verdict == 'critical' else None)
    # hosts of one verdict keep the inventory order (a stable sort)
    oks = [r['host'] for r in rows if r['verdict'] == 'ok']
    assert oks == sorted(oks)


def test_table_has_a_line_per_host_with_its_worst_finding(rendered):
    variables, out = rendered
    table = out['Print the fleet table']
    assert len(table) == HOSTS + 1
    assert table[0].split() == ['host', 'verdict', 'crit', 'warn', 'worst', 'finding']
    lines = {line.split()[0]: line for line in table[1:]}
    assert lines['h002'].split()[:4] == ['h002', 'critical', '5', '0']
    assert lines['h002'].endswith('h002 finding 0')
    assert lines['h000'].split() == ['h000', 'ok', '0', '0', '-']
    assert lines['h004'].split() == ['h004', 'unreachable', '0', '0', '-']


def test_report_json_carries_hosts_verdicts_and_slos(rendered):
    variables, out = rendered
    report = json.loads(out['Write the fleet report'])
    rows = out['facts']['health_fleet']
    assert report['hosts'] == rows
    assert report['verdicts'] == [r['verdict'] for r in rows]
    slos = report['slos']
    assert len(slos) == HOSTS // 10
    keys = [(s['service'], s['slo'], s['host']) for s in slos]
    assert keys == sorted(keys)
    critical = [s for s in slos if s['status'] == 'critical']
    assert critical and all(s['alerts'] == ['page', 'budget'] for s in critical)
    # h000 (svc0), h020, ... are critical; every service has a critical host among its every-tenth hosts
    assert report['slo_services'] == {'svc0': 'critical', 'svc1': 'critical', 'svc2': 'critical'}
    assert len(out['Print the SLO table']) == len(slos) + 1


def test_incident_changes_of_the_batch_one_per_measured_host():
    """main.yml's one incident task: a change per host with a result, open at or above health_incident_on
    (per host, as each host's own task had it), resolved below it; unreachable hosts are left alone."""
    tasks = yaml.safe_load((ROLE / 'tasks' / 'main.yml').read_text())
    task = [t for t in tasks if t['name'] == 'Open, escalate or resolve the incidents of the fleet'][0]
    assert task.get('run_once') is True and task.get('delegate_to') == 'localhost'
    defaults = yaml.safe_load((ROLE / 'defaults' / 'main.yml').read_text())
    variables = fleet_variables()
    hosts = variables['ansible_play_hosts_all']
    for name in hosts[:50]:          # a group that pages on warnings too
        variables['hostvars'][name]['health_incident_on'] = 'warning'
    variables['hostvars']['h002']['health_incident_severity'] = {'critical': 1, 'warning': 4}
    variables = dict(defaults, **variables, ansible_play_batch=hosts)
    templar = Templar(loader=DataLoader(), variables=variables)
    changes = templar.template(trust_as_template(task['opsready.operations.incident']['changes']))
    by_key = {c['key']: c for c in changes}
    assert len(changes) == len(by_key) == HOSTS - HOSTS // len(VERDICTS)
    for i, name in enumerate(hosts):
        verdict = VERDICTS[i % len(VERDICTS)]
        if verdict is None:
            assert 'health:' + name not in by_key
            continue
        change = by_key['health:' + name]
        opens = verdict == 'critical' or (verdict == 'warning' and i < 50)
        assert change['state'] == ('open' if opens else 'resolved'), (name, verdict)
        result = variables['hostvars'][name]['health_result']
        if opens:
            assert change['title'] == '%s health is %s' % (name, verdict)
            assert change['severity'] == (1 if name == 'h002' else {'critical': 2, 'warning': 4}[verdict])
            assert change['components'] == [name] + ['check%d' % k for k in range(len(result['findings']))]
            assert change['description'] == ' '.join(f['message'] for f in result['findings'][:5])
            assert change['note'] == 'health verdict %s: %s' % (verdict, ', '.join(result['conditions']))
        else:
            assert change == {'key': 'health:' + name, 'state': 'resolved', 'note': 'health verdict ' + verdict}
