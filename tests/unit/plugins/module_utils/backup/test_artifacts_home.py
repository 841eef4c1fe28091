"""Artifact I/O and set locking live in backup/artifacts.py; engines/base.py keeps only the engine interface."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import artifacts
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines import base

MOVED = ('stream_to_artifact', 'stream_file_to_artifact', 'pipe_artifact_into', 'open_artifact', 'set_lock',
         'remove_leftovers', 'verify_checksums', 'check_decryptable', 'is_encrypted', 'is_key_error')


@pytest.mark.parametrize('name', MOVED)
def test_artifact_io_is_on_the_backup_side(name):
    assert callable(getattr(artifacts, name))
    assert not hasattr(base, name), 'engines/base.py still defines %s' % name


def test_set_lock_refuses_a_second_run_of_the_same_set(tmp_path):
    with artifacts.set_lock(str(tmp_path), 'sqlite-app-full-'):
        with pytest.raises(OpsReadyError, match='Another backup of sqlite-app-full- is running'):
            with artifacts.set_lock(str(tmp_path), 'sqlite-app-full-'):
                pass
        with artifacts.set_lock(str(tmp_path), 'sqlite-other-full-'):
            pass  # another set is not blocked


def test_remove_leftovers_keeps_other_sets(tmp_path):
    (tmp_path / 'sqlite-app-full-20261204T101010123456Z.db.gz.partial').write_bytes(b'x')
    (tmp_path / 'sqlite-app-2-full-20261204T101010123456Z.db.gz.partial').write_bytes(b'x')
    removed = artifacts.remove_leftovers(str(tmp_path), 'sqlite-app-full-')
    assert [p.rsplit('/', 1)[-1] for p in removed] == ['sqlite-app-full-20261204T101010123456Z.db.gz.partial']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['sqlite-app-2-full-20261204T101010123456Z.db.gz.partial']
