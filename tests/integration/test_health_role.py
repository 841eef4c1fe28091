"""playbooks/health.yml across a small fleet: fleet table and JSON, incidents opened once and resolved,
one alert per change, the play failing for a critical host."""

from __future__ import annotations

import http.server
import json
import threading

import pytest
import yaml

from tests.harness.playbook import REPO, VENV_PYTHON, run_playbook

QUIET = {'cpu_percent': {'warning': None, 'critical': None}, 'load_per_core': {'warning': None, 'critical': None}}
SICK = dict(QUIET, memory_percent={'warning': 0.5, 'critical': 1})


class _Hook(http.server.BaseHTTPRequestHandler):
    events: list = []

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        _Hook.events.append((body['event'], body['incident']['key'], self.headers.get('Authorization')))
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def webhook():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.events = []
    yield 'http://127.0.0.1:%d/hook' % server.server_address[1]
    server.shutdown()
    server.server_close()


def inventory(tmp_path, sick: bool) -> str:
    hosts = {}
    for name in ('web1', 'web2', 'db1'):
        hosts[name] = {'ansible_connection': 'local', 'ansible_python_interpreter': VENV_PYTHON,
                       'health_thresholds': SICK if (sick and name == 'db1') else QUIET,
                       'health_history_path': str(tmp_path / ('%s-history.jsonl' % name))}
    path = tmp_path / 'fleet.yml'
    path.write_text(yaml.safe_dump({'all': {'hosts': hosts}}))
    return str(path)


INCIDENTS = 'Open, escalate or resolve the incidents of the fleet'


def incident_change(run, host):
    """The incident change of ``host`` in the fleet's one incident task (run once on the control node)."""
    changes = {item['key']: item for item in run.result(INCIDENTS)['results']}
    return changes['health:' + host]


def incidents(store):
    lines = [json.loads(line) for line in store.read_text().splitlines()] if store.exists() else []
    return lines


def test_fleet_incident_opens_once_alerts_once_and_resolves(tmp_path, webhook):
    state = tmp_path / 'state'
    extravars = {'health_state_dir': str(state), 'health_fail_on': 'critical',
                 'health_metrics': ['memory', 'filesystems'],
                 'health_webhook': {'url': webhook, 'headers': {'Authorization': 'Bearer hook-secret'},
                                    'retries': 2, 'backoff': 0.2}}
    first = run_playbook(str(REPO / 'playbooks/health.yml'), inventory=inventory(tmp_path, sick=True),
                         extravars=extravars)
    # db1 is critical: the play fails for it, after the fleet view and the incident were written.
    assert first.rc != 0
    assert first.result('Fail a host whose verdict reaches health_fail_on', host='db1')['_event'] == 'runner_on_failed'
    table = first.result('Print the fleet table')['msg']
    assert table[0].split()[:2] == ['host', 'verdict']
    rows = {line.split()[0]: line.split()[1] for line in table[1:]}
    assert rows == {'web1': 'ok', 'web2': 'ok', 'db1': 'critical'}
    report = json.loads((state / 'fleet.json').read_text())
    db1 = [h for h in report['hosts'] if h['host'] == 'db1'][0]
    assert db1['verdict'] == 'critical' and 'Memory use' in db1['worst'][0]
    events = incidents(state / 'incidents.jsonl')
    assert [(e['event'], e['key']) for e in events] == [('open', 'health:db1')]
    assert events[0]['severity'] == 2
    assert db1['incident'] == events[0]['id']      # the fleet report names the host's open incident
    assert {h['host']: h['incident'] for h in report['hosts'] if h['host'] != 'db1'} == {'web1': None, 'web2': None}
    assert _Hook.events == [('open', 'health:db1', 'Bearer hook-secret')]
    assert 'hook-secret' not in first.stdout
    assert 'resource' in first.result('Show the capacity plan', host='web1')['msg'][0]

    second = run_playbook(str(REPO / 'playbooks/health.yml'), inventory=inventory(tmp_path, sick=True),
                          extravars=extravars)
    assert second.rc != 0
    assert incident_change(second, 'db1')['changed'] is False
    assert len(incidents(state / 'incidents.jsonl')) == 1
    assert len(_Hook.events) == 1  # the ongoing problem does not page again

    third = run_playbook(str(REPO / 'playbooks/health.yml'), inventory=inventory(tmp_path, sick=False),
                         extravars=extravars)
    assert third.rc == 0, third.stdout[-3000:]
    events = incidents(state / 'incidents.jsonl')
    assert [e['event'] for e in events] == ['open', 'resolve']
    assert _Hook.events[-1][:2] == ('resolve', 'health:db1')
    resolved = incident_change(third, 'db1')
    assert resolved['state'] == 'resolved' and resolved['changed'] is True
    assert resolved['incident']['status'] == 'resolved' and resolved['incident']['time_to_resolve_minutes'] >= 0
    # the healthy hosts had nothing open: their resolve changed nothing
    assert incident_change(third, 'web1')['changed'] is False and incident_change(third, 'web1')['incident'] is None
    # Each host kept its history: three runs, three samples.
    assert len((tmp_path / 'web1-history.jsonl').read_text().splitlines()) == 3


def test_the_playbook_runs_on_its_own_report_directory(tmp_path):
    """playbooks/health.yml with nothing set but the fleet writes its reports under the project's reports/health: its
    default was ``{{ playbook_dir }}/../reports/health``, which safe_dir refuses (a ".." component), so the documented
    command failed in its first task. The playbook runs from a copy of the project's layout in tmp_path, so the
    repository's own reports/ is not written."""
    project = tmp_path / 'project'
    (project / 'playbooks').mkdir(parents=True)
    (project / 'playbooks' / 'health.yml').write_text((REPO / 'playbooks' / 'health.yml').read_text())
    run = run_playbook(str(project / 'playbooks' / 'health.yml'), inventory=inventory(tmp_path, sick=False),
                       extravars={'health_metrics': ['memory']})
    assert run.rc == 0, run.stdout[-3000:]
    report = json.loads((project / 'reports' / 'health' / 'fleet.json').read_text())
    assert sorted(h['host'] for h in report['hosts']) == ['db1', 'web1', 'web2']
