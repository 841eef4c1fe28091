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


def test_a_killed_run_s_staging_is_swept_under_the_lock_and_look_alikes_stay(tmp_path):
    """A point-in-time recovery killed on the way (SIGKILL: no clean-up runs) leaves its staging directories beside
    datadir - the base backup extracted, the WAL decrypted, both plaintext. The next run into that datadir (here its
    state=absent, the drill's clean-up), holding the datadir's lock, removes those of the exact shape and says so;
    one a scratch server still runs on, a link, another datadir's and other names stay."""
    datadir = tmp_path / 'app-pitr'
    staging = tmp_path / 'app-pitr.opsready-restore-1234abcd'
    waldir = tmp_path / 'app-pitr.opsready-wal-1234abcd'
    for path, name in ((staging, 'PG_VERSION'), (waldir, '000000010000000000000003')):
        path.mkdir(mode=0o700)
        (path / name).write_bytes(b'plaintext of the cluster')
    running = tmp_path / 'app-pitr.opsready-restore-5678abcd'
    running.mkdir(mode=0o700)
    server = subprocess.Popen(['sleep', '300'])
    (running / 'postmaster.pid').write_text('%d\n%s\n' % (server.pid, running))
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    (elsewhere / 'keep').write_text('kept')
    link = tmp_path / 'app-pitr.opsready-old-deadbeef'
    link.symlink_to(elsewhere)
    others = [tmp_path / 'other.opsready-wal-1234abcd', tmp_path / 'app-pitr.opsready-wal-1234ABCD',
              tmp_path / 'app-pitr.opsready-wal-1234abcd.bak', tmp_path / 'app-pitr.opsready-copy-1234abcd']
    for path in others:
        path.mkdir()
    request = RestoreRequest(engine='postgresql', src=str(tmp_path), datadir=str(datadir), state='absent')
    try:
        # check mode names nothing removed and removes nothing
        assert pitr.drop(request, True)['removed_scratch'] == [] and staging.exists()
        result = pitr.drop(request, False)
        assert result['removed_scratch'] == [str(staging), str(waldir)] and result['changed'] is True
        assert not staging.exists() and not waldir.exists()
        assert [w for w in result['warnings'] if str(running) in w and 'pid %d' % server.pid in w], result
        assert running.exists() and link.is_symlink() and (elsewhere / 'keep').read_text() == 'kept'
        assert all(path.exists() for path in others)
    finally:
        server.kill()
        server.wait(10)
    # once its server is gone, the next run removes it too
    assert pitr.drop(request, False)['removed_scratch'] == [str(running)]
