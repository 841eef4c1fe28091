"""Fault matrix, hostile filesystems (rolewrite11; harness: test_hostile_files / test_hostile_round3, an unprivileged
account made and removed by the test playing the account that owns a directory on the operator's path).

- schedule role: the systemd units and cron files were written as root with ansible.builtin.template into
  schedule_unit_dir / schedule_cron_dir, the operator's choice. An account that can write such a directory could put a
  hard link to a file of its own at a unit's name: template (copy's atomic_move) gave the new unit that account's
  owner, so the account could then edit what root runs. Now written with safe_write (root's own staged file renamed
  over the name; what was there replaced, never followed nor re-owned).
- log_rotation role: the logrotate policies were written as root with ansible.builtin.template into
  log_rotation_logrotate_dir: an account owning a directory on that path could swap the policy directory for a symlink
  to a root directory, and root wrote the policy there. safe_write opens the path one component at a time and follows
  a link only in a directory only root can write: refused, nothing written.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from tests.faults import test_hostile_files as hostile
from tests.faults import test_hostile_round3 as round3
from tests.faults.helpers import play

racer_user = hostile.racer_user
arena = hostile.arena
as_user = round3.as_user
user_dir = round3.user_dir

REPO = Path(__file__).resolve().parents[2]
JOB = {'name': 'nightly', 'playbook': 'playbooks/health.yml', 'cron': '0 2 * * *', 'on_calendar': '*-*-* 02:00:00'}


def _schedule(arena, fault, backend: str, unit_dir: Path, cron_dir: Path):
    conf = arena['base'] / 'conf'
    return play(arena['base'], [{'name': 'schedule', 'ansible.builtin.include_role': {
        'name': 'opsready.operations.schedule'}}], fault=fault, timeout=300, extravars={
        'schedule_backend': backend, 'schedule_project_dir': str(REPO), 'schedule_cron_dir': str(cron_dir),
        'schedule_unit_dir': str(unit_dir), 'schedule_config_dir': str(conf),
        'schedule_log_dir': str(arena['base'] / 'log'), 'schedule_lock_dir': str(arena['base'] / 'lock'),
        'schedule_jobs': [JOB]})


def _roots_file(path: Path) -> str:
    st = os.lstat(path)
    return '%s uid %d nlink %d mode %04o' % ('a file' if stat.S_ISREG(st.st_mode) else 'not a file', st.st_uid,
                                             st.st_nlink, stat.S_IMODE(st.st_mode))


@pytest.mark.fast
@pytest.mark.parametrize('backend', ['systemd', 'cron'])
@pytest.mark.fault(fault='the account owning schedule_unit_dir / schedule_cron_dir puts a hard link to its own file '
                   'at a unit\'s or cron file\'s name (and a symlink to a root file at the timer\'s)',
                   component='schedule role',
                   expected='root\'s own 0644 files with one name; the linked files untouched')
def test_schedule_units_and_cron_files_over_links_planted_by_the_directory_owner(racer_user, arena, fault, backend):
    """Fails on the old code: ansible.builtin.template gave the new service unit / cron file the owner of the
    hard-linked file at its name (the directory owner's account, which could then rewrite what root runs). The
    symlink at the timer's name is a guard (passed on the old code: a link there before the run was replaced)."""
    units = user_dir(arena['tree'] / 'units', racer_user)
    cron = user_dir(arena['tree'] / 'cron', racer_user)
    target = (units / 'opsready-nightly.service') if backend == 'systemd' else (cron / 'opsready-nightly')
    as_user(racer_user, 'echo mine > %s/mine && ln %s/mine %s && ln -s %s %s/opsready-nightly.timer'
            % (target.parent, target.parent, target, arena['outside'] / 'victim', units))
    victim = (arena['outside'] / 'victim').read_bytes()
    result = _schedule(arena, fault, backend, units, cron)
    fault.observed('play rc %d; %s: %s' % (result.rc, target.name, _roots_file(target)))
    fault.lost(files=int((arena['outside'] / 'victim').read_bytes() != victim))
    assert result.rc == 0, result.stdout[-3000:]
    st = os.lstat(target)
    assert (stat.S_ISREG(st.st_mode), st.st_uid, st.st_nlink, stat.S_IMODE(st.st_mode)) == (True, 0, 1, 0o644), \
        '%s is %s: the directory owner can rewrite what root runs' % (target, _roots_file(target))
    text = target.read_text()
    assert text.endswith('\n') and ('ExecStart=' in text if backend == 'systemd' else 'nightly.sh' in text), text
    assert (target.parent / 'mine').read_text() == 'mine\n'
    assert os.stat(target.parent / 'mine').st_uid == racer_user.pw_uid
    if backend == 'systemd':
        timer = units / 'opsready-nightly.timer'
        assert stat.S_ISREG(os.lstat(timer).st_mode) and 'OnCalendar' in timer.read_text()
    assert (arena['outside'] / 'victim').read_bytes() == victim
    again = _schedule(arena, fault, backend, units, cron)
    assert again.rc == 0 and re.search(r'changed=0\b', again.stdout), 'not idempotent: ' + again.stdout[-2000:]


def _logrotate(arena, fault, policy_dir: Path, name: str = 'app'):
    return play(arena['base'], [{'name': 'policies', 'ansible.builtin.include_role': {
        'name': 'opsready.operations.log_rotation'}}], fault=fault, timeout=300, extravars={
        'log_rotation_backend': 'logrotate', 'log_rotation_logrotate_dir': str(policy_dir),
        'log_rotation_policies': [{'name': name, 'paths': [str(arena['base'] / 'log' / '*.log')], 'size': '1k',
                                   'rotate': 3, 'missingok': True}]})


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning a directory on log_rotation_logrotate_dir\'s path swaps the policy '
                   'directory for a symlink to a root directory',
                   component='log_rotation role (logrotate backend)',
                   expected='refused, naming the path; nothing written in the root directory')
def test_logrotate_policy_not_written_through_a_directory_link_planted_by_its_owner(racer_user, arena, fault):
    """Fails on the old code: ansible.builtin.template followed the link and root wrote the policy into the root
    directory it led to (outside/etc/app, a file of root's where the account chose)."""
    owned = user_dir(arena['tree'] / 'app', racer_user)
    as_user(racer_user, 'ln -s %s %s/logrotate.d' % (arena['outside'] / 'etc', owned))
    before = sorted(os.listdir(arena['outside'] / 'etc'))
    result = _logrotate(arena, fault, owned / 'logrotate.d')
    after = sorted(os.listdir(arena['outside'] / 'etc'))
    fault.observed('play rc %d; %s holds %s' % (result.rc, arena['outside'] / 'etc', after))
    fault.lost(files=len(os.listdir(arena['outside'] / 'etc')) - len(before))
    assert sorted(os.listdir(arena['outside'] / 'etc')) == before, 'root wrote the policy through the planted link'
    assert result.rc != 0 and 'logrotate.d' in result.stdout, result.stdout[-3000:]


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning log_rotation_logrotate_dir puts a hard link to its own file and a '
                   'symlink to a root file at policies\' names', component='log_rotation role (logrotate backend)',
                   expected='root\'s own 0644 policies, validated by logrotate; the linked files untouched')
def test_logrotate_policies_over_links_planted_by_the_directory_owner(racer_user, arena, fault):
    """Guard (passed on the old code: template's owner: root re-owned the hard-linked name's new file, and a link
    there before the run was replaced); also shows validate still refuses what logrotate refuses."""
    policies = user_dir(arena['tree'] / 'logrotate.d', racer_user)
    as_user(racer_user, 'echo mine > %s/mine && ln %s/mine %s/app && ln -s %s %s/web'
            % (policies, policies, policies, arena['outside'] / 'victim', policies))
    victim = (arena['outside'] / 'victim').read_bytes()
    results = [_logrotate(arena, fault, policies, name) for name in ('app', 'web')]
    fault.observed('play rc %s; app: %s; web: %s' % ([r.rc for r in results], _roots_file(policies / 'app'),
                                                     _roots_file(policies / 'web')))
    fault.lost(files=int((arena['outside'] / 'victim').read_bytes() != victim))
    assert [r.rc for r in results] == [0, 0], results[0].stdout[-3000:] + results[1].stdout[-3000:]
    for name in ('app', 'web'):
        st = os.lstat(policies / name)
        assert (stat.S_ISREG(st.st_mode), st.st_uid, st.st_nlink, stat.S_IMODE(st.st_mode)) == (True, 0, 1, 0o644)
        assert 'rotate 3' in (policies / name).read_text()
    assert (policies / 'mine').read_text() == 'mine\n' and (arena['outside'] / 'victim').read_bytes() == victim


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning backup_copy_to plants a symlink to a root directory at a catalog\'s '
                   'name there', component='backup role (second copy)',
                   expected='refused before anything is created or copied; the root directory untouched')
def test_backup_second_copy_refuses_a_location_whose_owner_can_plant_links(racer_user, arena, fault):
    """Fails on the old code: ansible.builtin.file (state=directory, mode 0700) followed the link and made the root
    directory it led to 0700 (with /etc, the host breaks), then ansible.builtin.copy wrote the backup into it."""
    backups = arena['base'] / 'backups'
    (backups / 'sqlite').mkdir(parents=True, mode=0o700)
    (backups / 'sqlite' / 'app.db.gz').write_bytes(b'not really a backup\n')
    copy_to = user_dir(arena['tree'] / 'copies', racer_user)
    as_user(racer_user, 'ln -s %s %s/sqlite' % (arena['outside'] / 'etc', copy_to))
    before = hostile.snapshot(arena['outside'])
    result = play(arena['base'], [{'name': 'copy', 'ansible.builtin.import_role': {
        'name': 'opsready.operations.backup'}}], fault=fault, timeout=300, tags='copy', extravars={
        'backup_dir': str(backups), 'backup_copy_to': str(copy_to), 'backup_databases': []})
    after = hostile.snapshot(arena['outside'])
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    fault.observed('play rc %d; changed under outside/: %s' % (result.rc, changed))
    fault.lost(files=len(changed))
    assert changed == [], 'root followed the planted link: %s' % changed
    assert result.rc != 0 and str(copy_to) in result.stdout and 'owned by' in result.stdout, result.stdout[-3000:]


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning backup_fetch_to_controller (on the control node) plants a symlink to a '
                   'root directory at the host\'s name there', component='backup role (copy to the control node)',
                   expected='refused before anything is fetched; the root directory untouched')
def test_backup_fetch_refuses_a_controller_directory_whose_owner_can_plant_links(racer_user, arena, fault):
    """Fails on the old code: ansible.builtin.fetch followed the link at <dir>/<host> and wrote the backup into the
    root directory it led to. (Here the control node is the managed host: localhost.)"""
    backups = arena['base'] / 'backups'
    (backups / 'sqlite').mkdir(parents=True, mode=0o700)
    (backups / 'sqlite' / 'app.db.gz').write_bytes(b'not really a backup\n')
    fetched = user_dir(arena['tree'] / 'fetched', racer_user)
    as_user(racer_user, 'ln -s %s %s/localhost' % (arena['outside'] / 'etc', fetched))
    before = hostile.snapshot(arena['outside'])
    result = play(arena['base'], [{'name': 'copy', 'ansible.builtin.import_role': {
        'name': 'opsready.operations.backup'}}], fault=fault, timeout=300, tags='copy', extravars={
        'backup_dir': str(backups), 'backup_fetch_to_controller': str(fetched), 'backup_databases': []})
    after = hostile.snapshot(arena['outside'])
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    fault.observed('play rc %d; changed under outside/: %s' % (result.rc, changed))
    fault.lost(files=len(changed))
    assert changed == [], 'root followed the planted link: %s' % changed
    assert result.rc != 0 and str(fetched) in result.stdout, result.stdout[-3000:]
