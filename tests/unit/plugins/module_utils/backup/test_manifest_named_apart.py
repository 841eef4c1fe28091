"""A manifest whose file name is not its artifact's name plus ``.manifest.json`` (renamed by hand, copied under
another name): the catalog lists it, so everything that writes or deletes "its manifest" must act on that very file.
Before, prune deleted ``<artifact>.manifest.json`` (another name) and left the manifest behind naming an artifact it
had just deleted (a phantom backup for the next restore or drill), and recording a verification wrote a second
manifest next to it (two manifests, one id)."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import NOW, put, stamp

SUFFIX = '.manifest.json'


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


def catalog_with_apart(directory, oldest_apart=True):
    """Three SQLite dumps a day apart; the oldest (or the newest) has its manifest named apart from its artifact."""
    apart = 0 if oldest_apart else 2
    for day in range(3):
        moment = NOW - datetime.timedelta(days=3 - day)
        if day == apart:
            put(directory, 'sqlite', 'notes', 'dump', moment, artifact='odd-name.db',
                manifest_name='sqlite-notes-dump-%s%s' % (stamp(moment), SUFFIX))
        else:
            put(directory, 'sqlite', 'notes', 'dump', moment)
    return 'sqlite-notes-dump-%s%s' % (stamp(NOW - datetime.timedelta(days=3 - apart)), SUFFIX)


@pytest.mark.parametrize('index', ['none', 'sealed'])
def test_prune_deletes_the_manifest_file_it_read(tmp_path, monkeypatch, index):
    manifest_name = catalog_with_apart(tmp_path)
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1000000' if index == 'none' else '1')
    if index == 'sealed':
        describe(str(tmp_path), now=NOW)
        catalog_index.clear()
    done = prune(str(tmp_path), retention.Policy(keep_last=1), now=NOW, leftover_min_age=None)
    assert str(tmp_path / 'odd-name.db') in done['deleted']
    assert not (tmp_path / 'odd-name.db').exists()
    assert not (tmp_path / manifest_name).exists(), 'the manifest of a deleted backup was left behind'
    catalog_index.clear()
    assert [m.id for m in Catalog(str(tmp_path)).entries] == [os.path.basename(done['kept'].popitem()[0])]


@pytest.mark.parametrize('index', ['none', 'sealed'])
def test_recording_a_verification_rewrites_that_file_and_adds_no_second_manifest(tmp_path, monkeypatch, index):
    manifest_name = catalog_with_apart(tmp_path, oldest_apart=False)
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1000000' if index == 'none' else '1')
    if index == 'sealed':
        describe(str(tmp_path), now=NOW)
        catalog_index.clear()
    before = sorted(os.listdir(tmp_path))
    entry = [m for m in Catalog(str(tmp_path)).entries if m.id == 'odd-name.db'][0]
    entry.record_verification(False, {'sha256': 'mismatch'}, NOW)
    after = sorted(n for n in os.listdir(tmp_path) if n != catalog_index.INDEX_NAME)
    assert after == [n for n in before if n != catalog_index.INDEX_NAME]
    assert json.loads((tmp_path / manifest_name).read_text())['verification']['ok'] is False
