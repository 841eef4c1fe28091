"""Several hosts over real SSH: one sshd per host on 127.0.0.2, 127.0.0.3, 127.0.0.4 (tests/harness/sshd.py).

health.yml and patching.yml run across them with ``serial: 1``. Each host has its own apt repository
(so "upgrade everything" on a host upgrades that host's package only, although the three hosts share
this machine's dpkg database) and its own HTTP service on its own address, probed after patching.
The service of the second host is down: its post-check fails, the rollout stops, and the third host
is never patched. All traffic stays on loopback.
"""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from tests.harness.playbook import run_playbook
from tests.harness.sshd import SshFleet, SshHarnessError
from tests.integration.patching_repo import PREFIX, AptTestRepo, apt_test_lock, installed_version

NAMES = ['web1', 'web2', 'web3']


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b'ok\n'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Service:
    """A tiny HTTP service on one loopback address."""

    def __init__(self, address: str, port: int) -> None:
        self.httpd = http.server.ThreadingHTTPServer((address, port), _Ok)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fleet():
    try:
        with SshFleet(NAMES) as running:
            yield running
    except SshHarnessError as exc:
        pytest.fail('SSH test hosts could not start: %s' % exc)


@pytest.fixture
def repos():
    with apt_test_lock():
        made = {}
        try:
            for name in NAMES:
                repo = AptTestRepo()
                repo.package(name, '1.0')
                repo.package(name, '2.0')
                repo.publish()
                repo.install(name, '1.0')
                made[name] = repo
            yield made
        finally:
            for repo in made.values():
                repo.cleanup()


def _accepted(fleet: SshFleet) -> dict:
    return {h.name: h.log.count('Accepted publickey for root') for h in fleet.hosts}


def test_health_then_rolling_patching_stops_at_the_unhealthy_host(fleet, repos, tmp_path):
    port = 18080
    services = [Service(h.address, port) for h in fleet.hosts if h.name != 'web2']   # web2's service is down
    try:
        inventory = fleet.inventory(
            groups={'appservers': NAMES},
            host_vars={name: {'patching_apt_config': repos[name].apt_config()} for name in NAMES},
            group_vars={
                'patching_smoke_probes': [{'name': 'web', 'url': 'http://{{ ansible_host }}:%d/health' % port,
                                           'expect_status': [200], 'timeout': 3}],
                'patching_health_metrics': ['memory'],
                'patching_disk_min_free': [{'path': '/', 'min_free_mb': 100}],
                'patching_reboot_required_file': str(tmp_path / 'no-reboot-flag'),
                'health_metrics': ['memory'],
            })

        # Every host answers over its own sshd before anything else.
        for host in fleet.hosts:
            probe = fleet.ssh(host, 'echo $SSH_CONNECTION')
            assert probe.returncode == 0, probe.stderr
            assert probe.stdout.split()[2] == host.address

        health = run_playbook('playbooks/health.yml', inventory=inventory,
                              extravars={'health_state_dir': str(tmp_path / 'health'),
                                         'health_capacity_plan': False})
        assert health.rc == 0, health.stdout[-4000:]
        verdicts = {r['_host']: r['verdict'] for r in health.task_results() if 'verdict' in r and r['_host'] in NAMES}
        assert set(verdicts) == set(NAMES), verdicts
        assert all(_accepted(fleet)[name] > 0 for name in NAMES), _accepted(fleet)

        run = run_playbook('playbooks/patching.yml', inventory=inventory,
                           extravars={'patching_hosts': 'appservers', 'patching_serial': 1,
                                      'patching_report_dir': str(tmp_path / 'reports'),
                                      'patching_run_id': 'rolling'})
    finally:
        for service in services:
            service.close()

    assert run.rc != 0, 'the rollout should have stopped at web2'
    # web1 (first batch, the canary) patched; web2 patched but failed its smoke probe; web3 untouched.
    assert installed_version(PREFIX + 'web1') == '2.0'
    assert installed_version(PREFIX + 'web2') == '2.0'
    assert installed_version(PREFIX + 'web3') == '1.0'
    patched_hosts = [r['_host'] for r in run.task_results('Apply OS updates')]
    assert patched_hosts == ['web1', 'web2']
    # max_fail_percentage 0 ends the rollout after web2's batch: web3 never ran a task, not even a pre-check
    assert run.task_results(host='web3') == []

    report = json.loads((tmp_path / 'reports' / 'patching-rolling.json').read_text())
    hosts = report['hosts']
    assert hosts['web1']['status'] == 'patched'
    assert [(u['name'], u['old'], u['new']) for u in hosts['web1']['upgraded']] == [(PREFIX + 'web1', '1.0', '2.0')]
    assert hosts['web2']['status'] == 'failed'
    assert 'Post-check' in hosts['web2']['reason']
    assert [u['name'] for u in hosts['web2']['upgraded']] == [PREFIX + 'web2']
    assert hosts['web3'] == {'status': 'not_reached'}
    markdown = (tmp_path / 'reports' / 'patching-rolling.md').read_text()
    assert '| web3 | not_reached |' in markdown
