"""The health role's fleet view (roles/health/tasks/fleet.yml) rendered by Ansible's own templar for 500
synthetic hosts: the rows, the table, the SLO view and the JSON report say what every host's result says,
and say it exactly as the Jinja loops of the role before the health_fleet_view filter did (fixtures/
health_fleet_jinja.yml). The time this takes at scale is measured by bench/fleet_scale.py, not asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.opsready.operations.plugins.filter.health_fleet_view import FilterModule

ROLE = Path(__file__).resolve().parents[3] / 'roles' / 'health'
JINJA_FLEET = Path(__file__).resolve().parent / 'fixtures' / 'health_fleet_jinja.yml'
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


def templar_with_filters(variables: dict) -> Templar:
    templar = Templar(loader=DataLoader(), variables=variables)
    for name, function in FilterModule().filters().items():
        # the collection's filter under its FQCN, without installing Ansible's collection loader in pytest
        templar.environment.filters['opsready.operations.' + name] = function
    return templar


def render_fleet_view(variables: dict, path: Path = ROLE / 'tasks' / 'fleet.yml') -> dict:
    """Run fleet.yml's templates in order (set_fact results feed the next tasks): {task name: output}, and
    the facts set under 'facts'."""
    tasks = yaml.safe_load(path.read_text())
    templar = templar_with_filters(variables)
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
        elif 'ansible.builtin.copy' in task or 'opsready.operations.safe_write' in task:  # the old copy, safe_write now
            module = task.get('ansible.builtin.copy') or task['opsready.operations.safe_write']
            out[task['name']] = templar.template(trust_as_template(module['content']))
        assert task.get('run_once') is True, '%s must run once on the control node, not on every host' % task['name']
    out['facts'] = variables
    return out


@pytest.fixture(scope='module')
def rendered():
    variables = fleet_variables()
    return variables, render_fleet_view(variables)


def test_every_host_has_its_row_sorted_by_verdict(rendered):
    variables, out = rendered
    rows = out['facts']['health_fleet_view']['report']['hosts']
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
    rows = out['facts']['health_fleet_view']['report']['hosts']
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


def odd_fleet() -> dict:
    """The 500 hosts plus the shapes a real run gives besides: a failed measurement (no verdict), a skipped
    SLO step, SLOs without data (None values), services spelled in mixed case, fewer findings than rows."""
    variables = fleet_variables()
    hostvars = variables['hostvars']
    hostvars['h001']['health_result'] = {'failed': True, 'msg': 'psutil missing'}
    hostvars['h003']['health_slo'] = {'skipped': True, 'changed': False}
    hostvars['h005']['health_result'] = {'verdict': 'warning', 'findings': [{'check': 'disk', 'message': 'm'}],
                                         'conditions': [], 'summary': {'warning': '1'}}
    empty = slo(7, 'Web', 'no_data')
    empty.update(sli=None, sli_percent=None, budget={'consumed_percent': None, 'remaining_percent': None,
                                                     'alert': False}, burn_rates={'1h': None, '6h': None})
    hostvars['h007']['health_slo'] = {'slos': [empty, slo(7, 'web', 'warning'), slo(7, 'api', 'ok')]}
    hostvars['h009']['health_slo'] = {'slos': [slo(9, 'WEB', 'ok')]}
    variables['health_incidents'] = dict(variables['health_incidents'])
    return variables


@pytest.mark.parametrize('fleet', [fleet_variables, odd_fleet], ids=['fleet', 'odd-shapes'])
def test_same_tables_and_report_as_the_jinja_loops(fleet):
    """The filter's one pass prints the same tables and writes the same report bytes as the templates did."""
    before = render_fleet_view(fleet(), JINJA_FLEET)
    after = render_fleet_view(fleet())
    for task in ('Print the fleet table', 'Print the SLO table', 'Write the fleet report'):
        assert after[task] == before[task], task
    assert after['Write the fleet report'].endswith('}\n')
    assert after['facts']['health_fleet_view']['report']['hosts'] == before['facts']['health_fleet']
    assert after['facts']['health_fleet_view']['report']['slos'] == before['facts']['health_fleet_slos']
    assert after['facts']['health_fleet_view']['report']['slo_services'] == before['facts']['health_fleet_slo_services']


def test_no_hosts_and_no_incident_task():
    """A play whose hosts all failed before the view, or a role run without incidents: an empty view."""
    variables = {'ansible_play_hosts_all': ['a'], 'hostvars': {'a': {}}, 'health_report_path': ''}
    before = render_fleet_view(dict(variables), JINJA_FLEET)
    after = render_fleet_view(dict(variables))
    assert after['Print the fleet table'] == before['Print the fleet table']
    assert after['facts']['health_fleet_view']['report'] == {
        'hosts': [{'host': 'a', 'verdict': 'unreachable', 'critical': 0, 'warning': 0, 'worst': [], 'conditions': [],
                   'incident': None}], 'verdicts': ['unreachable'], 'slos': [], 'slo_services': {}}


ONCE_PER_PLAY = ('ansible.builtin.meta', 'ansible.builtin.import_tasks')   # no worker per host (meta), or its tasks'


def test_per_host_tasks_are_the_measurement_and_the_analysis_include():
    """Every task of main.yml that is not run once costs the controller a worker per host, skipped or not
    (~0.1 s each at 500 hosts on a loaded 2-core VM): only the measurement and the analysis include are.
    The fail check is a handler that only the failing hosts run, flushed by a meta task (no worker)."""
    tasks = yaml.safe_load((ROLE / 'tasks' / 'main.yml').read_text())
    per_host = [t['name'] for t in tasks if not t.get('run_once') and not any(k in t for k in ONCE_PER_PLAY)]
    assert per_host == ['Measure health', 'Capacity plan and service level objectives']
    assert tasks[-1]['ansible.builtin.meta'] == 'flush_handlers'
    handlers = yaml.safe_load((ROLE / 'handlers' / 'main.yml').read_text())
    measure = tasks[0]
    assert measure['notify'] == handlers[0]['name'] == 'Fail a host whose verdict reaches health_fail_on'


@pytest.mark.parametrize('verdict,fail_on,recorded,on_record,changed', [
    ('critical', 'critical', False, True, True),      # fails: notifies the handler
    ('warning', 'critical', False, True, False),
    ('warning', 'warning', False, False, True),
    ('ok', 'warning', True, True, True),              # a history sample written: changed as before
    ('ok', 'warning', True, False, False),            # ... unless health_changed_on_record is false
    ('critical', 'never', False, True, False),
    (None, 'critical', False, True, False),           # no verdict (the module failed): not a notification
])
def test_measure_health_is_changed_when_recorded_or_failing(verdict, fail_on, recorded, on_record, changed):
    tasks = yaml.safe_load((ROLE / 'tasks' / 'main.yml').read_text())
    result = {'changed': recorded}
    if verdict is not None:
        result['verdict'] = verdict
    variables = {'health_result': result, 'health_fail_on': fail_on, 'health_changed_on_record': on_record}
    templar = Templar(loader=DataLoader(), variables=variables)
    assert templar.template(trust_as_template('{{ %s }}' % tasks[0]['changed_when'])) is changed
