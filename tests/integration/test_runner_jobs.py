"""The main playbooks run the way AWX runs a job: ansible-runner with a private data directory.

AWX writes a private data directory (``inventory/``, ``env/extravars``, ``env/envvars``,
``env/settings``, ``project/``) and, through receptor, streams it with ``ansible-runner transmit``
to ``ansible-runner worker`` on the execution node, whose event stream ``ansible-runner process``
turns back into artifacts (``status``, ``rc``, ``stdout``, ``job_events/*.json``). These tests do the
same with the real CLI and assert on those artifacts, as AWX does to show a job's result.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.patching_repo import PREFIX, AptTestRepo, apt_test_lock, installed_version

REPO = Path(__file__).resolve().parents[2]
RUNNER = str(REPO / '.venv' / 'bin' / 'ansible-runner')


def private_data_dir(root: Path, extravars: dict) -> Path:
    pdd = root / 'pdd'
    (pdd / 'env').mkdir(parents=True)
    (pdd / 'inventory').mkdir()
    (pdd / 'inventory' / 'hosts.yml').write_text(yaml.safe_dump({'all': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': str(REPO / '.venv' / 'bin' / 'python')}}}}))
    (pdd / 'env' / 'extravars').write_text(yaml.safe_dump(extravars))
    (pdd / 'env' / 'envvars').write_text(yaml.safe_dump({
        'ANSIBLE_CONFIG': str(REPO / 'ansible.cfg'),
        'ANSIBLE_COLLECTIONS_PATH': str(REPO / 'build'),
        'ANSIBLE_NOCOLOR': '1',
        'PATH': str(REPO / '.venv' / 'bin') + os.pathsep + os.environ.get('PATH', ''),
    }))
    (pdd / 'env' / 'settings').write_text(yaml.safe_dump({'job_timeout': 900, 'suppress_ansible_output': True}))
    # AWX syncs the project into the private data directory; a link to the repository is the same tree.
    (pdd / 'project').symlink_to(REPO)
    return pdd


def artifacts(pdd: Path, ident: str) -> dict:
    base = pdd / 'artifacts' / ident
    events = [json.loads(p.read_text()) for p in sorted((base / 'job_events').glob('*.json'),
                                                        key=lambda p: int(p.name.split('-')[0]))]
    return {'status': (base / 'status').read_text(), 'rc': int((base / 'rc').read_text()),
            'stdout': (base / 'stdout').read_text(), 'events': events}


def results(events, task, kinds=('runner_on_ok', 'runner_on_failed')):
    return [e['event_data'] for e in events if e['event'] in kinds and e['event_data'].get('task') == task]


@pytest.fixture
def apt_repo():
    with apt_test_lock():
        repo = AptTestRepo()
        try:
            yield repo
        finally:
            repo.cleanup()


def test_patching_job_through_transmit_worker_process(apt_repo, tmp_path):
    apt_repo.package('alpha', '1.0')
    apt_repo.package('alpha', '2.0')
    apt_repo.publish()
    apt_repo.install('alpha', '1.0')
    pdd = private_data_dir(tmp_path, {
        'patching_apt_config': apt_repo.apt_config(),
        'patching_report_dir': str(tmp_path / 'reports'),
        'patching_run_id': 'awx-job-1',
        'patching_health_metrics': ['memory'],
        'patching_disk_min_free': [{'path': '/', 'min_free_mb': 100}],
    })
    worker_dir = tmp_path / 'worker'
    worker_dir.mkdir()
    transmit = subprocess.Popen([RUNNER, 'transmit', str(pdd), '-p', 'playbooks/patching.yml', '--ident', 'job1'],
                                stdout=subprocess.PIPE)
    worker = subprocess.Popen([RUNNER, 'worker', '--private-data-dir', str(worker_dir)], stdin=transmit.stdout,
                              stdout=subprocess.PIPE)
    transmit.stdout.close()
    process = subprocess.run([RUNNER, 'process', str(pdd), '--ident', 'job1'], stdin=worker.stdout,
                             capture_output=True, text=True, timeout=900, check=False)
    worker.stdout.close()
    assert worker.wait(timeout=60) == 0 and transmit.wait(timeout=60) == 0
    assert process.returncode == 0, process.stderr[-2000:]

    job = artifacts(pdd, 'job1')
    assert job['status'] == 'successful', job['stdout'][-3000:]
    assert job['rc'] == 0
    kinds = [e['event'] for e in job['events']]
    assert kinds[0] == 'playbook_on_start' and kinds[-1] == 'playbook_on_stats'
    patch = results(job['events'], 'Apply OS updates')
    assert len(patch) == 1 and patch[0]['host'] == 'localhost'
    assert [(u['name'], u['old'], u['new']) for u in patch[0]['res']['upgraded']] == [(PREFIX + 'alpha', '1.0', '2.0')]
    stats = job['events'][-1]['event_data']
    assert stats['changed'].get('localhost', 0) >= 1 and not stats['failures']
    assert installed_version(PREFIX + 'alpha') == '2.0'
    report = json.loads((tmp_path / 'reports' / 'patching-awx-job-1.json').read_text())
    assert report['hosts']['localhost']['status'] == 'patched'


def test_failing_health_job_is_reported_failed(tmp_path):
    pdd = private_data_dir(tmp_path, {
        'health_state_dir': str(tmp_path / 'health'),
        'health_metrics': [],
        'health_capacity_plan': False,
        # Nothing listens on port 1 of the loopback: a critical finding.
        'health_checks': [{'type': 'tcp', 'name': 'api-port', 'host': '127.0.0.1', 'port': 1, 'timeout': 2}],
    })
    proc = subprocess.run([RUNNER, 'run', str(pdd), '-p', 'playbooks/health.yml', '--ident', 'job2'],
                          capture_output=True, text=True, timeout=600, check=False)
    job = artifacts(pdd, 'job2')
    assert proc.returncode != 0
    assert job['status'] == 'failed'
    assert job['rc'] == 2
    failed = [e for e in job['events'] if e['event'] == 'runner_on_failed']
    assert failed and failed[0]['event_data']['host'] == 'localhost'
    assert '127.0.0.1:1 failed' in failed[0]['event_data']['res']['msg']
    assert job['events'][-1]['event_data']['failures'] == {'localhost': 1}
