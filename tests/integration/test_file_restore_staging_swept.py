"""file_restore extracts into a staging directory in dest (``.opsready-restore-*``, root's, 0700) and moves the files
into place once the whole archive was read. The staging holds the archive's files in plaintext (an encrypted
archive decrypted). A restore killed with SIGKILL (no ``finally`` runs) leaves it; the next file_restore into the
same dest removes it (``removed_scratch``) when it is provably the killed run's: the name, a directory of this uid
(0700, not a link), and the run's lock on it free. One a live restore holds (its lock), one of another account and
a look-alike file stay. A staging directory that cannot be removed is ``scratch_left`` and a warning naming it.

Real ansible-playbook runs; the kill is a real SIGKILL of the module process.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.faults.helpers import module_pids
from tests.harness.playbook import run_playbook, write_playbook

HOLDER = '''
import fcntl, os, sys, time
os.mkdir(sys.argv[1], 0o700)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
open(os.path.join(sys.argv[1], 'secret.conf'), 'w').write('plaintext')
print('ready', flush=True)
time.sleep(600)
'''


def _chattr(flag: str, path) -> bool:
    return shutil.which('chattr') is not None and subprocess.run(
        ['chattr', flag, str(path)], capture_output=True, check=False).returncode == 0


@pytest.fixture
def archive(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    # enough (about 60 MB) that the extraction takes a moment to kill it in
    for i in range(30):
        (src / ('f%02d.bin' % i)).write_bytes(os.urandom(2 * 1024 * 1024))
    result = run_playbook(write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.file_backup': {
        'paths': [str(src)], 'dest': str(tmp_path / 'b'), 'name': 'app'}}]))
    assert result.rc == 0, result.stdout[-3000:]
    return tmp_path / 'b'


def restore(tmp_path, archive, dest, ignore_errors=False):
    return run_playbook(write_playbook(tmp_path, [{'name': 'restore', 'ignore_errors': ignore_errors,
                                                   'opsready.operations.file_restore': {
                                                       'src': str(archive), 'name': 'app', 'dest': str(dest)}}]))


def stagings(dest: Path) -> list:
    return sorted(n for n in os.listdir(dest) if n.startswith('.opsready-restore-')) if dest.is_dir() else []


def test_a_killed_restore_s_staging_is_removed_by_the_next_restore(archive, tmp_path):
    dest = tmp_path / 'dest'
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.setdefault('r', restore(tmp_path, archive, dest, True)))
    runner.start()
    killed = False
    deadline = time.monotonic() + 300
    while runner.is_alive() and not killed and time.monotonic() < deadline:
        for name in stagings(dest):
            try:
                full = len(os.listdir(dest / name)) > 0
            except OSError:
                full = False
            if full:
                for pid in module_pids('file_restore', str(dest)):
                    os.kill(pid, signal.SIGKILL)     # the module: no finally, no clean-up
                    killed = True
        time.sleep(0.002)
    runner.join(300)
    assert killed, 'never saw the restore extracting into its staging directory'
    assert outcome['r'].result('restore')['_event'] == 'runner_on_failed'
    left = stagings(dest)
    assert len(left) == 1 and os.listdir(dest / left[0])      # plaintext a killed run left in dest
    # look-alikes that are not provably a dead run's: held by a live process, another account's, a plain file
    live_path = dest / '.opsready-restore-0123456789ab'
    live = subprocess.Popen([sys.executable, '-c', HOLDER, str(live_path)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    others = dest / '.opsready-restore-aaaaaaaaaaaa'
    others.mkdir(0o700)
    nobody = pwd.getpwnam('nobody')
    os.chown(others, nobody.pw_uid, nobody.pw_gid)
    (dest / '.opsready-restore-bbbbbbbbbbbb').write_text('not a directory')
    try:
        assert live.stdout.readline().strip() == 'ready'
        again = restore(tmp_path, archive, dest)
        assert again.rc == 0, again.stdout[-3000:]
        out = again.result('restore')
        assert out['removed_scratch'] == [str(dest / left[0])], out
        assert out['scratch_left'] == []
        assert str(dest / left[0]) in ' '.join(again.stdout.split())    # told on the console too
        assert stagings(dest) == sorted([live_path.name, others.name, '.opsready-restore-bbbbbbbbbbbb'])
        assert (live_path / 'secret.conf').exists()
        assert len(out['restored']) == 30 or out['unchanged'] > 0
    finally:
        os.killpg(live.pid, signal.SIGKILL)
        live.wait(10)
        live.stdout.close()


def test_a_staging_that_cannot_be_removed_is_a_warning_naming_it(archive, tmp_path):
    dest = tmp_path / 'dest'
    dest.mkdir()
    probe = dest / 'probe'
    probe.mkdir()
    if not _chattr('+a', probe):
        pytest.skip('chattr +a does not work on %s: a failed removal cannot be made real here' % dest)
    _chattr('-a', probe)
    probe.rmdir()
    sealed: list = []
    stop = threading.Event()

    def seal() -> None:
        # the run's staging directory made append-only while it extracts: files can be added, never removed.
        # Not under its provisional name (.opsready-restore-new-*): an append-only directory cannot be renamed,
        # and a restore whose staging cannot take its locked name is refused, not warned of (seen on a loaded CI
        # host, where the watcher caught the staging in the instant between its mkdir and its rename)
        while not stop.is_set():
            for name in stagings(dest):
                if name.startswith('.opsready-restore-new-'):
                    continue
                if _chattr('+a', dest / name):
                    sealed.append(str(dest / name))
                    return
            time.sleep(0.001)

    watcher = threading.Thread(target=seal, daemon=True)
    watcher.start()
    try:
        result = restore(tmp_path, archive, dest, True)
    finally:
        stop.set()
        watcher.join(10)
        for path in sealed:
            _chattr('-a', path)
    assert sealed, 'the restore ended before its staging directory could be sealed'
    out = result.result('restore')
    # the files sit in subdirectories of the staging (the archive's paths): they are moved into place, and
    # the restore succeeds; what stays is the staging's top, which the run names instead of passing over it
    assert out['_event'] == 'runner_on_ok', out
    assert out['scratch_left'] == sealed, out
    told = ' '.join(result.stdout.split())
    assert sealed[0] in told and 'was not removed' in told
    again = restore(tmp_path, archive, dest)      # once it can go, the next run removes it
    assert again.rc == 0, again.stdout[-3000:]
    assert again.result('restore')['removed_scratch'] == sealed
    assert stagings(dest) == []
