"""backup_prune in check mode reports exactly what a real run then deletes (issue 22, catalog at scale).

Check mode answers from the index's columns where it is sealed (``catalog_rows.RowView``, ``retention.plan_view``)
and set by set; a real run plans again from the parsed manifests of the sets it deletes from. The two must agree
on every path, id, reason, kept artifact and leftover, whatever the index's state (none, written but not sealed,
sealed), the filter and the policy, on a catalog with chains (fulls, diffs, logs with a gap), broken manifests,
failed and unverified fulls, members, an artifact named apart from its manifest, leftovers, and locked copies:
read-only artifacts and manifests (mode 0400, as a copy kept from being rewritten) and a set whose lock file a
running backup holds. After the real run, everything it said it deleted is gone and everything it kept is there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import set_lock
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import NOW, mixed_catalog, without_broken

POLICIES = [retention.Policy(keep_last=2), retention.Policy(keep_daily=5, keep_weekly=2),
            retention.Policy(keep_days=3.5)]
FILTERS = [(None, None), ('mariadb', 'shop'), ('postgresql', None)]
COMPARED = ('changed', 'deleted', 'deleted_ids', 'kept', 'reasons', 'leftovers_removed')


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


@pytest.fixture(scope='module')
def template(tmp_path_factory):
    directory = mixed_catalog(tmp_path_factory.mktemp('template'))
    # locked copies: every third artifact and manifest read-only
    for number, path in enumerate(sorted(directory.iterdir())):
        if path.is_file() and number % 3 == 0:
            path.chmod(0o400)
    return directory


def _catalog(template: Path, target: Path, index: str, monkeypatch) -> str:
    shutil.copytree(template, target, symlinks=True)
    if index == 'sealed':
        without_broken(target)
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1000000' if index == 'none' else '1')
    with set_lock(str(target), 'mariadb-shop'):   # the lock file exists before the index is sealed (as after a backup)
        pass
    if index != 'none':
        describe(str(target), now=NOW)   # writes the index (sealed when the listing is exactly its manifests)
    catalog_index.clear()
    # with an index, rows are answered from its columns; sealed only when the listing is exactly its rows (no broken
    # manifest): otherwise every manifest is stat'ed (catalog_index._incremental)
    assert (Catalog(str(target), materialize=False)._scan.columns is not None) == (index != 'none')
    assert (catalog_index._DIRS[os.path.abspath(target)].seal is not None) == (index == 'sealed')
    catalog_index.clear()
    return str(target)


@pytest.mark.parametrize('index', ['none', 'index', 'sealed'])
def test_check_mode_reports_exactly_what_the_real_run_deletes(template, tmp_path, monkeypatch, index):
    cases = 0
    for number, policy in enumerate(POLICIES):
        for engine, database in FILTERS:
            directory = _catalog(template, tmp_path / ('%d-%s-%s' % (number, engine, database)), index, monkeypatch)
            chains = _chains(directory)
            assert (Catalog(directory, materialize=False)._scan.columns is not None) == (index != 'none')
            catalog_index.clear()
            # a backup of mariadb/shop is running: its set's lock is held through both runs
            with set_lock(directory, 'mariadb-shop'):
                checked = prune(directory, policy, engine=engine, database=database, check_mode=True, now=NOW,
                                leftover_min_age=0)
                catalog_index.clear()
                before = set(os.listdir(directory))
                real = prune(directory, policy, engine=engine, database=database, now=NOW, leftover_min_age=0)
            catalog_index.clear()
            for key in COMPARED:
                assert checked[key] == real[key], (index, number, engine, database, key)
            assert real['deleted'] or engine == 'postgresql', (index, number, engine, database)
            gone = before - set(os.listdir(directory))
            assert len([name for name in gone if name.endswith('.manifest.json')]) == len(real['deleted'])
            for path in real['deleted'] + real['leftovers_removed']:
                assert not os.path.lexists(path), path
            for path in real['kept']:
                assert os.path.exists(path), path
            assert '.mariadb-shop.lock' in os.listdir(directory)   # never a leftover, never deleted
            # the newest chain of every set restores as before: nothing it needs went
            assert _chains(directory) == chains
            cases += 1
    assert cases == len(POLICIES) * len(FILTERS)


def _chains(directory: str):
    catalog_index.clear()
    catalog = Catalog(directory)
    chains = {}
    for key in sorted({(m.engine, m.database or '') for m in catalog.entries}):
        try:
            chains[key] = [m.id for m in catalog.view(key[0], key[1] or None).chain_for(None)]
        except catalog_index.CatalogError as exc:
            chains[key] = exc.message
    catalog_index.clear()
    return chains
