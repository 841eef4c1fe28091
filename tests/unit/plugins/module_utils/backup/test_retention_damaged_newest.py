"""Retention never counts a full whose artifact on disk is not the one its manifest describes (retention red team,
round 2): the artifact missing, truncated or grown (another size), left as ``.partial``, or a multi-file artifact
missing a member. Such a full cannot be restored, so ``keep_last`` (and every other rule, and "the newest verified
full") must not count it as a kept good backup and then delete the last good one. The damaged full goes, with a
reason that says why; check mode reports exactly what the real run deletes, with and without an index, planned
whole-catalog and set by set, and with ``origin_succession`` (one timeline over two origins).
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, catalog_jobs, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import NOW, put


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


def _missing(directory: Path, name: str) -> None:
    os.unlink(directory / name)


def _truncated(directory: Path, name: str) -> None:
    (directory / name).write_bytes(b'x')


def _grown(directory: Path, name: str) -> None:
    (directory / name).write_bytes(name.encode() + b'tail')


def _partial(directory: Path, name: str) -> None:
    os.rename(directory / name, directory / (name + '.partial'))


def _a_directory(directory: Path, name: str) -> None:
    os.unlink(directory / name)
    (directory / name).mkdir()


DAMAGES = [_missing, _truncated, _grown, _partial, _a_directory]


def _set(directory: Path, origin_of=None):
    """Two good verified fulls, then the newest full (verified when it was written) and a log after each."""
    names = []
    for day, position in ((3, 10), (2, 20), (1, 30)):
        moment = NOW - datetime.timedelta(days=day)
        names.append(put(directory, 'mariadb', 'shop', 'full', moment, {'log_start': position}))
        put(directory, 'mariadb', 'shop', 'log', moment + datetime.timedelta(hours=6),
            {'start': position, 'end': position + 10})
    if origin_of:
        for name in os.listdir(directory):
            if name.endswith('.manifest.json'):
                path = directory / name
                data = json.loads(path.read_text())
                data['origin'] = origin_of(data['id'])
                path.write_text(json.dumps(data))
    return names


@pytest.mark.parametrize('damage', DAMAGES, ids=lambda f: f.__name__.strip('_'))
@pytest.mark.parametrize('mode', ['whole', 'per_set', 'indexed', 'succession'])
def test_a_damaged_newest_full_is_not_counted_as_the_kept_good_one(tmp_path, monkeypatch, damage, mode):
    monkeypatch.setattr(catalog_jobs, 'PER_SET', mode != 'whole')
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1' if mode == 'indexed' else '1000000')
    succession = mode == 'succession'
    # succession: the older fulls by one server, the newest by its replacement (one timeline, keep_last across both)
    names = _set(tmp_path, (lambda ident: 'new' if ident.endswith('20261203T120000Z')
                            or ident.endswith('20261203T180000Z') else 'old') if succession else None)
    damage(tmp_path, names[-1])
    if mode == 'indexed':
        describe(str(tmp_path), now=NOW)
    catalog_index.clear()
    policy = retention.Policy(keep_last=1, origin_succession=succession)
    checked = prune(str(tmp_path), policy, check_mode=True, now=NOW, leftover_min_age=None)
    catalog_index.clear()
    real = prune(str(tmp_path), policy, now=NOW, leftover_min_age=None)
    for key in ('deleted', 'deleted_ids', 'kept', 'reasons'):
        assert checked[key] == real[key], key
    kept = {os.path.basename(path): reason for path, reason in real['kept'].items()}
    # the newest GOOD full stays, and the log it replays
    assert names[1] in kept, (kept, real['reasons'])
    assert os.path.exists(tmp_path / names[1])
    assert 'newest verified full' in kept[names[1]]
    assert names[-1] in real['deleted_ids']
    reason = real['reasons'][str(tmp_path / names[-1])]
    assert 'not the one its manifest describes' in reason and 'not restorable' in reason, reason
    assert not (tmp_path / (names[-1] + '.manifest.json')).exists()
    assert names[0] in real['deleted_ids']


def test_a_multi_file_full_missing_a_member_is_not_counted(tmp_path):
    older = put(tmp_path, 'sqlite', 'notes', 'dump', NOW - datetime.timedelta(days=2), members=['older.d/part1'])
    newer = put(tmp_path, 'sqlite', 'notes', 'dump', NOW - datetime.timedelta(days=1), members=['newer.d/part1'])
    # a multi-file artifact is its directory: put() wrote a file of the artifact's name; make both directories
    for name, member in ((older, 'older.d/part1'), (newer, 'newer.d/part1')):
        os.unlink(tmp_path / name)
        (tmp_path / name).mkdir()
        os.rename(tmp_path / member, tmp_path / name / 'part1')
        data = json.loads((tmp_path / (name + '.manifest.json')).read_text())
        data['members'] = [{'path': name + '/part1', 'size': 1, 'sha256': '0' * 64}]
        (tmp_path / (name + '.manifest.json')).write_text(json.dumps(data))
    os.unlink(tmp_path / newer / 'part1')
    real = prune(str(tmp_path), retention.Policy(keep_last=1), now=NOW, leftover_min_age=None)
    assert str(tmp_path / older) in real['kept'], real
    assert real['deleted_ids'] == [newer]


def test_an_intact_newest_full_is_still_the_kept_one(tmp_path):
    """Regression guard (passed before): nothing changes for a sound catalog."""
    names = _set(tmp_path)
    real = prune(str(tmp_path), retention.Policy(keep_last=1), now=NOW, leftover_min_age=None)
    assert {names[0], names[1]} <= set(real['deleted_ids'])
    assert str(tmp_path / names[2]) in real['kept']
