"""A sealed catalog answered without listing its directory (issue 22, catalog at scale).

The seal records, next to the directory's signature, the names of the listing no manifest vouches for (the leftover
candidates). A run that finds the directory with that very signature takes the listing from the seal instead of
listing 400,000 names. These tests hold it to the same answers as a run that parses every manifest and trusts no
index, after every change a person or a bug could make to the directory's names (each also puts the directory's
mtime back: only its ctime tells), and check that a filesystem with coarse timestamps never skips the listing.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import INDEX_NAME
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune

from ansible_collections.opsready.operations.plugins.module_utils.backup import manifest as manifest_mod
from ansible_collections.opsready.operations.plugins.module_utils.backup import retention

BENCH = Path(__file__).resolve().parents[5] / 'bench'
sys.path.insert(0, str(BENCH))
import catalog_scale  # noqa: E402

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)
SUFFIX = manifest_mod.MANIFEST_SUFFIX
POLICY = retention.Policy(keep_last=2)
LEFTOVER = 'mariadb-app00-full-20261201T030000000000Z.sql.zst'


@pytest.fixture(autouse=True)
def small_index(monkeypatch):
    catalog_index.clear()
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


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


def keep_dir_times(directory: Path):
    """Put the directory's atime/mtime back after a change (its ctime moves on regardless)."""
    before = directory.stat()

    def restore():
        os.utime(directory, ns=(before.st_atime_ns, before.st_mtime_ns))
    return restore


@pytest.fixture
def sealed(tmp_path):
    catalog_scale.generate(tmp_path, 120, databases=2, end=NOW)
    (tmp_path / LEFTOVER).write_bytes(b'half a dump')   # an interrupted run's artifact: no manifest
    (tmp_path / 'README').write_text('not ours')
    describe(str(tmp_path), now=NOW)   # writes (and seals) the index
    catalog_index.clear()
    describe(str(tmp_path), now=NOW)   # sealed by now (the first run may have written it)
    catalog_index.clear()
    return tmp_path


@contextlib.contextmanager
def listings():
    """Every directory listing the catalog makes within the block."""
    calls = []
    real = os.listdir

    def counting(path='.'):
        calls.append(path)
        return real(path)
    os.listdir = counting
    try:
        yield calls
    finally:
        os.listdir = real


def answers(directory: Path):
    """What backup_info, backup_prune (check mode), the drill's find_backup and db_backup's leftover scan ask,
    each as a new run."""
    out = {}
    for database in (None, 'app00'):
        catalog_index.clear()
        out['describe', database] = describe(str(directory), database=database, now=NOW, max_artifacts=5)
        catalog_index.clear()
        out['prune', database] = prune(str(directory), POLICY, database=database, check_mode=True, now=NOW,
                                       leftover_min_age=0)
    catalog_index.clear()
    out['leftovers'] = Catalog(str(directory)).leftovers()
    catalog_index.clear()
    return out


def assert_same_as_parsing_everything(directory: Path):
    got = answers(directory)
    with no_index():
        truth = answers(directory)
    assert got == truth


def test_an_unchanged_sealed_catalog_is_answered_without_a_listing(sealed):
    with listings() as calls:
        for database in (None, 'app00'):
            catalog_index.clear()
            info = describe(str(sealed), database=database, now=NOW)
            assert info['leftovers'] == [str(sealed / LEFTOVER)]
            catalog_index.clear()
            result = prune(str(sealed), POLICY, database=database, check_mode=True, now=NOW, leftover_min_age=0)
            assert result['leftovers_removed'] == [str(sealed / LEFTOVER)]
    assert calls == []
    assert_same_as_parsing_everything(sealed)


@pytest.mark.parametrize('change', ['add_leftover', 'remove_leftover', 'add_manifest', 'remove_manifest',
                                    'rename_leftover', 'replace_leftover_by_rename', 'add_partial'])
def test_a_name_added_or_removed_after_the_seal_is_seen(sealed, change):
    """Every change of names after the seal is seen (the answers of a run that trusts no index), and once sealed
    again the next run lists nothing (the part the previous release fails: it always listed)."""
    restore = keep_dir_times(sealed)
    if change == 'add_leftover':
        (sealed / 'mariadb-app01-log-20261202T010000000000Z.mariadb-bin.000007.zst').write_bytes(b'x')
    elif change == 'remove_leftover':
        (sealed / LEFTOVER).unlink()
    elif change == 'add_manifest':
        # the leftover's manifest arrives (the run finished after all): it is no longer a leftover
        source = sorted(sealed.glob('mariadb-app00-full-*' + SUFFIX))[-1]
        text = source.read_text().replace(source.name[:-len(SUFFIX)], LEFTOVER)
        (sealed / (LEFTOVER + SUFFIX)).write_text(text)
    elif change == 'remove_manifest':
        # a manifest removed, its artifact left: now a leftover
        sorted(sealed.glob('mariadb-app01-log-*' + SUFFIX))[0].unlink()
    elif change == 'rename_leftover':
        os.rename(sealed / LEFTOVER, sealed / (LEFTOVER + '.partial'))
    elif change == 'replace_leftover_by_rename':
        other = sealed / 'mariadb-app01-full-20261202T030000000000Z.sql.zst'
        other.write_bytes(b'y')
        os.rename(other, sealed / LEFTOVER)
    elif change == 'add_partial':
        (sealed / 'mariadb-app00-full-20261203T030000000000Z.sql.zst.partial').write_bytes(b'z')
    restore()
    assert_same_as_parsing_everything(sealed)
    # and once sealed again, answered without a listing and still the same
    catalog_index.clear()
    describe(str(sealed), now=NOW)
    catalog_index.clear()
    with listings() as calls:
        describe(str(sealed), now=NOW)
    assert calls == []
    assert_same_as_parsing_everything(sealed)


def test_many_unvouched_names_are_listed_every_time(sealed):
    """More names than the seal holds: the listing is made (and the answers are the same). (A regression guard: the
    previous release, which always listed, passes it.)"""
    for number in range(300):
        (sealed / ('stray-file-with-a-long-name-%04d.txt' % number)).write_text('x')
    catalog_index.clear()
    describe(str(sealed), now=NOW)
    catalog_index.clear()
    with listings() as calls:
        info = describe(str(sealed), now=NOW)
    assert calls and info['leftovers'] == [str(sealed / LEFTOVER)]
    assert_same_as_parsing_everything(sealed)


def test_coarse_directory_timestamps_never_skip_the_listing(sealed, monkeypatch):
    """On a filesystem whose timestamps have a granularity of 10 ms or more (whole seconds on ext3, FAT, some NFS
    servers), a change right after the seal can keep the directory's stamps: the listing is always made there.
    (A guard of ``fine_stamps``: the previous release, which always listed, passes it; without the check it fails.)"""
    real = os.stat
    target = str(sealed)

    class Coarse:
        def __init__(self, st):
            self._st = st
            self.st_mtime_ns = st.st_mtime_ns - st.st_mtime_ns % 10 ** 9
            self.st_ctime_ns = st.st_ctime_ns - st.st_ctime_ns % 10 ** 9

        def __getattr__(self, name):
            return getattr(self._st, name)

    def coarse_stat(path, *args, **kwargs):
        st = real(path, *args, **kwargs)
        return Coarse(st) if not kwargs.get('dir_fd') and str(path) == target else st
    monkeypatch.setattr(os, 'stat', coarse_stat)
    catalog_index.clear()
    (sealed / INDEX_NAME).unlink()
    describe(str(sealed), now=NOW)   # index written and sealed on the coarse stamps
    catalog_index.clear()
    describe(str(sealed), now=NOW)
    catalog_index.clear()
    with listings() as calls:
        describe(str(sealed), now=NOW)
    assert calls
    # a leftover added in the same second as the seal keeps the coarse stamps: it is still seen
    (sealed / 'mariadb-app01-full-20261202T040000000000Z.sql.zst').write_bytes(b'w')
    catalog_index.clear()
    info = describe(str(sealed), now=NOW)
    assert str(sealed / 'mariadb-app01-full-20261202T040000000000Z.sql.zst') in info['leftovers']


def test_an_index_of_the_previous_release_is_sealed_without_candidates(sealed):
    """An index written before the seal held the candidates (a 256-character seal field) is still sealed in place,
    without them: the directory is listed every run, and the answers are the same. (A regression guard of the
    width-adaptive seal writer: the previous release's own code passes it too.)"""
    index = sealed / INDEX_NAME
    raw = index.read_bytes()
    newline = raw.index(b'\n')
    header = json.loads(raw[:newline])
    header['seal'] = ' ' * 256
    index.write_bytes(json.dumps(header, sort_keys=True).encode() + raw[newline:])
    os.chmod(index, 0o600)
    catalog_index.clear()
    describe(str(sealed), now=NOW)   # unsealed: every manifest stat'ed, the file sealed again in its 256 characters
    catalog_index.clear()
    seal = json.loads(index.read_bytes()[:index.read_bytes().index(b'\n')])['seal']
    assert len(seal) == 256 and len(seal.strip().split(':')) == 7, seal
    with listings() as calls:
        describe(str(sealed), now=NOW)
    assert calls
    assert_same_as_parsing_everything(sealed)
