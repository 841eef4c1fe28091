"""The schedule role: cron entries that really run a playbook under an overlap lock, systemd units that
systemd-analyze accepts, check mode that lists without writing, idempotence, and removal.

There is no systemd (PID 1) and no cron daemon on this machine, so the cron path is proven by running the
exact command of the installed cron line, and the systemd path by `systemd-analyze verify` on the units.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.harness.playbook import REPO, run_playbook


@pytest.fixture
def project(tmp_path):
    """A project dir as the schedule sees it: ansible.cfg, build/ and a playbook that leaves a marker."""
    proj = tmp_path / 'project'
    (proj / 'playbooks').mkdir(parents=True)
    os.symlink(REPO / 'ansible.cfg', proj / 'ansible.cfg')
    os.symlink(REPO / 'build', proj / 'build')
    (proj / 'playbooks' / 'marker.yml').write_text(yaml.safe_dump([{
        'name': 'marker', 'hosts': 'all', 'gather_facts': False, 'tasks': [
            {'name': 'leave a marker', 'ansible.builtin.copy': {
                'dest': '{{ marker }}', 'content': '{{ greeting }} {{ lookup("env", "SLEEP") }}\n', 'mode': '0644'}},
            {'name': 'take a while when asked', 'ansible.builtin.command': 'sleep {{ pause | default(0) }}',
             'changed_when': False}]}]))
    dirs = {k: tmp_path / k for k in ('cron', 'units', 'config', 'logs', 'locks')}
    dirs['cron'].mkdir()
    dirs['units'].mkdir()
    return {'dir': proj, 'marker': tmp_path / 'marker.txt', **dirs}


def schedule(project, jobs, backend='cron', check=False):
    return run_playbook('playbooks/schedule.yml', check=check, diff=check, extravars={
        'schedule_backend': backend, 'schedule_project_dir': str(project['dir']),
        'schedule_inventory': str(REPO / 'inventories' / 'local'),
        'schedule_cron_dir': str(project['cron']), 'schedule_unit_dir': str(project['units']),
        'schedule_config_dir': str(project['config']), 'schedule_log_dir': str(project['logs']),
        'schedule_lock_dir': str(project['locks']), 'schedule_jobs': jobs})


def jobs_for(project, **extra):
    job = {'name': 'marker', 'playbook': 'playbooks/marker.yml', 'cron': '*/5 * * * *', 'on_calendar': '*:0/5',
           'extra_vars': {'marker': str(project['marker']), 'greeting': 'hello'}, 'lock': 'shared'}
    job.update(extra)
    other = {'name': 'slow', 'playbook': 'playbooks/marker.yml', 'cron': '0 3 1 * *', 'on_calendar': 'monthly',
             'extra_vars': {'marker': str(project['marker']) + '.slow', 'greeting': 'slow', 'pause': 8},
             'lock': 'shared'}
    waiter = {'name': 'waiter', 'playbook': 'playbooks/marker.yml', 'cron': '0 4 1 * *', 'on_calendar': 'monthly',
              'extra_vars': {'marker': str(project['marker']) + '.waiter', 'greeting': 'waited'},
              'lock': 'shared', 'lock_wait': 300}
    return [job, other, waiter]


def cron_command(line: str) -> str:
    fields = line.split(None, 6)
    assert len(fields) == 7, line  # five time fields, the user, the command
    return fields[6]


def test_cron_entries_run_the_playbook_under_a_lock(project):
    dry = schedule(project, jobs_for(project), check=True)
    assert dry.rc == 0, dry.stdout[-3000:]
    assert not list(project['cron'].iterdir()) and not project['config'].exists()
    assert 'would install' in dry.stdout and 'marker' in dry.stdout

    result = schedule(project, jobs_for(project))
    assert result.rc == 0, result.stdout[-3000:]
    entry = (project['cron'] / 'opsready-marker').read_text()
    line = [x for x in entry.splitlines() if x and not x.startswith('#') and '=' not in x.split()[0]][0]
    assert line.startswith('*/5 * * * * root ')
    assert not [p.name for p in project['cron'].iterdir() if '.' in p.name]  # Debian cron skips names with dots
    assert json.loads((project['config'] / 'marker.json').read_text())['greeting'] == 'hello'
    assert stat.S_IMODE((project['config'] / 'marker.json').stat().st_mode) == 0o600

    # the installed cron line, run as cron would run it: the playbook runs and leaves its marker
    command = cron_command(line)
    run = subprocess.run(['/bin/sh', '-c', command], env={'PATH': '/usr/bin:/bin'}, timeout=600, check=False)
    assert run.returncode == 0, (project['logs'] / 'marker.log').read_text()[-3000:]
    assert project['marker'].read_text().startswith('hello')
    assert 'PLAY RECAP' in (project['logs'] / 'marker.log').read_text()

    # while the slow job holds the shared lock, the marker job is skipped (exit 75), not run concurrently
    slow = subprocess.Popen([str(project['config'] / 'slow.sh')], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not Path(str(project['marker']) + '.slow').exists() and time.time() < deadline:
            time.sleep(0.5)
        assert slow.poll() is None, 'the slow job ended before the overlap could be tested'
        project['marker'].unlink()
        waiter = subprocess.Popen([str(project['config'] / 'waiter.sh')], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        overlapping = subprocess.run([str(project['config'] / 'marker.sh')], capture_output=True, timeout=60,
                                     check=False)
        assert overlapping.returncode == 75
        assert not project['marker'].exists(), 'the job ran although the lock was held'
        assert waiter.poll() is None, 'the lock_wait job did not wait for the lock'
    finally:
        slow.wait(timeout=300)
    assert slow.returncode == 0
    slow_done = time.time()
    assert waiter.wait(timeout=600) == 0
    waited = Path(str(project['marker']) + '.waiter')
    assert waited.read_text().startswith('waited') and waited.stat().st_mtime >= slow_done - 1

    again = schedule(project, jobs_for(project))
    assert again.rc == 0 and 'changed=0' in again.stdout.split('PLAY RECAP')[-1]

    removed = schedule(project, [dict(jobs_for(project)[0], state='absent')] + jobs_for(project)[1:])
    assert removed.rc == 0
    assert not (project['cron'] / 'opsready-marker').exists() and not (project['config'] / 'marker.sh').exists()
    assert (project['cron'] / 'opsready-slow').exists() and (project['cron'] / 'opsready-waiter').exists()


@pytest.mark.skipif(not shutil.which('systemd-analyze'), reason='systemd-analyze is not installed')
def test_systemd_units_pass_systemd_analyze(project):
    result = schedule(project, jobs_for(project), backend='systemd')
    assert result.rc == 0, result.stdout[-3000:]
    units = sorted(str(p) for p in project['units'].iterdir())
    assert [Path(u).name for u in units] == ['opsready-marker.service', 'opsready-marker.timer',
                                             'opsready-slow.service', 'opsready-slow.timer',
                                             'opsready-waiter.service', 'opsready-waiter.timer']
    verify = subprocess.run(['systemd-analyze', 'verify'] + units, capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stderr
    timer = (project['units'] / 'opsready-marker.timer').read_text()
    assert 'OnCalendar=*:0/5' in timer and 'Persistent=true' in timer
    assert 'SuccessExitStatus=75' in (project['units'] / 'opsready-marker.service').read_text()


def test_default_calendars_are_valid():
    defaults = yaml.safe_load((REPO / 'roles' / 'schedule' / 'defaults' / 'main.yml').read_text())
    jobs = defaults['schedule_jobs']
    assert {j['name'] for j in jobs} >= {'backup-full', 'backup-log', 'health', 'dr-drill'}
    for job in jobs:
        if shutil.which('systemd-analyze'):
            out = subprocess.run(['systemd-analyze', 'calendar', job['on_calendar']], capture_output=True, text=True,
                                 check=False)
            assert out.returncode == 0, (job['name'], out.stderr)
        assert len(job['cron'].split()) == 5
        if job.get('state', 'present') == 'present':
            assert (REPO / job['playbook']).is_file(), job
