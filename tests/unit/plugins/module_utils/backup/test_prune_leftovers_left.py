"""backup_prune: a leftover it cannot remove is reported as left (with a warning), never as removed.

Removing a leftover directory ignored every error (``rmtree(ignore_errors=True)``), so one holding an immutable file
stayed on disk while the result listed it under ``leftovers_removed``; a leftover file that could not be unlinked
failed the whole run after its deletions were done. Both the per-set and the whole-catalog paths are run.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, catalog_jobs, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import NOW, mixed_catalog

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('chattr'), reason='needs root and chattr (+i)')


@pytest.mark.parametrize('per_set', [True, False])
def test_a_leftover_that_stays_is_left_not_removed(tmp_path, monkeypatch, per_set):
    directory = tmp_path / 'backups'
    directory.mkdir()
    mixed_catalog(directory)
    monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
    stamp = '20200101T000000000000Z'
    stuck_dir = directory / ('postgresql-app-full-%s.dump.zst.partial' % stamp)
    stuck_dir.mkdir()
    (stuck_dir / 'piece').write_bytes(b'half')
    stuck_file = directory / ('mariadb-shop-full-%s.sql.zst.partial' % stamp)
    stuck_file.write_bytes(b'half')
    gone = directory / ('sqlite-notes-full-%s.db.zst.partial' % stamp)
    gone.write_bytes(b'half')
    subprocess.run(['chattr', '+i', str(stuck_dir / 'piece'), str(stuck_file)], check=True)
    catalog_index.clear()
    try:
        planned = prune(str(directory), retention.Policy(keep_last=2), now=NOW, leftover_min_age=0, check_mode=True)
        assert {str(stuck_dir), str(stuck_file), str(gone)} <= set(planned['leftovers_removed']), planned
        catalog_index.clear()
        result = prune(str(directory), retention.Policy(keep_last=2), now=NOW, leftover_min_age=0)
        assert str(gone) in result['leftovers_removed'] and not gone.exists()
        assert str(stuck_dir) not in result['leftovers_removed'] and str(stuck_file) not in result['leftovers_removed']
        assert result['leftovers_left'] == sorted([str(stuck_dir), str(stuck_file)])
        # (mixed_catalog holds an unreadable manifest on purpose: its own warning is not counted here)
        warnings = [w for w in result['warnings'] if 'cannot be read' not in w]
        assert len(warnings) == 2 and all('could not be removed' in w for w in warnings)
        assert stuck_dir.exists() and stuck_file.exists()
    finally:
        subprocess.run(['chattr', '-i', str(stuck_dir / 'piece'), str(stuck_file)], check=False)
        catalog_index.clear()
