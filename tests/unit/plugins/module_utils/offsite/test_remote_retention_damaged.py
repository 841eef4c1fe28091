"""Retention at a destination (backup_copy's keep_*) never counts a full whose data objects are not all there at
their manifest's size as a kept good copy (retention red team, round 2): a remote manifest whose artifact was
deleted or never finished uploading (a partial upload), or is shorter than recorded. Before, ``keep_last=1`` kept
such a newest full as "the newest verified full" and deleted the last complete copy.

The destination's artifacts are looked at in its listing, never in the work directory its manifests are read into
(where no artifact is): an intact destination loses nothing more than before.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Dict, List

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import retention
from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import Store

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)


class MemoryStore(Store):
    """The listing, reads and deletions of a destination, in memory."""

    def __init__(self) -> None:   # pylint: disable=super-init-not-called
        self.objects: Dict[str, bytes] = {}
        self.url = 'memory://'

    def list_files(self) -> Dict[str, int]:
        return {name: len(body) for name, body in self.objects.items()}

    def read_bytes(self, name: str) -> bytes:
        return self.objects[name]

    def delete(self, names: List[str]) -> None:
        for name in names:
            self.objects.pop(name, None)

    def locks(self, names: List[str]):
        return {}


def _full(store: MemoryStore, days: int) -> str:
    moment = NOW - datetime.timedelta(days=days)
    when = moment.strftime('%Y-%m-%dT%H:%M:%SZ')
    name = 'mariadb-shop-full-%s' % moment.strftime('%Y%m%dT%H%M%SZ')
    body = name.encode() * 10
    store.objects[name] = body
    store.objects[name + '.manifest.json'] = json.dumps(
        {'id': name, 'artifact': name, 'format': 1, 'engine': 'mariadb', 'database': 'shop', 'kind': 'full',
         'started': when, 'finished': when, 'consistent_at': when, 'size': len(body),
         'sha256': hashlib.sha256(body).hexdigest(), 'compression': 'none', 'position': {}, 'parent': None,
         'verification': {'ok': True, 'checks': {}, 'verified_at': when}}).encode()
    return name


def _prune(store: MemoryStore, tmp_path, check_mode: bool) -> List[str]:
    workdir = tmp_path / ('check' if check_mode else 'real')
    workdir.mkdir()
    remote, dummy = copy.remote_catalog(store, str(workdir))
    return copy.prune(store, remote, retention.Policy(keep_last=1), check_mode)


def _missing(store: MemoryStore, name: str) -> None:
    del store.objects[name]


def _short(store: MemoryStore, name: str) -> None:
    store.objects[name] = store.objects[name][:5]


def _partial(store: MemoryStore, name: str) -> None:
    store.objects[name + '.partial'] = store.objects.pop(name)


@pytest.mark.parametrize('damage', [_missing, _short, _partial], ids=lambda f: f.__name__.strip('_'))
def test_a_remote_full_without_its_whole_artifact_is_not_the_kept_copy(tmp_path, damage):
    store = MemoryStore()
    older, good, newest = _full(store, 3), _full(store, 2), _full(store, 1)
    damage(store, newest)
    checked = _prune(store, tmp_path, True)
    deleted = _prune(store, tmp_path, False)
    assert checked == deleted
    assert sorted(deleted) == sorted([older, newest])
    assert good in store.objects and good + '.manifest.json' in store.objects


def test_an_intact_destination_keeps_its_newest_full(tmp_path):
    """Regression guard (passed before the change; failed while retention stat'ed artifacts in the work directory
    the destination's manifests are read into): a destination's artifacts are looked at in its listing."""
    store = MemoryStore()
    names = [_full(store, days) for days in (3, 2, 1)]
    assert sorted(_prune(store, tmp_path, False)) == sorted(names[:2])
    assert names[2] in store.objects


def test_the_artifact_of_a_broken_remote_manifest_is_not_a_leftover(tmp_path):
    """A destination manifest the catalog refuses (damaged JSON) left its artifact among the leftovers, deleted by
    the next copy; it stays with its manifest (an upload's ``.partial`` is still a leftover)."""
    store = MemoryStore()
    _full(store, 2)
    newest = _full(store, 1)
    store.objects[newest + '.manifest.json'] = store.objects[newest + '.manifest.json'][:30]
    store.objects['mariadb-shop-full-20261101T000000Z.partial'] = b'p'
    remote, files = copy.remote_catalog(store, str(tmp_path))
    assert copy._remote_leftovers(remote, files) == ['mariadb-shop-full-20261101T000000Z.partial']
