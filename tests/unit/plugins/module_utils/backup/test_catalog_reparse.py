"""Retention reads the sets it deletes from again from their JSON (``Catalog(..., parse_sets=...)``): never on the
index file's word. When the manifests say what the index rows say, that re-reading must leave the index file as it
is (rewriting and re-sealing every row of a 200,000-manifest directory was most of a real prune's catalog time),
and what it parsed must still be proved unchanged by ``confirm`` before anything is deleted on it."""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup import manifest as manifest_mod
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import INDEX_NAME, IndexStale
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune

BENCH = Path(__file__).resolve().parents[5] / 'bench'
sys.path.insert(0, str(BENCH))
import catalog_scale  # noqa: E402

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)
SET = ('mariadb', 'app01')


@pytest.fixture(autouse=True)
def small_index(monkeypatch):
    catalog_index.clear()
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


@pytest.fixture
def indexed(tmp_path):
    catalog_scale.generate(tmp_path, 120, databases=2, end=NOW)
    describe(str(tmp_path), now=NOW)   # writes (and seals) the index
    catalog_index.clear()
    return tmp_path


def index_identity(directory: Path):
    st = (directory / INDEX_NAME).stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def test_reparsing_a_set_that_agrees_with_the_index_leaves_the_index_file_alone(indexed):
    Catalog(str(indexed))   # the index loaded and current, as retention's first catalog leaves it
    before = index_identity(indexed)
    truth = Catalog(str(indexed), engine=SET[0], database=SET[1], parse_sets={SET})
    assert truth.entries and all(not isinstance(m, catalog_index.IndexedManifest) for m in truth.entries)
    assert index_identity(indexed) == before   # not rewritten (a rewrite is a new inode: atomic rename)
    catalog_index.clear()
    assert describe(str(indexed), now=NOW) == (describe_without_index(indexed))


def describe_without_index(directory: Path):
    old = os.environ['OPSREADY_CATALOG_INDEX_MIN']
    os.environ['OPSREADY_CATALOG_INDEX_MIN'] = str(10 ** 9)
    catalog_index.clear()
    try:
        return describe(str(directory), now=NOW)
    finally:
        os.environ['OPSREADY_CATALOG_INDEX_MIN'] = old
        catalog_index.clear()


def test_a_reparsed_manifest_edited_in_place_afterwards_is_caught_by_confirm(indexed):
    """The re-parsed objects are not in the process cache (the rows stay): confirm must still stat them against the
    file they were parsed from, and parse and compare one that changed."""
    Catalog(str(indexed))
    truth = Catalog(str(indexed), engine=SET[0], database=SET[1], parse_sets={SET})
    oldest_full = [m for m in truth.entries if m.kind == 'full'][0]
    catalog_index.confirm([oldest_full])   # unchanged: passes
    path = Path(oldest_full.manifest_path)
    before = path.stat()
    data = json.loads(path.read_text())
    data['finished'] = '2001-01-01T00:00:00Z'
    text = json.dumps(data, indent=2, sort_keys=True) + '\n'
    with open(path, 'r+') as handle:   # in place: same inode, the directory does not change
        handle.write(text)
        handle.truncate()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(IndexStale):
        catalog_index.confirm([oldest_full])


def test_real_prune_of_a_set_deletes_what_check_mode_said_without_rewriting_the_index(indexed, monkeypatch):
    policy = retention.Policy(keep_last=2)
    catalog_index.clear()
    planned = prune(str(indexed), policy, engine=SET[0], database=SET[1], check_mode=True, now=NOW)
    assert planned['deleted']
    writes = []
    real_write = catalog_index._write_index

    def counting(*args, **kwargs):
        writes.append(args[0])
        return real_write(*args, **kwargs)
    monkeypatch.setattr(catalog_index, '_write_index', counting)
    catalog_index.clear()
    done = prune(str(indexed), policy, engine=SET[0], database=SET[1], now=NOW)
    assert done['deleted'] == planned['deleted']
    assert not any(os.path.exists(p) for p in done['deleted'])
    assert not any(os.path.exists(p + manifest_mod.MANIFEST_SUFFIX) for p in done['deleted'])
    # the directory is unchanged since the index was sealed: the plan's scan and the re-reading write nothing
    assert writes == []
