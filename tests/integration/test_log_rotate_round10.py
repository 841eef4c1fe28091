"""log_rotate, round 10: two runs on one log with different state files.

The lock of a run was its state file's (``<state_file>.lock``, as logrotate's): two runs rotating the same log
under two state files (a timer's policy and an operator's ad-hoc run, two playbooks naming one log) both planned on
the log as it was, then both set out to rotate it, the second meeting the first's work midway and failing (or,
where the names allowed, rotating it twice for one trigger). A run now also holds
a lock per log (keyed on its directory and name, in a lock directory of its own user's), taken in one order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BUILD = str(Path(__file__).resolve().parents[2] / 'build')
sys.path.insert(0, BUILD)

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.logrotate import rotate as rotate_mod  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import Policy  # noqa: E402
from tests.integration.test_log_rotate_no_loss import count_numbers  # noqa: E402

# A writer of numbered lines, about 400 a second (so the log just rotated stays under the size trigger for a few
# seconds), reopening its log on SIGHUP.
WRITER = r'''
import os, signal, sys, time
path, count_file, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
state = {'reopen': False, 'stop': False}
signal.signal(signal.SIGHUP, lambda *a: state.__setitem__('reopen', True))
signal.signal(signal.SIGTERM, lambda *a: state.__setitem__('stop', True))
fd = os.open(path, flags, 0o644)
i = start
while not state['stop']:
    if state['reopen']:
        state['reopen'] = False
        os.close(fd)
        fd = os.open(path, flags, 0o644)
    os.write(fd, b'%d\n' % i)
    i += 1
    time.sleep(0.0025)
os.close(fd)
with open(count_file, 'w') as handle:
    handle.write(str(i))
'''

# One log_rotate run (size trigger) under its own state file. Once it has planned, it says so and waits (up to
# 3 s) for the other run to have planned too: the window two runs meet in, made wide enough to be met every time.
# A run that cannot plan while the other holds the log waits in its lock, and the first goes on alone.
RUN = r'''
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.rotate import Rotation
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import Policy
log, state, pidfile, me, other, mode = sys.argv[2:8]
real = Rotation._preflight
def preflight(self, plans):
    open(me, 'w').close()
    deadline = time.monotonic() + 3
    while not os.path.exists(other) and time.monotonic() < deadline:
        time.sleep(0.01)
    return real(self, plans)
Rotation._preflight = preflight
result = Rotation([log], Policy(size=4096, rotate=5, compress=False, mode=mode), state, signal='HUP',
                  pidfile=pidfile if mode == 'create' else None, check_dirs=False).run()
print(json.dumps({'rotated': [r['rotated_to'] for r in result['rotated']]}))
'''


@pytest.mark.parametrize('mode', ['create', 'copytruncate'])
def test_two_runs_with_different_state_files_rotate_one_log_once(tmp_path, mode):
    """Two log_rotate runs at once on one log (size trigger; create mode with the writer told by SIGHUP, and
    copytruncate), each with its own state file: the log is rotated once, and every numbered line is found once
    across the log and its copy. Before the per-log lock both runs planned on the full log, and the second then
    failed midway ("replaced by another file since it was looked at" in create mode; "File exists (app.log.1)" in
    copytruncate mode): a failed task for a rotation that had been done."""
    logs = tmp_path / 'logs'
    logs.mkdir()
    log = logs / 'app.log'
    prefill = 2000   # lines 0..1999: over the 4096-byte trigger
    log.write_bytes(b''.join(b'%d\n' % i for i in range(prefill)))
    (tmp_path / 'writer.py').write_text(WRITER)
    (tmp_path / 'run.py').write_text(RUN)
    count_file = tmp_path / 'count'
    writer = subprocess.Popen([sys.executable, str(tmp_path / 'writer.py'), str(log), str(count_file), str(prefill)])
    try:
        pidfile = tmp_path / 'writer.pid'
        pidfile.write_text('%d\n' % writer.pid)
        time.sleep(0.2)
        runs = [subprocess.Popen([sys.executable, str(tmp_path / 'run.py'), BUILD, str(log),
                                  str(tmp_path / ('state%d.json' % n)), str(pidfile), str(tmp_path / ('planned%d' % n)),
                                  str(tmp_path / ('planned%d' % (1 - n))), mode],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in (0, 1)]
        outs = [run.communicate(timeout=60) for run in runs]
        for run, (_out, err) in zip(runs, outs):
            assert run.returncode == 0, err.decode(errors='replace')
        time.sleep(0.2)
    finally:
        writer.send_signal(signal.SIGTERM)
        assert writer.wait(timeout=20) == 0
    total = int(count_file.read_text())
    rotated = sorted(r for out, _err in outs for r in json.loads(out)['rotated'])
    assert rotated == [str(log) + '.1'], rotated
    assert sorted(os.listdir(logs)) == ['app.log', 'app.log.1'], os.listdir(logs)
    data = (logs / 'app.log.1').read_bytes() + log.read_bytes()
    missing, duplicated, malformed = count_numbers(data, total)
    # copytruncate loses a line written between its last read and the truncate (microseconds; the writer writes
    # every 2.5 ms): at most one here. Create mode loses none.
    assert (duplicated, malformed) == (0, 0) and missing <= (1 if mode == 'copytruncate' else 0), (missing, total)


def rotate_once(log: Path, state: Path, check_mode: bool = False) -> dict:
    return rotate_mod.Rotation([str(log)], Policy(size=1, rotate=3, compress=False), str(state),
                               check_dirs=False).run(check_mode=check_mode)


NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason='planting as another account needs root')
@pytest.mark.parametrize('planted', ['symlink', 'world-writable', 'file'])
def test_a_lock_directory_someone_else_could_plant_is_refused(tmp_path, monkeypatch, planted):
    """The per-log locks live in a directory of the run's own user that nobody else may write; one planted at its
    name (a symlink to a directory elsewhere, a world-writable directory, a file) is refused before anything is
    rotated, check mode included, and nothing is created through the link. New with the per-log lock."""
    locks_at = tmp_path / 'run' / 'opsready'
    locks_at.parent.mkdir()
    os.chmod(locks_at.parent, 0o1777)   # as /run/lock: every account may make a name there
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    if planted == 'symlink':
        locks_at.symlink_to(elsewhere)
        os.lchown(locks_at, NOBODY, NOBODY)   # planted by another account
    elif planted == 'world-writable':
        locks_at.mkdir()
        os.chmod(locks_at, 0o777)
    else:
        locks_at.write_text('')
    monkeypatch.setattr(rotate_mod, 'LOG_LOCK_DIR', str(locks_at))
    logs = tmp_path / 'logs'
    logs.mkdir()
    log = logs / 'app.log'
    log.write_text('line\n')
    for check_mode in (True, False):
        with pytest.raises(OpsReadyError) as caught:
            rotate_once(log, tmp_path / 'state.json', check_mode)
        assert str(locks_at) in caught.value.message, caught.value.message
    assert os.listdir(logs) == ['app.log'] and os.listdir(elsewhere) == []


def test_the_lock_directory_is_made_private_and_check_mode_makes_none(tmp_path, monkeypatch):
    """Check mode creates no lock directory (it changes nothing on disk); the real run makes it 0700, owned by its
    user, and rotates. New with the per-log lock."""
    locks_at = tmp_path / 'run' / 'opsready'
    monkeypatch.setattr(rotate_mod, 'LOG_LOCK_DIR', str(locks_at))
    logs = tmp_path / 'logs'
    logs.mkdir()
    log = logs / 'app.log'
    log.write_text('line\n')
    assert rotate_once(log, tmp_path / 'state.json', True)['changed']
    assert not (tmp_path / 'run').exists()
    assert rotate_once(log, tmp_path / 'state.json')['rotated']
    st = os.lstat(rotate_mod.log_lock_dir())
    assert (oct(st.st_mode & 0o7777), st.st_uid) == (oct(0o700), os.geteuid())
    assert sorted(os.listdir(logs)) == ['app.log', 'app.log.1']


def test_one_log_named_through_two_paths_has_one_lock(tmp_path):
    """The lock is the log's, not the path's: named through a symlinked directory or ``..``, a log has the lock it
    has under its own path (and keeps it across rotations: a new file under the name). Another log, another lock.
    New with the per-log lock (nothing to compare with before)."""
    from ansible_collections.opsready.operations.plugins.module_utils.logrotate.safefs import LogDir
    logs = tmp_path / 'logs'
    logs.mkdir()
    (tmp_path / 'alias').symlink_to(logs)
    names = set()
    for directory in (logs, tmp_path / 'alias', logs / '..' / 'logs'):
        d = LogDir.open(str(directory))
        try:
            names.add(rotate_mod.log_lock_name(os.fstat(d.fd), 'app.log'))
            other = rotate_mod.log_lock_name(os.fstat(d.fd), 'app.log.1')
        finally:
            d.close()
    assert len(names) == 1 and other not in names


@pytest.mark.skipif(os.geteuid() != 0, reason='the lock directory of root is what is checked')
def test_roots_lock_directory_is_in_no_directory_another_account_may_write():
    """Root's per-log lock directory was /run/lock/opsready: /run/lock is world-writable (sticky), so any account - and
    the schedule role's own jobs, running as their user with that very directory as their lock directory - could make
    it first, and every rotation of root's was then refused ("it belongs to ..."): logs left to fill the disk. No
    directory above root's lock directory may be writable by another account."""
    path = rotate_mod.log_lock_dir()
    parent = os.path.dirname(path)
    while True:
        if os.path.exists(parent):
            st = os.stat(parent)
            assert st.st_uid == 0 and not st.st_mode & 0o022, '%s: another account may make %s first' % (parent, path)
        if parent == '/':
            break
        parent = os.path.dirname(parent)
