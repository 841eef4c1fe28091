"""auto_recovery on real state: a full tmpfs is cleaned within the configured path only, a killed
service is restarted by the configured command, both re-checked and recorded on the incident; check
mode touches nothing. (No systemd on the test machine: the restart command is a script.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time

import pytest

from tests.harness.playbook import run_playbook, write_playbook
from tests.integration.health_servers import free_port

QUIET = {'cpu_percent': {'warning': None, 'critical': None}, 'load_per_core': {'warning': None, 'critical': None},
         'memory_percent': {'warning': None, 'critical': None}}


@pytest.fixture
def full_tmpfs(tmp_path):
    mount = tmp_path / 'fs'
    mount.mkdir()
    rc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', str(mount)], check=False).returncode
    if rc != 0:
        pytest.skip('cannot mount a tmpfs here (needs root): the disk_full path is untested')
    try:
        yield mount
    finally:
        subprocess.run(['umount', '-l', str(mount)], check=False)


def _write(path, size, age_days=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    if age_days:
        old = time.time() - age_days * 86400
        os.utime(path, (old, old))


@pytest.fixture
def service(tmp_path):
    """A 'service' (python http.server) with a pid file and a start script used as restart command."""
    port = free_port()
    pidfile = tmp_path / 'websvc.pid'
    script = tmp_path / 'svc-restart'
    script.write_text(textwrap.dedent('''\
        #!/bin/sh
        # usage: svc-restart UNIT  (stands in for systemctl restart UNIT)
        [ "$1" = websvc ] || exit 64
        echo "$1" >> %(log)s
        setsid %(py)s -m http.server %(port)d --bind 127.0.0.1 >/dev/null 2>&1 < /dev/null &
        echo $! > %(pid)s
        ''' % {'log': tmp_path / 'restarts.log', 'py': '/usr/bin/python3', 'port': port, 'pid': pidfile}))
    script.chmod(0o755)
    subprocess.run([str(script), 'websvc'], check=True)
    (tmp_path / 'restarts.log').unlink()  # count only the restarts auto_recovery makes
    time.sleep(1)
    yield {'port': port, 'pidfile': pidfile, 'script': str(script), 'log': tmp_path / 'restarts.log'}
    try:
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
    except (OSError, ValueError):
        pass


def play(tmp_path, mount, svc, enabled):
    checks = [{'type': 'process', 'name': 'websvc-pid', 'pidfile': str(svc['pidfile']), 'unit': 'websvc'},
              {'type': 'tcp', 'name': 'websvc-port', 'host': '127.0.0.1', 'port': svc['port'], 'unit': 'websvc'}]
    role_vars = {
        'auto_recovery_enabled': enabled,
        'auto_recovery_checks': checks,
        'auto_recovery_thresholds': QUIET,
        'auto_recovery_restart_command': [svc['script'], '{unit}'],
        'auto_recovery_disk_cleanup': [{'path': str(mount / 'logs'), 'patterns': ['*.gz'], 'age_days': 7,
                                        'recurse': True}],
        'auto_recovery_incident_store': str(tmp_path / 'incidents.jsonl'),
        'auto_recovery_settle_seconds': 1,
    }
    return write_playbook(tmp_path, [{'name': 'recover', 'ansible.builtin.include_role': {
        'name': 'opsready.operations.auto_recovery'}, 'vars': role_vars}])


def test_disk_full_and_service_down_recovered(tmp_path, full_tmpfs, service):
    mount = full_tmpfs
    old = [mount / 'logs' / 'app.1.gz', mount / 'logs' / 'sub' / 'app.2.gz']
    for path in old:
        _write(path, 1700 * 1024, age_days=10)
    keep = {mount / 'logs' / 'fresh.gz': 0, mount / 'logs' / 'app.log': 10, mount / 'other' / 'old.gz': 10}
    for path, age in keep.items():
        _write(path, 100 * 1024, age_days=age)
    # Outside the tmpfs, same pattern and age: must never be touched.
    outside = tmp_path / 'outside' / 'x.gz'
    _write(outside, 10, age_days=30)
    os.kill(int(service['pidfile'].read_text()), signal.SIGTERM)
    time.sleep(0.5)
    book = play(tmp_path, mount, service, ['disk_full', 'service_down'])
    store = tmp_path / 'incidents.jsonl'

    dry = run_playbook(book, check=True)
    assert dry.rc == 0, dry.stdout[-3000:]
    plan = dry.result('Show the plan')['msg']
    assert plan['restart'] == ['websvc'] and plan['clean_up'][0]['path'] == str(mount / 'logs')
    assert all(p.exists() for p in old) and not service['log'].exists() and not store.exists()

    run = run_playbook(book)
    assert run.rc == 0, run.stdout[-3000:]
    before = run.result('Measure before acting')
    assert {'disk_full', 'service_down'} <= set(before['conditions'])
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in keep) and outside.exists()
    assert service['log'].read_text().split() == ['websvc']  # restarted once, by unit name
    after = run.result('Re-check')
    assert after['verdict'] == 'ok', after['findings']
    fs = [f for f in after['metrics']['filesystems'] if f['mountpoint'] == str(mount)][0]
    assert fs['percent'] < 90
    events = [json.loads(line) for line in store.read_text().splitlines()]
    assert [e['event'] for e in events] == ['open', 'update', 'resolve']
    assert 'restart websvc' in events[0]['note'] and 'deleted 2 file(s)' in events[1]['note']

    again = run_playbook(book)
    assert again.rc == 0
    assert not [r for r in again.task_results() if r.get('changed')]
    assert len(store.read_text().splitlines()) == 3


def test_remediation_not_enabled_does_nothing(tmp_path, full_tmpfs, service):
    _write(full_tmpfs / 'logs' / 'big.gz', 3800 * 1024, age_days=30)
    book = play(tmp_path, full_tmpfs, service, ['service_down'])
    run = run_playbook(book)
    assert run.rc == 0
    assert 'disk_full' in run.result('Measure before acting')['conditions']
    assert (full_tmpfs / 'logs' / 'big.gz').exists()
    assert run.result('Show the plan')['msg']['clean_up'] == []
