"""The Redis drill's clean-up is checked, never assumed: the scratch directory (which holds the artifact's RDB
decrypted and decompressed) is 0700 with the RDB 0600, and a removal that fails for real (an immutable file, an
append-only parent: root cannot remove either) is reported with the path and the reason, ``cleaned_up: false``,
and fails the drill at its cleanup step, instead of a "cleaned up" over a decrypted RDB left on disk.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (  # noqa: E402
    manifest_path_for, read_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import restore  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402


def _chattr(flag: str, path) -> bool:
    return shutil.which('chattr') is not None and subprocess.run(
        ['chattr', flag, str(path)], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope='module')
def sealed(tmp_path_factory):
    """An age-encrypted Redis backup: its artifact, the identity that opens it."""
    tmp_path = tmp_path_factory.mktemp('redis-cleanup')
    probe = tmp_path / 'probe'
    probe.write_text('x')
    if not _chattr('+i', probe):
        pytest.skip('chattr +i does not work on %s (filesystem without inode flags): the failed removal cannot be '
                    'made real here' % tmp_path)
    _chattr('-i', probe)
    secret = encryption.generate_identity()
    recipient = encryption.parse_identities(secret)[0].recipient
    with RedisServer() as server:
        server.fill(200)
        backup = {'host': server.host, 'port': server.port, 'password': server.password, 'database': 'cache',
                  'dest': str(tmp_path / 'catalog'), 'encrypt': True, 'recipients': [recipient]}
        result = run_playbook(write_playbook(tmp_path, [
            {'name': 'backup', 'register': 'backup', 'opsready.operations.redis_backup': backup}]))
    assert result.rc == 0, result.stdout[-3000:]
    artifact = os.path.join(str(tmp_path / 'catalog'), result.result('backup')['manifest']['artifact'])
    identity_file = tmp_path / 'key.txt'
    identity_file.write_text(secret + '\n')
    return {'artifact': artifact, 'secret': secret, 'identity_file': str(identity_file)}


def test_scratch_rdb_is_private_and_a_failed_removal_is_reported(sealed, tmp_path):
    manifest = read_manifest(manifest_path_for(sealed['artifact']))
    identities = encryption.parse_identities(sealed['secret'])
    outcome: dict = {}
    pinned = None
    try:
        with restore.scratch_instance(manifest, identities, workdir=str(tmp_path), cleanup=outcome) as scratch:
            rdb = os.path.join(scratch.directory, 'dump.rdb')
            assert stat.S_IMODE(os.stat(scratch.directory).st_mode) == 0o700
            assert stat.S_IMODE(os.stat(rdb).st_mode) == 0o600
            with open(rdb, 'rb') as handle:
                assert handle.read(5) == b'REDIS'     # decrypted: what must not be left behind unnoticed
            assert scratch.keys() == 200
            pinned = rdb
            assert _chattr('+i', rdb)
        assert outcome['cleaned_up'] is False and outcome['path'] == os.path.dirname(pinned)
        assert 'dump.rdb' in outcome['left'] and 'Operation not permitted' in outcome['reason']
        assert 'decrypted' in outcome['error'] and outcome['path'] in outcome['error']
        # what could go went: only the pinned RDB is left
        assert outcome['left'] == ['dump.rdb'] and os.listdir(outcome['path']) == ['dump.rdb']
    finally:
        if pinned:
            _chattr('-i', pinned)
            shutil.rmtree(os.path.dirname(pinned), ignore_errors=True)

    # Without a dict to report into, a directory left behind raises instead of passing unnoticed.
    pinned = None
    with pytest.raises(OpsReadyError, match='was not removed'):
        try:
            with restore.scratch_instance(manifest, identities, workdir=str(tmp_path)) as scratch:
                pinned = os.path.join(scratch.directory, 'redis.conf')
                assert _chattr('+i', pinned)
        finally:
            if pinned:
                _chattr('-i', pinned)
                shutil.rmtree(os.path.dirname(pinned), ignore_errors=True)
    # a clean run reports cleaned up, and leaves nothing
    outcome = {}
    with restore.scratch_instance(manifest, identities, workdir=str(tmp_path), cleanup=outcome):
        pass
    assert outcome['cleaned_up'] is True and not os.path.exists(outcome['path'])


def test_drill_fails_its_cleanup_step_when_the_scratch_directory_stays(sealed, tmp_path):
    """The scratch_dir is append-only: the scratch directory can be made in it, never removed from it."""
    parent = tmp_path / 'scratch'
    parent.mkdir()
    assert _chattr('+a', parent)
    try:
        result = run_playbook(write_playbook(tmp_path, [
            {'name': 'drill', 'register': 'drill', 'ignore_errors': True,
             'opsready.operations.redis_restore': {'path': sealed['artifact'], 'identity_file': sealed['identity_file'],
                                                   'scratch_dir': str(parent)}}]))
        left = os.listdir(parent)
    finally:
        _chattr('-a', parent)
    drill = result.result('drill')
    assert drill['_event'] == 'runner_on_failed', drill
    d = drill['drill']
    assert d['cleaned_up'] is False and not d['passed']
    cleanup = d['steps'][-1]
    assert cleanup['name'] == 'cleanup' and cleanup['ok'] is False
    assert len(left) == 1 and str(parent / left[0]) in cleanup['error'], (left, cleanup)
    assert drill['cleanup']['cleaned_up'] is False and drill['cleanup']['path'] == str(parent / left[0])
    assert 'step cleanup failed' in drill['msg']
    # the steps before it passed: the clean-up is what failed the drill
    assert all(s['ok'] for s in d['steps'][:-1]) and d['rto_verdict'] == 'pass'
    # the directory itself stayed (append-only parent); what was in it, the decrypted RDB first, is gone
    assert os.listdir(parent / left[0]) == []
