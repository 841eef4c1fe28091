"""playbooks/log_rotation.yml end to end: both backends, and logrotate -d refusing a broken policy."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

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
    assert 'validate refused the new content' in bad.stdout and 'broken' in bad.stdout
    assert sorted(p.name for p in confdir.iterdir()) == ['app']


def test_directory_of_another_user_needs_su_on_both_backends(tmp_path):
    """A log directory owned by nobody: refused as root without su; rotated as nobody with su (opsready
    backend); the logrotate backend writes the same su directive and logrotate accepts and uses it."""
    base = Path(tempfile.mkdtemp(prefix='opsready-su-', dir='/var/tmp'))   # tmp_path is root's 0700
    try:
        base.chmod(0o755)
        logdir = base / 'log'
        logdir.mkdir()
        log = logdir / 'app.log'
        log.write_text('x' * 4096)
        for path in (logdir, log):
            os.chown(path, 65534, 65534)
        policy = {'name': 'app', 'paths': [str(logdir / '*.log')], 'size': '1k', 'rotate': 2}
        state = {'log_rotation_state_file': str(tmp_path / 'state.json')}
        refused = run_playbook('playbooks/log_rotation.yml', extravars={'log_rotation_policies': [policy], **state})
        assert refused.rc != 0 and 'Refusing to rotate as root' in refused.stdout
        assert sorted(p.name for p in logdir.iterdir()) == ['app.log']
        policy['su'] = {'user': 'nobody', 'group': 'nogroup'}
        ours = run_playbook('playbooks/log_rotation.yml', extravars={'log_rotation_policies': [policy], **state})
        assert ours.rc == 0, ours.stdout[-3000:]
        assert sorted(p.name for p in logdir.iterdir()) == ['app.log', 'app.log.1.zst']
        assert {p.stat().st_uid for p in logdir.iterdir()} == {65534}
        confdir = tmp_path / 'logrotate.d'
        confdir.mkdir()
        theirs = run_playbook('playbooks/log_rotation.yml', extravars={
            'log_rotation_backend': 'logrotate', 'log_rotation_logrotate_dir': str(confdir),
            'log_rotation_policies': [dict(policy, mode='copy')]})
        assert theirs.rc == 0, theirs.stdout[-3000:]
        text = (confdir / 'app').read_text()
        assert '    su nobody nogroup\n' in text and '    copy\n' in text
        log.write_text('y' * 4096)
        subprocess.run(['/usr/sbin/logrotate', '-s', str(tmp_path / 'lr.state'), str(confdir / 'app')], check=True)
        assert sorted(p.name for p in logdir.iterdir()) == ['app.log', 'app.log.1.zst', 'app.log.2.zst']
        assert log.read_text() == 'y' * 4096   # copy: the log itself is left as it is
    finally:
        shutil.rmtree(base, ignore_errors=True)
