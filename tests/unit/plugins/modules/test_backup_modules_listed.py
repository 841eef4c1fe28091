"""db_backup, file_backup and redis_backup with retention list at most ``max_listed`` deleted artifacts, as
backup_prune lists at most ``max_listed`` entries (issue 22): the first clean-up of a large catalog (a year of hourly
backups is ~200,000 manifests) returned every deleted path. ``deleted_count`` stays exact, ``lists_truncated`` (and
``lists_note``) say a list was cut, check mode lists what the real run then lists, and every artifact the plan
deletes is deleted, listed or not. Run the way Ansible runs the modules (their own process, arguments from a file).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_prune, listed
from tests.unit.plugins.modules.test_conformance_round7 import _backups, redis_server, run_module, snapshot

assert redis_server   # a fixture, used by name below


def test_default_is_backup_prunes():
    assert listed.DEFAULT_MAX_LISTED == catalog_prune.DEFAULT_MAX_LISTED == 1000


@pytest.mark.parametrize('max_listed, listed_count, truncated',
                         [(-1, 5, False), (0, 0, True), (2, 2, True), (5, 5, False), (9, 5, False)])
def test_deleted_is_cut_in_order_and_counted(max_listed, listed_count, truncated):
    paths = ['/b/a-%d' % n for n in range(5)]
    result = listed.list_deleted_at_most({'deleted': list(paths), 'changed': True}, max_listed)
    assert result['deleted'] == paths[:listed_count] and result['deleted_count'] == 5
    assert result['lists_truncated'] is truncated
    assert ('lists_note' in result) is truncated
    if truncated:
        assert 'max_listed: -1' in result['lists_note'] and 'of the 5' in result['lists_note']


def test_a_run_without_retention_counts_nothing():
    result = listed.list_deleted_at_most({'deleted': []}, listed.DEFAULT_MAX_LISTED)
    assert result == {'deleted': [], 'deleted_count': 0, 'lists_truncated': False}


def _checked_then_real(tmp_path: Path, module: str, params: dict, dest: Path) -> tuple:
    before = snapshot(dest)
    checked, printed = run_module(tmp_path, module, params, check=True)
    assert not checked.get('failed') and 'unparsed' not in checked, printed[-3000:]
    assert snapshot(dest) == before, 'check mode changed the backup directory'
    real, printed = run_module(tmp_path, module, params)
    assert not real.get('failed') and 'unparsed' not in real, printed[-3000:]
    return checked, real


def _assert_cut(checked: dict, real: dict, count: int, max_listed: int, everything: list) -> None:
    for result in (checked, real):
        assert result['deleted_count'] == count and result['lists_truncated'] is True, result
        assert result['deleted'] == everything[:max_listed]
        assert 'max_listed' in result['lists_note'] and '-1' in result['lists_note']
    assert not any(os.path.exists(path) for path in everything), 'every artifact the plan deletes is deleted'


def test_db_backup_retention_lists_at_most_max_listed(tmp_path):
    params = _backups(tmp_path, 4)
    dest = tmp_path / 'backups'
    # every path the run deletes, in its order (check mode: the same plan, nothing deleted)
    whole, printed = run_module(tmp_path, 'db_backup', dict(params, retention={'keep_last': 1, 'max_listed': -1}),
                                check=True)
    assert whole.get('deleted_count') == 4 and len(whole['deleted']) == 4, printed[-3000:]
    assert whole['lists_truncated'] is False and 'lists_note' not in whole
    checked, real = _checked_then_real(tmp_path, 'db_backup', dict(params, retention={'keep_last': 1,
                                                                                      'max_listed': 2}), dest)
    _assert_cut(checked, real, 4, 2, whole['deleted'])


def test_db_backup_default_lists_a_small_clean_up_whole(tmp_path):
    params = dict(_backups(tmp_path, 2), retention={'keep_last': 1})
    result, printed = run_module(tmp_path, 'db_backup', params)
    assert result.get('deleted_count') == 2 and len(result['deleted']) == 2, printed[-3000:]
    assert result['lists_truncated'] is False and 'lists_note' not in result


def test_file_backup_retention_lists_at_most_max_listed(tmp_path):
    tree = tmp_path / 'tree'
    tree.mkdir()
    (tree / 'app.conf').write_text('listen = 8080\n')
    dest = tmp_path / 'files'
    params = {'paths': [str(tree)], 'dest': str(dest), 'name': 'cfg', 'keep_days': 0}
    for dummy in range(4):
        result, printed = run_module(tmp_path, 'file_backup', params)
        assert result.get('changed') is True and result['deleted_count'] == 0, printed[-3000:]
    whole, printed = run_module(tmp_path, 'file_backup', dict(params, keep_count=1, max_listed=-1), check=True)
    assert whole.get('deleted_count') == 4 and len(whole['deleted']) == 4, printed[-3000:]
    checked, real = _checked_then_real(tmp_path, 'file_backup', dict(params, keep_count=1, max_listed=1), dest)
    _assert_cut(checked, real, 4, 1, whole['deleted'])


def test_redis_backup_retention_lists_at_most_max_listed(tmp_path, redis_server):
    dest = tmp_path / 'backups'
    params = {'host': '127.0.0.1', 'port': redis_server.port, 'password': redis_server.password, 'dest': str(dest)}
    for dummy in range(3):
        result, printed = run_module(tmp_path, 'redis_backup', params)
        assert result.get('changed') is True and not result.get('failed'), printed[-2000:]
        time.sleep(1.1)
    whole, printed = run_module(tmp_path, 'redis_backup', dict(params, retention={'keep_last': 1, 'max_listed': -1}),
                                check=True)
    assert whole.get('deleted_count') == 3 and len(whole['deleted']) == 3, printed[-3000:]
    checked, real = _checked_then_real(tmp_path, 'redis_backup', dict(params, retention={'keep_last': 1,
                                                                                         'max_listed': 1}), dest)
    _assert_cut(checked, real, 3, 1, whole['deleted'])
    assert redis_server.password not in printed


@pytest.mark.parametrize('module', ['db_backup', 'file_backup'])
def test_max_listed_below_minus_one_is_refused_before_anything_is_written(tmp_path, module):
    dest = tmp_path / 'never'
    if module == 'db_backup':
        params = {'engine': 'sqlite', 'database': str(tmp_path / 'x.db'), 'dest': str(dest),
                  'retention': {'keep_last': 1, 'max_listed': -2}}
    else:
        params = {'paths': [str(tmp_path)], 'dest': str(dest), 'max_listed': -2}
    result, printed = run_module(tmp_path, module, params)
    assert result.get('failed') is True and 'max_listed' in result['msg'] and '-1' in result['msg'], printed[-2000:]
    assert not dest.exists()
