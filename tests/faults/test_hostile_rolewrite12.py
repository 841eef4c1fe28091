"""Fault matrix, hostile filesystems (rolewrite12; harness: test_hostile_files / test_hostile_round3, an unprivileged
account made and removed by the test playing the account that owns a directory on the operator's path).

- backup role, WAL helper: pg_wal_archive.py (what PostgreSQL's archive_command runs) was installed as root with
  ansible.builtin.file (its directory) and ansible.builtin.copy into backup_pg_wal_helper_path, the operator's choice.
  The account owning a directory on that path could swap the helper's directory for a link (root wrote the helper
  where the link led) or put a hard link to its own file at the helper's name (the new helper took that account's
  owner: it could then rewrite what postgres runs). Now safe_dir (mode 0755) refuses a directory another account
  controls, and safe_write writes the helper.
- auto_recovery role, disk clean-up: the files ansible.builtin.find listed were deleted with ansible.builtin.file
  state=absent by path. The account owning the clean-up directory could, between the listing and the delete, rename
  a subdirectory away and put a link to a directory of root's at its name: root deleted root's file there. Now
  safe_unlink opens each directory below the clean-up path without following a link: refused, nothing outside
  deleted.
- dr_drill role: the scratch directory (0711) was made with ansible.builtin.file state=directory, which follows a
  link planted at its name and chmods the directory it leads to. Now safe_dir (mode 0711).
- schedule role: the configuration and log directories (0750), the same way. Now safe_dir (mode 0750).
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.faults import test_hostile_files as hostile
from tests.faults import test_hostile_round3 as round3
from tests.faults.helpers import play
from tests.harness.playbook import run_playbook

racer_user = hostile.racer_user
arena = hostile.arena
as_user = round3.as_user
user_dir = round3.user_dir

REPO = Path(__file__).resolve().parents[2]
HELPER = (REPO / 'roles' / 'backup' / 'files' / 'pg_wal_archive.py').read_bytes()


def _changed_outside(before, arena):
    after = hostile.snapshot(arena['outside'])
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def _refused_nothing_outside(before, arena, fault, result, named: Path) -> None:
    """The run was refused naming ``named``, and nothing under outside/ (root's) changed."""
    changed = _changed_outside(before, arena)
    fault.observed('play rc %d; changed under outside/: %s' % (result.rc, changed))
    fault.lost(files=len(changed))
    assert changed == [], 'root followed the planted link: %s' % changed
    assert result.rc != 0 and str(named) in result.stdout, result.stdout[-3000:]


def _wal_helper(arena, fault, helper: Path):
    return play(arena['base'], [{'name': 'helper', 'ansible.builtin.import_role': {
        'name': 'opsready.operations.backup'}}], fault=fault, timeout=300, tags='wal_helper', extravars={
        'backup_dir': str(arena['base'] / 'backups'), 'backup_databases': [], 'backup_pg_wal_helper': True,
        'backup_pg_wal_helper_path': str(helper)})


@pytest.mark.fast
@pytest.mark.parametrize('plant', ['symlinked directory', 'hard link at the name'])
@pytest.mark.fault(fault='the account owning a directory on backup_pg_wal_helper_path swaps the helper\'s directory '
                   'for a link to a root directory, or puts a hard link to its own file at the helper\'s name',
                   component='backup role (WAL archive helper)',
                   expected='refused, naming the directory; nothing written outside; the account\'s file untouched')
def test_wal_helper_not_installed_where_the_directory_owner_can_plant_links(racer_user, arena, fault, plant):
    """Fails on the old code: ansible.builtin.copy followed the link and root wrote the helper into the root
    directory it led to (outside/etc/pg_wal_archive.py); over a hard link it gave the new helper the account's
    owner, so the account could rewrite what postgres runs."""
    owned = user_dir(arena['tree'] / 'opt', racer_user)
    if plant == 'symlinked directory':
        as_user(racer_user, 'ln -s %s %s/bin' % (arena['outside'] / 'etc', owned))
        helper = owned / 'bin' / 'pg_wal_archive.py'
    else:
        as_user(racer_user, 'echo mine > %s/mine && ln %s/mine %s/pg_wal_archive.py' % (owned, owned, owned))
        helper = owned / 'pg_wal_archive.py'
    before = hostile.snapshot(arena['outside'])
    result = _wal_helper(arena, fault, helper)
    changed = _changed_outside(before, arena)
    st = os.lstat(helper) if os.path.lexists(helper) else None
    fault.observed('play rc %d; changed under outside/: %s; helper uid %s' % (
        result.rc, changed, st.st_uid if st else None))
    fault.lost(files=len(changed))
    assert changed == [], 'root followed the planted link: %s' % changed
    installed = st is not None and stat.S_ISREG(st.st_mode) and helper.read_bytes() == HELPER
    assert not installed or (st.st_uid, st.st_nlink) == (0, 1), \
        'the helper postgres runs belongs to uid %d (nlink %d): the directory\'s owner can rewrite it' % (
            st.st_uid, st.st_nlink)
    if plant == 'hard link at the name':
        assert (owned / 'mine').read_text() == 'mine\n'
    assert result.rc != 0 and str(helper.parent) in result.stdout, result.stdout[-3000:]


@pytest.mark.fast
def test_wal_helper_installed_in_a_root_directory_and_idempotent(arena):
    """Guard (passed on the old code): a missing directory of root's is made 0755 and the helper written 0755,
    root's, its content the role's file byte for byte; a second run changes nothing."""
    helper = arena['base'] / 'lib' / 'opsready' / 'pg_wal_archive.py'
    result = _wal_helper(arena, None, helper)
    assert result.rc == 0, result.stdout[-3000:]
    st = os.lstat(helper)
    assert (stat.S_ISREG(st.st_mode), st.st_uid, stat.S_IMODE(st.st_mode)) == (True, 0, 0o755)
    assert stat.S_IMODE(os.stat(helper.parent).st_mode) == 0o755
    assert helper.read_bytes() == HELPER
    again = _wal_helper(arena, None, helper)
    assert again.rc == 0 and re.search(r'changed=0\b', again.stdout), 'not idempotent: ' + again.stdout[-2000:]


SWAP_CALLBACK = textwrap.dedent('''\
    """Runs $SWAP_COMMAND when a task whose name holds $SWAP_BEFORE starts: the account's move between two tasks."""
    import os
    import subprocess

    from ansible.plugins.callback import CallbackBase


    class CallbackModule(CallbackBase):
        CALLBACK_VERSION = 2.0
        CALLBACK_TYPE = 'aggregate'
        CALLBACK_NAME = 'swap_between_tasks'
        CALLBACK_NEEDS_ENABLED = True

        def v2_playbook_on_task_start(self, task, is_conditional):
            if os.environ['SWAP_BEFORE'] in task.get_name():
                subprocess.run(os.environ['SWAP_COMMAND'], shell=True, check=True)
    ''')


@pytest.fixture
def full_tmpfs(arena):
    mount = arena['base'] / 'fs'
    mount.mkdir()
    rc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m,mode=0755', 'tmpfs', str(mount)],
                        check=False).returncode
    if rc != 0:
        pytest.skip('cannot mount a tmpfs here (needs root): the disk_full path is untested')
    try:
        yield mount
    finally:
        subprocess.run(['umount', '-l', str(mount)], check=False)


def _old(path: Path, size: int) -> None:
    path.write_bytes(os.urandom(size))
    old = time.time() - 10 * 86400
    os.utime(path, (old, old))


@pytest.mark.fast
@pytest.mark.fault(fault='between the listing and the delete, the account owning the clean-up directory renames a '
                   'subdirectory away and puts a link to a root directory at its name',
                   component='auto_recovery role (disk_full clean-up)',
                   expected='the file behind the link is not deleted; the run fails naming the link')
def test_auto_recovery_cleanup_does_not_delete_through_a_directory_swapped_for_a_link(
        racer_user, arena, full_tmpfs, fault):
    """Fails on the old code: ansible.builtin.file state=absent followed the link by path and root deleted the root
    file outside the configured clean-up path (outside/keep/app.2.gz)."""
    logs = user_dir(full_tmpfs / 'logs', racer_user)
    user_dir(logs / 'sub', racer_user)
    _old(logs / 'app.1.gz', 1700 * 1024)
    _old(logs / 'sub' / 'app.2.gz', 1700 * 1024)
    for name in ('fresh.gz', 'other.log'):
        (logs / name).write_bytes(os.urandom(100 * 1024))
    keep = arena['outside'] / 'keep'
    keep.mkdir()
    _old(keep / 'app.2.gz', 10)
    callbacks = arena['base'] / 'callbacks'
    callbacks.mkdir()
    (callbacks / 'swap_between_tasks.py').write_text(SWAP_CALLBACK)
    swap = "setpriv --reuid=%d --regid=%d --clear-groups sh -c 'mv %s/sub %s/sub.moved && ln -s %s %s/sub'" % (
        racer_user.pw_uid, racer_user.pw_gid, logs, logs, keep, logs)
    before = hostile.snapshot(arena['outside'])
    result = play(arena['base'], [{'name': 'recover', 'ansible.builtin.include_role': {
        'name': 'opsready.operations.auto_recovery'}, 'vars': {
        'auto_recovery_enabled': ['disk_full'], 'auto_recovery_checks': [],
        'auto_recovery_thresholds': {'cpu_percent': {'warning': None, 'critical': None},
                                     'load_per_core': {'warning': None, 'critical': None},
                                     'memory_percent': {'warning': None, 'critical': None}},
        'auto_recovery_disk_cleanup': [{'path': str(logs), 'patterns': ['*.gz'], 'age_days': 7, 'recurse': True}],
        'auto_recovery_incident_store': ''}}], fault=fault, timeout=300, envvars={
        'ANSIBLE_CALLBACK_PLUGINS': str(callbacks), 'ANSIBLE_CALLBACKS_ENABLED': 'swap_between_tasks',
        'SWAP_BEFORE': 'Delete them', 'SWAP_COMMAND': swap})
    changed = _changed_outside(before, arena)
    fault.observed('play rc %d; changed under outside/: %s' % (result.rc, changed))
    fault.lost(files=len(changed))
    assert os.path.islink(logs / 'sub'), 'the swap did not happen: ' + result.stdout[-3000:]
    assert changed == [], 'root deleted through the planted link: %s' % changed
    assert (logs / 'sub.moved' / 'app.2.gz').exists()
    assert not (logs / 'app.1.gz').exists(), 'the old file in the clean-up path itself was not deleted'
    assert (logs / 'fresh.gz').exists() and (logs / 'other.log').exists()
    assert result.rc != 0 and '%s/sub' % logs in result.stdout and 'symlink' in result.stdout, result.stdout[-3000:]


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning a directory on a SQLite drill\'s scratch path swaps the scratch '
                   'directory for a link to a root directory', component='dr_drill role (SQLite scratch directory)',
                   expected='the root directory neither chmodded nor written; the drill fails naming the path')
def test_drill_scratch_directory_not_made_through_a_link_planted_by_its_owner(racer_user, arena, fault):
    """Fails on the old code: ansible.builtin.file state=directory mode 0711 followed the link and made the root
    directory it led to (outside/etc) 0711."""
    db = arena['base'] / 'app.sqlite'
    conn = sqlite3.connect(db)
    conn.executescript('CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);')
    conn.close()
    backups = arena['base'] / 'backups'
    made = play(arena['base'], [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(backups)}}])
    assert made.rc == 0, made.stdout[-3000:]
    owned = user_dir(arena['tree'] / 'drills', racer_user)
    as_user(racer_user, 'ln -s %s %s/scratch' % (arena['outside'] / 'etc', owned))
    before = hostile.snapshot(arena['outside'])
    result = run_playbook('playbooks/dr_drill.yml', timeout=300, extravars={
        'dr_drill_report_dir': str(arena['base'] / 'reports'), 'dr_drill_databases': [{
            'name': 'app', 'engine': 'sqlite', 'database': str(db), 'backup_dir': str(backups),
            'scratch': str(owned / 'scratch' / 'app-drill.sqlite')}]})
    fault.scan(result.stdout, where='play output')
    _refused_nothing_outside(before, arena, fault, result, owned / 'scratch')


@pytest.mark.fast
@pytest.mark.parametrize('which', ['schedule_config_dir', 'schedule_log_dir'])
@pytest.mark.fault(fault='the account owning a directory on schedule_config_dir / schedule_log_dir puts a link to '
                   'a root directory at its name', component='schedule role (configuration and log directories)',
                   expected='refused, naming the path; the root directory neither chmodded nor written')
def test_schedule_directories_not_made_through_a_link_planted_by_their_owner(racer_user, arena, fault, which):
    """Fails on the old code: ansible.builtin.file state=directory mode 0750 followed the link and made the root
    directory it led to (outside/etc; with /etc, the host breaks) 0750, and the job files were written into it."""
    owned = user_dir(arena['tree'] / 'opsready', racer_user)
    as_user(racer_user, 'ln -s %s %s/dir' % (arena['outside'] / 'etc', owned))
    cron = arena['base'] / 'cron.d'
    cron.mkdir()
    dirs = {'schedule_config_dir': str(arena['base'] / 'conf'), 'schedule_log_dir': str(arena['base'] / 'log')}
    dirs[which] = str(owned / 'dir')
    before = hostile.snapshot(arena['outside'])
    result = play(arena['base'], [{'name': 'schedule', 'ansible.builtin.include_role': {
        'name': 'opsready.operations.schedule'}}], fault=fault, timeout=300, extravars=dict(dirs, **{
            'schedule_backend': 'cron', 'schedule_project_dir': str(REPO), 'schedule_cron_dir': str(cron),
            'schedule_unit_dir': str(arena['base'] / 'units'), 'schedule_lock_dir': str(arena['base'] / 'lock'),
            'schedule_jobs': [{'name': 'nightly', 'playbook': 'playbooks/health.yml', 'cron': '0 2 * * *'}]}))
    _refused_nothing_outside(before, arena, fault, result, owned / 'dir')


@pytest.mark.fast
@pytest.mark.fault(fault='the account owning a directory on health_state_dir (on the control node) puts a link to a '
                   'root directory at its name', component='playbooks/health.yml (report directory)',
                   expected='refused before any check runs; the root directory neither chmodded nor written')
def test_health_report_directory_not_made_through_a_link_planted_by_its_owner(racer_user, arena, fault):
    """Fails on the old code: ansible.builtin.file state=directory mode 0750 followed the link and made the root
    directory it led to (outside/etc) 0750."""
    owned = user_dir(arena['tree'] / 'reports', racer_user)
    as_user(racer_user, 'ln -s %s %s/health' % (arena['outside'] / 'etc', owned))
    before = hostile.snapshot(arena['outside'])
    result = run_playbook('playbooks/health.yml', timeout=300, limit='localhost', extravars={
        'health_state_dir': str(owned / 'health'), 'health_checks': []})
    fault.scan(result.stdout, where='play output')
    _refused_nothing_outside(before, arena, fault, result, owned / 'health')
