"""file_backup in check mode reports the archives its real run deletes (retention red team, round 2). The real run
writes the new archive first (unverified, dated now), then prunes: the new archive takes the newest-usable place,
one ``keep_count`` slot and today's bucket. Check mode pruned the catalog as it stood, so it reported one archive
fewer than the real run then deleted (``keep_count=2`` over three archives: none, then one).
"""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, catalog_prune, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune
from ansible_collections.opsready.operations.plugins.modules import file_backup

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import NOW, put

DAY = datetime.timedelta(days=1)


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    # (file_backup imports catalog_prune's prune where it prunes: the patched one)
    monkeypatch.setattr(catalog_prune, 'prune', lambda *a, **k: prune(*a, now=NOW, **k))
    yield
    catalog_index.clear()


@pytest.mark.parametrize('keep_count,keep_days', [(2, None), (1, None), (3, None), (None, 2.5), (2, 1.5), (1, 10)])
@pytest.mark.parametrize('newest_verified', [True, None])
def test_check_mode_deletes_what_the_run_after_the_new_archive_deletes(tmp_path, keep_count, keep_days,
                                                                       newest_verified):
    for days in (5, 4, 3, 2):
        put(tmp_path, 'files', 'etc', 'files', NOW - days * DAY, verified=newest_verified if days == 2 else True)
    put(tmp_path, 'files', 'other', 'files', NOW - 9 * DAY)   # another set: never touched
    checked = file_backup.prune(str(tmp_path), 'etc', keep_days, keep_count, True)
    catalog_index.clear()
    put(tmp_path, 'files', 'etc', 'files', NOW - datetime.timedelta(seconds=1), verified=None)   # the run's archive
    real = file_backup.prune(str(tmp_path), 'etc', keep_days, keep_count, False)
    assert checked == real


def test_pending_full_is_not_an_option():
    """The pending full is set by a module's check mode, never by a user: the keep_* options do not carry it."""
    assert 'pending_full' not in retention.argument_spec()
    assert 'pending_full' not in retention.retention_options()
