"""A real backup_prune run plans and deletes set by set (issue 22, catalog at scale): the whole-catalog code held every
parsed manifest of the sets that lose artifacts at once (1.5 GB at 200,000 manifests). It must delete exactly what the
whole-catalog code deletes, leave the same files, and still never delete on the index file's word: a manifest whose
JSON says something else than its index row (edited in place: same inode, the directory and its seal unchanged) makes it
plan from the parsed manifests, as a run without any index does."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, catalog_jobs, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import NOW, mixed_catalog, without_broken

POLICIES = [retention.Policy(keep_last=2), retention.Policy(keep_daily=5, keep_weekly=2),
            retention.Policy(keep_days=3.5)]
FILTERS = [(None, None), ('mariadb', 'shop'), ('postgresql', None), ('sqlite', 'notes')]
COMPARED = ('changed', 'deleted', 'deleted_ids', 'kept', 'reasons', 'leftovers_removed')


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


@pytest.fixture(scope='module')
def template(tmp_path_factory):
    return mixed_catalog(tmp_path_factory.mktemp('template'))


def _copy(template: Path, target: Path, index: str, monkeypatch) -> str:
    shutil.copytree(template, target, symlinks=True)
    if index == 'sealed':
        without_broken(target)
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1000000' if index == 'none' else '1')
    if index != 'none':
        describe(str(target), now=NOW)
    catalog_index.clear()
    return str(target)


def _real(directory: str, policy, engine, database, per_set: bool, monkeypatch):
    monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
    catalog_index.clear()
    try:
        return prune(directory, policy, engine=engine, database=database, now=NOW, leftover_min_age=0)
    finally:
        catalog_index.clear()


@pytest.mark.parametrize('index', ['none', 'index', 'sealed'])
def test_set_by_set_real_run_deletes_exactly_what_the_whole_catalog_run_deletes(
        template, tmp_path, monkeypatch, index):
    for number, policy in enumerate(POLICIES):
        for engine, database in FILTERS:
            name = '%d-%s-%s' % (number, engine, database)
            ours = _copy(template, tmp_path / ('ours-' + name), index, monkeypatch)
            whole = _copy(template, tmp_path / ('whole-' + name), index, monkeypatch)
            got = _real(ours, policy, engine, database, True, monkeypatch)
            want = _real(whole, policy, engine, database, False, monkeypatch)
            assert 'targets' not in got
            for key in COMPARED:
                want_value = want[key]
                if key in ('deleted', 'kept', 'reasons', 'leftovers_removed'):
                    want_value = json.loads(json.dumps(want_value).replace(whole, ours))
                assert got[key] == want_value, (index, name, key)
            # the same files are left (the index file aside: each run rewrites its own)
            left = sorted(n for n in os.listdir(ours) if n != catalog_index.INDEX_NAME)
            assert left == sorted(n for n in os.listdir(whole) if n != catalog_index.INDEX_NAME), (index, name)
            for member_dir in (n for n in left if os.path.isdir(os.path.join(ours, n))):
                assert sorted(os.listdir(os.path.join(ours, member_dir))) == sorted(
                    os.listdir(os.path.join(whole, member_dir)))
            assert got['deleted'] or engine == 'postgresql', (index, name)


def test_a_kept_full_edited_in_place_is_not_planned_on_its_index_row(template, tmp_path, monkeypatch):
    """The sealed index says the newest shop full finished on its day; its JSON, edited in place afterwards (same
    inode: the directory does not change, the seal stays), says it finished long ago. A plan on the row would keep
    it as the newest and delete an older full the parsed plan keeps; the run must delete what a run without an index
    deletes."""
    ours = _copy(template, tmp_path / 'ours', 'sealed', monkeypatch)
    plain = _copy(template, tmp_path / 'plain', 'none', monkeypatch)
    policy = retention.Policy(keep_last=3)

    def newest_full(directory):
        monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1000000')
        catalog_index.clear()
        entry = [m for m in Catalog(directory, engine='mariadb', database='shop').entries if m.kind == 'full'][-1]
        catalog_index.clear()
        return Path(entry.manifest_path)
    for directory in (ours, plain):
        path = newest_full(directory)
        before = path.stat()
        data = json.loads(path.read_text())
        data['finished'] = data['consistent_at'] = '2020-01-01T00:00:00Z'
        with open(path, 'r+') as handle:   # in place: same inode
            handle.write(json.dumps(data, indent=2, sort_keys=True))
            handle.truncate()
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    listed = {directory: set(os.listdir(directory)) for directory in (ours, plain)}
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    catalog_index.clear()
    assert Catalog(ours, materialize=False)._scan.columns is not None, 'the edit left the seal as it was'
    catalog_index.clear()
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    got = _real(ours, policy, 'mariadb', 'shop', True, monkeypatch)
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1000000')
    want = _real(plain, policy, 'mariadb', 'shop', True, monkeypatch)
    assert got['deleted']
    assert [os.path.basename(p) for p in got['deleted']] == [os.path.basename(p) for p in want['deleted']]
    gone_ours, gone_plain = listed[ours] - set(os.listdir(ours)), listed[plain] - set(os.listdir(plain))
    # the same files went; and the index file that disagreed with its manifests went (rebuilt by the next scan), or
    # was rebuilt from the manifests by this run (retention reads a kept full's manifest to stat its artifact: the
    # lie is found while planning, the index dropped and the retry's scan writes it again)
    assert gone_ours - {catalog_index.INDEX_NAME} == gone_plain, (gone_ours ^ gone_plain)
    if catalog_index.INDEX_NAME in os.listdir(ours):
        answers = []
        for minimum in ('1', '1000000'):   # the rebuilt index answers what parsing every manifest answers
            monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', minimum)
            catalog_index.clear()
            answers.append([(m.id, m.finished_us, m.consistent_us) for m in Catalog(ours).entries])
            catalog_index.clear()
        assert answers[0] == answers[1]
