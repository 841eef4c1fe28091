"""The sealed index (issue 22): an index file whose seal matches the directory's own signature (device, inode,
mtime and ctime to the nanosecond) is used without a ``stat`` of every manifest; every manifest an operation
returns, acts on or reports in detail is still ``stat``ed and, when changed, parsed and compared.

Each test tampers with the catalog the way a person or a bug could, then asks the same questions as a run
that parses every manifest and trusts no index: the answers must be the same. Each tamper also puts the
directory's mtime back (``touch -d``-like clock games): only its ctime, which cannot be set, tells.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup import manifest as manifest_mod
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import INDEX_NAME
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune

BENCH = Path(__file__).resolve().parents[5] / 'bench'
sys.path.insert(0, str(BENCH))
import catalog_scale  # noqa: E402

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)
SUFFIX = manifest_mod.MANIFEST_SUFFIX
POLICY = retention.Policy(keep_last=2)


@pytest.fixture(autouse=True)
def small_index(monkeypatch):
    catalog_index.clear()
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


@pytest.fixture
def sealed(tmp_path):
    catalog_scale.generate(tmp_path, 120, databases=2, end=NOW)
    describe(str(tmp_path), now=NOW)   # writes (and seals) the index
    catalog_index.clear()
    return tmp_path


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


def questions(directory: Path):
    """What backup_info, the drill's find_backup, backup_prune (check mode) and a restore ask, each a new run."""
    out = {}
    for database in (None, 'app00', 'app01'):
        catalog_index.clear()
        out['describe', database] = describe(str(directory), database=database, now=NOW, max_artifacts=5)
        catalog_index.clear()
        out['prune', database] = prune(str(directory), POLICY, database=database, check_mode=True, now=NOW)
    catalog_index.clear()
    catalog = Catalog(str(directory), engine='mariadb', database='app01')
    try:
        out['restore'] = [m.summary() for m in catalog.chain_for(None)]
    except catalog_index.CatalogError as exc:
        out['restore'] = exc.message
    catalog_index.clear()
    return out


def assert_same_as_parsing_everything(directory: Path, only=None):
    answers = questions(directory)
    with no_index():
        truth = questions(directory)
    for key in (only or truth):
        assert answers[key] == truth[key], key


def keep_dir_times(directory: Path):
    """Put the directory's atime/mtime back after a change (its ctime moves on regardless)."""
    before = directory.stat()

    def restore():
        os.utime(directory, ns=(before.st_atime_ns, before.st_mtime_ns))
    return restore


def rewrite_in_place(path: Path, change) -> None:
    before = path.stat()
    data = json.loads(path.read_text())
    change(data)
    text = json.dumps(data, indent=2, sort_keys=True) + '\n'
    if len(text.encode()) < before.st_size:
        text = text[:-1] + ' ' * (before.st_size - len(text.encode())) + '\n'
    with open(path, 'r+') as handle:   # same inode: the directory does not change
        handle.write(text)
        handle.truncate()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def newest(directory: Path, kind: str, database='app01') -> Path:
    catalog = Catalog(str(directory), database=database)
    entry = [m for m in catalog.entries if m.kind == kind][-1]
    catalog_index.clear()
    return Path(entry.manifest_path)


def test_a_sealed_unchanged_catalog_is_answered_without_a_stat_per_manifest(sealed, monkeypatch):
    stats = []
    real = os.stat

    def counting(path, *args, **kwargs):
        if str(path).endswith(SUFFIX):
            stats.append(path)
        return real(path, *args, **kwargs)
    monkeypatch.setattr(os, 'stat', counting)
    info = describe(str(sealed), database='app01', now=NOW, max_artifacts=0)
    # what it reports in detail is checked (the chain, twice: as the set's and as listed; the newest fulls),
    # not the 120 manifests of the directory
    assert info['chain'] and len(stats) <= 4 * (len(info['chain']) + 2) < 120, len(stats)
    monkeypatch.setattr(os, 'stat', real)
    assert_same_as_parsing_everything(sealed)


def test_in_place_edit_of_a_used_full(sealed):
    rewrite_in_place(newest(sealed, 'full'), lambda d: d['verification'].update(ok=False))
    assert_same_as_parsing_everything(sealed)


def test_in_place_edit_of_a_chain_log(sealed):
    # the last log of the chain now ends elsewhere: the chain (and recoverable_until) changes
    path = newest(sealed, 'log')
    rewrite_in_place(path, lambda d: d.update(consistent_at=d['started']))
    assert_same_as_parsing_everything(sealed)


def test_in_place_edit_of_a_manifest_prune_would_delete(sealed):
    truth = prune(str(sealed), POLICY, database='app01', check_mode=True, now=NOW)
    catalog_index.clear()
    doomed = Path(truth['deleted'][0] + SUFFIX)
    # it claims to be the newest backup now: keep_last keeps it
    rewrite_in_place(doomed, lambda d: d.update(finished='2026-12-04T11:59:00.000000Z',
                                                consistent_at='2026-12-04T11:58:00.000000Z'))
    # what prune acts on is proved; backup_info of the whole directory, which does not use that manifest, is
    # not (the documented limit of the seal: docs/architecture.md)
    assert_same_as_parsing_everything(sealed, only=[('prune', None), ('prune', 'app01'), ('describe', 'app01')])


def test_added_manifest_with_the_directory_mtime_put_back(sealed):
    restore = keep_dir_times(sealed)
    source = newest(sealed, 'full')
    data = json.loads(source.read_text())
    data['id'] = data['artifact'] = data['artifact'].replace('full', 'full2')
    data['finished'] = '2026-12-04T11:30:00.000000Z'
    (sealed / data['artifact']).touch()
    (sealed / (data['artifact'] + SUFFIX)).write_text(json.dumps(data))
    restore()
    assert_same_as_parsing_everything(sealed)
    assert describe(str(sealed), database='app01', now=NOW)['sets'][0]['newest'] == data['id']


def test_removed_manifest_with_the_directory_mtime_put_back(sealed):
    restore = keep_dir_times(sealed)
    newest(sealed, 'full').unlink()
    restore()
    assert_same_as_parsing_everything(sealed)


def test_renamed_manifest_with_the_directory_mtime_put_back(sealed):
    restore = keep_dir_times(sealed)
    path = newest(sealed, 'full')
    os.rename(path, sealed / ('mariadb-app01-full-20261204T115900000000Z.sql.zst' + SUFFIX))
    restore()
    assert_same_as_parsing_everything(sealed)


def test_manifest_replaced_by_rename_with_the_directory_mtime_put_back(sealed):
    restore = keep_dir_times(sealed)
    path = newest(sealed, 'full')
    data = json.loads(path.read_text())
    data['verification']['ok'] = False
    other = sealed.parent / (sealed.name + '-new')
    other.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
    os.rename(other, path)   # same name, new inode: what every write of ours does
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns - 10 ** 9))
    restore()
    assert_same_as_parsing_everything(sealed)


def test_an_older_sealed_index_put_back(sealed):
    """A copy of the index sealed earlier (backed up, restored) never vouches for a later directory."""
    old = (sealed / INDEX_NAME).read_bytes()
    stat_before = (sealed / INDEX_NAME).stat()
    source = newest(sealed, 'full')
    data = json.loads(source.read_text())
    data['id'] = data['artifact'] = data['artifact'].replace('full', 'full3')
    data['finished'] = '2026-12-04T11:40:00.000000Z'
    (sealed / data['artifact']).touch()
    (sealed / (data['artifact'] + SUFFIX)).write_text(json.dumps(data))
    describe(str(sealed), now=NOW)   # a new index, sealed again
    catalog_index.clear()
    restore = keep_dir_times(sealed)
    copy = sealed.parent / 'index-copy'
    copy.write_bytes(old)
    os.chmod(copy, 0o600)
    os.utime(copy, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns))
    os.rename(copy, sealed / INDEX_NAME)
    restore()
    assert_same_as_parsing_everything(sealed)


def test_index_edited_in_place_to_forget_a_manifest(sealed):
    index = sealed / INDEX_NAME
    dev = os.stat(sealed).st_dev
    raw = index.read_bytes()
    columns, dummy = catalog_index.parse_index(raw, dev)
    for name in columns:
        del columns[name][-1]
    data = catalog_index.encode_index(dev, columns)
    width = len(catalog_index.SEAL_KEY) + catalog_index.SEAL_WIDTH
    seal = raw[raw.index(catalog_index.SEAL_KEY):][:width]
    assert seal.strip(b' ') != catalog_index.SEAL_KEY, 'sealed'
    data = data.replace(data[data.index(catalog_index.SEAL_KEY):][:width], seal, 1)   # the seal kept
    with open(index, 'r+b') as handle:   # in place: the directory does not change, the seal stays
        handle.write(data)
        handle.truncate()
    assert_same_as_parsing_everything(sealed)


def test_index_replaced_by_a_symlink_or_another_file(sealed, tmp_path_factory):
    target = tmp_path_factory.mktemp('elsewhere') / 'index'
    shutil.copy2(sealed / INDEX_NAME, target)
    restore = keep_dir_times(sealed)
    (sealed / INDEX_NAME).unlink()
    (sealed / INDEX_NAME).symlink_to(target)
    restore()
    newest(sealed, 'log').unlink()
    restore()
    assert_same_as_parsing_everything(sealed)


def test_unused_manifest_replaced_by_rename_with_the_directory_mtime_put_back(sealed):
    """What ``record_verification`` does to a manifest no question of this run uses (the oldest log of a set):
    the listing has the same names, the manifest is never stat'ed; only the directory's ctime tells."""
    restore = keep_dir_times(sealed)
    catalog = Catalog(str(sealed), database='app00')
    path = Path([m for m in catalog.entries if m.kind == 'log'][0].manifest_path)
    catalog_index.clear()
    data = json.loads(path.read_text())
    data['verification']['ok'] = False
    other = sealed.parent / (sealed.name + '-rewrite')
    other.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
    os.rename(other, path)
    restore()
    assert_same_as_parsing_everything(sealed)
    assert describe(str(sealed), database='app00', now=NOW)['sets'][0]['failed_verification'] == [data['id']]
