"""health_check and the directories it touches as root: a textfile or history directory that any user (or a
non-root group) can write without the sticky bit is refused before anything is measured or written; one owned by
another non-root user is written (the writers never follow a planted name) but reported as a warning; a sticky
world-writable directory (/tmp style) is fine. A backup_dir anyone can write (without the sticky bit) is a
critical finding: anyone could replace or remove the backups the check vouches for."""

from __future__ import annotations

import os

import pytest

from tests.harness.playbook import run_playbook, write_playbook
from tests.integration.test_backup_copy import synthetic_catalog
from tests.integration.test_health_check import health_task

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the risk is root writing: needs root')


def directory(tmp_path, name, mode, uid=0):
    path = tmp_path / name
    path.mkdir()
    os.chown(path, uid, 0)
    os.chmod(path, mode)
    return path


def test_insecure_output_directories_are_refused_or_reported(tmp_path):
    cases = {'open': 0o777, 'group': 0o775, 'sticky': 0o1777, 'safe': 0o755}
    dirs = {k: directory(tmp_path, k, mode) for k, mode in cases.items()}
    os.chown(dirs['group'], 0, 1000)          # a non-root group may write
    foreign = directory(tmp_path, 'foreign', 0o755, uid=NOBODY)
    tasks = []
    for key, path in list(dirs.items()) + [('foreign', foreign)]:
        for option, name in (('textfile_path', 'h.prom'), ('history_path', 'h.jsonl')):
            task = health_task('%s %s' % (option, key), metrics=[], fail_on='never', **{option: str(path / name)})
            task['ignore_errors'] = True
            tasks.append(task)
    result = run_playbook(write_playbook(tmp_path, tasks))
    for key in ('open', 'group'):
        for option, name in (('textfile_path', 'h.prom'), ('history_path', 'h.jsonl')):
            res = result.result('%s %s' % (option, key))
            assert res['_event'] == 'runner_on_failed', res
            assert option in res['msg'] and 'sticky' in res['msg'] and 'nothing was written' in res['msg'], res['msg']
            assert not (dirs[key] / name).exists()
    for key in ('sticky', 'safe'):
        for option, name in (('textfile_path', 'h.prom'), ('history_path', 'h.jsonl')):
            res = result.result('%s %s' % (option, key))
            assert res['_event'] == 'runner_on_ok' and res['verdict'] == 'ok', res
            assert (dirs[key] / name).is_file()
    for option, name in (('textfile_path', 'h.prom'), ('history_path', 'h.jsonl')):
        res = result.result('%s foreign' % option)
        assert res['_event'] == 'runner_on_ok' and res['verdict'] == 'warning', res
        found = [f for f in res['findings'] if f['condition'] == 'insecure_directory']
        assert len(found) == 1 and str(NOBODY) in found[0]['message'] and option in found[0]['message'], found
        assert (foreign / name).is_file()


def test_a_backup_dir_anyone_can_write_is_critical(tmp_path):
    open_dir = directory(tmp_path, 'open-backups', 0o777)
    safe_dir = directory(tmp_path, 'safe-backups', 0o755)
    # The database's group writes its own archive (PostgreSQL's archive_command runs as postgres): not a finding.
    group_dir = directory(tmp_path, 'group-backups', 0o770)
    os.chown(group_dir, 0, 1000)
    for path in (open_dir, safe_dir, group_dir):
        synthetic_catalog(path, [0])
    checks = [{'type': 'backup', 'name': 'open', 'backup_dir': str(open_dir), 'verified_only': False},
              {'type': 'backup', 'name': 'safe', 'backup_dir': str(safe_dir), 'verified_only': False},
              {'type': 'backup', 'name': 'group', 'backup_dir': str(group_dir), 'verified_only': False}]
    result = run_playbook(write_playbook(tmp_path, [health_task(metrics=[], fail_on='never', checks=checks)]))
    assert not result.failed, result.stdout[-3000:]
    res = result.result('health')
    insecure = [f for f in res['findings'] if f['condition'] == 'insecure_directory']
    assert [(f['check'], f['severity']) for f in insecure] == [('open', 'critical')], res['findings']
    assert 'sticky' in insecure[0]['message'] and str(open_dir) in insecure[0]['message']
    assert res['verdict'] == 'critical'
