"""An artifact whose manifest is there but unreadable is not a leftover (retention red team, round 2). A manifest the
catalog refuses (truncated JSON after a disk error, a hand edit, a time without its zone) left its artifact among
the names no manifest vouches for: the next backup of the set (``remove_leftovers``, no minimum age) or backup_prune
(after ``leftover_min_age``) deleted the artifact, perhaps the newest backup there is, and the broken manifest
stayed. The artifact now stays with its manifest (backup_info lists the manifest under ``broken_manifests``); a
``.partial`` of the same name is still an interrupted write and goes.
"""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import remove_leftovers
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import NOW, put


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


def _truncated(path):
    path.write_text(path.read_text()[:40])


def _naive_time(path):
    data = json.loads(path.read_text())
    data['finished'] = data['consistent_at'] = '2026-12-03T11:00:00'
    path.write_text(json.dumps(data))


@pytest.mark.parametrize('breakage', [_truncated, _naive_time], ids=['truncated', 'naive_time'])
def test_the_artifact_of_a_broken_manifest_is_not_removed_as_a_leftover(tmp_path, breakage):
    put(tmp_path, 'mariadb', 'shop', 'full', NOW - datetime.timedelta(days=1))
    newest = put(tmp_path, 'mariadb', 'shop', 'full', NOW - datetime.timedelta(hours=1))
    breakage(tmp_path / (newest + '.manifest.json'))
    (tmp_path / (newest + '.partial')).write_bytes(b'p')
    assert remove_leftovers(str(tmp_path), 'mariadb-shop-full-') == [str(tmp_path / (newest + '.partial'))]
    catalog_index.clear()
    result = prune(str(tmp_path), retention.Policy(keep_last=1), now=NOW, leftover_min_age=0)
    assert result['leftovers_removed'] == [] and result['deleted'] == []
    assert (tmp_path / newest).exists()
