"""Fidelity, Redis, round 5: redis_restore target=file and the file a running server owns, through real
ansible-playbook runs against real redis-servers.

- a running redis-server saves to its ``dbfilename`` in its ``dir`` whatever that name is: a restore there used to
  be refused only for the name ``dump.rdb`` and written with a warning otherwise (the server overwrote it at its
  next save). The server is now found by what it is (its working directory, the held directory itself), asked its
  ``dbfilename`` when its connection is given, and a file it may own is refused without ``allow_running_server``;
- the pre-checks looked at ``dest`` by path (a parent swapped for a link was followed to root's file, reported
  "already holds this snapshot"): they now go through the directory the write uses, walked without following a link
  an account planted;
- the class: every legal file name, a ``dest`` that is a directory, a read-only directory, check mode foreseeing
  each refusal of the real run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402

NOBODY = 65534


@pytest.fixture(scope='module')
def live():
    """A running server whose dbfilename is not dump.rdb, holding one key."""
    server = RedisServer(config={'dbfilename': 'live.rdb'}).start()
    try:
        server.cli('SET', 'k', 'v')
        yield server
    finally:
        server.stop()


@pytest.fixture(scope='module')
def artifact(live, tmp_path_factory):
    where = tmp_path_factory.mktemp('redis-round5')
    run = run_playbook(write_playbook(where, [{'name': 'b', 'opsready.operations.redis_backup': {
        'host': live.host, 'port': live.port, 'password': live.password, 'dest': str(where / 'cat'),
        'database': 'live'}}]))
    assert run.rc == 0, run.stdout[-3000:]
    return run.result('b')['manifest']['path']


def restore(name, artifact, dest, check=False, **extra):
    task = {'name': name, 'ignore_errors': True, 'opsready.operations.redis_restore': dict(
        path=artifact, target='file', dest=str(dest), **extra)}
    if check:
        task['check_mode'] = True
    return task


def failed(run, name):
    result = run.result(name)
    assert result['_event'] == 'runner_on_failed', (name, result)
    return result['msg']


def ok(run, name, changed=True):
    result = run.result(name)
    assert result['_event'] == 'runner_on_ok' and result['changed'] is changed, (name, result)
    return result


def test_the_file_a_running_server_saves_to_is_refused_whatever_its_name(live, artifact, tmp_path):
    """Failed first: dest = the running server's dbfilename (live.rdb, not dump.rdb) was written with a warning,
    and the server overwrote it at its next save (BGSAVE here): the restore was lost. Now: refused while the server
    could not be asked (no connection given), refused when asked (its dbfilename is dest) even with
    allow_running_server, in check mode too; another name beside it is written when the server says it is not its
    file, or with allow_running_server."""
    owned = Path(live.dir) / 'live.rdb'
    beside = Path(live.dir) / 'restore.rdb'
    conn = {'server': {'host': live.host, 'port': live.port, 'password': live.password}}
    try:
        run = run_playbook(write_playbook(tmp_path, [
            restore('check unknown', artifact, owned, check=True),
            restore('unknown', artifact, owned),
            restore('check asked', artifact, owned, check=True, allow_running_server=True, **conn),
            restore('asked', artifact, owned, allow_running_server=True, **conn),
            restore('beside unknown', artifact, beside),
            restore('beside asked', artifact, beside, **conn),
            restore('beside allowed', artifact, beside, replace=True, allow_running_server=True)]))
        for name in ('check unknown', 'unknown'):
            msg = failed(run, name)
            assert str(live.proc.pid) in msg and 'allow_running_server' in msg and 'server' in msg, msg
        for name in ('check asked', 'asked'):
            msg = failed(run, name)
            assert str(live.proc.pid) in msg and "dbfilename is live.rdb" in msg, msg
        assert not owned.exists()
        assert 'allow_running_server' in failed(run, 'beside unknown')
        asked = ok(run, 'beside asked')
        assert not asked.get('warnings'), asked
        allowed = ok(run, 'beside allowed', changed=False)   # it already holds the snapshot
        assert beside.read_bytes()[:5] == b'REDIS'
        live.cli('BGSAVE')
    finally:
        for path in (owned, beside):
            if path.exists():
                path.unlink()
    assert allowed is not None


def test_a_parent_swapped_for_a_link_is_not_followed_by_the_pre_checks(live, artifact, tmp_path):
    """Failed first: the pre-checks read dest by path, through a link an account planted in its own directory: root's
    file behind it (holding this very snapshot) was reported "already holds this snapshot" (ok, changed=false) while
    the write would have refused the link. Now the link is refused before anything behind it is read, in check mode
    too, and a file of another content behind it is neither named nor touched."""
    secret = tmp_path / 'secret'
    secret.mkdir(mode=0o700)
    seed = run_playbook(write_playbook(tmp_path, [restore('seed', artifact, secret / 'restore.rdb')]))
    ok(seed, 'seed')
    app = tmp_path / 'app'
    app.mkdir()
    os.chown(str(app), NOBODY, NOBODY)
    (app / 'data').symlink_to(secret)
    os.lchown(str(app / 'data'), NOBODY, NOBODY)
    before = (secret / 'restore.rdb').read_bytes()
    run = run_playbook(write_playbook(tmp_path, [
        restore('check', artifact, app / 'data' / 'restore.rdb', check=True),
        restore('run', artifact, app / 'data' / 'restore.rdb', replace=True)]))
    for name in ('check', 'run'):
        msg = failed(run, name)
        assert 'symlink' in msg and 'already holds' not in msg, msg
    assert (secret / 'restore.rdb').read_bytes() == before
    assert sorted(os.listdir(secret)) == ['restore.rdb']


NAMES = ['with space.rdb', 'new\nline.rdb', '-dash.rdb', 'ünï€ødé.rdb', 'x' * 240 + '.rdb']


def test_every_legal_name_a_directory_and_a_read_only_directory(artifact, tmp_path):
    """Every legal dest name is written, exactly the snapshot, and a second run is unchanged, and a dest that is a
    directory is refused by check mode and the run (guards: passed on the old code). A directory root may not write
    (immutable) is refused by check mode as by the real run, nothing left behind (failed first: check mode promised
    the restore the run then failed)."""
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'adir.rdb').mkdir()
    ro = tmp_path / 'ro'
    ro.mkdir()
    if subprocess.run(['chattr', '+i', str(ro)], check=False, capture_output=True).returncode != 0:
        pytest.skip('chattr +i is not possible here')
    try:
        tasks = []
        for n, name in enumerate(NAMES):
            tasks += [restore('name %d' % n, artifact, out / name), restore('again %d' % n, artifact, out / name)]
        tasks += [restore('check dir', artifact, out / 'adir.rdb', check=True, replace=True),
                  restore('dir', artifact, out / 'adir.rdb', replace=True),
                  restore('check ro', artifact, ro / 'restore.rdb', check=True),
                  restore('ro', artifact, ro / 'restore.rdb')]
        run = run_playbook(write_playbook(tmp_path, tasks))
    finally:
        subprocess.run(['chattr', '-i', str(ro)], check=False)
    for n, name in enumerate(NAMES):
        ok(run, 'name %d' % n)
        ok(run, 'again %d' % n, changed=False)
        assert (out / name).read_bytes()[:5] == b'REDIS'
    for name in ('check dir', 'dir'):
        assert 'directory' in failed(run, name)
    for name in ('check ro', 'ro'):
        assert 'not writable' in failed(run, name)
    assert sorted(os.listdir(out)) == sorted(NAMES + ['adir.rdb'])
    assert os.listdir(ro) == []
