"""The health role's SLO step across a small fleet: SLOs from each host's history (the probe of this run
appended to what was recorded before), the SLO table and per-service status in the fleet report, and the
Prometheus rules file written once on the control node."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time

import pytest
import yaml

from tests.harness.playbook import REPO, VENV_PYTHON, run_playbook
from tests.harness.promtool import check_textfile, promtool

QUIET = {'cpu_percent': {'warning': None, 'critical': None}, 'load_per_core': {'warning': None, 'critical': None}}


class _Ok(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')


@pytest.fixture
def api():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield 'http://127.0.0.1:%d/health' % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_fleet_report_shows_slo_status_per_service(tmp_path, api):
    now = time.time()
    # web1 recorded an hour of failed probes of "api" (every minute); web2 has no history yet.
    lines = [{'t': now - 60 * i, 'host': 'web1', 'verdict': 'critical',
              'probes': {'api': {'type': 'http', 'ok': 0, 'n': 4, 'err': 4}}} for i in range(60, 0, -1)]
    (tmp_path / 'web1-history.jsonl').write_text(''.join(json.dumps(x) + '\n' for x in lines))
    hosts = {name: {'ansible_connection': 'local', 'ansible_python_interpreter': VENV_PYTHON,
                    'health_history_path': str(tmp_path / ('%s-history.jsonl' % name)),
                    'health_slo_textfile_path': str(tmp_path / ('%s-slo.prom' % name))} for name in ('web1', 'web2')}
    inventory = tmp_path / 'fleet.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': hosts}}))
    state = tmp_path / 'state'
    rules_path = tmp_path / 'opsready-rules.yml'
    extravars = {
        'health_state_dir': str(state), 'health_fail_on': 'never', 'health_metrics': ['memory'],
        'health_thresholds': QUIET, 'health_capacity_plan': False,
        'health_checks': [{'type': 'http', 'name': 'api', 'url': api, 'requests': 4}],
        'health_slos': [
            {'name': 'api-availability', 'service': 'api', 'sli': 'availability', 'objective': 99.95, 'check': 'api'},
            {'name': 'api-errors', 'service': 'api', 'sli': 'error_rate', 'objective': 99.9, 'check': 'api'},
        ],
        'health_prometheus_rules_path': str(rules_path),
    }
    run = run_playbook(str(REPO / 'playbooks/health.yml'), inventory=str(inventory), extravars=extravars)
    assert run.rc == 0, run.stdout[-4000:]
    web1 = {s['name']: s for s in run.result('Compute the service level objectives', host='web1')['slos']}
    # 60 failed runs and this run's good one. The last 5 minutes still hold 4 failures of 5 runs, the last
    # hour 59 of 60 (the run a few seconds ago replaced the oldest): both burn far over 14.4x, page.
    assert web1['api-availability']['events'] == {'good': 1.0, 'bad': 60.0, 'total': 61.0, 'samples': 61}
    assert web1['api-availability']['status'] == 'critical' and web1['api-availability']['alerts'][0]['firing']
    assert web1['api-errors']['events']['total'] == 244 and web1['api-errors']['events']['bad'] == 240
    web2 = run.result('Compute the service level objectives', host='web2')['slos']
    assert [s['status'] for s in web2] == ['ok', 'ok'] and web2[0]['events']['total'] == 1

    table = run.result('Print the SLO table')['msg']
    assert table[0].split()[:4] == ['service', 'slo', 'host', 'status']
    rows = {(line.split()[1], line.split()[2]): line.split()[3] for line in table[1:]}
    assert rows == {('api-availability', 'web1'): 'critical', ('api-availability', 'web2'): 'ok',
                    ('api-errors', 'web1'): 'critical', ('api-errors', 'web2'): 'ok'}
    report = json.loads((state / 'fleet.json').read_text())
    assert report['slo_services'] == {'api': 'critical'}
    burning = [r for r in report['slos'] if r['host'] == 'web1' and r['slo'] == 'api-availability'][0]
    assert 'page' in burning['alerts'] and burning['budget_remaining_percent'] < 0
    assert burning['burn_rate_1h'] > 14.4

    text = check_textfile(tmp_path / 'web1-slo.prom')
    assert 'opsready_slo_status{service="api",sli="availability",slo="api-availability"} 2' in text
    written = run.task_results('Write the Prometheus rules for the SLOs, hosts and backups')
    assert [r['changed'] for r in written if r['_event'] == 'runner_on_ok'] == [True]   # once, on the control node
    check = subprocess.run([promtool(), 'check', 'rules', str(rules_path)], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr
