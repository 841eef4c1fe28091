"""backup_prune in check mode proves what it lists, not every manifest it counts (issue 22, catalog at scale).

At a year of hourly backups check mode would delete ~140,000 artifacts; the module lists ``max_listed`` (1000) of
them. ``prune(..., max_listed=N)`` cuts the lists itself (``list_at_most``) and, on a sealed index, ``stat``s only
the manifests of the deletions it lists (the rest are counted on their rows, as kept manifests always were): the
140,000 ``stat``s were a third of a check-mode prune. A real run ``stat``s none of them: it parses every manifest
of each set it deletes from (``rows_agree``) before it deletes anything.

What a stale or lying index can then make each do, proved here on a sealed catalog:

* a listed deletion whose manifest was rewritten in place (the seal cannot see it) is found by its ``stat``: the run
  answers again from the manifests and the seal is withdrawn, as before;
* a deletion past the listed ones, rewritten in place or lied about by the index rows, can change check mode's
  counts (the documented limit: an unused manifest's row), never what a real run deletes: the real run plans on
  the parsed manifests, so it deletes what a run that trusts no index deletes, and keeps the newest good fulls.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup import manifest as manifest_mod
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import INDEX_NAME
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import list_at_most, prune

BENCH = Path(__file__).resolve().parents[5] / 'bench'
sys.path.insert(0, str(BENCH))
import catalog_scale  # noqa: E402

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)
SUFFIX = manifest_mod.MANIFEST_SUFFIX
POLICY = retention.Policy(keep_last=2)
LISTED = 5
COMPARED = ('changed', 'deleted', 'deleted_ids', 'reasons', 'kept', 'leftovers_removed', 'deleted_count',
            'kept_count', 'leftovers_removed_count', 'lists_truncated')


@pytest.fixture(autouse=True)
def small_index(monkeypatch):
    catalog_index.clear()
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


@pytest.fixture
def sealed(tmp_path):
    # 10 days of a daily full and 23 hourly logs, two databases: keep_last=2 deletes 8 fulls and ~180 logs a set
    catalog_scale.generate(tmp_path, 480, databases=2, end=NOW)
    describe(str(tmp_path), now=NOW)   # writes the index
    catalog_index.clear()
    describe(str(tmp_path), now=NOW)   # and seals it
    catalog_index.clear()
    assert is_sealed(tmp_path)
    return tmp_path


def is_sealed(directory: Path) -> bool:
    """Whether the index file's header holds a seal (read, not scanned: a scan that can write would seal it again)."""
    return catalog_index.seal_of((directory / INDEX_NAME).read_bytes()) is not None


@contextlib.contextmanager
def no_index():
    """A run that parses every manifest and never reads an index."""
    old = os.environ['OPSREADY_CATALOG_INDEX_MIN']
    os.environ['OPSREADY_CATALOG_INDEX_MIN'] = str(10 ** 9)
    catalog_index.clear()
    try:
        yield
    finally:
        os.environ['OPSREADY_CATALOG_INDEX_MIN'] = old
        catalog_index.clear()


def checked(directory: Path, max_listed=LISTED, database=None) -> dict:
    catalog_index.clear()
    with catalog_index.read_only():   # what the module's check mode runs in
        return prune(str(directory), POLICY, database=database, check_mode=True, now=NOW, max_listed=max_listed)


def truth(directory: Path, max_listed=LISTED, database=None) -> dict:
    """What a run that trusts no index answers (check mode), cut like the module's result (read-only: it neither
    rewrites nor reseals the index the run under test reads)."""
    with no_index(), catalog_index.read_only():
        return list_at_most(prune(str(directory), POLICY, database=database, check_mode=True, now=NOW), max_listed)


def rewrite_in_place(path: Path, change) -> None:
    """Edit a manifest through its own inode (the directory does not change: the seal still vouches for it)."""
    before = path.stat()
    data = json.loads(path.read_text())
    change(data)
    text = json.dumps(data, indent=2, sort_keys=True) + '\n'
    if len(text.encode()) < before.st_size:
        text = text[:-1] + ' ' * (before.st_size - len(text.encode())) + '\n'
    with open(path, 'r+') as handle:
        handle.write(text)
        handle.truncate()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def claims_newest(data: dict) -> None:
    data.update(finished='2026-12-04T11:59:00.000000Z', consistent_at='2026-12-04T11:58:00.000000Z',
                started='2026-12-04T11:58:00.000000Z')


def manifest_stats(monkeypatch) -> list:
    stats = []
    real = os.stat

    def counting(path, *args, **kwargs):
        if str(path).endswith(SUFFIX):
            stats.append(path)
        return real(path, *args, **kwargs)
    monkeypatch.setattr(os, 'stat', counting)
    return stats


def test_check_mode_stats_the_manifests_of_the_listed_deletions_only(sealed, monkeypatch):
    expected = truth(sealed)
    assert expected['deleted_count'] > 300 and expected['lists_truncated'] is True
    doomed = {os.path.basename(p) + SUFFIX for p in truth(sealed, max_listed=-1)['deleted']}
    stats = manifest_stats(monkeypatch)
    result = checked(sealed)
    monkeypatch.undo()
    assert {key: result[key] for key in COMPARED} == {key: expected[key] for key in COMPARED}
    # the listed deletions' manifests, not the 360-odd it counts (the kept fulls it uses are looked at as before)
    assert sorted(name for name in map(os.path.basename, stats) if name in doomed) == sorted(
        os.path.basename(p) + SUFFIX for p in expected['deleted']), stats
    # max_listed -1: every deletion is listed, so every one is proved
    stats = manifest_stats(monkeypatch)
    everything = checked(sealed, max_listed=-1)
    monkeypatch.undo()
    assert sorted(name for name in map(os.path.basename, stats) if name in doomed) == sorted(doomed)
    assert everything['deleted_count'] == expected['deleted_count']


def test_a_listed_deletion_rewritten_in_place_is_seen(sealed):
    doomed = Path(truth(sealed)['deleted'][0] + SUFFIX)
    rewrite_in_place(doomed, claims_newest)   # its set's keep_last keeps it now
    expected = truth(sealed)
    assert doomed.name[:-len(SUFFIX)] not in expected['deleted_ids']
    result = checked(sealed)
    assert {key: result[key] for key in COMPARED} == {key: expected[key] for key in COMPARED}
    assert not is_sealed(sealed), 'a seal found wrong must not vouch for the next run (even in check mode)'


def _edit_unlisted_full(directory: Path) -> str:
    """The newest full check mode would delete (far past the listed deletions), rewritten in place to claim to be
    the newest backup of its set: its set's keep_last then keeps it and lets the real second-newest full go."""
    before = truth(directory, max_listed=-1)
    fulls = [i for i in before['deleted_ids'] if '-full-' in i]
    target = fulls[-1]
    assert target not in before['deleted_ids'][:LISTED]
    rewrite_in_place(directory / (target + SUFFIX), claims_newest)
    return target


def _index_lies_about_an_unlisted_full(directory: Path) -> str:
    """The same claim made by the index rows alone (re-encoded under a matching checksum: its owner or a writer bug),
    the manifest unchanged."""
    before = truth(directory, max_listed=-1)
    target = [i for i in before['deleted_ids'] if '-full-' in i][-1]
    index = directory / INDEX_NAME
    dev = os.stat(directory).st_dev
    columns, dummy = catalog_index.parse_index(index.read_bytes(), dev)
    row = columns['stem'].index(target)
    columns['finished'][row] = manifest_mod.to_us(datetime.datetime(2026, 12, 4, 11, 59, tzinfo=datetime.timezone.utc))
    columns['consistent'][row] = manifest_mod.to_us(datetime.datetime(2026, 12, 4, 11, 58,
                                                                      tzinfo=datetime.timezone.utc))
    index.write_bytes(catalog_index.encode_index(dev, columns))
    return target


@pytest.mark.parametrize('stale', [_edit_unlisted_full, _index_lies_about_an_unlisted_full],
                         ids=['manifest-edited-in-place', 'index-rows-lie'])
def test_an_unlisted_deletion_the_index_is_wrong_about_never_decides_a_real_deletion(sealed, stale):
    target = stale(sealed)
    expected = truth(sealed, max_listed=-1)   # the manifests' plan
    result = checked(sealed)
    # what check mode lists is the manifests' plan (the listed deletions are proved); counted on a row, the one the
    # index is wrong about may be off (the documented limit of an unused manifest's row: docs/architecture.md)
    assert result['deleted'] == expected['deleted'][:LISTED]
    assert result['deleted_ids'] == expected['deleted_ids'][:LISTED]
    # the real run deletes exactly what the manifests say, whatever the index said: never on a row's word
    catalog_index.clear()
    real = prune(str(sealed), POLICY, check_mode=False, now=NOW, max_listed=-1)
    catalog_index.clear()
    for key in ('deleted', 'deleted_ids', 'reasons', 'kept', 'deleted_count', 'kept_count'):
        assert real[key] == expected[key], key
    assert not any(os.path.lexists(p) for p in real['deleted'])
    assert all(os.path.exists(p) and os.path.exists(p + SUFFIX) for p in real['kept'])
    # every set keeps its two newest fulls by their manifests (the one claiming to be newest among them)
    for database in ('app00', 'app01'):
        fulls = [m for m in Catalog(str(sealed), database=database).entries if m.kind == 'full']
        catalog_index.clear()
        assert len(fulls) == 2, database
    # the one the index was wrong about: kept or deleted as its manifest says
    assert os.path.exists(sealed / (target + SUFFIX)) == (str(sealed / target) in expected['kept'])
