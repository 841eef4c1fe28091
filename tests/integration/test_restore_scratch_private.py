"""A db_restore's decompressed (and decrypted) copy of a dump is plaintext on disk: it lives in a private scratch
directory (``opsready-scratch-pg-restore-*``, 0700, the copy 0600, an owner file whose lock the run holds), is
removed on every exit path, and a removal that fails is reported with the path (a warning and ``scratch_left``),
never passed over. A run killed with SIGKILL (no clean-up runs) leaves it: the next db_restore removes it, because
its lock proves the run is gone, and names it in ``removed_scratch``; a look-alike it cannot prove is its own (no
owner file, a lock still held, another owner, a link) stays.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from tests.harness.playbook import REPO, run_playbook, write_playbook

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402
from tests.integration.test_pg_restore_streamed_checksum import backup, restore  # noqa: E402

PREFIX = 'opsready-scratch-pg-restore-'
OWNER = '.opsready-scratch-owner'

RUNNER = '''
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore
host, port, user, password, src, source, target, tmpdir, secret = sys.argv[2:11]
run_restore(RestoreRequest(engine='postgresql', src=src, source_database=source, database=target, replace=True,
                           jobs=2, tmpdir=tmpdir, identities=encryption.parse_identities(secret)),
            ConnectionParams(host=host, port=int(port), user=user, password=password))
'''


def _chattr(flag: str, path) -> bool:
    return shutil.which('chattr') is not None and subprocess.run(
        ['chattr', flag, str(path)], capture_output=True, check=False).returncode == 0


@pytest.fixture
def sealed(pg_db, tmp_path):
    """A custom-format, age-encrypted backup big enough that its decrypted copy takes a moment to write."""
    pg_db.sql("CREATE TABLE items (id int PRIMARY KEY, v text); "
              "INSERT INTO items SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, 300000) g")
    secret = encryption.generate_identity()
    recipient = encryption.parse_identities(secret)[0].recipient
    backup(pg_db.server, pg_db.name, tmp_path / 'b', recipients=[recipient])
    return {'src': tmp_path / 'b', 'secret': secret, 'identities': encryption.parse_identities(secret)}


def scratch_dirs(root) -> list:
    return sorted(n for n in os.listdir(root) if n.startswith('opsready-'))


def killed_while_copying(server, tmp_path, sealed, source: str, target: str, root) -> str:
    """A restore in a process group of its own, SIGKILLed once its decrypted copy is being written."""
    script = tmp_path / 'run.py'
    script.write_text(RUNNER)
    proc = subprocess.Popen([sys.executable, str(script), str(REPO / 'build'), server.host, str(server.port),
                             server.user, server.password, str(sealed['src']), source, target, str(root),
                             sealed['secret']],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, 'the restore ended before it could be killed: %s' % proc.stderr.read()
            assert time.monotonic() < deadline, 'no decompressed copy appeared in %s' % root
            copies = [os.path.join(root, n, 'dump') for n in os.listdir(root)]
            if any(os.path.exists(c) and os.path.getsize(c) > 0 for c in copies):
                break
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        proc.stderr.close()
    left = scratch_dirs(root)
    assert len(left) == 1, left
    return left[0]


def test_killed_restore_copy_is_private_and_swept_by_the_next_run(pg_db, sealed, tmp_path):
    server = pg_db.server
    root = tmp_path / 'scratch'
    root.mkdir()
    target = pg_db.name + '_scr'
    holder = None
    try:
        left = killed_while_copying(server, tmp_path, sealed, pg_db.name, target, root)
        assert left.startswith(PREFIX), 'not in a recognisable scratch directory: %s' % left
        path = root / left
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700
        assert stat.S_IMODE(os.lstat(path / 'dump').st_mode) == 0o600
        assert stat.S_IMODE(os.lstat(path / OWNER).st_mode) == 0o600
        record = json.loads((path / OWNER).read_text())
        assert record['kind'] == 'pg-restore' and record['module'] == 'db_restore'

        # look-alikes the next run cannot prove are its own (and dead) stay
        no_owner = root / (PREFIX + 'nOownEr1')
        no_owner.mkdir(mode=0o700)
        (no_owner / 'dump').write_text('kept')
        live = root / (PREFIX + 'liVeliV1')
        live.mkdir(mode=0o700)
        (live / OWNER).write_text(json.dumps({'kind': 'pg-restore', 'pid': 1}))
        holder = subprocess.Popen([sys.executable, '-c', 'import fcntl, sys, time\n'
                                   'f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); print("held", flush=True)\n'
                                   'time.sleep(600)', str(live / OWNER)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == 'held'
        elsewhere = tmp_path / 'elsewhere'
        elsewhere.mkdir()
        (elsewhere / OWNER).write_text(json.dumps({'kind': 'pg-restore', 'pid': 1}))
        link = root / (PREFIX + 'LinKlin1')
        link.symlink_to(elsewhere)
        other_uid = root / (PREFIX + 'oThErUi1')
        other_uid.mkdir(mode=0o700)
        (other_uid / OWNER).write_text(json.dumps({'kind': 'pg-restore', 'pid': 1}))
        os.chown(other_uid, 65534, 65534)
        wrong_kind = root / (PREFIX + 'wRoNgKi1')
        wrong_kind.mkdir(mode=0o700)
        (wrong_kind / OWNER).write_text(json.dumps({'kind': 'pg-verify', 'pid': 1}))

        # The next run, through the module as a playbook runs it: it removes the killed run's copy and says so.
        task = {'engine': 'postgresql', 'src': str(sealed['src']), 'database': target,
                'source_database': pg_db.name, 'replace': True, 'jobs': 2, 'tmpdir': str(root),
                'identity': sealed['secret'], 'login_host': server.host, 'login_port': server.port,
                'login_user': server.user, 'login_password': server.password}
        result = run_playbook(write_playbook(tmp_path, [
            {'name': 'restore', 'register': 'restored', 'opsready.operations.db_restore': task}]))
        assert result.rc == 0, result.stdout[-3000:]
        restored = result.result('restore')
        assert restored['removed_scratch'] == [str(path)], restored.get('removed_scratch')
        assert not path.exists()
        for kept in (no_owner, live, link, other_uid, wrong_kind):
            assert os.path.lexists(kept), kept
        assert (no_owner / 'dump').read_text() == 'kept' and (elsewhere / OWNER).exists()
        # ... and its own copy is gone too
        assert scratch_dirs(root) == sorted(p.name for p in (no_owner, live, link, other_uid, wrong_kind))
        assert server.sql('SELECT count(*) FROM items', database=target)[0][0] == '300000'
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(10)
        server.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % target, database='postgres')


def test_a_copy_that_cannot_be_removed_is_reported_with_its_path(pg_db, sealed, tmp_path):
    server = pg_db.server
    root = tmp_path / 'scratch'
    root.mkdir()
    probe = root / 'probe'
    probe.write_text('x')
    if not _chattr('+i', probe):
        pytest.skip('chattr +i does not work on %s: a failed removal cannot be made real here' % root)
    _chattr('-i', probe)
    probe.unlink()
    target = pg_db.name + '_scr'
    sealed_dirs: list = []
    stop = threading.Event()

    def seal() -> None:
        # The copy's directory made append-only while the copy is written: root cannot unlink in it.
        while not stop.is_set():
            for name in os.listdir(root):
                if os.path.exists(root / name / 'dump') and name not in sealed_dirs and _chattr('+a', root / name):
                    sealed_dirs.append(name)
                    return
            time.sleep(0.001)

    watcher = threading.Thread(target=seal, daemon=True)
    watcher.start()
    try:
        result = restore(server, sealed['src'], pg_db.name, target, replace=True, jobs=2, tmpdir=str(root),
                         identities=sealed['identities'])
        stop.set()
        watcher.join(10)
        assert sealed_dirs, 'the copy ended before it could be sealed'
        left = str(root / sealed_dirs[0])
        assert result['scratch_left'] == [left]
        warning = [w for w in result.get('warnings') or [] if left in w]
        assert warning and 'not removed' in warning[0] and 'dump' in warning[0], result.get('warnings')
        assert os.path.exists(os.path.join(left, 'dump'))
    finally:
        stop.set()
        watcher.join(10)
        for name in sealed_dirs:
            _chattr('-a', root / name)
        server.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % target, database='postgres')
    # Once it can go, the next run sweeps it (its run is over).
    again = restore(server, sealed['src'], pg_db.name, target, state='absent', tmpdir=str(root))
    assert again['removed_scratch'] == [left] and scratch_dirs(root) == []


def test_a_held_lock_keeps_the_directory_and_a_released_one_lets_it_go(tmp_path):
    from ansible_collections.opsready.operations.plugins.module_utils.common import scratch
    made = scratch.Scratch('pg-restore', str(tmp_path), 'db_restore')
    assert scratch.sweep(str(tmp_path))['removed_scratch'] == []      # in use by this process
    fd = os.open(made.path + '/' + OWNER, os.O_RDONLY)
    try:
        with pytest.raises(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    assert made.remove()['cleaned_up'] and os.listdir(tmp_path) == []


def test_mariadb_binlogs_are_replayed_from_a_private_scratch_and_a_failed_removal_is_reported(maria_db, tmp_path):
    """The binary logs a point-in-time restore replays are decrypted into a scratch directory of their own: 0700,
    each log 0600; when it cannot be removed the result names it (``scratch_left``, a warning), and once it can,
    the next db_restore removes it (``removed_scratch``)."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
    from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
    from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore
    from tests.integration.test_pg_restore_streamed_checksum import params
    server = maria_db.server
    root = tmp_path / 'scratch'
    root.mkdir()
    probe = root / 'probe'
    probe.write_text('x')
    if not _chattr('+a', probe):
        pytest.skip('chattr +a does not work on %s: a failed removal cannot be made real here' % root)
    _chattr('-a', probe)
    probe.unlink()
    secret = encryption.generate_identity()
    recipient = encryption.parse_identities(secret)[0].recipient
    maria_db.sql('CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB; INSERT INTO t VALUES (1, "a")')
    dest = str(tmp_path / 'b')
    for kind in ('full', 'log'):
        if kind == 'log':
            maria_db.sql('INSERT INTO t SELECT seq, MD5(seq) FROM seq_2_to_2000')
        opts = BackupOptions(kind=kind, dest=dest, database=maria_db.name, recipients=[recipient])
        run_backup(get_engine('mariadb', params(server)), opts, verify=False)
    seen: dict = {}
    stop = threading.Event()

    def seal() -> None:
        while not stop.is_set():
            for name in os.listdir(root):
                path = root / name
                logs = [f for f in os.listdir(path) if f != OWNER] if path.is_dir() else []
                if name.startswith('opsready-scratch-binlog-restore-') and logs and _chattr('+a', path):
                    seen.update(name=name, dir=stat.S_IMODE(os.lstat(path).st_mode),
                                files={f: stat.S_IMODE(os.lstat(path / f).st_mode) for f in os.listdir(path)})
                    return
            time.sleep(0.001)

    target = maria_db.name + '_scr'
    watcher = threading.Thread(target=seal, daemon=True)
    watcher.start()
    try:
        result = run_restore(RestoreRequest(engine='mariadb', src=dest, source_database=maria_db.name,
                                            database=target, tmpdir=str(root),
                                            identities=encryption.parse_identities(secret)), params(server))
        stop.set()
        watcher.join(10)
        assert seen, 'no binlog scratch directory appeared in %s: %s' % (root, os.listdir(root))
        assert seen['dir'] == 0o700 and set(seen['files'].values()) == {0o600}, seen
        left = str(root / seen['name'])
        assert result['scratch_left'] == [left]
        assert [w for w in result.get('warnings') or [] if left in w and 'not removed' in w], result.get('warnings')
        assert server.sql('SELECT count(*) FROM t', database=target)[0][0] in (2000, '2000')
    finally:
        stop.set()
        watcher.join(10)
        if seen:
            _chattr('-a', root / seen['name'])
        server.sql('DROP DATABASE IF EXISTS `%s`' % target)
    again = run_restore(RestoreRequest(engine='mariadb', src=dest, source_database=maria_db.name, database=target,
                                       tmpdir=str(root), state='absent'), params(server))
    assert again['removed_scratch'] == [left] and scratch_dirs(root) == []
