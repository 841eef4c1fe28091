"""common/locks.exclusive: one holder at a time, fail at once, never through a symlink, released by the kernel."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common import locks
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError


def test_second_holder_fails_at_once_with_the_message(tmp_path):
    path = str(tmp_path / '.x.lock')
    with locks.exclusive(path, 'Another run is busy'):
        assert os.stat(path).st_mode & 0o777 == 0o600
        with pytest.raises(OpsReadyError) as raised:
            with locks.exclusive(path, 'Another run is busy'):
                pass
        assert raised.value.message.startswith('Another run is busy (lock %s held)' % path)
    with locks.exclusive(path, 'free again'):
        pass


def test_a_symlink_at_the_lock_name_is_never_followed(tmp_path):
    victim = tmp_path / 'victim'
    link = tmp_path / '.x.lock'
    os.symlink(str(victim), str(link))
    with pytest.raises(OpsReadyError, match='symbolic link'):
        with locks.exclusive(str(link), 'busy'):
            pass
    assert not victim.exists()                       # nothing created through the link


def test_a_killed_holder_releases_the_lock(tmp_path):
    path = str(tmp_path / '.x.lock')
    code = ('import fcntl, os, sys, time\n'
            'fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)\n'
            'fcntl.flock(fd, fcntl.LOCK_EX)\n'
            'print("held", flush=True)\n'
            'time.sleep(60)\n')
    holder = subprocess.Popen([sys.executable, '-c', code, path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(OpsReadyError, match='held'):
            with locks.exclusive(path, 'busy'):
                pass
    finally:
        holder.kill()
        holder.wait()
    with locks.exclusive(path, 'busy'):
        pass


def test_an_unwritable_place_says_so(tmp_path):
    with pytest.raises(OpsReadyError, match='Cannot create the lock file'):
        with locks.exclusive(str(tmp_path / 'missing' / '.x.lock'), 'busy'):
            pass


def test_remove_leaves_no_file_and_a_late_opener_never_shares_the_lock(tmp_path, monkeypatch):
    """B opened the lock file just before A removed it and let go: B's flock then succeeds on the removed file.
    B must notice and lock the file now at that name, so that C (who creates a new file) cannot run beside it."""
    path = str(tmp_path / '.x.lock')
    with locks.exclusive(path, 'busy', remove=True):
        assert os.path.exists(path)
    assert not os.path.exists(path)
    real_flock = locks.fcntl.flock
    swapped = []

    def flock(fd, op):
        real_flock(fd, op)
        if not swapped:                          # A's removal lands between B's open and B's flock
            swapped.append(True)
            os.unlink(path)
            with open(path, 'w'):
                pass
    monkeypatch.setattr(locks.fcntl, 'flock', flock)
    with locks.exclusive(path, 'busy', remove=True):
        monkeypatch.setattr(locks.fcntl, 'flock', real_flock)
        with pytest.raises(OpsReadyError, match='held'):        # C: the file at the name is the one B holds
            with locks.exclusive(path, 'busy'):
                pass
    assert swapped and not os.path.exists(path)


def test_a_fifo_or_directory_at_the_lock_name_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / '.fifo.lock'
    os.mkfifo(str(fifo))
    with pytest.raises(OpsReadyError):          # ENXIO (no reader) or "not a regular file": never a hang
        with locks.exclusive(str(fifo), 'busy'):
            pass
    (tmp_path / '.dir.lock').mkdir()
    with pytest.raises(OpsReadyError):
        with locks.exclusive(str(tmp_path / '.dir.lock'), 'busy'):
            pass


# ------------------------------------------------------------------------------------------ locks.waiting
# The shared stores (health history, incidents, the notification ledger, the patching report) queue their writers
# on a lock file that stays. Root runs these with the lock in directories other accounts may write or read, so the
# lock must never hang on a planted FIFO, never follow a link, and never wait for ever on a holder it cannot see.

def _hold(path):
    """A separate process holding ``path`` locked until killed."""
    code = ('import fcntl, os, sys, time\n'
            'fd = os.open(sys.argv[1], os.O_RDONLY)\n'        # a read-only fd is enough to flock: a reader can stall
            'fcntl.flock(fd, fcntl.LOCK_EX)\n'
            'print("held", flush=True)\n'
            'time.sleep(60)\n')
    holder = subprocess.Popen([sys.executable, '-c', code, path], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == 'held'
    return holder


def test_waiting_waits_for_the_holder_and_then_gives_up_with_the_message(tmp_path):
    path = str(tmp_path / 'store.lock')
    open(path, 'w').close()
    holder = _hold(path)
    try:
        with pytest.raises(OpsReadyError) as raised:
            with locks.waiting(path, 'health history', timeout=0.3):
                pass
        assert 'health history' in raised.value.message and 'fuser' in raised.value.message
    finally:
        holder.kill()
        holder.wait()
    with locks.waiting(path, 'health history', timeout=5):
        pass


def test_waiting_gets_the_lock_once_the_holder_lets_go(tmp_path):
    path = str(tmp_path / 'store.lock')
    open(path, 'w').close()
    holder = _hold(path)
    import threading
    threading.Timer(0.3, holder.kill).start()
    try:
        with locks.waiting(path, 'incident store', timeout=10):
            pass
    finally:
        holder.wait()


@pytest.mark.parametrize('planted', ['fifo', 'symlink', 'directory'])
def test_waiting_refuses_a_planted_lock_name(tmp_path, planted):
    path = tmp_path / 'store.lock'
    victim = tmp_path / 'victim'
    if planted == 'fifo':
        os.mkfifo(str(path))
    elif planted == 'symlink':
        os.symlink(str(victim), str(path))
    else:
        path.mkdir()
    with pytest.raises(OpsReadyError, match='symbolic link|not a regular file|Cannot create'):
        with locks.waiting(str(path), 'store', timeout=1):
            pass
    assert not victim.exists()
