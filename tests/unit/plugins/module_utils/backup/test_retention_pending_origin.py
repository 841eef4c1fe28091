"""db_backup check mode reports the backups its real run deletes when two servers back up one database name into one
dest (checkmode red team, round 8). Retention plans each origin (server) apart; check mode planned the run's pending
new full into every origin's backups, so it listed another server's backup the real run keeps (keep_last=2: the
other server's fulls hold their own slots, whatever this server writes)."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, jobs, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import NOW, put

DAY = datetime.timedelta(days=1)


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    monkeypatch.setattr(jobs, 'prune', lambda *a, **k: prune(*a, now=NOW, **k))
    yield
    catalog_index.clear()


class Server:
    """What ``jobs._retain`` asks of the engine: its name and the origin its manifests record."""

    name = 'mariadb'

    def __init__(self, origin: str) -> None:
        self._origin = origin

    def origin(self) -> str:
        return self._origin


def backup(directory, origin, moment, verified=True):
    name = put(directory, 'mariadb', 'app', 'full', moment, {'log_start': 1, 'binlog_pos': 4}, verified=verified,
               artifact='mariadb-app-full-%s-%s' % (origin.replace(':', '_'), moment.strftime('%Y%m%dT%H%M%S')))
    manifest = directory / (name + '.manifest.json')
    data = json.loads(manifest.read_text())
    data['origin'] = origin
    manifest.write_text(json.dumps(data))


@pytest.mark.parametrize('rules', [{'keep_last': 2}, {'keep_last': 1}, {'keep_daily': 2}, {'keep_last': 3}])
@pytest.mark.parametrize('first_of_this_server', [False, True])
def test_check_mode_deletes_only_what_the_run_deletes_in_a_shared_dest(tmp_path, rules, first_of_this_server):
    for days in (6, 5, 4):
        backup(tmp_path, 'db-b:3306', NOW - days * DAY - datetime.timedelta(hours=3))
        if not first_of_this_server:
            backup(tmp_path, 'db-a:3306', NOW - days * DAY)
    this = Server('db-a:3306')
    opts = BackupOptions(kind='full', dest=str(tmp_path), database='app')
    checked = jobs._retain(this, opts, ['app'], retention.Policy(**rules), pending=True, verified=True)['deleted']
    catalog_index.clear()
    backup(tmp_path, 'db-a:3306', NOW - datetime.timedelta(seconds=1))   # the run's new full, verified
    real = jobs._retain(this, opts, ['app'], retention.Policy(**rules))['deleted']
    assert sorted(checked) == sorted(real)
