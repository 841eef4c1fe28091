"""The Redis drill's scratch directory holds the artifact's RDB decrypted and decompressed. It is a common/scratch.py
directory (``opsready-scratch-redis-*``, 0700, an owner file whose lock the run holds): a drill killed with
SIGKILL (no ``finally`` runs) leaves it behind, and the next drill into the same scratch_dir removes it
(``removed_scratch``) once the lock proves the killed run gone; a directory a live run holds stays. The scratch
redis-server dies with the module that started it (it must not keep the data in memory, listening, forever).

Real ansible-playbook runs against a real redis-server; the kill is a real SIGKILL of the module process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402
from tests.faults.helpers import comm_argv, parent_of  # noqa: E402
from tests.harness.playbook import REPO, run_playbook, write_playbook  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402

HOLDER = '''
import os, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import Scratch
made = Scratch('redis', sys.argv[2], 'redis_restore')
fd = made.create('dump.rdb')
os.write(fd, b'REDIS0011 plaintext')
print(made.path, flush=True)
time.sleep(600)
'''


@pytest.fixture(scope='module')
def sealed(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('redis-swept')
    secret = encryption.generate_identity()
    recipient = encryption.parse_identities(secret)[0].recipient
    with RedisServer() as server:
        server.fill(300)
        backup = {'host': server.host, 'port': server.port, 'password': server.password, 'database': 'cache',
                  'dest': str(tmp_path / 'catalog'), 'encrypt': True, 'recipients': [recipient]}
        result = run_playbook(write_playbook(tmp_path, [
            {'name': 'backup', 'register': 'backup', 'opsready.operations.redis_backup': backup}]))
    assert result.rc == 0, result.stdout[-3000:]
    artifact = os.path.join(str(tmp_path / 'catalog'), result.result('backup')['manifest']['artifact'])
    identity_file = tmp_path / 'key.txt'
    identity_file.write_text(secret + '\n')
    return {'artifact': artifact, 'identity_file': str(identity_file)}


def drill(tmp_path, sealed, root, expect_keys=()):
    return run_playbook(write_playbook(tmp_path, [
        {'name': 'drill', 'register': 'drill', 'ignore_errors': True,
         'opsready.operations.redis_restore': {'path': sealed['artifact'], 'identity_file': sealed['identity_file'],
                                               'scratch_dir': str(root), 'expect_keys': list(expect_keys)}}]))


def scratch_servers(root) -> list:
    """pids of live redis-server processes working in a directory under ``root`` (redis-server rewrites its argv
    to ``host:port`` once it runs: its working directory is what tells it)."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            cwd = os.readlink('/proc/%s/cwd' % pid)
            with open('/proc/%s/stat' % pid) as handle:
                state = handle.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        argv = comm_argv(int(pid))
        if argv and b'redis-server' in argv[0] and cwd.startswith(str(root) + '/') and state != 'Z':
            found.append(int(pid))
    return found


def holder(root):
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, str(REPO / 'build'), str(root)], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    return proc, proc.stdout.readline().strip()


def test_a_killed_drill_s_rdb_is_removed_by_the_next_drill_and_its_server_dies_with_it(sealed, tmp_path):
    root = tmp_path / 'scratch'
    root.mkdir()
    outcome: dict = {}
    # 300 expected keys: one redis-cli each, seconds of a running scratch server to kill the module in
    runner = threading.Thread(target=lambda: outcome.setdefault(
        'r', drill(tmp_path, sealed, root, ['k:%d' % i for i in range(300)])))
    runner.start()
    killed = None
    orphans: list = []
    try:
        deadline = time.monotonic() + 120
        while runner.is_alive() and killed is None and time.monotonic() < deadline:
            for pid in scratch_servers(root):
                module = parent_of(pid)
                os.kill(module, signal.SIGKILL)     # the module: no finally, no clean-up
                killed = (module, pid)
                break
            time.sleep(0.005)
        runner.join(120)
        assert killed, 'never saw the scratch redis-server running'
        assert outcome['r'].result('drill')['_event'] == 'runner_on_failed'
        deadline = time.monotonic() + 10
        while scratch_servers(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        orphans = scratch_servers(root)
        assert not orphans, 'the scratch redis-server outlived the killed module (the RDB stays loaded and listening)'
        left = [n for n in os.listdir(root) if n.startswith('opsready-')]
        assert len(left) == 1 and left[0].startswith('opsready-scratch-redis-'), left
        assert os.path.exists(root / left[0] / 'dump.rdb')     # plaintext a killed run left
        live, live_path = holder(root)
        try:
            again = drill(tmp_path, sealed, root)
            assert again.rc == 0, again.stdout[-3000:]
            out = again.result('drill')
            assert out['removed_scratch'] == [str(root / left[0])], out
            assert out['scratch_left'] == []
            assert str(root / left[0]) in again.stdout     # told on the console too
            # the killed run's copy and this run's are gone; the live one stays
            assert sorted(n for n in os.listdir(root) if n.startswith('opsready-')) == [os.path.basename(live_path)]
            assert os.path.exists(os.path.join(live_path, 'dump.rdb'))
        finally:
            os.killpg(live.pid, signal.SIGKILL)
            live.wait(10)
            live.stdout.close()
    finally:
        runner.join(120)
        for pid in orphans or scratch_servers(root):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize('name', ['quote"d', 'back\\slash', 'line\nbreak', 'spa ce\ttab', 'nïcht-ascii'],
                         ids=['quote', 'backslash', 'newline', 'space', 'non-ascii'])
def test_a_scratch_dir_of_any_legal_name_loads_the_snapshot_there(sealed, tmp_path, name):
    """scratch_dir is written into the scratch server's redis.conf (``dir``, ``logfile``): a '"', a backslash or a
    line break in it ended the quoted value there (the server refused the file, or read the rest as directives of a
    redis-server running as root)."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
        manifest_path_for, read_manifest)
    from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import restore
    root = tmp_path / name
    root.mkdir()
    manifest = read_manifest(manifest_path_for(sealed['artifact']))
    identities = encryption.parse_identities(open(sealed['identity_file']).read())
    outcome: dict = {}
    with restore.scratch_instance(manifest, identities, workdir=str(root), cleanup=outcome) as scratch:
        assert os.path.dirname(scratch.directory) == str(root)
        assert scratch.keys() == 300
        assert os.readlink('/proc/%d/cwd' % scratch.proc.pid) == scratch.directory
        assert os.path.exists(os.path.join(scratch.directory, 'redis.log'))
    assert outcome['cleaned_up'] is True and os.listdir(root) == []
