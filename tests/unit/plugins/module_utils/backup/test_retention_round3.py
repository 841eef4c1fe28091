"""Retention trusts no full it has not proved (retention red team, round 3).

A newer full lets older fulls (and the logs only they replay) go. A full of the right size whose bytes are damaged
passed every stat check, so prune deleted the last good full for it. Now the full that supersedes is proved by its
bytes (SHA-256, streamed) unless a passed verification or an earlier prune's hash recorded its artifact's inode,
size, mtime and ctime and they are unchanged (a prune of an unchanged catalog reads nothing). And a newest full
encrypted only to a retired key is not the newest usable full when the current recipients are known.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, catalog_jobs, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import NOW
from tests.unit.plugins.module_utils.backup.test_retention_damaged_newest import _set


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


def _corrupt_same_size(path: Path) -> None:
    """Bytes damaged in place, the size unchanged (a bad write, a tool that rewrote it)."""
    body = bytearray(path.read_bytes())
    body[0] ^= 0xFF
    path.write_bytes(bytes(body))
    later = os.stat(path).st_mtime + 5
    os.utime(path, (later, later))


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def _mode(monkeypatch, tmp_path, mode):
    monkeypatch.setattr(catalog_jobs, 'PER_SET', mode != 'whole')
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1' if mode == 'indexed' else '1000000')
    if mode == 'indexed':
        describe(str(tmp_path), now=NOW)
    catalog_index.clear()


@pytest.mark.parametrize('mode', ['whole', 'per_set', 'indexed'])
def test_a_same_size_corrupt_newest_full_does_not_let_the_good_ones_go(tmp_path, monkeypatch, mode):
    names = _set(tmp_path)
    _corrupt_same_size(tmp_path / names[-1])
    _mode(monkeypatch, tmp_path, mode)
    checked = prune(str(tmp_path), retention.Policy(keep_last=1), check_mode=True, now=NOW, leftover_min_age=None)
    catalog_index.clear()
    real = prune(str(tmp_path), retention.Policy(keep_last=1), now=NOW, leftover_min_age=None)
    for key in ('deleted', 'deleted_ids', 'kept', 'reasons'):
        assert checked[key] == real[key], key
    kept = {os.path.basename(path): reason for path, reason in real['kept'].items()}
    # the newest GOOD full stays (and its log); the damaged one goes, saying why
    assert names[1] in kept, (kept, real['reasons'])
    assert (tmp_path / names[1]).exists()
    assert names[-1] in real['deleted_ids']
    assert 'SHA-256' in real['reasons'][str(tmp_path / names[-1])]
    # the result says what was read: the corrupt newest full, then the one kept in its place
    checked_paths = real['content_checked']
    assert 'DAMAGED' in checked_paths[str(tmp_path / names[-1])]
    assert checked_paths[str(tmp_path / names[1])].startswith('hashed (SHA-256): matches')


def test_an_unchanged_verified_full_is_not_read_and_a_hash_is_not_repeated(tmp_path, monkeypatch):
    """A full whose passed verification recorded its artifact's stat is trusted without a read while unchanged; a
    full prune hashed is recorded, and the next run does not read it again (prune of a large catalog stays cheap)."""
    names = _set(tmp_path)
    reads = []
    real_hash = retention._hash_damage
    monkeypatch.setattr(retention, '_hash_damage', lambda entry: reads.append(entry.id) or real_hash(entry))
    # names[-1]: recorded by a passed verification (what jobs.verify_one writes)
    manifest = tmp_path / (names[-1] + '.manifest.json')
    signature = [[os.lstat(tmp_path / names[-1]).st_ino, os.lstat(tmp_path / names[-1]).st_size,
                  os.lstat(tmp_path / names[-1]).st_mtime_ns, os.lstat(tmp_path / names[-1]).st_ctime_ns]]
    _edit(manifest, lambda d: d['verification'].update(artifact_stat=signature))
    first = prune(str(tmp_path), retention.Policy(keep_last=2), now=NOW, leftover_min_age=None)
    assert reads == [] and first['deleted_ids'][0] == names[0]
    assert first['content_checked'][str(tmp_path / names[-1])].startswith('not read: verified at')
    # the artifact changed since its verification (same size): read, found damaged, the older full kept (only
    # damage lets the damaged one go: nothing supersedes the older one, which is not read)
    _corrupt_same_size(tmp_path / names[-1])
    second = prune(str(tmp_path), retention.Policy(keep_last=1), check_mode=True, now=NOW, leftover_min_age=None)
    assert reads == [names[-1]], reads
    assert str(tmp_path / names[1]) in second['kept']


def test_a_prune_hash_is_recorded_and_trusted_next_time(tmp_path, monkeypatch):
    names = _set(tmp_path)
    reads = []
    real_hash = retention._hash_damage
    monkeypatch.setattr(retention, '_hash_damage', lambda entry: reads.append(entry.id) or real_hash(entry))
    prune(str(tmp_path), retention.Policy(keep_last=2), now=NOW, leftover_min_age=None)
    assert reads == [names[-1]]
    recorded = json.loads((tmp_path / (names[-1] + '.manifest.json')).read_text())
    info = os.lstat(tmp_path / names[-1])
    assert recorded['content_check']['artifact_stat'] == [[info.st_ino, info.st_size, info.st_mtime_ns,
                                                           info.st_ctime_ns]]
    # the next run lets another full go on the same newest full: trusted on its recorded hash, not read again
    again = prune(str(tmp_path), retention.Policy(keep_last=1), now=NOW, leftover_min_age=None)
    assert reads == [names[-1]], reads
    assert again['content_checked'][str(tmp_path / names[-1])].startswith('not read: its SHA-256 matched at')
    assert names[1] in again['deleted_ids']


def test_nothing_is_read_when_no_full_goes(tmp_path, monkeypatch):
    """A set that loses no full has nothing superseded: nothing is read (new return value: fails on the old code)."""
    _set(tmp_path)
    monkeypatch.setattr(retention, '_hash_damage', lambda entry: pytest.fail('read %s' % entry.id))
    result = prune(str(tmp_path), retention.Policy(keep_last=5), check_mode=True, now=NOW, leftover_min_age=None)
    assert result['content_checked'] == {}


def _encrypt_to(tmp_path: Path, name: str, keys) -> None:
    _edit(tmp_path / (name + '.manifest.json'),
          lambda d: d.update(encryption={'format': 'age', 'recipients': list(keys)}))


@pytest.mark.parametrize('mode', ['whole', 'per_set', 'indexed'])
def test_a_newest_full_readable_only_by_a_retired_key_is_not_the_newest_usable(tmp_path, monkeypatch, mode):
    names = _set(tmp_path)
    for name in names[:-1]:
        _encrypt_to(tmp_path, name, ['age1new', 'age1escrow'])
    _encrypt_to(tmp_path, names[-1], ['age1old'])
    _mode(monkeypatch, tmp_path, mode)
    policy = retention.Policy(keep_last=1)
    policy.recipients = ['age1new']
    real = prune(str(tmp_path), policy, now=NOW, leftover_min_age=None)
    kept = {os.path.basename(path): reason for path, reason in real['kept'].items()}
    assert names[1] in kept, (kept, real['reasons'])
    assert 'newest' in kept[names[1]]
    # the retired-key full is kept by keep_last, and says it is not counted as the newest usable one
    assert 'not current recipients' in kept[names[-1]]
    assert real['deleted_ids'][0] == names[0]


def test_without_current_recipients_every_full_counts(tmp_path):
    """Regression guard (passed before): recipients unknown, the newest full is the newest usable one."""
    names = _set(tmp_path)
    _encrypt_to(tmp_path, names[-1], ['age1old'])
    real = prune(str(tmp_path), retention.Policy(keep_last=1), now=NOW, leftover_min_age=None)
    assert names[1] in real['deleted_ids']


def test_a_real_verification_records_the_artifact_stat_and_prune_trusts_it(tmp_path, monkeypatch):
    """db_backup verify=true (and backup_verify) record the passed artifact's stat; prune then reads nothing of it.
    Same-size damage written after the verification is caught by the prune that would let the older full go."""
    import sqlite3
    from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup, verify_path
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine

    db = tmp_path / 'app.db'
    conn = sqlite3.connect(db)
    conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
    conn.executemany('INSERT INTO t (v) VALUES (?)', [('row %d' % i,) for i in range(500)])
    conn.commit()
    conn.close()
    dest = tmp_path / 'b'
    paths = []
    for dummy in range(2):
        result = run_backup(get_engine('sqlite', ConnectionParams()), BackupOptions(kind='full', dest=str(dest),
                                                                                    database=str(db)), verify=True)
        paths.append(result['manifest']['path'])
    newest = json.loads(open(paths[-1] + '.manifest.json').read())
    assert newest['verification']['ok'] is True and newest['verification']['artifact_stat'], newest['verification']
    assert verify_path(str(dest))['changed'] is False   # re-verifying intact backups records nothing
    reads = []
    real_hash = retention._hash_damage
    monkeypatch.setattr(retention, '_hash_damage', lambda entry: reads.append(entry.id) or real_hash(entry))
    checked = prune(str(dest), retention.Policy(keep_last=1), check_mode=True, leftover_min_age=None)
    assert reads == [] and checked['deleted'] == [paths[0]]
    _corrupt_same_size(Path(paths[-1]))
    real = prune(str(dest), retention.Policy(keep_last=1), leftover_min_age=None)
    assert len(reads) == 1 and real['deleted'] == [paths[-1]], real
    assert os.path.exists(paths[0])
