"""Check-mode retention on a sealed index's rows (``catalog_rows.RowView``) takes shortcuts in C where the rows allow
(issue 22, catalog at scale): a set's rows found by runs of equal (engine, database), ids and paths taken from the
stems when no row names its artifact or id apart, logs kept or refused by a comparison per row in C. Each shortcut
has a general path for the rows it does not fit; these tests put both kinds of rows in one sealed catalog and compare
every answer with the whole-catalog code (objects for every manifest).

Regression guards: they pass on the code before the shortcuts (they were written with them, to hold them to the old
answers)."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, catalog_jobs, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import (
    NOW, START, mixed_catalog, put, stamp, without_broken)

POLICIES = [retention.Policy(keep_last=2), retention.Policy(keep_daily=5, keep_weekly=2),
            retention.Policy(keep_days=3.5), retention.Policy(keep_last=1, keep_monthly=1)]
SETS = [(None, None), ('mariadb', 'shop'), ('mariadb', 'crm'), ('mariadb', 'apart'), ('postgresql', None),
        ('sqlite', 'notes')]


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


def _rewrite(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def _awkward(directory: Path) -> Path:
    """``mixed_catalog`` (sealed) plus a set whose rows are not one run in name order, an id apart from its artifact,
    two logs finished at the same moment, and logs of one set named between another set's manifests."""
    mixed_catalog(directory)
    without_broken(directory)
    position = 1
    for day in range(6):
        moment = START + datetime.timedelta(days=day, minutes=20)
        put(directory, 'mariadb', 'apart', 'full', moment, {'log_start': position, 'binlog_pos': 4})
        for hour in (8, 16):
            # named as another set's (between crm's and shop's manifests): this set is several runs in name order
            put(directory, 'mariadb', 'apart', 'log', moment + datetime.timedelta(hours=hour),
                {'start': position, 'end': position + 1},
                manifest_name='mariadb-dd-log-%s.manifest.json' % stamp(moment + datetime.timedelta(hours=hour)),
                artifact='mariadb-dd-log-%s' % stamp(moment + datetime.timedelta(hours=hour)))
            position += 1
    # two logs of one moment (ordered by id), and an id that is not its artifact's name
    tied = START + datetime.timedelta(days=2, hours=20)
    put(directory, 'mariadb', 'apart', 'log', tied, {'start': 100, 'end': 101}, artifact='mariadb-apart-log-tie-b')
    put(directory, 'mariadb', 'apart', 'log', tied, {'start': 101, 'end': 102}, artifact='mariadb-apart-log-tie-a')
    _rewrite(directory / 'mariadb-apart-log-tie-b.manifest.json', id='zz-apart-id')
    return directory


def _sealed(directory: Path, monkeypatch) -> str:
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    describe(str(directory), now=NOW)
    catalog_index.clear()
    base = Catalog(str(directory), materialize=False)
    assert base._scan.columns is not None and catalog_index._DIRS[os.path.abspath(str(directory))].seal is not None
    catalog_index.clear()
    return str(directory)


def test_check_mode_on_rows_answers_what_the_whole_catalog_answers(tmp_path, monkeypatch):
    directory = _sealed(_awkward(tmp_path), monkeypatch)
    results = {}
    for per_set in (False, True):
        monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
        out = results[per_set] = {}
        for engine, database in SETS:
            for number, policy in enumerate(POLICIES):
                catalog_index.clear()
                out[engine, database, number] = prune(directory, policy, engine=engine, database=database,
                                                      check_mode=True, now=NOW, leftover_min_age=None)
    for key, whole in results[False].items():
        assert json.dumps(results[True][key], default=str) == json.dumps(whole, default=str), key
    # the awkward set is planned, and loses logs (so the shortcuts ran on it)
    assert any('mariadb-dd-log-' in path for path in results[True]['mariadb', 'apart', 0]['deleted'])
    apart = results[True]['mariadb', 'apart', 0]
    assert 'zz-apart-id' in apart['deleted_ids'] or any(path.endswith('-tie-b') for path in apart['kept'])


def test_a_plan_that_drops_a_replayed_log_is_refused_on_rows(tmp_path, monkeypatch):
    """The per-set dependency check on rows (``retention.log_violations_view``) refuses a plan that deletes a log a
    kept full replays, as the whole-catalog code does, whether or not the set's ids are its stems."""
    directory = _sealed(_awkward(tmp_path), monkeypatch)
    real = retention.plan_view

    def broken(view, policy, now):   # a planning bug: every log doomed, the fulls kept
        keep, delete = real(view, policy, now)
        for ident in list(keep):
            if ident not in {m.id for m in view.entries}:
                delete[ident] = keep.pop(ident)
        return keep, delete
    monkeypatch.setattr(retention, 'plan_view', broken)
    monkeypatch.setattr(catalog_jobs, 'PER_SET', True)
    for database in ('shop', 'apart'):
        catalog_index.clear()
        with pytest.raises(OpsReadyError) as caught:
            prune(directory, retention.Policy(keep_last=2), engine='mariadb', database=database, check_mode=True,
                  now=NOW)
        assert 'a log a kept backup replays' in caught.value.message, database
