"""backup_verify's deep check of an encrypted artifact decrypts it into a scratch directory (the SQLite file, the
RDB, the base backup, the binary log: plaintext). It is private (``opsready-scratch-<kind>-*``, 0700, an owner
file whose lock the run holds), removed when the check ends, and a removal that fails is a warning naming the path
and ``scratch_left``. What a killed run left is removed by the next run (``removed_scratch``) when its lock proves
that run gone; a directory still held by a live process stays.

Real ansible-playbook runs, TMPDIR pointed at the test's own directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from tests.harness.playbook import REPO, run_playbook, write_playbook

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402

HOLDER = '''
import os, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import Scratch
made = Scratch('sqlite-verify', sys.argv[2], 'backup_verify')
fd = made.create('restored.sqlite')
os.write(fd, b'plaintext rows')
print(made.path, flush=True)
time.sleep(600)
'''


def _chattr(flag: str, path) -> bool:
    return shutil.which('chattr') is not None and subprocess.run(
        ['chattr', flag, str(path)], capture_output=True, check=False).returncode == 0


@pytest.fixture
def sealed(tmp_path):
    db = tmp_path / 'app.sqlite'
    with sqlite3.connect(str(db)) as conn:
        conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
        # big enough (about 20 MB) that the deep check takes a moment: the second test seals its directory meanwhile
        conn.execute("WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 150000) "
                     "INSERT INTO t SELECT i, hex(randomblob(64)) FROM g")
    secret = encryption.generate_identity()
    recipient = encryption.parse_identities(secret)[0].recipient
    result = run_playbook(write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(tmp_path / 'b'), 'encrypt': True,
        'recipients': [recipient]}}]))
    assert result.rc == 0, result.stdout[-3000:]
    root = tmp_path / 'tmp'
    root.mkdir()
    return {'dest': str(tmp_path / 'b'), 'secret': secret, 'root': root}


def verify(tmp_path, sealed):
    return run_playbook(write_playbook(tmp_path, [{'name': 'verify', 'opsready.operations.backup_verify': {
        'path': sealed['dest'], 'deep': True, 'identity': sealed['secret']}}]),
        envvars={'TMPDIR': str(sealed['root'])})


def holder(root):
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, str(REPO / 'build'), str(root)], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    return proc, proc.stdout.readline().strip()


def test_a_killed_verify_s_copy_is_removed_by_the_next_run_and_a_live_one_stays(sealed, tmp_path):
    root = sealed['root']
    killed, killed_path = holder(root)
    live, live_path = holder(root)
    try:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(10)
        assert os.path.exists(os.path.join(killed_path, 'restored.sqlite'))
        result = verify(tmp_path, sealed)
        assert result.rc == 0, result.stdout[-3000:]
        out = result.result('verify')
        assert out['results'][0]['checks']['deep'] is True
        assert out['removed_scratch'] == [killed_path] and out['scratch_left'] == []
        assert not os.path.exists(killed_path)
        assert os.path.exists(os.path.join(live_path, 'restored.sqlite'))
        # the run's own copy is gone too
        assert sorted(n for n in os.listdir(root) if n.startswith('opsready-')) == [os.path.basename(live_path)]
    finally:
        for proc in (killed, live):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            proc.stdout.close()


def test_a_copy_that_cannot_be_removed_is_a_warning_naming_it(sealed, tmp_path):
    root = sealed['root']
    probe = root / 'probe'
    probe.mkdir()
    if not _chattr('+a', probe):
        pytest.skip('chattr +a does not work on %s: a failed removal cannot be made real here' % root)
    _chattr('-a', probe)
    probe.rmdir()
    sealed_dirs: list = []
    stop = threading.Event()

    def seal() -> None:
        # The run's scratch directory made append-only while the check runs: nothing can be unlinked from it.
        while not stop.is_set():
            for name in os.listdir(root):
                if name.startswith('opsready-scratch-sqlite-verify-') and _chattr('+a', root / name):
                    sealed_dirs.append(str(root / name))
                    return
            time.sleep(0.001)

    watcher = threading.Thread(target=seal, daemon=True)
    watcher.start()
    try:
        result = verify(tmp_path, sealed)
        stop.set()
        watcher.join(10)
        assert result.rc == 0, result.stdout[-3000:]
        assert sealed_dirs, 'the check ended before its directory could be sealed'
        out = result.result('verify')
        assert out['scratch_left'] == sealed_dirs
        assert sealed_dirs[0] in ' '.join(result.stdout.split()) and 'was not removed' in result.stdout
    finally:
        stop.set()
        watcher.join(10)
        for path in sealed_dirs:
            _chattr('-a', path)
    again = verify(tmp_path, sealed)     # once it can go, the next run removes it (its run is over)
    assert again.rc == 0 and again.result('verify')['removed_scratch'] == sealed_dirs
    assert not [n for n in os.listdir(root) if n.startswith('opsready-')]
