"""db_restore state=absent of a PITR scratch data directory (the DR drill's clean-up) checks the removal: a data
directory that cannot be removed (a file in it made immutable: root cannot remove it either) fails naming the
path and the reason, instead of ``removed: true`` over a copy of the cluster left on disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import pitr  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402


def _chattr(flag: str, path) -> bool:
    return shutil.which('chattr') is not None and subprocess.run(
        ['chattr', flag, str(path)], capture_output=True, check=False).returncode == 0


def test_a_scratch_datadir_left_behind_fails_the_drop(tmp_path):
    datadir = tmp_path / 'app-pitr'
    (datadir / 'base' / '1').mkdir(parents=True)
    pinned = datadir / 'base' / '1' / '1259'
    pinned.write_bytes(b'rows of production data')
    (datadir / 'PG_VERSION').write_text('16\n')
    if not _chattr('+i', pinned):
        pytest.skip('chattr +i does not work on %s (filesystem without inode flags)' % tmp_path)
    request = RestoreRequest(engine='postgresql', src=str(tmp_path), datadir=str(datadir), state='absent')
    try:
        with pytest.raises(OpsReadyError, match='was not removed') as info:
            pitr.drop(request, False)
        assert str(datadir) in info.value.message and 'base/1/1259' in info.value.message
        assert 'Operation not permitted' in info.value.message
        # what could go went
        assert sorted(os.listdir(datadir)) == ['base']
    finally:
        _chattr('-i', pinned)
    assert pitr.drop(request, False)['target']['removed'] is True and not datadir.exists()
