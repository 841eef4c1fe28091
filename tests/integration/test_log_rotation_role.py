"""playbooks/log_rotation.yml end to end: both backends, and logrotate -d refusing a broken policy."""

from __future__ import annotations

import subprocess

from tests.harness.playbook import run_playbook


def test_playbook_both_backends_and_invalid_policy_not_installed(tmp_path):
    logdir = tmp_path / 'log'
    logdir.mkdir()
    (logdir / 'app.log').write_text('x' * 4096)
    confdir = tmp_path / 'logrotate.d'
    confdir.mkdir()
    policy = {'name': 'app', 'paths': [str(logdir / '*.log')], 'size': '1k', 'rotate': 2}
    ours = run_playbook('playbooks/log_rotation.yml', extravars={
        'log_rotation_policies': [policy], 'log_rotation_state_file': str(tmp_path / 'state.json')})
    assert ours.rc == 0
    assert sorted(p.name for p in logdir.iterdir()) == ['app.log', 'app.log.1.zst']
    # the logrotate backend writes a policy logrotate accepts, and logrotate rotates with it
    theirs = run_playbook('playbooks/log_rotation.yml', extravars={
        'log_rotation_backend': 'logrotate', 'log_rotation_logrotate_dir': str(confdir),
        'log_rotation_policies': [policy]})
    assert theirs.rc == 0
    (logdir / 'app.log').write_text('y' * 4096)
    subprocess.run(['/usr/sbin/logrotate', '-s', str(tmp_path / 'lr.state'), str(confdir / 'app')], check=True)
    assert sorted(p.name for p in logdir.iterdir()) == ['app.log', 'app.log.1.zst', 'app.log.2.zst']
    # a policy logrotate -d rejects (a path matching nothing without missingok) is never installed
    broken = {'name': 'broken', 'paths': [str(tmp_path / 'nowhere' / '*.log')], 'size': '1k'}
    bad = run_playbook('playbooks/log_rotation.yml', extravars={
        'log_rotation_backend': 'logrotate', 'log_rotation_logrotate_dir': str(confdir),
        'log_rotation_policies': [broken]})
    assert bad.rc != 0
    assert 'failed to validate' in bad.stdout
    assert sorted(p.name for p in confdir.iterdir()) == ['app']
