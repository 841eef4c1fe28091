"""remove_leftovers' light path (issue 22): a backup run decides "nothing of my sets is a leftover" from the listing and
the sets' own manifests, without the catalog code, and leaves every other case to ``Catalog.leftovers``. Whatever the
directory holds, it removes exactly what the catalog path removes (each case compared with the light path off), and
in the usual directory (every artifact beside its own manifest) it decides alone."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, leftovers

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import NOW, put, stamp

PREFIX = 'postgresql-app-full-'
SUFFIX = '.manifest.json'


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


def moment(day):
    return NOW - datetime.timedelta(days=day)


def backups(directory, days=3):
    for day in range(days):
        put(directory, 'postgresql', 'app', 'full', moment(day + 1))


def _partial(d):
    backups(d)
    (d / ('%s%s.dump.zst.partial' % (PREFIX, stamp(NOW)))).write_bytes(b'half')


def _unvouched(d):
    backups(d)
    (d / ('%s%s.dump.zst' % (PREFIX, stamp(NOW)))).write_bytes(b'no manifest')


def _named_apart(d):
    # a manifest of the set's own stem that names another file: its stem's file is vouched by nothing
    backups(d)
    name = '%s%s' % (PREFIX, stamp(NOW))
    (d / name).write_bytes(b'stray')
    put(d, 'postgresql', 'app', 'full', NOW, artifact='%s%s.dump' % (PREFIX, stamp(NOW)), manifest_name=name + SUFFIX)


def _vouched_apart(d):
    # an artifact without a manifest of its own stem, vouched by one named apart
    backups(d)
    put(d, 'postgresql', 'app', 'full', NOW, artifact='%s%s.dump' % (PREFIX, stamp(NOW)),
        manifest_name='renamed' + SUFFIX)


def _broken(d):
    backups(d)
    name = '%s%s.dump' % (PREFIX, stamp(NOW))
    (d / name).write_bytes(b'kept')
    (d / (name + SUFFIX)).write_text('{"truncated": ')


def directory_artifact(d, name):
    """A directory-format artifact (pg_dump -Fd) beside its own manifest."""
    put(d, 'postgresql', 'app', 'full', NOW, artifact=name)
    (d / name).unlink()
    (d / name).mkdir()
    (d / name / 'toc.dat').write_bytes(b'toc')


def _directory(d):
    backups(d)
    directory_artifact(d, '%s%s' % (PREFIX, stamp(NOW)))


def _symlinked_manifest(d):
    backups(d)
    name = '%s%s.dump' % (PREFIX, stamp(NOW))
    put(d, 'postgresql', 'app', 'full', NOW, artifact=name, manifest_name='elsewhere.json')
    os.symlink('elsewhere.json', str(d / (name + SUFFIX)))


def _other_set(d):
    backups(d)
    (d / ('postgresql-app-full-full-%s.dump' % stamp(NOW))).write_bytes(b'other set (database app-full)')
    (d / ('postgresql-other-full-%s.dump.partial' % stamp(NOW))).write_bytes(b'other set')


def _many(d):
    backups(d, leftovers.LIGHT_LEFTOVERS_MAX + 2)
    (d / ('%s%s.dump.partial' % (PREFIX, stamp(NOW)))).write_bytes(b'half')


def _clean(d):
    backups(d)


def _manifest_is_json_of_another_set(d):
    # the set's stem, but the manifest is valid JSON of the wrong shape: broken, its stem vouched
    backups(d)
    name = '%s%s.dump' % (PREFIX, stamp(NOW))
    (d / name).write_bytes(b'x')
    (d / (name + SUFFIX)).write_text(json.dumps({'id': name}))


CASES = [_clean, _partial, _unvouched, _named_apart, _vouched_apart, _broken, _directory, _symlinked_manifest,
         _other_set, _many, _manifest_is_json_of_another_set]


@pytest.mark.parametrize('make', CASES, ids=[c.__name__.strip('_') for c in CASES])
def test_light_path_removes_what_the_catalog_removes(tmp_path, monkeypatch, make):
    make(tmp_path)
    catalog_index.clear()
    monkeypatch.setattr(leftovers, 'LIGHT_LEFTOVERS_MAX', -1)   # the catalog path alone
    expected = leftovers.remove_leftovers(str(tmp_path), [PREFIX], check_mode=True)
    monkeypatch.undo()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    catalog_index.clear()
    assert leftovers.remove_leftovers(str(tmp_path), [PREFIX], check_mode=True) == expected
    assert leftovers.remove_leftovers(str(tmp_path), [PREFIX]) == expected
    assert all(not os.path.lexists(p) for p in expected)


def test_the_usual_directory_is_decided_without_the_catalog(tmp_path):
    backups(tmp_path)
    directory_artifact(tmp_path, '%s%s' % (PREFIX, stamp(NOW)))
    assert leftovers._none_left(str(tmp_path), [PREFIX]) is True
    (tmp_path / ('%s%s.dump.partial' % (PREFIX, stamp(NOW + datetime.timedelta(seconds=1))))).write_bytes(b'x')
    assert leftovers._none_left(str(tmp_path), [PREFIX]) is False


def test_a_directory_with_a_large_index_is_not_listed_twice(tmp_path, monkeypatch):
    """A catalog whose index file is past LIGHT_INDEX_MAX bytes holds thousands of manifests: the light check would
    list every name (0.22 s at 200,000 manifests) only to find more than LIGHT_LEFTOVERS_MAX of the run's sets and
    hand over to the catalog, which answers from the index's seal without listing. It hands over at once; the answer
    is the catalog's, as for every other case."""
    backups(tmp_path)
    (tmp_path / ('%s%s.dump.partial' % (PREFIX, stamp(NOW)))).write_bytes(b'half')
    listed = []
    real = os.listdir

    def counting(path='.'):
        listed.append(path)
        return real(path)
    monkeypatch.setattr(os, 'listdir', counting)
    assert leftovers._none_left(str(tmp_path), [PREFIX]) is False   # the partial: listed, found
    assert listed
    listed.clear()
    backups_only = tmp_path / 'clean'
    backups_only.mkdir()
    backups(backups_only)
    with open(backups_only / catalog_index.INDEX_NAME, 'wb') as handle:
        handle.truncate(leftovers.LIGHT_INDEX_MAX + 1)   # (its content is the catalog's business: here only its size)
    assert leftovers._none_left(str(backups_only), [PREFIX]) is False
    assert listed == [], 'the light check listed a directory the catalog answers without listing'
    monkeypatch.undo()
    catalog_index.clear()
    assert leftovers.remove_leftovers(str(backups_only), [PREFIX], check_mode=True) == []
    catalog_index.clear()
    assert leftovers.remove_leftovers(str(tmp_path), [PREFIX], check_mode=True) == [
        str(tmp_path / ('%s%s.dump.partial' % (PREFIX, stamp(NOW))))]


@pytest.mark.parametrize('light', [True, False], ids=['light', 'catalog'])
def test_the_staging_a_running_tool_writes_is_kept(tmp_path, monkeypatch, light):
    """run_backup tidies a PostgreSQL base backup's set while pg_basebackup writes its staging directory (issue 22):
    that staging has a leftover's name and no manifest yet, so it is named in ``keep`` and never removed, on the
    light path and on the catalog's; a killed run's staging beside it still is."""
    backups(tmp_path)
    running = '%s%s.dump.zst.partial' % (PREFIX, stamp(NOW))
    killed = '%s%s.dump.zst.partial' % (PREFIX, stamp(NOW - datetime.timedelta(hours=1)))
    (tmp_path / running).mkdir()
    (tmp_path / killed).mkdir()
    if not light:
        monkeypatch.setattr(leftovers, 'LIGHT_LEFTOVERS_MAX', -1)
    assert leftovers.remove_leftovers(str(tmp_path), [PREFIX], keep=[running]) == [str(tmp_path / killed)]
    assert (tmp_path / running).is_dir() and not (tmp_path / killed).exists()
    monkeypatch.setattr(leftovers, 'LIGHT_LEFTOVERS_MAX', 64)
    catalog_index.clear()
    # only the kept staging left: nothing to remove, and the light path decides it alone
    assert leftovers._none_left(str(tmp_path), [PREFIX], keep=[running]) is True
    assert leftovers.remove_leftovers(str(tmp_path), [PREFIX], keep=[running]) == []
    assert (tmp_path / running).is_dir()
