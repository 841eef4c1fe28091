"""Fault matrix, backups: a backup killed with SIGKILL while it stages data in its destination directory (MariaDB
kind=log copies each binary log, raw, through a staging directory in dest). No ``finally`` runs: the staging
directory stays, a raw binary log (the rows in plaintext) in it. It must be told apart from the catalog's artifacts
(backup_info lists it as a leftover, never as an artifact; backup_copy never sends it; backup_prune never counts
it) and the next backup of the same set removes it (``leftovers_removed``) under the set's lock, so that it is not
left forever.

Real ansible-playbook runs against the shared MariaDB test server; the kill is a real SIGKILL of the module.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.faults.helpers import conn, module_pids, play, sqlite_db
from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy as offsite_copy
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import Store


class DirStore(Store):
    """A destination that is a local directory (the store API backup_copy drives; the real backends are tested in
    tests/integration/test_backup_copy*.py)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = 'dir://%s' % root

    def list_files(self):
        return {str(p.relative_to(self.root)): p.stat().st_size for p in self.root.rglob('*') if p.is_file()}

    def read_bytes(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def chunks(self, name: str):
        yield (self.root / name).read_bytes()

    def put_bytes(self, name: str, data: bytes) -> None:
        (self.root / name).parent.mkdir(parents=True, exist_ok=True)
        (self.root / name).write_bytes(data)

    def upload(self, local_path: str, name: str, fail_after=None):
        (self.root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_path, self.root / name)
        data = (self.root / name).read_bytes()
        return {'sha256': hashlib.sha256(data).hexdigest(), 'size': len(data)}

    def delete(self, names):
        for name in names:
            (self.root / name).unlink()


def directories(dest: Path) -> list:
    return sorted(p.name for p in dest.iterdir() if p.is_dir()) if dest.is_dir() else []


@pytest.mark.fault(fault='kill -9 of a binlog backup while it stages raw binary logs in dest',
                   component='db_backup (MariaDB kind=log)',
                   expected='the staging directory is a leftover (never an artifact, never copied offsite); the '
                            'next log backup of the set removes it')
def test_killed_log_backup_staging_is_a_leftover_the_next_run_removes(maria_db, tmp_path, fault):
    server = maria_db.server
    fault.secret(server.password)
    maria_db.sql('CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, v LONGTEXT)')
    dest = tmp_path / 'backups'
    extravars = {'pw': server.password}
    backup = dict(conn(server), engine='mariadb', database=maria_db.name, dest=str(dest))
    assert play(tmp_path, [{'name': 'full', 'opsready.operations.db_backup': backup}], extravars,
                fault=fault).rc == 0
    # binary logs of some MB each: the log backup copies them one by one, seconds of a staging directory
    for i in range(8):
        maria_db.sql("INSERT INTO events (v) VALUES (REPEAT(MD5('%d'), 200000))" % i)
        maria_db.sql("INSERT INTO events (v) VALUES (REPEAT(MD5('x%d'), 200000))" % i)
        server.sql('FLUSH BINARY LOGS', superuser=True)
    before = sorted(p.name for p in dest.iterdir())
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.setdefault('r', play(
        tmp_path, [{'name': 'logs', 'ignore_errors': True,
                    'opsready.operations.db_backup': dict(backup, kind='log')}], extravars, fault=fault)))
    runner.start()
    killed = None
    deadline = time.monotonic() + 300
    while runner.is_alive() and killed is None and time.monotonic() < deadline:
        staged = [d for d in directories(dest) if os.listdir(dest / d)]
        if staged:
            for pid in module_pids('db_backup', str(dest)):
                os.kill(pid, signal.SIGKILL)     # the module: no finally, no clean-up
                killed = (pid, staged)
        time.sleep(0.002)
    runner.join(300)
    assert killed, 'never saw the log backup staging a binary log in dest'
    assert outcome['r'].result('logs')['_event'] == 'runner_on_failed'
    left = directories(dest)
    assert left, 'the killed run left no staging directory (nothing to test)'
    assert not (set(left) & set(before))

    result = play(tmp_path, [
        {'name': 'info', 'opsready.operations.backup_info': {'path': str(dest)}},
        {'name': 'prune', 'opsready.operations.backup_prune': {'path': str(dest), 'keep_last': 100}},
    ], extravars, fault=fault)
    assert result.rc == 0, result.stdout[-2000:]
    info = result.result('info')
    listed = {os.path.basename(a['path']) for a in info['artifacts']}
    assert not (listed & set(left)), 'a staging directory listed as an artifact'
    assert {os.path.join(str(dest), d) for d in left} <= set(info['leftovers']), info['leftovers']
    prune = result.result('prune')
    assert prune['deleted'] == [] and all(os.path.isdir(dest / d) for d in left)

    remote = tmp_path / 'offsite'
    remote.mkdir()
    pushed = offsite_copy.push(DirStore(remote), str(dest))
    sent = set(DirStore(remote).list_files())
    assert not [n for n in sent if n.split('/')[0] in left], sent
    assert len(pushed['uploaded']) == len(info['artifacts'])

    again = play(tmp_path, [{'name': 'logs', 'opsready.operations.db_backup': dict(backup, kind='log')}],
                 extravars, fault=fault)
    assert again.rc == 0, again.stdout[-2000:]
    removed = {os.path.basename(p) for p in again.result('logs')['leftovers_removed']}
    assert set(left) <= removed, (left, removed)
    assert directories(dest) == [], 'a staging directory is still in dest after the next run'
    assert 'leftovers_left' not in again.result('logs')
    fault.lost(files=0)
    fault.observed('killed while staging (%s): failed; listed as a leftover, not an artifact, not copied; removed '
                   'by the next log backup' % ', '.join(left))


def _chattr(flag: str, path) -> bool:
    return shutil.which('chattr') is not None and subprocess.run(
        ['chattr', flag, str(path)], capture_output=True, check=False).returncode == 0


@pytest.mark.fault(fault='backup_copy\'s work directory (the remote catalog\'s manifests) cannot be removed',
                   component='backup_copy (push)',
                   expected='scratch_left names it with a warning; the next run removes it (removed_scratch)')
def test_offsite_workdir_that_cannot_be_removed_is_named_and_swept(tmp_path, monkeypatch, fault):
    source = tmp_path / 'app.sqlite'
    sqlite_db(source, rows=3000, blob=2048)
    dest = tmp_path / 'backups'
    assert play(tmp_path, [{'name': 'b', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(source), 'dest': str(dest)}}], fault=fault).rc == 0
    root = tmp_path / 'tmp'
    root.mkdir()
    if not _chattr('+a', root):
        pytest.skip('chattr +a does not work on %s: a failed removal cannot be made real here' % root)
    _chattr('-a', root)
    monkeypatch.setattr(tempfile, 'tempdir', str(root))
    sealed: list = []
    stop = threading.Event()

    def seal() -> None:
        # the run's work directory made append-only while it runs: nothing can be unlinked from it
        while not stop.is_set():
            for path in root.iterdir():
                if path.name.startswith('opsready-') and path.is_dir() and _chattr('+a', path):
                    sealed.append(str(path))
                    return
            time.sleep(0.0005)

    remote = tmp_path / 'offsite'
    remote.mkdir()
    watcher = threading.Thread(target=seal, daemon=True)
    watcher.start()
    try:
        pushed = offsite_copy.push(DirStore(remote), str(dest))
    finally:
        stop.set()
        watcher.join(10)
        for path in sealed:
            _chattr('-a', path)
    assert sealed, 'the push ended before its work directory could be sealed'
    assert len(pushed['uploaded']) == 1
    assert pushed.get('scratch_left') == sealed, pushed
    assert sealed[0] in pushed['scratch_warning'] and 'was not removed' in pushed['scratch_warning']
    again = offsite_copy.push(DirStore(remote), str(dest))
    assert again['removed_scratch'] == sealed and again.get('scratch_left', []) == []
    assert [p.name for p in root.iterdir()] == []
    fault.lost(files=0)
    fault.observed('the sealed work directory was named (scratch_left, warning); the next push removed it')
