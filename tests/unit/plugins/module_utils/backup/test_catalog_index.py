"""The derived per-process manifest index (backup/catalog_index.py): each manifest is parsed once per
process, and never trusted over a manifest file that changed, whatever stamps the change left."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import time

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC, isoformat

AT = datetime.datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_index(monkeypatch):
    catalog_index.clear()
    # files written by the test count as settled at once (the racy window is tested on its own)
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


def write(directory, name, database='shop', kind='full', size=None, verified=True):
    body = name.encode()
    (directory / name).write_bytes(body)
    data = {'id': name, 'artifact': name, 'format': 1, 'engine': 'mariadb', 'database': database, 'kind': kind,
            'started': isoformat(AT), 'finished': isoformat(AT), 'consistent_at': isoformat(AT),
            'size': len(body) if size is None else size, 'sha256': hashlib.sha256(body).hexdigest(),
            'compression': 'none', 'position': {}, 'verification': {'ok': verified}}
    path = directory / (name + '.manifest.json')
    path.write_text(json.dumps(data))
    return path


def counting_json_load(monkeypatch):
    calls = []
    real = json.load

    def load(handle, *args, **kwargs):
        calls.append(handle.name)
        return real(handle, *args, **kwargs)
    monkeypatch.setattr(json, 'load', load)
    return calls


def test_describe_parses_each_manifest_once(tmp_path, monkeypatch):
    for db in ('a', 'b', 'c'):
        for i in range(3):
            write(tmp_path, 'mariadb-%s-full-2026112%dT100000Z.sql' % (db, i), database=db)
    calls = counting_json_load(monkeypatch)
    info = describe(str(tmp_path))
    assert len(info['sets']) == 3 and len(info['artifacts']) == 9
    # before the index: once for the directory and once more per set (9 x 4 parses)
    assert len(calls) == 9


def test_an_in_place_rewrite_with_the_same_size_and_mtime_is_read_again(tmp_path):
    path = write(tmp_path, 'full-20261120T100000Z.sql', size=1000)
    assert Catalog(str(tmp_path)).entries[0].data['size'] == 1000
    before = os.stat(path)
    time.sleep(0.05)  # past the filesystem's timestamp tick
    # same length, same inode, mtime put back: only the ctime tells (a user cannot set it)
    with open(path, 'r+') as handle:
        text = handle.read().replace('"size": 1000', '"size": 1001')
        handle.seek(0)
        handle.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (before.st_size, before.st_ino, before.st_mtime_ns)
    assert Catalog(str(tmp_path)).entries[0].data['size'] == 1001


def test_a_manifest_replaced_by_rename_or_removed_is_seen(tmp_path):
    path = write(tmp_path, 'full-20261120T100000Z.sql')
    assert Catalog(str(tmp_path)).entries[0].verified is True
    write(tmp_path / '..' / tmp_path.name, 'full-20261120T100000Z.sql', verified=False)  # atomic-like rewrite
    assert Catalog(str(tmp_path)).entries[0].verified is False
    path.unlink()
    assert Catalog(str(tmp_path)).entries == []


def test_a_recorded_verification_is_what_the_next_catalog_reads(tmp_path):
    write(tmp_path, 'full-20261120T100000Z.sql', verified=None)
    entry = Catalog(str(tmp_path)).entries[0]
    entry.record_verification(False, {'checksum': 'mismatch'}, AT)
    again = Catalog(str(tmp_path)).entries[0]
    assert again.verified is False and again.data['verification']['checks'] == {'checksum': 'mismatch'}


def test_broken_manifests_are_never_cached(tmp_path):
    path = write(tmp_path, 'full-20261120T100000Z.sql')
    path.write_text('{not json')
    assert len(Catalog(str(tmp_path)).broken) == 1
    write(tmp_path, 'full-20261120T100000Z.sql')
    catalog = Catalog(str(tmp_path))
    assert catalog.broken == [] and len(catalog.entries) == 1


def test_a_just_written_manifest_is_parsed_every_time(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 3600 * 1000 ** 3)
    write(tmp_path, 'full-20261120T100000Z.sql')
    calls = counting_json_load(monkeypatch)
    Catalog(str(tmp_path))
    Catalog(str(tmp_path))
    assert len(calls) == 2
